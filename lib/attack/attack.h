/* The attack as libdat sees it inside, shared by the algorithm files. */
#ifndef LIBDAT_ATTACK_ATTACK_H
#define LIBDAT_ATTACK_ATTACK_H

#include "../core/capture.h"
#include "../model/model.h"
#include "libdat/dat_attack.h"

/* What a step captured as a graph bakes in (graph.c): when any of it changes,
 * the step is captured again. */
typedef struct dat_attack_graph_key {
    const struct dat_model *m;
    uint64_t model_runtime;     /* dat_model::runtime_gen (unique: no other model matches) */
    int32_t mode, n;
    size_t d;
    const float *x, *x_adv, *g, *target;
    const int32_t *y;
    dat_attack_options o;
} dat_attack_graph_key;

struct dat_attack {
    dat_ctx *ctx;
    dat_attack_options o;   /* with defaults resolved (alpha, steps) */
    uint64_t step;          /* Philox stream = rank * 2^32 + step */
    uint64_t *d_step;       /* backend memory: `step` where a step graph reads it
                               (set before each replay; lib/core/capture.h) */
    /* Scratch in device memory, grown to the largest batch seen. */
    size_t cap;             /* elements of x (N * d) the buffers hold */
    int32_t cap_rows;       /* rows of the smoothing buffers (N * m) */
    float *g;               /* input gradient, N * d */
    float *work;            /* the iterate when restarts compete, N * d */
    float *clean_logits;    /* TRADES target, N * classes */
    float *noisy, *dnoisy;  /* SMOOTH_PGD: N * m * d each */
    float *weights;         /* SMOOTH_PGD: N * m */
    int32_t *labels_rep;    /* SMOOTH_PGD: N * m */
    float *host_best, *host_loss, *host_w; /* host, N (host_w: N * m) */
    double *host_sum;                      /* host, N: smoothing's sums (smooth.c) */
    int32_t *host_pred;     /* host, N */
    /* dat_ctx_options::cuda_graphs: one step captured as a graph, for `graph_key`. */
    void *graph;
    dat_attack_graph_key graph_key;
    int graph_off;          /* a capture failed: every step runs op by op from then on */
};

/* A validated batch: n samples of d values in device memory. */
typedef struct dat_attack_batch {
    int32_t n;
    size_t d;
    const float *x;
    const int32_t *y;       /* NULL for TRADES without labels */
} dat_attack_batch;

/* Philox stream of the current call. */
static inline uint64_t dat_attack_stream(const dat_attack *a)
{
    return ((uint64_t)(uint32_t)a->o.rank << 32) | (a->step & 0xffffffffu);
}

/* Where the random draws of the current call read their step: in a recording
 * the step's bits come from d_step when the op runs (the stream's low half is
 * left 0 and *low points there), else they are in the stream and *low is NULL. */
static inline uint64_t dat_attack_rng_stream(const dat_attack *a, const uint64_t **low)
{
    uint64_t s = dat_attack_stream(a);
    *low = dat_capturing(a->ctx) ? a->d_step : NULL;
    return *low ? s & ~(uint64_t)0xffffffffu : s;
}

/* Registers the step of an attack a recorded call advanced (capture.h). */
dat_status dat_attack_recorded(dat_attack *a);

/* The kind of pass (model/undo.c) an attack's call on n points makes: its ops
 * follow from the attack's kind, norm, noise samples and the model's mode. */
uint64_t dat_attack_pass_kind(const dat_attack *a, const dat_model *m, int entry, int32_t n);

/* Grows the scratch for a batch (and, for smoothing, n * m rows). */
dat_status dat_attack_reserve(dat_attack *a, dat_model *m, int32_t n, size_t d);

/* Runs one restart (index r of this call) of PGD / FGSM / TRADES / SMOOTH_PGD
 * from x into x_adv (device, n * d). */
dat_status dat_attack_run_once(dat_attack *a, dat_model *m, const dat_attack_batch *b,
                               int32_t r, float *x_adv);

/* One PGD / TRADES step (pgd.c): the input gradient of the objective at x_adv,
 * then the step and projection. */
dat_status dat_attack_step(dat_attack *a, dat_model *m, const dat_attack_batch *b, float *x_adv,
                           dat_objective obj);

/*
 * Runs `count` more steps as replays of one step captured as a graph (graph.c),
 * where dat_ctx_options::cuda_graphs asks for it and the backend can; *ran
 * says whether it did. When it did not (no graphs, or the capture failed:
 * nothing ran), the caller runs the steps op by op.
 */
dat_status dat_attack_graph_steps(dat_attack *a, dat_model *m, const dat_attack_batch *b,
                                  float *x_adv, dat_objective obj, int32_t count, int *ran);

/* Frees the captured graph, if any. */
void dat_attack_graph_free(dat_attack *a);

/* SMOOTH_PGD's objective at x_adv under the call's noise, -log of the mean of
 * the copies' p(y), into host_loss (smooth.c): what its restarts compare. */
dat_status dat_attack_smooth_loss(dat_attack *a, dat_model *m, const dat_attack_batch *b,
                                  const float *x_adv);

/* SMOOTH_PGD's iterations (smooth.c): x_adv holds the start on entry. */
dat_status dat_attack_smooth_iterate(dat_attack *a, dat_model *m, const dat_attack_batch *b,
                                     float *x_adv);

/* TRADES maximizes the divergence from the clean prediction: keeps its logits
 * in a->clean_logits (other kinds: nothing to do). */
dat_status dat_attack_prepare_target(dat_attack *a, dat_model *m, const dat_attack_batch *b);

/* Validates model, x, y (and an output of x's shape) for an attack call, and
 * fills the batch. y may be NULL only for TRADES. */
dat_status dat_attack_check(const char *func, dat_attack *a, dat_model *m, const dat_tensor *x,
                            const dat_tensor *y, const dat_tensor *out, dat_attack_batch *b);

#endif
