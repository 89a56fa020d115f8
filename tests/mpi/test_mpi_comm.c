/*
 * The MPI communicator on M ranks (run by meson with mpirun -np 2 and -np 4):
 *  - all-reduce (sum, mean) equals the serial sum x_0 + x_1 + ... bit for bit;
 *  - broadcast and all-gather move the right bytes;
 *  - the one- and two-sided quantized all-reduce give identical bits on every
 *    rank, equal to a single-process simulation with the same draws (error
 *    feedback on and off, several steps, shards with no bucket);
 *  - the statistics equal the formulas of dat_comm.h;
 *  - a mismatched size, a NaN or an allocation that fails on one rank gives
 *    every rank an error that names it, and leaves the communicator usable;
 *  - a gradient synchronizer (dat_grad_sync) gives dat_comm_allreduce_grads'
 *    bits, overlapped (MPI_THREAD_SERIALIZED) or not (FUNNELED).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "comm/comm.h"
#include "core/philox.h"
#include "mpi_check.h"
#include "quant/quant_math.h"
#include "quant/quantizer.h"

static dat_ctx *ctx;
static dat_comm *comm;

/* Input element i of rank j: the same on every rank, so each can simulate all. */
static float input(int j, size_t i, uint64_t step)
{
    uint32_t w = dat_philox_word(77 + step, (uint64_t)j, i);
    return ((float)(w >> 8) / 16777216.0f - 0.5f) * (float)(1 + j) * (i % 11 == 0 ? 10.0f : 1.0f);
}

static dat_tensor *tensor(dat_dtype dt, int64_t n)
{
    dat_tensor *t = NULL;
    EXPECT_OK(dat_tensor_create(&t, ctx, dt, 1, &n));
    return t;
}

static float *fdata(dat_tensor *t)
{
    void *p = NULL;
    dat_tensor_host_data(t, &p);
    return p;
}

static dat_comm_stats stats(void)
{
    dat_comm_stats s = {.size = sizeof s};
    EXPECT_OK(dat_comm_get_stats(comm, &s));
    return s;
}

static void check_bytes(const char *what, dat_comm_stats before, uint64_t sent, uint64_t recv)
{
    dat_comm_stats after = stats();
    EXPECT(after.calls == before.calls + 1, "%s: calls %llu -> %llu", what,
           (unsigned long long)before.calls, (unsigned long long)after.calls);
    EXPECT(after.bytes_sent - before.bytes_sent == sent &&
               after.bytes_received - before.bytes_received == recv,
           "%s: sent %llu received %llu bytes, the formula says %llu and %llu", what,
           (unsigned long long)(after.bytes_sent - before.bytes_sent),
           (unsigned long long)(after.bytes_received - before.bytes_received),
           (unsigned long long)sent, (unsigned long long)recv);
}

static void test_allreduce(size_t n)
{
    for (int op = 0; op < 2; ++op) {
        dat_tensor *t = tensor(DAT_FLOAT32, (int64_t)n);
        float *x = fdata(t);
        for (size_t i = 0; i < n; ++i)
            x[i] = input(g_rank, i, 0);
        dat_comm_stats before = stats();
        EXPECT_OK(dat_comm_allreduce(comm, t, (dat_reduction)op));
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < n; ++i) {
            float s = input(0, i, 0);
            for (int j = 1; j < g_size; ++j)
                s += input(j, i, 0);
            if (op == DAT_REDUCE_MEAN)
                s *= 1.0f / (float)g_size;
            if (x[i] != s && bad++ == 0)
                first = i;
        }
        EXPECT(bad == 0, "all-reduce op %d n %zu: %zu elements differ from the serial sum, the "
               "first at %zu", op, n, bad, first);
        size_t lo = dat_comm_shard_lo(n, g_rank, g_size);
        size_t nr = dat_comm_shard_lo(n, g_rank + 1, g_size) - lo;
        uint64_t bytes = 4 * ((uint64_t)(n - nr) + (uint64_t)(g_size - 1) * nr);
        check_bytes("all-reduce", before, bytes, bytes);
        dat_tensor_destroy(t);
    }
}

