/* SOCKS5 (RFC 1928) and username/password auth (RFC 1929): pure codecs.
 *
 * Each parse function looks at a buffer holding what has arrived so far.  It
 * returns 0 and sets *used when one whole message is there, TD_EAGAIN when
 * more bytes are needed (nothing consumed), or another TD_E* code on garbage.
 * No I/O, no allocation, no logging. */
#ifndef TD_SOCKS5_H_
#define TD_SOCKS5_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SOCKS5_VERSION      0x05
#define SOCKS5_AUTH_VERSION 0x01

#define SOCKS5_METHOD_NONE          0x00
#define SOCKS5_METHOD_USERPASS      0x02
#define SOCKS5_METHOD_NO_ACCEPTABLE 0xff

#define SOCKS5_CMD_CONNECT       0x01
#define SOCKS5_CMD_BIND          0x02
#define SOCKS5_CMD_UDP_ASSOCIATE 0x03

#define SOCKS5_ATYP_IPV4   0x01
#define SOCKS5_ATYP_DOMAIN 0x03
#define SOCKS5_ATYP_IPV6   0x04

enum socks5_rep {
    SOCKS5_REP_SUCCEEDED = 0x00,
    SOCKS5_REP_GENERAL_FAILURE = 0x01,
    SOCKS5_REP_NOT_ALLOWED = 0x02,
    SOCKS5_REP_NET_UNREACHABLE = 0x03,
    SOCKS5_REP_HOST_UNREACHABLE = 0x04,
    SOCKS5_REP_CONN_REFUSED = 0x05,
    SOCKS5_REP_TTL_EXPIRED = 0x06,
    SOCKS5_REP_CMD_NOT_SUPPORTED = 0x07,
    SOCKS5_REP_ATYP_NOT_SUPPORTED = 0x08,
};

/* Largest encoded reply/request: 4 + 1 + 255 + 2. */
#define SOCKS5_MAX_MSG 262

struct socks5_addr {
    uint8_t atyp;   /* SOCKS5_ATYP_* */
    uint8_t ip[16]; /* IPv4 uses the first 4 bytes */
    char host[256]; /* domain, NUL-terminated (ATYP_DOMAIN only) */
    uint16_t port;  /* host order */
};

struct socks5_greeting {
    uint8_t nmethods;
    uint8_t methods[255];
};

struct socks5_userpass {
    char user[256]; /* NUL-terminated; ulen may be 0 */
    char pass[256];
    uint8_t ulen, plen;
};

struct socks5_request {
    uint8_t cmd;
    struct socks5_addr addr;
};

struct socks5_udp_header {
    uint8_t frag;
    struct socks5_addr addr;
};

/* Errors: TD_EPROTO for a wrong version or malformed field, TD_EUNSUPPORTED
 * for an unknown address type (the caller answers REP 0x08). */
int socks5_parse_greeting(const uint8_t *p, size_t len, size_t *used, struct socks5_greeting *out);
bool socks5_greeting_offers(const struct socks5_greeting *g, uint8_t method);
int socks5_parse_userpass(const uint8_t *p, size_t len, size_t *used, struct socks5_userpass *out);
int socks5_parse_request(const uint8_t *p, size_t len, size_t *used, struct socks5_request *out);
/* A UDP datagram: on success *used is the header length (payload follows). */
int socks5_parse_udp_header(const uint8_t *p, size_t len, size_t *used,
                            struct socks5_udp_header *out);

/* Encoders return the number of bytes written to out (at least SOCKS5_MAX_MSG
 * bytes of room).  A NULL bnd encodes 0.0.0.0:0. */
size_t socks5_encode_method_choice(uint8_t *out, uint8_t method);
size_t socks5_encode_auth_status(uint8_t *out, bool ok);
size_t socks5_encode_reply(uint8_t *out, uint8_t rep, const struct socks5_addr *bnd);
size_t socks5_encode_udp_header(uint8_t *out, const struct socks5_addr *addr);
/* Encoders used by clients (tests, tunnel peers). */
size_t socks5_encode_request(uint8_t *out, uint8_t cmd, const struct socks5_addr *addr);

const char *socks5_rep_str(uint8_t rep);

#endif
