/* Losses of the CPU backend, fused forward and backward: softmax
 * cross-entropy, TRADES' KL divergence, and argmax. Rows are independent and
 * computed in double, with the max subtracted before exponentiating. */
#include <math.h>

#include "cpu.h"

/* A row's log-sum-exp as its max m and log s = log sum_j exp(z_j - m), kept
 * apart: log z's softmax is (z_j - m) - log s, where m + log s would lose log s
 * to rounding once |m| is past 2^53 times it (logits of 1e15 and more). */
typedef struct lse {
    double m, log_s;
} lse;

static lse row_lse(const float *z, int classes)
{
    double m = z[0];
    for (int j = 1; j < classes; ++j)
        m = z[j] > m ? z[j] : m;
    double s = 0;
    for (int j = 0; j < classes; ++j)
        s += exp((double)z[j] - m);
    return (lse){m, log(s)};
}

/* log softmax(z)_j from the row's lse. */
static double log_softmax(const float *z, lse l, int j)
{
    return ((double)z[j] - l.m) - l.log_s;
}

dat_status dat_cpu_softmax_xent(dat_ctx *ctx, int n, int classes, const float *z,
                                const int32_t *labels, const float *weights, float *loss,
                                float *dz, float scale)
{
    int nt = dat_cpu_threads(ctx, (size_t)n * (size_t)classes);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int i = 0; i < n; ++i) {
        const float *zi = z + (size_t)i * (size_t)classes;
        int y = labels[i];
        lse l = row_lse(zi, classes);
        if (loss)
            loss[i] = (float)-log_softmax(zi, l, y);
        if (!dz)
            continue;
        double w = (double)scale * (weights ? weights[i] : 1.0f);
        float *gi = dz + (size_t)i * (size_t)classes;
        for (int j = 0; j < classes; ++j)
            gi[j] = (float)(w * (exp(log_softmax(zi, l, j)) - (j == y)));
    }
    return DAT_OK;
}

dat_status dat_cpu_kl_div(dat_ctx *ctx, int n, int classes, const float *z_clean,
                          const float *z_adv, float *loss, float *dz_clean, float *dz_adv,
                          float scale)
{
    int nt = dat_cpu_threads(ctx, (size_t)n * (size_t)classes);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int i = 0; i < n; ++i) {
        const float *zc = z_clean + (size_t)i * (size_t)classes;
        const float *za = z_adv + (size_t)i * (size_t)classes;
        lse lc = row_lse(zc, classes), la = row_lse(za, classes);
        double kl = 0;
        for (int j = 0; j < classes; ++j) {
            double logp = log_softmax(zc, lc, j), logq = log_softmax(za, la, j);
            kl += exp(logp) * (logp - logq);
        }
        if (loss)
            loss[i] = (float)kl;
        for (int j = 0; j < classes; ++j) {
            double logp = log_softmax(zc, lc, j), logq = log_softmax(za, la, j), p = exp(logp);
            /* d/dz_adv = q - p;  d/dz_clean = p (log p - log q - KL) */
            if (dz_adv)
                dz_adv[(size_t)i * (size_t)classes + (size_t)j] = (float)(scale * (exp(logq) - p));
            if (dz_clean)
                dz_clean[(size_t)i * (size_t)classes + (size_t)j] =
                    (float)(scale * p * (logp - logq - kl));
        }
    }
    return DAT_OK;
}

dat_status dat_cpu_argmax(dat_ctx *ctx, int n, int classes, const float *z, int32_t *out)
{
    (void)ctx;
    for (int i = 0; i < n; ++i) {
        const float *zi = z + (size_t)i * (size_t)classes;
        int best = 0;
        for (int j = 1; j < classes; ++j)
            if (zi[j] > zi[best])
                best = j;
        out[i] = best;
    }
    return DAT_OK;
}
