/* libFuzzer harness of the safetensors reader (checkpoints, model weights). */
#include <stdint.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dat_st_file f;
    if (dat_st_parse("fuzz.safetensors", data, size, &f) == DAT_OK) {
        /* Touch the last byte of every tensor: an offset outside the buffer shows under ASan. */
        for (int i = 0; i < f.n; ++i)
            if (f.entries[i].end > f.entries[i].begin) {
                volatile uint8_t last =
                    ((const uint8_t *)f.entries[i].data)[f.entries[i].end - f.entries[i].begin - 1];
                (void)last;
            }
        dat_st_free(&f);
    }
    return 0;
}
