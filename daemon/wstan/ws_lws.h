/* The daemon's one libwebsockets context, on the daemon's libuv loop.
 *
 * wstan servers and tunnels each create their own vhost on it (servers: one
 * per "servers:" entry; tunnels: one client vhost per tunnel, so that each
 * has its own TLS trust and upstream proxy).  The context exists only when
 * some wstan entry is configured.
 *
 * Lifetime: ws_lws_context() creates it on first use.  ws_lws_stop() runs
 * from inside the loop once everything that uses it has been told to close:
 * WebSockets that are closing get a short grace (WS_LWS_CLOSE_GRACE_MS) to
 * send their close frame and hear the answer, then the first
 * lws_context_destroy() closes lws's libuv handles so that uv_run can
 * return; ws_lws_free() runs after uv_run returned (the second destroy,
 * which frees the rest: lws needs both, see the platform notes).
 *
 * Descriptors: every connection socket lws holds for us counts against the
 * daemon's budget (d->fds_in_use).  The wstan client and server report them
 * with ws_lws_sock_opened() / ws_lws_sock_closed(), which also tells the
 * stop above when the last one is gone. */
#ifndef TD_WS_LWS_H_
#define TD_WS_LWS_H_

#include "core/daemon.h"

#include <libwebsockets.h>

/* Per-thread service buffer.  Our client builds the whole upgrade request in
 * it (the URI carries the first request message), so it bounds the size of
 * the handshake we send; see ws_client.c. */
#define WS_LWS_SERV_BUF (16 * 1024)
/* Header storage for a handshake that lws parses itself (native wss://).
 * lws keeps URI lengths in 16 bits, so more would not help. */
#define WS_LWS_MAX_HEADER (64 * 1024 - 1)
/* How many handshakes lws parses at once; more wait for a slot. */
#define WS_LWS_HEADER_POOL 64

/* How long ws_lws_stop() waits for closing WebSockets (close frame out,
 * the peer's close answer in) before it tears lws down anyway. */
#define WS_LWS_CLOSE_GRACE_MS 2000

struct lws_context *ws_lws_context(struct td_daemon *d);
/* A vhost name no other vhost of the context has: the entry's name and a
 * serial.  lws picks a vhost by name (an adopted upgrade's Host), and a
 * bounced or replaced entry's old vhost lives on beside the new one while
 * its connections drain. */
void ws_lws_vhost_name(struct td_daemon *d, const char *name, char *out, size_t cap);
void ws_lws_stop(struct td_daemon *d);
void ws_lws_free(struct td_daemon *d);

/* A socket lws holds (or is about to open) for us: one more descriptor in
 * use, until ws_lws_sock_closed(), which gives it back (and lets paused
 * listeners resume).  Only with a context. */
void ws_lws_sock_opened(struct td_daemon *d);
void ws_lws_sock_closed(struct td_daemon *d);

/* A vhost creation info with the fields every vhost of ours shares
 * (options, no listening port).  The caller fills in the rest. */
void ws_lws_vhost_info(struct lws_context_creation_info *info);

#endif
