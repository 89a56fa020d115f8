/*
 * Moving a dat_comm_id through a shared file: written atomically (temporary
 * file, fsync, rename), so a reader never sees half an id; the reader waits
 * for the file with a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/error.h"
#include "comm.h"

#define ID_MAGIC "DATCID01"
#define ID_FILE_BYTES (8 + sizeof(dat_comm_id))

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

dat_status dat_comm_unique_id_write(const dat_comm_id *id, const char *path)
{
    DAT_CHECK_NOT_NULL(id);
    DAT_CHECK_NOT_NULL(path);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return dat_error(DAT_ERR_INVALID_ARG, __func__, "path is too long (%zu characters)",
                         strlen(path));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return dat_error(DAT_ERR_IO, __func__, "%s: cannot create: %s", tmp, strerror(errno));
    uint8_t rec[ID_FILE_BYTES];
    memcpy(rec, ID_MAGIC, 8);
    memcpy(rec + 8, id, sizeof *id);
    if (write_all(fd, rec, sizeof rec) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return dat_error(DAT_ERR_IO, __func__, "%s: cannot write: %s", tmp, strerror(e));
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return dat_error(DAT_ERR_IO, __func__, "%s: cannot rename to %s: %s", tmp, path,
                         strerror(e));
    }
    return DAT_OK;
}

dat_status dat_comm_unique_id_read(dat_comm_id *id, const char *path, double timeout_s)
{
    DAT_CHECK_NOT_NULL(id);
    DAT_CHECK_NOT_NULL(path);
    if (!(timeout_s > 0) || timeout_s > 1e9)
        return dat_error(DAT_ERR_INVALID_ARG, __func__,
                         "timeout_s = %g must be in (0, 1e9] seconds", timeout_s);
    double deadline = dat_now() + timeout_s;
    int fd;
    while ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        if (errno != ENOENT)
            return dat_error(DAT_ERR_IO, __func__, "%s: cannot open: %s", path,
                             strerror(errno));
        if (dat_now() > deadline)
            return dat_error(DAT_ERR_TIMEOUT, __func__, "%s did not appear within %g s", path,
                             timeout_s);
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    uint8_t rec[ID_FILE_BYTES + 1];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, rec + got, sizeof rec - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return dat_error(DAT_ERR_IO, __func__, "%s: cannot read: %s", path, strerror(e));
        }
        if (r == 0 || (got += (size_t)r) == sizeof rec)
            break;
    }
    close(fd);
    if (got != ID_FILE_BYTES || memcmp(rec, ID_MAGIC, 8) != 0)
        return dat_error(DAT_ERR_FORMAT, __func__,
                         "%s is not a libdat id file: %zu bytes%s, expected %zu starting with "
                         "\"" ID_MAGIC "\"", path, got, got >= 8 && memcmp(rec, ID_MAGIC, 8)
                         ? " with another magic" : "", (size_t)ID_FILE_BYTES);
    memcpy(id, rec + 8, sizeof *id);
    return DAT_OK;
}