static void test_broadcast_allgather(void)
{
    const int64_t n = 1001;
    int root = g_size - 1;
    dat_tensor *t = tensor(DAT_INT32, n);
    int32_t *v = (int32_t *)fdata(t);
    for (int64_t i = 0; i < n; ++i)
        v[i] = g_rank == root ? (int32_t)(i * 3 + 1) : -1;
    dat_comm_stats before = stats();
    EXPECT_OK(dat_comm_broadcast(comm, t, root));
    for (int64_t i = 0; i < n; ++i)
        EXPECT(v[i] == (int32_t)(i * 3 + 1), "broadcast element %lld: %d", (long long)i, v[i]);
    check_bytes("broadcast", before, g_rank == root ? (uint64_t)(g_size - 1) * 4 * n : 0,
                g_rank == root ? 0 : 4 * (uint64_t)n);

    dat_tensor *in = tensor(DAT_FLOAT32, 777), *out = tensor(DAT_FLOAT32, 777 * g_size);
    for (size_t i = 0; i < 777; ++i)
        fdata(in)[i] = input(g_rank, i, 1);
    before = stats();
    EXPECT_OK(dat_comm_allgather(comm, in, out));
    for (int j = 0; j < g_size; ++j)
        for (size_t i = 0; i < 777; ++i)
            EXPECT(fdata(out)[(size_t)j * 777 + i] == input(j, i, 1),
                   "all-gather block %d element %zu", j, i);
    check_bytes("all-gather", before, (uint64_t)(g_size - 1) * 777 * 4,
                (uint64_t)(g_size - 1) * 777 * 4);
    dat_tensor_destroy(t);
    dat_tensor_destroy(in);
    dat_tensor_destroy(out);
}

/* The quantized all-reduce of every rank, simulated in one process with one
 * quantizer per simulated rank (their residuals differ). */
static void simulate(dat_quantizer **qs, dat_quant_mode mode, size_t n, uint64_t step,
                     float *result, uint64_t *bytes_of_rank)
{
    int m = g_size;
    const dat_quant_config *cfg = &qs[0]->cfg;
    size_t e = dat_quant_encoded_bytes(cfg, n);
    float *x = malloc(n * sizeof *x);
    uint8_t **codes = malloc((size_t)m * sizeof *codes);
    for (int j = 0; j < m; ++j) {
        codes[j] = malloc(e + 4);
        for (size_t i = 0; i < n; ++i)
            x[i] = input(j, i, step);
        EXPECT_OK(dat_quantizer_encode_slice(qs[j], "sim", x, n, 0, (uint32_t)j, step,
                                             DAT_QUANT_PHASE_WORKER, 1, codes[j]));
    }
    float inv = 1.0f / (float)m;
    if (mode == DAT_QUANT_ONE_SIDED) {
        for (int j = 0; j < m; ++j)
            EXPECT_OK(dat_quantizer_decode_slice(qs[0], codes[j], n, result, j > 0, inv));
        *bytes_of_rank = (uint64_t)(m - 1) * e;
    } else {
        size_t b = (size_t)cfg->bucket, units = (n + b - 1) / b, off = 0;
        for (int s = 0; s < m; ++s) {
            size_t lo = dat_comm_shard_lo(units, s, m) * b, hi = dat_comm_shard_lo(units, s + 1, m) * b;
            lo = lo < n ? lo : n;
            hi = hi < n ? hi : n;
            size_t es = dat_quant_encoded_bytes(cfg, hi - lo);
            for (int j = 0; j < m; ++j)
                EXPECT_OK(dat_quantizer_decode_slice(qs[0], codes[j] + off, hi - lo,
                                                     result + lo, j > 0, inv));
            uint8_t *served = malloc(es + 4);
            EXPECT_OK(dat_quantizer_encode_slice(qs[s], "sim", result + lo, hi - lo, lo, 0,
                                                 step, DAT_QUANT_PHASE_SERVER, 0, served));
            EXPECT_OK(dat_quantizer_decode_slice(qs[0], served, hi - lo, result + lo, 0, 1));
            if (s == g_rank)
                *bytes_of_rank = (uint64_t)(e - es) + (uint64_t)(m - 1) * es;
            free(served);
            off += es;
        }
    }
    for (int j = 0; j < m; ++j)
        free(codes[j]);
    free(codes);
    free(x);
}

