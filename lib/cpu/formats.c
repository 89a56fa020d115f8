/*
 * The CPU backend's entry points for activation formats (lib/core/backend.h,
 * dat_act_fmt). Float32 NCHW goes straight to the float32 ops; any other
 * format is converted to float32 NCHW, computed there, and the outputs are
 * converted back (rounded once where the format is bf16). That is the
 * reference the CUDA backend's native kernels are held to: bf16 inputs are
 * exact in float32, so the two differ by summation order only.
 */
#include <string.h>

#include "../core/bf16.h"
#include "../core/error.h"
#include "cpu.h"

/* ---- the conversion itself ---------------------------------------------- */

static inline float load(dat_act_fmt f, const void *p, size_t i)
{
    return (f & DAT_FMT_BF16) ? dat_bf16_bits_to_f32(((const uint16_t *)p)[i])
                              : ((const float *)p)[i];
}

static inline void store(dat_act_fmt f, void *p, size_t i, float v)
{
    if (f & DAT_FMT_BF16)
        ((uint16_t *)p)[i] = dat_f32_to_bf16_bits(v);
    else
        ((float *)p)[i] = v;
}

/* Offset of (sample s, channel ch, position k) in the layout of f. */
static inline size_t at(dat_act_fmt f, int c, int hw, int s, int ch, int k)
{
    return (f & DAT_FMT_NHWC) ? ((size_t)s * hw + (size_t)k) * (size_t)c + (size_t)ch
                              : ((size_t)s * c + (size_t)ch) * (size_t)hw + (size_t)k;
}

dat_status dat_cpu_act_convert(dat_ctx *ctx, int n, int c, int hw, dat_act_fmt src_fmt,
                               const void *src, const float *scale, const float *shift,
                               dat_act_fmt dst_fmt, void *dst)
{
    if (src_fmt == DAT_FMT_F32 && dst_fmt == DAT_FMT_F32 && scale)
        return dat_cpu_channel_affine(ctx, n, c, hw, src, scale, shift, dst);
    if (src_fmt == dst_fmt && !scale && !shift) {
        if (src != dst)
            memmove(dst, src, (size_t)n * (size_t)c * (size_t)hw * dat_fmt_size(src_fmt));
        return DAT_OK;
    }
    int nt = dat_cpu_threads(ctx, (size_t)n * (size_t)c * (size_t)hw);
    /* Same layout: in place is safe, each value is read before it is written. */
#pragma omp parallel for num_threads(nt) schedule(static) collapse(2)
    for (int s = 0; s < n; ++s)
        for (int ch = 0; ch < c; ++ch) {
            float a = scale ? scale[ch] : 1.0f, b = shift ? shift[ch] : 0.0f;
            for (int k = 0; k < hw; ++k) {
                float v = load(src_fmt, src, at(src_fmt, c, hw, s, ch, k));
                store(dst_fmt, dst, at(dst_fmt, c, hw, s, ch, k), scale || shift ? v * a + b : v);
            }
        }
    return DAT_OK;
}

/* ---- scratch for the float32 copies -------------------------------------- */

/* Carves float32 buffers out of the format workspace (separate from the
 * workspace the float32 ops use). */
typedef struct arena {
    float *base;
    size_t used;
} arena;

static dat_status arena_open(dat_ctx *ctx, size_t floats, arena *a)
{
    a->used = 0;
    return dat_cpu_fmt_workspace(ctx, floats, &a->base);
}

static float *take(arena *a, size_t floats)
{
    float *p = a->base + a->used;
    a->used += (floats + 15) & ~(size_t)15; /* keep 64-byte alignment */
    return p;
}

/* Room for buffers of these sizes, with their alignment padding. */
static size_t room(size_t a, size_t b, size_t c, size_t d)
{
    return a + b + c + d + 64;
}

/* A float32 NCHW copy of n x c x hw values of format f (NULL stays NULL; float32
 * NCHW values are read where they are: a backward op with dx_add comes this way). */
