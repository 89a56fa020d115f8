/*
 * The gradient all-reduce overlapped with the backward pass (dat_grad_sync,
 * dat_comm.h). The flat gradient is cut into buckets [j B, (j + 1) B); the
 * model's backward pass reports, after each layer, the lowest offset from
 * which the gradient is final (model.h, grad_hook), and every bucket at or
 * above it is started, highest first, while the backward pass goes on: on a
 * communication thread for the host kinds (self, MPI), which reduces the
 * buckets one by one; on the communicator's stream for a device kind (NCCL,
 * allreduce_start), behind the backward pass's work queued so far; quantized,
 * there, as sync_codes.h tells.
 *
 * Bit-identity with dat_comm_allreduce_grads: the exact all-reduce of the
 * host kinds sums each element over the ranks in rank order whatever slice it
 * is in, and the quantized one draws by element offset from bucket-aligned
 * slices. The ranks agree on the whole plan once, in begin; the exact
 * buckets then run the kind's all-reduce directly (same order on every rank,
 * so the messages match), the quantized ones on the thread through
 * dat_comm_quantized, which agrees on each exchange (it carries the encode
 * status), on the stream with one agreement in end.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/capture.h"
#include "../core/error.h"
#include "../core/options.h"
#include "../model/model.h"
#include "../quant/quantizer.h"
#include "comm.h"
#include "sync_codes.h"

#define DEFAULT_BUCKET ((int64_t)1 << 20)

struct dat_grad_sync {
    dat_comm *comm;
    dat_model *model;
    dat_grad_sync_options o;
    enum { AT_END, ON_THREAD, ON_STREAM } how; /* where the buckets are reduced */
    size_t total;           /* gradient elements */
    int64_t buckets;        /* ceil(total / bucket) */
    /* One step, between begin and end. */
    int armed;
    uint64_t step;
    float *grads;           /* the gradient the buckets reduce: host memory for the
                               thread, the context's device for the stream */
    int64_t queued;         /* buckets queued so far; the next to queue is buckets - 1 - queued */
    int64_t done;           /* buckets the thread has finished */
    uint64_t bytes;         /* the exact buckets' payload, each way (as dat_comm_allreduce) */
    dat_sync_codes codes;   /* quantized on the stream */
    dat_status failed;      /* the first failure of a bucket, with its message */
    char message[DAT_ERROR_CAPACITY];
    /* The thread, and the lock of queued, done and failed. */
    pthread_t thread;
    int thread_started, quit;
    pthread_mutex_t lock;
    pthread_cond_t wake, idle;
};

dat_status (dat_grad_sync_options_init)(dat_grad_sync_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    *opts = (dat_grad_sync_options){.size = sizeof *opts,
                                    .bucket_elems = DEFAULT_BUCKET,
                                    .quantizer = NULL,
                                    .mode = DAT_QUANT_ONE_SIDED};
    return DAT_OK;
}

DAT_OPTIONS_INIT_SIZED(dat_grad_sync_options)

static dat_status check_options(const dat_grad_sync_options *o, const dat_model *m)
{
    const char *f = "dat_grad_sync_create";
    if (o->bucket_elems <= 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->bucket_elems = %lld must be > 0",
                         (long long)o->bucket_elems);
    if (!o->quantizer)
        return DAT_OK;
    if (o->mode != DAT_QUANT_ONE_SIDED && o->mode != DAT_QUANT_TWO_SIDED)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->mode = %d is not a dat_quant_mode",
                         (int)o->mode);
    if (o->quantizer->ctx != m->ctx)
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "opts->quantizer belongs to another context than the model");
    int qb = o->quantizer->cfg.bucket;
    if (o->bucket_elems % qb != 0)
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "opts->bucket_elems = %lld is not a multiple of the quantizer's bucket "
                         "(%d elements): the slices would draw other random numbers",
                         (long long)o->bucket_elems, qb);
    return DAT_OK;
}

/* All-reduces bucket j over a host communicator (on the communication thread). */
static dat_status reduce_bucket(dat_grad_sync *s, int64_t j)
{
    size_t lo, n;
    dat_bucket_range(s->total, (size_t)s->o.bucket_elems, (size_t)j, &lo, &n);
    dat_comm *c = s->comm;
    if (s->o.quantizer)
        return dat_comm_quantized(c, "dat_grad_sync_end", s->grads + lo, n, lo, s->o.quantizer,
                                  s->o.mode, s->step);
    dat_status st = c->ops->allreduce(c, s->grads + lo, n, DAT_REDUCE_MEAN);
    if (st != DAT_OK)
        return dat_comm_failed(c, st);
    s->bytes += dat_comm_allreduce_bytes(c, n);
    return DAT_OK;
}

