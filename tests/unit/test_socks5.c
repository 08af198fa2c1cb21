/* SOCKS5 codec: every message type, every truncation of a valid message,
 * malformed input, and encoder/parser round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/error.h"
#include "proto/socks5.h"

/* Every proper prefix of a valid message must give TD_EAGAIN and leave
 * *used alone; the whole message must parse and use exactly its length,
 * also with trailing bytes after it. */
#define CHECK_PREFIXES(fn, msg, len, out)                                                          \
    do {                                                                                           \
        uint8_t buf_[1024];                                                                        \
        size_t used_;                                                                              \
        for (size_t k_ = 0; k_ < (len); k_++) {                                                    \
            used_ = 12345;                                                                         \
            assert_int_equal(fn((msg), k_, &used_, (out)), TD_EAGAIN);                             \
            assert_int_equal(used_, 12345);                                                        \
        }                                                                                          \
        used_ = 0;                                                                                 \
        assert_int_equal(fn((msg), (len), &used_, (out)), 0);                                      \
        assert_int_equal(used_, (len));                                                            \
        memcpy(buf_, (msg), (len));                                                                \
        memset(buf_ + (len), 0xAA, 16);                                                            \
        assert_int_equal(fn(buf_, (len) + 16, &used_, (out)), 0);                                  \
        assert_int_equal(used_, (len));                                                            \
    } while (0)

static void test_greeting(void **state)
{
    const uint8_t msg[] = {0x05, 0x02, 0x00, 0x02};
    struct socks5_greeting g;
    (void)state;
    CHECK_PREFIXES(socks5_parse_greeting, msg, sizeof(msg), &g);
    assert_int_equal(g.nmethods, 2);
    assert_int_equal(g.methods[0], 0x00);
    assert_int_equal(g.methods[1], 0x02);
    assert_true(socks5_greeting_offers(&g, SOCKS5_METHOD_NONE));
    assert_true(socks5_greeting_offers(&g, SOCKS5_METHOD_USERPASS));
    assert_false(socks5_greeting_offers(&g, 0x01));
    assert_false(socks5_greeting_offers(NULL, 0x00));
}

static void test_greeting_255_methods(void **state)
{
    uint8_t msg[257];
    struct socks5_greeting g;
    (void)state;
    msg[0] = 0x05;
    msg[1] = 255;
    for (int i = 0; i < 255; i++)
        msg[2 + i] = (uint8_t)i;
    CHECK_PREFIXES(socks5_parse_greeting, msg, sizeof(msg), &g);
    assert_int_equal(g.nmethods, 255);
    assert_true(socks5_greeting_offers(&g, 254));
    assert_false(socks5_greeting_offers(&g, 255));
}

static void test_greeting_bad(void **state)
{
    struct socks5_greeting g;
    size_t used;
    (void)state;
    /* SOCKS4 and an HTTP request are refused from the first byte. */
    assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x04", 1, &used, &g), TD_EPROTO);
    assert_int_equal(socks5_parse_greeting((const uint8_t *)"GET / HTTP/1.1", 14, &used, &g),
                     TD_EPROTO);
    assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x05\x00", 2, &used, &g), TD_EPROTO);
    assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x05\x00\x00", 3, &used, &g),
                     TD_EPROTO);
    assert_int_equal(socks5_parse_greeting(NULL, 0, &used, &g), TD_EAGAIN);
    assert_int_equal(socks5_parse_greeting((const uint8_t *)"\x05", 1, NULL, &g), TD_EINVAL);
}

static void test_userpass(void **state)
{
    const uint8_t msg[] = {0x01, 0x04, 'u', 's', 'e', 'r', 0x06, 's', 'e', 'c', 'r', 'e', 't'};
    struct socks5_userpass up;
    (void)state;
    CHECK_PREFIXES(socks5_parse_userpass, msg, sizeof(msg), &up);
    assert_int_equal(up.ulen, 4);
    assert_int_equal(up.plen, 6);
    assert_string_equal(up.user, "user");
    assert_string_equal(up.pass, "secret");
}

