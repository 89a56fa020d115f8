/*
 * Evaluation: the statistics of certification against references computed
 * here by other methods (binomial tail sums, bisection on erfc, closed
 * forms); certification of a linear classifier against its analytic radius;
 * AutoAttack's results inside the eps-ball and the input range, the
 * sequence's bookkeeping, and its strength against PGD.
 */
#include <math.h>
#include <stdio.h>

#include "check_util.h"

/* ---- independent references ---- */

/* P(X >= k), X ~ Bin(n, p), by summing the pmf in logs (no incomplete beta). */
static double binom_tail(int64_t k, int64_t n, double p)
{
    double lp = log(p), lq = log1p(-p), sum = 0, lc = lgamma((double)n + 1);
    for (int64_t j = k; j <= n; ++j) {
        double lt = lc - lgamma((double)j + 1) - lgamma((double)(n - j) + 1) + (double)j * lp +
                    (double)(n - j) * lq;
        sum += exp(lt);
    }
    return sum;
}

/* The Clopper-Pearson lower bound from its definition: P(X >= k | p) = alpha. */
static double cp_reference(int64_t k, int64_t n, double alpha)
{
    double lo = 0, hi = 1;
    for (int i = 0; i < 200; ++i) {
        double mid = 0.5 * (lo + hi);
        if (binom_tail(k, n, mid) < alpha)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* Phi^-1 by bisection on the smaller tail, Q(x) = erfc(x / sqrt 2) / 2 = min(p, 1 - p). */
static double probit_reference(double p)
{
    double q = p < 0.5 ? p : 1.0 - p, lo = 0, hi = 40;
    for (int i = 0; i < 200; ++i) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(mid / M_SQRT2) > q)
            lo = mid;
        else
            hi = mid;
    }
    return p < 0.5 ? -0.5 * (lo + hi) : 0.5 * (lo + hi);
}

START_TEST(test_clopper_pearson_matches_binomial_tail)
{
    static const struct {
        int64_t k, n;
        double alpha;
    } cases[] = {{1, 10, 0.05},      {5, 10, 0.05},     {9, 10, 0.001},     {50, 100, 0.001},
                 {99, 100, 0.001},   {100, 100, 0.001}, {730, 1000, 0.001}, {999, 1000, 0.01},
                 {9500, 10000, 0.001}, {99000, 100000, 0.001}, {60000, 100000, 0.001}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        double got, want = cp_reference(cases[i].k, cases[i].n, cases[i].alpha);
        ck_assert_dat_ok(dat_stat_clopper_pearson_lower(cases[i].k, cases[i].n, cases[i].alpha,
                                                        &got));
        ck_assert_msg(fabs(got - want) < 1e-6, "CP(%lld, %lld, %g) = %.12f, reference %.12f",
                      (long long)cases[i].k, (long long)cases[i].n, cases[i].alpha, got, want);
    }
}
END_TEST

START_TEST(test_clopper_pearson_closed_forms)
{
    /* k = n: alpha^(1/n); k = 1: 1 - (1 - alpha)^(1/n); k = 0: 0. */
    int64_t ns[] = {1, 7, 100, 100000};
    for (size_t i = 0; i < 4; ++i) {
        double n = (double)ns[i], got;
        ck_assert_dat_ok(dat_stat_clopper_pearson_lower(ns[i], ns[i], 0.001, &got));
        ck_assert_msg(fabs(got - pow(0.001, 1.0 / n)) < 1e-12, "k = n = %g: %.15f", n, got);
        ck_assert_dat_ok(dat_stat_clopper_pearson_lower(1, ns[i], 0.05, &got));
        ck_assert_msg(fabs(got - (1.0 - pow(0.95, 1.0 / n))) < 1e-12, "k = 1, n = %g: %.15g", n,
                      got);
        ck_assert_dat_ok(dat_stat_clopper_pearson_lower(0, ns[i], 0.05, &got));
        ck_assert(got == 0.0);
    }
}
END_TEST

