/*
 * Every layer op of the CPU backend against a naive double-precision reference
 * written here: forwards compared directly, backwards against central finite
 * differences of the reference (tests/unit/gradcheck.h). For an op y = f(x),
 * the scalar L = sum_i r_i y_i with fixed random r has dL/dy = r, so the op's
 * backward with dy = r must equal the numerical gradient of L. Error measure:
 * norm-wise relative error, tolerance TOL unless stated.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check_util.h"
#include "core/backend.h"
#include "core/ctx.h"
#include "cpu/cpu.h"
#include "gradcheck.h"

#define TOL 1e-4
static dat_ctx *ctx;

static void setup(void)
{
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.num_threads = 2;
    ck_assert_dat_ok(dat_ctx_create(&ctx, &o));
}

static void teardown(void)
{
    dat_ctx_destroy(ctx);
}

/* Arrays used by a check: double inputs rounded to float, their float copy. */
typedef struct arr {
    size_t n;
    double *d;
    float *f;
} arr;

static arr make(size_t n, uint64_t seed, double scale, double shift)
{
    arr a = {n, malloc(n * sizeof(double)), malloc(n * sizeof(float))};
    dat_gc_fill(a.d, n, seed);
    for (size_t i = 0; i < n; ++i)
        a.d[i] = a.d[i] * scale + shift;
    dat_gc_round_to_float(a.d, n);
    dat_gc_to_float(a.d, a.f, n);
    return a;
}

static void drop(arr *a)
{
    free(a->d);
    free(a->f);
}

static void expect_close(const char *what, const float *got, const double *ref, size_t n,
                         double tol)
{
    double e = dat_gc_rel_err(got, ref, n);
    ck_assert_msg(e <= tol, "%s: relative error %.3g > %.1g", what, e, tol);
}

/* ---------------- convolution ---------------- */

typedef struct conv_case {
    dat_conv_desc d;
    const double *x, *w, *b, *r;
} conv_case;

static size_t conv_out_len(const dat_conv_desc *d)
{
    return (size_t)d->n * d->c_out * d->h_out * d->w_out;
}

/* Calls f for every product of the convolution: output o gets input xi
 * times weight wi; padding taps are skipped. The products of one output come in
 * (ci, ky, kx) order. */
typedef void (*conv_tap_fn)(void *user, size_t o, size_t xi, size_t wi);

static void conv_taps(const dat_conv_desc *d, conv_tap_fn f, void *user)
{
    for (int n = 0; n < d->n; ++n)
        for (int co = 0; co < d->c_out; ++co)
            for (int oy = 0; oy < d->h_out; ++oy)
                for (int ox = 0; ox < d->w_out; ++ox) {
                    size_t o = (((size_t)n * d->c_out + co) * d->h_out + oy) * d->w_out + ox;
                    for (int ci = 0; ci < d->c_in; ++ci)
                        for (int ky = 0; ky < d->k_h; ++ky)
                            for (int kx = 0; kx < d->k_w; ++kx) {
                                int iy = oy * d->stride - d->pad + ky, ix = ox * d->stride - d->pad + kx;
                                if (iy < 0 || iy >= d->h_in || ix < 0 || ix >= d->w_in)
                                    continue;
                                f(user, o,
                                  (((size_t)n * d->c_in + ci) * d->h_in + iy) * d->w_in + ix,
                                  (((size_t)co * d->c_in + ci) * d->k_h + ky) * d->k_w + kx);
                            }
                }
}

typedef struct conv_io {
    const double *x, *w, *r;
    const float *mask;
    double *y, *dx, *dw;
} conv_io;

static void fwd_tap(void *user, size_t o, size_t xi, size_t wi)
{
    conv_io *io = user;
    io->y[o] += io->x[xi] * io->w[wi];
}

static void conv_ref(const dat_conv_desc *d, const double *x, const double *w, const double *b,
                     double *y)
{
    size_t hw = (size_t)d->h_out * d->w_out, m = (size_t)d->n * d->c_out * hw;
    for (size_t o = 0; o < m; ++o)
        y[o] = b ? b[(o / hw) % (size_t)d->c_out] : 0.0;
    conv_io io = {.x = x, .w = w, .y = y};
    conv_taps(d, fwd_tap, &io);
}


/* L(v) with v replacing x (which = 0), w (1) or b (2). */
typedef struct conv_fd {
    conv_case *c;
    int which;
} conv_fd;

static double conv_loss(const double *v, void *user)
{
    conv_fd *f = user;
    conv_case *c = f->c;
    size_t m = conv_out_len(&c->d);
    double *y = malloc(m * sizeof *y), l = 0;
    conv_ref(&c->d, f->which == 0 ? v : c->x, f->which == 1 ? v : c->w,
             f->which == 2 ? v : c->b, y);
    for (size_t i = 0; i < m; ++i)
        l += c->r[i] * y[i];
    free(y);
    return l;
}

