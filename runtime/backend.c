/* backend.c: libtcc in memory, or the system C compiler and dlopen. */
#define _POSIX_C_SOURCE 200809L
#include "backend.h"

#include "fileio.h"
#include "jit.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct convgen__code {
    int backend;
    convgen__jit *jit; /* tcc */
    void *library;     /* cc: dlopen handle */
    void *function;
};

#define MAX_FLAGS 32

/* Splits flags on spaces into argv[*n...]; returns 0 or -1 when too many. */
static int split_flags(char *flags, char **argv, int *n)
{
    for (char *tok = strtok(flags, " \t"); tok; tok = strtok(NULL, " \t")) {
        if (*n >= MAX_FLAGS)
            return -1;
        argv[(*n)++] = tok;
    }
    return 0;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[4096 + 256 + 2];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Compiles with the system compiler into dir/layer.so and opens it. */
static void *compile_cc(const char *source, const char *dir, int *kind, char *err, size_t err_size)
{
    char c_path[4096 + 32], so_path[4096 + 32], log_path[4096 + 32];
    snprintf(c_path, sizeof c_path, "%s/layer.c", dir);
    snprintf(so_path, sizeof so_path, "%s/layer.so", dir);
    snprintf(log_path, sizeof log_path, "%s/compiler.log", dir);
    if (convgen__write_file_atomic(c_path, source, strlen(source), err, err_size) != 0) {
        *kind = CONVGEN__CODE_SYSTEM;
        return NULL;
    }
    const char *cc = getenv("CC");
    if (!cc || !*cc)
        cc = "cc";
    const char *flags_env = getenv("CONVGEN_CC_FLAGS");
    char flags[1024];
    snprintf(flags, sizeof flags, "%s", flags_env ? flags_env : "-O2 -march=native");
    char *argv[MAX_FLAGS + 16];
    int n = 0;
    argv[n++] = (char *)cc;
    argv[n++] = "-std=c99";
    if (split_flags(flags, argv, &n) != 0) {
        snprintf(err, err_size, "too many flags in CONVGEN_CC_FLAGS");
        *kind = CONVGEN__CODE_SYSTEM;
        return NULL;
    }
    const char *tail[] = {"-fPIC", "-shared", "-o", so_path, c_path, "-lm"};
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++)
        argv[n++] = (char *)tail[i];
    argv[n] = NULL;

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid;
    int spawn = posix_spawnp(&pid, cc, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawn != 0) {
        snprintf(err, err_size, "cannot run the C compiler '%s': %s (set CC to a C compiler)", cc, strerror(spawn));
        *kind = spawn == ENOENT ? CONVGEN__CODE_NO_COMPILER : CONVGEN__CODE_SYSTEM;
        return NULL;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        unsigned char *log = NULL;
        size_t size = 0;
        char ignored[64];
        convgen__read_file(log_path, &log, &size, ignored, sizeof ignored);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
            *kind = CONVGEN__CODE_NO_COMPILER;
        else
            *kind = CONVGEN__CODE_COMPILE;
        snprintf(err, err_size, "%s failed: %.*s", cc, (int)(size > 2000 ? 2000 : size), log ? (char *)log : "");
        free(log);
        return NULL;
    }
    void *library = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(err, err_size, "dlopen: %s", dlerror());
        *kind = CONVGEN__CODE_SYSTEM;
    }
    return library;
}

convgen__code *convgen__code_compile(const char *source, const char *symbol, int backend, int *kind,
                                     char *err, size_t err_size)
{
    convgen__code *code = calloc(1, sizeof *code);
    if (!code) {
        snprintf(err, err_size, "out of memory");
        *kind = CONVGEN__CODE_SYSTEM;
        return NULL;
    }
    code->backend = backend;
    *kind = CONVGEN__CODE_OK;
    if (backend == CONVGEN__BACKEND_TCC) {
        code->jit = convgen__jit_compile(source, 0, err, err_size);
        if (!code->jit)
            *kind = CONVGEN__CODE_COMPILE;
        else
            code->function = convgen__jit_symbol(code->jit, symbol);
    } else {
        const char *tmp = getenv("TMPDIR");
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/convgen-cc-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            snprintf(err, err_size, "cannot create a temporary directory: %s", strerror(errno));
            *kind = CONVGEN__CODE_SYSTEM;
        } else {
            code->library = compile_cc(source, dir, kind, err, err_size);
            remove_dir(dir); /* the mapping outlives the file */
            if (code->library)
                code->function = dlsym(code->library, symbol);
        }
    }
    if (*kind == CONVGEN__CODE_OK && !code->function) {
        snprintf(err, err_size, "the compiled code has no function %s", symbol);
        *kind = CONVGEN__CODE_COMPILE;
    }
    if (*kind != CONVGEN__CODE_OK) {
        convgen__code_free(code);
        return NULL;
    }
    return code;
}

void *convgen__code_function(const convgen__code *code)
{
    return code->function;
}

void *convgen__code_symbol(const convgen__code *code, const char *name)
{
    if (code->jit)
        return convgen__jit_symbol(code->jit, name);
    return dlsym(code->library, name);
}

void convgen__code_free(convgen__code *code)
{
    if (!code)
        return;
    convgen__jit_free(code->jit);
    if (code->library)
        dlclose(code->library);
    free(code);
}