static const float *in_f32(dat_ctx *ctx, arena *a, int n, int c, int hw, dat_act_fmt f,
                           const void *p)
{
    if (!p || f == DAT_FMT_F32)
        return p;
    float *out = take(a, (size_t)n * (size_t)c * (size_t)hw);
    dat_cpu_act_convert(ctx, n, c, hw, f, p, NULL, NULL, DAT_FMT_F32, out);
    return out;
}

static dat_status out_fmt(dat_ctx *ctx, int n, int c, int hw, const float *f32, dat_act_fmt f,
                          void *p)
{
    return dat_cpu_act_convert(ctx, n, c, hw, DAT_FMT_F32, f32, NULL, NULL, f, p);
}

/* dst (format f, n x c x hw) = dst + v, v float32 NCHW, rounded once to the
 * format: what a backward op with dx_add leaves (lib/core/backend.h). A float32
 * NCHW dst is added to in place; any other goes through a copy from `a`. */
static dat_status add_into(dat_ctx *ctx, arena *a, int n, int c, int hw, const float *v,
                           dat_act_fmt f, void *dst)
{
    size_t len = (size_t)n * (size_t)c * (size_t)hw;
    float *t = (float *)in_f32(ctx, a, n, c, hw, f, dst);
    int nt = dat_cpu_threads(ctx, len);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < len; ++i)
        t[i] += v[i];
    return f == DAT_FMT_F32 ? DAT_OK : out_fmt(ctx, n, c, hw, t, f, dst);
}

/* dst = beta dst + new (beta 0 overwrites), new rounded to bf16 first where asked. */
static void accumulate(float *dst, const float *add, size_t count, float beta, int round_bf16)
{
    for (size_t i = 0; i < count; ++i) {
        float v = round_bf16 ? dat_bf16_bits_to_f32(dat_f32_to_bf16_bits(add[i])) : add[i];
        dst[i] = beta == 0.0f ? v : beta * dst[i] + v;
    }
}

/* ---- convolution ---------------------------------------------------------- */

static size_t x_len(const dat_conv_desc *d)
{
    return (size_t)d->n * (size_t)d->c_in * (size_t)d->h_in * (size_t)d->w_in;
}

static size_t y_len(const dat_conv_desc *d)
{
    return (size_t)d->n * (size_t)d->c_out * (size_t)d->h_out * (size_t)d->w_out;
}

static size_t w_len(const dat_conv_desc *d)
{
    return (size_t)d->c_out * (size_t)d->c_in * (size_t)d->k_h * (size_t)d->k_w;
}

/* Values of a batch norm's x (and y, dy, dx). */
static size_t bn_len(const dat_bn_desc *d)
{
    return (size_t)d->n * (size_t)d->c * (size_t)d->hw;
}

/* The weight as c_out x c_in x k_h x k_w float32. */
static const float *weight_f32(dat_ctx *ctx, arena *a, const dat_conv_desc *d, const void *w)
{
    return in_f32(ctx, a, d->c_out, d->c_in, d->k_h * d->k_w, d->fmt, w);
}

static const float *y_f32(dat_ctx *ctx, arena *a, const dat_conv_desc *d, const void *p)
{
    return in_f32(ctx, a, d->n, d->c_out, d->h_out * d->w_out, d->fmt, p);
}

/* A bf16 convolution with a bias, as cuDNN's bf16 kernels and the bias pass
 * after them compute it: the convolution rounded to bf16, then the bias (and a
 * fused ReLU) added in float32; the caller rounds once more. */
static void bias_after_rounding(const dat_conv_desc *d, const float *bias, float *y)
{
    size_t hw = (size_t)d->h_out * (size_t)d->w_out;
    for (int s = 0; s < d->n; ++s)
        for (int c = 0; c < d->c_out; ++c) {
            float *p = y + ((size_t)s * (size_t)d->c_out + (size_t)c) * hw;
            for (size_t k = 0; k < hw; ++k) {
                float v = dat_bf16_bits_to_f32(dat_f32_to_bf16_bits(p[k])) + bias[c];
                p[k] = d->relu_out && !(v > 0.0f) ? 0.0f : v;
            }
        }
}

