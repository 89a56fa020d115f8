/*
 * The MPI communicator: collectives from nonblocking point-to-point messages,
 * polled with MPI_Testall against a deadline (OpenMPI's nonblocking
 * collectives are much slower than its blocking ones, and blocking calls
 * cannot time out). Messages above 1 GiB go in pieces (MPI counts are int).
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ctx.h"
#include "../core/error.h"
#include "comm.h"
#include "libdat/dat_mpi.h"

#define PIECE ((size_t)1 << 30)
/* Polls before the waiting thread starts yielding its core. */
#define SPIN_POLLS 2000
/* Tags: header, first and second data phase; a collective's tags repeat only
 * after 8000 collectives, long after its messages are gone. */
#define TAG_SPAN 8000

typedef struct mpi_impl {
    MPI_Comm comm;
    MPI_Request *reqs;
    size_t nreq, cap;
    float *rbuf; /* reduce-scatter contributions */
    size_t rbuf_len;
} mpi_impl;

static mpi_impl *impl(dat_comm *c)
{
    return c->impl;
}

static int tag(const dat_comm *c, int phase)
{
    return (int)((c->seq % TAG_SPAN) * 3) + phase;
}

static dat_status mpi_error(const char *func, const char *what, int rc)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "MPI error %d", rc);
    return dat_error(DAT_ERR_COMM, func, "%s failed: %s", what, msg);
}

static dat_status reserve(dat_comm *c, size_t n)
{
    mpi_impl *m = impl(c);
    if (m->nreq + n <= m->cap)
        return DAT_OK;
    size_t cap = (m->nreq + n) * 2;
    MPI_Request *r = realloc(m->reqs, cap * sizeof *r);
    if (!r)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_comm_mpi", "cannot allocate %zu requests",
                         cap);
    m->reqs = r;
    m->cap = cap;
    return DAT_OK;
}

/* Posts a send or receive of bytes, in pieces of at most 1 GiB. */
static dat_status post(dat_comm *c, int send, void *buf, size_t bytes, int peer, int tg)
{
    mpi_impl *m = impl(c);
    DAT_TRY(reserve(c, bytes / PIECE + 1));
    size_t off = 0;
    do {
        size_t len = bytes - off < PIECE ? bytes - off : PIECE;
        int rc = send ? MPI_Isend((uint8_t *)buf + off, (int)len, MPI_BYTE, peer, tg, m->comm,
                                  &m->reqs[m->nreq])
                      : MPI_Irecv((uint8_t *)buf + off, (int)len, MPI_BYTE, peer, tg, m->comm,
                                  &m->reqs[m->nreq]);
        if (rc != MPI_SUCCESS)
            return mpi_error("dat_comm_mpi", send ? "MPI_Isend" : "MPI_Irecv", rc);
        m->nreq++;
        off += len;
    } while (off < bytes);
    return DAT_OK;
}

/* Drops the posted requests after a failure: receives are cancelled first. */
static void drop_requests(mpi_impl *m)
{
    for (size_t i = 0; i < m->nreq; ++i) {
        if (m->reqs[i] == MPI_REQUEST_NULL)
            continue;
        MPI_Cancel(&m->reqs[i]);
        MPI_Request_free(&m->reqs[i]);
    }
    m->nreq = 0;
}

/* Waits for every posted request, or until the deadline. */
static dat_status wait_posted(dat_comm *c, const char *what)
{
    mpi_impl *m = impl(c);
    double deadline = dat_now() + c->timeout_s;
    for (long polls = 0;; ++polls) {
        int done = 0;
        int rc = MPI_Testall((int)m->nreq, m->reqs, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) {
            dat_status s = mpi_error("dat_comm_mpi", what, rc);
            drop_requests(m);
            return s;
        }
        if (done) {
            m->nreq = 0;
            return DAT_OK;
        }
        if (dat_now() > deadline) {
            drop_requests(m);
            return dat_error(DAT_ERR_TIMEOUT, "dat_comm_mpi",
                             "rank %d of %d: %s did not complete within %g s: a peer died, "
                             "hangs, or called another collective", c->rank, c->size, what,
                             c->timeout_s);
        }
        if (polls > SPIN_POLLS)
            sched_yield();
    }
}

