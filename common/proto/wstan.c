/* wstan protocol, pure layer: see wstan.h and docs/protocols/wstan.md. */
#include "proto/wstan.h"

#include "util/addr.h"
#include "util/base64.h"
#include "crypto/crypto.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

_Static_assert(sizeof(double) == 8, "wstan timestamps need IEEE-754 binary64");

static const char wstan__guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
static const char wstan__b64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/* Fixed scrypt salt of stock wstan (section 2). */
static const uint8_t wstan__salt[16] = {0x6a, 0xbf, 0x20, 0x09, 0x3b, 0xd5, 0xc6, 0xc6,
                                        0x76, 0x68, 0x07, 0xc1, 0xd6, 0xb2, 0x82, 0x2f};
static const uint8_t wstan__star[3] = {0xe2, 0x98, 0x85}; /* U+2605 BLACK STAR */

/* ---- base64, lenient ------------------------------------------------------- */

static int wstan__b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int wstan_b64_lenient_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    unsigned quad = 0, pads = 0, left = 0;
    size_t o = 0;

    if ((in == NULL && len != 0) || (out == NULL && cap != 0) || outlen == NULL)
        return TD_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;
        unsigned b = 0;
        bool emit = true;

        if (c == '=') {
            /* A pad counts only after two data characters of the quad, and
             * completed padding ends the input (CPython's rule: pads is only
             * incremented when quad >= 2). */
            if (quad >= 2 && quad + ++pads >= 4)
                goto done;
            continue;
        }
        v = wstan__b64_value(c);
        if (v < 0)
            continue;
        pads = 0;
        switch (quad) {
        case 0:
            left = (unsigned)v;
            emit = false;
            break;
        case 1:
            b = (left << 2) | ((unsigned)v >> 4);
            left = (unsigned)v & 0x0f;
            break;
        case 2:
            b = (left << 4) | ((unsigned)v >> 2);
            left = (unsigned)v & 0x03;
            break;
        default:
            b = (left << 6) | (unsigned)v;
            left = 0;
            break;
        }
        quad = (quad + 1) & 3;
        if (emit) {
            if (o < cap)
                out[o] = (uint8_t)b;
            o++;
        }
    }
    /* One dangling character, or two/three without completed padding. */
    if (quad != 0)
        return TD_EINVAL;
done:
    if (o > cap)
        return TD_ETOOBIG;
    *outlen = o;
    return 0;
}

/* ---- keys -------------------------------------------------------------------- */

int wstan_key_derive(const char *s, size_t len, struct wstan_key *out)
{
    uint8_t raw[16];
    size_t n = 0;
    bool ascii = true;
    int rc;

    if (s == NULL || out == NULL || len == 0)
        return TD_EINVAL;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] >= 0x80)
            ascii = false;
    }
    if (ascii && wstan_b64_lenient_decode(s, len, raw, sizeof(raw), &n) == 0 && n == 16) {
        memcpy(out->bytes, raw, 16);
        out->len = 16;
        mbedtls_platform_zeroize(raw, sizeof(raw));
        return 0;
    }
    mbedtls_platform_zeroize(raw, sizeof(raw));
    rc = td_scrypt((const uint8_t *)s, len, wstan__salt, sizeof(wstan__salt), 16384, 8, 1,
                   out->bytes, 32);
    if (rc != 0) {
        mbedtls_platform_zeroize(out, sizeof(*out));
        return rc;
    }
    out->len = 32;
    out->derived = true;
    return 0;
}

void wstan_key_clear(struct wstan_key *k)
{
    if (k != NULL)
        mbedtls_platform_zeroize(k, sizeof(*k));
}

/* ---- nonces and handshake values ----------------------------------------------- */

int wstan_ws_key_decode(const char *key, size_t len, uint8_t nc[WSTAN_NONCE_LEN])
{
    uint8_t buf[WSTAN_NONCE_LEN];
    size_t n = 0;

    if (key == NULL || nc == NULL || len != WSTAN_WS_KEY_LEN)
        return TD_EINVAL;
    if (key[22] != '=' || key[23] != '=')
        return TD_EINVAL;
    for (size_t i = 0; i < 22; i++) {
        if (wstan__b64_value((unsigned char)key[i]) < 0)
            return TD_EINVAL;
    }
    if (wstan_b64_lenient_decode(key, len, buf, sizeof(buf), &n) != 0 || n != WSTAN_NONCE_LEN)
        return TD_EINVAL;
    memcpy(nc, buf, WSTAN_NONCE_LEN);
    return 0;
}

int wstan_ws_key_encode(const uint8_t nc[WSTAN_NONCE_LEN], char out[WSTAN_WS_KEY_LEN + 1])
{
    if (nc == NULL || out == NULL)
        return TD_EINVAL;
    return td_base64_encode(nc, WSTAN_NONCE_LEN, out, WSTAN_WS_KEY_LEN + 1) == WSTAN_WS_KEY_LEN
               ? 0
               : TD_EINVAL;
}

static int wstan__accept_digest(const char *key, size_t len, uint8_t digest[TD_SHA1_LEN])
{
    char buf[256];
    size_t glen = sizeof(wstan__guid) - 1;

    /* RFC 6455 keys are 24 characters; anything far longer is not a key. */
    if (key == NULL || len > sizeof(buf) - glen)
        return TD_EINVAL;
    memcpy(buf, key, len);
    memcpy(buf + len, wstan__guid, glen);
    return td_sha1(buf, len + glen, digest);
}

int wstan_ws_accept(const char *key, size_t len, char out[WSTAN_WS_ACCEPT_LEN + 1],
                    uint8_t digest[TD_SHA1_LEN])
{
    uint8_t d[TD_SHA1_LEN];
    int rc;

    if (out == NULL)
        return TD_EINVAL;
    rc = wstan__accept_digest(key, len, d);
    if (rc != 0)
        return rc;
    if (td_base64_encode(d, sizeof(d), out, WSTAN_WS_ACCEPT_LEN + 1) != WSTAN_WS_ACCEPT_LEN)
        return TD_EINVAL;
    if (digest != NULL)
        memcpy(digest, d, sizeof(d));
    return 0;
}

