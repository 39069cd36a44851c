# tests.mk: `make test` builds and runs every test program (cmocka).

TEST_CFLAGS = $(WARN) -O1 -g $(CPPFLAGS_ALL) $(LUA_CFLAGS) -Itests
TEST_NAMES  = test_reference test_kernels test_keras_golden test_cli test_host
TEST_BINS   = $(addprefix build/tests/,$(TEST_NAMES))

.PHONY: test

build/tests/test_reference: tests/test_reference.c tests/reference.c tests/reference.h | check-deps build/.dir
	$(CC) $(TEST_CFLAGS) -o $@ tests/test_reference.c tests/reference.c $(CMOCKA_LIBS) -lm

build/tests/%: tests/%.c tests/harness.c tests/harness.h tests/reference.c tests/reference.h $(HOST_OBJ) | check-deps build/.dir
	$(CC) $(TEST_CFLAGS) -o $@ $< tests/harness.c tests/reference.c $(HOST_OBJ) $(CMOCKA_LIBS) $(HOST_LIBS)

# Every program runs (cmocka's summary each), then one total line.
test: $(TEST_BINS) bin/convgen lint
	@CONVGEN=bin/convgen tools/run_tests.sh $(TEST_BINS)
