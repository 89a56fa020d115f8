/*
 * Every public function with NULL handles, NULL outputs, wrong options sizes,
 * wrong dtypes and shapes: the status must say so, dat_last_error() must name
 * the problem, nothing may crash, and a failing create leaves *out == NULL.
 * tests/abi/check_symbols.sh fails if an exported function is missing here.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "check_util.h"
#if DAT_TEST_MPI
#include "libdat/dat_mpi.h"
#endif

static dat_ctx *ctx;
static dat_tensor *f32; /* 2 x 3 float32 */

static void setup(void)
{
    ck_assert_dat_ok(dat_ctx_create(&ctx, NULL));
    int64_t shape[2] = {2, 3};
    ck_assert_dat_ok(dat_tensor_create(&f32, ctx, DAT_FLOAT32, 2, shape));
}

static void teardown(void)
{
    dat_tensor_destroy(f32);
    dat_ctx_destroy(ctx);
}

START_TEST(test_infallible_functions)
{
    ck_assert_str_eq(dat_status_string((dat_status)-5), "DAT_ERR_UNKNOWN");
    ck_assert_ptr_nonnull(dat_last_error());
    dat_clear_error();
    ck_assert_uint_gt(dat_version(), 0);
    ck_assert_ptr_nonnull(dat_version_string());
    ck_assert_uint_eq(dat_dtype_size((dat_dtype)-1), 0);
    ck_assert_str_eq(dat_dtype_name((dat_dtype)77), "unknown");
    ck_assert(dat_has_cuda() == 0 || dat_has_cuda() == 1);
    dat_ctx_destroy(NULL);
    dat_tensor_destroy(NULL);
}
END_TEST

/* A program built against older headers has smaller options structs: the sized
 * initializers write its bytes only, and record its size, which the functions that
 * take the struct accept (their newer fields keep the defaults). */
START_TEST(test_options_init_writes_the_callers_size)
{
    size_t older = offsetof(dat_loss_options, loss_sum); /* a 0.4 caller's struct */
    union {
        dat_loss_options o;
        unsigned char bytes[sizeof(dat_loss_options) + 8];
    } u;
    memset(&u, 0xab, sizeof u);
    ck_assert_dat_ok(dat_loss_options_init_sized(&u.o, older));
    ck_assert_uint_eq(u.o.size, older);
    ck_assert_float_eq(u.o.adv_weight, 1.0f);
    for (size_t i = older; i < sizeof u; ++i)
        ck_assert_msg(u.bytes[i] == 0xab, "byte %zu past the caller's struct written", i);
    ck_assert_dat_err(dat_loss_options_init_sized(&u.o, 2), DAT_ERR_INVALID_ARG, "size = 2");
    dat_loss_options whole;
    ck_assert_dat_ok(dat_loss_options_init(&whole)); /* the macro: the whole struct */
    ck_assert_uint_eq(whole.size, sizeof whole);
    dat_layer_spec spec;
    ck_assert_dat_ok(dat_layer_spec_init_sized(&spec, DAT_LAYER_RELU, 1000));
    ck_assert_uint_eq(spec.size, sizeof spec); /* a newer caller's: what this libdat has */
    /* Every sized initializer: NULL and a size without room for the size field. */
    union {
        uint32_t size;
        max_align_t align;
        unsigned char bytes[4096];
    } any;
#define SIZED(init)                                                               \
    ck_assert_int_eq(init(NULL, 64), DAT_ERR_INVALID_ARG);                        \
    ck_assert_int_eq(init((void *)&any, 3), DAT_ERR_INVALID_ARG)
    SIZED(dat_ctx_options_init_sized);
    SIZED(dat_model_options_init_sized);
    SIZED(dat_input_grad_options_init_sized);
    SIZED(dat_model_load_options_init_sized);
    SIZED(dat_attack_options_init_sized);
    SIZED(dat_optim_options_init_sized);
    SIZED(dat_quantizer_options_init_sized);
    SIZED(dat_comm_options_init_sized);
    SIZED(dat_grad_sync_options_init_sized);
    SIZED(dat_dataset_options_init_sized);
    SIZED(dat_smooth_options_init_sized);
    SIZED(dat_autoattack_options_init_sized);
    ck_assert_int_eq(dat_layer_spec_init_sized(NULL, DAT_LAYER_RELU, 64), DAT_ERR_INVALID_ARG);
    ck_assert_int_eq(dat_layer_spec_init_sized((void *)&any, DAT_LAYER_RELU, 3),
                     DAT_ERR_INVALID_ARG);
#undef SIZED
    dat_ctx_options co; /* the 0.6 symbol, which fills a whole struct, stays */
    ck_assert_dat_ok((dat_ctx_options_init)(&co));
    ck_assert_uint_eq(co.size, sizeof co);
}
END_TEST

