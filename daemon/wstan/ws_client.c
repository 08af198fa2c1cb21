/* wstan client: the "tunnels:" side of wstan (docs/protocols/wstan.md).
 *
 * One WebSocket (a struct wsc_tun around an lws client wsi and, once open,
 * a struct ws_tun) carries one connection or one UDP association at a time.
 * A new tunnel carries its first request in the handshake URI, encrypted
 * with the upstream stream keyed by the nonce Nc.  In the default nonce mode
 * Nc is the Sec-WebSocket-Key, which libwebsockets draws itself and offers
 * no API for; so the request line is rebuilt in
 * LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER, after the key exists and
 * before anything is sent (the "rebuild" technique of the platform notes).
 * That depends on how lws 4.1 lays out its request buffer: every assumption
 * is checked and the open fails closed when one does not hold, and
 * tests/integration/test_wstan.py decodes what we really send.
 *
 * After a connection ends the tunnel is reset (RST both ways) and parked in a
 * FIFO pool; a new request takes the oldest pooled tunnel (in-band REQ).
 * Against a tunneld server (subprotocol "tunneld-wstan.1" selected) a target
 * counts as connected only when the server's empty DAT arrives, and an RST
 * before it is a connect failure with the server's reason; against a stock
 * server the target counts as connected once the WebSocket is open.
 *
 * UDP: one tunnel per SOCKS5 association, whatever the destinations (each
 * DGM names its own).  The URL host, when it is a name, is resolved in
 * libuv's thread pool (lws would block the loop on getaddrinfo()). */
#include "wstan/ws_client.h"

#include "core/conn.h"
#include "crypto/crypto.h"
#include "util/error.h"
#include "util/log.h"
#include "wstan/ws_lws.h"
#include "wstan/ws_tunnel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Our extension: a tunneld server that selects it acknowledges connects. */
#define WSC_PROTO "tunneld-wstan.1"
/* Datagram bytes that may ride in a URI DGM request; larger first datagrams
 * go in-band after an "empty" request, so a request always fits
 * WS_LWS_SERV_BUF (b64 of 8 KiB + 279 bytes is 11 KiB). */
#define WSC_URI_DGM_MAX (8 * 1024)
/* Datagrams held while a UDP tunnel opens. */
#define WSC_UDP_HOLD 8
/* Addresses kept for the URL host, and for how long. */
#define WSC_DNS_MAX    8
#define WSC_DNS_TTL_MS (60 * 1000)
/* Tunnels that come back to a full pool: up to WSC_POOL_SURPLUS_MAX x size
 * of them wait WSC_POOL_SURPLUS_MS for a request before they close, checked
 * every WSC_POOL_SURPLUS_TICK_MS.  Closing them at once made a burst of
 * more concurrent requests than pool.size open and close a WebSocket for
 * about one request in four. */
#define WSC_POOL_SURPLUS_MS      1000
#define WSC_POOL_SURPLUS_TICK_MS 250
#define WSC_POOL_SURPLUS_MAX     4
/* What lws keeps below the room it reports to APPEND_HANDSHAKE_HEADER. */
#define WSC_LWS_APPEND_RESERVE 12

/* The opaque user data of a wsi whose wsc_tun went away before lws let go
 * of the wsi: its socket still counts until WSI_DESTROY. */
static char wsc_orphan;

enum wsc_tun_state {
    WT_OPENING = 0, /* connecting / handshaking */
    WT_OPEN,        /* ws_tun attached */
    WT_CLOSED,      /* the wsi is gone or going */
};

enum wsr_state {
    WSR_OPENING = 0, /* its tunnel handshakes, the request in the URI */
    WSR_CONNECTING,  /* request sent; waiting for a tunneld peer's ack */
    WSR_OPEN,
    WSR_DONE, /* the tunnel's part is over; the conn finishes on its own */
};

struct wsc_tun;

struct wsc_stream {
    struct ws_client *cl;
    struct conn *c;
    struct wsc_tun *wt; /* NULL when detached */
    enum wsr_state st;
    struct wstan_addr addr;
    bool retried;
    bool activity;    /* a DAT went either way: no transparent retry after it */
    bool eof_pending; /* the client finished: RST once ovf is out */
    uint8_t *ovf;     /* what the tunnel's send queue did not take */
    size_t ovf_len;
};

struct wsc_dgm {
    struct wstan_addr a;
    size_t len;
    uint8_t data[];
};

struct td_udp_flow {
    struct ws_client *cl;
    struct wsc_tun *wt;
    const struct td_udp_cbs *cbs;
    void *arg;
    bool open;  /* datagrams may be sent in-band */
    bool ended; /* closed_cb ran */
    struct wsc_dgm *hold[WSC_UDP_HOLD];
    int nhold;
};

struct wsc_tun {
    struct ws_client *cl;
    struct td_queue node;      /* cl->tuns */
    struct td_queue pool_node; /* cl->pool while pooled */
    uint64_t id;
    struct lws *wsi;
    struct ws_tun *t;
    enum wsc_tun_state st;
    bool pooled;
    uint64_t pooled_at;
    bool peer_acks;                 /* the server selected WSC_PROTO */
    bool in_connect;                /* inside lws_client_connect_via_info() */
    bool destroyed;                 /* WSI_DESTROY seen */
    bool fatal;                     /* a local failure (the handshake hack): do not retry */
    bool failed;                    /* the open failure was handled */
    bool early_fail;                /* the wsi failed inside lws_client_connect_via_info() */
    bool resolving;                 /* waiting in cl->resolve_wait (on pool_node) */
    bool fd_counted;                /* its socket counts in the budget (ws_lws_sock_*) */
    char key[WSTAN_WS_KEY_LEN + 1]; /* the Sec-WebSocket-Key sent */
    uint8_t nc[WSTAN_NONCE_LEN], ns[WSTAN_NONCE_LEN];
    size_t up_skip;
    enum wstan_cmd first_cmd;
    struct wstan_addr first_addr;
    struct wsc_dgm *first_dgm; /* UDP: the datagram in the URI request */
    struct wsc_stream *s;      /* the user: at most one of s and u */
    struct td_udp_flow *u;
    char why[160];
};

struct ws_client {
    struct td_daemon *d;
    const struct cfg_tunnel *cfg;
    struct wstan_key key;
    char cookie_name[WSTAN_COOKIE_NAME_LEN + 1];
    struct lws_vhost *vh;
    char vh_name[CFG_NAME_MAX + 24]; /* ws_lws_vhost_name() */
    struct lws_protocols protocols[2];
    char host_hdr[TD_HOST_MAX + 16];
    char ca_path[512];
    int ssl_flags;
    struct td_queue tuns;
    struct td_queue pool;
    uint32_t n_pool;
    uint64_t next_id;
    uv_timer_t pool_timer;
    uint64_t pool_tick; /* the pool timer's period */
    /* The URL host's addresses (see wsc_needs_resolve). */
    uv_getaddrinfo_t gai;
    bool resolving;
    struct td_queue resolve_wait;
    char addrs[WSC_DNS_MAX][INET6_ADDRSTRLEN];
    int n_addrs, addr_next;
    uint64_t resolved_at;
    bool stopped;
#ifdef TUNNELD_TEST_HOOKS
    bool test_break_hack; /* test hook: pretend lws laid out its buffer differently */
#endif
    uint64_t opened, reused, streams_total;
    bool budget_logged; /* "no descriptor for a WebSocket", once per episode */
};

static void wsc_tun_idle(struct wsc_tun *wt);
static bool wsc_needs_resolve(const struct ws_client *cl);
static void wsc_stream_start(struct wsc_stream *s, bool allow_pool);
static void wsc_udp_ended(struct td_udp_flow *u);
static int wsc_udp_flush(struct td_udp_flow *u);
static void wsc_udp_deliver(struct td_udp_flow *u, const struct wstan_addr *src, const uint8_t *p,
                            size_t len);

static bool wsc_pool_enabled(const struct ws_client *cl)
{
    return cl->cfg->pool_size > 0 && cl->cfg->pool_max_idle_ms > 0;
}

static double wsc_now(void)
{
    uv_timeval64_t tv;
    if (uv_gettimeofday(&tv) != 0)
        return 0;
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* ---- the RST reason of a failed connect -> a TD_E* code ------------------- */

static bool wsc_has(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(s + i, needle, n) == 0)
            return true;
    return false;
}

