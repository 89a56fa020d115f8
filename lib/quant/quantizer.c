/* The public dat_quantizer: options, tensors, staging and error feedback. */
#include "quantizer.h"

#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/tensor.h"
#include "quant_math.h"

/* The first released layout of dat_quantizer_options: every field up to seed. */
#define DAT_QUANTIZER_OPTIONS_MIN_SIZE sizeof(dat_quantizer_options)

dat_status dat_quantizer_options_init(dat_quantizer_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    *opts = (dat_quantizer_options){
        .size = sizeof(dat_quantizer_options),
        .bits = 8,
        .bucket_size = DAT_QUANT_DEFAULT_BUCKET,
        .norm = DAT_QUANT_NORM_L2,
        .rank = 0,
        .error_feedback = 0,
        .seed = 0,
    };
    return DAT_OK;
}

static dat_status check_options(const dat_quantizer_options *o)
{
    const char *f = "dat_quantizer_create";
    if (!((o->bits >= 2 && o->bits <= 16) || o->bits == DAT_QUANT_PASSTHROUGH))
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "opts->bits = %d must be in [2, 16], or 32 for pass-through",
                         (int)o->bits);
    if (o->bucket_size < 1 || o->bucket_size > DAT_QUANT_MAX_BUCKET)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->bucket_size = %d must be in [1, %d]",
                         (int)o->bucket_size, DAT_QUANT_MAX_BUCKET);
    if (o->norm != DAT_QUANT_NORM_L2 && o->norm != DAT_QUANT_NORM_MAX)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->norm = %d is not a dat_quant_norm",
                         (int)o->norm);
    if (o->rank < 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->rank = %d must be >= 0", (int)o->rank);
    if (o->error_feedback != 0 && o->error_feedback != 1)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->error_feedback = %d must be 0 or 1",
                         (int)o->error_feedback);
    return DAT_OK;
}

dat_status dat_quantizer_create(dat_quantizer **out, dat_ctx *ctx,
                                const dat_quantizer_options *opts)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(ctx);
    dat_quantizer_options o;
    dat_quantizer_options_init(&o);
    if (opts) {
        DAT_CHECK_OPTIONS_SIZE(opts, dat_quantizer_options, DAT_QUANTIZER_OPTIONS_MIN_SIZE);
        o = *opts;
        o.size = sizeof o;
    }
    DAT_TRY(check_options(&o));
    dat_quantizer *q = calloc(1, sizeof *q);
    if (!q)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate a quantizer");
    q->ctx = ctx;
    q->opts = o;
    q->cfg = (dat_quant_config){.bits = o.bits, .bucket = o.bucket_size, .norm = o.norm};
    *out = q;
    return DAT_OK;
}

void dat_quantizer_destroy(dat_quantizer *q)
{
    if (!q)
        return;
    free(q->residual);
    free(q->staging);
    free(q);
}

dat_status dat_quantizer_options_get(const dat_quantizer *q, dat_quantizer_options *opts)
{
    DAT_CHECK_NOT_NULL(q);
    DAT_CHECK_NOT_NULL(opts);
    *opts = q->opts;
    return DAT_OK;
}

dat_status dat_quantizer_encoded_size(const dat_quantizer *q, int64_t n, size_t *bytes)
{
    DAT_CHECK_NOT_NULL(q);
    DAT_CHECK_NOT_NULL(bytes);
    if (n < 0)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "n = %lld must be >= 0", (long long)n);
    *bytes = dat_quant_encoded_bytes(&q->cfg, (size_t)n);
    return DAT_OK;
}

/* Grows a zero-filled float buffer to at least n elements (never shrinks). */
static dat_status grow(const char *func, float **buf, size_t *len, size_t n, int zero_new)
{
    if (n <= *len)
        return DAT_OK;
    float *p = realloc(*buf, n * sizeof *p);
    if (!p)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, func, "cannot allocate %zu floats", n);
    if (zero_new)
        memset(p + *len, 0, (n - *len) * sizeof *p);
    *buf = p;
    *len = n;
    return DAT_OK;
}

dat_status dat_quantizer_staging(dat_quantizer *q, size_t n, float **buf)
{
    DAT_TRY(grow("dat_quantizer_staging", &q->staging, &q->staging_len, n, 0));
    *buf = q->staging;
    return DAT_OK;
}

