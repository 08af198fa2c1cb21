/* SOCKS5 (RFC 1928) and username/password authentication (RFC 1929).
 *
 * Every parser checks each byte against len before reading it, and decides
 * as early as it can: a wrong version byte is reported as soon as it has
 * arrived rather than after the rest of the message, so that a client
 * speaking something else is dropped without waiting for it. */
#include "proto/socks5.h"

#include "util/error.h"

#include <string.h>

/* Length of the address body (without ATYP, with the port) for the given
 * ATYP, reading the domain length byte at p[0] when there is one.  Returns 0
 * with *need set, TD_EAGAIN when the length byte is not there yet, or an
 * error for an unknown type or an empty domain. */
static int socks5__addr_need(uint8_t atyp, const uint8_t *p, size_t len, size_t *need)
{
    switch (atyp) {
    case SOCKS5_ATYP_IPV4:
        *need = 4 + 2;
        return 0;
    case SOCKS5_ATYP_IPV6:
        *need = 16 + 2;
        return 0;
    case SOCKS5_ATYP_DOMAIN:
        if (len < 1)
            return TD_EAGAIN;
        if (p[0] == 0)
            return TD_EPROTO;
        *need = 1 + (size_t)p[0] + 2;
        return 0;
    default:
        return TD_EUNSUPPORTED;
    }
}

/* Decode an address body whose whole length (from socks5__addr_need) is
 * known to be present. */
static int socks5__addr_decode(uint8_t atyp, const uint8_t *p, struct socks5_addr *out)
{
    size_t off;

    memset(out, 0, sizeof(*out));
    out->atyp = atyp;
    switch (atyp) {
    case SOCKS5_ATYP_IPV4:
        memcpy(out->ip, p, 4);
        off = 4;
        break;
    case SOCKS5_ATYP_IPV6:
        memcpy(out->ip, p, 16);
        off = 16;
        break;
    default: /* SOCKS5_ATYP_DOMAIN; others were refused by socks5__addr_need */
        /* A NUL inside the name would make the C string that the resolver
         * and the ACLs see differ from what the client asked for. */
        if (memchr(p + 1, '\0', p[0]) != NULL)
            return TD_EPROTO;
        memcpy(out->host, p + 1, p[0]);
        out->host[p[0]] = '\0';
        off = 1 + (size_t)p[0];
        break;
    }
    out->port = (uint16_t)((uint16_t)p[off] << 8 | p[off + 1]);
    return 0;
}

/* Parse "ATYP ADDR PORT" starting at p.  *used is the number of bytes. */
static int socks5__addr_parse(const uint8_t *p, size_t len, size_t *used, struct socks5_addr *out)
{
    size_t need;
    int rc;

    if (len < 1)
        return TD_EAGAIN;
    rc = socks5__addr_need(p[0], p + 1, len - 1, &need);
    if (rc != 0)
        return rc;
    if (len - 1 < need)
        return TD_EAGAIN;
    rc = socks5__addr_decode(p[0], p + 1, out);
    if (rc != 0)
        return rc;
    *used = 1 + need;
    return 0;
}

int socks5_parse_greeting(const uint8_t *p, size_t len, size_t *used, struct socks5_greeting *out)
{
    size_t n;

    if ((p == NULL && len != 0) || used == NULL || out == NULL)
        return TD_EINVAL;
    if (len < 1)
        return TD_EAGAIN;
    if (p[0] != SOCKS5_VERSION)
        return TD_EPROTO;
    if (len < 2)
        return TD_EAGAIN;
    n = p[1];
    if (n == 0)
        return TD_EPROTO;
    if (len - 2 < n)
        return TD_EAGAIN;
    memset(out, 0, sizeof(*out));
    out->nmethods = (uint8_t)n;
    memcpy(out->methods, p + 2, n);
    *used = 2 + n;
    return 0;
}

bool socks5_greeting_offers(const struct socks5_greeting *g, uint8_t method)
{
    if (g == NULL)
        return false;
    for (size_t i = 0; i < g->nmethods; i++)
        if (g->methods[i] == method)
            return true;
    return false;
}

int socks5_parse_userpass(const uint8_t *p, size_t len, size_t *used, struct socks5_userpass *out)
{
    size_t ulen, plen;

    if ((p == NULL && len != 0) || used == NULL || out == NULL)
        return TD_EINVAL;
    if (len < 1)
        return TD_EAGAIN;
    if (p[0] != SOCKS5_AUTH_VERSION)
        return TD_EPROTO;
    if (len < 2)
        return TD_EAGAIN;
    ulen = p[1];
    if (len - 2 < ulen + 1)
        return TD_EAGAIN;
    plen = p[2 + ulen];
    if (len - 3 - ulen < plen)
        return TD_EAGAIN;
    /* RFC 1929 allows any octets, but the credentials end up as C strings:
     * an embedded NUL would let "admin\0junk" compare equal to "admin". */
    if (memchr(p + 2, '\0', ulen) != NULL || memchr(p + 3 + ulen, '\0', plen) != NULL)
        return TD_EPROTO;
    memset(out, 0, sizeof(*out));
    out->ulen = (uint8_t)ulen;
    out->plen = (uint8_t)plen;
    memcpy(out->user, p + 2, ulen);
    memcpy(out->pass, p + 3 + ulen, plen);
    *used = 3 + ulen + plen;
    return 0;
}

