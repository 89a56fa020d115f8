/* The public model API: argument checks, the training loss with its backward
 * pass, and the input-gradient-only backward. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/capture.h"
#include "../core/error.h"
#include "../core/options.h"
#include "model.h"

void dat_model_destroy(dat_model *model)
{
    dat_model_free(model);
}

dat_status dat_model_set_mode(dat_model *model, dat_model_mode mode)
{
    DAT_CHECK_NOT_NULL(model);
    if (mode != DAT_MODE_TRAIN && mode != DAT_MODE_EVAL)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "mode = %d is not a dat_model_mode",
                         (int)mode);
    model->mode = mode;
    return DAT_OK;
}

dat_status dat_model_mode_get(const dat_model *model, dat_model_mode *mode)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(mode);
    *mode = model->mode;
    return DAT_OK;
}

dat_status dat_model_shape(const dat_model *model, int32_t *channels, int32_t *height,
                           int32_t *width, int32_t *num_classes)
{
    DAT_CHECK_NOT_NULL(model);
    if (channels)
        *channels = model->in_c;
    if (height)
        *height = model->in_h;
    if (width)
        *width = model->in_w;
    if (num_classes)
        *num_classes = model->classes;
    return DAT_OK;
}

/* x must be float32 [N, C, H, W] of the model's sample shape, in its context. */
/* Batch norm in train mode normalizes each channel over the batch and the
 * plane: one value per channel (batch 1 of 1x1 features) has no variance, and
 * its output would be the shift alone, with no gradient (PyTorch refuses too). */
static dat_status check_bn_batch(const char *func, const dat_model *m, int32_t n)
{
    if (m->mode != DAT_MODE_TRAIN)
        return DAT_OK;
    for (int32_t k = 0; k < m->n_nodes; ++k) {
        const dat_node *d = &m->nodes[k];
        if (d->kind == DAT_LAYER_BATCHNORM && (int64_t)n * d->h * d->w == 1)
            return dat_error(DAT_ERR_INVALID_ARG, func,
                             "batch norm layer %d in train mode needs more than one value per "
                             "channel, got a batch of 1 of %d x %d features (use eval mode, or "
                             "a larger batch)", (int)k, (int)d->h, (int)d->w);
    }
    return DAT_OK;
}

dat_status dat_model_check_input(const char *func, const dat_model *m, const char *what,
                              const dat_tensor *x, int32_t *n)
{
    if (x->ctx != m->ctx)
        return dat_error(DAT_ERR_INVALID_ARG, func, "%s belongs to another context", what);
    if (x->dtype != DAT_FLOAT32 || x->ndim != 4 || x->shape[1] != m->in_c ||
        x->shape[2] != m->in_h || x->shape[3] != m->in_w || x->shape[0] > INT32_MAX)
        return dat_error(DAT_ERR_INVALID_ARG, func,
                         "%s must be float32 [N, %d, %d, %d], got %s with %d dims [%lld, %lld, "
                         "%lld, %lld]",
                         what, (int)m->in_c, (int)m->in_h, (int)m->in_w, dat_dtype_name(x->dtype),
                         (int)x->ndim, (long long)x->shape[0],
                         (long long)(x->ndim > 1 ? x->shape[1] : 0),
                         (long long)(x->ndim > 2 ? x->shape[2] : 0),
                         (long long)(x->ndim > 3 ? x->shape[3] : 0));
    *n = (int32_t)x->shape[0];
    DAT_TRY(check_bn_batch(func, m, *n));
    if (dat_capturing(m->ctx)) /* nothing comes back: the check sets the fault word */
        return DAT_OP(m->ctx, flag_range, (size_t)x->numel, x->data, -INFINITY, INFINITY,
                      dat_fault_word(m->ctx), DAT_FAULT_INPUT);
    int bad = 0;
    DAT_TRY(DAT_OP(m->ctx, check_finite, (size_t)x->numel, x->data, &bad));
    if (bad)
        return dat_error(DAT_ERR_NUMERIC, func, "%s holds NaN or Inf", what);
    return DAT_OK;
}

