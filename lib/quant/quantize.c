/*
 * Host encode / decode of the randomized quantizer: buckets in parallel
 * (OpenMP), each in chunks of DAT_QUANT_CHUNK elements kept in L1; no
 * allocation. The per-element math is quant_math.h, shared with CUDA.
 */
#include "quantize.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../core/ctx.h"
#include "../core/error.h"
#include "../core/clones.h"
#include "codes_simd.h"
#include "pack.h"
#include "philox_simd.h"
#include "quant_math.h"

#define DAT_QUANT_CHUNK 512
#define DAT_QUANT_LANES 16
/* Below this many elements a parallel region costs more than it saves. */
#define DAT_QUANT_PAR_MIN 32768

int dat_quant_threads(int ctx_threads, size_t n)
{
    return n < DAT_QUANT_PAR_MIN || ctx_threads < 1 ? 1 : ctx_threads;
}

static size_t bucket_bytes(const dat_quant_config *c, size_t m)
{
    return 4 + 4 * dat_pack_words(m, c->bits);
}

size_t dat_quant_encoded_bytes(const dat_quant_config *c, size_t n)
{
    if (c->bits == DAT_QUANT_PASSTHROUGH)
        return 4 * n;
    size_t b = (size_t)c->bucket, full = n / b, r = n % b;
    return full * bucket_bytes(c, b) + (r ? bucket_bytes(c, r) : 0);
}

/* v = x + e for one chunk: in buf with a residual, else x itself. */
static const float *load_chunk(const float *x, const float *e, size_t len, float *buf)
{
    if (!e)
        return x;
#pragma omp simd
    for (size_t k = 0; k < len; ++k)
        buf[k] = x[k] + e[k];
    return buf;
}

/* Index of the first NaN / Inf of v[0..len), or len. */
static size_t first_nonfinite(const float *v, size_t len)
{
    for (size_t k = 0; k < len; ++k)
        if (!isfinite(v[k]))
            return k;
    return len;
}

/* Lane accumulators: a fixed summation order whatever the vector width, so
 * every build (and a CUDA kernel following it) gets the same bits. chk is the
 * max norm's NaN / Inf check (the l2 sum needs none). */
typedef struct lanes {
    float a[DAT_QUANT_LANES];
} lanes;

/* fresh: the bucket's first chunk, whose lanes start at zero in registers (a
 * vector load of lanes just zeroed or copied by narrower stores would wait for
 * those stores to retire). */
DAT_CLONES
static void lanes_add_chunk(lanes *acc, lanes *chk, const float *v, size_t len, int max_norm,
                            int fresh)
{
    size_t full = len / DAT_QUANT_LANES * DAT_QUANT_LANES;
    float a[DAT_QUANT_LANES] = {0}, c[DAT_QUANT_LANES] = {0};
    if (!fresh) {
        memcpy(a, acc->a, sizeof a);
        memcpy(c, chk->a, sizeof c);
    }
    if (max_norm) {
        for (size_t k = 0; k < full; k += DAT_QUANT_LANES) {
#pragma omp simd
            for (int j = 0; j < DAT_QUANT_LANES; ++j) {
                float x = v[k + (size_t)j], ax = x < 0.0f ? -x : x;
                a[j] = ax > a[j] ? ax : a[j];
                c[j] += x * 0.0f; /* NaN if any x is NaN or Inf */
            }
        }
    } else { /* a NaN or Inf makes the sum NaN or Inf: no check lanes needed */
        for (size_t k = 0; k < full; k += DAT_QUANT_LANES) {
#pragma omp simd
            for (int j = 0; j < DAT_QUANT_LANES; ++j) {
                float x = v[k + (size_t)j];
                a[j] += x * x;
            }
        }
    }
    for (size_t k = full; k < len; ++k) {
        int j = (int)(k - full);
        float x = v[k], ax = x < 0.0f ? -x : x;
        if (max_norm) {
            a[j] = ax > a[j] ? ax : a[j];
            c[j] += x * 0.0f;
        } else {
            a[j] += x * x;
        }
    }
    memcpy(acc->a, a, sizeof a);
    memcpy(chk->a, c, sizeof c);
}

/* Pairwise combination of the lanes, in a fixed tree. */
/* Halves of the lanes as GCC / Clang vectors, so the folds stay in registers. */
typedef float dat_v16f __attribute__((vector_size(64)));
typedef float dat_v8f __attribute__((vector_size(32)));
typedef float dat_v4f __attribute__((vector_size(16)));
typedef int32_t dat_v8i __attribute__((vector_size(32)));
typedef int32_t dat_v4i __attribute__((vector_size(16)));

