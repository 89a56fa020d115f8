/*
 * The randomized quantizer: exact encoded sizes, unbiasedness and the QSGD
 * variance bound (statistically, fixed seeds), error bounds per element,
 * pass-through, zero and denormal buckets, NaN / Inf input, repeatability,
 * slices and thread counts, error feedback.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check_util.h"
#include "core/backend.h"
#include "core/ctx.h"
#include "core/philox.h"
#include "quant/pack.h"
#include "quant/codes_simd.h"
#include "quant/philox_simd.h"
#include "quant/quant_math.h"
#include "quant/quantizer.h"

static dat_ctx *make_ctx(int threads, uint64_t seed)
{
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.num_threads = threads;
    o.seed = seed;
    dat_ctx *ctx = NULL;
    ck_assert_dat_ok(dat_ctx_create(&ctx, &o));
    return ctx;
}

static dat_quantizer *make_q(dat_ctx *ctx, int bits, int bucket, dat_quant_norm norm, int ef)
{
    dat_quantizer_options o;
    dat_quantizer_options_init(&o);
    o.bits = bits;
    o.bucket_size = bucket;
    o.norm = norm;
    o.error_feedback = ef;
    dat_quantizer *q = NULL;
    ck_assert_dat_ok(dat_quantizer_create(&q, ctx, &o));
    return q;
}

static dat_tensor *make_tensor(dat_ctx *ctx, int64_t n, const float *src)
{
    dat_tensor *t = NULL;
    ck_assert_dat_ok(dat_tensor_create(&t, ctx, DAT_FLOAT32, 1, &n));
    if (src)
        ck_assert_dat_ok(dat_tensor_write(t, src, (size_t)n * sizeof(float)));
    return t;
}

static float *host(dat_tensor *t)
{
    void *p = NULL;
    ck_assert_dat_ok(dat_tensor_host_data(t, &p));
    return p;
}

/* Deterministic test vector: mixed signs and magnitudes. */
static void fill_vector(float *x, size_t n, unsigned salt)
{
    for (size_t i = 0; i < n; ++i) {
        uint32_t w = dat_philox_word(1234 + salt, 5, i);
        float u = (float)(w >> 8) / 16777216.0f;
        x[i] = (u - 0.4f) * (1.0f + (float)(i % 7));
    }
}

/* The norm of bucket [lo, lo + m) as the quantizer defines it (double). */
static double ref_norm(const float *x, size_t lo, size_t m, dat_quant_norm norm)
{
    double s = 0;
    for (size_t i = lo; i < lo + m; ++i)
        s = norm == DAT_QUANT_NORM_MAX ? fmax(s, fabs(x[i])) : s + (double)x[i] * x[i];
    return norm == DAT_QUANT_NORM_MAX ? s : sqrt(s);
}

START_TEST(test_encoded_size)
{
    dat_ctx *ctx = make_ctx(1, 0);
    const int buckets[] = {1, 7, 512, 1000};
    const int64_t ns[] = {0, 1, 6, 511, 512, 513, 10007};
    const int bits_list[] = {2, 3, 5, 7, 8, 11, 13, 16, 32};
    for (size_t bi = 0; bi < sizeof bits_list / sizeof *bits_list; ++bi) {
        for (size_t ki = 0; ki < 4; ++ki) {
            int b = bits_list[bi], B = buckets[ki];
            dat_quantizer *q = make_q(ctx, b, B, DAT_QUANT_NORM_L2, 0);
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ++ni) {
                int64_t n = ns[ni];
                size_t want;
                if (b == 32) {
                    want = 4 * (size_t)n;
                } else {
                    size_t full = (size_t)(n / B), r = (size_t)(n % B);
                    want = full * (4 + 4 * (((size_t)B * b + 31) / 32)) +
                           (r ? 4 + 4 * ((r * b + 31) / 32) : 0);
                }
                size_t got = 0;
                ck_assert_dat_ok(dat_quantizer_encoded_size(q, n, &got));
                ck_assert_msg(got == want, "bits %d bucket %d n %lld: E = %zu, expected %zu", b,
                              B, (long long)n, got, want);
                if (n == 0)
                    continue;
                /* The encode writes exactly E bytes: a sentinel after them survives. */
                float *x = malloc((size_t)n * sizeof *x);
                fill_vector(x, (size_t)n, 1);
                dat_tensor *t = make_tensor(ctx, n, x);
                uint8_t *codes = malloc(want + 64);
                memset(codes, 0xab, want + 64);
                ck_assert_dat_ok(dat_quantizer_encode(q, t, 3, codes, want));
                for (size_t k = want; k < want + 64; ++k)
                    ck_assert_msg(codes[k] == 0xab, "bits %d bucket %d n %lld: byte %zu of the "
                                  "%zu-byte encoding overwritten", b, B, (long long)n, k, want);
                ck_assert_dat_err(dat_quantizer_encode(q, t, 3, codes, want - 1),
                                  DAT_ERR_INVALID_ARG, "codes_bytes");
                dat_tensor_destroy(t);
                free(codes);
                free(x);
            }
            /* The largest tensor's E, exact; past it a refusal, not a wrapped size_t
             * (2^62 16-bit codes of buckets of 1 wrapped to 0 bytes, DAT_OK). */
            size_t got = 0;
            ck_assert_dat_ok(dat_quantizer_encoded_size(q, (int64_t)1 << 40, &got));
            if (B == 1)
                ck_assert_uint_eq(got, b == 32 ? (size_t)4 << 40 : (size_t)8 << 40);
            ck_assert_dat_err(dat_quantizer_encoded_size(q, (int64_t)1 << 62, &got),
                              DAT_ERR_INVALID_ARG, "2^40");
            dat_quantizer_destroy(q);
        }
    }
    dat_ctx_destroy(ctx);
}
END_TEST

/* The wire layout of the packed codes (code k in bits [k b, k b + b) of the
 * little-endian word stream), for every width, packed and unpacked in pieces of
 * odd and whole-word lengths so that the fast byte paths and the generic bit
 * loop both run, against a bit-by-bit reference. */
