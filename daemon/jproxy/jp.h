/* daemon/jproxy/: the jProxy v3 protocol on the daemon's loop: the client
 * side of "tunnels:" entries (jp_client.c: one multiplexed tunnel, stream
 * ids, reconnects, health checks, UDP per destination), the server side of
 * "servers:" entries (jp_server.c: login against the users, target
 * connects, UDP associations), and the tunnel socket both share (jp_link.c:
 * frames, the fair scheduler, flow control).  The wire codec is
 * common/proto/jproxy.c.  The core sees only td_proto_jproxy. */
#ifndef TD_JP_H_
#define TD_JP_H_

#include "core/tunnel.h"

extern const struct td_proto td_proto_jproxy;

#endif
