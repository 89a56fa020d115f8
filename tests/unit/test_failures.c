/* A call that runs out of memory part-way changes nothing it was given
 * (docs/api/mainpage.md); a save whose fsync or close fails says so.
 *
 * Linked with -Wl,--wrap for aligned_alloc, malloc, calloc, fsync and close:
 * the k-th allocation libdat makes during a call (the CPU backend's buffers,
 * its workspace, which grows inside the ops the first time a shape needs it,
 * host scratch) fails, for k = 1, 2, ... until the call gets through. After
 * each failure the model's BN statistics and counters and its gradients are as
 * before the call, and the call made again ends where a run that never failed
 * ends. Under the CUDA emulation (kernels/emu, DAT_TEST_EMULATED_GPU) the same
 * runs on the CUDA backend, whose device memory the emulation takes with
 * aligned_alloc. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_util.h"
#include "model/model.h"

void *__real_aligned_alloc(size_t align, size_t size);
void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);

static long fail_at; /* 0: none */
static long calls;

static int fails(void)
{
    return fail_at && ++calls == fail_at;
}

void *__wrap_aligned_alloc(size_t align, size_t size)
{
    return fails() ? NULL : __real_aligned_alloc(align, size);
}

void *__wrap_malloc(size_t size)
{
    return fails() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t count, size_t size)
{
    return fails() ? NULL : __real_calloc(count, size);
}

/* The k-th fsync or close fails with EIO (0: none). */
int __real_fsync(int fd);
int __real_close(int fd);
static long fail_fsync_at, fail_close_at, fsyncs, closes;

int __wrap_fsync(int fd)
{
    if (fail_fsync_at && ++fsyncs == fail_fsync_at) {
        errno = EIO;
        return -1;
    }
    return __real_fsync(fd);
}

int __wrap_close(int fd)
{
    int r = __real_close(fd); /* the descriptor goes either way, as close(2)'s does */
    if (fail_close_at && ++closes == fail_close_at) {
        errno = EIO;
        return -1;
    }
    return r;
}

enum { N = 8, C = 1, H = 12, CLASSES = 10 };

typedef enum { FORWARD_TRAIN, LOSS_ACCUMULATE, LOSS_TRADES, INPUT_GRAD_TRAIN, ATTACK_TRAIN,
               ROBUST } scenario;
static const char *const names[] = {"train forward", "loss backward, accumulating",
                                    "TRADES loss backward", "train-mode input gradient",
                                    "train-mode attack", "robust accuracy"};

typedef struct world {
    dat_ctx *ctx;
    dat_model *m;
    dat_attack *attack;
    dat_tensor *x, *x2, *y, *out, *logits, *mask;
    int32_t counts[2];
} world;

/* The model's state a failed call must not change (gradients, BN running
 * statistics, BN counters), then the call's outputs (x_adv or the input
 * gradient, logits, counts), which it may. */
typedef struct state {
    float grads[4096], bufs[64];
    int64_t tracked[2];
    float out[N * C * H * H], logits[N * CLASSES];
    int32_t counts[2];
} state;

static dat_model *small_bn_net(dat_ctx *ctx)
{
    dat_model_builder *b;
    ck_assert_dat_ok(dat_model_builder_create(&b, ctx, C, H, H));
    static const struct {
        dat_layer_kind kind;
        const char *name;
        int32_t out, stride;
    } layers[] = {
        {DAT_LAYER_CONV2D, "conv1", 4, 1}, {DAT_LAYER_BATCHNORM, "bn1", 0, 1},
        {DAT_LAYER_RELU, NULL, 0, 1},      {DAT_LAYER_CONV2D, "conv2", 8, 2},
        {DAT_LAYER_BATCHNORM, "bn2", 0, 1}, {DAT_LAYER_RELU, NULL, 0, 1},
        {DAT_LAYER_GLOBAL_AVGPOOL, NULL, 0, 1}, {DAT_LAYER_FLATTEN, NULL, 0, 1},
        {DAT_LAYER_LINEAR, "fc", CLASSES, 1},
    };
    int32_t node = 0;
    for (size_t i = 0; i < sizeof layers / sizeof *layers; ++i) {
        dat_layer_spec s;
        dat_layer_spec_init(&s, layers[i].kind);
        s.name = layers[i].name;
        s.out_features = layers[i].out;
        s.stride = layers[i].stride;
        s.padding = layers[i].kind == DAT_LAYER_CONV2D;
        ck_assert_dat_ok(dat_model_builder_add(b, &s, node, -1, &node));
    }
    dat_model *m;
    ck_assert_dat_ok(dat_model_builder_finish(b, node, 3, &m));
    dat_model_builder_destroy(b);
    return m;
}

