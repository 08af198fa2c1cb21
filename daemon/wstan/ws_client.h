/* wstan tunnel client: one per "tunnels:" entry with protocol: wstan.  It
 * keeps a pool of idle WebSocket tunnels and carries one connection (or one
 * UDP association) per tunnel at a time. */
#ifndef TD_WS_CLIENT_H_
#define TD_WS_CLIENT_H_

#include "config/config.h"
#include "core/daemon.h"
#include "proto/wstan.h"

#include <stdint.h>

struct ws_client;
struct conn;

int ws_client_create(struct td_daemon *d, const struct cfg_tunnel *cfg, struct ws_client **out);
/* Carry c to host:port: sets c->tops/c->tstream and later calls
 * conn_target_connected() or conn_target_failed() (see conn.h). */
void ws_client_open(struct ws_client *cl, struct conn *c, const char *host, uint16_t port);
/* Stop: close pooled tunnels, fail waiting requests; no new tunnels. */
void ws_client_shutdown(struct ws_client *cl);
/* After the loop ended. NULL is fine. */
void ws_client_free(struct ws_client *cl);
const char *ws_client_name(const struct ws_client *cl);

/* ---- UDP (SOCKS5 UDP ASSOCIATE over DGM, spec section 8) ------------------
 * One flow is one tunnel: every destination of one association shares it,
 * each datagram naming its destination; replies name their source.  The
 * tunnel opens with the first datagram (a DGM request in the handshake URI,
 * or an in-band DGM on a pooled tunnel).  closed_cb runs when the tunnel is
 * gone; the owner then calls ws_client_udp_close() (and may open a new flow
 * for later datagrams). */
struct ws_udp_flow;
typedef void (*ws_udp_recv_cb)(void *arg, const struct wstan_addr *src, const uint8_t *p,
                               size_t len);
typedef void (*ws_udp_closed_cb)(void *arg);

/* NULL when the client is stopped or out of memory. */
struct ws_udp_flow *ws_client_udp_open(struct ws_client *cl, ws_udp_recv_cb recv_cb,
                                       ws_udp_closed_cb closed_cb, void *arg);
/* Best effort, as UDP: a datagram that cannot be sent now is dropped (a
 * few are held while the tunnel opens).  Returns 0 or TD_E*. */
int ws_client_udp_send(struct ws_udp_flow *f, const struct wstan_addr *dst, const uint8_t *p,
                       size_t len);
/* Ends the flow (RST, the tunnel goes back to the pool); no callbacks after. */
void ws_client_udp_close(struct ws_udp_flow *f);

#endif
