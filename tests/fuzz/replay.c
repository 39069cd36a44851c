/* replay.c: runs a fuzz target once on every file of its corpus
 * (FUZZ_CORPUS: the seeds and every input that once crashed), one cmocka test
 * per file, so `make test` keeps each fixed crash fixed without libFuzzer. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fuzz.h"
#include "harness.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_CORPUS
#error "build with -DFUZZ_CORPUS=\"tests/fuzz/corpus/<target>\""
#endif

static void replay_one(void **state)
{
    const char *path = *state;
    size_t size;
    char *bytes = harness_read(path, &size);
    if (!bytes)
        fail_msg("cannot read %s", path);
    LLVMFuzzerTestOneInput((const uint8_t *)bytes, size);
    free(bytes);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    DIR *d = opendir(FUZZ_CORPUS);
    if (!d) {
        perror(FUZZ_CORPUS);
        return 1;
    }
    char **paths = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            paths = realloc(paths, cap * sizeof *paths);
        }
        size_t len = strlen(FUZZ_CORPUS) + strlen(e->d_name) + 2;
        paths[n] = malloc(len);
        snprintf(paths[n], len, "%s/%s", FUZZ_CORPUS, e->d_name);
        n++;
    }
    closedir(d);
    qsort(paths, n, sizeof *paths, by_name);
    struct CMUnitTest *tests = calloc(n ? n : 1, sizeof *tests);
    for (size_t i = 0; i < n; i++) {
        tests[i].name = paths[i];
        tests[i].test_func = replay_one;
        tests[i].initial_state = paths[i];
    }
    int failed = _cmocka_run_group_tests(FUZZ_CORPUS, tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    free(tests);
    return failed;
}
