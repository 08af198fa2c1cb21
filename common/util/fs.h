/* Whole-file helpers for small private files (key files), one
 * implementation per platform: fs_posix.c and fs_win.c.  These are the only
 * file I/O in common/. */
#ifndef TD_FS_H_
#define TD_FS_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Read a regular file of at most max bytes into a malloc()ed buffer (*out,
 * freed by the caller; a NUL is appended after the data but not counted in
 * *len).  Returns 0, TD_EINVAL, TD_ENOTFOUND, TD_EACCES, TD_ETOOBIG (larger
 * than max), TD_ENOMEM or TD_EIO. */
int td_fs_read_file(const char *path, size_t max, uint8_t **out, size_t *len);

/* Replace path atomically with data: write a new temporary file in the same
 * directory, readable and writable by the owner only (0600 on POSIX), flush
 * it to disk, then rename it over path.  On failure path is untouched and the
 * temporary file is removed.  Returns 0, TD_EINVAL, TD_ENOTFOUND (no such
 * directory), TD_EACCES, TD_ENOMEM or TD_EIO. */
int td_fs_write_file_private(const char *path, const uint8_t *data, size_t len);

/* Does anything (file, directory, dangling symlink) exist at path?  Sets
 * *exists; an error other than "no such file" is returned as TD_E*. */
int td_fs_exists(const char *path, bool *exists);

/* Make sure path is a directory, creating it (one level, owner-only: 0700 on
 * POSIX) when it does not exist.  *created tells whether it was made here.
 * TD_EEXIST when something other than a directory is in the way,
 * TD_ENOTFOUND when the parent directory does not exist. */
int td_fs_mkdir_private(const char *path, bool *created);

/* Remove a file (for cleaning up after a failure). */
int td_fs_remove(const char *path);

/* Is name (no directory) one of td_fs_write_file_private()'s temporary
 * files, "FILE.tmp.SUFFIX"? */
bool td_fs_is_tmp_name(const char *name);
/* Remove the temporary files that writers killed mid-write left in dir (a
 * missing dir is fine).  Only a writer holding the directory's lock may call
 * it, or it could remove another writer's file before its rename.  Returns
 * 0 or the first TD_E* met; *removed (may be NULL) counts them. */
int td_fs_remove_stale_tmp(const char *dir, size_t *removed);

/* An exclusive advisory lock on a lock file (created owner-only when
 * missing), held until td_fs_unlock() or the process ends, so that a
 * killed holder never leaves it locked.  Waits up to timeout_ms for another
 * holder; TD_ETIMEDOUT then. */
struct td_fs_lock;
int td_fs_lock(const char *path, uint64_t timeout_ms, struct td_fs_lock **out);
void td_fs_unlock(struct td_fs_lock *l);

#endif
