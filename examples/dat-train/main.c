/*
 * dat-train: distributed adversarial training with libdat. One process per
 * worker (`mpirun -np M dat-train ...`); see --help and docs/dat-train.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if DAT_HAVE_MPI
#include <libdat/dat_mpi.h>
#include <mpi.h>
#endif

#include "files.h"
#include "progress.h"
#include "pseudo.h"
#include "resume.h"
#include "run.h"
#include "smooth.h"
#include "transfer.h"

int fail(const run *r, const char *what, dat_status s)
{
    char who[32] = "";
    if (r->ranks > 1)
        snprintf(who, sizeof who, " rank %d", r->rank);
    fprintf(stderr, "dat-train%s: %s%s%s%s: %s: %s\n", who, what, r->at[0] ? " (" : "", r->at,
            r->at[0] ? ")" : "", dat_status_string(s), dat_last_error());
    return 1;
}

/* An evaluation set in batches that divide it exactly, so every batch is full:
 * the largest divisor of its size up to 500 and up to its share of one rank, so
 * that every rank gets batches to evaluate. */
static int open_eval(run *r, dat_dataset_options *d, const char *what, dat_dataset **ds,
                     int32_t *batch)
{
    int64_t n = 0;
    d->batch_size = 1;
    TRY_RUN(what, dat_dataset_open(ds, r->ctx, d));
    dat_dataset_num_samples(*ds, &n);
    int64_t share = (n + r->ranks - 1) / r->ranks;
    int32_t b = share < 500 ? (int32_t)(share > 0 ? share : 1) : 500;
    while (n % b)
        --b;
    dat_dataset_destroy(*ds);
    *ds = NULL;
    d->batch_size = *batch = b;
    TRY_RUN(what, dat_dataset_open(ds, r->ctx, d));
    return 0;
}

/* The training and test files of --data-format in --data (see --help). */
typedef struct data_files {
    char train_x[4096], train_y[4096], test_x[4096], test_y[4096];
    char extra[4][4096];     /* CIFAR-10: data_batch_2.bin .. data_batch_5.bin */
    const char *extra_paths[4];
} data_files;

static void name_files(const train_options *o, dat_dataset_options *d, data_files *f)
{
    const char *dir = o->data_dir, *fmt = o->data_format;
    if (strcmp(fmt, "idx") == 0) {
        snprintf(f->train_x, sizeof f->train_x, "%s/train-images-idx3-ubyte.gz", dir);
        snprintf(f->train_y, sizeof f->train_y, "%s/train-labels-idx1-ubyte.gz", dir);
        snprintf(f->test_x, sizeof f->test_x, "%s/t10k-images-idx3-ubyte.gz", dir);
        snprintf(f->test_y, sizeof f->test_y, "%s/t10k-labels-idx1-ubyte.gz", dir);
    } else if (strcmp(fmt, "npy") == 0) {
        d->format = DAT_DATASET_NPY;
        snprintf(f->train_x, sizeof f->train_x, "%s/train_images.npy", dir);
        snprintf(f->train_y, sizeof f->train_y, "%s/train_labels.npy", dir);
        snprintf(f->test_x, sizeof f->test_x, "%s/test_images.npy", dir);
        snprintf(f->test_y, sizeof f->test_y, "%s/test_labels.npy", dir);
    } else if (strcmp(fmt, "cifar100") == 0) { /* the records carry their labels */
        d->format = DAT_DATASET_CIFAR100;
        snprintf(f->train_x, sizeof f->train_x, "%s/train.bin", dir);
        snprintf(f->test_x, sizeof f->test_x, "%s/test.bin", dir);
    } else {
        d->format = DAT_DATASET_CIFAR10;
        snprintf(f->train_x, sizeof f->train_x, "%s/data_batch_1.bin", dir);
        for (int k = 0; k < 4; ++k) {
            snprintf(f->extra[k], sizeof f->extra[k], "%s/data_batch_%d.bin", dir, k + 2);
            f->extra_paths[k] = f->extra[k];
        }
        snprintf(f->test_x, sizeof f->test_x, "%s/test_batch.bin", dir);
    }
}

