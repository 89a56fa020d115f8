/* --step-graph on: the training step (attack, loss + backward, LALR step)
 * recorded once as a step graph (dat_capture.h) and replayed for every later
 * batch, which the data set writes into the same tensors. One process: its
 * gradient is already the mean over the ranks, so the step has no all-reduce.
 * The losses are summed on the device and read once per epoch. */
#include <stdio.h>

#include "progress.h"
#include "run.h"

/* One step op by op, its loss added to r->loss_sum (nothing read back, so the
 * same calls can be recorded). */
static dat_status step_ops(run *r, const dat_loss_options *lo)
{
    const dat_tensor *input = r->x;
    if (r->attack) {
        dat_status s = dat_attack_perturb(r->attack, r->model, r->x, r->y, r->x_adv);
        if (s != DAT_OK)
            return s;
        input = r->x_adv;
    }
    dat_status s = dat_model_loss_backward(r->model, input, r->y, lo, NULL);
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
        /* The workspace grew since the recording (the evaluation's batches, say). */
        dat_step_graph_destroy(r->graph);
        r->graph = NULL;
    }
    return run_and_record(r, lo);
}

int train_epoch_graph(run *r, int64_t epoch, double *loss)
{
    if (r->ranks > 1) {
        fprintf(stderr, "dat-train: --step-graph on runs one process (the all-reduce cannot be "
                        "recorded yet)\n");
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
    char what[32];
    snprintf(what, sizeof what, "epoch %lld", (long long)epoch + 1);
    progress_start(&pg, r->o.progress, what, r->steps_per_epoch);
    double t0 = now_seconds();
    int64_t b = 0;
    for (;; ++b) {
        int32_t count = 0;
        TRY_RUN("data", dat_dataset_next_batch(r->train, r->x, r->y, &count));
        if (count == 0)
            break;
        if (one_batch(r, &lo))
            return 1;
        r->grad_steps += 1;
        progress_update(&pg, b + 1, (double)(b + 1) * r->o.batch, "");
    }
    /* The faults of the device-side checks come back here. */
    TRY_RUN("step graph", dat_ctx_synchronize(r->ctx));
    progress_end(&pg);
    r->train_seconds += now_seconds() - t0;
    r->train_images += (double)b * r->o.batch;
    float sum = 0;
    TRY_RUN("loss", dat_tensor_read(r->loss_sum, &sum, sizeof sum));
    *loss = b ? sum / (double)b : 0;
    return 0;
}
