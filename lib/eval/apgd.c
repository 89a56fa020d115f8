/* APGD (Croce & Hein 2020): PGD with momentum 0.75 and a per-sample step
 * size that starts at 2 eps and halves at checkpoints where the loss
 * oscillated (it rose in at most 75 % of the steps since the last one) or
 * the best loss stopped improving; the iterate then restarts from the best
 * point. APGD-CE uses the cross-entropy loss; APGD-T the targeted DLR loss,
 * one run per target class (the 2nd, 3rd, ... most likely class). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "eval.h"

/* Host scratch of one run over n samples. */
typedef struct apgd_state {
    int32_t n;
    size_t d;
    float *xa, *xold, *x1, *xbest, *xbest_adv, *grad, *grad_best; /* n * d each */
    float *step, *loss, *loss_best, *loss_best_last, *loss_steps;  /* n; steps * n */
    float *tmp;                                                    /* d */
    unsigned char *reduced_last, *robust;                          /* n */
} apgd_state;

static void state_free(apgd_state *s)
{
    float **f[] = {&s->xa,   &s->xold,      &s->x1,   &s->xbest,     &s->xbest_adv,
                   &s->grad, &s->grad_best, &s->step, &s->loss,      &s->loss_best,
                   &s->loss_best_last, &s->loss_steps, &s->tmp};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; ++i) {
        free(*f[i]);
        *f[i] = NULL;
    }
    free(s->reduced_last);
    free(s->robust);
    s->reduced_last = s->robust = NULL;
}

static dat_status state_alloc(apgd_state *s, int32_t n, size_t d, int32_t steps)
{
    *s = (apgd_state){.n = n, .d = d};
    size_t nd = (size_t)n * d;
    float **big[] = {&s->xa, &s->xold, &s->x1, &s->xbest, &s->xbest_adv, &s->grad,
                     &s->grad_best};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; ++i)
        *big[i] = malloc(nd * sizeof(float));
    float **small[] = {&s->step, &s->loss, &s->loss_best, &s->loss_best_last};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; ++i)
        *small[i] = malloc((size_t)n * sizeof(float));
    s->loss_steps = calloc((size_t)steps * (size_t)n, sizeof(float));
    s->tmp = malloc(d * sizeof(float));
    s->reduced_last = malloc((size_t)n);
    s->robust = malloc((size_t)n);
    for (size_t i = 0; i < sizeof big / sizeof big[0]; ++i)
        if (!*big[i])
            goto oom;
    for (size_t i = 0; i < sizeof small / sizeof small[0]; ++i)
        if (!*small[i])
            goto oom;
    if (s->loss_steps && s->tmp && s->reduced_last && s->robust)
        return DAT_OK;
oom:
    state_free(s);
    return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_eval_autoattack", "APGD scratch for %d samples",
                     (int)n);
}

/* Random start: l-inf, uniform direction scaled so its largest coordinate is
 * eps; l2, a Gaussian direction of norm eps; then clipped to [lo, hi]. */
static void random_start(dat_aa *aa, const float *x, uint64_t stream, float *xa)
{
    size_t d = aa->d;
    double scale = 0;
    for (size_t j = 0; j < d; ++j) {
        xa[j] = aa->o.norm == DAT_NORM_LINF ? 2.0f * dat_aa_uniform(aa, stream, j) - 1.0f
                                            : dat_aa_normal(aa, stream, j);
        scale = aa->o.norm == DAT_NORM_LINF ? fmax(scale, fabs((double)xa[j]))
                                            : scale + (double)xa[j] * xa[j];
    }
    if (aa->o.norm == DAT_NORM_L2)
        scale = sqrt(scale);
    float f = scale > 0 ? (float)(aa->o.eps / scale) : 0.0f;
    for (size_t j = 0; j < d; ++j)
        xa[j] = fminf(fmaxf(x[j] + f * xa[j], aa->o.lo), aa->o.hi);
}

static double l2_norm(const float *v, size_t d)
{
    double s = 0;
    for (size_t j = 0; j < d; ++j)
        s += (double)v[j] * v[j];
    return sqrt(s);
}

/* x0 + (v - x0) * min(eps, ||v - x0||) / (||v - x0|| + 1e-12), clipped: AutoAttack's l2
 * projection, in place on v (tmp: d floats). */
static void l2_project(const dat_aa *aa, const float *x0, float *v, float *tmp)
{
    for (size_t j = 0; j < aa->d; ++j)
        tmp[j] = v[j] - x0[j];
    double norm = l2_norm(tmp, aa->d);
    double f = fmin((double)aa->o.eps, norm) / (norm + 1e-12);
    for (size_t j = 0; j < aa->d; ++j)
        v[j] = fminf(fmaxf(x0[j] + (float)(tmp[j] * f), aa->o.lo), aa->o.hi);
}

