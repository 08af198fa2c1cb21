/* Fuzz the HTTP codec the way the proxy front-end uses it: parse a request
 * head (at once, and in pieces through the incremental scan), take its
 * target apart, build the origin request into a bounded
 * buffer, and frame the body from the bytes after the head in pieces whose
 * sizes come from the input.  The same input is also tried as a response
 * head and as error-page detail text.  Invariants are checked with
 * __builtin_trap. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/error.h"
#include "proto/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static struct http_request req, req2;
static struct http_response resp, resp2;
static char out[8192];

static bool slice_inside(struct http_slice s, const char *buf, size_t len)
{
    return s.p >= buf && s.len <= len && (size_t)(s.p - buf) <= len - s.len;
}

/* A rewritten head must parse again, without any hop-by-hop header and
 * with exactly one "Connection: close". */
static void check_rewritten(const struct http_header *h, size_t n)
{
    const struct http_header *c = http_find_header(h, n, "Connection");
    size_t count = 0;

    CHECK(c != NULL && c->value.len == 5 && memcmp(c->value.p, "close", 5) == 0);
    for (size_t i = 0; i < n; i++)
        if (h[i].name.len == 10 && memcmp(h[i].name.p, "Connection", 10) == 0)
            count++;
    CHECK(count == 1);
    CHECK(http_find_header(h, n, "Proxy-Authorization") == NULL);
    CHECK(http_find_header(h, n, "Proxy-Connection") == NULL);
    CHECK(http_find_header(h, n, "Keep-Alive") == NULL);
    CHECK(http_find_header(h, n, "Upgrade") == NULL);
}

static void check_request_target(const char *buf)
{
    struct http_authority a;
    struct http_uri u;
    int rc, n;

    rc = http_parse_authority(req.target, 0, &a);
    CHECK(rc == 0 || rc == TD_EPROTO);
    if (rc == 0)
        CHECK(a.port != 0 && strlen(a.host) > 0);

    rc = http_parse_absolute_uri(req.target, &u);
    CHECK(rc == 0 || rc == TD_EPROTO || rc == TD_EUNSUPPORTED);
    if (rc != 0)
        return;
    CHECK(u.authority.port != 0 && u.path_and_query.len > 0);
    CHECK(u.needs_slash ? u.path_and_query.p[0] == '?' : u.path_and_query.p[0] == '/');

    /* The bounded buffer is either big enough or the builder says so, and
     * a cap of zero never writes. */
    CHECK(http_build_origin_request(&req, &u, NULL, 0) == TD_ETOOBIG);
    n = http_build_origin_request(&req, &u, out, sizeof(out));
    CHECK(n > 0 || n == TD_ETOOBIG);
    if (n <= 0)
        return;
    CHECK(http_build_origin_request(&req, &u, out, (size_t)n - 1) == TD_ETOOBIG);
    CHECK(http_build_origin_request(&req, &u, out, (size_t)n) == n);
    /* It parses again (unless it now has too many headers), as HTTP/1.1,
     * and all of it is head. */
    rc = http_parse_request(out, (size_t)n, sizeof(out), &req2);
    CHECK(rc == 0 || rc == TD_ETOOBIG);
    if (rc != 0)
        return;
    CHECK(req2.head_len == (size_t)n && req2.version_minor == 1);
    CHECK(req2.method.len == req.method.len &&
          memcmp(req2.method.p, req.method.p, req.method.len) == 0);
    CHECK(req2.target.p[0] == '/');
    CHECK(http_find_header(req2.headers, req2.n_headers, "Host") != NULL);
    check_rewritten(req2.headers, req2.n_headers);
    (void)buf;
}

/* Frame the body from the rest of the input twice: in one go, and in
 * pieces; both must agree, and nothing past the body may be taken. */
static void check_body(const uint8_t *data, size_t size, const uint8_t *rest, size_t rlen)
{
    struct http_body b1, b2;
    size_t used1 = 0, total2 = 0, off = 0, k = 0;
    int rc1, rc2 = 0;

    rc1 = http_body_init(&b1, &req);
    CHECK(rc1 == 0 || rc1 == TD_EPROTO || rc1 == TD_EUNSUPPORTED);
    if (rc1 != 0)
        return;
    b2 = b1;
    rc1 = http_body_feed(&b1, rest, rlen, &used1);
    CHECK(rc1 == 0 || rc1 == 1 || rc1 == TD_EPROTO);
    CHECK(used1 <= rlen);

    while (off < rlen) {
        size_t piece = size ? (size_t)(data[k++ % size] % 23) + 1 : 1;
        size_t u = 0;
        if (piece > rlen - off)
            piece = rlen - off;
        rc2 = http_body_feed(&b2, rest + off, piece, &u);
        if (rc2 < 0)
            break;
        CHECK(u <= piece);
        total2 += u;
        off += piece;
        if (rc2 == 1) {
            CHECK(u <= piece);
            break;
        }
        CHECK(u == piece); /* an unfinished body takes everything */
    }
    if (rlen == 0)
        rc2 = http_body_feed(&b2, rest, 0, &total2);
    if (rc1 == TD_EPROTO) {
        CHECK(rc2 == TD_EPROTO);
        return;
    }
    CHECK(rc2 == rc1);
    CHECK(total2 == used1);
    if (rc1 == 1) {
        size_t u = 1;
        CHECK(http_body_feed(&b1, rest, rlen, &u) == 1 && u == 0);
    }
}

