/* Randomized smoothing (Cohen et al. 2019): PREDICT and CERTIFY by Monte
 * Carlo over Gaussian noise copies, and certified accuracy at given radii. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/options.h"
#include "eval.h"

dat_status (dat_smooth_options_init)(dat_smooth_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    *opts = (dat_smooth_options){
        .size = sizeof(dat_smooth_options),
        .sigma = 0.25f,
        .n0 = 100,
        .n = 100000,
        .alpha = 0.001,
        .batch = 1000,
        .seed = 0,
        .first_index = 0,
    };
    return DAT_OK;
}

DAT_OPTIONS_INIT_SIZED(dat_smooth_options)

static dat_status check_options(const char *f, const dat_smooth_options *o, int certify)
{
    if (!(o->sigma > 0) || !isfinite(o->sigma))
        return dat_error(DAT_ERR_INVALID_ARG, f, "sigma = %g must be finite and > 0",
                         (double)o->sigma);
    if (o->n < 1)
        return dat_error(DAT_ERR_INVALID_ARG, f, "n = %d must be >= 1", (int)o->n);
    if (certify && (o->n0 < 1 || o->n0 > o->n))
        return dat_error(DAT_ERR_INVALID_ARG, f, "n0 = %d must be in [1, n = %d]", (int)o->n0,
                         (int)o->n);
    if (!(o->alpha > 0 && o->alpha < 1))
        return dat_error(DAT_ERR_INVALID_ARG, f, "alpha = %g must be in (0, 1)", o->alpha);
    if (o->batch < 1 || o->batch > 1000000)
        return dat_error(DAT_ERR_INVALID_ARG, f, "batch = %d must be in [1, 10^6]",
                         (int)o->batch);
    if (o->first_index < 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "first_index = %lld must be >= 0",
                         (long long)o->first_index);
    return DAT_OK;
}

/* One call's state: noise buffer and class counts. */
typedef struct sampler {
    dat_ctx *ctx;
    dat_model *m;
    dat_smooth_options o;
    size_t d;
    float *noisy;      /* device, batch * d */
    int32_t *pred_dev; /* device, batch */
    int32_t *pred;     /* host, batch */
    int64_t *counts;   /* host, classes */
} sampler;

static void sampler_free(sampler *s)
{
    s->ctx->be->free(s->ctx, s->noisy);
    s->ctx->be->free(s->ctx, s->pred_dev);
    free(s->pred);
    free(s->counts);
}

static dat_status sampler_init(sampler *s, dat_model *m, const dat_smooth_options *o)
{
    *s = (sampler){.ctx = m->ctx, .m = m, .o = *o};
    s->d = (size_t)m->in_c * (size_t)m->in_h * (size_t)m->in_w;
    int32_t b = o->batch < o->n ? o->batch : o->n;
    s->o.batch = b;
    DAT_TRY(dat_model_reserve(m, b));
    DAT_TRY(s->ctx->be->alloc(s->ctx, (size_t)b * s->d * sizeof(float), (void **)&s->noisy));
    DAT_TRY(s->ctx->be->alloc(s->ctx, (size_t)b * sizeof(int32_t), (void **)&s->pred_dev));
    s->pred = malloc((size_t)b * sizeof(int32_t));
    s->counts = malloc((size_t)m->classes * sizeof(int64_t));
    if (!s->pred || !s->counts)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_smooth", "host scratch");
    return DAT_OK;
}

/* Class counts of f(x + eta) over `num` copies; the noise continues at
 * *offset of the sample's stream, so selection and estimation draw apart. */
static dat_status sample_counts(sampler *s, const float *x, uint64_t stream, uint64_t *offset,
                                int32_t num)
{
    dat_ctx *ctx = s->ctx;
    memset(s->counts, 0, (size_t)s->m->classes * sizeof(int64_t));
    for (int32_t done = 0; done < num;) {
        int32_t b = num - done < s->o.batch ? num - done : s->o.batch;
        size_t bd = (size_t)b * s->d;
        DAT_TRY(ctx->be->rng_normal(ctx, s->noisy, bd, 0.0f, s->o.sigma, s->o.seed, stream,
                                    NULL, *offset));
        *offset += bd;
        for (int32_t r = 0; r < b; ++r)
            DAT_TRY(DAT_OP(ctx, add, DAT_FMT_F32, s->d, s->noisy + (size_t)r * s->d, x,
                           s->noisy + (size_t)r * s->d));
        DAT_TRY(dat_graph_forward(s->m, s->noisy, b, 0));
        DAT_TRY(DAT_OP(ctx, argmax, b, s->m->classes, dat_model_logits(s->m), s->pred_dev));
        DAT_TRY(ctx->be->copy_to_host(ctx, s->pred, s->pred_dev, (size_t)b * sizeof(int32_t)));
        for (int32_t r = 0; r < b; ++r)
            s->counts[s->pred[r]]++;
        done += b;
    }
    return DAT_OK;
}

