/*
 * Activation formats through the public API, on the CPU: a model in a context
 * with channels_last = 1 and / or DAT_PRECISION_BF16 against the same model in
 * float32 NCHW. The CPU computes every format in float32 between conversions
 * (lib/cpu/formats.c), so channels last must give the very same bits as NCHW,
 * and bf16 must stay within bf16's rounding of the float32 results. This holds
 * the model's side of the formats (the plan, the conversions at its edges, the
 * convolution weights' copies) to the reference; test_backend_ops holds the
 * CUDA kernels of each format to the CPU's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"

#define BATCH 4

/* What one pass of a model gives, read back to the host. */
typedef struct outputs {
    float *logits, *dx, *grads, *act, *buffers; /* buffers: BN running statistics, or NULL */
    size_t n_logits, n_x, n_params, n_act, n_buffers;
    float loss;
} outputs;

static void outputs_free(outputs *o)
{
    free(o->logits);
    free(o->dx);
    free(o->grads);
    free(o->act);
    free(o->buffers);
}

/* A forward pass (with node `node`'s activation), the input gradient, and the
 * parameter gradient of the loss, of `preset` in a context of the given
 * precision and layout; the model, inputs and labels are the same every time. */
static outputs run(const char *preset, dat_precision precision, int channels_last, int node)
{
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.num_threads = 2;
    co.precision = precision;
    co.channels_last = channels_last;
    dat_ctx *ctx;
    ck_assert_dat_ok(dat_ctx_create(&ctx, &co));
    static const float mean[3] = {0.49f, 0.48f, 0.45f}, std[3] = {0.25f, 0.24f, 0.26f};
    dat_model_options mo;
    dat_model_options_init(&mo);
    mo.init_seed = 11;
    dat_model *m;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, preset, &mo));
    int32_t c, h, w;
    ck_assert_dat_ok(dat_model_shape(m, &c, &h, &w, NULL));
    if (c == 3) { /* the 3-channel presets normalize their input, as in training */
        dat_model_destroy(m);
        mo.mean = mean;
        mo.std = std;
        ck_assert_dat_ok(dat_model_create_preset(&m, ctx, preset, &mo));
    }
    int64_t xs[4] = {BATCH, c, h, w}, ys[1] = {BATCH}, zs[2] = {BATCH, 10};
    dat_tensor *x, *y, *z, *dx, *act;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&dx, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    ck_assert_dat_ok(dat_tensor_create(&z, ctx, DAT_FLOAT32, 2, zs));
    ck_assert_dat_ok(dat_tensor_fill_uniform(x, 0.0f, 1.0f, 5, 0));
    int32_t labels[BATCH] = {3, 0, 9, 3};
    ck_assert_dat_ok(dat_tensor_write(y, labels, sizeof labels));

    outputs o = {0};
    ck_assert_dat_ok(dat_model_forward(m, x, z));
    o.logits = dat_test_read_floats(z, &o.n_logits);
    int32_t ac, ah, aw;
    ck_assert_dat_ok(dat_model_node_info(m, node, NULL, &ac, &ah, &aw));
    int64_t as[4] = {BATCH, ac, ah, aw};
    ck_assert_dat_ok(dat_tensor_create(&act, ctx, DAT_FLOAT32, 4, as));
    ck_assert_dat_ok(dat_model_activation(m, node, act));
    o.act = dat_test_read_floats(act, &o.n_act);
    ck_assert_dat_ok(dat_model_input_grad(m, x, y, NULL, dx, NULL));
    o.dx = dat_test_read_floats(dx, &o.n_x);
    ck_assert_dat_ok(dat_model_loss_backward(m, x, y, NULL, &o.loss));
    dat_tensor *grads;
    ck_assert_dat_ok(dat_model_grads(m, &grads));
    o.grads = dat_test_read_floats(grads, &o.n_params);
    dat_tensor *buffers = NULL; /* after three train-mode passes */
    ck_assert_dat_ok(dat_model_buffers(m, &buffers));
    if (buffers)
        o.buffers = dat_test_read_floats(buffers, &o.n_buffers);

    dat_tensor_destroy(x);
    dat_tensor_destroy(dx);
    dat_tensor_destroy(y);
    dat_tensor_destroy(z);
    dat_tensor_destroy(act);
    dat_model_destroy(m);
    dat_ctx_destroy(ctx);
    return o;
}

