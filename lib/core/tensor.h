/* The tensor as libdat sees it inside. */
#ifndef LIBDAT_CORE_TENSOR_H
#define LIBDAT_CORE_TENSOR_H

#include "ctx.h"
#include "libdat/dat_tensor.h"

/* The most elements a tensor holds: far beyond any device, and it keeps byte
 * counts (and encoded sizes, quantizer.c) far inside size_t. */
#define DAT_TENSOR_MAX_NUMEL ((int64_t)1 << 40)

struct dat_tensor {
    dat_ctx *ctx;
    dat_dtype dtype;
    int32_t ndim;
    int64_t shape[DAT_TENSOR_MAX_DIMS];
    int64_t numel;
    size_t nbytes;
    void *data; /* in the context's device memory */
};

/* Element count of a shape; fails with a message on a bad or overflowing shape. */
dat_status dat_shape_numel(const char *func, int32_t ndim, const int64_t *shape, int64_t *numel);

#endif
