/* tunnelctl reload: re-read the config and the state, apply the difference.
 * On any error nothing changes, and the daemon's error= lines (one per
 * config error, file:line:col: key: reason) are printed. */
#include "subcommands.h"

#include "client.h"
#include "out.h"
#include "records.h"

#include <stdio.h>
#include <string.h>

static void reload_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s reload [--json]\n"
            "Make the running tunneld re-read its config file and state, validate all of it and\n"
            "apply the difference; on any error nothing changes and every error is printed.\n"
            "Needs the daemon.\n",
            PROG_NAME);
}

int reload_main(int argc, const char *argv[])
{
    static const char *const keys[] = {"generation", "started", "stopped", "replaced", "kept"};
    const char *v[5];
    char c[5][32];
    struct ctl_buf req;
    struct ctl_msg rep;
    int ret;

    ctl_buf_init(&req, CTL_MAX_REQUEST);
    memset(&rep, 0, sizeof(rep));
    ret = ctl_args(argc, argv, NULL, NULL, 0, 0, reload_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    ctl_req(&req, "reload");
    ret = ctl_call(&req, &rep, false, NULL);
    if (ret != 0)
        goto out;
    if (ctl_json) {
        cj_obj(NULL);
        ctl_render_json(&rep, ctl_reload_top, NULL, 0);
        cj_obj_end();
        cj_done();
        goto out;
    }
    for (size_t i = 0; i < 5; i++) {
        v[i] = ctl_msg_get(&rep, keys[i], NULL);
        ctl_clean(c[i], sizeof(c[i]), v[i] ? v[i] : "?");
    }
    printf("reloaded: generation %s; %s started, %s stopped, %s replaced, %s kept\n", c[0], c[1],
           c[2], c[3], c[4]);
out:
    ctl_buf_free(&req);
    ctl_msg_free(&rep);
    return ret;
}
