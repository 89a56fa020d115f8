/* The configuration dat-train records in its checkpoints: one flat JSON object
 * of numbers, strings and arrays of numbers (train_options_json). */
#ifndef DAT_EXAMPLES_CONFIG_H
#define DAT_EXAMPLES_CONFIG_H

#include <stddef.h>

/* The value of the key of key_len characters in the config json (a number, a
 * string with its quotes, an array with its brackets): a pointer into json,
 * its length in *len; NULL when json has no such key. */
const char *config_value(const char *json, const char *key, size_t key_len, size_t *len);

#endif
