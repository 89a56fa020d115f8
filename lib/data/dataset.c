/* The dataset handle: split, shard, per-epoch order, batches. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/philox.h"
#include "../core/tensor.h"
#include "libdat/dat_data.h"
#include "readers.h"

struct dat_dataset {
    dat_ctx *ctx;
    dat_dataset_options o;
    dat_raw_data raw;
    int64_t *index;   /* the samples this handle serves (into raw) */
    int64_t count;
    int64_t *order;   /* this epoch's order of [0, count) */
    int64_t epoch, batch;
    float *xbuf;      /* host staging of one batch */
    int32_t *ybuf;
};

/* Philox streams of the split and of each epoch's order. */
#define SPLIT_STREAM UINT64_C(0x53504c4954)
#define EPOCH_STREAM(e) (UINT64_C(0x45504f4348) << 24 | (uint64_t)(e))

dat_status dat_dataset_options_init(dat_dataset_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->format = DAT_DATASET_IDX;
    opts->part = DAT_DATASET_TRAIN;
    opts->world_size = 1;
    opts->shuffle = 1;
    opts->batch_size = 128;
    return DAT_OK;
}

static dat_status check_options(const dat_dataset_options *o)
{
    const char *f = "dat_dataset_open";
    if (o->format != DAT_DATASET_IDX && o->format != DAT_DATASET_CIFAR10)
        return dat_error(DAT_ERR_INVALID_ARG, f, "format = %d is not a dat_dataset_format",
                         (int)o->format);
    if ((int)o->part < DAT_DATASET_TRAIN || o->part > DAT_DATASET_ALL)
        return dat_error(DAT_ERR_INVALID_ARG, f, "part = %d is not a dat_dataset_part",
                         (int)o->part);
    if (!o->images_path || (o->format == DAT_DATASET_IDX && !o->labels_path))
        return dat_error(DAT_ERR_INVALID_ARG, f, "images_path%s must be set",
                         o->format == DAT_DATASET_IDX ? " and labels_path" : "");
    if (o->world_size < 1 || o->rank < 0 || o->rank >= o->world_size)
        return dat_error(DAT_ERR_INVALID_ARG, f, "rank %d of world_size %d", (int)o->rank,
                         (int)o->world_size);
    if (o->batch_size < 1 || o->limit < 0 || o->holdout < 0)
        return dat_error(DAT_ERR_INVALID_ARG, f,
                         "batch_size = %d must be >= 1, limit and holdout >= 0",
                         (int)o->batch_size);
    return DAT_OK;
}

/* A missing file: say which package provides the default data. */
static dat_status read_or_explain(const char *path, uint8_t **b, size_t *n)
{
    dat_status s = dat_read_file(path, b, n);
    if (s == DAT_ERR_IO && strstr(path, "fashion-mnist"))
        return dat_error(DAT_ERR_IO, "dat_dataset_open",
                         "%s: cannot read it; Fashion-MNIST comes with the Debian package "
                         "dataset-fashion-mnist (apt-get install dataset-fashion-mnist)", path);
    return s;
}

static dat_status load(dat_dataset *ds)
{
    const dat_dataset_options *o = &ds->o;
    uint8_t *b = NULL;
    size_t n = 0;
    DAT_TRY(read_or_explain(o->images_path, &b, &n));
    dat_status s = o->format == DAT_DATASET_IDX
                       ? dat_idx_parse_images(o->images_path, b, n, &ds->raw)
                       : dat_cifar_parse(o->images_path, b, n, &ds->raw);
    free(b);
    if (s != DAT_OK || o->format != DAT_DATASET_IDX)
        return s;
    DAT_TRY(read_or_explain(o->labels_path, &b, &n));
    s = dat_idx_parse_labels(o->labels_path, b, n, &ds->raw);
    free(b);
    return s;
}

/* Fisher–Yates with Philox draws: the same permutation on every rank. */
static void permute(int64_t *a, int64_t n, uint64_t seed, uint64_t stream)
{
    for (int64_t i = n - 1; i > 0; --i) {
        dat_philox_ctr c = dat_philox_block(seed, stream, (uint64_t)i);
        uint64_t r = (uint64_t)c.v[0] << 32 | c.v[1];
        int64_t j = (int64_t)(r % (uint64_t)(i + 1));
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static dat_status select_samples(dat_dataset *ds)
{
    const dat_dataset_options *o = &ds->o;
    int64_t total = o->limit > 0 && o->limit < ds->raw.n ? o->limit : ds->raw.n;
    if (o->holdout >= total && o->part != DAT_DATASET_ALL)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_dataset_open",
                         "holdout = %lld leaves no training samples of %lld",
                         (long long)o->holdout, (long long)total);
    int64_t *all = malloc((size_t)total * sizeof *all);
    if (!all)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_dataset_open", "index");
    for (int64_t i = 0; i < total; ++i)
        all[i] = i;
    int64_t lo = 0, count = total;
    if (o->part != DAT_DATASET_ALL) {
        permute(all, total, o->seed, SPLIT_STREAM);
        int64_t train = total - o->holdout;
        if (o->part == DAT_DATASET_HOLDOUT) {
            lo = train;
            count = o->holdout;
        } else {
            count = train / o->world_size;
            lo = (int64_t)o->rank * count;
        }
    }
    ds->index = malloc((size_t)(count ? count : 1) * sizeof *ds->index);
    ds->order = malloc((size_t)(count ? count : 1) * sizeof *ds->order);
    if (!ds->index || !ds->order) {
        free(all);
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_dataset_open", "index");
    }
    memcpy(ds->index, all + lo, (size_t)count * sizeof *all);
    ds->count = count;
    free(all);
    if (count == 0)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_dataset_open",
                         "this part has no samples (%lld in all, %d ranks)", (long long)total,
                         (int)o->world_size);
    return DAT_OK;
}

