/* tunnelctl tunnels list: the client tunnels and their state. */
#include "subcommands.h"

#include "client.h"
#include "out.h"
#include "records.h"

#include <stdio.h>
#include <string.h>

static void tunnels_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s tunnels list [--json]\n"
            "List the client tunnels of the running tunneld: protocol, server, state, streams,\n"
            "links, idle pooled links and totals.  Needs the daemon.\n",
            PROG_NAME);
}

int tunnels_main(int argc, const char *argv[])
{
    struct ctl_buf req;
    struct ctl_msg rep;
    int ret = CTL_EXIT_USAGE;

    ctl_buf_init(&req, CTL_MAX_REQUEST);
    memset(&rep, 0, sizeof(rep));
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        tunnels_usage(stdout);
        ret = CTL_EXIT_OK;
        goto out;
    }
    if (argc < 2 || strcmp(argv[1], "list") != 0) {
        fprintf(stderr, "%s: tunnels: %s\n", PROG_NAME,
                argc < 2 ? "missing subcommand (list)" : "unknown subcommand");
        tunnels_usage(stderr);
        goto out;
    }
    ctl_cmd = "tunnels list";
    ret = ctl_args(argc - 1, argv + 1, NULL, NULL, 0, 0, tunnels_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    ctl_req(&req, "tunnels-list");
    ret = ctl_call(&req, &rep, false, NULL);
    if (ret != 0)
        goto out;
    if (ctl_json) {
        cj_obj(NULL);
        ctl_render_json(&rep, ctl_no_fields, ctl_tunnels_recs, CTL_NRECS(ctl_tunnels_recs));
        cj_obj_end();
        cj_done();
    } else if (ctl_render_tables(&rep, ctl_tunnels_recs, CTL_NRECS(ctl_tunnels_recs), false,
                                 stdout) == 0) {
        printf("no tunnels\n");
    }
out:
    ctl_buf_free(&req);
    ctl_msg_free(&rep);
    return ret;
}
