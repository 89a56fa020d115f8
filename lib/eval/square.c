/* Square (Andriushchenko et al. 2020), l-inf, as in AutoAttack: a score-based
 * random search. It starts from vertical stripes of +-eps and then, per
 * query, proposes a square of side s (p_init of the pixels at first, shrinking
 * on the published schedule) with one random sign of 2 eps per channel,
 * projected to the eps-ball; a proposal is kept where the margin loss
 * z_y - max_{c != y} z_c decreases. The square's position is shared by the
 * batch, as in the reference; its signs are drawn per sample here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "eval.h"

/* Fraction of pixels of the square at query it of n (AutoAttack's p_selection). */
static float p_selection(float p_init, int32_t it, int32_t n)
{
    int32_t i = (int32_t)((int64_t)it * 10000 / n);
    static const int32_t bounds[] = {10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000};
    float p = p_init;
    for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; ++b)
        if (i > bounds[b])
            p = p_init / (float)(2 << b);
    return p;
}

static float margin(const dat_aa *aa, int32_t i, int32_t y)
{
    const float *z = aa->logits + (size_t)i * (size_t)aa->classes;
    float other = -INFINITY;
    for (int32_t c = 0; c < aa->classes; ++c)
        if (c != y)
            other = fmaxf(other, z[c]);
    return z[y] - other;
}

/* Random number j of the attack's draws for sample i: a stream per sample. */
static float draw(const dat_aa *aa, const int64_t *idx, int32_t i, uint64_t j)
{
    return dat_aa_uniform(aa, dat_aa_stream(aa, DAT_AA_SQUARE, 0, idx[i]), j);
}

/* Batch-shared draws (the square's position): run 1 of the batch's first
 * sample, a stream the per-sample draws (run 0) never use. */
static float draw_shared(const dat_aa *aa, uint64_t j)
{
    return dat_aa_uniform(aa, dat_aa_stream(aa, DAT_AA_SQUARE, 1, 0), j);
}

typedef struct square_state {
    int32_t c, h, w;
    float *best, *cand;   /* n * d */
    float *best_margin;   /* n */
    int32_t *active, *cy; /* indices of samples still robust; their labels */
    float *cx;            /* candidates of the active samples, compacted */
} square_state;

static void init_stripes(const dat_aa *aa, const square_state *q, const float *x,
                         const int64_t *idx, int32_t n, float *best)
{
    for (int32_t i = 0; i < n; ++i)
        for (int32_t ch = 0; ch < q->c; ++ch)
            for (int32_t col = 0; col < q->w; ++col) {
                float sign = draw(aa, idx, i, (uint64_t)(ch * q->w + col)) < 0.5f ? -1.0f : 1.0f;
                for (int32_t row = 0; row < q->h; ++row) {
                    size_t j = ((size_t)i * q->c + ch) * q->h * q->w + (size_t)row * q->w + col;
                    best[j] = fminf(fmaxf(x[j] + aa->o.eps * sign, aa->o.lo), aa->o.hi);
                }
            }
}

/* Proposal for sample i from its best point: a square at (vh, vw) of side s. */
static void propose(const dat_aa *aa, const square_state *q, const float *x, const float *best,
                    const int64_t *idx, int32_t i, int32_t it, int32_t vh, int32_t vw, int32_t s,
                    float *cand)
{
    size_t d = aa->d, hw = (size_t)q->h * q->w;
    const float *x0 = x + (size_t)i * d;
    memcpy(cand, best + (size_t)i * d, d * sizeof(float));
    uint64_t base = (uint64_t)q->c * q->w + (uint64_t)it * q->c;
    for (int32_t ch = 0; ch < q->c; ++ch) {
        float delta = 2.0f * aa->o.eps * (draw(aa, idx, i, base + ch) < 0.5f ? -1.0f : 1.0f);
        for (int32_t r = vh; r < vh + s; ++r)
            for (int32_t col = vw; col < vw + s; ++col) {
                size_t j = ch * hw + (size_t)r * q->w + col;
                float v = cand[j] + delta;
                v = fminf(fmaxf(v, x0[j] - aa->o.eps), x0[j] + aa->o.eps);
                cand[j] = fminf(fmaxf(v, aa->o.lo), aa->o.hi);
            }
    }
}

