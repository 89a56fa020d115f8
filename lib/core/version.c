#include "libdat/dat_common.h"

uint32_t dat_version(void)
{
    return DAT_VERSION_NUMBER;
}

const char *dat_version_string(void)
{
    return DAT_VERSION_STRING;
}
