/* Fuzz what a wstan server parses before the WebSocket opens: the request
 * URI carrying the first request, the compatible-mode cookie, the
 * Sec-WebSocket-Key, ADDR, key strings and RST text.
 *
 * Input: one flags byte, then three '\n'-terminated lines (request-target,
 * Cookie value, Sec-WebSocket-Key) and the remaining bytes.  Flags:
 *   bits 0-1  server path prefix: "", "/", "/ws", "/ws/"
 *   bit 2     TLS mode
 *   bit 3     recompute the first request's tag so its body gets parsed
 *   bit 4     the 32-byte password key (TV1)
 *   bit 5     compatible mode: nonce from the cookie */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"
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
static const uint8_t key32[32] = {0xeb, 0xb8, 0x03, 0x65, 0x82, 0x89, 0x89, 0x7e, 0x6c, 0x8c, 0x5c,
                                  0xf4, 0x83, 0x00, 0x65, 0x1b, 0x50, 0x12, 0xea, 0x64, 0xcd, 0x9c,
                                  0xb0, 0x83, 0x0d, 0x4c, 0xe3, 0x14, 0x51, 0xe1, 0x06, 0xa2};
static const char *const prefixes[4] = {"", "/", "/ws", "/ws/"};

#define NOW 1700000000.5

/* Next '\n'-terminated field; the last one runs to the end. */
static const uint8_t *next_line(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    if (nl == NULL) {
        *len = (size_t)(end - s);
        *p = end;
    } else {
        *len = (size_t)(nl - s);
        *p = nl + 1;
    }
    return s;
}

/* Copy into an exact-size heap buffer so that ASan sees over-reads. */
static char *dup_exact(const uint8_t *s, size_t len)
{
    char *d = malloc(len ? len : 1);
    CHECK(d != NULL);
    memcpy(d, s, len);
    return d;
}

static void check_first(const struct wstan_key *k, const uint8_t nc[16], bool tls, bool fixtags,
                        const char *prefix, const char *target, size_t tlen)
{
    size_t cap = tlen / 4 * 3 + 3, n = 0, n2 = 0, plen = 0;
    uint8_t *buf = malloc(cap), *buf2 = malloc(cap);
    char *path = NULL;
    struct wstan_stream s;
    struct wstan_msg m;
    int rc;

    CHECK(buf != NULL && buf2 != NULL);
    rc = wstan_uri_parse(target, tlen, prefix, strlen(prefix), buf, cap, &n);
    CHECK(rc == 0 || rc == TD_EINVAL || rc == TD_ETOOBIG);
    if (rc != 0)
        goto out;
    CHECK(n > 0 && n <= cap);

    /* Building the path again and parsing it gives the same bytes. */
    path = malloc(strlen(prefix) + 2 + TD_BASE64_ENCODED_LEN(n));
    CHECK(path != NULL);
    CHECK(wstan_uri_build(prefix, strlen(prefix), buf, n, path,
                          strlen(prefix) + 2 + TD_BASE64_ENCODED_LEN(n), &plen) == 0);
    CHECK(wstan_uri_parse(path, plen, prefix, strlen(prefix), buf2, cap, &n2) == 0);
    CHECK(n2 == n && memcmp(buf, buf2, n) == 0);

    if (fixtags && n > WSTAN_TAG_LEN) {
        uint8_t d[TD_SHA1_LEN];
        CHECK(td_hmac_sha1(k->bytes, k->len, buf, n - WSTAN_TAG_LEN, d) == 0);
        memcpy(buf + n - WSTAN_TAG_LEN, d, WSTAN_TAG_LEN);
    }
    CHECK(wstan_stream_init(&s, k, nc, tls) == 0);
    memcpy(buf2, buf, n);
    rc = wstan_decode_first(&s, buf, n, &m);
    CHECK(rc == 0 || rc == TD_EAUTH || rc == TD_EPROTO);
    if (rc == TD_EAUTH)
        CHECK(memcmp(buf, buf2, n) == 0);
    if (rc == 0) {
        enum wstan_state st;
        CHECK(m.has_ts);
        CHECK(wstan_initial_state(WSTAN_SERVER, m.cmd, &st) == 0);
        if (m.has_addr) {
            CHECK(m.data >= buf && m.data + m.datalen == buf + n - WSTAN_TAG_LEN);
            CHECK(wstan_addr_len(&m.addr) > 0);
        }
        if (!tls && wstan_ts_check(m.ts, NOW, 0) == 0) {
            struct wstan_replay r;
            CHECK(wstan_replay_init(&r, 4, 0) == 0);
            CHECK(wstan_replay_check(&r, nc, m.ts, NOW) == 0);
            CHECK(wstan_replay_check(&r, nc, m.ts, NOW + 1) == TD_EAUTH);
            wstan_replay_free(&r);
        }
    }
    wstan_stream_free(&s);
out:
    free(path);
    free(buf);
    free(buf2);
}