/* A float32 tensor of exactly [n, k] (k = 0: [n]) in the model's context. */
dat_status dat_model_check_matrix(const char *func, const dat_model *m, const char *what,
                               const dat_tensor *t, int32_t n, int32_t k)
{
    int ok = t->ctx == m->ctx && t->dtype == DAT_FLOAT32 && t->ndim == (k ? 2 : 1) &&
             t->shape[0] == n && (!k || t->shape[1] == k);
    if (ok)
        return DAT_OK;
    char want[48];
    if (k)
        snprintf(want, sizeof want, "[%d, %d]", (int)n, (int)k);
    else
        snprintf(want, sizeof want, "[%d]", (int)n);
    return dat_error(DAT_ERR_INVALID_ARG, func,
                     "%s must be float32 %s in the model's context, got %s with %d dims, "
                     "the first %lld",
                     what, want, dat_dtype_name(t->dtype), (int)t->ndim,
                     (long long)(t->ndim ? t->shape[0] : 0));
}

/* Labels int32 [n], each in [0, classes); read to the host for the check. */
dat_status dat_model_check_labels(const char *func, dat_model *m, const dat_tensor *y, int32_t n)
{
    if (y->ctx != m->ctx || y->dtype != DAT_INT32 || y->ndim != 1 || y->shape[0] != n)
        return dat_error(DAT_ERR_INVALID_ARG, func,
                         "labels must be int32 [%d] in the model's context, got %s with %d dims",
                         (int)n, dat_dtype_name(y->dtype), (int)y->ndim);
    if (dat_capturing(m->ctx))
        return DAT_OP(m->ctx, flag_labels, n, y->data, m->classes, dat_fault_word(m->ctx),
                      DAT_FAULT_LABELS);
    DAT_TRY(m->ctx->be->copy_to_host(m->ctx, m->host_labels, y->data,
                                     (size_t)n * sizeof(int32_t)));
    for (int32_t i = 0; i < n; ++i)
        if (m->host_labels[i] < 0 || m->host_labels[i] >= m->classes)
            return dat_error(DAT_ERR_INVALID_ARG, func,
                             "label %d of sample %d is outside [0, %d)", (int)m->host_labels[i],
                             (int)i, (int)m->classes);
    return DAT_OK;
}

dat_status dat_model_forward(dat_model *model, const dat_tensor *x, dat_tensor *logits)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(x);
    DAT_CHECK_NOT_NULL(logits);
    int32_t n;
    DAT_TRY(dat_model_check_input(__func__, model, "x", x, &n));
    DAT_TRY(dat_model_check_matrix(__func__, model, "logits", logits, n, model->classes));
    DAT_TRY(dat_model_reserve(model, n));
    dat_model_undo u;
    DAT_TRY(dat_model_undo_begin(model, dat_model_pass_kind(DAT_PASS_FORWARD, n, 0, model), 0,
                                 &u));
    DAT_TRY(dat_model_undo_end(model, &u, dat_graph_forward(model, x->data, n, 1)));
    return model->ctx->be->copy(model->ctx, logits->data, dat_model_logits(model),
                                (size_t)n * (size_t)model->classes * sizeof(float));
}

dat_status (dat_loss_options_init)(dat_loss_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    *opts = (dat_loss_options){.size = sizeof(dat_loss_options), .adv_weight = 1.0f,
                               .reduction = DAT_REDUCE_MEAN};
    return DAT_OK;
}

DAT_OPTIONS_INIT_SIZED(dat_loss_options)

dat_status (dat_input_grad_options_init)(dat_input_grad_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    *opts = (dat_input_grad_options){.size = sizeof(dat_input_grad_options),
                                     .objective = DAT_OBJECTIVE_CE,
                                     .reduction = DAT_REDUCE_SUM};
    return DAT_OK;
}

