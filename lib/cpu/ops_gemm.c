/* GEMM and the linear layer of the CPU backend, through OpenBLAS (cblas). */
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu.h"

/* OpenBLAS's thread count is one for the process: each GEMM sets it to its
 * context's, so that a context created later with another count does not
 * change this one's. (Inside a parallel region OpenBLAS runs on the calling
 * thread whatever the count.) */
static void use_context_threads(const dat_ctx *ctx)
{
#ifdef _OPENMP
    if (omp_in_parallel())
        return;
#endif
    if (openblas_get_num_threads() != ctx->opts.num_threads)
        openblas_set_num_threads(ctx->opts.num_threads);
}

dat_status dat_cpu_gemm(dat_ctx *ctx, int trans_a, int trans_b, int m, int n, int k,
                        float alpha, const float *a, int lda, const float *b, int ldb,
                        float beta, float *c, int ldc)
{
    use_context_threads(ctx);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
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
