/* wstan pure layer: every test vector of the spec (section 16) byte for
 * byte, the lenient key classification, nonces and cookies, the codec's
 * error paths, timestamps, the replay filter and the state machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/backend.h"

#include "crypto/crypto_stream.h"
#include "util/error.h"
#include "proto/wstan.h"

#define TS0 1700000000.5

static const char K16_STR[] = "AAECAwQFBgcICQoLDA0ODw==";
static const char WS_KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char HORSE[] = "correct horse battery staple";
static const char HTTP_GET[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = hex; *p != '\0';) {
        unsigned v;
        if (*p == ' ' || *p == '\n') {
            p++;
            continue;
        }
        assert_true(n < cap);
        assert_int_equal(sscanf(p, "%2x", &v), 1);
        out[n++] = (uint8_t)v;
        p += 2;
    }
    return n;
}

static void assert_hex(const uint8_t *got, size_t len, const char *hex)
{
    uint8_t want[1024];
    size_t n = unhex(hex, want, sizeof(want));
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
}

static struct wstan_key k16(void)
{
    struct wstan_key k;
    assert_int_equal(wstan_key_derive(K16_STR, strlen(K16_STR), &k), 0);
    return k;
}

/* scrypt is slow-ish: derive the password key once for all tests. */
static const struct wstan_key *horse_key(void)
{
    static struct wstan_key k;
    static int done;
    if (!done) {
        assert_int_equal(wstan_key_derive(HORSE, strlen(HORSE), &k), 0);
        done = 1;
    }
    return &k;
}

static void nc_sample(uint8_t nc[WSTAN_NONCE_LEN])
{
    assert_int_equal(wstan_ws_key_decode(WS_KEY, strlen(WS_KEY), nc), 0);
}

static void ns_sample(uint8_t ns[WSTAN_NONCE_LEN])
{
    assert_int_equal(wstan_ns_default(WS_KEY, strlen(WS_KEY), ns), 0);
}

static void example_addr(struct wstan_addr *a)
{
    assert_int_equal(wstan_addr_set(a, "example.com", 11, 80, false), 0);
}

/* ---- TV1 and section 2 ------------------------------------------------------------ */

static void test_tv1_keys(void **state)
{
    struct wstan_key k = k16();
    (void)state;
    assert_int_equal(k.len, 16);
    assert_false(k.derived);
    assert_hex(k.bytes, k.len, "000102030405060708090a0b0c0d0e0f");

    assert_int_equal(horse_key()->len, 32);
    assert_true(horse_key()->derived);
    assert_hex(horse_key()->bytes, 32,
               "ebb803658289897e6c8c5cf48300651b5012ea64cd9cb0830d4ce31451e106a2");

    assert_int_equal(wstan_key_derive("password", 8, &k), 0);
    assert_int_equal(k.len, 32);
    assert_hex(k.bytes, 32, "2d2dcab110538df385493e94c787469dcd0fe2d0691aff517090fa4f1477e0b3");

    assert_int_equal(wstan_key_derive("", 0, &k), TD_EINVAL);
    wstan_key_clear(&k);
    assert_int_equal(k.len, 0);
}

struct lenient_case {
    const char *in;
    const char *hex; /* NULL: binascii.Error */
};

/* Expected values produced by CPython 3.11 binascii.a2b_base64. */
static const struct lenient_case lenient_cases[] = {
    {"AAEC AwQF BgcI CQoL DA0O Dw==", "000102030405060708090a0b0c0d0e0f"},
    {"AAECAwQFBgcICQoLDA0ODw==xyz", "000102030405060708090a0b0c0d0e0f"},
    {"password", "a5ab2cc28add"},
    {"AAECAwQFBgcICQoLDA0ODw", NULL},
    {"A", NULL},
    {"AB", NULL},
    {"AB=", NULL},
    {"AB==", "00"},
    {"A=B=", NULL},
    {"AB=C", NULL},
    {"ABC=", "0010"},
    {"AB=CD", "001083"},
    {"=AAA", NULL},
    {"AB==CD", "00"},
    {"ABC=D", "0010"},
    {"A-B_C", NULL},
    {"AAAA====BBBB", "000000041041"},
    {"AB=\n=", "00"},
    {"", ""},
    {"ABCD=", "001083"},
    {"ABCDE", NULL},
    {"AB=C=", "0010"},
    {"ABC==x", "0010"},
    {"=", ""},
    {"==", ""},
};

static void test_lenient_b64(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(lenient_cases) / sizeof(lenient_cases[0]); i++) {
        const struct lenient_case *c = &lenient_cases[i];
        uint8_t out[64];
        size_t n = 999;
        int rc = wstan_b64_lenient_decode(c->in, strlen(c->in), out, sizeof(out), &n);
        if (c->hex == NULL) {
            assert_int_equal(rc, TD_EINVAL);
        } else {
            assert_int_equal(rc, 0);
            assert_hex(out, n, c->hex);
        }
    }
    /* More output than room. */
    {
        uint8_t out[4];
        size_t n;
        assert_int_equal(wstan_b64_lenient_decode(K16_STR, 24, out, sizeof(out), &n), TD_ETOOBIG);
    }
}

static void test_key_classification(void **state)
{
    struct wstan_key k;
    const char *raw_spellings[] = {"AAEC AwQF BgcI CQoL DA0O Dw==", "AAECAwQFBgcICQoLDA0ODw==xyz",
                                   "AAECAwQFBgcICQoLDA0ODw==", "\tAAECAwQFBgcICQoLDA0ODw==\n"};
    (void)state;
    for (size_t i = 0; i < sizeof(raw_spellings) / sizeof(raw_spellings[0]); i++) {
        assert_int_equal(wstan_key_derive(raw_spellings[i], strlen(raw_spellings[i]), &k), 0);
        assert_int_equal(k.len, 16);
        assert_hex(k.bytes, 16, "000102030405060708090a0b0c0d0e0f");
    }
    /* 22 alphanumerics + "==" is a raw key. */
    assert_int_equal(wstan_key_derive("abcdefghijklmnopqrstuv==", 24, &k), 0);
    assert_int_equal(k.len, 16);
    assert_false(k.derived);
    /* Unpadded 22 characters: "Incorrect padding", so a password. */
    assert_int_equal(wstan_key_derive("AAECAwQFBgcICQoLDA0ODw", 22, &k), 0);
    assert_int_equal(k.len, 32);
    assert_true(k.derived);
}

/* ---- TV2: nonces, Accept, cookie ----------------------------------------------------- */

