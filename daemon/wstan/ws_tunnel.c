/* The wstan tunnel core shared by the client and the server; see
 * ws_tunnel.h.  Everything protocol-shaped comes from common/wstan.c: this
 * file only moves messages between lws and the codec, in order, within caps. */
#include "wstan/ws_tunnel.h"

#include "crypto/crypto_stream.h"
#include "util/error.h"
#include "util/log.h"
#include "wstan/ws_lws.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Spec 5.3: ping intervals and pong deadlines, in ms. */
#define WS_TUN_PING_USE_MS  (400 * 1000)
#define WS_TUN_PONG_USE_MS  (30 * 1000)
#define WS_TUN_PING_POOL_MS (18 * 1000)
#define WS_TUN_PONG_POOL_MS (9 * 1000)
#define WS_TUN_PING_LEN     4
/* Receive buffers above this are freed after each message: big buffers
 * only while big messages flow.  A message that arrives whole in one lws
 * callback needs none (it is decoded where lws has it), and such a message
 * frees the reassembly buffer, so a quiet tunnel holds none. */
#define WS_TUN_RX_KEEP (64 * 1024)

enum ws_tun_kind {
    WS_TUN_MSG_DATA = 0, /* a DAT: counts against WS_TUN_SEND_CAP */
    WS_TUN_MSG_CTRL,     /* REQ, RST, DGM: always queued */
    WS_TUN_MSG_PING,
};

struct ws_tun_msg {
    struct ws_tun_msg *next;
    enum ws_tun_kind kind;
    size_t len;
    uint8_t buf[]; /* LWS_PRE bytes of headroom, then the payload */
};

struct ws_tun {
    struct td_daemon *d;
    struct lws *wsi; /* NULL once lws let go of it */
    enum wstan_role role;
    enum wstan_state st;
    bool tls_mode;
    double ts_window;
    struct wstan_key key;
    struct wstan_stream rx, tx;
    const struct ws_tun_cbs *cbs;
    void *ud;
    char label[128];

    /* One incoming message, reassembled from its fragments. */
    uint8_t *rx_buf;
    size_t rx_len, rx_cap;
    bool rx_binary;
    bool rx_paused;

    struct ws_tun_msg *q_head, *q_tail;
    size_t q_data; /* payload bytes of queued DATs */

    bool closing;      /* close requested: the next callback returns -1 */
    bool peer_closing; /* the peer's close frame is in: lws is answering it */
    bool closed_told;  /* on_closed has run */
    const char *why;   /* for on_closed */
    bool peer_ack;     /* the peer is tunneld: connect acknowledgements */
    int close_after;   /* ws_tun_close_after_queue(): code, once the queue is out */
    const char *close_after_why;

    uv_timer_t timer; /* pings */
    bool pooled;
    bool awaiting_pong;
    uint8_t ping[WS_TUN_PING_LEN];
};

static const char *ws_tun_kind_event(enum wstan_event ev)
{
    return wstan_event_name(ev);
}

static void ws_tun_set_state(struct ws_tun *t, enum wstan_state st, enum wstan_event ev)
{
    if (t->st != st)
        LOG_DEBUG("ws", "%s: %s -> %s (%s)", t->label, wstan_state_name(t->st),
                  wstan_state_name(st), ws_tun_kind_event(ev));
    t->st = st;
}

