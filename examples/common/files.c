#include "files.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int temp_create(const char *prefix, char **name)
{
    size_t size = strlen(prefix) + 8;
    *name = malloc(size);
    if (!*name) {
        errno = ENOMEM;
        return -1;
    }
    snprintf(*name, size, "%s.XXXXXX", prefix);
    int fd = mkstemp(*name);
    if (fd < 0) {
        int err = errno;
        free(*name);
        *name = NULL;
        errno = err;
    }
    return fd;
}

int temp_probe(const char *prefix)
{
    char *name;
    int fd = temp_create(prefix, &name);
    if (fd < 0)
        return errno;
    close(fd);
    unlink(name);
    free(name);
    return 0;
}