static void check_conv(int n, int cin, int h, int w, int cout, int k, int stride, int pad,
                       int bias)
{
    dat_conv_desc d = {.n = n, .c_in = cin, .h_in = h, .w_in = w, .c_out = cout, .k_h = k,
                       .k_w = k, .stride = stride, .pad = pad};
    ck_assert_dat_ok(dat_conv_desc_init("test", &d));
    size_t nx = (size_t)n * cin * h * w, nw = (size_t)cout * cin * k * k, ny = conv_out_len(&d);
    arr x = make(nx, 1, 1, 0), wt = make(nw, 2, 0.5, 0), b = make((size_t)cout, 3, 0.5, 0),
        r = make(ny, 4, 1, 0);
    conv_case c = {d, x.d, wt.d, bias ? b.d : NULL, r.d};
    char what[160];
    snprintf(what, sizeof what, "conv n%d c%d %dx%d -> c%d k%d s%d p%d bias%d", n, cin, h, w, cout,
             k, stride, pad, bias);

    double *yref = malloc(ny * sizeof *yref);
    float *y = malloc(ny * sizeof *y);
    conv_ref(&d, x.d, wt.d, bias ? b.d : NULL, yref);
    ck_assert_dat_ok(ctx->be->conv2d_fwd(ctx, &d, x.f, wt.f, bias ? b.f : NULL, y));
    expect_close(what, y, yref, ny, 1e-5);

    float *dx = malloc(nx * sizeof *dx), *dw = malloc(nw * sizeof *dw), db[64];
    ck_assert_dat_ok(ctx->be->conv2d_bwd_data(ctx, &d, r.f, wt.f, dx));
    ck_assert_dat_ok(ctx->be->conv2d_bwd_filter(ctx, &d, x.f, r.f, dw, bias ? db : NULL, 0.0f));
    double *g = malloc((nx > nw ? nx : nw) * sizeof *g);
    conv_fd fx = {&c, 0}, fw = {&c, 1}, fb = {&c, 2};
    dat_gc_numeric_grad(conv_loss, &fx, x.d, nx, 1e-3, g);
    expect_close("conv dx", dx, g, nx, TOL);
    dat_gc_numeric_grad(conv_loss, &fw, wt.d, nw, 1e-3, g);
    expect_close("conv dw", dw, g, nw, TOL);
    if (bias) {
        dat_gc_numeric_grad(conv_loss, &fb, b.d, (size_t)cout, 1e-3, g);
        expect_close("conv db", db, g, (size_t)cout, TOL);
    }
    /* beta = 1 accumulates: a second call doubles the gradients. */
    float *dw2 = malloc(nw * sizeof *dw2);
    memcpy(dw2, dw, nw * sizeof *dw2);
    ck_assert_dat_ok(ctx->be->conv2d_bwd_filter(ctx, &d, x.f, r.f, dw2, NULL, 1.0f));
    for (size_t i = 0; i < nw; ++i)
        ck_assert_msg(fabsf(dw2[i] - 2 * dw[i]) <= 1e-5f * (1 + fabsf(dw[i])), "%s: beta = 1", what);
    free(dw2);
    free(g);
    free(dx);
    free(dw);
    free(y);
    free(yref);
    drop(&x);
    drop(&wt);
    drop(&b);
    drop(&r);
}

START_TEST(test_conv)
{
    check_conv(2, 3, 7, 7, 4, 3, 1, 1, 1);
    check_conv(2, 3, 8, 8, 5, 3, 2, 1, 0);
    check_conv(3, 4, 6, 5, 2, 1, 1, 0, 1);
    check_conv(2, 4, 6, 6, 3, 1, 2, 0, 0);
    check_conv(1, 2, 9, 9, 3, 7, 2, 3, 0);
    check_conv(2, 2, 10, 11, 3, 3, 3, 1, 1); /* stride 3: three phases */
}
END_TEST

/* The output gradient r, zeroed where a fused ReLU's mask is not positive. */
static double masked_r(const conv_io *io, size_t o)
{
    return io->mask && !(io->mask[o] > 0.0f) ? 0.0 : io->r[o];
}

static void bwd_tap(void *user, size_t o, size_t xi, size_t wi)
{
    conv_io *io = user;
    double g = masked_r(io, o);
    io->dx[xi] += g * io->w[wi];
    io->dw[wi] += g * io->x[xi];
}

/* dL/dx, dL/dw, dL/db of L = sum r * y for conv_ref, in double; with a mask, r is
 * first zeroed where the mask is not positive (a fused ReLU's backward). */
static void conv_ref_bwd(const dat_conv_desc *d, const double *x, const double *w,
                         const double *r, const float *mask, double *dx, double *dw,
                         double *db)
{
    memset(dx, 0, (size_t)d->n * d->c_in * d->h_in * d->w_in * sizeof *dx);
    memset(dw, 0, (size_t)d->c_out * d->c_in * d->k_h * d->k_w * sizeof *dw);
    memset(db, 0, (size_t)d->c_out * sizeof *db);
    conv_io io = {.x = x, .w = w, .r = r, .mask = mask, .dx = dx, .dw = dw};
    size_t hw = (size_t)d->h_out * d->w_out;
    for (size_t o = 0; o < conv_out_len(d); ++o)
        db[(o / hw) % (size_t)d->c_out] += masked_r(&io, o);
    conv_taps(d, bwd_tap, &io);
}

/* A convolution large enough for 2 threads, with its ReLU fused: n < threads takes
 * the chunked path, n >= threads the per-group path; both against the reference. */
static void check_conv_fused(int n, int cin, int hw, int cout, int k, int stride, int pad)
{
    dat_conv_desc d = {.n = n, .c_in = cin, .h_in = hw, .w_in = hw, .c_out = cout, .k_h = k,
                       .k_w = k, .stride = stride, .pad = pad, .relu_out = 1};
    ck_assert_dat_ok(dat_conv_desc_init("test", &d));
    size_t nx = (size_t)n * cin * hw * hw, nw = (size_t)cout * cin * k * k, ny = conv_out_len(&d);
    arr x = make(nx, 5, 1, 0), wt = make(nw, 6, 0.5, 0), b = make((size_t)cout, 7, 0.5, 0),
        r = make(ny, 8, 1, 0);
    char what[160];
    snprintf(what, sizeof what, "fused conv n%d c%d %dx%d -> c%d k%d s%d p%d", n, cin, hw, hw,
             cout, k, stride, pad);
    double *yref = malloc(ny * sizeof *yref), *dxr = malloc(nx * sizeof *dxr),
           *dwr = malloc(nw * sizeof *dwr), dbr[64];
    float *y = malloc(ny * sizeof *y), *dx = malloc(nx * sizeof *dx), *dw = malloc(nw * sizeof *dw),
          db[64];
    conv_ref(&d, x.d, wt.d, b.d, yref);
    for (size_t i = 0; i < ny; ++i)
        yref[i] = yref[i] > 0 ? yref[i] : 0;
    ck_assert_dat_ok(ctx->be->conv2d_fwd(ctx, &d, x.f, wt.f, b.f, y));
    expect_close(what, y, yref, ny, 1e-5);
    d.relu_out = 0;
    d.relu_mask = y;
    conv_ref_bwd(&d, x.d, wt.d, r.d, y, dxr, dwr, dbr);
    ck_assert_dat_ok(ctx->be->conv2d_bwd_data(ctx, &d, r.f, wt.f, dx));
    expect_close(what, dx, dxr, nx, 1e-5);
    ck_assert_dat_ok(ctx->be->conv2d_bwd_filter(ctx, &d, x.f, r.f, dw, db, 0.0f));
    expect_close(what, dw, dwr, nw, 1e-5);
    expect_close(what, db, dbr, (size_t)cout, 1e-5);
    free(yref), free(dxr), free(dwr), free(y), free(dx), free(dw);
    drop(&x), drop(&wt), drop(&b), drop(&r);
}