START_TEST(test_pack_layout)
{
    enum { M = 1000 };
    static uint32_t codes[M], back[M], words[M + 1], want[M + 1];
    const size_t pieces[] = {64, 7, 128, 1, 33, 256, 96};
    for (int b = 1; b <= 32; ++b) {
        uint64_t mask = ((uint64_t)1 << b) - 1;
        memset(want, 0, sizeof want);
        for (size_t k = 0; k < M; ++k) {
            codes[k] = (uint32_t)(dat_philox_word(5, (uint64_t)b, k) & mask);
            for (int i = 0; i < b; ++i) {
                size_t bit = k * (size_t)b + (size_t)i;
                want[bit / 32] |= ((codes[k] >> i) & 1u) << (bit % 32);
            }
        }
        memset(words, 0xcd, sizeof words);
        dat_packer pk;
        dat_packer_init(&pk, words, b);
        for (size_t k = 0, i = 0; k < M; i = (i + 1) % 7) {
            size_t len = M - k < pieces[i] ? M - k : pieces[i];
            dat_pack(&pk, codes + k, len);
            k += len;
        }
        dat_packer_flush(&pk);
        size_t nw = dat_pack_words(M, b);
        ck_assert_msg(pk.out == words + nw, "bits %d: %td words written, want %zu", b,
                      pk.out - words, nw);
        for (size_t w = 0; w < nw; ++w)
            ck_assert_msg(words[w] == want[w], "bits %d: word %zu = 0x%08x, want 0x%08x", b, w,
                          words[w], want[w]);
        dat_unpacker up;
        dat_unpacker_init(&up, words, b);
        for (size_t k = 0, i = 3; k < M; i = (i + 1) % 7) {
            size_t len = M - k < pieces[i] ? M - k : pieces[i];
            dat_unpack(&up, back + k, len);
            k += len;
        }
        for (size_t k = 0; k < M; ++k)
            ck_assert_msg(back[k] == codes[k], "bits %d: code %zu unpacked as %u, want %u", b, k,
                          back[k], codes[k]);
    }
}
END_TEST

/*
 * For every element, q = ±xi·step with xi in {floor(r), ceil(r)}: so
 * |q − x| < step = norm / s, and q lies on the level grid.
 */
START_TEST(test_error_bound_all_bits)
{
    dat_ctx *ctx = make_ctx(2, 7);
    const size_t n = 3000;
    float *x = malloc(n * sizeof *x);
    fill_vector(x, n, 2);
    for (int norm = 0; norm < 2; ++norm) {
        for (int b = 2; b <= 16; ++b) {
            dat_quantizer *q = make_q(ctx, b, 512, (dat_quant_norm)norm, 0);
            dat_tensor *t = make_tensor(ctx, (int64_t)n, x), *o = make_tensor(ctx, (int64_t)n, NULL);
            size_t bytes;
            ck_assert_dat_ok(dat_quantizer_encoded_size(q, (int64_t)n, &bytes));
            void *codes = malloc(bytes);
            ck_assert_dat_ok(dat_quantizer_encode(q, t, 11, codes, bytes));
            ck_assert_dat_ok(dat_quantizer_decode(q, codes, bytes, o, 0));
            const float *y = host(o);
            double s = (double)((1u << (b - 1)) - 1);
            for (size_t i = 0; i < n; ++i) {
                size_t lo = i / 512 * 512, m = n - lo < 512 ? n - lo : 512;
                double step = ref_norm(x, lo, m, (dat_quant_norm)norm) / s;
                double err = fabs((double)y[i] - x[i]);
                ck_assert_msg(err <= step * (1 + 1e-5), "bits %d norm %d element %zu: |q - x| = "
                              "%g exceeds one level %g", b, norm, i, err, step);
                double lev = fabs(y[i]) / step;
                ck_assert_msg(fabs(lev - nearbyint(lev)) < 1e-4 + 2e-7 * lev && lev <= s + 1e-3,
                              "bits %d element %zu: q / step = %.6f is not a level in [0, %g]",
                              b, i, lev, s);
                ck_assert_msg(y[i] == 0 || (y[i] < 0) == (x[i] < 0),
                              "bits %d element %zu: sign of q = %g differs from x = %g", b, i,
                              (double)y[i], (double)x[i]);
            }
            if (b == 16) { /* the b = 16 round trip is close to the input */
                for (size_t i = 0; i < n; ++i)
                    ck_assert_msg(fabs((double)y[i] - x[i]) <= 2e-4 * 7,
                                  "16 bits element %zu: %g vs %g", i, (double)y[i],
                                  (double)x[i]);
            }
            free(codes);
            dat_tensor_destroy(t);
            dat_tensor_destroy(o);
            dat_quantizer_destroy(q);
        }
    }
    free(x);
    dat_ctx_destroy(ctx);
}
END_TEST

/*
 * Unbiased: the mean of 10 000 draws (steps) lies within 4.5 standard errors of
 * x, per coordinate (about 1 200 coordinates are checked over the configurations:
 * 4.5 SE keeps a false alarm below 1 %, where 4 SE would ring 7 % of the time),
 * plus the rounding's granularity of 2^-16 step (16-bit uniforms), with the
 * exact per-coordinate variance step²·f·(1 − f),
 * f = frac(s|x|/norm). Also the mean squared error matches Σ step² f (1 − f)
 * within 5 % and stays below the QSGD bound min(d/s², √d/s)·‖v‖² (ℓ2) or
 * d·‖v‖∞² / (4 s²) (max).
 */
static void check_unbiased(dat_quant_norm norm, int bits)
{
    dat_ctx *ctx = make_ctx(1, 99);
    const size_t n = 200, B = 100;
    float x[200];
    fill_vector(x, n, 3);
    x[17] = 0.0f; /* exact zero: never moves */
    dat_quantizer *q = make_q(ctx, bits, (int)B, norm, 0);
    dat_tensor *t = make_tensor(ctx, (int64_t)n, x), *o = make_tensor(ctx, (int64_t)n, NULL);
    size_t bytes;
    ck_assert_dat_ok(dat_quantizer_encoded_size(q, (int64_t)n, &bytes));
    void *codes = malloc(bytes);
    static double sum[200], sq_err[2];
    memset(sum, 0, sizeof sum);
    memset(sq_err, 0, sizeof sq_err);
    const int draws = 10000;
    const float *y = host(o);
    for (int d = 0; d < draws; ++d) {
        ck_assert_dat_ok(dat_quantizer_encode(q, t, (uint64_t)d, codes, bytes));
        ck_assert_dat_ok(dat_quantizer_decode(q, codes, bytes, o, 0));
        for (size_t i = 0; i < n; ++i) {
            sum[i] += y[i];
            sq_err[i / B] += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        }
    }
    double s = (double)((1u << (bits - 1)) - 1);
    for (size_t bk = 0; bk < n / B; ++bk) {
        double nv = ref_norm(x, bk * B, B, norm), step = nv / s, expect_var = 0;
        for (size_t i = bk * B; i < (bk + 1) * B; ++i) {
            double r = fabs(x[i]) / step, f = r - floor(r);
            double var = step * step * f * (1 - f);
            expect_var += var;
            double se = sqrt(var / draws), mean = sum[i] / draws;
            double tol = 4.5 * se + 0x1p-16 * step + 1e-6 * (fabs(x[i]) + step);
            ck_assert_msg(fabs(mean - x[i]) <= tol,
                          "norm %d bits %d coordinate %zu: mean of %d draws %.7g, x = %.7g, "
                          "differs by %.3g > 4.5 SE + slack = %.3g", norm, bits, i, draws, mean,
                          (double)x[i], fabs(mean - x[i]), tol);
        }
        double mse = sq_err[bk] / draws;
        ck_assert_msg(fabs(mse - expect_var) <= 0.05 * expect_var,
                      "norm %d bits %d bucket %zu: mean squared error %.6g, expected %.6g", norm,
                      bits, bk, mse, expect_var);
        double bound = norm == DAT_QUANT_NORM_L2
                           ? fmin((double)B / (s * s), sqrt((double)B) / s) * nv * nv
                           : (double)B * nv * nv / (4 * s * s);
        ck_assert_msg(mse <= bound, "norm %d bits %d bucket %zu: mean squared error %.6g "
                      "above the QSGD bound %.6g", norm, bits, bk, mse, bound);
    }
    ck_assert_msg(sum[17] == 0.0, "a zero coordinate moved: mean %g", sum[17] / draws);
    free(codes);
    dat_tensor_destroy(t);
    dat_tensor_destroy(o);
    dat_quantizer_destroy(q);
    dat_ctx_destroy(ctx);
}

