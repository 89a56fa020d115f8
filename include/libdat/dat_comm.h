/**
 * @file dat_comm.h
 * @brief Communicators of M ranks and their collectives, quantized or not.
 *
 * Three kinds behind one handle: self (one rank, this header), MPI
 * (dat_mpi.h, which needs mpi.h) and NCCL (GPU buffers; created from a
 * 128-byte unique id that the host moves by MPI, a shared file or any
 * channel, as NCCL does).
 *
 * Every rank must make the same sequence of collective calls with matching
 * arguments. Each collective first exchanges a small header (operation,
 * element count, dtype, root, quantizer settings, step, local status) so a
 * mismatch or a rank whose local part failed gives every rank an error that
 * names the rank and the field, instead of a hang or corrupted data.
 *
 * **Failures and the timeout.** Waits for peers are bounded by
 * dat_comm_options::timeout_s (default DAT_COMM_DEFAULT_TIMEOUT = 60 s): a
 * rank that died or stopped calling collectives makes the others return
 * DAT_ERR_TIMEOUT; an error reported by MPI / NCCL gives DAT_ERR_COMM. After
 * either the communicator is broken: every later collective returns
 * DAT_ERR_STATE, and the host should destroy it (and usually end the job).
 *
 * **Tensors.** Tensors may belong to any context: a communicator of host
 * buffers (self, MPI) stages CUDA tensors through host memory, the NCCL one
 * stages CPU tensors through device memory. The quantized all-reduce encodes
 * and decodes where the quantizer computes (dat_quant.h) and stages only the
 * codes where the communicator moves another memory: with NCCL and a
 * quantizer computing on the communicator's GPU nothing goes through the host.
 *
 * **Statistics** (dat_comm_get_stats) count successful collectives, the time
 * spent in them (including quantization) and the payload bytes that this rank
 * hands to and takes from its peers, by these formulas (M ranks, this rank r;
 * the small headers are not counted; every count is 0 when M = 1):
 *  - all-reduce of n floats, split into M shards of n_j elements, shard j
 *    starting at element ⌊j·n/M⌋ (reduce-scatter, then all-gather):
 *    sent = received = 4·(n − n_r) + 4·(M − 1)·n_r;
 *  - broadcast of S bytes: the root sends (M − 1)·S, every other rank receives S;
 *  - all-gather of S bytes per rank: sent = received = (M − 1)·S;
 *  - one-sided quantized all-reduce of n elements: sent = received = (M − 1)·E(n),
 *    E as in dat_quant.h;
 *  - two-sided: the n elements form U = ⌈n/B⌉ buckets, shard j holds buckets
 *    ⌊j·U/M⌋ to ⌊(j+1)·U/M⌋ − 1, E_j its encoded bytes:
 *    sent = received = Σ_{j≠r} E_j + (M − 1)·E_r.
 *
 * "Data transmitted per iteration" (Table 4 of the DAT paper) is bytes_sent
 * per call, or E(n) per worker.
 */
#ifndef LIBDAT_DAT_COMM_H
#define LIBDAT_DAT_COMM_H

#include "dat_model.h"
#include "dat_quant.h"
#include "dat_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Opaque communicator. */
typedef struct dat_comm dat_comm;

/** @brief Default bound on each wait for peers, in seconds. */
#define DAT_COMM_DEFAULT_TIMEOUT 60.0

/** @brief Options of the MPI and NCCL communicators; fields are only ever appended. */
typedef struct dat_comm_options {
    uint32_t size;     /**< sizeof(dat_comm_options), set by dat_comm_options_init(). */
    double timeout_s;  /**< Bound on each wait for peers, > 0; default 60 s. */
} dat_comm_options;

/**
 * @brief Fills @p opts with the defaults and sets its size field.
 * @param[out] opts  the options to fill.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL.
 */
DAT_API dat_status dat_comm_options_init(dat_comm_options *opts);
/**
 * @brief dat_comm_options_init() for a caller's struct of @p size bytes (its sizeof): the library
 *        writes min(size, sizeof) bytes and records that count in size, nothing past them. The
 *        dat_comm_options_init() macro passes sizeof *(opts), so a program built against these
 *        headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] opts  the options to fill.
 * @param size  bytes at @p opts, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL or @p size < 4.
 */
