/*
 * NumPy's .npy format: "\x93NUMPY", a version byte pair (1.0, 2.0 or 3.0), the
 * header length (2 bytes little-endian for version 1, 4 bytes after), then a
 * Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (50000, 32, 32, 3), }
 * padded with spaces and a newline, then the elements in C order. The header
 * is parsed by a small strict grammar (not evaluated): exactly those three
 * keys, each once; strings in ' or " without escapes; integers without sign.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "reader.h"

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* ---------------- the header dict ---------------- */

typedef struct hparser {
    const char *what;
    const unsigned char *start, *p, *end;
} hparser;

static dat_status hfail(hparser *ps, const char *fmt, ...) DAT_PRINTF(2, 3);
static dat_status hfail(hparser *ps, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dat_error(DAT_ERR_FORMAT, "npy", "%s: header byte %ld: %s", ps->what,
                     (long)(ps->p - ps->start), msg);
}

static void hskip(hparser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ++ps->p;
}

static int hpeek(hparser *ps)
{
    hskip(ps);
    return ps->p < ps->end ? *ps->p : -1;
}

static dat_status hexpect(hparser *ps, char c)
{
    if (hpeek(ps) != (unsigned char)c)
        return hfail(ps, "expected '%c'", c);
    ++ps->p;
    return DAT_OK;
}

/* A quoted string of at most cap - 1 printable bytes, without escapes. */
static dat_status hstring(hparser *ps, char *out, size_t cap)
{
    int q = hpeek(ps);
    if (q != '\'' && q != '"')
        return hfail(ps, "expected a quoted string");
    ++ps->p;
    size_t n = 0;
    for (;;) {
        if (ps->p >= ps->end)
            return hfail(ps, "unterminated string");
        unsigned char c = *ps->p++;
        if (c == q)
            break;
        if (c < 0x20 || c >= 0x7f || c == '\\')
            return hfail(ps, "unexpected byte 0x%02x in a string", c);
        if (n + 1 >= cap)
            return hfail(ps, "string longer than %zu bytes", cap - 1);
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return DAT_OK;
}

static int hword(hparser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, word, n) == 0) {
        ps->p += n;
        return 1;
    }
    return 0;
}

static dat_status hbool(hparser *ps, int *v)
{
    hskip(ps);
    if (hword(ps, "True"))
        *v = 1;
    else if (hword(ps, "False"))
        *v = 0;
    else
        return hfail(ps, "expected True or False");
    return DAT_OK;
}

static dat_status hint(hparser *ps, int64_t *v)
{
    hskip(ps);
    int64_t x = 0;
    const unsigned char *b = ps->p;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        if (x > ((int64_t)1 << 58))
            return hfail(ps, "dimension too large");
        x = x * 10 + (*ps->p++ - '0');
    }
    if (ps->p == b)
        return hfail(ps, "expected a non-negative integer");
    if (ps->p < ps->end && *ps->p == 'L') /* Python 2's long suffix */
        ++ps->p;
    *v = x;
    return DAT_OK;
}

/* (d0, d1, ...) with an optional trailing comma; (n,) for one dimension. */
static dat_status htuple(hparser *ps, int64_t *shape, int *ndim)
{
    DAT_TRY(hexpect(ps, '('));
    *ndim = 0;
    for (;;) {
        if (hpeek(ps) == ')') {
            ++ps->p;
            return DAT_OK;
        }
        if (*ndim == DAT_NPY_MAX_DIMS)
            return hfail(ps, "more than %d dimensions", DAT_NPY_MAX_DIMS);
        DAT_TRY(hint(ps, &shape[(*ndim)++]));
        int c = hpeek(ps);
        if (c == ',')
            ++ps->p;
        else if (c != ')')
            return hfail(ps, "expected ',' or ')' in the shape");
    }
}

