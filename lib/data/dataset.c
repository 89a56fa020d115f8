/*
 * The data set handle: options, class subset, validation split, per-epoch
 * permutation and shard, and batches (dat_data.h documents the rules).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/options.h"
#include "../core/tensor.h"
#include "augment.h"
#include "libdat/dat_data.h"
#include "load.h"
#include "prefetch.h"
#include "shuffle.h"

struct dat_dataset {
    dat_ctx *ctx;
    dat_dataset_options opts; /* paths and arrays cleared: they are not kept */
    dat_data_source src;      /* labels already mapped through the class subset */
    int32_t num_classes;      /* served */
    int64_t *pool;            /* indices into src of this part (train or validation) */
    int64_t pool_n;
    int64_t shard_n;          /* S = pool_n / world_size */
    int64_t batches;
    int64_t *perm;            /* scratch: the epoch's permutation of the pool */
    int64_t *order;           /* this rank's S indices into src for the current epoch */
    int64_t epoch, batch;     /* the next batch to serve */
    dat_prefetch pf;
};

dat_status (dat_dataset_options_init)(dat_dataset_options *opts)
{
    DAT_CHECK_NOT_NULL(opts);
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->format = DAT_DATASET_IDX;
    opts->layout = DAT_LAYOUT_AUTO;
    opts->part = DAT_PART_TRAIN;
    opts->world_size = 1;
    opts->shuffle = 1;
    opts->batch_size = DAT_DATASET_DEFAULT_BATCH;
    opts->crop_padding = 4;
    opts->prefetch = 1;
    return DAT_OK;
}

DAT_OPTIONS_INIT_SIZED(dat_dataset_options)

/* ---------------- option checks ---------------- */

static dat_status check_flag(const char *name, int32_t v)
{
    if (v != 0 && v != 1)
        return dat_error(DAT_ERR_INVALID_ARG, "dat_dataset_open", "opts->%s = %d must be 0 or 1",
                         name, (int)v);
    return DAT_OK;
}

static dat_status check_paths(const dat_dataset_options *o)
{
    const char *f = "dat_dataset_open";
    if (o->images_path == NULL)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->images_path must not be NULL");
    int cifar = o->format == DAT_DATASET_CIFAR10 || o->format == DAT_DATASET_CIFAR100;
    if (o->format == DAT_DATASET_IDX && o->labels_path == NULL)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->labels_path must not be NULL for IDX "
                         "(the labels are a file of their own)");
    if (cifar && o->labels_path != NULL)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->labels_path must be NULL for CIFAR: the "
                         "records carry their labels (more files go in extra_paths)");
    if (o->num_extra_paths < 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->num_extra_paths = %d must be >= 0",
                         (int)o->num_extra_paths);
    if (o->num_extra_paths > 0 && !cifar)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->extra_paths is for CIFAR record files "
                         "only, not the %s format", o->format == DAT_DATASET_IDX ? "IDX" : "npy");
    if (o->num_extra_paths > 0 && o->extra_paths == NULL)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->extra_paths must not be NULL when "
                         "num_extra_paths = %d", (int)o->num_extra_paths);
    for (int32_t i = 0; i < o->num_extra_paths; ++i)
        if (o->extra_paths[i] == NULL)
            return dat_error(DAT_ERR_INVALID_ARG, f, "opts->extra_paths[%d] must not be NULL",
                             (int)i);
    return DAT_OK;
}

static dat_status check_subset(const dat_dataset_options *o)
{
    const char *f = "dat_dataset_open";
    if (o->num_subset_classes < 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->num_subset_classes = %d must be >= 0",
                         (int)o->num_subset_classes);
    if (o->num_subset_classes > 0 && o->classes == NULL)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->classes must not be NULL when "
                         "num_subset_classes = %d", (int)o->num_subset_classes);
    for (int32_t i = 0; i < o->num_subset_classes; ++i) {
        if (o->classes[i] < 0)
            return dat_error(DAT_ERR_INVALID_ARG, f, "opts->classes[%d] = %d is negative", (int)i,
                             (int)o->classes[i]);
        for (int32_t j = 0; j < i; ++j)
            if (o->classes[j] == o->classes[i])
                return dat_error(DAT_ERR_INVALID_ARG, f, "opts->classes[%d] and classes[%d] are "
                                 "both %d", (int)j, (int)i, (int)o->classes[i]);
    }
    return DAT_OK;
}

