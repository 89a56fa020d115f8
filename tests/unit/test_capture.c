/*
 * Step graphs (dat_capture.h): a whole adversarial training step (PGD attack
 * in train mode, loss + backward, a LARS step on a cosine schedule) recorded
 * once and replayed on new batches gives the bits of the same steps run op by
 * op: parameters, batch-norm statistics and counters (the saved checkpoints
 * compared byte for byte), optimizer and attack steps, the losses summed on the
 * device (dat_loss_options::loss_sum). The device-side checks
 * report at dat_ctx_synchronize(), and a non-finite gradient leaves the
 * parameters as they were. Calls that cannot be recorded fail with a message.
 * Exits 77 without a GPU (the CUDA emulation runs it on the CPU).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_util.h"

#define BATCH 4
#define STEPS 5

typedef struct side {
    dat_ctx *ctx;
    dat_model *model;
    dat_attack *attack;
    dat_optim *optim;
    dat_tensor *x, *xa, *y;
    dat_tensor *loss_sum; /* the steps' losses, added on the device */
    dat_comm *comm;       /* NULL, or a one-rank NCCL communicator the step all-reduces on */
    dat_grad_sync *sync;  /* NULL, or comm's all-reduce during the backward pass */
} side;

static dat_ctx *make_ctx(dat_device_kind kind)
{
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.device = kind;
    o.seed = 11;
    o.deterministic = 1; /* replays are compared with op by op bit for bit */
    dat_ctx *ctx = NULL;
    ck_assert_dat_ok(dat_ctx_create(&ctx, &o));
    return ctx;
}

static int32_t add(dat_model_builder *b, dat_layer_kind kind, const char *name, int32_t out,
                   int32_t stride, int32_t input)
{
    dat_layer_spec s;
    ck_assert_dat_ok(dat_layer_spec_init(&s, kind));
    s.name = name;
    s.out_features = out;
    s.stride = stride;
    s.padding = kind == DAT_LAYER_CONV2D ? 1 : 0;
    int32_t node = -1;
    ck_assert_dat_ok(dat_model_builder_add(b, &s, input, -1, &node));
    return node;
}

/* conv - BN - ReLU - conv (stride 2) - BN - ReLU - global pool - linear, on 3x8x8. */
static dat_model *small_bn_model(dat_ctx *ctx)
{
    dat_model_builder *b = NULL;
    ck_assert_dat_ok(dat_model_builder_create(&b, ctx, 3, 8, 8));
    int32_t x = add(b, DAT_LAYER_CONV2D, "conv1", 8, 1, 0);
    x = add(b, DAT_LAYER_RELU, NULL, 0, 1, add(b, DAT_LAYER_BATCHNORM, "bn1", 0, 1, x));
    x = add(b, DAT_LAYER_CONV2D, "conv2", 8, 2, x);
    x = add(b, DAT_LAYER_RELU, NULL, 0, 1, add(b, DAT_LAYER_BATCHNORM, "bn2", 0, 1, x));
    x = add(b, DAT_LAYER_FLATTEN, NULL, 0, 1, add(b, DAT_LAYER_GLOBAL_AVGPOOL, NULL, 0, 1, x));
    x = add(b, DAT_LAYER_LINEAR, "fc", 10, 1, x);
    dat_model *m = NULL;
    ck_assert_dat_ok(dat_model_builder_finish(b, x, 5, &m));
    dat_model_builder_destroy(b);
    return m;
}

