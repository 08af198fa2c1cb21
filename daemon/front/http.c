/* HTTP proxy front-end: CONNECT tunnels and absolute-URI requests.
 *
 * An absolute-URI request is forwarded with "Connection: close" and answered
 * with "Connection: close": one request per client connection.  A keep-alive
 * client therefore opens a new connection for its next request, and no
 * request can ever reach the previous request's origin.  While relaying,
 * the front-end filters both directions (struct frontend's filter): exactly
 * one request body goes to the origin (Content-Length or chunked, tracked
 * by http_body_feed), and the response head is rewritten (hop-by-hop
 * headers out, Connection: close in) before the body passes untouched. */
#include "front/front.h"

#include "core/conn.h"
#include "proto/http.h"
#include "util/error.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

enum http_fe_state {
    HFE_HEAD = 0,
    HFE_CONNECTING,
};

static const char *const http_fe_state_names[] = {"HEAD", "CONNECTING"};

static void hfe_set_state(struct conn *c, enum http_fe_state st)
{
    LOG_TRACE("http", "#%llu [%s] -> [%s]", (unsigned long long)c->id,
              http_fe_state_names[c->fe_state], http_fe_state_names[st]);
    c->fe_state = st;
}

static void hfe_error(struct conn *c, int status, const char *detail, const char *extra,
                      const char *reason)
{
    char page[2048];
    int n = http_build_error(status, detail, extra, page, sizeof(page));
    LOG_INFO("http", "#%llu %s: %d %s (%s)", (unsigned long long)c->id, c->client_str, status,
             http_status_reason(status), detail);
    if (n < 0) {
        conn_close(c, reason);
        return;
    }
    conn_reply_and_close(c, page, (size_t)n, reason);
}

static bool hfe_authorized(struct conn *c, const struct http_request *req)
{
    const struct http_header *h;
    char user[256], pass[256];
    bool ok;

    if (c->lcfg->auth != CFG_AUTH_USERS)
        return true;
    h = http_find_header(req->headers, req->n_headers, "Proxy-Authorization");
    if (!h)
        return false;
    if (http_parse_basic_auth(h->value, user, sizeof(user), pass, sizeof(pass)) != 0)
        return false;
    ok = conn_check_user(c, user, strlen(user), pass, strlen(pass));
    if (!ok) {
        char safe[80];
        LOG_INFO("http", "#%llu %s: authentication failed for user '%s'", (unsigned long long)c->id,
                 c->client_str, td_log_safe(safe, sizeof(safe), user, strlen(user)));
    }
    memset(pass, 0, sizeof(pass));
    return ok;
}

/* The HTTP front-end's state for one absolute-URI request (c->fe_data). */
struct hfe {
    struct http_body body; /* the request body still to forward */
    char *req;             /* the origin request head, while connecting */
    size_t req_len;
    char *resp; /* the response head, until it is complete */
    size_t resp_len;
};

static void hfe_free_data(struct conn *c)
{
    struct hfe *h = c->fe_data;
    if (!h)
        return;
    free(h->req);
    free(h->resp);
    free(h);
    c->fe_data = NULL;
}

