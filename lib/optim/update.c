/* One optimizer step on the CPU backend: the base direction and the per-segment
 * norms in one pass over the flat buffers, then the (layer-wise scaled) update.
 * The coefficients of a step are computed here for every backend
 * (kernels/ops_optim.cu mirrors the loops). */
#include <float.h>
#include <math.h>

#include "../cpu/cpu.h"
#include "optim.h"

void dat_optim_coefs_of(const dat_optim *opt, const dat_optim_seg *s, dat_optim_coefs *c)
{
    const dat_optim_options *o = &opt->o;
    const dat_optim_kind kind = o->kind;
    const int adam = kind == DAT_OPTIM_ADAM || kind == DAT_OPTIM_ADAMW;
    const int decoupled = kind == DAT_OPTIM_ADAMW || o->decoupled_decay;
    const float wd = s->no_decay ? 0.0f : o->weight_decay;
    c->rule = kind == DAT_OPTIM_SGD ? DAT_RULE_SGD : adam ? DAT_RULE_ADAM : DAT_RULE_MOMENTUM;
    c->nesterov = kind == DAT_OPTIM_NESTEROV;
    c->bias_correction = dat_optim_bias_corrected(o);
    c->wd_g = decoupled ? 0.0f : wd;
    c->wd_u = decoupled ? wd : 0.0f;
    c->mu = o->momentum;
    c->b2 = o->beta2;
    c->eps = o->eps;
    dat_optim_factors(c->bias_correction, c->mu, c->b2,
                      dat_optim_seg_step(opt->step, dat_optim_seg_skipped(opt, s)), &c->keep,
                      &c->c1, &c->c2);
}

/* u over one segment; returns ||theta||^2 and ||u||^2 through n2. One loop per
 * rule, with every coefficient in a local, so each loop vectorizes. */
static void direction(dat_ctx *ctx, dat_optim *opt, const dat_optim_seg *s, const float *theta,
                      const float *g, double n2[2])
{
    dat_optim_coefs c;
    dat_optim_coefs_of(opt, s, &c);
    const float wd_g = c.wd_g, wd_u = c.wd_u, mu = c.mu, b2 = c.b2, eps = c.eps;
    const float c1 = c.c1, c2 = c.c2;
    float *restrict m = opt->m + s->offset, *restrict v = opt->v ? opt->v + s->offset : NULL;
    float *restrict u = opt->u + s->offset;
    const float *restrict th = theta + s->offset, *restrict gr = g + s->offset;
    const int64_t n = s->length;
    double tn = 0, un = 0;
    int nt = dat_cpu_threads(ctx, (size_t)n);
    if (c.rule == DAT_RULE_SGD) {
#pragma omp parallel for simd num_threads(nt) schedule(static) reduction(+ : tn, un)
        for (int64_t i = 0; i < n; ++i) {
            float ui = gr[i] + wd_g * th[i] + wd_u * th[i];
            u[i] = ui;
            tn += (double)th[i] * th[i];
            un += (double)ui * ui;
        }
    } else if (c.rule == DAT_RULE_MOMENTUM) {
        const float nest = c.nesterov ? 1.0f : 0.0f;
        const float keep = c.keep;
#pragma omp parallel for simd num_threads(nt) schedule(static) reduction(+ : tn, un)
        for (int64_t i = 0; i < n; ++i) {
            float gi = gr[i] + wd_g * th[i];
            float mi = keep * m[i] + gi;
            m[i] = mi;
            /* heavy ball: u = m; Nesterov: u = g + mu m */
            float ui = nest != 0.0f ? gi + mu * mi : mi;
            ui += wd_u * th[i];
            u[i] = ui;
            tn += (double)th[i] * th[i];
            un += (double)ui * ui;
        }
    } else {
#pragma omp parallel for simd num_threads(nt) schedule(static) reduction(+ : tn, un)
        for (int64_t i = 0; i < n; ++i) {
            float gi = gr[i] + wd_g * th[i];
            float mi = mu * m[i] + (1.0f - mu) * gi;
            float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            float ui = (mi * c1) / (sqrtf(vi * c2) + eps) + wd_u * th[i];
            u[i] = ui;
            tn += (double)th[i] * th[i];
            un += (double)ui * ui;
        }
    }
    n2[0] = tn;
    n2[1] = un;
}

dat_status dat_optim_update(dat_ctx *ctx, dat_optim *opt, float *params, const float *grads)
{
    double lr = dat_optim_lr_at(&opt->o, opt->step);
    for (int32_t k = 0; k < opt->n_segs; ++k) {
        const dat_optim_seg *s = &opt->segs[k];
        if (s->lr_scale == 0.0f)
            continue; /* frozen: parameters and moments keep their bits */
        double *n2 = opt->norms + 2 * k;
        direction(ctx, opt, s, params, grads, n2);
        double trust = dat_optim_trust(opt->o.lalr && !s->no_lalr, opt->o.c_l, opt->o.c_u,
                                       n2[0], n2[1]);
        const double scale_d = lr * s->lr_scale * trust;
        const float scale = (float)scale_d;
        const float *restrict u = opt->u + s->offset;
        float *restrict p = params + s->offset;
        const int64_t n = s->length;
        int nt = dat_cpu_threads(ctx, (size_t)n);
        if (!(scale_d <= FLT_MAX)) { /* trust of a tiny u (LALR): its products in double */
#pragma omp parallel for num_threads(nt) schedule(static)
            for (int64_t i = 0; i < n; ++i)
                p[i] -= (float)(scale_d * u[i]);
            continue;
        }
#pragma omp parallel for simd num_threads(nt) schedule(static)
        for (int64_t i = 0; i < n; ++i)
            p[i] -= scale * u[i];
    }
    return DAT_OK;
}
