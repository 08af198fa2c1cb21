/* A logged-in jProxy tunnel socket: the frame decoder and message dispatch on
 * the receive side, the fair scheduler and the TCP Window extension on the
 * send side (see jp_link.h).
 *
 * Sending works in batches: each batch is one heap block (a uv_write_t plus
 * the encrypted frames) holding every waiting control frame first and then
 * one Packet per stream in ring order, until about JPL_BATCH bytes.  A new
 * batch is built while the socket holds less than JP_LINK_WIRE_CAP bytes, so
 * the write callbacks drive the next batches. */
#include "jproxy/jp_link.h"

#include "core/chunk.h"
#include "util/error.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define JPL_BATCH          (64 * 1024)
#define JPL_WINDOW_MSG_LEN 7 /* 23 | id u16 | increment u32 */
#define JPL_PACKET_MSG_MAX (JP_PACKET_HDR_LEN + JP_PACKET_DATA_SEND)
#define JPL_PACKET_WIRE    JP_FRAME_WIRE_LEN(JPL_PACKET_MSG_MAX)
#define JPL_DISC_MSG_LEN   4
#define JPL_WINDOW_LIMIT   ((int64_t)1 << 40) /* a peer cannot grant more than this */
#define JPL_STREAM_BUF_MIN (16 * 1024)

/* One read of the tunnel socket fills at most a chunk, and JP_LINK_RECV_MAX
 * counts on that. */
_Static_assert(TD_CHUNK_SIZE <= JP_LINK_RECV_MAX - JP_LINK_RECV_CAP, "tunnel reads too large");

/* One write request: freed by jpl_on_write. */
struct jpl_write {
    uv_write_t req;
    struct jp_link *l;
    size_t len;
    uint8_t data[];
};

static void jpl_flush(struct jp_link *l);
static void jpl_ring_update(struct jp_link *l, struct jp_link_stream *s);

static const char *jpl_name(const struct jp_link *l)
{
    return l->name ? l->name : "jproxy tunnel";
}

static void jpl_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* ---- id table ------------------------------------------------------------- */

void *jp_idmap_get(const struct jp_idmap *m, uint16_t id)
{
    void **pg = m->pages[id >> 8];
    return pg ? pg[id & 0xff] : NULL;
}

int jp_idmap_set(struct jp_idmap *m, uint16_t id, void *p)
{
    void **pg = m->pages[id >> 8];
    if (!pg) {
        pg = calloc(256, sizeof(*pg));
        if (!pg)
            return TD_ENOMEM;
        m->pages[id >> 8] = pg;
    }
    if (!pg[id & 0xff])
        m->used[id >> 8]++;
    pg[id & 0xff] = p;
    return 0;
}

void jp_idmap_del(struct jp_idmap *m, uint16_t id)
{
    void **pg = m->pages[id >> 8];
    if (!pg || !pg[id & 0xff])
        return;
    pg[id & 0xff] = NULL;
    if (--m->used[id >> 8] == 0) {
        free(pg);
        m->pages[id >> 8] = NULL;
    }
}

void jp_idmap_free(struct jp_idmap *m)
{
    for (size_t i = 0; i < JP_IDMAP_PAGES; i++)
        free(m->pages[i]);
    memset(m, 0, sizeof(*m));
}

/* ---- closing ---------------------------------------------------------------- */

static void jpl_notify_close(struct jp_link *l, int err)
{
    if (l->close_notified)
        return;
    l->close_notified = true;
    if (l->cbs->on_close)
        l->cbs->on_close(l, err);
}

static void jpl_on_tcp_closed(uv_handle_t *h)
{
    struct jp_link *l = h->data;
    free(h);
    l->tcp = NULL;
    /* A failure met while sending is reported only now, outside of any
     * owner's call into the link. */
    jpl_notify_close(l, l->close_err);
    if (l->cbs->on_closed)
        l->cbs->on_closed(l); /* may free l */
}

/* Stop everything and close the socket; on_close is the caller's business. */
static void jpl_shut(struct jp_link *l, int err)
{
    uv_os_fd_t fd;

    l->closing = true;
    l->close_err = err;
    if (l->reading) {
        uv_read_stop((uv_stream_t *)l->tcp);
        l->reading = false;
    }
    if (uv_is_closing((uv_handle_t *)l->tcp))
        return;
    if (uv_fileno((uv_handle_t *)l->tcp, &fd) == 0 && l->d->fds_in_use > 0)
        l->d->fds_in_use--;
    uv_close((uv_handle_t *)l->tcp, jpl_on_tcp_closed);
}