int wstan_ns_default(const char *key, size_t len, uint8_t ns[WSTAN_NONCE_LEN])
{
    uint8_t d[TD_SHA1_LEN];
    int rc;

    if (ns == NULL)
        return TD_EINVAL;
    rc = wstan__accept_digest(key, len, d);
    if (rc == 0)
        memcpy(ns, d, WSTAN_NONCE_LEN);
    return rc;
}

int wstan_ns_from_accept(const char *accept, size_t len, uint8_t ns[WSTAN_NONCE_LEN])
{
    uint8_t d[TD_SHA1_LEN];
    size_t n = 0;

    if (accept == NULL || ns == NULL || len != WSTAN_WS_ACCEPT_LEN)
        return TD_EINVAL;
    if (td_base64_decode(accept, len, d, sizeof(d), &n) != 0 || n != TD_SHA1_LEN)
        return TD_EINVAL;
    memcpy(ns, d, WSTAN_NONCE_LEN);
    return 0;
}

int wstan_ns_compat(const uint8_t nc[WSTAN_NONCE_LEN], uint8_t ns[WSTAN_NONCE_LEN])
{
    uint8_t d[TD_SHA1_LEN];
    int rc;

    if (nc == NULL || ns == NULL)
        return TD_EINVAL;
    rc = td_sha1(nc, WSTAN_NONCE_LEN, d);
    if (rc == 0)
        memcpy(ns, d, WSTAN_NONCE_LEN);
    return rc;
}

int wstan_cookie_name(const struct wstan_key *k, char out[WSTAN_COOKIE_NAME_LEN + 1])
{
    uint8_t d[TD_SHA1_LEN];
    int rc;

    if (k == NULL || out == NULL || (k->len != 16 && k->len != 32))
        return TD_EINVAL;
    rc = td_sha1(k->bytes, k->len, d);
    if (rc != 0)
        return rc;
    out[0] = '_';
    out[1] = (char)('A' + d[19] % 26);
    out[2] = '\0';
    return 0;
}

static bool wstan__cookie_name_valid(const char *name)
{
    return name[0] == '_' && name[1] >= 'A' && name[1] <= 'Z';
}

int wstan_cookie_value(const char *name, const uint8_t nc[WSTAN_NONCE_LEN], char *out, size_t cap)
{
    if (name == NULL || nc == NULL || out == NULL || strlen(name) != WSTAN_COOKIE_NAME_LEN ||
        !wstan__cookie_name_valid(name))
        return TD_EINVAL;
    if (cap < WSTAN_COOKIE_NAME_LEN + 1 + WSTAN_WS_KEY_LEN + 1)
        return TD_ETOOBIG;
    out[0] = name[0];
    out[1] = name[1];
    out[2] = '=';
    return wstan_ws_key_encode(nc, out + 3);
}

int wstan_cookie_parse(const char *value, size_t len, const char *expect_name,
                       uint8_t nc[WSTAN_NONCE_LEN], char name_out[WSTAN_COOKIE_NAME_LEN + 1])
{
    const size_t pre = WSTAN_COOKIE_NAME_LEN + 1;

    if (value == NULL || nc == NULL)
        return TD_EINVAL;
    if (len < pre || memchr(value, ';', len) != NULL)
        return TD_EINVAL;
    if (!wstan__cookie_name_valid(value) || value[2] != '=')
        return TD_EINVAL;
    if (expect_name != NULL &&
        (strlen(expect_name) != WSTAN_COOKIE_NAME_LEN || memcmp(value, expect_name, 2) != 0))
        return TD_EINVAL;
    /* Exactly the "NAME=" prefix is removed, never a character set. */
    if (wstan_ws_key_decode(value + pre, len - pre, nc) != 0)
        return TD_EINVAL;
    if (name_out != NULL) {
        name_out[0] = value[0];
        name_out[1] = value[1];
        name_out[2] = '\0';
    }
    return 0;
}

bool wstan_cookie_nonce_ok(const uint8_t nc[WSTAN_NONCE_LEN], const char *cookie_name)
{
    if (nc == NULL)
        return false;
    if (cookie_name == NULL)
        return true;
    /* The first b64 character encodes the top six bits of the first byte. */
    return wstan__b64_alpha[nc[0] >> 2] != cookie_name[1];
}

int wstan_nonce_generate(uint8_t nc[WSTAN_NONCE_LEN], const char *cookie_name)
{
    if (nc == NULL)
        return TD_EINVAL;
    /* A redraw is needed with probability 1/64; 64 failures in a row mean
     * the generator is broken. */
    for (int i = 0; i < 64; i++) {
        int rc = td_random(nc, WSTAN_NONCE_LEN);
        if (rc != 0)
            return rc;
        if (wstan_cookie_nonce_ok(nc, cookie_name))
            return 0;
    }
    return TD_ECRYPTO;
}

/* ---- ADDR ---------------------------------------------------------------------- */

int wstan_addr_set(struct wstan_addr *a, const char *host, size_t len, uint16_t port, bool as_text)
{
    if (a == NULL || host == NULL)
        return TD_EINVAL;
    memset(a, 0, sizeof(*a));
    a->port = port;
    if (!as_text && td_ipv4_parse(host, len, a->ip) == 0) {
        a->atyp = WSTAN_ATYP_IPV4;
        return 0;
    }
    if (!as_text && td_ipv6_parse(host, len, a->ip) == 0) {
        a->atyp = WSTAN_ATYP_IPV6;
        return 0;
    }
    memset(a->ip, 0, sizeof(a->ip));
    if (len == 0 || len > 255 || memchr(host, '\0', len) != NULL)
        return TD_EINVAL;
    a->atyp = WSTAN_ATYP_DOMAIN;
    memcpy(a->host, host, len);
    a->host[len] = '\0';
    a->hostlen = len;
    return 0;
}

size_t wstan_addr_len(const struct wstan_addr *a)
{
    if (a == NULL)
        return 0;
    switch (a->atyp) {
    case WSTAN_ATYP_IPV4:
        return 2 + 4 + 2;
    case WSTAN_ATYP_IPV6:
        return 2 + 16 + 2;
    case WSTAN_ATYP_DOMAIN:
        if (a->hostlen == 0 || a->hostlen > 255)
            return 0;
        return 2 + 1 + a->hostlen + 2;
    default:
        return 0;
    }
}

