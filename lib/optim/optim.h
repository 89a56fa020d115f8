/* The optimizer as libdat sees it inside. */
#ifndef LIBDAT_OPTIM_OPTIM_H
#define LIBDAT_OPTIM_OPTIM_H

#include <math.h>

#include "../core/ctx.h"
#include "libdat/dat_optim.h"
#include "schedule.h"

typedef struct dat_optim_seg {
    int64_t offset, length;
    int no_decay, no_lalr;   /* from the kind and the exclusion options */
    float lr_scale;          /* dat_optim_set_lr_scale(); 0: frozen, skipped */
    /* Steps the segment sat out, so that its own step count (Adam's bias
     * correction, as PyTorch counts each parameter's updates) is the
     * optimizer's minus these: `skipped` before the last unfreezing, and while
     * frozen, the steps since `frozen_at`. */
    int64_t skipped, frozen_at;
} dat_optim_seg;

struct dat_optim {
    dat_ctx *ctx;
    dat_optim_options o;
    dat_optim_seg *segs;
    int32_t n_segs;
    int64_t total;           /* elements of the flat buffer */
    int64_t step;            /* steps done */
    float *m, *v;            /* moments (v only for Adam), backend memory, `total` each */
    float *u;                /* the direction of the current step, backend memory */
    double *norms;           /* per segment: ||theta||^2, ||u||^2 (host; the CPU backend) */
    /* For steps recorded in a graph (lib/core/capture.h), backend memory: the
     * step counter the device reads (set from `step` before each replay) and
     * the flag of a non-finite gradient, which makes the update skip. */
    int64_t *d_step;
    uint32_t *d_skip;
};

/* The per-element rule of a segment's direction u, the same on every backend. */
typedef enum dat_optim_rule {
    DAT_RULE_SGD = 0,       /* u = g + wd theta */
    DAT_RULE_MOMENTUM = 1,  /* m = keep m + g; heavy ball u = m, Nesterov u = g + mu m */
    DAT_RULE_ADAM = 2       /* m, v; u = (m c1) / (sqrt(v c2) + eps) */
} dat_optim_rule;

typedef struct dat_optim_coefs {
    dat_optim_rule rule;
    int nesterov, bias_correction; /* bias_correction: Adam's, on */
    float wd_g, wd_u;       /* weight decay coupled into g, or decoupled into u */
    float mu, keep;         /* momentum / beta1; keep = 0 on the first step (m starts at g) */
    float b2, eps, c1, c2;  /* Adam: beta2, eps, bias corrections (1 without) */
} dat_optim_coefs;

/* The scalars of the current step for segment s (update.c). */
void dat_optim_coefs_of(const dat_optim *opt, const dat_optim_seg *s, dat_optim_coefs *c);

/* Steps segment s has taken before the optimizer's step t (the steps it sat
 * out not counted; 0 where dat_optim_set_step() moved t back past them). */
#ifdef __CUDACC__
__host__ __device__
#endif
static inline int64_t dat_optim_seg_step(int64_t t, int64_t skipped)
{
    return t > skipped ? t - skipped : 0;
}

/* Steps s has sat out up to the optimizer's current step, frozen or not. */
int64_t dat_optim_seg_skipped(const dat_optim *opt, const dat_optim_seg *s);

/* tau(||theta||) / ||u|| from the squared norms, or 1 where LALR is off for the
 * segment or a norm is 0; the same double arithmetic on every backend. */
#ifdef __CUDACC__
__host__ __device__
#endif
static inline double dat_optim_trust(int lalr, double c_l, double c_u, double theta2, double u2)
{
    if (!lalr || theta2 == 0 || u2 == 0)
        return 1.0;
    double tau = fmin(fmax(sqrt(theta2), c_l), c_u);
    return tau / sqrt(u2);
}


/* Whether buf holds a state dat_optim_state_load would take for optim
 * (DAT_ERR_FORMAT with a message if not), changing nothing (state.c). */
dat_status dat_optim_state_check(const dat_optim *optim, const void *buf, size_t size);

/* The CPU backend's optim_update: one step of params from grads, both host memory,
 * opt->step not advanced (update.c). */
dat_status dat_optim_update(dat_ctx *ctx, dat_optim *opt, float *params, const float *grads);

#endif
