/* Helpers shared by the CPU backend's source files. */
#ifndef LIBDAT_CPU_CPU_H
#define LIBDAT_CPU_CPU_H

#include <stddef.h>

#include "../core/ctx.h"

/* Threads to use for `work` elements: 1 for small work, else the context's count. */
int dat_cpu_threads(const dat_ctx *ctx, size_t work);
/* Attack steps (ops_attack.c); semantics in lib/core/backend.h. */
dat_status dat_cpu_attack_linf_step(dat_ctx *ctx, size_t n, float *x_adv, const float *g,
                                    const float *x0, float alpha, float eps, float lo, float hi);
dat_status dat_cpu_attack_l2_step(dat_ctx *ctx, int n, size_t d, float *x_adv, const float *g,
                                  const float *x0, float alpha, float eps, float lo, float hi);
dat_status dat_cpu_rows_renorm(dat_ctx *ctx, int n, size_t d, float *x, const float *norms);
dat_status dat_cpu_minmax(dat_ctx *ctx, size_t n, const float *x, float *lo, float *hi);

#endif
