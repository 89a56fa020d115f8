/*
 * 2-D convolution of the CUDA backend through cuDNN's convolution API
 * (cudnnConvolutionForward / BackwardData / BackwardFilter). The algorithm of
 * each shape and direction is chosen once and cached in the context's state:
 * by cuDNN's heuristics (the same choice every run), or, with the context's
 * tune_convolutions, by timing cuDNN's candidates on the first call's own
 * inputs. Under DAT_PRECISION_FP32 only algorithms that run in full fp32 (FMA
 * math: no TF32) qualify; DAT_PRECISION_TF32 admits TF32 tensor cores. The
 * scratch an algorithm needs comes from the context's workspace. Bias and its
 * gradient are own kernels.
 */
#include <stdlib.h>

#include "cuda_ops.h"

/* An algorithm that needs more scratch than this is passed over for the next. */
#define DAT_CONV_MAX_WORKSPACE ((size_t)1 << 30)
/* Scratch offered to the candidates while they are timed. */
#define DAT_CONV_TUNE_WORKSPACE ((size_t)256 << 20)

static int same_shape(const dat_conv_desc *a, const dat_conv_desc *b)
{
    return a->n == b->n && a->c_in == b->c_in && a->h_in == b->h_in && a->w_in == b->w_in &&
           a->c_out == b->c_out && a->k_h == b->k_h && a->k_w == b->k_w &&
           a->stride == b->stride && a->pad == b->pad;
}

static int tf32(dat_ctx *ctx)
{
    return ctx->opts.precision == DAT_PRECISION_TF32;
}

