/* common/proto/: the pure wire codecs, one per protocol: SOCKS5
 * (socks5.h), HTTP/1.1 heads and bodies (http.h), wstan (wstan.h: keys,
 * streams, messages, the handshake URI, the replay filter, the tunnel state
 * table), jProxy v3 (jproxy.h: handshake, login, frames, messages) and its
 * KSF key files (jproxy_keys.h), and the control protocol (ctlmsg.h).
 * Parsers do no I/O and never exit; each has a fuzz target in tests/fuzz/.
 * This header includes them all. */
#ifndef TD_PROTO_H_
#define TD_PROTO_H_

#include "proto/ctlmsg.h"
#include "proto/http.h"
#include "proto/jproxy.h"
#include "proto/jproxy_keys.h"
#include "proto/socks5.h"
#include "proto/wstan.h"

#endif