/* One momentum step of sample i: x1 from xa, its gradient and the last move. */
static void momentum_step(const dat_aa *aa, apgd_state *s, const float *x0, int32_t i, float a)
{
    size_t d = s->d, off = (size_t)i * d;
    const float *xa = s->xa + off, *xold = s->xold + off, *g = s->grad + off;
    float *x1 = s->x1 + off, step = s->step[i], eps = aa->o.eps, lo = aa->o.lo, hi = aa->o.hi;
    if (aa->o.norm == DAT_NORM_LINF) {
        for (size_t j = 0; j < d; ++j) {
            float sg = (float)((g[j] > 0) - (g[j] < 0));
            float v = fminf(fmaxf(xa[j] + step * sg, x0[j] - eps), x0[j] + eps);
            v = fminf(fmaxf(v, lo), hi);
            v = xa[j] + (v - xa[j]) * a + (xa[j] - xold[j]) * (1.0f - a);
            v = fminf(fmaxf(v, x0[j] - eps), x0[j] + eps);
            x1[j] = fminf(fmaxf(v, lo), hi);
        }
        return;
    }
    double gn = l2_norm(g, d) + 1e-12;
    for (size_t j = 0; j < d; ++j)
        x1[j] = xa[j] + (float)(step * g[j] / gn);
    l2_project(aa, x0, x1, s->tmp);
    for (size_t j = 0; j < d; ++j)
        x1[j] = xa[j] + (x1[j] - xa[j]) * a + (xa[j] - xold[j]) * (1.0f - a);
    l2_project(aa, x0, x1, s->tmp);
}

/* Best-loss bookkeeping after the gradient at xa (iteration it, -1 for the start). */
static void record(const dat_aa *aa, apgd_state *s, const int32_t *y, int32_t it)
{
    size_t d = s->d;
    for (int32_t i = 0; i < s->n; ++i) {
        size_t off = (size_t)i * d;
        if (dat_aa_argmax(aa, i) != y[i]) {
            s->robust[i] = 0;
            memcpy(s->xbest_adv + off, s->xa + off, d * sizeof(float));
        }
        if (it < 0)
            continue;
        s->loss_steps[(size_t)it * s->n + i] = s->loss[i];
        if (s->loss[i] > s->loss_best[i]) {
            memcpy(s->xbest + off, s->xa + off, d * sizeof(float));
            memcpy(s->grad_best + off, s->grad + off, d * sizeof(float));
            s->loss_best[i] = s->loss[i];
        }
    }
}

/* The checkpoint test at iteration it with window k: halve the step and go
 * back to the best point where the loss rose in at most rho * k of the last k
 * steps, or where the previous checkpoint did not halve and the best loss
 * has not improved since. Row -1 of the loss history wraps to the last row,
 * as in the reference implementation (zeros at the first checkpoint). */
static void checkpoint(apgd_state *s, int32_t it, int32_t k, int32_t steps)
{
    const float rho = 0.75f;
    size_t d = s->d;
    for (int32_t i = 0; i < s->n; ++i) {
        int32_t rises = 0;
        for (int32_t c = 0; c < k; ++c) {
            int32_t cur = it - c, prev = (it - c - 1 + steps) % steps;
            rises += s->loss_steps[(size_t)cur * s->n + i] > s->loss_steps[(size_t)prev * s->n + i];
        }
        int osc = (float)rises <= (float)k * rho;
        int stale = !s->reduced_last[i] && s->loss_best_last[i] >= s->loss_best[i];
        int halve = osc || stale;
        s->reduced_last[i] = (unsigned char)halve;
        s->loss_best_last[i] = s->loss_best[i];
        if (!halve)
            continue;
        size_t off = (size_t)i * d;
        s->step[i] /= 2.0f;
        memcpy(s->xa + off, s->xbest + off, d * sizeof(float));
        memcpy(s->grad + off, s->grad_best + off, d * sizeof(float));
    }
}

/* One APGD run on n compacted samples; s->robust[i] = 0 where it fooled the
 * model, the example in s->xbest_adv. */
