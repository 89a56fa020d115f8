/* The CUDA backend: life cycle (stream, cuBLAS and cuDNN handles, workspace),
 * memory, copies, fills, conversions, the Philox kernels, and the op table. */
#include <stdlib.h>

#include "cuda_common.h"
#include "cuda_ops.h"
#include "../lib/core/bf16.h"
#include "../lib/core/philox.h"

static dat_status use_device(dat_ctx *ctx)
{
    return dat_cuda_use_device(ctx);
}

/* Bytes of st->scalars: room for the host-bound results of the reductions. */
#define DAT_CUDA_SCALAR_BYTES 256

/* The library handles, bound to the context's stream. DAT_PRECISION_FP32: full
 * fp32 arithmetic (cuBLAS's default math mode does not use TF32, and cuDNN's
 * FMA math type, set on the convolution descriptor in ops_conv.cu, keeps it
 * off for convolutions), so both agree with the CPU backend to fp32 rounding.
 * DAT_PRECISION_TF32 lets both use TF32 tensor cores. */
static dat_status init_libraries(dat_cuda_state *st, dat_precision precision)
{
    DAT_CUBLAS_TRY(cublasCreate(&st->blas));
    DAT_CUBLAS_TRY(cublasSetStream(st->blas, st->stream));
    DAT_CUBLAS_TRY(cublasSetMathMode(st->blas, precision == DAT_PRECISION_TF32
                                                   ? CUBLAS_TF32_TENSOR_OP_MATH
                                                   : CUBLAS_DEFAULT_MATH));
    DAT_CUDNN_TRY(cudnnCreate(&st->dnn));
    DAT_CUDNN_TRY(cudnnSetStream(st->dnn, st->stream));
    DAT_CUDNN_TRY(cudnnCreateTensorDescriptor(&st->x_desc));
    DAT_CUDNN_TRY(cudnnCreateTensorDescriptor(&st->y_desc));
    DAT_CUDNN_TRY(cudnnCreateFilterDescriptor(&st->w_desc));
    DAT_CUDNN_TRY(cudnnCreateConvolutionDescriptor(&st->conv_desc));
    DAT_CUDA_TRY(cudaMalloc(&st->scalars, DAT_CUDA_SCALAR_BYTES));
    return DAT_OK;
}

static dat_status cuda_init(dat_ctx *ctx)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        (void)cudaGetLastError(); /* clear the sticky-free error for later calls */
        return dat_error(DAT_ERR_NO_DEVICE, "dat_ctx_create",
                         "a CUDA context was asked for, but no CUDA device is present (%s)",
                         e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    }
    int ordinal = ctx->opts.device_ordinal;
    if (ordinal >= count)
        return dat_error(DAT_ERR_NO_DEVICE, "dat_ctx_create",
                         "device_ordinal = %d, but only %d CUDA device(s) are present", ordinal,
                         count);
    dat_cuda_state *st = (dat_cuda_state *)calloc(1, sizeof *st);
    if (!st)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "dat_ctx_create", "cannot allocate CUDA state");
    st->device = ordinal;
    ctx->backend_state = st;
#ifdef DAT_CUDA_EMULATED
    dat_log(ctx, DAT_LOG_INFO,
            "this libdat was built with gpu_emulation: CUDA contexts run on the CPU, for tests");
#endif
    DAT_CUDA_TRY(cudaSetDevice(ordinal));
    DAT_CUDA_TRY(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking));
    return init_libraries(st, ctx->opts.precision);
}

