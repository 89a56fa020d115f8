/* APGD-CE and AutoAttack cost on cnn_small: bench_autoattack BATCH STEPS THREADS [CKPT]
 * prints "apgd_ce_s_per_1000=<..> aa_s_per_1000=<..>". Inputs are uniform noise
 * labelled with the model's own predictions, so every point is attacked; APGD
 * runs all STEPS iterations on every point (as AutoAttack does), the full
 * standard sequence (eps 0.1) only on the points APGD-CE leaves. */
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>

static int own_labels(dat_ctx *ctx, dat_model *m, dat_tensor *x, dat_tensor *y, int batch)
{
    int64_t ls[2] = {batch, 10};
    dat_tensor *z;
    TRY(dat_tensor_create(&z, ctx, DAT_FLOAT32, 2, ls));
    TRY(dat_model_forward(m, x, z));
    float *logits = malloc((size_t)batch * 10 * sizeof(float));
    int32_t *lab = malloc((size_t)batch * sizeof(int32_t));
    TRY(dat_tensor_read(z, logits, (size_t)batch * 10 * sizeof(float)));
    for (int i = 0; i < batch; ++i) {
        lab[i] = 0;
        for (int c = 1; c < 10; ++c)
            if (logits[i * 10 + c] > logits[i * 10 + lab[i]])
                lab[i] = c;
    }
    TRY(dat_tensor_write(y, lab, (size_t)batch * sizeof(int32_t)));
    free(logits);
    free(lab);
    dat_tensor_destroy(z);
    return 0;
}

static int timed(dat_model *m, dat_tensor *x, dat_tensor *y, uint32_t attacks, int steps,
                 double *seconds)
{
    dat_autoattack_options o;
    dat_autoattack_options_init(&o);
    o.eps = 0.1f;
    o.attacks = attacks;
    o.apgd_steps = steps;
    double t0 = now();
    TRY(dat_eval_autoattack(m, x, y, &o, NULL, NULL, NULL));
    *seconds = now() - t0;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: bench_autoattack BATCH STEPS THREADS [CHECKPOINT]\n");
        return 2;
    }
    int batch = atoi(argv[1]), steps = atoi(argv[2]);
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.num_threads = atoi(argv[3]);
    dat_ctx *ctx;
    TRY(dat_ctx_create(&ctx, &co));
    dat_model *m;
    TRY(dat_model_create_preset(&m, ctx, "cnn_small", NULL));
    if (argc == 5)
        TRY(dat_model_load(m, argv[4], NULL));
    TRY(dat_model_set_mode(m, DAT_MODE_EVAL));
    int64_t xs[4] = {batch, 1, 28, 28}, ys[1] = {batch};
    dat_tensor *x, *y;
    TRY(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    TRY(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    TRY(dat_tensor_fill_uniform(x, 0.0f, 1.0f, 0, 0));
    if (own_labels(ctx, m, x, y, batch))
        return 1;
    double apgd, aa;
    if (timed(m, x, y, DAT_AA_BIT(DAT_AA_APGD_CE), steps, &apgd) ||
        timed(m, x, y, DAT_AA_STANDARD, steps, &aa))
        return 1;
    printf("cnn_small batch=%d steps=%d apgd_ce_s_per_1000=%.2f aa_s_per_1000=%.2f\n", batch,
           steps, apgd * 1000.0 / batch, aa * 1000.0 / batch);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_model_destroy(m);
    dat_ctx_destroy(ctx);
    return 0;
}