static int open_data(run *r)
{
    const train_options *o = &r->o;
    static data_files f; /* 36 KiB of paths: off the stack */
    dat_dataset_options d;
    dat_dataset_options_init(&d);
    name_files(o, &d, &f);
    int cifar = d.format == DAT_DATASET_CIFAR10 || d.format == DAT_DATASET_CIFAR100;
    d.images_path = f.train_x;
    d.labels_path = cifar ? NULL : f.train_y;
    d.extra_paths = d.format == DAT_DATASET_CIFAR10 ? f.extra_paths : NULL;
    d.num_extra_paths = d.extra_paths ? 4 : 0;
    d.limit = o->train_subset;
    d.validation_count = o->val_count;
    /* A corrupt label (200 in Fashion-MNIST) would otherwise make a model of 201 classes. */
    d.num_classes = o->num_classes ? o->num_classes : strcmp(o->data_format, "idx") == 0 ? 10 : 0;
    d.classes = o->classes;
    d.num_subset_classes = o->num_classes_subset;
    d.random_crop = d.horizontal_flip = o->augment;
    d.rank = r->rank;
    d.world_size = r->ranks;
    d.seed = o->seed;
    d.batch_size = o->batch;
    d.drop_last = 1; /* fixed shapes: no allocation per step */
    TRY_RUN("training data", dat_dataset_open(&r->train, r->ctx, &d));
    if ((o->unlabeled_count > 0 || o->unlabeled_path) && pseudo_label_data(r, &d))
        return 1;
    dat_dataset_batches_per_epoch(r->train, &r->steps_per_epoch);
    if (d.num_classes == 0 && d.num_subset_classes == 0) /* the test set's labels must fit */
        dat_dataset_num_classes(r->train, &d.num_classes);

    /* Evaluation: the test set (or its first eval_count images), in batches that
     * divide it exactly so every batch is full. */
    int64_t n_test = o->eval_count;
    d.images_path = f.test_x;
    d.labels_path = cifar ? NULL : f.test_y;
    d.extra_paths = NULL;
    d.num_extra_paths = 0;
    d.limit = n_test;
    d.rank = 0;
    d.world_size = 1;
    d.shuffle = 0;
    d.validation_count = 0;
    d.random_crop = d.horizontal_flip = 0; /* the test set keeps the class subset */
    d.drop_last = 0;
    if (open_eval(r, &d, "test data", &r->test, &r->eval_batch))
        return 1;
    if (o->val_count == 0)
        return 0;
    /* Validation: the held-out end of the training files, shared out like the test set. */
    d.images_path = f.train_x;
    d.labels_path = cifar ? NULL : f.train_y;
    d.extra_paths = d.format == DAT_DATASET_CIFAR10 ? f.extra_paths : NULL;
    d.num_extra_paths = d.extra_paths ? 4 : 0;
    d.limit = o->train_subset;
    d.validation_count = o->val_count;
    d.part = DAT_PART_VALIDATION;
    return open_eval(r, &d, "validation data", &r->val, &r->val_batch);
}

dat_status create_model(const run *r, dat_model **out)
{
    int32_t c, h, w, classes;
    dat_dataset_sample_shape(r->train, &c, &h, &w);
    dat_dataset_num_classes(r->train, &classes);
    dat_model_options mo;
    dat_model_options_init(&mo);
    mo.num_classes = classes;
    mo.in_channels = c;
    mo.in_height = h;
    mo.in_width = w;
    mo.init_seed = r->o.seed;
    return dat_model_create_preset(out, r->ctx, r->o.model, &mo);
}

void attack_options(const run *r, dat_attack_options *a)
{
    dat_attack_options_init(a);
    a->eps = r->o.eps;
    a->alpha = r->o.alpha;
    a->steps = r->o.steps;
    a->seed = r->o.seed;
    a->rank = r->rank;
}

