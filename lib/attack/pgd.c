/* One restart of PGD, FGSM with random start, and TRADES: a random start,
 * then k steps of the input gradient through the fused step-and-project op
 * (steps 2 .. k replayed as a graph where the context asks for it). */
#include <math.h>

#include "../core/error.h"
#include "../core/philox.h"
#include "attack.h"

/* Positions of the Philox stream used by restart r: disjoint per restart. */
static uint64_t start_offset(const dat_attack_batch *b, int32_t r)
{
    return (uint64_t)r * 2u * ((uint64_t)b->n * b->d + 1u);
}

static dat_status project(dat_attack *a, const dat_attack_batch *b, float *x_adv)
{
    const dat_attack_options *o = &a->o;
    if (o->norm == DAT_NORM_L2)
        return DAT_OP(a->ctx, attack_l2_step, b->n, b->d, x_adv, NULL, b->x, 0.0f, o->eps, o->lo,
                      o->hi);
    return DAT_OP(a->ctx, attack_linf_step, (size_t)b->n * b->d, x_adv, NULL, b->x, 0.0f, o->eps,
                  o->lo, o->hi);
}

/* l2 start: a Gaussian direction scaled to radius eps * u^(1/d), u uniform,
 * which is uniform in the ball. The radii are drawn on the host from the
 * same stream, so every backend gets the same ones. */
static dat_status l2_start(dat_attack *a, const dat_attack_batch *b, uint64_t off, float *x_adv)
{
    dat_ctx *ctx = a->ctx;
    if (dat_capturing(ctx)) /* the radii are drawn on the host */
        return dat_capture_refuse(ctx, "dat_attack_perturb", "an l2 attack's random start");
    uint64_t stream = dat_attack_stream(a);
    DAT_TRY(ctx->be->rng_normal(ctx, x_adv, (size_t)b->n * b->d, 0.0f, 1.0f, a->o.seed, stream,
                                NULL, off));
    uint64_t radius_off = off + (uint64_t)b->n * b->d;
    for (int32_t i = 0; i < b->n; ++i) {
        float u = dat_u32_to_unit(dat_philox_word(a->o.seed, stream, radius_off + (uint64_t)i));
        a->host_w[i] = (float)(a->o.eps * pow((double)u, 1.0 / (double)b->d));
    }
    return DAT_OP(ctx, rows_renorm, b->n, b->d, x_adv, a->host_w);
}

static dat_status random_start(dat_attack *a, const dat_attack_batch *b, int32_t r, float *x_adv)
{
    dat_ctx *ctx = a->ctx;
    const dat_attack_options *o = &a->o;
    size_t nd = (size_t)b->n * b->d;
    const uint64_t *low;
    uint64_t off = start_offset(b, r), stream = dat_attack_rng_stream(a, &low);
    if (o->kind == DAT_ATTACK_TRADES) /* Zhang et al.: x + 0.001 N(0, I) */
        DAT_TRY(ctx->be->rng_normal(ctx, x_adv, nd, 0.0f, 0.001f, o->seed, stream, low, off));
    else if (o->norm == DAT_NORM_LINF)
        DAT_TRY(ctx->be->rng_uniform(ctx, x_adv, nd, -o->eps, o->eps, o->seed, stream, low, off));
    else
        DAT_TRY(l2_start(a, b, off, x_adv));
    DAT_TRY(DAT_OP(ctx, add, DAT_FMT_F32, nd, x_adv, b->x, x_adv));
    return project(a, b, x_adv);
}

static dat_status project_step(dat_attack *a, const dat_attack_batch *b, float *x_adv)
{
    const dat_attack_options *o = &a->o;
    if (o->norm == DAT_NORM_L2)
        return DAT_OP(a->ctx, attack_l2_step, b->n, b->d, x_adv, a->g, b->x, o->alpha, o->eps,
                      o->lo, o->hi);
    return DAT_OP(a->ctx, attack_linf_step, (size_t)b->n * b->d, x_adv, a->g, b->x, o->alpha,
                  o->eps, o->lo, o->hi);
}

dat_status dat_attack_step(dat_attack *a, dat_model *m, const dat_attack_batch *b, float *x_adv,
                           dat_objective obj)
{
    DAT_TRY(dat_model_objective(m, x_adv, b->n, b->y, a->clean_logits, obj, 1.0f, a->g));
    return project_step(a, b, x_adv);
}

dat_status dat_attack_run_once(dat_attack *a, dat_model *m, const dat_attack_batch *b,
                               int32_t r, float *x_adv)
{
    dat_ctx *ctx = a->ctx;
    if (a->o.random_start || a->o.kind == DAT_ATTACK_TRADES)
        DAT_TRY(random_start(a, b, r, x_adv));
    else
        DAT_TRY(ctx->be->copy(ctx, x_adv, b->x, (size_t)b->n * b->d * sizeof(float)));
    if (a->o.kind == DAT_ATTACK_SMOOTH_PGD)
        return dat_attack_smooth_iterate(a, m, b, x_adv);
    dat_objective obj = a->o.kind == DAT_ATTACK_TRADES ? DAT_OBJECTIVE_KL : DAT_OBJECTIVE_CE;
    for (int32_t k = 0; k < a->o.steps; ++k) {
        DAT_TRY(dat_attack_step(a, m, b, x_adv, obj));
        if (k == 0 && a->o.steps > 1) { /* the first step has set up shapes and scratch */
            int ran = 0;
            DAT_TRY(dat_attack_graph_steps(a, m, b, x_adv, obj, a->o.steps - 1, &ran));
            if (ran)
                break;
        }
    }
    return DAT_OK;
}
