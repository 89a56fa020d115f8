#include "config.h"

#include <stdio.h>
#include <string.h>

const char *config_value(const char *json, const char *key, size_t key_len, size_t *len)
{
    char pat[80];
    if (snprintf(pat, sizeof pat, "\"%.*s\":", (int)key_len, key) >= (int)sizeof pat)
        return NULL;
    const char *v = strstr(json, pat);
    if (!v)
        return NULL;
    v += strlen(pat);
    const char *end = NULL;
    if (*v == '"')
        end = strchr(v + 1, '"');
    else if (*v == '[')
        end = strchr(v, ']');
    *len = end ? (size_t)(end + 1 - v) : strcspn(v, ",}");
    return v;
}
