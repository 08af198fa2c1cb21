/* jProxy v3 server (see jp_server.h).
 *
 * A tunnel goes HELLO -> TOKEN -> UP -> CLOSING.  Once UP, the socket
 * belongs to a struct jp_link; the tunnel keeps one table of TCP streams and
 * one of UDP associations by id (separate id spaces), and closes all of them
 * when the tunnel goes (the Java server leaks them).
 *
 * Lifetime: a tunnel counts its references (the socket or the link, the
 * timer, and every stream and association still alive); the last one frees
 * it.  A stream lives until its target socket is closed, its dial is over,
 * the link has forgotten it and it no longer holds its id. */
#include "jproxy/jp_server.h"

#include "util/addr.h"
#include "core/chunk.h"
#include "core/conn.h"
#include "core/dial.h"
#include "crypto/crypto.h"
#include "util/error.h"
#include "jproxy/jp_link.h"
#include "proto/jproxy_keys.h"
#include "core/listener.h"
#include "util/log.h"
#include "core/netutil.h"
#include "config/state.h"
#include "core/resolve.h"
#include "core/stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JPS_KEEPALIVE 60   /* seconds */
#define JPS_SWEEP_MS  1000 /* UDP idle, resolver deadlines, lingering streams */

/* ---- types ------------------------------------------------------------------------ */

struct jps_user {
    struct jp_user u;
    char label[128]; /* for logs: the config's user name or the file's */
};

struct jp_server {
    struct td_daemon *d;
    const struct cfg_server *cfg;
    struct td_acceptor acc;
    struct jps_user **users;
    size_t n_users;
    struct td_queue tunnels;
    uint32_t n_tunnels;
    uint64_t next_id;
};

enum jpt_state {
    JPT_HELLO = 0,
    JPT_TOKEN,
    JPT_UP,
    JPT_CLOSING,
};

static const char *const jpt_state_names[] = {
    [JPT_HELLO] = "HELLO",
    [JPT_TOKEN] = "TOKEN",
    [JPT_UP] = "UP",
    [JPT_CLOSING] = "CLOSING",
};

struct jps_tunnel {
    struct td_queue node;
    struct jp_server *srv;
    struct td_daemon *d;
    uint64_t id;
    enum jpt_state state;
    int refs;
    uv_tcp_t *tcp; /* until the link takes it */
    uv_timer_t timer;
    uv_shutdown_t shutreq;
    struct td_hs_slot hs_slot; /* counted while in HELLO or TOKEN */
    uint8_t hs[JP_HELLO_LEN + JP_TOKEN_LEN];
    size_t hs_len;
    bool extensions;
    bool link_live; /* jp_link_start succeeded and on_closed has not run */
    struct jp_link link;
    /* Who logged in, copied: the control plane may swap the user table
     * while the tunnel runs.  (As struct jps_user's label.) */
    char user[128];
    struct jp_idmap streams, assocs;
    struct td_queue all_streams, all_assocs;
    uint32_t n_streams, n_assocs; /* alive, counted against max_streams */
    uint64_t streams_total;
    uint64_t up, down; /* payload bytes: from the client, to the client */
    uint64_t start_ms;
    const char *end_reason;
    bool bad_logged;
    char peer[64];
    char label[160]; /* "server NAME tunnel #ID peer=IP:PORT" */
};

enum jpss_state {
    JPSS_CONNECTING = 0,
    JPSS_OPEN,
    JPSS_CLOSING,
};

struct jps_stream {
    struct jp_link_stream ls;
    struct td_queue node; /* t->all_streams */
    struct jps_tunnel *t;
    enum jpss_state st;
    bool in_table; /* holds its id in t->streams */
    bool linked;   /* the link may know it: detach or on_finished pending */
    struct td_dial *dial;
    uv_tcp_t *tcp;
    bool reading, paused;
    bool target_eof;    /* Disconnect queued after the target's data */
    bool client_done;   /* Disconnect received: close once the writes drained */
    uint64_t to_target; /* bytes in uv_write toward the target */
    uint64_t last_progress;
    uint64_t last_active; /* payload moved either way: limits.idle_timeout */
    uint8_t *early;       /* Packets that came before the connect completed */
    size_t early_len;
    struct td_chunk *held; /* target bytes the link's queue did not take */
    size_t held_off, held_len;
    uint64_t up, down, start_ms;
    const char *end;
    char target[300];
};

enum jpa_state {
    JPA_RESOLVING = 0,
    JPA_OPEN,
    JPA_CLOSING,
};

struct jps_assoc {
    struct td_queue node; /* t->all_assocs */
    struct jps_tunnel *t;
    uint16_t id;
    enum jpa_state st;
    bool in_table;
    struct td_resolve *rs; /* the name lookup in progress */
    uint16_t port;
    bool udp_open;
    uv_udp_t udp;
    uint64_t deadline; /* resolver */
    uint64_t last_active;
};

/* Write requests toward a target: freed by their callback. */
struct jps_twrite {
    uv_write_t req;
    struct jps_stream *s;
    size_t len;
    uint8_t data[];
};

/* The handshake replies, written before the link takes the socket. */
struct jps_raw {
    uv_write_t req;
    uint8_t data[];
};

static void jpt_close(struct jps_tunnel *t, const char *reason);
static void jpt_unref(struct jps_tunnel *t);
static void jpt_arm_sweep(struct jps_tunnel *t);
static void jpss_maybe_free(struct jps_stream *s);
static void jpa_close(struct jps_assoc *a, bool tell_client);
static void jps_note_refused(struct jps_tunnel *t, const char *reason);

/* Datagrams are handled inside the receive callback, so one buffer serves
 * every association (the loop is single-threaded). */
static uint8_t jps_udp_buf[64 * 1024];

/* ---- helpers ------------------------------------------------------------------------ */

static void jps_count_fd(struct td_daemon *d, uv_handle_t *h)
{
    uv_os_fd_t fd;
    if (uv_fileno(h, &fd) == 0)
        d->fds_in_use++;
}

static void jps_uncount_fd(struct td_daemon *d, uv_handle_t *h)
{
    uv_os_fd_t fd;
    if (uv_fileno(h, &fd) == 0 && d->fds_in_use > 0)
        d->fds_in_use--;
}

static void jps_on_raw_written(uv_write_t *req, int status)
{
    (void)status;
    free(td_container_of(req, struct jps_raw, req));
}

static int jps_send_raw(uv_tcp_t *tcp, const uint8_t *p, size_t len)
{
    struct jps_raw *w = malloc(sizeof(*w) + len);
    uv_buf_t b;
    int r;

    if (!w)
        return TD_ENOMEM;
    memcpy(w->data, p, len);
    b = uv_buf_init((char *)w->data, (unsigned)len);
    r = uv_write(&w->req, (uv_stream_t *)tcp, &b, 1, jps_on_raw_written);
    if (r < 0) {
        free(w);
        return td_err_from_uv(r);
    }
    return 0;
}

static void jpt_set_state(struct jps_tunnel *t, enum jpt_state st)
{
    LOG_TRACE("jproxy", "%s [%s] -> [%s]", t->label, jpt_state_names[t->state],
              jpt_state_names[st]);
    if (st == JPT_UP || st == JPT_CLOSING)
        td_hs_end(&t->hs_slot);
    t->state = st;
}

/* Bad input is logged once per tunnel, with the peer address. */
static void jpt_bad_input(struct jps_tunnel *t, const char *fmt, ...) TD_PRINTF(2, 3);

static void jpt_bad_input(struct jps_tunnel *t, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (t->bad_logged)
        return;
    t->bad_logged = true;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    LOG_INFO("jproxy", "%s: %s", t->label, msg);
}

/* ---- TCP streams --------------------------------------------------------------------- */

static void jpt_reply_connect(struct jps_tunnel *t, uint16_t id, uint8_t status, uint16_t time_ms)
{
    struct jp_msg m;
    if (!t->link_live)
        return;
    memset(&m, 0, sizeof(m));
    m.type = JP_MSG_TCP_CONNECT_REPLY;
    m.id = id;
    m.status = status;
    m.time_ms = time_ms;
    jp_link_send_msg(&t->link, &m);
}

static void jpss_release_id(struct jps_stream *s)
{
    if (!s->in_table)
        return;
    if (jp_idmap_get(&s->t->streams, s->ls.id) == s)
        jp_idmap_del(&s->t->streams, s->ls.id);
    s->in_table = false;
}

static void jpss_unlink(struct jps_stream *s)
{
    if (!s->linked)
        return;
    s->linked = false;
    if (s->t->link_live)
        jp_link_stream_detach(&s->t->link, &s->ls);
}

