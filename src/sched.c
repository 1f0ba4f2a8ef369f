/*
** sched.c - every timer of a loop lives in one heap here; a backend only supplies a clock and a
** wake-up ("call tick() in about this many seconds"). luv therefore needs a single uv_timer and a
** host loop a single wake-up, however many timers are pending.
**
** Firing is two-phase in effect: a tick runs only timers that were scheduled before it started
** (seq < limit), so a callback re-arming itself with delay 0 runs on the next tick, never in a loop.
** A pending timer is rooted in the scheduler's ROOTS table (a ref, see roots_add) and nowhere else:
** once it
** fires or is cancelled, nothing of ours pins it or its callback.
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

/* node.tag is the timer's ref in ROOTS while pending, LUA_NOREF otherwise */
typedef struct Timer {
  HeapNode node;      /* first member: heap nodes convert back to timers */
  Scheduler *sched;   /* NULL once the timer is done or its scheduler is gone */
} Timer;

/* Timer user values: the callable, then the arguments (as many as the timer has user values). */
enum TimerSlot { TS_FN = 1, TS_ARGS };

/* Registry key of the weak-valued table Scheduler* (light userdata) -> scheduler userdata */
static const char SCHEDULERS = 0;

static const char BINDING_NOLOOP[] =
  "txaio: no event loop selected; call txaio.use_luv() or txaio.use_host(adapter) first";

/* mixed with a scheduler's address into its tag, as futures do (see future.c): cheaper than a
   metatable check on the way of every call_later, and no other userdata passes it by accident */
#define TXAIO_KIND_SCHEDULER 0x74786c70u   /* "txlp" */

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

static void timer_release(lua_State *L, int tidx, Timer *t, int sidx, int rootsidx);

/* [-1, +0] stores the value on top in ROOTS (at rootsidx); returns its slot. luaL_ref would do,
   at several times the cost: it keeps its free list's head in the table and measures its length. */
static int roots_add(lua_State *L, Scheduler *s, int rootsidx) {
  int ref = s->roots_free;
  if (ref) {
    lua_rawgeti(L, rootsidx, ref);
    s->roots_free = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
  } else {
    ref = ++s->roots_top;
  }
  lua_rawseti(L, rootsidx, ref);
  return ref;
}

static void roots_remove(lua_State *L, Scheduler *s, int rootsidx, int ref) {
  lua_pushinteger(L, s->roots_free);
  lua_rawseti(L, rootsidx, ref);
  s->roots_free = ref;
}

void txaio__sched_add(lua_State *L, int sidx, double due, int fnidx, int firstarg, int nargs) {
  Scheduler *s = (Scheduler *)lua_touserdata(L, sidx);
  Timer *t;
  int i;
  sidx = lua_absindex(L, sidx);
  t = (Timer *)lua_newuserdatauv(L, sizeof(Timer), TS_ARGS - 1 + nargs);
  t->node.tag = LUA_NOREF;
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
  {
    /* room in the heap only now: the allocations above may run finalizers, and one that
       schedules on this loop too would take a slot reserved before them */
    void *ud;
    lua_Alloc alloc = lua_getallocf(L, &ud);
    if (!txaio__heap_reserve(&s->heap, alloc, ud)) luaL_error(L, "not enough memory");
  }
  lua_pushvalue(L, -2);
  t->node.tag = roots_add(L, s, lua_gettop(L) - 1);
  lua_pop(L, 1);
  t->sched = s;
  t->node.seq = s->seq++;
  txaio__heap_push(&s->heap, &t->node, due);
  if (!s->firing && due < s->armed) {
    double armed = s->armed;
    s->armed = due;
    if (!call_wake(L, sidx, s, due - s->last_now)) {
      /* undo: a call_later that raises must not leave a timer behind. Nothing can have fired or
         cancelled it meanwhile (no tick runs inside wake(), and nobody else holds it yet); the
         check keeps a broken invariant from corrupting the heap. */
      lua_insert(L, -2);
      if (t->sched != NULL) {
        txaio__heap_remove(&s->heap, &t->node);
        timer_release(L, lua_gettop(L), t, sidx, 0);
      }
      s->armed = armed;
      lua_pop(L, 1);
      adapter_error(L, "wake");
    }
  }
}

/* Lua tables never shrink: once a burst of timers is over, start the bookkeeping afresh. */
#define SHRINK_ABOVE 1024

