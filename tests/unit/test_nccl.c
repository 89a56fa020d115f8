/*
 * The NCCL communicator on one rank: id through a file, collectives on CUDA
 * and CPU tensors, the quantized all-reduce against the self communicator
 * (a CUDA context's quantizer must give the CPU one's bits; where the backend
 * runs quantizers, nothing touches the host),
 * statistics, abort; a gradient synchronizer on the communicator's stream
 * (exact, quantized one- and two-sided), op by op and recorded in a step
 * graph.
 * Exits 77 (skipped) without CUDA or a GPU.
 */
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "check_util.h"

static dat_ctx *gpu, *cpu;

/* Quantized gradients of two backward passes (deterministic convolutions, so
 * the same gradient): a last-bit difference elsewhere could flip a few
 * stochastic roundings, by a level each; the emulation gives 0, and another
 * step's draws 0.07 - 0.12 (measured). */
#define QUANT_TOL 1e-3

static dat_tensor *vec(dat_ctx *c, int64_t n)
{
    dat_tensor *t = NULL;
    ck_assert_dat_ok(dat_tensor_create(&t, c, DAT_FLOAT32, 1, &n));
    ck_assert_dat_ok(dat_tensor_fill_normal(t, 0.0f, 1.0f, 9, 0));
    return t;
}

START_TEST(test_one_rank)
{
    dat_comm_id id, back;
    ck_assert_dat_ok(dat_comm_unique_id(&id));
    char path[] = "/tmp/libdat-nccl-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_dat_ok(dat_comm_unique_id_write(&id, path));
    ck_assert_dat_ok(dat_comm_unique_id_read(&back, path, 5.0));
    unlink(path);
    ck_assert_mem_eq(&id, &back, sizeof id);

    dat_comm_options o;
    dat_comm_options_init(&o);
    o.timeout_s = 30;
    dat_comm *nc = NULL, *self = NULL;
    ck_assert_dat_ok(dat_comm_create_nccl(&nc, gpu, 1, 0, &back, &o));
    ck_assert_dat_ok(dat_comm_create_self(&self, cpu));

    const int64_t n = 100001;
    dat_tensor *g = vec(gpu, n), *h = vec(cpu, n);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    ck_assert_dat_ok(dat_tensor_read(g, a, n * sizeof *a));
    ck_assert_dat_ok(dat_comm_allreduce(nc, g, DAT_REDUCE_SUM));
    ck_assert_dat_ok(dat_comm_allreduce(nc, g, DAT_REDUCE_MEAN));
    ck_assert_dat_ok(dat_comm_broadcast(nc, g, 0));
    ck_assert_dat_ok(dat_tensor_read(g, b, n * sizeof *b));
    ck_assert_mem_eq(a, b, n * sizeof *a);
    ck_assert_dat_ok(dat_comm_allreduce(nc, h, DAT_REDUCE_SUM)); /* a CPU tensor, staged */

    dat_quantizer *q1 = NULL, *q2 = NULL;
    ck_assert_dat_ok(dat_quantizer_create(&q1, gpu, NULL));
    ck_assert_dat_ok(dat_quantizer_create(&q2, cpu, NULL));
    for (int mode = 0; mode < 2; ++mode) {
        ck_assert_dat_ok(dat_tensor_write(g, a, n * sizeof *a));
        ck_assert_dat_ok(dat_tensor_write(h, a, n * sizeof *a));
        ck_assert_dat_ok(dat_comm_allreduce_quantized(nc, g, q1, (dat_quant_mode)mode, 4));
        ck_assert_dat_ok(dat_comm_allreduce_quantized(self, h, q2, (dat_quant_mode)mode, 4));
        ck_assert_dat_ok(dat_tensor_read(g, b, n * sizeof *b));
        void *hp = NULL;
        ck_assert_dat_ok(dat_tensor_host_data(h, &hp));
        ck_assert_msg(memcmp(b, hp, n * sizeof *b) == 0,
                      "mode %d: NCCL and self quantized results differ", mode);
    }
    dat_comm_stats st = {.size = sizeof st};
    ck_assert_dat_ok(dat_comm_get_stats(nc, &st));
    ck_assert_uint_eq(st.calls, 6);
    ck_assert_uint_eq(st.bytes_sent, 0);
    ck_assert_dat_ok(dat_comm_abort(nc));
    ck_assert_dat_err(dat_comm_allreduce(nc, g, DAT_REDUCE_SUM), DAT_ERR_STATE, "aborted");
    dat_quantizer_destroy(q1);
    dat_quantizer_destroy(q2);
    dat_tensor_destroy(g);
    dat_tensor_destroy(h);
    free(a);
    free(b);
    dat_comm_destroy(nc);
    dat_comm_destroy(self);
}
END_TEST

/* A gradient synchronizer over one-rank NCCL on a CUDA model: it overlaps (the
 * communicator's stream), and gives dat_comm_allreduce_grads' bits; with a
 * quantizer it reduces at its end, with the same bits too. */
