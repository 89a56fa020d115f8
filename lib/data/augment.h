/*
 * Per-sample augmentation: random crop of the zero-padded image and
 * horizontal flip, drawn from Philox by (seed, epoch, sample index), fused
 * with the conversion of the stored pixels to float32 (dat_data.h gives the
 * exact rule).
 */
#ifndef LIBDAT_DATA_AUGMENT_H
#define LIBDAT_DATA_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "libdat/dat_common.h"

typedef struct dat_augment_draw {
    int32_t dy, dx; /* crop offset in the padded image, 0..2p; p, p = no crop */
    int32_t flip;   /* 1 = mirror left-right */
} dat_augment_draw;

/* The draw of a sample; crop / flip off give the identity's parts. */
dat_augment_draw dat_augment_sample(uint64_t seed, int64_t epoch, int64_t sample, int crop,
                                    int flip, int32_t padding);

/* Writes one c x h x w sample as float32 CHW (uint8 / 255, float32 as is),
 * cropped and flipped by d with padding p. src is the stored sample, CHW, or
 * HWC when nhwc. */
void dat_augment_render(const void *src, dat_dtype dtype, int nhwc, int32_t c, int32_t h,
                        int32_t w, int32_t padding, dat_augment_draw d, float *dst);

#endif
