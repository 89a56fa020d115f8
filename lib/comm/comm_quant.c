/*
 * The quantized all-reduce on a host slice, over any kind's ops.
 *
 * One-sided: every rank encodes its slice (worker stream of its rank), the
 * codes are all-gathered, every rank decodes rank 0's times 1/M, adds rank
 * 1's times 1/M, ...: identical bits everywhere.
 *
 * Two-sided: the slice's U buckets form M shards (shard j = buckets
 * floor(jU/M) .. floor((j+1)U/M) - 1). Every rank encodes its whole slice,
 * which is the shards' encodings end to end, and sends shard j's to rank j
 * (all-to-all). Rank j decodes and averages its shard as above, encodes the
 * average again (no error feedback) in place of its own shard's codes, and the
 * codes are all-gathered; every rank decodes all. The servers draw from one
 * server stream (that of rank 0, keyed by rank 0's seeds, which the headers
 * carry), each element at its own offset, so the result does not depend on
 * which rank serves an element: a slice cut at bucket boundaries gives the
 * bits of the whole (dat_grad_sync).
 *
 * Values and codes live in the memory of the quantizer's context, where its
 * backend encodes and decodes: on a CUDA context with NCCL nothing touches the
 * host. Where the communicator's kind moves another memory (MPI for a CUDA
 * context), only the codes are staged through the host.
 */
#include "comm.h"

#include <string.h>

#include "../core/backend.h"
#include "../core/error.h"
#include "../quant/quant_math.h"
#include "../quant/quantizer.h"

static void quant_header(dat_comm *c, int64_t *h, int op, size_t n, dat_quantizer *q,
                         dat_quant_mode mode, uint64_t step, dat_status local)
{
    dat_comm_header(c, h, op, DAT_FLOAT32, (int64_t)n, mode, local);
    h[DAT_HDR_BITS] = q->cfg.bits;
    h[DAT_HDR_BUCKET] = q->cfg.bucket;
    h[DAT_HDR_NORM] = q->cfg.norm;
    h[DAT_HDR_STEP] = (int64_t)step;
    dat_comm_quant_seeds(h, q);
}

void dat_comm_quant_seeds(int64_t *h, const dat_quantizer *q)
{
    h[DAT_HDR_KEY] = (int64_t)q->ctx->opts.seed;
    h[DAT_HDR_SALT] = (int64_t)q->opts.seed;
}

void dat_comm_serve_as_rank0(const dat_comm *c, dat_quantizer *q)
{
    dat_quantizer_serve_as(q, (uint64_t)c->headers[DAT_HDR_KEY],
                           (uint64_t)c->headers[DAT_HDR_SALT]);
}

/* Where q's codes live against what the kind moves: host codes go through the
 * generic layer, which stages them for a device kind; device codes in the
 * kind's own memory go to its ops; device codes elsewhere go through the host. */
enum { CODES_ON_HOST, CODES_IN_KIND, CODES_ELSEWHERE };

static int codes_place(const dat_comm *c, const dat_quantizer *q)
{
    if (q->exec->opts.device == DAT_DEVICE_CPU)
        return CODES_ON_HOST;
    return c->ops->device_buffers && q->exec == c->ctx ? CODES_IN_KIND : CODES_ELSEWHERE;
}

/* All-gather of blocks of a buffer in q's memory. */
static dat_status codes_allgatherv(dat_comm *c, dat_quantizer *q, void *buf, const size_t *counts,
                                   const size_t *displs, size_t total)
{
    int place = codes_place(c, q);
    if (place == CODES_ON_HOST)
        return dat_comm_host_allgatherv(c, buf, counts, displs, total);
    if (place == CODES_IN_KIND)
        return c->ops->allgatherv(c, buf, counts, displs);
    uint8_t *h;
    DAT_TRY(dat_comm_scratch(c, total, &h));
    DAT_TRY(q->exec->be->copy_to_host(q->exec, h, buf, total));
    DAT_TRY(dat_comm_host_allgatherv(c, h, counts, displs, total));
    return q->exec->be->copy_from_host(q->exec, buf, h, total);
}

