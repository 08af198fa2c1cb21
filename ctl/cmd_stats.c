/* tunnelctl stats: traffic and failure counters per user, tunnel, listener
 * and server. */
#include "subcommands.h"

#include "client.h"
#include "out.h"
#include "records.h"
#include "config/config.h"

#include <stdio.h>
#include <string.h>

static void stats_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s stats [--user USER] [--tunnel TUNNEL] [--reset] [--json]\n"
            "Show the counters of the running tunneld: bytes towards the client (IN) and from\n"
            "it (OUT), connections active and in all, and the failures by reason, for each\n"
            "user, tunnel, listener and server.\n"
            "\n"
            "  --user USER      only this user\n"
            "  --tunnel TUNNEL  only this tunnel\n"
            "  --reset          zero the counters after reading them\n",
            PROG_NAME);
}

int stats_main(int argc, const char *argv[])
{
    const char *user = NULL, *tunnel = NULL;
    bool reset = false;
    const struct ctl_opt opts[] = {{"--user", &user, NULL},
                                   {"--tunnel", &tunnel, NULL},
                                   {"--reset", NULL, &reset},
                                   {NULL, NULL, NULL}};
    struct ctl_buf req;
    struct ctl_msg rep;
    int ret;

    ctl_buf_init(&req, CTL_MAX_REQUEST);
    memset(&rep, 0, sizeof(rep));
    ret = ctl_args(argc, argv, opts, NULL, 0, 0, stats_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    if ((user && !cfg_name_valid(user)) || (tunnel && !cfg_name_valid(tunnel))) {
        fprintf(stderr, "%s: stats: '%s' is not a valid name\n", PROG_NAME,
                user && !cfg_name_valid(user) ? user : tunnel);
        ret = CTL_EXIT_USAGE;
        goto out;
    }
    ctl_req(&req, "stats");
    if (user)
        ctl_buf_add(&req, "user", user);
    if (tunnel)
        ctl_buf_add(&req, "tunnel", tunnel);
    if (reset)
        ctl_buf_add(&req, "reset", "1");
    ret = ctl_call(&req, &rep, false, NULL);
    if (ret != 0)
        goto out;
    if (ctl_json) {
        cj_obj(NULL);
        cj_bool("reset", reset);
        ctl_render_json(&rep, ctl_no_fields, ctl_stats_recs, CTL_NRECS(ctl_stats_recs));
        cj_obj_end();
        cj_done();
        goto out;
    }
    if (ctl_render_tables(&rep, ctl_stats_recs, CTL_NRECS(ctl_stats_recs), false, stdout) == 0)
        printf("no counters\n");
    if (reset)
        printf("(the counters are now zero)\n");
out:
    ctl_buf_free(&req);
    ctl_msg_free(&rep);
    return ret;
}
