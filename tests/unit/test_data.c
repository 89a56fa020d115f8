/*
 * Data sets: the IDX, CIFAR and .npy readers on files written here (raw and
 * gzip'ed, every accepted dtype and layout) against the pixels and labels
 * written; shards, shuffles, class subsets, validation split, augmentation,
 * prefetch and resume; every broken or hostile file refused with
 * DAT_ERR_FORMAT and a message naming it; the fuzz corpus replayed; and
 * Debian's Fashion-MNIST when the package is installed.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "check_util.h"
#include "data/augment.h"
#include "data/reader.h"
#include "data/shuffle.h"

static dat_ctx *ctx;
static char dir[64];

static void setup(void)
{
    ck_assert_dat_ok(dat_ctx_create(&ctx, NULL));
    snprintf(dir, sizeof dir, "/tmp/dat_data_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    dat_ctx_destroy(ctx);
}

/* ---------------- writing test files ---------------- */

/* A path in the test's folder; a ring of buffers so a few can be alive. */
static const char *tpath(const char *name)
{
    static char ring[16][160];
    static int next;
    char *p = ring[next++ % 16];
    snprintf(p, sizeof ring[0], "%s/%s", dir, name);
    return p;
}

static const char *write_file(const char *name, const void *data, size_t n)
{
    const char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    return p;
}

static unsigned char *gzip_bytes(const unsigned char *in, size_t n, size_t *out_n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, n) + 64;
    unsigned char *out = malloc(cap);
    z.next_in = (unsigned char *)in;
    z.avail_in = (unsigned)n;
    z.next_out = out;
    z.avail_out = (unsigned)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* The test pattern: pixel (c, y, x) of sample i. */
static unsigned char px_u8(int64_t i, int c, int y, int x)
{
    return (unsigned char)((i * 31 + c * 17 + y * 5 + x * 3) & 255);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static unsigned char *idx_images(int n, int h, int w, size_t *size)
{
    *size = 16 + (size_t)n * h * w;
    unsigned char *b = malloc(*size);
    put_be32(b, 0x803);
    put_be32(b + 4, (uint32_t)n);
    put_be32(b + 8, (uint32_t)h);
    put_be32(b + 12, (uint32_t)w);
    for (int i = 0; i < n; ++i)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x)
                b[16 + ((size_t)i * h + y) * w + x] = px_u8(i, 0, y, x);
    return b;
}

static unsigned char *idx_labels(int n, int classes, size_t *size)
{
    *size = 8 + (size_t)n;
    unsigned char *b = malloc(*size);
    put_be32(b, 0x801);
    put_be32(b + 4, (uint32_t)n);
    for (int i = 0; i < n; ++i)
        b[8 + i] = (unsigned char)((i * 7) % classes);
    return b;
}

/* Writes name (and name.gz when gz) with the bytes given; returns the path. */
static const char *write_maybe_gz(const char *name, const unsigned char *b, size_t n, int gz)
{
    if (!gz)
        return write_file(name, b, n);
    size_t zn;
    unsigned char *z = gzip_bytes(b, n, &zn);
    const char *p = write_file(name, z, zn);
    free(z);
    return p;
}

/* A .npy with the given header dict text (padded as NumPy pads it). */
static const char *write_npy_dict(const char *name, int major, const char *dict,
                                  const void *data, size_t nbytes)
{
    size_t len_bytes = major == 1 ? 2 : 4, pre = 8 + len_bytes, dl = strlen(dict);
    size_t hlen = dl + 1;
    hlen += (64 - (pre + hlen) % 64) % 64;
    size_t total = pre + hlen + nbytes;
    unsigned char *b = calloc(1, total);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    for (size_t k = 0; k < len_bytes; ++k)
        b[8 + k] = (unsigned char)(hlen >> (8 * k));
    memset(b + pre, ' ', hlen);
    memcpy(b + pre, dict, dl);
    b[pre + hlen - 1] = '\n';
    if (nbytes)
        memcpy(b + pre + hlen, data, nbytes);
    const char *p = write_file(name, b, total);
    free(b);
    return p;
}

static const char *write_npy(const char *name, const char *descr, const char *shape,
                             const void *data, size_t nbytes)
{
    char dict[256];
    snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr,
             shape);
    return write_npy_dict(name, 1, dict, data, nbytes);
}

/* ---------------- reading datasets ---------------- */

static dat_dataset_options base_opts(dat_dataset_format f, const char *images, const char *labels)
{
    dat_dataset_options o;
    dat_dataset_options_init(&o);
    o.format = f;
    o.images_path = images;
    o.labels_path = labels;
    o.shuffle = 0;
    return o;
}

/* Every batch of the current epoch, concatenated. */
typedef struct epoch_data {
    float *x;
    int32_t *y;
    int64_t rows;
    int64_t batches;
} epoch_data;

static void free_epoch(epoch_data *e)
{
    free(e->x);
    free(e->y);
    memset(e, 0, sizeof *e);
}

