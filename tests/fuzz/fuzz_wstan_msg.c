/* Fuzz the wstan message decoder with fixed keys and nonces.
 *
 * Input: one flags byte, then messages, each a 2-byte big-endian length and
 * that many bytes (cut short at the end of the input).  Flags:
 *   bit 0  TLS mode (identity cipher, tags only)
 *   bit 1  the 32-byte password key (TV1) instead of the 16-byte one
 *   bit 2  the spec's Ns nonce instead of Nc
 *   bit 3  the first message is a handshake (URI) request; server role
 *   bit 4  recompute the tag of tagged messages, so the body parsers behind
 *          the HMAC get explored
 *   bits 5-6  initial state when there is no first request
 *   bit 7  server role when there is no first request
 *
 * Every message is copied into a buffer of its exact size (so ASan sees any
 * over-read).  After each successful decode a mirror stream re-encodes what
 * was decoded: it must give the same bytes, which checks both the codec and
 * that the stream stays in sync, skipped DATs included. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto_stream.h"
#include "util/error.h"
#include "proto/wstan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static const uint8_t key16[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
/* scrypt("correct horse battery staple"), spec TV1: fixed here, since
 * deriving it per input would be far too slow. */
static const uint8_t key32[32] = {0xeb, 0xb8, 0x03, 0x65, 0x82, 0x89, 0x89, 0x7e, 0x6c, 0x8c, 0x5c,
                                  0xf4, 0x83, 0x00, 0x65, 0x1b, 0x50, 0x12, 0xea, 0x64, 0xcd, 0x9c,
                                  0xb0, 0x83, 0x0d, 0x4c, 0xe3, 0x14, 0x51, 0xe1, 0x06, 0xa2};
static const uint8_t nonce_c[16] = "the sample nonce";
static const uint8_t nonce_s[16] = {0xb3, 0x7a, 0x4f, 0x2c, 0xc0, 0x62, 0x4f, 0x16,
                                    0x90, 0xf6, 0x46, 0x06, 0xcf, 0x38, 0x59, 0x45};

#define NOW 1700000000.5

/* The tag covers the ciphertext, which is what we have: only the key is
 * needed, not the stream. */
static void fix_tag(const struct wstan_key *k, uint8_t *msg, size_t len)
{
    uint8_t d[TD_SHA1_LEN];
    if (len < 1 + WSTAN_TAG_LEN)
        return;
    CHECK(td_hmac_sha1(k->bytes, k->len, msg, len - WSTAN_TAG_LEN, d) == 0);
    memcpy(msg + len - WSTAN_TAG_LEN, d, WSTAN_TAG_LEN);
}

/* Peek at the command byte under the current keystream without moving it. */
static uint8_t peek_cmd(const struct wstan_key *k, const uint8_t *nonce, bool tls, size_t pos,
                        uint8_t c0)
{
    struct td_ctr c;
    uint8_t b = c0;
    if (tls)
        return c0;
    CHECK(td_ctr_init(&c, k->bytes, k->len, nonce) == 0);
    CHECK(td_ctr_skip(&c, pos) == 0);
    CHECK(td_ctr_xor(&c, &b, &b, 1) == 0);
    td_ctr_free(&c);
    return b;
}

static void mirror_check(struct wstan_stream *mirror, const struct wstan_msg *m,
                         const uint8_t *orig, size_t len, bool first, bool skipped)
{
    uint8_t *buf = malloc(len + 1);
    size_t n = 0;
    int rc = 0;

    CHECK(buf != NULL);
    if (skipped) {
        /* Command byte and body both moved the stream. */
        CHECK(wstan_stream_skip(mirror, len) == 0);
        free(buf);
        return;
    }
    switch (m->cmd) {
    case WSTAN_REQ:
        rc = wstan_encode_req(mirror, m->ts, &m->addr, m->data, m->datalen, buf, len + 1, &n);
        break;
    case WSTAN_DGM:
        if (first)
            rc = wstan_encode_dgm_req(mirror, m->ts, &m->addr, m->data, m->datalen, buf, len + 1,
                                      &n);
        else
            rc = wstan_encode_dgm(mirror, &m->addr, m->data, m->datalen, buf, len + 1, &n);
        break;
    case WSTAN_DAT:
        rc = wstan_encode_dat(mirror, m->data, m->datalen, buf, len + 1, &n);
        break;
    case WSTAN_RST:
        if (first) {
            /* An empty request may carry ignored bytes after TS. */
            if (len == 1 + WSTAN_TS_LEN + WSTAN_TAG_LEN) {
                rc = wstan_encode_empty_req(mirror, m->ts, buf, len + 1, &n);
            } else {
                CHECK(wstan_stream_skip(mirror, len - WSTAN_TAG_LEN) == 0);
                n = len;
                memcpy(buf, orig, len);
            }
        } else {
            /* Padding and sanitizing differ; only keep the mirror in step. */
            CHECK(m->reason_len + m->err_len <= len);
            CHECK(wstan_stream_skip(mirror, len - WSTAN_TAG_LEN) == 0);
            n = len;
            memcpy(buf, orig, len);
        }
        break;
    default:
        CHECK(0);
    }
    CHECK(rc == 0);
    CHECK(n == len);
    CHECK(memcmp(buf, orig, len) == 0);
    free(buf);
}

