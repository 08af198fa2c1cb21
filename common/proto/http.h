/* HTTP/1.x message heads for the proxy front-end: pure codecs.
 *
 * Parsers work on a buffer holding what has arrived so far and return 0 when
 * the whole head (through the blank line) is there, TD_EAGAIN when more is
 * needed, TD_ETOOBIG when the head exceeds max_head bytes or HTTP_MAX_HEADERS
 * headers, and TD_EPROTO on malformed input.  Parsed fields point into the
 * caller's buffer.  No I/O, no allocation, no logging. */
#ifndef TD_HTTP_H_
#define TD_HTTP_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADERS      100
#define HTTP_DEFAULT_MAX_HEAD (64 * 1024)

struct http_slice {
    const char *p;
    size_t len;
};

struct http_header {
    struct http_slice name;
    struct http_slice value; /* leading/trailing whitespace trimmed */
};

struct http_request {
    struct http_slice method;
    struct http_slice target; /* request-target as sent */
    int version_minor;        /* HTTP/1.<minor>; only 1.0 and 1.1 accepted */
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t n_headers;
    size_t head_len; /* bytes through the blank line */
};

struct http_response {
    int version_minor;
    int status;
    struct http_slice reason;
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t n_headers;
    size_t head_len;
};

/* Returns 0, TD_EAGAIN (incomplete), TD_EPROTO or TD_ETOOBIG.  The
 * request-target is limited to 8 KiB unless max_head is larger than
 * HTTP_DEFAULT_MAX_HEAD, in which case it may take the whole head. */
int http_parse_request(const char *buf, size_t len, size_t max_head, struct http_request *req);
int http_parse_response(const char *buf, size_t len, size_t max_head, struct http_response *resp);

/* For a head that arrives in pieces: look for the blank line that ends a
 * request head, as http_parse_request() sees it (bare LF line ends, empty
 * lines before the request line skipped), in buf[*scanned..len) only.  The
 * caller keeps *scanned (0 at first) while buf grows, so each byte is looked
 * at once.  Returns the head's length through the blank line, or 0 when it
 * has not arrived; once found, *scanned stays where the same end is found
 * again. */
size_t http_head_scan(const char *buf, size_t len, size_t *scanned);
/* http_parse_request() for a growing buffer, cheap to call after every read:
 * TD_EAGAIN without parsing while the end of the head has not arrived (req
 * is then untouched), else the parser's result.  The parser still runs on
 * the first few reads, so bytes that cannot begin a request are refused at
 * once; other errors in a head are found when it is complete or too big. */
int http_parse_request_scan(const char *buf, size_t len, size_t max_head, size_t *scanned,
                            struct http_request *req);

/* Case-insensitive lookup; returns the first match or NULL. */
const struct http_header *http_find_header(const struct http_header *h, size_t n, const char *name);
/* Does a comma-separated header value (Connection, Transfer-Encoding)
 * contain token, case-insensitively? */
bool http_has_token(struct http_slice value, const char *token);

/* Target of a CONNECT request: "host:port" or "[v6]:port". */
struct http_authority {
    char host[256]; /* NUL-terminated, IPv6 without brackets */
    uint16_t port;
};
int http_parse_authority(struct http_slice s, uint16_t default_port, struct http_authority *out);

/* An absolute-form request-target: "http://host[:port]/path?query".  Only the
 * http scheme is accepted (TD_EUNSUPPORTED otherwise; TD_EPROTO for a
 * relative reference or userinfo).  path_and_query is "/" when the URI has no
 * path; the query string is kept exactly and a "#fragment" is dropped.
 *
 * For "http://host?q" the origin-form target is "/?q", which is not a slice
 * of the request: path_and_query is then "?q" and needs_slash is set, and a
 * "/" must be written before it (http_build_origin_request does). */
struct http_uri {
    struct http_authority authority;
    struct http_slice path_and_query; /* points into the request, or at "/" */
    bool needs_slash;                 /* write "/" before path_and_query */
};
int http_parse_absolute_uri(struct http_slice target, struct http_uri *out);

/* Build the request head sent to the origin: origin-form target, HTTP/1.1,
 * a Host header (the original one if present, else from the URI), hop-by-hop
 * headers removed (Connection and the headers it names, Keep-Alive,
 * Proxy-Connection, Proxy-Authorization, Proxy-Authenticate, TE, Trailer,
 * Upgrade), and "Connection: close" added.  Returns the length written, or
 * TD_ETOOBIG when cap is too small. */
int http_build_origin_request(const struct http_request *req, const struct http_uri *uri, char *out,
                              size_t cap);
/* Rewrite a response head for the client: hop-by-hop headers removed as above
 * except Transfer-Encoding (the body is relayed as is), "Connection: close"
 * added.  Returns the length written or TD_ETOOBIG. */
int http_build_client_response(const struct http_response *resp, char *out, size_t cap);

/* A complete error response with a small HTML body and Connection: close.
 * extra_headers (may be NULL) is inserted verbatim ("Name: v\r\n" lines). */
int http_build_error(int status, const char *detail, const char *extra_headers, char *out,
                     size_t cap);
const char *http_status_reason(int status);

/* Proxy-Authorization: Basic <b64(user:pass)>.  Returns 0, TD_EPROTO if
 * malformed, TD_EUNSUPPORTED for another scheme. */
int http_parse_basic_auth(struct http_slice value, char *user, size_t ucap, char *pass,
                          size_t pcap);

/* Request body framing, so that the proxy forwards exactly one request's body
 * and never lets a following request reach the same origin. */
enum http_body_kind {
    HTTP_BODY_NONE = 0,
    HTTP_BODY_LENGTH,
    HTTP_BODY_CHUNKED,
};
struct http_body {
    enum http_body_kind kind;
    uint64_t remaining; /* LENGTH: bytes left; CHUNKED: bytes left in chunk */
    int state;          /* chunked decoder state, internal */
    uint32_t line_len;  /* bytes of the current size/trailer line, capped */
    bool done;
};
/* From the request headers.  TD_EPROTO for conflicting or invalid framing
 * (answer 400), TD_EUNSUPPORTED for a transfer-coding other than chunked
 * (answer 501). */
int http_body_init(struct http_body *b, const struct http_request *req);
/* Feed body bytes.  *used is set to how many belong to this body (they are to
 * be forwarded).  Returns 1 when the body is complete, 0 when more is
 * expected, or TD_EPROTO on a malformed chunked encoding. */
int http_body_feed(struct http_body *b, const uint8_t *p, size_t len, size_t *used);

#endif