static void check_addr(const uint8_t *p, size_t len)
{
    struct wstan_addr a;
    uint8_t enc[WSTAN_ADDR_MAX];
    size_t used = 0, n = 0;
    uint8_t *copy = (uint8_t *)dup_exact(p, len);
    int rc = wstan_addr_parse(copy, len, &a, &used);

    CHECK(rc == 0 || rc == TD_EPROTO);
    if (rc == 0) {
        CHECK(used <= len && used == wstan_addr_len(&a));
        CHECK(wstan_addr_encode(&a, enc, sizeof(enc), &n) == 0);
        CHECK(n == used && memcmp(enc, copy, n) == 0);
        if (a.atyp == WSTAN_ATYP_DOMAIN)
            CHECK(strlen(a.host) == a.hostlen);
    }
    free(copy);
}

static void check_text(const uint8_t *p, size_t len)
{
    char *in = dup_exact(p, len), *out = malloc(len ? len : 1), *again = malloc(len ? len : 1);
    uint8_t dec[64];
    size_t n = 0, n2 = 0;
    int rc;

    CHECK(out != NULL && again != NULL);
    /* Sanitizing never grows the text and is idempotent. */
    CHECK(wstan_text_sanitize(in, len, out, &n) == 0);
    CHECK(n <= len);
    CHECK(wstan_text_sanitize(out, n, again, &n2) == 0);
    CHECK(n2 == n && memcmp(out, again, n) == 0);
    /* In place gives the same. */
    CHECK(wstan_text_sanitize(in, len, in, &n2) == 0);
    CHECK(n2 == n && memcmp(in, out, n) == 0);

    rc = wstan_b64_lenient_decode((const char *)p, len, dec, sizeof(dec), &n);
    CHECK(rc == 0 || rc == TD_EINVAL || rc == TD_ETOOBIG);
    if (rc == 0)
        CHECK(n <= sizeof(dec) && n <= len);
    free(in);
    free(out);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p, *end = data + size, *line;
    struct wstan_key k;
    uint8_t flags, nc[16] = "the sample nonce", nc2[16], ns[16];
    char name[3], acc[WSTAN_WS_ACCEPT_LEN + 1], *target, *cookie, *wskey;
    size_t tlen, clen, klen;
    bool have_nc = false;
    int rc;

    if (size < 1)
        return 0;
    flags = data[0];
    p = data + 1;
    memset(&k, 0, sizeof(k));
    if (flags & 0x10) {
        memcpy(k.bytes, key32, 32);
        k.len = 32;
    } else {
        memcpy(k.bytes, key16, 16);
        k.len = 16;
    }
    line = next_line(&p, end, &tlen);
    target = dup_exact(line, tlen);
    line = next_line(&p, end, &clen);
    cookie = dup_exact(line, clen);
    line = next_line(&p, end, &klen);
    wskey = dup_exact(line, klen);

    /* Nonce: from the cookie (compatible mode) or Sec-WebSocket-Key. */
    CHECK(wstan_cookie_name(&k, name) == 0);
    if (flags & 0x20) {
        char seen[3];
        rc = wstan_cookie_parse(cookie, clen, NULL, nc2, seen);
        CHECK(rc == 0 || rc == TD_EINVAL);
        if (rc == 0) {
            CHECK(seen[0] == '_' && seen[1] >= 'A' && seen[1] <= 'Z');
            CHECK(wstan_cookie_parse(cookie, clen, seen, nc, NULL) == 0);
            CHECK(memcmp(nc, nc2, 16) == 0);
            have_nc = true;
        }
        (void)wstan_cookie_parse(cookie, clen, name, nc2, NULL);
    } else {
        rc = wstan_ws_key_decode(wskey, klen, nc2);
        CHECK(rc == 0 || rc == TD_EINVAL);
        if (rc == 0) {
            char enc[WSTAN_WS_KEY_LEN + 1];
            memcpy(nc, nc2, 16);
            have_nc = true;
            CHECK(wstan_ws_key_encode(nc, enc) == 0);
            CHECK(wstan_ws_key_decode(enc, WSTAN_WS_KEY_LEN, nc2) == 0);
            CHECK(memcmp(nc, nc2, 16) == 0);
        }
    }
    if (wstan_ws_accept(wskey, klen, acc, NULL) == 0) {
        CHECK(wstan_ns_from_accept(acc, WSTAN_WS_ACCEPT_LEN, ns) == 0);
        CHECK(wstan_ns_default(wskey, klen, nc2) == 0);
        CHECK(memcmp(ns, nc2, 16) == 0);
    }
    (void)have_nc;
    (void)wstan_cookie_nonce_ok(nc, name);

    check_first(&k, nc, flags & 0x04, flags & 0x08, prefixes[flags & 3], target, tlen);
    check_addr(p, (size_t)(end - p));
    check_text(p, (size_t)(end - p));

    free(target);
    free(cookie);
    free(wskey);
    return 0;
}
