/* Everything one dat-train process holds. */
#ifndef DAT_TRAIN_RUN_H
#define DAT_TRAIN_RUN_H

#include <stdio.h>

#include <libdat/dat.h>

#include "options.h"
#include "progress.h"

typedef struct run {
    train_options o;
    char config[8192];
    int rank, ranks;
    dat_ctx *ctx;
    dat_comm *comm;
    int nccl;                /* comm is NCCL's (--comm) */
    dat_dataset *train, *test, *val;
    dat_model *model;
    dat_attack *attack;      /* NULL for --attack none */
    dat_attack *eval_attack; /* PGD-k of the robust accuracy */
    dat_optim *optim;
    dat_quantizer *quant;    /* NULL for 32 bits */
    dat_grad_sync *sync;     /* --overlap on: the all-reduce during the backward pass */
    dat_step_graph *graph;   /* --step-graph on: the recorded step (step_graph.c) */
    dat_tensor *loss_sum;    /* --step-graph on: the epoch's losses, summed on the device */
    dat_tensor *x, *x_adv, *y, *ex, *ey, *vx, *vy;
    dat_attack *noise;       /* Smooth-AT without an attack: makes the copies (smooth.c) */
    dat_tensor *xn, *yn;     /* Smooth-AT: noise_copies x batch copies and their labels */
    int64_t steps_per_epoch, start_epoch;
    int32_t eval_batch, val_batch;
    double best_ra;          /* best validation RA so far (-1: none yet) */
    dat_tensor *counts;      /* 3 floats: the evaluation's counts, summed over the ranks */
    double train_seconds, train_images;
    double grad_bytes, grad_steps; /* sent by the gradient all-reduces (not the evaluation's) */
    FILE *metrics;
    char at[96];             /* where the training loop is, for fail(); "" outside it */
} run;

/* Prints "dat-train: what (at): status: message" (rank-tagged; " (at)" only
 * inside the training loop) and returns 1. */
int fail(const run *r, const char *what, dat_status s);

/* In a function of a `run *r` returning int: fails with `what` unless call is DAT_OK. */
#define TRY_RUN(what, call)                \
    do {                                   \
        dat_status s_ = (call);            \
        if (s_ != DAT_OK)                  \
            return fail(r, (what), s_);    \
    } while (0)

/* A model of --model for the training data's shape and classes, seeded by --seed. */
dat_status create_model(const run *r, dat_model **out);
/* The options every training attack shares: --eps, --alpha, --steps, --seed, the rank. */
void attack_options(const run *r, dat_attack_options *a);

/* Notes where the training loop is (epoch, batch and step; the epoch alone for
 * batch < 0) for fail()'s messages. */
void training_at(run *r, int64_t epoch, int64_t batch);
/* Starts an epoch's progress display (rank 0's only). */
void epoch_progress(const run *r, int64_t epoch, progress *pg);
/* One training epoch; *loss receives the mean training loss. */
int train_epoch(run *r, int64_t epoch, double *loss);
/* The objective of the chosen variant (Madry AT, DAT's lambda, TRADES). */
dat_loss_options train_objective(const run *r);
/* After an epoch on M ranks: the batch-norm running statistics, which each
 * rank's shard moved its own way, and *loss become their means over the ranks,
 * so that the evaluation, the checkpoint and the logged loss are every rank's
 * (and a resumed run continues from what every rank held). */
int end_epoch(run *r, double *loss);
/* train_epoch with --step-graph on: the first batch op by op, then replays. */
int train_epoch_graph(run *r, int64_t epoch, double *loss);
/* Clean and PGD robust accuracy over a dataset, in batches of x and y: every rank
 * evaluates its share of the batches; all ranks call it and get the totals. */
int evaluate(run *r, dat_dataset *ds, dat_tensor *x, dat_tensor *y, double *ta, double *ra);
/* Writes <dir>/<name> with the run's position after `epochs` epochs. */
int save_checkpoint(run *r, const char *name, int64_t epochs);

#endif
