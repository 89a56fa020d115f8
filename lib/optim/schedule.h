/* The scalars of step t that depend on nothing but the options and t: the
 * learning rate of the schedule (formulas in include/libdat/dat_optim.h) and
 * the momentum and bias-correction factors. Host and device code, so that a
 * step recorded in a graph computes them on the device from a counter. Both
 * sides must compute the same bits (a replay is compared with op by op), so
 * cos and pow, whose last bits differ between glibc and CUDA, are replaced by
 * the Philox header's series and by multiplications, each rounded on its own. */
#ifndef LIBDAT_OPTIM_SCHEDULE_H
#define LIBDAT_OPTIM_SCHEDULE_H

#include <math.h>

#include "../core/philox.h" /* DAT_HD, DAT_RN_DMUL, dat_rng_sincos_turn */
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

/* b^n for n >= 0 by repeated squaring: within about n ulps of pow, which is
 * far below float resolution wherever b^n is not ~0 (Adam's beta2^t). */
DAT_HD double dat_optim_pow_int(double b, int64_t n)
{
    double r = 1.0;
    for (; n > 0; n >>= 1) {
        if (n & 1)
            r = DAT_RN_DMUL(r, b);
        b = DAT_RN_DMUL(b, b);
    }
    return r;
}

/* cos(pi a) for a in [0, 1): half a turn (a / 2 is exact). */
DAT_HD double dat_optim_cos_pi(double a)
{
    double s, c;
    dat_rng_sincos_turn(DAT_RN_DMUL(a, 0.5), &s, &c);
    return c;
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
        return eta * dat_optim_pow_int((double)o->gamma, k);
    }
    case DAT_SCHEDULE_COSINE: {
        if (t >= o->total_steps)
            return 0.0;
        double span = (double)(o->total_steps - o->warmup_steps);
        return eta * 0.5 * (1.0 + dat_optim_cos_pi((double)(t - o->warmup_steps) / span));
    }
    default:
        return eta;
    }
}

/* Of a segment's step t (its own count: steps it sat out frozen are not
 * counted): keep, the momentum applied to the old moment (0 on the first step,
 * where m starts at g), and Adam's bias corrections c1, c2 (1 without, that
 * is where bias_correction is 0). */
DAT_HD void dat_optim_factors(int bias_correction, float momentum, float beta2, int64_t t,
                              float *keep, float *c1, float *c2)
{
    *keep = t == 0 ? 0.0f : momentum;
    *c1 = bias_correction ? (float)(1.0 / (1.0 - dat_optim_pow_int(momentum, t + 1))) : 1.0f;
    *c2 = bias_correction ? (float)(1.0 / (1.0 - dat_optim_pow_int(beta2, t + 1))) : 1.0f;
}

/* Whether o's optimizer corrects Adam's moments for their bias. */
DAT_HD int dat_optim_bias_corrected(const dat_optim_options *o)
{
    return (o->kind == DAT_OPTIM_ADAM || o->kind == DAT_OPTIM_ADAMW) && o->bias_correction;
}

#endif
