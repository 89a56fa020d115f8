/* Square (Andriushchenko et al. 2020) as in AutoAttack: a score-based random
 * search that keeps a proposal where the margin loss z_y - max_{c != y} z_c
 * decreases. Per query, a square of side s (p_init of the pixels at first,
 * shrinking on the published schedule) changes:
 * - l-inf: start from vertical stripes of +-eps; the square gets one random
 *   sign of 2 eps per channel, projected to the eps-ball;
 * - l2: start from a grid of +-"meta pseudo-Gaussian" bumps scaled to norm
 *   eps; the square's content becomes such a bump plus its old (normalized)
 *   content, a second square is emptied, and the mass moved keeps the norm at
 *   eps.
 * The squares' positions are shared by the batch, as in the reference; the
 * signs are drawn per sample. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "eval.h"

/* Fraction of pixels of the square at query it (AutoAttack's p_selection). On
 * the query index itself, as AutoAttack builds its Square (resc_schedule=False,
 * autoattack.py): the Square paper's schedule, rescaled to 10 000 queries,
 * shrinks the squares twice as early at 5 000 and is a stronger attack than
 * the one AutoAttack's figures are measured with. */
static float p_selection(float p_init, int32_t it)
{
    static const int32_t bounds[] = {10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000};
    float p = p_init;
    for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; ++b)
        if (it > bounds[b])
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
    float *eta;           /* l2: the s x s bump of the current query */
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

/* The squares of one query, shared by the batch. */
typedef struct window {
    int32_t s, vh, vw, vh2, vw2;
} window;

/* AutoAttack's eta_rectangles: concentric rings of weight 1/(k+1)^2 around the
 * centre of an r x cols block, added into out (row stride cols) times sign. */
static void rings(float *out, int32_t r, int32_t cols, float sign)
{
    int32_t xc = r / 2 + 1, yc = cols / 2 + 1, c0 = xc - 1, c1 = yc - 1;
    int32_t rounds = xc > yc ? xc : yc;
    double sum2 = 0;
    float *tmp = out; /* accumulate unscaled, then normalize this block */
    for (int32_t k = 0; k < rounds; ++k, --c0, --c1) {
        int32_t r0 = c0 > 0 ? c0 : 0, r1 = c0 + 2 * k + 1 < r ? c0 + 2 * k + 1 : r;
        int32_t q0 = c1 > 0 ? c1 : 0, q1 = c1 + 2 * k + 1 < cols ? c1 + 2 * k + 1 : cols;
        for (int32_t a = r0; a < r1; ++a)
            for (int32_t b = q0; b < q1; ++b)
                tmp[a * cols + b] += 1.0f / (float)((k + 1) * (k + 1));
    }
    for (int32_t a = 0; a < r * cols; ++a)
        sum2 += (double)tmp[a] * tmp[a];
    float f = sum2 > 0 ? sign / (float)sqrt(sum2) : 0.0f;
    for (int32_t a = 0; a < r * cols; ++a)
        tmp[a] *= f;
}

/* AutoAttack's eta(s): +rings on the top half, -rings on the bottom half,
 * unit norm, transposed when `transpose`. */
static void meta_bump(float *eta, int32_t s, int transpose)
{
    memset(eta, 0, (size_t)s * s * sizeof(float));
    rings(eta, s / 2, s, 1.0f);
    rings(eta + (size_t)(s / 2) * s, s - s / 2, s, -1.0f);
    double sum2 = 0;
    for (int32_t a = 0; a < s * s; ++a)
        sum2 += (double)eta[a] * eta[a];
    float f = (float)(1.0 / sqrt(sum2));
    for (int32_t a = 0; a < s * s; ++a)
        eta[a] *= f;
    if (!transpose)
        return;
    for (int32_t a = 0; a < s; ++a)
        for (int32_t b = a + 1; b < s; ++b) {
            float t = eta[a * s + b];
            eta[a * s + b] = eta[b * s + a];
            eta[b * s + a] = t;
        }
}