static dat_status apgd_run(dat_aa *aa, apgd_state *s, const float *x, const int32_t *y,
                           const int32_t *t, const uint64_t *streams, dat_aa_loss_fn fn)
{
    int32_t n = s->n, steps = aa->o.apgd_steps;
    size_t d = s->d, nd = (size_t)n * d;
    int32_t k = steps * 22 / 100 > 1 ? steps * 22 / 100 : 1;
    int32_t k_min = steps * 6 / 100 > 1 ? steps * 6 / 100 : 1;
    int32_t k_decr = steps * 3 / 100 > 1 ? steps * 3 / 100 : 1;
    for (int32_t i = 0; i < n; ++i) {
        random_start(aa, x + (size_t)i * d, streams[i], s->xa + (size_t)i * d);
        s->robust[i] = 1;
        s->step[i] = 2.0f * aa->o.eps;
        s->reduced_last[i] = 1;
    }
    memset(s->loss_steps, 0, (size_t)steps * (size_t)n * sizeof(float));
    DAT_TRY(dat_aa_grad(aa, s->xa, n, y, t, fn, s->loss, s->grad));
    memcpy(s->xbest, s->xa, nd * sizeof(float));
    memcpy(s->xbest_adv, s->xa, nd * sizeof(float));
    memcpy(s->grad_best, s->grad, nd * sizeof(float));
    memcpy(s->loss_best, s->loss, (size_t)n * sizeof(float));
    memcpy(s->loss_best_last, s->loss, (size_t)n * sizeof(float));
    memcpy(s->xold, s->xa, nd * sizeof(float));
    record(aa, s, y, -1);
    int32_t since = 0;
    for (int32_t it = 0; it < steps; ++it) {
        float a = it > 0 ? 0.75f : 1.0f;
        for (int32_t i = 0; i < n; ++i)
            momentum_step(aa, s, x + (size_t)i * d, i, a);
        memcpy(s->xold, s->xa, nd * sizeof(float));
        memcpy(s->xa, s->x1, nd * sizeof(float));
        DAT_TRY(dat_aa_grad(aa, s->xa, n, y, t, fn, s->loss, s->grad));
        record(aa, s, y, it);
        if (++since == k) {
            checkpoint(s, it, k, steps);
            k = k - k_decr > k_min ? k - k_decr : k_min;
            since = 0;
        }
    }
    return DAT_OK;
}

/* Copies the rows listed in `rows` (count m) of the inputs into compact arrays. */
static void gather(const float *x, const int32_t *y, const int32_t *rows, int32_t m, size_t d,
                   float *cx, int32_t *cy)
{
    for (int32_t q = 0; q < m; ++q) {
        memcpy(cx + (size_t)q * d, x + (size_t)rows[q] * d, d * sizeof(float));
        cy[q] = y[rows[q]];
    }
}

dat_status dat_apgd(dat_aa *aa, const float *x, const int32_t *y, const int64_t *idx, int32_t n,
                    int targeted, float *x_adv, unsigned char *fooled)
{
    size_t d = aa->d;
    int32_t runs = targeted ? aa->o.target_classes : 1;
    int32_t *rows = malloc((size_t)n * sizeof(int32_t));
    int32_t *cy = malloc((size_t)n * sizeof(int32_t));
    int32_t *ct = malloc((size_t)n * sizeof(int32_t));
    int32_t *tall = malloc((size_t)n * runs * sizeof(int32_t));
    uint64_t *streams = malloc((size_t)n * sizeof(uint64_t));
    float *cx = malloc((size_t)n * d * sizeof(float));
    apgd_state s = {0};
    dat_status st = DAT_OK;
    if (!rows || !cy || !ct || !tall || !streams || !cx) {
        st = dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_eval_autoattack", "APGD index arrays");
        goto done;
    }
    memset(fooled, 0, (size_t)n);
    if (targeted) { /* targets from the clean logits */
        if ((st = dat_aa_logits(aa, x, n)) != DAT_OK)
            goto done;
        for (int32_t i = 0; i < n; ++i)
            for (int32_t r = 0; r < runs; ++r)
                tall[(size_t)i * runs + r] = dat_aa_target_class(aa, i, r);
    }
    for (int32_t r = 0; r < runs; ++r) {
        int32_t m = 0;
        for (int32_t i = 0; i < n; ++i)
            if (!fooled[i])
                rows[m++] = i;
        if (m == 0)
            break;
        gather(x, y, rows, m, d, cx, cy);
        for (int32_t q = 0; q < m; ++q) {
            streams[q] = dat_aa_stream(aa, targeted ? DAT_AA_APGD_T : DAT_AA_APGD_CE, r,
                                       idx[rows[q]]);
            ct[q] = targeted ? tall[(size_t)rows[q] * runs + r] : -1;
        }
        if ((st = state_alloc(&s, m, d, aa->o.apgd_steps)) != DAT_OK)
            goto done;
        st = apgd_run(aa, &s, cx, cy, targeted ? ct : NULL, streams,
                      targeted ? dat_aa_loss_dlr_targeted : dat_aa_loss_ce);
        for (int32_t q = 0; st == DAT_OK && q < m; ++q) {
            if (s.robust[q])
                continue;
            fooled[rows[q]] = 1;
            memcpy(x_adv + (size_t)rows[q] * d, s.xbest_adv + (size_t)q * d, d * sizeof(float));
        }
        state_free(&s);
        if (st != DAT_OK)
            goto done;
    }
done:
    free(rows);
    free(cy);
    free(ct);
    free(tall);
    free(streams);
    free(cx);
    return st;
}
