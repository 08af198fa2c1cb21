/* Counters; see stats.h. */
#include "core/stats.h"

#include "config/state.h"
#include "core/conn.h"
#include "core/daemon.h"
#include "core/listener.h"
#include "core/tunnel.h"

#include <stdlib.h>
#include <string.h>

static const char *const td_fail_names[] = {
#define XX(n, s) s,
    TD_FAIL_MAP(XX)
#undef XX
};

static const char *const td_kind_names[] = {"user", "tunnel", "listener", "server"};

const char *td_fail_name(int i)
{
    return i >= 0 && i < TD_FAIL_COUNT ? td_fail_names[i] : "?";
}

const char *td_stat_kind_name(enum td_stat_kind k)
{
    return (unsigned)k < TD_STAT_KINDS ? td_kind_names[k] : "?";
}

int td_fail_of(const char *end_reason)
{
    for (int i = 0; end_reason && i < TD_FAIL_COUNT; i++)
        if (strcmp(td_fail_names[i], end_reason) == 0)
            return i;
    return -1;
}

/* ---- a map from (kind, name) to counters ------------------------------------ */

struct st_ent {
    char *name; /* NULL: empty slot */
    uint8_t kind;
    struct td_counters c;
};

struct td_statmap {
    struct st_ent *e;
    size_t cap, n;
};

static uint64_t st_hash(enum td_stat_kind k, const char *name)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)k;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static struct st_ent *st_find(struct td_statmap *m, enum td_stat_kind k, const char *name,
                              bool make)
{
    size_t i;

    if (m->cap == 0 || (make && (m->n + 1) * 2 > m->cap)) {
        struct td_statmap nm;
        if (!make && m->cap == 0)
            return NULL;
        nm.cap = m->cap ? m->cap * 2 : 64;
        nm.n = m->n;
        nm.e = calloc(nm.cap, sizeof(*nm.e));
        if (!nm.e)
            return NULL;
        for (size_t j = 0; j < m->cap; j++) {
            struct st_ent *x = &m->e[j];
            if (!x->name)
                continue;
            for (i = st_hash(x->kind, x->name) & (nm.cap - 1); nm.e[i].name;
                 i = (i + 1) & (nm.cap - 1))
                ;
            nm.e[i] = *x;
        }
        free(m->e);
        *m = nm;
    }
    for (i = st_hash(k, name) & (m->cap - 1); m->e[i].name; i = (i + 1) & (m->cap - 1))
        if (m->e[i].kind == k && strcmp(m->e[i].name, name) == 0)
            return &m->e[i];
    if (!make)
        return NULL;
    m->e[i].name = strdup(name);
    if (!m->e[i].name)
        return NULL;
    m->e[i].kind = (uint8_t)k;
    memset(&m->e[i].c, 0, sizeof(m->e[i].c));
    m->n++;
    return &m->e[i];
}

static void st_map_free(struct td_statmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->e[i].name);
    free(m->e);
    memset(m, 0, sizeof(*m));
}

static struct td_statmap *st_map(struct td_daemon *d)
{
    if (!d->stats)
        d->stats = calloc(1, sizeof(*d->stats));
    return d->stats;
}

static void st_add(struct td_counters *c, const struct td_conn_info *ci, int fail, bool live)
{
    c->bytes_in += ci->bytes_in;
    c->bytes_out += ci->bytes_out;
    c->conns_total++;
    if (live)
        c->conns_active++;
    if (fail >= 0)
        c->fail[fail]++;
}

/* Each entity a connection belongs to. */
static void st_attribute(struct td_statmap *m, const struct td_conn_info *ci, int fail, bool live,
                         int only_kind)
{
    struct {
        enum td_stat_kind k;
        const char *name;
    } to[] = {
        {TD_STAT_USER, ci->user},
        {TD_STAT_TUNNEL, ci->route && strcmp(ci->route, "direct") != 0 ? ci->route : NULL},
        {TD_STAT_LISTENER, ci->listener},
        {TD_STAT_SERVER, ci->server},
    };
    for (size_t i = 0; i < sizeof(to) / sizeof(to[0]); i++) {
        struct st_ent *e;
        if (!to[i].name || (only_kind >= 0 && (int)to[i].k != only_kind))
            continue;
        e = st_find(m, to[i].k, to[i].name, true);
        if (e)
            st_add(&e->c, ci, fail, live);
    }
}

