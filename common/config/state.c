/* The managed state; see state.h. */
#include "config/state.h"

#include "util/base64.h"
#include "crypto/crypto.h"
#include "util/error.h"
#include "util/fs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ST_MAGIC "tunneld-state"

static char *st_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static void st_user_clear(struct st_user *u)
{
    free(u->name);
    td_wipe_free_str(u->secret);
    td_wipe_free_str(u->old_secret);
    memset(u, 0, sizeof(*u));
}

void td_state_free(struct td_state *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++)
        st_user_clear(&st->users[i]);
    free(st->users);
    st->users = NULL;
    st->n = 0;
}

bool td_state_secret_valid(enum cfg_protocol proto, const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;

    if (proto == CFG_PROTO_WSTAN) {
        uint8_t raw[32];
        size_t got = 0;
        bool ok = n == TD_BASE64_ENCODED_LEN(16) &&
                  td_base64_decode(secret, n, raw, sizeof(raw), &got) == 0 && got == 16;
        td_wipe(raw, sizeof(raw));
        return ok;
    }
    if (proto == CFG_PROTO_JPROXY) {
        if (n != 64)
            return false;
        for (size_t i = 0; i < n; i++) {
            char c = secret[i];
            if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
                return false;
        }
        return true;
    }
    return false;
}

static bool st_u64(const char *v, uint64_t *out)
{
    uint64_t x = 0;
    if (!v || !*v)
        return false;
    for (; *v; v++) {
        if (*v < '0' || *v > '9' || x > (UINT64_MAX - (uint64_t)(*v - '0')) / 10)
            return false;
        x = x * 10 + (uint64_t)(*v - '0');
    }
    *out = x;
    return true;
}

static int st_fail(char *why, size_t cap, const char *fmt, const char *arg)
{
    if (why && cap)
        snprintf(why, cap, fmt, arg ? arg : "");
    return TD_EPROTO;
}

int td_state_parse(const char *buf, size_t len, struct td_state *out, char *why, size_t whycap)
{
    struct ctl_msg m;
    struct st_user *cur = NULL;
    int r;

    memset(out, 0, sizeof(*out));
    if (why && whycap)
        why[0] = '\0';
    r = ctl_msg_parse_as(buf, len, ST_MAGIC, TD_STATE_VERSION, &m);
    if (r == TD_EUNSUPPORTED) {
        if (why && whycap)
            snprintf(why, whycap, "state version %d (this tunneld reads version %d)", m.version,
                     TD_STATE_VERSION);
        return r;
    }
    if (r != 0)
        return r == TD_EPROTO ? st_fail(why, whycap, "not a tunneld state file%s", NULL) : r;
    for (size_t i = 0; i < m.n; i++) {
        const char *k = m.f[i].key, *v = m.f[i].val;
        if (strcmp(k, "user") == 0) {
            struct st_user *nu;
            if (!cfg_name_valid(v) || td_state_find(out, v)) {
                r = st_fail(why, whycap, "bad or repeated user name '%.64s'", v);
                goto fail;
            }
            if (out->n >= TD_STATE_MAX_USERS) {
                r = st_fail(why, whycap, "too many users%s", NULL);
                goto fail;
            }
            nu = realloc(out->users, (out->n + 1) * sizeof(*nu));
            if (!nu) {
                r = TD_ENOMEM;
                goto fail;
            }
            out->users = nu;
            cur = &out->users[out->n++];
            memset(cur, 0, sizeof(*cur));
            cur->protocol = (enum cfg_protocol) - 1;
            cur->name = st_strdup(v);
            if (!cur->name) {
                r = TD_ENOMEM;
                goto fail;
            }
            continue;
        }
        if (!cur) {
            r = st_fail(why, whycap, "'%s' before the first user", k);
            goto fail;
        }
        if (strcmp(k, "protocol") == 0) {
            if (strcmp(v, "wstan") == 0)
                cur->protocol = CFG_PROTO_WSTAN;
            else if (strcmp(v, "jproxy") == 0)
                cur->protocol = CFG_PROTO_JPROXY;
            else {
                r = st_fail(why, whycap, "user %s: unknown protocol", cur->name);
                goto fail;
            }
        } else if (strcmp(k, "created") == 0 || strcmp(k, "old_until") == 0) {
            if (!st_u64(v, strcmp(k, "created") == 0 ? &cur->created : &cur->old_until)) {
                r = st_fail(why, whycap, "user %s: bad time", cur->name);
                goto fail;
            }
        } else if (strcmp(k, "secret") == 0 || strcmp(k, "old_secret") == 0) {
            char **dst = strcmp(k, "secret") == 0 ? &cur->secret : &cur->old_secret;
            if (*dst) {
                r = st_fail(why, whycap, "user %s: repeated secret", cur->name);
                goto fail;
            }
            *dst = st_strdup(v);
            if (!*dst) {
                r = TD_ENOMEM;
                goto fail;
            }
        }
        /* Unknown keys are skipped: a newer minor writer may add some. */
    }
    for (size_t i = 0; i < out->n; i++) {
        struct st_user *u = &out->users[i];
        if ((int)u->protocol < 0 || !td_state_secret_valid(u->protocol, u->secret) ||
            (u->old_secret && !td_state_secret_valid(u->protocol, u->old_secret))) {
            r = st_fail(why, whycap, "user %s: missing or malformed protocol or secret", u->name);
            goto fail;
        }
    }
    td_wipe(m.buf, len);
    ctl_msg_free(&m);
    return 0;
fail:
    td_wipe(m.buf, len);
    ctl_msg_free(&m);
    td_state_free(out);
    return r;
}

