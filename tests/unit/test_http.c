/* HTTP/1.x codec: heads, authorities and URIs, rewritten heads, error pages,
 * Basic auth and body framing, including every split of the input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/error.h"
#include "proto/http.h"

static struct http_slice S(const char *s) {
    struct http_slice sl = {s, strlen(s)};
    return sl;
}

static void
assert_slice(struct http_slice s, const char *want)
{
    if (s.len != strlen(want) || memcmp(s.p, want, s.len) != 0)
        fail_msg("slice \"%.*s\" != \"%s\"", (int)s.len, s.p, want);
}

static int parse_req(const char *s, struct http_request *r)
{
    return http_parse_request(s, strlen(s), HTTP_DEFAULT_MAX_HEAD, r);
}

static int parse_resp(const char *s, struct http_response *r)
{
    return http_parse_response(s, strlen(s), HTTP_DEFAULT_MAX_HEAD, r);
}

/* Every proper prefix of a head gives TD_EAGAIN; the whole head parses with
 * head_len equal to its length, also when body bytes follow. */
static void check_request_prefixes(const char *head, struct http_request *r)
{
    size_t len = strlen(head);
    char *buf = malloc(len + 8);

    assert_non_null(buf);
    memcpy(buf, head, len);
    memcpy(buf + len, "BODYBODY", 8);
    for (size_t k = 0; k < len; k++) {
        int rc = http_parse_request(buf, k, HTTP_DEFAULT_MAX_HEAD, r);
        if (rc != TD_EAGAIN)
            fail_msg("prefix %zu of %zu: %s", k, len, td_err_name(rc));
    }
    assert_int_equal(http_parse_request(buf, len + 8, HTTP_DEFAULT_MAX_HEAD, r), 0);
    assert_int_equal(r->head_len, len);
    free(buf);
    /* Last, parse the caller's string, which the slices may point into. */
    assert_int_equal(http_parse_request(head, len, HTTP_DEFAULT_MAX_HEAD, r), 0);
    assert_int_equal(r->head_len, len);
}

static void check_response_prefixes(const char *head, struct http_response *r)
{
    size_t len = strlen(head);

    for (size_t k = 0; k < len; k++) {
        int rc = http_parse_response(head, k, HTTP_DEFAULT_MAX_HEAD, r);
        if (rc != TD_EAGAIN)
            fail_msg("prefix %zu of %zu: %s", k, len, td_err_name(rc));
    }
    assert_int_equal(http_parse_response(head, len, HTTP_DEFAULT_MAX_HEAD, r), 0);
    assert_int_equal(r->head_len, len);
}

/* ---- request heads ------------------------------------------------------- */

static void test_request_get(void **state)
{
    static const char head[] = "GET http://example.com/a/b?x=1&y=%20#frag HTTP/1.1\r\n"
                               "Host: example.com\r\n"
                               "User-Agent:   curl/8.0  \r\n"
                               "Accept:*/*\r\n"
                               "X-Empty:\r\n"
                               "\r\n";
    struct http_request r;
    (void)state;
    check_request_prefixes(head, &r);
    assert_slice(r.method, "GET");
    assert_slice(r.target, "http://example.com/a/b?x=1&y=%20#frag");
    assert_int_equal(r.version_minor, 1);
    assert_int_equal(r.n_headers, 4);
    assert_slice(r.headers[0].name, "Host");
    assert_slice(r.headers[0].value, "example.com");
    assert_slice(r.headers[1].value, "curl/8.0");
    assert_slice(r.headers[2].name, "Accept");
    assert_slice(r.headers[2].value, "*/*");
    assert_slice(r.headers[3].value, "");
}

static void test_request_connect(void **state)
{
    static const char head[] = "CONNECT example.com:443 HTTP/1.1\r\n"
                               "Host: example.com:443\r\n"
                               "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"
                               "\r\n";
    struct http_request r;
    struct http_authority a;
    (void)state;
    check_request_prefixes(head, &r);
    assert_slice(r.method, "CONNECT");
    assert_slice(r.target, "example.com:443");
    assert_int_equal(http_parse_authority(r.target, 0, &a), 0);
    assert_string_equal(a.host, "example.com");
    assert_int_equal(a.port, 443);
}

static void test_request_connect_ipv6(void **state)
{
    struct http_request r;
    struct http_authority a;
    (void)state;
    assert_int_equal(parse_req("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n", &r), 0);
    assert_int_equal(http_parse_authority(r.target, 0, &a), 0);
    assert_string_equal(a.host, "2001:db8::1");
    assert_int_equal(a.port, 8443);
}

static void test_request_bare_lf(void **state)
{
    static const char head[] = "GET / HTTP/1.0\nHost: h\r\nA: b\n\n";
    struct http_request r;
    (void)state;
    check_request_prefixes(head, &r);
    assert_int_equal(r.version_minor, 0);
    assert_int_equal(r.n_headers, 2);
    assert_slice(r.headers[0].value, "h");
    assert_slice(r.headers[1].value, "b");
    /* Blank line as bare LF after CRLF lines. */
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nA: b\r\n\n", &r), 0);
    assert_int_equal(r.head_len, strlen("GET / HTTP/1.1\r\nA: b\r\n\n"));
}

static void test_request_leading_empty_lines(void **state)
{
    static const char head[] = "\r\n\nGET / HTTP/1.1\r\n\r\n";
    struct http_request r;
    (void)state;
    check_request_prefixes(head, &r);
    assert_slice(r.method, "GET");
    assert_int_equal(r.n_headers, 0);
}

static void test_request_versions(void **state)
{
    struct http_request r;
    (void)state;
    assert_int_equal(parse_req("GET / HTTP/2.0\r\n\r\n", &r), TD_EUNSUPPORTED);
    assert_int_equal(parse_req("GET / HTTP/0.9\r\n\r\n", &r), TD_EUNSUPPORTED);
    assert_int_equal(parse_req("GET / HTTP/1.2\r\n\r\n", &r), TD_EUNSUPPORTED);
    assert_int_equal(parse_req("GET / HTTP/1.1x\r\n\r\n", &r), TD_EPROTO);
    assert_int_equal(parse_req("GET / http/1.1\r\n\r\n", &r), TD_EPROTO);
    assert_int_equal(parse_req("GET / HTTP/1\r\n\r\n", &r), TD_EPROTO);
    assert_int_equal(parse_req("GET / HTTP/11.1\r\n\r\n", &r), TD_EPROTO);
    assert_int_equal(parse_req("GET / HTTP/1.1 \r\n\r\n", &r), TD_EPROTO);
    assert_int_equal(parse_req("GET /\r\n\r\n", &r), TD_EPROTO);
    assert_int_equal(parse_req("GET / garbage\r\n\r\n", &r), TD_EPROTO);
}

