/* The control endpoint, Windows: a named pipe.  Who may open it is decided
 * by the pipe's security descriptor when it is created, so there is no
 * file to prepare and no peer to check afterwards. */
#include "platform/platform.h"

#include <stdio.h>

int td_ctlsock_prepare(const char *path, char *why, size_t whycap)
{
    (void)path;
    (void)why;
    (void)whycap;
    return 0;
}

int td_ctlsock_secure(const char *path, const char *group, char *why, size_t whycap)
{
    (void)path;
    (void)group;
    (void)why;
    (void)whycap;
    return 0;
}

bool td_ctlsock_peer_ok(uv_os_fd_t fd, const char *group, char *who, size_t whocap)
{
    (void)fd;
    (void)group;
    snprintf(who, whocap, "pipe client");
    return true;
}
