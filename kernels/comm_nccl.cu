/*
 * The NCCL communicator: device buffers of a CUDA context, collectives on the
 * communicator's own stream. NCCL runs non-blocking (config.blocking = 0):
 * every wait polls the stream and ncclCommGetAsyncError against a deadline,
 * and on an error or a timeout the communicator is aborted (ncclCommAbort),
 * so a dead peer gives a status, not a hang.
 */
#include <nccl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.h"

extern "C" {
#include "../lib/comm/comm.h"
}

static_assert(sizeof(ncclUniqueId) == sizeof(dat_comm_id), "dat_comm_id must hold an ncclUniqueId");

struct nccl_impl {
    ncclComm_t comm;
    cudaStream_t stream;
    int device;
    int64_t *dev_hdr; /* size * DAT_HDR_LEN, for the header exchange */
    cudaEvent_t queued; /* the context's stream up to a started all-reduce */
    cudaEvent_t reduced; /* the communicator's stream up to its last all-reduce */
    int aborted;
};

static nccl_impl *impl(dat_comm *c)
{
    return (nccl_impl *)c->impl;
}

static dat_status nccl_error(const char *func, const char *what, ncclResult_t r, ncclComm_t comm)
{
    const char *last = comm ? ncclGetLastError(comm) : ncclGetLastError(NULL);
    return dat_error(DAT_ERR_COMM, func, "%s: %s%s%s", what, ncclGetErrorString(r),
                     last && *last ? ": " : "", last ? last : "");
}

static void abort_comm(nccl_impl *m)
{
    if (m->comm && !m->aborted) {
        ncclCommAbort(m->comm);
        m->aborted = 1;
    }
}

/* Checks the result of an enqueueing call: ncclInProgress is fine in the
 * non-blocking mode (the wait finishes it). */
static dat_status enqueued(dat_comm *c, const char *what, ncclResult_t r)
{
    if (r == ncclSuccess || r == ncclInProgress)
        return DAT_OK;
    dat_status s = nccl_error("dat_comm_nccl", what, r, impl(c)->comm);
    abort_comm(impl(c));
    return s;
}

/* Waits until NCCL reports no pending or failed work and, with stream_idle,
 * until the stream has run everything queued on it. */
static dat_status poll_until(dat_comm *c, const char *what, int stream_idle)
{
    nccl_impl *m = impl(c);
    double deadline = dat_now() + c->timeout_s;
    for (long polls = 0;; ++polls) {
        ncclResult_t a = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(m->comm, &a);
        if (r != ncclSuccess || (a != ncclSuccess && a != ncclInProgress)) {
            dat_status s = nccl_error("dat_comm_nccl", what, r != ncclSuccess ? r : a, m->comm);
            abort_comm(m);
            return s;
        }
        if (a == ncclSuccess && !stream_idle)
            return DAT_OK;
        if (a == ncclSuccess) {
            cudaError_t e = cudaStreamQuery(m->stream);
            if (e == cudaSuccess)
                return DAT_OK;
            if (e != cudaErrorNotReady) {
                abort_comm(m);
                c->broken = 1; /* as after a timeout: nothing may use the aborted handle */
                return dat_cuda_error(e, "dat_comm_nccl", what);
            }
        }
        if (dat_now() > deadline) {
            abort_comm(m);
            return dat_error(DAT_ERR_TIMEOUT, "dat_comm_nccl",
                             "rank %d of %d: %s did not complete within %g s: a peer died or "
                             "hangs; the NCCL communicator was aborted", c->rank, c->size, what,
                             c->timeout_s);
        }
        if (polls > 1000)
            sched_yield();
    }
}

/* Waits until the stream is idle and NCCL reports no pending or failed work. */
static dat_status wait_done(dat_comm *c, const char *what)
{
    return poll_until(c, what, 1);
}

/* The tensors were written on the context's stream: finish that first. */
static dat_status begin(dat_comm *c)
{
    DAT_CUDA_TRY(cudaSetDevice(impl(c)->device));
    return c->ctx->be->synchronize(c->ctx);
}

