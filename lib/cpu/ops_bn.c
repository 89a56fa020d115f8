/* Batch normalization of the CPU backend, with PyTorch's semantics: batch
 * statistics with the biased variance in train mode, running statistics
 * updated with the unbiased one, running statistics in eval mode. Sums are
 * accumulated in double. A following ReLU can be fused (dat_bn_desc's
 * relu_out, relu_mask): it saves a pass over the activations each way. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../core/clones.h"
#include "../core/error.h"
#include "cpu.h"

static inline size_t at(const dat_bn_desc *d, int i, int c)
{
    return ((size_t)i * (size_t)d->c + (size_t)c) * (size_t)d->hw;
}

/* Only static functions pass the vectors below, so the calling convention GCC
 * warns about (a 64-byte vector without AVX-512) never crosses this file. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* Sums in double over 8 lanes: element k of every plane goes to lane k % 8, and
 * the lanes are folded in a fixed tree at the end. Independent lanes run as
 * vectors where one running sum is a chain of dependent additions (4 cycles
 * each); the order follows the shape alone, so a shape always gives the same
 * bits, in every clone (lib/core/clones.h). */
typedef double lanes __attribute__((vector_size(64)));
typedef float floats8 __attribute__((vector_size(32)));
enum { L = 8 };

static inline lanes widen(const float *p)
{
    floats8 f;
    memcpy(&f, p, sizeof f);
    return __builtin_convertvector(f, lanes);
}

static inline double lanes_total(lanes a)
{
    double h[L];
    memcpy(h, &a, sizeof h);
    for (int w = L / 2; w > 0; w /= 2)
        for (int j = 0; j < w; ++j)
            h[j] += h[j + w];
    return h[0];
}

/* Per-channel mean and biased variance of x (two passes, for accuracy; the
 * second finds the channel's planes in cache). */
static inline void channel_moments(const dat_bn_desc *d, const float *x, int c, double *mean,
                                   double *var)
{
    lanes s = {0}, q = {0};
    int body = d->hw - d->hw % L;
    for (int i = 0; i < d->n; ++i) {
        const float *p = x + at(d, i, c);
        for (int k = 0; k < body; k += L)
            s += widen(p + k);
        for (int k = body; k < d->hw; ++k)
            s[k - body] += p[k];
    }
    double count = (double)d->n * d->hw, m = lanes_total(s) / count;
    for (int i = 0; i < d->n; ++i) {
        const float *p = x + at(d, i, c);
        for (int k = 0; k < body; k += L) {
            lanes v = widen(p + k) - m;
            q += v * v;
        }
        for (int k = body; k < d->hw; ++k)
            q[k - body] += ((double)p[k] - m) * ((double)p[k] - m);
    }
    *mean = m;
    *var = lanes_total(q) / count;
}

/* y = (x - mean) * scale + shift, in double and rounded once (then max(y, 0)
 * with relu_out; NaN gives +0). Folding the mean into the shift (x * scale +
 * (shift - mean * scale)) cancels catastrophically when |mean| >> std; and
 * outputs near 0 must be accurate, because the ReLU after a BN turns a sign
 * error into a wrong gradient. */