static double l2norm(const float *v, size_t d)
{
    double r = 0;
    for (size_t j = 0; j < d; ++j)
        r += (double)v[j] * v[j];
    return sqrt(r);
}

/* x + eps * delta / ||delta||, clipped (delta in place: becomes the result). */
static void l2_place(const dat_aa *aa, const float *x0, float *delta)
{
    double f = aa->o.eps / (l2norm(delta, aa->d) + 1e-12);
    for (size_t j = 0; j < aa->d; ++j)
        delta[j] = fminf(fmaxf(x0[j] + (float)(delta[j] * f), aa->o.lo), aa->o.hi);
}

/* Per-sample draws: the l2 start's signs take the first positions, the queries'
 * signs follow from this base. */
static uint64_t l2_draw_base(const square_state *q)
{
    return (uint64_t)q->c * (uint64_t)(q->h * q->w);
}

static void init_l2(const dat_aa *aa, square_state *q, const float *x, const int64_t *idx,
                    int32_t n, float *best)
{
    int32_t s = q->h / 5, sp = (q->h - s * 5) / 2, hw = q->h * q->w;
    memset(best, 0, (size_t)n * aa->d * sizeof(float));
    int32_t win = 0;
    for (int32_t vh = sp; vh + s <= q->h && s > 0; vh += s)
        for (int32_t vw = sp; vw + s <= q->w; vw += s, ++win) {
            meta_bump(q->eta, s, draw_shared(aa, (uint64_t)1 << 40 | (uint64_t)win) > 0.5f);
            for (int32_t i = 0; i < n; ++i)
                for (int32_t ch = 0; ch < q->c; ++ch) {
                    float sign = draw(aa, idx, i, (uint64_t)(win * q->c + ch)) < 0.5f ? -1.f : 1.f;
                    float *b = best + (size_t)i * aa->d + (size_t)ch * hw;
                    for (int32_t r = 0; r < s; ++r)
                        for (int32_t col = 0; col < s; ++col)
                            b[(vh + r) * q->w + vw + col] += sign * q->eta[r * s + col];
                }
        }
    for (int32_t i = 0; i < n; ++i)
        l2_place(aa, x + (size_t)i * aa->d, best + (size_t)i * aa->d);
}

/* Norm of channel ch of delta inside the window at (vh, vw). */
static double window_norm(const square_state *q, const float *delta, int32_t ch, int32_t vh,
                          int32_t vw, int32_t s)
{
    double r = 0;
    const float *p = delta + (size_t)ch * q->h * q->w;
    for (int32_t a = vh; a < vh + s; ++a)
        for (int32_t b = vw; b < vw + s; ++b)
            r += (double)p[a * q->w + b] * p[a * q->w + b];
    return sqrt(r);
}

static int in_window(int32_t a, int32_t b, int32_t vh, int32_t vw, int32_t s)
{
    return a >= vh && a < vh + s && b >= vw && b < vw + s;
}

