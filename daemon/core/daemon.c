/* Daemon lifecycle: load and validate the config, bind every listener, run
 * the loop, reload (validate a new config, apply only the difference), and
 * on a stop request drain connections for a deadline. */
#include "core/daemon.h"

#include "core/chunk.h"
#include "core/conn.h"
#include "core/listener.h"
#include "core/resolve.h"
#include "core/stats.h"
#include "core/users.h"
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

/* ---- the entries: tunnels, servers, listeners ---------------------------- */

/* A tunnel for entry tc of config owner: created and started, or NULL
 * (logged). */
static struct td_tunnel *daemon_tunnel_new(struct td_daemon *d, struct td_config *owner,
                                           const struct cfg_tunnel *tc)
{
    struct td_tunnel *t = calloc(1, sizeof(*t));

    if (!t) {
        LOG_ERROR("main", "tunnel %s: out of memory", tc->name);
        return NULL;
    }
    td_queue_init(&t->retired);
    t->d = d;
    t->cfg = tc;
    t->proto = td_proto_find(d, tc->protocol);
    if (!t->proto || !t->proto->tunnel) {
        LOG_ERROR("main", "tunnel %s: this build has no %s client", tc->name,
                  cfg_protocol_name(tc->protocol));
        free(t);
        return NULL;
    }
    t->owner = cfg_ref(owner);
    if (t->proto->tunnel->create(t) != 0) {
        cfg_free(t->owner);
        free(t);
        return NULL;
    }
    t->created = true;
    if (t->proto->tunnel->start && t->proto->tunnel->start(t) != 0) {
        t->proto->tunnel->close(t);
        t->closed = true;
        td_queue_insert_tail(&d->retired_tunnels, &t->retired);
        return NULL;
    }
    return t;
}

static uint32_t daemon_tunnel_streams(struct td_tunnel *t)
{
    struct td_tunnel_stats st;
    if (!t->proto->tunnel->stats)
        return 0;
    t->proto->tunnel->stats(t, &st);
    return st.streams;
}

static void on_retire_timer(uv_timer_t *tm);

/* A tunnel no route will use again.  now: close it at once (its
 * connections fail: a bounce); else it closes when its last stream ends
 * (a reload replaced it).  Freed after the loop either way. */
static void daemon_tunnel_retire(struct td_daemon *d, struct td_tunnel *t, bool now)
{
    td_queue_insert_tail(&d->retired_tunnels, &t->retired);
    if (now || daemon_tunnel_streams(t) == 0) {
        t->proto->tunnel->close(t);
        t->closed = true;
        return;
    }
    if (!uv_is_active((uv_handle_t *)&d->retire_timer))
        uv_timer_start(&d->retire_timer, on_retire_timer, 1000, 1000);
}

static void on_retire_timer(uv_timer_t *tm)
{
    struct td_daemon *d = tm->data;
    bool waiting = false;

    for (struct td_queue *q = d->retired_tunnels.next; q != &d->retired_tunnels; q = q->next) {
        struct td_tunnel *t = td_container_of(q, struct td_tunnel, retired);
        if (t->closed)
            continue;
        if (daemon_tunnel_streams(t) == 0) {
            t->proto->tunnel->close(t);
            t->closed = true;
        } else {
            waiting = true;
        }
    }
    if (!waiting)
        uv_timer_stop(tm);
}

static void daemon_tunnel_free(struct td_tunnel *t)
{
    if (t->created)
        t->proto->tunnel->free(t);
    cfg_free(t->owner);
    free(t);
}

