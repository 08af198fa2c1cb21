/* daemon/wstan/: the wstan protocol on libwebsockets and the daemon's loop:
 * the client side of "tunnels:" entries (ws_client.c: one WebSocket per
 * connection, a pool of idle ones, the request-line rebuild that puts the
 * first request in the URI, UDP over DGM), the server side of "servers:"
 * entries (ws_server.c: our own handshake reader for ws://, native wss://,
 * keys, replay filter, target connects), the tunnel core both share
 * (ws_tunnel.c: keystreams, the message state machine, queues, pings), and
 * the one libwebsockets context (ws_lws.c).  The wire codec is
 * common/proto/wstan.c.  The core sees only td_proto_wstan. */
#ifndef TD_WS_H_
#define TD_WS_H_

#include "core/tunnel.h"

extern const struct td_proto td_proto_wstan;

#endif
