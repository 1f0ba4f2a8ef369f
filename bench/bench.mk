# make bench / bench-quick: see bench/README.md
.PHONY: bench bench-quick
bench bench-quick:
	@echo "benchmarks: not written yet"
