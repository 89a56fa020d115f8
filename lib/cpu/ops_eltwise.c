/* Element-wise ops of the CPU backend: ReLU, per-channel affine maps, sums,
 * scaling, and the finiteness check. */
#include <math.h>

#include "cpu.h"

/* `simd` matters: these passes are memory-bound and run on every activation. */
dat_status dat_cpu_relu_fwd(dat_ctx *ctx, size_t n, const float *x, float *y)
{
    int nt = dat_cpu_threads(ctx, n);
#pragma omp parallel for simd num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; ++i)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    return DAT_OK;
}

void dat_cpu_relu_mask(const float *dy, const float *mask, size_t n, float *out)
{
    /* both loads unconditional: the choice becomes a vector blend, not a branch */
#pragma omp simd
    for (size_t i = 0; i < n; ++i) {
        float g = dy[i], m = mask[i];
        out[i] = m > 0.0f ? g : 0.0f;
    }
}

dat_status dat_cpu_relu_bwd(dat_ctx *ctx, size_t n, const float *y, const float *dy, float *dx)
{
    enum { BLOCK = 4096 };
    int nt = dat_cpu_threads(ctx, n);
    size_t blocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t b = 0; b < blocks; ++b) {
        size_t lo = b * BLOCK;
        dat_cpu_relu_mask(dy + lo, y + lo, n - lo < BLOCK ? n - lo : BLOCK, dx + lo);
    }
    return DAT_OK;
}

dat_status dat_cpu_channel_affine(dat_ctx *ctx, int n, int c, int hw, const float *x,
                                  const float *scale, const float *shift, float *y)
{
    int nt = dat_cpu_threads(ctx, (size_t)n * (size_t)c * (size_t)hw);
#pragma omp parallel for num_threads(nt) schedule(static) collapse(2)
    for (int i = 0; i < n; ++i)
        for (int ch = 0; ch < c; ++ch) {
            size_t base = ((size_t)i * (size_t)c + (size_t)ch) * (size_t)hw;
            float s = scale[ch], b = shift ? shift[ch] : 0.0f;
            for (int k = 0; k < hw; ++k)
                y[base + (size_t)k] = x[base + (size_t)k] * s + b;
        }
    return DAT_OK;
}

dat_status dat_cpu_add(dat_ctx *ctx, size_t n, const float *a, const float *b, float *y)
{
    int nt = dat_cpu_threads(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; ++i)
        y[i] = a[i] + b[i];
    return DAT_OK;
}

dat_status dat_cpu_axpy(dat_ctx *ctx, size_t n, float alpha, const float *x, float *y)
{
    int nt = dat_cpu_threads(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; ++i)
        y[i] += alpha * x[i];
    return DAT_OK;
}

dat_status dat_cpu_scale(dat_ctx *ctx, size_t n, float alpha, float *x)
{
    int nt = dat_cpu_threads(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; ++i)
        x[i] *= alpha;
    return DAT_OK;
}

dat_status dat_cpu_check_finite(dat_ctx *ctx, size_t n, const float *x, int *bad)
{
    int found = 0;
    int nt = dat_cpu_threads(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static) reduction(| : found)
    for (size_t i = 0; i < n; ++i)
        found |= !isfinite(x[i]);
    *bad = found;
    return DAT_OK;
}

dat_status dat_cpu_flag_range(dat_ctx *ctx, size_t n, const float *x, float lo, float hi,
                              uint32_t *flags, uint32_t bit)
{
    int found = 0;
    int nt = dat_cpu_threads(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static) reduction(| : found)
    for (size_t i = 0; i < n; ++i)
        found |= !isfinite(x[i]) || x[i] < lo || x[i] > hi;
    if (found)
        *flags |= bit;
    return DAT_OK;
}

dat_status dat_cpu_flag_labels(dat_ctx *ctx, int n, const int32_t *y, int classes,
                               uint32_t *flags, uint32_t bit)
{
    (void)ctx;
    for (int i = 0; i < n; ++i)
        if (y[i] < 0 || y[i] >= classes) {
            *flags |= bit;
            break;
        }
    return DAT_OK;
}
