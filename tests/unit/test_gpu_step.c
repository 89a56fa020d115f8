/*
 * A whole PGD-AT step on the CUDA backend against the CPU backend: the same
 * weights, data and seed on both, then (1) the PGD-10 attack with its random
 * start, (2) loss + backward on one adversarial batch, (3) a LARS step
 * (momentum + layer-wise adaptive rate), for cnn_small and for
 * preact_resnet18 (batch norm, residual adds), in fp32 with cuDNN's heuristic
 * algorithms, in TF32 with timed ones, and in bf16 (against the CPU's
 * emulation of it). Then the attack with its steps
 * replayed from a CUDA graph (dat_ctx_options::cuda_graphs) against the same
 * attack run op by op. Exits 77 without a GPU.
 *
 * The attack's sign(gradient) is discontinuous: where a gradient element is
 * within rounding of 0, the two backends can step it in opposite directions.
 * So the attack is held to "all but a few elements equal" (docs/backends.md),
 * and stages (2) and (3) run on the CPU's adversarial batch on both sides,
 * which makes them comparable with tight tolerances.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check_util.h"

/* Gradient tolerances per model: each op agrees to ~1e-5 (test_backend_ops), and
 * a deep network compounds that. In preact_resnet18 at batch 16, the batch-norm
 * backward of the 4x4 layers subtracts means over 256 values per channel
 * (cancellation), and 17 such layers chain: ~1e-3 measured on an H200. The
 * parameters after a LARS step move by ~5 % (lr 0.05) of the gradient's
 * difference, so their tolerance is a tenth of the gradient's. */
/* In fp32 at most 0.5 % of the inputs may differ after PGD-10 (none did on an
 * H200). TF32 rounds every product's inputs to 10 mantissa bits (~5e-4 relative
 * per op): signs flip, and a flipped step changes every later gradient, so 31 %
 * of the inputs differed after 10 steps on an H200. That case holds the attack
 * to the eps-ball and the input range only, and stages (2) and (3) to 5e-2. */
#define EPS 0.1f

static dat_ctx *cpu, *gpu, *gpu_tf32, *gpu_graphs, *cpu_bf16, *gpu_bf16;
/* Under the CUDA emulation (meson's gpu_emulation sets DAT_TEST_EMULATED_GPU)
 * convolutions are loops on one core: the preact_resnet18 cases would take most
 * of an hour, so they are left to a GPU, and the graphs case runs cnn_small.
 * The emulation rounds as op by op does and the contexts ask for deterministic
 * convolutions, so there replays must match bit for bit. */
static int emulated;
static int graph_warnings; /* warnings logged by gpu_graphs (a failed capture is one) */

/* A tensor's values on the host (caller frees). */
static float *host_copy(const dat_tensor *t)
{
    return dat_test_read_floats(t, NULL);
}

/* ||g - c|| / ||c|| over two same-shaped tensors. */
static double rel_err(const dat_tensor *c, const dat_tensor *g, int64_t *n_out)
{
    size_t n = 0;
    float *a = dat_test_read_floats(c, &n), *b = host_copy(g);
    double e = dat_test_rel_err(a, b, n);
    free(a);
    free(b);
    if (n_out)
        *n_out = (int64_t)n;
    return e;
}

