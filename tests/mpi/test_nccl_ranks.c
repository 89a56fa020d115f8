/*
 * The NCCL communicator on M ranks (mpirun -np 2 and -np 3), one process and
 * one GPU per rank, against the MPI communicator on the same CUDA context,
 * which test_mpi_comm checks against serial sums and simulations:
 *  - all-reduce (sum, mean), broadcast, all-gather; the statistics;
 *  - the one- and two-sided quantized all-reduce (codes moved by NCCL's
 *    all-gather and all-to-all on the device): the MPI path's bits;
 *  - a mismatched size or a NaN on one rank: every rank gets an error naming
 *    it, and the communicator still works;
 *  - dat_grad_sync over NCCL (buckets on the communicator's stream during the
 *    backward pass, exact or quantized one- and two-sided) against
 *    dat_comm_allreduce_grads over MPI, and a NaN in one rank's gradient
 *    reported by every rank;
 *  - a recorded step (dat_capture.h) whose all-reduce (exact, quantized
 *    one- and two-sided) runs during the backward pass, replayed, against the
 *    same steps op by op; a NaN on one rank in a replay skips the update on
 *    every rank, each reporting it.
 * With the CUDA emulation (kernels/emu, DAT_TEST_EMULATED_GPU=1) every rank
 * is a process of its own on the CPU and NCCL adds in rank order, as the MPI
 * communicator does, so the exact paths are compared bit for bit; on GPUs,
 * NCCL's order of addition differs and they are compared to 1e-6.
 * Exits 77 (skipped) on every rank without a GPU for each rank.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "libdat/dat.h"
#include "mpi_check.h"

static dat_ctx *ctx;
static dat_comm *nccl, *mpi;
static int exact; /* NCCL adds in rank order (the emulation) */

/* Input element i of rank j: the same on every rank, so each can check all. */
static float input(int j, size_t i, uint64_t step)
{
    uint32_t h = (uint32_t)(i * 2654435761u) ^ (uint32_t)(j * 40503 + step * 977);
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return ((float)(h >> 8) / 16777216.0f - 0.5f) * (float)(1 + j) * (i % 11 == 0 ? 10.0f : 1.0f);
}

static dat_tensor *tensor(dat_dtype dt, int64_t n)
{
    dat_tensor *t = NULL;
    EXPECT_OK(dat_tensor_create(&t, ctx, dt, 1, &n));
    return t;
}

/* A float tensor holding rank j's inputs of `step`. */
static dat_tensor *inputs(int j, size_t n, uint64_t step)
{
    dat_tensor *t = tensor(DAT_FLOAT32, (int64_t)n);
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; ++i)
        v[i] = input(j, i, step);
    EXPECT_OK(dat_tensor_write(t, v, n * sizeof *v));
    free(v);
    return t;
}

static float *host(const dat_tensor *t)
{
    size_t bytes = 0;
    dat_tensor_nbytes(t, &bytes);
    float *v = malloc(bytes ? bytes : 1);
    EXPECT_OK(dat_tensor_read(t, v, bytes));
    return v;
}

/* a and b: the same bits (always, or where NCCL adds in rank order), else
 * within 1e-6 relative in norm. */
static void expect_same(const char *what, const dat_tensor *a, const dat_tensor *b, int bitwise)
{
    int64_t n = 0;
    dat_tensor_numel(a, &n);
    float *x = host(a), *y = host(b);
    if (bitwise || exact) {
        int64_t bad = 0, first = 0;
        for (int64_t i = 0; i < n; ++i)
            if (memcmp(&x[i], &y[i], 4) != 0 && bad++ == 0)
                first = i;
        EXPECT(bad == 0, "%s: %lld of %lld elements differ, the first at %lld: %.9g vs %.9g",
               what, (long long)bad, (long long)n, (long long)first, (double)x[first],
               (double)y[first]);
    } else {
        double num = 0, den = 0;
        for (int64_t i = 0; i < n; ++i) {
            num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
            den += (double)y[i] * y[i];
        }
        EXPECT(num <= 1e-12 * den, "%s: relative error %g", what, sqrt(num / (den + 1e-300)));
    }
    free(x);
    free(y);
}

