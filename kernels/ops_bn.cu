/*
 * Batch normalization of the CUDA backend, with PyTorch's semantics (as the
 * CPU backend): batch statistics with the biased variance in train mode,
 * running statistics updated with the unbiased one, running statistics in eval
 * mode.
 *
 * Each op is a reduction and an element-wise pass. The reduction splits each
 * channel's n * hw values over several blocks, which sum in double around a
 * shift K (x's first value of the channel, or the running mean): sum(x - K),
 * sum((x - K)^2), sum(dy), sum(dy (x - K)). The shift keeps the one-pass
 * variance exact when |mean| >> std, and the backward recomputes the batch
 * statistics from x in the same pass, as the CPU backend does, instead of
 * trusting the float-rounded saved mean (which would leak sum(dy) into
 * dgamma). A warp per channel then combines the blocks and writes
 * per-channel coefficients in double for the element-wise pass. In eval mode
 * the element-wise passes compute their channels' coefficients from the
 * running statistics themselves: no launch before them.
 *
 * In NHWC the reduction reads rows of channels coalesced (bn_sums_nhwc_kernel)
 * into the same per-block sums; the element-wise passes only find the channel
 * differently. Activations may be bfloat16: read as float, statistics in
 * double as above, outputs rounded once (dat_ld / dat_st).
 *
 * A following ReLU can be fused (dat_bn_desc's relu_out, relu_mask): the
 * element-wise pass writes max(y, 0), and the backward reads dy where the
 * ReLU's output is positive, 0 elsewhere.
 */
#include <math.h>

#include "cuda_ops.h"
#include "map.h"

#define BN_THREADS 256

enum { S_X = 0, S_XX = 1, S_DY = 2, S_DYX = 3, N_SUMS = 4 };

static int nhwc(const dat_bn_desc *d)
{
    return (d->fmt & DAT_FMT_NHWC) != 0;
}

struct bn_plan {
    size_t count; /* n * hw: values per channel (NHWC: rows) */
    int splits;   /* reduction blocks per channel (NHWC: per tile of channels) */
    size_t per;   /* values (rows) per block */
};

static bn_plan plan_of(const dat_bn_desc *d)
{
    bn_plan p;
    p.count = (size_t)d->n * (size_t)d->hw;
    p.splits = dat_channel_splits(p.count, nhwc(d), &p.per);
    return p;
}

/* Index of channel ch's first value (sample 0, position 0): ch * first, first
 * being hw in NCHW and 1 in NHWC. */
static size_t first_of(const dat_bn_desc *d)
{
    return nhwc(d) ? 1 : (size_t)d->hw;
}

/* The shift of channel ch: the running mean where given, else x's first value. */
template <typename T>
__device__ inline float shift_of(const T *x, const float *shift, int ch, size_t first)
{
    return shift ? shift[ch] : dat_ld(x, (size_t)ch * first);
}

/* dy, or 0 where a fused ReLU's output is not positive (as relu_bwd). */
template <typename T>
__device__ inline float grad_of(T dy, T mask, int masked)
{
    return masked && !(dat_val(mask) > 0.0f) ? 0.0f : dat_val(dy);
}

template <typename T>
__device__ inline float grad_at(const T *dy, const T *mask, size_t i)
{
    return grad_of(dy[i], mask ? mask[i] : T(), mask != NULL);
}

/* Adds the elements at[0 .. U-1] (shifted by k) to the sums of v, in that
 * order, after loading all of them: U loads in flight per thread instead of
 * one, which a reduction that reads each value once needs to approach the
 * memory's bandwidth. */
template <int U, typename T>
__device__ inline void add_sums(const T *x, const T *dy, const T *mask, const size_t (&at)[U],
                                double k, double v[N_SUMS])
{
    float xv[U], g[U];
    for (int u = 0; u < U; ++u)
        xv[u] = dat_ld(x, at[u]);
    if (dy)
        for (int u = 0; u < U; ++u)
            g[u] = grad_at(dy, mask, at[u]);
    for (int u = 0; u < U; ++u) {
        double d = (double)xv[u] - k;
        v[S_X] += d;
        v[S_XX] += d * d;
        if (dy) {
            v[S_DY] += g[u];
            v[S_DYX] += g[u] * d;
        }
    }
}

