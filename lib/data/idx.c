/*
 * IDX files (LeCun's MNIST format, also Fashion-MNIST's): a big-endian magic
 * 00 00 <type> <ndim>, ndim big-endian 32-bit sizes, then the elements. libdat
 * reads unsigned-byte images (magic 0x00000803: N x H x W) and labels (magic
 * 0x00000801: N). The file must hold exactly the bytes its header promises.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "reader.h"

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Checks magic and sizes of a raw IDX buffer; dims receives ndim sizes. */
static dat_status idx_header(const char *what, const unsigned char *buf, size_t size,
                             uint32_t magic, uint32_t *dims, const unsigned char **data)
{
    unsigned ndim = magic & 0xff;
    if (size < 4)
        return dat_error(DAT_ERR_FORMAT, "idx", "%s: %zu bytes is too short for an IDX header",
                         what, size);
    uint32_t got = be32(buf);
    if (got != magic)
        return dat_error(DAT_ERR_FORMAT, "idx", "%s: expected magic 0x%08x, got 0x%08x", what,
                         (unsigned)magic, (unsigned)got);
    size_t header = 4 + 4 * (size_t)ndim;
    if (size < header)
        return dat_error(DAT_ERR_FORMAT, "idx", "%s: truncated header (%zu of %zu bytes)", what,
                         size, header);
    uint64_t total = 1;
    for (unsigned i = 0; i < ndim; ++i) {
        dims[i] = be32(buf + 4 + 4 * i);
        if (dims[i] == 0)
            return dat_error(DAT_ERR_FORMAT, "idx", "%s: dimension %u is 0", what, i);
        /* Checked by division before multiplying, so it cannot overflow. */
        if (dims[i] > size / total)
            return dat_error(DAT_ERR_FORMAT, "idx", "%s: header promises more than the %zu "
                             "bytes of the file (dimension %u = %u)", what, size, i,
                             (unsigned)dims[i]);
        total *= dims[i];
    }
    if (size - header != total)
        return dat_error(DAT_ERR_FORMAT, "idx", "%s: header promises %llu data bytes, the file "
                         "holds %zu", what, (unsigned long long)total, size - header);
    *data = buf + header;
    return DAT_OK;
}

/* Runs fn on the raw bytes: inflated first when the buffer is gzip. */
typedef dat_status (*idx_fn)(const char *what, const unsigned char *buf, size_t size, void *out);

static dat_status with_raw(const char *what, const unsigned char *buf, size_t size, idx_fn fn,
                           void *out)
{
    if (!dat_gzip_detect(buf, size))
        return fn(what, buf, size, out);
    unsigned char *raw;
    size_t raw_size;
    DAT_TRY(dat_gunzip(what, buf, size, &raw, &raw_size));
    dat_status s = fn(what, raw, raw_size, out);
    free(raw);
    return s;
}

static dat_status images_raw(const char *what, const unsigned char *buf, size_t size, void *arg)
{
    dat_data_source *out = arg;
    uint32_t d[3];
    const unsigned char *data;
    DAT_TRY(idx_header(what, buf, size, IDX_IMAGES_MAGIC, d, &data));
    if (d[0] >= DAT_DATA_MAX_SAMPLES || d[1] > DAT_DATA_MAX_SIDE || d[2] > DAT_DATA_MAX_SIDE ||
        (int64_t)d[1] * d[2] > DAT_DATA_MAX_SAMPLE_ELEMS)
        return dat_error(DAT_ERR_FORMAT, "idx", "%s: %u images of %u x %u exceed libdat's "
                         "limits", what, (unsigned)d[0], (unsigned)d[1], (unsigned)d[2]);
    size_t bytes = (size_t)d[0] * d[1] * d[2];
    void *px = malloc(bytes);
    if (px == NULL)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "idx", "%s: %zu bytes of pixels", what, bytes);
    memcpy(px, data, bytes);
    memset(out, 0, sizeof *out);
    out->n = d[0];
    out->c = 1;
    out->h = (int32_t)d[1];
    out->w = (int32_t)d[2];
    out->dtype = DAT_UINT8;
    out->pixels = out->owned = px;
    return DAT_OK;
}

dat_status dat_idx_parse_images(const char *what, const unsigned char *buf, size_t size,
                                dat_data_source *out)
{
    memset(out, 0, sizeof *out);
    return with_raw(what, buf, size, images_raw, out);
}

typedef struct labels_out {
    int32_t *labels;
    int64_t n;
} labels_out;

static dat_status labels_raw(const char *what, const unsigned char *buf, size_t size, void *arg)
{
    labels_out *out = arg;
    uint32_t n;
    const unsigned char *data;
    DAT_TRY(idx_header(what, buf, size, IDX_LABELS_MAGIC, &n, &data));
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    if (labels == NULL)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "idx", "%s: %u labels", what, (unsigned)n);
    for (uint32_t i = 0; i < n; ++i)
        labels[i] = data[i];
    out->labels = labels;
    out->n = n;
    return DAT_OK;
}

dat_status dat_idx_parse_labels(const char *what, const unsigned char *buf, size_t size,
                                int32_t **labels, int64_t *n)
{
    labels_out out = {NULL, 0};
    dat_status s = with_raw(what, buf, size, labels_raw, &out);
    *labels = out.labels;
    *n = out.n;
    return s;
}
