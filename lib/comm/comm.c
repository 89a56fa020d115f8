/* The generic communicator: public entry points, argument checks, header
 * agreement, staging between host and device, statistics. */
#include "comm.h"

#include <stdlib.h>
#include <string.h>

#include "../core/capture.h"
#include "../core/error.h"
#include "../core/options.h"
#include "../core/tensor.h"
#include "../quant/quantizer.h"

#define DAT_COMM_OPTIONS_MIN_SIZE sizeof(dat_comm_options)
#define DAT_COMM_STATS_MIN_SIZE sizeof(dat_comm_stats)

dat_status (dat_comm_options_init)(dat_comm_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    *opts = (dat_comm_options){.size = sizeof(dat_comm_options),
                               .timeout_s = DAT_COMM_DEFAULT_TIMEOUT};
    return DAT_OK;
}

DAT_OPTIONS_INIT_SIZED(dat_comm_options)

dat_status dat_comm_resolve_options(const char *func, const dat_comm_options *opts,
                                    dat_comm_options *o)
{
    dat_comm_options_init(o);
    if (opts) {
        if (opts->size < DAT_COMM_OPTIONS_MIN_SIZE || opts->size > sizeof(dat_comm_options))
            return dat_error(DAT_ERR_INVALID_ARG, func,
                             "opts->size is %u, expected %zu: call dat_comm_options_init first",
                             (unsigned)opts->size, sizeof(dat_comm_options));
        *o = *opts;
        o->size = sizeof *o;
    }
    if (!(o->timeout_s > 0) || o->timeout_s > 1e9)
        return dat_error(DAT_ERR_INVALID_ARG, func,
                         "opts->timeout_s = %g must be in (0, 1e9] seconds", o->timeout_s);
    return DAT_OK;
}

dat_status dat_comm_alloc(dat_comm **out, dat_ctx *ctx, const dat_comm_ops *ops, void *impl,
                          int rank, int size, double timeout_s)
{
    *out = NULL;
    dat_comm *c = calloc(1, sizeof *c);
    size_t *tables = calloc(4 * (size_t)size, sizeof *tables);
    int64_t *headers = calloc((size_t)size * DAT_HDR_LEN, sizeof *headers);
    if (!c || !tables || !headers) {
        free(c);
        free(tables);
        free(headers);
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_comm_create",
                         "cannot allocate a communicator of %d ranks", size);
    }
    c->ops = ops;
    c->impl = impl;
    c->ctx = ctx;
    c->rank = rank;
    c->size = size;
    c->timeout_s = timeout_s;
    c->stats.size = sizeof c->stats;
    c->tables = tables;
    c->headers = headers;
    *out = c;
    return DAT_OK;
}

void dat_comm_destroy(dat_comm *comm)
{
    if (!comm)
        return;
    comm->ops->destroy(comm);
    if (comm->dev_scratch)
        comm->ctx->be->free(comm->ctx, comm->dev_scratch);
    free(comm->scratch);
    free(comm->stage);
    free(comm->tables);
    free(comm->headers);
    free(comm);
}

dat_status dat_comm_scratch(dat_comm *c, size_t bytes, uint8_t **p)
{
    if (bytes > c->scratch_bytes) {
        size_t rounded = (bytes + 63) & ~(size_t)63;
        uint8_t *n = aligned_alloc(64, rounded);
        if (!n)
            return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_comm", "cannot allocate %zu bytes of "
                             "scratch", bytes);
        free(c->scratch);
        c->scratch = n;
        c->scratch_bytes = rounded;
    }
    *p = c->scratch;
    return DAT_OK;
}

dat_status dat_comm_dev_scratch(dat_comm *c, size_t bytes, void **p)
{
    if (bytes > c->dev_bytes) {
        if (c->dev_scratch)
            c->ctx->be->free(c->ctx, c->dev_scratch);
        c->dev_scratch = NULL;
        c->dev_bytes = 0;
        DAT_TRY(c->ctx->be->alloc(c->ctx, bytes, &c->dev_scratch));
        c->dev_bytes = bytes;
    }
    *p = c->dev_scratch;
    return DAT_OK;
}

static dat_status stage_buffer(dat_comm *c, size_t n, float **p)
{
    if (n > c->stage_len) {
        float *s = realloc(c->stage, n * sizeof *s);
        if (!s)
            return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_comm", "cannot allocate %zu floats "
                             "of host staging", n);
        c->stage = s;
        c->stage_len = n;
    }
    *p = c->stage;
    return DAT_OK;
}