/* Prints the segments whose gradients differ most (what a failure points at). */
static void print_worst_segments(dat_model *m, const dat_tensor *c, const dat_tensor *g)
{
    int32_t n_segs = 0;
    ck_assert_dat_ok(dat_model_num_segments(m, &n_segs));
    float *a = host_copy(c), *b = host_copy(g);
    double worst[3] = {0, 0, 0};
    int32_t at[3] = {-1, -1, -1};
    for (int32_t k = 0; k < n_segs; ++k) {
        dat_segment s = {.size = sizeof s};
        ck_assert_dat_ok(dat_model_segment(m, k, &s));
        double num = 0, den = 0;
        for (int64_t i = s.offset; i < s.offset + s.length; ++i) {
            double d = (double)b[i] - a[i];
            num += d * d;
            den += (double)a[i] * a[i];
        }
        double e = den > 0 ? sqrt(num / den) : sqrt(num);
        for (int j = 0; j < 3; ++j)
            if (e > worst[j]) {
                for (int q = 2; q > j; --q) {
                    worst[q] = worst[q - 1];
                    at[q] = at[q - 1];
                }
                worst[j] = e;
                at[j] = k;
                break;
            }
    }
    for (int j = 0; j < 3 && at[j] >= 0; ++j) {
        dat_segment s = {.size = sizeof s};
        ck_assert_dat_ok(dat_model_segment(m, at[j], &s));
        printf("  gradient of %s: normalized error %.3g\n", s.name, worst[j]);
    }
    free(a);
    free(b);
}

/* Elements of xa outside [0, 1] or further than eps from x. */
static int64_t outside_ball(const dat_tensor *x, const dat_tensor *xa)
{
    int64_t n = 0, bad = 0;
    ck_assert_dat_ok(dat_tensor_numel(x, &n));
    float *a = host_copy(x), *b = host_copy(xa);
    for (int64_t i = 0; i < n; ++i)
        bad += !(b[i] >= 0.0f && b[i] <= 1.0f && fabsf(b[i] - a[i]) <= EPS * (1 + 1e-6f));
    free(a);
    free(b);
    return bad;
}

static int64_t count_diff(const dat_tensor *c, const dat_tensor *g, double tol)
{
    int64_t n = 0, diff = 0;
    ck_assert_dat_ok(dat_tensor_numel(c, &n));
    float *a = host_copy(c), *b = host_copy(g);
    for (int64_t i = 0; i < n; ++i)
        diff += !(fabs((double)a[i] - b[i]) <= tol);
    free(a);
    free(b);
    return diff;
}

typedef struct side {
    dat_ctx *ctx;
    dat_model *model;
    dat_attack *attack;
    dat_optim *optim;
    dat_tensor *x, *xa, *y;
} side;

static void side_init(side *s, dat_ctx *ctx, const char *preset, int batch,
                      dat_model_mode attack_mode)
{
    s->ctx = ctx;
    ck_assert_dat_ok(dat_model_create_preset(&s->model, ctx, preset, NULL));
    int32_t c, h, w;
    ck_assert_dat_ok(dat_model_shape(s->model, &c, &h, &w, NULL));
    int64_t xs[4] = {batch, c, h, w}, ys[1] = {batch};
    ck_assert_dat_ok(dat_tensor_create(&s->x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&s->xa, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&s->y, ctx, DAT_INT32, 1, ys));
    dat_attack_options ao;
    dat_attack_options_init(&ao);
    ao.eps = EPS;
    ao.steps = 10;
    ao.mode = attack_mode;
    ck_assert_dat_ok(dat_attack_create(&s->attack, ctx, &ao));
    dat_optim_options oo;
    dat_optim_options_init(&oo);
    oo.kind = DAT_OPTIM_MOMENTUM;
    oo.lalr = 1;
    oo.lr = 0.05f;
    oo.weight_decay = 5e-4f;
    ck_assert_dat_ok(dat_optim_create_for_model(&s->optim, s->model, &oo));
}

static void side_fini(side *s)
{
    dat_tensor_destroy(s->x);
    dat_tensor_destroy(s->xa);
    dat_tensor_destroy(s->y);
    dat_optim_destroy(s->optim);
    dat_attack_destroy(s->attack);
    dat_model_destroy(s->model);
}

