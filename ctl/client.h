/* tunnelctl's side of the control protocol (docs/control-protocol.md):
 * where the daemon is, one connection, requests and their replies, and the
 * mapping of every failure to a message and an exit code.
 *
 * The endpoint is --socket, else the config file's control.socket, else the
 * platform default.  The config file is --config, else the platform default
 * (/etc/tunneld/tunneld.yaml) when it exists. */
#ifndef TD_CTL_CLIENT_H_
#define TD_CTL_CLIENT_H_

#include "config/config.h"
#include "proto/ctlmsg.h"

#include <stdbool.h>
#include <stdint.h>

#define CTL_DEFAULT_TIMEOUT_MS 30000

extern uint64_t ctl_timeout_ms; /* --timeout, for the whole exchange */

/* The config file, loaded once (and freed by ctl_client_cleanup()).  Sets
 * *cfg to NULL when there is none (no --config, no default file).  Returns
 * 0, or an exit code after printing the errors. */
int ctl_config(const struct td_config **cfg);
/* The same, when the command cannot work without one: says so and returns
 * the exit code when there is none. */
int ctl_config_required(const struct td_config **cfg, const char *why);
/* The endpoint (see above).  Returns 0, or an exit code. */
int ctl_endpoint(const char **path);
void ctl_client_cleanup(void);

struct ctl_session;

/* Connect to the daemon.  Returns 0, or an exit code after printing why
 * (3 when it is not running, 4 when access is denied).  With quiet_absent,
 * a daemon that is not running gives CTL_EXIT_NOT_RUNNING and no message,
 * so that the caller can go offline. */
int ctl_open(struct ctl_session **out, bool quiet_absent);
/* Send req (ended with ctl_buf_end() here) and read one reply into *rep
 * (released by the caller with ctl_msg_free() whatever happens).  Returns 0
 * when the reply says status=0; otherwise prints the reply's error= lines
 * (or the transport's problem) and returns 1, or 4 for EACCES.
 * *status (may be NULL) gets the daemon's status, 0 when none came. */
int ctl_exchange(struct ctl_session *s, struct ctl_buf *req, struct ctl_msg *rep, int *status);
void ctl_close(struct ctl_session *s);

/* A request: the version line and command=NAME. */
void ctl_req(struct ctl_buf *b, const char *command);
/* ctl_open() + ctl_exchange() + ctl_close(). */
int ctl_call(struct ctl_buf *req, struct ctl_msg *rep, bool quiet_absent, int *status);

/* The exit code for a TD_E* status (0, 1 or 4). */
int ctl_exit_for_status(int status);

#endif