/* a + b, or the larger of a and b (a where b is not larger, as lanes_add_chunk). */
#define DAT_FOLD(a, b, max_norm, itype)                                                   \
    ((max_norm) ? (__typeof__(a))(((itype)(b > a) & (itype)(b)) | (~(itype)(b > a) & (itype)(a))) \
                : (a) + (b))

/* The lanes are read whole, as lanes_add_chunk's clone stored them (a narrower
 * load of part of a wider store still in flight waits for it), then folded in
 * halves: lane j with lane j + 8, then j + 4, j + 2, j + 1. */
DAT_CLONES
static float lanes_reduce(const lanes *l, int max_norm)
{
    _Static_assert(DAT_QUANT_LANES == 16, "the tree below folds 16 lanes");
    dat_v16f a;
    memcpy(&a, l->a, sizeof a);
    dat_v8f lo8 = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7);
    dat_v8f hi8 = __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
    dat_v8f s8 = DAT_FOLD(lo8, hi8, max_norm, dat_v8i);
    dat_v4f lo4 = __builtin_shufflevector(s8, s8, 0, 1, 2, 3);
    dat_v4f hi4 = __builtin_shufflevector(s8, s8, 4, 5, 6, 7);
    dat_v4f s4 = DAT_FOLD(lo4, hi4, max_norm, dat_v4i);
    float s2[2];
    for (int j = 0; j < 2; ++j)
        s2[j] = max_norm ? (s4[j + 2] > s4[j] ? s4[j + 2] : s4[j]) : s4[j] + s4[j + 2];
    return max_norm ? (s2[1] > s2[0] ? s2[1] : s2[0]) : s2[0] + s2[1];
}

/* A bucket v = x + e of m elements whose norm pass is under way: its lane sums
 * so far. */
typedef struct norm_pass {
    const float *x, *e;
    size_t m;
    lanes acc, chk;
} norm_pass;

static void norm_begin(norm_pass *p, const float *x, const float *e, size_t m)
{
    p->x = x;
    p->e = e;
    p->m = m; /* m >= 1: the chunk at 0 starts the lanes (lanes_add_chunk's fresh) */
}

/* Asks for elements [from, to) of p's bucket (or past its end: the buckets of a
 * thread lie back to back, and a prefetch never faults) ahead of their norm pass:
 * a few lines at a time, since a burst stalls once the line-fill buffers are full. */
static void norm_prefetch(const norm_pass *p, size_t from, size_t to)
{
    for (size_t k = from; k < to; k += 64 / sizeof(float)) {
        __builtin_prefetch(p->x + k, 0, 3);
        if (p->e)
            __builtin_prefetch(p->e + k, 1, 3);
    }
}

/* Adds the chunk starting at k0 (if the bucket has one there); buf is scratch. */
static void norm_chunk(const dat_quant_config *c, norm_pass *p, size_t k0, float *buf)
{
    if (k0 >= p->m)
        return;
    size_t len = p->m - k0 < DAT_QUANT_CHUNK ? p->m - k0 : DAT_QUANT_CHUNK;
    lanes_add_chunk(&p->acc, &p->chk, load_chunk(p->x + k0, p->e ? p->e + k0 : NULL, len, buf),
                    len, c->norm == DAT_QUANT_NORM_MAX, k0 == 0);
}

/*
 * The norm from the lane sums of every chunk. The ℓ2 sum of squares runs in
 * float lanes; where it may have overflowed or lost precision to underflow it
 * is redone in double. Sets *bad to the bucket-relative index of a NaN / Inf.
 */