static enum wstan_event event_of(enum wstan_cmd cmd)
{
    switch (cmd) {
    case WSTAN_REQ:
        return WSTAN_EV_RECV_REQ;
    case WSTAN_DAT:
        return WSTAN_EV_RECV_DAT;
    case WSTAN_RST:
        return WSTAN_EV_RECV_RST;
    default:
        return WSTAN_EV_RECV_DGM;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wstan_key k;
    struct wstan_stream rx, mirror;
    enum wstan_state st;
    enum wstan_role role;
    const uint8_t *nonce;
    bool tls, first, fixtags;
    size_t off = 1, pos = 0;
    uint8_t flags;

    if (size < 1)
        return 0;
    flags = data[0];
    tls = flags & 0x01;
    memset(&k, 0, sizeof(k));
    if (flags & 0x02) {
        memcpy(k.bytes, key32, 32);
        k.len = 32;
    } else {
        memcpy(k.bytes, key16, 16);
        k.len = 16;
    }
    nonce = (flags & 0x04) ? nonce_s : nonce_c;
    first = flags & 0x08;
    fixtags = flags & 0x10;
    st = (enum wstan_state)((flags >> 5) & 3);
    role = (flags & 0x80) ? WSTAN_SERVER : WSTAN_CLIENT;
    if (role == WSTAN_CLIENT && st == WSTAN_CONNECTING)
        st = WSTAN_USING;

    CHECK(wstan_stream_init(&rx, &k, nonce, tls) == 0);
    CHECK(wstan_stream_init(&mirror, &k, nonce, tls) == 0);

    for (int i = 0; off + 2 <= size; i++) {
        size_t len = (size_t)data[off] << 8 | data[off + 1];
        uint8_t *msg, *orig;
        struct wstan_msg m;
        struct wstan_step step;
        unsigned dflags;
        int rc;

        off += 2;
        if (len > size - off)
            len = size - off;
        msg = malloc(len ? len : 1);
        orig = malloc(len ? len : 1);
        CHECK(msg != NULL && orig != NULL);
        memcpy(msg, data + off, len);
        off += len;

        if (i == 0 && first) {
            role = WSTAN_SERVER;
            if (fixtags)
                fix_tag(&k, msg, len);
            memcpy(orig, msg, len);
            rc = wstan_decode_first(&rx, msg, len, &m);
            CHECK(rc == 0 || rc == TD_EAUTH || rc == TD_EPROTO);
            if (rc == TD_EAUTH)
                CHECK(memcmp(orig, msg, len) == 0);
            if (rc == 0) {
                CHECK(m.has_ts);
                (void)wstan_ts_check(m.ts, NOW, 0);
                if (m.has_addr)
                    CHECK(m.data + m.datalen == msg + len - WSTAN_TAG_LEN);
                mirror_check(&mirror, &m, orig, len, true, false);
                CHECK(wstan_initial_state(role, m.cmd, &st) == 0);
                pos += len - WSTAN_TAG_LEN;
            }
        } else {
            if (fixtags && len > 0) {
                uint8_t c = peek_cmd(&k, nonce, tls, pos, msg[0]);
                if (c == WSTAN_REQ || c == WSTAN_RST)
                    fix_tag(&k, msg, len);
            }
            memcpy(orig, msg, len);
            dflags = st == WSTAN_RESETTING ? WSTAN_DECODE_SKIP_DAT : 0;
            rc = wstan_decode_msg(&rx, msg, len, dflags, &m);
            CHECK(rc == 0 || rc == TD_EAUTH || rc == TD_EPROTO);
            if (rc == 0) {
                bool skipped = m.cmd == WSTAN_DAT && (dflags & WSTAN_DECODE_SKIP_DAT);
                CHECK(msg[0] == m.cmd);
                if (m.cmd == WSTAN_REQ || m.cmd == WSTAN_RST) {
                    pos += len - WSTAN_TAG_LEN;
                } else {
                    pos += len;
                }
                if (m.data != NULL)
                    CHECK(m.data >= msg && m.data + m.datalen <= msg + len);
                if (m.cmd == WSTAN_RST) {
                    CHECK((const uint8_t *)m.reason >= msg + 1);
                    CHECK((const uint8_t *)m.err + m.err_len <= msg + len - WSTAN_TAG_LEN);
                }
                if (m.cmd == WSTAN_REQ)
                    (void)wstan_ts_check(m.ts, NOW, 0);
                mirror_check(&mirror, &m, orig, len, false, skipped);
                rc = wstan_transition(role, st, event_of(m.cmd), &step);
                CHECK(rc == 0 || rc == TD_EPROTO || rc == TD_EINVAL);
                if (rc == 0)
                    st = step.next;
                else
                    rc = -1; /* the connection would be closed */
            }
        }
        free(msg);
        free(orig);
        if (rc != 0)
            break; /* a failed message ends the connection */
    }
    wstan_stream_free(&rx);
    wstan_stream_free(&mirror);
    return 0;
}
