/* Philox 4x32 against Random123's known answers, the statistics of the
 * uniform and normal fills built on it, and the other integer math the CUDA
 * kernels share with the host (core/fast_div.h). */
#include <math.h>
#include <stdlib.h>

#include "check_util.h"
#include "core/fast_div.h"
#include "core/philox.h"

/* From the kat_vectors file of Random123: counter[4], key[2] -> output[4]. */
static const struct {
    int rounds;
    uint32_t ctr[4], key[2], out[4];
} kat[] = {
    {7, {0, 0, 0, 0}, {0, 0}, {0x5f6fb709, 0x0d893f64, 0x4f121f81, 0x4f730a48}},
    {7, {~0u, ~0u, ~0u, ~0u}, {~0u, ~0u}, {0x5207ddc2, 0x45165e59, 0x4d8ee751, 0x8c52f662}},
    {7, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
     {0x4dfccaba, 0x190a87f0, 0xc47362ba, 0xb6b5242a}},
    {10, {0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {10, {~0u, ~0u, ~0u, ~0u}, {~0u, ~0u}, {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {10, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

START_TEST(test_known_answers)
{
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; ++i) {
        dat_philox_ctr c = {{kat[i].ctr[0], kat[i].ctr[1], kat[i].ctr[2], kat[i].ctr[3]}};
        dat_philox_ctr r = dat_philox4x32_r(c, kat[i].key[0], kat[i].key[1], kat[i].rounds);
        for (int j = 0; j < 4; ++j)
            ck_assert_msg(r.v[j] == kat[i].out[j], "vector %zu word %d: %08x, expected %08x", i,
                          j, r.v[j], kat[i].out[j]);
    }
}
END_TEST

START_TEST(test_keying)
{
    /* Block b of stream s under seed k is Philox(ctr = (b, s), key = k). */
    uint64_t seed = 0x299f31d0a4093822ull;
    dat_philox_ctr r = dat_philox_block(seed, 0x0370734413198a2eull, 0x85a308d3243f6a88ull);
    ck_assert_uint_eq(r.v[0], 0xd16cfe09);
    ck_assert_uint_eq(r.v[3], 0x24126ea1);
    dat_philox_ctr b = dat_philox_block(seed, 77, 12345);
    for (uint64_t j = 0; j < 4; ++j)
        ck_assert_uint_eq(dat_philox_word(seed, 77, 12345 * 4 + j), b.v[j]);
}
END_TEST

START_TEST(test_own_math_matches_libm)
{
    double worst_log = 0, worst_trig = 0;
    for (uint32_t k = 1; k < (1u << 24); k += 4099) {
        double u = (double)k / 16777216.0;
        double l = dat_rng_log(u);
        worst_log = fmax(worst_log, fabs(l - log(u)) / fmax(fabs(log(u)), 1e-300));
        double s, c;
        dat_rng_sincos_turn(u, &s, &c);
        worst_trig = fmax(worst_trig, fmax(fabs(s - sin(2 * M_PI * u)), fabs(c - cos(2 * M_PI * u))));
    }
    ck_assert_msg(worst_log < 1e-14, "log relative error %g", worst_log);
    ck_assert_msg(worst_trig < 1e-14, "sin/cos absolute error %g", worst_trig);
    double s, c;
    dat_rng_sincos_turn(0.0, &s, &c);
    ck_assert(s == 0.0 && c == 1.0);
    ck_assert(dat_rng_log(1.0) == 0.0);
}
END_TEST

static float *fill(dat_ctx *ctx, int normal, size_t n, uint64_t stream, uint64_t offset)
{
    int64_t shape[1] = {(int64_t)n};
    dat_tensor *t = NULL;
    ck_assert_dat_ok(dat_tensor_create(&t, ctx, DAT_FLOAT32, 1, shape));
    if (normal)
        ck_assert_dat_ok(dat_tensor_fill_normal(t, 0.0f, 1.0f, stream, offset));
    else
        ck_assert_dat_ok(dat_tensor_fill_uniform(t, 0.0f, 1.0f, stream, offset));
    float *out = malloc(n * sizeof *out);
    ck_assert_dat_ok(dat_tensor_read(t, out, n * sizeof *out));
    dat_tensor_destroy(t);
    return out;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Kolmogorov–Smirnov statistic of sorted samples against a CDF. */
static double ks_stat(float *v, size_t n, double (*cdf)(double))
{
    qsort(v, n, sizeof *v, cmp_float);
    double d = 0;
    for (size_t i = 0; i < n; ++i) {
        double f = cdf(v[i]);
        d = fmax(d, fmax(fabs(f - (double)i / n), fabs((double)(i + 1) / n - f)));
    }
    return d;
}

static double uniform_cdf(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

static double normal_cdf(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

static dat_ctx *ctx_with_seed(uint64_t seed)
{
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.seed = seed;
    o.num_threads = 2;
    dat_ctx *ctx = NULL;
    ck_assert_dat_ok(dat_ctx_create(&ctx, &o));
    return ctx;
}

/* With n = 10^6 draws: mean within 4 standard errors, variance within 1 %, and
 * the KS statistic below the 0.1 % critical value 1.95 / sqrt(n). */
static void check_moments_and_ks(float *v, size_t n, double mean, double var,
                                 double (*cdf)(double), const char *what)
{
    double m = 0, q = 0, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; ++i) {
        m += v[i];
        lo = fmin(lo, v[i]);
        hi = fmax(hi, v[i]);
    }
    m /= (double)n;
    for (size_t i = 0; i < n; ++i)
        q += (v[i] - m) * (v[i] - m);
    q /= (double)(n - 1);
    ck_assert_msg(fabs(m - mean) < 4 * sqrt(var / n), "%s: mean %g, expected %g", what, m, mean);
    ck_assert_msg(fabs(q - var) < 0.01 * var, "%s: variance %g, expected %g", what, q, var);
    double d = ks_stat(v, n, cdf);
    ck_assert_msg(d < 1.95 / sqrt((double)n), "%s: KS statistic %g", what, d);
    ck_assert_msg(isfinite(lo) && isfinite(hi), "%s: non-finite draw", what);
}

START_TEST(test_uniform_statistics)
{
    dat_ctx *ctx = ctx_with_seed(20220801);
    size_t n = 1000000;
    float *v = fill(ctx, 0, n, 3, 0);
    for (size_t i = 0; i < n; ++i)
        ck_assert(v[i] >= 0.0f && v[i] < 1.0f);
    check_moments_and_ks(v, n, 0.5, 1.0 / 12, uniform_cdf, "uniform");
    free(v);
    dat_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_normal_statistics)
{
    dat_ctx *ctx = ctx_with_seed(7);
    size_t n = 1000000;
    float *v = fill(ctx, 1, n, 11, 0);
    check_moments_and_ks(v, n, 0.0, 1.0, normal_cdf, "normal");
    free(v);
    dat_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_fills_compose_by_offset)
{
    /* A fill of n values equals two fills of its halves at offsets 0 and k,
     * for odd k too (normals come in Box–Muller pairs). */
    dat_ctx *ctx = ctx_with_seed(99);
    for (int normal = 0; normal < 2; ++normal) {
        float *whole = fill(ctx, normal, 1003, 4, 5);
        float *a = fill(ctx, normal, 501, 4, 5);
        float *b = fill(ctx, normal, 502, 4, 506);
        ck_assert_mem_eq(whole, a, 501 * sizeof(float));
        ck_assert_mem_eq(whole + 501, b, 502 * sizeof(float));
        float *other = fill(ctx, normal, 1003, 5, 5);
        ck_assert(memcmp(whole, other, 1003 * sizeof(float)) != 0);
        free(whole);
        free(a);
        free(b);
        free(other);
    }
    dat_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_seed_changes_draws_and_repeats)
{
    dat_ctx *c1 = ctx_with_seed(1), *c1b = ctx_with_seed(1), *c2 = ctx_with_seed(2);
    float *x = fill(c1, 1, 4096, 0, 0), *y = fill(c1b, 1, 4096, 0, 0), *z = fill(c2, 1, 4096, 0, 0);
    ck_assert_mem_eq(x, y, 4096 * sizeof(float));
    ck_assert(memcmp(x, z, 4096 * sizeof(float)) != 0);
    free(x);
    free(y);
    free(z);
    dat_ctx_destroy(c1);
    dat_ctx_destroy(c1b);
    dat_ctx_destroy(c2);
}
END_TEST

START_TEST(test_affine_parameters)
{
    dat_ctx *ctx = ctx_with_seed(5);
    int64_t shape[1] = {200000};
    dat_tensor *t = NULL;
    ck_assert_dat_ok(dat_tensor_create(&t, ctx, DAT_FLOAT32, 1, shape));
    ck_assert_dat_ok(dat_tensor_fill_uniform(t, -2.0f, 6.0f, 0, 0));
    float *v;
    ck_assert_dat_ok(dat_tensor_host_data(t, (void **)&v));
    double m = 0;
    for (int i = 0; i < 200000; ++i) {
        ck_assert(v[i] >= -2.0f && v[i] < 6.0f);
        m += v[i];
    }
    ck_assert(fabs(m / 200000 - 2.0) < 4 * sqrt(64.0 / 12 / 200000));
    ck_assert_dat_ok(dat_tensor_fill_normal(t, 3.0f, 0.5f, 1, 0));
    m = 0;
    for (int i = 0; i < 200000; ++i)
        m += v[i];
    ck_assert(fabs(m / 200000 - 3.0) < 4 * 0.5 / sqrt(200000));
    ck_assert_dat_ok(dat_tensor_fill_normal(t, 3.0f, 0.0f, 1, 0));
    ck_assert_float_eq(v[123], 3.0f);
    dat_tensor_destroy(t);
    dat_ctx_destroy(ctx);
}
END_TEST

/* The CUDA kernels' division by multiply-high (core/fast_div.h) equals n / d
 * for every small divisor and for large ones, at the numerators where it would
 * go wrong first (next to multiples of d, and the top of the range). */
START_TEST(test_fast_division)
{
    uint64_t checked = 0;
    uint32_t state = 12345u;
    for (uint32_t d = 1; d < (1u << 31); d = d < 4096 ? d + 1 : d + d / 3 + 1) {
        dat_fast_div f = dat_fast_div_make(d);
        uint32_t top = (1u << 31) - 1;
        uint32_t ns[12] = {0, 1, d - 1, d, d + 1, top, top - 1, top / d * d, top / d * d - 1};
        for (int k = 9; k < 12; ++k) {
            state = state * 1664525u + 1013904223u;
            ns[k] = state >> 1; /* below 2^31 */
        }
        for (int k = 0; k < 12; ++k) {
            uint32_t n = ns[k] & top;
            ck_assert_msg(dat_fast_div_q(f, n) == n / d, "%u / %u: %u, want %u", n, d,
                          dat_fast_div_q(f, n), n / d);
            ++checked;
        }
        for (uint32_t q = 1; q < 300 && (uint64_t)q * d < top; ++q) { /* multiples and neighbours */
            uint32_t n = q * d;
            ck_assert_uint_eq(dat_fast_div_q(f, n), q);
            ck_assert_uint_eq(dat_fast_div_q(f, n - 1), q - 1);
            checked += 2;
        }
    }
    ck_assert_uint_ge(checked, 1000000);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("philox");
    TCase *tc = tcase_create("philox");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_known_answers);
    tcase_add_test(tc, test_keying);
    tcase_add_test(tc, test_own_math_matches_libm);
    tcase_add_test(tc, test_uniform_statistics);
    tcase_add_test(tc, test_normal_statistics);
    tcase_add_test(tc, test_fills_compose_by_offset);
    tcase_add_test(tc, test_seed_changes_draws_and_repeats);
    tcase_add_test(tc, test_affine_parameters);
    tcase_add_test(tc, test_fast_division);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