/*
** Marks a timer that has left the heap as done and unroots it; its user values (the callback and
** its arguments) stay for the caller to read. rootsidx: where the scheduler's ROOTS table is, or
** 0 to fetch it.
*/
static void timer_detach(lua_State *L, Timer *t, int sidx, int rootsidx) {
  Scheduler *s = t->sched;
  if (rootsidx) {
    roots_remove(L, s, rootsidx, t->node.tag);
  } else {
    lua_getiuservalue(L, sidx, SS_ROOTS);
    roots_remove(L, s, lua_gettop(L), t->node.tag);
    lua_pop(L, 1);
  }
  t->node.tag = LUA_NOREF;
  t->sched = NULL;
  if (s->heap.count == 0 && s->heap.capacity > SHRINK_ABOVE) {
    /* the new table first: making it may run a finalizer that schedules on this loop, and that
       timer must find the heap and ROOTS it was put in still there */
    lua_newtable(L);
    if (s->heap.count == 0) {
      void *ud;
      lua_Alloc alloc = lua_getallocf(L, &ud);
      txaio__heap_free(&s->heap, alloc, ud);
      lua_setiuservalue(L, sidx, SS_ROOTS);
      s->roots_top = s->roots_free = 0;
    } else {
      lua_pop(L, 1);
    }
  }
}

/* Detaches a timer and drops everything it holds, so a handle kept by the user pins nothing. */
static void timer_release(lua_State *L, int tidx, Timer *t, int sidx, int rootsidx) {
  timer_detach(L, t, sidx, rootsidx);
  txaio_clearuservalues(L, tidx);
}

