/* SOCKS5 UDP ASSOCIATE on the direct route, or through a tunnel (one
 * struct td_udp_flow per association, from the tunnel's kind: every
 * datagram names its destination and every reply its source; how the
 * protocol carries them is its own business).
 *
 * The client-facing relay socket is bound on the address the client reached
 * us on; datagrams are accepted only from the client's IP (and from the port
 * it announced, when it announced one).  Targets are reached through one
 * outbound socket per address family.  Nothing is queued: a datagram the
 * kernel does not take at once is dropped, as UDP allows, so memory is flat
 * whatever the peers do.  The association ends with its TCP connection. */
#include "core/conn.h"
#include "core/netutil.h"
#include "core/resolve.h"
#include "core/tunnel.h"
#include "proto/socks5.h"
#include "util/addr.h"
#include "util/error.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define UDP_MAX_RESOLVING 8

struct udp_resolve;
struct udp_assoc;

/* Destinations remembered on the direct route: replies are taken only from
 * them (as RFC 1928 servers commonly do), so the relay is no open door for
 * any host that learns its port.  The oldest is forgotten first. */
#define UDP_MAX_PEERS 64

struct udp_assoc {
    struct conn *c;
    uv_udp_t *relay;
    uv_udp_t *out[2];               /* [0] IPv4, [1] IPv6 */
    struct sockaddr_storage peer;   /* the client's TCP address */
    uint16_t expect_port;           /* 0: any port from the client's IP */
    struct sockaddr_storage client; /* where replies go */
    bool client_known;
    struct udp_resolve *resolving[UDP_MAX_RESOLVING];
    /* A one-entry cache, since clients mostly talk to one name at a time. */
    char cache_name[256];
    struct sockaddr_storage cache_addr;
    bool cache_valid;
    uint64_t dropped;
    struct sockaddr_storage peers[UDP_MAX_PEERS];
    int n_peers, next_peer;
    struct td_tunnel *tunnel; /* the route, when it is a tunnel */
    struct td_udp_flow *flow; /* open while the tunnel carries it */
};

struct udp_resolve {
    struct udp_assoc *ua;
    struct td_resolve *rs;
    int slot;
    char name[256];
    uint16_t port;
    size_t len;
    uint8_t data[];
};

static void ua_on_target_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                              const struct sockaddr *from, unsigned flags);

static void ua_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct td_chunk *ch = chunk_get(0);
    (void)h;
    (void)suggested;
    *buf = ch ? uv_buf_init((char *)ch->data, TD_CHUNK_SIZE) : uv_buf_init(NULL, 0);
}

/* Same address (IPv4-mapped IPv6 equals IPv4), and the same port too when
 * with_port is set. */
static bool ua_same_addr(const struct sockaddr *a, const struct sockaddr *b, bool with_port)
{
    struct socks5_addr x, y;
    td_sockaddr_to_socks5(a, &x);
    td_sockaddr_to_socks5(b, &y);
    if (x.atyp != y.atyp || (with_port && x.port != y.port))
        return false;
    return memcmp(x.ip, y.ip, x.atyp == SOCKS5_ATYP_IPV4 ? 4 : 16) == 0;
}

