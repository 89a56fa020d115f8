/* Batch normalization of the CPU backend, with PyTorch's semantics: batch
 * statistics with the biased variance in train mode, running statistics
 * updated with the unbiased one, running statistics in eval mode. Sums are
 * accumulated in double. A following ReLU can be fused (dat_bn_desc's
 * relu_out, relu_mask): it saves a pass over the activations each way. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "../core/error.h"
#include "cpu.h"

static inline size_t at(const dat_bn_desc *d, int i, int c)
{
    return ((size_t)i * (size_t)d->c + (size_t)c) * (size_t)d->hw;
}

/* Per-channel mean and biased variance of x (two passes, for accuracy). */
static void channel_moments(const dat_bn_desc *d, const float *x, int c, double *mean,
                            double *var)
{
    double s = 0;
    for (int i = 0; i < d->n; ++i) {
        const float *p = x + at(d, i, c);
        for (int k = 0; k < d->hw; ++k)
            s += p[k];
    }
    double count = (double)d->n * d->hw, m = s / count, q = 0;
    for (int i = 0; i < d->n; ++i) {
        const float *p = x + at(d, i, c);
        for (int k = 0; k < d->hw; ++k)
            q += ((double)p[k] - m) * ((double)p[k] - m);
    }
    *mean = m;
    *var = q / count;
}

/* v > 0 ? v : +0 (NaN too) as a mask on the bits: a branch on the sign of an
 * activation mispredicts half the time. */
static inline float relu_bits(float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    b &= -(uint32_t)(v > 0.0f);
    memcpy(&v, &b, sizeof v);
    return v;
}

/* y = (x - mean) * scale + shift, in double and rounded once (then max(y, 0)
 * with relu_out). Folding the mean into the shift (x * scale + (shift - mean *
 * scale)) cancels catastrophically when |mean| >> std; and outputs near 0 must
 * be accurate, because the ReLU after a BN turns a sign error into a wrong
 * gradient. */
static void normalize_channel(const dat_bn_desc *d, const float *x, int c, double mean,
                              double scale, double shift, float *y)
{
    for (int i = 0; i < d->n; ++i) {
        const float *p = x + at(d, i, c);
        float *q = y + at(d, i, c);
        if (d->relu_out) {
            for (int k = 0; k < d->hw; ++k)
                q[k] = relu_bits((float)(((double)p[k] - mean) * scale + shift));
        } else {
            for (int k = 0; k < d->hw; ++k)
                q[k] = (float)(((double)p[k] - mean) * scale + shift);
        }
    }
}

/* With a fused ReLU, one channel's incoming gradient per thread, from the
 * context's workspace; NULL without one. */
static dat_status mask_buffers(dat_ctx *ctx, const dat_bn_desc *d, int nt, float **bufs)
{
    *bufs = NULL;
    if (!d->relu_mask)
        return DAT_OK;
    return dat_cpu_workspace(ctx, (size_t)nt * (size_t)d->n * (size_t)d->hw, bufs);
}

/* This thread's channel in mask_buffers' bufs (NULL without a fused ReLU). */
static float *thread_buffer(const dat_bn_desc *d, float *bufs)
{
    return bufs ? bufs + (size_t)omp_get_thread_num() * (size_t)d->n * (size_t)d->hw : NULL;
}

/* The gradient arriving at channel c's BN output, read by the sums and by dx:
 * with a fused ReLU, dy where its output (the mask) is positive and 0 elsewhere
 * (as dat_cpu_relu_bwd), masked once into buf, planes back to back; without
 * one, NULL (dy itself is read). */
static const float *channel_dy(const dat_bn_desc *d, const float *dy, int c, float *buf)
{
    if (!d->relu_mask)
        return NULL;
    for (int i = 0; i < d->n; ++i)
        dat_cpu_relu_mask(dy + at(d, i, c), dat_cpu_mask_at(d->relu_mask, at(d, i, c)),
                          (size_t)d->hw, buf + (size_t)i * (size_t)d->hw);
    return buf;
}

/* Plane i of channel c's incoming gradient: from channel_dy's buffer, or dy. */
static const float *dy_plane(const dat_bn_desc *d, const float *dy, const float *masked, int i,
                             int c)
{
    return masked ? masked + (size_t)i * (size_t)d->hw : dy + at(d, i, c);
}

dat_status dat_cpu_bn_fwd_train(dat_ctx *ctx, const dat_bn_desc *d, const float *x,
                                const float *gamma, const float *beta, float *running_mean,
                                float *running_var, float *save_mean, float *save_invstd,
                                float *y)
{
    int nt = dat_cpu_threads(ctx, (size_t)d->n * (size_t)d->c * (size_t)d->hw);
    double count = (double)d->n * d->hw;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int c = 0; c < d->c; ++c) {
        double mean, var;
        channel_moments(d, x, c, &mean, &var);
        double invstd = 1.0 / sqrt(var + (double)d->eps);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        if (running_mean) {
            double unbiased = count > 1 ? var * count / (count - 1) : var;
            running_mean[c] = (float)((1.0 - d->momentum) * running_mean[c] + d->momentum * mean);
            running_var[c] = (float)((1.0 - d->momentum) * running_var[c] + d->momentum * unbiased);
        }
        normalize_channel(d, x, c, mean, gamma[c] * invstd, beta[c], y);
    }
    return DAT_OK;
}

