/*
 * Bandwidth of the backend's memory-bound layer ops against the backend's own
 * copy of a buffer, same run, same device: ReLU forward and backward, the
 * residual add (with the ReLU after it), batch norm in train mode with the
 * fused ReLU (forward: statistics, then normalize; backward: sums, then dx),
 * and the eval-mode batch norms of an attack's steps (the add before it, the
 * add and ReLU after it, the masked dx), in the activation formats the models
 * use (float32 NCHW, float32 NHWC, bfloat16 NHWC).
 *
 * GB/s count the bytes the op's passes must move at the least: ReLU forward
 * 2 values (read x, write y), backward, add and add + ReLU 3, batch-norm
 * forward 3 (x read by both passes, y written), backward 7 (x, dy and the
 * ReLU's output read by both passes, dx written); eval mode: the add before it
 * 4 (x, x2 read; the sum and y written), the add after it 3 (x, the residual
 * read, y written), dx 3 (dy, the mask read, dx written). A copy moves 2 per
 * value. ratio = op GB/s / copy
 * GB/s: near 1, the op runs at the memory's speed; far below, its kernels
 * wait on something else (latency, instruction issue, too few blocks).
 *
 * With DAT_BENCH_DEVICE=cuda (bench_util.h) the buffers live on the GPU;
 * otherwise on the CPU backend. Last line:
 *   ops ratio=R worst=OP/FMT copy_gbs=... n=N c=C hw=HW
 * where R is the lowest op ratio.
 *
 * Usage: bench_ops [n c hw] [reps]   (default 512 64 1024: preact_resnet18's
 * first stage at batch 512; 20 reps, best of them)
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "core/backend.h"
#include "core/ctx.h"
#include "core/error.h"

typedef struct bench_bufs {
    dat_ctx *ctx;
    size_t count;
    dat_act_fmt fmt;
    void *x, *y, *dy, *dx;
    float *gamma, *beta, *rmean, *rvar, *smean, *sinvstd, *dgamma, *dbeta;
} bench_bufs;

#define BE(b) ((b)->ctx->be)

/* One timed op: runs it `reps` times, each timed alone; best time in seconds. */
typedef dat_status (*op_fn)(bench_bufs *b, const dat_bn_desc *d);

static dat_status op_copy(bench_bufs *b, const dat_bn_desc *d)
{
    (void)d;
    return BE(b)->copy(b->ctx, b->y, b->x, b->count * dat_fmt_size(b->fmt));
}

static dat_status op_relu_fwd(bench_bufs *b, const dat_bn_desc *d)
{
    (void)d;
    return BE(b)->relu_fwd(b->ctx, b->fmt, b->count, b->x, b->y);
}

static dat_status op_relu_bwd(bench_bufs *b, const dat_bn_desc *d)
{
    (void)d;
    return BE(b)->relu_bwd(b->ctx, b->fmt, b->count, b->y, b->dy, b->dx);
}

static dat_status op_add(bench_bufs *b, const dat_bn_desc *d)
{
    (void)d;
    return BE(b)->add(b->ctx, b->fmt, b->count, b->x, b->dy, b->dx);
}

static dat_status op_add_relu(bench_bufs *b, const dat_bn_desc *d)
{
    (void)d;
    return BE(b)->add_relu(b->ctx, b->fmt, b->count, b->x, b->dy, b->dx);
}

/* Eval mode, the residual add before the batch norm: y = bn(x + dy), dx = x + dy. */
static dat_status op_bn_eval_x2(bench_bufs *b, const dat_bn_desc *d)
{
    dat_bn_desc e = *d;
    e.x2 = b->dy;
    e.x_sum = b->dx;
    return BE(b)->bn_fwd_eval(b->ctx, &e, b->x, b->gamma, b->beta, b->rmean, b->rvar, b->y);
}

/* Eval mode, the residual add and ReLU after the batch norm: y = relu(bn(x) + dy). */
static dat_status op_bn_eval_residual(bench_bufs *b, const dat_bn_desc *d)
{
    dat_bn_desc e = *d;
    e.residual = b->dy;
    return BE(b)->bn_fwd_eval(b->ctx, &e, b->x, b->gamma, b->beta, b->rmean, b->rvar, b->y);
}

