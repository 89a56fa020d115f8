/* What one evaluation opens before its first batch: the context, the test set, the model
 * with its checkpoint, and the PGD attack. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "eval.h"

/* The context as dat-train builds it from the same options, so a model is evaluated on the
 * device and with the arithmetic it was trained with. A build without CUDA, or no GPU,
 * fails here with the library's message (DAT_ERR_UNSUPPORTED / DAT_ERR_NO_DEVICE). */
static int open_context(evaluation *e)
{
    const eval_options *o = &e->o;
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.num_threads = o->threads;
    co.seed = o->seed;
    co.precision = strcmp(o->precision, "tf32") == 0   ? DAT_PRECISION_TF32
                   : strcmp(o->precision, "bf16") == 0 ? DAT_PRECISION_BF16
                                                       : DAT_PRECISION_FP32;
    co.channels_last = strcmp(o->channels_last, "on") == 0    ? 1
                       : strcmp(o->channels_last, "off") == 0 ? 0
                                                              : -1;
    if (strcmp(o->device, "cuda") == 0)
        co.device = DAT_DEVICE_CUDA; /* GPU 0: one process, CUDA_VISIBLE_DEVICES picks it */
    TRY("context", dat_ctx_create(&e->ctx, &co));
    return 0;
}

/* The test files of each format, named as dat-train names them; CIFAR-100's binary
 * version calls its test file test.bin. */
static void test_files(const eval_options *o, dat_dataset_options *d, char *images,
                       char *labels, size_t size)
{
    if (strcmp(o->data_format, "idx") == 0) {
        snprintf(images, size, "%s/t10k-images-idx3-ubyte.gz", o->data_dir);
        snprintf(labels, size, "%s/t10k-labels-idx1-ubyte.gz", o->data_dir);
        d->labels_path = labels;
    } else if (strcmp(o->data_format, "npy") == 0) {
        d->format = DAT_DATASET_NPY;
        snprintf(images, size, "%s", o->npy_images);
        d->labels_path = o->npy_labels;
    } else {
        int c100 = strcmp(o->data_format, "cifar100") == 0;
        d->format = c100 ? DAT_DATASET_CIFAR100 : DAT_DATASET_CIFAR10;
        snprintf(images, size, "%s/%s", o->data_dir, c100 ? "test.bin" : "test_batch.bin");
    }
    d->images_path = images;
}

/* --count keeps the first N images of the file and --classes those of the subset among
 * them, as dat-train's --eval-count does; when none are left the library's message speaks
 * of its split, so say which options did it (asked only after a failed open). */
static void explain_empty_subset(evaluation *e, dat_dataset_options *d)
{
    dat_dataset *all = NULL;
    d->limit = 0;
    if (dat_dataset_open(&all, e->ctx, d) == DAT_OK)
        fprintf(stderr, "dat-eval: test data: none of the first %d test images (--count) is of "
                "the --classes subset\n", (int)e->o.count);
    dat_dataset_destroy(all);
}

static int open_data(evaluation *e)
{
    const eval_options *o = &e->o;
    char images[4096], labels[4096];
    dat_dataset_options d;
    dat_dataset_options_init(&d);
    test_files(o, &d, images, labels, sizeof images);
    /* dat-train's subset: the labels become 0..k-1, as the model's k outputs are. */
    d.classes = o->num_classes_subset ? o->classes : NULL;
    d.num_subset_classes = o->num_classes_subset;
    d.limit = o->count;
    d.shuffle = 0;
    d.batch_size = o->batch;
    dat_status s = dat_dataset_open(&e->ds, e->ctx, &d);
    if (s != DAT_OK) {
        eval_fail("test data", s);
        if (s == DAT_ERR_INVALID_ARG && o->count > 0 && o->num_classes_subset)
            explain_empty_subset(e, &d);
        return 1;
    }
    TRY("test data", dat_dataset_num_samples(e->ds, &e->total));
    TRY("test data", dat_dataset_num_classes(e->ds, &e->classes));
    return 0;
}

/* A load that fits once the classifier may differ: the checkpoint was trained on another
 * number of classes (dat-train's --classes, most often), which the first mismatched
 * tensor's name alone does not say. Only asked after a failed load: it may change the
 * model, which is not used after a failure. */
