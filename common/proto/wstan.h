/* wstan protocol: the pure layer (no sockets, no event loop, no logging).
 *
 * Byte-level reference: /work/shared/specs/wstan.md (section numbers below
 * refer to it); our decisions are in docs/protocols/wstan.md.  This module
 * covers key derivation, nonces and handshake values, the message codec
 * with its per-direction cipher stream, timestamps, the handshake URI, the
 * server's replay filter and the tunnel state machine.  The WebSocket
 * transport lives in the daemon.
 *
 * Every function returns 0 or a negative TD_E* code.  Functions that need
 * the time take it as a parameter ("now", seconds since the Unix epoch with
 * fraction), so they stay pure and testable. */
#ifndef TD_WSTAN_H_
#define TD_WSTAN_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto_stream.h"

/* ---- constants -------------------------------------------------------------- */

enum wstan_cmd {
    WSTAN_REQ = 0x00,
    WSTAN_DAT = 0x01,
    WSTAN_RST = 0x02,
    WSTAN_DGM = 0x03,
};

#define WSTAN_NONCE_LEN       16
#define WSTAN_TAG_LEN         10 /* HMAC-SHA1 truncated to 10 bytes */
#define WSTAN_TS_LEN          8  /* IEEE-754 binary64, big-endian */
#define WSTAN_KEY_MAX         32
#define WSTAN_WS_KEY_LEN      24   /* b64 of 16 bytes */
#define WSTAN_WS_ACCEPT_LEN   28   /* b64 of 20 bytes */
#define WSTAN_COOKIE_NAME_LEN 2    /* "_A" .. "_Z" */
#define WSTAN_TS_WINDOW       60.0 /* default |now - TS| bound, seconds */
#define WSTAN_RST_PAD_MIN     40
#define WSTAN_RST_PAD_MAX     499
#define WSTAN_RST_PAD_RANDOM  (-1) /* pad argument: draw 40..499 spaces */
#define WSTAN_RST_PAD_LIMIT   65536
#define WSTAN_ADDR_MAX        (2 + 1 + 255 + 2) /* 00 ATYP len name port */

/* WebSocket close codes (section 5.3). */
#define WSTAN_CLOSE_NORMAL    1000
#define WSTAN_CLOSE_PROTOCOL  3000 /* text message, unknown command, bad RST/REQ */
#define WSTAN_CLOSE_BAD_STATE 3001 /* reset in the wrong state */

/* Worst-case encoded sizes, for sizing buffers. */
#define WSTAN_REQ_SIZE(datalen) (1 + WSTAN_TS_LEN + WSTAN_ADDR_MAX + (datalen) + WSTAN_TAG_LEN)
#define WSTAN_DAT_SIZE(datalen) (1 + (datalen))
#define WSTAN_DGM_SIZE(datalen) (1 + WSTAN_ADDR_MAX + (datalen))
#define WSTAN_RST_SIZE(reasonlen, errlen, pad)                                                     \
    (1 + (reasonlen) + 3 + (errlen) + (pad) + WSTAN_TAG_LEN)

/* ---- keys (section 2) --------------------------------------------------------- */

struct wstan_key {
    uint8_t bytes[WSTAN_KEY_MAX];
    size_t len;   /* 16: raw key, AES-128; 32: scrypt-derived, AES-256 */
    bool derived; /* true when the string was treated as a password */
};

/* CPython 3.11/3.12 binascii.a2b_base64 in non-strict mode, exactly: skips
 * characters outside the alphabet, honours '=' only after two data
 * characters of a quad, stops at completed padding, and fails on a dangling
 * single character or incomplete padding.  Returns 0, TD_EINVAL (what
 * Python reports as binascii.Error) or TD_ETOOBIG (more than cap bytes). */
int wstan_b64_lenient_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *outlen);

/* Key string -> K: the lenient decode when it gives exactly 16 bytes,
 * otherwise scrypt(P = the string's bytes, fixed salt, N=16384, r=8, p=1,
 * 32).  Strings with non-ASCII bytes go to scrypt (the stock tool crashes
 * on them, so there is nothing to be compatible with).  An empty string is
 * TD_EINVAL.  The scrypt path takes ~16 MiB and tens of milliseconds. */
