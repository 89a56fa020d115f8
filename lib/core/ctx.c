#include "ctx.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "error.h"
#include "profile.h"
#include "options.h"

/* The first released layout of dat_ctx_options: every field up to log_level. Its
 * sizeof adds tail padding where precision now lies; 0.2 appended precision and
 * tune_convolutions together, so a size short of the latter is the 0.1 layout. */
#define DAT_CTX_OPTIONS_MIN_SIZE offsetof(dat_ctx_options, precision)
#define DAT_CTX_OPTIONS_0_2_SIZE (offsetof(dat_ctx_options, tune_convolutions) + sizeof(int32_t))

double dat_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

dat_status (dat_ctx_options_init)(dat_ctx_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    *opts = (dat_ctx_options){
        .size = sizeof(dat_ctx_options),
        .device = DAT_DEVICE_CPU,
        .device_ordinal = 0,
        .num_threads = 0,
        .seed = 0,
        .log_fn = NULL,
        .log_user = NULL,
        .log_level = DAT_LOG_WARN,
        .precision = DAT_PRECISION_FP32,
        .tune_convolutions = 0,
        .reserved0 = 0,
        .cuda_graphs = 1,
        .channels_last = -1,
        .deterministic = 0,
    };
    return DAT_OK;
}

DAT_OPTIONS_INIT_SIZED(dat_ctx_options)

static int32_t online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int32_t)n : 1;
}

static dat_status check_options(const dat_ctx_options *o)
{
    if (o->device != DAT_DEVICE_CPU && o->device != DAT_DEVICE_CUDA)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_ctx_create",
                         "opts->device = %d is not a dat_device_kind", (int)o->device);
    if (o->device_ordinal < 0)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_ctx_create",
                         "opts->device_ordinal = %d must be >= 0", (int)o->device_ordinal);
    if (o->num_threads < 0 || o->num_threads > 4096)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_ctx_create",
                         "opts->num_threads = %d must be in [0, 4096] (0 = all cores)",
                         (int)o->num_threads);
    if (o->log_level < DAT_LOG_ERROR || o->log_level > DAT_LOG_DEBUG)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_ctx_create",
                         "opts->log_level = %d is not a dat_log_level", (int)o->log_level);
    if (o->precision != DAT_PRECISION_FP32 && o->precision != DAT_PRECISION_TF32 &&
        o->precision != DAT_PRECISION_BF16)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_ctx_create",
                         "opts->precision = %d is not a dat_precision", (int)o->precision);
    if (o->tune_convolutions != 0 && o->tune_convolutions != 1)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_ctx_create",
                         "opts->tune_convolutions = %d must be 0 or 1", (int)o->tune_convolutions);
    if (o->cuda_graphs != 0 && o->cuda_graphs != 1)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_ctx_create",
                         "opts->cuda_graphs = %d must be 0 or 1", (int)o->cuda_graphs);
    if (o->deterministic != 0 && o->deterministic != 1)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_ctx_create",
                         "opts->deterministic = %d must be 0 or 1", (int)o->deterministic);
    if (o->channels_last < -1 || o->channels_last > 1)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_ctx_create",
                         "opts->channels_last = %d must be -1 (the backend's choice), 0 or 1",
                         (int)o->channels_last);
    return DAT_OK;
}

static dat_status pick_backend(const dat_ctx_options *o, const dat_backend **be)
{
    if (o->device == DAT_DEVICE_CPU) {
        *be = &dat_backend_cpu;
        return DAT_OK;
    }
#if DAT_HAVE_CUDA
    *be = &dat_backend_cuda;
    return DAT_OK;
#else
    *be = NULL;
    return dat_error(DAT_ERR_UNSUPPORTED, "dat_ctx_create",
                     "a CUDA context was asked for, but this libdat was built without "
                     "CUDA (configure with -Dcuda=enabled)");
#endif
}

static _Thread_local int thread_cap;

/* Set in a child of fork(): libgomp's thread pool does not survive fork, and a
 * parallel region of more than one thread in the child hangs, so the child runs
 * every context on the calling thread (as PyTorch does). */
static volatile sig_atomic_t forked_child;
static pthread_once_t fork_watch = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    forked_child = 1;
}

