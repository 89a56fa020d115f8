/* Setting the thread-local error message, and argument checks that use it. */
#ifndef LIBDAT_CORE_ERROR_H
#define LIBDAT_CORE_ERROR_H

#include "libdat/dat_common.h"

#if defined(__GNUC__)
#define DAT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DAT_PRINTF(f, a)
#endif

/* Bytes of a message, terminator included (longer ones are cut). */
enum { DAT_ERROR_CAPACITY = 1024 };

/*
 * Records "func: message" as the thread's last error and returns status, so
 * a failure path reads `return dat_error(DAT_ERR_..., __func__, "...", ...)`.
 */
dat_status dat_error(dat_status status, const char *func, const char *fmt, ...) DAT_PRINTF(3, 4);

/* Prefixes the current message with "func: ", to say where a failure came
 * through; returns status unchanged. */
dat_status dat_error_context(dat_status status, const char *func);

#define DAT_CHECK_NOT_NULL(p)                                                       \
    do {                                                                            \
        if ((p) == NULL)                                                            \
            return dat_error(DAT_ERR_INVALID_ARG, __func__, "%s must not be NULL", #p); \
    } while (0)

/* Propagates a failing status unchanged (the message is already set). */
#define DAT_TRY(expr)                   \
    do {                                \
        dat_status dat_try_s_ = (expr); \
        if (dat_try_s_ != DAT_OK)       \
            return dat_try_s_;          \
    } while (0)

/* Checks the size field of an options struct against the smallest layout
 * libdat accepts (the first released one) and the current one. */
#define DAT_CHECK_OPTIONS_SIZE(opts, type, min_size)                                   \
    do {                                                                               \
        if ((opts)->size < (min_size) || (opts)->size > sizeof(type))                  \
            return dat_error(DAT_ERR_INVALID_ARG, __func__,                            \
                             "%s->size is %u, expected %zu: call " #type "_init first", \
                             #opts, (unsigned)(opts)->size, sizeof(type));             \
    } while (0)

#endif