static dat_status check_options(const dat_dataset_options *o)
{
    const char *f = "dat_dataset_open";
    if ((unsigned)o->format > DAT_DATASET_NPY)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->format = %d is not a dat_dataset_format",
                         (int)o->format);
    DAT_TRY(check_paths(o));
    if ((unsigned)o->layout > DAT_LAYOUT_NHWC)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->layout = %d is not a dat_dataset_layout",
                         (int)o->layout);
    if (o->num_classes < 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->num_classes = %d must be >= 0",
                         (int)o->num_classes);
    DAT_TRY(check_subset(o));
    if ((unsigned)o->part > DAT_PART_VALIDATION)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->part = %d is not a dat_dataset_part",
                         (int)o->part);
    if (o->validation_count < 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->validation_count = %lld must be >= 0",
                         (long long)o->validation_count);
    if (!(o->validation_fraction >= 0.0 && o->validation_fraction < 1.0))
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->validation_fraction = %g must be in "
                         "[0, 1)", o->validation_fraction);
    if (o->validation_count > 0 && o->validation_fraction > 0.0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "set opts->validation_count or "
                         "validation_fraction, not both");
    if (o->world_size < 1 || o->rank < 0 || o->rank >= o->world_size)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->rank = %d and world_size = %d: need "
                         "world_size >= 1 and 0 <= rank < world_size", (int)o->rank,
                         (int)o->world_size);
    if (o->batch_size < 1)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->batch_size = %d must be >= 1",
                         (int)o->batch_size);
    if (o->crop_padding < 0 || o->crop_padding > 1024)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->crop_padding = %d must be in [0, 1024]",
                         (int)o->crop_padding);
    if (o->limit < 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->limit = %lld must be >= 0",
                         (long long)o->limit);
    DAT_TRY(check_flag("shuffle", o->shuffle));
    DAT_TRY(check_flag("drop_last", o->drop_last));
    DAT_TRY(check_flag("random_crop", o->random_crop));
    DAT_TRY(check_flag("horizontal_flip", o->horizontal_flip));
    return check_flag("prefetch", o->prefetch);
}

/* ---------------- subset, split, shard ---------------- */

typedef struct class_slot {
    int32_t cls, label;
} class_slot;

static int by_class(const void *a, const void *b)
{
    int32_t x = ((const class_slot *)a)->cls, y = ((const class_slot *)b)->cls;
    return (x > y) - (x < y);
}

/* Maps the labels through the subset (others become -1) and lists the kept
 * samples in file order. */
static dat_status select_classes(dat_dataset *ds, const dat_dataset_options *o, int64_t **kept,
                                 int64_t *n_kept)
{
    const char *f = "class subset";
    dat_data_source *src = &ds->src;
    int32_t k = o->num_subset_classes;
    ds->num_classes = src->num_classes;
    if (k > 0 && src->labels == NULL)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->classes needs labels, and %s has none",
                         o->images_path);
    for (int32_t i = 0; i < k; ++i)
        if (o->classes[i] >= src->num_classes)
            return dat_error(DAT_ERR_INVALID_ARG, f, "opts->classes[%d] = %d is out of range: "
                             "the data has %d classes (0 to %d)", (int)i, (int)o->classes[i],
                             (int)src->num_classes, (int)src->num_classes - 1);
    *kept = malloc((size_t)src->n * sizeof **kept);
    if (*kept == NULL)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, f, "%lld sample indices", (long long)src->n);
    if (k == 0) {
        for (int64_t i = 0; i < src->n; ++i)
            (*kept)[i] = i;
        *n_kept = src->n;
        return DAT_OK;
    }
    /* The subset's classes sorted, each with its new label: a map over every
     * class would be as large as the largest label (2^31 of them from a tiny
     * .npy file). */
    class_slot *slots = malloc((size_t)(uint32_t)k * sizeof *slots); /* k > 0 (checked) */
    if (slots == NULL)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, f, "a map of %d classes", (int)k);
    for (int32_t i = 0; i < k; ++i)
        slots[i] = (class_slot){o->classes[i], i};
    qsort(slots, (size_t)k, sizeof *slots, by_class); /* no repeats: check_options */
    int64_t m = 0;
    for (int64_t i = 0; i < src->n; ++i) {
        class_slot key = {src->labels[i], 0};
        const class_slot *hit = bsearch(&key, slots, (size_t)k, sizeof *slots, by_class);
        src->labels[i] = hit ? hit->label : -1;
        if (src->labels[i] >= 0)
            (*kept)[m++] = i;
    }
    free(slots);
    *n_kept = m;
    ds->num_classes = k;
    return DAT_OK;
}

