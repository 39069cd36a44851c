/* fileio.c: whole-file reads and all-or-nothing writes. */
#define _POSIX_C_SOURCE 200809L
#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int convgen__read_file(const char *path, unsigned char **data, size_t *size, char *err, size_t err_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "cannot open: %s", strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap)
            break;
        unsigned char *bigger = realloc(buf, cap * 2 + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (!buf || failed) {
        free(buf);
        snprintf(err, err_size, "%s", failed ? "read error" : "out of memory");
        return -1;
    }
    buf[len] = 0;
    *data = buf;
    *size = len;
    return 0;
}

int convgen__same_content(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    int same = 1;
    const unsigned char *want = data;
    unsigned char chunk[8192];
    size_t at = 0, got;
    while (same && (got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (at + got > size || memcmp(chunk, want + at, got) != 0)
            same = 0;
        at += got;
    }
    if (ferror(f) || at != size)
        same = 0;
    fclose(f);
    return same;
}

int convgen__write_temp(const char *path, const void *data, size_t size, char **tmp_out, char *err, size_t err_size)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, err_size, "cannot create a file beside it: %s", strerror(errno));
        free(tmp);
        return -1;
    }
    const unsigned char *p = data;
    size_t left = size;
    int ok = 1;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            ok = 0;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    int saved = errno;
    /* mkstemp creates 0600; give the file the usual permissions. */
    if (ok && fchmod(fd, 0644) != 0)
        saved = errno, ok = 0;
    if (close(fd) != 0 && ok)
        saved = errno, ok = 0;
    if (!ok) {
        unlink(tmp);
        free(tmp);
        snprintf(err, err_size, "cannot write: %s", strerror(saved));
        return -1;
    }
    *tmp_out = tmp;
    return 0;
}

int convgen__write_file_atomic(const char *path, const void *data, size_t size, char *err, size_t err_size)
{
    if (convgen__same_content(path, data, size))
        return 0;
    char *tmp;
    if (convgen__write_temp(path, data, size, &tmp, err, err_size) != 0)
        return -1;
    int status = 0;
    if (rename(tmp, path) != 0) {
        snprintf(err, err_size, "cannot write: %s", strerror(errno));
        unlink(tmp);
        status = -1;
    }
    free(tmp);
    return status;
}
