/* td_notify(), Windows: the service control handler reports the state
 * (main_win.c); nothing to send here. */
#include "platform/platform.h"

void td_notify(const char *state)
{
    (void)state;
}
