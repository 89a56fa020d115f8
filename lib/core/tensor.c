#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "error.h"

size_t dat_dtype_size(dat_dtype dtype)
{
    switch (dtype) {
    case DAT_FLOAT32: return 4;
    case DAT_BFLOAT16: return 2;
    case DAT_INT32: return 4;
    case DAT_UINT8: return 1;
    default: return 0;
    }
}

const char *dat_dtype_name(dat_dtype dtype)
{
    switch (dtype) {
    case DAT_FLOAT32: return "float32";
    case DAT_BFLOAT16: return "bfloat16";
    case DAT_INT32: return "int32";
    case DAT_UINT8: return "uint8";
    default: return "unknown";
    }
}

dat_status dat_shape_numel(const char *func, int32_t ndim, const int64_t *shape, int64_t *numel)
{
    if (ndim < 0 || ndim > DAT_TENSOR_MAX_DIMS)
        return dat_error(DAT_ERR_INVALID_ARG, func, "ndim = %d must be in [0, %d]", (int)ndim,
                         DAT_TENSOR_MAX_DIMS);
    if (ndim > 0 && !shape)
        return dat_error(DAT_ERR_INVALID_ARG, func, "shape must not be NULL when ndim = %d",
                         (int)ndim);
    int64_t n = 1;
    for (int32_t i = 0; i < ndim; ++i) {
        if (shape[i] <= 0)
            return dat_error(DAT_ERR_INVALID_ARG, func, "shape[%d] = %lld must be positive",
                             (int)i, (long long)shape[i]);
        if (shape[i] > DAT_TENSOR_MAX_NUMEL / n)
            return dat_error(DAT_ERR_INVALID_ARG, func,
                             "shape overflows: more than 2^40 elements at dimension %d", (int)i);
        n *= shape[i];
    }
    *numel = n;
    return DAT_OK;
}

dat_status dat_tensor_create(dat_tensor **out, dat_ctx *ctx, dat_dtype dtype, int32_t ndim,
                             const int64_t *shape)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(ctx);
    size_t esize = dat_dtype_size(dtype);
    if (esize == 0)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "dtype = %d is not a dat_dtype",
                         (int)dtype);
    int64_t numel;
    DAT_TRY(dat_shape_numel(__func__, ndim, shape, &numel));

    dat_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate a tensor");
    t->ctx = ctx;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int32_t i = 0; i < ndim; ++i)
        t->shape[i] = shape[i];
    t->numel = numel;
    t->nbytes = (size_t)numel * esize;
    dat_status s = ctx->be->alloc(ctx, t->nbytes, &t->data);
    if (s != DAT_OK) {
        free(t);
        return dat_error_context(s, __func__);
    }
    *out = t;
    return DAT_OK;
}

void dat_tensor_destroy(dat_tensor *tensor)
{
    if (!tensor)
        return;
    tensor->ctx->be->free(tensor->ctx, tensor->data);
    free(tensor);
}

dat_status dat_tensor_shape(const dat_tensor *tensor, int32_t *ndim, int64_t *shape)
{
    DAT_CHECK_NOT_NULL(tensor);
    if (ndim)
        *ndim = tensor->ndim;
    if (shape)
        memcpy(shape, tensor->shape, (size_t)tensor->ndim * sizeof *shape);
    return DAT_OK;
}

dat_status dat_tensor_dtype(const dat_tensor *tensor, dat_dtype *dtype)
{
    DAT_CHECK_NOT_NULL(tensor);
    DAT_CHECK_NOT_NULL(dtype);
    *dtype = tensor->dtype;
    return DAT_OK;
}

dat_status dat_tensor_numel(const dat_tensor *tensor, int64_t *numel)
{
    DAT_CHECK_NOT_NULL(tensor);
    DAT_CHECK_NOT_NULL(numel);
    *numel = tensor->numel;
    return DAT_OK;
}

dat_status dat_tensor_nbytes(const dat_tensor *tensor, size_t *nbytes)
{
    DAT_CHECK_NOT_NULL(tensor);
    DAT_CHECK_NOT_NULL(nbytes);
    *nbytes = tensor->nbytes;
    return DAT_OK;
}

