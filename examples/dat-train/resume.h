/* --resume: continuing the run that wrote --checkpoint-dir's last checkpoint. */
#ifndef DAT_TRAIN_RESUME_H
#define DAT_TRAIN_RESUME_H

#include "run.h"

/* Loads <checkpoint-dir>/last.safetensors into r->model and r->optim (every
 * rank), with the attack's step, the epoch to start from and the best
 * validation RA. Refused, before any training, when the checkpoint's run had
 * other options than this one (only --epochs may differ: the continuation is
 * bit-exact) or is past --epochs. Returns 0, or 1 after printing why not. */
int resume(run *r);

#endif
