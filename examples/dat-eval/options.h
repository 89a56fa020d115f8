/* dat-eval's command line: every option, its default, and its parsing. */
#ifndef DAT_EVAL_OPTIONS_H
#define DAT_EVAL_OPTIONS_H

#include <stdint.h>

enum { MAX_RADII = 32, MAX_CLASSES = 1000 };

typedef struct eval_options {
    /* what */
    const char *checkpoint;     /* libdat checkpoint or PyTorch safetensors state_dict */
    const char *model;          /* preset */
    int ta, pgd, aa, certify;   /* evaluations chosen by --eval */
    /* data */
    const char *data_format;    /* idx | cifar10 | cifar100 | npy */
    const char *data_dir;       /* idx / cifar10 / cifar100 folder */
    const char *npy_images, *npy_labels;
    int32_t classes[MAX_CLASSES]; /* subset, class classes[i] relabeled i (dat-train's) */
    int32_t num_classes_subset; /* 0: all classes */
    int32_t count;              /* first N test images; 0 = all */
    int32_t batch;
    /* threat model */
    const char *norm;           /* linf | l2 */
    float eps;
    int32_t pgd_steps, pgd_restarts;
    /* AutoAttack */
    uint32_t attacks;           /* DAT_AA_BIT()s */
    int32_t apgd_steps, targets, fab_steps, square_queries;
    /* certification */
    float sigma;
    int32_t n0, n;
    float alpha;
    int32_t cert_batch;
    float radii[MAX_RADII];
    int32_t num_radii;
    /* run */
    uint64_t seed;
    int32_t threads;
    const char *device;         /* cpu | cuda */
    const char *precision;      /* fp32 | tf32 (CUDA) | bf16 */
    const char *channels_last;  /* auto | on | off */
    const char *json;           /* file for the JSON result; NULL: stdout only */
    int per_sample;             /* per-sample arrays in the JSON */
    const char *progress;       /* auto | bar | lines | none */
} eval_options;

/* Parses argv; 0 on success, 1 after --help (printed), -1 on an error (printed). */
int eval_options_parse(eval_options *o, int argc, char **argv);

#endif
