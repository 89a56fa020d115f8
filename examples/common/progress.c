#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void progress_start(progress *p, const char *mode, const char *what, int64_t total)
{
    memset(p, 0, sizeof *p);
    snprintf(p->what, sizeof p->what, "%s", what);
    p->total = total;
    p->start = now_seconds();
    if (strcmp(mode, "none") == 0)
        p->mode = 0;
    else if (strcmp(mode, "bar") == 0 || (strcmp(mode, "auto") == 0 && isatty(STDERR_FILENO)))
        p->mode = 1;
    else
        p->mode = 2;
}

void progress_update(progress *p, int64_t done, double images, const char *status)
{
    if (p->mode == 0 || p->total <= 0)
        return;
    double t = now_seconds() - p->start, rate = t > 0 ? images / t : 0;
    double eta = done > 0 ? t * (double)(p->total - done) / (double)done : 0;
    if (p->mode == 1) {
        int width = 30, fill = (int)(width * done / p->total);
        char bar[32];
        for (int i = 0; i < width; ++i)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r%s [%s] %lld/%lld  %.1f img/s  %s  ETA %.0fs ", p->what, bar,
                (long long)done, (long long)p->total, rate, status, eta);
        fflush(stderr);
        return;
    }
    /* Plain lines: about ten per loop. */
    if (done == p->total || done - p->last_line >= (p->total + 9) / 10) {
        fprintf(stderr, "%s %lld/%lld  %.1f img/s  %s  ETA %.0fs\n", p->what,
                (long long)done, (long long)p->total, rate, status, eta);
        p->last_line = done;
    }
}

void progress_end(progress *p)
{
    if (p->mode == 1)
        fputc('\n', stderr);
}
