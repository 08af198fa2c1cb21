/* jProxy client: one tunnel, many streams.
 *
 * The tunnel is dialled at start-up and kept up; when it drops, the streams
 * on it fail at once and the client reconnects with exponential backoff
 * (250 ms doubling up to reconnect_max).  Connections that arrive while it is
 * down wait for it within their own connect deadline.  Stream ids cycle
 * through 1..65535 and an id is not handed out again until the counter comes
 * round, so a Disconnect still in flight for an old stream can never hit a
 * new one. */
#include "jproxy/jp_client.h"

#include "core/conn.h"
#include "core/dial.h"
#include "crypto/crypto.h"
#include "util/error.h"
#include "util/fs.h"
#include "jproxy/jp_link.h"
#include "proto/jproxy_keys.h"
#include "util/log.h"
#include "core/netutil.h"

#include <stdlib.h>
#include <string.h>

/* One UDP flow of the extension: one destination (see td_udp_flow below). */
struct jp_udp_flow;
typedef void (*jp_udp_recv_cb)(void *arg, const uint8_t *p, size_t len);
typedef void (*jp_udp_closed_cb)(void *arg);

#define JPC_BACKOFF_MIN 250
#define JPC_IDS         65536
#define JPC_RBUF_MIN    (16 * 1024)

enum jpc_state {
    JPC_DOWN = 0, /* not connected; waiting for a reason to connect */
    JPC_DIALING,
    JPC_HELLO,
    JPC_LOGIN,
    JPC_UP,
    JPC_BACKOFF,
    JPC_CLOSING, /* the link is closing */
    JPC_STOPPED,
};

static const char *const jpc_state_names[] = {"DOWN", "DIALING", "HELLO",   "LOGIN",
                                              "UP",   "BACKOFF", "CLOSING", "STOPPED"};

enum jps_state {
    JPS_WAITING = 0, /* for the tunnel */
    JPS_CONNECTING,  /* Connect sent */
    JPS_OPEN,
};

struct jpc_stream {
    struct jp_link_stream ls;
    struct jp_client *cl;
    struct conn *c;
    enum jps_state st;
    struct td_queue wait_node;
    struct jp_addr addr;
    bool remote_done; /* Disconnect received (or ours sent) */
    bool paused;      /* the conn asked us to hold the data for its client */
    bool eof_pending; /* remote_done, for the conn once the held data is out */
    bool delivering;  /* inside jpc_deliver */
    /* Packet data the conn has not taken yet (it paused us): a ring of rcap
     * bytes, at most JP_LINK_RECV_MAX, allocated only while non-empty.  The
     * link stops reading the tunnel while it holds more than
     * JP_LINK_RECV_CAP, which is how a peer without windows is slowed. */
    uint8_t *rbuf;
    size_t roff, rlen, rcap;
    uint8_t *ovf; /* what the link's queue did not take */
    size_t ovf_len;
    struct td_queue connecting_node; /* cl->connecting while CONNECTING */
    uint64_t sent_at;                /* uv_now() when the Connect was queued */
};

#define JPC_UDP_QUEUE 4 /* datagrams held while an Associate is pending */

enum jpu_state {
    JPU_WAITING = 0, /* for the tunnel */
    JPU_ASSOCIATING,
    JPU_OPEN,
};

struct jp_udp_flow {
    struct jp_client *cl;
    enum jpu_state st;
    uint16_t id;
    struct jp_addr addr;
    jp_udp_recv_cb recv_cb;
    jp_udp_closed_cb closed_cb;
    void *arg;
    struct td_queue node; /* cl->udp_waiting while WAITING */
    uint8_t *q[JPC_UDP_QUEUE];
    uint16_t qlen[JPC_UDP_QUEUE];
    int nq;
};

struct jp_client {
    struct td_daemon *d;
    const struct cfg_tunnel *cfg;
    char name[CFG_NAME_MAX + 8]; /* the tunnel's name, "#N" after it for link N > 1 */
    struct jp_client_key key;
    char label[96]; /* "tunnel NAME", for the link's log lines */
    enum jpc_state state;
    struct td_dial *dial;
    uv_tcp_t *tcp; /* during the handshake */
    uint8_t hs[JP_LOGIN_OK_LEN + 64];
    size_t hs_len;
    struct jp_link link;
    bool link_live; /* jp_link_start succeeded and on_closed has not run */
    bool extensions;
    uv_timer_t timer;
    uint64_t backoff_ms;
    struct jpc_stream **by_id;
    uint32_t next_id;
    uint32_t n_streams;
    struct td_queue waiting;
    uint64_t tunnels_opened;
    uint64_t streams_total;
    struct jp_udp_flow **udp_by_id; /* association ids: their own space */
    uint32_t udp_next_id;
    uint32_t n_udp; /* associations with an id */
    struct td_queue udp_waiting;
    /* Health and idle checks while UP (the protocol has no keepalive):
     * Connects in the order they were sent, the time of the last message
     * from the server, and the last time the tunnel carried anything. */
    uv_timer_t health;
    struct td_queue connecting;
    uint64_t last_rx;
    uint64_t last_busy;
    bool idle_closing;   /* closed for idleness: reopen on demand, no backoff */
    uint64_t stalled_at; /* a Connect sent then gave up on, with no answer since */
};

/* How often the health and idle checks run. */
#define JPC_HEALTH_TICK_MS 1000

static void jpc_connect(struct jp_client *cl);
static void jpc_tunnel_failed(struct jp_client *cl, const char *why);

static void jpc_set_state(struct jp_client *cl, enum jpc_state st)
{
    LOG_TRACE("jproxy", "tunnel %s [%s] -> [%s]", cl->name, jpc_state_names[cl->state],
              jpc_state_names[st]);
    cl->state = st;
}

/* ---- streams ---------------------------------------------------------------- */

static int jpc_alloc_id(struct jp_client *cl, uint16_t *out)
{
    for (uint32_t n = 0; n < JPC_IDS - 1; n++) {
        uint32_t id = cl->next_id;
        cl->next_id = cl->next_id >= JPC_IDS - 1 ? 1 : cl->next_id + 1;
        if (!cl->by_id[id]) {
            *out = (uint16_t)id;
            return 0;
        }
    }
    return TD_ELIMIT;
}

static void jpc_stream_free(struct jpc_stream *s)
{
    struct jp_client *cl = s->cl;
    if (s->st == JPS_WAITING)
        td_queue_remove(&s->wait_node);
    if (s->st == JPS_CONNECTING)
        td_queue_remove(&s->connecting_node);
    if (s->st != JPS_WAITING && cl->by_id[s->ls.id] == s)
        cl->by_id[s->ls.id] = NULL;
    if (s->st != JPS_WAITING && cl->link_live)
        jp_link_stream_detach(&cl->link, &s->ls);
    cl->n_streams--;
    free(s->ovf);
    free(s->rbuf);
    free(s);
}

