/*
 * cuDNN's legacy convolution API and cuBLAS's SGEMM, emulated on the CPU
 * (cudnn.h, cublas_v2.h).
 *
 * The descriptors are checked as strictly as the real library checks them,
 * and shapes that do not fit together are CUDNN_STATUS_BAD_PARAM (even where
 * cuDNN documents NOT_SUPPORTED for a mismatched output size): libdat treats
 * NOT_SUPPORTED of a bf16 convolution as "no algorithm, compute in float32
 * copies", which would hide a descriptor bug.
 *
 * Every call copies what it needs (descriptor contents, pointers, alpha and
 * beta) into a closure queued on its handle's stream, so a CUDA graph
 * captured from that stream replays the call as it was issued.
 *
 * Arithmetic: both libraries' work is one kernel, a blocked GEMM of dot
 * products (gemm_nt; convolutions lower to it through their receptive fields,
 * im2col style). A dot product sums runs of 64 products in float and the runs
 * in double: a normalized error of about 6e-8 (the final rounding to float is
 * 3e-8), at about 5 GMAC/s on one core; double throughout would be 2.5 times
 * slower, which the tests running on the emulation cannot afford. Results are
 * rounded once, to float and then, for bf16 outputs, to bf16 (what the CPU
 * backend's float results go through).
 *
 * Math types that let the real libraries use TF32 tensor cores on fp32 data
 * (cuDNN's DEFAULT / TENSOR_OP math, cuBLAS's TF32_TENSOR_OP_MATH) round the
 * inputs to TF32 here, so that a path which promises full fp32 but leaves TF32
 * on fails its tolerances on the CPU too.
 *
 * Determinism: the backward-filter queries offer CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0
 * first, marked CUDNN_NON_DETERMINISTIC as the real library marks it (it adds
 * partial sums with atomics, in whatever order the GPU's blocks finish), then
 * the deterministic ALGO_1. ALGO_0 here adds its chunks' partial filters in
 * float, from a chunk that changes from call to call: two identical calls give
 * different last bits, as they may on a GPU, so a test that needs the same bits
 * twice must ask for deterministic algorithms (dat_ctx_options::deterministic).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "cublas_v2.h"
#include "cudnn.h"
#include "emu.h"

#include "../../lib/core/bf16.h"

namespace {

/* ---- shared arithmetic ---- */

/* Rounds to TF32 (10 mantissa bits), to nearest even; Inf and NaN stay. */
float to_tf32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u)
        return f;
    u += 0xfffu + ((u >> 13) & 1u);
    u &= 0xffffe000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Runs of 64 products are summed in float, in eight interleaved partial sums
 * (which the compiler vectorizes without reassociating anything), and the
 * runs in double. */
double dot(const float *a, const float *b, size_t n)
{
    const size_t whole = n - n % 8;
    double s = 0;
    size_t i = 0;
    while (i < whole) {
        const size_t end = std::min(whole, i + 64);
        float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (; i < end; i += 8)
            for (int j = 0; j < 8; ++j)
                lane[j] += a[i + j] * b[i + j];
        for (float v : lane)
            s += v;
    }
    for (; i < n; ++i)
        s += (double)a[i] * b[i];
    return s;
}

/* C[i][j] += the dot product of row i of A (na rows) and row j of B (nb
 * rows), rows of len values, C's rows ldc apart. Blocked so that a block of B
 * (32 rows of 512 values, 64 KiB) stays in cache while every row of A passes
 * it; each C element collects its blocks in order, so the result does not
 * depend on anything but the inputs. */
void gemm_nt(const float *A, size_t na, const float *B, size_t nb, size_t len, double *C,
             size_t ldc)
{
    const size_t LEN_BLOCK = 512, ROW_BLOCK = 32;
    for (size_t l0 = 0; l0 < len; l0 += LEN_BLOCK) {
        const size_t ll = std::min(LEN_BLOCK, len - l0);
        for (size_t j0 = 0; j0 < nb; j0 += ROW_BLOCK) {
            const size_t j1 = std::min(j0 + ROW_BLOCK, nb);
            for (size_t i = 0; i < na; ++i) {
                const float *a = A + i * len + l0;
                double *c = C + i * ldc;
                for (size_t j = j0; j < j1; ++j)
                    c[j] += dot(a, B + j * len + l0, ll);
            }
        }
    }
}

/* dst (cols x rows) = the transpose of src (rows x cols). */
void transpose(const float *src, size_t rows, size_t cols, float *dst)
{
    for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c)
            dst[c * rows + r] = src[r * cols + c];
}

/* out = alpha acc + beta old, where beta 0 does not read old (a NaN there
 * stays out of the result, as in cuDNN and cuBLAS). */
float blend(double acc, float alpha, float beta, float old)
{
    double v = (double)alpha * acc;
    if (beta != 0.0f)
        v += (double)beta * old;
    return (float)v;
}

} // namespace

/* ================================ cuDNN ================================= */

namespace {

thread_local char last_message[512];

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
cudnnStatus_t fail(cudnnStatus_t s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    return s;
}

/* DAT_EMU_CUDNN_NO_BF16 (set, and not "0") plays a cuDNN without bf16
 * convolutions; read at every call, so a test can switch it. */
bool bf16_disabled()
{
    const char *v = getenv("DAT_EMU_CUDNN_NO_BF16");
    return v && *v && strcmp(v, "0") != 0;
}

/* A 4-d operand: logical dims (a tensor's n, c, h, w; a filter's k, c, r, s),
 * the element strides of its layout, and its data type. */
struct shape4 {
    int dim[4];
    int64_t stride[4];
    cudnnDataType_t type;
};

bool valid_type(cudnnDataType_t t)
{
    return t >= CUDNN_DATA_FLOAT && t <= CUDNN_DATA_COMPLEX_FP64;
}

/* NCHW strides for a tensor are KCRS for a filter, NHWC ones KRSC. */
cudnnStatus_t make_shape(const char *func, cudnnTensorFormat_t format, cudnnDataType_t type,
                         const int (&dim)[4], shape4 *s)
{
    if (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: format %d is neither NCHW nor NHWC", func,
                    (int)format);
    if (!valid_type(type))
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: data type %d", func, (int)type);
    if (dim[0] <= 0 || dim[1] <= 0 || dim[2] <= 0 || dim[3] <= 0)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: dims %dx%dx%dx%d (each must be >= 1)", func,
                    dim[0], dim[1], dim[2], dim[3]);
    if ((int64_t)dim[0] * dim[1] * dim[2] * dim[3] > INT32_MAX)
        return fail(CUDNN_STATUS_NOT_SUPPORTED, "%s: dims %dx%dx%dx%d exceed 2^31 - 1 elements",
                    func, dim[0], dim[1], dim[2], dim[3]);
    const int64_t c = dim[1], h = dim[2], w = dim[3];
    memcpy(s->dim, dim, sizeof s->dim);
    s->type = type;
    if (format == CUDNN_TENSOR_NCHW) {
        const int64_t st[4] = {c * h * w, h * w, w, 1};
        memcpy(s->stride, st, sizeof st);
    } else {
        const int64_t st[4] = {h * w * c, 1, w * c, c};
        memcpy(s->stride, st, sizeof st);
    }
    return CUDNN_STATUS_SUCCESS;
}

