/* Everything one dat-eval run holds: handles, per-sample results, counts. */
#ifndef DAT_EVAL_EVAL_H
#define DAT_EVAL_EVAL_H

#include <stdio.h>

#include <libdat/dat.h>

#include "options.h"

typedef struct evaluation {
    eval_options o;
    dat_ctx *ctx;
    dat_dataset *ds;
    dat_model *model;
    dat_attack *pgd;
    int64_t total;           /* images evaluated */
    int32_t classes;
    /* per-sample results, `total` each */
    int32_t *label, *clean_pred, *aa_outcome, *cert_pred;
    unsigned char *pgd_robust;
    float *cert_radius;
    /* totals */
    int64_t clean, pgd_count, aa_count;
    double seconds[4];       /* ta, pgd, aa, certify */
} evaluation;

/* Writes the result as one JSON object (and a newline) to f. */
void write_json(FILE *f, const evaluation *e);

#endif
