/* LALR invariants: the update of a segment has norm tau(||theta||) * eta, with
 * the clipping bounds and the documented zero-norm behaviour; a non-finite
 * gradient changes nothing. (Variants against a numpy reference:
 * tests/python/test_optim_reference.py.) */
#include <math.h>

#include "check_util.h"

static dat_ctx *ctx;

static void setup(void)
{
    ck_assert_dat_ok(dat_ctx_create(&ctx, NULL));
}

static void teardown(void)
{
    dat_ctx_destroy(ctx);
}

enum { N = 64 };

/* ||delta theta|| of one LALR SGD step on a segment of norm `norm`, the
 * gradient N(0, grad_std^2) (0: zero). */
static double step_norm(double norm, float c_l, float c_u, float grad_std)
{
    dat_optim_options o;
    dat_optim_options_init(&o);
    o.kind = DAT_OPTIM_SGD;
    o.lr = 0.01f;
    o.lalr = 1;
    o.c_l = c_l;
    o.c_u = c_u;
    dat_segment seg = {.size = sizeof seg, .name = "w", .offset = 0, .length = N,
                       .kind = DAT_SEGMENT_WEIGHT};
    dat_optim *opt;
    ck_assert_dat_ok(dat_optim_create(&opt, ctx, &seg, 1, &o));
    int64_t n = N;
    dat_tensor *p, *g;
    dat_tensor_create(&p, ctx, DAT_FLOAT32, 1, &n);
    dat_tensor_create(&g, ctx, DAT_FLOAT32, 1, &n);
    float th[N], before[N];
    for (int i = 0; i < N; ++i)
        th[i] = (float)(norm / sqrt((double)N)) * (i % 2 ? 1.0f : -1.0f);
    memcpy(before, th, sizeof th);
    dat_tensor_write(p, th, sizeof th);
    if (grad_std > 0)
        dat_tensor_fill_normal(g, 0.0f, grad_std, 1, 0);
    ck_assert_dat_ok(dat_optim_step(opt, p, g));
    dat_tensor_read(p, th, sizeof th);
    double d = 0;
    for (int i = 0; i < N; ++i)
        d += ((double)th[i] - before[i]) * ((double)th[i] - before[i]);
    dat_tensor_destroy(p);
    dat_tensor_destroy(g);
    dat_optim_destroy(opt);
    return sqrt(d);
}

START_TEST(test_update_norm_is_clipped_theta_norm)
{
    /* c_l < ||theta|| < c_u: the step is ||theta|| * eta, whatever ||g||. */
    ck_assert_msg(fabs(step_norm(2.5, 0.0f, 10.0f, 3.0f) - 0.025) < 1e-6, "inside the bounds");
    /* Above c_u: c_u * eta; below c_l: c_l * eta. */
    ck_assert_msg(fabs(step_norm(50.0, 0.0f, 10.0f, 3.0f) - 0.1) < 1e-5, "above c_u");
    ck_assert_msg(fabs(step_norm(0.5, 2.0f, 10.0f, 3.0f) - 0.02) < 1e-6, "below c_l");
    /* A gradient of denormals too, whose trust ratio overflows float. */
    ck_assert_msg(fabs(step_norm(2.5, 0.0f, 10.0f, 3e-42f) - 0.025) < 1e-5, "denormal gradient");
    /* A zero gradient moves nothing (trust ratio 1, u = 0). */
    ck_assert(step_norm(2.5, 0.0f, 10.0f, 0.0f) == 0.0);
}
END_TEST

