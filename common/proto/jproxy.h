/* jProxy protocol version 3: pure codecs for the handshake, the login, the
 * encrypted framing and the messages (spec: /work/shared/specs/jproxy.md,
 * our notes: docs/protocols/jproxy.md).
 *
 * Every integer on the wire is big-endian.  Message kinds are hex bytes
 * (0x21, not 21).  No I/O, no logging, no event loop: the daemon feeds bytes
 * in and writes the encoded bytes out.
 *
 * Session:
 *   C -> S  hello        "jProxy" 03 minor                       (8 bytes)
 *   S -> C  hello reply  "jProxy" status                         (7 bytes)
 *   C -> S  token T = SHA-256(SPKI_DER(client key) || salt)      (32 bytes)
 *   S -> C  00 || RSA-PKCS1v15(client key, K)  or  01            (257 or 1)
 *   both    frames: N (1..255) || AES-128-ECB_K(PKCS7(message)), one message
 *           per frame, the same K in both directions.
 *
 * ---- tunneld extension: recognising a tunneld peer ------------------------
 * The Java server accepts any minor version (it only logs a warning) and
 * never reports its own.  A tunneld client that wants the UDP extension
 * sends minor JP_MINOR_TUNNELD (0x74, 't').  A tunneld server with the
 * extension enabled answers such a hello with status JP_HELLO_OK_TUNNELD
 * (0x74) instead of 0x00; to any other minor it answers 0x00 as Java does.
 * A Java client always sends minor 0 and therefore never sees 0x74.  A
 * tunneld client talking to a Java server gets 0x00, learns that the server
 * is not tunneld (or has the extension off), and then never sends UDP
 * messages (it refuses SOCKS5 UDP ASSOCIATE instead).
 *
 * ---- tunneld extension: UDP messages --------------------------------------
 * The layouts are those documented (never implemented) by jProxy 3, with
 * big-endian integers and hex kinds.  They are only exchanged after both
 * sides have seen 0x74 in the hello (see above).
 *
 *   UDP Associate  (C -> S) 02 | id u16 | local port u16 | remote port u16 |
 *                           atyp | L | addr
 *   Associate reply(S -> C) 02 | id u16 | status | local port u16
 *   UDP Packet     (both)   22 | id u16 | n u16 | data
 *   UDP Dissociate (both)   42 | id u16   (no reply; extra bytes ignored)
 *
 * Our decisions:
 *  - An association is one UDP "flow" between the server and ONE remote
 *    address (atyp/addr/remote port from the Associate, resolved once by the
 *    server).  The server uses a UDP socket connected to that address, so
 *    only datagrams from it come back, as UDP Packets with the same id.  A
 *    UDP Packet carries no address.  A SOCKS5 UDP association that talks to
 *    several destinations uses one jProxy association per destination.
 *  - "local port" in the request is the source port the server should bind
 *    its UDP socket to; 0 means any (our client always sends 0).  In the
 *    reply it is the port the server actually bound (informational).
 *  - Reply status: 0 ok, 1 local port not available (as documented); we add
 *    4 network unreachable, 5 unknown host, 6 too many associations (the same
 *    meanings as in TCP Connect) and 7 general failure.  After a non-zero
 *    status the id is free.
 *  - Association ids are their own 16-bit space, separate from TCP
 *    connection ids (the kind tells them apart).
 *  - Dissociate may be sent by either side (the server sends it when it drops
 *    an association, e.g. after an idle timeout).  Packets for an unknown id
 *    are dropped silently, as for TCP.
 *  - A datagram is one UDP Packet; datagrams larger than JP_PACKET_DATA_MAX
 *    (4074 bytes) are dropped, never split.  An empty datagram (n = 0) is
 *    allowed.
 *  - A malformed Associate with a readable id is reported as
 *    JP_MSG_UDP_ASSOCIATE_BAD; the server answers status 7. */
#ifndef TD_JPROXY_H_
#define TD_JPROXY_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto_pk.h"

/* ---- sizes ----------------------------------------------------------------- */

#define JP_DEFAULT_PORT    16384
#define JP_MAGIC           "jProxy"
#define JP_MAGIC_LEN       6
#define JP_HELLO_LEN       8
#define JP_HELLO_REPLY_LEN 7
#define JP_TOKEN_LEN       32
#define JP_SALT_LEN        256
#define JP_RSA_BITS        2048
#define JP_RSA_EXPONENT    65537
#define JP_SPKI_LEN        294 /* SPKI DER of an RSA-2048 key with e = 65537 */
#define JP_RSA_CT_LEN      256 /* RSA-2048 ciphertext */
#define JP_LOGIN_OK_LEN    (1 + JP_RSA_CT_LEN)
#define JP_KEY_LEN         16 /* AES-128 key K */

