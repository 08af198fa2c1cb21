/* Offline mode; see offline.h. */
#include "offline.h"

#include "client.h"
#include "out.h"
#include "proto/jproxy_keys.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int ctl_offline_open(struct ctl_offline *o, bool write)
{
    char path[4096], why[256];
    bool created = false;
    int ret, rc;

    memset(o, 0, sizeof(*o));
    ret = ctl_config(&o->cfg);
    if (ret != 0)
        return ret;
    if (!o->cfg) {
        ctl_err("tunneld is not running, and without a config file (--config FILE) there is no "
                "state_dir to %s",
                write ? "edit" : "read");
        return CTL_EXIT_NOT_RUNNING;
    }
    o->dir = o->cfg->state_dir;
    o->now = (uint64_t)time(NULL);
    if (write) {
        rc = td_fs_mkdir_private(o->dir, &created);
        if (rc != 0) {
            ctl_err("state_dir %s: %s", o->dir,
                    rc == TD_EEXIST      ? "exists and is not a directory"
                    : rc == TD_ENOTFOUND ? "its parent directory does not exist"
                                         : td_strerror(rc));
            ctl_err_status(rc);
            return CTL_EXIT_FAIL;
        }
        rc = td_state_path(o->dir, "lock", path, sizeof(path));
        if (rc == 0)
            rc = td_fs_lock(path, CTL_LOCK_WAIT_MS, &o->lock);
        if (rc != 0) {
            if (rc == TD_ETIMEDOUT)
                ctl_err("%s is held by another writer (tunnelctl or tunneld); gave up after %us",
                        path, CTL_LOCK_WAIT_MS / 1000);
            else
                ctl_err("cannot lock %s: %s", path, td_strerror(rc));
            ctl_err_status(rc);
            return CTL_EXIT_FAIL;
        }
    }
    rc = td_state_load(o->dir, &o->st, why, sizeof(why));
    if (rc != 0) {
        ctl_err("%s/state: %s", o->dir, why[0] ? why : td_strerror(rc));
        ctl_err_status(rc == TD_EPROTO ? TD_ECONFIG : rc);
        return CTL_EXIT_FAIL;
    }
    if (!write)
        ctl_note("tunneld is not running: reading the state in %s", o->dir);
    return 0;
}

void ctl_offline_notice_write(const struct ctl_offline *o)
{
    ctl_note("tunneld is not running: changed the state in %s directly; the change takes "
             "effect when tunneld next starts or reloads",
             o->dir);
}

bool ctl_offline_config_user(const struct ctl_offline *o, const char *name)
{
    return o->cfg && cfg_find_user(o->cfg, name) != NULL;
}

static int ctl_offline_user_path(const struct ctl_offline *o, const char *token, char *out,
                                 size_t cap)
{
    int n = snprintf(out, cap, "%s/jproxy/%s.dat", o->dir, token);

    return n < 0 || (size_t)n >= cap ? TD_ETOOBIG : 0;
}

int ctl_offline_put_user_file(struct ctl_offline *o, const struct ctl_key *k)
{
    char dir[4096], path[4096];
    bool created = false, exists = false;
    int rc;

    rc = td_state_path(o->dir, "jproxy", dir, sizeof(dir));
    if (rc == 0)
        rc = td_fs_mkdir_private(dir, &created);
    if (rc == 0)
        rc = ctl_offline_user_path(o, k->secret, path, sizeof(path));
    /* A fresh 256-bit token: a clash means something is badly wrong. */
    if (rc == 0)
        rc = td_fs_exists(path, &exists);
    if (rc == 0 && exists)
        rc = TD_EEXIST;
    if (rc == 0)
        rc = td_fs_write_file_private(path, k->user_file, k->user_len);
    if (rc != 0) {
        ctl_err("cannot write the jProxy user file in %s/jproxy: %s", o->dir, td_strerror(rc));
        ctl_err_status(rc);
        return CTL_EXIT_FAIL;
    }
    return 0;
}

void ctl_offline_unput(struct ctl_offline *o, const char *token)
{
    char path[4096];

    if (ctl_offline_user_path(o, token, path, sizeof(path)) == 0)
        (void)td_fs_remove(path);
}

void ctl_offline_drop(struct ctl_offline *o, enum cfg_protocol proto, const char *secret)
{
    char **nd;
    size_t n;

    if (proto != CFG_PROTO_JPROXY || !secret)
        return;
    nd = realloc(o->drop, (o->n_drop + 1) * sizeof(*nd));
    if (!nd)
        return; /* a spare file left behind is harmless */
    o->drop = nd;
    n = strlen(secret) + 1;
    o->drop[o->n_drop] = malloc(n);
    if (o->drop[o->n_drop]) {
        memcpy(o->drop[o->n_drop], secret, n);
        o->n_drop++;
    }
}

int ctl_offline_save(struct ctl_offline *o)
{
    char path[4096];
    int rc;

    /* The user files of the old jProxy keys that expire now go too. */
    for (size_t i = 0; i < o->st.n; i++) {
        const struct st_user *u = &o->st.users[i];
        if (u->old_secret && o->now >= u->old_until)
            ctl_offline_drop(o, u->protocol, u->old_secret);
    }
    td_state_expire(&o->st, o->now);
    rc = td_state_save(o->dir, &o->st);
    if (rc != 0) {
        ctl_err("cannot write %s/state: %s (nothing changed)", o->dir, td_strerror(rc));
        ctl_err_status(rc);
        return CTL_EXIT_FAIL;
    }
    for (size_t i = 0; i < o->n_drop; i++) {
        bool in_use = false;
        /* A token still named by the state keeps its file. */
        for (size_t j = 0; j < o->st.n && !in_use; j++) {
            const struct st_user *u = &o->st.users[j];
            in_use = (u->secret && strcmp(u->secret, o->drop[i]) == 0) ||
                     (u->old_secret && strcmp(u->old_secret, o->drop[i]) == 0);
        }
        if (!in_use && ctl_offline_user_path(o, o->drop[i], path, sizeof(path)) == 0)
            (void)td_fs_remove(path);
    }
    return 0;
}

void ctl_offline_close(struct ctl_offline *o)
{
    for (size_t i = 0; i < o->n_drop; i++)
        free(o->drop[i]);
    free(o->drop);
    td_state_free(&o->st);
    td_fs_unlock(o->lock);
    memset(o, 0, sizeof(*o));
}