START_TEST(test_unbiased_l2)
{
    check_unbiased(DAT_QUANT_NORM_L2, 2);
    check_unbiased(DAT_QUANT_NORM_L2, 4);
    check_unbiased(DAT_QUANT_NORM_L2, 8);
}
END_TEST

START_TEST(test_unbiased_max)
{
    check_unbiased(DAT_QUANT_NORM_MAX, 3);
    check_unbiased(DAT_QUANT_NORM_MAX, 8);
}
END_TEST

START_TEST(test_passthrough_exact)
{
    dat_ctx *ctx = make_ctx(2, 1);
    const size_t n = 70001;
    float *x = malloc(n * sizeof *x);
    fill_vector(x, n, 4);
    x[5] = -0.0f;
    x[6] = FLT_MIN / 8; /* denormal */
    dat_quantizer *q = make_q(ctx, 32, 512, DAT_QUANT_NORM_L2, 0);
    dat_tensor *t = make_tensor(ctx, (int64_t)n, x), *o = make_tensor(ctx, (int64_t)n, NULL);
    size_t bytes;
    ck_assert_dat_ok(dat_quantizer_encoded_size(q, (int64_t)n, &bytes));
    ck_assert_uint_eq(bytes, 4 * n);
    void *codes = malloc(bytes);
    ck_assert_dat_ok(dat_quantizer_encode(q, t, 0, codes, bytes));
    ck_assert_mem_eq(codes, x, bytes);
    ck_assert_dat_ok(dat_quantizer_decode(q, codes, bytes, o, 0));
    ck_assert_mem_eq(host(o), x, bytes);
    ck_assert_dat_ok(dat_quantizer_decode(q, codes, bytes, o, 1));
    for (size_t i = 0; i < n; ++i)
        ck_assert_msg(host(o)[i] == x[i] + x[i], "accumulate at %zu: %g", i, (double)host(o)[i]);
    free(codes);
    free(x);
    dat_tensor_destroy(t);
    dat_tensor_destroy(o);
    dat_quantizer_destroy(q);
    dat_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_zero_and_tiny_buckets)
{
    dat_ctx *ctx = make_ctx(1, 5);
    const size_t n = 2048;
    float *x = calloc(n, sizeof *x);
    fill_vector(x, 512, 5);                /* bucket 0: normal values */
    /* bucket 1: zeros; bucket 2: denormals; bucket 3: tiny normals (underflow in float sums) */
    for (size_t i = 1024; i < 1536; ++i)
        x[i] = (i % 3 ? 1 : -1) * FLT_MIN / (float)(2 + i % 5);
    for (size_t i = 1536; i < 2048; ++i)
        x[i] = (i % 2 ? 1e-25f : -3e-24f);
    for (int norm = 0; norm < 2; ++norm) {
        dat_quantizer *q = make_q(ctx, 8, 512, (dat_quant_norm)norm, 0);
        dat_tensor *t = make_tensor(ctx, (int64_t)n, x), *o = make_tensor(ctx, (int64_t)n, NULL);
        size_t bytes;
        ck_assert_dat_ok(dat_quantizer_encoded_size(q, (int64_t)n, &bytes));
        void *codes = malloc(bytes);
        double mean[512] = {0};
        for (int d = 0; d < 200; ++d) {
            ck_assert_dat_ok(dat_quantizer_encode(q, t, (uint64_t)d, codes, bytes));
            ck_assert_dat_ok(dat_quantizer_decode(q, codes, bytes, o, 0));
            const float *y = host(o);
            for (size_t i = 0; i < n; ++i) {
                ck_assert_msg(isfinite(y[i]), "norm %d element %zu decodes to %g", norm, i,
                              (double)y[i]);
                if (i >= 512 && i < 1024)
                    ck_assert_msg(y[i] == 0.0f && !signbit(y[i]),
                                  "zero bucket element %zu decodes to %g", i, (double)y[i]);
                size_t lo = i / 512 * 512;
                double step = ref_norm(x, lo, 512, (dat_quant_norm)norm) / 127.0;
                ck_assert_msg(fabs((double)y[i] - x[i]) <= step * (1 + 1e-5),
                              "norm %d element %zu: %g vs %g (level %g)", norm, i, (double)y[i],
                              (double)x[i], step);
                if (i >= 1536)
                    mean[i - 1536] += y[i] / 200.0;
            }
        }
        /* The tiny bucket is quantized, not flushed to zero: its mean tracks x. */
        double se = ref_norm(x, 1536, 512, (dat_quant_norm)norm) / 127.0 / sqrt(200.0) / 2;
        for (size_t i = 0; i < 512; ++i)
            ck_assert_msg(fabs(mean[i] - x[1536 + i]) <= 4 * se + 1e-30,
                          "norm %d tiny element %zu: mean %g vs %g", norm, i, mean[i],
                          (double)x[1536 + i]);
        free(codes);
        dat_tensor_destroy(t);
        dat_tensor_destroy(o);
        dat_quantizer_destroy(q);
    }
    free(x);
    dat_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_nonfinite_input)
{
    dat_ctx *ctx = make_ctx(2, 5);
    const size_t n = 100000;
    float *x = malloc(n * sizeof *x);
    fill_vector(x, n, 6);
    const int bl[] = {4, 8, 32};
    for (int norm = 0; norm < 2; ++norm) {
        for (size_t k = 0; k < 3; ++k) {
            dat_quantizer *q = make_q(ctx, bl[k], 512, (dat_quant_norm)norm, 0);
            size_t bytes;
            ck_assert_dat_ok(dat_quantizer_encoded_size(q, (int64_t)n, &bytes));
            void *codes = malloc(bytes);
            float keep = x[70517], keep2 = x[99999];
            x[70517] = NAN;
            x[99999] = INFINITY;
            dat_tensor *t = make_tensor(ctx, (int64_t)n, x);
            ck_assert_dat_err(dat_quantizer_encode(q, t, 0, codes, bytes), DAT_ERR_NUMERIC,
                              "element 70517 is NaN or Inf");
            x[70517] = keep;
            ck_assert_dat_ok(dat_tensor_write(t, x, n * sizeof *x));
            ck_assert_dat_err(dat_quantizer_encode(q, t, 0, codes, bytes), DAT_ERR_NUMERIC,
                              "element 99999");
            x[99999] = keep2;
            dat_tensor_destroy(t);
            free(codes);
            dat_quantizer_destroy(q);
        }
    }
    /* A finite bucket whose l2 norm does not fit a float. */
    dat_quantizer *q = make_q(ctx, 8, 4, DAT_QUANT_NORM_L2, 0);
    float big[8] = {1, 2, 3, 4, 3e38f, -3e38f, 1, 1};
    dat_tensor *t = make_tensor(ctx, 8, big);
    uint8_t codes[64];
    ck_assert_dat_err(dat_quantizer_encode(q, t, 0, codes, sizeof codes), DAT_ERR_NUMERIC,
                      "starting at element 4 overflows");
    dat_quantizer_destroy(q);
    q = make_q(ctx, 8, 4, DAT_QUANT_NORM_MAX, 0); /* fine with the max norm */
    ck_assert_dat_ok(dat_quantizer_encode(q, t, 0, codes, sizeof codes));
    dat_quantizer_destroy(q);
    dat_tensor_destroy(t);
    free(x);
    dat_ctx_destroy(ctx);
}
END_TEST