static int norm_finish(const dat_quant_config *c, norm_pass *p, float *norm, size_t *bad)
{
    int max_norm = c->norm == DAT_QUANT_NORM_MAX;
    const float *x = p->x, *e = p->e;
    size_t m = p->m;
    float v[DAT_QUANT_CHUNK];
    float r = lanes_reduce(&p->acc, max_norm);
    /* The max ignores NaN, so its check lanes sum x * 0 (NaN for a NaN or Inf); a
     * sum of squares is NaN or Inf itself (or has overflowed: then no element is
     * found and the double sum below takes over). */
    int suspect = max_norm ? lanes_reduce(&p->chk, 0) != 0.0f : !(r <= FLT_MAX);
    if (suspect) {
        for (size_t k0 = 0; k0 < m; k0 += DAT_QUANT_CHUNK) {
            size_t len = m - k0 < DAT_QUANT_CHUNK ? m - k0 : DAT_QUANT_CHUNK;
            size_t i = first_nonfinite(load_chunk(x + k0, e ? e + k0 : NULL, len, v), len);
            if (i < len) {
                *bad = k0 + i;
                return DAT_QUANT_BUCKET_NONFINITE;
            }
        }
    }
    if (max_norm) {
        *norm = r;
        return DAT_QUANT_BUCKET_OK;
    }
    if (!(r >= 0x1p-100f && r <= 0x1p100f)) {
        double s = 0.0;
        for (size_t k0 = 0; k0 < m; k0 += DAT_QUANT_CHUNK) {
            size_t len = m - k0 < DAT_QUANT_CHUNK ? m - k0 : DAT_QUANT_CHUNK;
            const float *vv = load_chunk(x + k0, e ? e + k0 : NULL, len, v);
            for (size_t k = 0; k < len; ++k)
                s += (double)vv[k] * (double)vv[k];
        }
        double n = sqrt(s);
        if (n > FLT_MAX) {
            *bad = 0;
            return DAT_QUANT_BUCKET_OVERFLOW;
        }
        *norm = (float)n;
        return DAT_QUANT_BUCKET_OK;
    }
    *norm = sqrtf(r);
    return DAT_QUANT_BUCKET_OK;
}

/* Words g0 .. g0 + len - 1 of the stream. */
static void stream_words(uint64_t key, uint64_t stream, uint64_t g0, size_t len, uint32_t *w)
{
    const size_t span = 4 * DAT_PHILOX_BULK;
    if ((g0 & 3) == 0 && len % span == 0) {
        dat_philox_blocks_bulk(key, stream, g0 >> 2, len / 4, w);
        return;
    }
    for (size_t i = 0; i < len; ++i)
        w[i] = dat_philox_word(key, stream, g0 + i);
}

/* The 16-bit uniforms of elements g0 .. g0 + len - 1 (dat_quant_uniform16), for
 * chunks that do not start and end on a group of DAT_QUANT_GROUP elements. */
static void stream_uniforms(uint64_t key, uint64_t stream, uint64_t g0, size_t len, uint32_t *u)
{
    enum { G = DAT_QUANT_GROUP, H = DAT_QUANT_GROUP / 2 };
    uint32_t w[DAT_QUANT_CHUNK / 2 + H];
    uint64_t w0 = dat_quant_word_index(g0 / G * G);
    uint64_t w1 = dat_quant_word_index((g0 + len + G - 1) / G * G);
    stream_words(key, stream, w0, (size_t)(w1 - w0), w);
    for (size_t k = 0; k < len; ++k)
        u[k] = dat_quant_uniform16(w[dat_quant_word_index(g0 + k) - w0], g0 + k);
}

/* The residual e = v - q(v) of one chunk. */
DAT_CLONES
static void chunk_residual(const float *v, const uint32_t *code, size_t len, float step,
                           int bits, float *e)
{
#pragma omp simd
    for (size_t k = 0; k < len; ++k)
        e[k] = v[k] - dat_quant_value(code[k], step, bits);
}

/* Codes of one chunk from its uniforms. */
DAT_CLONES
static void chunk_codes(const float *v, const uint32_t *u, size_t len, dat_quant_scale ks,
                        uint32_t s, int bits, uint32_t *code)
{
#pragma omp simd
    for (size_t k = 0; k < len; ++k)
        code[k] = dat_quant_code(v[k], ks, s, u[k], bits);
}

/* Width at which the codes are stored straight into the bucket's words: at 2,
 * 4, 8 and 16 bits a group of codes fills whole bytes, and on a little-endian
 * host the packed layout is then those bytes. The residual needs the 32-bit
 * codes. */
static int direct_width(int bits, const float *e)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (!e && (bits == 2 || bits == 4 || bits == 8 || bits == 16))
        return bits;
#endif
    (void)e;
    return 32;
}

/*
 * The norm pass waits on memory and the coding pass on arithmetic, so the next
 * bucket's norm pass runs inside this bucket's coding loop, a chunk of each per
 * iteration: the out-of-order core overlaps the next bucket's loads with this
 * one's arithmetic (the hardware prefetcher sees no accesses while a bucket is
 * coded in L1, and a separate norm pass stalls on every line). next may be NULL.
 */
