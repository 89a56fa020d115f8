/*
 * 2-D convolution of the CUDA backend through cuDNN's convolution API
 * (cudnnConvolutionForward / BackwardData / BackwardFilter), in every
 * activation format: x, y and w are described to cuDNN in the format's layout
 * (NHWC: a KRSC filter) and data type (bf16 with fp32 arithmetic). The
 * algorithm of each shape, format and direction is chosen once and cached in
 * the context's state: by cuDNN's heuristics (the same choice every run), or,
 * with the context's tune_convolutions, by timing cuDNN's candidates on the
 * first call's own inputs. fp32 data under DAT_PRECISION_FP32 admits only
 * algorithms that run in full fp32 (FMA math: no TF32); DAT_PRECISION_TF32
 * admits TF32 tensor cores, and bf16 data tensor cores under every precision.
 * The scratch an algorithm needs comes from the context's workspace. Bias,
 * the fused ReLU, their gradients and the folding of a staged dw into the
 * float32 KCRS one are own kernels.
 */
#include <stdlib.h>

#include "cuda_ops.h"
#include "map.h"

/* An algorithm that needs more scratch than this is passed over for the next. */
#define DAT_CONV_MAX_WORKSPACE ((size_t)1 << 30)
/* Scratch offered to the candidates while they are timed. */
#define DAT_CONV_TUNE_WORKSPACE ((size_t)256 << 20)

/* The plan key: shape and activation format (another format is another plan). */
static int same_shape(const dat_conv_desc *a, const dat_conv_desc *b)
{
    return a->n == b->n && a->c_in == b->c_in && a->h_in == b->h_in && a->w_in == b->w_in &&
           a->c_out == b->c_out && a->k_h == b->k_h && a->k_w == b->k_w &&
           a->stride == b->stride && a->pad == b->pad && a->fmt == b->fmt;
}

static int is_bf16(const dat_conv_desc *d)
{
    return (d->fmt & DAT_FMT_BF16) != 0;
}

static int is_nhwc(const dat_conv_desc *d)
{
    return (d->fmt & DAT_FMT_NHWC) != 0;
}

/* Whether tensor cores may run the convolution: always for bf16 data (the
 * format is the precision asked for, products accumulate in fp32), for fp32
 * data only under DAT_PRECISION_TF32. */
static int tensor_math(dat_ctx *ctx, const dat_conv_desc *d)
{
    return is_bf16(d) || ctx->opts.precision == DAT_PRECISION_TF32;
}

static const char *fmt_name(const dat_conv_desc *d)
{
    static const char *names[] = {"fp32 NCHW", "fp32 NHWC", "bf16 NCHW", "bf16 NHWC"};
    return names[d->fmt & 3];
}

/* x, y and w in the format's data type and layout (an NHWC filter is KRSC);
 * the arithmetic is fp32 in every format (bf16 data: cuDNN's
 * PSEUDO_BFLOAT16 configuration). */
static dat_status set_descriptors(dat_ctx *ctx, const dat_conv_desc *d)
{
    dat_cuda_state *st = dat_cuda(ctx);
    cudnnDataType_t type = is_bf16(d) ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    cudnnTensorFormat_t layout = is_nhwc(d) ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    DAT_CUDNN_TRY(cudnnSetTensor4dDescriptor(st->x_desc, layout, type, d->n, d->c_in, d->h_in,
                                             d->w_in));
    DAT_CUDNN_TRY(cudnnSetTensor4dDescriptor(st->y_desc, layout, type, d->n, d->c_out, d->h_out,
                                             d->w_out));
    DAT_CUDNN_TRY(cudnnSetFilter4dDescriptor(st->w_desc, type, layout, d->c_out, d->c_in, d->k_h,
                                             d->k_w));
    DAT_CUDNN_TRY(cudnnSetConvolution2dDescriptor(st->conv_desc, d->pad, d->pad, d->stride,
                                                  d->stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                  CUDNN_DATA_FLOAT));
    /* For fp32 data CUDNN_DEFAULT_MATH allows TF32 tensor cores (Ampere and later),
     * CUDNN_FMA_MATH does not; for bf16 data CUDNN_TENSOR_OP_MATH allows them
     * without converting anything. */
    cudnnMathType_t math = is_bf16(d)           ? CUDNN_TENSOR_OP_MATH
                           : tensor_math(ctx, d) ? CUDNN_DEFAULT_MATH
                                                 : CUDNN_FMA_MATH;
    DAT_CUDNN_TRY(cudnnSetConvolutionMathType(st->conv_desc, math));
    return DAT_OK;
}