/* Same (ctx seed, options, step) -> same bytes, on 1 or 2 threads; any change
 * of seed, rank, step or context seed changes them. */
static void encode_with(uint64_t ctx_seed, int threads, int rank, uint64_t seed, uint64_t step,
                        const float *x, size_t n, void *codes, size_t bytes)
{
    dat_ctx *ctx = make_ctx(threads, ctx_seed);
    dat_quantizer_options o;
    dat_quantizer_options_init(&o);
    o.bits = 5;
    o.rank = rank;
    o.seed = seed;
    dat_quantizer *q = NULL;
    ck_assert_dat_ok(dat_quantizer_create(&q, ctx, &o));
    dat_tensor *t = make_tensor(ctx, (int64_t)n, x);
    ck_assert_dat_ok(dat_quantizer_encode(q, t, step, codes, bytes));
    dat_tensor_destroy(t);
    dat_quantizer_destroy(q);
    dat_ctx_destroy(ctx);
}

START_TEST(test_repeatable)
{
    const size_t n = 200003;
    float *x = malloc(n * sizeof *x);
    fill_vector(x, n, 7);
    dat_ctx *ctx = make_ctx(1, 0);
    dat_quantizer *q = make_q(ctx, 5, 512, DAT_QUANT_NORM_L2, 0);
    size_t bytes;
    ck_assert_dat_ok(dat_quantizer_encoded_size(q, (int64_t)n, &bytes));
    dat_quantizer_destroy(q);
    dat_ctx_destroy(ctx);
    uint8_t *a = malloc(bytes), *b = malloc(bytes);
    encode_with(42, 1, 3, 9, 17, x, n, a, bytes);
    encode_with(42, 2, 3, 9, 17, x, n, b, bytes);
    ck_assert_msg(memcmp(a, b, bytes) == 0, "1 and 2 threads encode differently");
    encode_with(42, 2, 3, 9, 17, x, n, b, bytes);
    ck_assert_msg(memcmp(a, b, bytes) == 0, "a repeated encode differs");
    const struct { uint64_t cs; int rank; uint64_t seed, step; } other[] = {
        {43, 3, 9, 17}, {42, 4, 9, 17}, {42, 3, 10, 17}, {42, 3, 9, 18}};
    for (size_t k = 0; k < 4; ++k) {
        encode_with(other[k].cs, 2, other[k].rank, other[k].seed, other[k].step, x, n, b, bytes);
        size_t same = 0;
        for (size_t i = 0; i < bytes; ++i)
            same += a[i] == b[i];
        /* Norms stay equal; the codes must mostly differ. */
        ck_assert_msg(same < bytes * 3 / 4, "variant %zu shares %zu of %zu bytes", k, same, bytes);
    }
    free(a);
    free(b);
    free(x);
}
END_TEST

/* Bucket-aligned slices encoded with their offset give the bytes of the whole. */
START_TEST(test_slices_match_whole)
{
    dat_ctx *ctx = make_ctx(2, 77);
    const size_t n = 100000, B = 512;
    float *x = malloc(n * sizeof *x);
    fill_vector(x, n, 8);
    const int bl[] = {3, 8, 32};
    for (size_t k = 0; k < 3; ++k) {
        int bits = bl[k];
        dat_quantizer *q = make_q(ctx, bits, (int)B, DAT_QUANT_NORM_L2, 0);
        size_t bytes;
        ck_assert_dat_ok(dat_quantizer_encoded_size(q, (int64_t)n, &bytes));
        uint8_t *whole = malloc(bytes), *parts = malloc(bytes);
        ck_assert_dat_ok(dat_quantizer_encode_slice(q, "t", x, n, 0, 2, 5, 0, 1, whole));
        size_t cuts[] = {0, 3 * B, 40 * B, 41 * B, n}, pos = 0;
        for (size_t k = 0; k + 1 < 5; ++k) {
            size_t len = cuts[k + 1] - cuts[k];
            ck_assert_dat_ok(dat_quantizer_encode_slice(q, "t", x + cuts[k], len, cuts[k], 2, 5,
                                                        0, 1, parts + pos));
            pos += dat_quant_encoded_bytes(&q->cfg, len);
        }
        ck_assert_uint_eq(pos, bytes);
        ck_assert_msg(memcmp(whole, parts, bytes) == 0, "bits %d: slices differ from the whole",
                      bits);
        free(whole);
        free(parts);
        dat_quantizer_destroy(q);
    }
    free(x);
    dat_ctx_destroy(ctx);
}
END_TEST

