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

#ifdef MPI_VERSION
/* TRY for the MPI benchmarks (include after mpi.h): a failing rank aborts the
 * job, so that the others do not wait for it. */
#define TRY_MPI(call)                                                                      \
    do {                                                                                   \
        dat_status s_ = (call);                                                            \
        if (s_ != DAT_OK) {                                                                \
            fprintf(stderr, "%s: %s: %s\n", #call, dat_status_string(s_), dat_last_error()); \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                  \
        }                                                                                  \
    } while (0)
#endif

/* The GPU benchmarks' context from the environment: DAT_BENCH_DEVICE=cuda runs
 * on CUDA device 0 (unset or "cpu": the CPU), DAT_BENCH_PRECISION=tf32 or bf16
 * sets the precision, DAT_BENCH_CL=0 or 1 the activations' layout (NCHW or
 * NHWC; unset: the backend's choice), DAT_BENCH_TUNE=1 times cuDNN's
 * convolution algorithms, DAT_BENCH_GRAPHS=0 or 1 runs the attacks' steps op by
 * op or replays them from a CUDA graph (unset: the context's default, replayed). */
static inline void bench_device(dat_ctx_options *co)
{
    const char *d = getenv("DAT_BENCH_DEVICE"), *p = getenv("DAT_BENCH_PRECISION");
    const char *t = getenv("DAT_BENCH_TUNE"), *g = getenv("DAT_BENCH_GRAPHS");
    const char *cl = getenv("DAT_BENCH_CL");
    if (d && strcmp(d, "cuda") == 0)
        co->device = DAT_DEVICE_CUDA;
    if (p && strcmp(p, "tf32") == 0)
        co->precision = DAT_PRECISION_TF32;
    if (p && strcmp(p, "bf16") == 0)
        co->precision = DAT_PRECISION_BF16;
    if (cl)
        co->channels_last = strcmp(cl, "1") == 0;
    if (t && strcmp(t, "1") == 0)
        co->tune_convolutions = 1;
    if (g)
        co->cuda_graphs = strcmp(g, "1") == 0;
}

#endif
