/* tunnelctl check-config [FILE]: load a config the way tunneld does and
 * print every error, one "file:line:col: key: reason" line each. */
#include "subcommands.h"

#include "out.h"
#include "config/config.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>

static void check_config_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s check-config [FILE] [--json]\n"
            "Validate FILE (or the --config file) and print every error.\n"
            "Exits 0 when the file is valid, 1 when it is not.\n",
            PROG_NAME);
}

int check_config_main(int argc, const char *argv[])
{
    struct td_config *cfg = NULL;
    struct cfg_errors errs = {NULL, 0};
    const char *pos[1] = {NULL};
    const char *path = ctl_config_path;
    int ret;
    int rc;

    ret = ctl_args(argc, argv, NULL, pos, 0, 1, check_config_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    ret = CTL_EXIT_USAGE;
    if (pos[0])
        path = pos[0];
    if (!path) {
        fprintf(stderr, "%s: check-config: no file given (pass FILE or --config FILE)\n",
                PROG_NAME);
        check_config_usage(stderr);
        goto out;
    }
    rc = cfg_load_file(path, &cfg, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    if (rc != 0) {
        /* Out of memory can leave no message behind; never fail silently. */
        if (errs.n == 0)
            fprintf(stderr, "%s: %s\n", path, td_strerror(rc));
        else
            fprintf(stderr, "%s: configuration has %zu error%s\n", path, errs.n,
                    errs.n == 1 ? "" : "s");
        ret = CTL_EXIT_FAIL;
    } else {
        if (!ctl_json)
            printf("%s: ok (%zu listeners, %zu users)\n", path, cfg->n_listeners, cfg->n_users);
        ret = CTL_EXIT_OK;
    }
    if (ctl_json) {
        cj_obj(NULL);
        cj_str("file", path);
        cj_bool("ok", rc == 0);
        if (cfg) {
            cj_u64("listeners", cfg->n_listeners);
            cj_u64("users", cfg->n_users);
            cj_u64("tunnels", cfg->n_tunnels);
            cj_u64("servers", cfg->n_servers);
        }
        cj_arr("errors");
        for (size_t i = 0; i < errs.n; i++)
            cj_str(NULL, errs.msgs[i]);
        if (rc != 0 && errs.n == 0)
            cj_str(NULL, td_strerror(rc));
        cj_arr_end();
        cj_obj_end();
        cj_done();
    }
out:
    cfg_free(cfg);
    cfg_errors_free(&errs);
    return ret;
}
