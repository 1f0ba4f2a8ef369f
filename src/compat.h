/*
** compat.h - the only file that looks at LUA_VERSION_NUM.
** The core is written against the Lua 5.4 API; for 5.3, 5.2, 5.1 and LuaJIT 2.1 this maps the
** names it uses onto what those versions have. Anything that must be a function is a static
** inline txaio_ function reached through a macro, so it can never collide with LuaJIT's extras.
*/
#ifndef TXAIO_COMPAT_H
#define TXAIO_COMPAT_H

#include "lua.h"
#include "lauxlib.h"

#if defined(__GNUC__)
#define txaio_likely(x)    __builtin_expect(!!(x), 1)
#define txaio_unlikely(x)  __builtin_expect(!!(x), 0)
#else
#define txaio_likely(x)    (x)
#define txaio_unlikely(x)  (x)
#endif

/* ------------------------------------------------------------- 5.1 and LuaJIT 2.1 */
#if LUA_VERSION_NUM < 502

#define LUA_OK 0
#define lua_rawlen(L, i)  lua_objlen(L, (i))

static inline int txaio_absindex(lua_State *L, int i) {
  return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}
#define lua_absindex(L, i)  txaio_absindex(L, (i))

static inline int txaio_rawgetp(lua_State *L, int t, const void *p) {
  t = txaio_absindex(L, t);
  lua_pushlightuserdata(L, (void *)p);
  lua_rawget(L, t);
  return lua_type(L, -1);
}
#define lua_rawgetp(L, t, p)  txaio_rawgetp(L, (t), (p))

static inline void txaio_rawsetp(lua_State *L, int t, const void *p) {
  t = txaio_absindex(L, t);
  lua_pushlightuserdata(L, (void *)p);
  lua_insert(L, -2);
  lua_rawset(L, t);
}
#define lua_rawsetp(L, t, p)  txaio_rawsetp(L, (t), (p))

#ifndef luaL_newlibtable   /* LuaJIT has it; plain 5.1 does not */
#define luaL_newlibtable(L, l)  lua_createtable(L, 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
#endif

static inline void txaio_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
#define luaL_setfuncs(L, l, n)  txaio_setfuncs(L, (l), (n))
#undef luaL_newlib   /* LuaJIT 2.1 has its own, built on luaL_register */
#define luaL_newlib(L, l)  (lua_createtable(L, 0, sizeof(l) / sizeof((l)[0]) - 1), \
                            luaL_setfuncs(L, (l), 0))

static inline void *txaio_testudata(lua_State *L, int i, const char *tname) {
  void *p = lua_touserdata(L, i);
  if (p == NULL || !lua_getmetatable(L, i)) return NULL;
  luaL_getmetatable(L, tname);
  if (!lua_rawequal(L, -1, -2)) p = NULL;
  lua_pop(L, 2);
  return p;
}
#define luaL_testudata(L, i, t)  txaio_testudata(L, (i), (t))
#undef luaL_setmetatable
#define luaL_setmetatable(L, t)  (luaL_getmetatable(L, (t)), lua_setmetatable(L, -2))

static inline const char *txaio_tolstring(lua_State *L, int i, size_t *len) {
  if (luaL_callmeta(L, i, "__tostring")) {
    if (!lua_isstring(L, -1)) luaL_error(L, "'__tostring' must return a string");
  } else {
    switch (lua_type(L, i)) {
      case LUA_TNUMBER: case LUA_TSTRING: lua_pushvalue(L, i); lua_tostring(L, -1); break;
      case LUA_TBOOLEAN: lua_pushstring(L, lua_toboolean(L, i) ? "true" : "false"); break;
      case LUA_TNIL: lua_pushliteral(L, "nil"); break;
      default: lua_pushfstring(L, "%s: %p", luaL_typename(L, i), lua_topointer(L, i)); break;
    }
  }
  return lua_tolstring(L, -1, len);
}
#define luaL_tolstring(L, i, len)  txaio_tolstring(L, (i), (len))

