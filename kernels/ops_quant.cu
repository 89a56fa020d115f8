/*
 * The quantizer of the CUDA backend (lib/core/backend.h's quant_encode and
 * quant_decode): the bytes of lib/quant/quantize.c, element for element.
 *
 * - norm_kernel: half a warp per bucket. Lane j sums (or maxes) elements j,
 *   j + 16, ... in order, then the lanes fold in halves (j with j + 8, j + 4,
 *   j + 2, j + 1): the host's 16 vector lanes and their tree, so the norm has
 *   the host's bits. The rare cases (a NaN / Inf, an l2 sum out of float's
 *   comfortable range) go through one lane sequentially, as on the host.
 * - code_kernel: one thread per 32-bit word of packed codes; it codes the
 *   elements whose bits fall in its word (dat_quant_code, the Philox word of
 *   each element), so no two threads write one word.
 * - residual_kernel (error feedback only): one thread per element, coding it
 *   again to keep e = v - q(v) (the code kernel cannot write e: a code that
 *   straddles two words is read by two threads).
 * - decode_kernel: one thread per element.
 *
 * Every product and sum is rounded on its own (the __f*_rn intrinsics, and
 * quant_math.h's DAT_RN_* macros), as the host code compiled without FMA
 * contraction. An encode reads back its 16 bytes of status (one
 * synchronization), since the caller must know at once whether it failed; a
 * deferred one leaves them where the caller reads them later.
 */
#include "cuda_ops.h"

#include <float.h>
#include <stddef.h>

extern "C" {
#include "../lib/quant/pack.h"
#include "../lib/quant/quantize.h"
}
#include "../lib/quant/quant_math.h"

#define THREADS 256
#define LANES 16

/* Where a bucket starts in the encoded bytes, and how many elements it has. */
struct bucket_geom {
    size_t n, bucket, full_bytes;
    int bits;
};

__device__ inline size_t bucket_len(const bucket_geom &g, size_t b)
{
    size_t lo = b * g.bucket;
    return g.n - lo < g.bucket ? g.n - lo : g.bucket;
}

/* v = x + e, or x. */
__device__ inline float load_v(const float *x, const float *e, size_t i)
{
    return e ? __fadd_rn(x[i], e[i]) : x[i];
}

/* The first bad element of an encode (relative to x) and the largest kind. */
struct encode_status {
    unsigned long long first_bad;
    int kind;
};

__device__ inline void report(encode_status *st, unsigned long long index, int kind)
{
    atomicMin(&st->first_bad, index);
    atomicMax(&st->kind, kind);
}

/* The norm of one bucket from its lane's partial `a` (lane 0 of the half warp
 * gets the result); the other outcomes as quantize.c's norm_finish. */
__device__ inline int finish_norm(const float *x, const float *e, size_t lo, size_t m,
                                  int max_norm, float r, int nonfinite, float *norm,
                                  size_t *bad)
{
    if (nonfinite) {
        for (size_t k = 0; k < m; ++k)
            if (!isfinite(load_v(x, e, lo + k))) {
                *bad = k;
                return DAT_QUANT_BUCKET_NONFINITE;
            }
    }
    if (max_norm) {
        *norm = r;
        return DAT_QUANT_BUCKET_OK;
    }
    if (!(r >= 0x1p-100f && r <= 0x1p100f)) { /* redone in double, in element order */
        double s = 0.0;
        for (size_t k = 0; k < m; ++k) {
            double v = (double)load_v(x, e, lo + k);
            s = __dadd_rn(s, __dmul_rn(v, v));
        }
        double nd = __dsqrt_rn(s);
        if (nd > FLT_MAX) {
            *bad = 0;
            return DAT_QUANT_BUCKET_OVERFLOW;
        }
        *norm = (float)nd;
        return DAT_QUANT_BUCKET_OK;
    }
    *norm = __fsqrt_rn(r);
    return DAT_QUANT_BUCKET_OK;
}