dat_status dat_cpu_fmt_conv2d_fwd(dat_ctx *ctx, const dat_conv_desc *d, const void *x,
                                  const void *w, const float *bias, void *y)
{
    if (d->fmt == DAT_FMT_F32)
        return dat_cpu_conv2d_fwd(ctx, d, x, w, bias, y);
    arena a;
    DAT_TRY(arena_open(ctx, room(x_len(d), w_len(d), y_len(d), 0), &a));
    dat_conv_desc f = *d;
    f.fmt = DAT_FMT_F32;
    const float *xf = in_f32(ctx, &a, d->n, d->c_in, d->h_in * d->w_in, d->fmt, x);
    const float *wf = weight_f32(ctx, &a, d, w);
    float *yf = take(&a, y_len(d));
    int bf16_bias = bias && (d->fmt & DAT_FMT_BF16);
    if (bf16_bias) { /* the bias and ReLU come after the convolution's rounding */
        f.relu_out = 0;
        DAT_TRY(dat_cpu_conv2d_fwd(ctx, &f, xf, wf, NULL, yf));
        bias_after_rounding(d, bias, yf);
    } else {
        DAT_TRY(dat_cpu_conv2d_fwd(ctx, &f, xf, wf, bias, yf));
    }
    return out_fmt(ctx, d->n, d->c_out, d->h_out * d->w_out, yf, d->fmt, y);
}

dat_status dat_cpu_fmt_conv2d_bwd_data(dat_ctx *ctx, const dat_conv_desc *d, const void *dy,
                                       const void *w, void *dx)
{
    if (d->fmt == DAT_FMT_F32 && !d->dx_add)
        return dat_cpu_conv2d_bwd_data(ctx, d, dy, w, dx);
    arena a;
    /* Copies of the ReLU mask, dy and w (none in float32 NCHW), dx, add_into's copy of dx
     * (only with dx_add, none in float32 NCHW), and the fifth buffer's padding. */
    size_t copy = d->fmt == DAT_FMT_F32 ? 0 : 1, y = copy * y_len(d);
    size_t old = copy && d->dx_add ? x_len(d) : 0;
    DAT_TRY(arena_open(ctx, room(2 * y, copy * w_len(d), x_len(d), old) + 16, &a));
    dat_conv_desc f = *d;
    f.fmt = DAT_FMT_F32;
    f.dx_add = 0;
    f.relu_mask = y_f32(ctx, &a, d, d->relu_mask);
    const float *dyf = y_f32(ctx, &a, d, dy);
    const float *wf = weight_f32(ctx, &a, d, w);
    float *dxf = take(&a, x_len(d));
    DAT_TRY(dat_cpu_conv2d_bwd_data(ctx, &f, dyf, wf, dxf));
    int hw = d->h_in * d->w_in;
    if (d->dx_add)
        return add_into(ctx, &a, d->n, d->c_in, hw, dxf, d->fmt, dx);
    return out_fmt(ctx, d->n, d->c_in, hw, dxf, d->fmt, dx);
}

dat_status dat_cpu_fmt_conv2d_bwd_filter(dat_ctx *ctx, const dat_conv_desc *d, const void *x,
                                         const void *dy, float *dw, float *dbias, float beta)
{
    if (d->fmt == DAT_FMT_F32)
        return dat_cpu_conv2d_bwd_filter(ctx, d, x, dy, dw, dbias, beta);
    arena a;
    size_t wl = w_len(d) + (size_t)d->c_out;
    DAT_TRY(arena_open(ctx, room(x_len(d), y_len(d), y_len(d), wl), &a));
    dat_conv_desc f = *d;
    f.fmt = DAT_FMT_F32;
    f.relu_mask = y_f32(ctx, &a, d, d->relu_mask);
    const float *xf = in_f32(ctx, &a, d->n, d->c_in, d->h_in * d->w_in, d->fmt, x);
    const float *dyf = y_f32(ctx, &a, d, dy);
    float *dwf = take(&a, wl), *dbf = dwf + w_len(d);
    DAT_TRY(dat_cpu_conv2d_bwd_filter(ctx, &f, xf, dyf, dwf, dbias ? dbf : NULL, 0.0f));
    /* cuDNN computes a bf16 format's dw in bf16; the bias gradient stays float32. */
    accumulate(dw, dwf, w_len(d), beta, (d->fmt & DAT_FMT_BF16) != 0);
    if (dbias)
        accumulate(dbias, dbf, (size_t)d->c_out, beta, 0);
    return DAT_OK;
}

