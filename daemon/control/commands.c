/* The control commands (docs/control-protocol.md, "Commands").  Each one
 * reads its request's fields, acts through the core, and writes status,
 * error lines and its fields.  Nothing here blocks: keys are made by the
 * client, and the state is written with one small atomic file write. */
#include "control/control.h"

#include "config/state.h"
#include "core/conn.h"
#include "core/listener.h"
#include "core/stats.h"
#include "core/tunnel.h"
#include "core/users.h"
#include "crypto/crypto.h"
#include "proto/jproxy_keys.h"
#include "util/addr.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reply_ok(struct ctl_buf *b)
{
    ctl_buf_add(b, "status", "0");
}

static void reply_fail(struct ctl_buf *b, int status, const char *fmt, ...) TD_PRINTF(3, 4);

static void reply_fail(struct ctl_buf *b, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ctl_buf_addf(b, "status", "%d", status);
    ctl_buf_add(b, "error", msg);
}

static const struct cfg_user *cfg_user_named(const struct td_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_users; i++)
        if (strcmp(cfg->users[i].name, name) == 0)
            return &cfg->users[i];
    return NULL;
}

/* ---- version, status ------------------------------------------------------ */

static void cmd_version(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b)
{
    (void)d;
    (void)req;
    reply_ok(b);
    ctl_buf_add(b, "version", TUNNELD_VERSION);
    ctl_buf_add_u64(b, "protocol", CTL_VERSION);
}

static void add_tunnel_fields(struct ctl_buf *b, struct td_tunnel *t)
{
    struct td_tunnel_stats st;

    memset(&st, 0, sizeof(st));
    if (t->proto->tunnel->stats)
        t->proto->tunnel->stats(t, &st);
    ctl_buf_add(b, "tunnel", t->cfg->name);
    ctl_buf_add(b, "protocol", t->proto->name);
    ctl_buf_add(b, "state", st.state ? st.state : "-");
    ctl_buf_add_u64(b, "streams", st.streams);
    ctl_buf_add_u64(b, "links", st.links);
    ctl_buf_add_u64(b, "pooled", st.pooled);
    ctl_buf_add_u64(b, "links_opened", st.links_opened);
    ctl_buf_add_u64(b, "streams_total", st.streams_total);
}

static void cmd_status(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b)
{
    (void)req;
    reply_ok(b);
    ctl_buf_add(b, "version", TUNNELD_VERSION);
    ctl_buf_add_u64(b, "pid", (uint64_t)uv_os_getpid());
    ctl_buf_add_u64(b, "uptime_ms", uv_now(d->loop) - d->start_ms);
    ctl_buf_add(b, "config", d->cfg->path);
    ctl_buf_add_u64(b, "generation", d->generation);
    ctl_buf_add(b, "state_dir", d->cfg->state_dir);
    ctl_buf_add_u64(b, "conns_active", d->n_conns);
    ctl_buf_add_u64(b, "conns_total", d->stat_accepted);
    for (size_t i = 0; i < d->n_listeners; i++) {
        struct td_listener *l = d->listeners[i];
        uint64_t n = 0;
        for (struct td_queue *q = d->conns.next; q != &d->conns; q = q->next)
            n += td_container_of(q, struct conn, node)->l == l;
        ctl_buf_add(b, "listener", l->cfg->name);
        ctl_buf_add(b, "type", cfg_listener_type_name(l->cfg->type));
        ctl_buf_add(b, "listen", l->acc.addr);
        ctl_buf_add(b, "route", l->cfg->route);
        ctl_buf_add_u64(b, "conns", n);
        ctl_buf_add_u64(b, "handshakes", l->acc.n_hs);
    }
    for (size_t i = 0; i < d->n_tunnels; i++)
        add_tunnel_fields(b, d->tunnels[i]);
    for (size_t i = 0; i < d->n_servers; i++) {
        struct td_server *s = d->servers[i];
        struct td_server_stats st;
        memset(&st, 0, sizeof(st));
        if (s->proto->server->stats)
            s->proto->server->stats(s, &st);
        ctl_buf_add(b, "server", s->cfg->name);
        ctl_buf_add(b, "protocol", s->proto->name);
        ctl_buf_add(b, "listen", st.listen[0] ? st.listen : "-");
        ctl_buf_add_u64(b, "tunnels", st.tunnels);
        ctl_buf_add_u64(b, "handshakes", st.handshakes);
        ctl_buf_add_u64(b, "tunnels_total", st.tunnels_total);
    }
}