static void test_tv2_nonces(void **state)
{
    uint8_t nc[16], ns[16], d[20];
    char acc[WSTAN_WS_ACCEPT_LEN + 1], key[WSTAN_WS_KEY_LEN + 1], name[3], cookie[40];
    struct wstan_key k = k16();
    (void)state;

    nc_sample(nc);
    assert_hex(nc, 16, "7468652073616d706c65206e6f6e6365");
    assert_int_equal(wstan_ws_key_encode(nc, key), 0);
    assert_string_equal(key, WS_KEY);

    assert_int_equal(wstan_ws_accept(WS_KEY, strlen(WS_KEY), acc, d), 0);
    assert_hex(d, 20, "b37a4f2cc0624f1690f64606cf385945b2bec4ea");
    assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    ns_sample(ns);
    assert_hex(ns, 16, "b37a4f2cc0624f1690f64606cf385945");
    memset(ns, 0, sizeof(ns));
    assert_int_equal(wstan_ns_from_accept(acc, strlen(acc), ns), 0);
    assert_hex(ns, 16, "b37a4f2cc0624f1690f64606cf385945");
    assert_int_equal(wstan_ns_from_accept("s3pPLMBiTxaQ9kYGzzhZRbK+xOo", 27, ns), TD_EINVAL);

    assert_int_equal(wstan_ns_compat(nc, ns), 0);
    assert_hex(ns, 16, "9d8354314dcb51444e0da76b963f5ec3");

    assert_int_equal(wstan_cookie_name(&k, name), 0);
    assert_string_equal(name, "_H");
    assert_int_equal(wstan_cookie_value(name, nc, cookie, sizeof(cookie)), 0);
    assert_string_equal(cookie, "_H=dGhlIHNhbXBsZSBub25jZQ==");
    assert_int_equal(wstan_cookie_value(name, nc, cookie, 27), TD_ETOOBIG);

    assert_int_equal(wstan_cookie_name(horse_key(), name), 0);
    assert_string_equal(name, "_V");
}

static void test_ws_key_validation(void **state)
{
    uint8_t nc[16];
    (void)state;
    assert_int_equal(wstan_ws_key_decode("dGhlIHNhbXBsZSBub25jZQ=", 23, nc), TD_EINVAL);
    assert_int_equal(wstan_ws_key_decode("dGhlIHNhbXBsZSBub25jZQ=A", 24, nc), TD_EINVAL);
    assert_int_equal(wstan_ws_key_decode("dGhlIHNhbXBsZSBub25jZ-==", 24, nc), TD_EINVAL);
    assert_int_equal(wstan_ws_key_decode("dGhlIHNhbXBsZSBub2 jZQ==", 24, nc), TD_EINVAL);
    /* Non-zero trailing bits are dropped, as Python's decoder does. */
    assert_int_equal(wstan_ws_key_decode("dGhlIHNhbXBsZSBub25jZR==", 24, nc), 0);
    assert_hex(nc, 16, "7468652073616d706c65206e6f6e6365");
}

static void test_cookie_parse(void **state)
{
    uint8_t nc[16], want[16];
    char name[3];
    /* b64 starting with 'H': the stock server's lstrip("_H=") would eat it. */
    const char hcookie[] = "_H=HGhlIHNhbXBsZSBub25jZQ==";
    (void)state;

    nc_sample(want);
    assert_int_equal(wstan_cookie_parse("_H=dGhlIHNhbXBsZSBub25jZQ==", 27, "_H", nc, name), 0);
    assert_memory_equal(nc, want, 16);
    assert_string_equal(name, "_H");
    /* Any _[A-Z] name when none is expected. */
    assert_int_equal(wstan_cookie_parse("_Q=dGhlIHNhbXBsZSBub25jZQ==", 27, NULL, nc, name), 0);
    assert_string_equal(name, "_Q");
    assert_int_equal(wstan_cookie_parse("_Q=dGhlIHNhbXBsZSBub25jZQ==", 27, "_H", nc, NULL),
                     TD_EINVAL);
    assert_int_equal(wstan_cookie_parse("_a=dGhlIHNhbXBsZSBub25jZQ==", 27, NULL, nc, NULL),
                     TD_EINVAL);
    assert_int_equal(wstan_cookie_parse("_H=dGhlIHNhbXBsZSBub25jZQ==; x=1", 32, NULL, nc, NULL),
                     TD_EINVAL);
    assert_int_equal(wstan_cookie_parse("_H:dGhlIHNhbXBsZSBub25jZQ==", 27, NULL, nc, NULL),
                     TD_EINVAL);
    assert_int_equal(wstan_cookie_parse("_H=", 3, NULL, nc, NULL), TD_EINVAL);
    assert_int_equal(wstan_cookie_parse("_H=__dGhlIHNhbXBsZSBub25jZQ==", 29, NULL, nc, NULL),
                     TD_EINVAL);
    /* Exact prefix strip: a nonce whose text starts with the letter survives. */
    assert_int_equal(wstan_cookie_parse(hcookie, strlen(hcookie), "_H", nc, NULL), 0);
    assert_int_equal(nc[0] >> 2, 7); /* 'H' */
    assert_false(wstan_cookie_nonce_ok(nc, "_H"));
    assert_true(wstan_cookie_nonce_ok(nc, "_G"));
    assert_true(wstan_cookie_nonce_ok(nc, NULL));
    for (int i = 0; i < 300; i++) {
        assert_int_equal(wstan_nonce_generate(nc, "_H"), 0);
        assert_true(wstan_cookie_nonce_ok(nc, "_H"));
    }
}

/* ---- TV3, TV4: first REQ, URI, continuity, masked frame -------------------------------- */

static const char TV3_CT[] = "9b27b2e30cdba8ae23ac3cceffe6422e8961b0acf1d292d936b3663f4403e7b9"
                             "8251bdcaaf1d6e39e94aa2bc385a3bb5dcc95cc3a23aea51dca088e2d0a7";
static const char TV3_TAG[] = "40bd116a0506dc8f112d";
static const char TV3_PT[] = "0041d954fc4020000000030b6578616d706c652e636f6d0050474554202f204854"
                             "54502f312e310d0a486f73743a206578616d706c652e636f6d0d0a0d0a";
static const char TV3_PATH[] = "/myey4wzbqK4jrDzO_-ZCLolhsKzx0pLZNrNmP0QD57mCUb3Krx1uOelKorw4Wju1"
                               "3Mlcw6I66lHcoIji0KdAvRFqBQbcjxEt";

/* RFC 6455 client framing of a short binary message. */
static size_t ws_mask_frame(const uint8_t *payload, size_t len, const uint8_t mask[4], uint8_t *out)
{
    assert_true(len < 126);
    out[0] = 0x82;
    out[1] = (uint8_t)(0x80 | len);
    memcpy(out + 2, mask, 4);
    for (size_t i = 0; i < len; i++)
        out[6 + i] = payload[i] ^ mask[i % 4];
    return 6 + len;
}