static epoch_data read_epoch(dat_dataset *ds, int batch_size, int labeled)
{
    int32_t c, h, w;
    ck_assert_dat_ok(dat_dataset_sample_shape(ds, &c, &h, &w));
    int64_t elems = (int64_t)c * h * w, n;
    ck_assert_dat_ok(dat_dataset_num_samples(ds, &n));
    int64_t xs[4] = {batch_size, c, h, w}, ys[1] = {batch_size};
    dat_tensor *x, *y = NULL;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    if (labeled)
        ck_assert_dat_ok(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    epoch_data e = {malloc((size_t)(n * elems) * sizeof(float)), malloc((size_t)n * 4), 0, 0};
    float *bx = malloc((size_t)(batch_size * elems) * sizeof(float));
    int32_t *by = malloc((size_t)batch_size * 4);
    for (;;) {
        int32_t count = -1;
        ck_assert_dat_ok(dat_dataset_next_batch(ds, x, y, &count));
        if (count == 0)
            break;
        ck_assert_int_le(e.rows + count, n);
        ck_assert_dat_ok(dat_tensor_read(x, bx, (size_t)(batch_size * elems) * sizeof(float)));
        memcpy(e.x + e.rows * elems, bx, (size_t)(count * elems) * sizeof(float));
        if (y) {
            ck_assert_dat_ok(dat_tensor_read(y, by, (size_t)batch_size * 4));
            memcpy(e.y + e.rows, by, (size_t)count * 4);
        }
        e.rows += count;
        e.batches += 1;
    }
    free(bx);
    free(by);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    return e;
}

static dat_dataset *open_ok(const dat_dataset_options *o)
{
    dat_dataset *ds = NULL;
    ck_assert_dat_ok(dat_dataset_open(&ds, ctx, o));
    ck_assert_ptr_nonnull(ds);
    return ds;
}

/* Asserts that sample row r of e is the test pattern of sample i. */
static void check_pattern_row(const epoch_data *e, int64_t r, int64_t i, int c, int h, int w)
{
    const float *x = e->x + r * (int64_t)c * h * w;
    for (int ch = 0; ch < c; ++ch)
        for (int y = 0; y < h; ++y)
            for (int xx = 0; xx < w; ++xx) {
                float want = (float)px_u8(i, ch, y, xx) / 255.0f;
                float got = x[(ch * h + y) * w + xx];
                ck_assert_msg(got == want, "row %lld (sample %lld) pixel (%d, %d, %d): got %.9g, "
                              "want %.9g", (long long)r, (long long)i, ch, y, xx, got, want);
            }
}

/* ---------------- IDX ---------------- */

static void check_idx(int gz)
{
    enum { N = 37, H = 5, W = 6 };
    size_t ni, nl;
    unsigned char *bi = idx_images(N, H, W, &ni), *bl = idx_labels(N, 10, &nl);
    const char *pi = write_maybe_gz(gz ? "img.gz" : "img", bi, ni, gz);
    const char *pl = write_maybe_gz(gz ? "lab.gz" : "lab", bl, nl, gz);
    dat_dataset_options o = base_opts(DAT_DATASET_IDX, pi, pl);
    o.batch_size = 8;
    dat_dataset *ds = open_ok(&o);
    int32_t c, h, w, k;
    int64_t n, nb;
    ck_assert_dat_ok(dat_dataset_sample_shape(ds, &c, &h, &w));
    ck_assert_int_eq(c, 1);
    ck_assert_int_eq(h, H);
    ck_assert_int_eq(w, W);
    ck_assert_dat_ok(dat_dataset_num_samples(ds, &n));
    ck_assert_int_eq(n, N);
    ck_assert_dat_ok(dat_dataset_num_classes(ds, &k));
    ck_assert_int_eq(k, 10);
    ck_assert_dat_ok(dat_dataset_batches_per_epoch(ds, &nb));
    ck_assert_int_eq(nb, 5); /* ceil(37 / 8) */
    epoch_data e = read_epoch(ds, 8, 1);
    ck_assert_int_eq(e.rows, N);
    ck_assert_int_eq(e.batches, 5);
    for (int i = 0; i < N; ++i) {
        check_pattern_row(&e, i, i, 1, H, W);
        ck_assert_int_eq(e.y[i], (i * 7) % 10);
    }
    free_epoch(&e);
    dat_dataset_destroy(ds);
    free(bi);
    free(bl);
}

START_TEST(test_idx_raw)
{
    check_idx(0);
}
END_TEST

START_TEST(test_idx_gzip)
{
    check_idx(1);
}
END_TEST

START_TEST(test_idx_parse_memory)
{
    /* The parse functions directly, also a gzip file of two members. */
    size_t ni;
    unsigned char *bi = idx_images(3, 2, 2, &ni);
    size_t z1, z2;
    unsigned char *a = gzip_bytes(bi, 10, &z1), *b = gzip_bytes(bi + 10, ni - 10, &z2);
    unsigned char *two = malloc(z1 + z2);
    memcpy(two, a, z1);
    memcpy(two + z1, b, z2);
    dat_data_source src;
    ck_assert_dat_ok(dat_idx_parse_images("two-members.gz", two, z1 + z2, &src));
    ck_assert_int_eq(src.n, 3);
    ck_assert_mem_eq(src.pixels, bi + 16, 12);
    dat_data_source_free(&src);
    free(a);
    free(b);
    free(two);
    free(bi);
}
END_TEST

/* ---------------- CIFAR ---------------- */

static unsigned char *cifar_records(int n, int first, int cifar100, size_t *size)
{
    size_t lb = cifar100 ? 2 : 1, rec = lb + 3072;
    *size = rec * (size_t)n;
    unsigned char *b = malloc(*size);
    for (int r = 0; r < n; ++r) {
        int i = first + r;
        unsigned char *p = b + rec * (size_t)r;
        if (cifar100) {
            p[0] = (unsigned char)(i % 20);
            p[1] = (unsigned char)((i * 13) % 100);
        } else {
            p[0] = (unsigned char)((i * 3) % 10);
        }
        for (int c = 0; c < 3; ++c)
            for (int y = 0; y < 32; ++y)
                for (int x = 0; x < 32; ++x)
                    p[lb + (size_t)(c * 32 + y) * 32 + x] = px_u8(i, c, y, x);
    }
    return b;
}

START_TEST(test_cifar10_files)
{
    size_t s1, s2, s3;
    unsigned char *b1 = cifar_records(4, 0, 0, &s1), *b2 = cifar_records(3, 4, 0, &s2),
                  *b3 = cifar_records(5, 7, 0, &s3);
    const char *extra[2] = {write_file("data_batch_2.bin", b2, s2),
                            write_file("data_batch_3.bin", b3, s3)};
    dat_dataset_options o = base_opts(DAT_DATASET_CIFAR10, write_file("data_batch_1.bin", b1, s1),
                                      NULL);
    o.extra_paths = extra;
    o.num_extra_paths = 2;
    o.batch_size = 5;
    dat_dataset *ds = open_ok(&o);
    int32_t k;
    ck_assert_dat_ok(dat_dataset_num_classes(ds, &k));
    ck_assert_int_eq(k, 10);
    epoch_data e = read_epoch(ds, 5, 1);
    ck_assert_int_eq(e.rows, 12);
    for (int i = 0; i < 12; ++i) {
        check_pattern_row(&e, i, i, 3, 32, 32);
        ck_assert_int_eq(e.y[i], (i * 3) % 10);
    }
    free_epoch(&e);
    dat_dataset_destroy(ds);
    free(b1);
    free(b2);
    free(b3);
}
END_TEST

START_TEST(test_cifar100_fine_labels)
{
    size_t s;
    unsigned char *b = cifar_records(9, 0, 1, &s);
    dat_dataset_options o = base_opts(DAT_DATASET_CIFAR100, write_file("train.bin", b, s), NULL);
    o.batch_size = 4;
    dat_dataset *ds = open_ok(&o);
    int32_t k;
    ck_assert_dat_ok(dat_dataset_num_classes(ds, &k));
    ck_assert_int_eq(k, 100);
    epoch_data e = read_epoch(ds, 4, 1);
    ck_assert_int_eq(e.rows, 9);
    for (int i = 0; i < 9; ++i) {
        check_pattern_row(&e, i, i, 3, 32, 32);
        ck_assert_int_eq(e.y[i], (i * 13) % 100);
    }
    free_epoch(&e);
    dat_dataset_destroy(ds);
    free(b);
}
END_TEST

/* ---------------- .npy ---------------- */

enum { NPY_N = 6, NPY_C = 3, NPY_H = 4, NPY_W = 5 };

/* NPY_N samples of the pattern in NCHW or NHWC, as uint8 or float32. */
static void *npy_pixels(int nhwc, int f32, int c, size_t *nbytes)
{
    size_t count = (size_t)NPY_N * c * NPY_H * NPY_W, item = f32 ? 4 : 1;
    unsigned char *b = malloc(count * item);
    size_t k = 0;
    for (int i = 0; i < NPY_N; ++i)
        for (int a = 0; a < (nhwc ? NPY_H : c); ++a)
            for (int bb = 0; bb < (nhwc ? NPY_W : NPY_H); ++bb)
                for (int d = 0; d < (nhwc ? c : NPY_W); ++d, ++k) {
                    int ch = nhwc ? d : a, y = nhwc ? a : bb, x = nhwc ? bb : d;
                    unsigned char v = px_u8(i, ch, y, x);
                    if (f32) {
                        float f = (float)v / 255.0f;
                        memcpy(b + k * 4, &f, 4);
                    } else {
                        b[k] = v;
                    }
                }
    *nbytes = count * item;
    return b;
}

static void check_npy_images(const char *descr, int nhwc, int c, dat_dataset_layout layout,
                             const char *labels_path, int label_mul)
{
    size_t nb;
    void *px = npy_pixels(nhwc, descr[1] == 'f', c, &nb);
    char shape[64];
    if (c == 0)
        snprintf(shape, sizeof shape, "(%d, %d, %d)", NPY_N, NPY_H, NPY_W);
    else if (nhwc)
        snprintf(shape, sizeof shape, "(%d, %d, %d, %d)", NPY_N, NPY_H, NPY_W, c);
    else
        snprintf(shape, sizeof shape, "(%d, %d, %d, %d)", NPY_N, c, NPY_H, NPY_W);
    if (c == 0) {
        free(px);
        px = npy_pixels(0, descr[1] == 'f', 1, &nb);
    }
    dat_dataset_options o =
        base_opts(DAT_DATASET_NPY, write_npy("img.npy", descr, shape, px, nb), labels_path);
    o.layout = layout;
    o.batch_size = 4;
    dat_dataset *ds = open_ok(&o);
    int cc = c ? c : 1;
    int32_t gc, gh, gw;
    ck_assert_dat_ok(dat_dataset_sample_shape(ds, &gc, &gh, &gw));
    ck_assert_msg(gc == cc && gh == NPY_H && gw == NPY_W, "%s %s: shape %d x %d x %d", descr,
                  shape, gc, gh, gw);
    epoch_data e = read_epoch(ds, 4, labels_path != NULL);
    ck_assert_int_eq(e.rows, NPY_N);
    for (int i = 0; i < NPY_N; ++i) {
        check_pattern_row(&e, i, i, cc, NPY_H, NPY_W);
        if (labels_path)
            ck_assert_int_eq(e.y[i], (i * label_mul) % 7);
    }
    free_epoch(&e);
    dat_dataset_destroy(ds);
    free(px);
}

START_TEST(test_npy_images_dtypes_layouts)
{
    int32_t lab[NPY_N];
    for (int i = 0; i < NPY_N; ++i)
        lab[i] = (i * 3) % 7;
    char shape[16];
    snprintf(shape, sizeof shape, "(%d,)", NPY_N);
    const char *lp = write_npy("lab.npy", "<i4", shape, lab, sizeof lab);
    const char *u8[] = {"|u1", "<f4"};
    for (int t = 0; t < 2; ++t) {
        check_npy_images(u8[t], 0, 0, DAT_LAYOUT_AUTO, lp, 3);            /* (N, H, W) */
        check_npy_images(u8[t], 0, 3, DAT_LAYOUT_AUTO, lp, 3);            /* (N, 3, H, W) */
        check_npy_images(u8[t], 1, 3, DAT_LAYOUT_AUTO, lp, 3);            /* (N, H, W, 3) */
        check_npy_images(u8[t], 1, 1, DAT_LAYOUT_AUTO, lp, 3);            /* (N, H, W, 1) */
        check_npy_images(u8[t], 0, 2, DAT_LAYOUT_NCHW, lp, 3);            /* explicit */
        check_npy_images(u8[t], 1, 2, DAT_LAYOUT_NHWC, lp, 3);
    }
    check_npy_images("|u1", 0, 3, DAT_LAYOUT_AUTO, NULL, 0); /* unlabeled */
}
END_TEST

START_TEST(test_npy_label_dtypes)
{
    char shape[16], shape2[16];
    snprintf(shape, sizeof shape, "(%d,)", NPY_N);
    snprintf(shape2, sizeof shape2, "(%dL, 1)", NPY_N); /* Python 2's long suffix too */
    unsigned char l8[NPY_N];
    int32_t l32[NPY_N];
    int64_t l64[NPY_N];
    for (int i = 0; i < NPY_N; ++i)
        l8[i] = (unsigned char)(l32[i] = (int32_t)(l64[i] = (i * 5) % 7));
    check_npy_images("|u1", 0, 3, DAT_LAYOUT_AUTO, write_npy("l8.npy", "|u1", shape, l8, sizeof l8),
                     5);
    check_npy_images("|u1", 0, 3, DAT_LAYOUT_AUTO,
                     write_npy("l32.npy", "<i4", shape2, l32, sizeof l32), 5);
    check_npy_images("|u1", 0, 3, DAT_LAYOUT_AUTO,
                     write_npy("l64.npy", "<i8", shape, l64, sizeof l64), 5);
    /* Version 2 and 3 headers (4-byte length), double quotes. */
    char dict[160];
    snprintf(dict, sizeof dict, "{\"descr\": \"<i8\", \"fortran_order\": False, \"shape\": %s}",
             shape);
    check_npy_images("|u1", 0, 3, DAT_LAYOUT_AUTO,
                     write_npy_dict("v2.npy", 2, dict, l64, sizeof l64), 5);
    check_npy_images("|u1", 0, 3, DAT_LAYOUT_AUTO,
                     write_npy_dict("v3.npy", 3, dict, l64, sizeof l64), 5);
}
END_TEST

START_TEST(test_npy_ambiguous_layout)
{
    unsigned char px[2 * 3 * 4 * 3] = {0};
    dat_dataset_options o =
        base_opts(DAT_DATASET_NPY, write_npy("amb.npy", "|u1", "(2, 3, 4, 3)", px, sizeof px),
                  NULL);
    dat_dataset *ds = (dat_dataset *)0x1;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &o), DAT_ERR_INVALID_ARG, "layout");
    ck_assert_ptr_null(ds);
    o.layout = DAT_LAYOUT_NHWC;
    ds = open_ok(&o);
    int32_t c, h, w;
    ck_assert_dat_ok(dat_dataset_sample_shape(ds, &c, &h, &w));
    ck_assert_int_eq(c, 3);
    ck_assert_int_eq(h, 3);
    ck_assert_int_eq(w, 4);
    /* Unlabeled: no classes, and labels cannot be asked for. */
    int32_t k = -1, count = -1;
    ck_assert_dat_ok(dat_dataset_num_classes(ds, &k));
    ck_assert_int_eq(k, 0);
    int64_t xs[4] = {2, 3, 3, 4}, ys[1] = {2};
    dat_tensor *x, *y;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    ck_assert_dat_err(dat_dataset_next_batch(ds, x, y, &count), DAT_ERR_INVALID_ARG, "no labels");
    ck_assert_dat_ok(dat_dataset_next_batch(ds, x, NULL, &count));
    ck_assert_int_eq(count, 2);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_dataset_destroy(ds);
}
END_TEST

