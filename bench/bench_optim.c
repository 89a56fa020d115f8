/* One LAMB step (AdamW + LALR) over N parameters in segments of PreAct
 * ResNet-18's sizes, against a memcpy of the same bytes:
 *   bench_optim N ITERS THREADS
 * prints "lamb n=<N> step_ms=<..> gbs=<..> memcpy_gbs=<..>"; GB/s count the
 * bytes a LAMB step must move: params, grads, m, v read and params, m, v written. */
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_optim N ITERS THREADS\n");
        return 2;
    }
    int64_t n = atoll(argv[1]);
    int iters = atoi(argv[2]);
    dat_ctx_options co;
    dat_ctx_options_init(&co);
    co.num_threads = atoi(argv[3]);
    dat_ctx *ctx;
    if (dat_ctx_create(&ctx, &co) != DAT_OK)
        return 1;
    /* Segments of ResNet-like sizes: 2.36 M-weight layers and their BN pairs. */
    int nseg = 0;
    dat_segment *segs = calloc(256, sizeof *segs);
    for (int64_t off = 0; off < n && nseg < 256; ++nseg) {
        int64_t len = nseg % 3 == 0 ? 589824 : 512;
        if (off + len > n || nseg == 255)
            len = n - off;
        segs[nseg] = (dat_segment){.size = sizeof *segs, .name = "s", .offset = off,
                                   .length = len,
                                   .kind = nseg % 3 == 0 ? DAT_SEGMENT_WEIGHT : DAT_SEGMENT_BN_WEIGHT};
        off += len;
    }
    dat_optim_options o;
    dat_optim_options_init(&o);
    o.kind = DAT_OPTIM_ADAMW;
    o.lr = 1e-3f;
    o.weight_decay = 1e-4f;
    o.lalr = 1;
    dat_optim *opt;
    if (dat_optim_create(&opt, ctx, segs, nseg, &o) != DAT_OK) {
        fprintf(stderr, "%s\n", dat_last_error());
        return 1;
    }
    dat_tensor *p, *g;
    dat_tensor_create(&p, ctx, DAT_FLOAT32, 1, &n);
    dat_tensor_create(&g, ctx, DAT_FLOAT32, 1, &n);
    dat_tensor_fill_normal(p, 0, 1, 0, 0);
    dat_tensor_fill_normal(g, 0, 1, 1, 0);
    dat_optim_step(opt, p, g);
    double t0 = now();
    for (int i = 0; i < iters; ++i)
        dat_optim_step(opt, p, g);
    double step = (now() - t0) / iters;
    size_t bytes = (size_t)n * 4;
    char *a = malloc(bytes), *b = malloc(bytes);
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double best = 1e30;
    for (int i = 0; i < 5; ++i) {
        double t = now();
        memcpy(b, a, bytes);
        t = now() - t;
        best = t < best ? t : best;
    }
    double moved = 7.0 * (double)bytes; /* 4 arrays read, 3 written */
    printf("lamb n=%lld step_ms=%.2f gbs=%.2f memcpy_gbs=%.2f\n", (long long)n, 1e3 * step,
           moved / step / 1e9, 2.0 * (double)bytes / best / 1e9);
    free(a);
    free(b);
    dat_tensor_destroy(p);
    dat_tensor_destroy(g);
    dat_optim_destroy(opt);
    dat_ctx_destroy(ctx);
    free(segs);
    return 0;
}
