/*
 * Unlabeled data with pseudo-labels (Carmon et al. 2019; the paper's TRADES
 * experiment with unlabeled data): the last --unlabeled N training images lose
 * their labels, and the images of --unlabeled-data F are added; a teacher (a
 * checkpoint of the same --model, normally trained on the labeled part only)
 * labels all of them with its prediction. The result is written once to two
 * .npy files that the training data set then reads like any other; the
 * files are removed as soon as they are loaded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pseudo.h"

/* An in-memory copy of the training images (uint8, exact for 8-bit sources)
 * and their labels. */
typedef struct pool {
    uint8_t *images;
    int32_t *labels;
    int64_t n, cap, pixels;
    int32_t c, h, w; /* the sample shape, from the training data */
} pool;

static int pool_add(run *r, pool *p, const float *x, const int32_t *y, int32_t count)
{
    if (p->n + count > p->cap) {
        int64_t cap = 2 * (p->n + count);
        uint8_t *im = realloc(p->images, (size_t)(cap * p->pixels));
        int32_t *lb = im ? realloc(p->labels, (size_t)cap * sizeof *lb) : NULL;
        if (im)
            p->images = im;
        if (!lb) {
            fprintf(stderr, "dat-train%s: out of memory for the pseudo-labeled data\n",
                    r->ranks > 1 ? " (a rank)" : "");
            return 1;
        }
        p->labels = lb;
        p->cap = cap;
    }
    for (int64_t i = 0; i < (int64_t)count * p->pixels; ++i) {
        float v = x[i] * 255.0f + 0.5f;
        p->images[p->n * p->pixels + i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    for (int32_t i = 0; i < count; ++i)
        p->labels[p->n + i] = y ? y[i] : -1;
    p->n += count;
    return 0;
}

/* Appends every sample of `d` (file order) to the pool; y = -1 where unlabeled. */
static int read_all(run *r, pool *p, dat_dataset_options *d, const char *what)
{
    dat_dataset *ds = NULL;
    dat_tensor *x = NULL, *y = NULL;
    int rc = 1;
    d->shuffle = 0;
    d->prefetch = 0;
    d->rank = 0;
    d->world_size = 1;
    d->drop_last = 0;
    d->random_crop = d->horizontal_flip = 0;
    d->validation_count = 0;
    d->batch_size = 256;
    dat_status s = dat_dataset_open(&ds, r->ctx, d);
    int32_t c = 0, h = 0, w = 0;
    if (s == DAT_OK)
        s = dat_dataset_sample_shape(ds, &c, &h, &w);
    int64_t xs[4] = {d->batch_size, c, h, w}, ys[1] = {d->batch_size};
    if (s == DAT_OK)
        s = dat_tensor_create(&x, r->ctx, DAT_FLOAT32, 4, xs);
    int32_t classes = 0;
    if (s == DAT_OK)
        s = dat_dataset_num_classes(ds, &classes);
    if (s == DAT_OK && classes > 0) /* unlabeled data serve no labels */
        s = dat_tensor_create(&y, r->ctx, DAT_INT32, 1, ys);
    /* Batches are read back to the host: the context may be a GPU's. */
    size_t xbytes = (size_t)d->batch_size * (size_t)c * (size_t)h * (size_t)w * sizeof(float);
    float *xh = s == DAT_OK ? malloc(xbytes) : NULL;
    int32_t *yh = s == DAT_OK ? malloc((size_t)d->batch_size * sizeof *yh) : NULL;
    if (s != DAT_OK) {
        fail(r, what, s);
        goto done;
    }
    if (!xh || !yh) {
        fprintf(stderr, "dat-train: %s: out of memory for a batch\n", what);
        goto done;
    }
    if (p->pixels && (c != p->c || h != p->h || w != p->w)) {
        fprintf(stderr, "dat-train: %s: images of %dx%dx%d do not match the training images "
                "(%dx%dx%d)\n", d->images_path, c, h, w, p->c, p->h, p->w);
        goto done;
    }
    p->pixels = (int64_t)c * h * w;
    p->c = c;
    p->h = h;
    p->w = w;
    for (;;) {
        int32_t count = 0;
        if ((s = dat_dataset_next_batch(ds, x, y, &count)) == DAT_OK && count > 0) {
            s = dat_tensor_read(x, xh, xbytes);
            if (s == DAT_OK && y)
                s = dat_tensor_read(y, yh, (size_t)d->batch_size * sizeof *yh);
        }
        if (s != DAT_OK) {
            fail(r, what, s);
            goto done;
        }
        if (count == 0)
            break;
        if (pool_add(r, p, xh, y ? yh : NULL, count))
            goto done;
    }
    rc = 0;
done:
    free(xh);
    free(yh);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_dataset_destroy(ds);
    return rc;
}

/* Labels pool samples [first, n) with the teacher's argmax. */
static int label_with_teacher(run *r, pool *p, int64_t first)
{
    const train_options *o = &r->o;
    dat_model *teacher = NULL;
    dat_tensor *x = NULL, *logits = NULL;
    int rc = 1;
    int32_t c, h, w, classes;
    dat_dataset_sample_shape(r->train, &c, &h, &w);
    dat_dataset_num_classes(r->train, &classes);
    enum { B = 250 };
    int64_t xs[4] = {B, c, h, w}, ls[2] = {B, classes};
    dat_status s = create_model(r, &teacher);
    if (s == DAT_OK)
        s = dat_model_load(teacher, o->teacher, NULL);
    if (s == DAT_OK)
        s = dat_model_set_mode(teacher, DAT_MODE_EVAL);
    if (s == DAT_OK)
        s = dat_tensor_create(&x, r->ctx, DAT_FLOAT32, 4, xs);
    if (s == DAT_OK)
        s = dat_tensor_create(&logits, r->ctx, DAT_FLOAT32, 2, ls);
    /* Host copies of x and the logits: the context may be a GPU's. */
    size_t xbytes = (size_t)B * (size_t)p->pixels * sizeof(float);
    size_t lbytes = (size_t)B * (size_t)classes * sizeof(float);
    float *xp = s == DAT_OK ? calloc(1, xbytes) : NULL, *lp = s == DAT_OK ? malloc(lbytes) : NULL;
    int oom = s == DAT_OK && (!xp || !lp);
    if (oom)
        fprintf(stderr, "dat-train: teacher: out of memory for a batch\n");
    for (int64_t at = first; s == DAT_OK && !oom && at < p->n; at += B) {
        int64_t count = p->n - at < B ? p->n - at : B;
        for (int64_t i = 0; i < count * p->pixels; ++i)
            xp[i] = (float)p->images[at * p->pixels + i] / 255.0f;
        if ((s = dat_tensor_write(x, xp, xbytes)) != DAT_OK ||
            (s = dat_model_forward(teacher, x, logits)) != DAT_OK ||
            (s = dat_tensor_read(logits, lp, lbytes)) != DAT_OK)
            break;
        for (int64_t i = 0; i < count; ++i) {
            const float *l = lp + i * classes;
            int32_t best = 0;
            for (int32_t k = 1; k < classes; ++k)
                best = l[k] > l[best] ? k : best;
            p->labels[at + i] = best;
        }
    }
    if (s != DAT_OK)
        fail(r, "teacher", s);
    else if (!oom)
        rc = 0;
    free(xp);
    free(lp);
    dat_tensor_destroy(x);
    dat_tensor_destroy(logits);
    dat_model_destroy(teacher);
    return rc;
}

/* Writes a new file <TMPDIR>/dat-train-XXXXXX<suffix> (its name into path):
 * created exclusively (mkstemps), so nothing placed there beforehand, a link
 * included, is written through. */
static int write_npy(char *path, size_t size, const char *suffix, const char *descr,
                     const char *shape, const void *data, size_t bytes)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, size, "%s/dat-train-XXXXXX%s", tmp, suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        int err = errno;
        if (fd >= 0) {
            close(fd);
            remove(path);
        }
        errno = err;
        return 1;
    }
    char header[128];
    int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, "
                     "'shape': %s, }", descr, shape);
    int total = 10 + n + 1; /* magic, version, length, dict, newline: padded to 64 */
    int pad = (64 - total % 64) % 64;
    unsigned short len = (unsigned short)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(len & 0xff, f);
    fputc(len >> 8, f);
    fwrite(header, 1, (size_t)n, f);
    for (int i = 0; i < pad; ++i)
        fputc(' ', f);
    fputc('\n', f);
    size_t wrote = fwrite(data, 1, bytes, f);
    int bad = (fclose(f) != 0) | (wrote != bytes);
    if (bad) {
        int err = errno;
        remove(path);
        errno = err;
    }
    return bad;
}