/* All-to-all of blocks of buffers in q's memory. */
static dat_status codes_alltoallv(dat_comm *c, dat_quantizer *q, const void *send,
                                  const size_t *scounts, const size_t *sdispls, size_t stotal,
                                  void *recv, const size_t *rcounts, const size_t *rdispls,
                                  size_t rtotal)
{
    int place = codes_place(c, q);
    if (place == CODES_ON_HOST)
        return dat_comm_host_alltoallv(c, send, scounts, sdispls, stotal, recv, rcounts, rdispls,
                                       rtotal);
    if (place == CODES_IN_KIND)
        return c->ops->alltoallv(c, send, scounts, sdispls, recv, rcounts, rdispls);
    size_t soff = (stotal + 63) & ~(size_t)63;
    uint8_t *h;
    DAT_TRY(dat_comm_scratch(c, soff + rtotal, &h));
    DAT_TRY(q->exec->be->copy_to_host(q->exec, h, send, stotal));
    DAT_TRY(dat_comm_host_alltoallv(c, h, scounts, sdispls, stotal, h + soff, rcounts, rdispls,
                                    rtotal));
    return q->exec->be->copy_from_host(q->exec, recv, h + soff, rtotal);
}

/* Allocates before the ranks agree what exchanging up to `bytes` of codes
 * stages (a bound of what codes_allgatherv and codes_alltoallv take): a rank
 * that cannot allocate says so in the agreement instead of failing alone
 * inside the collective while its peers wait for it. */
static dat_status codes_reserve(dat_comm *c, dat_quantizer *q, size_t bytes)
{
    int place = codes_place(c, q);
    if (c->size == 1 || place == CODES_IN_KIND)
        return DAT_OK;
    if (place == CODES_ELSEWHERE) {
        uint8_t *h;
        DAT_TRY(dat_comm_scratch(c, bytes, &h));
    }
    if (c->ops->device_buffers) {
        void *d;
        DAT_TRY(dat_comm_dev_scratch(c, bytes, &d));
    }
    return DAT_OK;
}

dat_status dat_comm_quantized_agree(dat_comm *c, const char *func, int op, size_t n,
                                    uint64_t offset, dat_quantizer *q, dat_quant_mode mode,
                                    uint64_t step, dat_status local)
{
    int64_t h[DAT_HDR_LEN];
    quant_header(c, h, op, n, q, mode, step, local);
    dat_status s = dat_comm_agree(c, func, h);
    if (s != DAT_OK) { /* no rank applies the codes (a failed encode forgot already) */
        dat_quantizer_forget(q, offset, n);
        return s;
    }
    dat_comm_serve_as_rank0(c, q);
    return DAT_OK;
}

/* Each rank's codes scaled by 1/M before they are added: a sum of M decodes,
 * each up to the bucket's norm, would overflow long before the mean does. */
dat_status dat_comm_decode_average(dat_quantizer *q, const uint8_t *codes, const size_t *displs,
                                   int m, size_t n, float *x)
{
    float inv = 1.0f / (float)m;
    for (int j = 0; j < m; ++j)
        DAT_TRY(dat_quantizer_decode_slice(q, codes + displs[j], n, x, j > 0, inv));
    return DAT_OK;
}

static dat_status one_sided(dat_comm *c, const char *func, float *x, size_t n, uint64_t offset,
                            dat_quantizer *q, uint64_t step)
{
    int m = c->size, r = c->rank;
    size_t e = dat_quant_encoded_bytes(&q->cfg, n);
    size_t stride = (e + 63) & ~(size_t)63; /* keep every block aligned */
    uint8_t *buf = NULL;
    dat_status local = dat_quantizer_scratch(q, DAT_QSCRATCH_CODES, stride * (size_t)m,
                                             (void **)&buf);
    if (local == DAT_OK)
        local = codes_reserve(c, q, stride * (size_t)m);
    if (local == DAT_OK)
        local = dat_quantizer_encode_slice(q, func, x, n, offset, (uint32_t)r, step,
                                           DAT_QUANT_PHASE_WORKER, 1, buf + (size_t)r * stride);
    DAT_TRY(dat_comm_quantized_agree(c, func, DAT_COMM_OP_QUANTIZED, n, offset, q,
                                     DAT_QUANT_ONE_SIDED, step, local));
    size_t *counts = c->tables, *displs = c->tables + m;
    for (int j = 0; j < m; ++j) {
        counts[j] = e;
        displs[j] = (size_t)j * stride;
    }
    if (m > 1) {
        dat_status s = codes_allgatherv(c, q, buf, counts, displs, stride * (size_t)m);
        if (s != DAT_OK)
            return dat_error_context(dat_comm_failed(c, s), func);
    }
    DAT_TRY(dat_comm_decode_average(q, buf, displs, m, n, x));
    c->stats.bytes_sent += (uint64_t)(m - 1) * e;
    c->stats.bytes_received += (uint64_t)(m - 1) * e;
    return DAT_OK;
}

