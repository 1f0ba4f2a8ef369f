/*
** batch.c - batched timers: calls are grouped into buckets of seconds_per_bucket (millisecond
** resolution) and each bucket is a single scheduler entry, however many calls it holds.
**
** Bucket k holds deadlines in ((k-1)*B, k*B] and starts firing at k*B, the END of its window, so a
** call never fires early (Python txaio fires at the start and can be a whole bucket early). Its calls
** run in insertion order, in chunks spread evenly from k*B until the bucket's earliest deadline plus
** one bucket (at most one span), so no call is more than one bucket late, whatever the order in
** which their deadlines arrived.
*/
#include <math.h>

#include "sched.h"

#define TXAIO_BATCHED_MT "txaio.BatchedTimer"
#define TXAIO_BUCKET_MT  "txaio.Bucket"
#define TXAIO_BCALL_MT   "txaio.BatchedCall"

typedef struct Batched {
  unsigned int tag;   /* see txaio__tag */
  lua_Integer bucket_ms;
  lua_Integer chunk;
} Batched;
enum { BT_SCHED = 1, BT_BUCKETS, BT_NSLOTS = BT_BUCKETS };

typedef struct Bucket {
  unsigned int tag;   /* see txaio__tag */
  lua_Integer k;
  lua_Integer next;     /* index of the next call to run */
  lua_Integer count;    /* calls appended */
  lua_Integer live;     /* calls neither run nor cancelled */
  lua_Integer chunks_run;
  double earliest;      /* the earliest deadline ever added: bounds the spread */
} Bucket;
enum { BK_BATCHED = 1, BK_CALLS, BK_TIMER, BK_NSLOTS = BK_TIMER };

typedef struct BatchedCall {
  unsigned int tag;   /* see txaio__tag */
  double due;
  int nargs;
  unsigned char active;
} BatchedCall;
enum { BC_BUCKET = 1, BC_FN, BC_ARGS };

int txaio__isbucket(lua_State *L, int idx) {
  return txaio__testudata(L, idx, TXAIO_BUCKET_MT, sizeof(Bucket), TXAIO_KIND_BUCKET) != NULL;
}

static void bucket_forget(lua_State *L, int bidx) {
  Bucket *b = (Bucket *)lua_touserdata(L, bidx);
  lua_getiuservalue(L, bidx, BK_BATCHED);
  lua_getiuservalue(L, -1, BT_BUCKETS);
  lua_pushnil(L);
  lua_rawseti(L, -2, b->k);
  lua_pop(L, 2);
}

static void call_release(lua_State *L, int cidx, BatchedCall *c) {
  int i;
  c->active = 0;
  for (i = BC_BUCKET; i < BC_ARGS + c->nargs; i++) {
    lua_pushnil(L);
    lua_setiuservalue(L, cidx, i);
  }
}