/* The server's RST text is free-form ("can't connect to HOST:PORT" + the OS
 * error): classify it so SOCKS5 and HTTP clients get the usual replies. */
static int wsc_err_from_rst(const char *reason, size_t rlen, const char *err, size_t elen)
{
    const char *p[2] = {err, reason};
    size_t l[2] = {elen, rlen};
    for (int i = 0; i < 2; i++) {
        if (!p[i] || !l[i])
            continue;
        if (wsc_has(p[i], l[i], "refused"))
            return TD_ECONNREFUSED;
        if (wsc_has(p[i], l[i], "timed out") || wsc_has(p[i], l[i], "timeout"))
            return TD_ETIMEDOUT;
        if (wsc_has(p[i], l[i], "network unreachable") ||
            wsc_has(p[i], l[i], "network is unreachable"))
            return TD_ENETUNREACH;
        if (wsc_has(p[i], l[i], "unreachable") || wsc_has(p[i], l[i], "no route"))
            return TD_EHOSTUNREACH;
        if (wsc_has(p[i], l[i], "name resolution") || wsc_has(p[i], l[i], "not known") ||
            wsc_has(p[i], l[i], "resolve") || wsc_has(p[i], l[i], "dns"))
            return TD_EDNS;
        if (wsc_has(p[i], l[i], "not allowed") || wsc_has(p[i], l[i], "denied"))
            return TD_EACCES;
    }
    return TD_ECONNRESET;
}

/* ---- streams (struct conn_target_ops) ------------------------------------- */

static void wsc_detach(struct wsc_tun *wt, struct wsc_stream *s);

static void wsc_stream_free(struct wsc_stream *s)
{
    if (s->wt)
        wsc_detach(s->wt, s);
    free(s->ovf);
    free(s);
}

/* The stream leaves its tunnel; the tunnel must not stay paused for it
 * (a pooled tunnel has to hear its pings and the RST answer). */
static void wsc_detach(struct wsc_tun *wt, struct wsc_stream *s)
{
    if (wt->s == s)
        wt->s = NULL;
    s->wt = NULL;
    if (wt->t)
        ws_tun_rx_pause(wt->t, false);
}

/* Let go of the conn before telling it something that may close it. */
static struct conn *wsc_stream_release(struct wsc_stream *s)
{
    struct conn *c = s->c;
    c->tops = NULL;
    c->tstream = NULL;
    wsc_stream_free(s);
    return c;
}

/* The stream's tunnel is over for it: fail or end its conn. */
static void wsc_stream_lost(struct wsc_stream *s, int err, const char *why)
{
    enum wsr_state st = s->st;
    struct conn *c = wsc_stream_release(s);
    if (c->state == CONN_CONNECTING)
        conn_target_failed(c, err, why);
    else if (st != WSR_DONE)
        conn_target_reset(c, err);
}

/* The local side is done with the tunnel: reset it (RST after what is
 * queued), or close it when pooling is off (the stock client's rule) and
 * nothing is left to send: a close would drop queued data, so then the RST
 * goes out and the close follows once the tunnel is idle. */
static void wsc_tun_local_end(struct wsc_tun *wt, const char *reason)
{
    struct ws_client *cl = wt->cl;
    if (!wt->t)
        return;
    if (cl->stopped || (!wsc_pool_enabled(cl) && ws_tun_queued(wt->t) == 0)) {
        ws_tun_close(wt->t, WSTAN_CLOSE_NORMAL, cl->stopped ? "shutting down" : "pooling is off");
        return;
    }
    if (ws_tun_state(wt->t) != WSTAN_USING)
        return;
    if (ws_tun_local_end(wt->t, reason, "") != 0 && wt->t)
        ws_tun_close(wt->t, WSTAN_CLOSE_NORMAL, "cannot reset");
}

static int wsc_op_write(struct conn *c, const uint8_t *p, size_t len)
{
    struct wsc_stream *s = c->tstream;
    size_t n;
    uint8_t *grown;

    if (len == 0 || s->eof_pending)
        return 0;
    if (s->st == WSR_DONE || !s->wt)
        return 0; /* the far end is gone; what the client still sends is moot */
    s->activity = true;
    if (s->ovf_len == 0 && s->st == WSR_OPEN && s->wt->t) {
        n = ws_tun_send_dat(s->wt->t, p, len);
        p += n;
        len -= n;
    }
    if (len == 0)
        return 0;
    /* The relay stops reading its client once pending() passes its mark, so
     * this holds at most about one read's worth. */
    grown = realloc(s->ovf, s->ovf_len + len);
    if (!grown)
        return TD_ENOMEM;
    s->ovf = grown;
    memcpy(s->ovf + s->ovf_len, p, len);
    s->ovf_len += len;
    return 0;
}

/* The tunnel's send queue has its own cap (WS_TUN_SEND_CAP), and it says
 * when it is full by taking less than it is offered; only then must the
 * relay stop reading its client, until on_drain.  So nothing is pending for
 * the relay's backpressure until something was refused. */
static uint64_t wsc_op_pending(struct conn *c)
{
    struct wsc_stream *s = c->tstream;
    if (s->ovf_len == 0)
        return 0;
    return s->ovf_len + (s->wt && s->wt->t ? ws_tun_queued(s->wt->t) : 0);
}

static void wsc_op_read_pause(struct conn *c, bool pause)
{
    struct wsc_stream *s = c->tstream;
    if (s->wt && s->wt->t && s->st == WSR_OPEN)
        ws_tun_rx_pause(s->wt->t, pause);
}

/* wstan has no half-close: the client's EOF resets the tunnel once the
 * queued data is out, and nothing more can come from the target. */
static void wsc_stream_finish(struct wsc_stream *s)
{
    struct wsc_tun *wt = s->wt;
    struct conn *c = s->c;
    s->eof_pending = false;
    s->st = WSR_DONE;
    if (wt) {
        wsc_detach(wt, s);
        wsc_tun_local_end(wt, "");
    }
    conn_target_eof(c);
}

static void wsc_op_shutdown(struct conn *c)
{
    struct wsc_stream *s = c->tstream;
    if (s->st != WSR_OPEN || !s->wt)
        return;
    if (s->ovf_len > 0) {
        s->eof_pending = true;
        return;
    }
    wsc_stream_finish(s);
}

static void wsc_op_close(struct conn *c)
{
    struct wsc_stream *s = c->tstream;
    struct wsc_tun *wt = s->wt;

    c->tstream = NULL;
    if (wt) {
        wsc_detach(wt, s);
        /* A tunnel still handshaking is reset once it opens (or closed):
         * wsc_on_established finds it without a user. */
        if (wt->st == WT_OPEN)
            wsc_tun_local_end(wt, c->end_reason && strcmp(c->end_reason, END_CLIENT_RESET) == 0
                                      ? "connection to user-agent broken"
                                      : "");
    }
    wsc_stream_free(s);
}

static const struct conn_target_ops wsc_ops = {
    wsc_op_write, wsc_op_pending, wsc_op_read_pause, wsc_op_shutdown, wsc_op_close,
};

/* The target is reached (or, for a stock server, the tunnel is up). */
static void wsc_stream_open(struct wsc_stream *s)
{
    s->st = WSR_OPEN;
    /* A retried stream may hold what its client sent meanwhile. */
    if (s->ovf_len > 0 && s->wt && s->wt->t) {
        size_t n = ws_tun_send_dat(s->wt->t, s->ovf, s->ovf_len);
        memmove(s->ovf, s->ovf + n, s->ovf_len - n);
        s->ovf_len -= n;
    }
    if (s->c->state == CONN_CONNECTING)
        conn_target_connected(s->c);
}

static void wsc_on_drain(struct ws_tun *t)
{
    struct wsc_tun *wt = ws_tun_ud(t);
    struct wsc_stream *s = wt->s;
    struct conn *c;

    if (!s)
        return;
    c = s->c;
    if (s->ovf_len > 0 && s->st == WSR_OPEN) {
        size_t n = ws_tun_send_dat(t, s->ovf, s->ovf_len);
        memmove(s->ovf, s->ovf + n, s->ovf_len - n);
        s->ovf_len -= n;
        if (s->ovf_len > 0)
            return;
        if (s->eof_pending) {
            wsc_stream_finish(s);
            return;
        }
    }
    if (wsc_op_pending(c) <= c->d->cfg->limits.buffer / 2)
        conn_target_drained(c);
}