struct conv_params {
    int pad[2], stride[2], dilation[2]; /* [0] vertical, [1] horizontal */
    cudnnConvolutionMode_t mode;
    cudnnDataType_t compute;
    cudnnMathType_t math;
};

} // namespace

struct cudnnContext {
    cudaStream_t stream = nullptr;
};

struct cudnnTensorStruct {
    bool set = false;
    shape4 s;
};

struct cudnnFilterStruct {
    bool set = false;
    shape4 s;
};

struct cudnnConvolutionStruct {
    bool set = false;
    conv_params p{{0, 0}, {1, 1}, {1, 1}, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT,
                  CUDNN_DEFAULT_MATH};
};

namespace {

/* Everything one convolution call needs, checked and copied by value. In
 * every direction x is the input activation, w the filter, y the output
 * activation (backward: dx, dw and dy have the shapes of x, w and y). */
struct problem {
    shape4 x, w, y;
    conv_params c;
};

cudnnStatus_t output_dims(const char *func, const cudnnConvolutionStruct *conv,
                          const cudnnTensorStruct *x, const cudnnFilterStruct *w, int out[4])
{
    if (!conv || !x || !w || !conv->set || !x->set || !w->set)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: a convolution, tensor or filter descriptor is "
                    "NULL or was never set", func);
    if (x->s.dim[1] != w->s.dim[1])
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: the input has %d channels, the filter %d", func,
                    x->s.dim[1], w->s.dim[1]);
    out[0] = x->s.dim[0];
    out[1] = w->s.dim[0];
    for (int i = 0; i < 2; ++i) {
        const conv_params &p = conv->p;
        int64_t in = x->s.dim[2 + i], f = w->s.dim[2 + i];
        int64_t span = in + 2 * (int64_t)p.pad[i] - ((f - 1) * p.dilation[i] + 1);
        if (span < 0)
            return fail(CUDNN_STATUS_BAD_PARAM, "%s: a filter of %lld (dilation %d) is larger "
                        "than the input's %lld padded by %d", func, (long long)f, p.dilation[i],
                        (long long)in, p.pad[i]);
        out[2 + i] = (int)(span / p.stride[i] + 1);
    }
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t make_problem(const char *func, const cudnnTensorStruct *x,
                           const cudnnFilterStruct *w, const cudnnConvolutionStruct *conv,
                           const cudnnTensorStruct *y, problem *pb)
{
    int out[4];
    cudnnStatus_t s = output_dims(func, conv, x, w, out);
    if (s != CUDNN_STATUS_SUCCESS)
        return s;
    if (!y || !y->set)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: the output descriptor is NULL or was never set",
                    func);
    if (x->s.type != w->s.type || x->s.type != y->s.type)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: data types differ: input %d, filter %d, "
                    "output %d", func, (int)x->s.type, (int)w->s.type, (int)y->s.type);
    if (memcmp(out, y->s.dim, sizeof out) != 0)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: the output is %dx%dx%dx%d, the convolution's "
                    "%dx%dx%dx%d", func, y->s.dim[0], y->s.dim[1], y->s.dim[2], y->s.dim[3],
                    out[0], out[1], out[2], out[3]);
    *pb = problem{x->s, w->s, y->s, conv->p};
    return CUDNN_STATUS_SUCCESS;
}

/* Why this cuDNN has no algorithm for a well-formed problem, or NULL: it
 * runs fp32 data in fp32 (cuDNN's TRUE_FLOAT_CONFIG) and bf16 data in fp32
 * (PSEUDO_BFLOAT16_CONFIG), the latter unless DAT_EMU_CUDNN_NO_BF16. */
const char *unsupported(const problem &pb)
{
    if (pb.c.compute != CUDNN_DATA_FLOAT ||
        (pb.x.type != CUDNN_DATA_FLOAT && pb.x.type != CUDNN_DATA_BFLOAT16))
        return "only fp32 and bf16 data with fp32 compute are emulated";
    if (pb.x.type == CUDNN_DATA_BFLOAT16 && bf16_disabled())
        return "bf16 convolutions are off (DAT_EMU_CUDNN_NO_BF16)";
    return nullptr;
}

cudnnStatus_t check_supported(const char *func, const problem &pb)
{
    const char *why = unsupported(pb);
    return why ? fail(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE, "%s: %s", func, why)
               : CUDNN_STATUS_SUCCESS;
}

/* ---- the convolution loops ---- */

/* Sizes of one problem, in the names of cuDNN's documentation: input N x C x
 * H x W, filter K x C x R x S, output N x K x P x Q. */
struct geometry {
    int64_t N, C, H, W, K, R, S, P, Q;
    int64_t pad_h, pad_w, u, v, dil_h, dil_w;

    explicit geometry(const problem &pb)
        : N(pb.x.dim[0]), C(pb.x.dim[1]), H(pb.x.dim[2]), W(pb.x.dim[3]), K(pb.w.dim[0]),
          R(pb.w.dim[2]), S(pb.w.dim[3]), P(pb.y.dim[2]), Q(pb.y.dim[3]), pad_h(pb.c.pad[0]),
          pad_w(pb.c.pad[1]), u(pb.c.stride[0]), v(pb.c.stride[1]), dil_h(pb.c.dilation[0]),
          dil_w(pb.c.dilation[1])
    {
    }
    size_t filter_size() const { return (size_t)(R * S * C); }
    size_t positions() const { return (size_t)(N * P * Q); }
};

