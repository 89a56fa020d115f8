#include "options.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: dat-train [OPTIONS]\n"
    "\n"
    "Distributed adversarial training (Zhang et al., UAI 2022) with libdat. Run M\n"
    "workers with `mpirun -np M dat-train ...`; each trains on its shard.\n"
    "\n"
    "Data\n"
    "  --data-format F      idx | cifar10 | cifar100 | npy                  [idx]\n"
    "  --data DIR           folder of the dataset files: idx: {train,t10k}-{images-idx3,\n"
    "                       labels-idx1}-ubyte.gz; cifar10: data_batch_1.bin ..\n"
    "                       data_batch_5.bin, test_batch.bin; cifar100: train.bin,\n"
    "                       test.bin; npy: {train,test}_{images,labels}.npy\n"
    "                       [/usr/share/datasets/fashion-mnist, from the Debian\n"
    "                        package dataset-fashion-mnist]\n"
    "  --train-subset N     train on the first N training images only      [all]\n"
    "  --num-classes N      classes of the data; a label outside is an error\n"
    "                       [idx: 10; cifar10 / cifar100: 10 / 100; npy: the\n"
    "                        largest training label + 1]\n"
    "  --classes LIST       class subset, e.g. 0-4 or 1,3,5; relabeled 0..k-1 [all]\n"
    "  --val N              hold out N training images for validation       [0]\n"
    "  --augment on|off     random crop (pad 4) and horizontal flip         [off]\n"
    "  --unlabeled N        use N of the training images without labels,\n"
    "                       pseudo-labeled by --teacher                       [0]\n"
    "  --unlabeled-data F   .npy images to use unlabeled (with --teacher)\n"
    "  --teacher CKPT       checkpoint of the same --model that labels them\n"
    "\n"
    "Model\n"
    "  --model NAME         mlp | cnn_small | preact_resnet18 | wrn_28_10 |\n"
    "                       resnet50                                  [cnn_small]\n"
    "  --init-from CKPT     start from a checkpoint; a classifier of another size\n"
    "                       is re-initialized (transfer learning)\n"
    "  --new-head           with --init-from: re-initialize the classifier even\n"
    "                       when its size matches (a new task)\n"
    "  --freeze K           train only the last K layers (0: all)             [0]\n"
    "\n"
    "Attack (inner maximization)\n"
    "  --attack A           pgd | fgsm | trades | none                      [pgd]\n"
    "  --eps E              l-inf radius (l2 with --smooth-sigma)           [0.1]\n"
    "  --alpha A            step; 0 = 2.5 eps/k, fgsm 1.25 eps, smooth 2 eps/k [0]\n"
    "  --steps K            PGD / TRADES steps                               [10]\n"
    "  --lambda L           weight of the clean loss (0 = Madry AT)          [0]\n"
    "  --beta B             TRADES weight of the KL term                     [6]\n"
    "  --smooth-sigma S     Smooth-AT: Gaussian noise std (0 = off)          [0]\n"
    "  --noise-copies N     Smooth-AT: noisy copies per image                 [1]\n"
    "\n"
    "Optimizer\n"
    "  --optimizer O        sgd | momentum | nesterov | adam | adamw | lars | lamb\n"
    "                       (lars: momentum with LALR; lamb: the paper's LAMB, adamw\n"
    "                       with LALR, no bias correction, adam-eps 1e-6) [momentum]\n"
    "  --lalr on|off        layer-wise adaptive rate (LARS / LAMB)\n"
    "                                                   [off; lars, lamb: on]\n"
    "  --c-l X, --c-u X     LALR trust-ratio clipping bounds             [0, 10]\n"
    "  --lr X               base learning rate                             [0.05]\n"
    "  --head-lr X          learning rate of the classifier (last layer) [= lr]\n"
    "  --momentum X         momentum / Adam beta1                           [0.9]\n"
    "  --beta2 X            Adam beta2                                    [0.999]\n"
    "  --adam-eps X         Adam epsilon                       [1e-8; lamb: 1e-6]\n"
    "  --bias-correction on|off  Adam's bias correction         [on; lamb: off]\n"
    "  --weight-decay X                                                    [5e-4]\n"
    "  --schedule S         const | piecewise | cosine | onecycle     [piecewise]\n"
    "  --warmup-epochs X    linear warm-up                                    [0]\n"
    "  --milestones LIST    piecewise decay epochs, e.g. 5,8\n"
    "                       [50%,75% of the epochs after the warm-up]\n"
    "  --gamma X            piecewise decay factor                          [0.1]\n"
    "  --lr-scaling S       none | linear | sqrt scaling with the global batch\n"
    "                       (M x batch) against --ref-batch                [none]\n"
    "  --ref-batch N        batch the base learning rate is meant for       [128]\n"
    "  --baseline lsgd      DAT-LSGD: momentum SGD, linear scaling, 5 warm-up\n"
    "                       epochs, no LALR\n"
    "\n"
    "Distribution and quantization\n"
    "  --batch N            per-rank batch                                  [128]\n"
    "  --epochs N                                                             [5]\n"
    "  --bits B             gradient quantization bits, 2..16, 32 = off      [32]\n"
    "  --quant-mode M       one-sided | two-sided                     [one-sided]\n"
    "  --bucket N           quantization bucket size                        [512]\n"
    "  --overlap on|off     all-reduce the gradient bucket by bucket during the\n"
    "                       backward pass (CPU with MPI; CUDA with NCCL)     [on]\n"
    "  --comm C             auto | mpi | nccl: NCCL moves CUDA gradients between\n"
    "                       GPUs (auto: nccl for cuda on several ranks)    [auto]\n"
    "  --comm-timeout S     seconds to wait for the other ranks, then fail  [300]\n"
    "\n"
    "Run\n"
    "  --seed N                                                               [0]\n"
    "  --threads N          compute threads per rank (0 = all cores)          [0]\n"
    "  --device D           cpu | cuda (rank r takes GPU r mod the GPUs)    [cpu]\n"
    "  --precision P        fp32 | tf32 (CUDA) | bf16 (CUDA; the CPU emulates it,\n"
    "                       slowly)                                         [fp32]\n"
    "  --channels-last L    auto | on | off: activations NHWC inside models\n"
    "                       (auto: the backend's choice)                   [auto]\n"
    "  --tune-conv on|off   time cuDNN's convolution algorithms once per shape\n"
    "                       (faster; the choice can differ between runs)    [off]\n"
    "  --deterministic on|off  only deterministic cuDNN algorithms: the same bits\n"
    "                       every run, and --step-graph on as off (CUDA)    [off]\n"
    "  --cuda-graphs on|off replay the attack's steps from a CUDA graph      [on]\n"
    "  --step-graph on|off  record the whole training step once and replay it per\n"
    "                       batch (CUDA; several ranks or --bits < 32 need NCCL) [off]\n"
    "  --checkpoint-dir D   write last.safetensors (and best.safetensors) here\n"
    "  --resume             continue from D/last.safetensors bit-exactly\n"
    "  --stop-after E       stop after epoch E, as if interrupted (to test --resume)\n"
    "  --keep-best          keep the checkpoint of the best validation RA\n"
    "  --eval-every N       evaluate TA and RA every N epochs (0: at the end) [1]\n"
    "  --eval-count N       test images to evaluate (0: all)                  [0]\n"
    "  --eval-steps K       PGD-K of the robust accuracy                     [20]\n"
    "  --metrics FILE       append one JSON object per epoch\n"
    "  --progress P         auto | bar | lines | none                      [auto]\n"
    "  --help               this text\n"
    "\n"
    "The last line printed is a JSON object with ta, ra, images_per_s, epochs, ranks.\n";