static void side_init(side *s, dat_ctx *ctx)
{
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->model = small_bn_model(ctx);
    dat_attack_options ao;
    dat_attack_options_init(&ao);
    ao.eps = 0.1f;
    ao.steps = 2;
    ao.mode = DAT_MODE_TRAIN; /* the attack's passes move the BN statistics and counters */
    ao.seed = 7;
    ck_assert_dat_ok(dat_attack_create(&s->attack, ctx, &ao));
    dat_optim_options oo;
    dat_optim_options_init(&oo);
    oo.lr = 0.05f;
    oo.weight_decay = 5e-4f;
    oo.lalr = 1;
    oo.schedule = DAT_SCHEDULE_COSINE; /* a new learning rate at every step */
    oo.warmup_steps = 2;
    oo.total_steps = 8;
    ck_assert_dat_ok(dat_optim_create_for_model(&s->optim, s->model, &oo));
    int64_t xs[4] = {BATCH, 3, 8, 8}, ys[1] = {BATCH};
    ck_assert_dat_ok(dat_tensor_create(&s->x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&s->xa, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&s->y, ctx, DAT_INT32, 1, ys));
    int64_t one[1] = {1};
    ck_assert_dat_ok(dat_tensor_create(&s->loss_sum, ctx, DAT_FLOAT32, 1, one));
}

static void side_fini(side *s)
{
    dat_tensor_destroy(s->x);
    dat_tensor_destroy(s->xa);
    dat_tensor_destroy(s->y);
    dat_tensor_destroy(s->loss_sum);
    dat_optim_destroy(s->optim);
    dat_attack_destroy(s->attack);
    dat_model_destroy(s->model);
}

/* Batch k: images in [0, 1] and labels, different for every k; px0 and y0,
 * when not NULL, replace the first pixel and label. */
static void write_batch_with(side *s, int k, const float *px0, const int32_t *y0)
{
    static float x[BATCH * 3 * 8 * 8];
    int32_t y[BATCH];
    for (size_t i = 0; i < sizeof x / sizeof *x; ++i)
        x[i] = (float)((i * 37 + (size_t)k * 101) % 256) / 255.0f;
    for (int i = 0; i < BATCH; ++i)
        y[i] = (i * 3 + k) % 10;
    if (px0)
        x[0] = *px0;
    if (y0)
        y[0] = *y0;
    ck_assert_dat_ok(dat_tensor_write(s->x, x, sizeof x));
    ck_assert_dat_ok(dat_tensor_write(s->y, y, sizeof y));
}

/* One adversarial training step as a host loop writes it. */
static void write_batch(side *s, int k)
{
    write_batch_with(s, k, NULL, NULL);
}

static dat_status step(side *s, float *loss)
{
    dat_status st = dat_attack_perturb(s->attack, s->model, s->x, s->y, s->xa);
    dat_loss_options lo;
    dat_loss_options_init(&lo);
    lo.loss_sum = s->loss_sum;
    if (st == DAT_OK && s->sync)
        st = dat_grad_sync_begin(s->sync, 0);
    if (st == DAT_OK)
        st = dat_model_loss_backward(s->model, s->xa, s->y, &lo, loss);
    if (st == DAT_OK && s->sync)
        st = dat_grad_sync_end(s->sync);
    else if (st == DAT_OK && s->comm)
        st = dat_comm_allreduce_grads(s->comm, s->model, NULL, DAT_QUANT_ONE_SIDED, 0);
    return st == DAT_OK ? dat_optim_step_model(s->optim, s->model) : st;
}

/* A side that has run its first step op by op (which sizes the scratch). */
static void warmed_up(side *s, dat_ctx *ctx)
{
    side_init(s, ctx);
    write_batch(s, 0);
    float loss = 0;
    ck_assert_dat_ok(step(s, &loss));
    ck_assert(isfinite(loss));
}

static dat_step_graph *record(side *s)
{
    ck_assert_dat_ok(dat_capture_begin(s->ctx));
    ck_assert_dat_ok(step(s, NULL));
    dat_step_graph *g = NULL;
    ck_assert_dat_ok(dat_capture_end(s->ctx, &g));
    ck_assert_ptr_nonnull(g);
    return g;
}

/* The checkpoint's bytes: parameters, BN statistics, num_batches_tracked. */
static unsigned char *saved(dat_model *m, size_t *len)
{
    char path[] = "/tmp/dat_test_capture_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_dat_ok(dat_model_save(m, path));
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *p = malloc(*len);
    ck_assert_uint_eq(fread(p, 1, *len, f), *len);
    fclose(f);
    remove(path);
    return p;
}

