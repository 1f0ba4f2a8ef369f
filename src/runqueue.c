/*
** runqueue.c - the one FIFO queue through which every callback runs, per Lua state.
** settle() appends (callback, argument) pairs; the outermost drain() runs them one at a time
** under lua_pcall. A callback that completes another future only appends, so chains of any length
** run in constant C stack: the trampoline.
** Also here: the reporter for errors nobody can catch (a raising callback, an unobserved failure
** collected by the GC), which the Lua layer installs and replaces.
*/
#include "internal.h"

enum RunQueueSlot { RQ_QUEUE = 1, RQ_UNHANDLED, RQ_REPORTER, RQ_NSLOTS = RQ_REPORTER };

struct RunQueue {
  lua_Integer head, tail;   /* entries live at [head, tail) of the queue table, two per call */
  int draining;
  int nunhandled;
  int incallback;           /* depth of user callbacks (future or timer) being run by the core */
  lua_State *cbthread;      /* the thread the innermost of them runs on: it cannot yield */
};

static const char RUNQUEUE_KEY = 0;

/* [-0, +1] pushes this state's run queue userdata */
static RunQueue *getrq(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &RUNQUEUE_KEY);
  return (RunQueue *)lua_touserdata(L, -1);
}

/* Appends fn, arg; the run queue userdata is at 'rqidx' (a stack or upvalue index). */
static void enqueue_at(lua_State *L, int rqidx, RunQueue *rq, int fnidx, int argidx) {
  lua_getiuservalue(L, rqidx, RQ_QUEUE);
  lua_pushvalue(L, fnidx);
  lua_rawseti(L, -2, rq->tail);
  lua_pushvalue(L, argidx);
  lua_rawseti(L, -2, rq->tail + 1);
  rq->tail += 2;
  lua_pop(L, 1);
}

void txaio__enqueue(lua_State *L, int fnidx, int argidx) {
  RunQueue *rq;
  fnidx = lua_absindex(L, fnidx);
  argidx = lua_absindex(L, argidx);
  rq = getrq(L);
  enqueue_at(L, lua_gettop(L), rq, fnidx, argidx);
  lua_pop(L, 1);
}

/* [-0, +0] calls the reporter with (what, failure); a reporter error is dropped, never raised. */
void txaio__report(lua_State *L, const char *what, int failidx) {
  int top = lua_gettop(L);
  failidx = lua_absindex(L, failidx);
  getrq(L);
  if (lua_getiuservalue(L, -1, RQ_REPORTER) != LUA_TNIL) {
    lua_pushstring(L, what);
    lua_pushvalue(L, failidx);
    (void)lua_pcall(L, 2, 0, 0);
  }
  /* one reset for every outcome: a reporter that raised leaves its error where nothing would */
  lua_settop(L, top);
}

void txaio__queue_unhandled(lua_State *L, int failidx) {
  RunQueue *rq;
  failidx = lua_absindex(L, failidx);
  rq = getrq(L);
  if (!rq) { lua_pop(L, 1); return; }   /* the state is closing */
  lua_getiuservalue(L, -1, RQ_UNHANDLED);
  lua_pushvalue(L, failidx);
  lua_rawseti(L, -2, ++rq->nunhandled);
  lua_pop(L, 2);
}

