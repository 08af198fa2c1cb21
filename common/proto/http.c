/* HTTP/1.x message heads and body framing for the proxy front-end.
 *
 * The parsers are deliberately stricter than most servers in the places
 * where a lenient proxy and a strict origin (or the other way round) could
 * disagree about where a message ends: whitespace before a header colon,
 * obs-fold, Content-Length together with Transfer-Encoding, several
 * different Content-Lengths, and anything unusual inside chunked framing are
 * all errors.  Elsewhere they follow RFC 9112's "be lenient" allowances
 * (bare LF line endings in the head, empty lines before the request line).
 *
 * The head parsers are stateless and look at the whole head.  A caller that
 * reads a head in pieces finds its end first with http_head_scan(), which
 * looks at each new byte once, and runs the parser when the end is there
 * (http_parse_request_scan() does both): parsing again from the start on
 * every read is quadratic, and a client sending one byte per packet could
 * make a 64 KiB head cost seconds of CPU. */
#include "proto/http.h"

#include "util/base64.h"
#include "util/error.h"

#include <limits.h>
#include <string.h>

#define HTTP_MAX_METHOD         32
#define HTTP_MAX_TARGET         (8 * 1024)
#define HTTP_MAX_CHUNK_LINE     4096
#define HTTP_MAX_TRAILERS       HTTP_DEFAULT_MAX_HEAD
#define HTTP_MAX_CONTENT_LENGTH ((uint64_t)1 << 62)
/* http_parse_request_scan() parses on every read until this many bytes have
 * been scanned, so that bytes that cannot begin a request are refused early. */
#define HTTP_SCAN_EARLY 64

/* ---- character classes ------------------------------------------------- */

static bool http__is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool http__is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* field-vchar / SP / HTAB, including obs-text. */
static bool http__is_field_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool http__is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int http__hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static unsigned char http__lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool http__ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (http__lower((unsigned char)a[i]) != http__lower((unsigned char)b[i]))
            return false;
    return true;
}

static bool http__slice_ieq(struct http_slice s, const char *lit)
{
    return http__ieq(s.p, s.len, lit, strlen(lit));
}

static struct http_slice http__trim(struct http_slice s)
{
    while (s.len > 0 && http__is_ows((unsigned char)s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len > 0 && http__is_ows((unsigned char)s.p[s.len - 1]))
        s.len--;
    return s;
}

/* ---- head parsing ------------------------------------------------------ */

/* Find the next line in buf[*pos..end).  The line excludes its LF and one
 * CR before it.  Returns 0 and advances *pos past the LF, or TD_EAGAIN. */
static int http__next_line(const char *buf, size_t end, size_t *pos, struct http_slice *line)
{
    const char *nl;
    size_t n;

    if (*pos >= end)
        return TD_EAGAIN;
    nl = memchr(buf + *pos, '\n', end - *pos);
    if (nl == NULL)
        return TD_EAGAIN;
    n = (size_t)(nl - (buf + *pos));
    line->p = buf + *pos;
    line->len = (n > 0 && line->p[n - 1] == '\r') ? n - 1 : n;
    *pos += n + 1;
    return 0;
}

/* "HTTP/1.0" or "HTTP/1.1".  Another well-formed version gives
 * TD_EUNSUPPORTED (answer 505), anything else TD_EPROTO. */
static int http__parse_version(const char *p, size_t len, int *minor)
{
    if (len != 8 || memcmp(p, "HTTP/", 5) != 0 || !http__is_digit((unsigned char)p[5]) ||
        p[6] != '.' || !http__is_digit((unsigned char)p[7]))
        return TD_EPROTO;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return TD_EUNSUPPORTED;
    *minor = p[7] - '0';
    return 0;
}

/* Header fields up to and including the blank line.  On success *pos is
 * just past the blank line. */
static int http__parse_fields(const char *buf, size_t end, size_t *pos, struct http_header *hdrs,
                              size_t *n_out)
{
    size_t n = 0;

    for (;;) {
        struct http_slice line, value;
        size_t i = 0;
        int rc = http__next_line(buf, end, pos, &line);

        if (rc != 0)
            return rc;
        if (line.len == 0)
            break;
        /* A line starting with whitespace is obs-fold (or whitespace before
         * the first field name); RFC 9112 section 5.2 lets us reject it. */
        if (http__is_ows((unsigned char)line.p[0]))
            return TD_EPROTO;
        while (i < line.len && http__is_tchar((unsigned char)line.p[i]))
            i++;
        /* No whitespace between the name and the colon (RFC 9112 5.1). */
        if (i == 0 || i == line.len || line.p[i] != ':')
            return TD_EPROTO;
        value.p = line.p + i + 1;
        value.len = line.len - i - 1;
        for (size_t k = 0; k < value.len; k++)
            if (!http__is_field_char((unsigned char)value.p[k]))
                return TD_EPROTO;
        if (n == HTTP_MAX_HEADERS)
            return TD_ETOOBIG;
        hdrs[n].name.p = line.p;
        hdrs[n].name.len = i;
        hdrs[n].value = http__trim(value);
        n++;
    }
    *n_out = n;
    return 0;
}

/* Request line: method SP request-target SP HTTP-version. */
static int http__parse_request_line(struct http_slice line, size_t max_target,
                                    struct http_request *req)
{
    size_t i = 0, start;
    int rc;

