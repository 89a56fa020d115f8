/* What every CUDA source of the backend shares: the per-context state, the
 * translation of CUDA / cuBLAS / cuDNN errors into statuses with messages, the
 * workspace, and block / warp reductions. */
#ifndef LIBDAT_KERNELS_CUDA_COMMON_H
#define LIBDAT_KERNELS_CUDA_COMMON_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "../lib/core/bf16.h"
#include "../lib/core/fast_div.h"

extern "C" {
#include "../lib/core/backend.h"
#include "../lib/core/capture.h"
#include "../lib/core/ctx.h"
#include "../lib/core/error.h"
}

/* The convolution algorithm cuDNN's heuristics chose for one shape and direction. */
enum dat_cuda_conv_dir { DAT_CONV_FWD = 0, DAT_CONV_BWD_DATA = 1, DAT_CONV_BWD_FILTER = 2 };

struct dat_cuda_conv_plan {
    int dir;                 /* dat_cuda_conv_dir */
    dat_conv_desc shape;     /* the input fields are the key; h_out / w_out are derived */
    int algo;                /* a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t; -1: cuDNN
                                has none for this format, the op runs in float32 copies */
    int math;                /* the cudnnMathType_t it runs with */
    size_t workspace_bytes;  /* what that algorithm needs */
};

struct dat_cuda_state {
    int device;
    cudaStream_t stream; /* compute stream: every op of the context is queued here */
    cublasHandle_t blas; /* bound to `stream`, full fp32 math (no TF32) */
    cudnnHandle_t dnn;   /* bound to `stream` */
    /* Descriptors of the current convolution, set before each cuDNN call. */
    cudnnTensorDescriptor_t x_desc, y_desc;
    cudnnFilterDescriptor_t w_desc;
    cudnnConvolutionDescriptor_t conv_desc;
    /* Scratch shared by the ops: grows to the largest request, then is reused. */
    void *workspace;
    size_t workspace_bytes;
    uint64_t workspace_moves; /* times the workspace was reallocated (graphs go stale) */
    /* A few bytes for results that go back to the host (flags, min / max). */
    void *scalars;
    /* Float32 NCHW copies of a convolution's operands where cuDNN has no
     * algorithm for their format (ops_conv.cu); apart from the workspace, which
     * the float32 convolution uses. Grows like it (a move counts in
     * workspace_moves). */
    void *f32_copies;
    size_t f32_copies_bytes;
    /* Convolution algorithms chosen so far, one per shape and direction. */
    dat_cuda_conv_plan *plans;
    size_t n_plans, cap_plans;
    int capturing; /* between capture_begin and capture_end (graph.cu) */
    /* Buffers freed while capturing (cudaFree would spoil the capture): freed
     * when it ends, which then fails, as the graph might use them. */
    void **deferred_frees;
    size_t n_deferred_frees, cap_deferred_frees;
};

static inline dat_cuda_state *dat_cuda(dat_ctx *ctx)
{
    return (dat_cuda_state *)ctx->backend_state;
}

/* Whether the stream is being captured: a step's recording (dat_capturing) or
 * a capture without one (an attack's steps, lib/attack/graph.c). What
 * allocates, synchronizes or reads back is refused then, with a message,
 * before CUDA sees it and invalidates the capture. */
static inline int dat_cuda_capturing(dat_ctx *ctx)
{
    return dat_capturing(ctx) || dat_cuda(ctx)->capturing;
}

/* Frees the buffers freed during the capture that just ended (graph.cu);
 * returns how many there were. */
size_t dat_cuda_release_deferred(dat_cuda_state *st);

