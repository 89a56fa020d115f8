/* Robust accuracy under an attack: a point counts only if the clean input and
 * the result of every restart are classified correctly. */
#include <stdlib.h>

#include "../attack/attack.h"
#include "../core/error.h"

/* Predictions of the model for n inputs, into a->host_pred (the model's logit
 * gradient buffer, idle here, holds them on the device). */
static dat_status predict(dat_attack *a, dat_model *m, const float *x, int32_t n)
{
    DAT_TRY(dat_graph_forward(m, x, n, m->mode == DAT_MODE_TRAIN));
    DAT_TRY(DAT_OP(a->ctx, argmax, n, m->classes, dat_model_logits(m), (int32_t *)m->dz));
    return a->ctx->be->copy_to_host(a->ctx, a->host_pred, m->dz, (size_t)n * sizeof(int32_t));
}

/* host_best[i] = 1 while point i is still classified correctly. */
static void mark(dat_attack *a, const dat_model *m, int32_t n)
{
    for (int32_t i = 0; i < n; ++i)
        if (a->host_pred[i] != m->host_labels[i])
            a->host_best[i] = 0;
}

static dat_status evaluate(dat_attack *a, dat_model *m, const dat_attack_batch *b,
                           int32_t *clean_correct)
{
    for (int32_t i = 0; i < b->n; ++i)
        a->host_best[i] = 1;
    DAT_TRY(predict(a, m, b->x, b->n));
    mark(a, m, b->n);
    int32_t clean = 0;
    for (int32_t i = 0; i < b->n; ++i)
        clean += a->host_best[i] != 0;
    *clean_correct = clean;
    DAT_TRY(dat_attack_prepare_target(a, m, b));
    for (int32_t r = 0; r < a->o.restarts; ++r) {
        DAT_TRY(dat_attack_run_once(a, m, b, r, a->work));
        DAT_TRY(predict(a, m, a->work, b->n));
        mark(a, m, b->n);
    }
    return DAT_OK;
}

/* The mask as bytes, made before anything is written, so that running out of
 * memory here changes nothing the caller gave. */
static dat_status mask_bytes(const float *robust, int32_t n, unsigned char **out)
{
    unsigned char *bytes = malloc((size_t)n);
    if (!bytes)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_eval_robust_accuracy", "mask");
    for (int32_t i = 0; i < n; ++i)
        bytes[i] = robust[i] != 0;
    *out = bytes;
    return DAT_OK;
}

dat_status dat_eval_robust_accuracy(dat_attack *attack, dat_model *model, const dat_tensor *x,
                                    const dat_tensor *y, int32_t *clean_correct,
                                    int32_t *robust_correct, dat_tensor *robust_mask)
{
    DAT_CHECK_NOT_NULL(attack);
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(x);
    DAT_CHECK_NOT_NULL(y);
    dat_attack_batch b;
    DAT_TRY(dat_attack_check(__func__, attack, model, x, y, NULL, &b));
    if (robust_mask && (robust_mask->ctx != attack->ctx || robust_mask->dtype != DAT_UINT8 ||
                        robust_mask->numel != b.n))
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "robust_mask must be uint8 [%d]",
                         (int)b.n);
    dat_model_mode saved = model->mode;
    model->mode = attack->o.mode;
    int32_t clean = 0;
    dat_graph_pin_weights(model, 1);
    dat_model_undo u;
    dat_status s = dat_model_undo_begin(
        model, dat_attack_pass_kind(attack, model, DAT_PASS_ROBUST, b.n), 0, &u);
    if (s == DAT_OK)
        s = dat_model_undo_end(model, &u, evaluate(attack, model, &b, &clean));
    dat_graph_pin_weights(model, 0);
    model->mode = saved;
    attack->step++;
    DAT_TRY(dat_attack_recorded(attack)); /* refused in a recording: the step comes back */
    DAT_TRY(s);
    unsigned char *bytes = NULL;
    if (robust_mask) {
        DAT_TRY(mask_bytes(attack->host_best, b.n, &bytes));
        s = attack->ctx->be->copy_from_host(attack->ctx, robust_mask->data, bytes, (size_t)b.n);
        free(bytes);
        DAT_TRY(s);
    }
    int32_t robust = 0;
    for (int32_t i = 0; i < b.n; ++i)
        robust += attack->host_best[i] != 0;
    if (clean_correct)
        *clean_correct = clean;
    if (robust_correct)
        *robust_correct = robust;
    return DAT_OK;
}
