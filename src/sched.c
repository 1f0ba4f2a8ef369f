/*
** sched.c - every timer of a loop lives in one heap here; a backend only supplies a clock and a
** wake-up ("call tick() in about this many seconds"). luv therefore needs a single uv_timer and a
** host loop a single wake-up, however many timers are pending.
**
** Firing is two-phase in effect: a tick runs only timers that were scheduled before it started
** (seq < limit), so a callback re-arming itself with delay 0 runs on the next tick, never in a loop.
** A pending timer is rooted in the scheduler's ROOTS table (at its ref, see slot_take) and nowhere
** else: once it fires or is cancelled, nothing of ours pins it or its callback.
**
** The heap holds (deadline, sequence, ref) values, not the timers. Cancelling therefore leaves the
** timer's entry behind as a tombstone (its slot is marked dead; the handle is unrooted at once)
** instead of searching for it and re-sifting: a cancel costs no cache miss in a large heap. The
** tombstones go when something reads the minimum (a tick, the next deadline) and finds them on
** top, when no timer is pending any more, or in one sweep once they outnumber the pending timers:
** the heap never holds more than about twice the pending timers, plus 64.
**
** A timer points at its scheduler with a plain C pointer rather than a user value (16 bytes less
** per pending timer, which is most of what a timer costs): a user's handle therefore does not keep
** the scheduler alive, and a scheduler that is collected first marks its timers done (sched_gc).
** Cancel finds the scheduler's Lua value again through a weak registry table (SCHEDULERS).
*/
#include <math.h>
#include <string.h>
#include <time.h>

#include "sched.h"

typedef struct Timer {
  unsigned int tag;   /* TXAIO_KIND_TIMER keyed by its address: see checktimer */
  uint32_t ref;       /* its slot in ROOTS while pending, 0 once done */
  Scheduler *sched;   /* NULL once the timer is done or its scheduler is gone */
} Timer;

/* Timer user values: the callable, then the arguments (as many as the timer has user values). */
enum TimerSlot { TS_FN = 1, TS_ARGS };

/* Registry key of the weak-valued table Scheduler* (light userdata) -> scheduler userdata; its
   slot 1 is the last scheduler a cancel looked up (push_scheduler) */
static const char SCHEDULERS = 0;

static const char BINDING_NOLOOP[] =
  "txaio: no event loop selected; call txaio.use_luv() or txaio.use_host(adapter) first";

/* mixed with a scheduler's address into its tag, as futures do (see future.c): cheaper than a
   metatable check on the way of every call_later, and no other userdata passes it by accident */
#define TXAIO_KIND_SCHEDULER 0x74786c70u   /* "txlp" */
#define TXAIO_KIND_TIMER     0x7478746du   /* "txtm" */

Scheduler *txaio__toscheduler(lua_State *L, int idx) {
  return (Scheduler *)txaio__totagged(L, idx, sizeof(Scheduler), TXAIO_KIND_SCHEDULER);
}

Scheduler *txaio__checkscheduler(lua_State *L, int idx) {
  Scheduler *s = txaio__toscheduler(L, idx);
  if (txaio_unlikely(s == NULL)) txaio__udataerror(L, idx, TXAIO_SCHEDULER_MT);
  return s;
}

static double monotonic_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Re-raises an error from the backend's clock or wake-up with the function's name in front. */
static int adapter_error(lua_State *L, const char *fname) {
  const char *why = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1);
  return luaL_error(L, "txaio: the loop's %s() raised an error: %s", fname, why);
}

