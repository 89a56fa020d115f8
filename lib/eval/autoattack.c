/* AutoAttack's standard sequence: each attack runs only on the points every
 * earlier one failed on; a point is robust only if all of them fail. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/options.h"
#include "eval.h"

dat_status (dat_autoattack_options_init)(dat_autoattack_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    *opts = (dat_autoattack_options){
        .size = sizeof(dat_autoattack_options),
        .norm = DAT_NORM_LINF,
        .eps = 8.0f / 255.0f,
        .attacks = DAT_AA_STANDARD,
        .apgd_steps = 100,
        .target_classes = 9,
        .fab_steps = 100,
        .square_queries = 5000,
        .square_p_init = 0.8f,
        .lo = 0.0f,
        .hi = 1.0f,
        .seed = 0,
        .first_index = 0,
    };
    return DAT_OK;
}

DAT_OPTIONS_INIT_SIZED(dat_autoattack_options)

static dat_status check_options(const char *f, const dat_autoattack_options *o, int32_t classes)
{
    if (o->norm != DAT_NORM_LINF && o->norm != DAT_NORM_L2)
        return dat_error(DAT_ERR_INVALID_ARG, f, "norm = %d is not a dat_norm", (int)o->norm);
    if (!(o->eps >= 0) || !isfinite(o->eps))
        return dat_error(DAT_ERR_INVALID_ARG, f, "eps = %g must be finite and >= 0",
                         (double)o->eps);
    if (o->attacks == 0 || (o->attacks & ~DAT_AA_STANDARD))
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "attacks = %#x must be a non-empty set of DAT_AA_BIT()s",
                         (unsigned)o->attacks);
    if (o->apgd_steps < 1 || o->apgd_steps > 100000)
        return dat_error(DAT_ERR_INVALID_ARG, f, "apgd_steps = %d must be in [1, 10^5]",
                         (int)o->apgd_steps);
    if (o->fab_steps < 1 || o->fab_steps > 100000)
        return dat_error(DAT_ERR_INVALID_ARG, f, "fab_steps = %d must be in [1, 10^5]",
                         (int)o->fab_steps);
    if (o->square_queries < 1 || o->square_queries > 10000000)
        return dat_error(DAT_ERR_INVALID_ARG, f, "square_queries = %d must be in [1, 10^7]",
                         (int)o->square_queries);
    if (!(o->square_p_init > 0 && o->square_p_init <= 1))
        return dat_error(DAT_ERR_INVALID_ARG, f, "square_p_init = %g must be in (0, 1]",
                         (double)o->square_p_init);
    if (!(o->lo < o->hi) || !isfinite(o->lo) || !isfinite(o->hi))
        return dat_error(DAT_ERR_INVALID_ARG, f, "need finite lo < hi, got [%g, %g]",
                         (double)o->lo, (double)o->hi);
    if (o->first_index < 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "first_index = %lld must be >= 0",
                         (long long)o->first_index);
    int targeted = (o->attacks & (DAT_AA_BIT(DAT_AA_APGD_T) | DAT_AA_BIT(DAT_AA_FAB_T))) != 0;
    if (targeted && (o->target_classes < 1 || o->target_classes > classes - 1))
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "target_classes = %d must be in [1, classes - 1 = %d]",
                         (int)o->target_classes, (int)classes - 1);
    if ((o->attacks & DAT_AA_BIT(DAT_AA_APGD_T)) && classes < 4)
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "APGD-T's DLR loss needs 4 classes or more, the model has %d",
                         (int)classes);
    return DAT_OK;
}

static void aa_free(dat_aa *aa)
{
    if (!aa->ctx)
        return;
    aa->ctx->be->free(aa->ctx, aa->dev_x);
    aa->ctx->be->free(aa->ctx, aa->dev_dx);
    aa->ctx->be->free(aa->ctx, aa->dev_dz);
    free(aa->logits);
    free(aa->dz);
}

static dat_status aa_init(dat_aa *aa, dat_model *m, const dat_autoattack_options *o, int32_t n)
{
    *aa = (dat_aa){.ctx = m->ctx, .m = m, .o = *o, .cap = n, .classes = m->classes};
    aa->d = (size_t)m->in_c * (size_t)m->in_h * (size_t)m->in_w;
    dat_ctx *ctx = m->ctx;
    size_t nd = (size_t)n * aa->d, nk = (size_t)n * (size_t)m->classes;
    DAT_TRY(dat_model_reserve(m, n));
    DAT_TRY(ctx->be->alloc(ctx, nd * sizeof(float), (void **)&aa->dev_x));
    DAT_TRY(ctx->be->alloc(ctx, nd * sizeof(float), (void **)&aa->dev_dx));
    DAT_TRY(ctx->be->alloc(ctx, nk * sizeof(float), (void **)&aa->dev_dz));
    aa->logits = malloc(nk * sizeof(float));
    aa->dz = malloc(nk * sizeof(float));
    if (!aa->logits || !aa->dz)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_eval_autoattack", "host logits");
    return DAT_OK;
}

/* The batch on the host, with the per-sample bookkeeping of the sequence. */
typedef struct aa_batch {
    int32_t n;
    float *x, *x_adv;       /* n * d */
    int32_t *y, *outcome;   /* n */
    /* the points still robust, compacted for the next attack */
    float *cx, *cadv;
    int32_t *cy;
    int64_t *cidx;
    int32_t *rows;
    unsigned char *fooled;
} aa_batch;

