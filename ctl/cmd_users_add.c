/* tunnelctl users add NAME: a new managed user with a new key, made here
 * (the daemon never sees a jProxy private key), given to the running
 * daemon or, when it is not running, written to state_dir.  Prints the
 * client's material: the tunnels: entry of its config, and for jProxy the
 * key.dat written to --out. */
#include "subcommands.h"

#include "client.h"
#include "keys.h"
#include "offline.h"
#include "out.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void users_add_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s users add NAME [--protocol wstan|jproxy] [--out FILE] [--force]\n"
            "                [--server HOST[:PORT]] [--via SERVER] [--json]\n"
            "Make the user NAME with a new key and print the client's tunnels: entry.\n"
            "\n"
            "  --protocol P          wstan (default: a 16-byte key) or jproxy (an RSA-2048\n"
            "                        key pair, a salt and a login token)\n"
            "  --out FILE            jproxy: the client's key.dat (required); wstan: the\n"
            "                        client's tunnels: entry instead of standard output.\n"
            "                        Written owner-only (0600)\n"
            "  --force               replace FILE when it exists\n"
            "  --server HOST[:PORT]  the address clients reach the server at (default: the\n"
            "                        listen address of the config's server of that protocol)\n"
            "  --via SERVER          that servers: entry, when there are several\n"
            "\n"
            "When tunneld is not running, the user is written to the config's state_dir and\n"
            "is served from its next start or reload.\n",
            PROG_NAME);
}

/* The user's material, on stdout or in --out. */
static int user_add_output(const char *name, const struct ctl_key *k, const struct ctl_reach *r,
                           const char *out, bool online)
{
    char *yaml =
        ctl_client_yaml(k->proto, r, k->proto == CFG_PROTO_WSTAN ? k->secret : out, name, false);
    int ret = 0;

    if (!yaml) {
        ctl_err("%s", td_strerror(TD_ENOMEM));
        return CTL_EXIT_FAIL;
    }
    if (k->proto == CFG_PROTO_WSTAN && out) {
        ret = ctl_out_write(out, (const uint8_t *)yaml, strlen(yaml));
        if (ret != 0)
            ctl_err("the user was added: '%s export-client %s' prints the key again", PROG_NAME,
                    name);
    }
    if (ret == 0 && ctl_json) {
        cj_obj(NULL);
        cj_str("user", name);
        cj_str("protocol", cfg_protocol_name(k->proto));
        cj_bool("online", online);
        cj_str("secret", k->secret);
        cj_str("out", out);
        cj_str("key_file", k->proto == CFG_PROTO_JPROXY ? out : NULL);
        cj_str("server", r->known ? r->hostport : NULL);
        cj_str("client_yaml", yaml);
        cj_obj_end();
        cj_done();
    } else if (ret == 0) {
        if (k->proto == CFG_PROTO_JPROXY)
            printf("# added user %s (jproxy, token %s); the client's key.dat is %s\n", name,
                   k->secret, out);
        else
            printf("# added user %s (wstan)%s%s\n", name, out ? "; its tunnels: entry is in " : "",
                   out ? out : "");
        if (k->proto == CFG_PROTO_JPROXY || !out)
            fputs(yaml, stdout);
    }
    memset(yaml, 0, strlen(yaml));
    free(yaml);
    return ret;
}

static int user_add_offline(const char *name, const struct ctl_key *k)
{
    struct ctl_offline o;
    bool file_written = false;
    int ret, rc;

    ret = ctl_offline_open(&o, true);
    if (ret != 0)
        goto out;
    ret = CTL_EXIT_FAIL;
    if (ctl_offline_config_user(&o, name)) {
        ctl_err("user '%s' already exists (in the config file %s)", name, o.cfg->path);
        ctl_err_status(TD_EEXIST);
        goto out;
    }
    if (td_state_find(&o.st, name)) {
        ctl_err("user '%s' already exists", name);
        ctl_err_status(TD_EEXIST);
        goto out;
    }
    if (k->proto == CFG_PROTO_JPROXY) {
        if (ctl_offline_put_user_file(&o, k) != 0)
            goto out;
        file_written = true;
    }
    rc = td_state_add(&o.st, name, k->proto, k->secret, o.now);
    if (rc != 0) {
        ctl_err("cannot add user '%s': %s", name, td_strerror(rc));
        ctl_err_status(rc);
        goto out;
    }
    if (ctl_offline_save(&o) != 0)
        goto out;
    file_written = false; /* the state names it now */
    ctl_offline_notice_write(&o);
    ret = 0;
out:
    if (file_written)
        ctl_offline_unput(&o, k->secret);
    ctl_offline_close(&o);
    return ret;
}