/* ---- tunnel messages --------------------------------------------------------- */

static void wsc_on_rst(struct wsc_tun *wt, const struct wstan_msg *m)
{
    struct wsc_stream *s = wt->s;
    char text[300];
    size_t rl = m->reason_len, el = m->err_len;

    if (wt->u) {
        struct td_udp_flow *u = wt->u;
        wt->u = NULL;
        u->wt = NULL;
        wsc_udp_ended(u);
        return;
    }
    if (!s)
        return;
    wsc_detach(wt, s);
    if (rl > 200)
        rl = 200;
    if (el > 90)
        el = 90;
    if (el)
        snprintf(text, sizeof(text), "%.*s (%.*s)", (int)rl, m->reason, (int)el, m->err);
    else
        snprintf(text, sizeof(text), "%.*s", (int)rl, m->reason ? m->reason : "");
    if (s->c->state == CONN_CONNECTING) {
        struct conn *c = wsc_stream_release(s);
        conn_target_failed(c, wsc_err_from_rst(m->reason, m->reason_len, m->err, m->err_len),
                           text[0] ? text : "the server reset the tunnel");
        return;
    }
    s->st = WSR_DONE;
    if (m->reason_len == 0) {
        conn_target_eof(s->c); /* the target finished */
        return;
    }
    LOG_DEBUG("ws", "tunnel %s #%llu: reset by the server: %s", wt->cl->cfg->name,
              (unsigned long long)wt->id, text);
    conn_target_reset(s->c, TD_ECONNRESET);
}

static void wsc_on_msg(struct ws_tun *t, const struct wstan_msg *m, const struct wstan_step *step)
{
    struct wsc_tun *wt = ws_tun_ud(t);
    struct wsc_stream *s = wt->s;

    switch (step->action) {
    case WSTAN_ACT_DELIVER:
        if (m->cmd == WSTAN_DGM) {
            if (wt->u && m->has_addr)
                wsc_udp_deliver(wt->u, &m->addr, m->data, m->datalen);
            break;
        }
        if (m->cmd != WSTAN_DAT || !s)
            break;
        if (s->st == WSR_CONNECTING) {
            /* The tunneld peer's ack (an empty DAT); a stock peer never
             * gets here: its streams start OPEN. */
            wsc_stream_open(s);
            if (wt->s != s)
                break; /* the conn closed */
        }
        if (s->st == WSR_OPEN && m->datalen > 0) {
            s->activity = true;
            conn_target_data(s->c, m->data, m->datalen);
        }
        break;
    case WSTAN_ACT_REPLY_RST:
    case WSTAN_ACT_SEND_RST:
        wsc_on_rst(wt, m);
        break;
    default:
        break;
    }
    /* The RST exchange is complete: the tunnel is free for the pool. */
    if (wt->t && ws_tun_state(wt->t) == WSTAN_IDLE && !wt->s && !wt->u && !wt->pooled)
        wsc_tun_idle(wt);
}

/* ---- the pool ---------------------------------------------------------------- */

static void wsc_pool_remove(struct wsc_tun *wt)
{
    if (!wt->pooled)
        return;
    td_queue_remove(&wt->pool_node);
    wt->pooled = false;
    wt->cl->n_pool--;
}

/* Stock rule (spec 7): a tunnel may idle for max_idle when the pool is
 * nearly empty, down to max_idle/3 when it is full. */
static uint64_t wsc_pool_limit(const struct ws_client *cl)
{
    uint64_t max = cl->cfg->pool_max_idle_ms, min = max / 3;
    return max - (uint64_t)((double)cl->n_pool / (double)cl->cfg->pool_size * (double)(max - min));
}

static void on_pool_timer(uv_timer_t *h);

/* The pool timer at the pace the pool needs: quick while it holds more than
 * pool.size (the surplus expires after WSC_POOL_SURPLUS_MS), else a sixth
 * of max_idle; stopped when empty. */
static void wsc_pool_timer_pace(struct ws_client *cl)
{
    uint64_t tick;

    if (td_queue_empty(&cl->pool)) {
        uv_timer_stop(&cl->pool_timer);
        cl->pool_tick = 0;
        return;
    }
    if (cl->n_pool > cl->cfg->pool_size) {
        tick = WSC_POOL_SURPLUS_TICK_MS;
    } else {
        tick = cl->cfg->pool_max_idle_ms / 6;
        if (tick < 100)
            tick = 100;
        if (tick > 10000)
            tick = 10000;
    }
    if (tick != cl->pool_tick || !uv_is_active((uv_handle_t *)&cl->pool_timer)) {
        cl->pool_tick = tick;
        uv_timer_start(&cl->pool_timer, on_pool_timer, tick, tick);
    }
}

static void on_pool_timer(uv_timer_t *h)
{
    struct ws_client *cl = h->data;
    uint64_t now = uv_now(cl->d->loop), limit;

    while (!td_queue_empty(&cl->pool)) {
        struct wsc_tun *wt = td_container_of(cl->pool.next, struct wsc_tun, pool_node);
        /* Beyond pool.size, the oldest go after a short wait; the stock
         * rule applies to the pool.size that stay. */
        limit = cl->n_pool > cl->cfg->pool_size ? WSC_POOL_SURPLUS_MS : wsc_pool_limit(cl);
        if (now - wt->pooled_at < limit)
            break;
        wsc_pool_remove(wt);
        LOG_DEBUG("ws", "tunnel %s #%llu: idle for %llu ms, closing", cl->cfg->name,
                  (unsigned long long)wt->id, (unsigned long long)(now - wt->pooled_at));
        if (wt->t)
            ws_tun_close(wt->t, WSTAN_CLOSE_NORMAL, "idle");
    }
    wsc_pool_timer_pace(cl);
}

static void wsc_tun_idle(struct wsc_tun *wt)
{
    struct ws_client *cl = wt->cl;

    if (!wt->t)
        return;
    if (cl->stopped || !wsc_pool_enabled(cl) ||
        cl->n_pool >= (uint64_t)cl->cfg->pool_size * WSC_POOL_SURPLUS_MAX) {
        ws_tun_close(wt->t, WSTAN_CLOSE_NORMAL, cl->stopped ? "shutting down" : "pool full");
        return;
    }
    wt->pooled = true;
    wt->pooled_at = uv_now(cl->d->loop);
    td_queue_insert_tail(&cl->pool, &wt->pool_node);
    cl->n_pool++;
    ws_tun_set_pooled(wt->t, true);
    LOG_DEBUG("ws", "tunnel %s #%llu: idle, pooled (%u in the pool)", cl->cfg->name,
              (unsigned long long)wt->id, cl->n_pool);
    wsc_pool_timer_pace(cl);
}

/* The oldest pooled tunnel that is still alive, taken out of the pool. */
static struct wsc_tun *wsc_pool_take(struct ws_client *cl)
{
    while (!td_queue_empty(&cl->pool)) {
        struct wsc_tun *wt = td_container_of(cl->pool.next, struct wsc_tun, pool_node);
        wsc_pool_remove(wt);
        if (wt->t && ws_tun_state(wt->t) == WSTAN_IDLE) {
            ws_tun_set_pooled(wt->t, false);
            return wt;
        }
    }
    return NULL;
}

/* ---- one WebSocket connection ------------------------------------------------- */

/* The tunnel's socket is closed (or was never opened): its descriptor goes
 * back to the budget. */
static void wsc_fd_release(struct wsc_tun *wt)
{
    if (!wt->fd_counted)
        return;
    wt->fd_counted = false;
    ws_lws_sock_closed(wt->cl->d);
}

static void wsc_tun_free(struct wsc_tun *wt)
{
    if (wt->resolving)
        td_queue_remove(&wt->pool_node);
    wt->resolving = false;
    wsc_pool_remove(wt);
    td_queue_remove(&wt->node);
    wsc_fd_release(wt);
    free(wt->first_dgm);
    td_wipe(wt, sizeof(*wt)); /* nonces and the WebSocket key */
    free(wt);
}

