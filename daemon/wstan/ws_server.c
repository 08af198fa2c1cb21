/* wstan server: one per "servers:" entry with protocol: wstan.
 *
 * Plain ws://: we accept the TCP connection ourselves and read the whole
 * request head (up to WSS_HEAD_MAX, so handshake request lines of 96 KiB
 * fit; libwebsockets keeps URI lengths in 16 bits), run every wstan check
 * on it, and answer failures ourselves, byte for byte as the stock server
 * does ("HTTP/1.1 400 None", the plain 200 status page).  Only a handshake
 * that passed is handed to libwebsockets, as a short rewritten request on a
 * duplicated descriptor, for the upgrade and the framing.
 *
 * Native wss:// (tls.cert and tls.key set): libwebsockets listens and does
 * TLS; the same checks run on the headers it parsed, in TLS mode (spec 9:
 * identity cipher, tags checked, no timestamp or replay check).
 *
 * After the handshake each WebSocket is a ws_tun (ws_tunnel.c) and a
 * session here that owns the target side: a TCP connection from dial.c,
 * or UDP sockets for DGM. */
#include "wstan/ws_server.h"

#include "util/addr.h"
#include "crypto/crypto.h"
#include "core/dial.h"
#include "util/error.h"
#include "proto/http.h"
#include "core/listener.h"
#include "util/log.h"
#include "core/netutil.h"
#include "core/queue.h"
#include "config/state.h"
#include "core/resolve.h"
#include "core/stats.h"
#include "wstan/ws_lws.h"
#include "platform/platform.h"
#include "wstan/ws_tunnel.h"
#include "proto/wstan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WSS_HEAD_MAX    (100 * 1024)
#define WSS_PROTO       "tunneld-wstan.1"
#define WSS_URI_PREFIX  "/_tunneld_adopted/"
#define WSS_PENDING_CAP (256 * 1024) /* DAT bytes held while the target connects */
#define WSS_READ_BUF    (64 * 1024)  /* the one target read buffer (wss_alloc) */
#define WSS_REPLAY_CAP  65536
#define WSS_MAX_UDP     32
#define WSS_UDP_QUEUE   8

static const char wss_400[] = "HTTP/1.1 400 None\r\n\r\n";
static const char wss_status_page[] = "HTTP/1.1 200 OK\r\n"
                                      "Content-Type: text/html; charset=UTF-8\r\n"
                                      "Content-Length: 0\r\n\r\n";

struct wss_key {
    struct wstan_key k;
    char user[CFG_NAME_MAX + 1]; /* "" for the server's own keys */
};

/* What a handshake that passed every check leaves for the WebSocket. */
struct wss_hello {
    /* Copies, not pointers into the key table: the control plane may swap
     * the table while this handshake waits for lws, or its session runs. */
    struct wstan_key key;
    char user[CFG_NAME_MAX + 1]; /* "" for the server's own keys */
    uint8_t nc[WSTAN_NONCE_LEN], ns[WSTAN_NONCE_LEN];
    bool tls_mode;
    bool want_ack;
    size_t up_used;
    enum wstan_cmd first;
    struct wstan_addr addr; /* REQ/DGM target */
    uint8_t *data;          /* REQ/DGM payload (malloc'ed) */
    size_t datalen;
    char peer[64];
};

/* A plain connection while we read its request head. */
struct wss_hs {
    struct td_queue node; /* srv->handshakes */
    struct ws_server *srv;
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct td_hs_slot hs_slot;
    int refs; /* open handles */
    char *buf;
    size_t len, cap;
    size_t scanned; /* how far the end of the head has been looked for */
    bool done;
    char peer[64];
};

/* A validated handshake handed to lws, until ESTABLISHED picks it up. */
struct wss_adopt {
    struct td_queue node; /* srv->adopting */
    uint64_t id;
    struct wss_hello hello;
};

struct wss_udp {
    struct wss_udp *next;
    struct wss_sess *s;
    uv_udp_t udp;
    struct wstan_addr dst;
    bool ready, closing;
    struct td_resolve *rs; /* the destination name's lookup in progress */
    uint8_t *q[WSS_UDP_QUEUE];
    size_t qlen[WSS_UDP_QUEUE];
    int nq;
};

struct wss_sess {
    struct td_queue node; /* srv->sessions */
    struct ws_server *srv;
    struct ws_tun *t;
    uint64_t id;
    int refs; /* the tunnel, write requests, UDP handles, the idle timer */
    char peer[64];
    char user[CFG_NAME_MAX + 1]; /* "" for an anonymous key */
    char label[160];
    uint64_t start_ms;
    uint64_t up, down, requests;
    const char *end;

    /* the TCP target */
    struct td_dial *dial;
    uv_tcp_t *tcp;
    char target[300];
    uint8_t *pend; /* REQ DATA, then DATs, while CONNECTING */
    size_t pend_len;
    uint8_t *left; /* target bytes the tunnel's queue did not take */
    size_t left_len, left_off;
    size_t wq; /* bytes queued to the target socket */
    bool reading, rx_paused;

    struct wss_udp *udp;
    int n_udp;

    /* limits.idle_timeout: DATs and DGMs either way, and each request,
     * are activity; pings are not. */
    uv_timer_t idle;
    bool idle_open;
    uint64_t last_active;
};

struct wss_pss {
    struct wss_sess *s;
    struct wss_adopt *a;
};

struct ws_server {
    struct td_daemon *d;
    const struct cfg_server *cfg;
    struct td_acceptor acc; /* plain ws:// (native wss: lws listens) */
    bool accepting;
    struct lws_vhost *vh;
    char vh_name[CFG_NAME_MAX + 24]; /* ws_lws_vhost_name() */
    struct lws_protocols protocols[2];
    struct wss_key *keys;
    size_t n_keys;
    struct wstan_replay replay;
    bool replay_ok;
    struct td_queue handshakes, adopting, sessions;
    bool adopt_fd_pending; /* counted a duplicate lws has not taken yet */
    bool listen_counted;   /* native wss: lws's listening socket */
    bool budget_refusing;  /* native wss: said that the budget is full */
    uint32_t n_active;
    uint64_t next_id, next_adopt;
    char addr[64];
    char path[1024];
};

static int wss_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len);

