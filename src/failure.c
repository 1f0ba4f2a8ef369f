/*
** failure.c - the Failure userdata: an error value plus the stack frames where it was raised.
** Frames are captured eagerly (the stack is gone afterwards) and formatted lazily, so raising is
** the only cost paid on the error path.
*/
#include <string.h>

#include "internal.h"

/* As luaL_traceback does: keep the innermost and outermost frames of a very deep stack. */
#define LEVELS_INNER 10
#define LEVELS_OUTER 11

/* FL_AWAITS: where the failure left each spawned coroutine it went through (see fail_awaited) */
enum FailureSlot { FL_VALUE = 1, FL_FRAMES, FL_AWAITS, FL_NSLOTS = FL_AWAITS };

typedef struct Failure {
  unsigned int tag;   /* see txaio__tag */
  int skipped;   /* frames left out between the inner and outer ones */
} Failure;

int txaio__isfailure(lua_State *L, int idx) {
  return txaio__testudata(L, idx, TXAIO_FAILURE_MT, sizeof(Failure), TXAIO_KIND_FAILURE) != NULL;
}

static Failure *checkfailure(lua_State *L, int idx) {
  return (Failure *)txaio__checkudata(L, idx, TXAIO_FAILURE_MT, sizeof(Failure),
                                     TXAIO_KIND_FAILURE);
}

static int last_level(lua_State *L) {
  lua_Debug ar;
  int li = 1, le = 1;
  while (lua_getstack(L, le, &ar)) { li = le; le *= 2; }
  while (li < le) {
    int m = (li + le) / 2;
    if (lua_getstack(L, m, &ar)) li = m + 1;
    else le = m;
  }
  return le - 1;
}

static void failure_of(lua_State *L, lua_State *L1, int vidx, int level);

static void push_frame(lua_State *L, lua_Debug *ar) {
  lua_createtable(L, 0, 7);
  lua_pushstring(L, ar->short_src);
  lua_setfield(L, -2, "source");
  if (ar->currentline > 0) {
    lua_pushinteger(L, ar->currentline);
    lua_setfield(L, -2, "line");
  }
  if (ar->name) {
    lua_pushstring(L, ar->name);
    lua_setfield(L, -2, "name");
  }
  lua_pushstring(L, ar->namewhat);
  lua_setfield(L, -2, "namewhat");
  lua_pushstring(L, ar->what);
  lua_setfield(L, -2, "what");
  lua_pushinteger(L, ar->linedefined);
  lua_setfield(L, -2, "linedefined");
  if (txaio_istailcall(ar)) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "tailcall");
  }
}

/*
** [-0, +1, m] a new failure for the value at vidx, with the frames from stack 'level' outwards
** (0 is the running C function, 1 its caller).
*/
void txaio__pushfailure(lua_State *L, int vidx, int level) {
  failure_of(L, L, vidx, level);
}

/* The same, with the frames read from thread L1 (a coroutine that died of the error). */
static void failure_of(lua_State *L, lua_State *L1, int vidx, int level) {
  lua_Debug ar;
  Failure *fl;
  int last, n = 0;
  vidx = lua_absindex(L, vidx);
  last = last_level(L1);
  fl = (Failure *)lua_newuserdatauv(L, sizeof(Failure), FL_NSLOTS);
  fl->tag = txaio__tag(fl, TXAIO_KIND_FAILURE);
  fl->skipped = 0;
  luaL_setmetatable(L, TXAIO_FAILURE_MT);
  lua_pushvalue(L, vidx);
  lua_setiuservalue(L, -2, FL_VALUE);
  lua_createtable(L, last - level + 1 > 0 ? last - level + 1 : 0, 0);
  for (; lua_getstack(L1, level, &ar); level++) {
    if (n == LEVELS_INNER && last - level + 1 > LEVELS_OUTER) {
      fl->skipped = last - LEVELS_OUTER + 1 - level;
      level += fl->skipped - 1;
      continue;
    }
    lua_getinfo(L1, TXAIO_GETINFO, &ar);
    push_frame(L, &ar);
    lua_rawseti(L, -2, ++n);
  }
  lua_setiuservalue(L, -2, FL_FRAMES);
}

