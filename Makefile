# convgen: build, test and example targets. `make help` lists them.

CC       ?= cc
CFLAGS   ?= -O2 -g
# Instrumentation added to every compile and link (make test-sanitize sets it).
SANITIZE ?=
# Where objects, test programs and the tool go; `make test-sanitize` uses others.
BUILD    ?= build
BIN      ?= bin
WARN      = -std=c99 -Wall -Wextra -pedantic
MULTIARCH = $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
TCC_LIB_PATH = /usr/lib/$(MULTIARCH)/tcc
# Recursive (=) so pkg-config runs only when a recipe needs it, after `make deps`.
LUA_CFLAGS = $(shell pkg-config --cflags lua5.4)
LUA_LIBS   = $(shell pkg-config --libs lua5.4)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka)
# Model files (runtime/model_file.c): libzip for .keras archives, the serial
# libhdf5 for the weights.
MODEL_CFLAGS = $(shell pkg-config --cflags libzip hdf5-serial)
MODEL_LIBS   = $(shell pkg-config --libs libzip hdf5-serial)
DKJSON    = /usr/share/lua/5.4/dkjson.lua

CPPFLAGS_ALL = -Iinclude -Iruntime -Igen -I$(BUILD)/gen -D_POSIX_C_SOURCE=200809L \
               -DCONVGEN_TCC_LIB_PATH='"$(TCC_LIB_PATH)"' $(MODEL_CFLAGS)

LUA_MODULES = $(wildcard gen/convgen/*.lua)
TEMPLATES   = $(wildcard templates/*.in)
RUNTIME_OBJ = $(BUILD)/npy.o $(BUILD)/fileio.o $(BUILD)/jit.o $(BUILD)/backend.o $(BUILD)/model_file.o \
              $(BUILD)/microkernels.o
HOST_OBJ    = $(BUILD)/host.o $(BUILD)/embedded.o $(RUNTIME_OBJ)
HOST_LIBS   = $(LUA_LIBS) -l:libtcc.a $(MODEL_LIBS) -ldl -lpthread -lm

LIB_OBJ     = $(BUILD)/convgen.o $(HOST_OBJ)

.PHONY: all deps check-deps example test clean help lint

all: $(BIN)/convgen $(BUILD)/libconvgen.a

help:
	@echo "make deps      install the Debian packages convgen needs (apt-get)"
	@echo "make           build $(BIN)/convgen and $(BUILD)/libconvgen.a"
	@echo "make example   generate, compile and run the bundled SeparableConv2D example"
	@echo "make test      build and run every test"
	@echo "make lint      luacheck the generator (needs lua-check)"
	@echo "make test-sanitize  every test under ASan, LSan and UBSan; the kernels under valgrind"
	@echo "make fuzz      each libFuzzer target for FUZZ_TIME seconds (default 60)"
	@echo "make bench     the performance suite against oneDNN (make deps-bench first)"
	@echo "make bench-jit compile times of the run-time library, per backend"
	@echo "make install   install convgen, the library, headers, convgen.mk, the CMake package and"
	@echo "               convgen.pc under PREFIX (default /usr/local; DESTDIR for staging)"
	@echo "make uninstall remove what make install installed (same PREFIX and DESTDIR)"
	@echo "make clean     remove build/ and bin/"

deps:
	@tools/deps.sh --install

check-deps:
	@tools/deps.sh

$(BUILD)/.dir:
	@mkdir -p $(BUILD) $(BIN) $(BUILD)/tests
	@touch $@

$(BUILD)/embedded.c: tools/embed.lua $(LUA_MODULES) $(TEMPLATES) templates/microkernels.lua | check-deps $(BUILD)/.dir
	lua5.4 tools/embed.lua $@ dkjson=$(DKJSON) \
	  $(foreach m,$(LUA_MODULES),convgen.$(basename $(notdir $(m)))=$(m)) \
	  convgen.microkernel_registry=templates/microkernels.lua \
	  $(foreach t,$(TEMPLATES),$(t)=$(t))

# The runtime's precompiled microkernels, generated from their registry.
# (Function attributes give the AVX2 variants their ISA: no -mavx2 here, so
# the library runs on any x86-64 and picks its variants at run time.)
MICROKERNEL_SOURCES = templates/microkernels.lua gen/convgen/microkernels.lua gen/convgen/template.lua gen/convgen/strips.lua \
                      tools/microkernels.lua $(wildcard templates/microkernel_*.in)
$(BUILD)/gen/microkernels.c: $(MICROKERNEL_SOURCES) | $(BUILD)/.dir
	@mkdir -p $(BUILD)/gen
	lua5.4 tools/microkernels.lua $@ $(BUILD)/gen/microkernels.h
$(BUILD)/gen/microkernels.h: $(BUILD)/gen/microkernels.c
# microkernels.c is 140k generated lines: where CFLAGS asks for debug
# information, line tables only (-g1: backtraces and profiles keep their
# names and lines) build it in two thirds of the time.
# MICROKERNELS_CFLAGS= keeps CFLAGS' own.
MICROKERNELS_CFLAGS ?= $(if $(filter -g%,$(CFLAGS)),-g1)
$(BUILD)/microkernels.o: $(BUILD)/gen/microkernels.c $(BUILD)/gen/microkernels.h
	$(CC) $(WARN) $(CFLAGS) $(MICROKERNELS_CFLAGS) $(SANITIZE) -I$(BUILD)/gen -c $< -o $@

$(BUILD)/%.o: runtime/%.c $(wildcard runtime/*.h include/*.h) gen/host.h $(BUILD)/gen/microkernels.h \
              | check-deps $(BUILD)/.dir
	$(CC) $(WARN) $(CFLAGS) $(SANITIZE) $(CPPFLAGS_ALL) $(LUA_CFLAGS) -c $< -o $@

$(BUILD)/%.o: gen/%.c gen/host.h $(BUILD)/gen/microkernels.h | check-deps $(BUILD)/.dir
	$(CC) $(WARN) $(CFLAGS) $(SANITIZE) $(CPPFLAGS_ALL) $(LUA_CFLAGS) -c $< -o $@

$(BUILD)/embedded.o: $(BUILD)/embedded.c gen/host.h
	$(CC) $(WARN) $(CFLAGS) $(SANITIZE) $(CPPFLAGS_ALL) $(LUA_CFLAGS) -c $< -o $@

$(BIN)/convgen: $(BUILD)/main.o $(HOST_OBJ)
	$(CC) $(CFLAGS) $(SANITIZE) -o $@ $^ $(HOST_LIBS)

# The run-time library (include/convgen.h): the generator, its templates and
# the runtime in one archive. Link with: -llua5.4 -l:libtcc.a -lzip -lhdf5_serial -ldl -lpthread -lm
$(BUILD)/libconvgen.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

clean:
	rm -rf build bin $(BUILD) $(BIN)

# fuzz.mk first: tests.mk's test rule lists its replay programs.
include tests/fuzz/fuzz.mk
include tests/tests.mk
include examples/examples.mk

lint:
	luacheck --no-color gen/convgen tools/embed.lua
include bench/bench.mk
include tools/install/install.mk