    while (i < line.len && http__is_tchar((unsigned char)line.p[i]))
        i++;
    if (i == 0 || i > HTTP_MAX_METHOD || i == line.len || line.p[i] != ' ')
        return TD_EPROTO;
    req->method.p = line.p;
    req->method.len = i;
    start = ++i;
    while (i < line.len && (unsigned char)line.p[i] > 0x20 && (unsigned char)line.p[i] != 0x7f)
        i++;
    if (i == start || i == line.len || line.p[i] != ' ')
        return TD_EPROTO;
    if (i - start > max_target)
        return TD_ETOOBIG;
    req->target.p = line.p + start;
    req->target.len = i - start;
    i++;
    rc = http__parse_version(line.p + i, line.len - i, &req->version_minor);
    return rc;
}

/* Before the request line is complete, check the method seen so far, so
 * that a client speaking another protocol (a TLS ClientHello, say) is
 * refused at once rather than after max_head bytes. */
static int http__check_partial_method(const char *p, size_t len)
{
    size_t i = 0;

    while (i < len && i <= HTTP_MAX_METHOD && http__is_tchar((unsigned char)p[i]))
        i++;
    if (i > HTTP_MAX_METHOD)
        return TD_EPROTO;
    if (i == 0 && len == 1 && p[0] == '\r')
        return TD_EAGAIN; /* the CR of an empty line before the request */
    if (i < len && (p[i] != ' ' || i == 0))
        return TD_EPROTO;
    return TD_EAGAIN;
}

static int http__parse_request(const char *buf, size_t len, size_t max_head,
                               struct http_request *req)
{
    size_t end = len < max_head ? len : max_head;
    size_t pos = 0, n = 0;
    struct http_slice line;
    int rc;

    /* RFC 9112 2.2: ignore empty lines received before the request line
     * (some clients send a CRLF after a POST body). */
    for (;;) {
        size_t save = pos;
        rc = http__next_line(buf, end, &pos, &line);
        if (rc != 0) {
            rc = http__check_partial_method(buf + save, end - save);
            if (rc == TD_EAGAIN && len > max_head)
                rc = TD_ETOOBIG;
            return rc;
        }
        if (line.len != 0)
            break;
    }
    /* A caller that allows a head larger than the default (the wstan server:
     * its first request rides in the URI) allows the target to fill it. */
    rc = http__parse_request_line(
        line, max_head > HTTP_DEFAULT_MAX_HEAD ? max_head : HTTP_MAX_TARGET, req);
    if (rc != 0)
        return rc;
    rc = http__parse_fields(buf, end, &pos, req->headers, &n);
    if (rc == TD_EAGAIN && len > max_head)
        rc = TD_ETOOBIG;
    if (rc != 0)
        return rc;
    req->n_headers = n;
    req->head_len = pos;
    return 0;
}

int http_parse_request(const char *buf, size_t len, size_t max_head, struct http_request *req)
{
    if ((buf == NULL && len != 0) || req == NULL)
        return TD_EINVAL;
    memset(req, 0, sizeof(*req));
    return http__parse_request(buf, len, max_head ? max_head : HTTP_DEFAULT_MAX_HEAD, req);
}

/* Is the line that ends with the LF at buf[i] empty, as http__next_line
 * sees it ("" or a lone CR)?  Only the two bytes before the LF matter. */
static bool http__empty_line_at(const char *buf, size_t i)
{
    if (i == 0 || buf[i - 1] == '\n')
        return true;
    return buf[i - 1] == '\r' && (i == 1 || buf[i - 2] == '\n');
}

size_t http_head_scan(const char *buf, size_t len, size_t *scanned)
{
    size_t pos = *scanned;

    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t i, start;

        if (nl == NULL)
            break;
        i = (size_t)(nl - buf);
        pos = i + 1;
        if (!http__empty_line_at(buf, i))
            continue;
        /* An empty line ends the head once a non-empty line came before
         * it.  Empty lines seen before this one were all leading ones (the
         * scan would have stopped at the first that ended the head), so
         * the line just before decides. */
        start = (i == 0 || buf[i - 1] == '\n') ? i : i - 1;
        if (start > 0 && !http__empty_line_at(buf, start - 1)) {
            *scanned = i; /* a later call finds the same end again */
            return i + 1;
        }
    }
    *scanned = len;
    return 0;
}

int http_parse_request_scan(const char *buf, size_t len, size_t max_head, size_t *scanned,
                            struct http_request *req)
{
    size_t from;