/* cuDNN's output size must be the one every backend derived (lib/core/descs.c). */
static dat_status check_output_size(dat_cuda_state *st, const dat_conv_desc *d)
{
    int n, c, h, w;
    DAT_CUDNN_TRY(cudnnGetConvolution2dForwardOutputDim(st->conv_desc, st->x_desc, st->w_desc, &n,
                                                        &c, &h, &w));
    if (n != d->n || c != d->c_out || h != d->h_out || w != d->w_out)
        return dat_error(DAT_ERR_INTERNAL, "dat_cuda_conv", "cuDNN's output is %dx%dx%dx%d, "
                         "the descriptor's %dx%dx%dx%d", n, c, h, w, d->n, d->c_out, d->h_out,
                         d->w_out);
    return DAT_OK;
}

/* The math types a convolution admits: never a down-conversion
 * (CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION). */
static int math_ok(dat_ctx *ctx, const dat_conv_desc *d, cudnnMathType_t m)
{
    return m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH ||
           (tensor_math(ctx, d) && m == CUDNN_TENSOR_OP_MATH);
}

/* Scratch bytes of `algo` in direction `dir` for the current descriptors. */
static cudnnStatus_t algo_workspace(dat_cuda_state *st, int dir, int algo, size_t *bytes)
{
    switch (dir) {
    case DAT_CONV_FWD:
        return cudnnGetConvolutionForwardWorkspaceSize(st->dnn, st->x_desc, st->w_desc,
                                                       st->conv_desc, st->y_desc,
                                                       (cudnnConvolutionFwdAlgo_t)algo, bytes);
    case DAT_CONV_BWD_DATA:
        return cudnnGetConvolutionBackwardDataWorkspaceSize(
            st->dnn, st->w_desc, st->y_desc, st->conv_desc, st->x_desc,
            (cudnnConvolutionBwdDataAlgo_t)algo, bytes);
    default:
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(
            st->dnn, st->x_desc, st->y_desc, st->conv_desc, st->w_desc,
            (cudnnConvolutionBwdFilterAlgo_t)algo, bytes);
    }
}

/* The first of cuDNN's ranked candidates (by heuristics, or by time) that
 * succeeds, runs in an admitted math type, is deterministic where the context
 * asks for it (some algorithms add partial sums with atomics) and fits the
 * workspace cap, into
 * plan; 0 if none does. Without tensor math (fp32 data under FP32) the plan
 * runs with FMA math whatever the candidate reported, so TF32 stays off. The
 * workspace is asked for under the math type the plan runs with (the
 * descriptor's was set for the search, and the size depends on it), and is
 * at least what the candidate reported. */
template <typename Perf>
static int pick_algo(dat_ctx *ctx, int dir, const dat_conv_desc *d, const Perf *perf, int count,
                     dat_cuda_conv_plan *plan)
{
    dat_cuda_state *st = dat_cuda(ctx);
    for (int i = 0; i < count; ++i) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || !math_ok(ctx, d, perf[i].mathType) ||
            (ctx->opts.deterministic && perf[i].determinism != CUDNN_DETERMINISTIC))
            continue;
        cudnnMathType_t math = tensor_math(ctx, d) ? perf[i].mathType : CUDNN_FMA_MATH;
        size_t need = 0;
        if (cudnnSetConvolutionMathType(st->conv_desc, math) != CUDNN_STATUS_SUCCESS ||
            algo_workspace(st, dir, (int)perf[i].algo, &need) != CUDNN_STATUS_SUCCESS)
            continue;
        need = need > perf[i].memory ? need : perf[i].memory;
        if (need > DAT_CONV_MAX_WORKSPACE)
            continue;
        plan->algo = (int)perf[i].algo;
        plan->math = (int)math;
        plan->workspace_bytes = need;
        return 1;
    }
    return 0;
}

static const char *dir_name(int dir)
{
    return dir == DAT_CONV_FWD ? "forward" : dir == DAT_CONV_BWD_DATA ? "backward-data"
                                                                       : "backward-filter";
}

/* The operands of one convolution call: a and b are read, out is written
 * (fwd: x, w -> y; bwd-data: w, dy -> dx; bwd-filter: x, dy -> dw). */
struct conv_io {
    const void *a, *b;
    size_t out_bytes;
};

/* Times cuDNN's candidates on the call's own inputs, writing into a scratch
 * output (the real one may hold values the call must accumulate into). */