static int make_model_and_optim(run *r)
{
    const train_options *o = &r->o;
    TRY_RUN("model", create_model(r, &r->model));
    dat_optim_options p;
    dat_optim_options_init(&p);
    static const char *const kinds[] = {"sgd", "momentum", "nesterov", "adam", "adamw"};
    for (int i = 0; i < 5; ++i)
        if (strcmp(o->optimizer, kinds[i]) == 0)
            p.kind = (dat_optim_kind)i;
    if (strcmp(o->optimizer, "lars") == 0 || strcmp(o->optimizer, "lamb") == 0)
        p.kind = o->optimizer[2] == 'r' ? DAT_OPTIM_MOMENTUM : DAT_OPTIM_ADAMW;
    p.lr = o->lr;
    p.momentum = o->momentum;
    p.beta2 = o->beta2;
    p.eps = o->adam_eps;
    p.bias_correction = o->bias_correction;
    p.weight_decay = o->weight_decay;
    p.lalr = o->lalr;
    p.c_l = o->c_l;
    p.c_u = o->c_u;
    int64_t spe = r->steps_per_epoch;
    p.warmup_steps = (int64_t)llround(o->warmup_epochs * (double)spe);
    p.total_steps = (int64_t)o->epochs * spe;
    static const char *const scheds[] = {"const", "piecewise", "cosine", "onecycle"};
    for (int i = 0; i < 4; ++i)
        if (strcmp(o->schedule, scheds[i]) == 0)
            p.schedule = (dat_schedule_kind)i;
    p.num_milestones = o->num_milestones;
    for (int i = 0; i < o->num_milestones; ++i)
        p.milestones[i] = (int64_t)llround(o->milestones[i] * (double)spe);
    p.gamma = o->gamma;
    p.scaling = strcmp(o->lr_scaling, "linear") == 0 ? DAT_LR_SCALING_LINEAR
                : strcmp(o->lr_scaling, "sqrt") == 0 ? DAT_LR_SCALING_SQRT
                                                      : DAT_LR_SCALING_NONE;
    p.global_batch = (int64_t)o->batch * r->ranks;
    p.ref_batch = o->ref_batch;
    TRY_RUN("optimizer", dat_optim_create_for_model(&r->optim, r->model, &p));
    return 0;
}

static int make_attacks(run *r)
{
    const train_options *o = &r->o;
    dat_attack_options a;
    attack_options(r, &a);
    if (strcmp(o->attack, "none") != 0) {
        a.kind = strcmp(o->attack, "fgsm") == 0     ? DAT_ATTACK_FGSM
                 : strcmp(o->attack, "trades") == 0 ? DAT_ATTACK_TRADES
                                                    : DAT_ATTACK_PGD;
        TRY_RUN("attack", dat_attack_create(&r->attack, r->ctx, &a));
    }
    attack_options(r, &a); /* PGD-k, step 2.5 eps / k */
    a.alpha = 0.0f;
    a.steps = o->eval_steps;
    a.seed = o->seed + 1000003;
    a.rank = 0; /* keyed by the batch alone (evaluate()) */
    TRY_RUN("evaluation attack", dat_attack_create(&r->eval_attack, r->ctx, &a));
    if (o->bits < 32) {
        dat_quantizer_options q;
        dat_quantizer_options_init(&q);
        q.bits = o->bits;
        q.bucket_size = o->bucket;
        q.seed = o->seed;
        q.rank = r->rank;
        TRY_RUN("quantizer", dat_quantizer_create(&r->quant, r->ctx, &q));
    }
    /* A recorded quantized step reduces through a synchronizer even without
     * overlap: one bucket, started when the backward pass has ended. */
    int one_bucket = !o->overlap && o->step_graph && r->quant;
    if (o->overlap || one_bucket) {
        dat_grad_sync_options so;
        dat_grad_sync_options_init(&so);
        so.quantizer = r->quant;
        so.mode = strcmp(o->quant_mode, "two-sided") == 0 ? DAT_QUANT_TWO_SIDED
                                                          : DAT_QUANT_ONE_SIDED;
        if (one_bucket) {
            dat_tensor *g;
            dat_model_grads(r->model, &g);
            dat_tensor_numel(g, &so.bucket_elems);
        }
        if (r->quant) /* whole quantizer buckets */
            so.bucket_elems = (so.bucket_elems + o->bucket - 1) / o->bucket * o->bucket;
        TRY_RUN("gradient synchronizer", dat_grad_sync_create(&r->sync, r->comm, r->model, &so));
    }
    return 0;
}