START_TEST(test_incbeta_identities)
{
    double v, w;
    /* I_x(1, 1) = x; I_x(a, 1) = x^a; symmetry I_x(a, b) = 1 - I_{1-x}(b, a). */
    ck_assert_dat_ok(dat_stat_incbeta(1, 1, 0.3, &v));
    ck_assert(fabs(v - 0.3) < 1e-14);
    ck_assert_dat_ok(dat_stat_incbeta(4.5, 1, 0.7, &v));
    ck_assert(fabs(v - pow(0.7, 4.5)) < 1e-14);
    ck_assert_dat_ok(dat_stat_incbeta(3.5, 20, 0.2, &v));
    ck_assert_dat_ok(dat_stat_incbeta(20, 3.5, 0.8, &w));
    ck_assert(fabs(v + w - 1.0) < 1e-13);
    /* The inverse round-trips. */
    ck_assert_dat_ok(dat_stat_incbeta_inv(3.5, 20, v, &w));
    ck_assert_msg(fabs(w - 0.2) < 1e-12, "inverse %.15f", w);
}
END_TEST

START_TEST(test_normal_quantile)
{
    /* Tabulated values (17 digits) and bisection on erfc. */
    static const double p[] = {0.975, 0.999, 0.9, 0.5, 1e-10, 0.3, 1 - 1e-12, 0.5000001};
    static const double tab[] = {1.959963984540054, 3.090232306167813, 1.2815515655446004, 0.0,
                                 -6.361340902404056};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; ++i) {
        double got, ref = probit_reference(p[i]);
        ck_assert_dat_ok(dat_stat_normal_quantile(p[i], &got));
        ck_assert_msg(fabs(got - ref) < 1e-9 * fmax(1.0, fabs(ref)),
                      "Phi^-1(%g) = %.15f, bisection %.15f", p[i], got, ref);
        if (i < sizeof tab / sizeof tab[0])
            ck_assert_msg(fabs(got - tab[i]) < 1e-12, "Phi^-1(%g) = %.15f, table %.15f", p[i],
                          got, tab[i]);
    }
    /* Next to the median Phi^-1(1/2 + d) = sqrt(2 pi) d (1 + pi d^2 / 3 + ...):
     * relative accuracy holds there too (p - 1/2 is exact in double). */
    static const double near[] = {0x1p-52, 1e-10, -0x1p-53, 1e-7};
    for (size_t i = 0; i < sizeof near / sizeof near[0]; ++i) {
        double p = 0.5 + near[i], d = p - 0.5, got;
        double ref = sqrt(2.0 * M_PI) * d * (1.0 + M_PI * d * d / 3.0);
        ck_assert_dat_ok(dat_stat_normal_quantile(p, &got));
        ck_assert_msg(fabs(got - ref) <= 1e-14 * fabs(ref), "Phi^-1(1/2 + %g) = %.17g, "
                      "series %.17g", d, got, ref);
    }
    double v;
    ck_assert_dat_ok(dat_stat_normal_quantile(0.0, &v));
    ck_assert(isinf(v) && v < 0);
}
END_TEST

/* ---- certification of a linear classifier ---- */

/* logits (u, -u), u = w . x + b on a 1 x 1 x 2 input: the smoothed classifier
 * has p_A = Phi(|u| / (sigma ||w||)), so CERTIFY's radius estimates the
 * distance to the boundary |u| / ||w||. */
static dat_model *linear_model(dat_ctx *ctx, const float w[2], float b)
{
    dat_model_builder *mb;
    ck_assert_dat_ok(dat_model_builder_create(&mb, ctx, 1, 1, 2));
    dat_layer_spec spec;
    dat_layer_spec_init(&spec, DAT_LAYER_LINEAR);
    spec.name = "fc";
    spec.out_features = 2;
    int32_t node;
    ck_assert_dat_ok(dat_model_builder_add(mb, &spec, 0, -1, &node));
    dat_model *m;
    ck_assert_dat_ok(dat_model_builder_finish(mb, node, 1, &m));
    dat_model_builder_destroy(mb);
    dat_tensor *params;
    float *p;
    ck_assert_dat_ok(dat_model_params(m, &params));
    ck_assert_dat_ok(dat_tensor_host_data(params, (void **)&p));
    /* fc.weight [2, 2] then fc.bias [2] */
    float vals[6] = {w[0], w[1], -w[0], -w[1], b, -b};
    for (int i = 0; i < 6; ++i)
        p[i] = vals[i];
    return m;
}

