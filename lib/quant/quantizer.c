/* The public dat_quantizer: options, tensors, the buffers it keeps in its
 * context's memory, and error feedback. */
#include "quantizer.h"

#include <stdlib.h>
#include <string.h>

#include "../core/backend.h"
#include "../core/capture.h"
#include "../core/ctx.h"
#include "../core/error.h"
#include "../core/options.h"
#include "../core/tensor.h"
#include "quant_math.h"

/* The first released layout of dat_quantizer_options: every field up to seed. */
#define DAT_QUANTIZER_OPTIONS_MIN_SIZE sizeof(dat_quantizer_options)

dat_status (dat_quantizer_options_init)(dat_quantizer_options *opts)
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

DAT_OPTIONS_INIT_SIZED(dat_quantizer_options)

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
    q->ctx = q->exec = ctx;
    if (!ctx->be->runs_quantizer) { /* a host context of the same threads computes */
        dat_ctx_options co;
        dat_ctx_options_init(&co);
        co.num_threads = ctx->opts.num_threads;
        dat_status s = dat_ctx_create(&q->exec, &co);
        if (s != DAT_OK) {
            free(q);
            return s;
        }
    }
    q->opts = o;
    q->cfg = (dat_quant_config){.bits = o.bits, .bucket = o.bucket_size, .norm = o.norm};
    dat_quantizer_serve_as(q, ctx->opts.seed, o.seed);
    *out = q;
    return DAT_OK;
}

void dat_quantizer_destroy(dat_quantizer *q)
{
    if (!q)
        return;
    dat_ctx *ctx = q->exec;
    if (q->residual)
        ctx->be->free(ctx, q->residual);
    for (int k = 0; k < DAT_QSCRATCH_COUNT; ++k)
        if (q->scratch[k])
            ctx->be->free(ctx, q->scratch[k]);
    if (q->exec != q->ctx)
        dat_ctx_destroy(q->exec);
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
    if (n < 0 || n > DAT_TENSOR_MAX_NUMEL)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "n = %lld must be in [0, 2^40] (the "
                         "largest tensor)", (long long)n);
    *bytes = dat_quant_encoded_bytes(&q->cfg, (size_t)n);
    return DAT_OK;
}

/* Grows the residual to at least n floats in the context's memory, keeping
 * what it holds; the new part is zero (alloc zeroes). */
static dat_status grow_residual(dat_quantizer *q, size_t n)
{
    if (n <= q->residual_len)
        return DAT_OK;
    dat_ctx *ctx = q->exec;
    void *p = NULL;
    DAT_TRY(ctx->be->alloc(ctx, n * sizeof(float), &p));
    if (q->residual) {
        dat_status s = ctx->be->copy(ctx, p, q->residual, q->residual_len * sizeof(float));
        if (s != DAT_OK) {
            ctx->be->free(ctx, p);
            return s;
        }
        dat_capture_buffers_moved(ctx);
        ctx->be->free(ctx, q->residual);
    }
    q->residual = p;
    q->residual_len = n;
    return DAT_OK;
}

dat_status dat_quantizer_scratch(dat_quantizer *q, int which, size_t bytes, void **p)
{
    if (bytes > q->scratch_bytes[which]) {
        dat_ctx *ctx = q->exec;
        if (q->scratch[which]) {
            dat_capture_buffers_moved(ctx);
            ctx->be->free(ctx, q->scratch[which]);
        }
        q->scratch[which] = NULL;
        q->scratch_bytes[which] = 0;
        DAT_TRY(ctx->be->alloc(ctx, bytes, &q->scratch[which]));
        q->scratch_bytes[which] = bytes;
    }
    *p = q->scratch[which];
    return DAT_OK;
}

int dat_quantizer_same_memory(const dat_ctx *a, const dat_ctx *b)
{
    return a == b || (a->opts.device == DAT_DEVICE_CPU && b->opts.device == DAT_DEVICE_CPU);
}

/* Copies bytes between two device contexts through host memory. */
static dat_status copy_across(dat_ctx *dst_ctx, void *dst, dat_ctx *src_ctx, const void *src,
                              size_t bytes)
{
    void *h = malloc(bytes ? bytes : 1);
    if (!h)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_quantizer",
                         "cannot allocate %zu bytes to move a tensor between devices", bytes);
    dat_status s = src_ctx->be->copy_to_host(src_ctx, h, src, bytes);
    if (s == DAT_OK)
        s = dst_ctx->be->copy_from_host(dst_ctx, dst, h, bytes);
    free(h);
    return s;
}

