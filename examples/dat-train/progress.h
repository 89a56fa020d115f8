/* Progress of long loops: a one-line bar on a terminal, plain lines otherwise. */
#ifndef DAT_TRAIN_PROGRESS_H
#define DAT_TRAIN_PROGRESS_H

#include <stdint.h>

typedef struct progress {
    int mode;          /* 0 none, 1 bar, 2 lines */
    const char *what;
    int64_t total, done, last_line;
    double start, images;
} progress;

/* mode: "auto" (bar on a terminal, lines otherwise), "bar", "lines", "none". */
void progress_start(progress *p, const char *mode, const char *what, int64_t total);
void progress_update(progress *p, int64_t done, double images, double loss);
void progress_end(progress *p);
double now_seconds(void);

#endif
