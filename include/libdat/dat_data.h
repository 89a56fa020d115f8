/**
 * @file dat_data.h
 * @brief Data sets: IDX, CIFAR and .npy readers, per-rank shards, seeded
 *        shuffles, augmentation and batches with background prefetch.
 *
 * A ::dat_dataset loads a whole data set into host memory when it is opened
 * and then serves batches of float32 images in [0, 1] and int32 labels.
 *
 * **From files to this handle's samples**, in this order:
 * 1. The files are read (DAT_ERR_IO if one cannot be, DAT_ERR_FORMAT if one is
 *    malformed; the message names the file and the problem). With
 *    dat_dataset_options::limit, only the first `limit` samples are kept.
 * 2. Class subset: with dat_dataset_options::classes, only samples of those
 *    classes are kept, in file order, and class classes[i] is relabeled i.
 * 3. Validation split: the last validation_count samples (or
 *    ⌊validation_fraction · n⌋) are the validation part, the others the
 *    training part; dat_dataset_options::part picks which one this handle
 *    serves. The split is fixed: it does not depend on the seed or the epoch.
 * 4. Each epoch e, the part's P samples are permuted by a Fisher–Yates
 *    shuffle drawn from Philox 4x32-10 keyed by dat_dataset_options::seed,
 *    stream e. Every rank computes the same permutation, and rank r of W
 *    takes the positions [r·S, (r+1)·S) of it, S = ⌊P / W⌋: the shards are
 *    disjoint and of equal size (the paper's split). The P mod W samples at
 *    the end of the permutation are left out of that epoch; since the
 *    permutation changes every epoch, a different few are left out each time.
 *    Without shuffle the permutation is the identity (rank r always serves
 *    the same contiguous block, and the same tail is always left out).
 * 5. The S samples are served in batches of batch_size; the last one is
 *    short (S mod batch_size samples) unless drop_last is set.
 *
 * **Augmentation** (off by default; for CIFAR-like data): random crop of the
 * image zero-padded by crop_padding pixels on each side, then a horizontal
 * flip with probability 1/2 (torchvision's RandomCrop(H, padding=p) then
 * RandomHorizontalFlip()). Sample i of the data (its index in the files)
 * takes its draws from Philox keyed by the seed, stream 2^62 + epoch, block
 * i: the offset dy = ⌊u0·(2p+1)⌋, dx = ⌊u1·(2p+1)⌋, flip when u2 ≥ 1/2 (u_k
 * the block's words as fractions of 2^32). So the same (seed, epoch, sample)
 * gives the same crop on any rank, any number of ranks, with or without
 * prefetch; the output pixel (y, x) is the input pixel (y + dy − p,
 * x' + dx − p) with x' = W − 1 − x when flipped, x otherwise, or 0 outside
 * the image.
 *
 * **Pixels**: uint8 data become value / 255 (float32); float32 data (.npy)
 * are served as stored (they must be finite; [0, 1] is expected).
 *
 * **Formats and their paths**:
 * - DAT_DATASET_IDX: images_path is an IDX file of unsigned bytes N x H x W
 *   (magic 0x00000803), labels_path an IDX file of N unsigned-byte labels
 *   (magic 0x00000801); either may be gzip-compressed (detected by its magic,
 *   not its name). Debian's package dataset-fashion-mnist installs
 *   Fashion-MNIST under /usr/share/datasets/fashion-mnist/ (train-* and t10k-*).
 * - DAT_DATASET_CIFAR10 / DAT_DATASET_CIFAR100: the binary version's record
 *   files: images_path is the first, extra_paths the others in order (e.g.
 *   data_batch_1.bin, then data_batch_2.bin ... data_batch_5.bin), and
 *   labels_path must be NULL (the records carry their labels). CIFAR-100
 *   serves the fine labels (100 classes).
 * - DAT_DATASET_NPY: images_path is a .npy array (version 1, 2 or 3, C order)
 *   of uint8 (|u1) or float32 (<f4) of shape (N, H, W), (N, C, H, W) or
 *   (N, H, W, C), the last served as CHW batches; see ::dat_dataset_layout.
 *   The images are memory-mapped, not read: a rank reads the pages of the
 *   samples it serves, so arrays larger than memory (ImageNet's) work, and
 *   ranks on one machine share the page cache. The file must not be changed
 *   or truncated while the dataset is open (reading a truncated mapping
 *   kills the process). labels_path is a .npy of shape (N,) or (N, 1) of
 *   uint8, int32 or int64 labels (>= 0), read whole, or NULL for unlabeled
 *   data (then num_classes is 0 unless given in the options and no labels
 *   are served). float32 images are checked for NaN and Inf at open, which
 *   reads them once.
 *
 * **Threads**: with prefetch on (the default), one background thread prepares
 * the next batch into a host buffer while the host works on the current one.
 * The batches are bit-identical with and without prefetch. A dataset, like a
 * context, must not be used from two host threads at once.
 */