void txaio__bucket_fire(lua_State *L, int bidx, int sidx, double now) {
  Bucket *b = (Bucket *)lua_touserdata(L, bidx);
  Batched *bt;
  /* calls appended while this chunk runs (a callback's bt:call_later(0, ...) can land in this
     very bucket) wait for the next chunk, on a later tick, as call_later's timers do */
  lua_Integer ran = 0, nchunks, last = b->count;
  double span, start, window, next_at;
  int calls, msgh, batched;
  lua_getiuservalue(L, bidx, BK_BATCHED);
  batched = lua_gettop(L);
  bt = (Batched *)lua_touserdata(L, batched);
  lua_getiuservalue(L, bidx, BK_CALLS);
  calls = lua_gettop(L);
  txaio__pushmsgh(L);
  msgh = lua_gettop(L);
  while (b->next <= last && ran < bt->chunk) {
    BatchedCall *c;
    int cidx;
    lua_rawgeti(L, calls, b->next);
    lua_pushnil(L);
    lua_rawseti(L, calls, b->next++);
    cidx = lua_gettop(L);
    c = (BatchedCall *)lua_touserdata(L, cidx);
    ran++;
    if (c->active) {
      int i, nargs = c->nargs;
      b->live--;
      /* the arguments, as many as bt:call_later got, and what call_release pushes after them */
      if (txaio_unlikely(!lua_checkstack(L, nargs + 8))) {
        call_release(L, cidx, c);
        txaio__report_nostack(L, "batched call");
        lua_settop(L, msgh);
        continue;
      }
      lua_getiuservalue(L, cidx, BC_FN);
      for (i = 0; i < nargs; i++) lua_getiuservalue(L, cidx, BC_ARGS + i);
      call_release(L, cidx, c);
      if (txaio__pcallbackq(L, ((Scheduler *)lua_touserdata(L, sidx))->rq, nargs, msgh) != LUA_OK)
        txaio__report(L, "callback", -1);
    }
    lua_settop(L, msgh);
  }
  b->chunks_run++;
  if (b->live == 0 || b->next > b->count) {
    bucket_forget(L, bidx);
    lua_settop(L, batched - 1);
    return;
  }
  /* the rest is spread over [start, earliest + span): every call is then at most a span late */
  span = (double)bt->bucket_ms / 1000.0;
  start = (double)(b->k * bt->bucket_ms) / 1000.0;
  window = b->earliest + span - start;
  if (window > span) window = span;
  nchunks = (b->count + bt->chunk - 1) / bt->chunk;
  next_at = start + window * (double)b->chunks_run / (double)nchunks;
  if (next_at < now) next_at = now;
  txaio__sched_add(L, sidx, next_at, bidx, 0, 0);
  lua_setiuservalue(L, bidx, BK_TIMER);
  lua_settop(L, batched - 1);
}

/* bt:call_later(delay, fn, ...) */
static int bt_call_later(lua_State *L) {
  Batched *bt = (Batched *)txaio__checkudata(L, 1, TXAIO_BATCHED_MT, sizeof(Batched),
                                             TXAIO_KIND_BATCHED);
  int nargs = lua_gettop(L) - 3, sidx, bidx, cidx, i;
  double delay = txaio__checkdelay(L, 2), due, fire_at;
  lua_Integer k;
  Bucket *b;
  BatchedCall *c;
  txaio__checkcallable(L, 3, 0);
  txaio__checknargs(L, 4, nargs);
  /* the call first: allocating may run finalizers, and one that ticks the loop could fire, and
     forget, the very bucket looked up below before the call is in it */
  c = (BatchedCall *)lua_newuserdatauv(L, sizeof(BatchedCall), BC_ARGS - 1 + nargs);
  c->tag = txaio__tag(c, TXAIO_KIND_BCALL);
  c->nargs = nargs;
  c->active = 0;
  luaL_setmetatable(L, TXAIO_BCALL_MT);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, BC_FN);
  for (i = 0; i < nargs; i++) {
    lua_pushvalue(L, 4 + i);
    lua_setiuservalue(L, -2, BC_ARGS + i);
  }
  cidx = lua_gettop(L);
  lua_getiuservalue(L, 1, BT_SCHED);
  sidx = lua_gettop(L);
  due = txaio__sched_now(L, sidx) + delay;
  /* bucket numbers count milliseconds in a lua_Integer: past 2^53 ms from the clock's zero the
     conversion and k * bucket_ms would overflow (and the millisecond is lost anyway) */
  luaL_argcheck(L, fabs(due) * 1000.0 < 9007199254740992.0, 2,
                "deadline out of range (2^53 milliseconds or more from the clock's zero)");
  k = (lua_Integer)ceil(due * 1000.0 / (double)bt->bucket_ms);
  fire_at = (double)(k * bt->bucket_ms) / 1000.0;
  if (fire_at < due) fire_at = (double)(++k * bt->bucket_ms) / 1000.0;
  lua_getiuservalue(L, 1, BT_BUCKETS);
  if (lua_rawgeti(L, -1, k) == LUA_TNIL) {
    lua_pop(L, 1);
    b = (Bucket *)lua_newuserdatauv(L, sizeof(Bucket), BK_NSLOTS);
    b->tag = txaio__tag(b, TXAIO_KIND_BUCKET);
    b->k = k;
    b->next = 1;
    b->count = b->live = b->chunks_run = 0;
    b->earliest = due;
    luaL_setmetatable(L, TXAIO_BUCKET_MT);
    bidx = lua_gettop(L);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, bidx, BK_BATCHED);
    lua_newtable(L);
    lua_setiuservalue(L, bidx, BK_CALLS);
    txaio__sched_add(L, sidx, fire_at, bidx, 0, 0);
    lua_setiuservalue(L, bidx, BK_TIMER);
    lua_pushvalue(L, bidx);
    lua_rawseti(L, bidx - 1, k);
  } else {
    b = (Bucket *)lua_touserdata(L, -1);
    bidx = lua_gettop(L);
  }
  c->due = due;
  c->active = 1;
  lua_pushvalue(L, bidx);
  lua_setiuservalue(L, cidx, BC_BUCKET);
  if (due < b->earliest) b->earliest = due;
  lua_getiuservalue(L, bidx, BK_CALLS);
  lua_pushvalue(L, cidx);
  lua_rawseti(L, -2, ++b->count);
  lua_pop(L, 1);
  b->live++;
  lua_pushvalue(L, cidx);
  return 1;
}