void jp_link_close(struct jp_link *l, int err)
{
    if (l->closing)
        return;
    jpl_shut(l, err);
    jpl_notify_close(l, err);
}

/* A failure inside the scheduler: on_close follows from the close callback. */
static void jpl_fail_deferred(struct jp_link *l, int err)
{
    if (l->closing)
        return;
    LOG_DEBUG("jproxy", "%s: send failed: %s", jpl_name(l), td_strerror(err));
    jpl_shut(l, err);
}

void jp_link_free(struct jp_link *l)
{
    jp_frame_free(&l->frames);
    free(l->ctrl);
    l->ctrl = NULL;
    l->ctrl_len = l->ctrl_cap = 0;
    jp_idmap_free(&l->streams);
}

/* ---- reading ---------------------------------------------------------------- */

static void jpl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct td_chunk *ch = chunk_get(0);
    (void)h;
    (void)suggested;
    *buf = ch ? uv_buf_init((char *)ch->data, (unsigned)ch->cap) : uv_buf_init(NULL, 0);
}

static void jpl_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* Read unless the owner paused us, too many control frames wait, or a
 * stream holds more than its cap. */
static void jpl_update_reading(struct jp_link *l)
{
    bool want;

    if (l->ctrl_paused && l->ctrl_len <= JP_LINK_CTRL_CAP / 2)
        l->ctrl_paused = false;
    else if (!l->ctrl_paused && l->ctrl_len > JP_LINK_CTRL_CAP)
        l->ctrl_paused = true;
    want = !l->closing && !l->starting && !l->read_paused && !l->ctrl_paused && l->n_over == 0;
    if (want == l->reading)
        return;
    if (want) {
        int r = uv_read_start((uv_stream_t *)l->tcp, jpl_alloc, jpl_on_read);
        if (r < 0) {
            jpl_fail_deferred(l, td_err_from_uv(r));
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)l->tcp);
    }
    l->reading = want;
}

bool jp_link_over_cap(const struct jp_link *l)
{
    return l->n_over > 0;
}

void jp_link_read_pause(struct jp_link *l, bool pause)
{
    l->read_paused = pause;
    if (!l->closing)
        jpl_update_reading(l);
}

/* TCP Window (extension): 23 | id u16 | increment u32. */
static void jpl_on_window(struct jp_link *l, const uint8_t *m, size_t len)
{
    struct jp_link_stream *s;
    uint16_t id;
    uint32_t inc;
    bool was_shut;

    if (len < JPL_WINDOW_MSG_LEN) {
        LOG_DEBUG("jproxy", "%s: dropping a truncated TCP Window message (%zu bytes)", jpl_name(l),
                  len);
        return;
    }
    id = (uint16_t)(m[1] << 8 | m[2]);
    inc = (uint32_t)m[3] << 24 | (uint32_t)m[4] << 16 | (uint32_t)m[5] << 8 | m[6];
    s = jp_idmap_get(&l->streams, id);
    if (!s || inc == 0)
        return; /* a stream that is gone or never sent: nothing to open */
    was_shut = s->send_window <= 0;
    s->send_window += inc;
    if (s->send_window > JPL_WINDOW_LIMIT)
        s->send_window = JPL_WINDOW_LIMIT;
    if (!was_shut || s->send_window <= 0)
        return;
    jpl_ring_update(l, s);
    /* The owner may detach (and free) s inside on_drain: s is not used
     * after the call. */
    if (s->len <= JP_LINK_STREAM_CAP / 2 && l->cbs->on_drain)
        l->cbs->on_drain(l, s);
    jpl_flush(l);
}

/* Extension: a Packet must fit in the window we granted.  Returns false
 * when it is to be dropped. */
static bool jpl_recv_allowed(struct jp_link *l, const struct jp_msg *m)
{
    struct jp_link_stream *s = jp_idmap_get(&l->streams, m->id);

    if (!s)
        return true; /* an id we do not know: the owner ignores it */
    if (s->overrun)
        return false;
    if ((int64_t)m->data_len <= s->recv_window) {
        s->recv_window -= m->data_len;
        return true;
    }
    /* Buffering it would let the peer grow our memory at will. */
    s->overrun = true;
    LOG_INFO("jproxy",
             "%s stream %u: the peer sent a Packet of %u bytes past the window it was granted "
             "(%lld bytes left); resetting the stream",
             jpl_name(l), s->id, m->data_len, (long long)s->recv_window);
    if (l->cbs->on_overrun)
        l->cbs->on_overrun(l, s); /* may detach and free s */
    return false;
}

