/* tunnelctl users list: every user, from the config file and the state,
 * with the protocols it can log in with.  Offline, read from state_dir. */
#include "subcommands.h"

#include "client.h"
#include "offline.h"
#include "out.h"
#include "records.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>

static void users_list_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s users list [--json]\n"
            "List the users: source (config or state), protocols (password, wstan, jproxy),\n"
            "when a managed user was made, until when its old key is still accepted during a\n"
            "rotation, and its live connections.  When tunneld is not running, the users of the\n"
            "config file and of its state_dir are listed (without connections).\n",
            PROG_NAME);
}

/* The offline list, built as the daemon's reply would be, so that both
 * render the same way. */
static int users_list_offline(struct ctl_msg *rep)
{
    struct ctl_offline o;
    struct ctl_buf b;
    int ret, rc;

    ctl_buf_init(&b, CTL_MAX_REPLY);
    ret = ctl_offline_open(&o, false);
    if (ret != 0)
        goto out;
    ctl_buf_begin(&b);
    ctl_buf_add(&b, "status", "0");
    for (size_t i = 0; i < o.cfg->n_users; i++) {
        const struct cfg_user *u = &o.cfg->users[i];
        char protos[64];
        snprintf(protos, sizeof(protos), "%s%s%s%s%s", u->password ? "password" : "",
                 u->password && (u->wstan_key || u->jproxy_user_file) ? "," : "",
                 u->wstan_key ? "wstan" : "", u->wstan_key && u->jproxy_user_file ? "," : "",
                 u->jproxy_user_file ? "jproxy" : "");
        ctl_buf_add(&b, "user", u->name);
        ctl_buf_add(&b, "source", "config");
        ctl_buf_add(&b, "protocols", protos);
    }
    for (size_t i = 0; i < o.st.n; i++) {
        const struct st_user *u = &o.st.users[i];
        ctl_buf_add(&b, "user", u->name);
        ctl_buf_add(&b, "source", "state");
        ctl_buf_add(&b, "protocols", cfg_protocol_name(u->protocol));
        ctl_buf_add_u64(&b, "created_s", u->created);
        if (u->old_secret && u->old_until > o.now)
            ctl_buf_add_u64(&b, "rotating_until_s", u->old_until);
    }
    rc = ctl_buf_end(&b);
    if (rc == 0)
        rc = ctl_msg_parse(b.p, b.len, rep);
    if (rc != 0) {
        ctl_err("%s", td_strerror(rc));
        ret = CTL_EXIT_FAIL;
    }
out:
    ctl_offline_close(&o);
    ctl_buf_free(&b);
    return ret;
}

int users_list_main(int argc, const char *argv[])
{
    struct ctl_buf req;
    struct ctl_msg rep;
    bool online = true;
    int ret;

    ctl_buf_init(&req, CTL_MAX_REQUEST);
    memset(&rep, 0, sizeof(rep));
    ret = ctl_args(argc, argv, NULL, NULL, 0, 0, users_list_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    ctl_req(&req, "users-list");
    ret = ctl_call(&req, &rep, true, NULL);
    if (ret == CTL_EXIT_NOT_RUNNING) {
        online = false;
        ret = users_list_offline(&rep);
    }
    if (ret != 0)
        goto out;
    if (ctl_json) {
        cj_obj(NULL);
        cj_bool("online", online);
        ctl_render_json(&rep, ctl_no_fields, ctl_users_recs, CTL_NRECS(ctl_users_recs));
        cj_obj_end();
        cj_done();
    } else if (ctl_render_tables(&rep, ctl_users_recs, CTL_NRECS(ctl_users_recs), false, stdout) ==
               0) {
        printf("no users\n");
    }
out:
    ctl_buf_free(&req);
    ctl_msg_free(&rep);
    return ret;
}