/* [-0, +1, m] the value at vidx if it is a failure already, else a new failure wrapping it. */
void txaio__tofailure(lua_State *L, int vidx, int level) {
  if (txaio__isfailure(L, vidx)) lua_pushvalue(L, vidx);
  else txaio__pushfailure(L, vidx, level);
}

/* Message handler for lua_pcall: turns whatever was raised into a failure at the raise point. */
int txaio__failure_msgh(lua_State *L) {
  txaio__tofailure(L, 1, 1);
  return 1;
}

const char txaio__msgh_key = 0;   /* its address names the handler where a closure is kept */

static int fail_create(lua_State *L) {
  luaL_checkany(L, 1);
  txaio__tofailure(L, 1, 1);
  return 1;
}

/* core.failure_at(err, level): for Lua message handlers, which sit 'level' frames above the raise */
static int fail_create_at(lua_State *L) {
  int level = (int)luaL_checkinteger(L, 2);
  luaL_checkany(L, 1);
  luaL_argcheck(L, level >= 1, 2, "level must be at least 1");
  txaio__tofailure(L, 1, level);
  return 1;
}

/* core.failure_of_thread(co, err): where a coroutine died (its stack survives the error) */
static int fail_of_thread(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co != NULL, 1, "thread");
  luaL_checkany(L, 2);
  if (txaio__isfailure(L, 2)) lua_pushvalue(L, 2);
  else failure_of(L, co, 2, 0);
  return 1;
}

/*
** core.failure_awaited(failure, [co,] where): a failure with the same value and frames whose await
** chain adds one frame: the line where the failure left a coroutine started by spawn, given as a
** stack level of thread co (default: the running one), or as the coroutine's function when no
** line of it is left on the stack (it tail-called await). A new object rather than an edit: errbacks
** of the inner future already hold the original, and each coroutine crossed has its own path.
*/
static int fail_awaited(lua_State *L) {
  Failure *inner = checkfailure(L, 1), *outer;
  int arg = lua_isthread(L, 2) ? 3 : 2;
  lua_State *L1 = arg == 3 ? lua_tothread(L, 2) : L;
  int n = 0, i, found;
  lua_Debug ar;
  memset(&ar, 0, sizeof ar);   /* '>S' fills no currentline, name or istailcall */
  if (lua_isfunction(L, arg)) {
    lua_settop(L, arg);
    lua_pushvalue(L, arg);
    found = lua_getinfo(L, ">S", &ar);
    ar.currentline = -1;
    ar.namewhat = "";
  } else {
    int level = (int)luaL_checkinteger(L, arg);
    luaL_argcheck(L, level >= 0, arg, "level must not be negative");
    lua_settop(L, arg);
    found = lua_getstack(L1, level, &ar) && lua_getinfo(L1, TXAIO_GETINFO, &ar);
  }
  outer = (Failure *)lua_newuserdatauv(L, sizeof(Failure), FL_NSLOTS);
  outer->tag = txaio__tag(outer, TXAIO_KIND_FAILURE);
  outer->skipped = inner->skipped;
  luaL_setmetatable(L, TXAIO_FAILURE_MT);
  lua_getiuservalue(L, 1, FL_VALUE);
  lua_setiuservalue(L, -2, FL_VALUE);
  lua_getiuservalue(L, 1, FL_FRAMES);
  lua_setiuservalue(L, -2, FL_FRAMES);
  if (lua_getiuservalue(L, 1, FL_AWAITS) == LUA_TTABLE) n = (int)lua_rawlen(L, -1);
  lua_createtable(L, n + 1, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    lua_rawseti(L, -2, i);
  }
  if (found) {
    push_frame(L, &ar);
    lua_rawseti(L, -2, n + 1);
  }
  lua_setiuservalue(L, -3, FL_AWAITS);
  lua_pop(L, 1);
  return 1;
}