/*
 * Error feedback: encoding x + e and keeping e' = x + e − q gives
 * Σ_t q_t = T·x − e_T, so the running sum of the decodes stays within one
 * residual of T·x. With the max norm, |e'| <= ‖x + e‖∞ / s, so the residual
 * stays below ‖x‖∞ / (s − 1).
 */
START_TEST(test_error_feedback)
{
    dat_ctx *ctx = make_ctx(1, 3);
    const size_t n = 1500;
    float *x = malloc(n * sizeof *x);
    fill_vector(x, n, 9);
    dat_quantizer *q = make_q(ctx, 4, 512, DAT_QUANT_NORM_MAX, 1);
    double xmax = 0;
    for (size_t i = 0; i < n; ++i)
        xmax = fmax(xmax, fabs(x[i]));
    dat_tensor *t = make_tensor(ctx, (int64_t)n, x), *o = make_tensor(ctx, (int64_t)n, NULL);
    size_t bytes;
    ck_assert_dat_ok(dat_quantizer_encoded_size(q, (int64_t)n, &bytes));
    void *codes = malloc(bytes);
    double *sum = calloc(n, sizeof *sum);
    const int T = 300;
    for (int s = 0; s < T; ++s) {
        ck_assert_dat_ok(dat_quantizer_encode(q, t, (uint64_t)s, codes, bytes));
        ck_assert_dat_ok(dat_quantizer_decode(q, codes, bytes, o, 0));
        for (size_t i = 0; i < n; ++i)
            sum[i] += host(o)[i];
    }
    ck_assert_uint_ge(q->residual_len, n);
    for (size_t i = 0; i < n; ++i) {
        double want = (double)T * x[i] - q->residual[i];
        ck_assert_msg(fabs(sum[i] - want) <= 1e-4 * T * 7,
                      "element %zu: sum of decodes %.6f, T x - e = %.6f", i, sum[i], want);
        ck_assert_msg(fabs(q->residual[i]) <= xmax / 6 * (1 + 1e-5),
                      "element %zu: residual %g above max|x| / (s - 1) = %g", i,
                      (double)q->residual[i], xmax / 6);
        /* So the average of the decodes converges to x like 1/T, not 1/sqrt(T). */
        ck_assert_msg(fabs(sum[i] / T - x[i]) <= xmax / 6 / T + 1e-4,
                      "element %zu: average of decodes %.6f vs x %.6f", i, sum[i] / T,
                      (double)x[i]);
    }
    /* A NaN input zeroes the residual; reset zeroes it too. */
    ck_assert_dat_ok(dat_quantizer_encode(q, t, 999, codes, bytes));
    float keep = x[3];
    x[3] = NAN;
    ck_assert_dat_ok(dat_tensor_write(t, x, n * sizeof *x));
    ck_assert_dat_err(dat_quantizer_encode(q, t, 1000, codes, bytes), DAT_ERR_NUMERIC,
                      "residual zeroed");
    for (size_t i = 0; i < n; ++i)
        ck_assert_msg(q->residual[i] == 0.0f, "residual %zu = %g after NaN", i,
                      (double)q->residual[i]);
    x[3] = keep;
    ck_assert_dat_ok(dat_tensor_write(t, x, n * sizeof *x));
    ck_assert_dat_ok(dat_quantizer_encode(q, t, 1001, codes, bytes));
    ck_assert_dat_ok(dat_quantizer_reset(q));
    for (size_t i = 0; i < n; ++i)
        ck_assert_msg(q->residual[i] == 0.0f, "residual %zu = %g after reset", i,
                      (double)q->residual[i]);
    free(sum);
    free(codes);
    free(x);
    dat_tensor_destroy(t);
    dat_tensor_destroy(o);
    dat_quantizer_destroy(q);
    dat_ctx_destroy(ctx);
}
END_TEST

/* Values near FLT_MAX come back finite: xi * (norm / s) took two roundings,
 * which carried a norm near FLT_MAX past it to inf (DAT_OK both ways). */
START_TEST(test_decode_near_flt_max_stays_finite)
{
    static const float single[] = {FLT_MAX, -FLT_MAX, 3.0e38f, 2.0e38f};
    static const float bucket[] = {FLT_MAX, -FLT_MAX, 1.0e38f, -3.0e38f};
    static const int widths[] = {2, 3, 4, 8, 16};
    dat_ctx *ctx = make_ctx(1, 3);
    for (int nk = 0; nk < 2; ++nk)
        for (size_t w = 0; w < sizeof widths / sizeof *widths; ++w)
            for (size_t i = 0; i <= sizeof single / sizeof *single; ++i) {
                /* One value alone (either norm), or, with the max norm, a bucket of four. */
                int whole = i == sizeof single / sizeof *single;
                if (whole && nk == 0)
                    continue; /* their l2 norm overflows: refused, as documented */
                const float *x = whole ? bucket : &single[i];
                int64_t n = whole ? 4 : 1;
                dat_quantizer *q = make_q(ctx, widths[w], 64,
                                          nk ? DAT_QUANT_NORM_MAX : DAT_QUANT_NORM_L2, 0);
                dat_tensor *in = make_tensor(ctx, n, x), *out = make_tensor(ctx, n, NULL);
                size_t bytes = 0;
                ck_assert_dat_ok(dat_quantizer_encoded_size(q, n, &bytes));
                uint32_t codes[16];
                ck_assert(bytes <= sizeof codes);
                ck_assert_dat_ok(dat_quantizer_encode(q, in, 0, codes, bytes));
                ck_assert_dat_ok(dat_quantizer_decode(q, codes, bytes, out, 0));
                for (int64_t k = 0; k < n; ++k)
                    ck_assert_msg(isfinite(host(out)[k]),
                                  "%d bits, %s norm: %g decoded as %g", widths[w],
                                  nk ? "max" : "l2", x[k], host(out)[k]);
                dat_tensor_destroy(in);
                dat_tensor_destroy(out);
                dat_quantizer_destroy(q);
            }
    dat_ctx_destroy(ctx);
}
END_TEST

/* A message no encoder writes is refused, and out keeps its values: a bucket
 * norm of NaN or Inf decoded to NaN, a negative one flipped the signs, with
 * DAT_OK (a fuzzing review); so is a NaN among pass-through values. */