static void jpss_read_stop(struct jps_stream *s)
{
    if (s->reading) {
        uv_read_stop((uv_stream_t *)s->tcp);
        s->reading = false;
    }
}

static void jpss_on_target_closed(uv_handle_t *h)
{
    struct jps_stream *s = h->data;
    free(h);
    s->tcp = NULL;
    jpss_maybe_free(s);
}

static void jpss_close_target(struct jps_stream *s)
{
    if (!s->tcp || uv_is_closing((uv_handle_t *)s->tcp))
        return;
    jpss_read_stop(s);
    jps_uncount_fd(s->t->d, (uv_handle_t *)s->tcp);
    uv_close((uv_handle_t *)s->tcp, jpss_on_target_closed);
}

static void jpss_maybe_free(struct jps_stream *s)
{
    struct jps_tunnel *t = s->t;
    uint64_t ms;

    if (s->st != JPSS_CLOSING || s->tcp || s->dial || s->linked || s->in_table)
        return;
    ms = uv_now(t->d->loop) - s->start_ms;
    LOG_DEBUG("jproxy",
              "%s stream %u closed target=%s up=%llu down=%llu duration=%llu.%03llus end=%s",
              t->label, s->ls.id, s->target, (unsigned long long)s->up, (unsigned long long)s->down,
              (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000),
              s->end ? s->end : END_DONE);
    {
        struct td_conn_info ci;
        memset(&ci, 0, sizeof(ci));
        ci.user = t->user[0] ? t->user : NULL;
        ci.server = t->srv->cfg->name;
        ci.bytes_in = s->down;
        ci.bytes_out = s->up;
        td_stats_closed(t->d, &ci, s->end ? s->end : END_DONE);
    }
    td_queue_remove(&s->node);
    t->n_streams--;
    free(s->early);
    chunk_put(s->held);
    free(s);
    jpt_unref(t);
}

/* Forget the stream now: no Disconnect, target closed at once (a Connect
 * reusing its id, a failed connect, the tunnel going away). */
static void jpss_drop(struct jps_stream *s, const char *end)
{
    if (!s->end || s->st != JPSS_CLOSING)
        s->end = end;
    s->st = JPSS_CLOSING;
    jpss_release_id(s);
    jpss_unlink(s);
    if (s->dial) {
        td_dial_cancel(s->dial);
        s->dial = NULL;
    }
    jpss_close_target(s);
    jpss_maybe_free(s);
}

/* The stream cannot go on: tell the client (Disconnect) and drop it. */
static void jpss_reset(struct jps_stream *s, const char *end)
{
    struct jps_tunnel *t = s->t;
    bool tell = s->in_table && !s->ls.finished && t->link_live;
    uint16_t id = s->ls.id;

    jpss_drop(s, end);
    if (tell) {
        struct jp_msg m;
        memset(&m, 0, sizeof(m));
        m.type = JP_MSG_TCP_DISCONNECT;
        m.id = id;
        m.reason = JP_REASON_RESET;
        jp_link_send_msg(&t->link, &m);
    }
}

/* The target reached EOF or failed: Disconnect after the queued data; the
 * stream keeps its id until the Disconnect is out (on_finished). */
static void jpss_target_done(struct jps_stream *s, int err)
{
    struct jps_tunnel *t = s->t;

    if (s->st != JPSS_OPEN)
        return;
    s->st = JPSS_CLOSING;
    s->target_eof = true;
    s->end = err ? END_TARGET_RESET : END_DONE;
    jpss_read_stop(s);
    chunk_put(s->held);
    s->held = NULL;
    if (err)
        LOG_DEBUG("jproxy", "%s stream %u: target %s: %s", t->label, s->ls.id, s->target,
                  td_strerror(err));
    if (s->linked && t->link_live)
        jp_link_stream_finish(&t->link, &s->ls);
    /* Writes already queued toward the target still go out after an EOF. */
    if (err || s->to_target == 0)
        jpss_close_target(s);
}

/* Tell the link how much of the client's data this stream holds.  Past
 * JP_LINK_RECV_CAP it stops reading the tunnel, so that a slow target slows
 * the client down (a Java client has no window) instead of growing memory
 * or costing the stream. */
static void jpss_note_held(struct jps_stream *s)
{
    if (s->linked && s->t->link_live)
        jp_link_stream_held(&s->t->link, &s->ls, (size_t)s->to_target + s->early_len);
}

/* The link's pause keeps a stream under JP_LINK_RECV_MAX; past it something
 * is broken, and the stream goes rather than the memory. */
static bool jpss_over_max(struct jps_stream *s, size_t more)
{
    if (s->to_target + s->early_len + more <= JP_LINK_RECV_MAX)
        return false;
    LOG_WARN("jproxy", "%s stream %u: %llu bytes held for target %s, past the limit; resetting it",
             s->t->label, s->ls.id, (unsigned long long)(s->to_target + s->early_len + more),
             s->target);
    jpss_reset(s, END_NO_RESOURCES);
    return true;
}

static void jpss_on_target_written(uv_write_t *req, int status)
{
    struct jps_twrite *w = td_container_of(req, struct jps_twrite, req);
    struct jps_stream *s = w->s;
    struct jps_tunnel *t = s->t;
    size_t n = w->len;

    s->to_target -= n;
    free(w);
    jpss_note_held(s);
    if (status < 0) {
        if (status != UV_ECANCELED && s->st == JPSS_OPEN)
            jpss_target_done(s, td_err_from_uv(status));
        else if (s->st == JPSS_CLOSING)
            jpss_close_target(s);
        return;
    }
    s->last_progress = s->last_active = uv_now(t->d->loop);
    if (s->linked && t->link_live)
        jp_link_stream_consumed(&t->link, &s->ls, n);
    if (s->st == JPSS_CLOSING && s->to_target == 0)
        jpss_close_target(s);
}

/* Send client bytes to the target: straight to the kernel when nothing is
 * queued, else through a write request. */
static void jpss_target_write(struct jps_stream *s, const uint8_t *p, size_t len)
{
    struct jps_tunnel *t = s->t;
    struct jps_twrite *w;
    uv_buf_t b;
    int r;

    if (jpss_over_max(s, len))
        return;
    if (s->to_target == 0) {
        b = uv_buf_init((char *)p, (unsigned)len);
        r = uv_try_write((uv_stream_t *)s->tcp, &b, 1);
        if (r > 0) {
            s->last_progress = s->last_active = uv_now(t->d->loop);
            if (s->linked && t->link_live)
                jp_link_stream_consumed(&t->link, &s->ls, (size_t)r);
            p += r;
            len -= (size_t)r;
            if (len == 0)
                return;
        } else if (r != UV_EAGAIN) {
            jpss_target_done(s, td_err_from_uv(r));
            return;
        }
    }
    w = malloc(sizeof(*w) + len);
    if (!w) {
        jpss_reset(s, END_NO_RESOURCES);
        return;
    }
    memcpy(w->data, p, len);
    w->s = s;
    w->len = len;
    b = uv_buf_init((char *)w->data, (unsigned)len);
    r = uv_write(&w->req, (uv_stream_t *)s->tcp, &b, 1, jpss_on_target_written);
    if (r < 0) {
        free(w);
        jpss_target_done(s, td_err_from_uv(r));
        return;
    }
    s->to_target += len;
    jpss_note_held(s);
}

static void jpss_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct td_chunk *ch = chunk_get(0);
    (void)h;
    (void)suggested;
    *buf = ch ? uv_buf_init((char *)ch->data, (unsigned)ch->cap) : uv_buf_init(NULL, 0);
}

static void jpss_on_target_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void jpss_read_start(struct jps_stream *s)
{
    if (s->reading || s->paused || !s->tcp || s->st != JPSS_OPEN)
        return;
    if (uv_read_start((uv_stream_t *)s->tcp, jpss_alloc, jpss_on_target_read) == 0)
        s->reading = true;
    else
        jpss_target_done(s, TD_EIO);
}