/* The pool as two new .npy files under TMPDIR; on failure neither is left. */
static int write_pool(const pool *p, char *images, char *labels, size_t size)
{
    char shape[96];
    snprintf(shape, sizeof shape, "(%lld, %d, %d, %d)", (long long)p->n, p->c, p->h, p->w);
    if (write_npy(images, size, "-images.npy", "|u1", shape, p->images,
                  (size_t)(p->n * p->pixels)) == 0) {
        snprintf(shape, sizeof shape, "(%lld,)", (long long)p->n);
        if (write_npy(labels, size, "-labels.npy", "<i4", shape, p->labels,
                      (size_t)p->n * sizeof(int32_t)) == 0)
            return 0;
        int err = errno;
        remove(images);
        errno = err;
    }
    fprintf(stderr, "dat-train: cannot write the pseudo-labeled data under %s: %s\n",
            getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", strerror(errno));
    return 1;
}

int pseudo_label_data(run *r, dat_dataset_options *train)
{
    const train_options *o = &r->o;
    pool p = {0};
    char images[4096], labels[4096];
    int rc = 1;
    dat_dataset_options d = *train;
    if (read_all(r, &p, &d, "training data"))
        goto done;
    int64_t labeled = p.n - o->unlabeled_count;
    if (labeled < 1) {
        fprintf(stderr, "dat-train: --unlabeled %d leaves no labeled training image (there are "
                "%lld)\n", (int)o->unlabeled_count, (long long)p.n);
        goto done;
    }
    if (o->unlabeled_path) {
        dat_dataset_options u;
        dat_dataset_options_init(&u);
        u.format = DAT_DATASET_NPY;
        u.images_path = o->unlabeled_path;
        if (read_all(r, &p, &u, "--unlabeled-data"))
            goto done;
    }
    if (label_with_teacher(r, &p, labeled) || write_pool(&p, images, labels, sizeof images))
        goto done;
    if (r->rank == 0)
        fprintf(stderr, "dat-train: %lld labeled + %lld pseudo-labeled training images (teacher "
                "%s)\n", (long long)labeled, (long long)(p.n - labeled), o->teacher);
    dat_dataset_options n = *train;
    n.format = DAT_DATASET_NPY;
    n.images_path = images;
    n.labels_path = labels;
    n.extra_paths = NULL; /* CIFAR-10's other record files: read into the pool */
    n.num_extra_paths = 0;
    dat_dataset_num_classes(r->train, &n.num_classes);
    n.classes = NULL; /* already applied, and relabeled */
    n.num_subset_classes = 0;
    n.limit = 0;
    dat_dataset_destroy(r->train);
    r->train = NULL;
    dat_status s = dat_dataset_open(&r->train, r->ctx, &n);
    remove(images);
    remove(labels);
    rc = s != DAT_OK ? fail(r, "pseudo-labeled data", s) : 0;
done:
    free(p.images);
    free(p.labels);
    return rc;
}
