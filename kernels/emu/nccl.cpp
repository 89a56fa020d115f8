/*
 * NCCL emulated on the CPU (nccl.h), for communicators of one rank or of
 * several processes, one rank each.
 *
 * The work of every call is queued on the call's stream with
 * dat_emu::enqueue, so it runs in stream order and a capture records it (a
 * replay exchanges again). With one rank an all-reduce, all-gather or
 * broadcast is a copy and the only peer of a send is the rank itself. With
 * several, each collective, and each group's sends and receives between
 * ranks, is one exchange of bytes among the ranks (rendezvous.h), run when
 * the stream reaches it: an all-reduce adds the ranks' values in rank order,
 * so its result is the same bits on every rank.
 *
 * Calls between ncclGroupStart and ncclGroupEnd (per thread, nested) are
 * collected and queued at the outermost ncclGroupEnd; a call outside a group
 * is a group of its own. A send to the rank itself is matched with its
 * receive at the group's end (an unmatched one is an error, not NCCL's hang);
 * sends and receives between ranks are matched when they run, the k-th send
 * from j to r with the k-th receive of r from j, and a mismatch becomes the
 * communicator's asynchronous error (ncclCommGetAsyncError). Limits of the
 * emulation: every rank enters each group that sends or receives between
 * ranks (as libdat's all-gather and all-to-all do), on one stream per group;
 * the reductions of more than one rank take integer and float32 / float64
 * values, not the 16- and 8-bit floats. Every call completes before it
 * returns: ncclInProgress is never returned, even for a non-blocking
 * communicator.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "emu.h"
#include "nccl.h"
#include "rendezvous.h"

using dat_emu::bytes;

struct ncclComm {
    int nranks = 1, rank = 0;
    std::unique_ptr<dat_emu::rendezvous> meet;
    bool finalized = false;
    ncclResult_t async = ncclSuccess; /* the first failure of queued work */
    std::string async_message;
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
    int peer;
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

/* A failure of queued work: the communicator's asynchronous error, as a
 * failed kernel of NCCL's is. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void fail_async(ncclComm *c, ncclResult_t r, const char *fmt, ...)
{
    if (c->async != ncclSuccess)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->async = r;
    c->async_message = msg;
    snprintf(last_error, sizeof last_error, "%s", msg);
}

/* Rank c->rank's part of an exchange; false after a failure (nothing moves). */
bool meet(ncclComm *c, const bytes &mine, std::vector<bytes> *all)
{
    if (c->async != ncclSuccess)
        return false;
    std::string why;
    if (c->meet->exchange(mine, all, &why))
        return true;
    fail_async(c, ncclRemoteError, "%s", why.c_str());
    return false;
}