double txaio__sched_now(lua_State *L, int sidx) {
  Scheduler *s = (Scheduler *)lua_touserdata(L, sidx);
  double t;
  /* Every use of a scheduler reads its clock first. Objects die together, and finalizers run
     newest first: another object's finalizer may still reach a loop whose own one has released
     the host's data (txaio_Free) and the heap. */
  if (txaio_unlikely(s->closed))
    luaL_error(L, "txaio: this loop was garbage-collected; it cannot schedule or tick any more");
  if (s->c_now) {
    t = s->c_now(s->c_ud);
  } else if (!s->lua_now) {
    t = monotonic_seconds();
  } else {
    lua_getiuservalue(L, sidx, SS_NOW);
    if (txaio_unlikely(lua_pcall(L, 0, 1, 0) != LUA_OK)) adapter_error(L, "now");
    if (txaio_unlikely(lua_type(L, -1) != LUA_TNUMBER))
      luaL_error(L, "txaio: the loop clock now() returned %s, expected a number of seconds",
                 luaL_typename(L, -1));
    t = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  /* NaN would compare false everywhere and make every timer due; an infinite clock makes every
     deadline infinite, so the host is never woken again (or asked to wait inf - inf): refuse both */
  if (txaio_unlikely(!isfinite(t)))
    luaL_error(L, "txaio: the loop clock now() returned %s, expected a number of seconds",
               isnan(t) ? "NaN" : t > 0 ? "inf" : "-inf");
  if (txaio_unlikely(t < s->last_now)) t = s->last_now;   /* a host clock that went backwards */
  s->last_now = t;
  return t;
}

double txaio__checkdelay(lua_State *L, int arg) {
  double d;
  if (lua_type(L, arg) != LUA_TNUMBER) luaL_typeerror(L, arg, "number");
  d = lua_tonumber(L, arg);
  if (isnan(d) || isinf(d))
    luaL_argerror(L, arg, lua_pushfstring(L, "finite delay expected, got %s",
                                          isnan(d) ? "nan" : d > 0 ? "inf" : "-inf"));
  return d > 0 ? d : 0;
}

void txaio__checknargs(lua_State *L, int firstarg, int nargs) {
  if (txaio_unlikely(nargs > TXAIO_MAXARGS))
    luaL_argerror(L, firstarg + TXAIO_MAXARGS, lua_pushfstring(L, "too many arguments for the "
                  "callback (at most %d)", TXAIO_MAXARGS));
}

/*
** A callback whose arguments do not fit on the stack of whoever ticks is reported like a callback
** that raised, and the tick goes on: raising from the middle of a tick would leave the rest of
** the due timers (or a bucket's calls) unrun until something schedules again.
*/
void txaio__report_nostack(lua_State *L, const char *what) {
  /* making the failure and calling the reporter take a dozen slots; without them (the stack is
     full to the last slot) the report is dropped rather than the tick */
  if (!lua_checkstack(L, 16)) return;
  lua_pushfstring(L, "stack overflow (no room for the arguments of a %s)", what);
  txaio__pushfailure(L, -1, 0);
  txaio__report(L, "callback", -1);
  lua_pop(L, 2);
}

/*
** Asks the backend to call tick() after 'delay' seconds, or tells it nothing is pending (< 0).
** Returns 0 when the wake-up raised, leaving the error on the stack for the caller to undo and
** re-raise; 1 otherwise.
*/
static int call_wake(lua_State *L, int sidx, Scheduler *s, double delay) {
  int ok, waking = s->waking;
  if (s->c_wake) {
    /* txaio.h forbids a tick from inside: refused all the same, as from Lua */
    s->waking = 1;
    s->c_wake(s->c_ud, delay);
    s->waking = waking;
    return 1;
  }
  if (lua_getiuservalue(L, sidx, SS_WAKE) == LUA_TNIL) {
    lua_pop(L, 1);
    return 1;
  }
  if (delay >= 0) lua_pushnumber(L, delay);
  else lua_pushnil(L);
  /* wake() may schedule, and so call wake() again: only the outermost one ends the waking */
  s->waking = 1;
  ok = lua_pcall(L, 1, 0, 0) == LUA_OK;
  s->waking = waking;
  return ok;
}

static void timer_kill(lua_State *L, int tidx, Timer *t, int sidx);

/* Lua tables never shrink: once a burst of timers is over, start the bookkeeping afresh. */
#define SHRINK_ABOVE 1024

/* Room for one more timer: a heap entry, and a tombstone flag if no slot is free. 0 when out of
   memory. */
static int sched_reserve(lua_State *L, Scheduler *s) {
  void *ud;
  lua_Alloc alloc = lua_getallocf(L, &ud);
  if (!txaio__heap_reserve(&s->heap, alloc, ud)) return 0;
  if (s->nswept == 0 && s->roots_free == 0 && (size_t)s->roots_top + 1 >= s->dead_cap) {
    size_t ncap = s->dead_cap ? s->dead_cap * 2 : 16;
    void *p;
    if (s->roots_top >= UINT32_MAX - 1) return 0;
    p = alloc(ud, s->dead, s->dead_cap, ncap);
    if (!p) return 0;
    memset((unsigned char *)p + s->dead_cap, 0, ncap - s->dead_cap);
    s->dead = (unsigned char *)p;
    s->dead_cap = ncap;
  }
  return 1;
}

/* [-1, +0] stores the value on top in ROOTS (at rootsidx); returns its slot. luaL_ref would do,
   at several times the cost: it keeps its free list's head in the table and measures its length. */
static uint32_t slot_take(lua_State *L, Scheduler *s, int rootsidx) {
  uint32_t ref = s->roots_free;
  if (s->nswept) {
    ref = s->swept[--s->nswept];   /* its key is in ROOTS, holding false */
  } else if (ref) {
    lua_rawgeti(L, rootsidx, ref);
    s->roots_free = (uint32_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
  } else {
    ref = ++s->roots_top;
  }
  lua_rawseti(L, rootsidx, ref);
  return ref;
}

/* Puts a slot on the free list, whose links live in the free slots themselves. The slot's key is
   in ROOTS already (a tombstone's holds false), so this never allocates. */
static void slot_free(lua_State *L, Scheduler *s, int rootsidx, uint32_t ref) {
  lua_pushinteger(L, (lua_Integer)s->roots_free);
  lua_rawseti(L, rootsidx, ref);
  s->roots_free = ref;
}

/* txaio__heap_filter's predicate: keeps the pending timers, and stacks the slots of the
   tombstones for slot_take in C: putting them on ROOTS' free list would write to the table at
   random, a cache miss apiece */
static int keep_live(void *ctx, uint32_t ref) {
  Scheduler *s = (Scheduler *)ctx;
  if (!s->dead[ref]) return 1;
  s->dead[ref] = 0;
  s->swept[s->nswept++] = ref;
  return 0;
}

/* Sweeps the tombstones out of the heap, when there is room to stack their slots (the predicate
   must not allocate: a failure half-way would leave the heap half-filtered). */
static void sweep(lua_State *L, Scheduler *s) {
  size_t need = s->nswept + (s->heap.count - s->live);
  if (need > s->swept_cap) {
    void *ud;
    lua_Alloc alloc = lua_getallocf(L, &ud);
    size_t ncap = s->swept_cap * 2 > need ? s->swept_cap * 2 : need;
    void *p = alloc(ud, s->swept, s->swept_cap * sizeof *s->swept, ncap * sizeof *s->swept);
    if (!p) return;   /* the tombstones stay, harmless: the next cancel tries again */
    s->swept = (uint32_t *)p;
    s->swept_cap = ncap;
  }
  txaio__heap_filter(&s->heap, keep_live, s);
}

/* Drops the tombstones at the top of the heap: whatever reads its minimum calls this first.
   Cancel does not: popping is a sift, and cancelling in creation order would pop most of them.
   rootsidx: where the ROOTS table is, or 0 to fetch it. */
static void prune_top(lua_State *L, Scheduler *s, int sidx, int rootsidx) {
  int fetched = !rootsidx;
  /* without tombstones, no need to read the top's flag: one cache miss less a timer fired */
  if (s->heap.count == s->live || !s->dead[txaio__heap_min(&s->heap)->ref]) return;
  if (fetched) {
    lua_getiuservalue(L, sidx, SS_ROOTS);
    rootsidx = lua_gettop(L);
  }
  while (s->heap.count > s->live && s->dead[txaio__heap_min(&s->heap)->ref]) {
    uint32_t ref = txaio__heap_min(&s->heap)->ref;
    s->dead[ref] = 0;
    slot_free(L, s, rootsidx, ref);
    txaio__heap_pop(&s->heap);
  }
  if (fetched) lua_pop(L, 1);
}

/* Gives back the heap, the tombstone flags and the swept-slot stack; the scheduler stays usable,
   each array growing again from nothing on the next push. */
static void sched_free_arrays(lua_State *L, Scheduler *s) {
  void *ud;
  lua_Alloc alloc = lua_getallocf(L, &ud);
  txaio__heap_free(&s->heap, alloc, ud);
  if (s->dead) alloc(ud, s->dead, s->dead_cap, 0);
  s->dead = NULL;
  s->dead_cap = 0;
  if (s->swept) alloc(ud, s->swept, s->swept_cap * sizeof *s->swept, 0);
  s->swept = NULL;
  s->swept_cap = s->nswept = 0;
}

/*
** After a timer stopped being pending (s->live went down): when none is left, the heap's remaining
** entries are all tombstones and every slot is free, so both start afresh at little cost; when the
** tombstones outnumber the pending timers, one linear sweep drops them all, so each cancel pays
** for about two entries of a sweep instead of a sift through the heap.
*/
static void sched_tidy(lua_State *L, Scheduler *s, int sidx) {
  if (s->live == 0) {
    if (s->heap.count) memset(s->dead, 0, (size_t)s->roots_top + 1);
    s->heap.count = 0;
    s->roots_top = s->roots_free = 0;
    s->nswept = 0;
    if (s->heap.capacity > SHRINK_ABOVE) {
      /* the new table first: making it may run a finalizer that schedules on this loop, and that
         timer must find the heap, flags and ROOTS it was put in still there */
      lua_newtable(L);
      if (s->live == 0) {
        sched_free_arrays(L, s);
        s->roots_top = s->roots_free = 0;
        lua_setiuservalue(L, sidx, SS_ROOTS);
      } else {
        lua_pop(L, 1);
      }
    }
  } else if (s->heap.count - s->live > s->live + 64) {
    sweep(L, s);
  }
}

void txaio__sched_add(lua_State *L, int sidx, double due, int fnidx, int firstarg, int nargs) {
  Scheduler *s = (Scheduler *)lua_touserdata(L, sidx);
  Timer *t;
  uint32_t ref;
  int i;
  sidx = lua_absindex(L, sidx);
  t = (Timer *)lua_newuserdatauv(L, sizeof(Timer), TS_ARGS - 1 + nargs);
  t->tag = txaio__tag(t, TXAIO_KIND_TIMER);
  t->ref = 0;
  t->sched = NULL;
  lua_getiuservalue(L, sidx, SS_TIMER_MT);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, fnidx);
  lua_setiuservalue(L, -2, TS_FN);
  for (i = 0; i < nargs; i++) {
    lua_pushvalue(L, firstarg + i);
    lua_setiuservalue(L, -2, TS_ARGS + i);
  }
  lua_getiuservalue(L, sidx, SS_ROOTS);
  /* room only now: the allocations above may run finalizers, and one that schedules on this loop
     too would take what was reserved before them */
  if (!sched_reserve(L, s)) luaL_error(L, "not enough memory");
  lua_pushvalue(L, -2);
  ref = slot_take(L, s, lua_gettop(L) - 1);
  lua_pop(L, 1);
  t->ref = ref;
  t->sched = s;
  s->live++;
  txaio__heap_push(&s->heap, due, s->seq++, ref);
  if (!s->firing && due < s->armed) {
    double armed = s->armed;
    s->armed = due;
    if (!call_wake(L, sidx, s, due - s->last_now)) {
      /* undo: a call_later that raises must not leave a timer behind. Nothing can have fired or
         cancelled it meanwhile (no tick runs inside wake(), and nobody else holds it yet); the
         check keeps a broken invariant from corrupting the heap. */
      lua_insert(L, -2);
      if (t->sched != NULL) timer_kill(L, lua_gettop(L), t, sidx);
      s->armed = armed;
      lua_pop(L, 1);
      adapter_error(L, "wake");
    }
  }
}

/*
** Marks a pending timer done and unroots it; its user values (the callback and its arguments) stay
** for the caller to read. 'dead': it was cancelled, and its heap entry, still there, becomes a
** tombstone; else its entry has left the heap already. rootsidx: where the scheduler's ROOTS table
** is, or 0 to fetch it.
*/
static void timer_detach(lua_State *L, Timer *t, int sidx, int rootsidx, int dead) {
  Scheduler *s = t->sched;
  uint32_t ref = t->ref;
  int fetched = !rootsidx;
  if (fetched) {
    lua_getiuservalue(L, sidx, SS_ROOTS);
    rootsidx = lua_gettop(L);
  }
  if (dead) {
    /* false, not nil: the key stays in ROOTS, so freeing the slot later cannot allocate */
    lua_pushboolean(L, 0);
    lua_rawseti(L, rootsidx, ref);
    s->dead[ref] = 1;
  } else {
    slot_free(L, s, rootsidx, ref);
  }
  t->ref = 0;
  t->sched = NULL;
  s->live--;
  sched_tidy(L, s, sidx);
  if (fetched) lua_pop(L, 1);
}

/* Cancels a pending timer and drops everything it holds, so a handle kept by the user pins
   nothing. */
static void timer_kill(lua_State *L, int tidx, Timer *t, int sidx) {
  timer_detach(L, t, sidx, 0, 1);
  txaio_clearuservalues(L, tidx);
}

/*
** timer_kill for a loop that is being collected. Weak values go before finalizers run, so another
** object's finalizer can reach a pending timer (and even tick its loop) after the loop's entry in
** SCHEDULERS is gone and before the loop's own finalizer, sched_gc, has run. Until then the
** scheduler is intact (sched_gc clears t->sched of every pending timer, so t->sched still set says
** it has not run), but its Lua value, and so ROOTS, is out of reach: the timer becomes a tombstone
** in C alone, its slot holding the emptied handle instead of false until the slot is freed, which
** never reads it. Nobody is woken: the loop is about to close.
*/
static void timer_kill_unreachable(lua_State *L, int tidx, Timer *t) {
  Scheduler *s = t->sched;
  s->dead[t->ref] = 1;
  s->live--;
  t->ref = 0;
  t->sched = NULL;
  txaio_clearuservalues(L, tidx);
}

/*
** Pushes the scheduler whose address is s, found in the SCHEDULERS table at mapidx, or nil while
** it is being collected. Slot 1 of that table keeps the last one found, as weakly as the rest: a
** program with one loop then finds it with an array read, where hashing the pointer took about
** 160 instructions of every cancel.
*/
static void push_scheduler(lua_State *L, int mapidx, const Scheduler *s) {
  lua_rawgeti(L, mapidx, 1);
  if (txaio_likely(lua_touserdata(L, -1) == s)) return;
  lua_pop(L, 1);
  lua_rawgetp(L, mapidx, s);
  if (lua_touserdata(L, -1) == s) {
    lua_pushvalue(L, -1);
    lua_rawseti(L, mapidx, 1);
  }
}

/* mapidx: where the SCHEDULERS table is (an upvalue of the hot callers), or 0 to look it up */
static int timer_cancel(lua_State *L, int tidx, int mapidx) {
  Timer *t = (Timer *)lua_touserdata(L, tidx);
  Scheduler *s = t->sched;
  int sidx;
  if (s == NULL) return 0;
  tidx = lua_absindex(L, tidx);
  if (mapidx) {
    push_scheduler(L, mapidx, s);
  } else {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHEDULERS);
    push_scheduler(L, lua_gettop(L), s);
    lua_remove(L, -2);
  }
  sidx = lua_gettop(L);
  /* a timer the core made, pending on this scheduler, owns a live slot; the check keeps a broken
     invariant from corrupting another timer's slot */
  if (t->ref == 0 || t->ref > s->roots_top || s->dead[t->ref]) {
    lua_pop(L, 1);
    return 0;
  }
  if (txaio_unlikely(lua_touserdata(L, sidx) != s)) {
    lua_pop(L, 1);
    timer_kill_unreachable(L, tidx, t);
    return 1;
  }
  timer_kill(L, tidx, t, sidx);
  if (!s->firing && s->live == 0) {
    s->armed = HUGE_VAL;
    if (!call_wake(L, sidx, s, -1)) adapter_error(L, "wake");   /* the cancel itself is done */
  }
  lua_pop(L, 1);
  return 1;
}