START_TEST(test_conv_paths)
{
    for (int n = 1; n <= 5; n += 4) {
        /* n x K x hw_out above DAT_CPU_PAR_MIN even for n = 1: 2 threads */
        check_conv_fused(n, 16, 16, 16, 3, 1, 1);
        check_conv_fused(n, 16, 32, 16, 3, 2, 1);
        check_conv_fused(n, 64, 24, 24, 1, 1, 0); /* pointwise: no im2col */
    }
    /* small planes: groups of several samples per GEMM, the last one shorter */
    check_conv_fused(7, 64, 4, 32, 3, 1, 1);  /* groups of 4 and 3 */
    check_conv_fused(37, 32, 8, 16, 3, 1, 1); /* 9 groups of 4 and one of 1 */
    check_conv_fused(9, 32, 8, 16, 3, 2, 1);  /* 4x4 out: groups of 5 and 4 */
    check_conv_fused(9, 128, 6, 16, 1, 1, 0); /* pointwise, gathered: 5 and 4 */
}
END_TEST

/* Row copies and sums for every tail length of a 16-float vector and beyond,
 * leaving the floats between rows untouched. */
START_TEST(test_rows)
{
    enum { ROWS = 3, PITCH = 48 };
    float src[ROWS * PITCH], dst[ROWS * PITCH], want[ROWS * PITCH];
    for (int i = 0; i < ROWS * PITCH; ++i)
        src[i] = (float)i * 0.5f + 1.0f;
    for (int n = 0; n <= 40; ++n)
        for (int add = 0; add < 2; ++add) {
            for (int i = 0; i < ROWS * PITCH; ++i)
                dst[i] = want[i] = -(float)i;
            for (int r = 0; r < ROWS; ++r)
                for (int i = 0; i < n; ++i)
                    want[r * PITCH + i] = add ? want[r * PITCH + i] + src[r * 40 + i]
                                              : src[r * 40 + i];
            if (add)
                dat_cpu_add_rows(dst, PITCH, src, 40, ROWS, n);
            else
                dat_cpu_copy_rows(dst, PITCH, src, 40, ROWS, n);
            for (int i = 0; i < ROWS * PITCH; ++i)
                ck_assert_msg(dst[i] == want[i], "n %d add %d: float %d is %g, not %g", n, add,
                              i, dst[i], want[i]);
        }
}
END_TEST

/* ---------------- linear ---------------- */

typedef struct lin_fd {
    int n, in, out, which;
    const double *x, *w, *b, *r;
} lin_fd;

static double lin_loss(const double *v, void *user)
{
    lin_fd *f = user;
    const double *x = f->which == 0 ? v : f->x, *w = f->which == 1 ? v : f->w,
                 *b = f->which == 2 ? v : f->b;
    double l = 0;
    for (int i = 0; i < f->n; ++i)
        for (int j = 0; j < f->out; ++j) {
            double s = b[j];
            for (int k = 0; k < f->in; ++k)
                s += x[i * f->in + k] * w[j * f->in + k];
            l += f->r[i * f->out + j] * s;
        }
    return l;
}

START_TEST(test_linear)
{
    int n = 3, in = 7, out = 5;
    arr x = make((size_t)n * in, 5, 1, 0), w = make((size_t)out * in, 6, 1, 0),
        b = make((size_t)out, 7, 1, 0), r = make((size_t)n * out, 8, 1, 0);
    float y[15], dx[21], dw[35], db[5];
    ck_assert_dat_ok(ctx->be->linear_fwd(ctx, n, in, out, x.f, w.f, b.f, y));
    double yref[15];
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < out; ++j) {
            yref[i * out + j] = b.d[j];
            for (int k = 0; k < in; ++k)
                yref[i * out + j] += x.d[i * in + k] * w.d[j * in + k];
        }
    expect_close("linear y", y, yref, 15, 1e-6);
    ck_assert_dat_ok(ctx->be->linear_bwd(ctx, n, in, out, x.f, w.f, r.f, dx, dw, db, 0.0f));
    lin_fd f = {n, in, out, 0, x.d, w.d, b.d, r.d};
    double g[35];
    dat_gc_numeric_grad(lin_loss, &f, x.d, 21, 1e-3, g);
    expect_close("linear dx", dx, g, 21, TOL);
    f.which = 1;
    dat_gc_numeric_grad(lin_loss, &f, w.d, 35, 1e-3, g);
    expect_close("linear dw", dw, g, 35, TOL);
    f.which = 2;
    dat_gc_numeric_grad(lin_loss, &f, b.d, 5, 1e-3, g);
    expect_close("linear db", db, g, 5, TOL);
    drop(&x);
    drop(&w);
    drop(&b);
    drop(&r);
}
END_TEST

/* ---------------- pooling ---------------- */

typedef struct pool_fd {
    dat_pool_desc d;
    const double *r;
} pool_fd;

static void pool_ref(const dat_pool_desc *d, const double *x, double *y)
{
    for (int p = 0; p < d->n * d->c; ++p)
        for (int oy = 0; oy < d->h_out; ++oy)
            for (int ox = 0; ox < d->w_out; ++ox) {
                double best = -INFINITY, sum = 0;
                for (int ky = 0; ky < d->k; ++ky)
                    for (int kx = 0; kx < d->k; ++kx) {
                        int iy = oy * d->stride - d->pad + ky, ix = ox * d->stride - d->pad + kx;
                        if (iy < 0 || iy >= d->h_in || ix < 0 || ix >= d->w_in)
                            continue;
                        double v = x[(p * d->h_in + iy) * d->w_in + ix];
                        sum += v;
                        best = v > best ? v : best;
                    }
                y[(p * d->h_out + oy) * d->w_out + ox] =
                    d->kind == DAT_POOL_MAX ? best : sum / (d->k * d->k);
            }
}

