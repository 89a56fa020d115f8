/* Element-wise ops of the CUDA backend: ReLU, conversions between activation
 * formats with a per-channel affine map, sums, scaling, and the finiteness
 * check. Products and sums are rounded separately (__fmul_rn / __fadd_rn: no
 * fused multiply-add), as the CPU backend, which is built with
 * -ffp-contract=off, so both give the same bits. Outputs may alias
 * inputs where lib/core/backend.h allows it: each element is read before it is
 * written, by the same thread. */
#include "cuda_ops.h"
#include "map.h"

/* Activations are float or bfloat16 bits, mapped in 16-byte packs (map.h):
 * computed in float, rounded once on the store, as the CPU reference. */
struct relu_fwd_op {
    template <typename T>
    __device__ T operator()(size_t, const T (&x)[1]) const
    {
        float v = dat_val(x[0]);
        return dat_rounded<T>(v > 0.0f ? v : 0.0f);
    }
};

/* dy's bits pass through (T() is +0 in both types), as the CPU's. */
struct relu_bwd_op {
    template <typename T>
    __device__ T operator()(size_t, const T (&y_dy)[2]) const
    {
        return dat_val(y_dy[0]) > 0.0f ? y_dy[1] : T();
    }
};

/* Element o of dst (layout DST_NHWC) is element `from` of src (layout
 * SRC_NHWC), channel ch, of an n x c x hw tensor. Within one layout the index
 * is the same and the channel comes from the fast functor; the transposing
 * cases (the model's edges, conv weights) divide in 64 bits. */
template <bool SRC_NHWC, bool DST_NHWC>
__device__ inline size_t source_of(size_t o, size_t c, size_t hw, dat_channel_of channel,
                                   size_t *ch)
{
    if (SRC_NHWC == DST_NHWC) {
        *ch = channel(o);
        return o;
    }
    if (DST_NHWC) { /* o = (n hw + p) c + ch, from NCHW */
        size_t np = o / c, n = np / hw, p = np - n * hw;
        *ch = o - np * c;
        return (n * c + *ch) * hw + p;
    }
    size_t nc = o / hw, p = o - nc * hw, n = nc / c; /* o = (n c + ch) hw + p, from NHWC */
    *ch = nc - n * c;
    return (n * hw + p) * c + *ch;
}

/* dst = src * scale[ch] + shift[ch] (a NULL scale is 1, a NULL shift 0) when
 * either is given, as the CPU reference computes it; with neither, only the
 * conversion (-0 stays -0). */
