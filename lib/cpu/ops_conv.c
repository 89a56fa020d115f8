/*
 * 2-D convolution of the CPU backend: im2col over a chunk of samples, then one
 * large GEMM per chunk, so OpenBLAS sees big matrices even for the small
 * spatial sizes of deep layers. Layout of a chunk of s samples:
 *   col [K][s * hw_out] with K = c_in * kh * kw,  Y' [c_out][s * hw_out],
 * and Y' is transposed into NCHW. The chunk is sized so the workspace stays
 * below DAT_CONV_WS_FLOATS.
 */
#include <string.h>

#include "../core/error.h"
#include "cpu.h"

#define DAT_CONV_WS_FLOATS ((size_t)12 << 20) /* 48 MiB */

typedef struct conv_geom {
    int K, hw_in, hw_out;
} conv_geom;

static conv_geom geom(const dat_conv_desc *d)
{
    conv_geom g = {d->c_in * d->k_h * d->k_w, d->h_in * d->w_in, d->h_out * d->w_out};
    return g;
}

/* Samples per chunk: col (K x s*hw) and Y' (c_out x s*hw) must fit the budget. */
static int chunk_samples(const dat_conv_desc *d, const conv_geom *g)
{
    size_t per = (size_t)(g->K + d->c_out) * (size_t)g->hw_out;
    size_t s = DAT_CONV_WS_FLOATS / (per ? per : 1);
    if (s < 1)
        s = 1;
    return s > (size_t)d->n ? d->n : (int)s;
}

/* Output columns ox whose input column ox * stride - pad + kx lies inside [0, w_in):
 * [*lo, *hi). Computing the range once removes the bounds checks from the copy loops. */
static void valid_range(int out, int in, int stride, int pad, int k, int *lo, int *hi)
{
    int a = pad - k; /* ox * stride >= a */
    *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
    int b = in + pad - k; /* ox * stride < b */
    *hi = b <= 0 ? 0 : (b + stride - 1) / stride;
    if (*hi > out)
        *hi = out;
    if (*lo > *hi)
        *lo = *hi;
}

/* col[k][j * hw_out + p] for samples x0 .. x0+s-1; k = (ci, ky, kx). */
static void im2col(dat_ctx *ctx, const dat_conv_desc *d, const conv_geom *g, const float *x,
                   int s, float *col)
{
    size_t row = (size_t)s * (size_t)g->hw_out;
    int nt = dat_cpu_threads(ctx, (size_t)g->K * row);
#pragma omp parallel for num_threads(nt) schedule(static) collapse(2)
    for (int k = 0; k < g->K; ++k)
        for (int j = 0; j < s; ++j) {
            int ci = k / (d->k_h * d->k_w), ky = (k / d->k_w) % d->k_h, kx = k % d->k_w;
            const float *xp = x + ((size_t)j * (size_t)d->c_in + (size_t)ci) * (size_t)g->hw_in;
            float *out = col + (size_t)k * row + (size_t)j * (size_t)g->hw_out;
            int lo, hi;
            valid_range(d->w_out, d->w_in, d->stride, d->pad, kx, &lo, &hi);
            for (int oy = 0; oy < d->h_out; ++oy) {
                int iy = oy * d->stride - d->pad + ky;
                float *o = out + (size_t)oy * (size_t)d->w_out;
                if (iy < 0 || iy >= d->h_in) {
                    memset(o, 0, (size_t)d->w_out * sizeof *o);
                    continue;
                }
                const float *xr = xp + (size_t)iy * (size_t)d->w_in - d->pad + kx;
                for (int ox = 0; ox < lo; ++ox)
                    o[ox] = 0.0f;
                if (d->stride == 1) {
                    memcpy(o + lo, xr + lo, (size_t)(hi - lo) * sizeof *o);
                } else {
                    for (int ox = lo; ox < hi; ++ox)
                        o[ox] = xr[ox * d->stride];
                }
                for (int ox = hi; ox < d->w_out; ++ox)
                    o[ox] = 0.0f;
            }
        }
}

/* dx (samples x0 ..) += col2im(dcol); dx must be zeroed by the caller. Parallel
 * over (sample, input channel): each thread owns whole planes of dx. */