static double ws_tun_now(void)
{
    uv_timeval64_t tv;
    if (uv_gettimeofday(&tv) != 0)
        return 0;
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

void *ws_tun_ud(const struct ws_tun *t)
{
    return t->ud;
}

enum wstan_state ws_tun_state(const struct ws_tun *t)
{
    return t->st;
}

size_t ws_tun_queued(const struct ws_tun *t)
{
    return t->q_data;
}

void ws_tun_set_peer_ack(struct ws_tun *t, bool on)
{
    t->peer_ack = on;
}

bool ws_tun_peer_ack(const struct ws_tun *t)
{
    return t->peer_ack;
}

/* ---- the send queue ------------------------------------------------------ */

static struct ws_tun_msg *ws_tun_msg_new(size_t cap, enum ws_tun_kind kind)
{
    struct ws_tun_msg *m = malloc(sizeof(*m) + LWS_PRE + cap);
    if (!m)
        return NULL;
    m->next = NULL;
    m->kind = kind;
    m->len = 0;
    return m;
}

static int ws_tun_write_type(const struct ws_tun_msg *m)
{
    return m->kind == WS_TUN_MSG_PING ? LWS_WRITE_PING : LWS_WRITE_BINARY;
}

/* Send m at once when nothing is ahead of it: no message of ours queued,
 * no partial write of lws's pending, no close under way either way.  lws
 * then writes it with one send() (and keeps what the socket does not take,
 * which holds the next messages back until it is out), instead of a
 * POLLOUT round trip through the loop: asking for WRITEABLE and dropping
 * POLLOUT afterwards cost four epoll_ctl() calls and a wakeup per message.
 * Returns true when m is gone (sent, or the tunnel failed and closes). */
static bool ws_tun_write_now(struct ws_tun *t, struct ws_tun_msg *m)
{
    int n;

    if (!t->wsi || t->closing || t->peer_closing || t->q_head || lws_partial_buffered(t->wsi))
        return false;
    n = lws_write(t->wsi, m->buf + LWS_PRE, m->len, (enum lws_write_protocol)ws_tun_write_type(m));
    free(m);
    if (n < 0)
        ws_tun_close(t, WSTAN_CLOSE_NORMAL, "write failed");
    return true;
}

static void ws_tun_push(struct ws_tun *t, struct ws_tun_msg *m)
{
    if (ws_tun_write_now(t, m))
        return;
    if (t->q_tail)
        t->q_tail->next = m;
    else
        t->q_head = m;
    t->q_tail = m;
    if (m->kind == WS_TUN_MSG_DATA)
        t->q_data += m->len;
    if (t->wsi)
        lws_callback_on_writable(t->wsi);
}

static void ws_tun_queue_free(struct ws_tun *t)
{
    while (t->q_head) {
        struct ws_tun_msg *m = t->q_head;
        t->q_head = m->next;
        free(m);
    }
    t->q_tail = NULL;
    t->q_data = 0;
}

/* ---- closing ----------------------------------------------------------- */

/* A peer that does not answer our close frame is dropped after a short
 * grace, not lws's 5 s (a drain waits for it). */
static void ws_tun_on_close_grace(uv_timer_t *h)
{
    struct ws_tun *t = h->data;
    if (!t->wsi)
        return;
    LOG_DEBUG("ws", "%s: no answer to the close in %d ms: dropping the connection", t->label,
              WS_LWS_CLOSE_GRACE_MS);
    lws_set_timeout(t->wsi, PENDING_TIMEOUT_CLOSE_ACK, LWS_TO_KILL_ASYNC);
    lws_callback_on_writable(t->wsi);
}

void ws_tun_close(struct ws_tun *t, int code, const char *why)
{
    if (t->closing)
        return;
    t->closing = true;
    t->why = why;
    uv_timer_stop(&t->timer);
    if (!t->wsi)
        return;
    LOG_DEBUG("ws", "%s: closing (%d %s)", t->label, code, why ? why : "");
    lws_close_reason(t->wsi, (enum lws_close_status)code, NULL, 0);
    /* lws 4.1 takes -1 from a WRITEABLE callback (and most of its own
     * timeouts) for a dead socket and drops it without a close frame.  An
     * expired keep-alive timeout is the one close it does in good order:
     * the close frame with our code, then the peer's answer (or lws's close
     * timeout).  It runs from lws's own timer, never inside this call, so
     * this is safe from any callback.  A RECEIVE callback that sees
     * t->closing returns -1, which lws also handles in good order. */
    lws_set_timeout(t->wsi, PENDING_TIMEOUT_HTTP_KEEPALIVE_IDLE, LWS_TO_KILL_ASYNC);
    /* lws looks at its timers after it has serviced something: give it
     * something (the WRITEABLE callback does nothing while closing). */
    lws_callback_on_writable(t->wsi);
    uv_timer_start(&t->timer, ws_tun_on_close_grace, WS_LWS_CLOSE_GRACE_MS, 0);
}

void ws_tun_close_after_queue(struct ws_tun *t, int code, const char *why)
{
    if (t->closing)
        return;
    if (!t->q_head) {
        ws_tun_close(t, code, why);
        return;
    }
    t->close_after = code;
    t->close_after_why = why;
}

/* A protocol error from the peer: logged once, then close with code. */
static int ws_tun_fail(struct ws_tun *t, int code, const char *why)
{
    LOG_INFO("ws", "%s: closing: %s", t->label, why);
    ws_tun_close(t, code, why);
    return -1;
}

static void ws_tun_on_timer_closed(uv_handle_t *h)
{
    struct ws_tun *t = h->data;
    wstan_key_clear(&t->key);
    free(t);
}

void ws_tun_on_wsi_closed(struct ws_tun *t)
{
    if (!t || t->closed_told)
        return;
    t->closed_told = true;
    t->wsi = NULL;
    uv_timer_stop(&t->timer);
    ws_tun_queue_free(t);
    free(t->rx_buf);
    t->rx_buf = NULL;
    t->rx_len = t->rx_cap = 0;
    wstan_stream_free(&t->rx);
    wstan_stream_free(&t->tx);
    if (t->cbs->on_closed)
        t->cbs->on_closed(t, t->why ? t->why : "closed by the peer");
    uv_close((uv_handle_t *)&t->timer, ws_tun_on_timer_closed);
}

/* ---- pings (spec 5.3) ------------------------------------------------------ */

static void ws_tun_arm(struct ws_tun *t);

static void ws_tun_on_timer(uv_timer_t *h)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct ws_tun *t = h->data;
    struct ws_tun_msg *m;

    if (t->closing || !t->wsi)
        return;
    if (t->awaiting_pong) {
        ws_tun_fail(t, WSTAN_CLOSE_NORMAL, "no pong in time");
        return;
    }
    m = ws_tun_msg_new(WS_TUN_PING_LEN, WS_TUN_MSG_PING);
    if (!m || td_random(t->ping, sizeof(t->ping)) != 0) {
        free(m);
        ws_tun_arm(t);
        return;
    }
    for (size_t i = 0; i < WS_TUN_PING_LEN; i++)
        t->ping[i] = (uint8_t)b64[t->ping[i] & 63];
    memcpy(m->buf + LWS_PRE, t->ping, WS_TUN_PING_LEN);
    m->len = WS_TUN_PING_LEN;
    t->awaiting_pong = true;
    ws_tun_push(t, m);
    uv_timer_start(&t->timer, ws_tun_on_timer, t->pooled ? WS_TUN_PONG_POOL_MS : WS_TUN_PONG_USE_MS,
                   0);
}

