/**
 * @file dat_attack.h
 * @brief Attack oracles: the inner maximization of adversarial training
 *        (step A1 of the paper's Algorithm 1), and robust accuracy.
 *
 * An attack is configured once (dat_attack_options) and then applied to
 * batches with dat_attack_perturb(). It only needs input gradients
 * (dat_model_input_grad), never parameter gradients. Random starts and noise
 * come from Philox keyed by (options seed, stream = rank * 2^32 + step), so a
 * run repeats exactly; the step advances by one with every call that draws,
 * and can be set for resuming.
 */
#ifndef LIBDAT_DAT_ATTACK_H
#define LIBDAT_DAT_ATTACK_H

#include "dat_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Opaque attack. */
typedef struct dat_attack dat_attack;

/** @brief Attack algorithms. Values are fixed. */
typedef enum dat_attack_kind {
    DAT_ATTACK_PGD = 0,        /**< k steps of size alpha, projection (Madry et al.) */
    DAT_ATTACK_FGSM = 1,       /**< FGSM with random start, one step (Wong et al. 2020) */
    DAT_ATTACK_TRADES = 2,     /**< maximizes KL(p(x) || p(x + delta)); no labels needed */
    DAT_ATTACK_SMOOTH_PGD = 3, /**< l2 PGD on the soft smoothed classifier (SmoothAdv):
                                    its noise samples are drawn once per call and
                                    attacked at every step */
    DAT_ATTACK_KIND_FORCE_32BIT = 0x7fffffff
} dat_attack_kind;

/** @brief Threat model. Values are fixed. */
typedef enum dat_norm {
    DAT_NORM_LINF = 0,
    DAT_NORM_L2 = 1,
    DAT_NORM_FORCE_32BIT = 0x7fffffff
} dat_norm;

/** @brief Options of dat_attack_create(); fill with dat_attack_options_init(). */
typedef struct dat_attack_options {
    uint32_t size;           /**< set by dat_attack_options_init() */
    dat_attack_kind kind;    /**< default DAT_ATTACK_PGD */
    dat_norm norm;           /**< default DAT_NORM_LINF; SMOOTH_PGD is always l2 */
    float eps;               /**< radius; default 8/255 */
    float alpha;             /**< step; 0 (default): 2.5 eps / steps for PGD and TRADES,
                                  2 eps / steps for SMOOTH_PGD (SmoothAdv's code),
                                  1.25 eps for FGSM */
    int32_t steps;           /**< k; default 10 (FGSM: always 1) */
    int32_t random_start;    /**< default 1: uniform in the eps-ball (l2: uniform radius
                                  along a Gaussian direction); TRADES starts at
                                  x + 0.001 N(0, I) either way; SmoothAdv's code
                                  starts at x (0) */
    int32_t restarts;        /**< default 1; the largest-loss restart is kept (SMOOTH_PGD:
                                  the largest smoothed loss under the call's noise) */
    dat_model_mode mode;     /**< model mode during the attack; default DAT_MODE_EVAL.
                                  The model's own mode is restored afterwards. */
    /** @{ */
    float lo, hi;            /**< valid input range [lo, hi]; default [0, 1] */
    /** @} */
    float sigma;             /**< SMOOTH_PGD and Gaussian copies: noise std; default 0.25 */
    int32_t noise_samples;   /**< SMOOTH_PGD: m noise samples per point; copies: N; default 1 */
    uint64_t seed;           /**< Philox key of the attack's draws; default 0 */
    int32_t rank;            /**< worker index, part of the stream; default 0 */
} dat_attack_options;

/**
 * @brief Fills @p opts with the defaults and sets its size.
 * @param[out] opts  the options to fill.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL.
 */
DAT_API dat_status dat_attack_options_init(dat_attack_options *opts);
/**
 * @brief dat_attack_options_init() for a caller's struct of @p size bytes (its sizeof): the library
 *        writes min(size, sizeof) bytes and records that count in size, nothing past them. The
 *        dat_attack_options_init() macro passes sizeof *(opts), so a program built against these
 *        headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] opts  the options to fill.
 * @param size  bytes at @p opts, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL or @p size < 4.
 */
DAT_API dat_status dat_attack_options_init_sized(dat_attack_options *opts, size_t size);
/** @brief Fills @p opts (see dat_attack_options_init_sized()). */
#define dat_attack_options_init(opts) dat_attack_options_init_sized((opts), sizeof *(opts))

