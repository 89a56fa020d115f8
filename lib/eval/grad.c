/* The gradient oracle of AutoAttack's attacks: forward the model on host
 * rows, a per-sample loss of the logits on the host, and the backward pass
 * of its logit gradient to the input; plus the attacks' random numbers and
 * the projection onto the threat model. */
#include <math.h>
#include <string.h>

#include "../core/error.h"
#include "../core/philox.h"
#include "eval.h"

float dat_aa_loss_ce(const float *z, int32_t classes, int32_t y, int32_t t, float *dz)
{
    (void)t;
    float zmax = z[0];
    for (int32_t c = 1; c < classes; ++c)
        zmax = fmaxf(zmax, z[c]);
    double sum = 0;
    for (int32_t c = 0; c < classes; ++c)
        sum += exp((double)(z[c] - zmax));
    if (dz) {
        for (int32_t c = 0; c < classes; ++c)
            dz[c] = (float)(exp((double)(z[c] - zmax)) / sum);
        dz[y] -= 1.0f;
    }
    return (float)(log(sum) + (double)zmax - (double)z[y]);
}

/* Indices of the largest, third and fourth largest logits (ties: lower index
 * first, as a stable ascending sort read from the end would not matter). */
static void top4(const float *z, int32_t classes, int32_t top[4])
{
    for (int k = 0; k < 4; ++k)
        top[k] = -1;
    for (int32_t c = 0; c < classes; ++c) {
        int k = 4;
        while (k > 0 && (top[k - 1] < 0 || z[c] > z[top[k - 1]]))
            --k;
        if (k == 4)
            continue;
        for (int j = 3; j > k; --j)
            top[j] = top[j - 1];
        top[k] = c;
    }
}

/* Targeted DLR (Croce & Hein 2020): -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2),
 * pi the logits sorted in decreasing order; needs 4 classes or more. */
float dat_aa_loss_dlr_targeted(const float *z, int32_t classes, int32_t y, int32_t t, float *dz)
{
    int32_t top[4];
    top4(z, classes, top);
    double den = (double)z[top[0]] - 0.5 * ((double)z[top[2]] + (double)z[top[3]]) + 1e-12;
    double num = (double)z[y] - (double)z[t];
    if (dz) {
        memset(dz, 0, (size_t)classes * sizeof(float));
        double g_den = num / (den * den); /* d(-num/den)/d den */
        dz[y] += (float)(-1.0 / den);
        dz[t] += (float)(1.0 / den);
        dz[top[0]] += (float)g_den;
        dz[top[2]] += (float)(-0.5 * g_den);
        dz[top[3]] += (float)(-0.5 * g_den);
    }
    return (float)(-num / den);
}

dat_status dat_aa_logits(dat_aa *aa, const float *x, int32_t n)
{
    dat_ctx *ctx = aa->ctx;
    DAT_TRY(ctx->be->copy_from_host(ctx, aa->dev_x, x, (size_t)n * aa->d * sizeof(float)));
    DAT_TRY(dat_graph_forward(aa->m, aa->dev_x, n, 0));
    return ctx->be->copy_to_host(ctx, aa->logits, dat_model_logits(aa->m),
                                 (size_t)n * (size_t)aa->classes * sizeof(float));
}

dat_status dat_aa_grad(dat_aa *aa, const float *x, int32_t n, const int32_t *y, const int32_t *t,
                       dat_aa_loss_fn fn, float *loss, float *grad)
{
    dat_ctx *ctx = aa->ctx;
    DAT_TRY(dat_aa_logits(aa, x, n));
    size_t k = (size_t)aa->classes;
    for (int32_t i = 0; i < n; ++i) {
        float l = fn(aa->logits + i * k, aa->classes, y[i], t ? t[i] : -1,
                     grad ? aa->dz + i * k : NULL);
        if (loss)
            loss[i] = l;
    }
    if (!grad)
        return DAT_OK;
    DAT_TRY(ctx->be->copy_from_host(ctx, aa->dev_dz, aa->dz, (size_t)n * k * sizeof(float)));
    DAT_TRY(dat_graph_backward(aa->m, aa->dev_dz, n, -1.0f, aa->dev_dx));
    return ctx->be->copy_to_host(ctx, grad, aa->dev_dx, (size_t)n * aa->d * sizeof(float));
}

int32_t dat_aa_argmax(const dat_aa *aa, int32_t i)
{
    const float *z = aa->logits + (size_t)i * (size_t)aa->classes;
    int32_t best = 0;
    for (int32_t c = 1; c < aa->classes; ++c)
        if (z[c] > z[best])
            best = c;
    return best;
}

int32_t dat_aa_target_class(const dat_aa *aa, int32_t i, int32_t r)
{
    const float *z = aa->logits + (size_t)i * (size_t)aa->classes;
    for (int32_t c = 0; c < aa->classes; ++c) {
        int32_t above = 0;
        for (int32_t e = 0; e < aa->classes; ++e)
            above += z[e] > z[c] || (z[e] == z[c] && e < c);
        if (above == r + 1)
            return c;
    }
    return 0;
}

uint64_t dat_aa_stream(const dat_aa *aa, int32_t attack, int32_t run, int64_t sample)
{
    /* sample in the low 40 bits, attack and run above: disjoint for every triple. */
    return ((uint64_t)(uint32_t)attack << 56) | ((uint64_t)(uint32_t)run << 40) |
           ((uint64_t)(aa->o.first_index + sample) & 0xffffffffffull);
}

float dat_aa_uniform(const dat_aa *aa, uint64_t stream, uint64_t k)
{
    return dat_u32_to_unit(dat_philox_word(aa->o.seed, stream, k));
}

float dat_aa_normal(const dat_aa *aa, uint64_t stream, uint64_t k)
{
    float z0, z1;
    dat_box_muller(dat_philox_word(aa->o.seed, stream, 2 * k),
                   dat_philox_word(aa->o.seed, stream, 2 * k + 1), &z0, &z1);
    return z0;
}

void dat_aa_project(const dat_aa *aa, const float *x0, float *x_adv)
{
    float eps = aa->o.eps, lo = aa->o.lo, hi = aa->o.hi;
    if (aa->o.norm == DAT_NORM_LINF) {
        for (size_t j = 0; j < aa->d; ++j) {
            float v = fminf(fmaxf(x_adv[j], x0[j] - eps), x0[j] + eps);
            x_adv[j] = fminf(fmaxf(v, lo), hi);
        }
        return;
    }
    double norm = 0;
    for (size_t j = 0; j < aa->d; ++j)
        norm += (double)(x_adv[j] - x0[j]) * (double)(x_adv[j] - x0[j]);
    norm = sqrt(norm);
    double scale = norm > eps ? eps / norm : 1.0;
    for (size_t j = 0; j < aa->d; ++j) {
        float v = x0[j] + (float)((double)(x_adv[j] - x0[j]) * scale);
        x_adv[j] = fminf(fmaxf(v, lo), hi);
    }
}