/* Consecutive Packets of one stream in one read are handed to the owner as
 * one Packet message: a bulk stream's 2 KiB Packets (about 30 per 64 KiB
 * read) then cost the owner one socket write instead of one each.  Packets
 * are collected here (their frames' buffer is reused) and flushed when a
 * message of another kind or stream comes, when the run is full (data_len
 * is 16 bits) and at the end of the read; a lone last Packet goes out from
 * the frame buffer directly.  Loop thread only. */
#define JPL_RUN_MAX (63 * 1024)
static uint8_t jpl_run_buf[JPL_RUN_MAX];
static struct jp_link *jpl_run_link; /* whose run jpl_run_buf holds, or NULL */
static struct jp_msg jpl_run_msg;

static void jpl_run_flush(void)
{
    struct jp_link *l = jpl_run_link;
    struct jp_msg m;

    if (!l)
        return;
    jpl_run_link = NULL;
    m = jpl_run_msg;
    m.data = jpl_run_buf;
    if (!l->closing)
        l->cbs->on_msg(l, &m);
}

static void jpl_dispatch(struct jp_link *l, const uint8_t *m, size_t len, bool more)
{
    struct jp_msg msg;
    int r;

    if (l->extensions && len >= 1 && m[0] == JP_KIND_TCP_WINDOW) {
        jpl_on_window(l, m, len);
        return;
    }
    r = jp_msg_parse(m, len, l->peer_dir, &msg);
    if (r != 0) {
        /* Too short to act on: the Java peers log, drop it and carry on. */
        LOG_DEBUG("jproxy", "%s: dropping a malformed message (kind 0x%02x, %zu bytes)",
                  jpl_name(l), len > 0 ? m[0] : 0, len);
        return;
    }
    if (msg.type != JP_MSG_TCP_PACKET) {
        jpl_run_flush(); /* the Packets before it go first */
        if (!l->closing)
            l->cbs->on_msg(l, &msg);
        return;
    }
    if (jpl_run_link &&
        (jpl_run_msg.id != msg.id || (size_t)jpl_run_msg.data_len + msg.data_len > JPL_RUN_MAX)) {
        jpl_run_flush();
        if (l->closing)
            return;
    }
    if (l->extensions) {
        struct jp_link_stream *s = jp_idmap_get(&l->streams, msg.id);
        /* An overrun resets the stream: what came before it goes first. */
        if (jpl_run_link && s && (s->overrun || (int64_t)msg.data_len > s->recv_window)) {
            jpl_run_flush();
            if (l->closing)
                return;
        }
        if (!jpl_recv_allowed(l, &msg))
            return;
    }
    if (!jpl_run_link && !more) {
        l->cbs->on_msg(l, &msg); /* alone: no copy */
        return;
    }
    if (!jpl_run_link) {
        jpl_run_link = l;
        jpl_run_msg = msg;
        jpl_run_msg.data_len = 0;
    }
    memcpy(jpl_run_buf + jpl_run_msg.data_len, msg.data, msg.data_len);
    jpl_run_msg.data_len = (uint16_t)(jpl_run_msg.data_len + msg.data_len);
    if (!more)
        jpl_run_flush();
}

/* Decode and dispatch every complete frame in p.  Returns 0, or the
 * decoder's error (TD_EPROTO, TD_ECRYPTO) for the caller to act on.  Stops
 * early, returning 0, when a callback closed the link. */
static int jpl_feed(struct jp_link *l, const uint8_t *p, size_t n)
{
    int r = 0;

    while (n > 0 && !l->closing) {
        r = jp_frame_parse(&l->frames, &p, &n);
        if (r == TD_EAGAIN) {
            r = 0;
            break;
        }
        if (r != 0)
            break;
        /* more: another whole frame may follow in this read. */
        jpl_dispatch(l, l->frames.msg, l->frames.msg_len, n > 0);
    }
    jpl_run_flush();
    return r;
}

