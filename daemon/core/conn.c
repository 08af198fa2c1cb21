/* The relay core: accepting a connection, its state machine, connecting to
 * the target, and moving bytes with bounded buffers and half-close. */
#include "core/conn.h"

#include "util/addr.h"
#include "crypto/crypto.h"
#include "core/dial.h"
#include "util/error.h"
#include "util/log.h"
#include "core/netutil.h"
#include "core/stats.h"
#include "proto/http.h"

#include <stdlib.h>
#include <string.h>

#define HS_INITIAL 4096

static const char *const conn_state_names[] = {
    [CONN_HANDSHAKE] = "HANDSHAKE",

    [CONN_CONNECTING] = "CONNECTING", [CONN_RELAY] = "RELAY",     [CONN_UDP] = "UDP",
    [CONN_REPLYING] = "REPLYING",     [CONN_CLOSING] = "CLOSING",
};

static void on_relay_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);

const char *conn_state_name(enum conn_state st)
{
    return st <= CONN_CLOSING ? conn_state_names[st] : "?";
}

void conn_set_state(struct conn *c, enum conn_state st)
{
    LOG_TRACE("conn", "#%llu [%s] -> [%s]", (unsigned long long)c->id, conn_state_name(c->state),
              conn_state_name(st));
    if (c->state == CONN_HANDSHAKE && st != CONN_HANDSHAKE)
        td_hs_end(&c->hs_slot);
    c->state = st;
}

const char *conn_end_reason(int err)
{
    switch (err) {
    case TD_ECONNREFUSED:
        return END_REFUSED;
    case TD_ETIMEDOUT:
        return END_CONNECT_TIMEOUT;
    case TD_EHOSTUNREACH:
    case TD_ENETUNREACH:
        return END_UNREACHABLE;
    case TD_EDNS:
        return END_DNS;
    case TD_EMFILE:
    case TD_ENOMEM:
        return END_NO_RESOURCES;
    case TD_EACCES:
        return END_NOT_ALLOWED;
    default:
        return END_ERROR;
    }
}

static struct conn *conn_of_handle(uv_handle_t *h)
{
    return h->data;
}

/* ---- handle lifetime --------------------------------------------------- */

/* The handshake buffer may hold a SOCKS5 password or a Proxy-Authorization
 * header: wiped, and given back to the handshake memory budget. */
static void conn_hs_free(struct conn *c)
{
    td_wipe(c->hs, c->hs_len);
    free(c->hs);
    td_hs_mem_give(c->d, c->hs_cap);
    c->hs = NULL;
    c->hs_len = c->hs_cap = c->hs_scanned = 0;
}

static void conn_free(struct conn *c)
{
    struct td_daemon *d = c->d;
    td_queue_remove(&c->node);
    d->n_conns--;
    d->stat_closed++;
    conn_hs_free(c);
    if (c->fe && c->fe->free_data)
        c->fe->free_data(c);
    cfg_free(c->cfg_owner);
    free(c);
    daemon_conn_gone(d);
}

void conn_on_handle_closed(uv_handle_t *h)
{
    struct conn *c = conn_of_handle(h);
    if ((void *)h != (void *)&c->client_tcp && (void *)h != (void *)&c->timer)
        free(h);
    if (--c->handles == 0)
        conn_free(c);
}

/* Close a handle owned by c, returning its descriptor to the budget. */
static void conn_close_handle(struct conn *c, uv_handle_t *h)
{
    uv_os_fd_t fd;
    if (uv_is_closing(h))
        return;
    if (uv_fileno(h, &fd) == 0 && c->d->fds_in_use > 0)
        c->d->fds_in_use--;
    uv_close(h, conn_on_handle_closed);
}

static void conn_count_fd(struct conn *c, uv_handle_t *h)
{
    uv_os_fd_t fd;
    if (uv_fileno(h, &fd) == 0)
        c->d->fds_in_use++;
}

