/* tunnelctl add-key USER: make a key for a new managed user.  The state
 * holds one current key per user (and an old one during a rotation), so
 * this is users add under the name of what it makes; a user that already
 * has a key gets a new one with rotate-key. */
#include "subcommands.h"

#include <stdio.h>

static void add_key_usage(FILE *out)
{
    fprintf(out,
            "Usage: %s add-key USER [--protocol wstan|jproxy] [--out FILE] [--force]\n"
            "                [--server HOST[:PORT]] [--via SERVER] [--json]\n"
            "Make a key for USER, a new managed user, and print the client's tunnels: entry:\n"
            "the same as '%s users add USER'.  A user holds one key; to replace it, use\n"
            "'%s rotate-key USER'.  jproxy needs --out FILE, the client's key.dat.\n",
            PROG_NAME, PROG_NAME, PROG_NAME);
}

int add_key_main(int argc, const char *argv[])
{
    return ctl_user_add(argc, argv, add_key_usage);
}