/* Send Disconnect for an open or connecting stream; the link forgets it. */
static void jpc_send_disconnect(struct jp_client *cl, struct jpc_stream *s)
{
    struct jp_msg m;
    uint16_t id = s->ls.id;

    jp_link_stream_detach(&cl->link, &s->ls);
    memset(&m, 0, sizeof(m));
    m.type = JP_MSG_TCP_DISCONNECT;
    m.id = id;
    m.reason = JP_REASON_RESET;
    jp_link_send_msg(&cl->link, &m);
}

/* Keep n more bytes for the conn, after those already held.  TD_ELIMIT past
 * JP_LINK_RECV_MAX, which the link's pause rules out unless something is
 * broken. */
static int jpc_hold(struct jpc_stream *s, const uint8_t *p, size_t n)
{
    size_t need = s->rlen + n, tail, first;

    if (need > JP_LINK_RECV_MAX)
        return TD_ELIMIT;
    if (need > s->rcap) {
        size_t ncap = s->rcap ? s->rcap : JPC_RBUF_MIN, head;
        uint8_t *nb;
        while (ncap < need)
            ncap *= 2;
        if (ncap > JP_LINK_RECV_MAX)
            ncap = JP_LINK_RECV_MAX;
        nb = malloc(ncap);
        if (!nb)
            return TD_ENOMEM;
        head = s->rcap - s->roff < s->rlen ? s->rcap - s->roff : s->rlen;
        if (s->rlen > 0) {
            memcpy(nb, s->rbuf + s->roff, head);
            memcpy(nb + head, s->rbuf, s->rlen - head);
        }
        free(s->rbuf);
        s->rbuf = nb;
        s->rcap = ncap;
        s->roff = 0;
    }
    tail = s->roff + s->rlen;
    if (tail >= s->rcap)
        tail -= s->rcap;
    first = s->rcap - tail < n ? s->rcap - tail : n;
    memcpy(s->rbuf + tail, p, first);
    memcpy(s->rbuf, p + first, n - first);
    s->rlen += n;
    return 0;
}

/* Hand the held bytes to the conn until it pauses us again or all are out,
 * then the end of the stream if it came after them.  Returns false when
 * the conn closed on the way: s is freed then. */
static bool jpc_deliver(struct jpc_stream *s)
{
    struct jp_client *cl = s->cl;
    uint16_t id = s->ls.id;

    if (s->delivering)
        return true; /* the outer call carries on */
    s->delivering = true;
    while (s->rlen > 0 && !s->paused) {
        size_t n = s->rcap - s->roff;
        if (n > s->rlen)
            n = s->rlen;
        if (n > TD_CHUNK_SIZE)
            n = TD_CHUNK_SIZE; /* one full relay chunk per call */
        conn_target_data(s->c, s->rbuf + s->roff, n);
        if (cl->by_id[id] != s)
            return false;
        s->roff += n;
        if (s->roff == s->rcap)
            s->roff = 0;
        s->rlen -= n;
        if (cl->link_live)
            jp_link_stream_consumed(&cl->link, &s->ls, n);
        if (cl->by_id[id] != s)
            return false;
    }
    s->delivering = false;
    if (s->rlen == 0) {
        free(s->rbuf);
        s->rbuf = NULL;
        s->roff = s->rcap = 0;
    }
    if (cl->link_live)
        jp_link_stream_held(&cl->link, &s->ls, s->rlen);
    if (s->rlen == 0 && s->eof_pending) {
        s->eof_pending = false;
        conn_target_eof(s->c);
        return cl->by_id[id] == s;
    }
    return true;
}

static void jpc_addr_from_host(struct jp_addr *a, const char *host, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    a->port = port;
    if (td_ipv4_parse(host, strlen(host), a->ip) == 0) {
        a->atyp = JP_ATYP_IPV4;
    } else if (td_ipv6_parse(host, strlen(host), a->ip) == 0) {
        a->atyp = JP_ATYP_IPV6;
    } else {
        a->atyp = JP_ATYP_DOMAIN;
        snprintf(a->host, sizeof(a->host), "%s", host);
        a->host_len = (uint8_t)strlen(a->host);
    }
}

static void jpc_send_connect(struct jp_client *cl, struct jpc_stream *s)
{
    struct jp_msg m;
    uint16_t id;

    if (cl->n_streams > cl->cfg->max_streams || jpc_alloc_id(cl, &id) != 0) {
        struct conn *c = s->c;
        jpc_stream_free(s);
        c->tops = NULL;
        conn_target_failed(c, TD_ELIMIT, "too many streams on the tunnel");
        return;
    }
    td_queue_remove(&s->wait_node);
    jp_link_stream_init(&s->ls, id);
    jp_link_stream_attach(&cl->link, &s->ls);
    cl->by_id[id] = s;
    s->st = JPS_CONNECTING;
    s->sent_at = uv_now(cl->d->loop);
    td_queue_insert_tail(&cl->connecting, &s->connecting_node);
    memset(&m, 0, sizeof(m));
    m.type = JP_MSG_TCP_CONNECT;
    m.id = id;
    m.addr = s->addr;
    if (jp_link_send_msg(&cl->link, &m) != 0) {
        struct conn *c = s->c;
        jpc_stream_free(s);
        c->tops = NULL;
        conn_target_failed(c, TD_EIO, "cannot queue the Connect request");
    }
}

/* ---- conn_target_ops ----------------------------------------------------------- */

static struct jpc_stream *jpc_of(struct conn *c)
{
    return c->tstream;
}

static int jpc_op_write(struct conn *c, const uint8_t *p, size_t len)
{
    struct jpc_stream *s = jpc_of(c);
    struct jp_client *cl = s->cl;
    size_t n;
    uint8_t *grown;

    if (s->st != JPS_OPEN || s->remote_done || !cl->link_live)
        return 0; /* the far end is gone; what the client still sends is moot */
    if (s->ovf_len == 0) {
        n = jp_link_stream_write(&cl->link, &s->ls, p, len);
        p += n;
        len -= n;
    }
    if (len == 0)
        return 0;
    /* The relay stops reading its client once pending() passes its mark, so
     * this holds at most one read's worth. */
    grown = realloc(s->ovf, s->ovf_len + len);
    if (!grown)
        return TD_ENOMEM;
    s->ovf = grown;
    memcpy(s->ovf + s->ovf_len, p, len);
    s->ovf_len += len;
    return 0;
}