static dat_status tune_algo(dat_ctx *ctx, int dir, const dat_conv_desc *d, const conv_io *io,
                            dat_cuda_conv_plan *plan, int *returned, int *found)
{
    dat_cuda_state *st = dat_cuda(ctx);
    void *ws, *out = NULL;
    if (dat_cuda_capturing(ctx)) /* the search allocates and synchronizes */
        return dat_capture_refuse(ctx, "dat_cuda_conv", "timing cuDNN's algorithms for a "
                                  "convolution shape not seen before (run the step once first)");
    DAT_TRY(dat_cuda_workspace(ctx, DAT_CONV_TUNE_WORKSPACE, &ws));
    DAT_CUDA_TRY(cudaMalloc(&out, io->out_bytes));
    cudnnStatus_t e;
    if (dir == DAT_CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        e = cudnnFindConvolutionForwardAlgorithmEx(
            st->dnn, st->x_desc, io->a, st->w_desc, io->b, st->conv_desc, st->y_desc, out,
            CUDNN_CONVOLUTION_FWD_ALGO_COUNT, returned, perf, ws, DAT_CONV_TUNE_WORKSPACE);
        *found = e == CUDNN_STATUS_SUCCESS && pick_algo(ctx, dir, d, perf, *returned, plan);
    } else if (dir == DAT_CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        e = cudnnFindConvolutionBackwardDataAlgorithmEx(
            st->dnn, st->w_desc, io->a, st->y_desc, io->b, st->conv_desc, st->x_desc, out,
            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, returned, perf, ws, DAT_CONV_TUNE_WORKSPACE);
        *found = e == CUDNN_STATUS_SUCCESS && pick_algo(ctx, dir, d, perf, *returned, plan);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        e = cudnnFindConvolutionBackwardFilterAlgorithmEx(
            st->dnn, st->x_desc, io->a, st->y_desc, io->b, st->conv_desc, st->w_desc, out,
            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, returned, perf, ws,
            DAT_CONV_TUNE_WORKSPACE);
        *found = e == CUDNN_STATUS_SUCCESS && pick_algo(ctx, dir, d, perf, *returned, plan);
    }
    cudaFree(out);
    DAT_CUDNN_TRY(e);
    return DAT_OK;
}

/* Asks cuDNN's heuristics for the current descriptors. */
static dat_status heuristic_algo(dat_ctx *ctx, int dir, const dat_conv_desc *d,
                                 dat_cuda_conv_plan *plan, int *returned, int *found)
{
    dat_cuda_state *st = dat_cuda(ctx);
    if (dir == DAT_CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        DAT_CUDNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(
            st->dnn, st->x_desc, st->w_desc, st->conv_desc, st->y_desc,
            CUDNN_CONVOLUTION_FWD_ALGO_COUNT, returned, perf));
        *found = pick_algo(ctx, dir, d, perf, *returned, plan);
    } else if (dir == DAT_CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        DAT_CUDNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(
            st->dnn, st->w_desc, st->y_desc, st->conv_desc, st->x_desc,
            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, returned, perf));
        *found = pick_algo(ctx, dir, d, perf, *returned, plan);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        DAT_CUDNN_TRY(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
            st->dnn, st->x_desc, st->y_desc, st->conv_desc, st->w_desc,
            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, returned, perf));
        *found = pick_algo(ctx, dir, d, perf, *returned, plan);
    }
    return DAT_OK;
}

static dat_status choose_algo(dat_ctx *ctx, int dir, const dat_conv_desc *d, const conv_io *io,
                              dat_cuda_conv_plan *plan)
{
    int returned = 0, found = 0;
    if (ctx->opts.tune_convolutions)
        DAT_TRY(tune_algo(ctx, dir, d, io, plan, &returned, &found));
    else
        DAT_TRY(heuristic_algo(ctx, dir, d, plan, &returned, &found));
    if (!found)
        return dat_error(DAT_ERR_UNSUPPORTED, "dat_cuda_conv",
                         "cuDNN offers no %s%s%s %s algorithm within %zu MiB of workspace for "
                         "n %d, c_in %d, %dx%d, c_out %d, kernel %dx%d, stride %d, pad %d "
                         "(%d candidates)",
                         ctx->opts.deterministic ? "deterministic " : "", fmt_name(d),
                         !is_bf16(d) && tensor_math(ctx, d) ? " (TF32)" : "", dir_name(dir),
                         DAT_CONV_MAX_WORKSPACE >> 20, d->n, d->c_in, d->h_in, d->w_in,
                         d->c_out, d->k_h, d->k_w, d->stride, d->pad, returned);
    plan->dir = dir;
    plan->shape = *d;
    return DAT_OK;
}

/* One call's scratch in the context's workspace: the op's own staging
 * buffers, then the plan's cuDNN workspace after them, so the two never
 * overlap. */
struct conv_ws {
    char *own;
    void *cudnn;
};

/* Adds plan to the context's cache. */
static dat_status cache_plan(dat_cuda_state *st, const dat_cuda_conv_plan *plan)
{
    if (st->n_plans == st->cap_plans) {
        size_t cap = st->cap_plans ? 2 * st->cap_plans : 16;
        dat_cuda_conv_plan *p = (dat_cuda_conv_plan *)realloc(st->plans, cap * sizeof *p);
        if (!p)
            return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_cuda_conv",
                             "cannot grow the convolution plan cache to %zu entries", cap);
        st->plans = p;
        st->cap_plans = cap;
    }
    st->plans[st->n_plans++] = *plan;
    return DAT_OK;
}