dat_status dat_comm_failed(dat_comm *c, dat_status s)
{
    if (s == DAT_ERR_TIMEOUT || s == DAT_ERR_COMM)
        c->broken = 1;
    return s;
}

static const char *const hdr_names[DAT_HDR_LEN] = {
    "sequence number", "operation", "dtype", "element count", "reduce op / root / mode",
    "quantizer bits", "quantizer bucket size", "quantizer norm", "step", "status",
    "quantizer key", "quantizer salt"};

dat_status dat_comm_agree(dat_comm *c, const char *func, const int64_t *mine)
{
    if (c->ctx && dat_capturing(c->ctx)) /* the ranks agree through the host */
        return dat_capture_refuse(c->ctx, func, "a collective that agrees through the host "
                                  "(of the collectives, only dat_comm_allreduce on a NCCL "
                                  "communicator can be)");
    int64_t *all = c->headers;
    dat_status s = c->ops->exchange_header(c, mine, all);
    if (s != DAT_OK)
        return dat_error_context(dat_comm_failed(c, s), func);
    if (mine[DAT_HDR_STATUS] != DAT_OK)
        return (dat_status)mine[DAT_HDR_STATUS];
    /* A rank that failed first may not have filled the rest of its header. */
    for (int j = 0; j < c->size; ++j) {
        int64_t st = all[(size_t)j * DAT_HDR_LEN + DAT_HDR_STATUS];
        if (st != DAT_OK)
            return dat_error(DAT_ERR_COMM, func, "rank %d failed its part with %s (this is "
                             "rank %d)", j, dat_status_string((dat_status)st), c->rank);
    }
    for (int f = 0; f < DAT_HDR_STATUS; ++f) {
        for (int j = 1; j < c->size; ++j) {
            int64_t a = all[f], b = all[(size_t)j * DAT_HDR_LEN + f];
            if (a != b)
                return dat_error(DAT_ERR_COMM, func,
                                 "the ranks disagree on the %s: rank 0 has %lld, rank %d has "
                                 "%lld (this is rank %d)", hdr_names[f], (long long)a, j,
                                 (long long)b, c->rank);
        }
    }
    return DAT_OK;
}

dat_status dat_comm_host_allgatherv(dat_comm *c, void *buf, const size_t *counts,
                                    const size_t *displs, size_t total)
{
    if (!c->ops->device_buffers)
        return c->ops->allgatherv(c, buf, counts, displs);
    void *d;
    DAT_TRY(dat_comm_dev_scratch(c, total, &d));
    DAT_TRY(c->ctx->be->copy_from_host(c->ctx, d, buf, total));
    DAT_TRY(c->ops->allgatherv(c, d, counts, displs));
    return c->ctx->be->copy_to_host(c->ctx, buf, d, total);
}

dat_status dat_comm_host_alltoallv(dat_comm *c, const void *send, const size_t *scounts,
                                   const size_t *sdispls, size_t stotal, void *recv,
                                   const size_t *rcounts, const size_t *rdispls, size_t rtotal)
{
    if (!c->ops->device_buffers)
        return c->ops->alltoallv(c, send, scounts, sdispls, recv, rcounts, rdispls);
    void *d;
    size_t soff = (stotal + 255) & ~(size_t)255;
    DAT_TRY(dat_comm_dev_scratch(c, soff + rtotal, &d));
    DAT_TRY(c->ctx->be->copy_from_host(c->ctx, d, send, stotal));
    DAT_TRY(c->ops->alltoallv(c, d, scounts, sdispls, (uint8_t *)d + soff, rcounts, rdispls));
    return c->ctx->be->copy_to_host(c->ctx, recv, (uint8_t *)d + soff, rtotal);
}

/* ---- public entry points ---- */

dat_status dat_comm_rank(const dat_comm *comm, int32_t *rank)
{
    DAT_CHECK_NOT_NULL(comm);
    DAT_CHECK_NOT_NULL(rank);
    *rank = comm->rank;
    return DAT_OK;
}

dat_status dat_comm_size(const dat_comm *comm, int32_t *size)
{
    DAT_CHECK_NOT_NULL(comm);
    DAT_CHECK_NOT_NULL(size);
    *size = comm->size;
    return DAT_OK;
}