static int bc_cancel(lua_State *L) {
  BatchedCall *c = (BatchedCall *)txaio__checkudata(L, 1, TXAIO_BCALL_MT, sizeof(BatchedCall),
                                                     TXAIO_KIND_BCALL);
  Bucket *b;
  if (!c->active) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_getiuservalue(L, 1, BC_BUCKET);
  b = (Bucket *)lua_touserdata(L, 2);
  call_release(L, 1, c);
  if (--b->live == 0) {     /* nothing left to run: give the scheduler entry back */
    lua_getiuservalue(L, 2, BK_TIMER);
    txaio__timer_cancel(L, 3);
    lua_pop(L, 1);
    bucket_forget(L, 2);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int bc_active(lua_State *L) {
  BatchedCall *c = (BatchedCall *)txaio__checkudata(L, 1, TXAIO_BCALL_MT, sizeof(BatchedCall),
                                                     TXAIO_KIND_BCALL);
  lua_pushboolean(L, c->active);
  return 1;
}

/* make_batched_timer(seconds_per_bucket, [chunk_size]), bound to a loop like call_later */
int txaio__batch_make(lua_State *L) {
  double spb;
  lua_Integer chunk, ms;
  Batched *bt;
  if (lua_type(L, 1) != LUA_TNUMBER) luaL_typeerror(L, 1, "number");
  spb = lua_tonumber(L, 1);
  luaL_argcheck(L, spb > 0 && spb < 1e9, 1, "positive finite number of seconds expected");
  ms = (lua_Integer)floor(spb * 1000.0 + 0.5);
  luaL_argcheck(L, ms >= 1, 1, "buckets are at least one millisecond");
  if (lua_isnoneornil(L, 2)) chunk = 100;
  else {
    chunk = luaL_checkinteger(L, 2);
    luaL_argcheck(L, chunk >= 1, 2, "positive chunk size expected");
  }
  txaio__bound_scheduler(L);
  bt = (Batched *)lua_newuserdatauv(L, sizeof(Batched), BT_NSLOTS);
  bt->tag = txaio__tag(bt, TXAIO_KIND_BATCHED);
  bt->bucket_ms = ms;
  bt->chunk = chunk;
  luaL_setmetatable(L, TXAIO_BATCHED_MT);
  lua_pushvalue(L, -2);
  lua_setiuservalue(L, -2, BT_SCHED);
  lua_newtable(L);
  lua_setiuservalue(L, -2, BT_BUCKETS);
  return 1;
}

static const luaL_Reg bt_methods[] = {
  { "call_later", bt_call_later },
  { NULL, NULL }
};

static const luaL_Reg bc_methods[] = {
  { "cancel", bc_cancel },
  { "active", bc_active },
  { NULL, NULL }
};

void txaio__openbatch(lua_State *L) {
  luaL_newmetatable(L, TXAIO_BATCHED_MT);
  luaL_newlib(L, bt_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, TXAIO_BCALL_MT);
  luaL_newlib(L, bc_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, TXAIO_BUCKET_MT);
  lua_pop(L, 1);
}
