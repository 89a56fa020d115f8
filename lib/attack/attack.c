/* The attack handle: options, validation, scratch, and dat_attack_perturb. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/options.h"
#include "attack.h"

dat_status (dat_attack_options_init)(dat_attack_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    *opts = (dat_attack_options){
        .size = sizeof(dat_attack_options),
        .kind = DAT_ATTACK_PGD,
        .norm = DAT_NORM_LINF,
        .eps = 8.0f / 255.0f,
        .alpha = 0.0f,
        .steps = 10,
        .random_start = 1,
        .restarts = 1,
        .mode = DAT_MODE_EVAL,
        .lo = 0.0f,
        .hi = 1.0f,
        .sigma = 0.25f,
        .noise_samples = 1,
        .seed = 0,
        .rank = 0,
    };
    return DAT_OK;
}

DAT_OPTIONS_INIT_SIZED(dat_attack_options)

static dat_status check_options(const dat_attack_options *o)
{
    const char *f = "dat_attack_create";
    if ((int)o->kind < DAT_ATTACK_PGD || o->kind > DAT_ATTACK_SMOOTH_PGD)
        return dat_error(DAT_ERR_INVALID_ARG, f, "kind = %d is not a dat_attack_kind", (int)o->kind);
    if (o->norm != DAT_NORM_LINF && o->norm != DAT_NORM_L2)
        return dat_error(DAT_ERR_INVALID_ARG, f, "norm = %d is not a dat_norm", (int)o->norm);
    if (!(o->eps >= 0) || !isfinite(o->eps))
        return dat_error(DAT_ERR_INVALID_ARG, f, "eps = %g must be finite and >= 0", (double)o->eps);
    if (!(o->alpha >= 0) || !isfinite(o->alpha))
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "alpha = %g must be finite and >= 0 (0 = the default step)",
                         (double)o->alpha);
    if (o->steps < 0 || o->steps > 1000000)
        return dat_error(DAT_ERR_INVALID_ARG, f, "steps = %d must be in [0, 10^6]", (int)o->steps);
    if (o->restarts < 1 || o->restarts > 10000)
        return dat_error(DAT_ERR_INVALID_ARG, f, "restarts = %d must be in [1, 10^4]",
                         (int)o->restarts);
    if (o->mode != DAT_MODE_TRAIN && o->mode != DAT_MODE_EVAL)
        return dat_error(DAT_ERR_INVALID_ARG, f, "mode = %d is not a dat_model_mode", (int)o->mode);
    if (!(o->lo < o->hi) || !isfinite(o->lo) || !isfinite(o->hi))
        return dat_error(DAT_ERR_INVALID_ARG, f, "need finite lo < hi, got [%g, %g]",
                         (double)o->lo, (double)o->hi);
    if (!(o->sigma >= 0) || !isfinite(o->sigma))
        return dat_error(DAT_ERR_INVALID_ARG, f, "sigma = %g must be finite and >= 0",
                         (double)o->sigma);
    if (o->noise_samples < 1 || o->noise_samples > 100000)
        return dat_error(DAT_ERR_INVALID_ARG, f, "noise_samples = %d must be in [1, 10^5]",
                         (int)o->noise_samples);
    if (o->rank < 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "rank = %d must be >= 0", (int)o->rank);
    return DAT_OK;
}

/* FGSM is one step of 1.25 eps; SmoothAdv takes steps of 2 eps / k (its code's
 * default) and is an l2 attack by definition; the others default to 2.5 eps / k. */
static void resolve_defaults(dat_attack_options *o)
{
    if (o->kind == DAT_ATTACK_FGSM) {
        o->steps = 1;
        o->random_start = 1;
        if (o->alpha == 0)
            o->alpha = 1.25f * o->eps;
    }
    if (o->kind == DAT_ATTACK_SMOOTH_PGD) {
        o->norm = DAT_NORM_L2;
        if (o->alpha == 0 && o->steps > 0)
            o->alpha = 2.0f * o->eps / (float)o->steps;
    }
    if (o->alpha == 0 && o->steps > 0)
        o->alpha = 2.5f * o->eps / (float)o->steps;
}

