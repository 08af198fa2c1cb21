/* The control socket's file and peers, POSIX (see platform.h). */
#include "platform/platform.h"

#include "util/error.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int td_ctlsock_prepare(const char *path, char *why, size_t whycap)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, r;

    if (lstat(path, &st) != 0) {
        /* Started by hand rather than by systemd (RuntimeDirectory=), the
         * socket's directory may not exist yet: make it, one level, for us
         * and our group only. */
        char dir[sizeof(sa.sun_path) + 1];
        const char *slash = strrchr(path, '/');
        size_t n = slash ? (size_t)(slash - path) : 0;
        if (n > 0 && n < sizeof(dir)) {
            memcpy(dir, path, n);
            dir[n] = '\0';
            if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
                snprintf(why, whycap, "cannot make its directory %s: %s", dir, strerror(errno));
                return TD_EACCES;
            }
        }
        return 0; /* nothing there */
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(why, whycap, "%s exists and is not a socket; not touching it", path);
        return TD_EEXIST;
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(why, whycap, "the path is too long for a socket");
        return TD_EINVAL;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return TD_EMFILE;
    r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    if (r == 0) {
        snprintf(why, whycap, "another tunneld serves %s", path);
        return TD_EADDRINUSE;
    }
    /* A socket left by a daemon that died: nobody answers on it. */
    if (unlink(path) != 0) {
        snprintf(why, whycap, "cannot remove the stale socket: %s", strerror(errno));
        return TD_EACCES;
    }
    return 0;
}

static bool ctlsock_group(const char *group, gid_t *gid)
{
    struct group gr, *res = NULL;
    char buf[4096];

    if (!group || getgrnam_r(group, &gr, buf, sizeof(buf), &res) != 0 || !res)
        return false;
    *gid = res->gr_gid;
    return true;
}

int td_ctlsock_secure(const char *path, const char *group, char *why, size_t whycap)
{
    gid_t gid;

    if (chmod(path, 0660) != 0) {
        snprintf(why, whycap, "chmod 0660: %s", strerror(errno));
        return TD_EACCES;
    }
    if (!group)
        return 0;
    if (!ctlsock_group(group, &gid)) {
        snprintf(why, whycap, "no such group '%s'", group);
        return TD_ENOTFOUND;
    }
    if (chown(path, (uid_t)-1, gid) != 0) {
        snprintf(why, whycap, "cannot give it to group %s: %s", group, strerror(errno));
        return TD_EACCES;
    }
    return 0;
}

/* Is uid (whose primary group is pgid) a member of gid? */
static bool ctlsock_member(uid_t uid, gid_t pgid, gid_t gid)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    gid_t groups[256];
    int n = (int)(sizeof(groups) / sizeof(groups[0]));

    if (pgid == gid)
        return true;
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res)
        return false;
    if (getgrouplist(res->pw_name, res->pw_gid, groups, &n) < 0)
        return false;
    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return true;
    return false;
}

bool td_ctlsock_peer_ok(uv_os_fd_t fd, const char *group, char *who, size_t whocap)
{
#ifdef SO_PEERCRED
    struct ucred cr;
    socklen_t len = sizeof(cr);
    gid_t gid;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
        snprintf(who, whocap, "unknown peer");
        return false;
    }
    snprintf(who, whocap, "pid %ld uid %lu gid %lu", (long)cr.pid, (unsigned long)cr.uid,
             (unsigned long)cr.gid);
    if (cr.uid == 0 || cr.uid == geteuid())
        return true;
    return group && ctlsock_group(group, &gid) && ctlsock_member(cr.uid, cr.gid, gid);
#else
    uid_t uid;
    gid_t pgid, gid;

    if (getpeereid(fd, &uid, &pgid) != 0) {
        snprintf(who, whocap, "unknown peer");
        return false;
    }
    snprintf(who, whocap, "uid %lu gid %lu", (unsigned long)uid, (unsigned long)pgid);
    if (uid == 0 || uid == geteuid())
        return true;
    return group && ctlsock_group(group, &gid) && ctlsock_member(uid, pgid, gid);
#endif
}
