/* The CPU backend: the reference implementation of every op. */
#include <stdlib.h>
#include <string.h>

#include "../core/bf16.h"
#include "../core/ctx.h"
#include "../core/error.h"
#include "../core/philox.h"
#include "../optim/optim.h"
#include "../quant/quantize.h"
#include "cpu.h"

/* Below this many elements a parallel region costs more than it saves. */
#define DAT_CPU_PAR_MIN 32768

static dat_status cpu_init(dat_ctx *ctx)
{
    dat_cpu_blas_core(ctx); /* OpenBLAS's thread count: each GEMM sets it (ops_gemm.c) */
    return dat_cpu_state_init(ctx);
}

static void cpu_fini(dat_ctx *ctx)
{
    dat_cpu_state_fini(ctx);
}

static dat_status cpu_synchronize(dat_ctx *ctx)
{
    (void)ctx;
    return DAT_OK;
}

static dat_status cpu_alloc(dat_ctx *ctx, size_t nbytes, void **ptr)
{
    (void)ctx;
    /* 64-byte alignment for vector loads; aligned_alloc wants a multiple. */
    size_t rounded = (nbytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) {
        *ptr = NULL;
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "cpu_alloc", "cannot allocate %zu bytes",
                         nbytes);
    }
    memset(p, 0, rounded ? rounded : 64);
    *ptr = p;
    return DAT_OK;
}

static void cpu_free(dat_ctx *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

static dat_status cpu_copy(dat_ctx *ctx, void *dst, const void *src, size_t nbytes)
{
    (void)ctx;
    if (nbytes)
        memmove(dst, src, nbytes);
    return DAT_OK;
}

static dat_status cpu_fill(dat_ctx *ctx, void *dst, size_t count, const void *pattern,
                           size_t elem_size)
{
    int nt = dat_cpu_threads(ctx, count);
    switch (elem_size) {
    case 1:
        memset(dst, *(const uint8_t *)pattern, count);
        return DAT_OK;
    case 2: {
        uint16_t v;
        memcpy(&v, pattern, 2);
        uint16_t *d = dst;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < count; ++i)
            d[i] = v;
        return DAT_OK;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, pattern, 4);
        uint32_t *d = dst;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < count; ++i)
            d[i] = v;
        return DAT_OK;
    }
    case 8: {
        uint64_t v;
        memcpy(&v, pattern, 8);
        uint64_t *d = dst;
        for (size_t i = 0; i < count; ++i)
            d[i] = v;
        return DAT_OK;
    }
    default:
        return dat_error(DAT_ERR_INTERNAL, "cpu_fill", "element size %zu", elem_size);
    }
}

static dat_status cpu_f32_to_bf16(dat_ctx *ctx, uint16_t *dst, const float *src, size_t n)
{
    int nt = dat_cpu_threads(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; ++i)
        dst[i] = dat_f32_to_bf16_bits(src[i]);
    return DAT_OK;
}

static dat_status cpu_bf16_to_f32(dat_ctx *ctx, float *dst, const uint16_t *src, size_t n)
{
    int nt = dat_cpu_threads(ctx, n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < n; ++i)
        dst[i] = dat_bf16_bits_to_f32(src[i]);
    return DAT_OK;
}

/* Values of positions 4b .. 4b+3 of a stream: uniform or normal. */
static void rng_block(int normal, float a, float b, uint64_t seed, uint64_t stream,
                      uint64_t block, float v[4])
{
    dat_philox_ctr c = dat_philox_block(seed, stream, block);
    if (normal) {
        float z[4];
        dat_box_muller(c.v[0], c.v[1], &z[0], &z[1]);
        dat_box_muller(c.v[2], c.v[3], &z[2], &z[3]);
        for (int j = 0; j < 4; ++j)
            v[j] = dat_normal_affine(z[j], a, b);
    } else {
        for (int j = 0; j < 4; ++j)
            v[j] = dat_uniform_from_u32(c.v[j], a, b);
    }
}