#define JP_BLOCK_LEN            16
#define JP_FRAME_MAX_BLOCKS     255
#define JP_FRAME_MAX_CT         (JP_FRAME_MAX_BLOCKS * JP_BLOCK_LEN) /* 4080 */
#define JP_FRAME_MAX_WIRE       (1 + JP_FRAME_MAX_CT)                /* 4081 */
#define JP_MSG_MAX              (JP_FRAME_MAX_CT - 1)                /* 4079 */
#define JP_PACKET_HDR_LEN       5
#define JP_PACKET_DATA_MAX      (JP_MSG_MAX - JP_PACKET_HDR_LEN) /* 4074 */
#define JP_PACKET_DATA_SEND     2048 /* what Java peers send; our senders cap here */
#define JP_FRAME_WIRE_LEN(mlen) (1 + TD_ECB_PADDED_LEN(mlen))

/* ---- handshake ------------------------------------------------------------ */

#define JP_VERSION_MAJOR 3
#define JP_VERSION_MINOR 0
#define JP_MINOR_TUNNELD 0x74 /* 't': a tunneld client offering extensions */

enum jp_hello_status {
    JP_HELLO_OK = 0x00,
    JP_HELLO_UNSUPPORTED = 0x01, /* wrong major version, or bad magic */
    JP_HELLO_OK_TUNNELD = 0x74,  /* accepted; tunneld extensions available */
};

enum jp_login_status {
    JP_LOGIN_OK = 0x00,
    JP_LOGIN_INVALID_KEY = 0x01,
};

struct jp_hello {
    uint8_t major;
    uint8_t minor;
};

struct jp_hello_reply {
    uint8_t status;
    bool accepted; /* status 0x00 or 0x74 */
    bool tunneld;  /* status 0x74 */
};

struct jp_login_reply {
    uint8_t status;            /* JP_LOGIN_* */
    uint8_t ct[JP_RSA_CT_LEN]; /* RSA(K), only when status is JP_LOGIN_OK */
};

/* Parsers share one convention: they look at what has arrived so far and
 * return 0 with *used set when a whole item is there, TD_EAGAIN when more
 * bytes are needed (nothing consumed), or another TD_E* code. */

/* Client hello.  minor is JP_VERSION_MINOR, or JP_MINOR_TUNNELD to offer
 * the tunneld extensions. */
void jp_hello_encode(uint8_t out[JP_HELLO_LEN], uint8_t minor);
/* TD_EPROTO for a bad magic (reported as soon as a differing byte arrives),
 * TD_EUNSUPPORTED for a major version other than 3 (out is filled).  In
 * both cases the server answers JP_HELLO_UNSUPPORTED and closes.  Any minor
 * version is accepted. */
int jp_hello_parse(const uint8_t *p, size_t len, size_t *used, struct jp_hello *out);
/* The status a server answers to an accepted hello: JP_HELLO_OK_TUNNELD
 * when the client offered the extensions and extensions is true, else
 * JP_HELLO_OK. */
uint8_t jp_hello_accept_status(const struct jp_hello *h, bool extensions);

void jp_hello_reply_encode(uint8_t out[JP_HELLO_REPLY_LEN], uint8_t status);
/* TD_EPROTO for a bad magic.  Any status is returned; check ->accepted. */
int jp_hello_reply_parse(const uint8_t *p, size_t len, size_t *used, struct jp_hello_reply *out);

/* The 32-byte login token, as sent. */
int jp_token_parse(const uint8_t *p, size_t len, size_t *used, uint8_t out[JP_TOKEN_LEN]);

/* Login reply: status 0 takes 257 bytes, status 1 one byte; any other status
 * gives TD_EPROTO. */
int jp_login_reply_parse(const uint8_t *p, size_t len, size_t *used, struct jp_login_reply *out);
void jp_login_reply_encode_ok(uint8_t out[JP_LOGIN_OK_LEN], const uint8_t ct[JP_RSA_CT_LEN]);
void jp_login_reply_encode_reject(uint8_t out[1]);

/* ---- token and key transport ---------------------------------------------- */

/* T = SHA-256(spki || salt).  Returns 0, TD_EINVAL or TD_ECRYPTO. */
int jp_token_compute(const uint8_t *spki, size_t spki_len, const uint8_t salt[JP_SALT_LEN],
                     uint8_t out[JP_TOKEN_LEN]);
/* The same from a key: its SPKI DER is written first. */
int jp_token_for_key(struct td_pk *key, const uint8_t salt[JP_SALT_LEN], uint8_t out[JP_TOKEN_LEN]);
/* The server's stored-hash check: does SHA-256(spki || salt) equal token?
 * The comparison is constant-time.  False on any error. */
