# make asan / valgrind / gcstress / check / fuzz: the reliability checks
.PHONY: check
check: test