static void mpi_destroy(dat_comm *c)
{
    mpi_impl *m = impl(c);
    if (!m)
        return;
    drop_requests(m);
    if (m->comm != MPI_COMM_NULL)
        MPI_Comm_free(&m->comm);
    free(m->reqs);
    free(m->rbuf);
    free(m);
}

static dat_status mpi_exchange_header(dat_comm *c, const int64_t *mine, int64_t *all)
{
    size_t bytes = DAT_HDR_LEN * sizeof *all;
    memcpy(all + (size_t)c->rank * DAT_HDR_LEN, mine, bytes);
    for (int j = 0; j < c->size; ++j) {
        if (j == c->rank)
            continue;
        DAT_TRY(post(c, 0, all + (size_t)j * DAT_HDR_LEN, bytes, j, tag(c, 0)));
        DAT_TRY(post(c, 1, all + (size_t)c->rank * DAT_HDR_LEN, bytes, j, tag(c, 0)));
    }
    return wait_posted(c, "the header exchange");
}

/* The serial sum in rank order, ((x_0 + x_1) + x_2) + ..., of this rank's shard:
 * x_j in slot j of rbuf, its own x_r where it lies in `out` (slot r unused). Blocks
 * of a few KiB keep the partial sums in L1 while each x_j streams through once. */
static void shard_sum(const dat_comm *c, const float *rbuf, float *out, size_t nr,
                      dat_reduction op)
{
    enum { BLOCK = 2048 };
    int size = c->size, r = c->rank, nt = dat_host_threads(c->ctx);
    float inv = op == DAT_REDUCE_MEAN ? 1.0f / (float)size : 1.0f; /* x * 1 is x exactly */
    size_t nblocks = (nr + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(nr >= 65536 ? nt : 1) schedule(static)
    for (size_t b = 0; b < nblocks; ++b) {
        size_t lo = b * BLOCK, len = nr - lo < BLOCK ? nr - lo : BLOCK;
        float acc[BLOCK];
        const float *x0 = r == 0 ? out + lo : rbuf + lo;
        for (size_t i = 0; i < len; ++i)
            acc[i] = x0[i];
        for (int j = 1; j < size; ++j) {
            const float *xj = j == r ? out + lo : rbuf + (size_t)j * nr + lo;
            for (size_t i = 0; i < len; ++i)
                acc[i] += xj[i];
        }
        for (size_t i = 0; i < len; ++i)
            out[lo + i] = acc[i] * inv;
    }
}

/* Reduce-scatter then all-gather, shard j = [floor(jn/M), floor((j+1)n/M)). */
static dat_status mpi_allreduce(dat_comm *c, float *buf, size_t n, dat_reduction op)
{
    mpi_impl *m = impl(c);
    int size = c->size, r = c->rank;
    size_t lo = dat_comm_shard_lo(n, r, size), nr = dat_comm_shard_lo(n, r + 1, size) - lo;
    if (nr * (size_t)size > m->rbuf_len) {
        float *p = realloc(m->rbuf, nr * (size_t)size * sizeof *p);
        if (!p)
            return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_comm_mpi",
                             "cannot allocate %zu floats for the reduce-scatter",
                             nr * (size_t)size);
        m->rbuf = p;
        m->rbuf_len = nr * (size_t)size;
    }
    for (int j = 0; j < size; ++j) {
        if (j == r)
            continue;
        size_t jlo = dat_comm_shard_lo(n, j, size), jn = dat_comm_shard_lo(n, j + 1, size) - jlo;
        DAT_TRY(post(c, 0, m->rbuf + (size_t)j * nr, nr * sizeof(float), j, tag(c, 1)));
        DAT_TRY(post(c, 1, buf + jlo, jn * sizeof(float), j, tag(c, 1)));
    }
    DAT_TRY(wait_posted(c, "the all-reduce's reduce-scatter"));
    shard_sum(c, m->rbuf, buf + lo, nr, op);
    for (int j = 0; j < size; ++j) {
        if (j == r)
            continue;
        size_t jlo = dat_comm_shard_lo(n, j, size), jn = dat_comm_shard_lo(n, j + 1, size) - jlo;
        DAT_TRY(post(c, 0, buf + jlo, jn * sizeof(float), j, tag(c, 2)));
        DAT_TRY(post(c, 1, buf + lo, nr * sizeof(float), j, tag(c, 2)));
    }
    return wait_posted(c, "the all-reduce's all-gather");
}

