/* daemon/platform/: what differs between operating systems, one header with
 * an implementation per platform (*_posix.c or *_win.c, picked by CMake):
 * the descriptor limit, dropping privileges, environment defaults for the
 * libraries, duplicating a socket for libwebsockets, and telling the
 * service manager how the daemon is doing.  It depends on
 * nothing of the daemon's own, so every other folder may call it.  The
 * process entry points (signals, the Windows service) are daemon/main_*.c. */
#ifndef TD_PLATFORM_H_
#define TD_PLATFORM_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Raise the soft RLIMIT_NOFILE as far as allowed and return the limit, so
 * that the daemon can budget descriptors (fdlimit_*.c). */
uint64_t fdlimit_raise(void);

/* Switch to this user (and its groups) after binding; NULL keeps the
 * identity.  Returns 0 or TD_E* (logged). (privdrop_*.c) */
int privdrop(const char *user);

/* Set an environment variable unless it is set already (osenv_*.c). */
void osenv_set_default(const char *name, const char *value);

/* A second descriptor for tcp's socket, for another library to own after
 * our handle is closed (sockdup_*.c).  Returns 0 or TD_E*. */
int td_sock_dup(uv_tcp_t *tcp, uv_os_sock_t *out);

/* The control socket (ctlsock_*.c).  Before binding path: remove a stale
 * socket file nobody listens on; TD_EADDRINUSE when a process serves it,
 * TD_EEXIST when something else is in the way.  why says more. */
int td_ctlsock_prepare(const char *path, char *why, size_t whycap);
/* After binding: only the owner and the group may use it (0660, and the
 * group set when one is named).  Returns 0 or TD_E* with why. */
int td_ctlsock_secure(const char *path, const char *group, char *why, size_t whycap);
/* May the client on this connected socket use it?  Root, our own user and
 * members of group are; who describes the peer for the log. */
bool td_ctlsock_peer_ok(uv_os_fd_t fd, const char *group, char *who, size_t whocap);

/* Tell the service manager about the daemon's state, sd_notify(3) style:
 * state is newline-separated VAR=value lines, e.g. "READY=1\nSTATUS=...",
 * "RELOADING=1" or "STOPPING=1".  POSIX: one datagram to $NOTIFY_SOCKET
 * (a path, or "@name" for an abstract socket), never blocking; nothing when
 * the variable is unset; a failure is logged once, at debug level, and is
 * otherwise ignored.  Windows: nothing (a service uses SetServiceStatus).
 * (notify_*.c) */
void td_notify(const char *state);

#endif
