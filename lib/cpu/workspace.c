/* The CPU backend's per-context scratch: one buffer that grows to the largest
 * request and is then reused, so a training step allocates nothing once the
 * shapes are known. */
#include <stdlib.h>

#include "../core/error.h"
#include "cpu.h"

typedef struct cpu_state {
    float *ws;
    size_t ws_floats;
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
    free(st->ws);
    free(st);
    ctx->backend_state = NULL;
}

dat_status dat_cpu_workspace(dat_ctx *ctx, size_t floats, float **ws)
{
    cpu_state *st = ctx->backend_state;
    if (floats > st->ws_floats) {
        size_t bytes = ((floats * sizeof(float)) + 63) & ~(size_t)63;
        float *p = aligned_alloc(64, bytes);
        if (!p)
            return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_cpu_workspace",
                             "cannot grow the workspace to %zu bytes", bytes);
        free(st->ws);
        st->ws = p;
        st->ws_floats = floats;
    }
    *ws = st->ws;
    return DAT_OK;
}