START_TEST(test_zero_theta_uses_trust_one)
{
    dat_optim_options o;
    dat_optim_options_init(&o);
    o.kind = DAT_OPTIM_SGD;
    o.lr = 0.5f;
    o.lalr = 1;
    dat_segment seg = {.size = sizeof seg, .name = "w", .offset = 0, .length = 4};
    dat_optim *opt;
    ck_assert_dat_ok(dat_optim_create(&opt, ctx, &seg, 1, &o));
    int64_t n = 4;
    dat_tensor *p, *g;
    dat_tensor_create(&p, ctx, DAT_FLOAT32, 1, &n);
    dat_tensor_create(&g, ctx, DAT_FLOAT32, 1, &n);
    float gv[4] = {1, -2, 3, 0}, pv[4];
    dat_tensor_write(g, gv, sizeof gv);
    ck_assert_dat_ok(dat_optim_step(opt, p, g));
    dat_tensor_read(p, pv, sizeof pv);
    for (int i = 0; i < 4; ++i)
        ck_assert_float_eq(pv[i], -0.5f * gv[i]);
    /* NaN in the gradient: a status, and the parameters stay. */
    gv[2] = NAN;
    dat_tensor_write(g, gv, sizeof gv);
    ck_assert_dat_err(dat_optim_step(opt, p, g), DAT_ERR_NUMERIC, "NaN or Inf");
    float after[4];
    dat_tensor_read(p, after, sizeof after);
    ck_assert_mem_eq(pv, after, sizeof pv);
    int64_t steps;
    dat_optim_get_step(opt, &steps);
    ck_assert_int_eq(steps, 1);
    dat_tensor_destroy(p);
    dat_tensor_destroy(g);
    dat_optim_destroy(opt);
}
END_TEST

/* The learning rate of `o` at step t (dat_optim_set_step, dat_optim_lr). */
static double lr_at(const dat_optim_options *o, int64_t t)
{
    dat_segment seg = {.size = sizeof seg, .name = "w", .offset = 0, .length = 4};
    dat_optim *opt;
    ck_assert_dat_ok(dat_optim_create(&opt, ctx, &seg, 1, o));
    ck_assert_dat_ok(dat_optim_set_step(opt, t));
    double lr = -1;
    ck_assert_dat_ok(dat_optim_lr(opt, &lr));
    dat_optim_destroy(opt);
    return lr;
}

/* The schedules compute cos and pow with their own series and products (the
 * same bits on the CPU and the GPU); they must still be libm's values to a few
 * ulps, at every step of a long cosine and over many piecewise decays. */
START_TEST(test_schedules_match_libm)
{
    dat_optim_options o;
    dat_optim_options_init(&o);
    o.lr = 0.4f;
    o.schedule = DAT_SCHEDULE_COSINE;
    o.warmup_steps = 7;
    o.total_steps = 3007;
    for (int64_t t = o.warmup_steps; t < o.total_steps; t += 3) {
        double want = 0.5 * (double)o.lr *
                      (1.0 + cos(M_PI * (double)(t - 7) / (double)(o.total_steps - 7)));
        double got = lr_at(&o, t);
        ck_assert_msg(fabs(got - want) <= 1e-15 * (double)o.lr, "cosine step %lld: %.17g, not %.17g",
                      (long long)t, got, want);
    }
    o.schedule = DAT_SCHEDULE_PIECEWISE;
    o.warmup_steps = 0;
    o.num_milestones = 8;
    for (int k = 0; k < 8; ++k)
        o.milestones[k] = 10 * (k + 1);
    o.gamma = 0.7f;
    for (int k = 0; k <= 8; ++k) {
        double want = (double)o.lr * pow((double)o.gamma, k), got = lr_at(&o, 10 * k + 5);
        ck_assert_msg(fabs(got - want) <= 4e-16 * k * want, "after %d milestones: %.17g, not %.17g",
                      k, got, want);
    }
}
END_TEST

