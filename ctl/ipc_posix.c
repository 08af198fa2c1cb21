/* The control endpoint on POSIX: a Unix domain stream socket (see ipc.h). */
#include "ipc.h"

#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct ctl_ipc {
    int fd;
};

const char *ctl_ipc_default_endpoint(void)
{
    return "/run/tunneld/control.sock";
}

const char *ctl_ipc_default_config(void)
{
    return "/etc/tunneld/tunneld.yaml";
}

uint64_t ctl_ipc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The one place where errno from the socket calls becomes TD_E*. */
static int ctl_ipc_err(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return TD_ENOTFOUND;
    case ECONNREFUSED:
        return TD_ECONNREFUSED;
    case EACCES:
    case EPERM:
        return TD_EACCES;
    case ECONNRESET:
    case EPIPE:
        return TD_ECONNRESET;
    case ENOMEM:
    case ENOBUFS:
        return TD_ENOMEM;
    case EMFILE:
    case ENFILE:
        return TD_EMFILE;
    case ETIMEDOUT:
        return TD_ETIMEDOUT;
    default:
        return TD_EIO;
    }
}

/* Wait for events on fd until the deadline: 0, TD_ETIMEDOUT or TD_EIO. */
static int ctl_ipc_wait(int fd, short events, uint64_t deadline_ms)
{
    for (;;) {
        struct pollfd p = {fd, events, 0};
        uint64_t now = ctl_ipc_now_ms();
        int r;

        if (now >= deadline_ms)
            return TD_ETIMEDOUT;
        r = poll(&p, 1, deadline_ms - now > 60000 ? 60000 : (int)(deadline_ms - now));
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return ctl_ipc_err(errno);
    }
}

int ctl_ipc_connect(const char *endpoint, uint64_t deadline_ms, struct ctl_ipc **out,
                    const char **why)
{
    struct sockaddr_un sa;
    struct stat st;
    struct ctl_ipc *c = NULL;
    size_t n;
    int fd = -1, rc, flags;
    const char *dummy;

    *out = NULL;
    if (!why)
        why = &dummy;
    *why = NULL;
    n = strlen(endpoint);
    if (n == 0 || n >= sizeof(sa.sun_path)) {
        *why = "the socket path is empty or longer than a Unix socket address allows";
        return TD_EINVAL;
    }
    /* Refuse anything but a socket before connecting: a regular file or a
     * FIFO planted at the path is not the daemon. */
    if (stat(endpoint, &st) != 0)
        return ctl_ipc_err(errno);
    if (!S_ISSOCK(st.st_mode)) {
        *why = "not a socket";
        return TD_EPROTO;
    }
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return ctl_ipc_err(errno);
    flags = fcntl(fd, F_GETFD);
    if (flags >= 0)
        (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        rc = ctl_ipc_err(errno);
        goto fail;
    }
#ifdef SO_NOSIGPIPE
    {
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
    }
#endif
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, endpoint, n + 1);
    for (;;) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            /* Linux: the listener's backlog is full; try again shortly. */
            struct timespec step = {0, 20 * 1000 * 1000};
            if (ctl_ipc_now_ms() >= deadline_ms) {
                rc = TD_ETIMEDOUT;
                goto fail;
            }
            nanosleep(&step, NULL);
            continue;
        }
        if (errno == EINPROGRESS) {
            int err = 0;
            socklen_t el = sizeof(err);
            rc = ctl_ipc_wait(fd, POLLOUT, deadline_ms);
            if (rc != 0)
                goto fail;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
                err = errno;
            if (err != 0) {
                rc = ctl_ipc_err(err);
                goto fail;
            }
            break;
        }
        rc = ctl_ipc_err(errno);
        goto fail;
    }
    c = malloc(sizeof(*c));
    if (!c) {
        rc = TD_ENOMEM;
        goto fail;
    }
    c->fd = fd;
    *out = c;
    return 0;
fail:
    close(fd);
    return rc;
}

int ctl_ipc_send(struct ctl_ipc *c, const char *buf, size_t len, uint64_t deadline_ms)
{
    int flags = 0, rc;

#ifdef MSG_NOSIGNAL
    flags = MSG_NOSIGNAL; /* a daemon that closed early must not kill us */
#endif
    while (len > 0) {
        ssize_t w = send(c->fd, buf, len, flags);
        if (w >= 0) {
            buf += w;
            len -= (size_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return ctl_ipc_err(errno);
        rc = ctl_ipc_wait(c->fd, POLLOUT, deadline_ms);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int ctl_ipc_recv(struct ctl_ipc *c, char *buf, size_t cap, uint64_t deadline_ms, size_t *got)
{
    int rc;

    *got = 0;
    for (;;) {
        ssize_t r = recv(c->fd, buf, cap, 0);
        if (r >= 0) {
            *got = (size_t)r;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return ctl_ipc_err(errno);
        rc = ctl_ipc_wait(c->fd, POLLIN, deadline_ms);
        if (rc != 0)
            return rc;
    }
}

void ctl_ipc_close(struct ctl_ipc *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c);
}