static double wss_now(void)
{
    uv_timeval64_t tv;
    if (uv_gettimeofday(&tv) != 0)
        return 0;
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* A hello holds the nonces and the decrypted first request. */
static void wss_hello_free(struct wss_hello *h)
{
    td_wipe(h->data, h->datalen);
    free(h->data);
    td_wipe(h, sizeof(*h));
}

/* ---- the wstan checks (spec 5.2), shared by both transports ---------------- */

/* Header value as a NUL-terminated copy (NULL when absent). */
struct wss_head {
    const char *target;
    size_t target_len;
    const char *ws_key, *cookie, *upgrade, *connection, *version, *protocol;
    size_t ws_key_len, cookie_len, protocol_len;
};

static bool wss_slice_has(const char *p, size_t n, const char *tok)
{
    struct http_slice s = {p, n};
    return p && http_has_token(s, tok);
}

/* Nc from the Cookie header (compatible mode): any "_A".."_Z" cookie. */
static int wss_cookie_nonce(const char *v, size_t n, uint8_t nc[WSTAN_NONCE_LEN])
{
    size_t i = 0;
    while (v && i < n) {
        size_t j = i, a, b;
        while (j < n && v[j] != ';')
            j++;
        a = i;
        b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (wstan_cookie_parse(v + a, b - a, NULL, nc, NULL) == 0)
            return 0;
        i = j + 1;
    }
    return TD_EINVAL;
}

/* A handshake refused by the checks counts against the server: keys that
 * do not verify (and stale or replayed requests) as authentication
 * failures, the rest as protocol errors. */
static void wss_note_refused(struct ws_server *srv, int r)
{
    struct td_conn_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.server = srv->cfg->name;
    td_stats_closed(srv->d, &ci,
                    r == TD_EAUTH || r == TD_ELIMIT ? "auth-failed" : "protocol-error");
}

/* Returns 0 with *out filled, or TD_EAUTH/TD_EPROTO/TD_ELIMIT (all: 400).
 * first (cap bytes) takes the decoded request, decrypted in place. */
static int wss_check_in(struct ws_server *srv, const struct wss_head *hd, bool tls_mode,
                        struct wss_hello *out, const char **why, uint8_t *first, size_t cap)
{
    size_t flen = 0;
    struct wstan_msg m;
    struct wstan_stream st;
    const struct wss_key *found = NULL;
    double now = wss_now();
    int r;

    memset(out, 0, sizeof(*out));
    out->tls_mode = tls_mode;
    if (!tls_mode) {
        if (srv->cfg->nonce_mode == CFG_NONCE_COMPATIBLE)
            r = wss_cookie_nonce(hd->cookie, hd->cookie_len, out->nc);
        else
            r = hd->ws_key ? wstan_ws_key_decode(hd->ws_key, hd->ws_key_len, out->nc) : TD_EINVAL;
        if (r != 0) {
            *why = srv->cfg->nonce_mode == CFG_NONCE_COMPATIBLE ? "no nonce cookie" : "bad nonce";
            return TD_EPROTO;
        }
    }
    r = wstan_uri_parse(hd->target, hd->target_len, srv->path, strlen(srv->path), first, cap,
                        &flen);
    if (r != 0 || flen == 0) {
        *why = "the path holds no request";
        return TD_EPROTO;
    }
    for (size_t i = 0; i < srv->n_keys; i++) {
        r = wstan_stream_init(&st, &srv->keys[i].k, tls_mode ? NULL : out->nc, tls_mode);
        if (r != 0)
            return r;
        r = wstan_decode_first(&st, first, flen, &m);
        wstan_stream_free(&st);
        if (r == TD_EAUTH)
            continue;
        if (r != 0) {
            *why = "malformed request";
            return TD_EPROTO;
        }
        found = &srv->keys[i];
        break;
    }
    if (!found) {
        *why = "no key verifies the request";
        return TD_EAUTH;
    }
    if (!tls_mode) {
        double window = (double)srv->cfg->timestamp_window_ms / 1000.0;
        if (wstan_ts_check(m.ts, now, window) != 0) {
            *why = "timestamp outside the window";
            return TD_EAUTH;
        }
        r = wstan_replay_check(&srv->replay, out->nc, m.ts, now);
        if (r != 0) {
            *why = r == TD_ELIMIT ? "replay filter full" : "replayed nonce";
            return r;
        }
        if (srv->cfg->nonce_mode == CFG_NONCE_COMPATIBLE)
            r = wstan_ns_compat(out->nc, out->ns);
        else
            r = wstan_ns_default(hd->ws_key, hd->ws_key_len, out->ns);
        if (r != 0)
            return r;
    }
    out->key = found->k;
    snprintf(out->user, sizeof(out->user), "%s", found->user);
    out->up_used = flen - WSTAN_TAG_LEN;
    out->first = m.cmd;
    if (m.has_addr)
        out->addr = m.addr;
    if (m.datalen > 0) {
        out->data = malloc(m.datalen);
        if (!out->data)
            return TD_ENOMEM;
        memcpy(out->data, m.data, m.datalen);
        out->datalen = m.datalen;
    }
    out->want_ack = wss_slice_has(hd->protocol, hd->protocol_len, WSS_PROTO);
    return 0;
}

static int wss_check(struct ws_server *srv, const struct wss_head *hd, bool tls_mode,
                     struct wss_hello *out, const char **why)
{
    uint8_t first[WSS_HEAD_MAX];
    int r = wss_check_in(srv, hd, tls_mode, out, why, first, sizeof(first));
    /* The decoded request (plain in TLS mode, decrypted otherwise) never
     * outlives the check; it is at most as long as the target. */
    td_wipe(first, hd->target_len < sizeof(first) ? hd->target_len : sizeof(first));
    return r;
}

/* ---- sessions: the target side -------------------------------------------- */

static void wss_sess_unref(struct wss_sess *s)
{
    if (--s->refs > 0)
        return;
    td_queue_remove(&s->node);
    free(s->pend);
    free(s->left);
    free(s);
}

static void wss_idle_closed(uv_handle_t *h)
{
    wss_sess_unref(h->data);
}

static void wss_touch(struct wss_sess *s)
{
    s->last_active = uv_now(s->srv->d->loop);
}

static void wss_target_close(struct wss_sess *s)
{
    if (s->dial) {
        td_dial_cancel(s->dial);
        s->dial = NULL;
    }
    if (s->tcp) {
        td_tcp_close_free(s->srv->d, s->tcp);
        s->tcp = NULL;
    }
    s->reading = false;
    free(s->pend);
    s->pend = NULL;
    s->pend_len = 0;
    free(s->left);
    s->left = NULL;
    s->left_len = s->left_off = 0;
    if (s->rx_paused && s->t) {
        s->rx_paused = false;
        ws_tun_rx_pause(s->t, false);
    }
}

static void wss_udp_on_closed(uv_handle_t *h)
{
    struct wss_udp *u = h->data;
    struct wss_sess *s = u->s;
    for (int i = 0; i < u->nq; i++)
        free(u->q[i]);
    s->srv->d->fds_in_use -= s->srv->d->fds_in_use > 0 ? 1 : 0;
    free(u);
    wss_sess_unref(s);
}

static void wss_udp_close_all(struct wss_sess *s)
{
    while (s->udp) {
        struct wss_udp *u = s->udp;
        s->udp = u->next;
        s->n_udp--;
        u->closing = true;
        td_resolve_cancel(u->rs);
        u->rs = NULL;
        uv_udp_recv_stop(&u->udp);
        uv_close((uv_handle_t *)&u->udp, wss_udp_on_closed);
    }
}

static void wss_target_write(struct wss_sess *s, const uint8_t *p, size_t len);
static void wss_target_read_start(struct wss_sess *s);

/* The local (target) side ended: reset the tunnel with a reason. */
static void wss_local_end(struct wss_sess *s, const char *reason)
{
    wss_target_close(s);
    wss_udp_close_all(s);
    if (s->t && ws_tun_state(s->t) == WSTAN_USING)
        ws_tun_local_end(s->t, reason, "");
}

static void wss_on_write(uv_write_t *req, int status)
{
    struct wss_sess *s = req->data;
    size_t n = *(size_t *)(req + 1);
    (void)status;
    s->wq -= n < s->wq ? n : s->wq;
    free(req);
    if (s->rx_paused && s->t && s->wq <= s->srv->d->cfg->limits.buffer / 2) {
        s->rx_paused = false;
        ws_tun_rx_pause(s->t, false);
    }
    wss_sess_unref(s);
}

static void wss_target_write(struct wss_sess *s, const uint8_t *p, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    uv_write_t *req;
    int n;

    if (!s->tcp || len == 0)
        return;
    s->up += len;
    n = s->wq == 0 ? uv_try_write((uv_stream_t *)s->tcp, &b, 1) : 0;
    if (n < 0 && n != UV_EAGAIN) {
        wss_local_end(s, "connection to target broken");
        return;
    }
    if (n < 0)
        n = 0;
    if ((size_t)n == len)
        return;
    req = malloc(sizeof(*req) + sizeof(size_t) + (len - (size_t)n));
    if (!req) {
        wss_local_end(s, "out of memory");
        return;
    }
    *(size_t *)(req + 1) = len - (size_t)n;
    memcpy((uint8_t *)(req + 1) + sizeof(size_t), p + n, len - (size_t)n);
    b = uv_buf_init((char *)(req + 1) + sizeof(size_t), (unsigned)(len - (size_t)n));
    req->data = s;
    s->refs++;
    s->wq += len - (size_t)n;
    if (uv_write(req, (uv_stream_t *)s->tcp, &b, 1, wss_on_write) != 0) {
        s->refs--;
        s->wq -= len - (size_t)n;
        free(req);
        wss_local_end(s, "connection to target broken");
        return;
    }
    if (!s->rx_paused && s->wq > s->srv->d->cfg->limits.buffer) {
        s->rx_paused = true;
        ws_tun_rx_pause(s->t, true);
    }
}

/* Push target bytes the tunnel did not take; true when all went. */
static bool wss_flush_left(struct wss_sess *s)
{
    while (s->left && s->left_off < s->left_len) {
        size_t n = ws_tun_send_dat(s->t, s->left + s->left_off, s->left_len - s->left_off);
        if (n == 0)
            return false;
        s->left_off += n;
    }
    free(s->left);
    s->left = NULL;
    s->left_len = s->left_off = 0;
    return true;
}

/* Every session reads its target into this one buffer: libuv calls the read
 * callback right after the alloc, and the callback hands every byte on
 * (ws_tun_send_dat copies what it takes, s->left the rest) before it
 * returns.  So an idle session holds no read buffer at all.  Loop thread
 * only. */
static uint8_t wss_rbuf[WSS_READ_BUF];

static void wss_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)wss_rbuf, sizeof(wss_rbuf));
}

