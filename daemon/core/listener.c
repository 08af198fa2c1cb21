/* Accepting sockets and the accept policy; see listener.h. */
#include "core/listener.h"

#include "util/addr.h"
#include "core/conn.h"
#include "util/error.h"
#include "util/log.h"
#include "core/netutil.h"

#include <stdlib.h>
#include <string.h>

#define LISTEN_BACKLOG 511

/* May a connection be taken now?  Logs the reason a pause starts, once. */
static bool acceptor_has_room(struct td_acceptor *a)
{
    struct td_daemon *d = a->d;

    if (d->draining || !a->open)
        return false;
    if (uv_now(d->loop) < d->emfile_until)
        return false;
    if (a->counts_conns && d->n_conns >= d->cfg->limits.max_connections) {
        if (!d->accept_paused_logged) {
            LOG_WARN("accept", "max_connections (%u) reached: pausing accept",
                     d->cfg->limits.max_connections);
            d->accept_paused_logged = true;
        }
        return false;
    }
    if (!daemon_fds_available(d, a->fds_per_conn)) {
        daemon_accept_retry(d, 1000);
        if (!d->emfile_logged) {
            LOG_WARN("accept",
                     "too many open files: %llu of %llu descriptors in use; pausing accept "
                     "until connections close",
                     (unsigned long long)d->fds_in_use, (unsigned long long)d->fd_budget);
            d->emfile_logged = true;
        }
        return false;
    }
    if (d->accept_paused_logged &&
        (!a->counts_conns || d->n_conns < d->cfg->limits.max_connections)) {
        LOG_INFO("accept", "accepting again (%u connections)", d->n_conns);
        d->accept_paused_logged = false;
    }
    if (d->emfile_logged && d->fds_in_use * 4 < d->fd_budget * 3) {
        LOG_INFO("accept", "descriptors available again (%llu in use)",
                 (unsigned long long)d->fds_in_use);
        d->emfile_logged = false;
    }
    return true;
}

/* At the handshake cap the oldest handshake makes room. */
static void acceptor_evict_oldest(struct td_acceptor *a)
{
    uint32_t max = a->d->cfg->limits.max_handshakes;

    while (a->n_hs >= max && !td_queue_empty(&a->hs)) {
        struct td_hs_slot *s = td_container_of(a->hs.next, struct td_hs_slot, node);
        if (!a->evict_logged) {
            LOG_WARN("accept",
                     "%s: %u handshakes in progress (limits.max_handshakes): closing the "
                     "oldest to make room",
                     a->name, a->n_hs);
            a->evict_logged = true;
        }
        a->hs_evicted++;
        s->evict(s);
        if (s->a) /* the owner did not end it: stop, rather than loop */
            td_hs_end(s);
    }
}

void td_acceptor_try(struct td_acceptor *a)
{
    while (a->pending && acceptor_has_room(a)) {
        int r;
        acceptor_evict_oldest(a);
        a->pending = false;
        r = a->accept_cb(a);
        if (r == TD_ENOMEM || r == TD_EMFILE) {
            /* Nothing was taken: it waits in the backlog for the retry. */
            a->pending = true;
            daemon_note_emfile(a->d, r == TD_ENOMEM ? "out of memory" : a->name);
            return;
        }
    }
}

void td_acceptor_try_all(struct td_daemon *d)
{
    struct td_queue *q, *next;
    for (q = d->acceptors.next; q != &d->acceptors; q = next) {
        next = q->next; /* an accept callback may close its acceptor */
        td_acceptor_try(td_container_of(q, struct td_acceptor, node));
    }
}

static void acceptor_on_connection(uv_stream_t *server, int status)
{
    struct td_acceptor *a = server->data;

    if (!a || !a->open)
        return;
    if (status < 0) {
        if (status == UV_EMFILE || status == UV_ENFILE)
            daemon_note_emfile(a->d, "accept");
        else
            LOG_WARN("accept", "%s: %s", a->name, uv_strerror(status));
        return;
    }
    /* Until uv_accept() is called libuv stops polling this socket, and
     * later connections stay in the kernel's backlog. */
    a->pending = true;
    td_acceptor_try(a);
}

int td_acceptor_accept(struct td_acceptor *a, uv_tcp_t *client)
{
    return uv_accept((uv_stream_t *)a->tcp, (uv_stream_t *)client);
}

static void acceptor_on_closed(uv_handle_t *h)
{
    free(h);
}