static void conn_log_summary(struct conn *c)
{
    uint64_t ms = uv_now(c->d->loop) - c->start_ms;
    LOG_INFO("conn",
             "#%llu closed listener=%s client=%s target=%s route=%s up=%llu down=%llu "
             "duration=%llu.%03llus end=%s",
             (unsigned long long)c->id, c->lcfg->name, c->client_str,
             c->target_str[0] ? c->target_str : "-", c->lcfg->route,
             (unsigned long long)c->bytes_up, (unsigned long long)c->bytes_down,
             (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000), c->end_reason);
}

void conn_close(struct conn *c, const char *reason)
{
    if (c->state == CONN_CLOSING)
        return;
    c->end_reason = reason;
    conn_set_state(c, CONN_CLOSING);
    conn_log_summary(c);
    {
        struct td_conn_info ci;
        memset(&ci, 0, sizeof(ci));
        ci.user = c->user;
        ci.listener = c->lcfg->name;
        ci.route = c->target_str[0] ? c->lcfg->route : NULL; /* routed at all? */
        ci.bytes_in = c->bytes_down;
        ci.bytes_out = c->bytes_up;
        td_stats_closed(c->d, &ci, reason);
    }

    if (c->dial) {
        td_dial_cancel(c->dial);
        c->dial = NULL;
    }
    if (c->udp)
        udp_assoc_close(c);
    if (c->tops) {
        const struct conn_target_ops *ops = c->tops;
        c->tops = NULL;
        ops->close(c);
    }
    for (int s = 0; s < 2; s++)
        if (c->side[s].tcp)
            conn_close_handle(c, (uv_handle_t *)c->side[s].tcp);
    conn_close_handle(c, (uv_handle_t *)&c->timer);
}

/* ---- timers -------------------------------------------------------------- */

void conn_arm_timer(struct conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0);
}

void conn_touch(struct conn *c)
{
    c->last_active = uv_now(c->d->loop);
}

static uint64_t conn_idle_limit(const struct conn *c)
{
    const struct cfg_limits *lim = &c->d->cfg->limits;
    if (c->state == CONN_UDP)
        return lim->udp_timeout_ms;
    return c->lingering ? lim->linger_ms : lim->idle_timeout_ms;
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    uint64_t now = uv_now(c->d->loop), limit, idle;

    switch (c->state) {
    case CONN_HANDSHAKE:
        conn_close(c, END_HANDSHAKE_TIMEOUT);
        return;
    case CONN_REPLYING:
        /* The client does not read its reply: give up on it. */
        conn_close(c, c->close_after_write ? c->close_after_write : END_ERROR);
        return;
    case CONN_CONNECTING:
        c->fe->on_connect_failed(c, TD_ETIMEDOUT);
        return;
    case CONN_RELAY:
    case CONN_UDP:
        limit = conn_idle_limit(c);
        idle = now - c->last_active;
        if (idle >= limit) {
            conn_close(c, c->state == CONN_RELAY && c->lingering ? END_LINGER : END_IDLE);
            return;
        }
        conn_arm_timer(c, limit - idle);
        return;
    case CONN_CLOSING:
        return;
    }
}

/* ---- writing ------------------------------------------------------------- */

static void side_resume(struct conn *c, int s);
static void side_pause(struct conn *c, int s);
static void on_shutdown(uv_shutdown_t *req, int status);

static void conn_maybe_finish(struct conn *c)
{
    bool up_done, down_done;
    if (c->state != CONN_RELAY)
        return;
    /* A direction is done when its source sent EOF and the FIN reached the
     * other side, or (the upload) when the front-end ended it: an HTTP
     * proxy forwards one request. */
    up_done = (c->side[SIDE_CLIENT].eof && c->side[SIDE_TARGET].shut_done) || c->up_done;
    down_done = c->side[SIDE_TARGET].eof && c->side[SIDE_CLIENT].shut_done;
    if (up_done && down_done)
        conn_close(c, END_DONE);
}

static void on_write(uv_write_t *req, int status)
{
    struct td_chunk *ch = td_container_of(req, struct td_chunk, req);
    struct conn *c = ch->c;
    int s = ch->side;
    struct conn_side *sd = &c->side[s];
    uint64_t lwm;

    sd->pending -= ch->cap;
    chunk_put(ch);
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c, s == SIDE_CLIENT ? END_CLIENT_RESET : END_TARGET_RESET);
        return;
    }
    if (c->close_after_write && c->side[SIDE_CLIENT].pending == 0) {
        conn_close(c, c->close_after_write);
        return;
    }
    lwm = c->d->cfg->limits.buffer / 2;
    if (sd->pending <= lwm && c->side[1 - s].paused)
        side_resume(c, 1 - s);
}

