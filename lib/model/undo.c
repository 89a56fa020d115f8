/* Undo for a pass that fails part-way. A pass changes the model as it goes (batch
 * norms' running statistics and counters, the gradient buffer), and the backends
 * grow their workspace inside the ops, the first time a shape needs more: out of
 * memory there came after the earlier layers had updated their statistics or added
 * their gradients, and a retry counted them twice. So the first run of each kind of
 * pass copies that state aside and puts it back if the pass fails; once a kind has
 * run, its workspace is in place (it only grows) and it runs without copies. */
#include <stdlib.h>
#include <string.h>

#include "../core/capture.h"
#include "../core/ctx.h"
#include "../core/error.h"
#include "model.h"

/* splitmix64's finalizer: distinct kinds collide with probability 2^-64. */
static uint64_t mix(uint64_t h)
{
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

uint64_t dat_model_pass_kind(int entry, int32_t n, uint64_t flags, const dat_model *m)
{
    uint64_t h = mix((uint64_t)(uint32_t)entry << 1 | (m->mode == DAT_MODE_TRAIN));
    return mix(mix(h ^ (uint32_t)n) ^ flags);
}

static int has_run(const dat_model *m, uint64_t kind)
{
    for (int i = 0; i < DAT_MODEL_KINDS_RUN; ++i)
        if (m->kinds_run[i] == kind + 1)
            return 1;
    return 0;
}

static void free_undo(dat_model *m, dat_model_undo *u)
{
    m->ctx->be->free(m->ctx, u->buffers);
    m->ctx->be->free(m->ctx, u->grads);
    free(u->tracked);
    u->buffers = u->grads = NULL;
    u->tracked = NULL;
}

dat_status dat_model_undo_begin(dat_model *m, uint64_t kind, int grads, dat_model_undo *u)
{
    dat_ctx *ctx = m->ctx;
    *u = (dat_model_undo){.kind = kind};
    if (dat_capturing(ctx) || has_run(m, kind))
        return DAT_OK;
    u->armed = 1;
    dat_status s = DAT_OK;
    if (m->n_bn && m->mode == DAT_MODE_TRAIN) {
        u->tracked = malloc((size_t)m->n_bn * sizeof *u->tracked);
        if (!u->tracked)
            s = dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_model_undo", "BN counters' copy");
        else
            memcpy(u->tracked, m->num_batches_tracked, (size_t)m->n_bn * sizeof *u->tracked);
        if (s == DAT_OK)
            s = ctx->be->alloc(ctx, m->buffers->nbytes, (void **)&u->buffers);
        if (s == DAT_OK)
            s = ctx->be->copy(ctx, u->buffers, m->buffers->data, m->buffers->nbytes);
    }
    if (s == DAT_OK && grads)
        s = ctx->be->alloc(ctx, m->grads->nbytes, (void **)&u->grads);
    if (s == DAT_OK && grads)
        s = ctx->be->copy(ctx, u->grads, m->grads->data, m->grads->nbytes);
    if (s != DAT_OK)
        free_undo(m, u);
    return s;
}

dat_status dat_model_undo_end(dat_model *m, dat_model_undo *u, dat_status s)
{
    dat_ctx *ctx = m->ctx;
    if (!u->armed)
        return s;
    if (s == DAT_OK) {
        m->kinds_run[m->next_kind_run] = u->kind + 1;
        m->next_kind_run = (m->next_kind_run + 1) % DAT_MODEL_KINDS_RUN;
        free_undo(m, u);
        return s;
    }
    /* The copies back need no memory; where the device itself has failed, the
     * pass's status says so and is the one to return. */
    if (u->tracked)
        memcpy(m->num_batches_tracked, u->tracked, (size_t)m->n_bn * sizeof *u->tracked);
    if (u->buffers)
        (void)ctx->be->copy(ctx, m->buffers->data, u->buffers, m->buffers->nbytes);
    if (u->grads)
        (void)ctx->be->copy(ctx, m->grads->data, u->grads, m->grads->nbytes);
    free_undo(m, u);
    return s;
}