static void test_userpass_empty(void **state)
{
    const uint8_t msg[] = {0x01, 0x00, 0x00};
    const uint8_t msg2[] = {0x01, 0x00, 0x02, 'p', 'w'};
    struct socks5_userpass up;
    (void)state;
    CHECK_PREFIXES(socks5_parse_userpass, msg, sizeof(msg), &up);
    assert_int_equal(up.ulen, 0);
    assert_int_equal(up.plen, 0);
    assert_string_equal(up.user, "");
    assert_string_equal(up.pass, "");
    CHECK_PREFIXES(socks5_parse_userpass, msg2, sizeof(msg2), &up);
    assert_string_equal(up.user, "");
    assert_string_equal(up.pass, "pw");
}

static void test_userpass_255(void **state)
{
    uint8_t msg[3 + 255 + 255];
    struct socks5_userpass up;
    (void)state;
    msg[0] = 0x01;
    msg[1] = 255;
    memset(msg + 2, 'u', 255);
    msg[2 + 255] = 255;
    memset(msg + 3 + 255, 'p', 255);
    CHECK_PREFIXES(socks5_parse_userpass, msg, sizeof(msg), &up);
    assert_int_equal(up.ulen, 255);
    assert_int_equal(up.plen, 255);
    assert_int_equal(strlen(up.user), 255);
    assert_int_equal(strlen(up.pass), 255);
    assert_int_equal(up.user[254], 'u');
    assert_int_equal(up.pass[254], 'p');
}

static void test_userpass_bad(void **state)
{
    struct socks5_userpass up;
    size_t used;
    (void)state;
    /* The sub-negotiation version is 1, not 5. */
    assert_int_equal(socks5_parse_userpass((const uint8_t *)"\x05\x01u\x01p", 5, &used, &up),
                     TD_EPROTO);
    /* NULs inside the credentials. */
    assert_int_equal(socks5_parse_userpass((const uint8_t *)"\x01\x02u\0\x01p", 6, &used, &up),
                     TD_EPROTO);
    assert_int_equal(socks5_parse_userpass((const uint8_t *)"\x01\x01u\x02p\0", 6, &used, &up),
                     TD_EPROTO);
}

static void test_request_ipv4(void **state)
{
    const uint8_t msg[] = {0x05, 0x01, 0x00, 0x01, 192, 0, 2, 1, 0x01, 0xbb};
    struct socks5_request r;
    (void)state;
    CHECK_PREFIXES(socks5_parse_request, msg, sizeof(msg), &r);
    assert_int_equal(r.cmd, SOCKS5_CMD_CONNECT);
    assert_int_equal(r.addr.atyp, SOCKS5_ATYP_IPV4);
    assert_memory_equal(r.addr.ip, "\xc0\x00\x02\x01", 4);
    assert_int_equal(r.addr.port, 443);
}

static void test_request_ipv6(void **state)
{
    const uint8_t msg[] = {0x05, 0x03, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8, 0, 0,    0,
                           0,    0,    0,    0,    0,    0,    0,    0,    1, 0xff, 0xff};
    struct socks5_request r;
    (void)state;
    CHECK_PREFIXES(socks5_parse_request, msg, sizeof(msg), &r);
    assert_int_equal(r.cmd, SOCKS5_CMD_UDP_ASSOCIATE);
    assert_int_equal(r.addr.atyp, SOCKS5_ATYP_IPV6);
    assert_memory_equal(r.addr.ip, msg + 4, 16);
    assert_int_equal(r.addr.port, 65535);
}

