#include "safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/error.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[DAT_ST_NDTYPES] = {
    [DAT_ST_BOOL] = {"BOOL", 1}, [DAT_ST_U8] = {"U8", 1},     [DAT_ST_I8] = {"I8", 1},
    [DAT_ST_I16] = {"I16", 2},   [DAT_ST_U16] = {"U16", 2},   [DAT_ST_F16] = {"F16", 2},
    [DAT_ST_BF16] = {"BF16", 2}, [DAT_ST_I32] = {"I32", 4},   [DAT_ST_U32] = {"U32", 4},
    [DAT_ST_F32] = {"F32", 4},   [DAT_ST_I64] = {"I64", 8},   [DAT_ST_U64] = {"U64", 8},
    [DAT_ST_F64] = {"F64", 8},
};

size_t dat_st_dtype_size(dat_st_dtype t)
{
    return (unsigned)t < DAT_ST_NDTYPES ? dtypes[t].size : 0;
}

const char *dat_st_dtype_name(dat_st_dtype t)
{
    return (unsigned)t < DAT_ST_NDTYPES ? dtypes[t].name : "?";
}

/* ---------------- header parser ---------------- */

enum { MAX_STRING = DAT_ST_MAX_STRING, MAX_ENTRIES = 1 << 20 };

typedef struct parser {
    const char *what;
    const unsigned char *start, *p, *end;
} parser;

static dat_status fail(parser *ps, const char *fmt, ...) DAT_PRINTF(2, 3);
static dat_status fail(parser *ps, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dat_error(DAT_ERR_FORMAT, "safetensors", "%s: header byte %ld: %s", ps->what,
                     (long)(ps->p - ps->start), msg);
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ++ps->p;
}

static dat_status expect(parser *ps, char c)
{
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != (unsigned char)c)
        return fail(ps, "expected '%c'", c);
    ++ps->p;
    return DAT_OK;
}

/* Next non-space byte, not consumed; 0 at the end. */
static int peek(parser *ps)
{
    skip_ws(ps);
    return ps->p < ps->end ? *ps->p : 0;
}

static int hex4(const unsigned char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; ++i) {
        int c = p[i], d = c >= '0' && c <= '9' ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return 0;
        *v = *v * 16 + (unsigned)d;
    }
    return 1;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 63));
        o[2] = (char)(0x80 | (cp & 63)); return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63)); return 4;
}

/* \uXXXX at ps->p (after the backslash-u), with surrogate pairs. */
static dat_status unicode_escape(parser *ps, unsigned *cp)
{
    if (ps->end - ps->p < 4 || !hex4(ps->p, cp))
        return fail(ps, "bad \\u escape");
    ps->p += 4;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF)
        return fail(ps, "lone low surrogate in \\u escape");
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
        unsigned lo;
        if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' || !hex4(ps->p + 2, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF)
            return fail(ps, "high surrogate without its low half");
        ps->p += 6;
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    return DAT_OK;
}

static dat_status parse_string(parser *ps, char **out)
{
    *out = NULL;
    DAT_TRY(expect(ps, '"'));
    char *buf = malloc(MAX_STRING + 4);
    if (!buf)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "safetensors", "string buffer");
    size_t n = 0;
    dat_status s = DAT_OK;
    for (;;) {
        if (ps->p >= ps->end) { s = fail(ps, "unterminated string"); break; }
        if (n >= MAX_STRING) { s = fail(ps, "string longer than %d bytes", MAX_STRING); break; }
        unsigned char c = *ps->p++;
        if (c == '"')
            break;
        if (c < 0x20) { s = fail(ps, "control character in a string"); break; }
        if (c != '\\') { buf[n++] = (char)c; continue; }
        if (ps->p >= ps->end) { s = fail(ps, "unterminated escape"); break; }
        c = *ps->p++;
        const char *simple = strchr("\"\\/bfnrt", c);
        if (c && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            buf[n++] = map[simple - "\"\\/bfnrt"];
        } else if (c == 'u') {
            unsigned cp;
            if ((s = unicode_escape(ps, &cp)) != DAT_OK)
                break;
            if (cp == 0) { s = fail(ps, "NUL character in a string"); break; }
            n += put_utf8(buf + n, cp);
        } else {
            s = fail(ps, "invalid escape '\\%c'", c >= 0x20 && c < 0x7f ? c : '?');
            break;
        }
    }
    if (s != DAT_OK) {
        free(buf);
        return s;
    }
    buf[n] = '\0';
    char *fit = realloc(buf, n + 1); /* a kept name holds its length, not MAX_STRING */
    *out = fit ? fit : buf;
    return DAT_OK;
}

