/* harness.c: shared test machinery. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "harness.h"

#include "host.h"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct lua_State *harness_host(void)
{
    char err[512];
    lua_State *L = convgen__host_new(err, sizeof err);
    if (!L) {
        fprintf(stderr, "harness: %s\n", err);
        abort();
    }
    return L;
}

char *harness_generate(struct lua_State *L, const char *spec_text, const char *label, const char *name,
                       const char *weights_dir, const char *unroll, int keras_version, const char *target,
                       char **err)
{
    lua_pushstring(L, spec_text);
    lua_pushstring(L, label);
    lua_pushstring(L, name);
    if (weights_dir)
        lua_pushstring(L, weights_dir);
    else
        lua_pushnil(L);
    lua_pushboolean(L, weights_dir == NULL);
    lua_pushstring(L, unroll ? unroll : "default");
    lua_pushinteger(L, keras_version ? keras_version : 3);
    lua_pushstring(L, target ? target : "scalar");
    int status = convgen__host_call(L, "convgen.api", "generate_text", 8, 1);
    const char *text = lua_tostring(L, -1);
    char *copy = strdup(text ? text : "(no message)");
    lua_pop(L, 1);
    if (status != 0) {
        *err = copy;
        return NULL;
    }
    *err = NULL;
    return copy;
}

long harness_plan_value(struct lua_State *L, const char *spec_text, int keras_version, const char *target,
                        const char *field)
{
    lua_pushstring(L, spec_text);
    lua_pushstring(L, "spec.json");
    lua_pushnil(L);
    lua_pushinteger(L, keras_version ? keras_version : 3);
    lua_pushnil(L);
    lua_pushstring(L, target ? target : "scalar");
    int status = convgen__host_call(L, "convgen.api", "prepare", 6, 1);
    long value = -1;
    if (status == 0 && lua_istable(L, -1)) {
        lua_getfield(L, -1, field);
        value = (long)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return value;
}

char *harness_tempdir(void)
{
    const char *base = getenv("TMPDIR");
    char *path = malloc(4096);
    snprintf(path, 4096, "%s/convgen-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        abort();
    }
    return path;
}

void harness_remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            harness_remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

char *harness_write(const char *dir, const char *name, const void *data, size_t size)
{
    char *path = malloc(4096);
    snprintf(path, 4096, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

char *harness_read(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap)
            buf = realloc(buf, (cap *= 2) + 1);
    }
    fclose(f);
    buf[len] = 0;
    if (size)
        *size = len;
    return buf;
}

int harness_run(char *const argv[], char **output)
{
    char *dir = harness_tempdir();
    char log[4200];
    snprintf(log, sizeof log, "%s/output", dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_RDONLY);
        if (fd < 0 || null < 0)
            _exit(127);
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (output)
        *output = harness_read(log, NULL);
    harness_remove_tree(dir);
    free(dir);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void *harness_compile_shared(const char *compiler, const char *c_path, const char *so_path, char **log)
{
    /* Under make test-sanitize the generated code is checked too: any undefined
     * behaviour in it (a signed overflow in its index arithmetic, say) stops the test. */
    int sanitized = getenv("CONVGEN_TEST_SANITIZED") != NULL;
    char *argv[] = {(char *)compiler, "-std=c99", "-O2", "-mavx2", "-mfma", "-Wall", "-Wextra", "-pedantic",
                    "-Werror", "-shared", "-fPIC", (char *)c_path, "-o", (char *)so_path, "-lm",
                    sanitized ? "-fsanitize=undefined" : NULL, "-fno-sanitize-recover=all", NULL};
    char *out = NULL;
    int status = harness_run(argv, &out);
    if (status != 0) {
        *log = out ? out : strdup("compiler did not run");
        return NULL;
    }
    free(out);
    void *handle = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        *log = strdup(dlerror());
        return NULL;
    }
    *log = NULL;
    return handle;
}

void harness_append(harness_buffer *b, const char *text)
{
    size_t n = strlen(text);
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->text = realloc(b->text, b->cap);
        if (!b->text)
            abort();
    }
    memcpy(b->text + b->len, text, n + 1);
    b->len += n;
}

void harness_fill(float *x, long n, unsigned long long *state, float lo, float hi)
{
    for (long i = 0; i < n; i++) {
        /* splitmix64: deterministic across platforms */
        unsigned long long z = (*state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x[i] = lo + (hi - lo) * (float)((double)(z >> 40) / (double)(1ull << 24));
    }
}

long harness_mismatch(const float *got, const float *want, long n, double rtol, double atol)
{
    for (long i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        if (!(fabs(g - w) <= atol + rtol * fabs(w)))
            return i;
    }
    return -1;
}

float *harness_guarded_alloc(harness_guarded *g, long n, int at_end)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t bytes = (size_t)(n > 0 ? n : 0) * sizeof(float);
    size_t data_pages = (bytes + page - 1) / page;
    if (data_pages == 0)
        data_pages = 1;
    g->map_size = (data_pages + 2) * page;
    g->map = mmap(NULL, g->map_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED) {
        perror("mmap");
        abort();
    }
    char *first = (char *)g->map + page;
    g->data_pages_offset = page;
    g->data_pages_size = data_pages * page;
    if (mprotect(first, g->data_pages_size, PROT_READ | PROT_WRITE) != 0) {
        perror("mprotect");
        abort();
    }
    g->data = (float *)(at_end ? first + data_pages * page - bytes : first);
    return g->data;
}

void harness_guarded_readonly(harness_guarded *g)
{
    if (mprotect((char *)g->map + g->data_pages_offset, g->data_pages_size, PROT_READ) != 0) {
        perror("mprotect");
        abort();
    }
}

void harness_guarded_free(harness_guarded *g)
{
    if (g->map)
        munmap(g->map, g->map_size);
    g->map = NULL;
    g->data = NULL;
}
