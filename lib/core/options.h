/* The *_options_init_sized entry points (dat_*.h): the defaults of a whole
 * current struct, copied into a caller's struct of its own, maybe older,
 * size, so that what lies past the caller's struct is never written. */
#ifndef LIBDAT_CORE_OPTIONS_H
#define LIBDAT_CORE_OPTIONS_H

#include <stddef.h>

#include "libdat/dat_common.h"

/* Copies the first size bytes (at most full) of the defaults d into opts and
 * records that count in opts' leading uint32_t size field. */
dat_status dat_options_fill(const char *func, void *opts, size_t size, const void *d,
                            size_t full);

/* Defines type##_init_sized from the whole-struct type##_init, the exported
 * 0.6 symbol, which the library defines as `dat_status (type##_init)(...)`:
 * the parentheses keep the header's macro of that name from expanding. */
#define DAT_OPTIONS_INIT_SIZED(type)                                        \
    dat_status type##_init_sized(type *opts, size_t size)                   \
    {                                                                       \
        type d;                                                             \
        dat_status s = (type##_init)(&d);                                   \
        return s != DAT_OK ? s                                              \
                           : dat_options_fill(#type "_init_sized", opts,    \
                                              size, &d, sizeof d);          \
    }

#endif
