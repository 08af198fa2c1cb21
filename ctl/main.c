/* tunnelctl: talk to a running tunneld, or check its config.
 *
 * Global options come before the subcommand and are kept for the
 * subcommands; each subcommand lives in its own cmd_*.c file. */
#include "subcommands.h"

#include <stdio.h>
#include <string.h>

const char *PROG_NAME = "tunnelctl";
const char *ctl_socket_path;
const char *ctl_config_path;

static const struct {
    const char *name;
    int (*fn)(int argc, const char *argv[]);
    const char *desc;
} cmds[] = {
    {"check-config", check_config_main, "Validate a configuration file and report every error"},
    {"help", help_main, "Show this help"},
    {"jproxy-keygen", jproxy_keygen_main, "Make a jProxy user: key.dat + server user file"},
};

void ctl_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s [--socket PATH | --config FILE] COMMAND [ARGS...]\n"
            "       %s --help | --version\n"
            "\n"
            "Global options:\n"
            "  --socket PATH  control socket of the running tunneld\n"
            "  --config FILE  tunneld config file (also tells where the socket is)\n"
            "  --help         show this help\n"
            "  --version      show the version\n"
            "\n"
            "Commands:\n",
            PROG_NAME, PROG_NAME);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        fprintf(out, "  %-14s %s\n", cmds[i].name, cmds[i].desc);
}

/* Match "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i past the
 * value.  Returns 1 on a match, 0 on none, -1 when the value is missing. */
int ctl_option(int argc, const char *argv[], int *i, const char *name, const char **val)
{
    size_t n = strlen(name);

    if (strncmp(argv[*i], name, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *val = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

int main(int argc, const char *argv[])
{
    int i, r;
    int ret = 2;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            ctl_usage(stdout);
            ret = 0;
            goto out;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("tunnelctl " TUNNELD_VERSION "\n");
            ret = 0;
            goto out;
        }
        r = ctl_option(argc, argv, &i, "--socket", &ctl_socket_path);
        if (r == 0)
            r = ctl_option(argc, argv, &i, "--config", &ctl_config_path);
        if (r < 0) {
            fprintf(stderr, "%s: option '%s' needs a value\n", PROG_NAME, argv[i]);
            goto out;
        }
        if (r == 0) {
            fprintf(stderr, "%s: unknown option '%s'\n\n", PROG_NAME, argv[i]);
            ctl_usage(stderr);
            goto out;
        }
    }
    if (i >= argc) {
        ctl_usage(stderr);
        goto out;
    }
    for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
        if (strcmp(argv[i], cmds[c].name) == 0) {
            ret = cmds[c].fn(argc - i, argv + i);
            goto out;
        }
    }
    fprintf(stderr, "%s: unknown command '%s'\n\n", PROG_NAME, argv[i]);
    ctl_usage(stderr);
out:
    return ret;
}