#ifndef LIBDAT_DAT_DATA_H
#define LIBDAT_DAT_DATA_H

#include "dat_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Opaque data set. */
typedef struct dat_dataset dat_dataset;

/** @brief File formats. Values are fixed. */
typedef enum dat_dataset_format {
    DAT_DATASET_IDX = 0,      /**< IDX images + labels, raw or gzip (MNIST, Fashion-MNIST). */
    DAT_DATASET_CIFAR10 = 1,  /**< CIFAR-10 binary records (1 label byte). */
    DAT_DATASET_CIFAR100 = 2, /**< CIFAR-100 binary records (coarse + fine label bytes). */
    DAT_DATASET_NPY = 3,      /**< NumPy .npy images, optional .npy labels. */
    DAT_DATASET_FORMAT_FORCE_32BIT = 0x7fffffff
} dat_dataset_format;

/**
 * @brief Axis order of 4-dimensional .npy images. Values are fixed.
 *
 * DAT_LAYOUT_AUTO takes (N, C, H, W) when shape[1] is 1 or 3 and shape[3] is
 * not, (N, H, W, C) when shape[3] is 1 or 3 and shape[1] is not, and refuses
 * the other shapes (DAT_ERR_INVALID_ARG: say which one).
 */
typedef enum dat_dataset_layout {
    DAT_LAYOUT_AUTO = 0,
    DAT_LAYOUT_NCHW = 1,
    DAT_LAYOUT_NHWC = 2,
    DAT_LAYOUT_FORCE_32BIT = 0x7fffffff
} dat_dataset_layout;

/** @brief Which part of the validation split a handle serves. Values are fixed. */
typedef enum dat_dataset_part {
    DAT_PART_TRAIN = 0,      /**< All samples but the validation ones. */
    DAT_PART_VALIDATION = 1, /**< The held-out samples at the end of the data. */
    DAT_PART_FORCE_32BIT = 0x7fffffff
} dat_dataset_part;

/** @brief Default batch size. */
#define DAT_DATASET_DEFAULT_BATCH 128

/**
 * @brief Options of dat_dataset_open(). Fill with dat_dataset_options_init();
 *        fields are only ever appended. Strings and arrays are read during
 *        dat_dataset_open() only: they need not outlive it.
 */
