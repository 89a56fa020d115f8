/*
 * A gradient synchronizer's quantized buckets on the communicator's stream
 * (sync_codes.h).
 */
#include "sync_codes.h"

#include <stdlib.h>

#include "../core/backend.h"
#include "../core/capture.h"
#include "../core/error.h"
#include "../quant/quant_math.h"

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)

static size_t bytes_of(const dat_sync_codes *sc, size_t n)
{
    return dat_quant_encoded_bytes(&sc->q->cfg, n);
}

/* Shard k of the bucket [lo, lo + n): whole quantizer buckets, as
 * dat_comm_quantized cuts a slice. */
static void shard(const dat_sync_codes *sc, size_t lo, size_t n, int k, size_t *s_lo,
                  size_t *s_n)
{
    size_t qb = (size_t)sc->q->cfg.bucket, units = (n + qb - 1) / qb;
    int m = sc->comm->size;
    size_t a = dat_comm_shard_lo(units, k, m) * qb, b = dat_comm_shard_lo(units, k + 1, m) * qb;
    a = a < n ? a : n;
    b = b < n ? b : n;
    *s_lo = lo + a;
    *s_n = b - a;
}

int dat_sync_codes_possible(const dat_comm *c, const dat_ctx *ctx, const dat_quantizer *q)
{
    return c->ops->device_buffers && q->exec == ctx && c->ctx == ctx &&
           ctx->be->quant_encode_deferred && c->ops->allgatherv_start &&
           c->ops->alltoallv_start;
}

dat_status dat_sync_codes_init(dat_sync_codes *sc, dat_ctx *ctx, size_t buckets)
{
    sc->buckets = buckets;
    size_t b = buckets;
    sc->status_host = malloc(b * sizeof *sc->status_host);
    sc->recv_at = malloc(b * sizeof *sc->recv_at);
    sc->recv_stride = malloc(b * sizeof *sc->recv_stride);
    if (!sc->status_host || !sc->recv_at || !sc->recv_stride)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_grad_sync_create",
                         "cannot allocate the buckets' tables");
    /* 2 b statuses (workers', servers'), the step, the ranks' flags summed */
    size_t bytes = 2 * b * sizeof *sc->status + sizeof *sc->step_at + sizeof *sc->flag;
    DAT_TRY(ctx->be->alloc(ctx, bytes, (void **)&sc->status));
    sc->step_at = (uint64_t *)(sc->status + 2 * b);
    sc->flag = (float *)(sc->step_at + 1);
    return DAT_OK;
}

dat_status dat_sync_codes_prepare(dat_sync_codes *sc, dat_comm *c, dat_quantizer *q,
                                  dat_quant_mode mode, size_t total, size_t bucket)
{
    sc->comm = c;
    sc->q = q;
    sc->mode = mode;
    sc->total = total;
    sc->bucket = bucket;
    sc->recorded = dat_capturing(q->exec);
    DAT_TRY(dat_quantizer_reserve(q, total));
    int m = c->size;
    sc->stride = ALIGN64(bytes_of(sc, total));
    size_t need = sc->stride * (size_t)m;
    if (mode == DAT_QUANT_TWO_SIDED) {
        need = sc->stride;
        for (size_t j = 0; j < sc->buckets; ++j) {
            size_t lo, n, s_lo, s_n;
            dat_bucket_range(sc->total, sc->bucket, j, &lo, &n);
            shard(sc, lo, n, c->rank, &s_lo, &s_n);
            sc->recv_at[j] = need;
            sc->recv_stride[j] = ALIGN64(bytes_of(sc, s_n));
            need += sc->recv_stride[j] * (size_t)m;
        }
    }
    return dat_quantizer_scratch(q, DAT_QSCRATCH_CODES, need, (void **)&sc->codes);
}

