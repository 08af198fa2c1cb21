/* The parts of the file helpers that do not depend on the OS (see fs.h). */
#include "util/fs.h"

#include <string.h>

bool td_fs_is_tmp_name(const char *name)
{
    const char *t = strstr(name, ".tmp.");
    size_t n;

    if (!t || t == name)
        return false;
    /* The writers' suffixes: mkstemp's six characters on POSIX, twelve hex
     * digits on Windows; the last ".tmp." counts. */
    while (strstr(t + 1, ".tmp."))
        t = strstr(t + 1, ".tmp.");
    t += 5;
    n = strlen(t);
    if (n != 6 && n != 12)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
              (t[i] >= '0' && t[i] <= '9')))
            return false;
    return true;
}