START_TEST(test_corrupt_messages_are_refused)
{
    dat_ctx *ctx = make_ctx(1, 3);
    const int64_t n = 40; /* buckets of 32: a whole one and a part */
    float x[40], before[40];
    fill_vector(x, (size_t)n, 5);
    for (int pass = 0; pass < 2; ++pass) {
        dat_quantizer *q = make_q(ctx, pass ? 32 : 8, 32, DAT_QUANT_NORM_L2, 0);
        dat_tensor *in = make_tensor(ctx, n, x), *out = make_tensor(ctx, n, x);
        size_t bytes = 0;
        ck_assert_dat_ok(dat_quantizer_encoded_size(q, n, &bytes));
        uint32_t *codes = malloc(bytes), *bad = malloc(bytes);
        ck_assert_dat_ok(dat_quantizer_encode(q, in, 0, codes, bytes));
        memcpy(before, host(out), sizeof before);
        /* Word 0 is bucket 0's norm (pass-through: value 0); the second
         * bucket's norm follows bucket 0's 4 + 32 bytes (value 9). */
        static const float poison[] = {NAN, INFINITY, -2.0f};
        for (int at = 0; at < 2; ++at)
            for (size_t k = 0; k < sizeof poison / sizeof *poison; ++k) {
                if (pass && poison[k] < 0)
                    continue; /* a negative value is a value */
                memcpy(bad, codes, bytes);
                memcpy(&bad[at ? 9 : 0], &poison[k], sizeof(float));
                ck_assert_dat_err(dat_quantizer_decode(q, bad, bytes, out, 1), DAT_ERR_FORMAT,
                                  "corrupt");
                ck_assert_mem_eq(host(out), before, sizeof before);
            }
        ck_assert_dat_ok(dat_quantizer_decode(q, codes, bytes, out, 0));
        free(codes);
        free(bad);
        dat_tensor_destroy(in);
        dat_tensor_destroy(out);
        dat_quantizer_destroy(q);
    }
    dat_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_decode_accumulate)
{
    dat_ctx *ctx = make_ctx(1, 3);
    const size_t n = 1000;
    float *x = malloc(n * sizeof *x);
    fill_vector(x, n, 10);
    dat_quantizer *q = make_q(ctx, 6, 300, DAT_QUANT_NORM_L2, 0);
    dat_tensor *t = make_tensor(ctx, (int64_t)n, x), *o = make_tensor(ctx, (int64_t)n, NULL);
    size_t bytes;
    ck_assert_dat_ok(dat_quantizer_encoded_size(q, (int64_t)n, &bytes));
    void *codes = malloc(bytes);
    ck_assert_dat_ok(dat_quantizer_encode(q, t, 1, codes, bytes));
    ck_assert_dat_ok(dat_quantizer_decode(q, codes, bytes, o, 0));
    float *once = malloc(n * sizeof *once);
    memcpy(once, host(o), n * sizeof *once);
    ck_assert_dat_ok(dat_tensor_fill(o, 0.5));
    ck_assert_dat_ok(dat_quantizer_decode(q, codes, bytes, o, 1));
    for (size_t i = 0; i < n; ++i)
        ck_assert_msg(host(o)[i] == 0.5f + once[i], "element %zu: %g, expected %g", i,
                      (double)host(o)[i], (double)(0.5f + once[i]));
    free(once);
    free(codes);
    free(x);
    dat_tensor_destroy(t);
    dat_tensor_destroy(o);
    dat_quantizer_destroy(q);
    dat_ctx_destroy(ctx);
}
END_TEST

/* The literal rounding rule of dat_quant_code: r = s |v| / norm (rounded as
 * two products), xi = floor(r) + [u16 / 2^16 < r - floor(r)], r clamped to s. */
static uint32_t literal_code(float v, float norm, int bits, uint32_t u16)
{
    uint32_t s = dat_quant_levels(bits);
    float pre = norm < DAT_QUANT_TINY_NORM ? DAT_QUANT_TINY_SCALE : 1.0f;
    float r = fabsf(v) * pre * ((float)s / (norm * pre));
    r = r < (float)s ? r : (float)s;
    float l = floorf(r);
    uint32_t xi = (uint32_t)l + ((float)u16 / 65536.0f < r - l ? 1u : 0u);
    return xi ? xi | (v < 0.0f ? 1u << (bits - 1) : 0u) : 0u;
}

/* dat_quant_code's fixed-point form equals the literal rule: values on and
 * next to every kind of level, clamped ones, tiny norms, and the uniforms on
 * both sides of each value's threshold. */
START_TEST(test_code_rule)
{
    size_t checked = 0;
    for (int bits = 2; bits <= 16; ++bits) {
        uint32_t s = dat_quant_levels(bits);
        for (uint32_t i = 0; i < 4000; ++i) {
            uint32_t w = dat_philox_word(99, (uint64_t)bits, i);
            float norm = i % 5 == 4 ? 3e-30f * (float)(1 + i % 7) : 0.5f + (float)(w % 1000);
            float u = (float)(w >> 8) / 16777216.0f;
            float v = norm * u * (i % 2 ? -1.0f : 1.0f);
            if (i % 7 == 3) /* exactly on a level */
                v = norm * (float)(w % (s + 1)) / (float)s;
            if (i % 11 == 5) /* an ulp over the norm: clamped */
                v = nextafterf(norm, 2 * norm);
            dat_quant_scale ks = dat_quant_make_scale(norm, s);
            float r = fabsf(v) * ks.pre * ks.scale;
            uint32_t t = (uint32_t)ceilf(r < (float)(s << 16) ? r : (float)(s << 16)) & 0xffffu;
            const uint32_t us[] = {0, 1, 0xffff, t, t ? t - 1 : 0, (t + 1) & 0xffff, w >> 16};
            for (size_t k = 0; k < sizeof us / sizeof us[0]; ++k, ++checked)
                ck_assert_msg(dat_quant_code(v, ks, s, us[k], bits) ==
                                  literal_code(v, norm, bits, us[k]),
                              "bits %d, v %a, norm %a, u16 %u: code %u, the rule gives %u", bits,
                              (double)v, (double)norm, us[k],
                              dat_quant_code(v, ks, s, us[k], bits),
                              literal_code(v, norm, bits, us[k]));
        }
    }
    ck_assert_uint_eq(checked, 15 * 4000 * 7);
}
END_TEST

/* The lane sums of quantize.c, element k of a bucket in lane k mod 16, folded
 * in halves (lane j with j + 8, then j + 4, j + 2, j + 1), in scalar code. */
