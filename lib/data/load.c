#include "load.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../core/error.h"

typedef dat_status (*labels_parser)(const char *what, const unsigned char *buf, size_t size,
                                    int32_t **labels, int64_t *n);

static dat_status load_labels(const char *images, const char *path, labels_parser parse,
                              dat_data_source *src)
{
    unsigned char *buf;
    size_t size;
    DAT_TRY(dat_read_file(path, &buf, &size));
    int32_t *labels;
    int64_t n;
    dat_status s = parse(path, buf, size, &labels, &n);
    free(buf);
    if (s != DAT_OK)
        return s;
    return dat_data_attach_labels(src, labels, n, images, path);
}

static dat_status load_idx(const dat_dataset_options *o, dat_data_source *src)
{
    unsigned char *buf;
    size_t size;
    DAT_TRY(dat_read_file(o->images_path, &buf, &size));
    dat_status s = dat_idx_parse_images(o->images_path, buf, size, src);
    free(buf);
    if (s != DAT_OK)
        return s;
    return load_labels(o->images_path, o->labels_path, dat_idx_parse_labels, src);
}

static dat_status load_cifar(const dat_dataset_options *o, dat_data_source *src)
{
    int cifar100 = o->format == DAT_DATASET_CIFAR100;
    for (int32_t i = -1; i < o->num_extra_paths; ++i) {
        const char *path = i < 0 ? o->images_path : o->extra_paths[i];
        unsigned char *buf;
        size_t size;
        DAT_TRY(dat_read_file(path, &buf, &size));
        dat_status s = dat_cifar_append(path, buf, size, cifar100, src);
        free(buf);
        DAT_TRY(s);
    }
    return DAT_OK;
}

/* The images stay in the file, mapped: a rank reads the pages of the samples
 * it serves, so arrays larger than memory (ImageNet's) work. */
static dat_status load_npy(const dat_dataset_options *o, dat_data_source *src)
{
    void *map;
    size_t size;
    DAT_TRY(dat_map_file(o->images_path, &map, &size));
    dat_status s = dat_npy_view_images(o->images_path, map ? map : "", size, (int)o->layout,
                                       src);
    if (s != DAT_OK) {
        if (map)
            munmap(map, size);
        return s;
    }
    src->mapping = map;
    src->mapping_size = size;
    if (o->labels_path == NULL)
        return DAT_OK;
    return load_labels(o->images_path, o->labels_path, dat_npy_parse_labels, src);
}

dat_status dat_data_load(const dat_dataset_options *o, dat_data_source *out)
{
    memset(out, 0, sizeof *out);
    dat_status s;
    switch (o->format) {
    case DAT_DATASET_IDX: s = load_idx(o, out); break;
    case DAT_DATASET_CIFAR10:
    case DAT_DATASET_CIFAR100: s = load_cifar(o, out); break;
    default: s = load_npy(o, out); break;
    }
    if (s == DAT_OK && out->labels != NULL && o->num_classes > 0) {
        if (o->num_classes < out->num_classes) {
            /* Find the first label that breaks the declared count, to name it. */
            for (int64_t i = 0; i < out->n; ++i)
                if (out->labels[i] >= o->num_classes) {
                    s = dat_error(DAT_ERR_FORMAT, "dataset", "%s: sample %lld has label %d, not "
                                  "below num_classes = %d",
                                  o->labels_path ? o->labels_path : o->images_path,
                                  (long long)i, (int)out->labels[i], (int)o->num_classes);
                    break;
                }
        }
        if (s == DAT_OK)
            out->num_classes = o->num_classes;
    }
    if (s == DAT_OK && out->labels == NULL)
        out->num_classes = o->num_classes;
    if (s != DAT_OK)
        dat_data_source_free(out);
    return s;
}
