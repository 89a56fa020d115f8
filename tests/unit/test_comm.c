/*
 * The self communicator (one rank): collectives, the quantized all-reduce
 * against the quantizer's own encode / decode, statistics, abort, the NCCL
 * entry points of a build without CUDA, and the unique-id file helpers.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check_util.h"
#include "comm/comm.h"
#include "quant/quant_math.h"
#include "quant/quantizer.h"

static dat_ctx *ctx;
static dat_comm *comm;

static void setup(void)
{
    dat_ctx_options o;
    dat_ctx_options_init(&o);
    o.seed = 2024;
    o.num_threads = 2;
    ck_assert_dat_ok(dat_ctx_create(&ctx, &o));
    ck_assert_dat_ok(dat_comm_create_self(&comm, ctx));
}

static void teardown(void)
{
    dat_comm_destroy(comm);
    dat_ctx_destroy(ctx);
}

static dat_tensor *vec(int64_t n, float scale)
{
    dat_tensor *t = NULL;
    ck_assert_dat_ok(dat_tensor_create(&t, ctx, DAT_FLOAT32, 1, &n));
    ck_assert_dat_ok(dat_tensor_fill_normal(t, 0.0f, scale, 3, 0));
    return t;
}

static float *data(dat_tensor *t)
{
    void *p = NULL;
    ck_assert_dat_ok(dat_tensor_host_data(t, &p));
    return p;
}

START_TEST(test_self_collectives)
{
    int32_t r = -1, m = -1;
    ck_assert_dat_ok(dat_comm_rank(comm, &r));
    ck_assert_dat_ok(dat_comm_size(comm, &m));
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(m, 1);
    dat_tensor *t = vec(1001, 1.0f);
    float before[1001];
    memcpy(before, data(t), sizeof before);
    ck_assert_dat_ok(dat_comm_allreduce(comm, t, DAT_REDUCE_SUM));
    ck_assert_dat_ok(dat_comm_allreduce(comm, t, DAT_REDUCE_MEAN));
    ck_assert_dat_ok(dat_comm_broadcast(comm, t, 0));
    ck_assert_mem_eq(before, data(t), sizeof before);
    dat_tensor *g = vec(1001, 2.0f);
    ck_assert_dat_ok(dat_comm_allgather(comm, t, g));
    ck_assert_mem_eq(before, data(g), sizeof before);
    dat_comm_stats st = {.size = sizeof st};
    ck_assert_dat_ok(dat_comm_get_stats(comm, &st));
    ck_assert_uint_eq(st.calls, 4);
    ck_assert_uint_eq(st.bytes_sent, 0);
    ck_assert_uint_eq(st.bytes_received, 0);
    ck_assert(st.seconds >= 0 && st.seconds < 10);
    ck_assert_dat_ok(dat_comm_reset_stats(comm));
    ck_assert_dat_ok(dat_comm_get_stats(comm, &st));
    ck_assert_uint_eq(st.calls, 0);
    dat_tensor_destroy(t);
    dat_tensor_destroy(g);
}
END_TEST

/* One rank: one-sided is decode(encode(x)) with the worker stream of rank 0;
 * two-sided quantizes that again with the server stream. */
START_TEST(test_self_quantized)
{
    const int64_t n = 70000;
    for (int ef = 0; ef < 2; ++ef) {
        dat_quantizer_options qo;
        dat_quantizer_options_init(&qo);
        qo.bits = 6;
        qo.error_feedback = ef;
        qo.seed = 5;
        dat_quantizer *q = NULL, *ref = NULL;
        ck_assert_dat_ok(dat_quantizer_create(&q, ctx, &qo));
        ck_assert_dat_ok(dat_quantizer_create(&ref, ctx, &qo));
        size_t bytes;
        ck_assert_dat_ok(dat_quantizer_encoded_size(q, n, &bytes));
        void *codes = malloc(bytes);
        for (int mode = 0; mode < 2; ++mode) {
            for (uint64_t step = 10; step < 13; ++step) {
                dat_tensor *t = vec(n, 0.01f), *want = vec(n, 0.01f);
                ck_assert_dat_ok(dat_quantizer_encode(ref, want, step, codes, bytes));
                ck_assert_dat_ok(dat_quantizer_decode(ref, codes, bytes, want, 0));
                if (mode == DAT_QUANT_TWO_SIDED) {
                    ck_assert_dat_ok(dat_quantizer_encode_slice(
                        ref, "t", data(want), (size_t)n, 0, 0, step, DAT_QUANT_PHASE_SERVER, 0,
                        codes));
                    ck_assert_dat_ok(dat_quantizer_decode_slice(ref, codes, (size_t)n,
                                                                data(want), 0, 1.0f));
                }
                ck_assert_dat_ok(dat_comm_allreduce_quantized(comm, t, q, (dat_quant_mode)mode,
                                                              step));
                for (int64_t i = 0; i < n; ++i)
                    ck_assert_msg(data(t)[i] == data(want)[i],
                                  "ef %d mode %d step %llu element %lld: %g, expected %g", ef,
                                  mode, (unsigned long long)step, (long long)i,
                                  (double)data(t)[i], (double)data(want)[i]);
                dat_tensor_destroy(t);
                dat_tensor_destroy(want);
            }
        }
        free(codes);
        dat_quantizer_destroy(q);
        dat_quantizer_destroy(ref);
    }
}
END_TEST