static uv_udp_t *ua_outbound(struct udp_assoc *ua, int family)
{
    struct conn *c = ua->c;
    int i = family == AF_INET6 ? 1 : 0;
    struct sockaddr_storage any;
    uv_udp_t *u;
    uv_os_fd_t fd;
    int r;

    if (ua->out[i])
        return ua->out[i];
    if (!daemon_fds_available(c->d, 1))
        return NULL;
    u = malloc(sizeof(*u));
    if (!u)
        return NULL;
    memset(&any, 0, sizeof(any));
    if (i == 0) {
        uv_ip4_addr("0.0.0.0", 0, (struct sockaddr_in *)&any);
    } else {
        uv_ip6_addr("::", 0, (struct sockaddr_in6 *)&any);
    }
    uv_udp_init(c->d->loop, u);
    u->data = c;
    c->handles++;
    ua->out[i] = u;
    r = uv_udp_bind(u, (struct sockaddr *)&any, i == 1 ? UV_UDP_IPV6ONLY : 0);
    if (uv_fileno((uv_handle_t *)u, &fd) == 0)
        c->d->fds_in_use++;
    if (r == 0)
        r = uv_udp_recv_start(u, ua_alloc, ua_on_target_recv);
    if (r < 0) {
        LOG_DEBUG("udp", "#%llu outbound %s socket: %s", (unsigned long long)c->id,
                  i ? "IPv6" : "IPv4", uv_strerror(r));
        if (r == UV_EMFILE || r == UV_ENFILE)
            daemon_note_emfile(c->d, "udp socket");
        return NULL; /* stays in out[i] so it is closed with the conn */
    }
    return u;
}

static bool ua_known_peer(const struct udp_assoc *ua, const struct sockaddr *sa)
{
    for (int i = 0; i < ua->n_peers; i++)
        if (ua_same_addr((const struct sockaddr *)&ua->peers[i], sa, true))
            return true;
    return false;
}