    if ((buf == NULL && len != 0) || req == NULL || scanned == NULL || *scanned > len)
        return TD_EINVAL;
    if (max_head == 0)
        max_head = HTTP_DEFAULT_MAX_HEAD;
    from = *scanned;
    /* While the first bytes arrive the parser runs anyway: it refuses what
     * cannot start a request (a TLS hello, say) at once, and that costs at
     * most HTTP_SCAN_EARLY short parses. */
    if (http_head_scan(buf, len, scanned) == 0 && len <= max_head && from >= HTTP_SCAN_EARLY)
        return TD_EAGAIN;
    return http_parse_request(buf, len, max_head, req);
}

/* Status line: HTTP-version SP 3DIGIT SP reason-phrase.  The SP before an
 * empty reason is optional, since many servers leave it out. */
static int http__parse_status_line(struct http_slice line, struct http_response *resp)
{
    const char *p = line.p;
    int rc;

    if (line.len < 8)
        return TD_EPROTO;
    rc = http__parse_version(p, 8, &resp->version_minor);
    if (rc != 0)
        return rc;
    if (line.len < 12 || p[8] != ' ' || !http__is_digit((unsigned char)p[9]) ||
        !http__is_digit((unsigned char)p[10]) || !http__is_digit((unsigned char)p[11]))
        return TD_EPROTO;
    resp->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (resp->status < 100)
        return TD_EPROTO;
    resp->reason.p = p + line.len;
    resp->reason.len = 0;
    if (line.len > 12) {
        if (p[12] != ' ')
            return TD_EPROTO;
        for (size_t i = 13; i < line.len; i++)
            if (!http__is_field_char((unsigned char)p[i]))
                return TD_EPROTO;
        resp->reason.p = p + 13;
        resp->reason.len = line.len - 13;
    }
    return 0;
}

static int http__parse_response(const char *buf, size_t len, size_t max_head,
                                struct http_response *resp)
{
    size_t end = len < max_head ? len : max_head;
    size_t pos = 0, n = 0;
    struct http_slice line;
    int rc;

    rc = http__next_line(buf, end, &pos, &line);
    if (rc == TD_EAGAIN) {
        /* Refuse early when what has arrived cannot start a status line. */
        size_t k = end < 5 ? end : 5;
        if (k > 0 && memcmp(buf, "HTTP/", k) != 0)
            return TD_EPROTO;
        return len > max_head ? TD_ETOOBIG : TD_EAGAIN;
    }
    rc = http__parse_status_line(line, resp);
    if (rc != 0)
        return rc;
    rc = http__parse_fields(buf, end, &pos, resp->headers, &n);
    if (rc == TD_EAGAIN && len > max_head)
        rc = TD_ETOOBIG;
    if (rc != 0)
        return rc;
    resp->n_headers = n;
    resp->head_len = pos;
    return 0;
}

int http_parse_response(const char *buf, size_t len, size_t max_head, struct http_response *resp)
{
    if ((buf == NULL && len != 0) || resp == NULL)
        return TD_EINVAL;
    memset(resp, 0, sizeof(*resp));
    return http__parse_response(buf, len, max_head ? max_head : HTTP_DEFAULT_MAX_HEAD, resp);
}

const struct http_header *http_find_header(const struct http_header *h, size_t n, const char *name)
{
    size_t nlen;

    if (h == NULL || name == NULL)
        return NULL;
    nlen = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (http__ieq(h[i].name.p, h[i].name.len, name, nlen))
            return &h[i];
    return NULL;
}

/* Walk the elements of a comma-separated list.  Each element is trimmed and
 * cut at its first ';' (transfer-coding parameters).  Empty elements are
 * skipped, as RFC 9110 5.6.1 asks. */
struct http__list_iter {
    struct http_slice rest;
};

static bool http__list_next(struct http__list_iter *it, struct http_slice *elem)
{
    while (it->rest.len > 0) {
        const char *comma = memchr(it->rest.p, ',', it->rest.len);
        size_t n = comma ? (size_t)(comma - it->rest.p) : it->rest.len;
        struct http_slice e = {it->rest.p, n};
        const char *semi = memchr(e.p, ';', e.len);

        it->rest.p += comma ? n + 1 : n;
        it->rest.len -= comma ? n + 1 : n;
        if (semi != NULL)
            e.len = (size_t)(semi - e.p);
        e = http__trim(e);
        if (e.len > 0) {
            *elem = e;
            return true;
        }
    }
    return false;
}

static bool http__has_token(struct http_slice value, const char *tok, size_t toklen)
{
    struct http__list_iter it = {value};
    struct http_slice e;

    while (http__list_next(&it, &e))
        if (http__ieq(e.p, e.len, tok, toklen))
            return true;
    return false;
}

bool http_has_token(struct http_slice value, const char *token)
{
    if (token == NULL || (value.p == NULL && value.len != 0))
        return false;
    return http__has_token(value, token, strlen(token));
}

/* ---- authority and URI --------------------------------------------------- */