START_TEST(test_model_optimizer)
{
    dat_model *m;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "mlp", NULL));
    dat_optim *opt;
    ck_assert_dat_ok(dat_optim_create_for_model(&opt, m, NULL));
    int64_t xs[4] = {4, 1, 28, 28}, ys[1] = {4};
    dat_tensor *x, *y;
    dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs);
    dat_tensor_create(&y, ctx, DAT_INT32, 1, ys);
    dat_tensor_fill_uniform(x, 0, 1, 0, 0);
    float first, later;
    ck_assert_dat_ok(dat_model_loss_backward(m, x, y, NULL, &first));
    for (int i = 0; i < 20; ++i) {
        ck_assert_dat_ok(dat_optim_step_model(opt, m));
        ck_assert_dat_ok(dat_model_loss_backward(m, x, y, NULL, &later));
    }
    ck_assert_msg(later < 0.5f * first, "20 steps on one batch: loss %g -> %g", (double)first,
                  (double)later);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_optim_destroy(opt);
    dat_model_destroy(m);
}
END_TEST

/* Frozen segments (scale 0) keep their bits through momentum and weight decay;
 * a scale of 1/2 halves plain SGD's step. */
START_TEST(test_lr_scale_freezes_and_scales)
{
    dat_segment segs[3] = {
        {.size = sizeof segs[0], .name = "a.weight", .offset = 0, .length = N},
        {.size = sizeof segs[0], .name = "b.weight", .offset = N, .length = N},
        {.size = sizeof segs[0], .name = "c.weight", .offset = 2 * N, .length = N}};
    dat_optim_options o;
    dat_optim_options_init(&o);
    o.weight_decay = 0.01f;
    dat_optim *opt;
    ck_assert_dat_ok(dat_optim_create(&opt, ctx, segs, 3, &o));
    ck_assert_dat_ok(dat_optim_set_lr_scale(opt, 0, 2, 0.0f));
    ck_assert_dat_err(dat_optim_set_lr_scale(opt, 2, 2, 1.0f), DAT_ERR_INVALID_ARG, "[2, 2 + 2)");
    ck_assert_dat_err(dat_optim_set_lr_scale(opt, 0, 1, -1.0f), DAT_ERR_INVALID_ARG, "scale");
    ck_assert_dat_err(dat_optim_set_lr_scale(opt, 0, 1, NAN), DAT_ERR_INVALID_ARG, "scale");
    int64_t n = 3 * N;
    dat_tensor *p, *g;
    dat_tensor_create(&p, ctx, DAT_FLOAT32, 1, &n);
    dat_tensor_create(&g, ctx, DAT_FLOAT32, 1, &n);
    dat_tensor_fill_normal(p, 0.0f, 1.0f, 1, 0);
    float before[3 * N], after[3 * N];
    dat_tensor_read(p, before, sizeof before);
    for (int k = 0; k < 5; ++k) {
        dat_tensor_fill_normal(g, 0.0f, 1.0f, 2, (uint64_t)k);
        ck_assert_dat_ok(dat_optim_step(opt, p, g));
    }
    dat_tensor_read(p, after, sizeof after);
    ck_assert_mem_eq(before, after, 2 * N * sizeof(float));
    ck_assert(memcmp(before + 2 * N, after + 2 * N, N * sizeof(float)) != 0);
    dat_optim_destroy(opt);

    /* SGD with scales 1 and 1/2 side by side on the same gradient. */
    o.kind = DAT_OPTIM_SGD;
    o.weight_decay = 0;
    ck_assert_dat_ok(dat_optim_create(&opt, ctx, segs, 2, &o));
    ck_assert_dat_ok(dat_optim_set_lr_scale(opt, 1, 1, 0.5f));
    float th[2 * N] = {0}, gr[2 * N];
    for (int i = 0; i < 2 * N; ++i)
        gr[i] = i < N ? (float)(i % 7) - 3.0f : (float)((i - N) % 7) - 3.0f;
    n = 2 * N;
    dat_tensor *p2, *g2;
    dat_tensor_create(&p2, ctx, DAT_FLOAT32, 1, &n);
    dat_tensor_create(&g2, ctx, DAT_FLOAT32, 1, &n);
    dat_tensor_write(p2, th, sizeof th);
    dat_tensor_write(g2, gr, sizeof gr);
    ck_assert_dat_ok(dat_optim_step(opt, p2, g2));
    dat_tensor_read(p2, after, 2 * N * sizeof(float));
    for (int i = 0; i < N; ++i)
        ck_assert_float_eq(after[N + i], 0.5f * after[i]);
    dat_tensor_destroy(p);
    dat_tensor_destroy(g);
    dat_tensor_destroy(p2);
    dat_tensor_destroy(g2);
    dat_optim_destroy(opt);
}
END_TEST

