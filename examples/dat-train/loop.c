/* The distributed adversarial training loop (Algorithm 1 of the paper), the
 * evaluation and the checkpoints. */
#include <stdio.h>
#include <string.h>

#include "run.h"
#include "smooth.h"

/* The objective of the chosen variant: Madry AT (lambda = 0), DAT's
 * lambda * CE(clean) + CE(adv), or TRADES' CE(clean) + beta * KL. */
dat_loss_options train_objective(const run *r)
{
    dat_loss_options lo;
    dat_loss_options_init(&lo);
    if (strcmp(r->o.attack, "trades") == 0) {
        lo.adv_weight = 0.0f;
        lo.clean_weight = 1.0f;
        lo.kl_weight = r->o.beta;
        lo.x_clean = r->x;
    } else if (r->o.lambda > 0 && r->attack) {
        lo.clean_weight = r->o.lambda;
        lo.x_clean = r->x;
    }
    return lo;
}

void training_at(run *r, int64_t epoch, int64_t batch)
{
    int64_t step = 0;
    dat_optim_get_step(r->optim, &step);
    if (batch < 0)
        snprintf(r->at, sizeof r->at, "epoch %lld", (long long)epoch + 1);
    else
        snprintf(r->at, sizeof r->at, "epoch %lld, batch %lld, step %lld", (long long)epoch + 1,
                 (long long)batch + 1, (long long)step);
}

void epoch_progress(const run *r, int64_t epoch, progress *pg)
{
    char what[32];
    snprintf(what, sizeof what, "epoch %lld", (long long)epoch + 1);
    progress_start(pg, r->rank == 0 ? r->o.progress : "none", what, r->steps_per_epoch);
}

int train_epoch(run *r, int64_t epoch, double *loss)
{
    if (r->o.step_graph)
        return train_epoch_graph(r, epoch, loss);
    TRY_RUN("data", dat_dataset_set_epoch(r->train, epoch));
    dat_loss_options lo = train_objective(r);
    dat_quant_mode mode = strcmp(r->o.quant_mode, "two-sided") == 0 ? DAT_QUANT_TWO_SIDED
                                                                    : DAT_QUANT_ONE_SIDED;
    progress pg;
    epoch_progress(r, epoch, &pg);
    double t0 = now_seconds(), sum = 0;
    int64_t b = 0;
    for (;; ++b) {
        training_at(r, epoch, b);
        int32_t count = 0;
        TRY_RUN("data", dat_dataset_next_batch(r->train, r->x, r->y, &count));
        if (count == 0)
            break;
        const dat_tensor *input = r->x, *labels = r->y;
        uint64_t attack_step = 0;
        if (r->attack) { /* A1: the inner maximization, input gradients only */
            dat_attack_get_step(r->attack, &attack_step);
            TRY_RUN("attack", dat_attack_perturb(r->attack, r->model, r->x, r->y, r->x_adv));
            input = r->x_adv;
        }
        int64_t step;
        dat_optim_get_step(r->optim, &step);
        if (r->xn) { /* Smooth-AT: the loss of N Gaussian copies of each image */
            TRY_RUN("noise", smooth_copies(r, input, attack_step, step));
            input = r->xn;
            labels = r->yn;
        }
        /* A2: the local gradient; 3, A3, 4: its (quantized) average over the
         * workers, bucket by bucket during the backward pass with --overlap */
        float l = 0;
        dat_comm_stats before = {.size = sizeof before}, after = {.size = sizeof after};
        dat_comm_get_stats(r->comm, &before);
        if (r->sync)
            TRY_RUN("all-reduce", dat_grad_sync_begin(r->sync, (uint64_t)step));
        TRY_RUN("loss", dat_model_loss_backward(r->model, input, labels, &lo, &l));
        if (r->sync)
            TRY_RUN("all-reduce", dat_grad_sync_end(r->sync));
        else
            TRY_RUN("all-reduce", dat_comm_allreduce_grads(r->comm, r->model, r->quant, mode,
                                                           (uint64_t)step));
        dat_comm_get_stats(r->comm, &after);
        r->grad_bytes += (double)(after.bytes_sent - before.bytes_sent);
        r->grad_steps += 1;
        TRY_RUN("optimizer", dat_optim_step_model(r->optim, r->model)); /* A4: LALR step */
        sum += l;
        char status[32];
        snprintf(status, sizeof status, "loss %.4f", sum / (double)(b + 1));
        progress_update(&pg, b + 1, (double)(b + 1) * r->o.batch * r->ranks, status);
    }
    progress_end(&pg);
    r->at[0] = '\0';
    r->train_seconds += now_seconds() - t0;
    r->train_images += (double)b * r->o.batch * r->ranks;
    *loss = b ? sum / (double)b : 0;
    return 0;
}

