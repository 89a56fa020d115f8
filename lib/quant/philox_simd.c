/* Bulk Philox 4x32-10: AVX-512, AVX2 and portable variants, picked once. */
#include "philox_simd.h"

#include "../core/philox.h"

#define M0 0xD2511F53u
#define M1 0xCD9E8D57u
#define W0 0x9E3779B9u
#define W1 0xBB67AE85u

static void blocks_portable(uint64_t key, uint64_t stream, uint64_t b0, size_t nblocks,
                            uint32_t *w)
{
    for (size_t i = 0; i < nblocks; ++i) {
        dat_philox_ctr c = dat_philox_block(key, stream, b0 + i);
        for (int j = 0; j < 4; ++j)
            w[4 * i + (size_t)j] = c.v[j];
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/*
 * 16 blocks in four registers of 16 lanes (c0..c3 of each block). The
 * 32x32 -> 64 products take two pmuludq per register: the even lanes, then
 * the odd ones moved down (a 64-bit shift for one register, a shuffle for the
 * other, so the moves split between the shift and shuffle ports). One
 * two-source permute then gathers each register's high halves and another its
 * low halves. Per round: 4 multiplies, 2 moves, 4 permutes and 2 three-way
 * XORs, balanced over the two ports that run 512-bit operations.
 */
#define DAT_ODD_DOWN(x) _mm512_shuffle_epi32((x), (_MM_PERM_ENUM)0xF5) /* dwords 1,1,3,3 */
/* One Philox round on 16 blocks held as four registers of 16 lanes. */
#define DAT_PHILOX_ROUND512(c0, c1, c2, c3, kk0, kk1)                                      \
    do {                                                                                 \
        __m512i pe0 = _mm512_mul_epu32(c0, m0);                                          \
        __m512i po0 = _mm512_mul_epu32(_mm512_srli_epi64(c0, 32), m0);                   \
        __m512i pe1 = _mm512_mul_epu32(c2, m1);                                          \
        __m512i po1 = _mm512_mul_epu32(DAT_ODD_DOWN(c2), m1);                            \
        __m512i hi0 = _mm512_permutex2var_epi32(pe0, take_hi, po0);                      \
        __m512i lo0 = _mm512_permutex2var_epi32(pe0, take_lo, po0);                      \
        __m512i hi1 = _mm512_permutex2var_epi32(pe1, take_hi, po1);                      \
        __m512i lo1 = _mm512_permutex2var_epi32(pe1, take_lo, po1);                      \
        c0 = _mm512_ternarylogic_epi32(hi1, c1, kk0, 0x96);                              \
        c2 = _mm512_ternarylogic_epi32(hi0, c3, kk1, 0x96);                              \
        c1 = lo1;                                                                        \
        c3 = lo0;                                                                        \
    } while (0)

/* Counter words of blocks blk .. blk + 15: low words and high words with carry. */
__attribute__((target("avx512f"))) static inline void counters512(uint64_t blk, __m512i lane,
                                                                  __m512i *c0, __m512i *c1)
{
    __m512i base = _mm512_set1_epi32((int)(uint32_t)blk);
    __m512i hi = _mm512_set1_epi32((int)(uint32_t)(blk >> 32));
    *c0 = _mm512_add_epi32(base, lane);
    __mmask16 carry = _mm512_cmplt_epu32_mask(*c0, base);
    *c1 = _mm512_mask_add_epi32(hi, carry, hi, _mm512_set1_epi32(1));
}

/* 16 blocks per register set, two sets in flight (32 blocks) so the
 * multiplies of one hide the latency of the other. */
__attribute__((target("avx512f"))) static void blocks_avx512(uint64_t key, uint64_t stream,
                                                             uint64_t b0, size_t nblocks,
                                                             uint32_t *w)
{
    const __m512i m0 = _mm512_set1_epi64(M0), m1 = _mm512_set1_epi64(M1);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    /* Lane 2i takes the even product's dword 2i + 1 (high) or 2i (low), lane
     * 2i + 1 the odd product's (index + 16 selects the second source). */
    const __m512i take_hi = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29,
                                              15, 31);
    const __m512i take_lo = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28,
                                              14, 30);
    /* Transpose indices: words of blocks j (lanes) to w[4 j + k]. */
    const __m512i t01lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i t01hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30,
                                            15, 31);
    const __m512i q_lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    const __m512i q_hi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    const __m512i s_lo = _mm512_set1_epi32((int)(uint32_t)stream);
    const __m512i s_hi = _mm512_set1_epi32((int)(uint32_t)(stream >> 32));
    /* The round keys, read from memory: a broadcast operand of the XOR costs no
     * shuffle-port operation, where broadcasting from a register does. */
    uint32_t ks[2][10];
    for (int r = 0; r < 10; ++r) {
        ks[0][r] = (uint32_t)key + (uint32_t)r * W0;
        ks[1][r] = (uint32_t)(key >> 32) + (uint32_t)r * W1;
    }
    for (size_t g = 0; g < nblocks; g += 32) {
        int two = g + 32 <= nblocks;
        __m512i a0, a1, a2 = s_lo, a3 = s_hi, b0r, b1r, b2r = s_lo, b3r = s_hi;
        counters512(b0 + g, lane, &a0, &a1);
        counters512(b0 + g + 16, lane, &b0r, &b1r);
        for (int r = 0; r < 10; ++r) {
            __m512i kk0 = _mm512_set1_epi32((int)ks[0][r]), kk1 = _mm512_set1_epi32((int)ks[1][r]);
            DAT_PHILOX_ROUND512(a0, a1, a2, a3, kk0, kk1);
            DAT_PHILOX_ROUND512(b0r, b1r, b2r, b3r, kk0, kk1);
        }
        for (int h = 0; h < 1 + two; ++h) {
            __m512i c0 = h ? b0r : a0, c1 = h ? b1r : a1, c2 = h ? b2r : a2, c3 = h ? b3r : a3;
            /* 4 x 16 -> 16 x 4: interleave (c0, c1) and (c2, c3), then 64-bit pairs. */
            __m512i x_lo = _mm512_permutex2var_epi32(c0, t01lo, c1);
            __m512i x_hi = _mm512_permutex2var_epi32(c0, t01hi, c1);
            __m512i y_lo = _mm512_permutex2var_epi32(c2, t01lo, c3);
            __m512i y_hi = _mm512_permutex2var_epi32(c2, t01hi, c3);
            uint32_t *o = w + 4 * (g + 16 * (size_t)h);
            _mm512_storeu_si512((void *)o, _mm512_permutex2var_epi64(x_lo, q_lo, y_lo));
            _mm512_storeu_si512((void *)(o + 16), _mm512_permutex2var_epi64(x_lo, q_hi, y_lo));
            _mm512_storeu_si512((void *)(o + 32), _mm512_permutex2var_epi64(x_hi, q_lo, y_hi));
            _mm512_storeu_si512((void *)(o + 48), _mm512_permutex2var_epi64(x_hi, q_hi, y_hi));
        }
    }
}

