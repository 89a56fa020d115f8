/* dat-train's command line: every option, its default, and its parsing. */
#ifndef DAT_TRAIN_OPTIONS_H
#define DAT_TRAIN_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

enum { MAX_MILESTONES = 16, MAX_CLASSES = 1000 };

typedef struct train_options {
    /* data */
    const char *data_format;   /* idx | cifar10 | cifar100 | npy */
    const char *data_dir;
    const char *unlabeled_path; /* .npy images used without labels (pseudo-labelled) */
    const char *teacher;       /* checkpoint that labels the unlabeled data */
    int32_t unlabeled_count;   /* > 0: this many training images are used unlabeled */
    int32_t train_subset;      /* > 0: only the first N training images */
    int32_t val_count;         /* held-out validation images (early stopping) */
    int32_t classes[MAX_CLASSES];
    int32_t num_classes_subset; /* 0: all classes */
    int32_t num_classes;       /* of the data; 0: idx 10, CIFAR its own, npy largest label + 1 */
    int augment;               /* random crop + flip (CIFAR) */
    /* model */
    const char *model;
    const char *init_from;     /* checkpoint to start from (transfer) */
    int32_t freeze;            /* > 0: train only the last k layers */
    int new_head;              /* re-initialize the classifier whatever its size */
    /* attack */
    const char *attack;        /* pgd | fgsm | trades | none */
    float eps, alpha, lambda, beta;
    int32_t steps;
    float smooth_sigma;        /* > 0: Smooth-AT with Gaussian copies */
    int32_t noise_copies;
    /* optimizer */
    const char *optimizer;     /* sgd | momentum | nesterov | adam | adamw */
    const char *baseline;      /* NULL or "lsgd" */
    int lalr;
    float lr, head_lr, momentum, weight_decay, c_l, c_u;
    float beta2, adam_eps;     /* Adam's */
    int bias_correction;       /* Adam's: 1 on, 0 off */
    const char *schedule;      /* const | piecewise | cosine | onecycle */
    float warmup_epochs, gamma;
    float milestones[MAX_MILESTONES];
    int32_t num_milestones;
    int milestones_given;      /* 0: the default's, which follow --epochs */
    const char *lr_scaling;    /* none | linear | sqrt */
    int32_t ref_batch;
    /* distribution and quantization */
    int32_t batch;             /* per rank */
    int32_t epochs;
    int32_t bits;              /* 32 = no quantization */
    const char *quant_mode;    /* one-sided | two-sided */
    int32_t bucket;
    float comm_timeout;        /* seconds a rank waits for its peers */
    const char *comm;          /* auto | mpi | nccl: who moves the gradients between ranks */
    /* run */
    uint64_t seed;
    int32_t threads;
    const char *device;        /* cpu | cuda */
    const char *precision;     /* fp32 | tf32 (CUDA) | bf16 */
    const char *channels_last; /* auto | on | off */
    int tune_conv;             /* time cuDNN's convolution algorithms (CUDA) */
    int deterministic;         /* only deterministic cuDNN algorithms (CUDA) */
    int cuda_graphs;           /* replay the attack's steps from a CUDA graph */
    int overlap;               /* all-reduce gradient buckets during the backward pass */
    int step_graph;            /* record the training step once, replay it per batch */
    const char *checkpoint_dir;
    int resume;
    int32_t stop_after;        /* > 0: stop after this epoch, as if interrupted */
    int keep_best;
    int32_t eval_every;        /* epochs between evaluations; 0: only at the end */
    int32_t eval_count;        /* test images evaluated (0: all) */
    int32_t eval_steps;        /* PGD-k of the robust accuracy */
    const char *metrics;       /* JSON-lines file */
    const char *progress;      /* auto | bar | lines | none */
} train_options;

/* Fills defaults, then parses argv. Returns 0 to run, 1 after --help (exit
 * 0), -1 on a bad option (the message is printed). */
int train_options_parse(train_options *o, int argc, char **argv);

/* The options that decide a run's bits, with the number of ranks and the
 * threads the context resolved, as one JSON object (stored in checkpoints;
 * --resume compares it). Returns 0, or -1 if it does not fit in size bytes. */
int train_options_json(const train_options *o, int ranks, int threads, char *buf, size_t size);

#endif