/* ---------------- shards, shuffle, subset, split ---------------- */

/* n samples of c x h x w whose label is their index (so a row names its sample). */
static dat_dataset_options indexed_opts(int n, int c, int h, int w)
{
    size_t count = (size_t)n * c * h * w;
    unsigned char *px = malloc(count);
    size_t k = 0;
    for (int i = 0; i < n; ++i)
        for (int ch = 0; ch < c; ++ch)
            for (int y = 0; y < h; ++y)
                for (int x = 0; x < w; ++x)
                    px[k++] = px_u8(i, ch, y, x);
    int32_t *lab = malloc((size_t)n * 4);
    for (int i = 0; i < n; ++i)
        lab[i] = i;
    char shape[64], lshape[32];
    snprintf(shape, sizeof shape, "(%d, %d, %d, %d)", n, c, h, w);
    snprintf(lshape, sizeof lshape, "(%d,)", n);
    dat_dataset_options o = base_opts(DAT_DATASET_NPY, write_npy("ix.npy", "|u1", shape, px, count),
                                      write_npy("ixl.npy", "<i4", lshape, lab, (size_t)n * 4));
    o.layout = DAT_LAYOUT_NCHW;
    free(px);
    free(lab);
    return o;
}

/* A .npy of ImageNet's shape larger than this process may hold (6 GB, sparse:
 * zeros but for one sample written in place): the images are mapped, not
 * read, so opening it and serving a batch of a rank's shard reads the pages of
 * that batch only. The NHWC sample arrives as CHW floats. */
START_TEST(test_npy_larger_than_memory)
{
    enum { N = 40000, H = 224, W = 224, C = 3 };
    const size_t sample = (size_t)H * W * C;
    const char *images = write_npy("huge.npy", "|u1", "(40000, 224, 224, 3)", NULL, 0);
    struct stat st;
    ck_assert_int_eq(stat(images, &st), 0);
    off_t header = st.st_size;
    ck_assert_int_eq(truncate(images, header + (off_t)(N * sample)), 0);
    unsigned char *px = malloc(sample);
    for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x)
            for (int c = 0; c < C; ++c)
                px[((size_t)y * W + x) * C + c] = px_u8(7, c, y, x);
    FILE *f = fopen(images, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseeko(f, header + (off_t)(7 * sample), SEEK_SET), 0);
    ck_assert_uint_eq(fwrite(px, 1, sample, f), sample);
    fclose(f);
    free(px);
    int32_t *lab = malloc(N * sizeof *lab);
    for (int i = 0; i < N; ++i)
        lab[i] = i % 1000;
    dat_dataset_options o =
        base_opts(DAT_DATASET_NPY, images, write_npy("hugel.npy", "<i4", "(40000,)", lab,
                                                     N * sizeof *lab));
    free(lab);
    o.batch_size = 8;
    o.world_size = 4;
    o.rank = 0; /* unshuffled: samples 0 .. 7 first */
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    dat_dataset *ds = open_ok(&o);
    int64_t shape[4] = {8, C, H, W}, ys[1] = {8};
    dat_tensor *x = NULL, *y = NULL;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, shape));
    ck_assert_dat_ok(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    int32_t count = 0;
    ck_assert_dat_ok(dat_dataset_next_batch(ds, x, y, &count));
    ck_assert_int_eq(count, 8);
    getrusage(RUSAGE_SELF, &after);
    float *xv = malloc(8 * sample * sizeof *xv);
    ck_assert_dat_ok(dat_tensor_read(x, xv, 8 * sample * sizeof *xv));
    for (int c = 0; c < C; ++c)
        for (int yy = 0; yy < H; yy += 37)
            for (int xx = 0; xx < W; xx += 41) {
                float got = xv[((size_t)(7 * C + c) * H + yy) * W + xx];
                ck_assert_msg(got == (float)px_u8(7, c, yy, xx) / 255.0f,
                              "sample 7, channel %d, (%d, %d): %g", c, yy, xx, got);
                ck_assert(xv[((size_t)c * H + yy) * W + xx] == 0.0f); /* sample 0: zeros */
            }
    long grown_mib = (after.ru_maxrss - before.ru_maxrss) / 1024;
    ck_assert_msg(grown_mib < 512, "opening a 6 GB .npy grew the peak RSS by %ld MiB", grown_mib);
    free(xv);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_dataset_destroy(ds);
    unlink(images);
}
END_TEST

START_TEST(test_shards_disjoint_equal)
{
    enum { N = 50, W = 3 }; /* 50 = 3 * 16 + 2: two samples left out per epoch */
    dat_dataset_options o = indexed_opts(N, 1, 2, 2);
    o.world_size = W;
    o.batch_size = 5;
    for (int shuffle = 0; shuffle < 2; ++shuffle)
        for (int64_t epoch = 0; epoch < 3; ++epoch) {
            int seen[N] = {0};
            int total = 0;
            for (int r = 0; r < W; ++r) {
                o.rank = r;
                o.shuffle = shuffle;
                o.seed = 1234;
                dat_dataset *ds = open_ok(&o);
                int64_t n;
                ck_assert_dat_ok(dat_dataset_num_samples(ds, &n));
                ck_assert_int_eq(n, N / W);
                ck_assert_dat_ok(dat_dataset_set_epoch(ds, epoch));
                epoch_data e = read_epoch(ds, 5, 1);
                ck_assert_int_eq(e.rows, N / W);
                for (int64_t i = 0; i < e.rows; ++i) {
                    int s = e.y[i];
                    ck_assert_msg(s >= 0 && s < N, "label %d out of range", s);
                    ck_assert_msg(seen[s] == 0, "shuffle %d epoch %lld: sample %d served by rank "
                                  "%d and an earlier rank", shuffle, (long long)epoch, s, r);
                    seen[s] = 1;
                    check_pattern_row(&e, i, s, 1, 2, 2);
                }
                total += (int)e.rows;
                free_epoch(&e);
                dat_dataset_destroy(ds);
            }
            ck_assert_int_eq(total, W * (N / W));
            if (!shuffle) /* file order: the union is the first 48, in blocks */
                for (int s = 0; s < N; ++s)
                    ck_assert_msg(seen[s] == (s < W * (N / W)), "sample %d: served %d", s,
                                  seen[s]);
        }
}
END_TEST

START_TEST(test_shuffle_per_epoch_and_seed)
{
    enum { N = 64 };
    dat_dataset_options o = indexed_opts(N, 1, 1, 2);
    o.shuffle = 1;
    o.batch_size = 64;
    o.seed = 7;
    dat_dataset *a = open_ok(&o), *b = open_ok(&o);
    o.seed = 8;
    dat_dataset *c = open_ok(&o);
    epoch_data a0 = read_epoch(a, 64, 1), b0 = read_epoch(b, 64, 1), c0 = read_epoch(c, 64, 1);
    ck_assert_dat_ok(dat_dataset_set_epoch(a, 1));
    epoch_data a1 = read_epoch(a, 64, 1);
    ck_assert_mem_eq(a0.y, b0.y, N * 4); /* same seed, same epoch: same order */
    int same01 = 0, same_seed = 0, identity = 0;
    int seen[N] = {0};
    for (int i = 0; i < N; ++i) {
        same01 += a0.y[i] == a1.y[i];
        same_seed += a0.y[i] == c0.y[i];
        identity += a0.y[i] == i;
        seen[a0.y[i]] += 1;
    }
    for (int i = 0; i < N; ++i)
        ck_assert_msg(seen[i] == 1, "sample %d served %d times in epoch 0", i, seen[i]);
    /* A random permutation of 64 fixes about one position; 16 would be wildly unlikely. */
    ck_assert_msg(same01 < 16, "epochs 0 and 1 agree on %d of %d positions", same01, N);
    ck_assert_msg(same_seed < 16, "seeds 7 and 8 agree on %d of %d positions", same_seed, N);
    ck_assert_msg(identity < 16, "epoch 0 keeps %d of %d samples in place", identity, N);
    /* Back to epoch 0: the same order again. */
    ck_assert_dat_ok(dat_dataset_set_epoch(a, 0));
    epoch_data a0b = read_epoch(a, 64, 1);
    ck_assert_mem_eq(a0.y, a0b.y, N * 4);
    ck_assert_mem_eq(a0.x, a0b.x, N * 2 * sizeof(float));
    epoch_data *all[] = {&a0, &b0, &c0, &a1, &a0b};
    for (int i = 0; i < 5; ++i)
        free_epoch(all[i]);
    dat_dataset_destroy(a);
    dat_dataset_destroy(b);
    dat_dataset_destroy(c);
}
END_TEST

