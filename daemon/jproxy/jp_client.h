/* The jProxy client side: one persistent tunnel per `tunnels:` entry with
 * protocol jproxy, carrying the connections of every listener that routes
 * to it (see jp_client.c).  Internal to daemon/jproxy/: the core reaches it
 * through jp.h. */
#ifndef TD_JP_CLIENT_H_
#define TD_JP_CLIENT_H_

#include "core/tunnel.h"

extern const struct td_tunnel_ops jp_tunnel_ops;

#endif
