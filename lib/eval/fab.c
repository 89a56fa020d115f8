/* FAB-T (Croce & Hein 2020, "Minimally distorted adversarial examples with a
 * fast adaptive boundary attack"), targeted, as in AutoAttack: per target t,
 * the decision boundary between y and t is linearized at the iterate; the
 * iterate moves to a convex combination (weight alpha <= alpha_max) of its
 * own projection onto that hyperplane and the clean point's projection,
 * extrapolated by eta; once misclassified, the smallest perturbation so far
 * is kept and the iterate is pulled back towards x by beta. A point counts
 * as fooled only if the smallest perturbation found is within eps. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "eval.h"

#define FAB_ETA 1.05f
#define FAB_BETA 0.9f
#define FAB_ALPHA_MAX 0.1f

typedef struct bp {
    float lambda; /* where coordinate j reaches its box bound */
    float rate;   /* its contribution to d(w . delta)/d lambda before that */
} bp;

static int bp_cmp(const void *a, const void *b)
{
    float x = ((const bp *)a)->lambda, y = ((const bp *)b)->lambda;
    return (x > y) - (x < y);
}

/*
 * The smallest delta (l-inf or l2) with w . delta = c and t + delta in [lo, hi]:
 * delta_j = s_j min(lambda g_j, room_j), s_j = sign(c w_j), g_j = 1 (l-inf) or
 * |w_j| (l2), with the smallest lambda that reaches c. w . delta grows piecewise
 * linearly in lambda, so sorting the breakpoints gives lambda exactly. If c
 * cannot be reached inside the box, every coordinate moves to its bound.
 */
static void project_hyperplane(const dat_aa *aa, const float *t, const float *w, double c,
                               float *delta, bp *pts)
{
    size_t d = aa->d, m = 0;
    int l2 = aa->o.norm == DAT_NORM_L2;
    double target = fabs(c);
    for (size_t j = 0; j < d; ++j) {
        delta[j] = 0.0f;
        if (w[j] == 0.0f)
            continue;
        int up = (c >= 0) == (w[j] > 0); /* moving t_j up increases sign(c) * w . delta */
        float room = up ? aa->o.hi - t[j] : t[j] - aa->o.lo;
        float aw = fabsf(w[j]);
        pts[m].lambda = l2 ? room / aw : room;
        pts[m].rate = l2 ? aw * aw : aw;
        ++m;
    }
    qsort(pts, m, sizeof *pts, bp_cmp);
    /* f(lambda) = sum_j rate_j min(lambda, lambda_j): sweep the breakpoints. */
    double f = 0, slope = 0, lambda = INFINITY, prev = 0;
    for (size_t q = 0; q < m; ++q)
        slope += pts[q].rate;
    for (size_t q = 0; q < m; ++q) {
        double next = f + slope * ((double)pts[q].lambda - prev);
        if (next >= target && slope > 0) {
            lambda = prev + (target - f) / slope;
            break;
        }
        f = next;
        prev = pts[q].lambda;
        slope -= pts[q].rate;
    }
    for (size_t j = 0; j < d; ++j) {
        if (w[j] == 0.0f)
            continue;
        int up = (c >= 0) == (w[j] > 0);
        float room = up ? aa->o.hi - t[j] : t[j] - aa->o.lo;
        double move = l2 ? lambda * fabs((double)w[j]) : lambda;
        float mv = (float)fmin(move, (double)room);
        delta[j] = up ? mv : -mv;
    }
}

static double norm_of(const dat_aa *aa, const float *v)
{
    double r = 0;
    for (size_t j = 0; j < aa->d; ++j)
        r = aa->o.norm == DAT_NORM_LINF ? fmax(r, fabs((double)v[j])) : r + (double)v[j] * v[j];
    return aa->o.norm == DAT_NORM_LINF ? r : sqrt(r);
}

/* -(z_y - z_t): negative while the point is classified as y, with its gradient. */
static float loss_margin_t(const float *z, int32_t classes, int32_t y, int32_t t, float *dz)
{
    if (dz) {
        memset(dz, 0, (size_t)classes * sizeof(float));
        dz[y] = -1.0f;
        dz[t] = 1.0f;
    }
    return z[t] - z[y];
}

typedef struct fab_state {
    float *x1, *g, *d1, *d2, *adv, *diff; /* n * d (diff: d) */
    float *df, *res;                      /* n */
    bp *pts;                              /* d */
} fab_state;

/* One FAB step of sample i from its linearization (df, g). */
static void fab_step(const dat_aa *aa, fab_state *s, const float *x0, int32_t i)
{
    size_t d = aa->d, off = (size_t)i * d;
    float *x1 = s->x1 + off, *g = s->g + off, *d1 = s->d1 + off, *d2 = s->d2 + off;
    double gx = 0;
    for (size_t j = 0; j < d; ++j)
        gx += (double)g[j] * ((double)x1[j] - (double)x0[j]);
    /* hyperplane g . z = g . x1 - df: from x1 change by -df, from x0 by g.(x1-x0) - df */
    project_hyperplane(aa, x1, g, -(double)s->df[i], d1, s->pts);
    project_hyperplane(aa, x0, g, gx - (double)s->df[i], d2, s->pts);
    double a1 = fmax(norm_of(aa, d1), 1e-8), a2 = fmax(norm_of(aa, d2), 1e-8);
    float alpha = (float)fmin(fmax(a1 / (a1 + a2), 0.0), FAB_ALPHA_MAX);
    for (size_t j = 0; j < d; ++j) {
        float v = (x1[j] + FAB_ETA * d1[j]) * (1.0f - alpha) + (x0[j] + FAB_ETA * d2[j]) * alpha;
        x1[j] = fminf(fmaxf(v, aa->o.lo), aa->o.hi);
    }
}