static void jpss_on_target_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct jps_stream *s = st->data;
    struct jps_tunnel *t = s->t;
    struct td_chunk *ch = buf->base ? chunk_from_data(buf->base) : NULL;
    size_t n;

    if (nread > 0 && s->st == JPSS_OPEN) {
        s->last_active = uv_now(t->d->loop);
        s->down += (uint64_t)nread;
        t->down += (uint64_t)nread;
        n = jp_link_stream_write(&t->link, &s->ls, ch->data, (size_t)nread);
        if (s->st != JPSS_OPEN) {
            chunk_put(ch);
            return;
        }
        if (n < (size_t)nread) {
            /* Keep the rest (no copy) and wait for on_drain. */
            s->held = ch;
            s->held_off = n;
            s->held_len = (size_t)nread - n;
            s->paused = true;
            jpss_read_stop(s);
            return;
        }
        chunk_put(ch);
        if (jp_link_stream_queued(&s->ls) >= JP_LINK_STREAM_CAP) {
            s->paused = true;
            jpss_read_stop(s);
        }
        return;
    }
    chunk_put(ch);
    if (nread == 0 || s->st != JPSS_OPEN)
        return;
    jpss_target_done(s, nread == UV_EOF ? 0 : td_err_from_uv((int)nread));
}

static void jpss_on_dialed(void *arg, int status, uv_tcp_t *tcp, uint64_t elapsed_ms)
{
    struct jps_stream *s = arg;
    struct jps_tunnel *t = s->t;

    s->dial = NULL;
    if (s->st != JPSS_CONNECTING) {
        if (tcp)
            td_tcp_close_free(t->d, tcp);
        jpss_maybe_free(s);
        return;
    }
    if (status != 0) {
        uint16_t time_ms = status == TD_EDNS ? JP_TIME_UNKNOWN : jp_time_clamp(elapsed_ms);
        uint8_t st = jp_connect_status_from_err(status);
        if (status == TD_EACCES) {
            LOG_INFO("jproxy", "%s stream %u: target %s refused by the server's rules", t->label,
                     s->ls.id, s->target);
            if (t->extensions)
                st = JP_CONNECT_NOT_ALLOWED;
        } else {
            LOG_DEBUG("jproxy", "%s stream %u: connect to %s: %s", t->label, s->ls.id, s->target,
                      td_strerror(status));
        }
        /* After a failure status the id is free on both sides. */
        jpt_reply_connect(t, s->ls.id, st, time_ms);
        jpss_drop(s, conn_end_reason(status));
        return;
    }
    tcp->data = s;
    s->tcp = tcp;
    s->st = JPSS_OPEN;
    s->last_progress = s->last_active = uv_now(t->d->loop);
    jpt_arm_sweep(t); /* the stream's idle timeout */
    uv_tcp_nodelay(tcp, 1);
    uv_tcp_keepalive(tcp, 1, JPS_KEEPALIVE);
    jpt_reply_connect(t, s->ls.id, JP_CONNECT_OK, jp_time_clamp(elapsed_ms));
    if (s->early_len > 0) {
        uint8_t *early = s->early;
        size_t len = s->early_len;
        s->early = NULL;
        s->early_len = 0;
        jpss_target_write(s, early, len);
        free(early);
        if (s->st != JPSS_OPEN)
            return;
        jpss_note_held(s); /* early_len no longer counts, whatever the kernel took */
    }
    jpss_read_start(s);
}

static void jpt_tcp_connect(struct jps_tunnel *t, const struct jp_msg *m)
{
    struct jps_stream *old = jp_idmap_get(&t->streams, m->id), *s;
    struct td_dial_opts opts;
    char host[256], raw[300];

    if (old) {
        /* As the Java server does: the old stream goes without a word. */
        jpss_drop(old, "replaced");
    }
    if (t->n_streams >= t->srv->cfg->max_streams) {
        jpt_reply_connect(t, m->id, JP_CONNECT_LIMIT, JP_TIME_UNKNOWN);
        return;
    }
    s = calloc(1, sizeof(*s));
    if (!s || jp_idmap_set(&t->streams, m->id, s) != 0) {
        free(s);
        jpt_reply_connect(t, m->id, JP_CONNECT_FAILURE, JP_TIME_UNKNOWN);
        return;
    }
    jp_link_stream_init(&s->ls, m->id);
    jp_link_stream_attach(&t->link, &s->ls);
    s->t = t;
    s->st = JPSS_CONNECTING;
    s->in_table = true;
    s->linked = true;
    s->start_ms = uv_now(t->d->loop);
    td_queue_insert_tail(&t->all_streams, &s->node);
    t->n_streams++;
    t->streams_total++;
    t->refs++;

    if (m->addr.atyp == JP_ATYP_IPV4)
        td_ip_format(host, sizeof(host), m->addr.ip, 4);
    else if (m->addr.atyp == JP_ATYP_IPV6)
        td_ip_format(host, sizeof(host), m->addr.ip, 16);
    else
        snprintf(host, sizeof(host), "%s", m->addr.host);
    td_hostport_format(raw, sizeof(raw), host, m->addr.port);
    td_log_safe(s->target, sizeof(s->target), raw, strlen(raw));
    LOG_DEBUG("jproxy", "%s stream %u: connect to %s", t->label, s->ls.id, s->target);

    opts.dns_timeout_ms = t->d->cfg->limits.dns_timeout_ms;
    opts.connect_timeout_ms = t->d->cfg->limits.connect_timeout_ms;
    opts.rules = &t->srv->cfg->rules;
    s->dial = td_dial_start(t->d, host, m->addr.port, &opts, jpss_on_dialed, s);
    if (!s->dial) {
        jpt_reply_connect(t, m->id, JP_CONNECT_FAILURE, JP_TIME_UNKNOWN);
        jpss_drop(s, END_NO_RESOURCES);
    }
}

static void jpt_tcp_packet(struct jps_tunnel *t, struct jps_stream *s, const struct jp_msg *m)
{
    switch (s->st) {
    case JPSS_CONNECTING:
        /* Tolerated, as by the Java server: written once connected. */
        if (jpss_over_max(s, m->data_len))
            return;
        if (m->data_len > 0) {
            uint8_t *nb = realloc(s->early, s->early_len + m->data_len);
            if (!nb) {
                jpss_reset(s, END_NO_RESOURCES);
                return;
            }
            memcpy(nb + s->early_len, m->data, m->data_len);
            s->early = nb;
            s->early_len += m->data_len;
            jpss_note_held(s);
        }
        break;
    case JPSS_OPEN:
        if (m->data_len > 0) {
            s->last_active = uv_now(t->d->loop);
            jpss_target_write(s, m->data, m->data_len);
        }
        break;
    case JPSS_CLOSING:
        return; /* the target is finished; the client learns it from our Disconnect */
    }
    s->up += m->data_len;
    t->up += m->data_len;
}

/* Disconnect from the client: the queued data still goes to the target,
 * then it is closed; the id is free at once. */
static void jpt_tcp_disconnect(struct jps_tunnel *t, struct jps_stream *s)
{
    jpss_release_id(s);
    jpss_unlink(s);
    s->client_done = true;
    if (s->st != JPSS_CLOSING)
        s->end = END_CLIENT_EOF;
    if (s->st == JPSS_CONNECTING && s->dial) {
        td_dial_cancel(s->dial);
        s->dial = NULL;
    }
    s->st = JPSS_CLOSING;
    chunk_put(s->held);
    s->held = NULL;
    if (s->tcp) {
        jpss_read_stop(s);
        if (s->to_target == 0)
            jpss_close_target(s);
        else
            jpt_arm_sweep(t); /* bounded by the idle timeout */
    }
    jpss_maybe_free(s);
}

/* ---- UDP associations (extension) --------------------------------------------------- */

static void jpt_reply_assoc(struct jps_tunnel *t, uint16_t id, uint8_t status, uint16_t port)
{
    struct jp_msg m;
    if (!t->link_live)
        return;
    memset(&m, 0, sizeof(m));
    m.type = JP_MSG_UDP_ASSOCIATE_REPLY;
    m.id = id;
    m.status = status;
    m.local_port = port;
    jp_link_send_msg(&t->link, &m);
}

static void jpa_maybe_free(struct jps_assoc *a)
{
    struct jps_tunnel *t = a->t;
    if (a->st != JPA_CLOSING || a->udp_open || a->in_table)
        return;
    td_queue_remove(&a->node);
    t->n_assocs--;
    free(a);
    jpt_unref(t);
}

static void jpa_on_udp_closed(uv_handle_t *h)
{
    struct jps_assoc *a = h->data;
    a->udp_open = false;
    jpa_maybe_free(a);
}