/* ---- batch norm ----------------------------------------------------------- */

static const float *bn_f32(dat_ctx *ctx, arena *a, const dat_bn_desc *d, const void *p)
{
    return in_f32(ctx, a, d->n, d->c, d->hw, d->fmt, p);
}

/* A batch-norm call in float32: its descriptor, copies of x, dy and the ReLU
 * mask (those given), and room for its output. */
typedef struct bn_call {
    dat_bn_desc d;
    const float *x, *dy;
    float *out;
    arena a; /* what is left: room for add_into's copy */
} bn_call;

static dat_status bn_enter(dat_ctx *ctx, const dat_bn_desc *d, const void *x, const void *dy,
                           bn_call *f)
{
    size_t len = bn_len(d);
    /* Copies of the ReLU mask, x and dy, the output, add_into's copy of dx (only with
     * dx_add; no copy in float32 NCHW), and the fifth buffer's padding. */
    size_t copy = d->fmt == DAT_FMT_F32 ? 0 : len, old = d->dx_add ? copy : 0;
    DAT_TRY(arena_open(ctx, room(copy, copy, copy, len) + old + 16, &f->a));
    f->d = *d;
    f->d.fmt = DAT_FMT_F32;
    f->d.dx_add = 0;
    f->d.relu_mask = bn_f32(ctx, &f->a, d, d->relu_mask);
    f->x = bn_f32(ctx, &f->a, d, x);
    f->dy = bn_f32(ctx, &f->a, d, dy);
    f->out = take(&f->a, len);
    return DAT_OK;
}

static dat_status bn_leave(dat_ctx *ctx, const dat_bn_desc *d, bn_call *f, void *out)
{
    if (d->dx_add)
        return add_into(ctx, &f->a, d->n, d->c, d->hw, f->out, d->fmt, out);
    return out_fmt(ctx, d->n, d->c, d->hw, f->out, d->fmt, out);
}

/* The reference of dat_bn_desc's residual: the batch norm without its ReLU
 * (without_residual), then the add op of its output and the residual, with
 * the ReLU where the desc has it (add_residual). */
static dat_bn_desc without_residual(const dat_bn_desc *d)
{
    dat_bn_desc bn = *d;
    bn.residual = NULL;
    bn.relu_out = 0;
    return bn;
}

static dat_status add_residual(dat_ctx *ctx, const dat_bn_desc *d, void *y)
{
    return (d->relu_out ? dat_cpu_fmt_add_relu : dat_cpu_fmt_add)(ctx, d->fmt, bn_len(d), y,
                                                                  d->residual, y);
}

dat_status dat_cpu_fmt_bn_fwd_train(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                    const float *gamma, const float *beta, float *running_mean,
                                    float *running_var, float *save_mean, float *save_invstd,
                                    void *y)
{
    if (d->residual) {
        dat_bn_desc bn = without_residual(d);
        DAT_TRY(dat_cpu_fmt_bn_fwd_train(ctx, &bn, x, gamma, beta, running_mean, running_var,
                                         save_mean, save_invstd, y));
        return add_residual(ctx, d, y);
    }
    if (d->fmt == DAT_FMT_F32)
        return dat_cpu_bn_fwd_train(ctx, d, x, gamma, beta, running_mean, running_var, save_mean,
                                    save_invstd, y);
    bn_call f;
    DAT_TRY(bn_enter(ctx, d, x, NULL, &f));
    DAT_TRY(dat_cpu_bn_fwd_train(ctx, &f.d, f.x, gamma, beta, running_mean, running_var,
                                 save_mean, save_invstd, f.out));
    return bn_leave(ctx, d, &f, y);
}

