# fuzz.mk: fuzz targets (tests/fuzz/). `make fuzz` runs each under libFuzzer
# for FUZZ_TIME seconds; `make test` replays each target's corpus
# (tests/fuzz/corpus/<target>/: seeds and every input that once crashed).

FUZZ_TARGETS = npy spec_json spec_lua generate
FUZZ_TIME   ?= 60
FUZZ_CC     ?= clang
FUZZ_SAN     = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_DEFS    = -DFUZZ_DRIVER='"$(CURDIR)/tests/fuzz/driver.lua"' -Itests/fuzz
FUZZ_COMMON  = tests/fuzz/fuzz_common.c tests/harness.c tests/reference.c
FUZZ_DEPS    = $(FUZZ_COMMON) tests/fuzz/fuzz.h tests/harness.h tests/reference.h

fuzz_source = tests/fuzz/$(if $(filter spec_%,$(1)),fuzz_spec.c,fuzz_$(1).c)
fuzz_label  = $(if $(filter spec_json,$(1)),-DFUZZ_LABEL='"fuzz.json"',$(if $(filter spec_lua,$(1)),-DFUZZ_LABEL='"fuzz.lua"'))

# Replays: plain builds linked with libconvgen.a, one cmocka test per corpus file.
REPLAY_BINS = $(addprefix $(BUILD)/tests/replay_,$(FUZZ_TARGETS))

$(BUILD)/tests/replay_%: tests/fuzz/replay.c tests/fuzz/fuzz_spec.c tests/fuzz/fuzz_npy.c tests/fuzz/fuzz_generate.c \
                         $(FUZZ_DEPS) $(BUILD)/libconvgen.a | check-deps $(BUILD)/.dir
	$(CC) $(TEST_CFLAGS) $(FUZZ_DEFS) $(call fuzz_label,$*) -DFUZZ_CORPUS='"tests/fuzz/corpus/$*"' -o $@ \
	  tests/fuzz/replay.c $(call fuzz_source,$*) $(FUZZ_COMMON) $(BUILD)/libconvgen.a $(CMOCKA_LIBS) $(HOST_LIBS)

# libFuzzer builds: everything of ours compiled by clang with coverage and
# AddressSanitizer + UndefinedBehaviorSanitizer; Lua line coverage on top.
FUZZ_LIB_SOURCES = runtime/npy.c runtime/fileio.c runtime/jit.c runtime/backend.c runtime/model_file.c gen/host.c \
                   $(BUILD)/embedded.c $(BUILD)/gen/microkernels.c

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_spec.c tests/fuzz/fuzz_npy.c tests/fuzz/fuzz_generate.c $(FUZZ_DEPS) \
                      $(FUZZ_LIB_SOURCES) | check-deps $(BUILD)/.dir
	@mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) $(WARN) -O1 -g $(FUZZ_SAN) -DCONVGEN_FUZZ_COVERAGE $(CPPFLAGS_ALL) $(LUA_CFLAGS) -Itests \
	  $(FUZZ_DEFS) $(call fuzz_label,$*) -o $@ $(call fuzz_source,$*) $(FUZZ_COMMON) $(FUZZ_LIB_SOURCES) $(HOST_LIBS)

# The Lua state lives across inputs, so its memory never balances per input
# and libFuzzer's per-input leak check would run (slowly) on every one: it is
# off for the Lua-based targets (test-sanitize checks leaks over whole runs).
# Each target starts from a copy of its checked-in corpus, so what the
# fuzzer adds stays in build/; crashes land in build/fuzz/crashes/<target>/.
# A crash, once fixed, is copied into tests/fuzz/corpus/<target>/ for good.
.PHONY: fuzz fuzz-build
fuzz-build: $(addprefix $(BUILD)/fuzz/fuzz_,$(FUZZ_TARGETS))

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD)/fuzz/corpus/$$t $(BUILD)/fuzz/crashes/$$t && \
	  cp -n tests/fuzz/corpus/$$t/* $(BUILD)/fuzz/corpus/$$t/ && \
	  echo "== fuzz_$$t ($(FUZZ_TIME) s; log: $(BUILD)/fuzz/$$t.log)" && \
	  opts=$$(case $$t in spec_*|generate) echo -dict=tests/fuzz/spec.dict -detect_leaks=0;; esac) && \
	  if $(BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_TIME) -timeout=20 -rss_limit_mb=4096 -max_len=16384 \
	       -print_final_stats=1 $$opts -artifact_prefix=$(BUILD)/fuzz/crashes/$$t/ \
	       $(BUILD)/fuzz/corpus/$$t >$(BUILD)/fuzz/$$t.log 2>&1; then \
	    grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' $(BUILD)/fuzz/$$t.log; \
	  else \
	    grep -E -A30 '^(==[0-9]+==ERROR|fuzz: )' $(BUILD)/fuzz/$$t.log | head -60; \
	    grep -E '^(artifact_prefix|Test unit written)' $(BUILD)/fuzz/$$t.log; \
	    exit 1; \
	  fi; \
	done
