/* What every CUDA source of the backend shares: the per-context state and
 * the translation of CUDA errors into statuses with messages. */
#ifndef LIBDAT_KERNELS_CUDA_COMMON_H
#define LIBDAT_KERNELS_CUDA_COMMON_H

#include <cuda_runtime.h>

extern "C" {
#include "../lib/core/backend.h"
#include "../lib/core/ctx.h"
#include "../lib/core/error.h"
}

struct dat_cuda_state {
    int device;
    cudaStream_t stream; /* compute stream: every op of the context is queued here */
};

static inline dat_cuda_state *dat_cuda(dat_ctx *ctx)
{
    return (dat_cuda_state *)ctx->backend_state;
}

/* Maps a CUDA error to a status and records "func: what: CUDA message". */
static inline dat_status dat_cuda_error(cudaError_t err, const char *func, const char *what)
{
    dat_status s = err == cudaErrorMemoryAllocation ? DAT_ERR_OUT_OF_MEMORY
                   : (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver)
                       ? DAT_ERR_NO_DEVICE
                       : DAT_ERR_CUDA;
    return dat_error(s, func, "%s: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
}

#define DAT_CUDA_TRY(call)                                          \
    do {                                                            \
        cudaError_t dat_cu_e_ = (call);                             \
        if (dat_cu_e_ != cudaSuccess)                               \
            return dat_cuda_error(dat_cu_e_, __func__, #call);      \
    } while (0)

/* Checks that the last kernel launch was accepted. */
#define DAT_CUDA_CHECK_LAUNCH(name) DAT_CUDA_TRY(cudaGetLastError())

/* Grid size for n work items at `threads` per block, capped for grid-stride loops. */
static inline unsigned dat_cuda_grid(size_t n, unsigned threads)
{
    size_t g = (n + threads - 1) / threads;
    if (g == 0)
        g = 1;
    return g > 65535u * 32u ? 65535u * 32u : (unsigned)g;
}

#endif