int txaio__timer_cancel(lua_State *L, int tidx) {
  return timer_cancel(L, tidx, 0);
}

/* Gives up on the timer at tidx (the top when it was fetched): its arguments do not fit. */
static void fire_nostack(lua_State *L, int tidx) {
  lua_settop(L, tidx);
  txaio_clearuservalues(L, tidx);
  txaio__report_nostack(L, "timer callback");
}

/* Runs one due timer (on the stack at tidx); its errors go to the reporter, never upwards. */
static void timer_fire(lua_State *L, int tidx, int sidx, int rootsidx, int msgh, double now) {
  Timer *t = (Timer *)lua_touserdata(L, tidx);
  RunQueue *rq = t->sched->rq;
  int fn, nargs;
  /* done first: an error below (no room on the stack, no memory) then leaves a timer that did
     not run, never one that is out of the heap yet still looks pending */
  timer_detach(L, t, sidx, rootsidx, 0);
  /* the callable, then the arguments, as many as call_later got: on the stack of whoever ticks,
     which may be a coroutine's small one */
  if (txaio_unlikely(!lua_checkstack(L, 8))) {
    fire_nostack(L, tidx);
    return;
  }
  lua_getiuservalue(L, tidx, TS_FN);
  fn = lua_gettop(L);
  if (TXAIO_UV_ENDS_IN_TNONE) {   /* fetch until TNONE instead of counting first */
    for (nargs = 0; lua_getiuservalue(L, tidx, TS_ARGS + nargs) != LUA_TNONE; nargs++)
      if (txaio_unlikely(!lua_checkstack(L, 8))) {
        fire_nostack(L, tidx);
        return;
      }
    lua_pop(L, 1);
  } else {
    int i;
    nargs = txaio_nuvalue(L, tidx) - TS_FN;
    if (txaio_unlikely(!lua_checkstack(L, nargs + 8))) {
      fire_nostack(L, tidx);
      return;
    }
    for (i = 0; i < nargs; i++) lua_getiuservalue(L, tidx, TS_ARGS + i);
  }
  txaio_clearuservalues(L, tidx);
  if (lua_type(L, fn) == LUA_TUSERDATA) {
    Future *f = txaio__tofuture(L, fn);
    if (f) {                                     /* sleep() */
      if (f->state == FUT_PENDING) {
        lua_pushnil(L);
        txaio__settle(L, fn, FUT_RESOLVED, lua_gettop(L));
        txaio__drain(L);
      }
      lua_settop(L, fn - 1);
      return;
    }
    if (txaio__isbucket(L, fn)) {                /* a batched timer's bucket */
      txaio__bucket_fire(L, fn, sidx, now);
      lua_settop(L, fn - 1);
      return;
    }
  }
  if (txaio__pcallbackq(L, rq, nargs, msgh) != LUA_OK) txaio__report(L, "callback", -1);
  lua_settop(L, fn - 1);
}