static void expect_same(const char *what, const char *preset, const outputs *a,
                        const outputs *b)
{
    ck_assert_msg(memcmp(a->logits, b->logits, a->n_logits * 4) == 0, "%s %s: logits differ",
                  preset, what);
    ck_assert_msg(memcmp(a->act, b->act, a->n_act * 4) == 0, "%s %s: activation differs",
                  preset, what);
    ck_assert_msg(memcmp(a->dx, b->dx, a->n_x * 4) == 0, "%s %s: input gradient differs",
                  preset, what);
    ck_assert_msg(memcmp(a->grads, b->grads, a->n_params * 4) == 0,
                  "%s %s: parameter gradient differs", preset, what);
    ck_assert_msg(a->loss == b->loss, "%s %s: loss %g, not %g", preset, what, b->loss, a->loss);
    ck_assert_msg(a->n_buffers == b->n_buffers &&
                      (!a->buffers || memcmp(a->buffers, b->buffers, a->n_buffers * 4) == 0),
                  "%s %s: batch-norm running statistics differ", preset, what);
}

/*
 * Normalized errors of bf16 against float32, at most tol[]: logits,
 * activation, input gradient, parameter gradient. The forward values carry a
 * few bf16 roundings (2^-9 each). The gradients of a network at its random
 * initialization are far more sensitive (a max-pool window whose values
 * round to a tie routes its gradient elsewhere; deep ReLU nets' gradients are
 * "shattered"): PyTorch's bf16 autocast against its fp32, same models, batch
 * 16, CPU: cnn_small 2.5e-3, 6.6e-2 (dx), 2.2e-2 (grads); preact_resnet18
 * 2.2e-2, 0.39, 0.34. libdat's are of the same size or smaller.
 */
static void expect_near(const char *preset, const outputs *ref, const outputs *got,
                        const double tol[4])
{
    double e[4] = {dat_test_rel_err(ref->logits, got->logits, ref->n_logits),
                   dat_test_rel_err(ref->act, got->act, ref->n_act),
                   dat_test_rel_err(ref->dx, got->dx, ref->n_x),
                   dat_test_rel_err(ref->grads, got->grads, ref->n_params)};
    const char *names[4] = {"logits", "activation", "input gradient", "parameter gradient"};
    printf("test_formats: %s bf16 vs fp32: logits %.2e, activation %.2e, dx %.2e, grads %.2e, "
           "loss %.6f vs %.6f\n", preset, e[0], e[1], e[2], e[3], got->loss, ref->loss);
    for (int k = 0; k < 4; ++k)
        ck_assert_msg(e[k] < tol[k], "%s bf16: %s off by %.3g (> %.2g) from fp32", preset,
                      names[k], e[k], tol[k]);
    /* Not the float32 result itself: bf16 ran. */
    ck_assert(e[0] > 0 && e[3] > 0);
    ck_assert_msg(fabsf(got->loss - ref->loss) < 0.02f * fabsf(ref->loss), "%s bf16: loss %g vs %g",
                  preset, got->loss, ref->loss);
}

static void check_preset(const char *preset, int node, const double bf16_tol[4])
{
    outputs f32 = run(preset, DAT_PRECISION_FP32, 0, node);
    outputs nhwc = run(preset, DAT_PRECISION_FP32, 1, node);
    outputs bf16 = run(preset, DAT_PRECISION_BF16, 0, node);
    outputs bf16_nhwc = run(preset, DAT_PRECISION_BF16, 1, node);
    outputs fp32_auto = run(preset, DAT_PRECISION_FP32, -1, node);
    expect_same("channels last vs NCHW", preset, &f32, &nhwc);
    expect_same("bf16 channels last vs bf16 NCHW", preset, &bf16, &bf16_nhwc);
    expect_same("the CPU's own layout (-1) vs NCHW", preset, &f32, &fp32_auto);
    expect_near(preset, &f32, &bf16, bf16_tol);
    outputs_free(&f32);
    outputs_free(&nhwc);
    outputs_free(&bf16);
    outputs_free(&bf16_nhwc);
    outputs_free(&fp32_auto);
}

