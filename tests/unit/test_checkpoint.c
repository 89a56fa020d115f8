/* Model checkpoints (safetensors): round trips, other models refused, and every
 * broken or hostile file rejected with DAT_ERR_FORMAT without touching the model. */
#include <locale.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_util.h"
#include "io/safetensors.h"

static dat_ctx *ctx;
static char dir[64];

static void setup(void)
{
    ck_assert_dat_ok(dat_ctx_create(&ctx, NULL));
    snprintf(dir, sizeof dir, "/tmp/dat_ckpt_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "chmod -R u+w %s; rm -rf %s", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    dat_ctx_destroy(ctx);
}

static dat_model *preset(const char *name, uint64_t seed)
{
    dat_model_options o;
    dat_model_options_init(&o);
    o.init_seed = seed;
    dat_model *m = NULL;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, name, &o));
    return m;
}

static float *params_copy(dat_model *m, size_t *n)
{
    dat_tensor *p;
    dat_model_params(m, &p);
    dat_tensor_nbytes(p, n);
    float *out = malloc(*n);
    ck_assert_dat_ok(dat_tensor_read(p, out, *n));
    return out;
}

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*size);
    ck_assert_uint_eq(fread(b, 1, *size, f), *size);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

START_TEST(test_round_trip)
{
    dat_model *a = preset("preact_resnet18", 1), *b = preset("preact_resnet18", 2);
    /* Non-trivial BN statistics and counters. */
    int64_t xs[4] = {2, 3, 32, 32}, zs[2] = {2, 10};
    dat_tensor *x, *z;
    dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs);
    dat_tensor_create(&z, ctx, DAT_FLOAT32, 2, zs);
    dat_tensor_fill_uniform(x, 0, 1, 0, 0);
    ck_assert_dat_ok(dat_model_forward(a, x, z));
    char path[192];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    ck_assert_dat_ok(dat_model_save(a, path));
    ck_assert_dat_ok(dat_model_load(b, path, NULL));
    size_t na, nb;
    float *pa = params_copy(a, &na), *pb = params_copy(b, &nb);
    ck_assert_mem_eq(pa, pb, na);
    dat_tensor *ba, *bb;
    dat_model_buffers(a, &ba);
    dat_model_buffers(b, &bb);
    size_t nbuf;
    dat_tensor_nbytes(ba, &nbuf);
    float *qa = malloc(nbuf), *qb = malloc(nbuf);
    dat_tensor_read(ba, qa, nbuf);
    dat_tensor_read(bb, qb, nbuf);
    ck_assert_mem_eq(qa, qb, nbuf);
    /* The file: PyTorch's names and shapes, num_batches_tracked 1 after one pass. */
    dat_st_file f;
    ck_assert_dat_ok(dat_st_read(path, &f));
    const dat_st_entry *e = dat_st_find(&f, "layer2.0.shortcut.0.weight");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->ndim, 4);
    ck_assert(e->shape[0] == 128 && e->shape[1] == 64 && e->shape[2] == 1 && e->shape[3] == 1);
    e = dat_st_find(&f, "bn.num_batches_tracked");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->ndim, 0);
    ck_assert_int_eq(*(const int64_t *)e->data, 1);
    ck_assert_str_eq(dat_st_meta(&f, "format"), "pt");
    dat_st_free(&f);
    free(pa);
    free(pb);
    free(qa);
    free(qb);
    dat_tensor_destroy(x);
    dat_tensor_destroy(z);
    dat_model_destroy(a);
    dat_model_destroy(b);
}
END_TEST

START_TEST(test_other_model_refused_without_change)
{
    dat_model *a = preset("cnn_small", 1), *b = preset("mlp", 2), *c = preset("cnn_small", 3);
    char path[192];
    snprintf(path, sizeof path, "%s/cnn.safetensors", dir);
    ck_assert_dat_ok(dat_model_save(a, path));
    size_t n0, n1;
    float *before = params_copy(b, &n0);
    ck_assert_dat_err(dat_model_load(b, path, NULL), DAT_ERR_FORMAT, "fc1.weight");
    float *after = params_copy(b, &n1);
    ck_assert_mem_eq(before, after, n0);
    /* A model with another head: the message names the tensor and both shapes. */
    dat_model_options o;
    dat_model_options_init(&o);
    o.num_classes = 5;
    dat_model *d = NULL;
    ck_assert_dat_ok(dat_model_create_preset(&d, ctx, "cnn_small", &o));
    ck_assert_dat_err(dat_model_load(d, path, NULL), DAT_ERR_FORMAT, "fc2.weight");
    ck_assert_dat_err(dat_model_load(d, path, NULL), DAT_ERR_FORMAT, "[10, 128]");
    ck_assert_dat_ok(dat_model_load(c, path, NULL));
    char missing[192];
    snprintf(missing, sizeof missing, "%s/none.safetensors", dir);
    ck_assert_dat_err(dat_model_load(c, missing, NULL), DAT_ERR_IO, "none.safetensors");
    free(before);
    free(after);
    dat_model_destroy(a);
    dat_model_destroy(b);
    dat_model_destroy(c);
    dat_model_destroy(d);
}
END_TEST