static void wss_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct wss_sess *s = st->data;
    size_t taken;
    (void)buf;

    if (n == 0)
        return;
    if (n < 0) {
        wss_local_end(s, n == UV_EOF ? "" : "connection to target broken");
        return;
    }
    s->down += (uint64_t)n;
    wss_touch(s);
    taken = ws_tun_send_dat(s->t, wss_rbuf, (size_t)n);
    if (taken < (size_t)n) {
        s->left = malloc((size_t)n - taken);
        if (!s->left) {
            wss_local_end(s, "out of memory");
            return;
        }
        memcpy(s->left, wss_rbuf + taken, (size_t)n - taken);
        s->left_len = (size_t)n - taken;
        s->left_off = 0;
        uv_read_stop(st);
        s->reading = false;
    }
}

static void wss_target_read_start(struct wss_sess *s)
{
    if (!s->tcp || s->reading || s->left)
        return;
    if (uv_read_start((uv_stream_t *)s->tcp, wss_alloc, wss_on_read) == 0)
        s->reading = true;
}

static void wss_on_dialed(void *arg, int status, uv_tcp_t *tcp, uint64_t elapsed_ms)
{
    struct wss_sess *s = arg;
    (void)elapsed_ms;
    s->dial = NULL;
    if (!s->t) {
        if (tcp)
            td_tcp_close_free(s->srv->d, tcp);
        return;
    }
    if (status != 0) {
        char reason[340], err[96];
        snprintf(reason, sizeof(reason), "can't connect to %s", s->target);
        if (status == TD_EACCES) {
            /* A tunneld client maps "not allowed" to SOCKS5 0x02 / HTTP 403. */
            snprintf(err, sizeof(err), "not allowed by the server's rules");
            LOG_INFO("ws", "%s: target %s refused by the server's rules", s->label, s->target);
        } else {
            snprintf(err, sizeof(err), "%s", td_strerror(status));
            LOG_DEBUG("ws", "%s: %s: %s", s->label, reason, err);
        }
        free(s->pend);
        s->pend = NULL;
        s->pend_len = 0;
        ws_tun_connect_failed(s->t, reason, err);
        return;
    }
    s->tcp = tcp;
    tcp->data = s;
    wss_touch(s); /* the idle clock starts when the target is there */
    if (ws_tun_connected(s->t) != 0) {
        wss_target_close(s);
        return;
    }
    if (s->pend_len > 0) {
        uint8_t *p = s->pend;
        size_t n = s->pend_len;
        s->pend = NULL;
        s->pend_len = 0;
        wss_target_write(s, p, n);
        free(p);
    }
    wss_target_read_start(s);
}

static void wss_connect(struct wss_sess *s, const struct wstan_addr *a, const uint8_t *data,
                        size_t len)
{
    struct td_dial_opts opts;
    char host[256], raw[300];

    if (a->atyp == WSTAN_ATYP_IPV4)
        td_ip_format(host, sizeof(host), a->ip, 4);
    else if (a->atyp == WSTAN_ATYP_IPV6)
        td_ip_format(host, sizeof(host), a->ip, 16);
    else
        snprintf(host, sizeof(host), "%s", a->host);
    td_hostport_format(raw, sizeof(raw), host, a->port);
    td_log_safe(s->target, sizeof(s->target), raw, strlen(raw));
    s->requests++;
    if (len > 0) {
        s->pend = malloc(len);
        if (!s->pend) {
            ws_tun_connect_failed(s->t, "out of memory", "");
            return;
        }
        memcpy(s->pend, data, len);
        s->pend_len = len;
    }
    opts.dns_timeout_ms = s->srv->d->cfg->limits.dns_timeout_ms;
    opts.connect_timeout_ms = s->srv->d->cfg->limits.connect_timeout_ms;
    opts.rules = &s->srv->cfg->rules;
    s->dial = td_dial_start(s->srv->d, host, a->port, &opts, wss_on_dialed, s);
    if (!s->dial) {
        char reason[340];
        snprintf(reason, sizeof(reason), "can't connect to %s", s->target);
        ws_tun_connect_failed(s->t, reason, "cannot start the connection");
    }
}

/* ---- UDP (DGM) ------------------------------------------------------------------ */

static void wss_udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static uint8_t scratch[65536]; /* one datagram at a time, loop thread only */
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)scratch, sizeof(scratch));
}

static void wss_udp_on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf,
                            const struct sockaddr *from, unsigned flags)
{
    struct wss_udp *u = h->data;
    struct wstan_addr a;
    char ip[64];
    (void)flags;

    if (n < 0 || !from || u->closing || !u->s->t)
        return;
    memset(&a, 0, sizeof(a));
    if (from->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)from;
        uv_ip6_name(s6, ip, sizeof(ip));
        wstan_addr_set(&a, ip, strlen(ip), ntohs(s6->sin6_port), false);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)from;
        uv_ip4_name(s4, ip, sizeof(ip));
        wstan_addr_set(&a, ip, strlen(ip), ntohs(s4->sin_port), false);
    }
    u->s->down += (uint64_t)n;
    wss_touch(u->s);
    ws_tun_send_dgm(u->s->t, &a, (const uint8_t *)buf->base, (size_t)n);
}

static void wss_udp_send_now(struct wss_udp *u, const uint8_t *p, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    /* Datagrams are best effort: what the socket does not take is dropped. */
    (void)uv_udp_try_send(&u->udp, &b, 1, NULL);
}

/* Connect the flow's socket to its destination; until then (or when the
 * rules refuse it) the flow drops what it is given. */
static int wss_udp_connect(struct wss_udp *u, const struct sockaddr *sa)
{
    int r;

    if (!td_sockaddr_allowed(&u->s->srv->cfg->rules, sa)) {
        char shown[80];
        /* The flow stays, dropping its datagrams, until the tunnel resets. */
        LOG_INFO("ws", "%s: UDP destination %s refused by the server's rules", u->s->label,
                 td_sockaddr_str(sa, shown, sizeof(shown)));
        r = TD_EACCES;
        goto out;
    }
    r = uv_udp_connect(&u->udp, sa);
    if (r == 0)
        r = uv_udp_recv_start(&u->udp, wss_udp_alloc, wss_udp_on_recv);
    if (r == 0) {
        u->ready = true;
        for (int i = 0; i < u->nq; i++)
            wss_udp_send_now(u, u->q[i], u->qlen[i]);
    }
out:
    for (int i = 0; i < u->nq; i++)
        free(u->q[i]);
    u->nq = 0;
    return r;
}

static void wss_udp_on_resolved(void *arg, int status, const struct sockaddr_storage *addrs,
                                size_t n)
{
    struct wss_udp *u = arg;
    struct sockaddr_storage to;

    u->rs = NULL;
    if (status != 0 || n == 0) {
        LOG_DEBUG("ws", "%s: UDP %s does not resolve", u->s->label, u->dst.host);
        for (int i = 0; i < u->nq; i++)
            free(u->q[i]);
        u->nq = 0;
        return;
    }
    to = addrs[0];
    if (to.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&to)->sin6_port = htons(u->dst.port);
    else
        ((struct sockaddr_in *)&to)->sin_port = htons(u->dst.port);
    if (wss_udp_connect(u, (struct sockaddr *)&to) != 0)
        LOG_DEBUG("ws", "%s: UDP socket for %s failed", u->s->label, u->dst.host);
}

static bool wss_addr_eq(const struct wstan_addr *a, const struct wstan_addr *b)
{
    if (a->atyp != b->atyp || a->port != b->port)
        return false;
    if (a->atyp == WSTAN_ATYP_DOMAIN)
        return a->hostlen == b->hostlen && memcmp(a->host, b->host, a->hostlen) == 0;
    return memcmp(a->ip, b->ip, a->atyp == WSTAN_ATYP_IPV4 ? 4 : 16) == 0;
}