static void jpa_close(struct jps_assoc *a, bool tell_client)
{
    struct jps_tunnel *t = a->t;

    if (a->st == JPA_CLOSING)
        return;
    a->st = JPA_CLOSING;
    if (a->in_table) {
        if (jp_idmap_get(&t->assocs, a->id) == a)
            jp_idmap_del(&t->assocs, a->id);
        a->in_table = false;
        if (tell_client && t->link_live) {
            struct jp_msg m;
            memset(&m, 0, sizeof(m));
            m.type = JP_MSG_UDP_DISSOCIATE;
            m.id = a->id;
            jp_link_send_msg(&t->link, &m);
        }
    }
    if (a->udp_open && !uv_is_closing((uv_handle_t *)&a->udp)) {
        uv_udp_recv_stop(&a->udp);
        jps_uncount_fd(t->d, (uv_handle_t *)&a->udp);
        uv_close((uv_handle_t *)&a->udp, jpa_on_udp_closed);
    }
    td_resolve_cancel(a->rs);
    a->rs = NULL;
    jpa_maybe_free(a);
}

static void jpa_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)jps_udp_buf, sizeof(jps_udp_buf));
}

static void jpa_on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags)
{
    struct jps_assoc *a = u->data;
    struct jps_tunnel *t = a->t;
    struct jp_msg m;

    if (a->st != JPA_OPEN || nread < 0 || (nread == 0 && !addr))
        return; /* errors (an ICMP unreachable, say) do not end a UDP flow */
    if ((flags & UV_UDP_PARTIAL) || nread > JP_PACKET_DATA_MAX)
        return; /* one datagram is one UDP Packet: too big ones are dropped */
    memset(&m, 0, sizeof(m));
    m.type = JP_MSG_UDP_PACKET;
    m.id = a->id;
    m.data = (const uint8_t *)buf->base;
    m.data_len = (uint16_t)nread;
    if (!t->link_live || jp_link_send_msg(&t->link, &m) != 0)
        return; /* the tunnel is congested: drop, as UDP may */
    a->last_active = uv_now(t->d->loop);
    t->down += (uint64_t)nread;
}

static uint8_t jpa_status_from_uv(int r)
{
    switch (r) {
    case UV_EADDRINUSE:
    case UV_EACCES:
        return JP_UDP_PORT_UNAVAILABLE;
    case UV_ENETUNREACH:
    case UV_EHOSTUNREACH:
        return JP_UDP_NETUNREACH;
    default:
        return JP_UDP_FAILURE;
    }
}

/* Bind a UDP socket of the remote's family to local_port, connect it to the
 * remote, and answer the Associate. */
static void jpa_open(struct jps_assoc *a, const struct sockaddr *remote)
{
    struct jps_tunnel *t = a->t;
    struct sockaddr_storage any, bound;
    int r, len = sizeof(bound);

    if (!td_sockaddr_allowed(&t->srv->cfg->rules, remote)) {
        char shown[80];
        LOG_INFO("jproxy", "%s association %u: destination %s refused by the server's rules",
                 t->label, a->id, td_sockaddr_str(remote, shown, sizeof(shown)));
        jpt_reply_assoc(t, a->id, JP_UDP_NOT_ALLOWED, 0);
        jpa_close(a, false);
        return;
    }
    if (!daemon_fds_available(t->d, 1)) {
        jpt_reply_assoc(t, a->id, JP_UDP_FAILURE, 0);
        jpa_close(a, false);
        return;
    }
    /* The client's local-port hint is ignored: which port of this host a
     * tunnel user binds is not theirs to choose (a privileged or a
     * service's port, say).  An ephemeral port is always used. */
    memset(&any, 0, sizeof(any));
    if (remote->sa_family == AF_INET6)
        r = uv_ip6_addr("::", 0, (struct sockaddr_in6 *)&any);
    else
        r = uv_ip4_addr("0.0.0.0", 0, (struct sockaddr_in *)&any);
    if (r == 0)
        r = uv_udp_init_ex(t->d->loop, &a->udp, remote->sa_family);
    if (r < 0) {
        jpt_reply_assoc(t, a->id, JP_UDP_FAILURE, 0);
        jpa_close(a, false);
        return;
    }
    a->udp.data = a;
    a->udp_open = true;
    jps_count_fd(t->d, (uv_handle_t *)&a->udp);
    r = uv_udp_bind(&a->udp, (const struct sockaddr *)&any, 0);
    if (r == 0)
        r = uv_udp_connect(&a->udp, remote);
    if (r == 0)
        r = uv_udp_getsockname(&a->udp, (struct sockaddr *)&bound, &len);
    if (r == 0)
        r = uv_udp_recv_start(&a->udp, jpa_alloc, jpa_on_recv);
    if (r < 0) {
        LOG_DEBUG("jproxy", "%s association %u: %s", t->label, a->id, uv_strerror(r));
        jpt_reply_assoc(t, a->id, jpa_status_from_uv(r), 0);
        jpa_close(a, false);
        return;
    }
    a->st = JPA_OPEN;
    a->last_active = uv_now(t->d->loop);
    jpt_reply_assoc(t, a->id, JP_UDP_OK,
                    bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                                : ntohs(((struct sockaddr_in *)&bound)->sin_port));
    jpt_arm_sweep(t);
}

static void jpa_on_resolved(void *arg, int status, const struct sockaddr_storage *addrs, size_t n)
{
    struct jps_assoc *a = arg;
    struct sockaddr_storage to;

    a->rs = NULL;
    if (status != 0 || n == 0) {
        jpt_reply_assoc(a->t, a->id, JP_UDP_UNKNOWN_HOST, 0);
        jpa_close(a, false);
        return;
    }
    to = addrs[0];
    if (to.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&to)->sin6_port = htons(a->port);
    else
        ((struct sockaddr_in *)&to)->sin_port = htons(a->port);
    jpa_open(a, (struct sockaddr *)&to);
}

static void jpt_udp_associate(struct jps_tunnel *t, const struct jp_msg *m)
{
    struct jps_assoc *old = jp_idmap_get(&t->assocs, m->id), *a;
    struct sockaddr_storage ss;

    if (old)
        jpa_close(old, false);
    if (t->n_assocs >= t->srv->cfg->max_streams) {
        jpt_reply_assoc(t, m->id, JP_UDP_LIMIT, 0);
        return;
    }
    a = calloc(1, sizeof(*a));
    if (!a || jp_idmap_set(&t->assocs, m->id, a) != 0) {
        free(a);
        jpt_reply_assoc(t, m->id, JP_UDP_FAILURE, 0);
        return;
    }
    a->t = t;
    a->id = m->id;
    a->st = JPA_RESOLVING;
    a->in_table = true;
    a->port = m->addr.port;
    td_queue_insert_tail(&t->all_assocs, &a->node);
    t->n_assocs++;
    t->refs++;

    memset(&ss, 0, sizeof(ss));
    if (m->addr.atyp == JP_ATYP_IPV4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(m->addr.port);
        memcpy(&s4->sin_addr, m->addr.ip, 4);
        jpa_open(a, (struct sockaddr *)&ss);
    } else if (m->addr.atyp == JP_ATYP_IPV6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(m->addr.port);
        memcpy(&s6->sin6_addr, m->addr.ip, 16);
        jpa_open(a, (struct sockaddr *)&ss);
    } else {
        a->rs = td_resolve_start(t->d, m->addr.host, SOCK_DGRAM, jpa_on_resolved, a);
        if (!a->rs) {
            jpt_reply_assoc(t, a->id, JP_UDP_FAILURE, 0);
            jpa_close(a, false);
            return;
        }
        a->deadline = uv_now(t->d->loop) + t->d->cfg->limits.dns_timeout_ms;
        jpt_arm_sweep(t);
    }
}

static void jpt_udp_packet(struct jps_tunnel *t, struct jps_assoc *a, const struct jp_msg *m)
{
    uv_buf_t b;

    if (a->st != JPA_OPEN)
        return; /* still resolving: UDP may drop it */
    b = uv_buf_init((char *)m->data, m->data_len);
    if (uv_udp_try_send(&a->udp, &b, 1, NULL) < 0)
        return; /* EAGAIN and friends: dropped */
    a->last_active = uv_now(t->d->loop);
    t->up += m->data_len;
}

/* ---- the periodic sweep ---------------------------------------------------------------- */

static void jpt_on_timer(uv_timer_t *tm);

static void jpt_arm_sweep(struct jps_tunnel *t)
{
    if (t->state == JPT_UP && !uv_is_active((uv_handle_t *)&t->timer))
        uv_timer_start(&t->timer, jpt_on_timer, JPS_SWEEP_MS, 0);
}

/* UDP idle timeouts, resolver deadlines, streams that carried no payload
 * either way for idle_timeout, and streams whose target stopped taking the
 * data the client left behind. */
