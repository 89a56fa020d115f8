/* Helpers shared by the CPU backend's source files. */
#ifndef LIBDAT_CPU_CPU_H
#define LIBDAT_CPU_CPU_H

#include <stddef.h>

#include "../core/ctx.h"

/* out = dy where mask > 0 and 0 elsewhere: a ReLU's backward with its output as
 * the mask (ops_eltwise.c); serial, for callers inside a parallel region too. */
void dat_cpu_relu_mask(const float *dy, const float *mask, size_t n, float *out);

/* A float32 op's ReLU mask (a desc's relu_mask, float32 there) from element
 * `off` on, or NULL without one. */
static inline const float *dat_cpu_mask_at(const void *mask, size_t off)
{
    return mask ? (const float *)mask + off : NULL;
}

/* `rows` rows of n floats, dst_step and src_step floats apart: dst = src, or
 * dst += src (rows.c; AVX-512 where the CPU has it). */
void dat_cpu_copy_rows(float *dst, size_t dst_step, const float *src, size_t src_step, int rows,
                       int n);
void dat_cpu_add_rows(float *dst, size_t dst_step, const float *src, size_t src_step, int rows,
                      int n);

/* Makes OpenBLAS run the kernels of this CPU when it fell back to its generic
 * ones (blas_core.c); once per process, logged on `ctx` when it switched. */
void dat_cpu_blas_core(const dat_ctx *ctx);
/* Threads to use for `work` elements: 1 for small work, else the context's count. */
int dat_cpu_threads(const dat_ctx *ctx, size_t work);
/* Backend state and the per-context workspace (workspace.c): returns at least
 * `floats` floats of scratch, valid until the next call on this context. */
dat_status dat_cpu_state_init(dat_ctx *ctx);
void dat_cpu_state_fini(dat_ctx *ctx);
dat_status dat_cpu_workspace(dat_ctx *ctx, size_t floats, float **ws);
/* A second such buffer, for formats.c's float32 copies of an op's operands. */
dat_status dat_cpu_fmt_workspace(dat_ctx *ctx, size_t floats, float **ws);

/* Convolution (ops_conv.c) and pooling (ops_pool.c). */
dat_status dat_cpu_conv2d_fwd(dat_ctx *ctx, const dat_conv_desc *d, const float *x,
                              const float *w, const float *bias, float *y);
dat_status dat_cpu_conv2d_bwd_data(dat_ctx *ctx, const dat_conv_desc *d, const float *dy,
                                   const float *w, float *dx);
dat_status dat_cpu_conv2d_bwd_filter(dat_ctx *ctx, const dat_conv_desc *d, const float *x,
                                     const float *dy, float *dw, float *dbias, float beta);
dat_status dat_cpu_pool_fwd(dat_ctx *ctx, const dat_pool_desc *d, const float *x, float *y,
                            int32_t *idx);
dat_status dat_cpu_pool_bwd(dat_ctx *ctx, const dat_pool_desc *d, const float *dy,
                            const int32_t *idx, float *dx);

/* GEMM and linear layers (ops_gemm.c). */
dat_status dat_cpu_gemm(dat_ctx *ctx, int trans_a, int trans_b, int m, int n, int k,
                        float alpha, const float *a, int lda, const float *b, int ldb,
                        float beta, float *c, int ldc);
dat_status dat_cpu_linear_fwd(dat_ctx *ctx, int n, int in, int out, const float *x,
                              const float *w, const float *b, float *y);
dat_status dat_cpu_linear_bwd(dat_ctx *ctx, int n, int in, int out, const float *x,
                              const float *w, const float *dy, float *dx, float *dw, float *db,
                              float beta);

/* Element-wise ops (ops_eltwise.c), batch norm (ops_bn.c), losses (ops_loss.c);
 * semantics in lib/core/backend.h. */
dat_status dat_cpu_relu_fwd(dat_ctx *ctx, size_t n, const float *x, float *y);
dat_status dat_cpu_relu_bwd(dat_ctx *ctx, size_t n, const float *y, const float *dy, float *dx);
dat_status dat_cpu_channel_affine(dat_ctx *ctx, int n, int c, int hw, const float *x,
                                  const float *scale, const float *shift, float *y);
dat_status dat_cpu_add(dat_ctx *ctx, size_t n, const float *a, const float *b, float *y);
dat_status dat_cpu_axpy(dat_ctx *ctx, size_t n, float alpha, const float *x, float *y);
dat_status dat_cpu_scale(dat_ctx *ctx, size_t n, float alpha, float *x);
dat_status dat_cpu_check_finite(dat_ctx *ctx, size_t n, const float *x, int *bad);
dat_status dat_cpu_flag_range(dat_ctx *ctx, size_t n, const float *x, float lo, float hi,
                              uint32_t *flags, uint32_t bit);
