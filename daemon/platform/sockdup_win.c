/* td_sock_dup(), Windows: WSADuplicateSocket to our own process gives a second
 * SOCKET for the same connection. */
#include "platform/platform.h"

#include "util/error.h"

#include <winsock2.h>
#include <windows.h>

int td_sock_dup(uv_tcp_t *tcp, uv_os_sock_t *out)
{
    WSAPROTOCOL_INFOW info;
    uv_os_sock_t s;
    SOCKET ns;

    if (uv_fileno((uv_handle_t *)tcp, (uv_os_fd_t *)&s) != 0)
        return TD_EINVAL;
    if (WSADuplicateSocketW(s, GetCurrentProcessId(), &info) != 0)
        return TD_EIO;
    ns = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                    WSA_FLAG_OVERLAPPED);
    if (ns == INVALID_SOCKET)
        return TD_EMFILE;
    *out = ns;
    return 0;
}