dat_status dat_quantizer_tensor_in(dat_quantizer *q, const dat_tensor *t, int read, float **p)
{
    if (dat_quantizer_same_memory(t->ctx, q->exec)) {
        *p = t->data;
        return DAT_OK;
    }
    DAT_TRY(dat_quantizer_scratch(q, DAT_QSCRATCH_VALUES, t->nbytes, (void **)p));
    if (!read)
        return DAT_OK;
    if (t->ctx->opts.device == DAT_DEVICE_CPU)
        return q->exec->be->copy_from_host(q->exec, *p, t->data, t->nbytes);
    if (q->exec->opts.device == DAT_DEVICE_CPU)
        return dat_tensor_read(t, *p, t->nbytes);
    return copy_across(q->exec, *p, t->ctx, t->data, t->nbytes);
}

dat_status dat_quantizer_tensor_out(dat_quantizer *q, dat_tensor *t, const float *p)
{
    if (p == t->data)
        return DAT_OK;
    if (t->ctx->opts.device == DAT_DEVICE_CPU)
        return q->exec->be->copy_to_host(q->exec, t->data, p, t->nbytes);
    if (q->exec->opts.device == DAT_DEVICE_CPU)
        return dat_tensor_write(t, p, t->nbytes);
    return copy_across(t->ctx, t->data, q->exec, p, t->nbytes);
}

dat_status dat_quantizer_reserve(dat_quantizer *q, size_t n)
{
    return q->opts.error_feedback ? grow_residual(q, n) : DAT_OK;
}

/* The residual of elements offset .. offset + n (NULL without error feedback). */
static dat_status residual_of(dat_quantizer *q, uint64_t offset, size_t n, int use_residual,
                              float **residual)
{
    *residual = NULL;
    if (!q->opts.error_feedback || !use_residual)
        return DAT_OK;
    DAT_TRY(grow_residual(q, (size_t)offset + n));
    *residual = q->residual + offset;
    return DAT_OK;
}

void dat_quantizer_serve_as(dat_quantizer *q, uint64_t key, uint64_t salt)
{
    q->serve_key = key;
    q->serve_salt = salt;
}

/* The key of a phase's draws (the seed of the caller's context, or the
 * server's) and the salt of its stream. */
static void seeds_of(const dat_quantizer *q, uint32_t phase, uint64_t *key, uint64_t *salt)
{
    int serve = phase == DAT_QUANT_PHASE_SERVER;
    *key = serve ? q->serve_key : q->ctx->opts.seed;
    *salt = serve ? q->serve_salt : q->opts.seed;
}

dat_status dat_quantizer_encode_slice(dat_quantizer *q, const char *func, const float *x,
                                      size_t n, uint64_t offset, uint32_t rank, uint64_t step,
                                      uint32_t phase, int use_residual, void *codes)
{
    float *residual;
    DAT_TRY(residual_of(q, offset, n, use_residual, &residual));
    uint64_t key, salt;
    seeds_of(q, phase, &key, &salt);
    uint64_t stream = dat_quant_stream(salt, rank, step, phase);
    return DAT_OP(q->exec, quant_encode, func, &q->cfg, x, n, residual, key, stream, offset,
                  codes, offset);
}

dat_status dat_quantizer_encode_slice_deferred(dat_quantizer *q, const float *x, size_t n,
                                               uint64_t offset, uint32_t rank, uint64_t step,
                                               const uint64_t *step_at, uint32_t phase,
                                               int use_residual, void *codes,
                                               dat_quant_status *status)
{
    float *residual;
    DAT_TRY(residual_of(q, offset, n, use_residual, &residual));
    uint64_t key, salt;
    seeds_of(q, phase, &key, &salt);
    dat_quant_draw d = {.key = key,
                        .stream = dat_quant_stream(salt, rank, step, phase),
                        .step = step_at,
                        .salt = salt,
                        .rank = rank,
                        .phase = phase};
    dat_ctx *ctx = q->exec;
    return DAT_OP(ctx, quant_encode_deferred, &q->cfg, x, n, residual, &d, offset, codes, status);
}