/* The same weights, BN buffers and data on side g as on side c. */
static void same_start(side *c, side *g, int batch)
{
    dat_tensor *tc, *tg;
    ck_assert_dat_ok(dat_model_params(c->model, &tc));
    ck_assert_dat_ok(dat_model_params(g->model, &tg));
    ck_assert_dat_ok(dat_tensor_copy(tg, tc));
    ck_assert_dat_ok(dat_model_buffers(c->model, &tc));
    ck_assert_dat_ok(dat_model_buffers(g->model, &tg));
    if (tc)
        ck_assert_dat_ok(dat_tensor_copy(tg, tc));
    ck_assert_dat_ok(dat_tensor_fill_uniform(c->x, 0.0f, 1.0f, 7, 0));
    ck_assert_dat_ok(dat_tensor_copy(g->x, c->x));
    int32_t *labels = malloc((size_t)batch * sizeof *labels);
    for (int i = 0; i < batch; ++i)
        labels[i] = (i * 7) % 10;
    ck_assert_dat_ok(dat_tensor_write(c->y, labels, (size_t)batch * sizeof *labels));
    ck_assert_dat_ok(dat_tensor_write(g->y, labels, (size_t)batch * sizeof *labels));
    free(labels);
}

/* ref: the CPU context the CUDA context `on` is held to (the same precision);
 * tol_loss: the loss's relative tolerance. */
static void step_parity(dat_ctx *ref, dat_ctx *on, const char *preset, int batch,
                        double tol_grad, double max_flips, double tol_loss)
{
    side c, g;
    side_init(&c, ref, preset, batch, DAT_MODE_EVAL);
    side_init(&g, on, preset, batch, DAT_MODE_EVAL);
    same_start(&c, &g, batch);
    dat_tensor *tc, *tg;

    /* (1) the attack, random start included (Philox streams are the same). */
    ck_assert_dat_ok(dat_attack_perturb(c.attack, c.model, c.x, c.y, c.xa));
    ck_assert_dat_ok(dat_attack_perturb(g.attack, g.model, g.x, g.y, g.xa));
    int64_t n = 0;
    double e = rel_err(c.xa, g.xa, &n);
    int64_t flips = count_diff(c.xa, g.xa, 1e-5);
    printf("%s: attack: %lld of %lld inputs differ (normalized error %.3g)\n", preset,
           (long long)flips, (long long)n, e);
    ck_assert_msg(flips <= max_flips * (double)n,
                  "%s: PGD-10 on CUDA differs from the CPU in %lld of %lld inputs", preset,
                  (long long)flips, (long long)n);
    int64_t out = outside_ball(g.x, g.xa);
    ck_assert_msg(out == 0, "%s: %lld adversarial inputs outside the eps-ball or [0, 1]",
                  preset, (long long)out);

    /* (2) loss and backward on the CPU's adversarial batch. */
    ck_assert_dat_ok(dat_tensor_copy(g.xa, c.xa));
    float lc = 0, lg = 0;
    ck_assert_dat_ok(dat_model_loss_backward(c.model, c.xa, c.y, NULL, &lc));
    ck_assert_dat_ok(dat_model_loss_backward(g.model, g.xa, g.y, NULL, &lg));
    dat_tensor *gc, *gg;
    ck_assert_dat_ok(dat_model_grads(c.model, &gc));
    ck_assert_dat_ok(dat_model_grads(g.model, &gg));
    double eg = rel_err(gc, gg, NULL);
    printf("%s: loss cpu %.7g cuda %.7g; gradient normalized error %.3g\n", preset, lc, lg, eg);
    print_worst_segments(c.model, gc, gg);
    ck_assert_msg(fabs((double)lc - lg) <= tol_loss * fabs((double)lc) + 1e-6,
                  "%s: loss cpu %.9g, cuda %.9g", preset, lc, lg);
    ck_assert_msg(eg <= tol_grad, "%s: gradient normalized error %.3g > %g", preset, eg,
                  tol_grad);

    /* (3) the LARS step, each side on its own gradient; then the BN buffers. */
    ck_assert_dat_ok(dat_optim_step_model(c.optim, c.model));
    ck_assert_dat_ok(dat_optim_step_model(g.optim, g.model));
    ck_assert_dat_ok(dat_model_params(c.model, &tc));
    ck_assert_dat_ok(dat_model_params(g.model, &tg));
    double ep = rel_err(tc, tg, NULL);
    printf("%s: parameters after the step: normalized error %.3g\n", preset, ep);
    ck_assert_msg(ep <= tol_grad / 10, "%s: parameters differ after the step (%.3g > %g)",
                  preset, ep, tol_grad / 10);
    ck_assert_dat_ok(dat_model_buffers(c.model, &tc));
    ck_assert_dat_ok(dat_model_buffers(g.model, &tg));
    if (tc) {
        double eb = rel_err(tc, tg, NULL);
        printf("%s: BN running statistics: normalized error %.3g\n", preset, eb);
        ck_assert_msg(eb <= tol_grad, "%s: BN buffers differ (%.3g)", preset, eb);
    }
    side_fini(&c);
    side_fini(&g);
}

