/* Smooth-AT (Salman et al. 2019) in dat-train: the smoothed l2 attack and the
 * Gaussian noise copies each training image is replaced by. */
#ifndef DAT_TRAIN_SMOOTH_H
#define DAT_TRAIN_SMOOTH_H

#include "run.h"

/* With --smooth-sigma S > 0: --attack pgd becomes SmoothAdv's l2 PGD on the
 * soft smoothed classifier (--noise-copies samples, radius --eps), and the
 * loss is taken on N Gaussian copies of every (adversarial) image; with
 * --attack none this is Gaussian data augmentation (Cohen et al. 2019). */
int smooth_setup(run *r);
void smooth_free(run *r);

#endif
