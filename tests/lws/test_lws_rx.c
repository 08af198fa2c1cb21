/* The libwebsockets client receive path (packaging/deps/lws/0001-client-rx-
 * blockwise.patch): a raw WebSocket server on the same libuv loop sends our
 * lws client scripted frames, cut into TCP writes in every way that matters
 * (split at every byte boundary, one byte per segment, large writes), with
 * pings between fragments, an oversized frame, empty frames, text, and a
 * close in the middle of a fragmented message.  The client checks that every
 * payload byte arrives once and in order, that each callback's first / final
 * / binary flags and remaining count are right, and that a ping between
 * fragments is answered.  Runs against whichever lws the build links
 * (TUNNELD_LWS), so the stock byte-wise path must pass it too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libwebsockets.h>
#include <uv.h>

#include "proto/wstan.h"

#define SERV_BUF    4096 /* pt_serv_buf_size: the client's read and chunk size */
#define MAX_EVENTS  65536
#define SCRIPT_MAX  (512 * 1024)
#define MAX_MSGS    64
#define MAX_FRAMES  256
#define PING_MARKER "pg"

/* ---- the expected stream ------------------------------------------------- */

struct frame {
    bool fin;
    int opcode;
    size_t len;
    size_t msg; /* index of its message (data frames) */
};

struct script {
    uint8_t bytes[SCRIPT_MAX]; /* the frames on the wire, unmasked */
    size_t len;
    struct frame frames[MAX_FRAMES];
    int n_frames;
    /* Data messages: their payload, concatenated, and whether binary. */
    uint8_t *payload[MAX_MSGS];
    size_t payload_len[MAX_MSGS];
    bool binary[MAX_MSGS];
    int n_msgs;
    int pings;           /* ping frames sent */
    bool ends_in_close;  /* a close frame ends the script */
    uint16_t close_code; /* its code */
};

static uint8_t pattern_byte(size_t i)
{
    return (uint8_t)((i * 131u + (i >> 8) * 7u + 1u) & 0xff);
}