static void test_request_invalid_lines(void **state)
{
    static const char *const bad[] = {
        "GET  / HTTP/1.1\r\n\r\n",     /* two spaces */
        "GET /  HTTP/1.1\r\n\r\n",     /* two spaces */
        " GET / HTTP/1.1\r\n\r\n",     /* leading space */
        "GET\t/ HTTP/1.1\r\n\r\n",     /* tab separator */
        "G(T / HTTP/1.1\r\n\r\n",      /* non-tchar in method */
        "GET /a\x01 HTTP/1.1\r\n\r\n", /* CTL in target */
        "GET /a\x7f HTTP/1.1\r\n\r\n", /* DEL in target */
        "GET /a\rb HTTP/1.1\r\n\r\n",  /* bare CR in target */
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\n: novalue\r\n\r\n",
        "GET / HTTP/1.1\r\nA\x01: b\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",
        "GET / HTTP/1.1\r\nA(b): c\r\n\r\n",
        "GET / HTTP/1.1\r\nA b: c\r\n\r\n",
    };
    struct http_request r;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_req(bad[i], &r);
        if (rc != TD_EPROTO)
            fail_msg("case %zu: %s", i, td_err_name(rc));
    }
    /* A NUL inside a header value. */
    assert_int_equal(
        http_parse_request("GET / HTTP/1.1\r\nA: \0\r\n\r\n", 24, HTTP_DEFAULT_MAX_HEAD, &r),
        TD_EPROTO);
    /* A method of 32 characters is fine, 33 is not. */
    assert_int_equal(parse_req("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA / HTTP/1.1\r\n\r\n", &r), 0);
    assert_int_equal(parse_req("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA / HTTP/1.1\r\n\r\n", &r),
                     TD_EPROTO);
    /* Obs-text in a header value is allowed. */
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nA: caf\xc3\xa9\r\n\r\n", &r), 0);
}

static void test_request_early_reject(void **state)
{
    /* A TLS ClientHello or other binary is refused before a line ends. */
    const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    struct http_request r;
    (void)state;
    assert_int_equal(http_parse_request(tls, sizeof(tls) - 1, HTTP_DEFAULT_MAX_HEAD, &r),
                     TD_EPROTO);
    assert_int_equal(http_parse_request("GE(", 3, HTTP_DEFAULT_MAX_HEAD, &r), TD_EPROTO);
    assert_int_equal(http_parse_request("GET", 3, HTTP_DEFAULT_MAX_HEAD, &r), TD_EAGAIN);
    assert_int_equal(http_parse_request("GET /", 5, HTTP_DEFAULT_MAX_HEAD, &r), TD_EAGAIN);
    assert_int_equal(http_parse_request("", 0, HTTP_DEFAULT_MAX_HEAD, &r), TD_EAGAIN);
    /* A bad request line is reported before the headers are complete. */
    assert_int_equal(http_parse_request("GET / HTTP/9.9\r\nHost", 20, HTTP_DEFAULT_MAX_HEAD, &r),
                     TD_EUNSUPPORTED);
}

/* The end-of-head scan finds where the parser stops, whatever the line
 * ends and leading empty lines, byte by byte as well as at once. */
static void test_head_scan_matches_parser(void **state)
{
    static const char *const heads[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n",
        "GET / HTTP/1.1\nHost: x\n\n",
        "GET / HTTP/1.1\r\nHost: x\n\r\n",
        "GET / HTTP/1.1\nHost: x\r\n\n",
        "\r\n\nGET / HTTP/1.1\r\n\r\n",
        "\n\r\n\r\n\nCONNECT h:1 HTTP/1.0\nX: y\n\r\n",
        "POST /p HTTP/1.1\r\nContent-Length: 4\r\n\r\n",
    };
    struct http_request r;
    (void)state;

    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        size_t len = strlen(heads[i]), scanned = 0, once = 0;
        char buf[128];

        assert_true(len + 8 < sizeof(buf));
        memcpy(buf, heads[i], len);
        memcpy(buf + len, "BODY\r\n\r\n", 8); /* a body that looks like a blank line */
        assert_int_equal(http_parse_request(buf, len + 8, 0, &r), 0);
        assert_int_equal(r.head_len, len);
        assert_int_equal(http_head_scan(buf, len + 8, &once), len);
        for (size_t k = 1; k <= len + 8; k++) {
            size_t end = http_head_scan(buf, k, &scanned);
            if (k < len && end != 0)
                fail_msg("head %zu: an end at %zu after %zu bytes", i, end, k);
            if (k >= len && end != len)
                fail_msg("head %zu: end %zu after %zu bytes, want %zu", i, end, k, len);
        }
    }
}

static void test_head_scan_no_end(void **state)
{
    static const char *const open_heads[] = {
        "",
        "\r\n\r\n\n\r\n", /* only leading empty lines */
        "GET / HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r",
        "GET / HTTP/1.1\r\n\r\r\n", /* "\r\r" is not an empty line */
        "GET / HTTP/1.1\r\nX: \r\n \r\n",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(open_heads) / sizeof(open_heads[0]); i++) {
        size_t scanned = 0, len = strlen(open_heads[i]);
        assert_int_equal(http_head_scan(open_heads[i], len, &scanned), 0);
        assert_int_equal(scanned, len);
    }
}

static void test_parse_request_scan(void **state)
{
    static const char head[] = "GET http://h/ HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\nrest";
    const size_t hlen = sizeof(head) - 1 - 4;
    const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    char big[300];
    struct http_request r;
    size_t scanned = 0, n;
    (void)state;

    /* Byte by byte: TD_EAGAIN until the blank line, then the parse. */
    for (size_t k = 0; k < hlen; k++)
        assert_int_equal(http_parse_request_scan(head, k, 0, &scanned, &r), TD_EAGAIN);
    assert_int_equal(http_parse_request_scan(head, hlen, 0, &scanned, &r), 0);
    assert_int_equal(r.head_len, hlen);
    assert_slice(r.target, "http://h/");
    assert_int_equal(http_parse_request_scan(head, sizeof(head) - 1, 0, &scanned, &r), 0);
    assert_int_equal(r.head_len, hlen);

    /* What cannot begin a request is refused at once. */
    scanned = 0;
    assert_int_equal(http_parse_request_scan(tls, sizeof(tls) - 1, 0, &scanned, &r), TD_EPROTO);
    scanned = 0;
    assert_int_equal(http_parse_request_scan("GET", 3, 0, &scanned, &r), TD_EAGAIN);
    assert_int_equal(http_parse_request_scan("GE(", 3, 0, &scanned, &r), TD_EPROTO);

    /* Later errors wait for the end of the head (or its limit). */
    n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nGood: %070d\r\nBad Header: x\r\n", 0);
    memset(big + n, 'a', sizeof(big) - n);
    scanned = 0;
    for (size_t k = 1; k <= n + 20; k++)
        assert_int_equal(http_parse_request_scan(big, k, 200, &scanned, &r), TD_EAGAIN);
    assert_int_equal(http_parse_request_scan(big, 200, 200, &scanned, &r), TD_EAGAIN);
    assert_int_equal(http_parse_request_scan(big, 201, 200, &scanned, &r), TD_EPROTO);
    memcpy(big + n, "\r\n", 2);
    scanned = 0;
    assert_int_equal(http_parse_request_scan(big, 100, 200, &scanned, &r), TD_EAGAIN);
    assert_int_equal(http_parse_request_scan(big, n + 2, 200, &scanned, &r), TD_EPROTO);
    /* A head that never ends is too big once it passes the limit. */
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nGood: x", 24);
    scanned = 0;
    assert_int_equal(http_parse_request_scan(big, 100, 200, &scanned, &r), TD_EAGAIN);
    assert_int_equal(http_parse_request_scan(big, 200, 200, &scanned, &r), TD_EAGAIN);
    assert_int_equal(http_parse_request_scan(big, 201, 200, &scanned, &r), TD_ETOOBIG);

    /* Bad arguments. */
    scanned = 5;
    assert_int_equal(http_parse_request_scan("GET", 3, 0, &scanned, &r), TD_EINVAL);
    assert_int_equal(http_parse_request_scan("GET", 3, 0, NULL, &r), TD_EINVAL);
}

