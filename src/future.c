/*
** future.c - the Future userdata.
** A future's outcome and callbacks live in user values (FS_* slots). Completing a future never
** calls a callback directly: txaio__settle only enqueues, and the public entry points drain the run
** queue afterwards, so a chain of futures completing each other uses constant C stack.
*/
#include <stdint.h>
#include <string.h>

#include "internal.h"

static const char *const state_names[] = { "pending", "resolved", "failed" };

/*
** A future is a full userdata of exactly sizeof(Future) bytes whose tag is TXAIO_KIND_FUTURE keyed
** by its own address. Lua code cannot write into a userdata, so no value it can reach passes by
** accident, and debug.setmetatable cannot dress another userdata up as a future (a metatable check
** would let it through and then misread its memory). It is also three API calls cheaper than
** comparing metatables, which is a tenth of what create, add_callbacks and resolve cost together.
** Keying the tag, rather than storing the address beside it, keeps every future 8 bytes smaller.
*/
Future *txaio__tofuture(lua_State *L, int idx) {
  return (Future *)txaio__totagged(L, idx, sizeof(Future), TXAIO_KIND_FUTURE);
}

/* A lookalike may carry either of a future's two metatables; both are named as a future. */
static int future_typeerror(lua_State *L, int idx) {
  if (luaL_testudata(L, idx, TXAIO_UNOBSERVED_MT) != NULL)
    return txaio__lookalikeerror(L, idx, TXAIO_FUTURE_MT);
  return txaio__udataerror(L, idx, TXAIO_FUTURE_MT);
}

/* inlined into the hot entry points (resolve, add_callbacks), a call apart elsewhere */
static inline Future *checkfuture(lua_State *L, int idx) {
  Future *f = (Future *)txaio__totagged(L, idx, sizeof(Future), TXAIO_KIND_FUTURE);
  if (txaio_unlikely(!f)) future_typeerror(L, idx);
  return f;
}

Future *txaio__checkfuture(lua_State *L, int idx) {
  return checkfuture(L, idx);
}

/* Only a future made with a canceller gets the canceller's slot: each user value is 16 bytes. */
static Future *initfuture(lua_State *L, int cancellable) {
  Future *f = (Future *)lua_newuserdatauv(L, sizeof(Future),
                                          cancellable ? FS_NSLOTS : FS_NSLOTS - 1);
  memset(f, 0, sizeof *f);
  f->tag = txaio__tag(f, TXAIO_KIND_FUTURE);
  return f;
}

static Future *newfuture(lua_State *L, int cancellable) {
  Future *f = initfuture(L, cancellable);
  luaL_setmetatable(L, TXAIO_FUTURE_MT);
  return f;
}

Future *txaio__newfuture(lua_State *L) {
  return newfuture(L, 0);
}

Future *txaio__newcancellable(lua_State *L) {
  return newfuture(L, 1);
}

void txaio__pushfuturemts(lua_State *L) {
  luaL_getmetatable(L, TXAIO_FUTURE_MT);
  luaL_getmetatable(L, TXAIO_UNOBSERVED_MT);
  txaio__pushrunqueue(L);
}

static Future *upnewfuture(lua_State *L, int cancellable) {
  Future *f = initfuture(L, cancellable);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setmetatable(L, -2);
  return f;
}

Future *txaio__upnewfuture(lua_State *L) {
  return upnewfuture(L, 0);
}

/*
** Only a failure nobody has observed needs a finalizer (to report it): giving every future a
** __gc would make the collector finalize, and keep for an extra cycle, every one of them.
*/
static void watch_unobserved(lua_State *L, int fidx, Future *f) {
  if (f->observed) return;
  luaL_getmetatable(L, TXAIO_UNOBSERVED_MT);
  lua_setmetatable(L, fidx);
}

int txaio__iscallable(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TFUNCTION) return 1;
  if (luaL_getmetafield(L, idx, "__call") != LUA_TNIL) {
    lua_pop(L, 1);
    return 1;
  }
  return 0;
}

void txaio__checkcallable(lua_State *L, int arg, int nilok) {
  if (nilok && lua_isnoneornil(L, arg)) return;
  if (!txaio__iscallable(L, arg))
    luaL_typeerror(L, arg, nilok ? "callable or nil" : "callable");
}