static int only_classifier_differs(evaluation *e)
{
    dat_model_load_options lo;
    dat_model_load_options_init(&lo);
    lo.reinit_head = DAT_REINIT_HEAD_IF_MISMATCHED;
    return dat_model_load(e->model, e->o.checkpoint, &lo) == DAT_OK;
}

/* The class list a dat-train config records ("classes":[0,1,...]), as text, e.g. "0,1";
 * "" when it records none (all classes) or the config is not dat-train's (NULL). */
static const char *recorded_classes(const char *config, char *buf, size_t size)
{
    size_t len;
    const char *v = config_value(config, "classes", strlen("classes"), &len);
    if (!v || len < 2 || v[0] != '[' || v[len - 1] != ']')
        return NULL;
    snprintf(buf, size, "%.*s", (int)(len - 2), v + 1);
    return buf;
}

/* A dat-train checkpoint records its --classes: another list (same size, or the classifier
 * would not have fit) would evaluate the model against the wrong labels. */
static int check_classes(const evaluation *e, const char *config)
{
    static char had[CLI_CLASSES_TEXT];
    const char *trained = recorded_classes(config, had, sizeof had);
    if (!trained)
        return 0;
    char given[CLI_CLASSES_TEXT];
    cli_classes_text(e->o.classes, e->o.num_classes_subset, given);
    if (strcmp(trained, given) == 0)
        return 0;
    fprintf(stderr, "dat-eval: checkpoint: %s was trained with %s%s; this evaluation has %s%s\n",
            e->o.checkpoint, *trained ? "--classes " : "all classes", trained,
            *given ? "--classes " : "all classes", given);
    return 1;
}

static int load_checkpoint(evaluation *e)
{
    /* A dat-train checkpoint gives its config too; a PyTorch state_dict of the preset (no
     * train.position) is refused by dat_checkpoint_load before it touches the model, and
     * dat_model_load reads it. */
    static char config[65536];
    dat_checkpoint_info info = {.size = sizeof info};
    dat_status s = dat_checkpoint_load(e->o.checkpoint, e->model, NULL, &info, config,
                                       sizeof config);
    if (s == DAT_OK)
        return check_classes(e, config);
    if (s == DAT_ERR_FORMAT)
        s = dat_model_load(e->model, e->o.checkpoint, NULL);
    if (s == DAT_OK)
        return 0;
    eval_fail("checkpoint", s);
    if (s == DAT_ERR_FORMAT && only_classifier_differs(e))
        fprintf(stderr,
                "dat-eval: checkpoint: only the classifier does not fit: the model was trained "
                "on another number of classes than the %d of this test set%s; give the "
                "--classes LIST (and --data-format) it was trained with\n",
                (int)e->classes, e->o.num_classes_subset ? " subset" : "");
    return 1;
}

static int open_model(evaluation *e)
{
    int32_t c, h, w;
    dat_dataset_sample_shape(e->ds, &c, &h, &w);
    dat_model_options mo;
    dat_model_options_init(&mo);
    mo.num_classes = e->classes; /* the subset's k with --classes */
    mo.in_channels = c;
    mo.in_height = h;
    mo.in_width = w;
    TRY("model", dat_model_create_preset(&e->model, e->ctx, e->o.model, &mo));
    if (load_checkpoint(e))
        return 1;
    TRY("model", dat_model_set_mode(e->model, DAT_MODE_EVAL));
    return 0;
}

static int open_pgd(evaluation *e)
{
    dat_attack_options a;
    dat_attack_options_init(&a);
    a.norm = strcmp(e->o.norm, "l2") == 0 ? DAT_NORM_L2 : DAT_NORM_LINF;
    a.eps = e->o.eps;
    a.steps = e->o.pgd_steps;
    a.restarts = e->o.pgd_restarts;
    a.seed = e->o.seed;
    TRY("PGD", dat_attack_create(&e->pgd, e->ctx, &a));
    return 0;
}

int eval_setup(evaluation *e)
{
    return open_context(e) || open_data(e) || open_model(e) || (e->o.pgd && open_pgd(e));
}
