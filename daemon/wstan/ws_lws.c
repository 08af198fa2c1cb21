/* The daemon's libwebsockets context; see ws_lws.h. */
#include "wstan/ws_lws.h"

#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The wstan kind's daemon-wide state (d->proto_state[CFG_PROTO_WSTAN]). */
struct ws_lws {
    struct td_daemon *d;
    struct lws_context *ctx;
    bool stopped;    /* the first lws_context_destroy() ran, or never to be made */
    uint64_t socks;  /* connection sockets lws holds for us */
    bool stopping;   /* ws_lws_stop() ran: destroy when socks is 0 */
    bool timer_open; /* stop_timer initialised and not closed */
    uint64_t vhosts; /* vhosts named so far */
    uv_timer_t stop_timer;
};

static void ws_lws_on_stop_timer(uv_timer_t *t);

static struct ws_lws *ws_lws_get(struct td_daemon *d, bool make)
{
    struct ws_lws *st = d->proto_state[CFG_PROTO_WSTAN];
    if (!st && make) {
        st = calloc(1, sizeof(*st));
        if (st) {
            st->d = d;
            d->proto_state[CFG_PROTO_WSTAN] = st;
        }
    }
    return st;
}

/* The state, when a context exists. */
static struct ws_lws *ws_lws_state(struct td_daemon *d)
{
    struct ws_lws *st = ws_lws_get(d, false);
    return st && st->ctx ? st : NULL;
}

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

void ws_lws_vhost_name(struct td_daemon *d, const char *name, char *out, size_t cap)
{
    struct ws_lws *st = ws_lws_get(d, true);

    snprintf(out, cap, "%s.%llu", name, (unsigned long long)(st ? ++st->vhosts : 0));
}

struct lws_context *ws_lws_context(struct td_daemon *d)
{
    struct lws_context_creation_info info;
    struct ws_lws *st = ws_lws_get(d, true);
    void *loops[1];

    if (!st)
        return NULL;
    if (st->ctx)
        return st->ctx;
    if (st->stopped)
        return NULL;
    /* lws's own notices are mostly connection noise: errors and warnings
     * only, and only at debug level for the rest. */
    lws_set_log_level(LLL_ERR | LLL_WARN | (td_log_level_current >= TD_LOG_DEBUG ? LLL_NOTICE : 0),
                      ws_lws_log);
    memset(&info, 0, sizeof(info));
    info.user = st;
    loops[0] = d->loop;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.foreign_loops = loops;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.pt_serv_buf_size = WS_LWS_SERV_BUF;
    info.max_http_header_data2 = WS_LWS_MAX_HEADER;
    info.max_http_header_pool = WS_LWS_HEADER_POOL;
    info.timeout_secs = 10;
    st->ctx = lws_create_context(&info);
    if (!st->ctx)
        LOG_ERROR("ws", "cannot create the libwebsockets context (with the system's shared "
                        "libwebsockets: is its libuv event plugin, libwebsockets-evlib-uv, "
                        "installed?)");
    return st->ctx;
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

void ws_lws_sock_opened(struct td_daemon *d)
{
    struct ws_lws *st = ws_lws_state(d);
    if (!st)
        return;
    st->socks++;
    d->fds_in_use++;
}

void ws_lws_sock_closed(struct td_daemon *d)
{
    struct ws_lws *st = ws_lws_state(d);
    if (!st)
        return;
    if (st->socks > 0)
        st->socks--;
    if (d->fds_in_use > 0)
        d->fds_in_use--;
    /* The last close of a stop: tear down from the loop, never from inside
     * the lws callback that reported it. */
    if (st->stopping && st->socks == 0 && st->timer_open && !st->stopped)
        uv_timer_start(&st->stop_timer, ws_lws_on_stop_timer, 0, 0);
    daemon_fds_freed(d);
}

static void ws_lws_on_stop_timer(uv_timer_t *t)
{
    struct ws_lws *st = t->data;
    if (st->socks > 0)
        LOG_DEBUG("ws", "%llu WebSocket(s) still closing after %d ms: dropping them",
                  (unsigned long long)st->socks, WS_LWS_CLOSE_GRACE_MS);
    st->timer_open = false;
    uv_close((uv_handle_t *)&st->stop_timer, NULL);
    if (!st->stopped) {
        st->stopped = true;
        lws_context_destroy(st->ctx);
    }
}

void ws_lws_stop(struct td_daemon *d)
{
    struct ws_lws *st = ws_lws_get(d, true);

    if (!st)
        return;
    if (!st->ctx) {
        st->stopped = true; /* and never created from now on */
        return;
    }
    if (st->stopping || st->stopped)
        return;
    st->stopping = true;
    /* The close frames the tunnels queued go out on later loop turns: lws
     * drops them if its context is destroyed first. */
    uv_timer_init(d->loop, &st->stop_timer);
    st->stop_timer.data = st;
    st->timer_open = true;
    uv_timer_start(&st->stop_timer, ws_lws_on_stop_timer, st->socks ? WS_LWS_CLOSE_GRACE_MS : 0, 0);
}

void ws_lws_free(struct td_daemon *d)
{
    struct ws_lws *st = ws_lws_get(d, false);

    if (!st)
        return;
    d->proto_state[CFG_PROTO_WSTAN] = NULL;
    if (st->ctx) {
        if (st->timer_open) {
            st->timer_open = false;
            uv_close((uv_handle_t *)&st->stop_timer, NULL);
        }
        if (!st->stopped) {
            lws_context_destroy(st->ctx);
            st->stopped = true;
        }
        uv_run(d->loop, UV_RUN_DEFAULT);
        lws_context_destroy(st->ctx);
        uv_run(d->loop, UV_RUN_DEFAULT);
    }
    free(st);
}
