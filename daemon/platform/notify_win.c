/* Windows has no $NOTIFY_SOCKET: a Windows service reports its state to
 * the service control manager through SetServiceStatus instead. */
#include "platform/platform.h"

void td_notify(const char *state)
{
    (void)state;
}
