/*
** heap.c - the binary min-heap behind every loop's timers (see heap.h).
*/
#include "heap.h"

static int before(const HeapNode *a, const HeapNode *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void place(Heap *h, size_t i, HeapNode *node) {
  h->items[i] = node;
  node->index = (uint32_t)i;
}

static void sift_up(Heap *h, size_t i) {
  HeapNode *node = h->items[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(node, h->items[parent])) break;
    place(h, i, h->items[parent]);
    i = parent;
  }
  place(h, i, node);
}

static void sift_down(Heap *h, size_t i) {
  HeapNode *node = h->items[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= h->count) break;
    if (child + 1 < h->count && before(h->items[child + 1], h->items[child])) child++;
    if (!before(h->items[child], node)) break;
    place(h, i, h->items[child]);
    i = child;
  }
  place(h, i, node);
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
  h->items = (HeapNode **)p;
  h->capacity = ncap;
  return 1;
}

void txaio__heap_free(Heap *h, HeapAlloc alloc, void *ud) {
  if (h->items) alloc(ud, h->items, h->capacity * sizeof *h->items, 0);
  txaio__heap_init(h);
}

void txaio__heap_push(Heap *h, HeapNode *node) {
  place(h, h->count, node);
  h->count++;
  sift_up(h, h->count - 1);
}

void txaio__heap_remove(Heap *h, HeapNode *node) {
  size_t i = node->index;
  HeapNode *last = h->items[--h->count];
  if (last == node) return;
  place(h, i, last);
  if (i > 0 && before(last, h->items[(i - 1) / 2])) sift_up(h, i);
  else sift_down(h, i);
}

HeapNode *txaio__heap_pop(Heap *h) {
  HeapNode *top = txaio__heap_min(h);
  if (top) txaio__heap_remove(h, top);
  return top;
}

#ifdef TXAIO_DEBUG
int txaio__heap_check(const Heap *h) {
  size_t i;
  for (i = 1; i < h->count; i++)
    if (before(h->items[i], h->items[(i - 1) / 2]) || h->items[i]->index != i) return 0;
  return h->count == 0 || h->items[0]->index == 0;
}
#endif