static int fail_is_failure(lua_State *L) {
  lua_pushboolean(L, txaio__isfailure(L, 1));
  return 1;
}

/* Runs in protected mode: __tostring and __name lookups are user code and may raise. */
static int message_parts(lua_State *L) {
  int t = lua_type(L, 1), named = 0;
  /* the name found stays on top as the kind, whole (it may hold a NUL) */
  if (t == LUA_TTABLE || t == LUA_TUSERDATA) {
    if (luaL_getmetafield(L, 1, "__name") == LUA_TSTRING) named = 1;
    else if (t == LUA_TTABLE && lua_getfield(L, 1, "name") == LUA_TSTRING) named = 1;
  }
  if (!named) lua_pushliteral(L, "error");
  luaL_tolstring(L, 1, NULL);
  /* 5.2's luaL_tolstring passes on whatever __tostring returned */
  if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "'__tostring' must return a string");
  return 2;
}

/* [-0, +1, m] "<kind>: <message>" on one line for the failure at idx; never raises. */
void txaio__pushfailuremessage(lua_State *L, int idx) {
  const char *kind, *msg;
  size_t kindlen, msglen, i;
  luaL_Buffer b;
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, message_parts);
  lua_getiuservalue(L, idx, FL_VALUE);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
    const char *why = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    lua_pushfstring(L, "error: (error while converting the error value to a string: %s)", why);
    lua_remove(L, -2);
    return;
  }
  /* by length: an error message may hold a NUL, and tostring keeps what follows it */
  kind = lua_tolstring(L, -2, &kindlen);
  msg = lua_tolstring(L, -1, &msglen);
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, kind, kindlen);
  if (msglen) {
    luaL_addstring(&b, ": ");
    for (i = 0; i < msglen; i++) {
      if (msg[i] == '\r' && i + 1 < msglen && msg[i + 1] == '\n') continue;
      luaL_addchar(&b, (msg[i] == '\n' || msg[i] == '\r') ? ' ' : msg[i]);
    }
  }
  luaL_pushresult(&b);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

static int fail_message(lua_State *L) {
  checkfailure(L, 1);
  txaio__pushfailuremessage(L, 1);
  return 1;
}

static int fail_traceback(lua_State *L) {
  checkfailure(L, 1);
  lua_getiuservalue(L, 1, FL_FRAMES);
  return 1;
}

/* fail:await_chain(): a copy, so that callers cannot rewrite the chain another future shares */
static int fail_await_chain(lua_State *L) {
  int i, n = 0;
  checkfailure(L, 1);
  if (lua_getiuservalue(L, 1, FL_AWAITS) == LUA_TTABLE) n = (int)lua_rawlen(L, -1);
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    lua_rawseti(L, -2, i);
  }
  return 1;
}

static const char *field_string(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  return lua_tostring(L, -1);
}

/* One traceback line, worded as luaL_traceback words it. */
static void push_frame_line(lua_State *L, int frame) {
  const char *src = field_string(L, frame, "source");
  const char *name = field_string(L, frame, "name");
  const char *namewhat = field_string(L, frame, "namewhat");
  const char *what = field_string(L, frame, "what");
  int line = (lua_getfield(L, frame, "line"), (int)lua_tointeger(L, -1));
  int defined = (lua_getfield(L, frame, "linedefined"), (int)lua_tointeger(L, -1));
  int tail = (lua_getfield(L, frame, "tailcall"), lua_toboolean(L, -1));
  int base = lua_gettop(L);
  if (line > 0) lua_pushfstring(L, "\n\t%s:%d: in ", src, line);
  else lua_pushfstring(L, "\n\t%s: in ", src);
  if (namewhat && *namewhat && name)
    lua_pushfstring(L, "%s '%s'", namewhat, name);
  else if (what && *what == 'm')
    lua_pushliteral(L, "main chunk");
  else if (what && *what != 'C')
    lua_pushfstring(L, "function <%s:%d>", src, defined);
  else
    lua_pushliteral(L, "?");
  if (tail) lua_pushliteral(L, "\n\t(...tail calls...)");
  lua_concat(L, lua_gettop(L) - base);
  lua_replace(L, base - 6);
  lua_settop(L, base - 6);
}

