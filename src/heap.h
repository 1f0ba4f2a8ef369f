/*
** heap.h - four-ary min-heap of timer entries, ordered by (due, seq).
** Knows nothing of Lua: the owner supplies the storage (see txaio__heap_reserve's allocator) so the
** algorithm is tested on its own (spec/support/heap_test.c). Equal deadlines come out in insertion
** (seq) order.
**
** An entry is a value, not a pointer to its timer: sifting compares neighbouring array entries (a
** node's four children share one or two cache lines), breaks ties without leaving the array, and
** never writes back into the timers, which sit all over memory. The price is that an entry cannot
** be found again: a cancelled timer stays in the heap as a tombstone (the owner knows which refs
** are dead) until it reaches the top or txaio__heap_filter sweeps it out.
*/
#ifndef TXAIO_HEAP_H
#define TXAIO_HEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct HeapEntry {
  double due;
  uint64_t seq;
  uint32_t ref;     /* the owner's name for the timer (sched.c: its slot in ROOTS) */
} HeapEntry;

typedef struct Heap {
  HeapEntry *items;
  size_t count, capacity;
} Heap;

/* realloc-like allocator: (ud, ptr, oldsize, newsize); lua_Alloc has this shape */
typedef void *(*HeapAlloc)(void *ud, void *ptr, size_t osize, size_t nsize);

void txaio__heap_init(Heap *h);
/* makes room for one more entry; returns 0 (heap unchanged) when the allocator fails or the heap
** already holds UINT32_MAX entries */
int txaio__heap_reserve(Heap *h, HeapAlloc alloc, void *ud);
void txaio__heap_free(Heap *h, HeapAlloc alloc, void *ud);
/* needs a prior successful reserve */
void txaio__heap_push(Heap *h, double due, uint64_t seq, uint32_t ref);
void txaio__heap_pop(Heap *h);   /* drops the minimum; only while the heap is not empty */
/* drops every entry whose ref 'keep' answers 0 for, then restores the order in linear time */
void txaio__heap_filter(Heap *h, int (*keep)(void *ctx, uint32_t ref), void *ctx);
#define txaio__heap_min(h)  (&(h)->items[0])   /* only while the heap is not empty */
#ifdef TXAIO_DEBUG
int txaio__heap_check(const Heap *h);   /* 1 when every parent orders before its children */
#endif

#endif
