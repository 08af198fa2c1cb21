/* Address, duration and size syntax.  Everything here is a pure function of
 * its input: no resolver, no sockets, no locale, so that the same text gives
 * the same answer on every platform and under the fuzzer. */
#include "util/addr.h"

#include "util/error.h"

#include <stdio.h>
#include <string.h>

static bool addr_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int addr_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int td_ipv4_parse(const char *s, size_t len, uint8_t out[4])
{
    size_t i = 0;

    if (!s || !out)
        return TD_EINVAL;
    for (int part = 0; part < 4; part++) {
        unsigned v = 0;
        size_t start = i;

        if (part > 0) {
            if (i >= len || s[i] != '.')
                return TD_EINVAL;
            start = ++i;
        }
        while (i < len && addr_is_digit(s[i]) && i - start < 3) {
            v = v * 10 + (unsigned)(s[i] - '0');
            i++;
        }
        /* Leading zeros are refused because inet_aton() reads them as octal,
         * and "010.0.0.1" meaning two different hosts is a trap. */
        if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
            return TD_EINVAL;
        out[part] = (uint8_t)v;
    }
    return i == len ? 0 : TD_EINVAL;
}

int td_ipv6_parse(const char *s, size_t len, uint8_t out[16])
{
    uint8_t buf[16];
    size_t i = 0;
    int nbytes = 0; /* bytes written to buf */
    int gap = -1;   /* byte offset of "::", or -1 */

    if (!s || !out || len < 2)
        return TD_EINVAL;
    if (s[0] == ':') {
        if (s[1] != ':')
            return TD_EINVAL;
        gap = 0;
        i = 2;
        if (i == len)
            goto done;
    }
    for (;;) {
        size_t start = i;
        unsigned v = 0;

        while (i < len && i - start < 4 && addr_hex_value(s[i]) >= 0) {
            v = (v << 4) | (unsigned)addr_hex_value(s[i]);
            i++;
        }
        if (i == start)
            return TD_EINVAL;
        if (i < len && s[i] == '.') {
            /* A trailing dotted quad fills the last 32 bits. */
            if (nbytes > 12 || td_ipv4_parse(s + start, len - start, buf + nbytes) != 0)
                return TD_EINVAL;
            nbytes += 4;
            break;
        }
        if (nbytes > 14)
            return TD_EINVAL;
        buf[nbytes++] = (uint8_t)(v >> 8);
        buf[nbytes++] = (uint8_t)(v & 0xff);
        if (i == len)
            break;
        if (s[i] != ':')
            return TD_EINVAL;
        i++;
        if (i < len && s[i] == ':') {
            if (gap >= 0)
                return TD_EINVAL;
            gap = nbytes;
            i++;
            if (i == len)
                break;
        } else if (i == len) {
            return TD_EINVAL; /* a single trailing ':' */
        }
    }
done:
    if (gap >= 0) {
        int tail = nbytes - gap;
        if (nbytes > 14)
            return TD_EINVAL; /* "::" must stand for at least one group */
        memmove(buf + 16 - tail, buf + gap, (size_t)tail);
        memset(buf + gap, 0, (size_t)(16 - nbytes));
    } else if (nbytes != 16) {
        return TD_EINVAL;
    }
    memcpy(out, buf, 16);
    return 0;
}

bool td_hostname_valid(const char *s, size_t len)
{
    size_t label = 0;

    if (!s || len == 0)
        return false;
    /* One trailing dot (a fully qualified name) is allowed. */
    if (s[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || addr_is_digit(c) || c == '-' ||
              c == '_'))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 && s[len - 1] != '-';
}

static bool addr_all_digits_and_dots(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!addr_is_digit(s[i]) && s[i] != '.')
            return false;
    return true;
}

static int addr_fail(const char **why, const char *reason)
{
    if (why)
        *why = reason;
    return TD_EINVAL;
}

static int addr_port_parse(const char *s, size_t len, bool allow_port0, uint16_t *out,
                           const char **why)
{
    unsigned v = 0;

    if (len == 0)
        return addr_fail(why, "missing port");
    for (size_t i = 0; i < len; i++)
        if (!addr_is_digit(s[i]))
            return addr_fail(why, "port is not a number");
    if (len > 5)
        return addr_fail(why, "port must be at most 65535");
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (unsigned)(s[i] - '0');
    if (v > 65535)
        return addr_fail(why, "port must be at most 65535");
    if (v == 0 && !allow_port0)
        return addr_fail(why, "port 0 is not allowed here");
    *out = (uint16_t)v;
    return 0;
}