/* Send len bytes at ch->data+off to side s, taking ownership of ch.  Tries a
 * direct write first; only what the kernel does not take is queued, and the
 * source is paused while the queue is above the high-water mark. */
static int conn_send(struct conn *c, int s, struct td_chunk *ch, size_t off, size_t len)
{
    struct conn_side *sd = &c->side[s];
    uv_buf_t b;
    int r;

    if (s == SIDE_TARGET && c->tops) {
        if (sd->shut) {
            chunk_put(ch);
            return 0;
        }
        r = c->tops->write(c, ch->data + off, len);
        chunk_put(ch);
        if (r < 0) {
            conn_close(c, END_TARGET_RESET);
            return r;
        }
        if (c->tops->pending(c) >= c->d->cfg->limits.buffer)
            side_pause(c, SIDE_CLIENT);
        return 0;
    }
    if (!sd->tcp || sd->shut) {
        chunk_put(ch);
        return 0;
    }
    if (sd->pending == 0) {
        b = uv_buf_init((char *)ch->data + off, (unsigned)len);
        r = uv_try_write((uv_stream_t *)sd->tcp, &b, 1);
        if (r == (int)len) {
            chunk_put(ch);
            return 0;
        }
        if (r > 0) {
            off += (size_t)r;
            len -= (size_t)r;
        } else if (r != UV_EAGAIN) {
            chunk_put(ch);
            conn_close(c, s == SIDE_CLIENT ? END_CLIENT_RESET : END_TARGET_RESET);
            return td_err_from_uv(r);
        }
    }
    ch->c = c;
    ch->side = s;
    b = uv_buf_init((char *)ch->data + off, (unsigned)len);
    r = uv_write(&ch->req, (uv_stream_t *)sd->tcp, &b, 1, on_write);
    if (r < 0) {
        chunk_put(ch);
        conn_close(c, s == SIDE_CLIENT ? END_CLIENT_RESET : END_TARGET_RESET);
        return td_err_from_uv(r);
    }
    sd->pending += ch->cap;
    if (sd->pending >= c->d->cfg->limits.buffer)
        side_pause(c, 1 - s);
    return 0;
}

int conn_write_copy(struct conn *c, int s, const void *data, size_t len)
{
    while (len > 0) {
        size_t n = len > TD_CHUNK_SIZE ? TD_CHUNK_SIZE : len;
        struct td_chunk *ch = chunk_get(n);
        int r;
        if (!ch) {
            conn_close(c, END_NO_RESOURCES);
            return TD_ENOMEM;
        }
        memcpy(ch->data, data, n);
        r = conn_send(c, s, ch, 0, n);
        if (r < 0)
            return r;
        data = (const uint8_t *)data + n;
        len -= n;
    }
    return 0;
}

void conn_reply_and_close(struct conn *c, const void *data, size_t len, const char *reason)
{
    if (c->state == CONN_REPLYING || c->state == CONN_CLOSING)
        return; /* one final reply only */
    conn_hs_stop(c);
    conn_set_state(c, CONN_REPLYING);
    if (conn_write_copy(c, SIDE_CLIENT, data, len) < 0 || c->state == CONN_CLOSING)
        return;
    if (c->side[SIDE_CLIENT].pending == 0) {
        conn_close(c, reason);
        return;
    }
    c->close_after_write = reason;
    conn_arm_timer(c, c->d->cfg->limits.linger_ms);
}

/* ---- reading --------------------------------------------------------------- */

void conn_alloc_chunk(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct td_chunk *ch = chunk_get(0);
    (void)h;
    (void)suggested;
    if (!ch) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)ch->data, TD_CHUNK_SIZE);
}

static int side_of_stream(struct conn *c, uv_stream_t *st)
{
    return (uv_stream_t *)c->side[SIDE_CLIENT].tcp == st ? SIDE_CLIENT : SIDE_TARGET;
}