static dat_status set_descriptors(dat_ctx *ctx, const dat_conv_desc *d)
{
    dat_cuda_state *st = dat_cuda(ctx);
    DAT_CUDNN_TRY(cudnnSetTensor4dDescriptor(st->x_desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->n,
                                             d->c_in, d->h_in, d->w_in));
    DAT_CUDNN_TRY(cudnnSetTensor4dDescriptor(st->y_desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->n,
                                             d->c_out, d->h_out, d->w_out));
    DAT_CUDNN_TRY(cudnnSetFilter4dDescriptor(st->w_desc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                             d->c_out, d->c_in, d->k_h, d->k_w));
    DAT_CUDNN_TRY(cudnnSetConvolution2dDescriptor(st->conv_desc, d->pad, d->pad, d->stride,
                                                  d->stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                  CUDNN_DATA_FLOAT));
    /* For fp32 data CUDNN_DEFAULT_MATH allows TF32 tensor cores (Ampere and later),
     * CUDNN_FMA_MATH does not. */
    DAT_CUDNN_TRY(cudnnSetConvolutionMathType(st->conv_desc,
                                              tf32(ctx) ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
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

/* The math types a context admits: never a down-conversion to fp16. */
static int math_ok(dat_ctx *ctx, cudnnMathType_t m)
{
    return m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH ||
           (tf32(ctx) && m == CUDNN_TENSOR_OP_MATH);
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
 * succeeds, runs in an admitted math type and fits the workspace cap, into
 * plan; 0 if none does. Under FP32 the plan runs with FMA math whatever the
 * candidate reported, so TF32 stays off. */
template <typename Perf>
static int pick_algo(dat_ctx *ctx, int dir, const Perf *perf, int count,
                     dat_cuda_conv_plan *plan)
{
    dat_cuda_state *st = dat_cuda(ctx);
    for (int i = 0; i < count; ++i) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || !math_ok(ctx, perf[i].mathType))
            continue;
        size_t need = 0;
        if (algo_workspace(st, dir, (int)perf[i].algo, &need) != CUDNN_STATUS_SUCCESS ||
            need > DAT_CONV_MAX_WORKSPACE)
            continue;
        plan->algo = (int)perf[i].algo;
        plan->math = tf32(ctx) ? (int)perf[i].mathType : (int)CUDNN_FMA_MATH;
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
static dat_status tune_algo(dat_ctx *ctx, int dir, const conv_io *io, dat_cuda_conv_plan *plan,
                            int *returned, int *found)
{
    dat_cuda_state *st = dat_cuda(ctx);
    void *ws, *out = NULL;
    DAT_TRY(dat_cuda_workspace(ctx, DAT_CONV_TUNE_WORKSPACE, &ws));
    DAT_CUDA_TRY(cudaMalloc(&out, io->out_bytes));
    cudnnStatus_t e;
    if (dir == DAT_CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        e = cudnnFindConvolutionForwardAlgorithmEx(
            st->dnn, st->x_desc, io->a, st->w_desc, io->b, st->conv_desc, st->y_desc, out,
            CUDNN_CONVOLUTION_FWD_ALGO_COUNT, returned, perf, ws, DAT_CONV_TUNE_WORKSPACE);
        *found = e == CUDNN_STATUS_SUCCESS && pick_algo(ctx, dir, perf, *returned, plan);
    } else if (dir == DAT_CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        e = cudnnFindConvolutionBackwardDataAlgorithmEx(
            st->dnn, st->w_desc, io->a, st->y_desc, io->b, st->conv_desc, st->x_desc, out,
            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, returned, perf, ws, DAT_CONV_TUNE_WORKSPACE);
        *found = e == CUDNN_STATUS_SUCCESS && pick_algo(ctx, dir, perf, *returned, plan);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        e = cudnnFindConvolutionBackwardFilterAlgorithmEx(
            st->dnn, st->x_desc, io->a, st->y_desc, io->b, st->conv_desc, st->w_desc, out,
            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, returned, perf, ws,
            DAT_CONV_TUNE_WORKSPACE);
        *found = e == CUDNN_STATUS_SUCCESS && pick_algo(ctx, dir, perf, *returned, plan);
    }
    cudaFree(out);
    DAT_CUDNN_TRY(e);
    return DAT_OK;
}

/* Asks cuDNN's heuristics for the current descriptors. */
static dat_status heuristic_algo(dat_ctx *ctx, int dir, dat_cuda_conv_plan *plan, int *returned,
                                 int *found)
{
    dat_cuda_state *st = dat_cuda(ctx);
    if (dir == DAT_CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        DAT_CUDNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(
            st->dnn, st->x_desc, st->w_desc, st->conv_desc, st->y_desc,
            CUDNN_CONVOLUTION_FWD_ALGO_COUNT, returned, perf));
        *found = pick_algo(ctx, dir, perf, *returned, plan);
    } else if (dir == DAT_CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        DAT_CUDNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(
            st->dnn, st->w_desc, st->y_desc, st->conv_desc, st->x_desc,
            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, returned, perf));
        *found = pick_algo(ctx, dir, perf, *returned, plan);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        DAT_CUDNN_TRY(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
            st->dnn, st->x_desc, st->y_desc, st->conv_desc, st->w_desc,
            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, returned, perf));
        *found = pick_algo(ctx, dir, perf, *returned, plan);
    }
    return DAT_OK;
}

static dat_status choose_algo(dat_ctx *ctx, int dir, const dat_conv_desc *d, const conv_io *io,
                              dat_cuda_conv_plan *plan)
{
    int returned = 0, found = 0;
    if (ctx->opts.tune_convolutions)
        DAT_TRY(tune_algo(ctx, dir, io, plan, &returned, &found));
    else
        DAT_TRY(heuristic_algo(ctx, dir, plan, &returned, &found));
    if (!found)
        return dat_error(DAT_ERR_UNSUPPORTED, "dat_cuda_conv",
                         "cuDNN offers no %s %s algorithm within %zu MiB of workspace for "
                         "n %d, c_in %d, %dx%d, c_out %d, kernel %dx%d, stride %d, pad %d "
                         "(%d candidates)",
                         tf32(ctx) ? "fp32/TF32" : "fp32", dir_name(dir),
                         DAT_CONV_MAX_WORKSPACE >> 20, d->n, d->c_in, d->h_in, d->w_in,
                         d->c_out, d->k_h, d->k_w, d->stride, d->pad, returned);
    plan->dir = dir;
    plan->shape = *d;
    return DAT_OK;
}

/* Sets the descriptors for d and finds (or chooses and caches) the plan of
 * direction dir, with its workspace. */
static dat_status prepare(dat_ctx *ctx, int dir, const dat_conv_desc *d, const conv_io *io,
                          dat_cuda_conv_plan *plan, void **ws)
{
    dat_cuda_state *st = dat_cuda(ctx);
    DAT_TRY(dat_cuda_use_device(ctx));
    DAT_TRY(set_descriptors(ctx, d));
    size_t i = 0;
    while (i < st->n_plans && !(st->plans[i].dir == dir && same_shape(&st->plans[i].shape, d)))
        ++i;
    if (i < st->n_plans) {
        *plan = st->plans[i];
    } else {
        DAT_TRY(check_output_size(st, d));
        DAT_TRY(choose_algo(ctx, dir, d, io, plan));
        if (st->n_plans == st->cap_plans) {
            size_t cap = st->cap_plans ? 2 * st->cap_plans : 16;
            dat_cuda_conv_plan *p =
                (dat_cuda_conv_plan *)realloc(st->plans, cap * sizeof *p);
            if (!p)
                return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_cuda_conv",
                                 "cannot grow the convolution plan cache to %zu entries", cap);
            st->plans = p;
            st->cap_plans = cap;
        }
        st->plans[st->n_plans++] = *plan;
    }
    DAT_CUDNN_TRY(cudnnSetConvolutionMathType(st->conv_desc, (cudnnMathType_t)plan->math));
    return dat_cuda_workspace(ctx, plan->workspace_bytes, ws);
}

