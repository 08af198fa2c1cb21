/* tunnelctl users list | add | remove: the subcommands of users, each in
 * its own file (cmd_users_*.c). */
#include "subcommands.h"

#include "out.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name, *full;
    int (*fn)(int argc, const char *argv[]);
} users_cmds[] = {
    {"list", "users list", users_list_main},
    {"add", "users add", users_add_main},
    {"remove", "users remove", users_remove_main},
};

static void users_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s users list [--json]\n"
            "       %s users add NAME [--protocol wstan|jproxy] [--out FILE] [--force]\n"
            "                [--server HOST[:PORT]] [--via SERVER] [--json]\n"
            "       %s users remove NAME [--kill] [--json]\n"
            "The users tunnelctl manages (in state_dir), beside those of the config file.\n"
            "Run '%s users COMMAND --help' for more.\n",
            PROG_NAME, PROG_NAME, PROG_NAME, PROG_NAME);
}

int users_main(int argc, const char *argv[])
{
    int ret = CTL_EXIT_USAGE;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        users_usage(stdout);
        ret = CTL_EXIT_OK;
        goto out;
    }
    for (size_t i = 0; argc >= 2 && i < sizeof(users_cmds) / sizeof(users_cmds[0]); i++) {
        if (strcmp(argv[1], users_cmds[i].name) == 0) {
            ctl_cmd = users_cmds[i].full;
            ret = users_cmds[i].fn(argc - 1, argv + 1);
            goto out;
        }
    }
    if (argc < 2)
        fprintf(stderr, "%s: users: missing subcommand (list, add or remove)\n", PROG_NAME);
    else
        fprintf(stderr, "%s: users: unknown subcommand '%s'\n", PROG_NAME, argv[1]);
    users_usage(stderr);
out:
    return ret;
}
