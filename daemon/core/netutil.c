#include "core/netutil.h"

#include "util/addr.h"
#include "core/daemon.h"
#include "util/error.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void td_sockaddr_to_socks5(const struct sockaddr *sa, struct socks5_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *b = (const uint8_t *)&s6->sin6_addr;
        if (memcmp(b, v4mapped_prefix, 12) == 0) {
            out->atyp = SOCKS5_ATYP_IPV4;
            memcpy(out->ip, b + 12, 4);
        } else {
            out->atyp = SOCKS5_ATYP_IPV6;
            memcpy(out->ip, b, 16);
        }
        out->port = ntohs(s6->sin6_port);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        out->atyp = SOCKS5_ATYP_IPV4;
        memcpy(out->ip, &s4->sin_addr, 4);
        out->port = ntohs(s4->sin_port);
    }
}

int td_socks5_to_sockaddr(const struct socks5_addr *a, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (a->atyp == SOCKS5_ATYP_IPV4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, a->ip, 4);
        s4->sin_port = htons(a->port);
        return 0;
    }
    if (a->atyp == SOCKS5_ATYP_IPV6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, a->ip, 16);
        s6->sin6_port = htons(a->port);
        return 0;
    }
    return TD_EINVAL;
}

int socks5_addr_host(const struct socks5_addr *a, char *out, size_t cap)
{
    switch (a->atyp) {
    case SOCKS5_ATYP_IPV4:
        td_ip_format(out, cap, a->ip, 4);
        return 0;
    case SOCKS5_ATYP_IPV6:
        td_ip_format(out, cap, a->ip, 16);
        return 0;
    case SOCKS5_ATYP_DOMAIN:
        snprintf(out, cap, "%s", a->host);
        return 0;
    default:
        return TD_EINVAL;
    }
}

const char *td_sockaddr_str(const struct sockaddr *sa, char *out, size_t cap)
{
    struct socks5_addr a;
    char ip[64];
    td_sockaddr_to_socks5(sa, &a);
    socks5_addr_host(&a, ip, sizeof(ip));
    return td_hostport_format(out, cap, ip, a.port);
}

bool td_sockaddr_allowed(const struct cfg_rules *r, const struct sockaddr *sa)
{
    if (!r || (r->n_allow == 0 && r->n_deny == 0))
        return true;
    if (sa->sa_family == AF_INET)
        return cfg_rules_allow(r, 4, (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return cfg_rules_allow(r, 6,
                               (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

int td_listen_addr(uv_loop_t *loop, const struct td_hostport *hp, struct sockaddr_storage *out)
{
    uv_getaddrinfo_t req;
    struct addrinfo hints, *ai;
    char port[8];
    int r;

    memset(out, 0, sizeof(*out));
    if (hp->kind == TD_HOST_IPV4)
        return uv_ip4_addr(hp->host, hp->port, (struct sockaddr_in *)out);
    if (hp->kind == TD_HOST_IPV6)
        return uv_ip6_addr(hp->host, hp->port, (struct sockaddr_in6 *)out);
    /* A name (say "localhost"): resolved once, synchronously, at start-up. */
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%u", hp->port);
    r = uv_getaddrinfo(loop, &req, NULL, hp->host, port, &hints);
    if (r < 0)
        return r;
    ai = req.addrinfo;
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    uv_freeaddrinfo(ai);
    return 0;
}
