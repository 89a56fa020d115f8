/**
 * @file dat_optim.h
 * @brief The optimizer of step A4 of the paper: SGD, momentum (heavy ball,
 *        Nesterov), Adam and AdamW, with or without the layer-wise adaptive
 *        learning rate (LALR, eq. (3) of the paper), and learning-rate schedules.
 *
 * Each step computes the base direction u from the gradient (with coupled or
 * decoupled weight decay), then, per segment l (one tensor of the flat buffer):
 *
 *     LALR off:  theta_l <- theta_l - eta_t * u_l
 *     LALR on:   theta_l <- theta_l - tau(||theta_l||) * eta_t / ||u_l|| * u_l,
 *                tau(z) = min(max(z, c_l), c_u)
 *
 * where the trust ratio tau / ||u_l|| is taken as 1 when ||theta_l|| = 0 or
 * ||u_l|| = 0, and for segments excluded from LALR. LALR with momentum SGD is
 * LARS, with Adam(W) LAMB. The paper's reference LAMB is kind ADAMW,
 * bias_correction 0, eps 1e-6, weight_decay 1e-4, lalr 1.
 *
 * Directions, per element, at step t = 1, 2, ... of the element's segment
 * (steps it sat out frozen not counted; g the gradient, plus
 * weight_decay * theta when the decay is coupled):
 *   SGD       u = g
 *   MOMENTUM  b = momentum * b + g (b = g at t = 1);  u = b          (PyTorch's SGD)
 *   NESTEROV  b as above;                             u = g + momentum * b
 *   ADAM      m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
 *             u = m_hat / (sqrt(v_hat) + eps), m_hat = m / (1 - beta1^t) and
 *             v_hat = v / (1 - beta2^t) with bias correction, m and v without
 *   ADAMW     ADAM with the decay decoupled: u += weight_decay * theta
 * Decoupled decay (ADAMW, or decoupled_decay = 1 with any kind) adds
 * weight_decay * theta to u instead of to g.
 */
#ifndef LIBDAT_DAT_OPTIM_H
#define LIBDAT_DAT_OPTIM_H

#include "dat_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Opaque optimizer. */
typedef struct dat_optim dat_optim;

/** @brief Base optimizers. Values are fixed. */
typedef enum dat_optim_kind {
    DAT_OPTIM_SGD = 0,
    DAT_OPTIM_MOMENTUM = 1,
    DAT_OPTIM_NESTEROV = 2,
    DAT_OPTIM_ADAM = 3,
    DAT_OPTIM_ADAMW = 4,
    DAT_OPTIM_KIND_FORCE_32BIT = 0x7fffffff
} dat_optim_kind;

/**
 * @brief Learning-rate schedules over steps t = 0, 1, ... (t steps done before
 *        this one). eta is the scaled base rate (lr times the batch scaling).
 *        Warm-up (all but ONECYCLE): eta * (t + 1) / warmup_steps while
 *        t < warmup_steps. Then:
 *        - CONSTANT:  eta
 *        - PIECEWISE: eta * gamma^k, k = number of milestones <= t
 *        - COSINE:    eta * (1 + cos(pi * (t - w) / (total_steps - w))) / 2 for
 *                     t < total_steps (w = warmup_steps), 0 after
 *        - ONECYCLE:  linear from 0 at t = 0 up to eta at t = 0.4 total_steps,
 *                     down to 0 at total_steps (Fast AT, Wong et al. 2020), 0 after.
 *        Values are fixed.
 */
typedef enum dat_schedule_kind {
    DAT_SCHEDULE_CONSTANT = 0,
    DAT_SCHEDULE_PIECEWISE = 1,
    DAT_SCHEDULE_COSINE = 2,
    DAT_SCHEDULE_ONECYCLE = 3,
    DAT_SCHEDULE_FORCE_32BIT = 0x7fffffff
} dat_schedule_kind;

/** @brief Scaling of the base rate with the global batch (M workers x batch). */
typedef enum dat_lr_scaling {
    DAT_LR_SCALING_NONE = 0,
    DAT_LR_SCALING_LINEAR = 1, /**< lr * global_batch / ref_batch (Goyal et al.) */
    DAT_LR_SCALING_SQRT = 2,   /**< lr * sqrt(global_batch / ref_batch) */
    DAT_LR_SCALING_FORCE_32BIT = 0x7fffffff
} dat_lr_scaling;

/** @brief Largest number of piecewise milestones. */
#define DAT_OPTIM_MAX_MILESTONES 16

/** @brief Largest step counter (2^53, exact in a double; a loaded state or
 *         dat_optim_set_step() past it is refused). (0.7.0) */