START_TEST(test_shuffle_internals)
{
    /* The permutation is one, and uniform_below stays below n at the extremes. */
    int64_t perm[1000];
    dat_shuffle_permutation(3, 0, 1000, perm);
    char hit[1000] = {0};
    for (int i = 0; i < 1000; ++i) {
        ck_assert(perm[i] >= 0 && perm[i] < 1000);
        ck_assert_msg(!hit[perm[i]], "%lld appears twice", (long long)perm[i]);
        hit[perm[i]] = 1;
    }
    ck_assert_uint_eq(dat_uniform_below(UINT64_MAX, 10), 9);
    ck_assert_uint_eq(dat_uniform_below(0, 10), 0);
    ck_assert_uint_eq(dat_uniform_below(UINT64_C(1) << 63, 10), 5);
    ck_assert_uint_eq(dat_uniform_below(UINT64_MAX, UINT64_MAX), UINT64_MAX - 1);
    /* Position 0 of a permutation of 4 is uniform: chi-square over 40000 draws
     * with 3 degrees of freedom; 16.27 is its 0.999 quantile. */
    int counts[4] = {0};
    for (uint64_t s = 0; s < 40000; ++s) {
        int64_t p[4];
        dat_shuffle_permutation(11, s, 4, p);
        counts[p[0]] += 1;
    }
    double chi2 = 0;
    for (int k = 0; k < 4; ++k)
        chi2 += (counts[k] - 10000.0) * (counts[k] - 10000.0) / 10000.0;
    ck_assert_msg(chi2 < 16.27, "first element not uniform: counts %d %d %d %d, chi2 %.2f",
                  counts[0], counts[1], counts[2], counts[3], chi2);
}
END_TEST

START_TEST(test_class_subset)
{
    size_t ni, nl;
    unsigned char *bi = idx_images(40, 2, 3, &ni), *bl = idx_labels(40, 10, &nl);
    dat_dataset_options o = base_opts(DAT_DATASET_IDX, write_file("i", bi, ni),
                                      write_file("l", bl, nl));
    const int32_t classes[] = {7, 2, 4};
    o.classes = classes;
    o.num_subset_classes = 3;
    o.batch_size = 3;
    dat_dataset *ds = open_ok(&o);
    int32_t k;
    ck_assert_dat_ok(dat_dataset_num_classes(ds, &k));
    ck_assert_int_eq(k, 3);
    epoch_data e = read_epoch(ds, 3, 1);
    int64_t r = 0;
    for (int i = 0; i < 40; ++i) {
        int orig = (i * 7) % 10, want = orig == 7 ? 0 : orig == 2 ? 1 : orig == 4 ? 2 : -1;
        if (want < 0)
            continue;
        ck_assert_msg(r < e.rows, "sample %d (class %d) missing", i, orig);
        ck_assert_msg(e.y[r] == want, "row %lld: label %d, want %d", (long long)r, e.y[r], want);
        check_pattern_row(&e, r, i, 1, 2, 3);
        ++r;
    }
    ck_assert_int_eq(r, e.rows);
    ck_assert_int_eq(e.rows, 12); /* classes 7, 2, 4 each 4 of 40 */
    free_epoch(&e);
    dat_dataset_destroy(ds);

    const int32_t bad[] = {3, 10};
    o.classes = bad;
    o.num_subset_classes = 2;
    ds = (dat_dataset *)0x1;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &o), DAT_ERR_INVALID_ARG,
                      "classes[1] = 10 is out of range: the data has 10 classes");
    ck_assert_ptr_null(ds);
    const int32_t dup[] = {3, 3};
    o.classes = dup;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &o), DAT_ERR_INVALID_ARG, "both 3");
    free(bi);
    free(bl);
}
END_TEST

/* A subset of a file whose largest label is 2^31 - 2 needs memory for the
 * subset, not a map over every class up to that label (8 GiB, filled, from a
 * 136-byte file). The open runs in a child whose address space is limited to
 * 1 GiB, where the sanitizers' shadow memory does not stand in the way. */
START_TEST(test_class_subset_of_huge_labels)
{
    static const unsigned char px[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const int32_t labels[2] = {0, 0x7ffffffe};
    dat_dataset_options o =
        base_opts(DAT_DATASET_NPY, write_npy("huge_i.npy", "|u1", "(2, 2, 2)", px, sizeof px),
                  write_npy("huge_l.npy", "<i4", "(2,)", labels, sizeof labels));
    const int32_t classes[] = {0};
    o.classes = classes;
    o.num_subset_classes = 1;
    o.batch_size = 1;
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
        struct rlimit lim = {(rlim_t)1 << 30, (rlim_t)1 << 30};
        setrlimit(RLIMIT_AS, &lim);
#endif
        dat_dataset *ds = NULL;
        int64_t n = 0;
        dat_status st = dat_dataset_open(&ds, ctx, &o);
        if (st == DAT_OK)
            st = dat_dataset_num_samples(ds, &n);
        if (st != DAT_OK)
            fprintf(stderr, "test_class_subset_of_huge_labels: %s\n", dat_last_error());
        _exit(st == DAT_OK && n == 1 ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the subset's open failed");
}
END_TEST

START_TEST(test_validation_split)
{
    enum { N = 30 };
    dat_dataset_options o = indexed_opts(N, 1, 1, 1);
    o.shuffle = 1;
    o.batch_size = 4;
    for (int mode = 0; mode < 2; ++mode) {
        o.validation_count = mode == 0 ? 7 : 0;
        o.validation_fraction = mode == 0 ? 0.0 : 0.25; /* floor(7.5) = 7 */
        o.part = DAT_PART_TRAIN;
        dat_dataset *tr = open_ok(&o);
        o.part = DAT_PART_VALIDATION;
        dat_dataset *va = open_ok(&o);
        int64_t nt, nv;
        ck_assert_dat_ok(dat_dataset_num_samples(tr, &nt));
        ck_assert_dat_ok(dat_dataset_num_samples(va, &nv));
        ck_assert_int_eq(nt, N - 7);
        ck_assert_int_eq(nv, 7);
        for (int64_t epoch = 0; epoch < 2; ++epoch) {
            ck_assert_dat_ok(dat_dataset_set_epoch(tr, epoch));
            ck_assert_dat_ok(dat_dataset_set_epoch(va, epoch));
            epoch_data et = read_epoch(tr, 4, 1), ev = read_epoch(va, 4, 1);
            int seen[N] = {0};
            for (int64_t i = 0; i < et.rows; ++i) {
                ck_assert_msg(et.y[i] < N - 7, "training served sample %d of the held-out tail",
                              et.y[i]);
                seen[et.y[i]] += 1;
            }
            for (int64_t i = 0; i < ev.rows; ++i) {
                ck_assert_msg(ev.y[i] >= N - 7, "validation served training sample %d",
                              ev.y[i]);
                seen[ev.y[i]] += 1;
            }
            for (int s = 0; s < N; ++s)
                ck_assert_msg(seen[s] == 1, "sample %d served %d times", s, seen[s]);
            free_epoch(&et);
            free_epoch(&ev);
        }
        dat_dataset_destroy(tr);
        dat_dataset_destroy(va);
    }
    /* limit keeps the first samples of the files, before the split. */
    o.validation_fraction = 0;
    o.validation_count = 3;
    o.limit = 12;
    o.part = DAT_PART_VALIDATION;
    o.shuffle = 0;
    dat_dataset *lim = open_ok(&o);
    epoch_data el = read_epoch(lim, 4, 1);
    ck_assert_int_eq(el.rows, 3);
    for (int i = 0; i < 3; ++i)
        ck_assert_int_eq(el.y[i], 9 + i);
    free_epoch(&el);
    dat_dataset_destroy(lim);
    o.limit = 0;
    /* Splits that leave nothing are refused. */
    dat_dataset *ds;
    o.validation_fraction = 0;
    o.validation_count = N;
    o.part = DAT_PART_TRAIN;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &o), DAT_ERR_INVALID_ARG, "no training");
    o.validation_count = 0;
    o.part = DAT_PART_VALIDATION;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &o), DAT_ERR_INVALID_ARG, "empty");
}
END_TEST

/* ---------------- batches, augmentation, prefetch, resume ---------------- */

