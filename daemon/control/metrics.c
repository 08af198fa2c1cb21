/* The metrics endpoint: "metrics: { listen: ADDR }" serves the counters of
 * the control plane in the Prometheus text format (version 0.0.4) at
 * GET /metrics.  One short HTTP/1.1 exchange per connection, with a bounded
 * request head and a deadline; it goes through the accept policy like
 * every listener. */
#include "control/control.h"

#include "core/listener.h"
#include "core/stats.h"
#include "core/tunnel.h"
#include "proto/http.h"
#include "util/error.h"
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MX_HEAD_MAX    8192
#define MX_TIMEOUT_MS  5000
#define MX_MAX_CLIENTS 32

struct td_metrics {
    struct td_daemon *d;
    struct td_acceptor acc;
    bool open;
    struct td_queue clients;
    uint32_t n_clients;
};

struct mx_client {
    struct td_queue node;
    struct td_metrics *m;
    uv_tcp_t tcp;
    uv_timer_t timer;
    int handles;
    char head[MX_HEAD_MAX];
    size_t len, scanned;
    bool done;
    char *out;
    uv_write_t wreq;
};

/* ---- the text ----------------------------------------------------------------- */

struct mx_text {
    char *p;
    size_t len, cap;
    bool oom;
};

static void mx_printf(struct mx_text *t, const char *fmt, ...) TD_PRINTF(2, 3);

static void mx_printf(struct mx_text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        if (t->oom)
            return;
        va_start(ap, fmt);
        n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        {
            size_t nc = t->cap ? t->cap * 2 : 16384;
            char *np;
            while (nc < t->len + (size_t)n + 1)
                nc *= 2;
            np = realloc(t->p, nc);
            if (!np) {
                t->oom = true;
                return;
            }
            t->p = np;
            t->cap = nc;
        }
    }
}

/* Label values: names are [A-Za-z0-9._-] already; escape anyway. */
static const char *mx_label(char *out, size_t cap, const char *s)
{
    size_t j = 0;
    for (; *s && j + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            out[j++] = '\\';
            out[j++] = *s;
        } else if (*s == '\n') {
            out[j++] = '\\';
            out[j++] = 'n';
        } else {
            out[j++] = *s;
        }
    }
    out[j] = '\0';
    return out;
}

static bool mx_handshake_reason(int f)
{
    return f == TD_FAIL_AUTH || f == TD_FAIL_PROTOCOL || f == TD_FAIL_HANDSHAKE_TIMEOUT ||
           f == TD_FAIL_EVICTED || f == TD_FAIL_UNSUPPORTED;
}

struct mx_pass {
    struct mx_text *t;
    int what; /* which family is printed in this pass */
};

enum { MX_BYTES, MX_CONNS_TOTAL, MX_CONNS_ACTIVE, MX_FAIL, MX_HS_FAIL, MX_PASSES };

static void mx_entity(void *arg, enum td_stat_kind kind, const char *name,
                      const struct td_counters *c)
{
    struct mx_pass *ps = arg;
    const char *k = td_stat_kind_name(kind);
    char n[160];

    mx_label(n, sizeof(n), name);
    switch (ps->what) {
    case MX_BYTES:
        mx_printf(ps->t, "tunneld_bytes_total{kind=\"%s\",name=\"%s\",direction=\"in\"} %llu\n", k,
                  n, (unsigned long long)c->bytes_in);
        mx_printf(ps->t, "tunneld_bytes_total{kind=\"%s\",name=\"%s\",direction=\"out\"} %llu\n", k,
                  n, (unsigned long long)c->bytes_out);
        break;
    case MX_CONNS_TOTAL:
        mx_printf(ps->t, "tunneld_connections_total{kind=\"%s\",name=\"%s\"} %llu\n", k, n,
                  (unsigned long long)c->conns_total);
        break;
    case MX_CONNS_ACTIVE:
        mx_printf(ps->t, "tunneld_connections_active{kind=\"%s\",name=\"%s\"} %llu\n", k, n,
                  (unsigned long long)c->conns_active);
        break;
    case MX_FAIL:
    case MX_HS_FAIL:
        for (int f = 0; f < TD_FAIL_COUNT; f++)
            if (c->fail[f] && (ps->what == MX_FAIL || mx_handshake_reason(f)))
                mx_printf(ps->t, "%s{kind=\"%s\",name=\"%s\",reason=\"%s\"} %llu\n",
                          ps->what == MX_FAIL ? "tunneld_failures_total"
                                              : "tunneld_handshake_failures_total",
                          k, n, td_fail_name(f), (unsigned long long)c->fail[f]);
        break;
    }
}

