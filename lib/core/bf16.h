/* bfloat16 conversions, shared by the CPU backend and the CUDA kernels. */
#ifndef LIBDAT_CORE_BF16_H
#define LIBDAT_CORE_BF16_H

#include <stdint.h>
#include <string.h>

#include "philox.h" /* DAT_HD */

/* Round to nearest even; NaN stays a (quiet) NaN. */
DAT_HD uint16_t dat_f32_to_bf16_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

DAT_HD float dat_bf16_bits_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#endif
