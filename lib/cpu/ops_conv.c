/*
 * 2-D convolution of the CPU backend, as im2col + GEMM in one of two ways.
 *
 * Per group (when there are at least as many groups as threads): each thread takes
 * groups of consecutive samples. A group's columns col [K][s * hw_out]
 * (K = c_in * kh * kw; sample j's block from column j * hw_out) stay in the
 * thread's cache and one single-threaded GEMM per group covers them. Groups are
 * sized for GEMMs of about DAT_CONV_GROUP_COLS columns: one sample of a 4x4 or 8x8
 * plane gives 16 or 64, which OpenBLAS runs at half its speed while it streams the
 * whole weight once per sample. A group of one sample (the large planes) reads and
 * writes its NCHW plane directly, with bias, ReLU and the ReLU mask applied in
 * cache; larger groups go through a channel-major buffer. A 1x1 convolution
 * without stride or padding of one sample uses the input as its columns.
 *
 * Chunked (fewer groups than threads, or per-thread buffers over the budget):
 * im2col over a chunk of s samples, then one large multi-threaded GEMM per chunk:
 *   col [K][s * hw_out],  Y' [c_out][s * hw_out],
 * and Y' is transposed into NCHW. The chunk is sized so the workspace stays
 * below DAT_CONV_WS_FLOATS.
 */
#include <omp.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "../core/error.h"
#include "cpu.h"

#define DAT_CONV_WS_FLOATS ((size_t)12 << 20) /* 48 MiB */
#define DAT_CONV_GROUP_COLS 256               /* columns a group's GEMM aims at */

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

