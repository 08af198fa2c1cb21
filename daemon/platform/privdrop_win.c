/* On Windows the service account chosen at install time is the identity;
 * there is nothing to switch to at run time. */
#include "platform/platform.h"

#include "util/log.h"

int privdrop(const char *user)
{
    if (user)
        LOG_WARN("main", "'user: %s' is ignored on Windows: the service account decides", user);
    return 0;
}