static dat_status hdescr(hparser *ps, dat_npy_dtype *dt)
{
    char s[32];
    DAT_TRY(hstring(ps, s, sizeof s));
    if (!strcmp(s, "|u1") || !strcmp(s, "<u1") || !strcmp(s, "u1"))
        *dt = DAT_NPY_U1;
    else if (!strcmp(s, "<f4"))
        *dt = DAT_NPY_F4;
    else if (!strcmp(s, "<i4"))
        *dt = DAT_NPY_I4;
    else if (!strcmp(s, "<i8"))
        *dt = DAT_NPY_I8;
    else
        return hfail(ps, "unsupported dtype '%s' (libdat reads |u1, <f4, <i4 and <i8)", s);
    return DAT_OK;
}

static dat_status hdict(hparser *ps, dat_npy_header *h)
{
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    DAT_TRY(hexpect(ps, '{'));
    for (;;) {
        if (hpeek(ps) == '}') {
            ++ps->p;
            break;
        }
        char key[32];
        DAT_TRY(hstring(ps, key, sizeof key));
        DAT_TRY(hexpect(ps, ':'));
        int *seen;
        if (!strcmp(key, "descr")) {
            seen = &have_descr;
            DAT_TRY(hdescr(ps, &h->dtype));
        } else if (!strcmp(key, "fortran_order")) {
            seen = &have_order;
            DAT_TRY(hbool(ps, &fortran));
        } else if (!strcmp(key, "shape")) {
            seen = &have_shape;
            DAT_TRY(htuple(ps, h->shape, &h->ndim));
        } else {
            return hfail(ps, "unexpected key '%s'", key);
        }
        if (*seen)
            return hfail(ps, "key '%s' appears twice", key);
        *seen = 1;
        int c = hpeek(ps);
        if (c == ',')
            ++ps->p;
        else if (c != '}')
            return hfail(ps, "expected ',' or '}' after the value of '%s'", key);
    }
    if (hpeek(ps) != -1)
        return hfail(ps, "unexpected text after the dict");
    if (!have_descr || !have_order || !have_shape)
        return hfail(ps, "the dict lacks '%s'", !have_descr ? "descr"
                                                : !have_order ? "fortran_order" : "shape");
    if (fortran)
        return dat_error(DAT_ERR_FORMAT, "npy", "%s: fortran_order True is not supported (save "
                         "a C-ordered array: np.ascontiguousarray)", ps->what);
    return DAT_OK;
}

/* ---------------- the file ---------------- */

static size_t itemsize(dat_npy_dtype t)
{
    return t == DAT_NPY_U1 ? 1 : t == DAT_NPY_I8 ? 8 : 4;
}

static const char *dtype_name(dat_npy_dtype t)
{
    switch (t) {
    case DAT_NPY_U1: return "uint8";
    case DAT_NPY_F4: return "float32";
    case DAT_NPY_I4: return "int32";
    default: return "int64";
    }
}

