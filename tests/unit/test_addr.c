/* Address, duration and size syntax (common/addr.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/addr.h"
#include "util/error.h"

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

static int cidr(const char *s, struct td_cidr *c, const char **why)
{
    return td_cidr_parse(s, strlen(s), c, why);
}

static void test_cidr_parse(void **state)
{
    struct td_cidr c;
    const uint8_t ten[4] = {10, 0, 0, 0};
    uint8_t v6[16] = {0};

    (void)state;
    assert_int_equal(cidr("10.0.0.0/8", &c, NULL), 0);
    assert_int_equal(c.family, 4);
    assert_int_equal(c.prefix, 8);
    assert_memory_equal(c.ip, ten, 4);

    /* Host bits beyond the prefix are masked off. */
    assert_int_equal(cidr("10.1.2.3/8", &c, NULL), 0);
    assert_int_equal(c.prefix, 8);
    assert_memory_equal(c.ip, ten, 4);
    assert_int_equal(cidr("192.168.255.255/17", &c, NULL), 0);
    assert_int_equal(c.ip[2], 0x80);
    assert_int_equal(c.ip[3], 0);

    /* A bare address is a single host. */
    assert_int_equal(cidr("127.0.0.1", &c, NULL), 0);
    assert_int_equal(c.family, 4);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(c.ip[3], 1);
    assert_int_equal(cidr("::1", &c, NULL), 0);
    assert_int_equal(c.family, 6);
    assert_int_equal(c.prefix, 128);
    v6[15] = 1;
    assert_memory_equal(c.ip, v6, 16);

    assert_int_equal(cidr("::1/128", &c, NULL), 0);
    assert_int_equal(c.prefix, 128);
    assert_memory_equal(c.ip, v6, 16);
    assert_int_equal(cidr("fe80::/10", &c, NULL), 0);
    assert_int_equal(c.family, 6);
    assert_int_equal(c.prefix, 10);
    assert_int_equal(c.ip[0], 0xfe);
    assert_int_equal(c.ip[1], 0x80);
    assert_int_equal(cidr("febf:ffff::1/10", &c, NULL), 0);
    assert_int_equal(c.ip[0], 0xfe);
    assert_int_equal(c.ip[1], 0x80);
    memset(v6, 0, sizeof(v6));
    assert_memory_equal(c.ip + 2, v6, 14);

    assert_int_equal(cidr("0.0.0.0/0", &c, NULL), 0);
    assert_int_equal(c.prefix, 0);
    assert_int_equal(cidr("1.2.3.4/0", &c, NULL), 0);
    assert_memory_equal(c.ip, v6, 16);
    assert_int_equal(cidr("::/0", &c, NULL), 0);
    assert_int_equal(c.family, 6);
    assert_int_equal(c.prefix, 0);
    assert_int_equal(cidr("1.2.3.4/32", &c, NULL), 0);
    assert_int_equal(c.ip[3], 4);
    assert_int_equal(cidr("::ffff:10.0.0.0/104", &c, NULL), 0);
    assert_int_equal(c.family, 6);
    assert_int_equal(c.prefix, 104);
    /* The length bounds the string, not a NUL. */
    assert_int_equal(td_cidr_parse("10.0.0.0/8junk", 10, &c, NULL), 0);
    assert_int_equal(c.prefix, 8);
}

static void test_cidr_parse_bad(void **state)
{
    static const struct {
        const char *in;
        const char *why;
    } bad[] = {
        {"", "empty address range"},
        {"/8", "missing address before '/'"},
        {"10.0.0.0/", "missing prefix length after '/'"},
        {"10.0.0.0/33", "prefix length must be 0-32"},
        {"10.0.0.0/1000", "prefix length must be 0-32"},
        {"::/129", "prefix length must be 0-128"},
        {"::/9999", "prefix length must be 0-128"},
        {"10.0.0.0/08", "prefix length must not have leading zeros"},
        {"10.0.0.0/-1", "prefix length is not a number"},
        {"10.0.0.0/8/8", "prefix length is not a number"},
        {"10.0.0.0/x", "prefix length is not a number"},
        {"10.0.0.0/+8", "prefix length is not a number"},
        {"10.0.0/8", "invalid IPv4 address"},
        {"10.0.0.256", "invalid IPv4 address"},
        {"010.0.0.0/8", "invalid IPv4 address"},
        {"example.com/8", "expected an IP address, not a host name"},
        {"any", "expected an IP address, not a host name"},
        {"10.0.0.0x/8", "expected an IP address, not a host name"},
        {"fe80:::/10", "invalid IPv6 address"},
        {"[::1]/128", "invalid IPv6 address"},
        {"fe80::%eth0/10", "invalid IPv6 address"},
        {"10.0.0.0 /8", "invalid character in address range"},
        {" 10.0.0.0/8", "invalid character in address range"},
        {"10.0.0.0/8\n", "invalid character in address range"},
    };
    struct td_cidr c;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        int rc = cidr(bad[i].in, &c, &why);
        if (rc != TD_EINVAL || !why || strcmp(why, bad[i].why) != 0)
            fail_msg("'%s': rc %d why '%s', expected '%s'", bad[i].in, rc, why ? why : "(null)",
                     bad[i].why);
    }
    assert_int_equal(td_cidr_parse(NULL, 0, &c, NULL), TD_EINVAL);
    assert_int_equal(td_cidr_parse("10.0.0.0/8", 10, NULL, NULL), TD_EINVAL);
    /* An embedded NUL is a bad character, not the end. */
    assert_int_equal(td_cidr_parse("10.0.0.0/8\0", 11, &c, NULL), TD_EINVAL);
}