int wstan_addr_encode(const struct wstan_addr *a, uint8_t *out, size_t cap, size_t *outlen)
{
    size_t n = wstan_addr_len(a), o = 0;

    if (n == 0 || out == NULL || outlen == NULL)
        return TD_EINVAL;
    if (n > cap)
        return TD_ETOOBIG;
    out[o++] = 0x00;
    out[o++] = (uint8_t)a->atyp;
    if (a->atyp == WSTAN_ATYP_IPV4) {
        memcpy(out + o, a->ip, 4);
        o += 4;
    } else if (a->atyp == WSTAN_ATYP_IPV6) {
        memcpy(out + o, a->ip, 16);
        o += 16;
    } else {
        out[o++] = (uint8_t)a->hostlen;
        memcpy(out + o, a->host, a->hostlen);
        o += a->hostlen;
    }
    out[o++] = (uint8_t)(a->port >> 8);
    out[o++] = (uint8_t)a->port;
    *outlen = o;
    return 0;
}

int wstan_addr_parse(const uint8_t *in, size_t len, struct wstan_addr *a, size_t *used)
{
    size_t o = 2, n;

    if ((in == NULL && len != 0) || a == NULL || used == NULL)
        return TD_EINVAL;
    memset(a, 0, sizeof(*a));
    if (len < 2 || in[0] != 0x00)
        return TD_EPROTO;
    switch (in[1]) {
    case WSTAN_ATYP_IPV4:
        n = 4;
        break;
    case WSTAN_ATYP_IPV6:
        n = 16;
        break;
    case WSTAN_ATYP_DOMAIN:
        if (len < 3 || in[2] == 0)
            return TD_EPROTO;
        n = in[2];
        o = 3;
        break;
    default:
        return TD_EPROTO;
    }
    if (len - o < n + 2)
        return TD_EPROTO;
    a->atyp = (enum wstan_atyp)in[1];
    if (a->atyp == WSTAN_ATYP_DOMAIN) {
        if (memchr(in + o, '\0', n) != NULL)
            return TD_EPROTO;
        memcpy(a->host, in + o, n);
        a->host[n] = '\0';
        a->hostlen = n;
    } else {
        memcpy(a->ip, in + o, n);
    }
    o += n;
    a->port = (uint16_t)(in[o] << 8 | in[o + 1]);
    *used = o + 2;
    return 0;
}

/* ---- timestamps ------------------------------------------------------------------ */

