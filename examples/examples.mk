# examples.mk: `make example` generates, compiles and runs the bundled
# SeparableConv2D example against Keras's own output.

EXAMPLE_DIR = examples/separable
EXAMPLE_OUT = $(BUILD)/example

.PHONY: example

$(EXAMPLE_OUT)/separable.c: $(BIN)/convgen $(EXAMPLE_DIR)/spec.json $(wildcard $(EXAMPLE_DIR)/weights/*.npy)
	@mkdir -p $(EXAMPLE_OUT)
	$(BIN)/convgen check $(EXAMPLE_DIR)/spec.json -w $(EXAMPLE_DIR)/weights
	$(BIN)/convgen generate $(EXAMPLE_DIR)/spec.json -w $(EXAMPLE_DIR)/weights -o $@

$(EXAMPLE_OUT)/separable: $(EXAMPLE_DIR)/main.c $(EXAMPLE_OUT)/separable.c runtime/npy.c runtime/fileio.c
	$(CC) -std=c99 -O2 $(SANITIZE) -Wall -Wextra -pedantic -Iinclude -Iruntime -I$(EXAMPLE_OUT) -o $@ \
	  $(EXAMPLE_DIR)/main.c $(EXAMPLE_OUT)/separable.c runtime/npy.c runtime/fileio.c -lm

example: $(EXAMPLE_OUT)/separable
	$(EXAMPLE_OUT)/separable $(EXAMPLE_DIR)/input.npy $(EXAMPLE_DIR)/expected.npy

# examples/jit: compiles a layer at run time through libconvgen.
.PHONY: example-jit

$(EXAMPLE_OUT)/jit: examples/jit/main.c include/convgen.h $(BUILD)/libconvgen.a
	@mkdir -p $(EXAMPLE_OUT)
	$(CC) -std=c99 -O2 $(SANITIZE) -Wall -Wextra -pedantic -D_POSIX_C_SOURCE=200809L -Iinclude -o $@ examples/jit/main.c \
	  $(BUILD)/libconvgen.a $(HOST_LIBS)

example-jit: $(EXAMPLE_OUT)/jit
	$(EXAMPLE_OUT)/jit

# examples/model: a whole Keras model (.keras) generated into one C file.
.PHONY: example-model
MODEL_DIR = examples/model

$(EXAMPLE_OUT)/mobilenet.c: $(BIN)/convgen $(MODEL_DIR)/mobilenet_block.keras
	@mkdir -p $(EXAMPLE_OUT)
	$(BIN)/convgen check $(MODEL_DIR)/mobilenet_block.keras
	$(BIN)/convgen generate $(MODEL_DIR)/mobilenet_block.keras --name mobilenet -o $@

$(EXAMPLE_OUT)/model: $(MODEL_DIR)/main.c $(EXAMPLE_OUT)/mobilenet.c runtime/npy.c runtime/fileio.c
	$(CC) -std=c99 -O2 $(SANITIZE) -Wall -Wextra -pedantic -Iinclude -Iruntime -I$(EXAMPLE_OUT) -o $@ \
	  $(MODEL_DIR)/main.c $(EXAMPLE_OUT)/mobilenet.c runtime/npy.c runtime/fileio.c -lm

example-model: $(EXAMPLE_OUT)/model
	$(EXAMPLE_OUT)/model $(MODEL_DIR)/input.npy $(MODEL_DIR)/expected.npy
