#include "options.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libdat/dat.h>

#include "cli.h"

static const char usage[] =
    "usage: dat-eval --checkpoint FILE [OPTIONS]\n"
    "\n"
    "Evaluates a model trained with dat-train (or a PyTorch state_dict of a preset,\n"
    "as safetensors) on a test set: clean accuracy, PGD-k, AutoAttack (Croce & Hein\n"
    "2020) and randomized-smoothing certification (Cohen et al. 2019).\n"
    "\n"
    "Model and data\n"
    "  --checkpoint FILE    safetensors of the model (required)\n"
    "  --model NAME         mlp | cnn_small | preact_resnet18 | wrn_28_10 |\n"
    "                       resnet50                                  [cnn_small]\n"
    "  --data-format F      idx | cifar10 | cifar100 | npy                  [idx]\n"
    "  --data DIR           folder of the test files: t10k-*-ubyte.gz (idx),\n"
    "                       test_batch.bin (cifar10), test.bin (cifar100)\n"
    "                       [/usr/share/datasets/fashion-mnist]\n"
    "  --npy-images F, --npy-labels F   test set as .npy (with --data-format npy)\n"
    "  --classes LIST       class subset, e.g. 0-4 or 1,3,5; relabeled 0..k-1 [all]\n"
    "                       (the model has k classes: give dat-train's LIST)\n"
    "  --count N            evaluate the first N test images (0: all); with\n"
    "                       --classes, those of the subset among them         [0]\n"
    "  --batch N            images per batch (progress is shown per batch)\n"
    "                                          [500; 10 with --eval certify]\n"
    "\n"
    "Evaluations\n"
    "  --eval LIST          of ta, pgd, aa, certify                  [ta,pgd,aa]\n"
    "  --norm N             linf | l2 (PGD and AutoAttack)                [linf]\n"
    "  --eps E              radius                                         [0.1]\n"
    "  --pgd-steps K        PGD-K, step 2.5 eps / K, random start           [20]\n"
    "  --pgd-restarts R                                                      [1]\n"
    "  --attacks LIST       AutoAttack's attacks, of apgd-ce, apgd-t, fab-t,\n"
    "                       square                                  [all four]\n"
    "  --apgd-steps K                                                      [100]\n"
    "  --targets N          APGD-T / FAB-T target classes                    [9]\n"
    "  --fab-steps K                                                       [100]\n"
    "  --square-queries Q                                                 [5000]\n"
    "  --sigma S            smoothing noise std                           [0.25]\n"
    "  --n0 N               CERTIFY's selection samples                    [100]\n"
    "  --n N                CERTIFY's estimation samples                [100000]\n"
    "  --alpha A            failure probability                         [0.001]\n"
    "  --cert-batch N       noisy copies per forward pass                 [1000]\n"
    "  --radii LIST         certified accuracy at these l2 radii\n"
    "                                                 [0,0.25,0.5,0.75,1,1.25,1.5]\n"
    "\n"
    "Run\n"
    "  --seed N             key of every random draw                         [0]\n"
    "  --threads N          compute threads (0 = all cores)                  [0]\n"
    "  --device D           cpu | cuda (GPU 0 of CUDA_VISIBLE_DEVICES)      [cpu]\n"
    "  --precision P        fp32 | tf32 (CUDA) | bf16 (CUDA; the CPU emulates it,\n"
    "                       slowly)                                         [fp32]\n"
    "  --channels-last L    auto | on | off: activations NHWC inside models\n"
    "                       (auto: the backend's choice)                   [auto]\n"
    "  --json FILE          also write the result to FILE\n"
    "  --per-sample on|off  per-sample results in the JSON                 [off]\n"
    "  --progress P         auto | bar | lines | none                     [auto]\n"
    "  --help               this text\n"
    "\n"
    "The last line printed is the JSON result (accuracies are fractions).\n";

