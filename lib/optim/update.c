/* One optimizer step: the base direction and the per-segment norms in one pass
 * over the flat buffers, then the (layer-wise scaled) update. */
#include <math.h>

#include "../cpu/cpu.h"
#include "optim.h"

/* u over one segment; returns ||theta||^2 and ||u||^2 through n2. One loop per
 * kind, with every option in a local, so each loop vectorizes. */
static void direction(dat_optim *opt, const dat_optim_seg *s, const float *theta, const float *g,
                      double n2[2])
{
    const dat_optim_options *o = &opt->o;
    const dat_optim_kind kind = o->kind;
    const int adam = kind == DAT_OPTIM_ADAM || kind == DAT_OPTIM_ADAMW;
    const int decoupled = kind == DAT_OPTIM_ADAMW || o->decoupled_decay;
    const float wd = s->no_decay ? 0.0f : o->weight_decay;
    const float wd_g = decoupled ? 0.0f : wd, wd_u = decoupled ? wd : 0.0f;
    const float mu = o->momentum, b2 = o->beta2, eps = o->eps;
    const double t = (double)(opt->step + 1);
    const float c1 = adam && o->bias_correction ? (float)(1.0 / (1.0 - pow(mu, t))) : 1.0f;
    const float c2 = adam && o->bias_correction ? (float)(1.0 / (1.0 - pow(b2, t))) : 1.0f;
    const int first = opt->step == 0;
    float *restrict m = opt->m + s->offset, *restrict v = opt->v ? opt->v + s->offset : NULL;
    float *restrict u = opt->u + s->offset;
    const float *restrict th = theta + s->offset, *restrict gr = g + s->offset;
    const int64_t n = s->length;
    double tn = 0, un = 0;
    int nt = dat_cpu_threads(opt->ctx, (size_t)n);
    if (kind == DAT_OPTIM_SGD) {
#pragma omp parallel for simd num_threads(nt) schedule(static) reduction(+ : tn, un)
        for (int64_t i = 0; i < n; ++i) {
            float ui = gr[i] + wd_g * th[i] + wd_u * th[i];
            u[i] = ui;
            tn += (double)th[i] * th[i];
            un += (double)ui * ui;
        }
    } else if (!adam) {
        const float nest = kind == DAT_OPTIM_NESTEROV ? 1.0f : 0.0f;
        const float keep = first ? 0.0f : mu;
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

/* tau(||theta||) / ||u||, or 1 where a norm is 0 or the segment is excluded. */
static double trust_ratio(const dat_optim *opt, const dat_optim_seg *s, const double n2[2])
{
    if (!opt->o.lalr || s->no_lalr || n2[0] == 0 || n2[1] == 0)
        return 1.0;
    double r = sqrt(n2[0]);
    double tau = fmin(fmax(r, (double)opt->o.c_l), (double)opt->o.c_u);
    return tau / sqrt(n2[1]);
}

void dat_optim_update(dat_optim *opt, float *params, const float *grads)
{
    double lr = dat_optim_lr_at(&opt->o, opt->step);
    for (int32_t k = 0; k < opt->n_segs; ++k) {
        const dat_optim_seg *s = &opt->segs[k];
        if (s->lr_scale == 0.0f)
            continue; /* frozen: parameters and moments keep their bits */
        double *n2 = opt->norms + 2 * k;
        direction(opt, s, params, grads, n2);
        const float scale = (float)(lr * s->lr_scale * trust_ratio(opt, s, n2));
        const float *restrict u = opt->u + s->offset;
        float *restrict p = params + s->offset;
        const int64_t n = s->length;
        int nt = dat_cpu_threads(opt->ctx, (size_t)n);
#pragma omp parallel for simd num_threads(nt) schedule(static)
        for (int64_t i = 0; i < n; ++i)
            p[i] -= scale * u[i];
    }
    opt->step++;
}