static void ua_note_peer(struct udp_assoc *ua, const struct sockaddr *to)
{
    if (ua_known_peer(ua, to))
        return;
    memset(&ua->peers[ua->next_peer], 0, sizeof(ua->peers[0]));
    memcpy(&ua->peers[ua->next_peer], to,
           to->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    ua->next_peer = (ua->next_peer + 1) % UDP_MAX_PEERS;
    if (ua->n_peers < UDP_MAX_PEERS)
        ua->n_peers++;
}

static void ua_send_to_target(struct udp_assoc *ua, const struct sockaddr *to, const uint8_t *p,
                              size_t len)
{
    uv_udp_t *u;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    int r;
    if (!td_sockaddr_allowed(&ua->c->lcfg->rules, to)) {
        ua->dropped++;
        return;
    }
    u = ua_outbound(ua, to->sa_family);
    if (!u || !uv_is_active((uv_handle_t *)u)) {
        ua->dropped++;
        return;
    }
    ua_note_peer(ua, to);
    r = uv_udp_try_send(u, &b, 1, to);
    if (r < 0) {
        ua->dropped++;
        return;
    }
    ua->c->bytes_up += len;
}

static void ua_on_resolved(void *arg, int status, const struct sockaddr_storage *addrs, size_t n)
{
    struct udp_resolve *rr = arg;
    struct udp_assoc *ua = rr->ua;

    ua->resolving[rr->slot] = NULL;
    if (status == 0 && n > 0) {
        ua->cache_addr = addrs[0];
        snprintf(ua->cache_name, sizeof(ua->cache_name), "%s", rr->name);
        ua->cache_valid = true;
        if (ua->cache_addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&ua->cache_addr)->sin_port = htons(rr->port);
        else
            ((struct sockaddr_in6 *)&ua->cache_addr)->sin6_port = htons(rr->port);
        ua_send_to_target(ua, (struct sockaddr *)&ua->cache_addr, rr->data, rr->len);
    } else {
        ua->dropped++;
    }
    free(rr);
}

static void ua_resolve_and_send(struct udp_assoc *ua, const struct socks5_addr *a, const uint8_t *p,
                                size_t len)
{
    struct udp_resolve *rr;
    int slot = -1;

    if (ua->cache_valid && strcmp(ua->cache_name, a->host) == 0) {
        struct sockaddr_storage to = ua->cache_addr;
        if (to.ss_family == AF_INET)
            ((struct sockaddr_in *)&to)->sin_port = htons(a->port);
        else
            ((struct sockaddr_in6 *)&to)->sin6_port = htons(a->port);
        ua_send_to_target(ua, (struct sockaddr *)&to, p, len);
        return;
    }
    for (int i = 0; i < UDP_MAX_RESOLVING; i++)
        if (!ua->resolving[i]) {
            slot = i;
            break;
        }
    if (slot < 0) {
        ua->dropped++;
        return;
    }
    rr = malloc(sizeof(*rr) + len);
    if (!rr) {
        ua->dropped++;
        return;
    }
    rr->ua = ua;
    rr->slot = slot;
    rr->port = a->port;
    rr->len = len;
    snprintf(rr->name, sizeof(rr->name), "%s", a->host);
    memcpy(rr->data, p, len);
    rr->rs = td_resolve_start(ua->c->d, rr->name, SOCK_DGRAM, ua_on_resolved, rr);
    if (!rr->rs) {
        free(rr);
        ua->dropped++;
        return;
    }
    ua->resolving[slot] = rr;
}

/* A datagram from the tunnel, from src (a destination the client used). */
static void ua_flow_recv(void *arg, const struct socks5_addr *src, const uint8_t *p, size_t len)
{
    struct udp_assoc *ua = arg;
    uint8_t hdrbuf[SOCKS5_MAX_MSG];
    uv_buf_t bufs[2];

    if (!ua->client_known)
        return;
    bufs[0] = uv_buf_init((char *)hdrbuf, (unsigned)socks5_encode_udp_header(hdrbuf, src));
    bufs[1] = uv_buf_init((char *)p, (unsigned)len);
    if (uv_udp_try_send(ua->relay, bufs, 2, (struct sockaddr *)&ua->client) < 0)
        ua->dropped++;
    else
        ua->c->bytes_down += len;
    conn_touch(ua->c);
}

/* The tunnel ended the flow: the next datagram opens another. */
static void ua_flow_closed(void *arg)
{
    struct udp_assoc *ua = arg;
    if (ua->flow)
        ua->tunnel->proto->tunnel->udp_close(ua->flow);
    ua->flow = NULL;
}

static const struct td_udp_cbs ua_flow_cbs = {ua_flow_recv, ua_flow_closed};

static void ua_send_via_tunnel(struct udp_assoc *ua, const struct socks5_addr *dst,
                               const uint8_t *p, size_t len)
{
    const struct td_tunnel_ops *ops = ua->tunnel->proto->tunnel;

    if (!ua->flow)
        ua->flow = ops->udp_open(ua->tunnel, &ua_flow_cbs, ua);
    if (!ua->flow || ops->udp_send(ua->flow, dst, p, len) != 0) {
        ua->dropped++;
        return;
    }
    ua->c->bytes_up += len;
}

static void ua_on_client_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                              const struct sockaddr *from, unsigned flags)
{
    struct conn *c = h->data;
    struct udp_assoc *ua = c->udp;
    struct td_chunk *ch = buf->base ? chunk_from_data(buf->base) : NULL;
    struct socks5_udp_header hdr;
    size_t used;

    if (nread <= 0 || !from || !ua || c->state != CONN_UDP || (flags & UV_UDP_PARTIAL))
        goto out;
    if (!ua_same_addr(from, (struct sockaddr *)&ua->peer, false))
        goto drop;
    if (ua->expect_port && ntohs(((const struct sockaddr_in *)from)->sin_port) != ua->expect_port)
        goto drop;
    if (socks5_parse_udp_header((uint8_t *)buf->base, (size_t)nread, &used, &hdr) != 0)
        goto drop;
    if (hdr.frag != 0) {
        LOG_DEBUG("udp", "#%llu dropping fragmented datagram (FRAG=%u)", (unsigned long long)c->id,
                  hdr.frag);
        goto drop;
    }
    memcpy(&ua->client, from,
           from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    ua->client_known = true;
    conn_touch(c);
    if (hdr.addr.atyp != SOCKS5_ATYP_DOMAIN) {
        /* Literal destinations meet the listener's rules on every route;
         * names are checked where they are resolved (below, or by the
         * tunnel server's own rules). */
        struct sockaddr_storage to;
        td_socks5_to_sockaddr(&hdr.addr, &to);
        if (!td_sockaddr_allowed(&c->lcfg->rules, (struct sockaddr *)&to))
            goto drop;
    }
    if (ua->tunnel) {
        ua_send_via_tunnel(ua, &hdr.addr, (uint8_t *)buf->base + used, (size_t)nread - used);
    } else if (hdr.addr.atyp == SOCKS5_ATYP_DOMAIN) {
        ua_resolve_and_send(ua, &hdr.addr, (uint8_t *)buf->base + used, (size_t)nread - used);
    } else {
        struct sockaddr_storage to;
        td_socks5_to_sockaddr(&hdr.addr, &to);
        ua_send_to_target(ua, (struct sockaddr *)&to, (uint8_t *)buf->base + used,
                          (size_t)nread - used);
    }
    goto out;
drop:
    ua->dropped++;
out:
    chunk_put(ch);
}

static void ua_on_target_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                              const struct sockaddr *from, unsigned flags)
{
    struct conn *c = h->data;
    struct udp_assoc *ua = c->udp;
    struct td_chunk *ch = buf->base ? chunk_from_data(buf->base) : NULL;
    uint8_t hdrbuf[SOCKS5_MAX_MSG];
    struct socks5_addr src;
    uv_buf_t bufs[2];

    if (nread < 0 || !from || !ua || c->state != CONN_UDP || (flags & UV_UDP_PARTIAL))
        goto out;
    if (!ua->client_known || !ua_known_peer(ua, from)) {
        ua->dropped++;
        goto out;
    }
    td_sockaddr_to_socks5(from, &src);
    bufs[0] = uv_buf_init((char *)hdrbuf, (unsigned)socks5_encode_udp_header(hdrbuf, &src));
    bufs[1] = uv_buf_init(buf->base, (unsigned)nread);
    if (uv_udp_try_send(ua->relay, bufs, 2, (struct sockaddr *)&ua->client) < 0)
        ua->dropped++;
    else
        c->bytes_down += (uint64_t)nread;
    conn_touch(c);
out:
    chunk_put(ch);
}

