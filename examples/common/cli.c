#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *program = "dat";

void cli_set_program(const char *name)
{
    program = name;
}

int cli_bad(const char *opt, const char *val, const char *why)
{
    int shown = val && *val;
    fprintf(stderr, "%s: %s%s%s: %s (see --help)\n", program, opt, shown ? " " : "",
            shown ? val : "", why);
    return -1;
}

int cli_int(const char *opt, const char *v, long lo, long hi, int32_t *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        char why[96];
        snprintf(why, sizeof why, "expected an integer in [%ld, %ld]", lo, hi);
        return cli_bad(opt, v, why);
    }
    *out = (int32_t)x;
    return 0;
}

int cli_float(const char *opt, const char *v, double lo, double hi, int open, float *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    float x = (float)d; /* checked as stored: 1e-50 would pass (0, 1) and be 0 */
    int in = open ? x > lo && x < hi : x >= lo && x <= hi;
    if (errno || *end || end == v || !in || !isfinite(x) || (d != 0 && !isnormal(x))) {
        char why[96];
        snprintf(why, sizeof why, "expected a number in %c%g, %g%c", open ? '(' : '[', lo, hi,
                 open ? ')' : ']');
        return cli_bad(opt, v, why);
    }
    *out = (float)x;
    return 0;
}

int cli_choice(const char *opt, const char *v, const char *const *choices, const char **out)
{
    for (int i = 0; choices[i]; ++i)
        if (strcmp(v, choices[i]) == 0) {
            *out = choices[i];
            return 0;
        }
    return cli_bad(opt, v, "not one of the listed values");
}

int cli_path(const char *opt, const char *v, const char **out)
{
    size_t n = strlen(v);
    if (n == 0 || n > CLI_MAX_PATH) {
        char why[96];
        snprintf(why, sizeof why, "a name of %zu characters; expected 1 to %d", n,
                 (int)CLI_MAX_PATH);
        return cli_bad(opt, n > 64 ? "..." : v, why);
    }
    *out = v;
    return 0;
}

int cli_onoff(const char *opt, const char *v, int *out)
{
    if (strcmp(v, "on") == 0 || strcmp(v, "off") == 0) {
        *out = strcmp(v, "on") == 0;
        return 0;
    }
    return cli_bad(opt, v, "expected on or off");
}

/* One item of a class list at *p: "a" or "a-b", *p moved past it. */
static int class_range(const char *opt, const char *v, const char **p, long *a, long *b)
{
    char *end;
    *a = *b = strtol(*p, &end, 10);
    if (end == *p)
        return cli_bad(opt, v, "expected a list such as 0-4 or 1,3,5");
    *p = end;
    if (**p == '-') {
        *b = strtol(*p + 1, &end, 10);
        if (end == *p + 1)
            return cli_bad(opt, v, "a range needs an end, e.g. 0-4");
        *p = end;
    }
    return 0;
}

int cli_classes(const char *opt, const char *v, int32_t *classes, int max, int32_t *count)
{
    int32_t n = 0;
    for (const char *p = v; *p;) {
        long a, b;
        if (class_range(opt, v, &p, &a, &b))
            return -1;
        if (a < 0 || b < a || b >= max) {
            char why[80];
            snprintf(why, sizeof why, "classes must be in [0, %d) and ranges ascending", max);
            return cli_bad(opt, v, why);
        }
        for (long c = a; c <= b; ++c) {
            for (int32_t i = 0; i < n; ++i)
                if (classes[i] == c)
                    return cli_bad(opt, v, "a class is listed twice");
            classes[n++] = (int32_t)c;
        }
        if (*p == ',')
            ++p;
        else if (*p)
            return cli_bad(opt, v, "unexpected character");
    }
    if (n == 0)
        return cli_bad(opt, v, "empty list");
    *count = n;
    return 0;
}

void cli_classes_text(const int32_t *classes, int32_t count, char *buf)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < count && used + 12 < CLI_CLASSES_TEXT; ++i)
        used += (size_t)snprintf(buf + used, CLI_CLASSES_TEXT - used, "%s%d", i ? "," : "",
                                 (int)classes[i]);
}

int cli_parse(int argc, char **argv, const char *usage, const cli_flag *flags,
              int (*value)(void *opts, const char *opt, const char *v), void *opts)
{
    for (int i = 1; i < argc; ++i) {
        const char *k = argv[i];
        if (strcmp(k, "--help") == 0 || strcmp(k, "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        const cli_flag *f = flags;
        while (f && f->name && strcmp(k, f->name) != 0)
            ++f;
        if (f && f->name) {
            *f->flag = 1;
            continue;
        }
        if (strncmp(k, "--", 2) != 0)
            return cli_bad(k, NULL, "expected an option starting with --");
        if (i + 1 >= argc)
            return cli_bad(k, NULL, "needs a value");
        if (value(opts, k, argv[++i]) != 0)
            return -1;
    }
    return 0;
}