static dat_tensor *tensor(dat_ctx *ctx, dat_dtype t, int ndim, int64_t d0, int64_t d1)
{
    int64_t shape[4] = {d0, d1, H, H};
    dat_tensor *out;
    ck_assert_dat_ok(dat_tensor_create(&out, ctx, t, ndim, shape));
    return out;
}

/* A fresh context (its workspace empty) and model, with gradients from one
 * earlier batch in place. */
static void make(world *w, scenario sc, dat_device_kind dev)
{
    memset(w, 0, sizeof *w);
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.device = dev;
    o.deterministic = 1; /* CUDA: the retry's bits are the clean run's */
    o.num_threads = 1;
    o.seed = 7;
    ck_assert_dat_ok(dat_ctx_create(&w->ctx, &o));
    w->m = small_bn_net(w->ctx);
    w->x = tensor(w->ctx, DAT_FLOAT32, 4, N, C);
    w->x2 = tensor(w->ctx, DAT_FLOAT32, 4, N, C);
    w->out = tensor(w->ctx, DAT_FLOAT32, 4, N, C);
    w->y = tensor(w->ctx, DAT_INT32, 1, N, 0);
    w->logits = tensor(w->ctx, DAT_FLOAT32, 2, N, CLASSES);
    w->mask = tensor(w->ctx, DAT_UINT8, 1, N, 0);
    ck_assert_dat_ok(dat_tensor_fill(w->out, 0)); /* outputs a call may not write */
    ck_assert_dat_ok(dat_tensor_fill(w->logits, 0));
    ck_assert_dat_ok(dat_tensor_fill_uniform(w->x, 0.0f, 1.0f, 1, 0));
    ck_assert_dat_ok(dat_tensor_fill_uniform(w->x2, 0.0f, 1.0f, 2, 0));
    int32_t labels[N];
    for (int i = 0; i < N; ++i)
        labels[i] = (i * 3) % CLASSES;
    ck_assert_dat_ok(dat_tensor_write(w->y, labels, sizeof labels));
    ck_assert_dat_ok(dat_model_set_mode(w->m, DAT_MODE_TRAIN));
    /* The earlier batch runs with 1 sample: a different kind of pass, so the
     * call under test still finds its own pass not run. */
    dat_tensor *x1 = tensor(w->ctx, DAT_FLOAT32, 4, 1, C), *y1 = tensor(w->ctx, DAT_INT32, 1, 1, 0);
    ck_assert_dat_ok(dat_tensor_fill_uniform(x1, 0.0f, 1.0f, 3, 0));
    ck_assert_dat_ok(dat_tensor_fill(y1, 4));
    ck_assert_dat_ok(dat_model_loss_backward(w->m, x1, y1, NULL, NULL));
    dat_tensor_destroy(x1);
    dat_tensor_destroy(y1);
    if (sc == ATTACK_TRAIN || sc == ROBUST) {
        dat_attack_options a;
        dat_attack_options_init(&a);
        a.steps = 3;
        a.mode = sc == ATTACK_TRAIN ? DAT_MODE_TRAIN : DAT_MODE_EVAL;
        ck_assert_dat_ok(dat_attack_create(&w->attack, w->ctx, &a));
    }
    w->counts[0] = w->counts[1] = -1;
}

