/* The scalars of step t that depend on nothing but the options and t: the
 * learning rate of the schedule (formulas in include/libdat/dat_optim.h) and
 * the momentum and bias-correction factors. Host and device code, so that a
 * step recorded in a graph computes them on the device from a counter. */
#ifndef LIBDAT_OPTIM_SCHEDULE_H
#define LIBDAT_OPTIM_SCHEDULE_H

#include <math.h>

#include "../core/philox.h" /* DAT_HD */
#include "libdat/dat_optim.h"

DAT_HD double dat_optim_scaled_base(const dat_optim_options *o)
{
    double r = o->ref_batch > 0 ? (double)o->global_batch / (double)o->ref_batch : 1.0;
    switch (o->scaling) {
    case DAT_LR_SCALING_LINEAR: return o->lr * r;
    case DAT_LR_SCALING_SQRT: return o->lr * sqrt(r);
    default: return o->lr;
    }
}

/* The learning rate of step t. */
DAT_HD double dat_optim_lr_at(const dat_optim_options *o, int64_t t)
{
    double eta = dat_optim_scaled_base(o);
    if (o->schedule == DAT_SCHEDULE_ONECYCLE) {
        double T = (double)o->total_steps, peak = 0.4 * T;
        if (t >= o->total_steps)
            return 0.0;
        return t <= peak ? eta * (double)t / peak : eta * (T - (double)t) / (T - peak);
    }
    if (t < o->warmup_steps)
        return eta * (double)(t + 1) / (double)o->warmup_steps;
    switch (o->schedule) {
    case DAT_SCHEDULE_PIECEWISE: {
        int k = 0;
        while (k < o->num_milestones && o->milestones[k] <= t)
            ++k;
        return eta * pow((double)o->gamma, k);
    }
    case DAT_SCHEDULE_COSINE: {
        if (t >= o->total_steps)
            return 0.0;
        double span = (double)(o->total_steps - o->warmup_steps);
        return eta * 0.5 * (1.0 + cos(M_PI * (double)(t - o->warmup_steps) / span));
    }
    default:
        return eta;
    }
}

/* Of step t: keep, the momentum applied to the old moment (0 on the first step,
 * where m starts at g), and Adam's bias corrections c1, c2 (1 without). */
DAT_HD void dat_optim_step_factors(const dat_optim_options *o, int64_t t, float *keep,
                                   float *c1, float *c2)
{
    const int adam = o->kind == DAT_OPTIM_ADAM || o->kind == DAT_OPTIM_ADAMW;
    const double n = (double)(t + 1);
    *keep = t == 0 ? 0.0f : o->momentum;
    *c1 = adam && o->bias_correction ? (float)(1.0 / (1.0 - pow(o->momentum, n))) : 1.0f;
    *c2 = adam && o->bias_correction ? (float)(1.0 / (1.0 - pow(o->beta2, n))) : 1.0f;
}

#endif
