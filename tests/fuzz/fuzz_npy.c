/* fuzz_npy.c: the .npy reader on arbitrary bytes. It must accept a file
 * whose header and data agree, refuse anything else with a message, and never
 * read past the bytes it was given. */
#include "fuzz.h"

#include "convgen_npy.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so a read one byte past the end is caught. */
    unsigned char *bytes = malloc(size ? size : 1);
    if (size)
        memcpy(bytes, data, size);
    convgen_npy_array a;
    memset(&a, 0xA5, sizeof a);
    char err[256] = "";
    int rc = convgen_npy_parse(bytes, size, &a, err, sizeof err);
    if (rc == 0) {
        long count = 1;
        if (a.rank < 0 || a.rank > CONVGEN_NPY_MAX_RANK)
            fuzz_crash("accepted rank out of range", NULL);
        for (int i = 0; i < a.rank; i++) {
            if (a.shape[i] < 0)
                fuzz_crash("accepted a negative size", NULL);
            count *= a.shape[i];
        }
        if (count != a.count)
            fuzz_crash("count is not the product of the shape", NULL);
        /* Every float is readable and no more than the file holds. */
        if ((size_t)count * 4 > size)
            fuzz_crash("more floats than bytes", NULL);
        volatile float sink = 0.0f;
        for (long i = 0; i < count; i++)
            sink += a.data[i];
        (void)sink;
        convgen_npy_free(&a);
    } else if (err[0] == '\0') {
        fuzz_crash("refused without a message", NULL);
    }
    free(bytes);
    return 0;
}
