/* model_file.h: a whole Keras model read from its file: the model's config
 * JSON text and every layer's weights as float32 tensors (internal).
 *
 * Two formats, recognised by their content, not their extension:
 *
 * - Keras 3 `.keras`: a zip archive holding config.json, metadata.json and
 *   model.weights.h5. The weights file is opened in memory. In it, a layer's
 *   variables are the datasets <group>/vars/0, 1, ... (the order of
 *   layer.weights); the group name is made up by Keras (conv2d, conv2d_1, ...)
 *   and the layer's own name is the `name` attribute of its vars group. A
 *   nested model's layers sit below it: layers/<outer>/layers/<inner>/vars.
 * - Legacy Keras 2 `.h5` (also written by Keras 3's model.save("x.h5")): the
 *   root attribute model_config (the JSON), and model_weights/<layer>/ groups
 *   in the order of model_weights' layer_names attribute, each with a
 *   weight_names attribute giving its datasets in order, at
 *   model_weights/<layer>/<weight name>.
 *
 * Tensors: float32 as is, float64 converted (out of float's range: infinity,
 * as NumPy does), anything else refused; rank 8 at most, fewer than 2^31
 * elements each.
 */
#ifndef CONVGEN_MODEL_FILE_H
#define CONVGEN_MODEL_FILE_H

#include "convgen_npy.h"

#include <stddef.h>

enum convgen__model_format {
    CONVGEN__MODEL_KERAS = 1, /* Keras 3 .keras archive */
    CONVGEN__MODEL_H5 = 2     /* legacy Keras 2 HDF5 file */
};

/* One layer's weights, in the order Keras lists them (layer.weights). */
typedef struct {
    char *name;                  /* see convgen__model_read for nested layers */
    int count;                   /* number of tensors, 0 for a layer without weights */
    convgen_npy_array *tensors;  /* count tensors */
} convgen__model_layer;

typedef struct {
    enum convgen__model_format format;
    char *config;                /* the model's config JSON, NUL-terminated */
    size_t config_size;          /* its length in bytes */
    int layer_count;
    convgen__model_layer *layers;
} convgen__model;

/* Reads the Keras model file at path into *out.
 *
 * Layers are named as in the config. In a .keras file a layer inside a
 * nested model (or a layer held by another layer) is named by the path of
 * names from the outermost layer down, joined by '/': "outer/inner". The
 * nested model itself is also listed, usually with no tensors. Variables
 * of the top model object itself (rare) would be listed under "". Every
 * layer of the model is listed, those without weights with count 0.
 *
 * In a legacy .h5 file, Keras stores a nested model as one layer: its entry
 * holds all its sublayers' tensors in order, under the nested model's name.
 *
 * Returns 0, or -1 with a message in err that names the file (and the zip
 * member and dataset at fault), leaving *out untouched: nothing to free. */
int convgen__model_read(const char *path, convgen__model *out, char *err, size_t err_size);

/* Frees what convgen__model_read filled in; accepts NULL and tensors whose
 * data was taken (set to NULL) by the caller. */
void convgen__model_free(convgen__model *model);

#endif
