/* Max and average pooling of the CUDA backend (square windows, zero padding;
 * average pooling divides by k*k, counting padding, as PyTorch's default and
 * the CPU backend). The forward is one thread per output, scanning its window
 * in the CPU's order so ties and sums come out the same. The backward gathers:
 * one thread per input element sums the outputs whose window holds it (max:
 * those whose argmax is this element), so no atomics and no zeroing pass. */
#include <float.h>

#include "cuda_ops.h"

__global__ void pool_fwd_kernel(dat_pool_desc d, const float *x, float *y, int32_t *idx)
{
    size_t out_plane = (size_t)d.h_out * (size_t)d.w_out;
    size_t total = (size_t)d.n * (size_t)d.c * out_plane;
    float inv = 1.0f / (float)(d.k * d.k);
    DAT_GRID_STRIDE(o, total) {
        size_t p = o / out_plane;
        int r = (int)(o - p * out_plane), oy = r / d.w_out, ox = r - oy * d.w_out;
        const float *xp = x + p * (size_t)d.h_in * (size_t)d.w_in;
        float best = -FLT_MAX, sum = 0.0f;
        int32_t arg = -1;
        for (int ky = 0; ky < d.k; ++ky) {
            int iy = oy * d.stride - d.pad + ky;
            if (iy < 0 || iy >= d.h_in)
                continue;
            for (int kx = 0; kx < d.k; ++kx) {
                int ix = ox * d.stride - d.pad + kx;
                if (ix < 0 || ix >= d.w_in)
                    continue;
                float v = xp[iy * d.w_in + ix];
                sum += v;
                if (v > best || arg < 0) {
                    best = v;
                    arg = iy * d.w_in + ix;
                }
            }
        }
        if (d.kind == DAT_POOL_MAX) {
            y[o] = best;
            if (idx)
                idx[o] = arg;
        } else {
            y[o] = sum * inv;
        }
    }
}

/* Outputs o along one axis whose window [o * stride - pad, o * stride - pad + k)
 * holds input position i: [*lo, *hi]. */
__device__ inline void windows_of(int i, int k, int stride, int pad, int out, int *lo, int *hi)
{
    int t = i + pad - k + 1; /* o * stride >= t */
    *lo = t <= 0 ? 0 : (t + stride - 1) / stride;
    int h = (i + pad) / stride; /* o * stride <= i + pad */
    *hi = h < out - 1 ? h : out - 1;
}

__global__ void pool_bwd_kernel(dat_pool_desc d, const float *dy, const int32_t *idx, float *dx)
{
    size_t in_plane = (size_t)d.h_in * (size_t)d.w_in;
    size_t out_plane = (size_t)d.h_out * (size_t)d.w_out;
    size_t total = (size_t)d.n * (size_t)d.c * in_plane;
    float inv = 1.0f / (float)(d.k * d.k);
    DAT_GRID_STRIDE(e, total) {
        size_t p = e / in_plane;
        int r = (int)(e - p * in_plane), iy = r / d.w_in, ix = r - iy * d.w_in;
        const float *gp = dy + p * out_plane;
        const int32_t *ip = idx ? idx + p * out_plane : NULL;
        int y0, y1, x0, x1;
        windows_of(iy, d.k, d.stride, d.pad, d.h_out, &y0, &y1);
        windows_of(ix, d.k, d.stride, d.pad, d.w_out, &x0, &x1);
        float s = 0.0f;
        for (int oy = y0; oy <= y1; ++oy)
            for (int ox = x0; ox <= x1; ++ox) {
                int o = oy * d.w_out + ox;
                if (d.kind == DAT_POOL_MAX) {
                    if (ip[o] == r)
                        s += gp[o];
                } else {
                    s = __fadd_rn(s, __fmul_rn(gp[o], inv));
                }
            }
        dx[e] = s;
    }
}

dat_status dat_cuda_pool_fwd(dat_ctx *ctx, const dat_pool_desc *d, const float *x, float *y,
                             int32_t *idx)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    size_t total = (size_t)d->n * (size_t)d->c * (size_t)d->h_out * (size_t)d->w_out;
    if (total == 0)
        return DAT_OK;
    pool_fwd_kernel<<<dat_cuda_grid(total, 256), 256, 0, dat_cuda(ctx)->stream>>>(*d, x, y, idx);
    DAT_CUDA_CHECK_LAUNCH("pool_fwd_kernel");
    return DAT_OK;
}

dat_status dat_cuda_pool_bwd(dat_ctx *ctx, const dat_pool_desc *d, const float *dy,
                             const int32_t *idx, float *dx)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (d->kind == DAT_POOL_MAX && !idx)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "max pooling's backward needs the argmax indices of the forward");
    size_t total = (size_t)d->n * (size_t)d->c * (size_t)d->h_in * (size_t)d->w_in;
    if (total == 0)
        return DAT_OK;
    pool_bwd_kernel<<<dat_cuda_grid(total, 256), 256, 0, dat_cuda(ctx)->stream>>>(*d, dy, idx,
                                                                                  dx);
    DAT_CUDA_CHECK_LAUNCH("pool_bwd_kernel");
    return DAT_OK;
}
