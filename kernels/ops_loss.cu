/* Losses of the CUDA backend, fused forward and backward: softmax
 * cross-entropy, TRADES' KL divergence, and argmax. One warp per row; the
 * log-sum-exp is taken in double around the row's maximum, as the CPU backend
 * does, so large logits neither overflow nor lose the small probabilities. */
#include <math.h>

#include "cuda_ops.h"

#define ROWS_PER_BLOCK 8 /* warps of a block, one row each */

/* The row this warp handles, or -1. */
__device__ inline int warp_row(int n)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / DAT_WARP;
    return row < n ? row : -1;
}

/* A row's log-sum-exp as its max m and log s = log sum_j exp(z_j - m), kept
 * apart as the CPU backend does (m + log s loses log s once |m| is large);
 * every lane of the warp gets it. */
struct lse {
    double m, log_s;
};

__device__ inline lse row_lse(const float *z, int classes, int lane)
{
    double m = -INFINITY;
    for (int j = lane; j < classes; j += DAT_WARP)
        m = fmax(m, (double)z[j]);
    m = dat_warp_max(m);
    double s = 0;
    for (int j = lane; j < classes; j += DAT_WARP)
        s += exp((double)z[j] - m);
    s = dat_warp_sum(s);
    return lse{m, log(s)};
}

/* log softmax(z)_j from the row's lse. */
__device__ inline double log_softmax(const float *z, lse l, int j)
{
    return ((double)z[j] - l.m) - l.log_s;
}

__global__ void softmax_xent_kernel(int n, int classes, const float *z, const int32_t *labels,
                                    const float *weights, float *loss, float *dz, float scale)
{
    int row = warp_row(n), lane = threadIdx.x % DAT_WARP;
    if (row < 0)
        return;
    const float *zi = z + (size_t)row * (size_t)classes;
    int y = labels[row];
    if (y < 0 || y >= classes) { /* only in a step graph, whose check runs beside (capture.h): */
        if (loss && lane == 0)   /* NaN makes the optimizer skip the step */
            loss[row] = NAN;
        for (int j = lane; dz && j < classes; j += DAT_WARP)
            dz[(size_t)row * (size_t)classes + (size_t)j] = NAN;
        return;
    }
    lse l = row_lse(zi, classes, lane);
    if (loss && lane == 0)
        loss[row] = (float)-log_softmax(zi, l, y);
    if (!dz)
        return;
    double w = (double)scale * (weights ? weights[row] : 1.0f);
    float *gi = dz + (size_t)row * (size_t)classes;
    for (int j = lane; j < classes; j += DAT_WARP)
        gi[j] = (float)(w * (exp(log_softmax(zi, l, j)) - (j == y)));
}

__global__ void kl_div_kernel(int n, int classes, const float *z_clean, const float *z_adv,
                              float *loss, float *dz_clean, float *dz_adv, float scale)
{
    int row = warp_row(n), lane = threadIdx.x % DAT_WARP;
    if (row < 0)
        return;
    size_t base = (size_t)row * (size_t)classes;
    const float *zc = z_clean + base, *za = z_adv + base;
    lse lc = row_lse(zc, classes, lane), la = row_lse(za, classes, lane);
    double kl = 0;
    for (int j = lane; j < classes; j += DAT_WARP) {
        double logp = log_softmax(zc, lc, j), logq = log_softmax(za, la, j);
        kl += exp(logp) * (logp - logq);
    }
    kl = dat_warp_sum(kl);
    if (loss && lane == 0)
        loss[row] = (float)kl;
    for (int j = lane; j < classes; j += DAT_WARP) {
        double logp = log_softmax(zc, lc, j), logq = log_softmax(za, la, j), p = exp(logp);
        /* d/dz_adv = q - p;  d/dz_clean = p (log p - log q - KL) */
        if (dz_adv)
            dz_adv[base + (size_t)j] = (float)(scale * (exp(logq) - p));
        if (dz_clean)
            dz_clean[base + (size_t)j] = (float)(scale * p * (logp - logq - kl));
    }
}

/* The CPU's scan (best = 0; j wins if z[j] > z[best]) gives the lowest index of
 * the largest non-NaN value, or 0 when z[0] is NaN; the warp reduces to the same. */
__global__ void argmax_kernel(int n, int classes, const float *z, int32_t *out)
{
    int row = warp_row(n), lane = threadIdx.x % DAT_WARP;
    if (row < 0)
        return;
    const float *zi = z + (size_t)row * (size_t)classes;
    float best = 0.0f;
    int arg = -1; /* -1: no value seen */
    for (int j = lane; j < classes; j += DAT_WARP) {
        float v = zi[j];
        if (!isnan(v) && (arg < 0 || v > best)) {
            best = v;
            arg = j;
        }
    }
    for (int o = DAT_WARP / 2; o > 0; o /= 2) {
        float b = __shfl_xor_sync(0xffffffffu, best, o);
        int a = __shfl_xor_sync(0xffffffffu, arg, o);
        if (a >= 0 && (arg < 0 || b > best || (b == best && a < arg))) {
            best = b;
            arg = a;
        }
    }
    if (lane == 0)
        out[row] = isnan(zi[0]) || arg < 0 ? 0 : arg;
}

static unsigned row_blocks(int n)
{
    return (unsigned)((n + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK);
}

dat_status dat_cuda_softmax_xent(dat_ctx *ctx, int n, int classes, const float *z,
                                 const int32_t *labels, const float *weights, float *loss,
                                 float *dz, float scale)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (n <= 0 || classes <= 0)
        return DAT_OK;
    softmax_xent_kernel<<<row_blocks(n), ROWS_PER_BLOCK * DAT_WARP, 0, dat_cuda(ctx)->stream>>>(
        n, classes, z, labels, weights, loss, dz, scale);
    DAT_CUDA_CHECK_LAUNCH("softmax_xent_kernel");
    return DAT_OK;
}

dat_status dat_cuda_kl_div(dat_ctx *ctx, int n, int classes, const float *z_clean,
                           const float *z_adv, float *loss, float *dz_clean, float *dz_adv,
                           float scale)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (n <= 0 || classes <= 0)
        return DAT_OK;
    kl_div_kernel<<<row_blocks(n), ROWS_PER_BLOCK * DAT_WARP, 0, dat_cuda(ctx)->stream>>>(
        n, classes, z_clean, z_adv, loss, dz_clean, dz_adv, scale);
    DAT_CUDA_CHECK_LAUNCH("kl_div_kernel");
    return DAT_OK;
}

dat_status dat_cuda_argmax(dat_ctx *ctx, int n, int classes, const float *z, int32_t *out)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (n <= 0 || classes <= 0)
        return DAT_OK;
    argmax_kernel<<<row_blocks(n), ROWS_PER_BLOCK * DAT_WARP, 0, dat_cuda(ctx)->stream>>>(
        n, classes, z, out);
    DAT_CUDA_CHECK_LAUNCH("argmax_kernel");
    return DAT_OK;
}
