/*
** txaio.h - the C API for programs that embed Lua and drive txaio from their own loop.
**
** A host registers a loop whose clock and wake-up are C callbacks, calls txaio_tick() from its
** frame or event loop, and hands futures to Lua code (txaio_newfuture) that it completes later
** from C (txaio_resolve / txaio_reject), as an engine finishing an asset load would.
**
** Stack effects use the Lua manual's notation [-o, +p, x]: o values popped, p pushed, and x is
** 'e' when the call may raise a Lua error (longjmp) and '-' when it never does.
** Every function needs the Lua modules "txaio" (Lua files on package.path) and "txaio.core" (this
** library, either as the loadable module or linked in and registered with txaio_openlibs).
*/
#ifndef TXAIO_H
#define TXAIO_H

#include "lua.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TXAIO_API  __attribute__((visibility("default")))
#else
#define TXAIO_API  extern
#endif

#define TXAIO_VERSION_NUM  100

/* The host's monotonic clock, in seconds. */
typedef double (*txaio_Now) (void *ud);
/*
** Called when txaio's earliest deadline moves earlier, at the end of every tick, and when the last
** timer is cancelled: the host should call txaio_tick() about 'delay' seconds later (late or extra
** calls are harmless). delay < 0 means nothing is pending. It runs in the middle of the txaio call
** that scheduled something: it must only note the time, never raise, tick or run Lua code
** (txaio_tick() from inside it raises an error). May be NULL when the host calls txaio_tick() regularly anyway
** (once per frame, say).
*/
typedef void (*txaio_Wake) (void *ud, double delay);
/* Called once when the loop object is collected, to release 'ud'. May be NULL. */
typedef void (*txaio_Free) (void *ud);

/* [-0, +1, e] opens the txaio.core module (what require "txaio.core" returns) */
TXAIO_API int (luaopen_txaio_core) (lua_State *L);

/* [-0, +0, e] registers txaio.core in package.preload, for hosts that link the core in */
TXAIO_API void (txaio_openlibs) (lua_State *L);

/* [-0, +1, e] pushes a new host loop object (not selected) driven by the given callbacks */
TXAIO_API void (txaio_pushhostloop) (lua_State *L, txaio_Now now, txaio_Wake wake,
                                     void *ud, txaio_Free fin);

/* [-0, +0, e] makes such a loop and selects it, as txaio.use_host does from Lua */
TXAIO_API void (txaio_usehost) (lua_State *L, txaio_Now now, txaio_Wake wake,
                                void *ud, txaio_Free fin);

/*
** [-0, +0, e] runs every timer of the current loop that is due now; returns the seconds until the
** next deadline, or a negative value when none is pending. Callback errors never escape.
*/
TXAIO_API double (txaio_tick) (lua_State *L);

/* [-0, +1, e] pushes a new pending future */
TXAIO_API void (txaio_newfuture) (lua_State *L);

/* [-0, +0, -] 1 when the value at idx is a txaio future */
TXAIO_API int (txaio_isfuture) (lua_State *L, int idx);

/*
** [-1, +0, e] resolves the future at idx with the value on top (popped) and runs its callbacks;
** raises if idx is not a pending future (a future cancelled by its consumer is left alone).
*/
TXAIO_API void (txaio_resolve) (lua_State *L, int idx);

/* [-1, +0, e] fails the future at idx with the error value on top (popped), like txaio.reject */
TXAIO_API void (txaio_reject) (lua_State *L, int idx);

#ifdef __cplusplus
}
#endif

#endif
