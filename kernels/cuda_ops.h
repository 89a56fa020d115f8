/* The layer ops of the CUDA backend, registered in dat_backend_cuda
 * (backend_cuda.cu); their semantics are those of lib/core/backend.h, and
 * tests/unit/test_backend_ops.c holds them to the CPU backend. */
#ifndef LIBDAT_KERNELS_CUDA_OPS_H
#define LIBDAT_KERNELS_CUDA_OPS_H

#include "cuda_common.h"

/* GEMM and linear layers (ops_blas.cu, cuBLAS). */
dat_status dat_cuda_gemm(dat_ctx *ctx, int trans_a, int trans_b, int m, int n, int k,
                         float alpha, const float *a, int lda, const float *b, int ldb,
                         float beta, float *c, int ldc);
dat_status dat_cuda_linear_fwd(dat_ctx *ctx, int n, int in, int out, const float *x,
                               const float *w, const float *b, float *y);
dat_status dat_cuda_linear_bwd(dat_ctx *ctx, int n, int in, int out, const float *x,
                               const float *w, const float *dy, float *dx, float *dw, float *db,
                               float beta);

/* Activations (x, y, dy, dx, relu masks, conv weights) are in the desc's or
 * the argument's format, dat_act_fmt; parameters and their gradients float32. */

/* Convolution (ops_conv.cu, cuDNN). */
dat_status dat_cuda_conv2d_fwd(dat_ctx *ctx, const dat_conv_desc *d, const void *x,
                               const void *w, const float *bias, void *y);
dat_status dat_cuda_conv2d_bwd_data(dat_ctx *ctx, const dat_conv_desc *d, const void *dy,
                                    const void *w, void *dx);
dat_status dat_cuda_conv2d_bwd_filter(dat_ctx *ctx, const dat_conv_desc *d, const void *x,
                                      const void *dy, float *dw, float *dbias, float beta);

/* Batch norm (ops_bn.cu). */
dat_status dat_cuda_bn_fwd_train(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                 const float *gamma, const float *beta, float *running_mean,
                                 float *running_var, float *save_mean, float *save_invstd,
                                 void *y);
dat_status dat_cuda_bn_fwd_eval(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, void *y);
dat_status dat_cuda_bn_bwd_train(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                 const void *dy, const float *gamma, const float *save_mean,
                                 const float *save_invstd, void *dx, float *dgamma,
                                 float *dbeta, float beta);
dat_status dat_cuda_bn_bwd_eval(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                const void *dy, const float *gamma, const float *running_mean,
                                const float *running_var, void *dx, float *dgamma,
                                float *dbeta, float beta);

/* Element-wise ops (ops_eltwise.cu). */
dat_status dat_cuda_relu_fwd(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *x, void *y);
dat_status dat_cuda_relu_bwd(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *y,
                             const void *dy, void *dx);
dat_status dat_cuda_act_convert(dat_ctx *ctx, int n, int c, int hw, dat_act_fmt src_fmt,
                                const void *src, const float *scale, const float *shift,
                                dat_act_fmt dst_fmt, void *dst);
dat_status dat_cuda_add(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *a, const void *b,
                        void *y);
dat_status dat_cuda_add_relu(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *a,
                             const void *b, void *y);
dat_status dat_cuda_axpy(dat_ctx *ctx, size_t n, float alpha, const float *x, float *y);
dat_status dat_cuda_scale(dat_ctx *ctx, size_t n, float alpha, float *x);
dat_status dat_cuda_check_finite(dat_ctx *ctx, size_t n, const float *x, int *bad);
dat_status dat_cuda_flag_range(dat_ctx *ctx, size_t n, const float *x, float lo, float hi,
                               uint32_t *flags, uint32_t bit);
dat_status dat_cuda_copy_if_flagged(dat_ctx *ctx, float *dst, const float *src, size_t n,
                                    const uint32_t *flag);
dat_status dat_cuda_flag_labels(dat_ctx *ctx, int n, const int32_t *y, int classes,
                                uint32_t *flags, uint32_t bit);

/* Pooling (ops_pool.cu). */
dat_status dat_cuda_pool_fwd(dat_ctx *ctx, const dat_pool_desc *d, const void *x, void *y,
                             int32_t *idx);
dat_status dat_cuda_pool_bwd(dat_ctx *ctx, const dat_pool_desc *d, const void *dy,
                             const int32_t *idx, void *dx);

/* Losses (ops_loss.cu). */
dat_status dat_cuda_softmax_xent(dat_ctx *ctx, int n, int classes, const float *z,
                                 const int32_t *labels, const float *weights, float *loss,
                                 float *dz, float scale);
dat_status dat_cuda_kl_div(dat_ctx *ctx, int n, int classes, const float *z_clean,
                           const float *z_adv, float *loss, float *dz_clean, float *dz_adv,
                           float scale);
dat_status dat_cuda_argmax(dat_ctx *ctx, int n, int classes, const float *z, int32_t *out);

/* Attack steps and the range of an input (ops_attack.cu). */
dat_status dat_cuda_attack_linf_step(dat_ctx *ctx, size_t n, float *x_adv, const float *g,
                                     const float *x0, float alpha, float eps, float lo,
                                     float hi);
dat_status dat_cuda_attack_l2_step(dat_ctx *ctx, int n, size_t d, float *x_adv, const float *g,
                                   const float *x0, float alpha, float eps, float lo, float hi);
dat_status dat_cuda_rows_renorm(dat_ctx *ctx, int n, size_t d, float *x, const float *norms);
dat_status dat_cuda_minmax(dat_ctx *ctx, size_t n, const float *x, float *lo, float *hi);

/* The optimizer step, all segments in two multi-segment launches (ops_optim.cu). */
dat_status dat_cuda_optim_update(dat_ctx *ctx, struct dat_optim *opt, float *params,
                                 const float *grads);

/* The quantizer (ops_quant.cu). */
dat_status dat_cuda_quant_encode(dat_ctx *ctx, const char *func,
                                 const struct dat_quant_config *c, const float *x, size_t n,
                                 float *residual, uint64_t key, uint64_t stream,
                                 uint64_t counter0, void *codes, uint64_t index_base);
dat_status dat_cuda_quant_encode_deferred(dat_ctx *ctx, const struct dat_quant_config *c,
                                          const float *x, size_t n, float *residual,
                                          const struct dat_quant_draw *draw, uint64_t counter0,
                                          void *codes, struct dat_quant_status *status);
dat_status dat_cuda_quant_flag_failed(dat_ctx *ctx, const struct dat_quant_status *status,
                                      size_t count, float *flag);
dat_status dat_cuda_quant_apply_failure(dat_ctx *ctx, const float *flag, float *residual,
                                        size_t r, float *x, size_t n, uint32_t *fault,
                                        uint32_t bit);
dat_status dat_cuda_quant_decode(dat_ctx *ctx, const struct dat_quant_config *c,
                                 const void *codes, size_t n, float *out, int accumulate,
                                 float scale);

/* Graphs of the context's stream (graph.cu). */
dat_status dat_cuda_capture_begin(dat_ctx *ctx);
dat_status dat_cuda_capture_end(dat_ctx *ctx, void **graph);
dat_status dat_cuda_graph_launch(dat_ctx *ctx, void *graph);
void dat_cuda_graph_destroy(dat_ctx *ctx, void *graph);

#endif
