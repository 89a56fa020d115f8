/* Host time per backend op, for finding where a step's time goes. Asked for by
 * DAT_PROFILE_OPS=1 in the environment when a context is created; the table
 * goes to stderr when the context is destroyed. On the CPU backend an op's host
 * time is its run time; on CUDA it is what queuing it costs the host (kernel
 * launches, library calls), so a step whose wall time exceeds its GPU time by
 * about the ops' total is bound by the host. */
#ifndef LIBDAT_CORE_PROFILE_H
#define LIBDAT_CORE_PROFILE_H

#include "ctx.h"

/* Starts profiling ctx if the environment asks for it (from dat_ctx_create). */
void dat_profile_start(dat_ctx *ctx);

/* Prints ctx's table, if any, and frees it (from dat_ctx_destroy). */
void dat_profile_finish(dat_ctx *ctx);

#endif