static void defaults(eval_options *o)
{
    memset(o, 0, sizeof *o);
    o->model = "cnn_small";
    o->ta = o->pgd = o->aa = 1;
    o->data_format = "idx";
    o->data_dir = "/usr/share/datasets/fashion-mnist";
    o->batch = 0; /* resolved in finish() */
    o->norm = "linf";
    o->eps = 0.1f;
    o->pgd_steps = 20;
    o->pgd_restarts = 1;
    o->attacks = DAT_AA_STANDARD;
    o->apgd_steps = 100;
    o->targets = 9;
    o->fab_steps = 100;
    o->square_queries = 5000;
    o->sigma = 0.25f;
    o->n0 = 100;
    o->n = 100000;
    o->alpha = 0.001f;
    o->cert_batch = 1000;
    static const float radii[] = {0, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f, 1.5f};
    memcpy(o->radii, radii, sizeof radii);
    o->num_radii = 7;
    o->progress = "auto";
    o->device = "cpu";
    o->precision = "fp32";
    o->channels_last = "auto";
}

/* A copy of v to cut into tokens, whatever its length; NULL after printing why. */
static char *copy_list(const char *opt, const char *v)
{
    char *buf = strdup(v);
    if (!buf)
        cli_bad(opt, NULL, "out of memory for its value");
    return buf;
}

/* Comma-separated names: the index of each in `names` sets bit index of *bits. */
static int parse_set(const char *opt, const char *v, const char *const *names, uint32_t *bits)
{
    *bits = 0;
    char *buf = copy_list(opt, v);
    if (!buf)
        return -1;
    int rc = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && rc == 0;
         t = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int i = 0; names[i]; ++i)
            if (strcmp(t, names[i]) == 0)
                found = i;
        if (found < 0)
            rc = cli_bad(opt, t, "not one of the listed values");
        else
            *bits |= 1u << found;
    }
    free(buf);
    if (rc != 0)
        return rc;
    return *bits ? 0 : cli_bad(opt, v, "empty list");
}

static int parse_radii(const char *opt, const char *v, eval_options *o)
{
    char *buf = copy_list(opt, v);
    if (!buf)
        return -1;
    int rc = 0;
    o->num_radii = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && rc == 0;
         t = strtok_r(NULL, ",", &save)) {
        if (o->num_radii == MAX_RADII)
            rc = cli_bad(opt, v, "too many radii");
        else
            rc = cli_float(opt, t, 0, 1e6, 0, &o->radii[o->num_radii++]);
    }
    free(buf);
    if (rc != 0)
        return rc;
    return o->num_radii ? 0 : cli_bad(opt, v, "empty list");
}

static const char *const formats[] = {"idx", "cifar10", "cifar100", "npy", NULL};
static const char *const models[] = {"mlp", "cnn_small", "preact_resnet18", "wrn_28_10",
                                     "resnet50", NULL};
static const char *const evals[] = {"ta", "pgd", "aa", "certify", NULL};
static const char *const aa_names[] = {"apgd-ce", "apgd-t", "fab-t", "square", NULL};
static const char *const norms[] = {"linf", "l2", NULL};
static const char *const progresses[] = {"auto", "bar", "lines", "none", NULL};
static const char *const onoff[] = {"off", "on", NULL};
static const char *const devices[] = {"cpu", "cuda", NULL};
static const char *const precisions[] = {"fp32", "tf32", "bf16", NULL};
static const char *const layouts[] = {"auto", "on", "off", NULL};