static void wss_dgm(struct wss_sess *s, const struct wstan_addr *a, const uint8_t *p, size_t len)
{
    struct wss_udp *u;

    s->up += len;
    for (u = s->udp; u; u = u->next)
        if (wss_addr_eq(&u->dst, a))
            break;
    if (!u) {
        struct sockaddr_storage ss;
        if (s->n_udp >= WSS_MAX_UDP || !daemon_fds_available(s->srv->d, 1))
            return;
        u = calloc(1, sizeof(*u));
        if (!u)
            return;
        if (uv_udp_init(s->srv->d->loop, &u->udp) != 0) {
            free(u);
            return;
        }
        u->s = s;
        u->dst = *a;
        u->udp.data = u;
        s->refs++;
        s->srv->d->fds_in_use++;
        u->next = s->udp;
        s->udp = u;
        s->n_udp++;
        memset(&ss, 0, sizeof(ss));
        if (a->atyp == WSTAN_ATYP_IPV4) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            s4->sin_family = AF_INET;
            memcpy(&s4->sin_addr, a->ip, 4);
            s4->sin_port = htons(a->port);
        } else if (a->atyp == WSTAN_ATYP_IPV6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            s6->sin6_family = AF_INET6;
            memcpy(&s6->sin6_addr, a->ip, 16);
            s6->sin6_port = htons(a->port);
        }
        if (a->atyp != WSTAN_ATYP_DOMAIN) {
            if (wss_udp_connect(u, (struct sockaddr *)&ss) != 0)
                LOG_DEBUG("ws", "%s: UDP socket failed", s->label);
        } else {
            u->rs = td_resolve_start(s->srv->d, a->host, SOCK_DGRAM, wss_udp_on_resolved, u);
        }
    }
    if (u->ready) {
        wss_udp_send_now(u, p, len);
    } else if (u->rs && u->nq < WSS_UDP_QUEUE) {
        u->q[u->nq] = malloc(len ? len : 1);
        if (u->q[u->nq]) {
            memcpy(u->q[u->nq], p, len);
            u->qlen[u->nq++] = len;
        }
    }
}

/* ---- tunnel callbacks ------------------------------------------------------------- */

static void wss_on_msg(struct ws_tun *t, const struct wstan_msg *m, const struct wstan_step *step)
{
    struct wss_sess *s = ws_tun_ud(t);

    wss_touch(s);
    switch (step->action) {
    case WSTAN_ACT_CONNECT: /* in-band REQ on an idle tunnel */
        wss_connect(s, &m->addr, m->data, m->datalen);
        return;
    case WSTAN_ACT_BUFFER:
        if (s->pend_len + m->datalen > WSS_PENDING_CAP) {
            ws_tun_close(t, WSTAN_CLOSE_PROTOCOL, "too much data before the target connected");
            return;
        } else if (m->datalen > 0) {
            uint8_t *np = realloc(s->pend, s->pend_len + m->datalen);
            if (!np) {
                ws_tun_close(t, WSTAN_CLOSE_NORMAL, "out of memory");
                return;
            }
            memcpy(np + s->pend_len, m->data, m->datalen);
            s->pend = np;
            s->pend_len += m->datalen;
        }
        return;
    case WSTAN_ACT_DELIVER:
        if (m->cmd == WSTAN_DGM)
            wss_dgm(s, &m->addr, m->data, m->datalen);
        else
            wss_target_write(s, m->data, m->datalen);
        return;
    case WSTAN_ACT_REPLY_RST: /* the client reset us: drop the target */
        wss_target_close(s);
        wss_udp_close_all(s);
        break;
    case WSTAN_ACT_RESET_DONE:
        break;
    default:
        return;
    }
    /* Idle again.  While draining, an idle tunnel has nothing left to do. */
    if (!s->srv->accepting && ws_tun_state(t) == WSTAN_IDLE)
        ws_tun_close_after_queue(t, WSTAN_CLOSE_NORMAL, "shutting down");
}

static void wss_on_drain(struct ws_tun *t)
{
    struct wss_sess *s = ws_tun_ud(t);
    if (s->left && !wss_flush_left(s))
        return;
    wss_target_read_start(s);
}

static void wss_on_closed(struct ws_tun *t, const char *why)
{
    struct wss_sess *s = ws_tun_ud(t);
    struct ws_server *srv = s->srv;
    uint64_t now = uv_now(srv->d->loop);

    s->t = NULL;
    wss_target_close(s);
    wss_udp_close_all(s);
    if (s->idle_open) {
        s->idle_open = false;
        uv_close((uv_handle_t *)&s->idle, wss_idle_closed);
    }
    LOG_INFO("ws",
             "server %s: tunnel #%llu from %s closed user=%s requests=%llu up=%llu down=%llu "
             "duration=%.3fs end=%s",
             srv->cfg->name, (unsigned long long)s->id, s->peer, s->user[0] ? s->user : "-",
             (unsigned long long)s->requests, (unsigned long long)s->up,
             (unsigned long long)s->down, (double)(now - s->start_ms) / 1000.0, why);
    {
        struct td_conn_info ci;
        memset(&ci, 0, sizeof(ci));
        ci.user = s->user[0] ? s->user : NULL;
        ci.server = srv->cfg->name;
        ci.bytes_in = s->down;
        ci.bytes_out = s->up;
        td_stats_closed(srv->d, &ci, NULL);
    }
    srv->n_active--;
    daemon_server_gone(srv->d);
    wss_sess_unref(s);
}

static const struct ws_tun_cbs wss_tun_cbs = {wss_on_msg, wss_on_drain, wss_on_closed};

/* limits.idle_timeout without data: a session in use is reset (so its
 * user hears why), any other is closed.  Pings keep the WebSocket alive but
 * are not activity. */
static void wss_on_idle(uv_timer_t *h)
{
    struct wss_sess *s = h->data;
    uint64_t now = uv_now(s->srv->d->loop), limit = s->srv->d->cfg->limits.idle_timeout_ms;
    uint64_t since = now - s->last_active;

    if (!s->t)
        return;
    if (since < limit) {
        uv_timer_start(&s->idle, wss_on_idle, limit - since, 0);
        return;
    }
    switch (ws_tun_state(s->t)) {
    case WSTAN_CONNECTING: /* the connect has its own timeouts */
        uv_timer_start(&s->idle, wss_on_idle, limit, 0);
        return;
    case WSTAN_USING:
        LOG_DEBUG("ws", "%s: no data for %llu ms: resetting", s->label, (unsigned long long)since);
        wss_touch(s);
        uv_timer_start(&s->idle, wss_on_idle, limit, 0);
        /* Last: it can close the tunnel (and the timer with it). */
        wss_local_end(s, "idle timeout");
        return;
    default: /* idle, or a reset the client never answered */
        ws_tun_close(s->t, WSTAN_CLOSE_NORMAL, "idle timeout");
        return;
    }
}

static struct wss_sess *wss_sess_start(struct ws_server *srv, struct lws *wsi, struct wss_hello *h)
{
    struct wss_sess *s = calloc(1, sizeof(*s));
    struct ws_tun_params p;
    enum wstan_state st0;

    if (!s)
        return NULL;
    if (wstan_initial_state(WSTAN_SERVER, h->first, &st0) != 0) {
        free(s);
        return NULL;
    }
    s->srv = srv;
    s->id = ++srv->next_id;
    s->refs = 1;
    snprintf(s->user, sizeof(s->user), "%s", h->user);
    s->start_ms = uv_now(srv->d->loop);
    snprintf(s->peer, sizeof(s->peer), "%s", h->peer);
    snprintf(s->label, sizeof(s->label), "server %s tunnel #%llu peer=%s", srv->cfg->name,
             (unsigned long long)s->id, s->peer);
    memset(&p, 0, sizeof(p));
    p.role = WSTAN_SERVER;
    p.key = &h->key;
    p.nc = h->nc;
    p.ns = h->ns;
    p.tls_mode = h->tls_mode;
    p.state = st0;
    p.up_skip = h->up_used;
    p.label = s->label;
    p.ts_window = (double)srv->cfg->timestamp_window_ms / 1000.0;
    s->t = ws_tun_new(srv->d, wsi, &p, &wss_tun_cbs, s);
    if (!s->t) {
        free(s);
        return NULL;
    }
    ws_tun_set_peer_ack(s->t, h->want_ack);
    td_queue_insert_tail(&srv->sessions, &s->node);
    srv->n_active++;
    uv_timer_init(srv->d->loop, &s->idle);
    s->idle.data = s;
    s->idle_open = true;
    s->refs++;
    wss_touch(s);
    uv_timer_start(&s->idle, wss_on_idle, srv->d->cfg->limits.idle_timeout_ms, 0);
    LOG_DEBUG("ws", "%s: open user=%s", s->label, s->user[0] ? s->user : "-");
    if (h->first == WSTAN_REQ)
        wss_connect(s, &h->addr, h->data, h->datalen);
    else if (h->first == WSTAN_DGM)
        wss_dgm(s, &h->addr, h->data, h->datalen);
    return s;
}

