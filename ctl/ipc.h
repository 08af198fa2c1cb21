/* tunnelctl's end of the control endpoint, one implementation per
 * platform (ipc_posix.c: a Unix domain socket; ipc_win.c: a named pipe).
 *
 * Both check the endpoint before a byte is sent: on POSIX the path must be
 * a socket, on Windows the pipe must be owned by SYSTEM or the
 * Administrators group (a pipe anybody could have created first would
 * otherwise be handed our requests, keys included).  Every call is bounded
 * by an absolute deadline on the clock of ctl_ipc_now_ms(). */
#ifndef TD_CTL_IPC_H_
#define TD_CTL_IPC_H_

#include <stddef.h>
#include <stdint.h>

struct ctl_ipc;

/* The platform's default endpoint and config file. */
const char *ctl_ipc_default_endpoint(void);
const char *ctl_ipc_default_config(void);

/* A monotonic clock in milliseconds. */
uint64_t ctl_ipc_now_ms(void);

/* Connect.  Returns 0, or: TD_ENOTFOUND (nothing at that path, no such
 * pipe), TD_ECONNREFUSED (nobody accepts), TD_EACCES (permission denied),
 * TD_EPROTO (the path is not a socket, or the pipe has the wrong owner;
 * *why tells which), TD_EINVAL (the path is too long), TD_ETIMEDOUT, TD_EIO
 * or TD_ENOMEM.  *why (may be NULL) gets a static explanation. */
int ctl_ipc_connect(const char *endpoint, uint64_t deadline_ms, struct ctl_ipc **out,
                    const char **why);
/* Send all of buf.  TD_ECONNRESET when the daemon closed, TD_ETIMEDOUT, TD_EIO. */
int ctl_ipc_send(struct ctl_ipc *c, const char *buf, size_t len, uint64_t deadline_ms);
/* Receive at most cap bytes: *got > 0 bytes, or *got == 0 at the end of the
 * stream.  Returns 0, TD_ETIMEDOUT, TD_ECONNRESET or TD_EIO. */
int ctl_ipc_recv(struct ctl_ipc *c, char *buf, size_t cap, uint64_t deadline_ms, size_t *got);
void ctl_ipc_close(struct ctl_ipc *c);

#endif