static void nccl_destroy(dat_comm *c)
{
    nccl_impl *m = impl(c);
    if (!m)
        return;
    cudaSetDevice(m->device);
    if (m->comm) {
        if (c->broken || m->aborted) {
            abort_comm(m);
        } else {
            ncclCommFinalize(m->comm);
            double deadline = dat_now() + c->timeout_s;
            ncclResult_t a = ncclInProgress;
            while (ncclCommGetAsyncError(m->comm, &a) == ncclSuccess && a == ncclInProgress &&
                   dat_now() < deadline)
                sched_yield();
            if (a == ncclSuccess)
                ncclCommDestroy(m->comm);
            else
                abort_comm(m);
        }
    }
    if (m->dev_hdr)
        cudaFree(m->dev_hdr);
    if (m->queued)
        cudaEventDestroy(m->queued);
    if (m->reduced)
        cudaEventDestroy(m->reduced);
    if (m->stream)
        cudaStreamDestroy(m->stream);
    free(m);
}

static dat_status nccl_exchange_header(dat_comm *c, const int64_t *mine, int64_t *all)
{
    nccl_impl *m = impl(c);
    DAT_TRY(begin(c));
    size_t k = DAT_HDR_LEN;
    DAT_CUDA_TRY(cudaMemcpyAsync(m->dev_hdr + (size_t)c->rank * k, mine, k * sizeof *mine,
                                 cudaMemcpyHostToDevice, m->stream));
    DAT_TRY(enqueued(c, "ncclAllGather (header)",
                     ncclAllGather(m->dev_hdr + (size_t)c->rank * k, m->dev_hdr, k, ncclInt64,
                                   m->comm, m->stream)));
    DAT_TRY(wait_done(c, "the header exchange"));
    DAT_CUDA_TRY(cudaMemcpy(all, m->dev_hdr, (size_t)c->size * k * sizeof *all,
                            cudaMemcpyDeviceToHost));
    return DAT_OK;
}

__global__ void scale_kernel(float *x, size_t n, float a)
{
    DAT_GRID_STRIDE(i, n)
        x[i] = __fmul_rn(x[i], a);
}

/* Queues the sum (and the scaling of the mean) on the communicator's stream. */
static dat_status queue_allreduce(dat_comm *c, float *buf, size_t n, dat_reduction op)
{
    nccl_impl *m = impl(c);
    ncclResult_t r = ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, m->comm, m->stream);
    DAT_TRY(enqueued(c, "ncclAllReduce", r));
    /* Non-blocking NCCL: until a call that returned ncclInProgress has settled,
     * no kernel may be queued on its stream and no other NCCL call made (the
     * scaling below, the next bucket's all-reduce). */
    if (r == ncclInProgress)
        DAT_TRY(poll_until(c, "ncclAllReduce", 0));
    if (op == DAT_REDUCE_MEAN && n > 0) {
        scale_kernel<<<dat_cuda_grid(n, 256), 256, 0, m->stream>>>(buf, n, 1.0f / (float)c->size);
        DAT_CUDA_CHECK_LAUNCH("scale_kernel");
    }
    return DAT_OK;
}

static dat_status nccl_allreduce(dat_comm *c, float *buf, size_t n, dat_reduction op)
{
    DAT_TRY(begin(c));
    DAT_TRY(queue_allreduce(c, buf, n, op));
    return wait_done(c, "the all-reduce");
}

/* The communicator's stream waits for the context's up to now (the gradient
 * the backward pass has queued so far): what it queues next runs while the
 * context's stream goes on with the backward pass. */
static dat_status follow_context(dat_comm *c)
{
    nccl_impl *m = impl(c);
    DAT_CUDA_TRY(cudaSetDevice(m->device));
    if (!m->queued)
        DAT_CUDA_TRY(cudaEventCreateWithFlags(&m->queued, cudaEventDisableTiming));
    DAT_CUDA_TRY(cudaEventRecord(m->queued, dat_cuda(c->ctx)->stream));
    DAT_CUDA_TRY(cudaStreamWaitEvent(m->stream, m->queued, 0));
    return DAT_OK;
}

static dat_status nccl_allreduce_start(dat_comm *c, float *buf, size_t n, dat_reduction op)
{
    DAT_TRY(follow_context(c));
    return queue_allreduce(c, buf, n, op);
}

/* The host waits for the started all-reduces (and through them for the
 * context's stream up to the last one), so later work sees the mean. */
static dat_status nccl_allreduce_finish(dat_comm *c)
{
    DAT_CUDA_TRY(cudaSetDevice(impl(c)->device));
    return wait_done(c, "the gradient all-reduce");
}