static const struct {
    const char *name, *type, *help;
} mx_families[MX_PASSES] = {
    [MX_BYTES] = {"tunneld_bytes_total", "counter",
                  "Payload bytes, in (towards the client) and out (from the client)."},
    [MX_CONNS_TOTAL] = {"tunneld_connections_total", "counter",
                        "Connections (and server-side tunnels) since start."},
    [MX_CONNS_ACTIVE] = {"tunneld_connections_active", "gauge", "Connections open now."},
    [MX_FAIL] = {"tunneld_failures_total", "counter", "Connections that ended in a failure."},
    [MX_HS_FAIL] = {"tunneld_handshake_failures_total", "counter",
                    "Handshakes refused or abandoned, by reason."},
};

static void mx_render(struct td_daemon *d, struct mx_text *t)
{
    mx_printf(t,
              "# HELP tunneld_build_info The version of tunneld.\n"
              "# TYPE tunneld_build_info gauge\n"
              "tunneld_build_info{version=\"%s\"} 1\n",
              TUNNELD_VERSION);
    mx_printf(t,
              "# HELP tunneld_uptime_seconds Seconds since the daemon started.\n"
              "# TYPE tunneld_uptime_seconds gauge\n"
              "tunneld_uptime_seconds %.3f\n",
              (double)(uv_now(d->loop) - d->start_ms) / 1000.0);
    mx_printf(t,
              "# HELP tunneld_config_generation How many configs were loaded.\n"
              "# TYPE tunneld_config_generation gauge\n"
              "tunneld_config_generation %llu\n",
              (unsigned long long)d->generation);
    mx_printf(t,
              "# HELP tunneld_connections_open Client connections open now.\n"
              "# TYPE tunneld_connections_open gauge\n"
              "tunneld_connections_open %u\n",
              d->n_conns);
    for (int what = 0; what < MX_PASSES; what++) {
        struct mx_pass ps = {t, what};
        mx_printf(t, "# HELP %s %s\n# TYPE %s %s\n", mx_families[what].name, mx_families[what].help,
                  mx_families[what].name, mx_families[what].type);
        for (int k = 0; k < TD_STAT_KINDS; k++)
            td_stats_collect(d, (enum td_stat_kind)k, NULL, mx_entity, &ps);
    }
    mx_printf(t, "# HELP tunneld_tunnel_links Connections a tunnel has to its server.\n"
                 "# TYPE tunneld_tunnel_links gauge\n");
    for (size_t i = 0; i < d->n_tunnels; i++) {
        struct td_tunnel_stats st;
        char n[160];
        memset(&st, 0, sizeof(st));
        if (d->tunnels[i]->proto->tunnel->stats)
            d->tunnels[i]->proto->tunnel->stats(d->tunnels[i], &st);
        mx_printf(t, "tunneld_tunnel_links{tunnel=\"%s\"} %u\n",
                  mx_label(n, sizeof(n), d->tunnels[i]->cfg->name), st.links);
    }
    mx_printf(t, "# HELP tunneld_tunnel_pool_size Idle links a tunnel keeps for reuse.\n"
                 "# TYPE tunneld_tunnel_pool_size gauge\n");
    for (size_t i = 0; i < d->n_tunnels; i++) {
        struct td_tunnel_stats st;
        char n[160];
        memset(&st, 0, sizeof(st));
        if (d->tunnels[i]->proto->tunnel->stats)
            d->tunnels[i]->proto->tunnel->stats(d->tunnels[i], &st);
        mx_printf(t, "tunneld_tunnel_pool_size{tunnel=\"%s\"} %u\n",
                  mx_label(n, sizeof(n), d->tunnels[i]->cfg->name), st.pooled);
    }
    mx_printf(t, "# HELP tunneld_server_tunnels_open Client tunnels a server has now.\n"
                 "# TYPE tunneld_server_tunnels_open gauge\n");
    for (size_t i = 0; i < d->n_servers; i++) {
        struct td_server_stats st;
        char n[160];
        memset(&st, 0, sizeof(st));
        if (d->servers[i]->proto->server->stats)
            d->servers[i]->proto->server->stats(d->servers[i], &st);
        mx_printf(t, "tunneld_server_tunnels_open{server=\"%s\"} %u\n",
                  mx_label(n, sizeof(n), d->servers[i]->cfg->name), st.tunnels);
    }
}