#define BN_UNROLL 4

/* NCHW: grid (c, splits): block (ch, s) sums values [s * per, (s + 1) * per)
 * of channel ch into part[(ch * splits + s) * N_SUMS + k]. dy may be NULL;
 * mask (a fused ReLU's output) may be NULL. */
template <typename T>
__global__ void bn_sums_kernel(const T *x, const T *dy, const T *mask, const float *shift, int c,
                               int hw, size_t count, size_t per, double *part)
{
    int ch = blockIdx.x, s = blockIdx.y;
    size_t begin = (size_t)s * per, end = begin + per < count ? begin + per : count;
    double k = shift_of(x, shift, ch, (size_t)hw);
    double v[N_SUMS] = {0, 0, 0, 0};
    size_t step = blockDim.x, j = begin + threadIdx.x;
    dat_nchw_walk w(j, step, c, hw, ch);
    for (; j + (BN_UNROLL - 1) * step < end; j += BN_UNROLL * step) {
        size_t at[BN_UNROLL];
        for (int u = 0; u < BN_UNROLL; ++u)
            at[u] = w.next();
        add_sums(x, dy, mask, at, k, v);
    }
    for (; j < end; j += step) {
        size_t at[1] = {w.next()};
        add_sums(x, dy, mask, at, k, v);
    }
    v[S_X] = dat_block_sum(v[S_X]);
    v[S_XX] = dat_block_sum(v[S_XX]);
    if (dy) {
        v[S_DY] = dat_block_sum(v[S_DY]);
        v[S_DYX] = dat_block_sum(v[S_DYX]);
    }
    if (threadIdx.x == 0) {
        double *o = part + ((size_t)ch * gridDim.y + (size_t)s) * N_SUMS;
        for (int j = 0; j < N_SUMS; ++j)
            o[j] = v[j];
    }
}

/* NHWC: grid (channel tiles, splits), blocks of DAT_TILE_C x DAT_TILE_R
 * threads: block (t, s) sums rows [s * per, (s + 1) * per) of channels
 * [t * DAT_TILE_C, (t + 1) * DAT_TILE_C), a warp reading consecutive channels
 * of a row, into the same part[] as bn_sums_kernel. */
template <typename T>
__global__ void bn_sums_nhwc_kernel(const T *x, const T *dy, const T *mask, const float *shift,
                                    int c, size_t rows, size_t per, double *part)
{
    int ch = blockIdx.x * DAT_TILE_C + threadIdx.x, s = blockIdx.y;
    size_t begin = (size_t)s * per, end = begin + per < rows ? begin + per : rows;
    double v[N_SUMS] = {0, 0, 0, 0};
    if (ch < c) {
        double k = shift_of(x, shift, ch, 1);
        size_t r = begin + threadIdx.y;
        for (; r + (BN_UNROLL - 1) * DAT_TILE_R < end; r += BN_UNROLL * DAT_TILE_R) {
            size_t at[BN_UNROLL];
            for (int u = 0; u < BN_UNROLL; ++u)
                at[u] = (r + (size_t)u * DAT_TILE_R) * (size_t)c + (size_t)ch;
            add_sums(x, dy, mask, at, k, v);
        }
        for (; r < end; r += DAT_TILE_R) {
            size_t at[1] = {r * (size_t)c + (size_t)ch};
            add_sums(x, dy, mask, at, k, v);
        }
    }
    dat_column_sum(v);
    if (threadIdx.y == 0 && ch < c) {
        double *o = part + ((size_t)ch * gridDim.y + (size_t)s) * N_SUMS;
        for (int j = 0; j < N_SUMS; ++j)
            o[j] = v[j];
    }
}

/* Mean minus the shift, and the biased variance, from the shifted sums. */
__device__ inline void moments(const double sum[N_SUMS], double count, double *dmean, double *var)
{
    *dmean = sum[S_X] / count;
    double v = sum[S_XX] / count - *dmean * *dmean;
    *var = v > 0 ? v : 0;
}

/* out = beta out + v; beta 0 overwrites (even a NaN left in out), as the CPU backend. */
__device__ inline void accumulate(float *out, int ch, float beta, double v)
{
    if (out)
        out[ch] = (float)(beta == 0.0f ? v : (double)__fmul_rn(beta, out[ch]) + v);
}