static int fail_format_traceback(lua_State *L) {
  Failure *fl = checkfailure(L, 1);
  int frames, i, n;
  lua_settop(L, 1);
  txaio__pushfailuremessage(L, 1);
  lua_pushliteral(L, "\nstack traceback:");
  lua_getiuservalue(L, 1, FL_FRAMES);
  frames = lua_gettop(L);
  n = (int)lua_rawlen(L, frames);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_concat(L, 2);   /* accumulator */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, frames, i);
    push_frame_line(L, lua_gettop(L));
    lua_remove(L, -2);
    if (i == LEVELS_INNER && fl->skipped > 0) {
      lua_pushfstring(L, "\n\t...\t(skipping %d levels)", fl->skipped);
      lua_concat(L, 3);
    } else {
      lua_concat(L, 2);
    }
  }
  /* the accumulator stays on top, with the await chain (innermost first) just below it */
  if (lua_getiuservalue(L, 1, FL_AWAITS) == LUA_TTABLE && (n = (int)lua_rawlen(L, -1)) > 0) {
    int awaits = lua_gettop(L) - 1;
    lua_insert(L, awaits);
    lua_pushliteral(L, "\nawaited at:");
    lua_concat(L, 2);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, awaits, i);
      push_frame_line(L, lua_gettop(L));
      lua_remove(L, -2);
      lua_concat(L, 2);
    }
  } else {
    lua_pop(L, 1);
  }
  return 1;
}

static int fail_index(lua_State *L) {
  const char *key = lua_tostring(L, 2);
  checkfailure(L, 1);
  if (key && strcmp(key, "value") == 0) {
    lua_getiuservalue(L, 1, FL_VALUE);
    return 1;
  }
  /* the methods table is an upvalue: the metatable is reachable from Lua, so a field of it could
     have been replaced by anything */
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static const luaL_Reg failure_methods[] = {
  { "message", fail_message },
  { "traceback", fail_traceback },
  { "format_traceback", fail_format_traceback },
  { "await_chain", fail_await_chain },
  { NULL, NULL }
};

static const luaL_Reg failure_meta[] = {
  { "__index", fail_index },
  { "__tostring", fail_message },
  { NULL, NULL }
};

static const luaL_Reg failure_funcs[] = {
  { "create_failure", fail_create },
  { "failure_at", fail_create_at },
  { "failure_of_thread", fail_of_thread },
  { "failure_awaited", fail_awaited },
  { "is_failure", fail_is_failure },
  { "failure_message", fail_message },
  { "failure_traceback", fail_traceback },
  { "failure_format_traceback", fail_format_traceback },
  { NULL, NULL }
};

static int cancelled_tostring(lua_State *L) {
  if (lua_getfield(L, 1, "message") == LUA_TNIL) lua_pushliteral(L, "cancelled");
  else luaL_tolstring(L, -1, NULL);
  return 1;
}

void txaio__openfailure(lua_State *L) {
  luaL_newmetatable(L, TXAIO_FAILURE_MT);
  luaL_newlib(L, failure_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods");   /* for users and docs; __index reads its own reference */
  luaL_setfuncs(L, failure_meta, 1);
  lua_pop(L, 1);
  luaL_setfuncs(L, failure_funcs, 0);
  /* CancelledError is a metatable users compare against; its __name gives failure_message's kind */
  luaL_newmetatable(L, TXAIO_CANCELLED_MT);
  lua_pushcfunction(L, cancelled_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_setfield(L, -2, "CancelledError");
}
