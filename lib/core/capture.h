/* Recording a step as a graph (dat_capture.h) as the objects see it: whether
 * their context is recording, the counters that keep their host state right
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
    DAT_FAULT_QUANTIZE = 16u, /* a rank's quantized encode failed (NaN, Inf, overflow) */
};

/*
 * The host state a replay must advance is counters (an optimizer's step, an
 * attack's, a batch norm's num_batches_tracked, a communicator's statistics):
 * a recorded call runs its host code once, advancing its counters, but
 * nothing on the device. Each one it registers is taken back by per_step
 * when the recording ends and advanced by per_step at each launch; mirror,
 * when not NULL, is an int64 in backend memory that the device reads, set
 * from the counter before each launch (ops done op by op since move only the
 * host's counter).
 */
typedef struct dat_capture_counter_ref {
    int64_t *counter;
    int64_t per_step;
    void *mirror;
} dat_capture_counter_ref;

static inline int dat_capturing(const dat_ctx *ctx)
{
    return ctx->capture != NULL;
}

/* A buffer the library owns and grows (a model's run-time buffers, an
 * attack's scratch, a quantizer's scratch or residual) was reallocated: a
 * step graph recorded before may hold its old address, so its launches are
 * refused (DAT_ERR_STATE: record again) instead of using freed memory. */
static inline void dat_capture_buffers_moved(dat_ctx *ctx)
{
    ctx->buffer_moves++;
}

/* Registers a counter with the recording (a no-op when not recording). */
dat_status dat_capture_counter(dat_ctx *ctx, int64_t *counter, int64_t per_step, void *mirror);

/* Fails a call that cannot be recorded: DAT_ERR_STATE "func: what cannot be
 * recorded in a step graph", remembered for dat_capture_end(). */
dat_status dat_capture_refuse(dat_ctx *ctx, const char *func, const char *what);

/* The fault word (a uint32 in backend memory, allocated by dat_capture_begin). */
uint32_t *dat_fault_word(const dat_ctx *ctx);

/* After the device has finished: the faults found since the last call, as a
 * status with a message (DAT_OK if none), and the word cleared; read back
 * only when a replay ran since (nothing else sets it). */
dat_status dat_take_faults(dat_ctx *ctx);

/* Frees what the context holds for recordings (dat_ctx_destroy). */
void dat_capture_fini(dat_ctx *ctx);

#endif
