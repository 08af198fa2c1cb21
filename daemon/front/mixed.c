/* Mixed listeners: SOCKS5 and HTTP on one port, told apart by the first
 * byte (SOCKS5 starts with its version, 5; HTTP with a method name). */
#include "front/front.h"

#include "core/conn.h"
#include "util/log.h"

static void mixed_on_data(struct conn *c)
{
    uint8_t b = c->hs[0];
    if (b == 0x05) {
        c->fe = &frontend_socks5;
    } else if (b >= 'A' && b <= 'Z') {
        c->fe = &frontend_http;
    } else {
        LOG_INFO("conn", "#%llu %s: first byte 0x%02x is neither SOCKS5 nor HTTP",
                 (unsigned long long)c->id, c->client_str, b);
        conn_close(c, END_PROTOCOL);
        return;
    }
    c->fe->on_data(c);
}

const struct frontend frontend_mixed = {.name = "mixed", .on_data = mixed_on_data};
