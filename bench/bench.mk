# make bench / bench-quick (issue 6): every workload against its baselines, medians of several
# fresh-process runs, one table on stdout (plain, then markdown). See bench/README.md.
# bench-quick uses smaller counts and three runs: under a minute.
BENCH_C    = $(BUILD)/bench/libuv_timers
BENCH_ENV  = LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./$(BUILD)/?.so;;"
BENCH_RUN  = $(BENCH_ENV) $(LUA) bench/run.lua --lua $(LUA) --c $(BENCH_C)

.PHONY: bench bench-quick
$(BENCH_C): bench/baseline/libuv_timers.c bench/bench.mk
	@mkdir -p $(dir $@)
	$(CC) -std=gnu99 $(OPT) -Wall -Wextra -o $@ $< $(shell pkg-config --cflags --libs libuv)

bench: deps all $(BENCH_C)
	@$(BENCH_RUN)

bench-quick: deps all $(BENCH_C)
	@$(BENCH_RUN) --quick