DAT_OPTIONS_INIT_SIZED(dat_input_grad_options)

/* Adds weight * sum_i w_i * sample_loss_i (w_i = 1 without weights) to *acc,
 * and on the device to o->loss_sum when set (o may be NULL). */
static dat_status accumulate_loss(dat_model *m, const dat_loss_options *o, int32_t n,
                                  double weight, int weighted, double *acc)
{
    if (o && o->loss_sum) { /* [1 x n] . [n x 1], added */
        const float *w = weighted ? o->sample_weights->data : m->ones;
        DAT_TRY(DAT_OP(m->ctx, gemm, 0, 0, 1, 1, n, (float)weight, w, n, m->sample_loss, 1, 1.0f,
                       o->loss_sum->data, 1));
    }
    if (dat_capturing(m->ctx)) /* a recorded step has no loss on the host */
        return DAT_OK;
    DAT_TRY(m->ctx->be->copy_to_host(m->ctx, m->host_loss, m->sample_loss,
                                     (size_t)n * sizeof(float)));
    double s = 0;
    for (int32_t i = 0; i < n; ++i)
        s += (weighted ? (double)m->host_weights[i] : 1.0) * m->host_loss[i];
    *acc += weight * s;
    return DAT_OK;
}

/* The first released layout of dat_loss_options: every field up to accumulate. */
#define LOSS_OPTIONS_MIN_SIZE offsetof(dat_loss_options, loss_sum)

static dat_status check_loss_options(dat_model *m, const dat_loss_options *o,
                                     const dat_tensor *y, int32_t n)
{
    const char *f = "dat_model_loss_backward";
    if (!(o->adv_weight >= 0) || !(o->clean_weight >= 0) || !(o->kl_weight >= 0) ||
        !isfinite(o->adv_weight + o->clean_weight + o->kl_weight))
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "weights must be finite and >= 0, got adv %g, clean %g, kl %g",
                         (double)o->adv_weight, (double)o->clean_weight, (double)o->kl_weight);
    if (o->reduction != DAT_REDUCE_MEAN && o->reduction != DAT_REDUCE_SUM)
        return dat_error(DAT_ERR_INVALID_ARG, f, "reduction = %d is not a dat_reduction",
                         (int)o->reduction);
    if ((o->clean_weight > 0 || o->kl_weight > 0) && !o->x_clean)
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "clean_weight or kl_weight is set, but x_clean is NULL");
    if (o->x_clean) {
        int32_t nc;
        DAT_TRY(dat_model_check_input(f, m, "x_clean", o->x_clean, &nc));
        if (nc != n)
            return dat_error(DAT_ERR_INVALID_ARG, f, "x_clean has %d samples, x has %d",
                             (int)nc, (int)n);
    }
    if (o->adv_weight > 0 || o->clean_weight > 0) {
        if (!y)
            return dat_error(DAT_ERR_INVALID_ARG, f,
                             "labels y are NULL, but a cross-entropy term has weight > 0");
        DAT_TRY(dat_model_check_labels(f, m, y, n));
    }
    if (o->loss_sum && (o->loss_sum->ctx != m->ctx || o->loss_sum->dtype != DAT_FLOAT32 ||
                        o->loss_sum->numel != 1))
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "loss_sum must be a float32 tensor of one element in the model's "
                         "context, got %s with %lld elements", dat_dtype_name(o->loss_sum->dtype),
                         (long long)o->loss_sum->numel);
    if (o->sample_weights) {
        DAT_TRY(dat_model_check_matrix(f, m, "sample_weights", o->sample_weights, n, 0));
        if (dat_capturing(m->ctx))
            return DAT_OK; /* the weights' host copy only weighs the host's loss */
        DAT_TRY(m->ctx->be->copy_to_host(m->ctx, m->host_weights, o->sample_weights->data,
                                         (size_t)n * sizeof(float)));
    }
    return DAT_OK;
}