static void ws_tun_arm(struct ws_tun *t)
{
    if (t->closing)
        return;
    uv_timer_start(&t->timer, ws_tun_on_timer, t->pooled ? WS_TUN_PING_POOL_MS : WS_TUN_PING_USE_MS,
                   0);
}

void ws_tun_on_pong(struct ws_tun *t, const void *in, size_t len)
{
    if (!t->awaiting_pong || len != WS_TUN_PING_LEN || memcmp(in, t->ping, len) != 0)
        return; /* unsolicited pongs are allowed (RFC 6455 5.5.3) */
    t->awaiting_pong = false;
    ws_tun_arm(t);
}

void ws_tun_on_peer_close(struct ws_tun *t)
{
    t->peer_closing = true;
}

void ws_tun_set_pooled(struct ws_tun *t, bool pooled)
{
    if (t->pooled == pooled)
        return;
    t->pooled = pooled;
    if (!t->awaiting_pong)
        ws_tun_arm(t);
}

/* ---- creation -------------------------------------------------------------- */

struct ws_tun *ws_tun_new(struct td_daemon *d, struct lws *wsi, const struct ws_tun_params *p,
                          const struct ws_tun_cbs *cbs, void *ud)
{
    struct ws_tun *t = calloc(1, sizeof(*t));
    struct wstan_stream *up, *down;
    int r;

    if (!t)
        return NULL;
    t->d = d;
    t->wsi = wsi;
    t->role = p->role;
    t->st = p->state;
    t->tls_mode = p->tls_mode;
    t->ts_window = p->ts_window > 0 ? p->ts_window : WSTAN_TS_WINDOW;
    t->key = *p->key;
    t->cbs = cbs;
    t->ud = ud;
    snprintf(t->label, sizeof(t->label), "%s", p->label ? p->label : "wstan tunnel");
    up = p->role == WSTAN_SERVER ? &t->rx : &t->tx;
    down = p->role == WSTAN_SERVER ? &t->tx : &t->rx;
    r = wstan_stream_init(up, &t->key, p->tls_mode ? NULL : p->nc, p->tls_mode);
    if (r == 0)
        r = wstan_stream_init(down, &t->key, p->tls_mode ? NULL : p->ns, p->tls_mode);
    if (r == 0 && p->up_skip > 0)
        r = wstan_stream_skip(up, p->up_skip);
    if (r != 0) {
        wstan_stream_free(&t->rx);
        wstan_stream_free(&t->tx);
        wstan_key_clear(&t->key);
        free(t);
        return NULL;
    }
    uv_timer_init(d->loop, &t->timer);
    t->timer.data = t;
    ws_tun_arm(t);
    return t;
}

