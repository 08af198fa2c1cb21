/* The jProxy v3 server: one per `servers:` entry with protocol jproxy.  It
 * accepts tunnels, checks the login token against the users loaded at start
 * (the config's jproxy_user_file entries and the users_dir files), and then
 * opens the TCP connections (and, with a tunneld client, the UDP
 * associations) the client asks for.  See docs/protocols/jproxy.md. */
#ifndef TD_JP_SERVER_H_
#define TD_JP_SERVER_H_

#include "config/config.h"
#include "core/daemon.h"

#include <stdint.h>

struct jp_server;

/* Load the users, bind and listen; logs "server NAME (jproxy) listening on
 * ADDR".  Returns 0 or a TD_E* code (already logged). */
int jp_server_start(struct td_daemon *d, const struct cfg_server *cfg, struct jp_server **out);
/* Close the listening socket (drain): tunnels already open carry on. */
void jp_server_stop_accepting(struct jp_server *s);
/* Force-close every tunnel, with every stream and association on it. */
void jp_server_close_all(struct jp_server *s);
/* Tunnels not yet freed (open, or still closing their sockets). */
uint32_t jp_server_active(const struct jp_server *s);
/* After every tunnel is gone (at the very end; the listener must be closed). */
void jp_server_free(struct jp_server *s);
const char *jp_server_name(const struct jp_server *s);

/* Implemented by the daemon: a tunnel was freed (so that a drain can end and
 * descriptors are available again). */
void daemon_server_gone(struct td_daemon *d);

#endif