static uint64_t fnv(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; ++i)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static void test_quantized(dat_quant_mode mode, int bits, int ef, size_t n)
{
    dat_quantizer_options o;
    dat_quantizer_options_init(&o);
    o.bits = bits;
    o.error_feedback = ef;
    o.seed = 31;
    o.norm = bits == 4 ? DAT_QUANT_NORM_MAX : DAT_QUANT_NORM_L2;
    dat_quantizer *q = NULL, **sim = calloc((size_t)g_size, sizeof *sim);
    EXPECT_OK(dat_quantizer_create(&q, ctx, &o));
    for (int j = 0; j < g_size; ++j)
        EXPECT_OK(dat_quantizer_create(&sim[j], ctx, &o));
    float *want = malloc(n * sizeof *want);
    for (uint64_t step = 5; step < 8; ++step) {
        dat_tensor *t = tensor(DAT_FLOAT32, (int64_t)n);
        for (size_t i = 0; i < n; ++i)
            fdata(t)[i] = input(g_rank, i, step);
        dat_comm_stats before = stats();
        EXPECT_OK(dat_comm_allreduce_quantized(comm, t, q, mode, step));
        uint64_t bytes = 0;
        simulate(sim, mode, n, step, want, &bytes);
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < n; ++i)
            if (memcmp(&fdata(t)[i], &want[i], 4) != 0 && bad++ == 0)
                first = i;
        EXPECT(bad == 0, "mode %d bits %d ef %d n %zu step %llu: %zu elements differ from the "
               "simulation, the first at %zu: %.9g vs %.9g", mode, bits, ef, n,
               (unsigned long long)step, bad, first, (double)fdata(t)[first],
               (double)want[first]);
        uint64_t h = fnv(fdata(t), n * 4), *all = malloc((size_t)g_size * sizeof *all);
        MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
        for (int j = 1; j < g_size; ++j)
            EXPECT(all[j] == all[0], "mode %d bits %d: rank %d's result differs from rank 0's",
                   mode, bits, j);
        free(all);
        check_bytes("quantized all-reduce", before, bytes, bytes);
        dat_tensor_destroy(t);
    }
    free(want);
    for (int j = 0; j < g_size; ++j)
        dat_quantizer_destroy(sim[j]);
    free(sim);
    dat_quantizer_destroy(q);
}

/* Limits this process's address space to what it maps now plus `extra` bytes,
 * so that a bigger allocation fails; restore(old) lifts it. 0 where that cannot
 * work (AddressSanitizer reserves terabytes of shadow at start). */
static int limit_memory(size_t extra, struct rlimit *old)
{
#if defined(__SANITIZE_ADDRESS__)
    (void)extra;
    (void)old;
    return 0;
#else
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    int got = f && fscanf(f, "%lu", &pages) == 1;
    if (f)
        fclose(f);
    if (!got || getrlimit(RLIMIT_AS, old) != 0)
        return 0;
    struct rlimit lim = *old;
    lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + extra;
    return setrlimit(RLIMIT_AS, &lim) == 0;
#endif
}

/* One rank out of memory where the codes are staged (the quantizer's scratch,
 * a quarter of the tensor and more): every rank hears of it in the agreement,
 * none is left waiting in the exchange, and the communicator stays usable. */
