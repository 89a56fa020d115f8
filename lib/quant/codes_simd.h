/*
 * The codes of whole groups of DAT_QUANT_GROUP elements from their Philox
 * words (quant_math.h's dat_quant_code and dat_quant_uniform16), and the
 * values of packed codes, with AVX-512 where the CPU has it (checked once at
 * run time), else portable C. At 2, 4, 8 and 16 bits a group's codes fill
 * whole bytes, so on a little-endian host they are written to (and read from)
 * the packed layout directly, with no separate packing pass.
 */
#ifndef LIBDAT_QUANT_CODES_SIMD_H
#define LIBDAT_QUANT_CODES_SIMD_H

#include <stddef.h>
#include <stdint.h>

#include "quant_math.h"

/* Codes of v[0..len), len a multiple of DAT_QUANT_GROUP and v's first element
 * the first of a group, from the group words w[0..len/2). width 32: one
 * uint32_t per code; width 16 or 8: one uint16_t / uint8_t per code (bits <=
 * width); width 4 or 2 (= bits): packed, code k in bits [k w, k w + w) of the
 * little-endian word stream at out (4-byte aligned). */
void dat_quant_codes_grouped(const float *v, const uint32_t *w, size_t len, dat_quant_scale ks,
                             uint32_t s, int bits, void *out, int width);

/* One variant (0 portable, 1 AVX-512), for tests; returns 0 if this CPU or
 * build lacks it. */
int dat_quant_codes_variant(int variant, const float *v, const uint32_t *w, size_t len,
                            dat_quant_scale ks, uint32_t s, int bits, void *out, int width);

/*
 * out = (accumulate ? out : 0) + q * scale for len codes of `bits` (2, 4, 8 or
 * 16) packed from byte `in` on (len a multiple of DAT_QUANT_GROUP): q =
 * dat_quant_value(code, step, bits). Returns 0, doing nothing, where no fast
 * variant exists (the caller unpacks).
 */
int dat_quant_values_packed(const uint8_t *in, size_t len, float step, int bits, float *out,
                            int accumulate, float scale);

/* One variant of dat_quant_values_packed (1 AVX-512), for tests. */
int dat_quant_values_variant(int variant, const uint8_t *in, size_t len, float step, int bits,
                             float *out, int accumulate, float scale);

#endif