static int make_tensors(run *r)
{
    int32_t c, h, w;
    dat_dataset_sample_shape(r->train, &c, &h, &w);
    int64_t xs[4] = {r->o.batch, c, h, w}, ys[1] = {r->o.batch};
    int64_t es[4] = {r->eval_batch, c, h, w}, eys[1] = {r->eval_batch};
    TRY_RUN("tensors", dat_tensor_create(&r->x, r->ctx, DAT_FLOAT32, 4, xs));
    TRY_RUN("tensors", dat_tensor_create(&r->x_adv, r->ctx, DAT_FLOAT32, 4, xs));
    TRY_RUN("tensors", dat_tensor_create(&r->y, r->ctx, DAT_INT32, 1, ys));
    TRY_RUN("tensors", dat_tensor_create(&r->ex, r->ctx, DAT_FLOAT32, 4, es));
    TRY_RUN("tensors", dat_tensor_create(&r->ey, r->ctx, DAT_INT32, 1, eys));
    int64_t three = 3;
    TRY_RUN("tensors", dat_tensor_create(&r->counts, r->ctx, DAT_FLOAT32, 1, &three));
    if (!r->val)
        return 0;
    int64_t vs[4] = {r->val_batch, c, h, w}, vys[1] = {r->val_batch};
    TRY_RUN("tensors", dat_tensor_create(&r->vx, r->ctx, DAT_FLOAT32, 4, vs));
    TRY_RUN("tensors", dat_tensor_create(&r->vy, r->ctx, DAT_INT32, 1, vys));
    return 0;
}

/* --comm: NCCL when asked, or by default for CUDA on several ranks (the
 * gradients stay on the GPUs) or for a recorded quantized step (whose
 * all-reduce must run on the device, even on one process); MPI otherwise. */
static int make_comm(run *r)
{
    dat_comm_options co;
    dat_comm_options_init(&co);
    co.timeout_s = r->o.comm_timeout;
    const char *c = r->o.comm;
    int wants_device = r->ranks > 1 || (r->o.step_graph && r->o.bits < 32);
    r->nccl = strcmp(c, "nccl") == 0 ||
              (strcmp(c, "auto") == 0 && strcmp(r->o.device, "cuda") == 0 && wants_device);
#if DAT_HAVE_MPI
    if (r->nccl)
        TRY_RUN("NCCL communicator",
                dat_comm_create_nccl_mpi(&r->comm, r->ctx, MPI_COMM_WORLD, &co));
    else
        TRY_RUN("communicator", dat_comm_create_mpi(&r->comm, r->ctx, MPI_COMM_WORLD, &co));
#else
    if (r->nccl) { /* one process: rank 0 of 1, its own id */
        dat_comm_id id;
        TRY_RUN("NCCL communicator", dat_comm_unique_id(&id));
        TRY_RUN("NCCL communicator", dat_comm_create_nccl(&r->comm, r->ctx, 1, 0, &id, &co));
        return 0;
    }
    TRY_RUN("communicator", dat_comm_create_self(&r->comm, r->ctx));
#endif
    return 0;
}

/* What one epoch measured; ta / ra only when evaluated, val_* only with --val. */
typedef struct epoch_stats {
    double loss, ta, ra, val_ta, val_ra;
    int evaluated;
} epoch_stats;

/* Bytes this rank sent per training iteration (Table 4 of the paper). */
static double bytes_per_iter(const run *r)
{
    return r->grad_steps > 0 ? r->grad_bytes / r->grad_steps : 0.0;
}

static double images_per_s(const run *r)
{
    return r->train_seconds > 0 ? r->train_images / r->train_seconds : 0;
}

static int log_epoch(run *r, int64_t epoch, const epoch_stats *es)
{
    if (r->rank != 0)
        return 0;
    double lr;
    dat_optim_lr(r->optim, &lr);
    char line[512];
    int n = snprintf(line, sizeof line,
                     "{\"epoch\":%lld,\"loss\":%.6f,\"images_per_s\":%.1f,\"lr\":%.6g,"
                     "\"bytes_sent_per_iter\":%.0f", (long long)epoch, es->loss, images_per_s(r),
                     lr, bytes_per_iter(r));
    if (es->evaluated)
        n += snprintf(line + n, sizeof line - (size_t)n, ",\"ta\":%.4f,\"ra\":%.4f", es->ta,
                      es->ra);
    if (r->val)
        n += snprintf(line + n, sizeof line - (size_t)n, ",\"val_ta\":%.4f,\"val_ra\":%.4f",
                      es->val_ta, es->val_ra);
    snprintf(line + n, sizeof line - (size_t)n, "}");
    fprintf(stderr, "%s\n", line);
    if (r->metrics) {
        fprintf(r->metrics, "%s\n", line);
        fflush(r->metrics);
    }
    return 0;
}