/* Eval mode, the input gradient only (an attack's), masked by the ReLU's output. */
static dat_status op_bn_eval_dx(bench_bufs *b, const dat_bn_desc *d)
{
    dat_bn_desc m = *d;
    m.relu_mask = b->y;
    return BE(b)->bn_bwd_eval(b->ctx, &m, b->x, b->dy, b->gamma, b->rmean, b->rvar, b->dx, NULL,
                              NULL, 0.0f);
}

static dat_status op_bn_fwd(bench_bufs *b, const dat_bn_desc *d)
{
    return BE(b)->bn_fwd_train(b->ctx, d, b->x, b->gamma, b->beta, b->rmean, b->rvar, b->smean,
                               b->sinvstd, b->y);
}

static dat_status op_bn_bwd(bench_bufs *b, const dat_bn_desc *d)
{
    dat_bn_desc m = *d;
    m.relu_mask = b->y;
    return BE(b)->bn_bwd_train(b->ctx, &m, b->x, b->dy, b->gamma, b->smean, b->sinvstd, b->dx,
                               b->dgamma, b->dbeta, 0.0f);
}

static dat_status time_op(bench_bufs *b, const dat_bn_desc *d, op_fn op, int reps, double *best)
{
    *best = 1e30;
    for (int r = 0; r <= reps; ++r) { /* the first run warms up */
        DAT_TRY(BE(b)->synchronize(b->ctx));
        double t0 = now();
        DAT_TRY(op(b, d));
        DAT_TRY(BE(b)->synchronize(b->ctx));
        double t = now() - t0;
        if (r > 0 && t < *best)
            *best = t;
    }
    return DAT_OK;
}

static dat_status alloc_bufs(bench_bufs *b, const float *host, int c)
{
    dat_ctx *ctx = b->ctx;
    size_t bytes = b->count * dat_fmt_size(b->fmt);
    void **acts[] = {&b->x, &b->y, &b->dy, &b->dx};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; ++i)
        DAT_TRY(BE(b)->alloc(ctx, bytes, acts[i]));
    float **chans[] = {&b->gamma, &b->beta, &b->rmean, &b->rvar,
                       &b->smean, &b->sinvstd, &b->dgamma, &b->dbeta};
    for (size_t i = 0; i < sizeof chans / sizeof *chans; ++i)
        DAT_TRY(BE(b)->alloc(ctx, (size_t)c * sizeof(float), (void **)chans[i]));
    const float one = 1.0f;
    DAT_TRY(BE(b)->fill(ctx, b->gamma, (size_t)c, &one, sizeof one));
    DAT_TRY(BE(b)->fill(ctx, b->rvar, (size_t)c, &one, sizeof one));
    /* x and dy: the host's values (in [-1, 1)) converted to the format. */
    float *f32;
    DAT_TRY(BE(b)->alloc(ctx, b->count * sizeof(float), (void **)&f32));
    DAT_TRY(BE(b)->copy_from_host(ctx, f32, host, b->count * sizeof(float)));
    int n = (int)(b->count / (size_t)c);
    DAT_TRY(BE(b)->act_convert(ctx, n, c, 1, DAT_FMT_F32, f32, NULL, NULL, b->fmt, b->x));
    DAT_TRY(BE(b)->rng_uniform(ctx, f32, b->count, -1.0f, 1.0f, 7, 1, NULL, 0));
    DAT_TRY(BE(b)->act_convert(ctx, n, c, 1, DAT_FMT_F32, f32, NULL, NULL, b->fmt, b->dy));
    BE(b)->free(ctx, f32);
    return BE(b)->synchronize(ctx);
}

static void free_bufs(bench_bufs *b)
{
    void *all[] = {b->x, b->y, b->dy, b->dx, b->gamma, b->beta, b->rmean, b->rvar,
                   b->smean, b->sinvstd, b->dgamma, b->dbeta};
    for (size_t i = 0; i < sizeof all / sizeof *all; ++i)
        BE(b)->free(b->ctx, all[i]);
}

