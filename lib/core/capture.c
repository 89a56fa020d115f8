/*
 * Step graphs (dat_capture.h). The backend records the context's stream; this
 * file keeps what the host must redo at each replay: the objects' counters
 * (capture.h), the first refusal of the recording, and the fault word that
 * device-side checks set and dat_ctx_synchronize() reports.
 */
#include "capture.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

struct dat_capture {
    dat_capture_counter_ref *counters;
    size_t n, cap;
    dat_status refused;              /* the first refusal, DAT_OK if none */
    char message[DAT_ERROR_CAPACITY];
    int out_of_memory;               /* a counter could not be kept */
};

struct dat_step_graph {
    dat_ctx *ctx;
    void *graph;                     /* the backend's */
    dat_capture_counter_ref *counters;
    size_t n;
    uint64_t buffer_moves;           /* the context's when recorded */
};

dat_status dat_capture_counter(dat_ctx *ctx, int64_t *counter, int64_t per_step, void *mirror)
{
    struct dat_capture *c = ctx->capture;
    if (!c)
        return DAT_OK;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        dat_capture_counter_ref *r = realloc(c->counters, cap * sizeof *r);
        if (!r) {
            c->out_of_memory = 1;
            return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_capture_begin",
                             "cannot keep the recording's counters");
        }
        c->counters = r;
        c->cap = cap;
    }
    c->counters[c->n++] =
        (dat_capture_counter_ref){.counter = counter, .per_step = per_step, .mirror = mirror};
    return DAT_OK;
}

dat_status dat_capture_refuse(dat_ctx *ctx, const char *func, const char *what)
{
    dat_status s = dat_error(DAT_ERR_STATE, func, "%s cannot be recorded in a graph", what);
    struct dat_capture *c = ctx->capture;
    if (c && c->refused == DAT_OK) {
        c->refused = s;
        strncpy(c->message, dat_last_error(), sizeof c->message - 1);
    }
    return s;
}

uint32_t *dat_fault_word(const dat_ctx *ctx)
{
    return ctx->fault;
}

dat_status dat_take_faults(dat_ctx *ctx)
{
    if (!ctx->fault || !ctx->fault_unread) /* only replays set it */
        return DAT_OK;
    uint32_t f = 0;
    DAT_TRY(ctx->be->copy_to_host(ctx, &f, ctx->fault, sizeof f));
    ctx->fault_unread = 0;
    if (f == 0)
        return DAT_OK;
    const uint32_t zero = 0;
    DAT_TRY(ctx->be->fill(ctx, ctx->fault, 1, &zero, sizeof zero));
    /* The cause first; a skipped update is what it led to. */
    const char *skipped = f & DAT_FAULT_GRADIENT ? "; the optimizer skipped the step" : "";
    const char *where = "(a device-side check of a replayed step graph)";
    const char *fn = "dat_ctx_synchronize";
    if (f & DAT_FAULT_INPUT)
        return dat_error(DAT_ERR_NUMERIC, fn, "a model input held NaN or Inf %s%s", where,
                         skipped);
    if (f & DAT_FAULT_LABELS)
        return dat_error(DAT_ERR_INVALID_ARG, fn, "a label was outside [0, classes) %s%s", where,
                         skipped);
    if (f & DAT_FAULT_RANGE)
        return dat_error(DAT_ERR_INVALID_ARG, fn, "an attack's input was outside its range "
                         "[lo, hi] %s%s", where, skipped);
    if (f & DAT_FAULT_QUANTIZE)
        return dat_error(DAT_ERR_NUMERIC, fn, "the quantized all-reduce met NaN, Inf or an "
                         "overflowing norm in a rank's gradient %s%s", where, skipped);
    return dat_error(DAT_ERR_NUMERIC, fn, "a gradient held NaN or Inf %s%s", where, skipped);
}

void dat_capture_fini(dat_ctx *ctx)
{
    if (ctx->capture) { /* destroyed while recording: the backend's context goes too */
        free(ctx->capture->counters);
        free(ctx->capture);
        ctx->capture = NULL;
    }
    if (ctx->fault)
        ctx->be->free(ctx, ctx->fault);
    ctx->fault = NULL;
}