START_TEST(test_ctx_misuse)
{
    ck_assert_dat_err(dat_ctx_options_init(NULL), DAT_ERR_INVALID_ARG, "opts");
    ck_assert_dat_err(dat_ctx_create(NULL, NULL), DAT_ERR_INVALID_ARG, "out");

    dat_ctx_options o;
    dat_ctx_options_init(&o);
    dat_ctx *c = (dat_ctx *)0x1;
    o.size = 3;
    ck_assert_dat_err(dat_ctx_create(&c, &o), DAT_ERR_INVALID_ARG, "size");
    ck_assert_ptr_null(c);
    o.size = sizeof o + 8;
    c = (dat_ctx *)0x1;
    ck_assert_dat_err(dat_ctx_create(&c, &o), DAT_ERR_INVALID_ARG, "dat_ctx_options_init");
    ck_assert_ptr_null(c);

    dat_ctx_options_init(&o);
    o.device = (dat_device_kind)9;
    ck_assert_dat_err(dat_ctx_create(&c, &o), DAT_ERR_INVALID_ARG, "device");
    dat_ctx_options_init(&o);
    o.device_ordinal = -1;
    ck_assert_dat_err(dat_ctx_create(&c, &o), DAT_ERR_INVALID_ARG, "device_ordinal");
    dat_ctx_options_init(&o);
    o.num_threads = -2;
    ck_assert_dat_err(dat_ctx_create(&c, &o), DAT_ERR_INVALID_ARG, "num_threads");
    dat_ctx_options_init(&o);
    o.log_level = (dat_log_level)17;
    ck_assert_dat_err(dat_ctx_create(&c, &o), DAT_ERR_INVALID_ARG, "log_level");
    ck_assert_ptr_null(c);
    dat_ctx_options_init(&o);
    o.precision = (dat_precision)3;
    ck_assert_dat_err(dat_ctx_create(&c, &o), DAT_ERR_INVALID_ARG, "precision");
    dat_ctx_options_init(&o);
    o.channels_last = 2;
    ck_assert_dat_err(dat_ctx_create(&c, &o), DAT_ERR_INVALID_ARG, "channels_last");
    o.channels_last = -2;
    ck_assert_dat_err(dat_ctx_create(&c, &o), DAT_ERR_INVALID_ARG, "channels_last");
    dat_ctx_options_init(&o);
    o.tune_convolutions = 2;
    ck_assert_dat_err(dat_ctx_create(&c, &o), DAT_ERR_INVALID_ARG, "tune_convolutions");
    dat_ctx_options_init(&o);
    o.deterministic = -1;
    ck_assert_dat_err(dat_ctx_create(&c, &o), DAT_ERR_INVALID_ARG, "deterministic");
    dat_ctx_options_init(&o);
    o.cuda_graphs = -1;
    ck_assert_dat_err(dat_ctx_create(&c, &o), DAT_ERR_INVALID_ARG, "cuda_graphs");
    ck_assert_ptr_null(c);
    /* A caller built against the 0.1 headers passes the fields up to log_level:
     * accepted, the newer fields keep their defaults. */
    dat_ctx_options_init(&o);
    o.size = (uint32_t)offsetof(dat_ctx_options, precision);
    o.precision = (dat_precision)99; /* beyond the caller's struct: never read */
    ck_assert_dat_ok(dat_ctx_create(&c, &o));
    dat_ctx_destroy(c);
    c = NULL;
    /* ... as its sizeof, whose tail padding (what precision now holds) is garbage. */
    o.size = (uint32_t)((offsetof(dat_ctx_options, precision) + _Alignof(dat_ctx_options) - 1) /
                        _Alignof(dat_ctx_options) * _Alignof(dat_ctx_options));
    ck_assert_uint_gt(o.size, offsetof(dat_ctx_options, precision));
    ck_assert_dat_ok(dat_ctx_create(&c, &o));
    dat_ctx_destroy(c);
    c = NULL;
    /* A 0.2 caller's struct ends in tail padding where reserved0 now is; its
     * size stops before cuda_graphs, whatever that padding held. */
    ck_assert_uint_eq(offsetof(dat_ctx_options, reserved0) + sizeof(int32_t),
                      offsetof(dat_ctx_options, cuda_graphs));
    dat_ctx_options_init(&o);
    o.size = (uint32_t)offsetof(dat_ctx_options, cuda_graphs);
    o.reserved0 = 12345;
    o.cuda_graphs = 99; /* beyond the caller's struct: never read */
    ck_assert_dat_ok(dat_ctx_create(&c, &o));
    dat_ctx_destroy(c);
    c = NULL;
    /* A 0.3 caller's struct stops before channels_last. */
    dat_ctx_options_init(&o);
    o.size = (uint32_t)offsetof(dat_ctx_options, channels_last);
    o.channels_last = 99; /* beyond the caller's struct: never read */
    ck_assert_dat_ok(dat_ctx_create(&c, &o));
    dat_ctx_destroy(c);
    c = NULL;

    ck_assert_dat_err(dat_ctx_synchronize(NULL), DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_dat_err(dat_ctx_device(NULL, NULL, NULL), DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_dat_err(dat_ctx_num_threads(NULL, NULL), DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_dat_err(dat_ctx_num_threads(ctx, NULL), DAT_ERR_INVALID_ARG, "num_threads");
    ck_assert_dat_err(dat_ctx_seed(NULL, NULL), DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_dat_err(dat_ctx_seed(ctx, NULL), DAT_ERR_INVALID_ARG, "seed");
    dat_step_graph *g = NULL;
    ck_assert_dat_err(dat_capture_begin(NULL), DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_dat_err(dat_capture_begin(ctx), DAT_ERR_UNSUPPORTED, "graphs");
    ck_assert_dat_err(dat_capture_end(NULL, &g), DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_dat_err(dat_capture_end(ctx, NULL), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_capture_end(ctx, &g), DAT_ERR_STATE, "not recording");
    ck_assert_ptr_null(g);
    ck_assert_dat_err(dat_step_graph_launch(NULL), DAT_ERR_INVALID_ARG, "graph");
    dat_step_graph_destroy(NULL);
    ck_assert_dat_err(dat_cuda_device_count(NULL), DAT_ERR_INVALID_ARG, "count");
}
END_TEST

START_TEST(test_tensor_create_misuse)
{
    int64_t good[2] = {2, 3};
    dat_tensor *t = (dat_tensor *)0x1;
    ck_assert_dat_err(dat_tensor_create(NULL, ctx, DAT_FLOAT32, 2, good), DAT_ERR_INVALID_ARG,
                      "out");
    ck_assert_dat_err(dat_tensor_create(&t, NULL, DAT_FLOAT32, 2, good), DAT_ERR_INVALID_ARG,
                      "ctx");
    ck_assert_ptr_null(t);
    t = (dat_tensor *)0x1;
    ck_assert_dat_err(dat_tensor_create(&t, ctx, (dat_dtype)12, 2, good), DAT_ERR_INVALID_ARG,
                      "dtype");
    ck_assert_ptr_null(t);
    ck_assert_dat_err(dat_tensor_create(&t, ctx, DAT_FLOAT32, -1, good), DAT_ERR_INVALID_ARG,
                      "ndim");
    ck_assert_dat_err(dat_tensor_create(&t, ctx, DAT_FLOAT32, DAT_TENSOR_MAX_DIMS + 1, good),
                      DAT_ERR_INVALID_ARG, "ndim");
    ck_assert_dat_err(dat_tensor_create(&t, ctx, DAT_FLOAT32, 2, NULL), DAT_ERR_INVALID_ARG,
                      "shape");
    int64_t zero[2] = {2, 0}, neg[2] = {-1, 3}, huge[3] = {1 << 20, 1 << 20, 1 << 20};
    ck_assert_dat_err(dat_tensor_create(&t, ctx, DAT_FLOAT32, 2, zero), DAT_ERR_INVALID_ARG,
                      "shape[1] = 0");
    ck_assert_dat_err(dat_tensor_create(&t, ctx, DAT_FLOAT32, 2, neg), DAT_ERR_INVALID_ARG,
                      "shape[0] = -1");
    ck_assert_dat_err(dat_tensor_create(&t, ctx, DAT_UINT8, 3, huge), DAT_ERR_INVALID_ARG,
                      "overflows");
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_tensor_query_misuse)
{
    int32_t nd;
    int64_t n;
    size_t nb;
    dat_dtype dt;
    ck_assert_dat_err(dat_tensor_shape(NULL, &nd, NULL), DAT_ERR_INVALID_ARG, "tensor");
    ck_assert_dat_err(dat_tensor_dtype(NULL, &dt), DAT_ERR_INVALID_ARG, "tensor");
    ck_assert_dat_err(dat_tensor_dtype(f32, NULL), DAT_ERR_INVALID_ARG, "dtype");
    ck_assert_dat_err(dat_tensor_numel(NULL, &n), DAT_ERR_INVALID_ARG, "tensor");
    ck_assert_dat_err(dat_tensor_numel(f32, NULL), DAT_ERR_INVALID_ARG, "numel");
    ck_assert_dat_err(dat_tensor_nbytes(NULL, &nb), DAT_ERR_INVALID_ARG, "tensor");
    ck_assert_dat_err(dat_tensor_nbytes(f32, NULL), DAT_ERR_INVALID_ARG, "nbytes");
    void *p;
    ck_assert_dat_err(dat_tensor_host_data(NULL, &p), DAT_ERR_INVALID_ARG, "tensor");
    ck_assert_dat_err(dat_tensor_host_data(f32, NULL), DAT_ERR_INVALID_ARG, "data");

    int64_t five[1] = {5}, six[1] = {6};
    ck_assert_dat_err(dat_tensor_reshape(NULL, 1, six), DAT_ERR_INVALID_ARG, "tensor");
    ck_assert_dat_err(dat_tensor_reshape(f32, 1, five), DAT_ERR_INVALID_ARG, "6");
    ck_assert_dat_err(dat_tensor_reshape(f32, 1, NULL), DAT_ERR_INVALID_ARG, "shape");
    ck_assert_dat_ok(dat_tensor_shape(f32, &nd, NULL));
    ck_assert_int_eq(nd, 2); /* a refused reshape changes nothing */
}
END_TEST

START_TEST(test_tensor_data_misuse)
{
    float buf[6] = {1, 2, 3, 4, 5, 6}, back[6];
    ck_assert_dat_ok(dat_tensor_write(f32, buf, sizeof buf));
    ck_assert_dat_err(dat_tensor_write(NULL, buf, sizeof buf), DAT_ERR_INVALID_ARG, "tensor");
    ck_assert_dat_err(dat_tensor_write(f32, NULL, sizeof buf), DAT_ERR_INVALID_ARG, "src");
    float zeros[7] = {0};
    ck_assert_dat_err(dat_tensor_write(f32, zeros, sizeof zeros), DAT_ERR_INVALID_ARG, "24 bytes");
    ck_assert_dat_err(dat_tensor_read(NULL, back, sizeof back), DAT_ERR_INVALID_ARG, "tensor");
    ck_assert_dat_err(dat_tensor_read(f32, NULL, sizeof back), DAT_ERR_INVALID_ARG, "dst");
    ck_assert_dat_err(dat_tensor_read(f32, back, 4), DAT_ERR_INVALID_ARG, "nbytes = 4");
    ck_assert_dat_ok(dat_tensor_read(f32, back, sizeof back));
    ck_assert_mem_eq(buf, back, sizeof buf); /* the refused write lost nothing */

    int64_t shape23[2] = {2, 3}, shape32[2] = {3, 2};
    dat_tensor *i32 = NULL, *other = NULL;
    ck_assert_dat_ok(dat_tensor_create(&i32, ctx, DAT_INT32, 2, shape23));
    ck_assert_dat_ok(dat_tensor_create(&other, ctx, DAT_FLOAT32, 2, shape32));
    ck_assert_dat_err(dat_tensor_copy(NULL, f32), DAT_ERR_INVALID_ARG, "dst");
    ck_assert_dat_err(dat_tensor_copy(f32, NULL), DAT_ERR_INVALID_ARG, "src");
    ck_assert_dat_err(dat_tensor_copy(i32, f32), DAT_ERR_INVALID_ARG, "dtypes differ");
    ck_assert_dat_err(dat_tensor_copy(other, f32), DAT_ERR_INVALID_ARG, "shapes differ");

    ck_assert_dat_err(dat_tensor_fill(NULL, 0), DAT_ERR_INVALID_ARG, "tensor");
    ck_assert_dat_err(dat_tensor_fill(i32, 0.5), DAT_ERR_INVALID_ARG, "int32");
    ck_assert_dat_err(dat_tensor_fill(i32, NAN), DAT_ERR_INVALID_ARG, "int32");
    ck_assert_dat_err(dat_tensor_fill(i32, 3e9), DAT_ERR_INVALID_ARG, "int32");

    ck_assert_dat_err(dat_tensor_fill_uniform(NULL, 0, 1, 0, 0), DAT_ERR_INVALID_ARG, "tensor");
    ck_assert_dat_err(dat_tensor_fill_uniform(i32, 0, 1, 0, 0), DAT_ERR_INVALID_ARG, "int32");
    ck_assert_dat_err(dat_tensor_fill_uniform(f32, 1, 0, 0, 0), DAT_ERR_INVALID_ARG, "low <= high");
    ck_assert_dat_err(dat_tensor_fill_uniform(f32, NAN, 1, 0, 0), DAT_ERR_INVALID_ARG, "finite");
    ck_assert_dat_err(dat_tensor_fill_uniform(f32, -3e38f, 3e38f, 0, 0), DAT_ERR_INVALID_ARG,
                      "width");
    ck_assert_dat_err(dat_tensor_fill_normal(NULL, 0, 1, 0, 0), DAT_ERR_INVALID_ARG, "tensor");
    ck_assert_dat_err(dat_tensor_fill_normal(i32, 0, 1, 0, 0), DAT_ERR_INVALID_ARG, "int32");
    ck_assert_dat_err(dat_tensor_fill_normal(f32, 0, -1, 0, 0), DAT_ERR_INVALID_ARG, "std");
    ck_assert_dat_err(dat_tensor_fill_normal(f32, INFINITY, 1, 0, 0), DAT_ERR_INVALID_ARG,
                      "finite");
    ck_assert_dat_ok(dat_tensor_read(f32, back, sizeof back));
    ck_assert_mem_eq(buf, back, sizeof buf);
    dat_tensor_destroy(i32);
    dat_tensor_destroy(other);
}
END_TEST

START_TEST(test_model_builder_misuse)
{
    dat_layer_spec spec;
    ck_assert_dat_err(dat_layer_spec_init(NULL, DAT_LAYER_RELU), DAT_ERR_INVALID_ARG, "spec");
    ck_assert_dat_err(dat_layer_spec_init(&spec, (dat_layer_kind)99), DAT_ERR_INVALID_ARG, "kind");
    dat_model_builder *b = (dat_model_builder *)0x1;
    ck_assert_dat_err(dat_model_builder_create(NULL, ctx, 1, 4, 4), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_model_builder_create(&b, NULL, 1, 4, 4), DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_ptr_null(b);
    ck_assert_dat_err(dat_model_builder_create(&b, ctx, 0, 4, 4), DAT_ERR_INVALID_ARG,
                      "input shape");
    ck_assert_dat_ok(dat_model_builder_create(&b, ctx, 1, 4, 4));
    float mean[1] = {0.5f}, bad_std[1] = {0.0f};
    ck_assert_dat_err(dat_model_builder_set_normalization(NULL, mean, mean), DAT_ERR_INVALID_ARG,
                      "builder");
    ck_assert_dat_err(dat_model_builder_set_normalization(b, NULL, mean), DAT_ERR_INVALID_ARG,
                      "mean");
    ck_assert_dat_err(dat_model_builder_set_normalization(b, mean, bad_std), DAT_ERR_INVALID_ARG,
                      "std > 0");

    dat_layer_spec_init(&spec, DAT_LAYER_CONV2D);
    int32_t node = -7;
    ck_assert_dat_err(dat_model_builder_add(NULL, &spec, 0, -1, &node), DAT_ERR_INVALID_ARG,
                      "builder");
    ck_assert_dat_err(dat_model_builder_add(b, NULL, 0, -1, &node), DAT_ERR_INVALID_ARG, "spec");
    spec.name = "conv";
    spec.out_features = 2;
    spec.size = 4;
    ck_assert_dat_err(dat_model_builder_add(b, &spec, 0, -1, &node), DAT_ERR_INVALID_ARG, "size");
    spec.size = sizeof spec;
    ck_assert_dat_err(dat_model_builder_add(b, &spec, 3, -1, &node), DAT_ERR_INVALID_ARG,
                      "input = 3");
    ck_assert_dat_err(dat_model_builder_add(b, &spec, 0, 0, &node), DAT_ERR_INVALID_ARG,
                      "only add");
    spec.name = NULL;
    ck_assert_dat_err(dat_model_builder_add(b, &spec, 0, -1, &node), DAT_ERR_INVALID_ARG, "name");
    spec.name = "conv";
    spec.kernel = 9;
    ck_assert_dat_err(dat_model_builder_add(b, &spec, 0, -1, &node), DAT_ERR_INVALID_ARG,
                      "larger than the padded input");
    spec.kernel = 3;
    spec.padding = 1 << 30; /* 2 x pad would overflow an int */
    ck_assert_dat_err(dat_model_builder_add(b, &spec, 0, -1, &node), DAT_ERR_INVALID_ARG,
                      "not supported");
    spec.padding = 1;
    spec.out_features = 0;
    ck_assert_dat_err(dat_model_builder_add(b, &spec, 0, -1, &node), DAT_ERR_INVALID_ARG,
                      "out_features");
    ck_assert_int_eq(node, -7);
    spec.out_features = 2;
    ck_assert_dat_ok(dat_model_builder_add(b, &spec, 0, -1, &node));
    ck_assert_dat_err(dat_model_builder_add(b, &spec, 1, -1, &node), DAT_ERR_INVALID_ARG,
                      "already used");
    dat_layer_spec add;
    dat_layer_spec_init(&add, DAT_LAYER_ADD);
    ck_assert_dat_err(dat_model_builder_add(b, &add, 0, 1, &node), DAT_ERR_INVALID_ARG,
                      "shapes differ");
    dat_model *m = (dat_model *)0x1;
    ck_assert_dat_err(dat_model_builder_finish(NULL, 1, 0, &m), DAT_ERR_INVALID_ARG, "builder");
    ck_assert_ptr_null(m);
    ck_assert_dat_err(dat_model_builder_finish(b, 1, 0, NULL), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_model_builder_finish(b, 5, 0, &m), DAT_ERR_INVALID_ARG, "output = 5");
    ck_assert_dat_err(dat_model_builder_finish(b, 1, 0, &m), DAT_ERR_INVALID_ARG, "logits");
    ck_assert_ptr_null(m);
    dat_model_builder_destroy(b);
    /* 65536 x 65536 features overflow an int32: refused, not wrapped to 0. */
    ck_assert_dat_ok(dat_model_builder_create(&b, ctx, 1, 65536, 65536));
    dat_layer_spec flat;
    dat_layer_spec_init(&flat, DAT_LAYER_FLATTEN);
    ck_assert_dat_err(dat_model_builder_add(b, &flat, 0, -1, &node), DAT_ERR_INVALID_ARG,
                      "4294967296 features");
    dat_layer_spec_init(&spec, DAT_LAYER_LINEAR);
    spec.name = "fc";
    spec.out_features = 10;
    ck_assert_dat_err(dat_model_builder_add(b, &spec, 0, -1, &node), DAT_ERR_INVALID_ARG,
                      "4294967296 features");
    dat_model_builder_destroy(b);
    dat_model_builder_destroy(NULL);
}
END_TEST

START_TEST(test_model_misuse)
{
    dat_model_options mo;
    ck_assert_dat_err(dat_model_options_init(NULL), DAT_ERR_INVALID_ARG, "opts");
    dat_model_options_init(&mo);
    dat_model *m = (dat_model *)0x1;
    ck_assert_dat_err(dat_model_create_preset(NULL, ctx, "mlp", NULL), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_model_create_preset(&m, NULL, "mlp", NULL), DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_ptr_null(m);
    ck_assert_dat_err(dat_model_create_preset(&m, ctx, NULL, NULL), DAT_ERR_INVALID_ARG, "preset");
    ck_assert_dat_err(dat_model_create_preset(&m, ctx, "resnet9000", NULL), DAT_ERR_INVALID_ARG,
                      "cnn_small");
    mo.size = 1;
    ck_assert_dat_err(dat_model_create_preset(&m, ctx, "mlp", &mo), DAT_ERR_INVALID_ARG, "size");
    dat_model_options_init(&mo);
    mo.num_classes = -1;
    ck_assert_dat_err(dat_model_create_preset(&m, ctx, "mlp", &mo), DAT_ERR_INVALID_ARG,
                      "num_classes");
    dat_model_options_init(&mo);
    float one = 1.0f;
    mo.mean = &one;
    ck_assert_dat_err(dat_model_create_preset(&m, ctx, "mlp", &mo), DAT_ERR_INVALID_ARG,
                      "together");
    ck_assert_ptr_null(m);
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "mlp", NULL));

    ck_assert_dat_err(dat_model_set_mode(NULL, DAT_MODE_EVAL), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_set_mode(m, (dat_model_mode)5), DAT_ERR_INVALID_ARG, "mode");
    dat_model_mode mode;
    ck_assert_dat_err(dat_model_mode_get(NULL, &mode), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_mode_get(m, NULL), DAT_ERR_INVALID_ARG, "mode");
    ck_assert_dat_err(dat_model_shape(NULL, NULL, NULL, NULL, NULL), DAT_ERR_INVALID_ARG, "model");
    dat_tensor *p;
    ck_assert_dat_err(dat_model_params(NULL, &p), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_params(m, NULL), DAT_ERR_INVALID_ARG, "params");
    ck_assert_dat_err(dat_model_grads(NULL, &p), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_grads(m, NULL), DAT_ERR_INVALID_ARG, "grads");
    ck_assert_dat_err(dat_model_buffers(NULL, &p), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_buffers(m, NULL), DAT_ERR_INVALID_ARG, "buffers");
    int32_t count;
    ck_assert_dat_err(dat_model_num_segments(NULL, &count), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_num_segments(m, NULL), DAT_ERR_INVALID_ARG, "count");
    dat_segment seg = {.size = sizeof seg};
    ck_assert_dat_err(dat_model_segment(NULL, 0, &seg), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_segment(m, 0, NULL), DAT_ERR_INVALID_ARG, "seg");
    ck_assert_dat_err(dat_model_segment(m, 6, &seg), DAT_ERR_INVALID_ARG, "index = 6");
    seg.size = 2;
    ck_assert_dat_err(dat_model_segment(m, 0, &seg), DAT_ERR_INVALID_ARG, "size");
    int32_t first;
    ck_assert_dat_err(dat_model_num_layers(NULL, &count), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_num_layers(m, NULL), DAT_ERR_INVALID_ARG, "count");
    ck_assert_dat_err(dat_model_layer_segments(NULL, 0, &first, &count), DAT_ERR_INVALID_ARG,
                      "model");
    ck_assert_dat_err(dat_model_layer_segments(m, 0, NULL, &count), DAT_ERR_INVALID_ARG,
                      "first_segment");
    ck_assert_dat_err(dat_model_layer_segments(m, 0, &first, NULL), DAT_ERR_INVALID_ARG,
                      "num_segments");
    ck_assert_dat_err(dat_model_layer_segments(m, -1, &first, &count), DAT_ERR_INVALID_ARG,
                      "layer = -1");

    dat_model_load_options lopts;
    ck_assert_dat_err(dat_model_load_options_init(NULL), DAT_ERR_INVALID_ARG, "opts");
    ck_assert_dat_ok(dat_model_load_options_init(&lopts));
    ck_assert_dat_err(dat_model_save(NULL, "/tmp/x"), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_save(m, NULL), DAT_ERR_INVALID_ARG, "path");
    ck_assert_dat_err(dat_model_save(m, "/nonexistent-dir/m.safetensors"), DAT_ERR_IO,
                      "nonexistent-dir");
    ck_assert_dat_err(dat_model_load(NULL, "/tmp/x", NULL), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_load(m, NULL, NULL), DAT_ERR_INVALID_ARG, "path");
    ck_assert_dat_err(dat_model_load(m, "/nonexistent-dir/m.safetensors", NULL), DAT_ERR_IO,
                      "cannot open");
    lopts.size = 1;
    ck_assert_dat_err(dat_model_load(m, "/tmp/x", &lopts), DAT_ERR_INVALID_ARG, "size");
    int32_t nodes, kind;
    ck_assert_dat_err(dat_model_num_nodes(NULL, &nodes), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_num_nodes(m, NULL), DAT_ERR_INVALID_ARG, "count");
    ck_assert_dat_ok(dat_model_num_nodes(m, &nodes));
    ck_assert_dat_err(dat_model_node_info(NULL, 0, &kind, NULL, NULL, NULL), DAT_ERR_INVALID_ARG,
                      "model");
    ck_assert_dat_err(dat_model_node_info(m, nodes, &kind, NULL, NULL, NULL), DAT_ERR_INVALID_ARG,
                      "outside");
    ck_assert_dat_err(dat_model_activation(NULL, 1, NULL), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_activation(m, 1, NULL), DAT_ERR_INVALID_ARG, "out");

    /* Inputs of the wrong shape, dtype or content, and labels out of range. */
    int64_t xs[4] = {2, 1, 28, 28}, bad_xs[4] = {2, 3, 28, 28}, ys[1] = {2}, zs[2] = {2, 10};
    dat_tensor *x, *bad_x, *y, *z, *f;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&bad_x, ctx, DAT_FLOAT32, 4, bad_xs));
    ck_assert_dat_ok(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    ck_assert_dat_ok(dat_tensor_create(&z, ctx, DAT_FLOAT32, 2, zs));
    ck_assert_dat_ok(dat_tensor_create(&f, ctx, DAT_FLOAT32, 1, ys));
    ck_assert_dat_err(dat_model_forward(NULL, x, z), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_forward(m, NULL, z), DAT_ERR_INVALID_ARG, "x");
    ck_assert_dat_err(dat_model_forward(m, x, NULL), DAT_ERR_INVALID_ARG, "logits");
    ck_assert_dat_err(dat_model_forward(m, bad_x, z), DAT_ERR_INVALID_ARG, "[N, 1, 28, 28]");
    ck_assert_dat_err(dat_model_forward(m, x, f), DAT_ERR_INVALID_ARG, "[2, 10]");

    dat_loss_options lo;
    ck_assert_dat_err(dat_loss_options_init(NULL), DAT_ERR_INVALID_ARG, "opts");
    dat_loss_options_init(&lo);
    ck_assert_dat_err(dat_model_loss_backward(NULL, x, y, &lo, NULL), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_loss_backward(m, NULL, y, &lo, NULL), DAT_ERR_INVALID_ARG, "x");
    ck_assert_dat_err(dat_model_loss_backward(m, x, NULL, &lo, NULL), DAT_ERR_INVALID_ARG,
                      "labels y are NULL");
    int32_t labels[2] = {1, 10};
    ck_assert_dat_ok(dat_tensor_write(y, labels, sizeof labels));
    ck_assert_dat_err(dat_model_loss_backward(m, x, y, &lo, NULL), DAT_ERR_INVALID_ARG,
                      "label 10 of sample 1");
    labels[1] = 3;
    ck_assert_dat_ok(dat_tensor_write(y, labels, sizeof labels));
    lo.size = 3;
    ck_assert_dat_err(dat_model_loss_backward(m, x, y, &lo, NULL), DAT_ERR_INVALID_ARG, "size");
    dat_loss_options_init(&lo);
    lo.kl_weight = 1.0f;
    ck_assert_dat_err(dat_model_loss_backward(m, x, y, &lo, NULL), DAT_ERR_INVALID_ARG, "x_clean");
    dat_loss_options_init(&lo);
    lo.adv_weight = -1.0f;
    ck_assert_dat_err(dat_model_loss_backward(m, x, y, &lo, NULL), DAT_ERR_INVALID_ARG, ">= 0");
    dat_loss_options_init(&lo);
    lo.reduction = (dat_reduction)7;
    ck_assert_dat_err(dat_model_loss_backward(m, x, y, &lo, NULL), DAT_ERR_INVALID_ARG,
                      "reduction");
    dat_loss_options_init(&lo);
    lo.sample_weights = z;
    ck_assert_dat_err(dat_model_loss_backward(m, x, y, &lo, NULL), DAT_ERR_INVALID_ARG,
                      "sample_weights");
    dat_loss_options_init(&lo);
    lo.loss_sum = z;
    ck_assert_dat_err(dat_model_loss_backward(m, x, y, &lo, NULL), DAT_ERR_INVALID_ARG,
                      "loss_sum");

    dat_input_grad_options io;
    ck_assert_dat_err(dat_input_grad_options_init(NULL), DAT_ERR_INVALID_ARG, "opts");
    dat_input_grad_options_init(&io);
    ck_assert_dat_err(dat_model_input_grad(NULL, x, y, &io, x, NULL), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_model_input_grad(m, NULL, y, &io, x, NULL), DAT_ERR_INVALID_ARG, "x");
    ck_assert_dat_err(dat_model_input_grad(m, x, y, &io, NULL, NULL), DAT_ERR_INVALID_ARG, "dx");
    ck_assert_dat_err(dat_model_input_grad(m, x, y, &io, z, NULL), DAT_ERR_INVALID_ARG,
                      "dx must be float32");
    ck_assert_dat_err(dat_model_input_grad(m, x, NULL, &io, bad_x, NULL), DAT_ERR_INVALID_ARG,
                      "dx must be");
    io.objective = DAT_OBJECTIVE_KL;
    ck_assert_dat_err(dat_model_input_grad(m, x, NULL, &io, x, NULL), DAT_ERR_INVALID_ARG,
                      "target_logits");
    io.objective = (dat_objective)9;
    ck_assert_dat_err(dat_model_input_grad(m, x, y, &io, x, NULL), DAT_ERR_INVALID_ARG,
                      "objective");
    dat_input_grad_options_init(&io);
    io.size = 0;
    ck_assert_dat_err(dat_model_input_grad(m, x, y, &io, x, NULL), DAT_ERR_INVALID_ARG, "size");

    ck_assert_dat_err(dat_model_activation(m, 1, f), DAT_ERR_STATE, "no forward pass");
    int32_t ok_labels[2] = {1, 2};
    ck_assert_dat_ok(dat_tensor_write(y, ok_labels, sizeof ok_labels));
    ck_assert_dat_ok(dat_model_forward(m, x, z));
    ck_assert_dat_err(dat_model_activation(m, 0, f), DAT_ERR_INVALID_ARG, "caller's input");
    ck_assert_dat_err(dat_model_activation(m, 2, f), DAT_ERR_INVALID_ARG, "elements");
    /* A 0.4 caller's loss options stop before loss_sum: never read. */
    dat_loss_options_init(&lo);
    lo.loss_sum = z;
    lo.size = (uint32_t)offsetof(dat_loss_options, loss_sum);
    ck_assert_dat_ok(dat_model_loss_backward(m, x, y, &lo, NULL));

    /* NaN input: a status, not a silent result. */
    float *xh;
    ck_assert_dat_ok(dat_tensor_host_data(x, (void **)&xh));
    xh[100] = NAN;
    ck_assert_dat_err(dat_model_forward(m, x, z), DAT_ERR_NUMERIC, "NaN");
    ck_assert_dat_err(dat_model_loss_backward(m, x, y, NULL, NULL), DAT_ERR_NUMERIC, "NaN");

    dat_tensor_destroy(x);
    dat_tensor_destroy(bad_x);
    dat_tensor_destroy(y);
    dat_tensor_destroy(z);
    dat_tensor_destroy(f);
    dat_model_destroy(m);
    dat_model_destroy(NULL);
}
END_TEST

START_TEST(test_attack_misuse)
{
    dat_attack_options o;
    ck_assert_dat_err(dat_attack_options_init(NULL), DAT_ERR_INVALID_ARG, "opts");
    dat_attack *a = (dat_attack *)0x1;
    ck_assert_dat_err(dat_attack_create(NULL, ctx, NULL), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_attack_create(&a, NULL, NULL), DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_ptr_null(a);
    static const struct {
        const char *field, *needle;
    } bad[] = {{"eps", "eps"},         {"steps", "steps"}, {"alpha", "alpha"},
               {"noise", "noise_samples"}, {"sigma", "sigma"}, {"range", "lo < hi"},
               {"kind", "kind"},       {"norm", "norm"},   {"restarts", "restarts"},
               {"mode", "mode"},       {"size", "size"},   {"rank", "rank"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        dat_attack_options_init(&o);
        const char *f = bad[i].field;
        if (!strcmp(f, "eps")) o.eps = -0.1f;
        if (!strcmp(f, "steps")) o.steps = -1;
        if (!strcmp(f, "alpha")) o.alpha = NAN;
        if (!strcmp(f, "noise")) o.noise_samples = 0;
        if (!strcmp(f, "sigma")) o.sigma = -1.0f;
        if (!strcmp(f, "range")) o.lo = 1.0f;
        if (!strcmp(f, "kind")) o.kind = (dat_attack_kind)42;
        if (!strcmp(f, "norm")) o.norm = (dat_norm)3;
        if (!strcmp(f, "restarts")) o.restarts = 0;
        if (!strcmp(f, "mode")) o.mode = (dat_model_mode)4;
        if (!strcmp(f, "size")) o.size = 8;
        if (!strcmp(f, "rank")) o.rank = -1;
        a = (dat_attack *)0x1;
        ck_assert_dat_err(dat_attack_create(&a, ctx, &o), DAT_ERR_INVALID_ARG, bad[i].needle);
        ck_assert_ptr_null(a);
    }
    ck_assert_dat_ok(dat_attack_create(&a, ctx, NULL));
    uint64_t step;
    ck_assert_dat_err(dat_attack_set_step(NULL, 1), DAT_ERR_INVALID_ARG, "attack");
    ck_assert_dat_err(dat_attack_get_step(NULL, &step), DAT_ERR_INVALID_ARG, "attack");
    ck_assert_dat_err(dat_attack_get_step(a, NULL), DAT_ERR_INVALID_ARG, "step");

    dat_model *m;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "mlp", NULL));
    int64_t xs[4] = {2, 1, 28, 28}, ys[1] = {2};
    dat_tensor *x, *xa, *y;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&xa, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    ck_assert_dat_err(dat_attack_perturb(NULL, m, x, y, xa), DAT_ERR_INVALID_ARG, "attack");
    ck_assert_dat_err(dat_attack_perturb(a, NULL, x, y, xa), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_attack_perturb(a, m, NULL, y, xa), DAT_ERR_INVALID_ARG, "x");
    ck_assert_dat_err(dat_attack_perturb(a, m, x, y, NULL), DAT_ERR_INVALID_ARG, "x_adv");
    ck_assert_dat_err(dat_attack_perturb(a, m, x, y, x), DAT_ERR_INVALID_ARG, "alias");
    ck_assert_dat_err(dat_attack_perturb(a, m, x, NULL, xa), DAT_ERR_INVALID_ARG, "TRADES");
    ck_assert_dat_ok(dat_tensor_fill(x, 1.5));
    ck_assert_dat_err(dat_attack_perturb(a, m, x, y, xa), DAT_ERR_INVALID_ARG, "input range");
    ck_assert_dat_ok(dat_tensor_fill(x, 0.5));
    ck_assert_dat_ok(dat_tensor_fill(y, 10));
    ck_assert_dat_err(dat_attack_perturb(a, m, x, y, xa), DAT_ERR_INVALID_ARG, "outside [0, 10)");
    ck_assert_dat_err(dat_attack_gaussian_copies(NULL, x, y, xa, NULL), DAT_ERR_INVALID_ARG,
                      "attack");
    ck_assert_dat_err(dat_attack_gaussian_copies(a, NULL, y, xa, NULL), DAT_ERR_INVALID_ARG, "x");
    ck_assert_dat_err(dat_attack_gaussian_copies(a, x, y, NULL, NULL), DAT_ERR_INVALID_ARG,
                      "x_out");
    ck_assert_dat_err(dat_attack_gaussian_copies(a, x, NULL, xa, y), DAT_ERR_INVALID_ARG,
                      "y must be int32");
    ck_assert_dat_err(dat_attack_gaussian_copies(a, x, NULL, x, NULL), DAT_ERR_INVALID_ARG,
                      "must not be x");
    int32_t c, r;
    ck_assert_dat_err(dat_eval_robust_accuracy(NULL, m, x, y, &c, &r, NULL), DAT_ERR_INVALID_ARG,
                      "attack");
    ck_assert_dat_err(dat_eval_robust_accuracy(a, NULL, x, y, &c, &r, NULL), DAT_ERR_INVALID_ARG,
                      "model");
    ck_assert_dat_err(dat_eval_robust_accuracy(a, m, NULL, y, &c, &r, NULL), DAT_ERR_INVALID_ARG,
                      "x");
    ck_assert_dat_err(dat_eval_robust_accuracy(a, m, x, NULL, &c, &r, NULL), DAT_ERR_INVALID_ARG,
                      "y");
    ck_assert_dat_ok(dat_tensor_fill(y, 1));
    ck_assert_dat_err(dat_eval_robust_accuracy(a, m, x, y, &c, &r, x), DAT_ERR_INVALID_ARG,
                      "robust_mask");
    dat_tensor_destroy(x);
    dat_tensor_destroy(xa);
    dat_tensor_destroy(y);
    dat_model_destroy(m);
    dat_attack_destroy(a);
    dat_attack_destroy(NULL);
}
END_TEST

/* Evaluation (dat_eval.h): statistics, smoothing, AutoAttack. */
START_TEST(test_eval_misuse)
{
    double v;
    ck_assert_dat_err(dat_stat_incbeta(1, 1, 0.5, NULL), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_stat_incbeta(0, 1, 0.5, &v), DAT_ERR_INVALID_ARG, "a > 0");
    ck_assert_dat_err(dat_stat_incbeta(1, 1, 1.5, &v), DAT_ERR_INVALID_ARG, "x");
    ck_assert_dat_err(dat_stat_incbeta_inv(1, -1, 0.5, &v), DAT_ERR_INVALID_ARG, "b > 0");
    ck_assert_dat_err(dat_stat_incbeta_inv(1, 1, NAN, &v), DAT_ERR_INVALID_ARG, "p");
    ck_assert_dat_err(dat_stat_incbeta_inv(1, 1, 0.5, NULL), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_stat_normal_quantile(-0.1, &v), DAT_ERR_INVALID_ARG, "p");
    ck_assert_dat_err(dat_stat_normal_quantile(0.5, NULL), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_stat_clopper_pearson_lower(5, 4, 0.01, &v), DAT_ERR_INVALID_ARG,
                      "successes <= trials");
    ck_assert_dat_err(dat_stat_clopper_pearson_lower(1, 4, 1.0, &v), DAT_ERR_INVALID_ARG, "alpha");
    ck_assert_dat_err(dat_stat_clopper_pearson_lower(1, 4, 0.1, NULL), DAT_ERR_INVALID_ARG, "out");

    dat_smooth_options so;
    ck_assert_dat_err(dat_smooth_options_init(NULL), DAT_ERR_INVALID_ARG, "opts");
    dat_smooth_options_init(&so);
    so.n = 10;
    so.n0 = 5;
    dat_model *m;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "mlp", NULL));
    int64_t xs[4] = {2, 1, 28, 28}, ys[1] = {2};
    dat_tensor *x, *y;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    int32_t pred[2];
    float radius[2];
    ck_assert_dat_err(dat_smooth_predict(NULL, x, &so, pred), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_smooth_predict(m, NULL, &so, pred), DAT_ERR_INVALID_ARG, "x");
    ck_assert_dat_err(dat_smooth_predict(m, x, &so, NULL), DAT_ERR_INVALID_ARG, "pred");
    ck_assert_dat_err(dat_smooth_predict(m, f32, &so, pred), DAT_ERR_INVALID_ARG, "x must be");
    ck_assert_dat_err(dat_smooth_certify(NULL, x, &so, pred, radius), DAT_ERR_INVALID_ARG,
                      "model");
    ck_assert_dat_err(dat_smooth_certify(m, NULL, &so, pred, radius), DAT_ERR_INVALID_ARG, "x");
    ck_assert_dat_err(dat_smooth_certify(m, x, &so, NULL, radius), DAT_ERR_INVALID_ARG, "pred");
    so.size = 4;
    ck_assert_dat_err(dat_smooth_certify(m, x, &so, pred, radius), DAT_ERR_INVALID_ARG, "size");
    dat_smooth_options_init(&so);
    so.batch = 0;
    ck_assert_dat_err(dat_smooth_certify(m, x, &so, pred, radius), DAT_ERR_INVALID_ARG, "batch");
    int32_t lab[2] = {0, 1};
    float radii[1] = {0};
    double acc[1];
    ck_assert_dat_err(dat_smooth_certified_accuracy(NULL, radius, lab, 2, radii, 1, acc),
                      DAT_ERR_INVALID_ARG, "pred");
    ck_assert_dat_err(dat_smooth_certified_accuracy(pred, NULL, lab, 2, radii, 1, acc),
                      DAT_ERR_INVALID_ARG, "radius");
    ck_assert_dat_err(dat_smooth_certified_accuracy(pred, radius, NULL, 2, radii, 1, acc),
                      DAT_ERR_INVALID_ARG, "labels");
    ck_assert_dat_err(dat_smooth_certified_accuracy(pred, radius, lab, 2, NULL, 1, acc),
                      DAT_ERR_INVALID_ARG, "radii");
    ck_assert_dat_err(dat_smooth_certified_accuracy(pred, radius, lab, 2, radii, 1, NULL),
                      DAT_ERR_INVALID_ARG, "accuracy");
    ck_assert_dat_err(dat_smooth_certified_accuracy(pred, radius, lab, 0, radii, 1, acc),
                      DAT_ERR_INVALID_ARG, "count");

    dat_autoattack_options ao;
    ck_assert_dat_err(dat_autoattack_options_init(NULL), DAT_ERR_INVALID_ARG, "opts");
    dat_autoattack_options_init(&ao);
    int32_t outcome[2], robust;
    ck_assert_dat_err(dat_eval_autoattack(NULL, x, y, &ao, NULL, outcome, &robust),
                      DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_eval_autoattack(m, NULL, y, &ao, NULL, outcome, &robust),
                      DAT_ERR_INVALID_ARG, "x");
    ck_assert_dat_err(dat_eval_autoattack(m, x, NULL, &ao, NULL, outcome, &robust),
                      DAT_ERR_INVALID_ARG, "y");
    ck_assert_dat_err(dat_eval_autoattack(m, x, y, &ao, f32, outcome, &robust),
                      DAT_ERR_INVALID_ARG, "x_adv");
    ao.size = 2;
    ck_assert_dat_err(dat_eval_autoattack(m, x, y, &ao, NULL, outcome, &robust),
                      DAT_ERR_INVALID_ARG, "size");
    dat_autoattack_options_init(&ao);
    ao.eps = -1;
    ck_assert_dat_err(dat_eval_autoattack(m, x, y, &ao, NULL, outcome, &robust),
                      DAT_ERR_INVALID_ARG, "eps");
    dat_autoattack_options_init(&ao);
    ao.norm = (dat_norm)5;
    ck_assert_dat_err(dat_eval_autoattack(m, x, y, &ao, NULL, outcome, &robust),
                      DAT_ERR_INVALID_ARG, "norm");
    dat_autoattack_options_init(&ao);
    ao.apgd_steps = 0;
    ck_assert_dat_err(dat_eval_autoattack(m, x, y, &ao, NULL, outcome, &robust),
                      DAT_ERR_INVALID_ARG, "apgd_steps");
    dat_autoattack_options_init(&ao);
    ck_assert_dat_ok(dat_tensor_fill(y, 10));
    ck_assert_dat_err(dat_eval_autoattack(m, x, y, &ao, NULL, outcome, &robust),
                      DAT_ERR_INVALID_ARG, "outside [0, 10)");
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_model_destroy(m);
}
END_TEST

START_TEST(test_quantizer_misuse)
{
    ck_assert_dat_err(dat_quantizer_options_init(NULL), DAT_ERR_INVALID_ARG, "opts");
    dat_quantizer_options o;
    dat_quantizer_options_init(&o);
    dat_quantizer *q = (dat_quantizer *)0x1;
    ck_assert_dat_err(dat_quantizer_create(NULL, ctx, &o), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_quantizer_create(&q, NULL, &o), DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_ptr_null(q);
    o.size = 4;
    ck_assert_dat_err(dat_quantizer_create(&q, ctx, &o), DAT_ERR_INVALID_ARG,
                      "dat_quantizer_options_init");
    const struct { int bits, bucket, norm, rank, ef; const char *needle; } bad[] = {
        {1, 512, 0, 0, 0, "bits = 1"},        {17, 512, 0, 0, 0, "bits = 17"},
        {33, 512, 0, 0, 0, "bits = 33"},      {8, 0, 0, 0, 0, "bucket_size = 0"},
        {8, (1 << 24) + 1, 0, 0, 0, "bucket_size"}, {8, 512, 2, 0, 0, "norm = 2"},
        {8, 512, 0, -1, 0, "rank = -1"},      {8, 512, 0, 0, 2, "error_feedback = 2"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; ++i) {
        dat_quantizer_options_init(&o);
        o.bits = bad[i].bits;
        o.bucket_size = bad[i].bucket;
        o.norm = (dat_quant_norm)bad[i].norm;
        o.rank = bad[i].rank;
        o.error_feedback = bad[i].ef;
        q = (dat_quantizer *)0x1;
        ck_assert_dat_err(dat_quantizer_create(&q, ctx, &o), DAT_ERR_INVALID_ARG, bad[i].needle);
        ck_assert_ptr_null(q);
    }
    dat_quantizer_destroy(NULL);
    ck_assert_dat_ok(dat_quantizer_create(&q, ctx, NULL));
    ck_assert_dat_err(dat_quantizer_options_get(NULL, &o), DAT_ERR_INVALID_ARG, "q");
    ck_assert_dat_err(dat_quantizer_options_get(q, NULL), DAT_ERR_INVALID_ARG, "opts");
    ck_assert_dat_ok(dat_quantizer_options_get(q, &o));
    ck_assert_int_eq(o.bits, 8);
    ck_assert_int_eq(o.bucket_size, DAT_QUANT_DEFAULT_BUCKET);
    size_t bytes = 0;
    ck_assert_dat_err(dat_quantizer_encoded_size(NULL, 6, &bytes), DAT_ERR_INVALID_ARG, "q");
    ck_assert_dat_err(dat_quantizer_encoded_size(q, -1, &bytes), DAT_ERR_INVALID_ARG, "n = -1");
    ck_assert_dat_err(dat_quantizer_encoded_size(q, 6, NULL), DAT_ERR_INVALID_ARG, "bytes");
    ck_assert_dat_ok(dat_quantizer_encoded_size(q, 6, &bytes));
    ck_assert_uint_eq(bytes, 4 + 4 * 2); /* a 6-element bucket at 8 bits */
    uint32_t codes[16];
    int64_t n = 6;
    dat_tensor *i32 = NULL;
    ck_assert_dat_ok(dat_tensor_create(&i32, ctx, DAT_INT32, 1, &n));
    ck_assert_dat_err(dat_quantizer_encode(NULL, f32, 0, codes, sizeof codes),
                      DAT_ERR_INVALID_ARG, "q");
    ck_assert_dat_err(dat_quantizer_encode(q, NULL, 0, codes, sizeof codes), DAT_ERR_INVALID_ARG,
                      "x");
    ck_assert_dat_err(dat_quantizer_encode(q, f32, 0, NULL, sizeof codes), DAT_ERR_INVALID_ARG,
                      "codes");
    ck_assert_dat_err(dat_quantizer_encode(q, i32, 0, codes, sizeof codes), DAT_ERR_INVALID_ARG,
                      "int32");
    ck_assert_dat_err(dat_quantizer_encode(q, f32, 0, codes, 11), DAT_ERR_INVALID_ARG,
                      "need 12 bytes");
    ck_assert_dat_err(dat_quantizer_encode(q, f32, 0, (char *)codes + 1, 40),
                      DAT_ERR_INVALID_ARG, "aligned");
    ck_assert_dat_ok(dat_quantizer_encode(q, f32, 0, codes, sizeof codes));
    ck_assert_dat_err(dat_quantizer_decode(NULL, codes, sizeof codes, f32, 0),
                      DAT_ERR_INVALID_ARG, "q");
    ck_assert_dat_err(dat_quantizer_decode(q, NULL, sizeof codes, f32, 0), DAT_ERR_INVALID_ARG,
                      "codes");
    ck_assert_dat_err(dat_quantizer_decode(q, codes, sizeof codes, NULL, 0), DAT_ERR_INVALID_ARG,
                      "out");
    ck_assert_dat_err(dat_quantizer_decode(q, codes, 8, f32, 0), DAT_ERR_INVALID_ARG,
                      "codes_bytes = 8");
    ck_assert_dat_err(dat_quantizer_decode(q, codes, sizeof codes, f32, 2), DAT_ERR_INVALID_ARG,
                      "accumulate = 2");
    ck_assert_dat_err(dat_quantizer_decode(q, codes, sizeof codes, i32, 0), DAT_ERR_INVALID_ARG,
                      "int32");
    ck_assert_dat_ok(dat_quantizer_decode(q, codes, sizeof codes, f32, 1));
    ck_assert_dat_err(dat_quantizer_reset(NULL), DAT_ERR_INVALID_ARG, "q");
    ck_assert_dat_ok(dat_quantizer_reset(q));
    dat_tensor_destroy(i32);
    dat_quantizer_destroy(q);
}
END_TEST

START_TEST(test_comm_misuse)
{
    ck_assert_dat_err(dat_comm_options_init(NULL), DAT_ERR_INVALID_ARG, "opts");
    dat_comm *c = (dat_comm *)0x1;
    ck_assert_dat_err(dat_comm_create_self(NULL, ctx), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_comm_create_self(&c, NULL), DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_ptr_null(c);
    dat_comm_destroy(NULL);
    ck_assert_dat_ok(dat_comm_create_self(&c, ctx));
    int32_t v;
    ck_assert_dat_err(dat_comm_rank(NULL, &v), DAT_ERR_INVALID_ARG, "comm");
    ck_assert_dat_err(dat_comm_rank(c, NULL), DAT_ERR_INVALID_ARG, "rank");
    ck_assert_dat_err(dat_comm_size(NULL, &v), DAT_ERR_INVALID_ARG, "comm");
    ck_assert_dat_err(dat_comm_size(c, NULL), DAT_ERR_INVALID_ARG, "size");

    int64_t n6 = 6, n7 = 7;
    dat_tensor *i32 = NULL, *f7 = NULL;
    ck_assert_dat_ok(dat_tensor_create(&i32, ctx, DAT_INT32, 1, &n6));
    ck_assert_dat_ok(dat_tensor_create(&f7, ctx, DAT_FLOAT32, 1, &n7));
    ck_assert_dat_err(dat_comm_allreduce(NULL, f32, DAT_REDUCE_SUM), DAT_ERR_INVALID_ARG, "comm");
    ck_assert_dat_err(dat_comm_allreduce(c, NULL, DAT_REDUCE_SUM), DAT_ERR_INVALID_ARG,
                      "t must not be NULL");
    ck_assert_dat_err(dat_comm_allreduce(c, i32, DAT_REDUCE_SUM), DAT_ERR_INVALID_ARG, "int32");
    ck_assert_dat_err(dat_comm_allreduce(c, f32, (dat_reduction)7), DAT_ERR_INVALID_ARG,
                      "op = 7");
    ck_assert_dat_err(dat_comm_broadcast(NULL, f32, 0), DAT_ERR_INVALID_ARG, "comm");
    ck_assert_dat_err(dat_comm_broadcast(c, NULL, 0), DAT_ERR_INVALID_ARG, "t must not be NULL");
    ck_assert_dat_err(dat_comm_broadcast(c, f32, 1), DAT_ERR_INVALID_ARG, "root = 1");
    ck_assert_dat_err(dat_comm_allgather(NULL, f32, f32), DAT_ERR_INVALID_ARG, "comm");
    ck_assert_dat_err(dat_comm_allgather(c, NULL, f32), DAT_ERR_INVALID_ARG, "in must not");
    ck_assert_dat_err(dat_comm_allgather(c, f32, NULL), DAT_ERR_INVALID_ARG, "out must not");
    ck_assert_dat_err(dat_comm_allgather(c, f32, i32), DAT_ERR_INVALID_ARG, "dtypes differ");
    ck_assert_dat_err(dat_comm_allgather(c, f32, f7), DAT_ERR_INVALID_ARG, "out has 7 elements");

    dat_quantizer *q = NULL;
    ck_assert_dat_ok(dat_quantizer_create(&q, ctx, NULL));
    ck_assert_dat_err(dat_comm_allreduce_quantized(NULL, f32, q, DAT_QUANT_ONE_SIDED, 0),
                      DAT_ERR_INVALID_ARG, "comm");
    ck_assert_dat_err(dat_comm_allreduce_quantized(c, NULL, q, DAT_QUANT_ONE_SIDED, 0),
                      DAT_ERR_INVALID_ARG, "t must not be NULL");
    ck_assert_dat_err(dat_comm_allreduce_quantized(c, f32, NULL, DAT_QUANT_ONE_SIDED, 0),
                      DAT_ERR_INVALID_ARG, "q must not be NULL");
    ck_assert_dat_err(dat_comm_allreduce_quantized(c, i32, q, DAT_QUANT_ONE_SIDED, 0),
                      DAT_ERR_INVALID_ARG, "int32");
    ck_assert_dat_err(dat_comm_allreduce_quantized(c, f32, q, (dat_quant_mode)5, 0),
                      DAT_ERR_INVALID_ARG, "mode = 5");

    dat_comm_stats st = {.size = 3};
    ck_assert_dat_err(dat_comm_get_stats(NULL, &st), DAT_ERR_INVALID_ARG, "comm");
    ck_assert_dat_err(dat_comm_get_stats(c, NULL), DAT_ERR_INVALID_ARG, "stats");
    ck_assert_dat_err(dat_comm_get_stats(c, &st), DAT_ERR_INVALID_ARG, "stats->size is 3");
    st.size = sizeof st;
    ck_assert_dat_ok(dat_comm_get_stats(c, &st));
    ck_assert_uint_eq(st.calls, 0); /* refused calls are not counted */
    ck_assert_dat_err(dat_comm_reset_stats(NULL), DAT_ERR_INVALID_ARG, "comm");
    ck_assert_dat_err(dat_comm_abort(NULL), DAT_ERR_INVALID_ARG, "comm");
    ck_assert_dat_ok(dat_comm_abort(c));
    ck_assert_dat_err(dat_comm_allreduce(c, f32, DAT_REDUCE_SUM), DAT_ERR_STATE, "aborted");

    /* NCCL: argument checks, then UNSUPPORTED without CUDA or a CPU context. */
    dat_comm_id id;
    memset(&id, 0, sizeof id);
    ck_assert_dat_err(dat_comm_unique_id(NULL), DAT_ERR_INVALID_ARG, "id");
    dat_comm *nc = (dat_comm *)0x1;
    ck_assert_dat_err(dat_comm_create_nccl(NULL, ctx, 1, 0, &id, NULL), DAT_ERR_INVALID_ARG,
                      "out");
    ck_assert_dat_err(dat_comm_create_nccl(&nc, NULL, 1, 0, &id, NULL), DAT_ERR_INVALID_ARG,
                      "ctx");
    ck_assert_ptr_null(nc);
    ck_assert_dat_err(dat_comm_create_nccl(&nc, ctx, 1, 0, NULL, NULL), DAT_ERR_INVALID_ARG,
                      "id");
    ck_assert_dat_err(dat_comm_create_nccl(&nc, ctx, 2, 2, &id, NULL), DAT_ERR_INVALID_ARG,
                      "rank = 2");
    dat_comm_options co;
    dat_comm_options_init(&co);
    co.timeout_s = 0;
    ck_assert_dat_err(dat_comm_create_nccl(&nc, ctx, 1, 0, &id, &co), DAT_ERR_INVALID_ARG,
                      "timeout_s = 0");
    co.size = 1;
    ck_assert_dat_err(dat_comm_create_nccl(&nc, ctx, 1, 0, &id, &co), DAT_ERR_INVALID_ARG,
                      "dat_comm_options_init");
    if (dat_has_cuda())
        ck_assert_dat_err(dat_comm_create_nccl(&nc, ctx, 1, 0, &id, NULL), DAT_ERR_INVALID_ARG,
                          "CUDA context");
    else
        ck_assert_dat_err(dat_comm_create_nccl(&nc, ctx, 1, 0, &id, NULL), DAT_ERR_UNSUPPORTED,
                          "without CUDA");
    ck_assert_ptr_null(nc);
    ck_assert_dat_err(dat_comm_unique_id_write(NULL, "/tmp/x"), DAT_ERR_INVALID_ARG, "id");
    ck_assert_dat_err(dat_comm_unique_id_write(&id, NULL), DAT_ERR_INVALID_ARG, "path");
    ck_assert_dat_err(dat_comm_unique_id_read(NULL, "/tmp/x", 1), DAT_ERR_INVALID_ARG, "id");
    ck_assert_dat_err(dat_comm_unique_id_read(&id, NULL, 1), DAT_ERR_INVALID_ARG, "path");
    ck_assert_dat_err(dat_comm_unique_id_read(&id, "/tmp/x", -1), DAT_ERR_INVALID_ARG,
                      "timeout_s = -1");
    dat_quantizer_destroy(q);
    dat_tensor_destroy(i32);
    dat_tensor_destroy(f7);
    dat_comm_destroy(c);
}
END_TEST

/* A 6-sample IDX data set of 2 x 2 images in /tmp, for the data set checks. */
static void write_tiny_idx(char *images, char *labels)
{
    strcpy(images, "/tmp/dat_misuse_img_XXXXXX");
    strcpy(labels, "/tmp/dat_misuse_lab_XXXXXX");
    int fi = mkstemp(images), fl = mkstemp(labels);
    ck_assert(fi >= 0 && fl >= 0);
    unsigned char img[16 + 24] = {0, 0, 8, 3, 0, 0, 0, 6, 0, 0, 0, 2, 0, 0, 0, 2};
    unsigned char lab[8 + 6] = {0, 0, 8, 1, 0, 0, 0, 6, 0, 1, 2, 0, 1, 2};
    ck_assert_int_eq(write(fi, img, sizeof img), (int)sizeof img);
    ck_assert_int_eq(write(fl, lab, sizeof lab), (int)sizeof lab);
    close(fi);
    close(fl);
}

START_TEST(test_dataset_misuse)
{
    char images[64], labels[64];
    write_tiny_idx(images, labels);
    ck_assert_dat_err(dat_dataset_options_init(NULL), DAT_ERR_INVALID_ARG, "opts");
    dat_dataset_options o;
    ck_assert_dat_ok(dat_dataset_options_init(&o));
    o.images_path = images;
    o.labels_path = labels;
    dat_dataset *ds = (dat_dataset *)0x1;
    ck_assert_dat_err(dat_dataset_open(NULL, ctx, &o), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_dataset_open(&ds, NULL, &o), DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_ptr_null(ds);
    ds = (dat_dataset *)0x1;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, NULL), DAT_ERR_INVALID_ARG, "opts");
    ck_assert_ptr_null(ds);
    o.size = 8;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &o), DAT_ERR_INVALID_ARG,
                      "dat_dataset_options_init");
    o.size = sizeof o;

    /* Each bad field, named in the message. */
    static const struct {
        const char *field;
        int64_t value;
        const char *needle;
    } bad[] = {
        {"format", 4, "opts->format = 4"},
        {"layout", 3, "opts->layout = 3"},
        {"num_classes", -1, "opts->num_classes = -1"},
        {"part", 2, "opts->part = 2"},
        {"validation_count", -5, "opts->validation_count = -5"},
        {"rank", 1, "rank = 1 and world_size = 1"},
        {"world_size", 0, "world_size = 0"},
        {"batch_size", 0, "opts->batch_size = 0"},
        {"crop_padding", -1, "opts->crop_padding = -1"},
        {"shuffle", 2, "opts->shuffle = 2"},
        {"drop_last", -1, "opts->drop_last = -1"},
        {"random_crop", 3, "opts->random_crop = 3"},
        {"horizontal_flip", 2, "opts->horizontal_flip = 2"},
        {"prefetch", 5, "opts->prefetch = 5"},
        {"num_extra_paths", -1, "opts->num_extra_paths = -1"},
        {"num_subset_classes", -2, "opts->num_subset_classes = -2"},
        {"limit", -1, "opts->limit = -1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        dat_dataset_options b = o;
        const char *f = bad[i].field;
        int32_t v = (int32_t)bad[i].value;
        if (!strcmp(f, "format")) b.format = (dat_dataset_format)v;
        else if (!strcmp(f, "layout")) b.layout = (dat_dataset_layout)v;
        else if (!strcmp(f, "num_classes")) b.num_classes = v;
        else if (!strcmp(f, "part")) b.part = (dat_dataset_part)v;
        else if (!strcmp(f, "validation_count")) b.validation_count = bad[i].value;
        else if (!strcmp(f, "rank")) b.rank = v;
        else if (!strcmp(f, "world_size")) b.world_size = v;
        else if (!strcmp(f, "batch_size")) b.batch_size = v;
        else if (!strcmp(f, "crop_padding")) b.crop_padding = v;
        else if (!strcmp(f, "shuffle")) b.shuffle = v;
        else if (!strcmp(f, "drop_last")) b.drop_last = v;
        else if (!strcmp(f, "random_crop")) b.random_crop = v;
        else if (!strcmp(f, "horizontal_flip")) b.horizontal_flip = v;
        else if (!strcmp(f, "prefetch")) b.prefetch = v;
        else if (!strcmp(f, "num_extra_paths")) b.num_extra_paths = v;
        else if (!strcmp(f, "limit")) b.limit = bad[i].value;
        else b.num_subset_classes = v;
        ds = (dat_dataset *)0x1;
        ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, bad[i].needle);
        ck_assert_ptr_null(ds);
    }
    dat_dataset_options b = o;
    b.validation_fraction = 1.0;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, "validation_fraction");
    b.validation_fraction = NAN;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, "validation_fraction");
    b.validation_fraction = 0.5;
    b.validation_count = 1;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, "not both");
    b = o;
    b.images_path = NULL;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, "images_path");
    b = o;
    b.labels_path = NULL;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, "labels_path");
    b.format = DAT_DATASET_CIFAR10;
    b.labels_path = labels;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, "must be NULL for CIFAR");
    b = o;
    b.num_extra_paths = 1;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, "CIFAR record files");
    b.format = DAT_DATASET_CIFAR10;
    b.labels_path = NULL;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, "extra_paths must");
    const char *nulls[1] = {NULL};
    b.extra_paths = nulls;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, "extra_paths[0]");
    b = o;
    b.num_subset_classes = 1;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, "classes must not");
    const int32_t neg[1] = {-3};
    b.classes = neg;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, "classes[0] = -3");
    const int32_t big[1] = {3};
    b.classes = big;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, "out of range");
    b = o;
    b.world_size = 7; /* 6 samples for 7 ranks */
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &b), DAT_ERR_INVALID_ARG, "among 7 ranks");
    ck_assert_ptr_null(ds);

    /* A good one, then every call with bad arguments. */
    o.batch_size = 4;
    ck_assert_dat_ok(dat_dataset_open(&ds, ctx, &o));
    int64_t n;
    int32_t k;
    ck_assert_dat_err(dat_dataset_num_samples(NULL, &n), DAT_ERR_INVALID_ARG, "ds");
    ck_assert_dat_err(dat_dataset_num_samples(ds, NULL), DAT_ERR_INVALID_ARG, "count");
    ck_assert_dat_err(dat_dataset_sample_shape(NULL, &k, &k, &k), DAT_ERR_INVALID_ARG, "ds");
    ck_assert_dat_ok(dat_dataset_sample_shape(ds, NULL, NULL, NULL));
    ck_assert_dat_err(dat_dataset_num_classes(NULL, &k), DAT_ERR_INVALID_ARG, "ds");
    ck_assert_dat_err(dat_dataset_num_classes(ds, NULL), DAT_ERR_INVALID_ARG, "count");
    ck_assert_dat_err(dat_dataset_batches_per_epoch(NULL, &n), DAT_ERR_INVALID_ARG, "ds");
    ck_assert_dat_err(dat_dataset_batches_per_epoch(ds, NULL), DAT_ERR_INVALID_ARG, "count");
    ck_assert_dat_err(dat_dataset_get_position(NULL, &n, &n), DAT_ERR_INVALID_ARG, "ds");
    ck_assert_dat_ok(dat_dataset_get_position(ds, NULL, NULL));
    ck_assert_dat_err(dat_dataset_set_position(NULL, 0, 0), DAT_ERR_INVALID_ARG, "ds");
    ck_assert_dat_err(dat_dataset_set_position(ds, 0, 3), DAT_ERR_INVALID_ARG, "batch = 3");
    ck_assert_dat_err(dat_dataset_set_position(ds, -1, 0), DAT_ERR_INVALID_ARG, "epoch = -1");
    ck_assert_dat_err(dat_dataset_set_epoch(NULL, 0), DAT_ERR_INVALID_ARG, "ds");
    ck_assert_dat_err(dat_dataset_set_epoch(ds, (int64_t)1 << 62), DAT_ERR_INVALID_ARG, "epoch");

    int64_t xs[4] = {4, 1, 2, 2}, ys[1] = {4}, bad_xs[4] = {4, 1, 2, 3}, big_xs[4] = {5, 1, 2, 2};
    dat_tensor *x, *y, *xbad, *xbig, *yf;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    ck_assert_dat_ok(dat_tensor_create(&xbad, ctx, DAT_FLOAT32, 4, bad_xs));
    ck_assert_dat_ok(dat_tensor_create(&xbig, ctx, DAT_FLOAT32, 4, big_xs));
    ck_assert_dat_ok(dat_tensor_create(&yf, ctx, DAT_FLOAT32, 1, ys));
    int32_t count;
    ck_assert_dat_err(dat_dataset_next_batch(NULL, x, y, &count), DAT_ERR_INVALID_ARG, "ds");
    ck_assert_dat_err(dat_dataset_next_batch(ds, NULL, y, &count), DAT_ERR_INVALID_ARG, "x");
    ck_assert_dat_err(dat_dataset_next_batch(ds, x, y, NULL), DAT_ERR_INVALID_ARG, "count");
    ck_assert_dat_err(dat_dataset_next_batch(ds, xbad, y, &count), DAT_ERR_INVALID_ARG,
                      "[b, 1, 2, 2]");
    ck_assert_dat_err(dat_dataset_next_batch(ds, f32, y, &count), DAT_ERR_INVALID_ARG,
                      "2 dimensions");
    ck_assert_dat_err(dat_dataset_next_batch(ds, xbig, NULL, &count), DAT_ERR_INVALID_ARG,
                      "x has 5 rows");
    ck_assert_dat_err(dat_dataset_next_batch(ds, x, yf, &count), DAT_ERR_INVALID_ARG,
                      "y must be an int32 tensor [4]");
    ck_assert_dat_ok(dat_dataset_get_position(ds, &n, NULL));
    ck_assert_dat_ok(dat_dataset_next_batch(ds, x, y, &count));
    ck_assert_int_eq(count, 4);
    dat_dataset_destroy(ds);
    dat_dataset_destroy(NULL);

    /* A missing file is DAT_ERR_IO, a wrong one DAT_ERR_FORMAT. */
    o.format = DAT_DATASET_NPY;
    o.labels_path = NULL;
    o.images_path = "/nonexistent/images.npy";
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &o), DAT_ERR_IO, "/nonexistent/images.npy");
    o.format = DAT_DATASET_IDX;
    o.images_path = labels;
    o.labels_path = labels;
    ck_assert_dat_err(dat_dataset_open(&ds, ctx, &o), DAT_ERR_FORMAT, "expected magic 0x00000803");
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_tensor_destroy(xbad);
    dat_tensor_destroy(xbig);
    dat_tensor_destroy(yf);
    unlink(images);
    unlink(labels);
}
END_TEST