/* ---- sending ------------------------------------------------------------------ */

size_t ws_tun_send_dat(struct ws_tun *t, const uint8_t *p, size_t len)
{
    size_t taken = 0;

    if (t->closing || !t->wsi)
        return len; /* dropped: the tunnel is going away */
    while (taken < len && t->q_data < WS_TUN_SEND_CAP) {
        size_t n = len - taken, room = WS_TUN_SEND_CAP - t->q_data;
        struct ws_tun_msg *m;
        if (n > WS_TUN_DAT_CHUNK)
            n = WS_TUN_DAT_CHUNK;
        if (n > room && room > 0)
            n = room;
        m = ws_tun_msg_new(WSTAN_DAT_SIZE(n), WS_TUN_MSG_DATA);
        if (!m)
            break;
        if (wstan_encode_dat(&t->tx, p + taken, n, m->buf + LWS_PRE, WSTAN_DAT_SIZE(n), &m->len) !=
            0) {
            free(m);
            break;
        }
        ws_tun_push(t, m);
        taken += n;
    }
    return taken;
}

/* The empty DAT that tells a tunneld client its target is connected. */
static int ws_tun_send_ack(struct ws_tun *t)
{
    struct ws_tun_msg *m = ws_tun_msg_new(WSTAN_DAT_SIZE(0), WS_TUN_MSG_CTRL);
    if (!m)
        return TD_ENOMEM;
    if (wstan_encode_dat(&t->tx, NULL, 0, m->buf + LWS_PRE, WSTAN_DAT_SIZE(0), &m->len) != 0) {
        free(m);
        return TD_EINVAL;
    }
    ws_tun_push(t, m);
    return 0;
}

static int ws_tun_queue_rst(struct ws_tun *t, const char *reason, const char *err)
{
    size_t rl = reason ? strlen(reason) : 0, el = err ? strlen(err) : 0;
    size_t cap = WSTAN_RST_SIZE(rl, el, WSTAN_RST_PAD_MAX);
    struct ws_tun_msg *m = ws_tun_msg_new(cap, WS_TUN_MSG_CTRL);
    int r;

    if (!m)
        return TD_ENOMEM;
    r = wstan_encode_rst(&t->tx, reason ? reason : "", rl, err ? err : "", el, WSTAN_RST_PAD_RANDOM,
                         m->buf + LWS_PRE, cap, &m->len);
    if (r != 0) {
        free(m);
        return r;
    }
    ws_tun_push(t, m);
    return 0;
}

/* Run a local event through the state machine.  Returns 0 with *step
 * filled, or TD_EPROTO after closing the tunnel (a caller bug or a state the
 * table refuses). */
static int ws_tun_local(struct ws_tun *t, enum wstan_event ev, struct wstan_step *step)
{
    int r;
    if (t->closing || !t->wsi)
        return TD_ECANCELED;
    r = wstan_transition(t->role, t->st, ev, step);
    if (r != 0) {
        LOG_DEBUG("ws", "%s: %s refused in %s", t->label, wstan_event_name(ev),
                  wstan_state_name(t->st));
        if (step->action == WSTAN_ACT_CLOSE)
            ws_tun_close(t, step->close_code, "local event in the wrong state");
        return TD_EPROTO;
    }
    ws_tun_set_state(t, step->next, ev);
    return 0;
}

int ws_tun_local_end(struct ws_tun *t, const char *reason, const char *err)
{
    struct wstan_step step;
    int r = ws_tun_local(t, WSTAN_EV_LOCAL_END, &step);
    if (r != 0)
        return r;
    if (step.action == WSTAN_ACT_SEND_RST)
        return ws_tun_queue_rst(t, reason, err);
    return 0;
}