static void test_out_of_memory(void)
{
    dat_quantizer *q = NULL;
    EXPECT_OK(dat_quantizer_create(&q, ctx, NULL));
    dat_tensor *t = tensor(DAT_FLOAT32, 4 << 20);
    if (!q || !t)
        return;
    for (int mode = 0; mode < 2; ++mode) {
        struct rlimit old;
        int limited = 0;
        if (g_rank == g_size - 1)
            limited = limit_memory(256 << 10, &old);
        int all = 0; /* every rank runs the case or none does */
        MPI_Allreduce(&limited, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        if (all == 1)
            EXPECT_LAST_RANK_FAILS(dat_comm_allreduce_quantized(comm, t, q,
                                                                (dat_quant_mode)mode, 1),
                                   DAT_ERR_OUT_OF_MEMORY, "cannot allocate");
        if (limited)
            setrlimit(RLIMIT_AS, &old);
    }
    dat_quantizer_destroy(q);
    dat_tensor_destroy(t);
    test_allreduce(10);
}

/* A quantized call that fails on one rank (a NaN on the last) is applied by
 * none, and every rank forgets its error-feedback residual of the tensor: the
 * next call equals a fresh quantizer's on every rank (the ranks' residuals
 * stay alike; those that had encoded kept x - q(x) of a step never taken). */
static void test_failure_forgets_residuals(void)
{
    for (int mode = 0; mode < 2; ++mode) {
        dat_quantizer_options qo;
        dat_quantizer_options_init(&qo);
        qo.bits = 4;
        qo.error_feedback = 1;
        dat_quantizer *q = NULL, *fresh = NULL;
        EXPECT_OK(dat_quantizer_create(&q, ctx, &qo));
        EXPECT_OK(dat_quantizer_create(&fresh, ctx, &qo));
        dat_tensor *t = tensor(DAT_FLOAT32, 700), *u = tensor(DAT_FLOAT32, 700);
        EXPECT_OK(dat_tensor_fill_uniform(t, -1, 1, 5 + (uint64_t)g_rank, 0));
        if (g_rank == g_size - 1)
            fdata(t)[3] = NAN;
        EXPECT_LAST_RANK_FAILS(dat_comm_allreduce_quantized(comm, t, q, (dat_quant_mode)mode, 1),
                               DAT_ERR_NUMERIC, "element 3");
        EXPECT_OK(dat_tensor_fill_uniform(t, -1, 1, 9 + (uint64_t)g_rank, 0));
        EXPECT_OK(dat_tensor_copy(u, t));
        EXPECT_OK(dat_comm_allreduce_quantized(comm, t, q, (dat_quant_mode)mode, 2));
        EXPECT_OK(dat_comm_allreduce_quantized(comm, u, fresh, (dat_quant_mode)mode, 2));
        EXPECT(memcmp(fdata(t), fdata(u), 700 * sizeof(float)) == 0,
               "mode %d: after a failed call the residual was not forgotten", mode);
        dat_tensor_destroy(t);
        dat_tensor_destroy(u);
        dat_quantizer_destroy(q);
        dat_quantizer_destroy(fresh);
    }
}

/* Values near float's top whose mean is finite: every rank's decode is scaled
 * by 1/M before the ranks' are added (a sum of decodes, each 0 or the
 * bucket's l2 norm, 3e38 here, overflowed to Inf with DAT_OK wherever two
 * ranks rounded up, each with probability 1/2). (Two-sided, the servers'
 * averages have norms past float: that encode fails, reported.) */
static void test_quantized_huge(void)
{
    dat_quantizer_options qo;
    dat_quantizer_options_init(&qo);
    qo.bits = 2;
    qo.bucket_size = 4;
    dat_quantizer *q = NULL;
    EXPECT_OK(dat_quantizer_create(&q, ctx, &qo));
    dat_tensor *t = tensor(DAT_FLOAT32, 512);
    EXPECT_OK(dat_tensor_fill(t, 1.5e38));
    EXPECT_OK(dat_comm_allreduce_quantized(comm, t, q, DAT_QUANT_ONE_SIDED, 1));
    int bad = 0;
    for (int i = 0; i < 512; ++i)
        bad += !isfinite(fdata(t)[i]);
    EXPECT(bad == 0, "%d of 512 elements of a mean of 1.5e38 are not finite", bad);
    dat_tensor_destroy(t);
    dat_quantizer_destroy(q);
}

static void test_mismatch_and_failure(void)
{
    /* Rank 1 passes one element more. */
    dat_tensor *t = tensor(DAT_FLOAT32, g_rank == 1 ? 101 : 100);
    EXPECT_ERR(dat_comm_allreduce(comm, t, DAT_REDUCE_SUM), DAT_ERR_COMM,
               "disagree on the element count: rank 0 has 100, rank 1 has 101");
    dat_tensor_destroy(t);
    /* The communicator still works. */
    test_allreduce(10);
    /* A NaN on the last rank. */
    dat_quantizer *q = NULL;
    EXPECT_OK(dat_quantizer_create(&q, ctx, NULL));
    t = tensor(DAT_FLOAT32, 600);
    if (g_rank == g_size - 1)
        fdata(t)[555] = NAN;
    for (int mode = 0; mode < 2; ++mode)
        EXPECT_LAST_RANK_FAILS(dat_comm_allreduce_quantized(comm, t, q, (dat_quant_mode)mode, 1),
                               DAT_ERR_NUMERIC, "element 555");
    /* A bad argument on rank 0 only: the others hear that it failed, not that
     * the header it filled no further disagrees with theirs. */
    if (g_rank == 0)
        EXPECT_ERR(dat_comm_broadcast(comm, t, 99), DAT_ERR_INVALID_ARG, "root = 99");
    else
        EXPECT_ERR(dat_comm_broadcast(comm, t, 99 * 0), DAT_ERR_COMM,
                   "rank 0 failed its part with DAT_ERR_INVALID_ARG");
    dat_tensor *u = tensor(DAT_FLOAT32, 600);
    if (g_rank == 0)
        EXPECT_ERR(dat_comm_allreduce_quantized(comm, u, NULL, DAT_QUANT_ONE_SIDED, 1),
                   DAT_ERR_INVALID_ARG, "q must not be NULL");
    else
        EXPECT_ERR(dat_comm_allreduce_quantized(comm, u, q, DAT_QUANT_ONE_SIDED, 1),
                   DAT_ERR_COMM, "rank 0 failed its part with DAT_ERR_INVALID_ARG");
    dat_tensor_destroy(u);
    dat_quantizer_destroy(q);
    dat_tensor_destroy(t);
    test_failure_forgets_residuals();
    test_allreduce(10);
}

/* A model's gradient averaged over the ranks equals the mean of the ranks'
 * gradients (gathered and averaged here); the start-up broadcast makes every
 * rank hold rank 0's parameters. */
static void test_model_collectives(void)
{
    dat_model_options mo;
    dat_model_options_init(&mo);
    mo.init_seed = 100 + (uint64_t)g_rank; /* different weights on every rank */
    dat_model *m = NULL;
    EXPECT_OK(dat_model_create_preset(&m, ctx, "mlp", &mo));
    if (!m)
        return;
    EXPECT_OK(dat_comm_broadcast_model(comm, m, 0));
    dat_tensor *p, *g;
    dat_model_params(m, &p);
    dat_model_grads(m, &g);
    int64_t np;
    dat_tensor_numel(p, &np);
    float *pa = fdata(p);
    uint64_t h = fnv(pa, (size_t)np * 4), h0 = h;
    MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    EXPECT(h == h0, "parameters differ from rank 0's after the broadcast");

    int64_t xs[4] = {3, 1, 28, 28}, ys[1] = {3};
    dat_tensor *x, *y;
    EXPECT_OK(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    EXPECT_OK(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    EXPECT_OK(dat_tensor_fill_uniform(x, 0, 1, (uint64_t)g_rank, 0)); /* each rank its shard */
    EXPECT_OK(dat_tensor_fill(y, g_rank % 10));
    EXPECT_OK(dat_model_loss_backward(m, x, y, NULL, NULL));
    float *ga = fdata(g), *all = malloc((size_t)np * 4 * (size_t)g_size);
    MPI_Allgather(ga, (int)np, MPI_FLOAT, all, (int)np, MPI_FLOAT, MPI_COMM_WORLD);
    EXPECT_OK(dat_comm_allreduce_grads(comm, m, NULL, DAT_QUANT_ONE_SIDED, 0));
    /* Norm-wise: elements near 0 after cancellation carry float32 rounding. */
    double num = 0, den = 0;
    for (int64_t i = 0; i < np; ++i) {
        double mean = 0;
        for (int j = 0; j < g_size; ++j)
            mean += all[(size_t)j * (size_t)np + (size_t)i];
        mean /= g_size;
        num += (ga[i] - mean) * (ga[i] - mean);
        den += mean * mean;
    }
    EXPECT(sqrt(num / den) < 1e-6, "averaged gradient: relative error %g", sqrt(num / den));
    /* Quantized: identical bits everywhere. */
    dat_quantizer *q = NULL;
    EXPECT_OK(dat_quantizer_create(&q, ctx, NULL));
    EXPECT_OK(dat_comm_allreduce_grads(comm, m, q, DAT_QUANT_TWO_SIDED, 1));
    uint64_t hq = fnv(ga, (size_t)np * 4), hq0 = hq;
    MPI_Bcast(&hq0, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    EXPECT(hq == hq0, "quantized gradient differs from rank 0's");
    dat_quantizer_destroy(q);
    free(all);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_model_destroy(m);
}

/* One step of each synchronizer configuration against dat_comm_allreduce_grads:
 * model a is reduced after its backward pass, model b bucket by bucket while
 * it runs; the gradients must be the same bits (exact: sums in rank order in
 * either case; quantized: bucket-aligned slices draw what the whole does). */
typedef struct sync_case {
    int bits;             /* 0: exact */
    dat_quant_mode mode;
    int error_feedback;
    int trades;           /* the TRADES loss: two backward passes, the hook on the last */
    /* quantizers of other seeds on every rank (their own and their context's):
     * the servers draw with rank 0's whichever rank serves an element */
    int rank_seeds;
} sync_case;

static dat_quantizer *sync_quantizer(const sync_case *t, dat_ctx *mctx)
{
    if (!t->bits)
        return NULL;
    dat_quantizer_options qo;
    dat_quantizer_options_init(&qo);
    qo.bits = t->bits;
    qo.error_feedback = t->error_feedback;
    qo.seed = t->rank_seeds ? 7 + (uint64_t)g_rank : 0;
    dat_quantizer *q = NULL;
    EXPECT_OK(dat_quantizer_create(&q, mctx, &qo));
    return q;
}

static void test_grad_sync_case(const sync_case *t, int want_overlap)
{
    dat_ctx_options co; /* another seed on every rank, or the shared context */
    dat_ctx_options_init(&co);
    co.seed = 20 + (uint64_t)g_rank;
    co.num_threads = 1;
    dat_ctx *seeded = NULL;
    if (t->rank_seeds)
        EXPECT_OK(dat_ctx_create(&seeded, &co));
    dat_ctx *mctx = t->rank_seeds ? seeded : ctx;
    dat_model_options mo;
    dat_model_options_init(&mo);
    mo.init_seed = 300 + (uint64_t)g_rank;
    dat_model *a = NULL, *b = NULL;
    EXPECT_OK(dat_model_create_preset(&a, mctx, "cnn_small", &mo));
    EXPECT_OK(dat_model_create_preset(&b, mctx, "cnn_small", &mo));
    dat_quantizer *qa = sync_quantizer(t, mctx), *qb = sync_quantizer(t, mctx);
    dat_grad_sync_options so;
    dat_grad_sync_options_init(&so);
    so.bucket_elems = 512 * 37; /* 25 buckets, the last one short */
    so.quantizer = qb;
    so.mode = t->mode;
    dat_grad_sync *sync = NULL;
    EXPECT_OK(dat_grad_sync_create(&sync, comm, b, &so));
    int32_t overlaps = -1;
    EXPECT_OK(dat_grad_sync_overlaps(sync, &overlaps));
    EXPECT(overlaps == want_overlap, "overlaps = %d, expected %d", overlaps, want_overlap);
    dat_grad_sync *second = NULL; /* one per model, overlapping or not */
    EXPECT_ERR(dat_grad_sync_create(&second, comm, b, &so), DAT_ERR_STATE, "already has");
    int64_t xs[4] = {4, 1, 28, 28}, ys[1] = {4};
    dat_tensor *x, *xc, *y, *ga, *gb;
    EXPECT_OK(dat_tensor_create(&x, mctx, DAT_FLOAT32, 4, xs));
    EXPECT_OK(dat_tensor_create(&xc, mctx, DAT_FLOAT32, 4, xs));
    EXPECT_OK(dat_tensor_create(&y, mctx, DAT_INT32, 1, ys));
    dat_model_grads(a, &ga);
    dat_model_grads(b, &gb);
    int64_t np = 0;
    dat_tensor_numel(ga, &np);
    dat_loss_options lo;
    dat_loss_options_init(&lo);
    if (t->trades) {
        lo.adv_weight = 0;
        lo.clean_weight = 1;
        lo.kl_weight = 6;
        lo.x_clean = xc;
    }
    for (uint64_t step = 0; step < 2; ++step) { /* the second step meets the residual */
        EXPECT_OK(dat_tensor_fill_uniform(x, 0, 1, 10 * step + (uint64_t)g_rank, 0));
        EXPECT_OK(dat_tensor_fill_uniform(xc, 0, 1, 10 * step + (uint64_t)g_rank, 1));
        EXPECT_OK(dat_tensor_fill(y, (g_rank + (int)step) % 10));
        EXPECT_OK(dat_model_loss_backward(a, x, y, &lo, NULL));
        EXPECT_OK(dat_comm_allreduce_grads(comm, a, qa, t->mode, step));
        dat_comm_stats before = stats();
        EXPECT_OK(dat_grad_sync_begin(sync, step));
        EXPECT_OK(dat_model_loss_backward(b, x, y, &lo, NULL));
        EXPECT_OK(dat_grad_sync_end(sync));
        dat_comm_stats after = stats();
        EXPECT(after.calls == before.calls + 1, "grad sync: %llu calls booked, not 1",
               (unsigned long long)(after.calls - before.calls));
        EXPECT(memcmp(fdata(ga), fdata(gb), (size_t)np * 4) == 0,
               "grad sync (bits %d, mode %d, ef %d, trades %d, rank seeds %d), step %llu: the "
               "gradient differs from dat_comm_allreduce_grads'", t->bits, (int)t->mode,
               t->error_feedback, t->trades, t->rank_seeds, (unsigned long long)step);
    }
    dat_grad_sync_destroy(sync);
    dat_quantizer_destroy(qa);
    dat_quantizer_destroy(qb);
    dat_tensor_destroy(x);
    dat_tensor_destroy(xc);
    dat_tensor_destroy(y);
    dat_model_destroy(a);
    dat_model_destroy(b);
    dat_ctx_destroy(seeded); /* last: its objects first */
}

static void test_grad_sync(int want_overlap)
{
    const sync_case cases[] = {
        {0, DAT_QUANT_ONE_SIDED, 0, 0, 0},
        {0, DAT_QUANT_ONE_SIDED, 0, 1, 0},
        {8, DAT_QUANT_ONE_SIDED, 1, 0, 0},
        {4, DAT_QUANT_TWO_SIDED, 0, 0, 0},
        {4, DAT_QUANT_TWO_SIDED, 1, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i)
        test_grad_sync_case(&cases[i], want_overlap);
}

int main(int argc, char **argv)
{
    /* DAT_TEST_MPI_FUNNELED=1: a thread level that rules out the synchronizer's
     * thread (it must then reduce everything in its end, with the same bits). */
    const char *funneled = getenv("DAT_TEST_MPI_FUNNELED");
    int want = funneled && funneled[0] == '1' ? MPI_THREAD_FUNNELED : MPI_THREAD_SERIALIZED;
    int provided = MPI_THREAD_SINGLE;
    MPI_Init_thread(&argc, &argv, want, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.seed = 11;
    co.num_threads = 1;
    EXPECT_OK(dat_ctx_create(&ctx, &co));
    dat_comm_options opts;
    dat_comm_options_init(&opts);
    opts.timeout_s = 60;
    EXPECT_OK(dat_comm_create_mpi(&comm, ctx, MPI_COMM_WORLD, &opts));
    if (comm) {
        int32_t r = -1, m = -1;
        dat_comm_rank(comm, &r);
        dat_comm_size(comm, &m);
        EXPECT(r == g_rank && m == g_size, "rank %d size %d", r, m);
        test_allreduce(1);
        test_allreduce(3);
        test_allreduce(1000003);
        test_broadcast_allgather();
        const int bits[] = {4, 8, 32};
        for (int mode = 0; mode < 2; ++mode)
            for (int b = 0; b < 3; ++b)
                for (int ef = 0; ef < 2; ++ef) {
                    test_quantized((dat_quant_mode)mode, bits[b], ef, 100003);
                    test_quantized((dat_quant_mode)mode, bits[b], ef, 700); /* 2 buckets */
                }
        test_quantized_huge();
        test_mismatch_and_failure();
        test_out_of_memory();
        test_model_collectives();
        test_grad_sync(provided >= MPI_THREAD_SERIALIZED);
    }
    dat_comm_destroy(comm);
    dat_ctx_destroy(ctx);
    int fails = 0;
    MPI_Allreduce(&g_fails, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (g_rank == 0)
        printf("%d ranks: %s (%d failures)\n", g_size, fails ? "FAILED" : "passed", fails);
    MPI_Finalize();
    return fails ? 1 : 0;
}