static uint64_t jpc_op_pending(struct conn *c)
{
    struct jpc_stream *s = jpc_of(c);
    return jp_link_stream_queued(&s->ls) + s->ovf_len;
}

static void jpc_op_read_pause(struct conn *c, bool pause)
{
    struct jpc_stream *s = jpc_of(c);
    s->paused = pause;
    /* The conn takes target data at any time and re-checks its state after
     * this call, so what was held goes out at once. */
    if (!pause && s->rlen > 0 && s->st == JPS_OPEN && s->cl->link_live)
        jpc_deliver(s);
}

static void jpc_op_shutdown(struct conn *c)
{
    struct jpc_stream *s = jpc_of(c);
    /* jProxy has no half-close: Disconnect once the queued data is out. */
    if (s->st == JPS_OPEN && !s->remote_done && s->cl->link_live && s->ovf_len == 0)
        jp_link_stream_finish(&s->cl->link, &s->ls);
}

static void jpc_op_close(struct conn *c)
{
    struct jpc_stream *s = jpc_of(c);
    struct jp_client *cl = s->cl;

    c->tstream = NULL;
    /* Its owner gave up waiting (connect timeout) while the server sent
     * nothing at all: the health check decides whether the tunnel is dead. */
    if (s->st == JPS_CONNECTING && cl->link_live && !jp_link_over_cap(&cl->link) &&
        cl->last_rx <= s->sent_at &&
        uv_now(cl->d->loop) - s->sent_at >= cl->d->cfg->limits.connect_timeout_ms / 2 &&
        !cl->stalled_at)
        cl->stalled_at = s->sent_at ? s->sent_at : 1;
    if ((s->st == JPS_OPEN || s->st == JPS_CONNECTING) && !s->remote_done && cl->link_live &&
        !s->ls.finished)
        jpc_send_disconnect(cl, s);
    jpc_stream_free(s);
}

static const struct conn_target_ops jpc_ops = {
    jpc_op_write, jpc_op_pending, jpc_op_read_pause, jpc_op_shutdown, jpc_op_close,
};

