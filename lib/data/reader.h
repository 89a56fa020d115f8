/*
 * The dataset readers: IDX (raw or gzip), CIFAR-10 / -100 binary records and
 * .npy, each parsing a file held in memory into one common form, a
 * dat_data_source: n samples of c x h x w pixels (uint8 or float32, CHW or,
 * for .npy, HWC per sample) plus n int32 labels, or none.
 *
 * Every parser takes `what` (the file's name, for messages) and a buffer it
 * does not keep; it copies what it needs, except dat_npy_view_images, whose
 * pixels point into the buffer (a file mapping that the source then owns).
 * It checks every size against the buffer before reading, so a truncated or
 * hostile file gives DAT_ERR_FORMAT
 * with a message "WHAT: problem", never a read out of bounds. These are the
 * entry points of the fuzz harnesses (tests/fuzz/).
 */
#ifndef LIBDAT_DATA_READER_H
#define LIBDAT_DATA_READER_H

#include <stddef.h>
#include <stdint.h>

#include "libdat/dat_common.h"

/* Bounds on what a reader accepts, far above any real data set, so that sizes
 * computed from a header never overflow. */
#define DAT_DATA_MAX_SAMPLES ((int64_t)1 << 31)
#define DAT_DATA_MAX_SIDE 65536
#define DAT_DATA_MAX_CHANNELS 4096
#define DAT_DATA_MAX_SAMPLE_ELEMS ((int64_t)1 << 28)
#define DAT_DATA_MAX_LABEL 0x7ffffffe

typedef struct dat_data_source {
    int64_t n;
    int32_t c, h, w;
    dat_dtype dtype;     /* DAT_UINT8 or DAT_FLOAT32 */
    const void *pixels;  /* n * c * h * w elements, read only */
    int32_t nhwc;        /* 1: HWC per sample (a .npy file's layout), 0: CHW */
    void *owned;         /* the malloc'ed block pixels point into, or NULL (a view) */
    void *mapping;       /* a read-only file mapping pixels point into, or NULL */
    size_t mapping_size;
    int32_t *labels;     /* n labels >= 0, owned; NULL for unlabeled data */
    int32_t num_classes; /* fixed by the format (CIFAR), else 0 until labels are attached */
} dat_data_source;

/* Frees (or unmaps) what a source owns and zeroes it; a zeroed source is a no-op. */
void dat_data_source_free(dat_data_source *src);

/* Elements of one sample: c * h * w. */
static inline int64_t dat_data_sample_elems(const dat_data_source *src)
{
    return (int64_t)src->c * src->h * src->w;
}

/* Attaches n labels (taking ownership even on failure): n must match the
 * images, and num_classes becomes max + 1 unless the source already has one,
 * which every label must then be below. `images` and `labels` name the files. */
dat_status dat_data_attach_labels(dat_data_source *src, int32_t *labels, int64_t n,
                                  const char *images, const char *labels_name);

/* ---- gzip (zlib) ---- */

/* Whether buf starts with the gzip magic 1f 8b. */
int dat_gzip_detect(const unsigned char *buf, size_t size);

/* Inflates a whole gzip file (several members allowed). The output is bounded
 * by deflate's largest ratio (1032:1) times the input, so a hostile file
 * cannot claim unbounded memory. *out is malloc'ed; DAT_ERR_FORMAT for a
 * corrupt or truncated stream or trailing garbage. */
dat_status dat_gunzip(const char *what, const unsigned char *in, size_t size, unsigned char **out,
                      size_t *out_size);

/* ---- IDX (LeCun's MNIST format; Fashion-MNIST) ---- */

/* Images: magic 0x00000803 (unsigned bytes, 3 dimensions N x H x W), gzip'ed
 * or raw. Fills pixels (uint8, c = 1) and leaves labels NULL. */
dat_status dat_idx_parse_images(const char *what, const unsigned char *buf, size_t size,
                                dat_data_source *out);

/* Labels: magic 0x00000801 (unsigned bytes, 1 dimension N), gzip'ed or raw.
 * *labels is malloc'ed. */
dat_status dat_idx_parse_labels(const char *what, const unsigned char *buf, size_t size,
                                int32_t **labels, int64_t *n);

/* ---- CIFAR binary ---- */

/* Appends the records of one CIFAR file to acc (which starts zeroed): CIFAR-10
 * records are <label> <3072 pixels>, CIFAR-100 records <coarse> <fine> <3072
 * pixels> and keep the fine label. The pixels are already CHW (1024 red,
 * 1024 green, 1024 blue of a 32 x 32 image). */
dat_status dat_cifar_append(const char *what, const unsigned char *buf, size_t size,
                            int cifar100, dat_data_source *acc);

/* ---- .npy (NumPy format versions 1, 2 and 3) ---- */

typedef enum dat_npy_dtype {
    DAT_NPY_U1, /* |u1 */
    DAT_NPY_F4, /* <f4 */
    DAT_NPY_I4, /* <i4 */
    DAT_NPY_I8, /* <i8 */
} dat_npy_dtype;

#define DAT_NPY_MAX_DIMS 8

typedef struct dat_npy_header {
    dat_npy_dtype dtype;
    int ndim;
    int64_t shape[DAT_NPY_MAX_DIMS];
    int64_t count;      /* product of the shape */
    size_t data_offset; /* where the elements start; exactly count * itemsize follow */
} dat_npy_header;

/* Parses and checks the header: magic, version, the dict {'descr': ...,
 * 'fortran_order': False, 'shape': (...)} with nothing else in it, and that
 * the buffer holds exactly the elements the shape promises. */
dat_status dat_npy_parse_header(const char *what, const unsigned char *buf, size_t size,
                                dat_npy_header *h);

/* Images of shape (N, H, W), (N, C, H, W) or (N, H, W, C), uint8 or float32
 * (finite). layout: 0 = decide (see dat_dataset_layout), 1 = NCHW, 2 = NHWC
 * (kept: out->nhwc). The pixels are a view into buf, which must outlive out,
 * except float32 elements that buf does not align to 4 bytes: those are
 * copied (out->owned). */
dat_status dat_npy_view_images(const char *what, const unsigned char *buf, size_t size,
                               int layout, dat_data_source *out);

/* Labels of shape (N,) or (N, 1), uint8, int32 or int64, each in [0, 2^31 - 2]. */
dat_status dat_npy_parse_labels(const char *what, const unsigned char *buf, size_t size,
                                int32_t **labels, int64_t *n);

/* ---- files ---- */

/* Reads a whole file. DAT_ERR_IO naming the path and the system's reason;
 * for a missing file under /usr/share/datasets/NAME/ (or a Fashion-MNIST
 * path) the message says which Debian package provides it. */
dat_status dat_read_file(const char *path, unsigned char **buf, size_t *size);

/* Maps a whole file read-only (pages are read when touched): *map (of *size
 * bytes; NULL for an empty file) until munmap. Errors as dat_read_file. */
dat_status dat_map_file(const char *path, void **map, size_t *size);

#endif
