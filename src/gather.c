/*
** gather.c - gather(): one future for a list of futures.
** Instead of a Lua closure per item, each item future gets the callback pair (gather, index):
** settle() recognises the Gather userdata and records the outcome directly, without a Lua call.
*/
#include "internal.h"

enum GatherSlot { GS_RESULT = 1, GS_RESULTS, GS_NSLOTS = GS_RESULTS };

typedef struct Gather {
  unsigned int tag;   /* see txaio__tag */
  lua_Integer remaining;
  unsigned char consume;   /* failures become entries instead of failing the whole gather */
  unsigned char done;
} Gather;

int txaio__isgather(lua_State *L, int idx) {
  return txaio__testudata(L, idx, TXAIO_GATHER_MT, sizeof(Gather), TXAIO_KIND_GATHER) != NULL;
}

/*
** Gathers of gathers settle one another recursively, in C, from inside the first settle. Past
** this many stack slots (a few hundred levels), the rest is queued on the run queue instead: the
** order callbacks run in only changes for nesting that deep, and any depth runs in bounded C stack.
*/
#define DEFER_ABOVE 1000

/* Queued by settle_result: settles the future in upvalue 1 with the value passed, as upvalue 2. */
static int finish_deferred(lua_State *L) {
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  if (((Future *)lua_touserdata(L, 2))->state == FUT_PENDING)   /* not cancelled meanwhile */
    txaio__settle(L, 2, (FutureState)lua_tointeger(L, lua_upvalueindex(2)), 1);
  return 0;
}

static void settle_result(lua_State *L, int ridx, FutureState st, int vidx) {
  if (lua_gettop(L) < DEFER_ABOVE) {
    txaio__settle(L, ridx, st, vidx);
    return;
  }
  lua_pushvalue(L, ridx);
  lua_pushinteger(L, (lua_Integer)st);
  lua_pushcclosure(L, finish_deferred, 2);
  txaio__enqueue(L, lua_gettop(L), vidx);
  lua_pop(L, 1);
}

/* Records item 'slot' of the gather at gidx; completes the gathered future when all are in. */
void txaio__gather_settle(lua_State *L, int gidx, int slot, FutureState st, int vidx) {
  Gather *g = (Gather *)lua_touserdata(L, gidx);
  Future *result;
  if (g->done) return;
  /* a gather of a gather of ... settles them all from here, recursively, within one C call: each
     level needs a few more stack slots than the LUA_MINSTACK the caller was given */
  luaL_checkstack(L, 10, "too many nested gathers");
  lua_getiuservalue(L, gidx, GS_RESULT);
  result = (Future *)lua_touserdata(L, -1);
  if (result->state != FUT_PENDING) {   /* cancelled by its consumer: stop collecting */
    g->done = 1;
    lua_pop(L, 1);
    return;
  }
  if (st == FUT_FAILED && !g->consume) {
    g->done = 1;
    settle_result(L, lua_gettop(L), FUT_FAILED, vidx);
    lua_pop(L, 1);
    return;
  }
  lua_getiuservalue(L, gidx, GS_RESULTS);
  lua_pushvalue(L, vidx);
  lua_rawseti(L, -2, slot);
  if (--g->remaining == 0) {
    g->done = 1;
    settle_result(L, lua_gettop(L) - 1, FUT_RESOLVED, lua_gettop(L));
  }
  lua_pop(L, 2);
}

static lua_Integer list_length(lua_State *L, int idx) {
  lua_Integer n;
  if (lua_getfield(L, idx, "n") == LUA_TNUMBER && lua_isinteger(L, -1)) n = lua_tointeger(L, -1);
  else n = (lua_Integer)lua_rawlen(L, idx);
  lua_pop(L, 1);
  return n;
}

/* [-0, +1] pushes item i of the list at 1, or raises if it is not a future */
static void check_item(lua_State *L, lua_Integer i) {
  lua_rawgeti(L, 1, i);
  if (!txaio__tofuture(L, -1))
    luaL_argerror(L, 1, lua_pushfstring(L, "list of futures expected, item %d is %s", (int)i,
                                        luaL_typename(L, -1)));
}

static int gather_new(lua_State *L) {
  lua_Integer n, i;
  Gather *g;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  n = list_length(L, 1);
  luaL_argcheck(L, n >= 0 && n <= 0x7fffffff, 1, "list length out of range");
  /* A list longer than its border (a list.n past its last item) has a nil item at border + 1:
     find the first bad item before allocating anything, so that a bad list is refused however
     long it claims to be. Any other list is checked while it is copied, below. */
  if ((size_t)n > lua_rawlen(L, 1)) {
    for (i = 1; i <= n; i++) {
      check_item(L, i);
      lua_pop(L, 1);
    }
  }
  txaio__upnewfuture(L);                     /* 3: the gathered future */
  lua_createtable(L, (int)n, 1);             /* 4: the results */
  /* Every item is checked before any is touched, so a bad one changes nothing. Only copies of
     the items are used from here on, checked as they are copied: allocating (above, and when
     attaching below) may run a finalizer that changes the list. Filling the presized table
     allocates nothing. Slot i keeps its future until item i reports its outcome, which it can only
     do once attached. */
  for (i = 1; i <= n; i++) {
    check_item(L, i);
    lua_rawseti(L, 4, i);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, 4, "n");
  if (n == 0) {
    txaio__settle(L, 3, FUT_RESOLVED, 4);
    lua_settop(L, 3);
    return 1;
  }
  g = (Gather *)lua_newuserdatauv(L, sizeof(Gather), GS_NSLOTS);   /* 5 */
  g->tag = txaio__tag(g, TXAIO_KIND_GATHER);
  g->remaining = n;
  g->consume = lua_isnil(L, 2) || lua_toboolean(L, 2);
  g->done = 0;
  luaL_setmetatable(L, TXAIO_GATHER_MT);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, 5, GS_RESULT);
  lua_pushvalue(L, 4);
  lua_setiuservalue(L, 5, GS_RESULTS);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 4, i);                    /* 6: item, as checked */
    ((Future *)lua_touserdata(L, 6))->observed = 1;
    lua_pushinteger(L, i);                   /* 7 */
    txaio__addcallbacks(L, 6, 5, 7);
    lua_settop(L, 5);
  }
  txaio__drain(L);
  lua_settop(L, 3);
  return 1;
}

static const luaL_Reg gather_funcs[] = {
  { "gather", gather_new },
  { NULL, NULL }
};

void txaio__opengather(lua_State *L) {
  luaL_newmetatable(L, TXAIO_GATHER_MT);
  lua_pop(L, 1);
  txaio__pushfuturemts(L);
  luaL_setfuncs(L, gather_funcs, TXAIO_FUTURE_NUP);
}