void td_stats_closed(struct td_daemon *d, const struct td_conn_info *ci, const char *end_reason)
{
    struct td_statmap *m = st_map(d);
    if (m)
        st_attribute(m, ci, td_fail_of(end_reason), false, -1);
}

void td_conns_each(struct td_daemon *d, td_conn_cb cb, void *arg)
{
    uint64_t now = uv_now(d->loop);
    struct td_queue *q;

    for (q = d->conns.next; q != &d->conns; q = q->next) {
        struct conn *c = td_container_of(q, struct conn, node);
        struct td_conn_info ci;
        if (c->state == CONN_CLOSING)
            continue;
        memset(&ci, 0, sizeof(ci));
        snprintf(ci.id, sizeof(ci.id), "%llu", (unsigned long long)c->id);
        ci.user = c->user;
        ci.listener = c->lcfg->name;
        ci.route = c->lcfg->route;
        ci.client = c->client_str;
        ci.target = c->target_str[0] ? c->target_str : NULL;
        ci.bytes_in = c->bytes_down;
        ci.bytes_out = c->bytes_up;
        ci.start_ms = c->start_ms;
        (void)now;
        cb(arg, &ci);
    }
    for (size_t i = 0; i < d->n_servers; i++) {
        struct td_server *s = d->servers[i];
        if (s->proto->server->each)
            s->proto->server->each(s, cb, arg);
    }
    for (struct td_queue *r = d->retired_servers.next; r != &d->retired_servers; r = r->next) {
        struct td_server *s = td_container_of(r, struct td_server, retired);
        if (s->created && s->proto->server->each)
            s->proto->server->each(s, cb, arg);
    }
}

struct st_collect {
    struct td_statmap tmp;
    int kind;
};

static void st_collect_live(void *arg, const struct td_conn_info *ci)
{
    struct st_collect *sc = arg;
    st_attribute(&sc->tmp, ci, -1, true, sc->kind);
}

static void st_seed(struct st_collect *sc, enum td_stat_kind k, const char *name)
{
    if ((int)k == sc->kind)
        st_find(&sc->tmp, k, name, true);
}

void td_stats_collect(struct td_daemon *d, enum td_stat_kind kind, const char *name, td_stats_cb cb,
                      void *arg)
{
    struct td_statmap *m = st_map(d);
    struct st_collect sc;
    const struct td_config *cfg = d->cfg;

    memset(&sc, 0, sizeof(sc));
    sc.kind = (int)kind;
    /* Everything configured shows, busy or not. */
    for (size_t i = 0; i < cfg->n_users; i++)
        st_seed(&sc, TD_STAT_USER, cfg->users[i].name);
    for (size_t i = 0; d->state && i < d->state->n; i++)
        st_seed(&sc, TD_STAT_USER, d->state->users[i].name);
    for (size_t i = 0; i < cfg->n_tunnels; i++)
        st_seed(&sc, TD_STAT_TUNNEL, cfg->tunnels[i].name);
    for (size_t i = 0; i < cfg->n_listeners; i++)
        st_seed(&sc, TD_STAT_LISTENER, cfg->listeners[i].name);
    for (size_t i = 0; i < cfg->n_servers; i++)
        st_seed(&sc, TD_STAT_SERVER, cfg->servers[i].name);
    /* What ended, then what is live. */
    for (size_t i = 0; m && i < m->cap; i++) {
        struct st_ent *e = &m->e[i], *t;
        if (!e->name || e->kind != kind)
            continue;
        t = st_find(&sc.tmp, kind, e->name, true);
        if (!t)
            continue;
        t->c.bytes_in += e->c.bytes_in;
        t->c.bytes_out += e->c.bytes_out;
        t->c.conns_total += e->c.conns_total;
        for (int f = 0; f < TD_FAIL_COUNT; f++)
            t->c.fail[f] += e->c.fail[f];
    }
    td_conns_each(d, st_collect_live, &sc);
    for (size_t i = 0; i < sc.tmp.cap; i++) {
        struct st_ent *e = &sc.tmp.e[i];
        if (e->name && (!name || strcmp(name, e->name) == 0))
            cb(arg, kind, e->name, &e->c);
    }
    st_map_free(&sc.tmp);
}

void td_stats_reset(struct td_daemon *d)
{
    if (d->stats)
        st_map_free(d->stats);
}

void td_stats_free(struct td_daemon *d)
{
    if (d->stats) {
        st_map_free(d->stats);
        free(d->stats);
        d->stats = NULL;
    }
}