void txaio__push_next_timeout(lua_State *L, int sidx, double now) {
  Scheduler *s = (Scheduler *)lua_touserdata(L, sidx);
  prune_top(L, s, sidx, 0);
  if (s->heap.count) {
    double due = txaio__heap_min(&s->heap)->due;
    lua_pushnumber(L, due > now ? due - now : 0);
  } else {
    lua_pushnil(L);
  }
}

/*
** fire_due(scheduler, now, limit): the body of a tick, under lua_pcall. Callbacks cannot raise
** out of it (each runs under its own), but running out of stack or memory can, and the tick must
** then still end: 'firing' cleared, the rest of the timers armed.
*/
static int fire_due(lua_State *L) {
  Scheduler *s = (Scheduler *)lua_touserdata(L, 1);
  double now = lua_tonumber(L, 2);
  uint64_t limit = (uint64_t)lua_tointeger(L, 3);
  int msgh, roots;
  txaio__pushmsgh(L);
  msgh = lua_gettop(L);
  /* ROOTS once for the whole tick. timer_detach replaces it only when the heap has emptied, and
     then every timer this tick may fire (seq < limit) is gone: no timer is read from the stale
     table. prune_top may still free into it the slots of timers that a callback scheduled and
     cancelled after that: those few slots are lost until the loop next has nothing pending. */
  lua_getiuservalue(L, 1, SS_ROOTS);
  roots = lua_gettop(L);
  for (;;) {
    uint32_t ref;
    prune_top(L, s, 1, roots);
    if (!s->heap.count || txaio__heap_min(&s->heap)->due > now
        || txaio__heap_min(&s->heap)->seq >= limit) break;
    ref = txaio__heap_min(&s->heap)->ref;
    txaio__heap_pop(&s->heap);
    lua_rawgeti(L, roots, ref);
    timer_fire(L, lua_gettop(L), 1, roots, msgh, now);
    lua_pop(L, 1);
  }
  return 0;
}

