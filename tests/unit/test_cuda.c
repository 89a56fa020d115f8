/* The CUDA backend against the CPU: tensors, fills, bit-identical Philox
 * streams, and the public quantizer on a CUDA context (on the device where the
 * backend runs quantizers, else staged through the host) giving a CPU
 * quantizer's bytes; out of device memory as a status; deterministic
 * convolutions; bf16 weights at any parameter offset. Exits 77 (skipped) where no GPU is present. */
#include <stdio.h>
#include <stdlib.h>

#include "check_util.h"

static dat_ctx *make_ctx_with(dat_device_kind kind, uint64_t seed, int deterministic,
                              dat_precision precision)
{
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.device = kind;
    o.seed = seed;
    o.deterministic = deterministic;
    o.precision = precision;
    dat_ctx *ctx = NULL;
    ck_assert_dat_ok(dat_ctx_create(&ctx, &o));
    return ctx;
}

static dat_ctx *make_ctx(dat_device_kind kind, uint64_t seed)
{
    return make_ctx_with(kind, seed, 0, DAT_PRECISION_FP32);
}

START_TEST(test_roundtrip_and_fill)
{
    dat_ctx *g = make_ctx(DAT_DEVICE_CUDA, 0);
    int64_t shape[2] = {3, 1000};
    dat_tensor *t = NULL, *u = NULL;
    ck_assert_dat_ok(dat_tensor_create(&t, g, DAT_FLOAT32, 2, shape));
    ck_assert_dat_ok(dat_tensor_create(&u, g, DAT_FLOAT32, 2, shape));
    static float in[3000], out[3000];
    ck_assert_dat_ok(dat_tensor_read(t, out, sizeof out));
    for (int i = 0; i < 3000; ++i) {
        ck_assert_float_eq(out[i], 0.0f);
        in[i] = (float)i - 1500.5f;
    }
    ck_assert_dat_ok(dat_tensor_write(t, in, sizeof in));
    ck_assert_dat_ok(dat_tensor_copy(u, t));
    ck_assert_dat_ok(dat_tensor_read(u, out, sizeof out));
    ck_assert_mem_eq(in, out, sizeof in);
    ck_assert_dat_ok(dat_tensor_fill(u, -0.75));
    ck_assert_dat_ok(dat_tensor_read(u, out, sizeof out));
    ck_assert_float_eq(out[2999], -0.75f);
    void *p = NULL;
    ck_assert_dat_err(dat_tensor_host_data(u, &p), DAT_ERR_UNSUPPORTED, "dat_tensor_read");

    /* Across contexts: CUDA -> CPU -> CUDA. */
    dat_ctx *c = make_ctx(DAT_DEVICE_CPU, 0);
    dat_tensor *h = NULL;
    ck_assert_dat_ok(dat_tensor_create(&h, c, DAT_FLOAT32, 2, shape));
    ck_assert_dat_ok(dat_tensor_copy(h, t));
    ck_assert_dat_ok(dat_tensor_fill(t, 0));
    ck_assert_dat_ok(dat_tensor_copy(t, h));
    ck_assert_dat_ok(dat_tensor_read(t, out, sizeof out));
    ck_assert_mem_eq(in, out, sizeof in);
    dat_tensor_destroy(h);
    dat_tensor_destroy(t);
    dat_tensor_destroy(u);
    dat_ctx_destroy(c);
    dat_ctx_destroy(g);
}
END_TEST

/* Every fill must give the same bits on both backends. */
static void compare_fill(dat_dtype dtype, int normal, int64_t n, uint64_t stream,
                         uint64_t offset)
{
    dat_ctx *c = make_ctx(DAT_DEVICE_CPU, 0x1234567890abcdefull);
    dat_ctx *g = make_ctx(DAT_DEVICE_CUDA, 0x1234567890abcdefull);
    dat_tensor *tc = NULL, *tg = NULL;
    ck_assert_dat_ok(dat_tensor_create(&tc, c, dtype, 1, &n));
    ck_assert_dat_ok(dat_tensor_create(&tg, g, dtype, 1, &n));
    if (normal) {
        ck_assert_dat_ok(dat_tensor_fill_normal(tc, 0.5f, 2.0f, stream, offset));
        ck_assert_dat_ok(dat_tensor_fill_normal(tg, 0.5f, 2.0f, stream, offset));
    } else {
        ck_assert_dat_ok(dat_tensor_fill_uniform(tc, -1.0f, 3.0f, stream, offset));
        ck_assert_dat_ok(dat_tensor_fill_uniform(tg, -1.0f, 3.0f, stream, offset));
    }
    size_t nbytes;
    dat_tensor_nbytes(tc, &nbytes);
    unsigned char *a = malloc(nbytes), *b = malloc(nbytes);
    ck_assert_dat_ok(dat_tensor_read(tc, a, nbytes));
    ck_assert_dat_ok(dat_tensor_read(tg, b, nbytes));
    size_t esize = dat_dtype_size(dtype);
    for (size_t i = 0; i < nbytes; i += esize)
        ck_assert_msg(memcmp(a + i, b + i, esize) == 0,
                      "%s %s fill differs at element %zu (n %lld, stream %llu, offset %llu)",
                      dat_dtype_name(dtype), normal ? "normal" : "uniform", i / esize,
                      (long long)n, (unsigned long long)stream, (unsigned long long)offset);
    free(a);
    free(b);
    dat_tensor_destroy(tc);
    dat_tensor_destroy(tg);
    dat_ctx_destroy(c);
    dat_ctx_destroy(g);
}