static double pool_loss(const double *v, void *user)
{
    pool_fd *f = user;
    size_t m = (size_t)f->d.n * f->d.c * f->d.h_out * f->d.w_out;
    double *y = malloc(m * sizeof *y), l = 0;
    pool_ref(&f->d, v, y);
    for (size_t i = 0; i < m; ++i)
        l += f->r[i] * y[i];
    free(y);
    return l;
}

static void check_pool(dat_pool_kind kind, int n, int c, int h, int k, int stride, int pad)
{
    dat_pool_desc d = {.kind = kind, .n = n, .c = c, .h_in = h, .w_in = h, .k = k,
                       .stride = stride, .pad = pad};
    ck_assert_dat_ok(dat_pool_desc_init("test", &d));
    size_t nx = (size_t)n * c * h * h, ny = (size_t)n * c * d.h_out * d.w_out;
    /* Distinct values (a permutation), so max pooling has no ties. */
    arr x = make(nx, 9, 1, 0), r = make(ny, 10, 1, 0);
    for (size_t i = 0; i < nx; ++i) {
        x.d[i] = (double)((i * 7919) % nx) / (double)nx - 0.5;
        x.f[i] = (float)x.d[i];
        x.d[i] = x.f[i];
    }
    float *y = malloc(ny * sizeof *y), *dx = malloc(nx * sizeof *dx);
    double *yref = malloc(ny * sizeof *yref), *g = malloc(nx * sizeof *g);
    int32_t *idx = malloc(ny * sizeof *idx);
    ck_assert_dat_ok(ctx->be->pool_fwd(ctx, &d, x.f, y, idx));
    pool_ref(&d, x.d, yref);
    expect_close(kind == DAT_POOL_MAX ? "maxpool y" : "avgpool y", y, yref, ny, 1e-6);
    ck_assert_dat_ok(ctx->be->pool_bwd(ctx, &d, r.f, idx, dx));
    pool_fd f = {d, r.d};
    dat_gc_numeric_grad(pool_loss, &f, x.d, nx, 1e-6, g);
    expect_close(kind == DAT_POOL_MAX ? "maxpool dx" : "avgpool dx", dx, g, nx, TOL);
    free(y);
    free(dx);
    free(yref);
    free(g);
    free(idx);
    drop(&x);
    drop(&r);
}

START_TEST(test_pool)
{
    check_pool(DAT_POOL_MAX, 2, 3, 8, 2, 2, 0);
    check_pool(DAT_POOL_MAX, 1, 2, 9, 3, 2, 1);
    check_pool(DAT_POOL_AVG, 2, 3, 8, 4, 4, 0);
    check_pool(DAT_POOL_AVG, 1, 2, 7, 3, 2, 1);
    check_pool(DAT_POOL_AVG, 2, 2, 4, 4, 1, 0); /* global average pooling */
}
END_TEST

/* A global average of a 256 x 256 plane comes out within half a float ulp of the
 * exact mean (summed in float, one element after another, it was ~56 ulps off). */
START_TEST(test_pool_avg_large_plane)
{
    enum { H = 256, C = 2 };
    dat_pool_desc d = {.kind = DAT_POOL_AVG, .n = 1, .c = C, .h_in = H, .w_in = H, .k = H,
                       .stride = 1, .pad = 0};
    ck_assert_dat_ok(dat_pool_desc_init("test", &d));
    size_t plane = (size_t)H * H;
    float *x = malloc(C * plane * sizeof *x), y[C];
    for (size_t i = 0; i < C * plane; ++i) /* plane c in [0.75 + c, 1.25 + c): exact sums */
        x[i] = 0.75f + (float)((i * 7919) % plane) / (float)plane * 0.5f + (float)(i / plane);
    ck_assert_dat_ok(ctx->be->pool_fwd(ctx, &d, x, y, NULL));
    for (int c = 0; c < C; ++c) {
        double sum = 0;
        for (size_t i = 0; i < plane; ++i)
            sum += x[c * plane + i];
        double mean = sum / (double)plane, ulp = nextafterf((float)mean, INFINITY) - (float)mean;
        ck_assert_msg(fabs(y[c] - mean) <= 0.5 * ulp, "plane %d: %.9g vs exact %.12g (%.2f ulp)",
                      c, y[c], mean, fabs(y[c] - mean) / ulp);
    }
    free(x);
}
END_TEST

/* ---------------- batch norm ---------------- */

typedef struct bn_fd {
    dat_bn_desc d;
    int train, which;
    const double *x, *gamma, *beta, *rm, *rv, *r;
} bn_fd;

static void bn_ref(const bn_fd *f, const double *x, const double *gamma, const double *beta,
                   double *y)
{
    const dat_bn_desc *d = &f->d;
    for (int c = 0; c < d->c; ++c) {
        double mean = f->rm[c], var = f->rv[c];
        if (f->train) {
            double s = 0, q = 0, cnt = (double)d->n * d->hw;
            for (int i = 0; i < d->n; ++i)
                for (int k = 0; k < d->hw; ++k)
                    s += x[(i * d->c + c) * d->hw + k];
            mean = s / cnt;
            for (int i = 0; i < d->n; ++i)
                for (int k = 0; k < d->hw; ++k) {
                    double e = x[(i * d->c + c) * d->hw + k] - mean;
                    q += e * e;
                }
            var = q / cnt;
        }
        for (int i = 0; i < d->n; ++i)
            for (int k = 0; k < d->hw; ++k) {
                size_t p = (size_t)(i * d->c + c) * d->hw + k;
                y[p] = (x[p] - mean) / sqrt(var + d->eps) * gamma[c] + beta[c];
            }
    }
}