__global__ void __launch_bounds__(THREADS)
norm_kernel(bucket_geom g, int max_norm, const float *x, const float *e, uint8_t *codes,
            size_t buckets, encode_status *st)
{
    size_t b = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / LANES;
    int lane = threadIdx.x % LANES;
    int valid = b < buckets; /* every thread stays for the shuffles */
    size_t lo = valid ? b * g.bucket : 0, m = valid ? bucket_len(g, b) : 0;
    float a = 0.0f;
    int nonfinite = 0;
    for (size_t k = (size_t)lane; k < m; k += LANES) {
        float v = load_v(x, e, lo + k);
        nonfinite |= !isfinite(v);
        if (max_norm) {
            float av = v < 0.0f ? -v : v;
            a = av > a ? av : a;
        } else {
            a = __fadd_rn(a, __fmul_rn(v, v));
        }
    }
    for (int h = LANES / 2; h >= 1; h /= 2) {
        float o = __shfl_down_sync(0xffffffffu, a, h, LANES);
        a = max_norm ? (o > a ? o : a) : __fadd_rn(a, o);
    }
    unsigned any = __ballot_sync(0xffffffffu, nonfinite);
    any = (any >> (threadIdx.x % DAT_WARP / LANES * LANES)) & 0xffffu;
    if (!valid || lane != 0)
        return;
    float norm = 0.0f;
    size_t bad = 0;
    int kind = finish_norm(x, e, lo, m, max_norm, a, any != 0, &norm, &bad);
    if (kind != DAT_QUANT_BUCKET_OK) {
        report(st, (unsigned long long)(lo + bad), kind);
        norm = 0.0f; /* the encode fails; the codes only need to be defined */
    }
    memcpy(codes + b * g.full_bytes, &norm, sizeof norm);
}

/* The code of element k of bucket b (norm read from its header). */
struct coder {
    float norm, step;
    dat_quant_scale ks;
    uint32_t s;
};

__device__ inline coder coder_of(const bucket_geom &g, const uint8_t *codes, size_t b)
{
    coder c;
    memcpy(&c.norm, codes + b * g.full_bytes, sizeof c.norm);
    c.s = dat_quant_levels(g.bits);
    c.ks = dat_quant_make_scale(c.norm, c.s);
    c.step = dat_quant_step(c.norm, c.s);
    return c;
}

/* The stream of the draws (quantize.h, dat_quant_draw). */
__device__ inline uint64_t stream_of(const dat_quant_draw &d)
{
    return d.step ? dat_quant_stream(d.salt, d.rank, *d.step, d.phase) : d.stream;
}

__device__ inline uint32_t code_at(const coder &c, int bits, float v, uint64_t key,
                                   uint64_t stream, uint64_t elem)
{
    if (c.norm == 0.0f)
        return 0u;
    uint32_t w = dat_philox_word(key, stream, dat_quant_word_index(elem));
    return dat_quant_code(v, c.ks, c.s, dat_quant_uniform16(w, elem), bits);
}

__global__ void __launch_bounds__(THREADS)
code_kernel(bucket_geom g, const float *x, const float *e, dat_quant_draw d, uint64_t counter0,
            uint8_t *codes, size_t slots, size_t words_per_bucket)
{
    const uint64_t key = d.key, stream = stream_of(d);
    DAT_GRID_STRIDE(t, slots)
    {
        size_t b = t / words_per_bucket, j = t % words_per_bucket;
        size_t lo = b * g.bucket, m = bucket_len(g, b);
        if (j >= dat_pack_words(m, g.bits))
            continue; /* the last bucket is shorter */
        coder c = coder_of(g, codes, b);
        size_t bit0 = 32 * j, k0 = bit0 / (size_t)g.bits;
        size_t k1 = (bit0 + 31) / (size_t)g.bits + 1;
        k1 = k1 < m ? k1 : m;
        unsigned long long acc = 0;
        for (size_t k = k0; k < k1; ++k) {
            uint32_t code = code_at(c, g.bits, load_v(x, e, lo + k), key, stream,
                                    counter0 + lo + k);
            long long p = (long long)(k * (size_t)g.bits) - (long long)bit0;
            acc |= p >= 0 ? (unsigned long long)code << p : (unsigned long long)(code >> -p);
        }
        uint32_t word = (uint32_t)acc;
        memcpy(codes + b * g.full_bytes + 4 + 4 * j, &word, sizeof word);
    }
}

__global__ void __launch_bounds__(THREADS)
residual_kernel(bucket_geom g, const float *x, float *e, dat_quant_draw d, uint64_t counter0,
                const uint8_t *codes)
{
    const uint64_t key = d.key, stream = stream_of(d);
    DAT_GRID_STRIDE(i, g.n)
    {
        size_t b = i / g.bucket;
        coder c = coder_of(g, codes, b);
        float v = load_v(x, e, i);
        uint32_t code = code_at(c, g.bits, v, key, stream, counter0 + i);
        e[i] = c.norm == 0.0f ? v : __fsub_rn(v, dat_quant_value(code, c.step, g.bits));
    }
}