/* ---- users ------------------------------------------------------------------ */

struct user_count {
    const char *name;
    uint64_t n;
};

static void count_user(void *arg, const struct td_conn_info *ci)
{
    struct user_count *uc = arg;
    if (ci->user && strcmp(ci->user, uc->name) == 0)
        uc->n++;
}

static uint64_t user_conns(struct td_daemon *d, const char *name)
{
    struct user_count uc = {name, 0};
    td_conns_each(d, count_user, &uc);
    return uc.n;
}

static void cmd_users_list(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b)
{
    (void)req;
    reply_ok(b);
    for (size_t i = 0; i < d->cfg->n_users; i++) {
        const struct cfg_user *u = &d->cfg->users[i];
        char protos[64];
        snprintf(protos, sizeof(protos), "%s%s%s%s%s", u->password ? "password" : "",
                 u->password && (u->wstan_key || u->jproxy_user_file) ? "," : "",
                 u->wstan_key ? "wstan" : "", u->wstan_key && u->jproxy_user_file ? "," : "",
                 u->jproxy_user_file ? "jproxy" : "");
        ctl_buf_add(b, "user", u->name);
        ctl_buf_add(b, "source", "config");
        ctl_buf_add(b, "protocols", protos);
        ctl_buf_add_u64(b, "conns", user_conns(d, u->name));
    }
    for (size_t i = 0; d->state && i < d->state->n; i++) {
        const struct st_user *u = &d->state->users[i];
        ctl_buf_add(b, "user", u->name);
        ctl_buf_add(b, "source", "state");
        ctl_buf_add(b, "protocols", cfg_protocol_name(u->protocol));
        ctl_buf_add_u64(b, "created_s", u->created);
        if (u->old_secret)
            ctl_buf_add_u64(b, "rotating_until_s", u->old_until);
        ctl_buf_add_u64(b, "conns", user_conns(d, u->name));
    }
}

static int parse_protocol(const char *s, enum cfg_protocol *out)
{
    if (s && strcmp(s, "wstan") == 0)
        *out = CFG_PROTO_WSTAN;
    else if (s && strcmp(s, "jproxy") == 0)
        *out = CFG_PROTO_JPROXY;
    else
        return TD_EINVAL;
    return 0;
}

/* A jProxy user's server file from the request, checked against its token
 * and written to STATE_DIR/jproxy/TOKEN.dat (0600). */
static int write_jproxy_user(struct td_daemon *d, const char *token, const char *b64,
                             struct ctl_buf *b)
{
    uint8_t *raw = NULL;
    size_t n = 0, len = b64 ? strlen(b64) : 0;
    struct jp_user u;
    char path[4096], hex[2 * JP_TOKEN_LEN + 1];
    bool created;
    int r;