static void cuda_fini(dat_ctx *ctx)
{
    dat_cuda_state *st = dat_cuda(ctx);
    if (!st)
        return;
    cudaSetDevice(st->device);
    if (st->capturing) { /* destroyed while capturing: end it, so the frees work */
        cudaGraph_t g = NULL;
        if (cudaStreamEndCapture(st->stream, &g) == cudaSuccess && g)
            cudaGraphDestroy(g);
        (void)cudaGetLastError();
        st->capturing = 0;
    }
    if (st->stream)
        cudaStreamSynchronize(st->stream);
    dat_cuda_release_deferred(st);
    free(st->deferred_frees);
    /* Any of these may be missing after a failed init. */
    if (st->conv_desc)
        cudnnDestroyConvolutionDescriptor(st->conv_desc);
    if (st->w_desc)
        cudnnDestroyFilterDescriptor(st->w_desc);
    if (st->y_desc)
        cudnnDestroyTensorDescriptor(st->y_desc);
    if (st->x_desc)
        cudnnDestroyTensorDescriptor(st->x_desc);
    if (st->dnn)
        cudnnDestroy(st->dnn);
    if (st->blas)
        cublasDestroy(st->blas);
    cudaFree(st->workspace);
    cudaFree(st->f32_copies);
    cudaFree(st->scalars);
    free(st->plans);
    if (st->stream)
        cudaStreamDestroy(st->stream);
    free(st);
    ctx->backend_state = NULL;
}

/* Grows *buf (of *cap bytes) to hold `bytes`; a move is counted in
 * workspace_moves, which captured graphs check. */
static dat_status grow(dat_ctx *ctx, void **buf, size_t *cap, size_t bytes, void **out)
{
    dat_cuda_state *st = dat_cuda(ctx);
    if (bytes <= *cap) {
        *out = *buf;
        return DAT_OK;
    }
    *out = NULL;
    if (dat_cuda_capturing(ctx))
        return dat_capture_refuse(ctx, "dat_cuda_workspace",
                                  "growing the workspace (run the step once op by op first)");
    /* Queued kernels may still read the old buffer. */
    DAT_CUDA_TRY(cudaStreamSynchronize(st->stream));
    cudaFree(*buf);
    *buf = NULL;
    *cap = 0;
    /* Whole MiB, and at least 1.5x the old size, so slowly growing shapes do
     * not reallocate at every step. */
    size_t want = bytes + bytes / 2;
    want = (want + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, want);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        want = bytes; /* the exact size may still fit */
        e = cudaMalloc(&p, want);
    }
    if (e != cudaSuccess)
        return dat_cuda_error(e, "dat_cuda_workspace", "cudaMalloc of the workspace");
    *buf = p;
    *cap = want;
    st->workspace_moves++;
    *out = p;
    return DAT_OK;
}

dat_status dat_cuda_workspace(dat_ctx *ctx, size_t bytes, void **ws)
{
    dat_cuda_state *st = dat_cuda(ctx);
    return grow(ctx, &st->workspace, &st->workspace_bytes, bytes, ws);
}

dat_status dat_cuda_f32_copies(dat_ctx *ctx, size_t bytes, void **p)
{
    dat_cuda_state *st = dat_cuda(ctx);
    return grow(ctx, &st->f32_copies, &st->f32_copies_bytes, bytes, p);
}

static dat_status cuda_synchronize(dat_ctx *ctx)
{
    if (dat_cuda_capturing(ctx))
        return dat_capture_refuse(ctx, "dat_ctx_synchronize", "a synchronization");
    DAT_TRY(use_device(ctx));
    DAT_CUDA_TRY(cudaStreamSynchronize(dat_cuda(ctx)->stream));
    return DAT_OK;
}

static dat_status cuda_alloc(dat_ctx *ctx, size_t nbytes, void **ptr)
{
    *ptr = NULL;
    if (dat_cuda_capturing(ctx))
        return dat_capture_refuse(ctx, "dat_cuda_alloc",
                                  "an allocation (run the step once op by op first)");
    DAT_TRY(use_device(ctx));
    void *p = NULL;
    DAT_CUDA_TRY(cudaMalloc(&p, nbytes ? nbytes : 1));
    cudaError_t e = cudaMemsetAsync(p, 0, nbytes, dat_cuda(ctx)->stream);
    if (e != cudaSuccess) {
        cudaFree(p);
        return dat_cuda_error(e, __func__, "cudaMemsetAsync");
    }
    *ptr = p;
    return DAT_OK;
}