static dat_status mpi_broadcast(dat_comm *c, void *buf, size_t bytes, int root)
{
    mpi_impl *m = impl(c);
    size_t off = 0;
    do {
        size_t len = bytes - off < PIECE ? bytes - off : PIECE;
        DAT_TRY(reserve(c, 1));
        int rc = MPI_Ibcast((uint8_t *)buf + off, (int)len, MPI_BYTE, root, m->comm,
                            &m->reqs[m->nreq]);
        if (rc != MPI_SUCCESS)
            return mpi_error("dat_comm_mpi", "MPI_Ibcast", rc);
        m->nreq++;
        off += len;
    } while (off < bytes);
    return wait_posted(c, "the broadcast");
}

static dat_status mpi_allgatherv(dat_comm *c, void *buf, const size_t *counts,
                                 const size_t *displs)
{
    uint8_t *b = buf;
    int r = c->rank;
    for (int j = 0; j < c->size; ++j) {
        if (j == r)
            continue;
        DAT_TRY(post(c, 0, b + displs[j], counts[j], j, tag(c, 2)));
        DAT_TRY(post(c, 1, b + displs[r], counts[r], j, tag(c, 2)));
    }
    return wait_posted(c, "the all-gather");
}

static dat_status mpi_alltoallv(dat_comm *c, const void *send, const size_t *scounts,
                                const size_t *sdispls, void *recv, const size_t *rcounts,
                                const size_t *rdispls)
{
    int r = c->rank;
    for (int j = 0; j < c->size; ++j) {
        if (j == r)
            continue;
        DAT_TRY(post(c, 0, (uint8_t *)recv + rdispls[j], rcounts[j], j, tag(c, 1)));
        DAT_TRY(post(c, 1, (uint8_t *)send + sdispls[j], scounts[j], j, tag(c, 1)));
    }
    memcpy((uint8_t *)recv + rdispls[r], (const uint8_t *)send + sdispls[r], scounts[r]);
    return wait_posted(c, "the all-to-all");
}

static void mpi_abort(dat_comm *c)
{
    drop_requests(impl(c));
}

static const dat_comm_ops mpi_ops = {
    .name = "mpi",
    .device_buffers = 0,
    .destroy = mpi_destroy,
    .exchange_header = mpi_exchange_header,
    .allreduce = mpi_allreduce,
    .broadcast = mpi_broadcast,
    .allgatherv = mpi_allgatherv,
    .alltoallv = mpi_alltoallv,
    .abort = mpi_abort,
};

/* Waits for one request (an idup or a bcast) with a deadline. */
static dat_status wait_one(const char *func, MPI_Request *req, double timeout_s,
                           const char *what)
{
    double deadline = dat_now() + timeout_s;
    for (long polls = 0;; ++polls) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_error(func, what, rc);
        if (done)
            return DAT_OK;
        if (dat_now() > deadline)
            return dat_error(DAT_ERR_TIMEOUT, func, "%s did not complete within %g s", what,
                             timeout_s);
        if (polls > SPIN_POLLS)
            sched_yield();
    }
}

static dat_status check_mpi(const char *func, MPI_Comm comm)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!inited || finalized)
        return dat_error(DAT_ERR_STATE, func, "MPI is %s", finalized ? "finalized"
                         : "not initialized: call MPI_Init first");
    if (comm == MPI_COMM_NULL)
        return dat_error(DAT_ERR_INVALID_ARG, func, "comm is MPI_COMM_NULL");
    return DAT_OK;
}