static void drop(world *w)
{
    dat_attack_destroy(w->attack);
    dat_tensor *t[] = {w->x, w->x2, w->out, w->y, w->logits, w->mask};
    for (size_t i = 0; i < sizeof t / sizeof *t; ++i)
        dat_tensor_destroy(t[i]);
    dat_model_destroy(w->m);
    dat_ctx_destroy(w->ctx);
}

static dat_status call(world *w, scenario sc)
{
    dat_loss_options lo;
    dat_loss_options_init(&lo);
    dat_input_grad_options go;
    dat_input_grad_options_init(&go);
    switch (sc) {
    case FORWARD_TRAIN:
        return dat_model_forward(w->m, w->x, w->logits);
    case LOSS_ACCUMULATE:
        lo.accumulate = 1;
        return dat_model_loss_backward(w->m, w->x, w->y, &lo, NULL);
    case LOSS_TRADES:
        lo.x_clean = w->x2;
        lo.kl_weight = 6.0f;
        lo.clean_weight = 1.0f;
        lo.adv_weight = 0.0f;
        return dat_model_loss_backward(w->m, w->x, w->y, &lo, NULL);
    case INPUT_GRAD_TRAIN:
        return dat_model_input_grad(w->m, w->x, w->y, &go, w->out, NULL);
    case ATTACK_TRAIN:
        return dat_attack_perturb(w->attack, w->m, w->x, w->y, w->out);
    case ROBUST:
        return dat_eval_robust_accuracy(w->attack, w->m, w->x, w->y, &w->counts[0],
                                        &w->counts[1], w->mask);
    }
    return DAT_ERR_INVALID_ARG;
}

static void read_state(world *w, state *s)
{
    memset(s, 0, sizeof *s);
    dat_tensor *g, *b;
    ck_assert_dat_ok(dat_model_grads(w->m, &g));
    ck_assert_dat_ok(dat_model_buffers(w->m, &b));
    size_t gb, bb;
    ck_assert_dat_ok(dat_tensor_nbytes(g, &gb));
    ck_assert_dat_ok(dat_tensor_nbytes(b, &bb));
    ck_assert(gb <= sizeof s->grads && bb <= sizeof s->bufs);
    ck_assert_dat_ok(dat_tensor_read(g, s->grads, gb));
    ck_assert_dat_ok(dat_tensor_read(b, s->bufs, bb));
    ck_assert_int_eq(w->m->n_bn, 2);
    memcpy(s->tracked, w->m->num_batches_tracked, sizeof s->tracked);
    ck_assert_dat_ok(dat_tensor_read(w->out, s->out, sizeof s->out));
    ck_assert_dat_ok(dat_tensor_read(w->logits, s->logits, sizeof s->logits));
    memcpy(s->counts, w->counts, sizeof s->counts);
}

static void expect_same(const char *what, long k, const state *a, const state *b, int outputs)
{
    static const struct {
        size_t offset, size;
        const char *name;
    } parts[] = {
        {offsetof(state, grads), sizeof((state *)0)->grads, "gradients"},
        {offsetof(state, bufs), sizeof((state *)0)->bufs, "BN running statistics"},
        {offsetof(state, tracked), sizeof((state *)0)->tracked, "BN counters"},
        {offsetof(state, out), sizeof((state *)0)->out, "x_adv or input gradient"},
        {offsetof(state, logits), sizeof((state *)0)->logits, "logits"},
        {offsetof(state, counts), sizeof((state *)0)->counts, "counts"},
    };
    for (size_t i = 0; i < (outputs ? 6u : 3u); ++i)
        ck_assert_msg(!memcmp((const char *)a + parts[i].offset,
                              (const char *)b + parts[i].offset, parts[i].size),
                      "%s, allocation %ld: %s differ", what, k, parts[i].name);
}

