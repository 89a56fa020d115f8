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

/* AutoAttack's target classes: --targets, at most the other classes of the model (4 for
 * a 5-class subset); the JSON reports this count, the one the attacks ran with. */
static inline int32_t eval_aa_targets(const evaluation *e)
{
    return e->o.targets < e->classes - 1 ? e->o.targets : e->classes - 1;
}

/* Prints "dat-eval: WHAT: STATUS: the library's message" and returns 1. */
int eval_fail(const char *what, dat_status s);

#define TRY(what, call)                    \
    do {                                   \
        dat_status s_ = (call);            \
        if (s_ != DAT_OK)                  \
            return eval_fail((what), s_);  \
    } while (0)

/* Creates the context, opens the test set and the model (with its checkpoint) and the PGD
 * attack; 0, or 1 after printing why (what was made is left in e, for its cleanup). */
int eval_setup(evaluation *e);

/* Writes the result as one JSON object (and a newline) to f. */
void write_json(FILE *f, const evaluation *e);

#endif
