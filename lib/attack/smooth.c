/* SmoothAdv (Salman et al. 2019): l2 PGD against the soft smoothed classifier
 * G(x) = E_eta softmax(f(x + eta)), eta ~ N(0, sigma^2 I), estimated with m
 * noise samples per point; and the Gaussian copies of Smooth-AT.
 *
 * As in SmoothAdv's multi-noise attack, a call draws its m noise samples once
 * and every step attacks the same estimate of G; the copies drawn at the same
 * attack step carry that noise, so a trainer can take its loss on x_adv plus
 * the noise the attack saw, as SmoothAdv's training does. */
#include <math.h>
#include <string.h>

#include "../core/error.h"
#include "attack.h"

/* Where a call's noise starts in the attack's stream: after the restarts'
 * start draws (pgd.c), so that the two never share numbers. */
static uint64_t noise_offset(const dat_attack *a, size_t nd)
{
    return (uint64_t)a->o.restarts * 2u * (nd + 1u);
}

/* noisy rows j * n + i = x_i + sigma * eta, eta the noise of the attack's step. */
static dat_status noisy_copies(dat_attack *a, const float *x, int32_t n, size_t d, float *out)
{
    dat_ctx *ctx = a->ctx;
    int32_t m = a->o.noise_samples;
    size_t nd = (size_t)n * d;
    uint64_t off = noise_offset(a, nd);
    const uint64_t *low;
    uint64_t stream = dat_attack_rng_stream(a, &low);
    DAT_TRY(ctx->be->rng_normal(ctx, out, nd * (size_t)m, 0.0f, a->o.sigma, a->o.seed, stream,
                                low, off));
    for (int32_t j = 0; j < m; ++j)
        DAT_TRY(DAT_OP(ctx, add, DAT_FMT_F32, nd, out + (size_t)j * nd, x, out + (size_t)j * nd));
    return DAT_OK;
}

/* The copies' losses l_ij = -log p_ij(y) of the model's last forward pass,
 * on the host (host_w), and per point the smallest, lmin_i, and
 * sum_j exp(lmin_i - l_ij), shifted so that exp() cannot underflow to 0/0. */
static dat_status copy_losses(dat_attack *a, dat_model *m, int32_t n, float *lmin, double *sum)
{
    dat_ctx *ctx = a->ctx;
    int32_t reps = a->o.noise_samples, rows = n * reps;
    DAT_TRY(DAT_OP(ctx, softmax_xent, rows, m->classes, dat_model_logits(m), a->labels_rep, NULL,
                   m->sample_loss, NULL, 1.0f));
    DAT_TRY(ctx->be->copy_to_host(ctx, a->host_w, m->sample_loss, (size_t)rows * sizeof(float)));
    for (int32_t i = 0; i < n; ++i) {
        lmin[i] = INFINITY;
        for (int32_t j = 0; j < reps; ++j)
            lmin[i] = fminf(lmin[i], a->host_w[j * n + i]);
        sum[i] = 0;
        for (int32_t j = 0; j < reps; ++j)
            sum[i] += exp(-(double)(a->host_w[j * n + i] - lmin[i]));
    }
    return DAT_OK;
}

/* Weights w_ij = p_ij(y) / sum_j p_ij(y): the gradient of -log mean_j p_ij(y)
 * w.r.t. the logits of copy j is w_ij (softmax - onehot), a weighted CE. */
static dat_status smoothed_weights(dat_attack *a, dat_model *m, int32_t n)
{
    int32_t reps = a->o.noise_samples, rows = n * reps;
    float *lmin = a->host_loss;
    double *sum = a->host_sum;
    DAT_TRY(copy_losses(a, m, n, lmin, sum));
    for (int32_t i = 0; i < n; ++i)
        for (int32_t j = 0; j < reps; ++j)
            a->host_w[j * n + i] = (float)(exp(-(double)(a->host_w[j * n + i] - lmin[i])) / sum[i]);
    return a->ctx->be->copy_from_host(a->ctx, a->weights, a->host_w, (size_t)rows * sizeof(float));
}

static dat_status replicate_labels(dat_attack *a, const dat_attack_batch *b)
{
    for (int32_t j = 0; j < a->o.noise_samples; ++j)
        DAT_TRY(a->ctx->be->copy(a->ctx, a->labels_rep + (size_t)j * b->n, b->y,
                                 (size_t)b->n * sizeof(int32_t)));
    return DAT_OK;
}

