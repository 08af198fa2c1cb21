/* Environment variables for the libraries we configure that way (libuv's
 * thread pool size). */
#include "platform/platform.h"

#include <stdlib.h>

void osenv_set_default(const char *name, const char *value)
{
    setenv(name, value, 0);
}
