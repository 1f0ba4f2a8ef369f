/*
** harness.c - libFuzzer entry point for the C core (issue 7, `make fuzz`).
**
** Each input gets a fresh lua_State with the core linked in (txaio_openlibs) and a host loop whose
** clock is a variable the input controls (txaio_usehost). spec/fuzz/ops.lua decodes the input into
** operations and checks the invariants; this file gives it the C embedding API (txaio_newfuture,
** txaio_resolve, txaio_reject, txaio_tick, txaio_pushhostloop) and checks what only C can see:
** the documented stack effects, that txaio_Free runs exactly once per loop and that no clock or
** wake-up callback is used after it. Anything wrong ends in abort(), which libFuzzer reports with
** the input. lua_close at the end of every input lets LeakSanitizer see what the core leaked.
**
** Lua itself is not instrumented, only the core (and this file): coverage is the core's.
** TXAIO_FUZZ_ROOT (set by spec/support/check.mk) is the checkout, so the harness finds the Lua
** files from any working directory. TXAIO_FUZZ_TRACE=1 in the environment prints each operation.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"
#include "txaio.h"

#ifndef TXAIO_FUZZ_ROOT
#error "compile with -DTXAIO_FUZZ_ROOT='\"/path/to/the/checkout\"'"
#endif

#ifndef LUA_OK   /* Lua 5.1 and LuaJIT */
#define LUA_OK 0
#endif

/* the main loop and the few extra ones ops.lua may make; a fixed array so that the harness itself
   never touches freed memory when it checks what txaio did with them */
#define MAX_LOOPS 8

typedef struct HostLoop {
  double wake_at;   /* absolute time of the last wake-up request, when 'armed' */
  int armed;        /* 0 after a delay of -1 ("nothing pending"): clocks may well be negative */
  int freed;        /* times txaio_Free was called for it */
} HostLoop;

static double fake_clock;
static HostLoop loops[MAX_LOOPS];
static int nloops;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *why) {
  fprintf(stderr, "txaio fuzz harness: %s\n", why);
  abort();
}

static double host_now(void *ud) {
  if (((HostLoop *)ud)->freed) die("now() called after txaio_Free released the loop");
  return fake_clock;
}

static void host_wake(void *ud, double delay) {
  HostLoop *h = (HostLoop *)ud;
  if (h->freed) die("wake() called after txaio_Free released the loop");
  /* txaio.h: a delay >= 0, or -1 for "nothing pending"; NaN is neither */
  if (!(delay >= 0) && delay != -1) die("wake() got a delay that is neither >= 0 nor -1");
  h->armed = delay >= 0;
  h->wake_at = fake_clock + delay;
}

static void host_free(void *ud) {
  ((HostLoop *)ud)->freed++;
}

/*
** Lua's memory goes through this allocator. liblua is not instrumented, so ASan does not see it
** write past a block, as it does when the core pushes more values than a Lua stack holds; a
** canary after every block, checked whenever Lua resizes or frees it, does.
*/
static const unsigned char canary[16] = {
  0xca, 0xfe, 0xf0, 0x0d, 0x5a, 0xa5, 0x3c, 0xc3, 0x01, 0x80, 0x7f, 0xfe, 0x12, 0x34, 0x56, 0x78
};

static void *checked_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  char *p;
  (void)ud;
  if (ptr != NULL && memcmp((char *)ptr + osize, canary, sizeof canary) != 0)
    die("a block of Lua's memory was written past its end (a Lua stack overflowed?)");
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  p = (char *)realloc(ptr, nsize + sizeof canary);
  if (p != NULL) memcpy(p + nsize, canary, sizeof canary);
  return p;
}

/* ------------------------------------------------------------- the env table ops.lua gets */

static int l_clock(lua_State *L) {
  lua_pushnumber(L, fake_clock);
  return 1;
}

static int l_set_clock(lua_State *L) {
  fake_clock = (double)luaL_checknumber(L, 1);
  return 0;
}