START_TEST(test_short_batch_and_drop_last)
{
    dat_dataset_options o = indexed_opts(10, 1, 2, 2);
    o.batch_size = 4;
    dat_dataset *ds = open_ok(&o);
    int64_t xs[4] = {4, 1, 2, 2}, ys[1] = {4};
    dat_tensor *x, *y;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    int32_t count;
    ck_assert_dat_ok(dat_dataset_next_batch(ds, x, y, &count));
    ck_assert_int_eq(count, 4);
    ck_assert_dat_ok(dat_dataset_next_batch(ds, x, y, &count));
    ck_assert_int_eq(count, 4);
    ck_assert_dat_ok(dat_dataset_next_batch(ds, x, y, &count));
    ck_assert_int_eq(count, 2); /* 10 = 4 + 4 + 2: rows 2, 3 padded */
    float *px;
    int32_t *py;
    ck_assert_dat_ok(dat_tensor_host_data(x, (void **)&px));
    ck_assert_dat_ok(dat_tensor_host_data(y, (void **)&py));
    ck_assert_int_eq(py[0], 8);
    ck_assert_int_eq(py[1], 9);
    ck_assert_int_eq(py[2], -1);
    ck_assert_int_eq(py[3], -1);
    for (int i = 8; i < 16; ++i)
        ck_assert_msg(px[i] == 0.0f, "padding pixel %d = %g", i, px[i]);
    int64_t epoch, batch;
    ck_assert_dat_ok(dat_dataset_get_position(ds, &epoch, &batch));
    ck_assert_int_eq(epoch, 0);
    ck_assert_int_eq(batch, 3);
    ck_assert_dat_ok(dat_dataset_next_batch(ds, x, y, &count));
    ck_assert_int_eq(count, 0); /* the epoch is over, the position stays */
    ck_assert_dat_ok(dat_dataset_get_position(ds, &epoch, &batch));
    ck_assert_int_eq(batch, 3);
    /* A tensor of exactly the short batch's rows is accepted for it. */
    dat_tensor *x2, *y2;
    int64_t xs2[4] = {2, 1, 2, 2}, ys2[1] = {2};
    ck_assert_dat_ok(dat_tensor_create(&x2, ctx, DAT_FLOAT32, 4, xs2));
    ck_assert_dat_ok(dat_tensor_create(&y2, ctx, DAT_INT32, 1, ys2));
    ck_assert_dat_ok(dat_dataset_set_position(ds, 0, 2));
    ck_assert_dat_ok(dat_dataset_next_batch(ds, x2, y2, &count));
    ck_assert_int_eq(count, 2);
    ck_assert_dat_ok(dat_dataset_set_position(ds, 0, 0));
    ck_assert_dat_err(dat_dataset_next_batch(ds, x2, y2, &count), DAT_ERR_INVALID_ARG,
                      "x has 2 rows; this batch needs 4 to 4");
    ck_assert_int_eq(count, 0);
    ck_assert_dat_ok(dat_dataset_get_position(ds, &epoch, &batch));
    ck_assert_int_eq(batch, 0); /* a refused call does not advance */
    dat_dataset_destroy(ds);

    o.drop_last = 1;
    ds = open_ok(&o);
    int64_t nb;
    ck_assert_dat_ok(dat_dataset_batches_per_epoch(ds, &nb));
    ck_assert_int_eq(nb, 2);
    epoch_data e = read_epoch(ds, 4, 1);
    ck_assert_int_eq(e.rows, 8);
    free_epoch(&e);
    dat_dataset_destroy(ds);
    o.batch_size = 11;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &o), DAT_ERR_INVALID_ARG, "no whole batch");
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_tensor_destroy(x2);
    dat_tensor_destroy(y2);
}
END_TEST

/* The augmented sample by its definition: zero-pad by p, crop h x w at
 * (dy, dx), then mirror if flip. */
static void reference_augment(int64_t i, int c, int h, int w, int p, dat_augment_draw d,
                              float *out)
{
    int ph = h + 2 * p, pw = w + 2 * p;
    float *pad = calloc((size_t)c * ph * pw, sizeof *pad);
    for (int ch = 0; ch < c; ++ch)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x)
                pad[((size_t)ch * ph + y + p) * pw + x + p] = (float)px_u8(i, ch, y, x) / 255.0f;
    for (int ch = 0; ch < c; ++ch)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                int cx = d.flip ? w - 1 - x : x;
                out[((size_t)ch * h + y) * w + x] = pad[((size_t)ch * ph + y + d.dy) * pw + cx + d.dx];
            }
    free(pad);
}

START_TEST(test_augment_crop_flip)
{
    enum { N = 40, C = 3, H = 6, W = 7, P = 2 };
    dat_dataset_options o = indexed_opts(N, C, H, W);
    o.shuffle = 1;
    o.seed = 99;
    o.random_crop = 1;
    o.horizontal_flip = 1;
    o.crop_padding = P;
    o.batch_size = 6;
    dat_dataset *ds = open_ok(&o);
    int32_t c, h, w;
    ck_assert_dat_ok(dat_dataset_sample_shape(ds, &c, &h, &w));
    ck_assert(c == C && h == H && w == W); /* shape kept */
    float want[C * H * W];
    int flips = 0, crops = 0;
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
        ck_assert_dat_ok(dat_dataset_set_epoch(ds, epoch));
        epoch_data e = read_epoch(ds, 6, 1);
        ck_assert_int_eq(e.rows, N);
        for (int64_t r = 0; r < N; ++r) {
            int64_t i = e.y[r];
            dat_augment_draw d = dat_augment_sample(99, epoch, i, 1, 1, P);
            ck_assert(d.dy >= 0 && d.dy <= 2 * P && d.dx >= 0 && d.dx <= 2 * P);
            flips += d.flip;
            crops += d.dy != P || d.dx != P;
            reference_augment(i, C, H, W, P, d, want);
            for (int k = 0; k < C * H * W; ++k)
                ck_assert_msg(e.x[r * C * H * W + k] == want[k], "epoch %lld sample %lld "
                              "(dy %d dx %d flip %d) element %d: got %g, want %g",
                              (long long)epoch, (long long)i, d.dy, d.dx, d.flip, k,
                              e.x[r * C * H * W + k], want[k]);
        }
        free_epoch(&e);
    }
    ck_assert_msg(flips > 10 && flips < 70, "%d flips of 80", flips);
    ck_assert_msg(crops > 40, "only %d of 80 crops moved the image", crops);
    dat_dataset_destroy(ds);

    /* The draws: flip probability 1/2 and uniform offsets, over 25000 samples.
     * Bounds are 5 standard deviations. */
    enum { M = 25000 };
    int off[2 * P + 1] = {0};
    int nflip = 0;
    for (int64_t s = 0; s < M; ++s) {
        dat_augment_draw d = dat_augment_sample(5, 3, s, 1, 1, P);
        nflip += d.flip;
        off[d.dy] += 1;
    }
    ck_assert_msg(fabs(nflip - M / 2.0) < 5 * sqrt(M * 0.25), "%d flips of %d", nflip, M);
    double pk = 1.0 / (2 * P + 1), sd = sqrt(M * pk * (1 - pk));
    for (int k = 0; k <= 2 * P; ++k)
        ck_assert_msg(fabs(off[k] - M * pk) < 5 * sd, "offset %d drawn %d times of %d", k,
                      off[k], M);
    /* The renderer alone, from uint8 and float32 storage, CHW and HWC, for
     * paddings up to more than the image (crops that are all zeros). */
    enum { RC = 2, RH = 4, RW = 5 };
    unsigned char u8[RC * RH * RW], u8_hwc[RC * RH * RW];
    float f32s[RC * RH * RW], f32_hwc[RC * RH * RW], got[RC * RH * RW], ref[RC * RH * RW];
    const int pads[] = {0, 1, 3, 9};
    for (int pi = 0; pi < 4; ++pi)
        for (int64_t i = 0; i < 60; ++i) {
            for (int ch = 0; ch < RC; ++ch)
                for (int y = 0; y < RH; ++y)
                    for (int x = 0; x < RW; ++x) {
                        int chw = (ch * RH + y) * RW + x, hwc = (y * RW + x) * RC + ch;
                        u8[chw] = u8_hwc[hwc] = px_u8(i, ch, y, x);
                        f32s[chw] = f32_hwc[hwc] = (float)px_u8(i, ch, y, x) / 255.0f;
                    }
            dat_augment_draw dr = dat_augment_sample(8, 1, i, 1, 1, pads[pi]);
            reference_augment(i, RC, RH, RW, pads[pi], dr, ref);
            for (int t = 0; t < 4; ++t) {
                int f32 = t & 1, hwc = t >> 1;
                const void *px = f32 ? (hwc ? (const void *)f32_hwc : f32s)
                                     : (hwc ? (const void *)u8_hwc : u8);
                dat_augment_render(px, f32 ? DAT_FLOAT32 : DAT_UINT8, hwc, RC, RH, RW, pads[pi],
                                   dr, got);
                for (int k = 0; k < RC * RH * RW; ++k)
                    ck_assert_msg(got[k] == ref[k], "padding %d sample %lld (dy %d dx %d flip "
                                  "%d) %s %s element %d: got %g, want %g", pads[pi],
                                  (long long)i, dr.dy, dr.dx, dr.flip, f32 ? "float32" : "uint8",
                                  hwc ? "HWC" : "CHW", k, got[k], ref[k]);
            }
        }
    /* Off switches give the identity's parts. */
    dat_augment_draw d = dat_augment_sample(5, 3, 17, 0, 1, P);
    ck_assert(d.dy == P && d.dx == P);
    d = dat_augment_sample(5, 3, 17, 1, 0, P);
    ck_assert_int_eq(d.flip, 0);
}
END_TEST

