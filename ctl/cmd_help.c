/* tunnelctl help: the list of commands. */
#include "subcommands.h"

#include <stdio.h>

int help_main(int argc, const char *argv[])
{
    ctl_usage(stdout);
    return 0;
}
