/* Recording a step as a graph (dat_capture.h) as the objects see it: whether
 * their context is recording, the hooks that keep their host state right
 * across replays, refusals, and the fault word of the device-side checks. */
#ifndef LIBDAT_CORE_CAPTURE_H
#define LIBDAT_CORE_CAPTURE_H

#include "ctx.h"
#include "libdat/dat_capture.h"

/* Bits of the fault word (ctx->fault): a check a replayed step failed. */
enum {
    DAT_FAULT_INPUT = 1u,    /* a model input held NaN or Inf */
    DAT_FAULT_RANGE = 2u,    /* an attack's input was outside its range */
    DAT_FAULT_LABELS = 4u,   /* a label was outside [0, classes) */
    DAT_FAULT_GRADIENT = 8u, /* an optimizer skipped a step: the gradient was not finite */
};

/*
 * What an object with host state registers while its context records: a
 * recorded call runs its host code once (advancing, say, the optimizer's
 * step) but nothing on the device. advance(obj, by) moves the host state by
 * `by` steps: -1 when the recording ends, +1 at each launch. sync(obj), when
 * not NULL, queues before each launch what makes the device counters the
 * graph reads equal the host state (ops done op by op since move only the
 * host's).
 */
typedef struct dat_capture_hook {
    void *obj;
    void (*advance)(void *obj, int64_t by, int64_t arg);
    dat_status (*sync)(void *obj);
    int64_t arg;
} dat_capture_hook;

static inline int dat_capturing(const dat_ctx *ctx)
{
    return ctx->capture != NULL;
}

/* Registers a hook with the recording (a no-op when not recording). */
dat_status dat_capture_hook_add(dat_ctx *ctx, void *obj,
                                void (*advance)(void *, int64_t, int64_t),
                                dat_status (*sync)(void *), int64_t arg);

/* Fails a call that cannot be recorded: DAT_ERR_STATE "func: what cannot be
 * recorded in a step graph", remembered for dat_capture_end(). */
dat_status dat_capture_refuse(dat_ctx *ctx, const char *func, const char *what);

/* The fault word (a uint32 in backend memory, allocated by dat_capture_begin). */
uint32_t *dat_fault_word(const dat_ctx *ctx);

/* After the device has finished: the faults found since the last call, as a
 * status with a message (DAT_OK if none), and the word cleared. */
dat_status dat_take_faults(dat_ctx *ctx);

/* Frees what the context holds for recordings (dat_ctx_destroy). */
void dat_capture_fini(dat_ctx *ctx);

#endif
