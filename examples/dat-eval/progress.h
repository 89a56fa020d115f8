/* Progress of the evaluation: a one-line bar on a terminal, plain lines otherwise. */
#ifndef DAT_EVAL_PROGRESS_H
#define DAT_EVAL_PROGRESS_H

#include <stdint.h>

typedef struct progress {
    int mode; /* 0 none, 1 bar, 2 lines */
    int64_t total, last_line;
    double start;
} progress;

double now_seconds(void);
/* mode: "auto" (bar on a terminal, lines otherwise), "bar", "lines", "none". */
void progress_start(progress *p, const char *mode, int64_t total);
/* done images of total; `status` is the running figures, e.g. "ta 0.91 aa 0.72". */
void progress_update(progress *p, int64_t done, const char *status);
void progress_end(progress *p);

#endif
