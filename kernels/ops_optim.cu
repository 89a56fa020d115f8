/* The optimizer step of the CUDA backend (lib/core/backend.h's optim_update).
 * Segments are cut into chunks of CHUNK elements, one block each. The first
 * launch computes every chunk's direction u (and moments) with its partial
 * squared norms; the second sums each segment's partials in chunk order
 * (deterministic), takes the trust ratio and applies the update. The segment
 * table travels as a kernel parameter, SEGS segments per launch pair, so a step
 * costs 2 ceil(segments / SEGS) launches and no host synchronization (it can be
 * captured in a CUDA graph). In a step graph (lib/core/capture.h) the step's
 * scalars come from the device instead: a one-thread kernel computes them from
 * the optimizer's step counter, and a non-finite gradient skips the update.
 * The per-element arithmetic is the CPU loops' of
 * lib/optim/update.c with each product and sum rounded separately (no FMA
 * contraction), so both backends compute the same floats. */
#include <float.h>

#include "cuda_ops.h"

extern "C" {
#include "../lib/optim/optim.h"
}

#define CHUNK 8192
#define THREADS 256
#define SEGS 48

/* Up to SEGS unfrozen segments; chunks first_chunk[s] .. first_chunk[s + 1] - 1
 * (numbered within the batch) cover segment s. */
struct seg_batch {
    int n;
    int first_chunk[SEGS + 1];
    long long offset[SEGS], length[SEGS];
    long long skipped[SEGS]; /* steps each segment sat out (lib/optim/optim.h) */
    float wd_g[SEGS], wd_u[SEGS], lr_scale[SEGS];
    int lalr[SEGS];
};
/* Kernel parameters have 4 KiB (the table, the coefficients, a few pointers). */
static_assert(sizeof(seg_batch) + sizeof(dat_optim_coefs) + 128 <= 4096,
              "seg_batch: fewer SEGS per launch");

/* The scalars of the step being taken, where the device computes them. */
struct step_vals {
    double lr;
    long long step;
    uint32_t skip;
};

__global__ void step_vals_kernel(dat_optim_options o, const int64_t *step, const uint32_t *skip,
                                 uint32_t *fault, step_vals *out)
{
    int64_t t = *step;
    out->lr = dat_optim_lr_at(&o, t);
    out->step = t;
    out->skip = *skip;
    if (*skip)
        atomicOr(fault, *skip);
}

