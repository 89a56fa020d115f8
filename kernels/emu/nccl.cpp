/*
 * NCCL for a communicator of one rank, emulated on the CPU (nccl.h).
 *
 * With one rank every collective (all-reduce with any operation, all-gather,
 * broadcast) is a copy from the send buffer to the receive buffer, nothing
 * when they are the same, and the only peer of a send or receive is the rank
 * itself. The copies are queued on the call's stream with
 * dat_emu::enqueue, so they run in stream order and a capture records them.
 *
 * Calls between ncclGroupStart and ncclGroupEnd (per thread, nested) are
 * collected and queued at the outermost ncclGroupEnd, where each send is
 * matched with the receive of the same position on the same communicator; a
 * call outside a group is a group of its own, so an unmatched send is an
 * error instead of the hang it would be in NCCL. Every call completes before
 * it returns: ncclInProgress is never returned, even for a non-blocking
 * communicator.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <vector>

#include "emu.h"
#include "nccl.h"

struct ncclComm {
    bool finalized = false;
};

namespace {

/* Communicators alive, so that a destroyed or made-up one is an error, not a
 * use after free. */
std::mutex comms_lock;
std::set<ncclComm *> comms;

thread_local char last_error[512];

/* A send or receive, queued until its group ends. */
struct p2p {
    ncclComm *comm;
    cudaStream_t stream;
    bool is_send;
    const void *src; /* a send's */
    void *dst;       /* a receive's */
    size_t bytes;
};

struct collective {
    cudaStream_t stream;
    std::function<void()> run;
};

struct group {
    int depth = 0;
    ncclResult_t error = ncclSuccess; /* the first failed call's, returned by the end */
    std::vector<collective> collectives;
    std::vector<p2p> p2ps;
};

thread_local group open_group;

/* Records the message (ncclGetLastError) and, inside a group, the group's
 * error. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
ncclResult_t fail(ncclResult_t r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (open_group.depth > 0 && open_group.error == ncclSuccess)
        open_group.error = r;
    return r;
}

bool alive(ncclComm *c)
{
    std::lock_guard<std::mutex> g(comms_lock);
    return comms.count(c) != 0;
}

ncclResult_t check_comm(const char *func, ncclComm_t comm)
{
    if (!comm || !alive(comm))
        return fail(ncclInvalidArgument, "%s: invalid communicator %p", func, (void *)comm);
    if (comm->finalized)
        return fail(ncclInvalidUsage, "%s: the communicator was finalized", func);
    return ncclSuccess;
}

size_t type_size(ncclDataType_t t)
{
    switch (t) {
    case ncclInt8: case ncclUint8: case ncclFloat8e4m3: case ncclFloat8e5m2: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    case ncclNumTypes: break;
    }
    return 0;
}

/* The checks every data call shares; *bytes gets count elements' size. */
ncclResult_t check_data(const char *func, ncclComm_t comm, size_t count, ncclDataType_t type,
                        const void *a, const void *b, size_t *bytes)
{
    ncclResult_t r = check_comm(func, comm);
    if (r != ncclSuccess)
        return r;
    *bytes = count * type_size(type);
    if (type_size(type) == 0)
        return fail(ncclInvalidArgument, "%s: data type %d", func, (int)type);
    if (count > 0 && (!a || !b))
        return fail(ncclInvalidArgument, "%s: NULL buffer for %zu elements", func, count);
    return ncclSuccess;
}

ncclResult_t check_peer(const char *func, int peer)
{
    return peer == 0 ? ncclSuccess
                     : fail(ncclInvalidArgument, "%s: peer %d of a communicator of 1 rank", func,
                            peer);
}

ncclResult_t queue(const char *what, cudaStream_t s, std::function<void()> run)
{
    cudaError_t e = dat_emu::enqueue(s, std::move(run));
    return e == cudaSuccess ? ncclSuccess
                            : fail(ncclUnhandledCudaError, "%s: %s", what, cudaGetErrorString(e));
}

/* Pairs the i-th send with the i-th receive of each communicator into
 * copies; an unpaired one or a size mismatch is an error, nothing queued. */
