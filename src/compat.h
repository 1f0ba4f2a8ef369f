/*
** compat.h - the only file that looks at LUA_VERSION_NUM.
** The core is written against the Lua 5.4 API; older versions map onto it here.
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

#if LUA_VERSION_NUM < 504
#error "txaio: this build supports Lua 5.4; older versions are tracked by issue 8"
#endif

#endif
