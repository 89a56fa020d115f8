/* Element-wise ops of the CUDA backend: ReLU, per-channel affine maps, sums,
 * scaling, and the finiteness check. Products and sums are rounded separately
 * (__fmul_rn / __fadd_rn: no fused multiply-add), as the CPU backend, which is
 * built with -ffp-contract=off, so both give the same bits. Outputs may alias
 * inputs where lib/core/backend.h allows it: each element is read before it is
 * written, by the same thread. */
#include "cuda_ops.h"

__global__ void relu_fwd_kernel(size_t n, const float *x, float *y)
{
    DAT_GRID_STRIDE(i, n)
    {
        float v = x[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

__global__ void relu_bwd_kernel(size_t n, const float *y, const float *dy, float *dx)
{
    DAT_GRID_STRIDE(i, n)
    dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

__global__ void channel_affine_kernel(size_t total, dat_channel_of channel, const float *x,
                                      const float *scale, const float *shift, float *y)
{
    DAT_GRID_STRIDE(i, total)
    {
        size_t ch = channel(i);
        y[i] = __fadd_rn(__fmul_rn(x[i], scale[ch]), shift ? shift[ch] : 0.0f);
    }
}

__global__ void add_kernel(size_t n, const float *a, const float *b, float *y)
{
    DAT_GRID_STRIDE(i, n)
    y[i] = a[i] + b[i];
}

__global__ void axpy_kernel(size_t n, float alpha, const float *x, float *y)
{
    DAT_GRID_STRIDE(i, n)
    y[i] = __fadd_rn(y[i], __fmul_rn(alpha, x[i]));
}

__global__ void scale_kernel(size_t n, float alpha, float *x)
{
    DAT_GRID_STRIDE(i, n)
    x[i] *= alpha;
}

/* Any thread that sees a NaN or Inf sets the flag (all write the same value). */
__global__ void check_finite_kernel(size_t n, const float *x, int *flag)
{
    DAT_GRID_STRIDE(i, n)
    if (!isfinite(x[i]))
        *flag = 1;
}

#define LAUNCH(ctx, n, kernel, ...)                                                       \
    do {                                                                                  \
        DAT_TRY(dat_cuda_use_device(ctx));                                                \
        if ((n) == 0)                                                                     \
            return DAT_OK;                                                                \
        kernel<<<dat_cuda_grid((n), 256), 256, 0, dat_cuda(ctx)->stream>>>(__VA_ARGS__);  \
        DAT_CUDA_CHECK_LAUNCH(#kernel);                                                   \
        return DAT_OK;                                                                    \
    } while (0)

dat_status dat_cuda_relu_fwd(dat_ctx *ctx, size_t n, const float *x, float *y)
{
    LAUNCH(ctx, n, relu_fwd_kernel, n, x, y);
}

dat_status dat_cuda_relu_bwd(dat_ctx *ctx, size_t n, const float *y, const float *dy, float *dx)
{
    LAUNCH(ctx, n, relu_bwd_kernel, n, y, dy, dx);
}

dat_status dat_cuda_channel_affine(dat_ctx *ctx, int n, int c, int hw, const float *x,
                                   const float *scale, const float *shift, float *y)
{
    size_t total = (size_t)n * (size_t)c * (size_t)hw;
    LAUNCH(ctx, total, channel_affine_kernel, total, dat_channel_of_make(total, c, hw), x, scale,
           shift, y);
}

dat_status dat_cuda_add(dat_ctx *ctx, size_t n, const float *a, const float *b, float *y)
{
    LAUNCH(ctx, n, add_kernel, n, a, b, y);
}

dat_status dat_cuda_axpy(dat_ctx *ctx, size_t n, float alpha, const float *x, float *y)
{
    LAUNCH(ctx, n, axpy_kernel, n, alpha, x, y);
}

dat_status dat_cuda_scale(dat_ctx *ctx, size_t n, float alpha, float *x)
{
    LAUNCH(ctx, n, scale_kernel, n, alpha, x);
}

dat_status dat_cuda_check_finite(dat_ctx *ctx, size_t n, const float *x, int *bad)
{
    *bad = 0;
    DAT_TRY(dat_cuda_use_device(ctx));
    if (n == 0)
        return DAT_OK;
    dat_cuda_state *st = dat_cuda(ctx);
    int *flag = (int *)st->scalars, found = 0;
    DAT_CUDA_TRY(cudaMemsetAsync(flag, 0, sizeof *flag, st->stream));
    check_finite_kernel<<<dat_cuda_grid(n, 256), 256, 0, st->stream>>>(n, x, flag);
    DAT_CUDA_CHECK_LAUNCH("check_finite_kernel");
    DAT_CUDA_TRY(cudaMemcpyAsync(&found, flag, sizeof found, cudaMemcpyDeviceToHost, st->stream));
    DAT_CUDA_TRY(cudaStreamSynchronize(st->stream));
    *bad = found;
    return DAT_OK;
}
