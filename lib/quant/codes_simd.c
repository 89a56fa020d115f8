/* Grouped quantizer codes: AVX-512 and portable variants, picked once. */
#include "codes_simd.h"

#include "clones.h"

enum { G = DAT_QUANT_GROUP, H = DAT_QUANT_GROUP / 2 };

/* Element j of a group takes the low half of word j (j < H), element H + j
 * the high half. The loop is cloned for the widths so each stays vectorized. */
#define DAT_CODES_PORTABLE(name, T)                                                         \
    DAT_QUANT_CLONES                                                                        \
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
    if (width == 8)
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

__attribute__((target("avx512f"))) static inline void store16(void *out, size_t at, __m512i c,
                                                              int width)
{
    if (width == 8)
        _mm_storeu_si128((__m128i *)((uint8_t *)out + at), _mm512_cvtepi32_epi8(c));
    else if (width == 16)
        _mm256_storeu_si256((__m256i *)((uint16_t *)out + at), _mm512_cvtepi32_epi16(c));
    else
        _mm512_storeu_si512((void *)((uint32_t *)out + at), c);
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

#else

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
