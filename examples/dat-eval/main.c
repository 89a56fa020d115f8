/*
 * dat-eval: clean accuracy, PGD-k, AutoAttack and randomized-smoothing
 * certification of a checkpoint on a test set; see --help and
 * docs/dat-eval.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval.h"
#include "files.h"
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

/* Where --json goes. Checked before the evaluation, which may take hours, so that a path
 * that cannot take the result fails at once; written to a temporary file next to it and
 * renamed over it at the end, so that an earlier result is replaced whole or not at all. */
typedef struct json_output {
    char *target;  /* the file to replace (symlinks resolved); NULL without --json */
    int in_place;  /* an existing device or pipe (/dev/stdout): written as it is */
    mode_t mode;   /* of the file written: the old file's, or 0666 less the umask */
} json_output;

static int json_fail(const char *path, const char *why, int err)
{
    fprintf(stderr, "dat-eval: --json %s: %s: %s\n", path, why, strerror(err));
    return 1;
}

/* --json must not name an input (the checkpoint would be overwritten with the result),
 * nor a folder, and its folder must take a new file. */
static int json_check(json_output *out, const eval_options *o)
{
    memset(out, 0, sizeof *out);
    if (!o->json)
        return 0;
    mode_t mask = umask(0); /* read before any thread starts */
    umask(mask);
    out->mode = 0666 & ~mask;
    struct stat js;
    if (stat(o->json, &js) != 0) {
        if (errno != ENOENT)
            return json_fail(o->json, "cannot stat", errno);
        out->target = strdup(o->json);
    } else {
        const char *inputs[][2] = {{"--checkpoint", o->checkpoint},
                                   {"--npy-images", o->npy_images},
                                   {"--npy-labels", o->npy_labels}};
        for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; ++i) {
            struct stat is;
            if (inputs[i][1] && stat(inputs[i][1], &is) == 0 && is.st_dev == js.st_dev &&
                is.st_ino == js.st_ino) {
                fprintf(stderr, "dat-eval: --json %s: is the %s file; the result would "
                        "overwrite it\n", o->json, inputs[i][0]);
                return 1;
            }
        }
        if (S_ISDIR(js.st_mode)) {
            fprintf(stderr, "dat-eval: --json %s: is a folder; give a file name\n", o->json);
            return 1;
        }
        if (!S_ISREG(js.st_mode)) { /* a device or a pipe: nothing to replace */
            out->in_place = 1;
            out->target = strdup(o->json);
            return out->target ? 0 : json_fail(o->json, "cannot hold its name", ENOMEM);
        }
        out->mode = js.st_mode & 07777;
        out->target = realpath(o->json, NULL); /* a symlink stays, its file is replaced */
        if (!out->target)
            return json_fail(o->json, "cannot resolve", errno);
    }
    if (!out->target)
        return json_fail(o->json, "cannot hold its name", ENOMEM);
    int err = temp_probe(out->target);
    return err ? json_fail(o->json, "cannot create a file in its folder", err) : 0;
}

/* Writes the result into f and closes it; with mode, the file also gets that
 * mode and reaches the disk first. Returns 0 or the errno of the first failure. */
static int json_put(FILE *f, const evaluation *e, const mode_t *mode)
{
    errno = 0;
    write_json(f, e);
    int err = fflush(f) != 0 || ferror(f) ? (errno ? errno : EIO) : 0;
    if (!err && mode && (fchmod(fileno(f), *mode) != 0 || fsync(fileno(f)) != 0))
        err = errno;
    if (fclose(f) != 0 && !err)
        err = errno;
    return err;
}

/* Writes the result to a temporary file and renames it over the target. */
static int json_write(const json_output *out, const evaluation *e)
{
    const char *path = e->o.json;
    if (out->in_place) {
        FILE *f = fopen(out->target, "w");
        if (!f)
            return json_fail(path, "cannot open", errno);
        int err = json_put(f, e, NULL);
        return err ? json_fail(path, "cannot write", err) : 0;
    }
    char *name;
    int fd = temp_create(out->target, &name);
    if (fd < 0)
        return json_fail(path, "cannot create a file in its folder", errno);
    FILE *f = fdopen(fd, "w");
    int err = 0;
    if (!f) {
        err = errno;
        close(fd);
    } else {
        err = json_put(f, e, &out->mode);
    }
    if (!err && rename(name, out->target) != 0)
        err = errno;
    if (err)
        unlink(name);
    free(name);
    return err ? json_fail(path, "cannot write", err) : 0;
}

/* stdout gets the figures first (without per-sample arrays): a --json that fails at the
 * end does not lose them. */
static int write_result(const evaluation *e, const json_output *out)
{
    evaluation brief = *e;
    brief.o.per_sample = 0;
    write_json(stdout, &brief);
    fflush(stdout);
    return out->target ? json_write(out, e) : 0;
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
    json_output out;
    rc = json_check(&out, &e.o) || eval_setup(&e) || alloc_results(&e) || run_all(&e) ||
         write_result(&e, &out);
    free(out.target);
    cleanup(&e);
    return rc;
}