static const struct {
    const char *name;
    op_fn fn;
    double values_moved; /* per element, see the top of the file */
} ops[] = {
    {"relu_fwd", op_relu_fwd, 2}, {"relu_bwd", op_relu_bwd, 3}, {"add", op_add, 3},
    {"add_relu", op_add_relu, 3}, {"bn_fwd_train+relu", op_bn_fwd, 3},
    {"bn_bwd_train+relu", op_bn_bwd, 7}, {"bn_eval(x+x2)+relu", op_bn_eval_x2, 4},
    {"bn_eval+res+relu", op_bn_eval_residual, 3}, {"bn_eval_dx+relu", op_bn_eval_dx, 3},
};

static const struct {
    const char *name;
    dat_act_fmt fmt;
} fmts[] = {
    {"f32-nchw", DAT_FMT_F32}, {"f32-nhwc", DAT_FMT_NHWC}, {"bf16-nhwc", DAT_FMT_BF16_NHWC},
};

int main(int argc, char **argv)
{
    int n = argc > 3 ? atoi(argv[1]) : 512, c = argc > 3 ? atoi(argv[2]) : 64;
    int hw = argc > 3 ? atoi(argv[3]) : 1024;
    int reps = argc > 4 ? atoi(argv[4]) : argc == 2 ? atoi(argv[1]) : 20;
    if (n < 1 || c < 1 || hw < 1 || reps < 1) {
        fprintf(stderr, "usage: bench_ops [n c hw] [reps]\n");
        return 2;
    }
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    bench_device(&co);
    dat_ctx *ctx = NULL;
    TRY(dat_ctx_create(&ctx, &co));
    size_t count = (size_t)n * (size_t)c * (size_t)hw;
    float *host = malloc(count * sizeof *host);
    if (!host) {
        fprintf(stderr, "bench_ops: out of host memory\n");
        return 1;
    }
    for (size_t i = 0; i < count; ++i) /* a cheap spread of values of both signs */
        host[i] = (float)((i * 2654435761u) % 2001u) / 1000.0f - 1.0f;
    printf("%s backend, n %d, c %d, hw %d (%zu values), best of %d\n", ctx->be->name, n, c, hw,
           count, reps);
    double worst = 1e30, copy_worst = 0;
    char worst_name[64] = "";
    for (size_t f = 0; f < sizeof fmts / sizeof *fmts; ++f) {
        bench_bufs b = {.ctx = ctx, .count = count, .fmt = fmts[f].fmt};
        dat_bn_desc d = {.n = n, .c = c, .hw = hw, .eps = 1e-5f, .momentum = 0.1f, .relu_out = 1,
                         .fmt = fmts[f].fmt};
        TRY(alloc_bufs(&b, host, c));
        double t_copy, esize = (double)dat_fmt_size(fmts[f].fmt);
        TRY(time_op(&b, &d, op_copy, reps, &t_copy));
        double copy_gbs = 2 * esize * (double)count / t_copy / 1e9;
        printf("%-10s copy %8.1f GB/s (%.3f ms)\n", fmts[f].name, copy_gbs, 1e3 * t_copy);
        for (size_t o = 0; o < sizeof ops / sizeof *ops; ++o) {
            double t;
            TRY(time_op(&b, &d, ops[o].fn, reps, &t));
            double gbs = ops[o].values_moved * esize * (double)count / t / 1e9;
            double ratio = gbs / copy_gbs;
            printf("%-10s %-18s %8.1f GB/s (%.3f ms) ratio %.2f\n", fmts[f].name, ops[o].name,
                   gbs, 1e3 * t, ratio);
            if (ratio < worst) {
                worst = ratio;
                copy_worst = copy_gbs;
                snprintf(worst_name, sizeof worst_name, "%s/%s", ops[o].name, fmts[f].name);
            }
        }
        free_bufs(&b);
    }
    printf("ops ratio=%.3f worst=%s copy_gbs=%.1f n=%d c=%d hw=%d\n", worst, worst_name,
           copy_worst, n, c, hw);
    free(host);
    dat_ctx_destroy(ctx);
    return 0;
}