static void watch_fork(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

void dat_set_thread_cap(int cap)
{
    thread_cap = cap;
}

int dat_host_threads(const dat_ctx *ctx)
{
    int n = ctx->opts.num_threads;
    if (forked_child)
        return 1;
    return thread_cap > 0 && thread_cap < n ? thread_cap : n;
}

/* bf16 values under DAT_PRECISION_BF16; channels last as asked, or as the
 * backend prefers for the precision. */
static dat_act_fmt act_fmt_of(const dat_ctx_options *o, const dat_backend *be)
{
    int nhwc = o->channels_last >= 0 ? o->channels_last
                                     : (int)((be->nhwc_precisions >> o->precision) & 1u);
    return (dat_act_fmt)((o->precision == DAT_PRECISION_BF16 ? DAT_FMT_BF16 : 0) |
                         (nhwc ? DAT_FMT_NHWC : 0));
}

dat_status dat_ctx_create(dat_ctx **out, const dat_ctx_options *opts)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    if (opts) {
        DAT_CHECK_OPTIONS_SIZE(opts, dat_ctx_options, DAT_CTX_OPTIONS_MIN_SIZE);
        /* A caller built against older headers passed fewer fields: the rest keep
         * their defaults. */
        memcpy(&o, opts, opts->size < DAT_CTX_OPTIONS_0_2_SIZE ? DAT_CTX_OPTIONS_MIN_SIZE
                                                                : opts->size);
        o.size = sizeof o;
    }
    DAT_TRY(check_options(&o));
    pthread_once(&fork_watch, watch_fork);
    if (o.num_threads == 0)
        o.num_threads = online_cores();
    if (o.device == DAT_DEVICE_CPU)
        o.device_ordinal = -1;

    const dat_backend *be;
    DAT_TRY(pick_backend(&o, &be));
    dat_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate a context");
    ctx->opts = o;
    ctx->be = be;
    ctx->act_fmt = act_fmt_of(&o, be);
    dat_status s = be->init(ctx);
    if (s != DAT_OK) {
        be->fini(ctx);
        free(ctx);
        return s;
    }
    dat_profile_start(ctx);
    dat_log(ctx, DAT_LOG_DEBUG,
            "context created: backend %s, %d threads, seed %llu, activations %s %s", be->name,
            (int)o.num_threads, (unsigned long long)o.seed,
            ctx->act_fmt & DAT_FMT_BF16 ? "bf16" : "fp32",
            ctx->act_fmt & DAT_FMT_NHWC ? "NHWC" : "NCHW");
    *out = ctx;
    return DAT_OK;
}

void dat_ctx_destroy(dat_ctx *ctx)
{
    if (!ctx)
        return;
    dat_profile_finish(ctx);
    dat_capture_fini(ctx);
    ctx->be->fini(ctx);
    free(ctx);
}

dat_status dat_ctx_synchronize(dat_ctx *ctx)
{
    DAT_CHECK_NOT_NULL(ctx);
    DAT_TRY(ctx->be->synchronize(ctx));
    return dat_take_faults(ctx);
}

dat_status dat_ctx_device(const dat_ctx *ctx, dat_device_kind *kind, int32_t *ordinal)
{
    DAT_CHECK_NOT_NULL(ctx);
    if (kind)
        *kind = ctx->opts.device;
    if (ordinal)
        *ordinal = ctx->opts.device_ordinal;
    return DAT_OK;
}

dat_status dat_ctx_num_threads(const dat_ctx *ctx, int32_t *num_threads)
{
    DAT_CHECK_NOT_NULL(ctx);
    DAT_CHECK_NOT_NULL(num_threads);
    *num_threads = ctx->opts.num_threads;
    return DAT_OK;
}

dat_status dat_ctx_seed(const dat_ctx *ctx, uint64_t *seed)
{
    DAT_CHECK_NOT_NULL(ctx);
    DAT_CHECK_NOT_NULL(seed);
    *seed = ctx->opts.seed;
    return DAT_OK;
}

int dat_has_cuda(void)
{
    return DAT_HAVE_CUDA ? 1 : 0;
}

dat_status dat_cuda_device_count(int32_t *count)
{
    DAT_CHECK_NOT_NULL(count);
#if DAT_HAVE_CUDA
    *count = dat_cuda_count_devices();
#else
    *count = 0;
#endif
    return DAT_OK;
}

void dat_log(const dat_ctx *ctx, dat_log_level level, const char *fmt, ...)
{
    if (!ctx || !ctx->opts.log_fn || level > ctx->opts.log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ctx->opts.log_fn(level, line, ctx->opts.log_user);
}