#if DAT_TEST_MPI
/* Without MPI_Init every MPI entry point refuses with DAT_ERR_STATE. */
START_TEST(test_mpi_misuse)
{
    dat_comm *c = (dat_comm *)0x1;
    ck_assert_dat_err(dat_comm_create_mpi(NULL, ctx, MPI_COMM_WORLD, NULL), DAT_ERR_INVALID_ARG,
                      "out");
    ck_assert_dat_err(dat_comm_create_mpi(&c, NULL, MPI_COMM_WORLD, NULL), DAT_ERR_INVALID_ARG,
                      "ctx");
    ck_assert_ptr_null(c);
    dat_comm_options o;
    dat_comm_options_init(&o);
    o.size = 0;
    ck_assert_dat_err(dat_comm_create_mpi(&c, ctx, MPI_COMM_WORLD, &o), DAT_ERR_INVALID_ARG,
                      "size");
    ck_assert_dat_err(dat_comm_create_mpi(&c, ctx, MPI_COMM_WORLD, NULL), DAT_ERR_STATE,
                      "MPI_Init");
    dat_comm_id id;
    ck_assert_dat_err(dat_comm_unique_id_broadcast_mpi(NULL, 0, MPI_COMM_WORLD, 1),
                      DAT_ERR_INVALID_ARG, "id");
    ck_assert_dat_err(dat_comm_unique_id_broadcast_mpi(&id, 0, MPI_COMM_WORLD, 1), DAT_ERR_STATE,
                      "MPI_Init");
    ck_assert_dat_err(dat_comm_create_nccl_mpi(NULL, ctx, MPI_COMM_WORLD, NULL),
                      DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_comm_create_nccl_mpi(&c, NULL, MPI_COMM_WORLD, NULL),
                      DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_dat_err(dat_comm_create_nccl_mpi(&c, ctx, MPI_COMM_WORLD, NULL), DAT_ERR_STATE,
                      "MPI_Init");
    ck_assert_ptr_null(c);
}
END_TEST
#endif

START_TEST(test_optim_misuse)
{
    dat_optim_options o;
    ck_assert_dat_err(dat_optim_options_init(NULL), DAT_ERR_INVALID_ARG, "opts");
    dat_segment seg = {.size = sizeof seg, .name = "w", .offset = 0, .length = 6};
    dat_optim *opt = (dat_optim *)0x1;
    ck_assert_dat_err(dat_optim_create(NULL, ctx, &seg, 1, NULL), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_optim_create(&opt, NULL, &seg, 1, NULL), DAT_ERR_INVALID_ARG, "ctx");
    ck_assert_ptr_null(opt);
    ck_assert_dat_err(dat_optim_create(&opt, ctx, NULL, 1, NULL), DAT_ERR_INVALID_ARG, "segments");
    ck_assert_dat_err(dat_optim_create(&opt, ctx, &seg, 0, NULL), DAT_ERR_INVALID_ARG,
                      "num_segments");
    static const struct {
        const char *field, *needle;
    } bad[] = {{"lr", "lr"},         {"clcu", "c_l <= c_u"}, {"beta1", "[0, 1)"},
               {"beta2", "[0, 1)"},  {"kind", "kind"},       {"eps", "eps"},
               {"wd", "weight_decay"}, {"sched", "schedule"}, {"miles", "decrease"},
               {"miles_neg", "milestones[0] = -9"}, {"cos", "total_steps"},
               {"scale", "global_batch"}, {"size", "size"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        dat_optim_options_init(&o);
        const char *f = bad[i].field;
        if (!strcmp(f, "lr")) o.lr = -1.0f;
        if (!strcmp(f, "clcu")) { o.c_l = 5.0f; o.c_u = 1.0f; }
        if (!strcmp(f, "beta1")) o.momentum = 1.0f;
        if (!strcmp(f, "beta2")) o.beta2 = -0.1f;
        if (!strcmp(f, "kind")) o.kind = (dat_optim_kind)9;
        if (!strcmp(f, "eps")) o.eps = 0.0f;
        if (!strcmp(f, "wd")) o.weight_decay = NAN;
        if (!strcmp(f, "sched")) o.schedule = (dat_schedule_kind)8;
        if (!strcmp(f, "miles")) { o.num_milestones = 2; o.milestones[0] = 5; o.milestones[1] = 4; }
        if (!strcmp(f, "miles_neg")) { o.num_milestones = 1; o.milestones[0] = -9; }
        if (!strcmp(f, "cos")) { o.schedule = DAT_SCHEDULE_COSINE; o.total_steps = 0; }
        if (!strcmp(f, "scale")) o.scaling = DAT_LR_SCALING_LINEAR;
        if (!strcmp(f, "size")) o.size = 2;
        opt = (dat_optim *)0x1;
        ck_assert_dat_err(dat_optim_create(&opt, ctx, &seg, 1, &o), DAT_ERR_INVALID_ARG,
                          bad[i].needle);
        ck_assert_ptr_null(opt);
    }
    dat_segment two[2] = {seg, seg};
    ck_assert_dat_err(dat_optim_create(&opt, ctx, two, 2, NULL), DAT_ERR_INVALID_ARG, "overlap");
    two[1].offset = -3;
    ck_assert_dat_err(dat_optim_create(&opt, ctx, two, 2, NULL), DAT_ERR_INVALID_ARG, ">= 0");
    ck_assert_dat_err(dat_optim_create_for_model(NULL, NULL, NULL), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_optim_create_for_model(&opt, NULL, NULL), DAT_ERR_INVALID_ARG, "model");

    ck_assert_dat_ok(dat_optim_create(&opt, ctx, &seg, 1, NULL));
    int64_t n5 = 5;
    dat_tensor *short_t;
    ck_assert_dat_ok(dat_tensor_create(&short_t, ctx, DAT_FLOAT32, 1, &n5));
    ck_assert_dat_err(dat_optim_step(NULL, f32, f32), DAT_ERR_INVALID_ARG, "optim");
    ck_assert_dat_err(dat_optim_step(opt, NULL, f32), DAT_ERR_INVALID_ARG, "params");
    ck_assert_dat_err(dat_optim_step(opt, f32, NULL), DAT_ERR_INVALID_ARG, "grads");
    ck_assert_dat_err(dat_optim_step(opt, short_t, f32), DAT_ERR_INVALID_ARG, "6 elements");
    dat_ctx *other;
    ck_assert_dat_ok(dat_ctx_create(&other, NULL));
    int64_t n6 = 6;
    dat_tensor *foreign;
    ck_assert_dat_ok(dat_tensor_create(&foreign, other, DAT_FLOAT32, 1, &n6));
    ck_assert_dat_err(dat_optim_step(opt, foreign, f32), DAT_ERR_INVALID_ARG,
                      "another context");
    dat_tensor_destroy(foreign);
    dat_ctx_destroy(other);
    ck_assert_dat_err(dat_optim_step_model(NULL, NULL), DAT_ERR_INVALID_ARG, "optim");
    ck_assert_dat_err(dat_optim_step_model(opt, NULL), DAT_ERR_INVALID_ARG, "model");
    double lr;
    int64_t step;
    size_t bytes;
    ck_assert_dat_err(dat_optim_lr(NULL, &lr), DAT_ERR_INVALID_ARG, "optim");
    ck_assert_dat_err(dat_optim_lr(opt, NULL), DAT_ERR_INVALID_ARG, "lr");
    ck_assert_dat_err(dat_optim_get_step(NULL, &step), DAT_ERR_INVALID_ARG, "optim");
    ck_assert_dat_err(dat_optim_get_step(opt, NULL), DAT_ERR_INVALID_ARG, "step");
    ck_assert_dat_err(dat_optim_set_step(NULL, 0), DAT_ERR_INVALID_ARG, "optim");
    ck_assert_dat_err(dat_optim_set_step(opt, -1), DAT_ERR_INVALID_ARG, ">= 0");
    ck_assert_dat_err(dat_optim_set_lr_scale(NULL, 0, 1, 1.0f), DAT_ERR_INVALID_ARG, "optim");
    ck_assert_dat_err(dat_optim_set_lr_scale(opt, -1, 1, 1.0f), DAT_ERR_INVALID_ARG, "[-1");
    ck_assert_dat_err(dat_optim_set_lr_scale(opt, 0, 1, INFINITY), DAT_ERR_INVALID_ARG, "finite");
    ck_assert_dat_err(dat_optim_state_size(NULL, &bytes), DAT_ERR_INVALID_ARG, "optim");
    ck_assert_dat_err(dat_optim_state_size(opt, NULL), DAT_ERR_INVALID_ARG, "bytes");
    ck_assert_dat_ok(dat_optim_state_size(opt, &bytes));
    unsigned char buf[256] = {0};
    ck_assert_dat_err(dat_optim_state_save(NULL, buf, bytes), DAT_ERR_INVALID_ARG, "optim");
    ck_assert_dat_err(dat_optim_state_save(opt, NULL, bytes), DAT_ERR_INVALID_ARG, "buf");
    ck_assert_dat_err(dat_optim_state_save(opt, buf, 3), DAT_ERR_INVALID_ARG, "bytes");
    ck_assert_dat_err(dat_optim_state_load(NULL, buf, bytes), DAT_ERR_INVALID_ARG, "optim");
    ck_assert_dat_err(dat_optim_state_load(opt, NULL, bytes), DAT_ERR_INVALID_ARG, "buf");
    ck_assert_dat_err(dat_optim_state_load(opt, buf, bytes), DAT_ERR_FORMAT, "magic");
    ck_assert_dat_err(dat_optim_state_load(opt, buf, 4), DAT_ERR_FORMAT, "too short");
    memset(buf, 0xa5, sizeof buf); /* a larger buffer: the bytes past the state stay */
    ck_assert_uint_lt(bytes, sizeof buf);
    ck_assert_dat_ok(dat_optim_state_save(opt, buf, sizeof buf));
    ck_assert_uint_eq(buf[bytes], 0xa5);
    ck_assert_uint_eq(buf[sizeof buf - 1], 0xa5);
    ck_assert_dat_ok(dat_optim_state_save(opt, buf, bytes));
    ck_assert_dat_err(dat_optim_state_load(opt, buf, bytes - 1), DAT_ERR_FORMAT, "needs");
    ck_assert_dat_ok(dat_optim_state_load(opt, buf, bytes));
    dat_tensor_destroy(short_t);
    dat_optim_destroy(opt);
    dat_optim_destroy(NULL);
}
END_TEST

START_TEST(test_comm_model_misuse)
{
    dat_comm *c = NULL;
    ck_assert_dat_ok(dat_comm_create_self(&c, ctx));
    dat_model *m = NULL;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "mlp", NULL));
    ck_assert_dat_err(dat_comm_allreduce_grads(NULL, m, NULL, DAT_QUANT_ONE_SIDED, 0),
                      DAT_ERR_INVALID_ARG, "comm");
    ck_assert_dat_err(dat_comm_allreduce_grads(c, NULL, NULL, DAT_QUANT_ONE_SIDED, 0),
                      DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_ok(dat_comm_allreduce_grads(c, m, NULL, DAT_QUANT_ONE_SIDED, 0));
    ck_assert_dat_err(dat_comm_broadcast_model(NULL, m, 0), DAT_ERR_INVALID_ARG, "comm");
    ck_assert_dat_err(dat_comm_broadcast_model(c, NULL, 0), DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_comm_broadcast_model(c, m, 3), DAT_ERR_INVALID_ARG, "root");

    /* The gradient synchronizer. */
    ck_assert_dat_err(dat_grad_sync_options_init(NULL), DAT_ERR_INVALID_ARG, "opts");
    dat_grad_sync_options so;
    ck_assert_dat_ok(dat_grad_sync_options_init(&so));
    dat_grad_sync *s = (dat_grad_sync *)0x1;
    ck_assert_dat_err(dat_grad_sync_create(NULL, c, m, NULL), DAT_ERR_INVALID_ARG, "out");
    ck_assert_dat_err(dat_grad_sync_create(&s, NULL, m, NULL), DAT_ERR_INVALID_ARG, "comm");
    ck_assert_ptr_null(s);
    ck_assert_dat_err(dat_grad_sync_create(&s, c, NULL, NULL), DAT_ERR_INVALID_ARG, "model");
    so.size = 2;
    ck_assert_dat_err(dat_grad_sync_create(&s, c, m, &so), DAT_ERR_INVALID_ARG, "size");
    dat_grad_sync_options_init(&so);
    so.mode = (dat_quant_mode)7;
    dat_quantizer *q;
    ck_assert_dat_ok(dat_quantizer_create(&q, ctx, NULL));
    so.quantizer = q;
    ck_assert_dat_err(dat_grad_sync_create(&s, c, m, &so), DAT_ERR_INVALID_ARG, "mode");
    ck_assert_dat_ok(dat_grad_sync_create(&s, c, m, NULL));
    dat_grad_sync *second = (dat_grad_sync *)0x1; /* one per model, overlapping or not */
    ck_assert_dat_err(dat_grad_sync_create(&second, c, m, NULL), DAT_ERR_STATE, "already has");
    ck_assert_ptr_null(second);
    int32_t overlaps = -1;
    ck_assert_dat_err(dat_grad_sync_overlaps(NULL, &overlaps), DAT_ERR_INVALID_ARG, "sync");
    ck_assert_dat_err(dat_grad_sync_overlaps(s, NULL), DAT_ERR_INVALID_ARG, "overlaps");
    ck_assert_dat_err(dat_grad_sync_begin(NULL, 0), DAT_ERR_INVALID_ARG, "sync");
    ck_assert_dat_err(dat_grad_sync_end(NULL), DAT_ERR_INVALID_ARG, "sync");
    ck_assert_dat_err(dat_grad_sync_end(s), DAT_ERR_STATE, "not armed");
    ck_assert_dat_ok(dat_grad_sync_begin(s, 0));
    ck_assert_dat_ok(dat_grad_sync_end(s));
    dat_grad_sync_destroy(s);
    dat_grad_sync_destroy(NULL);
    dat_quantizer_destroy(q);
    dat_model_destroy(m);
    dat_comm_destroy(c);
}
END_TEST

/* Training checkpoints (dat_checkpoint.h); data sets are in test_dataset_misuse. */
START_TEST(test_checkpoint_misuse)
{
    dat_model *m;
    ck_assert_dat_ok(dat_model_create_preset(&m, ctx, "mlp", NULL));
    dat_checkpoint_info info = {.size = sizeof info};
    ck_assert_dat_err(dat_checkpoint_save(NULL, m, NULL, &info, NULL), DAT_ERR_INVALID_ARG, "path");
    ck_assert_dat_err(dat_checkpoint_save("/tmp/x", NULL, NULL, &info, NULL), DAT_ERR_INVALID_ARG,
                      "model");
    ck_assert_dat_err(dat_checkpoint_save("/tmp/x", m, NULL, NULL, NULL), DAT_ERR_INVALID_ARG,
                      "info");
    info.size = 1;
    ck_assert_dat_err(dat_checkpoint_save("/tmp/x", m, NULL, &info, NULL), DAT_ERR_INVALID_ARG,
                      "size");
    info.size = sizeof info;
    ck_assert_dat_err(dat_checkpoint_save("/nonexistent/c.safetensors", m, NULL, &info, NULL),
                      DAT_ERR_IO, "nonexistent");
    ck_assert_dat_err(dat_checkpoint_load(NULL, m, NULL, &info, NULL, 0), DAT_ERR_INVALID_ARG,
                      "path");
    ck_assert_dat_err(dat_checkpoint_load("/tmp/x", NULL, NULL, &info, NULL, 0),
                      DAT_ERR_INVALID_ARG, "model");
    ck_assert_dat_err(dat_checkpoint_load("/tmp/x", m, NULL, NULL, NULL, 0), DAT_ERR_INVALID_ARG,
                      "info");
    ck_assert_dat_err(dat_checkpoint_load("/nonexistent/c.safetensors", m, NULL, &info, NULL, 0),
                      DAT_ERR_IO, "cannot open");
    /* A plain model file is not a training checkpoint. */
    ck_assert_dat_ok(dat_model_save(m, "/tmp/dat_misuse_model.safetensors"));
    ck_assert_dat_err(dat_checkpoint_load("/tmp/dat_misuse_model.safetensors", m, NULL, &info,
                                          NULL, 0), DAT_ERR_FORMAT, "train.position");
    unlink("/tmp/dat_misuse_model.safetensors");
    dat_model_destroy(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("api_misuse");
    TCase *tc = tcase_create("api_misuse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_infallible_functions);
    tcase_add_test(tc, test_options_init_writes_the_callers_size);
    tcase_add_test(tc, test_ctx_misuse);
    tcase_add_test(tc, test_tensor_create_misuse);
    tcase_add_test(tc, test_tensor_query_misuse);
    tcase_add_test(tc, test_tensor_data_misuse);
    tcase_add_test(tc, test_model_builder_misuse);
    tcase_add_test(tc, test_model_misuse);
    tcase_add_test(tc, test_attack_misuse);
    tcase_add_test(tc, test_eval_misuse);
    tcase_add_test(tc, test_optim_misuse);
    tcase_add_test(tc, test_comm_model_misuse);
    tcase_add_test(tc, test_quantizer_misuse);
    tcase_add_test(tc, test_comm_misuse);
    tcase_add_test(tc, test_dataset_misuse);
    tcase_add_test(tc, test_checkpoint_misuse);
#if DAT_TEST_MPI
    tcase_add_test(tc, test_mpi_misuse);
#endif
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