static void put_frame(struct script *s, bool fin, int opcode, const uint8_t *p, size_t len)
{
    uint8_t *o = s->bytes + s->len;
    size_t h = 2;

    assert_true(s->len + len + 14 <= SCRIPT_MAX);
    o[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        o[1] = (uint8_t)len;
    } else if (len < 65536) {
        o[1] = 126;
        o[2] = (uint8_t)(len >> 8);
        o[3] = (uint8_t)len;
        h = 4;
    } else {
        o[1] = 127;
        for (int i = 0; i < 8; i++)
            o[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    if (len)
        memcpy(o + h, p, len);
    s->len += h + len;
    assert_true(s->n_frames < MAX_FRAMES);
    s->frames[s->n_frames].fin = fin;
    s->frames[s->n_frames].opcode = opcode;
    s->frames[s->n_frames].len = len;
    s->frames[s->n_frames].msg = (size_t)(s->n_msgs > 0 ? s->n_msgs - 1 : 0);
    s->n_frames++;
}

/* A data message of total bytes, in frames of the given sizes (the last
 * takes the rest), with a ping after frame number ping_after (-1: none). */
static void put_msg(struct script *s, bool binary, size_t total, const size_t *sizes, int n,
                    int ping_after)
{
    uint8_t *p = malloc(total ? total : 1);
    size_t off = 0;
    static size_t seed;

    assert_non_null(p);
    assert_true(s->n_msgs < MAX_MSGS);
    for (size_t i = 0; i < total; i++)
        p[i] = binary ? pattern_byte(seed + i) : (uint8_t)('a' + (seed + i) % 26);
    seed += total;
    s->payload[s->n_msgs] = p;
    s->payload_len[s->n_msgs] = total;
    s->binary[s->n_msgs] = binary;
    s->n_msgs++;
    for (int f = 0; f < n || off < total || f == 0; f++) {
        size_t len = f < n - 1 ? sizes[f] : total - off;
        bool last = off + len >= total && f >= n - 1;
        put_frame(s, last, f == 0 ? (binary ? 2 : 1) : 0, p + off, len);
        off += len;
        if (f == ping_after) {
            put_frame(s, true, 9, (const uint8_t *)PING_MARKER, 2);
            s->pings++;
        }
        if (last)
            break;
    }
}

static void script_free(struct script *s)
{
    for (int i = 0; i < s->n_msgs; i++)
        free(s->payload[i]);
}

/* The mixed stream every delivery mode sends. */
static void script_mixed(struct script *s, bool with_big)
{
    static const size_t three[] = {5, 0, 7};
    static const size_t two[] = {130, 1};
    static const size_t one_byte[] = {1, 1, 1, 1};

    memset(s, 0, sizeof(*s));
    put_msg(s, true, 12, three, 3, 0);   /* fragments, an empty one, a ping between */
    put_msg(s, true, 0, NULL, 1, -1);    /* an empty message */
    put_msg(s, false, 40, NULL, 1, -1);  /* text */
    put_msg(s, true, 300, two, 2, 0);    /* a 16-bit length, a ping between */
    put_msg(s, true, 4, one_byte, 4, 2); /* one-byte fragments */
    put_msg(s, true, 125, NULL, 1, -1);  /* the longest 7-bit length */
    if (with_big) {
        static const size_t big[] = {70000};
        put_msg(s, true, 70000 + 3 * SERV_BUF + 17, big, 2, 0); /* 64-bit length, > SERV_BUF */
    }
}

/* ---- what the client saw ------------------------------------------------- */

struct event {
    size_t len;
    bool first, final, binary;
    size_t remaining;
};

struct client_state {
    struct event ev[MAX_EVENTS];
    int n_ev;
    uint8_t *rx; /* every payload byte received, in order */
    size_t rx_len;
    bool established, closed, peer_close, error;
    uint16_t peer_close_code;
    int pause_every; /* rx flow control: pause after every Nth callback */
    int pauses;
    uv_timer_t resume;
    struct lws *wsi;
};

/* ---- the raw server ------------------------------------------------------- */

enum send_mode {
    SEND_WHOLE = 0,   /* one write */
    SEND_SPLIT_EACH,  /* the script once per split point k: [0,k) then [k,len) */
    SEND_BYTEWISE,    /* one byte per write */
    SEND_CHUNKS_1000, /* 1000-byte writes */
};

struct server {
    uv_loop_t *loop;
    uv_tcp_t listener, conn;
    bool have_conn;
    uv_timer_t tick;
    char req[8192];
    size_t req_len;
    bool upgraded;
    const struct script *s;
    enum send_mode mode;
    size_t split, off, round; /* progress through the sends */
    size_t pongs;             /* pong frames with our marker received */
    uint8_t in[65536];
    size_t in_len;
    bool done_sending;
    int port;
};

static void srv_on_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

/* The bytes stay alive (the script, or a static reply) until written. */
static void srv_write(struct server *sv, const uint8_t *p, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    uv_write_t *w;
    if (uv_is_closing((uv_handle_t *)&sv->conn))
        return; /* closed after the close handshake: the rest is moot */
    w = malloc(sizeof(*w));
    assert_non_null(w);
    assert_int_equal(uv_write(w, (uv_stream_t *)&sv->conn, &b, 1, srv_on_written), 0);
}

/* One step of the schedule per 1 ms tick, so each write is its own segment
 * and its own read on the client. */
static void srv_on_tick(uv_timer_t *t)
{
    struct server *sv = t->data;
    const struct script *s = sv->s;
    size_t n;

    if (sv->done_sending)
        return;
    switch (sv->mode) {
    case SEND_WHOLE:
        srv_write(sv, s->bytes, s->len);
        sv->done_sending = true;
        break;
    case SEND_CHUNKS_1000:
        n = s->len - sv->off < 1000 ? s->len - sv->off : 1000;
        srv_write(sv, s->bytes + sv->off, n);
        sv->off += n;
        sv->done_sending = sv->off == s->len;
        break;
    case SEND_BYTEWISE:
        srv_write(sv, s->bytes + sv->off, 1);
        sv->off++;
        sv->done_sending = sv->off == s->len;
        break;
    case SEND_SPLIT_EACH:
        /* round r sends the whole script split at r + 1: first half, then
         * the second half on the next tick. */
        if (sv->off == 0) {
            sv->split = sv->round + 1;
            srv_write(sv, s->bytes, sv->split);
            sv->off = sv->split;
        } else {
            srv_write(sv, s->bytes + sv->off, s->len - sv->off);
            sv->off = 0;
            sv->round++;
            sv->done_sending = sv->round + 1 >= s->len;
        }
        break;
    }
    if (!sv->done_sending)
        uv_timer_start(&sv->tick, srv_on_tick, 1, 0);
}

static void srv_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *b)
{
    struct server *sv = h->data;
    (void)sugg;
    if (!sv->upgraded)
        *b = uv_buf_init(sv->req + sv->req_len, (unsigned)(sizeof(sv->req) - sv->req_len - 1));
    else
        *b = uv_buf_init((char *)sv->in + sv->in_len, (unsigned)(sizeof(sv->in) - sv->in_len));
}

/* Count the client's pongs (masked frames) that carry our marker. */
static void srv_scan_client_frames(struct server *sv)
{
    size_t off = 0;
    while (sv->in_len - off >= 6) {
        const uint8_t *f = sv->in + off;
        size_t len = f[1] & 0x7f, h = 2;
        if (len == 126) {
            if (sv->in_len - off < 8)
                break;
            len = (size_t)f[2] << 8 | f[3];
            h = 4;
        } else if (len == 127) {
            break; /* never from this client */
        }
        h += 4; /* the client masks */
        if (sv->in_len - off < h + len)
            break;
        if ((f[0] & 0xf) == 0x8 && !uv_is_closing((uv_handle_t *)&sv->conn)) {
            /* The client answered our close: the server closes the TCP. */
            uv_close((uv_handle_t *)&sv->conn, NULL);
            sv->in_len = 0;
            return;
        }
        if ((f[0] & 0xf) == 0xa && len == 2) {
            uint8_t d[2];
            for (size_t i = 0; i < 2; i++)
                d[i] = f[h + i] ^ f[h - 4 + i];
            if (memcmp(d, PING_MARKER, 2) == 0)
                sv->pongs++;
        }
        off += h + len;
    }
    memmove(sv->in, sv->in + off, sv->in_len - off);
    sv->in_len -= off;
}

static void srv_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct server *sv = st->data;
    (void)b;

    if (n < 0) {
        uv_read_stop(st);
        return;
    }
    if (sv->upgraded) {
        sv->in_len += (size_t)n;
        srv_scan_client_frames(sv);
        return;
    }
    sv->req_len += (size_t)n;
    sv->req[sv->req_len] = '\0';
    if (strstr(sv->req, "\r\n\r\n")) {
        static char resp[256];
        char accept[WSTAN_WS_ACCEPT_LEN + 1];
        const char *k = strstr(sv->req, "Sec-WebSocket-Key: ");
        int len;
        assert_non_null(k);
        k += strlen("Sec-WebSocket-Key: ");
        assert_int_equal(wstan_ws_accept(k, WSTAN_WS_KEY_LEN, accept, NULL), 0);
        len = snprintf(resp, sizeof(resp),
                       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                       accept);
        srv_write(sv, (const uint8_t *)resp, (size_t)len);
        sv->upgraded = true;
        uv_timer_start(&sv->tick, srv_on_tick, 5, 0);
    }
}

