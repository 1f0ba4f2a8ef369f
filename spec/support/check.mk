# make asan / valgrind / gcstress / fuzz-long / fuzz / check: the reliability checks (issue 7).
# Each runs the spec suite on lua5.4 through $(BUSTED) (`lua5.4 /usr/bin/busted`), except fuzz,
# which runs the libFuzzer harness; .ci/run keeps running `make test` only.
.PHONY: check asan asan-build valgrind valgrind-full gcstress fuzz-long fuzz fuzz-build

# `make test` plus the sanitizer and valgrind runs and a bounded fuzzing run.
check: test asan valgrind fuzz

# ---------------------------------------------------------------- AddressSanitizer + UBSan
# The core rebuilt with the sanitizers into build/asan/txaio/core.so (never the ordinary build) and
# the whole suite run against it. lua5.4 itself is not instrumented, so the ASan runtime is
# preloaded; it intercepts malloc, so Lua's own blocks (userdata included) get redzones too.
# The second preloaded object, built here from a few lines of C, removes LD_PRELOAD from the
# environment of other programs: those the specs spawn (mktemp, cp, the c-host, nvim, nginx, love)
# then run as usual instead of under the sanitizer, whose leak check at their exit
# would report their leaks, not ours. TXAIO_BUILD=build/asan: the lua5.4 processes that specs
# start load the sanitized core too (with a copy of the ordinary c-host and a sanitized heap-test next to it). Reports go to build/asan/report.<exe>.<pid>, and any such
# file fails the target. Leak checking is on; spec/support/lsan.supp lists what is suppressed.
ASAN_BUILD  = $(BUILD)/asan
ASAN_MODULE = $(ASAN_BUILD)/txaio/core.so
ASAN_OBJS   = $(SRCS:src/%.c=$(ASAN_BUILD)/obj/%.o)
ASAN_FLAGS  = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ASAN_RT     = $(shell $(CC) -print-file-name=libasan.so)
ASAN_UNPRELOAD = $(ASAN_BUILD)/unpreload.so
ASAN_ENV    = LD_PRELOAD="$(ASAN_RT) $(CURDIR)/$(ASAN_UNPRELOAD)" \
  ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:log_exe_name=1:log_path=$(CURDIR)/$(ASAN_BUILD)/report \
  LSAN_OPTIONS=suppressions=$(CURDIR)/spec/support/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(CURDIR)/$(ASAN_BUILD)/report

$(ASAN_BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) Makefile spec/support/check.mk
	@mkdir -p $(dir $@)
	$(CC) -std=gnu99 -O1 -g $(ASAN_FLAGS) $(WARN) -fPIC -fvisibility=hidden $(LUA_CFLAGS) -c $< -o $@

$(ASAN_MODULE): $(ASAN_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared $(ASAN_FLAGS) -o $@ $(ASAN_OBJS)

# Keeps LD_PRELOAD for lua5.x and the shells and timeout(1) between it and the lua5.x processes the
# specs start (which load build/asan too); any other program re-executes itself without it, before
# its main() runs, so that it never runs under the sanitizer.
define ASAN_UNPRELOAD_C
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void unpreload (void) __attribute__((constructor));
static void unpreload (void) {
  static const char *const keep[] = { "sh", "dash", "bash", "timeout", "env", NULL };
  static char exe[4096], cmd[65536];
  char *argv[1024];
  const char *base;
  int i, fd, argc = 0;
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1), len, at;
  if (n <= 0) return;
  exe[n] = '\0';
  base = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
  if (strncmp(base, "lua5.", 5) == 0) return;
  for (i = 0; keep[i]; i++) if (strcmp(base, keep[i]) == 0) return;
  unsetenv("LD_PRELOAD");
  fd = open("/proc/self/cmdline", O_RDONLY);
  if (fd < 0) return;
  len = read(fd, cmd, sizeof cmd - 1);
  close(fd);
  if (len <= 0 || len == (ssize_t)sizeof cmd - 1) return;
  cmd[len] = '\0';
  for (at = 0; at < len && argc < 1023; at += (ssize_t)strlen(cmd + at) + 1) argv[argc++] = cmd + at;
  argv[argc] = NULL;
  execv(exe, argv);
}
endef

$(ASAN_UNPRELOAD): spec/support/check.mk
	@mkdir -p $(dir $@)
	$(file >$(ASAN_BUILD)/unpreload.c,$(ASAN_UNPRELOAD_C))
	$(CC) -shared -fPIC -o $@ $(ASAN_BUILD)/unpreload.c

$(ASAN_BUILD)/c-host: $(C_HOST)
	cp $(C_HOST) $@

