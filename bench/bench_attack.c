/* PGD-10 perturbation throughput: bench_attack PRESET BATCH ITERS THREADS
 * prints "<preset> batch=<B> attack_img_s=<..>". */
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_attack PRESET BATCH ITERS THREADS\n");
        return 2;
    }
    int batch = atoi(argv[2]), iters = atoi(argv[3]);
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.num_threads = atoi(argv[4]);
    bench_device(&co);
    dat_ctx *ctx;
    TRY(dat_ctx_create(&ctx, &co));
    dat_model *m;
    TRY(dat_model_create_preset(&m, ctx, argv[1], NULL));
    int32_t c, h, w;
    TRY(dat_model_shape(m, &c, &h, &w, NULL));
    dat_attack_options ao;
    dat_attack_options_init(&ao);
    ao.steps = 10;
    dat_attack *a;
    TRY(dat_attack_create(&a, ctx, &ao));
    int64_t xs[4] = {batch, c, h, w}, ys[1] = {batch};
    dat_tensor *x, *xa, *y;
    TRY(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    TRY(dat_tensor_create(&xa, ctx, DAT_FLOAT32, 4, xs));
    TRY(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    TRY(dat_tensor_fill_uniform(x, 0.0f, 1.0f, 0, 0));
    TRY(dat_tensor_fill(y, 3));
    TRY(dat_attack_perturb(a, m, x, y, xa)); /* warm-up */
    TRY(dat_ctx_synchronize(ctx));
    double t0 = now();
    for (int i = 0; i < iters; ++i)
        TRY(dat_attack_perturb(a, m, x, y, xa));
    TRY(dat_ctx_synchronize(ctx));
    printf("%s batch=%d attack_img_s=%.1f\n", argv[1], batch, batch * iters / (now() - t0));
    dat_tensor_destroy(x);
    dat_tensor_destroy(xa);
    dat_tensor_destroy(y);
    dat_attack_destroy(a);
    dat_model_destroy(m);
    dat_ctx_destroy(ctx);
    return 0;
}