static dat_model *normalized(const float *mean, const float *std)
{
    dat_model_options o;
    dat_model_options_init(&o);
    o.mean = mean;
    o.std = std;
    dat_model *m = NULL;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "preact_resnet18", &o));
    return m;
}

/* A checkpoint records its model's input normalization, and a model that
 * normalizes otherwise (or not at all) is refused without change. */
START_TEST(test_normalization_recorded)
{
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2471f, 0.2435f, 0.2616f};
    const float other[3] = {0.5f, 0.5f, 0.5f};
    dat_model *a = normalized(mean, std), *same = normalized(mean, std);
    dat_model *shifted = normalized(other, std), *plain = normalized(NULL, NULL);
    char path[192], plain_path[192];
    snprintf(path, sizeof path, "%s/norm.safetensors", dir);
    snprintf(plain_path, sizeof plain_path, "%s/plain.safetensors", dir);
    ck_assert_dat_ok(dat_model_save(a, path));
    ck_assert_dat_ok(dat_model_save(plain, plain_path));
    ck_assert_dat_ok(dat_model_load(same, path, NULL));
    size_t n0, n1;
    float *before = params_copy(plain, &n0);
    ck_assert_dat_err(dat_model_load(plain, path, NULL), DAT_ERR_FORMAT,
                      "normalization is mean 0.491400003,0.482199997");
    ck_assert_dat_err(dat_model_load(shifted, path, NULL), DAT_ERR_FORMAT,
                      "this model's is mean 0.5,0.5,0.5");
    ck_assert_dat_err(dat_model_load(a, plain_path, NULL), DAT_ERR_FORMAT, "mean none");
    float *after = params_copy(plain, &n1);
    ck_assert_mem_eq(before, after, n0);
    free(before);
    free(after);
    dat_model_destroy(a);
    dat_model_destroy(same);
    dat_model_destroy(shifted);
    dat_model_destroy(plain);
}
END_TEST

/* The locale's LC_NUMERIC for this test: de_DE (decimal comma), generated into
 * the test's folder; 0 where localedef or its sources (Debian's locales) are
 * missing. */
static int decimal_comma_locale(void)
{
    char loc[256], cmd[512];
    snprintf(loc, sizeof loc, "%s/locale", dir);
    snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", loc);
    if (mkdir(loc, 0700) != 0 || system(cmd) != 0)
        return 0;
    setenv("LOCPATH", loc, 1);
    return setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL;
}

/* A host in a locale with a decimal comma writes and reads the same text as
 * one in the C locale: files move between them. */
START_TEST(test_normalization_text_ignores_locale)
{
    if (!decimal_comma_locale()) {
        fprintf(stderr, "test_normalization_text_ignores_locale: no de_DE locale, not run\n");
        return;
    }
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2471f, 0.2435f, 0.2616f};
    dat_model *a = normalized(mean, std), *b = normalized(mean, std);
    dat_model *plain = normalized(NULL, NULL);
    char path[192], c_path[192];
    snprintf(path, sizeof path, "%s/comma.safetensors", dir);
    snprintf(c_path, sizeof c_path, "%s/point.safetensors", dir);
    ck_assert_dat_ok(dat_model_save(a, path)); /* in de_DE */
    setlocale(LC_NUMERIC, "C");
    ck_assert_dat_ok(dat_model_load(b, path, NULL));
    ck_assert_dat_ok(dat_model_save(a, c_path));
    ck_assert_ptr_nonnull(setlocale(LC_NUMERIC, "de_DE.UTF-8"));
    ck_assert_dat_ok(dat_model_load(b, c_path, NULL));
    ck_assert_dat_err(dat_model_load(plain, c_path, NULL), DAT_ERR_FORMAT,
                      "mean 0.491400003,0.482199997");
    setlocale(LC_NUMERIC, "C");
    unsetenv("LOCPATH");
    dat_model_destroy(a);
    dat_model_destroy(b);
    dat_model_destroy(plain);
}
END_TEST

