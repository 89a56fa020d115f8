/* Context, tensors, statuses, versions and logging on the CPU backend. */
#include <math.h>
#include <stdio.h>

#include "check_util.h"

static dat_ctx *cpu_ctx(uint64_t seed)
{
    dat_ctx_options o;
    ck_assert_dat_ok(dat_ctx_options_init(&o));
    o.seed = seed;
    o.num_threads = 2;
    dat_ctx *ctx = NULL;
    ck_assert_dat_ok(dat_ctx_create(&ctx, &o));
    return ctx;
}

START_TEST(test_version)
{
    ck_assert_uint_eq(dat_version(), DAT_VERSION_NUMBER);
    ck_assert_str_eq(dat_version_string(), DAT_VERSION_STRING);
}
END_TEST

START_TEST(test_status_strings)
{
    ck_assert_str_eq(dat_status_string(DAT_OK), "DAT_OK");
    ck_assert_str_eq(dat_status_string(DAT_ERR_NO_DEVICE), "DAT_ERR_NO_DEVICE");
    ck_assert_str_eq(dat_status_string((dat_status)999), "DAT_ERR_UNKNOWN");
    /* Values are ABI: they must never move. */
    ck_assert_int_eq(DAT_ERR_INVALID_ARG, 1);
    ck_assert_int_eq(DAT_ERR_FORMAT, 6);
    ck_assert_int_eq(DAT_ERR_INTERNAL, 12);
    ck_assert_uint_eq(sizeof(dat_status), 4);
    ck_assert_str_eq(dat_dtype_name(DAT_BFLOAT16), "bfloat16");
    ck_assert_uint_eq(dat_dtype_size(DAT_BFLOAT16), 2);
    ck_assert_uint_eq(dat_dtype_size((dat_dtype)42), 0);
}
END_TEST

START_TEST(test_ctx_defaults)
{
    dat_ctx *ctx = NULL;
    ck_assert_dat_ok(dat_ctx_create(&ctx, NULL));
    dat_device_kind kind;
    int32_t ordinal, threads;
    uint64_t seed;
    ck_assert_dat_ok(dat_ctx_device(ctx, &kind, &ordinal));
    ck_assert_int_eq(kind, DAT_DEVICE_CPU);
    ck_assert_int_eq(ordinal, -1);
    ck_assert_dat_ok(dat_ctx_num_threads(ctx, &threads));
    ck_assert_int_ge(threads, 1);
    ck_assert_dat_ok(dat_ctx_seed(ctx, &seed));
    ck_assert_uint_eq(seed, 0);
    ck_assert_dat_ok(dat_ctx_synchronize(ctx));
    dat_ctx_destroy(ctx);
    dat_ctx_destroy(NULL);
}
END_TEST

START_TEST(test_cuda_absent_is_a_status)
{
    int32_t count = -1;
    ck_assert_dat_ok(dat_cuda_device_count(&count));
    if (count > 0)
        return; /* a GPU is present: tests/unit/test_cuda.c covers it */
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.device = DAT_DEVICE_CUDA;
    dat_ctx *ctx = (dat_ctx *)0x1;
    dat_clear_error();
    dat_status s = dat_ctx_create(&ctx, &o);
    ck_assert_ptr_null(ctx);
    if (dat_has_cuda())
        ck_assert_int_eq(s, DAT_ERR_NO_DEVICE);
    else
        ck_assert_int_eq(s, DAT_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(dat_last_error(), "CUDA"));
}
END_TEST