static void jpl_log_bad_frame(struct jp_link *l, int err)
{
    LOG_INFO("jproxy", "%s: %s; closing the tunnel", jpl_name(l),
             err == TD_ECRYPTO  ? "bad frame padding (wrong key or corrupted stream)"
             : err == TD_EPROTO ? "empty frame (N=0)"
                                : td_strerror(err));
}

static void jpl_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct jp_link *l = st->data;
    struct td_chunk *ch = buf->base ? chunk_from_data(buf->base) : NULL;
    int r;

    if (nread > 0 && !l->closing) {
        l->last_rx_ms = uv_now(l->d->loop);
        r = jpl_feed(l, ch->data, (size_t)nread);
        chunk_put(ch);
        if (r != 0 && !l->closing) {
            jpl_log_bad_frame(l, r);
            jp_link_close(l, r);
        }
        return;
    }
    chunk_put(ch);
    if (nread == 0 || l->closing)
        return;
    if (nread == UV_EOF)
        jp_link_close(l, TD_EEOF);
    else if (nread == UV_ENOBUFS)
        jp_link_close(l, TD_ENOMEM);
    else
        jp_link_close(l, td_err_from_uv((int)nread));
}

/* ---- sending ------------------------------------------------------------------ */

static bool jpl_can_send(const struct jp_link *l, const struct jp_link_stream *s)
{
    if (s->finished)
        return false;
    if (s->len > 0)
        return !l->extensions || s->send_window > 0;
    return s->finish;
}

static void jpl_ring_update(struct jp_link *l, struct jp_link_stream *s)
{
    bool want = jpl_can_send(l, s);
    if (want && !s->in_ring) {
        td_queue_insert_tail(&l->ring, &s->ring);
        s->in_ring = true;
    } else if (!want && s->in_ring) {
        td_queue_remove(&s->ring);
        s->in_ring = false;
    }
}

static int jpl_ctrl_append(struct jp_link *l, const uint8_t *p, size_t n)
{
    if (l->ctrl_len + n > l->ctrl_cap) {
        size_t ncap = l->ctrl_cap ? l->ctrl_cap * 2 : 4096;
        uint8_t *nb;
        while (ncap < l->ctrl_len + n)
            ncap *= 2;
        nb = realloc(l->ctrl, ncap);
        if (!nb)
            return TD_ENOMEM;
        l->ctrl = nb;
        l->ctrl_cap = ncap;
    }
    memcpy(l->ctrl + l->ctrl_len, p, n);
    l->ctrl_len += n;
    return 0;
}

static void jpl_on_write(uv_write_t *req, int status)
{
    struct jpl_write *w = td_container_of(req, struct jpl_write, req);
    struct jp_link *l = w->l;

    l->wire_pending -= w->len;
    free(w);
    if (l->closing)
        return;
    if (status < 0) {
        LOG_DEBUG("jproxy", "%s: write failed: %s", jpl_name(l), uv_strerror(status));
        jp_link_close(l, td_err_from_uv(status));
        return;
    }
    jpl_flush(l);
    if (!l->closing)
        jpl_update_reading(l);
}

/* Take one Packet's worth from s into out (room for JPL_PACKET_WIRE bytes). */
static int jpl_encode_packet(struct jp_link *l, struct jp_link_stream *s, uint8_t *out,
                             size_t *outlen)
{
    uint8_t msg[JPL_PACKET_MSG_MAX];
    size_t k = s->len < JP_PACKET_DATA_SEND ? s->len : JP_PACKET_DATA_SEND;
    int r;

    if (l->extensions && (int64_t)k > s->send_window)
        k = (size_t)s->send_window;
    msg[0] = JP_KIND_TCP_PACKET;
    jpl_put16(msg + 1, s->id);
    jpl_put16(msg + 3, (uint16_t)k);
    memcpy(msg + JP_PACKET_HDR_LEN, s->buf + s->off, k);
    r = jp_frame_encode(&l->frames, msg, JP_PACKET_HDR_LEN + k, out, JPL_PACKET_WIRE, outlen);
    if (r != 0)
        return r;
    s->off += k;
    s->len -= k;
    if (l->extensions)
        s->send_window -= (int64_t)k;
    if (s->len == 0) {
        free(s->buf);
        s->buf = NULL;
        s->off = s->cap = 0;
    }
    return 0;
}