static void side_resume(struct conn *c, int s)
{
    struct conn_side *sd = &c->side[s];
    sd->paused = false;
    if (sd->reading || sd->eof || c->state != CONN_RELAY)
        return;
    if (s == SIDE_CLIENT && c->up_done)
        return;
    if (s == SIDE_TARGET && c->tops) {
        sd->reading = true;
        c->tops->read_pause(c, false);
        return;
    }
    if (sd->tcp && uv_read_start((uv_stream_t *)sd->tcp, conn_alloc_chunk, on_relay_read) == 0)
        sd->reading = true;
}

/* Stop reading side s until what it sent has drained (backpressure). */
static void side_pause(struct conn *c, int s)
{
    struct conn_side *sd = &c->side[s];
    if (!sd->reading)
        return;
    sd->reading = false;
    sd->paused = true;
    if (s == SIDE_TARGET && c->tops)
        c->tops->read_pause(c, true);
    else if (sd->tcp)
        uv_read_stop((uv_stream_t *)sd->tcp);
}

static void side_eof(struct conn *c, int s)
{
    struct conn_side *o = &c->side[1 - s];
    c->side[s].eof = true;
    c->side[s].reading = false;
    if (!c->lingering) {
        c->lingering = true;
        conn_touch(c);
        conn_arm_timer(c, conn_idle_limit(c));
    }
    if (!o->shut && s == SIDE_CLIENT && c->tops) {
        o->shut = o->shut_done = true;
        c->tops->shutdown(c);
        if (c->state == CONN_CLOSING)
            return;
    } else if (!o->shut && o->tcp) {
        o->shut = true;
        o->shutreq.data = c;
        if (uv_shutdown(&o->shutreq, (uv_stream_t *)o->tcp, on_shutdown) != 0)
            o->shut_done = true;
    }
    conn_maybe_finish(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    int s = req == &c->side[SIDE_CLIENT].shutreq ? SIDE_CLIENT : SIDE_TARGET;
    if (c->state == CONN_CLOSING)
        return;
    c->side[s].shut_done = true;
    if (status < 0 && status != UV_ECANCELED) {
        conn_close(c, s == SIDE_CLIENT ? END_CLIENT_RESET : END_TARGET_RESET);
        return;
    }
    conn_maybe_finish(c);
}

void conn_upload_done(struct conn *c)
{
    struct conn_side *cl = &c->side[SIDE_CLIENT];

    c->up_done = true;
    if (cl->reading) {
        cl->reading = false;
        if (cl->tcp)
            uv_read_stop((uv_stream_t *)cl->tcp);
    }
    cl->paused = false; /* stopped for good, not paused */
}

/* Bytes that arrived from side s (nread > 0) in chunk ch, which is consumed. */
static void relay_in(struct conn *c, int s, struct td_chunk *ch, size_t nread)
{
    size_t off = 0, len = nread;

    conn_touch(c);
    if (c->fe_filter & (1u << s)) {
        int r;
        /* What the filter swallows still counts as received. */
        if (s == SIDE_TARGET)
            c->bytes_down += (uint64_t)nread;
        r = c->fe->filter(c, s, ch, &off, &len);
        if (r != 0)
            return; /* the filter took ch, or the conn is closing */
        if (c->state != CONN_RELAY || len == 0) {
            chunk_put(ch);
            conn_maybe_finish(c);
            return;
        }
        if (s == SIDE_CLIENT)
            c->bytes_up += (uint64_t)len;
    } else if (s == SIDE_CLIENT) {
        c->bytes_up += (uint64_t)nread;
    } else {
        c->bytes_down += (uint64_t)nread;
    }
    conn_send(c, 1 - s, ch, off, len);
    if (c->state == CONN_RELAY && c->up_done)
        conn_maybe_finish(c);
}

static void on_relay_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    int s = side_of_stream(c, st);
    struct td_chunk *ch = buf->base ? chunk_from_data(buf->base) : NULL;

    if (nread > 0 && c->state == CONN_RELAY) {
        relay_in(c, s, ch, (size_t)nread);
        return;
    }
    chunk_put(ch);
    if (nread == 0 || c->state == CONN_CLOSING)
        return;
    if (nread == UV_EOF) {
        side_eof(c, s);
        return;
    }
    if (nread == UV_ENOBUFS) {
        conn_close(c, END_NO_RESOURCES);
        return;
    }
    conn_close(c, s == SIDE_CLIENT ? END_CLIENT_RESET : END_TARGET_RESET);
}