/* The loops run on channels-last float copies (NHWC; a filter KRSC), where a
 * receptive field's row is one contiguous run of (s, c) when the filter is
 * not dilated horizontally. Calls f(x_offset, w_offset, length) for each run
 * of output position (n, p, q)'s field, w_offset within one filter; taps in
 * the padding contribute nothing and are left out. */
template <typename F> void for_each_run(const geometry &g, int64_t n, int64_t p, int64_t q, F &&f)
{
    const int64_t iw0 = q * g.v - g.pad_w;
    /* the taps s with 0 <= iw0 + s dil_w < W */
    const int64_t s0 = iw0 >= 0 ? 0 : (-iw0 + g.dil_w - 1) / g.dil_w;
    const int64_t s1 = iw0 > g.W - 1 ? 0 : std::min(g.S, (g.W - 1 - iw0) / g.dil_w + 1);
    if (s0 >= s1)
        return;
    for (int64_t r = 0; r < g.R; ++r) {
        const int64_t ih = p * g.u - g.pad_h + r * g.dil_h;
        if (ih < 0 || ih >= g.H)
            continue;
        const int64_t x_row = (n * g.H + ih) * g.W + iw0, w_row = r * g.S;
        if (g.dil_w == 1) {
            f((size_t)((x_row + s0) * g.C), (size_t)((w_row + s0) * g.C),
              (size_t)((s1 - s0) * g.C));
            continue;
        }
        for (int64_t s = s0; s < s1; ++s)
            f((size_t)((x_row + s * g.dil_w) * g.C), (size_t)((w_row + s) * g.C), (size_t)g.C);
    }
}

inline float ld(const float *p, size_t i) { return p[i]; }
inline float ld(const uint16_t *p, size_t i) { return dat_bf16_bits_to_f32(p[i]); }
inline void st(float *p, size_t i, float v) { p[i] = v; }
inline void st(uint16_t *p, size_t i, float v) { p[i] = dat_f32_to_bf16_bits(v); }

/* Visits the elements of s in channels-last order: visit(seq, index), seq
 * counting 0, 1, ... in that order, index the element's place in s's layout.
 * flip reverses the spatial dims (CUDNN_CONVOLUTION's filter). */
template <typename F> void channels_last(const shape4 &s, bool flip, F &&visit)
{
    const int64_t D0 = s.dim[0], D1 = s.dim[1], D2 = s.dim[2], D3 = s.dim[3];
    size_t seq = 0;
    for (int64_t i0 = 0; i0 < D0; ++i0)
        for (int64_t j2 = 0; j2 < D2; ++j2)
            for (int64_t j3 = 0; j3 < D3; ++j3) {
                const int64_t i2 = flip ? D2 - 1 - j2 : j2, i3 = flip ? D3 - 1 - j3 : j3;
                const int64_t base = i0 * s.stride[0] + i2 * s.stride[2] + i3 * s.stride[3];
                for (int64_t i1 = 0; i1 < D1; ++i1)
                    visit(seq++, (size_t)(base + i1 * s.stride[1]));
            }
}

template <typename T>
std::vector<float> load_cl(const shape4 &s, const T *p, bool tf32, bool flip)
{
    std::vector<float> out((size_t)s.dim[0] * s.dim[1] * s.dim[2] * s.dim[3]);
    channels_last(s, flip, [&](size_t seq, size_t i) {
        float v = ld(p, i);
        out[seq] = tf32 ? to_tf32(v) : v;
    });
    return out;
}

std::vector<float> load_cl(const shape4 &s, const void *p, bool tf32, bool flip)
{
    if (s.type == CUDNN_DATA_BFLOAT16)
        return load_cl(s, (const uint16_t *)p, tf32, flip);
    return load_cl(s, (const float *)p, tf32, flip);
}

template <typename T>
void store_cl(const shape4 &s, T *p, const std::vector<double> &acc, float alpha, float beta,
              bool flip)
{
    channels_last(s, flip, [&](size_t seq, size_t i) {
        st(p, i, blend(acc[seq], alpha, beta, beta != 0.0f ? ld(p, i) : 0.0f));
    });
}

void store_cl(const shape4 &s, void *p, const std::vector<double> &acc, float alpha, float beta,
              bool flip)
{
    if (s.type == CUDNN_DATA_BFLOAT16)
        store_cl(s, (uint16_t *)p, acc, alpha, beta, flip);
    else
        store_cl(s, (float *)p, acc, alpha, beta, flip);
}

/* Tensor cores may take fp32 data as TF32 under every math type but FMA. */
bool uses_tf32(const problem &pb)
{
    return pb.x.type == CUDNN_DATA_FLOAT && pb.c.math != CUDNN_FMA_MATH;
}

/* A true convolution is a cross-correlation with the filter flipped. */
bool flips(const problem &pb)
{
    return pb.c.mode == CUDNN_CONVOLUTION;
}

/* One direction: out = alpha op(a, b) + beta out. */
typedef void (*conv_kernel)(const problem &pb, const void *a, const void *b, void *out,
                            float alpha, float beta);

/* Output positions whose receptive fields one step of the loops holds. */
const size_t CHUNK = 256;

/* The receptive fields of output positions [m0, m0 + t) (m counting n, p, q
 * in channels-last order) as t rows of R S C values in a filter's KRSC order,
 * zeros in the padding: conv(x, w) at a position is the dot product of its
 * row with a filter. */
void gather(const geometry &g, const float *xs, size_t m0, size_t t, float *rows)
{
    const size_t len = g.filter_size();
    std::fill(rows, rows + t * len, 0.0f);
    for (size_t i = 0; i < t; ++i) {
        const int64_t m = (int64_t)(m0 + i);
        float *row = rows + i * len;
        for_each_run(g, m / (g.P * g.Q), m / g.Q % g.P, m % g.Q,
                     [&](size_t xo, size_t wo, size_t n) {
                         memcpy(row + wo, xs + xo, n * sizeof(float));
                     });
    }
}

