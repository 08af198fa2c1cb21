/* tunnelctl file-system helpers, POSIX version (see ctl_fs.h). */
#include "ctl_fs.h"

#include "error.h"

#include <errno.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* The one place where errno from these helpers becomes TD_E*. */
static int ctl__fs_err(int e)
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
    case ENOMEM:
        return TD_ENOMEM;
    case ENAMETOOLONG:
        return TD_EINVAL;
    default:
        return TD_EIO;
    }
}

int ctl_fs_exists(const char *path, bool *exists)
{
    struct stat st;

    *exists = false;
    if (lstat(path, &st) == 0) {
        *exists = true;
        return 0;
    }
    if (errno == ENOENT)
        return 0;
    return ctl__fs_err(errno);
}

int ctl_fs_mkdir_private(const char *path, bool *created)
{
    struct stat st;

    *created = false;
    if (mkdir(path, 0700) == 0) {
        *created = true;
        return 0;
    }
    if (errno != EEXIST)
        return ctl__fs_err(errno);
    if (stat(path, &st) != 0)
        return ctl__fs_err(errno);
    return S_ISDIR(st.st_mode) ? 0 : TD_EEXIST;
}

int ctl_fs_remove(const char *path)
{
    return unlink(path) == 0 ? 0 : ctl__fs_err(errno);
}