/* Hands one callback pair (at -2, -1) the outcome at 'vidx'; pops the pair. */
static void dispatch_pair(lua_State *L, FutureState state, int vidx) {
  if (lua_type(L, -2) == LUA_TUSERDATA && txaio__isgather(L, -2)) {
    int slot = (int)lua_tointeger(L, -1);
    txaio__gather_settle(L, lua_absindex(L, -2), slot, state, vidx);
  } else {
    int pick = state == FUT_RESOLVED ? -2 : -1;
    if (!lua_isnil(L, pick))
      txaio__enqueue(L, lua_absindex(L, pick), vidx);
  }
  lua_pop(L, 2);
}

/* The slot and the flag change together, so a canceller is never dropped twice or kept */
void txaio__setcanceller(lua_State *L, int fidx, Future *f) {
  lua_setiuservalue(L, fidx, FS_CANCELLER);
  f->hascanceller = 1;
}

static void drop_canceller(lua_State *L, int fidx, Future *f) {
  if (!f->hascanceller) return;
  f->hascanceller = 0;
  lua_pushnil(L);
  lua_setiuservalue(L, fidx, FS_CANCELLER);
}

/*
** Records the outcome and queues every attached callback in the order added. Does not drain:
** the caller decides when callbacks run.
*/
void txaio__settle(lua_State *L, int fidx, FutureState state, int vidx) {
  Future *f = (Future *)lua_touserdata(L, fidx);
  int n = f->ncallbacks, i;
  f->state = (unsigned char)state;
  f->ncallbacks = 0;
  if (state == FUT_FAILED) watch_unobserved(L, fidx, f);
  drop_canceller(L, fidx, f);
  if (n == 0) {
    lua_pushvalue(L, vidx);
    lua_setiuservalue(L, fidx, FS_VALUE);
    return;
  }
  /* the callbacks off their slot before the value takes it */
  lua_getiuservalue(L, fidx, FS_CALLBACK);
  lua_pushvalue(L, vidx);
  lua_setiuservalue(L, fidx, FS_VALUE);
  if (n == 1) {
    lua_getiuservalue(L, fidx, FS_ERRBACK);
    lua_pushnil(L);
    lua_setiuservalue(L, fidx, FS_ERRBACK);
    dispatch_pair(L, state, vidx);
  } else {
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, 2 * i - 1);
      lua_rawgeti(L, -2, 2 * i);
      dispatch_pair(L, state, vidx);
    }
    lua_pop(L, 1);
  }
}

/* Attaches the pair at cbidx/ebidx (either may be nil) to the future at fidx. */
void txaio__addcallbacks(lua_State *L, int fidx, int cbidx, int ebidx) {
  Future *f = (Future *)lua_touserdata(L, fidx);
  int list = 0;
  if (f->state == FUT_PENDING && f->ncallbacks == 1) {
    /* the list a second pair needs, made before f is looked at again: allocating may run
       finalizers, which may complete f or add pairs to it */
    lua_createtable(L, 4, 0);
    list = lua_gettop(L);
  }
  if (!lua_isnil(L, ebidx)) f->observed = 1;
  if (f->state != FUT_PENDING) {
    lua_getiuservalue(L, fidx, FS_VALUE);
    lua_pushvalue(L, cbidx);
    lua_pushvalue(L, ebidx);
    dispatch_pair(L, (FutureState)f->state, lua_gettop(L) - 2);
    lua_pop(L, 1);
    if (list) lua_remove(L, list);
    return;
  }
  if (f->ncallbacks == 0) {
    lua_pushvalue(L, cbidx);
    lua_setiuservalue(L, fidx, FS_CALLBACK);
    lua_pushvalue(L, ebidx);
    lua_setiuservalue(L, fidx, FS_ERRBACK);
  } else {
    if (f->ncallbacks == 1) {   /* a second pair: both move into a list held in FS_CALLBACK */
      lua_pushvalue(L, list);
      lua_getiuservalue(L, fidx, FS_CALLBACK);
      lua_rawseti(L, -2, 1);
      lua_getiuservalue(L, fidx, FS_ERRBACK);
      lua_rawseti(L, -2, 2);
      lua_pushnil(L);
      lua_setiuservalue(L, fidx, FS_ERRBACK);
      lua_pushvalue(L, -1);
      lua_setiuservalue(L, fidx, FS_CALLBACK);
    } else {
      lua_getiuservalue(L, fidx, FS_CALLBACK);
    }
    lua_pushvalue(L, cbidx);
    lua_rawseti(L, -2, 2 * f->ncallbacks + 1);
    lua_pushvalue(L, ebidx);
    lua_rawseti(L, -2, 2 * f->ncallbacks + 2);
    lua_pop(L, 1);
  }
  if (list) lua_remove(L, list);
  f->ncallbacks++;
}

