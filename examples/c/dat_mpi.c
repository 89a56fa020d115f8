/* Distributed adversarial training on M ranks over MPI, with b-bit quantized
 * gradients and LAMB: one process per worker,
 *
 *     mpirun -np M dat_mpi [fashion-mnist folder] [images] [bits] [one-sided|two-sided]
 *                          [weights.bin]
 *
 * Each rank trains on its own shard of the data (the data set splits it by
 * rank), makes PGD examples of its batches, computes its local gradient,
 * and the quantized all-reduce averages the gradients so that every rank
 * takes the same LAMB step. At the end the ranks compare a hash of their
 * weights: they must hold the same bits, and rank 0 writes them to weights.bin
 * if given (examples/python/train_dat.py runs the same loop from Python). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libdat/dat.h>
#include <libdat/dat_mpi.h>

#define TRY(call)                                                                  \
    do {                                                                           \
        dat_status s_ = (call);                                                    \
        if (s_ != DAT_OK) {                                                        \
            fprintf(stderr, "rank %d: %s: %s: %s\n", rank, #call, dat_status_string(s_), \
                    dat_last_error());                                             \
            goto done;                                                             \
        }                                                                          \
    } while (0)

/* FNV-1a over the weights' bytes: equal on every rank, or the ranks diverged. */
static uint64_t hash_bytes(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; ++i)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank = 0, ranks = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    long long limit = argc > 2 ? atoll(argv[2]) : 2000;
    int bits = argc > 3 ? atoi(argv[3]) : 8;
    dat_quant_mode mode = argc > 4 && strcmp(argv[4], "two-sided") == 0 ? DAT_QUANT_TWO_SIDED
                                                                        : DAT_QUANT_ONE_SIDED;
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", dir);
    int rc = 1;
    dat_ctx *ctx = NULL;
    dat_comm *comm = NULL;
    dat_dataset *data = NULL;
    dat_model *model = NULL;
    dat_attack *attack = NULL;
    dat_quantizer *quant = NULL;
    dat_optim *optim = NULL;
    dat_tensor *x = NULL, *x_adv = NULL, *y = NULL;

    dat_ctx_options c;
    dat_ctx_options_init(&c);
    c.num_threads = 1; /* one core per rank */
    TRY(dat_ctx_create(&ctx, &c));
    TRY(dat_comm_create_mpi(&comm, ctx, MPI_COMM_WORLD, NULL)); /* collective */

    dat_dataset_options d;
    dat_dataset_options_init(&d);
    d.images_path = images;
    d.labels_path = labels;
    d.limit = limit;
    d.batch_size = 50;
    d.drop_last = 1;
    d.seed = 1;         /* the same on every rank: one permutation ... */
    d.rank = rank;      /* ... of which each rank takes its own shard */
    d.world_size = ranks;
    TRY(dat_dataset_open(&data, ctx, &d));

    TRY(dat_model_create_preset(&model, ctx, "mlp", NULL));
    TRY(dat_comm_broadcast_model(comm, model, 0)); /* every worker starts from rank 0's */

    dat_attack_options a;
    dat_attack_options_init(&a);
    a.eps = 0.1f;
    a.steps = 3;
    a.rank = rank; /* each rank draws its own random starts */
    TRY(dat_attack_create(&attack, ctx, &a));

    dat_quantizer_options q;
    dat_quantizer_options_init(&q);
    q.bits = bits;
    TRY(dat_quantizer_create(&quant, ctx, &q));

    dat_optim_options o;
    dat_optim_options_init(&o);
    o.kind = DAT_OPTIM_ADAMW; /* with lalr: LAMB */
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
    lo.clean_weight = 1.0f;
    lo.x_clean = x;

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
        TRY(dat_comm_allreduce_grads(comm, model, quant, mode, (uint64_t)step));    /* 3-4 */
        TRY(dat_optim_step_model(optim, model));                                    /* A4 */
    }

    dat_tensor *params;
    void *p;
    size_t n;
    TRY(dat_model_params(model, &params));
    TRY(dat_tensor_nbytes(params, &n));
    TRY(dat_tensor_host_data(params, &p));
    uint64_t h = hash_bytes(p, n), *all = calloc((size_t)ranks, sizeof *all);
    if (!all)
        goto done;
    MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    int same = 1;
    for (int r = 1; r < ranks; ++r)
        same &= all[r] == all[0];
    free(all);
    dat_comm_stats st = {.size = sizeof st};
    TRY(dat_comm_get_stats(comm, &st));
    int64_t steps;
    TRY(dat_optim_get_step(optim, &steps));
    if (rank == 0)
        printf("dat_mpi: %d ranks, %lld steps, %d-bit %s, last loss %.4f, %" PRIu64
               " bytes sent by rank 0, weights %s on every rank\n",
               ranks, (long long)steps, bits,
               mode == DAT_QUANT_TWO_SIDED ? "two-sided" : "one-sided", loss, st.bytes_sent,
               same ? "identical" : "DIFFERENT");
    if (rank == 0 && argc > 5) {
        FILE *f = fopen(argv[5], "wb");
        if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
            perror(argv[5]);
            goto done;
        }
    }
    rc = same && steps > 0 ? 0 : 1;
done:
    dat_tensor_destroy(y);
    dat_tensor_destroy(x_adv);
    dat_tensor_destroy(x);
    dat_optim_destroy(optim);
    dat_quantizer_destroy(quant);
    dat_attack_destroy(attack);
    dat_model_destroy(model);
    dat_dataset_destroy(data);
    dat_comm_destroy(comm); /* before MPI_Finalize */
    dat_ctx_destroy(ctx);
    if (rc != 0)
        MPI_Abort(MPI_COMM_WORLD, rc); /* a failed rank must not leave the others waiting */
    MPI_Finalize();
    return rc;
}
