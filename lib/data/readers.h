/* Dataset readers: files into one in-memory form (uint8 pixels, int32 labels). */
#ifndef LIBDAT_DATA_READERS_H
#define LIBDAT_DATA_READERS_H

#include <stddef.h>
#include <stdint.h>

#include "libdat/dat_common.h"

typedef struct dat_raw_data {
    int64_t n;
    int32_t c, h, w, classes;
    uint8_t *pixels;  /* n x c x h x w */
    int32_t *labels;  /* n */
} dat_raw_data;

/* The whole content of a file, gunzipped when it is gzip-compressed. */
dat_status dat_read_file(const char *path, uint8_t **data, size_t *size);

/* Parsers of file contents held in memory (also the fuzzers' entry points);
 * `what` names the file in messages. */
dat_status dat_idx_parse_images(const char *what, const uint8_t *b, size_t size,
                                dat_raw_data *out);
dat_status dat_idx_parse_labels(const char *what, const uint8_t *b, size_t size,
                                dat_raw_data *out);
dat_status dat_cifar_parse(const char *what, const uint8_t *b, size_t size, dat_raw_data *out);

void dat_raw_data_free(dat_raw_data *d);

#endif
