/* libFuzzer harness of the .npy reader: images in each layout, and labels. */
#include <stdint.h>
#include <stdlib.h>

#include "data/reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int layout = 0; layout < 3; ++layout) {
        dat_data_source src;
        if (dat_npy_view_images("fuzz.npy", data, size, layout, &src) == DAT_OK) {
            size_t item = src.dtype == DAT_FLOAT32 ? 4 : 1;
            size_t bytes = (size_t)(src.n * dat_data_sample_elems(&src)) * item;
            volatile unsigned char last = ((const unsigned char *)src.pixels)[bytes - 1];
            (void)last;
            dat_data_source_free(&src);
        }
    }
    int32_t *labels;
    int64_t n;
    if (dat_npy_parse_labels("fuzz.npy", data, size, &labels, &n) == DAT_OK) {
        volatile int32_t last = labels[n - 1];
        (void)last;
        free(labels);
    }
    return 0;
}
