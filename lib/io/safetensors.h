/*
 * The safetensors format: an 8-byte little-endian header length, a JSON
 * header {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 * "__metadata__": {"key": "value"}}, then the data. The reader validates the
 * whole header before exposing anything (sizes, offsets inside the data,
 * entries tiling the data without holes or overlaps, no duplicates) and never
 * reads outside the buffer; the writer writes a temporary file, fsyncs it and
 * renames it over the target, so a crash never leaves half a file under the
 * real name.
 */
#ifndef LIBDAT_IO_SAFETENSORS_H
#define LIBDAT_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "libdat/dat_common.h"

#define DAT_ST_MAX_DIMS 8
#define DAT_ST_MAX_HEADER ((uint64_t)100 << 20)
/* The longest name or metadata string (bytes, unescaped) the reader accepts, so the
 * writer refuses longer ones. */
#define DAT_ST_MAX_STRING (1 << 16)

typedef enum dat_st_dtype {
    DAT_ST_BOOL, DAT_ST_U8, DAT_ST_I8, DAT_ST_I16, DAT_ST_U16, DAT_ST_F16, DAT_ST_BF16,
    DAT_ST_I32, DAT_ST_U32, DAT_ST_F32, DAT_ST_I64, DAT_ST_U64, DAT_ST_F64, DAT_ST_NDTYPES
} dat_st_dtype;

typedef struct dat_st_entry {
    char *name;
    dat_st_dtype dtype;
    int ndim;
    int64_t shape[DAT_ST_MAX_DIMS];
    uint64_t begin, end;   /* byte range within the data section */
    const void *data;      /* reader: points into the file's buffer */
} dat_st_entry;

typedef struct dat_st_file {
    unsigned char *buf;    /* the whole file (reader) */
    size_t size;
    dat_st_entry *entries; /* in file order */
    int n;
    char **meta_keys, **meta_values;
    int n_meta;
} dat_st_file;

/* Element size in bytes of a dtype; its name ("F32"). */
size_t dat_st_dtype_size(dat_st_dtype t);
const char *dat_st_dtype_name(dat_st_dtype t);

/* Parses a file held in memory (the buffer must outlive `out`, which points into
 * it). `what` names the file in messages. DAT_ERR_FORMAT on any malformation. */
dat_status dat_st_parse(const char *what, const unsigned char *buf, size_t size,
                        dat_st_file *out);
/* Reads and parses PATH; DAT_ERR_IO if it cannot be read. */
dat_status dat_st_read(const char *path, dat_st_file *out);
void dat_st_free(dat_st_file *f);

const dat_st_entry *dat_st_find(const dat_st_file *f, const char *name);
const char *dat_st_meta(const dat_st_file *f, const char *key);

/* Writer: entries point at the caller's data until dat_st_write returns. */
typedef struct dat_st_writer {
    dat_st_entry *entries;
    int n, cap;
    char **meta_keys, **meta_values;
    int n_meta, cap_meta;
    dat_status status; /* first failure of an add; reported by dat_st_write */
} dat_st_writer;

void dat_st_writer_init(dat_st_writer *w);
void dat_st_writer_add(dat_st_writer *w, const char *name, dat_st_dtype dtype, int ndim,
                       const int64_t *shape, const void *data);
void dat_st_writer_meta(dat_st_writer *w, const char *key, const char *value);
dat_status dat_st_write(dat_st_writer *w, const char *path);
void dat_st_writer_free(dat_st_writer *w);

#endif