/* Cross-entropy of the current logits: dz = scale * grad, loss accumulated. */
static dat_status ce_term(dat_model *m, const dat_loss_options *o, const dat_tensor *y,
                          int32_t n, float scale, float *dz, double *acc)
{
    const float *w = o->sample_weights ? o->sample_weights->data : NULL;
    DAT_TRY(DAT_OP(m->ctx, softmax_xent, n, m->classes, dat_model_logits(m), y->data, w,
                   m->sample_loss, dz, scale));
    return accumulate_loss(m, o, n, scale, w != NULL, acc);
}

/* The clean terms' gradient (CE and, with TRADES, KL's clean side) is in
 * m->dz_clean; recompute the clean activations (the adversarial pass
 * overwrote them) and run their backward, accumulating. */
static dat_status clean_backward(dat_model *m, const dat_loss_options *o, int32_t n)
{
    DAT_TRY(dat_graph_forward(m, o->x_clean->data, n, 0));
    return dat_graph_backward_last(m, m->dz_clean, n, 1.0f);
}

static dat_status loss_backward(dat_model *m, const dat_tensor *x, const dat_tensor *y,
                                const dat_loss_options *o, int32_t n, double *acc)
{
    dat_ctx *ctx = m->ctx;
    size_t zlen = (size_t)n * (size_t)m->classes;
    float s = o->reduction == DAT_REDUCE_MEAN ? 1.0f / (float)n : 1.0f;
    float beta = o->accumulate ? 1.0f : 0.0f;
    int clean = o->clean_weight > 0 || o->kl_weight > 0;
    float zero = 0.0f;
    if (clean) {
        /* Clean first, as a PyTorch loop calls model(x) before model(x_adv). */
        DAT_TRY(dat_graph_forward(m, o->x_clean->data, n, 1));
        DAT_TRY(ctx->be->copy(ctx, m->z_clean, dat_model_logits(m), zlen * sizeof(float)));
        if (o->clean_weight > 0)
            DAT_TRY(ce_term(m, o, y, n, s * o->clean_weight, m->dz_clean, acc));
        else
            DAT_TRY(ctx->be->fill(ctx, m->dz_clean, zlen, &zero, sizeof zero));
        if (o->kl_weight == 0) { /* independent terms: no need to recompute later */
            DAT_TRY(dat_graph_backward(m, m->dz_clean, n, beta, NULL));
            beta = 1.0f;
            clean = 0;
        }
    }
    DAT_TRY(dat_graph_forward(m, x->data, n, 1));
    if (o->adv_weight > 0)
        DAT_TRY(ce_term(m, o, y, n, s * o->adv_weight, m->dz, acc));
    else
        DAT_TRY(ctx->be->fill(ctx, m->dz, zlen, &zero, sizeof zero));
    if (o->kl_weight > 0) {
        float ks = s * o->kl_weight;
        DAT_TRY(DAT_OP(ctx, kl_div, n, m->classes, m->z_clean, dat_model_logits(m),
                       m->sample_loss, m->scratch, m->scratch + zlen, ks));
        DAT_TRY(accumulate_loss(m, o, n, ks, 0, acc));
        DAT_TRY(DAT_OP(ctx, axpy, zlen, 1.0f, m->scratch, m->dz_clean));
        DAT_TRY(DAT_OP(ctx, axpy, zlen, 1.0f, m->scratch + zlen, m->dz));
    }
    if (clean) {
        DAT_TRY(dat_graph_backward(m, m->dz, n, beta, NULL));
        return clean_backward(m, o, n);
    }
    return dat_graph_backward_last(m, m->dz, n, beta);
}