static dat_status two_sided(dat_comm *c, const char *func, float *x, size_t n, uint64_t offset,
                            dat_quantizer *q, uint64_t step)
{
    int m = c->size, r = c->rank;
    size_t bucket = (size_t)q->cfg.bucket, units = (n + bucket - 1) / bucket;
    size_t *scounts = c->tables, *sdispls = c->tables + m, *rcounts = c->tables + 2 * m,
           *rdispls = c->tables + 3 * m;
    size_t stotal = 0, lo_r = 0, n_r = 0;
    for (int j = 0; j < m; ++j) {
        size_t lo = dat_comm_shard_lo(units, j, m) * bucket;
        size_t hi = dat_comm_shard_lo(units, j + 1, m) * bucket;
        lo = lo < n ? lo : n;
        hi = hi < n ? hi : n;
        scounts[j] = dat_quant_encoded_bytes(&q->cfg, hi - lo);
        sdispls[j] = stotal;
        stotal += scounts[j];
        if (j == r) {
            lo_r = lo;
            n_r = hi - lo;
        }
    }
    size_t e_r = scounts[r], rstride = (e_r + 63) & ~(size_t)63;
    size_t soff = (stotal + 63) & ~(size_t)63;
    for (int j = 0; j < m; ++j) {
        rcounts[j] = e_r;
        rdispls[j] = (size_t)j * rstride;
    }
    uint8_t *buf = NULL;
    size_t codes = soff + rstride * (size_t)m;
    dat_status local = dat_quantizer_scratch(q, DAT_QSCRATCH_CODES, codes, (void **)&buf);
    if (local == DAT_OK) /* the host all-to-all aligns to 256 where this aligns to 64 */
        local = codes_reserve(c, q, codes + 256);

    /* Phase 1: the workers' codes of every shard, to the shard's server. */
    if (local == DAT_OK)
        local = dat_quantizer_encode_slice(q, func, x, n, offset, (uint32_t)r, step,
                                           DAT_QUANT_PHASE_WORKER, 1, buf);
    DAT_TRY(dat_comm_quantized_agree(c, func, DAT_COMM_OP_QUANTIZED, n, offset, q,
                                     DAT_QUANT_TWO_SIDED, step, local));
    uint8_t *send = buf, *recv = buf + soff;
    dat_status s = m > 1 ? codes_alltoallv(c, q, send, scounts, sdispls, stotal, recv, rcounts,
                                           rdispls, rstride * (size_t)m)
                         : q->exec->be->copy(q->exec, recv, send, e_r);
    if (s != DAT_OK)
        return dat_error_context(dat_comm_failed(c, s), func);
    DAT_TRY(dat_comm_decode_average(q, recv, rdispls, m, n_r, x + lo_r));

    /* Phase 2: the server's codes of its average, to everyone. */
    local = dat_quantizer_encode_slice(q, func, x + lo_r, n_r, offset + lo_r, 0, step,
                                       DAT_QUANT_PHASE_SERVER, 0, send + sdispls[r]);
    DAT_TRY(dat_comm_quantized_agree(c, func, DAT_COMM_OP_QUANTIZED_SERVE, n, offset, q,
                                     DAT_QUANT_TWO_SIDED, step, local));
    if (m > 1) {
        s = codes_allgatherv(c, q, send, scounts, sdispls, stotal);
        if (s != DAT_OK)
            return dat_error_context(dat_comm_failed(c, s), func);
    }
    DAT_TRY(dat_quantizer_decode_slice(q, send, n, x, 0, 1.0f));
    uint64_t bytes = (uint64_t)(stotal - e_r) + (uint64_t)(m - 1) * e_r;
    c->stats.bytes_sent += bytes;
    c->stats.bytes_received += bytes;
    return DAT_OK;
}

dat_status dat_comm_quantized(dat_comm *c, const char *func, float *x, size_t n,
                                   uint64_t offset, dat_quantizer *q, dat_quant_mode mode,
                                   uint64_t step)
{
    if (mode == DAT_QUANT_ONE_SIDED)
        return one_sided(c, func, x, n, offset, q, step);
    return two_sided(c, func, x, n, offset, q, step);
}