static void jpl_forget(struct jp_link *l, struct jp_link_stream *s)
{
    if (s->over) {
        s->over = false;
        l->n_over--;
        jpl_update_reading(l);
    }
    if (s->in_ring) {
        td_queue_remove(&s->ring);
        s->in_ring = false;
    }
    if (s->attached) {
        if (jp_idmap_get(&l->streams, s->id) == s)
            jp_idmap_del(&l->streams, s->id);
        s->attached = false;
    }
}

/* With nothing of the link's in the socket's write queue, a batch is built
 * here and tried on the socket at once (uv_try_write): only what the kernel
 * does not take is copied into a write request.  A request's batch, a
 * malloc, a realloc and a deferred callback per batch otherwise, for the
 * few hundred bytes a short request exchanges.  Loop thread only. */
static uint8_t jpl_scratch[JPL_BATCH + 16 * 1024];

/* Hand a write request holding len bytes to libuv.  Returns 0 or a TD_E*
 * code (w is freed then). */
static int jpl_queue_write(struct jp_link *l, struct jpl_write *w, size_t len)
{
    uv_buf_t b;
    int r;

    w->l = l;
    w->len = len;
    b = uv_buf_init((char *)w->data, (unsigned)len);
    r = uv_write(&w->req, (uv_stream_t *)l->tcp, &b, 1, jpl_on_write);
    if (r < 0) {
        free(w);
        return td_err_from_uv(r);
    }
    l->wire_pending += len;
    return 0;
}

/* The same for bytes the socket did not take from the scratch buffer. */
static int jpl_queue_copy(struct jp_link *l, const uint8_t *p, size_t len)
{
    struct jpl_write *w = malloc(sizeof(*w) + len);
    if (!w)
        return TD_ENOMEM;
    memcpy(w->data, p, len);
    return jpl_queue_write(l, w, len);
}

/* Build and write one batch.  Returns 1 when something was written, 0 when
 * there was nothing to send, or a TD_E* code (the link is then closing). */
static int jpl_write_batch(struct jp_link *l)
{
    size_t cap = l->ctrl_len + JPL_BATCH, used = 0, budget;
    bool direct = l->wire_pending == 0 && cap <= sizeof(jpl_scratch);
    struct jpl_write *w = direct ? NULL : malloc(sizeof(*w) + cap);
    uint8_t *out = direct ? jpl_scratch : w ? w->data : NULL;
    int r = 0;

    if (!out) {
        jpl_fail_deferred(l, TD_ENOMEM);
        return TD_ENOMEM;
    }
    budget = JP_LINK_WIRE_CAP - (size_t)l->wire_pending;
    if (l->ctrl_len > 0) {
        memcpy(out, l->ctrl, l->ctrl_len);
        used = l->ctrl_len;
        l->ctrl_len = 0;
    }
    /* One Packet per stream per turn.  A control message queued by a
     * callback ends the batch, so that it still precedes later data. */
    while (!td_queue_empty(&l->ring) && used + JPL_PACKET_WIRE <= cap && used < budget &&
           l->ctrl_len == 0 && !l->closing) {
        struct jp_link_stream *s = td_container_of(l->ring.next, struct jp_link_stream, ring);
        size_t n = 0;

        td_queue_remove(&s->ring);
        s->in_ring = false;
        if (s->len > 0 && (!l->extensions || s->send_window > 0)) {
            bool above = s->len > JP_LINK_STREAM_CAP / 2;
            r = jpl_encode_packet(l, s, out + used, &n);
            if (r != 0)
                break;
            used += n;
            jpl_ring_update(l, s);
            if (above && s->len <= JP_LINK_STREAM_CAP / 2 && l->cbs->on_drain)
                l->cbs->on_drain(l, s);
        } else if (s->len == 0 && s->finish && !s->finished) {
            uint8_t msg[JPL_DISC_MSG_LEN] = {JP_KIND_TCP_DISCONNECT, 0, 0, JP_REASON_RESET};
            jpl_put16(msg + 1, s->id);
            r = jp_frame_encode(&l->frames, msg, sizeof(msg), out + used, cap - used, &n);
            if (r != 0)
                break;
            used += n;
            s->finished = true;
            jpl_forget(l, s);
            if (l->on_finished)
                l->on_finished(l, s); /* may free s */
        }
    }
    if (r != 0 || l->closing) {
        free(w); /* NULL when direct */
        if (r != 0)
            jpl_fail_deferred(l, r);
        return r != 0 ? r : TD_ECANCELED;
    }
    if (used == 0) {
        free(w);
        return 0;
    }
    if (direct) {
        uv_buf_t b = uv_buf_init((char *)out, (unsigned)used);
        int n = uv_try_write((uv_stream_t *)l->tcp, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            jpl_fail_deferred(l, td_err_from_uv(n));
            return td_err_from_uv(n);
        }
        if (n < 0)
            n = 0;
        if ((size_t)n == used)
            return 1;
        r = jpl_queue_copy(l, out + n, used - (size_t)n);
    } else {
        if (used < cap / 2) {
            struct jpl_write *nw = realloc(w, sizeof(*w) + used);
            if (nw)
                w = nw;
        }
        r = jpl_queue_write(l, w, used);
    }
    if (r != 0) {
        jpl_fail_deferred(l, r);
        return r;
    }
    return 1;
}

