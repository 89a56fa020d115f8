/* Writing safetensors files atomically: temporary file, fsync, rename, fsync
 * of the folder. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/error.h"
#include "safetensors.h"

void dat_st_writer_init(dat_st_writer *w)
{
    memset(w, 0, sizeof *w);
}

static char *dup_or_fail(dat_st_writer *w, const char *s)
{
    if (s && strlen(s) >= DAT_ST_MAX_STRING) { /* the reader would refuse the file */
        if (w->status == DAT_OK)
            w->status = dat_error(DAT_ERR_INVALID_ARG, "safetensors", "a name or metadata "
                                  "value of %zu bytes: at most %d can be read back",
                                  strlen(s), DAT_ST_MAX_STRING - 1);
        return NULL;
    }
    char *d = s ? strdup(s) : NULL;
    if (!d && w->status == DAT_OK)
        w->status = dat_error(DAT_ERR_OUT_OF_MEMORY, "safetensors", "writer");
    return d;
}

void dat_st_writer_add(dat_st_writer *w, const char *name, dat_st_dtype dtype, int ndim,
                       const int64_t *shape, const void *data)
{
    if (w->status != DAT_OK)
        return;
    if (ndim < 0 || ndim > DAT_ST_MAX_DIMS || (unsigned)dtype >= DAT_ST_NDTYPES) {
        w->status = dat_error(DAT_ERR_INTERNAL, "safetensors", "tensor '%s': bad ndim or dtype",
                              name);
        return;
    }
    if (w->n == w->cap) {
        int nc = w->cap ? 2 * w->cap : 32;
        dat_st_entry *e = realloc(w->entries, (size_t)nc * sizeof *e);
        if (!e) {
            w->status = dat_error(DAT_ERR_OUT_OF_MEMORY, "safetensors", "writer");
            return;
        }
        w->entries = e;
        w->cap = nc;
    }
    dat_st_entry *e = &w->entries[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = dup_or_fail(w, name)))
        return;
    e->dtype = dtype;
    e->ndim = ndim;
    uint64_t bytes = dat_st_dtype_size(dtype);
    for (int i = 0; i < ndim; ++i) {
        e->shape[i] = shape[i];
        bytes *= (uint64_t)shape[i];
    }
    e->begin = w->n ? w->entries[w->n - 1].end : 0;
    e->end = e->begin + bytes;
    e->data = data;
    w->n++;
}

void dat_st_writer_meta(dat_st_writer *w, const char *key, const char *value)
{
    if (w->status != DAT_OK)
        return;
    if (w->n_meta == w->cap_meta) {
        int nc = w->cap_meta ? 2 * w->cap_meta : 8;
        char **k = realloc(w->meta_keys, (size_t)nc * sizeof *k);
        if (k)
            w->meta_keys = k;
        char **v = realloc(w->meta_values, (size_t)nc * sizeof *v);
        if (v)
            w->meta_values = v;
        if (!k || !v) {
            w->status = dat_error(DAT_ERR_OUT_OF_MEMORY, "safetensors", "writer");
            return;
        }
        w->cap_meta = nc;
    }
    char *k = dup_or_fail(w, key), *v = dup_or_fail(w, value);
    if (!k || !v) {
        free(k);
        free(v);
        return;
    }
    w->meta_keys[w->n_meta] = k;
    w->meta_values[w->n_meta++] = v;
}

/* A growing text buffer for the JSON header. */
typedef struct text {
    char *s;
    size_t len, cap;
    int oom;
} text;

static void put(text *t, const char *s, size_t n)
{
    if (t->oom)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t nc = (t->cap ? t->cap * 2 : 4096) + n;
        char *p = realloc(t->s, nc);
        if (!p) {
            t->oom = 1;
            return;
        }
        t->s = p;
        t->cap = nc;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void puts_(text *t, const char *s)
{
    put(t, s, strlen(s));
}

static void put_json_string(text *t, const char *s)
{
    put(t, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; ++p) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            put(t, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            put(t, esc, 6);
        } else {
            put(t, (const char *)p, 1);
        }
    }
    put(t, "\"", 1);
}