/* Chooses the plan of a shape seen for the first time: cuDNN's algorithm, or
 * for a format other than fp32 NCHW that cuDNN does not take (descriptors,
 * algorithms), algo = -1. */
static dat_status new_plan(dat_ctx *ctx, int dir, const dat_conv_desc *d, const conv_io *io,
                           dat_cuda_conv_plan *plan)
{
    dat_cuda_state *st = dat_cuda(ctx);
    dat_status s = set_descriptors(ctx, d);
    if (s == DAT_OK)
        s = check_output_size(st, d);
    if (s == DAT_OK)
        s = choose_algo(ctx, dir, d, io, plan);
    if (s == DAT_ERR_UNSUPPORTED && d->fmt != DAT_FMT_F32) {
        dat_log(ctx, DAT_LOG_INFO, "%s: computed in float32 copies", dat_last_error());
        *plan = dat_cuda_conv_plan{dir, *d, -1, (int)CUDNN_FMA_MATH, 0};
        s = DAT_OK;
    }
    DAT_TRY(s);
    return cache_plan(st, plan);
}

/* Sets the descriptors for d and finds (or chooses and caches) the plan of
 * direction dir, with a workspace of own_bytes for the op and the plan's. A
 * plan with algo = -1 (cuDNN has nothing for the format) sets nothing: the op
 * runs in float32 copies. */
static dat_status prepare(dat_ctx *ctx, int dir, const dat_conv_desc *d, const conv_io *io,
                          size_t own_bytes, dat_cuda_conv_plan *plan, conv_ws *ws)
{
    dat_cuda_state *st = dat_cuda(ctx);
    DAT_TRY(dat_cuda_use_device(ctx));
    size_t i = 0;
    while (i < st->n_plans && !(st->plans[i].dir == dir && same_shape(&st->plans[i].shape, d)))
        ++i;
    int cached = i < st->n_plans;
    if (cached)
        *plan = st->plans[i];
    else
        DAT_TRY(new_plan(ctx, dir, d, io, plan)); /* sets the descriptors */
    if (plan->algo < 0)
        return DAT_OK;
    if (cached)
        DAT_TRY(set_descriptors(ctx, d));
    DAT_CUDNN_TRY(cudnnSetConvolutionMathType(st->conv_desc, (cudnnMathType_t)plan->math));
    own_bytes = dat_cuda_align(own_bytes);
    void *base;
    DAT_TRY(dat_cuda_workspace(ctx, own_bytes + plan->workspace_bytes, &base));
    ws->own = (char *)base;
    ws->cudnn = ws->own + own_bytes;
    return DAT_OK;
}

static size_t x_count(const dat_conv_desc *d)
{
    return (size_t)d->n * (size_t)d->c_in * (size_t)d->h_in * (size_t)d->w_in;
}

static size_t y_count(const dat_conv_desc *d)
{
    return (size_t)d->n * (size_t)d->c_out * (size_t)d->h_out * (size_t)d->w_out;
}

static size_t w_count(const dat_conv_desc *d)
{
    return (size_t)d->c_out * (size_t)d->c_in * (size_t)d->k_h * (size_t)d->k_w;
}

/* Bytes of `count` activations in d's format, aligned for the next buffer. */
static size_t act_bytes(const dat_conv_desc *d, size_t count)
{
    return dat_cuda_align(count * dat_fmt_size(d->fmt));
}

/* The gradient the backward ops use: dy, or with a fused ReLU dy where its
 * output (relu_mask) is positive and 0 elsewhere, relu_bwd's rule,
 * materialized in `scratch` (y's size) because cuDNN reads plain tensors. */
static dat_status grad_of(dat_ctx *ctx, const dat_conv_desc *d, const void *dy, void *scratch,
                          const void **g)
{
    *g = dy;
    if (!d->relu_mask)
        return DAT_OK;
    DAT_TRY(dat_cuda_relu_bwd(ctx, d->fmt, y_count(d), d->relu_mask, dy, scratch));
    *g = scratch;
    return DAT_OK;
}

/* y = y + bias[c] (bias may be NULL), then max(y, 0) when relu, in float,
 * rounded once to the format: a per-channel map (map.h). */
struct epilogue_op {
    const float *bias;
    int relu;
    struct chan {
        float bias;
    };
    __device__ chan at(int ch) const
    {
        return chan{bias ? bias[ch] : 0.0f};
    }
    template <typename T>
    __device__ T operator()(const chan &c, const T (&y)[1]) const
    {
        float v = dat_val(y[0]);
        if (bias) /* not + 0: -0 stays -0 */
            v += c.bias;
        if (relu)
            v = v > 0.0f ? v : 0.0f;
        return dat_rounded<T>(v);
    }
};

