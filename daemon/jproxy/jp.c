/* The jProxy kind, as the core sees it; see jp.h. */
#include "jproxy/jp.h"

#include "jproxy/jp_client.h"
#include "jproxy/jp_server.h"

const struct td_proto td_proto_jproxy = {
    .name = "jproxy",
    .protocol = CFG_PROTO_JPROXY,
    .tunnel = &jp_tunnel_ops,
    .server = &jp_server_ops,
};