START_TEST(test_philox_parity)
{
    for (int normal = 0; normal < 2; ++normal) {
        compare_fill(DAT_FLOAT32, normal, 1 << 22, 0, 0);
        compare_fill(DAT_FLOAT32, normal, 1001, 7, 3);
        compare_fill(DAT_FLOAT32, normal, 5, ~0ull, (1ull << 40) + 1);
        compare_fill(DAT_BFLOAT16, normal, 4099, 2, 1);
    }
}
END_TEST

/* Encodes the same values with a quantizer of each context, error feedback on,
 * for three steps: the same codes and decodes each step. The CUDA quantizer
 * takes a device tensor, then (staged through the host) a CPU one. */
START_TEST(test_quantizer_on_device)
{
    dat_ctx *g = make_ctx(DAT_DEVICE_CUDA, 5), *c = make_ctx(DAT_DEVICE_CPU, 5);
    const int64_t n = 300007;
    for (int bits = 3; bits <= 8; bits += 5) {
        dat_quantizer_options qo;
        dat_quantizer_options_init(&qo);
        qo.bits = bits;
        qo.error_feedback = 1;
        dat_quantizer *qg = NULL, *qc = NULL;
        ck_assert_dat_ok(dat_quantizer_create(&qg, g, &qo));
        ck_assert_dat_ok(dat_quantizer_create(&qc, c, &qo));
        size_t bytes = 0;
        ck_assert_dat_ok(dat_quantizer_encoded_size(qc, n, &bytes));
        uint8_t *kg = malloc(bytes), *kc = malloc(bytes);
        float *vg = malloc((size_t)n * sizeof *vg);
        dat_tensor *xg = NULL, *xc = NULL;
        ck_assert_dat_ok(dat_tensor_create(&xg, g, DAT_FLOAT32, 1, &n));
        ck_assert_dat_ok(dat_tensor_create(&xc, c, DAT_FLOAT32, 1, &n));
        for (uint64_t step = 0; step < 3; ++step) {
            ck_assert_dat_ok(dat_tensor_fill_normal(xc, 0.0f, 1e-2f, 11, step));
            ck_assert_dat_ok(dat_tensor_fill_normal(xg, 0.0f, 1e-2f, 11, step));
            /* step 1 hands the CUDA quantizer the CPU tensor */
            ck_assert_dat_ok(dat_quantizer_encode(qg, step == 1 ? xc : xg, step, kg, bytes));
            ck_assert_dat_ok(dat_quantizer_encode(qc, xc, step, kc, bytes));
            ck_assert_msg(memcmp(kg, kc, bytes) == 0, "bits %d, step %d: the codes differ", bits,
                          (int)step);
            ck_assert_dat_ok(dat_quantizer_decode(qg, kg, bytes, xg, 1));
            ck_assert_dat_ok(dat_quantizer_decode(qc, kc, bytes, xc, 1));
            void *vc = NULL;
            ck_assert_dat_ok(dat_tensor_read(xg, vg, (size_t)n * sizeof *vg));
            ck_assert_dat_ok(dat_tensor_host_data(xc, &vc));
            ck_assert_msg(memcmp(vg, vc, (size_t)n * sizeof *vg) == 0,
                          "bits %d, step %d: the decodes differ", bits, (int)step);
        }
        dat_tensor_destroy(xg);
        dat_tensor_destroy(xc);
        free(kg);
        free(kc);
        free(vg);
        dat_quantizer_destroy(qg);
        dat_quantizer_destroy(qc);
    }
    dat_ctx_destroy(g);
    dat_ctx_destroy(c);
}
END_TEST

START_TEST(test_bad_ordinal)
{
    int32_t count = 0;
    ck_assert_dat_ok(dat_cuda_device_count(&count));
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.device = DAT_DEVICE_CUDA;
    o.device_ordinal = count;
    dat_ctx *ctx = (dat_ctx *)0x1;
    ck_assert_dat_err(dat_ctx_create(&ctx, &o), DAT_ERR_NO_DEVICE, "device_ordinal");
    ck_assert_ptr_null(ctx);
}
END_TEST