static dat_status split_and_shard(dat_dataset *ds, const dat_dataset_options *o, int64_t *kept,
                                  int64_t n_kept)
{
    const char *f = "split";
    ds->pool = kept; /* owned by ds from here, also on failure */
    int64_t val = o->validation_count;
    if (o->validation_fraction > 0.0)
        val = (int64_t)floor(o->validation_fraction * (double)n_kept);
    if (val >= n_kept && (val > 0 || o->part == DAT_PART_TRAIN))
        return dat_error(DAT_ERR_INVALID_ARG, f, "a validation split of %lld leaves no training "
                         "samples of the %lld", (long long)val, (long long)n_kept);
    if (o->part == DAT_PART_VALIDATION && val == 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "opts->part is DAT_PART_VALIDATION but the "
                         "validation split is empty (set validation_count or _fraction)");
    int64_t first = o->part == DAT_PART_TRAIN ? 0 : n_kept - val;
    ds->pool_n = o->part == DAT_PART_TRAIN ? n_kept - val : val;
    memmove(kept, kept + first, (size_t)ds->pool_n * sizeof *kept);
    ds->shard_n = ds->pool_n / o->world_size;
    if (ds->shard_n == 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "%lld samples cannot be shared among %d ranks",
                         (long long)ds->pool_n, (int)o->world_size);
    ds->batches = o->drop_last ? ds->shard_n / o->batch_size
                               : (ds->shard_n + o->batch_size - 1) / o->batch_size;
    if (ds->batches == 0)
        return dat_error(DAT_ERR_INVALID_ARG, f, "with drop_last, a shard of %lld samples has no "
                         "whole batch of %d", (long long)ds->shard_n, (int)o->batch_size);
    return DAT_OK;
}

/* The epoch's permutation of the pool, and this rank's block of it. */
static void arrange_epoch(dat_dataset *ds, int64_t epoch)
{
    const dat_dataset_options *o = &ds->opts;
    if (o->shuffle)
        dat_shuffle_permutation(o->seed, (uint64_t)epoch, ds->pool_n, ds->perm);
    else
        for (int64_t i = 0; i < ds->pool_n; ++i)
            ds->perm[i] = i;
    const int64_t *mine = ds->perm + (int64_t)o->rank * ds->shard_n;
    for (int64_t i = 0; i < ds->shard_n; ++i)
        ds->order[i] = ds->pool[mine[i]];
}

/* ---------------- batches ---------------- */

static int32_t batch_rows(const dat_dataset *ds, int64_t batch)
{
    if (batch >= ds->batches)
        return 0;
    int64_t left = ds->shard_n - batch * ds->opts.batch_size;
    return (int32_t)(left < ds->opts.batch_size ? left : ds->opts.batch_size);
}

static void fill_batch(void *arg, int64_t epoch, int64_t batch, float *x, int32_t *y,
                       int32_t *count)
{
    dat_dataset *ds = arg;
    const dat_dataset_options *o = &ds->opts;
    const dat_data_source *src = &ds->src;
    int32_t rows = batch_rows(ds, batch);
    int64_t elems = dat_data_sample_elems(src);
    size_t item = dat_dtype_size(src->dtype);
    for (int32_t i = 0; i < rows; ++i) {
        int64_t idx = ds->order[batch * o->batch_size + i];
        dat_augment_draw d = dat_augment_sample(o->seed, epoch, idx, o->random_crop,
                                                o->horizontal_flip, o->crop_padding);
        const unsigned char *px = (const unsigned char *)src->pixels + (size_t)(idx * elems) * item;
        dat_augment_render(px, src->dtype, src->nhwc, src->c, src->h, src->w, o->crop_padding, d,
                           x + (size_t)i * elems);
        if (y != NULL)
            y[i] = src->labels[idx];
    }
    *count = rows;
}

void dat_dataset_destroy(dat_dataset *ds)
{
    if (ds == NULL)
        return;
    dat_prefetch_fini(&ds->pf);
    dat_data_source_free(&ds->src);
    free(ds->pool);
    free(ds->perm);
    free(ds->order);
    free(ds);
}

