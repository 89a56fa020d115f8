/* Grouped quantizer codes and packed values: AVX-512 and portable variants,
 * picked once. */
#include "codes_simd.h"

#include <string.h>

#include "../core/clones.h"
#include "pack.h"

enum { G = DAT_QUANT_GROUP, H = DAT_QUANT_GROUP / 2 };

/* Element j of a group takes the low half of word j (j < H), element H + j
 * the high half. The loop is cloned for the widths so each stays vectorized. */
#define DAT_CODES_PORTABLE(name, T)                                                         \
    DAT_CLONES                                                                        \
    static void name(const float *v, const uint32_t *w, size_t len, dat_quant_scale ks,     \
                     uint32_t s, int bits, T *out)                                          \
    {                                                                                       \
        for (size_t k = 0; k < len; k += G) {                                               \
            const uint32_t *wk = w + k / 2;                                                 \
            _Pragma("omp simd") for (size_t j = 0; j < H; ++j)                              \
            {                                                                               \
                out[k + j] = (T)dat_quant_code(v[k + j], ks, s, wk[j] & 0xffffu, bits);     \
                out[k + H + j] = (T)dat_quant_code(v[k + H + j], ks, s, wk[j] >> 16, bits); \
            }                                                                               \
        }                                                                                   \
    }

DAT_CODES_PORTABLE(codes_portable8, uint8_t)
DAT_CODES_PORTABLE(codes_portable16, uint16_t)
DAT_CODES_PORTABLE(codes_portable32, uint32_t)

