/*
 * libdat as a plugin: dlopen, a context of 2 threads that runs OpenMP work,
 * destroy, dlclose, several times in one process. libdat brings in libgomp,
 * whose idle pool threads must not outlive the code they run (libdat is linked
 * -z nodelete). Exits 0, or 1 with a message; a crash is a failure too.
 *
 *   dlopen_cycles LIBDAT_SO
 */
#include <dlfcn.h>
#include <stdio.h>

#include "libdat/dat.h"

#define SYM(h, name) ((__typeof__(&name))dlsym(h, #name))

static int cycle(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    dat_ctx_options o;
    SYM(h, dat_ctx_options_init_sized)(&o, sizeof o);
    o.num_threads = 2;
    dat_ctx *ctx = NULL;
    dat_tensor *t = NULL;
    int64_t n = 1 << 20; /* large enough for the parallel fill */
    if (SYM(h, dat_ctx_create)(&ctx, &o) != DAT_OK ||
        SYM(h, dat_tensor_create)(&t, ctx, DAT_FLOAT32, 1, &n) != DAT_OK ||
        SYM(h, dat_tensor_fill_normal)(t, 0.0f, 1.0f, 0, 0) != DAT_OK) {
        fprintf(stderr, "libdat: %s\n", SYM(h, dat_last_error)());
        return 1;
    }
    SYM(h, dat_tensor_destroy)(t);
    SYM(h, dat_ctx_destroy)(ctx);
    return dlclose(h) != 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: dlopen_cycles LIBDAT_SO\n");
        return 1;
    }
    for (int i = 0; i < 5; ++i)
        if (cycle(argv[1]))
            return 1;
    return 0;
}