/* conv, ReLU, max pooling, flatten (a change of format), linear layers. */
START_TEST(test_cnn_small)
{
    const double tol[4] = {0.01, 0.01, 0.15, 0.05};
    check_preset("cnn_small", 4, tol);
}
END_TEST

/* Normalized input, batch norms with fused ReLUs, residual adds, 1x1 shortcuts,
 * global pooling. */
START_TEST(test_preact_resnet18)
{
    const double tol[4] = {0.03, 0.01, 0.6, 0.5};
    check_preset("preact_resnet18", 6, tol);
}
END_TEST

/* An MLP has no spatial layer: every format runs it in float32 NCHW. */
START_TEST(test_mlp_stays_float32)
{
    outputs f32 = run("mlp", DAT_PRECISION_FP32, 0, 2);
    outputs bf16 = run("mlp", DAT_PRECISION_BF16, 1, 2);
    expect_same("bf16 channels last vs fp32", "mlp", &f32, &bf16);
    outputs_free(&f32);
    outputs_free(&bf16);
}
END_TEST

/* The adversarial examples of a PGD-3 attack on cnn_small in a bf16 channels-last
 * context, after the model's parameters were set to `seed`'s values; `warm` first
 * runs the attack once with the parameters the model was made with. */
static float *attack_after_new_params(uint64_t seed, int warm, size_t *n)
{
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.num_threads = 2;
    co.precision = DAT_PRECISION_BF16;
    co.channels_last = 1;
    dat_ctx *ctx;
    ck_assert_dat_ok(dat_ctx_create(&ctx, &co));
    dat_model *m;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "cnn_small", NULL));
    dat_attack_options ao;
    dat_attack_options_init(&ao);
    ao.eps = 0.1f;
    ao.steps = 3;
    ao.random_start = 0;
    dat_attack *a;
    ck_assert_dat_ok(dat_attack_create(&a, ctx, &ao));
    int64_t xs[4] = {BATCH, 1, 28, 28}, ys[1] = {BATCH};
    dat_tensor *x, *xa, *y, *p;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&xa, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    ck_assert_dat_ok(dat_tensor_fill_uniform(x, 0.0f, 1.0f, 7, 0));
    ck_assert_dat_ok(dat_tensor_fill(y, 3));
    if (warm)
        ck_assert_dat_ok(dat_attack_perturb(a, m, x, y, xa));
    ck_assert_dat_ok(dat_model_params(m, &p));
    ck_assert_dat_ok(dat_tensor_fill_uniform(p, -0.2f, 0.2f, seed, 0));
    ck_assert_dat_ok(dat_attack_perturb(a, m, x, y, xa));
    float *out = dat_test_read_floats(xa, n);
    dat_tensor_destroy(x);
    dat_tensor_destroy(xa);
    dat_tensor_destroy(y);
    dat_attack_destroy(a);
    dat_model_destroy(m);
    dat_ctx_destroy(ctx);
    return out;
}

/* An attack converts the convolution weights into their bf16 copies once, as its
 * passes cannot change them, but a new attack must convert them again: with new
 * parameters between two attacks, the second gives what a model made with them gives. */
START_TEST(test_attack_sees_new_parameters)
{
    size_t n1, n2;
    float *after = attack_after_new_params(5, 1, &n1);
    float *fresh = attack_after_new_params(5, 0, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_int_eq(memcmp(after, fresh, n1 * sizeof *after), 0);
    free(after);
    free(fresh);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("formats");
    TCase *tc = tcase_create("formats");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_cnn_small);
    tcase_add_test(tc, test_preact_resnet18);
    tcase_add_test(tc, test_mlp_stays_float32);
    tcase_add_test(tc, test_attack_sees_new_parameters);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
