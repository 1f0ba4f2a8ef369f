/*
** txaio.h - the C API for programs that embed Lua and drive txaio from their own loop.
** Stack effects use the Lua manual's [-o, +p, x] notation: x is 'e' when the call may raise
** (longjmp) and '-' when it never does.
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

/* [-0, +1, e] opens the txaio.core module (as require would) and pushes its table */
TXAIO_API int (luaopen_txaio_core) (lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