/* The two sides of a comparison and their contexts. */
static void pair_fini(side *a, side *b)
{
    dat_ctx *ca = a->ctx, *cb = b->ctx;
    side_fini(a);
    side_fini(b);
    dat_ctx_destroy(ca);
    dat_ctx_destroy(cb);
}

/* Batches from .. to - 1 replayed on s's graph g, then waited for. */
static void replay(side *s, dat_step_graph *g, int from, int to)
{
    for (int k = from; k < to; ++k) {
        write_batch(s, k);
        ck_assert_dat_ok(dat_step_graph_launch(g));
    }
    ck_assert_dat_ok(dat_ctx_synchronize(s->ctx));
}

static float loss_sum(const side *s)
{
    float v = 0;
    ck_assert_dat_ok(dat_tensor_read(s->loss_sum, &v, sizeof v));
    return v;
}

static void expect_same_state(side *a, side *b)
{
    size_t la = 0, lb = 0;
    unsigned char *pa = saved(a->model, &la), *pb = saved(b->model, &lb);
    ck_assert_uint_eq(la, lb);
    ck_assert_msg(memcmp(pa, pb, la) == 0, "the replayed steps' checkpoint differs");
    free(pa);
    free(pb);
    int64_t sa = 0, sb = 0;
    ck_assert_dat_ok(dat_optim_get_step(a->optim, &sa));
    ck_assert_dat_ok(dat_optim_get_step(b->optim, &sb));
    ck_assert_int_eq(sa, sb);
    double lra = 0, lrb = 0;
    ck_assert_dat_ok(dat_optim_lr(a->optim, &lra));
    ck_assert_dat_ok(dat_optim_lr(b->optim, &lrb));
    ck_assert(lra == lrb);
    uint64_t ta = 0, tb = 0;
    ck_assert_dat_ok(dat_attack_get_step(a->attack, &ta));
    ck_assert_dat_ok(dat_attack_get_step(b->attack, &tb));
    ck_assert_uint_eq(ta, tb);
    ck_assert_msg(loss_sum(a) == loss_sum(b), "loss sums %.9g (op by op), %.9g (replayed)",
                  (double)loss_sum(a), (double)loss_sum(b));
}

START_TEST(test_replays_match_op_by_op)
{
    dat_ctx *ca = make_ctx(DAT_DEVICE_CUDA), *cb = make_ctx(DAT_DEVICE_CUDA);
    side a, b;
    side_init(&a, ca);
    float loss = 0;
    double host_sum = 0;
    for (int k = 0; k < STEPS; ++k) {
        write_batch(&a, k);
        ck_assert_dat_ok(step(&a, &loss));
        ck_assert(isfinite(loss));
        host_sum += loss;
    }
    ck_assert_msg(fabs(loss_sum(&a) - host_sum) <= 1e-5 * host_sum, "loss_sum %.7g, host %.7g",
                  (double)loss_sum(&a), host_sum);
    /* b: the first step op by op, then the rest replayed. */
    warmed_up(&b, cb);
    dat_step_graph *g = record(&b);
    int64_t t = -1;
    ck_assert_dat_ok(dat_optim_get_step(b.optim, &t));
    ck_assert_int_eq(t, 1); /* recording left the host's state alone */
    replay(&b, g, 1, STEPS);
    expect_same_state(&a, &b);
    /* Op by op again after the replays: both sides still agree. */
    write_batch(&a, STEPS);
    write_batch(&b, STEPS);
    ck_assert_dat_ok(step(&a, &loss));
    ck_assert_dat_ok(step(&b, &loss));
    /* ... and a replay after op-by-op steps reads the host's step counters. */
    write_batch(&a, STEPS + 1);
    write_batch(&b, STEPS + 1);
    ck_assert_dat_ok(step(&a, &loss));
    ck_assert_dat_ok(dat_step_graph_launch(g));
    ck_assert_dat_ok(dat_ctx_synchronize(cb));
    expect_same_state(&a, &b);
    dat_step_graph_destroy(g);
    pair_fini(&a, &b);
}
END_TEST

/* s's optimizer replaced by LAMB with Adam's bias correction, its first two
 * segments frozen. */
