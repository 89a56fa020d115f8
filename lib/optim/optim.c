/* The optimizer handle: options, segments, and the public step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/capture.h"
#include "../core/error.h"
#include "../core/options.h"
#include "../core/tensor.h"
#include "../model/model.h"
#include "optim.h"

dat_status (dat_optim_options_init)(dat_optim_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->kind = DAT_OPTIM_MOMENTUM;
    opts->lr = 0.1f;
    opts->momentum = 0.9f;
    opts->beta2 = 0.999f;
    opts->eps = 1e-8f;
    opts->bias_correction = 1;
    opts->c_l = 0.0f;
    opts->c_u = 10.0f;
    opts->schedule = DAT_SCHEDULE_CONSTANT;
    opts->gamma = 0.1f;
    opts->scaling = DAT_LR_SCALING_NONE;
    return DAT_OK;
}

DAT_OPTIONS_INIT_SIZED(dat_optim_options)

static int in_unit(float b)
{
    return b >= 0.0f && b < 1.0f;
}

static dat_status check_schedule(const dat_optim_options *o)
{
    const char *f = "dat_optim_create";
    if ((int)o->schedule < DAT_SCHEDULE_CONSTANT || o->schedule > DAT_SCHEDULE_ONECYCLE)
        return dat_error(DAT_ERR_INVALID_ARG, f, "schedule = %d is not a dat_schedule_kind",
                         (int)o->schedule);
    if (o->warmup_steps < 0 || o->total_steps < 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "warmup_steps and total_steps must be >= 0");
    if ((o->schedule == DAT_SCHEDULE_COSINE && o->total_steps <= o->warmup_steps) ||
        (o->schedule == DAT_SCHEDULE_ONECYCLE && o->total_steps < 3))
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "total_steps = %lld must exceed warmup_steps = %lld (cosine) or be >= 3 "
                         "(one-cycle)",
                         (long long)o->total_steps, (long long)o->warmup_steps);
    if (o->num_milestones < 0 || o->num_milestones > DAT_OPTIM_MAX_MILESTONES)
        return dat_error(DAT_ERR_INVALID_ARG, f, "num_milestones = %d must be in [0, %d]",
                         (int)o->num_milestones, DAT_OPTIM_MAX_MILESTONES);
    if (o->num_milestones > 0 && o->milestones[0] < 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "milestones[0] = %lld must be >= 0",
                         (long long)o->milestones[0]);
    for (int i = 1; i < o->num_milestones; ++i)
        if (o->milestones[i] < o->milestones[i - 1])
            return dat_error(DAT_ERR_INVALID_ARG, f, "milestones must not decrease (index %d)", i);
    if (!(o->gamma >= 0) || !isfinite(o->gamma))
        return dat_error(DAT_ERR_INVALID_ARG, f, "gamma = %g must be finite and >= 0",
                         (double)o->gamma);
    if ((int)o->scaling < DAT_LR_SCALING_NONE || o->scaling > DAT_LR_SCALING_SQRT)
        return dat_error(DAT_ERR_INVALID_ARG, f, "scaling = %d is not a dat_lr_scaling",
                         (int)o->scaling);
    if (o->scaling != DAT_LR_SCALING_NONE && (o->global_batch <= 0 || o->ref_batch <= 0))
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "batch scaling needs global_batch > 0 and ref_batch > 0");
    return DAT_OK;
}

static dat_status check_options(const dat_optim_options *o)
{
    const char *f = "dat_optim_create";
    if ((int)o->kind < DAT_OPTIM_SGD || o->kind > DAT_OPTIM_ADAMW)
        return dat_error(DAT_ERR_INVALID_ARG, f, "kind = %d is not a dat_optim_kind", (int)o->kind);
    if (!(o->lr >= 0) || !isfinite(o->lr))
        return dat_error(DAT_ERR_INVALID_ARG, f, "lr = %g must be finite and >= 0", (double)o->lr);
    if (!in_unit(o->momentum) || !in_unit(o->beta2))
        return dat_error(DAT_ERR_INVALID_ARG, f, "momentum / beta1 = %g and beta2 = %g must be in [0, 1)",
                         (double)o->momentum, (double)o->beta2);
    if (!(o->eps > 0) || !isfinite(o->eps))
        return dat_error(DAT_ERR_INVALID_ARG, f, "eps = %g must be > 0", (double)o->eps);
    if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
        return dat_error(DAT_ERR_INVALID_ARG, f, "weight_decay = %g must be >= 0",
                         (double)o->weight_decay);
    if (!(o->c_l >= 0) || !(o->c_l <= o->c_u) || !isfinite(o->c_u))
        return dat_error(DAT_ERR_INVALID_ARG, f, "need 0 <= c_l <= c_u, got c_l = %g, c_u = %g",
                         (double)o->c_l, (double)o->c_u);
    return check_schedule(o);
}

static dat_status copy_segments(dat_optim *opt, const dat_segment *segs, int32_t n)
{
    opt->segs = calloc((size_t)n, sizeof *opt->segs);
    if (!opt->segs)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_optim_create", "segments");
    int64_t end = 0;
    for (int32_t i = 0; i < n; ++i) {
        const dat_segment *s = &segs[i];
        if (s->offset < 0 || s->length < 0 || s->offset > INT64_MAX - s->length)
            return dat_error(DAT_ERR_INVALID_ARG, "dat_optim_create",
                             "segment %d: offset %lld and length %lld must be >= 0", (int)i,
                             (long long)s->offset, (long long)s->length);
        if (s->offset < end)
            return dat_error(DAT_ERR_INVALID_ARG, "dat_optim_create",
                             "segment %d starts at %lld, inside the previous one (segments must "
                             "be ordered and must not overlap)", (int)i, (long long)s->offset);
        int bias_bn = s->kind != DAT_SEGMENT_WEIGHT;
        opt->segs[i] = (dat_optim_seg){s->offset, s->length,
                                       bias_bn && opt->o.exclude_bias_bn_decay,
                                       bias_bn && opt->o.exclude_bias_bn_lalr, 1.0f, 0, 0};
        end = s->offset + s->length;
    }
    opt->n_segs = n;
    opt->total = end;
    return DAT_OK;
}

/* The moments and the direction live where the parameters do (backend memory,
 * zeroed); the per-segment norms are the CPU backend's host scratch. */
