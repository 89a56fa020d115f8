/* The context as libdat sees it inside. */
#ifndef LIBDAT_CORE_CTX_H
#define LIBDAT_CORE_CTX_H

#include "backend.h"
#include "libdat/dat_ctx.h"

struct dat_ctx {
    dat_ctx_options opts;      /* as given, with defaults resolved */
    const dat_backend *be;     /* the backend every op of this context goes through */
    void *backend_state;       /* owned by the backend: streams, handles, scratch */
    struct dat_profile *prof;  /* per-op host times, or NULL (profile.c) */
    dat_act_fmt act_fmt;       /* models' activation format: precision and layout resolved */
    struct dat_capture *capture; /* the recording in progress, or NULL (capture.c) */
    uint32_t *fault;           /* backend memory: faults of device-side checks (capture.h) */
    int fault_unread;          /* a replay ran since the fault word was last read */
    uint64_t buffer_moves;     /* library-owned buffers reallocated (capture.h) */
};

/* Host threads an op called from this thread may use: the context's, or fewer
 * where the thread set a cap (dat_set_thread_cap; 0 = none). A dat_grad_sync's
 * communication thread takes 1, so that its reductions leave the cores to the
 * backward pass running beside it. */
int dat_host_threads(const dat_ctx *ctx);
void dat_set_thread_cap(int cap);

/* Seconds on a monotonic clock (timeouts, statistics, profiling). */
double dat_now(void);

/* Passes a message to the context's log callback if the level allows it. */
void dat_log(const dat_ctx *ctx, dat_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
