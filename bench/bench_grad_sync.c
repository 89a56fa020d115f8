/*
 * One training step's local gradient and its all-reduce over MPI, sequential
 * (dat_model_loss_backward, then dat_comm_allreduce_grads) against
 * overlapped (dat_grad_sync: the buckets reduced while the backward pass
 * runs), on the same ranks, model and batch. Run it under mpirun, e.g.
 *   mpirun -np 2 build/bench/bench_grad_sync [preset] [batch] [reps] [bits]
 * (preact_resnet18, 16, 5, 32). Rank 0 prints; the last line is
 *   grad-sync ratio=R seq_ms=... overlap_ms=... ranks=M
 * with R = sequential time / overlapped time (best of reps, slowest rank).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libdat/dat_mpi.h"

#include "bench_util.h"

/* Seconds of the slowest rank. */
static double slowest(double t)
{
    MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return t;
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *preset = argc > 1 ? argv[1] : "preact_resnet18";
    int batch = argc > 2 ? atoi(argv[2]) : 16, reps = argc > 3 ? atoi(argv[3]) : 5;
    int bits = argc > 4 ? atoi(argv[4]) : 32;
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.num_threads = 1; /* one core per rank */
    dat_ctx *ctx = NULL;
    TRY_MPI(dat_ctx_create(&ctx, &co));
    dat_comm *comm = NULL;
    TRY_MPI(dat_comm_create_mpi(&comm, ctx, MPI_COMM_WORLD, NULL));
    dat_model *m = NULL;
    TRY_MPI(dat_model_create_preset(&m, ctx, preset, NULL));
    dat_quantizer *q = NULL;
    if (bits < 32) {
        dat_quantizer_options qo;
        dat_quantizer_options_init(&qo);
        qo.bits = bits;
        TRY_MPI(dat_quantizer_create(&q, ctx, &qo));
    }
    dat_grad_sync_options so;
    dat_grad_sync_options_init(&so);
    so.quantizer = q;
    dat_grad_sync *sync = NULL;
    TRY_MPI(dat_grad_sync_create(&sync, comm, m, &so));
    int32_t c, h, w, overlaps = 0;
    TRY_MPI(dat_model_shape(m, &c, &h, &w, NULL));
    TRY_MPI(dat_grad_sync_overlaps(sync, &overlaps));
    int64_t xs[4] = {batch, c, h, w}, ys[1] = {batch};
    dat_tensor *x, *y;
    TRY_MPI(dat_tensor_create(&x, ctx, DAT_FLOAT32, 4, xs));
    TRY_MPI(dat_tensor_create(&y, ctx, DAT_INT32, 1, ys));
    TRY_MPI(dat_tensor_fill_uniform(x, 0, 1, (uint64_t)rank, 0));
    TRY_MPI(dat_tensor_fill(y, rank % 10));

    double best_seq = 1e30, best_ovl = 1e30;
    for (int r = 0; r < reps + 1; ++r) { /* the first round warms up */
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        TRY_MPI(dat_model_loss_backward(m, x, y, NULL, NULL));
        TRY_MPI(dat_comm_allreduce_grads(comm, m, q, DAT_QUANT_ONE_SIDED, (uint64_t)r));
        double seq = slowest(MPI_Wtime() - t0);
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        TRY_MPI(dat_grad_sync_begin(sync, (uint64_t)r));
        TRY_MPI(dat_model_loss_backward(m, x, y, NULL, NULL));
        TRY_MPI(dat_grad_sync_end(sync));
        double ovl = slowest(MPI_Wtime() - t0);
        if (r > 0) {
            best_seq = seq < best_seq ? seq : best_seq;
            best_ovl = ovl < best_ovl ? ovl : best_ovl;
        }
    }
    if (rank == 0)
        printf("grad-sync ratio=%.3f seq_ms=%.1f overlap_ms=%.1f ranks=%d preset=%s batch=%d "
               "bits=%d overlaps=%d\n", best_seq / best_ovl, 1e3 * best_seq, 1e3 * best_ovl,
               size, preset, batch, bits, (int)overlaps);
    dat_tensor_destroy(x);
    dat_tensor_destroy(y);
    dat_grad_sync_destroy(sync);
    dat_quantizer_destroy(q);
    dat_model_destroy(m);
    dat_comm_destroy(comm);
    dat_ctx_destroy(ctx);
    MPI_Finalize();
    return 0;
}