/* Asks the backend to wake us for the earliest timer left, or tells it none is; 0 if it raised. */
static int rearm(lua_State *L, int sidx, Scheduler *s) {
  double due;
  prune_top(L, s, sidx, 0);
  if (!s->heap.count) return call_wake(L, sidx, s, -1);
  due = txaio__heap_min(&s->heap)->due;
  s->armed = due;
  if (call_wake(L, sidx, s, due > s->last_now ? due - s->last_now : 0)) return 1;
  s->armed = HUGE_VAL;   /* not armed after all: the next call_later asks again */
  return 0;
}

static const char FIRE_DUE_KEY = 0;   /* where Lua 5.1 and LuaJIT keep fire_due's closure */

/* Runs every timer due now that was scheduled before this tick began; returns the clock used. */
double txaio__sched_tick(lua_State *L, int sidx) {
  Scheduler *s = (Scheduler *)lua_touserdata(L, sidx);
  double now;
  int status;
  sidx = lua_absindex(L, sidx);
  /* The caller of wake() is half-way through (call_later has pushed its timer but would undo it
     if wake() raised; bt:call_later has not filled the new bucket yet): running timers now would
     corrupt the heap or lose the call. txaio.h already forbids it from C. */
  if (txaio_unlikely(s->waking))
    luaL_error(L, "txaio: tick() called from inside the loop's wake(); call run() later, from the "
               "host's own loop");
  now = txaio__sched_now(L, sidx);
  if (s->firing) return now;   /* tick() from inside a timer callback: the outer tick goes on */
  s->firing = 1;
  s->armed = HUGE_VAL;
  txaio_pushcfunction_cached(L, fire_due, &FIRE_DUE_KEY);
  lua_pushvalue(L, sidx);
  lua_pushnumber(L, now);
  lua_pushinteger(L, (lua_Integer)s->seq);   /* only timers scheduled before now run */
  status = lua_pcall(L, 3, 0, 0);
  s->firing = 0;
  if (txaio_unlikely(status != LUA_OK)) {
    if (!rearm(L, sidx, s)) lua_pop(L, 1);   /* the tick's own error is the one to raise */
    lua_error(L);
  }
  txaio__drain(L);   /* also reports failures the finalizers queued meanwhile */
  if (!rearm(L, sidx, s)) adapter_error(L, "wake");
  return s->last_now;
}