static dat_status search(dat_aa *aa, square_state *q, const float *x, const int32_t *y,
                         const int64_t *idx, int32_t n, unsigned char *fooled)
{
    size_t d = aa->d;
    DAT_TRY(dat_aa_logits(aa, q->best, n));
    for (int32_t i = 0; i < n; ++i) {
        q->best_margin[i] = margin(aa, i, y[i]);
        fooled[i] = q->best_margin[i] <= 0;
    }
    int32_t queries = aa->o.square_queries;
    for (int32_t it = 0; it < queries; ++it) {
        int32_t m = 0;
        for (int32_t i = 0; i < n; ++i)
            if (!fooled[i])
                q->active[m++] = i;
        if (m == 0)
            break;
        float p = p_selection(aa->o.square_p_init, it, queries);
        int32_t s = (int32_t)lroundf(sqrtf(p * (float)(q->h * q->w)));
        s = s < 1 ? 1 : (s > q->h - 1 ? q->h - 1 : s);
        int32_t vh = (int32_t)(draw_shared(aa, 2 * (uint64_t)it) * (float)(q->h - s));
        int32_t vw = (int32_t)(draw_shared(aa, 2 * (uint64_t)it + 1) * (float)(q->w - s));
        for (int32_t a = 0; a < m; ++a) {
            propose(aa, q, x, q->best, idx, q->active[a], it, vh, vw, s, q->cx + (size_t)a * d);
            q->cy[a] = y[q->active[a]];
        }
        DAT_TRY(dat_aa_logits(aa, q->cx, m));
        for (int32_t a = 0; a < m; ++a) {
            int32_t i = q->active[a];
            float mg = margin(aa, a, q->cy[a]);
            if (!(mg < q->best_margin[i]))
                continue;
            q->best_margin[i] = mg;
            memcpy(q->best + (size_t)i * d, q->cx + (size_t)a * d, d * sizeof(float));
            fooled[i] = mg <= 0;
        }
    }
    return DAT_OK;
}

dat_status dat_square(dat_aa *aa, const float *x, const int32_t *y, const int64_t *idx,
                      int32_t n, float *x_adv, unsigned char *fooled)
{
    if (aa->o.norm != DAT_NORM_LINF)
        return dat_error(DAT_ERR_UNSUPPORTED, "dat_eval_autoattack",
                         "Square is implemented for l-inf only; leave DAT_AA_SQUARE out of "
                         "attacks for l2");
    int32_t c = aa->m->in_c, h = aa->m->in_h, w = aa->m->in_w;
    square_state q;
    memset(&q, 0, sizeof q);
    q.c = c;
    q.h = h;
    q.w = w;
    size_t nd = (size_t)n * aa->d;
    q.best = calloc(nd, sizeof(float));
    q.cx = malloc(nd * sizeof(float));
    q.best_margin = malloc((size_t)n * sizeof(float));
    q.active = malloc((size_t)n * sizeof(int32_t));
    q.cy = malloc((size_t)n * sizeof(int32_t));
    dat_status st;
    if (!q.best || !q.cx || !q.best_margin || !q.active || !q.cy) {
        st = dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_eval_autoattack", "Square scratch");
    } else {
        init_stripes(aa, &q, x, idx, n, q.best);
        st = search(aa, &q, x, y, idx, n, fooled);
        for (int32_t i = 0; st == DAT_OK && i < n; ++i)
            if (fooled[i])
                memcpy(x_adv + (size_t)i * aa->d, q.best + (size_t)i * aa->d,
                       aa->d * sizeof(float));
    }
    free(q.best);
    free(q.cx);
    free(q.best_margin);
    free(q.active);
    free(q.cy);
    return st;
}