void dat_dataset_destroy(dat_dataset *ds)
{
    if (!ds)
        return;
    dat_raw_data_free(&ds->raw);
    free(ds->index);
    free(ds->order);
    free(ds->xbuf);
    free(ds->ybuf);
    free(ds);
}

dat_status dat_dataset_open(dat_dataset **out, dat_ctx *ctx, const dat_dataset_options *opts)
{
    DAT_CHECK_NOT_NULL(out);
    *out = NULL;
    DAT_CHECK_NOT_NULL(ctx);
    DAT_CHECK_NOT_NULL(opts);
    DAT_CHECK_OPTIONS_SIZE(opts, dat_dataset_options, sizeof(dat_dataset_options));
    DAT_TRY(check_options(opts));
    dat_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "dataset");
    ds->ctx = ctx;
    ds->o = *opts;
    dat_status s = load(ds);
    if (s == DAT_OK)
        s = select_samples(ds);
    size_t d = (size_t)ds->raw.c * (size_t)ds->raw.h * (size_t)ds->raw.w;
    if (s == DAT_OK) {
        ds->xbuf = malloc((size_t)opts->batch_size * d * sizeof(float));
        ds->ybuf = malloc((size_t)opts->batch_size * sizeof(int32_t));
        if (!ds->xbuf || !ds->ybuf)
            s = dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "batch buffers");
    }
    if (s == DAT_OK)
        s = dat_dataset_seek(ds, 0, 0);
    if (s != DAT_OK) {
        dat_dataset_destroy(ds);
        return s;
    }
    *out = ds;
    return DAT_OK;
}

static int64_t batches_per_epoch(const dat_dataset *ds)
{
    int64_t b = ds->o.batch_size;
    return ds->o.drop_last ? ds->count / b : (ds->count + b - 1) / b;
}

dat_status dat_dataset_info(const dat_dataset *ds, int64_t *samples, int32_t *channels,
                            int32_t *height, int32_t *width, int32_t *classes, int64_t *batches)
{
    DAT_CHECK_NOT_NULL(ds);
    if (samples) *samples = ds->count;
    if (channels) *channels = ds->raw.c;
    if (height) *height = ds->raw.h;
    if (width) *width = ds->raw.w;
    if (classes) *classes = ds->raw.classes;
    if (batches) *batches = batches_per_epoch(ds);
    return DAT_OK;
}

dat_status dat_dataset_seek(dat_dataset *ds, int64_t epoch, int64_t batch)
{
    DAT_CHECK_NOT_NULL(ds);
    if (epoch < 0 || batch < 0 || batch > batches_per_epoch(ds))
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "epoch %lld, batch %lld: outside the %lld batches of an epoch",
                         (long long)epoch, (long long)batch, (long long)batches_per_epoch(ds));
    for (int64_t i = 0; i < ds->count; ++i)
        ds->order[i] = i;
    if (ds->o.shuffle)
        permute(ds->order, ds->count, ds->o.seed, EPOCH_STREAM(epoch));
    ds->epoch = epoch;
    ds->batch = batch;
    return DAT_OK;
}

static dat_status check_batch_tensors(const dat_dataset *ds, const dat_tensor *x,
                                      const dat_tensor *y)
{
    int64_t b = ds->o.batch_size;
    if (x->dtype != DAT_FLOAT32 || x->ndim != 4 || x->shape[0] != b || x->shape[1] != ds->raw.c ||
        x->shape[2] != ds->raw.h || x->shape[3] != ds->raw.w)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_dataset_next_batch",
                         "x must be float32 [%lld, %d, %d, %d]", (long long)b, (int)ds->raw.c,
                         (int)ds->raw.h, (int)ds->raw.w);
    if (y && (y->dtype != DAT_INT32 || y->ndim != 1 || y->shape[0] != b))
        return dat_error(DAT_ERR_INVALID_ARG, "dat_dataset_next_batch", "y must be int32 [%lld]",
                         (long long)b);
    return DAT_OK;
}

dat_status dat_dataset_next_batch(dat_dataset *ds, dat_tensor *x, dat_tensor *y,
                                  int32_t *count)
{
    DAT_CHECK_NOT_NULL(ds);
    DAT_CHECK_NOT_NULL(x);
    DAT_CHECK_NOT_NULL(count);
    DAT_TRY(check_batch_tensors(ds, x, y));
    *count = 0;
    int64_t first = ds->batch * ds->o.batch_size;
    int64_t rows = ds->count - first < ds->o.batch_size ? ds->count - first : ds->o.batch_size;
    if (rows <= 0 || (ds->o.drop_last && rows < ds->o.batch_size))
        return DAT_OK;
    size_t d = (size_t)ds->raw.c * (size_t)ds->raw.h * (size_t)ds->raw.w;
    for (int64_t r = 0; r < rows; ++r) {
        int64_t s = ds->index[ds->order[first + r]];
        const uint8_t *px = ds->raw.pixels + (size_t)s * d;
        for (size_t k = 0; k < d; ++k)
            ds->xbuf[(size_t)r * d + k] = (float)px[k] * (1.0f / 255.0f);
        ds->ybuf[r] = ds->raw.labels[s];
    }
    dat_ctx *ctx = x->ctx;
    DAT_TRY(ctx->be->copy_from_host(ctx, x->data, ds->xbuf, (size_t)rows * d * sizeof(float)));
    if (y)
        DAT_TRY(y->ctx->be->copy_from_host(y->ctx, y->data, ds->ybuf,
                                           (size_t)rows * sizeof(int32_t)));
    ds->batch++;
    *count = (int32_t)rows;
    return DAT_OK;
}