ncclResult_t match(const std::vector<p2p> &ops, std::vector<p2p> *copies)
{
    std::vector<bool> used(ops.size(), false);
    for (size_t i = 0; i < ops.size(); ++i) {
        if (!ops[i].is_send)
            continue;
        size_t j = 0;
        while (j < ops.size() && (used[j] || ops[j].is_send || ops[j].comm != ops[i].comm))
            ++j;
        if (j == ops.size())
            return fail(ncclInvalidUsage, "ncclGroupEnd: a send of %zu bytes to self has no "
                        "matching receive", ops[i].bytes);
        if (ops[j].bytes != ops[i].bytes)
            return fail(ncclInvalidUsage, "ncclGroupEnd: a send of %zu bytes to self meets a "
                        "receive of %zu", ops[i].bytes, ops[j].bytes);
        used[i] = used[j] = true;
        /* the receive's stream runs the copy, where its data is awaited */
        copies->push_back({ops[j].comm, ops[j].stream, false, ops[i].src, ops[j].dst,
                           ops[j].bytes});
    }
    for (size_t j = 0; j < ops.size(); ++j)
        if (!used[j])
            return fail(ncclInvalidUsage, "ncclGroupEnd: a receive of %zu bytes from self has "
                        "no matching send", ops[j].bytes);
    return ncclSuccess;
}

/* Queues the closed group's work, or returns the error of its first failed
 * call (then nothing of it is queued, as NCCL aborts the group). */
ncclResult_t end_group()
{
    group g = std::move(open_group);
    open_group = group();
    if (g.error != ncclSuccess)
        return g.error;
    std::vector<p2p> copies;
    ncclResult_t r = match(g.p2ps, &copies);
    for (size_t i = 0; r == ncclSuccess && i < g.collectives.size(); ++i)
        r = queue("ncclGroupEnd", g.collectives[i].stream, std::move(g.collectives[i].run));
    for (size_t i = 0; r == ncclSuccess && i < copies.size(); ++i) {
        const p2p c = copies[i];
        if (c.bytes > 0)
            r = queue("ncclGroupEnd", c.stream, [c]() { memmove(c.dst, c.src, c.bytes); });
    }
    return r;
}

/* A collective of one rank: dst = src, queued with the open group or, out of
 * one, at once. */
ncclResult_t copy_collective(cudaStream_t s, const void *src, void *dst, size_t bytes)
{
    if (bytes > 0 && src != dst)
        open_group.collectives.push_back({s, [=]() { memmove(dst, src, bytes); }});
    return open_group.depth > 0 ? ncclSuccess : end_group();
}

ncclResult_t add_p2p(const p2p &op)
{
    open_group.p2ps.push_back(op);
    return open_group.depth > 0 ? ncclSuccess : end_group();
}

/* What a config must hold: NCCL_CONFIG_INITIALIZER's header, and a blocking
 * mode of 0, 1 or undefined. */
ncclResult_t check_config(const ncclConfig_t *config)
{
    if (!config)
        return ncclSuccess;
    if (config->size != sizeof(ncclConfig_t) || config->magic != 0xcafebeef)
        return fail(ncclInvalidArgument, "ncclCommInitRankConfig: the config was not "
                    "initialized with NCCL_CONFIG_INITIALIZER");
    if (config->blocking != NCCL_CONFIG_UNDEF_INT && config->blocking != 0 &&
        config->blocking != 1)
        return fail(ncclInvalidArgument, "ncclCommInitRankConfig: blocking %d",
                    config->blocking);
    return ncclSuccess;
}

ncclResult_t release(const char *func, ncclComm_t comm)
{
    std::lock_guard<std::mutex> g(comms_lock);
    if (!comm || !comms.erase(comm))
        return fail(ncclInvalidArgument, "%s: invalid communicator %p", func, (void *)comm);
    delete comm;
    return ncclSuccess;
}

} // namespace

extern "C" {

ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId)
{
    if (!uniqueId)
        return fail(ncclInvalidArgument, "ncclGetUniqueId: NULL id");
    std::random_device rd;
    for (char &c : uniqueId->internal)
        c = (char)rd();
    return ncclSuccess;
}

