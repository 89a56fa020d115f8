/*
 * The element-wise map kernels of the CUDA backend: out[i] = f(i, in_0[i], ..,
 * in_{K-1}[i]) over n values of one activation type, read and written in
 * 16-byte packs (4 floats, 8 bfloat16) where every operand is 16-byte aligned;
 * per-channel maps (below) for ops with per-channel coefficients.
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
 * (dat_map): a misaligned operand (a slice of a tensor at an odd offset) takes
 * the same kernel one value at a time, with the same results, since each
 * output depends only on its own position.
 */
#ifndef LIBDAT_KERNELS_MAP_H
#define LIBDAT_KERNELS_MAP_H

#include <stdint.h>

#include <utility>

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

/* The residual add, rounded once to the value type, and the add with the ReLU
 * after it (relu_fwd's: NaN and -0 to +0): the add ops' functors, which the
 * batch norms that compute a residual add (ops_bn.cu) call too, so that both
 * round alike. */
struct add_op {
    template <typename T>
    __device__ T operator()(size_t, const T (&ab)[2]) const
    {
        return dat_rounded<T>(dat_val(ab[0]) + dat_val(ab[1]));
    }
};

/* relu_fwd of add_op's result. */
struct add_relu_op {
    template <typename T>
    __device__ T operator()(size_t i, const T (&ab)[2]) const
    {
        T sum = add_op()(i, ab);
        return dat_val(sum) > 0.0f ? sum : T();
    }
};

/* The pointers of one map: K inputs (NULL: not read) and the output, which
 * may alias an input (each position is read before it is written, by the
 * same thread); out2 takes the second result of a functor that returns two
 * (dat_two), and is NULL for the others. */
template <typename T, int K>
struct dat_map_io {
    const T *in[K];
    T *out;
    T *out2 = nullptr;
};

/* A functor's two results at one position: first to out, second to out2. Two
 * outputs save a pass where an op's input is wanted too (a residual add's sum
 * that a batch norm normalizes and the next add reads). */
template <typename T>
struct dat_two {
    T first, second;
};

/* Puts a functor's result at position e of the output packs y (y[1]: out2's). */
template <typename T>
__device__ inline void dat_put(dat_pack<T> (&y)[2], int e, T v)
{
    y[0].v[e] = v;
}

template <typename T>
__device__ inline void dat_put(dat_pack<T> (&y)[2], int e, dat_two<T> v)
{
    y[0].v[e] = v.first;
    y[1].v[e] = v.second;
}

/* Whether a functor's result type R is a dat_two. */
template <typename R>
struct dat_is_two {
    static constexpr bool value = false;
};

template <typename T>
struct dat_is_two<dat_two<T>> {
    static constexpr bool value = true;
};

/* Whether functor F, called with A and K values of T, returns a dat_two. */
template <typename F, typename A, typename T, int K>
using dat_returns_two = dat_is_two<decltype(std::declval<const F &>()(
    std::declval<const A &>(), std::declval<const T (&)[K]>()))>;

/* Stores the output packs y at pack j; y[1] only for a functor of two results. */
template <bool TWO, typename T, int K>
__device__ inline void dat_store_packs(const dat_map_io<T, K> &io, size_t j,
                                       const dat_pack<T> (&y)[2])
{
    *dat_pack_at(io.out, j) = y[0];
    if constexpr (TWO)
        *dat_pack_at(io.out2, j) = y[1];
}

/* Stores a functor's result at position i, one value at a time. */
template <typename T, int K>
__device__ inline void dat_store(const dat_map_io<T, K> &io, size_t i, T v)
{
    io.out[i] = v;
}

template <typename T, int K>
__device__ inline void dat_store(const dat_map_io<T, K> &io, size_t i, dat_two<T> v)
{
    io.out[i] = v.first;
    io.out2[i] = v.second;
}

/* Pack j of every input (T() for a NULL one). */
template <typename T, int K>
__device__ inline void dat_load_packs(const dat_map_io<T, K> &io, size_t j, dat_pack<T> (&a)[K])
{
    for (int k = 0; k < K; ++k)
        if (io.in[k])
            a[k] = *dat_pack_at(io.in[k], j);
        else
            for (int e = 0; e < dat_pack<T>::N; ++e)
                a[k].v[e] = T();
}

/* The inputs' values at position e of their packs. */
template <typename T, int K>
__device__ inline void dat_pack_values(const dat_pack<T> (&a)[K], int e, T (&v)[K])
{
    for (int k = 0; k < K; ++k)
        v[k] = a[k].v[e];
}

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
        dat_pack<T> a[K], y[2];
        dat_load_packs(io, j, a);
        for (int e = 0; e < N; ++e) {
            T v[K];
            dat_pack_values(a, e, v);
            dat_put(y, e, f(j * N + e, v));
        }
        dat_store_packs<dat_returns_two<F, size_t, T, K>::value>(io, j, y);
    }
    for (size_t i = whole * N + tid; i < n; i += stride) {
        T v[K];
        for (int k = 0; k < K; ++k)
            v[k] = io.in[k] ? io.in[k][i] : T();
        dat_store(io, i, f(i, v));
    }
}