/* Adam counts each segment's own steps, as PyTorch counts each parameter's:
 * a segment frozen for 7 steps and then unfrozen moves exactly as under a
 * fresh optimizer created at the unfreezing (bias corrections of step 1, not
 * of step 8), even across a save and load made while it was frozen. */
enum { FROZEN = 7, AFTER = 4 };

static dat_tensor *vec(const float *x, int64_t n)
{
    dat_tensor *t;
    ck_assert_dat_ok(dat_tensor_create(&t, ctx, DAT_FLOAT32, 1, &n));
    ck_assert_dat_ok(dat_tensor_write(t, x, (size_t)n * sizeof(float)));
    return t;
}

/* theta of segment b (elements [N, 2N)) after FROZEN steps with b frozen,
 * then AFTER steps with it unfrozen; `reload`: the state saved and loaded into
 * a new optimizer in the middle of the frozen steps (the scales set again). */
static void unfrozen_run(const dat_optim_options *o, int reload, float out[N])
{
    dat_segment segs[2] = {
        {.size = sizeof segs[0], .name = "a.weight", .offset = 0, .length = N},
        {.size = sizeof segs[0], .name = "b.weight", .offset = N, .length = N}};
    dat_optim *opt;
    ck_assert_dat_ok(dat_optim_create(&opt, ctx, segs, 2, o));
    ck_assert_dat_ok(dat_optim_set_lr_scale(opt, 1, 1, 0.0f));
    float th[2 * N], gr[2 * N];
    for (int i = 0; i < 2 * N; ++i)
        th[i] = 0.5f - (float)(i % 5) * 0.25f;
    dat_tensor *p = vec(th, 2 * N);
    for (int k = 0; k < FROZEN + AFTER; ++k) {
        if (k == FROZEN)
            ck_assert_dat_ok(dat_optim_set_lr_scale(opt, 1, 1, 1.0f));
        if (reload && k == 3) {
            size_t n;
            ck_assert_dat_ok(dat_optim_state_size(opt, &n));
            void *buf = malloc(n);
            ck_assert_dat_ok(dat_optim_state_save(opt, buf, n));
            dat_optim_destroy(opt);
            ck_assert_dat_ok(dat_optim_create(&opt, ctx, segs, 2, o));
            ck_assert_dat_ok(dat_optim_set_lr_scale(opt, 1, 1, 0.0f));
            ck_assert_dat_ok(dat_optim_state_load(opt, buf, n));
            free(buf);
        }
        for (int i = 0; i < 2 * N; ++i)
            gr[i] = 0.01f * (float)((i * 7 + k * 3) % 11) - 0.05f;
        dat_tensor *g = vec(gr, 2 * N);
        ck_assert_dat_ok(dat_optim_step(opt, p, g));
        dat_tensor_destroy(g);
    }
    ck_assert_dat_ok(dat_tensor_read(p, th, sizeof th));
    memcpy(out, th + N, N * sizeof(float));
    dat_tensor_destroy(p);
    dat_optim_destroy(opt);
}