/* The two largest counts (ties: the lower class first). */
static void top_two(const sampler *s, int32_t *c1, int32_t *c2)
{
    int32_t a = 0, b = -1;
    for (int32_t c = 1; c < s->m->classes; ++c) {
        if (s->counts[c] > s->counts[a]) {
            b = a;
            a = c;
        } else if (b < 0 || s->counts[c] > s->counts[b]) {
            b = c;
        }
    }
    *c1 = a;
    *c2 = b;
}

static dat_status predict_one(sampler *s, const float *x, uint64_t stream, int32_t *pred)
{
    uint64_t offset = 0;
    DAT_TRY(sample_counts(s, x, stream, &offset, s->o.n));
    int32_t a, b;
    top_two(s, &a, &b);
    double na = (double)s->counts[a], nb = b >= 0 ? (double)s->counts[b] : 0.0;
    /* Two-sided binomial test of na against Bin(na + nb, 1/2):
     * p = min(1, 2 P(X >= na)), P(X >= na) = I_{1/2}(na, nb + 1). */
    double pvalue = fmin(1.0, 2.0 * dat_incbeta(na, nb + 1.0, 0.5));
    *pred = pvalue > s->o.alpha ? DAT_SMOOTH_ABSTAIN : a;
    return DAT_OK;
}

static dat_status certify_one(sampler *s, const float *x, uint64_t stream, int32_t *pred,
                              float *radius)
{
    uint64_t offset = 0;
    DAT_TRY(sample_counts(s, x, stream, &offset, s->o.n0));
    int32_t a, b;
    top_two(s, &a, &b);
    DAT_TRY(sample_counts(s, x, stream, &offset, s->o.n));
    double pa = dat_clopper_pearson_lower(s->counts[a], s->o.n, s->o.alpha);
    if (pa <= 0.5) {
        *pred = DAT_SMOOTH_ABSTAIN;
        *radius = 0.0f;
    } else {
        *pred = a;
        /* rounded toward 0: a float above the double would claim more than proven */
        double r = (double)s->o.sigma * dat_normal_quantile(pa);
        float rf = (float)r;
        *radius = (double)rf > r ? nextafterf(rf, 0.0f) : rf;
    }
    return DAT_OK;
}

static dat_status run(const char *f, dat_model *model, const dat_tensor *x,
                      const dat_smooth_options *opts, int32_t *pred, float *radius, int certify)
{
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(x);
    DAT_CHECK_NOT_NULL(pred);
    dat_smooth_options o;
    dat_smooth_options_init(&o);
    if (opts) {
        if (opts->size != sizeof(dat_smooth_options))
            return dat_error(DAT_ERR_INVALID_ARG, f,
                             "opts->size is %u, expected %zu: call dat_smooth_options_init first",
                             (unsigned)opts->size, sizeof(dat_smooth_options));
        memcpy(&o, opts, opts->size);
    }
    DAT_TRY(check_options(f, &o, certify));
    int32_t n;
    DAT_TRY(dat_model_check_input(f, model, "x", x, &n));
    sampler s;
    dat_status st = sampler_init(&s, model, &o);
    dat_model_mode saved = model->mode;
    model->mode = DAT_MODE_EVAL;
    for (int32_t i = 0; st == DAT_OK && i < n; ++i) {
        const float *xi = (const float *)x->data + (size_t)i * s.d;
        uint64_t stream = (uint64_t)(o.first_index + i);
        float r = 0.0f;
        st = certify ? certify_one(&s, xi, stream, &pred[i], &r)
                     : predict_one(&s, xi, stream, &pred[i]);
        if (radius)
            radius[i] = r;
    }
    model->mode = saved;
    sampler_free(&s);
    return st == DAT_OK ? DAT_OK : dat_error_context(st, f);
}

dat_status dat_smooth_predict(dat_model *model, const dat_tensor *x,
                              const dat_smooth_options *opts, int32_t *pred)
{
    return run(__func__, model, x, opts, pred, NULL, 0);
}

dat_status dat_smooth_certify(dat_model *model, const dat_tensor *x,
                              const dat_smooth_options *opts, int32_t *pred, float *radius)
{
    return run(__func__, model, x, opts, pred, radius, 1);
}

dat_status dat_smooth_certified_accuracy(const int32_t *pred, const float *radius,
                                         const int32_t *labels, int64_t count,
                                         const float *radii, int32_t n_radii, double *accuracy)
{
    DAT_CHECK_NOT_NULL(pred);
    DAT_CHECK_NOT_NULL(radius);
    DAT_CHECK_NOT_NULL(labels);
    DAT_CHECK_NOT_NULL(radii);
    DAT_CHECK_NOT_NULL(accuracy);
    if (count < 1 || n_radii < 1)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "count = %lld and n_radii = %d must be >= 1", (long long)count,
                         (int)n_radii);
    for (int32_t j = 0; j < n_radii; ++j) {
        int64_t ok = 0;
        for (int64_t i = 0; i < count; ++i)
            ok += pred[i] != DAT_SMOOTH_ABSTAIN && pred[i] == labels[i] && radius[i] >= radii[j];
        accuracy[j] = (double)ok / (double)count;
    }
    return DAT_OK;
}