/* ------------------------------------------------------------------ API bound to a loop */

/* The binding (upvalue 1 of every bound function) is a table only core.bind's setter writes, and
   only with a scheduler: what it holds needs no check on the way of every call_later. */
int txaio__bound_scheduler(lua_State *L) {
  if (lua_rawgeti(L, lua_upvalueindex(1), 1) == LUA_TNIL) {
    lua_pushstring(L, BINDING_NOLOOP);
    return lua_error(L);
  }
  return lua_gettop(L);
}

static int schedule_call(lua_State *L, int sidx, int darg) {
  int nargs = lua_gettop(L) - darg - 1;
  double delay = txaio__checkdelay(L, darg);
  txaio__checkcallable(L, darg + 1, 0);
  txaio__checknargs(L, darg + 2, nargs);
  if (sidx == 0) sidx = txaio__bound_scheduler(L);
  txaio__sched_add(L, sidx, txaio__sched_now(L, sidx) + delay, darg + 1, darg + 2, nargs);
  return 1;
}

static int api_call_later(lua_State *L) {
  return schedule_call(L, 0, 1);
}

/* sleep()'s canceller: upvalues are the timer and the SCHEDULERS table */
static int timer_cancel_upvalue(lua_State *L) {
  timer_cancel(L, lua_upvalueindex(1), lua_upvalueindex(2));
  return 0;
}