static void jp_client_open(struct jp_client *cl, struct conn *c, const char *host, uint16_t port)
{
    struct jpc_stream *s;

    if (cl->state == JPC_STOPPED) {
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
    s->st = JPS_WAITING;
    jpc_addr_from_host(&s->addr, host, port);
    td_queue_insert_tail(&cl->waiting, &s->wait_node);
    cl->n_streams++;
    cl->streams_total++;
    c->tops = &jpc_ops;
    c->tstream = s;
    /* The whole wait, tunnel included, is bounded by connect_timeout. */
    conn_arm_timer(c, cl->d->cfg->limits.connect_timeout_ms);
    if (cl->state == JPC_UP)
        jpc_send_connect(cl, s);
    else if (cl->state == JPC_DOWN)
        jpc_connect(cl);
}

/* ---- UDP flows (extension) ------------------------------------------------ */

static int jp_client_udp_supported(const struct jp_client *cl)
{
    if (cl->state != JPC_UP)
        return -1;
    return cl->extensions ? 1 : 0;
}

static void jpu_free(struct jp_udp_flow *f)
{
    struct jp_client *cl = f->cl;
    if (f->st == JPU_WAITING)
        td_queue_remove(&f->node);
    else if (cl->udp_by_id[f->id] == f) {
        cl->udp_by_id[f->id] = NULL;
        cl->n_udp--;
    }
    for (int i = 0; i < f->nq; i++)
        free(f->q[i]);
    free(f);
}

static void jpu_send_packet(struct jp_udp_flow *f, const uint8_t *p, size_t len)
{
    struct jp_msg m;
    memset(&m, 0, sizeof(m));
    m.type = JP_MSG_UDP_PACKET;
    m.id = f->id;
    m.data = p;
    m.data_len = (uint16_t)len;
    jp_link_send_msg(&f->cl->link, &m);
}

/* Returns -1 (and leaves f WAITING, with no callback) when no id is free
 * and quiet is set; otherwise failures are reported through closed_cb. */
static int jpu_associate(struct jp_client *cl, struct jp_udp_flow *f, bool quiet)
{
    struct jp_msg m;
    uint32_t id = 0;

    for (uint32_t n = 0; n < JPC_IDS - 1; n++) {
        uint32_t cand = cl->udp_next_id;
        cl->udp_next_id = cl->udp_next_id >= JPC_IDS - 1 ? 1 : cl->udp_next_id + 1;
        if (!cl->udp_by_id[cand]) {
            id = cand;
            break;
        }
    }
    if ((id == 0 || !cl->extensions) && quiet)
        return -1;
    td_queue_remove(&f->node);
    if (id == 0 || !cl->extensions) {
        f->st = JPU_ASSOCIATING; /* off every list: freed by the owner's close */
        f->id = 0;
        if (f->closed_cb)
            f->closed_cb(f->arg);
        return -1;
    }
    f->id = (uint16_t)id;
    f->st = JPU_ASSOCIATING;
    cl->udp_by_id[id] = f;
    cl->n_udp++;
    memset(&m, 0, sizeof(m));
    m.type = JP_MSG_UDP_ASSOCIATE;
    m.id = f->id;
    m.local_port = 0;
    m.addr = f->addr;
    jp_link_send_msg(&cl->link, &m);
    return 0;
}

static struct jp_udp_flow *jp_client_udp_open(struct jp_client *cl, const char *host, uint16_t port,
                                              jp_udp_recv_cb recv_cb, jp_udp_closed_cb closed_cb,
                                              void *arg)
{
    struct jp_udp_flow *f;
    if (cl->state == JPC_STOPPED || (cl->state == JPC_UP && !cl->extensions))
        return NULL;
    f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->cl = cl;
    f->st = JPU_WAITING;
    f->recv_cb = recv_cb;
    f->closed_cb = closed_cb;
    f->arg = arg;
    jpc_addr_from_host(&f->addr, host, port);
    td_queue_insert_tail(&cl->udp_waiting, &f->node);
    if (cl->state == JPC_UP) {
        if (jpu_associate(cl, f, true) != 0) {
            jpu_free(f);
            return NULL;
        }
    } else if (cl->state == JPC_DOWN)
        jpc_connect(cl);
    return f;
}

static void jp_client_udp_send(struct jp_udp_flow *f, const uint8_t *p, size_t len)
{
    if (len > JP_PACKET_DATA_MAX)
        return; /* never split a datagram */
    if (f->st == JPU_OPEN && f->cl->link_live) {
        jpu_send_packet(f, p, len);
        return;
    }
    if (f->nq < JPC_UDP_QUEUE) {
        f->q[f->nq] = malloc(len ? len : 1);
        if (!f->q[f->nq])
            return;
        memcpy(f->q[f->nq], p, len);
        f->qlen[f->nq++] = (uint16_t)len;
    }
}

static void jp_client_udp_close(struct jp_udp_flow *f)
{
    struct jp_client *cl = f->cl;
    if ((f->st == JPU_OPEN || f->st == JPU_ASSOCIATING) && f->id && cl->link_live &&
        cl->state == JPC_UP) {
        struct jp_msg m;
        memset(&m, 0, sizeof(m));
        m.type = JP_MSG_UDP_DISSOCIATE;
        m.id = f->id;
        jp_link_send_msg(&cl->link, &m);
    }
    jpu_free(f);
}

/* The flow is over from the tunnel's side: tell the owner, who closes it. */
static void jpu_ended(struct jp_udp_flow *f)
{
    struct jp_client *cl = f->cl;
    if (cl->udp_by_id[f->id] == f) {
        cl->udp_by_id[f->id] = NULL;
        cl->n_udp--;
    }
    f->id = 0;
    f->st = JPU_ASSOCIATING;
    if (f->closed_cb)
        f->closed_cb(f->arg);
}

static void jpu_on_msg(struct jp_client *cl, const struct jp_msg *m)
{
    struct jp_udp_flow *f = cl->udp_by_id[m->id];
    if (!f)
        return;
    switch (m->type) {
    case JP_MSG_UDP_ASSOCIATE_REPLY:
        if (f->st != JPU_ASSOCIATING)
            return;
        if (m->status != JP_UDP_OK) {
            LOG_DEBUG("jproxy", "tunnel %s: UDP associate %u refused (status %u)", cl->name, m->id,
                      m->status);
            jpu_ended(f);
            return;
        }
        f->st = JPU_OPEN;
        for (int i = 0; i < f->nq; i++) {
            jpu_send_packet(f, f->q[i], f->qlen[i]);
            free(f->q[i]);
        }
        f->nq = 0;
        return;
    case JP_MSG_UDP_PACKET:
        if (f->st == JPU_OPEN && f->recv_cb)
            f->recv_cb(f->arg, m->data, m->data_len);
        return;
    case JP_MSG_UDP_DISSOCIATE:
        jpu_ended(f);
        return;
    default:
        return;
    }
}

/* ---- link callbacks -------------------------------------------------------- */

static void jpc_on_msg(struct jp_link *l, const struct jp_msg *m)
{
    struct jp_client *cl = l->ud;
    struct jpc_stream *s;
    struct conn *c;

    cl->last_rx = uv_now(cl->d->loop);
    cl->stalled_at = 0;
    if (m->type == JP_MSG_UDP_ASSOCIATE_REPLY || m->type == JP_MSG_UDP_PACKET ||
        m->type == JP_MSG_UDP_DISSOCIATE) {
        jpu_on_msg(cl, m);
        return;
    }
    s = cl->by_id[m->id];
    if (!s || !s->c)
        return; /* unknown or finished ids are ignored, as the Java peers do */
    c = s->c;
    switch (m->type) {
    case JP_MSG_TCP_CONNECT_REPLY:
        if (s->st != JPS_CONNECTING)
            return;
        if (m->status == JP_CONNECT_OK) {
            td_queue_remove(&s->connecting_node);
            s->st = JPS_OPEN;
            LOG_DEBUG("jproxy", "tunnel %s stream %u open in %u ms", cl->name, m->id, m->time_ms);
            conn_target_connected(c);
            return;
        }
        /* After a failure status the id is free on both sides. */
        s->remote_done = true;
        c->tops = NULL;
        c->tstream = NULL;
        jpc_stream_free(s);
        conn_target_failed(c, jp_connect_status_to_err(m->status),
                           jp_connect_status_str(m->status));
        return;
    case JP_MSG_TCP_PACKET:
        if (s->st != JPS_OPEN || s->remote_done)
            return;
        if (s->paused || s->rlen > 0) {
            /* The conn's queue toward its client is full: hold the data
             * here, compactly, and let the link pause the tunnel (the
             * peer's TCP then waits) rather than lose any of it. */
            int r = jpc_hold(s, m->data, m->data_len);
            if (r != 0) {
                LOG_WARN("jproxy", "tunnel %s stream %u: cannot hold %u more bytes (%zu held): %s",
                         cl->name, m->id, m->data_len, s->rlen, td_strerror(r));
                conn_target_reset(c, r);
                return;
            }
            jp_link_stream_held(&cl->link, &s->ls, s->rlen);
            if (!s->paused)
                jpc_deliver(s);
            return;
        }
        conn_target_data(c, m->data, m->data_len);
        /* The conn may have closed (and freed s) inside that call. */
        if (cl->by_id[m->id] != s)
            return;
        jp_link_stream_consumed(&cl->link, &s->ls, m->data_len);
        return;
    case JP_MSG_TCP_DISCONNECT:
        s->remote_done = true;
        if (s->st == JPS_CONNECTING) {
            c->tops = NULL;
            c->tstream = NULL;
            jpc_stream_free(s);
            conn_target_failed(c, TD_ECONNRESET, "the server closed the stream");
            return;
        }
        if (s->rlen > 0) {
            s->eof_pending = true; /* the data before it goes out first */
            return;
        }
        conn_target_eof(c);
        return;
    default:
        return;
    }
}

static void jpc_on_drain(struct jp_link *l, struct jp_link_stream *ls)
{
    struct jp_client *cl = l->ud;
    struct jpc_stream *s = td_container_of(ls, struct jpc_stream, ls);
    struct conn *c = s->c;

    if (s->ovf_len > 0) {
        size_t n = jp_link_stream_write(l, ls, s->ovf, s->ovf_len);
        memmove(s->ovf, s->ovf + n, s->ovf_len - n);
        s->ovf_len -= n;
        if (s->ovf_len > 0)
            return;
        if (c && c->side[SIDE_CLIENT].eof && !s->remote_done)
            jp_link_stream_finish(l, ls);
    }
    (void)cl;
    if (c && jpc_op_pending(c) <= c->d->cfg->limits.buffer / 2)
        conn_target_drained(c);
}

/* The server sent past the window we granted (logged by the link): that
 * stream is reset, the tunnel carries on. */
static void jpc_on_overrun(struct jp_link *l, struct jp_link_stream *ls)
{
    struct jp_client *cl = l->ud;
    struct jpc_stream *s = td_container_of(ls, struct jpc_stream, ls);
    struct conn *c = s->c;

    if (cl->by_id[ls->id] != s || s->remote_done)
        return;
    if (s->st == JPS_CONNECTING) {
        jpc_send_disconnect(cl, s);
        s->remote_done = true;
        c->tops = NULL;
        c->tstream = NULL;
        jpc_stream_free(s);
        conn_target_failed(c, TD_EPROTO, "protocol violation by the server");
        return;
    }
    conn_target_reset(c, TD_EPROTO); /* its close sends the Disconnect */
}

static void jpc_fail_streams(struct jp_client *cl, const char *why)
{
    /* Streams on the dead tunnel fail now; waiting ones keep waiting. */
    for (uint32_t id = 1; id < JPC_IDS && cl->n_streams > 0; id++) {
        struct jpc_stream *s = cl->by_id[id];
        struct conn *c;
        if (!s)
            continue;
        c = s->c;
        c->tops = NULL;
        c->tstream = NULL;
        if (s->st == JPS_CONNECTING) {
            jpc_stream_free(s);
            conn_target_failed(c, TD_ECONNRESET, why);
        } else {
            jpc_stream_free(s);
            conn_target_reset(c, TD_ECONNRESET);
        }
    }
}

static void jpu_end_all(struct jp_client *cl)
{
    for (uint32_t id = 1; id < JPC_IDS; id++)
        if (cl->udp_by_id[id])
            jpu_ended(cl->udp_by_id[id]);
}

static void jpc_on_link_close(struct jp_link *l, int err)
{
    struct jp_client *cl = l->ud;
    if (cl->state == JPC_STOPPED) {
        jpc_fail_streams(cl, "shutting down");
        jpu_end_all(cl);
        return;
    }
    uv_timer_stop(&cl->health);
    if (cl->idle_closing)
        LOG_INFO("jproxy", "tunnel %s closed after %llu ms idle; it reopens on demand", cl->name,
                 (unsigned long long)cl->d->cfg->limits.idle_timeout_ms);
    else
        LOG_WARN("jproxy", "tunnel %s to %s:%u lost: %s", cl->name, cl->cfg->jp_server.host,
                 cl->cfg->jp_server.port, td_strerror(err));
    jpc_set_state(cl, JPC_CLOSING);
    jpc_fail_streams(cl, "the tunnel was lost");
    jpu_end_all(cl);
}

static void on_backoff_timer(uv_timer_t *t);

static void jpc_on_link_closed(struct jp_link *l)
{
    struct jp_client *cl = l->ud;
    cl->link_live = false;
    jp_link_free(l);
    if (cl->state == JPC_STOPPED)
        return;
    if (cl->idle_closing) {
        cl->idle_closing = false;
        jpc_set_state(cl, JPC_DOWN);
        /* A request may have arrived while the link was closing. */
        if (!td_queue_empty(&cl->waiting) || !td_queue_empty(&cl->udp_waiting))
            jpc_connect(cl);
        return;
    }
    jpc_tunnel_failed(cl, NULL);
}

/* The protocol has no keepalive.  TCP keepalive (dial.c) finds a dead peer
 * host in minutes; this finds a wedged server sooner: a Connect that got no
 * answer, while nothing at all came from the server, within connect_timeout.
 * It also closes a tunnel that carried nothing for idle_timeout. */
static void on_health_timer(uv_timer_t *t)
{
    struct jp_client *cl = t->data;
    const struct cfg_limits *lim = &cl->d->cfg->limits;
    uint64_t now = uv_now(cl->d->loop);

    if (cl->state != JPC_UP || !cl->link_live)
        return;
    if (jp_link_over_cap(&cl->link)) {
        /* We are not reading the tunnel (a stream holds all it may until
         * its client reads): the server's answers may be waiting in the
         * socket, so its silence proves nothing until we read again. */
        cl->last_rx = now;
        cl->stalled_at = 0;
    }
    {
        uint64_t since = cl->stalled_at;
        if (!td_queue_empty(&cl->connecting)) {
            struct jpc_stream *s =
                td_container_of(cl->connecting.next, struct jpc_stream, connecting_node);
            if (now - s->sent_at >= lim->connect_timeout_ms && cl->last_rx <= s->sent_at &&
                (!since || s->sent_at < since))
                since = s->sent_at ? s->sent_at : 1;
        }
        if (since && cl->last_rx <= since) {
            LOG_WARN("jproxy", "tunnel %s: no answer from the server for %llu ms; reconnecting",
                     cl->name, (unsigned long long)(now - since));
            cl->stalled_at = 0;
            jp_link_close(&cl->link, TD_ETIMEDOUT);
            return;
        }
    }
    if (cl->n_streams > 0 || cl->n_udp > 0 || !td_queue_empty(&cl->waiting))
        cl->last_busy = now;
    else if (now - cl->last_busy >= lim->idle_timeout_ms) {
        cl->idle_closing = true;
        jp_link_close(&cl->link, TD_ECANCELED);
    }
}

/* jProxy has no half-close: once our Disconnect is out the server drops the
 * target, so nothing more can arrive on this stream. */
static void jpc_on_finished(struct jp_link *l, struct jp_link_stream *ls)
{
    struct jpc_stream *s = td_container_of(ls, struct jpc_stream, ls);
    struct conn *c = s->c;
    (void)l;
    if (!c || s->remote_done)
        return;
    s->remote_done = true;
    if (s->rlen > 0) {
        s->eof_pending = true; /* after the data still held for the conn */
        return;
    }
    conn_target_eof(c); /* may free s */
}

static const struct jp_link_cbs jpc_link_cbs = {
    .on_msg = jpc_on_msg,
    .on_drain = jpc_on_drain,
    .on_close = jpc_on_link_close,
    .on_closed = jpc_on_link_closed,
    .on_overrun = jpc_on_overrun,
};

/* ---- the tunnel ---------------------------------------------------------- */

static void jpc_drop_tcp(struct jp_client *cl)
{
    if (cl->tcp) {
        td_tcp_close_free(cl->d, cl->tcp);
        cl->tcp = NULL;
    }
}

/* The handshake buffer held the encrypted session key and the first frames. */
static void jpc_hs_wipe(struct jp_client *cl)
{
    td_wipe(cl->hs, sizeof(cl->hs));
    cl->hs_len = 0;
}

/* Back off, then reconnect: the tunnel is kept up for the next request. */
static void jpc_tunnel_failed(struct jp_client *cl, const char *why)
{
    jpc_hs_wipe(cl);
    if (why)
        LOG_WARN("jproxy", "tunnel %s to %s:%u: %s", cl->name, cl->cfg->jp_server.host,
                 cl->cfg->jp_server.port, why);
    jpc_drop_tcp(cl);
    if (cl->state == JPC_STOPPED)
        return;
    cl->backoff_ms = cl->backoff_ms ? cl->backoff_ms * 2 : JPC_BACKOFF_MIN;
    if (cl->backoff_ms > cl->cfg->reconnect_max_ms)
        cl->backoff_ms = cl->cfg->reconnect_max_ms;
    jpc_set_state(cl, JPC_BACKOFF);
    LOG_INFO("jproxy", "tunnel %s: reconnecting in %llu ms", cl->name,
             (unsigned long long)cl->backoff_ms);
    uv_timer_start(&cl->timer, on_backoff_timer, cl->backoff_ms, 0);
}

static void on_backoff_timer(uv_timer_t *t)
{
    struct jp_client *cl = t->data;
    if (cl->state != JPC_BACKOFF)
        return;
    jpc_set_state(cl, JPC_DOWN);
    jpc_connect(cl);
}

static void on_handshake_timer(uv_timer_t *t)
{
    struct jp_client *cl = t->data;
    if (cl->state == JPC_HELLO || cl->state == JPC_LOGIN)
        jpc_tunnel_failed(cl, "handshake timed out");
}

static void jpc_up(struct jp_client *cl, const uint8_t *rest, size_t rest_len,
                   const uint8_t ct[JP_RSA_CT_LEN])
{
    uint8_t k[JP_KEY_LEN];
    uv_tcp_t *tcp = cl->tcp;
    int r = jp_login_open(&cl->key.key, ct, k);

    if (r != 0) {
        td_wipe(k, sizeof(k));
        jpc_tunnel_failed(cl, "cannot decrypt the session key: wrong key file?");
        return;
    }
    uv_read_stop((uv_stream_t *)tcp);
    cl->tcp = NULL; /* the link owns it now */
    cl->link.on_finished = jpc_on_finished;
    cl->link.name = cl->label;
    r = jp_link_start(&cl->link, cl->d, tcp, k, JP_DIR_S2C, cl->extensions, &jpc_link_cbs, cl, rest,
                      rest_len);
    td_wipe(k, sizeof(k));
    jpc_hs_wipe(cl); /* rest and ct pointed into it */
    if (r != 0) {
        cl->tcp = tcp;
        jpc_tunnel_failed(cl, "cannot start the tunnel");
        return;
    }
    cl->link_live = true;
    cl->backoff_ms = 0;
    cl->last_rx = cl->last_busy = uv_now(cl->d->loop);
    cl->stalled_at = 0;
    uv_timer_start(&cl->health, on_health_timer, JPC_HEALTH_TICK_MS, JPC_HEALTH_TICK_MS);
    cl->tunnels_opened++;
    uv_timer_stop(&cl->timer);
    jpc_set_state(cl, JPC_UP);
    LOG_INFO("jproxy", "tunnel %s up to %s:%u (%s peer)", cl->name, cl->cfg->jp_server.host,
             cl->cfg->jp_server.port, cl->extensions ? "tunneld" : "jProxy 3");
    while (!td_queue_empty(&cl->waiting) && cl->state == JPC_UP) {
        struct jpc_stream *s = td_container_of(cl->waiting.next, struct jpc_stream, wait_node);
        jpc_send_connect(cl, s);
    }
    while (!td_queue_empty(&cl->udp_waiting) && cl->state == JPC_UP) {
        struct jp_udp_flow *f = td_container_of(cl->udp_waiting.next, struct jp_udp_flow, node);
        jpu_associate(cl, f, false);
    }
}

static void jpc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct jp_client *cl = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)cl->hs + cl->hs_len, (unsigned)(sizeof(cl->hs) - cl->hs_len));
}