/* Early stopping (Rice et al. 2020): the validation RA of this epoch, and with
 * --keep-best the checkpoint of the best one so far beside the last. */
static int validate(run *r, int64_t epochs, epoch_stats *es)
{
    if (!r->val)
        return 0;
    if (evaluate(r, r->val, r->vx, r->vy, &es->val_ta, &es->val_ra))
        return 1;
    if (es->val_ra <= r->best_ra)
        return 0;
    r->best_ra = es->val_ra;
    return r->o.keep_best ? save_checkpoint(r, "best.safetensors", epochs) : 0;
}

static int train(run *r)
{
    epoch_stats es = {0};
    for (int64_t e = r->start_epoch; e < r->o.epochs; ++e) {
        if (train_epoch(r, e, &es.loss) || end_epoch(r, &es.loss))
            return 1;
        int last = e + 1 == r->o.epochs;
        es.evaluated = last || (r->o.eval_every > 0 && (e + 1) % r->o.eval_every == 0);
        if (es.evaluated && evaluate(r, r->test, r->ex, r->ey, &es.ta, &es.ra))
            return 1;
        if (validate(r, e + 1, &es) || log_epoch(r, e + 1, &es) ||
            save_checkpoint(r, "last.safetensors", e + 1))
            return 1;
        if (r->o.stop_after > 0 && e + 1 == r->o.stop_after)
            return 0; /* interrupted on purpose: no final line */
    }
    if (!es.evaluated && evaluate(r, r->test, r->ex, r->ey, &es.ta, &es.ra))
        return 1;
    if (r->rank != 0)
        return 0;
    char best[64] = "";
    if (r->val)
        snprintf(best, sizeof best, ",\"best_val_ra\":%.4f", r->best_ra);
    int64_t tested = 0; /* --eval-count may exceed the test set */
    dat_dataset_num_samples(r->test, &tested);
    printf("{\"ta\":%.4f,\"ra\":%.4f,\"eval_images\":%lld,\"images_per_s\":%.1f,\"epochs\":%d,"
           "\"ranks\":%d,\"comm\":\"%s\",\"model\":\"%s\",\"attack\":\"%s\",\"eps\":%g,"
           "\"seconds\":%.1f,\"bytes_sent_per_iter\":%.0f%s}\n",
           es.ta, es.ra, (long long)tested, images_per_s(r), (int)r->o.epochs, r->ranks,
           r->nccl ? "nccl" : DAT_HAVE_MPI ? "mpi" : "self", r->o.model, r->o.attack,
           (double)r->o.eps, r->train_seconds, bytes_per_iter(r), best);
    return 0;
}

/* mkdir -p: the folder and its missing parents. */
static int make_dirs(const char *path)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *s = p + 1; *s; ++s) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Rank 0 makes --checkpoint-dir and checks, before any work, that it can
 * take the checkpoints: a folder where a file can be created, whose
 * last.safetensors, if any, is a file; it removes the temporary files a run
 * killed while saving left there. */
static int checkpoint_dir_ready(const run *r)
{
    const char *dir = r->o.checkpoint_dir;
    if (!dir || r->rank != 0)
        return 0;
    char probe[4200];
    struct stat st;
    const char *why = NULL;
    if (make_dirs(dir) != 0 || stat(dir, &st) != 0)
        why = strerror(errno);
    else if (!S_ISDIR(st.st_mode))
        why = "not a folder";
    if (!why) {
        snprintf(probe, sizeof probe, "%s/last.safetensors", dir);
        if (stat(probe, &st) == 0 && !S_ISREG(st.st_mode))
            why = "its last.safetensors is not a file";
    }
    if (!why) {
        snprintf(probe, sizeof probe, "%s/.dat-train-probe", dir);
        int err = temp_probe(probe);
        if (err)
            why = strerror(err);
    }
    if (why) {
        fprintf(stderr, "dat-train: --checkpoint-dir %s: %s\n", dir, why);
        return 1;
    }
    /* What a run killed while saving left: the temporary files of its checkpoints
     * (names matched alone: the folder's own name may hold pattern characters). */
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        if (fnmatch("*.safetensors.tmp.*", e->d_name, 0) == 0 &&
            snprintf(probe, sizeof probe, "%s/%s", dir, e->d_name) < (int)sizeof probe)
            remove(probe);
    if (d)
        closedir(d);
    return 0;
}