static void lamb_first_frozen(side *s)
{
    dat_optim_destroy(s->optim);
    dat_optim_options oo;
    dat_optim_options_init(&oo);
    oo.kind = DAT_OPTIM_ADAMW;
    oo.lr = 0.01f;
    oo.weight_decay = 1e-2f;
    oo.lalr = 1;
    ck_assert_dat_ok(dat_optim_create_for_model(&s->optim, s->model, &oo));
    ck_assert_dat_ok(dat_optim_set_lr_scale(s->optim, 0, 2, 0.0f));
}

/* Segments unfrozen after the first step count their own steps in the
 * replays as op by op (the graph's optimizer step reads the step counter on
 * the device, and takes each segment's bias corrections from it). */
START_TEST(test_replays_unfrozen_segments)
{
    dat_ctx *ca = make_ctx(DAT_DEVICE_CUDA), *cb = make_ctx(DAT_DEVICE_CUDA);
    side a, b;
    side_init(&a, ca);
    side_init(&b, cb);
    lamb_first_frozen(&a);
    lamb_first_frozen(&b);
    float loss = 0;
    for (int k = 0; k < STEPS; ++k) {
        if (k == 1)
            ck_assert_dat_ok(dat_optim_set_lr_scale(a.optim, 0, 2, 1.0f));
        write_batch(&a, k);
        ck_assert_dat_ok(step(&a, &loss));
    }
    write_batch(&b, 0);
    ck_assert_dat_ok(step(&b, &loss));
    ck_assert_dat_ok(dat_optim_set_lr_scale(b.optim, 0, 2, 1.0f));
    dat_step_graph *g = record(&b);
    replay(&b, g, 1, STEPS);
    expect_same_state(&a, &b);
    dat_step_graph_destroy(g);
    pair_fini(&a, &b);
}
END_TEST

/* A one-rank NCCL communicator for s, and with overlap its synchronizer. */
static void with_nccl(side *s, int overlap)
{
    dat_comm_id id;
    ck_assert_dat_ok(dat_comm_unique_id(&id));
    ck_assert_dat_ok(dat_comm_create_nccl(&s->comm, s->ctx, 1, 0, &id, NULL));
    if (!overlap)
        return;
    dat_grad_sync_options o;
    dat_grad_sync_options_init(&o);
    o.bucket_elems = 256; /* several buckets, most started during the backward pass */
    ck_assert_dat_ok(dat_grad_sync_create(&s->sync, s->comm, s->model, &o));
    int32_t overlaps = 0;
    ck_assert_dat_ok(dat_grad_sync_overlaps(s->sync, &overlaps));
    ck_assert_int_eq(overlaps, 1);
}

static uint64_t comm_calls(dat_comm *c)
{
    dat_comm_stats st = {.size = sizeof st};
    ck_assert_dat_ok(dat_comm_get_stats(c, &st));
    return st.calls;
}

/* The gradient's all-reduce over NCCL inside the recorded step: after the
 * backward pass, or bucket by bucket during it (_i = 1). */
START_TEST(test_replays_with_nccl_allreduce)
{
    dat_ctx *ca = make_ctx(DAT_DEVICE_CUDA), *cb = make_ctx(DAT_DEVICE_CUDA);
    side a, b;
    side_init(&a, ca);
    with_nccl(&a, _i);
    float loss = 0;
    for (int k = 0; k < 3; ++k) {
        write_batch(&a, k);
        ck_assert_dat_ok(step(&a, &loss));
    }
    side_init(&b, cb);
    with_nccl(&b, _i);
    write_batch(&b, 0);
    ck_assert_dat_ok(step(&b, &loss));
    dat_step_graph *g = record(&b);
    ck_assert_uint_eq(comm_calls(b.comm), comm_calls(a.comm) - 2);
    replay(&b, g, 1, 3);
    expect_same_state(&a, &b);
    ck_assert_uint_eq(comm_calls(b.comm), comm_calls(a.comm));
    dat_step_graph_destroy(g);
    dat_grad_sync_destroy(a.sync);
    dat_grad_sync_destroy(b.sync);
    dat_comm_destroy(a.comm);
    dat_comm_destroy(b.comm);
    pair_fini(&a, &b);
}
END_TEST

