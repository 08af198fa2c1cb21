/* The one place where libuv status codes become TD_E* codes. */
#include "core/daemon.h"
#include "util/error.h"

int td_err_from_uv(int e)
{
    if (e >= 0)
        return 0;
    switch (e) {
    case UV_EAGAIN:
        return TD_EAGAIN;
    case UV_ENOMEM:
    case UV_ENOBUFS:
        return TD_ENOMEM;
    case UV_EINVAL:
        return TD_EINVAL;
    case UV_ECONNREFUSED:
        return TD_ECONNREFUSED;
    case UV_ECONNRESET:
    case UV_EPIPE:
    case UV_ECONNABORTED:
        return TD_ECONNRESET;
    case UV_ETIMEDOUT:
        return TD_ETIMEDOUT;
    case UV_EHOSTUNREACH:
    case UV_EHOSTDOWN:
        return TD_EHOSTUNREACH;
    case UV_ENETUNREACH:
    case UV_ENETDOWN:
        return TD_ENETUNREACH;
    case UV_EADDRINUSE:
        return TD_EADDRINUSE;
    case UV_EACCES:
    case UV_EPERM:
        return TD_EACCES;
    case UV_EMFILE:
    case UV_ENFILE:
        return TD_EMFILE;
    case UV_ECANCELED:
        return TD_ECANCELED;
    case UV_EOF:
        return TD_EEOF;
    case UV_EAI_NONAME:
    case UV_EAI_AGAIN:
    case UV_EAI_FAIL:
    case UV_EAI_NODATA:
    case UV_EAI_ADDRFAMILY:
    case UV_EAI_SERVICE:
    case UV_EAI_SOCKTYPE:
    case UV_EAI_FAMILY:
    case UV_EAI_BADFLAGS:
    case UV_EAI_OVERFLOW:
    case UV_EAI_PROTOCOL:
        return TD_EDNS;
    case UV_EAI_MEMORY:
        return TD_ENOMEM;
    case UV_EAI_CANCELED:
        return TD_ECANCELED;
    default:
        return TD_EIO;
    }
}