int ws_tun_send_req(struct ws_tun *t, const struct wstan_addr *a, const uint8_t *data, size_t len)
{
    struct wstan_step step;
    struct ws_tun_msg *m;
    size_t cap = WSTAN_REQ_SIZE(len);
    int r = ws_tun_local(t, WSTAN_EV_LOCAL_REQ, &step);

    if (r != 0)
        return r;
    m = ws_tun_msg_new(cap, WS_TUN_MSG_CTRL);
    if (!m)
        return TD_ENOMEM;
    r = wstan_encode_req(&t->tx, ws_tun_now(), a, data, len, m->buf + LWS_PRE, cap, &m->len);
    if (r != 0) {
        free(m);
        ws_tun_close(t, WSTAN_CLOSE_NORMAL, "cannot encode a request");
        return r;
    }
    ws_tun_push(t, m);
    return 0;
}

int ws_tun_send_dgm(struct ws_tun *t, const struct wstan_addr *a, const uint8_t *data, size_t len)
{
    struct ws_tun_msg *m;
    size_t cap = WSTAN_DGM_SIZE(len);
    int r;

    if (t->closing || !t->wsi)
        return TD_ECANCELED;
    if (t->role == WSTAN_CLIENT) {
        struct wstan_step step;
        r = ws_tun_local(t, WSTAN_EV_LOCAL_DGM, &step);
        if (r != 0)
            return r;
    }
    /* Datagrams may be dropped; never let them grow the queue past the cap. */
    if (t->q_data >= WS_TUN_SEND_CAP)
        return TD_ELIMIT;
    m = ws_tun_msg_new(cap, WS_TUN_MSG_DATA);
    if (!m)
        return TD_ENOMEM;
    r = wstan_encode_dgm(&t->tx, a, data, len, m->buf + LWS_PRE, cap, &m->len);
    if (r != 0) {
        free(m);
        return r;
    }
    ws_tun_push(t, m);
    return 0;
}

int ws_tun_connected(struct ws_tun *t)
{
    struct wstan_step step;
    int r = ws_tun_local(t, WSTAN_EV_CONNECTED, &step);
    if (r != 0)
        return r;
    return t->peer_ack ? ws_tun_send_ack(t) : 0;
}

int ws_tun_connect_failed(struct ws_tun *t, const char *reason, const char *err)
{
    struct wstan_step step;
    int r = ws_tun_local(t, WSTAN_EV_CONNECT_FAILED, &step);
    if (r != 0)
        return r;
    if (step.action == WSTAN_ACT_SEND_RST)
        return ws_tun_queue_rst(t, reason, err);
    return 0;
}

void ws_tun_rx_pause(struct ws_tun *t, bool pause)
{
    if (t->rx_paused == pause || !t->wsi)
        return;
    t->rx_paused = pause;
    lws_rx_flow_control(t->wsi, pause ? 0 : 1);
}

/* ---- lws glue ----------------------------------------------------------------- */

int ws_tun_on_writable(struct ws_tun *t)
{
    struct ws_tun_msg *m;
    bool above;
    int n;

    if (!t->wsi)
        return -1;
    if (t->closing)
        return 0; /* ws_tun_close() has the close under way */
    m = t->q_head;
    if (!m)
        return 0;
    t->q_head = m->next;
    if (!t->q_head)
        t->q_tail = NULL;
    above = t->q_data > WS_TUN_SEND_CAP / 2;
    if (m->kind == WS_TUN_MSG_DATA)
        t->q_data -= m->len;
    n = lws_write(t->wsi, m->buf + LWS_PRE, m->len, (enum lws_write_protocol)ws_tun_write_type(m));
    free(m);
    if (n < 0) {
        t->why = "write failed";
        return -1;
    }
    if (t->q_head)
        lws_callback_on_writable(t->wsi);
    else if (t->close_after)
        ws_tun_close(t, t->close_after, t->close_after_why);
    if (above && t->q_data <= WS_TUN_SEND_CAP / 2 && t->cbs->on_drain)
        t->cbs->on_drain(t); /* it may close the tunnel: that is under way too */
    return 0;
}

static int ws_tun_event_for(const struct wstan_msg *m, enum wstan_event *ev)
{
    switch (m->cmd) {
    case WSTAN_REQ:
        *ev = WSTAN_EV_RECV_REQ;
        return 0;
    case WSTAN_DAT:
        *ev = WSTAN_EV_RECV_DAT;
        return 0;
    case WSTAN_RST:
        *ev = WSTAN_EV_RECV_RST;
        return 0;
    case WSTAN_DGM:
        *ev = WSTAN_EV_RECV_DGM;
        return 0;
    default:
        return TD_EPROTO;
    }
}

