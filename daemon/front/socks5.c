/* SOCKS5 front-end (RFC 1928, RFC 1929). */
#include "front/front.h"

#include "core/conn.h"
#include "util/error.h"
#include "util/log.h"
#include "core/netutil.h"
#include "proto/socks5.h"

#include <string.h>

enum s5_state {
    S5_GREETING = 0,
    S5_AUTH,
    S5_REQUEST,
    S5_CONNECTING,
};

static const char *const s5_state_names[] = {"GREETING", "AUTH", "REQUEST", "CONNECTING"};

static void s5_set_state(struct conn *c, enum s5_state st)
{
    LOG_TRACE("socks5", "#%llu [%s] -> [%s]", (unsigned long long)c->id,
              s5_state_names[c->fe_state], s5_state_names[st]);
    c->fe_state = st;
}

static void s5_fail(struct conn *c, uint8_t rep, const char *reason)
{
    uint8_t out[SOCKS5_MAX_MSG];
    size_t n = socks5_encode_reply(out, rep, NULL);
    conn_reply_and_close(c, out, n, reason);
}

static void s5_protocol_error(struct conn *c, const char *what)
{
    LOG_INFO("socks5", "#%llu protocol-error from %s: %s", (unsigned long long)c->id, c->client_str,
             what);
    conn_close(c, END_PROTOCOL);
}

static void s5_request(struct conn *c, const struct socks5_request *req)
{
    char host[256];
    switch (req->cmd) {
    case SOCKS5_CMD_CONNECT:
        if (socks5_addr_host(&req->addr, host, sizeof(host)) < 0) {
            s5_fail(c, SOCKS5_REP_ATYP_NOT_SUPPORTED, END_UNSUPPORTED);
            return;
        }
        conn_hs_stop(c);
        s5_set_state(c, S5_CONNECTING);
        conn_connect(c, host, req->addr.port);
        return;
    case SOCKS5_CMD_UDP_ASSOCIATE:
        conn_hs_stop(c);
        s5_set_state(c, S5_CONNECTING);
        udp_assoc_start(c, req);
        return;
    default:
        LOG_INFO("socks5", "#%llu %s: command 0x%02x not supported", (unsigned long long)c->id,
                 c->client_str, req->cmd);
        s5_fail(c, SOCKS5_REP_CMD_NOT_SUPPORTED, END_UNSUPPORTED);
        return;
    }
}

