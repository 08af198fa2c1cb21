/* Raise the soft RLIMIT_NOFILE to the hard limit and report it, so that the
 * daemon can budget descriptors instead of discovering EMFILE at accept(). */
#include "platform/platform.h"

#include <sys/resource.h>

uint64_t fdlimit_raise(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur != rl.rlim_max) {
        struct rlimit want = rl;
        want.rlim_cur = rl.rlim_max;
        /* Some kernels refuse RLIM_INFINITY; stay with the old value then. */
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl = want;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 24))
        return 1u << 24;
    return (uint64_t)rl.rlim_cur;
}