/* Records the first failure (with its message); later buckets are skipped. */
static void fail(dat_grad_sync *s, dat_status st)
{
    if (st == DAT_OK || s->failed != DAT_OK)
        return;
    s->failed = st;
    snprintf(s->message, sizeof s->message, "%s", dat_last_error());
}

/* Starts bucket j on the communicator's stream (the hook's thread). */
static void start_bucket(dat_grad_sync *s, int64_t j)
{
    if (s->failed != DAT_OK)
        return;
    size_t lo, n;
    dat_bucket_range(s->total, (size_t)s->o.bucket_elems, (size_t)j, &lo, &n);
    dat_comm *c = s->comm;
    if (s->o.quantizer) {
        fail(s, dat_comm_failed(c, dat_sync_codes_start(&s->codes, (size_t)j, lo, n, s->grads,
                                                        s->step)));
        return;
    }
    dat_status st = c->ops->allreduce_start(c, s->grads + lo, n, DAT_REDUCE_MEAN);
    fail(s, dat_comm_failed(c, st));
    s->bytes += st == DAT_OK ? dat_comm_allreduce_bytes(c, n) : 0;
}

/* The communication thread: reduces queued buckets, highest first; after a
 * failure it only counts them, so that end() returns. */
static void *worker(void *arg)
{
    dat_grad_sync *s = arg;
    dat_set_thread_cap(1); /* the backward pass has the cores */
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->quit && s->done == s->queued)
            pthread_cond_wait(&s->wake, &s->lock);
        if (s->quit)
            break;
        int64_t j = s->buckets - 1 - s->done;
        int ok = s->failed == DAT_OK;
        pthread_mutex_unlock(&s->lock);
        dat_status st = ok ? reduce_bucket(s, j) : DAT_OK;
        pthread_mutex_lock(&s->lock);
        fail(s, st);
        s->done++;
        pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Starts every bucket that lies at or above `lo` (the model's hook). */
static void queue_from(void *user, size_t lo)
{
    dat_grad_sync *s = user;
    size_t b = (size_t)s->o.bucket_elems;
    pthread_mutex_lock(&s->lock);
    int64_t before = s->queued;
    while (s->queued < s->buckets && (size_t)(s->buckets - 1 - s->queued) * b >= lo)
        s->queued++;
    int64_t after = s->queued;
    if (after != before && s->how == ON_THREAD)
        pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    for (int64_t k = before; s->how == ON_STREAM && k < after; ++k)
        start_bucket(s, s->buckets - 1 - k);
}

/* A thread for the host kinds that allow one (the self communicator, MPI
 * with MPI_THREAD_SERIALIZED) with a CPU model whose gradient the quantizer
 * reads in place; the stream for a device kind in the model's own context,
 * exact, or quantized where the context's backend encodes without a
 * read-back (sync_codes.h). */
static int where(const dat_comm *c, const dat_model *m, const dat_quantizer *q)
{
    if (c->ops->device_buffers) {
        if (!c->ops->allreduce_start || c->ctx != m->ctx)
            return AT_END;
        return !q || dat_sync_codes_possible(c, m->ctx, q) ? ON_STREAM : AT_END;
    }
    if (!c->threads_ok || m->ctx->opts.device != DAT_DEVICE_CPU)
        return AT_END;
    return !q || q->exec->opts.device == DAT_DEVICE_CPU ? ON_THREAD : AT_END;
}

static dat_status start_thread(dat_grad_sync *s)
{
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_grad_sync_create", "pthread_mutex_init");
    if (pthread_cond_init(&s->wake, NULL) != 0 || pthread_cond_init(&s->idle, NULL) != 0)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_grad_sync_create", "pthread_cond_init");
    if (s->how != ON_THREAD)
        return DAT_OK;
    if (pthread_create(&s->thread, NULL, worker, s) != 0)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_grad_sync_create",
                         "cannot start the communication thread");
    s->thread_started = 1;
    return DAT_OK;
}