/* ---- the HTTP side ------------------------------------------------------------- */

static void mx_client_closed(uv_handle_t *h)
{
    struct mx_client *cl = h->data;
    if (--cl->handles > 0)
        return;
    td_queue_remove(&cl->node);
    cl->m->n_clients--;
    free(cl->out);
    free(cl);
}

static void mx_client_close(struct mx_client *cl)
{
    uv_os_fd_t fd;
    if (cl->handles == 0 || uv_is_closing((uv_handle_t *)&cl->tcp))
        return;
    if (uv_fileno((uv_handle_t *)&cl->tcp, &fd) == 0 && cl->m->d->fds_in_use > 0)
        cl->m->d->fds_in_use--;
    uv_close((uv_handle_t *)&cl->timer, mx_client_closed);
    uv_close((uv_handle_t *)&cl->tcp, mx_client_closed);
}

static void mx_on_written(uv_write_t *req, int status)
{
    struct mx_client *cl = req->data;
    (void)status;
    mx_client_close(cl);
}

static void mx_send(struct mx_client *cl, int code, const char *ctype, const char *body,
                    size_t blen)
{
    int n;
    uv_buf_t b;

    cl->done = true;
    uv_read_stop((uv_stream_t *)&cl->tcp);
    cl->out = malloc(256 + blen);
    if (!cl->out) {
        mx_client_close(cl);
        return;
    }
    n = snprintf(cl->out, 256,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 code, http_status_reason(code), ctype, blen);
    memcpy(cl->out + n, body, blen);
    b = uv_buf_init(cl->out, (unsigned)(n + (int)blen));
    cl->wreq.data = cl;
    if (uv_write(&cl->wreq, (uv_stream_t *)&cl->tcp, &b, 1, mx_on_written) != 0)
        mx_client_close(cl);
}

static void mx_serve(struct mx_client *cl)
{
    struct http_request *req = malloc(sizeof(*req));
    int r;

    if (!req) {
        mx_client_close(cl);
        return;
    }
    r = http_parse_request_scan(cl->head, cl->len, MX_HEAD_MAX, &cl->scanned, req);
    if (r == TD_EAGAIN && cl->len < MX_HEAD_MAX) {
        free(req);
        return;
    }
    if (r != 0) {
        static const char msg[] = "bad request\n";
        mx_send(cl, 400, "text/plain", msg, sizeof(msg) - 1);
    } else if (!(req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0)) {
        static const char msg[] = "only GET\n";
        mx_send(cl, 405, "text/plain", msg, sizeof(msg) - 1);
    } else if (!(req->target.len == 8 && memcmp(req->target.p, "/metrics", 8) == 0)) {
        static const char msg[] = "the metrics are at /metrics\n";
        mx_send(cl, 404, "text/plain", msg, sizeof(msg) - 1);
    } else {
        struct mx_text t = {NULL, 0, 0, false};
        mx_render(cl->m->d, &t);
        if (t.oom)
            mx_send(cl, 500, "text/plain", "out of memory\n", 14);
        else
            mx_send(cl, 200, "text/plain; version=0.0.4; charset=utf-8", t.p, t.len);
        free(t.p);
    }
    free(req);
}