START_TEST(test_augment_reproducible)
{
    dat_dataset_options o = indexed_opts(20, 3, 8, 8);
    o.shuffle = 1;
    o.seed = 4;
    o.random_crop = 1;
    o.horizontal_flip = 1;
    o.batch_size = 20;
    dat_dataset *a = open_ok(&o), *b = open_ok(&o);
    o.world_size = 2; /* a rank's rows are augmented as in a single-rank run */
    o.rank = 1;
    dat_dataset *half = open_ok(&o);
    epoch_data ea = read_epoch(a, 20, 1), eb = read_epoch(b, 20, 1), eh = read_epoch(half, 20, 1);
    ck_assert_mem_eq(ea.x, eb.x, 20 * 192 * sizeof(float));
    for (int64_t r = 0; r < eh.rows; ++r) {
        int64_t ra = 0;
        while (ea.y[ra] != eh.y[r])
            ++ra;
        ck_assert_mem_eq(eh.x + r * 192, ea.x + ra * 192, 192 * sizeof(float));
    }
    free_epoch(&ea);
    free_epoch(&eb);
    free_epoch(&eh);
    dat_dataset_destroy(a);
    dat_dataset_destroy(b);
    dat_dataset_destroy(half);
}
END_TEST

START_TEST(test_prefetch_identical)
{
    dat_dataset_options o = indexed_opts(53, 3, 5, 5);
    o.shuffle = 1;
    o.seed = 21;
    o.random_crop = 1;
    o.horizontal_flip = 1;
    o.batch_size = 7; /* 53 = 7 * 7 + 4: a short last batch */
    o.prefetch = 0;
    dat_dataset *sync = open_ok(&o);
    o.prefetch = 1;
    dat_dataset *pre = open_ok(&o);
    for (int64_t epoch = 0; epoch < 3; ++epoch) {
        ck_assert_dat_ok(dat_dataset_set_epoch(sync, epoch));
        ck_assert_dat_ok(dat_dataset_set_epoch(pre, epoch));
        epoch_data es = read_epoch(sync, 7, 1), ep = read_epoch(pre, 7, 1);
        ck_assert_int_eq(es.rows, 53);
        ck_assert_int_eq(ep.rows, 53);
        ck_assert_int_eq(es.batches, 8);
        ck_assert_mem_eq(es.x, ep.x, 53 * 75 * sizeof(float));
        ck_assert_mem_eq(es.y, ep.y, 53 * 4);
        free_epoch(&es);
        free_epoch(&ep);
    }
    /* Jumping around while the thread works does not mix batches up. */
    ck_assert_dat_ok(dat_dataset_set_position(sync, 1, 5));
    ck_assert_dat_ok(dat_dataset_set_position(pre, 4, 2));
    ck_assert_dat_ok(dat_dataset_set_position(pre, 1, 5));
    epoch_data es = read_epoch(sync, 7, 1), ep = read_epoch(pre, 7, 1);
    ck_assert_int_eq(ep.rows, 7 + 4 + 7);
    ck_assert_mem_eq(es.x, ep.x, (size_t)es.rows * 75 * sizeof(float));
    ck_assert_mem_eq(es.y, ep.y, (size_t)es.rows * 4);
    free_epoch(&es);
    free_epoch(&ep);
    dat_dataset_destroy(sync);
    dat_dataset_destroy(pre);
}
END_TEST

START_TEST(test_resume_position)
{
    dat_dataset_options o = indexed_opts(45, 1, 4, 4);
    o.shuffle = 1;
    o.seed = 77;
    o.random_crop = 1;
    o.horizontal_flip = 1;
    o.crop_padding = 1;
    o.batch_size = 5;
    o.world_size = 2;
    o.rank = 1;
    dat_dataset *straight = open_ok(&o);
    epoch_data e0 = read_epoch(straight, 5, 1);
    ck_assert_dat_ok(dat_dataset_set_epoch(straight, 1));
    epoch_data e1 = read_epoch(straight, 5, 1);
    ck_assert_int_eq(e0.rows, 22);
    /* A new handle resumes at epoch 0, batch 3 (as a checkpoint would say). */
    dat_dataset *resumed = open_ok(&o);
    ck_assert_dat_ok(dat_dataset_set_position(resumed, 0, 3));
    int64_t epoch, batch;
    ck_assert_dat_ok(dat_dataset_get_position(resumed, &epoch, &batch));
    ck_assert(epoch == 0 && batch == 3);
    epoch_data r0 = read_epoch(resumed, 5, 1);
    ck_assert_int_eq(r0.rows, 22 - 15);
    ck_assert_mem_eq(r0.x, e0.x + 15 * 16, (size_t)r0.rows * 16 * sizeof(float));
    ck_assert_mem_eq(r0.y, e0.y + 15, (size_t)r0.rows * 4);
    ck_assert_dat_ok(dat_dataset_set_epoch(resumed, 1));
    epoch_data r1 = read_epoch(resumed, 5, 1);
    ck_assert_mem_eq(r1.x, e1.x, 22 * 16 * sizeof(float));
    ck_assert_mem_eq(r1.y, e1.y, 22 * 4);
    ck_assert_dat_ok(dat_dataset_get_position(resumed, &epoch, &batch));
    ck_assert(epoch == 1 && batch == 5);
    /* Out-of-range positions are refused and change nothing. */
    ck_assert_dat_err(dat_dataset_set_position(resumed, 1, 6), DAT_ERR_INVALID_ARG, "batch = 6");
    ck_assert_dat_err(dat_dataset_set_position(resumed, -1, 0), DAT_ERR_INVALID_ARG, "epoch = -1");
    ck_assert_dat_err(dat_dataset_set_epoch(resumed, -2), DAT_ERR_INVALID_ARG,
                      "dat_dataset_set_epoch: epoch = -2");
    ck_assert_dat_ok(dat_dataset_get_position(resumed, &epoch, &batch));
    ck_assert(epoch == 1 && batch == 5);
    epoch_data *all[] = {&e0, &e1, &r0, &r1};
    for (int i = 0; i < 4; ++i)
        free_epoch(all[i]);
    dat_dataset_destroy(straight);
    dat_dataset_destroy(resumed);
}
END_TEST

/* Tensors of a CUDA context are written through dat_tensor_write and hold
 * the same batch as CPU tensors (runs only where a GPU is present). */
START_TEST(test_device_tensors)
{
    int32_t gpus = 0;
    ck_assert_dat_ok(dat_cuda_device_count(&gpus));
    if (!dat_has_cuda() || gpus == 0) {
        fprintf(stderr, "test_device_tensors: skipped (no CUDA device)\n");
        return;
    }
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.device = DAT_DEVICE_CUDA;
    dat_ctx *gctx;
    ck_assert_dat_ok(dat_ctx_create(&gctx, &co));
    dat_dataset_options o = indexed_opts(13, 3, 4, 4);
    o.shuffle = 1;
    o.random_crop = 1;
    o.horizontal_flip = 1;
    o.batch_size = 5;
    for (int prefetch = 0; prefetch < 2; ++prefetch) {
        o.prefetch = prefetch;
        dat_dataset *cpu = open_ok(&o), *gpu = open_ok(&o);
        int64_t xs[4] = {5, 3, 4, 4}, ys[1] = {5};
        dat_tensor *cx, *cy, *gx, *gy;
        ck_assert_dat_ok(dat_tensor_create(&cx, ctx, DAT_FLOAT32, 4, xs));
        ck_assert_dat_ok(dat_tensor_create(&cy, ctx, DAT_INT32, 1, ys));
        ck_assert_dat_ok(dat_tensor_create(&gx, gctx, DAT_FLOAT32, 4, xs));
        ck_assert_dat_ok(dat_tensor_create(&gy, gctx, DAT_INT32, 1, ys));
        float hx[5 * 48], dx[5 * 48];
        int32_t hy[5], dy[5];
        for (int b = 0; b < 3; ++b) {
            int32_t nc, ng;
            ck_assert_dat_ok(dat_dataset_next_batch(cpu, cx, cy, &nc));
            ck_assert_dat_ok(dat_dataset_next_batch(gpu, gx, gy, &ng));
            ck_assert_int_eq(nc, ng);
            ck_assert_dat_ok(dat_tensor_read(cx, hx, sizeof hx));
            ck_assert_dat_ok(dat_tensor_read(gx, dx, sizeof dx));
            ck_assert_dat_ok(dat_tensor_read(cy, hy, sizeof hy));
            ck_assert_dat_ok(dat_tensor_read(gy, dy, sizeof dy));
            ck_assert_mem_eq(hx, dx, sizeof hx);
            ck_assert_mem_eq(hy, dy, sizeof hy);
        }
        dat_tensor_destroy(cx);
        dat_tensor_destroy(cy);
        dat_tensor_destroy(gx);
        dat_tensor_destroy(gy);
        dat_dataset_destroy(cpu);
        dat_dataset_destroy(gpu);
    }
    dat_ctx_destroy(gctx);
}
END_TEST

/* ---------------- broken and hostile files ---------------- */

/* Opening must fail with `want` and a message naming the file and saying `needle`. */
static void expect_open_fails(dat_dataset_options *o, const char *file, dat_status want,
                              const char *needle)
{
    dat_dataset *ds = (dat_dataset *)0x1;
    dat_clear_error();
    dat_status s = dat_dataset_open(&ds, ctx, o);
    ck_assert_msg(s == want, "%s: got %s, want %s (%s)", file, dat_status_string(s),
                  dat_status_string(want), dat_last_error());
    ck_assert_ptr_null(ds);
    ck_assert_msg(strstr(dat_last_error(), file) != NULL, "message \"%s\" does not name %s",
                  dat_last_error(), file);
    ck_assert_msg(strstr(dat_last_error(), needle) != NULL, "message \"%s\" does not say \"%s\"",
                  dat_last_error(), needle);
}