/* db[ch] = beta db[ch] + s; beta 0 overwrites. */
__device__ inline void store_bias_grad(float *db, int ch, float beta, double s)
{
    db[ch] = (float)(beta == 0.0f ? s : (double)__fmul_rn(beta, db[ch]) + s);
}

#define BIAS_UNROLL 4 /* loads in flight per thread */

/* NCHW, first pass: grid (c, splits), block (ch, s) sums values
 * [s * per, (s + 1) * per) of channel ch (n * hw of them) into
 * part[ch * splits + s], in double. */
template <typename T>
__global__ void bias_part_nchw_kernel(const T *dy, int c, int hw, size_t count, size_t per,
                                      double *part)
{
    int ch = blockIdx.x;
    size_t begin = (size_t)blockIdx.y * per, end = begin + per < count ? begin + per : count;
    size_t step = blockDim.x, j = begin + threadIdx.x;
    dat_nchw_walk w(j, step, c, hw, ch);
    double s = 0;
    for (; j + (BIAS_UNROLL - 1) * step < end; j += BIAS_UNROLL * step) {
        float v[BIAS_UNROLL];
        for (int u = 0; u < BIAS_UNROLL; ++u)
            v[u] = dat_ld(dy, w.next());
        for (int u = 0; u < BIAS_UNROLL; ++u)
            s += v[u];
    }
    for (; j < end; j += step)
        s += dat_ld(dy, w.next());
    s = dat_block_sum(s);
    if (threadIdx.x == 0)
        part[(size_t)ch * gridDim.y + blockIdx.y] = s;
}

/* NHWC, first pass: grid (channel tiles, splits), block (t, s) sums rows
 * [s * per, (s + 1) * per) of its DAT_TILE_C channels, read coalesced, into
 * part[ch * splits + s]. */
template <typename T>
__global__ void bias_part_nhwc_kernel(const T *dy, int c, size_t rows, size_t per, double *part)
{
    int ch = blockIdx.x * DAT_TILE_C + threadIdx.x;
    size_t begin = (size_t)blockIdx.y * per, end = begin + per < rows ? begin + per : rows;
    double v[1] = {0};
    if (ch < c) {
        size_t r = begin + threadIdx.y;
        for (; r + (BIAS_UNROLL - 1) * DAT_TILE_R < end; r += BIAS_UNROLL * DAT_TILE_R) {
            float u[BIAS_UNROLL];
            for (int k = 0; k < BIAS_UNROLL; ++k)
                u[k] = dat_ld(dy, (r + (size_t)k * DAT_TILE_R) * (size_t)c + (size_t)ch);
            for (int k = 0; k < BIAS_UNROLL; ++k)
                v[0] += u[k];
        }
        for (; r < end; r += DAT_TILE_R)
            v[0] += dat_ld(dy, r * (size_t)c + (size_t)ch);
    }
    dat_column_sum(v);
    if (threadIdx.y == 0 && ch < c)
        part[(size_t)ch * gridDim.y + blockIdx.y] = v[0];
}

/* Second pass: a warp per channel adds its blocks' sums. */
__global__ void bias_finish_kernel(const double *part, int splits, int c, float *db, float beta)
{
    int ch = dat_combine_channel();
    if (ch >= c) /* the whole warp */
        return;
    double s[1];
    dat_warp_combine(part, ch, splits, s);
    if (dat_combine_writer())
        store_bias_grad(db, ch, beta, s[0]);
}

/* Blocks per channel (NHWC: per channel tile) of the bias gradient, split as
 * batch norm's sums; *per: values (rows) per block. */
static int bias_splits(const dat_conv_desc *d, size_t *per)
{
    size_t count = (size_t)d->n * (size_t)d->h_out * (size_t)d->w_out;
    return dat_channel_splits(count, is_nhwc(d), per);
}

static size_t bias_part_bytes(const dat_conv_desc *d)
{
    size_t per;
    return (size_t)d->c_out * (size_t)bias_splits(d, &per) * sizeof(double);
}

