/* tunnelctl: talk to a running tunneld, or edit its state when it is not
 * running, or check its config.
 *
 * Global options come before the subcommand and are kept for the
 * subcommands; each subcommand lives in its own cmd_*.c file. */
#include "subcommands.h"

#include "client.h"
#include "out.h"
#include "util/addr.h"

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
    {"status", status_main, "Show the daemon: listeners, tunnels, servers, connections"},
    {"version", version_main, "Show tunnelctl's version and the daemon's"},
    {"users", users_main, "users list | add NAME | remove NAME: the managed users"},
    {"add-key", add_key_main, "Make a key for a new managed user (as users add)"},
    {"rotate-key", rotate_key_main, "Give a user a new key; the old one stays for --grace"},
    {"export-client", export_client_main, "Print a complete client config for a user"},
    {"tunnels", tunnels_main, "tunnels list: the client tunnels and their state"},
    {"bounce", bounce_main, "Restart one tunnel, listener or server"},
    {"reload", reload_main, "Re-read the config and the state, apply the difference"},
    {"stats", stats_main, "Traffic and failure counters per user, tunnel, listener, server"},
    {"conns", conns_main, "List the live connections"},
    {"kill", kill_main, "Close one connection"},
    {"check-config", check_config_main, "Validate a configuration file and report every error"},
    {"jproxy-keygen", jproxy_keygen_main, "Make a jProxy user: key.dat + server user file"},
    {"help", help_main, "Show this help"},
};

bool ctl_command_at(size_t i, const char **name, const char **desc)
{
    if (i >= sizeof(cmds) / sizeof(cmds[0]))
        return false;
    *name = cmds[i].name;
    *desc = cmds[i].desc;
    return true;
}

void ctl_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s [--socket PATH] [--config FILE] [--timeout DURATION] [--json] COMMAND "
            "[ARGS...]\n"
            "       %s --help | --version\n"
            "\n"
            "Global options:\n"
            "  --socket PATH       control socket of the running tunneld\n"
            "                      (default: the config's control.socket, else %s)\n"
            "  --config FILE       tunneld config file: where the socket and state_dir are\n"
            "                      (default: %s when it exists)\n"
            "  --timeout DURATION  give up on the daemon after this long (default 30s)\n"
            "  --json              machine-readable output (every command takes it too)\n"
            "  --help              show this help\n"
            "  --version           show the version\n"
            "\n"
            "Commands:\n",
            PROG_NAME, PROG_NAME, "/run/tunneld/control.sock", "/etc/tunneld/tunneld.yaml");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        fprintf(out, "  %-14s %s\n", cmds[i].name, cmds[i].desc);
    fprintf(out,
            "\nExit codes: 0 done, 1 failed, 2 usage error, 3 tunneld not running, 4 access "
            "denied.\n"
            "Run '%s COMMAND --help' for a command's options.\n",
            PROG_NAME);
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

int ctl_args(int argc, const char *argv[], const struct ctl_opt *opts, const char **pos,
             size_t npos_min, size_t npos_max, void (*usage)(FILE *))
{
    size_t npos = 0;
    bool dashdash = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = 0;

        if (!dashdash && a[0] == '-' && a[1] != '\0') {
            if (strcmp(a, "--") == 0) {
                dashdash = true;
                continue;
            }
            if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
                usage(stdout);
                return CTL_EXIT_OK;
            }
            if (strcmp(a, "--json") == 0) {
                ctl_json = true;
                continue;
            }
            for (const struct ctl_opt *o = opts; o && o->name && r == 0; o++) {
                if (o->flag) {
                    if (strcmp(a, o->name) == 0) {
                        *o->flag = true;
                        r = 1;
                    }
                } else {
                    r = ctl_option(argc, argv, &i, o->name, o->val);
                }
            }
            if (r < 0) {
                fprintf(stderr, "%s: %s: option '%s' needs a value\n", PROG_NAME, ctl_cmd, a);
                usage(stderr);
                return CTL_EXIT_USAGE;
            }
            if (r == 0) {
                fprintf(stderr, "%s: %s: unknown option '%s'\n", PROG_NAME, ctl_cmd, a);
                usage(stderr);
                return CTL_EXIT_USAGE;
            }
            continue;
        }
        if (npos >= npos_max) {
            fprintf(stderr, "%s: %s: unexpected argument '%s'\n", PROG_NAME, ctl_cmd, a);
            usage(stderr);
            return CTL_EXIT_USAGE;
        }
        pos[npos++] = a;
    }
    if (npos < npos_min) {
        fprintf(stderr, "%s: %s: missing argument\n", PROG_NAME, ctl_cmd);
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    return CTL_ARGS_GO;
}

int main(int argc, const char *argv[])
{
    const char *timeout = NULL;
    int i, r;
    int ret = CTL_EXIT_USAGE;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            ctl_usage(stdout);
            ret = CTL_EXIT_OK;
            goto out;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("tunnelctl " TUNNELD_VERSION "\n");
            ret = CTL_EXIT_OK;
            goto out;
        }
        if (strcmp(argv[i], "--json") == 0) {
            ctl_json = true;
            continue;
        }
        r = ctl_option(argc, argv, &i, "--socket", &ctl_socket_path);
        if (r == 0)
            r = ctl_option(argc, argv, &i, "--config", &ctl_config_path);
        if (r == 0)
            r = ctl_option(argc, argv, &i, "--timeout", &timeout);
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
    if (timeout) {
        uint64_t ms = 0;
        if (td_duration_parse(timeout, &ms) != 0 || ms == 0) {
            fprintf(stderr, "%s: --timeout %s: not a duration such as 10s or 500ms\n", PROG_NAME,
                    timeout);
            goto out;
        }
        ctl_timeout_ms = ms;
    }
    if ((ctl_socket_path && !ctl_socket_path[0]) || (ctl_config_path && !ctl_config_path[0])) {
        fprintf(stderr, "%s: --socket and --config need a non-empty value\n", PROG_NAME);
        goto out;
    }
    if (i >= argc) {
        ctl_usage(stderr);
        goto out;
    }
    for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
        if (strcmp(argv[i], cmds[c].name) == 0) {
            ctl_cmd = cmds[c].name;
            ret = cmds[c].fn(argc - i, argv + i);
            goto out;
        }
    }
    fprintf(stderr, "%s: unknown command '%s'\n\n", PROG_NAME, argv[i]);
    ctl_usage(stderr);
out:
    ret = ctl_finish(ret);
    ctl_client_cleanup();
    return ret;
}