static void batch_free(aa_batch *b)
{
    free(b->x);
    free(b->x_adv);
    free(b->y);
    free(b->outcome);
    free(b->cx);
    free(b->cadv);
    free(b->cy);
    free(b->cidx);
    free(b->rows);
    free(b->fooled);
}

static dat_status batch_alloc(aa_batch *b, int32_t n, size_t d)
{
    size_t nd = (size_t)n * d;
    *b = (aa_batch){.n = n};
    b->x = malloc(nd * sizeof(float));
    b->x_adv = malloc(nd * sizeof(float));
    b->cx = malloc(nd * sizeof(float));
    b->cadv = malloc(nd * sizeof(float));
    b->y = malloc((size_t)n * sizeof(int32_t));
    b->outcome = malloc((size_t)n * sizeof(int32_t));
    b->cy = malloc((size_t)n * sizeof(int32_t));
    b->rows = malloc((size_t)n * sizeof(int32_t));
    b->cidx = malloc((size_t)n * sizeof(int64_t));
    b->fooled = malloc((size_t)n);
    if (b->x && b->x_adv && b->cx && b->cadv && b->y && b->outcome && b->cy && b->rows &&
        b->cidx && b->fooled)
        return DAT_OK;
    return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_eval_autoattack", "host batch of %d", (int)n);
}

static dat_status run_attack(dat_aa *aa, aa_batch *b, dat_aa_attack which)
{
    size_t d = aa->d;
    int32_t m = 0;
    for (int32_t i = 0; i < b->n; ++i)
        if (b->outcome[i] == DAT_AA_ROBUST)
            b->rows[m++] = i;
    if (m == 0)
        return DAT_OK;
    for (int32_t q = 0; q < m; ++q) {
        memcpy(b->cx + (size_t)q * d, b->x + (size_t)b->rows[q] * d, d * sizeof(float));
        b->cy[q] = b->y[b->rows[q]];
        b->cidx[q] = b->rows[q];
    }
    dat_status st;
    switch (which) {
    case DAT_AA_APGD_CE: st = dat_apgd(aa, b->cx, b->cy, b->cidx, m, 0, b->cadv, b->fooled); break;
    case DAT_AA_APGD_T: st = dat_apgd(aa, b->cx, b->cy, b->cidx, m, 1, b->cadv, b->fooled); break;
    case DAT_AA_FAB_T: st = dat_fab(aa, b->cx, b->cy, b->cidx, m, b->cadv, b->fooled); break;
    default: st = dat_square(aa, b->cx, b->cy, b->cidx, m, b->cadv, b->fooled); break;
    }
    DAT_TRY(st);
    for (int32_t q = 0; q < m; ++q) {
        if (!b->fooled[q])
            continue;
        b->outcome[b->rows[q]] = which;
        memcpy(b->x_adv + (size_t)b->rows[q] * d, b->cadv + (size_t)q * d, d * sizeof(float));
    }
    return DAT_OK;
}

/* Every claimed example must be misclassified and inside the threat model;
 * anything else is a bug, reported rather than counted. */
static dat_status verify(dat_aa *aa, aa_batch *b)
{
    DAT_TRY(dat_aa_logits(aa, b->x_adv, b->n));
    for (int32_t i = 0; i < b->n; ++i) {
        if (b->outcome[i] < 0)
            continue;
        const float *x0 = b->x + (size_t)i * aa->d, *xa = b->x_adv + (size_t)i * aa->d;
        double r = 0;
        int in_range = 1;
        for (size_t j = 0; j < aa->d; ++j) {
            double v = fabs((double)xa[j] - x0[j]);
            r = aa->o.norm == DAT_NORM_LINF ? fmax(r, v) : r + v * v;
            in_range &= xa[j] >= aa->o.lo && xa[j] <= aa->o.hi;
        }
        if (aa->o.norm == DAT_NORM_L2)
            r = sqrt(r);
        if (dat_aa_argmax(aa, i) == b->y[i] || r > aa->o.eps * (1.0 + 1e-5) + 1e-6 || !in_range)
            return dat_error(DAT_ERR_INTERNAL, "dat_eval_autoattack",
                             "attack %d's example of sample %d is not valid (distance %g, "
                             "eps %g, %s)",
                             (int)b->outcome[i], (int)i, r, (double)aa->o.eps,
                             in_range ? "in range" : "out of range");
    }
    return DAT_OK;
}