static double bn_loss(const double *v, void *user)
{
    bn_fd *f = user;
    size_t m = (size_t)f->d.n * f->d.c * f->d.hw;
    double *y = malloc(m * sizeof *y), l = 0;
    bn_ref(f, f->which == 0 ? v : f->x, f->which == 1 ? v : f->gamma, f->which == 2 ? v : f->beta,
           y);
    for (size_t i = 0; i < m; ++i)
        l += f->r[i] * y[i];
    free(y);
    return l;
}

static void check_bn(int train, int n, int c, int hw, double offset)
{
    dat_bn_desc d = {.n = n, .c = c, .hw = hw, .eps = 1e-5f, .momentum = 0.1f};
    size_t m = (size_t)n * c * hw;
    /* offset: a mean far from 0 relative to the spread, where naive formulas lose digits. */
    arr x = make(m, 11, 1, offset), gamma = make((size_t)c, 12, 0.5, 1), beta = make((size_t)c, 13, 1, 0),
        r = make(m, 14, 1, 0), rm = make((size_t)c, 15, 0.2, offset), rv = make((size_t)c, 16, 0.2, 1);
    float *y = malloc(m * sizeof *y), *dx = malloc(m * sizeof *dx), dg[16], db[16], sm[16],
          si[16], rmf[16], rvf[16];
    double *yref = malloc(m * sizeof *yref), *g = malloc(m * sizeof *g);
    memcpy(rmf, rm.f, (size_t)c * sizeof(float));
    memcpy(rvf, rv.f, (size_t)c * sizeof(float));
    bn_fd f = {d, train, 0, x.d, gamma.d, beta.d, rm.d, rv.d, r.d};
    if (train) {
        ck_assert_dat_ok(ctx->be->bn_fwd_train(ctx, &d, x.f, gamma.f, beta.f, rmf, rvf, sm, si, y));
        ck_assert_dat_ok(ctx->be->bn_bwd_train(ctx, &d, x.f, r.f, gamma.f, sm, si, dx, dg, db, 0.0f));
        /* Running statistics: (1 - m) old + m batch, with the unbiased variance. */
        for (int ch = 0; ch < c; ++ch) {
            double s = 0, q = 0, cnt = (double)n * hw;
            for (int i = 0; i < n; ++i)
                for (int k = 0; k < hw; ++k)
                    s += x.d[(i * c + ch) * hw + k];
            for (int i = 0; i < n; ++i)
                for (int k = 0; k < hw; ++k)
                    q += pow(x.d[(i * c + ch) * hw + k] - s / cnt, 2);
            double em = 0.9 * rm.d[ch] + 0.1 * s / cnt, ev = 0.9 * rv.d[ch] + 0.1 * q / (cnt - 1);
            ck_assert_msg(fabs(rmf[ch] - em) <= 1e-6 * (1 + fabs(em)), "running mean %d", ch);
            ck_assert_msg(fabs(rvf[ch] - ev) <= 1e-6 * (1 + fabs(ev)), "running var %d", ch);
        }
    } else {
        ck_assert_dat_ok(ctx->be->bn_fwd_eval(ctx, &d, x.f, gamma.f, beta.f, rm.f, rv.f, y));
        ck_assert_dat_ok(ctx->be->bn_bwd_eval(ctx, &d, x.f, r.f, gamma.f, rm.f, rv.f, dx, dg, db,
                                              0.0f));
    }
    bn_ref(&f, x.d, gamma.d, beta.d, yref);
    expect_close(train ? "bn train y" : "bn eval y", y, yref, m, 1e-6);
    dat_gc_numeric_grad(bn_loss, &f, x.d, m, 1e-4, g);
    expect_close(train ? "bn train dx" : "bn eval dx", dx, g, m, TOL);
    f.which = 1;
    dat_gc_numeric_grad(bn_loss, &f, gamma.d, (size_t)c, 1e-4, g);
    expect_close("bn dgamma", dg, g, (size_t)c, TOL);
    f.which = 2;
    dat_gc_numeric_grad(bn_loss, &f, beta.d, (size_t)c, 1e-4, g);
    expect_close("bn dbeta", db, g, (size_t)c, TOL);
    free(y);
    free(dx);
    free(yref);
    free(g);
    drop(&x);
    drop(&gamma);
    drop(&beta);
    drop(&r);
    drop(&rm);
    drop(&rv);
}

START_TEST(test_batchnorm)
{
    for (int train = 0; train < 2; ++train) {
        check_bn(train, 3, 4, 5, 0.0);
        check_bn(train, 4, 3, 16, 20.0);
        check_bn(train, 3, 3, 21, 20.0); /* planes of whole 8-lane blocks and a tail */
        check_bn(train, 8, 2, 1, 0.5);   /* BatchNorm1d shape */
    }
}
END_TEST

/* A fused ReLU (dat_bn_desc's relu_out, relu_mask) gives exactly the unfused
 * results: max(bn(x), 0) forward, and the backward of dy * (y > 0). */