static void header_json(const dat_st_writer *w, text *t)
{
    char num[64];
    puts_(t, "{");
    for (int i = 0; i < w->n; ++i) {
        const dat_st_entry *e = &w->entries[i];
        if (i)
            puts_(t, ",");
        put_json_string(t, e->name);
        puts_(t, ":{\"dtype\":\"");
        puts_(t, dat_st_dtype_name(e->dtype));
        puts_(t, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; ++d) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)e->shape[d]);
            puts_(t, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)e->begin,
                 (unsigned long long)e->end);
        puts_(t, num);
    }
    if (w->n_meta) {
        puts_(t, w->n ? ",\"__metadata__\":{" : "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; ++i) {
            if (i)
                puts_(t, ",");
            put_json_string(t, w->meta_keys[i]);
            puts_(t, ":");
            put_json_string(t, w->meta_values[i]);
        }
        puts_(t, "}");
    }
    puts_(t, "}");
    while ((8 + t->len) % 8) /* the data section starts 8-aligned */
        puts_(t, " ");
}

static int write_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0)
            errno = ENOSPC; /* a write of nothing leaves errno as it was */
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The folder of path, for the temporary file and the final fsync. */
static void folder_of(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, size, ".");
    else if (slash == path)
        snprintf(dir, size, "/");
    else
        snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

/* Creates path.tmp.<pid>.<n>, a name no other writer uses, with mode 0666
 * less the umask, as a plain open would (mkstemp's 0600 made every checkpoint
 * private), and without following a link placed there (O_EXCL). */
static int open_temp(const char *path, char *tmp, size_t size)
{
    static atomic_uint counter;
    for (int tries = 0; tries < 1000; ++tries) {
        snprintf(tmp, size, "%s.tmp.%ld.%u", path, (long)getpid(),
                 atomic_fetch_add(&counter, 1u));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

/* Makes a rename into path's folder durable: 0, or the errno of the failure.
 * Folders one may write but not read, and file systems that cannot sync a
 * folder, are let be (there is nothing more to do there). */
static int sync_folder(const char *path)
{
    char dir[4096];
    folder_of(path, dir, sizeof dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0)
        return errno == EACCES ? 0 : errno;
    int err = fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP ? errno : 0;
    close(dfd); /* read only: nothing to lose */
    return err;
}

static dat_status write_file(const dat_st_writer *w, const char *path, const text *t)
{
    size_t plen = strlen(path), size = plen + 48;
    char *tmp = malloc(size);
    if (!tmp)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "safetensors", "path");
    int fd = open_temp(path, tmp, size);
    if (fd < 0) {
        dat_status s = dat_error(DAT_ERR_IO, "safetensors",
                                 "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        return s;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; ++i)
        len8[i] = (unsigned char)((uint64_t)t->len >> (8 * i));
    int bad = write_all(fd, len8, 8) || write_all(fd, t->s, t->len);
    for (int i = 0; i < w->n && !bad; ++i)
        bad = write_all(fd, w->entries[i].data, w->entries[i].end - w->entries[i].begin);
    bad = bad || fsync(fd) != 0;
    int err = bad ? errno : 0;
    if (close(fd) != 0 && !bad) { /* NFS reports a failed write here */
        bad = 1;
        err = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        unlink(tmp);
        free(tmp);
        return dat_error(DAT_ERR_IO, "safetensors", "%s: cannot write: %s", path, strerror(err));
    }
    free(tmp);
    err = sync_folder(path);
    if (err)
        return dat_error(DAT_ERR_IO, "safetensors",
                         "%s: written, but its folder's fsync failed (%s): the file may not "
                         "survive a crash", path, strerror(err));
    return DAT_OK;
}

dat_status dat_st_write(dat_st_writer *w, const char *path)
{
    if (w->status != DAT_OK)
        return w->status;
    text t = {0};
    header_json(w, &t);
    if (t.oom) {
        free(t.s);
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "safetensors", "header");
    }
    dat_status s = write_file(w, path, &t);
    free(t.s);
    return s;
}

void dat_st_writer_free(dat_st_writer *w)
{
    for (int i = 0; i < w->n; ++i)
        free(w->entries[i].name);
    free(w->entries);
    for (int i = 0; i < w->n_meta; ++i) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->meta_keys);
    free(w->meta_values);
    memset(w, 0, sizeof *w);
}
