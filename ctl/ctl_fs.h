/* Small file-system helpers for tunnelctl, one implementation per platform:
 * ctl_fs_posix.c and ctl_fs_win.c.  Paths are UTF-8.  Every function returns
 * 0 or a negative TD_E* code. */
#ifndef TD_CTL_FS_H_
#define TD_CTL_FS_H_

#include <stdbool.h>

/* Does anything (file, directory, dangling symlink) exist at path?  Sets
 * *exists; an error other than "no such file" is returned as TD_E*. */
int ctl_fs_exists(const char *path, bool *exists);

/* Make sure path is a directory, creating it (one level, owner-only: 0700 on
 * POSIX) when it does not exist.  *created tells whether it was made here.
 * TD_EEXIST when something other than a directory is in the way,
 * TD_ENOTFOUND when the parent directory does not exist. */
int ctl_fs_mkdir_private(const char *path, bool *created);

/* Remove a file (for cleaning up after a failure). */
int ctl_fs_remove(const char *path);

#endif
