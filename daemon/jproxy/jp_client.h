/* The jProxy client side: one persistent tunnel per `tunnels:` entry with
 * protocol jproxy, carrying the connections of every listener that routes
 * to it (see jp_client.c). */
#ifndef TD_JP_CLIENT_H_
#define TD_JP_CLIENT_H_

#include "config/config.h"
#include "core/daemon.h"

struct jp_client;
struct conn;

int jp_client_create(struct td_daemon *d, const struct cfg_tunnel *cfg, struct jp_client **out);
/* Route a connection through the tunnel: c->tops is set and the conn waits
 * (within its connect deadline) for the tunnel and the server's reply. */
void jp_client_open(struct jp_client *cl, struct conn *c, const char *host, uint16_t port);
/* UDP through the tunnel (tunneld extension): one flow per destination.
 * Datagrams sent before the server has answered the Associate are queued
 * (a few) and sent once it has; replies arrive through recv_cb until
 * jp_client_udp_close().  closed_cb reports a flow the tunnel or the server
 * ended; the flow is gone after it returns. */
struct jp_udp_flow;
typedef void (*jp_udp_recv_cb)(void *arg, const uint8_t *p, size_t len);
typedef void (*jp_udp_closed_cb)(void *arg);
/* 1: the peer takes UDP; 0: it does not (a Java jProxy server); -1: not
 * known yet (the tunnel is not up). */
int jp_client_udp_supported(const struct jp_client *cl);
struct jp_udp_flow *jp_client_udp_open(struct jp_client *cl, const char *host, uint16_t port,
                                       jp_udp_recv_cb recv_cb, jp_udp_closed_cb closed_cb,
                                       void *arg);
void jp_client_udp_send(struct jp_udp_flow *f, const uint8_t *p, size_t len);
void jp_client_udp_close(struct jp_udp_flow *f);

/* Stop reconnecting and close the tunnel (daemon shutdown). */
void jp_client_shutdown(struct jp_client *cl);
/* After the loop has ended. */
void jp_client_free(struct jp_client *cl);
const char *jp_client_name(const struct jp_client *cl);

#endif