int td_acceptor_open(struct td_daemon *d, struct td_acceptor *a, const struct td_acceptor_opts *o)
{
    struct sockaddr_storage ss;
    uv_os_fd_t fd;
    char shown[300];
    int len, r;

    memset(a, 0, sizeof(*a));
    a->d = d;
    a->name = o->name;
    a->accept_cb = o->accept_cb;
    a->ud = o->ud;
    a->fds_per_conn = o->fds_per_conn ? o->fds_per_conn : 2;
    a->counts_conns = o->counts_conns;
    td_queue_init(&a->hs);
    td_queue_init(&a->node);
    td_hostport_format(shown, sizeof(shown), o->listen->host, o->listen->port);
    r = td_listen_addr(d->loop, o->listen, &ss);
    if (r < 0) {
        LOG_ERROR("main", "%s %s: cannot resolve %s: %s", o->what, o->name, shown, uv_strerror(r));
        return td_err_from_uv(r);
    }
    a->tcp = malloc(sizeof(*a->tcp));
    if (!a->tcp)
        return TD_ENOMEM;
    uv_tcp_init(d->loop, a->tcp);
    a->tcp->data = a;
    r = uv_tcp_bind(a->tcp, (struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)a->tcp, LISTEN_BACKLOG, acceptor_on_connection);
    if (uv_fileno((uv_handle_t *)a->tcp, &fd) == 0)
        d->fds_in_use++;
    a->open = true;
    td_queue_insert_tail(&d->acceptors, &a->node);
    if (r < 0) {
        LOG_ERROR("main", "%s %s: cannot listen on %s: %s", o->what, o->name, shown,
                  uv_strerror(r));
        td_acceptor_close(a);
        return td_err_from_uv(r);
    }
    len = sizeof(ss);
    uv_tcp_getsockname(a->tcp, (struct sockaddr *)&ss, &len);
    td_sockaddr_str((struct sockaddr *)&ss, a->addr, sizeof(a->addr));
    a->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    LOG_INFO("main", "%s %s (%s) listening on %s", o->what, o->name, o->kind, a->addr);
    return 0;
}

void td_acceptor_close(struct td_acceptor *a)
{
    uv_os_fd_t fd;

    if (!a->open)
        return;
    a->open = false;
    a->pending = false;
    /* Handshakes in progress finish uncounted: the acceptor may be freed
     * before them (a listener removed by a reload). */
    while (!td_queue_empty(&a->hs))
        td_hs_end(td_container_of(a->hs.next, struct td_hs_slot, node));
    td_queue_remove(&a->node);
    td_queue_init(&a->node);
    if (a->tcp && !uv_is_closing((uv_handle_t *)a->tcp)) {
        if (uv_fileno((uv_handle_t *)a->tcp, &fd) == 0 && a->d->fds_in_use > 0)
            a->d->fds_in_use--;
        /* Freed by its close callback, so the owner may go first. */
        a->tcp->data = NULL;
        uv_close((uv_handle_t *)a->tcp, acceptor_on_closed);
    }
    a->tcp = NULL;
}

void td_hs_begin(struct td_acceptor *a, struct td_hs_slot *s, void (*evict)(struct td_hs_slot *))
{
    s->a = a;
    s->evict = evict;
    td_queue_insert_tail(&a->hs, &s->node);
    a->n_hs++;
}

void td_hs_end(struct td_hs_slot *s)
{
    struct td_acceptor *a = s->a;
    if (!a)
        return;
    s->a = NULL;
    td_queue_remove(&s->node);
    a->n_hs--;
    if (td_queue_empty(&a->hs))
        a->evict_logged = false;
}

bool td_hs_mem_take(struct td_daemon *d, size_t n)
{
    if (d->hs_mem + n > d->cfg->limits.handshake_memory) {
        if (!d->hs_mem_logged) {
            LOG_WARN("accept",
                     "handshake buffers hold %llu bytes (limits.handshake_memory): refusing "
                     "larger handshakes until some finish",
                     (unsigned long long)d->hs_mem);
            d->hs_mem_logged = true;
        }
        return false;
    }
    d->hs_mem += n;
    return true;
}

void td_hs_mem_give(struct td_daemon *d, size_t n)
{
    d->hs_mem -= n < d->hs_mem ? n : d->hs_mem;
    if (d->hs_mem_logged && d->hs_mem * 2 < d->cfg->limits.handshake_memory)
        d->hs_mem_logged = false;
}

/* ---- front-end listeners ------------------------------------------------- */

static int listener_on_accept(struct td_acceptor *a)
{
    return conn_accept(td_container_of(a, struct td_listener, acc));
}

static int listener_open(struct td_listener *l, uint16_t port)
{
    const struct cfg_listener *cfg = l->cfg;
    struct td_acceptor_opts o;
    struct td_hostport listen = cfg->listen;

    /* A rebind of a listener on port 0 keeps the port its clients know. */
    if (listen.port == 0)
        listen.port = port;
    memset(&o, 0, sizeof(o));
    o.name = cfg->name;
    o.what = "listener";
    o.kind = cfg_listener_type_name(cfg->type);
    o.listen = &listen;
    o.accept_cb = listener_on_accept;
    o.ud = l;
    o.fds_per_conn = 2; /* the client and its target */
    o.counts_conns = true;
    return td_acceptor_open(l->d, &l->acc, &o);
}

int listener_start(struct td_daemon *d, struct td_listener *l, struct td_config *owner,
                   const struct cfg_listener *cfg, uint16_t port)
{
    memset(l, 0, sizeof(*l));
    td_queue_init(&l->retired);
    l->d = d;
    l->cfg = cfg;
    l->owner = cfg_ref(owner);
    return listener_open(l, port);
}

int listener_rebind(struct td_listener *l)
{
    uint16_t port = l->acc.port;

    td_acceptor_close(&l->acc);
    return listener_open(l, port);
}

void listener_close(struct td_listener *l)
{
    td_acceptor_close(&l->acc);
}

void listener_free(struct td_listener *l)
{
    cfg_free(l->owner);
    l->owner = NULL;
}