static void test_tv3_tv4_first_req(void **state)
{
    struct wstan_key k = k16();
    struct wstan_stream up, srv;
    struct wstan_addr a;
    struct wstan_msg m;
    uint8_t nc[16], msg[256], dec[256], frame[64];
    uint8_t want[128];
    const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    char path[512];
    size_t n, plen, dn;
    (void)state;

    nc_sample(nc);
    example_addr(&a);
    assert_int_equal(wstan_addr_len(&a), 16);
    assert_int_equal(wstan_stream_init(&up, &k, nc, false), 0);
    assert_int_equal(wstan_encode_req(&up, TS0, &a, (const uint8_t *)HTTP_GET, strlen(HTTP_GET),
                                      msg, sizeof(msg), &n),
                     0);
    assert_int_equal(n, 72);
    assert_hex(msg, 62, TV3_CT);
    assert_hex(msg + 62, 10, TV3_TAG);

    /* Default prefix, "/" and a prefix without trailing slash. */
    assert_int_equal(wstan_uri_build("", 0, msg, n, path, sizeof(path), &plen), 0);
    assert_string_equal(path, TV3_PATH);
    assert_int_equal(plen, strlen(TV3_PATH));
    assert_int_equal(wstan_uri_build("/", 1, msg, n, path, sizeof(path), &plen), 0);
    assert_string_equal(path, TV3_PATH);
    assert_int_equal(wstan_uri_build("/ws", 3, msg, n, path, sizeof(path), &plen), 0);
    assert_memory_equal(path, "/ws/myey", 8);
    assert_int_equal(wstan_uri_build("/", 1, msg, n, path, strlen(TV3_PATH), &plen), TD_ETOOBIG);

    /* TV4: the next upstream message continues the stream at offset 62. */
    assert_int_equal(wstan_encode_dat(&up, (const uint8_t *)"hello", 5, msg, sizeof(msg), &n), 0);
    assert_hex(msg, n, "72495b836289");
    n = ws_mask_frame(msg, n, mask, frame);
    assert_hex(frame, n, "828637fa213d45b37abe5573");
    wstan_stream_free(&up);

    /* Server: URI -> message -> decode. */
    assert_int_equal(wstan_uri_parse(TV3_PATH, strlen(TV3_PATH), "/", 1, dec, sizeof(dec), &dn), 0);
    assert_int_equal(dn, 72);
    assert_int_equal(wstan_stream_init(&srv, &k, nc, false), 0);
    assert_int_equal(wstan_decode_first(&srv, dec, dn, &m), 0);
    assert_int_equal(m.cmd, WSTAN_REQ);
    assert_true(m.has_ts);
    assert_true(m.ts == TS0);
    assert_int_equal(wstan_ts_check(m.ts, TS0 + 3, 0), 0);
    assert_true(m.has_addr);
    assert_int_equal(m.addr.atyp, WSTAN_ATYP_DOMAIN);
    assert_string_equal(m.addr.host, "example.com");
    assert_int_equal(m.addr.port, 80);
    assert_int_equal(m.datalen, strlen(HTTP_GET));
    assert_memory_equal(m.data, HTTP_GET, m.datalen);
    n = unhex(TV3_PT, want, sizeof(want));
    assert_memory_equal(dec, want, n);

    /* The stream continues for in-band messages: the TV4 DAT. */
    memcpy(msg, "\x72\x49\x5b\x83\x62\x89", 6);
    assert_int_equal(wstan_decode_msg(&srv, msg, 6, 0, &m), 0);
    assert_int_equal(m.cmd, WSTAN_DAT);
    assert_int_equal(m.datalen, 5);
    assert_memory_equal(m.data, "hello", 5);
    wstan_stream_free(&srv);
}

/* ---- TV5, TV6: downstream DAT and RSTs ------------------------------------------------ */

static const char TV5_RST[] =
    "6e051e64b2bf74e85e3607ee32baba35933b500294aa09225487a0c3aa9926c3cd62993b8a195f4661d490"
    "03a84a1d2239fcca4bb9cd";
static const char TV6_RST[] =
    "d8c45b2496b64734736c09ff42f459bcc736e3270d8af68df7b137a7132c1ffef0021f4ef669024cdbaa18"
    "3345faa0a0e5d768868e36d074c4190d032781c346a0941e139b2eab5c47d108f31a0b66af3fd6e57c7f96"
    "ad1995b64ace88d9c1f3e6d8a51b9f66ffceedb039176414deee1785ad";

static void test_tv5_downstream(void **state)
{
    struct wstan_key k = k16();
    struct wstan_stream down, cli;
    struct wstan_msg m;
    uint8_t ns[16], msg[256];
    const char body[] = "HTTP/1.1 200 OK\r\n\r\n";
    size_t n;
    (void)state;

    ns_sample(ns);
    assert_int_equal(wstan_stream_init(&down, &k, ns, false), 0);
    assert_int_equal(wstan_stream_init(&cli, &k, ns, false), 0);
    assert_int_equal(
        wstan_encode_dat(&down, (const uint8_t *)body, strlen(body), msg, sizeof(msg), &n), 0);
    assert_hex(msg, n, "dbef6e1ee1ed56792d2255aa11a03683a51c8b55");
    assert_int_equal(wstan_decode_msg(&cli, msg, n, 0, &m), 0);
    assert_int_equal(m.cmd, WSTAN_DAT);
    assert_memory_equal(m.data, body, strlen(body));

    assert_int_equal(wstan_encode_rst(&down, "", 0, "", 0, 40, msg, sizeof(msg), &n), 0);
    assert_hex(msg, n, TV5_RST);
    assert_int_equal(wstan_decode_msg(&cli, msg, n, 0, &m), 0);
    assert_int_equal(m.cmd, WSTAN_RST);
    assert_int_equal(m.reason_len, 0);
    assert_int_equal(m.err_len, 0);
    wstan_stream_free(&down);
    wstan_stream_free(&cli);
}

static void test_tv6_rst_reason(void **state)
{
    struct wstan_key k = k16();
    struct wstan_stream down, cli;
    struct wstan_msg m;
    uint8_t ns[16], msg[512];
    const char reason[] = "can't connect to example.com:80";
    const char err[] = "[Errno 111] Connection refused";
    size_t n;
    (void)state;

    ns_sample(ns);
    assert_int_equal(wstan_stream_init(&down, &k, ns, false), 0);
    assert_int_equal(wstan_stream_init(&cli, &k, ns, false), 0);
    assert_int_equal(
        wstan_encode_rst(&down, reason, strlen(reason), err, strlen(err), 40, msg, sizeof(msg), &n),
        0);
    assert_hex(msg, n, TV6_RST);
    assert_int_equal(wstan_decode_msg(&cli, msg, n, 0, &m), 0);
    assert_int_equal(m.cmd, WSTAN_RST);
    assert_int_equal(m.reason_len, strlen(reason));
    assert_memory_equal(m.reason, reason, m.reason_len);
    assert_int_equal(m.err_len, strlen(err));
    assert_memory_equal(m.err, err, m.err_len);
    wstan_stream_free(&down);
    wstan_stream_free(&cli);
}

/* ---- TV7: ADDR ------------------------------------------------------------------------- */