static void srv_on_conn(uv_stream_t *l, int status)
{
    struct server *sv = l->data;
    assert_int_equal(status, 0);
    assert_false(sv->have_conn);
    uv_tcp_init(sv->loop, &sv->conn);
    sv->conn.data = sv;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&sv->conn), 0);
    uv_tcp_nodelay(&sv->conn, 1);
    sv->have_conn = true;
    uv_read_start((uv_stream_t *)&sv->conn, srv_alloc, srv_on_read);
}

/* ---- the lws client -------------------------------------------------------- */

static void cl_on_resume(uv_timer_t *t)
{
    struct client_state *cs = t->data;
    if (cs->wsi && !cs->closed)
        lws_rx_flow_control(cs->wsi, 1);
}

static int cl_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct client_state *cs = lws_get_opaque_user_data(wsi);
    (void)user;

    if (!cs)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        cs->established = true;
        cs->wsi = wsi;
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE: {
        struct event *e;
        assert_true(cs->n_ev < MAX_EVENTS);
        e = &cs->ev[cs->n_ev++];
        e->len = len;
        e->first = lws_is_first_fragment(wsi) != 0;
        e->final = lws_is_final_fragment(wsi) != 0;
        e->binary = lws_frame_is_binary(wsi) != 0;
        e->remaining = lws_remaining_packet_payload(wsi);
        cs->rx = realloc(cs->rx, cs->rx_len + len + 1);
        assert_non_null(cs->rx);
        if (len)
            memcpy(cs->rx + cs->rx_len, in, len);
        cs->rx_len += len;
        if (cs->pause_every && cs->n_ev % cs->pause_every == 0) {
            cs->pauses++;
            lws_rx_flow_control(wsi, 0);
            uv_timer_start(&cs->resume, cl_on_resume, 2, 0);
        }
        break;
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        cs->peer_close = true;
        if (len >= 2)
            cs->peer_close_code =
                (uint16_t)(((const uint8_t *)in)[0] << 8 | ((const uint8_t *)in)[1]);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        cs->error = true;
        cs->closed = true;
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        cs->closed = true;
        cs->wsi = NULL;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols cl_protocols[] = {
    {"test", cl_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- one run -------------------------------------------------------------- */

struct run {
    uv_loop_t loop;
    struct lws_context *ctx;
    struct server sv;
    struct client_state cs;
    uv_timer_t watchdog;
    bool timed_out;
};

static void on_watchdog(uv_timer_t *t)
{
    struct run *r = t->data;
    r->timed_out = true;
    uv_stop(&r->loop);
}

/* How many times the mode sends the script. */
static size_t script_reps(const struct script *s, enum send_mode mode)
{
    return mode == SEND_SPLIT_EACH ? s->len - 1 : 1;
}

static void on_check_done(uv_timer_t *t)
{
    struct run *r = t->data;
    const struct script *s = r->sv.s;
    size_t want = 0, reps = script_reps(s, r->sv.mode);
    for (int i = 0; i < s->n_msgs; i++)
        want += s->payload_len[i];
    /* Done when all was sent and received (and the close seen). */
    if (r->sv.done_sending && r->cs.rx_len >= want * reps && (!s->ends_in_close || r->cs.closed) &&
        (s->pings == 0 || r->sv.pongs > 0)) {
        uv_stop(&r->loop);
        return;
    }
    uv_timer_start(t, on_check_done, 5, 0);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void run_script(const struct script *s, enum send_mode mode, int pause_every, struct run *r)
{
    struct lws_context_creation_info info;
    struct lws_client_connect_info cc;
    struct sockaddr_in sa;
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    void *loops[1];
    uv_timer_t done;

    memset(r, 0, sizeof(*r));
    assert_int_equal(uv_loop_init(&r->loop), 0);
    r->sv.loop = &r->loop;
    r->sv.s = s;
    r->sv.mode = mode;
    r->cs.pause_every = pause_every;
    uv_tcp_init(&r->loop, &r->sv.listener);
    r->sv.listener.data = &r->sv;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&r->sv.listener, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&r->sv.listener, 4, srv_on_conn), 0);
    uv_tcp_getsockname(&r->sv.listener, (struct sockaddr *)&bound, &blen);
    r->sv.port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    uv_timer_init(&r->loop, &r->sv.tick);
    r->sv.tick.data = &r->sv;
    uv_timer_init(&r->loop, &r->cs.resume);
    r->cs.resume.data = &r->cs;

    lws_set_log_level(LLL_ERR, NULL);
    memset(&info, 0, sizeof(info));
    loops[0] = &r->loop;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.foreign_loops = loops;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = cl_protocols;
    info.pt_serv_buf_size = SERV_BUF;
    info.timeout_secs = 10;
    r->ctx = lws_create_context(&info);
    assert_non_null(r->ctx);

    memset(&cc, 0, sizeof(cc));
    cc.context = r->ctx;
    cc.address = "127.0.0.1";
    cc.port = r->sv.port;
    cc.path = "/";
    cc.host = "127.0.0.1";
    cc.protocol = NULL;
    cc.local_protocol_name = "test";
    cc.ietf_version_or_minus_one = -1;
    cc.opaque_user_data = &r->cs;
    assert_non_null(lws_client_connect_via_info(&cc));

    uv_timer_init(&r->loop, &r->watchdog);
    r->watchdog.data = r;
    uv_timer_start(&r->watchdog, on_watchdog, 20000, 0);
    uv_timer_init(&r->loop, &done);
    done.data = r;
    uv_timer_start(&done, on_check_done, 5, 0);
    uv_run(&r->loop, UV_RUN_DEFAULT);

    /* Teardown as the daemon does it: destroy, run, destroy again, run. */
    uv_timer_stop(&done);
    uv_close((uv_handle_t *)&done, NULL);
    uv_close((uv_handle_t *)&r->watchdog, NULL);
    uv_close((uv_handle_t *)&r->sv.tick, NULL);
    uv_close((uv_handle_t *)&r->cs.resume, NULL);
    uv_close((uv_handle_t *)&r->sv.listener, NULL);
    if (r->sv.have_conn && !uv_is_closing((uv_handle_t *)&r->sv.conn))
        uv_close((uv_handle_t *)&r->sv.conn, NULL);
    lws_context_destroy(r->ctx);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    lws_context_destroy(r->ctx);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_walk(&r->loop, close_walk, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
}

/* Check the events against the script: bytes once and in order, each
 * callback inside one frame, flags right. */
static void check_run(const struct script *s, struct run *r, const char *what)
{
    size_t want = 0, off = 0, reps = script_reps(s, r->sv.mode);
    int e = 0;

    if (r->timed_out)
        fail_msg("%s: timed out (received %zu bytes in %d callbacks, %zu pongs, peer close %d, "
                 "closed %d, sent all %d)",
                 what, r->cs.rx_len, r->cs.n_ev, r->sv.pongs, r->cs.peer_close, r->cs.closed,
                 r->sv.done_sending);
    assert_true(r->cs.established);
    assert_false(r->cs.error);
    for (int i = 0; i < s->n_msgs; i++)
        want += s->payload_len[i];
    if (r->cs.rx_len != want * reps)
        fail_msg("%s: %zu payload bytes received, %zu sent", what, r->cs.rx_len, want * reps);
    for (size_t k = 0; k < reps; k++)
        for (int i = 0; i < s->n_msgs; i++) {
            if (memcmp(r->cs.rx + off, s->payload[i], s->payload_len[i]) != 0)
                fail_msg("%s: message %d of round %zu differs", what, i, k);
            off += s->payload_len[i];
        }
    /* Walk the data frames: their bytes are the callbacks' bytes. */
    for (size_t k = 0; k < reps; k++)
        for (int f = 0; f < s->n_frames; f++) {
            const struct frame *fr = &s->frames[f];
            size_t got = 0;
            bool first_of_msg = fr->opcode == 1 || fr->opcode == 2;
            if (fr->opcode >= 8)
                continue;
            do {
                const struct event *ev;
                if (e >= r->cs.n_ev)
                    fail_msg("%s: round %zu frame %d: no callback left", what, k, f);
                ev = &r->cs.ev[e++];
                got += ev->len;
                if (ev->len > SERV_BUF)
                    fail_msg("%s: frame %d: a callback of %zu bytes (> %d)", what, f, ev->len,
                             SERV_BUF);
                if (got > fr->len || ev->remaining != fr->len - got)
                    fail_msg("%s: round %zu frame %d (%zu bytes): callback with %zu, remaining "
                             "%zu after %zu",
                             what, k, f, fr->len, ev->len, ev->remaining, got);
                if (ev->first != (first_of_msg && got == ev->len))
                    fail_msg("%s: round %zu frame %d: first-fragment flag %d wrong", what, k, f,
                             ev->first);
                if (ev->final != (fr->fin && got == fr->len))
                    fail_msg("%s: round %zu frame %d: final flag %d wrong (got %zu of %zu)", what,
                             k, f, ev->final, got, fr->len);
                if (ev->binary != s->binary[fr->msg])
                    fail_msg("%s: round %zu frame %d: binary flag wrong", what, k, f);
            } while (got < fr->len);
        }
    if (e != r->cs.n_ev)
        fail_msg("%s: %d callbacks beyond the script", what, r->cs.n_ev - e);
    /* lws answers one ping at a time: pings that come while one is pending
     * are dropped, as RFC 6455 5.5.3 allows. */
    if ((s->pings > 0 && r->sv.pongs == 0) || r->sv.pongs > (size_t)s->pings * reps)
        fail_msg("%s: %zu pongs for %zu pings", what, r->sv.pongs, (size_t)s->pings * reps);
    if (s->ends_in_close && (!r->cs.peer_close || r->cs.peer_close_code != s->close_code))
        fail_msg("%s: close %u not seen (%d, %u)", what, s->close_code, r->cs.peer_close,
                 r->cs.peer_close_code);
}

static void run_and_check(const struct script *s, enum send_mode mode, int pause_every,
                          const char *what)
{
    struct run *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    run_script(s, mode, pause_every, r);
    check_run(s, r, what);
    free(r->cs.rx);
    free(r);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_whole(void **state)
{
    static struct script s;
    (void)state;
    script_mixed(&s, true);
    run_and_check(&s, SEND_WHOLE, 0, "one write");
    run_and_check(&s, SEND_CHUNKS_1000, 0, "1000-byte writes");
    script_free(&s);
}

static void test_split_every_byte(void **state)
{
    static struct script s;
    (void)state;
    script_mixed(&s, false);
    run_and_check(&s, SEND_SPLIT_EACH, 0, "split at every byte");
    script_free(&s);
}

static void test_byte_per_segment(void **state)
{
    static struct script s;
    (void)state;
    script_mixed(&s, false);
    run_and_check(&s, SEND_BYTEWISE, 0, "one byte per segment");
    script_free(&s);
}

static void test_oversized_frame(void **state)
{
    static struct script s;
    static const size_t one[] = {0};
    (void)state;
    memset(&s, 0, sizeof(s));
    /* One frame of 300 KiB: far beyond the client's 4 KiB reads. */
    put_msg(&s, true, 300 * 1024, one, 1, -1);
    run_and_check(&s, SEND_WHOLE, 0, "oversized frame");
    run_and_check(&s, SEND_CHUNKS_1000, 0, "oversized frame, 1000-byte writes");
    script_free(&s);
}

static void test_flow_control(void **state)
{
    static struct script s;
    (void)state;
    script_mixed(&s, true);
    /* Pause reading after every third callback, resume 2 ms later: the rest
     * of each read waits in lws's rx flow cache. */
    run_and_check(&s, SEND_WHOLE, 3, "flow control, one write");
    run_and_check(&s, SEND_CHUNKS_1000, 2, "flow control, 1000-byte writes");
    script_free(&s);
}

static void test_close_between_fragments(void **state)
{
    static struct script s;
    static const size_t sizes[] = {10, 10};
    static const uint8_t close_frame[] = {0x03, 0xe8, 'b', 'y', 'e'}; /* 1000 "bye" */
    (void)state;
    memset(&s, 0, sizeof(s));
    put_msg(&s, true, 30, sizes, 3, -1);
    /* A message started, then the close: the fragments before it arrive,
     * nothing after it does. */
    {
        static const size_t first[] = {8};
        put_msg(&s, true, 8, first, 1, -1);
        /* Make that message unfinished: its only frame is not FIN. */
        s.bytes[s.len - 8 - 2] &= 0x7f;
        s.frames[s.n_frames - 1].fin = false;
    }
    put_frame(&s, true, 8, close_frame, sizeof(close_frame));
    s.ends_in_close = true;
    s.close_code = 1000;
    /* Bytes after the close must not be delivered. */
    {
        uint8_t junk[] = {0x82, 0x03, 'x', 'y', 'z'};
        memcpy(s.bytes + s.len, junk, sizeof(junk));
        s.len += sizeof(junk);
    }
    run_and_check(&s, SEND_WHOLE, 0, "close between fragments");
    run_and_check(&s, SEND_BYTEWISE, 0, "close between fragments, bytewise");
    script_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_split_every_byte),
        cmocka_unit_test(test_byte_per_segment),
        cmocka_unit_test(test_oversized_frame),
        cmocka_unit_test(test_flow_control),
        cmocka_unit_test(test_close_between_fragments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