void txaio__flush_unhandled(lua_State *L) {
  RunQueue *rq = getrq(L);
  int rqidx = lua_gettop(L), i, n, list;
  if (rq->nunhandled == 0) { lua_pop(L, 1); return; }
  /* swap the list out first: the reporter may cause more finalizers to queue. The new list is made
     before the old one is measured: making it may run finalizers that add to the old one. */
  lua_newtable(L);
  lua_getiuservalue(L, rqidx, RQ_UNHANDLED);
  n = rq->nunhandled;
  lua_insert(L, -2);
  lua_setiuservalue(L, rqidx, RQ_UNHANDLED);
  rq->nunhandled = 0;
  list = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    txaio__report(L, "future", -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

static int pcallback(lua_State *L, RunQueue *rq, int nargs, int msgh);

/* Runs the queue to the end; the run queue userdata is at 'rqidx' (a stack or upvalue index). */
static void drain_at(lua_State *L, int rqidx, RunQueue *rq) {
  int top, queue;
  if (rq->draining || (rq->head == rq->tail && rq->nunhandled == 0)) return;
  rq->draining = 1;
  lua_getiuservalue(L, rqidx, RQ_QUEUE);
  queue = lua_gettop(L);
  txaio__pushmsgh(L);
  top = lua_gettop(L);
  while (rq->head < rq->tail) {
    lua_Integer at = rq->head;
    rq->head += 2;
    /* empty again: start over at 1, so a chain (one callback queueing the next) reuses two slots
       instead of growing the table by two keys a link */
    if (rq->head == rq->tail) rq->head = rq->tail = 1;
    lua_rawgeti(L, queue, at);
    lua_rawgeti(L, queue, at + 1);
    /* clear before calling so the queue never pins a finished callback or its value */
    lua_pushnil(L);
    lua_rawseti(L, queue, at);
    lua_pushnil(L);
    lua_rawseti(L, queue, at + 1);
    if (pcallback(L, rq, 1, top) != LUA_OK) {
      txaio__report(L, "callback", -1);
      lua_settop(L, top);
    }
  }
  rq->head = rq->tail = 1;
  rq->draining = 0;
  lua_pop(L, 2);
  if (rq->nunhandled) txaio__flush_unhandled(L);
}

void txaio__drain(lua_State *L) {
  RunQueue *rq = getrq(L);
  drain_at(L, lua_gettop(L), rq);
  lua_pop(L, 1);
}

void txaio__drain_at(lua_State *L, int rqidx) {
  drain_at(L, rqidx, (RunQueue *)lua_touserdata(L, rqidx));
}

void txaio__pushrunqueue(lua_State *L) {
  getrq(L);
}

/*
** enqueue + drain of one callback: the function at msgh + 1 with the argument at msgh + 2, where
** msgh holds the message handler; rqidx holds the run queue (an upvalue of the caller). When
** nothing is queued or running, the function would be the first and only entry drained, so it is
** called at once, without the round trip through the queue table: same order, same error
** handling. Whatever it queues runs after it, as drain would run it. Leaves the handler (and what
** the queue did not take, or the reported error) on the stack: its callers return at once.
*/
void txaio__runcallback(lua_State *L, int rqidx, int msgh) {
  RunQueue *rq = (RunQueue *)lua_touserdata(L, rqidx);
  if (rq->draining || rq->head != rq->tail) {
    enqueue_at(L, rqidx, rq, msgh + 1, msgh + 2);
    drain_at(L, rqidx, rq);
    return;
  }
  rq->draining = 1;
  if (pcallback(L, rq, 1, msgh) != LUA_OK) txaio__report(L, "callback", -1);
  rq->draining = 0;
  if (rq->head != rq->tail || rq->nunhandled) drain_at(L, rqidx, rq);
}

RunQueue *txaio__runqueue(lua_State *L) {
  RunQueue *rq = getrq(L);
  lua_pop(L, 1);
  return rq;
}

int txaio__pcallbackq(lua_State *L, RunQueue *rq, int nargs, int msgh) {
  return pcallback(L, rq, nargs, msgh);
}

/* The same, for drain, which has the run queue at hand already. */
static int pcallback(lua_State *L, RunQueue *rq, int nargs, int msgh) {
  lua_State *outer = rq->cbthread;
  int status;
  rq->incallback++;
  rq->cbthread = L;
  status = lua_pcall(L, nargs, 0, msgh);
  rq->cbthread = outer;
  rq->incallback--;
  return status;
}

/*
** core.can_yield(): whether the running coroutine may yield as far as txaio knows: it is not the
** main thread and no callback of ours runs on its stack. (Lua 5.3+ has coroutine.isyieldable,
** which also knows about other C frames; this serves 5.1 and 5.2.)
*/
static int rq_can_yield(lua_State *L) {
  RunQueue *rq = getrq(L);
  int ismain = lua_pushthread(L);
  lua_pushboolean(L, !ismain && rq->cbthread != L);
  return 1;
}

/* core.in_callback(): true while the core runs a user callback, which cannot yield */
static int rq_in_callback(lua_State *L) {
  RunQueue *rq = getrq(L);
  lua_pushboolean(L, rq->incallback > 0);
  return 1;
}

static int rq_set_reporter(lua_State *L) {
  txaio__checkcallable(L, 1, 1);
  lua_settop(L, 1);
  getrq(L);
  lua_getiuservalue(L, -1, RQ_REPORTER);   /* previous, returned */
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 2, RQ_REPORTER);
  return 1;
}

static int rq_flush_unhandled(lua_State *L) {
  txaio__flush_unhandled(L);
  return 0;
}

static const luaL_Reg runqueue_funcs[] = {
  { "set_reporter", rq_set_reporter },
  { "flush_unhandled", rq_flush_unhandled },
  { "in_callback", rq_in_callback },
  { "can_yield", rq_can_yield },
  { NULL, NULL }
};

/* The queue is per Lua state and survives re-opening the module (busted re-requires it). */
void txaio__openrunqueue(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &RUNQUEUE_KEY) == LUA_TNIL) {
    RunQueue *rq = (RunQueue *)lua_newuserdatauv(L, sizeof(RunQueue), RQ_NSLOTS);
    rq->head = rq->tail = 1;
    rq->draining = 0;
    rq->nunhandled = 0;
    rq->incallback = 0;
    rq->cbthread = NULL;
    lua_newtable(L);
    lua_setiuservalue(L, -2, RQ_QUEUE);
    lua_newtable(L);
    lua_setiuservalue(L, -2, RQ_UNHANDLED);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &RUNQUEUE_KEY);
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, runqueue_funcs, 0);
}