/* Training checkpoints: an optimizer of another kind is refused before the model
 * changes (all or nothing), and a config the reader could not take back is refused
 * when saving. */
START_TEST(test_training_checkpoint_all_or_nothing)
{
    dat_model *a = preset("mlp", 1), *b = preset("mlp", 2);
    dat_optim *momentum, *adam;
    ck_assert_dat_ok(dat_optim_create_for_model(&momentum, a, NULL));
    dat_optim_options oo;
    dat_optim_options_init(&oo);
    oo.kind = DAT_OPTIM_ADAM;
    ck_assert_dat_ok(dat_optim_create_for_model(&adam, b, &oo));
    dat_checkpoint_info info = {.size = sizeof info, .epoch = 1, .step = 2, .attack_step = 3};
    char path[192];
    snprintf(path, sizeof path, "%s/train.safetensors", dir);
    ck_assert_dat_ok(dat_checkpoint_save(path, a, momentum, &info, "{}"));
    size_t n0, n1;
    float *before = params_copy(b, &n0);
    dat_checkpoint_info got = {.size = sizeof got};
    ck_assert_dat_err(dat_checkpoint_load(path, b, adam, &got, NULL, 0), DAT_ERR_FORMAT,
                      "kind");
    float *after = params_copy(b, &n1);
    ck_assert_mem_eq(before, after, n0);
    ck_assert_dat_ok(dat_checkpoint_load(path, b, NULL, &got, NULL, 0));
    ck_assert_int_eq(got.step, 2);
    /* A negative epoch: refused when saved, and when read (a file edited by hand). */
    dat_checkpoint_info neg = info;
    neg.epoch = -3;
    ck_assert_dat_err(dat_checkpoint_save(path, a, momentum, &neg, "{}"), DAT_ERR_INVALID_ARG,
                      "info->epoch = -3");
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    FILE *fp = fopen(path, "r+b");
    ck_assert_ptr_nonnull(fp);
    unsigned char *bytes = malloc((size_t)sb.st_size);
    size_t n = fread(bytes, 1, (size_t)sb.st_size, fp);
    const int64_t position[3] = {1, 2, 3};
    unsigned char *at = memmem(bytes, n, position, sizeof position);
    ck_assert_ptr_nonnull(at);
    const int64_t minus3 = -3;
    memcpy(at, &minus3, sizeof minus3);
    rewind(fp);
    ck_assert_uint_eq(fwrite(bytes, 1, n, fp), n);
    fclose(fp);
    free(bytes);
    float *kept = params_copy(b, &n1);
    ck_assert_dat_err(dat_checkpoint_load(path, b, NULL, &got, NULL, 0), DAT_ERR_FORMAT,
                      "epoch -3");
    float *now = params_copy(b, &n1);
    ck_assert_mem_eq(kept, now, n0); /* refused before the model changed */
    free(kept);
    free(now);
    char *big = malloc(70001);
    memset(big, 'a', 70000);
    big[70000] = '\0';
    char big_path[192];
    snprintf(big_path, sizeof big_path, "%s/big.safetensors", dir);
    ck_assert_dat_err(dat_checkpoint_save(big_path, a, momentum, &info, big),
                      DAT_ERR_INVALID_ARG, "70000 bytes");
    ck_assert_int_ne(access(big_path, F_OK), 0); /* nothing written */
    free(big);
    free(before);
    free(after);
    dat_optim_destroy(momentum);
    dat_optim_destroy(adam);
    dat_model_destroy(a);
    dat_model_destroy(b);
}
END_TEST

static dat_model *preset_classes(const char *name, int32_t classes, uint64_t seed)
{
    dat_model_options o;
    dat_model_options_init(&o);
    o.num_classes = classes;
    o.init_seed = seed;
    dat_model *m = NULL;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, name, &o));
    return m;
}

/* Segment i of m as a host copy (n receives its length). */
static float *segment_copy(dat_model *m, int32_t i, int64_t *n)
{
    dat_segment seg = {.size = sizeof seg};
    ck_assert_dat_ok(dat_model_segment(m, i, &seg));
    size_t bytes;
    float *all = params_copy(m, &bytes);
    float *out = malloc((size_t)seg.length * sizeof *out);
    memcpy(out, all + seg.offset, (size_t)seg.length * sizeof *out);
    free(all);
    *n = seg.length;
    return out;
}

