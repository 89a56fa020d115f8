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

/* A run of n stored pixels src[first + k step], k = 0 .. n - 1, to floats:
 * step 1 (a CHW row), -1 (mirrored), or +-c (an HWC row). uint8 becomes
 * v / 255, a correctly rounded float division as PyTorch's ToTensor computes
 * it. The loops are branch-free so the compiler vectorizes the CHW ones. */
static void convert_run(const void *src, dat_dtype dtype, size_t first, int32_t n,
                        ptrdiff_t step, float *dst)
{
    if (dtype == DAT_UINT8) {
        const unsigned char *s = (const unsigned char *)src + first;
        if (step == 1)
            for (int32_t k = 0; k < n; ++k)
                dst[k] = (float)s[k] / 255.0f;
        else
            for (int32_t k = 0; k < n; ++k)
                dst[k] = (float)s[k * step] / 255.0f;
    } else {
        const float *s = (const float *)src + first;
        if (step == 1)
            memcpy(dst, s, (size_t)n * sizeof *dst);
        else
            for (int32_t k = 0; k < n; ++k)
                dst[k] = s[k * step];
    }
}

void dat_augment_render(const void *src, dat_dtype dtype, int nhwc, int32_t c, int32_t h,
                        int32_t w, int32_t padding, dat_augment_draw d, float *dst)
{
    int32_t oy = d.dy - padding, ox = d.dx - padding; /* source = output + offset */
    /* Output column x reads source column x + ox (or w - 1 - x + ox when
     * mirrored); [x0, x1) are the columns whose source lies in the image. */
    int32_t x0 = d.flip ? ox : -ox, x1 = d.flip ? w + ox : w - ox;
    x0 = x0 < 0 ? 0 : x0 > w ? w : x0;
    x1 = x1 < x0 ? x0 : x1 > w ? w : x1;
    size_t plane = (size_t)h * w;
    ptrdiff_t pixel = nhwc ? c : 1; /* elements from one column to the next */
    for (int32_t ch = 0; ch < c; ++ch) {
        for (int32_t y = 0; y < h; ++y) {
            float *row = dst + ch * plane + (size_t)y * w;
            int32_t sy = y + oy;
            if (sy < 0 || sy >= h || x0 == x1) {
                memset(row, 0, (size_t)w * sizeof *row);
                continue;
            }
            int32_t sx0 = (d.flip ? w - 1 - x0 : x0) + ox;
            size_t first = nhwc ? ((size_t)sy * w + (size_t)sx0) * (size_t)c + (size_t)ch
                                : ch * plane + (size_t)sy * w + (size_t)sx0;
            memset(row, 0, (size_t)x0 * sizeof *row);
            convert_run(src, dtype, first, x1 - x0, d.flip ? -pixel : pixel, row + x0);
            memset(row + x1, 0, (size_t)(w - x1) * sizeof *row);
        }
    }
}