/* The same AFTER steps of segment b alone under a fresh optimizer. */
static void fresh_run(const dat_optim_options *o, float out[N])
{
    dat_segment seg = {.size = sizeof seg, .name = "b.weight", .offset = 0, .length = N};
    dat_optim *opt;
    ck_assert_dat_ok(dat_optim_create(&opt, ctx, &seg, 1, o));
    float th[N], gr[N];
    for (int i = 0; i < N; ++i)
        th[i] = 0.5f - (float)((i + N) % 5) * 0.25f;
    dat_tensor *p = vec(th, N);
    for (int k = FROZEN; k < FROZEN + AFTER; ++k) {
        for (int i = 0; i < N; ++i)
            gr[i] = 0.01f * (float)(((i + N) * 7 + k * 3) % 11) - 0.05f;
        dat_tensor *g = vec(gr, N);
        ck_assert_dat_ok(dat_optim_step(opt, p, g));
        dat_tensor_destroy(g);
    }
    ck_assert_dat_ok(dat_tensor_read(p, out, N * sizeof(float)));
    dat_tensor_destroy(p);
    dat_optim_destroy(opt);
}

START_TEST(test_unfrozen_segment_counts_its_own_steps)
{
    const dat_optim_kind kinds[] = {DAT_OPTIM_ADAM, DAT_OPTIM_ADAMW, DAT_OPTIM_MOMENTUM};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; ++k) {
        dat_optim_options o;
        dat_optim_options_init(&o);
        o.kind = kinds[k];
        o.lr = 1e-3f;
        o.weight_decay = 1e-2f;
        o.lalr = k == 1;
        float fresh[N], unfrozen[N], reloaded[N];
        fresh_run(&o, fresh);
        unfrozen_run(&o, 0, unfrozen);
        unfrozen_run(&o, 1, reloaded);
        ck_assert_msg(memcmp(fresh, unfrozen, sizeof fresh) == 0,
                      "kind %d: the unfrozen segment moved otherwise than a fresh optimizer's "
                      "(%g vs %g)", (int)o.kind, (double)unfrozen[0], (double)fresh[0]);
        ck_assert_msg(memcmp(fresh, reloaded, sizeof fresh) == 0,
                      "kind %d: the state loaded while frozen forgot the steps sat out",
                      (int)o.kind);
    }
}
END_TEST

/* The header of a version-1 state (lib/optim/state.c), for hand-made states. */
typedef struct v1_header {
    char magic[8];
    int32_t kind, n_moments;
    int64_t total, step;
} v1_header;

/* A state of libdat 0.7 (version 1: header and moments, no segment counts)
 * still loads: moments and step as saved. */
START_TEST(test_version_1_state_loads)
{
    dat_segment segs[2] = {
        {.size = sizeof segs[0], .name = "a.weight", .offset = 0, .length = N},
        {.size = sizeof segs[0], .name = "b.weight", .offset = N, .length = N}};
    dat_optim_options o;
    dat_optim_options_init(&o);
    o.kind = DAT_OPTIM_ADAM;
    dat_optim *opt;
    ck_assert_dat_ok(dat_optim_create(&opt, ctx, segs, 2, &o));
    v1_header h = {"DATOPT1", DAT_OPTIM_ADAM, 2, 2 * N, 5};
    unsigned char buf[sizeof h + 4 * N * sizeof(float)];
    float mom[4 * N];
    for (int i = 0; i < 4 * N; ++i)
        mom[i] = (float)i;
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, mom, sizeof mom);
    ck_assert_dat_err(dat_optim_state_load(opt, buf, sizeof buf - 1), DAT_ERR_FORMAT, "bytes");
    ck_assert_dat_ok(dat_optim_state_load(opt, buf, sizeof buf));
    int64_t step;
    ck_assert_dat_ok(dat_optim_get_step(opt, &step));
    ck_assert_int_eq(step, 5);
    size_t n;
    ck_assert_dat_ok(dat_optim_state_size(opt, &n));
    unsigned char *now = malloc(n);
    ck_assert_dat_ok(dat_optim_state_save(opt, now, n));
    ck_assert_mem_eq(now + n - sizeof mom, mom, sizeof mom);
    ck_assert_mem_eq(now, "DATOPT2", 8);
    /* A version 2 state with a count past its step is corrupt. */
    int64_t bad = 6;
    memcpy(now + sizeof h + 8 + sizeof bad, &bad, sizeof bad);
    ck_assert_dat_err(dat_optim_state_load(opt, now, n), DAT_ERR_FORMAT, "segment 1 sat out 6");
    free(now);
    dat_optim_destroy(opt);
}
END_TEST