static bool http__ipv4_valid(const char *s, size_t n)
{
    size_t i = 0;

    for (int part = 0; part < 4; part++) {
        size_t start = i;
        unsigned v = 0;

        if (part > 0) {
            if (i >= n || s[i] != '.')
                return false;
            start = ++i;
        }
        while (i < n && http__is_digit((unsigned char)s[i]) && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        /* Leading zeros are refused: some resolvers read them as octal. */
        if (i == start || v > 255 || (i - start > 1 && s[start] == '0'))
            return false;
    }
    return i == n;
}

/* RFC 4291 section 2.2 text forms, with an optional trailing dotted quad.
 * Zone identifiers are refused. */
static bool http__ipv6_valid(const char *s, size_t n)
{
    size_t i = 0;
    int groups = 0;
    bool dcolon = false;

    if (n < 2)
        return false;
    if (s[0] == ':') {
        if (s[1] != ':')
            return false;
        dcolon = true;
        i = 2;
    }
    while (i < n) {
        size_t start = i;

        while (i < n && http__hex_value((unsigned char)s[i]) >= 0 && i - start < 5)
            i++;
        if (i < n && s[i] == '.') {
            if (groups > 6 || !http__ipv4_valid(s + start, n - start))
                return false;
            groups += 2;
            break;
        }
        if (i == start || i - start > 4)
            return false;
        groups++;
        if (i == n)
            break;
        if (s[i] != ':' || ++i == n)
            return false;
        if (s[i] == ':') {
            if (dcolon)
                return false;
            dcolon = true;
            i++;
        }
    }
    return dcolon ? groups <= 7 : groups == 8;
}

/* A registered name or an IPv4 literal.  Only the characters a DNS name can
 * hold are allowed, which also keeps anything that could split a header
 * line or confuse a URL parser further down out of the host. */
static bool http__host_valid(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || http__is_digit(c) || c == '-' ||
              c == '.' || c == '_' || c == '~'))
            return false;
    }
    return true;
}

/* Port 1..65535 in decimal; an empty port means default_port (RFC 3986
 * 3.2.3) when there is one. */
static int http__parse_port(const char *s, size_t n, uint16_t default_port, uint16_t *port)
{
    uint32_t v = 0;

    if (n == 0) {
        if (default_port == 0)
            return TD_EPROTO;
        *port = default_port;
        return 0;
    }
    if (n > 5)
        return TD_EPROTO;
    for (size_t i = 0; i < n; i++) {
        if (!http__is_digit((unsigned char)s[i]))
            return TD_EPROTO;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return TD_EPROTO;
    *port = (uint16_t)v;
    return 0;
}

static int http__parse_authority(struct http_slice s, uint16_t default_port,
                                 struct http_authority *out)
{
    const char *host, *rest;
    size_t hlen, rlen;
    uint16_t port = 0;
    int rc;

    if (s.len == 0)
        return TD_EPROTO;
    if (s.p[0] == '[') {
        const char *close = memchr(s.p, ']', s.len);
        if (close == NULL)
            return TD_EPROTO;
        host = s.p + 1;
        hlen = (size_t)(close - host);
        if (!http__ipv6_valid(host, hlen))
            return TD_EPROTO;
        rest = close + 1;
        rlen = s.len - (size_t)(rest - s.p);
    } else {
        const char *colon = memchr(s.p, ':', s.len);
        host = s.p;
        hlen = colon ? (size_t)(colon - s.p) : s.len;
        if (!http__host_valid(host, hlen))
            return TD_EPROTO;
        rest = s.p + hlen;
        rlen = s.len - hlen;
    }
    if (hlen >= sizeof(out->host))
        return TD_EPROTO;
    if (rlen == 0) {
        if (default_port == 0)
            return TD_EPROTO;
        port = default_port;
    } else {
        if (rest[0] != ':')
            return TD_EPROTO;
        rc = http__parse_port(rest + 1, rlen - 1, default_port, &port);
        if (rc != 0)
            return rc;
    }
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = port;
    return 0;
}

int http_parse_authority(struct http_slice s, uint16_t default_port, struct http_authority *out)
{
    if (out == NULL || (s.p == NULL && s.len != 0))
        return TD_EINVAL;
    memset(out, 0, sizeof(*out));
    return http__parse_authority(s, default_port, out);
}

static int http__parse_absolute_uri(struct http_slice t, struct http_uri *out)
{
    static const char slash[] = "/";
    size_t i = 0, a_start, a_end, end;
    struct http_slice auth;
    int rc;

    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
    if (t.len == 0 || !((t.p[0] | 0x20) >= 'a' && (t.p[0] | 0x20) <= 'z'))
        return TD_EPROTO;
    while (i < t.len) {
        unsigned char c = (unsigned char)t.p[i];
        if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || http__is_digit(c) || c == '+' ||
              c == '-' || c == '.'))
            break;
        i++;
    }
    if (i == t.len || t.p[i] != ':')
        return TD_EPROTO; /* a relative reference, not an absolute URI */
    if (!http__ieq(t.p, i, "http", 4))
        return TD_EUNSUPPORTED;
    if (t.len - i < 3 || t.p[i + 1] != '/' || t.p[i + 2] != '/')
        return TD_EPROTO;

    /* The rest must not contain anything that could end a request line. */
    for (size_t k = i; k < t.len; k++)
        if ((unsigned char)t.p[k] <= 0x20 || (unsigned char)t.p[k] == 0x7f)
            return TD_EPROTO;

    /* The fragment is never sent (RFC 9110 7.1). */
    end = t.len;
    {
        const char *hash = memchr(t.p, '#', t.len);
        if (hash != NULL)
            end = (size_t)(hash - t.p);
    }

    a_start = i + 3;
    a_end = a_start;
    while (a_end < end && t.p[a_end] != '/' && t.p[a_end] != '?')
        a_end++;
    auth.p = t.p + a_start;
    auth.len = a_end - a_start;
    /* userinfo is deprecated for http (RFC 9110 4.2.4) and a classic way to
     * make a URL look like it points somewhere else. */
    if (memchr(auth.p, '@', auth.len) != NULL)
        return TD_EPROTO;
    rc = http__parse_authority(auth, 80, &out->authority);
    if (rc != 0)
        return rc;

    out->needs_slash = false;
    if (a_end == end) {
        out->path_and_query.p = slash;
        out->path_and_query.len = 1;
    } else {
        out->path_and_query.p = t.p + a_end;
        out->path_and_query.len = end - a_end;
        out->needs_slash = t.p[a_end] == '?';
    }
    return 0;
}