dat_status dat_comm_get_stats(const dat_comm *comm, dat_comm_stats *stats)
{
    DAT_CHECK_NOT_NULL(comm);
    DAT_CHECK_NOT_NULL(stats);
    if (stats->size < DAT_COMM_STATS_MIN_SIZE || stats->size > sizeof(dat_comm_stats))
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "stats->size is %u, expected %zu: set it to sizeof(dat_comm_stats)",
                         (unsigned)stats->size, sizeof(dat_comm_stats));
    uint32_t size = stats->size;
    memcpy(stats, &comm->stats, size);
    stats->size = size;
    return DAT_OK;
}

dat_status dat_comm_reset_stats(dat_comm *comm)
{
    DAT_CHECK_NOT_NULL(comm);
    comm->stats = (dat_comm_stats){.size = sizeof(dat_comm_stats)};
    return DAT_OK;
}

dat_status dat_comm_abort(dat_comm *comm)
{
    DAT_CHECK_NOT_NULL(comm);
    if (comm->broken != 2 && comm->ops->abort)
        comm->ops->abort(comm);
    comm->broken = 2;
    return DAT_OK;
}

/* The state check every collective starts with. */
dat_status dat_comm_usable(const dat_comm *c, const char *func)
{
    if (c->broken)
        return dat_error(DAT_ERR_STATE, func,
                         "the communicator is %s: destroy it", c->broken == 2 ? "aborted"
                         : "broken by an earlier failure (timeout or transport error)");
    return DAT_OK;
}

void dat_comm_header(dat_comm *c, int64_t *h, int op, int64_t dtype, int64_t count,
                     int64_t arg, dat_status local)
{
    memset(h, 0, DAT_HDR_LEN * sizeof *h);
    h[DAT_HDR_SEQ] = (int64_t)c->seq++;
    h[DAT_HDR_OP] = op;
    h[DAT_HDR_DTYPE] = dtype;
    h[DAT_HDR_COUNT] = count;
    h[DAT_HDR_ARG] = arg;
    h[DAT_HDR_STATUS] = local;
}

/* Host pointer of a tensor's data for a host-buffer kind, staged if the tensor
 * lives on a device (read = copy its contents in). */
static dat_status to_host(dat_comm *c, dat_tensor *t, int read, void **p)
{
    if (t->ctx->opts.device == DAT_DEVICE_CPU) {
        *p = t->data;
        return DAT_OK;
    }
    float *s = NULL;
    DAT_TRY(stage_buffer(c, (t->nbytes + 3) / 4, &s));
    if (read)
        DAT_TRY(dat_tensor_read(t, s, t->nbytes));
    *p = s;
    return DAT_OK;
}

static dat_status from_host(dat_comm *c, dat_tensor *t, void *p)
{
    (void)c;
    if (p == t->data)
        return DAT_OK;
    return dat_tensor_write(t, p, t->nbytes);
}

/* Copies t, of another context than c's, into dst in c's device memory: from
 * host memory directly, from another device through the host. */
static dat_status to_device(dat_comm *c, const dat_tensor *t, void *dst)
{
    if (t->ctx->opts.device == DAT_DEVICE_CPU)
        return c->ctx->be->copy_from_host(c->ctx, dst, t->data, t->nbytes);
    float *s = NULL;
    DAT_TRY(stage_buffer(c, (t->nbytes + 3) / 4, &s));
    DAT_TRY(dat_tensor_read(t, s, t->nbytes));
    return c->ctx->be->copy_from_host(c->ctx, dst, s, t->nbytes);
}

/* Buffer in the kind's memory: host pointer (self, MPI) or a device pointer of
 * the communicator's context (NCCL), staged when the tensor is elsewhere. */
static dat_status to_comm_memory(dat_comm *c, dat_tensor *t, int read, void **p)
{
    if (!c->ops->device_buffers)
        return to_host(c, t, read, p);
    if (t->ctx == c->ctx) {
        *p = t->data;
        return DAT_OK;
    }
    DAT_TRY(dat_comm_dev_scratch(c, t->nbytes, p));
    return read ? to_device(c, t, *p) : DAT_OK;
}

