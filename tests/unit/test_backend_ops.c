/*
 * Backend op parity (after ggml's test-backend-ops): every op of struct
 * dat_backend runs on the CPU backend (the reference) and on the CUDA backend
 * with identical inputs (Philox fills made on the CPU and copied over), at the
 * presets' shapes (cnn_small, preact_resnet18) and at odd ones, and each
 * output is compared by the normalized error ||cuda - cpu|| / ||cpu|| (the
 * absolute norm where ||cpu|| = 0) against the tolerance of its op class
 * below; docs/backends.md explains the numbers.
 *
 * `checks` lists every slot of struct dat_backend with the function that
 * checks it; test_table_complete fails when lib/core/backend.h gains an op
 * that the list lacks, so a new op cannot ship unchecked. Outputs an op must
 * overwrite are poisoned with NaN on the CUDA side (and a finite garbage value
 * on the CPU side) first, so an op that reads or accumulates into them fails.
 *
 * Without a CUDA device only the table check runs, and the test exits 77
 * (skipped). DAT_TEST_BACKEND_OPS_SELF=1 in the environment runs every check
 * with a second CPU context in place of the CUDA one: a check of this harness
 * (buffer sizes, aliasing, NaN-poisoned outputs) on machines without a GPU. An op whose CPU entry is NULL is skipped with a message (the CPU
 * side may lag in a branch); a NULL CUDA entry fails.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "core/backend.h"
#include "core/bf16.h"
#include "core/ctx.h"
#include "optim/optim.h"
#include "quant/quant_math.h"
#include "quant/quantize.h"

/* Tolerances of the normalized error, per op class. */
/* Exact (bit for bit): argmax, check_finite, minmax, max-pool values and
 * indices, fills, conversions, Philox streams, copies. */
#define TOL_ELTWISE 1e-6 /* same formula, same float roundings: equal up to libm ulps */
#define TOL_REDUCE 1e-5  /* reductions accumulated in double on both sides */
#define TOL_GEMM 1e-5    /* fp32 GEMM, summation order over k differs */
#define TOL_CONV 1e-4    /* cuDNN's fp32 algorithms (implicit GEMM, Winograd, FFT) */
/* bf16 outputs of ops that are not exact: where the two float32 results differ
 * in the last bits, rounding can put them one bf16 step (2^-8 relative) apart. */
#define TOL_BF16 4e-3

/* 1 + 2^-12 is exact in fp32 but rounds to 1 in TF32 (10 mantissa bits): GEMMs
 * and convolutions of such constants are exact in fp32 and off by 2.4e-4 in
 * TF32, which the tolerances above catch. */
#define TF32_PROBE (1.0f + 1.0f / 4096.0f)

static dat_ctx *cpu, *gpu;
static int self_test; /* DAT_TEST_BACKEND_OPS_SELF: "gpu" is a second CPU context */

/* An op only the CUDA backend has: its absence there fails; the self test's
 * CPU context lacks it, so the check is skipped there. */