int td_hostport_parse(const char *s, size_t len, bool allow_port0, struct td_hostport *out,
                      const char **why)
{
    struct td_hostport hp;
    const char *host, *port;
    size_t hostlen, portlen;

    if (!s || !out)
        return addr_fail(why, "no address");
    memset(&hp, 0, sizeof(hp));
    if (len == 0)
        return addr_fail(why, "empty address");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f)
            return addr_fail(why, "invalid character in address");
    }

    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return addr_fail(why, "missing ']' after IPv6 address");
        host = s + 1;
        hostlen = (size_t)(close - host);
        if (hostlen == 0)
            return addr_fail(why, "empty host");
        if ((size_t)(close - s) + 1 == len)
            return addr_fail(why, "missing port");
        if (close[1] != ':')
            return addr_fail(why, "expected ':' after ']'");
        port = close + 2;
        portlen = len - (size_t)(port - s);
        if (td_ipv6_parse(host, hostlen, hp.ip) != 0)
            return addr_fail(why, "invalid IPv6 address");
        hp.kind = TD_HOST_IPV6;
    } else {
        const char *colon = NULL;
        for (size_t i = len; i > 0; i--) {
            if (s[i - 1] == ':') {
                colon = s + i - 1;
                break;
            }
        }
        if (!colon)
            return addr_fail(why, "missing port");
        host = s;
        hostlen = (size_t)(colon - s);
        port = colon + 1;
        portlen = len - hostlen - 1;
        if (memchr(host, ':', hostlen))
            return addr_fail(why, "IPv6 addresses must be written in brackets, as [::1]:port");
        if (memchr(host, '[', hostlen) || memchr(host, ']', hostlen))
            return addr_fail(why, "invalid character in host");
        if (hostlen == 0)
            return addr_fail(why, "empty host");
        if (td_ipv4_parse(host, hostlen, hp.ip) == 0) {
            hp.kind = TD_HOST_IPV4;
        } else if (addr_all_digits_and_dots(host, hostlen)) {
            return addr_fail(why, "invalid IPv4 address");
        } else if (hostlen > TD_HOST_MAX) {
            return addr_fail(why, "host name too long");
        } else if (!td_hostname_valid(host, hostlen)) {
            return addr_fail(why, "invalid host name");
        } else {
            hp.kind = TD_HOST_NAME;
        }
    }
    if (addr_port_parse(port, portlen, allow_port0, &hp.port, why) != 0)
        return TD_EINVAL;
    if (hostlen > TD_HOST_MAX)
        return addr_fail(why, "host name too long");
    memcpy(hp.host, host, hostlen);
    hp.host[hostlen] = '\0';
    *out = hp;
    return 0;
}

const char *td_hostport_format(char *out, size_t outsz, const char *host, uint16_t port)
{
    if (!out || outsz == 0)
        return out;
    if (!host)
        host = "";
    if (strchr(host, ':'))
        snprintf(out, outsz, "[%s]:%u", host, (unsigned)port);
    else
        snprintf(out, outsz, "%s:%u", host, (unsigned)port);
    return out;
}

/* RFC 5952: lowercase, no leading zeros, the longest run (of at least two)
 * zero groups shortened to "::", the first one on a tie, and IPv4-mapped
 * addresses written with a dotted quad. */
static void addr_ipv6_format(char *out, size_t outsz, const uint8_t ip[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char buf[64];
    size_t n = 0;
    int best = -1, bestlen = 0;
    uint16_t g[8];

    if (memcmp(ip, mapped, sizeof(mapped)) == 0) {
        snprintf(out, outsz, "::ffff:%u.%u.%u.%u", ip[12], ip[13], ip[14], ip[15]);
        return;
    }
    for (int i = 0; i < 8; i++)
        g[i] = (uint16_t)((ip[2 * i] << 8) | ip[2 * i + 1]);
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && g[j] == 0)
            j++;
        if (j - i > bestlen && j - i >= 2) {
            best = i;
            bestlen = j - i;
        }
        i = j > i ? j : i + 1;
    }
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "::");
            i += bestlen - 1;
            continue;
        }
        if (n > 0 && buf[n - 1] != ':')
            buf[n++] = ':';
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%x", (unsigned)g[i]);
    }
    buf[n] = '\0';
    snprintf(out, outsz, "%s", buf);
}

