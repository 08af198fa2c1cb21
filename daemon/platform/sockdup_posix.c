/* td_sock_dup(), POSIX: dup() the descriptor (close-on-exec, like libuv's). */
#include "platform/platform.h"

#include "util/error.h"

#include <fcntl.h>
#include <unistd.h>

int td_sock_dup(uv_tcp_t *tcp, uv_os_sock_t *out)
{
    uv_os_fd_t fd;
    int nfd;

    if (uv_fileno((uv_handle_t *)tcp, &fd) != 0)
        return TD_EINVAL;
    nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (nfd < 0)
        return TD_EMFILE;
    *out = nfd;
    return 0;
}