int http_parse_absolute_uri(struct http_slice target, struct http_uri *out)
{
    if (out == NULL || (target.p == NULL && target.len != 0))
        return TD_EINVAL;
    memset(out, 0, sizeof(*out));
    return http__parse_absolute_uri(target, out);
}

/* ---- building heads ------------------------------------------------------ */

/* A bounded writer: it keeps counting past cap so that the caller can tell
 * the size that would have been needed, and with cap 0 it only measures. */
struct http__wbuf {
    char *p;
    size_t cap;
    size_t len;
};

static void http__put(struct http__wbuf *w, const char *s, size_t n)
{
    if (n > 0 && w->len <= w->cap && n <= w->cap - w->len)
        memcpy(w->p + w->len, s, n);
    if (n > SIZE_MAX - w->len)
        w->len = SIZE_MAX;
    else
        w->len += n;
}

static void http__puts(struct http__wbuf *w, const char *s)
{
    http__put(w, s, strlen(s));
}

static void http__put_slice(struct http__wbuf *w, struct http_slice s)
{
    http__put(w, s.p, s.len);
}

static void http__put_uint(struct http__wbuf *w, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    http__put(w, tmp + i, sizeof(tmp) - i);
}

static int http__wbuf_result(const struct http__wbuf *w)
{
    if (w->len > w->cap || w->len > INT_MAX)
        return TD_ETOOBIG;
    return (int)w->len;
}

/* Headers that describe one connection, not the message (RFC 9110 7.6.1). */
static const char *const http__hop_headers[] = {
    "Connection",         "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
    "Proxy-Authenticate", "TE",         "Trailer",          "Upgrade",
};

/* Headers that are never dropped because a Connection header names them:
 * taking away the framing headers would let the body be read as a second
 * request at the origin, and Host is handled on its own. */
static const char *const http__keep_headers[] = {
    "Content-Length",
    "Transfer-Encoding",
    "Host",
};

static bool http__is_hop_by_hop(struct http_slice name, const struct http_header *hdrs, size_t n)
{
    for (size_t i = 0; i < sizeof(http__hop_headers) / sizeof(http__hop_headers[0]); i++)
        if (http__slice_ieq(name, http__hop_headers[i]))
            return true;
    for (size_t i = 0; i < sizeof(http__keep_headers) / sizeof(http__keep_headers[0]); i++)
        if (http__slice_ieq(name, http__keep_headers[i]))
            return false;
    for (size_t i = 0; i < n; i++)
        if (http__slice_ieq(hdrs[i].name, "Connection") &&
            http__has_token(hdrs[i].value, name.p, name.len))
            return true;
    return false;
}

static void http__put_header(struct http__wbuf *w, const struct http_header *h)
{
    http__put_slice(w, h->name);
    http__put(w, ": ", 2);
    http__put_slice(w, h->value);
    http__put(w, "\r\n", 2);
}

