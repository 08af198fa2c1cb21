/* wstan server: one per "servers:" entry with protocol: wstan.  Spec:
 * docs/protocols/wstan.md (our choices) and the wstan specification.
 * Internal to daemon/wstan/: the core reaches it through ws.h. */
#ifndef TD_WS_SERVER_H_
#define TD_WS_SERVER_H_

#include "core/tunnel.h"

extern const struct td_server_ops ws_server_ops;

#endif