/* The reverse of gather: adds t rows of field values into dx (channels
 * last), where the fields overlap too. */
void scatter(const geometry &g, const double *rows, size_t m0, size_t t, double *dx)
{
    const size_t len = g.filter_size();
    for (size_t i = 0; i < t; ++i) {
        const int64_t m = (int64_t)(m0 + i);
        const double *row = rows + i * len;
        for_each_run(g, m / (g.P * g.Q), m / g.Q % g.P, m % g.Q,
                     [&](size_t xo, size_t wo, size_t n) {
                         for (size_t j = 0; j < n; ++j)
                             dx[xo + j] += row[wo + j];
                     });
    }
}

/* y = conv(x, w): y[m][k] = field(m) . w[k]. */
void forward(const problem &pb, const void *x, const void *w, void *y, float alpha, float beta)
{
    const geometry g(pb);
    const size_t len = g.filter_size(), K = (size_t)g.K;
    const std::vector<float> xs = load_cl(pb.x, x, uses_tf32(pb), false);
    const std::vector<float> ws = load_cl(pb.w, w, uses_tf32(pb), flips(pb));
    std::vector<double> acc(g.positions() * K);
    std::vector<float> fields(CHUNK * len);
    for (size_t m0 = 0; m0 < g.positions(); m0 += CHUNK) {
        const size_t t = std::min(CHUNK, g.positions() - m0);
        gather(g, xs.data(), m0, t, fields.data());
        gemm_nt(fields.data(), t, ws.data(), K, len, &acc[m0 * K], K);
    }
    store_cl(pb.y, y, acc, alpha, beta, false);
}

/* dx = the transpose of conv(., w) applied to dy: field gradients
 * dfield(m)[l] = dy[m] . w^T[l], scattered back over the fields. */
void backward_data(const problem &pb, const void *w, const void *dy, void *dx, float alpha,
                   float beta)
{
    const geometry g(pb);
    const size_t len = g.filter_size(), K = (size_t)g.K;
    const std::vector<float> ws = load_cl(pb.w, w, uses_tf32(pb), flips(pb));
    const std::vector<float> dys = load_cl(pb.y, dy, uses_tf32(pb), false);
    std::vector<float> wt(len * K);
    transpose(ws.data(), K, len, wt.data());
    std::vector<double> acc((size_t)(g.N * g.H * g.W * g.C)), fields(CHUNK * len);
    for (size_t m0 = 0; m0 < g.positions(); m0 += CHUNK) {
        const size_t t = std::min(CHUNK, g.positions() - m0);
        std::fill(fields.begin(), fields.end(), 0.0);
        gemm_nt(&dys[m0 * K], t, wt.data(), len, K, fields.data(), len);
        scatter(g, fields.data(), m0, t, acc.data());
    }
    store_cl(pb.x, dx, acc, alpha, beta, false);
}

/* The filter gradient's terms of one chunk of positions, m0 .. m0 + t - 1:
 * acc[k][l] += the sum over them of dy[m][k] field(m)[l], as dot products. */
struct filter_chunks {
    const geometry &g;
    const size_t len, K;
    std::vector<float> xs, dys, fields, fields_t, dy_t;

    filter_chunks(const geometry &geo, const problem &pb, const void *x, const void *dy)
        : g(geo), len(geo.filter_size()), K((size_t)geo.K),
          xs(load_cl(pb.x, x, uses_tf32(pb), false)),
          dys(load_cl(pb.y, dy, uses_tf32(pb), false)), fields(CHUNK * len),
          fields_t(len * CHUNK), dy_t(K * CHUNK)
    {
    }
    void add(size_t m0, size_t t, double *acc)
    {
        gather(g, xs.data(), m0, t, fields.data());
        transpose(fields.data(), t, len, fields_t.data());
        transpose(&dys[m0 * K], t, K, dy_t.data());
        gemm_nt(dy_t.data(), K, fields_t.data(), len, t, acc, len);
    }
};

/* dw[k][l] = the sum over positions m of dy[m][k] field(m)[l], chunk by chunk. */
void backward_filter(const problem &pb, const void *x, const void *dy, void *dw, float alpha,
                     float beta)
{
    const geometry g(pb);
    filter_chunks fc(g, pb, x, dy);
    std::vector<double> acc(fc.K * fc.len);
    for (size_t m0 = 0; m0 < g.positions(); m0 += CHUNK)
        fc.add(m0, std::min(CHUNK, g.positions() - m0), acc.data());
    store_cl(pb.w, dw, acc, alpha, beta, flips(pb));
}

/* CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, non-deterministic: as backward_filter,
 * but each chunk of positions gives a partial filter rounded to float, and the
 * partials are added in float starting from a chunk that rotates with every
 * call (a GPU's atomics add them in the order its blocks finish). */
void backward_filter_atomic(const problem &pb, const void *x, const void *dy, void *dw,
                            float alpha, float beta)
{
    static std::atomic<unsigned> calls{0};
    const geometry g(pb);
    filter_chunks fc(g, pb, x, dy);
    const size_t size = fc.K * fc.len;
    const size_t chunks = (g.positions() + CHUNK - 1) / CHUNK, first = calls++ % chunks;
    std::vector<double> part(size), acc(size);
    std::vector<float> sum(size, 0.0f);
    for (size_t i = 0; i < chunks; ++i) {
        const size_t m0 = (first + i) % chunks * CHUNK, t = std::min(CHUNK, g.positions() - m0);
        std::fill(part.begin(), part.end(), 0.0);
        fc.add(m0, t, part.data());
        for (size_t j = 0; j < size; ++j)
            sum[j] += (float)part[j];
    }
    std::copy(sum.begin(), sum.end(), acc.begin());
    store_cl(pb.w, dw, acc, alpha, beta, flips(pb));
}

/* ---- the entry points' common parts ---- */

/* The descriptors of one call, in the problem's roles. */
struct descs {
    cudnnTensorDescriptor_t x;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnTensorDescriptor_t y;
};

