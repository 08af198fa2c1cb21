/* Outbound TCP with deadlines; see dial.h. */
#include "core/dial.h"

#include "util/addr.h"
#include "util/error.h"
#include "util/log.h"
#include "core/netutil.h"
#include "core/queue.h"
#include "core/resolve.h"

#include <stdlib.h>
#include <string.h>

enum dial_state {
    DIAL_RESOLVING = 0,
    DIAL_CONNECTING,
    DIAL_DONE,
};

struct td_dial {
    struct td_daemon *d;
    enum dial_state state;
    td_dial_cb cb;
    void *arg;
    struct td_dial_opts opts;
    uint64_t start_ms;
    uint16_t port;
    /* The timer outlives a cancel: it is freed by its close callback. */
    struct td_resolve *rs;
    uv_timer_t timer;
    bool timer_open;
    struct sockaddr_storage addrs[TD_RESOLVE_MAX_ADDRS];
    size_t n_addrs, next_addr;
    uv_tcp_t *tcp;
    uv_connect_t creq;
    bool connecting;
    int last_err;
};

static void dial_connect_next(struct td_dial *dl);

static void dial_maybe_free(struct td_dial *dl)
{
    if (dl->state != DIAL_DONE || dl->timer_open || dl->connecting)
        return;
    free(dl);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct td_dial *dl = h->data;
    dl->timer_open = false;
    dial_maybe_free(dl);
}

static void on_tcp_closed(uv_handle_t *h)
{
    free(h);
}

void td_tcp_close_free(struct td_daemon *d, uv_tcp_t *tcp)
{
    uv_os_fd_t fd;
    if (!tcp || uv_is_closing((uv_handle_t *)tcp))
        return;
    if (uv_fileno((uv_handle_t *)tcp, &fd) == 0 && d->fds_in_use > 0)
        d->fds_in_use--;
    uv_close((uv_handle_t *)tcp, on_tcp_closed);
}

/* Report once, then tear down whatever is still in flight. */
static void dial_finish(struct td_dial *dl, int status, uv_tcp_t *tcp)
{
    td_dial_cb cb = dl->cb;
    void *arg = dl->arg;
    uint64_t elapsed = uv_now(dl->d->loop) - dl->start_ms;

    dl->state = DIAL_DONE;
    dl->cb = NULL;
    if (dl->timer_open && !uv_is_closing((uv_handle_t *)&dl->timer))
        uv_close((uv_handle_t *)&dl->timer, on_timer_closed);
    td_resolve_cancel(dl->rs);
    dl->rs = NULL;
    if (dl->tcp && dl->tcp != tcp) {
        td_tcp_close_free(dl->d, dl->tcp); /* a pending connect gets ECANCELED */
    }
    dl->tcp = NULL;
    if (cb)
        cb(arg, status, tcp, elapsed);
    dial_maybe_free(dl);
}

static void on_dial_timer(uv_timer_t *t)
{
    struct td_dial *dl = t->data;
    if (dl->state == DIAL_RESOLVING)
        dial_finish(dl, TD_EDNS, NULL);
    else if (dl->state == DIAL_CONNECTING)
        dial_finish(dl, TD_ETIMEDOUT, NULL);
}

static void on_dial_connect(uv_connect_t *req, int status)
{
    struct td_dial *dl = req->data;
    uv_tcp_t *t;

    dl->connecting = false;
    if (dl->state != DIAL_CONNECTING) {
        dial_maybe_free(dl);
        return;
    }
    t = dl->tcp;
    if (status == 0) {
        uv_tcp_nodelay(t, 1);
        uv_tcp_keepalive(t, 1, 60);
        dl->tcp = NULL;
        dial_finish(dl, 0, t);
        return;
    }
    dl->last_err = td_err_from_uv(status);
    td_tcp_close_free(dl->d, t);
    dl->tcp = NULL;
    dial_connect_next(dl);
}