/* ---- tunnel streams ------------------------------------------------------ */

void conn_target_connected(struct conn *c)
{
    if (c->state != CONN_CONNECTING)
        return;
    uv_timer_stop(&c->timer);
    c->fe->on_connected(c);
}

void conn_target_failed(struct conn *c, int err, const char *detail)
{
    if (c->state != CONN_CONNECTING)
        return;
    if (detail)
        td_log_safe(c->fail_detail, sizeof(c->fail_detail), detail, strlen(detail));
    c->fe->on_connect_failed(c, err);
}

void conn_target_data(struct conn *c, const uint8_t *p, size_t len)
{
    while (len > 0 && c->state == CONN_RELAY) {
        size_t n = len > TD_CHUNK_SIZE ? TD_CHUNK_SIZE : len;
        struct td_chunk *ch = chunk_get(0);
        if (!ch) {
            conn_close(c, END_NO_RESOURCES);
            return;
        }
        memcpy(ch->data, p, n);
        relay_in(c, SIDE_TARGET, ch, n);
        p += n;
        len -= n;
    }
}

void conn_target_eof(struct conn *c)
{
    if (c->state == CONN_RELAY && !c->side[SIDE_TARGET].eof)
        side_eof(c, SIDE_TARGET);
}

void conn_target_reset(struct conn *c, int err)
{
    (void)err;
    conn_close(c, END_TARGET_RESET);
}

void conn_target_drained(struct conn *c)
{
    if (c->state == CONN_RELAY && c->side[SIDE_CLIENT].paused)
        side_resume(c, SIDE_CLIENT);
}

/* ---- handshake buffer -------------------------------------------------- */

static void on_alloc_hs(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    if (c->hs_len == c->hs_cap && c->hs_cap < c->hs_max) {
        size_t ncap = c->hs_cap ? c->hs_cap * 2 : HS_INITIAL;
        uint8_t *n;
        if (ncap > c->hs_max)
            ncap = c->hs_max;
        /* Growth is charged to the daemon-wide handshake budget; without
         * room the buffer stays full and the read ends with UV_ENOBUFS. */
        if (td_hs_mem_take(c->d, ncap - c->hs_cap)) {
            n = realloc(c->hs, ncap);
            if (n) {
                c->hs = n;
                c->hs_cap = ncap;
            } else {
                td_hs_mem_give(c->d, ncap - c->hs_cap);
            }
        }
    }
    if (c->hs_len >= c->hs_cap) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)c->hs + c->hs_len, (unsigned)(c->hs_cap - c->hs_len));
}

static void on_hs_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    (void)buf;
    if (c->state == CONN_CLOSING)
        return;
    if (nread > 0) {
        c->hs_len += (size_t)nread;
        c->fe->on_data(c);
        return;
    }
    if (nread == 0)
        return;
    if (nread == UV_ENOBUFS) {
        /* The handshake buffer is full and the front-end still wants more:
         * the front-end decides (HTTP answers 431); this is the backstop,
         * and the end of a handshake the memory budget could not grow. */
        conn_close(c, c->hs_cap < c->hs_max ? END_NO_RESOURCES : END_PROTOCOL);
        return;
    }
    conn_close(c, nread == UV_EOF ? END_CLIENT_EOF : END_CLIENT_RESET);
}

void conn_hs_consume(struct conn *c, size_t n)
{
    if (n >= c->hs_len) {
        c->hs_len = 0;
        return;
    }
    memmove(c->hs, c->hs + n, c->hs_len - n);
    c->hs_len -= n;
}

void conn_hs_stop(struct conn *c)
{
    struct conn_side *cl = &c->side[SIDE_CLIENT];
    if (cl->reading) {
        uv_read_stop((uv_stream_t *)cl->tcp);
        cl->reading = false;
    }
}