int socks5_parse_request(const uint8_t *p, size_t len, size_t *used, struct socks5_request *out)
{
    struct socks5_addr addr;
    size_t n;
    int rc;

    if ((p == NULL && len != 0) || used == NULL || out == NULL)
        return TD_EINVAL;
    if (len < 1)
        return TD_EAGAIN;
    if (p[0] != SOCKS5_VERSION)
        return TD_EPROTO;
    if (len < 3)
        return TD_EAGAIN;
    /* p[1] is CMD; any value parses, and the caller answers 0x07 to the ones
     * it does not implement.  p[2] is RSV, which RFC 1928 says is 0x00; some
     * clients send garbage there, and nothing depends on it, so it is
     * ignored. */
    rc = socks5__addr_parse(p + 3, len - 3, &n, &addr);
    if (rc != 0)
        return rc;
    out->cmd = p[1];
    out->addr = addr;
    *used = 3 + n;
    return 0;
}

int socks5_parse_udp_header(const uint8_t *p, size_t len, size_t *used,
                            struct socks5_udp_header *out)
{
    struct socks5_addr addr;
    size_t n;
    int rc;

    if ((p == NULL && len != 0) || used == NULL || out == NULL)
        return TD_EINVAL;
    if (len < 3)
        return TD_EAGAIN;
    /* p[0..1] is the two-byte RSV; like the request's RSV it is ignored. */
    rc = socks5__addr_parse(p + 3, len - 3, &n, &addr);
    if (rc != 0)
        return rc;
    out->frag = p[2];
    out->addr = addr;
    *used = 3 + n;
    return 0;
}

/* Write "ATYP ADDR PORT".  A NULL address or an unknown ATYP is written as
 * 0.0.0.0:0 so that a reply is always well formed. */
static size_t socks5__addr_encode(uint8_t *out, const struct socks5_addr *a)
{
    size_t o = 0, n;
    uint16_t port = 0;

    if (a != NULL && a->atyp == SOCKS5_ATYP_IPV6) {
        out[o++] = SOCKS5_ATYP_IPV6;
        memcpy(out + o, a->ip, 16);
        o += 16;
        port = a->port;
    } else if (a != NULL && a->atyp == SOCKS5_ATYP_DOMAIN) {
        n = strnlen(a->host, 255);
        out[o++] = SOCKS5_ATYP_DOMAIN;
        out[o++] = (uint8_t)n;
        memcpy(out + o, a->host, n);
        o += n;
        port = a->port;
    } else {
        out[o++] = SOCKS5_ATYP_IPV4;
        if (a != NULL && a->atyp == SOCKS5_ATYP_IPV4) {
            memcpy(out + o, a->ip, 4);
            port = a->port;
        } else {
            memset(out + o, 0, 4);
        }
        o += 4;
    }
    out[o++] = (uint8_t)(port >> 8);
    out[o++] = (uint8_t)(port & 0xff);
    return o;
}

size_t socks5_encode_method_choice(uint8_t *out, uint8_t method)
{
    if (out == NULL)
        return 0;
    out[0] = SOCKS5_VERSION;
    out[1] = method;
    return 2;
}

size_t socks5_encode_auth_status(uint8_t *out, bool ok)
{
    if (out == NULL)
        return 0;
    out[0] = SOCKS5_AUTH_VERSION;
    out[1] = ok ? 0x00 : 0x01;
    return 2;
}

size_t socks5_encode_reply(uint8_t *out, uint8_t rep, const struct socks5_addr *bnd)
{
    if (out == NULL)
        return 0;
    out[0] = SOCKS5_VERSION;
    out[1] = rep;
    out[2] = 0x00;
    return 3 + socks5__addr_encode(out + 3, bnd);
}

size_t socks5_encode_udp_header(uint8_t *out, const struct socks5_addr *addr)
{
    if (out == NULL)
        return 0;
    out[0] = 0x00;
    out[1] = 0x00;
    out[2] = 0x00; /* FRAG: fragmentation is not supported, so always 0 */
    return 3 + socks5__addr_encode(out + 3, addr);
}

size_t socks5_encode_request(uint8_t *out, uint8_t cmd, const struct socks5_addr *addr)
{
    if (out == NULL)
        return 0;
    out[0] = SOCKS5_VERSION;
    out[1] = cmd;
    out[2] = 0x00;
    return 3 + socks5__addr_encode(out + 3, addr);
}

const char *socks5_rep_str(uint8_t rep)
{
    switch (rep) {
    case SOCKS5_REP_SUCCEEDED:
        return "succeeded";
    case SOCKS5_REP_GENERAL_FAILURE:
        return "general SOCKS server failure";
    case SOCKS5_REP_NOT_ALLOWED:
        return "connection not allowed by ruleset";
    case SOCKS5_REP_NET_UNREACHABLE:
        return "network unreachable";
    case SOCKS5_REP_HOST_UNREACHABLE:
        return "host unreachable";
    case SOCKS5_REP_CONN_REFUSED:
        return "connection refused";
    case SOCKS5_REP_TTL_EXPIRED:
        return "TTL expired";
    case SOCKS5_REP_CMD_NOT_SUPPORTED:
        return "command not supported";
    case SOCKS5_REP_ATYP_NOT_SUPPORTED:
        return "address type not supported";
    default:
        return "unknown reply";
    }
}
