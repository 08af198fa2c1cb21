/* HTTP proxy front-end: CONNECT tunnels and absolute-URI requests.
 *
 * An absolute-URI request is forwarded with "Connection: close" and answered
 * with "Connection: close": one request per client connection.  A keep-alive
 * client therefore opens a new connection for its next request, and no
 * request can ever reach the previous request's origin. */
#include "core/conn.h"
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

    if (c->l->cfg->auth != CFG_AUTH_USERS)
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

/* The origin request head waits here while the connect is in progress. */
struct hfe_pending {
    size_t len;
    char data[];
};

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
        c->http_abs = false;
        conn_connect(c, auth.host, auth.port);
        goto out;
    } else {
        struct http_uri uri;
        struct hfe_pending *p;
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
        r = http_body_init(&c->body, req);
        if (r == TD_EUNSUPPORTED) {
            hfe_error(c, 501, "unsupported transfer-coding", NULL, END_UNSUPPORTED);
            goto out;
        }
        if (r < 0) {
            hfe_error(c, 400, "invalid message framing", NULL, END_PROTOCOL);
            goto out;
        }
        p = malloc(sizeof(*p) + cap);
        if (!p) {
            conn_close(c, END_NO_RESOURCES);
            goto out;
        }
        r = http_build_origin_request(req, &uri, p->data, cap);
        if (r < 0) {
            free(p);
            hfe_error(c, 431, "request header too large", NULL, END_PROTOCOL);
            goto out;
        }
        p->len = (size_t)r;
        free(c->resp);
        c->resp = (char *)p; /* reused as the pending request until connected */
        c->http_abs = true;
        c->http_body_done = c->body.done;
        conn_hs_consume(c, req->head_len);
        conn_hs_stop(c);
        hfe_set_state(c, HFE_CONNECTING);
        conn_connect(c, uri.authority.host, uri.authority.port);
    }
out:
    free(req);
}

static void hfe_on_connected(struct conn *c)
{
    static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    if (!c->http_abs) {
        if (conn_write_copy(c, SIDE_CLIENT, established, sizeof(established) - 1) < 0)
            return;
    } else {
        struct hfe_pending *p = (struct hfe_pending *)c->resp;
        c->resp = NULL;
        c->bytes_up += p->len;
        if (conn_write_copy(c, SIDE_TARGET, p->data, p->len) < 0) {
            free(p);
            return;
        }
        free(p);
        c->resp_head_pending = true;
    }
    conn_start_relay(c);
}

static void hfe_on_connect_failed(struct conn *c, int err)
{
    char detail[512];
    int status = err == TD_ETIMEDOUT ? 504 : err == TD_EACCES ? 403 : 502;
    free(c->resp);
    c->resp = NULL;
    if (err == TD_EACCES)
        snprintf(detail, sizeof(detail), "%s is not allowed by this proxy's rules", c->target_str);
    else if (c->fail_detail[0])
        snprintf(detail, sizeof(detail), "cannot reach %s: %s", c->target_str, c->fail_detail);
    else
        snprintf(detail, sizeof(detail), "cannot reach %s: %s", c->target_str, td_strerror(err));
    hfe_error(c, status, detail, NULL, conn_end_reason(err));
}

const struct frontend frontend_http = {"http", hfe_on_data, hfe_on_connected,
                                       hfe_on_connect_failed};

/* Forward listeners have no handshake: the target is fixed. */
static void fwd_on_data(struct conn *c)
{
    (void)c;
}

static void fwd_on_connected(struct conn *c)
{
    conn_start_relay(c);
}

static void fwd_on_connect_failed(struct conn *c, int err)
{
    LOG_INFO("conn", "#%llu forward %s -> %s: %s", (unsigned long long)c->id, c->client_str,
             c->target_str, td_strerror(err));
    conn_close(c, conn_end_reason(err));
}

const struct frontend frontend_forward = {"forward", fwd_on_data, fwd_on_connected,
                                          fwd_on_connect_failed};