static void hfe_on_data(struct conn *c)
{
    struct http_request *req;
    int r;

    if (c->fe_state != HFE_HEAD)
        return;
    req = malloc(sizeof(*req));
    if (!req) {
        conn_close(c, END_NO_RESOURCES);
        return;
    }
    /* Only the new bytes are looked at until the head is complete. */
    r = http_parse_request_scan((const char *)c->hs, c->hs_len, HTTP_DEFAULT_MAX_HEAD,
                                &c->hs_scanned, req);
    if (r == TD_EAGAIN) {
        if (c->hs_len >= c->hs_max)
            hfe_error(c, 431, "request header too large", NULL, END_PROTOCOL);
        goto out;
    }
    if (r == TD_ETOOBIG) {
        hfe_error(c, 431, "request header too large", NULL, END_PROTOCOL);
        goto out;
    }
    if (r == TD_EUNSUPPORTED) {
        hfe_error(c, 505, "only HTTP/1.0 and HTTP/1.1 are supported", NULL, END_PROTOCOL);
        goto out;
    }
    if (r < 0) {
        hfe_error(c, 400, "malformed request", NULL, END_PROTOCOL);
        goto out;
    }
    if (!hfe_authorized(c, req)) {
        hfe_error(c, 407, "proxy authentication required",
                  "Proxy-Authenticate: Basic realm=\"tunneld\"\r\n", END_AUTH);
        goto out;
    }

    if (req->method.len == 7 && memcmp(req->method.p, "CONNECT", 7) == 0) {
        struct http_authority auth;
        if (http_parse_authority(req->target, 0, &auth) != 0) {
            hfe_error(c, 400, "CONNECT needs host:port", NULL, END_PROTOCOL);
            goto out;
        }
        conn_hs_consume(c, req->head_len);
        conn_hs_stop(c);
        hfe_set_state(c, HFE_CONNECTING);
        conn_connect(c, auth.host, auth.port);
        goto out;
    } else {
        struct http_uri uri;
        struct hfe *h;
        size_t cap = req->head_len + 2 * req->n_headers + 512;

        r = http_parse_absolute_uri(req->target, &uri);
        if (r == TD_EUNSUPPORTED) {
            hfe_error(c, 501, "only http:// URIs can be proxied", NULL, END_UNSUPPORTED);
            goto out;
        }
        if (r < 0) {
            hfe_error(c, 400, "this is a proxy: the request needs an absolute http:// URI", NULL,
                      END_PROTOCOL);
            goto out;
        }
        h = calloc(1, sizeof(*h));
        if (!h) {
            conn_close(c, END_NO_RESOURCES);
            goto out;
        }
        c->fe_data = h;
        r = http_body_init(&h->body, req);
        if (r == TD_EUNSUPPORTED) {
            hfe_error(c, 501, "unsupported transfer-coding", NULL, END_UNSUPPORTED);
            goto out;
        }
        if (r < 0) {
            hfe_error(c, 400, "invalid message framing", NULL, END_PROTOCOL);
            goto out;
        }
        h->req = malloc(cap);
        if (!h->req) {
            conn_close(c, END_NO_RESOURCES);
            goto out;
        }
        r = http_build_origin_request(req, &uri, h->req, cap);
        if (r < 0) {
            hfe_error(c, 431, "request header too large", NULL, END_PROTOCOL);
            goto out;
        }
        h->req_len = (size_t)r;
        conn_hs_consume(c, req->head_len);
        conn_hs_stop(c);
        hfe_set_state(c, HFE_CONNECTING);
        conn_connect(c, uri.authority.host, uri.authority.port);
    }
out:
    free(req);
}

/* The response head is rewritten once it is complete; 1xx heads are
 * interim and the final one follows.  Returns 0, or TD_ECANCELED when the
 * conn is closing, or a parse error. */
static int hfe_response_head(struct conn *c, struct hfe *h, const uint8_t *p, size_t n)
{
    size_t max = HTTP_DEFAULT_MAX_HEAD;
    struct http_response resp;
    char *grown;
    int r;

    if (h->resp_len + n > max + 1)
        n = max + 1 - h->resp_len;
    grown = realloc(h->resp, h->resp_len + n);
    if (!grown)
        return TD_ENOMEM;
    h->resp = grown;
    memcpy(h->resp + h->resp_len, p, n);
    h->resp_len += n;
    for (;;) {
        char *out;
        size_t rest, cap;
        r = http_parse_response(h->resp, h->resp_len, max, &resp);
        if (r == TD_EAGAIN)
            return 0;
        if (r < 0)
            return r;
        cap = resp.head_len + 2 * resp.n_headers + 64;
        out = malloc(cap);
        if (!out)
            return TD_ENOMEM;
        r = http_build_client_response(&resp, out, cap);
        if (r < 0) {
            free(out);
            return r;
        }
        r = conn_write_copy(c, SIDE_CLIENT, out, (size_t)r);
        free(out);
        if (r < 0 || c->state != CONN_RELAY)
            return TD_ECANCELED;
        rest = h->resp_len - resp.head_len;
        memmove(h->resp, h->resp + resp.head_len, rest);
        h->resp_len = rest;
        if (resp.status >= 100 && resp.status < 200 && resp.status != 101)
            continue;
        /* The body passes untouched from now on. */
        c->fe_filter &= ~(1u << SIDE_TARGET);
        if (rest > 0 && conn_write_copy(c, SIDE_CLIENT, h->resp, rest) < 0)
            return TD_ECANCELED;
        free(h->resp);
        h->resp = NULL;
        h->resp_len = 0;
        return 0;
    }
}