static void defaults(train_options *o)
{
    memset(o, 0, sizeof *o);
    o->data_format = "idx";
    o->data_dir = "/usr/share/datasets/fashion-mnist";
    o->model = "cnn_small";
    o->attack = "pgd";
    o->eps = 0.1f;
    o->steps = 10;
    o->beta = 6.0f;
    o->noise_copies = 1;
    o->optimizer = "momentum";
    o->lr = 0.05f;
    o->head_lr = -1.0f;
    o->momentum = 0.9f;
    o->beta2 = 0.999f;
    o->adam_eps = 0.0f;        /* unset: the optimizer's default */
    o->bias_correction = -1;   /* unset: the optimizer's default */
    o->lalr = -1;              /* unset: on for lars and lamb, else off */
    o->weight_decay = 5e-4f;
    o->c_l = 0.0f;
    o->c_u = 10.0f;
    o->schedule = "piecewise";
    o->gamma = 0.1f;
    o->lr_scaling = "none";
    o->ref_batch = 128;
    o->batch = 128;
    o->epochs = 5;
    o->bits = 32;
    o->quant_mode = "one-sided";
    o->bucket = 512;
    o->comm_timeout = 300.0f; /* rank 0 also writes checkpoints and metrics */
    o->eval_every = 1;
    o->eval_steps = 20;
    o->progress = "auto";
    o->device = "cpu";
    o->precision = "fp32";
    o->channels_last = "auto";
    o->cuda_graphs = 1; /* dat_ctx_options' default */
    o->overlap = 1;
    o->comm = "auto";
}