static void col2im(dat_ctx *ctx, const dat_conv_desc *d, const conv_geom *g, const float *col,
                   int s, float *dx)
{
    size_t row = (size_t)s * (size_t)g->hw_out;
    int kk = d->k_h * d->k_w;
    int nt = dat_cpu_threads(ctx, (size_t)g->K * row);
#pragma omp parallel for num_threads(nt) schedule(static) collapse(2)
    for (int j = 0; j < s; ++j)
        for (int ci = 0; ci < d->c_in; ++ci) {
            float *xp = dx + ((size_t)j * (size_t)d->c_in + (size_t)ci) * (size_t)g->hw_in;
            for (int r = 0; r < kk; ++r) {
                int ky = r / d->k_w, kx = r % d->k_w, lo, hi;
                valid_range(d->w_out, d->w_in, d->stride, d->pad, kx, &lo, &hi);
                const float *in = col + (size_t)(ci * kk + r) * row + (size_t)j * (size_t)g->hw_out;
                for (int oy = 0; oy < d->h_out; ++oy) {
                    int iy = oy * d->stride - d->pad + ky;
                    if (iy < 0 || iy >= d->h_in)
                        continue;
                    float *xr = xp + (size_t)iy * (size_t)d->w_in - d->pad + kx;
                    const float *c = in + (size_t)oy * (size_t)d->w_out;
                    if (d->stride == 1) {
                        for (int ox = lo; ox < hi; ++ox)
                            xr[ox] += c[ox];
                    } else {
                        for (int ox = lo; ox < hi; ++ox)
                            xr[ox * d->stride] += c[ox];
                    }
                }
            }
        }
}

/* Between NCHW (s samples, c channels, hw) and [c][s * hw]; with a mask (a fused
 * ReLU's output, laid out as src), src where mask > 0 and 0 elsewhere. */
static void to_channel_major(dat_ctx *ctx, const float *src, const float *mask, int s, int c,
                             int hw, float *dst)
{
    int nt = dat_cpu_threads(ctx, (size_t)s * (size_t)c * (size_t)hw);
#pragma omp parallel for num_threads(nt) schedule(static) collapse(2)
    for (int ch = 0; ch < c; ++ch)
        for (int j = 0; j < s; ++j) {
            size_t from = ((size_t)j * (size_t)c + (size_t)ch) * (size_t)hw;
            float *out = dst + ((size_t)ch * (size_t)s + (size_t)j) * (size_t)hw;
            if (!mask) {
                memcpy(out, src + from, (size_t)hw * sizeof(float));
                continue;
            }
#pragma omp simd
            for (int p = 0; p < hw; ++p)
                out[p] = mask[from + (size_t)p] > 0.0f ? src[from + (size_t)p] : 0.0f;
        }
}

static void to_sample_major(dat_ctx *ctx, const float *src, int s, int c, int hw,
                            const float *bias, int relu, float *dst)
{
    int nt = dat_cpu_threads(ctx, (size_t)s * (size_t)c * (size_t)hw);
#pragma omp parallel for num_threads(nt) schedule(static) collapse(2)
    for (int j = 0; j < s; ++j)
        for (int ch = 0; ch < c; ++ch) {
            const float *in = src + ((size_t)ch * (size_t)s + (size_t)j) * (size_t)hw;
            float *out = dst + ((size_t)j * (size_t)c + (size_t)ch) * (size_t)hw;
            float b = bias ? bias[ch] : 0.0f;
            if (relu) {
#pragma omp simd
                for (int p = 0; p < hw; ++p)
                    out[p] = in[p] + b > 0.0f ? in[p] + b : 0.0f;
            } else {
#pragma omp simd
                for (int p = 0; p < hw; ++p)
                    out[p] = in[p] + b;
            }
        }
}

/* Geometry, chunking and workspace shared by the three ops: col holds K x
 * (chunk * hw_out) columns, buf c_out x (chunk * hw_out) channel-major values. */
typedef struct conv_plan {
    conv_geom g;
    int chunk;
    float *col, *buf;
} conv_plan;

static dat_status plan(dat_ctx *ctx, const dat_conv_desc *d, conv_plan *p)
{
    p->g = geom(d);
    p->chunk = chunk_samples(d, &p->g);
    size_t cols = (size_t)p->chunk * (size_t)p->g.hw_out;
    float *ws;
    DAT_TRY(dat_cpu_workspace(ctx, ((size_t)p->g.K + (size_t)d->c_out) * cols, &ws));
    p->col = ws;
    p->buf = ws + (size_t)p->g.K * cols;
    return DAT_OK;
}