/* Keeps ptr for dat_cuda_release_deferred; 0 if the list cannot grow. */
static int defer_free(dat_cuda_state *st, void *ptr)
{
    if (st->n_deferred_frees == st->cap_deferred_frees) {
        size_t cap = st->cap_deferred_frees ? 2 * st->cap_deferred_frees : 8;
        void **p = (void **)realloc(st->deferred_frees, cap * sizeof *p);
        if (!p)
            return 0;
        st->deferred_frees = p;
        st->cap_deferred_frees = cap;
    }
    st->deferred_frees[st->n_deferred_frees++] = ptr;
    return 1;
}

size_t dat_cuda_release_deferred(dat_cuda_state *st)
{
    size_t n = st->n_deferred_frees;
    for (size_t k = 0; k < n; ++k)
        cudaFree(st->deferred_frees[k]);
    st->n_deferred_frees = 0;
    return n;
}

static void cuda_free(dat_ctx *ctx, void *ptr)
{
    if (!ptr)
        return;
    dat_cuda_state *st = dat_cuda(ctx);
    if (dat_cuda_capturing(ctx)) {
        /* The recording fails either way (the graph might use the buffer);
         * without room to defer, cudaFree spoils the capture and the buffer
         * leaks, as it would without this check. */
        (void)dat_capture_refuse(ctx, "dat_cuda_free", "freeing device memory (a destroy call)");
        if (defer_free(st, ptr))
            return;
    }
    cudaSetDevice(st->device);
    cudaFree(ptr); /* synchronizes with pending work on the buffer */
}

static dat_status cuda_copy_from_host(dat_ctx *ctx, void *dst, const void *src, size_t nbytes)
{
    if (dat_cuda_capturing(ctx))
        return dat_capture_refuse(ctx, "dat_cuda_copy_from_host", "a copy from host memory");
    DAT_TRY(use_device(ctx));
    cudaStream_t s = dat_cuda(ctx)->stream;
    DAT_CUDA_TRY(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, s));
    /* The caller may free or reuse its buffer as soon as we return. */
    DAT_CUDA_TRY(cudaStreamSynchronize(s));
    return DAT_OK;
}

static dat_status cuda_copy_to_host(dat_ctx *ctx, void *dst, const void *src, size_t nbytes)
{
    if (dat_cuda_capturing(ctx))
        return dat_capture_refuse(ctx, "dat_cuda_copy_to_host", "reading back to the host");
    DAT_TRY(use_device(ctx));
    cudaStream_t s = dat_cuda(ctx)->stream;
    DAT_CUDA_TRY(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, s));
    DAT_CUDA_TRY(cudaStreamSynchronize(s));
    return DAT_OK;
}

static dat_status cuda_copy(dat_ctx *ctx, void *dst, const void *src, size_t nbytes)
{
    DAT_TRY(use_device(ctx));
    DAT_CUDA_TRY(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, dat_cuda(ctx)->stream));
    return DAT_OK;
}

template <typename T>
__global__ void fill_kernel(T *dst, size_t n, T v)
{
    DAT_GRID_STRIDE(i, n)
        dst[i] = v;
}

static dat_status cuda_fill(dat_ctx *ctx, void *dst, size_t count, const void *pattern,
                            size_t elem_size)
{
    DAT_TRY(use_device(ctx));
    cudaStream_t s = dat_cuda(ctx)->stream;
    switch (elem_size) {
    case 1:
        DAT_CUDA_TRY(cudaMemsetAsync(dst, *(const uint8_t *)pattern, count, s));
        return DAT_OK;
    case 2:
        fill_kernel<<<dat_cuda_grid(count, 256), 256, 0, s>>>((uint16_t *)dst, count,
                                                             *(const uint16_t *)pattern);
        break;
    case 4:
        fill_kernel<<<dat_cuda_grid(count, 256), 256, 0, s>>>((uint32_t *)dst, count,
                                                             *(const uint32_t *)pattern);
        break;
    case 8: /* a step graph's counters (lib/core/capture.h) */
        fill_kernel<<<dat_cuda_grid(count, 256), 256, 0, s>>>((uint64_t *)dst, count,
                                                             *(const uint64_t *)pattern);
        break;
    default:
        return dat_error(DAT_ERR_INTERNAL, __func__, "element size %zu", elem_size);
    }
    DAT_CUDA_CHECK_LAUNCH("fill_kernel");
    return DAT_OK;
}