static void jpt_sweep(struct jps_tunnel *t)
{
    uint64_t now = uv_now(t->d->loop);
    const struct cfg_limits *lim = &t->d->cfg->limits;
    struct td_queue *q, *next, idle;
    bool again = false;

    for (q = t->all_assocs.next; q != &t->all_assocs; q = next) {
        struct jps_assoc *a = td_container_of(q, struct jps_assoc, node);
        next = q->next;
        if (a->st == JPA_RESOLVING && now >= a->deadline) {
            jpt_reply_assoc(t, a->id, JP_UDP_UNKNOWN_HOST, 0);
            jpa_close(a, false);
        } else if (a->st == JPA_OPEN && now - a->last_active >= lim->udp_timeout_ms) {
            LOG_DEBUG("jproxy", "%s association %u idle: closing", t->label, a->id);
            jpa_close(a, true);
        } else if (a->st != JPA_CLOSING) {
            again = true;
        }
    }
    td_queue_init(&idle);
    for (q = t->all_streams.next; q != &t->all_streams; q = next) {
        struct jps_stream *s = td_container_of(q, struct jps_stream, node);
        next = q->next;
        if (s->st == JPSS_OPEN) {
            if (now - s->last_active >= lim->idle_timeout_ms) {
                td_queue_remove(&s->node);
                td_queue_insert_tail(&idle, &s->node);
            } else {
                again = true;
            }
            continue;
        }
        if (!s->client_done || !s->tcp || s->to_target == 0)
            continue;
        if (now - s->last_progress >= lim->idle_timeout_ms) {
            s->end = END_IDLE;
            jpss_close_target(s);
        } else {
            again = true;
        }
    }
    /* A reset sends a Disconnect, and the link may finish (and free) other
     * streams meanwhile, so the idle ones wait on a list of their own. */
    while (!td_queue_empty(&idle)) {
        struct jps_stream *s = td_container_of(idle.next, struct jps_stream, node);
        td_queue_remove(&s->node);
        td_queue_insert_tail(&t->all_streams, &s->node);
        LOG_DEBUG("jproxy", "%s stream %u: no data either way for %llu ms; resetting the stream",
                  t->label, s->ls.id, (unsigned long long)(now - s->last_active));
        jpss_reset(s, END_IDLE);
    }
    if (again)
        jpt_arm_sweep(t);
}

/* ---- tunnel lifetime ------------------------------------------------------------------- */

static void jpt_unref(struct jps_tunnel *t)
{
    struct jp_server *srv = t->srv;
    struct td_daemon *d = t->d;

    if (--t->refs > 0)
        return;
    td_queue_remove(&t->node);
    srv->n_tunnels--;
    td_wipe(t->hs, sizeof(t->hs)); /* a handshake cut short */
    jp_idmap_free(&t->streams);
    jp_idmap_free(&t->assocs);
    free(t);
    daemon_server_gone(d);
}

static void jpt_on_handle_closed(uv_handle_t *h)
{
    struct jps_tunnel *t = h->data;
    if ((void *)h != (void *)&t->timer)
        free(h);
    jpt_unref(t);
}

static void jpt_close_handles(struct jps_tunnel *t)
{
    if (t->tcp && !uv_is_closing((uv_handle_t *)t->tcp)) {
        jps_uncount_fd(t->d, (uv_handle_t *)t->tcp);
        uv_close((uv_handle_t *)t->tcp, jpt_on_handle_closed);
    }
    t->tcp = NULL;
    if (!uv_is_closing((uv_handle_t *)&t->timer))
        uv_close((uv_handle_t *)&t->timer, jpt_on_handle_closed);
}

static void jpt_log_summary(struct jps_tunnel *t)
{
    uint64_t ms = uv_now(t->d->loop) - t->start_ms;
    LOG_INFO("jproxy",
             "server %s tunnel #%llu closed peer=%s user=%s streams=%llu up=%llu down=%llu "
             "duration=%llu.%03llus end=%s",
             t->srv->cfg->name, (unsigned long long)t->id, t->peer, t->user[0] ? t->user : "-",
             (unsigned long long)t->streams_total, (unsigned long long)t->up,
             (unsigned long long)t->down, (unsigned long long)(ms / 1000),
             (unsigned long long)(ms % 1000), t->end_reason ? t->end_reason : END_ERROR);
}

/* Enter CLOSING: log, and let go of every stream and association.  Returns
 * false when the tunnel was already closing. */
static bool jpt_begin_close(struct jps_tunnel *t, const char *reason)
{
    struct td_queue *q, *next;

    if (t->state == JPT_CLOSING)
        return false;
    if (!t->end_reason)
        t->end_reason = reason;
    jpt_set_state(t, JPT_CLOSING);
    jpt_log_summary(t);
    uv_timer_stop(&t->timer);
    for (q = t->all_streams.next; q != &t->all_streams; q = next) {
        next = q->next;
        jpss_drop(td_container_of(q, struct jps_stream, node), "tunnel-closed");
    }
    for (q = t->all_assocs.next; q != &t->all_assocs; q = next) {
        next = q->next;
        jpa_close(td_container_of(q, struct jps_assoc, node), false);
    }
    return true;
}

static void jpt_close(struct jps_tunnel *t, const char *reason)
{
    if (t->state == JPT_CLOSING)
        return;
    if (t->link_live) {
        if (!t->end_reason)
            t->end_reason = reason;
        jp_link_close(&t->link, TD_ECANCELED); /* on_close does the rest */
        return;
    }
    jpt_begin_close(t, reason);
    jpt_close_handles(t);
}

static void jpt_on_reject_shutdown(uv_shutdown_t *req, int status)
{
    struct jps_tunnel *t = req->data;
    (void)status;
    jpt_close_handles(t);
}

/* Answer a refused handshake, then close once the answer is out (the
 * handshake timer stays armed as a backstop). */
static void jpt_reject(struct jps_tunnel *t, const uint8_t *reply, size_t len, const char *reason)
{
    if (!jpt_begin_close(t, reason))
        return;
    uv_read_stop((uv_stream_t *)t->tcp);
    t->shutreq.data = t;
    if (jps_send_raw(t->tcp, reply, len) != 0 ||
        uv_shutdown(&t->shutreq, (uv_stream_t *)t->tcp, jpt_on_reject_shutdown) != 0) {
        jpt_close_handles(t);
        return;
    }
    uv_timer_start(&t->timer, jpt_on_timer, 2000, 0);
}

static void jpt_on_timer(uv_timer_t *tm)
{
    struct jps_tunnel *t = tm->data;

    switch (t->state) {
    case JPT_HELLO:
    case JPT_TOKEN:
        jps_note_refused(t, END_HANDSHAKE_TIMEOUT);
        jpt_bad_input(t, "handshake timed out (%zu bytes of %s received)", t->hs_len,
                      t->state == JPT_HELLO ? "the hello" : "the token");
        jpt_close(t, END_HANDSHAKE_TIMEOUT);
        return;
    case JPT_UP:
        jpt_sweep(t);
        return;
    case JPT_CLOSING:
        jpt_close_handles(t);
        return;
    }
}

/* ---- link callbacks ------------------------------------------------------------------- */

static void jpt_on_msg(struct jp_link *l, const struct jp_msg *m)
{
    struct jps_tunnel *t = l->ud;
    struct jps_stream *s;
    struct jps_assoc *a;

    if (t->state != JPT_UP)
        return;
    switch (m->type) {
    case JP_MSG_TCP_CONNECT:
        jpt_tcp_connect(t, m);
        return;
    case JP_MSG_TCP_CONNECT_BAD:
        LOG_DEBUG("jproxy", "%s: malformed Connect for stream %u: %s", t->label, m->id,
                  m->why ? m->why : "?");
        jpt_reply_connect(t, m->id, JP_CONNECT_FAILURE, JP_TIME_UNKNOWN);
        return;
    case JP_MSG_TCP_PACKET:
        s = jp_idmap_get(&t->streams, m->id);
        if (s)
            jpt_tcp_packet(t, s, m);
        return;
    case JP_MSG_TCP_DISCONNECT:
        s = jp_idmap_get(&t->streams, m->id);
        if (s)
            jpt_tcp_disconnect(t, s);
        return;
    default:
        break;
    }
    if (!t->extensions)
        return; /* UDP is ours: a Java peer's UDP messages are ignored, as Java does */
    switch (m->type) {
    case JP_MSG_UDP_ASSOCIATE:
        jpt_udp_associate(t, m);
        return;
    case JP_MSG_UDP_ASSOCIATE_BAD:
        LOG_DEBUG("jproxy", "%s: malformed UDP Associate for %u: %s", t->label, m->id,
                  m->why ? m->why : "?");
        jpt_reply_assoc(t, m->id, JP_UDP_FAILURE, 0);
        return;
    case JP_MSG_UDP_PACKET:
        a = jp_idmap_get(&t->assocs, m->id);
        if (a)
            jpt_udp_packet(t, a, m);
        return;
    case JP_MSG_UDP_DISSOCIATE:
        a = jp_idmap_get(&t->assocs, m->id);
        if (a)
            jpa_close(a, false);
        return;
    default:
        return;
    }
}