static dat_status open_inner(dat_dataset *ds, const dat_dataset_options *o)
{
    DAT_TRY(dat_data_load(o, &ds->src));
    if (o->limit > 0 && o->limit < ds->src.n)
        ds->src.n = o->limit; /* the arrays stay as read; only the count shrinks */
    int64_t *kept = NULL, n_kept = 0;
    dat_status s = select_classes(ds, o, &kept, &n_kept);
    if (s != DAT_OK) {
        free(kept);
        return s;
    }
    DAT_TRY(split_and_shard(ds, o, kept, n_kept));
    ds->perm = malloc((size_t)ds->pool_n * sizeof *ds->perm);
    ds->order = malloc((size_t)ds->shard_n * sizeof *ds->order);
    if (ds->perm == NULL || ds->order == NULL)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dataset", "%lld sample indices",
                         (long long)ds->pool_n);
    arrange_epoch(ds, 0);
    size_t x_elems = (size_t)o->batch_size * (size_t)dat_data_sample_elems(&ds->src);
    size_t y_elems = ds->src.labels ? (size_t)o->batch_size : 0;
    DAT_TRY(dat_prefetch_init(&ds->pf, x_elems, y_elems, o->prefetch, fill_batch, ds));
    dat_prefetch_request(&ds->pf, 0, 0, NULL);
    return DAT_OK;
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
    if (ds == NULL)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, __func__, "the data set handle");
    ds->ctx = ctx;
    ds->opts = *opts;
    ds->opts.images_path = ds->opts.labels_path = NULL;
    ds->opts.extra_paths = NULL;
    ds->opts.classes = NULL;
    dat_status s = open_inner(ds, opts);
    if (s != DAT_OK) {
        dat_dataset_destroy(ds);
        return dat_error_context(s, __func__);
    }
    dat_log(ctx, DAT_LOG_INFO, "dataset %s: %lld samples of %d x %d x %d, %d classes; rank %d of "
            "%d serves %lld in %lld batches", opts->images_path, (long long)ds->src.n,
            (int)ds->src.c, (int)ds->src.h, (int)ds->src.w, (int)ds->num_classes, (int)opts->rank,
            (int)opts->world_size, (long long)ds->shard_n, (long long)ds->batches);
    *out = ds;
    return DAT_OK;
}

/* ---------------- queries and position ---------------- */

dat_status dat_dataset_num_samples(const dat_dataset *ds, int64_t *count)
{
    DAT_CHECK_NOT_NULL(ds);
    DAT_CHECK_NOT_NULL(count);
    *count = ds->shard_n;
    return DAT_OK;
}

dat_status dat_dataset_sample_shape(const dat_dataset *ds, int32_t *channels, int32_t *height,
                                    int32_t *width)
{
    DAT_CHECK_NOT_NULL(ds);
    if (channels)
        *channels = ds->src.c;
    if (height)
        *height = ds->src.h;
    if (width)
        *width = ds->src.w;
    return DAT_OK;
}

dat_status dat_dataset_num_classes(const dat_dataset *ds, int32_t *count)
{
    DAT_CHECK_NOT_NULL(ds);
    DAT_CHECK_NOT_NULL(count);
    *count = ds->num_classes;
    return DAT_OK;
}

dat_status dat_dataset_batches_per_epoch(const dat_dataset *ds, int64_t *count)
{
    DAT_CHECK_NOT_NULL(ds);
    DAT_CHECK_NOT_NULL(count);
    *count = ds->batches;
    return DAT_OK;
}

dat_status dat_dataset_get_position(const dat_dataset *ds, int64_t *epoch, int64_t *batch)
{
    DAT_CHECK_NOT_NULL(ds);
    if (epoch)
        *epoch = ds->epoch;
    if (batch)
        *batch = ds->batch;
    return DAT_OK;
}

/* Moves to (epoch, batch) and has the thread start on that batch at once. */
static dat_status move_to(dat_dataset *ds, const char *func, int64_t epoch, int64_t batch)
{
    if (epoch < 0 || epoch > DAT_SHUFFLE_MAX_EPOCH)
        return dat_error(DAT_ERR_INVALID_ARG, func, "epoch = %lld must be in [0, 2^62 - 1]",
                         (long long)epoch);
    if (batch < 0 || batch > ds->batches)
        return dat_error(DAT_ERR_INVALID_ARG, func, "batch = %lld must be in [0, %lld] (the "
                         "batches per epoch)", (long long)batch, (long long)ds->batches);
    dat_prefetch_invalidate(&ds->pf);
    if (epoch != ds->epoch)
        arrange_epoch(ds, epoch);
    ds->epoch = epoch;
    ds->batch = batch;
    if (batch < ds->batches)
        dat_prefetch_request(&ds->pf, epoch, batch, NULL);
    return DAT_OK;
}