dat_status dat_comm_create_mpi(dat_comm **out, dat_ctx *ctx, MPI_Comm comm,
                               const dat_comm_options *opts)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(ctx);
    dat_comm_options o;
    DAT_TRY(dat_comm_resolve_options(__func__, opts, &o));
    DAT_TRY(check_mpi(__func__, comm));
    mpi_impl *m = calloc(1, sizeof *m);
    if (!m)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "cannot allocate the MPI state");
    m->comm = MPI_COMM_NULL;
    MPI_Request req;
    int rc = MPI_Comm_idup(comm, &m->comm, &req);
    dat_status s = rc == MPI_SUCCESS ? wait_one(__func__, &req, o.timeout_s, "MPI_Comm_idup")
                                     : mpi_error(__func__, "MPI_Comm_idup", rc);
    int rank = 0, size = 0;
    if (s == DAT_OK && (rc = MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN)) != MPI_SUCCESS)
        s = mpi_error(__func__, "MPI_Comm_set_errhandler", rc);
    if (s == DAT_OK) {
        MPI_Comm_rank(m->comm, &rank);
        MPI_Comm_size(m->comm, &size);
        s = dat_comm_alloc(out, ctx, &mpi_ops, m, rank, size, o.timeout_s);
    }
    int level = MPI_THREAD_SINGLE;
    if (s == DAT_OK && MPI_Query_thread(&level) == MPI_SUCCESS)
        (*out)->threads_ok = level >= MPI_THREAD_SERIALIZED; /* one thread at a time */
    if (s != DAT_OK) {
        /* After a timed-out idup the new communicator may never exist. */
        if (m->comm != MPI_COMM_NULL && s != DAT_ERR_TIMEOUT)
            MPI_Comm_free(&m->comm);
        free(m);
    }
    return s;
}

dat_status dat_comm_unique_id_broadcast_mpi(dat_comm_id *id, int32_t root, MPI_Comm comm,
                                            double timeout_s)
{
    DAT_CHECK_NOT_NULL(id);
    DAT_TRY(check_mpi(__func__, comm));
    int size = 0;
    MPI_Comm_size(comm, &size);
    if (root < 0 || root >= size)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "root = %d is not a rank in [0, %d)",
                         (int)root, size);
    if (!(timeout_s > 0) || timeout_s > 1e9)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "timeout_s = %g must be in (0, 1e9] seconds", timeout_s);
    MPI_Request req;
    int rc = MPI_Ibcast(id, (int)sizeof *id, MPI_BYTE, root, comm, &req);
    if (rc != MPI_SUCCESS)
        return mpi_error(__func__, "MPI_Ibcast", rc);
    return wait_one(__func__, &req, timeout_s, "the broadcast of the unique id");
}

dat_status dat_comm_create_nccl_mpi(dat_comm **out, dat_ctx *ctx, MPI_Comm comm,
                                    const dat_comm_options *opts)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(ctx);
    dat_comm_options o;
    DAT_TRY(dat_comm_resolve_options(__func__, opts, &o));
    DAT_TRY(check_mpi(__func__, comm));
    int rank = 0, size = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    dat_comm_id id;
    memset(&id, 0, sizeof id);
    /* Rank 0's failure to make an id must reach the others: they would wait
     * for the broadcast otherwise. An all-zero id says "failed". */
    dat_status made = rank == 0 ? dat_comm_unique_id(&id) : DAT_OK;
    DAT_TRY(dat_comm_unique_id_broadcast_mpi(&id, 0, comm, o.timeout_s));
    if (made != DAT_OK)
        return made;
    static const dat_comm_id zero;
    if (memcmp(&id, &zero, sizeof id) == 0)
        return dat_error(DAT_ERR_COMM, __func__, "rank 0 could not make an NCCL unique id");
    return dat_comm_create_nccl(out, ctx, size, rank, &id, &o);
}
