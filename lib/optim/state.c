/* Optimizer state as bytes: a small header, the steps each segment sat out
 * (version 2), then the moments (copied from and to the backend's memory).
 * Version 1 (libdat 0.7 and before: no segment counts) still loads, as if no
 * segment had been frozen. */
#include <math.h>
#include <string.h>

#include "../core/error.h"
#include "optim.h"

static const char magic_v1[8] = {'D', 'A', 'T', 'O', 'P', 'T', '1', '\0'};
static const char magic_v2[8] = {'D', 'A', 'T', 'O', 'P', 'T', '2', '\0'};

typedef struct state_header {
    char magic[8];
    int32_t kind, n_moments;
    int64_t total, step;
} state_header;

/* Version 2 follows the header with this, then n_segs int64 counts. */
typedef struct state_segments {
    int32_t n_segs, reserved;
} state_segments;

static int moments(const dat_optim *o)
{
    return o->v ? 2 : 1;
}

static size_t moments_bytes(const dat_optim *o)
{
    return (size_t)moments(o) * (size_t)o->total * sizeof(float);
}

/* Bytes between the header and the moments. */
static size_t segments_bytes(const dat_optim *o)
{
    return sizeof(state_segments) + (size_t)o->n_segs * sizeof(int64_t);
}

dat_status dat_optim_state_size(const dat_optim *optim, size_t *bytes)
{
    DAT_CHECK_NOT_NULL(optim);
    DAT_CHECK_NOT_NULL(bytes);
    *bytes = sizeof(state_header) + segments_bytes(optim) + moments_bytes(optim);
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
    memcpy(h.magic, magic_v2, sizeof magic_v2);
    h.kind = optim->o.kind;
    h.n_moments = moments(optim);
    h.total = optim->total;
    h.step = optim->step;
    unsigned char *p = buf;
    memcpy(p, &h, sizeof h);
    p += sizeof h;
    state_segments sg = {optim->n_segs, 0};
    memcpy(p, &sg, sizeof sg);
    p += sizeof sg;
    for (int32_t k = 0; k < optim->n_segs; ++k, p += sizeof(int64_t)) {
        int64_t skipped = dat_optim_seg_skipped(optim, &optim->segs[k]);
        memcpy(p, &skipped, sizeof skipped);
    }
    size_t len = (size_t)optim->total * sizeof(float);
    dat_ctx *ctx = optim->ctx;
    DAT_TRY(ctx->be->copy_to_host(ctx, p, optim->m, len));
    if (optim->v)
        DAT_TRY(ctx->be->copy_to_host(ctx, p + len, optim->v, len));
    return DAT_OK;
}

/* The segment counts of a version-2 state at p (after the header), checked. */
static dat_status check_segments(const dat_optim *optim, const state_header *h,
                                 const unsigned char *p)
{
    state_segments sg;
    memcpy(&sg, p, sizeof sg);
    if (sg.n_segs != optim->n_segs)
        return dat_error(DAT_ERR_FORMAT, "dat_optim_state_load", "the state has %d segments, "
                         "this optimizer %d", (int)sg.n_segs, (int)optim->n_segs);
    p += sizeof sg;
    for (int32_t k = 0; k < sg.n_segs; ++k) {
        int64_t skipped;
        memcpy(&skipped, p + (size_t)k * sizeof skipped, sizeof skipped);
        if (skipped < 0 || skipped > h->step)
            return dat_error(DAT_ERR_FORMAT, "dat_optim_state_load", "segment %d sat out %lld "
                             "of %lld steps", (int)k, (long long)skipped, (long long)h->step);
    }
    return DAT_OK;
}

/* The moments at p: finite, and Adam's second moments not negative (a state
 * that breaks this came from no optimizer, and steps from it write NaN). */
static dat_status check_moments(const dat_optim *optim, const unsigned char *p)
{
    size_t n = (size_t)optim->total;
    for (size_t i = 0; i < (optim->v ? 2 * n : n); ++i) {
        float x;
        memcpy(&x, p + i * sizeof x, sizeof x);
        if (!isfinite(x) || (i >= n && x < 0.0f))
            return dat_error(DAT_ERR_FORMAT, "dat_optim_state_load", "%s moment %zu is %g",
                             i < n ? "first" : "second", i % n, (double)x);
    }
    return DAT_OK;
}

dat_status dat_optim_state_check(const dat_optim *optim, const void *buf, size_t size)
{
    state_header h;
    if (size < sizeof h)
        return dat_error(DAT_ERR_FORMAT, "dat_optim_state_load", "%zu bytes: too short for a "
                         "state", size);
    memcpy(&h, buf, sizeof h);
    int v2 = memcmp(h.magic, magic_v2, sizeof magic_v2) == 0;
    if (!v2 && memcmp(h.magic, magic_v1, sizeof magic_v1) != 0)
        return dat_error(DAT_ERR_FORMAT, "dat_optim_state_load",
                         "not a libdat optimizer state (bad magic)");
    if (h.kind != (int32_t)optim->o.kind || h.n_moments != moments(optim) ||
        h.total != optim->total || h.step < 0 || h.step > DAT_OPTIM_MAX_STEP)
        return dat_error(DAT_ERR_FORMAT, "dat_optim_state_load",
                         "the state is of kind %d over %lld values, this optimizer is kind %d "
                         "over %lld", (int)h.kind, (long long)h.total, (int)optim->o.kind,
                         (long long)optim->total);
    size_t need = sizeof h + (v2 ? segments_bytes(optim) : 0) + moments_bytes(optim);
    if (size != need)
        return dat_error(DAT_ERR_FORMAT, "dat_optim_state_load", "%zu bytes, the state needs "
                         "%zu", size, need);
    const unsigned char *p = (const unsigned char *)buf + sizeof h;
    if (v2)
        DAT_TRY(check_segments(optim, &h, p));
    return check_moments(optim, p + (v2 ? segments_bytes(optim) : 0));
}

dat_status dat_optim_state_load(dat_optim *optim, const void *buf, size_t size)
{
    DAT_CHECK_NOT_NULL(optim);
    DAT_CHECK_NOT_NULL(buf);
    DAT_TRY(dat_optim_state_check(optim, buf, size));
    state_header h;
    memcpy(&h, buf, sizeof h);
    const unsigned char *p = (const unsigned char *)buf + sizeof h;
    int v2 = memcmp(h.magic, magic_v2, sizeof magic_v2) == 0;
    size_t len = (size_t)optim->total * sizeof(float);
    const unsigned char *mom = v2 ? p + segments_bytes(optim) : p;
    dat_ctx *ctx = optim->ctx;
    DAT_TRY(ctx->be->copy_from_host(ctx, optim->m, mom, len));
    if (optim->v)
        DAT_TRY(ctx->be->copy_from_host(ctx, optim->v, mom + len, len));
    optim->step = h.step;
    p += sizeof(state_segments);
    for (int32_t k = 0; k < optim->n_segs; ++k) {
        dat_optim_seg *s = &optim->segs[k];
        s->skipped = 0;
        if (v2)
            memcpy(&s->skipped, p + (size_t)k * sizeof(int64_t), sizeof(int64_t));
        s->frozen_at = h.step; /* a frozen segment sits out from here on */
    }
    return DAT_OK;
}
