/* The shortest complete adversarial-training loop (Madry AT): PGD examples,
 * the loss on them, one optimizer step, over one epoch of Fashion-MNIST.
 *
 *     at_minimal [fashion-mnist folder] [images]
 *
 * Every call returns a status; on failure the program prints the call,
 * the status name and dat_last_error(), and releases what it made. */
#include <stdio.h>
#include <stdlib.h>

#include <libdat/dat.h>

#define TRY(call)                                                                  \
    do {                                                                           \
        dat_status s_ = (call);                                                    \
        if (s_ != DAT_OK) {                                                        \
            fprintf(stderr, "%s: %s: %s\n", #call, dat_status_string(s_), dat_last_error()); \
            goto done;                                                             \
        }                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", dir);
    int rc = 1;
    dat_ctx *ctx = NULL;
    dat_dataset *data = NULL;
    dat_model *model = NULL;
    dat_attack *attack = NULL;
    dat_optim *optim = NULL;
    dat_tensor *x = NULL, *x_adv = NULL, *y = NULL;

    TRY(dat_ctx_create(&ctx, NULL));

    dat_dataset_options d;
    dat_dataset_options_init(&d);
    d.images_path = images;
    d.labels_path = labels;
    d.limit = argc > 2 ? atoll(argv[2]) : 1000;
    d.batch_size = 100;
    d.drop_last = 1;
    TRY(dat_dataset_open(&data, ctx, &d));

    TRY(dat_model_create_preset(&model, ctx, "mlp", NULL));
    dat_attack_options a;
    dat_attack_options_init(&a);
    a.eps = 0.1f;
    a.steps = 3;
    TRY(dat_attack_create(&attack, ctx, &a));
    TRY(dat_optim_create_for_model(&optim, model, NULL)); /* momentum SGD, lr 0.1 */

    int64_t shape[4] = {d.batch_size, 1, 28, 28};
    TRY(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, shape));
    TRY(dat_tensor_create(&x_adv, ctx, DAT_FLOAT32, 4, shape));
    TRY(dat_tensor_create(&y, ctx, DAT_INT32, 1, shape));

    int64_t batch = 0;
    float loss = 0;
    for (;;) {
        int32_t count;
        TRY(dat_dataset_next_batch(data, x, y, &count));
        if (count == 0)
            break; /* the epoch is over */
        TRY(dat_attack_perturb(attack, model, x, y, x_adv));         /* inner maximization */
        TRY(dat_model_loss_backward(model, x_adv, y, NULL, &loss)); /* CE on x_adv, backward */
        TRY(dat_optim_step_model(optim, model));                    /* outer minimization */
        ++batch;
    }
    printf("at_minimal: %lld batches, last loss %.4f\n", (long long)batch, loss);
    rc = batch > 0 ? 0 : 1;
done:
    dat_tensor_destroy(y);
    dat_tensor_destroy(x_adv);
    dat_tensor_destroy(x);
    dat_optim_destroy(optim);
    dat_attack_destroy(attack);
    dat_model_destroy(model);
    dat_dataset_destroy(data);
    dat_ctx_destroy(ctx); /* last: everything above was made from it */
    return rc;
}