static int api_sleep(lua_State *L) {
  double delay = txaio__checkdelay(L, 1);
  int sidx = txaio__bound_scheduler(L), fidx;
  Future *f = txaio__newcancellable(L);
  fidx = lua_gettop(L);
  txaio__sched_add(L, sidx, txaio__sched_now(L, sidx) + delay, fidx, 0, 0);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHEDULERS);
  lua_pushcclosure(L, timer_cancel_upvalue, 2);
  /* making the closure may run a finalizer that ticks the loop: a sleep(0) can be over already,
     and a settled future keeps no canceller */
  if (f->state == FUT_PENDING) txaio__setcanceller(L, fidx, f);
  lua_settop(L, fidx);
  return 1;
}

static int api_tick(lua_State *L) {
  int sidx = txaio__bound_scheduler(L);
  double now = txaio__sched_tick(L, sidx);
  txaio__push_next_timeout(L, sidx, now);
  return 1;
}

/* core.bind(): the loop-dependent API functions, reading the loop from binding[1]. */
static const luaL_Reg bound_funcs[] = {
  { "call_later", api_call_later },
  { "sleep", api_sleep },
  { "tick", api_tick },
  { NULL, NULL }
};

/* the setter core.bind returns: binding[1] = a scheduler, or nil for no loop */
static int bind_set(lua_State *L) {
  if (!lua_isnil(L, 1) && txaio__toscheduler(L, 1) == NULL)
    return luaL_typeerror(L, 1, "scheduler or nil");
  lua_settop(L, 1);
  lua_rawseti(L, lua_upvalueindex(1), 1);
  return 0;
}

static int core_bind(lua_State *L) {
  lua_newtable(L);                           /* the binding, seen only by these closures */
  lua_newtable(L);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, bound_funcs, 1);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, txaio__batch_make, 1);
  lua_setfield(L, -2, "make_batched_timer");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, bind_set, 1);
  return 2;
}

/* ------------------------------------------------------------------ Scheduler object */

Scheduler *txaio__newscheduler(lua_State *L) {
  Scheduler *s = (Scheduler *)lua_newuserdatauv(L, sizeof(Scheduler), SS_NSLOTS);
  memset(s, 0, sizeof *s);
  s->tag = txaio__tag(s, TXAIO_KIND_SCHEDULER);
  txaio__heap_init(&s->heap);
  s->last_now = -HUGE_VAL;
  s->armed = HUGE_VAL;
  s->rq = txaio__runqueue(L);
  luaL_setmetatable(L, TXAIO_SCHEDULER_MT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, SS_ROOTS);
  luaL_getmetatable(L, TXAIO_TIMER_MT);
  lua_setiuservalue(L, -2, SS_TIMER_MT);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHEDULERS);
  lua_pushvalue(L, -2);
  lua_rawsetp(L, -2, s);
  lua_pop(L, 1);
  return s;
}

static int sched_new(lua_State *L) {
  txaio__checkcallable(L, 1, 1);
  txaio__checkcallable(L, 2, 1);
  lua_settop(L, 2);
  txaio__newscheduler(L);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 3, SS_NOW);
  ((Scheduler *)lua_touserdata(L, 3))->lua_now = !lua_isnil(L, 1);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 3, SS_WAKE);
  return 1;
}

static int sched_m_now(lua_State *L) {
  txaio__checkscheduler(L, 1);
  lua_pushnumber(L, txaio__sched_now(L, 1));
  return 1;
}

static int sched_m_tick(lua_State *L) {
  double now;
  txaio__checkscheduler(L, 1);
  now = txaio__sched_tick(L, 1);
  txaio__push_next_timeout(L, 1, now);
  return 1;
}

/* core.is_scheduler(x): whether x is a scheduler the core made (what a loop object wraps) */
static int sched_is(lua_State *L) {
  lua_pushboolean(L, txaio__toscheduler(L, 1) != NULL);
  return 1;
}

static int sched_m_ticking(lua_State *L) {
  lua_pushboolean(L, txaio__checkscheduler(L, 1)->firing);
  return 1;
}

static int sched_m_pending(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)txaio__checkscheduler(L, 1)->live);
  return 1;
}

/* sched:entries(): the heap's entries, tombstones of cancelled timers included; for the specs
   that bound them, not part of the API */