static void test_request_domain(void **state)
{
    const uint8_t msg[] = {0x05, 0x01, 0x00, 0x03, 11,  'e', 'x', 'a',  'm',
                           'p',  'l',  'e',  '.',  'c', 'o', 'm', 0x00, 0x50};
    struct socks5_request r;
    (void)state;
    CHECK_PREFIXES(socks5_parse_request, msg, sizeof(msg), &r);
    assert_int_equal(r.addr.atyp, SOCKS5_ATYP_DOMAIN);
    assert_string_equal(r.addr.host, "example.com");
    assert_int_equal(r.addr.port, 80);
}

static void test_request_domain_255(void **state)
{
    uint8_t msg[4 + 1 + 255 + 2];
    struct socks5_request r;
    (void)state;
    memcpy(msg, "\x05\x01\x00\x03", 4);
    msg[4] = 255;
    memset(msg + 5, 'a', 255);
    msg[260] = 0x12;
    msg[261] = 0x34;
    CHECK_PREFIXES(socks5_parse_request, msg, sizeof(msg), &r);
    assert_int_equal(strlen(r.addr.host), 255);
    assert_int_equal(r.addr.port, 0x1234);
    assert_int_equal(sizeof(msg), SOCKS5_MAX_MSG);
}

static void test_request_rsv_and_cmd(void **state)
{
    /* RSV is ignored; an unknown CMD parses (the caller answers 0x07). */
    const uint8_t msg[] = {0x05, 0x09, 0xff, 0x01, 10, 0, 0, 1, 0, 22};
    struct socks5_request r;
    size_t used;
    (void)state;
    assert_int_equal(socks5_parse_request(msg, sizeof(msg), &used, &r), 0);
    assert_int_equal(r.cmd, 0x09);
    assert_int_equal(r.addr.port, 22);
}

static void test_request_bad(void **state)
{
    struct socks5_request r;
    size_t used;
    (void)state;
    /* Wrong version, from the first byte. */
    assert_int_equal(socks5_parse_request((const uint8_t *)"\x04", 1, &used, &r), TD_EPROTO);
    /* Unknown ATYP: reported as soon as the ATYP byte is there. */
    assert_int_equal(socks5_parse_request((const uint8_t *)"\x05\x01\x00\x02", 4, &used, &r),
                     TD_EUNSUPPORTED);
    assert_int_equal(socks5_parse_request((const uint8_t *)"\x05\x01\x00\x00\x01\x02\x03\x04\x00"
                                                           "\x50",
                                          10, &used, &r),
                     TD_EUNSUPPORTED);
    /* A zero-length domain. */
    assert_int_equal(
        socks5_parse_request((const uint8_t *)"\x05\x01\x00\x03\x00\x00\x50", 7, &used, &r),
        TD_EPROTO);
    assert_int_equal(socks5_parse_request((const uint8_t *)"\x05\x01\x00\x03\x00", 5, &used, &r),
                     TD_EPROTO);
    /* A NUL inside the domain. */
    assert_int_equal(socks5_parse_request((const uint8_t *)"\x05\x01\x00\x03\x03"
                                                           "a\0b\x00\x50",
                                          10, &used, &r),
                     TD_EPROTO);
}

static void test_udp_header(void **state)
{
    const uint8_t msg[] = {0x00, 0x00, 0x00, 0x01, 8, 8, 8, 8, 0x00, 0x35};
    const uint8_t frag[] = {0x00, 0x00, 0x07, 0x03, 3, 'a', '.', 'b', 0x00, 0x35};
    const uint8_t dgram[] = {0x00, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0x00, 0x35, 'h', 'i'};
    struct socks5_udp_header h;
    size_t used;
    (void)state;
    CHECK_PREFIXES(socks5_parse_udp_header, msg, sizeof(msg), &h);
    assert_int_equal(h.frag, 0);
    assert_int_equal(h.addr.atyp, SOCKS5_ATYP_IPV4);
    assert_memory_equal(h.addr.ip, "\x08\x08\x08\x08", 4);
    assert_int_equal(h.addr.port, 53);

    CHECK_PREFIXES(socks5_parse_udp_header, frag, sizeof(frag), &h);
    assert_int_equal(h.frag, 7);
    assert_string_equal(h.addr.host, "a.b");

    /* The payload follows the header. */
    assert_int_equal(socks5_parse_udp_header(dgram, sizeof(dgram), &used, &h), 0);
    assert_int_equal(used, 10);
    assert_memory_equal(dgram + used, "hi", 2);

    /* Unknown ATYP and a bad domain. */
    assert_int_equal(socks5_parse_udp_header((const uint8_t *)"\x00\x00\x00\x05", 4, &used, &h),
                     TD_EUNSUPPORTED);
    assert_int_equal(
        socks5_parse_udp_header((const uint8_t *)"\x00\x00\x00\x03\x00\x00\x35", 7, &used, &h),
        TD_EPROTO);
}