static float ref_lane_norm(const float *v, size_t m, dat_quant_norm norm)
{
    int mx = norm == DAT_QUANT_NORM_MAX;
    float a[16] = {0};
    for (size_t k = 0; k < m; ++k) {
        float x = v[k], ax = fabsf(x);
        a[k % 16] = mx ? (ax > a[k % 16] ? ax : a[k % 16]) : a[k % 16] + x * x;
    }
    for (int h = 8; h >= 1; h /= 2)
        for (int j = 0; j < h; ++j)
            a[j] = mx ? (a[j + h] > a[j] ? a[j + h] : a[j]) : a[j] + a[j + h];
    return mx ? a[0] : sqrtf(a[0]);
}

/* The encode of elements offset .. offset + n of a flat buffer as quant_math.h
 * defines it, one element at a time: the norm, then per element the 16-bit
 * uniform of its Philox word and dat_quant_code, packed bit by bit. */
static void ref_encode(const float *x, size_t n, uint64_t offset, int bits, size_t bucket,
                       dat_quant_norm norm, uint64_t key, uint64_t stream, uint8_t *out)
{
    uint32_t s = dat_quant_levels(bits);
    for (size_t lo = 0; lo < n; lo += bucket) {
        size_t m = n - lo < bucket ? n - lo : bucket;
        float nr = ref_lane_norm(x + lo, m, norm);
        memcpy(out, &nr, 4);
        uint32_t *words = (uint32_t *)(out + 4);
        size_t nw = dat_pack_words(m, bits);
        memset(words, 0, 4 * nw);
        dat_quant_scale ks = dat_quant_make_scale(nr, s);
        for (size_t k = 0; k < m && nr > 0.0f; ++k) {
            uint64_t g = offset + lo + k;
            uint32_t w = dat_philox_word(key, stream, dat_quant_word_index(g));
            uint32_t code = dat_quant_code(x[lo + k], ks, s, dat_quant_uniform16(w, g), bits);
            for (int i = 0; i < bits; ++i) {
                size_t bit = k * (size_t)bits + (size_t)i;
                words[bit / 32] |= ((code >> i) & 1u) << (bit % 32);
            }
        }
        out += 4 + 4 * nw;
    }
}

/* Decodes ref_encode's layout one bit at a time: out = out + q * scale. */
static void ref_decode_acc(const uint8_t *in, size_t n, int bits, size_t bucket, float scale,
                           float *out)
{
    for (size_t lo = 0; lo < n; lo += bucket) {
        size_t m = n - lo < bucket ? n - lo : bucket;
        float nr;
        memcpy(&nr, in, 4);
        const uint32_t *words = (const uint32_t *)(in + 4);
        float step = dat_quant_step(nr, dat_quant_levels(bits));
        for (size_t k = 0; k < m; ++k) {
            uint32_t code = 0;
            for (int i = 0; i < bits; ++i) {
                size_t bit = k * (size_t)bits + (size_t)i;
                code |= ((words[bit / 32] >> (bit % 32)) & 1u) << i;
            }
            out[lo + k] = out[lo + k] + dat_quant_value(code, step, bits) * scale;
        }
        in += 4 + 4 * dat_pack_words(m, bits);
    }
}

/* The vector encode gives ref_encode's bytes, and the decode (accumulating,
 * scaled) ref_decode_acc's values: every width, ℓ2 and max norms, buckets that
 * are and are not whole groups of DAT_QUANT_GROUP elements, and slices that
 * start inside a group; 1 and 2 threads. */
START_TEST(test_codes_match_reference)
{
    const size_t n = 70001;
    float *x = malloc(n * sizeof *x);
    fill_vector(x, n, 11);
    for (size_t i = 0; i < n; i += 97)
        x[i] = 0.0f; /* codes of exact zeros */
    const int bucket[] = {512, 100, 4096, 37};
    const uint64_t offsets[] = {0, 7, 4096 + 19};
    uint8_t *got = malloc(8 * n + 4096), *want = malloc(8 * n + 4096);
    float *dec_got = malloc(n * sizeof *dec_got), *dec_want = malloc(n * sizeof *dec_want);
    int checked = 0;
    for (int bits = 2; bits <= 16; ++bits) {
        for (int nm = 0; nm < 2; ++nm) {
            dat_quant_norm norm = nm ? DAT_QUANT_NORM_MAX : DAT_QUANT_NORM_L2;
            int bk = bucket[(bits + nm) % 4];
            uint64_t off = offsets[(bits + 2 * nm) % 3];
            dat_ctx *ctx = make_ctx(1 + bits % 2, 4242);
            dat_quantizer *q = make_q(ctx, bits, bk, norm, 0);
            size_t bytes = dat_quant_encoded_bytes(&q->cfg, n);
            memset(got, 0xab, bytes);
            ck_assert_dat_ok(dat_quantizer_encode_slice(q, "t", x, n, off, 3, 21,
                                                        DAT_QUANT_PHASE_WORKER, 0, got));
            uint64_t stream = dat_quant_stream(q->opts.seed, 3, 21, DAT_QUANT_PHASE_WORKER);
            ref_encode(x, n, off, bits, (size_t)bk, norm, 4242, stream, want);
            for (size_t i = 0; i < bytes; ++i)
                ck_assert_msg(got[i] == want[i],
                              "bits %d, %s norm, bucket %d, offset %llu: byte %zu (bucket %zu) "
                              "is 0x%02x, want 0x%02x", bits, nm ? "max" : "l2", bk,
                              (unsigned long long)off, i, i / (bytes / ((n + bk - 1) / bk)),
                              got[i], want[i]);
            for (size_t i = 0; i < n; ++i)
                dec_got[i] = dec_want[i] = x[(i * 7) % n];
            ck_assert_dat_ok(dat_quantizer_decode_slice(q, got, n, dec_got, 1, 0.5f));
            ref_decode_acc(want, n, bits, (size_t)bk, 0.5f, dec_want);
            for (size_t i = 0; i < n; ++i)
                ck_assert_msg(memcmp(&dec_got[i], &dec_want[i], sizeof(float)) == 0,
                              "bits %d, bucket %d: decoded element %zu is %a, want %a", bits, bk,
                              i, (double)dec_got[i], (double)dec_want[i]);
            ++checked;
            dat_quantizer_destroy(q);
            dat_ctx_destroy(ctx);
        }
    }
    ck_assert_int_eq(checked, 30);
    free(dec_got);
    free(dec_want);
    free(got);
    free(want);
    free(x);
}
END_TEST

/* Both variants of the grouped codes (portable, AVX-512) give dat_quant_code's
 * codes at every storage width, with and without the tiny-norm pre-scale. */