/*
 * Per-channel maps (batch norm's passes): out[i] = f(f.at(ch), in[i]...), ch
 * the channel of i, f.at(ch) what the op needs of channel ch (coefficients in
 * double, loaded from memory). Loading them per value costs more L1 traffic
 * than the values themselves (24 bytes of coefficients per 2-byte bfloat16),
 * so packs share them: in NCHW with hw a multiple of the pack, a pack lies in
 * one channel, whose coefficients the warp's lanes mostly share; in NHWC with
 * c a multiple of it, a pack holds N consecutive channels, the lanes of a warp
 * different ones, and the grid is kept small (DAT_CHANNEL_MAP_BLOCKS) with a
 * stride that is a multiple of c, so that a thread meets the same channels in
 * each of the many packs it maps and loads them once.
 */
#define DAT_CHANNEL_MAP_BLOCKS 1024 /* of 256 threads: about an H100's resident threads */

template <typename T, int K, typename F, bool NHWC>
__global__ void dat_channel_map_kernel(size_t packs, int c, dat_channel_of chan,
                                       dat_map_io<T, K> io, F f)
{
    enum { N = dat_pack<T>::N };
    size_t tid = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    if (tid >= packs)
        return;
    typename F::chan k[NHWC ? N : 1];
    if (NHWC) {
        int ch0 = (int)((tid * N) % (size_t)c);
        for (int e = 0; e < N; ++e)
            k[NHWC ? e : 0] = f.at(ch0 + e);
    }
    for (size_t j = tid; j < packs; j += stride) {
        if (!NHWC)
            k[0] = f.at((int)chan(j * N));
        dat_pack<T> a[K], y[2];
        dat_load_packs(io, j, a);
        for (int e = 0; e < N; ++e) {
            T v[K];
            dat_pack_values(a, e, v);
            dat_put(y, e, f(k[NHWC ? e : 0], v));
        }
        dat_store_packs<dat_returns_two<F, typename F::chan, T, K>::value>(io, j, y);
    }
}

/* A per-channel functor as a plain map's: the channel of each value. */
template <typename F>
struct dat_per_value {
    F f;
    dat_channel_of chan;
    template <typename T, int K>
    __device__ auto operator()(size_t i, const T (&v)[K]) const
    {
        return f(f.at((int)chan(i)), v);
    }
};

static inline bool dat_aligned16(const void *p)
{
    return ((uintptr_t)p & 15u) == 0;
}

template <typename T, int K>
static bool dat_all_aligned16(const dat_map_io<T, K> &io)
{
    bool ok = dat_aligned16(io.out) && dat_aligned16(io.out2);
    for (int k = 0; k < K; ++k)
        ok = ok && dat_aligned16(io.in[k]);
    return ok;
}

static inline size_t dat_gcd(size_t a, size_t b)
{
    while (b) {
        size_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Queues the map over n values on the context's stream. */
template <typename T, int K, typename F>
static dat_status dat_map(dat_ctx *ctx, size_t n, dat_map_io<T, K> io, F f)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (n == 0)
        return DAT_OK;
    int packs = dat_all_aligned16(io);
    size_t items = packs ? n / dat_pack<T>::N + n % dat_pack<T>::N : n;
    dat_map_kernel<<<dat_cuda_grid(items, 256), 256, 0, dat_cuda(ctx)->stream>>>(n, io, f,
                                                                                 packs);
    DAT_CUDA_CHECK_LAUNCH("dat_map_kernel");
    return DAT_OK;
}

/* Queues the per-channel map over the n x c x hw values of format fmt;
 * without whole packs that share channels (misaligned operands, a plane or a
 * channel count that is not a multiple of the pack), a plain map. */
template <typename T, int K, typename F>
static dat_status dat_channel_map(dat_ctx *ctx, int n, int c, int hw, dat_act_fmt fmt,
                                  dat_map_io<T, K> io, F f)
{
    const size_t N = dat_pack<T>::N, total = (size_t)n * (size_t)c * (size_t)hw;
    bool nhwc = (fmt & DAT_FMT_NHWC) != 0;
    dat_channel_of chan = dat_channel_of_fmt(total, c, hw, fmt);
    if (!dat_all_aligned16(io) || (size_t)(nhwc ? c : hw) % N != 0)
        return dat_map(ctx, total, io, dat_per_value<F>{f, chan});
    DAT_TRY(dat_cuda_use_device(ctx));
    if (total == 0)
        return DAT_OK;
    size_t packs = total / N;
    unsigned blocks = dat_cuda_grid(packs, 256);
    cudaStream_t s = dat_cuda(ctx)->stream;
    if (nhwc) {
        /* A multiple of c / gcd(c, 256 N) blocks makes the stride, 256 N values
         * per block, a multiple of c. */
        size_t m = (size_t)c / dat_gcd((size_t)c, 256 * N);
        if (blocks > DAT_CHANNEL_MAP_BLOCKS)
            blocks = DAT_CHANNEL_MAP_BLOCKS;
        blocks = (unsigned)((blocks + m - 1) / m * m);
        dat_channel_map_kernel<T, K, F, true><<<blocks, 256, 0, s>>>(packs, c, chan, io, f);
    } else {
        dat_channel_map_kernel<T, K, F, false><<<blocks, 256, 0, s>>>(packs, c, chan, io, f);
    }
    DAT_CUDA_CHECK_LAUNCH("dat_channel_map_kernel");
    return DAT_OK;
}

#endif
