/*
** internal.h - declarations shared between the core's translation units.
** Everything here is txaio__-prefixed and hidden from the shared object's symbol table.
*/
#ifndef TXAIO_INTERNAL_H
#define TXAIO_INTERNAL_H

#include <stdint.h>

#include "compat.h"

#define TXAIO_FUTURE_MT   "txaio.Future"
/* the same type, plus a __gc: a future switches to it when it fails with nobody watching */
#define TXAIO_UNOBSERVED_MT "txaio.Future (unobserved failure)"
#define TXAIO_FAILURE_MT  "txaio.Failure"
#define TXAIO_GATHER_MT   "txaio.Gather"
#define TXAIO_CANCELLED_MT "CancelledError"

typedef enum FutureState {
  FUT_PENDING = 0,
  FUT_RESOLVED,
  FUT_FAILED
} FutureState;

/*
** A future's Lua-visible parts (value, canceller, callbacks) live in its user values so that the
** collector sees them; the struct holds only flags and counts.
*/
enum FutureSlot {
  /* pending, one pair: its callback; more pairs: {cb1, eb1, cb2, ...}. A future needs its
     callbacks only until it settles and its value only afterwards, so the two share a slot:
     settling then writes one user value fewer. */
  FS_CALLBACK = 1,
  FS_VALUE = FS_CALLBACK,   /* settled: the result, or the Failure */
  FS_ERRBACK,               /* pending, one pair: its errback (most futures have exactly one) */
  FS_CANCELLER,             /* pending: the canceller, when 'hascanceller' says there is one */
  FS_NSLOTS = FS_CANCELLER
};

/* mixed with a future's own address into its 'tag'; see txaio__tofuture */
#define TXAIO_KIND_FUTURE 0x7478616fu   /* "txao" */

typedef struct Future {
  unsigned int tag;          /* TXAIO_KIND_FUTURE keyed by its address: see txaio__tofuture */
  unsigned char state;       /* FutureState */
  unsigned char cancelled;   /* failed by cancel(): later resolve/reject are ignored */
  unsigned char observed;    /* an errback (or gather) saw or will see the outcome */
  unsigned char settling;    /* canceller running: guards against re-entrant cancel */
  unsigned char hascanceller; /* FS_CANCELLER holds one, to be dropped on settling */
  int ncallbacks;            /* callback pairs still attached */
} Future;

/* future.c */
Future *txaio__checkfuture(lua_State *L, int idx);
Future *txaio__tofuture(lua_State *L, int idx);
Future *txaio__newfuture(lua_State *L);
Future *txaio__newcancellable(lua_State *L);   /* with the slot for a canceller */
void txaio__setcanceller(lua_State *L, int fidx, Future *f);   /* pops it from the stack */
/*
** For the Lua-facing functions registered with txaio__pushfuturemts's upvalues (the two future
** metatables, then the run queue): a new future takes its metatable from upvalue 1 instead of
** looking it up by name. Only for functions called from Lua (never from the embedder's C, where
** upvalue indices mean nothing).
*/
Future *txaio__upnewfuture(lua_State *L);
void txaio__pushfuturemts(lua_State *L);
#define TXAIO_FUTURE_NUP 3
#define TXAIO_UPRUNQUEUE lua_upvalueindex(3)
void txaio__settle(lua_State *L, int fidx, FutureState state, int vidx);
void txaio__addcallbacks(lua_State *L, int fidx, int cbidx, int ebidx);
void txaio__openfuture(lua_State *L);

/* failure.c */
int txaio__isfailure(lua_State *L, int idx);
void txaio__pushfailure(lua_State *L, int vidx, int level);
void txaio__tofailure(lua_State *L, int vidx, int level);
int txaio__failure_msgh(lua_State *L);
/* pushes txaio__failure_msgh, which every protected callback call needs, without allocating */
extern const char txaio__msgh_key;
#define txaio__pushmsgh(L)  txaio_pushcfunction_cached((L), txaio__failure_msgh, &txaio__msgh_key)
void txaio__pushfailuremessage(lua_State *L, int idx);
void txaio__openfailure(lua_State *L);

/* gather.c */
int txaio__isgather(lua_State *L, int idx);
void txaio__gather_settle(lua_State *L, int gidx, int slot, FutureState st, int vidx);
void txaio__opengather(lua_State *L);