static void test_encoders_simple(void **state)
{
    uint8_t out[SOCKS5_MAX_MSG];
    (void)state;
    assert_int_equal(socks5_encode_method_choice(out, SOCKS5_METHOD_USERPASS), 2);
    assert_memory_equal(out, "\x05\x02", 2);
    assert_int_equal(socks5_encode_method_choice(out, SOCKS5_METHOD_NO_ACCEPTABLE), 2);
    assert_memory_equal(out, "\x05\xff", 2);
    assert_int_equal(socks5_encode_auth_status(out, true), 2);
    assert_memory_equal(out, "\x01\x00", 2);
    assert_int_equal(socks5_encode_auth_status(out, false), 2);
    assert_int_equal(out[0], 0x01);
    assert_int_not_equal(out[1], 0x00);
}

static void test_encode_reply(void **state)
{
    uint8_t out[SOCKS5_MAX_MSG];
    struct socks5_addr a;
    (void)state;
    /* NULL bnd is 0.0.0.0:0. */
    assert_int_equal(socks5_encode_reply(out, SOCKS5_REP_CONN_REFUSED, NULL), 10);
    assert_memory_equal(out, "\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00", 10);

    memset(&a, 0, sizeof(a));
    a.atyp = SOCKS5_ATYP_IPV4;
    memcpy(a.ip, "\x7f\x00\x00\x01", 4);
    a.port = 0x1f90;
    assert_int_equal(socks5_encode_reply(out, SOCKS5_REP_SUCCEEDED, &a), 10);
    assert_memory_equal(out, "\x05\x00\x00\x01\x7f\x00\x00\x01\x1f\x90", 10);

    memset(&a, 0, sizeof(a));
    a.atyp = SOCKS5_ATYP_IPV6;
    a.ip[15] = 1;
    a.port = 1;
    assert_int_equal(socks5_encode_reply(out, SOCKS5_REP_SUCCEEDED, &a), 22);
    assert_int_equal(out[3], 0x04);
    assert_int_equal(out[19], 1);
    assert_int_equal(out[20], 0);
    assert_int_equal(out[21], 1);

    memset(&a, 0, sizeof(a));
    a.atyp = SOCKS5_ATYP_DOMAIN;
    memcpy(a.host, "h.example", 10);
    a.port = 443;
    assert_int_equal(socks5_encode_reply(out, SOCKS5_REP_SUCCEEDED, &a), 3 + 2 + 9 + 2);
    assert_memory_equal(out, "\x05\x00\x00\x03\x09h.example\x01\xbb", 16);

    /* Unknown ATYP encodes as 0.0.0.0:0 so the reply stays well formed. */
    memset(&a, 0, sizeof(a));
    a.atyp = 0x09;
    a.port = 99;
    assert_int_equal(socks5_encode_reply(out, SOCKS5_REP_GENERAL_FAILURE, &a), 10);
    assert_memory_equal(out, "\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00", 10);
}

