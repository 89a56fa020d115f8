/* Max and average pooling of the CUDA backend (square windows, zero padding;
 * average pooling divides by k*k, counting padding, as PyTorch's default and
 * the CPU backend), in every activation format: values are read as float,
 * summed in double as the CPU sums them and rounded once to float, then to the
 * format (a float sum of a large plane lost 7e-6). The forward is one thread
 * per output, scanning its window in the CPU's order so ties and sums come
 * out the same. The backward gathers:
 * one thread per input element sums the outputs whose window holds it (max:
 * those whose argmax is this element), so no atomics and no zeroing pass. */
#include <float.h>

#include "cuda_ops.h"

/* The (sample, channel) plane of element i of a tensor of `plane` positions
 * per plane: *pos, its position in the plane, and the offset of the same
 * plane's first element in the other tensor (other_plane positions per plane).
 * Position q of a plane lies at that offset + q * step, step 1 in NCHW and c in
 * NHWC, where the planes interleave. */
template <bool NHWC>
__device__ inline size_t plane_of(size_t i, size_t plane, size_t other_plane, int c, int *pos)
{
    if (!NHWC) {
        size_t p = i / plane;
        *pos = (int)(i - p * plane);
        return p * other_plane;
    }
    size_t s = i / (size_t)c, ch = i - s * (size_t)c, n = s / plane;
    *pos = (int)(s - n * plane);
    return n * other_plane * (size_t)c + ch;
}

/* One thread per output o (laid out as y, as is idx). */
template <typename T, bool NHWC>
__global__ void pool_fwd_kernel(dat_pool_desc d, const T *x, T *y, int32_t *idx)
{
    size_t out_plane = (size_t)d.h_out * (size_t)d.w_out;
    size_t total = (size_t)d.n * (size_t)d.c * out_plane;
    size_t step = NHWC ? (size_t)d.c : 1;
    double area = (double)d.k * (double)d.k; /* k * k may pass int */
    DAT_GRID_STRIDE(o, total) {
        int r;
        const T *xp = x + plane_of<NHWC>(o, out_plane, (size_t)d.h_in * (size_t)d.w_in, d.c, &r);
        int oy = r / d.w_out, ox = r - oy * d.w_out;
        float best = -FLT_MAX;
        double sum = 0.0;
        int32_t arg = -1;
        for (int ky = 0; ky < d.k; ++ky) {
            int iy = oy * d.stride - d.pad + ky;
            if (iy < 0 || iy >= d.h_in)
                continue;
            for (int kx = 0; kx < d.k; ++kx) {
                int ix = ox * d.stride - d.pad + kx;
                if (ix < 0 || ix >= d.w_in)
                    continue;
                float v = dat_ld(xp, (size_t)(iy * d.w_in + ix) * step);
                sum += v;
                if (v > best || arg < 0) {
                    best = v;
                    arg = iy * d.w_in + ix;
                }
            }
        }
        if (d.kind == DAT_POOL_MAX) {
            dat_st(y, o, best);
            if (idx)
                idx[o] = arg;
        } else {
            dat_st(y, o, (float)(sum / area));
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

/* One thread per input element e, summing its outputs in the CPU's order. */
template <typename T, bool NHWC>
__global__ void pool_bwd_kernel(dat_pool_desc d, const T *dy, const int32_t *idx, T *dx)
{
    size_t in_plane = (size_t)d.h_in * (size_t)d.w_in;
    size_t out_plane = (size_t)d.h_out * (size_t)d.w_out;
    size_t total = (size_t)d.n * (size_t)d.c * in_plane;
    size_t step = NHWC ? (size_t)d.c : 1;
    float inv = 1.0f / ((float)d.k * (float)d.k); /* k * k may pass int */
    DAT_GRID_STRIDE(e, total) {
        int r;
        size_t base = plane_of<NHWC>(e, in_plane, out_plane, d.c, &r);
        int iy = r / d.w_in, ix = r - iy * d.w_in;
        const T *gp = dy + base;
        const int32_t *ip = idx ? idx + base : NULL;
        int y0, y1, x0, x1;
        windows_of(iy, d.k, d.stride, d.pad, d.h_out, &y0, &y1);
        windows_of(ix, d.k, d.stride, d.pad, d.w_out, &x0, &x1);
        float s = 0.0f;
        for (int oy = y0; oy <= y1; ++oy)
            for (int ox = x0; ox <= x1; ++ox) {
                size_t o = (size_t)(oy * d.w_out + ox) * step;
                if (d.kind == DAT_POOL_MAX) {
                    if (ip[o] == r)
                        s += dat_ld(gp, o);
                } else {
                    s = __fadd_rn(s, __fmul_rn(dat_ld(gp, o), inv));
                }
            }
        dat_st(dx, e, s);
    }
}

dat_status dat_cuda_pool_fwd(dat_ctx *ctx, const dat_pool_desc *d, const void *x, void *y,
                             int32_t *idx)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    size_t total = (size_t)d->n * (size_t)d->c * (size_t)d->h_out * (size_t)d->w_out;
    if (total == 0)
        return DAT_OK;
    return dat_fmt_dispatch(d->fmt, [&](auto t) -> dat_status {
        using T = decltype(t);
        auto kernel =
            (d->fmt & DAT_FMT_NHWC) ? pool_fwd_kernel<T, true> : pool_fwd_kernel<T, false>;
        kernel<<<dat_cuda_grid(total, 256), 256, 0, dat_cuda(ctx)->stream>>>(*d, (const T *)x,
                                                                            (T *)y, idx);
        DAT_CUDA_CHECK_LAUNCH("pool_fwd_kernel");
        return DAT_OK;
    });
}

dat_status dat_cuda_pool_bwd(dat_ctx *ctx, const dat_pool_desc *d, const void *dy,
                             const int32_t *idx, void *dx)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (d->kind == DAT_POOL_MAX && !idx)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "max pooling's backward needs the argmax indices of the forward");
    size_t total = (size_t)d->n * (size_t)d->c * (size_t)d->h_in * (size_t)d->w_in;
    if (total == 0)
        return DAT_OK;
    return dat_fmt_dispatch(d->fmt, [&](auto t) -> dat_status {
        using T = decltype(t);
        auto kernel =
            (d->fmt & DAT_FMT_NHWC) ? pool_bwd_kernel<T, true> : pool_bwd_kernel<T, false>;
        kernel<<<dat_cuda_grid(total, 256), 256, 0, dat_cuda(ctx)->stream>>>(*d, (const T *)dy,
                                                                            idx, (T *)dx);
        DAT_CUDA_CHECK_LAUNCH("pool_bwd_kernel");
        return DAT_OK;
    });
}
