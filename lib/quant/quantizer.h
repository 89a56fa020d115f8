/* The quantizer handle as the communicators see it: encode / decode of host
 * slices of a flat buffer, with the rank and phase of a collective. */
#ifndef LIBDAT_QUANT_QUANTIZER_H
#define LIBDAT_QUANT_QUANTIZER_H

#include "libdat/dat_quant.h"
#include "quantize.h"

struct dat_quantizer {
    dat_ctx *ctx;
    dat_quantizer_options opts; /* defaults resolved */
    dat_quant_config cfg;
    float *residual;            /* error feedback, by element offset; NULL until used */
    size_t residual_len;
    float *staging;             /* host copy of tensors of a CUDA context */
    size_t staging_len;
};

/*
 * Encodes x[0..n), the elements offset .. offset + n of a flat buffer: draws
 * as elements offset + i of the stream of (seed, rank, step, phase); error
 * feedback (if on and use_residual) uses residual[offset ..]. Messages name
 * `func` and the element index offset + i.
 */
dat_status dat_quantizer_encode_slice(dat_quantizer *q, const char *func, const float *x,
                                      size_t n, uint64_t offset, uint32_t rank, uint64_t step,
                                      uint32_t phase, int use_residual, void *codes);

/* out = (accumulate ? out + q : q) * post_scale for n elements. */
void dat_quantizer_decode_slice(dat_quantizer *q, const void *codes, size_t n, float *out,
                                int accumulate, float post_scale);

/* Host buffer of at least n floats, kept and reused by the quantizer. */
dat_status dat_quantizer_staging(dat_quantizer *q, size_t n, float **buf);

#endif
