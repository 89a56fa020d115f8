/* One epoch of distributed adversarial training (Algorithm 1 of the DAT paper)
 * on one worker, every step of the loop spelled out:
 *
 *   A1  PGD examples of the batch                  dat_attack_perturb
 *   A2  loss λ·CE(x) + CE(x_adv) and its gradient  dat_model_loss_backward
 *   3-4 8-bit quantized all-reduce of the gradient dat_comm_allreduce_grads
 *   A4  LAMB step (Adam direction + LALR)          dat_optim_step_model
 *
 *     dat_epoch [fashion-mnist folder] [weights.bin]
 *
 * The same loop is written in Python (examples/python/dat_epoch.py) and Rust
 * (bindings/rust/dat/examples/dat_epoch.rs) with the same settings; the three
 * end with bit-identical weights (tests/examples/test_three_languages.sh).
 * Settings: 2 000 training images, batches of 100, seeds as below, 2 threads.
 * The communicator is the one-rank one: its quantized all-reduce still
 * quantizes, so the step sees the effect of 8-bit gradients (see dat_mpi.c
 * for M ranks). */
#include <stdio.h>

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
    const char *out = argc > 2 ? argv[2] : NULL;
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", dir);
    int rc = 1;
    dat_ctx *ctx = NULL;
    dat_dataset *data = NULL;
    dat_model *model = NULL;
    dat_attack *attack = NULL;
    dat_quantizer *quant = NULL;
    dat_comm *comm = NULL;
    dat_optim *optim = NULL;
    dat_tensor *x = NULL, *x_adv = NULL, *y = NULL;

    dat_ctx_options c;
    dat_ctx_options_init(&c);
    c.seed = 2022;
    c.num_threads = 2;
    TRY(dat_ctx_create(&ctx, &c));

    dat_dataset_options d;
    dat_dataset_options_init(&d);
    d.images_path = images;
    d.labels_path = labels;
    d.limit = 2000;
    d.batch_size = 100;
    d.seed = 7;
    d.drop_last = 1;
    TRY(dat_dataset_open(&data, ctx, &d));

    dat_model_options m;
    dat_model_options_init(&m);
    m.init_seed = 1;
    TRY(dat_model_create_preset(&model, ctx, "mlp", &m));

    dat_attack_options a;
    dat_attack_options_init(&a);
    a.eps = 0.1f;
    a.steps = 3;
    a.seed = 11;
    TRY(dat_attack_create(&attack, ctx, &a));

    dat_quantizer_options q;
    dat_quantizer_options_init(&q);
    q.bits = 8;
    q.seed = 5;
    TRY(dat_quantizer_create(&quant, ctx, &q));
    TRY(dat_comm_create_self(&comm, ctx));

    dat_optim_options o; /* the paper's LAMB */
    dat_optim_options_init(&o);
    o.kind = DAT_OPTIM_ADAMW;
    o.lr = 0.01f;
    o.eps = 1e-6f;
    o.weight_decay = 1e-4f;
    o.bias_correction = 0;
    o.lalr = 1;
    TRY(dat_optim_create_for_model(&optim, model, &o));

    int64_t shape[4] = {d.batch_size, 1, 28, 28};
    TRY(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, shape));
    TRY(dat_tensor_create(&x_adv, ctx, DAT_FLOAT32, 4, shape));
    TRY(dat_tensor_create(&y, ctx, DAT_INT32, 1, shape));

    dat_loss_options lo;
    dat_loss_options_init(&lo);
    lo.clean_weight = 1.0f; /* λ = 1: clean CE beside the adversarial CE */
    lo.x_clean = x;

    TRY(dat_dataset_set_epoch(data, 0));
    float loss = 0;
    for (;;) {
        int32_t count;
        TRY(dat_dataset_next_batch(data, x, y, &count));
        if (count == 0)
            break;
        int64_t step;
        TRY(dat_optim_get_step(optim, &step));
        TRY(dat_attack_perturb(attack, model, x, y, x_adv));                        /* A1 */
        TRY(dat_model_loss_backward(model, x_adv, y, &lo, &loss));                  /* A2 */
        TRY(dat_comm_allreduce_grads(comm, model, quant, DAT_QUANT_ONE_SIDED,
                                     (uint64_t)step));                              /* 3-4 */
        TRY(dat_optim_step_model(optim, model));                                    /* A4 */
    }
    int64_t steps;
    TRY(dat_optim_get_step(optim, &steps));
    printf("dat_epoch: %lld steps, last loss %.6f\n", (long long)steps, loss);

    if (out) { /* the final weights, raw float32, for the comparison */
        dat_tensor *params;
        void *p;
        size_t n;
        TRY(dat_model_params(model, &params)); /* owned by the model */
        TRY(dat_tensor_nbytes(params, &n));
        TRY(dat_tensor_host_data(params, &p));
        FILE *f = fopen(out, "wb");
        if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
            perror(out);
            goto done;
        }
    }
    rc = 0;
done:
    dat_tensor_destroy(y);
    dat_tensor_destroy(x_adv);
    dat_tensor_destroy(x);
    dat_optim_destroy(optim);
    dat_comm_destroy(comm);
    dat_quantizer_destroy(quant);
    dat_attack_destroy(attack);
    dat_model_destroy(model);
    dat_dataset_destroy(data);
    dat_ctx_destroy(ctx);
    return rc;
}
