/* One wstan tunnel: a WebSocket connection (an lws wsi) carrying wstan
 * messages, shared by ws_server.c and ws_client.c.  It owns the two
 * keystreams, the spec's section 6 state machine (wstan_transition), the
 * reassembly of incoming messages (capped), a bounded send queue, flow
 * control in both directions, and the ping/pong timers of spec 5.3.  The
 * owner (server or client) relays between it and its local side.
 *
 * The owner's lws protocol callback forwards the wsi events to
 * ws_tun_on_rx(), ws_tun_on_writable() and ws_tun_on_wsi_closed(); the tunnel
 * calls back through struct ws_tun_cbs.  A callback may call ws_tun_close();
 * after ws_tun_close() or on_closed the owner must not touch the tunnel
 * except through the pointer it gets in on_closed (freed after it returns). */
#ifndef TD_WS_TUNNEL_H_
#define TD_WS_TUNNEL_H_

#include "core/daemon.h"
#include "proto/wstan.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

/* Largest wstan message accepted from the peer (reassembled WS message).
 * Larger ones close the WS with 1009 (message too big). */
#define WS_TUN_MAX_MSG (256 * 1024)
/* Payload bytes per DAT we send. */
#define WS_TUN_DAT_CHUNK (16 * 1024)
/* Queued outgoing bytes above which ws_tun_send_dat() refuses more; the
 * owner stops reading its local side until on_drain. */
#define WS_TUN_SEND_CAP (256 * 1024)

struct ws_tun;

struct ws_tun_cbs {
    /* A decoded message that the state machine lets through, with the
     * action it chose (DELIVER, BUFFER, CONNECT, FLUSH, REPLY_RST,
     * RESET_DONE...).  m's pointers are valid during the call only. */
    void (*on_msg)(struct ws_tun *t, const struct wstan_msg *m, const struct wstan_step *step);
    /* The send queue fell below half of WS_TUN_SEND_CAP. */
    void (*on_drain)(struct ws_tun *t);
    /* The WebSocket is gone (either side closed it, a protocol error, a
     * ping timeout).  Called once; t is freed after it returns. */
    void (*on_closed)(struct ws_tun *t, const char *why);
};

struct ws_tun_params {
    enum wstan_role role;
    const struct wstan_key *key;
    const uint8_t *nc;      /* upstream nonce (client to server); NULL in TLS mode */
    const uint8_t *ns;      /* downstream nonce */
    bool tls_mode;          /* stock wss semantics: identity cipher, tags still checked */
    enum wstan_state state; /* after the first request (wstan_initial_state) */
    size_t up_skip;         /* client: bytes of the upstream stream the URI request used */
    const char *label;      /* for logs: "server NAME peer ADDR" / "tunnel NAME #N" */
    double ts_window;       /* in-band REQ timestamp window, seconds; 0: 60 s */
};

/* Attach a tunnel to an established wsi.  The server passes the stream it
 * already advanced over the URI request through up_skip = that length. */
struct ws_tun *ws_tun_new(struct td_daemon *d, struct lws *wsi, const struct ws_tun_params *p,
                          const struct ws_tun_cbs *cbs, void *ud);
void *ws_tun_ud(const struct ws_tun *t);
/* Our extension between tunneld peers (the "tunneld-wstan.1" subprotocol
 * was agreed): the server sends an empty DAT after each successful target
 * connect, so the client can report connect errors as errors. */
void ws_tun_set_peer_ack(struct ws_tun *t, bool on);
bool ws_tun_peer_ack(const struct ws_tun *t);
enum wstan_state ws_tun_state(const struct ws_tun *t);

/* ---- sending (all return 0 or TD_E*) -------------------------------------- */
/* DAT: returns the number of bytes taken (0..len); fewer than len when the
 * queue is at its cap: stop reading, wait for on_drain. */
size_t ws_tun_send_dat(struct ws_tun *t, const uint8_t *p, size_t len);
size_t ws_tun_queued(const struct ws_tun *t);
/* Local side ended: RST(reason, err) through the state machine
 * (WSTAN_EV_LOCAL_END). */
int ws_tun_local_end(struct ws_tun *t, const char *reason, const char *err);
/* Client: reuse an IDLE tunnel for a new TCP target (in-band REQ). */
int ws_tun_send_req(struct ws_tun *t, const struct wstan_addr *a, const uint8_t *data, size_t len);
/* In-band DGM (client to server, or server replies). */
int ws_tun_send_dgm(struct ws_tun *t, const struct wstan_addr *a, const uint8_t *data, size_t len);
/* Server: the target connect finished (WSTAN_EV_CONNECTED / CONNECT_FAILED,
 * the latter sending RST("can't connect to HOST:PORT", err)). */
int ws_tun_connected(struct ws_tun *t);
int ws_tun_connect_failed(struct ws_tun *t, const char *reason, const char *err);

/* Receive-side flow control: stop/resume reading the WebSocket while the
 * local side cannot take more. */
void ws_tun_rx_pause(struct ws_tun *t, bool pause);
/* Pooled (idle) or in use: selects the ping interval and pong timeout. */
void ws_tun_set_pooled(struct ws_tun *t, bool pooled);
/* Close the WebSocket with a code (1000, 3000, 3001...); on_closed follows. */
void ws_tun_close(struct ws_tun *t, int code, const char *why);
/* The same, once every queued message (an RST reply, say) is out. */
void ws_tun_close_after_queue(struct ws_tun *t, int code, const char *why);

/* ---- glue from the owner's lws callback ----------------------------------- */
/* LWS_CALLBACK_{CLIENT_,}RECEIVE: returns nonzero when lws must close.  A
 * whole message (first, final, nothing remaining) is decrypted in place in
 * in, lws's receive buffer. */
int ws_tun_on_rx(struct ws_tun *t, void *in, size_t len, bool binary, bool first, bool final,
                 size_t remaining);
/* LWS_CALLBACK_{CLIENT,SERVER}_WRITEABLE: returns nonzero to close. */
int ws_tun_on_writable(struct ws_tun *t);
/* LWS_CALLBACK_{CLIENT_,}RECEIVE_PONG. */
void ws_tun_on_pong(struct ws_tun *t, const void *in, size_t len);
/* LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: lws answers the close itself; from
 * now on nothing is written outside lws's WRITEABLE callback. */
void ws_tun_on_peer_close(struct ws_tun *t);
/* LWS_CALLBACK_CLOSED / CLIENT_CLOSED / WSI_DESTROY: the wsi is gone. */
void ws_tun_on_wsi_closed(struct ws_tun *t);

#endif