/* Pass-through: the codes are v = x + e, the residual becomes 0. */
__global__ void __launch_bounds__(THREADS)
passthrough_kernel(size_t n, const float *x, float *e, float *out, encode_status *st)
{
    DAT_GRID_STRIDE(i, n)
    {
        float v = load_v(x, e, i);
        out[i] = v;
        if (e)
            e[i] = 0.0f;
        if (!isfinite(v))
            report(st, (unsigned long long)i, DAT_QUANT_BUCKET_NONFINITE);
    }
}

__global__ void __launch_bounds__(THREADS)
decode_kernel(bucket_geom g, const uint8_t *codes, float *out, int accumulate, float scale)
{
    DAT_GRID_STRIDE(i, g.n)
    {
        float q;
        if (g.bits == DAT_QUANT_PASSTHROUGH) {
            q = ((const float *)codes)[i];
        } else {
            size_t b = i / g.bucket, k = i % g.bucket;
            const uint8_t *base = codes + b * g.full_bytes;
            float norm;
            memcpy(&norm, base, sizeof norm);
            size_t bit = k * (size_t)g.bits, w = bit / 32, sh = bit % 32;
            uint32_t lo_w, hi_w = 0;
            memcpy(&lo_w, base + 4 + 4 * w, 4);
            if (sh + (size_t)g.bits > 32)
                memcpy(&hi_w, base + 8 + 4 * w, 4);
            unsigned long long both = ((unsigned long long)hi_w << 32) | lo_w;
            uint32_t code = (uint32_t)(both >> sh) & ((1u << g.bits) - 1u);
            q = dat_quant_value(code, dat_quant_step(norm, dat_quant_levels(g.bits)), g.bits);
        }
        q = __fmul_rn(q, scale);
        out[i] = accumulate ? __fadd_rn(out[i], q) : q;
    }
}

static bucket_geom geom_of(const dat_quant_config *c, size_t n)
{
    bucket_geom g;
    g.n = n;
    g.bits = c->bits;
    g.bucket = (size_t)c->bucket;
    g.full_bytes = 4 + 4 * dat_pack_words(g.bucket, c->bits);
    return g;
}

static_assert(sizeof(encode_status) == sizeof(dat_quant_status) &&
                  offsetof(encode_status, kind) == offsetof(dat_quant_status, kind),
              "encode_status is the kernels' view of dat_quant_status");

/* Queues the encode of x[0..n); its outcome goes to *st. */
static dat_status queue_encode(dat_cuda_state *cs, const dat_quant_config *c, const float *x,
                               size_t n, float *residual, const dat_quant_draw &d,
                               uint64_t counter0, void *codes, encode_status *st)
{
    DAT_CUDA_TRY(cudaMemsetAsync(&st->first_bad, 0xff, sizeof st->first_bad, cs->stream));
    DAT_CUDA_TRY(cudaMemsetAsync(&st->kind, 0, sizeof st->kind, cs->stream));
    if (n == 0)
        return DAT_OK;
    bucket_geom g = geom_of(c, n);
    uint8_t *out = (uint8_t *)codes;
    if (c->bits == DAT_QUANT_PASSTHROUGH) {
        passthrough_kernel<<<dat_cuda_grid(n, THREADS), THREADS, 0, cs->stream>>>(
            n, x, residual, (float *)codes, st);
        DAT_CUDA_CHECK_LAUNCH("passthrough_kernel");
    } else {
        size_t buckets = (n + g.bucket - 1) / g.bucket;
        size_t words = dat_pack_words(g.bucket, c->bits), slots = buckets * words;
        norm_kernel<<<(unsigned)((buckets * LANES + THREADS - 1) / THREADS), THREADS, 0,
                      cs->stream>>>(g, c->norm == DAT_QUANT_NORM_MAX, x, residual, out, buckets,
                                    st);
        DAT_CUDA_CHECK_LAUNCH("norm_kernel");
        code_kernel<<<dat_cuda_grid(slots, THREADS), THREADS, 0, cs->stream>>>(
            g, x, residual, d, counter0, out, slots, words);
        DAT_CUDA_CHECK_LAUNCH("code_kernel");
        if (residual) {
            residual_kernel<<<dat_cuda_grid(n, THREADS), THREADS, 0, cs->stream>>>(
                g, x, residual, d, counter0, out);
            DAT_CUDA_CHECK_LAUNCH("residual_kernel");
        }
    }
    return DAT_OK;
}

