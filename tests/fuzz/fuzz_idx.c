/* libFuzzer harness of the IDX reader (raw and gzip): images and labels. */
#include <stdint.h>
#include <stdlib.h>

#include "data/reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dat_data_source src;
    if (dat_idx_parse_images("fuzz.idx", data, size, &src) == DAT_OK) {
        /* Touch the last pixel: a short allocation would show under ASan. */
        volatile unsigned char last =
            ((const unsigned char *)src.pixels)[src.n * dat_data_sample_elems(&src) - 1];
        (void)last;
        dat_data_source_free(&src);
    }
    int32_t *labels;
    int64_t n;
    if (dat_idx_parse_labels("fuzz.idx", data, size, &labels, &n) == DAT_OK) {
        volatile int32_t last = labels[n - 1];
        (void)last;
        free(labels);
    }
    return 0;
}