dat_status dat_quantizer_encode_slice(dat_quantizer *q, const char *func, const float *x,
                                      size_t n, uint64_t offset, uint32_t rank, uint64_t step,
                                      uint32_t phase, int use_residual, void *codes)
{
    float *residual = NULL;
    if (q->opts.error_feedback && use_residual) {
        DAT_TRY(grow(func, &q->residual, &q->residual_len, (size_t)offset + n, 1));
        residual = q->residual + offset;
    }
    uint64_t stream = dat_quant_stream(q->opts.seed, rank, step, phase);
    int nt = dat_quant_threads(q->ctx->opts.num_threads, n);
    return dat_quant_encode_host(func, &q->cfg, x, n, residual, q->ctx->opts.seed, stream,
                                 offset, codes, nt, offset);
}

void dat_quantizer_decode_slice(dat_quantizer *q, const void *codes, size_t n, float *out,
                                int accumulate, float post_scale)
{
    int nt = dat_quant_threads(q->ctx->opts.num_threads, n);
    dat_quant_decode_host(&q->cfg, codes, n, out, accumulate, post_scale, nt);
}

/* Checks a float32 tensor and a host code buffer of at least E(numel) bytes. */
static dat_status check_io(const char *func, const dat_quantizer *q, const dat_tensor *t,
                           const void *codes, size_t codes_bytes)
{
    if (t->dtype != DAT_FLOAT32)
        return dat_error(DAT_ERR_INVALID_ARG, func, "the tensor is %s, expected float32",
                         dat_dtype_name(t->dtype));
    if ((uintptr_t)codes % 4 != 0)
        return dat_error(DAT_ERR_INVALID_ARG, func, "codes = %p must be 4-byte aligned", codes);
    size_t need = dat_quant_encoded_bytes(&q->cfg, (size_t)t->numel);
    if (codes_bytes < need)
        return dat_error(DAT_ERR_INVALID_ARG, func,
                         "codes_bytes = %zu, but %lld elements at %d bits need %zu bytes",
                         codes_bytes, (long long)t->numel, (int)q->cfg.bits, need);
    return DAT_OK;
}

dat_status dat_quantizer_encode(dat_quantizer *q, const dat_tensor *x, uint64_t step,
                                void *codes, size_t codes_bytes)
{
    DAT_CHECK_NOT_NULL(q);
    DAT_CHECK_NOT_NULL(x);
    DAT_CHECK_NOT_NULL(codes);
    DAT_TRY(check_io(__func__, q, x, codes, codes_bytes));
    size_t n = (size_t)x->numel;
    const float *host = x->data;
    if (x->ctx->opts.device != DAT_DEVICE_CPU) {
        float *buf;
        DAT_TRY(dat_quantizer_staging(q, n, &buf));
        DAT_TRY(dat_tensor_read(x, buf, x->nbytes));
        host = buf;
    }
    return dat_quantizer_encode_slice(q, __func__, host, n, 0, (uint32_t)q->opts.rank, step,
                                      DAT_QUANT_PHASE_WORKER, 1, codes);
}

dat_status dat_quantizer_decode(dat_quantizer *q, const void *codes, size_t codes_bytes,
                                dat_tensor *out, int accumulate)
{
    DAT_CHECK_NOT_NULL(q);
    DAT_CHECK_NOT_NULL(codes);
    DAT_CHECK_NOT_NULL(out);
    DAT_TRY(check_io(__func__, q, out, codes, codes_bytes));
    if (accumulate != 0 && accumulate != 1)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "accumulate = %d must be 0 or 1",
                         accumulate);
    size_t n = (size_t)out->numel;
    if (out->ctx->opts.device == DAT_DEVICE_CPU) {
        dat_quantizer_decode_slice(q, codes, n, out->data, accumulate, 1.0f);
        return DAT_OK;
    }
    float *buf;
    DAT_TRY(dat_quantizer_staging(q, n, &buf));
    if (accumulate)
        DAT_TRY(dat_tensor_read(out, buf, out->nbytes));
    dat_quantizer_decode_slice(q, codes, n, buf, accumulate, 1.0f);
    return dat_tensor_write(out, buf, out->nbytes);
}

dat_status dat_quantizer_reset(dat_quantizer *q)
{
    DAT_CHECK_NOT_NULL(q);
    if (q->residual)
        memset(q->residual, 0, q->residual_len * sizeof *q->residual);
    return DAT_OK;
}
