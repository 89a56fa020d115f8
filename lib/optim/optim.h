/* The optimizer as libdat sees it inside. */
#ifndef LIBDAT_OPTIM_OPTIM_H
#define LIBDAT_OPTIM_OPTIM_H

#include "../core/ctx.h"
#include "libdat/dat_optim.h"

typedef struct dat_optim_seg {
    int64_t offset, length;
    int no_decay, no_lalr;   /* from the kind and the exclusion options */
    float lr_scale;          /* dat_optim_set_lr_scale(); 0: frozen, skipped */
} dat_optim_seg;

struct dat_optim {
    dat_ctx *ctx;
    dat_optim_options o;
    dat_optim_seg *segs;
    int32_t n_segs;
    int64_t total;           /* elements of the flat buffer */
    int64_t step;            /* steps done */
    float *m, *v;            /* moments (v only for Adam), host memory, `total` each */
    float *u;                /* the direction of the current step */
    double *norms;           /* per segment: ||theta||^2, ||u||^2 */
};

/* The learning rate of step t (schedule.c). */
double dat_optim_lr_at(const dat_optim_options *o, int64_t t);

/* One update of params from grads, both host memory (update.c). */
void dat_optim_update(dat_optim *opt, float *params, const float *grads);

#endif
