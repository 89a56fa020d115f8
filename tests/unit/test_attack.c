/* Attack properties over random inputs: results stay in the eps-ball and the
 * input range, the attacked loss is not below the clean loss, the same seed
 * repeats bit-exactly, and bad options are refused. */
#include <math.h>
#include <stdio.h>

#include "attack/attack.h" /* the restarts' candidates: dat_attack_run_once */
#include "check_util.h"

static dat_ctx *ctx;
static dat_model *model;
static dat_tensor *x, *y, *x_adv;
enum { N = 16, D = 28 * 28 };

static void setup(void)
{
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.num_threads = 2;
    o.seed = 5;
    ck_assert_dat_ok(dat_ctx_create(&ctx, &o));
    dat_model_options mo;
    dat_model_options_init(&mo);
    mo.init_seed = 9;
    ck_assert_dat_ok(dat_model_create_preset(&model, ctx, "cnn_small", &mo));
    int64_t xs[4] = {N, 1, 28, 28}, ys[1] = {N};
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&x_adv, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    ck_assert_dat_ok(dat_tensor_fill_uniform(x, 0.0f, 1.0f, 1, 0));
    int32_t labels[N];
    for (int i = 0; i < N; ++i)
        labels[i] = (i * 7) % 10;
    ck_assert_dat_ok(dat_tensor_write(y, labels, sizeof labels));
}

static void teardown(void)
{
    dat_tensor_destroy(x);
    dat_tensor_destroy(x_adv);
    dat_tensor_destroy(y);
    dat_model_destroy(model);
    dat_ctx_destroy(ctx);
}

static dat_attack *make(dat_attack_kind kind, dat_norm norm, float eps, int steps, uint64_t seed)
{
    dat_attack_options o;
    dat_attack_options_init(&o);
    o.kind = kind;
    o.norm = norm;
    o.eps = eps;
    o.steps = steps;
    o.seed = seed;
    o.noise_samples = kind == DAT_ATTACK_SMOOTH_PGD ? 4 : 1;
    o.sigma = 0.12f;
    dat_attack *a = NULL;
    ck_assert_dat_ok(dat_attack_create(&a, ctx, &o));
    return a;
}

/* Largest per-sample distance (l-inf or l2) of x_adv from x, and whether every
 * value is in [0, 1]. */
static double max_dist(dat_norm norm, int *in_range)
{
    float *a, *b;
    dat_tensor_host_data(x, (void **)&a);
    dat_tensor_host_data(x_adv, (void **)&b);
    double worst = 0;
    *in_range = 1;
    for (int i = 0; i < N; ++i) {
        double d = 0;
        for (int j = 0; j < D; ++j) {
            double e = fabs((double)b[i * D + j] - a[i * D + j]);
            d = norm == DAT_NORM_LINF ? fmax(d, e) : d + e * e;
            if (!(b[i * D + j] >= 0.0f && b[i * D + j] <= 1.0f))
                *in_range = 0;
        }
        worst = fmax(worst, norm == DAT_NORM_LINF ? d : sqrt(d));
    }
    return worst;
}

static float mean_loss(dat_tensor *inputs)
{
    dat_model_set_mode(model, DAT_MODE_EVAL);
    dat_tensor *dx;
    int64_t xs[4] = {N, 1, 28, 28};
    ck_assert_dat_ok(dat_tensor_create(&dx, ctx, DAT_FLOAT32, 4, xs));
    float loss;
    ck_assert_dat_ok(dat_model_input_grad(model, inputs, y, NULL, dx, &loss));
    dat_tensor_destroy(dx);
    return loss / N;
}

START_TEST(test_results_stay_in_the_ball_and_range)
{
    static const struct {
        dat_attack_kind kind;
        dat_norm norm;
        float eps;
    } cases[] = {
        {DAT_ATTACK_PGD, DAT_NORM_LINF, 0.1f},  {DAT_ATTACK_PGD, DAT_NORM_L2, 1.5f},
        {DAT_ATTACK_FGSM, DAT_NORM_LINF, 0.1f}, {DAT_ATTACK_TRADES, DAT_NORM_LINF, 0.1f},
        {DAT_ATTACK_SMOOTH_PGD, DAT_NORM_L2, 0.5f},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        dat_attack *a = make(cases[c].kind, cases[c].norm, cases[c].eps, 5, 1);
        ck_assert_dat_ok(dat_attack_perturb(a, model, x, cases[c].kind == DAT_ATTACK_TRADES ? NULL : y,
                                            x_adv));
        int in_range;
        double d = max_dist(cases[c].norm, &in_range);
        ck_assert_msg(d <= cases[c].eps + 1e-6, "case %zu: distance %.9g > eps %g", c, d,
                      (double)cases[c].eps);
        ck_assert_msg(d > 0.5 * cases[c].eps, "case %zu: distance %g: the attack did not move",
                      c, d);
        ck_assert_msg(in_range, "case %zu: a value left [0, 1]", c);
        dat_attack_destroy(a);
    }
}
END_TEST

