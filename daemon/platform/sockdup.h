/* Handing an accepted socket from libuv to libwebsockets: one
 * implementation per platform (ws_sock_posix.c, ws_sock_win.c). */
#ifndef TD_WS_SOCK_H_
#define TD_WS_SOCK_H_

#include <libwebsockets.h>
#include <uv.h>

/* A second descriptor for tcp's socket, for lws to own after our handle is
 * closed.  Returns 0 or a TD_E* code. */
int ws_sock_dup(uv_tcp_t *tcp, lws_sockfd_type *out);

#endif
