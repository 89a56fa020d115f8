#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

static dat_status read_all(int fd, const char *path, unsigned char *b, size_t size)
{
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, b + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return io_error(path, "read", errno);
        if (r == 0)
            return dat_error(DAT_ERR_IO, "dataset", "%s: read %zu of %zu bytes (did the file "
                             "change?)", path, got, size);
        got += (size_t)r;
    }
    return DAT_OK;
}

/* Opens a regular file for reading: *fd and its size, or an error naming the path. */
static dat_status open_regular(const char *path, int *fd, size_t *size)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return io_error(path, "open", errno);
    struct stat st;
    dat_status s = DAT_OK;
    if (fstat(*fd, &st) != 0)
        s = io_error(path, "stat", errno);
    else if (!S_ISREG(st.st_mode))
        s = dat_error(DAT_ERR_IO, "dataset", "%s: cannot read: not a regular file%s", path,
                      S_ISDIR(st.st_mode) ? " (a folder)" : "");
    if (s != DAT_OK) {
        close(*fd);
        *fd = -1;
        return s;
    }
    *size = (size_t)st.st_size;
    return DAT_OK;
}

dat_status dat_read_file(const char *path, unsigned char **buf, size_t *size)
{
    *buf = NULL;
    *size = 0;
    int fd;
    size_t n;
    DAT_TRY(open_regular(path, &fd, &n));
    /* One spare byte so that an empty file still gives a non-NULL buffer. */
    unsigned char *b = malloc(n + 1);
    dat_status s = DAT_OK;
    if (b == NULL)
        s = dat_error(DAT_ERR_OUT_OF_MEMORY, "dataset", "%s: cannot hold its %zu bytes", path, n);
    else if ((s = read_all(fd, path, b, n)) != DAT_OK)
        free(b);
    else {
        *buf = b;
        *size = n;
    }
    close(fd);
    return s;
}

dat_status dat_map_file(const char *path, void **map, size_t *size)
{
    *map = NULL;
    *size = 0;
    int fd;
    size_t n;
    DAT_TRY(open_regular(path, &fd, &n));
    void *p = n ? mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    int err = errno;
    close(fd); /* the mapping stays */
    if (p == MAP_FAILED)
        return io_error(path, "map", err);
    *map = p;
    *size = n;
    return DAT_OK;
}