static void jpc_on_hs_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct jp_client *cl = st->data;
    size_t used;
    (void)buf;

    if (nread < 0) {
        jpc_tunnel_failed(cl, nread == UV_EOF ? "server closed during the handshake"
                                              : uv_strerror((int)nread));
        return;
    }
    cl->hs_len += (size_t)nread;
    if (cl->state == JPC_HELLO) {
        struct jp_hello_reply hr;
        int r = jp_hello_reply_parse(cl->hs, cl->hs_len, &used, &hr);
        if (r == TD_EAGAIN)
            return;
        if (r != 0 || !hr.accepted) {
            jpc_tunnel_failed(cl, "the server refused the protocol version");
            return;
        }
        cl->extensions = hr.tunneld;
        memmove(cl->hs, cl->hs + used, cl->hs_len - used);
        cl->hs_len -= used;
        jpc_set_state(cl, JPC_LOGIN);
        {
            uv_buf_t b = uv_buf_init((char *)cl->key.token, JP_TOKEN_LEN);
            if (uv_try_write((uv_stream_t *)cl->tcp, &b, 1) != JP_TOKEN_LEN) {
                jpc_tunnel_failed(cl, "cannot send the login token");
                return;
            }
        }
    }
    if (cl->state == JPC_LOGIN) {
        struct jp_login_reply lr;
        int r = jp_login_reply_parse(cl->hs, cl->hs_len, &used, &lr);
        if (r == TD_EAGAIN)
            return;
        if (r != 0) {
            jpc_tunnel_failed(cl, "malformed login reply");
            return;
        }
        if (lr.status != JP_LOGIN_OK) {
            jpc_tunnel_failed(cl, "the server does not know our key (login refused)");
            return;
        }
        jpc_up(cl, cl->hs + used, cl->hs_len - used, lr.ct);
    }
}