/* The id is not looked at: with one rank there is no one to meet. */
ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank,
                                    ncclConfig_t *config)
{
    (void)commId;
    if (!comm)
        return fail(ncclInvalidArgument, "ncclCommInitRankConfig: NULL comm");
    *comm = nullptr;
    ncclResult_t r = check_config(config);
    if (r != ncclSuccess)
        return r;
    if (nranks != 1)
        return fail(ncclInvalidArgument, "ncclCommInitRankConfig: %d ranks, but the CUDA "
                    "emulation's NCCL has communicators of 1 rank only", nranks);
    if (rank != 0)
        return fail(ncclInvalidArgument, "ncclCommInitRankConfig: rank %d of 1", rank);
    ncclComm *c = new ncclComm();
    std::lock_guard<std::mutex> g(comms_lock);
    comms.insert(c);
    *comm = c;
    return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm)
{
    ncclResult_t r = check_comm("ncclCommFinalize", comm);
    if (r == ncclSuccess)
        comm->finalized = true;
    return r;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) { return release("ncclCommDestroy", comm); }

/* Nothing is ever pending, so aborting is destroying. */
ncclResult_t ncclCommAbort(ncclComm_t comm) { return release("ncclCommAbort", comm); }

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError)
{
    if (!comm || !alive(comm) || !asyncError)
        return fail(ncclInvalidArgument, "ncclCommGetAsyncError: invalid communicator %p or "
                    "NULL result", (void *)comm);
    *asyncError = ncclSuccess;
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t result)
{
    switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError:
        return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError:
        return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError:
        return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    case ncclNumResults: break;
    }
    return "unknown result code";
}

/* This thread's last message, whatever the communicator (NCCL keeps one). */
const char *ncclGetLastError(ncclComm_t comm)
{
    (void)comm;
    return last_error;
}

/* With one rank, every reduction of one value is that value. */
ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream)
{
    size_t bytes;
    ncclResult_t r = check_data("ncclAllReduce", comm, count, datatype, sendbuff, recvbuff, &bytes);
    if (r == ncclSuccess && (op < ncclSum || op >= ncclNumOps))
        r = fail(ncclInvalidArgument, "ncclAllReduce: reduction %d", (int)op);
    return r == ncclSuccess ? copy_collective(stream, sendbuff, recvbuff, bytes) : r;
}

ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount,
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream)
{
    size_t bytes;
    ncclResult_t r =
        check_data("ncclAllGather", comm, sendcount, datatype, sendbuff, recvbuff, &bytes);
    return r == ncclSuccess ? copy_collective(stream, sendbuff, recvbuff, bytes) : r;
}

ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, int root, ncclComm_t comm,
                           cudaStream_t stream)
{
    size_t bytes;
    ncclResult_t r = check_data("ncclBroadcast", comm, count, datatype, sendbuff, recvbuff, &bytes);
    if (r == ncclSuccess && root != 0)
        r = fail(ncclInvalidArgument, "ncclBroadcast: root %d of a communicator of 1 rank", root);
    return r == ncclSuccess ? copy_collective(stream, sendbuff, recvbuff, bytes) : r;
}

ncclResult_t ncclSend(const void *sendbuff, size_t count, ncclDataType_t datatype, int peer,
                      ncclComm_t comm, cudaStream_t stream)
{
    size_t bytes;
    ncclResult_t r = check_data("ncclSend", comm, count, datatype, sendbuff, sendbuff, &bytes);
    if (r == ncclSuccess)
        r = check_peer("ncclSend", peer);
    return r == ncclSuccess ? add_p2p({comm, stream, true, sendbuff, nullptr, bytes}) : r;
}

ncclResult_t ncclRecv(void *recvbuff, size_t count, ncclDataType_t datatype, int peer,
                      ncclComm_t comm, cudaStream_t stream)
{
    size_t bytes;
    ncclResult_t r = check_data("ncclRecv", comm, count, datatype, recvbuff, recvbuff, &bytes);
    if (r == ncclSuccess)
        r = check_peer("ncclRecv", peer);
    return r == ncclSuccess ? add_p2p({comm, stream, false, nullptr, recvbuff, bytes}) : r;
}

ncclResult_t ncclGroupStart(void)
{
    ++open_group.depth;
    return ncclSuccess;
}

ncclResult_t ncclGroupEnd(void)
{
    if (open_group.depth == 0)
        return fail(ncclInvalidUsage, "ncclGroupEnd: no ncclGroupStart to end");
    return --open_group.depth > 0 ? ncclSuccess : end_group();
}

} /* extern "C" */
