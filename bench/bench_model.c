/* Throughput of a model's training step pieces on the CPU backend:
 *   bench_model PRESET BATCH ITERS THREADS
 * prints one line per measurement:
 *   <preset> batch=<B> fwd_bwd_img_s=<..> input_grad_img_s=<..> peak_rss_mib=<..>
 * fwd_bwd is dat_model_loss_backward (forward, CE, backward into the parameter
 * gradient); input_grad is dat_model_input_grad (what an attack step costs). */
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_model PRESET BATCH ITERS THREADS\n");
        return 2;
    }
    const char *preset = argv[1];
    int batch = atoi(argv[2]), iters = atoi(argv[3]), threads = atoi(argv[4]);
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.num_threads = threads;
    bench_device(&co);
    dat_ctx *ctx;
    TRY(dat_ctx_create(&ctx, &co));
    dat_model *m;
    TRY(dat_model_create_preset(&m, ctx, preset, NULL));
    int32_t c, h, w, classes;
    TRY(dat_model_shape(m, &c, &h, &w, &classes));
    int64_t xs[4] = {batch, c, h, w}, ys[1] = {batch};
    dat_tensor *x, *dx, *y;
    TRY(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    TRY(dat_tensor_create(&dx, ctx, DAT_FLOAT32, 4, xs));
    TRY(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    TRY(dat_tensor_fill_uniform(x, 0.0f, 1.0f, 0, 0));
    TRY(dat_tensor_fill(y, 1));
    float loss;
    /* Warm-up: sizes the activation buffers and the workspace. */
    TRY(dat_model_loss_backward(m, x, y, NULL, &loss));
    TRY(dat_model_input_grad(m, x, y, NULL, dx, &loss));
    double t0 = now();
    for (int i = 0; i < iters; ++i)
        TRY(dat_model_loss_backward(m, x, y, NULL, &loss));
    TRY(dat_ctx_synchronize(ctx));
    double t1 = now();
    TRY(dat_model_set_mode(m, DAT_MODE_EVAL));
    for (int i = 0; i < iters; ++i)
        TRY(dat_model_input_grad(m, x, y, NULL, dx, &loss));
    TRY(dat_ctx_synchronize(ctx));
    double t2 = now();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s batch=%d fwd_bwd_img_s=%.1f input_grad_img_s=%.1f peak_rss_mib=%.1f\n", preset,
           batch, batch * iters / (t1 - t0), batch * iters / (t2 - t1), ru.ru_maxrss / 1024.0);
    dat_tensor_destroy(x);
    dat_tensor_destroy(dx);
    dat_tensor_destroy(y);
    dat_model_destroy(m);
    dat_ctx_destroy(ctx);
    return 0;
}
