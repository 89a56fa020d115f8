/*
 * dat-eval: clean accuracy, PGD-k, AutoAttack and randomized-smoothing
 * certification of a checkpoint on a test set; see --help and
 * docs/dat-eval.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "progress.h"

int eval_fail(const char *what, dat_status s)
{
    fprintf(stderr, "dat-eval: %s: %s: %s\n", what, dat_status_string(s), dat_last_error());
    return 1;
}

static int alloc_results(evaluation *e)
{
    size_t n = (size_t)(e->total > 0 ? e->total : 1);
    e->label = calloc(n, sizeof(int32_t));
    e->clean_pred = calloc(n, sizeof(int32_t));
    e->aa_outcome = calloc(n, sizeof(int32_t));
    e->cert_pred = calloc(n, sizeof(int32_t));
    e->cert_radius = calloc(n, sizeof(float));
    e->pgd_robust = calloc(n, 1);
    if (e->label && e->clean_pred && e->aa_outcome && e->cert_pred && e->cert_radius &&
        e->pgd_robust)
        return 0;
    fprintf(stderr, "dat-eval: out of memory for %lld results\n", (long long)e->total);
    return 1;
}

static int clean_accuracy(evaluation *e, dat_tensor *x, int64_t off, int32_t n)
{
    int64_t ls[2] = {n, e->classes};
    dat_tensor *z;
    TRY("clean accuracy", dat_tensor_create(&z, e->ctx, DAT_FLOAT32, 2, ls));
    float *logits = malloc((size_t)n * (size_t)e->classes * sizeof(float));
    dat_status s = logits ? dat_model_forward(e->model, x, z) : DAT_ERR_OUT_OF_MEMORY;
    if (s == DAT_OK)
        s = dat_tensor_read(z, logits, (size_t)n * (size_t)e->classes * sizeof(float));
    for (int32_t i = 0; s == DAT_OK && i < n; ++i) {
        const float *r = logits + (size_t)i * e->classes;
        int32_t best = 0;
        for (int32_t c = 1; c < e->classes; ++c)
            if (r[c] > r[best])
                best = c;
        e->clean_pred[off + i] = best;
        e->clean += best == e->label[off + i];
    }
    free(logits);
    dat_tensor_destroy(z);
    return s == DAT_OK ? 0 : eval_fail("clean accuracy", s);
}

static int pgd_accuracy(evaluation *e, dat_tensor *x, dat_tensor *y, int64_t off, int32_t n)
{
    int64_t shape[1] = {n};
    dat_tensor *mask;
    TRY("PGD", dat_tensor_create(&mask, e->ctx, DAT_UINT8, 1, shape));
    int32_t robust = 0;
    dat_status s = dat_eval_robust_accuracy(e->pgd, e->model, x, y, NULL, &robust, mask);
    if (s == DAT_OK)
        s = dat_tensor_read(mask, e->pgd_robust + off, (size_t)n);
    dat_tensor_destroy(mask);
    e->pgd_count += robust;
    return s == DAT_OK ? 0 : eval_fail("PGD", s);
}

static int autoattack(evaluation *e, dat_tensor *x, dat_tensor *y, int64_t off)
{
    dat_autoattack_options a;
    dat_autoattack_options_init(&a);
    a.norm = strcmp(e->o.norm, "l2") == 0 ? DAT_NORM_L2 : DAT_NORM_LINF;
    a.eps = e->o.eps;
    a.attacks = e->o.attacks;
    a.apgd_steps = e->o.apgd_steps;
    a.target_classes = eval_aa_targets(e);
    a.fab_steps = e->o.fab_steps;
    a.square_queries = e->o.square_queries;
    a.seed = e->o.seed;
    a.first_index = off;
    int32_t robust = 0;
    TRY("AutoAttack", dat_eval_autoattack(e->model, x, y, &a, NULL, e->aa_outcome + off, &robust));
    e->aa_count += robust;
    return 0;
}

static int certify(evaluation *e, dat_tensor *x, int64_t off)
{
    dat_smooth_options s;
    dat_smooth_options_init(&s);
    s.sigma = e->o.sigma;
    s.n0 = e->o.n0;
    s.n = e->o.n;
    s.alpha = e->o.alpha;
    s.batch = e->o.cert_batch;
    s.seed = e->o.seed;
    s.first_index = off;
    TRY("certification",
        dat_smooth_certify(e->model, x, &s, e->cert_pred + off, e->cert_radius + off));
    return 0;
}

/* Running figures for the progress line. */
static void status_line(const evaluation *e, int64_t done, char *buf, size_t size)
{
    size_t u = 0;
    buf[0] = '\0';
    if (e->o.ta)
        u += (size_t)snprintf(buf + u, size - u, "ta %.4f ", (double)e->clean / (double)done);
    if (e->o.pgd && u < size)
        u += (size_t)snprintf(buf + u, size - u, "pgd %.4f ", (double)e->pgd_count / (double)done);
    if (e->o.aa && u < size)
        u += (size_t)snprintf(buf + u, size - u, "aa %.4f ", (double)e->aa_count / (double)done);
    if (e->o.certify && u < size) {
        int64_t ok = 0;
        for (int64_t i = 0; i < done; ++i)
            ok += e->cert_pred[i] == e->label[i];
        snprintf(buf + u, size - u, "smoothed %.4f", (double)ok / (double)done);
    }
}