/* A non-negative integer below 2^63 (no sign, fraction or exponent). */
static dat_status parse_uint(parser *ps, uint64_t *v)
{
    skip_ws(ps);
    const unsigned char *b = ps->p;
    uint64_t x = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        if (x > (UINT64_C(1) << 62) / 5)
            return fail(ps, "integer too large");
        x = x * 10 + (uint64_t)(*ps->p++ - '0');
    }
    if (ps->p == b)
        return fail(ps, "expected a non-negative integer");
    if (ps->p - b > 1 && *b == '0')
        return fail(ps, "leading zero in an integer");
    if (ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E'))
        return fail(ps, "expected an integer, not a fraction");
    *v = x;
    return DAT_OK;
}

static dat_status parse_uint_array(parser *ps, uint64_t *vals, int max, int *count)
{
    DAT_TRY(expect(ps, '['));
    *count = 0;
    if (peek(ps) == ']') {
        ++ps->p;
        return DAT_OK;
    }
    for (;;) {
        if (*count == max)
            return fail(ps, "array longer than %d", max);
        DAT_TRY(parse_uint(ps, &vals[(*count)++]));
        int c = peek(ps);
        if (c == ']') {
            ++ps->p;
            return DAT_OK;
        }
        DAT_TRY(expect(ps, ','));
    }
}

static int dtype_from_name(const char *s)
{
    for (int i = 0; i < DAT_ST_NDTYPES; ++i)
        if (strcmp(s, dtypes[i].name) == 0)
            return i;
    return -1;
}

/* {"dtype": .., "shape": [..], "data_offsets": [b, e]}, each key exactly once. */
static dat_status parse_tensor(parser *ps, dat_st_entry *e)
{
    DAT_TRY(expect(ps, '{'));
    int seen[3] = {0, 0, 0};
    for (;;) {
        char *key;
        DAT_TRY(parse_string(ps, &key));
        int k = !strcmp(key, "dtype") ? 0 : !strcmp(key, "shape") ? 1
                : !strcmp(key, "data_offsets") ? 2 : -1;
        dat_status s;
        if (k < 0)
            s = fail(ps, "tensor '%s': unknown key '%.40s'", e->name, key);
        else if (seen[k])
            s = fail(ps, "tensor '%s': key '%s' repeats", e->name, key);
        else
            s = expect(ps, ':');
        free(key);
        if (k < 0 || s != DAT_OK)
            return s;
        seen[k] = 1;
        if (k == 0) {
            char *dt;
            DAT_TRY(parse_string(ps, &dt));
            int t = dtype_from_name(dt);
            s = t < 0 ? fail(ps, "tensor '%s': unknown dtype '%.20s'", e->name, dt) : DAT_OK;
            free(dt);
            DAT_TRY(s);
            e->dtype = (dat_st_dtype)t;
        } else if (k == 1) {
            uint64_t dims[DAT_ST_MAX_DIMS];
            DAT_TRY(parse_uint_array(ps, dims, DAT_ST_MAX_DIMS, &e->ndim));
            for (int i = 0; i < e->ndim; ++i)
                e->shape[i] = (int64_t)dims[i];
        } else {
            uint64_t off[2];
            int n;
            DAT_TRY(parse_uint_array(ps, off, 2, &n));
            if (n != 2)
                return fail(ps, "tensor '%s': data_offsets needs 2 values", e->name);
            e->begin = off[0];
            e->end = off[1];
        }
        int c = peek(ps);
        if (c == '}') {
            ++ps->p;
            break;
        }
        DAT_TRY(expect(ps, ','));
    }
    if (!seen[0] || !seen[1] || !seen[2])
        return fail(ps, "tensor '%s': needs dtype, shape and data_offsets", e->name);
    return DAT_OK;
}

static dat_status add_meta(dat_st_file *f, char *key, char *value)
{
    char **k = realloc(f->meta_keys, (size_t)(f->n_meta + 1) * sizeof *k);
    if (k)
        f->meta_keys = k;
    char **v = realloc(f->meta_values, (size_t)(f->n_meta + 1) * sizeof *v);
    if (v)
        f->meta_values = v;
    if (!k || !v) {
        free(key);
        free(value);
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "safetensors", "metadata");
    }
    f->meta_keys[f->n_meta] = key;
    f->meta_values[f->n_meta++] = value;
    return DAT_OK;
}