/* The tunnel never opened (or its handshake failed). */
static void wsc_tun_failed(struct wsc_tun *wt, const char *why)
{
    struct ws_client *cl = wt->cl;
    struct wsc_stream *s = wt->s;
    struct td_udp_flow *u = wt->u;

    if (wt->failed)
        return;
    wt->failed = true;
    wt->st = WT_CLOSED;
    if (wsc_needs_resolve(cl) && cl->n_addrs > 0)
        cl->addr_next++; /* the next attempt tries the next address */
    if (!cl->stopped)
        LOG_WARN("ws", "tunnel %s: ws connection to %s:%u failed: %s", cl->cfg->name,
                 cl->cfg->server.host, cl->cfg->server.port, wt->why[0] ? wt->why : why);
    wt->s = NULL;
    wt->u = NULL;
    if (s) {
        s->wt = NULL;
        if (!s->retried && !wt->fatal && !cl->stopped && s->c->state == CONN_CONNECTING) {
            s->retried = true;
            wsc_stream_start(s, false);
        } else {
            char msg[200];
            snprintf(msg, sizeof(msg), "tunnel %s: %s", cl->cfg->name, wt->why[0] ? wt->why : why);
            wsc_stream_lost(s, TD_EIO, msg);
        }
    }
    if (u) {
        u->wt = NULL;
        wsc_udp_ended(u);
    }
}

static void wsc_on_closed(struct ws_tun *t, const char *why)
{
    struct wsc_tun *wt = ws_tun_ud(t);
    struct ws_client *cl = wt->cl;
    struct wsc_stream *s = wt->s;
    struct td_udp_flow *u = wt->u;

    wt->t = NULL;
    wt->st = WT_CLOSED;
    wsc_pool_remove(wt);
    LOG_INFO("ws", "tunnel %s: ws connection #%llu to %s:%u closed: %s", cl->cfg->name,
             (unsigned long long)wt->id, cl->cfg->server.host, cl->cfg->server.port,
             why ? why : "");
    wt->s = NULL;
    wt->u = NULL;
    if (s) {
        s->wt = NULL;
        /* Nothing went either way yet (say a pooled tunnel that turned out
         * dead): try once more on a fresh tunnel. */
        if ((s->st == WSR_CONNECTING || s->st == WSR_OPEN) && !s->activity && !s->retried &&
            !cl->stopped) {
            s->retried = true;
            wsc_stream_start(s, false);
        } else if (s->st != WSR_DONE) {
            char msg[200];
            snprintf(msg, sizeof(msg), "tunnel %s closed: %s", cl->cfg->name, why ? why : "");
            wsc_stream_lost(s, TD_ECONNRESET, msg);
        }
    }
    if (u) {
        u->wt = NULL;
        wsc_udp_ended(u);
    }
}

static const struct ws_tun_cbs wsc_tun_cbs = {wsc_on_msg, wsc_on_drain, wsc_on_closed};

static void wsc_fail_hack(struct wsc_tun *wt, const char *what)
{
    wt->fatal = true;
    snprintf(wt->why, sizeof(wt->why), "cannot put the first request into the handshake: %s", what);
    LOG_ERROR("ws",
              "tunnel %s: the libwebsockets request buffer is not laid out as expected (%s); "
              "failing closed (was libwebsockets upgraded?)",
              wt->cl->cfg->name, what);
}

static const char *wsc_memfind(const char *h, size_t hl, const char *n, size_t nl)
{
    for (size_t i = 0; i + nl <= hl; i++)
        if (memcmp(h + i, n, nl) == 0)
            return h + i;
    return NULL;
}

/* Encode the first request with the upstream stream at offset 0. */
static int wsc_first_request(struct wsc_tun *wt, uint8_t *out, size_t cap, size_t *outlen)
{
    struct ws_client *cl = wt->cl;
    struct wstan_stream st;
    double now = wsc_now();
    int r;

    memset(&st, 0, sizeof(st));
    r = wstan_stream_init(&st, &cl->key, cl->cfg->tls ? NULL : wt->nc, cl->cfg->tls);
    if (r != 0)
        return r;
    if (wt->first_cmd == WSTAN_REQ)
        r = wstan_encode_req(&st, now, &wt->first_addr, NULL, 0, out, cap, outlen);
    else if (wt->first_cmd == WSTAN_DGM)
        r = wstan_encode_dgm_req(&st, now, &wt->first_dgm->a, wt->first_dgm->data,
                                 wt->first_dgm->len, out, cap, outlen);
    else
        r = wstan_encode_empty_req(&st, now, out, cap, outlen);
    wstan_stream_free(&st);
    if (r == 0)
        wt->up_skip = *outlen - WSTAN_TAG_LEN;
    return r;
}

/* LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: in = char **p (the write
 * position in the per-thread service buffer), len = room left minus 12.  lws
 * 4.1 has written "GET / HTTP/1.1\r\n" at the start of that buffer, then its
 * headers including Sec-WebSocket-Key; the request goes out after this
 * callback in one write.  We move the headers up and write the real path
 * (prefix + b64url(first request)) after "GET ". */
static int wsc_append(struct wsc_tun *wt, void *in, size_t room)
{
    struct ws_client *cl = wt->cl;
    static const char rline[] = "GET / HTTP/1.1\r\n";
    static const char khdr[] = "\r\nSec-WebSocket-Key: ";
#ifdef TUNNELD_TEST_HOOKS
    const char *expect = cl->test_break_hack ? "GET /x HTTP/1.1\r\n" : rline;
#else
    const char *expect = rline;
#endif
    char **pp = in, *p = *pp, *start;
    const char *k;
    size_t used, msgcap, msglen, pathcap, pathlen, klen = sizeof(khdr) - 1;
    uint8_t *msg = NULL;
    char *path = NULL, cookie[64 + WSTAN_WS_KEY_LEN];
    size_t cookie_len = 0;
    int r = 1;

    if (!p || room + WSC_LWS_APPEND_RESERVE > WS_LWS_SERV_BUF) {
        wsc_fail_hack(wt, "unexpected buffer room");
        return 1;
    }
    start = p + room + WSC_LWS_APPEND_RESERVE - WS_LWS_SERV_BUF;
    used = (size_t)(p - start);
    if (used < sizeof(rline) - 1 + klen + WSTAN_WS_KEY_LEN + 2 ||
        memcmp(start, expect, strlen(expect)) != 0) {
        wsc_fail_hack(wt, "no \"GET / HTTP/1.1\" at the start");
        return 1;
    }
    if (p[-2] != '\r' || p[-1] != '\n' || wsc_memfind(start, used, "\r\n\r\n", 4)) {
        wsc_fail_hack(wt, "the header block is not open");
        return 1;
    }
    k = wsc_memfind(start, used, khdr, klen);
    if (!k || wsc_memfind(k + klen, used - (size_t)(k + klen - start), khdr, klen) ||
        (size_t)(p - (k + klen)) < WSTAN_WS_KEY_LEN + 2 ||
        memcmp(k + klen + WSTAN_WS_KEY_LEN, "\r\n", 2) != 0) {
        wsc_fail_hack(wt, "no single Sec-WebSocket-Key header");
        return 1;
    }
    /* Copy the key before anything moves. */
    memcpy(wt->key, k + klen, WSTAN_WS_KEY_LEN);
    wt->key[WSTAN_WS_KEY_LEN] = '\0';
    if (cl->cfg->nonce_mode == CFG_NONCE_DEFAULT &&
        wstan_ws_key_decode(wt->key, WSTAN_WS_KEY_LEN, wt->nc) != 0) {
        wsc_fail_hack(wt, "the Sec-WebSocket-Key is not a 16-byte base64 nonce");
        return 1;
    }
    if (cl->cfg->nonce_mode == CFG_NONCE_COMPATIBLE) {
        char v[WSTAN_COOKIE_NAME_LEN + 2 + WSTAN_WS_KEY_LEN + 8];
        if (wstan_cookie_value(cl->cookie_name, wt->nc, v, sizeof(v)) != 0)
            goto out;
        cookie_len = (size_t)snprintf(cookie, sizeof(cookie), "Cookie: %s\r\n", v);
    }
    msgcap = WSTAN_DGM_SIZE(WSC_URI_DGM_MAX) + WSTAN_TS_LEN + WSTAN_TAG_LEN + 16;
    pathcap = strlen(cl->cfg->path) + 2 + (msgcap + 2) / 3 * 4 + 4;
    msg = malloc(msgcap);
    path = malloc(pathcap);
    if (!msg || !path) {
        snprintf(wt->why, sizeof(wt->why), "out of memory");
        goto out;
    }
    if (wsc_first_request(wt, msg, msgcap, &msglen) != 0 ||
        wstan_uri_build(cl->cfg->path, strlen(cl->cfg->path), msg, msglen, path, pathcap,
                        &pathlen) != 0 ||
        pathlen < 1 || path[0] != '/') {
        snprintf(wt->why, sizeof(wt->why), "cannot encode the first request");
        wt->fatal = true;
        goto out;
    }
    if (pathlen - 1 + cookie_len + 16 > room) {
        snprintf(wt->why, sizeof(wt->why),
                 "the first request (%zu bytes of path) does not fit the handshake buffer",
                 pathlen);
        wt->fatal = true;
        LOG_ERROR("ws", "tunnel %s: %s", cl->cfg->name, wt->why);
        goto out;
    }
    /* "GET " stays; the '/' at start+4 becomes the path's first byte. */
    memmove(start + 4 + pathlen, start + 5, used - 5);
    memcpy(start + 4, path, pathlen);
    p += pathlen - 1;
    if (cookie_len) {
        memcpy(p, cookie, cookie_len);
        p += cookie_len;
    }
    *pp = p;
    r = 0;
out:
    /* The request and the cookie's nonce went into lws's buffer; no other
     * copy stays behind. */
    td_wipe(msg, msg ? msgcap : 0);
    td_wipe(path, path ? pathcap : 0);
    td_wipe(cookie, sizeof(cookie));
    free(msg);
    free(path);
    return r;
}