/* runqueue.c: the single FIFO queue through which every callback runs */
void txaio__enqueue(lua_State *L, int fnidx, int argidx);
void txaio__drain(lua_State *L);
/* the same, with the run queue userdata at 'rqidx' (for the functions that hold it as upvalue) */
void txaio__drain_at(lua_State *L, int rqidx);
void txaio__pushrunqueue(lua_State *L);
/* enqueue + drain of the function at msgh + 1 with its argument at msgh + 2, the message handler
   at msgh: called at once when the queue is idle. rqidx: the run queue userdata (an upvalue). */
void txaio__runcallback(lua_State *L, int rqidx, int msgh);
/* lua_pcall(L, nargs, 0, msgh) of a user callback, counted in rq so await can tell it cannot
   yield. rq's address never changes while the state lives (the registry holds it), so a scheduler
   keeps it instead of looking it up for every timer. */
typedef struct RunQueue RunQueue;
RunQueue *txaio__runqueue(lua_State *L);
int txaio__pcallbackq(lua_State *L, RunQueue *rq, int nargs, int msgh);
void txaio__report(lua_State *L, const char *what, int failidx);
void txaio__queue_unhandled(lua_State *L, int failidx);
void txaio__flush_unhandled(lua_State *L);
void txaio__openrunqueue(lua_State *L);

/* helpers */
int txaio__iscallable(lua_State *L, int idx);
void txaio__checkcallable(lua_State *L, int arg, int nilok);

/*
** A tag: an object's address mixed with a constant of its type. Futures, schedulers and the
** userdata below keep one in their first field; Lua code cannot write into a userdata, so no
** value it can reach carries one by accident.
*/
#define TXAIO_KIND_FAILURE 0x74786661u   /* "txfa" */
#define TXAIO_KIND_GATHER  0x74786761u   /* "txga" */
#define TXAIO_KIND_BATCHED 0x74786274u   /* "txbt" */
#define TXAIO_KIND_BUCKET  0x7478626bu   /* "txbk" */
#define TXAIO_KIND_BCALL   0x74786263u   /* "txbc" */

static inline unsigned int txaio__tag(const void *p, unsigned int kind) {
  return (unsigned int)(uintptr_t)p ^ kind;
}

/* the userdata at idx if it is 'size' bytes and its first field is its tag for 'kind', else NULL */
static inline void *txaio__totagged(lua_State *L, int idx, size_t size, unsigned int kind) {
  void *p = lua_touserdata(L, idx);
  /* the size first: a smaller userdata must not be read, and a light userdata has none */
  if (p == NULL || lua_rawlen(L, idx) != size) return NULL;
  return *(const unsigned int *)p == txaio__tag(p, kind) ? p : NULL;
}

/*
** luaL_testudata and luaL_checkudata that also check the size and the tag: debug.setmetatable can
** give one of the core's metatables to any userdata, and another one must never be read as the
** core's, whatever its size.
*/
static inline void *txaio__testudata(lua_State *L, int idx, const char *tname, size_t size,
                                     unsigned int kind) {
  return luaL_testudata(L, idx, tname) != NULL ? txaio__totagged(L, idx, size, kind) : NULL;
}

/* the argument error for a userdata at idx that has a 'tname' metatable but is not one */
static inline int txaio__lookalikeerror(lua_State *L, int idx, const char *tname) {
  return luaL_argerror(L, idx, lua_pushfstring(L, "%s expected, got a userdata that only has its "
                                               "metatable", tname));
}

/* the argument error for idx, which is not a 'tname'; luaL_typeerror would name the metatable's
   __name for a lookalike that only has the metatable, and read "X expected, got X" */
static inline int txaio__udataerror(lua_State *L, int idx, const char *tname) {
  if (luaL_testudata(L, idx, tname) != NULL) return txaio__lookalikeerror(L, idx, tname);
  return luaL_typeerror(L, idx, tname);
}

static inline void *txaio__checkudata(lua_State *L, int idx, const char *tname, size_t size,
                                      unsigned int kind) {
  void *p = txaio__testudata(L, idx, tname, size, kind);
  if (txaio_unlikely(p == NULL)) txaio__udataerror(L, idx, tname);
  return p;
}

#endif
