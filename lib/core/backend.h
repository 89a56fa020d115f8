/*
 * The backend interface: every numeric operation of libdat goes through one
 * table of function pointers, so the CPU reference and the CUDA backend are
 * interchangeable and can be compared op by op (tests/test_backend_ops.c).
 *
 * Pointers passed to an op are in the backend's memory (host memory for the
 * CPU, device memory for CUDA) unless the name says host. Ops may run
 * asynchronously; synchronize() waits for them. Every op returns a status
 * and sets the message on failure.
 */
#ifndef LIBDAT_CORE_BACKEND_H
#define LIBDAT_CORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "libdat/dat_ctx.h"

/*
 * How a model stores its layers' activations and their gradients: the
 * activation format. Bit DAT_FMT_NHWC: channels last (n x h x w x c), else
 * NCHW; bit DAT_FMT_BF16: bfloat16 values (rounded to nearest even), else
 * float32. Whatever a caller of libdat sees (the model's input, its logits,
 * gradients, dat_model_activation) is DAT_FMT_F32; a model converts at its
 * edges (act_convert). Every backend takes every format; the CPU's reference
 * computes in float32 between conversions (lib/cpu/formats.c).
 */
typedef enum dat_act_fmt {
    DAT_FMT_F32 = 0,       /* float32, NCHW */
    DAT_FMT_NHWC = 1,      /* float32, NHWC */
    DAT_FMT_BF16 = 2,      /* bfloat16, NCHW */
    DAT_FMT_BF16_NHWC = 3, /* bfloat16, NHWC */
} dat_act_fmt;

/* Bytes of one value in format f. */
static inline size_t dat_fmt_size(dat_act_fmt f)
{
    return (f & DAT_FMT_BF16) ? 2 : 4;
}

/*
 * Shapes of the layer ops, row-major; activation buffers (x, y, dy, dx, a
 * relu_mask) are in the desc's format `fmt`, parameters and their gradients
 * float32 always. The output sizes are filled in by dat_conv_desc_init /
 * dat_pool_desc_init (lib/core/descs.c) so every backend agrees on them.
 */
typedef struct dat_conv_desc {
    int n, c_in, h_in, w_in;       /* input */
    int c_out, k_h, k_w;           /* weight: c_out x c_in x k_h x k_w */
    int stride, pad;               /* same in both spatial dimensions */
    int h_out, w_out;              /* derived */
    /* Fusion with a following ReLU, only for backends with fuses_conv_relu set:
     * relu_out: conv2d_fwd writes max(conv + bias, 0);
     * relu_mask (may be NULL): the backward ops use dy * (relu_mask > 0), relu_mask
     * being that ReLU's output, laid out as y. */
    int relu_out;
    const void *relu_mask;
    /* conv2d_bwd_data adds its result to what dx holds instead of overwriting it:
     * dx = dx + v in float, rounded once to the format (cuDNN's beta = 1), v being
     * the result in float. The backward pass gathers a node's gradient so. */
    int dx_add;
    /* The format of x, y, dy, dx, relu_mask and of the weight w the ops read:
     * in an NHWC format w is c_out x k_h x k_w x c_in (act_convert of the
     * c_out x c_in x (k_h k_w) weight), in a bf16 format bfloat16. The bias,
     * dw and dbias are float32, c_out x c_in x k_h x k_w, in every format. In a
     * bf16 format, as cuDNN computes it: conv2d_fwd rounds the convolution to
     * bfloat16 before the bias (and a fused ReLU) is added and the sum rounded;
     * conv2d_bwd_filter rounds the new dw to bfloat16 before it is added. */
    dat_act_fmt fmt;
} dat_conv_desc;

typedef enum dat_pool_kind { DAT_POOL_MAX = 0, DAT_POOL_AVG = 1 } dat_pool_kind;

