/**
 * @file dat_eval.h
 * @brief Evaluation: AutoAttack (Croce & Hein 2020) and randomized-smoothing
 *        certification (Cohen et al. 2019), with the statistics they need.
 *
 * AutoAttack runs APGD-CE, APGD-T (targeted DLR loss), FAB-T and Square in
 * sequence, each on the points every earlier attack failed on; a point is
 * robust only if the clean input is classified correctly and all of them
 * fail. Every result lies inside the eps-ball around x and inside [lo, hi].
 *
 * Randomized smoothing classifies with g(x) = argmax_c P(f(x + eta) = c),
 * eta ~ N(0, sigma^2 I): PREDICT returns g(x) or abstains; CERTIFY also gives
 * an l2 radius sigma * Phi^-1(p_A) within which g is constant with
 * probability at least 1 - alpha, p_A being the one-sided Clopper-Pearson
 * lower bound of the top class's probability.
 *
 * Random draws come from Philox keyed by the options' seed; sample i of a call
 * uses stream first_index + i, so results do not depend on the batching.
 */
#ifndef LIBDAT_DAT_EVAL_H
#define LIBDAT_DAT_EVAL_H

#include "dat_attack.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */
/* ------------------------------------------------------------------------ */

/**
 * @brief Regularized incomplete beta function I_x(a, b).
 * @param a, b  the shape parameters, > 0 and finite.
 * @param x  the point, 0 <= x <= 1.
 * @param[out] out  receives I_x(a, b).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for a NULL @p out or unless a > 0, b > 0
 *         and 0 <= x <= 1 (all finite).
 */
DAT_API dat_status dat_stat_incbeta(double a, double b, double x, double *out);

/**
 * @brief Inverse of I_x(a, b) in x: the p-quantile of Beta(a, b).
 * @param a, b  the shape parameters, > 0 and finite.
 * @param p  the probability, 0 <= p <= 1.
 * @param[out] out  receives the quantile.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for a NULL @p out or unless a > 0, b > 0
 *         and 0 <= p <= 1.
 */
DAT_API dat_status dat_stat_incbeta_inv(double a, double b, double p, double *out);

/**
 * @brief Standard normal quantile Phi^-1(p): Abramowitz & Stegun 26.2.23
 *        refined by Newton steps on erfc of the smaller tail, or for
 *        1/4 < p < 3/4 on erf (relative error about 1e-15 everywhere but at
 *        subnormal p); -inf at 0, +inf at 1.
 * @param p  the probability, 0 <= p <= 1.
 * @param[out] out  receives Phi^-1(p).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for a NULL @p out or unless 0 <= p <= 1.
 */
DAT_API dat_status dat_stat_normal_quantile(double p, double *out);

/**
 * @brief One-sided Clopper-Pearson lower confidence bound of a binomial
 *        proportion: the p with P(X >= successes | trials, p) = alpha, i.e.
 *        the alpha-quantile of Beta(successes, trials - successes + 1); 0 when
 *        successes = 0. P(true p >= bound) >= 1 - alpha.
 * @param successes  0 <= successes <= trials.
 * @param trials  >= 1.
 * @param alpha  the failure probability, 0 < alpha < 1.
 * @param[out] out  receives the bound.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for a NULL @p out or unless
 *         0 <= successes <= trials, trials >= 1, 0 < alpha < 1.
 */
DAT_API dat_status dat_stat_clopper_pearson_lower(int64_t successes, int64_t trials,
                                                  double alpha, double *out);

/* ------------------------------------------------------------------------ */
/* Randomized smoothing                                                      */
/* ------------------------------------------------------------------------ */

/** @brief Options of smoothing; fill with dat_smooth_options_init(). */
typedef struct dat_smooth_options {
    uint32_t size;        /**< set by dat_smooth_options_init() */
    float sigma;          /**< noise std, > 0; default 0.25 */
    int32_t n0;           /**< CERTIFY's selection samples; default 100 */
    int32_t n;            /**< estimation samples (PREDICT's only ones); default 100000 */
    double alpha;         /**< failure probability in (0, 1); default 0.001 */
    int32_t batch;        /**< noisy copies per forward pass; default 1000 */
    uint64_t seed;        /**< Philox key of the noise; default 0 */
    int64_t first_index;  /**< stream of x's first sample (its index in the data set),
                               so that every sample draws its own noise; default 0 */
} dat_smooth_options;

