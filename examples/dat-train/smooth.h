/* Smooth-AT (Salman et al. 2019) in dat-train: the smoothed l2 attack and the
 * Gaussian noise copies each training image is replaced by. */
#ifndef DAT_TRAIN_SMOOTH_H
#define DAT_TRAIN_SMOOTH_H

#include "run.h"

/* With --smooth-sigma S > 0: --attack pgd becomes SmoothAdv's l2 PGD on the
 * soft smoothed classifier (--noise-copies samples, radius --eps, starting at
 * x), and the loss is taken on N Gaussian copies of every adversarial image,
 * with the noise the attack saw (as SmoothAdv's training does); with
 * --attack none this is Gaussian data augmentation (Cohen et al. 2019). */
int smooth_setup(run *r);

/* The batch's noise copies into r->xn, r->yn: with an attack, of x_adv
 * (`input`) with the noise the attack drew at attack_step, the step its
 * perturbation of the batch ran at; without one, of x with noise keyed by the
 * optimizer's step. */
dat_status smooth_copies(run *r, const dat_tensor *input, uint64_t attack_step, int64_t step);
void smooth_free(run *r);

#endif