static void test_tv7_addr(void **state)
{
    struct {
        const char *host;
        uint16_t port;
        enum wstan_atyp atyp;
        const char *hex;
    } v[] = {
        {"192.0.2.1", 443, WSTAN_ATYP_IPV4, "0001c000020101bb"},
        {"2001:db8::1", 8080, WSTAN_ATYP_IPV6, "000420010db80000000000000000000000011f90"},
        {"example.com", 80, WSTAN_ATYP_DOMAIN, "00030b6578616d706c652e636f6d0050"},
    };
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        struct wstan_addr a, b;
        uint8_t buf[WSTAN_ADDR_MAX + 4];
        size_t n, used;
        assert_int_equal(wstan_addr_set(&a, v[i].host, strlen(v[i].host), v[i].port, false), 0);
        assert_int_equal(a.atyp, v[i].atyp);
        assert_int_equal(wstan_addr_encode(&a, buf, sizeof(buf), &n), 0);
        assert_hex(buf, n, v[i].hex);
        assert_int_equal(wstan_addr_encode(&a, buf, n - 1, &n), TD_ETOOBIG);
        n = unhex(v[i].hex, buf, sizeof(buf));
        buf[n] = 0x99; /* trailing DATA is not part of ADDR */
        assert_int_equal(wstan_addr_parse(buf, n + 1, &b, &used), 0);
        assert_int_equal(used, n);
        assert_int_equal(b.atyp, v[i].atyp);
        assert_int_equal(b.port, v[i].port);
        for (size_t cut = 0; cut < n; cut++)
            assert_int_equal(wstan_addr_parse(buf, cut, &b, &used), TD_EPROTO);
    }
    {
        /* v0.4.1 style: IP literals as text. */
        struct wstan_addr a;
        uint8_t buf[64];
        size_t n;
        assert_int_equal(wstan_addr_set(&a, "192.0.2.1", 9, 443, true), 0);
        assert_int_equal(a.atyp, WSTAN_ATYP_DOMAIN);
        assert_int_equal(wstan_addr_encode(&a, buf, sizeof(buf), &n), 0);
        assert_hex(buf, n, "0003093139322e302e322e3101bb");
        assert_int_equal(wstan_addr_set(&a, "", 0, 1, false), TD_EINVAL);
    }
    {
        struct wstan_addr b;
        size_t used;
        uint8_t bad_rsv[] = {0x01, 0x01, 1, 2, 3, 4, 0, 80};
        uint8_t bad_atyp[] = {0x00, 0x02, 1, 2, 3, 4, 0, 80};
        uint8_t empty_name[] = {0x00, 0x03, 0x00, 0, 80};
        uint8_t nul_name[] = {0x00, 0x03, 0x02, 'a', 0, 0, 80};
        assert_int_equal(wstan_addr_parse(bad_rsv, sizeof(bad_rsv), &b, &used), TD_EPROTO);
        assert_int_equal(wstan_addr_parse(bad_atyp, sizeof(bad_atyp), &b, &used), TD_EPROTO);
        assert_int_equal(wstan_addr_parse(empty_name, sizeof(empty_name), &b, &used), TD_EPROTO);
        assert_int_equal(wstan_addr_parse(nul_name, sizeof(nul_name), &b, &used), TD_EPROTO);
    }
}

/* ---- TV8: counter wrap ----------------------------------------------------------------- */

static void test_tv8_ctr_wrap(void **state)
{
    struct wstan_key k = k16();
    struct td_ctr c;
    uint8_t iv[16], buf[48] = {0};
    (void)state;
    memset(iv, 0xff, sizeof(iv));
    assert_int_equal(td_ctr_init(&c, k.bytes, k.len, iv), 0);
    /* Odd-sized pieces, to cross the wrap inside a call. */
    assert_int_equal(td_ctr_xor(&c, buf, buf, 7), 0);
    assert_int_equal(td_ctr_xor(&c, buf + 7, buf + 7, 20), 0);
    assert_int_equal(td_ctr_xor(&c, buf + 27, buf + 27, 21), 0);
    assert_hex(buf, 48,
               "3c441f32ce07822364d7a2990e50bb13c6a13b37878f5b826f4f8162a1c8d879"
               "7346139595c0b41e497bbde365f42d0a");
    td_ctr_free(&c);
}

/* ---- TV9: password key ----------------------------------------------------------------- */

static void test_tv9_password_key(void **state)
{
    struct wstan_stream up, srv;
    struct wstan_addr a;
    struct wstan_msg m;
    uint8_t nc[16], msg[128], dec[128];
    char path[256];
    size_t n, plen, dn;
    (void)state;

    nc_sample(nc);
    assert_int_equal(wstan_addr_set(&a, "192.0.2.1", 9, 443, false), 0);
    assert_int_equal(wstan_stream_init(&up, horse_key(), nc, false), 0);
    assert_int_equal(wstan_encode_req(&up, TS0, &a, NULL, 0, msg, sizeof(msg), &n), 0);
    assert_hex(msg, n, "7f80260e990c33ccaeec76f20e3d48df680a6eae43e0457a54e69f");
    assert_int_equal(wstan_uri_build("", 0, msg, n, path, sizeof(path), &plen), 0);
    assert_string_equal(path, "/f4AmDpkMM8yu7HbyDj1I32gKbq5D4EV6VOaf");
    wstan_stream_free(&up);

    assert_int_equal(wstan_uri_parse(path, plen, "", 0, dec, sizeof(dec), &dn), 0);
    assert_int_equal(wstan_stream_init(&srv, horse_key(), nc, false), 0);
    assert_int_equal(wstan_decode_first(&srv, dec, dn, &m), 0);
    assert_hex(dec, dn - 10, "0041d954fc402000000001c000020101bb");
    assert_int_equal(m.addr.atyp, WSTAN_ATYP_IPV4);
    assert_int_equal(m.datalen, 0);
    wstan_stream_free(&srv);
}

/* ---- TV10: TLS mode -------------------------------------------------------------------- */

static void test_tv10_tls(void **state)
{
    struct wstan_key k = k16();
    struct wstan_stream up, srv;
    struct wstan_addr a;
    struct wstan_msg m;
    uint8_t msg[128];
    size_t n;
    char want[256];
    (void)state;

    example_addr(&a);
    assert_int_equal(wstan_stream_init(&up, &k, NULL, true), 0);
    assert_int_equal(wstan_encode_req(&up, TS0, &a, (const uint8_t *)HTTP_GET, strlen(HTTP_GET),
                                      msg, sizeof(msg), &n),
                     0);
    snprintf(want, sizeof(want), "%s%s", TV3_PT, "b65fc82b9dccca3dd3ed");
    assert_hex(msg, n, want);
    assert_int_equal(wstan_stream_skip(&up, 1000), 0); /* no-op */

    assert_int_equal(wstan_stream_init(&srv, &k, NULL, true), 0);
    assert_int_equal(wstan_decode_first(&srv, msg, n, &m), 0);
    assert_int_equal(m.cmd, WSTAN_REQ);
    assert_string_equal(m.addr.host, "example.com");
    /* The tag is still verified in TLS mode. */
    assert_int_equal(wstan_encode_req(&up, TS0, &a, NULL, 0, msg, sizeof(msg), &n), 0);
    msg[5] ^= 1;
    assert_int_equal(wstan_decode_first(&srv, msg, n, &m), TD_EAUTH);
    wstan_stream_free(&up);
    wstan_stream_free(&srv);
}

/* ---- codec details --------------------------------------------------------------------- */

struct pair {
    struct wstan_key k;
    struct wstan_stream tx, rx;
};

static void pair_init(struct pair *p, bool tls)
{
    uint8_t nc[16];
    p->k = k16();
    nc_sample(nc);
    assert_int_equal(wstan_stream_init(&p->tx, &p->k, nc, tls), 0);
    assert_int_equal(wstan_stream_init(&p->rx, &p->k, nc, tls), 0);
}

static void pair_free(struct pair *p)
{
    wstan_stream_free(&p->tx);
    wstan_stream_free(&p->rx);
}

