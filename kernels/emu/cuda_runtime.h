/*
 * The part of the CUDA runtime that libdat's kernels use, emulated on the
 * CPU (meson option gpu_emulation; docs/building.md). The kernels in kernels/
 * compile unchanged with a C++ compiler against this header once their
 * `k<<<grid, block, shared, stream>>>(args)` launches are rewritten into
 * dat_emu::make_launch calls (unchevron.py).
 *
 * What it is for: running the CUDA backend's own code paths (indexing,
 * formats, reductions, descriptors, graphs) in every test run on machines
 * without a GPU, against the CPU backend. What it is not: a model of the GPU's
 * timing, its memory model or its floating-point contraction. Blocks run one
 * after another; a block's threads are fibers that run until they reach a
 * barrier (__syncthreads, or a warp's shuffle or ballot), so a barrier that
 * not every thread reaches is reported as a deadlock.
 */
#ifndef LIBDAT_KERNELS_EMU_CUDA_RUNTIME_H
#define LIBDAT_KERNELS_EMU_CUDA_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <type_traits>

#define DAT_CUDA_EMULATED 1

/* ---- host API ---- */

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureWrongThread = 908,
    cudaErrorIllegalState = 401,
    cudaErrorLaunchFailure = 719,
} cudaError_t;

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};

#define cudaStreamDefault 0x0
#define cudaStreamNonBlocking 0x1
#define cudaEventDefault 0x0
#define cudaEventDisableTiming 0x2

const char *cudaGetErrorString(cudaError_t err);
const char *cudaGetErrorName(cudaError_t err);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaDeviceSynchronize(void);

cudaError_t cudaMalloc(void **ptr, size_t bytes);
/* The runtime's C++ overload for typed pointers. */
template <typename T> inline cudaError_t cudaMalloc(T **ptr, size_t bytes)
{
    return cudaMalloc((void **)ptr, bytes);
}
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream);

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags);

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

/* ---- device side ---- */

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
/* Blocks run one at a time on one thread, so a function's statics are the
 * block's shared memory. */
#define __shared__ static

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace dat_emu {

extern dim3 grid_dim, block_dim, block_idx;
const dim3 &thread_idx(void);

/* The fiber's rendezvous with its warp (32 consecutive linear thread indices):
 * exchange() publishes 8 bytes and returns what lane `src` published (its own
 * where src is outside the warp), ballot() the warp's predicate bits. */
uint64_t exchange(uint64_t mine, int src);
unsigned ballot(int pred);
int lane(void);

void block_barrier(void);

/* A GPU faults (cudaErrorMisalignedAddress) on an access of `bytes` at an
 * address that is not a multiple of it; the emulation stops the process with
 * the kernel's coordinates, as it does on a deadlock. */
void check_aligned(const void *p, size_t bytes);

/* Where a piece of queued work comes from, for the launch census
 * (DAT_EMU_LAUNCHES, census.cpp); every string is static. A kernel launch:
 * its source file and line, the kernel expression and the launching
 * function's __PRETTY_FUNCTION__ (which names a template's arguments); a
 * library call: the API as `file`, the call as `what`. */
struct site {
    const char *file;
    int line;
    const char *what;
    const char *func;
};

/* A launch, make_launch(kernel, grid, block, shared, stream, from)(args...)
 * (the rewrite of kernel<<<grid, block, shared, stream>>>(args...)): copies
 * the arguments, as CUDA does, and queues (or records) the grid's run. */
template <typename K> struct launch {
    K kernel;
    dim3 grid, block;
    cudaStream_t stream;
    site from;

    template <typename... A> void operator()(A... args) const;
};

/* Queues (or records, on a captured stream) a run of `thread` in every thread
 * of every block of the grid: the blocks one after another on the thread that
 * runs the queue, a block's threads switching at their barrier calls. */
cudaError_t queue_grid(cudaStream_t s, dim3 grid, dim3 block, std::function<void()> thread,
                       const site &from);

template <typename K>
template <typename... A>
void launch<K>::operator()(A... args) const
{
    queue_grid(stream, grid, block, [k = kernel, args...]() { k(args...); }, from);
}

template <typename K>
launch<K> make_launch(K kernel, dim3 grid, dim3 block, size_t shared, cudaStream_t stream,
                      site from)
{
    (void)shared;
    return launch<K>{kernel, grid, block, stream, from};
}

} // namespace dat_emu

#define threadIdx (dat_emu::thread_idx())
#define blockIdx (dat_emu::block_idx)
#define blockDim (dat_emu::block_dim)
#define gridDim (dat_emu::grid_dim)
#define warpSize 32

inline void __syncthreads(void) { dat_emu::block_barrier(); }

template <typename T> inline T dat_emu_shfl(T v, int src)
{
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    uint64_t bits = 0, got;
    memcpy(&bits, &v, sizeof v);
    got = dat_emu::exchange(bits, src);
    T out;
    memcpy(&out, &got, sizeof out);
    return out;
}

/* Lanes outside the caller's width-wide segment read their own value. */
template <typename T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32)
{
    (void)mask;
    int l = dat_emu::lane(), src = l ^ lane_mask;
    return dat_emu_shfl(v, src / width == l / width ? src : l);
}

template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    (void)mask;
    int l = dat_emu::lane();
    int src = l % width + (int)delta < width ? l + (int)delta : l;
    return dat_emu_shfl(v, src);
}

inline unsigned __ballot_sync(unsigned mask, int pred) { return dat_emu::ballot(pred) & mask; }

/* CUDA's min and max of any two arithmetic types, in the global namespace. */
template <typename A, typename B> inline typename std::common_type<A, B>::type min(A a, B b)
{
    return a < b ? a : b;
}
template <typename A, typename B> inline typename std::common_type<A, B>::type max(A a, B b)
{
    return a < b ? b : a;
}

/* One thread runs at a time: atomics are plain read-modify-writes. */
template <typename T> inline T atomicMin(T *p, T v)
{
    T old = *p;
    *p = v < old ? v : old;
    return old;
}
template <typename T> inline T atomicMax(T *p, T v)
{
    T old = *p;
    *p = v > old ? v : old;
    return old;
}
template <typename T> inline T atomicAdd(T *p, T v)
{
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T> inline T atomicOr(T *p, T v)
{
    T old = *p;
    *p = old | v;
    return old;
}

/* Correctly rounded arithmetic: what the host computes without contraction
 * (the emulated sources build with -ffp-contract=off). */
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dsqrt_rn(double a) { return sqrt(a); }
inline float __double2float_rn(double a) { return (float)a; }

#endif
