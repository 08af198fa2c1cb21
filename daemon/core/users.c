/* The managed users in the daemon; see users.h. */
#include "core/users.h"

#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a writer waits for the state's lock (another tunnelctl). */
#define USERS_LOCK_WAIT_MS 5000

int td_users_load(struct td_daemon *d)
{
    struct td_state *st = calloc(1, sizeof(*st));
    char why[256];
    int r;

    if (!st)
        return TD_ENOMEM;
    r = td_state_load(d->cfg->state_dir, st, why, sizeof(why));
    if (r != 0) {
        LOG_ERROR("main", "%s/state: %s", d->cfg->state_dir, why[0] ? why : td_strerror(r));
        free(st);
        return r;
    }
    if (td_state_conflict(st, d->cfg)) {
        LOG_ERROR("main",
                  "%s: users: '%s' is also a managed user in %s/state; keep it in one place",
                  d->cfg->path, td_state_conflict(st, d->cfg), d->cfg->state_dir);
        td_state_free(st);
        free(st);
        return TD_ECONFIG;
    }
    if (st->n)
        LOG_INFO("main", "%zu managed users in %s", st->n, d->cfg->state_dir);
    td_state_free(d->state);
    free(d->state);
    d->state = st;
    return 0;
}

int td_users_apply(struct td_daemon *d, const struct td_config *cfg)
{
    int rc = 0;
    for (size_t i = 0; i < d->n_servers; i++) {
        struct td_server *s = d->servers[i];
        int r;
        if (!s->proto->server->set_users)
            continue;
        r = s->proto->server->set_users(s, cfg, d->state);
        if (r != 0)
            rc = r;
    }
    return rc;
}

int td_users_copy(struct td_daemon *d, struct td_state *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; d->state && i < d->state->n; i++) {
        const struct st_user *u = &d->state->users[i];
        struct st_user *c;
        int r = td_state_add(out, u->name, u->protocol, u->secret, u->created);
        if (r != 0) {
            td_state_free(out);
            return r;
        }
        c = &out->users[out->n - 1];
        if (u->old_secret) {
            c->old_secret = strdup(u->old_secret);
            if (!c->old_secret) {
                td_state_free(out);
                return TD_ENOMEM;
            }
            c->old_until = u->old_until;
        }
    }
    return 0;
}

int td_users_commit(struct td_daemon *d, struct td_state *next, char *why, size_t whycap)
{
    char path[4096];
    struct td_fs_lock *lock = NULL;
    struct td_state *old = d->state, *st;
    bool created;
    int r;

    why[0] = '\0';
    st = malloc(sizeof(*st));
    if (!st) {
        td_state_free(next);
        return TD_ENOMEM;
    }
    *st = *next;
    memset(next, 0, sizeof(*next));
    r = td_fs_mkdir_private(d->cfg->state_dir, &created);
    if (r == 0)
        r = td_state_path(d->cfg->state_dir, "lock", path, sizeof(path));
    if (r == 0)
        r = td_fs_lock(path, USERS_LOCK_WAIT_MS, &lock);
    if (r == 0)
        r = td_state_save(d->cfg->state_dir, st);
    td_fs_unlock(lock);
    if (r != 0) {
        snprintf(why, whycap, "cannot write %s/state: %s", d->cfg->state_dir, td_strerror(r));
        td_state_free(st);
        free(st);
        return r;
    }
    d->state = st;
    r = td_users_apply(d, d->cfg);
    if (r != 0)
        snprintf(why, whycap, "the state was written, but a server could not load it: %s",
                 td_strerror(r));
    td_state_free(old);
    free(old);
    td_users_schedule(d);
    return r;
}

static void users_on_timer(uv_timer_t *t)
{
    struct td_daemon *d = t->data;
    struct td_state next;
    char why[256];

    if (td_users_copy(d, &next) != 0) {
        td_users_schedule(d);
        return;
    }
    if (td_state_expire(&next, td_state_now()) == 0) {
        td_state_free(&next);
        td_users_schedule(d);
        return;
    }
    if (td_users_commit(d, &next, why, sizeof(why)) != 0)
        LOG_WARN("main", "forgetting expired keys: %s", why);
    else
        LOG_INFO("main", "rotation grace period over: old keys forgotten");
}

void td_users_schedule(struct td_daemon *d)
{
    uint64_t now = td_state_now(), soon = 0;

    uv_timer_stop(&d->users_timer);
    for (size_t i = 0; d->state && i < d->state->n; i++) {
        const struct st_user *u = &d->state->users[i];
        if (u->old_secret && (!soon || u->old_until < soon))
            soon = u->old_until;
    }
    if (!soon || d->stopped)
        return;
    uv_timer_start(&d->users_timer, users_on_timer, soon > now ? (soon - now) * 1000 : 0, 0);
}

void td_users_stop(struct td_daemon *d)
{
    uv_timer_stop(&d->users_timer);
}

void td_users_free(struct td_daemon *d)
{
    if (d->state) {
        td_state_free(d->state);
        free(d->state);
        d->state = NULL;
    }
}
