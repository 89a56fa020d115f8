/*
 * The communicator as libdat sees it inside: one struct of function
 * pointers per kind (self, MPI, NCCL) under a generic layer (comm.c) that
 * checks arguments, agrees on headers, stages tensors between host and
 * device, runs the quantized algorithms (comm_quant.c) and keeps statistics.
 *
 * The ops move raw buffers in the kind's memory (host for self / MPI, the
 * context's device for NCCL). They return DAT_ERR_TIMEOUT when peers do not
 * answer within comm->timeout_s and DAT_ERR_COMM for transport errors; the
 * generic layer then marks the communicator broken.
 */
#ifndef LIBDAT_COMM_COMM_H
#define LIBDAT_COMM_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "../core/ctx.h"
#include "libdat/dat_comm.h"

/* Fields of the header every rank contributes before a collective. */
enum {
    DAT_HDR_SEQ,
    DAT_HDR_OP,
    DAT_HDR_DTYPE,
    DAT_HDR_COUNT,
    DAT_HDR_ARG,    /* reduce op, root or quantized mode */
    DAT_HDR_BITS,
    DAT_HDR_BUCKET,
    DAT_HDR_NORM,
    DAT_HDR_STEP,
    DAT_HDR_STATUS, /* this rank's local status (argument checks, encode) */
    /* Not agreed on: the quantizer's Philox key and salt, rank 0's of which
     * key the servers' draws (dat_comm_quant_seeds) */
    DAT_HDR_KEY,
    DAT_HDR_SALT,
    DAT_HDR_LEN
};

/* Operation codes in the headers. */
enum {
    DAT_COMM_OP_ALLREDUCE = 1,
    DAT_COMM_OP_BROADCAST,
    DAT_COMM_OP_ALLGATHER,
    DAT_COMM_OP_QUANTIZED,      /* first phase: the workers' codes */
    DAT_COMM_OP_QUANTIZED_SERVE, /* two-sided second phase: the servers' codes */
    DAT_COMM_OP_GRAD_SYNC       /* a dat_grad_sync's plan, agreed in its begin */
};

typedef struct dat_comm_ops {
    const char *name;
    int device_buffers; /* 1: buffers given to the ops are device memory of comm->ctx */
    void (*destroy)(dat_comm *c);
    /* Gathers DAT_HDR_LEN int64 of every rank into all (rank-major); host memory. */
    dat_status (*exchange_header)(dat_comm *c, const int64_t *mine, int64_t *all);
    /* In place; every rank ends with identical bits. */
    dat_status (*allreduce)(dat_comm *c, float *buf, size_t n, dat_reduction op);
    dat_status (*broadcast)(dat_comm *c, void *buf, size_t bytes, int root);
    /* In place: block j (counts[j] bytes at displs[j]) comes from rank j; this
     * rank's block is already there. */
    dat_status (*allgatherv)(dat_comm *c, void *buf, const size_t *counts,
                             const size_t *displs);
    /* Block j of send (scounts[j] bytes at sdispls[j]) goes to rank j, which
     * stores it at rdispls[this rank] of its recv; the own block is copied. */
    dat_status (*alltoallv)(dat_comm *c, const void *send, const size_t *scounts,
                            const size_t *sdispls, void *recv, const size_t *rcounts,
                            const size_t *rdispls);
    /* Tears down without waiting for peers (after a failure). */
    void (*abort)(dat_comm *c);
    /* Optional (NULL where the kind has none; a device kind's): the exact
     * all-reduce of buf queued behind the work already queued on the context's
     * stream, returning at once (a dat_grad_sync's buckets during the
     * backward pass); every rank starts the same ones in the same order.
     * allreduce_finish waits for all those started (all-gathers and all-to-alls included). */
    dat_status (*allreduce_start)(dat_comm *c, float *buf, size_t n, dat_reduction op);
    dat_status (*allreduce_finish)(dat_comm *c);
    /* Optional: the context's stream waits on the device (not the host) for
     * the all-reduces started; what a recorded step does (lib/core/capture.h). */
    dat_status (*allreduce_join)(dat_comm *c);
    /* Optional: allgatherv queued as allreduce_start is (a quantized
     * synchronizer's buckets of codes); allreduce_finish waits for it. */
    dat_status (*allgatherv_start)(dat_comm *c, void *buf, const size_t *counts,
                                   const size_t *displs);
    /* Optional: alltoallv queued the same way. */
    dat_status (*alltoallv_start)(dat_comm *c, const void *send, const size_t *scounts,
                                  const size_t *sdispls, void *recv, const size_t *rcounts,
                                  const size_t *rdispls);
} dat_comm_ops;

struct dat_comm {
    const dat_comm_ops *ops;
    void *impl;          /* owned by the kind */
    dat_ctx *ctx;
    int rank, size;
    double timeout_s;
    int broken;          /* a wait failed or timed out, or abort was called */
    int threads_ok;      /* its collectives may run on a thread other than the creator's
                            (one at a time): set by the kind */
    uint64_t seq;        /* collectives begun */
    dat_comm_stats stats;
    /* Scratch that grows to the largest need and is then reused. */
    uint8_t *scratch;    /* host, 64-byte aligned */
    size_t scratch_bytes;
    float *stage;        /* host copy of device tensors */
    size_t stage_len;
    void *dev_scratch;   /* device copy of host buffers, for device-buffer kinds */
    size_t dev_bytes;
    size_t *tables;      /* 4 * size entries: counts and displacements */
    int64_t *headers;    /* size * DAT_HDR_LEN */
};

