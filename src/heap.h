/*
** heap.h - intrusive binary min-heap of timer nodes, ordered by (due, seq).
** Knows nothing of Lua: the owner supplies the storage (see txaio__heap_grow's allocator) so the
** algorithm can be unit-tested on its own. Equal deadlines come out in insertion (seq) order.
*/
#ifndef TXAIO_HEAP_H
#define TXAIO_HEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct HeapNode {
  double due;
  uint64_t seq;
  uint32_t index;   /* position in the heap array while queued */
  int tag;          /* the owner's: fills what would be padding (sched.c keeps a ref here) */
} HeapNode;

typedef struct Heap {
  HeapNode **items;
  size_t count, capacity;
} Heap;

/* realloc-like allocator: (ud, ptr, oldsize, newsize); lua_Alloc has this shape */
typedef void *(*HeapAlloc)(void *ud, void *ptr, size_t osize, size_t nsize);

void txaio__heap_init(Heap *h);
/* makes room for one more node; returns 0 (heap unchanged) when the allocator fails or the heap
** already holds UINT32_MAX nodes */
int txaio__heap_reserve(Heap *h, HeapAlloc alloc, void *ud);
void txaio__heap_free(Heap *h, HeapAlloc alloc, void *ud);
void txaio__heap_push(Heap *h, HeapNode *node);   /* needs a prior successful reserve */
HeapNode *txaio__heap_pop(Heap *h);
void txaio__heap_remove(Heap *h, HeapNode *node);
#define txaio__heap_min(h)  ((h)->count ? (h)->items[0] : NULL)
#ifdef TXAIO_DEBUG
int txaio__heap_check(const Heap *h);   /* 1 when every parent orders before its children */
#endif

#endif
