/* tunnelctl version: tunnelctl's own version, and the daemon's when it
 * runs (a daemon that is not running is not an error here). */
#include "subcommands.h"

#include "client.h"
#include "out.h"

#include <stdio.h>
#include <string.h>

static void version_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s version [--json]\n"
            "Show tunnelctl's version, and the running tunneld's version and control protocol.\n",
            PROG_NAME);
}

int version_main(int argc, const char *argv[])
{
    struct ctl_buf req;
    struct ctl_msg rep;
    const char *dv = NULL, *dp = NULL;
    char a[256], b[64];
    int ret;

    ctl_buf_init(&req, CTL_MAX_REQUEST);
    memset(&rep, 0, sizeof(rep));
    ret = ctl_args(argc, argv, NULL, NULL, 0, 0, version_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    ctl_req(&req, "version");
    ret = ctl_call(&req, &rep, true, NULL);
    if (ret == CTL_EXIT_NOT_RUNNING)
        ret = CTL_EXIT_OK;
    else if (ret != 0)
        goto out;
    dv = ctl_msg_get(&rep, "version", NULL);
    dp = ctl_msg_get(&rep, "protocol", NULL);
    if (ctl_json) {
        cj_obj(NULL);
        cj_str("tunnelctl", TUNNELD_VERSION);
        cj_u64("tunnelctl_protocol", CTL_VERSION);
        cj_bool("running", rep.n > 0);
        cj_str("daemon", dv);
        cj_num_text("protocol", dp);
        cj_obj_end();
        cj_done();
        goto out;
    }
    printf("tunnelctl %s (control protocol %d)\n", TUNNELD_VERSION, CTL_VERSION);
    if (rep.n == 0) {
        printf("tunneld   not running\n");
    } else {
        ctl_clean(a, sizeof(a), dv ? dv : "?");
        ctl_clean(b, sizeof(b), dp ? dp : "?");
        printf("tunneld   %s (control protocol %s)\n", a, b);
    }
out:
    ctl_buf_free(&req);
    ctl_msg_free(&rep);
    return ret;
}