static dat_status alloc_state(dat_optim *opt)
{
    dat_ctx *ctx = opt->ctx;
    size_t bytes = (size_t)(opt->total ? opt->total : 1) * sizeof(float);
    int adam = opt->o.kind == DAT_OPTIM_ADAM || opt->o.kind == DAT_OPTIM_ADAMW;
    DAT_TRY(ctx->be->alloc(ctx, bytes, (void **)&opt->m));
    if (adam)
        DAT_TRY(ctx->be->alloc(ctx, bytes, (void **)&opt->v));
    DAT_TRY(ctx->be->alloc(ctx, bytes, (void **)&opt->u));
    void *counters = NULL; /* d_step, then d_skip */
    DAT_TRY(ctx->be->alloc(ctx, 2 * sizeof(int64_t), &counters));
    opt->d_step = counters;
    opt->d_skip = (uint32_t *)(opt->d_step + 1);
    opt->norms = calloc((size_t)(2 * opt->n_segs + 2), sizeof(double));
    if (!opt->norms)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_optim_create", "norms of %d segments",
                         (int)opt->n_segs);
    return DAT_OK;
}

dat_status dat_optim_create(dat_optim **out, dat_ctx *ctx, const dat_segment *segments,
                            int32_t num_segments, const dat_optim_options *opts)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(ctx);
    DAT_CHECK_NOT_NULL(segments);
    if (num_segments < 1)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "num_segments = %d must be >= 1",
                         (int)num_segments);
    dat_optim_options o;
    dat_optim_options_init(&o);
    if (opts) {
        DAT_CHECK_OPTIONS_SIZE(opts, dat_optim_options, sizeof(dat_optim_options));
        o = *opts;
        o.size = sizeof o;
    }
    DAT_TRY(check_options(&o));
    dat_optim *opt = calloc(1, sizeof *opt);
    if (!opt)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "optimizer");
    opt->ctx = ctx;
    opt->o = o;
    dat_status s = copy_segments(opt, segments, num_segments);
    if (s == DAT_OK)
        s = alloc_state(opt);
    if (s != DAT_OK) {
        dat_optim_destroy(opt);
        return s;
    }
    *out = opt;
    return DAT_OK;
}

dat_status dat_optim_create_for_model(dat_optim **out, dat_model *model,
                                      const dat_optim_options *opts)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(model);
    dat_segment *segs = calloc((size_t)model->n_segs, sizeof *segs);
    if (!segs)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "segments");
    for (int32_t i = 0; i < model->n_segs; ++i) {
        segs[i].size = sizeof segs[i];
        dat_model_segment(model, i, &segs[i]);
    }
    dat_status s = dat_optim_create(out, model->ctx, segs, model->n_segs, opts);
    free(segs);
    return s;
}

void dat_optim_destroy(dat_optim *optim)
{
    if (!optim)
        return;
    dat_ctx *ctx = optim->ctx;
    free(optim->segs);
    ctx->be->free(ctx, optim->m);
    ctx->be->free(ctx, optim->v);
    ctx->be->free(ctx, optim->u);
    ctx->be->free(ctx, optim->d_step);
    free(optim->norms);
    free(optim);
}

/* A step in a recording: the finiteness check on the device (a non-finite
 * gradient sets d_skip, which the update reads, and the context's fault), the
 * step's scalars from d_step (kernels/ops_optim.cu). */
