/* The quantizer handle as the communicators see it: encode / decode of host
 * slices of a flat buffer, with the rank and phase of a collective. */
#ifndef LIBDAT_QUANT_QUANTIZER_H
#define LIBDAT_QUANT_QUANTIZER_H

#include "libdat/dat_quant.h"
#include "quantize.h"

/* The quantizer's scratch buffers in its context's memory. */
enum { DAT_QSCRATCH_CODES = 0, DAT_QSCRATCH_VALUES = 1, DAT_QSCRATCH_COUNT = 2 };

struct dat_quantizer {
    dat_ctx *ctx;               /* the caller's; its seed keys the draws */
    /* Where the quantizer computes and keeps its buffers: ctx, or its own host
     * context where ctx's backend does not run quantizers (runs_quantizer). */
    dat_ctx *exec;
    dat_quantizer_options opts; /* defaults resolved */
    dat_quant_config cfg;
    /* Error feedback, by element offset, in ctx's memory (device memory on a
     * CUDA context); NULL until used. */
    float *residual;
    size_t residual_len;
    void *scratch[DAT_QSCRATCH_COUNT]; /* ctx's memory; grow, never shrink */
    size_t scratch_bytes[DAT_QSCRATCH_COUNT];
    /* The Philox key and stream salt of the server phase's draws: this
     * quantizer's (ctx's seed, opts.seed) until a communicator sets rank 0's
     * (dat_quantizer_serve_as), so that every rank serving an element draws
     * alike whatever seeds the ranks were given. */
    uint64_t serve_key, serve_salt;
};

/* The server phase's draws from now on use key and salt (rank 0's). */
void dat_quantizer_serve_as(dat_quantizer *q, uint64_t key, uint64_t salt);

/*
 * Encodes x[0..n), the elements offset .. offset + n of a flat buffer: draws
 * as elements offset + i of the stream of (seed, rank, step, phase), or, in
 * the server phase, of (serve_salt, rank, step, phase) keyed by serve_key; error
 * feedback (if on and use_residual) uses residual[offset ..]. x and codes are
 * in the memory of q->exec (host memory, or a CUDA context's device), whose
 * backend's quant_encode runs. Messages name `func` and the element index
 * offset + i.
 */
dat_status dat_quantizer_encode_slice(dat_quantizer *q, const char *func, const float *x,
                                      size_t n, uint64_t offset, uint32_t rank, uint64_t step,
                                      uint32_t phase, int use_residual, void *codes);

/* Zeroes the error-feedback residual (if on) of elements offset .. offset + n:
 * after an exchange that failed, whose codes no rank applied. */
dat_status dat_quantizer_forget(dat_quantizer *q, uint64_t offset, size_t n);

/* Grows the error-feedback residual (if on) to n elements now, so that the
 * encodes of a buffer of n elements allocate nothing (a synchronizer's,
 * during the backward pass; a recording's). */
dat_status dat_quantizer_reserve(dat_quantizer *q, size_t n);

/* dat_quantizer_encode_slice queued on q->exec's backend without waiting
 * for the outcome, which goes to *status (q->exec's memory; backend.h,
 * quant_encode_deferred). With step_at not NULL (a uint64 in q->exec's
 * memory: a recorded step's counter) the step is read from there when the
 * encode runs, instead of `step`. */
dat_status dat_quantizer_encode_slice_deferred(dat_quantizer *q, const float *x, size_t n,
                                               uint64_t offset, uint32_t rank, uint64_t step,
                                               const uint64_t *step_at, uint32_t phase,
                                               int use_residual, void *codes,
                                               dat_quant_status *status);

/* The outcome of `count` deferred encodes of the slices at k * slice of a
 * buffer of n elements, their statuses st[k] read back to the host: DAT_OK,
 * or the DAT_ERR_NUMERIC of the first bad element (naming `func`), the
 * residual of the n elements zeroed as a failed encode leaves it. */
dat_status dat_quantizer_deferred_outcome(dat_quantizer *q, const char *func,
                                          const dat_quant_status *st, size_t count,
                                          size_t slice, size_t n);

/* dat_quantizer_deferred_outcome in a recorded step, nothing read back:
 * when *flag (q->exec's memory; the ranks' counts of failed encodes, summed)
 * is not 0 when it runs, x[0..n) is filled with NaN (the mean is not
 * defined: whatever takes the step skips it, as for a NaN that an exact
 * all-reduce spreads) and `bit` ored into the context's fault word
 * (capture.h), and the residual of the n elements is zeroed, as op by op
 * on every rank (dat_comm_quantized_agree). */
dat_status dat_quantizer_recorded_outcome(dat_quantizer *q, const float *flag, float *x,
                                          size_t n, uint32_t bit);

/* out = (accumulate ? out : 0) + q * scale for n elements, codes and out
 * in the memory of q->exec. */
dat_status dat_quantizer_decode_slice(dat_quantizer *q, const void *codes, size_t n, float *out,
                                      int accumulate, float scale);

/* Scratch buffer `which` (DAT_QSCRATCH_*) of at least bytes in the memory of
 * q->exec; its contents do not survive growing. */
dat_status dat_quantizer_scratch(dat_quantizer *q, int which, size_t bytes, void **p);

/* 1 if contexts a and b address the same memory (the same context, or both
 * the host's). */
int dat_quantizer_same_memory(const dat_ctx *a, const dat_ctx *b);

/* t's data in the memory of q->exec: t's own buffer where that is the same
 * memory, else a copy in q's DAT_QSCRATCH_VALUES (read: copy t's contents in). */
dat_status dat_quantizer_tensor_in(dat_quantizer *q, const dat_tensor *t, int read, float **p);

/* Writes back what dat_quantizer_tensor_in gave (nothing to do for t's own buffer). */
dat_status dat_quantizer_tensor_out(dat_quantizer *q, dat_tensor *t, const float *p);

#endif