int http_build_origin_request(const struct http_request *req, const struct http_uri *uri, char *out,
                              size_t cap)
{
    struct http__wbuf w = {out, out ? cap : 0, 0};
    if (req == NULL || uri == NULL || req->n_headers > HTTP_MAX_HEADERS)
        return TD_EINVAL;

    http__put_slice(&w, req->method);
    http__put(&w, " ", 1);
    if (uri->needs_slash)
        http__put(&w, "/", 1);
    http__put_slice(&w, uri->path_and_query);
    http__puts(&w, " HTTP/1.1\r\n");

    /* RFC 9112 3.2.2: a proxy ignores the received Host of an absolute-form
     * request and sends the request-target's authority instead, so that the
     * origin can never be told a different host than the one we connect to. */
    {
        bool v6 = strchr(uri->authority.host, ':') != NULL;
        http__puts(&w, v6 ? "Host: [" : "Host: ");
        http__puts(&w, uri->authority.host);
        if (v6)
            http__put(&w, "]", 1);
        if (uri->authority.port != 80) {
            http__put(&w, ":", 1);
            http__put_uint(&w, uri->authority.port);
        }
        http__put(&w, "\r\n", 2);
    }

    for (size_t i = 0; i < req->n_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (http__slice_ieq(h->name, "Host") ||
            http__is_hop_by_hop(h->name, req->headers, req->n_headers))
            continue;
        http__put_header(&w, h);
    }
    http__puts(&w, "Connection: close\r\n\r\n");
    return http__wbuf_result(&w);
}

int http_build_client_response(const struct http_response *resp, char *out, size_t cap)
{
    struct http__wbuf w = {out, out ? cap : 0, 0};

    if (resp == NULL || resp->n_headers > HTTP_MAX_HEADERS || resp->status < 100 ||
        resp->status > 999)
        return TD_EINVAL;

    http__puts(&w, "HTTP/1.1 ");
    http__put_uint(&w, (uint64_t)resp->status);
    http__put(&w, " ", 1);
    if (resp->reason.len > 0)
        http__put_slice(&w, resp->reason);
    else
        http__puts(&w, http_status_reason(resp->status));
    http__put(&w, "\r\n", 2);
    for (size_t i = 0; i < resp->n_headers; i++) {
        const struct http_header *h = &resp->headers[i];
        if (http__is_hop_by_hop(h->name, resp->headers, resp->n_headers))
            continue;
        http__put_header(&w, h);
    }
    http__puts(&w, "Connection: close\r\n\r\n");
    return http__wbuf_result(&w);
}

static void http__put_html_escaped(struct http__wbuf *w, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '<':
            http__puts(w, "&lt;");
            break;
        case '>':
            http__puts(w, "&gt;");
            break;
        case '&':
            http__puts(w, "&amp;");
            break;
        case '"':
            http__puts(w, "&quot;");
            break;
        case '\'':
            http__puts(w, "&#39;");
            break;
        default:
            http__put(w, s, 1);
            break;
        }
    }
}

static void http__put_error_body(struct http__wbuf *w, int status, const char *reason,
                                 const char *detail)
{
    http__puts(w, "<!DOCTYPE html>\n<html><head><title>");
    http__put_uint(w, (uint64_t)status);
    http__put(w, " ", 1);
    http__puts(w, reason);
    http__puts(w, "</title></head>\n<body><h1>");
    http__put_uint(w, (uint64_t)status);
    http__put(w, " ", 1);
    http__puts(w, reason);
    http__puts(w, "</h1>\n");
    if (detail != NULL && *detail != '\0') {
        http__puts(w, "<p>");
        http__put_html_escaped(w, detail);
        http__puts(w, "</p>\n");
    }
    http__puts(w, "<hr><p>tunneld</p>\n</body></html>\n");
}

int http_build_error(int status, const char *detail, const char *extra_headers, char *out,
                     size_t cap)
{
    struct http__wbuf w = {out, out ? cap : 0, 0};
    struct http__wbuf measure = {NULL, 0, 0};
    const char *reason;

    if (status < 100 || status > 999)
        return TD_EINVAL;
    reason = http_status_reason(status);

    /* Measure the body first: Content-Length goes before it. */
    http__put_error_body(&measure, status, reason, detail);

    http__puts(&w, "HTTP/1.1 ");
    http__put_uint(&w, (uint64_t)status);
    http__put(&w, " ", 1);
    http__puts(&w, reason);
    http__puts(&w, "\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: ");
    http__put_uint(&w, measure.len);
    http__puts(&w, "\r\nConnection: close\r\n");
    if (extra_headers != NULL)
        http__puts(&w, extra_headers);
    http__put(&w, "\r\n", 2);
    http__put_error_body(&w, status, reason, detail);
    return http__wbuf_result(&w);
}

const char *http_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* ---- Basic authentication ------------------------------------------------ */

