/*
 * The element-wise map kernel of the CUDA backend: out[i] = f(i, in_0[i], ..,
 * in_{K-1}[i]) over n values of one activation type, read and written in
 * 16-byte packs (4 floats, 8 bfloat16) where every operand is 16-byte aligned.
 *
 * Why packs: a thread that loads one float (or one bfloat16) per iteration
 * keeps 128 (64) bytes per warp in flight; at full occupancy that is about
 * 8 KB per SM, while an H100's HBM needs roughly twice that to run at its
 * bandwidth (Little's law: bandwidth x latency), so one-element kernels stall
 * on memory latency, bfloat16 ones more. A 16-byte access per operand moves
 * four (eight) times as much per instruction and per thread, which is what
 * PyTorch's vectorized element-wise kernels do.
 *
 * The functor sees raw values (float or bfloat16 bits, dat_val / dat_rounded)
 * so an op may pass bits through unchanged (relu_bwd); a NULL input is not
 * read and its values are T() (zero). Alignment is checked on the host
 * (dat_map): a misaligned operand (a slice of a tensor at an odd
 * offset) takes the same kernel one value at a time, with the same results,
 * since each output depends only on its own position.
 */
#ifndef LIBDAT_KERNELS_MAP_H
#define LIBDAT_KERNELS_MAP_H

#include <stdint.h>

#include "cuda_common.h"

/* Values of T in one 16-byte pack. */
template <typename T>
struct dat_pack {
    enum { N = 16 / sizeof(T) };
    alignas(16) T v[N];
};

/* Pack j of p (16-byte aligned, which the emulation checks as a GPU would). */
template <typename T>
__device__ inline dat_pack<T> *dat_pack_at(T *p, size_t j)
{
#ifdef DAT_CUDA_EMULATED
    dat_emu::check_aligned(p, 16);
#endif
    return (dat_pack<T> *)p + j;
}

template <typename T>
__device__ inline const dat_pack<T> *dat_pack_at(const T *p, size_t j)
{
    return dat_pack_at((T *)p, j);
}

/* A raw activation value as float, and a float rounded to the activation type. */
__device__ inline float dat_val(float v)
{
    return v;
}

__device__ inline float dat_val(uint16_t v)
{
    return dat_bf16_bits_to_f32(v);
}

template <typename T>
__device__ inline T dat_rounded(float v);

template <>
__device__ inline float dat_rounded<float>(float v)
{
    return v;
}

template <>
__device__ inline uint16_t dat_rounded<uint16_t>(float v)
{
    return dat_f32_to_bf16_bits(v);
}

/* The pointers of one map: K inputs (NULL: not read) and the output, which
 * may alias an input (each position is read before it is written, by the
 * same thread). */
template <typename T, int K>
struct dat_map_io {
    const T *in[K];
    T *out;
};

/* Packs first (when `packs`), then the values after the last whole pack, one
 * per thread; without packs every value goes the second way. */
template <typename T, int K, typename F>
__global__ void dat_map_kernel(size_t n, dat_map_io<T, K> io, F f, int packs)
{
    enum { N = dat_pack<T>::N };
    size_t tid = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t whole = packs ? n / N : 0;
    for (size_t j = tid; j < whole; j += stride) {
        dat_pack<T> a[K], y;
        for (int k = 0; k < K; ++k)
            if (io.in[k])
                a[k] = *dat_pack_at(io.in[k], j);
            else
                for (int e = 0; e < N; ++e)
                    a[k].v[e] = T();
        for (int e = 0; e < N; ++e) {
            T v[K];
            for (int k = 0; k < K; ++k)
                v[k] = a[k].v[e];
            y.v[e] = f(j * N + e, v);
        }
        *dat_pack_at(io.out, j) = y;
    }
    for (size_t i = whole * N + tid; i < n; i += stride) {
        T v[K];
        for (int k = 0; k < K; ++k)
            v[k] = io.in[k] ? io.in[k][i] : T();
        io.out[i] = f(i, v);
    }
}

static inline bool dat_aligned16(const void *p)
{
    return ((uintptr_t)p & 15u) == 0;
}

/* Queues the map over n values on the context's stream. */
template <typename T, int K, typename F>
static dat_status dat_map(dat_ctx *ctx, size_t n, dat_map_io<T, K> io, F f)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (n == 0)
        return DAT_OK;
    int packs = dat_aligned16(io.out);
    for (int k = 0; k < K; ++k)
        packs = packs && dat_aligned16(io.in[k]);
    size_t items = packs ? n / dat_pack<T>::N + n % dat_pack<T>::N : n;
    dat_map_kernel<<<dat_cuda_grid(items, 256), 256, 0, dat_cuda(ctx)->stream>>>(n, io, f,
                                                                                 packs);
    DAT_CUDA_CHECK_LAUNCH("dat_map_kernel");
    return DAT_OK;
}

#endif