START_TEST(test_tensor_roundtrip)
{
    dat_ctx *ctx = cpu_ctx(1);
    int64_t shape[3] = {2, 3, 4};
    dat_tensor *t = NULL;
    ck_assert_dat_ok(dat_tensor_create(&t, ctx, DAT_FLOAT32, 3, shape));
    int32_t nd;
    int64_t got[DAT_TENSOR_MAX_DIMS];
    int64_t numel;
    size_t nbytes;
    dat_dtype dt;
    ck_assert_dat_ok(dat_tensor_shape(t, &nd, got));
    ck_assert_int_eq(nd, 3);
    ck_assert_int_eq(got[0], 2);
    ck_assert_int_eq(got[2], 4);
    ck_assert_dat_ok(dat_tensor_numel(t, &numel));
    ck_assert_int_eq(numel, 24);
    ck_assert_dat_ok(dat_tensor_nbytes(t, &nbytes));
    ck_assert_uint_eq(nbytes, 96);
    ck_assert_dat_ok(dat_tensor_dtype(t, &dt));
    ck_assert_int_eq(dt, DAT_FLOAT32);

    float zeros[24], in[24], out[24];
    ck_assert_dat_ok(dat_tensor_read(t, zeros, sizeof zeros));
    for (int i = 0; i < 24; ++i) {
        ck_assert_float_eq(zeros[i], 0.0f);
        in[i] = (float)i * 0.5f - 3.0f;
    }
    ck_assert_dat_ok(dat_tensor_write(t, in, sizeof in));
    dat_tensor *u = NULL;
    ck_assert_dat_ok(dat_tensor_create(&u, ctx, DAT_FLOAT32, 3, shape));
    ck_assert_dat_ok(dat_tensor_copy(u, t));
    ck_assert_dat_ok(dat_tensor_read(u, out, sizeof out));
    ck_assert_mem_eq(in, out, sizeof in);

    void *host = NULL;
    ck_assert_dat_ok(dat_tensor_host_data(u, &host));
    ck_assert_float_eq(((float *)host)[5], in[5]);

    int64_t flat[1] = {24};
    ck_assert_dat_ok(dat_tensor_reshape(u, 1, flat));
    ck_assert_dat_ok(dat_tensor_shape(u, &nd, got));
    ck_assert_int_eq(nd, 1);
    ck_assert_int_eq(got[0], 24);
    dat_tensor_destroy(u);
    dat_tensor_destroy(t);
    dat_tensor_destroy(NULL);
    dat_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_tensor_scalar_and_fill)
{
    dat_ctx *ctx = cpu_ctx(1);
    dat_tensor *s = NULL;
    ck_assert_dat_ok(dat_tensor_create(&s, ctx, DAT_INT32, 0, NULL));
    ck_assert_dat_ok(dat_tensor_fill(s, -7));
    int32_t v = 0;
    ck_assert_dat_ok(dat_tensor_read(s, &v, sizeof v));
    ck_assert_int_eq(v, -7);
    dat_tensor_destroy(s);

    int64_t n[1] = {1000};
    dat_tensor *b = NULL;
    ck_assert_dat_ok(dat_tensor_create(&b, ctx, DAT_UINT8, 1, n));
    ck_assert_dat_ok(dat_tensor_fill(b, 255));
    uint8_t bytes[1000];
    ck_assert_dat_ok(dat_tensor_read(b, bytes, sizeof bytes));
    for (int i = 0; i < 1000; ++i)
        ck_assert_uint_eq(bytes[i], 255);
    ck_assert_dat_err(dat_tensor_fill(b, 256), DAT_ERR_INVALID_ARG, "not representable");
    ck_assert_dat_err(dat_tensor_fill(b, 1.5), DAT_ERR_INVALID_ARG, "uint8");
    dat_tensor_destroy(b);

    int64_t big[1] = {100000};
    dat_tensor *f = NULL;
    ck_assert_dat_ok(dat_tensor_create(&f, ctx, DAT_FLOAT32, 1, big));
    ck_assert_dat_ok(dat_tensor_fill(f, 0.25));
    float *data;
    ck_assert_dat_ok(dat_tensor_host_data(f, (void **)&data));
    for (int i = 0; i < 100000; i += 997)
        ck_assert_float_eq(data[i], 0.25f);
    dat_tensor_destroy(f);
    dat_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_bfloat16)
{
    dat_ctx *ctx = cpu_ctx(3);
    int64_t n[1] = {4};
    dat_tensor *h = NULL;
    ck_assert_dat_ok(dat_tensor_create(&h, ctx, DAT_BFLOAT16, 1, n));
    /* 1 + 2^-8 is halfway between two bfloat16 values: ties go to even (1.0). */
    ck_assert_dat_ok(dat_tensor_fill(h, 1.0 + 1.0 / 256));
    uint16_t bits[4];
    ck_assert_dat_ok(dat_tensor_read(h, bits, sizeof bits));
    ck_assert_uint_eq(bits[0], 0x3f80);
    ck_assert_dat_ok(dat_tensor_fill(h, 1.0 + 3.0 / 256));
    ck_assert_dat_ok(dat_tensor_read(h, bits, sizeof bits));
    ck_assert_uint_eq(bits[3], 0x3f82);
    ck_assert_dat_ok(dat_tensor_fill(h, NAN));
    ck_assert_dat_ok(dat_tensor_read(h, bits, sizeof bits));
    ck_assert_uint_eq(bits[1] & 0x7f80, 0x7f80);
    ck_assert_uint_ne(bits[1] & 0x007f, 0);

    /* Random bfloat16 fills take the same draws as float32 ones, rounded. */
    int64_t m[1] = {1001};
    dat_tensor *hb = NULL, *fl = NULL;
    ck_assert_dat_ok(dat_tensor_create(&hb, ctx, DAT_BFLOAT16, 1, m));
    ck_assert_dat_ok(dat_tensor_create(&fl, ctx, DAT_FLOAT32, 1, m));
    ck_assert_dat_ok(dat_tensor_fill_normal(hb, 0.0f, 1.0f, 5, 17));
    ck_assert_dat_ok(dat_tensor_fill_normal(fl, 0.0f, 1.0f, 5, 17));
    uint16_t hv[1001];
    float fv[1001];
    ck_assert_dat_ok(dat_tensor_read(hb, hv, sizeof hv));
    ck_assert_dat_ok(dat_tensor_read(fl, fv, sizeof fv));
    for (int i = 0; i < 1001; ++i) {
        float back;
        uint32_t u = (uint32_t)hv[i] << 16;
        memcpy(&back, &u, 4);
        ck_assert_msg(fabsf(back - fv[i]) <= fabsf(fv[i]) * (1.0f / 256) + 1e-30f,
                      "element %d: bf16 %g vs f32 %g", i, (double)back, (double)fv[i]);
    }
    dat_tensor_destroy(hb);
    dat_tensor_destroy(fl);
    dat_tensor_destroy(h);
    dat_ctx_destroy(ctx);
}
END_TEST