/* coef[ch] = {mean, scale, shift} of y = (x - mean) * scale + shift. */
template <typename T>
__global__ void bn_train_stats_kernel(const double *part, int splits, const T *x, int c,
                                      size_t first, double count, float eps, float momentum,
                                      const float *gamma, const float *beta, float *running_mean,
                                      float *running_var, float *save_mean, float *save_invstd,
                                      double *coef)
{
    int ch = dat_combine_channel();
    if (ch >= c) /* the whole warp */
        return;
    double sum[N_SUMS], dmean, var;
    dat_warp_combine(part, ch, splits, sum);
    if (!dat_combine_writer())
        return;
    moments(sum, count, &dmean, &var);
    double mean = (double)shift_of(x, NULL, ch, first) + dmean;
    double invstd = 1.0 / sqrt(var + (double)eps);
    save_mean[ch] = (float)mean;
    save_invstd[ch] = (float)invstd;
    if (running_mean) {
        double unbiased = count > 1 ? var * count / (count - 1) : var;
        running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mean);
        running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * unbiased);
    }
    coef[3 * ch + 0] = mean;
    coef[3 * ch + 1] = gamma[ch] * invstd;
    coef[3 * ch + 2] = beta[ch];
}

/* The running statistics of an eval pass: its coefficients are computed where
 * they are used, a channel per thread (NHWC) or per pack (NCHW), instead of by
 * a launch of their own before each pass. */
struct bn_running {
    float eps;
    const float *gamma, *beta, *mean, *var;

    __device__ double invstd(int ch) const
    {
        return 1.0 / sqrt((double)var[ch] + (double)eps);
    }
    __device__ struct bn_coef at(int ch) const;
};

/* The coefficients {mean, scale, shift} of y = (x - mean) * scale + shift. */
struct bn_coef {
    double mean, scale, shift;
};

__device__ inline bn_coef bn_running::at(int ch) const
{
    return bn_coef{mean[ch], gamma[ch] * invstd(ch), beta[ch]};
}

/* Coefficients from the train pass's statistics (bn_train_stats_kernel's coef);
 * bn_running gives them from the running statistics. */
struct bn_batch_coef {
    const double *coef;

    __device__ bn_coef at(int ch) const
    {
        const double *k = coef + 3 * ch;
        return bn_coef{k[0], k[1], k[2]};
    }
};

/* y = (x - mean) * scale + shift in double, rounded once to float (then to
 * the format): outputs near 0 must be accurate, because the ReLU after a BN
 * turns a sign error into a wrong gradient. The product and the sum are
 * rounded separately, as the CPU's (nvcc would fuse them into an FMA), so eval
 * mode, whose coefficients both compute alike, gives the CPU's bits. relu:
 * max(y, 0), NaN to 0, as relu_fwd. With two inputs (dat_bn_desc's x2) x is
 * their sum, rounded as the add op rounds it, and the sum is the second result. */
template <typename C> struct bn_normalize_op {
    C coef;
    int relu;
    typedef bn_coef chan;
    __device__ chan at(int ch) const
    {
        return coef.at(ch);
    }
    template <typename T>
    __device__ T operator()(const chan &k, const T (&x)[1]) const
    {
        float v = (float)__dadd_rn(__dmul_rn((double)dat_val(x[0]) - k.mean, k.scale), k.shift);
        return dat_rounded<T>(relu ? (v > 0.0f ? v : 0.0f) : v);
    }
    template <typename T>
    __device__ dat_two<T> operator()(const chan &k, const T (&x_x2)[2]) const
    {
        const T sum[1] = {add_op()(0, x_x2)};
        return dat_two<T>{(*this)(k, sum), sum[0]};
    }
};

/* bn(x) rounded to the format (bn.relu 0), plus the residual, rounded again,
 * then the ReLU where relu is set: the batch norm, the add and the ReLU after it
 * as their own passes compute them (dat_bn_desc's residual). */
