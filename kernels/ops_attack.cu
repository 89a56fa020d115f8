/* The attack steps of the CUDA backend: sign or normalized-gradient step and
 * the projections onto the eps-ball and the input range, fused per element
 * (l-inf, one thread each) or per sample (l2, one block each, norms summed in
 * double); per-row rescaling to given norms; and the range of an input.
 * Products and sums are rounded separately, as the CPU backend does. */
#include <float.h>
#include <math.h>

#include "cuda_ops.h"

#define ROW_THREADS 256

__device__ inline float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

__device__ inline float signf(float g)
{
    return (float)((g > 0) - (g < 0));
}

__global__ void linf_step_kernel(size_t n, float *x_adv, const float *g, const float *x0,
                                 float alpha, float eps, float lo, float hi)
{
    DAT_GRID_STRIDE(i, n) {
        float v = g ? __fadd_rn(x_adv[i], __fmul_rn(alpha, signf(g[i]))) : x_adv[i];
        v = clampf(v, x0[i] - eps, x0[i] + eps);
        x_adv[i] = clampf(v, lo, hi);
    }
}

/* sqrt(sum v_j^2) of one row, in double; every thread of the block gets it. */
__device__ inline double row_norm(const float *v, size_t d)
{
    double s = 0;
    for (size_t j = threadIdx.x; j < d; j += blockDim.x)
        s += (double)v[j] * v[j];
    return sqrt(dat_block_sum(s));
}

/* v s, with sf = (float)s, rounded as on the CPU: a factor that overflows float
 * (alpha / ||g|| of a gradient in denormals, a norm over a tiny row) takes the
 * product in double, where inf * 0 would leave NaN. */
__device__ inline float scaled(float v, double s, float sf)
{
    return s <= FLT_MAX ? __fmul_rn(v, sf) : __double2float_rn(s * v);
}

/* One block per sample. */
__global__ void l2_step_kernel(size_t d, float *x_adv, const float *g, const float *x0,
                               float alpha, float eps, float lo, float hi)
{
    float *x = x_adv + (size_t)blockIdx.x * d;
    const float *o = x0 + (size_t)blockIdx.x * d;
    if (g) {
        const float *gi = g + (size_t)blockIdx.x * d;
        double gn = row_norm(gi, d);
        double s = gn > 0 ? alpha / gn : 0.0;
        const float sf = (float)s;
        if (gn > 0)
            for (size_t j = threadIdx.x; j < d; j += blockDim.x)
                x[j] = __fadd_rn(x[j], scaled(gi[j], s, sf));
    }
    /* Each thread reads back only the elements it wrote itself. */
    double q = 0;
    for (size_t j = threadIdx.x; j < d; j += blockDim.x) {
        float t = x[j] - o[j];
        q += (double)t * t;
    }
    double dn = sqrt(dat_block_sum(q));
    float shrink = dn > eps ? (float)(eps / dn) : 1.0f;
    for (size_t j = threadIdx.x; j < d; j += blockDim.x)
        x[j] = clampf(__fadd_rn(o[j], __fmul_rn(x[j] - o[j], shrink)), lo, hi);
}

/* One block per row: r *= norms[i] / ||r|| (rows of norm 0 stay 0). */
__global__ void rows_renorm_kernel(size_t d, float *x, const float *norms)
{
    float *r = x + (size_t)blockIdx.x * d;
    double cur = row_norm(r, d);
    double s = cur > 0 ? norms[blockIdx.x] / cur : 0.0;
    const float sf = (float)s;
    for (size_t j = threadIdx.x; j < d; j += blockDim.x)
        r[j] = scaled(r[j], s, sf);
}

/* Block-wise min of lo_src[i * step] and max of hi_src[i * step], i < n (NaN
 * ignored: fminf / fmaxf return the other operand), into part[2 b], part[2 b + 1].
 * The first pass reads x for both; the second the first's interleaved results. */