static dat_status recorded_step(dat_optim *optim, dat_tensor *params, const dat_tensor *grads)
{
    dat_ctx *ctx = optim->ctx;
    const uint32_t zero = 0;
    DAT_TRY(ctx->be->fill(ctx, optim->d_skip, 1, &zero, sizeof zero));
    DAT_TRY(DAT_OP(ctx, flag_range, (size_t)optim->total, grads->data, -INFINITY, INFINITY,
                   optim->d_skip, DAT_FAULT_GRADIENT));
    DAT_TRY(DAT_OP(ctx, optim_update, optim, params->data, grads->data));
    optim->step++;
    return dat_capture_counter(ctx, &optim->step, 1, optim->d_step);
}

dat_status dat_optim_step(dat_optim *optim, dat_tensor *params, const dat_tensor *grads)
{
    DAT_CHECK_NOT_NULL(optim);
    DAT_CHECK_NOT_NULL(params);
    DAT_CHECK_NOT_NULL(grads);
    for (int k = 0; k < 2; ++k) {
        const dat_tensor *t = k ? grads : params;
        if (t->dtype != DAT_FLOAT32 || t->numel != optim->total)
            return dat_error(DAT_ERR_INVALID_ARG, __func__,
                             "%s must be float32 with %lld elements (the segments' extent), got "
                             "%s with %lld", k ? "grads" : "params", (long long)optim->total,
                             dat_dtype_name(t->dtype), (long long)t->numel);
        if (t->ctx != optim->ctx) /* another context: maybe another device or stream */
            return dat_error(DAT_ERR_INVALID_ARG, __func__,
                             "%s belong to another context than the optimizer (%s backend, "
                             "the optimizer's %s)",
                             k ? "grads" : "params", t->ctx->be->name, optim->ctx->be->name);
    }
    if (optim->step >= DAT_OPTIM_MAX_STEP) /* past it, t + 1 would end in overflow */
        return dat_error(DAT_ERR_STATE, __func__, "the step counter is at its limit, 2^53");
    if (dat_capturing(optim->ctx))
        return recorded_step(optim, params, grads);
    int bad = 0;
    DAT_TRY(DAT_OP(optim->ctx, check_finite, (size_t)optim->total, grads->data, &bad));
    if (bad)
        return dat_error(DAT_ERR_NUMERIC, __func__,
                         "the gradient holds NaN or Inf at step %lld: nothing was updated",
                         (long long)optim->step);
    DAT_TRY(DAT_OP(optim->ctx, optim_update, optim, params->data, grads->data));
    optim->step++;
    return DAT_OK;
}

dat_status dat_optim_step_model(dat_optim *optim, dat_model *model)
{
    DAT_CHECK_NOT_NULL(optim);
    DAT_CHECK_NOT_NULL(model);
    return dat_optim_step(optim, model->params, model->grads);
}

dat_status dat_optim_set_lr_scale(dat_optim *optim, int32_t first_segment, int32_t count,
                                  float scale)
{
    DAT_CHECK_NOT_NULL(optim);
    if (first_segment < 0 || count < 0 || first_segment > optim->n_segs - count)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "segments [%d, %d + %d) are not inside [0, %d)", (int)first_segment,
                         (int)first_segment, (int)count, (int)optim->n_segs);
    if (!(scale >= 0) || !isfinite(scale))
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "scale = %g must be finite and >= 0",
                         (double)scale);
    for (int32_t k = first_segment; k < first_segment + count; ++k) {
        dat_optim_seg *s = &optim->segs[k];
        if (s->lr_scale != 0.0f && scale == 0.0f)
            s->frozen_at = optim->step;
        else if (s->lr_scale == 0.0f && scale != 0.0f)
            s->skipped = dat_optim_seg_skipped(optim, s);
        s->lr_scale = scale;
    }
    return DAT_OK;
}

int64_t dat_optim_seg_skipped(const dat_optim *opt, const dat_optim_seg *s)
{
    if (s->lr_scale != 0.0f || opt->step <= s->frozen_at)
        return s->skipped;
    return s->skipped + (opt->step - s->frozen_at);
}

dat_status dat_optim_lr(const dat_optim *optim, double *lr)
{
    DAT_CHECK_NOT_NULL(optim);
    DAT_CHECK_NOT_NULL(lr);
    *lr = dat_optim_lr_at(&optim->o, optim->step);
    return DAT_OK;
}

dat_status dat_optim_get_step(const dat_optim *optim, int64_t *step)
{
    DAT_CHECK_NOT_NULL(optim);
    DAT_CHECK_NOT_NULL(step);
    *step = optim->step;
    return DAT_OK;
}

dat_status dat_optim_set_step(dat_optim *optim, int64_t step)
{
    DAT_CHECK_NOT_NULL(optim);
    if (step < 0 || step > DAT_OPTIM_MAX_STEP)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "step = %lld must be >= 0 and at most "
                         "DAT_OPTIM_MAX_STEP (2^53)", (long long)step);
    optim->step = step;
    return DAT_OK;
}