START_TEST(test_self_errors_and_abort)
{
    dat_tensor *t = vec(10, 1.0f);
    int64_t n = 10;
    dat_tensor *i32 = NULL;
    ck_assert_dat_ok(dat_tensor_create(&i32, ctx, DAT_INT32, 1, &n));
    ck_assert_dat_err(dat_comm_allreduce(comm, i32, DAT_REDUCE_SUM), DAT_ERR_INVALID_ARG,
                      "int32");
    ck_assert_dat_ok(dat_comm_broadcast(comm, i32, 0)); /* any dtype */
    dat_quantizer *q = NULL;
    ck_assert_dat_ok(dat_quantizer_create(&q, ctx, NULL));
    data(t)[4] = NAN;
    ck_assert_dat_err(dat_comm_allreduce_quantized(comm, t, q, DAT_QUANT_ONE_SIDED, 0),
                      DAT_ERR_NUMERIC, "element 4");
    data(t)[4] = 0;
    /* A failed local part leaves the communicator usable. */
    ck_assert_dat_ok(dat_comm_allreduce_quantized(comm, t, q, DAT_QUANT_TWO_SIDED, 0));
    ck_assert_dat_ok(dat_comm_abort(comm));
    ck_assert_dat_err(dat_comm_allreduce(comm, t, DAT_REDUCE_SUM), DAT_ERR_STATE, "aborted");
    ck_assert_dat_err(dat_comm_allreduce_quantized(comm, t, q, DAT_QUANT_ONE_SIDED, 0),
                      DAT_ERR_STATE, "destroy it");
    dat_quantizer_destroy(q);
    dat_tensor_destroy(t);
    dat_tensor_destroy(i32);
}
END_TEST

/* The context's DEBUG log, for the synchronizer's count of early buckets. */
static char last_log[512];

static void keep_log(dat_log_level level, const char *message, void *user)
{
    (void)level;
    (void)user;
    if (strstr(message, "dat_grad_sync"))
        snprintf(last_log, sizeof last_log, "%s", message);
}

/* The synchronizer on one rank: with the self communicator it overlaps, the
 * buckets start during the backward pass, and the gradient is the bits of
 * dat_comm_allreduce_grads (exact: unchanged; quantized: quantized alike). */
