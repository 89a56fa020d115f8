/* libFuzzer harness of the CIFAR-10 / -100 record reader, appending twice. */
#include <stdint.h>
#include <string.h>

#include "data/reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int cifar100 = 0; cifar100 < 2; ++cifar100) {
        dat_data_source acc;
        memset(&acc, 0, sizeof acc);
        if (dat_cifar_append("fuzz.bin", data, size, cifar100, &acc) == DAT_OK &&
            dat_cifar_append("fuzz.bin", data, size, cifar100, &acc) == DAT_OK) {
            volatile unsigned char last =
                ((const unsigned char *)acc.pixels)[acc.n * dat_data_sample_elems(&acc) - 1];
            volatile int32_t label = acc.labels[acc.n - 1];
            (void)last;
            (void)label;
        }
        dat_data_source_free(&acc);
    }
    return 0;
}
