/* Whole-file helpers, Windows version (see fs.h).
 *
 * Paths are UTF-8 and converted to UTF-16 for the wide CRT and Win32 calls.
 * Windows has no mode bits: _S_IREAD | _S_IWRITE only keeps the file
 * writable, and who may read it comes from the ACL inherited from the
 * directory.  Keep key files in a directory only the service account and
 * administrators can read (the installer sets that ACL). */
#include "util/fs.h"

#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <wchar.h>
#include <windows.h>

/* The one place where CRT errno values from these helpers become TD_E*. */
static int td__fs_err(int e)
{
    switch (e) {
    case ENOENT:
        return TD_ENOTFOUND;
    case EACCES:
    case EPERM:
        return TD_EACCES;
    case ENOMEM:
        return TD_ENOMEM;
    case EMFILE:
        return TD_EMFILE;
    case EEXIST:
        return TD_EEXIST;
    default:
        return TD_EIO;
    }
}

static int td__fs_err_win(DWORD e)
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

/* UTF-8 to a malloc()ed UTF-16 string; NULL on failure. */
static wchar_t *td__fs_wide(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    wchar_t *w;

    if (n <= 0)
        return NULL;
    w = malloc((size_t)n * sizeof(wchar_t));
    if (w == NULL)
        return NULL;
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
        free(w);
        return NULL;
    }
    return w;
}

