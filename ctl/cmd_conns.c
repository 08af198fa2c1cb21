/* tunnelctl conns: the live connections. */
#include "subcommands.h"

#include "client.h"
#include "out.h"
#include "records.h"
#include "config/config.h"

#include <stdio.h>
#include <string.h>

static void conns_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s conns [--user USER] [--tunnel TUNNEL] [--json]\n"
            "List the live connections of the running tunneld (and the server-side tunnels):\n"
            "id, user, listener or server, route, client, target, bytes each way and age.\n"
            "Close one with '%s kill ID'.\n"
            "\n"
            "  --user USER      only this user's\n"
            "  --tunnel TUNNEL  only those through this tunnel\n",
            PROG_NAME, PROG_NAME);
}

int conns_main(int argc, const char *argv[])
{
    const char *user = NULL, *tunnel = NULL;
    const struct ctl_opt opts[] = {
        {"--user", &user, NULL}, {"--tunnel", &tunnel, NULL}, {NULL, NULL, NULL}};
    struct ctl_buf req;
    struct ctl_msg rep;
    int ret;

    ctl_buf_init(&req, CTL_MAX_REQUEST);
    memset(&rep, 0, sizeof(rep));
    ret = ctl_args(argc, argv, opts, NULL, 0, 0, conns_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    if ((user && !cfg_name_valid(user)) || (tunnel && !cfg_name_valid(tunnel))) {
        fprintf(stderr, "%s: conns: '%s' is not a valid name\n", PROG_NAME,
                user && !cfg_name_valid(user) ? user : tunnel);
        ret = CTL_EXIT_USAGE;
        goto out;
    }
    ctl_req(&req, "conns");
    if (user)
        ctl_buf_add(&req, "user", user);
    if (tunnel)
        ctl_buf_add(&req, "tunnel", tunnel);
    ret = ctl_call(&req, &rep, false, NULL);
    if (ret != 0)
        goto out;
    if (ctl_json) {
        cj_obj(NULL);
        ctl_render_json(&rep, ctl_no_fields, ctl_conns_recs, CTL_NRECS(ctl_conns_recs));
        cj_obj_end();
        cj_done();
    } else if (ctl_render_tables(&rep, ctl_conns_recs, CTL_NRECS(ctl_conns_recs), false, stdout) ==
               0) {
        printf("no connections\n");
    }
out:
    ctl_buf_free(&req);
    ctl_msg_free(&rep);
    return ret;
}