/* 5.1 keeps a userdata's Lua value in its environment table (lua_setfenv wants a table). */
#define txaio_getuservalue(L, i)  lua_getfenv(L, (i))
#define txaio_setuservalue(L, i)  lua_setfenv(L, (i))

/* Pushing a C function makes a new closure here, so it allocates (and a finalizer may run inside
   it): a function pushed on every resolve, drain or tick is made once, kept in the registry under
   'key', and fetched from there afterwards. */
static inline void txaio_pushcfunction_cached(lua_State *L, lua_CFunction f, const void *key) {
  if (txaio_likely(txaio_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TFUNCTION)) return;
  lua_pop(L, 1);
  lua_pushcfunction(L, f);
  lua_pushvalue(L, -1);
  txaio_rawsetp(L, LUA_REGISTRYINDEX, key);
}

/* 5.1 has no istailcall: a tail call shows up as its own frame, what == "tail" */
#define TXAIO_GETINFO  "Sln"
#define txaio_istailcall(ar)  0

#else
#define txaio_pushcfunction_cached(L, f, key)  ((void)(key), lua_pushcfunction(L, (f)))
#define txaio_getuservalue(L, i)  lua_getuservalue(L, (i))
#define txaio_setuservalue(L, i)  lua_setuservalue(L, (i))
#define TXAIO_GETINFO  "Slnt"
#define txaio_istailcall(ar)  ((ar)->istailcall)
#endif

/* ------------------------------------------------------------- before 5.3 */
#if LUA_VERSION_NUM < 503

/* these return the type of the pushed value from 5.3 on */
#define lua_getfield(L, i, k)  (lua_getfield(L, (i), (k)), lua_type(L, -1))
#define lua_rawgeti(L, i, n)   (lua_rawgeti(L, (i), (n)), lua_type(L, -1))
#define lua_rawget(L, i)       (lua_rawget(L, (i)), lua_type(L, -1))
#define luaL_getmetafield(L, o, e) \
  (luaL_getmetafield(L, (o), (e)) ? lua_type(L, -1) : LUA_TNIL)
#if LUA_VERSION_NUM == 502
#define lua_rawgetp(L, i, p)   (lua_rawgetp(L, (i), (p)), lua_type(L, -1))
#endif

/* A whole number that a lua_Integer can hold; the range test comes first because converting an
** out-of-range (or NaN) double to an integer type is undefined behaviour in C. */
static inline int txaio_number_is_integer(lua_Number n) {
  const lua_Number limit = (lua_Number)((lua_Integer)1 << (sizeof(lua_Integer) * 8 - 2)) * 2;
  return n >= -limit && n < limit && n == (lua_Number)(lua_Integer)n;
}

static inline int txaio_isinteger(lua_State *L, int i) {
  return lua_type(L, i) == LUA_TNUMBER && txaio_number_is_integer(lua_tonumber(L, i));
}
#define lua_isinteger(L, i)  txaio_isinteger(L, (i))

/* 5.1 and 5.2 truncate a fraction silently; 5.3 refuses it with these words. */
static inline lua_Integer txaio_checkinteger(lua_State *L, int arg) {
  lua_Number n = luaL_checknumber(L, arg);
  if (!txaio_number_is_integer(n)) luaL_argerror(L, arg, "number has no integer representation");
  return (lua_Integer)n;
}
#define luaL_checkinteger(L, arg)  txaio_checkinteger(L, (arg))
#endif

/* ------------------------------------------------------------- 5.1 and 5.2 */
#if LUA_VERSION_NUM < 503
/* from 5.3 on luaL_newmetatable records __name, which error messages and failure kinds use */
static inline int txaio_newmetatable(lua_State *L, const char *tname) {
  if (!luaL_newmetatable(L, tname)) return 0;
  lua_pushstring(L, tname);
  lua_setfield(L, -2, "__name");
  return 1;
}
#define luaL_newmetatable(L, tn)  txaio_newmetatable(L, (tn))
#endif

