# convgen.mk: generate a layer's C source and header from Make.
#
#     include /usr/local/share/convgen/convgen.mk      # where `make install` put it
#
# Two ways to declare a layer:
#
# 1. By convention: a Keras spec LAYER.json beside a directory LAYER.weights/
#    of .npy files gives LAYER.c and LAYER.h, one convgen run for both:
#
#        app: main.o layer.o
#        layer.o: layer.c        # name the .c, or make deletes it as an intermediate
#        main.o: layer.h
#
#    The rule applies only where both LAYER.json and LAYER.weights/ exist, so
#    it cannot take over a hand-written .c. Options for one layer go on both
#    outputs: `layer.c layer.h: CONVGEN_FLAGS += --target avx2`.
#
# 2. Explicitly, for any paths (e.g. outputs in a build directory), weights
#    passed at run time, or options of its own:
#
#        $(call convgen_model,OUT.c,SPEC,[WEIGHTS_DIR],[OPTIONS])
#        $(call convgen_model,build/conv1.c,specs/conv1.json,specs/conv1.weights,--target avx2)
#        $(call convgen_model,build/conv2.c,specs/conv2.json,,--weights-at-runtime --name conv2)
#        $(call convgen_model,build/net.c,models/net.keras)      (a whole model: its weights are in the file)
#
# Either way the outputs are remade when the spec, any .npy in the weights
# directory, the directory itself (a file added or removed) or the convgen
# binary is newer. Variables (set them before or after the include):
#
#   CONVGEN_PREFIX    where convgen is installed (default: found from this file's location)
#   CONVGEN           the generator (default: $(CONVGEN_PREFIX)/bin/convgen, else convgen on PATH)
#   CONVGEN_FLAGS     options for every layer (e.g. --target avx2, --keras-version 2)
#   CONVGEN_CPPFLAGS  -I for convgen.h and convgen_npy.h
#   CONVGEN_LIBS      the run-time library and what it links (needed for convgen.h or
#                     convgen_npy.h; generated layers themselves need only -lm)
#
# Needs GNU Make 4.3 or later (grouped targets `&:`).

ifeq ($(filter grouped-target,$(.FEATURES)),)
$(error convgen.mk needs GNU Make 4.3 or later (grouped targets); this is GNU Make $(MAKE_VERSION))
endif

# This file lives in PREFIX/share/convgen/; read before any other include changes MAKEFILE_LIST.
ifndef CONVGEN_PREFIX
CONVGEN_PREFIX := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../..)
endif

CONVGEN ?= $(firstword $(wildcard $(CONVGEN_PREFIX)/bin/convgen) convgen)
CONVGEN_FLAGS ?=
CONVGEN_CPPFLAGS = -I$(CONVGEN_PREFIX)/include
CONVGEN_LIBS = $(CONVGEN_PREFIX)/lib/libconvgen.a -llua5.4 -l:libtcc.a -lzip -lhdf5_serial -ldl -lpthread -lm

# The generator is a prerequisite when it is named by a path (a bare name is
# looked up on PATH at run time, and make cannot date it).
convgen_tool_dep = $(if $(findstring /,$(CONVGEN)),$(CONVGEN))

# One generation: $(call convgen_generate,SPEC,WEIGHTS_DIR,OUT.c,OUT.h,OPTIONS)
#
# `convgen generate` replaces its outputs atomically and leaves a file whose
# content would not change untouched. That keeps old timestamps, so after a
# spec is touched (or edited without changing the code) the outputs would
# stay older than the spec and make would run the generator on every build.
# Touching both outputs afterwards makes them newer than every prerequisite:
# the next build does nothing, at the price of recompiling the layer once.
# On an error convgen writes nothing and the touch does not run.
define convgen_generate
@mkdir -p $(dir $(3)) $(dir $(4))
$(strip $(CONVGEN) generate $(1) $(if $(2),-w $(2)) $(CONVGEN_FLAGS) $(5) -o $(3) --header $(4))
@touch $(3) $(4)
endef

# The convention: LAYER.json + LAYER.weights/ -> LAYER.c + LAYER.h. Listing the
# .npy files needs the stem, hence secondary expansion (it applies to rules
# that follow; only prerequisites written with `$$` are affected).
.SECONDEXPANSION:
%.c %.h &: %.json %.weights $$(wildcard $$*.weights/*.npy) $$(convgen_tool_dep)
	$(call convgen_generate,$<,$*.weights,$*.c,$*.h,)

# The explicit form; it defines the rule for OUT.c and the header beside it.
# It keeps .DEFAULT_GOAL as it was, so a layer declared before the makefile's
# first target does not become what a plain `make` builds.
convgen_model = $(eval convgen_saved_goal := $(.DEFAULT_GOAL)) \
  $(eval $(call convgen_model_rule,$(strip $(1)),$(strip $(2)),$(strip $(3)),$(strip $(4)))) \
  $(eval .DEFAULT_GOAL := $(convgen_saved_goal))

define convgen_model_rule
$(if $(filter %.c,$(1)),,$(error convgen_model: the first argument must be the output .c file, got "$(1)"))
$(if $(2),,$(error convgen_model: no spec given for $(1)))
$(if $(3)$(filter --weights-at-runtime,$(4))$(filter %.keras %.h5,$(2)),,$(error convgen_model: no weights directory for $(1) (or pass --weights-at-runtime; a .keras or .h5 model holds its own)))
$(1) $(1:.c=.h) &: $(2) $(if $(3),$(3) $(wildcard $(3)/*.npy $(3)/*/*.npy)) $(convgen_tool_dep)
	$$(call convgen_generate,$(2),$(3),$(1),$(1:.c=.h),$(4))
endef
