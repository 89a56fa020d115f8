/*
 * The per-element math of the randomized quantizer, shared by the host code
 * (quantize.c) and, later, a CUDA kernel, like lib/core/philox.h: the same
 * stream, the same rounding, the same codes on both.
 *
 * A CUDA kernel plugs in at dat_quant_encode_host / dat_quant_decode_host
 * (quantize.h): one block per bucket, a block reduction for the norm (in the
 * fixed lane order of quantize.c's lanes_add_chunk, to give the same bits), then one
 * thread per element calling dat_quant_code() with dat_quant_uniform16 of
 * element counter0 + i, and a warp-level pack.
 */
#ifndef LIBDAT_QUANT_QUANT_MATH_H
#define LIBDAT_QUANT_QUANT_MATH_H

#include <float.h>
#include <math.h>
#include <stdint.h>

#include "../core/philox.h"

/* Bits 32 mean pass-through: the codes are the floats. */
#define DAT_QUANT_PASSTHROUGH 32

/* Phases of a quantized collective: a worker's own gradient, and the second
 * quantization of an average by the rank that serves a shard (two-sided). */
#define DAT_QUANT_PHASE_WORKER 0u
#define DAT_QUANT_PHASE_SERVER 1u

/* Norms below this are scaled up by DAT_QUANT_TINY_SCALE before s / norm is
 * taken, so the scale stays finite for denormal buckets. Powers of two: exact. */
#define DAT_QUANT_TINY_NORM 0x1p-60f
#define DAT_QUANT_TINY_SCALE 0x1p64f

/* SplitMix64's finalizer: a bijection that spreads every input bit. */
DAT_HD uint64_t dat_quant_mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Philox stream of one encode: distinct (salt, rank, step, phase) give
 * unrelated 64-bit stream numbers, far from the small ones other parts use. */
DAT_HD uint64_t dat_quant_stream(uint64_t salt, uint32_t rank, uint64_t step, uint32_t phase)
{
    uint64_t h = dat_quant_mix64(salt ^ 0x51554e545a455231ull);
    h = dat_quant_mix64(h ^ (((uint64_t)phase << 32) | rank));
    return dat_quant_mix64(h ^ step);
}

/* s = 2^(b-1) - 1 levels above zero. */
DAT_HD uint32_t dat_quant_levels(int bits)
{
    return (1u << (bits - 1)) - 1u;
}

/* Per-bucket constants of the encode: |v| * pre * scale = 2^16 s |v| / norm,
 * the level r = s |v| / norm in 16.16 fixed point (scaled by 2^16 from the
 * start, which rounds alike: a power-of-two factor commutes with rounding). */
typedef struct dat_quant_scale {
    float pre, scale;
} dat_quant_scale;

DAT_HD dat_quant_scale dat_quant_make_scale(float norm, uint32_t s)
{
    dat_quant_scale k;
    k.pre = norm < DAT_QUANT_TINY_NORM ? DAT_QUANT_TINY_SCALE : 1.0f;
    k.scale = (float)(s << 16) / DAT_RN_FMUL(norm, k.pre);
    return k;
}

/*
 * Code of one value (norm > 0): level xi = floor(r) or floor(r) + 1 with
 * r = s |v| / norm, rounding up when the 16-bit uniform u16 / 2^16 < r - floor(r)
 * (so P(up) = ceil(2^16 frac) / 2^16: a bias below 2^-16 of a level, far under
 * the rounding's own standard deviation); the sign in bit b - 1 (only for
 * xi > 0, so a code 0 is always +0). r is clamped to s (then xi = s): a rounded
 * norm may sit an ulp below max |v|.
 *
 * In integers: with R = 2^16 r (exact), c = ceil(R) and l = floor(r),
 * u16 < 2^16 (r - l) <=> u16 < c - 2^16 l <=> c + 65535 - u16 >= 2^16 (l + 1),
 * and c - 2^16 l lies in [0, 2^16], so xi = (c + 65535 - u16) >> 16: one
 * rounding conversion and three integer operations, with no frac.
 * c <= 2^16 * 32767, so the sum stays below 2^31. Written without branches so
 * that loops over it vectorize.
 */
DAT_HD uint32_t dat_quant_code(float v, dat_quant_scale k, uint32_t s, uint32_t u16, int bits)
{
    float a = fabsf(v); /* one AND; -0 and v < 0 code alike either way */
    float r = DAT_RN_FMUL(DAT_RN_FMUL(a, k.pre), k.scale);
    float cap = (float)(s << 16); /* exact: 15 significant bits */
    float rc = r < cap ? r : cap;
    int32_t t = (int32_t)rc; /* floor; then ceil without a libm call, which */
    uint32_t c = (uint32_t)t + ((float)t < rc ? 1u : 0u); /* would not vectorize */
    uint32_t xi = (c + (0xffffu - u16)) >> 16;
    uint32_t sign = v < 0.0f ? (1u << (bits - 1)) : 0u;
    return xi != 0u ? (sign | xi) : 0u;
}

/*
 * The 16-bit uniform of element g of a stream. Two elements share a Philox
 * word: 16 bits are all the rounding needs, and it halves the Philox work,
 * which dominates the encode. In each aligned group of 32 elements, element j
 * takes the low half of the group's word j for j < 16 and the high half of
 * word j - 16 otherwise, so that 16-lane vector code reads the words in order.
 */
#define DAT_QUANT_GROUP 32

DAT_HD uint64_t dat_quant_word_index(uint64_t g)
{
    return (g / DAT_QUANT_GROUP) * (DAT_QUANT_GROUP / 2) + g % (DAT_QUANT_GROUP / 2);
}

DAT_HD uint32_t dat_quant_uniform16(uint32_t word, uint64_t g)
{
    return (g % DAT_QUANT_GROUP) >= DAT_QUANT_GROUP / 2 ? word >> 16 : word & 0xffffu;
}

/* Value of a code: sign * xi * (norm / s), with step = norm / s. As xi <= s,
 * the value is at most the norm; only the two roundings can carry a norm near
 * FLT_MAX past it (to inf), and FLT_MAX is then within 2 ulps of the exact. */
DAT_HD float dat_quant_value(uint32_t code, float step, int bits)
{
    uint32_t xi = code & ((1u << (bits - 1)) - 1u);
    float m = DAT_RN_FMUL((float)xi, step);
    m = m > FLT_MAX ? FLT_MAX : m;
    return (code >> (bits - 1)) ? -m : m;
}

/* norm / s: the value of one level. */
DAT_HD float dat_quant_step(float norm, uint32_t s)
{
    return norm / (float)s;
}

#endif