/* The same input arriving in pieces (sizes from the input) through the
 * incremental entry point: it may say TD_EAGAIN where the parser already
 * sees an error, but whatever else it returns is the parser's answer for
 * that prefix, and it finds a complete head exactly when it arrives.
 * full_rc and head_len are the parser's answer for the whole input. */
static void check_incremental(const uint8_t *data, size_t size, int full_rc, size_t head_len)
{
    static struct http_request inc, cmp;
    const char *buf = (const char *)data;
    size_t scanned = 0, off = 0, k = 0, once = 0;
    int rc = TD_EAGAIN;

    while (off < size) {
        size_t piece = (size_t)(data[k++ % size] % 7) + 1;
        if (piece > size - off)
            piece = size - off;
        off += piece;
        rc = http_parse_request_scan(buf, off, HTTP_DEFAULT_MAX_HEAD, &scanned, &inc);
        CHECK(scanned <= off);
        if (rc == TD_EAGAIN)
            continue;
        CHECK(rc == http_parse_request(buf, off, HTTP_DEFAULT_MAX_HEAD, &cmp));
        if (rc == 0) {
            CHECK(inc.head_len == cmp.head_len && off - piece < inc.head_len);
            /* Found once, found again. */
            CHECK(http_parse_request_scan(buf, off, HTTP_DEFAULT_MAX_HEAD, &scanned, &inc) == 0);
            CHECK(inc.head_len == cmp.head_len);
        }
        break;
    }
    if (full_rc == 0) {
        CHECK(rc == 0 && inc.head_len == head_len);
        CHECK(http_head_scan(buf, size, &once) == head_len);
    }
    if (full_rc == TD_EAGAIN)
        CHECK(rc == TD_EAGAIN);
}

static void check_request(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    int rc = http_parse_request(buf, size, HTTP_DEFAULT_MAX_HEAD, &req);

    check_incremental(data, size, rc, rc == 0 ? req.head_len : 0);

    CHECK(rc == 0 || rc == TD_EAGAIN || rc == TD_EPROTO || rc == TD_ETOOBIG ||
          rc == TD_EUNSUPPORTED);
    if (rc != 0)
        return;
    CHECK(req.head_len <= size && req.n_headers <= HTTP_MAX_HEADERS);
    CHECK(slice_inside(req.method, buf, req.head_len));
    CHECK(slice_inside(req.target, buf, req.head_len));
    for (size_t i = 0; i < req.n_headers; i++) {
        CHECK(slice_inside(req.headers[i].name, buf, req.head_len));
        CHECK(slice_inside(req.headers[i].value, buf, req.head_len));
        CHECK(req.headers[i].name.len > 0);
    }
    /* One byte less is never a whole head. */
    rc = http_parse_request(buf, req.head_len - 1, HTTP_DEFAULT_MAX_HEAD, &req2);
    CHECK(rc != 0);

    for (size_t i = 0; i < req.n_headers; i++) {
        char user[64], pass[64];
        rc = http_parse_basic_auth(req.headers[i].value, user, sizeof(user), pass, sizeof(pass));
        CHECK(rc == 0 || rc == TD_EPROTO || rc == TD_EUNSUPPORTED || rc == TD_ETOOBIG);
        if (rc == 0)
            CHECK(strlen(user) < sizeof(user) && strlen(pass) < sizeof(pass));
    }
    check_request_target(buf);
    check_body(data, size, data + req.head_len, size - req.head_len);
}

static void check_response(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    int rc = http_parse_response(buf, size, HTTP_DEFAULT_MAX_HEAD, &resp);
    int n;

    CHECK(rc == 0 || rc == TD_EAGAIN || rc == TD_EPROTO || rc == TD_ETOOBIG ||
          rc == TD_EUNSUPPORTED);
    if (rc != 0)
        return;
    CHECK(resp.head_len <= size && resp.status >= 100 && resp.status <= 999);
    n = http_build_client_response(&resp, out, sizeof(out));
    CHECK(n > 0 || n == TD_ETOOBIG);
    if (n <= 0)
        return;
    rc = http_parse_response(out, (size_t)n, sizeof(out), &resp2);
    CHECK(rc == 0 || rc == TD_ETOOBIG);
    if (rc != 0)
        return;
    CHECK(resp2.head_len == (size_t)n && resp2.status == resp.status);
    check_rewritten(resp2.headers, resp2.n_headers);
}

static void check_error_page(const uint8_t *data, size_t size)
{
    char detail[512];
    size_t dlen = size < sizeof(detail) - 1 ? size : sizeof(detail) - 1;
    const struct http_header *cl;
    int status = size ? 100 + data[0] % 500 : 500;
    int n, rc;
    uint64_t v = 0;

    memcpy(detail, data, dlen);
    detail[dlen] = '\0';
    n = http_build_error(status, detail, NULL, out, sizeof(out));
    CHECK(n > 0);
    rc = http_parse_response(out, (size_t)n, sizeof(out), &resp2);
    CHECK(rc == 0 && resp2.status == status);
    cl = http_find_header(resp2.headers, resp2.n_headers, "Content-Length");
    CHECK(cl != NULL);
    for (size_t i = 0; i < cl->value.len; i++)
        v = v * 10 + (uint64_t)(cl->value.p[i] - '0');
    CHECK(v == (size_t)n - resp2.head_len);
    /* The detail is escaped: no tag from the input survives. */
    CHECK(memchr(out + resp2.head_len, '"', (size_t)n - resp2.head_len) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_request(data, size);
    check_response(data, size);
    check_error_page(data, size);
    return 0;
}