int wstan_key_derive(const char *s, size_t len, struct wstan_key *out);
void wstan_key_clear(struct wstan_key *k);

/* ---- nonces and handshake values (section 3) ------------------------------------ */

/* Nc from a Sec-WebSocket-Key value, validated like Autobahn: 24 chars,
 * ending "==", the rest in the b64 alphabet.  Non-zero trailing bits are
 * ignored as Python's decoder does.  Returns 0 or TD_EINVAL. */
int wstan_ws_key_decode(const char *key, size_t len, uint8_t nc[WSTAN_NONCE_LEN]);
/* b64(Nc): 24 chars plus NUL. */
int wstan_ws_key_encode(const uint8_t nc[WSTAN_NONCE_LEN], char out[WSTAN_WS_KEY_LEN + 1]);
/* Sec-WebSocket-Accept for a key string (RFC 6455): 28 chars plus NUL;
 * digest (may be NULL) receives the 20-byte SHA-1. */
int wstan_ws_accept(const char *key, size_t len, char out[WSTAN_WS_ACCEPT_LEN + 1],
                    uint8_t digest[TD_SHA1_LEN]);
/* Default-mode Ns = SHA1(key || GUID)[:16]. */
int wstan_ns_default(const char *key, size_t len, uint8_t ns[WSTAN_NONCE_LEN]);
/* Client side: Ns from a received Sec-WebSocket-Accept (strict b64, 28
 * chars), the first 16 bytes.  The caller also compares the value with
 * wstan_ws_accept() of the key it sent. */
int wstan_ns_from_accept(const char *accept, size_t len, uint8_t ns[WSTAN_NONCE_LEN]);
/* Compatible-mode Ns = SHA1(Nc)[:16]. */
int wstan_ns_compat(const uint8_t nc[WSTAN_NONCE_LEN], uint8_t ns[WSTAN_NONCE_LEN]);

/* Compatible-mode cookie name "_" + chr(65 + SHA1(X)[19] % 26) with X =
 * the key bytes (the 16 raw bytes, or the 32-byte derived K for passwords:
 * our decision, section 14.1).  out receives "_X" and a NUL. */
int wstan_cookie_name(const struct wstan_key *k, char out[WSTAN_COOKIE_NAME_LEN + 1]);
/* Cookie header value "NAME=b64(Nc)" with NUL; cap >= 28. */
int wstan_cookie_value(const char *name, const uint8_t nc[WSTAN_NONCE_LEN], char *out, size_t cap);
/* Server side: parse a Cookie header value.  It must hold no ';', start
 * with exactly "NAME=" (expect_name, or any "_A".."_Z" when expect_name is
 * NULL) and the rest must be a b64 nonce as for wstan_ws_key_decode.  Only
 * the exact prefix is removed (the stock server's character-set strip is a
 * bug).  name_out (may be NULL) receives the name seen.  Returns 0 or
 * TD_EINVAL. */
int wstan_cookie_parse(const char *value, size_t len, const char *expect_name,
                       uint8_t nc[WSTAN_NONCE_LEN], char name_out[WSTAN_COOKIE_NAME_LEN + 1]);
/* Client rule: a nonce whose b64 text starts with the cookie letter would
 * be mis-read by the stock server; such a nonce must be redrawn. */
bool wstan_cookie_nonce_ok(const uint8_t nc[WSTAN_NONCE_LEN], const char *cookie_name);
/* Draw a fresh Nc with td_random, redrawing while it is not usable with
 * cookie_name (NULL in default mode). */
int wstan_nonce_generate(uint8_t nc[WSTAN_NONCE_LEN], const char *cookie_name);

/* ---- ADDR (section 4) ------------------------------------------------------------- */

enum wstan_atyp {
    WSTAN_ATYP_IPV4 = 0x01,
    WSTAN_ATYP_DOMAIN = 0x03,
    WSTAN_ATYP_IPV6 = 0x04,
};

struct wstan_addr {
    enum wstan_atyp atyp;
    uint8_t ip[16]; /* network order; 4 bytes for IPv4 */
    char host[256]; /* domain, NUL-terminated (ATYP 03) */
    size_t hostlen;
    uint16_t port;
};