static dat_tensor *images(dat_ctx *ctx, int64_t n)
{
    int64_t shape[4] = {n, 1, 28, 28};
    dat_tensor *x = NULL;
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, shape));
    ck_assert_dat_ok(dat_tensor_fill_uniform(x, 0.0f, 1.0f, 11, 0));
    return x;
}

static dat_tensor *matrix(dat_ctx *ctx, int64_t rows, int64_t cols)
{
    int64_t shape[2] = {rows, cols};
    dat_tensor *t = NULL;
    ck_assert_dat_ok(dat_tensor_create(&t, ctx, DAT_FLOAT32, 2, shape));
    return t;
}

/* Whether cnn_small's loss gradient on one batch, computed twice on a context
 * with dat_ctx_options::deterministic = det, comes out the same bits. */
static int same_gradients_twice(int det)
{
    dat_ctx *g = make_ctx_with(DAT_DEVICE_CUDA, 0, det, DAT_PRECISION_FP32);
    dat_model *m = NULL;
    ck_assert_dat_ok(dat_model_create_preset(&m, g, "cnn_small", NULL));
    const int64_t n = 64, shape[1] = {n};
    dat_tensor *x = images(g, n), *y = NULL, *grads = NULL;
    ck_assert_dat_ok(dat_tensor_create(&y, g, DAT_INT32, 1, shape));
    int32_t labels[64];
    for (int i = 0; i < n; ++i)
        labels[i] = (i * 7) % 10;
    ck_assert_dat_ok(dat_tensor_write(y, labels, sizeof labels));
    ck_assert_dat_ok(dat_model_grads(m, &grads));
    float *first = NULL, *second = NULL;
    size_t count = 0;
    for (int pass = 0; pass < 2; ++pass) {
        float loss = 0;
        ck_assert_dat_ok(dat_model_loss_backward(m, x, y, NULL, &loss));
        *(pass ? &second : &first) = dat_test_read_floats(grads, &count);
    }
    int same = memcmp(first, second, count * sizeof *first) == 0;
    free(first);
    free(second);
    dat_tensor_destroy(y);
    dat_tensor_destroy(x);
    dat_model_destroy(m);
    dat_ctx_destroy(g);
    return same;
}

/* deterministic = 1 keeps cuDNN's non-deterministic algorithms out: the same
 * batch gives the same gradient bits twice. The emulation ranks a
 * non-deterministic backward-filter algorithm first, whose sums change order
 * from call to call; there the default (0) must then differ, which shows the
 * first half can fail. On a GPU the default may or may not differ. */
START_TEST(test_deterministic_convolutions)
{
    ck_assert_msg(same_gradients_twice(1), "deterministic = 1 gave two different gradients");
    if (dat_test_emulated_gpu())
        ck_assert_msg(!same_gradients_twice(0),
                      "the emulated non-deterministic algorithm was not chosen by default");
}
END_TEST

/* conv(1 -> 3, no bias) then conv(3 -> 4): the second weight starts at
 * parameter 27, an odd offset, where a bf16 copy laid out like the float32
 * parameters would sit 2 bytes off the 4-byte alignment cuDNN requires. */
static dat_model *odd_offsets_model(dat_ctx *ctx)
{
    dat_model_builder *b = NULL;
    ck_assert_dat_ok(dat_model_builder_create(&b, ctx, 1, 8, 8));
    dat_layer_spec conv1, conv2, relu, flat, fc;
    ck_assert_dat_ok(dat_layer_spec_init(&conv1, DAT_LAYER_CONV2D));
    conv1.name = "conv1";
    conv1.out_features = 3;
    conv1.padding = 1;
    conv1.bias = 0;
    conv2 = conv1;
    conv2.name = "conv2";
    conv2.out_features = 4;
    ck_assert_dat_ok(dat_layer_spec_init(&relu, DAT_LAYER_RELU));
    ck_assert_dat_ok(dat_layer_spec_init(&flat, DAT_LAYER_FLATTEN));
    ck_assert_dat_ok(dat_layer_spec_init(&fc, DAT_LAYER_LINEAR));
    fc.name = "fc";
    fc.out_features = 10;
    int32_t node = 0;
    ck_assert_dat_ok(dat_model_builder_add(b, &conv1, node, -1, &node));
    ck_assert_dat_ok(dat_model_builder_add(b, &conv2, node, -1, &node));
    ck_assert_dat_ok(dat_model_builder_add(b, &relu, node, -1, &node));
    ck_assert_dat_ok(dat_model_builder_add(b, &flat, node, -1, &node));
    ck_assert_dat_ok(dat_model_builder_add(b, &fc, node, -1, &node));
    dat_model *m = NULL;
    ck_assert_dat_ok(dat_model_builder_finish(b, node, 3, &m));
    dat_model_builder_destroy(b);
    return m;
}