cudnnStatus_t checked_problem(const char *func, const descs &d, problem *pb)
{
    cudnnStatus_t s = make_problem(func, d.x, d.w, d.conv, d.y, pb);
    return s != CUDNN_STATUS_SUCCESS ? s : check_supported(func, *pb);
}

cudnnStatus_t check_algo(const char *func, int algo, int count)
{
    return algo >= 0 && algo < count
               ? CUDNN_STATUS_SUCCESS
               : fail(CUDNN_STATUS_BAD_PARAM, "%s: algorithm %d (there are %d)", func, algo,
                      count);
}

/* cuDNN requires tensor and filter pointers aligned to at least 4 bytes, bf16
 * data included (a known limitation since cuDNN 7.6); cuDNN 9 names the status. */
cudnnStatus_t check_aligned(const char *func, const void *a, const void *b, const void *out)
{
    uintptr_t bits = (uintptr_t)a | (uintptr_t)b | (uintptr_t)out;
    return bits % 4 == 0 ? CUDNN_STATUS_SUCCESS
                         : fail(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER, "%s: a data pointer "
                                "(%p, %p, %p) is not 4-byte aligned", func, a, b, out);
}

/* Queues out = alpha kernel(a, b) + beta out on the handle's stream. */
cudnnStatus_t convolve(const char *func, cudnnHandle_t h, conv_kernel kernel, int algo,
                       int algo_count, const void *alpha, const void *beta, const void *a,
                       const void *b, void *out, const descs &d)
{
    problem pb;
    if (!h || !alpha || !beta || !a || !b || !out)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: the handle, alpha, beta or a data pointer is "
                    "NULL", func);
    cudnnStatus_t s = check_algo(func, algo, algo_count);
    if (s == CUDNN_STATUS_SUCCESS)
        s = check_aligned(func, a, b, out);
    if (s == CUDNN_STATUS_SUCCESS)
        s = checked_problem(func, d, &pb);
    if (s != CUDNN_STATUS_SUCCESS)
        return s;
    const float al = *(const float *)alpha, be = *(const float *)beta;
    cudaError_t e = dat_emu::enqueue(h->stream, [=]() { kernel(pb, a, b, out, al, be); },
                                     {"cuDNN", 0, func, ""});
    return e == cudaSuccess ? CUDNN_STATUS_SUCCESS
                            : fail(CUDNN_STATUS_EXECUTION_FAILED_CUDART, "%s: %s", func,
                                   cudaGetErrorString(e));
}

cudnnStatus_t workspace_size(const char *func, cudnnHandle_t h, int algo, int algo_count,
                             const descs &d, size_t *bytes)
{
    problem pb;
    if (!h || !bytes)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: the handle or the size is NULL", func);
    cudnnStatus_t s = check_algo(func, algo, algo_count);
    if (s == CUDNN_STATUS_SUCCESS)
        s = checked_problem(func, d, &pb);
    if (s == CUDNN_STATUS_SUCCESS)
        *bytes = 0; /* the loops allocate their own scratch */
    return s;
}

/* The algorithm every query offers (a deterministic one of each direction). */
const int offered_algo[3] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                             CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
                             CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1};
const int algo_count[3] = {CUDNN_CONVOLUTION_FWD_ALGO_COUNT, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                           CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT};
const conv_kernel kernels[3] = {forward, backward_data, backward_filter};

/* The answer of an algorithm query: the offered algorithms (backward filter:
 * the non-deterministic ALGO_0 ranked first), or, where this cuDNN has none for
 * the problem, every algorithm of the direction with a NOT_SUPPORTED status
 * (what the real heuristics and searches report), the call itself succeeding. */
template <typename Perf, typename Algo>
void report(int dir, const problem &pb, int requested, float ms, int *returned, Perf *perf)
{
    const bool none = unsupported(pb) != nullptr;
    const bool atomic = !none && dir == 2; /* DIR_BWD_FILTER */
    const int offered = atomic ? 2 : 1;
    const int count = std::min(requested, none ? algo_count[dir] : offered);
    for (int i = 0; i < count; ++i) {
        const bool nondet = atomic && i == 0;
        perf[i] = Perf();
        perf[i].algo = (Algo)(none     ? i
                              : nondet ? (int)CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0
                                       : offered_algo[dir]);
        perf[i].status = none ? CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE : CUDNN_STATUS_SUCCESS;
        perf[i].time = none ? -1.0f : ms;
        perf[i].memory = 0;
        perf[i].determinism = nondet ? CUDNN_NON_DETERMINISTIC : CUDNN_DETERMINISTIC;
        perf[i].mathType = pb.c.math;
    }
    *returned = count;
}

cudnnStatus_t check_query(const char *func, cudnnHandle_t h, int requested, const int *returned,
                          const void *perf)
{
    if (!h || !returned || !perf || requested < 1)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: NULL handle or results, or %d requested", func,
                    requested);
    return CUDNN_STATUS_SUCCESS;
}

/* cudnnGet*Algorithm_v7: the heuristics' answer. */
template <typename Perf, typename Algo>
cudnnStatus_t heuristic(const char *func, int dir, cudnnHandle_t h, const descs &d, int requested,
                        int *returned, Perf *perf)
{
    problem pb;
    cudnnStatus_t s = check_query(func, h, requested, returned, perf);
    if (s == CUDNN_STATUS_SUCCESS)
        s = make_problem(func, d.x, d.w, d.conv, d.y, &pb);
    if (s == CUDNN_STATUS_SUCCESS)
        report<Perf, Algo>(dir, pb, requested, 0.0f, returned, perf);
    return s;
}

/* cudnnFind*AlgorithmEx: synchronizes with the host, as the real search does
 * (so it fails during a capture), then runs and times the convolution into
 * out (alpha 1, beta 0: the real search overwrites out too). */