static void test_first_request_kinds(void **state)
{
    struct pair p;
    struct wstan_addr a;
    struct wstan_msg m;
    uint8_t msg[128], copy[128];
    size_t n;
    enum wstan_state st;
    (void)state;

    pair_init(&p, false);
    example_addr(&a);
    /* DGM request. */
    assert_int_equal(
        wstan_encode_dgm_req(&p.tx, TS0, &a, (const uint8_t *)"q", 1, msg, sizeof(msg), &n), 0);
    assert_int_equal(wstan_decode_first(&p.rx, msg, n, &m), 0);
    assert_int_equal(m.cmd, WSTAN_DGM);
    assert_int_equal(m.datalen, 1);
    assert_int_equal(wstan_initial_state(WSTAN_SERVER, m.cmd, &st), 0);
    assert_int_equal(st, WSTAN_USING);
    pair_free(&p);

    pair_init(&p, false);
    assert_int_equal(wstan_encode_empty_req(&p.tx, TS0, msg, sizeof(msg), &n), 0);
    assert_int_equal(n, 19);
    /* Wrong key: TD_EAUTH, and neither the buffer nor the stream moved. */
    {
        struct wstan_stream other;
        struct wstan_key k2 = k16();
        uint8_t nc[16];
        nc_sample(nc);
        k2.bytes[0] ^= 1;
        assert_int_equal(wstan_stream_init(&other, &k2, nc, false), 0);
        memcpy(copy, msg, n);
        assert_int_equal(wstan_decode_first(&other, msg, n, &m), TD_EAUTH);
        assert_memory_equal(copy, msg, n);
        wstan_stream_free(&other);
    }
    assert_int_equal(wstan_decode_first(&p.rx, msg, n, &m), 0);
    assert_int_equal(m.cmd, WSTAN_RST);
    assert_true(m.ts == TS0);
    assert_false(m.has_addr);
    assert_int_equal(wstan_initial_state(WSTAN_SERVER, m.cmd, &st), 0);
    assert_int_equal(st, WSTAN_IDLE);
    assert_int_equal(wstan_initial_state(WSTAN_SERVER, WSTAN_REQ, &st), 0);
    assert_int_equal(st, WSTAN_CONNECTING);
    assert_int_equal(wstan_initial_state(WSTAN_CLIENT, WSTAN_REQ, &st), 0);
    assert_int_equal(st, WSTAN_USING);
    assert_int_equal(wstan_initial_state(WSTAN_SERVER, WSTAN_DAT, &st), TD_EINVAL);
    /* Too short for TS + tag. */
    assert_int_equal(wstan_decode_first(&p.rx, msg, 18, &m), TD_EPROTO);
    pair_free(&p);

    /* A DAT can never be a first request, even with a valid tag. */
    pair_init(&p, true);
    memset(msg, 0, sizeof(msg));
    msg[0] = WSTAN_DAT;
    assert_int_equal(td_hmac_sha1(p.k.bytes, 16, msg, 9, copy), 0);
    memcpy(msg + 9, copy, 10);
    assert_int_equal(wstan_decode_first(&p.rx, msg, 19, &m), TD_EPROTO);
    pair_free(&p);
}

static void test_inband_sequence(void **state)
{
    struct pair p;
    struct wstan_addr a;
    struct wstan_msg m;
    uint8_t msg[1024];
    size_t n;
    (void)state;

    pair_init(&p, false);
    example_addr(&a);
    /* DAT with the payload already in place behind the command byte. */
    memcpy(msg + 1, "abc", 3);
    assert_int_equal(wstan_encode_dat(&p.tx, msg + 1, 3, msg, sizeof(msg), &n), 0);
    assert_int_equal(wstan_decode_msg(&p.rx, msg, n, 0, &m), 0);
    assert_memory_equal(m.data, "abc", 3);

    /* A skipped DAT (RESETTING) keeps the stream in sync, odd sizes included. */
    for (size_t len = 0; len < 70; len += 7) {
        uint8_t data[80];
        memset(data, (int)len, sizeof(data));
        assert_int_equal(wstan_encode_dat(&p.tx, data, len, msg, sizeof(msg), &n), 0);
        assert_int_equal(wstan_decode_msg(&p.rx, msg, n, WSTAN_DECODE_SKIP_DAT, &m), 0);
        assert_int_equal(m.cmd, WSTAN_DAT);
        assert_null(m.data);
        assert_int_equal(m.datalen, len);
    }
    /* In-band DGM: ADDR + payload, no tag. */
    assert_int_equal(wstan_encode_dgm(&p.tx, &a, (const uint8_t *)"dns?", 4, msg, sizeof(msg), &n),
                     0);
    assert_int_equal(n, 1 + 16 + 4);
    assert_int_equal(wstan_decode_msg(&p.rx, msg, n, WSTAN_DECODE_SKIP_DAT, &m), 0);
    assert_int_equal(m.cmd, WSTAN_DGM);
    assert_string_equal(m.addr.host, "example.com");
    assert_memory_equal(m.data, "dns?", 4);
    /* In-band REQ on a reused tunnel. */
    assert_int_equal(wstan_encode_req(&p.tx, TS0 + 100, &a, NULL, 0, msg, sizeof(msg), &n), 0);
    assert_int_equal(wstan_decode_msg(&p.rx, msg, n, 0, &m), 0);
    assert_int_equal(m.cmd, WSTAN_REQ);
    assert_true(m.ts == TS0 + 100);
    assert_int_equal(wstan_ts_check(m.ts, TS0 + 161, 0), TD_EAUTH);
    /* And still in sync afterwards. */
    assert_int_equal(wstan_encode_dat(&p.tx, (const uint8_t *)"z", 1, msg, sizeof(msg), &n), 0);
    assert_int_equal(wstan_decode_msg(&p.rx, msg, n, 0, &m), 0);
    assert_memory_equal(m.data, "z", 1);

    /* Too small an output buffer leaves the stream untouched. */
    assert_int_equal(wstan_encode_dat(&p.tx, (const uint8_t *)"zz", 2, msg, 2, &n), TD_ETOOBIG);
    assert_int_equal(wstan_encode_req(&p.tx, TS0, &a, NULL, 0, msg, 34, &n), TD_ETOOBIG);
    assert_int_equal(wstan_encode_rst(&p.tx, "x", 1, "", 0, 0, msg, 14, &n), TD_ETOOBIG);
    assert_int_equal(wstan_encode_dat(&p.tx, (const uint8_t *)"ok", 2, msg, sizeof(msg), &n), 0);
    assert_int_equal(wstan_decode_msg(&p.rx, msg, n, 0, &m), 0);
    assert_memory_equal(m.data, "ok", 2);
    pair_free(&p);
}

static void test_decode_errors(void **state)
{
    struct pair p;
    struct wstan_msg m;
    uint8_t msg[256];
    size_t n;
    (void)state;

    pair_init(&p, false);
    assert_int_equal(wstan_decode_msg(&p.rx, msg, 0, 0, &m), TD_EPROTO);
    pair_free(&p);

    /* Bad tag on an in-band RST. */
    pair_init(&p, false);
    assert_int_equal(wstan_encode_rst(&p.tx, "r", 1, "", 0, 3, msg, sizeof(msg), &n), 0);
    msg[n - 1] ^= 0x80;
    assert_int_equal(wstan_decode_msg(&p.rx, msg, n, 0, &m), TD_EAUTH);
    pair_free(&p);

    /* Unknown command (plaintext 0x07, TLS mode for easy crafting). */
    pair_init(&p, true);
    msg[0] = 0x07;
    assert_int_equal(wstan_decode_msg(&p.rx, msg, 1, 0, &m), TD_EPROTO);
    /* Tagged messages shorter than a tag. */
    msg[0] = WSTAN_RST;
    assert_int_equal(wstan_decode_msg(&p.rx, msg, 10, 0, &m), TD_EPROTO);
    /* DGM with a broken ADDR. */
    msg[0] = WSTAN_DGM;
    msg[1] = 0x00;
    msg[2] = 0x09;
    assert_int_equal(wstan_decode_msg(&p.rx, msg, 8, 0, &m), TD_EPROTO);
    pair_free(&p);
}