/* ---- plain transport: our own handshake reader ------------------------------------ */

static struct wss_adopt *wss_take_adopt(struct ws_server *srv, uint64_t id);

static void wss_hs_unref(struct wss_hs *hs)
{
    struct td_daemon *d = hs->srv->d;

    if (--hs->refs > 0)
        return;
    td_queue_remove(&hs->node);
    td_wipe(hs->buf, hs->cap); /* the nonce and the first request */
    free(hs->buf);
    free(hs);
    daemon_fds_freed(d);
}

static void wss_hs_on_closed(uv_handle_t *h)
{
    wss_hs_unref(h->data);
}

static void wss_hs_close(struct wss_hs *hs, bool count_fd)
{
    if (hs->done)
        return;
    hs->done = true;
    td_hs_end(&hs->hs_slot);
    uv_timer_stop(&hs->timer);
    uv_close((uv_handle_t *)&hs->timer, wss_hs_on_closed);
    if (!uv_is_closing((uv_handle_t *)&hs->tcp)) {
        if (count_fd && hs->srv->d->fds_in_use > 0)
            hs->srv->d->fds_in_use--;
        uv_close((uv_handle_t *)&hs->tcp, wss_hs_on_closed);
    }
}

static void wss_hs_after_reply(uv_write_t *req, int status)
{
    struct wss_hs *hs = req->data;
    (void)status;
    free(req);
    wss_hs_close(hs, true);
    wss_hs_unref(hs);
}

/* Send a fixed answer, then close. */
static void wss_hs_reply(struct wss_hs *hs, const char *text, const char *why)
{
    uv_write_t *req = malloc(sizeof(*req));
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)strlen(text));

    if (why)
        LOG_INFO("ws", "server %s: refused handshake from %s: %s", hs->srv->cfg->name, hs->peer,
                 why);
    uv_read_stop((uv_stream_t *)&hs->tcp);
    uv_timer_stop(&hs->timer);
    if (!req || uv_write(req, (uv_stream_t *)&hs->tcp, &b, 1, wss_hs_after_reply) != 0) {
        free(req);
        wss_hs_close(hs, true);
        return;
    }
    req->data = hs;
    hs->refs++;
}

static void wss_hs_adopt(struct wss_hs *hs, struct wss_hello *h, const char *ws_key,
                         size_t ws_key_len)
{
    struct ws_server *srv = hs->srv;
    struct wss_adopt *a = calloc(1, sizeof(*a));
    char head[512], peer[64];
    uv_os_sock_t fd;
    int n;
    uint64_t id;
    struct lws *wsi;

    if (!a) {
        wss_hello_free(h);
        wss_hs_reply(hs, wss_400, "out of memory");
        return;
    }
    a->id = ++srv->next_adopt;
    a->hello = *h;
    snprintf(a->hello.peer, sizeof(a->hello.peer), "%s", hs->peer);
    /* Host is the vhost's name: lws picks the vhost of an upgrade by it, and
     * every server's adoption vhost shares the same (no) port. */
    n = snprintf(head, sizeof(head),
                 "GET " WSS_URI_PREFIX "%llu HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %.*s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "%s"
                 "\r\n",
                 (unsigned long long)a->id, srv->vh_name, (int)ws_key_len, ws_key,
                 h->want_ack ? "Sec-WebSocket-Protocol: " WSS_PROTO "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(head) || td_sock_dup(&hs->tcp, &fd) != 0) {
        wss_hello_free(&a->hello);
        free(a);
        wss_hs_reply(hs, wss_400, "cannot hand the connection over");
        return;
    }
    td_queue_insert_tail(&srv->adopting, &a->node);
    /* The duplicate counts from now; it becomes the wsi's count when lws
     * takes it (wss_fd_take). */
    ws_lws_sock_opened(srv->d);
    srv->adopt_fd_pending = true;
    /* Our handle goes; the duplicate, owned by lws now, keeps the connection. */
    uv_read_stop((uv_stream_t *)&hs->tcp);
    wss_hs_close(hs, true);
    id = a->id;
    snprintf(peer, sizeof(peer), "%s", a->hello.peer);
    wsi = lws_adopt_socket_vhost_readbuf(srv->vh, (lws_sockfd_type)fd, head, (size_t)n);
    td_wipe(head, sizeof(head)); /* lws has its own copy */
    if (srv->adopt_fd_pending) {
        /* lws failed before the socket became a connection, and closed it. */
        srv->adopt_fd_pending = false;
        ws_lws_sock_closed(srv->d);
    }
    if (!wsi) {
        LOG_WARN("ws", "server %s: libwebsockets refused the connection from %s", srv->cfg->name,
                 peer);
        /* Unless its handshake already picked it up (the wsi then frees it). */
        a = wss_take_adopt(srv, id);
        if (a) {
            wss_hello_free(&a->hello);
            free(a);
        }
    }
}

static void wss_hs_process(struct wss_hs *hs)
{
    struct http_request *req = malloc(sizeof(*req));
    const struct http_header *hv;
    struct wss_head hd;
    struct wss_hello hello;
    const char *why = NULL;
    int r;

    if (!req) {
        wss_hs_reply(hs, wss_400, "out of memory");
        return;
    }
    /* Only the new bytes are looked at until the head is complete. */
    r = http_parse_request_scan(hs->buf, hs->len, WSS_HEAD_MAX, &hs->scanned, req);
    if (r == TD_EAGAIN) {
        free(req);
        if (hs->len >= WSS_HEAD_MAX)
            wss_hs_reply(hs, wss_400, "request head too large");
        return;
    }
    if (r != 0) {
        free(req);
        wss_hs_reply(hs, wss_400, "malformed request");
        return;
    }
    memset(&hd, 0, sizeof(hd));
#define WSS_HDR(name, field, flen)                                                                 \
    do {                                                                                           \
        hv = http_find_header(req->headers, req->n_headers, name);                                 \
        if (hv) {                                                                                  \
            hd.field = hv->value.p;                                                                \
            flen;                                                                                  \
        }                                                                                          \
    } while (0)
    WSS_HDR("Upgrade", upgrade, (void)0);
    if (!hd.upgrade) {
        /* Stock behaviour: the status page, used as a health check. */
        free(req);
        wss_hs_reply(hs, wss_status_page, NULL);
        return;
    }
    if (req->method.len != 3 || memcmp(req->method.p, "GET", 3) != 0) {
        free(req);
        wss_hs_reply(hs, "HTTP/1.1 405 Method Not Allowed\r\n\r\n", "not a GET");
        return;
    }
    if (req->version_minor != 1) {
        free(req);
        wss_hs_reply(hs, "HTTP/1.1 505 HTTP Version Not Supported\r\n\r\n", "not HTTP/1.1");
        return;
    }
    hv = http_find_header(req->headers, req->n_headers, "Upgrade");
    if (!wss_slice_has(hv->value.p, hv->value.len, "websocket")) {
        free(req);
        wss_hs_reply(hs, wss_400, "not a WebSocket upgrade");
        return;
    }
    hv = http_find_header(req->headers, req->n_headers, "Connection");
    if (!hv || !wss_slice_has(hv->value.p, hv->value.len, "upgrade")) {
        free(req);
        wss_hs_reply(hs, wss_400, "no Connection: upgrade");
        return;
    }
    hv = http_find_header(req->headers, req->n_headers, "Sec-WebSocket-Version");
    if (!hv || !((hv->value.len == 2 && memcmp(hv->value.p, "13", 2) == 0) ||
                 (hv->value.len == 1 && hv->value.p[0] == '8'))) {
        free(req);
        wss_hs_reply(hs, wss_400, "bad Sec-WebSocket-Version");
        return;
    }
    WSS_HDR("Sec-WebSocket-Key", ws_key, hd.ws_key_len = hv->value.len);
    WSS_HDR("Cookie", cookie, hd.cookie_len = hv->value.len);
    WSS_HDR("Sec-WebSocket-Protocol", protocol, hd.protocol_len = hv->value.len);
#undef WSS_HDR
    if (!hd.ws_key || hd.ws_key_len != WSTAN_WS_KEY_LEN) {
        free(req);
        wss_hs_reply(hs, wss_400, "bad Sec-WebSocket-Key");
        return;
    }
    if (hs->len > req->head_len) {
        /* Stock clients wait for the 101; bytes after the head are not ours
         * to pass on through the rewritten request. */
        free(req);
        wss_hs_reply(hs, wss_400, "data after the handshake");
        return;
    }
    hd.target = req->target.p;
    hd.target_len = req->target.len;
    r = wss_check(hs->srv, &hd, false, &hello, &why);
    if (r != 0) {
        wss_note_refused(hs->srv, r);
        wss_hello_free(&hello);
        free(req);
        wss_hs_reply(hs, wss_400, why ? why : td_strerror(r));
        return;
    }
    {
        char key[WSTAN_WS_KEY_LEN];
        memcpy(key, hd.ws_key, WSTAN_WS_KEY_LEN);
        free(req);
        wss_hs_adopt(hs, &hello, key, WSTAN_WS_KEY_LEN);
        /* The adoption owns the hello now; these are copies. */
        td_wipe(key, sizeof(key));
        td_wipe(&hello, sizeof(hello));
    }
}