static dat_comm_stats stats(dat_comm *c)
{
    dat_comm_stats s = {.size = sizeof s};
    EXPECT_OK(dat_comm_get_stats(c, &s));
    return s;
}

/* The same call booked the same bytes on both communicators. */
static void expect_same_bytes(const char *what, dat_comm_stats n0, dat_comm_stats m0)
{
    dat_comm_stats n1 = stats(nccl), m1 = stats(mpi);
    EXPECT(n1.calls - n0.calls == 1 &&
               n1.bytes_sent - n0.bytes_sent == m1.bytes_sent - m0.bytes_sent &&
               n1.bytes_received - n0.bytes_received == m1.bytes_received - m0.bytes_received,
           "%s: NCCL booked %llu calls, %llu / %llu bytes; MPI %llu / %llu", what,
           (unsigned long long)(n1.calls - n0.calls),
           (unsigned long long)(n1.bytes_sent - n0.bytes_sent),
           (unsigned long long)(n1.bytes_received - n0.bytes_received),
           (unsigned long long)(m1.bytes_sent - m0.bytes_sent),
           (unsigned long long)(m1.bytes_received - m0.bytes_received));
}

static void test_allreduce(size_t n)
{
    for (int op = 0; op < 2; ++op) {
        dat_tensor *a = inputs(g_rank, n, 0), *b = inputs(g_rank, n, 0);
        dat_comm_stats n0 = stats(nccl), m0 = stats(mpi);
        EXPECT_OK(dat_comm_allreduce(nccl, a, (dat_reduction)op));
        EXPECT_OK(dat_comm_allreduce(mpi, b, (dat_reduction)op));
        char what[64];
        snprintf(what, sizeof what, "all-reduce op %d of %zu", op, n);
        expect_same(what, a, b, 0);
        expect_same_bytes(what, n0, m0);
        dat_tensor_destroy(a);
        dat_tensor_destroy(b);
    }
}

static void test_broadcast_allgather(void)
{
    const size_t n = 1001;
    int root = g_size - 1;
    dat_tensor *t = inputs(g_rank, n, 3), *want = inputs(root, n, 3);
    EXPECT_OK(dat_comm_broadcast(nccl, t, root));
    expect_same("broadcast", t, want, 1);
    dat_tensor *in = inputs(g_rank, 777, 1), *out = tensor(DAT_FLOAT32, 777 * (int64_t)g_size);
    dat_tensor *ref = tensor(DAT_FLOAT32, 777 * (int64_t)g_size);
    dat_comm_stats n0 = stats(nccl), m0 = stats(mpi);
    EXPECT_OK(dat_comm_allgather(nccl, in, out));
    EXPECT_OK(dat_comm_allgather(mpi, in, ref));
    expect_same("all-gather", out, ref, 1);
    expect_same_bytes("all-gather", n0, m0);
    /* Tensors of another CUDA context go through the host, in and out. */
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.device = DAT_DEVICE_CUDA;
    EXPECT_OK(dat_ctx_device(ctx, NULL, &co.device_ordinal));
    dat_ctx *other = NULL;
    EXPECT_OK(dat_ctx_create(&other, &co));
    if (other) {
        int64_t n_in = 777, n_out = 777 * (int64_t)g_size;
        dat_tensor *in2 = NULL, *out2 = NULL;
        EXPECT_OK(dat_tensor_create(&in2, other, DAT_FLOAT32, 1, &n_in));
        EXPECT_OK(dat_tensor_create(&out2, other, DAT_FLOAT32, 1, &n_out));
        float *v = host(in);
        EXPECT_OK(dat_tensor_write(in2, v, 777 * sizeof *v));
        free(v);
        EXPECT_OK(dat_comm_allgather(nccl, in2, out2));
        expect_same("all-gather of another context's tensors", out2, ref, 1);
        dat_tensor_destroy(in2);
        dat_tensor_destroy(out2);
        dat_ctx_destroy(other);
    }
    dat_tensor_destroy(t);
    dat_tensor_destroy(want);
    dat_tensor_destroy(in);
    dat_tensor_destroy(out);
    dat_tensor_destroy(ref);
}