/* The context's stream waits, on the device, for the started all-reduces: a
 * recorded step's all-reduce (lib/core/capture.h) joins the recording back. */
static dat_status nccl_allreduce_join(dat_comm *c)
{
    nccl_impl *m = impl(c);
    DAT_CUDA_TRY(cudaSetDevice(m->device));
    if (!m->reduced)
        DAT_CUDA_TRY(cudaEventCreateWithFlags(&m->reduced, cudaEventDisableTiming));
    DAT_CUDA_TRY(cudaEventRecord(m->reduced, m->stream));
    DAT_CUDA_TRY(cudaStreamWaitEvent(dat_cuda(c->ctx)->stream, m->reduced, 0));
    return DAT_OK;
}

static dat_status nccl_broadcast(dat_comm *c, void *buf, size_t bytes, int root)
{
    nccl_impl *m = impl(c);
    DAT_TRY(begin(c));
    DAT_TRY(enqueued(c, "ncclBroadcast",
                     ncclBroadcast(buf, buf, bytes, ncclUint8, root, m->comm, m->stream)));
    return wait_done(c, "the broadcast");
}

/* Queues the all-gather: block j (counts[j] bytes at displs[j]) from rank j. */
static dat_status queue_allgatherv(dat_comm *c, void *buf, const size_t *counts,
                                   const size_t *displs)
{
    nccl_impl *m = impl(c);
    uint8_t *b = (uint8_t *)buf;
    int r = c->rank;
    DAT_TRY(enqueued(c, "ncclGroupStart", ncclGroupStart()));
    for (int j = 0; j < c->size; ++j) {
        if (j == r)
            continue;
        ncclResult_t e = ncclSend(b + displs[r], counts[r], ncclUint8, j, m->comm, m->stream);
        if (e == ncclSuccess || e == ncclInProgress)
            e = ncclRecv(b + displs[j], counts[j], ncclUint8, j, m->comm, m->stream);
        if (e != ncclSuccess && e != ncclInProgress) {
            ncclGroupEnd();
            return enqueued(c, "ncclSend / ncclRecv (all-gather)", e);
        }
    }
    ncclResult_t e = ncclGroupEnd();
    DAT_TRY(enqueued(c, "ncclGroupEnd", e));
    return e == ncclInProgress ? poll_until(c, "ncclGroupEnd (all-gather)", 0) : DAT_OK;
}

static dat_status nccl_allgatherv(dat_comm *c, void *buf, const size_t *counts,
                                  const size_t *displs)
{
    DAT_TRY(begin(c));
    DAT_TRY(queue_allgatherv(c, buf, counts, displs));
    return wait_done(c, "the all-gather");
}

static dat_status nccl_allgatherv_start(dat_comm *c, void *buf, const size_t *counts,
                                        const size_t *displs)
{
    DAT_TRY(follow_context(c));
    return queue_allgatherv(c, buf, counts, displs);
}

/* Queues the all-to-all: block j of send to rank j, into its recv. */
static dat_status queue_alltoallv(dat_comm *c, const void *send, const size_t *scounts,
                                  const size_t *sdispls, void *recv, const size_t *rcounts,
                                  const size_t *rdispls)
{
    nccl_impl *m = impl(c);
    int r = c->rank;
    DAT_CUDA_TRY(cudaMemcpyAsync((uint8_t *)recv + rdispls[r], (const uint8_t *)send + sdispls[r],
                                 scounts[r], cudaMemcpyDeviceToDevice, m->stream));
    DAT_TRY(enqueued(c, "ncclGroupStart", ncclGroupStart()));
    for (int j = 0; j < c->size; ++j) {
        if (j == r)
            continue;
        ncclResult_t e = ncclSend((const uint8_t *)send + sdispls[j], scounts[j], ncclUint8, j,
                                  m->comm, m->stream);
        if (e == ncclSuccess || e == ncclInProgress)
            e = ncclRecv((uint8_t *)recv + rdispls[j], rcounts[j], ncclUint8, j, m->comm,
                         m->stream);
        if (e != ncclSuccess && e != ncclInProgress) {
            ncclGroupEnd();
            return enqueued(c, "ncclSend / ncclRecv (all-to-all)", e);
        }
    }
    ncclResult_t e = ncclGroupEnd();
    DAT_TRY(enqueued(c, "ncclGroupEnd", e));
    return e == ncclInProgress ? poll_until(c, "ncclGroupEnd (all-to-all)", 0) : DAT_OK;
}