/* The 101 is in and lws has checked its Accept against the key it sent:
 * check it against the key we read from its buffer (proof that the nonce we
 * encrypted with is the one the server saw), derive Ns, and see whether the
 * server speaks our extension. */
static int wsc_pre_establish(struct wsc_tun *wt)
{
    struct ws_client *cl = wt->cl;
    char acc[64], want[WSTAN_WS_ACCEPT_LEN + 1], proto[64];
    int n;

    n = lws_hdr_copy(wt->wsi, acc, sizeof(acc), WSI_TOKEN_ACCEPT);
    if (n != WSTAN_WS_ACCEPT_LEN || wstan_ws_accept(wt->key, strlen(wt->key), want, NULL) != 0 ||
        memcmp(acc, want, WSTAN_WS_ACCEPT_LEN) != 0) {
        wt->fatal = true;
        snprintf(wt->why, sizeof(wt->why),
                 "Sec-WebSocket-Accept does not match the key read from the request");
        LOG_ERROR("ws", "tunnel %s: %s; failing closed (was libwebsockets upgraded?)",
                  cl->cfg->name, wt->why);
        return 1;
    }
    if (cl->cfg->nonce_mode == CFG_NONCE_DEFAULT) {
        if (wstan_ns_from_accept(acc, WSTAN_WS_ACCEPT_LEN, wt->ns) != 0)
            return 1;
    } else if (wstan_ns_compat(wt->nc, wt->ns) != 0) {
        return 1;
    }
    n = lws_hdr_copy(wt->wsi, proto, sizeof(proto), WSI_TOKEN_PROTOCOL);
    wt->peer_acks = n == (int)strlen(WSC_PROTO) && memcmp(proto, WSC_PROTO, (size_t)n) == 0;
    return 0;
}

static int wsc_on_established(struct wsc_tun *wt)
{
    struct ws_client *cl = wt->cl;
    struct ws_tun_params p;
    char label[96];
    struct wsc_stream *s = wt->s;

    memset(&p, 0, sizeof(p));
    snprintf(label, sizeof(label), "tunnel %s #%llu", cl->cfg->name, (unsigned long long)wt->id);
    p.role = WSTAN_CLIENT;
    p.key = &cl->key;
    p.nc = cl->cfg->tls ? NULL : wt->nc;
    p.ns = cl->cfg->tls ? NULL : wt->ns;
    p.tls_mode = cl->cfg->tls;
    if (wstan_initial_state(WSTAN_CLIENT, wt->first_cmd, &p.state) != 0)
        return -1;
    p.up_skip = wt->up_skip;
    p.label = label;
    wt->t = ws_tun_new(cl->d, wt->wsi, &p, &wsc_tun_cbs, wt);
    if (!wt->t) {
        snprintf(wt->why, sizeof(wt->why), "cannot set up the tunnel");
        return -1;
    }
    ws_tun_set_peer_ack(wt->t, wt->peer_acks);
    wt->st = WT_OPEN;
    cl->opened++;
    LOG_INFO("ws", "tunnel %s: ws connection #%llu to %s:%u open (%s peer)", cl->cfg->name,
             (unsigned long long)wt->id, cl->cfg->server.host, cl->cfg->server.port,
             wt->peer_acks ? "tunneld" : "wstan");
    if (s) {
        if (s->st == WSR_OPENING) {
            if (wt->peer_acks)
                s->st = WSR_CONNECTING;
            else
                wsc_stream_open(s);
        }
    } else if (wt->u) {
        wt->u->open = true;
        if (wsc_udp_flush(wt->u) != 0 && wt->t)
            ws_tun_close(wt->t, WSTAN_CLOSE_NORMAL, "cannot send");
    } else if (ws_tun_state(wt->t) == WSTAN_USING) {
        /* Its conn left while it was opening: reset it for the pool. */
        wsc_tun_local_end(wt, "");
    } else {
        wsc_tun_idle(wt);
    }
    return 0;
}

/* The wsi is closing or gone. */
static void wsc_wsi_gone(struct wsc_tun *wt, const char *why)
{
    if (wt->t) {
        ws_tun_on_wsi_closed(wt->t); /* on_closed: wt->t = NULL */
        wt->t = NULL;
    } else if (wt->st == WT_OPENING && wt->in_connect) {
        wt->early_fail = true;
    } else if (wt->st == WT_OPENING) {
        wsc_tun_failed(wt, why);
    }
    wt->st = WT_CLOSED;
}

static int wsc_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    void *ud = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    struct wsc_tun *wt = ud;
    (void)user;

    if (ud == &wsc_orphan) {
        if (reason == LWS_CALLBACK_WSI_DESTROY) {
            struct ws_client *cl = lws_get_vhost_user(lws_get_vhost(wsi));
            lws_set_opaque_user_data(wsi, NULL);
            if (cl)
                ws_lws_sock_closed(cl->d);
        }
        return 0;
    }
    if (!wt)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (!wt->wsi)
            wt->wsi = wsi;
        return wsc_append(wt, in, len);
    case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH:
        wt->wsi = wsi;
        return wsc_pre_establish(wt);
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        wt->wsi = wsi;
        return wsc_on_established(wt);
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!wt->t)
            return -1;
        return ws_tun_on_rx(wt->t, in, len, lws_frame_is_binary(wsi) != 0,
                            lws_is_first_fragment(wsi) != 0, lws_is_final_fragment(wsi) != 0,
                            lws_remaining_packet_payload(wsi));
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (!wt->t)
            return 0;
        return ws_tun_on_writable(wt->t);
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
        if (wt->t)
            ws_tun_on_pong(wt->t, in, len);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (wt->t)
            ws_tun_on_peer_close(wt->t);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        char why[128];
        if (wt->why[0] == '\0') {
            if (in && len)
                td_log_safe(why, sizeof(why), in, strnlen(in, len));
            else
                snprintf(why, sizeof(why), "connection error");
            snprintf(wt->why, sizeof(wt->why), "%s", why);
        }
        wsc_wsi_gone(wt, wt->why);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        wsc_wsi_gone(wt, "closed during the handshake");
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        /* lws has closed the socket by now. */
        wsc_wsi_gone(wt, "closed during the handshake");
        lws_set_opaque_user_data(wsi, NULL);
        wt->wsi = NULL;
        wt->destroyed = true;
        wsc_fd_release(wt);
        if (!wt->in_connect)
            wsc_tun_free(wt);
        return 0;
    default:
        return 0;
    }
}