# the heap's own test, sanitized as well (it links no Lua, so it needs no preload)
$(ASAN_BUILD)/heap-test: spec/support/heap_test.c src/heap.c src/heap.h spec/support/check.mk
	@mkdir -p $(dir $@)
	$(CC) -std=gnu99 -O1 -g $(ASAN_FLAGS) $(WARN) -DTXAIO_DEBUG -Isrc -o $@ spec/support/heap_test.c src/heap.c

asan-build: $(ASAN_MODULE) $(ASAN_UNPRELOAD) $(ASAN_BUILD)/c-host $(ASAN_BUILD)/heap-test

asan: deps
	@$(MAKE) --no-print-directory all c-host heap-test hosts-prep asan-build
	@rm -f $(ASAN_BUILD)/report.*
	@echo "== specs under ASan+UBSan ($(ASAN_MODULE))"
	@$(ASAN_ENV) TXAIO_BUILD=$(ASAN_BUILD) $(BUSTED) --cpath='./$(ASAN_BUILD)/?.so' 2>&1 \
	  | tee $(ASAN_BUILD)/specs.log; \
	if ls $(ASAN_BUILD)/report.* >/dev/null 2>&1; then \
	  cat $(ASAN_BUILD)/report.*; echo "asan: sanitizer reports above (in $(ASAN_BUILD)/report.*)"; exit 1; fi; \
	sh .ci/summarize $(ASAN_BUILD)/specs.log && echo "asan: no sanitizer reports"

# ---------------------------------------------------------------- valgrind
# The ordinary build (-O2 -g) and the whole suite under memcheck: any error or definite leak fails.
# Only the heaviest scale tests (tagged #scale: the 1,000,000-future and 100,000-future chains, the
# million and 200,000 timers, 100,000 luv timers) are left out, and the model test runs
# $(VALGRIND_MODEL_N) sequences instead of 2,000: under memcheck these take far longer than the
# rest of the suite together; `make test` and `make asan` run them in full.
# `make valgrind-full` runs those too, and the model test's 2,000 sequences: the whole suite (about
# 17 minutes here, against 5 for `make valgrind`).
VALGRIND_MODEL_N ?= 200
VALGRIND_EXCLUDE ?= --exclude-tags=scale
VALGRIND_SUPP = spec/support/valgrind.supp
VALGRIND = valgrind --quiet --error-exitcode=1 --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --suppressions=$(VALGRIND_SUPP) \
  --log-file=$(BUILD)/valgrind/memcheck.log

valgrind: deps
	@$(MAKE) --no-print-directory all c-host heap-test hosts-prep
	@mkdir -p $(BUILD)/valgrind
	@echo "== specs under valgrind memcheck (lua5.4 /usr/bin/busted)"
	@{ TXAIO_MODEL_N=$(VALGRIND_MODEL_N) TXAIO_BUILD=$(BUILD) $(VALGRIND) $(BUSTED) --cpath='./$(BUILD)/?.so' $(VALGRIND_EXCLUDE) 2>&1; \
	  echo $$? > $(BUILD)/valgrind/status; } | tee $(BUILD)/valgrind/specs.log; \
	if [ -s $(BUILD)/valgrind/memcheck.log ]; then \
	  cat $(BUILD)/valgrind/memcheck.log; echo "valgrind: errors above ($(BUILD)/valgrind/memcheck.log)"; exit 1; fi; \
	sh .ci/summarize $(BUILD)/valgrind/specs.log || exit 1; \
	status=$$(cat $(BUILD)/valgrind/status); \
	if [ "$$status" != 0 ]; then echo "valgrind: exit status $$status"; exit 1; fi; \
	echo "valgrind: no errors, no definite leaks"

valgrind-full:
	@$(MAKE) --no-print-directory valgrind VALGRIND_EXCLUDE= VALGRIND_MODEL_N=2000

# ---------------------------------------------------------------- GC stress
# Just the two collector passes of `make test` that stress the core's user values and finalizers.
gcstress:
	@$(MAKE) --no-print-directory test SPEC_PASSES="generational stress"

# ---------------------------------------------------------------- the model test, longer
# make fuzz-long SEED=1234 N=20000: more sequences of the model-based test (spec/model_spec.lua).
SEED ?= $(shell date +%s)
N    ?= 20000
fuzz-long: all
	TXAIO_SEED=$(SEED) TXAIO_MODEL_N=$(N) TXAIO_BUILD=$(BUILD) $(BUSTED) --cpath='./$(BUILD)/?.so' \
	  spec/model_spec.lua

