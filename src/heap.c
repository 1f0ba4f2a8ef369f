/*
** heap.c - the four-ary min-heap behind every loop's timers (see heap.h).
** Four children a node rather than two: half the levels, so half the cache misses on a large heap,
** for a few more comparisons among entries that sit side by side.
*/
#include "heap.h"

#define ARITY 4

#ifdef TXAIO_DEBUG
#include <stdio.h>
#include <stdlib.h>
/* The fuzzing build checks the whole heap after every change: a broken order must stop the run
   where it happened, not surface as a timer firing late many operations later. */
#define VERIFY(h) \
  do { if (!txaio__heap_check(h)) { fputs("txaio: timer heap order broken\n", stderr); abort(); } } while (0)
#else
#define VERIFY(h) ((void)0)
#endif

static int before(const HeapEntry *a, const HeapEntry *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void sift_up(Heap *h, size_t i, HeapEntry e) {
  while (i > 0) {
    size_t parent = (i - 1) / ARITY;
    if (!before(&e, &h->items[parent])) break;
    h->items[i] = h->items[parent];
    i = parent;
  }
  h->items[i] = e;
}

static void sift_down(Heap *h, size_t i, HeapEntry e) {
  for (;;) {
    size_t first = ARITY * i + 1, last, best, c;
    if (first >= h->count) break;
    last = first + ARITY < h->count ? first + ARITY : h->count;
    best = first;
    for (c = first + 1; c < last; c++)
      if (before(&h->items[c], &h->items[best])) best = c;
    if (!before(&h->items[best], &e)) break;
    h->items[i] = h->items[best];
    i = best;
  }
  h->items[i] = e;
}

void txaio__heap_init(Heap *h) {
  h->items = NULL;
  h->count = h->capacity = 0;
}

int txaio__heap_reserve(Heap *h, HeapAlloc alloc, void *ud) {
  size_t ncap;
  void *p;
  if (h->count < h->capacity) return 1;
  if (h->count >= UINT32_MAX) return 0;
  ncap = h->capacity ? h->capacity * 2 : 16;
  p = alloc(ud, h->items, h->capacity * sizeof *h->items, ncap * sizeof *h->items);
  if (!p) return 0;
  h->items = (HeapEntry *)p;
  h->capacity = ncap;
  return 1;
}

void txaio__heap_free(Heap *h, HeapAlloc alloc, void *ud) {
  if (h->items) alloc(ud, h->items, h->capacity * sizeof *h->items, 0);
  txaio__heap_init(h);
}

void txaio__heap_push(Heap *h, double due, uint64_t seq, uint32_t ref) {
  HeapEntry e;
  e.due = due;
  e.seq = seq;
  e.ref = ref;
  h->count++;
  sift_up(h, h->count - 1, e);
  VERIFY(h);
}

void txaio__heap_pop(Heap *h) {
  HeapEntry last = h->items[--h->count];
  if (h->count) sift_down(h, 0, last);
  VERIFY(h);
}

void txaio__heap_filter(Heap *h, int (*keep)(void *ctx, uint32_t ref), void *ctx) {
  size_t i, kept = 0;
  for (i = 0; i < h->count; i++)
    if (keep(ctx, h->items[i].ref)) h->items[kept++] = h->items[i];
  h->count = kept;
  /* Floyd's construction: sift down every parent, the deepest first */
  for (i = kept > 1 ? (kept - 2) / ARITY + 1 : 0; i-- > 0;) sift_down(h, i, h->items[i]);
  VERIFY(h);
}

#ifdef TXAIO_DEBUG
int txaio__heap_check(const Heap *h) {
  size_t i;
  for (i = 1; i < h->count; i++)
    if (before(&h->items[i], &h->items[(i - 1) / ARITY])) return 0;
  return 1;
}
#endif