dat_status dat_attack_create(dat_attack **out, dat_ctx *ctx, const dat_attack_options *opts)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(ctx);
    dat_attack_options o;
    dat_attack_options_init(&o);
    if (opts) {
        DAT_CHECK_OPTIONS_SIZE(opts, dat_attack_options, sizeof(dat_attack_options));
        o = *opts;
        o.size = sizeof o;
    }
    DAT_TRY(check_options(&o));
    resolve_defaults(&o);
    dat_attack *a = calloc(1, sizeof *a);
    if (!a)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate an attack");
    a->ctx = ctx;
    a->o = o;
    dat_status s = ctx->be->alloc(ctx, sizeof *a->d_step, (void **)&a->d_step);
    if (s != DAT_OK) {
        free(a);
        return s;
    }
    *out = a;
    return DAT_OK;
}

static void free_scratch(dat_attack *a)
{
    dat_ctx *ctx = a->ctx;
    dat_attack_graph_free(a); /* it refers to the scratch */
    ctx->be->free(ctx, a->g);
    ctx->be->free(ctx, a->work);
    ctx->be->free(ctx, a->clean_logits);
    ctx->be->free(ctx, a->noisy);
    ctx->be->free(ctx, a->dnoisy);
    ctx->be->free(ctx, a->weights);
    ctx->be->free(ctx, a->labels_rep);
    free(a->host_best);
    free(a->host_loss);
    free(a->host_w);
    free(a->host_sum);
    free(a->host_pred);
    a->g = a->work = a->clean_logits = a->noisy = a->dnoisy = a->weights = NULL;
    a->labels_rep = NULL;
    a->host_best = a->host_loss = a->host_w = NULL;
    a->host_sum = NULL;
    a->host_pred = NULL;
    a->cap = 0;
    a->cap_rows = 0;
}

void dat_attack_destroy(dat_attack *attack)
{
    if (!attack)
        return;
    free_scratch(attack);
    attack->ctx->be->free(attack->ctx, attack->d_step);
    free(attack);
}

dat_status dat_attack_set_step(dat_attack *attack, uint64_t step)
{
    DAT_CHECK_NOT_NULL(attack);
    attack->step = step;
    return DAT_OK;
}

dat_status dat_attack_get_step(const dat_attack *attack, uint64_t *step)
{
    DAT_CHECK_NOT_NULL(attack);
    DAT_CHECK_NOT_NULL(step);
    *step = attack->step;
    return DAT_OK;
}

static dat_status alloc_f(dat_ctx *ctx, size_t n, float **p)
{
    return ctx->be->alloc(ctx, n * sizeof(float), (void **)p);
}

static dat_status alloc_scratch(dat_attack *a, int32_t n, size_t d, int32_t classes)
{
    dat_ctx *ctx = a->ctx;
    size_t nd = (size_t)n * d, rows = (size_t)n * (size_t)a->o.noise_samples;
    DAT_TRY(alloc_f(ctx, nd, &a->g));
    DAT_TRY(alloc_f(ctx, nd, &a->work));
    DAT_TRY(alloc_f(ctx, (size_t)n * (size_t)classes, &a->clean_logits));
    if (a->o.kind == DAT_ATTACK_SMOOTH_PGD) {
        DAT_TRY(alloc_f(ctx, rows * d, &a->noisy));
        DAT_TRY(alloc_f(ctx, rows * d, &a->dnoisy));
        DAT_TRY(alloc_f(ctx, rows, &a->weights));
        DAT_TRY(ctx->be->alloc(ctx, rows * sizeof(int32_t), (void **)&a->labels_rep));
    }
    a->host_best = malloc((size_t)n * sizeof(float));
    a->host_loss = malloc((size_t)n * sizeof(float));
    a->host_w = malloc(rows * sizeof(float));
    a->host_sum = malloc((size_t)n * sizeof(double));
    a->host_pred = malloc((size_t)n * sizeof(int32_t));
    if (!a->host_best || !a->host_loss || !a->host_w || !a->host_sum || !a->host_pred)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_attack_perturb", "host scratch");
    a->cap = nd;
    a->cap_rows = (int32_t)rows;
    return DAT_OK;
}