static void check_bn_relu(int train)
{
    const int n = 4, c = 3, hw = 10;
    size_t m = (size_t)n * c * hw;
    dat_bn_desc d = {.n = n, .c = c, .hw = hw, .eps = 1e-5f, .momentum = 0.1f};
    arr x = make(m, 21, 1, 0.3), gamma = make((size_t)c, 22, 0.5, 1),
        beta = make((size_t)c, 23, 1, 0), dy = make(m, 24, 1, 0),
        rm = make((size_t)c, 25, 0.2, 0.3), rv = make((size_t)c, 26, 0.2, 1);
    float *y[2], *dx[2], dg[2][3], db[2][3], sm[3], si[3], rmf[3], rvf[3];
    float *masked = malloc(m * sizeof *masked);
    for (int fused = 0; fused < 2; ++fused) {
        y[fused] = malloc(m * sizeof(float));
        dx[fused] = malloc(m * sizeof(float));
        dat_bn_desc e = d;
        e.relu_out = fused;
        memcpy(rmf, rm.f, sizeof rmf);
        memcpy(rvf, rv.f, sizeof rvf);
        if (train)
            ck_assert_dat_ok(ctx->be->bn_fwd_train(ctx, &e, x.f, gamma.f, beta.f, rmf, rvf, sm,
                                                   si, y[fused]));
        else
            ck_assert_dat_ok(ctx->be->bn_fwd_eval(ctx, &e, x.f, gamma.f, beta.f, rm.f, rv.f,
                                                  y[fused]));
    }
    int zeros = 0;
    for (size_t i = 0; i < m; ++i) {
        float r = y[0][i] > 0.0f ? y[0][i] : 0.0f;
        ck_assert_msg(memcmp(&r, &y[1][i], sizeof r) == 0, "fused forward %zu: %g, want %g", i,
                      (double)y[1][i], (double)r);
        masked[i] = y[1][i] > 0.0f ? dy.f[i] : 0.0f;
        zeros += y[1][i] == 0.0f;
    }
    ck_assert_int_gt(zeros, 0); /* the mask does something */
    for (int fused = 0; fused < 2; ++fused) {
        dat_bn_desc e = d;
        e.relu_mask = fused ? y[1] : NULL;
        const float *g = fused ? dy.f : masked;
        if (train)
            ck_assert_dat_ok(ctx->be->bn_bwd_train(ctx, &e, x.f, g, gamma.f, sm, si, dx[fused],
                                                   dg[fused], db[fused], 0.0f));
        else
            ck_assert_dat_ok(ctx->be->bn_bwd_eval(ctx, &e, x.f, g, gamma.f, rm.f, rv.f,
                                                  dx[fused], dg[fused], db[fused], 0.0f));
    }
    ck_assert_msg(memcmp(dx[0], dx[1], m * sizeof(float)) == 0, "fused dx differs");
    ck_assert_msg(memcmp(dg[0], dg[1], sizeof dg[0]) == 0, "fused dgamma differs");
    ck_assert_msg(memcmp(db[0], db[1], sizeof db[0]) == 0, "fused dbeta differs");
    for (int k = 0; k < 2; ++k) {
        free(y[k]);
        free(dx[k]);
    }
    free(masked);
    drop(&x);
    drop(&gamma);
    drop(&beta);
    drop(&dy);
    drop(&rm);
    drop(&rv);
}

START_TEST(test_batchnorm_relu)
{
    check_bn_relu(0);
    check_bn_relu(1);
}
END_TEST

/* ---------------- losses ---------------- */

typedef struct loss_fd {
    int n, k, which; /* which: 0 CE, 1 KL w.r.t. clean, 2 KL w.r.t. adv */
    const int32_t *y;
    const double *w, *zc, *za;
} loss_fd;

static double lse(const double *z, int k)
{
    double m = z[0], s = 0;
    for (int j = 1; j < k; ++j)
        m = z[j] > m ? z[j] : m;
    for (int j = 0; j < k; ++j)
        s += exp(z[j] - m);
    return m + log(s);
}

static double loss_total(const double *v, void *user)
{
    loss_fd *f = user;
    double l = 0;
    for (int i = 0; i < f->n; ++i) {
        if (f->which == 0) {
            const double *z = v + i * f->k;
            l += f->w[i] * (lse(z, f->k) - z[f->y[i]]);
            continue;
        }
        const double *zc = (f->which == 1 ? v : f->zc) + i * f->k;
        const double *za = (f->which == 2 ? v : f->za) + i * f->k;
        double lc = lse(zc, f->k), la = lse(za, f->k);
        for (int j = 0; j < f->k; ++j)
            l += exp(zc[j] - lc) * ((zc[j] - lc) - (za[j] - la));
    }
    return l;
}

START_TEST(test_softmax_xent_and_kl)
{
    enum { N = 4, K = 6 };
    arr z = make(N * K, 17, 3, 0), za = make(N * K, 18, 3, 0), w = make(N, 19, 0.5, 1);
    int32_t y[N] = {0, 5, 2, 3};
    float loss[N], dz[N * K], dz2[N * K];
    double g[N * K];
    loss_fd f = {N, K, 0, y, w.d, z.d, za.d};
    ck_assert_dat_ok(ctx->be->softmax_xent(ctx, N, K, z.f, y, w.f, loss, dz, 0.5f));
    for (int i = 0; i < N; ++i) {
        double ref = lse(z.d + i * K, K) - z.d[i * K + y[i]];
        ck_assert_msg(fabs(loss[i] - ref) <= 1e-6 * (1 + ref), "CE loss %d", i);
    }
    dat_gc_numeric_grad(loss_total, &f, z.d, N * K, 1e-5, g);
    for (int i = 0; i < N * K; ++i)
        g[i] *= 0.5;
    expect_close("softmax_xent dz (weights, scale 0.5)", dz, g, N * K, TOL);

    /* Large logits do not overflow. */
    float big[K] = {1e4f, -1e4f, 3e4f, 0, 5, 2e4f}, bl[1], bd[K];
    int32_t by[1] = {2};
    ck_assert_dat_ok(ctx->be->softmax_xent(ctx, 1, K, big, by, NULL, bl, bd, 1.0f));
    ck_assert(isfinite(bl[0]) && fabsf(bl[0]) < 1e-3f);
    for (int j = 0; j < K; ++j)
        ck_assert(isfinite(bd[j]));

    /* Logits past 2^53 times log s: the softmax still sums to 1 (PyTorch's values). */
    float hz[3][4] = {
        {1e16f, 1e16f, 0, 0}, {3e38f, -3e38f, 3e38f, 0}, {-3e38f, -3e38f, -3e38f, -3e38f}};
    int32_t hy[3] = {0, 1, 0};
    float hl[3], hd[12];
    ck_assert_dat_ok(ctx->be->softmax_xent(ctx, 3, 4, hz[0], hy, NULL, hl, hd, 1.0f));
    const float want_hl[3] = {(float)log(2.0), INFINITY, (float)log(4.0)};
    const float want_hd[12] = {-0.5f, 0.5f, 0, 0, 0.5f, -1, 0.5f, 0, -0.75f, 0.25f, 0.25f, 0.25f};
    for (int i = 0; i < 3; ++i)
        ck_assert_msg(i == 1 ? hl[i] > 1e38f : fabsf(hl[i] - want_hl[i]) < 1e-6f,
                      "CE of huge logits, row %d: %g", i, (double)hl[i]);
    for (int j = 0; j < 12; ++j)
        ck_assert_msg(fabsf(hd[j] - want_hd[j]) < 1e-6f, "CE dz of huge logits [%d]: %g", j,
                      (double)hd[j]);
    float uni[4] = {0, 0, 0, 0};
    ck_assert_dat_ok(ctx->be->kl_div(ctx, 1, 4, uni, hz[2], hl, hd, hd + 4, 1.0f));
    ck_assert_msg(fabsf(hl[0]) < 1e-7f, "KL(uniform || uniform at -3e38) = %g", (double)hl[0]);
    for (int j = 0; j < 8; ++j)
        ck_assert_msg(fabsf(hd[j]) < 1e-7f, "KL gradient [%d] = %g", j, (double)hd[j]);

    ck_assert_dat_ok(ctx->be->kl_div(ctx, N, K, z.f, za.f, loss, dz, dz2, 1.0f));
    f.which = 1;
    dat_gc_numeric_grad(loss_total, &f, z.d, N * K, 1e-5, g);
    expect_close("kl dz_clean", dz, g, N * K, TOL);
    f.which = 2;
    dat_gc_numeric_grad(loss_total, &f, za.d, N * K, 1e-5, g);
    expect_close("kl dz_adv", dz2, g, N * K, TOL);
    ck_assert_dat_ok(ctx->be->kl_div(ctx, N, K, z.f, z.f, loss, NULL, dz2, 1.0f));
    for (int i = 0; i < N; ++i)
        ck_assert_msg(fabsf(loss[i]) < 1e-6f, "KL(p || p) = %g", (double)loss[i]);
    drop(&z);
    drop(&za);
    drop(&w);
}
END_TEST