dat_status dat_tensor_reshape(dat_tensor *tensor, int32_t ndim, const int64_t *shape)
{
    DAT_CHECK_NOT_NULL(tensor);
    int64_t numel;
    DAT_TRY(dat_shape_numel(__func__, ndim, shape, &numel));
    if (numel != tensor->numel)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "new shape has %lld elements, the tensor has %lld", (long long)numel,
                         (long long)tensor->numel);
    tensor->ndim = ndim;
    for (int32_t i = 0; i < ndim; ++i)
        tensor->shape[i] = shape[i];
    return DAT_OK;
}

dat_status dat_tensor_host_data(dat_tensor *tensor, void **data)
{
    DAT_CHECK_NOT_NULL(tensor);
    DAT_CHECK_NOT_NULL(data);
    if (tensor->ctx->opts.device != DAT_DEVICE_CPU) {
        *data = NULL;
        return dat_error(DAT_ERR_UNSUPPORTED, __func__,
                         "the tensor lives on a CUDA device: use dat_tensor_read");
    }
    *data = tensor->data;
    return DAT_OK;
}

static dat_status check_nbytes(const char *func, const dat_tensor *t, size_t nbytes)
{
    if (nbytes != t->nbytes)
        return dat_error(DAT_ERR_INVALID_ARG, func,
                         "nbytes = %zu, but the %s tensor of %lld elements has %zu bytes", nbytes,
                         dat_dtype_name(t->dtype), (long long)t->numel, t->nbytes);
    return DAT_OK;
}

dat_status dat_tensor_write(dat_tensor *tensor, const void *src, size_t nbytes)
{
    DAT_CHECK_NOT_NULL(tensor);
    DAT_CHECK_NOT_NULL(src);
    DAT_TRY(check_nbytes(__func__, tensor, nbytes));
    return tensor->ctx->be->copy_from_host(tensor->ctx, tensor->data, src, nbytes);
}

dat_status dat_tensor_read(const dat_tensor *tensor, void *dst, size_t nbytes)
{
    DAT_CHECK_NOT_NULL(tensor);
    DAT_CHECK_NOT_NULL(dst);
    DAT_TRY(check_nbytes(__func__, tensor, nbytes));
    return tensor->ctx->be->copy_to_host(tensor->ctx, dst, tensor->data, nbytes);
}

static int same_shape(const dat_tensor *a, const dat_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int32_t i = 0; i < a->ndim; ++i)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

/* Copies between two contexts through host memory: the only path that works
 * for every pair of backends. */
static dat_status copy_across(dat_tensor *dst, const dat_tensor *src)
{
    if (dst->ctx->opts.device == DAT_DEVICE_CPU)
        return src->ctx->be->copy_to_host(src->ctx, dst->data, src->data, src->nbytes);
    if (src->ctx->opts.device == DAT_DEVICE_CPU)
        return dst->ctx->be->copy_from_host(dst->ctx, dst->data, src->data, src->nbytes);
    void *staging = malloc(src->nbytes ? src->nbytes : 1);
    if (!staging)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_tensor_copy",
                         "cannot allocate %zu bytes of host staging", src->nbytes);
    dat_status s = src->ctx->be->copy_to_host(src->ctx, staging, src->data, src->nbytes);
    if (s == DAT_OK)
        s = dst->ctx->be->copy_from_host(dst->ctx, dst->data, staging, src->nbytes);
    free(staging);
    return s;
}

dat_status dat_tensor_copy(dat_tensor *dst, const dat_tensor *src)
{
    DAT_CHECK_NOT_NULL(dst);
    DAT_CHECK_NOT_NULL(src);
    if (dst->dtype != src->dtype)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "dtypes differ: dst is %s, src is %s",
                         dat_dtype_name(dst->dtype), dat_dtype_name(src->dtype));
    if (!same_shape(dst, src))
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "shapes differ: dst has %lld elements in %d dims, src %lld in %d",
                         (long long)dst->numel, (int)dst->ndim, (long long)src->numel,
                         (int)src->ndim);
    if (dst == src)
        return DAT_OK;
    if (dst->ctx == src->ctx)
        return dst->ctx->be->copy(dst->ctx, dst->data, src->data, src->nbytes);
    return copy_across(dst, src);
}