int http_parse_basic_auth(struct http_slice value, char *user, size_t ucap, char *pass, size_t pcap)
{
    uint8_t raw[1024];
    size_t i = 0, rawlen = 0, ulen;
    struct http_slice v, cred;
    const uint8_t *colon;
    int rc;

    if (user == NULL || pass == NULL || ucap == 0 || pcap == 0 ||
        (value.p == NULL && value.len != 0))
        return TD_EINVAL;
    user[0] = '\0';
    pass[0] = '\0';

    v = http__trim(value);
    while (i < v.len && http__is_tchar((unsigned char)v.p[i]))
        i++;
    if (i == 0)
        return TD_EPROTO;
    if (!http__ieq(v.p, i, "Basic", 5))
        return TD_EUNSUPPORTED;
    if (i == v.len || v.p[i] != ' ')
        return TD_EPROTO;
    cred.p = v.p + i;
    cred.len = v.len - i;
    cred = http__trim(cred);
    if (cred.len == 0)
        return TD_EPROTO;

    rc = td_base64_decode(cred.p, cred.len, raw, sizeof(raw), &rawlen);
    if (rc == TD_ETOOBIG)
        return TD_ETOOBIG;
    if (rc != 0)
        return TD_EPROTO;
    /* The user-id cannot contain a colon (RFC 7617 2), so split at the
     * first one; the password may contain more. */
    colon = memchr(raw, ':', rawlen);
    if (colon == NULL)
        return TD_EPROTO;
    ulen = (size_t)(colon - raw);
    /* NULs would cut the C strings short and make two different credentials
     * compare equal; user-ids may not hold control characters at all. */
    if (memchr(raw, '\0', rawlen) != NULL)
        return TD_EPROTO;
    for (size_t k = 0; k < ulen; k++)
        if (raw[k] < 0x20 || raw[k] == 0x7f)
            return TD_EPROTO;
    if (ulen >= ucap || rawlen - ulen - 1 >= pcap)
        return TD_ETOOBIG;
    memcpy(user, raw, ulen);
    user[ulen] = '\0';
    memcpy(pass, colon + 1, rawlen - ulen - 1);
    pass[rawlen - ulen - 1] = '\0';
    return 0;
}

/* ---- body framing -------------------------------------------------------- */

/* Content-Length: 1*DIGIT, at most 2^62. */
static int http__parse_content_length(struct http_slice v, uint64_t *out)
{
    uint64_t n = 0;

    if (v.len == 0)
        return TD_EPROTO;
    for (size_t i = 0; i < v.len; i++) {
        if (!http__is_digit((unsigned char)v.p[i]))
            return TD_EPROTO;
        n = n * 10 + (uint64_t)(v.p[i] - '0');
        if (n > HTTP_MAX_CONTENT_LENGTH)
            return TD_EPROTO;
    }
    *out = n;
    return 0;
}

int http_body_init(struct http_body *b, const struct http_request *req)
{
    bool have_te = false, te_any = false, have_cl = false, chunked_last = false;
    uint64_t cl = 0;
    int rc;

    if (b == NULL || req == NULL || req->n_headers > HTTP_MAX_HEADERS)
        return TD_EINVAL;
    memset(b, 0, sizeof(*b));

    for (size_t i = 0; i < req->n_headers; i++) {
        const struct http_header *h = &req->headers[i];

        if (http__slice_ieq(h->name, "Transfer-Encoding")) {
            struct http__list_iter it = {h->value};
            struct http_slice e;

            have_te = true;
            while (http__list_next(&it, &e)) {
                /* chunked anywhere but at the very end means the message
                 * was chunked twice, or chunked and then something else:
                 * either way its end cannot be found (RFC 9112 6.3). */
                if (chunked_last)
                    return TD_EPROTO;
                te_any = true;
                chunked_last = http__slice_ieq(e, "chunked");
            }
        } else if (http__slice_ieq(h->name, "Content-Length")) {
            uint64_t v;
            rc = http__parse_content_length(h->value, &v);
            if (rc != 0)
                return rc;
            if (have_cl && v != cl)
                return TD_EPROTO;
            have_cl = true;
            cl = v;
        }
    }

    if (have_te) {
        /* Both framings at once is the classic request smuggling setup, and
         * Transfer-Encoding in HTTP/1.0 cannot be trusted (RFC 9112 6.1). */
        if (have_cl || req->version_minor == 0)
            return TD_EPROTO;
        /* An empty Transfer-Encoding says nothing usable; a coding other
         * than chunked at the end leaves the length unknown (501). */
        if (!chunked_last)
            return te_any ? TD_EUNSUPPORTED : TD_EPROTO;
        b->kind = HTTP_BODY_CHUNKED;
        return 0;
    }
    if (have_cl) {
        b->kind = HTTP_BODY_LENGTH;
        b->remaining = cl;
        b->done = cl == 0;
        return 0;
    }
    b->kind = HTTP_BODY_NONE;
    b->done = true;
    return 0;
}

/* Chunked decoder states. */
enum http__chunk_state {
    HTTP__CH_SIZE = 0, /* hex digits of the chunk size */
    HTTP__CH_SIZE_WS,  /* whitespace after the size, before ';' */
    HTTP__CH_EXT,      /* chunk extension, up to CR */
    HTTP__CH_SIZE_LF,  /* LF ending the size line */
    HTTP__CH_DATA,     /* chunk data */
    HTTP__CH_DATA_CR,  /* CR after the data */
    HTTP__CH_DATA_LF,  /* LF after the data */
    HTTP__CH_TRAILER_START,
    HTTP__CH_TRAILER,
    HTTP__CH_TRAILER_LF,
    HTTP__CH_END_LF, /* LF of the final empty line */
};