static dat_comm *one_rank_nccl(void)
{
    dat_comm_id id;
    ck_assert_dat_ok(dat_comm_unique_id(&id));
    dat_comm *nc = NULL;
    ck_assert_dat_ok(dat_comm_create_nccl(&nc, gpu, 1, 0, &id, NULL));
    return nc;
}

/* Two models alike (a reduced by dat_comm_allreduce_grads, b by a
 * synchronizer), a batch of 8 for them, and host room for their gradients. */
typedef struct twins {
    dat_model *a, *b;
    dat_tensor *x, *y, *ga, *gb;
    int64_t np;
    float *ha, *hb;
} twins;

static void twins_init(twins *t, const char *preset, int64_t channels, int64_t side, int seed)
{
    dat_model_options mo;
    dat_model_options_init(&mo);
    mo.init_seed = (uint64_t)seed;
    ck_assert_dat_ok(dat_model_create_preset(&t->a, gpu, preset, &mo));
    ck_assert_dat_ok(dat_model_create_preset(&t->b, gpu, preset, &mo));
    int64_t xs[4] = {8, channels, side, side}, ys[1] = {8};
    ck_assert_dat_ok(dat_tensor_create(&t->x, gpu, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&t->y, gpu, DAT_INT32, 1, ys));
    ck_assert_dat_ok(dat_tensor_fill_uniform(t->x, 0, 1, 2, 0));
    ck_assert_dat_ok(dat_tensor_fill(t->y, 7));
    dat_model_grads(t->a, &t->ga);
    dat_model_grads(t->b, &t->gb);
    dat_tensor_numel(t->ga, &t->np);
    t->ha = malloc((size_t)t->np * 4);
    t->hb = malloc((size_t)t->np * 4);
}

/* The relative difference of the two models' gradients. */
static double twins_err(twins *t)
{
    ck_assert_dat_ok(dat_tensor_read(t->ga, t->ha, (size_t)t->np * 4));
    ck_assert_dat_ok(dat_tensor_read(t->gb, t->hb, (size_t)t->np * 4));
    return dat_test_rel_err(t->ha, t->hb, (size_t)t->np);
}

static void twins_fini(twins *t)
{
    free(t->ha);
    free(t->hb);
    dat_tensor_destroy(t->x);
    dat_tensor_destroy(t->y);
    dat_model_destroy(t->a);
    dat_model_destroy(t->b);
}

static dat_grad_sync *sync_of(dat_comm *nc, dat_model *m, dat_quantizer *q, dat_quant_mode mode,
                              int64_t bucket)
{
    dat_grad_sync_options so;
    dat_grad_sync_options_init(&so);
    so.bucket_elems = bucket;
    so.quantizer = q;
    so.mode = mode;
    dat_grad_sync *sync = NULL;
    ck_assert_dat_ok(dat_grad_sync_create(&sync, nc, m, &so));
    return sync;
}

/* The loss backward inside the synchronizer's bracket. */
static dat_status sync_step(dat_grad_sync *sync, dat_model *m, dat_tensor *x, dat_tensor *y,
                            uint64_t step)
{
    dat_status s = dat_grad_sync_begin(sync, step);
    if (s == DAT_OK)
        s = dat_model_loss_backward(m, x, y, NULL, NULL);
    return s == DAT_OK ? dat_grad_sync_end(sync) : s;
}

START_TEST(test_grad_sync_nccl)
{
    dat_comm *nc = one_rank_nccl();
    twins t;
    twins_init(&t, "preact_resnet18", 3, 32, 4);
    /* exact, one- and two-sided, all on the stream */
    for (int quantized = 0; quantized < 3; ++quantized) {
        dat_quant_mode mode = quantized == 2 ? DAT_QUANT_TWO_SIDED : DAT_QUANT_ONE_SIDED;
        dat_quantizer *qa = NULL, *qb = NULL;
        if (quantized) {
            ck_assert_dat_ok(dat_quantizer_create(&qa, gpu, NULL));
            ck_assert_dat_ok(dat_quantizer_create(&qb, gpu, NULL));
        }
        dat_grad_sync *sync = sync_of(nc, t.b, qb, mode, 512 * 1000);
        int32_t overlaps = -1;
        ck_assert_dat_ok(dat_grad_sync_overlaps(sync, &overlaps));
        ck_assert_int_eq(overlaps, 1);
        ck_assert_dat_ok(dat_model_loss_backward(t.a, t.x, t.y, NULL, NULL));
        ck_assert_dat_ok(dat_comm_allreduce_grads(nc, t.a, qa, mode, 1));
        ck_assert_dat_ok(sync_step(sync, t.b, t.x, t.y, 1));
        /* the all-reduce of one rank must not change the gradient */
        double e = twins_err(&t);
        ck_assert_msg(e < (quantized ? QUANT_TOL : 1e-5), "quantized %d: gradients differ by %g",
                      quantized, e);
        dat_grad_sync_destroy(sync);
        dat_quantizer_destroy(qa);
        dat_quantizer_destroy(qb);
    }
    twins_fini(&t);
    dat_comm_destroy(nc);
}
END_TEST

