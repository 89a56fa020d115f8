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

/* x += s g. A gradient so small that s = alpha / ||g|| overflows float (a
 * saturated softmax's, in denormals) has its products taken in double: s g_j
 * is at most alpha, where inf * 0 would leave NaN. */
static void add_scaled(float *x, const float *g, size_t d, double s)
{
    if (s <= FLT_MAX) {
        const float sf = (float)s;
        for (size_t j = 0; j < d; ++j)
            x[j] += sf * g[j];
    } else {
        for (size_t j = 0; j < d; ++j)
            x[j] += (float)(s * g[j]);
    }
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
            double gn = row_norm(gi, d);
            if (gn > 0)
                add_scaled(x, gi, d, alpha / gn);
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
        for (size_t j = 0; j < d; ++j) /* in double where the factor overflows float */
            r[j] = s <= FLT_MAX ? r[j] * sf : (float)(s * r[j]);
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