static bool match(const char *range, const char *addr)
{
    struct td_cidr c;
    uint8_t ip[16];

    assert_int_equal(cidr(range, &c, NULL), 0);
    if (strchr(addr, ':')) {
        assert_int_equal(td_ipv6_parse(addr, strlen(addr), ip), 0);
        return td_cidr_match(&c, 6, ip);
    }
    assert_int_equal(td_ipv4_parse(addr, strlen(addr), ip), 0);
    return td_cidr_match(&c, 4, ip);
}

static void test_cidr_match(void **state)
{
    struct td_cidr c;
    const uint8_t ip4[4] = {10, 0, 0, 1};

    (void)state;
    /* IPv4. */
    assert_true(match("10.0.0.0/8", "10.0.0.1"));
    assert_true(match("10.0.0.0/8", "10.255.255.255"));
    assert_false(match("10.0.0.0/8", "11.0.0.0"));
    assert_false(match("10.0.0.0/8", "9.255.255.255"));
    assert_true(match("172.16.0.0/12", "172.31.1.1"));
    assert_false(match("172.16.0.0/12", "172.32.0.1"));
    assert_true(match("192.168.1.128/25", "192.168.1.200"));
    assert_false(match("192.168.1.128/25", "192.168.1.127"));
    /* /32 and bare addresses are one host. */
    assert_true(match("1.2.3.4/32", "1.2.3.4"));
    assert_false(match("1.2.3.4/32", "1.2.3.5"));
    assert_true(match("1.2.3.4", "1.2.3.4"));
    assert_false(match("1.2.3.4", "1.2.3.0"));
    /* /0 matches every address of its own family, and only those. */
    assert_true(match("0.0.0.0/0", "0.0.0.0"));
    assert_true(match("0.0.0.0/0", "255.255.255.255"));
    assert_false(match("0.0.0.0/0", "::1"));
    assert_false(match("0.0.0.0/0", "2001:db8::1"));
    assert_true(match("::/0", "::"));
    assert_true(match("::/0", "2001:db8::1"));
    assert_false(match("::/0", "127.0.0.1"));

    /* IPv6. */
    assert_true(match("::1/128", "::1"));
    assert_false(match("::1/128", "::2"));
    assert_true(match("::1", "::1"));
    assert_true(match("fe80::/10", "fe80::1"));
    assert_true(match("fe80::/10", "febf:ffff::1"));
    assert_false(match("fe80::/10", "fec0::1"));
    assert_true(match("fc00::/7", "fd12:3456::1"));
    assert_false(match("fc00::/7", "fe00::1"));
    assert_true(match("2001:db8::/32", "2001:db8:ffff::1"));
    assert_false(match("2001:db8::/32", "2001:db9::1"));
    assert_true(match("2001:db8::1:0/127", "2001:db8::1:1"));
    assert_false(match("2001:db8::1:0/127", "2001:db8::1:2"));

    /* IPv4-mapped IPv6 addresses meet the IPv4 rules as IPv4... */
    assert_true(match("127.0.0.0/8", "::ffff:127.0.0.1"));
    assert_true(match("10.0.0.0/8", "::ffff:a00:1"));
    assert_false(match("10.0.0.0/8", "::ffff:b00:1"));
    assert_true(match("1.2.3.4/32", "::ffff:1.2.3.4"));
    assert_true(match("0.0.0.0/0", "::ffff:8.8.8.8"));
    /* ...and the IPv6 rules literally. */
    assert_true(match("::ffff:0:0/96", "::ffff:127.0.0.1"));
    assert_true(match("::ffff:127.0.0.0/104", "::ffff:127.0.0.1"));
    assert_false(match("::ffff:127.0.0.0/104", "::ffff:128.0.0.1"));
    assert_true(match("::/0", "::ffff:127.0.0.1"));
    assert_false(match("::1/128", "::ffff:0.0.0.1"));
    /* An IPv4 address does not meet IPv6 rules, even mapped ones. */
    assert_false(match("::ffff:0:0/96", "127.0.0.1"));
    /* Only ::ffff:0:0/96 is unwrapped: not IPv4-compatible or NAT64. */
    assert_false(match("127.0.0.0/8", "::127.0.0.1"));
    assert_false(match("127.0.0.0/8", "64:ff9b::127.0.0.1"));
    assert_false(match("127.0.0.0/8", "::fffe:127.0.0.1"));

    /* Bad arguments never match. */
    assert_int_equal(cidr("0.0.0.0/0", &c, NULL), 0);
    assert_false(td_cidr_match(NULL, 4, ip4));
    assert_false(td_cidr_match(&c, 4, NULL));
    assert_false(td_cidr_match(&c, 0, ip4));
    assert_false(td_cidr_match(&c, 5, ip4));
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
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_cidr_parse_bad),
        cmocka_unit_test(test_cidr_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
