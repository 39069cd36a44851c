# bench.mk: benchmark programs (they print figures; they are not tests).

.PHONY: bench bench-jit deps-bench check-deps-bench

deps-bench:
	@tools/deps.sh --install --bench

check-deps-bench:
	@tools/deps.sh --bench

BENCH_CFLAGS = $(WARN) -O2 $(CPPFLAGS_ALL) $(LUA_CFLAGS) -Itests -Ibench

$(BUILD)/bench/peak.o: bench/peak.c bench/peak.h | check-deps $(BUILD)/.dir
	@mkdir -p $(BUILD)/bench
	$(CC) $(BENCH_CFLAGS) -mavx2 -mfma -c $< -o $@

$(BUILD)/bench/bench: bench/bench.c bench/common.c bench/common.h bench/suite.c bench/suite.h \
                   bench/peer_onednn.c bench/peer_onednn.h \
                   bench/peer_xnnpack.c bench/peer_xnnpack.h $(BUILD)/bench/peak.o \
                   tests/harness.c tests/reference.c \
                   $(BUILD)/libconvgen.a | check-deps check-deps-bench $(BUILD)/.dir
	@mkdir -p $(BUILD)/bench
	$(CC) $(BENCH_CFLAGS) -o $@ bench/bench.c bench/common.c bench/suite.c bench/peer_onednn.c bench/peer_xnnpack.c \
	  $(BUILD)/bench/peak.o tests/harness.c \
	  tests/reference.c $(BUILD)/libconvgen.a -ldnnl -lXNNPACK -lpthreadpool $(HOST_LIBS)

# The suite against oneDNN and XNNPACK in the same run (make deps-bench installs them).
# Prints figures; never fails on a time (it fails only on a wrong output).
bench: $(BUILD)/bench/bench
	$(BUILD)/bench/bench

$(BUILD)/bench/jit_bench: bench/jit_bench.c bench/common.c bench/common.h bench/suite.c bench/suite.h tests/reference.c \
                       include/convgen.h $(BUILD)/libconvgen.a | check-deps $(BUILD)/.dir
	@mkdir -p $(BUILD)/bench
	$(CC) $(WARN) -O2 $(CPPFLAGS_ALL) -Ibench -Itests -o $@ bench/jit_bench.c bench/common.c bench/suite.c \
	  tests/reference.c $(BUILD)/libconvgen.a $(HOST_LIBS)

# Compile times per backend and the tcc / cc run-time ratio over the suite.
bench-jit: $(BUILD)/bench/jit_bench
	$(BUILD)/bench/jit_bench
