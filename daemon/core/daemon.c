/* Daemon lifecycle: load and validate the config, bind every listener, run
 * the loop, and on a stop request drain connections for a deadline. */
#include "core/daemon.h"

#include "core/chunk.h"
#include "core/conn.h"
#include "core/listener.h"
#include "core/resolve.h"
#include "platform/platform.h"
#include "util/error.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Descriptors kept out of the connection budget: the loop's own (epoll,
 * signal pipe, async), the log file, the resolver's threads, and one
 * connection libuv may hold per listener while accepting is paused. */
#define FD_RESERVE 24

bool daemon_fds_available(const struct td_daemon *d, uint64_t n)
{
    return d->fds_in_use + n <= d->fd_budget;
}

static void on_accept_timer(uv_timer_t *t)
{
    td_acceptor_try_all(t->data);
}

void daemon_accept_retry(struct td_daemon *d, uint64_t ms)
{
    if (d->stopped)
        return;
    if (!uv_is_active((uv_handle_t *)&d->accept_timer) ||
        uv_timer_get_due_in(&d->accept_timer) > ms)
        uv_timer_start(&d->accept_timer, on_accept_timer, ms, 0);
}

void daemon_note_emfile(struct td_daemon *d, const char *what)
{
    if (!d->emfile_logged) {
        LOG_WARN("accept", "too many open files (%s): pausing accept for 1s", what);
        d->emfile_logged = true;
    }
    d->emfile_until = uv_now(d->loop) + 1000;
    uv_timer_start(&d->accept_timer, on_accept_timer, 1000, 0);
}

static uint32_t daemon_server_tunnels(const struct td_daemon *d)
{
    uint32_t n = 0;
    for (size_t i = 0; i < d->n_servers; i++)
        if (d->servers[i].created)
            n += d->servers[i].proto->server->active(&d->servers[i]);
    return n;
}

/* Close every tunnel (client side) and let each protocol drop what keeps
 * the loop alive. */
static void daemon_close_tunnels(struct td_daemon *d)
{
    for (size_t i = 0; i < d->n_tunnels; i++)
        if (d->tunnels[i].created)
            d->tunnels[i].proto->tunnel->close(&d->tunnels[i]);
}

static void daemon_close_servers(struct td_daemon *d)
{
    for (size_t i = 0; i < d->n_servers; i++)
        if (d->servers[i].created)
            d->servers[i].proto->server->close(&d->servers[i]);
}

static void daemon_stop_servers(struct td_daemon *d)
{
    for (size_t i = 0; i < d->n_servers; i++) {
        struct td_server *s = &d->servers[i];
        if (!s->created)
            continue;
        s->proto->server->stop_accepting(s);
        if (s->proto->server->drain)
            s->proto->server->drain(s);
    }
}

static void daemon_protos_loop_stop(struct td_daemon *d)
{
    for (size_t i = 0; i < CFG_PROTO_COUNT; i++)
        if (d->kinds->protos[i] && d->kinds->protos[i]->loop_stop)
            d->kinds->protos[i]->loop_stop(d);
}

static void daemon_finish(struct td_daemon *d)
{
    if (d->stopped)
        return;
    d->stopped = true;
    daemon_close_tunnels(d);
    daemon_close_servers(d);
    /* Last: the protocols' own handles must close for the loop to end. */
    daemon_protos_loop_stop(d);
    uv_timer_stop(&d->drain_timer);
    uv_timer_stop(&d->accept_timer);
    uv_close((uv_handle_t *)&d->drain_timer, NULL);
    uv_close((uv_handle_t *)&d->accept_timer, NULL);
    if (d->opts->platform_stop)
        d->opts->platform_stop(d);
    LOG_INFO("main", "shutdown complete (%llu connections served)",
             (unsigned long long)d->stat_accepted);
}

void daemon_fds_freed(struct td_daemon *d)
{
    if (!d->draining)
        td_acceptor_try_all(d);
}

void daemon_conn_gone(struct td_daemon *d)
{
    if (d->draining) {
        if (d->n_conns == 0 && daemon_server_tunnels(d) == 0)
            daemon_finish(d);
        return;
    }
    daemon_fds_freed(d);
}

void daemon_server_gone(struct td_daemon *d)
{
    if (!d->draining)
        daemon_fds_freed(d);
    else if (d->n_conns == 0 && daemon_server_tunnels(d) == 0)
        daemon_finish(d);
}

struct td_tunnel *td_tunnel_find(struct td_daemon *d, const char *name)
{
    for (size_t i = 0; i < d->n_tunnels; i++)
        if (d->tunnels[i].created && strcmp(d->tunnels[i].cfg->name, name) == 0)
            return &d->tunnels[i];
    return NULL;
}

