/* The control endpoint on Windows: a named pipe (see ipc.h).
 *
 * As wireguard-tools does (ipc-uapi-windows.h), the pipe's owner is checked
 * before anything is sent: the daemon's pipe is created by the service,
 * running as SYSTEM, so its owner is SYSTEM (or Administrators, for an
 * elevated console run).  Anybody can create a pipe of any free name, and
 * one created first by another user would otherwise receive our requests,
 * keys included.  The handle is opened for identification only, so the
 * server at the other end cannot impersonate us either. */
#include "ipc.h"

#include "util/error.h"

#include <stdlib.h>
#include <string.h>
#include <windows.h>
#include <aclapi.h>

#if defined(_MSC_VER)
#pragma comment(lib, "advapi32.lib")
#endif

#define CTL_PIPE_PREFIX "\\\\.\\pipe\\"

struct ctl_ipc {
    HANDLE h;
    HANDLE ev; /* for overlapped reads and writes */
};

const char *ctl_ipc_default_endpoint(void)
{
    return CTL_PIPE_PREFIX "tunneld";
}

const char *ctl_ipc_default_config(void)
{
    return "C:\\ProgramData\\tunneld\\tunneld.yaml";
}

uint64_t ctl_ipc_now_ms(void)
{
    return (uint64_t)GetTickCount64();
}

/* The one place where Win32 errors of the pipe calls become TD_E*. */
static int ctl_ipc_err(DWORD e)
{
    switch (e) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
        return TD_ENOTFOUND;
    case ERROR_ACCESS_DENIED:
        return TD_EACCES;
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
    case ERROR_PIPE_NOT_CONNECTED:
        return TD_ECONNRESET;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
        return TD_ENOMEM;
    case ERROR_SEM_TIMEOUT:
        return TD_ETIMEDOUT;
    default:
        return TD_EIO;
    }
}

static wchar_t *ctl_ipc_wide(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    wchar_t *w;

    if (n <= 0)
        return NULL;
    w = malloc((size_t)n * sizeof(*w));
    if (w && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
        free(w);
        w = NULL;
    }
    return w;
}

/* Is the pipe owned by SYSTEM or by the Administrators group? */
static int ctl_ipc_check_owner(HANDLE h, const char **why)
{
    BYTE sys[SECURITY_MAX_SID_SIZE], adm[SECURITY_MAX_SID_SIZE];
    DWORD nsys = sizeof(sys), nadm = sizeof(adm);
    PSECURITY_DESCRIPTOR sd = NULL;
    PSID owner = NULL;
    int rc = 0;

    if (GetSecurityInfo(h, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION, &owner, NULL, NULL, NULL,
                        &sd) != ERROR_SUCCESS) {
        *why = "cannot read the pipe's owner";
        return TD_EACCES;
    }
    if (!CreateWellKnownSid(WinLocalSystemSid, NULL, sys, &nsys) ||
        !CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, adm, &nadm)) {
        rc = TD_EIO;
        goto out;
    }
    if (!owner || !IsValidSid(owner) || !(EqualSid(owner, sys) || EqualSid(owner, adm))) {
        *why = "the pipe is not owned by SYSTEM or Administrators";
        rc = TD_EPROTO;
    }
out:
    LocalFree(sd);
    return rc;
}