typedef struct dat_dataset_options {
    uint32_t size;                  /**< sizeof(dat_dataset_options), set by the init function. */
    dat_dataset_format format;      /**< Default DAT_DATASET_IDX. */
    const char *images_path;        /**< Images (IDX, .npy) or the first record file (CIFAR);
                                         required. */
    const char *labels_path;        /**< Labels: required for IDX, optional for .npy (NULL =
                                         unlabeled), NULL for CIFAR. Default NULL. */
    const char *const *extra_paths; /**< CIFAR only: more record files, read after images_path
                                         in this order. Default NULL. */
    int32_t num_extra_paths;        /**< Entries of extra_paths; default 0. */
    dat_dataset_layout layout;      /**< .npy 4-D images; default DAT_LAYOUT_AUTO. */
    int32_t num_classes;            /**< Classes of the data; 0 (default) = fixed by the format
                                         (CIFAR: 10 / 100) or the largest label + 1. A larger
                                         count is allowed (classes missing from a file); labels
                                         must be below it. */
    const int32_t *classes;         /**< Class subset: keep only these classes, class
                                         classes[i] becoming label i. NULL (default) = all. */
    int32_t num_subset_classes;     /**< Entries of classes, no duplicates; default 0. */
    dat_dataset_part part;          /**< Default DAT_PART_TRAIN. */
    int64_t validation_count;       /**< Samples held out at the end; default 0. */
    double validation_fraction;     /**< Or this fraction of them, in [0, 1), rounded down;
                                         default 0. Set at most one of the two. */
    int32_t rank;                   /**< This worker's shard, 0 <= rank < world_size; default 0. */
    int32_t world_size;             /**< Number of shards; default 1. */
    uint64_t seed;                  /**< Philox key of the shuffle and augmentation; default 0.
                                         Use the same seed on every rank. */
    int32_t shuffle;                /**< 1 (default): a new permutation every epoch; 0: file
                                         order. */
    int32_t batch_size;             /**< Samples per batch, >= 1; default 128. */
    int32_t drop_last;              /**< 1: leave out a last short batch; default 0. */
    int32_t random_crop;            /**< 1: random crop of the zero-padded image; default 0. */
    int32_t crop_padding;           /**< p, 0 to 1024 pixels; default 4. */
    int32_t horizontal_flip;        /**< 1: flip left-right with probability 1/2; default 0. */
    int32_t prefetch;               /**< 1 (default): prepare the next batch on a background
                                         thread; 0: in dat_dataset_next_batch(). */
    int64_t limit;                  /**< > 0: only the first `limit` samples of the files are
                                         used (before the class subset and the split), for
                                         short runs; default 0 = all. */
} dat_dataset_options;

/**
 * @brief Fills @p opts with the defaults (see each field) and sets its size field.
 * @param[out] opts  the options to fill.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL.
 */
DAT_API dat_status dat_dataset_options_init(dat_dataset_options *opts);
/**
 * @brief dat_dataset_options_init() for a caller's struct of @p size bytes (its sizeof): the
 *        library writes min(size, sizeof) bytes and records that count in size, nothing past them.
 *        The dat_dataset_options_init() macro passes sizeof *(opts), so a program built against
 *        these headers keeps working with a later libdat whose struct has grown. (0.7.0)
 * @param[out] opts  the options to fill.
 * @param size  bytes at @p opts, at least 4.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p opts is NULL or @p size < 4.
 */
DAT_API dat_status dat_dataset_options_init_sized(dat_dataset_options *opts, size_t size);
/** @brief Fills @p opts (see dat_dataset_options_init_sized()). */
#define dat_dataset_options_init(opts) dat_dataset_options_init_sized((opts), sizeof *(opts))

/**
 * @brief Loads a data set and positions it at epoch 0, batch 0.
 * @param[out] out  receives the data set, owned by the caller and freed with
 *                  dat_dataset_destroy() before @p ctx; NULL on failure.
 * @param ctx  context the data set belongs to.
 * @param opts  options (required: they name the files); read during the call only.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, a wrong opts->size, a
 *         field out of range, paths that do not fit the format, a class of the
 *         subset outside the data's classes, or a split, shard or batch setting
 *         that leaves this handle no batch; DAT_ERR_IO when a file cannot be
 *         read (for a missing file under /usr/share/datasets/NAME/ the message
 *         names the Debian package dataset-NAME); DAT_ERR_FORMAT when a file is
 *         malformed or images and labels differ in count; DAT_ERR_OUT_OF_MEMORY.
 */
DAT_API dat_status dat_dataset_open(dat_dataset **out, dat_ctx *ctx,
                                    const dat_dataset_options *opts);

