/* Listening sockets, and the accept policy: connections are taken from the
 * kernel's backlog only while there is room (max_connections and the file
 * descriptor budget).  Otherwise they wait there, and nothing spins. */
#include "listener.h"

#include "addr.h"
#include "conn.h"
#include "error.h"
#include "log.h"
#include "netutil.h"

#include <string.h>

#define LISTEN_BACKLOG 511

static bool daemon_can_accept(struct td_daemon *d)
{
    uint64_t now = uv_now(d->loop);
    if (d->draining)
        return false;
    if (now < d->emfile_until)
        return false;
    if (d->n_conns >= d->cfg->limits.max_connections) {
        if (!d->accept_paused_logged) {
            LOG_WARN("accept", "max_connections (%u) reached: pausing accept",
                     d->cfg->limits.max_connections);
            d->accept_paused_logged = true;
        }
        return false;
    }
    if (!daemon_fds_available(d, 2)) {
        if (!d->emfile_logged) {
            LOG_WARN("accept",
                     "too many open files: %llu of %llu descriptors in use; pausing accept "
                     "until connections close",
                     (unsigned long long)d->fds_in_use, (unsigned long long)d->fd_budget);
            d->emfile_logged = true;
        }
        return false;
    }
    if (d->accept_paused_logged) {
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

void listener_try_accept(struct td_listener *l)
{
    while (l->open && l->pending_accept && daemon_can_accept(l->d)) {
        l->pending_accept = false;
        conn_accept(l);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct td_listener *l = server->data;
    if (status < 0) {
        if (status == UV_EMFILE || status == UV_ENFILE)
            daemon_note_emfile(l->d, "accept");
        else
            LOG_WARN("accept", "listener %s: %s", l->cfg->name, uv_strerror(status));
        return;
    }
    /* Not calling uv_accept() now makes libuv stop polling this socket until
     * we do; later connections stay in the kernel's backlog meanwhile. */
    l->pending_accept = true;
    listener_try_accept(l);
}

int listener_start(struct td_daemon *d, struct td_listener *l, const struct cfg_listener *cfg)
{
    struct sockaddr_storage ss;
    int len, r;
    char hp[300];

    memset(l, 0, sizeof(*l));
    l->d = d;
    l->cfg = cfg;
    td_hostport_format(hp, sizeof(hp), cfg->listen.host, cfg->listen.port);
    r = td_listen_addr(d->loop, &cfg->listen, &ss);
    if (r < 0) {
        LOG_ERROR("main", "listener %s: cannot resolve %s: %s", cfg->name, hp, uv_strerror(r));
        return td_err_from_uv(r);
    }
    uv_tcp_init(d->loop, &l->tcp);
    l->tcp.data = l;
    l->open = true;
    r = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->tcp, LISTEN_BACKLOG, on_connection);
    if (r < 0) {
        LOG_ERROR("main", "listener %s: cannot listen on %s: %s", cfg->name, hp, uv_strerror(r));
        return td_err_from_uv(r);
    }
    d->fds_in_use++;
    len = sizeof(ss);
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
    td_sockaddr_str((struct sockaddr *)&ss, l->addr, sizeof(l->addr));
    LOG_INFO("main", "listener %s (%s) listening on %s", cfg->name,
             cfg_listener_type_name(cfg->type), l->addr);
    return 0;
}

void listener_close(struct td_listener *l)
{
    if (!l->open)
        return;
    l->open = false;
    if (!uv_is_closing((uv_handle_t *)&l->tcp)) {
        if (l->d->fds_in_use > 0)
            l->d->fds_in_use--;
        uv_close((uv_handle_t *)&l->tcp, NULL);
    }
}
