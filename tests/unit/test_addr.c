/* Address, duration and size syntax (common/addr.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"
#include "error.h"

static int parse(const char *s, bool port0, struct td_hostport *hp, const char **why)
{
    return td_hostport_parse(s, strlen(s), port0, hp, why);
}

static void test_hostport_ipv4(void **state)
{
    struct td_hostport hp;
    const uint8_t ip[4] = {127, 0, 0, 1};

    (void)state;
    assert_int_equal(parse("127.0.0.1:1080", false, &hp, NULL), 0);
    assert_string_equal(hp.host, "127.0.0.1");
    assert_int_equal(hp.port, 1080);
    assert_int_equal(hp.kind, TD_HOST_IPV4);
    assert_memory_equal(hp.ip, ip, 4);

    assert_int_equal(parse("0.0.0.0:0", true, &hp, NULL), 0);
    assert_int_equal(hp.port, 0);
    assert_int_equal(parse("255.255.255.255:65535", false, &hp, NULL), 0);
    assert_int_equal(hp.port, 65535);
}

static void test_hostport_ipv6(void **state)
{
    struct td_hostport hp;
    uint8_t loop[16] = {0};

    (void)state;
    loop[15] = 1;
    assert_int_equal(parse("[::1]:2222", false, &hp, NULL), 0);
    assert_string_equal(hp.host, "::1");
    assert_int_equal(hp.port, 2222);
    assert_int_equal(hp.kind, TD_HOST_IPV6);
    assert_memory_equal(hp.ip, loop, 16);

    assert_int_equal(parse("[2001:db8::7]:443", false, &hp, NULL), 0);
    assert_int_equal(hp.ip[0], 0x20);
    assert_int_equal(hp.ip[1], 0x01);
    assert_int_equal(hp.ip[3], 0xb8);
    assert_int_equal(hp.ip[15], 7);
    assert_int_equal(parse("[::]:0", true, &hp, NULL), 0);
    assert_int_equal(parse("[::ffff:10.1.2.3]:80", false, &hp, NULL), 0);
    assert_int_equal(hp.ip[10], 0xff);
    assert_int_equal(hp.ip[12], 10);
    assert_int_equal(hp.ip[15], 3);
}

static void test_hostport_name(void **state)
{
    struct td_hostport hp;

    (void)state;
    assert_int_equal(parse("example.com:22", false, &hp, NULL), 0);
    assert_string_equal(hp.host, "example.com");
    assert_int_equal(hp.kind, TD_HOST_NAME);
    assert_int_equal(hp.port, 22);
    assert_int_equal(parse("localhost:8080", false, &hp, NULL), 0);
    assert_int_equal(parse("my_host.internal.:1", false, &hp, NULL), 0);
    assert_int_equal(parse("xn--bcher-kva.example:443", false, &hp, NULL), 0);
}

static void test_hostport_bad(void **state)
{
    static const struct {
        const char *in;
        bool port0;
        const char *why;
    } bad[] = {
        {"", true, "empty address"},
        {"127.0.0.1", true, "missing port"},
        {"127.0.0.1:", true, "missing port"},
        {"example.com", true, "missing port"},
        {":80", true, "empty host"},
        {"[]:80", true, "empty host"},
        {"127.0.0.1:65536", true, "port must be at most 65535"},
        {"127.0.0.1:99999999", true, "port must be at most 65535"},
        {"127.0.0.1:eighty", true, "port is not a number"},
        {"127.0.0.1:-1", true, "port is not a number"},
        {"127.0.0.1:0", false, "port 0 is not allowed here"},
        {"::1:80", true, "IPv6 addresses must be written in brackets, as [::1]:port"},
        {"[::1]", true, "missing port"},
        {"[::1]80", true, "expected ':' after ']'"},
        {"[::1:80", true, "missing ']' after IPv6 address"},
        {"[::g]:80", true, "invalid IPv6 address"},
        {"[1.2.3.4]:80", true, "invalid IPv6 address"},
        {"256.1.1.1:80", true, "invalid IPv4 address"},
        {"1.2.3:80", true, "invalid IPv4 address"},
        {"01.2.3.4:80", true, "invalid IPv4 address"},
        {"exa mple.com:80", true, "invalid character in address"},
        {"exa\tmple.com:80", true, "invalid character in address"},
        {"ex\xc3\xa9.com:80", true, "invalid character in address"},
        {"-bad.example:80", true, "invalid host name"},
        {"bad-.example:80", true, "invalid host name"},
        {"a..b:80", true, "invalid host name"},
        {"a/b:80", true, "invalid host name"},
        {"x[1]:80", true, "invalid character in host"},
    };
    struct td_hostport hp;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        int rc = parse(bad[i].in, bad[i].port0, &hp, &why);
        if (rc != TD_EINVAL || !why || strcmp(why, bad[i].why) != 0)
            fail_msg("'%s': rc %d why '%s', expected '%s'", bad[i].in, rc, why ? why : "(null)",
                     bad[i].why);
    }
    /* A NUL inside the given length is not the end of the string. */
    assert_int_equal(td_hostport_parse("a.b:80\0x", 8, true, &hp, NULL), TD_EINVAL);
    /* The length is honoured: only "a.b:80" is looked at. */
    assert_int_equal(td_hostport_parse("a.b:80xyz", 6, true, &hp, NULL), 0);
    assert_int_equal(hp.port, 80);
}