/* dbias = beta dbias + sum of g per channel; part: the first pass's scratch. */
template <typename T>
static dat_status bias_grad(dat_ctx *ctx, const dat_conv_desc *d, const T *g, float *dbias,
                            float beta, double *part)
{
    cudaStream_t s = dat_cuda(ctx)->stream;
    size_t per, count = (size_t)d->n * (size_t)d->h_out * (size_t)d->w_out;
    int splits = bias_splits(d, &per);
    if (is_nhwc(d)) {
        dim3 grid((unsigned)((d->c_out + DAT_TILE_C - 1) / DAT_TILE_C), (unsigned)splits);
        bias_part_nhwc_kernel<<<grid, dim3(DAT_TILE_C, DAT_TILE_R), 0, s>>>(g, d->c_out, count,
                                                                           per, part);
        DAT_CUDA_CHECK_LAUNCH("bias_part_nhwc_kernel");
    } else {
        bias_part_nchw_kernel<<<dim3((unsigned)d->c_out, (unsigned)splits), 256, 0, s>>>(
            g, d->c_out, d->h_out * d->w_out, count, per, part);
        DAT_CUDA_CHECK_LAUNCH("bias_part_nchw_kernel");
    }
    bias_finish_kernel<<<dat_combine_blocks(d->c_out), DAT_COMBINE_THREADS, 0, s>>>(
        part, splits, d->c_out, dbias, beta);
    DAT_CUDA_CHECK_LAUNCH("bias_finish_kernel");
    return DAT_OK;
}

/* dw (float, KCRS) = beta dw + the staged dw cuDNN wrote in the format's type
 * and filter layout (KRSC in NHWC); beta 0 overwrites. */
template <typename T, bool NHWC>
__global__ void fold_dw_kernel(const T *staged, int c_in, int rs, size_t total, float beta,
                               float *dw)
{
    DAT_GRID_STRIDE(i, total) {
        size_t from = i;
        if (NHWC) {
            size_t crs = (size_t)c_in * (size_t)rs, k = i / crs, rem = i - k * crs;
            size_t c = rem / (size_t)rs, q = rem - c * (size_t)rs;
            from = (k * (size_t)rs + q) * (size_t)c_in + c;
        }
        float v = dat_ld(staged, from);
        dw[i] = beta == 0.0f ? v : __fadd_rn(__fmul_rn(beta, dw[i]), v);
    }
}

/* dst = beta dst + the `total` staged values (KRSC with c_in and rs = k_h k_w
 * when krsc, else in dst's order); beta 0 overwrites. */
template <typename T>
static dat_status fold(dat_ctx *ctx, const T *staged, bool krsc, int c_in, int rs, size_t total,
                       float beta, float *dst)
{
    auto kernel = krsc ? fold_dw_kernel<T, true> : fold_dw_kernel<T, false>;
    kernel<<<dat_cuda_grid(total, 256), 256, 0, dat_cuda(ctx)->stream>>>(staged, c_in, rs, total,
                                                                         beta, dst);
    DAT_CUDA_CHECK_LAUNCH("fold_dw_kernel");
    return DAT_OK;
}

/* The staged dw of d's format and filter layout into the float KCRS dw. */
template <typename T>
static dat_status fold_dw(dat_ctx *ctx, const dat_conv_desc *d, const T *staged, float *dw,
                          float beta)
{
    return fold(ctx, staged, is_nhwc(d), d->c_in, d->k_h * d->k_w, w_count(d), beta, dw);
}

/* ---- formats cuDNN has no algorithm for: float32 NCHW copies ---- */

/* The float32 NCHW copies of one call: `count` buffers of the given element
 * counts, carved from dat_cuda_state::f32_copies. */
static dat_status f32_copies(dat_ctx *ctx, int count, const size_t *lens, float **bufs)
{
    size_t total = 0;
    for (int k = 0; k < count; ++k)
        total += dat_cuda_align(lens[k] * sizeof(float));
    void *base;
    DAT_TRY(dat_cuda_f32_copies(ctx, total, &base));
    char *p = (char *)base;
    for (int k = 0; k < count; ++k) {
        bufs[k] = (float *)p;
        p += dat_cuda_align(lens[k] * sizeof(float));
    }
    return DAT_OK;
}

/* src (n x c x hw in format f; NULL stays NULL) into float32 NCHW dst. */
static dat_status to_f32(dat_ctx *ctx, int n, int c, int hw, dat_act_fmt f, const void *src,
                         float *dst, const float **out)
{
    *out = NULL;
    if (!src)
        return DAT_OK;
    DAT_TRY(dat_cuda_act_convert(ctx, n, c, hw, f, src, NULL, NULL, DAT_FMT_F32, dst));
    *out = dst;
    return DAT_OK;
}

static dat_conv_desc f32_desc(const dat_conv_desc *d)
{
    dat_conv_desc f = *d;
    f.fmt = DAT_FMT_F32;
    f.relu_out = 0;
    f.relu_mask = NULL;
    return f;
}