/* v[0..3) reduced over the ranks in place, through r->counts. */
static int reduce_over_ranks(run *r, const char *what, float v[3], dat_reduction op)
{
    TRY_RUN(what, dat_tensor_write(r->counts, v, 3 * sizeof *v));
    TRY_RUN(what, dat_comm_allreduce(r->comm, r->counts, op));
    TRY_RUN(what, dat_tensor_read(r->counts, v, 3 * sizeof *v));
    return 0;
}

int end_epoch(run *r, double *loss)
{
    if (r->ranks == 1)
        return 0;
    dat_tensor *bn = NULL;
    TRY_RUN("batch-norm statistics", dat_model_buffers(r->model, &bn));
    if (bn)
        TRY_RUN("batch-norm statistics", dat_comm_allreduce(r->comm, bn, DAT_REDUCE_MEAN));
    float mean[3] = {(float)*loss, 0.0f, 0.0f};
    if (reduce_over_ranks(r, "loss", mean, DAT_REDUCE_MEAN))
        return 1;
    *loss = mean[0];
    return 0;
}

int evaluate(run *r, dat_dataset *ds, dat_tensor *x, dat_tensor *y, double *ta, double *ra)
{
    TRY_RUN("data", dat_dataset_set_epoch(ds, 0));
    float counts[3] = {0}; /* clean, robust, seen: this rank's batches, then every rank's */
    for (int64_t b = 0;; ++b) {
        int32_t count = 0;
        TRY_RUN("data", dat_dataset_next_batch(ds, x, y, &count));
        if (count == 0)
            break;
        if (b % r->ranks != r->rank)
            continue; /* batch b belongs to rank b mod M */
        /* The random starts of batch b: the same whichever rank evaluates it and
         * whatever ran before (a resumed run measures what the uninterrupted did). */
        dat_attack_set_step(r->eval_attack, (uint64_t)b);
        int32_t c = 0, rb = 0;
        TRY_RUN("evaluation",
                dat_eval_robust_accuracy(r->eval_attack, r->model, x, y, &c, &rb, NULL));
        counts[0] += (float)c; /* exact: float holds integers up to 2^24 */
        counts[1] += (float)rb;
        counts[2] += (float)count;
    }
    if (reduce_over_ranks(r, "evaluation", counts, DAT_REDUCE_SUM))
        return 1;
    *ta = counts[2] > 0 ? counts[0] / counts[2] : 0;
    *ra = counts[2] > 0 ? counts[1] / counts[2] : 0;
    return 0;
}

int save_checkpoint(run *r, const char *name, int64_t epochs)
{
    if (r->rank != 0 || !r->o.checkpoint_dir)
        return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", r->o.checkpoint_dir, name);
    dat_checkpoint_info info = {.size = sizeof info, .epoch = epochs};
    dat_optim_get_step(r->optim, &info.step);
    if (r->attack)
        dat_attack_get_step(r->attack, &info.attack_step);
    /* The options, and the best validation RA so that a resumed run keeps it. */
    char config[sizeof r->config + 64];
    int n = snprintf(config, sizeof config, "%s", r->config);
    if (r->val && n > 0 && config[n - 1] == '}')
        snprintf(config + n - 1, sizeof config - (size_t)n + 1, ",\"best_val_ra\":%.17g}",
                 r->best_ra);
    TRY_RUN("checkpoint", dat_checkpoint_save(path, r->model, r->optim, &info, config));
    return 0;
}
