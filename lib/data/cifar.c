/*
 * CIFAR binary files (Krizhevsky's "binary version"): fixed-size records, no
 * header. CIFAR-10: <1 byte label 0..9> <3072 pixel bytes>; CIFAR-100:
 * <1 byte coarse label 0..19> <1 byte fine label 0..99> <3072 pixel bytes>.
 * The pixels of a record are the 32 x 32 red plane, then green, then blue:
 * CHW already.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "reader.h"

enum { CIFAR_SIDE = 32, CIFAR_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE };

static dat_status grow_source(const char *what, dat_data_source *acc, int64_t more)
{
    int64_t n = acc->n + more;
    if (n >= DAT_DATA_MAX_SAMPLES)
        return dat_error(DAT_ERR_FORMAT, "cifar", "%s: more than %lld records in all", what,
                         (long long)DAT_DATA_MAX_SAMPLES);
    unsigned char *px = realloc(acc->owned, (size_t)n * CIFAR_PIXELS);
    if (px == NULL)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "cifar", "%s: %lld records", what, (long long)n);
    acc->pixels = acc->owned = px;
    int32_t *lb = realloc(acc->labels, (size_t)n * sizeof *lb);
    if (lb == NULL)
        return dat_error(DAT_ERR_OUT_OF_MEMORY, "cifar", "%s: %lld labels", what, (long long)n);
    acc->labels = lb;
    return DAT_OK;
}

dat_status dat_cifar_append(const char *what, const unsigned char *buf, size_t size,
                            int cifar100, dat_data_source *acc)
{
    const char *name = cifar100 ? "CIFAR-100" : "CIFAR-10";
    size_t label_bytes = cifar100 ? 2 : 1, record = label_bytes + CIFAR_PIXELS;
    int classes = cifar100 ? 100 : 10;
    if (size == 0 || size % record != 0)
        return dat_error(DAT_ERR_FORMAT, "cifar", "%s: %zu bytes is not a whole number of "
                         "%zu-byte %s records", what, size, record, name);
    int64_t count = (int64_t)(size / record);
    /* Labels are checked before anything is appended, so a bad file leaves
     * acc as it was (apart from capacity). */
    for (int64_t i = 0; i < count; ++i) {
        const unsigned char *r = buf + (size_t)i * record;
        if (cifar100 && r[0] >= 20)
            return dat_error(DAT_ERR_FORMAT, "cifar", "%s: record %lld: coarse label %u is not "
                             "below 20", what, (long long)i, r[0]);
        if (r[label_bytes - 1] >= classes)
            return dat_error(DAT_ERR_FORMAT, "cifar", "%s: record %lld: label %u is not below "
                             "%d (is this a %s file?)", what, (long long)i, r[label_bytes - 1],
                             classes, name);
    }
    DAT_TRY(grow_source(what, acc, count));
    unsigned char *px = (unsigned char *)acc->owned + (size_t)acc->n * CIFAR_PIXELS;
    for (int64_t i = 0; i < count; ++i) {
        const unsigned char *r = buf + (size_t)i * record;
        acc->labels[acc->n + i] = r[label_bytes - 1];
        memcpy(px + (size_t)i * CIFAR_PIXELS, r + label_bytes, CIFAR_PIXELS);
    }
    acc->n += count;
    acc->c = 3;
    acc->h = acc->w = CIFAR_SIDE;
    acc->dtype = DAT_UINT8;
    acc->num_classes = classes;
    return DAT_OK;
}
