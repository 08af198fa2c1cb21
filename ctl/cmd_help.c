/* tunnelctl help: the list of commands. */
#include "subcommands.h"

#include "out.h"

#include <stdio.h>

static void help_usage(FILE *out)
{
    fprintf(out, "Usage: %s help [--json]\nShow the commands.\n", PROG_NAME);
}

int help_main(int argc, const char *argv[])
{
    const char *name, *desc;
    int ret;

    ret = ctl_args(argc, argv, NULL, NULL, 0, 0, help_usage);
    if (ret != CTL_ARGS_GO)
        goto out;
    if (!ctl_json) {
        ctl_usage(stdout);
        ret = CTL_EXIT_OK;
        goto out;
    }
    cj_obj(NULL);
    cj_str("tunnelctl", TUNNELD_VERSION);
    cj_arr("commands");
    for (size_t i = 0; ctl_command_at(i, &name, &desc); i++) {
        cj_obj(NULL);
        cj_str("name", name);
        cj_str("description", desc);
        cj_obj_end();
    }
    cj_arr_end();
    cj_obj_end();
    cj_done();
    ret = CTL_EXIT_OK;
out:
    return ret;
}