/* ---- connecting -------------------------------------------------------- */

static void on_conn_dialed(void *arg, int status, uv_tcp_t *tcp, uint64_t elapsed_ms)
{
    struct conn *c = arg;
    (void)elapsed_ms;
    c->dial = NULL;
    if (c->state != CONN_CONNECTING) {
        if (tcp)
            td_tcp_close_free(c->d, tcp);
        return;
    }
    if (status != 0) {
        if (status == TD_EACCES)
            LOG_INFO("conn", "#%llu %s: target %s refused by listener rules",
                     (unsigned long long)c->id, c->client_str, c->target_str);
        else
            LOG_DEBUG("conn", "#%llu connect to %s: %s", (unsigned long long)c->id, c->target_str,
                      td_strerror(status));
        c->fe->on_connect_failed(c, status);
        return;
    }
    tcp->data = c;
    c->side[SIDE_TARGET].tcp = tcp;
    c->handles++;
    uv_timer_stop(&c->timer);
    c->fe->on_connected(c);
}

void conn_connect(struct conn *c, const char *host, uint16_t port)
{
    struct td_dial_opts opts;
    char raw[300];

    snprintf(c->target_host, sizeof(c->target_host), "%s", host);
    c->target_port = port;
    /* The host may come from the network: keep it printable in logs. */
    td_hostport_format(raw, sizeof(raw), host, port);
    td_log_safe(c->target_str, sizeof(c->target_str), raw, strlen(raw));

    conn_set_state(c, CONN_CONNECTING);
    if (strcmp(c->lcfg->route, "direct") != 0) {
        /* The tunnel's far end resolves names; the listener's rules can
         * still refuse an address given literally. */
        struct sockaddr_storage ss;
        if ((uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
             uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) &&
            !td_sockaddr_allowed(&c->lcfg->rules, (struct sockaddr *)&ss)) {
            c->fe->on_connect_failed(c, TD_EACCES);
            return;
        }
        daemon_tunnel_open(c->d, c, host, port);
        return;
    }
    uv_timer_stop(&c->timer); /* the dial has its own DNS and connect deadlines */
    opts.dns_timeout_ms = c->d->cfg->limits.dns_timeout_ms;
    opts.connect_timeout_ms = c->d->cfg->limits.connect_timeout_ms;
    opts.rules = &c->lcfg->rules;
    c->dial = td_dial_start(c->d, host, port, &opts, on_conn_dialed, c);
    if (!c->dial)
        c->fe->on_connect_failed(c, TD_ENOMEM);
}

/* ---- relay -------------------------------------------------------------- */

void conn_start_relay(struct conn *c)
{
    size_t off = 0;

    conn_set_state(c, CONN_RELAY);
    conn_touch(c);
    conn_arm_timer(c, c->d->cfg->limits.idle_timeout_ms);
    /* Handshake leftovers are the client's first relayed bytes: they go
     * the way a read would (through the front-end's filter, if any). */
    while (off < c->hs_len && c->state == CONN_RELAY && !c->up_done) {
        size_t n = c->hs_len - off > TD_CHUNK_SIZE ? TD_CHUNK_SIZE : c->hs_len - off;
        struct td_chunk *ch = chunk_get(0);
        if (!ch) {
            conn_close(c, END_NO_RESOURCES);
            return;
        }
        memcpy(ch->data, c->hs + off, n);
        off += n;
        relay_in(c, SIDE_CLIENT, ch, n);
    }
    conn_hs_free(c);
    if (c->state != CONN_RELAY)
        return;
    for (int s = 0; s < 2; s++) {
        c->side[s].reading = false;
        if (c->side[s].tcp)
            uv_read_stop((uv_stream_t *)c->side[s].tcp);
        if (!c->side[s].paused)
            side_resume(c, s);
        if (c->state != CONN_RELAY)
            return;
    }
    conn_maybe_finish(c);
}

