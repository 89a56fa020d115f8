/* One whole PGD-k adversarial training step (attack + loss/backward + optimizer
 * update) of a preset on random data (DAT_BENCH_DEVICE=cuda: on the GPU):
 *   bench_train_step PRESET BATCH ITERS THREADS [STEPS]     (STEPS default 10)
 * prints "<preset> batch=<B> step_img_s=<..> step_ms=<..>". DAT_BENCH_STEP_GRAPH=1
 * records the step after the warm-up one and times its replays (dat_capture.h). */
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>

typedef struct step_args {
    dat_model *m;
    dat_attack *a;
    dat_optim *opt;
    dat_tensor *x, *xa, *y;
} step_args;

static dat_status train_step(const step_args *s)
{
    dat_status st = dat_attack_perturb(s->a, s->m, s->x, s->y, s->xa);
    if (st == DAT_OK)
        st = dat_model_loss_backward(s->m, s->xa, s->y, NULL, NULL);
    return st == DAT_OK ? dat_optim_step_model(s->opt, s->m) : st;
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: bench_train_step PRESET BATCH ITERS THREADS [STEPS]\n");
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
    ao.eps = 0.1f;
    ao.steps = argc == 6 ? atoi(argv[5]) : 10;
    dat_attack *a;
    TRY(dat_attack_create(&a, ctx, &ao));
    dat_optim_options oo;
    dat_optim_options_init(&oo);
    oo.lr = 0.01f;
    oo.weight_decay = 5e-4f;
    dat_optim *opt;
    TRY(dat_optim_create_for_model(&opt, m, &oo));
    int64_t xs[4] = {batch, c, h, w}, ys[1] = {batch};
    dat_tensor *x, *xa, *y;
    TRY(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    TRY(dat_tensor_create(&xa, ctx, DAT_FLOAT32, 4, xs));
    TRY(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    TRY(dat_tensor_fill_uniform(x, 0.0f, 1.0f, 0, 0));
    TRY(dat_tensor_fill(y, 3));
    const step_args s = {m, a, opt, x, xa, y};
    const char *sg = getenv("DAT_BENCH_STEP_GRAPH");
    dat_step_graph *g = NULL;
    double t0 = 0;
    for (int i = -1; i < iters; ++i) { /* one warm-up step */
        if (i == 0) {
            if (sg && atoi(sg)) {
                TRY(dat_capture_begin(ctx));
                TRY(train_step(&s));
                TRY(dat_capture_end(ctx, &g));
            }
            TRY(dat_ctx_synchronize(ctx));
            t0 = now();
        }
        TRY(g ? dat_step_graph_launch(g) : train_step(&s));
    }
    TRY(dat_ctx_synchronize(ctx));
    double dt = now() - t0;
    printf("%s batch=%d step_img_s=%.1f step_ms=%.1f\n", argv[1], batch, batch * iters / dt,
           1000 * dt / iters);
    dat_step_graph_destroy(g);
    dat_tensor_destroy(x);
    dat_tensor_destroy(xa);
    dat_tensor_destroy(y);
    dat_optim_destroy(opt);
    dat_attack_destroy(a);
    dat_model_destroy(m);
    dat_ctx_destroy(ctx);
    return 0;
}
