/*
** heap_test.c - src/heap.c on its own, against a brute-force model, for spec/heap_spec.lua.
** Built with -DTXAIO_DEBUG, so the heap also verifies its whole order after every change.
**
**   heap_test random SEED OPS   random pushes (few distinct deadlines, so many ties), tombstones
**                               of random live entries, sweeps of the tombstones (filter) and
**                               pops; every pop must be the model's minimum by (due, seq), and a
**                               sweep must drop exactly the tombstones. Prints "ok ..." and exits
**                               0, or names the first difference and exits 1.
**   heap_test nomem             a failing allocator: reserve returns 0 and leaves the heap as it was.
**   heap_test corrupt           breaks the order behind the heap's back, then pushes: the debug
**                               check must abort with "timer heap order broken".
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"

#define MAXNODES 4096

/* A model timer, named by its index (the entry's ref): 'queued' while its entry is in the heap,
   'dead' once the owner gave up on it there (sched.c's tombstones). */
typedef struct Model {
  double due;
  uint64_t seq;
  int queued, dead;
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

/* the model's minimum among the entries still in the heap, tombstones included */
static Model *model_min(void) {
  Model *best = NULL;
  int i;
  for (i = 0; i < MAXNODES; i++) {
    Model *m = &nodes[i];
    if (!m->queued) continue;
    if (!best || m->due < best->due || (m->due == best->due && m->seq < best->seq)) best = m;
  }
  return best;
}

static long filtered;
static int keep_alive(void *ctx, uint32_t ref) {
  (void)ctx;
  if (!nodes[ref].dead) return 1;
  nodes[ref].queued = nodes[ref].dead = 0;
  filtered++;
  return 0;
}

/* pops the minimum, which must be the model's */
static int pop_checked(Heap *h, long op) {
  Model *want = model_min();
  const HeapEntry *got = txaio__heap_min(h);
  if (got->due != want->due || got->seq != want->seq || &nodes[got->ref] != want) {
    printf("op %ld: the minimum is node %u (due %g), the model's node %ld (due %g)\n", op,
           (unsigned)got->ref, got->due, (long)(want - nodes), want->due);
    return 1;
  }
  txaio__heap_pop(h);
  want->queued = want->dead = 0;
  return 0;
}

static int run_random(unsigned long long seed, long ops) {
  Heap h;
  uint64_t seq = 0;
  long op, pushes = 0, kills = 0, filters = 0, pops = 0;
  int qlist[MAXNODES], qpos[MAXNODES];   /* the live queued nodes, to pick one to kill */
  size_t live = 0, queued = 0, peak = 0;
  txaio__heap_init(&h);
  rng_state = seed ? seed : 1;
  filtered = 0;
  for (op = 0; op < ops; op++) {
    unsigned long long r = rng();
    /* 16 in 32 push, 8 kill (make a tombstone), 1 filter, 7 pop: the heap fills up to MAXNODES */
    int kind = (int)((r >> 32) % 32);
    if (kind < 16 && queued < MAXNODES) {
      int id = (int)(r % MAXNODES);
      while (nodes[id].queued) id = (id + 1) % MAXNODES;
      if (!txaio__heap_reserve(&h, test_alloc, NULL)) { puts("reserve failed"); return 1; }
      nodes[id].due = (double)((r >> 40) % 64);   /* few distinct deadlines: many ties */
      nodes[id].seq = seq++;
      nodes[id].queued = 1;
      txaio__heap_push(&h, nodes[id].due, nodes[id].seq, (uint32_t)id);
      qpos[id] = (int)live;
      qlist[live++] = id;
      queued++;
      if (queued > peak) peak = queued;
      pushes++;
    } else if (kind < 24 && live > 0) {
      int at = (int)((r >> 8) % live), id = qlist[at];
      nodes[id].dead = 1;
      qlist[at] = qlist[--live];
      qpos[qlist[at]] = at;
      kills++;
    } else if (kind < 25) {
      long before = filtered;
      txaio__heap_filter(&h, keep_alive, NULL);
      queued -= (size_t)(filtered - before);
      filters++;
    } else if (queued > 0) {
      int id = (int)txaio__heap_min(&h)->ref;
      int was_dead = nodes[id].dead;
      if (pop_checked(&h, op)) return 1;
      queued--;
      if (!was_dead) {
        int at = qpos[id];
        qlist[at] = qlist[--live];
        qpos[qlist[at]] = at;
      }
      pops++;
    }
    if (h.count != queued) {
      printf("op %ld: the heap holds %zu entries, the model %zu\n", op, h.count, queued);
      return 1;
    }
  }
  while (h.count) {   /* drain: everything left comes out in order */
    if (pop_checked(&h, op)) { puts("drain: out of order"); return 1; }
    pops++;
  }
  txaio__heap_free(&h, test_alloc, NULL);
  printf("ok seed=%llu ops=%ld pushes=%ld kills=%ld filters=%ld filtered=%ld pops=%ld peak=%zu\n",
         seed, ops, pushes, kills, filters, filtered, pops, peak);
  return 0;
}

static int run_nomem(void) {
  Heap h;
  int i;
  txaio__heap_init(&h);
  for (i = 0; i < 16; i++) {   /* fills the first allocation exactly */
    if (!txaio__heap_reserve(&h, test_alloc, NULL)) { puts("first reserve failed"); return 1; }
    txaio__heap_push(&h, (double)(16 - i), (uint64_t)i, (uint32_t)i);
  }
  fail_alloc = 1;
  if (txaio__heap_reserve(&h, test_alloc, NULL)) { puts("reserve succeeded without memory"); return 1; }
  if (h.count != 16 || h.capacity != 16) { puts("a failed reserve changed the heap"); return 1; }
  fail_alloc = 0;
  for (i = 15; i >= 0; i--) {
    if (txaio__heap_min(&h)->ref != (uint32_t)i) { puts("order broken after a failed reserve"); return 1; }
    txaio__heap_pop(&h);
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
    txaio__heap_push(&h, (double)i, (uint64_t)i, (uint32_t)i);
  }
  h.items[0].due = 1e9;   /* the root now orders after its children */
  txaio__heap_reserve(&h, test_alloc, NULL);
  txaio__heap_push(&h, 100.0, 8, 8);   /* must abort here */
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
