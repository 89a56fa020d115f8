#include "options.h"

#include <stdint.h>
#include <string.h>

#include "error.h"

dat_status dat_options_fill(const char *func, void *opts, size_t size, const void *d,
                            size_t full)
{
    if (!opts)
        return dat_error(DAT_ERR_INVALID_ARG, func, "opts must not be NULL");
    if (size < sizeof(uint32_t))
        return dat_error(DAT_ERR_INVALID_ARG, func, "size = %zu: a struct starts with its "
                         "uint32_t size", size);
    size_t n = size < full ? size : full;
    memcpy(opts, d, n);
    uint32_t recorded = (uint32_t)n;
    memcpy(opts, &recorded, sizeof recorded);
    return DAT_OK;
}
