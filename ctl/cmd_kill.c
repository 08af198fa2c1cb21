/* tunnelctl kill ID: close one connection now. */
#include "subcommands.h"

#include "client.h"
#include "out.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void kill_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s kill ID [--json]\n"
            "Close the connection ID (from '%s conns': a number for a front-end's\n"
            "connection, SERVER:N for a tunnel a server serves) now.  Fails (exit 1) when it\n"
            "is gone.\n",
            PROG_NAME, PROG_NAME);
}

/* A front-end connection's number, or SERVER:N for a server's tunnel. */
static bool conn_id_valid(const char *id)
{
    const char *colon = strrchr(id, ':'), *num = colon ? colon + 1 : id;
    size_t name_len = colon ? (size_t)(colon - id) : 0;

    if (colon && (name_len == 0 || name_len > 64))
        return false;
    for (size_t i = 0; i < name_len; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", id[i]))
            return false;
    if (*num == '\0' || strlen(num) > 20)
        return false;
    for (const char *p = num; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

int kill_main(int argc, const char *argv[])
{
    const char *pos[1] = {NULL};
    struct ctl_buf req;
    struct ctl_msg rep;
    const char *id;
    int ret;

    ctl_buf_init(&req, CTL_MAX_REQUEST);
    memset(&rep, 0, sizeof(rep));
    ret = ctl_args(argc, argv, NULL, pos, 1, 1, kill_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    id = pos[0];
    if (!conn_id_valid(id)) {
        fprintf(stderr, "%s: kill: '%s' is not a connection id (see '%s conns')\n", PROG_NAME,
                pos[0], PROG_NAME);
        ret = CTL_EXIT_USAGE;
        goto out;
    }
    ctl_req(&req, "kill");
    ctl_buf_add(&req, "id", id);
    ret = ctl_call(&req, &rep, false, NULL);
    if (ret != 0)
        goto out;
    if (ctl_json) {
        cj_obj(NULL);
        cj_str("id", id);
        cj_bool("killed", true);
        cj_obj_end();
        cj_done();
    } else {
        printf("closed connection %s\n", id);
    }
out:
    ctl_buf_free(&req);
    ctl_msg_free(&rep);
    return ret;
}