/* Corrupt states are refused whole (fuzzing found each): a step past
 * DAT_OPTIM_MAX_STEP (INT64_MAX loaded, then t + 1 overflowed and the next step
 * never returned), a NaN first moment, a negative second moment (the next
 * steps wrote NaN). The counter's limit holds for dat_optim_set_step() and
 * dat_optim_step() too. */
START_TEST(test_corrupt_states_are_refused)
{
    dat_segment seg = {.size = sizeof seg, .name = "a.weight", .offset = 0, .length = N};
    dat_optim_options o;
    dat_optim_options_init(&o);
    o.kind = DAT_OPTIM_ADAM;
    dat_optim *opt;
    ck_assert_dat_ok(dat_optim_create(&opt, ctx, &seg, 1, &o));
    v1_header h = {"DATOPT1", DAT_OPTIM_ADAM, 2, N, INT64_MAX};
    unsigned char buf[sizeof h + 2 * N * sizeof(float)];
    float mom[2 * N] = {0};
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, mom, sizeof mom);
    ck_assert_dat_err(dat_optim_state_load(opt, buf, sizeof buf), DAT_ERR_FORMAT, "kind");
    h.step = DAT_OPTIM_MAX_STEP;
    memcpy(buf, &h, sizeof h);
    ck_assert_dat_ok(dat_optim_state_load(opt, buf, sizeof buf));
    static const struct { int at; float value; const char *says; } bad[] = {
        {0, NAN, "first moment 0 is nan"},
        {N - 1, INFINITY, "first moment 63 is inf"},
        {N + 2, -1.0f, "second moment 2 is -1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; ++i) {
        float m[2 * N] = {0};
        m[bad[i].at] = bad[i].value;
        memcpy(buf + sizeof h, m, sizeof m);
        ck_assert_dat_err(dat_optim_state_load(opt, buf, sizeof buf), DAT_ERR_FORMAT,
                          bad[i].says);
    }
    int64_t step;
    ck_assert_dat_ok(dat_optim_get_step(opt, &step));
    ck_assert_int_eq(step, DAT_OPTIM_MAX_STEP); /* the last good load's */
    int64_t shape[1] = {N};
    dat_tensor *p, *g;
    ck_assert_dat_ok(dat_tensor_create(&p, ctx, DAT_FLOAT32, 1, shape));
    ck_assert_dat_ok(dat_tensor_create(&g, ctx, DAT_FLOAT32, 1, shape));
    ck_assert_dat_ok(dat_tensor_fill(p, 1.0));
    ck_assert_dat_ok(dat_tensor_fill(g, 0.5));
    ck_assert_dat_err(dat_optim_step(opt, p, g), DAT_ERR_STATE, "limit");
    ck_assert_dat_err(dat_optim_set_step(opt, DAT_OPTIM_MAX_STEP + 1), DAT_ERR_INVALID_ARG,
                      "at most DAT_OPTIM_MAX_STEP");
    ck_assert_dat_ok(dat_optim_set_step(opt, DAT_OPTIM_MAX_STEP - 1));
    ck_assert_dat_ok(dat_optim_step(opt, p, g));
    dat_tensor_destroy(p);
    dat_tensor_destroy(g);
    dat_optim_destroy(opt);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_update_norm_is_clipped_theta_norm);
    tcase_add_test(tc, test_zero_theta_uses_trust_one);
    tcase_add_test(tc, test_schedules_match_libm);
    tcase_add_test(tc, test_model_optimizer);
    tcase_add_test(tc, test_lr_scale_freezes_and_scales);
    tcase_add_test(tc, test_unfrozen_segment_counts_its_own_steps);
    tcase_add_test(tc, test_version_1_state_loads);
    tcase_add_test(tc, test_corrupt_states_are_refused);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