typedef struct dat_pool_desc {
    dat_pool_kind kind;
    int n, c, h_in, w_in;
    int k, stride, pad;            /* average pooling counts padding (PyTorch's default) */
    int h_out, w_out;              /* derived */
    dat_act_fmt fmt;               /* of x, y, dy, dx; idx is laid out as y */
} dat_pool_desc;

typedef struct dat_bn_desc {
    int n, c, hw;                  /* x is n x c x hw */
    float eps;                     /* PyTorch default 1e-5 */
    float momentum;                /* running = (1 - m) running + m batch; PyTorch default 0.1 */
    /* Fusion with a following ReLU, honoured by every backend's batch-norm ops
     * (fuses_bn_relu says whether a model plans it): relu_out: the forward ops
     * write max(bn(x), 0); relu_mask (may be NULL): the backward ops use dy where
     * relu_mask > 0 and 0 elsewhere, relu_mask being that ReLU's output, laid out
     * as x. */
    int relu_out;
    const void *relu_mask;
    /* The backward ops add their dx to what dx holds, as conv2d_bwd_data does
     * with dat_conv_desc's dx_add. */
    int dx_add;
    /* A residual add before the batch norm, done by bn_fwd_eval (the other ops
     * ignore these): with x2 not NULL it normalizes x + x2, the sum rounded to
     * the format as the add op rounds it, and writes that sum to x_sum too (not
     * NULL then; it may alias x or x2, not y), in one pass where the add op and
     * the batch norm take two. */
    const void *x2;
    void *x_sum;
    /* A residual add after the batch norm, done by bn_fwd_train and bn_fwd_eval
     * (the backward ops ignore it; not with x2): with residual not NULL, y is
     * the add op's result of bn(x), rounded to the format, and residual, a fused
     * ReLU (relu_out) applied after the add: what the batch norm's normalizing
     * pass, the add and the ReLU after it give in three passes, in one. y
     * must not alias residual. */
    const void *residual;
    dat_act_fmt fmt;               /* of x, y, dy, dx, relu_mask; statistics float32 */
} dat_bn_desc;

struct dat_optim;        /* lib/optim/optim.h */
struct dat_quant_config; /* lib/quant/quantize.h */
struct dat_quant_status; /* lib/quant/quantize.h */
struct dat_quant_draw;   /* lib/quant/quantize.h */