START_TEST(test_grad_sync_self)
{
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.seed = 2024;
    co.num_threads = 2;
    co.log_fn = keep_log;
    co.log_level = DAT_LOG_DEBUG;
    dat_ctx *c;
    ck_assert_dat_ok(dat_ctx_create(&c, &co));
    dat_comm *self;
    ck_assert_dat_ok(dat_comm_create_self(&self, c));
    dat_model_options mo;
    dat_model_options_init(&mo);
    mo.init_seed = 9;
    dat_model *a, *b;
    ck_assert_dat_ok(dat_model_create_preset(&a, c, "cnn_small", &mo));
    ck_assert_dat_ok(dat_model_create_preset(&b, c, "cnn_small", &mo));
    int64_t xs[4] = {8, 1, 28, 28}, ys[1] = {8};
    dat_tensor *x, *y, *ga, *gb;
    ck_assert_dat_ok(dat_tensor_create(&x, c, DAT_FLOAT32, 4, xs));
    ck_assert_dat_ok(dat_tensor_create(&y, c, DAT_INT32, 1, ys));
    ck_assert_dat_ok(dat_tensor_fill_uniform(x, 0, 1, 4, 0));
    ck_assert_dat_ok(dat_tensor_fill(y, 3));
    dat_model_grads(a, &ga);
    dat_model_grads(b, &gb);
    int64_t np;
    dat_tensor_numel(ga, &np);
    for (int quantized = 0; quantized < 2; ++quantized) {
        dat_quantizer *qa = NULL, *qb = NULL;
        if (quantized) {
            ck_assert_dat_ok(dat_quantizer_create(&qa, c, NULL));
            ck_assert_dat_ok(dat_quantizer_create(&qb, c, NULL));
        }
        dat_grad_sync_options so;
        dat_grad_sync_options_init(&so);
        so.bucket_elems = 512 * 40;
        so.quantizer = qb;
        dat_grad_sync *sync;
        ck_assert_dat_ok(dat_grad_sync_create(&sync, self, b, &so));
        int32_t overlaps = 0;
        ck_assert_dat_ok(dat_grad_sync_overlaps(sync, &overlaps));
        ck_assert_int_eq(overlaps, 1);
        ck_assert_dat_ok(dat_model_loss_backward(a, x, y, NULL, NULL));
        ck_assert_dat_ok(dat_comm_allreduce_grads(self, a, qa, DAT_QUANT_ONE_SIDED, 5));
        last_log[0] = 0;
        ck_assert_dat_ok(dat_grad_sync_begin(sync, 5));
        ck_assert_dat_ok(dat_model_loss_backward(b, x, y, NULL, NULL));
        ck_assert_dat_ok(dat_grad_sync_end(sync));
        ck_assert_mem_eq(data(ga), data(gb), (size_t)np * 4);
        /* 23 buckets; all but the first layer's started before the pass ended. */
        ck_assert_msg(strstr(last_log, "22 of 23 buckets started") != NULL, "log: %s", last_log);
        /* Misuse: end without begin, begin twice, a second synchronizer. */
        ck_assert_dat_err(dat_grad_sync_end(sync), DAT_ERR_STATE, "not armed");
        ck_assert_dat_ok(dat_grad_sync_begin(sync, 6));
        ck_assert_dat_err(dat_grad_sync_begin(sync, 6), DAT_ERR_STATE, "already armed");
        ck_assert_dat_ok(dat_grad_sync_end(sync)); /* no backward ran: all at the end */
        dat_grad_sync *second = (dat_grad_sync *)0x1;
        ck_assert_dat_err(dat_grad_sync_create(&second, self, b, NULL), DAT_ERR_STATE,
                          "already has");
        ck_assert_ptr_null(second);
        dat_grad_sync_destroy(sync);
        dat_quantizer_destroy(qa);
        dat_quantizer_destroy(qb);
    }
    /* Options: a bucket that is not a multiple of the quantizer's. */
    dat_quantizer *q;
    ck_assert_dat_ok(dat_quantizer_create(&q, c, NULL));
    dat_grad_sync_options so;
    dat_grad_sync_options_init(&so);
    so.quantizer = q;
    so.bucket_elems = 1000;
    dat_grad_sync *sync = (dat_grad_sync *)0x1;
    ck_assert_dat_err(dat_grad_sync_create(&sync, self, b, &so), DAT_ERR_INVALID_ARG,
                      "multiple of the quantizer's bucket");
    ck_assert_ptr_null(sync);
    so.bucket_elems = 0;
    ck_assert_dat_err(dat_grad_sync_create(&sync, self, b, &so), DAT_ERR_INVALID_ARG,
                      "bucket_elems");
    dat_quantizer_destroy(q);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_model_destroy(a);
    dat_model_destroy(b);
    dat_comm_destroy(self);
    dat_ctx_destroy(c);
}
END_TEST

START_TEST(test_nccl_without_cuda)
{
    if (dat_has_cuda())
        return;
    dat_comm_id id;
    ck_assert_dat_err(dat_comm_unique_id(&id), DAT_ERR_UNSUPPORTED, "without CUDA");
    dat_comm *c = (dat_comm *)0x1;
    ck_assert_dat_err(dat_comm_create_nccl(&c, ctx, 1, 0, &id, NULL), DAT_ERR_UNSUPPORTED,
                      "without CUDA");
    ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_id_file)
{
    char path[] = "/tmp/libdat-id-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(path);
    dat_comm_id id, back;
    for (size_t i = 0; i < sizeof id.internal; ++i)
        id.internal[i] = (unsigned char)(i * 7 + 3);
    double t0 = dat_now();
    ck_assert_dat_err(dat_comm_unique_id_read(&back, path, 0.2), DAT_ERR_TIMEOUT,
                      "did not appear");
    ck_assert_msg(dat_now() - t0 >= 0.19, "returned before the timeout");
    ck_assert_dat_ok(dat_comm_unique_id_write(&id, path));
    ck_assert_dat_ok(dat_comm_unique_id_read(&back, path, 1.0));
    ck_assert_mem_eq(&id, &back, sizeof id);
    FILE *f = fopen(path, "wb");
    fputs("not an id", f);
    fclose(f);
    ck_assert_dat_err(dat_comm_unique_id_read(&back, path, 1.0), DAT_ERR_FORMAT, "9 bytes");
    unlink(path);
    ck_assert_dat_err(dat_comm_unique_id_write(&id, "/nonexistent-dir/x"), DAT_ERR_IO,
                      "/nonexistent-dir/x");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("comm");
    TCase *tc = tcase_create("comm");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_self_collectives);
    tcase_add_test(tc, test_self_quantized);
    tcase_add_test(tc, test_self_errors_and_abort);
    tcase_add_test(tc, test_grad_sync_self);
    tcase_add_test(tc, test_nccl_without_cuda);
    tcase_add_test(tc, test_id_file);
    suite_add_tcase(s, tc);
    return dat_run_suite(s);
}
