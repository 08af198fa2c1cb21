/* Conversions between socket addresses and the codecs' address types. */
#ifndef TD_NETUTIL_H_
#define TD_NETUTIL_H_

#include "config/config.h"
#include "proto/socks5.h"

#include <stddef.h>
#include <uv.h>

/* Fills atyp, ip and port.  IPv4-mapped IPv6 addresses become IPv4. */
void td_sockaddr_to_socks5(const struct sockaddr *sa, struct socks5_addr *out);
/* For literal addresses only; returns 0 or TD_EINVAL (a domain). */
int td_socks5_to_sockaddr(const struct socks5_addr *a, struct sockaddr_storage *out);
/* The host part as text: the domain, or the IP literal. */
int socks5_addr_host(const struct socks5_addr *a, char *out, size_t cap);
/* "ip:port" / "[ip]:port" of a socket address. */
const char *td_sockaddr_str(const struct sockaddr *sa, char *out, size_t cap);
/* Do these allow/deny rules let this address through?  NULL rules allow
 * everything; an address that is neither IPv4 nor IPv6 is refused. */
bool td_sockaddr_allowed(const struct cfg_rules *r, const struct sockaddr *sa);

/* The socket address to bind for a listen address from the config.  An IP
 * literal is converted; a name (say "localhost") is resolved once,
 * synchronously: this runs at start-up only.  Returns 0 or a libuv error. */
int td_listen_addr(uv_loop_t *loop, const struct td_hostport *hp, struct sockaddr_storage *out);

#endif
