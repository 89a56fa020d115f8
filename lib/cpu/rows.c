/* Copies and sums of short rows, the inner loops of the per-sample convolution
 * (rows of 7 to 32 floats). Compiled vector loops leave such rows to their scalar
 * tails; with AVX-512 one masked load and store moves up to 16 floats. The CPU is
 * asked once per call; both versions give the same bits. */
#include <stdint.h>

#include "cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DAT_ROWS_AVX512 1

__attribute__((target("avx512f"))) static void copy_rows_avx512(float *dst, size_t dst_step,
                                                                const float *src,
                                                                size_t src_step, int rows,
                                                                int n)
{
    __mmask16 tail = (__mmask16)((1u << (n & 15)) - 1);
    for (int r = 0; r < rows; ++r, dst += dst_step, src += src_step) {
        int i = 0;
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
        if (tail)
            _mm512_mask_storeu_ps(dst + i, tail, _mm512_maskz_loadu_ps(tail, src + i));
    }
}

__attribute__((target("avx512f"))) static void add_rows_avx512(float *dst, size_t dst_step,
                                                               const float *src,
                                                               size_t src_step, int rows, int n)
{
    __mmask16 tail = (__mmask16)((1u << (n & 15)) - 1);
    for (int r = 0; r < rows; ++r, dst += dst_step, src += src_step) {
        int i = 0;
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(dst + i, _mm512_add_ps(_mm512_loadu_ps(dst + i),
                                                    _mm512_loadu_ps(src + i)));
        if (tail)
            _mm512_mask_storeu_ps(dst + i, tail,
                                  _mm512_add_ps(_mm512_maskz_loadu_ps(tail, dst + i),
                                                _mm512_maskz_loadu_ps(tail, src + i)));
    }
}
#endif

static int have_avx512(void)
{
#ifdef DAT_ROWS_AVX512
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

void dat_cpu_copy_rows(float *dst, size_t dst_step, const float *src, size_t src_step, int rows,
                       int n)
{
#ifdef DAT_ROWS_AVX512
    if (have_avx512()) {
        copy_rows_avx512(dst, dst_step, src, src_step, rows, n);
        return;
    }
#endif
    for (int r = 0; r < rows; ++r, dst += dst_step, src += src_step)
#pragma omp simd
        for (int i = 0; i < n; ++i)
            dst[i] = src[i];
}

void dat_cpu_add_rows(float *dst, size_t dst_step, const float *src, size_t src_step, int rows,
                      int n)
{
#ifdef DAT_ROWS_AVX512
    if (have_avx512()) {
        add_rows_avx512(dst, dst_step, src, src_step, rows, n);
        return;
    }
#endif
    for (int r = 0; r < rows; ++r, dst += dst_step, src += src_step)
#pragma omp simd
        for (int i = 0; i < n; ++i)
            dst[i] += src[i];
}