/* The TCP connection only carries the association's life: anything read on
 * it is discarded, and its end ends the association. */
static void ua_on_ctrl_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    chunk_put(buf->base ? chunk_from_data(buf->base) : NULL);
    if (nread >= 0 || c->state == CONN_CLOSING)
        return;
    conn_close(c, nread == UV_EOF ? END_DONE : END_CLIENT_RESET);
}

int udp_assoc_start(struct conn *c, const struct socks5_request *req)
{
    struct udp_assoc *ua;
    struct sockaddr_storage local;
    struct socks5_addr bnd;
    uint8_t out[SOCKS5_MAX_MSG];
    int len = sizeof(local), r;
    uv_os_fd_t fd;
    size_t n;

    snprintf(c->target_str, sizeof(c->target_str), "udp-associate");
    if (!daemon_fds_available(c->d, 3)) {
        n = socks5_encode_reply(out, SOCKS5_REP_GENERAL_FAILURE, NULL);
        daemon_note_emfile(c->d, "udp associate");
        conn_reply_and_close(c, out, n, END_NO_RESOURCES);
        return TD_EMFILE;
    }
    ua = calloc(1, sizeof(*ua));
    if (!ua)
        goto fail;
    ua->c = c;
    c->udp = ua;
    if (strcmp(c->lcfg->route, "direct") != 0) {
        const struct td_tunnel_ops *ops;
        ua->tunnel = td_tunnel_find(c->d, c->lcfg->route);
        c->tunnel = ua->tunnel;
        ops = ua->tunnel ? ua->tunnel->proto->tunnel : NULL;
        if (!ops || !ops->udp_open || (ops->udp_supported && ops->udp_supported(ua->tunnel) == 0)) {
            LOG_INFO("udp", "#%llu %s: UDP ASSOCIATE is not available on route %s",
                     (unsigned long long)c->id, c->client_str, c->lcfg->route);
            n = socks5_encode_reply(out, SOCKS5_REP_CMD_NOT_SUPPORTED, NULL);
            conn_reply_and_close(c, out, n, END_UNSUPPORTED);
            return TD_EUNSUPPORTED;
        }
    }
    len = sizeof(ua->peer);
    if (uv_tcp_getpeername(c->side[SIDE_CLIENT].tcp, (struct sockaddr *)&ua->peer, &len) != 0)
        goto fail;
    len = sizeof(local);
    if (uv_tcp_getsockname(c->side[SIDE_CLIENT].tcp, (struct sockaddr *)&local, &len) != 0)
        goto fail;
    ua->expect_port = req->addr.port;
    if (local.ss_family == AF_INET)
        ((struct sockaddr_in *)&local)->sin_port = 0;
    else
        ((struct sockaddr_in6 *)&local)->sin6_port = 0;

    ua->relay = malloc(sizeof(*ua->relay));
    if (!ua->relay)
        goto fail;
    uv_udp_init(c->d->loop, ua->relay);
    ua->relay->data = c;
    c->handles++;
    r = uv_udp_bind(ua->relay, (struct sockaddr *)&local, 0);
    if (uv_fileno((uv_handle_t *)ua->relay, &fd) == 0)
        c->d->fds_in_use++;
    if (r == 0)
        r = uv_udp_recv_start(ua->relay, ua_alloc, ua_on_client_recv);
    if (r < 0)
        goto fail;
    len = sizeof(local);
    if (uv_udp_getsockname(ua->relay, (struct sockaddr *)&local, &len) != 0)
        goto fail;
    td_sockaddr_to_socks5((struct sockaddr *)&local, &bnd);

    conn_set_state(c, CONN_UDP);
    conn_touch(c);
    conn_arm_timer(c, c->d->cfg->limits.udp_timeout_ms);
    n = socks5_encode_reply(out, SOCKS5_REP_SUCCEEDED, &bnd);
    if (conn_write_copy(c, SIDE_CLIENT, out, n) < 0)
        return TD_ECONNRESET;
    {
        char s[80];
        LOG_DEBUG("udp", "#%llu association relaying on %s", (unsigned long long)c->id,
                  td_sockaddr_str((struct sockaddr *)&local, s, sizeof(s)));
    }
    c->hs_len = 0;
    if (uv_read_start((uv_stream_t *)c->side[SIDE_CLIENT].tcp, conn_alloc_chunk, ua_on_ctrl_read) ==
        0)
        c->side[SIDE_CLIENT].reading = true;
    return 0;
fail:
    n = socks5_encode_reply(out, SOCKS5_REP_GENERAL_FAILURE, NULL);
    conn_reply_and_close(c, out, n, END_ERROR);
    return TD_EIO;
}