dat_status dat_model_loss_backward(dat_model *model, const dat_tensor *x, const dat_tensor *y,
                                   const dat_loss_options *opts, float *loss)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(x);
    dat_loss_options o;
    dat_loss_options_init(&o);
    if (opts) {
        DAT_CHECK_OPTIONS_SIZE(opts, dat_loss_options, LOSS_OPTIONS_MIN_SIZE);
        memcpy(&o, opts, opts->size);
        o.size = sizeof o;
    }
    if (loss && dat_capturing(model->ctx))
        return dat_capture_refuse(model->ctx, __func__,
                                  "reading the loss back (pass loss = NULL)");
    int32_t n;
    DAT_TRY(dat_model_check_input(__func__, model, "x", x, &n));
    DAT_TRY(dat_model_reserve(model, n));
    DAT_TRY(check_loss_options(model, &o, y, n));
    double acc = 0;
    uint64_t terms = (o.clean_weight > 0) | (o.kl_weight > 0) << 1 | (o.adv_weight > 0) << 2 |
                     (o.sample_weights != NULL) << 3 | (o.accumulate != 0) << 4;
    /* An armed dat_grad_sync reduces buckets of the gradient on its own thread
     * as the pass goes: they are its until dat_grad_sync_end(), not ours to put back. */
    int grads = !(model->grad_hook && model->grad_hook_armed);
    dat_model_undo u;
    DAT_TRY(dat_model_undo_begin(model, dat_model_pass_kind(DAT_PASS_LOSS, n, terms, model),
                                 grads, &u));
    DAT_TRY(dat_model_undo_end(model, &u, loss_backward(model, x, y, &o, n, &acc)));
    if (dat_capturing(model->ctx))
        return DAT_OK;
    if (loss)
        *loss = (float)acc;
    if (!isfinite(acc))
        return dat_error(DAT_ERR_NUMERIC, __func__, "the loss is %g: NaN or Inf", acc);
    return DAT_OK;
}

static dat_status check_input_grad_options(dat_model *m, const dat_input_grad_options *o,
                                           const dat_tensor *y, int32_t n)
{
    const char *f = "dat_model_input_grad";
    if (o->reduction != DAT_REDUCE_MEAN && o->reduction != DAT_REDUCE_SUM)
        return dat_error(DAT_ERR_INVALID_ARG, f, "reduction = %d is not a dat_reduction",
                         (int)o->reduction);
    if (o->objective == DAT_OBJECTIVE_CE) {
        if (!y)
            return dat_error(DAT_ERR_INVALID_ARG, f, "the CE objective needs labels y");
        DAT_TRY(dat_model_check_labels(f, m, y, n));
    } else if (o->objective == DAT_OBJECTIVE_KL) {
        if (!o->target_logits)
            return dat_error(DAT_ERR_INVALID_ARG, f, "the KL objective needs target_logits");
        DAT_TRY(dat_model_check_matrix(f, m, "target_logits", o->target_logits, n, m->classes));
    } else {
        return dat_error(DAT_ERR_INVALID_ARG, f, "objective = %d is not a dat_objective",
                         (int)o->objective);
    }
    if (o->sample_losses)
        DAT_TRY(dat_model_check_matrix(f, m, "sample_losses", o->sample_losses, n, 0));
    if (o->logits)
        DAT_TRY(dat_model_check_matrix(f, m, "logits", o->logits, n, m->classes));
    return DAT_OK;
}

static dat_status input_grad_outputs(dat_model *m, const dat_input_grad_options *o, int32_t n)
{
    dat_ctx *ctx = m->ctx;
    if (o->sample_losses)
        DAT_TRY(ctx->be->copy(ctx, o->sample_losses->data, m->sample_loss,
                              (size_t)n * sizeof(float)));
    if (o->logits)
        DAT_TRY(ctx->be->copy(ctx, o->logits->data, dat_model_logits(m),
                              (size_t)n * (size_t)m->classes * sizeof(float)));
    return DAT_OK;
}