dat_status dat_cuda_quant_encode(dat_ctx *ctx, const char *func, const dat_quant_config *c,
                                 const float *x, size_t n, float *residual, uint64_t key,
                                 uint64_t stream, uint64_t counter0, void *codes,
                                 uint64_t index_base)
{
    if (dat_cuda_capturing(ctx)) /* recordings encode deferred (quant_encode_deferred) */
        return dat_capture_refuse(ctx, __func__, "reading the encode's status back to the host");
    DAT_TRY(dat_cuda_use_device(ctx));
    if (n == 0)
        return DAT_OK;
    dat_cuda_state *cs = dat_cuda(ctx);
    encode_status *st = (encode_status *)cs->scalars;
    dat_quant_draw d = {};
    d.key = key;
    d.stream = stream;
    DAT_TRY(queue_encode(cs, c, x, n, residual, d, counter0, codes, st));
    encode_status h;
    DAT_CUDA_TRY(cudaMemcpyAsync(&h, st, sizeof h, cudaMemcpyDeviceToHost, cs->stream));
    DAT_CUDA_TRY(cudaStreamSynchronize(cs->stream));
    if (h.kind == DAT_QUANT_BUCKET_OK)
        return DAT_OK;
    if (residual)
        DAT_CUDA_TRY(cudaMemsetAsync(residual, 0, n * sizeof *residual, cs->stream));
    return dat_quant_numeric_error(func, h.kind, index_base + h.first_bad, residual != NULL);
}

dat_status dat_cuda_quant_encode_deferred(dat_ctx *ctx, const dat_quant_config *c,
                                          const float *x, size_t n, float *residual,
                                          const dat_quant_draw *draw, uint64_t counter0,
                                          void *codes, dat_quant_status *status)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    return queue_encode(dat_cuda(ctx), c, x, n, residual, *draw, counter0, codes,
                        (encode_status *)status);
}

/* One thread: a step has a few buckets. */
__global__ void flag_failed_kernel(const dat_quant_status *st, size_t count, float *flag)
{
    int failed = 0;
    for (size_t k = 0; k < count; ++k)
        failed |= st[k].kind != DAT_QUANT_BUCKET_OK;
    *flag = failed ? 1.0f : 0.0f;
}

dat_status dat_cuda_quant_flag_failed(dat_ctx *ctx, const dat_quant_status *status,
                                      size_t count, float *flag)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    flag_failed_kernel<<<1, 1, 0, dat_cuda(ctx)->stream>>>(status, count, flag);
    DAT_CUDA_CHECK_LAUNCH("flag_failed_kernel");
    return DAT_OK;
}

__global__ void __launch_bounds__(THREADS)
apply_failure_kernel(const float *flag, float *residual, size_t r, float *x, size_t n,
                     uint32_t *fault, uint32_t bit)
{
    if (*flag == 0.0f)
        return;
    if (blockIdx.x == 0 && threadIdx.x == 0)
        atomicOr(fault, bit);
    DAT_GRID_STRIDE(i, r > n ? r : n)
    {
        if (i < r)
            residual[i] = 0.0f;
        if (i < n)
            x[i] = NAN;
    }
}

dat_status dat_cuda_quant_apply_failure(dat_ctx *ctx, const float *flag, float *residual,
                                        size_t r, float *x, size_t n, uint32_t *fault,
                                        uint32_t bit)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    size_t len = r > n ? r : n;
    apply_failure_kernel<<<dat_cuda_grid(len ? len : 1, THREADS), THREADS, 0,
                           dat_cuda(ctx)->stream>>>(flag, residual, r, x, n, fault, bit);
    DAT_CUDA_CHECK_LAUNCH("apply_failure_kernel");
    return DAT_OK;
}

dat_status dat_cuda_quant_decode(dat_ctx *ctx, const dat_quant_config *c, const void *codes,
                                 size_t n, float *out, int accumulate, float scale)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (n == 0)
        return DAT_OK;
    decode_kernel<<<dat_cuda_grid(n, THREADS), THREADS, 0, dat_cuda(ctx)->stream>>>(
        geom_of(c, n), (const uint8_t *)codes, out, accumulate, scale);
    DAT_CUDA_CHECK_LAUNCH("decode_kernel");
    return DAT_OK;
}