typedef struct dat_backend {
    const char *name;
    /* 1 if the convolution ops honour dat_conv_desc's relu_out and relu_mask. */
    int fuses_conv_relu;
    /* 1 if models on this backend fuse a batch norm with the ReLU after it. */
    int fuses_bn_relu;
    /* 1 if quantizers of this backend's contexts compute on it (quant_encode /
     * quant_decode); 0: they compute on the host, tensors staged. */
    int runs_quantizer;
    /* Precisions (bit 1u << dat_precision) under which models on this backend
     * keep activations channels last when the context leaves the layout to the
     * backend (dat_ctx_options::channels_last = -1). */
    unsigned nhwc_precisions;

    /* Life cycle: init() sets up ctx->backend_state (device, streams, library
     * handles); fini() releases it and must accept a partial init. */
    dat_status (*init)(dat_ctx *ctx);
    void (*fini)(dat_ctx *ctx);
    dat_status (*synchronize)(dat_ctx *ctx);

    /* Memory. alloc() returns zeroed memory of at least nbytes (nbytes may be 0). */
    dat_status (*alloc)(dat_ctx *ctx, size_t nbytes, void **ptr);
    void (*free)(dat_ctx *ctx, void *ptr);
    dat_status (*copy_from_host)(dat_ctx *ctx, void *dst, const void *host_src, size_t nbytes);
    dat_status (*copy_to_host)(dat_ctx *ctx, void *host_dst, const void *src, size_t nbytes);
    dat_status (*copy)(dat_ctx *ctx, void *dst, const void *src, size_t nbytes);

    /* Writes count copies of the elem_size-byte pattern (1, 2, 4 or 8 bytes). */
    dat_status (*fill)(dat_ctx *ctx, void *dst, size_t count, const void *pattern,
                       size_t elem_size);

    /* Element-wise conversions; bfloat16 rounds to nearest even, NaN stays NaN. */
    dat_status (*f32_to_bf16)(dat_ctx *ctx, uint16_t *dst, const float *src, size_t n);
    dat_status (*bf16_to_f32)(dat_ctx *ctx, float *dst, const uint16_t *src, size_t n);

    /* Philox fills: dst[i] takes position offset + i of stream `stream` under
     * key `seed` (lib/core/philox.h defines the mapping). stream_low, when not
     * NULL, is a uint64 in backend memory whose low 32 bits are or-ed into
     * `stream` when the op runs: a captured step's counter (an attack's step),
     * which each replay advances without the host. */
    dat_status (*rng_uniform)(dat_ctx *ctx, float *dst, size_t n, float low, float high,
                              uint64_t seed, uint64_t stream, const uint64_t *stream_low,
                              uint64_t offset);
    dat_status (*rng_normal)(dat_ctx *ctx, float *dst, size_t n, float mean, float std,
                             uint64_t seed, uint64_t stream, const uint64_t *stream_low,
                             uint64_t offset);

    /*
     * Layer ops (the Models issue). Gradient outputs of parameters take a
     * `beta`: out = beta * out + new, so 0 overwrites and 1 accumulates.
     * Ops take scratch memory from the backend's own per-context workspace,
     * which grows to the largest shape seen and is then reused (no allocation
     * per step once shapes are known).
     */

    /* C = alpha * op(A) * op(B) + beta * C, row-major; op transposes when trans_* != 0.
     * op(A) is m x k, op(B) is k x n, C is m x n with leading dimension ldc. */
    dat_status (*gemm)(dat_ctx *ctx, int trans_a, int trans_b, int m, int n, int k, float alpha,
                       const float *a, int lda, const float *b, int ldb, float beta, float *c,
                       int ldc);

    /* y = conv(x, w) + bias (bias may be NULL). */
    dat_status (*conv2d_fwd)(dat_ctx *ctx, const dat_conv_desc *d, const void *x,
                             const void *w, const float *bias, void *y);
    /* dx = conv_transpose(dy, w); overwrites dx, or adds to it (dx_add). */
    dat_status (*conv2d_bwd_data)(dat_ctx *ctx, const dat_conv_desc *d, const void *dy,
                                  const void *w, void *dx);
    /* dw = beta dw + corr(x, dy); dbias = beta dbias + sum(dy) (dbias may be NULL). */
    dat_status (*conv2d_bwd_filter)(dat_ctx *ctx, const dat_conv_desc *d, const void *x,
                                    const void *dy, float *dw, float *dbias, float beta);

    /* y = x W^T + b for x: n x in, W: out x in, b: out (may be NULL). */
    dat_status (*linear_fwd)(dat_ctx *ctx, int n, int in, int out, const float *x,
                             const float *w, const float *b, float *y);
    /* dx = dy W (overwrites; dx may be NULL); dW = beta dW + dy^T x; db = beta db + sum dy
     * (dW, db may be NULL: the input-gradient-only backward). */
    dat_status (*linear_bwd)(dat_ctx *ctx, int n, int in, int out, const float *x,
                             const float *w, const float *dy, float *dx, float *dw, float *db,
                             float beta);

    /* Batch norm, train mode: batch statistics; updates running_mean / running_var
     * (unbiased variance, as PyTorch) unless they are NULL; saves mean and 1/sqrt(var+eps)
     * (biased) for the backward. */
    dat_status (*bn_fwd_train)(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                               const float *gamma, const float *beta_, float *running_mean,
                               float *running_var, float *save_mean, float *save_invstd,
                               void *y);
    /* Batch norm, eval mode: running statistics. */
    dat_status (*bn_fwd_eval)(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                              const float *gamma, const float *beta_, const float *running_mean,
                              const float *running_var, void *y);
    /* Backward of bn_fwd_train: dx overwritten (or added to: dx_add); dgamma / dbeta =
     * beta dgamma + ... (may be NULL). */
    dat_status (*bn_bwd_train)(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                               const void *dy, const float *gamma, const float *save_mean,
                               const float *save_invstd, void *dx, float *dgamma, float *dbeta,
                               float beta);
    /* Backward of bn_fwd_eval (an affine map): dx = dy gamma / sqrt(running_var + eps);
     * dgamma / dbeta as above (may be NULL). */
    dat_status (*bn_bwd_eval)(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                              const void *dy, const float *gamma, const float *running_mean,
                              const float *running_var, void *dx, float *dgamma, float *dbeta,
                              float beta);

    /* y = max(x, 0); dx = dy * (y > 0), n values in format fmt (only its value type
     * matters). y may alias x, dx may alias dy. */
    dat_status (*relu_fwd)(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *x, void *y);
    dat_status (*relu_bwd)(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *y,
                           const void *dy, void *dx);

    /* Pooling; max pooling records the argmax (index into the input plane,
     * h * w_in + w, in every layout) in idx. */
    dat_status (*pool_fwd)(dat_ctx *ctx, const dat_pool_desc *d, const void *x, void *y,
                           int32_t *idx);
    /* dx overwritten. */
    dat_status (*pool_bwd)(dat_ctx *ctx, const dat_pool_desc *d, const void *dy,
                           const int32_t *idx, void *dx);

    /*
     * Per-channel affine map between formats: dst = src * scale[c] + shift[c]
     * for the n x c x hw values (scale, shift float32, either may be NULL: 1, 0),
     * read in src_fmt and written in dst_fmt (rounded to bfloat16 where dst_fmt
     * is bf16). The model's input normalization, the backward of it, and every
     * change of format (the model's edges, flatten, NHWC conv weights). dst may
     * alias src only when the formats are the same.
     */
    dat_status (*act_convert)(dat_ctx *ctx, int n, int c, int hw, dat_act_fmt src_fmt,
                              const void *src, const float *scale, const float *shift,
                              dat_act_fmt dst_fmt, void *dst);

    /* y = a + b on n values in format fmt (only its value type matters); y may
     * alias a or b (residual add). dx accumulation: y += x with a == y. */
    dat_status (*add)(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *a, const void *b,
                      void *y);
    /* y = relu(a + b), the sum rounded to the format first, the ReLU as relu_fwd
     * (NaN to 0): an add with the ReLU after it (a residual block's end) in one
     * pass. y may alias a or b. */
    dat_status (*add_relu)(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *a,
                           const void *b, void *y);
    /* y = alpha * x + y. */
    dat_status (*axpy)(dat_ctx *ctx, size_t n, float alpha, const float *x, float *y);
    /* x = alpha * x. */
    dat_status (*scale)(dat_ctx *ctx, size_t n, float alpha, float *x);

    /*
     * Softmax cross-entropy over n rows of `classes` logits, fused forward and
     * backward: loss[i] = -log softmax(z_i)[y_i] (loss may be NULL); when dz is
     * not NULL, dz_i = scale * w_i * (softmax(z_i) - onehot(y_i)) with w_i =
     * weights[i] (weights may be NULL: all 1). Labels must be in [0, classes):
     * the caller checks.
     */
    dat_status (*softmax_xent)(dat_ctx *ctx, int n, int classes, const float *z,
                               const int32_t *labels, const float *weights, float *loss,
                               float *dz, float scale);
    /*
     * TRADES' KL(p_clean || p_adv) per row, p = softmax: loss[i] = sum_j p_j (log p_j - log q_j)
     * (loss may be NULL); gradients times `scale` w.r.t. the adversarial logits (dz_adv)
     * and the clean logits (dz_clean); either may be NULL.
     */
    dat_status (*kl_div)(dat_ctx *ctx, int n, int classes, const float *z_clean,
                         const float *z_adv, float *loss, float *dz_clean, float *dz_adv,
                         float scale);
    /* argmax of each row (ties: the lowest index). */
    dat_status (*argmax)(dat_ctx *ctx, int n, int classes, const float *z, int32_t *out);
    /* Sets *bad to 1 if any of the n values is NaN or Inf, else 0 (host int). */
    dat_status (*check_finite)(dat_ctx *ctx, size_t n, const float *x, int *bad);
    /*
     * The checks of a captured step (lib/core/capture.c), which read nothing
     * back: flag_range ors `bit` into *flags (a uint32 in backend memory) if
     * any of the n values is NaN, Inf or outside [lo, hi]; flag_labels if any
     * of the n labels is outside [0, classes).
     */
    dat_status (*flag_range)(dat_ctx *ctx, size_t n, const float *x, float lo, float hi,
                             uint32_t *flags, uint32_t bit);
    dat_status (*flag_labels)(dat_ctx *ctx, int n, const int32_t *y, int classes,
                              uint32_t *flags, uint32_t bit);
    /* dst[0..n) = src[0..n) if *flag (a uint32 in backend memory) is not 0
     * when the op runs: a captured step puts back what a failed check spoilt
     * (NULL where a backend has no graphs). */
    dat_status (*copy_if_flagged)(dat_ctx *ctx, float *dst, const float *src, size_t n,
                                  const uint32_t *flag);

    /*
     * Attack steps (the Attack issue), in one pass each. x0 is the clean input,
     * x_adv the iterate; both n samples of d values.
     * linf: x_adv = clip(clip(x_adv + alpha sign(g), x0 - eps, x0 + eps), lo, hi);
     *       with g NULL only the projections (after a random start).
     * l2:   x_adv += alpha g_i / ||g_i|| per sample (no step where ||g_i|| = 0), then
     *       delta_i = x_adv_i - x0_i is scaled down to norm eps if longer, then clipped
     *       to [lo, hi]; with g NULL only the projections.
     */
    dat_status (*attack_linf_step)(dat_ctx *ctx, size_t n, float *x_adv, const float *g,
                                   const float *x0, float alpha, float eps, float lo, float hi);
    dat_status (*attack_l2_step)(dat_ctx *ctx, int n, size_t d, float *x_adv, const float *g,
                                 const float *x0, float alpha, float eps, float lo, float hi);
    /* Scales each of the n rows of d values to the l2 norm norms[i] (host array;
     * rows of norm 0 stay 0). */
    dat_status (*rows_renorm)(dat_ctx *ctx, int n, size_t d, float *x, const float *norms);
    /* Smallest and largest of n values into host floats (NaN is ignored). */
    dat_status (*minmax)(dat_ctx *ctx, size_t n, const float *x, float *lo, float *hi);

    /*
     * One optimizer step over opt's segments (lib/optim/optim.h): each segment's
     * direction u and its squared norms, the trust ratio, params -= scale u.
     * opt's moments and u are in this backend's memory; opt->step is the step
     * being taken (the caller advances it). Frozen segments (lr_scale 0) keep
     * their bits.
     */
    dat_status (*optim_update)(dat_ctx *ctx, struct dat_optim *opt, float *params,
                               const float *grads);

    /*
     * The randomized quantizer, byte for byte the encoding of
     * lib/quant/quantize.h (its layout) and quant_math.h (its per-element
     * math). quant_encode: x[0..n) (plus residual, when not NULL: error
     * feedback, updated) into codes, element i drawing position counter0 + i
     * of (key, stream); a NaN / Inf or an overflowing norm fails with
     * DAT_ERR_NUMERIC naming `func` and element index_base + i, the residual
     * zeroed. quant_decode: out = (accumulate ? out : 0) + q * scale.
     */
    dat_status (*quant_encode)(dat_ctx *ctx, const char *func, const struct dat_quant_config *c,
                               const float *x, size_t n, float *residual, uint64_t key,
                               uint64_t stream, uint64_t counter0, void *codes,
                               uint64_t index_base);
    dat_status (*quant_decode)(dat_ctx *ctx, const struct dat_quant_config *c, const void *codes,
                               size_t n, float *out, int accumulate, float scale);
    /*
     * quant_encode without waiting to report (NULL where a backend has none):
     * the same codes and residual update, queued, the outcome written to
     * *status (ctx's memory; lib/quant/quantize.h; the bad index relative to
     * x) instead of returned, and the residual not zeroed on a failure (the
     * caller, once it reads the status, does). What a gradient synchronizer
     * encodes during the backward pass, with no synchronization per bucket.
     */
    dat_status (*quant_encode_deferred)(dat_ctx *ctx, const struct dat_quant_config *c,
                                        const float *x, size_t n, float *residual,
                                        const struct dat_quant_draw *draw, uint64_t counter0,
                                        void *codes, struct dat_quant_status *status);
    /*
     * The outcome of a recorded quantized all-reduce, which reads nothing back
     * (NULL where a backend has none; both in ctx's memory): quant_flag_failed
     * sets *flag to 1 if any of the count statuses reports a failed encode,
     * else to 0;
     * quant_apply_failure, when *flag != 0 (the ranks' flags summed), ors
     * `bit` into *fault, fills x[0..n) with NaN, so that the step's update
     * is skipped on every rank, and zeroes residual[0..r), as a failed call
     * op by op does on every rank.
     */
    dat_status (*quant_flag_failed)(dat_ctx *ctx, const struct dat_quant_status *status,
                                    size_t count, float *flag);
    dat_status (*quant_apply_failure)(dat_ctx *ctx, const float *flag, float *residual,
                                      size_t r, float *x, size_t n, uint32_t *fault,
                                      uint32_t bit);

    /*
     * Graphs of queued work (NULL where a backend has none). capture_begin:
     * the ops that follow are recorded instead of run, until capture_end, which
     * returns an executable graph in *graph; if an op could not be recorded
     * (it synchronized, allocated, read back), capture_end fails, *graph is
     * NULL and the context runs ops again. graph_launch queues one run of the
     * graph; it fails with DAT_ERR_STATE, running nothing, when memory the
     * graph refers to has moved since (the workspace grew): capture it again.
     */
    dat_status (*capture_begin)(dat_ctx *ctx);
    dat_status (*capture_end)(dat_ctx *ctx, void **graph);
    dat_status (*graph_launch)(dat_ctx *ctx, void *graph);
    void (*graph_destroy)(dat_ctx *ctx, void *graph);
} dat_backend;