static void on_tunnel_dialed(void *arg, int status, uv_tcp_t *tcp, uint64_t elapsed_ms)
{
    struct jp_client *cl = arg;
    uint8_t hello[JP_HELLO_LEN];
    uv_buf_t b;
    (void)elapsed_ms;

    cl->dial = NULL;
    if (cl->state != JPC_DIALING) {
        if (tcp)
            td_tcp_close_free(cl->d, tcp);
        return;
    }
    if (status != 0) {
        jpc_tunnel_failed(cl, td_strerror(status));
        return;
    }
    cl->tcp = tcp;
    tcp->data = cl;
    cl->hs_len = 0;
    jp_hello_encode(hello, JP_MINOR_TUNNELD);
    b = uv_buf_init((char *)hello, sizeof(hello));
    if (uv_try_write((uv_stream_t *)tcp, &b, 1) != (int)sizeof(hello) ||
        uv_read_start((uv_stream_t *)tcp, jpc_alloc, jpc_on_hs_read) != 0) {
        jpc_tunnel_failed(cl, "cannot send the handshake");
        return;
    }
    jpc_set_state(cl, JPC_HELLO);
    uv_timer_start(&cl->timer, on_handshake_timer, cl->d->cfg->limits.handshake_timeout_ms, 0);
}

