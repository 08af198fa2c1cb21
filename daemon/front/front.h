/* daemon/front/: the front-ends, one per listener type: SOCKS5 (socks5.c,
 * with UDP ASSOCIATE handed to the core's udp_assoc.c), the HTTP proxy
 * (http.c: CONNECT and absolute-URI requests, with the relay filter that
 * rewrites response heads and forwards one request body), static forwards
 * (forward.c), and SOCKS5+HTTP on one port (mixed.c).  Each parses the
 * client's handshake with the pure codecs of common/proto and answers
 * through the core's conn API (core/conn.h); the core picks one by listener
 * type from the table the entry point gives it (daemon/kinds.c). */
#ifndef TD_FRONT_H_
#define TD_FRONT_H_

#include "core/conn.h"

extern const struct frontend frontend_socks5;
extern const struct frontend frontend_http;
extern const struct frontend frontend_forward;
extern const struct frontend frontend_mixed;

#endif