START_TEST(test_codes_variants)
{
    enum { N = 4 * DAT_QUANT_GROUP };
    float v[N];
    uint32_t w[N / 2], want[N], got32[N];
    _Alignas(4) uint8_t got8[N]; /* packed widths are written as words */
    uint16_t got16[N];
    int ran = 0;
    for (int tiny = 0; tiny < 2; ++tiny) {
        float norm = tiny ? 1e-40f : 3.0f;
        for (size_t i = 0; i < N; ++i)
            v[i] = norm * ((float)(dat_philox_word(3, 4, i) >> 8) / 16777216.0f - 0.5f);
        for (size_t i = 0; i < N / 2; ++i)
            w[i] = dat_philox_word(3, 5, i);
        const int widths[] = {8, 16, 32, 32, 4, 2};
        for (size_t wi = 0; wi < 6; ++wi) {
            int width = widths[wi], bits = wi == 3 ? 5 : width;
            uint32_t s = dat_quant_levels(bits);
            dat_quant_scale ks = dat_quant_make_scale(norm, s);
            for (size_t i = 0; i < N; ++i)
                want[i] = dat_quant_code(v[i], ks, s,
                                         dat_quant_uniform16(w[dat_quant_word_index(i)], i), bits);
            for (int var = 0; var < 2; ++var) {
                void *out = width <= 8 ? (void *)got8 : width == 16 ? (void *)got16 : got32;
                if (!dat_quant_codes_variant(var, v, w, N, ks, s, bits, out, width))
                    continue;
                ++ran;
                for (size_t i = 0; i < N; ++i) {
                    uint32_t g = width == 8 ? got8[i] : width == 16 ? got16[i] : got32[i];
                    if (width < 8) /* packed: code i in bits [i w, i w + w) */
                        g = (uint32_t)(got8[i * (size_t)width / 8] >> (i * (size_t)width % 8)) &
                            ((1u << width) - 1u);
                    ck_assert_msg(g == want[i], "variant %d, width %d, bits %d, norm %g: code %zu "
                                  "is %u, want %u", var, width, bits, (double)norm, i, g, want[i]);
                }
            }
        }
    }
    printf("grouped codes: %d variant runs checked\n", ran);
    ck_assert_int_ge(ran, 12);
}
END_TEST

/* A context whose backend does not run quantizers (CUDA until its kernels are
 * switched on) gets a quantizer that computes in a host context of its own,
 * keyed by the caller's context seed: the same bytes as a host quantizer, with
 * error feedback, over two steps. */
START_TEST(test_exec_context)
{
    dat_ctx *ctx = make_ctx(2, 77);
    dat_backend no_quant = *ctx->be;
    no_quant.runs_quantizer = 0;
    const dat_backend *real = ctx->be;
    const int64_t n = 100003;
    float *x = malloc((size_t)n * sizeof *x);
    fill_vector(x, (size_t)n, 12);
    dat_quantizer *plain = make_q(ctx, 6, 512, DAT_QUANT_NORM_L2, 1);
    ctx->be = &no_quant;
    dat_quantizer *staged = make_q(ctx, 6, 512, DAT_QUANT_NORM_L2, 1);
    ctx->be = real;
    ck_assert_ptr_ne(staged->exec, ctx);
    ck_assert_ptr_eq(plain->exec, ctx);
    size_t bytes = dat_quant_encoded_bytes(&plain->cfg, (size_t)n);
    uint8_t *a = malloc(bytes), *b = malloc(bytes);
    dat_tensor *t = make_tensor(ctx, n, x);
    for (uint64_t step = 0; step < 2; ++step) {
        ck_assert_dat_ok(dat_quantizer_encode(plain, t, step, a, bytes));
        ck_assert_dat_ok(dat_quantizer_encode(staged, t, step, b, bytes));
        ck_assert_msg(memcmp(a, b, bytes) == 0, "step %d: the codes differ", (int)step);
    }
    dat_tensor_destroy(t);
    dat_quantizer_destroy(staged);
    dat_quantizer_destroy(plain);
    free(a);
    free(b);
    free(x);
    dat_ctx_destroy(ctx);
}
END_TEST

/* The bulk Philox variants (portable, AVX2, AVX-512) give dat_philox_block's
 * words, across the carry into the block counter's high word. */
START_TEST(test_philox_bulk_variants)
{
    const uint64_t starts[] = {0, 0xffffffffull - 20, 0x123456789abcull, ~0ull - 100};
    const size_t counts[] = {16, 48, 64};
    uint32_t w[4 * 64];
    int ran = 0;
    for (int v = 0; v < 3; ++v) {
        for (size_t si = 0; si < 4; ++si) {
            for (size_t ci = 0; ci < 3; ++ci) {
                memset(w, 0, sizeof w);
                uint64_t key = 0x0123456789abcdefull ^ si, stream = 0xfedcba9876543210ull + ci;
                if (!dat_philox_blocks_variant(v, key, stream, starts[si], counts[ci], w))
                    continue;
                ++ran;
                for (size_t b = 0; b < counts[ci]; ++b) {
                    dat_philox_ctr c = dat_philox_block(key, stream, starts[si] + b);
                    for (int j = 0; j < 4; ++j)
                        ck_assert_msg(w[4 * b + (size_t)j] == c.v[j],
                                      "variant %d start %llx block %zu word %d: %08x, expected "
                                      "%08x", v, (unsigned long long)starts[si], b, j,
                                      w[4 * b + (size_t)j], c.v[j]);
                }
            }
        }
    }
    printf("bulk Philox: %d variant runs checked\n", ran);
    ck_assert_int_ge(ran, 12);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("quant");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_philox_bulk_variants);
    tcase_add_test(tc, test_encoded_size);
    tcase_add_test(tc, test_pack_layout);
    tcase_add_test(tc, test_error_bound_all_bits);
    tcase_add_test(tc, test_unbiased_l2);
    tcase_add_test(tc, test_unbiased_max);
    tcase_add_test(tc, test_passthrough_exact);
    tcase_add_test(tc, test_zero_and_tiny_buckets);
    tcase_add_test(tc, test_nonfinite_input);
    tcase_add_test(tc, test_repeatable);
    tcase_add_test(tc, test_code_rule);
    tcase_add_test(tc, test_codes_match_reference);
    tcase_add_test(tc, test_codes_variants);
    tcase_add_test(tc, test_exec_context);
    tcase_add_test(tc, test_slices_match_whole);
    tcase_add_test(tc, test_error_feedback);
    tcase_add_test(tc, test_decode_accumulate);
    tcase_add_test(tc, test_decode_near_flt_max_stays_finite);
    tcase_add_test(tc, test_corrupt_messages_are_refused);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
