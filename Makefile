# txaio for Lua. `make test` is what CI runs; `make demo` shows the library at work.
LUA         ?= lua5.4
LUA_VERSION ?= 5.4
# Recursive (=) on purpose: evaluated after `deps` has installed pkg-config and the headers.
LUA_CFLAGS   = $(shell pkg-config --cflags lua$(LUA_VERSION) 2>/dev/null || echo -I/usr/include/lua$(LUA_VERSION))
BUSTED      ?= $(LUA) /usr/bin/busted
CC          ?= cc
OPT         ?= -O2 -g
WARN         = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS_ALL   = -std=gnu99 $(OPT) $(WARN) -fPIC -fvisibility=hidden $(LUA_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)
# The module links without -llua: the host provides the Lua symbols (two VMs otherwise).
LDFLAGS_MOD  = -shared $(LDFLAGS) $(EXTRA_LDFLAGS)

BUILD   = build
OBJDIR  = $(BUILD)/obj
MODULE  = $(BUILD)/txaio/core.so
SRCS    = src/core.c src/future.c src/failure.c src/gather.c src/runqueue.c \
          src/heap.c src/sched.c src/batch.c src/host.c
HEADERS = $(wildcard src/*.h)
OBJS    = $(SRCS:src/%.c=$(OBJDIR)/%.o)

SPEC_PASSES ?= normal generational stress

.PHONY: all deps test demo bench clean install rock-install
all: $(MODULE)

deps:
	@sh .ci/deps

$(OBJDIR)/%.o: src/%.c $(HEADERS) Makefile
	@mkdir -p $(OBJDIR)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(MODULE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_MOD) -o $@ $(OBJS)

# Every spec runs once per GC mode (normal, generational, incremental with pause 0); the last line
# of the output sums them all as `N passed, N failed`.
test: deps
	@$(MAKE) --no-print-directory all c-host
	@mkdir -p $(BUILD)/results && rm -f $(BUILD)/results/*.log
	@for pass in $(SPEC_PASSES); do \
	  echo "== specs, GC mode: $$pass"; \
	  TXAIO_GC=$$pass $(BUSTED) 2>&1 | tee $(BUILD)/results/$$pass.log; \
	done
	@sh .ci/summarize $(foreach p,$(SPEC_PASSES),$(BUILD)/results/$(p).log)

demo: deps
	@$(MAKE) --no-print-directory all c-host
	@for f in examples/*.lua; do \
	  echo "== $$f"; \
	  LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./$(BUILD)/?.so;;" $(LUA) $$f || exit 1; \
	done

clean:
	rm -rf $(BUILD)

# The example embedder (examples/c-host): links the core in and drives it through src/txaio.h.
C_HOST = $(BUILD)/c-host
LUA_LIBS = $(shell pkg-config --libs lua$(LUA_VERSION) 2>/dev/null || echo -llua$(LUA_VERSION))
$(C_HOST): examples/c-host/main.c $(OBJS) src/txaio.h Makefile
	$(CC) -std=gnu99 $(OPT) $(WARN) $(LUA_CFLAGS) -Isrc -o $@ examples/c-host/main.c $(OBJS) $(LUA_LIBS) -lm
c-host: $(C_HOST)
.PHONY: c-host