dat_status dat_npy_parse_header(const char *what, const unsigned char *buf, size_t size,
                                dat_npy_header *h)
{
    memset(h, 0, sizeof *h);
    if (size < 10 || memcmp(buf, npy_magic, 6) != 0)
        return dat_error(DAT_ERR_FORMAT, "npy", "%s: not a .npy file (no \\x93NUMPY magic)",
                         what);
    unsigned major = buf[6], minor = buf[7];
    if (major < 1 || major > 3 || minor != 0)
        return dat_error(DAT_ERR_FORMAT, "npy", "%s: unsupported .npy version %u.%u", what,
                         major, minor);
    size_t len_bytes = major == 1 ? 2 : 4;
    if (size < 8 + len_bytes)
        return dat_error(DAT_ERR_FORMAT, "npy", "%s: truncated header", what);
    const unsigned char *l = buf + 8;
    size_t hlen = major == 1 ? (size_t)l[0] | (size_t)l[1] << 8
                             : (size_t)l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 |
                                   (size_t)l[3] << 24;
    size_t start = 8 + len_bytes;
    if (hlen > size - start)
        return dat_error(DAT_ERR_FORMAT, "npy", "%s: header of %zu bytes, but only %zu follow",
                         what, hlen, size - start);
    hparser ps = {what, buf + start, buf + start, buf + start + hlen};
    DAT_TRY(hdict(&ps, h));
    h->data_offset = start + hlen;

    size_t avail = size - h->data_offset, item = itemsize(h->dtype);
    uint64_t count = 1;
    for (int i = 0; i < h->ndim; ++i) {
        if (h->shape[i] == 0)
            return dat_error(DAT_ERR_FORMAT, "npy", "%s: shape[%d] is 0: no data", what, i);
        if ((uint64_t)h->shape[i] > avail / item / count)
            return dat_error(DAT_ERR_FORMAT, "npy", "%s: shape[%d] = %lld promises more than "
                             "the %zu data bytes of the file", what, i,
                             (long long)h->shape[i], avail);
        count *= (uint64_t)h->shape[i];
    }
    if (count * item != avail)
        return dat_error(DAT_ERR_FORMAT, "npy", "%s: the shape promises %llu %s elements "
                         "(%llu bytes), the file holds %zu data bytes", what,
                         (unsigned long long)count, dtype_name(h->dtype),
                         (unsigned long long)(count * item), avail);
    h->count = (int64_t)count;
    return DAT_OK;
}

/* ---------------- images ---------------- */

static int is_channels(int64_t d)
{
    return d == 1 || d == 3;
}

/* Decides N x C x H x W from the shape; *nhwc says the file is (N, H, W, C). */
static dat_status image_geometry(const char *what, const dat_npy_header *h, int layout,
                                 dat_data_source *g, int *nhwc)
{
    const int64_t *s = h->shape;
    *nhwc = 0;
    int64_t c = 1, hh, ww;
    if (h->ndim == 3) {
        hh = s[1];
        ww = s[2];
    } else if (h->ndim == 4) {
        if (layout == 0) {
            if (is_channels(s[1]) && !is_channels(s[3]))
                layout = 1;
            else if (is_channels(s[3]) && !is_channels(s[1]))
                layout = 2;
            else
                return dat_error(DAT_ERR_INVALID_ARG, "npy", "%s: shape (%lld, %lld, %lld, "
                                 "%lld) could be NCHW or NHWC: set dat_dataset_options.layout",
                                 what, (long long)s[0], (long long)s[1], (long long)s[2],
                                 (long long)s[3]);
        }
        *nhwc = layout == 2;
        c = *nhwc ? s[3] : s[1];
        hh = *nhwc ? s[1] : s[2];
        ww = *nhwc ? s[2] : s[3];
    } else {
        return dat_error(DAT_ERR_FORMAT, "npy", "%s: images must have 3 dimensions (N, H, W) or "
                         "4 (N, C, H, W) / (N, H, W, C), not %d", what, h->ndim);
    }
    if (s[0] >= DAT_DATA_MAX_SAMPLES || c > DAT_DATA_MAX_CHANNELS || hh > DAT_DATA_MAX_SIDE ||
        ww > DAT_DATA_MAX_SIDE || c * hh * ww > DAT_DATA_MAX_SAMPLE_ELEMS)
        return dat_error(DAT_ERR_FORMAT, "npy", "%s: %lld images of %lld x %lld x %lld exceed "
                         "libdat's limits", what, (long long)s[0], (long long)c, (long long)hh,
                         (long long)ww);
    g->n = s[0];
    g->c = (int32_t)c;
    g->h = (int32_t)hh;
    g->w = (int32_t)ww;
    return DAT_OK;
}

static dat_status check_finite(const char *what, const float *px, int64_t count)
{
    for (int64_t i = 0; i < count; ++i)
        if (!isfinite(px[i]))
            return dat_error(DAT_ERR_FORMAT, "npy", "%s: pixel %lld is %s: float32 images must "
                             "be finite", what, (long long)i, isnan(px[i]) ? "NaN" : "infinite");
    return DAT_OK;
}