static dat_status parse_metadata(parser *ps, dat_st_file *f)
{
    DAT_TRY(expect(ps, '{'));
    if (peek(ps) == '}') {
        ++ps->p;
        return DAT_OK;
    }
    for (;;) {
        char *key, *value;
        DAT_TRY(parse_string(ps, &key));
        dat_status s = expect(ps, ':');
        if (s == DAT_OK && peek(ps) != '"')
            s = fail(ps, "__metadata__ value of '%.40s' is not a string", key);
        if (s != DAT_OK) {
            free(key);
            return s;
        }
        if ((s = parse_string(ps, &value)) != DAT_OK) {
            free(key);
            return s;
        }
        DAT_TRY(add_meta(f, key, value));
        int c = peek(ps);
        if (c == '}') {
            ++ps->p;
            return DAT_OK;
        }
        DAT_TRY(expect(ps, ','));
    }
}

/* Names are checked for repeats once the header is read (unique_names): a
 * scan per entry here was quadratic, minutes for a header of 40 000 tensors. */
static dat_status add_entry(parser *ps, dat_st_file *f, char *name, int *cap)
{
    if (f->n == MAX_ENTRIES) {
        free(name);
        return fail(ps, "more than %d tensors", MAX_ENTRIES);
    }
    if (f->n == *cap) {
        int nc = *cap ? 2 * *cap : 16;
        dat_st_entry *e = realloc(f->entries, (size_t)nc * sizeof *e);
        if (!e) {
            free(name);
            return dat_error(DAT_ERR_OUT_OF_MEMORY, "safetensors", "entries");
        }
        f->entries = e;
        *cap = nc;
    }
    memset(&f->entries[f->n], 0, sizeof f->entries[0]);
    f->entries[f->n].name = name;
    f->n++;
    return parse_tensor(ps, &f->entries[f->n - 1]);
}

static dat_status parse_header(parser *ps, dat_st_file *f)
{
    DAT_TRY(expect(ps, '{'));
    int cap = 0, have_meta = 0;
    if (peek(ps) == '}') {
        ++ps->p;
    } else {
        for (;;) {
            char *key;
            DAT_TRY(parse_string(ps, &key));
            dat_status s = expect(ps, ':');
            if (s == DAT_OK && strcmp(key, "__metadata__") == 0) {
                free(key);
                s = have_meta ? fail(ps, "__metadata__ appears twice") : parse_metadata(ps, f);
                have_meta = 1;
            } else if (s == DAT_OK) {
                s = add_entry(ps, f, key, &cap); /* takes key */
            } else {
                free(key);
            }
            DAT_TRY(s);
            int c = peek(ps);
            if (c == '}') {
                ++ps->p;
                break;
            }
            DAT_TRY(expect(ps, ','));
        }
    }
    skip_ws(ps);
    if (ps->p != ps->end)
        return fail(ps, "bytes after the header object");
    return DAT_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(dat_st_entry *const *)a)->name, (*(dat_st_entry *const *)b)->name);
}

/* No tensor name appears twice: sorted, in n log n. */
static dat_status unique_names(const char *what, dat_st_file *f)
{
    if (f->n < 2)
        return DAT_OK;
    dat_st_entry **order = malloc((size_t)f->n * sizeof *order);
    if (!order)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "safetensors", "name check");
    for (int i = 0; i < f->n; ++i)
        order[i] = &f->entries[i];
    qsort(order, (size_t)f->n, sizeof *order, by_name);
    dat_status s = DAT_OK;
    for (int i = 1; i < f->n && s == DAT_OK; ++i)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            s = dat_error(DAT_ERR_FORMAT, "safetensors", "%s: tensor '%s' appears twice", what,
                          order[i]->name);
    free(order);
    return s;
}