START_TEST(test_faults_reported_and_nothing_lost)
{
    dat_ctx *ctx = make_ctx(DAT_DEVICE_CUDA);
    side s;
    warmed_up(&s, ctx);
    dat_step_graph *g = record(&s);
    dat_tensor *params = NULL, *stats = NULL;
    ck_assert_dat_ok(dat_model_params(s.model, &params));
    ck_assert_dat_ok(dat_model_buffers(s.model, &stats));
    size_t n = 0, ns = 0;
    float *before = dat_test_read_floats(params, &n);
    float *stats_before = dat_test_read_floats(stats, &ns);

    /* A NaN pixel: the gradient is NaN, the update is skipped, and the BN
     * running statistics stay as they were. */
    float nan_px = NAN;
    write_batch_with(&s, 1, &nan_px, NULL);
    ck_assert_dat_ok(dat_step_graph_launch(g));
    ck_assert_dat_err(dat_ctx_synchronize(ctx), DAT_ERR_NUMERIC, "NaN");
    float *after = dat_test_read_floats(params, NULL);
    ck_assert_msg(memcmp(before, after, n * sizeof *before) == 0,
                  "a step on a NaN input changed the parameters");
    free(after);
    after = dat_test_read_floats(stats, NULL);
    ck_assert_msg(memcmp(stats_before, after, ns * sizeof *after) == 0,
                  "a step on a NaN input changed the BN running statistics");
    free(after);
    ck_assert_dat_ok(dat_ctx_synchronize(ctx)); /* reported once */

    /* A label outside [0, classes): reported as such, nothing updated. */
    int32_t bad_label = 10;
    write_batch_with(&s, 2, NULL, &bad_label);
    ck_assert_dat_ok(dat_step_graph_launch(g));
    ck_assert_dat_err(dat_ctx_synchronize(ctx), DAT_ERR_INVALID_ARG, "label");
    after = dat_test_read_floats(params, NULL);
    ck_assert_msg(memcmp(before, after, n * sizeof *before) == 0,
                  "a step on a bad label changed the parameters");
    free(after);

    /* A pixel outside the attack's range [0, 1]. */
    float big_px = 2.0f;
    write_batch_with(&s, 3, &big_px, NULL);
    ck_assert_dat_ok(dat_step_graph_launch(g));
    ck_assert_dat_err(dat_ctx_synchronize(ctx), DAT_ERR_INVALID_ARG, "range");

    /* A valid batch updates again. */
    write_batch(&s, 4);
    ck_assert_dat_ok(dat_step_graph_launch(g));
    ck_assert_dat_ok(dat_ctx_synchronize(ctx));
    after = dat_test_read_floats(params, NULL);
    ck_assert_msg(memcmp(before, after, n * sizeof *before) != 0, "a valid step did nothing");
    free(after);
    after = dat_test_read_floats(stats, NULL);
    ck_assert_msg(memcmp(stats_before, after, ns * sizeof *after) != 0,
                  "a valid step left the BN running statistics");
    free(after);
    free(stats_before);
    free(before);
    dat_step_graph_destroy(g);
    side_fini(&s);
    dat_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_refusals)
{
    dat_ctx *ctx = make_ctx(DAT_DEVICE_CUDA);
    side s;
    warmed_up(&s, ctx);
    float loss = 0;
    dat_step_graph *g = NULL;
    /* Reading the loss back cannot be recorded. */
    ck_assert_dat_ok(dat_capture_begin(ctx));
    ck_assert_dat_err(dat_capture_begin(ctx), DAT_ERR_STATE, "already recording");
    ck_assert_dat_err(step(&s, &loss), DAT_ERR_STATE, "loss");
    ck_assert_dat_err(dat_capture_end(ctx, &g), DAT_ERR_STATE, "loss");
    ck_assert_ptr_null(g);
    ck_assert_dat_err(dat_capture_end(ctx, &g), DAT_ERR_STATE, "not recording");
    int64_t t = -1;
    ck_assert_dat_ok(dat_optim_get_step(s.optim, &t));
    ck_assert_int_eq(t, 1);
    /* The context works op by op after a failed recording. */
    ck_assert_dat_ok(step(&s, &loss));
    ck_assert(isfinite(loss));
    /* Freeing device memory would spoil the capture: the buffer is freed when
     * it ends, and the recording fails (an emulation build with ASan sees no
     * leak; CI's ASan build has no CUDA backend). */
    int64_t shape[1] = {1000};
    dat_tensor *doomed = NULL;
    ck_assert_dat_ok(dat_tensor_create(&doomed, ctx, DAT_FLOAT32, 1, shape));
    ck_assert_dat_ok(dat_capture_begin(ctx));
    ck_assert_dat_ok(step(&s, NULL));
    dat_tensor_destroy(doomed);
    ck_assert_dat_err(dat_capture_end(ctx, &g), DAT_ERR_STATE, "freeing device memory");
    ck_assert_ptr_null(g);
    ck_assert_dat_ok(step(&s, &loss));
    ck_assert(isfinite(loss));
    /* So does a context destroyed while recording, which ends its capture: a
     * new context on the thread records again. */
    dat_ctx *other = make_ctx(DAT_DEVICE_CUDA);
    ck_assert_dat_ok(dat_tensor_create(&doomed, other, DAT_FLOAT32, 1, shape));
    ck_assert_dat_ok(dat_capture_begin(other));
    dat_tensor_destroy(doomed);
    dat_ctx_destroy(other);
    other = make_ctx(DAT_DEVICE_CUDA);
    ck_assert_dat_ok(dat_capture_begin(other));
    ck_assert_dat_ok(dat_capture_end(other, &g));
    dat_step_graph_destroy(g);
    g = NULL;
    dat_ctx_destroy(other);
    /* Restarts compare losses on the host. */
    dat_attack_options ao;
    dat_attack_options_init(&ao);
    ao.steps = 1;
    ao.restarts = 2;
    dat_attack *r = NULL;
    ck_assert_dat_ok(dat_attack_create(&r, ctx, &ao));
    ck_assert_dat_ok(dat_attack_perturb(r, s.model, s.x, s.y, s.xa));
    ck_assert_dat_ok(dat_capture_begin(ctx));
    ck_assert_dat_err(dat_attack_perturb(r, s.model, s.x, s.y, s.xa), DAT_ERR_STATE,
                      "restarts");
    ck_assert_dat_err(dat_capture_end(ctx, &g), DAT_ERR_STATE, "restarts");
    uint64_t at = 0;
    ck_assert_dat_ok(dat_attack_get_step(r, &at));
    ck_assert_uint_eq(at, 1); /* as before the recording */
    /* An evaluation reads its counts back. */
    ck_assert_dat_ok(dat_capture_begin(ctx));
    int32_t clean = 0, robust = 0;
    ck_assert_dat_err(dat_eval_robust_accuracy(r, s.model, s.x, s.y, &clean, &robust, NULL),
                      DAT_ERR_STATE, "recorded");
    ck_assert_dat_err(dat_capture_end(ctx, &g), DAT_ERR_STATE, "recorded");
    ck_assert_dat_ok(dat_attack_get_step(r, &at));
    ck_assert_uint_eq(at, 1);
    /* A synchronizer that reduces at the end (a host communicator's) agrees
     * through the host, quantized or not. */
    dat_comm *self = NULL;
    ck_assert_dat_ok(dat_comm_create_self(&self, ctx));
    dat_quantizer *q = NULL;
    ck_assert_dat_ok(dat_quantizer_create(&q, ctx, NULL));
    for (int quantized = 0; quantized < 2; ++quantized) {
        dat_grad_sync_options so;
        dat_grad_sync_options_init(&so);
        so.quantizer = quantized ? q : NULL;
        so.bucket_elems = 4096;
        dat_grad_sync *sync = NULL;
        ck_assert_dat_ok(dat_grad_sync_create(&sync, self, s.model, &so));
        ck_assert_dat_ok(dat_capture_begin(ctx));
        ck_assert_dat_err(dat_grad_sync_begin(sync, 0), DAT_ERR_STATE, "at the end");
        ck_assert_dat_err(dat_capture_end(ctx, &g), DAT_ERR_STATE, "at the end");
        dat_grad_sync_destroy(sync);
    }
    dat_quantizer_destroy(q);
    dat_comm_destroy(self);
    dat_attack_destroy(r);
    side_fini(&s);
    dat_ctx_destroy(ctx);
}
END_TEST