int td_fs_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
    struct _stat64 st;
    wchar_t *wpath;
    uint8_t *buf = NULL;
    size_t have = 0;
    int fd, rc;

    if (path == NULL || out == NULL || len == NULL || max == SIZE_MAX)
        return TD_EINVAL;
    wpath = td__fs_wide(path);
    if (wpath == NULL)
        return TD_EINVAL;
    fd = _wopen(wpath, _O_RDONLY | _O_BINARY | _O_NOINHERIT);
    free(wpath);
    if (fd < 0)
        return td__fs_err(errno);
    if (_fstat64(fd, &st) != 0) {
        rc = td__fs_err(errno);
        goto out;
    }
    if ((st.st_mode & _S_IFMT) != _S_IFREG) {
        rc = TD_EINVAL;
        goto out;
    }
    if (st.st_size < 0 || (unsigned long long)st.st_size > max) {
        rc = TD_ETOOBIG;
        goto out;
    }
    buf = malloc(max + 1);
    if (buf == NULL) {
        rc = TD_ENOMEM;
        goto out;
    }
    for (;;) {
        size_t want = max + 1 - have;
        int r = _read(fd, buf + have, want > INT_MAX ? INT_MAX : (unsigned)want);
        if (r < 0) {
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
    _close(fd);
    return rc;
}

int td_fs_write_file_private(const char *path, const uint8_t *data, size_t len)
{
    wchar_t *wpath = NULL, *wtmp = NULL;
    size_t wlen;
    int fd = -1, rc = TD_EIO;

    if (path == NULL || path[0] == '\0' || (data == NULL && len != 0))
        return TD_EINVAL;
    wpath = td__fs_wide(path);
    if (wpath == NULL)
        return TD_EINVAL;
    wlen = wcslen(wpath);
    wtmp = malloc((wlen + 32) * sizeof(wchar_t));
    if (wtmp == NULL) {
        rc = TD_ENOMEM;
        goto out;
    }
    /* A new name per attempt; _O_EXCL refuses to reuse a planted file. */
    for (int attempt = 0; attempt < 16; attempt++) {
        _snwprintf(wtmp, wlen + 32, L"%ls.tmp.%08lx%04x", wpath, (unsigned long)GetTickCount(),
                   (unsigned)(GetCurrentProcessId() + (DWORD)attempt) & 0xFFFFu);
        wtmp[wlen + 31] = L'\0';
        fd = _wopen(wtmp, _O_WRONLY | _O_CREAT | _O_EXCL | _O_BINARY | _O_NOINHERIT,
                    _S_IREAD | _S_IWRITE);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0) {
        rc = td__fs_err(errno);
        goto out;
    }
    while (len > 0) {
        unsigned chunk = len > 0x40000000u ? 0x40000000u : (unsigned)len;
        int w = _write(fd, data, chunk);
        if (w <= 0) {
            rc = td__fs_err(errno);
            goto fail;
        }
        data += w;
        len -= (size_t)w;
    }
    if (_commit(fd) != 0) {
        rc = td__fs_err(errno);
        goto fail;
    }
    if (_close(fd) != 0) {
        fd = -1;
        rc = td__fs_err(errno);
        goto fail;
    }
    fd = -1;
    if (!MoveFileExW(wtmp, wpath, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
        rc = td__fs_err_win(GetLastError());
        goto fail;
    }
    rc = 0;
    goto out;
fail:
    if (fd >= 0)
        _close(fd);
    _wunlink(wtmp);
out:
    free(wtmp);
    free(wpath);
    return rc;
}

/* Windows has no mode bits: a new directory inherits its ACL from its parent. */
int td_fs_exists(const char *path, bool *exists)
{
    wchar_t *w = td__fs_wide(path);
    DWORD e;
    int rc = 0;

    *exists = false;
    if (w == NULL)
        return TD_EINVAL;
    if (GetFileAttributesW(w) != INVALID_FILE_ATTRIBUTES) {
        *exists = true;
        goto out;
    }
    e = GetLastError();
    if (e != ERROR_FILE_NOT_FOUND && e != ERROR_PATH_NOT_FOUND)
        rc = td__fs_err_win(e);
out:
    free(w);
    return rc;
}

int td_fs_mkdir_private(const char *path, bool *created)
{
    wchar_t *w = td__fs_wide(path);
    DWORD e, attr;
    int rc = 0;

    *created = false;
    if (w == NULL)
        return TD_EINVAL;
    if (CreateDirectoryW(w, NULL)) {
        *created = true;
        goto out;
    }
    e = GetLastError();
    if (e != ERROR_ALREADY_EXISTS) {
        rc = td__fs_err_win(e);
        goto out;
    }
    attr = GetFileAttributesW(w);
    if (attr == INVALID_FILE_ATTRIBUTES)
        rc = td__fs_err_win(GetLastError());
    else if (!(attr & FILE_ATTRIBUTE_DIRECTORY))
        rc = TD_EEXIST;
out:
    free(w);
    return rc;
}

int td_fs_remove(const char *path)
{
    wchar_t *w = td__fs_wide(path);
    int rc = 0;

    if (w == NULL)
        return TD_EINVAL;
    if (!DeleteFileW(w))
        rc = td__fs_err_win(GetLastError());
    free(w);
    return rc;
}

struct td_fs_lock {
    HANDLE h;
};

int td_fs_lock(const char *path, uint64_t timeout_ms, struct td_fs_lock **out)
{
    wchar_t *wpath = td__fs_wide(path);
    struct td_fs_lock *l;
    uint64_t waited = 0;
    OVERLAPPED ov;
    HANDLE h;

    *out = NULL;
    if (!wpath)
        return TD_ENOMEM;
    h = CreateFileW(wpath, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                    OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    free(wpath);
    if (h == INVALID_HANDLE_VALUE)
        return td__fs_err_win(GetLastError());
    /* The system releases the lock when the holder's handle goes, so a
     * killed holder never leaves it locked. */
    for (;;) {
        memset(&ov, 0, sizeof(ov));
        if (LockFileEx(h, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ov))
            break;
        if (GetLastError() != ERROR_LOCK_VIOLATION) {
            DWORD e = GetLastError();
            CloseHandle(h);
            return td__fs_err_win(e);
        }
        if (waited >= timeout_ms) {
            CloseHandle(h);
            return TD_ETIMEDOUT;
        }
        Sleep(20);
        waited += 20;
    }
    l = malloc(sizeof(*l));
    if (!l) {
        CloseHandle(h);
        return TD_ENOMEM;
    }
    l->h = h;
    *out = l;
    return 0;
}

void td_fs_unlock(struct td_fs_lock *l)
{
    if (!l)
        return;
    CloseHandle(l->h);
    free(l);
}

int td_fs_remove_stale_tmp(const char *dir, size_t *removed)
{
    WIN32_FIND_DATAW fd;
    wchar_t *wdir, *pattern = NULL, *full = NULL;
    size_t n;
    HANDLE h;
    int rc = 0;

    if (removed)
        *removed = 0;
    wdir = td__fs_wide(dir);
    if (wdir == NULL)
        return TD_EINVAL;
    n = wcslen(wdir);
    pattern = malloc((n + 8) * sizeof(wchar_t));
    full = malloc((n + MAX_PATH + 2) * sizeof(wchar_t));
    if (pattern == NULL || full == NULL) {
        rc = TD_ENOMEM;
        goto out;
    }
    _snwprintf(pattern, n + 8, L"%ls\\*", wdir);
    pattern[n + 7] = L'\0';
    h = FindFirstFileW(pattern, &fd);
    if (h == INVALID_HANDLE_VALUE) {
        DWORD e = GetLastError();
        rc = e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND ? 0 : td__fs_err_win(e);
        goto out;
    }
    do {
        char name[MAX_PATH * 3 + 1];
        if (WideCharToMultiByte(CP_UTF8, 0, fd.cFileName, -1, name, (int)sizeof(name), NULL,
                                NULL) <= 0 ||
            !td_fs_is_tmp_name(name))
            continue;
        _snwprintf(full, n + MAX_PATH + 2, L"%ls\\%ls", wdir, fd.cFileName);
        full[n + MAX_PATH + 1] = L'\0';
        if (DeleteFileW(full)) {
            if (removed)
                (*removed)++;
        } else if (rc == 0 && GetLastError() != ERROR_FILE_NOT_FOUND) {
            rc = td__fs_err_win(GetLastError());
        }
    } while (FindNextFileW(h, &fd));
    FindClose(h);
out:
    free(full);
    free(pattern);
    free(wdir);
    return rc;
}
