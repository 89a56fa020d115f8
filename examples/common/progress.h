/* Progress of long loops: a one-line bar on a terminal, plain lines otherwise. */
#ifndef DAT_EXAMPLES_PROGRESS_H
#define DAT_EXAMPLES_PROGRESS_H

#include <stdint.h>

typedef struct progress {
    int mode;          /* 0 none, 1 bar, 2 lines */
    char what[32];     /* a copy: callers pass labels they build on the stack */
    int64_t total, last_line;
    double start;
} progress;

/* mode: "auto" (bar on a terminal, lines otherwise), "bar", "lines", "none";
 * `what` starts each line ("epoch 3", "eval"); total counts the steps. */
void progress_start(progress *p, const char *mode, const char *what, int64_t total);
/* done of total steps, after `images` images; status is shown as is ("loss 0.1234"). */
void progress_update(progress *p, int64_t done, double images, const char *status);
void progress_end(progress *p);
double now_seconds(void);

#endif