template <typename Perf, typename Algo>
cudnnStatus_t search(const char *func, int dir, cudnnHandle_t h, const descs &d, const void *a,
                     const void *b, void *out, int requested, int *returned, Perf *perf)
{
    problem pb;
    cudnnStatus_t s = check_query(func, h, requested, returned, perf);
    if (s != CUDNN_STATUS_SUCCESS)
        return s;
    cudaError_t e = dat_emu::host_sync(h->stream);
    if (e != cudaSuccess)
        return fail(CUDNN_STATUS_EXECUTION_FAILED_CUDART, "%s: %s", func, cudaGetErrorString(e));
    if (!a || !b || !out)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: a data pointer is NULL", func);
    s = check_aligned(func, a, b, out);
    if (s == CUDNN_STATUS_SUCCESS)
        s = make_problem(func, d.x, d.w, d.conv, d.y, &pb);
    if (s != CUDNN_STATUS_SUCCESS)
        return s;
    float ms = 0.0f;
    if (!unsupported(pb)) {
        auto t0 = std::chrono::steady_clock::now();
        kernels[dir](pb, a, b, out, 1.0f, 0.0f);
        ms = std::chrono::duration<float, std::milli>(std::chrono::steady_clock::now() - t0)
                 .count();
    }
    report<Perf, Algo>(dir, pb, requested, ms, returned, perf);
    return CUDNN_STATUS_SUCCESS;
}

enum { DIR_FWD = 0, DIR_BWD_DATA = 1, DIR_BWD_FILTER = 2 };

template <typename T> cudnnStatus_t create(T **out)
{
    if (!out)
        return fail(CUDNN_STATUS_BAD_PARAM, "a create call got NULL");
    *out = new T();
    return CUDNN_STATUS_SUCCESS;
}

/* Destroying NULL is a no-op, as free(). */
template <typename T> cudnnStatus_t destroy(T *p)
{
    delete p;
    return CUDNN_STATUS_SUCCESS;
}

} // namespace

extern "C" {

const char *cudnnGetErrorString(cudnnStatus_t status)
{
    switch (status) {
#define DAT_EMU_NAME(s) \
    case s: return #s;
        DAT_EMU_NAME(CUDNN_STATUS_SUCCESS)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_INITIALIZED)
        DAT_EMU_NAME(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH)
        DAT_EMU_NAME(CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH)
        DAT_EMU_NAME(CUDNN_STATUS_DEPRECATED)
        DAT_EMU_NAME(CUDNN_STATUS_LICENSE_ERROR)
        DAT_EMU_NAME(CUDNN_STATUS_RUNTIME_IN_PROGRESS)
        DAT_EMU_NAME(CUDNN_STATUS_RUNTIME_FP_OVERFLOW)
        DAT_EMU_NAME(CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED)
        DAT_EMU_NAME(CUDNN_STATUS_BAD_PARAM)
        DAT_EMU_NAME(CUDNN_STATUS_BAD_PARAM_NULL_POINTER)
        DAT_EMU_NAME(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER)
        DAT_EMU_NAME(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED)
        DAT_EMU_NAME(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND)
        DAT_EMU_NAME(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT)
        DAT_EMU_NAME(CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH)
        DAT_EMU_NAME(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH)
        DAT_EMU_NAME(CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES)
        DAT_EMU_NAME(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE)
        DAT_EMU_NAME(CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH)
        DAT_EMU_NAME(CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_SHAPE)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_PADDING)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API)
        DAT_EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE)
        DAT_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR)
        DAT_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED)
        DAT_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE)
        DAT_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED)
        DAT_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED)
        DAT_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM)
        DAT_EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED)
        DAT_EMU_NAME(CUDNN_STATUS_EXECUTION_FAILED)
        DAT_EMU_NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER)
        DAT_EMU_NAME(CUDNN_STATUS_EXECUTION_FAILED_CUBLAS)
        DAT_EMU_NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDART)
        DAT_EMU_NAME(CUDNN_STATUS_EXECUTION_FAILED_CURAND)
#undef DAT_EMU_NAME
    }
    return "CUDNN_STATUS_UNKNOWN";
}

/* The message of this thread's last failed call, then cleared, as cuDNN 9. */
void cudnnGetLastErrorString(char *message, size_t max_size)
{
    if (message && max_size > 0)
        snprintf(message, max_size, "%s", last_message);
    last_message[0] = '\0';
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) { return create(handle); }

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) { return destroy(handle); }

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId)
{
    if (!handle)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetStream: NULL handle");
    handle->stream = streamId;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *tensorDesc)
{
    return create(tensorDesc);
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc)
{
    return destroy(tensorDesc);
}

/* A failed set leaves the descriptor as it was. */
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc,
                                         cudnnTensorFormat_t format, cudnnDataType_t dataType,
                                         int n, int c, int h, int w)
{
    const char *func = "cudnnSetTensor4dDescriptor";
    if (!tensorDesc)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: NULL descriptor", func);
    shape4 s;
    cudnnStatus_t r = make_shape(func, format, dataType, {n, c, h, w}, &s);
    if (r == CUDNN_STATUS_SUCCESS)
        *tensorDesc = cudnnTensorStruct{true, s};
    return r;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *filterDesc)
{
    return create(filterDesc);
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc)
{
    return destroy(filterDesc);
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc,
                                         cudnnDataType_t dataType, cudnnTensorFormat_t format,
                                         int k, int c, int h, int w)
{
    const char *func = "cudnnSetFilter4dDescriptor";
    if (!filterDesc)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: NULL descriptor", func);
    shape4 s;
    cudnnStatus_t r = make_shape(func, format, dataType, {k, c, h, w}, &s);
    if (r == CUDNN_STATUS_SUCCESS)
        *filterDesc = cudnnFilterStruct{true, s};
    return r;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *convDesc)
{
    return create(convDesc);
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc)
{
    return destroy(convDesc);
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc,
                                          cudnnMathType_t mathType)
{
    if (!convDesc || mathType < CUDNN_DEFAULT_MATH || mathType > CUDNN_FMA_MATH)
        return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolutionMathType: NULL descriptor or "
                    "math type %d", (int)mathType);
    convDesc->p.math = mathType;
    return CUDNN_STATUS_SUCCESS;
}

