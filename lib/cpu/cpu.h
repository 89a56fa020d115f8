/* Helpers shared by the CPU backend's source files. */
#ifndef LIBDAT_CPU_CPU_H
#define LIBDAT_CPU_CPU_H

#include <stddef.h>

#include "../core/ctx.h"

/* Threads to use for `work` elements: 1 for small work, else the context's count. */
int dat_cpu_threads(const dat_ctx *ctx, size_t work);

#endif