static int reported, reported_kept;
static void on_tensor(const char *name, int32_t loaded, void *user)
{
    (void)user;
    ++reported;
    if (!loaded) {
        ++reported_kept;
        ck_assert_msg(strncmp(name, "fc2.", 4) == 0, "kept '%s', not the classifier", name);
    }
}

START_TEST(test_layers_group_segments_by_module)
{
    dat_model *m = preset("cnn_small", 1);
    int32_t layers, first, count;
    ck_assert_dat_ok(dat_model_num_layers(m, &layers));
    ck_assert_int_eq(layers, 5); /* three convolutions, two linear layers */
    ck_assert_dat_ok(dat_model_layer_segments(m, 4, &first, &count));
    ck_assert_int_eq(first, 8);
    ck_assert_int_eq(count, 2);
    dat_segment seg = {.size = sizeof seg};
    dat_model_segment(m, first, &seg);
    ck_assert_str_eq(seg.name, "fc2.weight");
    ck_assert_dat_err(dat_model_layer_segments(m, 5, &first, &count), DAT_ERR_INVALID_ARG, "5");
    dat_model_destroy(m);
    m = preset("preact_resnet18", 1);
    ck_assert_dat_ok(dat_model_num_layers(m, &layers));
    ck_assert_int_eq(layers, 38); /* conv1, 8 blocks of bn1 conv1 bn2 conv2, 3 shortcuts, bn, linear */
    dat_model_destroy(m);
}
END_TEST

/* Transfer: another number of classes keeps every tensor but the classifier
 * bit-identical to the file, and the classifier as the model initialized it. */
START_TEST(test_reinit_head_keeps_the_rest)
{
    dat_model *src = preset_classes("cnn_small", 10, 1);
    dat_model *dst = preset_classes("cnn_small", 5, 2), *fresh = preset_classes("cnn_small", 5, 2);
    char path[192];
    snprintf(path, sizeof path, "%s/ten.safetensors", dir);
    ck_assert_dat_ok(dat_model_save(src, path));
    dat_model_load_options o;
    dat_model_load_options_init(&o);
    ck_assert_dat_err(dat_model_load(dst, path, &o), DAT_ERR_FORMAT, "fc2.weight");
    o.reinit_head = DAT_REINIT_HEAD_IF_MISMATCHED;
    o.on_tensor = on_tensor;
    reported = reported_kept = 0;
    ck_assert_dat_ok(dat_model_load(dst, path, &o));
    ck_assert_int_eq(reported, 10);
    ck_assert_int_eq(reported_kept, 2);
    for (int32_t i = 0; i < 10; ++i) {
        int64_t n, n_ref;
        float *got = segment_copy(dst, i, &n);
        float *want = segment_copy(i < 8 ? src : fresh, i, &n_ref);
        ck_assert_int_eq(n, n_ref);
        ck_assert_msg(memcmp(got, want, (size_t)n * sizeof *got) == 0, "segment %d", (int)i);
        free(got);
        free(want);
    }
    /* Same number of classes: the classifier comes from the file too. */
    dat_model *same = preset_classes("cnn_small", 10, 3);
    reported = reported_kept = 0;
    ck_assert_dat_ok(dat_model_load(same, path, &o));
    ck_assert_int_eq(reported_kept, 0);
    size_t na, nb;
    float *pa = params_copy(src, &na), *pb = params_copy(same, &nb);
    ck_assert_mem_eq(pa, pb, na);
    free(pb);
    /* ...unless asked to start a new classifier anyway (a new task). */
    dat_model *renewed = preset_classes("cnn_small", 10, 3), *init = preset_classes("cnn_small", 10, 3);
    o.reinit_head = DAT_REINIT_HEAD_ALWAYS;
    reported = reported_kept = 0;
    ck_assert_dat_ok(dat_model_load(renewed, path, &o));
    ck_assert_int_eq(reported_kept, 2);
    int64_t nh;
    float *head = segment_copy(renewed, 8, &nh), *head0 = segment_copy(init, 8, &nh);
    ck_assert_mem_eq(head, head0, (size_t)nh * sizeof *head);
    pb = params_copy(renewed, &nb);
    ck_assert_mem_eq(pa, pb, (size_t)(nb - (size_t)(nh + 10) * sizeof(float)));
    o.reinit_head = (dat_reinit_head)3;
    ck_assert_dat_err(dat_model_load(renewed, path, &o), DAT_ERR_INVALID_ARG, "reinit_head");
    free(head);
    free(head0);
    free(pa);
    free(pb);
    dat_model_destroy(renewed);
    dat_model_destroy(init);
    dat_model_destroy(src);
    dat_model_destroy(dst);
    dat_model_destroy(fresh);
    dat_model_destroy(same);
}
END_TEST