dat_status dat_cpu_bn_fwd_eval(dat_ctx *ctx, const dat_bn_desc *d, const float *x,
                               const float *gamma, const float *beta, const float *running_mean,
                               const float *running_var, float *y)
{
    int nt = dat_cpu_threads(ctx, (size_t)d->n * (size_t)d->c * (size_t)d->hw);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int c = 0; c < d->c; ++c) {
        double invstd = 1.0 / sqrt((double)running_var[c] + (double)d->eps);
        normalize_channel(d, x, c, running_mean[c], gamma[c] * invstd, beta[c], y);
    }
    return DAT_OK;
}

/* sum(dy) and sum(dy * xhat) of one channel, xhat = (x - mean) * invstd. */
static void channel_grad_sums(const dat_bn_desc *d, const float *x, const float *dy,
                              const float *masked, int c, double mean, double invstd,
                              double *sdy, double *sdyx)
{
    double a = 0, b = 0;
    for (int i = 0; i < d->n; ++i) {
        const float *p = x + at(d, i, c), *g = dy_plane(d, dy, masked, i, c);
        for (int k = 0; k < d->hw; ++k) {
            a += g[k];
            b += (double)g[k] * (((double)p[k] - mean) * invstd);
        }
    }
    *sdy = a;
    *sdyx = b;
}

static void param_grads(float *dgamma, float *dbeta, float beta_acc, int c, double sdy,
                        double sdyx)
{
    /* beta 0 overwrites, even a NaN left in the buffer */
    if (dgamma)
        dgamma[c] = (float)(beta_acc == 0.0f ? sdyx : beta_acc * dgamma[c] + sdyx);
    if (dbeta)
        dbeta[c] = (float)(beta_acc == 0.0f ? sdy : beta_acc * dbeta[c] + sdy);
}

dat_status dat_cpu_bn_bwd_train(dat_ctx *ctx, const dat_bn_desc *d, const float *x,
                                const float *dy, const float *gamma, const float *save_mean,
                                const float *save_invstd, float *dx, float *dgamma, float *dbeta,
                                float beta)
{
    (void)save_mean; /* recomputed in double below; the CUDA backend uses them */
    (void)save_invstd;
    int nt = dat_cpu_threads(ctx, (size_t)d->n * (size_t)d->c * (size_t)d->hw);
    double count = (double)d->n * d->hw;
    float *bufs;
    DAT_TRY(mask_buffers(ctx, d, nt, &bufs));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int c = 0; c < d->c; ++c) {
        const float *masked = channel_dy(d, dy, c, thread_buffer(d, bufs));
        /* The batch statistics again, in double: xhat from the float-rounded saved
         * mean is off by a constant, which leaks sum(dy) into sum(dy * xhat)
         * (relative errors of 1e-3 in gamma's gradient when |mean| >> std). */
        double mean, var, sdy, sdyx;
        channel_moments(d, x, c, &mean, &var);
        double invstd = 1.0 / sqrt(var + (double)d->eps);
        channel_grad_sums(d, x, dy, masked, c, mean, invstd, &sdy, &sdyx);
        param_grads(dgamma, dbeta, beta, c, sdy, sdyx);
        /* dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)) */
        double k = gamma[c] * invstd, mdy = sdy / count, mdyx = sdyx / count;
        for (int i = 0; i < d->n; ++i) {
            const float *p = x + at(d, i, c), *g = dy_plane(d, dy, masked, i, c);
            float *q = dx + at(d, i, c);
            for (int j = 0; j < d->hw; ++j) {
                double xhat = ((double)p[j] - mean) * invstd;
                q[j] = (float)(k * ((double)g[j] - mdy - xhat * mdyx));
            }
        }
    }
    return DAT_OK;
}

dat_status dat_cpu_bn_bwd_eval(dat_ctx *ctx, const dat_bn_desc *d, const float *x,
                               const float *dy, const float *gamma, const float *running_mean,
                               const float *running_var, float *dx, float *dgamma, float *dbeta,
                               float beta)
{
    int nt = dat_cpu_threads(ctx, (size_t)d->n * (size_t)d->c * (size_t)d->hw);
    float *bufs;
    DAT_TRY(mask_buffers(ctx, d, nt, &bufs));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int c = 0; c < d->c; ++c) {
        const float *masked = channel_dy(d, dy, c, thread_buffer(d, bufs));
        double invstd = 1.0 / sqrt((double)running_var[c] + (double)d->eps);
        if (dgamma || dbeta) {
            double sdy, sdyx;
            channel_grad_sums(d, x, dy, masked, c, running_mean[c], invstd, &sdy, &sdyx);
            param_grads(dgamma, dbeta, beta, c, sdy, sdyx);
        }
        float k = (float)(gamma[c] * invstd);
        for (int i = 0; i < d->n; ++i) {
            const float *g = dy_plane(d, dy, masked, i, c);
            float *q = dx + at(d, i, c);
            for (int j = 0; j < d->hw; ++j)
                q[j] = g[j] * k;
        }
    }
    return DAT_OK;
}
