/* tunnelctl subcommands, one file each (after wireguard-tools' src/wg.c).
 * Each takes the argv that starts at its own name and returns the process
 * exit status: 0 on success, 1 on failure, 2 on a usage error. */
#ifndef TD_CTL_SUBCOMMANDS_H_
#define TD_CTL_SUBCOMMANDS_H_

#include <stdio.h>

/* The program name, for messages. */
extern const char *PROG_NAME;

/* Global options, parsed before the subcommand; NULL when not given. */
extern const char *ctl_socket_path;
extern const char *ctl_config_path;

/* Match "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i past the
 * value.  Returns 1 on a match, 0 on none, -1 when the value is missing. */
int ctl_option(int argc, const char *argv[], int *i, const char *name, const char **val);

/* Print the global usage and the table of subcommands. */
void ctl_usage(FILE *out);

int check_config_main(int argc, const char *argv[]);
int help_main(int argc, const char *argv[]);
int jproxy_keygen_main(int argc, const char *argv[]);

#endif