#define DAT_OPTIM_MAX_STEP ((int64_t)1 << 53)

/** @brief Options of the optimizer; fill with dat_optim_options_init(). */
typedef struct dat_optim_options {
    uint32_t size;                 /**< set by dat_optim_options_init() */
    dat_optim_kind kind;           /**< default DAT_OPTIM_MOMENTUM */
    float lr;                      /**< base learning rate, >= 0; default 0.1 */
    float momentum;                /**< momentum, or Adam's beta1, in [0, 1); default 0.9 */
    float beta2;                   /**< Adam's beta2 in [0, 1); default 0.999 */
    float eps;                     /**< Adam's epsilon, > 0; default 1e-8 */
    float weight_decay;            /**< >= 0; default 0 */
    int32_t decoupled_decay;       /**< 1: add the decay to u, not to g (always for ADAMW) */
    int32_t bias_correction;       /**< Adam: default 1 */
    int32_t lalr;                  /**< 1: layer-wise adaptive rate; default 0 */
    /** @{ */
    float c_l, c_u;                /**< trust clipping bounds, 0 <= c_l <= c_u; default 0, 10 */
    /** @} */
    int32_t exclude_bias_bn_decay; /**< 1: no weight decay on bias and BN segments */
    int32_t exclude_bias_bn_lalr;  /**< 1: trust ratio 1 on bias and BN segments */
    dat_schedule_kind schedule;    /**< default DAT_SCHEDULE_CONSTANT */
    int64_t warmup_steps;          /**< default 0 */
    int64_t total_steps;           /**< COSINE and ONECYCLE: length of the run */
    int32_t num_milestones;        /**< PIECEWISE: 0 .. DAT_OPTIM_MAX_MILESTONES */
    int64_t milestones[DAT_OPTIM_MAX_MILESTONES]; /**< non-decreasing steps >= 0 (a repeated
                                                       one applies gamma twice there) */
    float gamma;                   /**< PIECEWISE decay factor; default 0.1 */
    dat_lr_scaling scaling;        /**< default DAT_LR_SCALING_NONE */
    int64_t global_batch;          /**< with scaling: M x per-worker batch */
    int64_t ref_batch;             /**< with scaling: the batch lr is meant for */
} dat_optim_options;

/**
 * @brief Fills @p opts with the defaults and sets its size.
 * @param[out] opts  the options to fill.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL.
 */
DAT_API dat_status dat_optim_options_init(dat_optim_options *opts);
/**
 * @brief dat_optim_options_init() for a caller's struct of @p size bytes (its sizeof): the library
 *        writes min(size, sizeof) bytes and records that count in size, nothing past them. The
 *        dat_optim_options_init() macro passes sizeof *(opts), so a program built against these
 *        headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] opts  the options to fill.
 * @param size  bytes at @p opts, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL or @p size < 4.
 */
DAT_API dat_status dat_optim_options_init_sized(dat_optim_options *opts, size_t size);
/** @brief Fills @p opts (see dat_optim_options_init_sized()). */
#define dat_optim_options_init(opts) dat_optim_options_init_sized((opts), sizeof *(opts))

/**
 * @brief An optimizer over a flat buffer described by @p segments. Its moments
 *        are allocated here, once.
 * @param[out] out  receives the optimizer, owned by the caller and freed with
 *                  dat_optim_destroy() before @p ctx; NULL on failure.
 * @param ctx  the context whose device holds the buffer.
 * @param segments  @p num_segments segments of the buffer (copied; they must
 *                  not overlap; names are not needed).
 * @param num_segments  >= 1.
 * @param opts  options from dat_optim_options_init(), or NULL for the defaults; copied.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, bad options (lr < 0,
 *         c_l > c_u, a beta outside [0, 1), an unknown kind or schedule,
 *         decreasing milestones) or segments (negative, overlapping), with a
 *         message; DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_optim_create(dat_optim **out, dat_ctx *ctx, const dat_segment *segments,
                                    int32_t num_segments, const dat_optim_options *opts);

/**
 * @brief An optimizer over a model's parameters and segments.
 * @param[out] out  receives the optimizer, owned by the caller and freed with
 *                  dat_optim_destroy() before the model's context; NULL on failure.
 * @param model  the model (its segments are copied; the model may be destroyed
 *               first).
 * @param opts  options, or NULL for the defaults; copied.
 * @return DAT_OK; otherwise as dat_optim_create().
 */
DAT_API dat_status dat_optim_create_for_model(dat_optim **out, dat_model *model,
                                              const dat_optim_options *opts);