#define REQUIRE_CUDA_OP(op)                                                               \
    do {                                                                                  \
        if (self_test && !gpu->be->op) {                                                  \
            printf("test_backend_ops: %s skipped: CUDA only\n", #op);                     \
            return;                                                                       \
        }                                                                                 \
        ck_assert_msg(gpu->be->op, "the CUDA backend has no %s", #op);                    \
    } while (0)

/* ---------------- buffers on both backends ---------------- */

/* The same n elements on both backends. The CPU backend's memory is host memory,
 * so c is read directly. */
typedef struct pair {
    size_t n, esize;
    void *c, *g;
} pair;

static pair pair_alloc(size_t n, size_t esize)
{
    pair p = {n, esize, NULL, NULL};
    ck_assert_dat_ok(cpu->be->alloc(cpu, n * esize, &p.c));
    ck_assert_dat_ok(gpu->be->alloc(gpu, n * esize, &p.g));
    return p;
}

static void pair_free(pair *p)
{
    cpu->be->free(cpu, p->c);
    gpu->be->free(gpu, p->g);
    p->c = p->g = NULL;
}

/* Copies the CPU side's bytes to the CUDA side. */
static void pair_sync(pair *p)
{
    ck_assert_dat_ok(gpu->be->copy_from_host(gpu, p->g, p->c, p->n * p->esize));
}

static void pair_write(pair *p, const void *host)
{
    memcpy(p->c, host, p->n * p->esize);
    pair_sync(p);
}

/* Each fill draws from its own Philox stream. */
static uint64_t next_stream = 1;

static pair pair_uniform(size_t n, float lo, float hi)
{
    pair p = pair_alloc(n, sizeof(float));
    ck_assert_dat_ok(cpu->be->rng_uniform(cpu, p.c, n, lo, hi, 20240607, next_stream++, NULL, 0));
    pair_sync(&p);
    return p;
}

static pair pair_const(size_t n, float v)
{
    pair p = pair_alloc(n, sizeof(float));
    ck_assert_dat_ok(cpu->be->fill(cpu, p.c, n, &v, sizeof v));
    pair_sync(&p);
    return p;
}

/* An output: NaN on the CUDA side, a finite garbage value on the CPU side. */
static pair pair_out(size_t n)
{
    pair p = pair_alloc(n, sizeof(float));
    float garbage = 1234.5f;
    uint32_t nan_bits = 0x7fc00000u;
    ck_assert_dat_ok(cpu->be->fill(cpu, p.c, n, &garbage, sizeof garbage));
    ck_assert_dat_ok(gpu->be->fill(gpu, p.g, n, &nan_bits, sizeof nan_bits));
    return p;
}

static pair pair_out_i32(size_t n)
{
    pair p = pair_alloc(n, sizeof(int32_t));
    int32_t garbage = -7, gpu_garbage = 0x7fc00000;
    ck_assert_dat_ok(cpu->be->fill(cpu, p.c, n, &garbage, sizeof garbage));
    ck_assert_dat_ok(gpu->be->fill(gpu, p.g, n, &gpu_garbage, sizeof gpu_garbage));
    return p;
}

static float *cpu_f(const pair *p)
{
    return (float *)p->c;
}

/* The CUDA side on the host (caller frees). */
static void *gpu_read(const pair *p)
{
    void *h = malloc(p->n * p->esize + 1);
    ck_assert_ptr_nonnull(h);
    ck_assert_dat_ok(gpu->be->copy_to_host(gpu, h, p->g, p->n * p->esize));
    return h;
}

/* ---------------- comparisons ---------------- */

static void expect_close_host(const char *op, const char *what, const char *shape,
                              const float *c, const float *g, size_t n, double tol)
{
    double num = 0, den = 0, worst = -1;
    size_t at = 0;
    for (size_t i = 0; i < n; ++i) {
        double d = (double)g[i] - (double)c[i];
        num += d * d;
        den += (double)c[i] * c[i];
        if (!(fabs(d) <= worst)) { /* also takes the first NaN */
            worst = fabs(d);
            at = i;
        }
    }
    double err = den > 0 ? sqrt(num / den) : sqrt(num);
    ck_assert_msg(err <= tol,
                  "%s %s (%s): normalized error %.3g > %.0e; largest difference at element "
                  "%zu of %zu: cpu %.9g, cuda %.9g",
                  op, what, shape, err, tol, at, n, n ? c[at] : 0.0f, n ? g[at] : 0.0f);
}

static void expect_close(const char *op, const char *what, const char *shape, const pair *p,
                         double tol)
{
    float *g = gpu_read(p);
    expect_close_host(op, what, shape, cpu_f(p), g, p->n, tol);
    free(g);
}

static void expect_same_bytes(const char *op, const char *what, const char *shape,
                              const pair *p)
{
    unsigned char *g = gpu_read(p);
    const unsigned char *c = p->c;
    for (size_t i = 0; i < p->n; ++i)
        if (memcmp(g + i * p->esize, c + i * p->esize, p->esize) != 0) {
            long long gv = 0, cv = 0;
            memcpy(&gv, g + i * p->esize, p->esize);
            memcpy(&cv, c + i * p->esize, p->esize);
            free(g);
            ck_abort_msg("%s %s (%s): element %zu of %zu differs: cpu 0x%llx, cuda 0x%llx", op,
                         what, shape, i, p->n, (unsigned long long)cv, (unsigned long long)gv);
        }
    free(g);
}

/* ---------------- activation formats ---------------- */

/* Layer ops run in every format: float32 inputs are converted on the CPU and the
 * bytes copied over, so both sides read the same values; outputs are converted
 * back to float32 NCHW on the host and compared there. */
static const dat_act_fmt all_fmts[] = {DAT_FMT_F32, DAT_FMT_NHWC, DAT_FMT_BF16,
                                       DAT_FMT_BF16_NHWC};
#define N_FMTS ((int)(sizeof all_fmts / sizeof *all_fmts))

static const char *fmt_name(dat_act_fmt f)
{
    static const char *names[] = {"f32 NCHW", "f32 NHWC", "bf16 NCHW", "bf16 NHWC"};
    return names[f & 3];
}

/* p (float32 NCHW, n x c x hw) in format f on both sides. */
static pair pair_in_fmt(const pair *p, dat_act_fmt f, int n, int c, int hw)
{
    pair q = pair_alloc((size_t)n * c * hw, dat_fmt_size(f));
    ck_assert_dat_ok(cpu->be->act_convert(cpu, n, c, hw, DAT_FMT_F32, p->c, NULL, NULL, f, q.c));
    pair_sync(&q);
    return q;
}

/* An output of `count` values in format f, poisoned as pair_out does. */
static pair pair_out_fmt(size_t count, dat_act_fmt f)
{
    if (!(f & DAT_FMT_BF16))
        return pair_out(count);
    pair p = pair_alloc(count, sizeof(uint16_t));
    uint16_t garbage = dat_f32_to_bf16_bits(1234.5f), nan_bits = 0x7fc0u;
    ck_assert_dat_ok(cpu->be->fill(cpu, p.c, count, &garbage, sizeof garbage));
    ck_assert_dat_ok(gpu->be->fill(gpu, p.g, count, &nan_bits, sizeof nan_bits));
    return p;
}

/* expect_close of output p, n x c x hw in format f; inexact ops get TOL_BF16
 * where f is bf16. */
static void expect_close_fmt(const char *op, const char *what, const char *shape, const pair *p,
                             dat_act_fmt f, int n, int c, int hw, double tol)
{
    size_t count = (size_t)n * c * hw;
    void *g = gpu_read(p);
    float *cf = malloc(count * sizeof(float) + 1), *gf = malloc(count * sizeof(float) + 1);
    ck_assert(cf && gf);
    ck_assert_dat_ok(cpu->be->act_convert(cpu, n, c, hw, f, p->c, NULL, NULL, DAT_FMT_F32, cf));
    ck_assert_dat_ok(cpu->be->act_convert(cpu, n, c, hw, f, g, NULL, NULL, DAT_FMT_F32, gf));
    char s2[256];
    snprintf(s2, sizeof s2, "%s, %s", shape, fmt_name(f));
    if ((f & DAT_FMT_BF16) && tol > TOL_ELTWISE && tol < TOL_BF16)
        tol = TOL_BF16;
    expect_close_host(op, what, s2, cf, gf, count, tol);
    free(cf);
    free(gf);
    free(g);
}

/* ---------------- running an op on both backends ---------------- */

/* Inside BOTH, P(x) is x's buffer on the backend being called. */
#define P(p) (side ? (p).g : (p).c)
/* Value k of pair p on this side: at an odd k, not 16-byte aligned, so the
 * CUDA kernels that move 16-byte packs must take their one-value path. */
#define AT(p, k) ((void *)((char *)P(p) + (size_t)(k) * (p).esize))

/* Calls op on the CPU backend, then on the CUDA backend, and waits for both. */
#define BOTH(op, ...)                                                              \
    for (int side = 0; side < 2; ++side) {                                         \
        dat_ctx *ctx_ = side ? gpu : cpu;                                          \
        ck_assert_dat_ok(ctx_->be->op(ctx_, __VA_ARGS__));                         \
        ck_assert_dat_ok(ctx_->be->synchronize(ctx_));                             \
    }

/* The CUDA backend must have op; without the CPU one there is nothing to compare. */
static int need(const char *op, int have_cpu, int have_gpu)
{
    ck_assert_msg(have_gpu, "the CUDA backend does not implement %s", op);
    if (!have_cpu)
        printf("test_backend_ops: %s skipped: the CPU backend does not implement it yet\n", op);
    return have_cpu;
}
#define NEED(op)                                                              \
    do {                                                                      \
        if (!need(#op, cpu->be->op != NULL, gpu->be->op != NULL))             \
            return;                                                           \
    } while (0)

/* ---------------- memory, fills, conversions, Philox ---------------- */

static void check_copy(void)
{
    NEED(copy);
    pair a = pair_uniform(100003, -1.0f, 1.0f), b = pair_out(100003);
    BOTH(copy, P(b), P(a), a.n * sizeof(float));
    expect_same_bytes("copy", "dst", "100003 floats", &b);
    pair_free(&a);
    pair_free(&b);
}

static void check_fill(void)
{
    NEED(fill);
    const uint32_t p4 = 0x3fc00001u;
    const uint16_t p2 = 0xbeefu;
    const uint8_t p1 = 0x5au;
    const void *pats[3] = {&p4, &p2, &p1};
    const size_t sizes[3] = {4, 2, 1};
    for (int k = 0; k < 3; ++k) {
        pair p = pair_alloc(100003, sizes[k]);
        BOTH(fill, P(p), p.n, pats[k], sizes[k]);
        char shape[64];
        snprintf(shape, sizeof shape, "100003 x %zu bytes", sizes[k]);
        expect_same_bytes("fill", "dst", shape, &p);
        pair_free(&p);
    }
}

static void check_f32_to_bf16(void)
{
    NEED(f32_to_bf16);
    pair x = pair_uniform(70000, -1000.0f, 1000.0f);
    /* Specials and rounding ties up front. */
    const uint32_t special[] = {0x7fc00000u, 0x7f800000u, 0xff800000u, 0x00000000u, 0x80000000u,
                                0x00000001u, 0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0xffffffffu};
    memcpy(x.c, special, sizeof special);
    pair_sync(&x);
    pair y = pair_alloc(x.n, sizeof(uint16_t));
    BOTH(f32_to_bf16, P(y), P(x), x.n);
    expect_same_bytes("f32_to_bf16", "dst", "70000 values and specials", &y);
    pair_free(&x);
    pair_free(&y);
}

static void check_bf16_to_f32(void)
{
    NEED(bf16_to_f32);
    pair x = pair_alloc(65536, sizeof(uint16_t)); /* every bfloat16 */
    for (size_t i = 0; i < x.n; ++i)
        ((uint16_t *)x.c)[i] = (uint16_t)i;
    pair_sync(&x);
    pair y = pair_alloc(x.n, sizeof(float));
    BOTH(bf16_to_f32, P(y), P(x), x.n);
    expect_same_bytes("bf16_to_f32", "dst", "all 65536 values", &y);
    pair_free(&x);
    pair_free(&y);
}

static void check_rng(int normal)
{
    pair p = pair_out(100003);
    if (normal)
        BOTH(rng_normal, P(p), p.n, 0.5f, 2.0f, 99, 5, NULL, 3)
    else
        BOTH(rng_uniform, P(p), p.n, -1.0f, 3.0f, 99, 5, NULL, 3)
    expect_same_bytes(normal ? "rng_normal" : "rng_uniform", "dst", "100003 at offset 3", &p);
    /* A step graph's stream: the low half from a counter in backend memory gives
     * the draws of the whole stream, here (7 << 32) | 5. */
    const uint64_t hi = (uint64_t)7 << 32, step = ((uint64_t)9 << 32) | 5; /* high half ignored */
    pair c = pair_alloc(1, sizeof step), q = pair_out(1001);
    pair_write(&c, &step);
    if (normal)
        BOTH(rng_normal, P(q), q.n, 0.5f, 2.0f, 99, hi, (const uint64_t *)P(c), 3)
    else
        BOTH(rng_uniform, P(q), q.n, -1.0f, 3.0f, 99, hi, (const uint64_t *)P(c), 3)
    expect_same_bytes(normal ? "rng_normal" : "rng_uniform", "dst", "stream_low", &q);
    float *want = malloc(q.n * sizeof *want);
    ck_assert_ptr_nonnull(want);
    if (normal)
        ck_assert_dat_ok(cpu->be->rng_normal(cpu, want, q.n, 0.5f, 2.0f, 99, hi | 5, NULL, 3));
    else
        ck_assert_dat_ok(cpu->be->rng_uniform(cpu, want, q.n, -1.0f, 3.0f, 99, hi | 5, NULL, 3));
    ck_assert_msg(memcmp(want, q.c, q.n * sizeof *want) == 0,
                  "stream_low: not the draws of stream (7 << 32) | 5");
    free(want);
    pair_free(&c);
    pair_free(&q);
    pair_free(&p);
}

static void check_rng_uniform(void)
{
    NEED(rng_uniform);
    check_rng(0);
}

static void check_rng_normal(void)
{
    NEED(rng_normal);
    check_rng(1);
}

/* ---------------- GEMM and linear layers ---------------- */

typedef struct gemm_case {
    int ta, tb, m, n, k;
    int pad_a, pad_b, pad_c; /* leading dimensions beyond the rows' lengths */
    float alpha, beta;
    int probe;               /* TF32 probe: constant operands */
    const char *what;
} gemm_case;

static const gemm_case gemm_cases[] = {
    {0, 1, 128, 128, 3136, 0, 0, 0, 1.0f, 0.0f, 0, "cnn_small fc1 forward"},
    {1, 0, 128, 3136, 128, 0, 0, 0, 1.0f, 1.0f, 0, "cnn_small fc1 weight gradient"},
    {0, 0, 128, 3136, 128, 0, 0, 0, 1.0f, 0.0f, 0, "cnn_small fc1 input gradient"},
    {0, 1, 64, 10, 512, 0, 0, 0, 1.0f, 0.0f, 0, "preact_resnet18 fc"},
    {1, 1, 37, 29, 53, 3, 5, 7, 0.5f, -1.5f, 0, "both transposed, padded"},
    {0, 0, 1, 1, 1, 0, 0, 0, -2.0f, 0.25f, 0, "1x1x1"},
    {0, 1, 16, 24, 200, 1, 2, 3, 1.0f, 0.0f, 1, "TF32 probe"},
};

static void check_gemm(void)
{
    NEED(gemm);
    for (size_t i = 0; i < sizeof gemm_cases / sizeof *gemm_cases; ++i) {
        const gemm_case *t = &gemm_cases[i];
        int ra = t->ta ? t->k : t->m, ca = t->ta ? t->m : t->k;
        int rb = t->tb ? t->n : t->k, cb = t->tb ? t->k : t->n;
        int lda = ca + t->pad_a, ldb = cb + t->pad_b, ldc = t->n + t->pad_c;
        size_t na = (size_t)ra * lda, nb = (size_t)rb * ldb, nc = (size_t)t->m * ldc;
        pair a = t->probe ? pair_const(na, TF32_PROBE) : pair_uniform(na, -1.0f, 1.0f);
        pair b = t->probe ? pair_const(nb, 1.0f) : pair_uniform(nb, -1.0f, 1.0f);
        pair c = t->beta == 0.0f ? pair_out(nc) : pair_uniform(nc, -1.0f, 1.0f);
        BOTH(gemm, t->ta, t->tb, t->m, t->n, t->k, t->alpha, P(a), lda, P(b), ldb, t->beta, P(c),
             ldc);
        char shape[160];
        snprintf(shape, sizeof shape, "%s: trans %d%d, m %d n %d k %d, ld %d/%d/%d, beta %g",
                 t->what, t->ta, t->tb, t->m, t->n, t->k, lda, ldb, ldc, t->beta);
        if (t->beta != 0.0f) { /* the padding of C too: it must stay as it was */
            expect_close("gemm", "C", shape, &c, TOL_GEMM);
        } else { /* the padding is NaN on the CUDA side only: the m x n block */
            float *g = gpu_read(&c), *hc = malloc((size_t)t->m * t->n * sizeof(float) + 1);
            float *hg = malloc((size_t)t->m * t->n * sizeof(float) + 1);
            ck_assert(hc && hg);
            for (int r = 0; r < t->m; ++r) {
                memcpy(hc + (size_t)r * t->n, cpu_f(&c) + (size_t)r * ldc, t->n * sizeof(float));
                memcpy(hg + (size_t)r * t->n, g + (size_t)r * ldc, t->n * sizeof(float));
            }
            expect_close_host("gemm", "C", shape, hc, hg, (size_t)t->m * t->n, TOL_GEMM);
            free(g);
            free(hc);
            free(hg);
        }
        pair_free(&a);
        pair_free(&b);
        pair_free(&c);
    }
}

typedef struct linear_case {
    int n, in, out;
    const char *what;
} linear_case;

static const linear_case linear_cases[] = {
    {128, 3136, 128, "cnn_small fc1"}, {128, 128, 10, "cnn_small fc2"},
    {64, 512, 10, "preact_resnet18 fc"}, {8, 640, 10, "wrn_28_10 fc"},
    {4, 2048, 1000, "resnet50 fc"}, {5, 7, 3, "odd"}, {1, 1, 1, "1x1"},
};

static void check_linear_fwd(void)
{
    NEED(linear_fwd);
    for (size_t i = 0; i < sizeof linear_cases / sizeof *linear_cases; ++i) {
        const linear_case *t = &linear_cases[i];
        pair x = pair_uniform((size_t)t->n * t->in, -1.0f, 1.0f);
        pair w = pair_uniform((size_t)t->out * t->in, -0.1f, 0.1f);
        pair b = pair_uniform((size_t)t->out, -0.5f, 0.5f);
        for (int with_bias = 0; with_bias < 2; ++with_bias) {
            pair y = pair_out((size_t)t->n * t->out);
            BOTH(linear_fwd, t->n, t->in, t->out, P(x), P(w), with_bias ? P(b) : NULL, P(y));
            char shape[128];
            snprintf(shape, sizeof shape, "%s: n %d, %d -> %d, bias %d", t->what, t->n, t->in,
                     t->out, with_bias);
            expect_close("linear_fwd", "y", shape, &y, TOL_GEMM);
            pair_free(&y);
        }
        pair_free(&x);
        pair_free(&w);
        pair_free(&b);
    }
}

static void check_linear_bwd(void)
{
    NEED(linear_bwd);
    for (size_t i = 0; i < sizeof linear_cases / sizeof *linear_cases; ++i) {
        const linear_case *t = &linear_cases[i];
        size_t nx = (size_t)t->n * t->in, nw = (size_t)t->out * t->in, ny = (size_t)t->n * t->out;
        pair x = pair_uniform(nx, -1.0f, 1.0f), w = pair_uniform(nw, -0.1f, 0.1f);
        pair dy = pair_uniform(ny, -1.0f, 1.0f);
        /* 0: everything, beta 0; 1: everything accumulated; 2: no dx; 3: dx only */
        for (int mode = 0; mode < 4; ++mode) {
            float beta = mode == 1 ? 1.0f : 0.0f;
            pair dx = pair_out(nx);
            pair dw = beta != 0 ? pair_uniform(nw, -1.0f, 1.0f) : pair_out(nw);
            pair db = beta != 0 ? pair_uniform((size_t)t->out, -1.0f, 1.0f) : pair_out(t->out);
            int want_dx = mode != 2, want_params = mode != 3;
            BOTH(linear_bwd, t->n, t->in, t->out, P(x), P(w), P(dy), want_dx ? P(dx) : NULL,
                 want_params ? P(dw) : NULL, want_params ? P(db) : NULL, beta);
            char shape[128];
            snprintf(shape, sizeof shape, "%s: n %d, %d -> %d, mode %d, beta %g", t->what, t->n,
                     t->in, t->out, mode, beta);
            if (want_dx)
                expect_close("linear_bwd", "dx", shape, &dx, TOL_GEMM);
            if (want_params) {
                expect_close("linear_bwd", "dw", shape, &dw, TOL_GEMM);
                expect_close("linear_bwd", "db", shape, &db, TOL_REDUCE);
            }
            pair_free(&dx);
            pair_free(&dw);
            pair_free(&db);
        }
        pair_free(&x);
        pair_free(&w);
        pair_free(&dy);
    }
}

/* ---------------- convolution ---------------- */

typedef struct conv_case {
    int n, c_in, h, w, c_out, k_h, k_w, stride, pad, bias;
    int probe; /* TF32 probe: constant inputs */
    const char *what;
} conv_case;

static const conv_case conv_cases[] = {
    {128, 1, 28, 28, 32, 3, 3, 1, 1, 1, 0, "cnn_small conv1"},
    {128, 32, 28, 28, 64, 3, 3, 2, 1, 1, 0, "cnn_small conv2"},
    {128, 64, 14, 14, 64, 3, 3, 2, 1, 1, 0, "cnn_small conv3"},
    {64, 3, 32, 32, 64, 3, 3, 1, 1, 0, 0, "preact_resnet18 stem"},
    {64, 64, 32, 32, 64, 3, 3, 1, 1, 0, 0, "preact_resnet18 layer1"},
    {64, 64, 32, 32, 128, 3, 3, 2, 1, 0, 0, "preact_resnet18 layer2 down"},
    {64, 64, 32, 32, 128, 1, 1, 2, 0, 0, 0, "preact_resnet18 layer2 shortcut"},
    {64, 128, 16, 16, 256, 3, 3, 2, 1, 0, 0, "preact_resnet18 layer3 down"},
    {64, 256, 8, 8, 512, 3, 3, 2, 1, 0, 0, "preact_resnet18 layer4 down"},
    {64, 256, 8, 8, 512, 1, 1, 2, 0, 0, 0, "preact_resnet18 layer4 shortcut"},
    {64, 512, 4, 4, 512, 3, 3, 1, 1, 0, 0, "preact_resnet18 layer4"},
    {8, 3, 32, 32, 16, 3, 3, 1, 1, 0, 0, "wrn_28_10 stem"},
    {8, 16, 32, 32, 160, 3, 3, 1, 1, 0, 0, "wrn_28_10 block1 widen"},
    {8, 16, 32, 32, 160, 1, 1, 1, 0, 0, 0, "wrn_28_10 block1 shortcut"},
    {8, 160, 32, 32, 160, 3, 3, 1, 1, 0, 0, "wrn_28_10 block1"},
    {8, 160, 32, 32, 320, 3, 3, 2, 1, 0, 0, "wrn_28_10 block2 down"},
    {8, 320, 16, 16, 640, 3, 3, 2, 1, 0, 0, "wrn_28_10 block3 down"},
    {8, 320, 16, 16, 640, 1, 1, 2, 0, 0, 0, "wrn_28_10 block3 shortcut"},
    {8, 640, 8, 8, 640, 3, 3, 1, 1, 0, 0, "wrn_28_10 block3"},
    {4, 3, 224, 224, 64, 7, 7, 2, 3, 0, 0, "resnet50 stem"},
    {4, 64, 56, 56, 256, 1, 1, 1, 0, 0, 0, "resnet50 layer1 expand"},
    {4, 256, 56, 56, 128, 1, 1, 1, 0, 0, 0, "resnet50 layer2 reduce"},
    {4, 128, 56, 56, 128, 3, 3, 2, 1, 0, 0, "resnet50 layer2 down"},
    {4, 1024, 14, 14, 2048, 1, 1, 2, 0, 0, 0, "resnet50 layer4 shortcut"},
    {4, 512, 7, 7, 2048, 1, 1, 1, 0, 0, 0, "resnet50 layer4 expand"},
    {4, 2048, 7, 7, 512, 1, 1, 1, 0, 0, 0, "resnet50 layer4 reduce"},
    {3, 5, 11, 7, 6, 5, 3, 2, 2, 1, 0, "rectangular kernel, odd sizes"},
    {2, 4, 9, 9, 3, 7, 7, 3, 0, 1, 0, "kernel nearly the input"},
    {2, 4, 8, 8, 4, 3, 3, 1, 1, 0, 1, "TF32 probe"},
};

/* which: 0 forward, 1 backward data, 2 backward filter; relu: the fused ReLU
 * (relu_out forward, a ReLU output as relu_mask backward), which a backend
 * honours whatever its fuses_conv_relu says. */
static void check_conv_case(const conv_case *t, int which, dat_act_fmt f, int relu)
{
    dat_conv_desc d = {.n = t->n, .c_in = t->c_in, .h_in = t->h, .w_in = t->w,
                       .c_out = t->c_out, .k_h = t->k_h, .k_w = t->k_w,
                       .stride = t->stride, .pad = t->pad, .fmt = f};
    ck_assert_dat_ok(dat_conv_desc_init("test_backend_ops", &d));
    size_t nx = (size_t)d.n * d.c_in * d.h_in * d.w_in;
    size_t nw = (size_t)d.c_out * d.c_in * d.k_h * d.k_w;
    size_t ny = (size_t)d.n * d.c_out * d.h_out * d.w_out;
    char shape[192];
    snprintf(shape, sizeof shape,
             "%s: n %d, %dx%dx%d -> %dx%dx%d, kernel %dx%d, stride %d, pad %d%s", t->what, d.n,
             d.c_in, d.h_in, d.w_in, d.c_out, d.h_out, d.w_out, d.k_h, d.k_w, d.stride, d.pad,
             relu ? ", fused ReLU" : "");
    int hw_in = d.h_in * d.w_in, hw_out = d.h_out * d.w_out, kk = d.k_h * d.k_w;
    pair x32 = t->probe ? pair_const(nx, TF32_PROBE) : pair_uniform(nx, -1.0f, 1.0f);
    pair w32 = t->probe ? pair_const(nw, 1.0f) : pair_uniform(nw, -0.2f, 0.2f);
    /* The weight gradient sees dy = 1 in the probe: sums of x stay exact. */
    pair dy32 = t->probe ? pair_const(ny, which == 2 ? 1.0f : TF32_PROBE)
                         : pair_uniform(ny, -1.0f, 1.0f);
    pair x = pair_in_fmt(&x32, f, d.n, d.c_in, hw_in);
    pair w = pair_in_fmt(&w32, f, d.c_out, d.c_in, kk);
    pair dy = pair_in_fmt(&dy32, f, d.n, d.c_out, hw_out);
    pair_free(&x32);
    pair_free(&w32);
    pair_free(&dy32);
    /* The ReLU's output, zeros and positives, on each side's descriptor. */
    pair mask = {0};
    dat_conv_desc e[2] = {d, d};
    if (relu && which == 0) {
        e[0].relu_out = e[1].relu_out = 1;
    } else if (relu) {
        pair m32 = pair_uniform(ny, -1.0f, 1.0f);
        for (size_t i = 0; i < ny; ++i)
            cpu_f(&m32)[i] = cpu_f(&m32)[i] > 0 ? cpu_f(&m32)[i] : 0.0f;
        mask = pair_in_fmt(&m32, f, d.n, d.c_out, hw_out);
        pair_free(&m32);
        e[0].relu_mask = mask.c;
        e[1].relu_mask = mask.g;
    }
    if (which == 0) {
        pair b = pair_uniform((size_t)d.c_out, -0.5f, 0.5f), y = pair_out_fmt(ny, f);
        BOTH(conv2d_fwd, &e[side], P(x), P(w), t->bias ? P(b) : NULL, P(y));
        expect_close_fmt("conv2d_fwd", "y", shape, &y, f, d.n, d.c_out, hw_out, TOL_CONV);
        pair_free(&b);
        pair_free(&y);
    } else if (which == 1) {
        for (int add = 0; add < 2; ++add) { /* overwriting dx, then adding to it (dx_add) */
            pair old32 = pair_uniform(nx, -1.0f, 1.0f);
            pair dx = add ? pair_in_fmt(&old32, f, d.n, d.c_in, hw_in) : pair_out_fmt(nx, f);
            pair_free(&old32);
            e[0].dx_add = e[1].dx_add = add;
            BOTH(conv2d_bwd_data, &e[side], P(dy), P(w), P(dx));
            char s2[224];
            snprintf(s2, sizeof s2, "%s%s", shape, add ? ", dx_add" : "");
            expect_close_fmt("conv2d_bwd_data", "dx", s2, &dx, f, d.n, d.c_in, hw_in, TOL_CONV);
            pair_free(&dx);
        }
    } else {
        for (int acc = 0; acc < 2; ++acc) {
            float beta = acc ? 1.0f : 0.0f;
            pair dw = acc ? pair_uniform(nw, -1.0f, 1.0f) : pair_out(nw);
            pair db = acc ? pair_uniform((size_t)d.c_out, -1.0f, 1.0f) : pair_out(d.c_out);
            /* With a bias the layer has one; without, dbias NULL must work. */
            BOTH(conv2d_bwd_filter, &e[side], P(x), P(dy), P(dw), t->bias ? P(db) : NULL, beta);
            char s2[224];
            snprintf(s2, sizeof s2, "%s, beta %g, %s", shape, beta, fmt_name(f));
            /* dw is float32 in every format, but computed in bf16 in a bf16 one. */
            expect_close("conv2d_bwd_filter", "dw", s2, &dw,
                         (f & DAT_FMT_BF16) ? TOL_BF16 : TOL_CONV);
            if (t->bias)
                expect_close("conv2d_bwd_filter", "dbias", s2, &db, TOL_REDUCE);
            pair_free(&dw);
            pair_free(&db);
        }
    }
    pair_free(&x);
    pair_free(&w);
    pair_free(&dy);
    if (relu && which != 0)
        pair_free(&mask);
}

static void check_conv(int which)
{
    for (int k = 0; k < N_FMTS; ++k) {
        for (size_t i = 0; i < sizeof conv_cases / sizeof *conv_cases; ++i)
            check_conv_case(&conv_cases[i], which, all_fmts[k], 0);
        /* Once more at the first shape: the cached algorithm must give the same answer. */
        check_conv_case(&conv_cases[0], which, all_fmts[k], 0);
        /* With the fused ReLU: cnn_small's first convolution, and odd sizes. */
        check_conv_case(&conv_cases[0], which, all_fmts[k], 1);
        check_conv_case(&conv_cases[11], which, all_fmts[k], 1);
    }
}

static void check_conv2d_fwd(void)
{
    NEED(conv2d_fwd);
    check_conv(0);
}

static void check_conv2d_bwd_data(void)
{
    NEED(conv2d_bwd_data);
    check_conv(1);
}

static void check_conv2d_bwd_filter(void)
{
    NEED(conv2d_bwd_filter);
    check_conv(2);
}

/* ---------------- batch norm ---------------- */

typedef struct bn_case {
    int n, c, hw;
    float lo, hi; /* range of x */
    const char *what;
} bn_case;

static const bn_case bn_cases[] = {
    {64, 64, 1024, -1.0f, 3.0f, "preact_resnet18 layer1"},
    {64, 128, 256, -1.0f, 3.0f, "preact_resnet18 layer2"},
    {64, 256, 64, -1.0f, 3.0f, "preact_resnet18 layer3"},
    {64, 512, 16, -1.0f, 3.0f, "preact_resnet18 layer4"},
    {32, 16, 49, -1.0f, 3.0f, "7x7 planes (resnet50's last stage)"},
    /* NHWC: more packs than the per-channel map's threads, whose grid is then a
     * multiple of 3 blocks so that each thread keeps its channels. */
    {96, 24, 1024, -1.0f, 3.0f, "24 channels"},
    {64, 64, 256, 99.98f, 100.02f, "|mean| >> std"},
    {3, 5, 7, -2.0f, 1.0f, "odd"},
    {2, 4, 1, -1.0f, 1.0f, "two values per channel"},
    {1, 3, 1, -1.0f, 1.0f, "one value per channel"},
};

typedef struct bn_data {
    dat_bn_desc d;
    size_t total;
    pair x32;                 /* x in float32 NCHW */
    pair x, gamma, beta, rmean, rvar, dy; /* x and dy in d.fmt */
    char shape[128];
} bn_data;

static bn_data bn_make(const bn_case *t, dat_act_fmt f)
{
    bn_data b;
    b.d = (dat_bn_desc){.n = t->n, .c = t->c, .hw = t->hw, .eps = 1e-5f, .momentum = 0.1f,
                        .fmt = f};
    b.total = (size_t)t->n * t->c * t->hw;
    b.x32 = pair_uniform(b.total, t->lo, t->hi);
    b.x = pair_in_fmt(&b.x32, f, t->n, t->c, t->hw);
    b.gamma = pair_uniform(t->c, 0.5f, 1.5f);
    b.beta = pair_uniform(t->c, -0.5f, 0.5f);
    b.rmean = pair_uniform(t->c, -0.5f, 0.5f);
    b.rvar = pair_uniform(t->c, 0.5f, 1.5f);
    pair dy32 = pair_uniform(b.total, -1.0f, 1.0f);
    b.dy = pair_in_fmt(&dy32, f, t->n, t->c, t->hw);
    pair_free(&dy32);
    snprintf(b.shape, sizeof b.shape, "%s: n %d, c %d, hw %d", t->what, t->n, t->c, t->hw);
    return b;
}

/* An output of b's shape in its format, and its comparison. */
static pair bn_out(const bn_data *b)
{
    return pair_out_fmt(b->total, b->d.fmt);
}

static void bn_expect(const char *op, const char *what, const char *shape, const bn_data *b,
                      const pair *p)
{
    expect_close_fmt(op, what, shape, p, b->d.fmt, b->d.n, b->d.c, b->d.hw, TOL_REDUCE);
}

static void bn_free(bn_data *b)
{
    pair_free(&b->x32);
    pair_free(&b->x);
    pair_free(&b->gamma);
    pair_free(&b->beta);
    pair_free(&b->rmean);
    pair_free(&b->rvar);
    pair_free(&b->dy);
}

/* b's descriptor for one side of BOTH, with a fused ReLU: its output (relu_out),
 * its mask (mask, a pair; NULL: none). */
static const dat_bn_desc *bn_side(const bn_data *b, int relu_out, const pair *mask, int side)
{
    static dat_bn_desc e[2];
    e[side] = b->d;
    e[side].relu_out = relu_out;
    e[side].relu_mask = mask ? (side ? mask->g : mask->c) : NULL;
    return &e[side];
}

static void check_bn_fwd_train(void)
{
    NEED(bn_fwd_train);
    for (int k = 0; k < N_FMTS; ++k)
    for (size_t i = 0; i < sizeof bn_cases / sizeof *bn_cases; ++i) {
        bn_data b = bn_make(&bn_cases[i], all_fmts[k]);
        /* running statistics updated, NULL, then updated with a fused ReLU; 3, 4:
         * updated, dy added after the batch norm (residual), without and with the
         * ReLU after the add */
        for (int mode = 0; mode < 5; ++mode) {
            int update = mode != 1, relu = mode == 2 || mode == 4, residual = mode >= 3;
            pair y = bn_out(&b), sm = pair_out(b.d.c), si = pair_out(b.d.c);
            dat_bn_desc d[2];
            for (int side = 0; side < 2; ++side) {
                d[side] = *bn_side(&b, relu, NULL, side);
                d[side].residual = residual ? (side ? b.dy.g : b.dy.c) : NULL;
            }
            BOTH(bn_fwd_train, &d[side], P(b.x), P(b.gamma), P(b.beta),
                 update ? P(b.rmean) : NULL, update ? P(b.rvar) : NULL, P(sm), P(si), P(y));
            char shape[200];
            snprintf(shape, sizeof shape, "%s, running %s%s%s, %s", b.shape,
                     update ? "updated" : "NULL", residual ? ", + residual" : "",
                     relu ? ", fused ReLU" : "", fmt_name(b.d.fmt));
            bn_expect("bn_fwd_train", "y", shape, &b, &y);
            expect_close("bn_fwd_train", "save_mean", shape, &sm, TOL_REDUCE);
            expect_close("bn_fwd_train", "save_invstd", shape, &si, TOL_REDUCE);
            /* After the NULL call too: the values of the updates so far. */
            expect_close("bn_fwd_train", "running_mean", shape, &b.rmean, TOL_REDUCE);
            expect_close("bn_fwd_train", "running_var", shape, &b.rvar, TOL_REDUCE);
            pair_free(&y);
            pair_free(&sm);
            pair_free(&si);
        }
        bn_free(&b);
    }
}

static void check_bn_fwd_eval(void)
{
    NEED(bn_fwd_eval);
    for (int k = 0; k < N_FMTS; ++k)
    for (size_t i = 0; i < sizeof bn_cases / sizeof *bn_cases; ++i) {
        bn_data b = bn_make(&bn_cases[i], all_fmts[k]);
        /* mode 0, 1: without, with a fused ReLU; 2, 3: the same normalizing x + dy,
         * the residual add before it (x2), whose sum is an output too; 4, 5: dy
         * added after it (residual), the ReLU after the add */
        for (int mode = 0; mode < 6; ++mode) {
            int relu = mode & 1, add = mode >> 1;
            pair y = bn_out(&b), sum = bn_out(&b);
            dat_bn_desc d[2];
            for (int side = 0; side < 2; ++side) {
                const void *dy = side ? b.dy.g : b.dy.c;
                d[side] = *bn_side(&b, relu, NULL, side);
                d[side].x2 = add == 1 ? dy : NULL;
                d[side].x_sum = add == 1 ? (side ? sum.g : sum.c) : NULL;
                d[side].residual = add == 2 ? dy : NULL;
            }
            BOTH(bn_fwd_eval, &d[side], P(b.x), P(b.gamma), P(b.beta), P(b.rmean), P(b.rvar),
                 P(y));
            char shape[160];
            snprintf(shape, sizeof shape, "%s%s%s", b.shape,
                     add == 1 ? ", x + x2" : add == 2 ? ", + residual" : "",
                     relu ? ", fused ReLU" : "");
            /* Coefficients from the running statistics, computed alike, and each product
             * and sum rounded as the CPU's: the same bits. */
            expect_same_bytes("bn_fwd_eval", "y", shape, &y);
            if (add == 1)
                expect_same_bytes("bn_fwd_eval", "x_sum", shape, &sum);
            pair_free(&y);
            pair_free(&sum);
        }
        bn_free(&b);
    }
}

/* The saved statistics of x (what bn_fwd_train saves), computed here in double. */
static void bn_saved(const bn_data *b, pair *sm, pair *si)
{
    const float *x = cpu_f(&b->x32);
    for (int c = 0; c < b->d.c; ++c) {
        double s = 0, q = 0, count = (double)b->d.n * b->d.hw;
        for (int i = 0; i < b->d.n; ++i)
            for (int k = 0; k < b->d.hw; ++k)
                s += x[((size_t)i * b->d.c + c) * b->d.hw + k];
        double m = s / count;
        for (int i = 0; i < b->d.n; ++i)
            for (int k = 0; k < b->d.hw; ++k) {
                double v = x[((size_t)i * b->d.c + c) * b->d.hw + k] - m;
                q += v * v;
            }
        cpu_f(sm)[c] = (float)m;
        cpu_f(si)[c] = (float)(1.0 / sqrt(q / count + b->d.eps));
    }
    pair_sync(sm);
    pair_sync(si);
}

static void check_bn_bwd(int train)
{
    const char *op = train ? "bn_bwd_train" : "bn_bwd_eval";
    for (int k = 0; k < N_FMTS; ++k)
    for (size_t i = 0; i < sizeof bn_cases / sizeof *bn_cases; ++i) {
        bn_data b = bn_make(&bn_cases[i], all_fmts[k]);
        pair sm = pair_alloc(b.d.c, sizeof(float)), si = pair_alloc(b.d.c, sizeof(float));
        bn_saved(&b, &sm, &si);
        /* A fused ReLU's output: half of it 0. */
        pair mask32 = pair_uniform(b.total, -1.0f, 1.0f);
        for (size_t j = 0; j < b.total; ++j)
            cpu_f(&mask32)[j] = cpu_f(&mask32)[j] > 0.0f ? cpu_f(&mask32)[j] : 0.0f;
        pair mask = pair_in_fmt(&mask32, b.d.fmt, b.d.n, b.d.c, b.d.hw);
        pair_free(&mask32);
        /* 0: all outputs, beta 0; 1: accumulated; 2: dx only; 3: 0 with a fused ReLU;
         * 4: 3 adding dx to what it holds (dx_add) */
        for (int mode = 0; mode < 5; ++mode) {
            float beta = mode == 1 ? 1.0f : 0.0f;
            const pair *mk = mode >= 3 ? &mask : NULL;
            pair old32 = pair_uniform(b.total, -1.0f, 1.0f);
            pair dx = mode == 4 ? pair_in_fmt(&old32, b.d.fmt, b.d.n, b.d.c, b.d.hw) : bn_out(&b);
            pair_free(&old32);
            b.d.dx_add = mode == 4;
            pair dg = mode == 1 ? pair_uniform(b.d.c, -1.0f, 1.0f) : pair_out(b.d.c);
            pair db = mode == 1 ? pair_uniform(b.d.c, -1.0f, 1.0f) : pair_out(b.d.c);
            int params = mode != 2;
            if (train)
                BOTH(bn_bwd_train, bn_side(&b, 0, mk, side), P(b.x), P(b.dy), P(b.gamma), P(sm),
                     P(si), P(dx), params ? P(dg) : NULL, params ? P(db) : NULL, beta)
            else
                BOTH(bn_bwd_eval, bn_side(&b, 0, mk, side), P(b.x), P(b.dy), P(b.gamma),
                     P(b.rmean), P(b.rvar), P(dx), params ? P(dg) : NULL, params ? P(db) : NULL,
                     beta)
            char shape[160];
            snprintf(shape, sizeof shape, "%s, mode %d, beta %g, %s", b.shape, mode, beta,
                     fmt_name(b.d.fmt));
            if (train)
                bn_expect(op, "dx", shape, &b, &dx);
            else /* the CPU's bits, as bn_fwd_eval's */
                expect_same_bytes(op, "dx", shape, &dx);
            if (params) {
                expect_close(op, "dgamma", shape, &dg, TOL_REDUCE);
                expect_close(op, "dbeta", shape, &db, TOL_REDUCE);
            }
            pair_free(&dx);
            pair_free(&dg);
            pair_free(&db);
        }
        pair_free(&mask);
        pair_free(&sm);
        pair_free(&si);
        bn_free(&b);
    }
}

static void check_bn_bwd_train(void)
{
    NEED(bn_bwd_train);
    check_bn_bwd(1);
}

static void check_bn_bwd_eval(void)
{
    NEED(bn_bwd_eval);
    check_bn_bwd(0);
}

/* ---------------- element-wise ops ---------------- */

static const size_t eltwise_sizes[] = {1, 1000, 64 * 64 * 32 * 32 + 3};

/* The element-wise ops in each value type (their layout does not matter). */
static const dat_act_fmt value_fmts[] = {DAT_FMT_F32, DAT_FMT_BF16};

static void check_relu_fwd(void)
{
    NEED(relu_fwd);
    for (int k = 0; k < 2; ++k)
    for (size_t i = 0; i < sizeof eltwise_sizes / sizeof *eltwise_sizes; ++i) {
        dat_act_fmt f = value_fmts[k];
        size_t n = eltwise_sizes[i];
        pair x32 = pair_uniform(n, -1.0f, 1.0f);
        for (size_t j = 0; j < n; j += 7) /* exact zeros of both signs */
            cpu_f(&x32)[j] = j % 14 ? 0.0f : -0.0f;
        pair x = pair_in_fmt(&x32, f, (int)n, 1, 1), y = pair_out_fmt(n, f);
        char shape[64];
        snprintf(shape, sizeof shape, "n %zu", n);
        BOTH(relu_fwd, f, n, P(x), P(y));
        expect_close_fmt("relu_fwd", "y", shape, &y, f, (int)n, 1, 1, TOL_ELTWISE);
        if (n > 1) { /* the input one value further: misaligned */
            pair y1 = pair_out_fmt(n, f);
            BOTH(relu_fwd, f, n - 1, AT(x, 1), P(y1));
            expect_close_fmt("relu_fwd", "y (input at offset 1)", shape, &y1, f, (int)n - 1, 1,
                             1, TOL_ELTWISE);
            pair_free(&y1);
        }
        BOTH(relu_fwd, f, n, P(x), P(x)); /* in place */
        expect_close_fmt("relu_fwd", "y (in place)", shape, &x, f, (int)n, 1, 1, TOL_ELTWISE);
        pair_free(&x32);
        pair_free(&x);
        pair_free(&y);
    }
}

static void check_relu_bwd(void)
{
    NEED(relu_bwd);
    for (int k = 0; k < 2; ++k)
    for (size_t i = 0; i < sizeof eltwise_sizes / sizeof *eltwise_sizes; ++i) {
        dat_act_fmt f = value_fmts[k];
        size_t n = eltwise_sizes[i];
        pair y32 = pair_uniform(n, -1.0f, 1.0f), dy32 = pair_uniform(n, -1.0f, 1.0f);
        for (size_t j = 0; j < n; ++j) /* a ReLU output: zeros and positives */
            cpu_f(&y32)[j] = cpu_f(&y32)[j] > 0 ? cpu_f(&y32)[j] : 0.0f;
        pair y = pair_in_fmt(&y32, f, (int)n, 1, 1), dy = pair_in_fmt(&dy32, f, (int)n, 1, 1);
        pair dx = pair_out_fmt(n, f);
        char shape[64];
        snprintf(shape, sizeof shape, "n %zu", n);
        BOTH(relu_bwd, f, n, P(y), P(dy), P(dx));
        expect_close_fmt("relu_bwd", "dx", shape, &dx, f, (int)n, 1, 1, TOL_ELTWISE);
        if (n > 1) { /* y one value further: misaligned */
            pair dx1 = pair_out_fmt(n, f);
            BOTH(relu_bwd, f, n - 1, AT(y, 1), P(dy), P(dx1));
            expect_close_fmt("relu_bwd", "dx (y at offset 1)", shape, &dx1, f, (int)n - 1, 1, 1,
                             TOL_ELTWISE);
            pair_free(&dx1);
        }
        BOTH(relu_bwd, f, n, P(y), P(dy), P(dy)); /* in place */
        expect_close_fmt("relu_bwd", "dx (in place)", shape, &dy, f, (int)n, 1, 1, TOL_ELTWISE);
        pair_free(&y32);
        pair_free(&dy32);
        pair_free(&y);
        pair_free(&dy);
        pair_free(&dx);
    }
}

/* Every pair of formats, with and without the affine map; in place where the
 * formats agree. */
static void check_act_convert(void)
{
    NEED(act_convert);
    const int shapes[][3] = {{128, 1, 784}, {64, 3, 1024}, {5, 7, 3}, {1, 1, 1}, {4, 64, 64}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; ++i) {
        int n = shapes[i][0], c = shapes[i][1], hw = shapes[i][2];
        size_t total = (size_t)n * c * hw;
        pair x32 = pair_uniform(total, -1.0f, 2.0f);
        pair scale = pair_uniform(c, 2.0f, 5.0f), shift = pair_uniform(c, -2.0f, 0.0f);
        for (int a = 0; a < N_FMTS; ++a)
            for (int b = 0; b < N_FMTS; ++b)
                for (int affine = 0; affine < 3; ++affine) { /* none, scale, scale + shift */
                    dat_act_fmt fa = all_fmts[a], fb = all_fmts[b];
                    pair x = pair_in_fmt(&x32, fa, n, c, hw), y = pair_out_fmt(total, fb);
                    const char *how[] = {"no affine", "scale", "scale and shift"};
                    char shape[128];
                    snprintf(shape, sizeof shape, "n %d, c %d, hw %d, %s from %s", n, c, hw,
                             how[affine], fmt_name(fa));
                    BOTH(act_convert, n, c, hw, fa, P(x), affine ? P(scale) : NULL,
                         affine == 2 ? P(shift) : NULL, fb, P(y));
                    expect_close_fmt("act_convert", "dst", shape, &y, fb, n, c, hw, TOL_ELTWISE);
                    if (fa == fb) {
                        BOTH(act_convert, n, c, hw, fa, P(x), affine ? P(scale) : NULL,
                             affine == 2 ? P(shift) : NULL, fa, P(x));
                        expect_close_fmt("act_convert", "dst (in place)", shape, &x, fa, n, c,
                                         hw, TOL_ELTWISE);
                    }
                    pair_free(&x);
                    pair_free(&y);
                }
        pair_free(&x32);
        pair_free(&scale);
        pair_free(&shift);
    }
}

/* add, or add_relu (relu): y = a + b, then the ReLU, on both sides. */
#define BOTH_ADD(relu, ...)                                                        \
    do {                                                                           \
        if (relu)                                                                  \
            BOTH(add_relu, __VA_ARGS__)                                            \
        else                                                                       \
            BOTH(add, __VA_ARGS__)                                                 \
    } while (0)

static void check_adds(int relu)
{
    const char *op = relu ? "add_relu" : "add";
    for (int k = 0; k < 2; ++k)
    for (size_t i = 0; i < sizeof eltwise_sizes / sizeof *eltwise_sizes; ++i) {
        dat_act_fmt f = value_fmts[k];
        size_t n = eltwise_sizes[i];
        int ni = (int)n;
        pair a32 = pair_uniform(n, -1.0f, 1.0f), b32 = pair_uniform(n, -1.0f, 1.0f);
        for (size_t j = 0; relu && j < n; j += 5) /* sums of exactly 0, and NaN (ReLU: 0) */
            cpu_f(&b32)[j] = j % 10 ? -cpu_f(&a32)[j] : NAN;
        pair a = pair_in_fmt(&a32, f, ni, 1, 1), b = pair_in_fmt(&b32, f, ni, 1, 1);
        pair y = pair_out_fmt(n, f);
        char shape[64];
        snprintf(shape, sizeof shape, "n %zu", n);
        BOTH_ADD(relu, f, n, P(a), P(b), P(y));
        expect_close_fmt(op, "y", shape, &y, f, ni, 1, 1, TOL_ELTWISE);
        if (n > 1) { /* b one value further: misaligned */
            pair y1 = pair_out_fmt(n, f);
            BOTH_ADD(relu, f, n - 1, P(a), AT(b, 1), P(y1));
            expect_close_fmt(op, "y (b at offset 1)", shape, &y1, f, ni - 1, 1, 1, TOL_ELTWISE);
            pair_free(&y1);
        }
        BOTH_ADD(relu, f, n, P(a), P(b), P(a)); /* y aliases a: accumulation */
        expect_close_fmt(op, "y (= a)", shape, &a, f, ni, 1, 1, TOL_ELTWISE);
        BOTH_ADD(relu, f, n, P(a), P(b), P(b)); /* y aliases b */
        expect_close_fmt(op, "y (= b)", shape, &b, f, ni, 1, 1, TOL_ELTWISE);
        pair_free(&a32);
        pair_free(&b32);
        pair_free(&a);
        pair_free(&b);
        pair_free(&y);
    }
}

static void check_add(void)
{
    NEED(add);
    check_adds(0);
}

static void check_add_relu(void)
{
    NEED(add_relu);
    check_adds(1);
}

static void check_axpy(void)
{
    NEED(axpy);
    for (size_t i = 0; i < sizeof eltwise_sizes / sizeof *eltwise_sizes; ++i) {
        size_t n = eltwise_sizes[i];
        pair x = pair_uniform(n, -1.0f, 1.0f), y = pair_uniform(n, -1.0f, 1.0f);
        char shape[64];
        snprintf(shape, sizeof shape, "n %zu", n);
        BOTH(axpy, n, -0.37f, P(x), P(y));
        expect_close("axpy", "y", shape, &y, TOL_ELTWISE);
        pair_free(&x);
        pair_free(&y);
    }
}

static void check_scale(void)
{
    NEED(scale);
    for (size_t i = 0; i < sizeof eltwise_sizes / sizeof *eltwise_sizes; ++i) {
        size_t n = eltwise_sizes[i];
        pair x = pair_uniform(n, -1.0f, 1.0f);
        char shape[64];
        snprintf(shape, sizeof shape, "n %zu", n);
        BOTH(scale, n, 1.7f, P(x));
        expect_close("scale", "x", shape, &x, TOL_ELTWISE);
        pair_free(&x);
    }
}

/* ---------------- pooling ---------------- */

typedef struct pool_case {
    dat_pool_kind kind;
    int n, c, h, w, k, stride, pad;
    int ties; /* x takes 4 values only: many ties for the argmax */
    const char *what;
} pool_case;

static const pool_case pool_cases[] = {
    {DAT_POOL_MAX, 64, 64, 32, 32, 3, 2, 1, 0, "overlapping windows, padded"},
    {DAT_POOL_MAX, 128, 32, 28, 28, 2, 2, 0, 1, "2x2 with ties"},
    {DAT_POOL_MAX, 8, 3, 7, 5, 2, 2, 0, 0, "odd sizes"},
    {DAT_POOL_MAX, 2, 3, 9, 9, 3, 1, 1, 1, "stride 1 with ties"},
    {DAT_POOL_AVG, 64, 512, 4, 4, 4, 4, 0, 0, "preact_resnet18 head"},
    {DAT_POOL_AVG, 8, 640, 8, 8, 8, 8, 0, 0, "wrn_28_10 head"},
    {DAT_POOL_AVG, 4, 2048, 7, 7, 7, 7, 0, 0, "resnet50 head"},
    {DAT_POOL_MAX, 4, 64, 112, 112, 3, 2, 1, 0, "resnet50 stem pool"},
    {DAT_POOL_AVG, 4, 6, 9, 9, 3, 1, 1, 0, "stride 1, padding counted"},
    {DAT_POOL_AVG, 2, 3, 5, 5, 2, 2, 1, 0, "padded 2x2"},
    {DAT_POOL_AVG, 3, 2, 8, 8, 3, 3, 0, 0, "stride 3"},
    {DAT_POOL_AVG, 2, 3, 96, 96, 96, 1, 0, 0, "global over 96x96 (sums in double)"},
};

static dat_pool_desc pool_desc_of(const pool_case *t, dat_act_fmt f, char *shape, size_t len)
{
    dat_pool_desc d = {.kind = t->kind, .n = t->n, .c = t->c, .h_in = t->h, .w_in = t->w,
                       .k = t->k, .stride = t->stride, .pad = t->pad, .fmt = f};
    ck_assert_dat_ok(dat_pool_desc_init("test_backend_ops", &d));
    snprintf(shape, len, "%s %s: n %d, c %d, %dx%d -> %dx%d, k %d, stride %d, pad %d, %s",
             t->kind == DAT_POOL_MAX ? "max" : "avg", t->what, d.n, d.c, d.h_in, d.w_in,
             d.h_out, d.w_out, d.k, d.stride, d.pad, fmt_name(f));
    return d;
}

static pair pool_input(const pool_case *t, const dat_pool_desc *d)
{
    size_t n = (size_t)d->n * d->c * d->h_in * d->w_in;
    pair x = pair_uniform(n, t->ties ? 0.0f : -1.0f, t->ties ? 4.0f : 1.0f);
    if (t->ties)
        for (size_t i = 0; i < n; ++i)
            cpu_f(&x)[i] = floorf(cpu_f(&x)[i]);
    pair xf = pair_in_fmt(&x, d->fmt, d->n, d->c, d->h_in * d->w_in);
    pair_free(&x);
    return xf;
}

static void check_pool_fwd(void)
{
    NEED(pool_fwd);
    for (int k = 0; k < N_FMTS; ++k)
    for (size_t i = 0; i < sizeof pool_cases / sizeof *pool_cases; ++i) {
        const pool_case *t = &pool_cases[i];
        char shape[192];
        dat_pool_desc d = pool_desc_of(t, all_fmts[k], shape, sizeof shape);
        size_t ny = (size_t)d.n * d.c * d.h_out * d.w_out;
        pair x = pool_input(t, &d), y = pair_out_fmt(ny, d.fmt), idx = pair_out_i32(ny);
        int max = t->kind == DAT_POOL_MAX;
        BOTH(pool_fwd, &d, P(x), P(y), max ? P(idx) : NULL);
        if (max) {
            expect_same_bytes("pool_fwd", "y", shape, &y);
            expect_same_bytes("pool_fwd", "idx", shape, &idx);
        } else {
            expect_close_fmt("pool_fwd", "y", shape, &y, d.fmt, d.n, d.c, d.h_out * d.w_out,
                             TOL_ELTWISE);
        }
        pair_free(&x);
        pair_free(&y);
        pair_free(&idx);
    }
}

static void check_pool_bwd(void)
{
    NEED(pool_bwd);
    NEED(pool_fwd); /* for the argmax indices */
    for (int k = 0; k < N_FMTS; ++k)
    for (size_t i = 0; i < sizeof pool_cases / sizeof *pool_cases; ++i) {
        const pool_case *t = &pool_cases[i];
        char shape[192];
        dat_pool_desc d = pool_desc_of(t, all_fmts[k], shape, sizeof shape);
        size_t nx = (size_t)d.n * d.c * d.h_in * d.w_in, ny = (size_t)d.n * d.c * d.h_out * d.w_out;
        pair x = pool_input(t, &d), y = pair_out_fmt(ny, d.fmt), idx = pair_out_i32(ny);
        int max = t->kind == DAT_POOL_MAX;
        /* Both sides get the CPU's indices. */
        ck_assert_dat_ok(cpu->be->pool_fwd(cpu, &d, x.c, y.c, max ? idx.c : NULL));
        pair_sync(&idx);
        pair dy32 = pair_uniform(ny, -1.0f, 1.0f), dx = pair_out_fmt(nx, d.fmt);
        pair dy = pair_in_fmt(&dy32, d.fmt, d.n, d.c, d.h_out * d.w_out);
        pair_free(&dy32);
        BOTH(pool_bwd, &d, P(dy), max ? P(idx) : NULL, P(dx));
        /* Overlapping windows add in an order of the backend's: bf16 may round apart. */
        expect_close_fmt("pool_bwd", "dx", shape, &dx, d.fmt, d.n, d.c, d.h_in * d.w_in,
                         (d.fmt & DAT_FMT_BF16) ? TOL_BF16 : TOL_ELTWISE);
        pair_free(&x);
        pair_free(&y);
        pair_free(&idx);
        pair_free(&dy);
        pair_free(&dx);
    }
}

/* ---------------- losses ---------------- */

typedef struct loss_case {
    int n, classes;
    float range; /* logits in [-range, range] */
} loss_case;

static const loss_case loss_cases[] = {
    {128, 10, 8.0f}, {64, 10, 8.0f}, {7, 1000, 80.0f}, {33, 37, 80.0f}, {5, 1, 3.0f},
    {16, 10, 1e30f}, /* in {-1e30, 0, 1e30}: ties at the max, log s kept apart from it */
};

/* Logits uniform in +-range; huge ranges are rounded to multiples of the range,
 * so that rows tie at their max (where m + log s would lose log s). */
static pair logits_for(const loss_case *t)
{
    size_t nz = (size_t)t->n * t->classes;
    pair z = pair_uniform(nz, -t->range, t->range);
    if (t->range >= 1e20f) {
        for (size_t j = 0; j < nz; ++j)
            cpu_f(&z)[j] = rintf(cpu_f(&z)[j] / t->range) * t->range;
        pair_sync(&z);
    }
    return z;
}

static pair labels_for(int n, int classes)
{
    pair u = pair_uniform((size_t)n, 0.0f, (float)classes);
    pair l = pair_alloc((size_t)n, sizeof(int32_t));
    for (int i = 0; i < n; ++i) {
        int v = (int)cpu_f(&u)[i];
        ((int32_t *)l.c)[i] = v < classes ? v : classes - 1;
    }
    pair_sync(&l);
    pair_free(&u);
    return l;
}

static void check_softmax_xent(void)
{
    NEED(softmax_xent);
    for (size_t i = 0; i < sizeof loss_cases / sizeof *loss_cases; ++i) {
        const loss_case *t = &loss_cases[i];
        size_t nz = (size_t)t->n * t->classes;
        pair z = logits_for(t), y = labels_for(t->n, t->classes);
        pair wts = pair_uniform((size_t)t->n, 0.0f, 2.0f);
        float scale = 1.0f / (float)t->n;
        /* 0: loss and gradient, no weights; 1: weighted; 2: loss only; 3: gradient only */
        for (int mode = 0; mode < 4; ++mode) {
            pair loss = pair_out((size_t)t->n), dz = pair_out(nz);
            int want_loss = mode != 3, want_dz = mode != 2;
            BOTH(softmax_xent, t->n, t->classes, P(z), P(y), mode == 1 ? P(wts) : NULL,
                 want_loss ? P(loss) : NULL, want_dz ? P(dz) : NULL, scale);
            char shape[96];
            snprintf(shape, sizeof shape, "n %d, classes %d, logits +-%g, mode %d", t->n,
                     t->classes, t->range, mode);
            if (want_loss)
                expect_close("softmax_xent", "loss", shape, &loss, TOL_REDUCE);
            if (want_dz)
                expect_close("softmax_xent", "dz", shape, &dz, TOL_REDUCE);
            pair_free(&loss);
            pair_free(&dz);
        }
        pair_free(&z);
        pair_free(&y);
        pair_free(&wts);
    }
}

static void check_kl_div(void)
{
    NEED(kl_div);
    for (size_t i = 0; i < sizeof loss_cases / sizeof *loss_cases; ++i) {
        const loss_case *t = &loss_cases[i];
        size_t nz = (size_t)t->n * t->classes;
        /* The adversarial logits near the clean ones, as in TRADES. */
        pair zc = logits_for(t), za = pair_uniform(nz, -0.5f, 0.5f);
        for (size_t j = 0; j < nz; ++j)
            cpu_f(&za)[j] += cpu_f(&zc)[j];
        pair_sync(&za);
        /* 0: everything; 1: loss only; 2: dz_adv only; 3: dz_clean only */
        for (int mode = 0; mode < 4; ++mode) {
            pair loss = pair_out((size_t)t->n), dc = pair_out(nz), da = pair_out(nz);
            int want_loss = mode <= 1, want_da = mode == 0 || mode == 2;
            int want_dc = mode == 0 || mode == 3;
            BOTH(kl_div, t->n, t->classes, P(zc), P(za), want_loss ? P(loss) : NULL,
                 want_dc ? P(dc) : NULL, want_da ? P(da) : NULL, 6.0f / (float)t->n);
            char shape[96];
            snprintf(shape, sizeof shape, "n %d, classes %d, logits +-%g, mode %d", t->n,
                     t->classes, t->range, mode);
            if (want_loss)
                expect_close("kl_div", "loss", shape, &loss, TOL_REDUCE);
            if (want_dc)
                expect_close("kl_div", "dz_clean", shape, &dc, TOL_REDUCE);
            if (want_da)
                expect_close("kl_div", "dz_adv", shape, &da, TOL_REDUCE);
            pair_free(&loss);
            pair_free(&dc);
            pair_free(&da);
        }
        pair_free(&zc);
        pair_free(&za);
    }
}

static void check_argmax(void)
{
    NEED(argmax);
    const int shapes[][3] = {{128, 10, 0}, {7, 1000, 0}, {64, 3, 1}, {300, 37, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; ++i) {
        int n = shapes[i][0], classes = shapes[i][1], ties = shapes[i][2];
        size_t nz = (size_t)n * classes;
        pair z = pair_uniform(nz, -1.0f, 1.0f);
        if (ties) {
            for (size_t j = 0; j < nz; ++j)
                cpu_f(&z)[j] = floorf(cpu_f(&z)[j] * 2.0f);
            pair_sync(&z);
        }
        pair out = pair_out_i32((size_t)n);
        BOTH(argmax, n, classes, P(z), P(out));
        char shape[64];
        snprintf(shape, sizeof shape, "n %d, classes %d, ties %d", n, classes, ties);
        expect_same_bytes("argmax", "out", shape, &out);
        pair_free(&z);
        pair_free(&out);
    }
    /* NaN first (the CPU scan keeps index 0), NaN inside, all NaN, all -inf. */
    const float qnan = NAN, inf = INFINITY;
    const float rows[4][5] = {{qnan, 1, 2, 3, 4}, {1, qnan, 5, 5, 2}, {qnan, qnan, qnan, qnan, qnan},
                              {-inf, -inf, -inf, -inf, -inf}};
    pair z = pair_alloc(20, sizeof(float)), out = pair_out_i32(4);
    pair_write(&z, rows);
    BOTH(argmax, 4, 5, P(z), P(out));
    expect_same_bytes("argmax", "out", "rows with NaN and -inf", &out);
    pair_free(&z);
    pair_free(&out);
}

static void check_check_finite(void)
{
    NEED(check_finite);
    const size_t n = 1000003;
    pair x = pair_uniform(n, -1e30f, 1e30f);
    /* where to put a bad value (n: none), and which */
    const size_t where[] = {n, n - 1, n / 2, 0, 1};
    const float what[] = {0.0f, NAN, INFINITY, -INFINITY, NAN};
    for (size_t i = 0; i < sizeof where / sizeof *where; ++i) {
        pair y = pair_alloc(n, sizeof(float));
        memcpy(y.c, x.c, n * sizeof(float));
        if (where[i] < n)
            cpu_f(&y)[where[i]] = what[i];
        pair_sync(&y);
        /* the last case looks at a single value */
        size_t len = i + 1 == sizeof where / sizeof *where ? 2 : n;
        int bad[2] = {-1, -1};
        BOTH(check_finite, len, P(y), &bad[side]);
        ck_assert_msg(bad[0] == bad[1] && bad[1] == (where[i] < len),
                      "check_finite (n %zu, %g at %zu): cpu %d, cuda %d, expected %d", len,
                      (double)what[i], where[i], bad[0], bad[1], where[i] < len);
        pair_free(&y);
    }
    int bad[2] = {-1, -1};
    BOTH(check_finite, 0, P(x), &bad[side]);
    ck_assert_msg(bad[0] == 0 && bad[1] == 0, "check_finite of 0 values: cpu %d, cuda %d", bad[0],
                  bad[1]);
    pair_free(&x);
}

/* The word a flag op left, read back from both sides; both must equal want. */
static void expect_flag_word(const char *op, const char *c, pair *w, uint32_t want)
{
    uint32_t *g = gpu_read(w), cv = *(uint32_t *)w->c;
    ck_assert_msg(cv == want && *g == want, "%s (%s): cpu 0x%x, cuda 0x%x, expected 0x%x", op, c,
                  cv, *g, want);
    free(g);
}

static void check_flag_range(void)
{
    NEED(flag_range);
    const size_t n = 100003;
    pair x = pair_uniform(n, -1.0f, 1.0f);
    /* where to put a bad value (n: none), and which */
    const size_t where[] = {n, n - 1, 0, n / 2, n / 3};
    const float what[] = {0.0f, NAN, INFINITY, 1.5f, -1.25f};
    const uint32_t before = 0x10, bit = 4;
    for (size_t i = 0; i < sizeof where / sizeof *where; ++i) {
        pair y = pair_alloc(n, sizeof(float)), w = pair_alloc(1, sizeof(uint32_t));
        memcpy(y.c, x.c, n * sizeof(float));
        if (where[i] < n)
            cpu_f(&y)[where[i]] = what[i];
        pair_sync(&y);
        pair_write(&w, &before);
        BOTH(flag_range, n, P(y), -1.0f, 1.0f, (uint32_t *)P(w), bit);
        char c[64];
        snprintf(c, sizeof c, "%g at %zu of %zu", (double)what[i], where[i], n);
        expect_flag_word("flag_range", c, &w, before | (where[i] < n ? bit : 0));
        pair_free(&w);
        pair_free(&y);
    }
    pair_free(&x);
}

static void check_flag_labels(void)
{
    NEED(flag_labels);
    const int n = 4099, classes = 10;
    const int where[] = {n, 0, n - 1, n / 2};
    const int32_t what[] = {0, -1, 10, INT32_MAX};
    const uint32_t before = 1, bit = 8;
    for (size_t i = 0; i < sizeof where / sizeof *where; ++i) {
        pair y = pair_alloc((size_t)n, sizeof(int32_t)), w = pair_alloc(1, sizeof(uint32_t));
        int32_t *yc = y.c;
        for (int k = 0; k < n; ++k)
            yc[k] = (k * 7) % classes;
        if (where[i] < n)
            yc[where[i]] = what[i];
        pair_sync(&y);
        pair_write(&w, &before);
        BOTH(flag_labels, n, (const int32_t *)P(y), classes, (uint32_t *)P(w), bit);
        char c[64];
        snprintf(c, sizeof c, "label %d at %d of %d", (int)what[i], where[i], n);
        expect_flag_word("flag_labels", c, &w, before | (where[i] < n ? bit : 0));
        pair_free(&w);
        pair_free(&y);
    }
}

/* Graphs only (the CPU backend records none): copies when the flag is set. */
static void check_copy_if_flagged(void)
{
    REQUIRE_CUDA_OP(copy_if_flagged);
    const size_t n = 5000;
    uint32_t *flag = NULL;
    ck_assert_dat_ok(gpu->be->alloc(gpu, sizeof *flag, (void **)&flag));
    for (uint32_t f = 0; f < 3; f += 2) {
        pair dst = pair_uniform(n, -1, 1), src = pair_uniform(n, 2, 3);
        ck_assert_dat_ok(gpu->be->copy_from_host(gpu, flag, &f, sizeof f));
        ck_assert_dat_ok(gpu->be->copy_if_flagged(gpu, dst.g, src.g, n, flag));
        float *got = (float *)gpu_read(&dst);
        const float *want = f ? cpu_f(&src) : cpu_f(&dst);
        ck_assert_msg(memcmp(got, want, n * sizeof *got) == 0,
                      "copy_if_flagged with flag %u: %s", f, f ? "not copied" : "copied");
        free(got);
        pair_free(&src);
        pair_free(&dst);
    }
    gpu->be->free(gpu, flag);
}

/* ---------------- attack steps ---------------- */

static void check_attack_linf_step(void)
{
    NEED(attack_linf_step);
    const size_t sizes[] = {128 * 784, 64 * 3072 + 5};
    const float ranges[][2] = {{0.0f, 1.0f}, {-2.0f, 2.5f}};
    const float eps = 8.0f / 255, alpha = 2.0f / 255;
    for (size_t i = 0; i < 2; ++i) {
        size_t n = sizes[i];
        float lo = ranges[i][0], hi = ranges[i][1];
        pair x0 = pair_uniform(n, lo, hi), xa = pair_uniform(n, -eps, eps);
        pair g = pair_uniform(n, -1.0f, 1.0f);
        for (size_t j = 0; j < n; ++j) {
            float v = cpu_f(&x0)[j] + cpu_f(&xa)[j];
            cpu_f(&xa)[j] = v < lo ? lo : v > hi ? hi : v;
            if (j % 5 == 0)
                cpu_f(&g)[j] = 0.0f; /* sign 0: no step */
        }
        pair_sync(&xa);
        pair_sync(&g);
        char shape[96];
        snprintf(shape, sizeof shape, "n %zu, range [%g, %g]", n, lo, hi);
        for (int step = 0; step < 3; ++step) { /* two steps, then a projection only */
            BOTH(attack_linf_step, n, P(xa), step < 2 ? P(g) : NULL, P(x0), alpha, eps, lo, hi);
            expect_close("attack_linf_step", step < 2 ? "x_adv" : "x_adv (g NULL)", shape, &xa,
                         TOL_ELTWISE);
        }
        pair_free(&x0);
        pair_free(&xa);
        pair_free(&g);
    }
}

static void check_attack_l2_step(void)
{
    NEED(attack_l2_step);
    /* n, d, spread of the start around x0 (0.1 in 784 dims: longer than eps), the
     * gradient's scale (denormals: alpha / ||g|| overflows float) */
    const struct { int n; size_t d; float spread, gscale; } cases[] = {
        {128, 784, 0.1f, 1.0f}, {64, 3072, 0.001f, 1.0f}, {3, 5, 0.3f, 1.0f},
        {8, 784, 0.001f, 1e-42f}};
    const float eps = 0.5f, alpha = 0.1f;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i) {
        size_t total = (size_t)cases[i].n * cases[i].d;
        pair x0 = pair_uniform(total, 0.0f, 1.0f);
        pair xa = pair_uniform(total, -cases[i].spread, cases[i].spread);
        pair g = pair_uniform(total, -1.0f, 1.0f);
        for (size_t j = 0; j < total; ++j) {
            cpu_f(&xa)[j] += cpu_f(&x0)[j];
            cpu_f(&g)[j] *= cases[i].gscale;
        }
        for (size_t j = 0; j < cases[i].d; ++j) /* sample 1 (or 0) has no gradient */
            cpu_f(&g)[(cases[i].n > 1 ? cases[i].d : 0) + j] = 0.0f;
        pair_sync(&xa);
        pair_sync(&g);
        char shape[96];
        snprintf(shape, sizeof shape, "n %d, d %zu, start spread %g, gradient x %g", cases[i].n,
                 cases[i].d, cases[i].spread, cases[i].gscale);
        for (int step = 0; step < 3; ++step) {
            BOTH(attack_l2_step, cases[i].n, cases[i].d, P(xa), step < 2 ? P(g) : NULL, P(x0),
                 alpha, eps, 0.0f, 1.0f);
            expect_close("attack_l2_step", step < 2 ? "x_adv" : "x_adv (g NULL)", shape, &xa,
                         TOL_ELTWISE);
        }
        pair_free(&x0);
        pair_free(&xa);
        pair_free(&g);
    }
}

static void check_rows_renorm(void)
{
    NEED(rows_renorm);
    /* rows of denormals too: norms[r] / ||row|| overflows float */
    const struct { int n; size_t d; float scale; } cases[] = {
        {128, 784, 1.0f}, {64, 3072, 1.0f}, {5, 3, 1.0f}, {6, 100, 1e-42f}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i) {
        size_t total = (size_t)cases[i].n * cases[i].d;
        pair x = pair_uniform(total, -1.0f, 1.0f);
        for (size_t j = 0; j < total; ++j)
            cpu_f(&x)[j] *= cases[i].scale;
        for (size_t j = 0; j < cases[i].d; ++j) /* the last row is 0 and stays 0 */
            cpu_f(&x)[total - cases[i].d + j] = 0.0f;
        pair_sync(&x);
        float *norms = malloc((size_t)cases[i].n * sizeof *norms);
        ck_assert_ptr_nonnull(norms);
        for (int r = 0; r < cases[i].n; ++r)
            norms[r] = 0.25f + 0.5f * (float)(r % 7);
        BOTH(rows_renorm, cases[i].n, cases[i].d, P(x), norms);
        free(norms);
        char shape[64];
        snprintf(shape, sizeof shape, "n %d, d %zu, x %g", cases[i].n, cases[i].d,
                 cases[i].scale);
        expect_close("rows_renorm", "x", shape, &x, TOL_ELTWISE);
        pair_free(&x);
    }
}

static void check_minmax(void)
{
    NEED(minmax);
    const size_t sizes[] = {1, 1000, (1u << 22) + 5, 7, 0};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; ++i) {
        size_t n = sizes[i];
        pair x = pair_uniform(n ? n : 1, -3.0f, 5.0f);
        if (n > 1)
            for (size_t j = 0; j < n; j += 97) /* NaNs are ignored */
                cpu_f(&x)[j] = NAN;
        if (n == 7) /* all NaN: nothing to see */
            for (size_t j = 0; j < n; ++j)
                cpu_f(&x)[j] = NAN;
        pair_sync(&x);
        float lo[2] = {0, 0}, hi[2] = {0, 0};
        BOTH(minmax, n, P(x), &lo[side], &hi[side]);
        ck_assert_msg(memcmp(&lo[0], &lo[1], sizeof(float)) == 0 &&
                          memcmp(&hi[0], &hi[1], sizeof(float)) == 0,
                      "minmax (n %zu): cpu [%.9g, %.9g], cuda [%.9g, %.9g]", n, lo[0], hi[0],
                      lo[1], hi[1]);
        pair_free(&x);
    }
}

/* ---------------- the optimizer step ---------------- */

static void check_optim_update(void)
{
    NEED(optim_update);
    /* A weight over several chunks of the CUDA kernel, a bias, an empty segment,
     * a frozen BN weight, a gap, and more segments than one CUDA launch takes;
     * segment 6 is unfrozen after a step (its own step count, Adam's bias
     * correction), segment 50 frozen after two, in the second launch. */
    enum { N_SEGS = 60 };
    dat_segment segs[N_SEGS];
    int64_t off = 0;
    for (int k = 0; k < N_SEGS; ++k) {
        int64_t len = k == 0 ? 20000 : k == 2 ? 0 : k % 3 == 1 ? 37 : 3000 + 7 * k;
        segs[k] = (dat_segment){sizeof segs[k], "seg", off, len,
                                k % 3 == 1 ? DAT_SEGMENT_BIAS
                                : k == 3   ? DAT_SEGMENT_BN_WEIGHT
                                           : DAT_SEGMENT_WEIGHT};
        off += len + (k == 4 ? 11 : 0);
    }
    const size_t total = (size_t)off;
    /* gscale: the gradients' scale; denormals without weight decay make the
     * trust ratio overflow float */
    const struct { dat_optim_kind kind; int lalr, decoupled; float gscale; const char *name; }
    cases[] = {
        {DAT_OPTIM_MOMENTUM, 1, 0, 1.0f, "momentum + LALR (LARS)"},
        {DAT_OPTIM_ADAMW, 1, 0, 1.0f, "AdamW + LALR (LAMB)"},
        {DAT_OPTIM_NESTEROV, 0, 1, 1.0f, "Nesterov, decoupled decay"},
        {DAT_OPTIM_ADAM, 0, 0, 1.0f, "Adam, bias correction"},
        {DAT_OPTIM_SGD, 1, 0, 1.0f, "SGD + LALR"},
        {DAT_OPTIM_MOMENTUM, 1, 0, 1e-41f, "LARS, denormal gradients"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i) {
        dat_optim_options oo;
        dat_optim_options_init(&oo);
        oo.kind = cases[i].kind;
        oo.lalr = cases[i].lalr;
        oo.decoupled_decay = cases[i].decoupled;
        oo.lr = 0.05f;
        oo.weight_decay = cases[i].gscale < 1.0f ? 0.0f : 5e-4f;
        oo.c_l = 0.01f;
        oo.c_u = 0.5f;
        oo.exclude_bias_bn_decay = 1;
        oo.exclude_bias_bn_lalr = 1;
        dat_optim *opt[2];
        ck_assert_dat_ok(dat_optim_create(&opt[0], cpu, segs, N_SEGS, &oo));
        ck_assert_dat_ok(dat_optim_create(&opt[1], gpu, segs, N_SEGS, &oo));
        for (int side = 0; side < 2; ++side) {
            ck_assert_dat_ok(dat_optim_set_lr_scale(opt[side], 3, 1, 0.0f));
            ck_assert_dat_ok(dat_optim_set_lr_scale(opt[side], 6, 1, 0.0f));
        }
        pair p = pair_uniform(total, -1.0f, 1.0f);
        float *frozen = malloc((size_t)segs[3].length * sizeof(float));
        ck_assert_ptr_nonnull(frozen);
        memcpy(frozen, cpu_f(&p) + segs[3].offset, (size_t)segs[3].length * sizeof(float));
        for (int step = 0; step < 3; ++step) {
            for (int side = 0; side < 2 && step > 0; ++side)
                ck_assert_dat_ok(dat_optim_set_lr_scale(opt[side], step == 1 ? 6 : 50, 1,
                                                        step == 1 ? 1.0f : 0.0f));
            pair g = pair_uniform(total, -0.1f, 0.1f);
            for (size_t j = 0; j < total; ++j)
                cpu_f(&g)[j] *= cases[i].gscale;
            pair_sync(&g);
            BOTH(optim_update, opt[side], P(p), P(g));
            for (int side = 0; side < 2; ++side)
                opt[side]->step++; /* dat_optim_step's part */
            char shape[96];
            snprintf(shape, sizeof shape, "%s, step %d, %d segments", cases[i].name, step,
                     N_SEGS);
            expect_close("optim_update", "params", shape, &p, TOL_ELTWISE);
            pair_free(&g);
        }
        /* The frozen segment kept the bits it started with, on both sides. */
        float *now_g = gpu_read(&p);
        size_t at = (size_t)segs[3].offset, len = (size_t)segs[3].length * sizeof(float);
        ck_assert_msg(memcmp(now_g + at, frozen, len) == 0 && memcmp(cpu_f(&p) + at, frozen, len) == 0,
                      "optim_update (%s): the frozen segment changed", cases[i].name);
        free(now_g);
        free(frozen);
        pair_free(&p);
        dat_optim_destroy(opt[0]);
        dat_optim_destroy(opt[1]);
    }
}

/* ---------------- the quantizer ---------------- */

/* n values for the quantizer, with zeros and, past six buckets, the buckets
 * that take the rare paths: all zero, denormal, squares that overflow float
 * (the l2 norm redone in double) and squares that underflow. */
static pair quant_input(size_t n, size_t bucket)
{
    pair x = pair_uniform(n, -1.0f, 1.0f);
    float *h = cpu_f(&x);
    for (size_t i = 0; i < n; i += 13)
        h[i] = 0.0f;
    if (n >= 6 * bucket) {
        const float scale[4] = {0.0f, 1e-40f, 1e20f, 1e-25f};
        for (size_t k = 0; k < 4; ++k)
            for (size_t i = (k + 1) * bucket; i < (k + 2) * bucket; ++i)
                h[i] *= scale[k];
    }
    pair_sync(&x);
    return x;
}

/* A code buffer, different garbage on each side: unwritten bytes differ. */
static pair quant_codes(size_t bytes)
{
    pair p = pair_alloc(bytes, 1);
    const uint8_t gc = 0xab, gg = 0xcd;
    ck_assert_dat_ok(cpu->be->fill(cpu, p.c, bytes, &gc, 1));
    ck_assert_dat_ok(gpu->be->fill(gpu, p.g, bytes, &gg, 1));
    return p;
}

static void check_quant_encode(void)
{
    NEED(quant_encode);
    const int bits[] = {2, 3, 5, 8, 11, 16, 32};
    const int buckets[] = {512, 100, 37, 4096};
    for (int bi = 0; bi < 7; ++bi) {
        for (int k = 0; k < 4; ++k) {
            int nm = k % 2, res = k / 2, bucket = buckets[(bi + k) % 4];
            dat_quant_config c = {bits[bi], bucket, nm ? DAT_QUANT_NORM_MAX : DAT_QUANT_NORM_L2};
            size_t n = 50001;
            uint64_t counter0 = (bi + k) % 2 ? 7 : 0;
            pair x = quant_input(n, (size_t)bucket), e = {0, 0, NULL, NULL};
            if (res)
                e = pair_uniform(n, -1e-3f, 1e-3f);
            pair codes = quant_codes(dat_quant_encoded_bytes(&c, n));
            BOTH(quant_encode, "check_quant_encode", &c, P(x), n, res ? P(e) : NULL, 4242,
                 99 + (uint64_t)bi, counter0, P(codes), 0);
            char shape[96];
            snprintf(shape, sizeof shape, "%d bits, bucket %d, %s norm, %s residual, counter0 %d",
                     c.bits, bucket, nm ? "max" : "l2", res ? "a" : "no", (int)counter0);
            expect_same_bytes("quant_encode", "codes", shape, &codes);
            if (res) {
                expect_same_bytes("quant_encode", "residual", shape, &e);
                pair_free(&e);
            }
            pair_free(&codes);
            pair_free(&x);
        }
    }
    /* A NaN, and a bucket whose l2 norm overflows float: the same error on both
     * sides, and the residual zeroed. */
    const size_t n = 4000;
    const struct { size_t at; float v; const char *says; } bad[] = {
        {1234, NAN, "element 1234 is NaN or Inf"},
        {2050, 3e38f, "the bucket starting at element 2048 overflows"},
    };
    for (int i = 0; i < 2; ++i) {
        dat_quant_config c = {8, 512, DAT_QUANT_NORM_L2};
        pair x = quant_input(n, 512), e = pair_uniform(n, -1e-3f, 1e-3f);
        cpu_f(&x)[bad[i].at] = bad[i].v;
        cpu_f(&x)[bad[i].at + 1] = -bad[i].v;
        pair_sync(&x);
        pair codes = quant_codes(dat_quant_encoded_bytes(&c, n));
        for (int side = 0; side < 2; ++side) {
            dat_ctx *ctx = side ? gpu : cpu;
            ck_assert_dat_err(ctx->be->quant_encode(ctx, "check_quant_encode", &c, P(x), n, P(e),
                                                    1, 2, 0, P(codes), 0),
                              DAT_ERR_NUMERIC, bad[i].says);
            ck_assert_dat_ok(ctx->be->synchronize(ctx));
        }
        pair zero = pair_const(n, 0.0f);
        expect_same_bytes("quant_encode", "residual after the error", bad[i].says, &e);
        ck_assert_msg(memcmp(cpu_f(&e), cpu_f(&zero), n * sizeof(float)) == 0,
                      "quant_encode: the residual is not zeroed after \"%s\"", bad[i].says);
        pair_free(&zero);
        pair_free(&codes);
        pair_free(&e);
        pair_free(&x);
    }
}

/* The encode a synchronizer queues per bucket (CUDA only): the CPU encode's
 * codes and residual; its outcome left in the status, the bad index relative
 * to the slice, and the residual not zeroed (the caller does that). The
 * stream given, or (a recorded step's) computed from a step on the device. */
static void check_quant_encode_deferred(void)
{
    REQUIRE_CUDA_OP(quant_encode_deferred);
    const size_t n = 4000, at = 1234;
    const uint64_t step = 41;
    dat_quant_config c = {8, 512, DAT_QUANT_NORM_L2};
    dat_quant_status *st = NULL, h;
    uint64_t *step_at = NULL;
    ck_assert_dat_ok(gpu->be->alloc(gpu, sizeof *st, (void **)&st));
    ck_assert_dat_ok(gpu->be->alloc(gpu, sizeof *step_at, (void **)&step_at));
    ck_assert_dat_ok(gpu->be->copy_from_host(gpu, step_at, &step, sizeof step));
    for (int k = 0; k < 3; ++k) {
        int bad = k == 1, on_device = k == 2;
        pair x = quant_input(n, 512), e = pair_uniform(n, -1e-3f, 1e-3f);
        pair codes = quant_codes(dat_quant_encoded_bytes(&c, n));
        if (bad) {
            cpu_f(&x)[at] = NAN;
            pair_sync(&x);
        }
        dat_quant_draw d = {.key = 3, .stream = 4};
        if (on_device)
            d = (dat_quant_draw){.key = 3, .stream = 4, .step = step_at, .salt = 7, .rank = 2,
                                 .phase = DAT_QUANT_PHASE_SERVER};
        uint64_t stream = on_device ? dat_quant_stream(7, 2, step, DAT_QUANT_PHASE_SERVER) : 4;
        dat_status want = cpu->be->quant_encode(cpu, "check", &c, cpu_f(&x), n, cpu_f(&e), 3,
                                                stream, 100, codes.c, 0);
        ck_assert_int_eq(want, bad ? DAT_ERR_NUMERIC : DAT_OK);
        ck_assert_dat_ok(gpu->be->quant_encode_deferred(gpu, &c, x.g, n, e.g, &d, 100, codes.g,
                                                        st));
        ck_assert_dat_ok(gpu->be->copy_to_host(gpu, &h, st, sizeof h));
        ck_assert_int_eq(h.kind, bad ? DAT_QUANT_BUCKET_NONFINITE : DAT_QUANT_BUCKET_OK);
        ck_assert_uint_eq(h.first_bad, bad ? at : UINT64_MAX);
        if (!bad) {
            const char *shape = on_device ? "8 bits, bucket 512, step on the device"
                                          : "8 bits, bucket 512";
            expect_same_bytes("quant_encode_deferred", "codes", shape, &codes);
            expect_same_bytes("quant_encode_deferred", "residual", shape, &e);
        } else {
            float *g = (float *)gpu_read(&e);
            ck_assert_msg(isfinite(g[0]) && g[0] != 0.0f,
                          "quant_encode_deferred zeroed the residual: the caller does");
            free(g);
        }
        pair_free(&codes);
        pair_free(&e);
        pair_free(&x);
    }
    gpu->be->free(gpu, step_at);
    gpu->be->free(gpu, st);
}

/* A recorded quantized all-reduce's outcome (CUDA only): the flag of a
 * failed encode among several statuses; on a flag, the fault bit, the
 * residual zeroed and the gradient NaN; without one, nothing touched. */
static void check_quant_flag_failed(void)
{
    REQUIRE_CUDA_OP(quant_flag_failed);
    dat_quant_status h[5], *st = NULL;
    float *flag = NULL, got;
    ck_assert_dat_ok(gpu->be->alloc(gpu, sizeof h, (void **)&st));
    ck_assert_dat_ok(gpu->be->alloc(gpu, sizeof *flag, (void **)&flag));
    for (int bad = -1; bad < 5; ++bad) {
        for (int k = 0; k < 5; ++k)
            h[k] = (dat_quant_status){.first_bad = UINT64_MAX, .kind = DAT_QUANT_BUCKET_OK};
        if (bad >= 0)
            h[bad] = (dat_quant_status){.first_bad = 7, .kind = DAT_QUANT_BUCKET_OVERFLOW};
        const float junk = 5.0f;
        ck_assert_dat_ok(gpu->be->copy_from_host(gpu, st, h, sizeof h));
        ck_assert_dat_ok(gpu->be->copy_from_host(gpu, flag, &junk, sizeof junk));
        ck_assert_dat_ok(gpu->be->quant_flag_failed(gpu, st, 5, flag));
        ck_assert_dat_ok(gpu->be->copy_to_host(gpu, &got, flag, sizeof got));
        ck_assert_msg(got == (bad >= 0 ? 1.0f : 0.0f), "quant_flag_failed: %g with bucket %d bad",
                      (double)got, bad);
    }
    gpu->be->free(gpu, flag);
    gpu->be->free(gpu, st);
}

static void check_quant_apply_failure(void)
{
    REQUIRE_CUDA_OP(quant_apply_failure);
    const size_t n = 3000, r = 2000;
    float *flag = NULL;
    uint32_t *fault = NULL, f;
    ck_assert_dat_ok(gpu->be->alloc(gpu, sizeof *flag, (void **)&flag));
    ck_assert_dat_ok(gpu->be->alloc(gpu, sizeof *fault, (void **)&fault));
    /* none failed; two ranks' encodes failed (every rank's residual goes) */
    for (int k = 0; k < 2; ++k) {
        const int failed = k > 0;
        pair x = pair_uniform(n, -1.0f, 1.0f), e = pair_uniform(n, -1e-3f, 1e-3f);
        const float v = failed ? 2.0f : 0.0f;
        const uint32_t before = 1u;
        ck_assert_dat_ok(gpu->be->copy_from_host(gpu, flag, &v, sizeof v));
        ck_assert_dat_ok(gpu->be->copy_from_host(gpu, fault, &before, sizeof before));
        ck_assert_dat_ok(gpu->be->quant_apply_failure(gpu, flag, e.g, r, x.g, n, fault, 16u));
        ck_assert_dat_ok(gpu->be->copy_to_host(gpu, &f, fault, sizeof f));
        ck_assert_uint_eq(f, failed ? 17u : 1u);
        float *gx = (float *)gpu_read(&x), *ge = (float *)gpu_read(&e);
        for (size_t i = 0; i < n; ++i) {
            ck_assert_msg(failed ? isnan(gx[i]) : gx[i] == cpu_f(&x)[i],
                          "quant_apply_failure: x[%zu] = %g (flag %g)", i, (double)gx[i],
                          (double)v);
            float want = failed && i < r ? 0.0f : cpu_f(&e)[i];
            ck_assert_msg(ge[i] == want, "quant_apply_failure: residual[%zu] = %g, expected %g",
                          i, (double)ge[i], (double)want);
        }
        free(gx);
        free(ge);
        pair_free(&e);
        pair_free(&x);
    }
    gpu->be->free(gpu, fault);
    gpu->be->free(gpu, flag);
}

static void check_quant_decode(void)
{
    NEED(quant_decode);
    const int bits[] = {2, 5, 8, 16, 32};
    for (int bi = 0; bi < 5; ++bi) {
        int bucket = bi % 2 ? 37 : 512;
        dat_quant_config c = {bits[bi], bucket, DAT_QUANT_NORM_L2};
        size_t n = 50001;
        pair x = quant_input(n, (size_t)bucket);
        pair codes = quant_codes(dat_quant_encoded_bytes(&c, n));
        ck_assert_dat_ok(cpu->be->quant_encode(cpu, "check_quant_decode", &c, cpu_f(&x), n, NULL,
                                               5, 6, 0, codes.c, 0));
        pair_sync(&codes);
        for (int acc = 0; acc < 2; ++acc) {
            pair out = acc ? pair_uniform(n, -1.0f, 1.0f) : pair_out(n);
            float scale = acc ? 1.0f / 3.0f : 1.0f; /* a rank's part of a mean of 3 */
            BOTH(quant_decode, &c, P(codes), n, P(out), acc, scale);
            char shape[64];
            snprintf(shape, sizeof shape, "%d bits, bucket %d, accumulate %d", c.bits, bucket,
                     acc);
            expect_same_bytes("quant_decode", "out", shape, &out);
            pair_free(&out);
        }
        pair_free(&codes);
        pair_free(&x);
    }
}

/* ---------------- graphs ---------------- */

/* Ops recorded once and launched three times give the ops run three times
 * (the CPU, which has no graphs, runs them). */
static void check_graphs(void)
{
    if (self_test) {
        printf("test_backend_ops: graphs skipped: the CPU backend has none\n");
        return;
    }
    const dat_backend *be = gpu->be;
    ck_assert_msg(be->capture_begin && be->capture_end && be->graph_launch && be->graph_destroy,
                  "the CUDA backend lacks a graph op");
    const size_t n = 100003;
    pair x = pair_uniform(n, -1.0f, 1.0f), y = pair_uniform(n, -1.0f, 1.0f);
    for (int i = 0; i < 3; ++i) {
        ck_assert_dat_ok(cpu->be->scale(cpu, n, 0.5f, y.c));
        ck_assert_dat_ok(cpu->be->axpy(cpu, n, 1.0f, x.c, y.c));
    }
    void *graph = NULL;
    ck_assert_dat_ok(be->capture_begin(gpu));
    ck_assert_dat_ok(be->scale(gpu, n, 0.5f, y.g));
    ck_assert_dat_ok(be->axpy(gpu, n, 1.0f, x.g, y.g));
    ck_assert_dat_ok(be->capture_end(gpu, &graph));
    ck_assert_ptr_nonnull(graph);
    for (int i = 0; i < 3; ++i)
        ck_assert_dat_ok(be->graph_launch(gpu, graph));
    ck_assert_dat_ok(be->synchronize(gpu));
    expect_same_bytes("graph_launch", "y", "scale + axpy, 3 launches", &y);
    be->graph_destroy(gpu, graph);
    /* Ops that cannot be recorded (they read back to the host, synchronize or
     * allocate) are refused before CUDA sees them, with a message, also in a
     * capture made without a step recording (an attack's): the capture stays
     * valid, and the context runs them again afterwards. */
    float lo = 0, hi = 0;
    int bad = 0;
    void *p = NULL;
    ck_assert_dat_ok(be->capture_begin(gpu));
    ck_assert_dat_err(be->minmax(gpu, n, x.g, &lo, &hi), DAT_ERR_STATE, "cannot be recorded");
    ck_assert_dat_err(be->check_finite(gpu, n, x.g, &bad), DAT_ERR_STATE, "cannot be recorded");
    ck_assert_dat_err(be->synchronize(gpu), DAT_ERR_STATE, "cannot be recorded");
    ck_assert_dat_err(be->alloc(gpu, 64, &p), DAT_ERR_STATE, "cannot be recorded");
    ck_assert_dat_err(be->copy_to_host(gpu, &lo, x.g, sizeof lo), DAT_ERR_STATE,
                      "cannot be recorded");
    ck_assert_dat_ok(be->scale(gpu, n, 0.5f, y.g));
    ck_assert_dat_ok(be->capture_end(gpu, &graph));
    ck_assert_ptr_nonnull(graph);
    be->graph_destroy(gpu, graph);
    ck_assert_dat_ok(be->minmax(gpu, n, x.g, &lo, &hi));
    ck_assert_dat_ok(be->check_finite(gpu, n, x.g, &bad));
    ck_assert_dat_ok(be->synchronize(gpu));
    pair_free(&x);
    pair_free(&y);
}

/* ---------------- the table of every backend slot ---------------- */

typedef struct op_check {
    const char *op;
    size_t offset;           /* of the slot in struct dat_backend */
    void (*check)(void);     /* NULL: covered as stated in `covered_by` */
    const char *covered_by;
} op_check;

#define CHECK(op, fn) {#op, offsetof(dat_backend, op), fn, NULL}
#define COVERED(op, how) {#op, offsetof(dat_backend, op), NULL, how}

static const op_check checks[] = {
    COVERED(init, "creating this test's contexts"),
    COVERED(fini, "destroying them"),
    COVERED(synchronize, "after every op call here"),
    COVERED(alloc, "every buffer here"),
    COVERED(free, "every buffer here"),
    COVERED(copy_from_host, "every input here"),
    COVERED(copy_to_host, "every comparison here"),
    CHECK(copy, check_copy),
    CHECK(fill, check_fill),
    CHECK(f32_to_bf16, check_f32_to_bf16),
    CHECK(bf16_to_f32, check_bf16_to_f32),
    CHECK(rng_uniform, check_rng_uniform),
    CHECK(rng_normal, check_rng_normal),
    CHECK(gemm, check_gemm),
    CHECK(conv2d_fwd, check_conv2d_fwd),
    CHECK(conv2d_bwd_data, check_conv2d_bwd_data),
    CHECK(conv2d_bwd_filter, check_conv2d_bwd_filter),
    CHECK(linear_fwd, check_linear_fwd),
    CHECK(linear_bwd, check_linear_bwd),
    CHECK(bn_fwd_train, check_bn_fwd_train),
    CHECK(bn_fwd_eval, check_bn_fwd_eval),
    CHECK(bn_bwd_train, check_bn_bwd_train),
    CHECK(bn_bwd_eval, check_bn_bwd_eval),
    CHECK(relu_fwd, check_relu_fwd),
    CHECK(relu_bwd, check_relu_bwd),
    CHECK(pool_fwd, check_pool_fwd),
    CHECK(pool_bwd, check_pool_bwd),
    CHECK(act_convert, check_act_convert),
    CHECK(add, check_add),
    CHECK(add_relu, check_add_relu),
    CHECK(axpy, check_axpy),
    CHECK(scale, check_scale),
    CHECK(softmax_xent, check_softmax_xent),
    CHECK(kl_div, check_kl_div),
    CHECK(argmax, check_argmax),
    CHECK(check_finite, check_check_finite),
    CHECK(flag_range, check_flag_range),
    CHECK(flag_labels, check_flag_labels),
    CHECK(copy_if_flagged, check_copy_if_flagged),
    CHECK(attack_linf_step, check_attack_linf_step),
    CHECK(attack_l2_step, check_attack_l2_step),
    CHECK(rows_renorm, check_rows_renorm),
    CHECK(minmax, check_minmax),
    CHECK(optim_update, check_optim_update),
    CHECK(quant_encode, check_quant_encode),
    CHECK(quant_decode, check_quant_decode),
    CHECK(quant_encode_deferred, check_quant_encode_deferred),
    CHECK(quant_flag_failed, check_quant_flag_failed),
    CHECK(quant_apply_failure, check_quant_apply_failure),
    CHECK(capture_begin, check_graphs),
    COVERED(capture_end, "check_graphs"),
    COVERED(graph_launch, "check_graphs"),
    COVERED(graph_destroy, "check_graphs"),
};
#define N_CHECKS ((int)(sizeof checks / sizeof *checks))

/* Every slot after the header (`name`, the capability flags) is a function pointer;
 * each must have an entry. */
START_TEST(test_table_complete)
{
    size_t slot = sizeof(void (*)(void));
    size_t first = offsetof(dat_backend, init);
    size_t flags_end = offsetof(dat_backend, nhwc_precisions) + sizeof(unsigned);
    ck_assert_uint_eq(first, (flags_end + slot - 1) / slot * slot); /* after the flags */
    for (size_t off = first; off < sizeof(dat_backend); off += slot) {
        int found = 0;
        for (int i = 0; i < N_CHECKS; ++i)
            found += checks[i].offset == off;
        const char *after = "name";
        for (int i = 0; i < N_CHECKS; ++i)
            if (checks[i].offset + slot == off)
                after = checks[i].op;
        ck_assert_msg(found == 1,
                      "struct dat_backend's slot at byte %zu (after %s) has %d entries in "
                      "test_backend_ops.c's `checks`, expected 1: add a check for the new op",
                      off, after, found);
    }
    ck_assert_uint_eq(sizeof(dat_backend), first + (size_t)N_CHECKS * slot);
}
END_TEST

static void setup(void)
{
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.device = DAT_DEVICE_CPU;
    ck_assert_dat_ok(dat_ctx_create(&cpu, &o));
    o.device = self_test ? DAT_DEVICE_CPU : DAT_DEVICE_CUDA;
    ck_assert_dat_ok(dat_ctx_create(&gpu, &o));
}

static void teardown(void)
{
    dat_ctx_destroy(gpu);
    dat_ctx_destroy(cpu);
    gpu = cpu = NULL;
}

/* DAT_TEST_BACKEND_OPS_ONLY="op op ...": only those ops' checks (to iterate
 * on a few kernels, or to spend little device time). */
static int selected(const char *op)
{
    const char *only = getenv("DAT_TEST_BACKEND_OPS_ONLY");
    if (!only || !*only)
        return 1;
    size_t len = strlen(op);
    for (const char *p = only; (p = strstr(p, op)) != NULL; p += len)
        if ((p == only || p[-1] == ' ' || p[-1] == ',') &&
            (p[len] == '\0' || p[len] == ' ' || p[len] == ','))
            return 1;
    return 0;
}

START_TEST(test_op)
{
    const op_check *c = &checks[_i];
    if (c->check && selected(c->op))
        c->check();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("backend_ops");
    TCase *table = tcase_create("table");
    tcase_add_test(table, test_table_complete);
    suite_add_tcase(s, table);

    const char *self = getenv("DAT_TEST_BACKEND_OPS_SELF");
    self_test = self && strcmp(self, "1") == 0;
    int have_gpu = dat_test_have_gpu();
    if (have_gpu || self_test) {
        TCase *ops = tcase_create("ops");
        tcase_set_timeout(ops, 600);
        tcase_add_unchecked_fixture(ops, setup, teardown);
        tcase_add_loop_test(ops, test_op, 0, N_CHECKS);
        suite_add_tcase(s, ops);
    }
    int rc = dat_run_suite(s);
    if (rc == EXIT_SUCCESS && !have_gpu && !self_test) {
        printf("no CUDA device: only the op table was checked; skipped\n");
        return DAT_TEST_SKIP;
    }
    return rc;
}
