/* Give up root once the listeners are bound and the log is open, so that a
 * compromise of the relay does not hand out the machine. */
#include "platform/platform.h"

#include "util/error.h"
#include "util/log.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int privdrop(const char *user)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    int r;

    if (!user)
        return 0;
    r = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
    if (r != 0 || !res) {
        LOG_ERROR("main", "user '%s': no such user", user);
        return TD_ENOTFOUND;
    }
    if (geteuid() != 0) {
        if (pw.pw_uid == geteuid())
            return 0;
        LOG_ERROR("main", "cannot switch to user '%s': not running as root", user);
        return TD_EACCES;
    }
    if (initgroups(pw.pw_name, pw.pw_gid) != 0 || setgid(pw.pw_gid) != 0 ||
        setuid(pw.pw_uid) != 0) {
        LOG_ERROR("main", "cannot switch to user '%s': %s", user, strerror(errno));
        return TD_EACCES;
    }
    /* Fail closed if root could be regained. */
    if (pw.pw_uid != 0 && setuid(0) == 0) {
        LOG_ERROR("main", "privileges were not dropped: setuid(0) still works");
        return TD_EACCES;
    }
    LOG_INFO("main", "running as user %s (uid %lu, gid %lu)", user, (unsigned long)pw.pw_uid,
             (unsigned long)pw.pw_gid);
    return 0;
}