/**
 * @brief Destroys an optimizer and its moments.
 * @param optim  the optimizer, or NULL (a no-op).
 */
DAT_API void dat_optim_destroy(dat_optim *optim);

/**
 * @brief One step: updates @p params from @p grads.
 * @param optim  the optimizer.
 * @param params  float32, the flat buffer the segments describe.
 * @param grads  float32, the same shape.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or sizes that do not
 *         fit the segments; DAT_ERR_NUMERIC (nothing changed) when the gradient
 *         holds NaN or Inf; DAT_ERR_STATE (nothing changed) when the step
 *         counter is at DAT_OPTIM_MAX_STEP.
 */
DAT_API dat_status dat_optim_step(dat_optim *optim, dat_tensor *params, const dat_tensor *grads);

/**
 * @brief One step on a model's own parameters and gradients.
 * @param optim  an optimizer over this model's layout.
 * @param model  the model.
 * @return DAT_OK; otherwise as dat_optim_step().
 */
DAT_API dat_status dat_optim_step_model(dat_optim *optim, dat_model *model);

/**
 * @brief Scales the learning rate of segments [@p first_segment,
 *        @p first_segment + @p count) by @p scale (default 1 for every
 *        segment): a separate rate for a new classifier, or 0 to freeze.
 *
 * A frozen segment is skipped by every step: its parameters and moments stay
 * bit-identical (BN running statistics are the model's, not the optimizer's:
 * they still follow the data in train mode, as in PyTorch). The scales are
 * configuration, not state: they are not saved by dat_optim_state_save(); set
 * them again after a resume. Adam's bias correction counts each segment's own
 * steps, as PyTorch counts each parameter's updates: a segment unfrozen after
 * k frozen steps of t is corrected as at step t - k (the state saves these
 * counts, frozen steps included). A step graph (dat_capture.h) keeps the
 * scales it was recorded with: record it again after changing them.
 * @param optim  the optimizer.
 * @param first_segment  the first segment, >= 0.
 * @param count  the number of segments, >= 0, within the optimizer's segments.
 * @param scale  the factor, finite and >= 0.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL, a range outside the segments
 *         or a scale that is negative or not finite; nothing changes then.
 */
DAT_API dat_status dat_optim_set_lr_scale(dat_optim *optim, int32_t first_segment, int32_t count,
                                          float scale);

/**
 * @brief The learning rate the next step will use (schedule and scaling applied).
 * @param optim  the optimizer.
 * @param[out] lr  receives the rate.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_optim_lr(const dat_optim *optim, double *lr);

/**
 * @brief Steps taken so far (the schedule's position).
 * @param optim  the optimizer.
 * @param[out] step  receives the count.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_optim_get_step(const dat_optim *optim, int64_t *step);
/**
 * @brief Sets the schedule's position (the moments are unchanged).
 * @param optim  the optimizer.
 * @param step  the new position, in [0, DAT_OPTIM_MAX_STEP].
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL or a step outside that range.
 */
DAT_API dat_status dat_optim_set_step(dat_optim *optim, int64_t step);

/**
 * @brief Bytes of the serialized state (moments, step, and the steps each
 *        segment sat out frozen).
 * @param optim  the optimizer.
 * @param[out] bytes  receives the size.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_optim_state_size(const dat_optim *optim, size_t *bytes);
/**
 * @brief Serializes the state into @p buf.
 * @param optim  the optimizer.
 * @param[out] buf  host memory owned by the caller.
 * @param size  bytes at @p buf: dat_optim_state_size() or more (the bytes past
 *              the state are left as they are).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or a short buffer.
 */
DAT_API dat_status dat_optim_state_save(const dat_optim *optim, void *buf, size_t size);
/**
 * @brief Restores a state written by dat_optim_state_save() for an optimizer
 *        of the same kind, parameter count and segment count; continuing then
 *        equals an uninterrupted run bit for bit.
 *
 * States of libdat 0.7 and before, which lack the segments' frozen steps,
 * load as if no segment had been frozen. A segment frozen when the state
 * loads sits out from the loaded step on.
 * @param optim  the optimizer.
 * @param buf  the serialized state; read during the call only.
 * @param size  the state's bytes at @p buf: exactly as many as were saved
 *              (dat_optim_state_size() for a state of this version).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers; DAT_ERR_FORMAT for a
 *         buffer of another optimizer or a corrupt one: a step past
 *         DAT_OPTIM_MAX_STEP, moments that are NaN or Inf, a negative second
 *         moment (nothing is changed then).
 */
DAT_API dat_status dat_optim_state_load(dat_optim *optim, const void *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