/* n inputs of the linear model, 1 x 1 x 2 each. */
static dat_tensor *points(dat_ctx *ctx, const float *xs, int64_t n)
{
    int64_t shape[4] = {n, 1, 1, 2};
    dat_tensor *x;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, shape));
    ck_assert_dat_ok(dat_tensor_write(x, xs, (size_t)(2 * n) * sizeof(float)));
    return x;
}

START_TEST(test_certify_linear_classifier_radius)
{
    dat_ctx *ctx;
    ck_assert_dat_ok(dat_ctx_create(&ctx, NULL));
    const float w[2] = {3.0f, 4.0f}, b = -2.5f; /* ||w|| = 5 */
    dat_model *m = linear_model(ctx, w, b);
    /* distances (signed, class 0 where u > 0): 0.1, 0.3, -0.5, 0 */
    const float dist[4] = {0.1f, 0.3f, -0.5f, 0.0f};
    float xs[8];
    for (int i = 0; i < 4; ++i) { /* x = x_b + dist * w / ||w||, x_b on the boundary */
        float xb[2] = {0.5f, 0.25f}; /* 1.5 + 1 - 2.5 = 0 */
        xs[2 * i] = xb[0] + dist[i] * w[0] / 5.0f;
        xs[2 * i + 1] = xb[1] + dist[i] * w[1] / 5.0f;
    }
    dat_tensor *x = points(ctx, xs, 4);
    dat_smooth_options o;
    dat_smooth_options_init(&o);
    o.sigma = 0.25f;
    o.n = 100000;
    o.batch = 10000;
    o.seed = 3;
    int32_t pred[4];
    float radius[4];
    ck_assert_dat_ok(dat_smooth_certify(m, x, &o, pred, radius));
    for (int i = 0; i < 3; ++i) {
        double r = fabs(dist[i]), p = 0.5 * erfc(-r / 0.25 / M_SQRT2);
        /* The bound is below p by about z_{1-alpha} standard errors; allow 5. */
        double p_low = p - 5.0 * sqrt(p * (1 - p) / o.n);
        double r_low = 0.25 * probit_reference(p_low);
        ck_assert_int_eq(pred[i], dist[i] > 0 ? 0 : 1);
        ck_assert_msg(radius[i] <= r + 1e-6 && radius[i] >= r_low,
                      "point %d: radius %g, analytic %g, lowest expected %g", i, radius[i], r,
                      r_low);
    }
    ck_assert_int_eq(pred[3], DAT_SMOOTH_ABSTAIN); /* p_A = 1/2 on the boundary */
    ck_assert(radius[3] == 0.0f);
    /* PREDICT agrees away from the boundary, abstains on it. */
    o.n = 10000;
    ck_assert_dat_ok(dat_smooth_predict(m, x, &o, pred));
    ck_assert_int_eq(pred[0], 0);
    ck_assert_int_eq(pred[1], 0);
    ck_assert_int_eq(pred[2], 1);
    ck_assert_int_eq(pred[3], DAT_SMOOTH_ABSTAIN);
    /* Certified accuracy at radii, labels (0, 0, 1, 0). */
    int32_t labels[4] = {0, 0, 1, 0};
    float radii[3] = {0.0f, 0.2f, 0.4f};
    double acc[3];
    ck_assert_dat_ok(dat_smooth_certify(m, x, &o, pred, radius));
    ck_assert_dat_ok(dat_smooth_certified_accuracy(pred, radius, labels, 4, radii, 3, acc));
    ck_assert(fabs(acc[0] - 0.75) < 1e-12);
    ck_assert(fabs(acc[1] - 0.5) < 1e-12);
    ck_assert(fabs(acc[2] - 0.25) < 1e-12);
    dat_tensor_destroy(x);
    dat_model_destroy(m);
    dat_ctx_destroy(ctx);
}
END_TEST

