/* One optimizer step: the base direction and the per-segment norms in one pass
 * over the flat buffers, then the (layer-wise scaled) update. */
#include <math.h>

#include "../cpu/cpu.h"
#include "optim.h"

/* u over one segment; returns ||theta||^2 and ||u||^2 through n2. */
static void direction(dat_optim *opt, const dat_optim_seg *s, const float *theta, const float *g,
                      double n2[2])
{
    const dat_optim_options *o = &opt->o;
    int adam = o->kind == DAT_OPTIM_ADAM || o->kind == DAT_OPTIM_ADAMW;
    int decoupled = o->kind == DAT_OPTIM_ADAMW || o->decoupled_decay;
    float wd = s->no_decay ? 0.0f : o->weight_decay;
    float mu = o->momentum, b2 = o->beta2;
    double t = (double)(opt->step + 1);
    float c1 = adam && o->bias_correction ? (float)(1.0 / (1.0 - pow(mu, t))) : 1.0f;
    float c2 = adam && o->bias_correction ? (float)(1.0 / (1.0 - pow(b2, t))) : 1.0f;
    int first = opt->step == 0;
    float *m = opt->m, *v = opt->v, *u = opt->u;
    double tn = 0, un = 0;
    int nt = dat_cpu_threads(opt->ctx, (size_t)s->length);
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : tn, un)
    for (int64_t i = s->offset; i < s->offset + s->length; ++i) {
        float gi = g[i] + (decoupled ? 0.0f : wd * theta[i]);
        float ui;
        switch (o->kind) {
        case DAT_OPTIM_SGD:
            ui = gi;
            break;
        case DAT_OPTIM_MOMENTUM:
        case DAT_OPTIM_NESTEROV:
            m[i] = first ? gi : mu * m[i] + gi;
            ui = o->kind == DAT_OPTIM_NESTEROV ? gi + mu * m[i] : m[i];
            break;
        default:
            m[i] = mu * m[i] + (1.0f - mu) * gi;
            v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
            ui = (m[i] * c1) / (sqrtf(v[i] * c2) + o->eps);
            break;
        }
        if (decoupled)
            ui += wd * theta[i];
        u[i] = ui;
        tn += (double)theta[i] * theta[i];
        un += (double)ui * ui;
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
        double *n2 = opt->norms + 2 * k;
        direction(opt, s, params, grads, n2);
        float scale = (float)(lr * trust_ratio(opt, s, n2));
        const float *u = opt->u;
        int nt = dat_cpu_threads(opt->ctx, (size_t)s->length);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t i = s->offset; i < s->offset + s->length; ++i)
            params[i] -= scale * u[i];
    }
    opt->step++;
}