template <typename C> struct bn_residual_op {
    bn_normalize_op<C> bn;
    int relu;
    typedef bn_coef chan;
    __device__ chan at(int ch) const
    {
        return bn.at(ch);
    }
    template <typename T>
    __device__ T operator()(const chan &k, const T (&x_r)[2]) const
    {
        const T x[1] = {x_r[0]}, ab[2] = {bn(k, x), x_r[1]};
        return relu ? add_relu_op()(0, ab) : add_op()(0, ab);
    }
};

/* Train backward: parameter gradients, and coef[ch] = {mean, invstd, gamma invstd,
 * mean(dy), mean(dy xhat)} for dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)). */
template <typename T>
__global__ void bn_train_grad_kernel(const double *part, int splits, const T *x, int c,
                                     size_t first, double count, float eps, const float *gamma,
                                     float *dgamma, float *dbeta, float beta, double *coef)
{
    int ch = dat_combine_channel();
    if (ch >= c) /* the whole warp */
        return;
    double sum[N_SUMS], dmean, var;
    dat_warp_combine(part, ch, splits, sum);
    if (!dat_combine_writer())
        return;
    moments(sum, count, &dmean, &var);
    double invstd = 1.0 / sqrt(var + (double)eps);
    /* sum dy (x - mean) = sum dy (x - K) - (mean - K) sum dy */
    double sdyx = invstd * (sum[S_DYX] - dmean * sum[S_DY]);
    accumulate(dgamma, ch, beta, sdyx);
    accumulate(dbeta, ch, beta, sum[S_DY]);
    double *k = coef + 5 * ch;
    k[0] = (double)shift_of(x, NULL, ch, first) + dmean;
    k[1] = invstd;
    k[2] = gamma[ch] * invstd;
    k[3] = sum[S_DY] / count;
    k[4] = sdyx / count;
}

/* dx's value v in float, rounded once to T: with dx_add, added to the old dx
 * first (lib/core/backend.h; a separate rounding, as the CPU's). */
template <typename T>
__device__ inline T bn_dx(float v, T old, int add)
{
    return dat_rounded<T>(add ? __fadd_rn(dat_val(old), v) : v);
}

/* Inputs x, dy, the fused ReLU's output (NULL without one) and the old dx (NULL
 * without dx_add). */
struct bn_train_dx_op {
    const double *coef;
    int masked, add;
    struct chan {
        double k[5];
    };
    __device__ chan at(int ch) const
    {
        chan c;
        for (int j = 0; j < 5; ++j)
            c.k[j] = coef[5 * ch + j];
        return c;
    }
    template <typename T>
    __device__ T operator()(const chan &c, const T (&x_dy_mask_dx)[4]) const
    {
        const double *k = c.k;
        double xhat = ((double)dat_val(x_dy_mask_dx[0]) - k[0]) * k[1];
        double g = grad_of(x_dy_mask_dx[1], x_dy_mask_dx[2], masked);
        return bn_dx((float)(k[2] * (g - k[3] - xhat * k[4])), x_dy_mask_dx[3], add);
    }
};

/* Eval backward's parameter gradients, from the sums around the running mean
 * (which was the shift). */
__global__ void bn_eval_grad_kernel(const double *part, int splits, int c, bn_running r,
                                    float *dgamma, float *dbeta, float beta)
{
    int ch = dat_combine_channel();
    if (ch >= c) /* the whole warp */
        return;
    double sum[N_SUMS];
    dat_warp_combine(part, ch, splits, sum);
    if (!dat_combine_writer())
        return;
    accumulate(dgamma, ch, beta, r.invstd(ch) * sum[S_DYX]);
    accumulate(dbeta, ch, beta, sum[S_DY]);
}

/* dx = dy gamma / sqrt(running_var + eps), the factor rounded to float. Inputs dy,
 * the fused ReLU's output (NULL without one) and the old dx (NULL without dx_add). */
struct bn_eval_dx_op {
    bn_running r;
    int masked, add;
    struct chan {
        float factor;
    };
    __device__ chan at(int ch) const
    {
        return chan{(float)(r.gamma[ch] * r.invstd(ch))};
    }
    template <typename T>
    __device__ T operator()(const chan &c, const T (&dy_mask_dx)[3]) const
    {
        return bn_dx(__fmul_rn(grad_of(dy_mask_dx[0], dy_mask_dx[1], masked), c.factor),
                     dy_mask_dx[2], add);
    }
};

