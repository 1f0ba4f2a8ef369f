/*
** A tiny "engine" that embeds Lua 5.4 and drives txaio from its own frame loop through txaio.h.
**
** Time is simulated (60 frames per second, advanced by the frame loop) so the output is the same
** on every run. The game script asks the engine to load an asset; the engine hands it a future,
** "loads" the asset over a few frames and resolves the future from C, as a real engine would
** when its loader thread finishes.
**
** Usage: c-host SCRIPT.lua   (with package.path able to find the txaio Lua files)
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"
#include "txaio.h"

#ifndef LUA_OK   /* Lua 5.1 and LuaJIT */
#define LUA_OK 0
#endif

#define FRAME_DT   (1.0 / 60.0)
#define MAX_FRAMES 600

typedef struct Engine {
  long frame;
  double now;                /* seconds of simulated time */
  double wake_at;            /* when txaio asked to be ticked; < 0: nothing pending */
  int pending_load;          /* registry ref of the future being loaded, or LUA_NOREF */
  long load_done_frame;
  char asset[64];
} Engine;

static double engine_now(void *ud) {
  return ((Engine *)ud)->now;
}

static void engine_wake(void *ud, double delay) {
  Engine *e = (Engine *)ud;
  e->wake_at = delay < 0 ? -1 : e->now + delay;
}

/* engine.load_asset(name) -> future, resolved a few frames later with the asset's size */
static int l_load_asset(lua_State *L) {
  Engine *e = (Engine *)lua_touserdata(L, lua_upvalueindex(1));
  const char *name = luaL_checkstring(L, 1);
  if (e->pending_load != LUA_NOREF) return luaL_error(L, "the loader is busy");
  snprintf(e->asset, sizeof e->asset, "%s", name);
  txaio_newfuture(L);
  lua_pushvalue(L, -1);
  e->pending_load = luaL_ref(L, LUA_REGISTRYINDEX);
  e->load_done_frame = e->frame + 12;
  printf("[engine] frame %ld: loading %s\n", e->frame, name);
  return 1;
}

static void finish_load(lua_State *L, Engine *e) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->pending_load);
  luaL_unref(L, LUA_REGISTRYINDEX, e->pending_load);
  e->pending_load = LUA_NOREF;
  printf("[engine] frame %ld: %s loaded, resolving its future from C\n", e->frame, e->asset);
  lua_pushinteger(L, (lua_Integer)strlen(e->asset) * 1024);
  txaio_resolve(L, -2);
  lua_pop(L, 1);
}

static int run(lua_State *L) {
  Engine *e = (Engine *)lua_touserdata(L, 1);
  const char *script = lua_tostring(L, 2);
  long ticks = 0;
  luaL_openlibs(L);
  txaio_openlibs(L);
  txaio_usehost(L, engine_now, engine_wake, e, NULL);

  lua_newtable(L);
  lua_pushlightuserdata(L, e);
  lua_pushcclosure(L, l_load_asset, 1);
  lua_setfield(L, -2, "load_asset");
  lua_setglobal(L, "engine");

  if (luaL_dofile(L, script) != LUA_OK) return lua_error(L);

  for (e->frame = 1; e->frame <= MAX_FRAMES; e->frame++) {
    e->now += FRAME_DT;
    if (e->pending_load != LUA_NOREF && e->frame >= e->load_done_frame) finish_load(L, e);
    /* tick only when txaio asked for it: the wake-up callback told us when */
    if (e->wake_at >= 0 && e->now >= e->wake_at) {
      double next = txaio_tick(L);
      ticks++;
      (void)next;
    }
    lua_getglobal(L, "done");
    if (lua_toboolean(L, -1)) {
      printf("[engine] frame %ld: script done after %ld txaio ticks\n", e->frame, ticks);
      return 0;
    }
    lua_pop(L, 1);
  }
  return luaL_error(L, "script did not finish within %d frames", MAX_FRAMES);
}

int main(int argc, char **argv) {
  Engine e;
  lua_State *L;
  int status;
  if (argc != 2) {
    fprintf(stderr, "usage: %s SCRIPT.lua\n", argv[0]);
    return 2;
  }
  memset(&e, 0, sizeof e);
  e.wake_at = -1;
  e.pending_load = LUA_NOREF;
  L = luaL_newstate();
  if (!L) return 1;
  lua_pushcfunction(L, run);
  lua_pushlightuserdata(L, &e);
  lua_pushstring(L, argv[1]);
  status = lua_pcall(L, 2, 0, 0);
  if (status != LUA_OK) fprintf(stderr, "c-host: %s\n", lua_tostring(L, -1));
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