static void encode_bucket(const dat_quant_config *c, const float *x, float *e, size_t m,
                          float norm, uint64_t key, uint64_t stream, uint64_t g0, uint8_t *out,
                          norm_pass *next)
{
    memcpy(out, &norm, sizeof norm);
    uint32_t *words = (uint32_t *)(out + 4);
    int bits = c->bits, width = direct_width(bits, e);
    uint32_t s = dat_quant_levels(bits);
    float vn[DAT_QUANT_CHUNK];
    size_t k0 = 0;
    if (norm == 0.0f) { /* all zero: codes 0 decode to +0, the residual is v */
        memset(words, 0, 4 * dat_pack_words(m, bits));
        if (e)
            for (size_t k = 0; k < m; ++k)
                e[k] += x[k];
    } else {
        dat_quant_scale ks = dat_quant_make_scale(norm, s);
        float step = dat_quant_step(norm, s);
        float v[DAT_QUANT_CHUNK];
        uint32_t w[DAT_QUANT_CHUNK], code[DAT_QUANT_CHUNK];
        for (; k0 < m; k0 += DAT_QUANT_CHUNK) {
            size_t len = m - k0 < DAT_QUANT_CHUNK ? m - k0 : DAT_QUANT_CHUNK;
            const float *vv = load_chunk(x + k0, e ? e + k0 : NULL, len, v);
            uint64_t g = g0 + k0;
            /* DAT_QUANT_CHUNK codes of any width fill whole words: each chunk's
             * codes start on a word of their own. */
            uint32_t *chunk_words = words + k0 * (size_t)bits / 32;
            int grouped = g % DAT_QUANT_GROUP == 0 && len % DAT_QUANT_GROUP == 0;
            int direct = grouped && width != 32; /* whole groups fill whole words too */
            if (next) { /* its chunk at k0 now, the lines of the one after requested */
                norm_chunk(c, next, k0, vn);
                norm_prefetch(next, k0 + DAT_QUANT_CHUNK, k0 + 3 * DAT_QUANT_CHUNK / 2);
            }
            if (grouped) { /* the usual case */
                uint64_t w0 = dat_quant_word_index(g);
                stream_words(key, stream, w0, dat_quant_word_index(g + len) - w0, w);
                dat_quant_codes_grouped(vv, w, len, ks, s, bits,
                                        direct ? (void *)chunk_words : code, direct ? width : 32);
            } else {
                stream_uniforms(key, stream, g, len, w);
                chunk_codes(vv, w, len, ks, s, bits, code);
            }
            if (next)
                norm_prefetch(next, k0 + 3 * DAT_QUANT_CHUNK / 2, k0 + 2 * DAT_QUANT_CHUNK);
            if (e) /* then width is 32: code[] holds the chunk */
                chunk_residual(vv, code, len, step, bits, e + k0);
            if (!direct) { /* the last chunk's final word is zero-padded */
                dat_packer pk;
                dat_packer_init(&pk, chunk_words, bits);
                dat_pack(&pk, code, len);
                dat_packer_flush(&pk);
            }
        }
    }
    for (; next && k0 < next->m; k0 += DAT_QUANT_CHUNK) /* the next bucket is longer */
        norm_chunk(c, next, k0, vn);
}

/* Pass-through: the codes are x + e; the residual becomes 0. */
static size_t passthrough_block(const float *x, float *e, size_t m, float *out, size_t *bad)
{
    if (e) {
        for (size_t k = 0; k < m; ++k)
            out[k] = x[k] + e[k];
    } else {
        memcpy(out, x, m * sizeof *out);
    }
    if (e)
        memset(e, 0, m * sizeof *e);
    size_t i = first_nonfinite(out, m);
    if (i < m) {
        *bad = i;
        return 1;
    }
    return 0;
}

dat_status dat_quant_numeric_error(const char *func, int kind, uint64_t index, int have_residual)
{
    if (kind == DAT_QUANT_BUCKET_OVERFLOW)
        return dat_error(DAT_ERR_NUMERIC, func,
                         "the l2 norm of the bucket starting at element %llu overflows float%s",
                         (unsigned long long)index, have_residual ? " (residual zeroed)" : "");
    return dat_error(DAT_ERR_NUMERIC, func, "element %llu is NaN or Inf%s",
                     (unsigned long long)index,
                     have_residual ? " (after adding the residual; residual zeroed)" : "");
}