/* ---------------------------------------------------------------- Lua functions */

static int fut_create(lua_State *L) {
  Future *f;
  int cancellable;
  if (lua_gettop(L) == 0) {   /* the common case: a plain pending future */
    txaio__upnewfuture(L);
    return 1;
  }
  lua_settop(L, 3);
  txaio__checkcallable(L, 3, 1);
  if (!lua_isnil(L, 1) && !lua_isnil(L, 2))
    return luaL_error(L, "create_future: result and error are exclusive");
  /* only a pending future needs its canceller */
  cancellable = !lua_isnil(L, 3) && lua_isnil(L, 1) && lua_isnil(L, 2);
  f = upnewfuture(L, cancellable);
  if (cancellable) {
    lua_pushvalue(L, 3);
    txaio__setcanceller(L, 4, f);
  }
  if (!lua_isnil(L, 1)) {
    f->state = FUT_RESOLVED;
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, 4, FS_VALUE);
  } else if (!lua_isnil(L, 2)) {
    txaio__tofailure(L, 2, 1);
    f->state = FUT_FAILED;
    lua_setiuservalue(L, 4, FS_VALUE);
    watch_unobserved(L, 4, f);
  }
  return 1;
}

static int fut_create_success(lua_State *L) {
  lua_settop(L, 1);
  txaio__upnewfuture(L)->state = FUT_RESOLVED;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, 2, FS_VALUE);
  return 1;
}

static int fut_create_error(lua_State *L) {
  luaL_argexpected(L, !lua_isnoneornil(L, 1), 1, "error value");
  lua_settop(L, 1);
  txaio__upnewfuture(L)->state = FUT_FAILED;
  txaio__tofailure(L, 1, 1);
  lua_setiuservalue(L, 2, FS_VALUE);
  watch_unobserved(L, 2, (Future *)lua_touserdata(L, 2));
  return 1;
}

static int fut_is_future(lua_State *L) {
  lua_pushboolean(L, txaio__tofuture(L, 1) != NULL);
  return 1;
}

static int fut_is_called(lua_State *L) {
  lua_pushboolean(L, txaio__checkfuture(L, 1)->state != FUT_PENDING);
  return 1;
}

/* A completed future may only be completed again if cancel() got there first. */
static int check_completable(lua_State *L, Future *f) {
  if (f->state == FUT_PENDING) return 1;
  if (f->cancelled) return 0;
  return luaL_argerror(L, 1, lua_pushfstring(L, "future already %s", state_names[f->state]));
}

/*
** The common case of resolve and reject: one pair attached whose chosen half is a Lua function.
** Settles f as txaio__settle does and runs that function through txaio__runcallback, which calls
** it at once when the queue is idle. The value is at vidx and the message handler above it, on
** top: the function and its argument then go where lua_pcall wants them without asking for the
** top. Returns 0, having changed nothing, when the case does not apply.
*/
static int settle_one(lua_State *L, Future *f, FutureState state, int vidx) {
  if (f->ncallbacks != 1) return 0;
  if (lua_getiuservalue(L, 1, state == FUT_RESOLVED ? FS_CALLBACK : FS_ERRBACK) != LUA_TFUNCTION) {
    lua_settop(L, vidx + 1);
    return 0;
  }
  f->state = (unsigned char)state;
  f->ncallbacks = 0;
  lua_pushvalue(L, vidx);               /* the function's argument, vidx + 3 */
  lua_pushvalue(L, vidx);
  lua_setiuservalue(L, 1, FS_VALUE);    /* the callback's slot: the stack holds the function */
  lua_pushnil(L);
  lua_setiuservalue(L, 1, FS_ERRBACK);
  drop_canceller(L, 1, f);
  txaio__runcallback(L, TXAIO_UPRUNQUEUE, vidx + 1);
  return 1;
}

/*
** settle_one's message handler goes on the stack before the future is checked. Pushing it does
** not allocate (txaio__pushmsgh), but nothing that could run a finalizer, which might complete f,
** may come between the check and the settle, and keeping it first makes that hold by its place.
*/
static int fut_resolve(lua_State *L) {
  Future *f = checkfuture(L, 1);
  if (lua_gettop(L) != 2) lua_settop(L, 2);
  txaio__pushmsgh(L);
  if (check_completable(L, f) && !settle_one(L, f, FUT_RESOLVED, 2)) {
    txaio__settle(L, 1, FUT_RESOLVED, 2);
    txaio__drain_at(L, TXAIO_UPRUNQUEUE);
  }
  return 0;
}

