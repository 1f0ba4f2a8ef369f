/*
** heap_test.c - src/heap.c on its own, against a brute-force model, for spec/heap_spec.lua.
** Built with -DTXAIO_DEBUG, so the heap also verifies its whole order after every change.
**
**   heap_test random SEED OPS   random pushes (few distinct deadlines, so many ties), removals of
**                               random queued nodes and pops; every pop must be the model's minimum
**                               by (due, seq). Prints "ok ..." and exits 0, or names the first
**                               difference and exits 1.
**   heap_test nomem             a failing allocator: reserve returns 0 and leaves the heap as it was.
**   heap_test corrupt           breaks the order behind the heap's back, then pushes: the debug
**                               check must abort with "timer heap order broken".
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"

#define MAXNODES 4096

typedef struct Model {
  HeapNode node;
  double due;
  int queued;
} Model;

static Model nodes[MAXNODES];
static int fail_alloc;

static void *test_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return fail_alloc ? NULL : realloc(ptr, nsize);
}

/* xorshift64*: the same sequence for the same seed on every machine */
static unsigned long long rng_state;
static unsigned long long rng(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ULL;
}

static Model *model_min(void) {
  Model *best = NULL;
  int i;
  for (i = 0; i < MAXNODES; i++) {
    Model *m = &nodes[i];
    if (!m->queued) continue;
    if (!best || m->due < best->due || (m->due == best->due && m->node.seq < best->node.seq))
      best = m;
  }
  return best;
}

static int run_random(unsigned long long seed, long ops) {
  Heap h;
  uint64_t seq = 0;
  long op, pushes = 0, removes = 0, pops = 0;
  int qlist[MAXNODES], qpos[MAXNODES];   /* the queued nodes, to pick one to remove */
  size_t queued = 0, peak = 0;
  txaio__heap_init(&h);
  rng_state = seed ? seed : 1;
  for (op = 0; op < ops; op++) {
    unsigned long long r = rng();
    int kind = (int)((r >> 32) % 8);   /* 5 in 8 push, 2 remove, 1 pop: the heap fills up to MAXNODES */
    if (kind < 5 && queued < MAXNODES) {
      int id = (int)(r % MAXNODES);
      while (nodes[id].queued) id = (id + 1) % MAXNODES;
      if (!txaio__heap_reserve(&h, test_alloc, NULL)) { puts("reserve failed"); return 1; }
      nodes[id].due = (double)((r >> 40) % 64);   /* few distinct deadlines: many ties */
      nodes[id].node.seq = seq++;
      nodes[id].queued = 1;
      txaio__heap_push(&h, &nodes[id].node, nodes[id].due);
      qpos[id] = (int)queued;
      qlist[queued++] = id;
      if (queued > peak) peak = queued;
      pushes++;
    } else if (kind < 7 && queued > 0) {
      int at = (int)((r >> 8) % queued), id = qlist[at];
      txaio__heap_remove(&h, &nodes[id].node);
      nodes[id].queued = 0;
      qlist[at] = qlist[--queued];
      qpos[qlist[at]] = at;
      removes++;
    } else {
      Model *want = model_min();
      HeapNode *got;
      if (want && h.items[0].due != want->due) {
        printf("op %ld: the minimum deadline is %g, the model's %g\n", op, h.items[0].due, want->due);
        return 1;
      }
      got = txaio__heap_pop(&h);
      if (got != (want ? &want->node : NULL)) {
        printf("op %ld: pop returned node %ld, the model's minimum is node %ld\n", op,
               got ? (long)((Model *)got - nodes) : -1L, want ? (long)(want - nodes) : -1L);
        return 1;
      }
      if (want) {
        int id = (int)(want - nodes), at = qpos[id];
        want->queued = 0;
        qlist[at] = qlist[--queued];
        qpos[qlist[at]] = at;
        pops++;
      }
    }
    if (h.count != queued) {
      printf("op %ld: the heap holds %zu nodes, the model %zu\n", op, h.count, queued);
      return 1;
    }
  }
  while (h.count) {   /* drain: everything left comes out in order */
    Model *want = model_min();
    if (txaio__heap_pop(&h) != &want->node) { puts("drain: out of order"); return 1; }
    want->queued = 0;
    pops++;
  }
  txaio__heap_free(&h, test_alloc, NULL);
  printf("ok seed=%llu ops=%ld pushes=%ld removes=%ld pops=%ld peak=%zu\n", seed, ops, pushes, removes,
         pops, peak);
  return 0;
}

static int run_nomem(void) {
  Heap h;
  int i;
  txaio__heap_init(&h);
  for (i = 0; i < 16; i++) {   /* fills the first allocation exactly */
    if (!txaio__heap_reserve(&h, test_alloc, NULL)) { puts("first reserve failed"); return 1; }
    nodes[i].node.seq = (uint64_t)i;
    txaio__heap_push(&h, &nodes[i].node, (double)(16 - i));
  }
  fail_alloc = 1;
  if (txaio__heap_reserve(&h, test_alloc, NULL)) { puts("reserve succeeded without memory"); return 1; }
  if (h.count != 16 || h.capacity != 16) { puts("a failed reserve changed the heap"); return 1; }
  fail_alloc = 0;
  for (i = 15; i >= 0; i--) {
    if (txaio__heap_pop(&h) != &nodes[i].node) { puts("order broken after a failed reserve"); return 1; }
  }
  txaio__heap_free(&h, test_alloc, NULL);
  puts("ok nomem");
  return 0;
}

static int run_corrupt(void) {
  Heap h;
  int i;
  txaio__heap_init(&h);
  for (i = 0; i < 8; i++) {
    txaio__heap_reserve(&h, test_alloc, NULL);
    nodes[i].node.seq = (uint64_t)i;
    txaio__heap_push(&h, &nodes[i].node, (double)i);
  }
  h.items[0].due = 1e9;   /* the root now orders after its children */
  txaio__heap_reserve(&h, test_alloc, NULL);
  nodes[8].node.seq = 8;
  txaio__heap_push(&h, &nodes[8].node, 100.0);   /* must abort here */
  puts("the corrupted heap was not noticed");
  return 1;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "random") == 0)
    return run_random(strtoull(argv[2], NULL, 10), strtol(argv[3], NULL, 10));
  if (argc == 2 && strcmp(argv[1], "nomem") == 0) return run_nomem();
  if (argc == 2 && strcmp(argv[1], "corrupt") == 0) return run_corrupt();
  fputs("usage: heap_test random SEED OPS | nomem | corrupt\n", stderr);
  return 2;
}