static void dial_connect_next(struct td_dial *dl)
{
    while (dl->next_addr < dl->n_addrs) {
        struct sockaddr_storage *sa = &dl->addrs[dl->next_addr++];
        uv_os_fd_t fd;
        uv_tcp_t *t;
        int r;

        t = malloc(sizeof(*t));
        if (!t) {
            dial_finish(dl, TD_ENOMEM, NULL);
            return;
        }
        uv_tcp_init(dl->d->loop, t);
        dl->tcp = t;
        dl->creq.data = dl;
        r = uv_tcp_connect(&dl->creq, t, (struct sockaddr *)sa, on_dial_connect);
        if (uv_fileno((uv_handle_t *)t, &fd) == 0)
            dl->d->fds_in_use++;
        if (r == 0) {
            dl->connecting = true;
            return;
        }
        dl->last_err = td_err_from_uv(r);
        td_tcp_close_free(dl->d, t);
        dl->tcp = NULL;
        if (r == UV_EMFILE || r == UV_ENFILE) {
            daemon_note_emfile(dl->d, "connect");
            break;
        }
    }
    dial_finish(dl, dl->last_err ? dl->last_err : TD_EHOSTUNREACH, NULL);
}

/* The addresses are known: check them all, then connect to each in turn. */
static void dial_addresses(struct td_dial *dl, const struct sockaddr_storage *addrs, size_t n)
{
    dl->n_addrs = dl->next_addr = 0;
    for (size_t i = 0; i < n && dl->n_addrs < TD_RESOLVE_MAX_ADDRS; i++) {
        struct sockaddr_storage *sa = &dl->addrs[dl->n_addrs];
        /* One refused address refuses the target, so a name that resolves
         * to both a public and a private address cannot be used to get
         * through. */
        if (!td_sockaddr_allowed(dl->opts.rules, (const struct sockaddr *)&addrs[i])) {
            dial_finish(dl, TD_EACCES, NULL);
            return;
        }
        *sa = addrs[i];
        if (sa->ss_family == AF_INET)
            ((struct sockaddr_in *)sa)->sin_port = htons(dl->port);
        else
            ((struct sockaddr_in6 *)sa)->sin6_port = htons(dl->port);
        dl->n_addrs++;
    }
    dl->state = DIAL_CONNECTING;
    uv_timer_start(&dl->timer, on_dial_timer,
                   dl->opts.connect_timeout_ms ? dl->opts.connect_timeout_ms : 1, 0);
    dial_connect_next(dl);
}

static void on_dial_resolved(void *arg, int status, const struct sockaddr_storage *addrs, size_t n)
{
    struct td_dial *dl = arg;

    dl->rs = NULL;
    if (dl->state != DIAL_RESOLVING)
        return;
    if (status != 0) {
        dial_finish(dl, status, NULL);
        return;
    }
    dial_addresses(dl, addrs, n);
}

/* Literal addresses never go to the resolver's threads. */
static bool dial_literal(const char *host, uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    return uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0 ||
           uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0;
}

static void on_dial_start_literal(uv_timer_t *t)
{
    struct td_dial *dl = t->data;
    struct sockaddr_storage one = dl->addrs[0];
    dial_addresses(dl, &one, 1);
}

struct td_dial *td_dial_start(struct td_daemon *d, const char *host, uint16_t port,
                              const struct td_dial_opts *opts, td_dial_cb cb, void *arg)
{
    struct td_dial *dl = calloc(1, sizeof(*dl));
    uint8_t ip[16];

    if (!dl)
        return NULL;
    dl->d = d;
    dl->cb = cb;
    dl->arg = arg;
    dl->opts = *opts;
    dl->port = port;
    dl->start_ms = uv_now(d->loop);
    dl->state = DIAL_RESOLVING;
    uv_timer_init(d->loop, &dl->timer);
    dl->timer.data = dl;
    dl->timer_open = true;
    if ((td_ipv4_parse(host, strlen(host), ip) == 0 ||
         td_ipv6_parse(host, strlen(host), ip) == 0) &&
        dial_literal(host, port, &dl->addrs[0])) {
        /* Go on from the loop, not from inside the caller: it gets the dial
         * before any callback. */
        uv_timer_start(&dl->timer, on_dial_start_literal, 0, 0);
        return dl;
    }
    uv_timer_start(&dl->timer, on_dial_timer, opts->dns_timeout_ms ? opts->dns_timeout_ms : 1, 0);
    dl->rs = td_resolve_start(d, host, SOCK_STREAM, on_dial_resolved, dl);
    if (!dl->rs) {
        dl->state = DIAL_DONE;
        dl->cb = NULL;
        uv_close((uv_handle_t *)&dl->timer, on_timer_closed);
        return NULL;
    }
    return dl;
}

void td_dial_cancel(struct td_dial *dl)
{
    if (!dl || dl->state == DIAL_DONE)
        return;
    dl->cb = NULL;
    dial_finish(dl, TD_ECANCELED, NULL);
}