dat_status dat_dataset_set_position(dat_dataset *ds, int64_t epoch, int64_t batch)
{
    DAT_CHECK_NOT_NULL(ds);
    return move_to(ds, __func__, epoch, batch);
}

dat_status dat_dataset_set_epoch(dat_dataset *ds, int64_t epoch)
{
    DAT_CHECK_NOT_NULL(ds);
    return move_to(ds, __func__, epoch, 0);
}

/* ---------------- serving a batch ---------------- */

static dat_status check_batch_tensors(const dat_dataset *ds, const dat_tensor *x,
                                      const dat_tensor *y, int32_t rows)
{
    const char *f = "dat_dataset_next_batch";
    const dat_data_source *src = &ds->src;
    if (x->dtype != DAT_FLOAT32 || x->ndim != 4 || x->shape[1] != src->c ||
        x->shape[2] != src->h || x->shape[3] != src->w)
        return dat_error(DAT_ERR_INVALID_ARG, f, "x must be a float32 tensor [b, %d, %d, %d], "
                         "not a %s tensor of %d dimensions", (int)src->c, (int)src->h,
                         (int)src->w, dat_dtype_name(x->dtype), (int)x->ndim);
    if (x->shape[0] < rows || x->shape[0] > ds->opts.batch_size)
        return dat_error(DAT_ERR_INVALID_ARG, f, "x has %lld rows; this batch needs %d to %d",
                         (long long)x->shape[0], (int)rows, (int)ds->opts.batch_size);
    if (y == NULL)
        return DAT_OK;
    if (src->labels == NULL)
        return dat_error(DAT_ERR_INVALID_ARG, f, "y must be NULL: this data set has no labels");
    if (y->dtype != DAT_INT32 || y->ndim != 1 || y->shape[0] != x->shape[0])
        return dat_error(DAT_ERR_INVALID_ARG, f, "y must be an int32 tensor [%lld] like x's "
                         "rows, not a %s tensor of %d dimensions", (long long)x->shape[0],
                         dat_dtype_name(y->dtype), (int)y->ndim);
    return DAT_OK;
}

/* Zeroes image rows [rows, b) and sets their labels to -1. */
static void pad_rows(float *x, int32_t *y, int32_t rows, int64_t b, int64_t elems)
{
    memset(x + (size_t)rows * elems, 0, (size_t)(b - rows) * elems * sizeof *x);
    for (int64_t i = rows; y != NULL && i < b; ++i)
        y[i] = -1;
}

dat_status dat_dataset_next_batch(dat_dataset *ds, dat_tensor *x, dat_tensor *y, int32_t *count)
{
    DAT_CHECK_NOT_NULL(ds);
    DAT_CHECK_NOT_NULL(x);
    DAT_CHECK_NOT_NULL(count);
    *count = 0;
    int32_t rows = batch_rows(ds, ds->batch);
    DAT_TRY(check_batch_tensors(ds, x, y, rows));
    if (rows == 0)
        return DAT_OK;
    int64_t b = x->shape[0], elems = dat_data_sample_elems(&ds->src);
    if (!ds->opts.prefetch && x->ctx->opts.device == DAT_DEVICE_CPU &&
        (y == NULL || y->ctx->opts.device == DAT_DEVICE_CPU)) {
        /* Straight into the tensors: no staging copy. */
        int32_t got;
        fill_batch(ds, ds->epoch, ds->batch, x->data, y ? y->data : NULL, &got);
        pad_rows(x->data, y ? y->data : NULL, rows, b, elems);
    } else {
        dat_prefetch_slot *s = dat_prefetch_get(&ds->pf, ds->epoch, ds->batch);
        if (ds->batch + 1 < ds->batches)
            dat_prefetch_request(&ds->pf, ds->epoch, ds->batch + 1, s);
        pad_rows(s->x, s->y, rows, b, elems);
        DAT_TRY(dat_tensor_write(x, s->x, (size_t)(b * elems) * sizeof(float)));
        if (y != NULL)
            DAT_TRY(dat_tensor_write(y, s->y, (size_t)b * sizeof(int32_t)));
    }
    ds->batch += 1;
    *count = rows;
    return DAT_OK;
}
