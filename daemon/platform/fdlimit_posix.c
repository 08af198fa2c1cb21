/* Raise RLIMIT_NOFILE as far as this process may, and report it, so that the
 * daemon can budget descriptors instead of discovering EMFILE at accept().
 *
 * With CAP_SYS_RESOURCE (root, or a unit's LimitNOFILE= unset) the hard
 * limit itself goes up to the kernel's ceiling, fs.nr_open (capped at 2^20:
 * libuv and lws keep per-descriptor tables); without it the soft limit goes
 * up to the hard one.  Each step that works is kept. */
#include "platform/platform.h"

#include "util/log.h"

#include <stdio.h>
#include <sys/resource.h>

#define FDLIMIT_CEILING ((rlim_t)1 << 20)

/* The kernel's per-process ceiling (fs.nr_open), or 0 when unknown. */
static rlim_t fdlimit_nr_open(void)
{
    unsigned long long v = 0;
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%llu", &v) != 1)
        v = 0;
    fclose(f);
    return (rlim_t)v;
}

uint64_t fdlimit_raise(void)
{
    struct rlimit rl, want;
    rlim_t before, ceiling = fdlimit_nr_open();

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    before = rl.rlim_cur;
    if (ceiling > FDLIMIT_CEILING || ceiling == 0)
        ceiling = FDLIMIT_CEILING;
    /* First the hard limit (needs CAP_SYS_RESOURCE), then the soft one. */
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < ceiling) {
        want.rlim_cur = ceiling;
        want.rlim_max = ceiling;
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl = want;
    }
    if (rl.rlim_cur != rl.rlim_max) {
        want = rl;
        want.rlim_cur = rl.rlim_max;
        /* Some kernels refuse RLIM_INFINITY; stay with the old value then. */
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl = want;
    }
    if (rl.rlim_cur != before)
        LOG_INFO("main", "descriptor limit raised from %llu to %llu", (unsigned long long)before,
                 (unsigned long long)rl.rlim_cur);
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 24))
        return 1u << 24;
    return (uint64_t)rl.rlim_cur;
}