static dat_status sequence(dat_aa *aa, aa_batch *b)
{
    DAT_TRY(dat_aa_logits(aa, b->x, b->n));
    memcpy(b->x_adv, b->x, (size_t)b->n * aa->d * sizeof(float));
    for (int32_t i = 0; i < b->n; ++i)
        b->outcome[i] = dat_aa_argmax(aa, i) == b->y[i] ? DAT_AA_ROBUST : DAT_AA_MISCLASSIFIED;
    for (int a = 0; a < DAT_AA_COUNT; ++a)
        if (aa->o.attacks & DAT_AA_BIT(a))
            DAT_TRY(run_attack(aa, b, (dat_aa_attack)a));
    return verify(aa, b);
}

static dat_status check_args(const char *f, dat_model *m, const dat_tensor *x,
                             const dat_tensor *y, const dat_tensor *x_adv,
                             const dat_autoattack_options *o, int32_t *n)
{
    DAT_TRY(check_options(f, o, m->classes));
    DAT_TRY(dat_model_check_input(f, m, "x", x, n));
    if (x_adv && (x_adv->ctx != m->ctx || x_adv->dtype != DAT_FLOAT32 || x_adv->numel != x->numel))
        return dat_error(DAT_ERR_INVALID_ARG, f, "x_adv must be float32 with the %lld elements of x",
                         (long long)x->numel);
    if (x_adv && x_adv->data == x->data)
        return dat_error(DAT_ERR_INVALID_ARG, f, "x_adv must not alias x");
    float lo, hi;
    DAT_TRY(DAT_OP(m->ctx, minmax, (size_t)x->numel, x->data, &lo, &hi));
    if (lo < o->lo || hi > o->hi)
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "x spans [%g, %g], outside the input range [%g, %g]", (double)lo,
                         (double)hi, (double)o->lo, (double)o->hi);
    DAT_TRY(dat_model_reserve(m, *n));
    return dat_model_check_labels(f, m, y, *n);
}

dat_status dat_eval_autoattack(dat_model *model, const dat_tensor *x, const dat_tensor *y,
                               const dat_autoattack_options *opts, dat_tensor *x_adv,
                               int32_t *outcome, int32_t *robust_correct)
{
    const char *f = __func__;
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(x);
    DAT_CHECK_NOT_NULL(y);
    dat_autoattack_options o;
    dat_autoattack_options_init(&o);
    if (opts) {
        DAT_CHECK_OPTIONS_SIZE(opts, dat_autoattack_options, sizeof(dat_autoattack_options));
        o = *opts;
    }
    int32_t n;
    DAT_TRY(check_args(f, model, x, y, x_adv, &o, &n));
    dat_aa aa = {0};
    aa_batch b = {0};
    dat_ctx *ctx = model->ctx;
    dat_model_mode saved = model->mode;
    model->mode = DAT_MODE_EVAL;
    dat_status st = aa_init(&aa, model, &o, n);
    if (st == DAT_OK)
        st = batch_alloc(&b, n, aa.d);
    if (st == DAT_OK)
        st = ctx->be->copy_to_host(ctx, b.x, x->data, (size_t)n * aa.d * sizeof(float));
    if (st == DAT_OK)
        st = ctx->be->copy_to_host(ctx, b.y, y->data, (size_t)n * sizeof(int32_t));
    if (st == DAT_OK)
        st = sequence(&aa, &b);
    model->mode = saved;
    if (st == DAT_OK && x_adv)
        st = ctx->be->copy_from_host(ctx, x_adv->data, b.x_adv, (size_t)n * aa.d * sizeof(float));
    if (st == DAT_OK) {
        int32_t robust = 0;
        for (int32_t i = 0; i < n; ++i)
            robust += b.outcome[i] == DAT_AA_ROBUST;
        if (outcome)
            memcpy(outcome, b.outcome, (size_t)n * sizeof(int32_t));
        if (robust_correct)
            *robust_correct = robust;
    }
    batch_free(&b);
    aa_free(&aa);
    return st;
}