DAT_API dat_status dat_comm_options_init_sized(dat_comm_options *opts, size_t size);
/** @brief Fills @p opts (see dat_comm_options_init_sized()). */
#define dat_comm_options_init(opts) dat_comm_options_init_sized((opts), sizeof *(opts))

/** @brief Algorithm of dat_comm_allreduce_quantized(). Values are fixed. */
typedef enum dat_quant_mode {
    /** Each rank quantizes its tensor, the codes are all-gathered, each rank
     *  decodes and averages (the ring all-reduce setting of the paper). */
    DAT_QUANT_ONE_SIDED = 0,
    /** The tensor is cut into M bucket-aligned shards; ranks exchange quantized
     *  shards all-to-all, rank j averages shard j and quantizes the average
     *  again, then the codes are all-gathered (the parameter-server setting:
     *  double quantization). */
    DAT_QUANT_TWO_SIDED = 1,
    DAT_QUANT_MODE_FORCE_32BIT = 0x7fffffff
} dat_quant_mode;

/** @brief Counters of a communicator; see the file comment for the byte formulas. */
typedef struct dat_comm_stats {
    uint32_t size;            /**< Set to sizeof(dat_comm_stats) before dat_comm_get_stats(). */
    uint64_t calls;           /**< Successful collectives. */
    uint64_t bytes_sent;      /**< Payload bytes this rank sent. */
    uint64_t bytes_received;  /**< Payload bytes this rank received. */
    double seconds;           /**< Wall time inside successful collectives. */
} dat_comm_stats;

/**
 * @brief Creates the communicator of one rank (rank 0 of 1): collectives are
 *        local, and the quantized all-reduce still quantizes and decodes, so a
 *        one-process run sees the same numerical effect as a distributed one.
 * @param[out] out  receives the communicator, owned by the caller and freed
 *                  with dat_comm_destroy() before @p ctx; NULL on failure.
 * @param ctx  the context whose threads quantize.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL arguments; DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_comm_create_self(dat_comm **out, dat_ctx *ctx);

/**
 * @brief Destroys a communicator. Not collective: each rank destroys its own.
 * @param comm  the communicator, or NULL (a no-op).
 */
DAT_API void dat_comm_destroy(dat_comm *comm);

/**
 * @brief Rank of this process, 0 .. size − 1.
 * @param comm  the communicator.
 * @param[out] rank  receives the rank.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_comm_rank(const dat_comm *comm, int32_t *rank);

/**
 * @brief Number of ranks M.
 * @param comm  the communicator.
 * @param[out] size  receives M.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_comm_size(const dat_comm *comm, int32_t *size);

/**
 * @brief In-place all-reduce of a float32 tensor; every rank ends with the
 *        same bits. Collective.
 * @param comm  the communicator.
 * @param t  float32 tensor, the same element count on every rank.
 * @param op  DAT_REDUCE_SUM or DAT_REDUCE_MEAN.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL arguments, a non-float32 tensor
 *         or a bad @p op; DAT_ERR_COMM if the ranks' element counts differ or a
 *         peer reported an error; DAT_ERR_TIMEOUT; DAT_ERR_STATE on a broken
 *         communicator.
 */
DAT_API dat_status dat_comm_allreduce(dat_comm *comm, dat_tensor *t, dat_reduction op);

/**
 * @brief Broadcast of a tensor (any dtype) from rank @p root. Collective.
 * @param comm  the communicator.
 * @param t  the root's data on the root; overwritten on the other ranks.
 * @param root  the sending rank, in [0, size).
 * @return DAT_OK; otherwise as dat_comm_allreduce(); DAT_ERR_INVALID_ARG for a root outside
 *         [0, size).
 */
DAT_API dat_status dat_comm_broadcast(dat_comm *comm, dat_tensor *t, int32_t root);

/**
 * @brief All-gather: @p out receives every rank's @p in, rank by rank. Collective.
 * @param comm  the communicator.
 * @param in  tensor of k elements (any dtype), the same k on every rank.
 * @param[out] out  tensor of the same dtype and M·k elements (any shape).
 * @return DAT_OK; otherwise as dat_comm_allreduce(); DAT_ERR_INVALID_ARG for a dtype or size mismatch.
 */
DAT_API dat_status dat_comm_allgather(dat_comm *comm, const dat_tensor *in, dat_tensor *out);