static dat_quantizer *quantizer(int bits, int ef)
{
    dat_quantizer_options o;
    dat_quantizer_options_init(&o);
    o.bits = bits;
    o.error_feedback = ef;
    o.seed = 31 + (uint64_t)g_rank;
    o.norm = bits == 4 ? DAT_QUANT_NORM_MAX : DAT_QUANT_NORM_L2;
    dat_quantizer *q = NULL;
    EXPECT_OK(dat_quantizer_create(&q, ctx, &o));
    return q;
}

/* Three steps (the residuals carry over) of each communicator's own quantizer. */
static void test_quantized(dat_quant_mode mode, int bits, int ef, size_t n)
{
    dat_quantizer *qn = quantizer(bits, ef), *qm = quantizer(bits, ef);
    for (uint64_t step = 5; step < 8; ++step) {
        dat_tensor *a = inputs(g_rank, n, step), *b = inputs(g_rank, n, step);
        dat_comm_stats n0 = stats(nccl), m0 = stats(mpi);
        EXPECT_OK(dat_comm_allreduce_quantized(nccl, a, qn, mode, step));
        EXPECT_OK(dat_comm_allreduce_quantized(mpi, b, qm, mode, step));
        char what[96];
        snprintf(what, sizeof what, "quantized mode %d bits %d ef %d n %zu step %llu", mode,
                 bits, ef, n, (unsigned long long)step);
        expect_same(what, a, b, 1);
        expect_same_bytes(what, n0, m0);
        dat_tensor_destroy(a);
        dat_tensor_destroy(b);
    }
    dat_quantizer_destroy(qn);
    dat_quantizer_destroy(qm);
}

static void test_mismatch_and_failure(void)
{
    dat_tensor *t = tensor(DAT_FLOAT32, g_rank == 1 ? 101 : 100);
    EXPECT_ERR(dat_comm_allreduce(nccl, t, DAT_REDUCE_SUM), DAT_ERR_COMM,
               "disagree on the element count: rank 0 has 100, rank 1 has 101");
    dat_tensor_destroy(t);
    test_allreduce(10);
    dat_quantizer *q = quantizer(8, 0);
    t = tensor(DAT_FLOAT32, 600);
    EXPECT_OK(dat_tensor_fill(t, 0.5));
    if (g_rank == g_size - 1) {
        float *v = host(t);
        v[555] = NAN;
        EXPECT_OK(dat_tensor_write(t, v, 600 * sizeof *v));
        free(v);
    }
    for (int mode = 0; mode < 2; ++mode)
        EXPECT_LAST_RANK_FAILS(dat_comm_allreduce_quantized(nccl, t, q, (dat_quant_mode)mode, 1),
                               DAT_ERR_NUMERIC, "element 555");
    dat_quantizer_destroy(q);
    dat_tensor_destroy(t);
    test_allreduce(10);
}

/* A cnn_small model of this rank (every rank starts from the same weights). */
static dat_model *model(void)
{
    dat_model_options mo;
    dat_model_options_init(&mo);
    mo.init_seed = 300;
    dat_model *m = NULL;
    EXPECT_OK(dat_model_create_preset(&m, ctx, "cnn_small", &mo));
    return m;
}

/* Rank g_rank's batch of `step`. */
static void batch(dat_tensor *x, dat_tensor *y, uint64_t step)
{
    EXPECT_OK(dat_tensor_fill_uniform(x, 0, 1, 10 * step + (uint64_t)g_rank, 0));
    EXPECT_OK(dat_tensor_fill(y, (g_rank + (int)step) % 10));
}

/* Model a reduced over MPI after its backward pass, model b by a synchronizer
 * over NCCL, on the stream during the pass. */
