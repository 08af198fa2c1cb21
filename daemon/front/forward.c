/* Forward listeners: no handshake, the target is fixed in the config. */
#include "front/front.h"

#include "core/conn.h"
#include "util/error.h"
#include "util/log.h"

static void fwd_on_data(struct conn *c)
{
    (void)c;
}

static void fwd_on_connected(struct conn *c)
{
    conn_start_relay(c);
}

static void fwd_on_connect_failed(struct conn *c, int err)
{
    LOG_INFO("conn", "#%llu forward %s -> %s: %s", (unsigned long long)c->id, c->client_str,
             c->target_str, td_strerror(err));
    conn_close(c, conn_end_reason(err));
}

const struct frontend frontend_forward = {
    .name = "forward",
    .on_data = fwd_on_data,
    .on_connected = fwd_on_connected,
    .on_connect_failed = fwd_on_connect_failed,
};