/**
 * @brief Fills @p opts with the defaults and sets its size.
 * @param[out] opts  the options to fill.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL.
 */
DAT_API dat_status dat_smooth_options_init(dat_smooth_options *opts);
/**
 * @brief dat_smooth_options_init() for a caller's struct of @p size bytes (its sizeof): the library
 *        writes min(size, sizeof) bytes and records that count in size, nothing past them. The
 *        dat_smooth_options_init() macro passes sizeof *(opts), so a program built against these
 *        headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] opts  the options to fill.
 * @param size  bytes at @p opts, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL or @p size < 4.
 */
DAT_API dat_status dat_smooth_options_init_sized(dat_smooth_options *opts, size_t size);
/** @brief Fills @p opts (see dat_smooth_options_init_sized()). */
#define dat_smooth_options_init(opts) dat_smooth_options_init_sized((opts), sizeof *(opts))

/** @brief The class value of an abstention in dat_smooth_predict() / _certify(). */
#define DAT_SMOOTH_ABSTAIN (-1)

/**
 * @brief PREDICT: for each sample, the top class of n noisy copies, or
 *        DAT_SMOOTH_ABSTAIN when a two-sided binomial test of the top two
 *        counts does not reject equality at level alpha. The model runs in
 *        eval mode (its own mode is restored afterwards).
 * @param model  the base classifier f.
 * @param x  float32 [N, C, H, W] of the model.
 * @param opts  options from dat_smooth_options_init() (NULL for the defaults).
 * @param[out] pred  host array of N classes, owned by the caller.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, bad options
 *         (sigma <= 0, n < 1, alpha outside (0, 1), batch outside [1, 10^6],
 *         first_index < 0) or shapes, with a message; DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_smooth_predict(dat_model *model, const dat_tensor *x,
                                      const dat_smooth_options *opts, int32_t *pred);

/**
 * @brief CERTIFY: the top class c_A of n0 noisy copies, then p_A = the
 *        Clopper-Pearson lower bound of c_A's count in n fresh copies; abstains
 *        (pred DAT_SMOOTH_ABSTAIN, radius 0) when p_A <= 1/2, else the radius
 *        is sigma * Phi^-1(p_A), rounded down to float (never above the
 *        proven one). The model runs in eval mode (its own mode is restored
 *        afterwards).
 * @param model  the base classifier f.
 * @param x  float32 [N, C, H, W] of the model.
 * @param opts  options from dat_smooth_options_init() (NULL for the defaults).
 * @param[out] pred  host array of N classes, owned by the caller.
 * @param[out] radius  host array of N l2 radii, owned by the caller (may be NULL).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, bad options (as
 *         dat_smooth_predict(), also n0 < 1 or n0 > n) or shapes;
 *         DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_smooth_certify(dat_model *model, const dat_tensor *x,
                                      const dat_smooth_options *opts, int32_t *pred,
                                      float *radius);

/**
 * @brief Certified accuracy at each of @p n_radii radii: the fraction of the
 *        @p count samples with pred == label and radius >= r (Table 2's layout).
 * @param pred  @p count classes from dat_smooth_certify().
 * @param radius  @p count radii from dat_smooth_certify().
 * @param labels  @p count true labels.
 * @param count  number of samples, >= 1.
 * @param radii  @p n_radii radii r at which to count.
 * @param n_radii  >= 1.
 * @param[out] accuracy  host array of n_radii fractions, owned by the caller.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers or counts < 1.
 */
DAT_API dat_status dat_smooth_certified_accuracy(const int32_t *pred, const float *radius,
                                                 const int32_t *labels, int64_t count,
                                                 const float *radii, int32_t n_radii,
                                                 double *accuracy);

/* ------------------------------------------------------------------------ */
/* AutoAttack                                                                */
/* ------------------------------------------------------------------------ */

/** @brief The attacks of AutoAttack's standard sequence, in its order. Values are fixed. */
typedef enum dat_aa_attack {
    DAT_AA_APGD_CE = 0, /**< APGD, cross-entropy loss */
    DAT_AA_APGD_T = 1,  /**< APGD, targeted DLR loss, one run per target class */
    DAT_AA_FAB_T = 2,   /**< FAB, targeted, one run per target class */
    DAT_AA_SQUARE = 3,  /**< Square, margin loss (score-based, no gradients) */
    DAT_AA_COUNT = 4,
    DAT_AA_ATTACK_FORCE_32BIT = 0x7fffffff
} dat_aa_attack;