const char *td_ip_format(char *out, size_t outsz, const uint8_t *ip, size_t iplen)
{
    if (!out || outsz == 0)
        return out;
    if (ip && iplen == 4)
        snprintf(out, outsz, "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
    else if (ip && iplen == 16)
        addr_ipv6_format(out, outsz, ip);
    else
        snprintf(out, outsz, "?");
    return out;
}

int td_cidr_parse(const char *s, size_t len, struct td_cidr *out, const char **why)
{
    struct td_cidr c;
    const char *slash;
    size_t iplen;
    unsigned max, prefix;

    if (!s || !out)
        return addr_fail(why, "no address range");
    if (len == 0)
        return addr_fail(why, "empty address range");
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return addr_fail(why, "invalid character in address range");
    }
    memset(&c, 0, sizeof(c));
    slash = memchr(s, '/', len);
    iplen = slash ? (size_t)(slash - s) : len;
    if (iplen == 0)
        return addr_fail(why, "missing address before '/'");
    if (memchr(s, ':', iplen)) {
        if (td_ipv6_parse(s, iplen, c.ip) != 0)
            return addr_fail(why, "invalid IPv6 address");
        c.family = 6;
        max = 128;
    } else {
        if (!addr_all_digits_and_dots(s, iplen))
            return addr_fail(why, "expected an IP address, not a host name");
        if (td_ipv4_parse(s, iplen, c.ip) != 0)
            return addr_fail(why, "invalid IPv4 address");
        c.family = 4;
        max = 32;
    }
    prefix = max;
    if (slash) {
        const char *p = slash + 1;
        size_t plen = len - iplen - 1;

        if (plen == 0)
            return addr_fail(why, "missing prefix length after '/'");
        for (size_t i = 0; i < plen; i++)
            if (!addr_is_digit(p[i]))
                return addr_fail(why, "prefix length is not a number");
        /* "/08" is refused like "010.0.0.1": one spelling per value. */
        if (p[0] == '0' && plen > 1)
            return addr_fail(why, "prefix length must not have leading zeros");
        if (plen > 3)
            return addr_fail(why, c.family == 4 ? "prefix length must be 0-32"
                                                : "prefix length must be 0-128");
        prefix = 0;
        for (size_t i = 0; i < plen; i++)
            prefix = prefix * 10 + (unsigned)(p[i] - '0');
        if (prefix > max)
            return addr_fail(why, c.family == 4 ? "prefix length must be 0-32"
                                                : "prefix length must be 0-128");
    }
    c.prefix = (uint8_t)prefix;
    /* Clear the host bits, so that "10.1.2.3/8" is 10.0.0.0/8. */
    for (unsigned bit = prefix; bit < 128; bit++)
        c.ip[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
    *out = c;
    return 0;
}

/* Do the first bits of a and b agree? */
static bool addr_prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;

    if (full && memcmp(a, b, full) != 0)
        return false;
    if (rest) {
        uint8_t mask = (uint8_t)(0xffu << (8 - rest));
        if ((a[full] & mask) != (b[full] & mask))
            return false;
    }
    return true;
}

bool td_cidr_match(const struct td_cidr *c, int family, const uint8_t *ip)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (!c || !ip)
        return false;
    if (c->family == 4 && c->prefix <= 32) {
        if (family == 4)
            return addr_prefix_equal(c->ip, ip, c->prefix);
        if (family == 6 && memcmp(ip, mapped, sizeof(mapped)) == 0)
            return addr_prefix_equal(c->ip, ip + 12, c->prefix);
        return false;
    }
    if (c->family == 6 && c->prefix <= 128 && family == 6)
        return addr_prefix_equal(c->ip, ip, c->prefix);
    return false;
}

/* Read the leading decimal digits of s into *v.  Returns the number of digits
 * read, or -1 on overflow. */
static int addr_parse_digits(const char *s, uint64_t *v)
{
    int n = 0;

    *v = 0;
    while (addr_is_digit(s[n])) {
        uint64_t d = (uint64_t)(s[n] - '0');
        if (*v > (UINT64_MAX - d) / 10)
            return -1;
        *v = *v * 10 + d;
        n++;
    }
    return n;
}

struct addr_unit {
    const char *name;
    uint64_t mult;
};

static int addr_parse_with_units(const char *s, const struct addr_unit *units, size_t nunits,
                                 bool bare_ok, uint64_t *out)
{
    uint64_t v;
    int n;

    if (!s || !out)
        return TD_EINVAL;
    n = addr_parse_digits(s, &v);
    if (n <= 0)
        return TD_EINVAL;
    if (s[n] == '\0') {
        if (!bare_ok && v != 0)
            return TD_EINVAL;
        *out = v;
        return 0;
    }
    for (size_t i = 0; i < nunits; i++) {
        if (strcmp(s + n, units[i].name) == 0) {
            if (v > UINT64_MAX / units[i].mult)
                return TD_EINVAL;
            *out = v * units[i].mult;
            return 0;
        }
    }
    return TD_EINVAL;
}

int td_duration_parse(const char *s, uint64_t *ms_out)
{
    static const struct addr_unit units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}, {"d", 24 * 60 * 60 * 1000},
    };
    return addr_parse_with_units(s, units, sizeof(units) / sizeof(units[0]), false, ms_out);
}

int td_size_parse(const char *s, uint64_t *bytes_out)
{
    static const struct addr_unit units[] = {
        {"B", 1},     {"KiB", 1024},       {"MiB", 1024 * 1024},       {"GiB", 1024 * 1024 * 1024},
        {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"k", 1024},
        {"K", 1024},  {"M", 1024 * 1024},  {"G", 1024 * 1024 * 1024},
    };
    return addr_parse_with_units(s, units, sizeof(units) / sizeof(units[0]), true, bytes_out);
}
