/* fileio.h: whole-file reads and all-or-nothing writes (internal). */
#ifndef CONVGEN_FILEIO_H
#define CONVGEN_FILEIO_H

#include <stddef.h>

/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience).
 * Returns 0, or -1 with a message naming the file in err. */
int convgen__read_file(const char *path, unsigned char **data, size_t *size, char *err, size_t err_size);

/* Writes data to path through a temporary file in the same directory and a
 * rename, so readers never see a partial file and a failure leaves nothing.
 * When the file already holds exactly these bytes it is not touched, so
 * build tools see no change. Returns 0, or -1 with a message in err. */
int convgen__write_file_atomic(const char *path, const void *data, size_t size, char *err, size_t err_size);

/* True when path exists and holds exactly these bytes. */
int convgen__same_content(const char *path, const void *data, size_t size);

/* Writes data to a new temporary file beside path (mode 0644) and returns its
 * malloc'd name in *tmp, for the caller to rename over path or remove.
 * Returns 0, or -1 with a message in err and nothing left behind. */
int convgen__write_temp(const char *path, const void *data, size_t size, char **tmp, char *err, size_t err_size);

#endif