static void test_grad_sync_case(int bits, dat_quant_mode mode)
{
    dat_model *a = model(), *b = model();
    dat_quantizer *qa = bits ? quantizer(bits, 1) : NULL, *qb = bits ? quantizer(bits, 1) : NULL;
    dat_grad_sync_options so;
    dat_grad_sync_options_init(&so);
    so.bucket_elems = 512 * 37; /* 25 buckets, the last one short */
    so.quantizer = qb;
    so.mode = mode;
    dat_grad_sync *sync = NULL;
    EXPECT_OK(dat_grad_sync_create(&sync, nccl, b, &so));
    int32_t overlaps = -1;
    EXPECT_OK(dat_grad_sync_overlaps(sync, &overlaps));
    EXPECT(overlaps == 1, "overlaps = %d with %d bits, mode %d", overlaps, bits, (int)mode);
    int64_t xs[4] = {4, 1, 28, 28}, ys[1] = {4};
    dat_tensor *x, *y, *ga, *gb;
    EXPECT_OK(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    EXPECT_OK(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    dat_model_grads(a, &ga);
    dat_model_grads(b, &gb);
    for (uint64_t step = 0; step < 2; ++step) { /* the second step meets the residual */
        batch(x, y, step);
        EXPECT_OK(dat_model_loss_backward(a, x, y, NULL, NULL));
        dat_comm_stats n0 = stats(nccl), m0 = stats(mpi);
        EXPECT_OK(dat_comm_allreduce_grads(mpi, a, qa, mode, step));
        EXPECT_OK(dat_grad_sync_begin(sync, step));
        EXPECT_OK(dat_model_loss_backward(b, x, y, NULL, NULL));
        EXPECT_OK(dat_grad_sync_end(sync));
        char what[96];
        snprintf(what, sizeof what, "grad sync bits %d mode %d step %llu", bits, (int)mode,
                 (unsigned long long)step);
        expect_same(what, gb, ga, bits != 0);
        if (mode == DAT_QUANT_ONE_SIDED && bits) /* else each bucket is sharded on its own */
            expect_same_bytes(what, n0, m0);
    }
    dat_grad_sync_destroy(sync);
    dat_quantizer_destroy(qa);
    dat_quantizer_destroy(qb);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_model_destroy(a);
    dat_model_destroy(b);
}

/* On the last rank, the model's last parameter := v; returns what it was. */
static float set_last_param(dat_model *m, float v)
{
    dat_tensor *p;
    dat_model_params(m, &p);
    size_t bytes = 0;
    dat_tensor_nbytes(p, &bytes);
    float *h = host(p), old = h[bytes / sizeof *h - 1];
    if (g_rank == g_size - 1) {
        h[bytes / sizeof *h - 1] = v;
        EXPECT_OK(dat_tensor_write(p, h, bytes));
    }
    free(h);
    return old;
}

/* A NaN parameter on the last rank (the last one, behind every ReLU) makes
 * its gradient NaN: that rank's
 * synchronizer reports the element, every other rank the failed rank, and
 * the communicator still works. */
static void test_grad_sync_nan(int bits)
{
    dat_model *m = model();
    dat_quantizer *q = bits ? quantizer(bits, 1) : NULL;
    dat_grad_sync_options so;
    dat_grad_sync_options_init(&so);
    so.bucket_elems = 512 * 37;
    so.quantizer = q;
    dat_grad_sync *sync = NULL;
    EXPECT_OK(dat_grad_sync_create(&sync, nccl, m, &so));
    int64_t xs[4] = {4, 1, 28, 28}, ys[1] = {4};
    dat_tensor *x, *y;
    EXPECT_OK(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    EXPECT_OK(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    batch(x, y, 0);
    set_last_param(m, NAN);
    EXPECT_OK(dat_grad_sync_begin(sync, 0));
    if (g_rank == g_size - 1) /* the gradient is computed, and reported at the end */
        EXPECT_ERR(dat_model_loss_backward(m, x, y, NULL, NULL), DAT_ERR_NUMERIC, "the loss");
    else
        EXPECT_OK(dat_model_loss_backward(m, x, y, NULL, NULL));
    EXPECT_LAST_RANK_FAILS(dat_grad_sync_end(sync), DAT_ERR_NUMERIC, "is NaN or Inf");
    dat_grad_sync_destroy(sync);
    dat_quantizer_destroy(q);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_model_destroy(m);
    test_allreduce(10);
}

/* One side of the recorded-step cases: a model, its optimizer, its
 * quantizer (none for bits 0) and its synchronizer over its own NCCL
 * communicator. */
typedef struct side {
    dat_model *model;
    dat_optim *optim;
    dat_quantizer *q;
    dat_comm *comm;
    dat_grad_sync *sync;
} side;

static void side_init(side *s, int bits, dat_quant_mode mode)
{
    s->model = model();
    dat_optim_options oo;
    dat_optim_options_init(&oo);
    oo.lr = 0.05f;
    oo.lalr = 1;
    EXPECT_OK(dat_optim_create_for_model(&s->optim, s->model, &oo));
    EXPECT_OK(dat_comm_create_nccl_mpi(&s->comm, ctx, MPI_COMM_WORLD, NULL));
    s->q = bits ? quantizer(bits, 1) : NULL;
    dat_grad_sync_options so;
    dat_grad_sync_options_init(&so);
    so.bucket_elems = 4096;
    so.quantizer = s->q;
    so.mode = mode;
    EXPECT_OK(dat_grad_sync_create(&s->sync, s->comm, s->model, &so));
}

static void side_fini(side *s)
{
    dat_grad_sync_destroy(s->sync);
    dat_comm_destroy(s->comm);
    dat_quantizer_destroy(s->q);
    dat_optim_destroy(s->optim);
    dat_model_destroy(s->model);
}

static dat_status train_step(side *s, dat_tensor *x, dat_tensor *y, uint64_t step)
{
    dat_status st = dat_grad_sync_begin(s->sync, step);
    if (st == DAT_OK)
        st = dat_model_loss_backward(s->model, x, y, NULL, NULL);
    if (st == DAT_OK)
        st = dat_grad_sync_end(s->sync);
    return st == DAT_OK ? dat_optim_step_model(s->optim, s->model) : st;
}

/* Side s's step 0 op by op (it sizes the scratch), then step 1 recorded. */
static dat_step_graph *record(side *s, dat_tensor *x, dat_tensor *y)
{
    batch(x, y, 0);
    EXPECT_OK(train_step(s, x, y, 0));
    dat_step_graph *g = NULL;
    EXPECT_OK(dat_capture_begin(ctx));
    EXPECT_OK(train_step(s, x, y, 1));
    EXPECT_OK(dat_capture_end(ctx, &g));
    return g;
}

/* Steps 0..4 op by op on side a; on side b step 0 op by op, then recorded
 * and replayed for steps 1 and 2, step 3 op by op, step 4 replayed (the
 * quantizer's step advancing on the device, after the op-by-op one): the
 * parameters and the statistics must agree. */
static void test_recorded_step(int bits, dat_quant_mode mode)
{
    side a, b;
    side_init(&a, bits, mode);
    side_init(&b, bits, mode);
    int64_t xs[4] = {4, 1, 28, 28}, ys[1] = {4};
    dat_tensor *x, *y, *pa, *pb;
    EXPECT_OK(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    EXPECT_OK(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    for (uint64_t k = 0; k < 5; ++k) {
        batch(x, y, k);
        EXPECT_OK(train_step(&a, x, y, k));
    }
    dat_step_graph *g = record(&b, x, y);
    for (uint64_t k = 1; k < 5 && g; ++k) {
        batch(x, y, k);
        EXPECT_OK(k == 3 ? train_step(&b, x, y, k) : dat_step_graph_launch(g));
    }
    EXPECT_OK(dat_ctx_synchronize(ctx));
    dat_model_params(a.model, &pa);
    dat_model_params(b.model, &pb);
    char what[80];
    snprintf(what, sizeof what, "recorded step, bits %d mode %d: parameters", bits, (int)mode);
    expect_same(what, pb, pa, 0);
    dat_comm_stats sa = {.size = sizeof sa}, sb = {.size = sizeof sb};
    EXPECT_OK(dat_comm_get_stats(a.comm, &sa));
    EXPECT_OK(dat_comm_get_stats(b.comm, &sb));
    EXPECT(sa.calls == sb.calls && sa.bytes_sent == sb.bytes_sent,
           "%s: %llu calls, %llu bytes; op by op %llu, %llu", what,
           (unsigned long long)sb.calls, (unsigned long long)sb.bytes_sent,
           (unsigned long long)sa.calls, (unsigned long long)sa.bytes_sent);
    dat_step_graph_destroy(g);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    side_fini(&a);
    side_fini(&b);
}

/* A replay whose input holds NaN on the last rank: its encodes fail, so on
 * every rank the update is skipped and dat_ctx_synchronize reports it (the
 * last rank the input, the others the quantized all-reduce); the next
 * replay goes on, the ranks' parameters still alike. */
static void test_recorded_nan(dat_quant_mode mode)
{
    side s;
    side_init(&s, 8, mode);
    int64_t xs[4] = {4, 1, 28, 28}, ys[1] = {4};
    dat_tensor *x, *y, *p;
    EXPECT_OK(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    EXPECT_OK(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    dat_step_graph *g = record(&s, x, y);
    dat_model_params(s.model, &p);
    int64_t n = 0;
    dat_tensor_numel(p, &n);
    float *before = host(p);
    batch(x, y, 1);
    if (g_rank == g_size - 1) {
        float *v = host(x);
        v[5] = NAN;
        EXPECT_OK(dat_tensor_write(x, v, 4 * 28 * 28 * sizeof *v));
        free(v);
    }
    EXPECT_OK(g ? dat_step_graph_launch(g) : DAT_ERR_STATE);
    if (g_rank == g_size - 1)
        EXPECT_ERR(dat_ctx_synchronize(ctx), DAT_ERR_NUMERIC, "a model input held NaN");
    else
        EXPECT_ERR(dat_ctx_synchronize(ctx), DAT_ERR_NUMERIC,
                   "quantized all-reduce met NaN, Inf or an overflowing norm in a rank's "
                   "gradient (a device-side check of a replayed step graph); the optimizer "
                   "skipped the step");
    float *after = host(p);
    EXPECT(memcmp(before, after, (size_t)n * sizeof *after) == 0,
           "mode %d: the parameters changed in a step whose encode failed", (int)mode);
    batch(x, y, 2);
    EXPECT_OK(g ? dat_step_graph_launch(g) : DAT_ERR_STATE);
    EXPECT_OK(dat_ctx_synchronize(ctx));
    free(after);
    after = host(p);
    EXPECT(memcmp(before, after, (size_t)n * sizeof *after) != 0,
           "mode %d: the replay after the failed one did not update", (int)mode);
    float *first = malloc((size_t)n * sizeof *first);
    if (g_rank == 0)
        memcpy(first, after, (size_t)n * sizeof *first);
    MPI_Bcast(first, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    EXPECT(memcmp(first, after, (size_t)n * sizeof *after) == 0,
           "mode %d: the ranks' parameters differ after the failed replay", (int)mode);
    free(first);
    free(after);
    free(before);
    dat_step_graph_destroy(g);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    side_fini(&s);
}

/* Step 1 with a NaN gradient on the last rank (a NaN parameter, put back
 * after it), op by op on side a and replayed on side b, then step 2: the
 * parameters must agree. They do only if the failed replay leaves every
 * rank's error-feedback residual as op by op leaves it: zeroed on every
 * rank. */
static void test_recorded_failure_residuals(dat_quant_mode mode)
{
    side a, b;
    side_init(&a, 8, mode);
    side_init(&b, 8, mode);
    int64_t xs[4] = {4, 1, 28, 28}, ys[1] = {4};
    dat_tensor *x, *y, *pa, *pb;
    EXPECT_OK(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    EXPECT_OK(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    batch(x, y, 0);
    EXPECT_OK(train_step(&a, x, y, 0));
    dat_step_graph *g = record(&b, x, y);
    batch(x, y, 1);
    float kept = set_last_param(a.model, NAN);
    set_last_param(b.model, NAN);
    EXPECT_OK(dat_grad_sync_begin(a.sync, 1));
    dat_status st = dat_model_loss_backward(a.model, x, y, NULL, NULL);
    EXPECT(g_rank == g_size - 1 ? st == DAT_ERR_NUMERIC : st == DAT_OK,
           "the NaN step's backward pass: %s", dat_status_string(st));
    EXPECT(dat_grad_sync_end(a.sync) != DAT_OK, "the NaN step's synchronization passed");
    EXPECT_OK(g ? dat_step_graph_launch(g) : DAT_ERR_STATE);
    EXPECT(dat_ctx_synchronize(ctx) == DAT_ERR_NUMERIC, "the NaN replay was not reported");
    set_last_param(a.model, kept);
    set_last_param(b.model, kept);
    batch(x, y, 2);
    EXPECT_OK(train_step(&a, x, y, 2));
    EXPECT_OK(g ? dat_step_graph_launch(g) : DAT_ERR_STATE);
    EXPECT_OK(dat_ctx_synchronize(ctx));
    dat_model_params(a.model, &pa);
    dat_model_params(b.model, &pb);
    char what[96];
    snprintf(what, sizeof what, "mode %d: parameters after a failed replay", (int)mode);
    expect_same(what, pb, pa, 0);
    dat_step_graph_destroy(g);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    side_fini(&a);
    side_fini(&b);
}

/* Whether every rank has a GPU of its own (the emulation shares one). */
static int gpus_for_all(void)
{
    int32_t count = 0;
    int ok = dat_has_cuda() && dat_cuda_device_count(&count) == DAT_OK && count > 0 &&
             (exact || count >= g_size);
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all;
}

static void run_all(void)
{
    test_allreduce(1);
    test_allreduce(3);
    test_allreduce(300007);
    test_broadcast_allgather();
    const int bits[] = {4, 8, 32};
    for (int mode = 0; mode < 2; ++mode)
        for (int b = 0; b < 3; ++b) {
            test_quantized((dat_quant_mode)mode, bits[b], mode == 0, 100003);
            test_quantized((dat_quant_mode)mode, bits[b], mode == 1, 700); /* 2 buckets */
        }
    test_mismatch_and_failure();
    test_grad_sync_case(0, DAT_QUANT_ONE_SIDED);
    test_grad_sync_case(8, DAT_QUANT_ONE_SIDED);
    test_grad_sync_case(4, DAT_QUANT_TWO_SIDED);
    test_grad_sync_case(8, DAT_QUANT_TWO_SIDED);
    test_grad_sync_nan(8);
    test_recorded_step(0, DAT_QUANT_ONE_SIDED);
    test_recorded_step(8, DAT_QUANT_ONE_SIDED);
    test_recorded_step(4, DAT_QUANT_TWO_SIDED);
    test_recorded_nan(DAT_QUANT_ONE_SIDED);
    test_recorded_nan(DAT_QUANT_TWO_SIDED);
    test_recorded_failure_residuals(DAT_QUANT_ONE_SIDED);
    test_recorded_failure_residuals(DAT_QUANT_TWO_SIDED);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    const char *emu = getenv("DAT_TEST_EMULATED_GPU");
    exact = emu && emu[0] == '1';
    if (!gpus_for_all()) {
        if (g_rank == 0)
            printf("SKIP: needs a GPU for each of the %d ranks\n", g_size);
        MPI_Finalize();
        return 77;
    }
    int32_t count = 1;
    dat_cuda_device_count(&count);
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.device = DAT_DEVICE_CUDA;
    co.deterministic = 1; /* replays are compared with op-by-op steps */
    co.device_ordinal = g_rank % count;
    co.seed = 11 + (uint64_t)g_rank; /* the servers draw alike whatever the ranks' seeds */
    EXPECT_OK(dat_ctx_create(&ctx, &co));
    dat_comm_options opts;
    dat_comm_options_init(&opts);
    opts.timeout_s = 120;
    if (ctx) {
        EXPECT_OK(dat_comm_create_nccl_mpi(&nccl, ctx, MPI_COMM_WORLD, &opts));
        EXPECT_OK(dat_comm_create_mpi(&mpi, ctx, MPI_COMM_WORLD, &opts));
    }
    if (nccl && mpi)
        run_all();
    dat_comm_destroy(nccl);
    dat_comm_destroy(mpi);
    dat_ctx_destroy(ctx);
    int fails = 0;
    MPI_Allreduce(&g_fails, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (g_rank == 0)
        printf("%d ranks: %s (%d failures)\n", g_size, fails ? "FAILED" : "passed", fails);
    MPI_Finalize();
    return fails ? 1 : 0;
}
