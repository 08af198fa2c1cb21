/* Windows has no per-process descriptor limit like RLIMIT_NOFILE; sockets are
 * bounded by memory, so the budget is max_connections alone. */
#include "platform/platform.h"

uint64_t fdlimit_raise(void)
{
    return 1u << 24;
}
