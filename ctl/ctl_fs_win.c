/* tunnelctl file-system helpers, Windows version (see ctl_fs.h).
 *
 * Paths are UTF-8 and converted to UTF-16 for the Win32 calls.  Windows has
 * no mode bits: a new directory inherits its ACL from its parent (see
 * common/fs_win.c). */
#include "ctl_fs.h"

#include "error.h"

#include <stdlib.h>
#include <windows.h>

static int ctl__fs_err_win(DWORD e)
{
    switch (e) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
        return TD_ENOTFOUND;
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
        return TD_EACCES;
    case ERROR_ALREADY_EXISTS:
    case ERROR_FILE_EXISTS:
        return TD_EEXIST;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
        return TD_ENOMEM;
    case ERROR_INVALID_NAME:
    case ERROR_FILENAME_EXCED_RANGE:
        return TD_EINVAL;
    default:
        return TD_EIO;
    }
}

/* malloc()ed UTF-16 copy of a UTF-8 string, or NULL (*err set). */
static wchar_t *ctl__fs_wide(const char *s, int *err)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    wchar_t *w;

    if (n <= 0) {
        *err = TD_EINVAL;
        return NULL;
    }
    w = malloc((size_t)n * sizeof(*w));
    if (w == NULL) {
        *err = TD_ENOMEM;
        return NULL;
    }
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
        free(w);
        *err = TD_EINVAL;
        return NULL;
    }
    return w;
}

int ctl_fs_exists(const char *path, bool *exists)
{
    int rc = 0;
    wchar_t *w = ctl__fs_wide(path, &rc);
    DWORD e;

    *exists = false;
    if (w == NULL)
        goto out;
    if (GetFileAttributesW(w) != INVALID_FILE_ATTRIBUTES) {
        *exists = true;
        goto out;
    }
    e = GetLastError();
    if (e != ERROR_FILE_NOT_FOUND && e != ERROR_PATH_NOT_FOUND)
        rc = ctl__fs_err_win(e);
out:
    free(w);
    return rc;
}

int ctl_fs_mkdir_private(const char *path, bool *created)
{
    int rc = 0;
    wchar_t *w = ctl__fs_wide(path, &rc);
    DWORD e, attr;

    *created = false;
    if (w == NULL)
        goto out;
    if (CreateDirectoryW(w, NULL)) {
        *created = true;
        goto out;
    }
    e = GetLastError();
    if (e != ERROR_ALREADY_EXISTS) {
        rc = ctl__fs_err_win(e);
        goto out;
    }
    attr = GetFileAttributesW(w);
    if (attr == INVALID_FILE_ATTRIBUTES)
        rc = ctl__fs_err_win(GetLastError());
    else if (!(attr & FILE_ATTRIBUTE_DIRECTORY))
        rc = TD_EEXIST;
out:
    free(w);
    return rc;
}

int ctl_fs_remove(const char *path)
{
    int rc = 0;
    wchar_t *w = ctl__fs_wide(path, &rc);

    if (w == NULL)
        return rc;
    if (!DeleteFileW(w))
        rc = ctl__fs_err_win(GetLastError());
    free(w);
    return rc;
}