static dat_status from_comm_memory(dat_comm *c, dat_tensor *t, void *p)
{
    if (!c->ops->device_buffers)
        return from_host(c, t, p);
    if (p == t->data)
        return DAT_OK;
    if (t->ctx->opts.device == DAT_DEVICE_CPU)
        return c->ctx->be->copy_to_host(c->ctx, t->data, p, t->nbytes);
    float *s = NULL;
    DAT_TRY(stage_buffer(c, (t->nbytes + 3) / 4, &s));
    DAT_TRY(c->ctx->be->copy_to_host(c->ctx, s, p, t->nbytes));
    return dat_tensor_write(t, s, t->nbytes);
}

void dat_comm_count_call(dat_comm *c, double t0, uint64_t sent, uint64_t received)
{
    c->stats.calls += 1;
    c->stats.bytes_sent += sent;
    c->stats.bytes_received += received;
    c->stats.seconds += dat_now() - t0;
}

uint64_t dat_comm_allreduce_bytes(const dat_comm *c, size_t n)
{
    int m = c->size, r = c->rank;
    size_t nr = dat_comm_shard_lo(n, r + 1, m) - dat_comm_shard_lo(n, r, m);
    return m > 1 ? 4 * ((uint64_t)(n - nr) + (uint64_t)(m - 1) * nr) : 0;
}

dat_status dat_comm_recorded_call(dat_comm *c, double t0, uint64_t bytes)
{
    dat_comm_count_call(c, t0, bytes, bytes);
    /* uint64 statistics, counted as their int64 twins, which have their bits */
    dat_comm_stats *st = &c->stats;
    DAT_TRY(dat_capture_counter(c->ctx, (int64_t *)&st->calls, 1, NULL));
    DAT_TRY(dat_capture_counter(c->ctx, (int64_t *)&st->bytes_sent, (int64_t)bytes, NULL));
    return dat_capture_counter(c->ctx, (int64_t *)&st->bytes_received, (int64_t)bytes, NULL);
}

/* An all-reduce in a recorded step (lib/core/capture.h): on the communicator's
 * stream between two device-side joins with the context's, without the
 * header agreement, which would read back: every rank must record the same
 * step (as every rank of an op-by-op loop calls the same collectives). */
static dat_status recorded_allreduce(dat_comm *c, dat_tensor *t, dat_reduction op)
{
    const char *f = "dat_comm_allreduce";
    if (!c->ops->allreduce_start || !c->ops->allreduce_join)
        return dat_capture_refuse(c->ctx, f, "an all-reduce of a host communicator");
    if (!t || t->ctx != c->ctx || t->dtype != DAT_FLOAT32 ||
        (op != DAT_REDUCE_SUM && op != DAT_REDUCE_MEAN))
        return dat_capture_refuse(c->ctx, f, "an all-reduce of anything but a float32 tensor "
                                  "of the communicator's context, summed or averaged,");
    double t0 = dat_now();
    size_t n = (size_t)t->numel;
    dat_status s = c->ops->allreduce_start(c, t->data, n, op);
    if (s == DAT_OK)
        s = c->ops->allreduce_join(c);
    if (s != DAT_OK)
        return dat_error_context(dat_comm_failed(c, s), f);
    return dat_comm_recorded_call(c, t0, dat_comm_allreduce_bytes(c, n));
}

dat_status dat_comm_allreduce(dat_comm *comm, dat_tensor *t, dat_reduction op)
{
    DAT_CHECK_NOT_NULL(comm);
    DAT_TRY(dat_comm_usable(comm, __func__));
    if (dat_capturing(comm->ctx))
        return recorded_allreduce(comm, t, op);
    double t0 = dat_now();
    dat_status local = DAT_OK;
    if (!t)
        local = dat_error(DAT_ERR_INVALID_ARG, __func__, "t must not be NULL");
    else if (t->dtype != DAT_FLOAT32)
        local = dat_error(DAT_ERR_INVALID_ARG, __func__, "t is %s; all-reduce takes float32",
                          dat_dtype_name(t->dtype));
    else if (op != DAT_REDUCE_SUM && op != DAT_REDUCE_MEAN)
        local = dat_error(DAT_ERR_INVALID_ARG, __func__, "op = %d is not a dat_reduction",
                          (int)op);
    void *buf = NULL;
    if (local == DAT_OK) /* staged before agreeing: a failure here reaches every rank */
        local = to_comm_memory(comm, t, 1, &buf);
    int64_t h[DAT_HDR_LEN];
    dat_comm_header(comm, h, DAT_COMM_OP_ALLREDUCE, t ? (int64_t)t->dtype : -1,
                    t ? t->numel : -1, op, local);
    DAT_TRY(dat_comm_agree(comm, __func__, h));
    size_t n = (size_t)t->numel;
    dat_status s = comm->ops->allreduce(comm, buf, n, op);
    if (s != DAT_OK)
        return dat_error_context(dat_comm_failed(comm, s), __func__);
    DAT_TRY(from_comm_memory(comm, t, buf));
    uint64_t bytes = dat_comm_allreduce_bytes(comm, n);
    dat_comm_count_call(comm, t0, bytes, bytes);
    return DAT_OK;
}

