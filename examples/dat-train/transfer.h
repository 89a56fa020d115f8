/* Starting from a pretrained model: --init-from, --freeze, --head-lr. */
#ifndef DAT_TRAIN_TRANSFER_H
#define DAT_TRAIN_TRANSFER_H

#include "run.h"

/* Loads --init-from into r->model (a classifier of another size keeps its
 * fresh initialization; the kept and re-initialized tensors are printed by
 * rank 0) and sets the learning-rate scales of --freeze and --head-lr on
 * r->optim. Returns 0, or 1 after printing why not. */
int transfer_setup(run *r, int load);

#endif