/* Pass-through over buckets [b0, b1) of 4096 floats; returns the first bad index. */
static uint64_t passthrough_range(const float *x, size_t n, float *residual, float *out,
                                  size_t b0, size_t b1)
{
    const size_t bsz = 4096;
    uint64_t first_bad = UINT64_MAX;
    for (size_t b = b0; b < b1; ++b) {
        size_t lo = b * bsz, m = n - lo < bsz ? n - lo : bsz, bad = 0;
        if (passthrough_block(x + lo, residual ? residual + lo : NULL, m, out + lo, &bad) &&
            lo + bad < first_bad)
            first_bad = lo + bad;
    }
    return first_bad;
}

dat_status dat_quant_encode_host(const char *func, const dat_quant_config *c, const float *x,
                                 size_t n, float *residual, uint64_t key, uint64_t stream,
                                 uint64_t counter0, void *codes, int nthreads,
                                 uint64_t index_base)
{
    int pass = c->bits == DAT_QUANT_PASSTHROUGH;
    size_t bsz = pass ? 4096 : (size_t)c->bucket;
    size_t nb = (n + bsz - 1) / bsz, full_bytes = bucket_bytes(c, bsz);
    uint64_t first_bad = UINT64_MAX;
    int bad_kind = DAT_QUANT_BUCKET_OK;
    int nt = nthreads > 1 && nb > 1 ? nthreads : 1;
    /* Each thread codes a contiguous range of buckets, the norm pass of each
     * bucket running inside the coding of the one before (encode_bucket). A
     * bucket's codes do not depend on the split. */
#pragma omp parallel num_threads(nt) reduction(min : first_bad) reduction(max : bad_kind)
    {
        size_t t = (size_t)omp_get_thread_num(), tn = (size_t)omp_get_num_threads();
        size_t b0 = nb * t / tn, b1 = nb * (t + 1) / tn;
        if (pass) {
            first_bad = passthrough_range(x, n, residual, (float *)codes, b0, b1);
            bad_kind = first_bad != UINT64_MAX ? DAT_QUANT_BUCKET_NONFINITE : DAT_QUANT_BUCKET_OK;
        }
        /* Two passes that swap roles, not copied: a copy's narrow stores would
         * stall lanes_reduce's wide load of them. */
        norm_pass pass_buf[2], *cur = &pass_buf[0], *nxt = &pass_buf[1];
        float buf[DAT_QUANT_CHUNK];
        int have = 0; /* cur holds the finished lane sums of bucket b */
        for (size_t b = b0; b < b1 && !pass; ++b) {
            size_t lo = b * bsz, m = n - lo < bsz ? n - lo : bsz, bad = 0;
            float *e = residual ? residual + lo : NULL;
            if (!have) {
                norm_begin(cur, x + lo, e, m);
                for (size_t k0 = 0; k0 < m; k0 += DAT_QUANT_CHUNK)
                    norm_chunk(c, cur, k0, buf);
            }
            float norm = 0.0f;
            int kind = norm_finish(c, cur, &norm, &bad);
            have = 0;
            if (kind != DAT_QUANT_BUCKET_OK) {
                first_bad = lo + bad < first_bad ? lo + bad : first_bad;
                bad_kind = kind > bad_kind ? kind : bad_kind;
                continue;
            }
            size_t hi = lo + m;
            if (b + 1 < b1) {
                norm_begin(nxt, x + hi, residual ? residual + hi : NULL,
                           n - hi < bsz ? n - hi : bsz);
                have = 1;
            }
            encode_bucket(c, x + lo, e, m, norm, key, stream, counter0 + lo,
                          (uint8_t *)codes + b * full_bytes, have ? nxt : NULL);
            if (have) {
                norm_pass *t = cur;
                cur = nxt;
                nxt = t;
            }
        }
    }
    if (bad_kind != DAT_QUANT_BUCKET_OK) {
        if (residual)
            memset(residual, 0, n * sizeof *residual);
        return dat_quant_numeric_error(func, bad_kind, index_base + first_bad, residual != NULL);
    }
    return DAT_OK;
}

/* out = (accumulate ? out : 0) + q * scale for one chunk of codes. */
DAT_CLONES
static void chunk_values(const uint32_t *code, size_t len, float step, int bits, float *out,
                         int accumulate, float scale)
{
    if (accumulate) {
#pragma omp simd
        for (size_t k = 0; k < len; ++k)
            out[k] = out[k] + dat_quant_value(code[k], step, bits) * scale;
    } else {
#pragma omp simd
        for (size_t k = 0; k < len; ++k)
            out[k] = dat_quant_value(code[k], step, bits) * scale;
    }
}

