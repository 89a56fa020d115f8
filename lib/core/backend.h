/*
 * The backend interface: every numeric operation of libdat goes through one
 * table of function pointers, so the CPU reference and the CUDA backend are
 * interchangeable and can be compared op by op (tests/test_backend_ops.c).
 *
 * Pointers passed to an op are in the backend's memory (host memory for the
 * CPU, device memory for CUDA) unless the name says host. Ops may run
 * asynchronously; synchronize() waits for them. Every op returns a status
 * and sets the message on failure.
 */
#ifndef LIBDAT_CORE_BACKEND_H
#define LIBDAT_CORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "libdat/dat_ctx.h"

typedef struct dat_backend {
    const char *name;

    /* Life cycle: init() sets up ctx->backend_state (device, streams, library
     * handles); fini() releases it and must accept a partial init. */
    dat_status (*init)(dat_ctx *ctx);
    void (*fini)(dat_ctx *ctx);
    dat_status (*synchronize)(dat_ctx *ctx);

    /* Memory. alloc() returns zeroed memory of at least nbytes (nbytes may be 0). */
    dat_status (*alloc)(dat_ctx *ctx, size_t nbytes, void **ptr);
    void (*free)(dat_ctx *ctx, void *ptr);
    dat_status (*copy_from_host)(dat_ctx *ctx, void *dst, const void *host_src, size_t nbytes);
    dat_status (*copy_to_host)(dat_ctx *ctx, void *host_dst, const void *src, size_t nbytes);
    dat_status (*copy)(dat_ctx *ctx, void *dst, const void *src, size_t nbytes);

    /* Writes count copies of the elem_size-byte pattern (1, 2 or 4 bytes). */
    dat_status (*fill)(dat_ctx *ctx, void *dst, size_t count, const void *pattern,
                       size_t elem_size);

    /* Element-wise conversions; bfloat16 rounds to nearest even, NaN stays NaN. */
    dat_status (*f32_to_bf16)(dat_ctx *ctx, uint16_t *dst, const float *src, size_t n);
    dat_status (*bf16_to_f32)(dat_ctx *ctx, float *dst, const uint16_t *src, size_t n);

    /* Philox fills: dst[i] takes position offset + i of stream `stream` under
     * key `seed` (lib/core/philox.h defines the mapping). */
    dat_status (*rng_uniform)(dat_ctx *ctx, float *dst, size_t n, float low, float high,
                              uint64_t seed, uint64_t stream, uint64_t offset);
    dat_status (*rng_normal)(dat_ctx *ctx, float *dst, size_t n, float mean, float std,
                             uint64_t seed, uint64_t stream, uint64_t offset);
} dat_backend;

/* The CPU backend, always built. */
extern const dat_backend dat_backend_cpu;

#if DAT_HAVE_CUDA
/* The CUDA backend (kernels/), built when nvcc is found. */
extern const dat_backend dat_backend_cuda;
/* Number of CUDA devices, 0 without a driver or GPU; never fails. */
int dat_cuda_count_devices(void);
#endif

#endif
