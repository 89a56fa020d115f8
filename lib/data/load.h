/* Reads the files named by dataset options into a dat_data_source. */
#ifndef LIBDAT_DATA_LOAD_H
#define LIBDAT_DATA_LOAD_H

#include "libdat/dat_data.h"
#include "reader.h"

/* Paths and format must have been checked; DAT_ERR_IO / DAT_ERR_FORMAT name
 * the file. num_classes > 0 bounds the labels (else the format's count or
 * the largest label + 1). */
dat_status dat_data_load(const dat_dataset_options *o, dat_data_source *out);

#endif