static int one_batch(evaluation *e, dat_tensor *x, dat_tensor *y, int64_t off, int32_t n)
{
    double t = now_seconds();
    if (e->o.ta && clean_accuracy(e, x, off, n))
        return 1;
    double t1 = now_seconds();
    if (e->o.pgd && pgd_accuracy(e, x, y, off, n))
        return 1;
    double t2 = now_seconds();
    if (e->o.aa && autoattack(e, x, y, off))
        return 1;
    double t3 = now_seconds();
    if (e->o.certify && certify(e, x, off))
        return 1;
    double t4 = now_seconds();
    e->seconds[0] += t1 - t;
    e->seconds[1] += t2 - t1;
    e->seconds[2] += t3 - t2;
    e->seconds[3] += t4 - t3;
    return 0;
}

static int make_batch(evaluation *e, int32_t n, dat_tensor **x, dat_tensor **y)
{
    int32_t c, h, w;
    dat_dataset_sample_shape(e->ds, &c, &h, &w);
    int64_t xs[4] = {n, c, h, w}, ys[1] = {n};
    TRY("batch", dat_tensor_create(x, e->ctx, DAT_FLOAT32, 4, xs));
    TRY("batch", dat_tensor_create(y, e->ctx, DAT_INT32, 1, ys));
    return 0;
}

static int run_all(evaluation *e)
{
    dat_tensor *x = NULL, *y = NULL;
    int32_t size = (int32_t)(e->total < e->o.batch ? e->total : e->o.batch);
    if (make_batch(e, size, &x, &y))
        return 1;
    progress pg;
    progress_start(&pg, e->o.progress, "eval", e->total);
    int rc = 0;
    for (int64_t off = 0; off < e->total && rc == 0;) {
        int32_t want = (int32_t)(e->total - off < size ? e->total - off : size);
        if (want < size) { /* the last, short batch gets tensors of its size */
            dat_tensor_destroy(x);
            dat_tensor_destroy(y);
            if ((rc = make_batch(e, want, &x, &y)) != 0)
                break;
            size = want;
        }
        int32_t count = 0;
        dat_status s = dat_dataset_next_batch(e->ds, x, y, &count);
        if (s == DAT_OK)
            s = dat_tensor_read(y, e->label + off, (size_t)count * sizeof(int32_t));
        if (s != DAT_OK || count != want) {
            rc = s != DAT_OK ? eval_fail("test data", s) : 1;
            break;
        }
        rc = one_batch(e, x, y, off, count);
        off += count;
        char status[160];
        status_line(e, off, status, sizeof status);
        progress_update(&pg, off, (double)off, status);
    }
    progress_end(&pg);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    return rc;
}

static int write_result(const evaluation *e)
{
    if (e->o.json) {
        FILE *f = fopen(e->o.json, "w");
        if (!f) {
            perror(e->o.json);
            return 1;
        }
        write_json(f, e);
        if (fclose(f) != 0) {
            perror(e->o.json);
            return 1;
        }
    }
    evaluation brief = *e; /* stdout gets the figures without per-sample arrays */
    brief.o.per_sample = 0;
    write_json(stdout, &brief);
    return 0;
}

static void cleanup(evaluation *e)
{
    dat_attack_destroy(e->pgd);
    dat_model_destroy(e->model);
    dat_dataset_destroy(e->ds);
    dat_ctx_destroy(e->ctx);
    free(e->label);
    free(e->clean_pred);
    free(e->aa_outcome);
    free(e->cert_pred);
    free(e->cert_radius);
    free(e->pgd_robust);
}

int main(int argc, char **argv)
{
    evaluation e;
    memset(&e, 0, sizeof e);
    int rc = eval_options_parse(&e.o, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    rc = eval_setup(&e) || alloc_results(&e) || run_all(&e) || write_result(&e);
    cleanup(&e);
    return rc;
}