START_TEST(test_small_ops)
{
    float z[6] = {1, 3, 3, -1, -2, -2};
    int32_t am[2];
    ck_assert_dat_ok(ctx->be->argmax(ctx, 2, 3, z, am));
    ck_assert_int_eq(am[0], 1); /* ties go to the lowest index */
    ck_assert_int_eq(am[1], 0);
    float v[100] = {0};
    int bad = -1;
    ck_assert_dat_ok(ctx->be->check_finite(ctx, 100, v, &bad));
    ck_assert_int_eq(bad, 0);
    for (int pos = 0; pos < 100; pos += 49) {
        v[pos] = pos % 2 ? INFINITY : NAN;
        ck_assert_dat_ok(ctx->be->check_finite(ctx, 100, v, &bad));
        ck_assert_msg(bad == 1, "non-finite value at %d not found", pos);
        v[pos] = 0;
    }
    float lo, hi, w[5] = {0.5f, -2, 7, 1, 0};
    ck_assert_dat_ok(ctx->be->minmax(ctx, 5, w, &lo, &hi));
    ck_assert(lo == -2 && hi == 7);
    float a[4] = {1, -2, 3, 0}, b[4] = {1, 1, 1, 1}, out[4];
    ck_assert_dat_ok(ctx->be->add(ctx, DAT_FMT_F32, 4, a, b, out));
    ck_assert(out[1] == -1 && out[2] == 4);
    ck_assert_dat_ok(ctx->be->axpy(ctx, 4, 2.0f, a, out));
    ck_assert(out[1] == -5 && out[2] == 10);
    ck_assert_dat_ok(ctx->be->scale(ctx, 4, -1.0f, out));
    ck_assert(out[0] == -4);
    ck_assert_dat_ok(ctx->be->relu_fwd(ctx, DAT_FMT_F32, 4, a, out));
    ck_assert(out[0] == 1 && out[1] == 0 && out[3] == 0);
    float dy[4] = {5, 6, 7, 8}, dx[4];
    ck_assert_dat_ok(ctx->be->relu_bwd(ctx, DAT_FMT_F32, 4, out, dy, dx));
    ck_assert(dx[0] == 5 && dx[1] == 0 && dx[2] == 7 && dx[3] == 0);
    float x2[8] = {1, 2, 3, 4, 5, 6, 7, 8}, sc[2] = {2, 0.5f}, sh[2] = {-1, 1}, y2[8];
    ck_assert_dat_ok(ctx->be->act_convert(ctx, 2, 2, 2, DAT_FMT_F32, x2, sc, sh, DAT_FMT_F32, y2));
    ck_assert(y2[0] == 1 && y2[2] == 2.5f && y2[4] == 9 && y2[7] == 5);
    /* Channels last: sample 0 is (c0 p0, c1 p0, c0 p1, c1 p1). */
    ck_assert_dat_ok(ctx->be->act_convert(ctx, 2, 2, 2, DAT_FMT_F32, x2, NULL, NULL, DAT_FMT_NHWC,
                                          y2));
    ck_assert(y2[0] == 1 && y2[1] == 3 && y2[2] == 2 && y2[3] == 4 && y2[5] == 7);
    /* bf16: to nearest, ties to even (1 + 2^-8 is a tie: 1; 1 + 3 2^-9 rounds up). */
    float r[2] = {1.00390625f, 1.005859375f}, back[2];
    uint16_t h[2];
    ck_assert_dat_ok(ctx->be->act_convert(ctx, 1, 1, 2, DAT_FMT_F32, r, NULL, NULL, DAT_FMT_BF16,
                                          h));
    ck_assert_dat_ok(ctx->be->act_convert(ctx, 1, 1, 2, DAT_FMT_BF16, h, NULL, NULL, DAT_FMT_F32,
                                          back));
    ck_assert(back[0] == 1.0f && back[1] == 1.0078125f);
    /* gemm, all transposes, against a naive product. */
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, -1, 2, 0, 1, 3}, C[4];
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb) {
            /* op(A) 2x3, op(B) 3x2 */
            ck_assert_dat_ok(ctx->be->gemm(ctx, ta, tb, 2, 2, 3, 1.0f, A, ta ? 2 : 3, B,
                                           tb ? 3 : 2, 0.0f, C, 2));
            for (int i = 0; i < 2; ++i)
                for (int j = 0; j < 2; ++j) {
                    float s = 0;
                    for (int k = 0; k < 3; ++k)
                        s += (ta ? A[k * 2 + i] : A[i * 3 + k]) * (tb ? B[j * 3 + k] : B[k * 2 + j]);
                    ck_assert_msg(C[i * 2 + j] == s, "gemm ta %d tb %d", ta, tb);
                }
        }
}
END_TEST