dat_status dat_attack_reserve(dat_attack *a, dat_model *m, int32_t n, size_t d)
{
    int64_t rows64 = (int64_t)n * a->o.noise_samples;
    if (rows64 > INT32_MAX)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_attack_perturb",
                         "%d samples x %d noise copies = %lld rows: at most %d", (int)n,
                         (int)a->o.noise_samples, (long long)rows64, INT32_MAX);
    int32_t rows = (int32_t)rows64;
    DAT_TRY(dat_model_reserve(m, a->o.kind == DAT_ATTACK_SMOOTH_PGD ? rows : n));
    if ((size_t)n * d <= a->cap && rows <= a->cap_rows)
        return DAT_OK;
    if (a->cap)
        dat_capture_buffers_moved(a->ctx);
    free_scratch(a);
    dat_status s = alloc_scratch(a, n, d, m->classes);
    if (s != DAT_OK)
        free_scratch(a);
    return s;
}

dat_status dat_attack_check(const char *func, dat_attack *a, dat_model *m, const dat_tensor *x,
                            const dat_tensor *y, const dat_tensor *out, dat_attack_batch *b)
{
    if (m->ctx != a->ctx)
        return dat_error(DAT_ERR_INVALID_ARG, func, "the model and the attack have other contexts");
    int32_t n;
    DAT_TRY(dat_model_check_input(func, m, "x", x, &n));
    size_t d = (size_t)m->in_c * (size_t)m->in_h * (size_t)m->in_w;
    if (out && (out->ctx != m->ctx || out->dtype != x->dtype || out->numel != x->numel))
        return dat_error(DAT_ERR_INVALID_ARG, func,
                         "the output must be float32 with the %lld elements of x",
                         (long long)x->numel);
    if (out && out->data == x->data)
        return dat_error(DAT_ERR_INVALID_ARG, func, "the output must not alias x");
    float lo = a->o.lo, hi = a->o.hi;
    if (dat_capturing(a->ctx)) /* nothing comes back: the check sets the fault word */
        DAT_TRY(DAT_OP(a->ctx, flag_range, (size_t)x->numel, x->data, lo, hi,
                       dat_fault_word(a->ctx), DAT_FAULT_RANGE));
    else
        DAT_TRY(DAT_OP(a->ctx, minmax, (size_t)x->numel, x->data, &lo, &hi));
    if (lo < a->o.lo || hi > a->o.hi)
        return dat_error(DAT_ERR_INVALID_ARG, func,
                         "x spans [%g, %g], outside the attack's input range [%g, %g]",
                         (double)lo, (double)hi, (double)a->o.lo, (double)a->o.hi);
    DAT_TRY(dat_attack_reserve(a, m, n, d));
    if (y)
        DAT_TRY(dat_model_check_labels(func, m, y, n));
    else if (a->o.kind != DAT_ATTACK_TRADES)
        return dat_error(DAT_ERR_INVALID_ARG, func,
                         "labels y are NULL: only the TRADES attack works without labels");
    *b = (dat_attack_batch){.n = n, .d = d, .x = x->data, .y = y ? y->data : NULL};
    return DAT_OK;
}

/* Each row's value of the attack's objective at x_adv, into host_loss. */
static dat_status objective_at(dat_attack *a, dat_model *m, const dat_attack_batch *b,
                               const float *x_adv)
{
    if (a->o.kind == DAT_ATTACK_SMOOTH_PGD) /* the smoothed classifier's, not f's */
        return dat_attack_smooth_loss(a, m, b, x_adv);
    dat_objective obj = a->o.kind == DAT_ATTACK_TRADES ? DAT_OBJECTIVE_KL : DAT_OBJECTIVE_CE;
    DAT_TRY(dat_model_objective(m, x_adv, b->n, b->y, a->clean_logits, obj, 1.0f, NULL));
    return a->ctx->be->copy_to_host(a->ctx, a->host_loss, m->sample_loss,
                                    (size_t)b->n * sizeof(float));
}

