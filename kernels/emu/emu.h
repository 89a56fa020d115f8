/*
 * The emulator's own interface between its parts (runtime.cpp, device.cpp,
 * dnn.cpp, nccl.cpp); the kernels see only the CUDA-named headers beside it.
 *
 * Work is queued on streams as closures. Everything runs on the calling
 * thread, in issue order, which is one valid order of what CUDA would run;
 * while a stream is captured, its closures are recorded into the graph
 * instead and run at each cudaGraphLaunch.
 */
#ifndef LIBDAT_KERNELS_EMU_EMU_H
#define LIBDAT_KERNELS_EMU_EMU_H

#include <functional>

#include "cuda_runtime.h"

namespace dat_emu {

/* Runs op now, or records it when stream s is being captured; `from` names
 * it in the launch census (census.cpp). */
cudaError_t enqueue(cudaStream_t s, std::function<void()> op, const site &from);

/* op, counted under `from` each time it runs when the census is on. */
std::function<void()> counted(std::function<void()> op, const site &from);

/* A call that waits for the host (a synchronous copy, a stream sync): fails
 * with cudaErrorStreamCaptureUnsupported, and spoils the capture, while s (or,
 * for s == NULL, any stream) is being captured, as CUDA does. */
cudaError_t host_sync(cudaStream_t s);

/* Records err as the sticky "last error" (cudaGetLastError). */
cudaError_t fail(cudaError_t err);

} // namespace dat_emu

#endif
