# tests.mk: `make test` builds and runs every test program (cmocka).

TEST_CFLAGS = $(WARN) -O1 -g $(CPPFLAGS_ALL) $(LUA_CFLAGS) -Itests
TEST_NAMES  = test_reference test_kernels test_keras_golden test_cli test_host test_library test_embed
TEST_BINS   = $(addprefix build/tests/,$(TEST_NAMES)) build/tests/test_library_tsan

# The library and its test under ThreadSanitizer: any report fails the run.
TSAN_SOURCES = runtime/convgen.c runtime/backend.c runtime/jit.c runtime/npy.c runtime/fileio.c \
               gen/host.c build/embedded.c

.PHONY: test

build/tests/test_reference: tests/test_reference.c tests/reference.c tests/reference.h | check-deps build/.dir
	$(CC) $(TEST_CFLAGS) -o $@ tests/test_reference.c tests/reference.c $(CMOCKA_LIBS) -lm

build/tests/%: tests/%.c tests/harness.c tests/harness.h tests/reference.c tests/reference.h build/libconvgen.a | check-deps build/.dir
	$(CC) $(TEST_CFLAGS) -o $@ $< tests/harness.c tests/reference.c build/libconvgen.a $(CMOCKA_LIBS) $(HOST_LIBS)

build/tests/test_library_tsan: tests/test_library.c tests/harness.c tests/reference.c $(TSAN_SOURCES) \
                              $(wildcard runtime/*.h include/*.h) gen/host.h | check-deps build/.dir
	$(CC) $(TEST_CFLAGS) -fsanitize=thread -o $@ tests/test_library.c tests/harness.c tests/reference.c \
	  $(TSAN_SOURCES) $(CMOCKA_LIBS) $(HOST_LIBS)

# Every program runs (cmocka's summary each), then one total line.
test: $(TEST_BINS) bin/convgen build/example/separable build/example/jit lint
	@CONVGEN=bin/convgen TSAN_OPTIONS="halt_on_error=1 exitcode=66" tools/run_tests.sh $(TEST_BINS)
