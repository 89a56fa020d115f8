/*
 * Division by a divisor fixed for a whole kernel launch, by a multiply-high
 * and a shift instead of an integer division (Granlund and Montgomery; the
 * form of PyTorch's IntDivider): exact for n and d below 2^31. The CUDA
 * kernels use it for the channel of an element, (i / hw) % c, where a 64-bit
 * division per element would cost more than the element's memory traffic;
 * shared with the host so that a CPU test can check it.
 */
#ifndef LIBDAT_CORE_FAST_DIV_H
#define LIBDAT_CORE_FAST_DIV_H

#include <stdint.h>

#include "philox.h" /* DAT_HD */

typedef struct dat_fast_div {
    uint32_t d, m, s; /* n / d = (umulhi(n, m) + n) >> s */
} dat_fast_div;

/* For 1 <= d < 2^31: s = ceil(log2 d), m = floor(2^32 (2^s - d) / d) + 1 (< 2^32). */
DAT_HD dat_fast_div dat_fast_div_make(uint32_t d)
{
    dat_fast_div f;
    f.d = d;
    f.s = 0;
    while (((uint64_t)1 << f.s) < d)
        f.s++;
    f.m = (uint32_t)((((uint64_t)1 << 32) * (((uint64_t)1 << f.s) - d)) / d + 1);
    return f;
}

DAT_HD uint32_t dat_umulhi(uint32_t a, uint32_t b)
{
#if defined(__CUDA_ARCH__)
    return __umulhi(a, b);
#else
    return (uint32_t)(((uint64_t)a * b) >> 32);
#endif
}

/* n / d for n < 2^31 (umulhi(n, m) < n, so the sum fits 32 bits). */
DAT_HD uint32_t dat_fast_div_q(dat_fast_div f, uint32_t n)
{
    return (dat_umulhi(n, f.m) + n) >> f.s;
}

#endif