/* Row k = (ci, ky, kx) of one sample's columns: out[p] for the hw_out outputs. */
static void im2col_row(const dat_conv_desc *d, const conv_geom *g, const float *xs, int k,
                       float *out)
{
    int ci = k / (d->k_h * d->k_w), ky = (k / d->k_w) % d->k_h, kx = k % d->k_w;
    const float *xp = xs + (size_t)ci * (size_t)g->hw_in;
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

/* col[k][j * hw_out + p] for samples x0 .. x0+s-1; k = (ci, ky, kx). */
static void im2col(dat_ctx *ctx, const dat_conv_desc *d, const conv_geom *g, const float *x,
                   int s, float *col)
{
    size_t row = (size_t)s * (size_t)g->hw_out;
    int nt = dat_cpu_threads(ctx, (size_t)g->K * row);
#pragma omp parallel for num_threads(nt) schedule(static) collapse(2)
    for (int k = 0; k < g->K; ++k)
        for (int j = 0; j < s; ++j)
            im2col_row(d, g, x + (size_t)j * (size_t)d->c_in * (size_t)g->hw_in, k,
                       col + (size_t)k * row + (size_t)j * (size_t)g->hw_out);
}

/* Plane xp (one sample, one input channel) += the kh * kw rows of columns for that
 * channel, `row` floats apart. */
static void col2im_plane(const dat_conv_desc *d, const float *in, size_t row, float *xp)
{
    for (int r = 0; r < d->k_h * d->k_w; ++r, in += row) {
        int ky = r / d->k_w, kx = r % d->k_w, lo, hi;
        valid_range(d->w_out, d->w_in, d->stride, d->pad, kx, &lo, &hi);
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

/* dx (samples x0 ..) += col2im(dcol); dx must be zeroed by the caller. Parallel
 * over (sample, input channel): each thread owns whole planes of dx. */
static void col2im(dat_ctx *ctx, const dat_conv_desc *d, const conv_geom *g, const float *col,
                   int s, float *dx)
{
    size_t row = (size_t)s * (size_t)g->hw_out;
    size_t kk = (size_t)d->k_h * (size_t)d->k_w;
    int nt = dat_cpu_threads(ctx, (size_t)g->K * row);
#pragma omp parallel for num_threads(nt) schedule(static) collapse(2)
    for (int j = 0; j < s; ++j)
        for (int ci = 0; ci < d->c_in; ++ci)
            col2im_plane(d, col + (size_t)ci * kk * row + (size_t)j * (size_t)g->hw_out, row,
                         dx + ((size_t)j * (size_t)d->c_in + (size_t)ci) * (size_t)g->hw_in);
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
            if (mask)
                dat_cpu_relu_mask(src + from, mask + from, (size_t)hw, out);
            else
                memcpy(out, src + from, (size_t)hw * sizeof(float));
        }
}

/* out = in + b, or max(in + b, 0) with relu; out may be in. */
static void bias_relu(const float *in, int n, float b, int relu, float *out)
{
    if (relu) {
#pragma omp simd
        for (int p = 0; p < n; ++p)
            out[p] = in[p] + b > 0.0f ? in[p] + b : 0.0f;
    } else {
#pragma omp simd
        for (int p = 0; p < n; ++p)
            out[p] = in[p] + b;
    }
}

static void to_sample_major(dat_ctx *ctx, const float *src, int s, int c, int hw,
                            const float *bias, int relu, float *dst)
{
    int nt = dat_cpu_threads(ctx, (size_t)s * (size_t)c * (size_t)hw);
#pragma omp parallel for num_threads(nt) schedule(static) collapse(2)
    for (int j = 0; j < s; ++j)
        for (int ch = 0; ch < c; ++ch)
            bias_relu(src + ((size_t)ch * (size_t)s + (size_t)j) * (size_t)hw, hw,
                      bias ? bias[ch] : 0.0f, relu,
                      dst + ((size_t)j * (size_t)c + (size_t)ch) * (size_t)hw);
}

/* ---- Per-group path ---- */

static int pointwise(const dat_conv_desc *d)
{
    return d->k_h == 1 && d->k_w == 1 && d->stride == 1 && d->pad == 0;
}

/* The per-group path reads its input zero-padded and in "phase" order: each
 * padded row (pw = w_in + 2 pad columns) becomes its stride s phases one after
 * another (columns r, r + s, r + 2s, ... for r = 0 .. s-1). Every row of columns
 * is then a contiguous copy of w_out floats without bounds checks: output column
 * ox of kernel column kx reads padded column ox s + kx, element ox + kx / s of
 * phase kx % s. col2im adds into the same layout and merges it back. */
typedef struct padded {
    int pw, ph;   /* padded width and height */
    size_t plane; /* floats per channel: pw * ph */
} padded;

static padded padded_of(const dat_conv_desc *d)
{
    padded q = {d->w_in + 2 * d->pad, d->h_in + 2 * d->pad, 0};
    q.plane = (size_t)q.pw * (size_t)q.ph;
    return q;
}

/* Where phase r starts in a row of width w. */
static int phase_start(int w, int s, int r)
{
    int at = 0;
    for (int q = 0; q < r; ++q)
        at += (w - q + s - 1) / s;
    return at;
}

/* A row of width w into its s phases. */
static void split_row(const float *in, int w, int s, float *out)
{
    int i = 0;
#if defined(__SSE2__)
    if (s == 2) { /* evens and odds of 8 columns by two shuffles */
        float *odd = out + (w + 1) / 2;
        for (; i + 8 <= w; i += 8) {
            __m128 a = _mm_loadu_ps(in + i), b = _mm_loadu_ps(in + i + 4);
            _mm_storeu_ps(out + i / 2, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
            _mm_storeu_ps(odd + i / 2, _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
        }
    }
#endif
    for (int r = 0; r < s; ++r) {
        float *o = out + phase_start(w, s, r);
        int q = (i + s - 1 - r) / s; /* the first column r + q s at or after i */
        for (int c = r + q * s; c < w; c += s, ++q)
            o[q] = in[c];
    }
}

/* The inverse of split_row. */
static void merge_row(const float *in, int w, int s, float *out)
{
    int i = 0;
#if defined(__SSE2__)
    if (s == 2) {
        const float *odd = in + (w + 1) / 2;
        for (; i + 8 <= w; i += 8) {
            __m128 e = _mm_loadu_ps(in + i / 2), o = _mm_loadu_ps(odd + i / 2);
            _mm_storeu_ps(out + i, _mm_unpacklo_ps(e, o));
            _mm_storeu_ps(out + i + 4, _mm_unpackhi_ps(e, o));
        }
    }
#endif
    for (int r = 0; r < s; ++r) {
        const float *p = in + phase_start(w, s, r);
        int q = (i + s - 1 - r) / s;
        for (int c = r + q * s; c < w; c += s, ++q)
            out[c] = p[q];
    }
}

/* The sample's input xs into padded phase order; `row` holds pw floats. */
static void pad_split(const dat_conv_desc *d, const padded *q, const float *xs, float *pp,
                      float *row)
{
    size_t pad_rows = (size_t)d->pad * (size_t)q->pw, pw = (size_t)q->pw;
    for (int ci = 0; ci < d->c_in; ++ci) {
        float *plane = pp + (size_t)ci * q->plane;
        const float *in = xs + (size_t)ci * (size_t)d->h_in * (size_t)d->w_in;
        memset(plane, 0, pad_rows * sizeof *plane);
        memset(plane + (size_t)(d->pad + d->h_in) * pw, 0, pad_rows * sizeof *plane);
        float *body = plane + pad_rows;
        if (d->stride == 1) { /* the rows in place, then their padding columns */
            dat_cpu_copy_rows(body + d->pad, pw, in, (size_t)d->w_in, d->h_in, d->w_in);
            for (int iy = 0; iy < d->h_in; ++iy)
                for (int c = 0; c < d->pad; ++c)
                    body[(size_t)iy * pw + (size_t)c] =
                        body[(size_t)iy * pw + (size_t)(d->pad + d->w_in + c)] = 0.0f;
            continue;
        }
        for (int c = 0; c < d->pad; ++c)
            row[c] = row[d->pad + d->w_in + c] = 0.0f;
        for (int iy = 0; iy < d->h_in; ++iy) {
            memcpy(row + d->pad, in + (size_t)iy * (size_t)d->w_in, (size_t)d->w_in * sizeof *row);
            split_row(row, q->pw, d->stride, body + (size_t)iy * pw);
        }
    }
}

/* dx of the sample from the padded phase-ordered sums pp (padding dropped). */
static void merge_unpad(const dat_conv_desc *d, const padded *q, const float *pp, float *dxs,
                        float *row)
{
    for (int ci = 0; ci < d->c_in; ++ci)
        for (int iy = 0; iy < d->h_in; ++iy) {
            const float *in = pp + (size_t)ci * q->plane + (size_t)(iy + d->pad) * (size_t)q->pw;
            float *out = dxs + ((size_t)ci * (size_t)d->h_in + (size_t)iy) * (size_t)d->w_in;
            if (d->stride == 1) {
                memcpy(out, in + d->pad, (size_t)d->w_in * sizeof *out);
                continue;
            }
            merge_row(in, q->pw, d->stride, row);
            memcpy(out, row + d->pad, (size_t)d->w_in * sizeof *out);
        }
}

/* Offset of kernel position (ky, kx) in a padded phase-ordered plane. */
static size_t tap_offset(const dat_conv_desc *d, const padded *q, int ky, int kx)
{
    int s = d->stride;
    return (size_t)ky * (size_t)q->pw + (size_t)(phase_start(q->pw, s, kx % s) + kx / s);
}

/* Row k = (ci, ky, kx) of the columns at col + k ld (hw_out floats), from the padded
 * phase-ordered input. */
static void im2col_padded(const dat_conv_desc *d, const padded *q, const float *pp, float *col,
                          size_t ld)
{
    size_t kk = (size_t)d->k_h * (size_t)d->k_w;
    size_t step = (size_t)d->stride * (size_t)q->pw; /* one output row down */
    for (int ky = 0; ky < d->k_h; ++ky)
        for (int kx = 0; kx < d->k_w; ++kx) {
            size_t tap = tap_offset(d, q, ky, kx), k0 = (size_t)ky * (size_t)d->k_w + (size_t)kx;
            for (int ci = 0; ci < d->c_in; ++ci) {
                const float *src = pp + (size_t)ci * q->plane + tap;
                dat_cpu_copy_rows(col + ((size_t)ci * kk + k0) * ld, (size_t)d->w_out, src, step,
                                  d->h_out, d->w_out);
            }
        }
}

/* The padded phase-ordered pp += col2im(dcol), dcol's rows ld apart; pp zeroed by
 * the caller. */
static void col2im_padded(const dat_conv_desc *d, const padded *q, const float *col, size_t ld,
                          float *pp)
{
    size_t kk = (size_t)d->k_h * (size_t)d->k_w;
    size_t step = (size_t)d->stride * (size_t)q->pw;
    for (int ci = 0; ci < d->c_in; ++ci)
        for (int ky = 0; ky < d->k_h; ++ky)
            for (int kx = 0; kx < d->k_w; ++kx) {
                float *dst = pp + (size_t)ci * q->plane + tap_offset(d, q, ky, kx);
                const float *c = col + ((size_t)ci * kk + (size_t)ky * (size_t)d->k_w +
                                        (size_t)kx) * ld;
                dat_cpu_add_rows(dst, step, c, (size_t)d->w_out, d->h_out, d->w_out);
            }
}

/* dx of one sample from dcol (the layout of im2col_padded, rows ld apart); pp
 * is the sample's padded scratch (c_in planes and one padded row). */
static void sample_col2im(const dat_conv_desc *d, const float *dcol, size_t ld, float *pp,
                          float *dxs)
{
    padded q = padded_of(d);
    memset(pp, 0, (size_t)d->c_in * q.plane * sizeof *pp);
    col2im_padded(d, &q, dcol, ld, pp);
    merge_unpad(d, &q, pp, dxs, pp + (size_t)d->c_in * q.plane);
}

/* Floats rounded up to whole 64-byte lines: every buffer of a thread's slice starts
 * on a cache line of its own (and suits doubles). */
static size_t lines(size_t floats)
{
    return (floats + 15) & ~(size_t)15;
}

/* Threads and group size of the per-group path, and each thread's slice of the
 * workspace, or 0 threads when the chunked path should run. A slice holds the
 * group's columns, one sample's padded input, the group's channel-major output
 * or dy (`chan`), and `extra` floats for the caller. */
typedef struct group_plan {
    conv_geom g;
    int nt, group, groups; /* threads, samples per group, groups in the batch */
    size_t cols, pad, chan, per_thread; /* floats, whole lines */
    float *ws;
} group_plan;

typedef struct slice {
    float *col, *pp, *chan, *extra;
} slice;

static slice slice_of(const group_plan *p, int t)
{
    slice s;
    s.col = p->ws + (size_t)t * p->per_thread;
    s.pp = s.col + p->cols;
    s.chan = s.pp + p->pad;
    s.extra = s.chan + p->chan;
    return s;
}

/* Groups of about `want` samples, as many groups for every thread, sizes within one. */
static void split_batch(int n, int nt, int want, group_plan *p)
{
    int per_round = nt * want, rounds = (n + per_round - 1) / per_round;
    p->group = (n + rounds * nt - 1) / (rounds * nt);
    p->groups = (n + p->group - 1) / p->group;
}

/* chan_single: a group of one sample needs `chan` too (to mask dy). */
static void slice_sizes(const dat_conv_desc *d, int chan_single, size_t extra, group_plan *p)
{
    size_t cols = (size_t)p->group * (size_t)p->g.hw_out;
    padded q = padded_of(d);
    p->cols = pointwise(d) ? (p->group > 1 ? lines((size_t)d->c_in * cols) : 0)
                           : lines((size_t)p->g.K * cols);
    p->pad = pointwise(d) ? 0 : lines((size_t)d->c_in * q.plane + (size_t)q.pw);
    p->chan = p->group > 1 || chan_single ? lines((size_t)d->c_out * cols) : 0;
    p->per_thread = p->cols + p->pad + p->chan + lines(extra);
}

static dat_status group_plan_make(dat_ctx *ctx, const dat_conv_desc *d, int chan_single,
                                  size_t extra, group_plan *p)
{
    p->g = geom(d);
    p->nt = dat_cpu_threads(ctx, (size_t)d->n * (size_t)p->g.K * (size_t)p->g.hw_out);
    int want = (DAT_CONV_GROUP_COLS + p->g.hw_out - 1) / p->g.hw_out;
    for (;;) {
        split_batch(d->n, p->nt, want, p);
        slice_sizes(d, chan_single, extra, p);
        if ((size_t)p->nt * p->per_thread <= DAT_CONV_WS_FLOATS || p->group == 1)
            break;
        want = p->group / 2;
    }
    if (p->groups < p->nt || (size_t)p->nt * p->per_thread > DAT_CONV_WS_FLOATS) {
        p->nt = 0;
        return DAT_OK;
    }
    return dat_cpu_workspace(ctx, (size_t)p->nt * p->per_thread, &p->ws);
}

/* Samples in group q (the last group may be shorter). */
static int group_size(const group_plan *p, const dat_conv_desc *d, int q)
{
    int left = d->n - q * p->group;
    return left < p->group ? left : p->group;
}

/* The columns [K][s hw_out] of the s samples from x on, sample j's at column
 * j hw_out; a pointwise convolution of one sample reads its input instead. */
static const float *group_cols(const dat_conv_desc *d, const conv_geom *g, const slice *t,
                               const float *x, int s)
{
    size_t in = (size_t)d->c_in * (size_t)g->hw_in, hw = (size_t)g->hw_out, ld = (size_t)s * hw;
    if (pointwise(d)) {
        if (s == 1)
            return x;
        for (int j = 0; j < s; ++j)
            dat_cpu_copy_rows(t->col + (size_t)j * hw, ld, x + (size_t)j * in, hw, d->c_in,
                              g->hw_out);
        return t->col;
    }
    padded q = padded_of(d);
    for (int j = 0; j < s; ++j) {
        pad_split(d, &q, x + (size_t)j * in, t->pp, t->pp + (size_t)d->c_in * q.plane);
        im2col_padded(d, &q, t->pp, t->col + (size_t)j * hw, ld);
    }
    return t->col;
}

/* dy of the s samples from sample j0 on, channel-major [c_out][s hw_out] and
 * masked by a fused ReLU's output; one sample without a mask: dy itself. */
static const float *group_dy(const dat_conv_desc *d, const conv_geom *g, const slice *t,
                             const float *dy, int j0, int s)
{
    size_t hw = (size_t)g->hw_out, out = (size_t)d->c_out * hw, ld = (size_t)s * hw;
    size_t at = (size_t)j0 * out;
    const float *mask = dat_cpu_mask_at(d->relu_mask, at);
    if (s == 1 && !mask)
        return dy + at;
    for (int j = 0; j < s; ++j)
        for (int c = 0; c < d->c_out; ++c) {
            size_t from = (size_t)j * out + (size_t)c * hw;
            float *to = t->chan + (size_t)c * ld + (size_t)j * hw;
            if (mask)
                dat_cpu_relu_mask(dy + at + from, mask + from, hw, to);
            else
                memcpy(to, dy + at + from, hw * sizeof *to);
        }
    return t->chan;
}

static void fwd_groups(dat_ctx *ctx, const dat_conv_desc *d, const group_plan *p,
                       const float *x, const float *w, const float *bias, float *y)
{
    const conv_geom g = p->g;
    size_t in = (size_t)d->c_in * g.hw_in, out = (size_t)d->c_out * g.hw_out;
#pragma omp parallel num_threads(p->nt)
    {
        slice t = slice_of(p, omp_get_thread_num());
#pragma omp for schedule(static)
        for (int q = 0; q < p->groups; ++q) {
            int j0 = q * p->group, s = group_size(p, d, q), ld = s * g.hw_out;
            const float *cols = group_cols(d, &g, &t, x + (size_t)j0 * in, s);
            float *ys = y + (size_t)j0 * out, *yt = s == 1 ? ys : t.chan;
            dat_cpu_gemm(ctx, 0, 0, d->c_out, ld, g.K, 1.0f, w, g.K, cols, ld, 0.0f, yt, ld);
            if (s == 1 && !bias && !d->relu_out)
                continue;
            for (int j = 0; j < s; ++j) /* into NCHW, in place for one sample */
                for (int ch = 0; ch < d->c_out; ++ch)
                    bias_relu(yt + (size_t)ch * (size_t)ld + (size_t)j * g.hw_out, g.hw_out,
                              bias ? bias[ch] : 0.0f, d->relu_out,
                              ys + (size_t)j * out + (size_t)ch * g.hw_out);
        }
    }
}

static void bwd_data_groups(dat_ctx *ctx, const dat_conv_desc *d, const group_plan *p,
                            const float *dy, const float *w, float *dx)
{
    const conv_geom g = p->g;
    size_t in = (size_t)d->c_in * g.hw_in;
#pragma omp parallel num_threads(p->nt)
    {
        slice t = slice_of(p, omp_get_thread_num());
#pragma omp for schedule(static)
        for (int q = 0; q < p->groups; ++q) {
            int j0 = q * p->group, s = group_size(p, d, q), ld = s * g.hw_out;
            const float *dys = group_dy(d, &g, &t, dy, j0, s);
            float *dxs = dx + (size_t)j0 * in;
            /* dcol [K][ld] = W^T [K][c_out] x dy [c_out][ld]; one pointwise sample: dx */
            float *dcol = pointwise(d) && s == 1 ? dxs : t.col;
            dat_cpu_gemm(ctx, 1, 0, g.K, ld, d->c_out, 1.0f, w, g.K, dys, ld, 0.0f, dcol, ld);
            for (int j = 0; j < s && dcol != dxs; ++j) {
                const float *dj = dcol + (size_t)j * g.hw_out;
                if (pointwise(d))
                    dat_cpu_copy_rows(dxs + (size_t)j * in, g.hw_in, dj, (size_t)ld, d->c_in,
                                      g.hw_in);
                else
                    sample_col2im(d, dj, (size_t)ld, t.pp, dxs + (size_t)j * in);
            }
        }
    }
}

/* Each thread sums its groups' dW into its own partial (and dbias in double);
 * the partials are then added in thread order, so a thread count gives one result.
 * `extra` of a thread's slice: the dW partial, then the dbias sums. */
static size_t filter_wlen(const dat_conv_desc *d)
{
    return (size_t)d->c_out * d->c_in * d->k_h * d->k_w;
}

static double *filter_bsum(const dat_conv_desc *d, const slice *t)
{
    return (double *)(t->extra + lines(filter_wlen(d)));
}

static void bwd_filter_groups(dat_ctx *ctx, const dat_conv_desc *d, const group_plan *p,
                              const float *x, const float *dy, float *dw, float *dbias,
                              float beta)
{
    const conv_geom g = p->g;
    size_t in = (size_t)d->c_in * g.hw_in, wlen = filter_wlen(d);
#pragma omp parallel num_threads(p->nt)
    {
        /* The team may be smaller than planned (one thread when called inside
         * someone else's parallel region): only its slices hold partials. Every
         * member gets a group, since groups >= nt (group_plan_make). */
        const int team = omp_get_num_threads();
        slice t = slice_of(p, omp_get_thread_num());
        double *bsum = filter_bsum(d, &t);
        int first = 1;
        for (int c = 0; c < d->c_out; ++c)
            bsum[c] = 0.0;
#pragma omp for schedule(static)
        for (int q = 0; q < p->groups; ++q) {
            int j0 = q * p->group, s = group_size(p, d, q), ld = s * g.hw_out;
            const float *dys = group_dy(d, &g, &t, dy, j0, s);
            const float *cols = group_cols(d, &g, &t, x + (size_t)j0 * in, s);
            /* part [c_out][K] (+)= dy [c_out][ld] x cols^T [ld][K] */
            dat_cpu_gemm(ctx, 0, 1, d->c_out, g.K, ld, 1.0f, dys, ld, cols, ld,
                         first ? 0.0f : 1.0f, t.extra, g.K);
            first = 0;
            for (int c = 0; c < d->c_out; ++c) {
                const float *r = dys + (size_t)c * (size_t)ld;
                double sum = 0;
#pragma omp simd reduction(+ : sum)
                for (int e = 0; e < ld; ++e)
                    sum += r[e];
                bsum[c] += sum;
            }
        }
        /* the implicit barrier of the loop above: every partial is complete */
#pragma omp for schedule(static)
        for (size_t i = 0; i < wlen; ++i) {
            float v = beta == 0.0f ? 0.0f : beta * dw[i]; /* beta 0 overwrites */
            for (int u = 0; u < team; ++u)
                v += slice_of(p, u).extra[i];
            dw[i] = v;
        }
#pragma omp single
        if (dbias)
            for (int c = 0; c < d->c_out; ++c) {
                double sum = 0;
                for (int u = 0; u < team; ++u) {
                    slice tu = slice_of(p, u);
                    sum += filter_bsum(d, &tu)[c];
                }
                dbias[c] = (beta == 0.0f ? 0.0f : beta * dbias[c]) + (float)sum;
            }
    }
}

/* ---- Chunked path ---- */

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
    to_channel_major(ctx, dy + at, dat_cpu_mask_at(d->relu_mask, at), s, d->c_out, p->g.hw_out,
                     p->buf);
}

dat_status dat_cpu_conv2d_fwd(dat_ctx *ctx, const dat_conv_desc *d, const float *x,
                              const float *w, const float *bias, float *y)
{
    group_plan gp;
    DAT_TRY(group_plan_make(ctx, d, 0, 0, &gp));
    if (gp.nt) {
        fwd_groups(ctx, d, &gp, x, w, bias, y);
        return DAT_OK;
    }
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
    group_plan gp;
    DAT_TRY(group_plan_make(ctx, d, d->relu_mask != NULL, 0, &gp));
    if (gp.nt) {
        bwd_data_groups(ctx, d, &gp, dy, w, dx);
        return DAT_OK;
    }
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
    group_plan gp;
    DAT_TRY(group_plan_make(ctx, d, d->relu_mask != NULL,
                            lines(filter_wlen(d)) + lines(2 * (size_t)d->c_out), &gp));
    if (gp.nt) {
        bwd_filter_groups(ctx, d, &gp, x, dy, dw, dbias, beta);
        return DAT_OK;
    }
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