static int l_wake_at(lua_State *L) {
  HostLoop *h = &loops[lua_tointeger(L, lua_upvalueindex(1))];
  if (h->freed || !h->armed) lua_pushnil(L);
  else lua_pushnumber(L, h->wake_at);
  return 1;
}

static void push_wake_at(lua_State *L, int i) {
  lua_pushinteger(L, i);
  lua_pushcclosure(L, l_wake_at, 1);
}

/* env.new_loop() -> loop, wake_at: txaio_pushhostloop, [-0, +1] */
static int l_new_loop(lua_State *L) {
  int top = lua_gettop(L), i;
  if (nloops == MAX_LOOPS) return luaL_error(L, "the harness has no room for another loop");
  i = nloops++;
  memset(&loops[i], 0, sizeof loops[i]);
  txaio_pushhostloop(L, host_now, host_wake, &loops[i], host_free);
  if (lua_gettop(L) != top + 1 || !lua_istable(L, -1)) die("txaio_pushhostloop did not push one loop");
  push_wake_at(L, i);
  return 2;
}

/* env.tick(): txaio_tick, [-0, +0] */
static int l_tick(lua_State *L) {
  int top = lua_gettop(L);
  double next = txaio_tick(L);
  if (lua_gettop(L) != top) die("txaio_tick changed the stack");
  if (next != next) die("txaio_tick returned NaN");
  lua_pushnumber(L, next);
  return 1;
}

/* env.new_future(): txaio_newfuture, [-0, +1] */
static int l_new_future(lua_State *L) {
  int top = lua_gettop(L);
  txaio_newfuture(L);
  if (lua_gettop(L) != top + 1 || !txaio_isfuture(L, -1)) die("txaio_newfuture did not push a future");
  return 1;
}

/* env.resolve(f, v) and env.reject(f, v): [-1, +0] with the future just below the value */
static int complete(lua_State *L, void (*fn)(lua_State *, int)) {
  lua_settop(L, 2);
  fn(L, -2);
  if (lua_gettop(L) != 1) die("txaio_resolve/txaio_reject did not pop exactly the value");
  return 0;
}

static int l_resolve(lua_State *L) {
  return complete(L, txaio_resolve);
}

static int l_reject(lua_State *L) {
  return complete(L, txaio_reject);
}

static int l_is_future(lua_State *L) {
  lua_pushboolean(L, txaio_isfuture(L, 1));
  return 1;
}

static int l_gc(lua_State *L) {
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}

static const luaL_Reg env_funcs[] = {
  { "clock", l_clock },
  { "set_clock", l_set_clock },
  { "new_loop", l_new_loop },
  { "tick", l_tick },
  { "new_future", l_new_future },
  { "resolve", l_resolve },
  { "reject", l_reject },
  { "is_future", l_is_future },
  { "gc", l_gc },
  { NULL, NULL }
};

/* ------------------------------------------------------------- compiled once, loaded per input */

/*
** Parsing the Lua files again for every input would cost more than most inputs take to run, so
** they are compiled once, in a scratch state, and each input loads the bytecode (debug information
** included: failures and logger namespaces see the same sources). A file that does not compile is
** left out, and require then reports the error the usual way.
*/
typedef struct Chunk {
  const char *module;   /* package.preload key; NULL for ops.lua */
  const char *path;     /* under TXAIO_FUZZ_ROOT */
  char *code;
  size_t len, cap;
} Chunk;

static Chunk chunks[] = {
  { NULL, "/spec/fuzz/ops.lua", NULL, 0, 0 },
  { "txaio", "/lua/txaio/init.lua", NULL, 0, 0 },
  { "txaio.loop", "/lua/txaio/loop.lua", NULL, 0, 0 },
  { "txaio.backend.host", "/lua/txaio/backend/host.lua", NULL, 0, 0 },
  { "txaio.coro", "/lua/txaio/coro.lua", NULL, 0, 0 },
  { "txaio.report", "/lua/txaio/report.lua", NULL, 0, 0 },
  { "txaio.log", "/lua/txaio/log.lua", NULL, 0, 0 },
};
#define NCHUNKS ((int)(sizeof chunks / sizeof chunks[0]))

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  Chunk *c = (Chunk *)ud;
  (void)L;
  if (c->len + sz > c->cap) {   /* lua_dump writes in small pieces: grow geometrically */
    size_t cap = c->cap ? c->cap : 4096;
    char *grown;
    while (cap < c->len + sz) cap *= 2;
    grown = (char *)realloc(c->code, cap);
    if (grown == NULL) return 1;
    c->code = grown;
    c->cap = cap;
  }
  memcpy(c->code + c->len, p, sz);
  c->len += sz;
  return 0;
}

