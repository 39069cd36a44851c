# bench.mk: benchmark programs (they print figures; they are not tests).

.PHONY: bench-jit

build/bench/jit_bench: bench/jit_bench.c include/convgen.h build/libconvgen.a | check-deps build/.dir
	@mkdir -p build/bench
	$(CC) $(WARN) -O2 $(CPPFLAGS_ALL) -o $@ bench/jit_bench.c build/libconvgen.a $(HOST_LIBS)

# Compile times per backend and the tcc / cc run-time ratio over the suite.
bench-jit: build/bench/jit_bench
	build/bench/jit_bench