static void test_header_ws_before_colon(void **state)
{
    struct http_request r;
    (void)state;
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost : x\r\n\r\n", &r), TD_EPROTO);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nContent-Length\t: 5\r\n\r\n", &r), TD_EPROTO);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost:x\r\n\r\n", &r), 0);
    assert_slice(r.headers[0].value, "x");
}

static void test_obs_fold(void **state)
{
    struct http_request r;
    struct http_response resp;
    (void)state;
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", &r), TD_EPROTO);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", &r), TD_EPROTO);
    /* Whitespace before the first header is refused too. */
    assert_int_equal(parse_req("GET / HTTP/1.1\r\n Host: x\r\n\r\n", &r), TD_EPROTO);
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", &resp), TD_EPROTO);
}

static void test_oversize_head(void **state)
{
    char buf[256];
    struct http_request r;
    size_t len;
    (void)state;
    len = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX: %0100d\r\n\r\n", 0);
    /* Exactly max_head: fine.  One byte less: too big. */
    assert_int_equal(http_parse_request(buf, len, len, &r), 0);
    assert_int_equal(http_parse_request(buf, len, len - 1, &r), TD_ETOOBIG);
    /* Incomplete: TD_EAGAIN up to max_head bytes, then TD_ETOOBIG. */
    assert_int_equal(http_parse_request(buf, 40, 40, &r), TD_EAGAIN);
    assert_int_equal(http_parse_request(buf, 41, 40, &r), TD_ETOOBIG);
    /* A head that never ends. */
    memset(buf, 'A', sizeof(buf));
    memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(http_parse_request(buf, sizeof(buf), 128, &r), TD_ETOOBIG);
    /* A request line that never ends. */
    memcpy(buf, "GET /", 5);
    assert_int_equal(http_parse_request(buf, sizeof(buf), 128, &r), TD_ETOOBIG);
    assert_int_equal(http_parse_request(buf, 128, 128, &r), TD_EAGAIN);
}

static void test_target_too_long(void **state)
{
    size_t tlen = 8 * 1024;
    char *buf = malloc(tlen + 64);
    struct http_request r;
    size_t n;
    (void)state;
    assert_non_null(buf);
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', tlen - 1);
    n = 5 + tlen - 1;
    memcpy(buf + n, " HTTP/1.1\r\n\r\n", 13);
    assert_int_equal(http_parse_request(buf, n + 13, HTTP_DEFAULT_MAX_HEAD, &r), 0);
    assert_int_equal(r.target.len, tlen);
    memcpy(buf, "GET //", 6);
    buf[n] = 'a';
    memcpy(buf + n + 1, " HTTP/1.1\r\n\r\n", 13);
    assert_int_equal(http_parse_request(buf, n + 14, HTTP_DEFAULT_MAX_HEAD, &r), TD_ETOOBIG);
    free(buf);
}

static void test_too_many_headers(void **state)
{
    char *buf = malloc(16 * 1024);
    struct http_request r;
    size_t n = 0;
    (void)state;
    assert_non_null(buf);
    n += (size_t)snprintf(buf + n, 100, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(buf + n, 100, "H%d: v\r\n", i);
    memcpy(buf + n, "\r\n", 2);
    assert_int_equal(http_parse_request(buf, n + 2, HTTP_DEFAULT_MAX_HEAD, &r), 0);
    assert_int_equal(r.n_headers, HTTP_MAX_HEADERS);
    assert_slice(r.headers[99].name, "H99");
    n += (size_t)snprintf(buf + n, 100, "One: more\r\n\r\n");
    assert_int_equal(http_parse_request(buf, n, HTTP_DEFAULT_MAX_HEAD, &r), TD_ETOOBIG);
    free(buf);
}

/* ---- response heads ------------------------------------------------------ */

static void test_response(void **state)
{
    static const char head[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 5\r\n"
                               "\r\n";
    struct http_response r;
    (void)state;
    check_response_prefixes(head, &r);
    assert_int_equal(r.version_minor, 1);
    assert_int_equal(r.status, 200);
    assert_slice(r.reason, "OK");
    assert_int_equal(r.n_headers, 2);
    assert_slice(r.headers[1].value, "5");

    check_response_prefixes("HTTP/1.0 404 Not  Found here\n\n", &r);
    assert_int_equal(r.version_minor, 0);
    assert_int_equal(r.status, 404);
    assert_slice(r.reason, "Not  Found here");

    /* Empty reason, with and without the space. */
    assert_int_equal(parse_resp("HTTP/1.1 204 \r\n\r\n", &r), 0);
    assert_int_equal(r.status, 204);
    assert_slice(r.reason, "");
    assert_int_equal(parse_resp("HTTP/1.1 204\r\n\r\n", &r), 0);
    assert_slice(r.reason, "");
}

static void test_response_bad(void **state)
{
    static const char *const bad[] = {
        "HTTP/1.1 20 OK\r\n\r\n",      "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n",     "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n",     "HTTP/1.1\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n", "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
    };
    struct http_response r;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_resp(bad[i], &r);
        if (rc != TD_EPROTO)
            fail_msg("case %zu: %s", i, td_err_name(rc));
    }
    assert_int_equal(parse_resp("HTTP/2.0 200 OK\r\n\r\n", &r), TD_EUNSUPPORTED);
    /* Refused at once when it cannot be HTTP. */
    assert_int_equal(http_parse_response("SSH-2.0", 7, HTTP_DEFAULT_MAX_HEAD, &r), TD_EPROTO);
    assert_int_equal(http_parse_response("HTT", 3, HTTP_DEFAULT_MAX_HEAD, &r), TD_EAGAIN);
    assert_int_equal(http_parse_response("HTTP/1.1 200 OK\r\n", 17, 10, &r), TD_ETOOBIG);
}

/* ---- helpers ------------------------------------------------------------- */

static void test_find_header_and_tokens(void **state)
{
    struct http_request r;
    const struct http_header *h;
    (void)state;
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nhost: a\r\nHOST: b\r\n"
                               "Connection: keep-alive , X-Foo,,Upgrade\r\n\r\n",
                               &r),
                     0);
    h = http_find_header(r.headers, r.n_headers, "Host");
    assert_non_null(h);
    assert_slice(h->value, "a");
    assert_null(http_find_header(r.headers, r.n_headers, "Hos"));
    assert_null(http_find_header(r.headers, r.n_headers, "Hostt"));
    h = http_find_header(r.headers, r.n_headers, "connection");
    assert_non_null(h);
    assert_true(http_has_token(h->value, "Keep-Alive"));
    assert_true(http_has_token(h->value, "x-foo"));
    assert_true(http_has_token(h->value, "upgrade"));
    assert_false(http_has_token(h->value, "close"));
    assert_false(http_has_token(h->value, "keep"));
    assert_false(http_has_token(h->value, ""));
    assert_true(http_has_token(S("gzip;q=1, chunked"), "gzip"));
    assert_true(http_has_token(S("chunked"), "CHUNKED"));
    assert_false(http_has_token(S("xchunked"), "chunked"));
}

