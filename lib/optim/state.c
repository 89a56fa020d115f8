/* Optimizer state as bytes: a small header, then the moments (copied from and to
 * the backend's memory). */
#include <string.h>

#include "../core/error.h"
#include "optim.h"

static const char magic[8] = {'D', 'A', 'T', 'O', 'P', 'T', '1', '\0'};

typedef struct state_header {
    char magic[8];
    int32_t kind, n_moments;
    int64_t total, step;
} state_header;

static int moments(const dat_optim *o)
{
    return o->v ? 2 : 1;
}

dat_status dat_optim_state_size(const dat_optim *optim, size_t *bytes)
{
    DAT_CHECK_NOT_NULL(optim);
    DAT_CHECK_NOT_NULL(bytes);
    *bytes = sizeof(state_header) + (size_t)moments(optim) * (size_t)optim->total * sizeof(float);
    return DAT_OK;
}

dat_status dat_optim_state_save(const dat_optim *optim, void *buf, size_t size)
{
    DAT_CHECK_NOT_NULL(optim);
    DAT_CHECK_NOT_NULL(buf);
    size_t need;
    dat_optim_state_size(optim, &need);
    if (size < need)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "size = %zu is short: the state has %zu bytes", size, need);
    state_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, magic, sizeof magic);
    h.kind = optim->o.kind;
    h.n_moments = moments(optim);
    h.total = optim->total;
    h.step = optim->step;
    unsigned char *p = buf;
    memcpy(p, &h, sizeof h);
    size_t len = (size_t)optim->total * sizeof(float);
    dat_ctx *ctx = optim->ctx;
    DAT_TRY(ctx->be->copy_to_host(ctx, p + sizeof h, optim->m, len));
    if (optim->v)
        DAT_TRY(ctx->be->copy_to_host(ctx, p + sizeof h + len, optim->v, len));
    return DAT_OK;
}

dat_status dat_optim_state_check(const dat_optim *optim, const void *buf, size_t size)
{
    size_t need;
    dat_optim_state_size(optim, &need);
    state_header h;
    if (size < sizeof h)
        return dat_error(DAT_ERR_FORMAT, "dat_optim_state_load", "%zu bytes: too short for a "
                         "state", size);
    memcpy(&h, buf, sizeof h);
    if (memcmp(h.magic, magic, sizeof magic) != 0)
        return dat_error(DAT_ERR_FORMAT, "dat_optim_state_load",
                         "not a libdat optimizer state (bad magic)");
    if (h.kind != (int32_t)optim->o.kind || h.n_moments != moments(optim) ||
        h.total != optim->total || h.step < 0)
        return dat_error(DAT_ERR_FORMAT, "dat_optim_state_load",
                         "the state is of kind %d over %lld values, this optimizer is kind %d "
                         "over %lld", (int)h.kind, (long long)h.total, (int)optim->o.kind,
                         (long long)optim->total);
    if (size != need)
        return dat_error(DAT_ERR_FORMAT, "dat_optim_state_load", "%zu bytes, the state needs "
                         "%zu", size, need);
    return DAT_OK;
}

dat_status dat_optim_state_load(dat_optim *optim, const void *buf, size_t size)
{
    DAT_CHECK_NOT_NULL(optim);
    DAT_CHECK_NOT_NULL(buf);
    DAT_TRY(dat_optim_state_check(optim, buf, size));
    state_header h;
    memcpy(&h, buf, sizeof h);
    const unsigned char *p = buf;
    size_t len = (size_t)optim->total * sizeof(float);
    dat_ctx *ctx = optim->ctx;
    DAT_TRY(ctx->be->copy_from_host(ctx, optim->m, p + sizeof h, len));
    if (optim->v)
        DAT_TRY(ctx->be->copy_from_host(ctx, optim->v, p + sizeof h + len, len));
    optim->step = h.step;
    return DAT_OK;
}
