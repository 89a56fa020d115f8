#include "augment.h"

#include <string.h>

#include "../core/philox.h"
#include "shuffle.h"

dat_augment_draw dat_augment_sample(uint64_t seed, int64_t epoch, int64_t sample, int crop,
                                    int flip, int32_t padding)
{
    dat_augment_draw d = {padding, padding, 0};
    if (!crop && !flip)
        return d;
    dat_philox_ctr c =
        dat_philox_block(seed, DAT_AUGMENT_STREAM + (uint64_t)epoch, (uint64_t)sample);
    uint64_t span = 2 * (uint64_t)padding + 1;
    if (crop) {
        d.dy = (int32_t)(((uint64_t)c.v[0] * span) >> 32);
        d.dx = (int32_t)(((uint64_t)c.v[1] * span) >> 32);
    }
    if (flip)
        d.flip = (int32_t)(c.v[2] >> 31);
    return d;
}

/* uint8 / 255 as every backend and PyTorch's ToTensor compute it: a float
 * division, correctly rounded. */
static inline float pixel(const void *src, dat_dtype dtype, size_t i)
{
    if (dtype == DAT_UINT8)
        return (float)((const unsigned char *)src)[i] / 255.0f;
    return ((const float *)src)[i];
}

void dat_augment_render(const void *src, dat_dtype dtype, int32_t c, int32_t h, int32_t w,
                        int32_t padding, dat_augment_draw d, float *dst)
{
    int32_t oy = d.dy - padding, ox = d.dx - padding; /* source = output + offset */
    size_t plane = (size_t)h * w;
    for (int32_t ch = 0; ch < c; ++ch) {
        size_t base = (size_t)ch * plane;
        for (int32_t y = 0; y < h; ++y) {
            float *row = dst + base + (size_t)y * w;
            int32_t sy = y + oy;
            if (sy < 0 || sy >= h) {
                memset(row, 0, (size_t)w * sizeof *row);
                continue;
            }
            size_t srow = base + (size_t)sy * w;
            for (int32_t x = 0; x < w; ++x) {
                int32_t sx = (d.flip ? w - 1 - x : x) + ox;
                row[x] = sx < 0 || sx >= w ? 0.0f : pixel(src, dtype, srow + (size_t)sx);
            }
        }
    }
}