static int parse_milestones(const char *opt, const char *v, train_options *o)
{
    o->num_milestones = 0;
    const char *p = v;
    while (*p) {
        char *end;
        float x = (float)strtod(p, &end); /* as stored: 1e-50 is 0, 1e400 inf */
        if (end == p || !(x > 0) || !(x <= 1e6f) || o->num_milestones == MAX_MILESTONES)
            return cli_bad(opt, v, "expected up to 16 epochs in (0, 1e6], e.g. 5,8");
        if (o->num_milestones && x <= o->milestones[o->num_milestones - 1])
            return cli_bad(opt, v, "milestones must increase");
        o->milestones[o->num_milestones++] = x;
        o->milestones_given = 1;
        p = end;
        if (*p == ',')
            ++p;
        else if (*p)
            return cli_bad(opt, v, "unexpected character");
    }
    return 0;
}

static const char *const formats[] = {"idx", "cifar10", "cifar100", "npy", NULL};
static const char *const models[] = {"mlp", "cnn_small", "preact_resnet18", "wrn_28_10",
                                     "resnet50", NULL};
static const char *const attacks[] = {"pgd", "fgsm", "trades", "none", NULL};
static const char *const optimizers[] = {"sgd",   "momentum", "nesterov", "adam",
                                         "adamw", "lars",     "lamb",     NULL};
static const char *const schedules[] = {"const", "piecewise", "cosine", "onecycle", NULL};
static const char *const scalings[] = {"none", "linear", "sqrt", NULL};
static const char *const qmodes[] = {"one-sided", "two-sided", NULL};
static const char *const progresses[] = {"auto", "bar", "lines", "none", NULL};
static const char *const baselines[] = {"lsgd", NULL};
static const char *const devices[] = {"cpu", "cuda", NULL};
static const char *const precisions[] = {"fp32", "tf32", "bf16", NULL};
static const char *const layouts[] = {"auto", "on", "off", NULL};
static const char *const comms[] = {"auto", "mpi", "nccl", NULL};