/**
 * @brief Quantized all-reduce (mean) of a float32 tensor, in place. Collective.
 *
 * Worker draws use the stream of (quantizer seed, communicator rank, step),
 * keyed by the seed of the quantizer's context; the second quantization of
 * the two-sided mode, done by the rank serving the shard, uses a separate
 * stream of the step with rank 0's seeds (quantizer's and context's), so its
 * bits do not depend on which rank serves an element, whatever seeds the
 * other ranks were given. Error feedback, if
 * the quantizer has it, applies to the worker quantization. Averaging decodes
 * the ranks' codes in rank order into the tensor, each times 1/M, adding
 * (so a mean that fits in float does not overflow): every rank ends with
 * identical bits.
 * @param comm  the communicator.
 * @param t  float32 tensor, the same element count on every rank.
 * @param q  quantizer; every rank must use the same bits, bucket size and norm.
 * @param mode  DAT_QUANT_ONE_SIDED or DAT_QUANT_TWO_SIDED.
 * @param step  the training step (all ranks the same).
 * @return DAT_OK; otherwise as dat_comm_allreduce(); DAT_ERR_NUMERIC on the rank whose input
 *         holds a NaN / Inf (the others get DAT_ERR_COMM naming that rank). A failed
 *         call applies nothing: the tensor keeps its values (but where the two-sided
 *         second quantization fails, its average overflowing float, on the serving
 *         rank's shard, which holds the average), and every rank's error-feedback
 *         residual of it is zeroed, so the ranks stay alike.
 */
DAT_API dat_status dat_comm_allreduce_quantized(dat_comm *comm, dat_tensor *t, dat_quantizer *q,
                                                dat_quant_mode mode, uint64_t step);

/**
 * @brief Steps 3, A3 and 4 of the paper's Algorithm 1 for a model. Collective.
 *
 * Replaces the model's flat gradient by its mean over the ranks, exactly
 * (dat_comm_allreduce, @p q NULL) or through the quantized all-reduce
 * (dat_comm_allreduce_quantized with @p q, @p mode and @p step). The buffer
 * is reduced in place (the quantizer works bucket by bucket), so no second
 * full copy of the gradient is made on the host. Every rank ends with
 * identical bits.
 * @param comm  the communicator.
 * @param model  the model whose gradient (dat_model_grads()) is reduced; the
 *               same architecture on every rank.
 * @param q  the quantizer, or NULL for the exact mean.
 * @param mode  DAT_QUANT_ONE_SIDED or DAT_QUANT_TWO_SIDED (ignored without @p q).
 * @param step  the training step (all ranks the same).
 * @return DAT_OK; otherwise as dat_comm_allreduce / dat_comm_allreduce_quantized.
 */
DAT_API dat_status dat_comm_allreduce_grads(dat_comm *comm, dat_model *model, dat_quantizer *q,
                                            dat_quant_mode mode, uint64_t step);

/** @brief Opaque gradient synchronizer: the all-reduce of dat_comm_allreduce_grads(),
 *         cut into buckets that are reduced while the backward pass still runs. */
typedef struct dat_grad_sync dat_grad_sync;

/** @brief Options of dat_grad_sync_create(); fields are only ever appended. (0.4.0) */
typedef struct dat_grad_sync_options {
    uint32_t size;            /**< sizeof(dat_grad_sync_options), set by the init function. */
    int64_t bucket_elems;     /**< Gradient elements per bucket, > 0; default 1 << 20 (4 MiB
                                   of float32). With a quantizer, a multiple of its bucket. */
    dat_quantizer *quantizer; /**< NULL (default): the exact mean; else the quantized
                                   all-reduce with it (kept by reference, not owned). */
    dat_quant_mode mode;      /**< With a quantizer; default DAT_QUANT_ONE_SIDED. */
} dat_grad_sync_options;

/**
 * @brief Fills @p opts with the defaults and sets its size field. (0.4.0)
 * @param[out] opts  the options to fill.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL.
 */
DAT_API dat_status dat_grad_sync_options_init(dat_grad_sync_options *opts);
/**
 * @brief dat_grad_sync_options_init() for a caller's struct of @p size bytes (its sizeof): the
 *        library writes min(size, sizeof) bytes and records that count in size, nothing past them.
 *        The dat_grad_sync_options_init() macro passes sizeof *(opts), so a program built against
 *        these headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] opts  the options to fill.
 * @param size  bytes at @p opts, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL or @p size < 4.
 */