static void jpl_flush(struct jp_link *l)
{
    if (l->flushing || l->closing || l->starting)
        return;
    l->flushing = true;
    while (!l->closing && l->wire_pending < JP_LINK_WIRE_CAP &&
           (l->ctrl_len > 0 || !td_queue_empty(&l->ring))) {
        if (jpl_write_batch(l) <= 0)
            break;
    }
    l->flushing = false;
}

int jp_link_send_msg(struct jp_link *l, const struct jp_msg *m)
{
    uint8_t frame[JP_FRAME_MAX_WIRE];
    size_t n = 0;
    int r;

    if (m->type == JP_MSG_TCP_PACKET)
        return TD_EINVAL;
    if (l->closing)
        return TD_ECANCELED;
    if (m->type == JP_MSG_UDP_PACKET && l->ctrl_len + l->wire_pending >= JP_LINK_WIRE_CAP)
        return TD_ELIMIT;
    r = jp_frame_encode_msg(&l->frames, m, frame, sizeof(frame), &n);
    if (r == 0)
        r = jpl_ctrl_append(l, frame, n);
    if (r != 0)
        return r;
    jpl_flush(l);
    if (!l->closing && l->ctrl_len > JP_LINK_CTRL_CAP)
        jpl_update_reading(l);
    return 0;
}

/* ---- streams -------------------------------------------------------------------- */

void jp_link_stream_init(struct jp_link_stream *s, uint16_t id)
{
    memset(s, 0, sizeof(*s));
    s->id = id;
    td_queue_init(&s->ring);
    s->send_window = JP_LINK_WINDOW;
    s->recv_window = JP_LINK_WINDOW;
}

void jp_link_stream_attach(struct jp_link *l, struct jp_link_stream *s)
{
    if (!l->extensions || s->attached || l->closing)
        return;
    if (jp_idmap_set(&l->streams, s->id, s) == 0)
        s->attached = true;
    else
        s->send_window = JPL_WINDOW_LIMIT; /* no table entry: no window to wait for */
}

void jp_link_stream_held(struct jp_link *l, struct jp_link_stream *s, size_t n)
{
    bool over;

    if (l->closing || s->finished)
        return;
    over = s->over ? n >= JP_LINK_RECV_LOW : n > JP_LINK_RECV_CAP;
    if (over == s->over)
        return;
    s->over = over;
    if (over)
        l->n_over++;
    else
        l->n_over--;
    LOG_TRACE("jproxy", "%s stream %u holds %zu bytes: %s", jpl_name(l), s->id, n,
              over ? "pausing the tunnel" : "drained");
    jpl_update_reading(l);
}

size_t jp_link_stream_queued(const struct jp_link_stream *s)
{
    return s->len;
}

/* Make room for n more bytes at the end of s->buf (n <= the free space
 * under JP_LINK_STREAM_CAP). */
static int jpl_stream_reserve(struct jp_link_stream *s, size_t n)
{
    size_t need = s->len + n, ncap;
    uint8_t *nb;

    if (s->off + need <= s->cap)
        return 0;
    if (s->off > 0 && need <= s->cap) {
        memmove(s->buf, s->buf + s->off, s->len);
        s->off = 0;
        return 0;
    }
    ncap = s->cap ? s->cap * 2 : JPL_STREAM_BUF_MIN;
    while (ncap < need)
        ncap *= 2;
    if (ncap > JP_LINK_STREAM_CAP)
        ncap = JP_LINK_STREAM_CAP;
    if (s->off > 0) {
        memmove(s->buf, s->buf + s->off, s->len);
        s->off = 0;
    }
    nb = realloc(s->buf, ncap);
    if (!nb)
        return TD_ENOMEM;
    s->buf = nb;
    s->cap = ncap;
    return 0;
}