static void wss_hs_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct wss_hs *hs = h->data;
    (void)suggested;
    if (hs->cap - hs->len < 4096 && hs->cap < WSS_HEAD_MAX) {
        size_t cap = hs->cap ? hs->cap * 2 : 8192;
        char *nb;
        if (cap > WSS_HEAD_MAX)
            cap = WSS_HEAD_MAX;
        /* Not realloc: the old block would keep a copy of the head. */
        nb = malloc(cap);
        if (nb) {
            if (hs->len > 0)
                memcpy(nb, hs->buf, hs->len);
            td_wipe(hs->buf, hs->cap);
            free(hs->buf);
            hs->buf = nb;
            hs->cap = cap;
        }
    }
    *buf = uv_buf_init(hs->buf + hs->len, (unsigned)(hs->cap - hs->len));
}

static void wss_hs_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct wss_hs *hs = st->data;
    (void)buf;
    if (n == 0 || hs->done)
        return;
    if (n < 0) {
        LOG_INFO("ws", "server %s: handshake from %s: %s", hs->srv->cfg->name, hs->peer,
                 n == UV_EOF ? "truncated (closed early)" : uv_strerror((int)n));
        wss_hs_close(hs, true);
        return;
    }
    hs->len += (size_t)n;
    wss_hs_process(hs);
}

static void wss_hs_on_timeout(uv_timer_t *t)
{
    struct wss_hs *hs = t->data;
    struct td_conn_info ci;

    memset(&ci, 0, sizeof(ci));
    ci.server = hs->srv->cfg->name;
    td_stats_closed(hs->srv->d, &ci, "handshake-timeout");
    wss_hs_reply(hs, wss_400, "handshake timed out");
}

static void wss_hs_evict(struct td_hs_slot *slot)
{
    struct wss_hs *hs = td_container_of(slot, struct wss_hs, hs_slot);
    LOG_INFO("ws", "server %s: handshake from %s closed to make room for a new one",
             hs->srv->cfg->name, hs->peer);
    wss_hs_close(hs, true);
}

static int wss_accept(struct td_acceptor *acc)
{
    struct ws_server *srv = acc->ud;
    struct td_daemon *d = srv->d;
    struct wss_hs *hs = calloc(1, sizeof(*hs));
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (!hs)
        return TD_ENOMEM; /* still in the backlog: retried */
    hs->srv = srv;
    uv_tcp_init(d->loop, &hs->tcp);
    hs->tcp.data = hs;
    hs->refs = 1;
    td_queue_insert_tail(&srv->handshakes, &hs->node);
    if (td_acceptor_accept(acc, &hs->tcp) != 0) {
        hs->done = true;
        uv_close((uv_handle_t *)&hs->tcp, wss_hs_on_closed);
        return 0;
    }
    d->fds_in_use++;
    uv_timer_init(d->loop, &hs->timer);
    hs->timer.data = hs;
    hs->refs++;
    td_hs_begin(acc, &hs->hs_slot, wss_hs_evict);
    if (uv_tcp_getpeername(&hs->tcp, (struct sockaddr *)&ss, &len) == 0)
        td_sockaddr_str((struct sockaddr *)&ss, hs->peer, sizeof(hs->peer));
    else
        snprintf(hs->peer, sizeof(hs->peer), "-");
    uv_tcp_nodelay(&hs->tcp, 1);
    uv_timer_start(&hs->timer, wss_hs_on_timeout, d->cfg->limits.handshake_timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&hs->tcp, wss_hs_alloc, wss_hs_on_read) != 0)
        wss_hs_close(hs, true);
    return 0;
}

/* ---- lws protocol callback ---------------------------------------------------------- */

/* The adoption with this id, taken off the list (NULL if gone). */
static struct wss_adopt *wss_take_adopt(struct ws_server *srv, uint64_t id)
{
    struct td_queue *q;
    for (q = srv->adopting.next; q != &srv->adopting; q = q->next) {
        struct wss_adopt *a = td_container_of(q, struct wss_adopt, node);
        if (a->id == id) {
            td_queue_remove(&a->node);
            return a;
        }
    }
    return NULL;
}

static struct wss_adopt *wss_find_adopt(struct ws_server *srv, struct lws *wsi)
{
    char uri[128];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);

    if (n <= (int)strlen(WSS_URI_PREFIX) ||
        strncmp(uri, WSS_URI_PREFIX, strlen(WSS_URI_PREFIX)) != 0)
        return NULL;
    return wss_take_adopt(srv, strtoull(uri + strlen(WSS_URI_PREFIX), NULL, 10));
}

/* Native wss: the checks on what lws parsed. */
static struct wss_adopt *wss_check_lws(struct ws_server *srv, struct lws *wsi)
{
    char *uri = malloc(WS_LWS_MAX_HEADER + 1);
    char key[64], proto[256];
    struct wss_head hd;
    struct wss_adopt *a = NULL;
    const char *why = NULL;
    int n;

    if (!uri)
        return NULL;
    memset(&hd, 0, sizeof(hd));
    n = lws_hdr_copy(wsi, uri, WS_LWS_MAX_HEADER + 1, WSI_TOKEN_GET_URI);
    if (n <= 0)
        goto out;
    hd.target = uri;
    hd.target_len = (size_t)n;
    n = lws_hdr_copy(wsi, key, sizeof(key), WSI_TOKEN_KEY);
    if (n > 0) {
        hd.ws_key = key;
        hd.ws_key_len = (size_t)n;
    }
    n = lws_hdr_copy(wsi, proto, sizeof(proto), WSI_TOKEN_PROTOCOL);
    if (n > 0) {
        hd.protocol = proto;
        hd.protocol_len = (size_t)n;
    }
    a = calloc(1, sizeof(*a));
    if (!a)
        goto out;
    n = wss_check(srv, &hd, true, &a->hello, &why);
    if (n != 0) {
        char peer[64] = "-";
        wss_note_refused(srv, n);
        lws_get_peer_simple(wsi, peer, sizeof(peer));
        LOG_INFO("ws", "server %s: refused handshake from %s: %s", srv->cfg->name, peer,
                 why ? why : "bad request");
        wss_hello_free(&a->hello);
        free(a);
        a = NULL;
        goto out;
    }
    lws_get_peer_simple(wsi, a->hello.peer, sizeof(a->hello.peer));
out:
    /* In TLS mode the URI's request is not even encrypted. */
    td_wipe(uri, hd.target_len);
    td_wipe(key, sizeof(key));
    free(uri);
    return a;
}

