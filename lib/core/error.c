#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[DAT_ERROR_CAPACITY];

dat_status dat_error(dat_status status, const char *func, const char *fmt, ...)
{
    int n = snprintf(last_error, sizeof last_error, "%s: ", func ? func : "libdat");
    if (n < 0 || (size_t)n >= sizeof last_error)
        return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error + n, sizeof last_error - (size_t)n, fmt, ap);
    va_end(ap);
    return status;
}

dat_status dat_error_context(dat_status status, const char *func)
{
    /* Shift the message right and put "func: " in front; the tail is cut if full. */
    size_t flen = strlen(func), mlen = strlen(last_error);
    if (flen + 2 >= sizeof last_error)
        return status;
    size_t keep = mlen < sizeof last_error - flen - 3 ? mlen : sizeof last_error - flen - 3;
    memmove(last_error + flen + 2, last_error, keep);
    last_error[flen + 2 + keep] = '\0';
    memcpy(last_error, func, flen);
    last_error[flen] = ':';
    last_error[flen + 1] = ' ';
    return status;
}

const char *dat_last_error(void)
{
    return last_error;
}

void dat_clear_error(void)
{
    last_error[0] = '\0';
}

const char *dat_status_string(dat_status status)
{
    switch (status) {
    case DAT_OK: return "DAT_OK";
    case DAT_ERR_INVALID_ARG: return "DAT_ERR_INVALID_ARG";
    case DAT_ERR_OUT_OF_MEMORY: return "DAT_ERR_OUT_OF_MEMORY";
    case DAT_ERR_NO_DEVICE: return "DAT_ERR_NO_DEVICE";
    case DAT_ERR_UNSUPPORTED: return "DAT_ERR_UNSUPPORTED";
    case DAT_ERR_IO: return "DAT_ERR_IO";
    case DAT_ERR_FORMAT: return "DAT_ERR_FORMAT";
    case DAT_ERR_NUMERIC: return "DAT_ERR_NUMERIC";
    case DAT_ERR_CUDA: return "DAT_ERR_CUDA";
    case DAT_ERR_COMM: return "DAT_ERR_COMM";
    case DAT_ERR_TIMEOUT: return "DAT_ERR_TIMEOUT";
    case DAT_ERR_STATE: return "DAT_ERR_STATE";
    case DAT_ERR_INTERNAL: return "DAT_ERR_INTERNAL";
    default: return "DAT_ERR_UNKNOWN";
    }
}
