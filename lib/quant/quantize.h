/*
 * The quantizer's host kernels on raw buffers: what dat_quantizer (public)
 * and the communicators call. They work on any slice of a flat float buffer:
 * element i of a call draws word counter0 + i of the stream, so encoding a
 * buffer whole or in bucket-aligned slices (counter0 = slice offset) gives
 * the same bytes, the slices' encodings laid end to end.
 */
#ifndef LIBDAT_QUANT_QUANTIZE_H
#define LIBDAT_QUANT_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#include "libdat/dat_quant.h"

typedef struct dat_quant_config {
    int bits;           /* 2..16, or 32 = pass-through */
    int bucket;         /* elements per bucket */
    dat_quant_norm norm;
} dat_quant_config;

/* E(n) of dat_quant.h. */
size_t dat_quant_encoded_bytes(const dat_quant_config *c, size_t n);

/*
 * Encodes x[0..n) into codes (E(n) bytes). With residual != NULL (error
 * feedback) encodes x + residual and stores the new residual; on
 * DAT_ERR_NUMERIC the residual is zeroed, so the caller's state stays
 * defined. The message names `func` and the first bad index (+ index_base).
 */
dat_status dat_quant_encode_host(const char *func, const dat_quant_config *c, const float *x,
                                 size_t n, float *residual, uint64_t key, uint64_t stream,
                                 uint64_t counter0, void *codes, int nthreads,
                                 uint64_t index_base);

/*
 * Decodes n elements: out = (accumulate ? out : 0) + q * scale. The
 * communicators average M decodes with scale 1/M on each, without another
 * pass and without a sum that overflows where the mean does not.
 */
void dat_quant_decode_host(const dat_quant_config *c, const void *codes, size_t n, float *out,
                           int accumulate, float scale, int nthreads);

/* Whether a host message of n elements could come from an encoder: every
 * bucket's norm finite and >= 0 (pass-through: every value finite), else
 * DAT_ERR_FORMAT naming `func` and the first bad one. */
dat_status dat_quant_check_message(const char *func, const dat_quant_config *c,
                                   const void *codes, size_t n);
/* The CPU backend's quant_encode / quant_decode (lib/core/backend.h): the two
 * above with the context's threads. */
dat_status dat_quant_encode_cpu(dat_ctx *ctx, const char *func, const dat_quant_config *c,
                                const float *x, size_t n, float *residual, uint64_t key,
                                uint64_t stream, uint64_t counter0, void *codes,
                                uint64_t index_base);
dat_status dat_quant_decode_cpu(dat_ctx *ctx, const dat_quant_config *c, const void *codes,
                                size_t n, float *out, int accumulate, float scale);

/* What the norm pass found in a bucket; a failed encode reports the largest
 * kind found in any bucket with the smallest bad index. */
enum {
    DAT_QUANT_BUCKET_OK = 0,
    DAT_QUANT_BUCKET_NONFINITE = 1, /* a NaN or Inf: index = that element */
    DAT_QUANT_BUCKET_OVERFLOW = 2,  /* the l2 norm overflows float: index = the bucket's start */
};

/* What a deferred encode (backend.h, quant_encode_deferred) leaves in its
 * context's memory: the first bad element (relative to the encoded slice;
 * UINT64_MAX when none) and the largest DAT_QUANT_BUCKET_* kind found. */
typedef struct dat_quant_status {
    uint64_t first_bad;
    int32_t kind;
    int32_t pad;
} dat_quant_status;

/* The Philox draws of a deferred encode: (key, stream), or, with step not
 * NULL (a uint64 in the context's memory: a recorded step's counter), the
 * stream dat_quant_stream(salt, rank, *step, phase) computed when the op
 * runs, so that each replay of a recorded step draws anew. */
typedef struct dat_quant_draw {
    uint64_t key, stream;
    const uint64_t *step;
    uint64_t salt;
    uint32_t rank, phase;
} dat_quant_draw;

/* The DAT_ERR_NUMERIC of a failed encode (shared with the CUDA encode). */
dat_status dat_quant_numeric_error(const char *func, int kind, uint64_t index, int have_residual);

/* Threads for n elements: 1 below a size where threads cost more than they save. */
int dat_quant_threads(int ctx_threads, size_t n);

#endif