DAT_API dat_status dat_grad_sync_options_init_sized(dat_grad_sync_options *opts, size_t size);
/** @brief Fills @p opts (see dat_grad_sync_options_init_sized()). */
#define dat_grad_sync_options_init(opts) dat_grad_sync_options_init_sized((opts), sizeof *(opts))

/**
 * @brief Creates a gradient synchronizer of @p model over @p comm. (0.4.0)
 *
 * The model's flat gradient is cut into buckets of opts->bucket_elems (the
 * last one shorter). Between dat_grad_sync_begin() and dat_grad_sync_end(),
 * the model's next dat_model_loss_backward() starts each bucket's reduction
 * as soon as the backward pass has finished every layer
 * whose gradient lies in it (layers are visited last to first, so the buckets
 * go from the end of the buffer to its start), and the reduction of that
 * bucket runs while the backward pass computes the layers before it. The
 * result is bit for bit that of dat_comm_allreduce_grads() with the same
 * quantizer, mode and step.
 *
 * The buckets run on a communication thread for a host communicator whose
 * collectives may be called from another thread (the self communicator; MPI
 * initialized with MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE) and a model
 * in a CPU context; on the NCCL communicator's stream (behind the backward
 * pass's kernels queued before them) for a model in the communicator's
 * context, exact or quantized (each bucket encoded on the device and its
 * codes all-gathered, or sent to the ranks that serve its shards; the ranks
 * agree on the encodes' outcome once, in dat_grad_sync_end(), which serves
 * and decodes). Otherwise (MPI_THREAD_FUNNELED, a CUDA model with MPI) the
 * whole reduction runs in dat_grad_sync_end(), with the same result.
 * dat_grad_sync_overlaps() tells which.
 * @param[out] out  receives the synchronizer, owned by the caller and freed with
 *                  dat_grad_sync_destroy() before @p comm and @p model; NULL on failure.
 * @param comm  the communicator; between begin and end it belongs to the
 *              synchronizer (call no other collective on it).
 * @param model  the model, the same architecture on every rank.
 * @param opts  options, or NULL for the defaults; read during the call only.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or bad options (a
 *         bucket that is not a multiple of the quantizer's; a quantizer of
 *         another context); DAT_ERR_STATE if the model already has a
 *         synchronizer; DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_grad_sync_create(dat_grad_sync **out, dat_comm *comm, dat_model *model,
                                        const dat_grad_sync_options *opts);

/**
 * @brief Destroys a synchronizer (waiting for a reduction still running). NULL is a no-op.
 * @param sync  the synchronizer.
 */
DAT_API void dat_grad_sync_destroy(dat_grad_sync *sync);

/**
 * @brief Arms the synchronizer for one step. Collective: every rank calls it
 *        with the same @p step, and the ranks agree on the synchronizers' options.
 *
 * The model's next dat_model_loss_backward() (its last backward pass, for the
 * losses that run several) starts the buckets' reductions; with gradient
 * accumulation over several calls, arm it before the last one only.
 *
 * In a recorded step (dat_capture.h) the ranks do not agree on the arguments
 * (that reads back), and a quantized synchronizer's @p step is the step of
 * the first replay, each later replay taking the next one (after op-by-op
 * steps in between, the one after theirs).
 * @param sync  the synchronizer.
 * @param step  the training step (the quantizer's random stream; all ranks the same).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL; DAT_ERR_STATE if already armed or
 *         the communicator is broken; DAT_ERR_COMM if the ranks disagree.
 */
DAT_API dat_status dat_grad_sync_begin(dat_grad_sync *sync, uint64_t step);

/**
 * @brief Reduces the buckets not started yet (all of them if no backward pass
 *        ran since dat_grad_sync_begin()) and waits for every bucket: the
 *        model's gradient is then the mean over the ranks. Disarms.
 * @param sync  the synchronizer.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL; DAT_ERR_STATE if not armed;
 *         otherwise as dat_comm_allreduce_grads() (a failed bucket's error; the
 *         communicator is then broken).
 */
DAT_API dat_status dat_grad_sync_end(dat_grad_sync *sync);

