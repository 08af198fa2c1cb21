/* The built-in kinds; see kinds.h. */
#include "kinds.h"

#include "control/control.h"
#include "front/front.h"
#include "jproxy/jp.h"
#include "wstan/ws.h"

const struct td_kinds td_builtin_kinds = {
    .protos =
        {
            [CFG_PROTO_WSTAN] = &td_proto_wstan,
            [CFG_PROTO_JPROXY] = &td_proto_jproxy,
        },
    .frontends =
        {
            [CFG_LISTENER_SOCKS5] = &frontend_socks5,
            [CFG_LISTENER_HTTP] = &frontend_http,
            [CFG_LISTENER_MIXED] = &frontend_mixed,
            [CFG_LISTENER_FORWARD] = &frontend_forward,
        },
    .services = {&td_control_service, &td_metrics_service},
};