__global__ void minmax_kernel(size_t n, const float *lo_src, const float *hi_src, size_t step,
                              float *part)
{
    __shared__ float smin[ROW_THREADS], smax[ROW_THREADS];
    float mn = INFINITY, mx = -INFINITY;
    DAT_GRID_STRIDE(i, n) {
        mn = fminf(mn, lo_src[i * step]);
        mx = fmaxf(mx, hi_src[i * step]);
    }
    smin[threadIdx.x] = mn;
    smax[threadIdx.x] = mx;
    __syncthreads();
    for (unsigned h = blockDim.x / 2; h > 0; h /= 2) {
        if (threadIdx.x < h) {
            smin[threadIdx.x] = fminf(smin[threadIdx.x], smin[threadIdx.x + h]);
            smax[threadIdx.x] = fmaxf(smax[threadIdx.x], smax[threadIdx.x + h]);
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        part[2 * blockIdx.x] = smin[0];
        part[2 * blockIdx.x + 1] = smax[0];
    }
}

dat_status dat_cuda_attack_linf_step(dat_ctx *ctx, size_t n, float *x_adv, const float *g,
                                     const float *x0, float alpha, float eps, float lo, float hi)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (n == 0)
        return DAT_OK;
    linf_step_kernel<<<dat_cuda_grid(n, 256), 256, 0, dat_cuda(ctx)->stream>>>(n, x_adv, g, x0,
                                                                               alpha, eps, lo, hi);
    DAT_CUDA_CHECK_LAUNCH("linf_step_kernel");
    return DAT_OK;
}

dat_status dat_cuda_attack_l2_step(dat_ctx *ctx, int n, size_t d, float *x_adv, const float *g,
                                   const float *x0, float alpha, float eps, float lo, float hi)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (n <= 0 || d == 0)
        return DAT_OK;
    l2_step_kernel<<<(unsigned)n, ROW_THREADS, 0, dat_cuda(ctx)->stream>>>(d, x_adv, g, x0, alpha,
                                                                          eps, lo, hi);
    DAT_CUDA_CHECK_LAUNCH("l2_step_kernel");
    return DAT_OK;
}

dat_status dat_cuda_rows_renorm(dat_ctx *ctx, int n, size_t d, float *x, const float *norms)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (n <= 0 || d == 0)
        return DAT_OK;
    dat_cuda_state *st = dat_cuda(ctx);
    void *ws;
    DAT_TRY(dat_cuda_workspace(ctx, (size_t)n * sizeof(float), &ws));
    /* From pageable memory, cudaMemcpyAsync returns once the host array is staged,
     * so the caller may reuse it at once. */
    DAT_CUDA_TRY(cudaMemcpyAsync(ws, norms, (size_t)n * sizeof(float), cudaMemcpyHostToDevice,
                                 st->stream));
    rows_renorm_kernel<<<(unsigned)n, ROW_THREADS, 0, st->stream>>>(d, x, (const float *)ws);
    DAT_CUDA_CHECK_LAUNCH("rows_renorm_kernel");
    return DAT_OK;
}

dat_status dat_cuda_minmax(dat_ctx *ctx, size_t n, const float *x, float *lo, float *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    if (dat_cuda_capturing(ctx))
        return dat_capture_refuse(ctx, __func__, "reading the range back to the host");
    DAT_TRY(dat_cuda_use_device(ctx));
    if (n == 0)
        return DAT_OK;
    dat_cuda_state *st = dat_cuda(ctx);
    unsigned blocks = dat_cuda_grid(n, ROW_THREADS);
    if (blocks > 1024)
        blocks = 1024;
    void *ws;
    DAT_TRY(dat_cuda_workspace(ctx, (size_t)blocks * 2 * sizeof(float), &ws));
    float *part = (float *)ws, res[2];
    minmax_kernel<<<blocks, ROW_THREADS, 0, st->stream>>>(n, x, x, 1, part);
    DAT_CUDA_CHECK_LAUNCH("minmax_kernel");
    minmax_kernel<<<1, ROW_THREADS, 0, st->stream>>>(blocks, part, part + 1, 2,
                                                     (float *)st->scalars);
    DAT_CUDA_CHECK_LAUNCH("minmax_kernel");
    DAT_CUDA_TRY(cudaMemcpyAsync(res, st->scalars, sizeof res, cudaMemcpyDeviceToHost, st->stream));
    DAT_CUDA_TRY(cudaStreamSynchronize(st->stream));
    *lo = res[0];
    *hi = res[1];
    return DAT_OK;
}
