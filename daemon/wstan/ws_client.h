/* wstan tunnel client: one per "tunnels:" entry with protocol: wstan.  It
 * keeps a pool of idle WebSocket tunnels and carries one connection (or one
 * UDP association) per tunnel at a time.
 * Internal to daemon/wstan/: the core reaches it through ws.h. */
#ifndef TD_WS_CLIENT_H_
#define TD_WS_CLIENT_H_

#include "core/tunnel.h"

extern const struct td_tunnel_ops ws_tunnel_ops;

#endif