/* A quantized synchronizer (error feedback) recorded in a step graph: each
 * replay gives dat_comm_allreduce_grads' gradient of its step (the step
 * advancing on the device); a NaN gradient makes the mean NaN and
 * dat_ctx_synchronize report the quantized all-reduce. */
START_TEST(test_grad_sync_recorded)
{
    dat_comm *nc = one_rank_nccl();
    twins t;
    twins_init(&t, "cnn_small", 1, 28, 5);
    int64_t np = t.np;
    dat_tensor *x = t.x, *y = t.y, *pb;
    for (int two = 0; two < 2; ++two) {
        dat_quant_mode mode = two ? DAT_QUANT_TWO_SIDED : DAT_QUANT_ONE_SIDED;
        dat_quantizer_options qo;
        dat_quantizer_options_init(&qo);
        qo.error_feedback = 1;
        dat_quantizer *qa = NULL, *qb = NULL;
        ck_assert_dat_ok(dat_quantizer_create(&qa, gpu, &qo));
        ck_assert_dat_ok(dat_quantizer_create(&qb, gpu, &qo));
        dat_grad_sync *sync = sync_of(nc, t.b, qb, mode, 512 * 8);
        dat_step_graph *g = NULL;
        for (uint64_t k = 0; k < 4; ++k) {
            ck_assert_dat_ok(dat_tensor_fill_uniform(x, 0, 1, k, 0));
            ck_assert_dat_ok(dat_model_loss_backward(t.a, x, y, NULL, NULL));
            ck_assert_dat_ok(dat_comm_allreduce_grads(nc, t.a, qa, mode, k));
            if (k == 0) { /* op by op, then recorded for step 1 */
                ck_assert_dat_ok(sync_step(sync, t.b, x, y, 0));
                ck_assert_dat_ok(dat_capture_begin(gpu));
                ck_assert_dat_ok(sync_step(sync, t.b, x, y, 1));
                ck_assert_dat_ok(dat_capture_end(gpu, &g));
            } else {
                ck_assert_dat_ok(dat_step_graph_launch(g));
                ck_assert_dat_ok(dat_ctx_synchronize(gpu));
            }
            double e = twins_err(&t);
            ck_assert_msg(e < QUANT_TOL, "mode %d, step %llu: gradients differ by %g", (int)mode,
                          (unsigned long long)k, e);
        }
        /* A NaN weight: the gradient is NaN, the step's mean too. */
        dat_model_params(t.b, &pb);
        float *p = malloc((size_t)np * 4);
        ck_assert_dat_ok(dat_tensor_read(pb, p, (size_t)np * 4));
        float keep = p[np - 1];
        p[np - 1] = NAN;
        ck_assert_dat_ok(dat_tensor_write(pb, p, (size_t)np * 4));
        ck_assert_dat_ok(dat_step_graph_launch(g));
        ck_assert_dat_err(dat_ctx_synchronize(gpu), DAT_ERR_NUMERIC,
                          "the quantized all-reduce met NaN");
        ck_assert_dat_ok(dat_tensor_read(t.gb, t.hb, (size_t)np * 4));
        ck_assert_msg(isnan(t.hb[0]) && isnan(t.hb[np - 1]), "mode %d: the failed mean is not NaN",
                      (int)mode);
        p[np - 1] = keep;
        ck_assert_dat_ok(dat_tensor_write(pb, p, (size_t)np * 4));
        free(p);
        dat_step_graph_destroy(g);
        dat_grad_sync_destroy(sync);
        dat_quantizer_destroy(qa);
        dat_quantizer_destroy(qb);
    }
    twins_fini(&t);
    dat_comm_destroy(nc);
}
END_TEST

int main(void)
{
    if (!dat_test_have_gpu()) {
        printf("no CUDA build or device: skipped\n");
        return DAT_TEST_SKIP;
    }
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.device = DAT_DEVICE_CUDA;
    o.deterministic = 1; /* two backward passes of one batch give the same gradient */
    if (dat_ctx_create(&gpu, &o) != DAT_OK) {
        printf("cannot create a CUDA context (%s): skipped\n", dat_last_error());
        return DAT_TEST_SKIP;
    }
    /* No ck_assert here: Check reports only from inside a running test. */
    if (dat_ctx_create(&cpu, NULL) != DAT_OK) {
        fprintf(stderr, "cannot create a CPU context: %s\n", dat_last_error());
        dat_ctx_destroy(gpu);
        return 1;
    }
    Suite *s = suite_create("nccl");
    TCase *tc = tcase_create("nccl");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_one_rank);
    tcase_add_test(tc, test_grad_sync_nccl);
    tcase_add_test(tc, test_grad_sync_recorded);
    suite_add_tcase(s, tc);
    int rc = dat_run_suite(s);
    dat_ctx_destroy(cpu);
    dat_ctx_destroy(gpu);
    return rc;
}
