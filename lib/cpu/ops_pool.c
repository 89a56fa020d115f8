/* Max and average pooling of the CPU backend (square windows, zero padding;
 * average pooling divides by k*k, counting padding, as PyTorch's default).
 * A window's sum runs in double and is rounded once to float: in float, one
 * element after another, a global pooling of a 256 x 256 plane lost 7e-6. */
#include <float.h>
#include <string.h>

#include "cpu.h"

dat_status dat_cpu_pool_fwd(dat_ctx *ctx, const dat_pool_desc *d, const float *x, float *y,
                            int32_t *idx)
{
    int planes = d->n * d->c;
    int nt = dat_cpu_threads(ctx, (size_t)planes * (size_t)d->h_in * (size_t)d->w_in);
    double area = (double)d->k * (double)d->k; /* k * k may pass int */
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int p = 0; p < planes; ++p) {
        const float *xp = x + (size_t)p * (size_t)d->h_in * (size_t)d->w_in;
        float *yp = y + (size_t)p * (size_t)d->h_out * (size_t)d->w_out;
        int32_t *ip = idx ? idx + (size_t)p * (size_t)d->h_out * (size_t)d->w_out : NULL;
        for (int oy = 0; oy < d->h_out; ++oy)
            for (int ox = 0; ox < d->w_out; ++ox) {
                float best = -FLT_MAX;
                double sum = 0.0;
                int32_t arg = -1;
                for (int ky = 0; ky < d->k; ++ky) {
                    int iy = oy * d->stride - d->pad + ky;
                    if (iy < 0 || iy >= d->h_in)
                        continue;
                    for (int kx = 0; kx < d->k; ++kx) {
                        int ix = ox * d->stride - d->pad + kx;
                        if (ix < 0 || ix >= d->w_in)
                            continue;
                        float v = xp[iy * d->w_in + ix];
                        sum += v;
                        if (v > best || arg < 0) {
                            best = v;
                            arg = iy * d->w_in + ix;
                        }
                    }
                }
                int o = oy * d->w_out + ox;
                if (d->kind == DAT_POOL_MAX) {
                    yp[o] = best;
                    if (ip)
                        ip[o] = arg;
                } else {
                    yp[o] = (float)(sum / area);
                }
            }
    }
    return DAT_OK;
}

dat_status dat_cpu_pool_bwd(dat_ctx *ctx, const dat_pool_desc *d, const float *dy,
                            const int32_t *idx, float *dx)
{
    int planes = d->n * d->c;
    size_t in_plane = (size_t)d->h_in * (size_t)d->w_in;
    size_t out_plane = (size_t)d->h_out * (size_t)d->w_out;
    int nt = dat_cpu_threads(ctx, (size_t)planes * in_plane);
    float inv = 1.0f / ((float)d->k * (float)d->k); /* k * k may pass int */
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int p = 0; p < planes; ++p) {
        float *xp = dx + (size_t)p * in_plane;
        const float *gp = dy + (size_t)p * out_plane;
        memset(xp, 0, in_plane * sizeof *xp);
        if (d->kind == DAT_POOL_MAX) {
            const int32_t *ip = idx + (size_t)p * out_plane;
            for (size_t o = 0; o < out_plane; ++o)
                xp[ip[o]] += gp[o];
            continue;
        }
        for (int oy = 0; oy < d->h_out; ++oy)
            for (int ox = 0; ox < d->w_out; ++ox) {
                float g = gp[oy * d->w_out + ox] * inv;
                for (int ky = 0; ky < d->k; ++ky) {
                    int iy = oy * d->stride - d->pad + ky;
                    if (iy < 0 || iy >= d->h_in)
                        continue;
                    for (int kx = 0; kx < d->k; ++kx) {
                        int ix = ox * d->stride - d->pad + kx;
                        if (ix >= 0 && ix < d->w_in)
                            xp[iy * d->w_in + ix] += g;
                    }
                }
            }
    }
    return DAT_OK;
}