/* Every copy of a point 20 sigma from the boundary is right: p_A is the
 * Clopper-Pearson bound of n of n, and the radius the largest float not above
 * sigma Phi^-1(p_A) (n = 100 rounds to nearest upward: 0.375118756030159). */
START_TEST(test_certify_radius_never_above_the_proof)
{
    dat_ctx *ctx;
    ck_assert_dat_ok(dat_ctx_create(&ctx, NULL));
    const float w[2] = {3.0f, 4.0f};
    dat_model *m = linear_model(ctx, w, -2.5f);
    float xs[2] = {0.5f + 5.0f * 0.6f, 0.25f + 5.0f * 0.8f};
    dat_tensor *x = points(ctx, xs, 1);
    dat_smooth_options o;
    dat_smooth_options_init(&o);
    o.sigma = 0.25f;
    o.n = 100;
    int32_t pred;
    float radius;
    ck_assert_dat_ok(dat_smooth_certify(m, x, &o, &pred, &radius));
    double pa, z;
    ck_assert_dat_ok(dat_stat_clopper_pearson_lower(o.n, o.n, o.alpha, &pa));
    ck_assert_dat_ok(dat_stat_normal_quantile(pa, &z));
    double proven = 0.25 * z;
    ck_assert_int_eq(pred, 0);
    ck_assert_msg((double)radius <= proven && (double)nextafterf(radius, INFINITY) > proven,
                  "radius %.9g, proven %.17g", (double)radius, proven);
    dat_tensor_destroy(x);
    dat_model_destroy(m);
    dat_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_smooth_bad_options)
{
    dat_ctx *ctx;
    ck_assert_dat_ok(dat_ctx_create(&ctx, NULL));
    const float w[2] = {1, 0};
    dat_model *m = linear_model(ctx, w, 0);
    int64_t shape[4] = {1, 1, 1, 2};
    dat_tensor *x;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, shape));
    int32_t pred[1] = {7};
    float radius[1];
    dat_smooth_options o;
    dat_smooth_options_init(&o);
    o.n0 = 200;
    o.n = 100;
    ck_assert_dat_err(dat_smooth_certify(m, x, &o, pred, radius), DAT_ERR_INVALID_ARG, "n0");
    dat_smooth_options_init(&o);
    o.alpha = 1.0;
    ck_assert_dat_err(dat_smooth_certify(m, x, &o, pred, radius), DAT_ERR_INVALID_ARG, "alpha");
    o.alpha = 0.0;
    ck_assert_dat_err(dat_smooth_predict(m, x, &o, pred), DAT_ERR_INVALID_ARG, "alpha");
    dat_smooth_options_init(&o);
    o.sigma = 0.0f;
    ck_assert_dat_err(dat_smooth_certify(m, x, &o, pred, radius), DAT_ERR_INVALID_ARG, "sigma");
    o.sigma = -1.0f;
    ck_assert_dat_err(dat_smooth_predict(m, x, &o, pred), DAT_ERR_INVALID_ARG, "sigma");
    ck_assert_int_eq(pred[0], 7); /* nothing written */
    dat_tensor_destroy(x);
    dat_model_destroy(m);
    dat_ctx_destroy(ctx);
}
END_TEST

/* ---- AutoAttack ---- */

enum { N = 12, D = 28 * 28 };

typedef struct aa_fixture {
    dat_ctx *ctx;
    dat_model *m;
    dat_tensor *x, *y, *xa;
} aa_fixture;

/* A random mlp (fast enough for many runs) whose own predictions are the labels: every point starts
 * correctly classified and is attackable. */