int td_state_format(const struct td_state *st, struct ctl_buf *b)
{
    ctl_buf_init(b, TD_STATE_MAX_FILE);
    ctl_buf_begin_as(b, ST_MAGIC, TD_STATE_VERSION);
    for (size_t i = 0; i < st->n; i++) {
        const struct st_user *u = &st->users[i];
        ctl_buf_add(b, "user", u->name);
        ctl_buf_add(b, "protocol", cfg_protocol_name(u->protocol));
        ctl_buf_add_u64(b, "created", u->created);
        ctl_buf_add(b, "secret", u->secret);
        if (u->old_secret) {
            ctl_buf_add(b, "old_secret", u->old_secret);
            ctl_buf_add_u64(b, "old_until", u->old_until);
        }
    }
    return ctl_buf_end(b);
}

struct st_user *td_state_find(const struct td_state *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->users[i].name, name) == 0)
            return &st->users[i];
    return NULL;
}

const char *td_state_conflict(const struct td_state *st, const struct td_config *cfg)
{
    for (size_t i = 0; i < st->n; i++)
        for (size_t j = 0; j < cfg->n_users; j++)
            if (strcmp(st->users[i].name, cfg->users[j].name) == 0)
                return st->users[i].name;
    return NULL;
}

int td_state_add(struct td_state *st, const char *name, enum cfg_protocol proto, const char *secret,
                 uint64_t now)
{
    struct st_user *nu, *u;

    if (!cfg_name_valid(name) || !td_state_secret_valid(proto, secret))
        return TD_EINVAL;
    if (td_state_find(st, name))
        return TD_EEXIST;
    if (st->n >= TD_STATE_MAX_USERS)
        return TD_ELIMIT;
    nu = realloc(st->users, (st->n + 1) * sizeof(*nu));
    if (!nu)
        return TD_ENOMEM;
    st->users = nu;
    u = &st->users[st->n];
    memset(u, 0, sizeof(*u));
    u->name = st_strdup(name);
    u->secret = st_strdup(secret);
    if (!u->name || !u->secret) {
        st_user_clear(u);
        return TD_ENOMEM;
    }
    u->protocol = proto;
    u->created = now;
    st->n++;
    return 0;
}

int td_state_remove(struct td_state *st, const char *name)
{
    struct st_user *u = td_state_find(st, name);
    size_t i;

    if (!u)
        return TD_ENOTFOUND;
    i = (size_t)(u - st->users);
    st_user_clear(u);
    memmove(&st->users[i], &st->users[i + 1], (st->n - i - 1) * sizeof(*u));
    st->n--;
    return 0;
}

int td_state_rotate(struct td_state *st, const char *name, const char *secret, uint64_t now,
                    uint64_t grace_s)
{
    struct st_user *u = td_state_find(st, name);
    char *ns;

    if (!u)
        return TD_ENOTFOUND;
    if (!td_state_secret_valid(u->protocol, secret))
        return TD_EINVAL;
    ns = st_strdup(secret);
    if (!ns)
        return TD_ENOMEM;
    /* A rotation during a rotation forgets the oldest secret. */
    td_wipe_free_str(u->old_secret);
    u->old_secret = NULL;
    u->old_until = 0;
    if (grace_s > 0) {
        u->old_secret = u->secret;
        u->old_until = now + grace_s;
    } else {
        td_wipe_free_str(u->secret);
    }
    u->secret = ns;
    return 0;
}

size_t td_state_expire(struct td_state *st, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < st->n; i++) {
        struct st_user *u = &st->users[i];
        if (u->old_secret && now >= u->old_until) {
            td_wipe_free_str(u->old_secret);
            u->old_secret = NULL;
            u->old_until = 0;
            n++;
        }
    }
    return n;
}

uint64_t td_state_now(void)
{
    time_t t = time(NULL);
    return t > 0 ? (uint64_t)t : 0;
}

int td_state_path(const char *dir, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? TD_ETOOBIG : 0;
}

int td_state_load(const char *dir, struct td_state *out, char *why, size_t whycap)
{
    char path[4096];
    uint8_t *data = NULL;
    size_t len = 0;
    int r;

    memset(out, 0, sizeof(*out));
    if (why && whycap)
        why[0] = '\0';
    r = td_state_path(dir, "state", path, sizeof(path));
    if (r != 0)
        return r;
    r = td_fs_read_file(path, TD_STATE_MAX_FILE, &data, &len);
    if (r == TD_ENOTFOUND)
        return 0; /* nothing managed yet */
    if (r != 0)
        return r;
    r = td_state_parse((const char *)data, len, out, why, whycap);
    td_wipe(data, len);
    free(data);
    return r;
}

int td_state_save(const char *dir, const struct td_state *st)
{
    struct ctl_buf b;
    char path[4096], jdir[4096];
    int r;

    r = td_state_path(dir, "state", path, sizeof(path));
    if (r != 0)
        return r;
    /* The caller holds the lock: what a writer killed mid-write left is
     * nobody's now. */
    (void)td_fs_remove_stale_tmp(dir, NULL);
    if (td_state_path(dir, "jproxy", jdir, sizeof(jdir)) == 0)
        (void)td_fs_remove_stale_tmp(jdir, NULL);
    r = td_state_format(st, &b);
    if (r == 0)
        r = td_fs_write_file_private(path, (const uint8_t *)b.p, b.len);
    td_wipe(b.p, b.len);
    ctl_buf_free(&b);
    return r;
}
