/**
 * @file dat_quant.h
 * @brief The randomized b-bit gradient quantizer (QSGD; Alistarh et al. 2017).
 *
 * A float32 vector is cut into buckets of dat_quantizer_options::bucket_size
 * elements (the last one may be shorter). For a bucket v with norm ‖v‖ (ℓ2 or
 * max) and s = 2^(b−1) − 1 levels, each element becomes
 *
 *     q(v_j) = ‖v‖ · sign(v_j) · ξ_j / s,   ξ_j ∈ {⌊s|v_j|/‖v‖⌋, ⌈s|v_j|/‖v‖⌉},
 *
 * where ξ_j rounds up with probability s|v_j|/‖v‖ − ⌊s|v_j|/‖v‖⌋, so that
 * E[q(v)] = v up to rounding: the draw has 16 random bits (2^−16 of a level),
 * and s|v_j|/‖v‖ is a float, whose fraction at b = 16 holds about 2^−9 of a
 * level: at most about one float ulp of v_j. An
 * all-zero bucket encodes to zeros (never NaN). The decoded level ‖v‖ / s is a
 * float32: for a bucket of denormals (‖v‖ below about s · 2^−126, ~4e-34 at
 * b = 16) it loses bits to underflow and the decode is biased toward zero; such
 * a bucket is far below any gradient a step can move (error feedback keeps
 * what it loses).
 *
 * **Encoded layout** (little-endian), bucket after bucket: the bucket's norm
 * as a float32, then its m codes of b bits each, code k in bits [k·b, k·b+b) of
 * a stream of 32-bit words, padded to a whole word. A code holds the level ξ
 * in its low b − 1 bits and the sign in bit b − 1. So a bucket of m elements
 * takes 4 + 4·⌈m·b/32⌉ bytes, and n elements with bucket size B take
 *
 *     E(n) = ⌊n/B⌋ · (4 + 4·⌈B·b/32⌉) + [r > 0] · (4 + 4·⌈r·b/32⌉),   r = n mod B.
 *
 * With the default B = 512, a full bucket is 4 + 64·b bytes. For b = 32
 * (pass-through) the codes are the float32 values themselves: E(n) = 4n.
 *
 * **Draws.** Element i of an encode (counting from 0) rounds up when a
 * 16-bit uniform u_i satisfies u_i / 2^16 < s|v_i|/‖v‖ − ⌊s|v_i|/‖v‖⌋. Two
 * elements share a 32-bit word of the Philox 4x32-10 stream keyed by the
 * context's seed, stream number derived from (dat_quantizer_options::seed,
 * rank, step): in each aligned group of 32 elements, element 32g + j takes the
 * low half of word 16g + j for j < 16, and element 32g + 16 + j the high half
 * of that word. The same (context seed, options, step, input) gives the same
 * codes bit for bit, on any number of threads.
 *
 * **Error feedback** (optional): the quantizer keeps the residual
 * e = (x + e) − q(x + e) of the last encode, element by element, and adds it
 * to the next input before quantizing. The residual is sized by the first
 * encode (and grows, zero-filled, if a later one is longer).
 *
 * The math runs on the host with OpenMP threads (the context's thread count),
 * or, for a CUDA context whose backend runs quantizers, on its GPU, which then
 * also keeps the residual; both give the same bytes. Tensors elsewhere are
 * copied into the quantizer's memory first. (The CUDA backend runs
 * quantizers; docs/backends.md.)
 */
#ifndef LIBDAT_DAT_QUANT_H
#define LIBDAT_DAT_QUANT_H

#include "dat_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Opaque quantizer. */
typedef struct dat_quantizer dat_quantizer;

/** @brief Norm that scales a bucket. Values are fixed: they are part of the ABI. */
typedef enum dat_quant_norm {
    DAT_QUANT_NORM_L2 = 0,   /**< ‖v‖₂: QSGD's choice; variance bound min(m/s², √m/s)·‖v‖². */
    DAT_QUANT_NORM_MAX = 1,  /**< ‖v‖∞: smaller error for the same bits. */
    DAT_QUANT_NORM_FORCE_32BIT = 0x7fffffff
} dat_quant_norm;

/** @brief Default bucket size: 512 elements, so a full bucket is 4 + 64·b bytes. */
#define DAT_QUANT_DEFAULT_BUCKET 512

/** @brief Largest bucket size accepted. */
#define DAT_QUANT_MAX_BUCKET (1 << 24)

/**
 * @brief Options of dat_quantizer_create(). Fill with
 *        dat_quantizer_options_init(); fields are only ever appended.
 */
typedef struct dat_quantizer_options {
    uint32_t size;          /**< sizeof(dat_quantizer_options), set by the init function. */
    int32_t bits;           /**< b: 2 to 16 bits per element, or 32 = pass-through; default 8. */
    int32_t bucket_size;    /**< Elements per bucket, 1 to DAT_QUANT_MAX_BUCKET; default 512. */
    dat_quant_norm norm;    /**< Bucket norm; default DAT_QUANT_NORM_L2. */
    int32_t rank;           /**< Enters the draws' stream; >= 0; default 0. A communicator
                                 uses its own rank instead (dat_comm.h). */
    int32_t error_feedback; /**< 1 = keep the residual and add it to the next input; default 0. */
    uint64_t seed;          /**< Enters the draws' stream beside rank and step; default 0.
                                 The Philox key is the context's seed. */
} dat_quantizer_options;