template <typename S, typename D, bool SRC_NHWC, bool DST_NHWC>
__global__ void act_convert_kernel(size_t total, int c, int hw, dat_channel_of channel,
                                   const S *src, const float *scale, const float *shift, D *dst)
{
    DAT_GRID_STRIDE(o, total)
    {
        size_t ch;
        size_t from = source_of<SRC_NHWC, DST_NHWC>(o, (size_t)c, (size_t)hw, channel, &ch);
        float v = dat_ld(src, from);
        if (scale || shift)
            v = __fadd_rn(__fmul_rn(v, scale ? scale[ch] : 1.0f), shift ? shift[ch] : 0.0f);
        dat_st(dst, o, v);
    }
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

/* The checks of a captured step: each thread ors its finding into the word once. */
__global__ void flag_range_kernel(size_t n, const float *x, float lo, float hi, uint32_t *flags,
                                  uint32_t bit)
{
    int bad = 0;
    DAT_GRID_STRIDE(i, n)
    bad |= !isfinite(x[i]) || x[i] < lo || x[i] > hi;
    if (bad)
        atomicOr(flags, bit);
}

__global__ void flag_labels_kernel(int n, const int32_t *y, int classes, uint32_t *flags,
                                   uint32_t bit)
{
    int bad = 0;
    DAT_GRID_STRIDE(i, (size_t)n)
    bad |= y[i] < 0 || y[i] >= classes;
    if (bad)
        atomicOr(flags, bit);
}

__global__ void copy_if_flagged_kernel(float *dst, const float *src, size_t n,
                                       const uint32_t *flag)
{
    if (*flag == 0)
        return;
    DAT_GRID_STRIDE(i, n)
    dst[i] = src[i];
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

dat_status dat_cuda_relu_fwd(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *x, void *y)
{
    return dat_fmt_dispatch(fmt, [&](auto t) -> dat_status {
        using T = decltype(t);
        return dat_map(ctx, n, dat_map_io<T, 1>{{(const T *)x}, (T *)y}, relu_fwd_op());
    });
}

dat_status dat_cuda_relu_bwd(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *y,
                             const void *dy, void *dx)
{
    return dat_fmt_dispatch(fmt, [&](auto t) -> dat_status {
        using T = decltype(t);
        return dat_map(ctx, n, dat_map_io<T, 2>{{(const T *)y, (const T *)dy}, (T *)dx},
                       relu_bwd_op());
    });
}

dat_status dat_cuda_add(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *a, const void *b,
                        void *y)
{
    return dat_fmt_dispatch(fmt, [&](auto t) -> dat_status {
        using T = decltype(t);
        return dat_map(ctx, n, dat_map_io<T, 2>{{(const T *)a, (const T *)b}, (T *)y}, add_op());
    });
}

dat_status dat_cuda_add_relu(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *a,
                             const void *b, void *y)
{
    return dat_fmt_dispatch(fmt, [&](auto t) -> dat_status {
        using T = decltype(t);
        return dat_map(ctx, n, dat_map_io<T, 2>{{(const T *)a, (const T *)b}, (T *)y},
                       add_relu_op());
    });
}

/* act_convert for one pair of value types: the layouts picked at run time. */
template <typename S, typename D>
static dat_status convert_as(dat_ctx *ctx, int n, int c, int hw, dat_act_fmt src_fmt,
                             const void *src, const float *scale, const float *shift,
                             dat_act_fmt dst_fmt, void *dst)
{
    size_t total = (size_t)n * (size_t)c * (size_t)hw;
    /* Within one layout only the channel is needed: that layout's functor. */
    dat_channel_of ch = dat_channel_of_fmt(total, c, hw, dst_fmt);
    bool sn = (src_fmt & DAT_FMT_NHWC) != 0, dn = (dst_fmt & DAT_FMT_NHWC) != 0;
    auto kernel = sn ? (dn ? act_convert_kernel<S, D, true, true>
                           : act_convert_kernel<S, D, true, false>)
                     : (dn ? act_convert_kernel<S, D, false, true>
                           : act_convert_kernel<S, D, false, false>);
    LAUNCH(ctx, total, kernel, total, c, hw, ch, (const S *)src, scale, shift, (D *)dst);
}

dat_status dat_cuda_act_convert(dat_ctx *ctx, int n, int c, int hw, dat_act_fmt src_fmt,
                                const void *src, const float *scale, const float *shift,
                                dat_act_fmt dst_fmt, void *dst)
{
    return dat_fmt_dispatch(src_fmt, [&](auto s) -> dat_status {
        using S = decltype(s);
        return dat_fmt_dispatch(dst_fmt, [&](auto d) -> dat_status {
            using D = decltype(d);
            return convert_as<S, D>(ctx, n, c, hw, src_fmt, src, scale, shift, dst_fmt, dst);
        });
    });
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
    if (dat_cuda_capturing(ctx)) /* recordings check with flag_range */
        return dat_capture_refuse(ctx, __func__, "reading the check back to the host");
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

dat_status dat_cuda_flag_range(dat_ctx *ctx, size_t n, const float *x, float lo, float hi,
                               uint32_t *flags, uint32_t bit)
{
    LAUNCH(ctx, n, flag_range_kernel, n, x, lo, hi, flags, bit);
}

dat_status dat_cuda_flag_labels(dat_ctx *ctx, int n, const int32_t *y, int classes,
                                uint32_t *flags, uint32_t bit)
{
    LAUNCH(ctx, (size_t)n, flag_labels_kernel, n, y, classes, flags, bit);
}

dat_status dat_cuda_copy_if_flagged(dat_ctx *ctx, float *dst, const float *src, size_t n,
                                    const uint32_t *flag)
{
    LAUNCH(ctx, n, copy_if_flagged_kernel, dst, src, n, flag);
}