/* The logits of odd_offsets_model on 16 images in a bf16 context. */
static float *bf16_logits(dat_device_kind kind, size_t *count)
{
    dat_ctx *ctx = make_ctx_with(kind, 0, 0, DAT_PRECISION_BF16);
    dat_model *m = odd_offsets_model(ctx);
    int64_t shape[4] = {16, 1, 8, 8};
    dat_tensor *x = NULL, *z = matrix(ctx, 16, 10);
    ck_assert_dat_ok(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, shape));
    ck_assert_dat_ok(dat_tensor_fill_uniform(x, 0.0f, 1.0f, 13, 0));
    ck_assert_dat_ok(dat_model_forward(m, x, z));
    float *logits = dat_test_read_floats(z, count);
    dat_tensor_destroy(z);
    dat_tensor_destroy(x);
    dat_model_destroy(m);
    dat_ctx_destroy(ctx);
    return logits;
}

/* bf16 convolution weights whatever their parameter offsets: each copy gets
 * its own aligned place (the emulated cuDNN refuses misaligned pointers). */
START_TEST(test_bf16_weights_at_odd_offsets)
{
    size_t n = 0;
    float *want = bf16_logits(DAT_DEVICE_CPU, &n), *got = bf16_logits(DAT_DEVICE_CUDA, NULL);
    double e = dat_test_rel_err(want, got, n);
    ck_assert_msg(e < 1e-2, "bf16 logits off by %.3g from the CPU's", e);
    free(want);
    free(got);
}
END_TEST

/* Running out of device memory is a status with a message and loses nothing:
 * the context and the model work once memory is back. A tensor no GPU can hold
 * fails on any device; under the CUDA emulation (DAT_TEST_EMULATED_GPU) the
 * device is also shrunk (DAT_EMU_MEMORY_LIMIT, kernels/emu) below what a
 * forward pass's activations need, and then given back. */
START_TEST(test_out_of_memory)
{
    dat_ctx *g = make_ctx(DAT_DEVICE_CUDA, 5);
    int64_t huge_shape[1] = {(int64_t)1 << 39}; /* 2 TiB of floats */
    dat_tensor *huge = (dat_tensor *)0x1;
    ck_assert_dat_err(dat_tensor_create(&huge, g, DAT_FLOAT32, 1, huge_shape),
                      DAT_ERR_OUT_OF_MEMORY, "");
    ck_assert_ptr_null(huge);
    if (dat_test_emulated_gpu()) {
        const int64_t n = 512;
        dat_model *ref = NULL, *m = NULL;
        ck_assert_dat_ok(dat_model_create_preset(&ref, g, "cnn_small", NULL));
        ck_assert_dat_ok(dat_model_create_preset(&m, g, "cnn_small", NULL));
        dat_tensor *x = images(g, n), *want = matrix(g, n, 10), *got = matrix(g, n, 10);
        ck_assert_dat_ok(dat_model_forward(ref, x, want));
        setenv("DAT_EMU_MEMORY_LIMIT", "16777216", 1);
        ck_assert_dat_err(dat_model_forward(m, x, got), DAT_ERR_OUT_OF_MEMORY, "memory");
        unsetenv("DAT_EMU_MEMORY_LIMIT");
        ck_assert_dat_ok(dat_model_forward(m, x, got));
        size_t count = 0;
        float *a = dat_test_read_floats(want, &count), *b = dat_test_read_floats(got, NULL);
        ck_assert_msg(memcmp(a, b, count * sizeof *a) == 0,
                      "the forward pass after the failed one differs");
        free(a);
        free(b);
        dat_tensor_destroy(got);
        dat_tensor_destroy(want);
        dat_tensor_destroy(x);
        dat_model_destroy(m);
        dat_model_destroy(ref);
    }
    dat_ctx_destroy(g);
}
END_TEST

int main(void)
{
    if (!dat_test_have_gpu()) {
        printf("no CUDA device: skipped\n");
        return DAT_TEST_SKIP;
    }
    Suite *s = suite_create("cuda");
    TCase *tc = tcase_create("cuda");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_roundtrip_and_fill);
    tcase_add_test(tc, test_philox_parity);
    tcase_add_test(tc, test_quantizer_on_device);
    tcase_add_test(tc, test_bad_ordinal);
    tcase_add_test(tc, test_out_of_memory);
    tcase_add_test(tc, test_deterministic_convolutions);
    tcase_add_test(tc, test_bf16_weights_at_odd_offsets);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
