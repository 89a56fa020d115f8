#include <stdio.h>

#include "smooth.h"

int smooth_setup(run *r)
{
    const train_options *o = &r->o;
    if (o->smooth_sigma <= 0)
        return 0;
    dat_attack_options a;
    attack_options(r, &a);
    a.sigma = o->smooth_sigma;
    a.noise_samples = o->noise_copies;
    if (r->attack) { /* --attack pgd (options.c refuses the others) */
        dat_attack_destroy(r->attack);
        r->attack = NULL;
        a.kind = DAT_ATTACK_SMOOTH_PGD;
        a.random_start = 0; /* SmoothAdv's attack starts at x */
        TRY_RUN("smoothed attack", dat_attack_create(&r->attack, r->ctx, &a));
    } else {
        a.kind = DAT_ATTACK_PGD; /* only its Gaussian copies are used */
        a.seed = o->seed + 7919;
        TRY_RUN("noise copies", dat_attack_create(&r->noise, r->ctx, &a));
    }
    int32_t c, h, w;
    dat_dataset_sample_shape(r->train, &c, &h, &w);
    int64_t rows = (int64_t)o->batch * o->noise_copies;
    int64_t xs[4] = {rows, c, h, w}, ys[1] = {rows};
    TRY_RUN("tensors", dat_tensor_create(&r->xn, r->ctx, DAT_FLOAT32, 4, xs));
    TRY_RUN("tensors", dat_tensor_create(&r->yn, r->ctx, DAT_INT32, 1, ys));
    return 0;
}

dat_status smooth_copies(run *r, const dat_tensor *input, uint64_t attack_step, int64_t step)
{
    /* with an attack, the noise it saw at its step (SmoothAdv) */
    dat_attack *a = r->attack ? r->attack : r->noise;
    dat_attack_set_step(a, r->attack ? attack_step : (uint64_t)step);
    return dat_attack_gaussian_copies(a, input, r->y, r->xn, r->yn);
}

void smooth_free(run *r)
{
    dat_attack_destroy(r->noise);
    dat_tensor_destroy(r->xn);
    dat_tensor_destroy(r->yn);
}