static void codes_portable(const float *v, const uint32_t *w, size_t len, dat_quant_scale ks,
                           uint32_t s, int bits, void *out, int width)
{
    if (width < 8) { /* a group at a time, packed from 32-bit codes (whole words) */
        uint32_t code[G];
        dat_packer pk;
        dat_packer_init(&pk, out, width);
        for (size_t k = 0; k < len; k += G) {
            codes_portable32(v + k, w + k / 2, G, ks, s, bits, code);
            dat_pack(&pk, code, G);
        }
    } else if (width == 8)
        codes_portable8(v, w, len, ks, s, bits, out);
    else if (width == 16)
        codes_portable16(v, w, len, ks, s, bits, out);
    else
        codes_portable32(v, w, len, ks, s, bits, out);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* The constants of one bucket, in registers. */
typedef struct codes512 {
    __m512i abs_mask, sign_bit, code_sign;
    __m512 pre, scale, cap;
    int scale_only; /* pre == 1: |v| * pre is |v| itself */
} codes512;

/*
 * dat_quant_code on 16 values, nu = 65535 - u16: the rounding conversion
 * towards +inf gives c = ceil(2^16 r) in one instruction, then
 * xi = (c + nu) >> 16, and the sign goes in only where v is negative and
 * xi > 0 (a -0 has its sign bit set, but codes 0).
 */
__attribute__((target("avx512f"))) static inline __m512i code16(const codes512 *k, const float *p,
                                                                __m512i nu)
{
    __m512i x = _mm512_loadu_si512((const void *)p);
    __m512 r = _mm512_castsi512_ps(_mm512_and_si512(x, k->abs_mask));
    if (!k->scale_only)
        r = _mm512_mul_ps(r, k->pre);
    r = _mm512_min_ps(_mm512_mul_ps(r, k->scale), k->cap);
    __m512i c = _mm512_cvt_roundps_epi32(r, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    __m512i xi = _mm512_srli_epi32(_mm512_add_epi32(c, nu), 16);
    __mmask16 neg = _mm512_test_epi32_mask(x, k->sign_bit);
    __mmask16 put = _mm512_mask_test_epi32_mask(neg, xi, xi);
    return _mm512_mask_or_epi32(xi, put, xi, k->code_sign);
}

/* 16 codes to out at element `at`: 4 or 2 bits per code are first narrowed to
 * bytes, then multiply-added in pairs (c0 + 16 c1, or c0 + 4 c1 + 16 c2 + 64 c3:
 * no carries, every sum < 256) and packed. */
__attribute__((target("avx512f"))) static inline void store16(void *out, size_t at, __m512i c,
                                                              int width)
{
    uint8_t *o = (uint8_t *)out;
    if (width == 32) {
        _mm512_storeu_si512((void *)(o + 4 * at), c);
    } else if (width == 16) {
        _mm256_storeu_si256((__m256i *)(o + 2 * at), _mm512_cvtepi32_epi16(c));
    } else if (width == 8) {
        _mm_storeu_si128((__m128i *)(o + at), _mm512_cvtepi32_epi8(c));
    } else if (width == 4) {
        __m128i p = _mm_maddubs_epi16(_mm512_cvtepi32_epi8(c), _mm_set1_epi16(0x1001));
        _mm_storel_epi64((__m128i *)(o + at / 2), _mm_packus_epi16(p, p));
    } else {
        __m128i p = _mm_maddubs_epi16(_mm512_cvtepi32_epi8(c), _mm_set1_epi16(0x0401));
        p = _mm_madd_epi16(p, _mm_set1_epi32(0x00100001));
        p = _mm_packus_epi16(_mm_packus_epi32(p, p), p);
        int32_t v = _mm_cvtsi128_si32(p);
        memcpy(o + at / 4, &v, 4);
    }
}

__attribute__((target("avx512f"))) static void codes_avx512(const float *v, const uint32_t *w,
                                                            size_t len, dat_quant_scale ks,
                                                            uint32_t s, int bits, void *out,
                                                            int width)
{
    codes512 k = {
        .abs_mask = _mm512_set1_epi32(0x7fffffff),
        .sign_bit = _mm512_set1_epi32((int)0x80000000u),
        .code_sign = _mm512_set1_epi32((int)(1u << (bits - 1))),
        .pre = _mm512_set1_ps(ks.pre),
        .scale = _mm512_set1_ps(ks.scale),
        .cap = _mm512_set1_ps((float)(s << 16)),
        .scale_only = ks.pre == 1.0f,
    };
    const __m512i low16 = _mm512_set1_epi32(0xffff);
    for (size_t i = 0; i < len; i += G) {
        /* 65535 - u16 of both halves: the complement's low and high halves. */
        __m512i wv = _mm512_loadu_si512(w + i / 2);
        __m512i nw = _mm512_ternarylogic_epi32(wv, wv, wv, 0x55); /* ~w */
        store16(out, i, code16(&k, v + i, _mm512_and_si512(nw, low16)), width);
        store16(out, i + H, code16(&k, v + i + H, _mm512_srli_epi32(nw, 16)), width);
    }
}

typedef void (*codes_fn)(const float *, const uint32_t *, size_t, dat_quant_scale, uint32_t, int,
                         void *, int);

static codes_fn pick(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? codes_avx512 : codes_portable;
}

int dat_quant_codes_variant(int variant, const float *v, const uint32_t *w, size_t len,
                            dat_quant_scale ks, uint32_t s, int bits, void *out, int width)
{
    __builtin_cpu_init();
    if (variant == 0)
        codes_portable(v, w, len, ks, s, bits, out, width);
    else if (variant == 1 && __builtin_cpu_supports("avx512f"))
        codes_avx512(v, w, len, ks, s, bits, out, width);
    else
        return 0;
    return 1;
}

void dat_quant_codes_grouped(const float *v, const uint32_t *w, size_t len, dat_quant_scale ks,
                             uint32_t s, int bits, void *out, int width)
{
    /* A benign race: every thread computes the same pointer. */
    static codes_fn fn;
    codes_fn f = __atomic_load_n(&fn, __ATOMIC_RELAXED);
    if (!f) {
        f = pick();
        __atomic_store_n(&fn, f, __ATOMIC_RELAXED);
    }
    f(v, w, len, ks, s, bits, out, width);
}

/* 16 codes of the packed layout at element i, one per 32-bit lane. */
__attribute__((target("avx512f"))) static inline __m512i load16(const uint8_t *in, size_t i,
                                                                int bits)
{
    if (bits == 16)
        return _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(in + 2 * i)));
    if (bits == 8)
        return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(in + i)));
    if (bits == 4) { /* the nibbles of 8 bytes, low then high, as 16 bytes */
        __m128i x = _mm_loadl_epi64((const __m128i *)(in + i / 2)), m = _mm_set1_epi8(15);
        __m128i lo = _mm_and_si128(x, m), hi = _mm_and_si128(_mm_srli_epi16(x, 4), m);
        return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));
    }
    int32_t x; /* 2 bits: lane j shifts 4 bytes right by 2 j */
    memcpy(&x, in + i / 4, 4);
    const __m512i shift = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                            28, 30);
    return _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(x), shift),
                            _mm512_set1_epi32(3));
}