bool jp_token_verify(const uint8_t *spki, size_t spki_len, const uint8_t salt[JP_SALT_LEN],
                     const uint8_t token[JP_TOKEN_LEN]);

/* Server side of a successful login: draw a fresh K and build the 257-byte
 * reply (00 || RSA-PKCS1v15(client_pub, K)).  client_pub must be RSA-2048.
 * Returns 0, TD_EINVAL, TD_EUNSUPPORTED or TD_ECRYPTO.  Wipe key after use. */
int jp_login_accept(struct td_pk *client_pub, uint8_t key[JP_KEY_LEN],
                    uint8_t reply[JP_LOGIN_OK_LEN]);
/* Client side: recover K from the 256-byte ciphertext with the private key.
 * Exactly 16 bytes are required.  Returns 0, TD_EINVAL, TD_EAUTH (the
 * ciphertext does not decrypt under our key) or TD_EPROTO (wrong length). */
int jp_login_open(struct td_pk *client_priv, const uint8_t ct[JP_RSA_CT_LEN],
                  uint8_t key[JP_KEY_LEN]);

/* ---- frames ---------------------------------------------------------------- */

/* One per tunnel: K for both directions plus the receive state.  About 4 KiB;
 * not copyable (it embeds mbedTLS contexts). */
struct jp_frame_ctx {
    struct td_aes_ecb aes;
    int err;            /* sticky error after a failure, else 0 */
    uint8_t nblocks;    /* N of the frame being received, 0 while waiting for N */
    size_t have;        /* ciphertext bytes of the current frame received */
    const uint8_t *msg; /* after jp_frame_parse returned 0: the message ... */
    size_t msg_len;     /* ... valid until the next parse or free */
    uint8_t buf[JP_FRAME_MAX_CT];
};

int jp_frame_init(struct jp_frame_ctx *f, const uint8_t key[JP_KEY_LEN]);
/* Wipes the key and any plaintext. */
void jp_frame_free(struct jp_frame_ctx *f);

/* Resumable decoder.  Consumes bytes from *data (advancing *data, shrinking
 * *len) up to the end of one frame at most.  Returns 0 when a frame is
 * complete (f->msg, f->msg_len: the message, 0..4079 bytes), TD_EAGAIN when
 * every byte was consumed and the frame is still incomplete, TD_EPROTO for
 * N = 0, or TD_ECRYPTO for bad padding.  Errors are sticky: the tunnel must
 * be closed. */
int jp_frame_parse(struct jp_frame_ctx *f, const uint8_t **data, size_t *len);

/* Encrypt one message (1..JP_MSG_MAX bytes) into out (cap at least
 * JP_FRAME_WIRE_LEN(len)).  Returns 0, TD_EINVAL (empty message),
 * TD_ETOOBIG (message over 4079 bytes, or cap too small) or TD_ECRYPTO.
 * Does not touch the receive state. */
int jp_frame_encode(struct jp_frame_ctx *f, const uint8_t *msg, size_t len, uint8_t *out,
                    size_t cap, size_t *outlen);

/* ---- messages -------------------------------------------------------------- */

enum jp_kind {
    JP_KIND_TCP_CONNECT = 0x01,
    JP_KIND_UDP_ASSOCIATE = 0x02,
    JP_KIND_TCP_PACKET = 0x21,
    JP_KIND_UDP_PACKET = 0x22,
    JP_KIND_TCP_DISCONNECT = 0x41,
    JP_KIND_UDP_DISSOCIATE = 0x42,
};

/* Who sent the message: kinds 0x01 and 0x02 mean request or reply
 * depending on the direction. */
enum jp_dir {
    JP_DIR_C2S, /* from the client: the server parses these */
    JP_DIR_S2C, /* from the server: the client parses these */
};

enum jp_atyp {
    JP_ATYP_IPV4 = 0x01,
    JP_ATYP_IPV6 = 0x02, /* not SOCKS5's 0x04 */
    JP_ATYP_DOMAIN = 0x03,
};

enum jp_connect_status {
    JP_CONNECT_OK = 0,
    JP_CONNECT_FAILURE = 1,
    JP_CONNECT_REFUSED = 2,
    JP_CONNECT_TIMEDOUT = 3,
    JP_CONNECT_NETUNREACH = 4,
    JP_CONNECT_UNKNOWN_HOST = 5,
    JP_CONNECT_LIMIT = 6,
    /* Ours, sent only to a tunneld peer (a Java client would drop the
     * connection on an unknown status; it gets JP_CONNECT_FAILURE): the
     * server's allow/deny rules refuse the target. */
    JP_CONNECT_NOT_ALLOWED = 0x70,
};