static void jpc_connect(struct jp_client *cl)
{
    struct td_dial_opts o;
    o.dns_timeout_ms = cl->d->cfg->limits.dns_timeout_ms;
    o.connect_timeout_ms = cl->d->cfg->limits.connect_timeout_ms;
    o.rules = NULL; /* our own server: the config names it */
    jpc_set_state(cl, JPC_DIALING);
    cl->dial = td_dial_start(cl->d, cl->cfg->jp_server.host, cl->cfg->jp_server.port, &o,
                             on_tunnel_dialed, cl);
    if (!cl->dial)
        jpc_tunnel_failed(cl, "cannot start connecting");
}

/* ---- life ------------------------------------------------------------------ */

static int jpc_load_key(struct jp_client *cl)
{
    const struct cfg_tunnel *t = cl->cfg;
    int r;

    if (t->key_file)
        return jp_client_key_read(t->key_file, &cl->key);
    {
        uint8_t *pem = NULL;
        size_t len = 0;
        r = td_fs_read_file(t->private_key, JP_KEY_FILE_MAX, &pem, &len);
        if (r != 0)
            return r;
        r = td_pk_parse_private(&cl->key.key, pem, len);
        memset(pem, 0, len);
        free(pem);
        if (r != 0)
            return r;
        if (!td_pk_is_rsa(&cl->key.key, JP_RSA_BITS, JP_RSA_EXPONENT))
            return TD_EUNSUPPORTED;
        for (size_t i = 0; i < JP_TOKEN_LEN; i++) {
            unsigned v;
            if (sscanf(t->token + 2 * i, "%2x", &v) != 1)
                return TD_EINVAL;
            cl->key.token[i] = (uint8_t)v;
        }
        return 0;
    }
}

/* Link number index (0 for the first) of a tunnel. */
static int jp_client_create(struct td_daemon *d, const struct cfg_tunnel *cfg, int index,
                            struct jp_client **out)
{
    struct jp_client *cl = calloc(1, sizeof(*cl));
    int r;

    if (!cl)
        return TD_ENOMEM;
    cl->d = d;
    cl->cfg = cfg;
    if (index == 0)
        snprintf(cl->name, sizeof(cl->name), "%s", cfg->name);
    else
        snprintf(cl->name, sizeof(cl->name), "%s#%d", cfg->name, index + 1);
    snprintf(cl->label, sizeof(cl->label), "tunnel %s", cl->name);
    cl->next_id = 1;
    cl->udp_next_id = 1;
    td_queue_init(&cl->waiting);
    td_queue_init(&cl->udp_waiting);
    jp_client_key_init(&cl->key);
    cl->by_id = calloc(JPC_IDS, sizeof(*cl->by_id));
    cl->udp_by_id = calloc(JPC_IDS, sizeof(*cl->udp_by_id));
    if (!cl->by_id || !cl->udp_by_id) {
        free(cl->by_id);
        free(cl->udp_by_id);
        free(cl);
        return TD_ENOMEM;
    }
    r = jpc_load_key(cl);
    if (r != 0) {
        LOG_ERROR("jproxy", "tunnel %s: cannot load the key (%s): %s", cl->name,
                  cfg->key_file ? cfg->key_file : cfg->private_key, td_strerror(r));
        jp_client_key_free(&cl->key);
        free(cl->by_id);
        free(cl->udp_by_id);
        free(cl);
        return r;
    }
    uv_timer_init(d->loop, &cl->timer);
    cl->timer.data = cl;
    uv_timer_init(d->loop, &cl->health);
    cl->health.data = cl;
    td_queue_init(&cl->connecting);
    *out = cl;
    return 0;
}

static void jp_client_shutdown(struct jp_client *cl)
{
    enum jpc_state was = cl->state;
    jpc_set_state(cl, JPC_STOPPED);
    uv_timer_stop(&cl->timer);
    if (!uv_is_closing((uv_handle_t *)&cl->timer))
        uv_close((uv_handle_t *)&cl->timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&cl->health))
        uv_close((uv_handle_t *)&cl->health, NULL);
    if (cl->dial) {
        td_dial_cancel(cl->dial);
        cl->dial = NULL;
    }
    jpc_drop_tcp(cl);
    while (!td_queue_empty(&cl->waiting)) {
        struct jpc_stream *s = td_container_of(cl->waiting.next, struct jpc_stream, wait_node);
        struct conn *c = s->c;
        c->tops = NULL;
        c->tstream = NULL;
        jpc_stream_free(s);
        conn_target_failed(c, TD_ECANCELED, "shutting down");
    }
    while (!td_queue_empty(&cl->udp_waiting)) {
        struct jp_udp_flow *f = td_container_of(cl->udp_waiting.next, struct jp_udp_flow, node);
        td_queue_remove(&f->node);
        f->st = JPU_ASSOCIATING;
        if (f->closed_cb)
            f->closed_cb(f->arg);
    }
    jpu_end_all(cl);
    if (cl->link_live && was != JPC_CLOSING) {
        jpc_fail_streams(cl, "shutting down");
        jp_link_close(&cl->link, TD_ECANCELED);
    }
}

static void jp_client_free(struct jp_client *cl)
{
    if (!cl)
        return;
    jp_client_key_free(&cl->key);
    free(cl->by_id);
    free(cl->udp_by_id);
    free(cl);
}

/* ---- SOCKS5 UDP associations (struct td_udp_flow) ---------------------------
 * The extension's UDP flows carry no address: each goes to one destination.
 * A SOCKS5 association names a destination in every datagram, so it holds a
 * flow per destination, up to JPC_UDP_DESTS, the least recently used making
 * room; replies carry the destination they came from. */

#define JPC_UDP_DESTS 16

struct jpc_udp_dest {
    struct td_udp_flow *owner;
    struct jp_udp_flow *f;
    struct socks5_addr dst; /* as the client named it; replies carry it */
    uint64_t last_used;
};

struct td_udp_flow {
    struct jp_client *cl;
    const struct td_udp_cbs *cbs;
    void *arg;
    struct jpc_udp_dest dests[JPC_UDP_DESTS];
};

static bool jpc_addr_eq(const struct socks5_addr *a, const struct socks5_addr *b)
{
    if (a->atyp != b->atyp || a->port != b->port)
        return false;
    if (a->atyp == SOCKS5_ATYP_DOMAIN)
        return strcmp(a->host, b->host) == 0;
    return memcmp(a->ip, b->ip, a->atyp == SOCKS5_ATYP_IPV4 ? 4 : 16) == 0;
}

static void jpc_dest_recv(void *arg, const uint8_t *p, size_t len)
{
    struct jpc_udp_dest *de = arg;
    struct td_udp_flow *u = de->owner;

    de->last_used = uv_now(u->cl->d->loop);
    u->cbs->recv(u->arg, &de->dst, p, len);
}