__global__ void f32_to_bf16_kernel(uint16_t *dst, const float *src, size_t n)
{
    DAT_GRID_STRIDE(i, n)
        dst[i] = dat_f32_to_bf16_bits(src[i]);
}

__global__ void bf16_to_f32_kernel(float *dst, const uint16_t *src, size_t n)
{
    DAT_GRID_STRIDE(i, n)
        dst[i] = dat_bf16_bits_to_f32(src[i]);
}

static dat_status cuda_f32_to_bf16(dat_ctx *ctx, uint16_t *dst, const float *src, size_t n)
{
    DAT_TRY(use_device(ctx));
    f32_to_bf16_kernel<<<dat_cuda_grid(n, 256), 256, 0, dat_cuda(ctx)->stream>>>(dst, src, n);
    DAT_CUDA_CHECK_LAUNCH("f32_to_bf16_kernel");
    return DAT_OK;
}

static dat_status cuda_bf16_to_f32(dat_ctx *ctx, float *dst, const uint16_t *src, size_t n)
{
    DAT_TRY(use_device(ctx));
    bf16_to_f32_kernel<<<dat_cuda_grid(n, 256), 256, 0, dat_cuda(ctx)->stream>>>(dst, src, n);
    DAT_CUDA_CHECK_LAUNCH("bf16_to_f32_kernel");
    return DAT_OK;
}

/* One thread per Philox block of 4 stream positions, as the CPU backend does. */
__global__ void rng_kernel(int normal, float *dst, size_t n, float a, float b, uint64_t seed,
                           uint64_t stream, const uint64_t *stream_low, uint64_t offset,
                           uint64_t first, uint64_t nblocks)
{
    if (stream_low)
        stream |= *stream_low & 0xffffffffu;
    for (uint64_t k = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; k < nblocks;
         k += (uint64_t)gridDim.x * blockDim.x) {
        uint64_t blk = first + k;
        dat_philox_ctr c = dat_philox_block(seed, stream, blk);
        float v[4];
        if (normal) {
            dat_box_muller(c.v[0], c.v[1], &v[0], &v[1]);
            dat_box_muller(c.v[2], c.v[3], &v[2], &v[3]);
            for (int j = 0; j < 4; ++j)
                v[j] = dat_normal_affine(v[j], a, b);
        } else {
            for (int j = 0; j < 4; ++j)
                v[j] = dat_uniform_from_u32(c.v[j], a, b);
        }
        for (int j = 0; j < 4; ++j) {
            uint64_t pos = blk * 4 + (uint64_t)j;
            if (pos >= offset && pos - offset < n)
                dst[pos - offset] = v[j];
        }
    }
}

static dat_status rng_launch(dat_ctx *ctx, int normal, float *dst, size_t n, float a, float b,
                             uint64_t seed, uint64_t stream, const uint64_t *stream_low,
                             uint64_t offset)
{
    if (n == 0)
        return DAT_OK;
    DAT_TRY(use_device(ctx));
    uint64_t first = offset >> 2, last = (offset + n - 1) >> 2, nblocks = last - first + 1;
    rng_kernel<<<dat_cuda_grid(nblocks, 256), 256, 0, dat_cuda(ctx)->stream>>>(
        normal, dst, n, a, b, seed, stream, stream_low, offset, first, nblocks);
    DAT_CUDA_CHECK_LAUNCH("rng_kernel");
    return DAT_OK;
}

static dat_status cuda_rng_uniform(dat_ctx *ctx, float *dst, size_t n, float low, float high,
                                   uint64_t seed, uint64_t stream, const uint64_t *stream_low,
                                   uint64_t offset)
{
    return rng_launch(ctx, 0, dst, n, low, high, seed, stream, stream_low, offset);
}

static dat_status cuda_rng_normal(dat_ctx *ctx, float *dst, size_t n, float mean, float std,
                                  uint64_t seed, uint64_t stream, const uint64_t *stream_low,
                                  uint64_t offset)
{
    return rng_launch(ctx, 1, dst, n, mean, std, seed, stream, stream_low, offset);
}

