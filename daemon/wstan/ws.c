/* The wstan kind, as the core sees it; see ws.h. */
#include "wstan/ws.h"

#include "wstan/ws_client.h"
#include "wstan/ws_lws.h"
#include "wstan/ws_server.h"

const struct td_proto td_proto_wstan = {
    .name = "wstan",
    .protocol = CFG_PROTO_WSTAN,
    .tunnel = &ws_tunnel_ops,
    .server = &ws_server_ops,
    .loop_stop = ws_lws_stop,
    .loop_done = ws_lws_free,
};