static void idx_case(const char *name, const unsigned char *img, size_t ni,
                     const unsigned char *lab, size_t nl, int bad_is_labels, const char *needle)
{
    char iname[64], lname[64];
    snprintf(iname, sizeof iname, "%s-images", name);
    snprintf(lname, sizeof lname, "%s-labels", name);
    dat_dataset_options o = base_opts(DAT_DATASET_IDX, write_file(iname, img, ni),
                                      write_file(lname, lab, nl));
    expect_open_fails(&o, bad_is_labels ? o.labels_path : o.images_path, DAT_ERR_FORMAT, needle);
}

START_TEST(test_hostile_idx)
{
    size_t ni, nl;
    unsigned char *img = idx_images(10, 4, 4, &ni), *lab = idx_labels(10, 10, &nl);
    unsigned char *b = malloc(ni + 64);
    idx_case("short", img, ni - 7, lab, nl, 0, "header promises 160 data bytes, the file holds 153");
    idx_case("tiny", img, 3, lab, nl, 0, "too short");
    idx_case("header-cut", img, 10, lab, nl, 0, "truncated header");
    memcpy(b, img, ni);
    b[ni] = 0;
    idx_case("trailing", b, ni + 1, lab, nl, 0, "the file holds 161");
    idx_case("labels-as-images", lab, nl, lab, nl, 0, "expected magic 0x00000803, got 0x00000801");
    memcpy(b, img, ni);
    put_be32(b + 4, 0xffffffffu);
    idx_case("huge", b, ni, lab, nl, 0, "promises more than");
    put_be32(b + 4, 10);
    put_be32(b + 8, 0);
    idx_case("zero-dim", b, ni, lab, nl, 0, "dimension 1 is 0");
    /* A gzip'ed gzip: what is inside is not IDX, and the message says so. */
    size_t z1, z2;
    unsigned char *g1 = gzip_bytes(img, ni, &z1), *g2 = gzip_bytes(g1, z1, &z2);
    idx_case("double-gzip", g2, z2, lab, nl, 0, "expected magic 0x00000803, got 0x1f8b08");
    idx_case("gzip-cut", g1, z1 - 12, lab, nl, 0, "truncated gzip");
    unsigned char *g3 = malloc(z1);
    memcpy(g3, g1, z1);
    for (size_t k = 12; k < 40 && k < z1; ++k)
        g3[k] ^= 0x5a;
    idx_case("gzip-corrupt", g3, z1, lab, nl, 0, "gzip");
    memcpy(g3, g1, z1);
    g3[z1 - 6] ^= 1; /* the CRC-32 */
    idx_case("gzip-crc", g3, z1, lab, nl, 0, "corrupt gzip data");
    unsigned char *g4 = malloc(z1 + 3);
    memcpy(g4, g1, z1);
    memcpy(g4 + z1, "abc", 3);
    idx_case("gzip-trailing", g4, z1 + 3, lab, nl, 0, "garbage after");
    /* Labels: wrong count, wrong magic. */
    size_t nl9;
    unsigned char *lab9 = idx_labels(9, 10, &nl9);
    idx_case("count", img, ni, lab9, nl9, 1, "holds 10 images but");
    idx_case("labels-magic", img, ni, img, ni, 1, "expected magic 0x00000801, got 0x00000803");
    free(img);
    free(lab);
    free(lab9);
    free(b);
    free(g1);
    free(g2);
    free(g3);
    free(g4);
}
END_TEST

START_TEST(test_hostile_cifar)
{
    size_t s;
    unsigned char *b = cifar_records(3, 0, 0, &s);
    dat_dataset_options o = base_opts(DAT_DATASET_CIFAR10, write_file("cut.bin", b, s - 1), NULL);
    expect_open_fails(&o, o.images_path, DAT_ERR_FORMAT, "not a whole number of 3073-byte");
    o.images_path = write_file("empty.bin", b, 0);
    expect_open_fails(&o, o.images_path, DAT_ERR_FORMAT, "0 bytes");
    b[3073] = 10;
    o.images_path = write_file("label10.bin", b, s);
    expect_open_fails(&o, o.images_path, DAT_ERR_FORMAT, "record 1: label 10 is not below 10");
    /* The bad file among several is the one named. */
    b[3073] = 1;
    const char *good = write_file("good.bin", b, s);
    const char *extra[] = {good, tpath("missing.bin")};
    o.images_path = good;
    o.extra_paths = extra;
    o.num_extra_paths = 2;
    expect_open_fails(&o, extra[1], DAT_ERR_IO, "No such file");
    free(b);
    b = cifar_records(2, 0, 1, &s);
    b[3074] = 25; /* coarse label of record 1 */
    o = base_opts(DAT_DATASET_CIFAR100, write_file("coarse.bin", b, s), NULL);
    expect_open_fails(&o, o.images_path, DAT_ERR_FORMAT, "coarse label 25");
    o.format = DAT_DATASET_CIFAR10; /* a CIFAR-100 file read as CIFAR-10 */
    expect_open_fails(&o, o.images_path, DAT_ERR_FORMAT, "3073-byte CIFAR-10 records");
    free(b);
}
END_TEST

static void npy_case(const char *name, const char *dict, size_t nbytes, const char *needle)
{
    unsigned char data[512] = {0};
    char fname[64];
    snprintf(fname, sizeof fname, "%s.npy", name);
    dat_dataset_options o =
        base_opts(DAT_DATASET_NPY, write_npy_dict(fname, 1, dict, data, nbytes), NULL);
    expect_open_fails(&o, o.images_path, DAT_ERR_FORMAT, needle);
}

START_TEST(test_hostile_npy)
{
    npy_case("fortran", "{'descr': '|u1', 'fortran_order': True, 'shape': (2, 4, 4), }", 32,
             "fortran_order True");
    npy_case("f8", "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 4, 4), }", 256,
             "unsupported dtype '<f8'");
    npy_case("bigendian", "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 4, 4), }", 128,
             "unsupported dtype '>f4'");
    npy_case("int-images", "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 4, 4), }", 128,
             "images must be uint8");
    npy_case("colon", "{'descr' '|u1', 'fortran_order': False, 'shape': (2, 4, 4), }", 32,
             "expected ':'");
    npy_case("quote", "{'descr': '|u1, 'fortran_order': False}", 32,
             "unsupported dtype '|u1, '");
    npy_case("open-string", "{'descr': '|u1", 32, "string longer than 31 bytes");
    npy_case("no-brace", "'descr': '|u1'", 32, "expected '{'");
    npy_case("unknown-key", "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4, 4), "
             "'extra': 1}", 32, "unexpected key 'extra'");
    npy_case("twice", "{'descr': '|u1', 'descr': '|u1', 'fortran_order': False, "
             "'shape': (2, 4, 4)}", 32, "appears twice");
    npy_case("no-shape", "{'descr': '|u1', 'fortran_order': False}", 32, "lacks 'shape'");
    npy_case("bool", "{'descr': '|u1', 'fortran_order': Maybe, 'shape': (2, 4, 4)}", 32,
             "True or False");
    npy_case("neg-dim", "{'descr': '|u1', 'fortran_order': False, 'shape': (2, -4, 4)}", 32,
             "non-negative integer");
    npy_case("huge-dim", "{'descr': '|u1', 'fortran_order': False, 'shape': (99999999999999, "
             "99999999999999, 4)}", 32, "promises more than");
    npy_case("overflow", "{'descr': '|u1', 'fortran_order': False, 'shape': "
             "(9999999999999999999999, 4, 4)}", 32, "dimension too large");
    npy_case("short", "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4, 4)}", 31,
             "promises more than");
    npy_case("long", "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4, 4)}", 33,
             "the file holds 33 data bytes");
    npy_case("zero", "{'descr': '|u1', 'fortran_order': False, 'shape': (0, 4, 4)}", 0,
             "shape[0] is 0");
    npy_case("five-d", "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 2, 2, 4)}", 32,
             "3 dimensions");
    npy_case("after", "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4, 4)} x", 32,
             "after the dict");
    npy_case("tuple", "{'descr': '|u1', 'fortran_order': False, 'shape': (2 4, 4)}", 32,
             "expected ',' or ')'");
    npy_case("nine-dims", "{'descr': '|u1', 'fortran_order': False, 'shape': "
             "(1, 1, 1, 1, 1, 1, 1, 1, 1)}", 1, "more than 8 dimensions");

    /* Not .npy at all, a future version, a header longer than the file. */
    unsigned char raw[64];
    memset(raw, ' ', sizeof raw);
    memcpy(raw, "\x93NUMPX\x01\x00\x10\x00", 10);
    dat_dataset_options o = base_opts(DAT_DATASET_NPY, write_file("magic.npy", raw, 64), NULL);
    expect_open_fails(&o, o.images_path, DAT_ERR_FORMAT, "no \\x93NUMPY magic");
    memcpy(raw, "\x93NUMPY\x04\x00\x10\x00", 10);
    o.images_path = write_file("version.npy", raw, 64);
    expect_open_fails(&o, o.images_path, DAT_ERR_FORMAT, "unsupported .npy version 4.0");
    memcpy(raw, "\x93NUMPY\x01\x00\xff\x7f", 10);
    o.images_path = write_file("hlen.npy", raw, 64);
    expect_open_fails(&o, o.images_path, DAT_ERR_FORMAT, "header of 32767 bytes");
    memcpy(raw, "\x93NUMPY\x02\x00\xff\xff\xff\xff", 12);
    o.images_path = write_file("hlen2.npy", raw, 64);
    expect_open_fails(&o, o.images_path, DAT_ERR_FORMAT, "header of 4294967295 bytes");

    /* Non-finite float pixels. */
    float f[8] = {0, 0.5f, NAN, 1, 0, 0, 0, 0};
    o.images_path = write_npy("nan.npy", "<f4", "(2, 2, 2)", f, sizeof f);
    expect_open_fails(&o, o.images_path, DAT_ERR_FORMAT, "pixel 2 is NaN");

    /* Labels: negative, too large, wrong shape, float, count mismatch. */
    unsigned char px[4 * 4] = {0};
    o.images_path = write_npy("ok.npy", "|u1", "(4, 2, 2)", px, sizeof px);
    int32_t l32[4] = {0, 1, -1, 2};
    o.labels_path = write_npy("neg.npy", "<i4", "(4,)", l32, sizeof l32);
    expect_open_fails(&o, o.labels_path, DAT_ERR_FORMAT, "label -1 at index 2");
    int64_t l64[4] = {0, 1, (int64_t)1 << 40, 2};
    o.labels_path = write_npy("big.npy", "<i8", "(4,)", l64, sizeof l64);
    expect_open_fails(&o, o.labels_path, DAT_ERR_FORMAT, "label 1099511627776 at index 2");
    unsigned char l8[12] = {0};
    o.labels_path = write_npy("wide.npy", "|u1", "(4, 3)", l8, sizeof l8);
    expect_open_fails(&o, o.labels_path, DAT_ERR_FORMAT, "(N,) or (N, 1)");
    o.labels_path = write_npy("flt.npy", "<f4", "(4,)", f, 16);
    expect_open_fails(&o, o.labels_path, DAT_ERR_FORMAT, "not float32");
    o.labels_path = write_npy("three.npy", "|u1", "(3,)", l8, 3);
    expect_open_fails(&o, o.labels_path, DAT_ERR_FORMAT, "holds 4 images but");
    /* A declared class count the labels break. */
    o.labels_path = write_npy("five.npy", "|u1", "(4,)", (unsigned char[]){0, 5, 1, 2}, 4);
    o.num_classes = 5;
    expect_open_fails(&o, o.labels_path, DAT_ERR_FORMAT, "sample 1 has label 5");
}
END_TEST

