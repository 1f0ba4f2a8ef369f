# txaio for Lua. `make test` is what CI runs; `make demo` shows the library at work.
# LUA picks the interpreter and the headers: lua5.4 (default), lua5.3, lua5.2, lua5.1 or luajit.
LUA         ?= lua5.4
LUA_PKG      = $(if $(filter luajit,$(LUA)),luajit,$(LUA))
# Debian packages for that interpreter, installed by .ci/deps when missing
LUA_DEBS_lua5.1 = lua5.1 liblua5.1-0-dev
LUA_DEBS_lua5.2 = lua5.2 liblua5.2-dev
LUA_DEBS_lua5.3 = lua5.3 liblua5.3-dev
LUA_DEBS_lua5.4 = lua5.4 liblua5.4-dev
LUA_DEBS_luajit = luajit2 libluajit2-5.1-dev
LUA_DEBS     = $(LUA_DEBS_$(LUA))
# Recursive (=) on purpose: evaluated after `deps` has installed pkg-config and the headers.
LUA_CFLAGS   = $(shell pkg-config --cflags $(LUA_PKG))
BUSTED      ?= $(LUA) /usr/bin/busted
CC          ?= cc
OPT         ?= -O2 -g
WARN         = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS_ALL   = -std=gnu99 $(OPT) $(WARN) -fPIC -fvisibility=hidden $(LUA_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)
# The module links without -llua: the host provides the Lua symbols (two VMs otherwise).
LDFLAGS_MOD  = -shared $(LDFLAGS) $(EXTRA_LDFLAGS)

# lua5.4 builds into build/ (what .busted points at); other versions into build/<interpreter>/
BUILD   = build$(if $(filter lua5.4,$(LUA)),,/$(LUA))
OBJDIR  = $(BUILD)/obj
MODULE  = $(BUILD)/txaio/core.so
SRCS    = src/core.c src/future.c src/failure.c src/gather.c src/runqueue.c \
          src/heap.c src/sched.c src/batch.c src/host.c
HEADERS = $(wildcard src/*.h)
OBJS    = $(SRCS:src/%.c=$(OBJDIR)/%.o)

SPEC_PASSES ?= normal generational stress

.PHONY: all deps test test-all demo clean
LUAS = lua5.1 luajit lua5.2 lua5.3 lua5.4
all: $(MODULE)

deps:
	@sh .ci/deps $(LUA_DEBS)

$(OBJDIR)/%.o: src/%.c $(HEADERS) Makefile
	@mkdir -p $(OBJDIR)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(MODULE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_MOD) -o $@ $(OBJS)

# Every spec runs once per GC mode (normal, generational, incremental with pause 0); the last line
# of the output sums them all as `N passed, N failed`.
test: deps
	@$(MAKE) --no-print-directory all c-host heap-test hosts-prep
	@mkdir -p $(BUILD)/results && rm -f $(BUILD)/results/*.log
	@for pass in $(SPEC_PASSES); do \
	  echo "== specs, GC mode: $$pass"; \
	  TXAIO_GC=$$pass TXAIO_BUILD=$(BUILD) $(BUSTED) --cpath='./$(BUILD)/?.so' 2>&1 \
	    | tee $(BUILD)/results/$$pass.log; \
	done
	@sh .ci/summarize $(foreach p,$(SPEC_PASSES),$(BUILD)/results/$(p).log)

# The whole suite on every Lua that Debian packages.
test-all:
	@mkdir -p $(BUILD)
	@for v in $(LUAS); do echo "=== $$v"; $(MAKE) --no-print-directory test LUA=$$v > $(BUILD)/test-$$v.log 2>&1; \
	  tail -1 $(BUILD)/test-$$v.log; done
	@sh .ci/summarize $(foreach v,$(LUAS),$(BUILD)/test-$(v).log)

demo: deps
	@$(MAKE) --no-print-directory all c-host
	@for f in examples/*.lua; do \
	  echo "== $$f"; \
	  LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./$(BUILD)/?.so;;" $(LUA) $$f || exit 1; \
	done
	@echo "== examples/c-host (a C program's frame loop drives txaio through src/txaio.h)"
	@LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" ./$(C_HOST) examples/c-host/game.lua

clean:
	rm -rf $(BUILD)

# The timer heap on its own against a brute-force model (spec/heap_spec.lua), with TXAIO_DEBUG's
# full order check after every change.
HEAP_TEST = $(BUILD)/heap-test
.PHONY: heap-test
heap-test: $(HEAP_TEST)
$(HEAP_TEST): spec/support/heap_test.c src/heap.c src/heap.h Makefile
	@mkdir -p $(BUILD)
	$(CC) -std=gnu99 $(OPT) $(WARN) -DTXAIO_DEBUG -Isrc -o $@ spec/support/heap_test.c src/heap.c

# The example embedder (examples/c-host): links the core in and drives it through src/txaio.h.
C_HOST = $(BUILD)/c-host
LUA_LIBS = $(shell pkg-config --libs $(LUA_PKG))
$(C_HOST): examples/c-host/main.c $(OBJS) src/txaio.h Makefile
	$(CC) -std=gnu99 $(OPT) $(WARN) $(LUA_CFLAGS) -Isrc -o $@ examples/c-host/main.c $(OBJS) $(LUA_LIBS) -lm
c-host: $(C_HOST)
.PHONY: c-host

# Benchmarks (issue 6) and reliability checks (issue 7) keep their rules next to their files.
include bench/bench.mk
include spec/support/check.mk
include spec/support/hosts.mk