/**
 * @brief Creates an attack.
 * @param[out] out  receives the attack, owned by the caller and freed with
 *                  dat_attack_destroy() before @p ctx; NULL on failure.
 * @param ctx  the context whose device the attack computes on.
 * @param opts  options from dat_attack_options_init(), or NULL for the
 *              defaults; copied.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or bad options
 *         (eps < 0, steps < 0, alpha NaN, noise_samples < 1, sigma < 0,
 *         lo >= hi, unknown kind or norm), with a message; DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_attack_create(dat_attack **out, dat_ctx *ctx,
                                     const dat_attack_options *opts);

/**
 * @brief Destroys an attack.
 * @param attack  the attack, or NULL (a no-op).
 */
DAT_API void dat_attack_destroy(dat_attack *attack);

/**
 * @brief Sets the step counter (part of the Philox stream), e.g. when resuming.
 * @param attack  the attack.
 * @param step  the new counter.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p attack is NULL.
 */
DAT_API dat_status dat_attack_set_step(dat_attack *attack, uint64_t step);
/**
 * @brief The step counter: how many drawing calls have been made (or as set).
 * @param attack  the attack.
 * @param[out] step  receives the counter.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_attack_get_step(const dat_attack *attack, uint64_t *step);

/**
 * @brief Perturbs a batch: @p x_adv receives the adversarial examples of @p x.
 *
 * Only input gradients are computed (dat_model_input_grad): the model's
 * parameters and gradient buffer are not changed; its mode is set to
 * opts.mode during the attack and restored afterwards (in train mode the
 * attack's forward passes update the BN running statistics, as PyTorch's do;
 * a call that fails part-way puts them back). The step advances by one, also
 * when the call fails after its arguments were checked (out of memory, NaN):
 * a retry draws new random starts.
 * @param attack  the attack.
 * @param model  the model attacked.
 * @param x  float32 [N, C, H, W] inside [lo, hi].
 * @param y  int32 [N] labels (true labels or pseudo-labels); may be NULL for TRADES.
 * @param[out] x_adv  float32, same shape as @p x (may not alias it).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, shapes, labels out of
 *         range or x outside [lo, hi] (nothing is written then); DAT_ERR_NUMERIC
 *         for NaN in x; DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_attack_perturb(dat_attack *attack, dat_model *model, const dat_tensor *x,
                                      const dat_tensor *y, dat_tensor *x_adv);

/**
 * @brief Gaussian noise copies for Smooth-AT: row j * N + i of @p x_out is
 *        x_i + sigma * noise (not clipped), and of @p y_out (if not NULL) y_i,
 *        for j < noise_samples; the attack's step advances by one.
 *
 * The noise is the one a DAT_ATTACK_SMOOTH_PGD perturbation by @p attack of a
 * batch of N draws at the same attack step. SmoothAdv trains on the
 * adversarial images plus the noise its attack saw: read the step before
 * dat_attack_perturb() (dat_attack_get_step()), set it back after, and take
 * the copies of x_adv from the same attack.
 * @param attack  the attack (its sigma, noise_samples, seed, rank, restarts
 *                and step).
 * @param x  float32 [N, C, H, W].
 * @param y  int32 [N], or NULL when @p y_out is NULL.
 * @param[out] x_out  float32 [N * noise_samples, C, H, W].
 * @param[out] y_out  int32 [N * noise_samples], or NULL.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or shapes that do not fit.
 */
DAT_API dat_status dat_attack_gaussian_copies(dat_attack *attack, const dat_tensor *x,
                                              const dat_tensor *y, dat_tensor *x_out,
                                              dat_tensor *y_out);

/**
 * @brief Clean and robust correctness of one batch; sum the counts over the
 *        batches of a test set for accuracies.
 *
 * A point is robust only if the model classifies it correctly and every
 * restart fails (each restart is checked on its own). The model is evaluated
 * in the attack's mode and its mode is restored afterwards. With
 * DAT_ATTACK_SMOOTH_PGD the counts are the base classifier's at the attacked
 * points; the smoothed classifier's are dat_smooth_predict()'s and
 * dat_smooth_certify()'s (dat_eval.h).
 * @param attack  the attack to evaluate against.
 * @param model  the model.
 * @param x  float32 [N, C, H, W] inside [lo, hi].
 * @param y  int32 [N] labels.
 * @param[out] clean_correct  number of correctly classified clean points (may be NULL).
 * @param[out] robust_correct  number of points that survive the attack (may be NULL).
 * @param[out] robust_mask  uint8 [N]: 1 where the point is robust (may be NULL).
 * @return DAT_OK; as dat_attack_perturb() otherwise.
 */
DAT_API dat_status dat_eval_robust_accuracy(dat_attack *attack, dat_model *model,
                                            const dat_tensor *x, const dat_tensor *y,
                                            int32_t *clean_correct, int32_t *robust_correct,
                                            dat_tensor *robust_mask);

#ifdef __cplusplus
}
#endif

#endif