/* A mismatch anywhere but the classifier is refused, naming the tensor, with
 * the model unchanged. */
START_TEST(test_reinit_head_refuses_other_architectures)
{
    dat_model *src = preset_classes("preact_resnet18", 10, 1);
    char path[192];
    snprintf(path, sizeof path, "%s/r18.safetensors", dir);
    ck_assert_dat_ok(dat_model_save(src, path));
    dat_model *dst = preset_classes("cnn_small", 5, 2);
    dat_model_load_options o;
    dat_model_load_options_init(&o);
    o.reinit_head = DAT_REINIT_HEAD_IF_MISMATCHED;
    size_t n0, n1;
    float *before = params_copy(dst, &n0);
    ck_assert_dat_err(dat_model_load(dst, path, &o), DAT_ERR_FORMAT, "'conv1.weight'");
    float *after = params_copy(dst, &n1);
    ck_assert_mem_eq(before, after, n0);
    /* A caller built against the first layout (no reinit_head) still works. */
    dat_model_load_options old;
    dat_model_load_options_init(&old);
    old.size = (uint32_t)offsetof(dat_model_load_options, reinit_head);
    ck_assert_dat_ok(dat_model_load(src, path, &old));
    old.size = 4;
    ck_assert_dat_err(dat_model_load(src, path, &old), DAT_ERR_INVALID_ARG, "size");
    free(before);
    free(after);
    dat_model_destroy(src);
    dat_model_destroy(dst);
}
END_TEST

START_TEST(test_truncated_files)
{
    dat_model *a = preset("mlp", 1), *b = preset("mlp", 2);
    char path[192], cut[192];
    snprintf(path, sizeof path, "%s/mlp.safetensors", dir);
    snprintf(cut, sizeof cut, "%s/cut.safetensors", dir);
    ck_assert_dat_ok(dat_model_save(a, path));
    size_t size, n0, n1;
    unsigned char *full = slurp(path, &size);
    float *before = params_copy(b, &n0);
    /* Every prefix of the header, then a sample of prefixes into the data. */
    for (size_t len = 0; len < size; len += len < 2048 ? 1 : 4099) {
        spit(cut, full, len);
        ck_assert_msg(dat_model_load(b, cut, NULL) == DAT_ERR_FORMAT, "prefix of %zu bytes", len);
    }
    float *after = params_copy(b, &n1);
    ck_assert_mem_eq(before, after, n0);
    free(full);
    free(before);
    free(after);
    dat_model_destroy(a);
    dat_model_destroy(b);
}
END_TEST

/* A file of one 2-float tensor whose header is `json`, with `data` bytes after it. */
static dat_status parse_header(const char *json, size_t data)
{
    size_t hl = strlen(json), size = 8 + hl + data;
    unsigned char *b = calloc(1, size);
    for (int i = 0; i < 8; ++i)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, json, hl);
    dat_st_file f;
    dat_status s = dat_st_parse("hostile", b, size, &f);
    if (s == DAT_OK)
        dat_st_free(&f);
    free(b);
    return s;
}

START_TEST(test_hostile_headers)
{
    static const struct {
        const char *json, *needle;
    } bad[] = {
        {"[]", "expected '{'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", "expected ','"},
        {"{\"a\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}", "unknown dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", "non-negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", "fraction"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", "need 12"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", "exceed the data size"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "a hole"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "an overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}", "appears twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", "unknown key"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", "needs dtype, shape and data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}",
         "longer than 8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}",
         "too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
         "\"data_offsets\":[0,8]}}", "overflows"},
        {"{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "not a string"},
        {"{\"a\\q\":{}}", "invalid escape"},
        {"{\"a\\ud800\":{}}", "low half"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", "after the header"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", "expected"},
        {"{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
         "expected '{'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        dat_clear_error();
        dat_status s = parse_header(bad[i].json, 8);
        ck_assert_msg(s == DAT_ERR_FORMAT, "case %zu (%s): %s", i, bad[i].json, dat_status_string(s));
        ck_assert_msg(strstr(dat_last_error(), bad[i].needle), "case %zu: message \"%s\" lacks \"%s\"",
                      i, dat_last_error(), bad[i].needle);
        ck_assert_msg(strstr(dat_last_error(), "hostile"), "case %zu: the file is not named", i);
    }
    /* A header length beyond the file. */
    unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    dat_st_file f;
    ck_assert_dat_err(dat_st_parse("huge", huge, sizeof huge, &f), DAT_ERR_FORMAT, "exceeds");
    /* The valid twin of the cases above parses. */
    ck_assert_dat_ok(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                  "\"__metadata__\":{\"k\":\"v\\u00e9\"}}", 8));
}
END_TEST

