/* IDX (MNIST, Fashion-MNIST) and CIFAR-10 binary readers. Every size is checked
 * against the bytes actually present before anything is read. */
#include "readers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../core/error.h"

#define DAT_MAX_FILE ((size_t)2 << 30)

dat_status dat_read_file(const char *path, uint8_t **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return dat_error(DAT_ERR_IO, "dataset", "%s: cannot open: %s", path,
                         errno ? strerror(errno) : "out of memory");
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    dat_status s = buf ? DAT_OK : dat_error(DAT_ERR_OUT_OF_MEMORY, "dataset", "%s", path);
    while (s == DAT_OK) {
        if (n == cap) {
            uint8_t *nb = cap < DAT_MAX_FILE ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                s = dat_error(DAT_ERR_FORMAT, "dataset", "%s: larger than 2 GiB", path);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        int k = gzread(f, buf + n, (unsigned)(cap - n > (1u << 30) ? (1u << 30) : cap - n));
        if (k < 0) {
            int err;
            const char *msg = gzerror(f, &err);
            s = dat_error(DAT_ERR_FORMAT, "dataset", "%s: corrupt compressed data: %s", path, msg);
        } else if (k == 0) {
            break;
        } else {
            n += (size_t)k;
        }
    }
    gzclose(f);
    if (s != DAT_OK) {
        free(buf);
        return s;
    }
    *data = buf;
    *size = n;
    return DAT_OK;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The IDX header: magic 0x000008NN (unsigned bytes, NN dims), then NN sizes. */
static dat_status idx_header(const char *what, const uint8_t *b, size_t size, uint32_t magic,
                             uint32_t *dims, size_t *payload)
{
    if (size < 4)
        return dat_error(DAT_ERR_FORMAT, "idx", "%s: %zu bytes: too short for an IDX header",
                         what, size);
    if (be32(b) != magic)
        return dat_error(DAT_ERR_FORMAT, "idx", "%s: expected magic 0x%08x, got 0x%08x", what,
                         magic, be32(b));
    unsigned nd = magic & 0xff;
    if (size < 4 + 4 * (size_t)nd)
        return dat_error(DAT_ERR_FORMAT, "idx", "%s: truncated header", what);
    size_t expect = 1;
    for (unsigned i = 0; i < nd; ++i) {
        dims[i] = be32(b + 4 + 4 * i);
        if (dims[i] == 0 || __builtin_mul_overflow(expect, (size_t)dims[i], &expect))
            return dat_error(DAT_ERR_FORMAT, "idx", "%s: dimension %u is %u", what, i, dims[i]);
    }
    size_t have = size - 4 - 4 * (size_t)nd;
    if (have != expect)
        return dat_error(DAT_ERR_FORMAT, "idx",
                         "%s: the header announces %zu bytes of data, the file has %zu", what,
                         expect, have);
    *payload = 4 + 4 * (size_t)nd;
    return DAT_OK;
}

dat_status dat_idx_parse_images(const char *what, const uint8_t *b, size_t size,
                                dat_raw_data *out)
{
    uint32_t dims[3];
    size_t off;
    DAT_TRY(idx_header(what, b, size, 0x00000803, dims, &off));
    size_t bytes = size - off;
    out->pixels = malloc(bytes);
    if (!out->pixels)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "idx", "%s: %zu bytes", what, bytes);
    memcpy(out->pixels, b + off, bytes);
    out->n = dims[0];
    out->c = 1;
    out->h = (int32_t)dims[1];
    out->w = (int32_t)dims[2];
    return DAT_OK;
}

dat_status dat_idx_parse_labels(const char *what, const uint8_t *b, size_t size,
                                dat_raw_data *out)
{
    uint32_t dims[1];
    size_t off;
    DAT_TRY(idx_header(what, b, size, 0x00000801, dims, &off));
    if ((int64_t)dims[0] != out->n)
        return dat_error(DAT_ERR_FORMAT, "idx", "%s: %u labels for %lld images", what, dims[0],
                         (long long)out->n);
    out->labels = malloc((size_t)dims[0] * sizeof *out->labels);
    if (!out->labels)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "idx", "%s", what);
    int32_t top = 0;
    for (uint32_t i = 0; i < dims[0]; ++i) {
        out->labels[i] = b[off + i];
        top = out->labels[i] > top ? out->labels[i] : top;
    }
    out->classes = top + 1;
    return DAT_OK;
}

enum { CIFAR_RECORD = 1 + 3 * 32 * 32 };

dat_status dat_cifar_parse(const char *what, const uint8_t *b, size_t size, dat_raw_data *out)
{
    if (size == 0 || size % CIFAR_RECORD != 0)
        return dat_error(DAT_ERR_FORMAT, "cifar",
                         "%s: %zu bytes is not a whole number of %d-byte CIFAR-10 records", what,
                         size, CIFAR_RECORD);
    int64_t n = (int64_t)(size / CIFAR_RECORD);
    out->pixels = malloc((size_t)n * (CIFAR_RECORD - 1));
    out->labels = malloc((size_t)n * sizeof *out->labels);
    if (!out->pixels || !out->labels)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "cifar", "%s", what);
    for (int64_t i = 0; i < n; ++i) {
        const uint8_t *r = b + (size_t)i * CIFAR_RECORD;
        if (r[0] > 9)
            return dat_error(DAT_ERR_FORMAT, "cifar", "%s: record %lld has label %d (> 9)", what,
                             (long long)i, r[0]);
        out->labels[i] = r[0];
        memcpy(out->pixels + (size_t)i * (CIFAR_RECORD - 1), r + 1, CIFAR_RECORD - 1);
    }
    out->n = n;
    out->c = 3;
    out->h = out->w = 32;
    out->classes = 10;
    return DAT_OK;
}

void dat_raw_data_free(dat_raw_data *d)
{
    free(d->pixels);
    free(d->labels);
    memset(d, 0, sizeof *d);
}