bytes bytes_of(const void *p, size_t n)
{
    const char *b = (const char *)p;
    return n ? bytes(b, b + n) : bytes();
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

ncclResult_t check_peer(const char *func, ncclComm_t comm, int peer)
{
    return peer >= 0 && peer < comm->nranks
               ? ncclSuccess
               : fail(ncclInvalidArgument, "%s: peer %d of a communicator of %d rank(s)", func,
                      peer, comm->nranks);
}

ncclResult_t queue(const char *what, cudaStream_t s, std::function<void()> run)
{
    cudaError_t e = dat_emu::enqueue(s, std::move(run), {"NCCL", 0, what, ""});
    return e == cudaSuccess ? ncclSuccess
                            : fail(ncclUnhandledCudaError, "%s: %s", what, cudaGetErrorString(e));
}

/* out[i] = all[0][i] op all[1][i] op ... in rank order. */
template <typename T>
void reduce_as(void *out, const std::vector<bytes> &all, size_t count, ncclRedOp_t op)
{
    for (size_t i = 0; i < count; ++i) {
        T acc, v;
        memcpy(&acc, all[0].data() + i * sizeof(T), sizeof(T));
        for (size_t j = 1; j < all.size(); ++j) {
            memcpy(&v, all[j].data() + i * sizeof(T), sizeof(T));
            switch (op) {
            case ncclProd: acc = (T)(acc * v); break;
            case ncclMax: acc = v > acc ? v : acc; break;
            case ncclMin: acc = v < acc ? v : acc; break;
            default: acc = (T)(acc + v); break;
            }
        }
        if (op == ncclAvg)
            acc = (T)(acc / (T)all.size());
        memcpy((char *)out + i * sizeof(T), &acc, sizeof(T));
    }
}

/* Whether the emulation reduces values of type t over several ranks. */
bool reducible(ncclDataType_t t)
{
    return t != ncclFloat16 && t != ncclBfloat16 && t != ncclFloat8e4m3 && t != ncclFloat8e5m2;
}

void reduce_into(void *out, const std::vector<bytes> &all, size_t count, ncclDataType_t t,
                 ncclRedOp_t op)
{
    switch (t) {
    case ncclInt8: reduce_as<int8_t>(out, all, count, op); break;
    case ncclUint8: reduce_as<uint8_t>(out, all, count, op); break;
    case ncclInt32: reduce_as<int32_t>(out, all, count, op); break;
    case ncclUint32: reduce_as<uint32_t>(out, all, count, op); break;
    case ncclInt64: reduce_as<int64_t>(out, all, count, op); break;
    case ncclUint64: reduce_as<uint64_t>(out, all, count, op); break;
    case ncclFloat64: reduce_as<double>(out, all, count, op); break;
    default: reduce_as<float>(out, all, count, op); break;
    }
}

/* The sends of one rank to the others, as bytes: per send its peer, its size
 * and its data, in call order. */
bytes pack_sends(const std::vector<p2p> &ops, int rank)
{
    bytes out;
    for (const p2p &o : ops) {
        if (!o.is_send || o.peer == rank)
            continue;
        int32_t peer = o.peer;
        uint64_t n = o.bytes;
        out.insert(out.end(), (const char *)&peer, (const char *)&peer + sizeof peer);
        out.insert(out.end(), (const char *)&n, (const char *)&n + sizeof n);
        out.insert(out.end(), (const char *)o.src, (const char *)o.src + o.bytes);
    }
    return out;
}

/* The receives of rank c->rank from peer j, served from j's packed sends in
 * order; a count or size that does not match is the communicator's error. */
void unpack_from(ncclComm *c, int j, const bytes &sent, const std::vector<p2p> &ops)
{
    size_t pos = 0, k = 0;
    for (const p2p &o : ops) {
        if (o.is_send || o.peer != j)
            continue;
        for (;;) { /* the next send of j to this rank */
            if (pos + 12 > sent.size()) {
                fail_async(c, ncclInvalidUsage, "rank %d: receive %zu from rank %d has no "
                           "matching send", c->rank, k, j);
                return;
            }
            int32_t peer;
            uint64_t n;
            memcpy(&peer, sent.data() + pos, 4);
            memcpy(&n, sent.data() + pos + 4, 8);
            pos += 12;
            if (peer != c->rank) {
                pos += n;
                continue;
            }
            if (n != o.bytes) {
                fail_async(c, ncclInvalidUsage, "rank %d: a receive of %zu bytes from rank %d "
                           "meets a send of %llu", c->rank, o.bytes, j, (unsigned long long)n);
                return;
            }
            memcpy(o.dst, sent.data() + pos, o.bytes);
            pos += n;
            break;
        }
        ++k;
    }
}

/* Pairs the i-th send to self with the i-th receive from self of each
 * communicator into copies; an unpaired one or a size mismatch is an error,
 * nothing queued. */
ncclResult_t match_self(const std::vector<p2p> &ops, std::vector<p2p> *copies)
{
    std::vector<bool> used(ops.size(), false);
    auto self = [](const p2p &o) { return o.peer == o.comm->rank; };
    for (size_t i = 0; i < ops.size(); ++i) {
        if (!ops[i].is_send || !self(ops[i]))
            continue;
        size_t j = 0;
        while (j < ops.size() &&
               (used[j] || ops[j].is_send || !self(ops[j]) || ops[j].comm != ops[i].comm))
            ++j;
        if (j == ops.size())
            return fail(ncclInvalidUsage, "ncclGroupEnd: a send of %zu bytes to self has no "
                        "matching receive", ops[i].bytes);
        if (ops[j].bytes != ops[i].bytes)
            return fail(ncclInvalidUsage, "ncclGroupEnd: a send of %zu bytes to self meets a "
                        "receive of %zu", ops[i].bytes, ops[j].bytes);
        used[i] = used[j] = true;
        /* the receive's stream runs the copy, where its data is awaited */
        copies->push_back(ops[j]);
        copies->back().src = ops[i].src;
    }
    for (size_t j = 0; j < ops.size(); ++j)
        if (!used[j] && self(ops[j]))
            return fail(ncclInvalidUsage, "ncclGroupEnd: a receive of %zu bytes from self has "
                        "no matching send", ops[j].bytes);
    return ncclSuccess;
}

/* The sends and receives between ranks of one communicator in the group: one
 * exchange, on the stream of the first (all must share it). */
ncclResult_t queue_between_ranks(const std::vector<p2p> &all_ops, ncclComm *c)
{
    std::vector<p2p> ops;
    for (const p2p &o : all_ops)
        if (o.comm == c && o.peer != c->rank)
            ops.push_back(o);
    if (ops.empty())
        return ncclSuccess;
    for (const p2p &o : ops)
        if (o.stream != ops[0].stream)
            return fail(ncclInvalidUsage, "ncclGroupEnd: the emulation takes a group's sends "
                        "and receives between ranks on one stream");
    return queue("ncclGroupEnd", ops[0].stream, [c, ops]() {
        std::vector<bytes> all;
        if (!meet(c, pack_sends(ops, c->rank), &all))
            return;
        for (int j = 0; j < c->nranks; ++j)
            if (j != c->rank)
                unpack_from(c, j, all[(size_t)j], ops);
    });
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
    ncclResult_t r = match_self(g.p2ps, &copies);
    for (size_t i = 0; r == ncclSuccess && i < g.collectives.size(); ++i)
        r = queue("ncclGroupEnd", g.collectives[i].stream, std::move(g.collectives[i].run));
    for (size_t i = 0; r == ncclSuccess && i < copies.size(); ++i) {
        const p2p c = copies[i];
        if (c.bytes > 0)
            r = queue("ncclGroupEnd", c.stream, [c]() { memmove(c.dst, c.src, c.bytes); });
    }
    std::vector<ncclComm *> seen;
    for (const p2p &o : g.p2ps) {
        if (r != ncclSuccess)
            break;
        bool first = true;
        for (ncclComm *c : seen)
            first = first && c != o.comm;
        if (first) {
            seen.push_back(o.comm);
            r = queue_between_ranks(g.p2ps, o.comm);
        }
    }
    return r;
}

/* Adds a collective to the open group, or queues it at once out of one. */
ncclResult_t add_collective(cudaStream_t s, std::function<void()> run)
{
    open_group.collectives.push_back({s, std::move(run)});
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

/* The ranks meet through the id (rendezvous.h); they must agree on their
 * number. */
ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank,
                                    ncclConfig_t *config)
{
    if (!comm)
        return fail(ncclInvalidArgument, "ncclCommInitRankConfig: NULL comm");
    *comm = nullptr;
    ncclResult_t r = check_config(config);
    if (r != ncclSuccess)
        return r;
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return fail(ncclInvalidArgument, "ncclCommInitRankConfig: rank %d of %d", rank, nranks);
    std::unique_ptr<ncclComm> c(new ncclComm());
    c->nranks = nranks;
    c->rank = rank;
    c->meet.reset(new dat_emu::rendezvous(commId.internal, sizeof commId.internal, nranks, rank));
    std::vector<bytes> all;
    if (!meet(c.get(), bytes_of(&nranks, sizeof nranks), &all))
        return fail(ncclSystemError, "ncclCommInitRankConfig: %s", c->async_message.c_str());
    for (int j = 0; j < nranks; ++j) {
        int theirs;
        memcpy(&theirs, all[(size_t)j].data(), sizeof theirs);
        if (theirs != nranks)
            return fail(ncclInvalidUsage, "ncclCommInitRankConfig: rank %d says %d ranks, rank "
                        "%d says %d", rank, nranks, j, theirs);
    }
    std::lock_guard<std::mutex> g(comms_lock);
    comms.insert(c.get());
    *comm = c.release();
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
    *asyncError = comm->async;
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

/* The communicator's asynchronous failure, else this thread's last message. */
const char *ncclGetLastError(ncclComm_t comm)
{
    if (comm && alive(comm) && comm->async != ncclSuccess)
        return comm->async_message.c_str();
    return last_error;
}

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream)
{
    size_t bytes;
    ncclResult_t r = check_data("ncclAllReduce", comm, count, datatype, sendbuff, recvbuff, &bytes);
    if (r == ncclSuccess && (op < ncclSum || op >= ncclNumOps))
        r = fail(ncclInvalidArgument, "ncclAllReduce: reduction %d", (int)op);
    if (r == ncclSuccess && comm->nranks > 1 && !reducible(datatype))
        r = fail(ncclInvalidArgument, "ncclAllReduce: the emulation reduces no data type %d "
                 "over several ranks", (int)datatype);
    if (r != ncclSuccess)
        return r;
    return add_collective(stream, [=]() {
        std::vector<dat_emu::bytes> all;
        if (comm->nranks == 1) /* every reduction of one value is that value */
            memmove(recvbuff, sendbuff, bytes);
        else if (meet(comm, bytes_of(sendbuff, bytes), &all))
            reduce_into(recvbuff, all, count, datatype, op);
    });
}

ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount,
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream)
{
    size_t bytes;
    ncclResult_t r =
        check_data("ncclAllGather", comm, sendcount, datatype, sendbuff, recvbuff, &bytes);
    if (r != ncclSuccess)
        return r;
    return add_collective(stream, [=]() {
        std::vector<dat_emu::bytes> all;
        if (!meet(comm, bytes_of(sendbuff, bytes), &all))
            return;
        for (size_t j = 0; j < all.size(); ++j)
            memmove((char *)recvbuff + j * bytes, all[j].data(), bytes);
    });
}

ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, int root, ncclComm_t comm,
                           cudaStream_t stream)
{
    size_t bytes;
    ncclResult_t r = check_data("ncclBroadcast", comm, count, datatype, sendbuff, recvbuff, &bytes);
    if (r == ncclSuccess && (root < 0 || root >= comm->nranks))
        r = fail(ncclInvalidArgument, "ncclBroadcast: root %d of a communicator of %d rank(s)",
                 root, comm->nranks);
    if (r != ncclSuccess)
        return r;
    return add_collective(stream, [=]() {
        std::vector<dat_emu::bytes> all; /* only the root's part carries data */
        if (meet(comm, comm->rank == root ? bytes_of(sendbuff, bytes) : dat_emu::bytes(), &all))
            memmove(recvbuff, all[(size_t)root].data(), bytes);
    });
}

ncclResult_t ncclSend(const void *sendbuff, size_t count, ncclDataType_t datatype, int peer,
                      ncclComm_t comm, cudaStream_t stream)
{
    size_t bytes;
    ncclResult_t r = check_data("ncclSend", comm, count, datatype, sendbuff, sendbuff, &bytes);
    if (r == ncclSuccess)
        r = check_peer("ncclSend", comm, peer);
    return r == ncclSuccess ? add_p2p({comm, stream, true, peer, sendbuff, nullptr, bytes}) : r;
}

ncclResult_t ncclRecv(void *recvbuff, size_t count, ncclDataType_t datatype, int peer,
                      ncclComm_t comm, cudaStream_t stream)
{
    size_t bytes;
    ncclResult_t r = check_data("ncclRecv", comm, count, datatype, recvbuff, recvbuff, &bytes);
    if (r == ncclSuccess)
        r = check_peer("ncclRecv", comm, peer);
    return r == ncclSuccess ? add_p2p({comm, stream, false, peer, nullptr, recvbuff, bytes}) : r;
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
