#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../core/error.h"
#include "reader.h"

/* Deflate never compresses better than 1032:1, so a valid stream of `size`
 * bytes inflates to at most this; a larger claim is a hostile file. */
static size_t inflate_bound(size_t size)
{
    const size_t ratio = 1032;
    return size > (SIZE_MAX - 4096) / ratio ? SIZE_MAX : size * ratio + 4096;
}

int dat_gzip_detect(const unsigned char *buf, size_t size)
{
    return size >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
}

static dat_status grow(const char *what, unsigned char **out, size_t *cap, size_t bound)
{
    if (*cap >= bound)
        return dat_error(DAT_ERR_FORMAT, "gzip",
                         "%s: inflates to more than %zu bytes, beyond what deflate allows", what,
                         bound);
    size_t next = *cap > bound / 2 ? bound : *cap * 2;
    unsigned char *p = realloc(*out, next);
    if (p == NULL)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "gzip", "%s: %zu bytes for the inflated data",
                         what, next);
    *out = p;
    *cap = next;
    return DAT_OK;
}

/* The trailer's ISIZE (size mod 2^32 of the last member) is a good first
 * guess of the output size; it is only a hint, never trusted. */
static size_t first_capacity(const unsigned char *in, size_t size, size_t bound)
{
    size_t guess = 1 << 16;
    if (size >= 18) {
        const unsigned char *t = in + size - 4;
        size_t isize = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
        if (isize > guess)
            guess = isize + 1;
    }
    return guess < bound ? guess : bound;
}

static dat_status inflate_all(const char *what, z_stream *z, const unsigned char *in, size_t size,
                              unsigned char **out, size_t *cap, size_t *len)
{
    size_t bound = inflate_bound(size);
    size_t pos = 0; /* input consumed */
    for (;;) {
        if (*len == *cap)
            DAT_TRY(grow(what, out, cap, bound));
        size_t in_left = size - pos, out_left = *cap - *len;
        z->next_in = (unsigned char *)(uintptr_t)(in + pos);
        z->avail_in = in_left > UINT_MAX ? UINT_MAX : (unsigned)in_left;
        z->next_out = *out + *len;
        z->avail_out = out_left > UINT_MAX ? UINT_MAX : (unsigned)out_left;
        unsigned in_before = z->avail_in, out_before = z->avail_out;
        int r = inflate(z, Z_NO_FLUSH);
        pos += in_before - z->avail_in;
        *len += out_before - z->avail_out;
        if (r == Z_STREAM_END) {
            /* Another member may follow (gzip files may be concatenated). */
            if (pos == size)
                return DAT_OK;
            if (!dat_gzip_detect(in + pos, size - pos))
                return dat_error(DAT_ERR_FORMAT, "gzip", "%s: %zu bytes of garbage after the "
                                 "gzip stream", what, size - pos);
            if (inflateReset(z) != Z_OK)
                return dat_error(DAT_ERR_INTERNAL, "gzip", "%s: inflateReset failed", what);
            continue;
        }
        if (r == Z_OK)
            continue;
        if (r == Z_BUF_ERROR && pos == size && z->avail_out > 0)
            return dat_error(DAT_ERR_FORMAT, "gzip", "%s: truncated gzip stream (%zu bytes "
                             "inflated before the input ended)", what, *len);
        if (r == Z_BUF_ERROR)
            continue;
        if (r == Z_MEM_ERROR)
            return dat_error(DAT_ERR_OUT_OF_MEMORY, "gzip", "%s: zlib ran out of memory", what);
        return dat_error(DAT_ERR_FORMAT, "gzip", "%s: corrupt gzip data at compressed byte "
                         "%zu: %s", what, pos, z->msg ? z->msg : "inflate failed");
    }
}

dat_status dat_gunzip(const char *what, const unsigned char *in, size_t size, unsigned char **out,
                      size_t *out_size)
{
    *out = NULL;
    *out_size = 0;
    z_stream z;
    memset(&z, 0, sizeof z);
    /* 16 + MAX_WBITS: a gzip wrapper (header and CRC-32 checked), not zlib's. */
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "gzip", "%s: inflateInit2 failed", what);
    size_t cap = first_capacity(in, size, inflate_bound(size)), len = 0;
    unsigned char *buf = malloc(cap);
    dat_status s = buf ? inflate_all(what, &z, in, size, &buf, &cap, &len)
                       : dat_error(DAT_ERR_OUT_OF_MEMORY, "gzip", "%s: %zu bytes", what, cap);
    inflateEnd(&z);
    if (s != DAT_OK) {
        free(buf);
        return s;
    }
    *out = buf;
    *out_size = len;
    return DAT_OK;
}
