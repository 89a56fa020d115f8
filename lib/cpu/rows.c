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
#else
#define copy_rows_avx512 NULL
#define add_rows_avx512 NULL
#endif

static void copy_rows_portable(float *dst, size_t dst_step, const float *src, size_t src_step,
                               int rows, int n)
{
    for (int r = 0; r < rows; ++r, dst += dst_step, src += src_step)
#pragma omp simd
        for (int i = 0; i < n; ++i)
            dst[i] = src[i];
}

static void add_rows_portable(float *dst, size_t dst_step, const float *src, size_t src_step,
                              int rows, int n)
{
    for (int r = 0; r < rows; ++r, dst += dst_step, src += src_step)
#pragma omp simd
        for (int i = 0; i < n; ++i)
            dst[i] += src[i];
}

typedef void rows_fn(float *dst, size_t dst_step, const float *src, size_t src_step, int rows,
                     int n);

/* The AVX-512 version where this build has one and the CPU runs it. */
static rows_fn *pick(rows_fn *avx512, rows_fn *portable)
{
#ifdef DAT_ROWS_AVX512
    if (__builtin_cpu_supports("avx512f"))
        return avx512;
#else
    (void)avx512;
#endif
    return portable;
}

void dat_cpu_copy_rows(float *dst, size_t dst_step, const float *src, size_t src_step, int rows,
                       int n)
{
    pick(copy_rows_avx512, copy_rows_portable)(dst, dst_step, src, src_step, rows, n);
}

void dat_cpu_add_rows(float *dst, size_t dst_step, const float *src, size_t src_step, int rows,
                      int n)
{
    pick(add_rows_avx512, add_rows_portable)(dst, dst_step, src, src_step, rows, n);
}
