/* tunnelctl export-client USER: a complete client config for a user: a
 * mixed (SOCKS5 and HTTP) listener on 127.0.0.1:1080 routed to a tunnel to
 * the config's server, with the user's key (from the daemon's user-show,
 * or offline from the state or the config file). */
#include "subcommands.h"

#include "client.h"
#include "keys.h"
#include "offline.h"
#include "out.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void export_client_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s export-client USER [--server HOST[:PORT]] [--via SERVER]\n"
            "                [--key-file PATH] [--out FILE] [--force] [--json]\n"
            "Print a complete tunneld client config for USER: a mixed listener on\n"
            "127.0.0.1:1080 routed to a tunnel to the server, with USER's key.\n"
            "\n"
            "  --server HOST[:PORT]  the address clients reach the server at (needed when the\n"
            "                        server listens on a wildcard address or port 0)\n"
            "  --via SERVER          the config's servers: entry, when there are several\n"
            "  --key-file PATH       jproxy: the client's key.dat path (default key.dat)\n"
            "  --out FILE            write the config there (0600) instead of standard output\n"
            "  --force               replace FILE when it exists\n"
            "\n"
            "The server comes from the config file's servers:.  When tunneld is not running,\n"
            "the key comes from state_dir (or the config file's users:).\n",
            PROG_NAME);
}

/* The key of a user, offline. */
static int export_offline(const char *name, enum cfg_protocol *proto, char **secret)
{
    struct ctl_offline o;
    const struct st_user *u;
    const struct cfg_user *cu;
    const char *sec = NULL;
    int ret;

    *secret = NULL;
    ret = ctl_offline_open(&o, false);
    if (ret != 0)
        goto out;
    ret = CTL_EXIT_FAIL;
    u = td_state_find(&o.st, name);
    cu = o.cfg ? cfg_find_user(o.cfg, name) : NULL;
    if (u) {
        *proto = u->protocol;
        sec = u->secret;
    } else if (cu && cu->wstan_key) {
        *proto = CFG_PROTO_WSTAN;
        sec = cu->wstan_key;
    } else if (cu && cu->jproxy_user_file) {
        *proto = CFG_PROTO_JPROXY;
        sec = "";
    } else if (cu) {
        ctl_err("user '%s' has no tunnel key (only a password)", name);
        goto out;
    } else {
        ctl_err("no such user '%s'", name);
        ctl_err_status(TD_ENOTFOUND);
        goto out;
    }
    *secret = malloc(strlen(sec) + 1);
    if (!*secret) {
        ctl_err("%s", td_strerror(TD_ENOMEM));
        goto out;
    }
    memcpy(*secret, sec, strlen(sec) + 1);
    ret = 0;
out:
    ctl_offline_close(&o);
    return ret;
}

int export_client_main(int argc, const char *argv[])
{
    const char *pos[1] = {NULL}, *server = NULL, *via = NULL, *key_file = "key.dat", *out = NULL;
    bool force = false, online = true;
    const struct ctl_opt opts[] = {
        {"--server", &server, NULL}, {"--via", &via, NULL},     {"--key-file", &key_file, NULL},
        {"--out", &out, NULL},       {"--force", NULL, &force}, {NULL, NULL, NULL},
    };
    const struct td_config *cfg = NULL;
    enum cfg_protocol proto = CFG_PROTO_WSTAN;
    struct ctl_reach reach;
    struct ctl_buf req;
    struct ctl_msg rep;
    char *secret = NULL, *yaml = NULL;
    const char *p, *sv;
    int ret;

    ctl_buf_init(&req, CTL_MAX_REQUEST);
    memset(&rep, 0, sizeof(rep));
    ret = ctl_args(argc, argv, opts, pos, 1, 1, export_client_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    ret = CTL_EXIT_USAGE;
    if (!cfg_name_valid(pos[0])) {
        fprintf(stderr, "%s: %s: '%s' is not a valid user name\n", PROG_NAME, ctl_cmd, pos[0]);
        goto out;
    }
    if ((out && !out[0]) || !key_file[0]) {
        fprintf(stderr, "%s: %s: --out and --key-file need a file name\n", PROG_NAME, ctl_cmd);
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
    ctl_req(&req, "user-show");
    ctl_buf_add(&req, "name", pos[0]);
    ret = ctl_call(&req, &rep, true, NULL);
    if (ret == CTL_EXIT_NOT_RUNNING) {
        online = false;
        ret = export_offline(pos[0], &proto, &secret);
    } else if (ret == 0) {
        p = ctl_msg_get(&rep, "protocol", NULL);
        sv = ctl_msg_get(&rep, "secret", NULL);
        if (!p || ctl_protocol_parse(p, &proto) != 0 || (proto == CFG_PROTO_WSTAN && !sv)) {
            ctl_err("tunneld did not say which protocol and key user '%s' has", pos[0]);
            ret = CTL_EXIT_FAIL;
            goto out;
        }
        sv = sv ? sv : "";
        secret = malloc(strlen(sv) + 1);
        if (!secret) {
            ctl_err("%s", td_strerror(TD_ENOMEM));
            ret = CTL_EXIT_FAIL;
            goto out;
        }
        memcpy(secret, sv, strlen(sv) + 1);
    }
    if (ret != 0)
        goto out;
    ret = ctl_reach_find(cfg, proto, via, server, true, &reach);
    if (ret != 0)
        goto out;
    yaml =
        ctl_client_yaml(proto, &reach, proto == CFG_PROTO_WSTAN ? secret : key_file, pos[0], true);
    if (!yaml) {
        ctl_err("%s", td_strerror(TD_ENOMEM));
        ret = CTL_EXIT_FAIL;
        goto out;
    }
    if (out) {
        ret = ctl_out_write(out, (const uint8_t *)yaml, strlen(yaml));
        if (ret != 0)
            goto out;
    }
    if (ctl_json) {
        cj_obj(NULL);
        cj_str("user", pos[0]);
        cj_str("protocol", cfg_protocol_name(proto));
        cj_bool("online", online);
        cj_str("server", reach.hostport);
        cj_str("tunnel", reach.tunnel);
        cj_str("key_file", proto == CFG_PROTO_JPROXY ? key_file : NULL);
        cj_str("out", out);
        cj_str("config_yaml", yaml);
        cj_obj_end();
        cj_done();
    } else if (out) {
        printf("wrote the client config of %s to %s\n", pos[0], out);
    } else {
        fputs(yaml, stdout);
    }
out:
    if (yaml) {
        memset(yaml, 0, strlen(yaml));
        free(yaml);
    }
    if (secret) {
        memset(secret, 0, strlen(secret));
        free(secret);
    }
    ctl_buf_free(&req);
    ctl_msg_free(&rep);
    return ret;
}
