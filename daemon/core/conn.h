/* One proxied connection: a client socket, a front-end handshake (SOCKS5,
 * HTTP or none for forwards), a route to the target, and the relay.
 *
 * Lifetime: every libuv handle a conn owns is counted in c->handles; the last
 * close callback frees the conn.  After any call that can close the conn,
 * callers check c->state == CONN_CLOSING before touching it again. */
#ifndef TD_CONN_H_
#define TD_CONN_H_

#include "core/chunk.h"
#include "core/daemon.h"
#include "core/listener.h"
#include "core/queue.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

enum conn_state {
    CONN_HANDSHAKE = 0,
    CONN_CONNECTING,
    CONN_RELAY,
    CONN_UDP,
    CONN_REPLYING, /* a final reply (an error) is being written; then close */
    CONN_CLOSING,
};

enum conn_side_idx { SIDE_CLIENT = 0, SIDE_TARGET = 1 };

/* Why a connection ended, as logged in its summary line. */
#define END_DONE              "done"
#define END_IDLE              "idle-timeout"
#define END_LINGER            "linger-timeout"
#define END_HANDSHAKE_TIMEOUT "handshake-timeout"
#define END_CONNECT_TIMEOUT   "connect-timeout"
#define END_REFUSED           "refused"
#define END_UNREACHABLE       "unreachable"
#define END_DNS               "dns-failed"
#define END_PROTOCOL          "protocol-error"
#define END_AUTH              "auth-failed"
#define END_NOT_ALLOWED       "not-allowed"
#define END_UNSUPPORTED       "unsupported"
#define END_SHUTDOWN          "shutdown"
#define END_CLIENT_RESET      "client-reset"
#define END_TARGET_RESET      "target-reset"
#define END_CLIENT_EOF        "client-closed"
#define END_ERROR             "error"
#define END_NO_RESOURCES      "no-resources"
#define END_EVICTED           "handshake-evicted"

struct conn;
struct udp_assoc;
struct td_dial;

struct td_chunk;

/* A front-end (daemon/front/): how the client's first bytes become a
 * target, what the client is told when the target is (or is not) reached,
 * and, for a front-end that must see the relayed bytes (the HTTP proxy
 * rewrites the response head and forwards exactly one request body), a
 * filter.  The core picks the front-end by listener type from the table it
 * is given (struct td_kinds). */
struct frontend {
    const char *name;
    /* New bytes are in c->hs.  Consume them with conn_hs_consume(). */
    void (*on_data)(struct conn *c);
    void (*on_connected)(struct conn *c);
    void (*on_connect_failed)(struct conn *c, int err);
    /* Bytes read from side s while relaying, for a side the front-end asked
     * to filter (c->fe_filter, bit 1 << s).  It may forward part of them:
     * set *off and *len to the bytes of ch->data the relay is to send on as
     * they are, and return 0; or return 1 when it took care of ch itself
     * (sent what is to be sent, chunk_put()); or a TD_E* code when the conn
     * is closing (ch is the filter's then too).  May be NULL. */
    int (*filter)(struct conn *c, int s, struct td_chunk *ch, size_t *off, size_t *len);
    /* The conn is being freed: release c->fe_data.  May be NULL. */
    void (*free_data)(struct conn *c);
};

/* A target reached through a tunnel stream instead of a TCP socket.  The
 * relay calls these; the tunnel answers through the conn_target_*()
 * functions below. */
struct conn_target_ops {
    /* Take a copy of len bytes for the target. */
    int (*write)(struct conn *c, const uint8_t *p, size_t len);
    /* Bytes still queued toward the target, for backpressure. */
    uint64_t (*pending)(struct conn *c);
    void (*read_pause)(struct conn *c, bool pause);
    /* The client finished sending. */
    void (*shutdown)(struct conn *c);
    /* The conn is closing: let go of it; no callbacks after this. */
    void (*close)(struct conn *c);
};

struct conn_side {
    uv_tcp_t *tcp; /* NULL until created */
    bool reading;
    bool paused; /* reading stopped by backpressure */
    bool eof;    /* read EOF seen */
    bool shut;   /* shutdown of our write side requested */
    bool shut_done;
    uint64_t pending; /* bytes (chunk capacity) queued for writing */
    uv_shutdown_t shutreq;
};