static size_t total_of(const dat_bn_desc *d)
{
    return (size_t)d->n * (size_t)d->c * (size_t)d->hw;
}

/* Workspace for the block sums of `p` and `coef_bytes` of per-channel coefficients. */
static dat_status bn_scratch(dat_ctx *ctx, const dat_bn_desc *d, const bn_plan &p,
                             size_t coef_bytes, double **part, void **coef)
{
    size_t part_bytes = dat_cuda_align((size_t)d->c * (size_t)p.splits * N_SUMS * sizeof(double));
    void *ws;
    DAT_TRY(dat_cuda_workspace(ctx, part_bytes + coef_bytes, &ws));
    *part = (double *)ws;
    *coef = (char *)ws + part_bytes;
    return DAT_OK;
}

template <typename T>
static dat_status launch_sums(dat_ctx *ctx, const dat_bn_desc *d, const bn_plan &p, const T *x,
                              const T *dy, const float *shift, double *part)
{
    cudaStream_t s = dat_cuda(ctx)->stream;
    const T *mask = dy ? (const T *)d->relu_mask : NULL;
    if (nhwc(d)) {
        dim3 grid((unsigned)((d->c + DAT_TILE_C - 1) / DAT_TILE_C), (unsigned)p.splits);
        bn_sums_nhwc_kernel<<<grid, dim3(DAT_TILE_C, DAT_TILE_R), 0, s>>>(
            x, dy, mask, shift, d->c, p.count, p.per, part);
        DAT_CUDA_CHECK_LAUNCH("bn_sums_nhwc_kernel");
        return DAT_OK;
    }
    dim3 grid((unsigned)d->c, (unsigned)p.splits);
    bn_sums_kernel<<<grid, BN_THREADS, 0, s>>>(x, dy, mask, shift, d->c, d->hw, p.count, p.per,
                                               part);
    DAT_CUDA_CHECK_LAUNCH("bn_sums_kernel");
    return DAT_OK;
}

/* y = bn(x); y = bn(x + x2) and x_sum = x + x2 where x2 is not NULL; y =
 * bn(x) + residual where residual is not NULL (relu_out: the ReLU last). */
template <typename T, typename C>
static dat_status normalize(dat_ctx *ctx, const dat_bn_desc *d, const T *x, const T *x2,
                            const T *residual, C coef, T *y, T *x_sum)
{
    bn_normalize_op<C> op{coef, d->relu_out};
    if (x2 && residual)
        return dat_error(DAT_ERR_INTERNAL, __func__, "a batch norm with both x2 and residual");
    if (x2)
        return dat_channel_map(ctx, d->n, d->c, d->hw, d->fmt,
                               dat_map_io<T, 2>{{x, x2}, y, x_sum}, op);
    if (residual)
        return dat_channel_map(ctx, d->n, d->c, d->hw, d->fmt,
                               dat_map_io<T, 2>{{x, residual}, y},
                               bn_residual_op<C>{{coef, 0}, d->relu_out});
    return dat_channel_map(ctx, d->n, d->c, d->hw, d->fmt, dat_map_io<T, 1>{{x}, y}, op);
}

dat_status dat_cuda_bn_fwd_train(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                 const float *gamma, const float *beta, float *running_mean,
                                 float *running_var, float *save_mean, float *save_invstd,
                                 void *y)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (total_of(d) == 0)
        return DAT_OK;
    cudaStream_t s = dat_cuda(ctx)->stream;
    bn_plan p = plan_of(d);
    double *part;
    void *coef;
    DAT_TRY(bn_scratch(ctx, d, p, (size_t)d->c * 3 * sizeof(double), &part, &coef));
    return dat_fmt_dispatch(d->fmt, [&](auto t) -> dat_status {
        using T = decltype(t);
        DAT_TRY(launch_sums(ctx, d, p, (const T *)x, (const T *)NULL, NULL, part));
        bn_train_stats_kernel<<<dat_combine_blocks(d->c), DAT_COMBINE_THREADS, 0, s>>>(
            part, p.splits, (const T *)x, d->c, first_of(d), (double)p.count, d->eps,
            d->momentum, gamma, beta, running_mean, running_var, save_mean, save_invstd,
            (double *)coef);
        DAT_CUDA_CHECK_LAUNCH("bn_train_stats_kernel");
        return normalize(ctx, d, (const T *)x, (const T *)NULL, (const T *)d->residual,
                         bn_batch_coef{(const double *)coef}, (T *)y, (T *)NULL);
    });
}