dat_status dat_cpu_flag_labels(dat_ctx *ctx, int n, const int32_t *y, int classes,
                               uint32_t *flags, uint32_t bit);
dat_status dat_cpu_bn_fwd_train(dat_ctx *ctx, const dat_bn_desc *d, const float *x,
                                const float *gamma, const float *beta, float *running_mean,
                                float *running_var, float *save_mean, float *save_invstd,
                                float *y);
dat_status dat_cpu_bn_fwd_eval(dat_ctx *ctx, const dat_bn_desc *d, const float *x,
                               const float *gamma, const float *beta, const float *running_mean,
                               const float *running_var, float *y);
dat_status dat_cpu_bn_bwd_train(dat_ctx *ctx, const dat_bn_desc *d, const float *x,
                                const float *dy, const float *gamma, const float *save_mean,
                                const float *save_invstd, float *dx, float *dgamma, float *dbeta,
                                float beta);
dat_status dat_cpu_bn_bwd_eval(dat_ctx *ctx, const dat_bn_desc *d, const float *x,
                               const float *dy, const float *gamma, const float *running_mean,
                               const float *running_var, float *dx, float *dgamma, float *dbeta,
                               float beta);
dat_status dat_cpu_softmax_xent(dat_ctx *ctx, int n, int classes, const float *z,
                                const int32_t *labels, const float *weights, float *loss,
                                float *dz, float scale);
dat_status dat_cpu_kl_div(dat_ctx *ctx, int n, int classes, const float *z_clean,
                          const float *z_adv, float *loss, float *dz_clean, float *dz_adv,
                          float scale);
dat_status dat_cpu_argmax(dat_ctx *ctx, int n, int classes, const float *z, int32_t *out);

/* The table's entry points for activation formats (formats.c): float32 NCHW
 * goes to the float32 ops above, other formats through float32 copies. */
dat_status dat_cpu_act_convert(dat_ctx *ctx, int n, int c, int hw, dat_act_fmt src_fmt,
                               const void *src, const float *scale, const float *shift,
                               dat_act_fmt dst_fmt, void *dst);
dat_status dat_cpu_fmt_conv2d_fwd(dat_ctx *ctx, const dat_conv_desc *d, const void *x,
                                  const void *w, const float *bias, void *y);
dat_status dat_cpu_fmt_conv2d_bwd_data(dat_ctx *ctx, const dat_conv_desc *d, const void *dy,
                                       const void *w, void *dx);
dat_status dat_cpu_fmt_conv2d_bwd_filter(dat_ctx *ctx, const dat_conv_desc *d, const void *x,
                                         const void *dy, float *dw, float *dbias, float beta);
dat_status dat_cpu_fmt_bn_fwd_train(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                    const float *gamma, const float *beta, float *running_mean,
                                    float *running_var, float *save_mean, float *save_invstd,
                                    void *y);
dat_status dat_cpu_fmt_bn_fwd_eval(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                   const float *gamma, const float *beta,
                                   const float *running_mean, const float *running_var, void *y);
dat_status dat_cpu_fmt_bn_bwd_train(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                    const void *dy, const float *gamma, const float *save_mean,
                                    const float *save_invstd, void *dx, float *dgamma,
                                    float *dbeta, float beta);
dat_status dat_cpu_fmt_bn_bwd_eval(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                   const void *dy, const float *gamma, const float *running_mean,
                                   const float *running_var, void *dx, float *dgamma,
                                   float *dbeta, float beta);
dat_status dat_cpu_fmt_pool_fwd(dat_ctx *ctx, const dat_pool_desc *d, const void *x, void *y,
                                int32_t *idx);
dat_status dat_cpu_fmt_pool_bwd(dat_ctx *ctx, const dat_pool_desc *d, const void *dy,
                                const int32_t *idx, void *dx);
dat_status dat_cpu_fmt_relu_fwd(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *x, void *y);
dat_status dat_cpu_fmt_relu_bwd(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *y,
                                const void *dy, void *dx);
dat_status dat_cpu_fmt_add(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *a, const void *b,
                           void *y);
dat_status dat_cpu_fmt_add_relu(dat_ctx *ctx, dat_act_fmt fmt, size_t n, const void *a,
                                const void *b, void *y);

/* Attack steps (ops_attack.c); semantics in lib/core/backend.h. */
dat_status dat_cpu_attack_linf_step(dat_ctx *ctx, size_t n, float *x_adv, const float *g,
                                    const float *x0, float alpha, float eps, float lo, float hi);
dat_status dat_cpu_attack_l2_step(dat_ctx *ctx, int n, size_t d, float *x_adv, const float *g,
                                  const float *x0, float alpha, float eps, float lo, float hi);
dat_status dat_cpu_rows_renorm(dat_ctx *ctx, int n, size_t d, float *x, const float *norms);
dat_status dat_cpu_minmax(dat_ctx *ctx, size_t n, const float *x, float *lo, float *hi);

#endif