/* y[n][c][p] += bias[c]. */
__global__ void add_bias_kernel(float *y, const float *bias, size_t total, dat_channel_of ch)
{
    DAT_GRID_STRIDE(i, total)
        y[i] += bias[ch(i)];
}

/* One block per channel: db[c] = beta db[c] + sum over samples and positions of
 * dy, in double; beta 0 overwrites. */
__global__ void bias_grad_kernel(const float *dy, int n, int c, int hw, float *db, float beta)
{
    int ch = blockIdx.x;
    size_t count = (size_t)n * (size_t)hw;
    double s = 0;
    for (size_t j = threadIdx.x; j < count; j += blockDim.x) {
        size_t i = j / (size_t)hw, p = j - i * (size_t)hw;
        s += dy[(i * (size_t)c + (size_t)ch) * (size_t)hw + p];
    }
    s = dat_block_sum(s);
    if (threadIdx.x == 0)
        db[ch] = (float)(beta == 0.0f ? s : (double)__fmul_rn(beta, db[ch]) + s);
}

dat_status dat_cuda_conv2d_fwd(dat_ctx *ctx, const dat_conv_desc *d, const float *x,
                               const float *w, const float *bias, float *y)
{
    dat_cuda_state *st = dat_cuda(ctx);
    dat_cuda_conv_plan plan;
    void *ws;
    const conv_io io = {x, w, sizeof(float) * (size_t)d->n * d->c_out * d->h_out * d->w_out};
    DAT_TRY(prepare(ctx, DAT_CONV_FWD, d, &io, &plan, &ws));
    const float one = 1.0f, zero = 0.0f;
    DAT_CUDNN_TRY(cudnnConvolutionForward(st->dnn, &one, st->x_desc, x, st->w_desc, w,
                                          st->conv_desc, (cudnnConvolutionFwdAlgo_t)plan.algo,
                                          ws, plan.workspace_bytes, &zero, st->y_desc, y));
    if (bias) {
        size_t total = (size_t)d->n * (size_t)d->c_out * (size_t)d->h_out * (size_t)d->w_out;
        add_bias_kernel<<<dat_cuda_grid(total, 256), 256, 0, st->stream>>>(
            y, bias, total, dat_channel_of_make(total, d->c_out, d->h_out * d->w_out));
        DAT_CUDA_CHECK_LAUNCH("add_bias_kernel");
    }
    return DAT_OK;
}

dat_status dat_cuda_conv2d_bwd_data(dat_ctx *ctx, const dat_conv_desc *d, const float *dy,
                                    const float *w, float *dx)
{
    dat_cuda_state *st = dat_cuda(ctx);
    dat_cuda_conv_plan plan;
    void *ws;
    const conv_io io = {w, dy, sizeof(float) * (size_t)d->n * d->c_in * d->h_in * d->w_in};
    DAT_TRY(prepare(ctx, DAT_CONV_BWD_DATA, d, &io, &plan, &ws));
    const float one = 1.0f, zero = 0.0f;
    DAT_CUDNN_TRY(cudnnConvolutionBackwardData(
        st->dnn, &one, st->w_desc, w, st->y_desc, dy, st->conv_desc,
        (cudnnConvolutionBwdDataAlgo_t)plan.algo, ws, plan.workspace_bytes, &zero, st->x_desc,
        dx));
    return DAT_OK;
}

dat_status dat_cuda_conv2d_bwd_filter(dat_ctx *ctx, const dat_conv_desc *d, const float *x,
                                      const float *dy, float *dw, float *dbias, float beta)
{
    dat_cuda_state *st = dat_cuda(ctx);
    dat_cuda_conv_plan plan;
    void *ws;
    const conv_io io = {x, dy, sizeof(float) * (size_t)d->c_out * d->c_in * d->k_h * d->k_w};
    DAT_TRY(prepare(ctx, DAT_CONV_BWD_FILTER, d, &io, &plan, &ws));
    /* cuDNN does not read dw when beta is 0, so 0 overwrites as documented. */
    const float one = 1.0f;
    DAT_CUDNN_TRY(cudnnConvolutionBackwardFilter(
        st->dnn, &one, st->x_desc, x, st->y_desc, dy, st->conv_desc,
        (cudnnConvolutionBwdFilterAlgo_t)plan.algo, ws, plan.workspace_bytes, &beta, st->w_desc,
        dw));
    if (dbias) {
        bias_grad_kernel<<<(unsigned)d->c_out, 256, 0, st->stream>>>(
            dy, d->n, d->c_out, d->h_out * d->w_out, dbias, beta);
        DAT_CUDA_CHECK_LAUNCH("bias_grad_kernel");
    }
    return DAT_OK;
}