START_TEST(test_missing_files)
{
    dat_dataset_options o = base_opts(DAT_DATASET_IDX, tpath("nope-images"), tpath("nope-labels"));
    expect_open_fails(&o, o.images_path, DAT_ERR_IO, "No such file or directory");
    o.images_path = "/usr/share/datasets/fashion-mnist/no-such-images-idx3-ubyte.gz";
    expect_open_fails(&o, o.images_path, DAT_ERR_IO,
                      "install the Debian package dataset-fashion-mnist");
    o.images_path = "/srv/data/fashion-mnist/train-images-idx3-ubyte.gz";
    expect_open_fails(&o, o.images_path, DAT_ERR_IO, "dataset-fashion-mnist");
    o.images_path = dir; /* a folder */
    expect_open_fails(&o, dir, DAT_ERR_IO, "cannot");
    size_t ni;
    unsigned char *img = idx_images(2, 2, 2, &ni);
    o.images_path = write_file("present", img, ni);
    expect_open_fails(&o, o.labels_path, DAT_ERR_IO, "No such file");
    free(img);
}
END_TEST

/* ---------------- the fuzz corpus and Debian's Fashion-MNIST ---------------- */

/* Each file of tests/fuzz/corpus/KIND through the parsers: a status, no crash
 * (the sanitizer build checks for bad reads), and sane results. */
static int replay_dir(const char *kind)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", DAT_FUZZ_CORPUS, kind);
    DIR *d = opendir(path);
    ck_assert_msg(d != NULL, "no corpus folder %s", path);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char file[800];
        snprintf(file, sizeof file, "%s/%s", path, de->d_name);
        unsigned char *buf;
        size_t size;
        ck_assert_dat_ok(dat_read_file(file, &buf, &size));
        dat_data_source src;
        int32_t *labels;
        int64_t n;
        if (!strcmp(kind, "idx")) {
            if (dat_idx_parse_images(file, buf, size, &src) == DAT_OK) {
                ck_assert(src.n > 0 && src.h > 0 && src.w > 0);
                dat_data_source_free(&src);
            }
            if (dat_idx_parse_labels(file, buf, size, &labels, &n) == DAT_OK) {
                ck_assert(n > 0);
                free(labels);
            }
        } else if (!strcmp(kind, "cifar")) {
            for (int v = 0; v < 2; ++v) {
                memset(&src, 0, sizeof src);
                if (dat_cifar_append(file, buf, size, v, &src) == DAT_OK)
                    ck_assert(src.n > 0 && src.num_classes == (v ? 100 : 10));
                dat_data_source_free(&src);
            }
        } else {
            for (int layout = 0; layout < 3; ++layout)
                if (dat_npy_view_images(file, buf, size, layout, &src) == DAT_OK) {
                    ck_assert(src.n > 0 && src.c > 0);
                    dat_data_source_free(&src);
                }
            if (dat_npy_parse_labels(file, buf, size, &labels, &n) == DAT_OK)
                free(labels);
        }
        free(buf);
        ++files;
    }
    closedir(d);
    return files;
}

START_TEST(test_fuzz_corpus_replay)
{
    const char *kinds[] = {"idx", "cifar", "npy"};
    for (int k = 0; k < 3; ++k) {
        int files = replay_dir(kinds[k]);
        ck_assert_msg(files >= 3, "corpus %s has only %d files", kinds[k], files);
    }
}
END_TEST

#define FMNIST "/usr/share/datasets/fashion-mnist/"

START_TEST(test_debian_fashion_mnist)
{
    if (access(FMNIST "train-images-idx3-ubyte.gz", R_OK) != 0) {
        fprintf(stderr, "test_debian_fashion_mnist: skipped (install dataset-fashion-mnist)\n");
        return;
    }
    /* First labels and pixel sums, as Python's gzip module reads the files. */
    static const struct {
        const char *prefix;
        int64_t n;
        int labels[12];
        int sum0, px1_400;
    } want[2] = {
        {"train", 60000, {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9}, 76247, 197},
        {"t10k", 10000, {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5}, 33456, 86},
    };
    for (int s = 0; s < 2; ++s) {
        char ip[128], lp[128];
        snprintf(ip, sizeof ip, FMNIST "%s-images-idx3-ubyte.gz", want[s].prefix);
        snprintf(lp, sizeof lp, FMNIST "%s-labels-idx1-ubyte.gz", want[s].prefix);
        dat_dataset_options o = base_opts(DAT_DATASET_IDX, ip, lp);
        o.batch_size = 16;
        dat_dataset *ds = open_ok(&o);
        int64_t n;
        int32_t k, c, h, w;
        ck_assert_dat_ok(dat_dataset_num_samples(ds, &n));
        ck_assert_int_eq(n, want[s].n);
        ck_assert_dat_ok(dat_dataset_num_classes(ds, &k));
        ck_assert_int_eq(k, 10);
        ck_assert_dat_ok(dat_dataset_sample_shape(ds, &c, &h, &w));
        ck_assert(c == 1 && h == 28 && w == 28);
        int64_t xs[4] = {16, 1, 28, 28}, ys[1] = {16};
        dat_tensor *x, *y;
        ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
        ck_assert_dat_ok(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
        int32_t count;
        ck_assert_dat_ok(dat_dataset_next_batch(ds, x, y, &count));
        ck_assert_int_eq(count, 16);
        float *px;
        int32_t *py;
        dat_tensor_host_data(x, (void **)&px);
        dat_tensor_host_data(y, (void **)&py);
        for (int i = 0; i < 12; ++i)
            ck_assert_msg(py[i] == want[s].labels[i], "%s label %d: %d, want %d", want[s].prefix,
                          i, py[i], want[s].labels[i]);
        double sum = 0;
        for (int i = 0; i < 784; ++i)
            sum += px[i] * 255.0;
        ck_assert_msg(fabs(sum - want[s].sum0) < 1e-2, "%s image 0: pixel sum %.4f, want %d",
                      want[s].prefix, sum, want[s].sum0);
        ck_assert_float_eq(px[784 + 400], (float)want[s].px1_400 / 255.0f);
        dat_tensor_destroy(x);
        dat_tensor_destroy(y);
        dat_dataset_destroy(ds);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_idx_raw);
    tcase_add_test(tc, test_idx_gzip);
    tcase_add_test(tc, test_idx_parse_memory);
    tcase_add_test(tc, test_cifar10_files);
    tcase_add_test(tc, test_cifar100_fine_labels);
    tcase_add_test(tc, test_npy_images_dtypes_layouts);
    tcase_add_test(tc, test_npy_label_dtypes);
    tcase_add_test(tc, test_npy_ambiguous_layout);
    tcase_add_test(tc, test_npy_larger_than_memory);
    tcase_add_test(tc, test_shards_disjoint_equal);
    tcase_add_test(tc, test_shuffle_per_epoch_and_seed);
    tcase_add_test(tc, test_shuffle_internals);
    tcase_add_test(tc, test_class_subset);
    tcase_add_test(tc, test_class_subset_of_huge_labels);
    tcase_add_test(tc, test_validation_split);
    tcase_add_test(tc, test_short_batch_and_drop_last);
    tcase_add_test(tc, test_augment_crop_flip);
    tcase_add_test(tc, test_augment_reproducible);
    tcase_add_test(tc, test_prefetch_identical);
    tcase_add_test(tc, test_resume_position);
    tcase_add_test(tc, test_device_tensors);
    tcase_add_test(tc, test_hostile_idx);
    tcase_add_test(tc, test_hostile_cifar);
    tcase_add_test(tc, test_hostile_npy);
    tcase_add_test(tc, test_missing_files);
    tcase_add_test(tc, test_fuzz_corpus_replay);
    tcase_add_test(tc, test_debian_fashion_mnist);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
