/* GEMM and the linear layer of the CUDA backend, through cuBLAS in full fp32
 * (the handle's math mode is set in backend_cuda.cu). */
#include "cuda_ops.h"

dat_status dat_cuda_gemm(dat_ctx *ctx, int trans_a, int trans_b, int m, int n, int k,
                         float alpha, const float *a, int lda, const float *b, int ldb,
                         float beta, float *c, int ldc)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    /* cuBLAS is column-major. A row-major matrix read column-major is its
     * transpose, so row-major C = op(A) op(B) is column-major
     * C^T = op(B)^T op(A)^T: the same buffers, operands swapped, m and n swapped. */
    DAT_CUBLAS_TRY(cublasSgemm(dat_cuda(ctx)->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                               trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb, a,
                               lda, &beta, c, ldc));
    return DAT_OK;
}

/* y[i][j] = b[j] for n rows of `out`. */
__global__ void broadcast_rows_kernel(float *y, const float *b, size_t n, int out)
{
    size_t total = n * (size_t)out;
    DAT_GRID_STRIDE(i, total)
        y[i] = b[i % (size_t)out];
}

/* db[j] = beta db[j] + sum_i dy[i][j], summed in double; beta 0 overwrites
 * (even a NaN left in db), as the CPU backend. */
__global__ void column_sums_kernel(const float *dy, int n, int out, float *db, float beta)
{
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < out; j += gridDim.x * blockDim.x) {
        double s = 0;
        for (int i = 0; i < n; ++i)
            s += dy[(size_t)i * (size_t)out + (size_t)j];
        db[j] = (float)(beta == 0.0f ? s : (double)__fmul_rn(beta, db[j]) + s);
    }
}

dat_status dat_cuda_linear_fwd(dat_ctx *ctx, int n, int in, int out, const float *x,
                               const float *w, const float *b, float *y)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    /* y = x W^T (+ b: broadcast first, then accumulate the product onto it) */
    if (b) {
        size_t total = (size_t)n * (size_t)out;
        broadcast_rows_kernel<<<dat_cuda_grid(total, 256), 256, 0, dat_cuda(ctx)->stream>>>(
            y, b, (size_t)n, out);
        DAT_CUDA_CHECK_LAUNCH("broadcast_rows_kernel");
    }
    return dat_cuda_gemm(ctx, 0, 1, n, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, out);
}

dat_status dat_cuda_linear_bwd(dat_ctx *ctx, int n, int in, int out, const float *x,
                               const float *w, const float *dy, float *dx, float *dw, float *db,
                               float beta)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (dx) /* dx = dy W */
        DAT_TRY(dat_cuda_gemm(ctx, 0, 0, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in));
    if (dw) /* dW = beta dW + dy^T x; cuBLAS does not read dW when beta is 0 */
        DAT_TRY(dat_cuda_gemm(ctx, 1, 0, out, in, n, 1.0f, dy, out, x, in, beta, dw, in));
    if (db) {
        column_sums_kernel<<<dat_cuda_grid((size_t)out, 128), 128, 0, dat_cuda(ctx)->stream>>>(
            dy, n, out, db, beta);
        DAT_CUDA_CHECK_LAUNCH("column_sums_kernel");
    }
    return DAT_OK;
}