static int by_begin(const void *a, const void *b)
{
    const dat_st_entry *x = *(dat_st_entry *const *)a, *y = *(dat_st_entry *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

/* Sizes agree with shapes, and the entries tile the data section exactly. */
static dat_status check_layout(const char *what, dat_st_file *f, uint64_t data_size,
                               const unsigned char *data)
{
    dat_st_entry **order = malloc((size_t)(f->n ? f->n : 1) * sizeof *order);
    if (!order)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "safetensors", "layout check");
    dat_status s = DAT_OK;
    for (int i = 0; i < f->n && s == DAT_OK; ++i) {
        dat_st_entry *e = &f->entries[i];
        uint64_t bytes = dtypes[e->dtype].size;
        for (int d = 0; d < e->ndim && s == DAT_OK; ++d)
            if (__builtin_mul_overflow(bytes, (uint64_t)e->shape[d], &bytes))
                s = dat_error(DAT_ERR_FORMAT, "safetensors", "%s: tensor '%s': shape overflows",
                              what, e->name);
        if (s == DAT_OK && (e->begin > e->end || e->end - e->begin != bytes))
            s = dat_error(DAT_ERR_FORMAT, "safetensors",
                          "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, its "
                          "dtype and shape need %llu",
                          what, e->name, (unsigned long long)e->begin,
                          (unsigned long long)e->end,
                          (unsigned long long)(e->end >= e->begin ? e->end - e->begin : 0),
                          (unsigned long long)bytes);
        if (s == DAT_OK && e->end > data_size)
            s = dat_error(DAT_ERR_FORMAT, "safetensors",
                          "%s: tensor '%s': data_offsets [%llu, %llu] exceed the data size %llu",
                          what, e->name, (unsigned long long)e->begin,
                          (unsigned long long)e->end, (unsigned long long)data_size);
        e->data = data + e->begin;
        order[i] = e;
    }
    if (s == DAT_OK)
        qsort(order, (size_t)f->n, sizeof *order, by_begin);
    uint64_t next = 0;
    for (int i = 0; i < f->n && s == DAT_OK; ++i) {
        if (order[i]->begin != next)
            s = dat_error(DAT_ERR_FORMAT, "safetensors",
                          "%s: tensor '%s' starts at %llu: the data has %s at byte %llu", what,
                          order[i]->name, (unsigned long long)order[i]->begin,
                          order[i]->begin < next ? "an overlap" : "a hole",
                          (unsigned long long)next);
        next = order[i]->end;
    }
    if (s == DAT_OK && next != data_size)
        s = dat_error(DAT_ERR_FORMAT, "safetensors",
                      "%s: the tensors cover %llu bytes of a %llu-byte data section", what,
                      (unsigned long long)next, (unsigned long long)data_size);
    free(order);
    return s;
}

dat_status dat_st_parse(const char *what, const unsigned char *buf, size_t size,
                        dat_st_file *out)
{
    memset(out, 0, sizeof *out);
    if (size < 8)
        return dat_error(DAT_ERR_FORMAT, "safetensors",
                         "%s: %zu bytes: too short for the 8-byte header length", what, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; --i)
        hlen = hlen << 8 | buf[i];
    if (hlen > size - 8 || hlen > DAT_ST_MAX_HEADER)
        return dat_error(DAT_ERR_FORMAT, "safetensors",
                         "%s: header length %llu exceeds the file (%zu bytes) or 100 MiB", what,
                         (unsigned long long)hlen, size);
    parser ps = {what, buf + 8, buf + 8, buf + 8 + hlen};
    dat_status s = parse_header(&ps, out);
    if (s == DAT_OK)
        s = unique_names(what, out);
    if (s == DAT_OK)
        s = check_layout(what, out, size - 8 - hlen, buf + 8 + hlen);
    if (s != DAT_OK)
        dat_st_free(out);
    return s;
}

dat_status dat_st_read(const char *path, dat_st_file *out)
{
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return dat_error(DAT_ERR_IO, "safetensors", "%s: cannot open: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t size = 0;
    dat_status s = DAT_OK;
    /* The size of a regular file only: a folder (or a pipe) has none to read. */
    struct stat st;
    if (fstat(fileno(fp), &st) != 0)
        s = dat_error(DAT_ERR_IO, "safetensors", "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = dat_error(DAT_ERR_IO, "safetensors", "%s: cannot read: not a regular file%s", path,
                      S_ISDIR(st.st_mode) ? " (a folder)" : "");
    else
        size = (size_t)st.st_size;
    if (s == DAT_OK && !(buf = malloc(size ? size : 1)))
        s = dat_error(DAT_ERR_OUT_OF_MEMORY, "safetensors", "%s: %zu bytes", path, size);
    if (s == DAT_OK && fread(buf, 1, size, fp) != size)
        s = dat_error(DAT_ERR_IO, "safetensors", "%s: cannot read: %s", path,
                      ferror(fp) ? strerror(errno) : "short read");
    fclose(fp);
    if (s == DAT_OK)
        s = dat_st_parse(path, buf, size, out);
    if (s != DAT_OK) {
        free(buf);
        return s;
    }
    out->buf = buf;
    out->size = size;
    return DAT_OK;
}

void dat_st_free(dat_st_file *f)
{
    for (int i = 0; i < f->n; ++i)
        free(f->entries[i].name);
    free(f->entries);
    for (int i = 0; i < f->n_meta; ++i) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

const dat_st_entry *dat_st_find(const dat_st_file *f, const char *name)
{
    for (int i = 0; i < f->n; ++i)
        if (strcmp(f->entries[i].name, name) == 0)
            return &f->entries[i];
    return NULL;
}

const char *dat_st_meta(const dat_st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; ++i)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}