/* Fill an address from a host string: IPv4 and IPv6 literals (without
 * brackets) become ATYP 01/04 like v0.5.0, unless as_text is set (v0.4.1
 * style: everything as ATYP 03).  Domain: 1..255 bytes, no NUL. */
int wstan_addr_set(struct wstan_addr *a, const char *host, size_t len, uint16_t port, bool as_text);
size_t wstan_addr_len(const struct wstan_addr *a);
int wstan_addr_encode(const struct wstan_addr *a, uint8_t *out, size_t cap, size_t *outlen);
/* Parse one ADDR at the start of in; *used = its length.  The reserved byte
 * must be 0, the domain 1..255 bytes without NUL (no further host syntax is
 * imposed: v0.4.1 sends IP literals as text; the caller applies policy).
 * Returns 0 or TD_EPROTO (malformed or truncated). */
int wstan_addr_parse(const uint8_t *in, size_t len, struct wstan_addr *a, size_t *used);

/* ---- timestamps ------------------------------------------------------------------ */

void wstan_ts_encode(double ts, uint8_t out[WSTAN_TS_LEN]);
double wstan_ts_decode(const uint8_t in[WSTAN_TS_LEN]);
/* 0 when |now - ts| <= window (so exactly window is accepted), TD_EAUTH
 * otherwise, including NaN and infinities.  window <= 0 means the default
 * WSTAN_TS_WINDOW. */
int wstan_ts_check(double ts, double now, double window);

/* ---- per-direction stream and message codec (sections 4, 9) ---------------------- */

/* One direction of one WS connection: the AES-CTR stream (started once at
 * the handshake, never restarted) and the HMAC key.  In TLS mode the cipher
 * is the identity but tags are still computed and verified.  Not copyable. */
struct wstan_stream {
    struct td_ctr ctr;
    struct td_hmac_sha1 mac;
    bool tls_mode;
    bool ready;
};

/* nonce may be NULL in TLS mode. */
int wstan_stream_init(struct wstan_stream *s, const struct wstan_key *k,
                      const uint8_t nonce[WSTAN_NONCE_LEN], bool tls_mode);
void wstan_stream_free(struct wstan_stream *s);
/* Advance the keystream by n bytes without output (no-op in TLS mode). */
int wstan_stream_skip(struct wstan_stream *s, size_t n);

/* Encoders write one complete WS message payload into out (cap bytes) and
 * advance the stream.  They fail with TD_ETOOBIG, leaving the stream
 * untouched, when out is too small.  data may be NULL when datalen is 0.
 * out must not overlap the inputs, except that wstan_encode_dat accepts
 * data == out + 1 (payload already in place behind the command byte). */

/* REQ: 00 TS ADDR DATA + tag (in the URI or in-band on a reused tunnel). */
int wstan_encode_req(struct wstan_stream *s, double ts, const struct wstan_addr *addr,
                     const uint8_t *data, size_t datalen, uint8_t *out, size_t cap, size_t *outlen);
/* DGM request (URI only): 03 TS ADDR DATA + tag. */
int wstan_encode_dgm_req(struct wstan_stream *s, double ts, const struct wstan_addr *addr,
                         const uint8_t *data, size_t datalen, uint8_t *out, size_t cap,
                         size_t *outlen);
/* "Empty" request (URI only): 02 TS + tag; the tunnel opens IDLE. */
int wstan_encode_empty_req(struct wstan_stream *s, double ts, uint8_t *out, size_t cap,
                           size_t *outlen);
/* DAT: 01 DATA, no tag. */
int wstan_encode_dat(struct wstan_stream *s, const uint8_t *data, size_t datalen, uint8_t *out,
                     size_t cap, size_t *outlen);
/* In-band DGM: 03 ADDR DATA, no timestamp, no tag. */
int wstan_encode_dgm(struct wstan_stream *s, const struct wstan_addr *addr, const uint8_t *data,
                     size_t datalen, uint8_t *out, size_t cap, size_t *outlen);
/* RST: 02 REASON "★" ERR PAD + tag.  reason and err are sanitized first
 * (wstan_text_sanitize), so what the peer decodes never splits wrongly.
 * pad = number of spaces (0..WSTAN_RST_PAD_LIMIT) or WSTAN_RST_PAD_RANDOM
 * for the stock 40..499.  Size the buffer with WSTAN_RST_SIZE(rlen, elen,
 * WSTAN_RST_PAD_MAX). */