static int parse_one(eval_options *o, const char *k, const char *v)
{
#define IS(name) (strcmp(k, name) == 0)
    if (IS("--checkpoint")) return cli_path(k, v, &o->checkpoint);
    if (IS("--model")) return cli_choice(k, v, models, &o->model);
    if (IS("--data-format")) return cli_choice(k, v, formats, &o->data_format);
    if (IS("--data")) return cli_path(k, v, &o->data_dir);
    if (IS("--npy-images")) return cli_path(k, v, &o->npy_images);
    if (IS("--npy-labels")) return cli_path(k, v, &o->npy_labels);
    if (IS("--classes"))
        return cli_classes(k, v, o->classes, MAX_CLASSES, &o->num_classes_subset);
    if (IS("--count")) return cli_int(k, v, 0, INT_MAX, &o->count);
    if (IS("--batch")) return cli_int(k, v, 1, 1 << 20, &o->batch);
    if (IS("--eval")) {
        uint32_t bits;
        if (parse_set(k, v, evals, &bits))
            return -1;
        o->ta = bits & 1, o->pgd = (bits >> 1) & 1, o->aa = (bits >> 2) & 1;
        o->certify = (bits >> 3) & 1;
        return 0;
    }
    if (IS("--norm")) return cli_choice(k, v, norms, &o->norm);
    if (IS("--eps")) return cli_float(k, v, 0, 1e6, 0, &o->eps);
    if (IS("--pgd-steps")) return cli_int(k, v, 1, 100000, &o->pgd_steps);
    if (IS("--pgd-restarts")) return cli_int(k, v, 1, 10000, &o->pgd_restarts);
    if (IS("--attacks")) return parse_set(k, v, aa_names, &o->attacks);
    if (IS("--apgd-steps")) return cli_int(k, v, 1, 100000, &o->apgd_steps);
    if (IS("--targets")) return cli_int(k, v, 1, 999, &o->targets);
    if (IS("--fab-steps")) return cli_int(k, v, 1, 100000, &o->fab_steps);
    if (IS("--square-queries")) return cli_int(k, v, 1, 10000000, &o->square_queries);
    if (IS("--sigma")) return cli_float(k, v, 0, 1e6, 1, &o->sigma);
    if (IS("--n0")) return cli_int(k, v, 1, INT_MAX, &o->n0);
    if (IS("--n")) return cli_int(k, v, 1, INT_MAX, &o->n);
    if (IS("--alpha")) return cli_float(k, v, 0, 1, 1, &o->alpha);
    if (IS("--cert-batch")) return cli_int(k, v, 1, 1000000, &o->cert_batch);
    if (IS("--radii")) return parse_radii(k, v, o);
    if (IS("--seed")) {
        int32_t s = 0;
        if (cli_int(k, v, 0, INT_MAX, &s))
            return -1;
        o->seed = (uint64_t)s;
        return 0;
    }
    if (IS("--threads")) return cli_int(k, v, 0, 4096, &o->threads);
    if (IS("--device")) return cli_choice(k, v, devices, &o->device);
    if (IS("--precision")) return cli_choice(k, v, precisions, &o->precision);
    if (IS("--channels-last")) return cli_choice(k, v, layouts, &o->channels_last);
    if (IS("--json")) return cli_path(k, v, &o->json);
    if (IS("--per-sample")) {
        const char *c;
        if (cli_choice(k, v, onoff, &c))
            return -1;
        o->per_sample = strcmp(c, "on") == 0;
        return 0;
    }
    if (IS("--progress")) return cli_choice(k, v, progresses, &o->progress);
#undef IS
    return cli_bad(k, NULL, "unknown option");
}

static int finish(eval_options *o)
{
    if (o->batch == 0) /* certification takes long per image: show progress often */
        o->batch = o->certify ? 10 : 500;
    if (!o->checkpoint)
        return cli_bad("--checkpoint", NULL, "is required");
    if (o->certify && o->n0 > o->n)
        return cli_bad("--n0", NULL, "must not exceed --n");
    if (o->aa && o->num_classes_subset == 1) /* its targeted attacks need a second class */
        return cli_bad("--classes", NULL, "one class leaves AutoAttack nothing to attack; "
                       "leave aa out of --eval");
    int npy = strcmp(o->data_format, "npy") == 0;
    if (npy && (!o->npy_images || !o->npy_labels))
        return cli_bad("--data-format", "npy", "needs --npy-images and --npy-labels");
    if (!npy && (o->npy_images || o->npy_labels))
        return cli_bad(o->npy_images ? "--npy-images" : "--npy-labels", NULL,
                       "needs --data-format npy (it would be ignored)");
    return 0;
}

static int parse_value(void *opts, const char *opt, const char *v)
{
    return parse_one(opts, opt, v);
}

int eval_options_parse(eval_options *o, int argc, char **argv)
{
    cli_set_program("dat-eval");
    defaults(o);
    int rc = cli_parse(argc, argv, usage, NULL, parse_value, o);
    return rc != 0 ? rc : finish(o);
}
