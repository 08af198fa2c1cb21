/* tunnelctl check-config [FILE]: load a config the way tunneld does and
 * print every error, one "file:line:col: key: reason" line each. */
#include "subcommands.h"

#include "config/config.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>

static void check_config_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s check-config [FILE]\n"
            "Validate FILE (or the --config file) and print every error.\n"
            "Exits 0 when the file is valid, 1 when it is not.\n",
            PROG_NAME);
}

int check_config_main(int argc, const char *argv[])
{
    struct td_config *cfg = NULL;
    struct cfg_errors errs = {NULL, 0};
    const char *path = ctl_config_path;
    int ret = 2;
    int rc;

    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        check_config_usage(stdout);
        ret = 0;
        goto out;
    }
    if (argc > 2 || (argc == 2 && argv[1][0] == '-' && argv[1][1] != '\0')) {
        check_config_usage(stderr);
        goto out;
    }
    if (argc == 2)
        path = argv[1];
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
        ret = 1;
        goto out;
    }
    printf("%s: ok (%zu listeners, %zu users)\n", path, cfg->n_listeners, cfg->n_users);
    ret = 0;
out:
    cfg_free(cfg);
    cfg_errors_free(&errs);
    return ret;
}