dat_status dat_grad_sync_create(dat_grad_sync **out, dat_comm *comm, dat_model *model,
                                const dat_grad_sync_options *opts)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(comm);
    DAT_CHECK_NOT_NULL(model);
    dat_grad_sync_options o;
    dat_grad_sync_options_init(&o);
    if (opts) {
        DAT_CHECK_OPTIONS_SIZE(opts, dat_grad_sync_options, sizeof(dat_grad_sync_options));
        o = *opts;
        o.size = sizeof o;
    }
    DAT_TRY(check_options(&o, model));
    if (model->grad_hook_user)
        return dat_error(DAT_ERR_STATE, __func__,
                         "the model already has a gradient synchronizer: destroy it first");
    dat_grad_sync *s = calloc(1, sizeof *s);
    if (!s)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate the synchronizer");
    s->comm = comm;
    s->model = model;
    s->o = o;
    s->total = (size_t)model->grads->numel;
    s->buckets = (int64_t)((s->total + (size_t)o.bucket_elems - 1) / (size_t)o.bucket_elems);
    s->how = where(comm, model, o.quantizer);
    dat_status st = start_thread(s);
    if (st == DAT_OK && s->how == ON_STREAM && o.quantizer)
        st = dat_sync_codes_init(&s->codes, model->ctx, (size_t)s->buckets);
    if (st != DAT_OK) {
        dat_grad_sync_destroy(s);
        return st;
    }
    model->grad_hook = s->how != AT_END ? queue_from : NULL;
    model->grad_hook_user = s;
    *out = s;
    return DAT_OK;
}

