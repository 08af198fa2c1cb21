/* tunnelctl bounce NAME: restart one tunnel, listener or server. */
#include "subcommands.h"

#include "client.h"
#include "out.h"
#include "config/config.h"

#include <stdio.h>
#include <string.h>

static void bounce_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s bounce NAME [--json]\n"
            "Restart the tunnel, listener or server NAME of the running tunneld.  A tunnel closes\n"
            "its connections and links, empties its pool and starts again; a listener or a\n"
            "server closes its socket and binds again (its connections carry on).  Nothing else\n"
            "is touched.  Needs the daemon.\n",
            PROG_NAME);
}

int bounce_main(int argc, const char *argv[])
{
    const char *pos[1] = {NULL}, *kind;
    struct ctl_buf req;
    struct ctl_msg rep;
    char k[64];
    int ret;

    ctl_buf_init(&req, CTL_MAX_REQUEST);
    memset(&rep, 0, sizeof(rep));
    ret = ctl_args(argc, argv, NULL, pos, 1, 1, bounce_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    if (!cfg_name_valid(pos[0])) {
        fprintf(stderr, "%s: bounce: '%s' is not a valid name\n", PROG_NAME, pos[0]);
        ret = CTL_EXIT_USAGE;
        goto out;
    }
    ctl_req(&req, "bounce");
    ctl_buf_add(&req, "name", pos[0]);
    ret = ctl_call(&req, &rep, false, NULL);
    if (ret != 0)
        goto out;
    kind = ctl_msg_get(&rep, "kind", NULL);
    if (ctl_json) {
        cj_obj(NULL);
        cj_str("name", pos[0]);
        cj_str("kind", kind);
        cj_obj_end();
        cj_done();
    } else {
        ctl_clean(k, sizeof(k), kind ? kind : "object");
        printf("bounced %s %s\n", k, pos[0]);
    }
out:
    ctl_buf_free(&req);
    ctl_msg_free(&rep);
    return ret;
}
