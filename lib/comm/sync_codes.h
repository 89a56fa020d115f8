/*
 * The quantized buckets of a gradient synchronizer on a device
 * communicator's stream (grad_sync.c): during the backward pass each bucket
 * is encoded on the context's stream without a read-back (the backend's
 * quant_encode_deferred; its status stays on the device) and its codes move
 * on the communicator's stream: all-gathered (one-sided), or its shards sent
 * to their servers (two-sided, allgatherv_start / alltoallv_start). At the
 * end the statuses are read once and the ranks agree on them; one-sided
 * then decodes the mean of every rank's codes, two-sided has each server
 * average its shards, encode them again and all-gather the result, as
 * dat_comm_quantized does for the whole gradient.
 *
 * The bits are those of dat_comm_allreduce_grads with the same quantizer,
 * mode and step: the buckets are whole quantizer buckets, every element
 * draws at its own offset, and a server's draws do not depend on which rank
 * serves.
 *
 * In a recorded step (lib/core/capture.h) nothing is read back: the encodes
 * read the step from a word each replay sets, the servers' encodes are
 * deferred too, and the ranks agree by summing, on the communicator's
 * stream, a flag of whether any of their encodes failed; a failure leaves
 * NaN in the gradient on every rank (dat_quantizer_recorded_outcome) and,
 * as op by op, zeroes every rank's residual.
 */
#ifndef LIBDAT_COMM_SYNC_CODES_H
#define LIBDAT_COMM_SYNC_CODES_H

#include "../quant/quantizer.h"
#include "comm.h"

/* Bucket j of a gradient of `total` elements cut in buckets of `bucket`: its first
 * element and its length (the last bucket may be shorter). */
static inline void dat_bucket_range(size_t total, size_t bucket, size_t j, size_t *lo, size_t *n)
{
    *lo = j * bucket;
    *n = total - *lo < bucket ? total - *lo : bucket;
}

typedef struct dat_sync_codes {
    dat_comm *comm;
    dat_quantizer *q;
    dat_quant_mode mode;
    size_t total, bucket; /* gradient elements; elements per synchronizer bucket */
    size_t buckets;
    /* In q's memory (its code scratch, shared with its other collectives):
     * one-sided, every rank's codes of the whole gradient, rank j's at
     * j * stride; two-sided, this rank's codes of the whole gradient at 0,
     * then per bucket k the ranks' codes of this rank's shard of it, rank j's
     * at recv_at[k] + j * recv_stride[k]. */
    uint8_t *codes;
    size_t stride;
    size_t *recv_at, *recv_stride;
    /* Each bucket's encode, then (two-sided, recorded) each served shard's:
     * the outcome on the device and, read back, here. */
    dat_quant_status *status, *status_host;
    /* In a recording: the step (set before each replay), then the flag, the
     * ranks' count of failed encodes, in the context's memory after the
     * statuses. */
    int recorded;
    uint64_t *step_at;
    float *flag;
} dat_sync_codes;

/* Whether a synchronizer of model context ctx over c can keep q's buckets
 * on the stream. */
int dat_sync_codes_possible(const dat_comm *c, const dat_ctx *ctx, const dat_quantizer *q);

/* The per-bucket tables of a synchronizer of `buckets` buckets, in ctx's
 * memory and the host's (at its creation: a recording cannot allocate). */
dat_status dat_sync_codes_init(dat_sync_codes *sc, dat_ctx *ctx, size_t buckets);

/* Sizes the buffers for a step (in begin: nothing is allocated during the
 * backward pass), which is recorded if q's context is recording. */
dat_status dat_sync_codes_prepare(dat_sync_codes *sc, dat_comm *c, dat_quantizer *q,
                                  dat_quant_mode mode, size_t total, size_t bucket);

/* Bucket j, elements [lo, lo + n) of grads (q's memory): encoded and sent. */
dat_status dat_sync_codes_start(dat_sync_codes *sc, size_t j, size_t lo, size_t n,
                                const float *grads, uint64_t step);

/* After every bucket was started and the communicator's stream finished
 * (recorded: joined): agrees on the outcome, leaves the mean in grads and
 * adds this rank's payload bytes (each way) to *bytes. */
dat_status dat_sync_codes_finish(dat_sync_codes *sc, float *grads, uint64_t step,
                                 uint64_t *bytes);

void dat_sync_codes_free(dat_sync_codes *sc, dat_ctx *ctx);

#endif