void udp_assoc_close(struct conn *c)
{
    struct udp_assoc *ua = c->udp;
    uv_os_fd_t fd;
    uv_handle_t *hs[3];
    c->udp = NULL;
    if (ua->flow)
        ua->tunnel->proto->tunnel->udp_close(ua->flow);
    ua->flow = NULL;
    for (int i = 0; i < UDP_MAX_RESOLVING; i++)
        if (ua->resolving[i]) {
            td_resolve_cancel(ua->resolving[i]->rs);
            free(ua->resolving[i]);
            ua->resolving[i] = NULL;
        }
    hs[0] = (uv_handle_t *)ua->relay;
    hs[1] = (uv_handle_t *)ua->out[0];
    hs[2] = (uv_handle_t *)ua->out[1];
    for (int i = 0; i < 3; i++) {
        if (!hs[i] || uv_is_closing(hs[i]))
            continue;
        if (uv_fileno(hs[i], &fd) == 0 && c->d->fds_in_use > 0)
            c->d->fds_in_use--;
        uv_close(hs[i], conn_on_handle_closed);
    }
    if (ua->dropped)
        LOG_DEBUG("udp", "#%llu association dropped %llu datagrams", (unsigned long long)c->id,
                  (unsigned long long)ua->dropped);
    free(ua);
}