const struct td_proto *td_proto_find(const struct td_daemon *d, enum cfg_protocol p)
{
    return (unsigned)p < CFG_PROTO_COUNT ? d->kinds->protos[p] : NULL;
}

void daemon_tunnel_open(struct td_daemon *d, struct conn *c, const char *host, uint16_t port)
{
    struct td_tunnel *t = td_tunnel_find(d, c->lcfg->route);

    if (!t) {
        /* The config loader guarantees the name; this is a backstop. */
        conn_target_failed(c, TD_ENOTFOUND, "no such tunnel");
        return;
    }
    t->proto->tunnel->open_stream(t, c, host, port);
}

static void close_all_conns(struct td_daemon *d, const char *reason)
{
    /* conn_close() never frees synchronously, so the list stays valid. */
    struct td_queue *q;
    for (q = d->conns.next; q != &d->conns; q = q->next) {
        struct conn *c = td_container_of(q, struct conn, node);
        conn_close(c, reason);
    }
}

static void on_drain_timer(uv_timer_t *t)
{
    struct td_daemon *d = t->data;
    LOG_INFO("main", "drain deadline reached: closing %u connections", d->n_conns);
    close_all_conns(d, END_SHUTDOWN);
    daemon_close_servers(d);
}

void daemon_request(struct td_daemon *d, enum daemon_request req)
{
    switch (req) {
    case DAEMON_REQ_STOP:
        if (d->stopped)
            return;
        if (d->draining) {
            LOG_INFO("main", "second stop request: closing %u connections now", d->n_conns);
            close_all_conns(d, END_SHUTDOWN);
            daemon_close_servers(d);
            return;
        }
        d->draining = true;
        for (size_t i = 0; i < d->n_listeners; i++)
            listener_close(&d->listeners[i]);
        daemon_stop_servers(d);
        if (d->n_conns == 0 && daemon_server_tunnels(d) == 0) {
            LOG_INFO("main", "stopping: no open connections");
            daemon_finish(d);
            return;
        }
        LOG_INFO("main", "stopping: draining %u connections and %u tunnels for up to %llu ms",
                 d->n_conns, daemon_server_tunnels(d),
                 (unsigned long long)d->cfg->limits.drain_timeout_ms);
        uv_timer_start(&d->drain_timer, on_drain_timer, d->cfg->limits.drain_timeout_ms, 0);
        return;
    case DAEMON_REQ_REOPEN_LOGS:
        if (td_log_reopen() != 0)
            LOG_ERROR("main", "cannot reopen the log file");
        else
            LOG_INFO("main", "log file reopened");
        return;
    }
}

