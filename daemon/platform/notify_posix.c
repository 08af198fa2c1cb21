/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET per state
 * change (READY=1 once everything is bound, RELOADING=1 / READY=1 around a
 * reload, STOPPING=1 when the drain starts).  The protocol is systemd's:
 * an AF_UNIX datagram socket named by a path, or by "@name" for the
 * abstract namespace.  tunneld never forks, so it sends no MAINPID. */
#include "platform/platform.h"

#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* A broken or foreign $NOTIFY_SOCKET must not flood the log. */
static bool notify_failed_logged;

static void notify_fail(const char *what, int err)
{
    if (notify_failed_logged)
        return;
    notify_failed_logged = true;
    LOG_DEBUG("main", "service manager notification failed: %s%s%s", what, err ? ": " : "",
              err ? strerror(err) : "");
}

static int notify_socket(void)
{
    int fd;
#if defined(SOCK_CLOEXEC) && defined(SOCK_NONBLOCK)
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
#else
    fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd >= 0 && (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 ||
                    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)) {
        int e = errno;
        close(fd);
        errno = e;
        fd = -1;
    }
#endif
    return fd;
}

void td_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    socklen_t salen;
    size_t len;
    ssize_t n;
    int fd;

    if (!path || !*path || !state)
        return;
    len = strlen(path);
    if (path[0] != '/' && path[0] != '@') {
        notify_fail("NOTIFY_SOCKET is neither a path nor an @abstract name", 0);
        return;
    }
    if (len >= sizeof(sa.sun_path)) {
        notify_fail("NOTIFY_SOCKET is too long", 0);
        return;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract: the name is exactly len bytes */
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));

    fd = notify_socket();
    if (fd < 0) {
        notify_fail("socket", errno);
        return;
    }
    do
        n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        notify_fail(path, errno);
    close(fd);
}