size_t jp_link_stream_write(struct jp_link *l, struct jp_link_stream *s, const uint8_t *p,
                            size_t len)
{
    size_t room, n;

    if (l->closing || s->finish || s->finished)
        return len;
    jp_link_stream_attach(l, s);
    room = JP_LINK_STREAM_CAP - s->len;
    n = len < room ? len : room;
    if (n == 0)
        return 0;
    if (jpl_stream_reserve(s, n) != 0) {
        LOG_WARN("jproxy", "%s: out of memory queueing stream %u", jpl_name(l), s->id);
        return 0;
    }
    memcpy(s->buf + s->off + s->len, p, n);
    s->len += n;
    jpl_ring_update(l, s);
    jpl_flush(l);
    return n;
}

void jp_link_stream_finish(struct jp_link *l, struct jp_link_stream *s)
{
    if (s->finish || s->finished)
        return;
    s->finish = true;
    if (l->closing)
        return;
    jpl_ring_update(l, s);
    jpl_flush(l);
}

void jp_link_stream_consumed(struct jp_link *l, struct jp_link_stream *s, size_t n)
{
    uint8_t msg[JPL_WINDOW_MSG_LEN], frame[JP_FRAME_WIRE_LEN(JPL_WINDOW_MSG_LEN)];
    uint32_t inc;
    size_t fl = 0;

    if (!l->extensions || l->closing || s->finished || n == 0)
        return;
    s->recv_unacked += n;
    if (s->recv_unacked < JP_LINK_WINDOW / 4)
        return;
    inc = s->recv_unacked > UINT32_MAX ? UINT32_MAX : (uint32_t)s->recv_unacked;
    msg[0] = JP_KIND_TCP_WINDOW;
    jpl_put16(msg + 1, s->id);
    msg[3] = (uint8_t)(inc >> 24);
    msg[4] = (uint8_t)(inc >> 16);
    msg[5] = (uint8_t)(inc >> 8);
    msg[6] = (uint8_t)inc;
    if (jp_frame_encode(&l->frames, msg, sizeof(msg), frame, sizeof(frame), &fl) != 0 ||
        jpl_ctrl_append(l, frame, fl) != 0) {
        jpl_fail_deferred(l, TD_ENOMEM);
        return;
    }
    s->recv_unacked -= inc;
    s->recv_window += inc;
    jpl_flush(l);
}

void jp_link_stream_detach(struct jp_link *l, struct jp_link_stream *s)
{
    jpl_forget(l, s);
    free(s->buf);
    s->buf = NULL;
    s->len = s->off = s->cap = 0;
}

/* ---- start ---------------------------------------------------------------------- */

int jp_link_start(struct jp_link *l, struct td_daemon *d, uv_tcp_t *tcp, const uint8_t key[16],
                  enum jp_dir peer_dir, bool extensions, const struct jp_link_cbs *cbs, void *ud,
                  const uint8_t *pre, size_t pre_len)
{
    const char *name = l->name;
    void (*on_finished)(struct jp_link *, struct jp_link_stream *) = l->on_finished;
    void *old_data = tcp->data;
    int r;

    memset(l, 0, sizeof(*l));
    l->name = name;
    l->on_finished = on_finished;
    l->d = d;
    l->tcp = tcp;
    l->cbs = cbs;
    l->ud = ud;
    l->peer_dir = peer_dir;
    l->extensions = extensions;
    td_queue_init(&l->ring);
    l->last_rx_ms = uv_now(d->loop);
    r = jp_frame_init(&l->frames, key);
    if (r != 0)
        goto fail;
    tcp->data = l;
    if (pre_len > 0) {
        /* Nothing is written while these are processed, so that a failure
         * leaves the socket untouched. */
        l->starting = true;
        r = jpl_feed(l, pre, pre_len);
        l->starting = false;
        if (r != 0) {
            jpl_log_bad_frame(l, r);
            goto fail;
        }
    }
    r = uv_read_start((uv_stream_t *)tcp, jpl_alloc, jpl_on_read);
    if (r < 0) {
        r = td_err_from_uv(r);
        goto fail;
    }
    l->reading = true;
    jpl_flush(l);
    jpl_update_reading(l);
    return 0;
fail:
    tcp->data = old_data;
    jp_link_free(l);
    l->tcp = NULL;
    l->closing = true;
    return r;
}