static void jpt_on_drain(struct jp_link *l, struct jp_link_stream *ls)
{
    struct jps_stream *s = td_container_of(ls, struct jps_stream, ls);
    (void)l;

    if (s->st != JPSS_OPEN || !s->paused)
        return;
    if (s->held) {
        size_t n = jp_link_stream_write(&s->t->link, ls, s->held->data + s->held_off, s->held_len);
        if (s->st != JPSS_OPEN)
            return;
        s->held_off += n;
        s->held_len -= n;
        if (s->held_len > 0)
            return;
        chunk_put(s->held);
        s->held = NULL;
    }
    if (jp_link_stream_queued(ls) < JP_LINK_STREAM_CAP) {
        s->paused = false;
        jpss_read_start(s);
    }
}

/* The client sent past the window we granted (logged by the link). */
static void jpt_on_overrun(struct jp_link *l, struct jp_link_stream *ls)
{
    struct jps_stream *s = td_container_of(ls, struct jps_stream, ls);
    (void)l;
    jpss_reset(s, END_PROTOCOL);
}

static void jpt_on_finished(struct jp_link *l, struct jp_link_stream *ls)
{
    struct jps_stream *s = td_container_of(ls, struct jps_stream, ls);
    (void)l;
    /* Our Disconnect is out: the id is free on both sides now. */
    s->linked = false;
    jpss_release_id(s);
    jpss_maybe_free(s);
}

static const char *jpt_end_for_link_err(int err)
{
    switch (err) {
    case TD_EEOF:
        return END_CLIENT_EOF;
    case TD_ECRYPTO:
    case TD_EPROTO:
        return END_PROTOCOL;
    case TD_ENOMEM:
        return END_NO_RESOURCES;
    case TD_ECANCELED:
        return END_SHUTDOWN;
    default:
        return END_CLIENT_RESET;
    }
}

static void jpt_on_link_close(struct jp_link *l, int err)
{
    struct jps_tunnel *t = l->ud;
    jpt_begin_close(t, jpt_end_for_link_err(err));
    if (!uv_is_closing((uv_handle_t *)&t->timer))
        uv_close((uv_handle_t *)&t->timer, jpt_on_handle_closed);
}

static void jpt_on_link_closed(struct jp_link *l)
{
    struct jps_tunnel *t = l->ud;
    t->link_live = false;
    jp_link_free(l);
    jpt_unref(t); /* the socket's reference, which the link held */
}

static const struct jp_link_cbs jpt_link_cbs = {
    .on_msg = jpt_on_msg,
    .on_drain = jpt_on_drain,
    .on_close = jpt_on_link_close,
    .on_closed = jpt_on_link_closed,
    .on_overrun = jpt_on_overrun,
};

/* ---- handshake ------------------------------------------------------------------------- */

/* Constant time over the whole table: every user is compared, and the
 * match is selected with masks rather than a branch on secret data. */
static const struct jps_user *jps_find_user(const struct jp_server *srv,
                                            const uint8_t token[JP_TOKEN_LEN])
{
    size_t idx = 0, have = 0;
    for (size_t i = 0; i < srv->n_users; i++) {
        size_t eq = (size_t)jp_user_token_eq(&srv->users[i]->u, token);
        size_t take = (size_t)0 - (eq & (have ^ 1));
        idx = (idx & ~take) | (i & take);
        have |= eq;
    }
    return have ? srv->users[idx] : NULL;
}

static void jpt_login(struct jps_tunnel *t, size_t used)
{
    struct jp_server *srv = t->srv;
    uint8_t token[JP_TOKEN_LEN], key[JP_KEY_LEN], reply[JP_LOGIN_OK_LEN];
    const struct jps_user *u;
    uv_tcp_t *tcp;
    int r;

    memcpy(token, t->hs + JP_HELLO_LEN, JP_TOKEN_LEN);
    u = jps_find_user(srv, token);
    if (!u) {
        uint8_t rej[1];
        jps_note_refused(t, END_AUTH);
        jpt_bad_input(t, "unknown token %02x%02x%02x%02x...", token[0], token[1], token[2],
                      token[3]);
        jp_login_reply_encode_reject(rej);
        jpt_reject(t, rej, sizeof(rej), END_AUTH);
        goto wipe;
    }
    snprintf(t->user, sizeof(t->user), "%s", u->label);
    /* jp_login_accept only reads the public key (mbedTLS wants it mutable). */
    r = jp_login_accept((struct td_pk *)&u->u.pub, key, reply);
    if (r != 0) {
        LOG_WARN("jproxy", "%s: cannot encrypt the session key for user %s: %s", t->label, u->label,
                 td_strerror(r));
        jpt_close(t, END_ERROR);
        goto wipe;
    }
    uv_read_stop((uv_stream_t *)t->tcp);
    uv_timer_stop(&t->timer);
    r = jps_send_raw(t->tcp, reply, sizeof(reply));
    tcp = t->tcp;
    if (r == 0) {
        t->link.name = t->label;
        t->link.on_finished = jpt_on_finished;
        r = jp_link_start(&t->link, t->d, tcp, key, JP_DIR_C2S, t->extensions, &jpt_link_cbs, t,
                          t->hs + used, t->hs_len - used);
    }
    if (r != 0) {
        LOG_WARN("jproxy", "%s: cannot start the tunnel: %s", t->label, td_strerror(r));
        jpt_close(t, r == TD_ECRYPTO || r == TD_EPROTO ? END_PROTOCOL : END_ERROR);
        goto wipe;
    }
    t->tcp = NULL; /* the link owns it now */
    t->link_live = true;
    jpt_set_state(t, JPT_UP);
    LOG_DEBUG("jproxy", "%s: user %s logged in (%s client)", t->label, u->label,
              t->extensions ? "tunneld" : "jProxy 3");
wipe:
    /* The token, the session key and its transport: none is needed past
     * this point (the link keeps its own key schedule). */
    td_wipe(token, sizeof(token));
    td_wipe(key, sizeof(key));
    td_wipe(reply, sizeof(reply));
    td_wipe(t->hs, sizeof(t->hs));
    t->hs_len = 0;
}

static void jpt_handshake(struct jps_tunnel *t)
{
    uint8_t rep[JP_HELLO_REPLY_LEN];
    size_t used = 0;
    int r;

    if (t->state == JPT_HELLO) {
        struct jp_hello h = {0, 0};
        r = jp_hello_parse(t->hs, t->hs_len, &used, &h);
        if (r == TD_EAGAIN)
            return;
        if (r != 0) {
            jps_note_refused(t, END_PROTOCOL);
            if (r == TD_EPROTO)
                jpt_bad_input(t, "bad handshake magic");
            else
                jpt_bad_input(t, "unsupported protocol version %u.%u", h.major, h.minor);
            jp_hello_reply_encode(rep, JP_HELLO_UNSUPPORTED);
            jpt_reject(t, rep, sizeof(rep), r == TD_EPROTO ? END_PROTOCOL : END_UNSUPPORTED);
            return;
        }
        rep[0] = jp_hello_accept_status(&h, true);
        t->extensions = rep[0] == JP_HELLO_OK_TUNNELD;
        jp_hello_reply_encode(rep, rep[0]);
        if (jps_send_raw(t->tcp, rep, sizeof(rep)) != 0) {
            jpt_close(t, END_ERROR);
            return;
        }
        jpt_set_state(t, JPT_TOKEN);
    }
    if (t->state == JPT_TOKEN) {
        uint8_t token[JP_TOKEN_LEN];
        size_t tused = 0;
        r = jp_token_parse(t->hs + JP_HELLO_LEN, t->hs_len - JP_HELLO_LEN, &tused, token);
        if (r == TD_EAGAIN)
            return;
        td_wipe(token, sizeof(token)); /* jpt_login reads it from t->hs */
        if (r != 0) {
            jpt_bad_input(t, "bad login token");
            jpt_close(t, END_PROTOCOL);
            return;
        }
        jpt_login(t, JP_HELLO_LEN + tused);
    }
}

