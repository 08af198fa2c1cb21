/* Address, duration and size syntax shared by the config, the front-ends and
 * tunnelctl.  Pure functions: no sockets, no resolver. */
#ifndef TD_ADDR_H_
#define TD_ADDR_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TD_HOST_MAX 255 /* a DNS name is at most 255 bytes (RFC 1035) */

enum td_host_kind {
    TD_HOST_NAME = 0,
    TD_HOST_IPV4 = 1,
    TD_HOST_IPV6 = 2,
};

struct td_hostport {
    char host[TD_HOST_MAX + 1]; /* NUL-terminated; IPv6 without brackets */
    uint16_t port;
    enum td_host_kind kind;
    uint8_t ip[16]; /* network order; 4 bytes used for IPv4 */
};

/* Parse "host:port", "1.2.3.4:port" or "[v6]:port".  Hostnames must be valid
 * DNS names (letters, digits, '-', '.', '_'; labels 1..63 bytes).  Port 0 is
 * accepted only when allow_port0 is set (listen addresses).  Returns 0 or
 * TD_EINVAL, with a static reason string in *why when why is not NULL. */
int td_hostport_parse(const char *s, size_t len, bool allow_port0, struct td_hostport *out,
                      const char **why);

/* Literal IP parsers (no resolver).  Return 0 or TD_EINVAL. */
int td_ipv4_parse(const char *s, size_t len, uint8_t out[4]);
int td_ipv6_parse(const char *s, size_t len, uint8_t out[16]);

/* Validate a DNS host name (not an IP literal). */
bool td_hostname_valid(const char *s, size_t len);

/* Format host and port as "host:port" or "[v6]:port".  Returns out. */
const char *td_hostport_format(char *out, size_t outsz, const char *host, uint16_t port);
/* Format a raw IPv4 (4 bytes) or IPv6 (16 bytes) address as text. */
const char *td_ip_format(char *out, size_t outsz, const uint8_t *ip, size_t iplen);

/* An address range: family 4 or 6, the network address (only the first 4
 * bytes are used for IPv4) and the prefix length (0-32 or 0-128). */
struct td_cidr {
    uint8_t family; /* 4 or 6 */
    uint8_t ip[16]; /* network order; host bits are always zero */
    uint8_t prefix;
};

/* Parse "10.0.0.0/8", "::1/128", "fe80::/10", or a bare IP meaning /32 or
 * /128.  IPv6 is written without brackets.  Host bits beyond the prefix
 * ("10.1.2.3/8") are accepted and masked off, giving 10.0.0.0/8.  The prefix
 * is 0-32 (IPv4) or 0-128 (IPv6) in decimal without leading zeros.  Returns 0
 * or TD_EINVAL, with a static reason string in *why when why is not NULL. */
int td_cidr_parse(const char *s, size_t len, struct td_cidr *out, const char **why);

/* Does the address ip (4 bytes when family is 4, 16 when it is 6) lie in c?
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is matched as the IPv4
 * address a.b.c.d against IPv4 ranges, and literally against IPv6 ranges.
 * An IPv4 address never matches an IPv6 range.  Other embeddings (NAT64,
 * 6to4, IPv4-compatible ::a.b.c.d) are not unwrapped.  False on NULL
 * arguments or an unknown family. */
bool td_cidr_match(const struct td_cidr *c, int family, const uint8_t *ip);

/* "250ms", "10s", "5m", "1h", "1d" -> milliseconds.  A bare 0 is allowed.
 * Returns 0 or TD_EINVAL. */
int td_duration_parse(const char *s, uint64_t *ms_out);
/* "512", "64KiB", "1MiB", "1GiB" (also "KB"/"MB"/"GB" as powers of 10, and
 * "k"/"K"/"M"/"G" as powers of 2).  Returns 0 or TD_EINVAL. */
int td_size_parse(const char *s, uint64_t *bytes_out);

#endif