dat_status dat_model_objective(dat_model *m, const float *x, int32_t n, const int32_t *y,
                               const float *target, dat_objective objective, float scale,
                               float *dx)
{
    DAT_TRY(dat_graph_forward(m, x, n, m->mode == DAT_MODE_TRAIN));
    float *dz = dx ? m->dz : NULL;
    if (objective == DAT_OBJECTIVE_CE)
        DAT_TRY(DAT_OP(m->ctx, softmax_xent, n, m->classes, dat_model_logits(m), y, NULL,
                       m->sample_loss, dz, scale));
    else
        DAT_TRY(DAT_OP(m->ctx, kl_div, n, m->classes, target, dat_model_logits(m),
                       m->sample_loss, NULL, dz, scale));
    return dx ? dat_graph_backward(m, m->dz, n, -1.0f, dx) : DAT_OK;
}

dat_status dat_model_input_grad(dat_model *model, const dat_tensor *x, const dat_tensor *y,
                                const dat_input_grad_options *opts, dat_tensor *dx, float *loss)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(x);
    DAT_CHECK_NOT_NULL(dx);
    dat_input_grad_options o;
    dat_input_grad_options_init(&o);
    if (opts) {
        DAT_CHECK_OPTIONS_SIZE(opts, dat_input_grad_options, sizeof(dat_input_grad_options));
        o = *opts;
    }
    int32_t n;
    DAT_TRY(dat_model_check_input(__func__, model, "x", x, &n));
    if (dx->ctx != model->ctx || dx->dtype != DAT_FLOAT32 || dx->numel != x->numel)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "dx must be float32 with the %lld elements of x, in the model's context",
                         (long long)x->numel);
    DAT_TRY(dat_model_reserve(model, n));
    DAT_TRY(check_input_grad_options(model, &o, y, n));
    float s = o.reduction == DAT_REDUCE_MEAN ? 1.0f / (float)n : 1.0f;
    dat_model_undo u;
    DAT_TRY(dat_model_undo_begin(
        model, dat_model_pass_kind(DAT_PASS_INPUT_GRAD, n, (uint64_t)o.objective, model), 0, &u));
    DAT_TRY(dat_model_undo_end(
        model, &u,
        dat_model_objective(model, x->data, n, y ? y->data : NULL,
                            o.target_logits ? o.target_logits->data : NULL, o.objective, s,
                            dx->data)));
    double acc = 0;
    DAT_TRY(accumulate_loss(model, NULL, n, s, 0, &acc));
    DAT_TRY(input_grad_outputs(model, &o, n));
    if (loss)
        *loss = (float)acc;
    return DAT_OK;
}

dat_status dat_model_params(dat_model *model, dat_tensor **params)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(params);
    *params = model->params;
    return DAT_OK;
}

dat_status dat_model_grads(dat_model *model, dat_tensor **grads)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(grads);
    *grads = model->grads;
    return DAT_OK;
}

dat_status dat_model_buffers(dat_model *model, dat_tensor **buffers)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(buffers);
    *buffers = model->buffers;
    return DAT_OK;
}

dat_status dat_model_num_segments(const dat_model *model, int32_t *count)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(count);
    *count = model->n_segs;
    return DAT_OK;
}

dat_status dat_model_segment(const dat_model *model, int32_t index, dat_segment *seg)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(seg);
    DAT_CHECK_OPTIONS_SIZE(seg, dat_segment, sizeof(dat_segment));
    if (index < 0 || index >= model->n_segs)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "index = %d outside [0, %d)", (int)index,
                         (int)model->n_segs);
    const dat_seg_entry *e = &model->segs[index];
    seg->name = e->name;
    seg->offset = e->offset;
    seg->length = e->length;
    seg->kind = e->kind;
    return DAT_OK;
}