/* Values of packed codes: up to 4 bits from a table of the 2^b values in one
 * register (one permute per 16 codes), wider ones as (float) xi * step with
 * the sign bit flipped in; each the bits of dat_quant_value. */
__attribute__((target("avx512f"))) static void values_avx512(const uint8_t *in, size_t len,
                                                             float step, int bits, float *out,
                                                             int accumulate, float scale)
{
    float t[16] = {0};
    for (uint32_t c = 0; bits <= 4 && c < (1u << bits); ++c)
        t[c] = dat_quant_value(c, step, bits);
    const __m512 table = _mm512_loadu_ps(t), vstep = _mm512_set1_ps(step);
    const __m512 vscale = _mm512_set1_ps(scale);
    const __m512i level = _mm512_set1_epi32((int)((1u << (bits - 1)) - 1u));
    for (size_t i = 0; i < len; i += 16) {
        __m512i c = load16(in, i, bits);
        __m512 q;
        if (bits <= 4) {
            q = _mm512_permutexvar_ps(c, table);
        } else {
            __m512 m = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(c, level)), vstep);
            __m512i sign = _mm512_slli_epi32(_mm512_srli_epi32(c, (unsigned)(bits - 1)), 31);
            q = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(m), sign));
        }
        q = _mm512_mul_ps(q, vscale);
        if (accumulate)
            q = _mm512_add_ps(_mm512_loadu_ps(out + i), q);
        _mm512_storeu_ps(out + i, q);
    }
}

int dat_quant_values_variant(int variant, const uint8_t *in, size_t len, float step, int bits,
                             float *out, int accumulate, float scale)
{
    __builtin_cpu_init();
    if (variant != 1 || !__builtin_cpu_supports("avx512f"))
        return 0;
    values_avx512(in, len, step, bits, out, accumulate, scale);
    return 1;
}

int dat_quant_values_packed(const uint8_t *in, size_t len, float step, int bits, float *out,
                            int accumulate, float scale)
{
    static int have = -1; /* a benign race, as above */
    int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
    if (h < 0) {
        __builtin_cpu_init();
        h = __builtin_cpu_supports("avx512f") ? 1 : 0;
        __atomic_store_n(&have, h, __ATOMIC_RELAXED);
    }
    if (!h)
        return 0;
    values_avx512(in, len, step, bits, out, accumulate, scale);
    return 1;
}

#else

int dat_quant_values_variant(int variant, const uint8_t *in, size_t len, float step, int bits,
                             float *out, int accumulate, float scale)
{
    (void)variant, (void)in, (void)len, (void)step, (void)bits, (void)out, (void)accumulate;
    (void)scale;
    return 0;
}

int dat_quant_values_packed(const uint8_t *in, size_t len, float step, int bits, float *out,
                            int accumulate, float scale)
{
    return dat_quant_values_variant(1, in, len, step, bits, out, accumulate, scale);
}

int dat_quant_codes_variant(int variant, const float *v, const uint32_t *w, size_t len,
                            dat_quant_scale ks, uint32_t s, int bits, void *out, int width)
{
    if (variant != 0)
        return 0;
    codes_portable(v, w, len, ks, s, bits, out, width);
    return 1;
}

void dat_quant_codes_grouped(const float *v, const uint32_t *w, size_t len, dat_quant_scale ks,
                             uint32_t s, int bits, void *out, int width)
{
    codes_portable(v, w, len, ks, s, bits, out, width);
}

#endif