START_TEST(test_cnn_small)
{
    step_parity(cpu, gpu, "cnn_small", 64, 1e-4, 0.005, 1e-5);
}
END_TEST

START_TEST(test_preact_resnet18)
{
    step_parity(cpu, gpu, "preact_resnet18", 16, 5e-3, 0.005, 1e-5);
}
END_TEST

/* TF32 math and timed convolution algorithms (dat_ctx_options). */
START_TEST(test_preact_resnet18_tf32_tuned)
{
    step_parity(cpu, gpu_tf32, "preact_resnet18", 16, 5e-2, 1.0, 1e-5);
}
END_TEST

/*
 * bf16 activations, channels last on CUDA (its default for bf16) against the
 * CPU's emulation of bf16 in NCHW: the same roundings, so the two differ
 * where float32 results a few ulps apart round to neighbouring bf16 values.
 * Signs of gradient elements near 0 flip as in TF32, so the attack is held to
 * the ball only. Against fp32, bf16's own error is 1.3e-2 (cnn_small) and 0.25
 * (preact_resnet18, at initialization) in the parameter gradient; under the
 * CUDA emulation, whose bf16 convolutions round like cuDNN's (once, from
 * float), preact_resnet18 gave 0.20 here and cnn_small 1.1e-4. A GPU is still
 * to measure them.
 */
START_TEST(test_cnn_small_bf16)
{
    step_parity(cpu_bf16, gpu_bf16, "cnn_small", 64, 1e-2, 1.0, 1e-3);
}
END_TEST

START_TEST(test_preact_resnet18_bf16)
{
    step_parity(cpu_bf16, gpu_bf16, "preact_resnet18", 16, 0.3, 1.0, 3e-2);
}
END_TEST

/*
 * Steps 2 .. 10 replayed from a graph against the same attack op by op, both on
 * the GPU in fp32: in eval mode and in train mode (the replays update the BN
 * running statistics), twice (the second call replays the first one's
 * capture). cuDNN's algorithms are not all bit-reproducible, so the attack is
 * held to the fp32 flip limit; the capture must not have failed (it logs a
 * warning and runs op by op).
 */