START_TEST(test_attack_steps)
{
    float x0[6] = {0.0f, 0.5f, 1.0f, 0.2f, 0.9f, 0.05f}, xa[6], g[6] = {1, -1, 1, -1, 0, 1};
    memcpy(xa, x0, sizeof xa);
    ck_assert_dat_ok(ctx->be->attack_linf_step(ctx, 6, xa, g, x0, 0.3f, 0.1f, 0.0f, 1.0f));
    float want[6] = {0.1f, 0.4f, 1.0f, 0.1f, 0.9f, 0.15f};
    for (int i = 0; i < 6; ++i)
        ck_assert_msg(fabsf(xa[i] - want[i]) < 1e-7f, "linf step %d: %g", i, (double)xa[i]);
    /* l2: two samples of 3; the step goes along g / ||g||, then back into the ball. */
    float y0[6] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f}, ya[6], gg[6] = {3, 0, 4, 0, 0, 0};
    memcpy(ya, y0, sizeof ya);
    ck_assert_dat_ok(ctx->be->attack_l2_step(ctx, 2, 3, ya, gg, y0, 0.25f, 0.1f, 0.0f, 1.0f));
    ck_assert(fabsf(ya[0] - (0.5f + 0.1f * 0.6f)) < 1e-6f);
    ck_assert(fabsf(ya[2] - (0.5f + 0.1f * 0.8f)) < 1e-6f);
    ck_assert(ya[3] == 0.5f && ya[5] == 0.5f); /* zero gradient: no step */
    /* A gradient of denormals (a saturated softmax's): alpha / ||g|| overflows
     * float, the step is still alpha along g / ||g||. */
    float gt[6] = {3e-42f, 0, 4e-42f, 0, 0, 0};
    memcpy(ya, y0, sizeof ya);
    ck_assert_dat_ok(ctx->be->attack_l2_step(ctx, 2, 3, ya, gt, y0, 0.25f, 1.0f, 0.0f, 1.0f));
    ck_assert_msg(fabsf(ya[0] - 0.65f) < 1e-3f && ya[1] == 0.5f && fabsf(ya[2] - 0.7f) < 1e-3f,
                  "l2 step of a denormal gradient: %g %g %g", (double)ya[0], (double)ya[1],
                  (double)ya[2]);
    float rows[6] = {3, 4, 0, 0, 0, 0}, norms[2] = {10, 1};
    ck_assert_dat_ok(ctx->be->rows_renorm(ctx, 2, 3, rows, norms));
    ck_assert(fabsf(rows[0] - 6) < 1e-6f && fabsf(rows[1] - 8) < 1e-6f && rows[3] == 0);
    float tiny[3] = {3e-42f, 4e-42f, 0}, one = 5;
    ck_assert_dat_ok(ctx->be->rows_renorm(ctx, 1, 3, tiny, &one));
    ck_assert_msg(fabsf(tiny[0] - 3) < 1e-2f && fabsf(tiny[1] - 4) < 1e-2f && tiny[2] == 0,
                  "renorm of a denormal row: %g %g", (double)tiny[0], (double)tiny[1]);
}
END_TEST

/* A CPU with AVX2 + FMA must not run OpenBLAS's generic SSE3 kernels: a CPU model
 * newer than the OpenBLAS build makes it fall back to them, and the context's
 * creation (setup) switches to the kernels the CPU supports. */
START_TEST(test_blas_kernels)
{
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ||
        getenv("OPENBLAS_CORETYPE"))
        return;
    const char *core = openblas_get_corename();
    ck_assert_msg(strcasecmp(core, "prescott") != 0, "OpenBLAS runs its generic kernels");
    ck_assert_ptr_null(getenv("OPENBLAS_CORETYPE")); /* the environment is given back */
}
END_TEST

/* OpenBLAS's thread count is one for the process; a GEMM runs with its own
 * context's, whichever context was created last. */
START_TEST(test_blas_threads_follow_the_context)
{
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.num_threads = 1;
    dat_ctx *one = NULL;
    ck_assert_dat_ok(dat_ctx_create(&one, &o));
    float a[4] = {1, 2, 3, 4}, c[4] = {0};
    ck_assert_dat_ok(dat_cpu_gemm(ctx, 0, 0, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2));
    ck_assert_int_eq(openblas_get_num_threads(), 2);
    ck_assert(c[0] == 7 && c[1] == 10 && c[2] == 15 && c[3] == 22);
    ck_assert_dat_ok(dat_cpu_gemm(one, 0, 0, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2));
    ck_assert_int_eq(openblas_get_num_threads(), 1);
    dat_ctx_destroy(one);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cpu_ops");
    TCase *tc = tcase_create("cpu_ops");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_conv);
    tcase_add_test(tc, test_conv_paths);
    tcase_add_test(tc, test_rows);
    tcase_add_test(tc, test_linear);
    tcase_add_test(tc, test_pool);
    tcase_add_test(tc, test_pool_avg_large_plane);
    tcase_add_test(tc, test_batchnorm);
    tcase_add_test(tc, test_batchnorm_relu);
    tcase_add_test(tc, test_softmax_xent_and_kl);
    tcase_add_test(tc, test_small_ops);
    tcase_add_test(tc, test_attack_steps);
    tcase_add_test(tc, test_blas_kernels);
    tcase_add_test(tc, test_blas_threads_follow_the_context);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
