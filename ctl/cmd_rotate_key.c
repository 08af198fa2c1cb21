/* tunnelctl rotate-key USER [--grace DURATION]: a new key for a managed
 * user.  The old key is still accepted for the grace period (none by
 * default), then forgotten; live connections never drop, since a rotation
 * only changes what new handshakes accept. */
#include "subcommands.h"

#include "client.h"
#include "keys.h"
#include "offline.h"
#include "out.h"
#include "crypto/crypto.h"
#include "util/addr.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void rotate_key_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s rotate-key USER [--grace DURATION] [--out FILE] [--force]\n"
            "                [--server HOST[:PORT]] [--via SERVER] [--json]\n"
            "Give the managed user USER a new key (of its protocol) and print the client's\n"
            "tunnels: entry.\n"
            "\n"
            "  --grace DURATION      how long the old key is still accepted (10m, 1h, 7d;\n"
            "                        default 0: from now on only the new key)\n"
            "  --out FILE            jproxy: the client's new key.dat (required); wstan: the\n"
            "                        client's tunnels: entry.  Written owner-only (0600)\n"
            "  --force               replace FILE when it exists\n"
            "  --server, --via       as for users add\n"
            "\n"
            "When tunneld is not running, the state in state_dir is changed.\n",
            PROG_NAME);
}

struct rotate {
    const char *name, *out;
    bool force;
    uint64_t grace_ms;
    struct ctl_key k;
    char *staged;
    uint64_t old_until; /* 0: the old key is no longer accepted */
};

/* The checks that depend on the user's protocol, then the key. */
static int rotate_make(struct rotate *r, enum cfg_protocol proto)
{
    int ret;

    if (proto == CFG_PROTO_JPROXY && !r->out) {
        ctl_err("%s is a jproxy user: pass --out FILE for the client's new key.dat", r->name);
        return CTL_EXIT_USAGE;
    }
    ret = ctl_key_make(&r->k, proto, r->name);
    if (ret == 0 && proto == CFG_PROTO_JPROXY)
        ret = ctl_out_stage(r->out, r->k.key_file, r->k.key_len, &r->staged);
    return ret;
}

static int rotate_offline(struct rotate *r)
{
    struct ctl_offline o;
    struct st_user *u;
    bool file_written = false;
    char old[96] = "", older[96] = "";
    uint64_t grace_s = (r->grace_ms + 999) / 1000;
    enum cfg_protocol proto;
    int ret, rc;

    ret = ctl_offline_open(&o, true);
    if (ret != 0)
        goto out;
    ret = CTL_EXIT_FAIL;
    if (ctl_offline_config_user(&o, r->name)) {
        ctl_err("user '%s' is defined in the config file %s: change its key there", r->name,
                o.cfg->path);
        ctl_err_status(TD_EACCES);
        ret = CTL_EXIT_DENIED;
        goto out;
    }
    u = td_state_find(&o.st, r->name);
    if (!u) {
        ctl_err("no such user '%s'", r->name);
        ctl_err_status(TD_ENOTFOUND);
        goto out;
    }
    proto = u->protocol;
    /* Made under the lock: the user's protocol cannot change meanwhile. */
    ret = rotate_make(r, proto);
    if (ret != 0)
        goto out;
    ret = CTL_EXIT_FAIL;
    if (proto == CFG_PROTO_JPROXY) {
        if (ctl_offline_put_user_file(&o, &r->k) != 0)
            goto out;
        file_written = true;
    }
    u = td_state_find(&o.st, r->name);
    snprintf(old, sizeof(old), "%s", u->secret);
    if (u->old_secret)
        snprintf(older, sizeof(older), "%s", u->old_secret);
    rc = td_state_rotate(&o.st, r->name, r->k.secret, o.now, grace_s);
    if (rc != 0) {
        ctl_err("cannot rotate the key of '%s': %s", r->name, td_strerror(rc));
        ctl_err_status(rc);
        goto out;
    }
    /* A rotation during a rotation forgets the oldest key; without a
     * grace period the current one goes at once. */
    if (older[0])
        ctl_offline_drop(&o, proto, older);
    if (grace_s == 0)
        ctl_offline_drop(&o, proto, old);
    if (ctl_offline_save(&o) != 0)
        goto out;
    file_written = false;
    r->old_until = grace_s ? o.now + grace_s : 0;
    ctl_offline_notice_write(&o);
    ret = 0;
out:
    if (file_written)
        ctl_offline_unput(&o, r->k.secret);
    td_wipe(old, sizeof(old));
    td_wipe(older, sizeof(older));
    ctl_offline_close(&o);
    return ret;
}

static int rotate_online(struct ctl_session *s, struct rotate *r)
{
    struct ctl_buf req;
    struct ctl_msg rep;
    enum cfg_protocol proto;
    const char *p;
    uint64_t until = 0;
    int ret;

    ctl_req(&req, "user-show");
    ctl_buf_add(&req, "name", r->name);
    ret = ctl_exchange(s, &req, &rep, NULL);
    ctl_buf_free(&req);
    if (ret != 0)
        goto out;
    p = ctl_msg_get(&rep, "protocol", NULL);
    if (!p || ctl_protocol_parse(p, &proto) != 0) {
        ctl_err("tunneld did not say which protocol user '%s' has", r->name);
        ret = CTL_EXIT_FAIL;
        goto out;
    }
    ctl_msg_free(&rep);
    ret = rotate_make(r, proto);
    if (ret != 0)
        goto out;
    ctl_req(&req, "key-rotate");
    ctl_buf_add(&req, "name", r->name);
    ctl_key_fields(&req, &r->k);
    ctl_buf_add_u64(&req, "grace_ms", r->grace_ms);
    ret = ctl_exchange(s, &req, &rep, NULL);
    if (req.p)
        memset(req.p, 0, req.len);
    ctl_buf_free(&req);
    if (ret != 0)
        goto out;
    if (ctl_msg_get_u64(&rep, "old_until_s", &until) == 0)
        r->old_until = until;
out:
    ctl_msg_free(&rep);
    return ret;
}

