/*
** core.c - luaopen_txaio_core: assembles the module from the other translation units.
*/
#include <time.h>

#include "internal.h"
#include "sched.h"
#include "txaio.h"

static lua_Integer clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (lua_Integer)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int core_time_ns(lua_State *L) {
  lua_pushinteger(L, clock_ns(CLOCK_REALTIME));
  return 1;
}

static int core_perf_counter_ns(lua_State *L) {
  lua_pushinteger(L, clock_ns(CLOCK_MONOTONIC));
  return 1;
}

static const luaL_Reg core_funcs[] = {
  { "time_ns", core_time_ns },
  { "perf_counter_ns", core_perf_counter_ns },
  { NULL, NULL }
};

TXAIO_API int luaopen_txaio_core(lua_State *L) {
  luaL_newlib(L, core_funcs);
  txaio__openrunqueue(L);
  txaio__openfailure(L);
  txaio__openfuture(L);
  txaio__opengather(L);
  txaio__opensched(L);
  txaio__openbatch(L);
  lua_pushinteger(L, TXAIO_VERSION_NUM);
  lua_setfield(L, -2, "VERSION_NUM");
  return 1;
}