/* dY' of samples n0 .. n0+s-1 into the plan's buffer, masked by a fused ReLU. */
static void transpose_dy(dat_ctx *ctx, const dat_conv_desc *d, const conv_plan *p,
                         const float *dy, int n0, int s)
{
    size_t at = (size_t)n0 * d->c_out * p->g.hw_out;
    to_channel_major(ctx, dy + at, d->relu_mask ? d->relu_mask + at : NULL, s, d->c_out,
                     p->g.hw_out, p->buf);
}

dat_status dat_cpu_conv2d_fwd(dat_ctx *ctx, const dat_conv_desc *d, const float *x,
                              const float *w, const float *bias, float *y)
{
    conv_plan p;
    DAT_TRY(plan(ctx, d, &p));
    const conv_geom g = p.g;
    const int chunk = p.chunk;
    float *col = p.col, *yt = p.buf;
    for (int n0 = 0; n0 < d->n; n0 += chunk) {
        int s = d->n - n0 < chunk ? d->n - n0 : chunk;
        int cols = s * g.hw_out;
        im2col(ctx, d, &g, x + (size_t)n0 * d->c_in * g.hw_in, s, col);
        dat_cpu_gemm(ctx, 0, 0, d->c_out, cols, g.K, 1.0f, w, g.K, col, cols, 0.0f, yt, cols);
        to_sample_major(ctx, yt, s, d->c_out, g.hw_out, bias, d->relu_out,
                        y + (size_t)n0 * d->c_out * g.hw_out);
    }
    return DAT_OK;
}

dat_status dat_cpu_conv2d_bwd_data(dat_ctx *ctx, const dat_conv_desc *d, const float *dy,
                                   const float *w, float *dx)
{
    conv_plan p;
    DAT_TRY(plan(ctx, d, &p));
    const conv_geom g = p.g;
    const int chunk = p.chunk;
    float *col = p.col, *dyt = p.buf;
    memset(dx, 0, (size_t)d->n * d->c_in * g.hw_in * sizeof *dx);
    for (int n0 = 0; n0 < d->n; n0 += chunk) {
        int s = d->n - n0 < chunk ? d->n - n0 : chunk;
        int cols = s * g.hw_out;
        transpose_dy(ctx, d, &p, dy, n0, s);
        /* dcol [K][cols] = W^T [K][c_out] x dY' [c_out][cols] */
        dat_cpu_gemm(ctx, 1, 0, g.K, cols, d->c_out, 1.0f, w, g.K, dyt, cols, 0.0f, col, cols);
        col2im(ctx, d, &g, col, s, dx + (size_t)n0 * d->c_in * g.hw_in);
    }
    return DAT_OK;
}

dat_status dat_cpu_conv2d_bwd_filter(dat_ctx *ctx, const dat_conv_desc *d, const float *x,
                                     const float *dy, float *dw, float *dbias, float beta)
{
    conv_plan p;
    DAT_TRY(plan(ctx, d, &p));
    const conv_geom g = p.g;
    const int chunk = p.chunk;
    float *col = p.col, *dyt = p.buf;
    if (dbias)
        for (int c = 0; c < d->c_out; ++c)
            dbias[c] = beta == 0.0f ? 0.0f : beta * dbias[c]; /* beta 0 overwrites */
    for (int n0 = 0; n0 < d->n; n0 += chunk) {
        int s = d->n - n0 < chunk ? d->n - n0 : chunk;
        int cols = s * g.hw_out;
        im2col(ctx, d, &g, x + (size_t)n0 * d->c_in * g.hw_in, s, col);
        transpose_dy(ctx, d, &p, dy, n0, s);
        /* dW [c_out][K] (+)= dY' [c_out][cols] x col^T [cols][K] */
        dat_cpu_gemm(ctx, 0, 1, d->c_out, g.K, cols, 1.0f, dyt, cols, col, cols,
                     n0 == 0 ? beta : 1.0f, dw, g.K);
        if (dbias)
            for (int c = 0; c < d->c_out; ++c) {
                double sum = 0;
                const float *r = dyt + (size_t)c * (size_t)cols;
                for (int p = 0; p < cols; ++p)
                    sum += r[p];
                dbias[c] += (float)sum;
            }
    }
    return DAT_OK;
}