dat_status dat_npy_view_images(const char *what, const unsigned char *buf, size_t size,
                               int layout, dat_data_source *out)
{
    memset(out, 0, sizeof *out);
    dat_npy_header h;
    DAT_TRY(dat_npy_parse_header(what, buf, size, &h));
    if (h.dtype != DAT_NPY_U1 && h.dtype != DAT_NPY_F4)
        return dat_error(DAT_ERR_FORMAT, "npy", "%s: images must be uint8 (|u1) or float32 "
                         "(<f4), not %s", what, dtype_name(h.dtype));
    dat_data_source g = {0};
    int nhwc;
    DAT_TRY(image_geometry(what, &h, layout, &g, &nhwc));
    g.nhwc = nhwc;
    g.dtype = h.dtype == DAT_NPY_U1 ? DAT_UINT8 : DAT_FLOAT32;
    g.pixels = buf + h.data_offset;
    if (g.dtype == DAT_FLOAT32 && (uintptr_t)g.pixels % sizeof(float) != 0) {
        /* A header whose length misaligns the floats (numpy pads it to 64 bytes). */
        size_t bytes = (size_t)h.count * sizeof(float);
        g.owned = malloc(bytes ? bytes : 1);
        if (g.owned == NULL)
            return dat_error(DAT_ERR_OUT_OF_MEMORY, "npy", "%s: %lld pixels", what,
                             (long long)h.count);
        memcpy(g.owned, g.pixels, bytes);
        g.pixels = g.owned;
    }
    if (g.dtype == DAT_FLOAT32) {
        dat_status s = check_finite(what, g.pixels, h.count);
        if (s != DAT_OK) {
            free(g.owned);
            return s;
        }
    }
    *out = g;
    return DAT_OK;
}

/* ---------------- labels ---------------- */

static int64_t label_at(const unsigned char *p, dat_npy_dtype t)
{
    if (t == DAT_NPY_U1)
        return p[0];
    if (t == DAT_NPY_I4) {
        uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        return (int32_t)u;
    }
    uint64_t u = 0;
    for (int b = 7; b >= 0; --b)
        u = u << 8 | p[b];
    return (int64_t)u;
}

dat_status dat_npy_parse_labels(const char *what, const unsigned char *buf, size_t size,
                                int32_t **labels, int64_t *n)
{
    *labels = NULL;
    *n = 0;
    dat_npy_header h;
    DAT_TRY(dat_npy_parse_header(what, buf, size, &h));
    if (h.dtype == DAT_NPY_F4)
        return dat_error(DAT_ERR_FORMAT, "npy", "%s: labels must be uint8, int32 or int64, not "
                         "float32", what);
    if (!(h.ndim == 1 || (h.ndim == 2 && h.shape[1] == 1)))
        return dat_error(DAT_ERR_FORMAT, "npy", "%s: labels must have shape (N,) or (N, 1); "
                         "this has %d dimensions", what, h.ndim);
    if (h.count >= DAT_DATA_MAX_SAMPLES)
        return dat_error(DAT_ERR_FORMAT, "npy", "%s: %lld labels exceed libdat's limit", what,
                         (long long)h.count);
    int32_t *lb = malloc((size_t)h.count * sizeof *lb);
    if (lb == NULL)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "npy", "%s: %lld labels", what,
                         (long long)h.count);
    size_t item = itemsize(h.dtype);
    for (int64_t i = 0; i < h.count; ++i) {
        int64_t v = label_at(buf + h.data_offset + (size_t)i * item, h.dtype);
        if (v < 0 || v > DAT_DATA_MAX_LABEL) {
            free(lb);
            return dat_error(DAT_ERR_FORMAT, "npy", "%s: label %lld at index %lld is out of "
                             "range [0, %d]", what, (long long)v, (long long)i,
                             DAT_DATA_MAX_LABEL);
        }
        lb[i] = (int32_t)v;
    }
    *labels = lb;
    *n = h.count;
    return DAT_OK;
}