/* Length of the module part of a segment name (up to the last '.'). */
static size_t module_length(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

static int same_module(const char *a, const char *b)
{
    size_t n = module_length(a);
    return n == module_length(b) && strncmp(a, b, n) == 0;
}

/* Walks the layers: returns the count, and the span of layer `want` if found. */
static int32_t walk_layers(const dat_model *m, int32_t want, int32_t *first, int32_t *count)
{
    int32_t layers = 0;
    for (int32_t s = 0; s < m->n_segs;) {
        int32_t e = s + 1;
        while (e < m->n_segs && same_module(m->segs[s].name, m->segs[e].name))
            ++e;
        if (layers == want) {
            *first = s;
            *count = e - s;
        }
        ++layers;
        s = e;
    }
    return layers;
}

dat_status dat_model_num_layers(const dat_model *model, int32_t *count)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(count);
    int32_t f, c;
    *count = walk_layers(model, -1, &f, &c);
    return DAT_OK;
}

dat_status dat_model_layer_segments(const dat_model *model, int32_t layer, int32_t *first_segment,
                                    int32_t *num_segments)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(first_segment);
    DAT_CHECK_NOT_NULL(num_segments);
    int32_t f = 0, c = 0, n = walk_layers(model, layer, &f, &c);
    if (layer < 0 || layer >= n)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "layer = %d outside [0, %d)", (int)layer,
                         (int)n);
    *first_segment = f;
    *num_segments = c;
    return DAT_OK;
}

dat_status dat_model_num_nodes(const dat_model *model, int32_t *count)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(count);
    *count = model->n_nodes;
    return DAT_OK;
}

dat_status dat_model_node_info(const dat_model *model, int32_t node, int32_t *kind,
                               int32_t *channels, int32_t *height, int32_t *width)
{
    DAT_CHECK_NOT_NULL(model);
    if (node < 0 || node >= model->n_nodes)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "node = %d outside [0, %d)", (int)node,
                         (int)model->n_nodes);
    const dat_node *n = &model->nodes[node];
    if (kind)
        *kind = (int32_t)n->kind;
    if (channels)
        *channels = n->c;
    if (height)
        *height = n->h;
    if (width)
        *width = n->w;
    return DAT_OK;
}

dat_status dat_model_activation(dat_model *model, int32_t node, dat_tensor *out)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(out);
    if (node < 1 || node >= model->n_nodes)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "node = %d outside [1, %d) (node 0 is the caller's input)", (int)node,
                         (int)model->n_nodes);
    if (model->last_batch == 0)
        return dat_error(DAT_ERR_STATE, __func__, "no forward pass has run yet (or the last "
                         "one could not allocate its buffers)");
    const dat_node *n = &model->nodes[node];
    if (n->fused_relu)
        return dat_error(DAT_ERR_UNSUPPORTED, __func__,
                         "node %d computes the ReLU of node %d with it (%s), so its own output "
                         "is not kept (node %d's is)", (int)node, (int)node + 1,
                         n->kind == DAT_LAYER_ADD ? "every backend" : model->ctx->be->name,
                         (int)node + 1);
    if (node + 1 < model->n_nodes && model->nodes[node + 1].takes_bn)
        return dat_error(DAT_ERR_UNSUPPORTED, __func__,
                         "node %d is computed inside the add at node %d, so its own output is "
                         "not kept (node %d's output is computed from it)", (int)node,
                         (int)node + 1, (int)node + 1 + model->nodes[node + 1].fused_relu);
    int64_t want = (int64_t)model->last_batch * dat_node_numel(n);
    if (out->ctx != model->ctx || out->dtype != DAT_FLOAT32 || out->numel != want)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "out must be float32 with %lld elements (%d samples of %d x %d x %d)",
                         (long long)want, (int)model->last_batch, (int)n->c, (int)n->h,
                         (int)n->w);
    return DAT_OP(model->ctx, act_convert, model->last_batch, n->c, n->h * n->w, n->fmt, n->y,
                  NULL, NULL, DAT_FMT_F32, out->data);
}