    if (!b64 || len == 0 || len > 2 * JP_USER_FILE_MAX) {
        reply_fail(b, TD_EINVAL, "jproxy_user (the server user file, base64) is missing");
        return TD_EINVAL;
    }
    raw = malloc(len);
    if (!raw) {
        reply_fail(b, TD_ENOMEM, "out of memory");
        return TD_ENOMEM;
    }
    jp_user_init(&u);
    r = td_base64_decode(b64, len, raw, len, &n);
    if (r == 0)
        r = jp_user_decode(raw, n, &u);
    if (r != 0) {
        reply_fail(b, TD_EINVAL, "jproxy_user is not a jProxy server user file");
        goto out;
    }
    for (size_t i = 0; i < JP_TOKEN_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02X", u.token[i]);
    if (strcmp(hex, token) != 0) {
        reply_fail(b, TD_EINVAL, "the user file does not match the token (secret)");
        r = TD_EINVAL;
        goto out;
    }
    snprintf(path, sizeof(path), "%s", d->cfg->state_dir);
    r = td_fs_mkdir_private(path, &created);
    if (r == 0) {
        snprintf(path, sizeof(path), "%s/jproxy", d->cfg->state_dir);
        r = td_fs_mkdir_private(path, &created);
    }
    if (r == 0) {
        snprintf(path, sizeof(path), "%s/jproxy/%s.dat", d->cfg->state_dir, token);
        r = td_fs_write_file_private(path, raw, n);
    }
    if (r != 0)
        reply_fail(b, TD_EIO, "cannot write %s: %s", path, td_strerror(r));
out:
    jp_user_free(&u);
    free(raw);
    return r;
}

static void remove_jproxy_user(struct td_daemon *d, const char *token)
{
    char path[4096];
    if (!token)
        return;
    snprintf(path, sizeof(path), "%s/jproxy/%s.dat", d->cfg->state_dir, token);
    td_fs_remove(path);
}

static void commit_or_fail(struct td_daemon *d, struct td_state *next, struct ctl_buf *b,
                           bool *done)
{
    char why[512];
    int r = td_users_commit(d, next, why, sizeof(why));
    *done = r == 0;
    if (r != 0)
        reply_fail(b, r == TD_EIO ? TD_EIO : r, "%s", why[0] ? why : td_strerror(r));
}

static void cmd_user_add(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b)
{
    const char *name = ctl_msg_get(req, "name", NULL), *secret = ctl_msg_get(req, "secret", NULL);
    enum cfg_protocol proto;
    struct td_state next;
    bool done;

    if (!name || !cfg_name_valid(name)) {
        reply_fail(b, TD_EINVAL, "a valid name is needed (1 to %d letters, digits, '.', '_', '-')",
                   CFG_NAME_MAX);
        return;
    }
    if (parse_protocol(ctl_msg_get(req, "protocol", NULL), &proto) != 0) {
        reply_fail(b, TD_EINVAL, "protocol must be wstan or jproxy");
        return;
    }
    if (!td_state_secret_valid(proto, secret)) {
        reply_fail(b, TD_EINVAL, "secret is not a %s",
                   proto == CFG_PROTO_WSTAN ? "base64 16-byte key" : "64-hex-digit token");
        return;
    }
    if (cfg_user_named(d->cfg, name) || (d->state && td_state_find(d->state, name))) {
        reply_fail(b, TD_EEXIST, "user '%s' already exists%s", name,
                   cfg_user_named(d->cfg, name) ? " (in the config)" : "");
        return;
    }
    if (proto == CFG_PROTO_JPROXY &&
        write_jproxy_user(d, secret, ctl_msg_get(req, "jproxy_user", NULL), b) != 0)
        return;
    if (td_users_copy(d, &next) != 0 ||
        td_state_add(&next, name, proto, secret, td_state_now()) != 0) {
        td_state_free(&next);
        reply_fail(b, TD_ENOMEM, "out of memory");
        return;
    }
    commit_or_fail(d, &next, b, &done);
    if (!done)
        return;
    LOG_INFO("control", "user %s added (%s)", name, cfg_protocol_name(proto));
    reply_ok(b);
    ctl_buf_add(b, "user", name);
    ctl_buf_add(b, "protocol", cfg_protocol_name(proto));
}

struct kill_ctx {
    const char *user;
    uint64_t *ids;
    size_t n, cap;
};

static void collect_client_conn(void *arg, const struct td_conn_info *ci)
{
    struct kill_ctx *k = arg;
    uint64_t *nb;
    if (!ci->listener || !ci->user || strcmp(ci->user, k->user) != 0)
        return;
    if (k->n == k->cap) {
        size_t nc = k->cap ? k->cap * 2 : 16;
        nb = realloc(k->ids, nc * sizeof(*nb));
        if (!nb)
            return;
        k->ids = nb;
        k->cap = nc;
    }
    k->ids[k->n++] = strtoull(ci->id, NULL, 10);
}

static struct conn *conn_by_id(struct td_daemon *d, uint64_t id)
{
    for (struct td_queue *q = d->conns.next; q != &d->conns; q = q->next) {
        struct conn *c = td_container_of(q, struct conn, node);
        if (c->id == id && c->state != CONN_CLOSING)
            return c;
    }
    return NULL;
}

/* Close every connection and server tunnel of a user; returns how many. */
static uint64_t kill_user(struct td_daemon *d, const char *user)
{
    struct kill_ctx k = {user, NULL, 0, 0};
    uint64_t n = 0;

    /* Collected first: closing while walking could change the lists. */
    td_conns_each(d, collect_client_conn, &k);
    for (size_t i = 0; i < k.n; i++) {
        struct conn *c = conn_by_id(d, k.ids[i]);
        if (c) {
            conn_close(c, END_SHUTDOWN);
            n++;
        }
    }
    free(k.ids);
    for (size_t i = 0; i < d->n_servers; i++)
        if (d->servers[i]->proto->server->kill_user)
            n += d->servers[i]->proto->server->kill_user(d->servers[i], user);
    for (struct td_queue *q = d->retired_servers.next; q != &d->retired_servers; q = q->next) {
        struct td_server *s = td_container_of(q, struct td_server, retired);
        if (s->created && s->proto->server->kill_user)
            n += s->proto->server->kill_user(s, user);
    }
    return n;
}

static void cmd_user_remove(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b)
{
    const char *name = ctl_msg_get(req, "name", NULL), *kill = ctl_msg_get(req, "kill", NULL);
    struct st_user *u;
    struct td_state next;
    char *secret = NULL, *old = NULL;
    uint64_t killed = 0;
    bool done;

    if (!name) {
        reply_fail(b, TD_EINVAL, "name is needed");
        return;
    }
    if (cfg_user_named(d->cfg, name)) {
        reply_fail(b, TD_EACCES, "user '%s' is in the config file: remove it there, then reload",
                   name);
        return;
    }
    u = d->state ? td_state_find(d->state, name) : NULL;
    if (!u) {
        reply_fail(b, TD_ENOTFOUND, "no such user '%s'", name);
        return;
    }
    if (u->protocol == CFG_PROTO_JPROXY) {
        secret = strdup(u->secret);
        old = u->old_secret ? strdup(u->old_secret) : NULL;
    }
    if (td_users_copy(d, &next) != 0 || td_state_remove(&next, name) != 0) {
        td_state_free(&next);
        reply_fail(b, TD_ENOMEM, "out of memory");
        goto out;
    }
    commit_or_fail(d, &next, b, &done);
    if (!done)
        goto out;
    remove_jproxy_user(d, secret);
    remove_jproxy_user(d, old);
    if (kill && strcmp(kill, "1") == 0)
        killed = kill_user(d, name);
    LOG_INFO("control", "user %s removed%s (%llu connections closed)", name,
             kill && strcmp(kill, "1") == 0 ? " with --kill" : "", (unsigned long long)killed);
    reply_ok(b);
    ctl_buf_add_u64(b, "killed", killed);
out:
    free(secret);
    free(old);
}

static void cmd_key_rotate(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b)
{
    const char *name = ctl_msg_get(req, "name", NULL), *secret = ctl_msg_get(req, "secret", NULL);
    uint64_t grace_ms = 0, now = td_state_now();
    struct st_user *u;
    struct td_state next;
    char *dropped = NULL;
    bool done;

    if (!name) {
        reply_fail(b, TD_EINVAL, "name is needed");
        return;
    }
    if (cfg_user_named(d->cfg, name)) {
        reply_fail(b, TD_EACCES, "user '%s' is in the config file: change its key there", name);
        return;
    }
    u = d->state ? td_state_find(d->state, name) : NULL;
    if (!u) {
        reply_fail(b, TD_ENOTFOUND, "no such user '%s'", name);
        return;
    }
    if (ctl_msg_get(req, "grace_ms", NULL) && ctl_msg_get_u64(req, "grace_ms", &grace_ms) != 0) {
        reply_fail(b, TD_EINVAL, "grace_ms must be a number of milliseconds");
        return;
    }
    if (!td_state_secret_valid(u->protocol, secret)) {
        reply_fail(b, TD_EINVAL, "secret is not a %s",
                   u->protocol == CFG_PROTO_WSTAN ? "base64 16-byte key" : "64-hex-digit token");
        return;
    }
    if (u->protocol == CFG_PROTO_JPROXY &&
        write_jproxy_user(d, secret, ctl_msg_get(req, "jproxy_user", NULL), b) != 0)
        return;
    /* The key a rotation during a rotation forgets (its file goes too). */
    if (u->protocol == CFG_PROTO_JPROXY && u->old_secret)
        dropped = strdup(u->old_secret);
    if (td_users_copy(d, &next) != 0 ||
        td_state_rotate(&next, name, secret, now, (grace_ms + 999) / 1000) != 0) {
        td_state_free(&next);
        reply_fail(b, TD_ENOMEM, "out of memory");
        free(dropped);
        return;
    }
    commit_or_fail(d, &next, b, &done);
    if (done) {
        u = td_state_find(d->state, name);
        LOG_INFO("control", "user %s: key rotated (the old one valid for %llu ms)", name,
                 (unsigned long long)grace_ms);
        reply_ok(b);
        ctl_buf_add_u64(b, "old_until_s", u && u->old_secret ? u->old_until : now);
        remove_jproxy_user(d, dropped);
    }
    free(dropped);
}

static void cmd_user_show(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b)
{
    const char *name = ctl_msg_get(req, "name", NULL);
    const struct cfg_user *cu = name ? cfg_user_named(d->cfg, name) : NULL;
    struct st_user *u = name && d->state ? td_state_find(d->state, name) : NULL;

    if (!cu && !u) {
        reply_fail(b, TD_ENOTFOUND, "no such user '%s'", name ? name : "");
        return;
    }
    reply_ok(b);
    ctl_buf_add(b, "user", name);
    if (u) {
        ctl_buf_add(b, "source", "state");
        ctl_buf_add(b, "protocol", cfg_protocol_name(u->protocol));
        ctl_buf_add(b, "secret", u->secret);
        ctl_buf_add_u64(b, "created_s", u->created);
        if (u->old_secret)
            ctl_buf_add_u64(b, "rotating_until_s", u->old_until);
        return;
    }
    ctl_buf_add(b, "source", "config");
    if (cu->wstan_key) {
        ctl_buf_add(b, "protocol", "wstan");
        ctl_buf_add(b, "secret", cu->wstan_key);
    } else if (cu->jproxy_user_file) {
        ctl_buf_add(b, "protocol", "jproxy");
    } else {
        ctl_buf_add(b, "protocol", "password");
    }
}

/* ---- tunnels, bounce, reload ---------------------------------------------------- */

static void cmd_tunnels_list(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b)
{
    (void)req;
    reply_ok(b);
    for (size_t i = 0; i < d->n_tunnels; i++) {
        struct td_tunnel *t = d->tunnels[i];
        char hp[300];
        add_tunnel_fields(b, t);
        if (t->cfg->protocol == CFG_PROTO_WSTAN)
            ctl_buf_add(b, "server", t->cfg->url);
        else
            ctl_buf_add(
                b, "server",
                td_hostport_format(hp, sizeof(hp), t->cfg->jp_server.host, t->cfg->jp_server.port));
    }
}

static void cmd_bounce(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b)
{
    const char *name = ctl_msg_get(req, "name", NULL), *kind = NULL;
    int r;

    if (!name) {
        reply_fail(b, TD_EINVAL, "name is needed");
        return;
    }
    r = daemon_bounce(d, name, &kind);
    if (r == TD_ENOTFOUND) {
        reply_fail(b, r, "no tunnel, listener or server is named '%s'", name);
        return;
    }
    if (r != 0) {
        reply_fail(b, r, "%s %s could not start again (see the log)", kind, name);
        return;
    }
    reply_ok(b);
    ctl_buf_add(b, "kind", kind);
}

static void cmd_reload(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b)
{
    struct cfg_errors errs = {0};
    struct td_reload_result res;
    int r;

    (void)req;
    r = daemon_reload(d, &errs, &res);
    if (r != 0) {
        ctl_buf_addf(b, "status", "%d", r);
        if (errs.n == 0)
            ctl_buf_add(b, "error", td_strerror(r));
        for (size_t i = 0; i < errs.n; i++)
            ctl_buf_add(b, "error", errs.msgs[i]);
        LOG_WARN("control", "reload refused: %zu error%s", errs.n, errs.n == 1 ? "" : "s");
    } else {
        reply_ok(b);
        ctl_buf_add_u64(b, "generation", d->generation);
        ctl_buf_add_u64(b, "started", res.started);
        ctl_buf_add_u64(b, "stopped", res.stopped);
        ctl_buf_add_u64(b, "replaced", res.replaced);
        ctl_buf_add_u64(b, "kept", res.kept);
    }
    cfg_errors_free(&errs);
}

/* ---- stats, conns, kill ----------------------------------------------------------- */

static void add_counters(void *arg, enum td_stat_kind kind, const char *name,
                         const struct td_counters *c)
{
    struct ctl_buf *b = arg;
    ctl_buf_add(b, td_stat_kind_name(kind), name);
    ctl_buf_add_u64(b, "bytes_in", c->bytes_in);
    ctl_buf_add_u64(b, "bytes_out", c->bytes_out);
    ctl_buf_add_u64(b, "conns_total", c->conns_total);
    ctl_buf_add_u64(b, "conns_active", c->conns_active);
    for (int f = 0; f < TD_FAIL_COUNT; f++)
        if (c->fail[f]) {
            char key[48];
            snprintf(key, sizeof(key), "fail.%s", td_fail_name(f));
            ctl_buf_add_u64(b, key, c->fail[f]);
        }
}

static void cmd_stats(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b)
{
    const char *user = ctl_msg_get(req, "user", NULL), *tunnel = ctl_msg_get(req, "tunnel", NULL),
               *reset = ctl_msg_get(req, "reset", NULL);

    reply_ok(b);
    if (user || !tunnel)
        td_stats_collect(d, TD_STAT_USER, user, add_counters, b);
    if (tunnel || !user)
        td_stats_collect(d, TD_STAT_TUNNEL, tunnel, add_counters, b);
    if (!user && !tunnel) {
        td_stats_collect(d, TD_STAT_LISTENER, NULL, add_counters, b);
        td_stats_collect(d, TD_STAT_SERVER, NULL, add_counters, b);
    }
    if (reset && strcmp(reset, "1") == 0) {
        td_stats_reset(d);
        LOG_INFO("control", "counters reset");
    }
}

struct conns_ctx {
    struct ctl_buf *b;
    const char *user, *tunnel;
    uint64_t now;
};

static void add_conn(void *arg, const struct td_conn_info *ci)
{
    struct conns_ctx *k = arg;
    struct ctl_buf *b = k->b;

    if (k->user && (!ci->user || strcmp(ci->user, k->user) != 0))
        return;
    if (k->tunnel && (!ci->route || strcmp(ci->route, k->tunnel) != 0))
        return;
    ctl_buf_add(b, "conn", ci->id);
    ctl_buf_add(b, "user", ci->user ? ci->user : "-");
    if (ci->listener)
        ctl_buf_add(b, "listener", ci->listener);
    if (ci->server)
        ctl_buf_add(b, "server", ci->server);
    ctl_buf_add(b, "route", ci->route ? ci->route : "-");
    ctl_buf_add(b, "client", ci->client ? ci->client : "-");
    ctl_buf_add(b, "target", ci->target ? ci->target : "-");
    ctl_buf_add_u64(b, "bytes_in", ci->bytes_in);
    ctl_buf_add_u64(b, "bytes_out", ci->bytes_out);
    ctl_buf_add_u64(b, "age_ms", k->now >= ci->start_ms ? k->now - ci->start_ms : 0);
}

static void cmd_conns(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b)
{
    struct conns_ctx k;

    k.b = b;
    k.user = ctl_msg_get(req, "user", NULL);
    k.tunnel = ctl_msg_get(req, "tunnel", NULL);
    k.now = uv_now(d->loop);
    reply_ok(b);
    td_conns_each(d, add_conn, &k);
}

static void cmd_kill(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b)
{
    const char *id = ctl_msg_get(req, "id", NULL), *colon;
    char *end;

    if (!id || !*id) {
        reply_fail(b, TD_EINVAL, "id is needed");
        return;
    }
    colon = strrchr(id, ':');
    if (colon) {
        char server[CFG_NAME_MAX + 1];
        struct td_server *s;
        size_t n = (size_t)(colon - id);
        if (n >= sizeof(server)) {
            reply_fail(b, TD_ENOTFOUND, "no connection '%s'", id);
            return;
        }
        memcpy(server, id, n);
        server[n] = '\0';
        s = td_server_find(d, server);
        if (!s || !s->proto->server->kill || !s->proto->server->kill(s, colon + 1)) {
            reply_fail(b, TD_ENOTFOUND, "no connection '%s'", id);
            return;
        }
    } else {
        unsigned long long v = strtoull(id, &end, 10);
        struct conn *c = *end == '\0' ? conn_by_id(d, v) : NULL;
        if (!c) {
            reply_fail(b, TD_ENOTFOUND, "no connection '%s'", id);
            return;
        }
        conn_close(c, END_SHUTDOWN);
    }
    LOG_INFO("control", "connection %s closed by the operator", id);
    reply_ok(b);
}

/* ---- dispatch -------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*fn)(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *b);
} ctl_commands[] = {
    {"version", cmd_version},
    {"status", cmd_status},
    {"users-list", cmd_users_list},
    {"user-add", cmd_user_add},
    {"user-remove", cmd_user_remove},
    {"key-rotate", cmd_key_rotate},
    {"user-show", cmd_user_show},
    {"tunnels-list", cmd_tunnels_list},
    {"bounce", cmd_bounce},
    {"reload", cmd_reload},
    {"stats", cmd_stats},
    {"conns", cmd_conns},
    {"kill", cmd_kill},
};

void ctl_dispatch(struct td_daemon *d, const struct ctl_msg *req, struct ctl_buf *resp)
{
    const char *cmd = ctl_msg_get(req, "command", NULL);

    for (size_t i = 0; cmd && i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
        if (strcmp(ctl_commands[i].name, cmd) == 0) {
            LOG_DEBUG("control", "command %s", cmd);
            ctl_commands[i].fn(d, req, resp);
            return;
        }
    reply_fail(resp, TD_EUNSUPPORTED, "unknown command '%s'", cmd ? cmd : "");
}