/* mapidx: where the SCHEDULERS table is (an upvalue of the hot callers), or 0 to look it up */
static int timer_cancel(lua_State *L, int tidx, int mapidx) {
  Timer *t = (Timer *)lua_touserdata(L, tidx);
  Scheduler *s = t->sched;
  int sidx;
  if (s == NULL) return 0;
  tidx = lua_absindex(L, tidx);
  if (mapidx) {
    lua_rawgetp(L, mapidx, s);
  } else {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHEDULERS);
    lua_rawgetp(L, -1, s);
    lua_remove(L, -2);
  }
  sidx = lua_gettop(L);
  if (lua_touserdata(L, sidx) != s) {
    /* the scheduler is being collected (weak entries go first): nothing will ever fire this */
    lua_pop(L, 1);
    t->sched = NULL;
    return 0;
  }
  /* a pending timer is where its index says: this also turns away a lookalike userdata (the
     size and metatable of a timer, given it with debug.setmetatable) before the heap is touched */
  if (t->node.index >= s->heap.count || s->heap.items[t->node.index].node != &t->node) {
    lua_pop(L, 1);
    return 0;
  }
  txaio__heap_remove(&s->heap, &t->node);
  timer_release(L, tidx, t, sidx, 0);
  if (!s->firing && s->heap.count == 0) {
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
  timer_detach(L, t, sidx, rootsidx);
  /* the callable, then the arguments, as many as call_later got: on the stack of whoever ticks,
     which may be a coroutine's small one */
  if (txaio_unlikely(!lua_checkstack(L, 8))) {
    fire_nostack(L, tidx);
    return;
  }
  lua_getiuservalue(L, tidx, TS_FN);
  fn = lua_gettop(L);
#if LUA_VERSION_NUM >= 504
  /* 5.4 answers TNONE past the last user value: fetch until then instead of counting first */
  for (nargs = 0; lua_getiuservalue(L, tidx, TS_ARGS + nargs) != LUA_TNONE; nargs++)
    if (txaio_unlikely(!lua_checkstack(L, 8))) {
      fire_nostack(L, tidx);
      return;
    }
  lua_pop(L, 1);
#else
  nargs = txaio_nuvalue(L, tidx) - TS_FN;
  if (txaio_unlikely(!lua_checkstack(L, nargs + 8))) {
    fire_nostack(L, tidx);
    return;
  }
  {
    int i;
    for (i = 0; i < nargs; i++) lua_getiuservalue(L, tidx, TS_ARGS + i);
  }
#endif
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

void txaio__push_next_timeout(lua_State *L, Scheduler *s, double now) {
  if (s->heap.count) {
    double due = txaio__heap_min_due(&s->heap);
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
  HeapNode *top;
  int msgh, roots;
  lua_pushcfunction(L, txaio__failure_msgh);
  msgh = lua_gettop(L);
  /* ROOTS once for the whole tick. timer_detach replaces it only when the heap has emptied, and
     then every timer this tick may fire (seq < limit) is gone: the stale table is never read. */
  lua_getiuservalue(L, 1, SS_ROOTS);
  roots = lua_gettop(L);
  while ((top = txaio__heap_min(&s->heap)) && txaio__heap_min_due(&s->heap) <= now
         && top->seq < limit) {
    Timer *t = (Timer *)top;
    txaio__heap_remove(&s->heap, top);
    lua_rawgeti(L, roots, t->node.tag);
    timer_fire(L, lua_gettop(L), 1, roots, msgh, now);
    lua_pop(L, 1);
  }
  return 0;
}

/* Asks the backend to wake us for the earliest timer left, or tells it none is; 0 if it raised. */
static int rearm(lua_State *L, int sidx, Scheduler *s) {
  double due;
  if (!s->heap.count) return call_wake(L, sidx, s, -1);
  due = txaio__heap_min_due(&s->heap);
  s->armed = due;
  if (call_wake(L, sidx, s, due > s->last_now ? due - s->last_now : 0)) return 1;
  s->armed = HUGE_VAL;   /* not armed after all: the next call_later asks again */
  return 0;
}

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
  lua_pushcfunction(L, fire_due);
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
  txaio__push_next_timeout(L, (Scheduler *)lua_touserdata(L, sidx), now);
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
  Scheduler *s = txaio__checkscheduler(L, 1);
  double now = txaio__sched_tick(L, 1);
  txaio__push_next_timeout(L, s, now);
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
  lua_pushinteger(L, (lua_Integer)txaio__checkscheduler(L, 1)->heap.count);
  return 1;
}

static int sched_m_next_due(lua_State *L) {
  Heap *h = &txaio__checkscheduler(L, 1)->heap;
  if (h->count) lua_pushnumber(L, txaio__heap_min_due(h));
  else lua_pushnil(L);
  return 1;
}

static int sched_m_call_later(lua_State *L) {
  txaio__checkscheduler(L, 1);
  return schedule_call(L, 1, 2);
}

static int sched_gc(lua_State *L) {
  Scheduler *s = txaio__toscheduler(L, 1);
  void *ud;
  lua_Alloc alloc = lua_getallocf(L, &ud);
  size_t i;
  if (!s) return 0;   /* a table that borrowed the metatable */
  /* handles users still hold must not reach this memory again; the timers are alive until the
     scheduler's own user values (ROOTS) go, after this finalizer */
  for (i = 0; i < s->heap.count; i++) {
    Timer *t = (Timer *)s->heap.items[i].node;
    t->sched = NULL;
    t->node.tag = LUA_NOREF;
  }
  txaio__heap_free(&s->heap, alloc, ud);
  s->closed = 1;
  if (s->c_free) {
    s->c_free(s->c_ud);
    s->c_free = NULL;
  }
  return 0;
}

/* luaL_checkudata for the timer methods, with the metatable at hand (upvalue 2) instead of
   looked up in the registry by name; and the size, as txaio__checkudata does */
static Timer *checktimer(lua_State *L) {
  Timer *t = (Timer *)lua_touserdata(L, 1);
  int same;
  if (t == NULL || !lua_getmetatable(L, 1)) luaL_typeerror(L, 1, TXAIO_TIMER_MT);
  same = lua_rawequal(L, -1, lua_upvalueindex(2));
  lua_pop(L, 1);
  if (!same || lua_rawlen(L, 1) != sizeof(Timer)) txaio__udataerror(L, 1, TXAIO_TIMER_MT);
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
  /* every timer function gets the SCHEDULERS table (cancel's) and the timer metatable */
  luaL_newmetatable(L, TXAIO_TIMER_MT);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHEDULERS);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, timer_tostring, 2);
  lua_setfield(L, -2, "__tostring");
  luaL_newlibtable(L, timer_methods);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHEDULERS);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, timer_methods, 2);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, sched_new);
  lua_setfield(L, -2, "new_scheduler");
  lua_pushcfunction(L, sched_is);
  lua_setfield(L, -2, "is_scheduler");
  lua_pushcfunction(L, core_bind);
  lua_setfield(L, -2, "bind");
}
