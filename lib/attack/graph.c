/*
 * An attack's k-step loop as a graph (dat_ctx_options::cuda_graphs): after the
 * first step has run op by op (it sizes the workspace, picks the convolution
 * algorithms, grows the scratch), one step is captured and replayed k - 1
 * times, so the host issues one launch per step instead of hundreds. The
 * capture is kept for the next call and taken again when anything it bakes in
 * changes (dat_attack_graph_key) or the backend's workspace has moved.
 */
#include <string.h>

#include "../core/backend.h"
#include "../core/ctx.h"
#include "../core/error.h"
#include "attack.h"

static int graphs_wanted(const dat_attack *a)
{
    const dat_ctx *ctx = a->ctx;
    /* The op profile times each op on the host: a replay has none to time. */
    /* Inside a step's recording the steps are recorded with it. */
    return ctx->opts.cuda_graphs && ctx->be->capture_begin && !ctx->prof && !a->graph_off &&
           !dat_capturing(ctx);
}

void dat_attack_graph_free(dat_attack *a)
{
    if (a->graph)
        a->ctx->be->graph_destroy(a->ctx, a->graph);
    a->graph = NULL;
}

static void key_of(const dat_attack *a, const dat_model *m, const dat_attack_batch *b,
                   const float *x_adv, dat_attack_graph_key *k)
{
    memset(k, 0, sizeof *k); /* padding too: keys are compared bytewise */
    k->m = m;
    k->model_runtime = m->runtime_gen;
    k->mode = (int32_t)m->mode;
    k->n = b->n;
    k->d = b->d;
    k->x = b->x;
    k->x_adv = x_adv;
    k->g = a->g;
    k->target = a->clean_logits;
    k->y = b->y;
    memcpy(&k->o, &a->o, sizeof k->o);
}

/* Records one step. Recording runs the host side of the ops once: the batch
 * norms' host counters are taken back to what they were. */
static dat_status capture(dat_attack *a, dat_model *m, const dat_attack_batch *b, float *x_adv,
                          dat_objective obj)
{
    dat_ctx *ctx = a->ctx;
    DAT_TRY(ctx->be->capture_begin(ctx));
    dat_status s = dat_attack_step(a, m, b, x_adv, obj);
    void *g = NULL;
    dat_status e = ctx->be->capture_end(ctx, &g);
    dat_graph_count_forwards(m, -1);
    if (s != DAT_OK || e != DAT_OK)
        return s != DAT_OK ? s : e;
    a->graph = g;
    return DAT_OK;
}

dat_status dat_attack_graph_steps(dat_attack *a, dat_model *m, const dat_attack_batch *b,
                                  float *x_adv, dat_objective obj, int32_t count, int *ran)
{
    *ran = 0;
    if (!graphs_wanted(a) || count < 1)
        return DAT_OK;
    dat_ctx *ctx = a->ctx;
    dat_attack_graph_key key;
    key_of(a, m, b, x_adv, &key);
    if (a->graph && memcmp(&key, &a->graph_key, sizeof key) != 0)
        dat_attack_graph_free(a);
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (!a->graph) {
            if (capture(a, m, b, x_adv, obj) != DAT_OK) {
                dat_log(ctx, DAT_LOG_WARN,
                        "attack steps run op by op: capturing one as a graph failed (%s)",
                        dat_last_error());
                a->graph_off = 1;
                return DAT_OK;
            }
            a->graph_key = key;
        }
        dat_status s = ctx->be->graph_launch(ctx, a->graph);
        if (s == DAT_ERR_STATE) { /* the workspace moved: capture again */
            dat_attack_graph_free(a);
            continue;
        }
        DAT_TRY(s);
        for (int32_t i = 1; i < count; ++i)
            DAT_TRY(ctx->be->graph_launch(ctx, a->graph));
        dat_graph_count_forwards(m, count);
        *ran = 1;
        return DAT_OK;
    }
    return DAT_OK;
}