static int setup(run *r)
{
    if (checkpoint_dir_ready(r))
        return 1;
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.num_threads = r->o.threads;
    co.seed = r->o.seed;
    co.precision = strcmp(r->o.precision, "tf32") == 0   ? DAT_PRECISION_TF32
                   : strcmp(r->o.precision, "bf16") == 0 ? DAT_PRECISION_BF16
                                                         : DAT_PRECISION_FP32;
    co.channels_last = strcmp(r->o.channels_last, "on") == 0    ? 1
                       : strcmp(r->o.channels_last, "off") == 0 ? 0
                                                                : -1;
    if (strcmp(r->o.device, "cuda") == 0) {
        int32_t gpus = 0;
        co.device = DAT_DEVICE_CUDA;
        if (dat_cuda_device_count(&gpus) == DAT_OK && gpus > 0)
            co.device_ordinal = r->rank % gpus; /* ranks of one host share its GPUs */
        co.tune_convolutions = r->o.tune_conv;
        co.deterministic = r->o.deterministic;
        co.cuda_graphs = r->o.cuda_graphs;
    }
    TRY_RUN("context", dat_ctx_create(&r->ctx, &co));
    int32_t threads = 0;
    dat_ctx_num_threads(r->ctx, &threads);
    if (train_options_json(&r->o, r->ranks, threads, r->config, sizeof r->config)) {
        fprintf(stderr, "dat-train: the options do not fit in a checkpoint's %zu bytes\n",
                sizeof r->config);
        return 1;
    }
    if (make_comm(r) || open_data(r) || make_model_and_optim(r) || make_attacks(r) ||
        smooth_setup(r) || make_tensors(r))
        return 1;
    if ((r->o.resume && resume(r)) || transfer_setup(r, !r->o.resume))
        return 1;
    if (!r->o.resume) /* every worker starts from rank 0's weights */
        TRY_RUN("broadcast", dat_comm_broadcast_model(r->comm, r->model, 0));
    if (r->rank == 0 && r->o.metrics && !(r->metrics = fopen(r->o.metrics, "a"))) {
        fprintf(stderr, "dat-train: --metrics %s: %s\n", r->o.metrics, strerror(errno));
        return 1;
    }
    return 0;
}

static void teardown(run *r)
{
    if (r->metrics)
        fclose(r->metrics);
    dat_step_graph_destroy(r->graph); /* before the objects it refers to */
    dat_tensor_destroy(r->loss_sum);
    dat_tensor_destroy(r->x);
    dat_tensor_destroy(r->x_adv);
    dat_tensor_destroy(r->y);
    dat_tensor_destroy(r->ex);
    dat_tensor_destroy(r->ey);
    dat_tensor_destroy(r->vx);
    dat_tensor_destroy(r->vy);
    dat_tensor_destroy(r->counts);
    dat_grad_sync_destroy(r->sync);
    dat_quantizer_destroy(r->quant);
    dat_attack_destroy(r->attack);
    dat_attack_destroy(r->eval_attack);
    smooth_free(r);
    dat_optim_destroy(r->optim);
    dat_model_destroy(r->model);
    dat_dataset_destroy(r->train);
    dat_dataset_destroy(r->test);
    dat_dataset_destroy(r->val);
    dat_comm_destroy(r->comm);
    dat_ctx_destroy(r->ctx);
}

int main(int argc, char **argv)
{
    static run r = {.best_ra = -1};
    int p = train_options_parse(&r.o, argc, argv);
    if (p != 0)
        return p > 0 ? 0 : 2;
    r.ranks = 1;
#if DAT_HAVE_MPI
    /* SERIALIZED: the gradient synchronizer's thread may run the collectives. */
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &r.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &r.ranks);
#endif
    int rc = setup(&r) || train(&r);
    teardown(&r);
#if DAT_HAVE_MPI
    if (rc && r.ranks > 1)
        MPI_Abort(MPI_COMM_WORLD, 1); /* a failing rank must not leave the others waiting */
    MPI_Finalize();
#endif
    return rc;
}
