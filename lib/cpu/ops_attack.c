/* The attack steps of the CPU backend: sign or normalized-gradient step and
 * the projections onto the eps-ball and the input range, fused per element
 * (l-inf) or per sample (l2). */
#include <float.h>
#include <math.h>

#include "cpu.h"

static inline float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static inline float signf(float g)
{
    return (float)((g > 0) - (g < 0));
}

dat_status dat_cpu_attack_linf_step(dat_ctx *ctx, size_t n, float *x_adv, const float *g,
                                    const float *x0, float alpha, float eps, float lo, float hi)
{
    int nt = dat_cpu_threads(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; ++i) {
        float v = g ? x_adv[i] + alpha * signf(g[i]) : x_adv[i];
        v = clampf(v, x0[i] - eps, x0[i] + eps);
        x_adv[i] = clampf(v, lo, hi);
    }
    return DAT_OK;
}

static double row_norm(const float *v, size_t d)
{
    double s = 0;
    for (size_t j = 0; j < d; ++j)
        s += (double)v[j] * v[j];
    return sqrt(s);
}

/* v s, with sf = (float)s. A factor that overflows float (alpha / ||g|| of a
 * saturated softmax's gradient in denormals, a norm over a tiny row) takes the
 * product in double: v s is finite, where inf * 0 would leave NaN. */
static inline float scaled(float v, double s, float sf)
{
    return s <= FLT_MAX ? v * sf : (float)(s * v);
}

dat_status dat_cpu_attack_l2_step(dat_ctx *ctx, int n, size_t d, float *x_adv, const float *g,
                                  const float *x0, float alpha, float eps, float lo, float hi)
{
    int nt = dat_cpu_threads(ctx, (size_t)n * d);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int i = 0; i < n; ++i) {
        float *x = x_adv + (size_t)i * d;
        const float *o = x0 + (size_t)i * d;
        if (g) {
            const float *gi = g + (size_t)i * d;
            double gn = row_norm(gi, d), s = gn > 0 ? alpha / gn : 0.0;
            const float sf = (float)s;
            if (gn > 0)
                for (size_t j = 0; j < d; ++j)
                    x[j] += scaled(gi[j], s, sf);
        }
        double dn = 0;
        for (size_t j = 0; j < d; ++j)
            dn += (double)(x[j] - o[j]) * (x[j] - o[j]);
        dn = sqrt(dn);
        float shrink = dn > eps ? (float)(eps / dn) : 1.0f;
        for (size_t j = 0; j < d; ++j)
            x[j] = clampf(o[j] + (x[j] - o[j]) * shrink, lo, hi);
    }
    return DAT_OK;
}

dat_status dat_cpu_rows_renorm(dat_ctx *ctx, int n, size_t d, float *x, const float *norms)
{
    int nt = dat_cpu_threads(ctx, (size_t)n * d);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int i = 0; i < n; ++i) {
        float *r = x + (size_t)i * d;
        double cur = row_norm(r, d);
        double s = cur > 0 ? norms[i] / cur : 0.0;
        const float sf = (float)s;
        for (size_t j = 0; j < d; ++j)
            r[j] = scaled(r[j], s, sf);
    }
    return DAT_OK;
}

dat_status dat_cpu_minmax(dat_ctx *ctx, size_t n, const float *x, float *lo, float *hi)
{
    float mn = INFINITY, mx = -INFINITY;
    int nt = dat_cpu_threads(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static) reduction(min : mn) reduction(max : mx)
    for (size_t i = 0; i < n; ++i) {
        mn = fminf(mn, x[i]);
        mx = fmaxf(mx, x[i]);
    }
    *lo = mn;
    *hi = mx;
    return DAT_OK;
}