static int fut_reject(lua_State *L) {
  Future *f = checkfuture(L, 1);
  luaL_argexpected(L, !lua_isnoneornil(L, 2), 2, "error value");
  lua_settop(L, 2);
  /* the failure and the handler before the check: making the failure allocates, so a finalizer
     may run and complete f */
  txaio__tofailure(L, 2, 1);
  txaio__pushmsgh(L);
  /* a pair whose errback is a function has observed f, so it needs no watch_unobserved */
  if (check_completable(L, f) && !settle_one(L, f, FUT_FAILED, 3)) {
    txaio__settle(L, 1, FUT_FAILED, 3);
    txaio__drain_at(L, TXAIO_UPRUNQUEUE);
  }
  return 0;
}

static void push_cancelled_error(lua_State *L, int msgidx) {
  lua_createtable(L, 0, 1);
  lua_pushvalue(L, msgidx);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, TXAIO_CANCELLED_MT);
}

static int fut_cancel(lua_State *L) {
  Future *f = txaio__checkfuture(L, 1);
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) luaL_checkstring(L, 2);
  if (f->state != FUT_PENDING || f->settling) {
    lua_pushboolean(L, 0);
    return 1;
  }
  /* the failure first: making it allocates, so finalizers may run and complete or cancel f */
  push_cancelled_error(L, 2);   /* 3 */
  txaio__tofailure(L, 3, 1);    /* 4 */
  if (f->state != FUT_PENDING || f->settling) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (f->hascanceller) {
    int status;
    lua_getiuservalue(L, 1, FS_CANCELLER);
    f->settling = 1;
    txaio__pushmsgh(L);
    lua_insert(L, -2);
    lua_pushvalue(L, 1);
    status = lua_pcall(L, 1, 0, -3);
    f->settling = 0;
    if (status != LUA_OK) txaio__report(L, "canceller", lua_gettop(L));
    if (f->state != FUT_PENDING) {   /* the canceller completed the future itself */
      txaio__drain(L);
      lua_pushboolean(L, 1);
      return 1;
    }
  }
  lua_settop(L, 4);
  f->cancelled = 1;
  txaio__settle(L, 1, FUT_FAILED, 4);
  txaio__drain(L);
  lua_pushboolean(L, 1);
  return 1;
}

static int fut_add_callbacks(lua_State *L) {
  Future *f = checkfuture(L, 1);
  int tcb, teb;
  if (lua_gettop(L) != 3) lua_settop(L, 3);
  tcb = lua_type(L, 2);
  teb = lua_type(L, 3);
  /* functions and nils need no further look; anything else must have a __call */
  if (tcb != LUA_TFUNCTION && tcb != LUA_TNIL) txaio__checkcallable(L, 2, 1);
  if (teb != LUA_TFUNCTION && teb != LUA_TNIL) txaio__checkcallable(L, 3, 1);
  if (tcb == LUA_TNIL && teb == LUA_TNIL)
    return luaL_error(L, "add_callbacks: callback and errback cannot both be nil");
  if (f->state == FUT_PENDING && f->ncallbacks == 0) {
    /* the common case, a first pair: store it straight off the stack, leaving f to return */
    if (teb != LUA_TNIL) f->observed = 1;
    lua_setiuservalue(L, 1, FS_ERRBACK);
    lua_setiuservalue(L, 1, FS_CALLBACK);
    f->ncallbacks = 1;
    return 1;
  }
  txaio__addcallbacks(L, 1, 2, 3);
  if (f->state != FUT_PENDING) txaio__drain_at(L, TXAIO_UPRUNQUEUE);   /* pending: only stored */
  lua_settop(L, 1);
  return 1;
}

static int fut_result(lua_State *L) {
  Future *f = txaio__checkfuture(L, 1);
  if (f->state == FUT_PENDING) return luaL_argerror(L, 1, "future is still pending");
  lua_getiuservalue(L, 1, FS_VALUE);
  if (f->state == FUT_RESOLVED) return 1;
  lua_getiuservalue(L, -1, 1);   /* the failure's error value */
  return lua_error(L);
}

/* core.outcome(f) -> "pending" | "resolved", value | "failed", failure; the failure counts as seen */
static int fut_outcome(lua_State *L) {
  Future *f = txaio__checkfuture(L, 1);
  lua_pushstring(L, state_names[f->state]);
  if (f->state == FUT_PENDING) return 1;
  if (f->state == FUT_FAILED) f->observed = 1;
  lua_getiuservalue(L, 1, FS_VALUE);
  return 2;
}