static inline void normalize_channel(const dat_bn_desc *d, const float *x, int c, double mean,
                                     double scale, double shift, float *y)
{
    for (int i = 0; i < d->n; ++i) {
        const float *p = x + at(d, i, c);
        float *q = y + at(d, i, c);
        if (d->relu_out) {
#pragma omp simd
            for (int k = 0; k < d->hw; ++k) {
                float v = (float)(((double)p[k] - mean) * scale + shift);
                q[k] = v > 0.0f ? v : 0.0f;
            }
        } else {
#pragma omp simd
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

/* One channel of each op, run by a thread of the op's loop over channels; cloned
 * (lib/core/clones.h) so the lanes and the element-wise loops use the CPU's
 * widest vectors. */
DAT_CLONES
static void fwd_train_channel(const dat_bn_desc *d, const float *x, int c, const float *gamma,
                              const float *beta, float *running_mean, float *running_var,
                              float *save_mean, float *save_invstd, float *y)
{
    double mean, var, count = (double)d->n * d->hw;
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

DAT_CLONES
static void fwd_eval_channel(const dat_bn_desc *d, const float *x, int c, const float *gamma,
                             const float *beta, const float *running_mean,
                             const float *running_var, float *y)
{
    double invstd = 1.0 / sqrt((double)running_var[c] + (double)d->eps);
    normalize_channel(d, x, c, running_mean[c], gamma[c] * invstd, beta[c], y);
}

dat_status dat_cpu_bn_fwd_train(dat_ctx *ctx, const dat_bn_desc *d, const float *x,
                                const float *gamma, const float *beta, float *running_mean,
                                float *running_var, float *save_mean, float *save_invstd,
                                float *y)
{
    int nt = dat_cpu_threads(ctx, (size_t)d->n * (size_t)d->c * (size_t)d->hw);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int c = 0; c < d->c; ++c)
        fwd_train_channel(d, x, c, gamma, beta, running_mean, running_var, save_mean,
                          save_invstd, y);
    return DAT_OK;
}

dat_status dat_cpu_bn_fwd_eval(dat_ctx *ctx, const dat_bn_desc *d, const float *x,
                               const float *gamma, const float *beta, const float *running_mean,
                               const float *running_var, float *y)
{
    int nt = dat_cpu_threads(ctx, (size_t)d->n * (size_t)d->c * (size_t)d->hw);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int c = 0; c < d->c; ++c)
        fwd_eval_channel(d, x, c, gamma, beta, running_mean, running_var, y);
    return DAT_OK;
}

/* sum(dy) and sum(dy * xhat) of one channel, xhat = (x - mean) * invstd. */
static inline void channel_grad_sums(const dat_bn_desc *d, const float *x, const float *dy,
                                     const float *masked, int c, double mean, double invstd,
                                     double *sdy, double *sdyx)
{
    lanes a = {0}, b = {0};
    int body = d->hw - d->hw % L;
    for (int i = 0; i < d->n; ++i) {
        const float *p = x + at(d, i, c), *g = dy_plane(d, dy, masked, i, c);
        for (int k = 0; k < body; k += L) {
            lanes gv = widen(g + k);
            a += gv;
            b += gv * ((widen(p + k) - mean) * invstd);
        }
        for (int k = body; k < d->hw; ++k) {
            a[k - body] += g[k];
            b[k - body] += (double)g[k] * (((double)p[k] - mean) * invstd);
        }
    }
    *sdy = lanes_total(a);
    *sdyx = lanes_total(b);
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

/* dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)), and the parameters'
 * gradients. The batch statistics are computed again, in double: xhat from the
 * float-rounded saved mean is off by a constant, which leaks sum(dy) into
 * sum(dy * xhat) (relative errors of 1e-3 in gamma's gradient when |mean| >> std). */
DAT_CLONES
static void bwd_train_channel(const dat_bn_desc *d, const float *x, const float *dy,
                              const float *masked, int c, const float *gamma, float *dx,
                              float *dgamma, float *dbeta, float beta)
{
    double mean, var, sdy, sdyx, count = (double)d->n * d->hw;
    channel_moments(d, x, c, &mean, &var);
    double invstd = 1.0 / sqrt(var + (double)d->eps);
    channel_grad_sums(d, x, dy, masked, c, mean, invstd, &sdy, &sdyx);
    param_grads(dgamma, dbeta, beta, c, sdy, sdyx);
    double k = gamma[c] * invstd, mdy = sdy / count, mdyx = sdyx / count;
    for (int i = 0; i < d->n; ++i) {
        const float *p = x + at(d, i, c), *g = dy_plane(d, dy, masked, i, c);
        float *q = dx + at(d, i, c);
#pragma omp simd
        for (int j = 0; j < d->hw; ++j) {
            double xhat = ((double)p[j] - mean) * invstd;
            q[j] = (float)(k * ((double)g[j] - mdy - xhat * mdyx));
        }
    }
}

DAT_CLONES
static void bwd_eval_channel(const dat_bn_desc *d, const float *x, const float *dy,
                             const float *masked, int c, const float *gamma,
                             const float *running_mean, const float *running_var, float *dx,
                             float *dgamma, float *dbeta, float beta)
{
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
#pragma omp simd
        for (int j = 0; j < d->hw; ++j)
            q[j] = g[j] * k;
    }
}

dat_status dat_cpu_bn_bwd_train(dat_ctx *ctx, const dat_bn_desc *d, const float *x,
                                const float *dy, const float *gamma, const float *save_mean,
                                const float *save_invstd, float *dx, float *dgamma, float *dbeta,
                                float beta)
{
    (void)save_mean; /* recomputed in double (bwd_train_channel); the CUDA backend uses them */
    (void)save_invstd;
    int nt = dat_cpu_threads(ctx, (size_t)d->n * (size_t)d->c * (size_t)d->hw);
    float *bufs;
    DAT_TRY(mask_buffers(ctx, d, nt, &bufs));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int c = 0; c < d->c; ++c)
        bwd_train_channel(d, x, dy, channel_dy(d, dy, c, thread_buffer(d, bufs)), c, gamma, dx,
                          dgamma, dbeta, beta);
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
    for (int c = 0; c < d->c; ++c)
        bwd_eval_channel(d, x, dy, channel_dy(d, dy, c, thread_buffer(d, bufs)), c, gamma,
                         running_mean, running_var, dx, dgamma, dbeta, beta);
    return DAT_OK;
}