static void wait_idle(dat_grad_sync *s)
{
    pthread_mutex_lock(&s->lock);
    while (s->done != s->queued)
        pthread_cond_wait(&s->idle, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

void dat_grad_sync_destroy(dat_grad_sync *s)
{
    if (!s)
        return;
    if (s->thread_started) {
        wait_idle(s);
        pthread_mutex_lock(&s->lock);
        s->quit = 1;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
    }
    if (s->model && s->model->grad_hook_user == s) {
        s->model->grad_hook = NULL;
        s->model->grad_hook_user = NULL;
        s->model->grad_hook_armed = 0;
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->idle);
    dat_sync_codes_free(&s->codes, s->model->ctx);
    free(s);
}

/* The ranks agree on the plan: gradient length, bucket, quantizer, mode, step. */
static dat_status agree(dat_grad_sync *s, dat_status local)
{
    dat_comm *c = s->comm;
    const dat_quantizer *q = s->o.quantizer;
    int64_t h[DAT_HDR_LEN];
    dat_comm_header(c, h, DAT_COMM_OP_GRAD_SYNC, DAT_FLOAT32, (int64_t)s->total,
                    q ? (int64_t)s->o.mode : -1, local);
    h[DAT_HDR_BITS] = q ? q->cfg.bits : 0;
    h[DAT_HDR_BUCKET] = s->o.bucket_elems;
    h[DAT_HDR_NORM] = q ? (int64_t)q->cfg.norm : 0;
    h[DAT_HDR_STEP] = (int64_t)s->step;
    if (q)
        dat_comm_quant_seeds(h, q);
    DAT_TRY(dat_comm_agree(c, "dat_grad_sync_begin", h));
    if (q) /* a recorded step's servers draw with these too */
        dat_comm_serve_as_rank0(c, s->o.quantizer);
    return DAT_OK;
}

/* The gradient where the buckets are reduced: in place for the overlap; for
 * end()'s whole reduction, the generic layer stages it. */
static dat_status grads_in(dat_grad_sync *s)
{
    if (s->how == AT_END)
        return DAT_OK;
    if (s->o.quantizer) {
        DAT_TRY(dat_quantizer_tensor_in(s->o.quantizer, s->model->grads, 1, &s->grads));
        if (s->how != ON_STREAM)
            return DAT_OK;
        return dat_sync_codes_prepare(&s->codes, s->comm, s->o.quantizer, s->o.mode, s->total,
                                      (size_t)s->o.bucket_elems);
    }
    s->grads = s->model->grads->data;
    return DAT_OK;
}

/* Whether a step of the synchronizer can be recorded: on the stream, and for
 * the quantized buckets, with the backend's device-side outcome. */
static int recordable(const dat_grad_sync *s)
{
    const dat_backend *be = s->model->ctx->be;
    if (s->how != ON_STREAM || !s->comm->ops->allreduce_join)
        return 0;
    return !s->o.quantizer || (be->quant_flag_failed && be->quant_apply_failure);
}

dat_status dat_grad_sync_begin(dat_grad_sync *sync, uint64_t step)
{
    DAT_CHECK_NOT_NULL(sync);
    if (sync->armed)
        return dat_error(DAT_ERR_STATE, __func__,
                         "already armed: call dat_grad_sync_end() for the last step first");
    DAT_TRY(dat_comm_usable(sync->comm, __func__));
    sync->step = step;
    if (dat_capturing(sync->model->ctx)) { /* agree() would read back */
        if (!recordable(sync))
            return dat_capture_refuse(sync->model->ctx, __func__,
                                      "a synchronizer that reduces on a thread or at the end");
        DAT_TRY(grads_in(sync));
    } else {
        DAT_TRY(agree(sync, grads_in(sync)));
    }
    /* Under the lock: the worker reads queued and done under it, and a spurious
     * wake-up between two unlocked stores would show it queued 0, done > 0. */
    pthread_mutex_lock(&sync->lock);
    sync->queued = sync->done = 0;
    sync->failed = DAT_OK;
    sync->bytes = 0;
    pthread_mutex_unlock(&sync->lock);
    sync->armed = 1;
    sync->model->grad_hook_armed = 1;
    return DAT_OK;
}

/* The quantized buckets moved on the stream: agreed on, served (two-sided)
 * and decoded. A recorded step's quantizer step is a counter the replays
 * advance (its word on the device set before each; dat_grad_sync_end). */
static dat_status finish_codes(dat_grad_sync *s, double t0)
{
    uint64_t bytes = 0;
    DAT_TRY(dat_sync_codes_finish(&s->codes, s->grads, s->step, &bytes));
    DAT_TRY(dat_quantizer_tensor_out(s->o.quantizer, s->model->grads, s->grads));
    if (!s->codes.recorded) {
        dat_comm_count_call(s->comm, t0, bytes, bytes);
        return DAT_OK;
    }
    DAT_TRY(dat_capture_counter(s->model->ctx, (int64_t *)&s->step, 1, s->codes.step_at));
    return dat_comm_recorded_call(s->comm, t0, bytes);
}

/* dat_grad_sync_end's reduction of the step. */
static dat_status reduce_rest(dat_grad_sync *sync)
{
    dat_comm *c = sync->comm;
    if (sync->how == AT_END)
        return dat_comm_allreduce_grads(c, sync->model, sync->o.quantizer, sync->o.mode,
                                        sync->step);
    double t0 = dat_now();
    pthread_mutex_lock(&sync->lock);
    int64_t early = sync->queued; /* started while the backward pass ran */
    pthread_mutex_unlock(&sync->lock);
    dat_log(sync->model->ctx, DAT_LOG_DEBUG,
            "dat_grad_sync_end: %lld of %lld buckets started during the backward pass",
            (long long)early, (long long)sync->buckets);
    queue_from(sync, 0);
    int recorded = dat_capturing(sync->model->ctx); /* joins on the device, no host wait */
    if (sync->how == ON_THREAD)
        wait_idle(sync);
    else if (sync->failed == DAT_OK)
        fail(sync, dat_comm_failed(c, recorded ? c->ops->allreduce_join(c)
                                               : c->ops->allreduce_finish(c)));
    if (sync->failed != DAT_OK)
        return dat_error(sync->failed, __func__, "a bucket's reduction failed: %s",
                         sync->message);
    if (sync->o.quantizer && sync->how == ON_STREAM)
        return finish_codes(sync, t0);
    if (sync->o.quantizer)
        DAT_TRY(dat_quantizer_tensor_out(sync->o.quantizer, sync->model->grads, sync->grads));
    if (recorded)
        return dat_comm_recorded_call(c, t0, sync->bytes);
    dat_comm_count_call(c, t0, sync->bytes, sync->bytes);
    return DAT_OK;
}

dat_status dat_grad_sync_end(dat_grad_sync *sync)
{
    DAT_CHECK_NOT_NULL(sync);
    if (!sync->armed)
        return dat_error(DAT_ERR_STATE, __func__, "not armed: call dat_grad_sync_begin() first");
    sync->armed = 0;
    sync->model->grad_hook_armed = 0;
    dat_status st = reduce_rest(sync);
    /* The next step: a recorded step's counter (finish_codes), which the
     * recording takes back and each replay advances, so that a replay after
     * op-by-op steps draws after theirs. */
    sync->step++;
    return st;
}

dat_status dat_grad_sync_overlaps(const dat_grad_sync *sync, int32_t *overlaps)
{
    DAT_CHECK_NOT_NULL(sync);
    DAT_CHECK_NOT_NULL(overlaps);
    *overlaps = sync->how != AT_END;
    return DAT_OK;
}
