#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../core/error.h"
#include "reader.h"

void dat_data_source_free(dat_data_source *src)
{
    if (src == NULL)
        return;
    free(src->owned);
    if (src->mapping)
        munmap(src->mapping, src->mapping_size);
    free(src->labels);
    memset(src, 0, sizeof *src);
}

dat_status dat_data_attach_labels(dat_data_source *src, int32_t *labels, int64_t n,
                                  const char *images, const char *labels_name)
{
    if (n != src->n) {
        free(labels);
        return dat_error(DAT_ERR_FORMAT, "dataset",
                         "%s holds %lld images but %s holds %lld labels: they must match",
                         images, (long long)src->n, labels_name, (long long)n);
    }
    int32_t max = -1;
    for (int64_t i = 0; i < n; ++i)
        if (labels[i] > max)
            max = labels[i];
    if (src->num_classes > 0 && max >= src->num_classes) {
        free(labels);
        return dat_error(DAT_ERR_FORMAT, "dataset", "%s: label %d is out of range for %d classes",
                         labels_name, (int)max, (int)src->num_classes);
    }
    if (src->num_classes == 0)
        src->num_classes = max + 1;
    free(src->labels);
    src->labels = labels;
    return DAT_OK;
}