START_TEST(test_cuda_graphs)
{
    const int batch = 16;
    const char *preset = emulated ? "cnn_small" : "preact_resnet18";
    for (int train = 0; train < 2; ++train) {
        dat_model_mode mode = train ? DAT_MODE_TRAIN : DAT_MODE_EVAL;
        side o, g;
        side_init(&o, gpu, preset, batch, mode);
        side_init(&g, gpu_graphs, preset, batch, mode);
        same_start(&o, &g, batch);
        for (int call = 0; call < 2; ++call) {
            ck_assert_dat_ok(dat_attack_perturb(o.attack, o.model, o.x, o.y, o.xa));
            ck_assert_dat_ok(dat_attack_perturb(g.attack, g.model, g.x, g.y, g.xa));
            int64_t n = 0;
            double e = rel_err(o.xa, g.xa, &n);
            int64_t flips = count_diff(o.xa, g.xa, 1e-5);
            printf("graphs, %s mode, call %d: %lld of %lld inputs differ (normalized error "
                   "%.3g)\n", train ? "train" : "eval", call, (long long)flips, (long long)n, e);
            ck_assert_msg(flips <= (emulated ? 0.0 : 0.005 * (double)n),
                          "graphs: %lld of %lld inputs differ", (long long)flips, (long long)n);
            dat_tensor *bo, *bg;
            ck_assert_dat_ok(dat_model_buffers(o.model, &bo));
            ck_assert_dat_ok(dat_model_buffers(g.model, &bg));
            if (bo) { /* cnn_small has no batch norm */
                double eb = rel_err(bo, bg, NULL);
                ck_assert_msg(eb <= 1e-5, "graphs: BN running statistics differ (%.3g)", eb);
            }
        }
        side_fini(&o);
        side_fini(&g);
    }
    ck_assert_msg(graph_warnings == 0, "the graphs context logged %d warnings", graph_warnings);
}
END_TEST

static void count_warnings(dat_log_level level, const char *message, void *user)
{
    (void)user;
    if (level <= DAT_LOG_WARN) {
        printf("gpu_graphs: %s\n", message);
        graph_warnings++;
    }
}

static dat_ctx *make_ctx(dat_device_kind kind, dat_precision precision, int tune, int graphs)
{
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.device = kind;
    o.precision = precision;
    o.tune_convolutions = tune;
    o.cuda_graphs = graphs;
    o.deterministic = 1; /* graph replays are compared with op by op */
    if (graphs)
        o.log_fn = count_warnings;
    o.seed = 1234;
    dat_ctx *ctx = NULL;
    return dat_ctx_create(&ctx, &o) == DAT_OK ? ctx : NULL;
}

int main(void)
{
    if (!dat_test_have_gpu()) {
        printf("no CUDA build or device: skipped\n");
        return DAT_TEST_SKIP;
    }
    emulated = dat_test_emulated_gpu();
    cpu = make_ctx(DAT_DEVICE_CPU, DAT_PRECISION_FP32, 0, 0);
    gpu = make_ctx(DAT_DEVICE_CUDA, DAT_PRECISION_FP32, 0, 0);
    gpu_tf32 = make_ctx(DAT_DEVICE_CUDA, DAT_PRECISION_TF32, 1, 0);
    gpu_graphs = make_ctx(DAT_DEVICE_CUDA, DAT_PRECISION_FP32, 0, 1);
    cpu_bf16 = make_ctx(DAT_DEVICE_CPU, DAT_PRECISION_BF16, 0, 0);
    gpu_bf16 = make_ctx(DAT_DEVICE_CUDA, DAT_PRECISION_BF16, 0, 0);
    if (!cpu || !gpu || !gpu_tf32 || !gpu_graphs || !cpu_bf16 || !gpu_bf16) {
        fprintf(stderr, "cannot create the contexts: %s\n", dat_last_error());
        return 1;
    }
    Suite *s = suite_create("gpu_step");
    TCase *tc = tcase_create("step");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_cnn_small);
    tcase_add_test(tc, test_cuda_graphs);
    tcase_add_test(tc, test_cnn_small_bf16);
    if (!emulated) {
        tcase_add_test(tc, test_preact_resnet18);
        tcase_add_test(tc, test_preact_resnet18_tf32_tuned);
        tcase_add_test(tc, test_preact_resnet18_bf16);
    } else {
        printf("CUDA emulation: the preact_resnet18 cases are left to a GPU\n");
    }
    suite_add_tcase(s, tc);
    int rc = dat_run_suite(s);
    dat_ctx_destroy(gpu_bf16);
    dat_ctx_destroy(cpu_bf16);
    dat_ctx_destroy(gpu_graphs);
    dat_ctx_destroy(gpu_tf32);
    dat_ctx_destroy(gpu);
    dat_ctx_destroy(cpu);
    return rc;
}
