/* The daemon's libwebsockets context; see ws_lws.h. */
#include "ws_lws.h"

#include "log.h"

#include <string.h>

static void ws_lws_log(int level, const char *line)
{
    char buf[512];
    size_t n = strlen(line);

    /* lws ends its lines with a newline; ours are added by the logger. */
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    memcpy(buf, line, n);
    buf[n] = '\0';
    /* lws warns about routine events (every adopted socket, every peer
     * that goes away): only its errors are worth an operator's attention. */
    /* lws 4.1 reports every adopted socket as an error ("calling
     * service"); it is routine for our wstan server. */
    if ((level & LLL_ERR) && !strstr(buf, "adopt_socket_readbuf: calling service"))
        LOG_WARN("lws", "%s", buf);
    else
        LOG_DEBUG("lws", "%s", buf);
}

struct lws_context *ws_lws_context(struct td_daemon *d)
{
    struct lws_context_creation_info info;
    void *loops[1];

    if (d->lws)
        return d->lws;
    if (d->lws_stopped)
        return NULL;
    /* lws's own notices are mostly connection noise: errors and warnings
     * only, and only at debug level for the rest. */
    lws_set_log_level(LLL_ERR | LLL_WARN | (td_log_level_current >= TD_LOG_DEBUG ? LLL_NOTICE : 0),
                      ws_lws_log);
    memset(&info, 0, sizeof(info));
    loops[0] = d->loop;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.foreign_loops = loops;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.pt_serv_buf_size = WS_LWS_SERV_BUF;
    info.max_http_header_data2 = WS_LWS_MAX_HEADER;
    info.max_http_header_pool = WS_LWS_HEADER_POOL;
    info.timeout_secs = 10;
    d->lws = lws_create_context(&info);
    if (!d->lws)
        LOG_ERROR("ws", "cannot create the libwebsockets context (is the libuv event plugin, "
                        "libwebsockets-evlib-uv, installed?)");
    return d->lws;
}

void ws_lws_vhost_info(struct lws_context_creation_info *info)
{
    memset(info, 0, sizeof(*info));
    info->options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info->port = CONTEXT_PORT_NO_LISTEN;
    info->pt_serv_buf_size = WS_LWS_SERV_BUF;
    info->max_http_header_data2 = WS_LWS_MAX_HEADER;
    info->max_http_header_pool = WS_LWS_HEADER_POOL;
    info->timeout_secs = 10;
}

void ws_lws_stop(struct td_daemon *d)
{
    if (d->lws && !d->lws_stopped)
        lws_context_destroy(d->lws);
    d->lws_stopped = true;
}

void ws_lws_free(struct td_daemon *d)
{
    if (!d->lws)
        return;
    if (!d->lws_stopped) {
        lws_context_destroy(d->lws);
        d->lws_stopped = true;
        uv_run(d->loop, UV_RUN_DEFAULT);
    }
    lws_context_destroy(d->lws);
    uv_run(d->loop, UV_RUN_DEFAULT);
    d->lws = NULL;
}