dat_status dat_comm_broadcast(dat_comm *comm, dat_tensor *t, int32_t root)
{
    DAT_CHECK_NOT_NULL(comm);
    DAT_TRY(dat_comm_usable(comm, __func__));
    double t0 = dat_now();
    dat_status local = DAT_OK;
    if (!t)
        local = dat_error(DAT_ERR_INVALID_ARG, __func__, "t must not be NULL");
    else if (root < 0 || root >= comm->size)
        local = dat_error(DAT_ERR_INVALID_ARG, __func__, "root = %d is not a rank in [0, %d)",
                          (int)root, comm->size);
    void *buf = NULL;
    if (local == DAT_OK)
        local = to_comm_memory(comm, t, comm->rank == root, &buf);
    int64_t h[DAT_HDR_LEN];
    dat_comm_header(comm, h, DAT_COMM_OP_BROADCAST, t ? (int64_t)t->dtype : -1,
                    t ? t->numel : -1, root, local);
    DAT_TRY(dat_comm_agree(comm, __func__, h));
    dat_status s = comm->ops->broadcast(comm, buf, t->nbytes, root);
    if (s != DAT_OK)
        return dat_error_context(dat_comm_failed(comm, s), __func__);
    if (comm->rank != root)
        DAT_TRY(from_comm_memory(comm, t, buf));
    uint64_t sent = comm->rank == root ? (uint64_t)(comm->size - 1) * t->nbytes : 0;
    uint64_t recv = comm->rank == root ? 0 : t->nbytes;
    dat_comm_count_call(comm, t0, sent, recv);
    return DAT_OK;
}

/* Copies in to its block (own) of the gathered buffer in the kind's memory,
 * through the host when in lives on another device than the communicator. */
static dat_status own_block(dat_comm *c, const dat_tensor *in, void *own)
{
    size_t n = in->nbytes;
    if (!c->ops->device_buffers)
        return in->ctx->opts.device == DAT_DEVICE_CPU ? (memcpy(own, in->data, n), DAT_OK)
                                                      : dat_tensor_read(in, own, n);
    if (in->ctx == c->ctx)
        return c->ctx->be->copy(c->ctx, own, in->data, n);
    return to_device(c, in, own);
}

dat_status dat_comm_allgather(dat_comm *comm, const dat_tensor *in, dat_tensor *out)
{
    DAT_CHECK_NOT_NULL(comm);
    DAT_TRY(dat_comm_usable(comm, __func__));
    double t0 = dat_now();
    dat_status local = DAT_OK;
    if (!in || !out)
        local = dat_error(DAT_ERR_INVALID_ARG, __func__, "%s must not be NULL",
                          in ? "out" : "in");
    else if (in->dtype != out->dtype)
        local = dat_error(DAT_ERR_INVALID_ARG, __func__, "dtypes differ: in is %s, out is %s",
                          dat_dtype_name(in->dtype), dat_dtype_name(out->dtype));
    else if (out->numel != in->numel * comm->size)
        local = dat_error(DAT_ERR_INVALID_ARG, __func__,
                          "out has %lld elements, expected %d ranks x %lld = %lld",
                          (long long)out->numel, comm->size, (long long)in->numel,
                          (long long)(in->numel * comm->size));
    void *buf = NULL;
    if (local == DAT_OK)
        local = to_comm_memory(comm, out, 0, &buf);
    if (local == DAT_OK)
        local = own_block(comm, in, (uint8_t *)buf + (size_t)comm->rank * in->nbytes);
    int64_t h[DAT_HDR_LEN];
    dat_comm_header(comm, h, DAT_COMM_OP_ALLGATHER, in ? (int64_t)in->dtype : -1,
                    in ? in->numel : -1, 0, local);
    DAT_TRY(dat_comm_agree(comm, __func__, h));
    size_t block = in->nbytes;
    size_t *counts = comm->tables, *displs = comm->tables + comm->size;
    for (int j = 0; j < comm->size; ++j) {
        counts[j] = block;
        displs[j] = (size_t)j * block;
    }
    dat_status s = comm->ops->allgatherv(comm, buf, counts, displs);
    if (s != DAT_OK)
        return dat_error_context(dat_comm_failed(comm, s), __func__);
    DAT_TRY(from_comm_memory(comm, out, buf));
    uint64_t bytes = (uint64_t)(comm->size - 1) * block;
    dat_comm_count_call(comm, t0, bytes, bytes);
    return DAT_OK;
}