/* y = conv(x, w) without bias or ReLU (the epilogue adds them). */
static dat_status fwd_in_f32(dat_ctx *ctx, const dat_conv_desc *d, const void *x,
                             const void *w, void *y)
{
    const size_t lens[3] = {x_count(d), w_count(d), y_count(d)};
    float *b[3];
    DAT_TRY(f32_copies(ctx, 3, lens, b));
    const float *xf, *wf;
    int hw_in = d->h_in * d->w_in, hw_out = d->h_out * d->w_out, kk = d->k_h * d->k_w;
    DAT_TRY(to_f32(ctx, d->n, d->c_in, hw_in, d->fmt, x, b[0], &xf));
    DAT_TRY(to_f32(ctx, d->c_out, d->c_in, kk, d->fmt, w, b[1], &wf));
    dat_conv_desc f = f32_desc(d);
    DAT_TRY(dat_cuda_conv2d_fwd(ctx, &f, xf, wf, NULL, b[2]));
    return dat_cuda_act_convert(ctx, d->n, d->c_out, hw_out, DAT_FMT_F32, b[2], NULL, NULL,
                                d->fmt, y);
}

static dat_status bwd_data_in_f32(dat_ctx *ctx, const dat_conv_desc *d, const void *dy,
                                  const void *w, void *dx)
{
    const size_t lens[4] = {y_count(d), y_count(d), w_count(d), x_count(d)};
    float *b[4];
    DAT_TRY(f32_copies(ctx, 4, lens, b));
    const float *dyf, *maskf, *wf;
    int hw_in = d->h_in * d->w_in, hw_out = d->h_out * d->w_out, kk = d->k_h * d->k_w;
    DAT_TRY(to_f32(ctx, d->n, d->c_out, hw_out, d->fmt, dy, b[0], &dyf));
    DAT_TRY(to_f32(ctx, d->n, d->c_out, hw_out, d->fmt, d->relu_mask, b[1], &maskf));
    DAT_TRY(to_f32(ctx, d->c_out, d->c_in, kk, d->fmt, w, b[2], &wf));
    if (d->dx_add) /* the float32 convolution adds to a float32 copy of dx */
        DAT_TRY(dat_cuda_act_convert(ctx, d->n, d->c_in, hw_in, d->fmt, dx, NULL, NULL,
                                     DAT_FMT_F32, b[3]));
    dat_conv_desc f = f32_desc(d);
    f.relu_mask = maskf;
    DAT_TRY(dat_cuda_conv2d_bwd_data(ctx, &f, dyf, wf, b[3]));
    return dat_cuda_act_convert(ctx, d->n, d->c_in, hw_in, DAT_FMT_F32, b[3], NULL, NULL, d->fmt,
                                dx);
}

/* The new dw (rounded to bf16 in a bf16 format, as cuDNN's would be) and dbias
 * are computed apart, then added with beta. */
static dat_status bwd_filter_in_f32(dat_ctx *ctx, const dat_conv_desc *d, const void *x,
                                    const void *dy, float *dw, float *dbias, float beta)
{
    const size_t lens[6] = {x_count(d), y_count(d), y_count(d), w_count(d), (size_t)d->c_out,
                            w_count(d) / 2 + 1};
    float *b[6];
    DAT_TRY(f32_copies(ctx, 6, lens, b));
    const float *xf, *dyf, *maskf;
    int hw_in = d->h_in * d->w_in, hw_out = d->h_out * d->w_out;
    DAT_TRY(to_f32(ctx, d->n, d->c_in, hw_in, d->fmt, x, b[0], &xf));
    DAT_TRY(to_f32(ctx, d->n, d->c_out, hw_out, d->fmt, dy, b[1], &dyf));
    DAT_TRY(to_f32(ctx, d->n, d->c_out, hw_out, d->fmt, d->relu_mask, b[2], &maskf));
    dat_conv_desc f = f32_desc(d);
    f.relu_mask = maskf;
    DAT_TRY(dat_cuda_conv2d_bwd_filter(ctx, &f, xf, dyf, b[3], dbias ? b[4] : NULL, 0.0f));
    size_t nw = w_count(d); /* the float32 dw is KCRS already */
    if (is_bf16(d)) { /* rounded to bf16 bits in b[5] */
        DAT_TRY(dat_cuda_act_convert(ctx, 1, 1, (int)nw, DAT_FMT_F32, b[3], NULL, NULL,
                                     DAT_FMT_BF16, b[5]));
        DAT_TRY(fold(ctx, (const uint16_t *)b[5], false, 0, 0, nw, beta, dw));
    } else {
        DAT_TRY(fold(ctx, (const float *)b[3], false, 0, 0, nw, beta, dw));
    }
    return dbias ? fold(ctx, (const float *)b[4], false, 0, 0, (size_t)d->c_out, beta, dbias)
                 : DAT_OK;
}