/* Keeps the descriptor's math type, which has a setter of its own. */
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h,
                                              int pad_w, int u, int v, int dilation_h,
                                              int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType)
{
    const char *func = "cudnnSetConvolution2dDescriptor";
    if (!convDesc)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: NULL descriptor", func);
    if (pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dilation_h < 1 || dilation_w < 1)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: pad %d,%d, stride %d,%d, dilation %d,%d", func,
                    pad_h, pad_w, u, v, dilation_h, dilation_w);
    if ((mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) || !valid_type(computeType))
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: mode %d, compute type %d", func, (int)mode,
                    (int)computeType);
    convDesc->p = conv_params{{pad_h, pad_w}, {u, v}, {dilation_h, dilation_w}, mode,
                              computeType, convDesc->p.math};
    convDesc->set = true;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                    const cudnnTensorDescriptor_t inputTensorDesc,
                                                    const cudnnFilterDescriptor_t filterDesc,
                                                    int *n, int *c, int *h, int *w)
{
    const char *func = "cudnnGetConvolution2dForwardOutputDim";
    int out[4];
    if (!n || !c || !h || !w)
        return fail(CUDNN_STATUS_BAD_PARAM, "%s: NULL output", func);
    cudnnStatus_t s = output_dims(func, convDesc, inputTensorDesc, filterDesc, out);
    if (s == CUDNN_STATUS_SUCCESS) {
        *n = out[0];
        *c = out[1];
        *h = out[2];
        *w = out[3];
    }
    return s;
}

/* ---- forward ---- */

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnFilterDescriptor_t filterDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t destDesc, const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionFwdAlgoPerf_t *perfResults)
{
    return heuristic<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
        "cudnnGetConvolutionForwardAlgorithm_v7", DIR_FWD, handle,
        {srcDesc, filterDesc, convDesc, destDesc}, requestedAlgoCount, returnedAlgoCount,
        perfResults);
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnFilterDescriptor_t wDesc, const void *w, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t yDesc, void *y, const int requestedAlgoCount,
    int *returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t *perfResults, void *workSpace,
    size_t workSpaceSizeInBytes)
{
    (void)workSpace;
    (void)workSpaceSizeInBytes;
    return search<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
        "cudnnFindConvolutionForwardAlgorithmEx", DIR_FWD, handle, {xDesc, wDesc, convDesc, yDesc},
        x, w, y, requestedAlgoCount, returnedAlgoCount, perfResults);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle,
                                                      const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc,
                                                      const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc,
                                                      cudnnConvolutionFwdAlgo_t algo,
                                                      size_t *sizeInBytes)
{
    return workspace_size("cudnnGetConvolutionForwardWorkspaceSize", handle, (int)algo,
                          algo_count[DIR_FWD], {xDesc, wDesc, convDesc, yDesc}, sizeInBytes);
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha,
                                      const cudnnTensorDescriptor_t xDesc, const void *x,
                                      const cudnnFilterDescriptor_t wDesc, const void *w,
                                      const cudnnConvolutionDescriptor_t convDesc,
                                      cudnnConvolutionFwdAlgo_t algo, void *workSpace,
                                      size_t workSpaceSizeInBytes, const void *beta,
                                      const cudnnTensorDescriptor_t yDesc, void *y)
{
    (void)workSpace;
    (void)workSpaceSizeInBytes;
    return convolve("cudnnConvolutionForward", handle, forward, (int)algo, algo_count[DIR_FWD],
                    alpha, beta, x, w, y, {xDesc, wDesc, convDesc, yDesc});
}

/* ---- backward data ---- */

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t filterDesc,
    const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t gradDesc, const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdDataAlgoPerf_t *perfResults)
{
    return heuristic<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
        "cudnnGetConvolutionBackwardDataAlgorithm_v7", DIR_BWD_DATA, handle,
        {gradDesc, filterDesc, convDesc, diffDesc}, requestedAlgoCount, returnedAlgoCount,
        perfResults);
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc, const void *w,
    const cudnnTensorDescriptor_t dyDesc, const void *dy,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t dxDesc, void *dx,
    const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdDataAlgoPerf_t *perfResults, void *workSpace, size_t workSpaceSizeInBytes)
{
    (void)workSpace;
    (void)workSpaceSizeInBytes;
    return search<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
        "cudnnFindConvolutionBackwardDataAlgorithmEx", DIR_BWD_DATA, handle,
        {dxDesc, wDesc, convDesc, dyDesc}, w, dy, dx, requestedAlgoCount, returnedAlgoCount,
        perfResults);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
    const cudnnTensorDescriptor_t dyDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t dxDesc, cudnnConvolutionBwdDataAlgo_t algo,
    size_t *sizeInBytes)
{
    return workspace_size("cudnnGetConvolutionBackwardDataWorkspaceSize", handle, (int)algo,
                          algo_count[DIR_BWD_DATA], {dxDesc, wDesc, convDesc, dyDesc},
                          sizeInBytes);
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void *alpha,
                                           const cudnnFilterDescriptor_t wDesc, const void *w,
                                           const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *workSpace,
                                           size_t workSpaceSizeInBytes, const void *beta,
                                           const cudnnTensorDescriptor_t dxDesc, void *dx)
{
    (void)workSpace;
    (void)workSpaceSizeInBytes;
    return convolve("cudnnConvolutionBackwardData", handle, backward_data, (int)algo,
                    algo_count[DIR_BWD_DATA], alpha, beta, w, dy, dx,
                    {dxDesc, wDesc, convDesc, dyDesc});
}