static void aa_setup(aa_fixture *f)
{
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.num_threads = 2;
    ck_assert_dat_ok(dat_ctx_create(&f->ctx, &co));
    dat_model_options mo;
    dat_model_options_init(&mo);
    mo.init_seed = 11;
    ck_assert_dat_ok(dat_model_create_preset(&f->m, f->ctx, "mlp", &mo));
    ck_assert_dat_ok(dat_model_set_mode(f->m, DAT_MODE_EVAL));
    int64_t xs[4] = {N, 1, 28, 28}, ys[1] = {N}, ls[2] = {N, 10};
    ck_assert_dat_ok(dat_tensor_create(&f->x, f->ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&f->xa, f->ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&f->y, f->ctx, DAT_INT32, 1, ys));
    ck_assert_dat_ok(dat_tensor_fill_uniform(f->x, 0.0f, 1.0f, 7, 0));
    dat_tensor *z;
    ck_assert_dat_ok(dat_tensor_create(&z, f->ctx, DAT_FLOAT32, 2, ls));
    ck_assert_dat_ok(dat_model_forward(f->m, f->x, z));
    float logits[N * 10];
    int32_t lab[N];
    ck_assert_dat_ok(dat_tensor_read(z, logits, sizeof logits));
    for (int i = 0; i < N; ++i) {
        lab[i] = 0;
        for (int c = 1; c < 10; ++c)
            if (logits[i * 10 + c] > logits[i * 10 + lab[i]])
                lab[i] = c;
    }
    lab[0] = (lab[0] + 1) % 10; /* one point misclassified from the start */
    ck_assert_dat_ok(dat_tensor_write(f->y, lab, sizeof lab));
    dat_tensor_destroy(z);
}

static void aa_teardown(aa_fixture *f)
{
    dat_tensor_destroy(f->x);
    dat_tensor_destroy(f->xa);
    dat_tensor_destroy(f->y);
    dat_model_destroy(f->m);
    dat_ctx_destroy(f->ctx);
}

/* Checks x_adv against x: broken points within eps and [0, 1], the others
 * untouched. Returns the number of robust points. */
static int check_results(aa_fixture *f, dat_norm norm, float eps, const int32_t *outcome)
{
    float *a, *b;
    dat_tensor_host_data(f->x, (void **)&a);
    dat_tensor_host_data(f->xa, (void **)&b);
    int robust = 0;
    for (int i = 0; i < N; ++i) {
        double dist = 0;
        for (int j = 0; j < D; ++j) {
            float v = b[i * D + j];
            ck_assert_msg(v >= 0.0f && v <= 1.0f, "sample %d value %g outside [0, 1]", i, v);
            double e = fabs((double)v - a[i * D + j]);
            dist = norm == DAT_NORM_LINF ? fmax(dist, e) : dist + e * e;
        }
        if (norm == DAT_NORM_L2)
            dist = sqrt(dist);
        ck_assert_msg(dist <= eps * (1 + 1e-5), "sample %d at distance %g > eps %g", i, dist, eps);
        if (outcome[i] < 0)
            ck_assert_msg(dist == 0, "sample %d (outcome %d) was changed", i, outcome[i]);
        robust += outcome[i] == DAT_AA_ROBUST;
    }
    ck_assert_int_eq(outcome[0], DAT_AA_MISCLASSIFIED);
    return robust;
}

static int run_aa(aa_fixture *f, dat_norm norm, float eps, uint32_t attacks, int32_t *outcome)
{
    dat_autoattack_options o;
    dat_autoattack_options_init(&o);
    o.norm = norm;
    o.eps = eps;
    o.attacks = attacks;
    o.apgd_steps = 10;
    o.fab_steps = 10;
    o.target_classes = 2;
    o.square_queries = 100;
    o.seed = 1;
    int32_t robust = -1;
    ck_assert_dat_ok(dat_eval_autoattack(f->m, f->x, f->y, &o, f->xa, outcome, &robust));
    int checked = check_results(f, norm, eps, outcome);
    ck_assert_int_eq(robust, checked);
    return robust;
}

START_TEST(test_each_attack_stays_in_the_ball_and_range)
{
    aa_fixture f;
    aa_setup(&f);
    int32_t outcome[N];
    const float eps_linf = 0.1f, eps_l2 = 1.5f;
    for (int a = 0; a < DAT_AA_COUNT; ++a) {
        int robust = run_aa(&f, DAT_NORM_LINF, eps_linf, DAT_AA_BIT(a), outcome);
        ck_assert_msg(robust < N - 1, "l-inf attack %d broke no point (%d robust)", a, robust);
        for (int i = 1; i < N; ++i)
            ck_assert(outcome[i] == DAT_AA_ROBUST || outcome[i] == a);
        robust = run_aa(&f, DAT_NORM_L2, eps_l2, DAT_AA_BIT(a), outcome);
        ck_assert_msg(robust < N - 1, "l2 attack %d broke no point (%d robust)", a, robust);
    }
    aa_teardown(&f);
}
END_TEST

