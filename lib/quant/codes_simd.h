/*
 * The codes of whole groups of DAT_QUANT_GROUP elements from their Philox
 * words (quant_math.h's dat_quant_code and dat_quant_uniform16), with AVX-512
 * where the CPU has it (checked once at run time), else portable C. At 8 and
 * 16 bits the codes can be stored at their width: on a little-endian host
 * that is the packed layout itself, so no packing pass follows.
 */
#ifndef LIBDAT_QUANT_CODES_SIMD_H
#define LIBDAT_QUANT_CODES_SIMD_H

#include <stddef.h>
#include <stdint.h>

#include "quant_math.h"

/* Codes of v[0..len), len a multiple of DAT_QUANT_GROUP and v's first element
 * the first of a group, from the group words w[0..len/2), stored as uint8_t,
 * uint16_t or uint32_t for width 8, 16 or 32 (width >= bits). */
void dat_quant_codes_grouped(const float *v, const uint32_t *w, size_t len, dat_quant_scale ks,
                             uint32_t s, int bits, void *out, int width);

/* One variant (0 portable, 1 AVX-512), for tests; returns 0 if this CPU or
 * build lacks it. */
int dat_quant_codes_variant(int variant, const float *v, const uint32_t *w, size_t len,
                            dat_quant_scale ks, uint32_t s, int bits, void *out, int width);

#endif
