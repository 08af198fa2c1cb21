/* tunnelctl kill ID: close one connection now. */
#include "subcommands.h"

#include "client.h"
#include "out.h"

#include <stdio.h>
#include <string.h>

static void kill_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s kill ID [--json]\n"
            "Close the connection ID (from '%s conns') now.  Fails (exit 1) when it is gone.\n",
            PROG_NAME, PROG_NAME);
}

int kill_main(int argc, const char *argv[])
{
    const char *pos[1] = {NULL};
    struct ctl_buf req;
    struct ctl_msg rep;
    int64_t id = 0;
    int ret;

    ctl_buf_init(&req, CTL_MAX_REQUEST);
    memset(&rep, 0, sizeof(rep));
    ret = ctl_args(argc, argv, NULL, pos, 1, 1, kill_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    if (!ctl_parse_i64(pos[0], &id) || id < 0) {
        fprintf(stderr, "%s: kill: '%s' is not a connection id (a number from '%s conns')\n",
                PROG_NAME, pos[0], PROG_NAME);
        ret = CTL_EXIT_USAGE;
        goto out;
    }
    ctl_req(&req, "kill");
    ctl_buf_add_u64(&req, "id", (uint64_t)id);
    ret = ctl_call(&req, &rep, false, NULL);
    if (ret != 0)
        goto out;
    if (ctl_json) {
        cj_obj(NULL);
        cj_i64("id", id);
        cj_bool("killed", true);
        cj_obj_end();
        cj_done();
    } else {
        printf("closed connection %lld\n", (long long)id);
    }
out:
    ctl_buf_free(&req);
    ctl_msg_free(&rep);
    return ret;
}
