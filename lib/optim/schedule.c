/* Learning-rate schedules and batch scaling (formulas in include/libdat/dat_optim.h). */
#include <math.h>

#include "optim.h"

static double scaled_base(const dat_optim_options *o)
{
    double r = o->ref_batch > 0 ? (double)o->global_batch / (double)o->ref_batch : 1.0;
    switch (o->scaling) {
    case DAT_LR_SCALING_LINEAR: return o->lr * r;
    case DAT_LR_SCALING_SQRT: return o->lr * sqrt(r);
    default: return o->lr;
    }
}

double dat_optim_lr_at(const dat_optim_options *o, int64_t t)
{
    double eta = scaled_base(o);
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
