/* tunnelctl users remove NAME [--kill]: forget a managed user.  Config
 * users cannot be removed here (EACCES, exit 4): edit the config and
 * reload. */
#include "subcommands.h"

#include "client.h"
#include "offline.h"
#include "out.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>

static void users_remove_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s users remove NAME [--kill] [--json]\n"
            "Remove the managed user NAME and its keys.  Its live connections finish, and no\n"
            "new one is accepted; with --kill they are closed now.  Users of the config file\n"
            "cannot be removed here (exit 4): edit the file and reload.  When tunneld is not\n"
            "running, the user is removed from state_dir.\n",
            PROG_NAME);
}

static int users_remove_offline(const char *name)
{
    struct ctl_offline o;
    struct st_user *u;
    int ret;

    ret = ctl_offline_open(&o, true);
    if (ret != 0)
        goto out;
    ret = CTL_EXIT_FAIL;
    if (ctl_offline_config_user(&o, name)) {
        ctl_err("user '%s' is defined in the config file %s: edit it there and reload", name,
                o.cfg->path);
        ctl_err_status(TD_EACCES);
        ret = CTL_EXIT_DENIED;
        goto out;
    }
    u = td_state_find(&o.st, name);
    if (!u) {
        ctl_err("no such user '%s'", name);
        ctl_err_status(TD_ENOTFOUND);
        goto out;
    }
    ctl_offline_drop(&o, u->protocol, u->secret);
    ctl_offline_drop(&o, u->protocol, u->old_secret);
    (void)td_state_remove(&o.st, name);
    if (ctl_offline_save(&o) != 0)
        goto out;
    ctl_offline_notice_write(&o);
    ret = 0;
out:
    ctl_offline_close(&o);
    return ret;
}

int users_remove_main(int argc, const char *argv[])
{
    const char *pos[1] = {NULL}, *killed = NULL;
    bool kill = false, online = true;
    const struct ctl_opt opts[] = {{"--kill", NULL, &kill}, {NULL, NULL, NULL}};
    struct ctl_buf req;
    struct ctl_msg rep;
    char k[32];
    int ret;

    ctl_buf_init(&req, CTL_MAX_REQUEST);
    memset(&rep, 0, sizeof(rep));
    ret = ctl_args(argc, argv, opts, pos, 1, 1, users_remove_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    if (!cfg_name_valid(pos[0])) {
        fprintf(stderr, "%s: %s: '%s' is not a valid user name\n", PROG_NAME, ctl_cmd, pos[0]);
        ret = CTL_EXIT_USAGE;
        goto out;
    }
    ctl_req(&req, "user-remove");
    ctl_buf_add(&req, "name", pos[0]);
    ctl_buf_add(&req, "kill", kill ? "1" : "0");
    ret = ctl_call(&req, &rep, true, NULL);
    if (ret == CTL_EXIT_NOT_RUNNING) {
        online = false;
        ret = users_remove_offline(pos[0]);
    }
    if (ret != 0)
        goto out;
    killed = ctl_msg_get(&rep, "killed", NULL);
    if (ctl_json) {
        cj_obj(NULL);
        cj_str("user", pos[0]);
        cj_bool("online", online);
        cj_num_text("killed", killed);
        cj_obj_end();
        cj_done();
    } else if (killed && strcmp(killed, "0") != 0) {
        ctl_clean(k, sizeof(k), killed);
        printf("removed user %s; closed %s connection%s\n", pos[0], k,
               strcmp(killed, "1") == 0 ? "" : "s");
    } else {
        printf("removed user %s\n", pos[0]);
    }
out:
    ctl_buf_free(&req);
    ctl_msg_free(&rep);
    return ret;
}