/* Open a new WebSocket whose first request is cmd (REQ to a, or a DGM). */
/* Start the lws connect to addr (a literal, or the URL host when lws
 * resolves it itself).  Returns 0, or -1 with the wsi gone (wt->why says
 * why) and wt still ours. */
static int wsc_tun_connect(struct wsc_tun *wt, const char *addr)
{
    struct ws_client *cl = wt->cl;
    struct lws_client_connect_info cc;
    struct lws *wsi;

    memset(&cc, 0, sizeof(cc));
    cc.context = ws_lws_context(cl->d);
    cc.vhost = cl->vh;
    cc.address = addr;
    cc.port = cl->cfg->server.port;
    cc.ssl_connection = cl->ssl_flags;
    cc.path = "/";          /* rebuilt in APPEND_HANDSHAKE_HEADER */
    cc.host = cl->host_hdr; /* Host, and SNI without the port */
    cc.protocol = WSC_PROTO;
    cc.local_protocol_name = WSC_PROTO;
    cc.ietf_version_or_minus_one = -1;
    cc.opaque_user_data = wt;
    if (!cc.context || !cc.vhost) {
        snprintf(wt->why, sizeof(wt->why), "no libwebsockets context");
        return -1;
    }
    LOG_DEBUG("ws", "tunnel %s #%llu: connecting to %s:%u (%s)", cl->cfg->name,
              (unsigned long long)wt->id, cl->cfg->server.host, cl->cfg->server.port, addr);
    wt->in_connect = true;
    wsi = lws_client_connect_via_info(&cc);
    wt->in_connect = false;
    if (!wsi || wt->destroyed || wt->early_fail) {
        if (!wt->why[0])
            snprintf(wt->why, sizeof(wt->why), "cannot start connecting");
        if (!wt->destroyed && wsi) {
            /* lws still holds the wsi (and maybe its socket) after wt goes:
             * the count stays until its WSI_DESTROY. */
            lws_set_opaque_user_data(wsi, wt->fd_counted ? (void *)&wsc_orphan : NULL);
            wt->fd_counted = false;
        }
        return -1;
    }
    if (!wt->wsi)
        wt->wsi = wsi;
    return 0;
}

/* lws resolves names with a blocking getaddrinfo() on our loop; so a URL
 * host that is a name is resolved here, in libuv's thread pool, and lws
 * gets a literal.  Results are kept for WSC_DNS_TTL_MS; a failed connect
 * moves on to the next address for the next attempt (the retry). */
static bool wsc_needs_resolve(const struct ws_client *cl)
{
    /* Through a proxy the proxy resolves the name (lws sends it in CONNECT). */
    return cl->cfg->server.kind == TD_HOST_NAME && !cl->cfg->has_http_proxy;
}

static void wsc_resolved_connect(struct wsc_tun *wt)
{
    struct ws_client *cl = wt->cl;
    if (wsc_tun_connect(wt, cl->addrs[cl->addr_next % cl->n_addrs]) != 0) {
        wsc_tun_failed(wt, wt->why);
        wsc_tun_free(wt);
    }
}

static void wsc_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct ws_client *cl = req->data;
    struct addrinfo *ai;

    cl->resolving = false;
    cl->n_addrs = 0;
    cl->addr_next = 0;
    for (ai = res; status == 0 && ai && cl->n_addrs < WSC_DNS_MAX; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        if (uv_inet_ntop(ai->ai_family,
                         ai->ai_family == AF_INET
                             ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                             : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
                         cl->addrs[cl->n_addrs], sizeof(cl->addrs[0])) == 0)
            cl->n_addrs++;
    }
    if (res)
        uv_freeaddrinfo(res);
    cl->resolved_at = uv_now(cl->d->loop);
    if (cl->n_addrs == 0 && !cl->stopped)
        LOG_WARN("ws", "tunnel %s: cannot resolve %s: %s", cl->cfg->name, cl->cfg->server.host,
                 status ? uv_strerror(status) : "no address");
    while (!td_queue_empty(&cl->resolve_wait)) {
        struct wsc_tun *wt = td_container_of(cl->resolve_wait.next, struct wsc_tun, pool_node);
        td_queue_remove(&wt->pool_node);
        wt->resolving = false;
        if (cl->stopped || cl->n_addrs == 0 || (!wt->s && !wt->u)) {
            snprintf(wt->why, sizeof(wt->why), "cannot resolve %s", cl->cfg->server.host);
            wsc_tun_failed(wt, wt->why);
            wsc_tun_free(wt);
            continue;
        }
        wsc_resolved_connect(wt);
    }
}

/* Is there a descriptor for one more WebSocket?  When not, the request
 * fails (the listeners have paused for the same reason); said once until a
 * WebSocket can be opened again. */
static bool wsc_room(struct ws_client *cl)
{
    if (daemon_fds_available(cl->d, 1)) {
        cl->budget_logged = false;
        return true;
    }
    if (!cl->budget_logged)
        LOG_WARN("ws",
                 "tunnel %s: too many open files (%llu of %llu descriptors in use): "
                 "requests fail until WebSockets close",
                 cl->cfg->name, (unsigned long long)cl->d->fds_in_use,
                 (unsigned long long)cl->d->fd_budget);
    cl->budget_logged = true;
    return false;
}

/* Open a new WebSocket whose first request is cmd (REQ to a, or a DGM).
 * NULL when it cannot even start; later failures come through
 * wsc_tun_failed() to the users attached by then. */
static struct wsc_tun *wsc_tun_open(struct ws_client *cl, enum wstan_cmd cmd,
                                    const struct wstan_addr *a, struct wsc_dgm *dgm)
{
    struct wsc_tun *wt = calloc(1, sizeof(*wt));

    if (!wt) {
        free(dgm);
        return NULL;
    }
    wt->cl = cl;
    wt->id = ++cl->next_id;
    wt->first_cmd = cmd;
    if (a)
        wt->first_addr = *a;
    wt->first_dgm = dgm;
    td_queue_init(&wt->pool_node);
    td_queue_insert_tail(&cl->tuns, &wt->node);
    /* Counted from now, before lws has made the socket: a name being
     * resolved meanwhile must not let more opens through than the budget
     * allows. */
    ws_lws_sock_opened(cl->d);
    wt->fd_counted = true;
    if (cl->cfg->nonce_mode == CFG_NONCE_COMPATIBLE &&
        wstan_nonce_generate(wt->nc, cl->cookie_name) != 0) {
        wsc_tun_free(wt);
        return NULL;
    }
    if (wsc_needs_resolve(cl)) {
        if (cl->n_addrs > 0 && uv_now(cl->d->loop) - cl->resolved_at < WSC_DNS_TTL_MS &&
            !cl->resolving) {
            if (wsc_tun_connect(wt, cl->addrs[cl->addr_next % cl->n_addrs]) == 0)
                return wt;
            goto fail;
        }
        /* Wait for the name (the pool_node is free while opening). */
        wt->resolving = true;
        td_queue_insert_tail(&cl->resolve_wait, &wt->pool_node);
        if (!cl->resolving) {
            struct addrinfo hints;
            memset(&hints, 0, sizeof(hints));
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;
            hints.ai_flags = AI_ADDRCONFIG;
            cl->gai.data = cl;
            if (uv_getaddrinfo(cl->d->loop, &cl->gai, wsc_on_resolved, cl->cfg->server.host, NULL,
                               &hints) != 0) {
                td_queue_remove(&wt->pool_node);
                snprintf(wt->why, sizeof(wt->why), "cannot start resolving");
                goto fail;
            }
            cl->resolving = true;
        }
        return wt;
    }
    if (wsc_tun_connect(wt, cl->cfg->server.host) == 0)
        return wt;
fail:
    LOG_WARN("ws", "tunnel %s: ws connection to %s:%u failed: %s", cl->cfg->name,
             cl->cfg->server.host, cl->cfg->server.port, wt->why);
    wsc_tun_free(wt);
    return NULL;
}