int ctl_ipc_connect(const char *endpoint, uint64_t deadline_ms, struct ctl_ipc **out,
                    const char **why)
{
    struct ctl_ipc *c = NULL;
    HANDLE h = INVALID_HANDLE_VALUE;
    wchar_t *w = NULL;
    const char *dummy;
    int rc;

    *out = NULL;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (_strnicmp(endpoint, CTL_PIPE_PREFIX, strlen(CTL_PIPE_PREFIX)) != 0 ||
        endpoint[strlen(CTL_PIPE_PREFIX)] == '\0') {
        *why = "not a pipe name (\\\\.\\pipe\\NAME)";
        return TD_EINVAL;
    }
    w = ctl_ipc_wide(endpoint);
    if (!w) {
        *why = "the pipe name is not valid UTF-8";
        return TD_EINVAL;
    }
    for (;;) {
        uint64_t now;
        DWORD e;

        h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                        FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
                        NULL);
        if (h != INVALID_HANDLE_VALUE)
            break;
        e = GetLastError();
        if (e != ERROR_PIPE_BUSY) {
            rc = ctl_ipc_err(e);
            goto fail;
        }
        /* Every instance is taken: wait for one, within the deadline. */
        now = ctl_ipc_now_ms();
        if (now >= deadline_ms) {
            rc = TD_ETIMEDOUT;
            goto fail;
        }
        (void)WaitNamedPipeW(w, deadline_ms - now > 1000 ? 1000 : (DWORD)(deadline_ms - now));
    }
    rc = ctl_ipc_check_owner(h, why);
    if (rc != 0)
        goto fail;
    c = calloc(1, sizeof(*c));
    if (!c) {
        rc = TD_ENOMEM;
        goto fail;
    }
    c->ev = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!c->ev) {
        rc = ctl_ipc_err(GetLastError());
        goto fail;
    }
    c->h = h;
    free(w);
    *out = c;
    return 0;
fail:
    if (c)
        free(c);
    if (h != INVALID_HANDLE_VALUE)
        CloseHandle(h);
    free(w);
    return rc;
}

/* One overlapped read or write, bounded by the deadline. */
static int ctl_ipc_io(struct ctl_ipc *c, int write, char *buf, DWORD len, uint64_t deadline_ms,
                      DWORD *done)
{
    OVERLAPPED ov;
    uint64_t now;
    BOOL ok;
    DWORD e;

    *done = 0;
    memset(&ov, 0, sizeof(ov));
    ov.hEvent = c->ev;
    ResetEvent(c->ev);
    ok = write ? WriteFile(c->h, buf, len, NULL, &ov) : ReadFile(c->h, buf, len, NULL, &ov);
    if (!ok && (e = GetLastError()) != ERROR_IO_PENDING)
        return e == ERROR_MORE_DATA ? 0 : ctl_ipc_err(e);
    now = ctl_ipc_now_ms();
    if (WaitForSingleObject(c->ev, now >= deadline_ms ? 0 : (DWORD)(deadline_ms - now)) !=
        WAIT_OBJECT_0) {
        CancelIoEx(c->h, &ov);
        (void)GetOverlappedResult(c->h, &ov, done, TRUE);
        return TD_ETIMEDOUT;
    }
    if (!GetOverlappedResult(c->h, &ov, done, FALSE)) {
        e = GetLastError();
        if (e != ERROR_MORE_DATA)
            return ctl_ipc_err(e);
    }
    return 0;
}

int ctl_ipc_send(struct ctl_ipc *c, const char *buf, size_t len, uint64_t deadline_ms)
{
    while (len > 0) {
        DWORD n = len > 65536 ? 65536 : (DWORD)len, done;
        int rc = ctl_ipc_io(c, 1, (char *)buf, n, deadline_ms, &done);
        if (rc != 0)
            return rc;
        buf += done;
        len -= done;
    }
    return 0;
}

int ctl_ipc_recv(struct ctl_ipc *c, char *buf, size_t cap, uint64_t deadline_ms, size_t *got)
{
    DWORD n = cap > 65536 ? 65536 : (DWORD)cap, done;
    int rc = ctl_ipc_io(c, 0, buf, n, deadline_ms, &done);

    *got = 0;
    if (rc == TD_ECONNRESET)
        return 0; /* the daemon closed its end: the end of the stream */
    if (rc != 0)
        return rc;
    *got = done;
    return 0;
}

void ctl_ipc_close(struct ctl_ipc *c)
{
    if (!c)
        return;
    CloseHandle(c->h);
    CloseHandle(c->ev);
    free(c);
}