static dat_status make_fault_word(dat_ctx *ctx)
{
    if (ctx->fault)
        return DAT_OK;
    void *p = NULL;
    DAT_TRY(ctx->be->alloc(ctx, sizeof(uint32_t), &p));
    const uint32_t zero = 0;
    dat_status s = ctx->be->fill(ctx, p, 1, &zero, sizeof zero);
    if (s != DAT_OK) {
        ctx->be->free(ctx, p);
        return s;
    }
    ctx->fault = p;
    return DAT_OK;
}

dat_status dat_capture_begin(dat_ctx *ctx)
{
    DAT_CHECK_NOT_NULL(ctx);
    if (!ctx->be->capture_begin)
        return dat_error(DAT_ERR_UNSUPPORTED, __func__, "the %s backend records no graphs",
                         ctx->be->name);
    if (ctx->prof)
        return dat_error(DAT_ERR_UNSUPPORTED, __func__,
                         "the op profile (DAT_PROFILE_OPS) times each op on the host: "
                         "a recording has nothing to time");
    if (ctx->capture)
        return dat_error(DAT_ERR_STATE, __func__, "the context is already recording");
    DAT_TRY(make_fault_word(ctx));
    struct dat_capture *c = calloc(1, sizeof *c);
    if (!c)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate the recording");
    dat_status s = ctx->be->capture_begin(ctx);
    if (s != DAT_OK) {
        free(c);
        return s;
    }
    ctx->capture = c;
    return DAT_OK;
}

/* Moves every counter by `steps` recorded steps. */
static void advance(const dat_capture_counter_ref *r, size_t n, int64_t steps)
{
    for (size_t k = 0; k < n; ++k)
        *r[k].counter += steps * r[k].per_step;
}

dat_status dat_capture_end(dat_ctx *ctx, dat_step_graph **out)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(ctx);
    struct dat_capture *c = ctx->capture;
    if (!c)
        return dat_error(DAT_ERR_STATE, __func__, "the context is not recording");
    ctx->capture = NULL;
    void *graph = NULL;
    dat_status s = ctx->be->capture_end(ctx, &graph);
    advance(c->counters, c->n, -1); /* as before the recording: its calls ran on the host */
    if (c->refused != DAT_OK || c->out_of_memory) {
        s = c->out_of_memory ? DAT_ERR_OUT_OF_MEMORY : c->refused;
        if (c->out_of_memory)
            dat_error(s, __func__, "cannot keep the recording's counters");
        else
            dat_error(s, __func__, "%s", c->message);
    }
    dat_step_graph *g = s == DAT_OK ? calloc(1, sizeof *g) : NULL;
    if (s == DAT_OK && !g)
        s = dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate the graph");
    if (s != DAT_OK) {
        if (graph)
            ctx->be->graph_destroy(ctx, graph);
        free(c->counters);
        free(c);
        return s;
    }
    *g = (dat_step_graph){.ctx = ctx,
                          .graph = graph,
                          .counters = c->counters,
                          .n = c->n,
                          .buffer_moves = ctx->buffer_moves};
    free(c);
    *out = g;
    return DAT_OK;
}

dat_status dat_step_graph_launch(dat_step_graph *graph)
{
    DAT_CHECK_NOT_NULL(graph);
    dat_ctx *ctx = graph->ctx;
    if (ctx->capture)
        return dat_error(DAT_ERR_STATE, __func__, "the context is recording");
    if (graph->buffer_moves != ctx->buffer_moves)
        return dat_error(DAT_ERR_STATE, __func__,
                         "buffers the step refers to have been reallocated since it was "
                         "recorded (a larger batch, say): record it again");
    for (size_t k = 0; k < graph->n; ++k) {
        const dat_capture_counter_ref *r = &graph->counters[k];
        if (r->mirror)
            DAT_TRY(ctx->be->fill(ctx, r->mirror, 1, r->counter, sizeof *r->counter));
    }
    dat_status s = ctx->be->graph_launch(ctx, graph->graph);
    if (s == DAT_ERR_STATE)
        return dat_error(s, __func__,
                         "the context's workspace has grown since the step was recorded: "
                         "record it again");
    DAT_TRY(s);
    ctx->fault_unread = 1;
    advance(graph->counters, graph->n, 1);
    return DAT_OK;
}

void dat_step_graph_destroy(dat_step_graph *graph)
{
    if (!graph)
        return;
    dat_ctx *ctx = graph->ctx;
    (void)ctx->be->synchronize(ctx);
    ctx->be->graph_destroy(ctx, graph->graph);
    free(graph->counters);
    free(graph);
}
