/* GEMM and the linear layer of the CPU backend, through OpenBLAS (cblas). */
#include <cblas.h>
#include <pthread.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../core/ctx.h"
#include "cpu.h"

/*
 * OpenBLAS keeps one thread count for the whole process, and its OpenMP build
 * resets it at every call from the calling thread's omp_get_max_threads(): a
 * GEMM split for one count computes garbage when another thread's GEMM changes
 * the count under it. So GEMMs of different counts never overlap (the gate
 * below: those of the running count go in, the others wait until the running
 * ones are out), and the calling thread's OpenMP setting, which OpenBLAS's
 * count goes through, is its own again after each GEMM. Inside a parallel
 * region OpenBLAS runs on the calling thread and reads no count.
 */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_open = PTHREAD_COND_INITIALIZER;
static int gate_count;   /* the count of the GEMMs in the gate */
static int gate_inside;  /* how many GEMMs are in it */

static void gate_enter(int threads)
{
    pthread_mutex_lock(&gate_lock);
    while (gate_inside > 0 && gate_count != threads)
        pthread_cond_wait(&gate_open, &gate_lock);
    if (gate_inside == 0 && openblas_get_num_threads() != threads)
        openblas_set_num_threads(threads); /* nothing of OpenBLAS's runs now */
    gate_count = threads;
    gate_inside++;
    pthread_mutex_unlock(&gate_lock);
}

static void gate_leave(void)
{
    pthread_mutex_lock(&gate_lock);
    if (--gate_inside == 0)
        pthread_cond_broadcast(&gate_open);
    pthread_mutex_unlock(&gate_lock);
}

dat_status dat_cpu_gemm(dat_ctx *ctx, int trans_a, int trans_b, int m, int n, int k,
                        float alpha, const float *a, int lda, const float *b, int ldb,
                        float beta, float *c, int ldc)
{
    int gated = 1, threads = dat_host_threads(ctx), host = 1;
#ifdef _OPENMP
    gated = !omp_in_parallel();
    host = omp_get_max_threads();
#endif
    if (gated) {
        gate_enter(threads);
#ifdef _OPENMP
        omp_set_num_threads(threads); /* what OpenBLAS's OpenMP build reads */
#endif
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (gated) {
        gate_leave();
#ifdef _OPENMP
        omp_set_num_threads(host);
#endif
    }
    return DAT_OK;
}

dat_status dat_cpu_linear_fwd(dat_ctx *ctx, int n, int in, int out, const float *x,
                              const float *w, const float *b, float *y)
{
    /* y = x W^T (+ b: broadcast first, then accumulate the product onto it) */
    if (b)
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < out; ++j)
                y[(size_t)i * (size_t)out + (size_t)j] = b[j];
    return dat_cpu_gemm(ctx, 0, 1, n, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, out);
}

dat_status dat_cpu_linear_bwd(dat_ctx *ctx, int n, int in, int out, const float *x,
                              const float *w, const float *dy, float *dx, float *dw, float *db,
                              float beta)
{
    if (dx) /* dx = dy W */
        dat_cpu_gemm(ctx, 0, 0, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
    if (dw) /* dW = beta dW + dy^T x */
        dat_cpu_gemm(ctx, 1, 0, out, in, n, 1.0f, dy, out, x, in, beta, dw, in);
    if (db)
        for (int j = 0; j < out; ++j) {
            double s = 0;
            for (int i = 0; i < n; ++i)
                s += dy[(size_t)i * (size_t)out + (size_t)j];
            db[j] = (float)(beta == 0.0f ? s : beta * db[j] + s); /* beta 0 overwrites */
        }
    return DAT_OK;
}
