#include "profile.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAT_PROFILE_MAX_OPS 64

typedef struct op_time {
    const char *name; /* a string literal of DAT_OP */
    unsigned long long calls;
    double seconds;
} op_time;

/* A context's ops can run on two threads at once: a dat_grad_sync's thread
 * encodes buckets on the model's context while the backward pass goes on. So
 * the start time is the thread's and the table is locked. */
struct dat_profile {
    double created;
    pthread_mutex_t lock;
    int n;
    op_time ops[DAT_PROFILE_MAX_OPS];
};

static _Thread_local double mark;

void dat_profile_start(dat_ctx *ctx)
{
    const char *on = getenv("DAT_PROFILE_OPS");
    if (!on || strcmp(on, "1") != 0)
        return;
    ctx->prof = calloc(1, sizeof *ctx->prof);
    if (!ctx->prof) /* without memory the context simply runs unprofiled */
        return;
    ctx->prof->created = dat_now();
    pthread_mutex_init(&ctx->prof->lock, NULL);
}

void dat_prof_mark(dat_ctx *ctx)
{
    if (ctx->prof)
        mark = dat_now();
}

dat_status dat_prof_done(dat_ctx *ctx, const char *op, dat_status s)
{
    dat_profile *p = ctx->prof;
    if (!p)
        return s;
    double dt = dat_now() - mark;
    pthread_mutex_lock(&p->lock);
    int i = 0;
    while (i < p->n && p->ops[i].name != op && strcmp(p->ops[i].name, op) != 0)
        ++i;
    if (i == p->n && p->n < DAT_PROFILE_MAX_OPS)
        p->ops[p->n++].name = op;
    if (i < p->n) {
        p->ops[i].calls++;
        p->ops[i].seconds += dt;
    }
    pthread_mutex_unlock(&p->lock);
    return s;
}

static int by_time(const void *a, const void *b)
{
    double x = ((const op_time *)a)->seconds, y = ((const op_time *)b)->seconds;
    return (x < y) - (x > y);
}

void dat_profile_finish(dat_ctx *ctx)
{
    dat_profile *p = ctx->prof;
    if (!p)
        return;
    double wall = dat_now() - p->created, total = 0;
    qsort(p->ops, (size_t)p->n, sizeof *p->ops, by_time);
    fprintf(stderr, "libdat op profile (%s backend, host time; DAT_PROFILE_OPS=1):\n",
            ctx->be->name);
    fprintf(stderr, "  %-20s %10s %12s %10s\n", "op", "calls", "total ms", "us/call");
    for (int i = 0; i < p->n; ++i) {
        const op_time *o = &p->ops[i];
        total += o->seconds;
        fprintf(stderr, "  %-20s %10llu %12.2f %10.2f\n", o->name, o->calls, 1e3 * o->seconds,
                1e6 * o->seconds / (double)o->calls);
    }
    fprintf(stderr, "  ops %.2f ms of the context's %.2f ms (the rest: waits for the device, "
            "copies to the host, the caller)\n", 1e3 * total, 1e3 * wall);
    pthread_mutex_destroy(&p->lock);
    free(p);
    ctx->prof = NULL;
}