/* Creates the generic part; takes ownership of impl only on success. */
dat_status dat_comm_alloc(dat_comm **out, dat_ctx *ctx, const dat_comm_ops *ops, void *impl,
                          int rank, int size, double timeout_s);

/* Host scratch of at least bytes, 64-byte aligned. */
dat_status dat_comm_scratch(dat_comm *c, size_t bytes, uint8_t **p);

/* Device scratch of at least bytes in the communicator's context (where a
 * device-buffer kind stages host buffers). */
dat_status dat_comm_dev_scratch(dat_comm *c, size_t bytes, void **p);

/* Resolves options (NULL = defaults) and checks them. */
dat_status dat_comm_resolve_options(const char *func, const dat_comm_options *opts,
                                    dat_comm_options *o);

/* Start of shard j of n units over m ranks: floor(j * n / m). Tensors have at
 * most 2^40 elements and m < 2^23 ranks, so the product fits. */
static inline size_t dat_comm_shard_lo(size_t n, int j, int m)
{
    return (size_t)((uint64_t)n * (uint64_t)j / (uint64_t)m);
}

/* Fills a header and takes the next sequence number. */
void dat_comm_header(dat_comm *c, int64_t *h, int op, int64_t dtype, int64_t count,
                     int64_t arg, dat_status local);

/*
 * Header agreement: exchanges this rank's header; fails with DAT_ERR_COMM
 * naming the field and ranks if any field differs or another rank's status
 * is not DAT_OK, and with this rank's own status if that is not DAT_OK.
 */
dat_status dat_comm_agree(dat_comm *c, const char *func, const int64_t *mine);

/* Runs an op on host buffers: for a device-buffer kind, stages them through
 * comm->dev_scratch. */
dat_status dat_comm_host_allgatherv(dat_comm *c, void *buf, const size_t *counts,
                                    const size_t *displs, size_t total);
dat_status dat_comm_host_alltoallv(dat_comm *c, const void *send, const size_t *scounts,
                                   const size_t *sdispls, size_t stotal, void *recv,
                                   const size_t *rcounts, const size_t *rdispls, size_t rtotal);

/* Marks the communicator broken after a transport failure; returns s. */
dat_status dat_comm_failed(dat_comm *c, dat_status s);

/* DAT_ERR_STATE naming func if the communicator is broken or aborted. */
dat_status dat_comm_usable(const dat_comm *c, const char *func);

/* Payload bytes each way of the exact all-reduce of n floats on this rank. */
uint64_t dat_comm_allreduce_bytes(const dat_comm *c, size_t n);

/* Books one successful collective begun at t0 in the statistics. */
void dat_comm_count_call(dat_comm *c, double t0, uint64_t sent, uint64_t received);

/* Books an all-reduce recorded in a step graph (bytes each way) and registers
 * the counters that book it again at each replay (lib/core/capture.h). */
dat_status dat_comm_recorded_call(dat_comm *c, double t0, uint64_t bytes);

/*
 * The quantized all-reduce of a slice x in the memory of q's context
 * (dat_quantizer_tensor_in): x holds elements offset .. offset + n of a flat
 * buffer (offset and the slices a caller cuts must be bucket-aligned for the
 * slices to draw what the whole would). Agrees on the headers (with the encode
 * status) before each exchange. Adds the payload bytes to the statistics; the
 * caller counts the call and the time.
 */
dat_status dat_comm_quantized(dat_comm *c, const char *func, float *x, size_t n,
                              uint64_t offset, dat_quantizer *q, dat_quant_mode mode,
                              uint64_t step);

/* Writes q's key and salt into header h; after an agreement on such headers,
 * q's servers draw with rank 0's (so that the bits do not depend on which rank
 * serves an element, whatever seeds the ranks have). */
void dat_comm_quant_seeds(int64_t *h, const dat_quantizer *q);
void dat_comm_serve_as_rank0(const dat_comm *c, dat_quantizer *q);

/* The ranks agree on a quantized exchange `op` (DAT_COMM_OP_QUANTIZED or
 * _SERVE) of elements offset .. offset + n (q's settings, mode, step) and on
 * each rank's encode status `local`: DAT_OK only if every rank encoded; q
 * then serves with rank 0's seeds. On failure no rank applies the codes, and
 * every rank forgets its error-feedback residual of the elements, so that the
 * ranks stay alike. */
dat_status dat_comm_quantized_agree(dat_comm *c, const char *func, int op, size_t n,
                                    uint64_t offset, dat_quantizer *q, dat_quant_mode mode,
                                    uint64_t step, dat_status local);

/* x = the mean of the M ranks' codes of n elements, rank j's at codes +
 * displs[j] (q->exec's memory), decoded in rank order: the same bits on every
 * rank. */
dat_status dat_comm_decode_average(dat_quantizer *q, const uint8_t *codes, const size_t *displs,
                                   int m, size_t n, float *x);

/* NCCL (kernels/comm_nccl.cu), in builds with CUDA. */
dat_status dat_comm_nccl_unique_id(dat_comm_id *id);
dat_status dat_comm_nccl_create(dat_comm **out, dat_ctx *ctx, int nranks, int rank,
                                const dat_comm_id *id, const dat_comm_options *o);

#endif
