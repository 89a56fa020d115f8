/* Training checkpoints: model state_dict + optimizer state + run position. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../model/model.h"
#include "../optim/optim.h"
#include "libdat/dat_checkpoint.h"
#include "safetensors.h"

typedef struct extra {
    const uint8_t *optim_state;
    int64_t optim_bytes;
    int64_t position[3];
    const char *config;
} extra;

static void add_extra(dat_st_writer *w, void *user)
{
    extra *e = user;
    if (e->optim_state)
        dat_st_writer_add(w, "optim.state", DAT_ST_U8, 1, &e->optim_bytes, e->optim_state);
    int64_t three = 3;
    dat_st_writer_add(w, "train.position", DAT_ST_I64, 1, &three, e->position);
    if (e->config)
        dat_st_writer_meta(w, "config", e->config);
}

dat_status dat_checkpoint_save(const char *path, dat_model *model, dat_optim *optim,
                               const dat_checkpoint_info *info, const char *config)
{
    DAT_CHECK_NOT_NULL(path);
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(info);
    DAT_CHECK_OPTIONS_SIZE(info, dat_checkpoint_info, sizeof(dat_checkpoint_info));
    if (info->epoch < 0 || info->step < 0)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "info->epoch = %lld and info->step = "
                         "%lld must be >= 0", (long long)info->epoch, (long long)info->step);
    extra e = {.position = {info->epoch, info->step, (int64_t)info->attack_step},
               .config = config};
    uint8_t *state = NULL;
    if (optim) {
        size_t n;
        DAT_TRY(dat_optim_state_size(optim, &n));
        state = malloc(n ? n : 1);
        if (!state)
            return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "optimizer state");
        dat_status s = dat_optim_state_save(optim, state, n);
        if (s != DAT_OK) {
            free(state);
            return s;
        }
        e.optim_state = state;
        e.optim_bytes = (int64_t)n;
    }
    dat_status s = dat_model_write(model, path, add_extra, &e);
    free(state);
    return s == DAT_OK ? DAT_OK : dat_error_context(s, __func__);
}

dat_status dat_checkpoint_load(const char *path, dat_model *model, dat_optim *optim,
                               dat_checkpoint_info *info, char *config, size_t config_size)
{
    DAT_CHECK_NOT_NULL(path);
    DAT_CHECK_NOT_NULL(model);
    DAT_CHECK_NOT_NULL(info);
    DAT_CHECK_OPTIONS_SIZE(info, dat_checkpoint_info, sizeof(dat_checkpoint_info));
    dat_st_file f;
    DAT_TRY(dat_st_read(path, &f));
    const dat_st_entry *pos = dat_st_find(&f, "train.position");
    const dat_st_entry *st = dat_st_find(&f, "optim.state");
    dat_status s = DAT_OK;
    int64_t p[3] = {0}; /* epoch, step, attack step */
    int has_pos = pos && pos->dtype == DAT_ST_I64 && pos->ndim == 1 && pos->shape[0] == 3;
    if (has_pos)
        memcpy(p, pos->data, sizeof p);
    if (!has_pos)
        s = dat_error(DAT_ERR_FORMAT, __func__, "%s: no train.position: not a training checkpoint",
                      path);
    else if (p[0] < 0 || p[1] < 0)
        s = dat_error(DAT_ERR_FORMAT, __func__, "%s: train.position has epoch %lld and step %lld; "
                      "neither can be negative", path, (long long)p[0], (long long)p[1]);
    else if (optim && (!st || st->dtype != DAT_ST_U8 || st->ndim != 1))
        s = dat_error(DAT_ERR_FORMAT, __func__, "%s: no optimizer state (optim.state)", path);
    else if (optim && dat_optim_state_check(optim, st->data, (size_t)st->shape[0]) != DAT_OK) {
        /* checked before the model changes: all or nothing */
        char why[256];
        snprintf(why, sizeof why, "%s", dat_last_error());
        s = dat_error(DAT_ERR_FORMAT, __func__, "%s: a checkpoint of another model or "
                      "optimizer: %s", path, why);
    }
    if (s == DAT_OK)
        s = dat_model_load(model, path, NULL);
    if (s == DAT_OK && optim)
        s = dat_optim_state_load(optim, st->data, (size_t)st->shape[0]);
    if (s == DAT_OK) {
        info->epoch = p[0];
        info->step = p[1];
        info->attack_step = (uint64_t)p[2];
        const char *c = dat_st_meta(&f, "config");
        if (config && config_size) {
            snprintf(config, config_size, "%s", c ? c : "");
        }
    }
    dat_st_free(&f);
    return s;
}