START_TEST(test_sequence_is_stronger_than_each_and_than_pgd)
{
    aa_fixture f;
    aa_setup(&f);
    int32_t outcome[N];
    const float eps = 0.01f;
    int all = run_aa(&f, DAT_NORM_LINF, eps, DAT_AA_STANDARD, outcome);
    for (int a = 0; a < DAT_AA_COUNT; ++a) {
        int32_t single[N];
        int r = run_aa(&f, DAT_NORM_LINF, eps, DAT_AA_BIT(a), single);
        ck_assert_msg(all <= r, "AutoAttack leaves %d robust, attack %d alone %d", all, a, r);
    }
    /* PGD-20 of the attack module at the same eps. */
    dat_attack_options po;
    dat_attack_options_init(&po);
    po.eps = eps;
    po.steps = 20;
    dat_attack *pgd;
    ck_assert_dat_ok(dat_attack_create(&pgd, f.ctx, &po));
    int32_t clean, pgd_robust;
    ck_assert_dat_ok(dat_eval_robust_accuracy(pgd, f.m, f.x, f.y, &clean, &pgd_robust, NULL));
    int apgd = run_aa(&f, DAT_NORM_LINF, eps, DAT_AA_BIT(DAT_AA_APGD_CE), outcome);
    ck_assert_msg(all <= apgd && apgd <= pgd_robust, "AA %d, APGD-CE %d, PGD-20 %d robust", all,
                  apgd, pgd_robust);
    fprintf(stderr, "robust of %d: AA %d, APGD-CE(10) %d, PGD-20 %d\n", N, all, apgd, pgd_robust);
    dat_attack_destroy(pgd);
    aa_teardown(&f);
}
END_TEST

START_TEST(test_autoattack_bad_arguments)
{
    aa_fixture f;
    aa_setup(&f);
    dat_autoattack_options o;
    dat_autoattack_options_init(&o);
    o.attacks = 0;
    ck_assert_dat_err(dat_eval_autoattack(f.m, f.x, f.y, &o, NULL, NULL, NULL),
                      DAT_ERR_INVALID_ARG, "attacks");
    dat_autoattack_options_init(&o);
    o.target_classes = 10;
    ck_assert_dat_err(dat_eval_autoattack(f.m, f.x, f.y, &o, NULL, NULL, NULL),
                      DAT_ERR_INVALID_ARG, "target_classes");
    dat_autoattack_options_init(&o);
    o.square_p_init = 0.0f;
    ck_assert_dat_err(dat_eval_autoattack(f.m, f.x, f.y, &o, NULL, NULL, NULL),
                      DAT_ERR_INVALID_ARG, "square_p_init");
    dat_autoattack_options_init(&o);
    ck_assert_dat_err(dat_eval_autoattack(f.m, f.x, f.y, &o, f.x, NULL, NULL),
                      DAT_ERR_INVALID_ARG, "alias");
    ck_assert_dat_ok(dat_tensor_fill(f.xa, 2.0));
    ck_assert_dat_err(dat_eval_autoattack(f.m, f.xa, f.y, &o, NULL, NULL, NULL),
                      DAT_ERR_INVALID_ARG, "input range");
    aa_teardown(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("eval");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_clopper_pearson_matches_binomial_tail);
    tcase_add_test(tc, test_clopper_pearson_closed_forms);
    tcase_add_test(tc, test_incbeta_identities);
    tcase_add_test(tc, test_normal_quantile);
    tcase_add_test(tc, test_certify_linear_classifier_radius);
    tcase_add_test(tc, test_certify_radius_never_above_the_proof);
    tcase_add_test(tc, test_smooth_bad_options);
    tcase_add_test(tc, test_each_attack_stays_in_the_ball_and_range);
    tcase_add_test(tc, test_sequence_is_stronger_than_each_and_than_pgd);
    tcase_add_test(tc, test_autoattack_bad_arguments);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