dat_status dat_sync_codes_start(dat_sync_codes *sc, size_t j, size_t lo, size_t n,
                                const float *grads, uint64_t step)
{
    dat_comm *c = sc->comm;
    int m = c->size, r = c->rank;
    size_t at = bytes_of(sc, lo);
    int one = sc->mode == DAT_QUANT_ONE_SIDED;
    uint8_t *mine = sc->codes + (one ? (size_t)r * sc->stride : 0) + at;
    DAT_TRY(dat_quantizer_encode_slice_deferred(sc->q, grads + lo, n, lo, (uint32_t)r, step,
                                                sc->recorded ? sc->step_at : NULL,
                                                DAT_QUANT_PHASE_WORKER, 1, mine, &sc->status[j]));
    size_t *counts = c->tables, *displs = c->tables + m;
    if (one) {
        for (int k = 0; k < m; ++k) {
            counts[k] = bytes_of(sc, n);
            displs[k] = (size_t)k * sc->stride + at;
        }
        return c->ops->allgatherv_start(c, sc->codes, counts, displs);
    }
    size_t *rcounts = c->tables + 2 * m, *rdispls = c->tables + 3 * m, s_lo, s_n, my_n;
    shard(sc, lo, n, r, &s_lo, &my_n);
    for (int k = 0; k < m; ++k) {
        shard(sc, lo, n, k, &s_lo, &s_n);
        counts[k] = bytes_of(sc, s_n);
        displs[k] = bytes_of(sc, s_lo);
        rcounts[k] = bytes_of(sc, my_n);
        rdispls[k] = sc->recv_at[j] + (size_t)k * sc->recv_stride[j];
    }
    return c->ops->alltoallv_start(c, sc->codes, counts, displs, sc->codes, rcounts, rdispls);
}

/* This rank's payload of a step, each way: one-sided, its codes to every
 * other rank; two-sided, a worker's shards to their servers, then the served
 * shard to every other rank (as dat_comm_quantized counts). */
static uint64_t payload_bytes(const dat_sync_codes *sc)
{
    int m = sc->comm->size;
    if (sc->mode == DAT_QUANT_ONE_SIDED)
        return (uint64_t)(m - 1) * bytes_of(sc, sc->total);
    uint64_t bytes = 0;
    for (size_t j = 0; j < sc->buckets; ++j) {
        size_t lo, n, s_lo, s_n;
        dat_bucket_range(sc->total, sc->bucket, j, &lo, &n);
        shard(sc, lo, n, sc->comm->rank, &s_lo, &s_n);
        size_t e_r = bytes_of(sc, s_n);
        bytes += (uint64_t)(bytes_of(sc, n) - e_r) + (uint64_t)(m - 1) * e_r;
    }
    return bytes;
}

/* Two-sided: the mean of the ranks' codes of this rank's shard of bucket j,
 * into grads. */
static dat_status average_shard(dat_sync_codes *sc, size_t j, float *grads, size_t *s_lo,
                                size_t *s_n)
{
    dat_comm *c = sc->comm;
    size_t lo, n, *displs = c->tables + c->size;
    dat_bucket_range(sc->total, sc->bucket, j, &lo, &n);
    shard(sc, lo, n, c->rank, s_lo, s_n);
    for (int k = 0; k < c->size; ++k)
        displs[k] = sc->recv_at[j] + (size_t)k * sc->recv_stride[j];
    return dat_comm_decode_average(sc->q, sc->codes, displs, c->size, *s_n, grads + *s_lo);
}

/* Two-sided: every rank's served shards of every bucket all-gathered (in
 * place of the workers' codes) on the communicator's stream. */
static dat_status gather_served(dat_sync_codes *sc)
{
    dat_comm *c = sc->comm;
    int m = c->size;
    size_t *counts = c->tables, *displs = c->tables + m;
    for (size_t j = 0; j < sc->buckets; ++j) {
        size_t lo, n, s_lo, s_n;
        dat_bucket_range(sc->total, sc->bucket, j, &lo, &n);
        for (int k = 0; k < m; ++k) {
            shard(sc, lo, n, k, &s_lo, &s_n);
            counts[k] = bytes_of(sc, s_n);
            displs[k] = bytes_of(sc, s_lo);
        }
        DAT_TRY(dat_comm_failed(c, c->ops->allgatherv_start(c, sc->codes, counts, displs)));
    }
    return DAT_OK;
}

/* Two-sided, after the exchange of the workers' codes: this rank serves its
 * shard of every bucket (the mean of the ranks' codes, encoded again in place
 * of its own codes of the shard), the ranks agree on the servers' encodes,
 * and the served codes are all-gathered and decoded. */
