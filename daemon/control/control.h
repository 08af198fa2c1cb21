/* daemon/control/: the daemon's services beside its listeners: the control
 * socket (control.c: the transport of docs/control-protocol.md, one
 * bounded, time-limited session per client, the peer check) with the
 * commands it serves (commands.c: status, users and keys, tunnels,
 * bounce, reload, stats, connections), and the Prometheus metrics
 * endpoint (metrics.c).  They reach the rest of the daemon through the
 * core only; the entry point plugs them in as struct td_service. */
#ifndef TD_CONTROL_H_
#define TD_CONTROL_H_

#include "core/daemon.h"
#include "proto/ctlmsg.h"

extern const struct td_service td_control_service;
extern const struct td_service td_metrics_service;

/* Serve one request: fill resp (already begun with the version line) with
 * status, error lines and the command's fields.  Never blocks. */
void ctl_dispatch(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *resp);

#endif
