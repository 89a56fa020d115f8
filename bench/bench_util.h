/* What the benchmark programs share: a monotonic clock and a status check that
 * prints libdat's message and leaves main with 1. */
#ifndef LIBDAT_BENCH_UTIL_H
#define LIBDAT_BENCH_UTIL_H

#include <libdat/dat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define TRY(call)                                                                          \
    do {                                                                                   \
        dat_status s_ = (call);                                                            \
        if (s_ != DAT_OK) {                                                                \
            fprintf(stderr, "%s: %s: %s\n", #call, dat_status_string(s_), dat_last_error()); \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

/* DAT_BENCH_DEVICE=cuda runs a benchmark on CUDA device 0 (the GPU benchmarks);
 * unset or "cpu": the CPU. */
static inline void bench_device(dat_ctx_options *co)
{
    const char *d = getenv("DAT_BENCH_DEVICE");
    if (d && strcmp(d, "cuda") == 0)
        co->device = DAT_DEVICE_CUDA;
}

#endif