static void test_hostport_long_name(void **state)
{
    char buf[400];
    struct td_hostport hp;
    const char *why = NULL;

    (void)state;
    /* 63-byte labels are fine, 64 are not. */
    memset(buf, 'a', 63);
    memcpy(buf + 63, ".com:1", 7);
    assert_int_equal(parse(buf, false, &hp, NULL), 0);
    memset(buf, 'a', 64);
    memcpy(buf + 64, ".com:1", 7);
    assert_int_equal(parse(buf, false, &hp, &why), TD_EINVAL);
    assert_string_equal(why, "invalid host name");
    /* More than 255 bytes of host. */
    for (int i = 0; i < 300; i += 2)
        memcpy(buf + i, "a.", 2);
    memcpy(buf + 300, "b:1", 4);
    assert_int_equal(parse(buf, false, &hp, &why), TD_EINVAL);
    assert_string_equal(why, "host name too long");
}

static void test_ipv4_parse(void **state)
{
    uint8_t ip[4];

    (void)state;
    assert_int_equal(td_ipv4_parse("10.20.30.40", 11, ip), 0);
    assert_int_equal(ip[0], 10);
    assert_int_equal(ip[3], 40);
    assert_int_equal(td_ipv4_parse("0.0.0.0", 7, ip), 0);
    assert_int_equal(td_ipv4_parse("1.2.3.4.5", 9, ip), TD_EINVAL);
    assert_int_equal(td_ipv4_parse("1.2.3.", 6, ip), TD_EINVAL);
    assert_int_equal(td_ipv4_parse("1.2.3.256", 9, ip), TD_EINVAL);
    assert_int_equal(td_ipv4_parse("1.2.3.1000", 10, ip), TD_EINVAL);
    assert_int_equal(td_ipv4_parse("1.2.3.04", 8, ip), TD_EINVAL);
    assert_int_equal(td_ipv4_parse("127.1", 5, ip), TD_EINVAL);
    assert_int_equal(td_ipv4_parse("", 0, ip), TD_EINVAL);
}