/**
 * @brief Destroys a data set (and stops its prefetch thread).
 * @param ds  the data set, or NULL (a no-op).
 */
DAT_API void dat_dataset_destroy(dat_dataset *ds);

/**
 * @brief Samples this handle serves per epoch: its shard, S = ⌊P / W⌋ (with
 *        drop_last, only batches_per_epoch · batch_size of them are served).
 * @param ds  the data set.
 * @param[out] count  receives S.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_dataset_num_samples(const dat_dataset *ds, int64_t *count);

/**
 * @brief Shape of one sample, as served: channels, height, width.
 * @param ds  the data set.
 * @param[out] channels, height, width  each may be NULL.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p ds is NULL.
 */
DAT_API dat_status dat_dataset_sample_shape(const dat_dataset *ds, int32_t *channels,
                                            int32_t *height, int32_t *width);

/**
 * @brief Number of classes of the labels served: the subset's size with a
 *        class subset; 0 for unlabeled data without opts.num_classes.
 * @param ds  the data set.
 * @param[out] count  receives the count.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_dataset_num_classes(const dat_dataset *ds, int32_t *count);

/**
 * @brief Batches per epoch: ⌈S / batch_size⌉, or ⌊S / batch_size⌋ with drop_last.
 * @param ds  the data set.
 * @param[out] count  receives the count.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers.
 */
DAT_API dat_status dat_dataset_batches_per_epoch(const dat_dataset *ds, int64_t *count);

/**
 * @brief Starts epoch @p epoch at its first batch: computes its permutation.
 *        Call it at the start of every epoch after the first (and to resume).
 * @param ds  the data set.
 * @param epoch  0 to 2^62 − 1.
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL or an epoch out of range.
 */
DAT_API dat_status dat_dataset_set_epoch(dat_dataset *ds, int64_t epoch);

/**
 * @brief Serves the next batch of the current epoch.
 *
 * @param ds  the data set.
 * @param x  float32 tensor [b, C, H, W] (C, H, W from dat_dataset_sample_shape())
 *           with count <= b <= batch_size; on any device (a CPU tensor is
 *           written in place, others through dat_tensor_write()). Rows from
 *           count to b − 1 are set to 0.
 * @param y  int32 tensor [b] for the labels, or NULL. Rows from count to b − 1
 *           are set to −1, which every loss refuses, so padding is never
 *           trained on by mistake. Must be NULL for unlabeled data.
 * @param[out] count  receives the number of samples written: batch_size, less
 *                    for a last short batch, 0 when the epoch is over (then
 *                    x and y are not touched; call dat_dataset_set_epoch()).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL pointers, wrong dtypes or shapes
 *         (b smaller than this batch's count), or labels asked of unlabeled
 *         data; errors of dat_tensor_write(). The position advances only on success.
 */
DAT_API dat_status dat_dataset_next_batch(dat_dataset *ds, dat_tensor *x, dat_tensor *y,
                                          int32_t *count);

/**
 * @brief Position of the next batch: its epoch and its index in the epoch.
 *        Save it with a checkpoint; dat_dataset_set_position() resumes there.
 * @param ds  the data set.
 * @param[out] epoch, batch  each may be NULL.
 * @return DAT_OK; DAT_ERR_INVALID_ARG if @p ds is NULL.
 */
DAT_API dat_status dat_dataset_get_position(const dat_dataset *ds, int64_t *epoch,
                                            int64_t *batch);

/**
 * @brief Moves to batch @p batch of epoch @p epoch; the batches that follow are
 *        bit-identical to those an uninterrupted run serves from there.
 * @param ds  the data set.
 * @param epoch  0 to 2^62 − 1.
 * @param batch  0 to dat_dataset_batches_per_epoch() (that count = the epoch is over).
 * @return DAT_OK; DAT_ERR_INVALID_ARG for NULL or a position out of range.
 */
DAT_API dat_status dat_dataset_set_position(dat_dataset *ds, int64_t epoch, int64_t batch);

#ifdef __cplusplus
}
#endif

#endif