# ---------------------------------------------------------------- libFuzzer (clang)
# spec/fuzz/harness.c embeds Lua, links in the core built with clang's coverage instrumentation,
# ASan and UBSan (into build/fuzz/, never the ordinary build), and hands each input to
# spec/fuzz/ops.lua, which reads it as operations on futures, failures, timers and loops (see
# docs/reliability.md). `make fuzz` runs it for $(FUZZ_TIME) seconds on a scratch corpus seeded
# from spec/fuzz-corpus/, then merges the inputs that reach new code back into spec/fuzz-corpus/
# (-merge=1 -use_counters=0: only an input that covers an edge no committed input covers is added,
# so the committed corpus stays small; the run itself also counts hits, to explore); a crash, leak,
# sanitizer report, broken invariant or timeout fails the target and names the reproducer.
# spec/fuzz_spec.lua replays the committed corpus in `make test`, without clang.
FUZZ_TIME    ?= 60
FUZZ_MAX_LEN ?= 1024
FUZZ_OPTS    ?=
FUZZ_CC      ?= clang
FUZZ_CORPUS   = spec/fuzz-corpus
FUZZ_BUILD    = $(BUILD)/fuzz
FUZZ_BIN      = $(FUZZ_BUILD)/harness
FUZZ_OBJS     = $(SRCS:src/%.c=$(FUZZ_BUILD)/obj/%.o)
# TXAIO_DEBUG: the core checks its timer heap's order after every change (src/heap.c)
FUZZ_FLAGS    = -std=gnu99 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize-recover=all -DTXAIO_DEBUG
FUZZ_ENV      = ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

$(FUZZ_BUILD)/obj/%.o: src/%.c $(HEADERS) Makefile spec/support/check.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(WARN) $(LUA_CFLAGS) -c $< -o $@

$(FUZZ_BIN): spec/fuzz/harness.c $(FUZZ_OBJS) src/txaio.h spec/support/check.mk
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer $(WARN) $(LUA_CFLAGS) -Isrc \
	  -DTXAIO_FUZZ_ROOT='"$(CURDIR)"' -o $@ spec/fuzz/harness.c $(FUZZ_OBJS) $(LUA_LIBS) -lm

fuzz-build:
	@[ "$(LUA)" = lua5.4 ] || { echo "fuzz: the harness embeds Lua 5.4; run it with LUA=lua5.4 (the default)"; exit 1; }
	@sh .ci/deps clang $(LUA_DEBS)
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

fuzz: fuzz-build
	@rm -rf $(FUZZ_BUILD)/corpus && mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_CORPUS)
	@rm -f $(FUZZ_BUILD)/crash-* $(FUZZ_BUILD)/leak-* $(FUZZ_BUILD)/timeout-* $(FUZZ_BUILD)/oom-*
	@echo "== libFuzzer for $(FUZZ_TIME) s ($(FUZZ_BIN), seeds: $(FUZZ_CORPUS)/, log: $(FUZZ_BUILD)/fuzz.log)"
	@$(FUZZ_ENV) $(FUZZ_BIN) -max_total_time=$(FUZZ_TIME) -max_len=$(FUZZ_MAX_LEN) -timeout=30 \
	  -artifact_prefix=$(FUZZ_BUILD)/ -print_final_stats=1 $(FUZZ_OPTS) \
	  $(FUZZ_BUILD)/corpus $(FUZZ_CORPUS) > $(FUZZ_BUILD)/fuzz.log 2>&1; status=$$?; \
	found=$$(ls $(FUZZ_BUILD)/crash-* $(FUZZ_BUILD)/leak-* $(FUZZ_BUILD)/timeout-* \
	  $(FUZZ_BUILD)/oom-* 2>/dev/null); \
	if [ $$status -ne 0 ] || [ -n "$$found" ]; then \
	  tail -60 $(FUZZ_BUILD)/fuzz.log; \
	  echo "fuzz: libFuzzer exited with status $$status; reproducer: $${found:-none (see the log)}"; \
	  for f in $$found; do echo "  replay: $(FUZZ_BIN) $$f   (TXAIO_FUZZ_TRACE=1 lists the operations)"; done; \
	  exit 1; fi; \
	grep -E '^Done [0-9]+ runs|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
	  $(FUZZ_BUILD)/fuzz.log
	@before=$$(ls $(FUZZ_CORPUS) | wc -l); \
	$(FUZZ_ENV) $(FUZZ_BIN) -merge=1 -use_counters=0 -max_len=$(FUZZ_MAX_LEN) $(FUZZ_CORPUS) $(FUZZ_BUILD)/corpus \
	  > $(FUZZ_BUILD)/merge.log 2>&1 || { tail -30 $(FUZZ_BUILD)/merge.log; echo "fuzz: merge failed"; exit 1; }; \
	after=$$(ls $(FUZZ_CORPUS) | wc -l); \
	echo "fuzz: no crash; $(FUZZ_CORPUS)/ has $$after inputs ($$((after - before)) new, $$(cat $(FUZZ_CORPUS)/* | wc -c) bytes)"