/* lws made a connection of this socket (adopted, or accepted for native
 * wss): it counts in the budget until the wsi's WSI_DESTROY.  The wsi's
 * opaque pointer marks it, since its user data comes and goes with
 * protocol binds; lws's listening wsi is never marked. */
static void wss_fd_take(struct ws_server *srv, struct lws *wsi)
{
    if (lws_get_opaque_user_data(wsi) == srv)
        return;
    lws_set_opaque_user_data(wsi, srv);
    if (srv->adopt_fd_pending)
        srv->adopt_fd_pending = false; /* counted when it was duplicated */
    else
        ws_lws_sock_opened(srv->d);
}

static void wss_fd_release(struct ws_server *srv, struct lws *wsi)
{
    if (lws_get_opaque_user_data(wsi) != srv)
        return;
    lws_set_opaque_user_data(wsi, NULL);
    ws_lws_sock_closed(srv->d);
}

/* Native wss: is there room for one more connection and its target?  A
 * full budget refuses at once, rather than let an accept meet EMFILE. */
static bool wss_room(struct ws_server *srv)
{
    struct td_daemon *d = srv->d;

    if (daemon_fds_available(d, 2)) {
        if (srv->budget_refusing)
            LOG_INFO("ws", "server %s: descriptors available again (%llu in use)", srv->cfg->name,
                     (unsigned long long)d->fds_in_use);
        srv->budget_refusing = false;
        return true;
    }
    if (!srv->budget_refusing)
        LOG_WARN("ws",
                 "server %s: descriptor budget full (%llu of %llu in use): refusing "
                 "connections until some close",
                 srv->cfg->name, (unsigned long long)d->fds_in_use,
                 (unsigned long long)d->fd_budget);
    srv->budget_refusing = true;
    return false;
}

static int wss_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    struct wss_pss *pss = user;
    struct ws_server *srv = lws_get_vhost_user(lws_get_vhost(wsi));

    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        return srv && !wss_room(srv) ? -1 : 0;
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        if (srv)
            wss_fd_take(srv, wsi);
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (!srv || !pss)
            return -1;
        if (srv->cfg->tls_cert) {
            pss->a = srv->accepting ? wss_check_lws(srv, wsi) : NULL;
            /* As on plain ws://, a refusal is a 400 and nothing more. */
            if (!pss->a && lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, NULL) != 0)
                return -1;
        } else {
            pss->a = wss_find_adopt(srv, wsi);
        }
        return pss->a ? 0 : -1;
    case LWS_CALLBACK_ESTABLISHED:
        if (!pss || !pss->a)
            return -1;
        pss->s = wss_sess_start(srv, wsi, &pss->a->hello);
        wss_hello_free(&pss->a->hello);
        free(pss->a);
        pss->a = NULL;
        return pss->s ? 0 : -1;
    case LWS_CALLBACK_RECEIVE:
        if (!pss || !pss->s || !pss->s->t)
            return -1;
        return ws_tun_on_rx(pss->s->t, in, len, lws_frame_is_binary(wsi),
                            lws_is_first_fragment(wsi), lws_is_final_fragment(wsi),
                            lws_remaining_packet_payload(wsi));
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!pss || !pss->s || !pss->s->t)
            return -1;
        return ws_tun_on_writable(pss->s->t);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (pss && pss->s && pss->s->t)
            ws_tun_on_pong(pss->s->t, in, len);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (pss && pss->s && pss->s->t)
            ws_tun_on_peer_close(pss->s->t);
        return 0;
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        /* At WSI_DESTROY lws has closed the socket. */
        if (reason == LWS_CALLBACK_WSI_DESTROY && srv)
            wss_fd_release(srv, wsi);
        if (pss) {
            /* The session may be freed inside: forget it first. */
            struct wss_sess *s = pss->s;
            pss->s = NULL;
            if (s && s->t)
                ws_tun_on_wsi_closed(s->t);
            if (pss->a) {
                wss_hello_free(&pss->a->hello);
                free(pss->a);
                pss->a = NULL;
            }
        }
        return 0;
    case LWS_CALLBACK_HTTP: {
        /* Native wss without an upgrade: the stock status page.  lws_write()
         * needs LWS_PRE bytes of headroom before what it sends. */
        uint8_t buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start;
        uint8_t *end = buf + sizeof(buf) - 1;
        if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/html; charset=UTF-8", 0, &p,
                                        end) != 0 ||
            lws_finalize_write_http_header(wsi, start, &p, end) != 0)
            return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    default:
        return 0;
    }
}

/* ---- life ---------------------------------------------------------------------------- */

static void wss_keys_free(struct wss_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        wstan_key_clear(&keys[i].k);
    free(keys);
}

static int wss_key_add(struct ws_server *srv, struct wss_key *keys, size_t *n, const char *k,
                       const char *user, const char *what)
{
    struct wss_key *e = &keys[*n];
    if (wstan_key_derive(k, strlen(k), &e->k) != 0) {
        if (user)
            LOG_ERROR("ws", "server %s: user %s: %s is not a usable key", srv->cfg->name, user,
                      what);
        else
            LOG_ERROR("ws", "server %s: %s is not a usable key", srv->cfg->name, what);
        return TD_ECONFIG;
    }
    snprintf(e->user, sizeof(e->user), "%s", user ? user : "");
    (*n)++;
    return 0;
}

/* The keys this server accepts: its own, every config user's wstan_key,
 * and every managed (state) wstan user's key, with the old key of a
 * rotation while its grace period lasts.  Built anew and swapped in, so a
 * failure changes nothing. */
static int wss_load_keys(struct ws_server *srv, const struct td_config *cfg,
                         const struct td_state *st)
{
    uint64_t now = td_state_now();
    size_t n = srv->cfg->n_keys, k = 0;
    struct wss_key *keys;
    char what[32];
    int r = 0;

    for (size_t i = 0; i < cfg->n_users; i++)
        n += cfg->users[i].wstan_key != NULL;
    for (size_t i = 0; st && i < st->n; i++)
        n += st->users[i].protocol == CFG_PROTO_WSTAN ? 2 : 0;
    keys = calloc(n ? n : 1, sizeof(*keys));
    if (!keys)
        return TD_ENOMEM;
    for (size_t i = 0; r == 0 && i < srv->cfg->n_keys; i++) {
        snprintf(what, sizeof(what), "keys[%zu]", i);
        r = wss_key_add(srv, keys, &k, srv->cfg->keys[i], NULL, what);
    }
    for (size_t i = 0; r == 0 && i < cfg->n_users; i++)
        if (cfg->users[i].wstan_key)
            r = wss_key_add(srv, keys, &k, cfg->users[i].wstan_key, cfg->users[i].name,
                            "wstan_key");
    for (size_t i = 0; r == 0 && st && i < st->n; i++) {
        const struct st_user *u = &st->users[i];
        if (u->protocol != CFG_PROTO_WSTAN)
            continue;
        r = wss_key_add(srv, keys, &k, u->secret, u->name, "its managed key");
        if (r == 0 && u->old_secret && now < u->old_until)
            r = wss_key_add(srv, keys, &k, u->old_secret, u->name, "its previous key");
    }
    if (r != 0) {
        wss_keys_free(keys, k);
        return r;
    }
    wss_keys_free(srv->keys, srv->n_keys);
    srv->keys = keys;
    srv->n_keys = k;
    if (k == 0)
        LOG_WARN("wstan",
                 "server %s: no keys yet: every handshake will be refused until a key is set or "
                 "a user is added (tunnelctl users add NAME --protocol wstan)",
                 srv->cfg->name);
    return 0;
}

/* ---- the server kind (struct td_server_ops) ------------------------------ */

static int wss_create(struct td_server *ts)
{
    struct ws_server *srv = calloc(1, sizeof(*srv));
    int r;

    if (!srv)
        return TD_ENOMEM;
    srv->d = ts->d;
    srv->cfg = ts->cfg;
    td_queue_init(&srv->handshakes);
    td_queue_init(&srv->adopting);
    td_queue_init(&srv->sessions);
    snprintf(srv->path, sizeof(srv->path), "%s", srv->cfg->path ? srv->cfg->path : "/");
    ts->impl = srv;
    r = wss_load_keys(srv, ts->d->cfg, ts->d->state);
    if (r != 0)
        return r;
    r = wstan_replay_init(&srv->replay, WSS_REPLAY_CAP,
                          (double)srv->cfg->timestamp_window_ms / 1000.0);
    if (r != 0)
        return r;
    srv->replay_ok = true;
    return 0;
}