/* Maps a CUDA error to a status and records "func: what: CUDA message". */
static inline dat_status dat_cuda_error(cudaError_t err, const char *func, const char *what)
{
    /* A non-sticky error (a failed allocation) stays the "last error" and would
     * be reported again by the next launch check. */
    (void)cudaGetLastError();
    dat_status s = err == cudaErrorMemoryAllocation ? DAT_ERR_OUT_OF_MEMORY
                   : (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver)
                       ? DAT_ERR_NO_DEVICE
                       : DAT_ERR_CUDA;
    return dat_error(s, func, "%s: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
}

static inline dat_status dat_cublas_error(cublasStatus_t err, const char *func, const char *what)
{
    dat_status s = err == CUBLAS_STATUS_ALLOC_FAILED ? DAT_ERR_OUT_OF_MEMORY
                   : err == CUBLAS_STATUS_NOT_SUPPORTED ? DAT_ERR_UNSUPPORTED
                                                        : DAT_ERR_CUDA;
    return dat_error(s, func, "%s: cuBLAS %s (%s)", what, cublasGetStatusString(err),
                     cublasGetStatusName(err));
}

static inline dat_status dat_cudnn_error(cudnnStatus_t err, const char *func, const char *what)
{
    dat_status s = (err == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
                    err == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED)
                       ? DAT_ERR_OUT_OF_MEMORY
                   : CUDNN_STATUS_CATEGORY(err) == CUDNN_STATUS_NOT_SUPPORTED ? DAT_ERR_UNSUPPORTED
                                                                              : DAT_ERR_CUDA;
    char detail[256];
    detail[0] = '\0';
    cudnnGetLastErrorString(detail, sizeof detail);
    return dat_error(s, func, "%s: cuDNN %s (%d)%s%s", what, cudnnGetErrorString(err), (int)err,
                     detail[0] ? ": " : "", detail);
}

#define DAT_CUDA_TRY(call)                                          \
    do {                                                            \
        cudaError_t dat_cu_e_ = (call);                             \
        if (dat_cu_e_ != cudaSuccess)                               \
            return dat_cuda_error(dat_cu_e_, __func__, #call);      \
    } while (0)

#define DAT_CUBLAS_TRY(call)                                        \
    do {                                                            \
        cublasStatus_t dat_cb_e_ = (call);                          \
        if (dat_cb_e_ != CUBLAS_STATUS_SUCCESS)                     \
            return dat_cublas_error(dat_cb_e_, __func__, #call);    \
    } while (0)

#define DAT_CUDNN_TRY(call)                                         \
    do {                                                            \
        cudnnStatus_t dat_dnn_e_ = (call);                          \
        if (dat_dnn_e_ != CUDNN_STATUS_SUCCESS)                     \
            return dat_cudnn_error(dat_dnn_e_, __func__, #call);    \
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

/* A grid-stride loop: i takes every index below n across the whole grid. */
#define DAT_GRID_STRIDE(i, n)                                                \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);  \
         i += (size_t)gridDim.x * blockDim.x)

/* The channel (i / hw) % c of element i of an n x c x hw tensor: by
 * multiply-high (fast_div.h) where every index fits 31 bits, else by 64-bit
 * division, which costs more than the element's memory traffic. */
struct dat_channel_of {
    dat_fast_div hw, c;
    size_t hw64, c64;
    int wide;
    __device__ size_t operator()(size_t i) const
    {
        if (wide)
            return (i / hw64) % c64;
        uint32_t q = dat_fast_div_q(hw, (uint32_t)i);
        return q - dat_fast_div_q(c, q) * c.d;
    }
};

static inline dat_channel_of dat_channel_of_make(size_t total, int c, int hw)
{
    dat_channel_of k;
    k.hw64 = (size_t)hw;
    k.c64 = (size_t)c;
    k.wide = total >= ((size_t)1 << 31);
    /* A zero extent means no elements (the op returns before its launch), but
     * the divider is made first, and dat_fast_div_make(0) divides by zero. */
    k.hw = dat_fast_div_make(k.wide || hw < 1 ? 1u : (uint32_t)hw);
    k.c = dat_fast_div_make(k.wide || c < 1 ? 1u : (uint32_t)c);
    return k;
}

/* The channel of element i in activation format f: in NHWC it is i % c, which
 * is (i / 1) % c, so the NCHW functor serves with hw = 1. */
static inline dat_channel_of dat_channel_of_fmt(size_t total, int c, int hw, dat_act_fmt f)
{
    return dat_channel_of_make(total, c, (f & DAT_FMT_NHWC) ? 1 : hw);
}

/* ---- activation formats (lib/core/backend.h) ---- */

/* Kernels hold activations as float or as bfloat16 bits (uint16_t), load them
 * as float and round once when they store, with bf16.h's conversions: the
 * CPU reference's bits. */
__device__ inline float dat_ld(const float *p, size_t i)
{
    return p[i];
}

__device__ inline float dat_ld(const uint16_t *p, size_t i)
{
    return dat_bf16_bits_to_f32(p[i]);
}

__device__ inline void dat_st(float *p, size_t i, float v)
{
    p[i] = v;
}

__device__ inline void dat_st(uint16_t *p, size_t i, float v)
{
    p[i] = dat_f32_to_bf16_bits(v);
}

/* Returns fn(T()) with T the value type of format f, so one generic lambda
 * instantiates an op for both: [&](auto t) { using T = decltype(t); ... }. */
template <typename F>
static inline dat_status dat_fmt_dispatch(dat_act_fmt f, F &&fn)
{
    if (f & DAT_FMT_BF16)
        return fn(uint16_t());
    return fn(float());
}

/* Ops run on the context's device, whatever the calling thread last selected. */
static inline dat_status dat_cuda_use_device(dat_ctx *ctx)
{
    DAT_CUDA_TRY(cudaSetDevice(dat_cuda(ctx)->device));
    return DAT_OK;
}

/* At least `bytes` of device scratch (backend_cuda.cu), valid until the next
 * call; work queued earlier on the context's stream may still be reading the
 * previous buffer, so growing waits for the stream first. */
dat_status dat_cuda_workspace(dat_ctx *ctx, size_t bytes, void **ws);
/* The same for dat_cuda_state::f32_copies. */
dat_status dat_cuda_f32_copies(dat_ctx *ctx, size_t bytes, void **p);

/* Offsets of sub-buffers inside the workspace, aligned for any element type. */
static inline size_t dat_cuda_align(size_t bytes)
{
    return (bytes + 255) & ~(size_t)255;
}

/* ---- reductions (device) ---- */

#define DAT_WARP 32

template <typename T>
__device__ inline T dat_warp_sum(T v)
{
    for (int o = DAT_WARP / 2; o > 0; o /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T>
__device__ inline T dat_warp_max(T v)
{
    for (int o = DAT_WARP / 2; o > 0; o /= 2) {
        T u = __shfl_xor_sync(0xffffffffu, v, o);
        v = u > v ? u : v;
    }
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread
 * gets the result. Ends with a barrier, so it can be called back to back. */
template <typename T>
__device__ inline T dat_block_sum(T v)
{
    __shared__ T part[DAT_WARP];
    int lane = threadIdx.x % DAT_WARP, warp = threadIdx.x / DAT_WARP;
    int warps = blockDim.x / DAT_WARP;
    v = dat_warp_sum(v);
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    T s = lane < warps ? part[lane] : T(0);
    s = dat_warp_sum(s);
    __syncthreads();
    return s;
}

/* Per-channel sums over NHWC rows (n * hw rows of c values) read coalesced:
 * blocks of DAT_TILE_C x DAT_TILE_R threads, threadIdx.x walking DAT_TILE_C
 * consecutive channels of a row, threadIdx.y every DAT_TILE_R-th row. */
#define DAT_TILE_C 32
#define DAT_TILE_R 8

/* Sums each v[k] over threadIdx.y in a fixed order (the same bits every run);
 * threads with threadIdx.y == 0 get the totals of their column. Every thread
 * of the block must call it; it ends with a barrier, so it may be called again
 * (the shared buffer is then rewritten only after every read). */
template <int K>
__device__ inline void dat_column_sum(double (&v)[K])
{
    __shared__ double part[K][DAT_TILE_R][DAT_TILE_C];
    for (int k = 0; k < K; ++k)
        part[k][threadIdx.y][threadIdx.x] = v[k];
    __syncthreads();
    if (threadIdx.y == 0)
        for (int k = 0; k < K; ++k) {
            double s = 0;
            for (int r = 0; r < DAT_TILE_R; ++r)
                s += part[k][r][threadIdx.x];
            v[k] = s;
        }
    __syncthreads();
}

/* One channel's values of an NCHW tensor (n x c x hw) in the order j = n
 * hw-major, taken every `step` from j: value j is position p of sample i, and
 * both advance by the step without a division per value (a 64-bit one costs
 * more than the value's load). */
struct dat_nchw_walk {
    size_t i, p, di, dp, plane, c, ch;
    __device__ dat_nchw_walk(size_t j, size_t step, int c_, int hw, int ch_)
        : plane((size_t)hw), c((size_t)c_), ch((size_t)ch_)
    {
        i = j / plane;
        p = j - i * plane;
        di = step / plane;
        dp = step - di * plane;
    }
    /* The index of the current value; then moves to the next. */
    __device__ size_t next()
    {
        size_t at = (i * c + ch) * plane + p;
        i += di;
        p += dp;
        if (p >= plane) {
            p -= plane;
            ++i;
        }
        return at;
    }
};

/* A per-channel reduction's split: each block takes at least 2048 values of
 * its channel (NHWC: 64 rows of a tile of 32 channels), and a channel (tile)
 * is split over at most 512 blocks: enough blocks to fill a GPU even where
 * there are few channels (64 in preact_resnet18's first stage: 128 blocks were
 * half an H100's SMs, two warps each, in NHWC). Returns the blocks per channel
 * (tile) for `count` values (rows) per channel; *per: values (rows) per block. */
#define DAT_SPLIT_PER_BLOCK 2048
#define DAT_SPLIT_ROWS_PER_BLOCK 64
#define DAT_SPLIT_MAX 512

static inline int dat_channel_splits(size_t count, bool nhwc, size_t *per)
{
    size_t min_per = nhwc ? DAT_SPLIT_ROWS_PER_BLOCK : DAT_SPLIT_PER_BLOCK;
    size_t s = (count + min_per - 1) / min_per;
    int splits = s < 1 ? 1 : s > DAT_SPLIT_MAX ? DAT_SPLIT_MAX : (int)s;
    *per = (count + (size_t)splits - 1) / (size_t)splits;
    return splits;
}

/* Sums of channel ch over the `splits` blocks of a split reduction, whose
 * block s left its K sums at part[(ch splits + s) K + k], by the calling warp
 * (every lane gets them): lane l adds blocks l, l + 32, ... in order, then the
 * lanes meet in the shuffle tree, a fixed order (the same bits every run). A
 * warp per channel: one thread walking hundreds of block sums waits on each
 * load in turn. */
template <int K>
__device__ inline void dat_warp_combine(const double *part, int ch, int splits, double (&sum)[K])
{
    for (int k = 0; k < K; ++k)
        sum[k] = 0;
    for (int s = threadIdx.x % DAT_WARP; s < splits; s += DAT_WARP)
        for (int k = 0; k < K; ++k)
            sum[k] += part[((size_t)ch * (size_t)splits + (size_t)s) * K + k];
    for (int k = 0; k < K; ++k)
        sum[k] = dat_warp_sum(sum[k]);
}

/* Warps per block of a combining kernel, a warp per channel: the channel of
 * this thread's warp, and the kernel's blocks for c channels. */
#define DAT_COMBINE_WARPS 4
#define DAT_COMBINE_THREADS (DAT_COMBINE_WARPS * DAT_WARP)

__device__ inline int dat_combine_channel(void)
{
    return blockIdx.x * DAT_COMBINE_WARPS + threadIdx.x / DAT_WARP;
}

/* Whether this thread writes its warp's channel's results (lane 0). */
__device__ inline bool dat_combine_writer(void)
{
    return threadIdx.x % DAT_WARP == 0;
}

static inline unsigned dat_combine_blocks(int c)
{
    return (unsigned)((c + DAT_COMBINE_WARPS - 1) / DAT_COMBINE_WARPS);
}

#endif