/* A larger batch through the model after the recording reallocates its
 * run-time buffers, which the graph points into: the launch is refused and
 * runs nothing; a new recording runs. */
START_TEST(test_launch_refused_after_growth)
{
    dat_ctx *ctx = make_ctx(DAT_DEVICE_CUDA);
    side s;
    warmed_up(&s, ctx);
    dat_step_graph *g = record(&s);
    write_batch(&s, 1);
    ck_assert_dat_ok(dat_step_graph_launch(g));
    int64_t xs[4] = {4 * BATCH, 3, 8, 8}, zs[2] = {4 * BATCH, 10};
    dat_tensor *x = NULL, *z = NULL, *params = NULL;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&z, ctx, DAT_FLOAT32, 2, zs));
    ck_assert_dat_ok(dat_tensor_fill_uniform(x, 0, 1, 3, 0));
    ck_assert_dat_ok(dat_model_forward(s.model, x, z));
    ck_assert_dat_ok(dat_model_params(s.model, &params));
    size_t n = 0;
    float *before = dat_test_read_floats(params, &n);
    uint64_t step = 0;
    ck_assert_dat_ok(dat_attack_get_step(s.attack, &step));
    ck_assert_dat_err(dat_step_graph_launch(g), DAT_ERR_STATE, "have been reallocated");
    float *after = dat_test_read_floats(params, NULL);
    ck_assert_msg(memcmp(before, after, n * sizeof *before) == 0, "a refused launch ran");
    free(after);
    uint64_t step_after = 0;
    ck_assert_dat_ok(dat_attack_get_step(s.attack, &step_after));
    ck_assert_uint_eq(step_after, step); /* the counters did not move either */
    dat_step_graph_destroy(g);
    g = record(&s);
    ck_assert_dat_ok(dat_step_graph_launch(g));
    ck_assert_dat_ok(dat_ctx_synchronize(ctx));
    after = dat_test_read_floats(params, NULL);
    ck_assert_msg(memcmp(before, after, n * sizeof *before) != 0, "the new recording did nothing");
    free(after);
    free(before);
    dat_tensor_destroy(x);
    dat_tensor_destroy(z);
    dat_step_graph_destroy(g);
    side_fini(&s);
    dat_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_cpu_records_nothing)
{
    dat_ctx *ctx = make_ctx(DAT_DEVICE_CPU);
    ck_assert_dat_err(dat_capture_begin(ctx), DAT_ERR_UNSUPPORTED, "no graphs");
    dat_step_graph *g = NULL;
    ck_assert_dat_err(dat_capture_end(ctx, &g), DAT_ERR_STATE, "not recording");
    dat_ctx_destroy(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("capture");
    TCase *tc = tcase_create("capture");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_cpu_records_nothing);
    if (dat_test_have_gpu()) {
        tcase_add_test(tc, test_replays_match_op_by_op);
        tcase_add_test(tc, test_replays_unfrozen_segments);
        tcase_add_loop_test(tc, test_replays_with_nccl_allreduce, 0, 2);
        tcase_add_test(tc, test_faults_reported_and_nothing_lost);
        tcase_add_test(tc, test_refusals);
        tcase_add_test(tc, test_launch_refused_after_growth);
    }
    suite_add_tcase(s, tc);
    int rc = dat_run_suite(s);
    if (rc == 0 && !dat_test_have_gpu()) {
        printf("no CUDA device: the CPU case ran, the rest skipped\n");
        return DAT_TEST_SKIP;
    }
    return rc;
}