__device__ inline int seg_of(const seg_batch &b, int chunk)
{
    int lo = 0, hi = b.n - 1;
    while (lo < hi) { /* the last s with first_chunk[s] <= chunk */
        int mid = (lo + hi + 1) / 2;
        if (b.first_chunk[mid] <= chunk)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

template <int RULE>
__global__ void __launch_bounds__(THREADS)
direction_kernel(seg_batch b, dat_optim_coefs c, long long step, const step_vals *dv,
                 const float *th, const float *g, float *m, float *v, float *u, double *part)
{
    if (dv) {
        if (dv->skip)
            return;
        step = dv->step;
    }
    int s = seg_of(b, blockIdx.x);
    /* The segment's own step: its factors (a few dozen multiplications) */
    dat_optim_factors(c.bias_correction, c.mu, c.b2, dat_optim_seg_step(step, b.skipped[s]),
                      &c.keep, &c.c1, &c.c2);
    long long start = b.offset[s] + (long long)(blockIdx.x - b.first_chunk[s]) * CHUNK;
    long long end = min(start + CHUNK, b.offset[s] + b.length[s]);
    const float wd_g = b.wd_g[s], wd_u = b.wd_u[s];
    double tn = 0, un = 0;
    for (long long i = start + threadIdx.x; i < end; i += THREADS) {
        float t = th[i], ui;
        if (RULE == DAT_RULE_SGD) {
            ui = __fadd_rn(__fadd_rn(g[i], __fmul_rn(wd_g, t)), __fmul_rn(wd_u, t));
        } else if (RULE == DAT_RULE_MOMENTUM) {
            float gi = __fadd_rn(g[i], __fmul_rn(wd_g, t));
            float mi = __fadd_rn(__fmul_rn(c.keep, m[i]), gi);
            m[i] = mi;
            ui = c.nesterov ? __fadd_rn(gi, __fmul_rn(c.mu, mi)) : mi;
            ui = __fadd_rn(ui, __fmul_rn(wd_u, t));
        } else {
            float gi = __fadd_rn(g[i], __fmul_rn(wd_g, t));
            float mi = __fadd_rn(__fmul_rn(c.mu, m[i]), __fmul_rn(1.0f - c.mu, gi));
            float vi = __fadd_rn(__fmul_rn(c.b2, v[i]), __fmul_rn(__fmul_rn(1.0f - c.b2, gi), gi));
            m[i] = mi;
            v[i] = vi;
            float q = __fdiv_rn(__fmul_rn(mi, c.c1), __fadd_rn(__fsqrt_rn(__fmul_rn(vi, c.c2)), c.eps));
            ui = __fadd_rn(q, __fmul_rn(wd_u, t));
        }
        u[i] = ui;
        tn += (double)t * t;
        un += (double)ui * ui;
    }
    tn = dat_block_sum(tn);
    un = dat_block_sum(un);
    if (threadIdx.x == 0) {
        part[2 * blockIdx.x] = tn;
        part[2 * blockIdx.x + 1] = un;
    }
}

__global__ void __launch_bounds__(THREADS)
apply_kernel(seg_batch b, double lr, const step_vals *dv, double c_l, double c_u,
             const double *part, const float *u, float *p)
{
    if (dv) {
        if (dv->skip)
            return;
        lr = dv->lr;
    }
    __shared__ double scale;
    int s = seg_of(b, blockIdx.x);
    if (threadIdx.x == 0) {
        double tn = 0, un = 0;
        for (int k = b.first_chunk[s]; k < b.first_chunk[s + 1]; ++k) {
            tn += part[2 * k];
            un += part[2 * k + 1];
        }
        double trust = dat_optim_trust(b.lalr[s], c_l, c_u, tn, un);
        scale = lr * (double)b.lr_scale[s] * trust;
    }
    __syncthreads();
    long long start = b.offset[s] + (long long)(blockIdx.x - b.first_chunk[s]) * CHUNK;
    long long end = min(start + CHUNK, b.offset[s] + b.length[s]);
    const double sd = scale;
    const float sf = (float)sd;
    /* The trust of a tiny u (LALR) overflows float: its products in double, as
     * on the CPU. */
    for (long long i = start + threadIdx.x; i < end; i += THREADS)
        p[i] = __fsub_rn(p[i], sd <= FLT_MAX ? __fmul_rn(sf, u[i])
                                             : __double2float_rn(sd * u[i]));
}

static dat_status launch(dat_ctx *ctx, dat_optim *opt, const seg_batch &b,
                         const dat_optim_coefs &c, double lr, const step_vals *dv, float *params,
                         const float *grads, double *part)
{
    const long long t = opt->step;
    int chunks = b.first_chunk[b.n];
    if (chunks == 0)
        return DAT_OK;
    cudaStream_t st = dat_cuda(ctx)->stream;
    if (c.rule == DAT_RULE_SGD)
        direction_kernel<DAT_RULE_SGD><<<chunks, THREADS, 0, st>>>(b, c, t, dv, params, grads,
                                                                  opt->m, opt->v, opt->u, part);
    else if (c.rule == DAT_RULE_MOMENTUM)
        direction_kernel<DAT_RULE_MOMENTUM><<<chunks, THREADS, 0, st>>>(
            b, c, t, dv, params, grads, opt->m, opt->v, opt->u, part);
    else
        direction_kernel<DAT_RULE_ADAM><<<chunks, THREADS, 0, st>>>(b, c, t, dv, params, grads,
                                                                   opt->m, opt->v, opt->u, part);
    DAT_CUDA_CHECK_LAUNCH("direction_kernel");
    apply_kernel<<<chunks, THREADS, 0, st>>>(b, lr, dv, (double)opt->o.c_l, (double)opt->o.c_u,
                                             part, opt->u, params);
    DAT_CUDA_CHECK_LAUNCH("apply_kernel");
    return DAT_OK;
}

static long long chunks_of(const dat_optim_seg *s)
{
    return s->lr_scale == 0.0f ? 0 : (s->length + CHUNK - 1) / CHUNK;
}

dat_status dat_cuda_optim_update(dat_ctx *ctx, struct dat_optim *opt, float *params,
                                 const float *grads)
{
    DAT_TRY(dat_cuda_use_device(ctx));
    /* Every batch's partials in one workspace request (a later request could move it). */
    long long total = 0;
    for (int32_t k = 0; k < opt->n_segs; ++k)
        total += chunks_of(&opt->segs[k]);
    double *part;
    DAT_TRY(dat_cuda_workspace(ctx, (size_t)(total + 2) * 2 * sizeof(double), (void **)&part));
    step_vals *dv = NULL; /* in the first 4 doubles */
    if (dat_capturing(ctx)) {
        dv = (step_vals *)part;
        step_vals_kernel<<<1, 1, 0, dat_cuda(ctx)->stream>>>(opt->o, opt->d_step, opt->d_skip,
                                                              dat_fault_word(ctx), dv);
        DAT_CUDA_CHECK_LAUNCH("step_vals_kernel");
    }
    part += 4;
    const double lr = dat_optim_lr_at(&opt->o, opt->step);
    dat_optim_coefs c = {};
    seg_batch b = {};
    for (int32_t k = 0; k < opt->n_segs; ++k) {
        const dat_optim_seg *s = &opt->segs[k];
        long long n = chunks_of(s);
        if (n == 0)
            continue; /* frozen or empty: parameters and moments keep their bits */
        dat_optim_coefs_of(opt, s, &c);
        b.offset[b.n] = s->offset;
        b.length[b.n] = s->length;
        b.wd_g[b.n] = c.wd_g;
        b.wd_u[b.n] = c.wd_u;
        b.lr_scale[b.n] = s->lr_scale;
        b.skipped[b.n] = dat_optim_seg_skipped(opt, s);
        b.lalr[b.n] = opt->o.lalr && !s->no_lalr;
        b.first_chunk[b.n + 1] = b.first_chunk[b.n] + (int)n;
        if (++b.n == SEGS) {
            DAT_TRY(launch(ctx, opt, b, c, lr, dv, params, grads, part));
            part += 2 * b.first_chunk[b.n];
            b = seg_batch{};
        }
    }
    if (b.n > 0)
        DAT_TRY(launch(ctx, opt, b, c, lr, dv, params, grads, part));
    return DAT_OK;
}