static dat_status serve(dat_sync_codes *sc, const char *func, float *grads, uint64_t step)
{
    dat_comm *c = sc->comm;
    dat_status local = DAT_OK;
    for (size_t j = 0; j < sc->buckets; ++j) {
        size_t s_lo, s_n;
        DAT_TRY(average_shard(sc, j, grads, &s_lo, &s_n));
        if (local == DAT_OK)
            local = dat_quantizer_encode_slice(sc->q, func, grads + s_lo, s_n, s_lo, 0, step,
                                               DAT_QUANT_PHASE_SERVER, 0,
                                               sc->codes + bytes_of(sc, s_lo));
    }
    DAT_TRY(dat_comm_quantized_agree(c, func, DAT_COMM_OP_QUANTIZED_SERVE, sc->total, 0, sc->q,
                                     sc->mode, step, local));
    DAT_TRY(gather_served(sc));
    DAT_TRY(dat_comm_failed(c, c->ops->allreduce_finish(c)));
    return dat_quantizer_decode_slice(sc->q, sc->codes, sc->total, grads, 0, 1.0f);
}

/* The mean of every rank's codes of the whole gradient (one-sided). */
static dat_status decode_all(dat_sync_codes *sc, float *grads)
{
    dat_comm *c = sc->comm;
    size_t *displs = c->tables + c->size;
    for (int k = 0; k < c->size; ++k)
        displs[k] = (size_t)k * sc->stride;
    return dat_comm_decode_average(sc->q, sc->codes, displs, c->size, sc->total, grads);
}

/* finish in a recording: the servers encode deferred (step read on the
 * device), the ranks sum their flags of failed encodes on the
 * communicator's stream, and a failure on any rank leaves NaN everywhere. */
static dat_status finish_recorded(dat_sync_codes *sc, float *grads)
{
    dat_comm *c = sc->comm;
    dat_ctx *ctx = sc->q->exec;
    size_t b = sc->buckets, statuses = b;
    if (sc->mode == DAT_QUANT_TWO_SIDED) {
        for (size_t j = 0; j < b; ++j) {
            size_t s_lo, s_n;
            DAT_TRY(average_shard(sc, j, grads, &s_lo, &s_n));
            DAT_TRY(dat_quantizer_encode_slice_deferred(
                sc->q, grads + s_lo, s_n, s_lo, 0, 0, sc->step_at, DAT_QUANT_PHASE_SERVER, 0,
                sc->codes + bytes_of(sc, s_lo), &sc->status[b + j]));
        }
        statuses = 2 * b;
    }
    DAT_TRY(DAT_OP(ctx, quant_flag_failed, sc->status, statuses, sc->flag));
    DAT_TRY(dat_comm_failed(c, c->ops->allreduce_start(c, sc->flag, 1, DAT_REDUCE_SUM)));
    if (sc->mode == DAT_QUANT_TWO_SIDED)
        DAT_TRY(gather_served(sc));
    DAT_TRY(dat_comm_failed(c, c->ops->allreduce_join(c)));
    DAT_TRY(sc->mode == DAT_QUANT_TWO_SIDED
                ? dat_quantizer_decode_slice(sc->q, sc->codes, sc->total, grads, 0, 1.0f)
                : decode_all(sc, grads));
    return dat_quantizer_recorded_outcome(sc->q, sc->flag, grads, sc->total,
                                          DAT_FAULT_QUANTIZE);
}

dat_status dat_sync_codes_finish(dat_sync_codes *sc, float *grads, uint64_t step,
                                 uint64_t *bytes)
{
    const char *func = "dat_grad_sync_end";
    *bytes += payload_bytes(sc);
    if (sc->recorded)
        return finish_recorded(sc, grads);
    dat_ctx *ctx = sc->q->exec;
    size_t b = sc->buckets;
    DAT_TRY(ctx->be->copy_to_host(ctx, sc->status_host, sc->status, b * sizeof *sc->status));
    dat_status local =
        dat_quantizer_deferred_outcome(sc->q, func, sc->status_host, b, sc->bucket, sc->total);
    DAT_TRY(dat_comm_quantized_agree(sc->comm, func, DAT_COMM_OP_QUANTIZED, sc->total, 0, sc->q,
                                     sc->mode, step, local));
    return sc->mode == DAT_QUANT_TWO_SIDED ? serve(sc, func, grads, step)
                                           : decode_all(sc, grads);
}

void dat_sync_codes_free(dat_sync_codes *sc, dat_ctx *ctx)
{
    if (sc->status)
        ctx->be->free(ctx, sc->status);
    free(sc->status_host);
    free(sc->recv_at);
    free(sc->recv_stride);
}
