/* OpenBLAS picks its GEMM kernels from the CPU's family and model when it is
 * loaded. A CPU newer than the OpenBLAS build (Debian 12 ships 0.3.21, which does
 * not know Emerald Rapids, family 6 model 207) gets the generic "Prescott" SSE3
 * kernels: about 3x slower than the AVX-512 ones the same CPU runs. Every
 * convolution of the CPU backend is a GEMM, so libdat checks once which kernels
 * were chosen and, when they are the generic ones on a CPU with AVX-512 or
 * AVX2 + FMA, asks OpenBLAS's dynamic-architecture loader to choose again with
 * the matching core type. A core type the user set (OPENBLAS_CORETYPE) is kept,
 * and a BLAS without the dynamic loader (or not OpenBLAS at all) is left alone. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cpu.h"

typedef char *(*corename_fn)(void);
typedef void (*dynamic_fn)(void);

static pthread_once_t blas_core_once = PTHREAD_ONCE_INIT;
static char blas_core_before[32];
static char blas_core_after[32];

static void copy_name(char *dst, size_t cap, corename_fn name)
{
    const char *s = name ? name() : NULL;
    strncpy(dst, s ? s : "unknown", cap - 1);
    dst[cap - 1] = '\0';
}

/* The OpenBLAS core type this CPU should run, or NULL to keep the choice made. */
static const char *wanted_core(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    return NULL;
}

static void blas_core_check(void)
{
    corename_fn name = (corename_fn)dlsym(RTLD_DEFAULT, "openblas_get_corename");
    dynamic_fn quit = (dynamic_fn)dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
    dynamic_fn init = (dynamic_fn)dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
    copy_name(blas_core_before, sizeof blas_core_before, name);
    memcpy(blas_core_after, blas_core_before, sizeof blas_core_after);
    const char *want = wanted_core();
    if (!name || !quit || !init || !want || getenv("OPENBLAS_CORETYPE") ||
        strcasecmp(blas_core_before, "prescott") != 0)
        return;
    /* The loader reads the core type from the environment only; the variable is
     * removed again so that child processes see the environment they were given. */
    setenv("OPENBLAS_CORETYPE", want, 0);
    quit();
    init();
    unsetenv("OPENBLAS_CORETYPE");
    copy_name(blas_core_after, sizeof blas_core_after, name);
}

void dat_cpu_blas_core(const dat_ctx *ctx)
{
    pthread_once(&blas_core_once, blas_core_check);
    if (strcmp(blas_core_before, blas_core_after) != 0)
        dat_log(ctx, DAT_LOG_INFO,
                "OpenBLAS chose its generic '%s' kernels for this CPU; switched to '%s'",
                blas_core_before, blas_core_after);
}