static int fut_as_future(lua_State *L) {
  int nargs = lua_gettop(L) - 1;
  txaio__checkcallable(L, 1, 0);
  txaio__pushmsgh(L);
  lua_insert(L, 1);
  if (lua_pcall(L, nargs, 1, 1) != LUA_OK) {
    Future *f;
    /* a memory error (or an error in the handler) skips the handler: the raw value comes back */
    if (!txaio__isfailure(L, -1)) {
      txaio__tofailure(L, -1, 1);
      lua_remove(L, -2);
    }
    f = txaio__upnewfuture(L);
    f->state = FUT_FAILED;
    lua_insert(L, -2);
    lua_setiuservalue(L, -2, FS_VALUE);
    watch_unobserved(L, lua_gettop(L), f);
    return 1;
  }
  if (txaio__tofuture(L, -1)) return 1;
  txaio__upnewfuture(L)->state = FUT_RESOLVED;
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, FS_VALUE);
  return 1;
}

static int fut_tostring(lua_State *L) {
  Future *f = txaio__checkfuture(L, 1);
  const void *p = lua_topointer(L, 1);
  if (f->cancelled) {
    lua_pushfstring(L, "txaio.Future: %p (cancelled)", p);
  } else if (f->state == FUT_FAILED) {
    lua_pushfstring(L, "txaio.Future: %p (failed: ", p);
    lua_getiuservalue(L, 1, FS_VALUE);
    txaio__pushfailuremessage(L, lua_gettop(L));
    lua_remove(L, -2);
    lua_pushliteral(L, ")");
    lua_concat(L, 3);   /* not %s: the message may hold a NUL */
  } else {
    lua_pushfstring(L, "txaio.Future: %p (%s)", p, state_names[f->state]);
  }
  return 1;
}

/* Finalizers never run user code: an unobserved failure is queued and reported later. */
static int fut_gc(lua_State *L) {
  Future *f = txaio__tofuture(L, 1);   /* a table can borrow the metatable: check, never assume */
  if (f && f->state == FUT_FAILED && !f->observed) {
    lua_getiuservalue(L, 1, FS_VALUE);
    txaio__queue_unhandled(L, lua_gettop(L));
  }
  return 0;
}

static const luaL_Reg future_methods[] = {
  { "add_callbacks", fut_add_callbacks },
  { "resolve", fut_resolve },
  { "reject", fut_reject },
  { "cancel", fut_cancel },
  { "is_called", fut_is_called },
  { "result", fut_result },
  { NULL, NULL }
};

static const luaL_Reg future_meta[] = {
  { "__tostring", fut_tostring },
  { NULL, NULL }
};

static const luaL_Reg future_funcs[] = {
  { "create_future", fut_create },
  { "create_future_success", fut_create_success },
  { "create_future_error", fut_create_error },
  { "as_future", fut_as_future },
  { "is_future", fut_is_future },
  { "is_called", fut_is_called },
  { "resolve", fut_resolve },
  { "reject", fut_reject },
  { "cancel", fut_cancel },
  { "add_callbacks", fut_add_callbacks },
  { "result", fut_result },
  { "outcome", fut_outcome },
  { NULL, NULL }
};

/* [-0, +0] registers the metatable and adds the functions to the module table on top. */
void txaio__openfuture(lua_State *L) {
  /* both metatables first: every function below gets them as upvalues */
  luaL_newmetatable(L, TXAIO_FUTURE_MT);
  luaL_newmetatable(L, TXAIO_UNOBSERVED_MT);
  lua_pushstring(L, TXAIO_FUTURE_MT);   /* one type to users: messages and tostring agree */
  lua_setfield(L, -2, "__name");
  lua_pop(L, 2);
  txaio__pushfuturemts(L);
  luaL_setfuncs(L, future_funcs, TXAIO_FUTURE_NUP);          /* into the module table */
  luaL_newmetatable(L, TXAIO_FUTURE_MT);
  lua_newtable(L);
  txaio__pushfuturemts(L);
  luaL_setfuncs(L, future_methods, TXAIO_FUTURE_NUP);
  lua_setfield(L, -2, "__index");
  txaio__pushfuturemts(L);
  luaL_setfuncs(L, future_meta, TXAIO_FUTURE_NUP);
  luaL_newmetatable(L, TXAIO_UNOBSERVED_MT);
  lua_getfield(L, -2, "__index");
  lua_setfield(L, -2, "__index");
  lua_getfield(L, -2, "__tostring");
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, fut_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 2);
}