static void test_authority(void **state)
{
    struct http_authority a;
    char big[300];
    (void)state;
    assert_int_equal(http_parse_authority(S("example.com:443"), 0, &a), 0);
    assert_string_equal(a.host, "example.com");
    assert_int_equal(a.port, 443);
    assert_int_equal(http_parse_authority(S("1.2.3.4:1"), 0, &a), 0);
    assert_string_equal(a.host, "1.2.3.4");
    assert_int_equal(a.port, 1);
    assert_int_equal(http_parse_authority(S("[::1]:65535"), 0, &a), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 65535);
    assert_int_equal(http_parse_authority(S("[::ffff:10.0.0.1]:80"), 0, &a), 0);
    assert_string_equal(a.host, "::ffff:10.0.0.1");
    assert_int_equal(http_parse_authority(S("[1:2:3:4:5:6:7:8]:80"), 0, &a), 0);
    assert_int_equal(http_parse_authority(S("[1::]:80"), 0, &a), 0);
    /* Default port. */
    assert_int_equal(http_parse_authority(S("example.com"), 80, &a), 0);
    assert_int_equal(a.port, 80);
    assert_int_equal(http_parse_authority(S("[2001:db8::2]"), 8080, &a), 0);
    assert_string_equal(a.host, "2001:db8::2");
    assert_int_equal(a.port, 8080);
    assert_int_equal(http_parse_authority(S("example.com:"), 80, &a), 0);
    assert_int_equal(a.port, 80);

    static const char *const bad[] = {
        "example.com", /* port required without a default */
        "example.com:",
        "example.com:0",
        "example.com:65536",
        "example.com:99999999999",
        "example.com:-1",
        "example.com:+1",
        "example.com:1x",
        ":443",
        "",
        "ex ample.com:443",
        "ex\x01.com:443",
        "user@example.com:443",
        "example.com/:443",
        "example.com/x:443",
        "a:1:2",
        "::1:443",
        "[::1]",
        "[::1]443",
        "[::1:443",
        "[]:443",
        "[::1::2]:443",
        "[1:2:3:4:5:6:7:8:9]:443",
        "[1:2:3:4:5:6:7]:443",
        "[12345::]:443",
        "[::g]:443",
        "[fe80::1%eth0]:443",
        "[::ffff:1.2.3]:443",
        "[::ffff:1.2.3.256]:443",
        "[1.2.3.4]:443",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = http_parse_authority(S(bad[i]), 0, &a);
        if (rc != TD_EPROTO)
            fail_msg("case %zu (%s): %s", i, bad[i], td_err_name(rc));
    }
    assert_int_equal(http_parse_authority(S("[::1]x"), 80, &a), TD_EPROTO);
    /* 255 bytes of host fit, 256 do not. */
    memset(big, 'a', sizeof(big));
    memcpy(big + 255, ":1", 3);
    assert_int_equal(http_parse_authority(S(big), 0, &a), 0);
    assert_int_equal(strlen(a.host), 255);
    memset(big, 'a', sizeof(big));
    memcpy(big + 256, ":1", 3);
    assert_int_equal(http_parse_authority(S(big), 0, &a), TD_EPROTO);
}

static void test_absolute_uri(void **state)
{
    struct http_uri u;
    (void)state;
    assert_int_equal(http_parse_absolute_uri(S("http://example.com/a/b?x=1&y=%2F&z"), &u), 0);
    assert_string_equal(u.authority.host, "example.com");
    assert_int_equal(u.authority.port, 80);
    assert_slice(u.path_and_query, "/a/b?x=1&y=%2F&z");
    assert_false(u.needs_slash);

    assert_int_equal(http_parse_absolute_uri(S("HTTP://Example.COM:8080"), &u), 0);
    assert_string_equal(u.authority.host, "Example.COM");
    assert_int_equal(u.authority.port, 8080);
    assert_slice(u.path_and_query, "/");
    assert_false(u.needs_slash);

    /* No path but a query: the query is kept and a '/' goes before it. */
    assert_int_equal(http_parse_absolute_uri(S("http://h?x=1"), &u), 0);
    assert_slice(u.path_and_query, "?x=1");
    assert_true(u.needs_slash);

    /* The fragment is dropped. */
    assert_int_equal(http_parse_absolute_uri(S("http://h/p?q#frag"), &u), 0);
    assert_slice(u.path_and_query, "/p?q");
    assert_int_equal(http_parse_absolute_uri(S("http://h#frag"), &u), 0);
    assert_slice(u.path_and_query, "/");
    assert_false(u.needs_slash);
    assert_int_equal(http_parse_absolute_uri(S("http://h?a#b"), &u), 0);
    assert_slice(u.path_and_query, "?a");
    assert_true(u.needs_slash);

    assert_int_equal(http_parse_absolute_uri(S("http://[2001:db8::1]:81/x"), &u), 0);
    assert_string_equal(u.authority.host, "2001:db8::1");
    assert_int_equal(u.authority.port, 81);
    assert_slice(u.path_and_query, "/x");
    assert_int_equal(http_parse_absolute_uri(S("http://[::1]/"), &u), 0);
    assert_int_equal(u.authority.port, 80);

    assert_int_equal(http_parse_absolute_uri(S("https://example.com/"), &u), TD_EUNSUPPORTED);
    assert_int_equal(http_parse_absolute_uri(S("ftp://example.com/"), &u), TD_EUNSUPPORTED);
    assert_int_equal(http_parse_absolute_uri(S("ws://example.com/"), &u), TD_EUNSUPPORTED);
    assert_int_equal(http_parse_absolute_uri(S("/relative"), &u), TD_EPROTO);
    assert_int_equal(http_parse_absolute_uri(S("*"), &u), TD_EPROTO);
    assert_int_equal(http_parse_absolute_uri(S("example.com/"), &u), TD_EPROTO);
    assert_int_equal(http_parse_absolute_uri(S(""), &u), TD_EPROTO);
    assert_int_equal(http_parse_absolute_uri(S("http:/example.com/"), &u), TD_EPROTO);
    assert_int_equal(http_parse_absolute_uri(S("http:example.com"), &u), TD_EPROTO);
    assert_int_equal(http_parse_absolute_uri(S("http://"), &u), TD_EPROTO);
    assert_int_equal(http_parse_absolute_uri(S("http:///x"), &u), TD_EPROTO);
    assert_int_equal(http_parse_absolute_uri(S("http://user:pw@example.com/"), &u), TD_EPROTO);
    assert_int_equal(http_parse_absolute_uri(S("http://@example.com/"), &u), TD_EPROTO);
    assert_int_equal(http_parse_absolute_uri(S("http://example.com:0/"), &u), TD_EPROTO);
    assert_int_equal(http_parse_absolute_uri(S("http://example.com/a b"), &u), TD_EPROTO);
    assert_int_equal(http_parse_absolute_uri(S("http://example.com/a\r\nX: y"), &u), TD_EPROTO);
    /* '@' after the authority is just part of the path. */
    assert_int_equal(http_parse_absolute_uri(S("http://example.com/a@b"), &u), 0);
    assert_slice(u.path_and_query, "/a@b");
}