static struct td_server *daemon_server_new(struct td_daemon *d, struct td_config *owner,
                                           const struct cfg_server *sc, uint16_t port)
{
    struct td_server *s = calloc(1, sizeof(*s));

    if (!s) {
        LOG_ERROR("main", "server %s: out of memory", sc->name);
        return NULL;
    }
    td_queue_init(&s->retired);
    s->d = d;
    s->cfg = sc;
    s->listen = sc->listen;
    if (s->listen.port == 0)
        s->listen.port = port;
    s->proto = td_proto_find(d, sc->protocol);
    if (!s->proto || !s->proto->server) {
        LOG_ERROR("main", "server %s: this build has no %s server", sc->name,
                  cfg_protocol_name(sc->protocol));
        free(s);
        return NULL;
    }
    s->owner = cfg_ref(owner);
    if (s->proto->server->create(s) != 0) {
        /* create may have allocated part of its state. */
        s->created = s->impl != NULL;
        td_queue_insert_tail(&d->retired_servers, &s->retired);
        return NULL;
    }
    s->created = true;
    if (s->proto->server->start(s) != 0) {
        s->proto->server->stop_accepting(s);
        td_queue_insert_tail(&d->retired_servers, &s->retired);
        return NULL;
    }
    return s;
}

/* A server a reload or a bounce replaced: no new tunnels; the ones it has
 * finish (idle ones close now).  Freed after the loop. */
static void daemon_server_retire(struct td_daemon *d, struct td_server *s)
{
    s->proto->server->stop_accepting(s);
    if (s->proto->server->drain)
        s->proto->server->drain(s);
    td_queue_insert_tail(&d->retired_servers, &s->retired);
}

static void daemon_server_free(struct td_server *s)
{
    if (s->created)
        s->proto->server->free(s);
    cfg_free(s->owner);
    free(s);
}

static struct td_listener *daemon_listener_new(struct td_daemon *d, struct td_config *owner,
                                               const struct cfg_listener *lc, uint16_t port)
{
    struct td_listener *l = malloc(sizeof(*l));

    if (!l) {
        LOG_ERROR("main", "listener %s: out of memory", lc->name);
        return NULL;
    }
    if (listener_start(d, l, owner, lc, port) != 0) {
        listener_close(l);
        td_queue_insert_tail(&d->retired_listeners, &l->retired);
        return NULL;
    }
    return l;
}

/* Its connections may still point at it: closed now, freed after the loop. */
static void daemon_listener_retire(struct td_daemon *d, struct td_listener *l)
{
    listener_close(l);
    td_queue_insert_tail(&d->retired_listeners, &l->retired);
}

static uint32_t daemon_server_tunnels(const struct td_daemon *d)
{
    uint32_t n = 0;
    for (size_t i = 0; i < d->n_servers; i++)
        n += d->servers[i]->proto->server->active(d->servers[i]);
    for (struct td_queue *q = d->retired_servers.next; q != &d->retired_servers; q = q->next) {
        struct td_server *s = td_container_of(q, struct td_server, retired);
        if (s->created)
            n += s->proto->server->active(s);
    }
    return n;
}

/* Close every tunnel (client side), replaced ones too. */
static void daemon_close_tunnels(struct td_daemon *d)
{
    for (size_t i = 0; i < d->n_tunnels; i++)
        if (!d->tunnels[i]->closed) {
            d->tunnels[i]->proto->tunnel->close(d->tunnels[i]);
            d->tunnels[i]->closed = true;
        }
    for (struct td_queue *q = d->retired_tunnels.next; q != &d->retired_tunnels; q = q->next) {
        struct td_tunnel *t = td_container_of(q, struct td_tunnel, retired);
        if (t->created && !t->closed) {
            t->proto->tunnel->close(t);
            t->closed = true;
        }
    }
}

static void daemon_close_servers(struct td_daemon *d)
{
    for (size_t i = 0; i < d->n_servers; i++)
        d->servers[i]->proto->server->close(d->servers[i]);
    for (struct td_queue *q = d->retired_servers.next; q != &d->retired_servers; q = q->next) {
        struct td_server *s = td_container_of(q, struct td_server, retired);
        if (s->created)
            s->proto->server->close(s);
    }
}