static void jpt_hs_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct jps_tunnel *t = h->data;
    (void)suggested;
    /* Never more than hello + token: later bytes stay for the link. */
    *buf = uv_buf_init((char *)t->hs + t->hs_len, (unsigned)(sizeof(t->hs) - t->hs_len));
}

static void jpt_on_hs_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct jps_tunnel *t = st->data;
    (void)buf;

    if (t->state != JPT_HELLO && t->state != JPT_TOKEN)
        return;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (t->hs_len > 0)
            jpt_bad_input(t, "connection closed during the handshake (%zu bytes received)",
                          t->hs_len);
        jpt_close(t, nread == UV_EOF ? END_CLIENT_EOF : END_CLIENT_RESET);
        return;
    }
    t->hs_len += (size_t)nread;
    jpt_handshake(t);
}

/* ---- accepting --------------------------------------------------------------------------- */

static void jps_evict(struct td_hs_slot *hs)
{
    struct jps_tunnel *t = td_container_of(hs, struct jps_tunnel, hs_slot);
    jpt_bad_input(t, "handshake closed to make room for a new one");
    jpt_close(t, END_EVICTED);
}

static void jps_on_unused_closed(uv_handle_t *h)
{
    free(h);
}

static int jps_accept(struct td_acceptor *acc)
{
    struct jp_server *srv = acc->ud;
    struct td_daemon *d = srv->d;
    uv_tcp_t *tcp = malloc(sizeof(*tcp));
    struct jps_tunnel *t = calloc(1, sizeof(*t));
    struct sockaddr_storage ss;
    int namelen = sizeof(ss);

    if (!tcp || !t) {
        /* Nothing taken yet: the connection waits for the retry. */
        LOG_ERROR("jproxy", "server %s: out of memory accepting a tunnel", srv->cfg->name);
        free(tcp);
        free(t);
        return TD_ENOMEM;
    }
    uv_tcp_init(d->loop, tcp);
    if (td_acceptor_accept(acc, tcp) != 0) {
        free(t);
        uv_close((uv_handle_t *)tcp, jps_on_unused_closed);
        return 0;
    }
    jps_count_fd(d, (uv_handle_t *)tcp);
    t->srv = srv;
    t->d = d;
    t->id = ++srv->next_id;
    t->tcp = tcp;
    t->start_ms = uv_now(d->loop);
    td_queue_init(&t->all_streams);
    td_queue_init(&t->all_assocs);
    td_queue_insert_tail(&srv->tunnels, &t->node);
    srv->n_tunnels++;
    tcp->data = t;
    t->refs++;
    uv_timer_init(d->loop, &t->timer);
    t->timer.data = t;
    t->refs++;
    td_hs_begin(acc, &t->hs_slot, jps_evict);

    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &namelen) == 0)
        td_sockaddr_str((struct sockaddr *)&ss, t->peer, sizeof(t->peer));
    else
        snprintf(t->peer, sizeof(t->peer), "-");
    snprintf(t->label, sizeof(t->label), "server %s tunnel #%llu peer=%s", srv->cfg->name,
             (unsigned long long)t->id, t->peer);
    uv_tcp_nodelay(tcp, 1);
    uv_tcp_keepalive(tcp, 1, JPS_KEEPALIVE);
    LOG_DEBUG("jproxy", "%s: accepted", t->label);

    uv_timer_start(&t->timer, jpt_on_timer, d->cfg->limits.handshake_timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)tcp, jpt_hs_alloc, jpt_on_hs_read) != 0)
        jpt_close(t, END_CLIENT_RESET);
    return 0;
}

/* ---- users -------------------------------------------------------------------------------- */

static void jps_user_free(struct jps_user *u)
{
    if (!u)
        return;
    jp_user_free(&u->u);
    free(u);
}

/* Takes u.  Duplicate tokens keep the first user. */
static int jps_add_user(struct jp_server *srv, struct jps_user *u, const char *origin)
{
    struct jps_user **nu;

    for (size_t i = 0; i < srv->n_users; i++) {
        if (memcmp(srv->users[i]->u.token, u->u.token, JP_TOKEN_LEN) == 0) {
            LOG_WARN("jproxy", "server %s: %s has the same token as user %s; ignoring it",
                     srv->cfg->name, origin, srv->users[i]->label);
            jps_user_free(u);
            return 0;
        }
    }
    nu = realloc(srv->users, (srv->n_users + 1) * sizeof(*nu));
    if (!nu) {
        jps_user_free(u);
        return TD_ENOMEM;
    }
    srv->users = nu;
    srv->users[srv->n_users++] = u;
    return 0;
}