static void decode_bucket(const dat_quant_config *c, const uint8_t *in, size_t m, float *out,
                          int accumulate, float scale)
{
    float norm;
    memcpy(&norm, in, sizeof norm);
    int bits = c->bits;
    float step = dat_quant_step(norm, dat_quant_levels(bits));
    const uint8_t *codes = in + 4;
    size_t k0 = 0;
    if (direct_width(bits, NULL) == bits) { /* whole groups straight from the bytes */
        size_t whole = m / DAT_QUANT_GROUP * DAT_QUANT_GROUP;
        for (; k0 < whole; k0 += DAT_QUANT_CHUNK) {
            size_t len = whole - k0 < DAT_QUANT_CHUNK ? whole - k0 : DAT_QUANT_CHUNK;
            if (!dat_quant_values_packed(codes + k0 * (size_t)bits / 8, len, step, bits,
                                         out + k0, accumulate, scale))
                break;
        }
        k0 = k0 < whole ? k0 : whole;
    }
    dat_unpacker up; /* the rest: k0 is a whole number of words in */
    dat_unpacker_init(&up, (const uint32_t *)(codes + k0 * (size_t)bits / 8), bits);
    uint32_t code[DAT_QUANT_CHUNK];
    for (; k0 < m; k0 += DAT_QUANT_CHUNK) {
        size_t len = m - k0 < DAT_QUANT_CHUNK ? m - k0 : DAT_QUANT_CHUNK;
        dat_unpack(&up, code, len);
        chunk_values(code, len, step, bits, out + k0, accumulate, scale);
    }
}

dat_status dat_quant_check_message(const char *func, const dat_quant_config *c,
                                   const void *codes, size_t n)
{
    int pass = c->bits == DAT_QUANT_PASSTHROUGH;
    size_t bsz = (size_t)c->bucket, full_bytes = bucket_bytes(c, bsz);
    for (size_t i = 0; i < (pass ? n : (n + bsz - 1) / bsz); ++i) {
        float v; /* a pass-through value, or bucket i's norm */
        memcpy(&v, (const uint8_t *)codes + (pass ? i * sizeof v : i * full_bytes), sizeof v);
        if (!isfinite(v) || (!pass && v < 0.0f))
            return dat_error(DAT_ERR_FORMAT, func, "a corrupt message: %s %zu is %g",
                             pass ? "value" : "the norm of bucket", i, (double)v);
    }
    return DAT_OK;
}

void dat_quant_decode_host(const dat_quant_config *c, const void *codes, size_t n, float *out,
                           int accumulate, float scale, int nthreads)
{
    int pass = c->bits == DAT_QUANT_PASSTHROUGH;
    size_t bsz = pass ? 4096 : (size_t)c->bucket;
    size_t nb = (n + bsz - 1) / bsz, full_bytes = bucket_bytes(c, bsz);
    int nt = nthreads > 1 && nb > 1 ? nthreads : 1;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t b = 0; b < nb; ++b) {
        size_t lo = b * bsz, m = n - lo < bsz ? n - lo : bsz;
        if (!pass) {
            decode_bucket(c, (const uint8_t *)codes + b * full_bytes, m, out + lo, accumulate,
                          scale);
            continue;
        }
        const float *in = (const float *)codes + lo;
        float *o = out + lo;
        if (accumulate)
            for (size_t k = 0; k < m; ++k)
                o[k] = o[k] + in[k] * scale;
        else
            for (size_t k = 0; k < m; ++k)
                o[k] = in[k] * scale;
    }
}

dat_status dat_quant_encode_cpu(dat_ctx *ctx, const char *func, const dat_quant_config *c,
                                const float *x, size_t n, float *residual, uint64_t key,
                                uint64_t stream, uint64_t counter0, void *codes,
                                uint64_t index_base)
{
    return dat_quant_encode_host(func, c, x, n, residual, key, stream, counter0, codes,
                                 dat_quant_threads(dat_host_threads(ctx), n), index_base);
}

dat_status dat_quant_decode_cpu(dat_ctx *ctx, const dat_quant_config *c, const void *codes,
                                size_t n, float *out, int accumulate, float scale)
{
    dat_quant_decode_host(c, codes, n, out, accumulate, scale,
                          dat_quant_threads(dat_host_threads(ctx), n));
    return DAT_OK;
}