/* The chunk framing must end its lines with CRLF.  Bare LF is accepted in
 * the head only: RFC 9112 allows it there, but in chunked framing it is a
 * known source of proxy/origin disagreement. */
static int http__chunked_feed(struct http_body *b, const uint8_t *p, size_t len, size_t *used)
{
    size_t i = 0;

    while (i < len && !b->done) {
        unsigned char c = p[i];
        int h;

        switch (b->state) {
        case HTTP__CH_SIZE:
            h = http__hex_value(c);
            if (h >= 0) {
                /* 2^60 and more cannot be a real chunk, and stopping there
                 * keeps the shift from overflowing. */
                if (b->remaining >> 60 != 0)
                    return TD_EPROTO;
                b->remaining = b->remaining << 4 | (uint64_t)h;
            } else if (b->line_len == 0) {
                return TD_EPROTO; /* no digits */
            } else if (c == ';') {
                b->state = HTTP__CH_EXT;
            } else if (c == ' ' || c == '\t') {
                b->state = HTTP__CH_SIZE_WS;
            } else if (c == '\r') {
                b->state = HTTP__CH_SIZE_LF;
                i++;
                continue;
            } else {
                return TD_EPROTO;
            }
            break;
        case HTTP__CH_SIZE_WS:
            if (c == ';')
                b->state = HTTP__CH_EXT;
            else if (c != ' ' && c != '\t')
                return TD_EPROTO;
            break;
        case HTTP__CH_EXT:
            if (c == '\r') {
                b->state = HTTP__CH_SIZE_LF;
                i++;
                continue;
            }
            if (!http__is_field_char(c))
                return TD_EPROTO;
            break;
        case HTTP__CH_SIZE_LF:
            if (c != '\n')
                return TD_EPROTO;
            b->line_len = 0;
            b->state = b->remaining == 0 ? HTTP__CH_TRAILER_START : HTTP__CH_DATA;
            i++;
            continue;
        case HTTP__CH_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > b->remaining)
                n = (size_t)b->remaining;
            b->remaining -= n;
            i += n;
            if (b->remaining == 0)
                b->state = HTTP__CH_DATA_CR;
            continue;
        }
        case HTTP__CH_DATA_CR:
            if (c != '\r')
                return TD_EPROTO;
            b->state = HTTP__CH_DATA_LF;
            i++;
            continue;
        case HTTP__CH_DATA_LF:
            if (c != '\n')
                return TD_EPROTO;
            b->state = HTTP__CH_SIZE;
            b->line_len = 0;
            i++;
            continue;
        case HTTP__CH_TRAILER_START:
            /* remaining counts the trailer bytes so far. */
            if (c == '\r') {
                b->state = HTTP__CH_END_LF;
                i++;
                continue;
            }
            if (c == ' ' || c == '\t')
                return TD_EPROTO; /* obs-fold in the trailer */
            b->state = HTTP__CH_TRAILER;
            /* fall through */
        case HTTP__CH_TRAILER:
            if (++b->remaining > HTTP_MAX_TRAILERS)
                return TD_EPROTO;
            if (c == '\r') {
                b->state = HTTP__CH_TRAILER_LF;
                i++;
                continue;
            }
            if (!http__is_field_char(c))
                return TD_EPROTO;
            break;
        case HTTP__CH_TRAILER_LF:
            if (c != '\n')
                return TD_EPROTO;
            b->state = HTTP__CH_TRAILER_START;
            b->line_len = 0;
            i++;
            continue;
        case HTTP__CH_END_LF:
            if (c != '\n')
                return TD_EPROTO;
            b->done = true;
            i++;
            continue;
        default:
            return TD_EINVAL;
        }
        /* Size and trailer lines: one more byte of the current line (the
         * CRLF is not counted). */
        if (++b->line_len > HTTP_MAX_CHUNK_LINE)
            return TD_EPROTO;
        i++;
    }
    *used = i;
    return b->done ? 1 : 0;
}

int http_body_feed(struct http_body *b, const uint8_t *p, size_t len, size_t *used)
{
    size_t n;
    int rc;

    if (b == NULL || used == NULL || (p == NULL && len != 0))
        return TD_EINVAL;
    *used = 0;
    if (b->done)
        return 1;
    switch (b->kind) {
    case HTTP_BODY_LENGTH:
        n = len;
        if ((uint64_t)n > b->remaining)
            n = (size_t)b->remaining;
        b->remaining -= n;
        *used = n;
        b->done = b->remaining == 0;
        return b->done ? 1 : 0;
    case HTTP_BODY_CHUNKED:
        rc = http__chunked_feed(b, p, len, &n);
        if (rc < 0)
            return rc;
        *used = n;
        return rc;
    default:
        b->done = true;
        return 1;
    }
}
