/* Evaluation internals shared by lib/eval: statistics, and the host-side
 * gradient oracle AutoAttack's attacks are written against. */
#ifndef LIBDAT_EVAL_EVAL_H
#define LIBDAT_EVAL_EVAL_H

#include "../model/model.h"
#include "libdat/dat_eval.h"

/* stats.c: the unchecked functions behind dat_stat_*. */
double dat_incbeta(double a, double b, double x);
double dat_incbeta_inv(double a, double b, double p);
double dat_normal_quantile(double p);
double dat_clopper_pearson_lower(int64_t k, int64_t n, double alpha);

/*
 * AutoAttack's state for one batch. The attacks keep their iterates in host
 * memory (per-sample step sizes, checkpoints, sorting are host logic); the
 * model runs on the context's backend through dev_* scratch.
 */
typedef struct dat_aa {
    dat_ctx *ctx;
    dat_model *m;
    dat_autoattack_options o;
    int32_t cap, classes;   /* rows the scratch holds; classes of the model */
    size_t d;               /* values per sample */
    float *dev_x, *dev_dx, *dev_dz; /* device: cap * d, cap * d, cap * classes */
    float *logits, *dz;     /* host: cap * classes each */
} dat_aa;

/* Per-sample loss of logits z (classes values) for label y and target t (-1
 * without); writes its gradient w.r.t. z into dz when dz is not NULL. */
typedef float (*dat_aa_loss_fn)(const float *z, int32_t classes, int32_t y, int32_t t, float *dz);

float dat_aa_loss_ce(const float *z, int32_t classes, int32_t y, int32_t t, float *dz);
float dat_aa_loss_dlr_targeted(const float *z, int32_t classes, int32_t y, int32_t t, float *dz);

/* Logits of n host rows x into aa->logits. */
dat_status dat_aa_logits(dat_aa *aa, const float *x, int32_t n);
/* Logits (aa->logits), per-sample losses and input gradients (host, n * d) of
 * n host rows x; loss / grad may be NULL (then no backward pass). */
dat_status dat_aa_grad(dat_aa *aa, const float *x, int32_t n, const int32_t *y, const int32_t *t,
                       dat_aa_loss_fn fn, float *loss, float *grad);
/* argmax of row i of aa->logits. */
int32_t dat_aa_argmax(const dat_aa *aa, int32_t i);
/* The target class of targeted run r on row i of aa->logits: the (r + 2)-th largest
 * logit (ties: the lower class), so run 0 targets the runner-up. */
int32_t dat_aa_target_class(const dat_aa *aa, int32_t i, int32_t r);

/* Uniform [0, 1) number k of sample stream s of the attack's key. */
float dat_aa_uniform(const dat_aa *aa, uint64_t stream, uint64_t k);
/* Standard normal number k of sample stream s. */
float dat_aa_normal(const dat_aa *aa, uint64_t stream, uint64_t k);

/* Per-attack streams: sample i of attack a, run r, uses this stream. */
uint64_t dat_aa_stream(const dat_aa *aa, int32_t attack, int32_t run, int64_t sample);

/* Projection of x_adv (one sample, d values) onto the eps-ball around x0 and
 * [lo, hi], for the options' norm. */
void dat_aa_project(const dat_aa *aa, const float *x0, float *x_adv);

/*
 * The attacks. Each works on n host samples x (rows of d), labels y, and
 * fills x_adv with its result and fooled[i] = 1 where it found a misclassified
 * point (x_adv then holds it). idx[i] is the sample's index in the batch (its
 * stream).
 */
dat_status dat_apgd(dat_aa *aa, const float *x, const int32_t *y, const int64_t *idx, int32_t n,
                    int targeted, float *x_adv, unsigned char *fooled);
dat_status dat_square(dat_aa *aa, const float *x, const int32_t *y, const int64_t *idx,
                      int32_t n, float *x_adv, unsigned char *fooled);
dat_status dat_fab(dat_aa *aa, const float *x, const int32_t *y, const int64_t *idx, int32_t n,
                   float *x_adv, unsigned char *fooled);

#endif
