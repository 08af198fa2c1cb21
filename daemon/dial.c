/* Outbound TCP with deadlines; see dial.h. */
#include "dial.h"

#include "addr.h"
#include "error.h"
#include "log.h"
#include "netutil.h"
#include "queue.h"

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
    /* The resolver request and the timer outlive a cancel: they are freed
     * by their own callbacks, which then see cb == NULL. */
    uv_getaddrinfo_t gai;
    bool gai_busy;
    uv_timer_t timer;
    bool timer_open;
    struct addrinfo *ai_head, *ai_next;
    uv_tcp_t *tcp;
    uv_connect_t creq;
    bool connecting;
    int last_err;
};

static void dial_connect_next(struct td_dial *dl);

static void dial_maybe_free(struct td_dial *dl)
{
    if (dl->state != DIAL_DONE || dl->gai_busy || dl->timer_open || dl->connecting)
        return;
    if (dl->ai_head)
        uv_freeaddrinfo(dl->ai_head);
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
    if (dl->gai_busy)
        uv_cancel((uv_req_t *)&dl->gai);
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
    while (dl->ai_next) {
        struct addrinfo *ai = dl->ai_next;
        uv_os_fd_t fd;
        uv_tcp_t *t;
        int r;

        dl->ai_next = ai->ai_next;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        t = malloc(sizeof(*t));
        if (!t) {
            dial_finish(dl, TD_ENOMEM, NULL);
            return;
        }
        uv_tcp_init(dl->d->loop, t);
        dl->tcp = t;
        dl->creq.data = dl;
        r = uv_tcp_connect(&dl->creq, t, ai->ai_addr, on_dial_connect);
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

static void on_dial_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct td_dial *dl = req->data;

    dl->gai_busy = false;
    if (dl->state != DIAL_RESOLVING) {
        if (res)
            uv_freeaddrinfo(res);
        dial_maybe_free(dl);
        return;
    }
    if (status < 0 || !res) {
        if (res)
            uv_freeaddrinfo(res);
        dial_finish(dl, status == UV_EAI_MEMORY ? TD_ENOMEM : TD_EDNS, NULL);
        return;
    }
    dl->ai_head = dl->ai_next = res;
    /* One refused address refuses the target, so a name that resolves to
     * both a public and a private address cannot be used to get through. */
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (!td_sockaddr_allowed(dl->opts.rules, ai->ai_addr)) {
            dial_finish(dl, TD_EACCES, NULL);
            return;
        }
    }
    dl->state = DIAL_CONNECTING;
    uv_timer_start(&dl->timer, on_dial_timer,
                   dl->opts.connect_timeout_ms ? dl->opts.connect_timeout_ms : 1, 0);
    dial_connect_next(dl);
}

struct td_dial *td_dial_start(struct td_daemon *d, const char *host, uint16_t port,
                              const struct td_dial_opts *opts, td_dial_cb cb, void *arg)
{
    struct td_dial *dl = calloc(1, sizeof(*dl));
    struct addrinfo hints;
    char portstr[8];
    uint8_t ip[16];
    int r;

    if (!dl)
        return NULL;
    dl->d = d;
    dl->cb = cb;
    dl->arg = arg;
    dl->opts = *opts;
    dl->start_ms = uv_now(d->loop);
    dl->state = DIAL_RESOLVING;
    uv_timer_init(d->loop, &dl->timer);
    dl->timer.data = dl;
    dl->timer_open = true;
    uv_timer_start(&dl->timer, on_dial_timer, opts->dns_timeout_ms ? opts->dns_timeout_ms : 1, 0);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    /* Literal addresses never touch the resolver's thread pool. */
    if (td_ipv4_parse(host, strlen(host), ip) == 0 || td_ipv6_parse(host, strlen(host), ip) == 0)
        hints.ai_flags = AI_NUMERICHOST;
    else
        hints.ai_flags = AI_ADDRCONFIG;
    snprintf(portstr, sizeof(portstr), "%u", port);
    dl->gai.data = dl;
    dl->gai_busy = true;
    r = uv_getaddrinfo(d->loop, &dl->gai, on_dial_resolved, host, portstr, &hints);
    if (r < 0) {
        dl->gai_busy = false;
        /* Report asynchronously would need another hop; a synchronous
         * failure here is rare (out of memory), so report it now. */
        dl->last_err = td_err_from_uv(r);
        dl->state = DIAL_DONE;
        dl->cb = NULL;
        uv_close((uv_handle_t *)&dl->timer, on_timer_closed);
        (void)cb;
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
