/* Fuzz the SOCKS5 parsers: each one on the whole input, then the three
 * handshake messages one after the other as a server would see them.  What
 * parses is encoded again and must parse back to the same thing, and one
 * byte less must always be "need more". */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/error.h"
#include "proto/socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static bool addr_equal(const struct socks5_addr *a, const struct socks5_addr *b)
{
    if (a->atyp != b->atyp || a->port != b->port)
        return false;
    switch (a->atyp) {
    case SOCKS5_ATYP_IPV4:
        return memcmp(a->ip, b->ip, 4) == 0;
    case SOCKS5_ATYP_IPV6:
        return memcmp(a->ip, b->ip, 16) == 0;
    case SOCKS5_ATYP_DOMAIN:
        return strcmp(a->host, b->host) == 0;
    default:
        return false;
    }
}

static bool rc_known(int rc)
{
    return rc == 0 || rc == TD_EAGAIN || rc == TD_EPROTO || rc == TD_EUNSUPPORTED;
}

static void check_greeting(const uint8_t *data, size_t size, size_t *used_out)
{
    struct socks5_greeting g;
    size_t used = 0, u2;
    int rc = socks5_parse_greeting(data, size, &used, &g);

    CHECK(rc_known(rc));
    *used_out = 0;
    if (rc != 0)
        return;
    CHECK(used >= 3 && used <= size && used == 2u + g.nmethods);
    CHECK(memcmp(g.methods, data + 2, g.nmethods) == 0);
    for (size_t i = 0; i < g.nmethods; i++)
        CHECK(socks5_greeting_offers(&g, g.methods[i]));
    CHECK(socks5_parse_greeting(data, used - 1, &u2, &g) == TD_EAGAIN);
    *used_out = used;
}

static void check_userpass(const uint8_t *data, size_t size, size_t *used_out)
{
    struct socks5_userpass up;
    uint8_t enc[3 + 255 + 255];
    size_t used = 0, u2, n = 0;
    int rc = socks5_parse_userpass(data, size, &used, &up);

    CHECK(rc_known(rc));
    *used_out = 0;
    if (rc != 0)
        return;
    CHECK(used <= size && used == 3u + up.ulen + up.plen);
    CHECK(strlen(up.user) == up.ulen && strlen(up.pass) == up.plen);
    enc[n++] = SOCKS5_AUTH_VERSION;
    enc[n++] = up.ulen;
    memcpy(enc + n, up.user, up.ulen);
    n += up.ulen;
    enc[n++] = up.plen;
    memcpy(enc + n, up.pass, up.plen);
    n += up.plen;
    CHECK(n == used && memcmp(enc, data, n) == 0);
    CHECK(socks5_parse_userpass(data, used - 1, &u2, &up) == TD_EAGAIN);
    *used_out = used;
}

static void check_request(const uint8_t *data, size_t size, size_t *used_out)
{
    struct socks5_request r, r2;
    uint8_t enc[SOCKS5_MAX_MSG];
    size_t used = 0, u2 = 0, n;
    int rc = socks5_parse_request(data, size, &used, &r);

    CHECK(rc_known(rc));
    *used_out = 0;
    if (rc != 0)
        return;
    CHECK(used <= size && used <= SOCKS5_MAX_MSG);
    if (r.addr.atyp == SOCKS5_ATYP_DOMAIN)
        CHECK(strlen(r.addr.host) > 0 && strlen(r.addr.host) == data[4]);
    CHECK(socks5_parse_request(data, used - 1, &u2, &r2) == TD_EAGAIN);

    /* Encoded again, it is the input with RSV zeroed. */
    n = socks5_encode_request(enc, r.cmd, &r.addr);
    CHECK(n == used);
    CHECK(memcmp(enc, data, 2) == 0 && enc[2] == 0 && memcmp(enc + 3, data + 3, n - 3) == 0);
    CHECK(socks5_parse_request(enc, n, &u2, &r2) == 0 && u2 == n);
    CHECK(r2.cmd == r.cmd && addr_equal(&r.addr, &r2.addr));

    /* A reply carrying the same address has the same layout. */
    n = socks5_encode_reply(enc, SOCKS5_REP_SUCCEEDED, &r.addr);
    CHECK(n == used);
    CHECK(socks5_parse_request(enc, n, &u2, &r2) == 0 && u2 == n);
    CHECK(addr_equal(&r.addr, &r2.addr));
    *used_out = used;
}

static void check_udp(const uint8_t *data, size_t size)
{
    struct socks5_udp_header h, h2;
    uint8_t enc[SOCKS5_MAX_MSG];
    size_t used = 0, u2 = 0, n;
    int rc = socks5_parse_udp_header(data, size, &used, &h);

    CHECK(rc_known(rc));
    if (rc != 0)
        return;
    CHECK(used <= size && h.frag == data[2]);
    CHECK(socks5_parse_udp_header(data, used - 1, &u2, &h2) == TD_EAGAIN);
    n = socks5_encode_udp_header(enc, &h.addr);
    CHECK(n == used);
    CHECK(memcmp(enc + 3, data + 3, n - 3) == 0);
    CHECK(socks5_parse_udp_header(enc, n, &u2, &h2) == 0 && u2 == n);
    CHECK(h2.frag == 0 && addr_equal(&h.addr, &h2.addr));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t used, off = 0;

    check_greeting(data, size, &used);
    check_userpass(data, size, &used);
    check_request(data, size, &used);
    check_udp(data, size);

    /* A server's view: greeting, then (if offered) username/password, then
     * the request, each starting where the last one ended. */
    check_greeting(data, size, &used);
    if (used == 0)
        return 0;
    off += used;
    if (data[2] == SOCKS5_METHOD_USERPASS) {
        check_userpass(data + off, size - off, &used);
        if (used == 0)
            return 0;
        off += used;
    }
    check_request(data + off, size - off, &used);
    return 0;
}