static void print_config_errors(const char *path, int r, struct cfg_errors *errs)
{
    if (errs->n == 0)
        fprintf(stderr, "%s: %s\n", path, td_strerror(r));
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s\n", errs->msgs[i]);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int daemon_run(const struct daemon_opts *opts)
{
    struct td_daemon d;
    struct cfg_errors errs = {0};
    uv_loop_t loop;
    uint64_t nofile;
    int r, rc = 1;

    memset(&d, 0, sizeof(d));
    d.opts = opts;
    td_queue_init(&d.conns);
    td_queue_init(&d.acceptors);
    td_queue_init(&d.resolves);

    r = cfg_load_file(opts->config_path, &d.cfg, &errs);
    if (r != 0) {
        print_config_errors(opts->config_path, r, &errs);
        cfg_errors_free(&errs);
        return 1;
    }
    /* Before anything can start libuv's thread pool. */
    td_resolve_pool_setup(d.cfg->limits.resolver_threads);
    td_log_set_level(opts->log_level_override >= 0 ? opts->log_level_override : d.cfg->log.level);
    r = td_log_open(d.cfg->log.file);
    if (r != 0) {
        fprintf(stderr, "%s: cannot open log file %s: %s\n", opts->config_path, d.cfg->log.file,
                td_strerror(r));
        cfg_free(d.cfg);
        return 1;
    }

    if (uv_loop_init(&loop) != 0) {
        LOG_ERROR("main", "cannot create the event loop");
        cfg_free(d.cfg);
        return 1;
    }
    d.loop = &loop;
    uv_timer_init(&loop, &d.drain_timer);
    d.drain_timer.data = &d;
    uv_timer_init(&loop, &d.accept_timer);
    d.accept_timer.data = &d;

    nofile = fdlimit_raise();
    d.fd_budget = nofile > FD_RESERVE + 2 ? nofile - FD_RESERVE : 2;
    LOG_INFO("main", "descriptor limit %llu, budget %llu", (unsigned long long)nofile,
             (unsigned long long)d.fd_budget);

    d.n_listeners = d.cfg->n_listeners;
    d.listeners = calloc(d.n_listeners ? d.n_listeners : 1, sizeof(*d.listeners));
    if (!d.listeners) {
        LOG_ERROR("main", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < d.n_listeners; i++) {
        if (listener_start(&d, &d.listeners[i], &d.cfg->listeners[i]) != 0)
            goto out;
    }
    d.kinds = opts->kinds;
    d.n_servers = d.cfg->n_servers;
    d.servers = calloc(d.n_servers ? d.n_servers : 1, sizeof(*d.servers));
    d.n_tunnels = d.cfg->n_tunnels;
    d.tunnels = calloc(d.n_tunnels ? d.n_tunnels : 1, sizeof(*d.tunnels));
    if (!d.servers || !d.tunnels) {
        LOG_ERROR("main", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < d.n_servers; i++) {
        struct td_server *s = &d.servers[i];
        s->d = &d;
        s->cfg = &d.cfg->servers[i];
        s->proto = td_proto_find(&d, s->cfg->protocol);
        if (!s->proto || !s->proto->server) {
            LOG_ERROR("main", "server %s: this build has no %s server", s->cfg->name,
                      cfg_protocol_name(s->cfg->protocol));
            goto out;
        }
        s->owner = cfg_ref(d.cfg);
        if (s->proto->server->create(s) != 0)
            goto out;
        s->created = true;
        if (s->proto->server->start(s) != 0)
            goto out;
    }
    for (size_t i = 0; i < d.n_tunnels; i++) {
        struct td_tunnel *t = &d.tunnels[i];
        t->d = &d;
        t->cfg = &d.cfg->tunnels[i];
        t->proto = td_proto_find(&d, t->cfg->protocol);
        if (!t->proto || !t->proto->tunnel) {
            LOG_ERROR("main", "tunnel %s: this build has no %s client", t->cfg->name,
                      cfg_protocol_name(t->cfg->protocol));
            goto out;
        }
        t->owner = cfg_ref(d.cfg);
        if (t->proto->tunnel->create(t) != 0)
            goto out;
        t->created = true;
        if (t->proto->tunnel->start && t->proto->tunnel->start(t) != 0)
            goto out;
    }
    if (privdrop(d.cfg->user) != 0)
        goto out;
    if (opts->platform_start)
        opts->platform_start(&d);
    LOG_INFO("main", "tunneld %s ready (%zu listeners, config %s)", TUNNELD_VERSION, d.n_listeners,
             d.cfg->path);

    uv_run(&loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    if (rc != 0) {
        for (size_t i = 0; d.listeners && i < d.n_listeners; i++)
            listener_close(&d.listeners[i]);
        for (size_t i = 0; d.servers && i < d.n_servers; i++)
            if (d.servers[i].created)
                d.servers[i].proto->server->stop_accepting(&d.servers[i]);
        daemon_close_servers(&d);
        daemon_close_tunnels(&d);
        if (!d.stopped && opts->platform_stop && d.listeners)
            opts->platform_stop(&d);
    }
    /* The protocols first: their libraries' handles are theirs to close. */
    for (size_t i = 0; d.kinds && i < CFG_PROTO_COUNT; i++)
        if (d.kinds->protos[i] && d.kinds->protos[i]->loop_done)
            d.kinds->protos[i]->loop_done(&d);
    /* Whatever is still open (only after a start-up failure) is closed here,
     * so that the loop can be closed and leak checkers stay quiet. */
    uv_walk(&loop, walk_close, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        LOG_WARN("main", "event loop closed with handles still open");
    for (size_t i = 0; d.listeners && i < d.n_listeners; i++)
        listener_free(&d.listeners[i]);
    free(d.listeners);
    for (size_t i = 0; d.servers && i < d.n_servers; i++) {
        if (d.servers[i].created)
            d.servers[i].proto->server->free(&d.servers[i]);
        cfg_free(d.servers[i].owner);
    }
    for (size_t i = 0; d.tunnels && i < d.n_tunnels; i++) {
        if (d.tunnels[i].created)
            d.tunnels[i].proto->tunnel->free(&d.tunnels[i]);
        cfg_free(d.tunnels[i].owner);
    }
    free(d.servers);
    free(d.tunnels);
    cfg_free(d.cfg);
    chunk_pool_drain();
    td_log_close();
    return rc;
}
