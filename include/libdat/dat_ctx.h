/**
 * @file dat_ctx.h
 * @brief The context: which device libdat computes on, its threads, its seed
 *        and where its log messages go.
 *
 * Every other libdat object is created from a context and must be destroyed
 * before it. A context is not thread-safe: use one per host thread, or
 * serialize calls. On the CPU, OpenBLAS's thread count is one for the whole
 * process: matrix products of contexts with different num_threads that run at
 * the same time on different host threads take turns, each with its own
 * context's count (the same results as alone). libdat leaves the calling
 * thread's OpenMP setting as it found it. In a child of fork(), contexts run on
 * one thread (libgomp's pool does not survive fork). See docs/building.md
 * ("Threads") for the first context's OpenBLAS check and dlclose().
 */
#ifndef LIBDAT_DAT_CTX_H
#define LIBDAT_DAT_CTX_H

#include "dat_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Opaque context. */
typedef struct dat_ctx dat_ctx;

/** @brief Kind of device a context computes on. Values are fixed. */
typedef enum dat_device_kind {
    DAT_DEVICE_CPU = 0,   /**< The host CPU (OpenMP threads, OpenBLAS). */
    DAT_DEVICE_CUDA = 1,  /**< A CUDA GPU, chosen by dat_ctx_options::device_ordinal. */
    DAT_DEVICE_FORCE_32BIT = 0x7fffffff
} dat_device_kind;

/**
 * @brief Arithmetic of a context's models. Values are fixed.
 *
 * Parameters, their gradients and optimizer state are float32 under every
 * precision (master weights); the logits and every tensor libdat hands back
 * are float32 too.
 */
typedef enum dat_precision {
    DAT_PRECISION_FP32 = 0,  /**< Full fp32 (FMA) math: results match the CPU's closely. */
    DAT_PRECISION_TF32 = 1,  /**< CUDA: fp32 data, TF32 tensor-core products (10-bit
                                  mantissa inputs, fp32 accumulation), as PyTorch's
                                  allow_tf32. The CPU computes in fp32. */
    DAT_PRECISION_BF16 = 2,  /**< (0.4.0) Activations, their gradients and the convolution
                                  weights a pass reads are bfloat16; products accumulate in
                                  fp32, batch-norm statistics, linear layers and losses are
                                  fp32 (as PyTorch's bf16 autocast). The CPU emulates it:
                                  the same roundings, fp32 arithmetic, slower than fp32. */
    DAT_PRECISION_FORCE_32BIT = 0x7fffffff
} dat_precision;

/**
 * @brief Options of dat_ctx_create(). Fill with dat_ctx_options_init() and
 *        then change the fields you need; fields are only ever appended.
 */
typedef struct dat_ctx_options {
    uint32_t size;            /**< sizeof(dat_ctx_options), set by dat_ctx_options_init(). */
    dat_device_kind device;   /**< Default DAT_DEVICE_CPU. */
    int32_t device_ordinal;   /**< CUDA device index; default 0; ignored on the CPU. */
    int32_t num_threads;      /**< Host threads for compute; 0 (default) = all online cores. */
    uint64_t seed;            /**< Key of the context's Philox generator; default 0. */
    dat_log_fn log_fn;        /**< Receives log messages; NULL (default) = silent. */
    void *log_user;           /**< Passed to log_fn unchanged. */
    dat_log_level log_level;  /**< Most verbose level passed on; default DAT_LOG_WARN. */
    /* Appended in 0.2.0. */
    dat_precision precision;  /**< CUDA math; default DAT_PRECISION_FP32. */
    int32_t tune_convolutions;  /**< CUDA: 1 = time cuDNN's candidate algorithms the first
                                     time a convolution shape is seen and keep the fastest
                                     (as torch.backends.cudnn.benchmark; the choice can differ
                                     between runs); 0 (default) = cuDNN's heuristics, the same
                                     choice every run. Ignored on the CPU. */
    /* Appended in 0.3.0. */
    int32_t reserved0;        /**< Unused: fills the 0.2.0 struct's tail padding, so that
                                   a 0.2.0 caller's size never covers the fields below. */
    int32_t cuda_graphs;      /**< CUDA: 1 (default) = an attack's k-step loop runs its
                                   first step op by op, then replays that step as a CUDA
                                   graph (captured once per batch shape and buffers,
                                   recaptured when they change; the same results, without
                                   the host's launch costs); 0 = every step op by op.
                                   Ignored on the CPU. */
    /* Appended in 0.4.0. */
    int32_t channels_last;    /**< Layout of the activations inside models: -1 (default)
                                   = the backend's choice for the precision (CUDA: channels
                                   last under DAT_PRECISION_BF16, else NCHW; CPU: NCHW);
                                   0 = NCHW; 1 = channels last (NHWC), which spares cuDNN's
                                   tensor-core kernels their layout transposes. Tensors a
                                   caller sees are NCHW whatever is chosen. */
    /* 0.6.0: was reserved1 (0 in every older caller's struct). */
    int32_t deterministic;    /**< CUDA: 1 = only convolution algorithms cuDNN marks
                                   deterministic, so the same inputs give the same bits
                                   every run and a step graph's replay gives op by op's
                                   bits (as torch.backends.cudnn.deterministic); 0
                                   (default) = the fastest, some of which add partial sums
                                   in whatever order the GPU finishes them (the last bits
                                   vary). Ignored on the CPU, which is always
                                   deterministic for a thread count. */
} dat_ctx_options;

