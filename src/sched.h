/*
** sched.h - the per-loop timer scheduler, shared by sched.c, batch.c and host.c.
*/
#ifndef TXAIO_SCHED_H
#define TXAIO_SCHED_H

#include "heap.h"
#include "internal.h"

#define TXAIO_SCHEDULER_MT "txaio.Scheduler"
#define TXAIO_TIMER_MT     "txaio.Timer"

/* Scheduler user values: the clock and wake-up (all a backend supplies), the ROOTS table that
** keeps pending timers alive, and the Timer metatable (cheaper to reach here than by name). */
enum SchedSlot { SS_NOW = 1, SS_WAKE, SS_ROOTS, SS_TIMER_MT, SS_NSLOTS = SS_TIMER_MT };

typedef struct Scheduler {
  unsigned int tag;  /* TXAIO_KIND_SCHEDULER keyed by its address: see txaio__toscheduler */
  Heap heap;
  uint64_t seq;      /* tie-breaker: equal deadlines fire in scheduling order */
  double last_now;   /* the clock never appears to go backwards */
  double armed;      /* deadline the backend was last asked to wake us for; HUGE_VAL if none */
  int firing;
  int waking;        /* a wake-up is running: a tick from inside it is refused */
  int closed;        /* finalized (sched_gc ran): a finalizer that outlived it must not use it */
  int lua_now;       /* SS_NOW holds a Lua clock; without one, the monotonic clock (saves a lookup
                        in every call_later) */
  size_t live;       /* pending timers; the heap's other entries are tombstones of cancelled ones */
  /* ROOTS slots (a pending timer's ref): the highest in use so far, and the first free one (0:
     none); each free slot holds the number of the next, as luaL_ref's list does, but with the head
     here instead of in t[0]. dead[ref] is 1 for a cancelled timer whose heap entry is still there
     (a tombstone; its slot holds false): a byte array in C, so that sweeping the tombstones out of
     the heap reads no Lua table. */
  uint32_t roots_top, roots_free;
  unsigned char *dead;
  size_t dead_cap;
  /* slots freed by sweeping tombstones out (see sweep), taken before the free list's */
  uint32_t *swept;
  size_t nswept, swept_cap;
  RunQueue *rq;      /* this Lua state's run queue, through which timer callbacks are counted */
  /* clock and wake-up supplied from C by an embedder (txaio.h); NULL when Lua supplies them */
  double (*c_now)(void *ud);
  void (*c_wake)(void *ud, double delay);
  void (*c_free)(void *ud);
  void *c_ud;
} Scheduler;

Scheduler *txaio__toscheduler(lua_State *L, int idx);   /* NULL when idx holds no scheduler */
Scheduler *txaio__checkscheduler(lua_State *L, int idx);
double txaio__sched_now(lua_State *L, int sidx);
double txaio__checkdelay(lua_State *L, int arg);
/* A timer keeps its callback's arguments as user values of one userdata, whose count Lua 5.4
** keeps in 16 bits; and firing it pushes them all. The same limit on every Lua version. */
#define TXAIO_MAXARGS 10000
/* raises unless nargs (from stack index firstarg on) is at most TXAIO_MAXARGS */
void txaio__checknargs(lua_State *L, int firstarg, int nargs);
/* reports "stack overflow" for a callback whose arguments do not fit, instead of raising */
void txaio__report_nostack(lua_State *L, const char *what);
/* [-0, +1, e] schedules the value at fnidx (a callable, a Future or a bucket) with nargs args */
void txaio__sched_add(lua_State *L, int sidx, double due, int fnidx, int firstarg, int nargs);
int txaio__timer_cancel(lua_State *L, int tidx);
/* [-0, +1, e] pushes the scheduler bound to the API closure's upvalue, or raises "no loop" */
int txaio__bound_scheduler(lua_State *L);
/* [-0, +1] the seconds until the next pending timer is due, or nil (sidx: the scheduler) */
void txaio__push_next_timeout(lua_State *L, int sidx, double now);
double txaio__sched_tick(lua_State *L, int sidx);
Scheduler *txaio__newscheduler(lua_State *L);
void txaio__opensched(lua_State *L);

/* batch.c */
int txaio__isbucket(lua_State *L, int idx);
void txaio__bucket_fire(lua_State *L, int bidx, int sidx, double now);
int txaio__batch_make(lua_State *L);
void txaio__openbatch(lua_State *L);

#endif