static void rng_fill(dat_ctx *ctx, int normal, float *dst, size_t n, float a, float b,
                     uint64_t seed, uint64_t stream, uint64_t offset)
{
    if (n == 0)
        return;
    uint64_t first = offset >> 2, last = (offset + n - 1) >> 2;
    int nt = dat_cpu_threads(ctx, n / 8);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (uint64_t blk = first; blk <= last; ++blk) {
        float v[4];
        rng_block(normal, a, b, seed, stream, blk, v);
        for (int j = 0; j < 4; ++j) {
            uint64_t pos = blk * 4 + (uint64_t)j;
            if (pos >= offset && pos - offset < n)
                dst[pos - offset] = v[j];
        }
    }
}

static dat_status cpu_rng_uniform(dat_ctx *ctx, float *dst, size_t n, float low, float high,
                                  uint64_t seed, uint64_t stream, const uint64_t *stream_low,
                                  uint64_t offset)
{
    if (stream_low)
        stream |= *stream_low & 0xffffffffu;
    rng_fill(ctx, 0, dst, n, low, high, seed, stream, offset);
    return DAT_OK;
}

static dat_status cpu_rng_normal(dat_ctx *ctx, float *dst, size_t n, float mean, float std,
                                 uint64_t seed, uint64_t stream, const uint64_t *stream_low,
                                 uint64_t offset)
{
    if (stream_low)
        stream |= *stream_low & 0xffffffffu;
    rng_fill(ctx, 1, dst, n, mean, std, seed, stream, offset);
    return DAT_OK;
}

int dat_cpu_threads(const dat_ctx *ctx, size_t work)
{
    if (work < DAT_CPU_PAR_MIN)
        return 1;
    return dat_host_threads(ctx);
}

const dat_backend dat_backend_cpu = {
    .name = "cpu",
    .fuses_conv_relu = 1,
    .fuses_bn_relu = 1,
    .runs_quantizer = 1,
    .nhwc_precisions = 0,
    .init = cpu_init,
    .fini = cpu_fini,
    .synchronize = cpu_synchronize,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy_from_host = cpu_copy,
    .copy_to_host = cpu_copy,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .f32_to_bf16 = cpu_f32_to_bf16,
    .bf16_to_f32 = cpu_bf16_to_f32,
    .rng_uniform = cpu_rng_uniform,
    .rng_normal = cpu_rng_normal,
    .gemm = dat_cpu_gemm,
    .conv2d_fwd = dat_cpu_fmt_conv2d_fwd,
    .conv2d_bwd_data = dat_cpu_fmt_conv2d_bwd_data,
    .conv2d_bwd_filter = dat_cpu_fmt_conv2d_bwd_filter,
    .pool_fwd = dat_cpu_fmt_pool_fwd,
    .pool_bwd = dat_cpu_fmt_pool_bwd,
    .linear_fwd = dat_cpu_linear_fwd,
    .linear_bwd = dat_cpu_linear_bwd,
    .bn_fwd_train = dat_cpu_fmt_bn_fwd_train,
    .bn_fwd_eval = dat_cpu_fmt_bn_fwd_eval,
    .bn_bwd_train = dat_cpu_fmt_bn_bwd_train,
    .bn_bwd_eval = dat_cpu_fmt_bn_bwd_eval,
    .relu_fwd = dat_cpu_fmt_relu_fwd,
    .relu_bwd = dat_cpu_fmt_relu_bwd,
    .act_convert = dat_cpu_act_convert,
    .add = dat_cpu_fmt_add,
    .add_relu = dat_cpu_fmt_add_relu,
    .axpy = dat_cpu_axpy,
    .scale = dat_cpu_scale,
    .softmax_xent = dat_cpu_softmax_xent,
    .kl_div = dat_cpu_kl_div,
    .argmax = dat_cpu_argmax,
    .check_finite = dat_cpu_check_finite,
    .flag_range = dat_cpu_flag_range,
    .flag_labels = dat_cpu_flag_labels,
    .attack_linf_step = dat_cpu_attack_linf_step,
    .attack_l2_step = dat_cpu_attack_l2_step,
    .rows_renorm = dat_cpu_rows_renorm,
    .minmax = dat_cpu_minmax,
    .optim_update = dat_optim_update,
    .quant_encode = dat_quant_encode_cpu,
    .quant_decode = dat_quant_decode_cpu,
};