int wstan_encode_rst(struct wstan_stream *s, const char *reason, size_t reasonlen, const char *err,
                     size_t errlen, int pad, uint8_t *out, size_t cap, size_t *outlen);

/* Make reason/err text safe for a RST: "★" becomes '*', control characters
 * become ' ', bytes that are not valid UTF-8 become '?', trailing whitespace
 * is removed.  The result is never longer than the input; out may equal in.
 * Returns 0. */
int wstan_text_sanitize(const char *in, size_t len, char *out, size_t *outlen);

/* A decoded message.  Pointers point into the caller's buffer, which the
 * decoder decrypts in place; they stay valid as long as that buffer. */
struct wstan_msg {
    enum wstan_cmd cmd;
    bool has_ts;
    double ts; /* REQ, DGM request, empty request */
    bool has_addr;
    struct wstan_addr addr; /* REQ, DGM */
    const uint8_t *data;    /* REQ/DGM/DAT payload; NULL for a skipped DAT */
    size_t datalen;
    const char *reason; /* RST: valid UTF-8, not NUL-terminated */
    size_t reason_len;
    const char *err;
    size_t err_len;
};

/* Decode the first request, taken from the handshake URI (server side):
 * REQ, DGM request or empty request, all tagged.  The tag is checked before
 * anything is decrypted: on TD_EAUTH neither msg nor the stream has changed,
 * so a server with several keys can try the next one.  The timestamp is
 * NOT checked here: call wstan_ts_check (non-TLS only), then the replay
 * filter.  Returns 0, TD_EAUTH (tag), TD_EPROTO (malformed). */
int wstan_decode_first(struct wstan_stream *s, uint8_t *msg, size_t len, struct wstan_msg *out);

/* Flags for wstan_decode_msg. */
#define WSTAN_DECODE_SKIP_DAT 0x1u /* a DAT only advances the stream (RESETTING) */

/* Decode one in-band message: REQ (tagged, with TS: check it with
 * wstan_ts_check), DAT, RST (tagged) or DGM.  DAT and DGM are always
 * decrypted (or skipped) so the stream stays in sync, whatever the state;
 * the state machine then decides what to do.  Returns 0, TD_EAUTH (bad
 * tag) or TD_EPROTO (empty message, unknown command, malformed body, RST
 * text that is not UTF-8); both errors mean close 3000. */
int wstan_decode_msg(struct wstan_stream *s, uint8_t *msg, size_t len, unsigned flags,
                     struct wstan_msg *out);

/* ---- handshake URI (sections 5.1, 5.2) -------------------------------------------- */

/* PATH = prefix (empty means "/"; a '/' is appended unless it ends with
 * one) + b64url(first request message) with '=' padding, NUL-terminated.
 * The prefix must start with '/' and hold no '?' or '#'. */
int wstan_uri_build(const char *prefix, size_t prefixlen, const uint8_t *msg, size_t msglen,
                    char *out, size_t cap, size_t *outlen);
/* Server side: from a request-target (origin-form, or absolute-form whose
 * path is used), drop query and fragment, strip the server's path prefix
 * if the path starts with it, then one leading '/', then b64url-decode
 * with padding required (length a multiple of 4).  Returns 0, TD_EINVAL
 * or TD_ETOOBIG. */
int wstan_uri_parse(const char *target, size_t len, const char *prefix, size_t prefixlen,
                    uint8_t *out, size_t cap, size_t *outlen);

/* ---- replay filter (section 5.2 step 4) ------------------------------------------- */

/* Remembers every accepted handshake nonce Nc until its request can no
 * longer pass the timestamp check: until max(TS, now) + window + 10 s,
 * i.e. at most ~130 s.  This is stricter than the stock per-10-s-bucket
 * sets (a nonce is never reused within the window) and compatible with
 * stock clients, which never reuse nonces.  Memory is fixed at init.  When
 * all slots hold live nonces, new handshakes are refused (TD_ELIMIT) rather
 * than evicting a live nonce, which would reopen a replay window. */
struct wstan_replay_entry;
struct wstan_replay {
    struct wstan_replay_entry *ring; /* insertion order */
    uint32_t *index;                 /* open addressing: ring position + 1, 0 = empty */
    size_t cap, mask, head, count;
    uint64_t seed;
    double window;
};