/* The l2 proposal of sample i (cand: d floats) from its best point. */
static void propose_l2(const dat_aa *aa, const square_state *q, const float *x,
                       const float *best, const int64_t *idx, int32_t i, int32_t it,
                       const window *wd, float *cand)
{
    size_t d = aa->d, hw = (size_t)q->h * q->w;
    int32_t s = wd->s;
    const float *x0 = x + (size_t)i * d, *b = best + (size_t)i * d;
    for (size_t j = 0; j < d; ++j)
        cand[j] = b[j] - x0[j]; /* delta */
    double norm_image = l2norm(cand, d), norm_windows = 0;
    for (int32_t ch = 0; ch < q->c; ++ch)
        for (int32_t a = 0; a < q->h; ++a)
            for (int32_t c2 = 0; c2 < q->w; ++c2)
                if (in_window(a, c2, wd->vh, wd->vw, s) || in_window(a, c2, wd->vh2, wd->vw2, s)) {
                    double v = cand[ch * hw + (size_t)a * q->w + c2];
                    norm_windows += v * v;
                }
    double budget = sqrt(fmax((double)aa->o.eps * aa->o.eps - norm_image * norm_image, 0.0) /
                             q->c + norm_windows);
    uint64_t base = l2_draw_base(q) + (uint64_t)it * q->c;
    float *fresh = malloc((size_t)s * s * sizeof(float));
    if (!fresh) { /* no memory for a proposal: propose the best point again */
        memcpy(cand, b, d * sizeof(float));
        return;
    }
    for (int32_t ch = 0; ch < q->c; ++ch) {
        float sign = draw(aa, idx, i, base + ch) < 0.5f ? -1.0f : 1.0f;
        double w1 = window_norm(q, cand, ch, wd->vh, wd->vw, s) + 1e-12;
        float *p = cand + ch * hw;
        double n2 = 0;
        for (int32_t a = 0; a < s; ++a)
            for (int32_t c2 = 0; c2 < s; ++c2) {
                float v = q->eta[a * s + c2] * sign +
                          (float)(p[(wd->vh + a) * q->w + wd->vw + c2] / w1);
                fresh[a * s + c2] = v;
                n2 += (double)v * v;
            }
        float f = (float)(budget / (sqrt(n2) + 1e-12));
        for (int32_t a = 0; a < s; ++a)
            for (int32_t c2 = 0; c2 < s; ++c2)
                p[(wd->vh2 + a) * q->w + wd->vw2 + c2] = 0.0f;
        for (int32_t a = 0; a < s; ++a)
            for (int32_t c2 = 0; c2 < s; ++c2)
                p[(wd->vh + a) * q->w + wd->vw + c2] = fresh[a * s + c2] * f;
    }
    free(fresh);
    l2_place(aa, x0, cand);
}

/* Side and positions of query it (and the l2 bump). */
static window next_window(const dat_aa *aa, square_state *q, int32_t it)
{
    float p = p_selection(aa->o.square_p_init, it);
    int32_t s = (int32_t)lroundf(sqrtf(p * (float)(q->h * q->w)));
    if (aa->o.norm == DAT_NORM_L2) {
        s = s < 3 ? 3 : s;
        s += s % 2 == 0;
    }
    int32_t side = q->h < q->w ? q->h : q->w;
    s = s < 1 ? 1 : (s > side - 1 ? side - 1 : s);
    uint64_t k = 8 * (uint64_t)it;
    window wd = {.s = s};
    wd.vh = (int32_t)(draw_shared(aa, k) * (float)(q->h - s));
    wd.vw = (int32_t)(draw_shared(aa, k + 1) * (float)(q->w - s));
    wd.vh2 = (int32_t)(draw_shared(aa, k + 2) * (float)(q->h - s));
    wd.vw2 = (int32_t)(draw_shared(aa, k + 3) * (float)(q->w - s));
    if (aa->o.norm == DAT_NORM_L2)
        meta_bump(q->eta, s, draw_shared(aa, k + 4) > 0.5f);
    return wd;
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
        window wd = next_window(aa, q, it);
        for (int32_t a = 0; a < m; ++a) {
            float *cand = q->cx + (size_t)a * d;
            if (aa->o.norm == DAT_NORM_L2)
                propose_l2(aa, q, x, q->best, idx, q->active[a], it, &wd, cand);
            else
                propose(aa, q, x, q->best, idx, q->active[a], it, wd.vh, wd.vw, wd.s, cand);
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
    q.eta = malloc((size_t)(h > w ? h : w) * (size_t)(h > w ? h : w) * sizeof(float));
    dat_status st;
    if (!q.best || !q.cx || !q.best_margin || !q.active || !q.cy || !q.eta) {
        st = dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_eval_autoattack", "Square scratch");
    } else {
        if (aa->o.norm == DAT_NORM_L2)
            init_l2(aa, &q, x, idx, n, q.best);
        else
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
    free(q.eta);
    return st;
}
