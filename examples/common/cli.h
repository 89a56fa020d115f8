/* Command-line helpers of the example programs (dat-train, dat-eval): option
 * values checked against their ranges, and the one error line a bad value gets. */
#ifndef DAT_EXAMPLES_CLI_H
#define DAT_EXAMPLES_CLI_H

#include <stdint.h>

/* The program name that starts every error line ("dat-train"). */
void cli_set_program(const char *name);

/* Prints "PROGRAM: OPT VAL: WHY (see --help)" and returns -1. */
int cli_bad(const char *opt, const char *val, const char *why);

/* Each parses v into *out and returns 0, or returns cli_bad()'s -1 with *out unchanged. */
int cli_int(const char *opt, const char *v, long lo, long hi, int32_t *out);
/* A number in [lo, hi], or in (lo, hi) when open. */
int cli_float(const char *opt, const char *v, double lo, double hi, int open, float *out);
/* One of the NULL-terminated choices; *out points at the matching entry. */
int cli_choice(const char *opt, const char *v, const char *const *choices, const char **out);
/* A file or folder name of at most CLI_MAX_PATH characters: the programs build
 * the names of the files inside a folder in buffers of PATH_MAX (4096) bytes. */
enum { CLI_MAX_PATH = 4000 };
int cli_path(const char *opt, const char *v, const char **out);
/* "on" (1) or "off" (0). */
int cli_onoff(const char *opt, const char *v, int *out);
/* A class subset, "0-4" or "1,3,5" (ranges allowed in lists): distinct classes in
 * [0, max) into classes[0 .. *count - 1], in the order given. */
int cli_classes(const char *opt, const char *v, int32_t *classes, int max, int32_t *count);
/* The list as dat-train records it in its config, "0,1,2" ("" for none); buf of
 * CLI_CLASSES_TEXT bytes holds any list cli_classes takes. */
enum { CLI_CLASSES_TEXT = 8192 };
void cli_classes_text(const int32_t *classes, int32_t count, char *buf);

/* An option without a value: its presence sets *flag to 1. */
typedef struct cli_flag {
    const char *name;
    int *flag;
} cli_flag;

/* Walks argv: --help or -h prints usage and returns 1; a flag of `flags` (NULL-name
 * terminated) sets its int; any other --option hands the next argument to
 * value(opts, option, value), which returns 0 or -1. Returns 0, 1 or -1. */
int cli_parse(int argc, char **argv, const char *usage, const cli_flag *flags,
              int (*value)(void *opts, const char *opt, const char *v), void *opts);

#endif
