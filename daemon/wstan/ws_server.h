/* wstan server: one per "servers:" entry with protocol: wstan.  Spec:
 * docs/protocols/wstan.md (our choices) and the wstan specification. */
#ifndef TD_WS_SERVER_H_
#define TD_WS_SERVER_H_

#include "config/config.h"
#include "core/daemon.h"

#include <stdint.h>

struct ws_server;

/* Bind and start accepting.  Logs "server NAME (wstan) listening on
 * ADDR:PORT" with the real port.  Returns 0 or TD_E* (logged). */
int ws_server_start(struct td_daemon *d, const struct cfg_server *cfg, struct ws_server **out);
/* Drain: stop accepting; tunnels in use finish (daemon_server_gone() is
 * called as each one ends), idle ones close now. */
void ws_server_stop_accepting(struct ws_server *s);
/* Close every tunnel now (drain deadline, second signal). */
void ws_server_close_all(struct ws_server *s);
/* Open WebSocket connections (handshaking, idle or in use). */
uint32_t ws_server_active(const struct ws_server *s);
/* After the loop ended. NULL is fine. */
void ws_server_free(struct ws_server *s);
const char *ws_server_name(const struct ws_server *s);

#endif
