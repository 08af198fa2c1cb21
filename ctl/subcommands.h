/* tunnelctl subcommands, one file each (after wireguard-tools' src/wg.c).
 * Each takes the argv that starts at its own name and returns the process
 * exit status (docs/control-protocol.md): 0 done, 1 failed, 2 usage error,
 * 3 the daemon is not running, 4 access denied. */
#ifndef TD_CTL_SUBCOMMANDS_H_
#define TD_CTL_SUBCOMMANDS_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The program name, for messages. */
extern const char *PROG_NAME;

/* Global options, parsed before the subcommand; NULL when not given. */
extern const char *ctl_socket_path;
extern const char *ctl_config_path;

/* Match "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i past the
 * value.  Returns 1 on a match, 0 on none, -1 when the value is missing. */
int ctl_option(int argc, const char *argv[], int *i, const char *name, const char **val);

/* A subcommand's options: with val, "--name VALUE"; with flag, "--name". */
struct ctl_opt {
    const char *name;
    const char **val;
    bool *flag;
};

#define CTL_ARGS_GO (-1)
/* Parse argv[1..] against opts (plus --json and --help/-h, always there);
 * the other arguments are positional, between npos_min and npos_max of
 * them, into pos[].  Returns CTL_ARGS_GO, or the exit code to return: 0
 * after --help, 2 after a usage error (the usage is printed). */
int ctl_args(int argc, const char *argv[], const struct ctl_opt *opts, const char **pos,
             size_t npos_min, size_t npos_max, void (*usage)(FILE *));

/* Print the global usage and the table of subcommands. */
void ctl_usage(FILE *out);
/* The subcommands, for help --json: false past the last one. */
bool ctl_command_at(size_t i, const char **name, const char **desc);

int add_key_main(int argc, const char *argv[]);
int bounce_main(int argc, const char *argv[]);
int check_config_main(int argc, const char *argv[]);
int conns_main(int argc, const char *argv[]);
int export_client_main(int argc, const char *argv[]);
int help_main(int argc, const char *argv[]);
int jproxy_keygen_main(int argc, const char *argv[]);
int kill_main(int argc, const char *argv[]);
int reload_main(int argc, const char *argv[]);
int rotate_key_main(int argc, const char *argv[]);
int stats_main(int argc, const char *argv[]);
int status_main(int argc, const char *argv[]);
int tunnels_main(int argc, const char *argv[]);
int users_main(int argc, const char *argv[]);
int users_add_main(int argc, const char *argv[]);
int users_list_main(int argc, const char *argv[]);
int users_remove_main(int argc, const char *argv[]);
int version_main(int argc, const char *argv[]);

/* users add and add-key: make a user with a new key (cmd_users_add.c). */
int ctl_user_add(int argc, const char *argv[], void (*usage)(FILE *));

#endif