/* Put s on a pooled tunnel (in-band REQ) or a new one (REQ in the URI). */
static void wsc_stream_start(struct wsc_stream *s, bool allow_pool)
{
    struct ws_client *cl = s->cl;
    struct wsc_tun *wt;

    while (allow_pool && (wt = wsc_pool_take(cl)) != NULL) {
        if (ws_tun_send_req(wt->t, &s->addr, NULL, 0) != 0) {
            if (wt->t)
                ws_tun_close(wt->t, WSTAN_CLOSE_NORMAL, "cannot send a request");
            continue;
        }
        cl->reused++;
        if (td_log_level_current >= TD_LOG_DEBUG) {
            char host[300];
            if (s->addr.atyp == WSTAN_ATYP_DOMAIN)
                td_log_safe(host, sizeof(host), s->addr.host, strlen(s->addr.host));
            else
                uv_inet_ntop(s->addr.atyp == WSTAN_ATYP_IPV4 ? AF_INET : AF_INET6, s->addr.ip, host,
                             sizeof(host));
            LOG_DEBUG("ws", "tunnel %s #%llu: reused for %s:%u", cl->cfg->name,
                      (unsigned long long)wt->id, host, s->addr.port);
        }
        wt->s = s;
        s->wt = wt;
        if (wt->peer_acks)
            s->st = WSR_CONNECTING;
        else
            wsc_stream_open(s);
        return;
    }
    if (!wsc_room(cl)) {
        wsc_stream_lost(s, TD_EMFILE, "no descriptor left for a WebSocket");
        return;
    }
    wt = wsc_tun_open(cl, WSTAN_REQ, &s->addr, NULL);
    if (!wt) {
        wsc_stream_lost(s, TD_EIO, "cannot open a tunnel");
        return;
    }
    wt->s = s;
    s->wt = wt;
    s->st = WSR_OPENING;
}

static void ws_client_open(struct ws_client *cl, struct conn *c, const char *host, uint16_t port)
{
    struct wsc_stream *s;

    if (cl->stopped) {
        conn_target_failed(c, TD_ECANCELED, "shutting down");
        return;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        conn_target_failed(c, TD_ENOMEM, NULL);
        return;
    }
    s->cl = cl;
    s->c = c;
    if (wstan_addr_set(&s->addr, host, strlen(host), port, false) != 0) {
        free(s);
        conn_target_failed(c, TD_EINVAL, "bad target address");
        return;
    }
    c->tops = &wsc_ops;
    c->tstream = s;
    cl->streams_total++;
    /* The whole open, tunnel included, is bounded by connect_timeout. */
    conn_arm_timer(c, cl->d->cfg->limits.connect_timeout_ms);
    wsc_stream_start(s, true);
}

/* ---- UDP -------------------------------------------------------------------- */

static void wsc_udp_ended(struct td_udp_flow *u)
{
    u->open = false;
    if (u->ended)
        return;
    u->ended = true;
    u->cbs->closed(u->arg);
}

static int wsc_udp_flush(struct td_udp_flow *u)
{
    int r = 0;
    for (int i = 0; i < u->nhold; i++) {
        if (r == 0 && u->wt && u->wt->t)
            r = ws_tun_send_dgm(u->wt->t, &u->hold[i]->a, u->hold[i]->data, u->hold[i]->len);
        free(u->hold[i]);
        u->hold[i] = NULL;
    }
    u->nhold = 0;
    return r;
}

static struct td_udp_flow *ws_client_udp_open(struct ws_client *cl, const struct td_udp_cbs *cbs,
                                              void *arg)
{
    struct td_udp_flow *u;
    if (cl->stopped)
        return NULL;
    u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->cl = cl;
    u->cbs = cbs;
    u->arg = arg;
    return u;
}

static struct wsc_dgm *wsc_dgm_new(const struct wstan_addr *a, const uint8_t *p, size_t len)
{
    struct wsc_dgm *g = malloc(sizeof(*g) + (len ? len : 1));
    if (!g)
        return NULL;
    g->a = *a;
    g->len = len;
    if (len)
        memcpy(g->data, p, len);
    return g;
}

static int ws_client_udp_send(struct td_udp_flow *f, const struct wstan_addr *dst, const uint8_t *p,
                              size_t len)
{
    struct ws_client *cl = f->cl;
    struct wsc_tun *wt;

    if (f->ended || cl->stopped)
        return TD_ECANCELED;
    if (f->open && f->wt && f->wt->t)
        return ws_tun_send_dgm(f->wt->t, dst, p, len);
    if (f->wt) { /* opening: hold a few */
        if (f->nhold >= WSC_UDP_HOLD)
            return TD_ELIMIT;
        f->hold[f->nhold] = wsc_dgm_new(dst, p, len);
        if (!f->hold[f->nhold])
            return TD_ENOMEM;
        f->nhold++;
        return 0;
    }
    /* The first datagram: a pooled tunnel takes it in-band. */
    while ((wt = wsc_pool_take(cl)) != NULL) {
        if (ws_tun_send_dgm(wt->t, dst, p, len) != 0) {
            if (wt->t)
                ws_tun_close(wt->t, WSTAN_CLOSE_NORMAL, "cannot send a datagram");
            continue;
        }
        cl->reused++;
        wt->u = f;
        f->wt = wt;
        f->open = true;
        return 0;
    }
    if (!wsc_room(cl))
        return TD_EMFILE;
    if (len <= WSC_URI_DGM_MAX) {
        struct wsc_dgm *g = wsc_dgm_new(dst, p, len);
        if (!g)
            return TD_ENOMEM;
        wt = wsc_tun_open(cl, WSTAN_DGM, NULL, g);
    } else {
        /* Too big for the URI: an empty request, the datagram in-band. */
        f->hold[0] = wsc_dgm_new(dst, p, len);
        if (!f->hold[0])
            return TD_ENOMEM;
        f->nhold = 1;
        wt = wsc_tun_open(cl, WSTAN_RST, NULL, NULL);
    }
    if (!wt) {
        wsc_udp_flush(f);
        return TD_EIO;
    }
    wt->u = f;
    f->wt = wt;
    return 0;
}

static void ws_client_udp_close(struct td_udp_flow *f)
{
    struct wsc_tun *wt = f->wt;
    if (wt) {
        wt->u = NULL;
        f->wt = NULL;
        if (wt->st == WT_OPEN)
            wsc_tun_local_end(wt, "");
    }
    for (int i = 0; i < f->nhold; i++)
        free(f->hold[i]);
    free(f);
}

/* ---- life -------------------------------------------------------------------- */

static const char *const wsc_ca_bundles[] = {
    "/etc/ssl/certs/ca-certificates.crt", /* Debian, Ubuntu */
    "/etc/pki/tls/certs/ca-bundle.crt",   /* Fedora, RHEL */
    "/etc/ssl/cert.pem",                  /* Alpine, BSDs */
};

static int ws_client_create(struct td_daemon *d, const struct cfg_tunnel *cfg,
                            struct ws_client **out)
{
    struct ws_client *cl;
    struct lws_context_creation_info info;
    struct lws_context *ctx;
    int r;

    *out = NULL;
    cl = calloc(1, sizeof(*cl));
    if (!cl)
        return TD_ENOMEM;
    cl->d = d;
    cl->cfg = cfg;
    td_queue_init(&cl->tuns);
    td_queue_init(&cl->pool);
    td_queue_init(&cl->resolve_wait);
    r = wstan_key_derive(cfg->key, strlen(cfg->key), &cl->key);
    if (r == 0)
        r = wstan_cookie_name(&cl->key, cl->cookie_name);
    if (r != 0) {
        LOG_ERROR("ws", "tunnel %s: cannot derive the key: %s", cfg->name, td_strerror(r));
        wstan_key_clear(&cl->key);
        free(cl);
        return r;
    }
#ifdef TUNNELD_TEST_HOOKS
    {
        /* The test suite's only way to prove that the request rebuild fails
         * closed: it can only make every open fail, never weaken a check.
         * Only the tunneld-testhooks build has it. */
        const char *tb = getenv("TUNNELD_TEST_WS_CLIENT_BREAK_HANDSHAKE");
        cl->test_break_hack = tb && strcmp(tb, "1") == 0;
    }
#endif
    ctx = ws_lws_context(d);
    if (!ctx) {
        wstan_key_clear(&cl->key);
        free(cl);
        return TD_EIO;
    }
    cl->protocols[0].name = WSC_PROTO;
    cl->protocols[0].callback = wsc_callback;
    cl->protocols[0].rx_buffer_size = 0;