static dat_status nccl_alltoallv(dat_comm *c, const void *send, const size_t *scounts,
                                 const size_t *sdispls, void *recv, const size_t *rcounts,
                                 const size_t *rdispls)
{
    DAT_TRY(begin(c));
    DAT_TRY(queue_alltoallv(c, send, scounts, sdispls, recv, rcounts, rdispls));
    return wait_done(c, "the all-to-all");
}

static dat_status nccl_alltoallv_start(dat_comm *c, const void *send, const size_t *scounts,
                                       const size_t *sdispls, void *recv, const size_t *rcounts,
                                       const size_t *rdispls)
{
    DAT_TRY(follow_context(c));
    return queue_alltoallv(c, send, scounts, sdispls, recv, rcounts, rdispls);
}

static void nccl_abort(dat_comm *c)
{
    abort_comm(impl(c));
}

static const dat_comm_ops nccl_ops = {
    "nccl",
    1,
    nccl_destroy,
    nccl_exchange_header,
    nccl_allreduce,
    nccl_broadcast,
    nccl_allgatherv,
    nccl_alltoallv,
    nccl_abort,
    nccl_allreduce_start,
    nccl_allreduce_finish,
    nccl_allreduce_join,
    nccl_allgatherv_start,
    nccl_alltoallv_start,
};

extern "C" dat_status dat_comm_nccl_unique_id(dat_comm_id *id)
{
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess)
        return nccl_error("dat_comm_unique_id", "ncclGetUniqueId", r, NULL);
    memcpy(id, &u, sizeof u);
    return DAT_OK;
}

/* Joins the NCCL communicator without blocking past the deadline. */
static dat_status init_comm(nccl_impl *m, int nranks, int rank, const dat_comm_id *id,
                            double timeout_s)
{
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&m->comm, nranks, u, rank, &config);
    if (r != ncclSuccess && r != ncclInProgress)
        return nccl_error("dat_comm_create_nccl", "ncclCommInitRankConfig", r, NULL);
    double deadline = dat_now() + timeout_s;
    for (;;) {
        ncclResult_t a = ncclInProgress;
        r = ncclCommGetAsyncError(m->comm, &a);
        if (r != ncclSuccess || (a != ncclSuccess && a != ncclInProgress)) {
            dat_status s = nccl_error("dat_comm_create_nccl", "ncclCommInitRankConfig",
                                      r != ncclSuccess ? r : a, m->comm);
            abort_comm(m);
            return s;
        }
        if (a == ncclSuccess)
            return DAT_OK;
        if (dat_now() > deadline) {
            abort_comm(m);
            return dat_error(DAT_ERR_TIMEOUT, "dat_comm_create_nccl",
                             "rank %d of %d: the NCCL communicator was not complete within %g s "
                             "(do all ranks call dat_comm_create_nccl with the same id?)",
                             rank, nranks, timeout_s);
        }
        sched_yield();
    }
}

extern "C" dat_status dat_comm_nccl_create(dat_comm **out, dat_ctx *ctx, int nranks, int rank,
                                           const dat_comm_id *id, const dat_comm_options *o)
{
    nccl_impl *m = (nccl_impl *)calloc(1, sizeof *m);
    if (!m)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_comm_create_nccl",
                         "cannot allocate the NCCL state");
    m->device = ctx->opts.device_ordinal;
    dat_status s = DAT_OK;
    cudaError_t e = cudaSetDevice(m->device);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaMalloc(&m->dev_hdr, (size_t)nranks * DAT_HDR_LEN * sizeof(int64_t));
    if (e != cudaSuccess)
        s = dat_cuda_error(e, "dat_comm_create_nccl", "stream / header buffer");
    if (s == DAT_OK)
        s = init_comm(m, nranks, rank, id, o->timeout_s);
    if (s == DAT_OK)
        s = dat_comm_alloc(out, ctx, &nccl_ops, m, rank, nranks, o->timeout_s);
    if (s != DAT_OK) {
        if (m->comm)
            abort_comm(m);
        if (m->dev_hdr)
            cudaFree(m->dev_hdr);
        if (m->stream)
            cudaStreamDestroy(m->stream);
        free(m);
    }
    return s;
}