/* The same with 8 lanes, twice per group of 16. */
__attribute__((target("avx2"))) static void blocks_avx2(uint64_t key, uint64_t stream,
                                                        uint64_t b0, size_t nblocks, uint32_t *w)
{
    const __m256i m0 = _mm256_set1_epi64x(M0), m1 = _mm256_set1_epi64x(M1);
    for (size_t g = 0; g < nblocks; g += 8) {
        uint32_t l0[8], l1[8];
        for (int j = 0; j < 8; ++j) {
            uint64_t blk = b0 + g + (uint64_t)j;
            l0[j] = (uint32_t)blk;
            l1[j] = (uint32_t)(blk >> 32);
        }
        __m256i c0 = _mm256_loadu_si256((const __m256i *)l0);
        __m256i c1 = _mm256_loadu_si256((const __m256i *)l1);
        __m256i c2 = _mm256_set1_epi32((int)(uint32_t)stream);
        __m256i c3 = _mm256_set1_epi32((int)(uint32_t)(stream >> 32));
        uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
        for (int r = 0; r < 10; ++r) {
            __m256i pe0 = _mm256_mul_epu32(c0, m0), po0 = _mm256_mul_epu32(_mm256_srli_epi64(c0, 32), m0);
            __m256i pe1 = _mm256_mul_epu32(c2, m1), po1 = _mm256_mul_epu32(_mm256_srli_epi64(c2, 32), m1);
            __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(pe0, 32), po0, 0xAA);
            __m256i lo0 = _mm256_blend_epi32(pe0, _mm256_slli_epi64(po0, 32), 0xAA);
            __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(pe1, 32), po1, 0xAA);
            __m256i lo1 = _mm256_blend_epi32(pe1, _mm256_slli_epi64(po1, 32), 0xAA);
            __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32((int)k0));
            __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
            c0 = n0;
            c1 = lo1;
            c2 = n2;
            c3 = lo0;
            k0 += W0;
            k1 += W1;
        }
        uint32_t o0[8], o1[8], o2[8], o3[8];
        _mm256_storeu_si256((__m256i *)o0, c0);
        _mm256_storeu_si256((__m256i *)o1, c1);
        _mm256_storeu_si256((__m256i *)o2, c2);
        _mm256_storeu_si256((__m256i *)o3, c3);
        uint32_t *o = w + 4 * g;
        for (int j = 0; j < 8; ++j) {
            o[4 * j] = o0[j];
            o[4 * j + 1] = o1[j];
            o[4 * j + 2] = o2[j];
            o[4 * j + 3] = o3[j];
        }
    }
}

typedef void (*blocks_fn)(uint64_t, uint64_t, uint64_t, size_t, uint32_t *);

static blocks_fn pick(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return blocks_avx512;
    if (__builtin_cpu_supports("avx2"))
        return blocks_avx2;
    return blocks_portable;
}

int dat_philox_blocks_variant(int variant, uint64_t key, uint64_t stream, uint64_t b0,
                              size_t nblocks, uint32_t *w)
{
    __builtin_cpu_init();
    if (variant == 0)
        blocks_portable(key, stream, b0, nblocks, w);
    else if (variant == 1 && __builtin_cpu_supports("avx2"))
        blocks_avx2(key, stream, b0, nblocks, w);
    else if (variant == 2 && __builtin_cpu_supports("avx512f"))
        blocks_avx512(key, stream, b0, nblocks, w);
    else
        return 0;
    return 1;
}

void dat_philox_blocks_bulk(uint64_t key, uint64_t stream, uint64_t b0, size_t nblocks,
                            uint32_t *w)
{
    /* A benign race: every thread computes the same pointer. */
    static blocks_fn fn;
    blocks_fn f = __atomic_load_n(&fn, __ATOMIC_RELAXED);
    if (!f) {
        f = pick();
        __atomic_store_n(&fn, f, __ATOMIC_RELAXED);
    }
    f(key, stream, b0, nblocks, w);
}

#else

int dat_philox_blocks_variant(int variant, uint64_t key, uint64_t stream, uint64_t b0,
                              size_t nblocks, uint32_t *w)
{
    if (variant != 0)
        return 0;
    blocks_portable(key, stream, b0, nblocks, w);
    return 1;
}

void dat_philox_blocks_bulk(uint64_t key, uint64_t stream, uint64_t b0, size_t nblocks,
                            uint32_t *w)
{
    blocks_portable(key, stream, b0, nblocks, w);
}

#endif