/* The bit pattern of value in dtype, or an error if it does not fit. */
static dat_status encode_value(dat_dtype dtype, double value, uint32_t *pattern)
{
    switch (dtype) {
    case DAT_FLOAT32: {
        float f = (float)value;
        memcpy(pattern, &f, sizeof f);
        return DAT_OK;
    }
    case DAT_BFLOAT16:
        *pattern = dat_f32_to_bf16_bits((float)value);
        return DAT_OK;
    case DAT_INT32:
    case DAT_UINT8: {
        double lo = dtype == DAT_INT32 ? -2147483648.0 : 0.0;
        double hi = dtype == DAT_INT32 ? 2147483647.0 : 255.0;
        if (!(value >= lo && value <= hi) || value != floor(value))
            return dat_error(DAT_ERR_INVALID_ARG, "dat_tensor_fill",
                             "value %g is not representable as %s", value, dat_dtype_name(dtype));
        if (dtype == DAT_INT32) {
            int32_t i = (int32_t)value;
            memcpy(pattern, &i, sizeof i);
        } else {
            *pattern = (uint8_t)value;
        }
        return DAT_OK;
    }
    default:
        return dat_error(DAT_ERR_INTERNAL, "dat_tensor_fill", "unknown dtype %d", (int)dtype);
    }
}

dat_status dat_tensor_fill(dat_tensor *tensor, double value)
{
    DAT_CHECK_NOT_NULL(tensor);
    uint32_t pattern = 0;
    DAT_TRY(encode_value(tensor->dtype, value, &pattern));
    size_t esize = dat_dtype_size(tensor->dtype);
    /* The pattern's low bytes hold the value on the little-endian hosts libdat supports. */
    return tensor->ctx->be->fill(tensor->ctx, tensor->data, (size_t)tensor->numel, &pattern,
                                 esize);
}

typedef dat_status (*rng_fn)(dat_ctx *, float *, size_t, float, float, uint64_t, uint64_t,
                             const uint64_t *, uint64_t);

/* float32 tensors are filled in place; bfloat16 through a float32 scratch, so
 * both dtypes take the same draws. */
static dat_status fill_random(const char *func, dat_tensor *t, rng_fn rng, float a, float b,
                              uint64_t stream, uint64_t offset)
{
    dat_ctx *ctx = t->ctx;
    size_t n = (size_t)t->numel;
    if (t->dtype == DAT_FLOAT32)
        return rng(ctx, t->data, n, a, b, ctx->opts.seed, stream, NULL, offset);
    if (t->dtype != DAT_BFLOAT16)
        return dat_error(DAT_ERR_INVALID_ARG, func,
                         "random fills need a float32 or bfloat16 tensor, not %s",
                         dat_dtype_name(t->dtype));
    void *scratch = NULL;
    DAT_TRY(ctx->be->alloc(ctx, n * sizeof(float), &scratch));
    dat_status s = rng(ctx, scratch, n, a, b, ctx->opts.seed, stream, NULL, offset);
    if (s == DAT_OK)
        s = ctx->be->f32_to_bf16(ctx, t->data, scratch, n);
    ctx->be->free(ctx, scratch);
    return s;
}

dat_status dat_tensor_fill_uniform(dat_tensor *tensor, float low, float high, uint64_t stream,
                                   uint64_t offset)
{
    DAT_CHECK_NOT_NULL(tensor);
    /* The generator scales by high - low in float: a width past FLT_MAX would
     * fill every element with inf. */
    if (!isfinite(low) || !isfinite(high) || low > high || !isfinite(high - low))
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "need finite low <= high with a finite width high - low, got low = %g, "
                         "high = %g", (double)low, (double)high);
    return fill_random(__func__, tensor, tensor->ctx->be->rng_uniform, low, high, stream, offset);
}

dat_status dat_tensor_fill_normal(dat_tensor *tensor, float mean, float std, uint64_t stream,
                                  uint64_t offset)
{
    DAT_CHECK_NOT_NULL(tensor);
    if (!isfinite(mean) || !isfinite(std) || std < 0)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "need finite mean and std >= 0, got mean = %g, std = %g", (double)mean,
                         (double)std);
    return fill_random(__func__, tensor, tensor->ctx->be->rng_normal, mean, std, stream, offset);
}