dat_status dat_cuda_conv2d_fwd(dat_ctx *ctx, const dat_conv_desc *d, const void *x,
                               const void *w, const float *bias, void *y)
{
    dat_cuda_state *st = dat_cuda(ctx);
    dat_cuda_conv_plan plan;
    conv_ws ws;
    const conv_io io = {x, w, act_bytes(d, y_count(d))};
    DAT_TRY(prepare(ctx, DAT_CONV_FWD, d, &io, 0, &plan, &ws));
    const float one = 1.0f, zero = 0.0f;
    if (plan.algo < 0)
        DAT_TRY(fwd_in_f32(ctx, d, x, w, y));
    else
        DAT_CUDNN_TRY(cudnnConvolutionForward(st->dnn, &one, st->x_desc, x, st->w_desc, w,
                                              st->conv_desc, (cudnnConvolutionFwdAlgo_t)plan.algo,
                                              ws.cudnn, plan.workspace_bytes, &zero, st->y_desc,
                                              y));
    if (!bias && !d->relu_out)
        return DAT_OK;
    return dat_fmt_dispatch(d->fmt, [&](auto t) -> dat_status {
        using T = decltype(t);
        return dat_channel_map(ctx, d->n, d->c_out, d->h_out * d->w_out, d->fmt,
                               dat_map_io<T, 1>{{(const T *)y}, (T *)y},
                               epilogue_op{bias, d->relu_out});
    });
}

dat_status dat_cuda_conv2d_bwd_data(dat_ctx *ctx, const dat_conv_desc *d, const void *dy,
                                    const void *w, void *dx)
{
    dat_cuda_state *st = dat_cuda(ctx);
    dat_cuda_conv_plan plan;
    conv_ws ws;
    const conv_io io = {w, dy, act_bytes(d, x_count(d))};
    size_t mask_bytes = d->relu_mask ? act_bytes(d, y_count(d)) : 0;
    DAT_TRY(prepare(ctx, DAT_CONV_BWD_DATA, d, &io, mask_bytes, &plan, &ws));
    if (plan.algo < 0)
        return bwd_data_in_f32(ctx, d, dy, w, dx);
    const void *g;
    DAT_TRY(grad_of(ctx, d, dy, ws.own, &g));
    const float one = 1.0f, beta = d->dx_add ? 1.0f : 0.0f;
    DAT_CUDNN_TRY(cudnnConvolutionBackwardData(
        st->dnn, &one, st->w_desc, w, st->y_desc, g, st->conv_desc,
        (cudnnConvolutionBwdDataAlgo_t)plan.algo, ws.cudnn, plan.workspace_bytes, &beta,
        st->x_desc, dx));
    return DAT_OK;
}

/* cuDNN writes dw in the format's type and filter layout; only float KCRS
 * (fp32 NCHW) is dw's own, where cuDNN's beta accumulates directly (it does
 * not read dw when beta is 0, so 0 overwrites as documented). Every other
 * format stages cuDNN's dw in the workspace and folds it in (fold_dw). The
 * workspace's own part holds [masked dy][staged dw][bias block sums]. */
dat_status dat_cuda_conv2d_bwd_filter(dat_ctx *ctx, const dat_conv_desc *d, const void *x,
                                      const void *dy, float *dw, float *dbias, float beta)
{
    dat_cuda_state *st = dat_cuda(ctx);
    dat_cuda_conv_plan plan;
    conv_ws ws;
    int staged = is_bf16(d) || is_nhwc(d);
    size_t mask_bytes = d->relu_mask ? act_bytes(d, y_count(d)) : 0;
    size_t dw_bytes = staged ? act_bytes(d, w_count(d)) : 0;
    size_t part_bytes = dbias ? bias_part_bytes(d) : 0;
    const conv_io io = {x, dy, act_bytes(d, w_count(d))};
    DAT_TRY(prepare(ctx, DAT_CONV_BWD_FILTER, d, &io, mask_bytes + dw_bytes + part_bytes, &plan,
                    &ws));
    if (plan.algo < 0)
        return bwd_filter_in_f32(ctx, d, x, dy, dw, dbias, beta);
    const void *g;
    DAT_TRY(grad_of(ctx, d, dy, ws.own, &g));
    void *out = staged ? (void *)(ws.own + mask_bytes) : (void *)dw;
    const float one = 1.0f, zero = 0.0f;
    DAT_CUDNN_TRY(cudnnConvolutionBackwardFilter(
        st->dnn, &one, st->x_desc, x, st->y_desc, g, st->conv_desc,
        (cudnnConvolutionBwdFilterAlgo_t)plan.algo, ws.cudnn, plan.workspace_bytes,
        staged ? &zero : &beta, st->w_desc, out));
    return dat_fmt_dispatch(d->fmt, [&](auto t) -> dat_status {
        using T = decltype(t);
        if (staged)
            DAT_TRY(fold_dw(ctx, d, (const T *)out, dw, beta));
        if (dbias)
            DAT_TRY(bias_grad(ctx, d, (const T *)g, dbias, beta,
                              (double *)(ws.own + mask_bytes + dw_bytes)));
        return DAT_OK;
    });
}