/** @brief Bit of @p a in dat_autoattack_options.attacks. */
#define DAT_AA_BIT(a) (1u << (unsigned)(a))
/** @brief All four: the standard version. */
#define DAT_AA_STANDARD 0xfu

/** @brief Options of dat_eval_autoattack(); fill with dat_autoattack_options_init(). */
typedef struct dat_autoattack_options {
    uint32_t size;              /**< set by dat_autoattack_options_init() */
    dat_norm norm;              /**< DAT_NORM_LINF (default) or DAT_NORM_L2 */
    float eps;                  /**< radius; default 8/255 */
    uint32_t attacks;           /**< DAT_AA_BIT()s of the attacks to run; default DAT_AA_STANDARD */
    int32_t apgd_steps;         /**< APGD iterations; default 100 */
    int32_t target_classes;     /**< APGD-T and FAB-T targets (at most classes - 1); default 9 */
    int32_t fab_steps;          /**< FAB iterations; default 100 */
    int32_t square_queries;     /**< Square queries; default 5000 */
    float square_p_init;        /**< Square's initial fraction of pixels; default 0.8 */
    /** @{ */
    float lo, hi;               /**< valid input range [lo, hi]; default [0, 1] */
    /** @} */
    uint64_t seed;              /**< Philox key of the random starts; default 0 */
    int64_t first_index;        /**< stream of x's first sample; default 0 */
} dat_autoattack_options;

/**
 * @brief Fills @p opts with the defaults and sets its size.
 * @param[out] opts  the options to fill.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL.
 */
DAT_API dat_status dat_autoattack_options_init(dat_autoattack_options *opts);
/**
 * @brief dat_autoattack_options_init() for a caller's struct of @p size bytes (its sizeof): the
 *        library writes min(size, sizeof) bytes and records that count in size, nothing past them.
 *        The dat_autoattack_options_init() macro passes sizeof *(opts), so a program built against
 *        these headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] opts  the options to fill.
 * @param size  bytes at @p opts, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL or @p size < 4.
 */
DAT_API dat_status dat_autoattack_options_init_sized(dat_autoattack_options *opts, size_t size);
/** @brief Fills @p opts (see dat_autoattack_options_init_sized()). */
#define dat_autoattack_options_init(opts) dat_autoattack_options_init_sized((opts), sizeof *(opts))

/** @brief Per-sample outcome of dat_eval_autoattack(). Values are fixed. */
typedef enum dat_aa_outcome {
    DAT_AA_ROBUST = -1,        /**< every attack failed */
    DAT_AA_MISCLASSIFIED = -2, /**< the clean input is misclassified already */
    /* 0 .. DAT_AA_COUNT - 1: the dat_aa_attack that found an adversarial example */
    DAT_AA_OUTCOME_FORCE_32BIT = 0x7fffffff
} dat_aa_outcome;

/**
 * @brief AutoAttack of one batch, the model in eval mode (its own mode is
 *        restored afterwards). Sum robust_correct over the batches of a test
 *        set for the robust accuracy.
 * @param model  the model attacked.
 * @param x  float32 [N, C, H, W] inside [lo, hi].
 * @param y  int32 [N] labels.
 * @param opts  options from dat_autoattack_options_init() (NULL for the defaults).
 * @param[out] x_adv  float32 like x, the adversarial example of each broken point
 *                    and x itself elsewhere (may be NULL).
 * @param[out] outcome  host array of N, owned by the caller: a dat_aa_outcome or
 *                      the dat_aa_attack that broke the point (may be NULL).
 * @param[out] robust_correct  number of robust points (may be NULL).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, bad options or shapes,
 *         x outside [lo, hi], APGD-T with fewer than 4 classes;
 *         DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_eval_autoattack(dat_model *model, const dat_tensor *x, const dat_tensor *y,
                                       const dat_autoattack_options *opts, dat_tensor *x_adv,
                                       int32_t *outcome, int32_t *robust_correct);

#ifdef __cplusplus
}
#endif

#endif
