/* Whole-file helpers, POSIX version (see fs.h). */
#include "util/fs.h"

#include "util/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The one place where errno from these helpers becomes TD_E*. */
static int td__fs_err(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return TD_ENOTFOUND;
    case EACCES:
    case EPERM:
    case EROFS:
        return TD_EACCES;
    case EEXIST:
        return TD_EEXIST;
    case ENAMETOOLONG:
        return TD_EINVAL;
    case ENOMEM:
        return TD_ENOMEM;
    case EFBIG:
        return TD_ETOOBIG;
    case EMFILE:
    case ENFILE:
        return TD_EMFILE;
    default:
        return TD_EIO;
    }
}

int td_fs_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t have = 0;
    int fd, rc;

    if (path == NULL || out == NULL || len == NULL || max == SIZE_MAX)
        return TD_EINVAL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return td__fs_err(errno);
    if (fstat(fd, &st) != 0) {
        rc = td__fs_err(errno);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = TD_EINVAL;
        goto out;
    }
    if (st.st_size < 0 || (uintmax_t)st.st_size > max) {
        rc = TD_ETOOBIG;
        goto out;
    }
    /* Read up to max + 1 bytes whatever stat said: the file may be growing. */
    buf = malloc(max + 1);
    if (buf == NULL) {
        rc = TD_ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + have, max + 1 - have);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = td__fs_err(errno);
            goto out;
        }
        if (r == 0)
            break;
        have += (size_t)r;
        if (have > max) {
            rc = TD_ETOOBIG;
            goto out;
        }
    }
    buf[have] = '\0';
    *out = buf;
    buf = NULL; /* the caller took ownership */
    *len = have;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

/* Write all of data, retrying short writes. */
static int td__fs_write_all(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return td__fs_err(errno);
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

int td_fs_write_file_private(const char *path, const uint8_t *data, size_t len)
{
    static const char suffix[] = ".tmp.XXXXXX";
    char *tmp = NULL, *dir = NULL, *slash;
    size_t plen;
    int fd = -1, rc, dfd;

    if (path == NULL || path[0] == '\0' || (data == NULL && len != 0))
        return TD_EINVAL;
    plen = strlen(path);
    tmp = malloc(plen + sizeof(suffix));
    if (tmp == NULL)
        return TD_ENOMEM;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, suffix, sizeof(suffix));
    /* mkstemp creates the file with O_CREAT | O_EXCL and mode 0600 under a
     * name nobody can predict, so a planted symlink cannot redirect it. */
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = td__fs_err(errno);
        free(tmp);
        return rc;
    }
    /* Be explicit about the mode whatever the libc and umask did. */
    if (fchmod(fd, S_IRUSR | S_IWUSR) != 0) {
        rc = td__fs_err(errno);
        goto fail;
    }
    rc = td__fs_write_all(fd, data, len);
    if (rc != 0)
        goto fail;
    if (fsync(fd) != 0) {
        rc = td__fs_err(errno);
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = td__fs_err(errno);
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = td__fs_err(errno);
        goto fail;
    }
    /* Make the rename itself durable; failing to is not fatal. */
    dir = malloc(plen + 2);
    if (dir != NULL) {
        memcpy(dir, path, plen + 1);
        slash = strrchr(dir, '/');
        if (slash == NULL) {
            dir[0] = '.';
            dir[1] = '\0';
        } else if (slash == dir) {
            dir[1] = '\0';
        } else {
            *slash = '\0';
        }
        dfd = open(dir, O_RDONLY | O_CLOEXEC | O_DIRECTORY);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free(tmp);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    return rc;
}

int td_fs_exists(const char *path, bool *exists)
{
    struct stat st;

    *exists = false;
    if (lstat(path, &st) == 0) {
        *exists = true;
        return 0;
    }
    if (errno == ENOENT)
        return 0;
    return td__fs_err(errno);
}

int td_fs_mkdir_private(const char *path, bool *created)
{
    struct stat st;

    *created = false;
    if (mkdir(path, 0700) == 0) {
        *created = true;
        return 0;
    }
    if (errno != EEXIST)
        return td__fs_err(errno);
    if (stat(path, &st) != 0)
        return td__fs_err(errno);
    return S_ISDIR(st.st_mode) ? 0 : TD_EEXIST;
}

int td_fs_remove(const char *path)
{
    return unlink(path) == 0 ? 0 : td__fs_err(errno);
}

struct td_fs_lock {
    int fd;
};

int td_fs_lock(const char *path, uint64_t timeout_ms, struct td_fs_lock **out)
{
    struct timespec step = {0, 20 * 1000 * 1000};
    struct td_fs_lock *l;
    uint64_t waited = 0;
    int fd;

    *out = NULL;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0)
        return td__fs_err(errno);
    /* flock() locks belong to the open file: the kernel drops them when the
     * holder dies, whatever way it dies. */
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            int e = errno;
            close(fd);
            return td__fs_err(e);
        }
        if (waited >= timeout_ms) {
            close(fd);
            return TD_ETIMEDOUT;
        }
        nanosleep(&step, NULL);
        waited += 20;
    }
    l = malloc(sizeof(*l));
    if (!l) {
        close(fd);
        return TD_ENOMEM;
    }
    l->fd = fd;
    *out = l;
    return 0;
}

void td_fs_unlock(struct td_fs_lock *l)
{
    if (!l)
        return;
    close(l->fd); /* releases the lock */
    free(l);
}

int td_fs_remove_stale_tmp(const char *dir, size_t *removed)
{
    char path[4096];
    struct dirent *e;
    DIR *dp;
    int rc = 0;

    if (removed)
        *removed = 0;
    dp = opendir(dir);
    if (!dp)
        return errno == ENOENT ? 0 : td__fs_err(errno);
    while ((e = readdir(dp)) != NULL) {
        if (!td_fs_is_tmp_name(e->d_name))
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
            continue;
        if (unlink(path) == 0) {
            if (removed)
                (*removed)++;
        } else if (rc == 0 && errno != ENOENT) {
            rc = td__fs_err(errno);
        }
    }
    closedir(dp);
    return rc;
}
