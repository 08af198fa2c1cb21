/* The jProxy v3 server: one per `servers:` entry with protocol jproxy.  It
 * accepts tunnels, checks the login token against the users loaded at start
 * (the config's jproxy_user_file entries and the users_dir files), and then
 * opens the TCP connections (and, with a tunneld client, the UDP
 * associations) the client asks for.  See docs/protocols/jproxy.md.
 * Internal to daemon/jproxy/: the core reaches it through jp.h. */
#ifndef TD_JP_SERVER_H_
#define TD_JP_SERVER_H_

#include "core/tunnel.h"

extern const struct td_server_ops jp_server_ops;

#endif