/**
 * @brief Whether the synchronizer reduces buckets while the backward pass runs.
 * @param sync  the synchronizer.
 * @param[out] overlaps  1 if it does, 0 if the reduction runs in dat_grad_sync_end().
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_grad_sync_overlaps(const dat_grad_sync *sync, int32_t *overlaps);

/**
 * @brief Start-up: every rank takes rank @p root's parameters and batch-norm
 *        running statistics, so all workers begin from the same model. Collective.
 * @param comm  the communicator.
 * @param model  the model; the same architecture on every rank.
 * @param root  the rank whose model is sent, in [0, size).
 * @return DAT_OK; otherwise as dat_comm_broadcast().
 */
DAT_API dat_status dat_comm_broadcast_model(dat_comm *comm, dat_model *model, int32_t root);

/**
 * @brief Reads the statistics.
 * @param comm  the communicator.
 * @param[in,out] stats  its size field must be set to sizeof(dat_comm_stats)
 *                       (or an older, smaller layout); the rest is filled.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or a bad stats->size.
 */
DAT_API dat_status dat_comm_get_stats(const dat_comm *comm, dat_comm_stats *stats);

/**
 * @brief Zeroes the statistics.
 * @param comm  the communicator.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p comm is NULL.
 */
DAT_API dat_status dat_comm_reset_stats(dat_comm *comm);

/**
 * @brief Tears the communicator down after a failure, without waiting for
 *        peers: NCCL calls ncclCommAbort; MPI only marks it (processes are not
 *        killed: call MPI_Abort yourself to end the job). Later collectives
 *        return DAT_ERR_STATE; destroy it afterwards.
 * @param comm  the communicator.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p comm is NULL.
 */
DAT_API dat_status dat_comm_abort(dat_comm *comm);

/** @brief Opaque NCCL unique id: 128 bytes that rank 0 makes and every rank passes to
 *         dat_comm_create_nccl(). */
typedef struct dat_comm_id {
    unsigned char internal[128]; /**< NCCL's ncclUniqueId bytes; copy them unchanged. */
} dat_comm_id;

/**
 * @brief Makes a new unique id (call on one rank, then move it to the others).
 * @param[out] id  receives the id.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL; DAT_ERR_UNSUPPORTED in builds
 *         without CUDA / NCCL; DAT_ERR_COMM if NCCL fails.
 */
DAT_API dat_status dat_comm_unique_id(dat_comm_id *id);

/**
 * @brief Creates an NCCL communicator of @p nranks ranks (collective over them).
 *
 * It runs its collectives on its own CUDA stream and polls NCCL's
 * asynchronous errors while it waits; on an error or after the timeout it
 * calls ncclCommAbort and returns DAT_ERR_COMM / DAT_ERR_TIMEOUT.
 * @param[out] out  receives the communicator, owned by the caller and freed
 *                  with dat_comm_destroy() before @p ctx; NULL on failure.
 * @param ctx  a CUDA context: the GPU this rank uses.
 * @param nranks  number of ranks M, >= 1.
 * @param rank  this process's rank in [0, nranks).
 * @param id  the id rank 0 made with dat_comm_unique_id(), the same on every rank.
 * @param opts  options, or NULL for the defaults.
 * @return DAT_OK; DAT_ERR_UNSUPPORTED in builds without CUDA;
 *         DAT_ERR_INVALID_ARG for a CPU context, rank outside [0, nranks) or
 *         NULL arguments; DAT_ERR_COMM; DAT_ERR_TIMEOUT.
 */
DAT_API dat_status dat_comm_create_nccl(dat_comm **out, dat_ctx *ctx, int32_t nranks,
                                        int32_t rank, const dat_comm_id *id,
                                        const dat_comm_options *opts);

/**
 * @brief Writes an id to @p path atomically (a temporary file in the same
 *        folder, fsync, rename), for ranks that share a file system.
 * @param id  the id.
 * @param path  the file to write.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers; DAT_ERR_IO with the
 *         path and the system's message.
 */
DAT_API dat_status dat_comm_unique_id_write(const dat_comm_id *id, const char *path);

/**
 * @brief Waits until @p path exists, then reads the id from it.
 * @param[out] id  receives the id.
 * @param path  the file written by dat_comm_unique_id_write().
 * @param timeout_s  how long to wait for the file, > 0.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or a bad timeout;
 *         DAT_ERR_TIMEOUT if it does not appear in time; DAT_ERR_FORMAT if it
 *         is not an id file; DAT_ERR_IO.
 */
DAT_API dat_status dat_comm_unique_id_read(dat_comm_id *id, const char *path, double timeout_s);

#ifdef __cplusplus
}
#endif

#endif
