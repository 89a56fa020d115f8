/* --step-graph on: the training step (attack, loss + backward, gradient
 * all-reduce, LALR step) recorded once as a step graph (dat_capture.h) and
 * replayed for every later batch, which the data set writes into the same
 * tensors. On several ranks, or quantized (--bits < 32, which one process
 * applies too), the all-reduce is NCCL's, recorded with the rest (bucket by
 * bucket during the backward pass with --overlap on; quantized, through a
 * synchronizer of one bucket with --overlap off); one process has none
 * otherwise. The losses are summed on the device and read once per epoch. */
#include <stdio.h>

#include "run.h"

/* Whether the step reduces the gradient (as the op-by-op loop does). */
static int reduces(const run *r)
{
    return r->ranks > 1 || r->quant;
}

/* The gradient's mean over the ranks, as the op-by-op loop takes it. */
static dat_status all_reduce(run *r)
{
    if (!reduces(r))
        return DAT_OK;
    return r->sync ? dat_grad_sync_end(r->sync)
                   : dat_comm_allreduce_grads(r->comm, r->model, NULL, DAT_QUANT_ONE_SIDED, 0);
}

/* One step op by op, its loss added to r->loss_sum (nothing read back, so the
 * same calls can be recorded). */
static dat_status step_ops(run *r, const dat_loss_options *lo)
{
    const dat_tensor *input = r->x;
    dat_status s = DAT_OK;
    if (r->attack) {
        s = dat_attack_perturb(r->attack, r->model, r->x, r->y, r->x_adv);
        input = r->x_adv;
    }
    if (s == DAT_OK && reduces(r) && r->sync) { /* the quantizer's step: the optimizer's */
        int64_t step = 0;
        dat_optim_get_step(r->optim, &step);
        s = dat_grad_sync_begin(r->sync, (uint64_t)step);
    }
    if (s == DAT_OK)
        s = dat_model_loss_backward(r->model, input, r->y, lo, NULL);
    if (s == DAT_OK)
        s = all_reduce(r);
    return s == DAT_OK ? dat_optim_step_model(r->optim, r->model) : s;
}

/* Runs the step op by op and records it for the next batches. */
static int run_and_record(run *r, const dat_loss_options *lo)
{
    TRY_RUN("step", step_ops(r, lo));
    TRY_RUN("step graph", dat_capture_begin(r->ctx));
    dat_status s = step_ops(r, lo);
    dat_status e = dat_capture_end(r->ctx, &r->graph);
    TRY_RUN("step graph", s != DAT_OK ? s : e);
    return 0;
}

static int one_batch(run *r, const dat_loss_options *lo)
{
    if (r->graph) {
        dat_status s = dat_step_graph_launch(r->graph);
        if (s != DAT_ERR_STATE) {
            TRY_RUN("step graph", s);
            return 0;
        }
        /* Memory the step refers to moved since the recording (the evaluation's
         * larger batches, say). */
        dat_step_graph_destroy(r->graph);
        r->graph = NULL;
    }
    return run_and_record(r, lo);
}

int train_epoch_graph(run *r, int64_t epoch, double *loss)
{
    if (reduces(r) && !r->nccl) {
        fprintf(stderr, "dat-train: --step-graph on with several ranks or --bits < 32 needs "
                        "--comm nccl (MPI's all-reduce goes through the host and cannot be "
                        "recorded)\n");
        return 1;
    }
    TRY_RUN("data", dat_dataset_set_epoch(r->train, epoch));
    if (!r->loss_sum) {
        int64_t one[1] = {1};
        TRY_RUN("tensors", dat_tensor_create(&r->loss_sum, r->ctx, DAT_FLOAT32, 1, one));
    }
    TRY_RUN("tensors", dat_tensor_fill(r->loss_sum, 0.0));
    dat_loss_options lo = train_objective(r);
    lo.loss_sum = r->loss_sum;
    progress pg;
    epoch_progress(r, epoch, &pg);
    dat_comm_stats before = {.size = sizeof before}, after = {.size = sizeof after};
    dat_comm_get_stats(r->comm, &before);
    double t0 = now_seconds();
    int64_t b = 0;
    for (;; ++b) {
        training_at(r, epoch, b);
        int32_t count = 0;
        TRY_RUN("data", dat_dataset_next_batch(r->train, r->x, r->y, &count));
        if (count == 0)
            break;
        if (one_batch(r, &lo))
            return 1;
        r->grad_steps += 1;
        progress_update(&pg, b + 1, (double)(b + 1) * r->o.batch * r->ranks, "");
    }
    /* The faults of the device-side checks come back here, for the epoch. */
    training_at(r, epoch, -1);
    TRY_RUN("step graph", dat_ctx_synchronize(r->ctx));
    progress_end(&pg);
    r->at[0] = '\0';
    r->train_seconds += now_seconds() - t0;
    r->train_images += (double)b * r->o.batch * r->ranks;
    dat_comm_get_stats(r->comm, &after); /* replays book their all-reduces too */
    r->grad_bytes += (double)(after.bytes_sent - before.bytes_sent);
    float sum = 0;
    TRY_RUN("loss", dat_tensor_read(r->loss_sum, &sum, sizeof sum));
    *loss = b ? sum / (double)b : 0;
    return 0;
}