/* ---- building heads ------------------------------------------------------ */

static int build_origin(const char *head, char *out, size_t cap)
{
    static struct http_request r;
    static struct http_uri u;
    assert_int_equal(parse_req(head, &r), 0);
    assert_int_equal(http_parse_absolute_uri(r.target, &u), 0);
    return http_build_origin_request(&r, &u, out, cap);
}

static void test_origin_request(void **state)
{
    char out[1024];
    int n;
    static const char want[] = "POST /submit?a=1&b=%20 HTTP/1.1\r\n"
                               "Host: example.com\r\n"
                               "User-Agent: t\r\n"
                               "Content-Length: 3\r\n"
                               "Connection: close\r\n"
                               "\r\n";
    (void)state;
    n = build_origin("POST http://example.com/submit?a=1&b=%20 HTTP/1.0\r\n"
                     "Host: example.com\r\n"
                     "User-Agent: t\r\n"
                     "Proxy-Connection: keep-alive\r\n"
                     "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"
                     "Keep-Alive: 300\r\n"
                     "Content-Length: 3\r\n"
                     "\r\n",
                     out, sizeof(out));
    assert_int_equal(n, (int)strlen(want));
    assert_memory_equal(out, want, (size_t)n);
    /* Exactly enough room, then one byte short. */
    assert_int_equal(build_origin("POST http://example.com/submit?a=1&b=%20 HTTP/1.0\r\n"
                                  "Host: example.com\r\nUser-Agent: t\r\n"
                                  "Content-Length: 3\r\n\r\n",
                                  out, strlen(want)),
                     n);
    assert_int_equal(build_origin("POST http://example.com/submit?a=1&b=%20 HTTP/1.0\r\n"
                                  "Host: example.com\r\nUser-Agent: t\r\n"
                                  "Content-Length: 3\r\n\r\n",
                                  out, strlen(want) - 1),
                     TD_ETOOBIG);
    assert_int_equal(build_origin("GET http://h/ HTTP/1.1\r\n\r\n", out, 0), TD_ETOOBIG);
}

static void test_origin_request_hop_by_hop(void **state)
{
    char out[1024];
    int n;
    static const char want[] = "GET / HTTP/1.1\r\n"
                               "Host: h\r\n"
                               "Accept: */*\r\n"
                               "Transfer-Encoding: chunked\r\n"
                               "X-Keep: 1\r\n"
                               "Connection: close\r\n"
                               "\r\n";
    (void)state;
    n = build_origin("GET http://h/ HTTP/1.1\r\n"
                     "Connection: X-Secret, keep-alive\r\n"
                     "Accept: */*\r\n"
                     "TE: trailers\r\n"
                     "X-Secret: drop me\r\n"
                     "Upgrade: websocket\r\n"
                     "Trailer: X-T\r\n"
                     "connection: x-other, Transfer-Encoding, Host\r\n"
                     "Transfer-Encoding: chunked\r\n"
                     "x-other: drop me too\r\n"
                     "Proxy-Authenticate: Basic\r\n"
                     "X-Keep: 1\r\n"
                     "\r\n",
                     out, sizeof(out));
    assert_true(n > 0);
    assert_int_equal(n, (int)strlen(want));
    assert_memory_equal(out, want, (size_t)n);
}