typedef struct {
    int calls;
    dat_log_level last_level;
    char last[256];
} log_sink;

static void sink_fn(dat_log_level level, const char *msg, void *user)
{
    log_sink *s = user;
    s->calls++;
    s->last_level = level;
    snprintf(s->last, sizeof s->last, "%s", msg);
}

START_TEST(test_log_callback)
{
    log_sink sink = {0};
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.log_fn = sink_fn;
    o.log_user = &sink;
    o.log_level = DAT_LOG_DEBUG;
    dat_ctx *ctx = NULL;
    ck_assert_dat_ok(dat_ctx_create(&ctx, &o));
    ck_assert_int_ge(sink.calls, 1);
    ck_assert_int_eq(sink.last_level, DAT_LOG_DEBUG);
    ck_assert_ptr_nonnull(strstr(sink.last, "cpu"));
    dat_ctx_destroy(ctx);

    /* Below the level nothing arrives. */
    log_sink quiet = {0};
    o.log_user = &quiet;
    o.log_level = DAT_LOG_WARN;
    ck_assert_dat_ok(dat_ctx_create(&ctx, &o));
    ck_assert_int_eq(quiet.calls, 0);
    dat_ctx_destroy(ctx);
}
END_TEST

START_TEST(test_last_error_is_per_thread_and_clearable)
{
    dat_clear_error();
    ck_assert_str_eq(dat_last_error(), "");
    ck_assert_int_eq(dat_ctx_options_init(NULL), DAT_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(dat_last_error(), "dat_ctx_options_init"));
    /* A successful call leaves the message as it was. */
    dat_ctx_options o;
    ck_assert_dat_ok(dat_ctx_options_init(&o));
    ck_assert_ptr_nonnull(strstr(dat_last_error(), "opts must not be NULL"));
    dat_clear_error();
    ck_assert_str_eq(dat_last_error(), "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_status_strings);
    tcase_add_test(tc, test_ctx_defaults);
    tcase_add_test(tc, test_cuda_absent_is_a_status);
    tcase_add_test(tc, test_tensor_roundtrip);
    tcase_add_test(tc, test_tensor_scalar_and_fill);
    tcase_add_test(tc, test_bfloat16);
    tcase_add_test(tc, test_log_callback);
    tcase_add_test(tc, test_last_error_is_per_thread_and_clearable);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