/* One option with its value; returns 0, or -1 after printing the problem. */
static int parse_one(train_options *o, const char *k, const char *v)
{
#define IS(name) (strcmp(k, name) == 0)
    if (IS("--data-format")) return cli_choice(k, v, formats, &o->data_format);
    if (IS("--data")) return cli_path(k, v, &o->data_dir);
    if (IS("--train-subset")) return cli_int(k, v, 1, INT_MAX, &o->train_subset);
    if (IS("--num-classes")) return cli_int(k, v, 2, 1 << 20, &o->num_classes);
    if (IS("--classes"))
        return cli_classes(k, v, o->classes, MAX_CLASSES, &o->num_classes_subset);
    if (IS("--val")) return cli_int(k, v, 0, INT_MAX, &o->val_count);
    if (IS("--augment")) return cli_onoff(k, v, &o->augment);
    if (IS("--unlabeled")) return cli_int(k, v, 0, INT_MAX, &o->unlabeled_count);
    if (IS("--unlabeled-data")) return cli_path(k, v, &o->unlabeled_path);
    if (IS("--teacher")) return cli_path(k, v, &o->teacher);
    if (IS("--model")) return cli_choice(k, v, models, &o->model);
    if (IS("--init-from")) return cli_path(k, v, &o->init_from);
    if (IS("--freeze")) return cli_int(k, v, 0, INT_MAX, &o->freeze);
    if (IS("--attack")) return cli_choice(k, v, attacks, &o->attack);
    if (IS("--eps")) return cli_float(k, v, 0, 1e6, 0, &o->eps);
    if (IS("--alpha")) return cli_float(k, v, 0, 1e6, 0, &o->alpha);
    if (IS("--steps")) return cli_int(k, v, 0, 100000, &o->steps);
    if (IS("--lambda")) return cli_float(k, v, 0, 1e6, 0, &o->lambda);
    if (IS("--beta")) return cli_float(k, v, 0, 1e6, 0, &o->beta);
    if (IS("--smooth-sigma")) return cli_float(k, v, 0, 1e6, 0, &o->smooth_sigma);
    if (IS("--noise-copies")) return cli_int(k, v, 1, 1024, &o->noise_copies);
    if (IS("--optimizer")) return cli_choice(k, v, optimizers, &o->optimizer);
    if (IS("--lalr")) return cli_onoff(k, v, &o->lalr);
    if (IS("--c-l")) return cli_float(k, v, 0, 1e30, 0, &o->c_l);
    if (IS("--c-u")) return cli_float(k, v, 0, 1e30, 0, &o->c_u);
    if (IS("--lr")) return cli_float(k, v, 0, 1e6, 0, &o->lr);
    if (IS("--head-lr")) return cli_float(k, v, 0, 1e6, 0, &o->head_lr);
    if (IS("--momentum")) return cli_float(k, v, 0, 0.999999, 0, &o->momentum);
    if (IS("--beta2")) return cli_float(k, v, 0, 0.999999, 0, &o->beta2);
    if (IS("--adam-eps")) return cli_float(k, v, 0, 1, 1, &o->adam_eps);
    if (IS("--bias-correction")) return cli_onoff(k, v, &o->bias_correction);
    if (IS("--weight-decay")) return cli_float(k, v, 0, 1e6, 0, &o->weight_decay);
    if (IS("--schedule")) return cli_choice(k, v, schedules, &o->schedule);
    if (IS("--warmup-epochs")) return cli_float(k, v, 0, 1e6, 0, &o->warmup_epochs);
    if (IS("--milestones")) return parse_milestones(k, v, o);
    if (IS("--gamma")) return cli_float(k, v, 0, 1e6, 0, &o->gamma);
    if (IS("--lr-scaling")) return cli_choice(k, v, scalings, &o->lr_scaling);
    if (IS("--ref-batch")) return cli_int(k, v, 1, INT_MAX, &o->ref_batch);
    if (IS("--baseline")) return cli_choice(k, v, baselines, &o->baseline);
    if (IS("--batch")) return cli_int(k, v, 1, 1 << 20, &o->batch);
    if (IS("--epochs")) return cli_int(k, v, 1, 1000000, &o->epochs);
    if (IS("--bits")) return cli_int(k, v, 2, 32, &o->bits);
    if (IS("--quant-mode")) return cli_choice(k, v, qmodes, &o->quant_mode);
    if (IS("--bucket")) return cli_int(k, v, 1, 1 << 24, &o->bucket);
    if (IS("--comm-timeout")) return cli_float(k, v, 1e-3, 1e7, 0, &o->comm_timeout);
    if (IS("--seed")) {
        int32_t s;
        int r = cli_int(k, v, 0, INT_MAX, &s);
        o->seed = (uint64_t)s;
        return r;
    }
    if (IS("--threads")) return cli_int(k, v, 0, 4096, &o->threads);
    if (IS("--device")) return cli_choice(k, v, devices, &o->device);
    if (IS("--precision")) return cli_choice(k, v, precisions, &o->precision);
    if (IS("--channels-last")) return cli_choice(k, v, layouts, &o->channels_last);
    if (IS("--tune-conv")) return cli_onoff(k, v, &o->tune_conv);
    if (IS("--deterministic")) return cli_onoff(k, v, &o->deterministic);
    if (IS("--cuda-graphs")) return cli_onoff(k, v, &o->cuda_graphs);
    if (IS("--overlap")) return cli_onoff(k, v, &o->overlap);
    if (IS("--comm")) return cli_choice(k, v, comms, &o->comm);
    if (IS("--step-graph")) return cli_onoff(k, v, &o->step_graph);
    if (IS("--checkpoint-dir")) return cli_path(k, v, &o->checkpoint_dir);
    if (IS("--stop-after")) return cli_int(k, v, 1, INT_MAX, &o->stop_after);
    if (IS("--eval-every")) return cli_int(k, v, 0, INT_MAX, &o->eval_every);
    if (IS("--eval-count")) return cli_int(k, v, 0, INT_MAX, &o->eval_count);
    if (IS("--eval-steps")) return cli_int(k, v, 0, 100000, &o->eval_steps);
    if (IS("--metrics")) return cli_path(k, v, &o->metrics);
    if (IS("--progress")) return cli_choice(k, v, progresses, &o->progress);
#undef IS
    return cli_bad(k, NULL, "unknown option");
}