dat_status dat_cpu_fmt_bn_fwd_eval(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                   const float *gamma, const float *beta,
                                   const float *running_mean, const float *running_var, void *y)
{
    if (d->x2 && d->residual)
        return dat_error(DAT_ERR_INTERNAL, __func__, "a batch norm with both x2 and residual");
    if (d->x2) { /* the reference: the add op, then the batch norm of its sum */
        DAT_TRY(dat_cpu_fmt_add(ctx, d->fmt, bn_len(d), x, d->x2, d->x_sum));
        x = d->x_sum;
    }
    if (d->residual) {
        dat_bn_desc bn = without_residual(d);
        DAT_TRY(dat_cpu_fmt_bn_fwd_eval(ctx, &bn, x, gamma, beta, running_mean, running_var, y));
        return add_residual(ctx, d, y);
    }
    if (d->fmt == DAT_FMT_F32)
        return dat_cpu_bn_fwd_eval(ctx, d, x, gamma, beta, running_mean, running_var, y);
    bn_call f;
    DAT_TRY(bn_enter(ctx, d, x, NULL, &f));
    DAT_TRY(dat_cpu_bn_fwd_eval(ctx, &f.d, f.x, gamma, beta, running_mean, running_var, f.out));
    return bn_leave(ctx, d, &f, y);
}

dat_status dat_cpu_fmt_bn_bwd_train(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                    const void *dy, const float *gamma, const float *save_mean,
                                    const float *save_invstd, void *dx, float *dgamma,
                                    float *dbeta, float beta)
{
    if (d->fmt == DAT_FMT_F32 && !d->dx_add)
        return dat_cpu_bn_bwd_train(ctx, d, x, dy, gamma, save_mean, save_invstd, dx, dgamma,
                                    dbeta, beta);
    bn_call f;
    DAT_TRY(bn_enter(ctx, d, x, dy, &f));
    DAT_TRY(dat_cpu_bn_bwd_train(ctx, &f.d, f.x, f.dy, gamma, save_mean, save_invstd, f.out,
                                 dgamma, dbeta, beta));
    return bn_leave(ctx, d, &f, dx);
}

dat_status dat_cpu_fmt_bn_bwd_eval(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                   const void *dy, const float *gamma, const float *running_mean,
                                   const float *running_var, void *dx, float *dgamma,
                                   float *dbeta, float beta)
{
    if (d->fmt == DAT_FMT_F32 && !d->dx_add)
        return dat_cpu_bn_bwd_eval(ctx, d, x, dy, gamma, running_mean, running_var, dx, dgamma,
                                   dbeta, beta);
    bn_call f;
    DAT_TRY(bn_enter(ctx, d, x, dy, &f));
    DAT_TRY(dat_cpu_bn_bwd_eval(ctx, &f.d, f.x, f.dy, gamma, running_mean, running_var, f.out,
                                dgamma, dbeta, beta));
    return bn_leave(ctx, d, &f, dx);
}

/* ---- pooling --------------------------------------------------------------- */

/* The argmax indices between NCHW and NHWC order: a permutation of 4-byte
 * values, no arithmetic (act_convert of float32 without scale moves bits). */
static void permute_idx(dat_ctx *ctx, const dat_pool_desc *d, dat_act_fmt from,
                        const int32_t *src, dat_act_fmt to, int32_t *dst)
{
    dat_cpu_act_convert(ctx, d->n, d->c, d->h_out * d->w_out, from & DAT_FMT_NHWC, src, NULL,
                        NULL, to & DAT_FMT_NHWC, dst);
}

dat_status dat_cpu_fmt_pool_fwd(dat_ctx *ctx, const dat_pool_desc *d, const void *x, void *y,
                                int32_t *idx)
{
    if (d->fmt == DAT_FMT_F32)
        return dat_cpu_pool_fwd(ctx, d, x, y, idx);
    size_t xl = (size_t)d->n * (size_t)d->c * (size_t)d->h_in * (size_t)d->w_in;
    size_t yl = (size_t)d->n * (size_t)d->c * (size_t)d->h_out * (size_t)d->w_out;
    arena a;
    DAT_TRY(arena_open(ctx, room(xl, yl, yl, 0), &a));
    dat_pool_desc f = *d;
    f.fmt = DAT_FMT_F32;
    const float *xf = in_f32(ctx, &a, d->n, d->c, d->h_in * d->w_in, d->fmt, x);
    float *yf = take(&a, yl);
    int32_t *idxf = idx ? (int32_t *)take(&a, yl) : NULL;
    DAT_TRY(dat_cpu_pool_fwd(ctx, &f, xf, yf, idxf));
    if (idx)
        permute_idx(ctx, d, DAT_FMT_F32, idxf, d->fmt, idx);
    return out_fmt(ctx, d->n, d->c, d->h_out * d->w_out, yf, d->fmt, y);
}