static int jps_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* "<64 hex digits>.dat" -> the token it names. */
static bool jps_token_from_name(const char *name, uint8_t token[JP_TOKEN_LEN])
{
    if (strlen(name) != JP_USER_FILE_NAME_LEN || strcmp(name + 2 * JP_TOKEN_LEN, ".dat") != 0)
        return false;
    for (size_t i = 0; i < JP_TOKEN_LEN; i++) {
        int hi = jps_hexval(name[2 * i]), lo = jps_hexval(name[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        token[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static int jps_load_users_dir(struct jp_server *srv, const char *dir)
{
    uv_fs_t req;
    uv_dirent_t ent;
    int r, rc = 0;
    size_t loaded = 0;

    r = uv_fs_scandir(srv->d->loop, &req, dir, 0, NULL);
    if (r < 0) {
        LOG_ERROR("jproxy", "server %s: cannot read users_dir %s: %s", srv->cfg->name, dir,
                  uv_strerror(r));
        uv_fs_req_cleanup(&req);
        return td_err_from_uv(r);
    }
    while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
        uint8_t token[JP_TOKEN_LEN];
        struct jps_user *u;
        size_t plen;
        char *path;

        if (ent.type == UV_DIRENT_DIR || !jps_token_from_name(ent.name, token))
            continue;
        plen = strlen(dir) + 1 + strlen(ent.name) + 1;
        path = malloc(plen);
        u = calloc(1, sizeof(*u));
        if (!path || !u) {
            free(path);
            free(u);
            rc = TD_ENOMEM;
            break;
        }
        snprintf(path, plen, "%s/%s", dir, ent.name);
        jp_user_init(&u->u);
        r = jp_user_read(path, &u->u);
        if (r != 0) {
            LOG_WARN("jproxy", "server %s: skipping user file %s: %s", srv->cfg->name, path,
                     td_strerror(r));
            jps_user_free(u);
        } else if (memcmp(u->u.token, token, JP_TOKEN_LEN) != 0) {
            LOG_WARN("jproxy",
                     "server %s: skipping user file %s: its name does not match its key and salt",
                     srv->cfg->name, path);
            jps_user_free(u);
        } else {
            td_log_safe(u->label, sizeof(u->label), u->u.name, u->u.name_len);
            rc = jps_add_user(srv, u, path);
            loaded++;
        }
        free(path);
        if (rc != 0)
            break;
    }
    uv_fs_req_cleanup(&req);
    if (rc == 0)
        LOG_DEBUG("jproxy", "server %s: %zu user files in %s", srv->cfg->name, loaded, dir);
    return rc;
}

/* A managed user's server file, STATE_DIR/jproxy/TOKEN.dat. */
static int jps_load_state_user(struct jp_server *srv, const struct td_config *cfg, const char *name,
                               const char *token)
{
    struct jps_user *u;
    char path[4096];
    int r;

    if (snprintf(path, sizeof(path), "%s/jproxy/%s.dat", cfg->state_dir, token) >=
        (int)sizeof(path))
        return TD_ETOOBIG;
    u = calloc(1, sizeof(*u));
    if (!u)
        return TD_ENOMEM;
    jp_user_init(&u->u);
    r = jp_user_read(path, &u->u);
    if (r != 0) {
        LOG_ERROR("jproxy", "server %s: managed user %s: cannot load %s: %s", srv->cfg->name, name,
                  path, td_strerror(r));
        jps_user_free(u);
        return r;
    }
    snprintf(u->label, sizeof(u->label), "%s", name);
    return jps_add_user(srv, u, path);
}

static int jps_load_users(struct jp_server *srv, const struct td_config *cfg,
                          const struct td_state *st)
{
    uint64_t now = td_state_now();
    int r;

    for (size_t i = 0; i < cfg->n_users; i++) {
        const struct cfg_user *cu = &cfg->users[i];
        struct jps_user *u;
        if (!cu->jproxy_user_file)
            continue;
        u = calloc(1, sizeof(*u));
        if (!u)
            return TD_ENOMEM;
        jp_user_init(&u->u);
        r = jp_user_read(cu->jproxy_user_file, &u->u);
        if (r != 0) {
            LOG_ERROR("jproxy", "server %s: user %s: cannot load %s: %s", srv->cfg->name, cu->name,
                      cu->jproxy_user_file, td_strerror(r));
            jps_user_free(u);
            return r;
        }
        snprintf(u->label, sizeof(u->label), "%s", cu->name);
        r = jps_add_user(srv, u, cu->jproxy_user_file);
        if (r != 0)
            return r;
    }
    if (srv->cfg->users_dir) {
        r = jps_load_users_dir(srv, srv->cfg->users_dir);
        if (r != 0)
            return r;
    }
    for (size_t i = 0; st && i < st->n; i++) {
        const struct st_user *u = &st->users[i];
        if (u->protocol != CFG_PROTO_JPROXY)
            continue;
        r = jps_load_state_user(srv, cfg, u->name, u->secret);
        if (r == 0 && u->old_secret && now < u->old_until)
            r = jps_load_state_user(srv, cfg, u->name, u->old_secret);
        if (r != 0)
            return r;
    }
    if (srv->n_users == 0)
        LOG_WARN("jproxy",
                 "server %s: no users yet: every login will be refused until one is added "
                 "(users_dir, a user's jproxy_user_file, or tunnelctl users add NAME --protocol "
                 "jproxy)",
                 srv->cfg->name);
    return 0;
}

/* ---- life ------------------------------------------------------------------------------------ */

/* ---- the server kind (struct td_server_ops) -------------------------------- */

static int jps_create(struct td_server *ts)
{
    struct jp_server *srv = calloc(1, sizeof(*srv));
    int r;

    if (!srv)
        return TD_ENOMEM;
    srv->d = ts->d;
    srv->cfg = ts->cfg;
    td_queue_init(&srv->tunnels);
    ts->impl = srv;
    r = jps_load_users(srv, ts->d->cfg, ts->d->state);
    return r;
}

static void jps_users_free(struct jps_user **users, size_t n)
{
    for (size_t i = 0; i < n; i++)
        jps_user_free(users[i]);
    free(users);
}

/* A new user table, swapped in only when all of it loaded.  Tunnels that
 * logged in keep going (they copied their user's name). */
static int jps_set_users(struct td_server *ts, const struct td_config *cfg,
                         const struct td_state *st)
{
    struct jp_server *srv = ts->impl;
    struct jps_user **old = srv->users;
    size_t old_n = srv->n_users;
    int r;

    srv->users = NULL;
    srv->n_users = 0;
    r = jps_load_users(srv, cfg, st);
    if (r != 0) {
        jps_users_free(srv->users, srv->n_users);
        srv->users = old;
        srv->n_users = old_n;
        return r;
    }
    jps_users_free(old, old_n);
    return 0;
}

static int jps_start(struct td_server *ts)
{
    struct jp_server *srv = ts->impl;
    struct td_acceptor_opts o;
    int r;

    memset(&o, 0, sizeof(o));
    o.name = srv->cfg->name;
    o.what = "server";
    o.kind = "jproxy";
    o.listen = &ts->listen;
    o.accept_cb = jps_accept;
    o.ud = srv;
    o.fds_per_conn = 2; /* the tunnel and its first target */
    r = td_acceptor_open(srv->d, &srv->acc, &o);
    ts->bound_port = srv->acc.port;
    return r;
}

/* The listening socket closes; tunnels already open carry on. */
static void jps_stop_accepting(struct td_server *ts)
{
    struct jp_server *srv = ts->impl;
    td_acceptor_close(&srv->acc);
}

/* Every tunnel closes now, with every stream and association on it. */
static void jps_close(struct td_server *ts)
{
    struct jp_server *srv = ts->impl;
    struct td_queue *q, *next;

    /* Closing never frees a tunnel synchronously (its handles close
     * asynchronously), so the list stays valid. */
    for (q = srv->tunnels.next; q != &srv->tunnels; q = next) {
        next = q->next;
        jpt_close(td_container_of(q, struct jps_tunnel, node), END_SHUTDOWN);
    }
}

static uint32_t jps_active(struct td_server *ts)
{
    struct jp_server *srv = ts->impl;
    return srv->n_tunnels;
}

/* After every tunnel is gone and the listener is closed. */
static void jps_free(struct td_server *ts)
{
    struct jp_server *srv = ts->impl;

    if (!srv)
        return;
    jps_users_free(srv->users, srv->n_users);
    free(srv);
    ts->impl = NULL;
}

static void jps_stats(struct td_server *ts, struct td_server_stats *out)
{
    struct jp_server *srv = ts->impl;

    memset(out, 0, sizeof(*out));
    snprintf(out->listen, sizeof(out->listen), "%s", srv->acc.addr);
    out->tunnels = srv->n_tunnels;
    out->handshakes = srv->acc.n_hs;
    out->tunnels_total = srv->next_id;
}

/* A login that failed, for the server's counters. */
static void jps_note_refused(struct jps_tunnel *t, const char *reason)
{
    struct td_conn_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.server = t->srv->cfg->name;
    td_stats_closed(t->d, &ci, reason);
}

static void jps_each(struct td_server *ts, td_conn_cb cb, void *arg)
{
    struct jp_server *srv = ts->impl;
    struct td_queue *q, *r;

    for (q = srv->tunnels.next; q != &srv->tunnels; q = q->next) {
        struct jps_tunnel *t = td_container_of(q, struct jps_tunnel, node);
        if (t->state != JPT_UP)
            continue;
        for (r = t->all_streams.next; r != &t->all_streams; r = r->next) {
            struct jps_stream *s = td_container_of(r, struct jps_stream, node);
            struct td_conn_info ci;
            if (s->st == JPSS_CLOSING)
                continue;
            memset(&ci, 0, sizeof(ci));
            snprintf(ci.id, sizeof(ci.id), "%s:%llu.%u", srv->cfg->name, (unsigned long long)t->id,
                     s->ls.id);
            ci.user = t->user[0] ? t->user : NULL;
            ci.server = srv->cfg->name;
            ci.client = t->peer;
            ci.target = s->target;
            ci.bytes_in = s->down;
            ci.bytes_out = s->up;
            ci.start_ms = s->start_ms;
            cb(arg, &ci);
        }
    }
}

/* "T" closes tunnel T (its login, every stream); "T.S" resets stream S. */
static bool jps_kill(struct td_server *ts, const char *id)
{
    struct jp_server *srv = ts->impl;
    unsigned long long tid, sid = 0;
    bool has_stream = false;
    struct td_queue *q, *r;
    char *end;

    tid = strtoull(id, &end, 10);
    if (end == id)
        return false;
    if (*end == '.') {
        const char *p = end + 1;
        sid = strtoull(p, &end, 10);
        if (end == p || sid > 0xFFFF)
            return false;
        has_stream = true;
    }
    if (*end != '\0')
        return false;
    for (q = srv->tunnels.next; q != &srv->tunnels; q = q->next) {
        struct jps_tunnel *t = td_container_of(q, struct jps_tunnel, node);
        if (t->id != tid || t->state == JPT_CLOSING)
            continue;
        if (!has_stream) {
            jpt_close(t, END_SHUTDOWN);
            return true;
        }
        for (r = t->all_streams.next; r != &t->all_streams; r = r->next) {
            struct jps_stream *s = td_container_of(r, struct jps_stream, node);
            if (s->ls.id == sid && s->st != JPSS_CLOSING) {
                jpss_reset(s, END_SHUTDOWN);
                return true;
            }
        }
        return false;
    }
    return false;
}

static size_t jps_kill_user(struct td_server *ts, const char *user)
{
    struct jp_server *srv = ts->impl;
    struct td_queue *q, *next;
    size_t n = 0;

    for (q = srv->tunnels.next; q != &srv->tunnels; q = next) {
        struct jps_tunnel *t = td_container_of(q, struct jps_tunnel, node);
        next = q->next; /* closing never frees synchronously; be safe anyway */
        if (t->state != JPT_CLOSING && t->user[0] && strcmp(t->user, user) == 0) {
            jpt_close(t, END_SHUTDOWN);
            n++;
        }
    }
    return n;
}

const struct td_server_ops jp_server_ops = {
    .each = jps_each,
    .kill = jps_kill,
    .kill_user = jps_kill_user,
    .create = jps_create,
    .set_users = jps_set_users,
    .start = jps_start,
    .stop_accepting = jps_stop_accepting,
    .close = jps_close,
    .active = jps_active,
    .free = jps_free,
    .stats = jps_stats,
};