/* Op profiling (lib/core/profile.c): DAT_OP marks the time before an op and
 * books it after, when the context profiles; both return at once otherwise. */
typedef struct dat_profile dat_profile;
void dat_prof_mark(dat_ctx *ctx);
dat_status dat_prof_done(dat_ctx *ctx, const char *op, dat_status s);

/* Calls backend op `op` of ctx, or fails with DAT_ERR_UNSUPPORTED naming the op
 * and the backend where that backend does not have it (yet). The comma operator
 * sequences the mark before the call. */
#define DAT_OP(ctx, op, ...)                                                          \
    ((ctx)->be->op ? dat_prof_done((ctx), #op,                                        \
                                   (dat_prof_mark(ctx), (ctx)->be->op((ctx), __VA_ARGS__))) \
                   : dat_error(DAT_ERR_UNSUPPORTED, __func__,                         \
                               "op " #op " is not implemented on the %s backend",     \
                               (ctx)->be->name))

/* Derive output sizes; fail with a message naming `func` on impossible shapes. */
dat_status dat_conv_desc_init(const char *func, dat_conv_desc *d);
dat_status dat_pool_desc_init(const char *func, dat_pool_desc *d);

/* The CPU backend, always built. */
extern const dat_backend dat_backend_cpu;

#if DAT_HAVE_CUDA
/* The CUDA backend (kernels/), built when nvcc is found. */
extern const dat_backend dat_backend_cuda;
/* Number of CUDA devices, 0 without a driver or GPU; never fails. */
int dat_cuda_count_devices(void);
#endif

#endif