extern "C" int dat_cuda_count_devices(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return count;
}

static dat_backend make_cuda_backend(void)
{
    dat_backend be = {};
    be.name = "cuda";
    /* The fused batch-norm + ReLU kernels (ops_bn.cu) and the quantizer kernels
     * (ops_quant.cu) passed test_backend_ops on an H100 (session 6). */
    be.fuses_bn_relu = 1;
    be.runs_quantizer = 1;
    /* Channels last under bf16, the layout cuDNN's tensor-core convolutions
     * read natively (NCHW costs them transposes); fp32 models stay NCHW. */
    be.nhwc_precisions = 1u << DAT_PRECISION_BF16;
    be.init = cuda_init;
    be.fini = cuda_fini;
    be.synchronize = cuda_synchronize;
    be.alloc = cuda_alloc;
    be.free = cuda_free;
    be.copy_from_host = cuda_copy_from_host;
    be.copy_to_host = cuda_copy_to_host;
    be.copy = cuda_copy;
    be.fill = cuda_fill;
    be.f32_to_bf16 = cuda_f32_to_bf16;
    be.bf16_to_f32 = cuda_bf16_to_f32;
    be.rng_uniform = cuda_rng_uniform;
    be.rng_normal = cuda_rng_normal;
    /* Layer ops (ops_*.cu); semantics in lib/core/backend.h. */
    be.gemm = dat_cuda_gemm;
    be.conv2d_fwd = dat_cuda_conv2d_fwd;
    be.conv2d_bwd_data = dat_cuda_conv2d_bwd_data;
    be.conv2d_bwd_filter = dat_cuda_conv2d_bwd_filter;
    be.linear_fwd = dat_cuda_linear_fwd;
    be.linear_bwd = dat_cuda_linear_bwd;
    be.bn_fwd_train = dat_cuda_bn_fwd_train;
    be.bn_fwd_eval = dat_cuda_bn_fwd_eval;
    be.bn_bwd_train = dat_cuda_bn_bwd_train;
    be.bn_bwd_eval = dat_cuda_bn_bwd_eval;
    be.relu_fwd = dat_cuda_relu_fwd;
    be.relu_bwd = dat_cuda_relu_bwd;
    be.pool_fwd = dat_cuda_pool_fwd;
    be.pool_bwd = dat_cuda_pool_bwd;
    be.act_convert = dat_cuda_act_convert;
    be.add = dat_cuda_add;
    be.add_relu = dat_cuda_add_relu;
    be.axpy = dat_cuda_axpy;
    be.scale = dat_cuda_scale;
    be.softmax_xent = dat_cuda_softmax_xent;
    be.kl_div = dat_cuda_kl_div;
    be.argmax = dat_cuda_argmax;
    be.check_finite = dat_cuda_check_finite;
    be.flag_range = dat_cuda_flag_range;
    be.flag_labels = dat_cuda_flag_labels;
    be.copy_if_flagged = dat_cuda_copy_if_flagged;
    be.attack_linf_step = dat_cuda_attack_linf_step;
    be.attack_l2_step = dat_cuda_attack_l2_step;
    be.rows_renorm = dat_cuda_rows_renorm;
    be.minmax = dat_cuda_minmax;
    be.optim_update = dat_cuda_optim_update;
    be.quant_encode = dat_cuda_quant_encode;
    be.quant_decode = dat_cuda_quant_decode;
    be.quant_encode_deferred = dat_cuda_quant_encode_deferred;
    be.quant_flag_failed = dat_cuda_quant_flag_failed;
    be.quant_apply_failure = dat_cuda_quant_apply_failure;
    be.capture_begin = dat_cuda_capture_begin;
    be.capture_end = dat_cuda_capture_end;
    be.graph_launch = dat_cuda_graph_launch;
    be.graph_destroy = dat_cuda_graph_destroy;
    return be;
}

extern "C" const dat_backend dat_backend_cuda = make_cuda_backend();