/* UDP Associate reply statuses (our extension, see above). */
enum jp_udp_status {
    JP_UDP_OK = 0,
    JP_UDP_PORT_UNAVAILABLE = 1,
    JP_UDP_NETUNREACH = 4,
    JP_UDP_UNKNOWN_HOST = 5,
    JP_UDP_LIMIT = 6,
    JP_UDP_FAILURE = 7,
    JP_UDP_NOT_ALLOWED = 0x70, /* the server's rules refuse the destination */
};

enum jp_disconnect_reason {
    JP_REASON_GENERAL = 1,
    JP_REASON_CLIENT = 2,
    JP_REASON_BROKEN_PIPE = 3,
    JP_REASON_RESET = 4, /* what both Java peers always send; we send it too */
};

#define JP_TIME_UNKNOWN 0xFFFF /* response time when no attempt was made */

enum jp_msg_type {
    JP_MSG_NONE = 0,
    JP_MSG_TCP_CONNECT,         /* C->S: .addr */
    JP_MSG_TCP_CONNECT_BAD,     /* C->S, malformed; .id valid, .why says what: answer status 1 */
    JP_MSG_TCP_CONNECT_REPLY,   /* S->C: .status, .time_ms */
    JP_MSG_TCP_PACKET,          /* both: .data, .data_len */
    JP_MSG_TCP_DISCONNECT,      /* both: .reason */
    JP_MSG_UDP_ASSOCIATE,       /* C->S: .local_port, .addr */
    JP_MSG_UDP_ASSOCIATE_BAD,   /* C->S, malformed; .id valid: answer status 7 */
    JP_MSG_UDP_ASSOCIATE_REPLY, /* S->C: .status, .local_port */
    JP_MSG_UDP_PACKET,          /* both: .data, .data_len */
    JP_MSG_UDP_DISSOCIATE,      /* both */
    JP_MSG_UNKNOWN,             /* unknown kind (.kind): ignore it, as Java does */
};

struct jp_addr {
    uint8_t atyp;   /* JP_ATYP_* */
    uint16_t port;  /* host order */
    uint8_t ip[16]; /* IPv4 uses the first 4 bytes */
    char host[256]; /* JP_ATYP_DOMAIN: NUL-terminated, 1..255 bytes, no NUL inside */
    uint8_t host_len;
};

struct jp_msg {
    enum jp_msg_type type;
    uint8_t kind; /* the raw kind byte */
    uint16_t id;
    struct jp_addr addr; /* TCP_CONNECT, UDP_ASSOCIATE */
    uint16_t local_port; /* UDP_ASSOCIATE, UDP_ASSOCIATE_REPLY */
    uint8_t status;      /* TCP_CONNECT_REPLY, UDP_ASSOCIATE_REPLY */
    uint16_t time_ms;    /* TCP_CONNECT_REPLY */
    uint8_t reason;      /* TCP_DISCONNECT */
    const uint8_t *data; /* TCP_PACKET, UDP_PACKET: points into the parsed buffer */
    uint16_t data_len;
    const char *why; /* *_BAD: a static description for the log */
};

/* Parse one decrypted message (f->msg, f->msg_len).  Returns 0 with
 * out->type set, which includes JP_MSG_UNKNOWN (ignore) and the *_BAD types
 * (answer with a failure status), or TD_EPROTO for a message too short to
 * act on, or a length field pointing past the end; the Java peers log and
 * drop such messages and keep the tunnel.  Bytes after the message's own
 * fields are ignored (the Java client sends a 5-byte Disconnect). */
int jp_msg_parse(const uint8_t *m, size_t len, enum jp_dir dir, struct jp_msg *out);

/* Encode by m->type (not the *_BAD, NONE or UNKNOWN types).  Connect
 * requires a valid address (IPv4: 4 bytes, IPv6: 16, domain: host_len
 * 1..255 without NUL); packets at most JP_PACKET_DATA_MAX bytes.  Returns
 * the length in *outlen, 0, TD_EINVAL or TD_ETOOBIG (cap too small). */
int jp_msg_encode(const struct jp_msg *m, uint8_t *out, size_t cap, size_t *outlen);

/* Encode a message and encrypt it as one frame. */
int jp_frame_encode_msg(struct jp_frame_ctx *f, const struct jp_msg *m, uint8_t *out, size_t cap,
                        size_t *outlen);

/* Server: the Connect status for a TD_E* connect or resolve error. */
uint8_t jp_connect_status_from_err(int err);
/* Client: the TD_E* code for a Connect status (0 for OK; TD_EIO for a
 * general failure; TD_EPROTO for an unknown status). */
int jp_connect_status_to_err(uint8_t status);
const char *jp_connect_status_str(uint8_t status);
/* Response time for the reply: values of 65535 ms or more become 0xFFFF
 * (Java truncates to the low 16 bits instead). */
uint16_t jp_time_clamp(uint64_t ms);

#endif