int rotate_key_main(int argc, const char *argv[])
{
    const char *pos[1] = {NULL}, *grace = NULL, *server = NULL, *via = NULL;
    struct rotate r;
    const struct ctl_opt opts[] = {
        {"--grace", &grace, NULL}, {"--out", &r.out, NULL},     {"--server", &server, NULL},
        {"--via", &via, NULL},     {"--force", NULL, &r.force}, {NULL, NULL, NULL},
    };
    const struct td_config *cfg = NULL;
    struct ctl_session *s = NULL;
    struct ctl_reach reach;
    bool online = true;
    char *yaml = NULL, t[64];
    int ret;

    memset(&r, 0, sizeof(r));
    ret = ctl_args(argc, argv, opts, pos, 1, 1, rotate_key_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    r.name = pos[0];
    ret = CTL_EXIT_USAGE;
    if (!cfg_name_valid(r.name)) {
        fprintf(stderr, "%s: %s: '%s' is not a valid user name\n", PROG_NAME, ctl_cmd, r.name);
        goto out;
    }
    if (grace && td_duration_parse(grace, &r.grace_ms) != 0) {
        fprintf(stderr, "%s: %s: --grace %s: not a duration such as 10m, 1h or 0\n", PROG_NAME,
                ctl_cmd, grace);
        goto out;
    }
    if (r.out && !r.out[0]) {
        fprintf(stderr, "%s: %s: --out needs a file name\n", PROG_NAME, ctl_cmd);
        goto out;
    }
    if (r.out) {
        ret = ctl_out_check(r.out, r.force);
        if (ret != 0)
            goto out;
    }
    ret = ctl_config(&cfg);
    if (ret != 0)
        goto out;
    ret = ctl_open(&s, true);
    if (ret == 0) {
        ret = rotate_online(s, &r);
    } else if (ret == CTL_EXIT_NOT_RUNNING) {
        online = false;
        ret = rotate_offline(&r);
    }
    if (ret != 0)
        goto out;
    if (r.staged) {
        ret = ctl_out_commit(r.out, r.staged, r.k.key_file, r.k.key_len);
        r.staged = NULL; /* ctl_out_commit took it */
        if (ret != 0)
            goto out;
    }
    /* The key is in place: from here on, only the client's material. */
    ret = ctl_reach_find(cfg, r.k.proto, via, server, false, &reach);
    if (ret != 0)
        goto out;
    yaml = ctl_client_yaml(r.k.proto, &reach, r.k.proto == CFG_PROTO_WSTAN ? r.k.secret : r.out,
                           r.name, false);
    if (!yaml) {
        ctl_err("%s", td_strerror(TD_ENOMEM));
        ret = CTL_EXIT_FAIL;
        goto out;
    }
    if (r.k.proto == CFG_PROTO_WSTAN && r.out) {
        ret = ctl_out_write(r.out, (const uint8_t *)yaml, strlen(yaml));
        if (ret != 0) {
            ctl_err("the key was rotated: '%s export-client %s' prints it again", PROG_NAME,
                    r.name);
            goto out;
        }
    }
    if (ctl_json) {
        cj_obj(NULL);
        cj_str("user", r.name);
        cj_str("protocol", cfg_protocol_name(r.k.proto));
        cj_bool("online", online);
        cj_str("secret", r.k.secret);
        if (r.old_until)
            cj_u64("old_until_s", r.old_until);
        else
            cj_null("old_until_s");
        cj_str("out", r.out);
        cj_str("key_file", r.k.proto == CFG_PROTO_JPROXY ? r.out : NULL);
        cj_str("server", reach.known ? reach.hostport : NULL);
        cj_str("client_yaml", yaml);
        cj_obj_end();
        cj_done();
        goto out;
    }
    if (r.old_until) {
        ctl_fmt_time(t, sizeof(t), r.old_until);
        printf("# rotated the key of %s (%s); the old key is accepted until %s\n", r.name,
               cfg_protocol_name(r.k.proto), t);
    } else {
        printf("# rotated the key of %s (%s); the old key is no longer accepted\n", r.name,
               cfg_protocol_name(r.k.proto));
    }
    if (r.k.proto == CFG_PROTO_JPROXY)
        printf("# the client's new key.dat is %s (token %s)\n", r.out, r.k.secret);
    if (r.k.proto == CFG_PROTO_JPROXY || !r.out)
        fputs(yaml, stdout);
    else
        printf("# its tunnels: entry is in %s\n", r.out);
out:
    if (yaml) {
        memset(yaml, 0, strlen(yaml));
        free(yaml);
    }
    ctl_out_abort(r.staged);
    ctl_close(s);
    ctl_key_free(&r.k);
    return ret;
}
