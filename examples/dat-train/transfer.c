/*
 * Transfer learning (the paper's Fig. 4): a model pretrained on one task starts
 * the training of another. Every tensor but the classifier comes from the
 * checkpoint; a classifier of another number of classes is re-initialized.
 * The first layers can be frozen, and the classifier can have its own
 * learning rate.
 */
#include <stdio.h>
#include <string.h>

#include "transfer.h"

/* Two lines for rank 0: what came from the checkpoint, what was initialized. */
typedef struct load_report {
    char loaded[16384], kept[4096];
    int n_loaded, n_kept;
} load_report;

static void note_tensor(const char *name, int32_t loaded, void *user)
{
    load_report *lr = user;
    char *line = loaded ? lr->loaded : lr->kept;
    size_t size = loaded ? sizeof lr->loaded : sizeof lr->kept, used = strlen(line);
    if (used + strlen(name) + 2 < size)
        snprintf(line + used, size - used, " %s", name);
    ++*(loaded ? &lr->n_loaded : &lr->n_kept);
}

static int load_pretrained(run *r)
{
    static load_report rep; /* large; dat-train runs one model */
    memset(&rep, 0, sizeof rep);
    dat_model_load_options lo;
    dat_model_load_options_init(&lo);
    lo.reinit_head = r->o.new_head ? DAT_REINIT_HEAD_ALWAYS : DAT_REINIT_HEAD_IF_MISMATCHED;
    lo.on_tensor = note_tensor;
    lo.user = &rep;
    dat_status s = dat_model_load(r->model, r->o.init_from, &lo);
    if (s != DAT_OK)
        return fail(r, "--init-from", s);
    if (r->rank == 0) {
        fprintf(stderr, "dat-train: --init-from %s: %d tensors loaded:%s\n", r->o.init_from,
                rep.n_loaded, rep.loaded);
        if (rep.n_kept)
            fprintf(stderr, "dat-train: --init-from: %d tensors re-initialized:%s\n", rep.n_kept,
                    rep.kept);
    }
    return 0;
}

/* Learning-rate scale of layers [first, last) of the model. */
static int scale_layers(run *r, int32_t first, int32_t last, float scale)
{
    if (first >= last)
        return 0;
    int32_t s0, n0, s1, n1;
    TRY_RUN("--freeze", dat_model_layer_segments(r->model, first, &s0, &n0));
    TRY_RUN("--freeze", dat_model_layer_segments(r->model, last - 1, &s1, &n1));
    TRY_RUN("--freeze", dat_optim_set_lr_scale(r->optim, s0, s1 + n1 - s0, scale));
    return 0;
}

int transfer_setup(run *r, int load)
{
    const train_options *o = &r->o;
    if (load && o->init_from && load_pretrained(r))
        return 1;
    int32_t layers;
    TRY_RUN("model", dat_model_num_layers(r->model, &layers));
    if (o->freeze > layers) {
        fprintf(stderr, "dat-train: --freeze %d: %s has only %d layers with parameters\n",
                (int)o->freeze, o->model, (int)layers);
        return 1;
    }
    if (o->freeze > 0 && scale_layers(r, 0, layers - o->freeze, 0.0f))
        return 1;
    if (o->head_lr != o->lr && o->lr > 0)
        return scale_layers(r, layers - 1, layers, o->head_lr / o->lr);
    return 0;
}