static int ws_tun_dispatch(struct ws_tun *t, uint8_t *msg, size_t len)
{
    struct wstan_msg m;
    struct wstan_step step;
    enum wstan_event ev;
    unsigned flags = t->st == WSTAN_RESETTING ? WSTAN_DECODE_SKIP_DAT : 0;
    int r = wstan_decode_msg(&t->rx, msg, len, flags, &m);

    if (r == TD_EAUTH)
        return ws_tun_fail(t, WSTAN_CLOSE_PROTOCOL, "bad message tag");
    if (r != 0 || ws_tun_event_for(&m, &ev) != 0)
        return ws_tun_fail(t, WSTAN_CLOSE_PROTOCOL, "malformed message");
    if (ev == WSTAN_EV_RECV_REQ && !t->tls_mode &&
        wstan_ts_check(m.ts, ws_tun_now(), t->ts_window) != 0)
        return ws_tun_fail(t, WSTAN_CLOSE_PROTOCOL, "in-band request outside the time window");
    r = wstan_transition(t->role, t->st, ev, &step);
    if (r != 0) {
        if (step.action == WSTAN_ACT_CLOSE)
            return ws_tun_fail(t, step.close_code,
                               step.close_code == WSTAN_CLOSE_BAD_STATE
                                   ? "reset in the wrong state"
                                   : "message not allowed in this state");
        return ws_tun_fail(t, WSTAN_CLOSE_PROTOCOL, "unexpected message");
    }
    ws_tun_set_state(t, step.next, ev);
    if (step.action == WSTAN_ACT_REPLY_RST) {
        r = ws_tun_queue_rst(t, "", "");
        if (r != 0)
            return ws_tun_fail(t, WSTAN_CLOSE_NORMAL, "cannot answer a reset");
    }
    if (step.action == WSTAN_ACT_NONE || step.action == WSTAN_ACT_DISCARD)
        return 0;
    if (t->cbs->on_msg)
        t->cbs->on_msg(t, &m, &step);
    return t->closing ? -1 : 0;
}

int ws_tun_on_rx(struct ws_tun *t, void *in, size_t len, bool binary, bool first, bool final,
                 size_t remaining)
{
    int r;

    if (t->closing)
        return -1;
    if (first) {
        t->rx_len = 0;
        t->rx_binary = binary;
    }
    if (!t->rx_binary)
        return ws_tun_fail(t, WSTAN_CLOSE_PROTOCOL, "text message");
    if (first && final && remaining == 0) {
        /* The whole message in one piece: decode it in lws's buffer (which
         * lws lets its callback modify; the bytes are consumed), no copy.
         * No reassembly is under way, so let its buffer go. */
        if (len == 0)
            return ws_tun_fail(t, WSTAN_CLOSE_PROTOCOL, "empty message");
        if (len > WS_TUN_MAX_MSG)
            return ws_tun_fail(t, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
        if (t->rx_buf) {
            free(t->rx_buf);
            t->rx_buf = NULL;
            t->rx_cap = 0;
        }
        return ws_tun_dispatch(t, (uint8_t *)in, len);
    }
    if (t->rx_len + len > WS_TUN_MAX_MSG)
        return ws_tun_fail(t, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
    if (t->rx_len + len > t->rx_cap) {
        size_t cap = t->rx_cap ? t->rx_cap : 4096;
        uint8_t *nb;
        while (cap < t->rx_len + len)
            cap *= 2;
        if (cap > WS_TUN_MAX_MSG)
            cap = WS_TUN_MAX_MSG;
        nb = realloc(t->rx_buf, cap);
        if (!nb)
            return ws_tun_fail(t, WSTAN_CLOSE_NORMAL, "out of memory");
        t->rx_buf = nb;
        t->rx_cap = cap;
    }
    if (len > 0)
        memcpy(t->rx_buf + t->rx_len, in, len);
    t->rx_len += len;
    if (!final || remaining > 0)
        return 0;
    if (t->rx_len == 0)
        return ws_tun_fail(t, WSTAN_CLOSE_PROTOCOL, "empty message");
    r = ws_tun_dispatch(t, t->rx_buf, t->rx_len);
    t->rx_len = 0;
    if (t->rx_cap > WS_TUN_RX_KEEP && !t->closing) {
        free(t->rx_buf);
        t->rx_buf = NULL;
        t->rx_cap = 0;
    }
    return r;
}