dat_status dat_cuda_bn_fwd_eval(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, void *y)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (total_of(d) == 0)
        return DAT_OK;
    bn_running r{d->eps, gamma, beta, running_mean, running_var};
    return dat_fmt_dispatch(d->fmt, [&](auto t) -> dat_status {
        using T = decltype(t);
        return normalize(ctx, d, (const T *)x, (const T *)d->x2, (const T *)d->residual, r,
                         (T *)y, (T *)d->x_sum);
    });
}

dat_status dat_cuda_bn_bwd_train(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                 const void *dy, const float *gamma, const float *save_mean,
                                 const float *save_invstd, void *dx, float *dgamma,
                                 float *dbeta, float beta)
{
    (void)save_mean; /* recomputed in double from x, see the top of the file */
    (void)save_invstd;
    DAT_TRY(dat_cuda_use_device(ctx));
    if (total_of(d) == 0)
        return DAT_OK;
    cudaStream_t s = dat_cuda(ctx)->stream;
    bn_plan p = plan_of(d);
    double *part;
    void *coef;
    DAT_TRY(bn_scratch(ctx, d, p, (size_t)d->c * 5 * sizeof(double), &part, &coef));
    return dat_fmt_dispatch(d->fmt, [&](auto t) -> dat_status {
        using T = decltype(t);
        DAT_TRY(launch_sums(ctx, d, p, (const T *)x, (const T *)dy, NULL, part));
        bn_train_grad_kernel<<<dat_combine_blocks(d->c), DAT_COMBINE_THREADS, 0, s>>>(
            part, p.splits, (const T *)x, d->c, first_of(d), (double)p.count, d->eps, gamma,
            dgamma, dbeta, beta, (double *)coef);
        DAT_CUDA_CHECK_LAUNCH("bn_train_grad_kernel");
        const T *mask = (const T *)d->relu_mask, *old = d->dx_add ? (const T *)dx : NULL;
        return dat_channel_map(
            ctx, d->n, d->c, d->hw, d->fmt,
            dat_map_io<T, 4>{{(const T *)x, (const T *)dy, mask, old}, (T *)dx},
            bn_train_dx_op{(const double *)coef, mask != NULL, d->dx_add});
    });
}

dat_status dat_cuda_bn_bwd_eval(dat_ctx *ctx, const dat_bn_desc *d, const void *x,
                                const void *dy, const float *gamma, const float *running_mean,
                                const float *running_var, void *dx, float *dgamma,
                                float *dbeta, float beta)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    if (total_of(d) == 0)
        return DAT_OK;
    bn_running r{d->eps, gamma, NULL, running_mean, running_var};
    return dat_fmt_dispatch(d->fmt, [&](auto t) -> dat_status {
        using T = decltype(t);
        if (dgamma || dbeta) {
            bn_plan p = plan_of(d);
            double *part;
            void *unused;
            DAT_TRY(bn_scratch(ctx, d, p, 0, &part, &unused));
            DAT_TRY(launch_sums(ctx, d, p, (const T *)x, (const T *)dy, running_mean, part));
            bn_eval_grad_kernel<<<dat_combine_blocks(d->c), DAT_COMBINE_THREADS, 0,
                                  dat_cuda(ctx)->stream>>>(part, p.splits, d->c, r, dgamma,
                                                           dbeta, beta);
            DAT_CUDA_CHECK_LAUNCH("bn_eval_grad_kernel");
        }
        const T *mask = (const T *)d->relu_mask, *old = d->dx_add ? (const T *)dx : NULL;
        return dat_channel_map(ctx, d->n, d->c, d->hw, d->fmt,
                               dat_map_io<T, 3>{{(const T *)dy, mask, old}, (T *)dx},
                               bn_eval_dx_op{r, mask != NULL, d->dx_add});
    });
}