static void compile_chunks(void) {
  char path[4096];
  lua_State *L;
  int i;
  L = luaL_newstate();
  if (L == NULL) die("luaL_newstate failed");
  for (i = 0; i < NCHUNKS; i++) {
    snprintf(path, sizeof path, "%s%s", TXAIO_FUZZ_ROOT, chunks[i].path);
    if (luaL_loadfile(L, path) == LUA_OK && lua_dump(L, dump_writer, &chunks[i], 0) != 0) {
      free(chunks[i].code);
      chunks[i].code = NULL;
    }
    lua_settop(L, 0);
  }
  lua_close(L);
}

/* [-0, +1, e] pushes chunk i as a function: from the bytecode, or from the file as a fallback */
static void push_chunk(lua_State *L, int i) {
  char path[4096];
  int status;
  snprintf(path, sizeof path, "@%s%s", TXAIO_FUZZ_ROOT, chunks[i].path);
  if (chunks[i].code) status = luaL_loadbufferx(L, chunks[i].code, chunks[i].len, path, "b");
  else status = luaL_loadfile(L, path + 1);
  if (status != LUA_OK) lua_error(L);
}

/* Runs one input, in protected mode: (input string) -> nothing. */
static int run(lua_State *L) {
  int top, i;
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushliteral(L, TXAIO_FUZZ_ROOT "/lua/?.lua;" TXAIO_FUZZ_ROOT "/lua/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");   /* the core is linked in: never load a core.so by accident */
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  txaio_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  for (i = 1; i < NCHUNKS; i++)
    if (chunks[i].code) {
      push_chunk(L, i);
      lua_setfield(L, -2, chunks[i].module);
    }
  lua_pop(L, 2);
  top = lua_gettop(L);
  txaio_usehost(L, host_now, host_wake, &loops[0], host_free);
  if (lua_gettop(L) != top) die("txaio_usehost changed the stack");

  push_chunk(L, 0);
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "run");
  lua_pushvalue(L, 1);              /* the input */
  lua_newtable(L);                  /* env */
  luaL_setfuncs(L, env_funcs, 0);
  push_wake_at(L, 0);
  lua_setfield(L, -2, "wake_at");
  lua_getglobal(L, "require");
  lua_pushliteral(L, "txaio");
  lua_call(L, 1, 1);
  lua_setfield(L, -2, "txaio");
  lua_pushliteral(L, "act");        /* finalizers keep acting, inside lua_close too */
  lua_setfield(L, -2, "after_end");
  if (getenv("TXAIO_FUZZ_TRACE")) {
    if (luaL_loadstring(L, "return function(line) io.stderr:write(line, '\\n') end") != LUA_OK)
      return lua_error(L);
    lua_call(L, 0, 1);
    lua_setfield(L, -2, "trace");
  }
  lua_call(L, 2, 0);
  return 0;
}

/* Before the first input: memory it allocates would look like that input's leak to libFuzzer. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  compile_chunks();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L;
  int i, status;
  fake_clock = 0;
  memset(loops, 0, sizeof loops);
  nloops = 1;
  L = lua_newstate(checked_alloc, NULL);
  if (L == NULL) die("lua_newstate failed");
  lua_pushcfunction(L, run);
  lua_pushlstring(L, (const char *)data, size);
  status = lua_pcall(L, 1, 0, 0);
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
    die("an invariant broke (or ops.lua failed); the message is above");
  }
  lua_close(L);
  for (i = 0; i < nloops; i++)
    if (loops[i].freed != 1) die("txaio_Free was not called exactly once for a loop");
  return 0;
}