/* A header of 200 000 empty tensors parses in n log n (a scan for repeated
 * names per entry took 34 s for 40 000, hours for this), and a repeat among
 * them is still found. */
START_TEST(test_many_tensors)
{
    enum { COUNT = 200000 };
    const char *one = "\"t%d\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}";
    char *json = malloc((size_t)COUNT * 64 + 8), *p = json;
    for (int twice = 0; twice < 2; ++twice) {
        p = json;
        *p++ = '{';
        for (int i = 0; i < COUNT; ++i) {
            p += sprintf(p, one, twice && i == COUNT - 1 ? 7 : i);
            *p++ = i + 1 < COUNT ? ',' : '}';
        }
        *p = '\0';
        dat_clear_error();
        dat_status s = parse_header(json, 0);
        ck_assert_msg(s == (twice ? DAT_ERR_FORMAT : DAT_OK), "%s", dat_last_error());
        ck_assert(!twice || strstr(dat_last_error(), "tensor 't7' appears twice"));
    }
    free(json);
}
END_TEST

START_TEST(test_atomic_write)
{
    dat_model *a = preset("mlp", 1), *b = preset("mlp", 2);
    char path[192], sub[96];
    snprintf(sub, sizeof sub, "%s/ro", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(path, sizeof path, "%s/m.safetensors", sub);
    ck_assert_dat_ok(dat_model_save(a, path));
    ck_assert_int_eq(chmod(sub, 0555), 0);
    if (access(sub, W_OK) == 0) { /* root ignores permissions: nothing to test then */
        dat_model_destroy(a);
        dat_model_destroy(b);
        return;
    }
    ck_assert_dat_err(dat_model_save(b, path), DAT_ERR_IO, "m.safetensors");
    ck_assert_dat_ok(dat_model_load(b, path, NULL)); /* the old file is intact */
    dat_model_destroy(a);
    dat_model_destroy(b);
}
END_TEST

/* A folder where a checkpoint is expected (--checkpoint /tmp, a --resume whose
 * last.safetensors is a folder) is an I/O error that says so, not an allocation of
 * the 2^63 bytes its "size" gives. */
START_TEST(test_folder_refused)
{
    dat_model *a = preset("mlp", 1);
    char sub[96];
    snprintf(sub, sizeof sub, "%s/last.safetensors", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    dat_checkpoint_info got = {.size = sizeof got};
    ck_assert_dat_err(dat_checkpoint_load(sub, a, NULL, &got, NULL, 0), DAT_ERR_IO,
                      "not a regular file (a folder)");
    ck_assert_dat_err(dat_checkpoint_load(dir, a, NULL, &got, NULL, 0), DAT_ERR_IO, dir);
    ck_assert_dat_err(dat_model_load(a, sub, NULL), DAT_ERR_IO, "not a regular file (a folder)");
    ck_assert_dat_err(dat_model_load(a, sub, NULL), DAT_ERR_IO, "last.safetensors");
    dat_model_destroy(a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_other_model_refused_without_change);
    tcase_add_test(tc, test_normalization_recorded);
    tcase_add_test(tc, test_normalization_text_ignores_locale);
    tcase_add_test(tc, test_training_checkpoint_all_or_nothing);
    tcase_add_test(tc, test_layers_group_segments_by_module);
    tcase_add_test(tc, test_reinit_head_keeps_the_rest);
    tcase_add_test(tc, test_reinit_head_refuses_other_architectures);
    tcase_add_test(tc, test_truncated_files);
    tcase_add_test(tc, test_hostile_headers);
    tcase_add_test(tc, test_many_tensors);
    tcase_add_test(tc, test_atomic_write);
    tcase_add_test(tc, test_folder_refused);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