static void mx_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct mx_client *cl = h->data;
    (void)suggested;
    *buf = uv_buf_init(cl->head + cl->len, (unsigned)(MX_HEAD_MAX - cl->len));
}

static void mx_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct mx_client *cl = st->data;
    (void)buf;
    if (cl->done || n == 0)
        return;
    if (n < 0) {
        mx_client_close(cl);
        return;
    }
    cl->len += (size_t)n;
    mx_serve(cl);
}

static void mx_on_timer(uv_timer_t *t)
{
    mx_client_close(t->data);
}

static int mx_accept(struct td_acceptor *a)
{
    struct td_metrics *m = a->ud;
    struct mx_client *cl = calloc(1, sizeof(*cl));

    if (!cl)
        return TD_ENOMEM;
    cl->m = m;
    uv_tcp_init(m->d->loop, &cl->tcp);
    cl->tcp.data = cl;
    uv_timer_init(m->d->loop, &cl->timer);
    cl->timer.data = cl;
    cl->handles = 2;
    td_queue_insert_tail(&m->clients, &cl->node);
    m->n_clients++;
    if (td_acceptor_accept(a, &cl->tcp) != 0) {
        uv_close((uv_handle_t *)&cl->timer, mx_client_closed);
        uv_close((uv_handle_t *)&cl->tcp, mx_client_closed);
        return 0;
    }
    m->d->fds_in_use++;
    if (m->n_clients > MX_MAX_CLIENTS) {
        mx_client_close(cl);
        return 0;
    }
    uv_timer_start(&cl->timer, mx_on_timer, MX_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&cl->tcp, mx_alloc, mx_on_read) != 0)
        mx_client_close(cl);
    return 0;
}

/* ---- the service ---------------------------------------------------------------- */

static int mx_open(struct td_metrics *m)
{
    struct td_acceptor_opts o;
    int r;

    if (!m->d->cfg->metrics.listen.host[0])
        return 0;
    memset(&o, 0, sizeof(o));
    o.name = "endpoint";
    o.what = "metrics";
    o.kind = "prometheus";
    o.listen = &m->d->cfg->metrics.listen;
    o.accept_cb = mx_accept;
    o.ud = m;
    o.fds_per_conn = 1;
    r = td_acceptor_open(m->d, &m->acc, &o);
    m->open = r == 0;
    return r;
}

static int mx_start(struct td_daemon *d)
{
    struct td_metrics *m = calloc(1, sizeof(*m));

    if (!m)
        return TD_ENOMEM;
    m->d = d;
    td_queue_init(&m->clients);
    d->metrics = m;
    return mx_open(m);
}

static void mx_stop_listening(struct td_metrics *m)
{
    if (m->open)
        td_acceptor_close(&m->acc);
    m->open = false;
}

static int mx_reload(struct td_daemon *d, const struct td_config *old)
{
    struct td_metrics *m = d->metrics;
    const struct td_hostport *a = &old->metrics.listen, *b = &d->cfg->metrics.listen;

    if (!m || (a->port == b->port && strcmp(a->host, b->host) == 0))
        return 0;
    mx_stop_listening(m);
    return mx_open(m);
}

static void mx_stop(struct td_daemon *d)
{
    struct td_metrics *m = d->metrics;
    struct td_queue *q, *next;

    if (!m)
        return;
    mx_stop_listening(m);
    for (q = m->clients.next; q != &m->clients; q = next) {
        next = q->next;
        mx_client_close(td_container_of(q, struct mx_client, node));
    }
}

static void mx_free(struct td_daemon *d)
{
    free(d->metrics);
    d->metrics = NULL;
}

const struct td_service td_metrics_service = {
    .name = "metrics",
    .start = mx_start,
    .reload = mx_reload,
    .stop = mx_stop,
    .free = mx_free,
};