/**
 * @brief Fills @p opts with the defaults and sets its size field.
 * @param[out] opts  the options to fill.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL.
 */
DAT_API dat_status dat_ctx_options_init(dat_ctx_options *opts);
/**
 * @brief dat_ctx_options_init() for a caller's struct of @p size bytes (its sizeof): the library
 *        writes min(size, sizeof) bytes and records that count in size, nothing past them. The
 *        dat_ctx_options_init() macro passes sizeof *(opts), so a program built against these
 *        headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] opts  the options to fill.
 * @param size  bytes at @p opts, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL or @p size < 4.
 */
DAT_API dat_status dat_ctx_options_init_sized(dat_ctx_options *opts, size_t size);
/** @brief Fills @p opts (see dat_ctx_options_init_sized()). */
#define dat_ctx_options_init(opts) dat_ctx_options_init_sized((opts), sizeof *(opts))

/**
 * @brief Creates a context.
 * @param[out] out  receives the context, owned by the caller and freed with
 *                  dat_ctx_destroy(); set to NULL on failure.
 * @param opts  options from dat_ctx_options_init(), or NULL for the defaults;
 *              read during the call only (opts->log_fn and opts->log_user are
 *              kept and must stay valid while the context lives).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for a NULL @p out, a wrong opts->size
 *         or a field out of range; DAT_ERR_NO_DEVICE when a CUDA device is
 *         asked for and none (or not that ordinal) is present;
 *         DAT_ERR_UNSUPPORTED when libdat was built without CUDA;
 *         DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_ctx_create(dat_ctx **out, const dat_ctx_options *opts);

/**
 * @brief Destroys a context and frees its device resources.
 * @param ctx  the context, or NULL (a no-op). Every object created from it
 *             (tensors, models, attacks, quantizers, communicators, optimizers,
 *             data sets) must be destroyed first.
 */
DAT_API void dat_ctx_destroy(dat_ctx *ctx);

/**
 * @brief Waits until all work queued on the context's device has finished.
 * @param ctx  the context.
 * @return DAT_OK (at once on the CPU); DAT_ERR_INVALID_ARG for NULL;
 *         DAT_ERR_CUDA with the CUDA message if queued work failed;
 *         (0.5.0) DAT_ERR_NUMERIC or DAT_ERR_INVALID_ARG, naming the check,
 *         when a device-side check of a replayed step graph failed since the
 *         last call (dat_capture.h; each fault is reported once).
 */
DAT_API dat_status dat_ctx_synchronize(dat_ctx *ctx);

/**
 * @brief Device of a context.
 * @param ctx  the context.
 * @param[out] kind  receives the device kind (may be NULL).
 * @param[out] ordinal  receives the CUDA ordinal, -1 on the CPU (may be NULL).
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p ctx is NULL.
 */
DAT_API dat_status dat_ctx_device(const dat_ctx *ctx, dat_device_kind *kind, int32_t *ordinal);

/**
 * @brief Number of host threads the context computes with.
 * @param ctx  the context.
 * @param[out] num_threads  receives the count (never 0: 0 in the options
 *                          became the number of online cores).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_ctx_num_threads(const dat_ctx *ctx, int32_t *num_threads);

/**
 * @brief Seed (Philox key) of the context.
 * @param ctx  the context.
 * @param[out] seed  receives the seed.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_ctx_seed(const dat_ctx *ctx, uint64_t *seed);

/**
 * @brief Whether this build of libdat has the CUDA backend.
 * @return 1 if built with CUDA, 0 otherwise.
 */
DAT_API int dat_has_cuda(void);

/**
 * @brief Number of CUDA devices visible to this process.
 * @param[out] count  receives the count: 0 when built without CUDA, when no
 *                    driver is installed or no GPU is present.
 * @return DAT_OK whenever @p count is not NULL (a missing GPU is a count of
 *         0); DAT_ERR_INVALID_ARG for NULL.
 */
DAT_API dat_status dat_cuda_device_count(int32_t *count);

#ifdef __cplusplus
}
#endif

#endif