static void s5_on_data(struct conn *c)
{
    bool want_auth = c->lcfg->auth == CFG_AUTH_USERS;
    uint8_t out[SOCKS5_MAX_MSG];
    size_t used, n;
    int r;

    while (c->state == CONN_HANDSHAKE && c->hs_len > 0) {
        switch ((enum s5_state)c->fe_state) {
        case S5_GREETING: {
            struct socks5_greeting g;
            uint8_t method;
            r = socks5_parse_greeting(c->hs, c->hs_len, &used, &g);
            if (r == TD_EAGAIN)
                return;
            if (r < 0) {
                s5_protocol_error(c, "bad greeting");
                return;
            }
            conn_hs_consume(c, used);
            method = want_auth ? SOCKS5_METHOD_USERPASS : SOCKS5_METHOD_NONE;
            if (!socks5_greeting_offers(&g, method)) {
                LOG_INFO("socks5", "#%llu %s: no acceptable authentication method",
                         (unsigned long long)c->id, c->client_str);
                n = socks5_encode_method_choice(out, SOCKS5_METHOD_NO_ACCEPTABLE);
                conn_reply_and_close(c, out, n, END_AUTH);
                return;
            }
            n = socks5_encode_method_choice(out, method);
            if (conn_write_copy(c, SIDE_CLIENT, out, n) < 0)
                return;
            s5_set_state(c, want_auth ? S5_AUTH : S5_REQUEST);
            break;
        }
        case S5_AUTH: {
            struct socks5_userpass up;
            bool ok;
            r = socks5_parse_userpass(c->hs, c->hs_len, &used, &up);
            if (r == TD_EAGAIN)
                return;
            if (r < 0) {
                s5_protocol_error(c, "bad username/password message");
                return;
            }
            conn_hs_consume(c, used);
            ok = conn_check_user(c, up.user, up.ulen, up.pass, up.plen);
            memset(up.pass, 0, sizeof(up.pass));
            n = socks5_encode_auth_status(out, ok);
            if (!ok) {
                char safe[80];
                LOG_INFO("socks5", "#%llu %s: authentication failed for user '%s'",
                         (unsigned long long)c->id, c->client_str,
                         td_log_safe(safe, sizeof(safe), up.user, up.ulen));
                conn_reply_and_close(c, out, n, END_AUTH);
                return;
            }
            if (conn_write_copy(c, SIDE_CLIENT, out, n) < 0)
                return;
            s5_set_state(c, S5_REQUEST);
            break;
        }
        case S5_REQUEST: {
            struct socks5_request req;
            r = socks5_parse_request(c->hs, c->hs_len, &used, &req);
            if (r == TD_EAGAIN)
                return;
            if (r == TD_EUNSUPPORTED) {
                LOG_INFO("socks5", "#%llu %s: address type not supported",
                         (unsigned long long)c->id, c->client_str);
                s5_fail(c, SOCKS5_REP_ATYP_NOT_SUPPORTED, END_UNSUPPORTED);
                return;
            }
            if (r < 0) {
                s5_protocol_error(c, "bad request");
                return;
            }
            conn_hs_consume(c, used);
            s5_request(c, &req);
            return;
        }
        case S5_CONNECTING:
            return;
        }
    }
}

static void s5_on_connected(struct conn *c)
{
    struct sockaddr_storage ss;
    struct socks5_addr bnd;
    int len = sizeof(ss);
    uint8_t out[SOCKS5_MAX_MSG];
    size_t n;

    memset(&bnd, 0, sizeof(bnd));
    bnd.atyp = SOCKS5_ATYP_IPV4;
    /* A tunnel route has no local socket: BND stays 0.0.0.0:0. */
    if (c->side[SIDE_TARGET].tcp &&
        uv_tcp_getsockname(c->side[SIDE_TARGET].tcp, (struct sockaddr *)&ss, &len) == 0)
        td_sockaddr_to_socks5((struct sockaddr *)&ss, &bnd);
    n = socks5_encode_reply(out, SOCKS5_REP_SUCCEEDED, &bnd);
    if (conn_write_copy(c, SIDE_CLIENT, out, n) < 0)
        return;
    conn_start_relay(c);
}

static uint8_t s5_rep_for_error(int err)
{
    switch (err) {
    case TD_ECONNREFUSED:
        return SOCKS5_REP_CONN_REFUSED;
    case TD_ETIMEDOUT:
        return SOCKS5_REP_TTL_EXPIRED;
    case TD_EHOSTUNREACH:
    case TD_EDNS:
        return SOCKS5_REP_HOST_UNREACHABLE;
    case TD_ENETUNREACH:
        return SOCKS5_REP_NET_UNREACHABLE;
    case TD_EACCES:
        return SOCKS5_REP_NOT_ALLOWED;
    default:
        return SOCKS5_REP_GENERAL_FAILURE;
    }
}

static void s5_on_connect_failed(struct conn *c, int err)
{
    LOG_DEBUG("socks5", "#%llu %s -> %s: %s", (unsigned long long)c->id, c->client_str,
              c->target_str, td_strerror(err));
    s5_fail(c, s5_rep_for_error(err), conn_end_reason(err));
}

const struct frontend frontend_socks5 = {
    .name = "socks5",
    .on_data = s5_on_data,
    .on_connected = s5_on_connected,
    .on_connect_failed = s5_on_connect_failed,
};
