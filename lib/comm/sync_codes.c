/*
 * A gradient synchronizer's quantized buckets on the communicator's stream
 * (sync_codes.h).
 */
#include "sync_codes.h"

#include <stdlib.h>

#include "../core/backend.h"
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

static void bucket_range(const dat_sync_codes *sc, size_t j, size_t *lo, size_t *n)
{
    *lo = j * sc->bucket;
    *n = sc->total - *lo < sc->bucket ? sc->total - *lo : sc->bucket;
}

int dat_sync_codes_possible(const dat_comm *c, const dat_ctx *ctx, const dat_quantizer *q)
{
    return c->ops->device_buffers && q->exec == ctx && c->ctx == ctx &&
           ctx->be->quant_encode_deferred && c->ops->allgatherv_start &&
           c->ops->alltoallv_start;
}

/* The per-bucket tables, once (the bucket count of a synchronizer is fixed). */
static dat_status tables(dat_sync_codes *sc, dat_ctx *ctx)
{
    if (sc->status)
        return DAT_OK;
    size_t b = sc->buckets;
    sc->status_host = malloc(b * sizeof *sc->status_host);
    sc->recv_at = malloc(b * sizeof *sc->recv_at);
    sc->recv_stride = malloc(b * sizeof *sc->recv_stride);
    if (!sc->status_host || !sc->recv_at || !sc->recv_stride)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_grad_sync_begin",
                         "cannot allocate the buckets' tables");
    return ctx->be->alloc(ctx, b * sizeof *sc->status, (void **)&sc->status);
}

dat_status dat_sync_codes_prepare(dat_sync_codes *sc, dat_comm *c, dat_quantizer *q,
                                  dat_quant_mode mode, size_t total, size_t bucket)
{
    sc->comm = c;
    sc->q = q;
    sc->mode = mode;
    sc->total = total;
    sc->bucket = bucket;
    sc->buckets = (total + bucket - 1) / bucket;
    DAT_TRY(tables(sc, q->exec));
    int m = c->size;
    sc->stride = ALIGN64(bytes_of(sc, total));
    size_t need = sc->stride * (size_t)m;
    if (mode == DAT_QUANT_TWO_SIDED) {
        need = sc->stride;
        for (size_t j = 0; j < sc->buckets; ++j) {
            size_t lo, n, s_lo, s_n;
            bucket_range(sc, j, &lo, &n);
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
    DAT_TRY(dat_quantizer_encode_slice_deferred(sc->q, grads + lo, n, lo, (uint32_t)r, step, 1,
                                                mine, &sc->status[j]));
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

/* Two-sided, after the exchange of the workers' codes: this rank serves its
 * shard of every bucket (the mean of the ranks' codes, encoded again in place
 * of its own codes of the shard), the ranks agree on the servers' encodes,
 * and the served codes are all-gathered and decoded. */
static dat_status serve(dat_sync_codes *sc, const char *func, float *grads, uint64_t step,
                        uint64_t *bytes)
{
    dat_comm *c = sc->comm;
    int m = c->size, r = c->rank;
    size_t *counts = c->tables, *displs = c->tables + m;
    dat_status local = DAT_OK;
    for (size_t j = 0; j < sc->buckets; ++j) {
        size_t lo, n, s_lo, s_n;
        bucket_range(sc, j, &lo, &n);
        shard(sc, lo, n, r, &s_lo, &s_n);
        for (int k = 0; k < m; ++k)
            displs[k] = sc->recv_at[j] + (size_t)k * sc->recv_stride[j];
        DAT_TRY(dat_comm_decode_average(sc->q, sc->codes, displs, m, s_n, grads + s_lo));
        if (local == DAT_OK)
            local = dat_quantizer_encode_slice(sc->q, func, grads + s_lo, s_n, s_lo, 0, step,
                                               DAT_QUANT_PHASE_SERVER, 0,
                                               sc->codes + bytes_of(sc, s_lo));
        size_t e_r = bytes_of(sc, s_n);
        *bytes += (uint64_t)(bytes_of(sc, n) - e_r) + (uint64_t)(m - 1) * e_r;
    }
    DAT_TRY(dat_comm_quantized_agree(c, func, DAT_COMM_OP_QUANTIZED_SERVE, sc->total, sc->q,
                                     sc->mode, step, local));
    for (size_t j = 0; j < sc->buckets; ++j) {
        size_t lo, n, s_lo, s_n;
        bucket_range(sc, j, &lo, &n);
        for (int k = 0; k < m; ++k) {
            shard(sc, lo, n, k, &s_lo, &s_n);
            counts[k] = bytes_of(sc, s_n);
            displs[k] = bytes_of(sc, s_lo);
        }
        DAT_TRY(dat_comm_failed(c, c->ops->allgatherv_start(c, sc->codes, counts, displs)));
    }
    DAT_TRY(dat_comm_failed(c, c->ops->allreduce_finish(c)));
    return dat_quantizer_decode_slice(sc->q, sc->codes, sc->total, grads, 0, 1.0f);
}

dat_status dat_sync_codes_finish(dat_sync_codes *sc, float *grads, uint64_t step,
                                 uint64_t *bytes)
{
    const char *func = "dat_grad_sync_end";
    dat_comm *c = sc->comm;
    dat_ctx *ctx = sc->q->exec;
    size_t b = sc->buckets;
    DAT_TRY(ctx->be->copy_to_host(ctx, sc->status_host, sc->status, b * sizeof *sc->status));
    dat_status local =
        dat_quantizer_deferred_outcome(sc->q, func, sc->status_host, b, sc->bucket, sc->total);
    DAT_TRY(dat_comm_quantized_agree(c, func, DAT_COMM_OP_QUANTIZED, sc->total, sc->q, sc->mode,
                                     step, local));
    if (sc->mode == DAT_QUANT_TWO_SIDED)
        return serve(sc, func, grads, step, bytes);
    size_t *displs = c->tables + c->size;
    for (int k = 0; k < c->size; ++k)
        displs[k] = (size_t)k * sc->stride;
    DAT_TRY(dat_comm_decode_average(sc->q, sc->codes, displs, c->size, sc->total, grads));
    *bytes += (uint64_t)(c->size - 1) * bytes_of(sc, sc->total);
    return DAT_OK;
}

void dat_sync_codes_free(dat_sync_codes *sc, dat_ctx *ctx)
{
    if (sc->status)
        ctx->be->free(ctx, sc->status);
    free(sc->status_host);
    free(sc->recv_at);
    free(sc->recv_stride);
}