static int sched_m_entries(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)txaio__checkscheduler(L, 1)->heap.count);
  return 1;
}

/* sched:c_bytes(): what the scheduler has allocated outside Lua's accounting (the heap, the
   tombstone flags, the swept slots); for the benchmarks' memory figure, not part of the API */
static int sched_m_c_bytes(lua_State *L) {
  Scheduler *s = txaio__checkscheduler(L, 1);
  lua_pushinteger(L, (lua_Integer)(s->heap.capacity * sizeof(HeapEntry) + s->dead_cap
                                   + s->swept_cap * sizeof *s->swept));
  return 1;
}

static int sched_m_next_due(lua_State *L) {
  Scheduler *s = txaio__checkscheduler(L, 1);
  Heap *h = &s->heap;
  prune_top(L, s, 1, 0);
  if (h->count) lua_pushnumber(L, txaio__heap_min(h)->due);
  else lua_pushnil(L);
  return 1;
}

static int sched_m_call_later(lua_State *L) {
  txaio__checkscheduler(L, 1);
  return schedule_call(L, 1, 2);
}

static int sched_gc(lua_State *L) {
  Scheduler *s = txaio__toscheduler(L, 1);
  Timer *timer;
  size_t i;
  if (!s) return 0;   /* a table that borrowed the metatable */
  /* handles users still hold must not reach this memory again; the pending timers are alive until
     the scheduler's own user values (ROOTS) go, after this finalizer */
  lua_getiuservalue(L, 1, SS_ROOTS);
  for (i = 0; i < s->heap.count; i++) {
    uint32_t ref = s->heap.items[i].ref;
    if (s->dead[ref]) continue;
    lua_rawgeti(L, -1, ref);
    timer = (Timer *)lua_touserdata(L, -1);
    if (timer != NULL) {
      timer->sched = NULL;
      timer->ref = 0;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  sched_free_arrays(L, s);
  s->live = 0;
  s->closed = 1;
  if (s->c_free) {
    s->c_free(s->c_ud);
    s->c_free = NULL;
  }
  return 0;
}

/* txaio__checkudata without the metatable lookup: the tag is keyed by the timer's address, so a
   lookalike (a userdata given the metatable with debug.setmetatable) does not pass */
static Timer *checktimer(lua_State *L) {
  Timer *t = (Timer *)txaio__totagged(L, 1, sizeof(Timer), TXAIO_KIND_TIMER);
  if (txaio_unlikely(t == NULL)) txaio__udataerror(L, 1, TXAIO_TIMER_MT);
  return t;
}

static int timer_m_cancel(lua_State *L) {
  checktimer(L);
  lua_pushboolean(L, timer_cancel(L, 1, lua_upvalueindex(1)));
  return 1;
}

static int timer_m_active(lua_State *L) {
  lua_pushboolean(L, checktimer(L)->sched != NULL);
  return 1;
}

static int timer_tostring(lua_State *L) {
  Timer *t = checktimer(L);
  lua_pushfstring(L, "txaio.Timer: %p (%s)", lua_topointer(L, 1),
                  t->sched != NULL ? "pending" : "done");
  return 1;
}

static const luaL_Reg sched_methods[] = {
  { "now", sched_m_now },
  { "tick", sched_m_tick },
  { "pending", sched_m_pending },
  { "ticking", sched_m_ticking },
  { "next_due", sched_m_next_due },
  { "entries", sched_m_entries },
  { "c_bytes", sched_m_c_bytes },
  { "call_later", sched_m_call_later },
  { NULL, NULL }
};

static const luaL_Reg timer_methods[] = {
  { "cancel", timer_m_cancel },
  { "active", timer_m_active },
  { NULL, NULL }
};

void txaio__opensched(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHEDULERS) != LUA_TTABLE) {
    lua_newtable(L);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_pushvalue(L, -1);
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &SCHEDULERS);
  }
  lua_pop(L, 1);
  luaL_newmetatable(L, TXAIO_SCHEDULER_MT);
  lua_pushcfunction(L, sched_gc);
  lua_setfield(L, -2, "__gc");
  luaL_newlib(L, sched_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  /* the timer methods get the SCHEDULERS table, where cancel finds a timer's scheduler */
  luaL_newmetatable(L, TXAIO_TIMER_MT);
  lua_pushcfunction(L, timer_tostring);
  lua_setfield(L, -2, "__tostring");
  luaL_newlibtable(L, timer_methods);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHEDULERS);
  luaL_setfuncs(L, timer_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, sched_new);
  lua_setfield(L, -2, "new_scheduler");
  lua_pushcfunction(L, sched_is);
  lua_setfield(L, -2, "is_scheduler");
  lua_pushcfunction(L, core_bind);
  lua_setfield(L, -2, "bind");
}