dat_status dat_cpu_fmt_pool_bwd(dat_ctx *ctx, const dat_pool_desc *d, const void *dy,
                                const int32_t *idx, void *dx)
{
    if (d->fmt == DAT_FMT_F32)
        return dat_cpu_pool_bwd(ctx, d, dy, idx, dx);
    size_t xl = (size_t)d->n * (size_t)d->c * (size_t)d->h_in * (size_t)d->w_in;
    size_t yl = (size_t)d->n * (size_t)d->c * (size_t)d->h_out * (size_t)d->w_out;
    arena a;
    DAT_TRY(arena_open(ctx, room(yl, yl, xl, 0), &a));
    dat_pool_desc f = *d;
    f.fmt = DAT_FMT_F32;
    const float *dyf = in_f32(ctx, &a, d->n, d->c, d->h_out * d->w_out, d->fmt, dy);
    int32_t *idxf = NULL;
    if (idx) {
        idxf = (int32_t *)take(&a, yl);
        permute_idx(ctx, d, d->fmt, idx, DAT_FMT_F32, idxf);
    }
    float *dxf = take(&a, xl);
    DAT_TRY(dat_cpu_pool_bwd(ctx, &f, dyf, idxf, dxf));
    return out_fmt(ctx, d->n, d->c, d->h_in * d->w_in, dxf, d->fmt, dx);
}

/* ---- element-wise ------------------------------------------------------------ */

/* Element-wise ops need no float32 copy: each value is converted, computed and
 * rounded in one pass, with the float32 op's formula. */
dat_status dat_cpu_fmt_relu_fwd(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *x, void *y)
{
    if (!(fmt & DAT_FMT_BF16))
        return dat_cpu_relu_fwd(ctx, n, x, y);
    const uint16_t *xs = x;
    uint16_t *ys = y;
    int nt = dat_cpu_threads(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; ++i) {
        float v = dat_bf16_bits_to_f32(xs[i]);
        ys[i] = dat_f32_to_bf16_bits(v > 0.0f ? v : 0.0f);
    }
    return DAT_OK;
}

dat_status dat_cpu_fmt_relu_bwd(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *y,
                                const void *dy, void *dx)
{
    if (!(fmt & DAT_FMT_BF16))
        return dat_cpu_relu_bwd(ctx, n, y, dy, dx);
    const uint16_t *ys = y, *dys = dy;
    uint16_t *dxs = dx;
    int nt = dat_cpu_threads(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; ++i) {
        float m = dat_bf16_bits_to_f32(ys[i]);
        dxs[i] = m > 0.0f ? dys[i] : dat_f32_to_bf16_bits(0.0f);
    }
    return DAT_OK;
}

/* The reference of the fused op: the add, then the ReLU of its rounded sum. */
dat_status dat_cpu_fmt_add_relu(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *a,
                                const void *b, void *y)
{
    DAT_TRY(dat_cpu_fmt_add(ctx, fmt, n, a, b, y));
    return dat_cpu_fmt_relu_fwd(ctx, fmt, n, y, y);
}

dat_status dat_cpu_fmt_add(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *a, const void *b,
                           void *y)
{
    if (!(fmt & DAT_FMT_BF16))
        return dat_cpu_add(ctx, n, a, b, y);
    const uint16_t *as = a, *bs = b;
    uint16_t *ys = y;
    int nt = dat_cpu_threads(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; ++i)
        ys[i] = dat_f32_to_bf16_bits(dat_bf16_bits_to_f32(as[i]) + dat_bf16_bits_to_f32(bs[i]));
    return DAT_OK;
}
