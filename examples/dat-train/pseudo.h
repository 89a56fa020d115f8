/* Unlabeled training images labeled by a teacher model (--unlabeled, --unlabeled-data). */
#ifndef DAT_TRAIN_PSEUDO_H
#define DAT_TRAIN_PSEUDO_H

#include "run.h"

/* Replaces r->train (opened with `train`) by the same images, the last
 * --unlabeled of them and those of --unlabeled-data labeled by --teacher.
 * Returns 0, or 1 after printing why not. */
int pseudo_label_data(run *r, dat_dataset_options *train);

#endif