/* Bind and start accepting.  Logs "server NAME (wstan) listening on
 * ADDR:PORT" with the real port. */
static int wss_start(struct td_server *ts)
{
    struct ws_server *srv = ts->impl;
    const struct cfg_server *cfg = srv->cfg;
    struct td_daemon *d = srv->d;
    struct lws_context_creation_info info;
    struct td_acceptor_opts o;
    struct lws_context *ctx;
    char hp[300];
    int r;

    ctx = ws_lws_context(d);
    if (!ctx)
        return TD_EIO;
    td_hostport_format(hp, sizeof(hp), ts->listen.host, ts->listen.port);
    srv->protocols[0].name = WSS_PROTO;
    srv->protocols[0].callback = wss_callback;
    srv->protocols[0].per_session_data_size = sizeof(struct wss_pss);
    srv->protocols[0].rx_buffer_size = 0;
    ws_lws_vhost_info(&info);
    ws_lws_vhost_name(d, cfg->name, srv->vh_name, sizeof(srv->vh_name));
    info.vhost_name = srv->vh_name;
    info.protocols = srv->protocols;
    info.user = srv;
    if (cfg->tls_cert) {
        info.port = ts->listen.port;
        info.iface = ts->listen.host;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6 * (cfg->listen.kind == TD_HOST_IPV4);
    } else {
        info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    }
    srv->vh = lws_create_vhost(ctx, &info);
    if (!srv->vh) {
        LOG_ERROR("main", "server %s: cannot create the WebSocket %s on %s", cfg->name,
                  cfg->tls_cert ? "listener (check tls.cert and tls.key)" : "service", hp);
        return TD_EIO;
    }
    srv->accepting = true;
    if (cfg->tls_cert) {
        /* lws's listening socket, for as long as the context lives. */
        d->fds_in_use++;
        srv->listen_counted = true;
        ts->bound_port = (uint16_t)lws_get_vhost_listen_port(srv->vh);
        snprintf(srv->addr, sizeof(srv->addr), "%s",
                 td_hostport_format(hp, sizeof(hp), ts->listen.host, ts->bound_port));
        LOG_INFO("main", "server %s (wstan) listening on %s", cfg->name, srv->addr);
        return 0;
    }
    memset(&o, 0, sizeof(o));
    o.name = cfg->name;
    o.what = "server";
    o.kind = "wstan";
    o.listen = &ts->listen;
    o.accept_cb = wss_accept;
    o.ud = srv;
    o.fds_per_conn = 3; /* the socket, its copy for lws, and the target */
    r = td_acceptor_open(d, &srv->acc, &o);
    ts->bound_port = srv->acc.port;
    return r;
}

/* No new connections; handshakes in progress are refused. */
static void wss_stop_accepting(struct td_server *ts)
{
    struct ws_server *srv = ts->impl;
    struct td_queue *q;

    srv->accepting = false;
    td_acceptor_close(&srv->acc);
    for (q = srv->handshakes.next; q != &srv->handshakes;) {
        struct wss_hs *hs = td_container_of(q, struct wss_hs, node);
        q = q->next;
        wss_hs_close(hs, true);
    }
}

/* Idle tunnels close now; tunnels in use finish (daemon_server_gone() is
 * called as each one ends) and close once idle (wss_on_msg). */
static void wss_drain(struct td_server *ts)
{
    struct ws_server *srv = ts->impl;
    struct td_queue *q;

    for (q = srv->sessions.next; q != &srv->sessions; q = q->next) {
        struct wss_sess *s = td_container_of(q, struct wss_sess, node);
        if (s->t && ws_tun_state(s->t) == WSTAN_IDLE)
            ws_tun_close(s->t, WSTAN_CLOSE_NORMAL, "shutting down");
    }
}

/* Every tunnel closes now (drain deadline, second signal). */
static void wss_close(struct td_server *ts)
{
    struct ws_server *srv = ts->impl;
    struct td_queue *q;

    for (q = srv->sessions.next; q != &srv->sessions; q = q->next) {
        struct wss_sess *s = td_container_of(q, struct wss_sess, node);
        if (s->t)
            ws_tun_close(s->t, WSTAN_CLOSE_NORMAL, "shutting down");
    }
}

/* WebSocket connections open (handshaking, idle or in use). */
static uint32_t wss_active(struct td_server *ts)
{
    struct ws_server *srv = ts->impl;
    return srv->n_active;
}

static void wss_free(struct td_server *ts)
{
    struct ws_server *srv = ts->impl;

    if (!srv)
        return;
    while (!td_queue_empty(&srv->adopting)) {
        struct wss_adopt *a = td_container_of(srv->adopting.next, struct wss_adopt, node);
        td_queue_remove(&a->node);
        wss_hello_free(&a->hello);
        free(a);
    }
    if (srv->listen_counted && srv->d->fds_in_use > 0)
        srv->d->fds_in_use--;
    wss_keys_free(srv->keys, srv->n_keys);
    if (srv->replay_ok)
        wstan_replay_free(&srv->replay);
    free(srv);
    ts->impl = NULL;
}

static void wss_stats(struct td_server *ts, struct td_server_stats *out)
{
    struct ws_server *srv = ts->impl;

    memset(out, 0, sizeof(*out));
    snprintf(out->listen, sizeof(out->listen), "%s",
             srv->cfg->tls_cert ? srv->addr : srv->acc.addr);
    out->tunnels = srv->n_active;
    out->handshakes = srv->acc.n_hs;
    out->tunnels_total = srv->next_id;
}

static int wss_set_users(struct td_server *ts, const struct td_config *cfg,
                         const struct td_state *st)
{
    return wss_load_keys(ts->impl, cfg, st);
}

static void wss_each(struct td_server *ts, td_conn_cb cb, void *arg)
{
    struct ws_server *srv = ts->impl;
    struct td_queue *q;

    for (q = srv->sessions.next; q != &srv->sessions; q = q->next) {
        struct wss_sess *s = td_container_of(q, struct wss_sess, node);
        struct td_conn_info ci;
        if (!s->t)
            continue;
        memset(&ci, 0, sizeof(ci));
        snprintf(ci.id, sizeof(ci.id), "%s:%llu", srv->cfg->name, (unsigned long long)s->id);
        ci.user = s->user[0] ? s->user : NULL;
        ci.server = srv->cfg->name;
        ci.client = s->peer;
        ci.target = s->tcp || s->dial ? s->target : s->udp ? "udp" : NULL;
        ci.bytes_in = s->down;
        ci.bytes_out = s->up;
        ci.start_ms = s->start_ms;
        cb(arg, &ci);
    }
}

static bool wss_kill(struct td_server *ts, const char *id)
{
    struct ws_server *srv = ts->impl;
    unsigned long long want;
    struct td_queue *q;
    char *end;

    want = strtoull(id, &end, 10);
    if (*id == '\0' || *end != '\0')
        return false;
    for (q = srv->sessions.next; q != &srv->sessions; q = q->next) {
        struct wss_sess *s = td_container_of(q, struct wss_sess, node);
        if (s->id == want && s->t) {
            ws_tun_close(s->t, WSTAN_CLOSE_NORMAL, "closed by the operator");
            return true;
        }
    }
    return false;
}

static size_t wss_kill_user(struct td_server *ts, const char *user)
{
    struct ws_server *srv = ts->impl;
    struct td_queue *q;
    size_t n = 0;

    for (q = srv->sessions.next; q != &srv->sessions; q = q->next) {
        struct wss_sess *s = td_container_of(q, struct wss_sess, node);
        if (s->t && strcmp(s->user, user) == 0) {
            ws_tun_close(s->t, WSTAN_CLOSE_NORMAL, "user removed");
            n++;
        }
    }
    return n;
}

const struct td_server_ops ws_server_ops = {
    .each = wss_each,
    .kill = wss_kill,
    .kill_user = wss_kill_user,
    .create = wss_create,
    .set_users = wss_set_users,
    .start = wss_start,
    .stop_accepting = wss_stop_accepting,
    .drain = wss_drain,
    .close = wss_close,
    .active = wss_active,
    .free = wss_free,
    .stats = wss_stats,
};