static int hfe_filter(struct conn *c, int s, struct td_chunk *ch, size_t *off, size_t *len)
{
    struct hfe *h = c->fe_data;
    size_t used = 0;
    int r;

    if (s == SIDE_TARGET) {
        r = hfe_response_head(c, h, ch->data + *off, *len);
        chunk_put(ch);
        if (r == TD_ECANCELED || c->state != CONN_RELAY)
            return 1;
        if (r < 0) {
            char page[1024];
            int n = http_build_error(502, "the origin sent an invalid response", NULL, page,
                                     sizeof(page));
            LOG_INFO("http", "#%llu invalid response head from %s: %s", (unsigned long long)c->id,
                     c->target_str, td_strerror(r));
            if (n > 0)
                conn_reply_and_close(c, page, (size_t)n, END_PROTOCOL);
            else
                conn_close(c, END_PROTOCOL);
        }
        return 1;
    }
    /* The client: exactly one request body goes on. */
    r = http_body_feed(&h->body, ch->data + *off, *len, &used);
    if (r < 0) {
        chunk_put(ch);
        LOG_INFO("http", "#%llu malformed request body from %s", (unsigned long long)c->id,
                 c->client_str);
        conn_close(c, END_PROTOCOL);
        return TD_EPROTO;
    }
    *len = used;
    if (r == 1) {
        c->fe_filter &= ~(1u << SIDE_CLIENT);
        conn_upload_done(c);
    }
    return 0;
}

static void hfe_on_connected(struct conn *c)
{
    static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    struct hfe *h = c->fe_data;

    if (!h) {
        if (conn_write_copy(c, SIDE_CLIENT, established, sizeof(established) - 1) < 0)
            return;
    } else {
        char *req = h->req;
        c->bytes_up += h->req_len;
        h->req = NULL;
        if (conn_write_copy(c, SIDE_TARGET, req, h->req_len) < 0) {
            free(req);
            return;
        }
        free(req);
        c->fe_filter = 1u << SIDE_TARGET;
        if (h->body.done)
            conn_upload_done(c);
        else
            c->fe_filter |= 1u << SIDE_CLIENT;
    }
    conn_start_relay(c);
}

static void hfe_on_connect_failed(struct conn *c, int err)
{
    char detail[512];
    int status = err == TD_ETIMEDOUT ? 504 : err == TD_EACCES ? 403 : 502;
    if (err == TD_EACCES)
        snprintf(detail, sizeof(detail), "%s is not allowed by this proxy's rules", c->target_str);
    else if (c->fail_detail[0])
        snprintf(detail, sizeof(detail), "cannot reach %s: %s", c->target_str, c->fail_detail);
    else
        snprintf(detail, sizeof(detail), "cannot reach %s: %s", c->target_str, td_strerror(err));
    hfe_error(c, status, detail, NULL, conn_end_reason(err));
}

const struct frontend frontend_http = {
    .name = "http",
    .on_data = hfe_on_data,
    .on_connected = hfe_on_connected,
    .on_connect_failed = hfe_on_connect_failed,
    .filter = hfe_filter,
    .free_data = hfe_free_data,
};