static void test_ipv6_parse(void **state)
{
    static const char *const good[] = {
        "::",
        "::1",
        "1::",
        "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7::",
        "::2:3:4:5:6:7:8",
        "fe80::1:2",
        "FFFF:ffff::",
        "::ffff:1.2.3.4",
        "1:2:3:4:5:6:1.2.3.4",
    };
    static const char *const bad[] = {
        "",
        ":",
        ":::",
        "1:::2",
        "1::2::3",
        "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7",
        "12345::",
        "1:",
        ":1",
        "1:2:3:4:5:6:7:8::",
        "::1.2.3",
        "1:2:3:4:5:6:7:1.2.3.4",
        "g::",
        "::1%eth0",
        "1.2.3.4",
    };
    uint8_t ip[16];
    static const uint8_t want[16] = {0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8};
    static const uint8_t want2[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2};

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (td_ipv6_parse(good[i], strlen(good[i]), ip) != 0)
            fail_msg("'%s' should parse", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (td_ipv6_parse(bad[i], strlen(bad[i]), ip) == 0)
            fail_msg("'%s' should not parse", bad[i]);
    assert_int_equal(td_ipv6_parse("1:2:3:4:5:6:7:8", 15, ip), 0);
    assert_memory_equal(ip, want, 16);
    assert_int_equal(td_ipv6_parse("fe80::1:2", 9, ip), 0);
    assert_memory_equal(ip, want2, 16);
}

static void test_hostname_valid(void **state)
{
    (void)state;
    assert_true(td_hostname_valid("example.com", 11));
    assert_true(td_hostname_valid("a", 1));
    assert_true(td_hostname_valid("a-b.c_d", 7));
    assert_true(td_hostname_valid("example.com.", 12));
    assert_false(td_hostname_valid("", 0));
    assert_false(td_hostname_valid(".", 1));
    assert_false(td_hostname_valid(".a", 2));
    assert_false(td_hostname_valid("a..b", 4));
    assert_false(td_hostname_valid("a.b..", 5));
    assert_false(td_hostname_valid("-a", 2));
    assert_false(td_hostname_valid("a-", 2));
    assert_false(td_hostname_valid("a-.b", 4));
    assert_false(td_hostname_valid("a b", 3));
    assert_false(td_hostname_valid("a:b", 3));
    assert_false(td_hostname_valid("a\0b", 3));
}

static void test_format(void **state)
{
    char out[64];
    static const uint8_t v4[4] = {192, 0, 2, 1};
    static const uint8_t v6a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t v6b[16] = {0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1};
    static const uint8_t v6c[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1};
    static const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1};
    static const uint8_t zero[16] = {0};

    (void)state;
    assert_string_equal(td_hostport_format(out, sizeof(out), "example.com", 22), "example.com:22");
    assert_string_equal(td_hostport_format(out, sizeof(out), "::1", 80), "[::1]:80");
    assert_string_equal(td_hostport_format(out, sizeof(out), "10.0.0.1", 0), "10.0.0.1:0");
    assert_string_equal(td_hostport_format(out, 8, "example.com", 22), "example");

    assert_string_equal(td_ip_format(out, sizeof(out), v4, 4), "192.0.2.1");
    assert_string_equal(td_ip_format(out, sizeof(out), v6a, 16), "2001:db8::1");
    /* RFC 5952 4.2.3: the first of two equally long runs is shortened. */
    assert_string_equal(td_ip_format(out, sizeof(out), v6b, 16), "1::1:0:0:1:1");
    /* RFC 5952 4.2.2: a single zero group is not shortened. */
    assert_string_equal(td_ip_format(out, sizeof(out), v6c, 16), "2001:db8:0:1:1:1:1:1");
    assert_string_equal(td_ip_format(out, sizeof(out), mapped, 16), "::ffff:10.0.0.1");
    assert_string_equal(td_ip_format(out, sizeof(out), zero, 16), "::");
    assert_string_equal(td_ip_format(out, sizeof(out), v4, 5), "?");
}

static void test_duration(void **state)
{
    static const struct {
        const char *in;
        uint64_t ms;
    } good[] = {
        {"0", 0},        {"0s", 0},        {"250ms", 250}, {"10s", 10000},   {"5m", 300000},
        {"1h", 3600000}, {"1d", 86400000}, {"007s", 7000}, {"90m", 5400000},
    };
    static const char *const bad[] = {
        "",
        "s",
        "10",
        "-1s",
        "+1s",
        "1.5s",
        "10 s",
        " 10s",
        "10s ",
        "10sec",
        "1w",
        "1hm",
        "1h30m",
        "10S",
        "ms",
        "99999999999999999999s",
        "18446744073709551615d",
        "0x10s",
    };
    uint64_t ms;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (td_duration_parse(good[i].in, &ms) != 0)
            fail_msg("'%s' should parse", good[i].in);
        assert_int_equal(ms, good[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (td_duration_parse(bad[i], &ms) != TD_EINVAL)
            fail_msg("'%s' should not parse", bad[i]);
}

static void test_size(void **state)
{
    static const struct {
        const char *in;
        uint64_t n;
    } good[] = {
        {"0", 0},
        {"512", 512},
        {"512B", 512},
        {"64KiB", 65536},
        {"1MiB", 1048576},
        {"1GiB", 1073741824},
        {"2KB", 2000},
        {"3MB", 3000000},
        {"1GB", 1000000000},
        {"4k", 4096},
        {"4K", 4096},
        {"2M", 2097152},
        {"1G", 1073741824},
        {"17179869183GiB", 17179869183ull * 1073741824ull},
    };
    static const char *const bad[] = {
        "",    "KiB",   "-1",   "1.5MiB",          "1 MiB",          "1kib",
        "1mb", "1KiBs", "1TiB", "17179869183GiB0", "17179869184GiB", "99999999999999999999",
    };
    uint64_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (td_size_parse(good[i].in, &n) != 0)
            fail_msg("'%s' should parse", good[i].in);
        assert_int_equal(n, good[i].n);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (td_size_parse(bad[i], &n) != TD_EINVAL)
            fail_msg("'%s' should not parse", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostport_ipv4),
        cmocka_unit_test(test_hostport_ipv6),
        cmocka_unit_test(test_hostport_name),
        cmocka_unit_test(test_hostport_bad),
        cmocka_unit_test(test_hostport_long_name),
        cmocka_unit_test(test_ipv4_parse),
        cmocka_unit_test(test_ipv6_parse),
        cmocka_unit_test(test_hostname_valid),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