dat_status dat_comm_allreduce_quantized(dat_comm *comm, dat_tensor *t, dat_quantizer *q,
                                        dat_quant_mode mode, uint64_t step)
{
    DAT_CHECK_NOT_NULL(comm);
    DAT_TRY(dat_comm_usable(comm, __func__));
    double t0 = dat_now();
    dat_status local = DAT_OK;
    if (!t || !q)
        local = dat_error(DAT_ERR_INVALID_ARG, __func__, "%s must not be NULL", t ? "q" : "t");
    else if (t->dtype != DAT_FLOAT32)
        local = dat_error(DAT_ERR_INVALID_ARG, __func__,
                          "t is %s; the quantized all-reduce takes float32",
                          dat_dtype_name(t->dtype));
    else if (mode != DAT_QUANT_ONE_SIDED && mode != DAT_QUANT_TWO_SIDED)
        local = dat_error(DAT_ERR_INVALID_ARG, __func__, "mode = %d is not a dat_quant_mode",
                          (int)mode);
    if (local != DAT_OK) {
        int64_t h[DAT_HDR_LEN];
        dat_comm_header(comm, h, DAT_COMM_OP_QUANTIZED, t ? (int64_t)t->dtype : -1,
                        t ? t->numel : -1, mode, local);
        return dat_comm_agree(comm, __func__, h);
    }
    float *buf;
    local = dat_quantizer_tensor_in(q, t, 1, &buf);
    if (local != DAT_OK) /* the peers learn it where they agree on their encodes */
        return dat_comm_quantized_agree(comm, __func__, DAT_COMM_OP_QUANTIZED,
                                        (size_t)t->numel, 0, q, mode, step, local);
    uint64_t sent0 = comm->stats.bytes_sent, recv0 = comm->stats.bytes_received;
    dat_status s = dat_comm_quantized(comm, __func__, buf, (size_t)t->numel, 0, q, mode, step);
    if (s != DAT_OK) {
        comm->stats.bytes_sent = sent0;
        comm->stats.bytes_received = recv0;
        return s;
    }
    DAT_TRY(dat_quantizer_tensor_out(q, t, buf));
    dat_comm_count_call(comm, t0, 0, 0);
    return DAT_OK;
}

dat_status dat_comm_unique_id(dat_comm_id *id)
{
    DAT_CHECK_NOT_NULL(id);
#if DAT_HAVE_CUDA
    return dat_comm_nccl_unique_id(id);
#else
    memset(id, 0, sizeof *id);
    return dat_error(DAT_ERR_UNSUPPORTED, __func__,
                     "this libdat was built without CUDA / NCCL (configure with -Dcuda=enabled)");
#endif
}

dat_status dat_comm_create_nccl(dat_comm **out, dat_ctx *ctx, int32_t nranks, int32_t rank,
                                const dat_comm_id *id, const dat_comm_options *opts)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(ctx);
    DAT_CHECK_NOT_NULL(id);
    dat_comm_options o;
    DAT_TRY(dat_comm_resolve_options(__func__, opts, &o));
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "rank = %d must be in [0, nranks) with nranks = %d >= 1", (int)rank,
                         (int)nranks);
#if DAT_HAVE_CUDA
    if (ctx->opts.device != DAT_DEVICE_CUDA)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "NCCL needs a CUDA context; this one computes on the CPU");
    return dat_comm_nccl_create(out, ctx, nranks, rank, id, &o);
#else
    return dat_error(DAT_ERR_UNSUPPORTED, __func__,
                     "this libdat was built without CUDA / NCCL (configure with -Dcuda=enabled)");
#endif
}