/* lars and lamb are LALR over momentum and AdamW; lamb also takes the paper's
 * Adam settings (no bias correction, eps 1e-6) unless they are given. */
static int finish_optimizer(train_options *o)
{
    int lamb = strcmp(o->optimizer, "lamb") == 0, lars = strcmp(o->optimizer, "lars") == 0;
    if ((lamb || lars) && o->lalr == 0)
        return cli_bad("--lalr", "off", lamb ? "lamb is adamw with LALR (use --optimizer adamw)"
                                             : "lars is momentum with LALR (use --optimizer "
                                               "momentum)");
    if (o->lalr < 0)
        o->lalr = lamb || lars;
    if (o->bias_correction < 0)
        o->bias_correction = !lamb;
    if (o->adam_eps == 0)
        o->adam_eps = lamb ? 1e-6f : 1e-8f;
    return 0;
}

/* Checks between options, and what --baseline lsgd implies. */
static int finish(train_options *o)
{
    if (o->bits > 16 && o->bits != 32)
        return cli_bad("--bits", NULL, "must be 2..16, or 32 for no quantization");
    if (o->c_l > o->c_u)
        return cli_bad("--c-l", NULL, "must not exceed --c-u");
    if (o->resume && !o->checkpoint_dir)
        return cli_bad("--resume", NULL, "needs --checkpoint-dir");
    if (o->keep_best && (!o->checkpoint_dir || o->val_count == 0))
        return cli_bad("--keep-best", NULL, "needs --checkpoint-dir and --val N");
    if ((o->unlabeled_count || o->unlabeled_path) && !o->teacher)
        return cli_bad(o->unlabeled_count ? "--unlabeled" : "--unlabeled-data", NULL,
                   "needs --teacher CKPT for the pseudo-labels");
    if (o->teacher && !o->unlabeled_count && !o->unlabeled_path)
        return cli_bad("--teacher", NULL,
                       "labels nothing without --unlabeled N or --unlabeled-data F");
    if (o->teacher && o->val_count)
        return cli_bad("--val", NULL, "cannot be combined with pseudo-labeled data (the held-out "
                   "images would be pseudo-labeled ones)");
    if (o->smooth_sigma > 0 && (strcmp(o->attack, "fgsm") == 0 ||
                                strcmp(o->attack, "trades") == 0 || o->lambda > 0))
        return cli_bad("--smooth-sigma", NULL, "works with --attack pgd (SmoothAdv) or none "
                   "(Gaussian augmentation), without --lambda");
    if (o->baseline) { /* Goyal et al.: linear scaling with warm-up, plain momentum SGD */
        o->optimizer = "momentum";
        o->lalr = 0;
        o->lr_scaling = "linear";
        if (o->warmup_epochs == 0)
            o->warmup_epochs = 5 < o->epochs ? 5 : o->epochs / 2.0f;
    }
    if (finish_optimizer(o))
        return -1;
    if (o->step_graph && (strcmp(o->device, "cuda") != 0 || o->smooth_sigma > 0))
        return cli_bad("--step-graph", NULL, "needs --device cuda, without --smooth-sigma (the "
                       "noise copies cannot be recorded yet)");
    if (strcmp(o->precision, "tf32") == 0 && strcmp(o->device, "cuda") != 0)
        return cli_bad("--precision", "tf32", "needs --device cuda (the CPU computes in fp32)");
    if (strcmp(o->comm, "nccl") == 0 && strcmp(o->device, "cuda") != 0)
        return cli_bad("--comm", "nccl", "needs --device cuda (NCCL moves GPU memory)");
    if (o->new_head && !o->init_from)
        return cli_bad("--new-head", NULL, "needs --init-from CKPT");
    if (o->num_classes_subset == 1)
        return cli_bad("--classes", NULL, "needs at least 2 classes (one class leaves nothing "
                       "to learn: every accuracy is 1)");
    if (o->head_lr > 0 && o->lr == 0)
        return cli_bad("--head-lr", NULL, "needs --lr > 0 (the classifier's rate scales the "
                       "base rate); to train the classifier alone use --freeze 1");
    if (o->head_lr < 0)
        o->head_lr = o->lr;
    if (o->num_milestones == 0 && strcmp(o->schedule, "piecewise") == 0) {
        /* after the warm-up, or a short run would decay before it peaks */
        float w = o->warmup_epochs, span = fmaxf((float)o->epochs - w, 0.0f);
        o->milestones[0] = w + 0.5f * span;
        o->milestones[1] = w + 0.75f * span;
        o->num_milestones = 2;
    }
    return 0;
}