START_TEST(test_failed_calls_change_nothing)
{
    scenario sc = (scenario)(_i % (ROBUST + 1));
    dat_device_kind dev = _i > ROBUST ? DAT_DEVICE_CUDA : DAT_DEVICE_CPU;
    if (dev == DAT_DEVICE_CUDA && !dat_test_emulated_gpu())
        return; /* a real GPU's memory is not the host's aligned_alloc */
    world w;
    state clean, before, after;
    make(&w, sc, dev);
    ck_assert_dat_ok(call(&w, sc));
    read_state(&w, &clean);
    drop(&w);
    long failures = 0, absorbed = 0;
    for (long k = 1;; ++k) {
        make(&w, sc, dev);
        read_state(&w, &before);
        calls = 0;
        fail_at = k;
        dat_status s = call(&w, sc);
        fail_at = 0;
        if (s == DAT_OK && calls < k) { /* it made fewer allocations: all were failed */
            drop(&w);
            break;
        }
        if (s == DAT_OK) {
            /* A failure the call got round (an attack's CUDA graph that could not
             * be made runs op by op) must not show in anything it gives. */
            read_state(&w, &after);
            expect_same("got round", k, &clean, &after, 1);
            ++absorbed;
            drop(&w);
            continue;
        }
        ++failures;
        ck_assert_msg(s == DAT_ERR_OUT_OF_MEMORY, "%s, allocation %ld: %s", names[sc], k,
                      dat_last_error());
        read_state(&w, &after);
        expect_same(names[sc], k, &before, &after, 0);
        ck_assert_msg(w.counts[0] == -1 && w.counts[1] == -1,
                      "%s, allocation %ld: counts written", names[sc], k);
        ck_assert_dat_ok(call(&w, sc));
        read_state(&w, &after);
        /* An attack's failed call uses up its step (dat_attack.h): its retry
         * draws other random starts, and in train mode its BN statistics follow. */
        if (sc != ATTACK_TRAIN)
            expect_same("retried", k, &clean, &after, 1);
        drop(&w);
    }
    printf("%s, %s: %ld allocations failed in turn, %ld of them got round\n", names[sc],
           dev == DAT_DEVICE_CUDA ? "CUDA" : "CPU", failures + absorbed, absorbed);
    ck_assert_msg(failures > 0, "%s: no allocation to fail", names[sc]);
}
END_TEST

/* Saves over an existing file with the k-th fsync or close failing: the
 * file's fsync and close failing leave the old file and say why; the folder's
 * fsync after the rename failing is reported too (the new file is in place). */
START_TEST(test_failed_sync_or_close_is_reported)
{
    world w;
    make(&w, FORWARD_TRAIN, DAT_DEVICE_CPU);
    char path[] = "/tmp/libdat_test_failures_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "old", 3), 3);
    close(fd);
    static const struct {
        long fsync_at, close_at;
        int old_kept;
        const char *says;
    } cases[] = {
        {1, 0, 1, "cannot write: Input/output error"},
        {0, 1, 1, "cannot write: Input/output error"},
        {2, 0, 0, "folder's fsync failed (Input/output error)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i) {
        fsyncs = closes = 0;
        fail_fsync_at = cases[i].fsync_at;
        fail_close_at = cases[i].close_at;
        errno = 0; /* no EIO left over from the case before */
        dat_status s = dat_model_save(w.m, path);
        fail_fsync_at = fail_close_at = 0;
        ck_assert_msg(s == DAT_ERR_IO, "case %zu: status %d", i, (int)s);
        ck_assert_msg(strstr(dat_last_error(), cases[i].says), "case %zu: %s", i,
                      dat_last_error());
        char head[4] = {0};
        FILE *f = fopen(path, "rb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fread(head, 1, 3, f), 3);
        fclose(f);
        ck_assert_msg((strcmp(head, "old") == 0) == cases[i].old_kept, "case %zu: file '%s'", i,
                      head);
    }
    unlink(path);
    drop(&w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("failures");
    TCase *tc = tcase_create("out of memory part-way");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_failed_calls_change_nothing, 0, 2 * (ROBUST + 1));
    suite_add_tcase(s, tc);
    TCase *io = tcase_create("I/O");
    tcase_add_test(io, test_failed_sync_or_close_is_reported);
    suite_add_tcase(s, io);
    return dat_run_suite(s);
}
