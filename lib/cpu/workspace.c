/* The CPU backend's per-context scratch: one buffer that grows to the largest
 * request and is then reused, so a training step allocates nothing once the
 * shapes are known. */
#include <stdlib.h>

#include "../core/error.h"
#include "cpu.h"

typedef struct scratch {
    float *p;
    size_t floats;
} scratch;

typedef struct cpu_state {
    scratch ws;  /* the ops' */
    scratch fmt; /* the float32 copies of formats.c, around an op using ws */
} cpu_state;

dat_status dat_cpu_state_init(dat_ctx *ctx)
{
    cpu_state *st = calloc(1, sizeof *st);
    if (!st)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_ctx_create", "CPU backend state");
    ctx->backend_state = st;
    return DAT_OK;
}

void dat_cpu_state_fini(dat_ctx *ctx)
{
    cpu_state *st = ctx->backend_state;
    if (!st)
        return;
    free(st->ws.p);
    free(st->fmt.p);
    free(st);
    ctx->backend_state = NULL;
}

static dat_status grow(scratch *sc, size_t floats, float **out)
{
    if (floats > sc->floats) {
        size_t bytes = ((floats * sizeof(float)) + 63) & ~(size_t)63;
        float *p = aligned_alloc(64, bytes);
        if (!p)
            return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_cpu_workspace",
                             "cannot grow the workspace to %zu bytes", bytes);
        free(sc->p);
        sc->p = p;
        sc->floats = floats;
    }
    *out = sc->p;
    return DAT_OK;
}

dat_status dat_cpu_workspace(dat_ctx *ctx, size_t floats, float **ws)
{
    return grow(&((cpu_state *)ctx->backend_state)->ws, floats, ws);
}

dat_status dat_cpu_fmt_workspace(dat_ctx *ctx, size_t floats, float **ws)
{
    return grow(&((cpu_state *)ctx->backend_state)->fmt, floats, ws);
}