START_TEST(test_attacked_loss_is_higher)
{
    float clean = mean_loss(x);
    dat_attack *a = make(DAT_ATTACK_PGD, DAT_NORM_LINF, 0.1f, 10, 2);
    ck_assert_dat_ok(dat_attack_perturb(a, model, x, y, x_adv));
    float adv = mean_loss(x_adv);
    ck_assert_msg(adv > clean, "PGD loss %g is not above the clean loss %g", (double)adv,
                  (double)clean);
    dat_attack_destroy(a);
    a = make(DAT_ATTACK_FGSM, DAT_NORM_LINF, 0.1f, 1, 2);
    ck_assert_dat_ok(dat_attack_perturb(a, model, x, y, x_adv));
    float fgsm = mean_loss(x_adv);
    ck_assert_msg(fgsm > clean, "FGSM loss %g is not above the clean loss %g", (double)fgsm,
                  (double)clean);
    dat_attack_destroy(a);
}
END_TEST

START_TEST(test_same_seed_repeats_bit_exactly)
{
    static float first[N * D], second[N * D];
    for (int kind = DAT_ATTACK_PGD; kind <= DAT_ATTACK_FGSM; ++kind) {
        dat_attack *a = make((dat_attack_kind)kind, DAT_NORM_LINF, 0.1f, 3, 77);
        dat_attack *b = make((dat_attack_kind)kind, DAT_NORM_LINF, 0.1f, 3, 77);
        ck_assert_dat_ok(dat_attack_perturb(a, model, x, y, x_adv));
        ck_assert_dat_ok(dat_tensor_read(x_adv, first, sizeof first));
        ck_assert_dat_ok(dat_attack_perturb(b, model, x, y, x_adv));
        ck_assert_dat_ok(dat_tensor_read(x_adv, second, sizeof second));
        ck_assert_msg(memcmp(first, second, sizeof first) == 0, "kind %d does not repeat", kind);
        /* The next call draws a new start... */
        ck_assert_dat_ok(dat_attack_perturb(a, model, x, y, x_adv));
        ck_assert_dat_ok(dat_tensor_read(x_adv, second, sizeof second));
        ck_assert(memcmp(first, second, sizeof first) != 0);
        /* ...and setting the step back repeats the first. */
        uint64_t step;
        ck_assert_dat_ok(dat_attack_get_step(a, &step));
        ck_assert_uint_eq(step, 2);
        ck_assert_dat_ok(dat_attack_set_step(a, 0));
        ck_assert_dat_ok(dat_attack_perturb(a, model, x, y, x_adv));
        ck_assert_dat_ok(dat_tensor_read(x_adv, second, sizeof second));
        ck_assert(memcmp(first, second, sizeof first) == 0);
        dat_attack_destroy(a);
        dat_attack_destroy(b);
    }
}
END_TEST

START_TEST(test_model_mode_is_restored)
{
    dat_model_set_mode(model, DAT_MODE_TRAIN);
    dat_attack *a = make(DAT_ATTACK_PGD, DAT_NORM_LINF, 0.1f, 2, 3);
    ck_assert_dat_ok(dat_attack_perturb(a, model, x, y, x_adv));
    dat_model_mode mode;
    ck_assert_dat_ok(dat_model_mode_get(model, &mode));
    ck_assert_int_eq(mode, DAT_MODE_TRAIN);
    dat_attack_destroy(a);
}
END_TEST

START_TEST(test_robust_accuracy_counts)
{
    dat_attack *a = make(DAT_ATTACK_PGD, DAT_NORM_LINF, 0.3f, 10, 4);
    int32_t clean = -1, robust = -1;
    int64_t ms[1] = {N};
    dat_tensor *mask;
    ck_assert_dat_ok(dat_tensor_create(&mask, ctx, DAT_UINT8, 1, ms));
    ck_assert_dat_ok(dat_eval_robust_accuracy(a, model, x, y, &clean, &robust, mask));
    ck_assert(clean >= 0 && clean <= N);
    ck_assert(robust >= 0 && robust <= clean);
    uint8_t m[N];
    ck_assert_dat_ok(dat_tensor_read(mask, m, sizeof m));
    int sum = 0;
    for (int i = 0; i < N; ++i)
        sum += m[i];
    ck_assert_int_eq(sum, robust);
    /* eps = 0 changes nothing: robust = clean. */
    dat_attack_destroy(a);
    a = make(DAT_ATTACK_PGD, DAT_NORM_LINF, 0.0f, 3, 4);
    ck_assert_dat_ok(dat_eval_robust_accuracy(a, model, x, y, &clean, &robust, NULL));
    ck_assert_int_eq(robust, clean);
    dat_tensor_destroy(mask);
    dat_attack_destroy(a);
}
END_TEST