int ctl_user_add(int argc, const char *argv[], void (*usage)(FILE *))
{
    const char *pos[1] = {NULL}, *proto_s = "wstan", *out = NULL, *server = NULL, *via = NULL;
    bool force = false, online = true;
    const struct ctl_opt opts[] = {
        {"--protocol", &proto_s, NULL}, {"--out", &out, NULL},     {"--server", &server, NULL},
        {"--via", &via, NULL},          {"--force", NULL, &force}, {NULL, NULL, NULL},
    };
    const struct td_config *cfg = NULL;
    struct ctl_session *s = NULL;
    enum cfg_protocol proto;
    struct ctl_reach reach;
    struct ctl_key k;
    struct ctl_buf req;
    struct ctl_msg rep;
    char *staged = NULL;
    int ret;

    memset(&k, 0, sizeof(k));
    ctl_buf_init(&req, CTL_MAX_REQUEST);
    memset(&rep, 0, sizeof(rep));
    ret = ctl_args(argc, argv, opts, pos, 1, 1, usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    ret = CTL_EXIT_USAGE;
    if (!cfg_name_valid(pos[0])) {
        fprintf(stderr,
                "%s: %s: '%s' is not a valid user name (1 to 64 letters, digits, '.', '_', "
                "'-')\n",
                PROG_NAME, ctl_cmd, pos[0]);
        goto out;
    }
    if (ctl_protocol_parse(proto_s, &proto) != 0) {
        fprintf(stderr, "%s: %s: --protocol is wstan or jproxy, not '%s'\n", PROG_NAME, ctl_cmd,
                proto_s);
        goto out;
    }
    if (proto == CFG_PROTO_JPROXY && (!out || !out[0])) {
        fprintf(stderr,
                "%s: %s: a jproxy user needs --out FILE: the client's key.dat (its private key "
                "is written there only)\n",
                PROG_NAME, ctl_cmd);
        usage(stderr);
        goto out;
    }
    if (out && !out[0]) {
        fprintf(stderr, "%s: %s: --out needs a file name\n", PROG_NAME, ctl_cmd);
        goto out;
    }
    if (out) {
        ret = ctl_out_check(out, force);
        if (ret != 0)
            goto out;
    }
    ret = ctl_config(&cfg);
    if (ret != 0)
        goto out;
    ret = ctl_reach_find(cfg, proto, via, server, false, &reach);
    if (ret != 0)
        goto out;
    ret = ctl_key_make(&k, proto, pos[0]);
    if (ret != 0)
        goto out;
    if (proto == CFG_PROTO_JPROXY) {
        ret = ctl_out_stage(out, k.key_file, k.key_len, &staged);
        if (ret != 0)
            goto out;
    }
    ret = ctl_open(&s, true);
    if (ret == 0) {
        ctl_req(&req, "user-add");
        ctl_buf_add(&req, "name", pos[0]);
        ctl_buf_add(&req, "protocol", cfg_protocol_name(proto));
        ctl_key_fields(&req, &k);
        ret = ctl_exchange(s, &req, &rep, NULL);
    } else if (ret == CTL_EXIT_NOT_RUNNING) {
        online = false;
        ret = user_add_offline(pos[0], &k);
    }
    if (ret != 0)
        goto out;
    if (staged) {
        ret = ctl_out_commit(out, staged, k.key_file, k.key_len);
        staged = NULL; /* ctl_out_commit took it */
        if (ret != 0)
            goto out;
    }
    ret = user_add_output(pos[0], &k, &reach, out, online);
out:
    ctl_out_abort(staged);
    ctl_close(s);
    ctl_key_free(&k);
    if (req.p)
        memset(req.p, 0, req.len);
    ctl_buf_free(&req);
    ctl_msg_free(&rep);
    return ret;
}

int users_add_main(int argc, const char *argv[])
{
    return ctl_user_add(argc, argv, users_add_usage);
}