/* Build an RST by hand in TLS mode (tag only) to test what a peer may send. */
static size_t craft_rst(const struct wstan_key *k, const char *body, size_t blen, uint8_t *msg)
{
    msg[0] = WSTAN_RST;
    memcpy(msg + 1, body, blen);
    {
        uint8_t d[20];
        assert_int_equal(td_hmac_sha1(k->bytes, k->len, msg, 1 + blen, d), 0);
        memcpy(msg + 1 + blen, d, 10);
    }
    return 1 + blen + 10;
}

static void test_rst_text(void **state)
{
    struct pair p;
    struct wstan_msg m;
    uint8_t msg[1024];
    char out[64];
    size_t n;
    (void)state;

    /* Sanitizer. */
    assert_int_equal(wstan_text_sanitize("a\xe2\x98\x85"
                                         "b  \t",
                                         8, out, &n),
                     0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "a*b", 3);
    assert_int_equal(wstan_text_sanitize("x\ny\xff\xc3\xa9\xe3\x80\x80", 9, out, &n), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "x y?\xc3\xa9", 6);
    assert_int_equal(wstan_text_sanitize("", 0, out, &n), 0);
    assert_int_equal(n, 0);

    pair_init(&p, true);
    /* Round trip with characters that need sanitizing. */
    assert_int_equal(wstan_encode_rst(&p.tx, "bad\xe2\x98\x85reason  ", 14, "e\xe2\x98\x85rr\n", 7,
                                      WSTAN_RST_PAD_RANDOM, msg, sizeof(msg), &n),
                     0);
    assert_true(n >= 1 + 10 + 3 + 4 + 40 + 10 && n <= 1 + 10 + 3 + 4 + 499 + 10);
    assert_int_equal(wstan_decode_msg(&p.rx, msg, n, 0, &m), 0);
    assert_int_equal(m.reason_len, 10);
    assert_memory_equal(m.reason, "bad*reason", 10);
    assert_int_equal(m.err_len, 4);
    assert_memory_equal(m.err, "e*rr", 4);

    /* Padding bounds. */
    assert_int_equal(wstan_encode_rst(&p.tx, "", 0, "", 0, -2, msg, sizeof(msg), &n), TD_EINVAL);
    assert_int_equal(wstan_encode_rst(&p.tx, "", 0, "", 0, 0, msg, sizeof(msg), &n), 0);
    assert_int_equal(n, 1 + 3 + 10);

    /* Peer-sent forms: one part (v0.3 style), several stars, bad UTF-8. */
    n = craft_rst(&p.k, "just reason   ", 14, msg);
    assert_int_equal(wstan_decode_msg(&p.rx, msg, n, 0, &m), 0);
    assert_int_equal(m.reason_len, 11);
    assert_int_equal(m.err_len, 0);
    n = craft_rst(&p.k,
                  "a\xe2\x98\x85"
                  "b\xe2\x98\x85"
                  "c \r\n",
                  12, msg);
    assert_int_equal(wstan_decode_msg(&p.rx, msg, n, 0, &m), 0);
    assert_int_equal(m.reason_len, 1);
    assert_memory_equal(m.reason, "a", 1);
    assert_int_equal(m.err_len, 5);
    assert_memory_equal(m.err,
                        "b\xe2\x98\x85"
                        "c",
                        5);
    n = craft_rst(&p.k, "  ", 2, msg);
    assert_int_equal(wstan_decode_msg(&p.rx, msg, n, 0, &m), 0);
    assert_int_equal(m.reason_len, 0);
    n = craft_rst(&p.k, "\xe2\x98", 2, msg);
    assert_int_equal(wstan_decode_msg(&p.rx, msg, n, 0, &m), TD_EPROTO);
    pair_free(&p);
}

/* ---- URI parsing -------------------------------------------------------------------------- */