static void jpc_dest_drop(struct jpc_udp_dest *de)
{
    if (de->f)
        jp_client_udp_close(de->f);
    de->f = NULL;
}

/* The tunnel ended this destination's flow: the next datagram opens one. */
static void jpc_dest_closed(void *arg)
{
    jpc_dest_drop(arg);
}

static struct jp_client *jpc_first(struct td_tunnel *t);

static struct td_udp_flow *jpc_udp_open(struct td_tunnel *t, const struct td_udp_cbs *cbs,
                                        void *arg)
{
    struct jp_client *cl = jpc_first(t);
    struct td_udp_flow *u;

    if (cl->state == JPC_STOPPED)
        return NULL;
    u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->cl = cl;
    u->cbs = cbs;
    u->arg = arg;
    return u;
}

static int jpc_udp_send(struct td_udp_flow *u, const struct socks5_addr *dst, const uint8_t *p,
                        size_t len)
{
    struct jpc_udp_dest *de = NULL, *lru = &u->dests[0];
    char host[256];

    for (int i = 0; i < JPC_UDP_DESTS; i++) {
        struct jpc_udp_dest *x = &u->dests[i];
        if (x->f && jpc_addr_eq(&x->dst, dst)) {
            de = x;
            break;
        }
        if (!x->f || (lru->f && x->last_used < lru->last_used))
            lru = x;
    }
    if (!de) {
        de = lru;
        jpc_dest_drop(de);
        de->owner = u;
        de->dst = *dst;
        socks5_addr_host(dst, host, sizeof(host));
        de->f = jp_client_udp_open(u->cl, host, dst->port, jpc_dest_recv, jpc_dest_closed, de);
        if (!de->f)
            return TD_EIO;
    }
    de->last_used = uv_now(u->cl->d->loop);
    jp_client_udp_send(de->f, p, len);
    return 0;
}

static void jpc_udp_close(struct td_udp_flow *u)
{
    for (int i = 0; i < JPC_UDP_DESTS; i++)
        jpc_dest_drop(&u->dests[i]);
    free(u);
}

/* ---- the tunnel kind (struct td_tunnel_ops) -----------------------------------
 * A tunnel is a set of links (each a struct jp_client: one TCP connection
 * to the server with its own login, reconnects and stream ids).  The first
 * is dialled up front; a stream goes to the first link with fewer than
 * max_streams streams, and when every link is full another one is opened,
 * up to JPC_MAX_LINKS.  So max_streams is per link, and a tunnels: entry
 * holds up to JPC_MAX_LINKS * max_streams connections (the default 1024
 * gives 65 536), with no stream id space shared between links.  UDP
 * associations use the first link.  An extra link that goes idle closes
 * like the first (limits.idle_timeout) and is reopened on demand. */

#define JPC_MAX_LINKS 64

struct jpc_set {
    struct td_daemon *d;
    const struct cfg_tunnel *cfg;
    struct jp_client *links[JPC_MAX_LINKS];
    int n;
};

/* UDP associations go over the first link. */
static struct jp_client *jpc_first(struct td_tunnel *t)
{
    struct jpc_set *set = t->impl;
    return set->links[0];
}

static int jpc_create(struct td_tunnel *t)
{
    struct jpc_set *set = calloc(1, sizeof(*set));
    int r;

    if (!set)
        return TD_ENOMEM;
    set->d = t->d;
    set->cfg = t->cfg;
    r = jp_client_create(t->d, t->cfg, 0, &set->links[0]);
    if (r != 0) {
        free(set);
        return r;
    }
    set->n = 1;
    t->impl = set;
    return 0;
}

/* Up front, so that the first request does not wait for a handshake. */
static int jpc_start(struct td_tunnel *t)
{
    struct jpc_set *set = t->impl;
    struct jp_client *cl = set->links[0];
    if (cl->state == JPC_DOWN)
        jpc_connect(cl);
    return 0;
}

/* The link for one more stream: the first with room, else a new one. */
static struct jp_client *jpc_pick(struct jpc_set *set)
{
    struct jp_client *cl;

    for (int i = 0; i < set->n; i++)
        if (set->links[i]->state != JPC_STOPPED && set->links[i]->n_streams < set->cfg->max_streams)
            return set->links[i];
    if (set->n >= JPC_MAX_LINKS || set->links[0]->state == JPC_STOPPED)
        return set->links[0]; /* which refuses it: too many streams */
    if (jp_client_create(set->d, set->cfg, set->n, &cl) != 0)
        return set->links[0];
    set->links[set->n++] = cl;
    LOG_INFO("jproxy", "tunnel %s: %d links busy with %u streams each: opening link %s",
             set->cfg->name, set->n - 1, set->cfg->max_streams, cl->name);
    return cl;
}

static void jpc_open_stream(struct td_tunnel *t, struct conn *c, const char *host, uint16_t port)
{
    jp_client_open(jpc_pick(t->impl), c, host, port);
}

static int jpc_udp_supported(struct td_tunnel *t)
{
    struct jpc_set *set = t->impl;
    return jp_client_udp_supported(set->links[0]);
}

static void jpc_close(struct td_tunnel *t)
{
    struct jpc_set *set = t->impl;
    for (int i = 0; i < set->n; i++)
        jp_client_shutdown(set->links[i]);
}

static void jpc_free(struct td_tunnel *t)
{
    struct jpc_set *set = t->impl;
    if (!set)
        return;
    for (int i = 0; i < set->n; i++)
        jp_client_free(set->links[i]);
    free(set);
    t->impl = NULL;
}

static void jpc_stats(struct td_tunnel *t, struct td_tunnel_stats *out)
{
    struct jpc_set *set = t->impl;
    struct jp_client *first = set->links[0];

    memset(out, 0, sizeof(*out));
    out->state = first->state == JPC_UP ? "up" : jpc_state_names[first->state];
    for (int i = 0; i < set->n; i++) {
        struct jp_client *cl = set->links[i];
        out->streams += cl->n_streams;
        out->links += cl->link_live ? 1 : 0;
        out->links_opened += cl->tunnels_opened;
        out->streams_total += cl->streams_total;
    }
}

const struct td_tunnel_ops jp_tunnel_ops = {
    .create = jpc_create,
    .start = jpc_start,
    .open_stream = jpc_open_stream,
    .udp_supported = jpc_udp_supported,
    .udp_open = jpc_udp_open,
    .udp_send = jpc_udp_send,
    .udp_close = jpc_udp_close,
    .close = jpc_close,
    .free = jpc_free,
    .stats = jpc_stats,
};