/* Rows of `from` whose loss beats the best so far replace those of `to`. */
static dat_status keep_best(dat_attack *a, dat_model *m, const dat_attack_batch *b,
                            const float *from, float *to, int first)
{
    dat_ctx *ctx = a->ctx;
    DAT_TRY(objective_at(a, m, b, from));
    for (int32_t i = 0; i < b->n; ++i) {
        if (!first && !(a->host_loss[i] > a->host_best[i]))
            continue;
        a->host_best[i] = a->host_loss[i];
        DAT_TRY(ctx->be->copy(ctx, to + (size_t)i * b->d, from + (size_t)i * b->d,
                              b->d * sizeof(float)));
    }
    return DAT_OK;
}

dat_status dat_attack_prepare_target(dat_attack *a, dat_model *m, const dat_attack_batch *b)
{
    if (a->o.kind != DAT_ATTACK_TRADES)
        return DAT_OK;
    DAT_TRY(dat_graph_forward(m, b->x, b->n, m->mode == DAT_MODE_TRAIN));
    return a->ctx->be->copy(a->ctx, a->clean_logits, dat_model_logits(m),
                            (size_t)b->n * (size_t)m->classes * sizeof(float));
}

static dat_status perturb(dat_attack *a, dat_model *m, const dat_attack_batch *b, float *x_adv)
{
    DAT_TRY(dat_attack_prepare_target(a, m, b));
    if (a->o.restarts == 1)
        return dat_attack_run_once(a, m, b, 0, x_adv);
    if (dat_capturing(a->ctx)) /* keep_best compares the restarts' losses on the host */
        return dat_capture_refuse(a->ctx, "dat_attack_perturb", "an attack with restarts");
    for (int32_t r = 0; r < a->o.restarts; ++r) {
        DAT_TRY(dat_attack_run_once(a, m, b, r, a->work));
        DAT_TRY(keep_best(a, m, b, a->work, x_adv, r == 0));
    }
    return DAT_OK;
}

dat_status dat_attack_recorded(dat_attack *a)
{
    /* The step is a uint64: counted as its int64 twin, which has its bits. */
    return dat_capture_counter(a->ctx, (int64_t *)&a->step, 1, a->d_step);
}

uint64_t dat_attack_pass_kind(const dat_attack *a, const dat_model *m, int entry, int32_t n)
{
    uint64_t ops = (uint64_t)a->o.kind | (uint64_t)a->o.norm << 8 |
                   (uint64_t)(uint32_t)a->o.noise_samples << 16;
    return dat_model_pass_kind(entry, n, ops, m);
}

dat_status dat_attack_perturb(dat_attack *attack, dat_model *model, const dat_tensor *x,
                              const dat_tensor *y, dat_tensor *x_adv)
{
    DAT_CHECK_NOT_NULL(attack);
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(x);
    DAT_CHECK_NOT_NULL(x_adv);
    dat_attack_batch b;
    DAT_TRY(dat_attack_check(__func__, attack, model, x, y, x_adv, &b));
    dat_model_mode saved = model->mode;
    model->mode = attack->o.mode;
    dat_graph_pin_weights(model, 1);
    dat_model_undo u;
    dat_status s = dat_model_undo_begin(
        model, dat_attack_pass_kind(attack, model, DAT_PASS_ATTACK, b.n), 0, &u);
    if (s == DAT_OK)
        s = dat_model_undo_end(model, &u, perturb(attack, model, &b, x_adv->data));
    dat_graph_pin_weights(model, 0);
    model->mode = saved;
    attack->step++; /* a failed call uses up its step too, recorded or not */
    dat_status h = dat_attack_recorded(attack);
    return s != DAT_OK ? s : h;
}