void wstan_ts_encode(double ts, uint8_t out[WSTAN_TS_LEN])
{
    uint64_t v;
    memcpy(&v, &ts, sizeof(v));
    for (int i = WSTAN_TS_LEN - 1; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

double wstan_ts_decode(const uint8_t in[WSTAN_TS_LEN])
{
    uint64_t v = 0;
    double d;
    for (int i = 0; i < WSTAN_TS_LEN; i++)
        v = v << 8 | in[i];
    memcpy(&d, &v, sizeof(d));
    return d;
}

int wstan_ts_check(double ts, double now, double window)
{
    double d = now - ts;
    if (!(window > 0))
        window = WSTAN_TS_WINDOW;
    if (d < 0)
        d = -d;
    /* Written so that NaN (from either side) fails the check. */
    return d <= window ? 0 : TD_EAUTH;
}

/* ---- stream ------------------------------------------------------------------------ */

int wstan_stream_init(struct wstan_stream *s, const struct wstan_key *k,
                      const uint8_t nonce[WSTAN_NONCE_LEN], bool tls_mode)
{
    int rc;

    if (s == NULL || k == NULL || (k->len != 16 && k->len != 32) || (!tls_mode && nonce == NULL))
        return TD_EINVAL;
    memset(s, 0, sizeof(*s));
    s->tls_mode = tls_mode;
    if (!tls_mode) {
        rc = td_ctr_init(&s->ctr, k->bytes, k->len, nonce);
        if (rc != 0)
            return rc;
    }
    rc = td_hmac_sha1_init(&s->mac, k->bytes, k->len);
    if (rc != 0) {
        td_ctr_free(&s->ctr);
        return rc;
    }
    s->ready = true;
    return 0;
}

void wstan_stream_free(struct wstan_stream *s)
{
    if (s == NULL || !s->ready)
        return;
    td_ctr_free(&s->ctr);
    td_hmac_sha1_free(&s->mac);
    s->ready = false;
}

static int wstan__crypt(struct wstan_stream *s, uint8_t *buf, size_t len)
{
    if (s->tls_mode || len == 0)
        return 0;
    return td_ctr_xor(&s->ctr, buf, buf, len);
}

int wstan_stream_skip(struct wstan_stream *s, size_t n)
{
    if (s == NULL || !s->ready)
        return TD_EINVAL;
    if (s->tls_mode || n == 0)
        return 0;
    return td_ctr_skip(&s->ctr, n);
}

static int wstan__tag(struct wstan_stream *s, const uint8_t *msg, size_t len,
                      uint8_t tag[WSTAN_TAG_LEN])
{
    uint8_t d[TD_SHA1_LEN];
    int rc = td_hmac_sha1_update(&s->mac, msg, len);
    if (rc == 0)
        rc = td_hmac_sha1_final(&s->mac, d);
    if (rc == 0)
        memcpy(tag, d, WSTAN_TAG_LEN);
    return rc;
}

/* Encrypt out[0..n) in place, then append the tag over the ciphertext. */
static int wstan__seal(struct wstan_stream *s, uint8_t *out, size_t n, bool tagged, size_t *outlen)
{
    int rc = wstan__crypt(s, out, n);
    if (rc == 0 && tagged)
        rc = wstan__tag(s, out, n, out + n);
    if (rc == 0)
        *outlen = n + (tagged ? WSTAN_TAG_LEN : 0);
    return rc;
}

static bool wstan__stream_ok(const struct wstan_stream *s)
{
    return s != NULL && s->ready;
}

/* REQ, DGM request and empty request share one layout: CMD TS [ADDR DATA] TAG. */
static int wstan__encode_request(struct wstan_stream *s, enum wstan_cmd cmd, double ts,
                                 const struct wstan_addr *addr, const uint8_t *data, size_t datalen,
                                 uint8_t *out, size_t cap, size_t *outlen)
{
    size_t alen = 0, need, n;
    int rc;

    if (!wstan__stream_ok(s) || out == NULL || outlen == NULL || (data == NULL && datalen != 0))
        return TD_EINVAL;
    if (addr != NULL) {
        alen = wstan_addr_len(addr);
        if (alen == 0)
            return TD_EINVAL;
    }
    if (datalen > SIZE_MAX - WSTAN_REQ_SIZE(0))
        return TD_ETOOBIG;
    need = 1 + WSTAN_TS_LEN + alen + datalen + WSTAN_TAG_LEN;
    if (need > cap)
        return TD_ETOOBIG;
    out[0] = (uint8_t)cmd;
    wstan_ts_encode(ts, out + 1);
    n = 1 + WSTAN_TS_LEN;
    if (addr != NULL) {
        rc = wstan_addr_encode(addr, out + n, cap - n, &alen);
        if (rc != 0)
            return rc;
        n += alen;
    }
    if (datalen != 0)
        memcpy(out + n, data, datalen);
    n += datalen;
    return wstan__seal(s, out, n, true, outlen);
}

int wstan_encode_req(struct wstan_stream *s, double ts, const struct wstan_addr *addr,
                     const uint8_t *data, size_t datalen, uint8_t *out, size_t cap, size_t *outlen)
{
    if (addr == NULL)
        return TD_EINVAL;
    return wstan__encode_request(s, WSTAN_REQ, ts, addr, data, datalen, out, cap, outlen);
}

int wstan_encode_dgm_req(struct wstan_stream *s, double ts, const struct wstan_addr *addr,
                         const uint8_t *data, size_t datalen, uint8_t *out, size_t cap,
                         size_t *outlen)
{
    if (addr == NULL)
        return TD_EINVAL;
    return wstan__encode_request(s, WSTAN_DGM, ts, addr, data, datalen, out, cap, outlen);
}

int wstan_encode_empty_req(struct wstan_stream *s, double ts, uint8_t *out, size_t cap,
                           size_t *outlen)
{
    return wstan__encode_request(s, WSTAN_RST, ts, NULL, NULL, 0, out, cap, outlen);
}

int wstan_encode_dat(struct wstan_stream *s, const uint8_t *data, size_t datalen, uint8_t *out,
                     size_t cap, size_t *outlen)
{
    if (!wstan__stream_ok(s) || out == NULL || outlen == NULL || (data == NULL && datalen != 0))
        return TD_EINVAL;
    if (datalen >= cap)
        return TD_ETOOBIG;
    if (datalen != 0 && data != out + 1)
        memmove(out + 1, data, datalen);
    out[0] = WSTAN_DAT;
    return wstan__seal(s, out, 1 + datalen, false, outlen);
}

int wstan_encode_dgm(struct wstan_stream *s, const struct wstan_addr *addr, const uint8_t *data,
                     size_t datalen, uint8_t *out, size_t cap, size_t *outlen)
{
    size_t alen;
    int rc;

    if (!wstan__stream_ok(s) || addr == NULL || out == NULL || outlen == NULL ||
        (data == NULL && datalen != 0))
        return TD_EINVAL;
    alen = wstan_addr_len(addr);
    if (alen == 0)
        return TD_EINVAL;
    if (datalen > SIZE_MAX - WSTAN_DGM_SIZE(0) || 1 + alen + datalen > cap)
        return TD_ETOOBIG;
    out[0] = WSTAN_DGM;
    rc = wstan_addr_encode(addr, out + 1, cap - 1, &alen);
    if (rc != 0)
        return rc;
    if (datalen != 0)
        memcpy(out + 1 + alen, data, datalen);
    return wstan__seal(s, out, 1 + alen + datalen, false, outlen);
}

/* Python's str.isspace() set, which is what a receiver's rstrip() removes. */
static bool wstan__uspace(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Length of the valid UTF-8 sequence at p (1..4) and its code point, or 0. */
static size_t wstan__utf8_seq(const uint8_t *p, size_t len, uint32_t *cp)
{
    uint8_t c = p[0];
    size_t n;
    uint32_t v, min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

static bool wstan__utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    uint32_t cp;
    while (i < len) {
        size_t n = wstan__utf8_seq(p + i, len - i, &cp);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

int wstan_text_sanitize(const char *in, size_t len, char *out, size_t *outlen)
{
    const uint8_t *p = (const uint8_t *)in;
    size_t i = 0, o = 0, keep = 0;

    if ((in == NULL && len != 0) || (out == NULL && len != 0) || outlen == NULL)
        return TD_EINVAL;
    /* Output index never passes the input index, so in == out is safe. */
    while (i < len) {
        uint32_t cp = 0;
        size_t n = wstan__utf8_seq(p + i, len - i, &cp);
        if (n == 0) {
            out[o++] = '?';
            i++;
        } else if (cp == 0x2605) {
            out[o++] = '*';
            i += n;
        } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
            out[o++] = ' ';
            i += n;
        } else {
            bool space = wstan__uspace(cp);
            memmove(out + o, p + i, n);
            o += n;
            i += n;
            if (!space)
                keep = o;
            continue;
        }
        if (out[o - 1] != ' ')
            keep = o;
    }
    *outlen = keep;
    return 0;
}

int wstan_encode_rst(struct wstan_stream *s, const char *reason, size_t reasonlen, const char *err,
                     size_t errlen, int pad, uint8_t *out, size_t cap, size_t *outlen)
{
    size_t n, m, npad;
    int rc;

    if (!wstan__stream_ok(s) || out == NULL || outlen == NULL ||
        (reason == NULL && reasonlen != 0) || (err == NULL && errlen != 0))
        return TD_EINVAL;
    if (pad == WSTAN_RST_PAD_RANDOM) {
        uint8_t r[2];
        rc = td_random(r, sizeof(r));
        if (rc != 0)
            return rc;
        npad = WSTAN_RST_PAD_MIN +
               (size_t)((r[0] << 8 | r[1]) % (WSTAN_RST_PAD_MAX - WSTAN_RST_PAD_MIN + 1));
    } else if (pad < 0 || pad > WSTAN_RST_PAD_LIMIT) {
        return TD_EINVAL;
    } else {
        npad = (size_t)pad;
    }
    if (reasonlen > SIZE_MAX / 4 || errlen > SIZE_MAX / 4 ||
        WSTAN_RST_SIZE(reasonlen, errlen, npad) > cap)
        return TD_ETOOBIG;

    out[0] = WSTAN_RST;
    n = 1;
    rc = wstan_text_sanitize(reason, reasonlen, (char *)out + n, &m);
    if (rc != 0)
        return rc;
    n += m;
    memcpy(out + n, wstan__star, sizeof(wstan__star));
    n += sizeof(wstan__star);
    rc = wstan_text_sanitize(err, errlen, (char *)out + n, &m);
    if (rc != 0)
        return rc;
    n += m;
    memset(out + n, ' ', npad);
    n += npad;
    return wstan__seal(s, out, n, true, outlen);
}

/* ---- decoding -------------------------------------------------------------------- */

static int wstan__verify(struct wstan_stream *s, const uint8_t *msg, size_t len, bool *ok)
{
    uint8_t tag[WSTAN_TAG_LEN];
    int rc = wstan__tag(s, msg, len - WSTAN_TAG_LEN, tag);
    if (rc != 0)
        return rc;
    *ok = td_ct_memeq(tag, msg + len - WSTAN_TAG_LEN, WSTAN_TAG_LEN);
    return 0;
}

/* TS ADDR DATA, from body[0..len). */
static int wstan__parse_ts_addr_data(const uint8_t *body, size_t len, struct wstan_msg *out)
{
    size_t used = 0;

    if (len < WSTAN_TS_LEN)
        return TD_EPROTO;
    out->ts = wstan_ts_decode(body);
    out->has_ts = true;
    body += WSTAN_TS_LEN;
    len -= WSTAN_TS_LEN;
    if (wstan_addr_parse(body, len, &out->addr, &used) != 0)
        return TD_EPROTO;
    out->has_addr = true;
    out->data = body + used;
    out->datalen = len - used;
    return 0;
}

int wstan_decode_first(struct wstan_stream *s, uint8_t *msg, size_t len, struct wstan_msg *out)
{
    bool ok = false;
    size_t blen;
    int rc;

    if (!wstan__stream_ok(s) || (msg == NULL && len != 0) || out == NULL)
        return TD_EINVAL;
    memset(out, 0, sizeof(*out));
    if (len < 1 + WSTAN_TS_LEN + WSTAN_TAG_LEN)
        return TD_EPROTO;
    /* Every first request is tagged, so authenticate before touching the
     * buffer or the stream: a server can then try its next key. */
    rc = wstan__verify(s, msg, len, &ok);
    if (rc != 0)
        return rc;
    if (!ok)
        return TD_EAUTH;
    blen = len - WSTAN_TAG_LEN;
    rc = wstan__crypt(s, msg, blen);
    if (rc != 0)
        return rc;
    out->cmd = (enum wstan_cmd)msg[0];
    switch (msg[0]) {
    case WSTAN_REQ:
    case WSTAN_DGM:
        return wstan__parse_ts_addr_data(msg + 1, blen - 1, out);
    case WSTAN_RST:
        /* The "empty" request: only a timestamp (anything after it is
         * ignored, as the stock server does not look further). */
        out->ts = wstan_ts_decode(msg + 1);
        out->has_ts = true;
        return 0;
    default:
        return TD_EPROTO;
    }
}

static bool wstan__ascii_space(uint8_t c)
{
    return c == ' ' || (c >= 0x09 && c <= 0x0d);
}

static int wstan__parse_rst(const uint8_t *body, size_t len, struct wstan_msg *out)
{
    size_t split = len;

    while (len > 0 && wstan__ascii_space(body[len - 1]))
        len--;
    if (!wstan__utf8_valid(body, len))
        return TD_EPROTO;
    for (size_t i = 0; i + sizeof(wstan__star) <= len; i++) {
        if (memcmp(body + i, wstan__star, sizeof(wstan__star)) == 0) {
            split = i;
            break;
        }
    }
    out->reason = (const char *)body;
    if (split >= len) {
        out->reason_len = len;
        out->err = (const char *)body + len;
        out->err_len = 0;
    } else {
        /* Everything after the first star is ERR, further stars included. */
        out->reason_len = split;
        out->err = (const char *)body + split + sizeof(wstan__star);
        out->err_len = len - split - sizeof(wstan__star);
    }
    return 0;
}

int wstan_decode_msg(struct wstan_stream *s, uint8_t *msg, size_t len, unsigned flags,
                     struct wstan_msg *out)
{
    uint8_t cmd;
    size_t used = 0;
    bool ok = false;
    int rc;

    if (!wstan__stream_ok(s) || (msg == NULL && len != 0) || out == NULL)
        return TD_EINVAL;
    memset(out, 0, sizeof(*out));
    if (len == 0)
        return TD_EPROTO;
    /* Learn the command from one decrypted byte, leaving the ciphertext in
     * the buffer for the tag check. */
    cmd = msg[0];
    rc = wstan__crypt(s, &cmd, 1);
    if (rc != 0)
        return rc;
    out->cmd = (enum wstan_cmd)cmd;
    switch (cmd) {
    case WSTAN_REQ:
    case WSTAN_RST:
        if (len < 1 + WSTAN_TAG_LEN)
            return TD_EPROTO;
        rc = wstan__verify(s, msg, len, &ok);
        if (rc != 0)
            return rc;
        /* Decrypt even when the tag is bad, as the stock code does, so the
         * stream position never depends on the tag. */
        rc = wstan__crypt(s, msg + 1, len - 1 - WSTAN_TAG_LEN);
        msg[0] = cmd;
        if (rc != 0)
            return rc;
        if (!ok)
            return TD_EAUTH;
        if (cmd == WSTAN_REQ)
            return wstan__parse_ts_addr_data(msg + 1, len - 1 - WSTAN_TAG_LEN, out);
        return wstan__parse_rst(msg + 1, len - 1 - WSTAN_TAG_LEN, out);
    case WSTAN_DAT:
        msg[0] = cmd;
        out->datalen = len - 1;
        if (flags & WSTAN_DECODE_SKIP_DAT)
            return wstan_stream_skip(s, len - 1);
        out->data = msg + 1;
        return wstan__crypt(s, msg + 1, len - 1);
    case WSTAN_DGM:
        msg[0] = cmd;
        rc = wstan__crypt(s, msg + 1, len - 1);
        if (rc != 0)
            return rc;
        if (wstan_addr_parse(msg + 1, len - 1, &out->addr, &used) != 0)
            return TD_EPROTO;
        out->has_addr = true;
        out->data = msg + 1 + used;
        out->datalen = len - 1 - used;
        return 0;
    default:
        return TD_EPROTO;
    }
}

/* ---- handshake URI ------------------------------------------------------------------ */

int wstan_uri_build(const char *prefix, size_t prefixlen, const uint8_t *msg, size_t msglen,
                    char *out, size_t cap, size_t *outlen)
{
    size_t n = 0, enc;

    if ((prefix == NULL && prefixlen != 0) || msg == NULL || msglen == 0 || out == NULL ||
        outlen == NULL)
        return TD_EINVAL;
    if (prefixlen != 0 &&
        (prefix[0] != '/' || memchr(prefix, '?', prefixlen) || memchr(prefix, '#', prefixlen)))
        return TD_EINVAL;
    if (msglen > (SIZE_MAX / 4) * 3 - 3)
        return TD_ETOOBIG;
    enc = TD_BASE64_ENCODED_LEN(msglen);
    if (prefixlen > SIZE_MAX - enc - 2 || prefixlen + 1 + enc + 1 > cap)
        return TD_ETOOBIG;
    if (prefixlen == 0) {
        out[n++] = '/';
    } else {
        memcpy(out, prefix, prefixlen);
        n = prefixlen;
        if (prefix[prefixlen - 1] != '/')
            out[n++] = '/';
    }
    if (td_base64url_encode(msg, msglen, true, out + n, cap - n) != enc)
        return TD_ETOOBIG;
    n += enc;
    out[n] = '\0';
    *outlen = n;
    return 0;
}

int wstan_uri_parse(const char *target, size_t len, const char *prefix, size_t prefixlen,
                    uint8_t *out, size_t cap, size_t *outlen)
{
    const char *p = target;
    size_t n = len;

    if ((target == NULL && len != 0) || (prefix == NULL && prefixlen != 0) ||
        (out == NULL && cap != 0) || outlen == NULL)
        return TD_EINVAL;
    if (n > 0 && p[0] != '/') {
        /* absolute-form: scheme "://" authority path */
        const char *sep = NULL;
        for (size_t i = 0; i + 3 <= n; i++) {
            if (memcmp(p + i, "://", 3) == 0) {
                sep = p + i + 3;
                break;
            }
        }
        if (sep == NULL)
            return TD_EINVAL;
        n -= (size_t)(sep - p);
        p = sep;
        while (n > 0 && *p != '/' && *p != '?' && *p != '#') {
            p++;
            n--;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '?' || p[i] == '#') {
            n = i;
            break;
        }
    }
    if (prefixlen != 0 && n >= prefixlen && memcmp(p, prefix, prefixlen) == 0) {
        p += prefixlen;
        n -= prefixlen;
    }
    if (n > 0 && p[0] == '/') {
        p++;
        n--;
    }
    if (n == 0 || n % 4 != 0)
        return TD_EINVAL;
    return td_base64url_decode(p, n, out, cap, outlen);
}

/* ---- replay filter ------------------------------------------------------------------- */

struct wstan_replay_entry {
    uint8_t nonce[WSTAN_NONCE_LEN];
    double expires;
    uint64_t hash;
};

static uint64_t wstan__replay_hash(const struct wstan_replay *r,
                                   const uint8_t nonce[WSTAN_NONCE_LEN])
{
    uint64_t a, b;
    memcpy(&a, nonce, 8);
    memcpy(&b, nonce + 8, 8);
    /* Keyed mixing (murmur3 finalizer): nonces come from key holders only,
     * but a per-process seed keeps probe chains unpredictable anyway. */
    a ^= r->seed;
    a ^= b * 0x9e3779b97f4a7c15ull;
    a ^= a >> 33;
    a *= 0xff51afd7ed558ccdull;
    a ^= a >> 33;
    a *= 0xc4ceb9fe1a85ec53ull;
    a ^= a >> 33;
    return a;
}

int wstan_replay_init(struct wstan_replay *r, size_t capacity, double window)
{
    size_t slots = 2;

    if (r == NULL || capacity == 0 || capacity > WSTAN_REPLAY_MAX_ENTRIES)
        return TD_EINVAL;
    memset(r, 0, sizeof(*r));
    while (slots < 2 * capacity)
        slots <<= 1;
    r->ring = calloc(capacity, sizeof(*r->ring));
    r->index = calloc(slots, sizeof(*r->index));
    if (r->ring == NULL || r->index == NULL) {
        wstan_replay_free(r);
        return TD_ENOMEM;
    }
    if (td_random(&r->seed, sizeof(r->seed)) != 0) {
        wstan_replay_free(r);
        return TD_ECRYPTO;
    }
    r->cap = capacity;
    r->mask = slots - 1;
    r->window = window > 0 ? window : WSTAN_TS_WINDOW;
    return 0;
}

void wstan_replay_free(struct wstan_replay *r)
{
    if (r == NULL)
        return;
    free(r->ring);
    free(r->index);
    memset(r, 0, sizeof(*r));
}

size_t wstan_replay_count(const struct wstan_replay *r)
{
    return r != NULL ? r->count : 0;
}

/* Remove index slot i by backward-shift deletion (linear probing without
 * tombstones). */
static void wstan__replay_unslot(struct wstan_replay *r, size_t i)
{
    for (;;) {
        size_t j = i;
        for (;;) {
            size_t k;
            j = (j + 1) & r->mask;
            if (r->index[j] == 0) {
                r->index[i] = 0;
                return;
            }
            k = (size_t)r->ring[r->index[j] - 1].hash & r->mask;
            /* The entry at j may stay when its home k lies cyclically in (i, j]. */
            if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                continue;
            break;
        }
        r->index[i] = r->index[j];
        i = j;
    }
}

static void wstan__replay_expire(struct wstan_replay *r, double now)
{
    while (r->count > 0 && !(r->ring[r->head].expires > now)) {
        size_t i = (size_t)r->ring[r->head].hash & r->mask;
        while (r->index[i] != r->head + 1)
            i = (i + 1) & r->mask;
        wstan__replay_unslot(r, i);
        r->head = (r->head + 1) % r->cap;
        r->count--;
    }
}

int wstan_replay_check(struct wstan_replay *r, const uint8_t nonce[WSTAN_NONCE_LEN], double ts,
                       double now)
{
    uint64_t h;
    size_t i, pos;
    double expires;
    struct wstan_replay_entry *e;

    if (r == NULL || r->ring == NULL || nonce == NULL)
        return TD_EINVAL;
    /* A request stays acceptable while |now - TS| <= window, so the nonce
     * must be remembered until TS + window (the caller has checked TS; the
     * max() keeps odd inputs safe), plus slack. */
    if (!(ts - ts == 0.0) || !(now - now == 0.0))
        return TD_EINVAL; /* NaN or infinities */
    expires = (ts > now ? ts : now) + r->window + WSTAN_REPLAY_SLACK;
    wstan__replay_expire(r, now);
    h = wstan__replay_hash(r, nonce);
    for (i = (size_t)h & r->mask; r->index[i] != 0; i = (i + 1) & r->mask) {
        e = &r->ring[r->index[i] - 1];
        if (e->hash == h && memcmp(e->nonce, nonce, WSTAN_NONCE_LEN) == 0) {
            if (e->expires > now)
                return TD_EAUTH;
            /* Expired but not yet at the ring head: reuse it in place. */
            e->expires = expires;
            return 0;
        }
    }
    if (r->count == r->cap)
        return TD_ELIMIT;
    pos = (r->head + r->count) % r->cap;
    e = &r->ring[pos];
    memcpy(e->nonce, nonce, WSTAN_NONCE_LEN);
    e->expires = expires;
    e->hash = h;
    r->index[i] = (uint32_t)(pos + 1);
    r->count++;
    return 0;
}

/* ---- state machine -------------------------------------------------------------------- */

static const char *const wstan__state_names[WSTAN_STATE_COUNT] = {
    [WSTAN_IDLE] = "IDLE",
    [WSTAN_USING] = "USING",
    [WSTAN_RESETTING] = "RESETTING",
    [WSTAN_CONNECTING] = "CONNECTING",
};

static const char *const wstan__event_names[WSTAN_EVENT_COUNT] = {
    [WSTAN_EV_RECV_REQ] = "recv-REQ",   [WSTAN_EV_RECV_DAT] = "recv-DAT",
    [WSTAN_EV_RECV_RST] = "recv-RST",   [WSTAN_EV_RECV_DGM] = "recv-DGM",
    [WSTAN_EV_RECV_TEXT] = "recv-text", [WSTAN_EV_LOCAL_REQ] = "local-REQ",
    [WSTAN_EV_LOCAL_DGM] = "local-DGM", [WSTAN_EV_LOCAL_END] = "local-end",
    [WSTAN_EV_CONNECTED] = "connected", [WSTAN_EV_CONNECT_FAILED] = "connect-failed",
};

static const char *const wstan__action_names[WSTAN_ACTION_COUNT] = {
    [WSTAN_ACT_NONE] = "none",           [WSTAN_ACT_DELIVER] = "deliver",
    [WSTAN_ACT_BUFFER] = "buffer",       [WSTAN_ACT_DISCARD] = "discard",
    [WSTAN_ACT_CONNECT] = "connect",     [WSTAN_ACT_SEND] = "send",
    [WSTAN_ACT_FLUSH] = "flush",         [WSTAN_ACT_SEND_RST] = "send-RST",
    [WSTAN_ACT_REPLY_RST] = "reply-RST", [WSTAN_ACT_RESET_DONE] = "reset-done",
    [WSTAN_ACT_CLOSE] = "close",
};

const char *wstan_state_name(enum wstan_state st)
{
    return (unsigned)st < WSTAN_STATE_COUNT ? wstan__state_names[st] : "?";
}

const char *wstan_event_name(enum wstan_event ev)
{
    return (unsigned)ev < WSTAN_EVENT_COUNT ? wstan__event_names[ev] : "?";
}

const char *wstan_action_name(enum wstan_action act)
{
    return (unsigned)act < WSTAN_ACTION_COUNT ? wstan__action_names[act] : "?";
}

enum wstan__tkind {
    WSTAN__T_INVALID = 0, /* cannot happen for this role/state: caller bug */
    WSTAN__T_OK,
    WSTAN__T_CLOSE,
};

struct wstan__trans {
    uint8_t kind;
    uint8_t next;
    uint8_t action;
    uint16_t code;
};

/* clang-format off */
#define T_(st, act) {WSTAN__T_OK, (st), (act), 0}
#define X_(code)    {WSTAN__T_CLOSE, 0, WSTAN_ACT_CLOSE, (code)}
#define PROTO_      X_(WSTAN_CLOSE_PROTOCOL)
#define BADSTATE_   X_(WSTAN_CLOSE_BAD_STATE)
/* clang-format on */

/* [role][state][event]; entries left out are WSTAN__T_INVALID.  Section 6:
 * RST while IDLE or a local reset while not USING is 3001; a REQ while not
 * IDLE, any REQ at the client and any text message are 3000.  DAT/DGM that
 * arrive when nothing can use them are discarded (the decoder has already
 * kept the stream in sync). */
/* clang-format off */
static const struct wstan__trans wstan__table[2][WSTAN_STATE_COUNT][WSTAN_EVENT_COUNT] = {
    [WSTAN_CLIENT] = {
        [WSTAN_IDLE] = {
            [WSTAN_EV_RECV_REQ]  = PROTO_,
            [WSTAN_EV_RECV_DAT]  = T_(WSTAN_IDLE, WSTAN_ACT_DISCARD),
            [WSTAN_EV_RECV_RST]  = BADSTATE_,
            [WSTAN_EV_RECV_DGM]  = T_(WSTAN_IDLE, WSTAN_ACT_DISCARD),
            [WSTAN_EV_RECV_TEXT] = PROTO_,
            [WSTAN_EV_LOCAL_REQ] = T_(WSTAN_USING, WSTAN_ACT_SEND),
            [WSTAN_EV_LOCAL_DGM] = T_(WSTAN_USING, WSTAN_ACT_SEND),
            [WSTAN_EV_LOCAL_END] = BADSTATE_,
        },
        [WSTAN_USING] = {
            [WSTAN_EV_RECV_REQ]  = PROTO_,
            [WSTAN_EV_RECV_DAT]  = T_(WSTAN_USING, WSTAN_ACT_DELIVER),
            [WSTAN_EV_RECV_RST]  = T_(WSTAN_IDLE, WSTAN_ACT_REPLY_RST),
            [WSTAN_EV_RECV_DGM]  = T_(WSTAN_USING, WSTAN_ACT_DELIVER),
            [WSTAN_EV_RECV_TEXT] = PROTO_,
            [WSTAN_EV_LOCAL_DGM] = T_(WSTAN_USING, WSTAN_ACT_SEND),
            [WSTAN_EV_LOCAL_END] = T_(WSTAN_RESETTING, WSTAN_ACT_SEND_RST),
        },
        [WSTAN_RESETTING] = {
            [WSTAN_EV_RECV_REQ]  = PROTO_,
            [WSTAN_EV_RECV_DAT]  = T_(WSTAN_RESETTING, WSTAN_ACT_DISCARD),
            [WSTAN_EV_RECV_RST]  = T_(WSTAN_IDLE, WSTAN_ACT_RESET_DONE),
            [WSTAN_EV_RECV_DGM]  = T_(WSTAN_RESETTING, WSTAN_ACT_DISCARD),
            [WSTAN_EV_RECV_TEXT] = PROTO_,
            [WSTAN_EV_LOCAL_DGM] = T_(WSTAN_RESETTING, WSTAN_ACT_DISCARD),
            [WSTAN_EV_LOCAL_END] = BADSTATE_,
        },
        /* No CONNECTING on the client: every event there is a caller bug. */
    },
    [WSTAN_SERVER] = {
        [WSTAN_IDLE] = {
            [WSTAN_EV_RECV_REQ]  = T_(WSTAN_CONNECTING, WSTAN_ACT_CONNECT),
            [WSTAN_EV_RECV_DAT]  = T_(WSTAN_IDLE, WSTAN_ACT_DISCARD),
            [WSTAN_EV_RECV_RST]  = BADSTATE_,
            [WSTAN_EV_RECV_DGM]  = T_(WSTAN_USING, WSTAN_ACT_DELIVER),
            [WSTAN_EV_RECV_TEXT] = PROTO_,
            [WSTAN_EV_LOCAL_END] = BADSTATE_,
        },
        [WSTAN_USING] = {
            [WSTAN_EV_RECV_REQ]  = PROTO_,
            [WSTAN_EV_RECV_DAT]  = T_(WSTAN_USING, WSTAN_ACT_DELIVER),
            [WSTAN_EV_RECV_RST]  = T_(WSTAN_IDLE, WSTAN_ACT_REPLY_RST),
            [WSTAN_EV_RECV_DGM]  = T_(WSTAN_USING, WSTAN_ACT_DELIVER),
            [WSTAN_EV_RECV_TEXT] = PROTO_,
            [WSTAN_EV_LOCAL_END] = T_(WSTAN_RESETTING, WSTAN_ACT_SEND_RST),
        },
        [WSTAN_RESETTING] = {
            [WSTAN_EV_RECV_REQ]  = PROTO_,
            [WSTAN_EV_RECV_DAT]  = T_(WSTAN_RESETTING, WSTAN_ACT_DISCARD),
            [WSTAN_EV_RECV_RST]  = T_(WSTAN_IDLE, WSTAN_ACT_RESET_DONE),
            [WSTAN_EV_RECV_DGM]  = T_(WSTAN_RESETTING, WSTAN_ACT_DISCARD),
            [WSTAN_EV_RECV_TEXT] = PROTO_,
            [WSTAN_EV_LOCAL_END] = BADSTATE_,
        },
        [WSTAN_CONNECTING] = {
            [WSTAN_EV_RECV_REQ]       = PROTO_,
            [WSTAN_EV_RECV_DAT]       = T_(WSTAN_CONNECTING, WSTAN_ACT_BUFFER),
            [WSTAN_EV_RECV_RST]       = T_(WSTAN_IDLE, WSTAN_ACT_REPLY_RST),
            [WSTAN_EV_RECV_DGM]       = PROTO_,
            [WSTAN_EV_RECV_TEXT]      = PROTO_,
            [WSTAN_EV_LOCAL_END]      = T_(WSTAN_RESETTING, WSTAN_ACT_SEND_RST),
            [WSTAN_EV_CONNECTED]      = T_(WSTAN_USING, WSTAN_ACT_FLUSH),
            [WSTAN_EV_CONNECT_FAILED] = T_(WSTAN_RESETTING, WSTAN_ACT_SEND_RST),
        },
    },
};
/* clang-format on */

#undef T_
#undef X_
#undef PROTO_
#undef BADSTATE_

int wstan_transition(enum wstan_role role, enum wstan_state st, enum wstan_event ev,
                     struct wstan_step *out)
{
    const struct wstan__trans *t;

    if (out == NULL || (unsigned)role > WSTAN_SERVER || (unsigned)st >= WSTAN_STATE_COUNT ||
        (unsigned)ev >= WSTAN_EVENT_COUNT)
        return TD_EINVAL;
    t = &wstan__table[role][st][ev];
    switch (t->kind) {
    case WSTAN__T_OK:
        out->next = (enum wstan_state)t->next;
        out->action = (enum wstan_action)t->action;
        out->close_code = 0;
        return 0;
    case WSTAN__T_CLOSE:
        out->next = st;
        out->action = WSTAN_ACT_CLOSE;
        out->close_code = t->code;
        return TD_EPROTO;
    default:
        return TD_EINVAL;
    }
}

int wstan_initial_state(enum wstan_role role, enum wstan_cmd first, enum wstan_state *out)
{
    if (out == NULL)
        return TD_EINVAL;
    if (role == WSTAN_CLIENT) {
        if (first != WSTAN_REQ && first != WSTAN_DGM && first != WSTAN_RST)
            return TD_EINVAL;
        *out = WSTAN_USING;
        if (first == WSTAN_RST)
            *out = WSTAN_IDLE;
        return 0;
    }
    if (role != WSTAN_SERVER)
        return TD_EINVAL;
    switch (first) {
    case WSTAN_REQ:
        *out = WSTAN_CONNECTING;
        return 0;
    case WSTAN_DGM:
        *out = WSTAN_USING;
        return 0;
    case WSTAN_RST:
        *out = WSTAN_IDLE;
        return 0;
    default:
        return TD_EINVAL;
    }
}