#if LUA_VERSION_NUM >= 504
/* lua_getiuservalue answers TNONE past the last user value, so a reader can stop there instead of
   counting first (txaio_nuvalue) */
#define TXAIO_UV_ENDS_IN_TNONE 1

/* How many user values the userdata at i was created with: 5.4 answers TNONE past the last. */
static inline int txaio_nuvalue(lua_State *L, int i) {
  int n = 0;
  while (lua_getiuservalue(L, i, n + 1) != LUA_TNONE) {
    lua_pop(L, 1);
    n++;
  }
  lua_pop(L, 1);
  return n;
}

/* Sets every user value of the userdata at i to nil: 5.4 refuses a slot past the last. */
static inline void txaio_clearuservalues(lua_State *L, int i) {
  int n = 1;
  do lua_pushnil(L); while (lua_setiuservalue(L, i, n++));
}
#endif

/* ------------------------------------------------------------- before 5.4 */
#if LUA_VERSION_NUM < 504

/* past the last slot the compat lua_getiuservalue answers nil, never TNONE: count first */
#define TXAIO_UV_ENDS_IN_TNONE 0

/* Several user values: one table of slots, held as the single user value (or 5.1 environment). */
static inline void *txaio_newuserdatauv(lua_State *L, size_t size, int nuv) {
  void *p = lua_newuserdata(L, size);
  if (nuv > 0) {
    lua_createtable(L, nuv + 1, 0);
    lua_pushinteger(L, nuv);   /* slot 0: the count, which 5.4 knows by itself (txaio_nuvalue) */
    lua_rawseti(L, -2, 0);
    txaio_setuservalue(L, -2);
  }
  return p;
}

/* How many user values the userdata at i was created with (0 for other values). */
static inline int txaio_nuvalue(lua_State *L, int i) {
  int n;
  txaio_getuservalue(L, i);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_rawgeti(L, -1, 0);
  n = (int)lua_tointeger(L, -1);
  lua_pop(L, 2);
  return n;
}
#define lua_newuserdatauv(L, s, n)  txaio_newuserdatauv(L, (s), (n))

/* Sets every user value of the userdata at i to nil (keeping the count in slot 0). */
static inline void txaio_clearuservalues(lua_State *L, int i) {
  int k, n = txaio_nuvalue(L, i);
  if (n == 0) return;
  txaio_getuservalue(L, i);
  for (k = 1; k <= n; k++) {
    lua_pushnil(L);
    lua_rawseti(L, -2, k);
  }
  lua_pop(L, 1);
}

static inline int txaio_getiuservalue(lua_State *L, int i, int n) {
  txaio_getuservalue(L, i);
  lua_rawgeti(L, -1, n);
  lua_remove(L, -2);
  return lua_type(L, -1);
}
#define lua_getiuservalue(L, i, n)  txaio_getiuservalue(L, (i), (n))

static inline int txaio_setiuservalue(lua_State *L, int i, int n) {
  i = lua_absindex(L, i);
  txaio_getuservalue(L, i);
  lua_insert(L, -2);
  lua_rawseti(L, -2, n);
  lua_pop(L, 1);
  return 1;
}
#define lua_setiuservalue(L, i, n)  txaio_setiuservalue(L, (i), (n))

/* as 5.4 words it: the __name of a userdata's metatable when it has one */
static inline int txaio_typeerror(lua_State *L, int arg, const char *tname) {
  const char *got;
  if (luaL_getmetafield(L, arg, "__name") == LUA_TSTRING) got = lua_tostring(L, -1);
  else if (lua_type(L, arg) == LUA_TLIGHTUSERDATA) got = "light userdata";
  else got = luaL_typename(L, arg);
  return luaL_argerror(L, arg, lua_pushfstring(L, "%s expected, got %s", tname, got));
}
#define luaL_typeerror(L, a, t)  txaio_typeerror(L, (a), (t))
#define luaL_argexpected(L, cond, arg, tname) \
  ((void)((cond) || luaL_typeerror(L, (arg), (tname))))
#endif

#endif