bool conn_check_user(struct conn *c, const char *user, size_t ulen, const char *pass, size_t plen)
{
    /* The users of the config the conn started with: a reload meanwhile
     * cannot change who it is checked against half-way. */
    const struct td_config *cfg = c->cfg_owner;
    uintptr_t who = 0;
    /* Every user is compared, with hashed secrets, and the match is picked
     * with a mask, so that neither the time nor the position of a match
     * says which names exist. */
    for (size_t i = 0; i < cfg->n_users; i++) {
        const struct cfg_user *u = &cfg->users[i];
        bool name_ok = td_ct_secret_eq(u->name, strlen(u->name), user, ulen);
        bool pass_ok = u->password && td_ct_secret_eq(u->password, strlen(u->password), pass, plen);
        uintptr_t take = (uintptr_t)0 - (uintptr_t)(name_ok & pass_ok);
        who = (who & ~take) | ((uintptr_t)u->name & take);
    }
    c->user = (const char *)who;
    return who != 0;
}

/* ---- accept --------------------------------------------------------------- */

static void conn_evict(struct td_hs_slot *s)
{
    struct conn *c = td_container_of(s, struct conn, hs_slot);
    LOG_DEBUG("conn", "#%llu %s: handshake closed to make room for a new one",
              (unsigned long long)c->id, c->client_str);
    conn_close(c, END_EVICTED);
}

int conn_accept(struct td_listener *l)
{
    struct td_daemon *d = l->d;
    struct conn *c = calloc(1, sizeof(*c));
    struct sockaddr_storage ss;
    int namelen = sizeof(ss);
    char ip[64];

    if (!c) {
        LOG_ERROR("conn", "out of memory accepting on %s", l->cfg->name);
        return TD_ENOMEM; /* left in the backlog; the accept policy retries */
    }
    c->d = d;
    c->l = l;
    c->lcfg = l->cfg;
    c->cfg_owner = cfg_ref(l->owner);
    c->id = ++d->next_conn_id;
    c->start_ms = uv_now(d->loop);
    c->hs_max = HTTP_DEFAULT_MAX_HEAD + 1024;
    td_queue_insert_tail(&d->conns, &c->node);
    d->n_conns++;
    d->stat_accepted++;

    uv_tcp_init(d->loop, &c->client_tcp);
    c->client_tcp.data = c;
    c->side[SIDE_CLIENT].tcp = &c->client_tcp;
    c->handles++;
    uv_timer_init(d->loop, &c->timer);
    c->timer.data = c;
    c->handles++;

    if (td_acceptor_accept(&l->acc, &c->client_tcp) != 0) {
        snprintf(c->client_str, sizeof(c->client_str), "-");
        conn_close(c, END_ERROR);
        return 0;
    }
    conn_count_fd(c, (uv_handle_t *)&c->client_tcp);
    if (uv_tcp_getpeername(&c->client_tcp, (struct sockaddr *)&ss, &namelen) == 0) {
        uint16_t port = 0;
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(s6, ip, sizeof(ip));
            port = ntohs(s6->sin6_port);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            uv_ip4_name(s4, ip, sizeof(ip));
            port = ntohs(s4->sin_port);
        }
        td_hostport_format(c->client_str, sizeof(c->client_str), ip, port);
    } else {
        snprintf(c->client_str, sizeof(c->client_str), "-");
    }
    uv_tcp_nodelay(&c->client_tcp, 1);
    uv_tcp_keepalive(&c->client_tcp, 1, 60);
    LOG_DEBUG("conn", "#%llu accepted on %s from %s", (unsigned long long)c->id, l->cfg->name,
              c->client_str);

    c->fe = d->kinds->frontends[l->cfg->type];
    if (l->cfg->type == CFG_LISTENER_FORWARD) {
        /* No handshake: the target is fixed. */
        conn_connect(c, l->cfg->target.host, l->cfg->target.port);
        return 0;
    }
    td_hs_begin(&l->acc, &c->hs_slot, conn_evict);
    conn_arm_timer(c, d->cfg->limits.handshake_timeout_ms);
    if (uv_read_start((uv_stream_t *)&c->client_tcp, on_alloc_hs, on_hs_read) == 0)
        c->side[SIDE_CLIENT].reading = true;
    else
        conn_close(c, END_CLIENT_RESET);
    return 0;
}