/* Field by field: struct padding is not guaranteed to be copied. */
static void assert_addr_equal(const struct socks5_addr *a, const struct socks5_addr *b)
{
    assert_int_equal(a->atyp, b->atyp);
    assert_int_equal(a->port, b->port);
    if (a->atyp == SOCKS5_ATYP_DOMAIN)
        assert_string_equal(a->host, b->host);
    else
        assert_memory_equal(a->ip, b->ip, a->atyp == SOCKS5_ATYP_IPV4 ? 4 : 16);
}

static void test_roundtrip(void **state)
{
    uint8_t out[SOCKS5_MAX_MSG + 16];
    struct socks5_addr addrs[3];
    (void)state;
    memset(addrs, 0, sizeof(addrs));
    addrs[0].atyp = SOCKS5_ATYP_IPV4;
    memcpy(addrs[0].ip, "\x01\x02\x03\x04", 4);
    addrs[0].port = 1;
    addrs[1].atyp = SOCKS5_ATYP_IPV6;
    memcpy(addrs[1].ip, "\x20\x01\x0d\xb8\x00\x01\x00\x02\x00\x03\x00\x04\x00\x05\x00\x06", 16);
    addrs[1].port = 65535;
    addrs[2].atyp = SOCKS5_ATYP_DOMAIN;
    memset(addrs[2].host, 'z', 255);
    addrs[2].port = 8080;

    for (size_t i = 0; i < 3; i++) {
        struct socks5_request r;
        struct socks5_udp_header u;
        size_t n, used;

        n = socks5_encode_request(out, SOCKS5_CMD_CONNECT, &addrs[i]);
        assert_true(n <= SOCKS5_MAX_MSG);
        CHECK_PREFIXES(socks5_parse_request, out, n, &r);
        assert_int_equal(r.cmd, SOCKS5_CMD_CONNECT);
        assert_addr_equal(&r.addr, &addrs[i]);

        n = socks5_encode_udp_header(out, &addrs[i]);
        memcpy(out + n, "payload", 7);
        assert_int_equal(socks5_parse_udp_header(out, n + 7, &used, &u), 0);
        assert_int_equal(used, n);
        assert_int_equal(u.frag, 0);
        assert_addr_equal(&u.addr, &addrs[i]);

        /* A reply has the request's layout. */
        n = socks5_encode_reply(out, SOCKS5_REP_SUCCEEDED, &addrs[i]);
        assert_int_equal(socks5_parse_request(out, n, &used, &r), 0);
        assert_int_equal(used, n);
        assert_int_equal(r.cmd, SOCKS5_REP_SUCCEEDED);
        assert_addr_equal(&r.addr, &addrs[i]);
    }
}

static void test_rep_str(void **state)
{
    (void)state;
    assert_string_equal(socks5_rep_str(SOCKS5_REP_SUCCEEDED), "succeeded");
    assert_string_equal(socks5_rep_str(SOCKS5_REP_ATYP_NOT_SUPPORTED),
                        "address type not supported");
    for (int i = 0; i < 256; i++)
        assert_non_null(socks5_rep_str((uint8_t)i));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting),           cmocka_unit_test(test_greeting_255_methods),
        cmocka_unit_test(test_greeting_bad),       cmocka_unit_test(test_userpass),
        cmocka_unit_test(test_userpass_empty),     cmocka_unit_test(test_userpass_255),
        cmocka_unit_test(test_userpass_bad),       cmocka_unit_test(test_request_ipv4),
        cmocka_unit_test(test_request_ipv6),       cmocka_unit_test(test_request_domain),
        cmocka_unit_test(test_request_domain_255), cmocka_unit_test(test_request_rsv_and_cmd),
        cmocka_unit_test(test_request_bad),        cmocka_unit_test(test_udp_header),
        cmocka_unit_test(test_encoders_simple),    cmocka_unit_test(test_encode_reply),
        cmocka_unit_test(test_roundtrip),          cmocka_unit_test(test_rep_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
