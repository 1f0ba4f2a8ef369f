/*
** host.c - the embedder's C API (txaio.h). Thin: each call does what the Lua API does, reaching
** the public functions through require so that C and Lua callers share one code path.
*/
#include "sched.h"
#include "txaio.h"

/* [-0, +1, e] require(name) */
static void require(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
}

TXAIO_API void txaio_openlibs(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_txaio_core);
  lua_setfield(L, -2, "txaio.core");
  lua_pop(L, 2);
}

TXAIO_API void txaio_pushhostloop(lua_State *L, txaio_Now now, txaio_Wake wake, void *ud,
                                  txaio_Free fin) {
  Scheduler *s;
  if (now == NULL) luaL_error(L, "txaio_pushhostloop: a clock callback is required");
  require(L, "txaio.loop");
  lua_getfield(L, -1, "new");
  lua_remove(L, -2);
  lua_pushliteral(L, "host");
  require(L, "txaio.core");    /* metatables are registered when the core is opened */
  lua_pop(L, 1);
  s = txaio__newscheduler(L);
  s->c_now = now;
  s->c_wake = wake;
  s->c_free = fin;
  s->c_ud = ud;
  lua_call(L, 2, 1);
}

TXAIO_API void txaio_usehost(lua_State *L, txaio_Now now, txaio_Wake wake, void *ud,
                             txaio_Free fin) {
  require(L, "txaio");
  lua_getfield(L, -1, "config");
  txaio_pushhostloop(L, now, wake, ud, fin);
  lua_setfield(L, -2, "loop");
  lua_pop(L, 2);
}

TXAIO_API double txaio_tick(lua_State *L) {
  double next = -1;
  require(L, "txaio");
  lua_getfield(L, -1, "tick");
  lua_call(L, 0, 1);
  if (lua_type(L, -1) == LUA_TNUMBER) next = lua_tonumber(L, -1);
  lua_pop(L, 2);
  return next;
}

TXAIO_API void txaio_newfuture(lua_State *L) {
  require(L, "txaio.core");
  lua_pop(L, 1);
  txaio__newfuture(L);
}

TXAIO_API int txaio_isfuture(lua_State *L, int idx) {
  return txaio__tofuture(L, idx) != NULL;
}

static void complete(lua_State *L, int idx, const char *fname) {
  idx = lua_absindex(L, idx);
  require(L, "txaio.core");
  lua_getfield(L, -1, fname);
  lua_remove(L, -2);
  lua_insert(L, -2);           /* fn, value */
  lua_pushvalue(L, idx);
  lua_insert(L, -2);           /* fn, future, value */
  lua_call(L, 2, 0);
}

TXAIO_API void txaio_resolve(lua_State *L, int idx) {
  complete(L, idx, "resolve");
}

TXAIO_API void txaio_reject(lua_State *L, int idx) {
  complete(L, idx, "reject");
}