START_TEST(test_gaussian_copies)
{
    dat_attack_options o;
    dat_attack_options_init(&o);
    o.noise_samples = 3;
    o.sigma = 0.5f;
    dat_attack *a;
    ck_assert_dat_ok(dat_attack_create(&a, ctx, &o));
    int64_t xs[4] = {3 * N, 1, 28, 28}, ys[1] = {3 * N};
    dat_tensor *xo, *yo;
    ck_assert_dat_ok(dat_tensor_create(&xo, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&yo, ctx, DAT_INT32, 1, ys));
    ck_assert_dat_ok(dat_attack_gaussian_copies(a, x, y, xo, yo));
    float *src, *cp;
    int32_t *lab, *lab_src;
    dat_tensor_host_data(x, (void **)&src);
    dat_tensor_host_data(xo, (void **)&cp);
    dat_tensor_host_data(yo, (void **)&lab);
    dat_tensor_host_data(y, (void **)&lab_src);
    double s = 0, s2 = 0;
    size_t total = (size_t)3 * N * D;
    for (size_t k = 0; k < total; ++k) {
        double e = cp[k] - src[k % ((size_t)N * D)];
        s += e;
        s2 += e * e;
    }
    double mean = s / total, sd = sqrt(s2 / total - mean * mean);
    ck_assert_msg(fabs(mean) < 4 * 0.5 / sqrt((double)total), "noise mean %g", mean);
    ck_assert_msg(fabs(sd - 0.5) < 0.01, "noise std %g, expected 0.5", sd);
    for (int j = 0; j < 3; ++j)
        for (int i = 0; i < N; ++i)
            ck_assert_int_eq(lab[j * N + i], lab_src[i]);
    ck_assert_dat_err(dat_attack_gaussian_copies(a, x, y, x_adv, NULL), DAT_ERR_INVALID_ARG,
                      "copies");
    dat_tensor_destroy(xo);
    dat_tensor_destroy(yo);
    dat_attack_destroy(a);
}
END_TEST

/* SmoothAdv with restarts keeps, per point, the restart with the largest
 * smoothed loss -log mean_j p_j(y) under the call's noise (not the base
 * classifier's loss at the noise-free point): the restarts are replayed one
 * by one at the call's step and scored by the smoothed loss. */
START_TEST(test_smooth_restarts_keep_the_smoothed_best)
{
    enum { R = 4 };
    dat_attack_options o;
    dat_attack_options_init(&o);
    o.kind = DAT_ATTACK_SMOOTH_PGD;
    o.eps = 1.0f;
    o.steps = 1;
    o.restarts = R;
    o.sigma = 0.5f;
    o.noise_samples = 4;
    o.seed = 4;
    dat_attack *a;
    ck_assert_dat_ok(dat_attack_create(&a, ctx, &o));
    ck_assert_dat_ok(dat_attack_perturb(a, model, x, y, x_adv));
    ck_assert_dat_ok(dat_attack_set_step(a, 0));
    dat_attack_batch b;
    ck_assert_dat_ok(dat_attack_check("test", a, model, x, y, x_adv, &b));
    dat_model_set_mode(model, DAT_MODE_EVAL);
    static float cand[R][N * D];
    float best[N], got[N * D];
    int pick[N], differs = 0;
    for (int r = 0; r < R; ++r) {
        ck_assert_dat_ok(dat_attack_run_once(a, model, &b, r, cand[r]));
        ck_assert_dat_ok(dat_attack_smooth_loss(a, model, &b, cand[r]));
        for (int i = 0; i < N; ++i)
            if (r == 0 || a->host_loss[i] > best[i]) {
                best[i] = a->host_loss[i];
                pick[i] = r;
            }
    }
    ck_assert_dat_ok(dat_tensor_read(x_adv, got, sizeof got));
    for (int i = 0; i < N; ++i) {
        ck_assert_msg(memcmp(got + i * D, cand[pick[i]] + i * D, D * sizeof(float)) == 0,
                      "point %d: not restart %d, the smoothed best", i, pick[i]);
        differs += pick[i] != 0;
    }
    ck_assert_msg(differs > 0, "every point kept restart 0: the test shows nothing");
    dat_attack_destroy(a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("attack");
    TCase *tc = tcase_create("attack");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_results_stay_in_the_ball_and_range);
    tcase_add_test(tc, test_attacked_loss_is_higher);
    tcase_add_test(tc, test_same_seed_repeats_bit_exactly);
    tcase_add_test(tc, test_model_mode_is_restored);
    tcase_add_test(tc, test_robust_accuracy_counts);
    tcase_add_test(tc, test_gaussian_copies);
    tcase_add_test(tc, test_smooth_restarts_keep_the_smoothed_best);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