dat_status dat_attack_smooth_iterate(dat_attack *a, dat_model *m, const dat_attack_batch *b,
                                     float *x_adv)
{
    dat_ctx *ctx = a->ctx;
    int32_t reps = a->o.noise_samples, rows = b->n * reps;
    size_t nd = (size_t)b->n * b->d;
    DAT_TRY(replicate_labels(a, b));
    for (int32_t k = 0; k < a->o.steps; ++k) {
        /* the same noise at every step, drawn again rather than kept (m copies) */
        DAT_TRY(noisy_copies(a, x_adv, b->n, b->d, a->noisy));
        DAT_TRY(dat_graph_forward(m, a->noisy, rows, m->mode == DAT_MODE_TRAIN));
        DAT_TRY(smoothed_weights(a, m, b->n));
        DAT_TRY(DAT_OP(ctx, softmax_xent, rows, m->classes, dat_model_logits(m), a->labels_rep,
                       a->weights, NULL, m->dz, 1.0f));
        DAT_TRY(dat_graph_backward(m, m->dz, rows, -1.0f, a->dnoisy));
        DAT_TRY(ctx->be->copy(ctx, a->g, a->dnoisy, nd * sizeof(float)));
        for (int32_t j = 1; j < reps; ++j)
            DAT_TRY(DAT_OP(ctx, axpy, nd, 1.0f, a->dnoisy + (size_t)j * nd, a->g));
        DAT_TRY(DAT_OP(ctx, attack_l2_step, b->n, b->d, x_adv, a->g, b->x, a->o.alpha, a->o.eps,
                       a->o.lo, a->o.hi));
    }
    return DAT_OK;
}

dat_status dat_attack_smooth_loss(dat_attack *a, dat_model *m, const dat_attack_batch *b,
                                  const float *x_adv)
{
    int32_t reps = a->o.noise_samples;
    DAT_TRY(replicate_labels(a, b));
    DAT_TRY(noisy_copies(a, x_adv, b->n, b->d, a->noisy));
    DAT_TRY(dat_graph_forward(m, a->noisy, b->n * reps, m->mode == DAT_MODE_TRAIN));
    DAT_TRY(copy_losses(a, m, b->n, a->host_loss, a->host_sum));
    for (int32_t i = 0; i < b->n; ++i) /* -log mean_j p_ij(y) */
        a->host_loss[i] = (float)((double)a->host_loss[i] - log(a->host_sum[i] / reps));
    return DAT_OK;
}

dat_status dat_attack_gaussian_copies(dat_attack *attack, const dat_tensor *x,
                                      const dat_tensor *y, dat_tensor *x_out, dat_tensor *y_out)
{
    DAT_CHECK_NOT_NULL(attack);
    DAT_CHECK_NOT_NULL(x);
    DAT_CHECK_NOT_NULL(x_out);
    dat_ctx *ctx = attack->ctx;
    int64_t reps = attack->o.noise_samples;
    if (x->ctx != ctx || x_out->ctx != ctx || x->dtype != DAT_FLOAT32 ||
        x_out->dtype != DAT_FLOAT32 || x->ndim < 1 || x_out->numel != x->numel * reps ||
        x_out->shape[0] != x->shape[0] * reps)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "x_out must be float32 [%lld, ...] with %lld elements (%lld copies of x)",
                         (long long)(x->ndim ? x->shape[0] * reps : 0),
                         (long long)(x->numel * reps), (long long)reps);
    if (x_out->data == x->data) /* the noise would overwrite x before it is added */
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "x_out must not be x");
    int32_t n = (int32_t)x->shape[0];
    size_t d = (size_t)(x->numel / x->shape[0]);
    if (y_out) {
        if (!y || y->dtype != DAT_INT32 || y->numel != n || y_out->dtype != DAT_INT32 ||
            y_out->numel != n * reps || y->ctx != ctx || y_out->ctx != ctx)
            return dat_error(DAT_ERR_INVALID_ARG, __func__,
                             "y must be int32 [%d] and y_out int32 [%lld]", (int)n,
                             (long long)(n * reps));
        for (int64_t j = 0; j < reps; ++j)
            DAT_TRY(ctx->be->copy(ctx, (int32_t *)y_out->data + j * n, y->data,
                                  (size_t)n * sizeof(int32_t)));
    }
    DAT_TRY(noisy_copies(attack, x->data, n, d, x_out->data));
    attack->step++;
    return dat_attack_recorded(attack);
}