#define WSTAN_REPLAY_SLACK       10.0
#define WSTAN_REPLAY_MAX_ENTRIES ((size_t)1 << 24)

/* capacity: live nonces remembered at most (1..2^24); window as for
 * wstan_ts_check (<= 0: default).  About 40 bytes per entry. */
int wstan_replay_init(struct wstan_replay *r, size_t capacity, double window);
void wstan_replay_free(struct wstan_replay *r);
/* Call after the tag and timestamp checks passed.  0: fresh, remembered
 * now; TD_EAUTH: replayed; TD_ELIMIT: filter full, refuse. */
int wstan_replay_check(struct wstan_replay *r, const uint8_t nonce[WSTAN_NONCE_LEN], double ts,
                       double now);
size_t wstan_replay_count(const struct wstan_replay *r);

/* ---- tunnel state machine (section 6) --------------------------------------------- */

enum wstan_role {
    WSTAN_CLIENT = 0,
    WSTAN_SERVER = 1,
};

enum wstan_state {
    WSTAN_IDLE = 0,
    WSTAN_USING,
    WSTAN_RESETTING,
    WSTAN_CONNECTING, /* server only: target connect in progress */
    WSTAN_STATE_COUNT
};

enum wstan_event {
    WSTAN_EV_RECV_REQ = 0, /* in-band REQ (tag and TS already verified) */
    WSTAN_EV_RECV_DAT,
    WSTAN_EV_RECV_RST,
    WSTAN_EV_RECV_DGM,
    WSTAN_EV_RECV_TEXT,      /* a text WS message */
    WSTAN_EV_LOCAL_REQ,      /* client: reuse an idle tunnel with an in-band REQ */
    WSTAN_EV_LOCAL_DGM,      /* client: send an in-band DGM */
    WSTAN_EV_LOCAL_END,      /* local side ended (EOF/error): reset the tunnel */
    WSTAN_EV_CONNECTED,      /* server: target connect succeeded */
    WSTAN_EV_CONNECT_FAILED, /* server: target connect failed */
    WSTAN_EVENT_COUNT
};

enum wstan_action {
    WSTAN_ACT_NONE = 0,
    WSTAN_ACT_DELIVER,    /* write the DAT/DGM payload to the local side */
    WSTAN_ACT_BUFFER,     /* server CONNECTING: queue the DAT until connected */
    WSTAN_ACT_DISCARD,    /* drop (the stream was already advanced) */
    WSTAN_ACT_CONNECT,    /* server: connect to the REQ's target */
    WSTAN_ACT_SEND,       /* client: send the REQ/DGM */
    WSTAN_ACT_FLUSH,      /* server: write REQ DATA, then buffered DATs */
    WSTAN_ACT_SEND_RST,   /* send RST(reason), close/abort the local side */
    WSTAN_ACT_REPLY_RST,  /* peer reset us: send RST(""), close/abort the local side */
    WSTAN_ACT_RESET_DONE, /* RST exchange complete: IDLE (client may pool it) */
    WSTAN_ACT_CLOSE,      /* close the WS with step.close_code */
    WSTAN_ACTION_COUNT
};

struct wstan_step {
    enum wstan_state next;
    enum wstan_action action;
    int close_code; /* with WSTAN_ACT_CLOSE: 3000 or 3001 */
};

/* Pure transition: 0 with next state and action; TD_EPROTO with action
 * WSTAN_ACT_CLOSE, next = st and close_code 3000/3001 for a peer protocol
 * error or a reset in the wrong state; TD_EINVAL for an event that cannot
 * happen for that role and state (a caller bug). */
int wstan_transition(enum wstan_role role, enum wstan_state st, enum wstan_event ev,
                     struct wstan_step *out);
/* State of a fresh tunnel after its first request (REQ, DGM request or
 * empty request): server CONNECTING, USING, IDLE; client USING, USING,
 * IDLE (our client never opens with an empty request, but may). */
int wstan_initial_state(enum wstan_role role, enum wstan_cmd first, enum wstan_state *out);

const char *wstan_state_name(enum wstan_state st);
const char *wstan_event_name(enum wstan_event ev);
const char *wstan_action_name(enum wstan_action act);

#endif
