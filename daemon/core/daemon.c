/* Daemon lifecycle: load and validate the config, bind every listener, run
 * the loop, and on a stop request drain connections for a deadline. */
#include "core/daemon.h"

#include "core/chunk.h"
#include "core/conn.h"
#include "util/error.h"
#include "jproxy/jp_client.h"
#include "jproxy/jp_server.h"
#include "core/listener.h"
#include "util/log.h"
#include "core/resolve.h"
#include "wstan/ws_client.h"
#include "wstan/ws_lws.h"
#include "wstan/ws_server.h"

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
        if (d->jp_servers[i])
            n += jp_server_active(d->jp_servers[i]);
        else if (d->ws_servers[i])
            n += ws_server_active(d->ws_servers[i]);
    return n;
}

static void daemon_finish(struct td_daemon *d)
{
    if (d->stopped)
        return;
    d->stopped = true;
    for (size_t i = 0; i < d->n_tunnels; i++)
        if (d->jp_clients[i])
            jp_client_shutdown(d->jp_clients[i]);
        else if (d->ws_clients[i])
            ws_client_shutdown(d->ws_clients[i]);
    for (size_t i = 0; i < d->n_servers; i++)
        if (d->ws_servers[i])
            ws_server_close_all(d->ws_servers[i]);
    /* Last: lws's handles must close for the loop to end. */
    ws_lws_stop(d);
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

struct ws_client *daemon_find_ws_client(struct td_daemon *d, const char *name)
{
    for (size_t i = 0; i < d->n_tunnels; i++)
        if (strcmp(d->cfg->tunnels[i].name, name) == 0)
            return d->ws_clients[i];
    return NULL;
}

struct jp_client *daemon_find_jp_client(struct td_daemon *d, const char *name)
{
    for (size_t i = 0; i < d->n_tunnels; i++)
        if (strcmp(d->cfg->tunnels[i].name, name) == 0)
            return d->jp_clients[i];
    return NULL;
}

void daemon_tunnel_open(struct td_daemon *d, struct conn *c, const char *host, uint16_t port)
{
    const char *route = c->l->cfg->route;
    for (size_t i = 0; i < d->n_tunnels; i++) {
        if (strcmp(d->cfg->tunnels[i].name, route) != 0)
            continue;
        if (d->jp_clients[i]) {
            jp_client_open(d->jp_clients[i], c, host, port);
            return;
        }
        if (d->ws_clients[i]) {
            ws_client_open(d->ws_clients[i], c, host, port);
            return;
        }
        break;
    }
    /* The config loader guarantees the name; this is a backstop. */
    conn_target_failed(c, TD_ENOTFOUND, "no such tunnel");
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

static void close_all_servers(struct td_daemon *d)
{
    for (size_t i = 0; i < d->n_servers; i++)
        if (d->jp_servers[i])
            jp_server_close_all(d->jp_servers[i]);
        else if (d->ws_servers[i])
            ws_server_close_all(d->ws_servers[i]);
}

static void on_drain_timer(uv_timer_t *t)
{
    struct td_daemon *d = t->data;
    LOG_INFO("main", "drain deadline reached: closing %u connections", d->n_conns);
    close_all_conns(d, END_SHUTDOWN);
    close_all_servers(d);
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
            close_all_servers(d);
            return;
        }
        d->draining = true;
        for (size_t i = 0; i < d->n_listeners; i++)
            listener_close(&d->listeners[i]);
        for (size_t i = 0; i < d->n_servers; i++)
            if (d->jp_servers[i])
                jp_server_stop_accepting(d->jp_servers[i]);
            else if (d->ws_servers[i])
                ws_server_stop_accepting(d->ws_servers[i]);
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
    LOG_DEBUG("main", "descriptor limit %llu, budget %llu", (unsigned long long)nofile,
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
    d.n_servers = d.cfg->n_servers;
    d.jp_servers = calloc(d.n_servers ? d.n_servers : 1, sizeof(*d.jp_servers));
    d.n_tunnels = d.cfg->n_tunnels;
    d.jp_clients = calloc(d.n_tunnels ? d.n_tunnels : 1, sizeof(*d.jp_clients));
    d.ws_servers = calloc(d.n_servers ? d.n_servers : 1, sizeof(*d.ws_servers));
    d.ws_clients = calloc(d.n_tunnels ? d.n_tunnels : 1, sizeof(*d.ws_clients));
    if (!d.jp_servers || !d.jp_clients || !d.ws_servers || !d.ws_clients) {
        LOG_ERROR("main", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < d.n_servers; i++) {
        const struct cfg_server *s = &d.cfg->servers[i];
        if (s->protocol == CFG_PROTO_JPROXY && jp_server_start(&d, s, &d.jp_servers[i]) != 0)
            goto out;
        if (s->protocol == CFG_PROTO_WSTAN && ws_server_start(&d, s, &d.ws_servers[i]) != 0)
            goto out;
    }
    for (size_t i = 0; i < d.n_tunnels; i++) {
        const struct cfg_tunnel *t = &d.cfg->tunnels[i];
        if (t->protocol == CFG_PROTO_JPROXY && jp_client_create(&d, t, &d.jp_clients[i]) != 0)
            goto out;
        if (t->protocol == CFG_PROTO_WSTAN && ws_client_create(&d, t, &d.ws_clients[i]) != 0)
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
        for (size_t i = 0; i < d.n_listeners; i++)
            if (d.listeners)
                listener_close(&d.listeners[i]);
        for (size_t i = 0; d.jp_servers && i < d.n_servers; i++)
            if (d.jp_servers[i]) {
                jp_server_stop_accepting(d.jp_servers[i]);
                jp_server_close_all(d.jp_servers[i]);
            }
        for (size_t i = 0; d.jp_clients && i < d.n_tunnels; i++)
            if (d.jp_clients[i])
                jp_client_shutdown(d.jp_clients[i]);
        for (size_t i = 0; d.ws_servers && i < d.n_servers; i++)
            if (d.ws_servers[i]) {
                ws_server_stop_accepting(d.ws_servers[i]);
                ws_server_close_all(d.ws_servers[i]);
            }
        for (size_t i = 0; d.ws_clients && i < d.n_tunnels; i++)
            if (d.ws_clients[i])
                ws_client_shutdown(d.ws_clients[i]);
        if (!d.stopped && opts->platform_stop && d.listeners)
            opts->platform_stop(&d);
    }
    /* lws first: its handles are its own to close (twice, see ws_lws.h). */
    ws_lws_free(&d);
    /* Whatever is still open (only after a start-up failure) is closed here,
     * so that the loop can be closed and leak checkers stay quiet. */
    uv_walk(&loop, walk_close, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        LOG_WARN("main", "event loop closed with handles still open");
    free(d.listeners);
    for (size_t i = 0; d.jp_servers && i < d.n_servers; i++)
        jp_server_free(d.jp_servers[i]);
    for (size_t i = 0; d.jp_clients && i < d.n_tunnels; i++)
        jp_client_free(d.jp_clients[i]);
    for (size_t i = 0; d.ws_servers && i < d.n_servers; i++)
        ws_server_free(d.ws_servers[i]);
    for (size_t i = 0; d.ws_clients && i < d.n_tunnels; i++)
        ws_client_free(d.ws_clients[i]);
    free(d.jp_servers);
    free(d.jp_clients);
    free(d.ws_servers);
    free(d.ws_clients);
    cfg_free(d.cfg);
    chunk_pool_drain();
    td_log_close();
    return rc;
}