struct conn {
    struct td_queue node;
    struct td_daemon *d;
    struct td_listener *l;
    /* The listener's config entry, kept valid by the reference to the
     * config it lives in (a reload may free the listener itself). */
    const struct cfg_listener *lcfg;
    struct td_config *cfg_owner;
    uint64_t id;
    enum conn_state state;
    int handles;

    uv_tcp_t client_tcp;
    struct conn_side side[2];
    uv_timer_t timer;
    uint64_t start_ms;
    uint64_t last_active;
    bool lingering;

    uint64_t bytes_up, bytes_down;
    const char *user; /* who authenticated (a name in cfg_owner), or NULL */
    const char *end_reason;
    char client_str[64];
    char target_str[300];

    const struct frontend *fe;
    int fe_state;
    void *fe_data;             /* the front-end's own state */
    unsigned fe_filter;        /* sides (1 << s) whose relayed bytes go through fe->filter */
    bool up_done;              /* the front-end ended the upload (no more client bytes) */
    struct td_hs_slot hs_slot; /* counted while in CONN_HANDSHAKE */

    /* Handshake bytes from the client, grown on demand up to hs_max.  A
     * front-end may keep in hs_scanned how far it has already looked, so
     * that a head arriving a byte at a time is not parsed again from the
     * start on every read. */
    uint8_t *hs;
    size_t hs_len, hs_cap, hs_max, hs_scanned;

    /* Target */
    char target_host[256];
    uint16_t target_port;
    struct td_dial *dial; /* direct route: the connect in progress */

    /* After the last reply is written, close with this reason. */
    const char *close_after_write;

    struct udp_assoc *udp;

    /* Set when the route is a tunnel (NULL for direct TCP). */
    struct td_tunnel *tunnel; /* the tunnel it went through (TCP or UDP), for a bounce */
    const struct conn_target_ops *tops;
    void *tstream;
    char fail_detail[256]; /* a tunnel's reason for a failed open */
};

const char *conn_state_name(enum conn_state st);
void conn_set_state(struct conn *c, enum conn_state st);

/* The listener's accept callback (see td_accept_cb). */
int conn_accept(struct td_listener *l);
void conn_close(struct conn *c, const char *reason);

/* Queue bytes for a side, copying them.  Returns 0 or a TD_E* code (the conn
 * may be closing on return). */
int conn_write_copy(struct conn *c, int side, const void *data, size_t len);
/* Write a final reply to the client, then close with reason (at the latest
 * after limits.linger).  The conn is in CONN_REPLYING meanwhile, so later
 * events (a tunnel's answer, a timer) cannot send a second reply. */
void conn_reply_and_close(struct conn *c, const void *data, size_t len, const char *reason);

void conn_hs_consume(struct conn *c, size_t n);
void conn_hs_stop(struct conn *c);

/* Resolve and connect to host:port; then fe->on_connected or
 * fe->on_connect_failed is called. */
void conn_connect(struct conn *c, const char *host, uint16_t port);
/* Start relaying: the handshake leftovers in c->hs go to the target first. */
void conn_start_relay(struct conn *c);

void conn_touch(struct conn *c);
/* A pooled relay chunk for uv_read_start, and the close callback for every
 * handle a conn owns. */
void conn_alloc_chunk(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void conn_on_handle_closed(uv_handle_t *h);
void conn_arm_timer(struct conn *c, uint64_t ms);

/* Check a user name and password against the config, in constant time. */
bool conn_check_user(struct conn *c, const char *user, size_t ulen, const char *pass, size_t plen);

/* SOCKS5 UDP ASSOCIATE (udp_assoc.c). */
struct socks5_request;
int udp_assoc_start(struct conn *c, const struct socks5_request *req);
void udp_assoc_close(struct conn *c);

/* Events from a tunnel stream (see struct conn_target_ops). */
void conn_target_connected(struct conn *c);
void conn_target_failed(struct conn *c, int err, const char *detail);
void conn_target_data(struct conn *c, const uint8_t *p, size_t len);
void conn_target_eof(struct conn *c);
void conn_target_reset(struct conn *c, int err);
void conn_target_drained(struct conn *c);

/* Map an error to a connection end reason. */
const char *conn_end_reason(int err);

/* For front-ends that filter the relay: no more client bytes will be
 * forwarded (the one HTTP request went out); stop reading the client. */
void conn_upload_done(struct conn *c);

#endif