static void test_uri_parse(void **state)
{
    uint8_t out[64];
    size_t n;
    (void)state;
    /* "AAEC" = 00 01 02 */
    assert_int_equal(wstan_uri_parse("/AAEC", 5, "/", 1, out, sizeof(out), &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(wstan_uri_parse("/ws/AAEC", 8, "/ws", 3, out, sizeof(out), &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(wstan_uri_parse("/ws/AAEC", 8, "/ws/", 4, out, sizeof(out), &n), 0);
    assert_int_equal(wstan_uri_parse("/wsAAEC", 7, "/ws", 3, out, sizeof(out), &n), 0);
    assert_int_equal(wstan_uri_parse("/AAEC?x=1#f", 11, "/", 1, out, sizeof(out), &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(wstan_uri_parse("http://h:80/AAEC", 16, "/", 1, out, sizeof(out), &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(wstan_uri_parse("/AA==", 5, "/", 1, out, sizeof(out), &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(wstan_uri_parse("/AA=A", 5, "/", 1, out, sizeof(out), &n), TD_EINVAL);
    assert_int_equal(wstan_uri_parse("/AA", 3, "/", 1, out, sizeof(out), &n), TD_EINVAL);
    assert_int_equal(wstan_uri_parse("/AAE=", 5, "/", 1, out, sizeof(out), &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(wstan_uri_parse("/-_-_", 5, "", 0, out, sizeof(out), &n), 0);
    assert_int_equal(wstan_uri_parse("/+/+/", 5, "", 0, out, sizeof(out), &n), TD_EINVAL);
    assert_int_equal(wstan_uri_parse("/", 1, "/", 1, out, sizeof(out), &n), TD_EINVAL);
    assert_int_equal(wstan_uri_parse("", 0, "/", 1, out, sizeof(out), &n), TD_EINVAL);
    assert_int_equal(wstan_uri_parse("/AAECAAEC", 9, "/", 1, out, 5, &n), TD_ETOOBIG);
    assert_int_equal(wstan_uri_parse("*", 1, "/", 1, out, sizeof(out), &n), TD_EINVAL);
    /* Build refuses odd prefixes. */
    {
        char path[32];
        assert_int_equal(wstan_uri_build("ws", 2, out, 3, path, sizeof(path), &n), TD_EINVAL);
        assert_int_equal(wstan_uri_build("/a?b", 4, out, 3, path, sizeof(path), &n), TD_EINVAL);
        assert_int_equal(wstan_uri_build("/", 1, out, 0, path, sizeof(path), &n), TD_EINVAL);
    }
}

/* ---- timestamps ------------------------------------------------------------------------- */

static void test_timestamps(void **state)
{
    uint8_t b[8];
    double nan, inf;
    (void)state;
    wstan_ts_encode(TS0, b);
    assert_hex(b, 8, "41d954fc40200000");
    assert_true(wstan_ts_decode(b) == TS0);

    assert_int_equal(wstan_ts_check(1000.0, 1060.0, 0), 0);
    assert_int_equal(wstan_ts_check(1000.0, 940.0, 0), 0);
    assert_int_equal(wstan_ts_check(1000.0, 1060.0, 60.0), 0);
    assert_int_equal(wstan_ts_check(1000.0, 1060.001, 0), TD_EAUTH);
    assert_int_equal(wstan_ts_check(1000.0, 939.999, 0), TD_EAUTH);
    assert_int_equal(wstan_ts_check(1000.0, 1100.0, 120.0), 0);
    assert_int_equal(wstan_ts_check(1000.0, 1010.5, 10.0), TD_EAUTH);
    memset(b, 0xff, sizeof(b)); /* a NaN */
    nan = wstan_ts_decode(b);
    assert_int_equal(wstan_ts_check(nan, 1000.0, 0), TD_EAUTH);
    wstan_ts_encode(HUGE_VAL, b);
    inf = wstan_ts_decode(b);
    assert_int_equal(wstan_ts_check(inf, 1000.0, 0), TD_EAUTH);
    assert_int_equal(wstan_ts_check(-inf, 1000.0, 0), TD_EAUTH);
}

/* ---- replay filter ---------------------------------------------------------------------- */

static void nonce_of(uint32_t i, uint8_t n[16])
{
    memset(n, 0, 16);
    memcpy(n, &i, sizeof(i));
}

static void test_replay_basic(void **state)
{
    struct wstan_replay r;
    uint8_t a[16], b[16];
    const double t = 1000.0;
    (void)state;

    assert_int_equal(wstan_replay_init(&r, 0, 0), TD_EINVAL);
    assert_int_equal(wstan_replay_init(&r, 4, 0), 0);
    nonce_of(1, a);
    nonce_of(2, b);
    assert_int_equal(wstan_replay_check(&r, a, t, t), 0);
    assert_int_equal(wstan_replay_check(&r, a, t, t + 1), TD_EAUTH);
    /* A different TS bucket does not help (stricter than stock). */
    assert_int_equal(wstan_replay_check(&r, a, t + 30, t + 30), TD_EAUTH);
    assert_int_equal(wstan_replay_check(&r, b, t, t), 0);
    assert_int_equal(wstan_replay_count(&r), 2);
    /* Remembered until TS + 60 + 10. */
    assert_int_equal(wstan_replay_check(&r, a, t, t + 69.9), TD_EAUTH);
    assert_int_equal(wstan_replay_check(&r, a, t, t + 70.0), 0);
    assert_int_equal(wstan_replay_count(&r), 1);
    /* A future TS keeps the nonce longer: at most ~130 s after now. */
    nonce_of(3, a);
    assert_int_equal(wstan_replay_check(&r, a, t + 200 + 60, t + 200), 0);
    assert_int_equal(wstan_replay_check(&r, a, t + 200 + 60, t + 200 + 129), TD_EAUTH);
    assert_int_equal(wstan_replay_check(&r, a, t + 200 + 60, t + 200 + 130), 0);
    /* NaN is refused. */
    memset(b, 0xff, sizeof(b));
    {
        uint8_t nb[8];
        memset(nb, 0xff, sizeof(nb));
        assert_int_equal(wstan_replay_check(&r, b, wstan_ts_decode(nb), t + 500), TD_EINVAL);
    }
    wstan_replay_free(&r);
}

static void test_replay_full(void **state)
{
    struct wstan_replay r;
    uint8_t n[16];
    (void)state;
    assert_int_equal(wstan_replay_init(&r, 8, 0), 0);
    for (uint32_t i = 0; i < 8; i++) {
        nonce_of(i, n);
        assert_int_equal(wstan_replay_check(&r, n, 100.0 + i, 100.0 + i), 0);
    }
    /* Full of live nonces: refuse rather than forget one. */
    nonce_of(100, n);
    assert_int_equal(wstan_replay_check(&r, n, 110.0, 110.0), TD_ELIMIT);
    nonce_of(3, n);
    assert_int_equal(wstan_replay_check(&r, n, 110.0, 110.0), TD_EAUTH);
    /* Once the oldest expire there is room again. */
    nonce_of(100, n);
    assert_int_equal(wstan_replay_check(&r, n, 171.0, 171.0), 0);
    assert_int_equal(wstan_replay_count(&r), 7);
    wstan_replay_free(&r);
}

/* Random operations against a brute-force model (exercises the hash
 * table's backward-shift deletion with a small table and many collisions). */
static void test_replay_model(void **state)
{
    enum { CAP = 32, NONCES = 48, OPS = 20000 };
    struct wstan_replay r;
    double model[NONCES]; /* expiry, 0 = absent */
    double now = 5000.0;
    uint32_t seed = 12345;
    (void)state;

    assert_int_equal(wstan_replay_init(&r, CAP, 5.0), 0);
    memset(model, 0, sizeof(model));
    for (int op = 0; op < OPS; op++) {
        uint8_t n[16];
        uint32_t id;
        double ts;
        size_t live = 0;
        int rc, want;

        seed = seed * 1103515245u + 12345u;
        now += (double)((seed >> 16) % 100) / 100.0;
        seed = seed * 1103515245u + 12345u;
        id = (seed >> 16) % NONCES;
        seed = seed * 1103515245u + 12345u;
        ts = now + (double)((int)((seed >> 16) % 11) - 5);
        for (int i = 0; i < NONCES; i++) {
            if (model[i] > now)
                live++;
        }
        nonce_of(id, n);
        rc = wstan_replay_check(&r, n, ts, now);
        if (model[id] > now)
            want = TD_EAUTH;
        else
            want = 0;
        /* The filter may be full of entries that the model has already
         * expired but that sit behind a later-expiring ring head; it only
         * ever errs on the strict side. */
        if (want == 0 && rc == TD_ELIMIT) {
            assert_true(live <= CAP);
            continue;
        }
        assert_int_equal(rc, want);
        if (rc == 0)
            model[id] = (ts > now ? ts : now) + 5.0 + WSTAN_REPLAY_SLACK;
    }
    wstan_replay_free(&r);
}

/* ---- state machine ---------------------------------------------------------------------- */

static void expect_step(enum wstan_role role, enum wstan_state st, enum wstan_event ev,
                        enum wstan_state next, enum wstan_action act)
{
    struct wstan_step s;
    assert_int_equal(wstan_transition(role, st, ev, &s), 0);
    assert_int_equal(s.next, next);
    assert_int_equal(s.action, act);
}

static void expect_close(enum wstan_role role, enum wstan_state st, enum wstan_event ev, int code)
{
    struct wstan_step s;
    assert_int_equal(wstan_transition(role, st, ev, &s), TD_EPROTO);
    assert_int_equal(s.action, WSTAN_ACT_CLOSE);
    assert_int_equal(s.close_code, code);
    assert_int_equal(s.next, st);
}

static void test_state_machine(void **state)
{
    struct wstan_step s;
    (void)state;
    /* Client: normal life, pooled reuse, both sides resetting at once. */
    expect_step(WSTAN_CLIENT, WSTAN_USING, WSTAN_EV_RECV_DAT, WSTAN_USING, WSTAN_ACT_DELIVER);
    expect_step(WSTAN_CLIENT, WSTAN_USING, WSTAN_EV_LOCAL_END, WSTAN_RESETTING, WSTAN_ACT_SEND_RST);
    expect_step(WSTAN_CLIENT, WSTAN_RESETTING, WSTAN_EV_RECV_DAT, WSTAN_RESETTING,
                WSTAN_ACT_DISCARD);
    expect_step(WSTAN_CLIENT, WSTAN_RESETTING, WSTAN_EV_RECV_RST, WSTAN_IDLE, WSTAN_ACT_RESET_DONE);
    expect_step(WSTAN_CLIENT, WSTAN_IDLE, WSTAN_EV_LOCAL_REQ, WSTAN_USING, WSTAN_ACT_SEND);
    expect_step(WSTAN_CLIENT, WSTAN_IDLE, WSTAN_EV_LOCAL_DGM, WSTAN_USING, WSTAN_ACT_SEND);
    expect_step(WSTAN_CLIENT, WSTAN_USING, WSTAN_EV_RECV_RST, WSTAN_IDLE, WSTAN_ACT_REPLY_RST);
    expect_step(WSTAN_CLIENT, WSTAN_USING, WSTAN_EV_RECV_DGM, WSTAN_USING, WSTAN_ACT_DELIVER);
    expect_close(WSTAN_CLIENT, WSTAN_IDLE, WSTAN_EV_RECV_RST, WSTAN_CLOSE_BAD_STATE);
    expect_close(WSTAN_CLIENT, WSTAN_IDLE, WSTAN_EV_LOCAL_END, WSTAN_CLOSE_BAD_STATE);
    expect_close(WSTAN_CLIENT, WSTAN_RESETTING, WSTAN_EV_LOCAL_END, WSTAN_CLOSE_BAD_STATE);
    expect_close(WSTAN_CLIENT, WSTAN_USING, WSTAN_EV_RECV_REQ, WSTAN_CLOSE_PROTOCOL);
    expect_close(WSTAN_CLIENT, WSTAN_USING, WSTAN_EV_RECV_TEXT, WSTAN_CLOSE_PROTOCOL);
    assert_int_equal(wstan_transition(WSTAN_CLIENT, WSTAN_USING, WSTAN_EV_CONNECTED, &s),
                     TD_EINVAL);
    assert_int_equal(wstan_transition(WSTAN_CLIENT, WSTAN_CONNECTING, WSTAN_EV_RECV_DAT, &s),
                     TD_EINVAL);
    assert_int_equal(wstan_transition(WSTAN_CLIENT, WSTAN_USING, WSTAN_EV_LOCAL_REQ, &s),
                     TD_EINVAL);

    /* Server. */
    expect_step(WSTAN_SERVER, WSTAN_CONNECTING, WSTAN_EV_RECV_DAT, WSTAN_CONNECTING,
                WSTAN_ACT_BUFFER);
    expect_step(WSTAN_SERVER, WSTAN_CONNECTING, WSTAN_EV_CONNECTED, WSTAN_USING, WSTAN_ACT_FLUSH);
    expect_step(WSTAN_SERVER, WSTAN_CONNECTING, WSTAN_EV_CONNECT_FAILED, WSTAN_RESETTING,
                WSTAN_ACT_SEND_RST);
    expect_step(WSTAN_SERVER, WSTAN_CONNECTING, WSTAN_EV_RECV_RST, WSTAN_IDLE, WSTAN_ACT_REPLY_RST);
    expect_step(WSTAN_SERVER, WSTAN_IDLE, WSTAN_EV_RECV_REQ, WSTAN_CONNECTING, WSTAN_ACT_CONNECT);
    expect_step(WSTAN_SERVER, WSTAN_IDLE, WSTAN_EV_RECV_DGM, WSTAN_USING, WSTAN_ACT_DELIVER);
    expect_step(WSTAN_SERVER, WSTAN_USING, WSTAN_EV_LOCAL_END, WSTAN_RESETTING, WSTAN_ACT_SEND_RST);
    expect_step(WSTAN_SERVER, WSTAN_RESETTING, WSTAN_EV_RECV_RST, WSTAN_IDLE, WSTAN_ACT_RESET_DONE);
    expect_step(WSTAN_SERVER, WSTAN_RESETTING, WSTAN_EV_RECV_DAT, WSTAN_RESETTING,
                WSTAN_ACT_DISCARD);
    expect_close(WSTAN_SERVER, WSTAN_USING, WSTAN_EV_RECV_REQ, WSTAN_CLOSE_PROTOCOL);
    expect_close(WSTAN_SERVER, WSTAN_CONNECTING, WSTAN_EV_RECV_REQ, WSTAN_CLOSE_PROTOCOL);
    expect_close(WSTAN_SERVER, WSTAN_RESETTING, WSTAN_EV_RECV_REQ, WSTAN_CLOSE_PROTOCOL);
    expect_close(WSTAN_SERVER, WSTAN_IDLE, WSTAN_EV_RECV_RST, WSTAN_CLOSE_BAD_STATE);
    expect_close(WSTAN_SERVER, WSTAN_IDLE, WSTAN_EV_RECV_TEXT, WSTAN_CLOSE_PROTOCOL);
    assert_int_equal(wstan_transition(WSTAN_SERVER, WSTAN_IDLE, WSTAN_EV_LOCAL_REQ, &s), TD_EINVAL);
    assert_int_equal(wstan_transition(WSTAN_SERVER, WSTAN_STATE_COUNT, WSTAN_EV_RECV_DAT, &s),
                     TD_EINVAL);

    /* Every (role, state, event) is defined one way or another, and every
     * successful step lands in a state that role can be in. */
    for (int role = 0; role < 2; role++) {
        for (int st = 0; st < WSTAN_STATE_COUNT; st++) {
            for (int ev = 0; ev < WSTAN_EVENT_COUNT; ev++) {
                int rc = wstan_transition((enum wstan_role)role, (enum wstan_state)st,
                                          (enum wstan_event)ev, &s);
                assert_true(rc == 0 || rc == TD_EPROTO || rc == TD_EINVAL);
                if (rc == 0 && role == WSTAN_CLIENT)
                    assert_int_not_equal(s.next, WSTAN_CONNECTING);
            }
            assert_string_not_equal(wstan_state_name((enum wstan_state)st), "?");
        }
    }
    for (int ev = 0; ev < WSTAN_EVENT_COUNT; ev++)
        assert_string_not_equal(wstan_event_name((enum wstan_event)ev), "?");
    for (int a = 0; a < WSTAN_ACTION_COUNT; a++)
        assert_string_not_equal(wstan_action_name((enum wstan_action)a), "?");
    assert_string_equal(wstan_state_name(WSTAN_RESETTING), "RESETTING");
    assert_string_equal(wstan_state_name((enum wstan_state)99), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tv1_keys),           cmocka_unit_test(test_lenient_b64),
        cmocka_unit_test(test_key_classification), cmocka_unit_test(test_tv2_nonces),
        cmocka_unit_test(test_ws_key_validation),  cmocka_unit_test(test_cookie_parse),
        cmocka_unit_test(test_tv3_tv4_first_req),  cmocka_unit_test(test_tv5_downstream),
        cmocka_unit_test(test_tv6_rst_reason),     cmocka_unit_test(test_tv7_addr),
        cmocka_unit_test(test_tv8_ctr_wrap),       cmocka_unit_test(test_tv9_password_key),
        cmocka_unit_test(test_tv10_tls),           cmocka_unit_test(test_first_request_kinds),
        cmocka_unit_test(test_inband_sequence),    cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_rst_text),           cmocka_unit_test(test_uri_parse),
        cmocka_unit_test(test_timestamps),         cmocka_unit_test(test_replay_basic),
        cmocka_unit_test(test_replay_full),        cmocka_unit_test(test_replay_model),
        cmocka_unit_test(test_state_machine),
    };
    const struct td_crypto_backend *const *be;
    int failed = 0;

    /* The same vectors through every symmetric-crypto backend of this build
     * (OpenSSL and mbedTLS, or mbedTLS alone). */
    for (be = td_crypto_backends(); *be; be++) {
        print_message("crypto backend: %s\n", (*be)->name);
        td_crypto_use(*be);
        failed += _cmocka_run_group_tests((*be)->name, tests, sizeof(tests) / sizeof(tests[0]),
                                          NULL, NULL);
    }
    td_crypto_use(NULL);
    return failed;
}
