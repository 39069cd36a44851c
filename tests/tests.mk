# tests.mk: `make test` builds and runs every test program (cmocka).

TEST_CFLAGS = $(WARN) -O1 -g $(SANITIZE) $(CPPFLAGS_ALL) $(LUA_CFLAGS) -Itests
TEST_NAMES  = test_reference test_microkernels test_kernels test_keras_golden test_cli test_host test_library test_embed test_model_file test_models
# ThreadSanitizer cannot be combined with the sanitizers of test-sanitize.
TEST_BINS   = $(addprefix $(BUILD)/tests/,$(TEST_NAMES)) $(if $(SANITIZE),,$(BUILD)/tests/test_library_tsan)

# The library and its test under ThreadSanitizer: any report fails the run.
TSAN_SOURCES = runtime/convgen.c runtime/backend.c runtime/jit.c runtime/npy.c runtime/fileio.c runtime/model_file.c \
               gen/host.c $(BUILD)/embedded.c $(BUILD)/tests/microkernels_tsan.o

.PHONY: test

$(BUILD)/tests/test_reference: tests/test_reference.c tests/reference.c tests/reference.h | check-deps $(BUILD)/.dir
	$(CC) $(TEST_CFLAGS) -o $@ tests/test_reference.c tests/reference.c $(CMOCKA_LIBS) -lm

$(BUILD)/tests/%: tests/%.c tests/harness.c tests/harness.h tests/reference.c tests/reference.h $(BUILD)/libconvgen.a | check-deps $(BUILD)/.dir
	$(CC) $(TEST_CFLAGS) -o $@ $< tests/harness.c tests/reference.c $(BUILD)/libconvgen.a $(CMOCKA_LIBS) $(HOST_LIBS)

# the generated microkernels apart, with their debug flags (Makefile: MICROKERNELS_CFLAGS)
$(BUILD)/tests/microkernels_tsan.o: $(BUILD)/gen/microkernels.c $(BUILD)/gen/microkernels.h | check-deps $(BUILD)/.dir
	$(CC) $(TEST_CFLAGS) $(MICROKERNELS_CFLAGS) -fsanitize=thread -I$(BUILD)/gen -c $< -o $@

$(BUILD)/tests/test_library_tsan: tests/test_library.c tests/harness.c tests/reference.c $(TSAN_SOURCES) \
                              $(wildcard runtime/*.h include/*.h) gen/host.h | check-deps $(BUILD)/.dir
	$(CC) $(TEST_CFLAGS) -fsanitize=thread -o $@ tests/test_library.c tests/harness.c tests/reference.c \
	  $(TSAN_SOURCES) $(CMOCKA_LIBS) $(HOST_LIBS)

# Every program runs (cmocka's summary each), then one total line.
test: $(TEST_BINS) $(REPLAY_BINS) $(BIN)/convgen $(BUILD)/example/separable $(BUILD)/example/jit $(BUILD)/example/model lint
	@CONVGEN=$(BIN)/convgen CONVGEN_EXAMPLES=$(BUILD)/example TSAN_OPTIONS="halt_on_error=1 exitcode=66" tools/run_tests.sh $(TEST_BINS) $(REPLAY_BINS)

# The whole suite again under AddressSanitizer (with LeakSanitizer) and
# UndefinedBehaviorSanitizer, built apart in build/sanitize; any report fails.
# Then the matrix's generated kernels (libtcc and gcc builds, on guard pages)
# run under valgrind's memcheck, from the plain build: valgrind and ASan do not mix.
SANITIZE_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SANITIZER_ENV  = CONVGEN_TEST_SANITIZED=1 \
                 ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86 \
                 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=87

.PHONY: test-sanitize
test-sanitize: $(BUILD)/tests/test_kernels | check-deps
	$(SANITIZER_ENV) $(MAKE) BUILD=build/sanitize BIN=build/sanitize/bin CFLAGS="-O1 -g" \
	  SANITIZE="$(SANITIZE_FLAGS)" test
	@echo "== valgrind $(BUILD)/tests/test_kernels"
	@valgrind -q --error-exitcode=99 $(BUILD)/tests/test_kernels >$(BUILD)/valgrind.log 2>&1; \
	  status=$$?; grep -E '^\[  (PASSED|FAILED)|^==[0-9]+==' $(BUILD)/valgrind.log | head -40; \
	  test $$status -eq 0 || { echo "valgrind: exit $$status (log: $(BUILD)/valgrind.log)"; exit 1; }