/* ---- backward filter ---- */

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t gradDesc, const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdFilterAlgoPerf_t *perfResults)
{
    return heuristic<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
        "cudnnGetConvolutionBackwardFilterAlgorithm_v7", DIR_BWD_FILTER, handle,
        {srcDesc, gradDesc, convDesc, diffDesc}, requestedAlgoCount, returnedAlgoCount,
        perfResults);
}

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnTensorDescriptor_t dyDesc, const void *y,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t dwDesc, void *dw,
    const int requestedAlgoCount, int *returnedAlgoCount,
    cudnnConvolutionBwdFilterAlgoPerf_t *perfResults, void *workSpace,
    size_t workSpaceSizeInBytes)
{
    (void)workSpace;
    (void)workSpaceSizeInBytes;
    return search<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
        "cudnnFindConvolutionBackwardFilterAlgorithmEx", DIR_BWD_FILTER, handle,
        {xDesc, dwDesc, convDesc, dyDesc}, x, y, dw, requestedAlgoCount, returnedAlgoCount,
        perfResults);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
    const cudnnTensorDescriptor_t dyDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t gradDesc, cudnnConvolutionBwdFilterAlgo_t algo,
    size_t *sizeInBytes)
{
    return workspace_size("cudnnGetConvolutionBackwardFilterWorkspaceSize", handle, (int)algo,
                          algo_count[DIR_BWD_FILTER], {xDesc, gradDesc, convDesc, dyDesc},
                          sizeInBytes);
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void *alpha,
                                             const cudnnTensorDescriptor_t xDesc, const void *x,
                                             const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                             const cudnnConvolutionDescriptor_t convDesc,
                                             cudnnConvolutionBwdFilterAlgo_t algo,
                                             void *workSpace, size_t workSpaceSizeInBytes,
                                             const void *beta,
                                             const cudnnFilterDescriptor_t dwDesc, void *dw)
{
    (void)workSpace;
    (void)workSpaceSizeInBytes;
    return convolve("cudnnConvolutionBackwardFilter", handle,
                    algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 ? backward_filter_atomic
                                                                : backward_filter,
                    (int)algo,
                    algo_count[DIR_BWD_FILTER], alpha, beta, x, dy, dw,
                    {xDesc, dwDesc, convDesc, dyDesc});
}

} /* extern "C" */

/* ================================ cuBLAS ================================ */

struct cublasContext {
    cudaStream_t stream = nullptr;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace {

/* One SGEMM call, copied by value: C = alpha op(A) op(B) + beta C, column
 * major, C m x n, op(A) m x k, op(B) k x n. */
struct gemm_call {
    bool ta, tb; /* transposed */
    int m, n, k;
    float alpha, beta;
    const float *A, *B;
    int lda, ldb;
    float *C;
    int ldc;
    bool tf32;
};

/* The rows of op(M), a rows x cols matrix (column major, leading dimension
 * ld, transposed when t), packed contiguously, rounded to TF32 if asked. */
std::vector<float> pack_rows(const float *M, bool t, int rows, int cols, int ld, bool tf32)
{
    std::vector<float> out((size_t)rows * (size_t)cols);
    for (int i = 0; i < rows; ++i)
        for (int l = 0; l < cols; ++l) {
            float v = t ? M[l + (size_t)i * ld] : M[i + (size_t)l * ld];
            out[(size_t)i * cols + l] = tf32 ? to_tf32(v) : v;
        }
    return out;
}

/* C(i, j) is the dot product of row i of op(A) and column j of op(B), so the
 * product is gemm_nt of op(B)^T by op(A), into column-major order. */
void run_gemm(const gemm_call &g)
{
    if (g.m == 0 || g.n == 0)
        return;
    std::vector<double> acc((size_t)g.m * (size_t)g.n, 0.0);
    /* alpha 0 or k 0: A and B are not read, C = beta C */
    const bool product = g.alpha != 0.0f && g.k > 0;
    if (product) {
        const std::vector<float> a = pack_rows(g.A, g.ta, g.m, g.k, g.lda, g.tf32);
        const std::vector<float> b = pack_rows(g.B, !g.tb, g.n, g.k, g.ldb, g.tf32);
        gemm_nt(b.data(), (size_t)g.n, a.data(), (size_t)g.m, (size_t)g.k, acc.data(),
                (size_t)g.m);
    }
    const float alpha = product ? g.alpha : 0.0f; /* an Inf alpha times no product */
    for (int j = 0; j < g.n; ++j) {
        float *c = g.C + (size_t)j * g.ldc;
        for (int i = 0; i < g.m; ++i)
            c[i] = blend(acc[(size_t)j * g.m + i], alpha, g.beta, g.beta != 0.0f ? c[i] : 0.0f);
    }
}

bool valid_op(cublasOperation_t op)
{
    return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
{
    if (!handle)
        return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasContext();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = streamId;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    int base = (int)mode & ~(int)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_PEDANTIC_MATH &&
        base != CUBLAS_TF32_TENSOR_OP_MATH)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusName(cublasStatus_t status)
{
    switch (status) {
#define DAT_EMU_NAME(s) \
    case s: return #s;
        DAT_EMU_NAME(CUBLAS_STATUS_SUCCESS)
        DAT_EMU_NAME(CUBLAS_STATUS_NOT_INITIALIZED)
        DAT_EMU_NAME(CUBLAS_STATUS_ALLOC_FAILED)
        DAT_EMU_NAME(CUBLAS_STATUS_INVALID_VALUE)
        DAT_EMU_NAME(CUBLAS_STATUS_ARCH_MISMATCH)
        DAT_EMU_NAME(CUBLAS_STATUS_MAPPING_ERROR)
        DAT_EMU_NAME(CUBLAS_STATUS_EXECUTION_FAILED)
        DAT_EMU_NAME(CUBLAS_STATUS_INTERNAL_ERROR)
        DAT_EMU_NAME(CUBLAS_STATUS_NOT_SUPPORTED)
        DAT_EMU_NAME(CUBLAS_STATUS_LICENSE_ERROR)
#undef DAT_EMU_NAME
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

const char *cublasGetStatusString(cublasStatus_t status)
{
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "error detected trying to check the license";
    }
    return "unknown error";
}

/* Checks the arguments as cuBLAS does, then queues the product. */
cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
                              cublasOperation_t transb, int m, int n, int k, const float *alpha,
                              const float *A, int lda, const float *B, int ldb, const float *beta,
                              float *C, int ldc)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    if (!valid_op(transa) || !valid_op(transb) || m < 0 || n < 0 || k < 0 || !alpha || !beta ||
        lda < std::max(1, ta ? k : m) || ldb < std::max(1, tb ? n : k) || ldc < std::max(1, m))
        return CUBLAS_STATUS_INVALID_VALUE;
    int base = (int)handle->math & ~(int)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    const gemm_call g{ta, tb, m, n, k, *alpha, *beta, A, B, lda, ldb, C, ldc,
                      base == CUBLAS_TF32_TENSOR_OP_MATH};
    cudaError_t e =
        dat_emu::enqueue(handle->stream, [g]() { run_gemm(g); }, {"cuBLAS", 0, "cublasSgemm", ""});
    return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

} /* extern "C" */