dat_status dat_quantizer_deferred_outcome(dat_quantizer *q, const char *func,
                                          const dat_quant_status *st, size_t count,
                                          size_t slice, size_t n)
{
    uint64_t first = UINT64_MAX;
    int kind = DAT_QUANT_BUCKET_OK;
    for (size_t k = 0; k < count; ++k)
        if (st[k].kind != DAT_QUANT_BUCKET_OK && k * slice + st[k].first_bad < first) {
            first = k * slice + st[k].first_bad;
            kind = st[k].kind;
        }
    if (kind == DAT_QUANT_BUCKET_OK)
        return DAT_OK;
    int ef = q->opts.error_feedback && q->residual;
    DAT_TRY(dat_quantizer_forget(q, 0, n)); /* as a failed quant_encode leaves it */
    return dat_quant_numeric_error(func, kind, first, ef);
}

dat_status dat_quantizer_forget(dat_quantizer *q, uint64_t offset, size_t n)
{
    if (!q->opts.error_feedback || offset >= q->residual_len)
        return DAT_OK;
    const float zero = 0.0f;
    size_t len = n < q->residual_len - offset ? n : q->residual_len - offset;
    return q->exec->be->fill(q->exec, q->residual + offset, len, &zero, sizeof zero);
}

dat_status dat_quantizer_recorded_outcome(dat_quantizer *q, const float *flag, float *x,
                                          size_t n, uint32_t bit)
{
    dat_ctx *ctx = q->exec;
    size_t r = q->opts.error_feedback && q->residual ? n : 0;
    r = r < q->residual_len ? r : q->residual_len;
    return DAT_OP(ctx, quant_apply_failure, flag, q->residual, r, x, n, dat_fault_word(ctx), bit);
}

dat_status dat_quantizer_decode_slice(dat_quantizer *q, const void *codes, size_t n, float *out,
                                      int accumulate, float scale)
{
    dat_ctx *ctx = q->exec;
    return DAT_OP(ctx, quant_decode, &q->cfg, codes, n, out, accumulate, scale);
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

/* Codes in the memory of q's context: the caller's host buffer itself on the
 * host, else q's code scratch. */
static dat_status codes_in(dat_quantizer *q, void *host, size_t bytes, void **p)
{
    if (q->exec->opts.device == DAT_DEVICE_CPU) {
        *p = host;
        return DAT_OK;
    }
    return dat_quantizer_scratch(q, DAT_QSCRATCH_CODES, bytes, p);
}

dat_status dat_quantizer_encode(dat_quantizer *q, const dat_tensor *x, uint64_t step,
                                void *codes, size_t codes_bytes)
{
    DAT_CHECK_NOT_NULL(q);
    DAT_CHECK_NOT_NULL(x);
    DAT_CHECK_NOT_NULL(codes);
    DAT_TRY(check_io(__func__, q, x, codes, codes_bytes));
    size_t n = (size_t)x->numel, bytes = dat_quant_encoded_bytes(&q->cfg, n);
    float *v;
    void *c;
    DAT_TRY(dat_quantizer_tensor_in(q, x, 1, &v));
    DAT_TRY(codes_in(q, codes, bytes, &c));
    DAT_TRY(dat_quantizer_encode_slice(q, __func__, v, n, 0, (uint32_t)q->opts.rank, step,
                                       DAT_QUANT_PHASE_WORKER, 1, c));
    return c == codes ? DAT_OK : q->exec->be->copy_to_host(q->exec, codes, c, bytes);
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
    size_t n = (size_t)out->numel, bytes = dat_quant_encoded_bytes(&q->cfg, n);
    DAT_TRY(dat_quant_check_message(__func__, &q->cfg, codes, n));
    float *v;
    void *c;
    DAT_TRY(dat_quantizer_tensor_in(q, out, accumulate, &v));
    DAT_TRY(codes_in(q, (void *)codes, bytes, &c));
    if (c != codes)
        DAT_TRY(q->exec->be->copy_from_host(q->exec, c, codes, bytes));
    DAT_TRY(dat_quantizer_decode_slice(q, c, n, v, accumulate, 1.0f));
    return dat_quantizer_tensor_out(q, out, v);
}

dat_status dat_quantizer_reset(dat_quantizer *q)
{
    DAT_CHECK_NOT_NULL(q);
    if (q->residual) {
        const float zero = 0.0f;
        DAT_TRY(q->exec->be->fill(q->exec, q->residual, q->residual_len, &zero, sizeof zero));
    }
    return DAT_OK;
}