static void test_origin_request_host(void **state)
{
    char out[1024];
    int n;
    (void)state;
    /* RFC 9112 3.2.2: the received Host is replaced by the URI's authority,
     * so the origin is never told another host than the one we reach. */
    n = build_origin("GET http://a.example/x HTTP/1.1\r\nX: 1\r\nHost: b.example\r\n\r\n", out,
                     sizeof(out));
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, "GET /x HTTP/1.1\r\nHost: a.example\r\nX: 1\r\n"
                             "Connection: close\r\n\r\n");
    /* Only one Host goes out. */
    n = build_origin("GET http://a/ HTTP/1.1\r\nHost: one\r\nHost: two\r\n\r\n", out, sizeof(out));
    out[n] = '\0';
    assert_string_equal(out, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    /* No Host: made from the URI; port 80 left out. */
    n = build_origin("GET http://a.example:80/x HTTP/1.0\r\n\r\n", out, sizeof(out));
    out[n] = '\0';
    assert_string_equal(out, "GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n");
    n = build_origin("GET http://a.example:8080 HTTP/1.0\r\n\r\n", out, sizeof(out));
    out[n] = '\0';
    assert_string_equal(out, "GET / HTTP/1.1\r\nHost: a.example:8080\r\nConnection: close\r\n\r\n");
    n = build_origin("GET http://[2001:db8::1]:8080/ HTTP/1.0\r\n\r\n", out, sizeof(out));
    out[n] = '\0';
    assert_string_equal(out,
                        "GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\nConnection: close\r\n\r\n");
    n = build_origin("GET http://[::1]/ HTTP/1.0\r\n\r\n", out, sizeof(out));
    out[n] = '\0';
    assert_string_equal(out, "GET / HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n");
    /* The query survives exactly, with the '/' added when there is no path. */
    n = build_origin("GET http://h?x=1&y=%41 HTTP/1.1\r\n\r\n", out, sizeof(out));
    out[n] = '\0';
    assert_string_equal(out, "GET /?x=1&y=%41 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
}

static void test_client_response(void **state)
{
    struct http_response r;
    char out[512];
    int n;
    static const char want[] = "HTTP/1.1 200 Fine\r\n"
                               "Content-Type: text/plain\r\n"
                               "Transfer-Encoding: chunked\r\n"
                               "Connection: close\r\n"
                               "\r\n";
    (void)state;
    assert_int_equal(parse_resp("HTTP/1.0 200 Fine\r\n"
                                "Connection: keep-alive, X-Hop\r\n"
                                "Content-Type: text/plain\r\n"
                                "Keep-Alive: timeout=5\r\n"
                                "X-Hop: 1\r\n"
                                "Transfer-Encoding: chunked\r\n"
                                "Upgrade: h2c\r\n"
                                "\r\n",
                                &r),
                     0);
    n = http_build_client_response(&r, out, sizeof(out));
    assert_int_equal(n, (int)strlen(want));
    assert_memory_equal(out, want, (size_t)n);
    assert_int_equal(http_build_client_response(&r, out, strlen(want) - 1), TD_ETOOBIG);
    /* An empty reason is filled in. */
    assert_int_equal(parse_resp("HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", &r), 0);
    n = http_build_client_response(&r, out, sizeof(out) - 1);
    assert_true(n > 0);
    out[n] = '\0';
    assert_string_equal(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                             "Connection: close\r\n\r\n");
}

/* The error page parses as a response whose Content-Length is the length of
 * what follows the head. */
static void check_error_page(const char *page, size_t n, int status)
{
    struct http_response r;
    const struct http_header *cl;
    char num[32];

    assert_int_equal(http_parse_response(page, n, HTTP_DEFAULT_MAX_HEAD, &r), 0);
    assert_int_equal(r.status, status);
    assert_slice(r.reason, http_status_reason(status));
    cl = http_find_header(r.headers, r.n_headers, "Content-Length");
    assert_non_null(cl);
    snprintf(num, sizeof(num), "%zu", n - r.head_len);
    assert_slice(cl->value, num);
    assert_non_null(http_find_header(r.headers, r.n_headers, "Content-Type"));
    cl = http_find_header(r.headers, r.n_headers, "Connection");
    assert_non_null(cl);
    assert_slice(cl->value, "close");
}

static void test_build_error(void **state)
{
    char out[2048];
    int n;
    (void)state;
    n = http_build_error(502, "upstream <b>\"x\" & 'y'</b> refused", NULL, out, sizeof(out));
    assert_true(n > 0);
    check_error_page(out, (size_t)n, 502);
    out[n] = '\0';
    assert_non_null(strstr(out, "HTTP/1.1 502 Bad Gateway\r\n"));
    assert_non_null(strstr(out, "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"));
    assert_null(strstr(out, "<b>"));
    assert_non_null(strstr(out, "502 Bad Gateway</h1>"));

    n = http_build_error(407, NULL, "Proxy-Authenticate: Basic realm=\"tunneld\"\r\n", out,
                         sizeof(out));
    assert_true(n > 0);
    check_error_page(out, (size_t)n, 407);
    out[n] = '\0';
    assert_non_null(strstr(out, "\r\nProxy-Authenticate: Basic realm=\"tunneld\"\r\n"));

    n = http_build_error(431, "", NULL, out, sizeof(out));
    check_error_page(out, (size_t)n, 431);

    /* Exactly the right room, then one less. */
    assert_int_equal(http_build_error(400, "bad", NULL, out,
                                      (size_t)http_build_error(400, "bad", NULL, out, 2048)),
                     http_build_error(400, "bad", NULL, out, 2048));
    n = http_build_error(400, "bad", NULL, out, sizeof(out));
    assert_int_equal(http_build_error(400, "bad", NULL, out, (size_t)n - 1), TD_ETOOBIG);
    assert_int_equal(http_build_error(400, "bad", NULL, NULL, 0), TD_ETOOBIG);
    assert_int_equal(http_build_error(99, "bad", NULL, out, sizeof(out)), TD_EINVAL);
}

static void test_status_reason(void **state)
{
    static const struct {
        int code;
        const char *reason;
    } want[] = {
        {200, "OK"},
        {400, "Bad Request"},
        {403, "Forbidden"},
        {405, "Method Not Allowed"},
        {407, "Proxy Authentication Required"},
        {408, "Request Timeout"},
        {411, "Length Required"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_string_equal(http_status_reason(want[i].code), want[i].reason);
    assert_string_equal(http_status_reason(299), "Unknown");
}

/* ---- Basic auth ---------------------------------------------------------- */

static void test_basic_auth(void **state)
{
    char user[16], pass[16];
    (void)state;
    /* user:pass */
    assert_int_equal(http_parse_basic_auth(S("Basic dXNlcjpwYXNz"), user, 16, pass, 16), 0);
    assert_string_equal(user, "user");
    assert_string_equal(pass, "pass");
    assert_int_equal(http_parse_basic_auth(S("basic   dXNlcjpwYXNz  "), user, 16, pass, 16), 0);
    assert_string_equal(user, "user");
    assert_int_equal(http_parse_basic_auth(S("BASIC dXNlcjpwYXNz"), user, 16, pass, 16), 0);
    /* "a:b:c": split at the first colon. */
    assert_int_equal(http_parse_basic_auth(S("Basic YTpiOmM="), user, 16, pass, 16), 0);
    assert_string_equal(user, "a");
    assert_string_equal(pass, "b:c");
    /* ":" and "u:" */
    assert_int_equal(http_parse_basic_auth(S("Basic Og=="), user, 16, pass, 16), 0);
    assert_string_equal(user, "");
    assert_string_equal(pass, "");
    assert_int_equal(http_parse_basic_auth(S("Basic dTo="), user, 16, pass, 16), 0);
    assert_string_equal(user, "u");
    assert_string_equal(pass, "");
    /* Room: "user" needs 5 bytes with its NUL. */
    assert_int_equal(http_parse_basic_auth(S("Basic dXNlcjpwYXNz"), user, 5, pass, 5), 0);
    assert_int_equal(http_parse_basic_auth(S("Basic dXNlcjpwYXNz"), user, 4, pass, 16), TD_ETOOBIG);
    assert_int_equal(http_parse_basic_auth(S("Basic dXNlcjpwYXNz"), user, 16, pass, 4), TD_ETOOBIG);
    /* Other schemes. */
    assert_int_equal(http_parse_basic_auth(S("Bearer abc"), user, 16, pass, 16), TD_EUNSUPPORTED);
    assert_int_equal(http_parse_basic_auth(S("Digest username=\"x\""), user, 16, pass, 16),
                     TD_EUNSUPPORTED);
    assert_int_equal(http_parse_basic_auth(S("Basicx dXNlcjpwYXNz"), user, 16, pass, 16),
                     TD_EUNSUPPORTED);
    /* Malformed. */
    assert_int_equal(http_parse_basic_auth(S("Basic"), user, 16, pass, 16), TD_EPROTO);
    assert_int_equal(http_parse_basic_auth(S("Basic "), user, 16, pass, 16), TD_EPROTO);
    assert_int_equal(http_parse_basic_auth(S(""), user, 16, pass, 16), TD_EPROTO);
    assert_int_equal(http_parse_basic_auth(S("Basic dXNlcg=="), user, 16, pass, 16), TD_EPROTO);
    assert_int_equal(http_parse_basic_auth(S("Basic dXNlcjpwYXNz!"), user, 16, pass, 16),
                     TD_EPROTO);
    assert_int_equal(http_parse_basic_auth(S("Basic dXNlcjpwYXN"), user, 16, pass, 16), TD_EPROTO);
    assert_int_equal(http_parse_basic_auth(S("Basic dXNl cjpwYXNz"), user, 16, pass, 16),
                     TD_EPROTO);
    /* "u\0:p" and "u:p\0": NULs refused. */
    assert_int_equal(http_parse_basic_auth(S("Basic dQA6cA=="), user, 16, pass, 16), TD_EPROTO);
    assert_int_equal(http_parse_basic_auth(S("Basic dTpwAA=="), user, 16, pass, 16), TD_EPROTO);
    assert_int_equal(http_parse_basic_auth(S("Basic dXNlcjpwYXNz"), NULL, 16, pass, 16), TD_EINVAL);
}

/* ---- body framing -------------------------------------------------------- */

static int body_init(const char *head, struct http_body *b)
{
    static struct http_request r;
    assert_int_equal(parse_req(head, &r), 0);
    return http_body_init(b, &r);
}

static void test_body_init(void **state)
{
    struct http_body b;
    (void)state;
    assert_int_equal(body_init("GET / HTTP/1.1\r\n\r\n", &b), 0);
    assert_int_equal(b.kind, HTTP_BODY_NONE);
    assert_true(b.done);
    assert_int_equal(body_init("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n", &b), 0);
    assert_int_equal(b.kind, HTTP_BODY_LENGTH);
    assert_int_equal(b.remaining, 10);
    assert_false(b.done);
    assert_int_equal(body_init("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &b), 0);
    assert_int_equal(b.kind, HTTP_BODY_LENGTH);
    assert_true(b.done);
    assert_int_equal(
        body_init("POST / HTTP/1.1\r\nContent-Length: 4611686018427387904\r\n\r\n", &b), 0);
    assert_int_equal(b.remaining, (uint64_t)1 << 62);
    assert_int_equal(
        body_init("POST / HTTP/1.1\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n", &b), 0);
    assert_int_equal(b.remaining, 7);
    assert_int_equal(body_init("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &b), 0);
    assert_int_equal(b.kind, HTTP_BODY_CHUNKED);
    assert_false(b.done);
    assert_int_equal(body_init("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", &b),
                     0);
    assert_int_equal(b.kind, HTTP_BODY_CHUNKED);
    assert_int_equal(body_init("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n",
                               &b),
                     0);
    assert_int_equal(b.kind, HTTP_BODY_CHUNKED);
}

static void test_body_init_bad(void **state)
{
    static const char *const proto[] = {
        /* Both framings: request smuggling. */
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n",
        /* Different lengths. */
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        /* Not digits only. */
        "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 4611686018427387905\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        /* chunked not last, or twice. */
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        /* Empty Transfer-Encoding. */
        "POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: , ,\r\n\r\n",
        /* Transfer-Encoding in HTTP/1.0. */
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    };
    struct http_body b;
    (void)state;
    for (size_t i = 0; i < sizeof(proto) / sizeof(proto[0]); i++) {
        int rc = body_init(proto[i], &b);
        if (rc != TD_EPROTO)
            fail_msg("case %zu: %s", i, td_err_name(rc));
    }
    assert_int_equal(body_init("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", &b),
                     TD_EUNSUPPORTED);
    assert_int_equal(body_init("POST / HTTP/1.1\r\nTransfer-Encoding: chunkedx\r\n\r\n", &b),
                     TD_EUNSUPPORTED);
}

static void test_body_length(void **state)
{
    struct http_body b;
    size_t used;
    (void)state;
    assert_int_equal(body_init("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", &b), 0);
    assert_int_equal(http_body_feed(&b, (const uint8_t *)"ab", 2, &used), 0);
    assert_int_equal(used, 2);
    assert_int_equal(http_body_feed(&b, NULL, 0, &used), 0);
    assert_int_equal(used, 0);
    /* The rest of the body and the start of the next request. */
    assert_int_equal(http_body_feed(&b, (const uint8_t *)"cdeGET / HTTP/1.1", 17, &used), 1);
    assert_int_equal(used, 3);
    assert_int_equal(http_body_feed(&b, (const uint8_t *)"GET", 3, &used), 1);
    assert_int_equal(used, 0);

    assert_int_equal(body_init("GET / HTTP/1.1\r\n\r\n", &b), 0);
    assert_int_equal(http_body_feed(&b, (const uint8_t *)"GET", 3, &used), 1);
    assert_int_equal(used, 0);
}

static const char chunked_body[] = "5\r\nhello\r\n"
                                   "1A;name=value;x=\"q\"\r\n"
                                   "abcdefghijklmnopqrstuvwxyz\r\n"
                                   "00003 ;ext\r\n"
                                   "\r\n\r\r\n" /* data: CR LF CR */
                                   "0\r\n"
                                   "X-Trailer: 1\r\n"
                                   "Another: two words\r\n"
                                   "\r\n";
static const char next_request[] = "GET http://other/ HTTP/1.1\r\n\r\n";

static void test_chunked_whole(void **state)
{
    char buf[512];
    size_t blen = strlen(chunked_body), used;
    struct http_body b;
    (void)state;
    memcpy(buf, chunked_body, blen);
    memcpy(buf + blen, next_request, sizeof(next_request));
    assert_int_equal(body_init("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &b), 0);
    assert_int_equal(http_body_feed(&b, (const uint8_t *)buf, blen + strlen(next_request), &used),
                     1);
    assert_int_equal(used, blen);
    assert_true(b.done);
    assert_int_equal(http_body_feed(&b, (const uint8_t *)buf + blen, 5, &used), 1);
    assert_int_equal(used, 0);
}

/* Feed the body plus the next request in two pieces split at every byte,
 * and also one byte at a time. */
static void test_chunked_every_split(void **state)
{
    char buf[512];
    size_t blen = strlen(chunked_body);
    size_t total = blen + strlen(next_request);
    (void)state;
    memcpy(buf, chunked_body, blen);
    memcpy(buf + blen, next_request, sizeof(next_request));

    for (size_t k = 0; k <= total; k++) {
        struct http_body b;
        size_t u1, u2 = 0;
        int rc;

        assert_int_equal(body_init("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &b), 0);
        rc = http_body_feed(&b, (const uint8_t *)buf, k, &u1);
        if (k < blen) {
            assert_int_equal(rc, 0);
            assert_int_equal(u1, k);
            rc = http_body_feed(&b, (const uint8_t *)buf + k, total - k, &u2);
        } else {
            assert_int_equal(u1, blen);
        }
        assert_int_equal(rc, 1);
        assert_int_equal(u1 + u2, blen);
    }

    {
        struct http_body b;
        size_t consumed = 0;
        int rc = 0;
        assert_int_equal(body_init("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &b), 0);
        for (size_t i = 0; i < total; i++) {
            size_t u;
            rc = http_body_feed(&b, (const uint8_t *)buf + i, 1, &u);
            assert_true(rc == 0 || rc == 1);
            consumed += u;
            if (i + 1 < blen) {
                assert_int_equal(rc, 0);
                assert_int_equal(u, 1);
            }
            if (i >= blen)
                assert_int_equal(u, 0);
        }
        assert_int_equal(rc, 1);
        assert_int_equal(consumed, blen);
    }
}

static int chunked_feed_all(const char *s, size_t *used)
{
    struct http_body b;
    size_t u = 0;
    int rc;
    assert_int_equal(body_init("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &b), 0);
    rc = http_body_feed(&b, (const uint8_t *)s, strlen(s), &u);
    if (used)
        *used = u;
    return rc;
}

static void test_chunked_bad(void **state)
{
    static const char *const bad[] = {
        "\r\n",                    /* no size */
        ";ext\r\n",                /* no size */
        "g\r\n",                   /* not hex */
        "-1\r\n",                  /* sign */
        "0x5\r\n",                 /* prefix */
        "5\nhello\r\n0\r\n\r\n",   /* bare LF after the size */
        "5\r\nhello\n0\r\n\r\n",   /* bare LF after the data */
        "5\r\nhelloX\r\n",         /* data longer than the size */
        "5\r\nhello\r\n0\r\n\n",   /* bare LF at the end */
        "5 x\r\n",                 /* junk after the size */
        "5;a\x01\r\n",             /* CTL in an extension */
        "5;a\0b\r\n",              /* (NUL ends the literal: see below) */
        "0\r\nX: 1\nY: 2\r\n\r\n", /* bare LF in the trailer */
        "0\r\n Folded\r\n\r\n",    /* obs-fold in the trailer */
        "0\r\nX: \x01\r\n\r\n",    /* CTL in the trailer */
        "10000000000000000\r\n",   /* overflow */
        "5\rhello\r\n",            /* CR not followed by LF */
    };
    char longline[5000];
    size_t used;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = chunked_feed_all(bad[i], &used);
        if (i == 11) /* "5;a" then the string ends: needs more */
            continue;
        if (rc != TD_EPROTO)
            fail_msg("case %zu: %s", i, td_err_name(rc));
    }
    /* A NUL inside an extension. */
    {
        struct http_body b;
        assert_int_equal(body_init("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &b), 0);
        assert_int_equal(http_body_feed(&b, (const uint8_t *)"5;a\0b\r\n", 7, &used), TD_EPROTO);
    }
    /* A size line of 4096 bytes is fine, longer is not. */
    memset(longline, '0', sizeof(longline));
    memcpy(longline + 4095, "1\r\nx\r\n0\r\n\r\n", 12);
    assert_int_equal(chunked_feed_all(longline, &used), 1);
    assert_int_equal(used, strlen(longline));
    memset(longline, '0', sizeof(longline));
    memcpy(longline + 4096, "1\r\nx\r\n0\r\n\r\n", 12);
    assert_int_equal(chunked_feed_all(longline, &used), TD_EPROTO);
    /* Same for an extension and a trailer line. */
    memset(longline, 'e', sizeof(longline));
    memcpy(longline, "1;", 2);
    memcpy(longline + 4200, "\r\n", 3);
    assert_int_equal(chunked_feed_all(longline, &used), TD_EPROTO);
    memset(longline, 'e', sizeof(longline));
    memcpy(longline, "0\r\nX:", 5);
    memcpy(longline + 4200, "\r\n\r\n", 5);
    assert_int_equal(chunked_feed_all(longline, &used), TD_EPROTO);
    /* Large but representable sizes are fine. */
    assert_int_equal(chunked_feed_all("fffffffffffffff\r\n", &used), 0);
}

/* The request-target is capped at 8 KiB for the proxy front-end; a caller
 * that allows a larger head (the wstan server: its first request rides in
 * the URI) gets a target as large as that head. */
static void test_request_long_target(void **state)
{
    size_t tlen = 96 * 1024, cap = tlen + 256;
    char *buf = malloc(cap);
    struct http_request *r = malloc(sizeof(*r));
    int n;

    (void)state;
    assert_non_null(buf);
    assert_non_null(r);
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'A', tlen - 1);
    n = snprintf(buf + 4 + tlen, cap - 4 - tlen, " HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(n > 0);
    assert_int_equal(http_parse_request(buf, 4 + tlen + (size_t)n, HTTP_DEFAULT_MAX_HEAD, r),
                     TD_ETOOBIG);
    assert_int_equal(http_parse_request(buf, 4 + tlen + (size_t)n, 100 * 1024, r), 0);
    assert_int_equal(r->target.len, tlen);
    assert_int_equal(r->n_headers, 1);
    free(r);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_get),
        cmocka_unit_test(test_request_long_target),
        cmocka_unit_test(test_request_connect),
        cmocka_unit_test(test_request_connect_ipv6),
        cmocka_unit_test(test_request_bare_lf),
        cmocka_unit_test(test_request_leading_empty_lines),
        cmocka_unit_test(test_request_versions),
        cmocka_unit_test(test_request_invalid_lines),
        cmocka_unit_test(test_request_early_reject),
        cmocka_unit_test(test_head_scan_matches_parser),
        cmocka_unit_test(test_head_scan_no_end),
        cmocka_unit_test(test_parse_request_scan),
        cmocka_unit_test(test_header_ws_before_colon),
        cmocka_unit_test(test_obs_fold),
        cmocka_unit_test(test_oversize_head),
        cmocka_unit_test(test_target_too_long),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_response_bad),
        cmocka_unit_test(test_find_header_and_tokens),
        cmocka_unit_test(test_authority),
        cmocka_unit_test(test_absolute_uri),
        cmocka_unit_test(test_origin_request),
        cmocka_unit_test(test_origin_request_hop_by_hop),
        cmocka_unit_test(test_origin_request_host),
        cmocka_unit_test(test_client_response),
        cmocka_unit_test(test_build_error),
        cmocka_unit_test(test_status_reason),
        cmocka_unit_test(test_basic_auth),
        cmocka_unit_test(test_body_init),
        cmocka_unit_test(test_body_init_bad),
        cmocka_unit_test(test_body_length),
        cmocka_unit_test(test_chunked_whole),
        cmocka_unit_test(test_chunked_every_split),
        cmocka_unit_test(test_chunked_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