/**
 * @brief Fills @p opts with the defaults (8 bits, buckets of 512, ℓ2 norm,
 *        rank 0, no error feedback, seed 0) and sets its size field.
 * @param[out] opts  the options to fill.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL.
 */
DAT_API dat_status dat_quantizer_options_init(dat_quantizer_options *opts);
/**
 * @brief dat_quantizer_options_init() for a caller's struct of @p size bytes (its sizeof): the
 *        library writes min(size, sizeof) bytes and records that count in size, nothing past them.
 *        The dat_quantizer_options_init() macro passes sizeof *(opts), so a program built against
 *        these headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] opts  the options to fill.
 * @param size  bytes at @p opts, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL or @p size < 4.
 */
DAT_API dat_status dat_quantizer_options_init_sized(dat_quantizer_options *opts, size_t size);
/** @brief Fills @p opts (see dat_quantizer_options_init_sized()). */
#define dat_quantizer_options_init(opts) dat_quantizer_options_init_sized((opts), sizeof *(opts))

/**
 * @brief Creates a quantizer.
 * @param[out] out  receives the quantizer, owned by the caller and freed with
 *                  dat_quantizer_destroy() before @p ctx; NULL on failure.
 * @param ctx  context whose seed keys the draws and whose threads compute.
 * @param opts  options, or NULL for the defaults.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL @p out / @p ctx, a wrong opts->size or
 *         a field out of range; DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_quantizer_create(dat_quantizer **out, dat_ctx *ctx,
                                        const dat_quantizer_options *opts);

/**
 * @brief Destroys a quantizer and its error-feedback residual.
 * @param q  the quantizer, or NULL (a no-op).
 */
DAT_API void dat_quantizer_destroy(dat_quantizer *q);

/**
 * @brief Options a quantizer was created with (defaults resolved).
 * @param q  the quantizer.
 * @param[out] opts  receives them; its size field is overwritten.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_quantizer_options_get(const dat_quantizer *q,
                                             dat_quantizer_options *opts);

/**
 * @brief Bytes of the encoding of @p n elements: E(n) of the file comment.
 * @param q  the quantizer.
 * @param n  element count, >= 0.
 * @param[out] bytes  receives E(n).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or n outside
 *         [0, 2^40] (the largest tensor).
 */
DAT_API dat_status dat_quantizer_encoded_size(const dat_quantizer *q, int64_t n, size_t *bytes);

/**
 * @brief Encodes a float32 tensor into host memory.
 *
 * With error feedback on, the residual is added first and then replaced
 * by the new one.
 * @param q  the quantizer.
 * @param x  float32 tensor of n elements, on any context (copied over if it is
 *           not in the memory of the quantizer's context).
 * @param step  training step; enters the stream of draws, so that each step
 *              draws afresh and a rerun draws the same.
 * @param[out] codes  host memory owned by the caller, 4-byte aligned, at least
 *                    E(n) bytes; E(n) are written.
 * @param codes_bytes  size of @p codes.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, a non-float32 @p x or
 *         a short or misaligned @p codes; DAT_ERR_NUMERIC if @p x (plus the residual) holds a
 *         NaN or Inf or a bucket's ℓ2 norm overflows float (the message gives
 *         the element index; the residual is zeroed then).
 */
DAT_API dat_status dat_quantizer_encode(dat_quantizer *q, const dat_tensor *x, uint64_t step,
                                        void *codes, size_t codes_bytes);

/**
 * @brief Decodes into a float32 tensor: out = q(x), or out += q(x).
 * @param q  the quantizer.
 * @param codes  host memory, 4-byte aligned, holding an encoding of numel(out)
 *               elements made by a quantizer with the same bits, bucket size and
 *               norm kind.
 * @param codes_bytes  size of @p codes, at least E(numel(out)).
 * @param out  float32 tensor on any context (copied over and back if it is not
 *             in the memory of the quantizer's context).
 * @param accumulate  0: overwrite @p out; 1: add to it.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, a non-float32 @p out, a
 *         short @p codes or @p accumulate not 0 / 1; DAT_ERR_FORMAT for codes no
 *         encoder writes (a bucket's norm NaN, Inf or negative; a pass-through
 *         value NaN or Inf). Nothing is written then.
 */
DAT_API dat_status dat_quantizer_decode(dat_quantizer *q, const void *codes, size_t codes_bytes,
                                        dat_tensor *out, int accumulate);

/**
 * @brief Zeroes the error-feedback residual (a no-op without error feedback).
 * @param q  the quantizer.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p q is NULL.
 */
DAT_API dat_status dat_quantizer_reset(dat_quantizer *q);

#ifdef __cplusplus
}
#endif

#endif