static void daemon_stop_servers(struct td_daemon *d)
{
    for (size_t i = 0; i < d->n_servers; i++) {
        struct td_server *s = d->servers[i];
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

static void daemon_services_stop(struct td_daemon *d)
{
    for (size_t i = 0; i < TD_MAX_SERVICES && d->kinds->services[i]; i++)
        if (d->kinds->services[i]->stop)
            d->kinds->services[i]->stop(d);
}

static void daemon_finish(struct td_daemon *d)
{
    if (d->stopped)
        return;
    d->stopped = true;
    daemon_services_stop(d);
    daemon_close_tunnels(d);
    daemon_close_servers(d);
    /* Last: the protocols' own handles must close for the loop to end. */
    daemon_protos_loop_stop(d);
    td_users_stop(d);
    uv_timer_stop(&d->drain_timer);
    uv_timer_stop(&d->accept_timer);
    uv_timer_stop(&d->retire_timer);
    uv_close((uv_handle_t *)&d->drain_timer, NULL);
    uv_close((uv_handle_t *)&d->accept_timer, NULL);
    uv_close((uv_handle_t *)&d->retire_timer, NULL);
    uv_close((uv_handle_t *)&d->users_timer, NULL);
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
        if (strcmp(d->tunnels[i]->cfg->name, name) == 0)
            return d->tunnels[i];
    return NULL;
}

struct td_server *td_server_find(struct td_daemon *d, const char *name)
{
    for (size_t i = 0; i < d->n_servers; i++)
        if (strcmp(d->servers[i]->cfg->name, name) == 0)
            return d->servers[i];
    return NULL;
}

struct td_listener *td_listener_find(struct td_daemon *d, const char *name)
{
    for (size_t i = 0; i < d->n_listeners; i++)
        if (strcmp(d->listeners[i]->cfg->name, name) == 0)
            return d->listeners[i];
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
        /* The route's tunnel went away with a reload (the loader checks the
         * names of one config); the connection fails like any other. */
        conn_target_failed(c, TD_ENOTFOUND, "no such tunnel");
        return;
    }
    c->tunnel = t;
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

/* ---- bounce --------------------------------------------------------------- */

int daemon_bounce(struct td_daemon *d, const char *name, const char **kind)
{
    for (size_t i = 0; i < d->n_tunnels; i++) {
        struct td_tunnel *t = d->tunnels[i], *nt;
        if (strcmp(t->cfg->name, name) != 0)
            continue;
        *kind = "tunnel";
        LOG_INFO("main", "tunnel %s: bounced: closing its connections and links", name);
        /* The replacement first: requests that arrive meanwhile go to it. */
        nt = daemon_tunnel_new(d, t->owner, t->cfg);
        if (!nt)
            return TD_EIO;
        d->tunnels[i] = nt;
        /* Its connections end first, so that the tunnel closes with no
         * stream left (conn_close() never frees synchronously). */
        for (struct td_queue *q = d->conns.next; q != &d->conns; q = q->next) {
            struct conn *c = td_container_of(q, struct conn, node);
            if (c->tunnel == t)
                conn_close(c, END_SHUTDOWN);
        }
        daemon_tunnel_retire(d, t, true);
        return 0;
    }
    for (size_t i = 0; i < d->n_listeners; i++) {
        struct td_listener *l = d->listeners[i];
        if (strcmp(l->cfg->name, name) != 0)
            continue;
        *kind = "listener";
        LOG_INFO("main", "listener %s: bounced: binding again", name);
        return listener_rebind(l);
    }
    for (size_t i = 0; i < d->n_servers; i++) {
        struct td_server *s = d->servers[i], *ns;
        if (strcmp(s->cfg->name, name) != 0)
            continue;
        *kind = "server";
        LOG_INFO("main", "server %s: bounced: binding again (its tunnels carry on)", name);
        /* The old one lets go of its address before the new one binds it. */
        daemon_server_retire(d, s);
        ns = daemon_server_new(d, s->owner, s->cfg, s->bound_port);
        if (!ns) {
            /* Keep serving on a fresh instance is impossible: the entry
             * stays retired, and says why in the log. */
            memmove(&d->servers[i], &d->servers[i + 1],
                    (d->n_servers - i - 1) * sizeof(*d->servers));
            d->n_servers--;
            return TD_EIO;
        }
        d->servers[i] = ns;
        return 0;
    }
    return TD_ENOTFOUND;
}

/* ---- reload ----------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool hp_eq(const struct td_hostport *a, const struct td_hostport *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

static bool rules_eq(const struct cfg_rules *a, const struct cfg_rules *b)
{
    return a->n_allow == b->n_allow && a->n_deny == b->n_deny &&
           (a->n_allow == 0 || memcmp(a->allow, b->allow, a->n_allow * sizeof(*a->allow)) == 0) &&
           (a->n_deny == 0 || memcmp(a->deny, b->deny, a->n_deny * sizeof(*a->deny)) == 0);
}

/* A listener or server that a reload replaces on the same address keeps the
 * port it had when that address says port 0: its clients know that one. */
static uint16_t listener_old_port(struct td_daemon *d, const struct cfg_listener *lc)
{
    const struct td_listener *o = td_listener_find(d, lc->name);
    return o && lc->listen.port == 0 && hp_eq(&o->cfg->listen, &lc->listen) ? o->acc.port : 0;
}

static uint16_t server_old_port(struct td_daemon *d, const struct cfg_server *sc)
{
    const struct td_server *o = td_server_find(d, sc->name);
    return o && sc->listen.port == 0 && hp_eq(&o->cfg->listen, &sc->listen) ? o->bound_port : 0;
}

static bool listener_same(const struct cfg_listener *a, const struct cfg_listener *b)
{
    return a->type == b->type && hp_eq(&a->listen, &b->listen) && a->has_target == b->has_target &&
           (!a->has_target || hp_eq(&a->target, &b->target)) && str_eq(a->route, b->route) &&
           a->auth == b->auth && rules_eq(&a->rules, &b->rules);
}

static bool strv_eq(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static bool tunnel_same(const struct cfg_tunnel *a, const struct cfg_tunnel *b)
{
    return a->protocol == b->protocol && str_eq(a->url, b->url) && str_eq(a->key, b->key) &&
           a->nonce_mode == b->nonce_mode && a->pool_size == b->pool_size &&
           a->pool_max_idle_ms == b->pool_max_idle_ms && str_eq(a->tls_ca, b->tls_ca) &&
           a->tls_verify == b->tls_verify && str_eq(a->tls_sni, b->tls_sni) &&
           a->has_http_proxy == b->has_http_proxy &&
           (!a->has_http_proxy || hp_eq(&a->http_proxy, &b->http_proxy)) &&
           hp_eq(&a->jp_server, &b->jp_server) && str_eq(a->key_file, b->key_file) &&
           str_eq(a->private_key, b->private_key) && str_eq(a->token, b->token) &&
           a->reconnect_max_ms == b->reconnect_max_ms && a->max_streams == b->max_streams;
}

static bool server_same(const struct cfg_server *a, const struct cfg_server *b)
{
    return a->protocol == b->protocol && hp_eq(&a->listen, &b->listen) &&
           str_eq(a->path, b->path) && a->nonce_mode == b->nonce_mode &&
           str_eq(a->tls_cert, b->tls_cert) && str_eq(a->tls_key, b->tls_key) &&
           strv_eq(a->keys, a->n_keys, b->keys, b->n_keys) &&
           a->timestamp_window_ms == b->timestamp_window_ms && str_eq(a->users_dir, b->users_dir) &&
           a->max_streams == b->max_streams && rules_eq(&a->rules, &b->rules);
}

static void errs_add(struct cfg_errors *errs, const char *msg)
{
    char **n = realloc(errs->msgs, (errs->n + 1) * sizeof(*n));
    if (!n)
        return;
    errs->msgs = n;
    errs->msgs[errs->n] = strdup(msg);
    if (errs->msgs[errs->n])
        errs->n++;
}

static int daemon_reload_apply(struct td_daemon *d, struct cfg_errors *errs,
                               struct td_reload_result *res);

int daemon_reload(struct td_daemon *d, struct cfg_errors *errs, struct td_reload_result *res)
{
    int r;

    memset(res, 0, sizeof(*res));
    td_notify("RELOADING=1\nSTATUS=reloading");
    r = daemon_reload_apply(d, errs, res);
    td_notify(r == 0 ? "READY=1\nSTATUS=running"
                     : "READY=1\nSTATUS=running (the last reload was refused)");
    return r;
}

static int daemon_reload_apply(struct td_daemon *d, struct cfg_errors *errs,
                               struct td_reload_result *res)
{
    struct td_config *nc = NULL, *old = d->cfg;
    struct td_listener **nl = NULL;
    struct td_tunnel **nt = NULL;
    struct td_server **ns = NULL;
    struct td_state *nstate, *ostate;
    char why[512];
    int r;

    r = cfg_load_file(d->opts->config_path, &nc, errs);
    if (r != 0)
        return r == TD_ECONFIG ? r : TD_ECONFIG;
    /* The managed state too: a state that does not parse changes nothing. */
    nstate = calloc(1, sizeof(*nstate));
    if (!nstate) {
        cfg_free(nc);
        return TD_ENOMEM;
    }
    r = td_state_load(nc->state_dir, nstate, why, sizeof(why));
    if (r != 0) {
        char msg[700];
        snprintf(msg, sizeof(msg), "%s/state: %s", nc->state_dir, why[0] ? why : td_strerror(r));
        errs_add(errs, msg);
        free(nstate);
        cfg_free(nc);
        return TD_ECONFIG;
    }
    if (td_state_conflict(nstate, nc)) {
        char msg[700];
        snprintf(msg, sizeof(msg),
                 "%s: users: '%s' is also a managed user in %s/state; keep it in one place",
                 nc->path, td_state_conflict(nstate, nc), nc->state_dir);
        errs_add(errs, msg);
        td_state_free(nstate);
        free(nstate);
        cfg_free(nc);
        return TD_ECONFIG;
    }
    if (!str_eq(old->user, nc->user))
        LOG_WARN("main", "reload: 'user' changed; it takes effect at the next start");
    nl = calloc(nc->n_listeners + 1, sizeof(*nl));
    nt = calloc(nc->n_tunnels + 1, sizeof(*nt));
    ns = calloc(nc->n_servers + 1, sizeof(*ns));
    if (!nl || !nt || !ns) {
        r = TD_ENOMEM;
        goto fail;
    }
    /* Phase 1, nothing changes yet: kept entries are matched, and entries
     * that are new bind their addresses (any failure undoes phase 1). */
    for (size_t i = 0; i < nc->n_listeners; i++) {
        const struct cfg_listener *lc = &nc->listeners[i];
        struct td_listener *o = td_listener_find(d, lc->name);
        if (o && listener_same(o->cfg, lc)) {
            nl[i] = o;
            res->kept++;
        } else if (!o) {
            nl[i] = daemon_listener_new(d, nc, lc, 0);
            if (!nl[i]) {
                snprintf(why, sizeof(why), "listener %s: cannot start (see the log)", lc->name);
                errs_add(errs, why);
                r = TD_EIO;
                goto fail;
            }
            res->started++;
        }
    }
    for (size_t i = 0; i < nc->n_servers; i++) {
        const struct cfg_server *sc = &nc->servers[i];
        struct td_server *o = td_server_find(d, sc->name);
        if (o && server_same(o->cfg, sc)) {
            ns[i] = o;
            res->kept++;
        } else if (!o) {
            struct td_state *keep = d->state;
            struct td_config *keepc = d->cfg;
            /* A new server loads the new users. */
            d->state = nstate;
            d->cfg = nc;
            ns[i] = daemon_server_new(d, nc, sc, 0);
            d->state = keep;
            d->cfg = keepc;
            if (!ns[i]) {
                snprintf(why, sizeof(why), "server %s: cannot start (see the log)", sc->name);
                errs_add(errs, why);
                r = TD_EIO;
                goto fail;
            }
            res->started++;
        }
    }
    for (size_t i = 0; i < nc->n_tunnels; i++) {
        const struct cfg_tunnel *tc = &nc->tunnels[i];
        struct td_tunnel *o = td_tunnel_find(d, tc->name);
        if (o && tunnel_same(o->cfg, tc)) {
            nt[i] = o;
            res->kept++;
        } else if (!o) {
            nt[i] = daemon_tunnel_new(d, nc, tc);
            if (!nt[i]) {
                snprintf(why, sizeof(why), "tunnel %s: cannot start (see the log)", tc->name);
                errs_add(errs, why);
                r = TD_EIO;
                goto fail;
            }
            res->started++;
        }
    }
    /* Phase 2: the new config is in.  Changed entries are replaced (the old
     * one closes its socket first, so the new one can bind the same
     * address), removed ones stop; their connections finish. */
    d->cfg = nc;
    ostate = d->state;
    d->state = nstate;
    d->generation++;
    nc->generation = d->generation;
    for (size_t i = 0; i < d->n_listeners; i++) {
        struct td_listener *o = d->listeners[i];
        bool kept = false, named = false;
        for (size_t j = 0; j < nc->n_listeners; j++) {
            kept |= nl[j] == o;
            named |= strcmp(nc->listeners[j].name, o->cfg->name) == 0;
        }
        if (!kept) {
            daemon_listener_retire(d, o);
            res->stopped += !named;
        }
    }
    for (size_t i = 0; i < nc->n_listeners; i++) {
        if (nl[i])
            continue;
        nl[i] =
            daemon_listener_new(d, nc, &nc->listeners[i], listener_old_port(d, &nc->listeners[i]));
        if (!nl[i]) {
            snprintf(why, sizeof(why), "listener %s: cannot bind its new address (see the log)",
                     nc->listeners[i].name);
            errs_add(errs, why);
        }
        res->replaced++;
    }
    for (size_t i = 0; i < d->n_servers; i++) {
        struct td_server *o = d->servers[i];
        bool kept = false, named = false;
        for (size_t j = 0; j < nc->n_servers; j++) {
            kept |= ns[j] == o;
            named |= strcmp(nc->servers[j].name, o->cfg->name) == 0;
        }
        if (!kept) {
            daemon_server_retire(d, o);
            res->stopped += !named;
        }
    }
    for (size_t i = 0; i < nc->n_servers; i++) {
        if (ns[i])
            continue;
        ns[i] = daemon_server_new(d, nc, &nc->servers[i], server_old_port(d, &nc->servers[i]));
        if (!ns[i]) {
            snprintf(why, sizeof(why), "server %s: cannot start (see the log)",
                     nc->servers[i].name);
            errs_add(errs, why);
        }
        res->replaced++;
    }
    for (size_t i = 0; i < d->n_tunnels; i++) {
        struct td_tunnel *o = d->tunnels[i];
        bool kept = false, named = false;
        for (size_t j = 0; j < nc->n_tunnels; j++) {
            kept |= nt[j] == o;
            named |= strcmp(nc->tunnels[j].name, o->cfg->name) == 0;
        }
        if (!kept) {
            daemon_tunnel_retire(d, o, false);
            res->stopped += !named;
        }
    }
    for (size_t i = 0; i < nc->n_tunnels; i++) {
        if (nt[i])
            continue;
        nt[i] = daemon_tunnel_new(d, nc, &nc->tunnels[i]);
        if (!nt[i]) {
            snprintf(why, sizeof(why), "tunnel %s: cannot start (see the log)",
                     nc->tunnels[i].name);
            errs_add(errs, why);
        }
        res->replaced++;
    }
    /* Entries that failed to come back are left out (their errors are in
     * errs and the log). */
    d->n_listeners = 0;
    for (size_t i = 0; i < nc->n_listeners; i++)
        if (nl[i])
            nl[d->n_listeners++] = nl[i];
    free(d->listeners);
    d->listeners = nl;
    d->n_servers = 0;
    for (size_t i = 0; i < nc->n_servers; i++)
        if (ns[i])
            ns[d->n_servers++] = ns[i];
    free(d->servers);
    d->servers = ns;
    d->n_tunnels = 0;
    for (size_t i = 0; i < nc->n_tunnels; i++)
        if (nt[i])
            nt[d->n_tunnels++] = nt[i];
    free(d->tunnels);
    d->tunnels = nt;
    /* Kept servers get the new users; old names stay valid until then,
     * since the old config is released only below. */
    td_users_apply(d, nc);
    td_users_schedule(d);
    td_state_free(ostate);
    free(ostate);
    td_log_set_level(d->opts->log_level_override >= 0 ? d->opts->log_level_override
                                                      : nc->log.level);
    if (!str_eq(old->log.file, nc->log.file) && td_log_open(nc->log.file) != 0)
        LOG_ERROR("main", "reload: cannot open the log file %s", nc->log.file);
    else if (td_log_reopen() != 0)
        LOG_ERROR("main", "reload: cannot reopen the log file");
    for (size_t i = 0; i < TD_MAX_SERVICES && d->kinds->services[i]; i++)
        if (d->kinds->services[i]->reload)
            d->kinds->services[i]->reload(d, old);
    cfg_free(old);
    LOG_INFO("main",
             "configuration reloaded (generation %llu: %u started, %u replaced, %u "
             "kept, %u stopped)",
             (unsigned long long)d->generation, res->started, res->replaced, res->kept,
             res->stopped);
    return errs->n ? TD_EIO : 0;
fail:
    /* Undo phase 1: what was started for the new config goes again. */
    for (size_t i = 0; nl && i < nc->n_listeners; i++)
        if (nl[i] && !td_listener_find(d, nc->listeners[i].name))
            daemon_listener_retire(d, nl[i]);
    for (size_t i = 0; ns && i < nc->n_servers; i++)
        if (ns[i] && !td_server_find(d, nc->servers[i].name)) {
            daemon_server_retire(d, ns[i]);
            ns[i]->proto->server->close(ns[i]);
        }
    for (size_t i = 0; nt && i < nc->n_tunnels; i++)
        if (nt[i] && !td_tunnel_find(d, nc->tunnels[i].name))
            daemon_tunnel_retire(d, nt[i], true);
    free(nl);
    free(ns);
    free(nt);
    td_state_free(nstate);
    free(nstate);
    cfg_free(nc);
    return r;
}

static void daemon_reload_logged(struct td_daemon *d)
{
    struct cfg_errors errs = {0};
    struct td_reload_result res;
    int r;

    r = daemon_reload(d, &errs, &res);
    if (r != 0) {
        LOG_ERROR("main", "reload failed (the running configuration is unchanged%s):",
                  r == TD_EIO ? " where it could not be applied" : "");
        for (size_t i = 0; i < errs.n; i++)
            LOG_ERROR("main", "  %s", errs.msgs[i]);
    }
    cfg_errors_free(&errs);
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
        td_notify("STOPPING=1\nSTATUS=draining");
        for (size_t i = 0; i < d->n_listeners; i++)
            listener_close(d->listeners[i]);
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
    case DAEMON_REQ_RELOAD:
        if (d->draining || d->stopped)
            return;
        daemon_reload_logged(d);
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

static void daemon_services_free(struct td_daemon *d)
{
    for (size_t i = 0; d->kinds && i < TD_MAX_SERVICES && d->kinds->services[i]; i++)
        if (d->kinds->services[i]->free)
            d->kinds->services[i]->free(d);
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
    d.kinds = opts->kinds;
    td_queue_init(&d.conns);
    td_queue_init(&d.acceptors);
    td_queue_init(&d.resolves);
    td_queue_init(&d.retired_tunnels);
    td_queue_init(&d.retired_servers);
    td_queue_init(&d.retired_listeners);

    r = cfg_load_file(opts->config_path, &d.cfg, &errs);
    if (r != 0) {
        print_config_errors(opts->config_path, r, &errs);
        cfg_errors_free(&errs);
        return 1;
    }
    d.generation = d.cfg->generation = 1;
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
    d.start_ms = uv_now(&loop);
    uv_timer_init(&loop, &d.drain_timer);
    d.drain_timer.data = &d;
    uv_timer_init(&loop, &d.accept_timer);
    d.accept_timer.data = &d;
    uv_timer_init(&loop, &d.retire_timer);
    d.retire_timer.data = &d;
    uv_timer_init(&loop, &d.users_timer);
    d.users_timer.data = &d;

    nofile = fdlimit_raise();
    d.fd_budget = nofile > FD_RESERVE + 2 ? nofile - FD_RESERVE : 2;
    LOG_INFO("main", "descriptor limit %llu, budget %llu", (unsigned long long)nofile,
             (unsigned long long)d.fd_budget);

    if (td_users_load(&d) != 0)
        goto out;
    d.listeners = calloc(d.cfg->n_listeners + 1, sizeof(*d.listeners));
    d.servers = calloc(d.cfg->n_servers + 1, sizeof(*d.servers));
    d.tunnels = calloc(d.cfg->n_tunnels + 1, sizeof(*d.tunnels));
    if (!d.listeners || !d.servers || !d.tunnels) {
        LOG_ERROR("main", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < d.cfg->n_listeners; i++) {
        d.listeners[i] = daemon_listener_new(&d, d.cfg, &d.cfg->listeners[i], 0);
        if (!d.listeners[i])
            goto out;
        d.n_listeners++;
    }
    for (size_t i = 0; i < d.cfg->n_servers; i++) {
        d.servers[i] = daemon_server_new(&d, d.cfg, &d.cfg->servers[i], 0);
        if (!d.servers[i])
            goto out;
        d.n_servers++;
    }
    for (size_t i = 0; i < d.cfg->n_tunnels; i++) {
        d.tunnels[i] = daemon_tunnel_new(&d, d.cfg, &d.cfg->tunnels[i]);
        if (!d.tunnels[i])
            goto out;
        d.n_tunnels++;
    }
    for (size_t i = 0; i < TD_MAX_SERVICES && d.kinds->services[i]; i++)
        if (d.kinds->services[i]->start && d.kinds->services[i]->start(&d) != 0)
            goto out;
    td_users_schedule(&d);
    if (privdrop(d.cfg->user) != 0)
        goto out;
    if (opts->platform_start)
        opts->platform_start(&d);
    LOG_INFO("main", "tunneld %s ready (%zu listeners, config %s)", TUNNELD_VERSION, d.n_listeners,
             d.cfg->path);
    /* Every listener and server is bound and privileges are dropped. */
    td_notify("READY=1\nSTATUS=running");

    uv_run(&loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    if (rc != 0) {
        for (size_t i = 0; i < d.n_listeners; i++)
            listener_close(d.listeners[i]);
        for (size_t i = 0; i < d.n_servers; i++)
            d.servers[i]->proto->server->stop_accepting(d.servers[i]);
        for (struct td_queue *q = d.retired_servers.next; q != &d.retired_servers; q = q->next) {
            struct td_server *s = td_container_of(q, struct td_server, retired);
            if (s->created)
                s->proto->server->stop_accepting(s);
        }
        daemon_services_stop(&d);
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
    daemon_services_free(&d);
    for (size_t i = 0; i < d.n_listeners; i++) {
        listener_free(d.listeners[i]);
        free(d.listeners[i]);
    }
    while (!td_queue_empty(&d.retired_listeners)) {
        struct td_listener *l =
            td_container_of(d.retired_listeners.next, struct td_listener, retired);
        td_queue_remove(&l->retired);
        listener_free(l);
        free(l);
    }
    for (size_t i = 0; i < d.n_servers; i++)
        daemon_server_free(d.servers[i]);
    while (!td_queue_empty(&d.retired_servers)) {
        struct td_server *s = td_container_of(d.retired_servers.next, struct td_server, retired);
        td_queue_remove(&s->retired);
        daemon_server_free(s);
    }
    for (size_t i = 0; i < d.n_tunnels; i++)
        daemon_tunnel_free(d.tunnels[i]);
    while (!td_queue_empty(&d.retired_tunnels)) {
        struct td_tunnel *t = td_container_of(d.retired_tunnels.next, struct td_tunnel, retired);
        td_queue_remove(&t->retired);
        daemon_tunnel_free(t);
    }
    free(d.listeners);
    free(d.servers);
    free(d.tunnels);
    td_stats_free(&d);
    td_users_free(&d);
    cfg_free(d.cfg);
    chunk_pool_drain();
    td_log_close();
    return rc;
}