    ws_lws_vhost_info(&info);
    ws_lws_vhost_name(cl->d, cfg->name, cl->vh_name, sizeof(cl->vh_name));
    info.vhost_name = cl->vh_name;
    info.protocols = cl->protocols;
    info.user = cl; /* for the wsis whose tunnel went first (wsc_orphan) */
    if (cfg->tls) {
        const char *ca = cfg->tls_ca;
        if (!ca)
            for (size_t i = 0; i < sizeof(wsc_ca_bundles) / sizeof(wsc_ca_bundles[0]); i++)
                if (access(wsc_ca_bundles[i], R_OK) == 0) {
                    ca = wsc_ca_bundles[i];
                    break;
                }
        if (ca) {
            snprintf(cl->ca_path, sizeof(cl->ca_path), "%s", ca);
            info.client_ssl_ca_filepath = cl->ca_path;
        }
        cl->ssl_flags = LCCSCF_USE_SSL;
        if (!cfg->tls_verify)
            cl->ssl_flags |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                             LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    }
    if (cfg->has_http_proxy) {
        info.http_proxy_address = cfg->http_proxy.host;
        info.http_proxy_port = cfg->http_proxy.port;
    }
    cl->vh = lws_create_vhost(ctx, &info);
    if (!cl->vh) {
        LOG_ERROR("ws", "tunnel %s: cannot create its libwebsockets vhost (TLS trust %s?)",
                  cfg->name, cl->ca_path[0] ? cl->ca_path : "store");
        wstan_key_clear(&cl->key);
        free(cl);
        return TD_EIO;
    }
    /* Host (and SNI, which lws takes from it without the port). */
    {
        const char *h = cfg->tls_sni ? cfg->tls_sni : cfg->server.host;
        bool v6 = strchr(h, ':') != NULL;
        uint16_t defport = cfg->tls ? 443 : 80;
        if (cfg->server.port == defport)
            snprintf(cl->host_hdr, sizeof(cl->host_hdr), v6 ? "[%s]" : "%s", h);
        else
            snprintf(cl->host_hdr, sizeof(cl->host_hdr), v6 ? "[%s]:%u" : "%s:%u", h,
                     cfg->server.port);
    }
    uv_timer_init(d->loop, &cl->pool_timer);
    cl->pool_timer.data = cl;
    LOG_INFO("ws", "tunnel %s: wstan to %s (%s nonces, %s key%s%s)", cfg->name, cfg->url,
             cfg->nonce_mode == CFG_NONCE_COMPATIBLE ? "compatible" : "default",
             cl->key.derived ? "password" : "raw", cfg->has_http_proxy ? ", via HTTP proxy " : "",
             cfg->has_http_proxy ? cfg->http_proxy.host : "");
    *out = cl;
    return 0;
}

static void ws_client_shutdown(struct ws_client *cl)
{
    struct td_queue *q;

    if (!cl || cl->stopped)
        return;
    cl->stopped = true;
    if (cl->resolving)
        uv_cancel((uv_req_t *)&cl->gai); /* wsc_on_resolved fails the waiting tunnels */
    uv_timer_stop(&cl->pool_timer);
    if (!uv_is_closing((uv_handle_t *)&cl->pool_timer))
        uv_close((uv_handle_t *)&cl->pool_timer, NULL);
    while (!td_queue_empty(&cl->pool)) {
        struct wsc_tun *wt = td_container_of(cl->pool.next, struct wsc_tun, pool_node);
        wsc_pool_remove(wt);
        if (wt->t)
            ws_tun_close(wt->t, WSTAN_CLOSE_NORMAL, "shutting down");
    }
    /* Requests waiting for a tunnel fail now; tunnels in use end with their
     * conns (the daemon closes those). */
    for (q = cl->tuns.next; q != &cl->tuns;) {
        struct wsc_tun *wt = td_container_of(q, struct wsc_tun, node);
        q = q->next;
        if (wt->st == WT_OPEN && !wt->s && !wt->u && wt->t) {
            /* Resetting with no user: nothing to wait for. */
            ws_tun_close(wt->t, WSTAN_CLOSE_NORMAL, "shutting down");
            continue;
        }
        if (wt->st != WT_OPENING)
            continue;
        if (wt->s) {
            struct wsc_stream *s = wt->s;
            wt->s = NULL;
            s->wt = NULL;
            wsc_stream_lost(s, TD_ECANCELED, "shutting down");
        }
        if (wt->u) {
            struct td_udp_flow *u = wt->u;
            wt->u = NULL;
            u->wt = NULL;
            wsc_udp_ended(u);
        }
        if (wt->wsi)
            lws_set_timeout(wt->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    }
}

static void ws_client_free(struct ws_client *cl)
{
    if (!cl)
        return;
    /* lws destroyed every wsi (and so every wsc_tun) before this. */
    while (!td_queue_empty(&cl->tuns)) {
        struct wsc_tun *wt = td_container_of(cl->tuns.next, struct wsc_tun, node);
        wsc_tun_free(wt);
    }
    wstan_key_clear(&cl->key);
    free(cl);
}

/* ---- the tunnel kind (struct td_tunnel_ops) ------------------------------ */

/* SOCKS5 and wstan name addresses the same way (IPv4, domain, IPv6). */
static void wsc_addr_from_socks5(struct wstan_addr *a, const struct socks5_addr *s)
{
    memset(a, 0, sizeof(*a));
    a->atyp = (enum wstan_atyp)s->atyp;
    a->port = s->port;
    if (s->atyp == SOCKS5_ATYP_DOMAIN) {
        snprintf(a->host, sizeof(a->host), "%s", s->host);
        a->hostlen = strlen(a->host);
    } else {
        memcpy(a->ip, s->ip, s->atyp == SOCKS5_ATYP_IPV4 ? 4 : 16);
    }
}

static void wsc_udp_deliver(struct td_udp_flow *u, const struct wstan_addr *src, const uint8_t *p,
                            size_t len)
{
    struct socks5_addr sa;

    memset(&sa, 0, sizeof(sa));
    sa.atyp = (uint8_t)src->atyp;
    sa.port = src->port;
    if (src->atyp == WSTAN_ATYP_DOMAIN)
        snprintf(sa.host, sizeof(sa.host), "%s", src->host);
    else
        memcpy(sa.ip, src->ip, src->atyp == WSTAN_ATYP_IPV4 ? 4 : 16);
    u->cbs->recv(u->arg, &sa, p, len);
}

static int wsc_create(struct td_tunnel *t)
{
    return ws_client_create(t->d, t->cfg, (struct ws_client **)&t->impl);
}

static void wsc_open_stream(struct td_tunnel *t, struct conn *c, const char *host, uint16_t port)
{
    ws_client_open(t->impl, c, host, port);
}

static struct td_udp_flow *wsc_udp_open(struct td_tunnel *t, const struct td_udp_cbs *cbs,
                                        void *arg)
{
    return ws_client_udp_open(t->impl, cbs, arg);
}

static int wsc_udp_send(struct td_udp_flow *f, const struct socks5_addr *dst, const uint8_t *p,
                        size_t len)
{
    struct wstan_addr a;
    wsc_addr_from_socks5(&a, dst);
    return ws_client_udp_send(f, &a, p, len);
}

static void wsc_close(struct td_tunnel *t)
{
    ws_client_shutdown(t->impl);
}

static void wsc_free(struct td_tunnel *t)
{
    ws_client_free(t->impl);
    t->impl = NULL;
}

static void wsc_stats(struct td_tunnel *t, struct td_tunnel_stats *out)
{
    struct ws_client *cl = t->impl;
    const struct td_queue *q;

    memset(out, 0, sizeof(*out));
    out->state = cl->stopped ? "stopped" : "up";
    for (q = cl->tuns.next; q != &cl->tuns; q = q->next) {
        const struct wsc_tun *wt = td_container_of(q, struct wsc_tun, node);
        out->links++;
        if (wt->s || wt->u)
            out->streams++;
    }
    out->pooled = cl->n_pool;
    out->links_opened = cl->opened;
    out->streams_total = cl->streams_total;
}

const struct td_tunnel_ops ws_tunnel_ops = {
    .create = wsc_create,
    .open_stream = wsc_open_stream,
    .udp_open = wsc_udp_open,
    .udp_send = wsc_udp_send,
    .udp_close = ws_client_udp_close,
    .close = wsc_close,
    .free = wsc_free,
    .stats = wsc_stats,
};
