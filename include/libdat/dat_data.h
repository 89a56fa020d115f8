/**
 * @file dat_data.h
 * @brief Datasets: readers, the per-rank shard, a seeded shuffle per epoch, and
 *        batches as tensors.
 *
 * A dataset handle serves one part of a dataset to one rank: the samples are
 * put in a seeded random order once, the last `holdout` of them form the
 * validation part, and the training part is cut into `world_size` disjoint,
 * equal shards (the remainder is dropped, so every rank has the same count:
 * the paper's split). Within its shard a rank visits the samples in a new
 * seeded order every epoch. Pixels are scaled to [0, 1].
 */
#ifndef LIBDAT_DAT_DATA_H
#define LIBDAT_DAT_DATA_H

#include "dat_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Opaque dataset. */
typedef struct dat_dataset dat_dataset;

/** @brief File formats. Values are fixed. */
typedef enum dat_dataset_format {
    DAT_DATASET_IDX = 0,      /**< MNIST / Fashion-MNIST IDX files, raw or gzip-compressed */
    DAT_DATASET_CIFAR10 = 1,  /**< CIFAR-10 binary records (1 label byte + 3072 pixels) */
    DAT_DATASET_FORMAT_FORCE_32BIT = 0x7fffffff
} dat_dataset_format;

/** @brief Which part of the data a handle serves. */
typedef enum dat_dataset_part {
    DAT_DATASET_TRAIN = 0,    /**< the training part, sharded over the ranks */
    DAT_DATASET_HOLDOUT = 1,  /**< the held-out validation part (not sharded) */
    DAT_DATASET_ALL = 2,      /**< every sample in file order, not sharded (test sets) */
    DAT_DATASET_PART_FORCE_32BIT = 0x7fffffff
} dat_dataset_part;

/** @brief Options of dat_dataset_open(); fill with dat_dataset_options_init(). */
typedef struct dat_dataset_options {
    uint32_t size;              /**< set by dat_dataset_options_init() */
    dat_dataset_format format;  /**< default DAT_DATASET_IDX */
    const char *images_path;    /**< IDX images file; CIFAR: a records file */
    const char *labels_path;    /**< IDX labels file; unused for CIFAR */
    int64_t limit;              /**< > 0: only the first `limit` samples of the files */
    int64_t holdout;            /**< samples kept for validation; default 0 */
    dat_dataset_part part;      /**< default DAT_DATASET_TRAIN */
    int32_t rank, world_size;   /**< shard; default 0 of 1 */
    uint64_t seed;              /**< order of the split and of every epoch; default 0 */
    int32_t shuffle;            /**< 1 (default): a new order each epoch */
    int32_t batch_size;         /**< default 128 */
    int32_t drop_last;          /**< 1: no short last batch; default 0 */
} dat_dataset_options;

/** @brief Fills @p opts with the defaults and sets its size. */
DAT_API dat_status dat_dataset_options_init(dat_dataset_options *opts);

/**
 * @brief Reads a dataset.
 * @return DAT_ERR_IO if a file cannot be read (the message names it; for
 *         Fashion-MNIST's default folder it names the Debian package that
 *         provides it); DAT_ERR_FORMAT for a malformed file (wrong magic, sizes
 *         that disagree with the content, truncation), naming the file and the
 *         problem; DAT_ERR_INVALID_ARG for bad options.
 */
DAT_API dat_status dat_dataset_open(dat_dataset **out, dat_ctx *ctx,
                                    const dat_dataset_options *opts);

/** @brief Destroys a dataset; NULL is a no-op. */
DAT_API void dat_dataset_destroy(dat_dataset *ds);

/**
 * @brief What the handle serves.
 * @param[out] samples, channels, height, width, classes, batches  each may be NULL;
 *             batches is the number of batches per epoch.
 */
DAT_API dat_status dat_dataset_info(const dat_dataset *ds, int64_t *samples, int32_t *channels,
                                    int32_t *height, int32_t *width, int32_t *classes,
                                    int64_t *batches);

/** @brief Starts epoch @p epoch at batch @p batch (resuming jumps straight there). */
DAT_API dat_status dat_dataset_seek(dat_dataset *ds, int64_t epoch, int64_t batch);

/**
 * @brief The next batch of the epoch into @p x (float32 [batch_size, C, H, W])
 *        and @p y (int32 [batch_size], may be NULL).
 * @param[out] count  samples written: batch_size, fewer for a short last batch,
 *                    0 at the end of the epoch.
 */
DAT_API dat_status dat_dataset_next_batch(dat_dataset *ds, dat_tensor *x, dat_tensor *y,
                                          int32_t *count);

#ifdef __cplusplus
}
#endif

#endif
