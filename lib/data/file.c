#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "reader.h"

/* " (install the Debian package dataset-NAME)" for a data set Debian ships
 * under /usr/share/datasets/NAME/, so the fix is in the message. */
static void debian_hint(const char *path, char *hint, size_t cap)
{
    static const char root[] = "/usr/share/datasets/";
    hint[0] = '\0';
    if (strncmp(path, root, sizeof root - 1) == 0) {
        const char *name = path + sizeof root - 1;
        const char *slash = strchr(name, '/');
        int len = slash ? (int)(slash - name) : (int)strlen(name);
        if (len > 0 && len < 64)
            snprintf(hint, cap, " (install the Debian package dataset-%.*s)", len, name);
    } else if (strstr(path, "fashion-mnist") || strstr(path, "fashion_mnist")) {
        snprintf(hint, cap, " (install the Debian package dataset-fashion-mnist, "
                            "which puts the files under /usr/share/datasets/fashion-mnist/)");
    }
}

static dat_status io_error(const char *path, const char *action, int err)
{
    char hint[160] = "";
    if (err == ENOENT)
        debian_hint(path, hint, sizeof hint);
    return dat_error(DAT_ERR_IO, "dataset", "%s: cannot %s: %s%s", path, action, strerror(err),
                     hint);
}

dat_status dat_read_file(const char *path, unsigned char **buf, size_t *size)
{
    *buf = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return io_error(path, "open", errno);
    dat_status s = DAT_OK;
    long len = -1;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        s = io_error(path, "find the size of", errno);
        goto done;
    }
    /* One spare byte so that an empty file still gives a non-NULL buffer. */
    unsigned char *b = malloc((size_t)len + 1);
    if (b == NULL) {
        s = dat_error(DAT_ERR_OUT_OF_MEMORY, "dataset", "%s: cannot hold its %ld bytes", path,
                      len);
        goto done;
    }
    size_t got = fread(b, 1, (size_t)len, f);
    if (got != (size_t)len) {
        int err = ferror(f) ? errno : 0;
        free(b);
        s = err ? io_error(path, "read", err)
                : dat_error(DAT_ERR_IO, "dataset", "%s: read %zu of %ld bytes (file changed?)",
                            path, got, len);
        goto done;
    }
    *buf = b;
    *size = (size_t)len;
done:
    fclose(f);
    return s;
}