/* After a step: keep the smallest adversarial perturbation and pull back. */
static void fab_keep(const dat_aa *aa, fab_state *s, const float *x0, int32_t i)
{
    size_t d = aa->d, off = (size_t)i * d;
    float *x1 = s->x1 + off;
    for (size_t j = 0; j < d; ++j)
        s->diff[j] = x1[j] - x0[j];
    double t = norm_of(aa, s->diff);
    if (t < s->res[i]) {
        s->res[i] = (float)t;
        memcpy(s->adv + off, x1, d * sizeof(float));
    }
    for (size_t j = 0; j < d; ++j)
        x1[j] = x0[j] + s->diff[j] * FAB_BETA;
}

static dat_status fab_run(dat_aa *aa, fab_state *s, const float *x, const int32_t *y,
                          const int32_t *t, int32_t n)
{
    size_t nd = (size_t)n * aa->d;
    memcpy(s->x1, x, nd * sizeof(float));
    memcpy(s->adv, x, nd * sizeof(float));
    for (int32_t i = 0; i < n; ++i)
        s->res[i] = INFINITY;
    for (int32_t it = 0; it < aa->o.fab_steps; ++it) {
        DAT_TRY(dat_aa_grad(aa, s->x1, n, y, t, loss_margin_t, s->df, s->g));
        for (int32_t i = 0; i < n; ++i)
            fab_step(aa, s, x + (size_t)i * aa->d, i);
        DAT_TRY(dat_aa_logits(aa, s->x1, n));
        for (int32_t i = 0; i < n; ++i)
            if (dat_aa_argmax(aa, i) != y[i])
                fab_keep(aa, s, x + (size_t)i * aa->d, i);
    }
    return DAT_OK;
}

static void fab_free(fab_state *s)
{
    free(s->x1);
    free(s->g);
    free(s->d1);
    free(s->d2);
    free(s->adv);
    free(s->diff);
    free(s->df);
    free(s->res);
    free(s->pts);
}

dat_status dat_fab(dat_aa *aa, const float *x, const int32_t *y, const int64_t *idx, int32_t n,
                   float *x_adv, unsigned char *fooled)
{
    (void)idx; /* FAB's first run has no random start */
    size_t d = aa->d, nd = (size_t)n * d;
    fab_state s = {0};
    s.x1 = malloc(nd * sizeof(float));
    s.g = malloc(nd * sizeof(float));
    s.d1 = malloc(nd * sizeof(float));
    s.d2 = malloc(nd * sizeof(float));
    s.adv = malloc(nd * sizeof(float));
    s.diff = malloc(d * sizeof(float));
    s.df = malloc((size_t)n * sizeof(float));
    s.res = malloc((size_t)n * sizeof(float));
    s.pts = malloc(d * sizeof(bp));
    float *cx = malloc(nd * sizeof(float));
    int32_t *rows = malloc((size_t)n * sizeof(int32_t)), *cy = malloc((size_t)n * sizeof(int32_t));
    int32_t *ct = malloc((size_t)n * sizeof(int32_t)), *tall = NULL;
    dat_status st = DAT_OK;
    if (!s.x1 || !s.g || !s.d1 || !s.d2 || !s.adv || !s.diff || !s.df || !s.res || !s.pts ||
        !cx || !rows || !cy || !ct) {
        st = dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_eval_autoattack", "FAB scratch");
        goto done;
    }
    memset(fooled, 0, (size_t)n);
    int32_t runs = aa->o.target_classes;
    tall = malloc((size_t)n * (size_t)runs * sizeof(int32_t));
    if (!tall || (st = dat_aa_logits(aa, x, n)) != DAT_OK) {
        if (!tall)
            st = dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_eval_autoattack", "FAB targets");
        goto done;
    }
    for (int32_t i = 0; i < n; ++i)
        for (int32_t r = 0; r < runs; ++r)
            tall[(size_t)i * runs + r] = dat_aa_target_class(aa, i, r);
    for (int32_t r = 0; r < runs; ++r) {
        int32_t m = 0;
        for (int32_t i = 0; i < n; ++i)
            if (!fooled[i])
                rows[m++] = i;
        if (m == 0)
            break;
        for (int32_t q = 0; q < m; ++q) {
            memcpy(cx + (size_t)q * d, x + (size_t)rows[q] * d, d * sizeof(float));
            cy[q] = y[rows[q]];
            ct[q] = tall[(size_t)rows[q] * runs + r];
        }
        if ((st = fab_run(aa, &s, cx, cy, ct, m)) != DAT_OK)
            goto done;
        for (int32_t q = 0; q < m; ++q) {
            if (!(s.res[q] <= aa->o.eps))
                continue;
            fooled[rows[q]] = 1;
            memcpy(x_adv + (size_t)rows[q] * d, s.adv + (size_t)q * d, d * sizeof(float));
        }
    }
done:
    fab_free(&s);
    free(cx);
    free(rows);
    free(cy);
    free(ct);
    free(tall);
    return st;
}