static int parse_value(void *opts, const char *opt, const char *v)
{
    return parse_one(opts, opt, v);
}

int train_options_parse(train_options *o, int argc, char **argv)
{
    cli_set_program("dat-train");
    defaults(o);
    const cli_flag flags[] = {{"--resume", &o->resume},
                              {"--keep-best", &o->keep_best},
                              {"--new-head", &o->new_head},
                              {NULL, NULL}};
    int rc = cli_parse(argc, argv, usage, flags, parse_value, o);
    return rc != 0 ? rc : finish(o);
}

/* The milestones given as a JSON list's items (none for the default's, which
 * follow --epochs, the option a resume may change). */
static void milestones_text(const train_options *o, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int32_t k = 0; o->milestones_given && k < o->num_milestones && n < size; ++k)
        n += (size_t)snprintf(buf + n, size - n, "%s%g", k ? "," : "", (double)o->milestones[k]);
}

int train_options_json(const train_options *o, int ranks, int threads, char *buf, size_t size)
{
    char classes[CLI_CLASSES_TEXT], milestones[MAX_MILESTONES * 16];
    cli_classes_text(o->classes, o->num_classes_subset, classes);
    milestones_text(o, milestones, sizeof milestones);
    int n = snprintf(
        buf, size,
        "{\"data_format\":\"%s\",\"model\":\"%s\",\"attack\":\"%s\",\"eps\":%g,\"alpha\":%g,"
        "\"steps\":%d,\"lambda\":%g,\"beta\":%g,\"smooth_sigma\":%g,\"noise_copies\":%d,"
        "\"optimizer\":\"%s\",\"lalr\":%d,\"c_l\":%g,\"c_u\":%g,\"lr\":%g,\"head_lr\":%g,"
        "\"momentum\":%g,\"beta2\":%g,\"adam_eps\":%g,\"bias_correction\":%d,"
        "\"weight_decay\":%g,\"schedule\":\"%s\",\"warmup_epochs\":%g,"
        "\"milestones\":[%s],\"gamma\":%g,\"lr_scaling\":\"%s\",\"ref_batch\":%d,"
        "\"baseline\":\"%s\",\"batch\":%d,"
        "\"epochs\":%d,\"bits\":%d,\"quant_mode\":\"%s\",\"bucket\":%d,\"seed\":%llu,"
        "\"train_subset\":%d,\"val\":%d,\"classes\":[%s],\"unlabeled\":%d,\"augment\":%d,"
        "\"freeze\":%d,\"new_head\":%d,\"device\":\"%s\",\"precision\":\"%s\","
        "\"channels_last\":\"%s\",\"tune_conv\":%d,\"deterministic\":%d,\"eval_steps\":%d,"
        "\"eval_count\":%d,\"threads\":%d,\"ranks\":%d}",
        o->data_format, o->model, o->attack, (double)o->eps, (double)o->alpha, (int)o->steps,
        (double)o->lambda, (double)o->beta, (double)o->smooth_sigma, (int)o->noise_copies,
        o->optimizer, o->lalr, (double)o->c_l, (double)o->c_u, (double)o->lr,
        (double)o->head_lr, (double)o->momentum, (double)o->beta2, (double)o->adam_eps,
        o->bias_correction, (double)o->weight_decay, o->schedule,
        (double)o->warmup_epochs, milestones, (double)o->gamma, o->lr_scaling, (int)o->ref_batch,
        o->baseline ? o->baseline : "", (int)o->batch, (int)o->epochs, (int)o->bits,
        o->quant_mode, (int)o->bucket, (unsigned long long)o->seed, (int)o->train_subset,
        (int)o->val_count, classes, (int)o->unlabeled_count, o->augment, (int)o->freeze,
        o->new_head, o->device, o->precision, o->channels_last, o->tune_conv, o->deterministic,
        (int)o->eval_steps, (int)o->eval_count, threads, ranks);
    return n > 0 && (size_t)n < size ? 0 : -1;
}
