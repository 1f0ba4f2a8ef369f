/*
** heap.h - intrusive four-ary min-heap of timer nodes, ordered by (due, seq).
** Knows nothing of Lua: the owner supplies the storage (see txaio__heap_reserve's allocator) so the
** algorithm is tested on its own (spec/support/heap_test.c). Equal deadlines come out in insertion
** (seq) order.
**
** Each deadline lives in the heap array next to its node pointer, not in the node: sifting compares
** neighbouring array entries (a node's four children share one or two cache lines) and follows a
** pointer only to record a node's new position, or to break a tie. With a million timers, that is
** the difference between a cache miss per comparison and one per level.
*/
#ifndef TXAIO_HEAP_H
#define TXAIO_HEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct HeapNode {
  uint64_t seq;
  uint32_t index;   /* position in the heap array while queued */
  int tag;          /* the owner's: fills what would be padding (sched.c keeps a ref here) */
} HeapNode;

typedef struct HeapEntry {
  double due;
  HeapNode *node;
} HeapEntry;

typedef struct Heap {
  HeapEntry *items;
  size_t count, capacity;
} Heap;

/* realloc-like allocator: (ud, ptr, oldsize, newsize); lua_Alloc has this shape */
typedef void *(*HeapAlloc)(void *ud, void *ptr, size_t osize, size_t nsize);

void txaio__heap_init(Heap *h);
/* makes room for one more node; returns 0 (heap unchanged) when the allocator fails or the heap
** already holds UINT32_MAX nodes */
int txaio__heap_reserve(Heap *h, HeapAlloc alloc, void *ud);
void txaio__heap_free(Heap *h, HeapAlloc alloc, void *ud);
void txaio__heap_push(Heap *h, HeapNode *node, double due);   /* needs a prior successful reserve */
HeapNode *txaio__heap_pop(Heap *h);
void txaio__heap_remove(Heap *h, HeapNode *node);
#define txaio__heap_min(h)      ((h)->count ? (h)->items[0].node : NULL)
#define txaio__heap_min_due(h)  ((h)->items[0].due)   /* only while the heap is not empty */
#ifdef TXAIO_DEBUG
int txaio__heap_check(const Heap *h);   /* 1 when every parent orders before its children */
#endif

#endif
