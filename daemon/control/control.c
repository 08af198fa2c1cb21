/* The control socket (docs/control-protocol.md): a uv_pipe_t, a session per
 * client with a bounded request buffer, an idle deadline and a deadline for
 * handing a reply over, so one slow or silent client never holds up
 * another, nor the daemon. */
#include "control/control.h"

#include "core/conn.h"
#include "platform/platform.h"
#include "util/error.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define CTL_IDLE_MS     10000 /* a client that sends nothing is dropped */
#define CTL_WRITE_MS    10000 /* a reply the client does not read is dropped */
#define CTL_MAX_CLIENTS 64

struct td_control {
    struct td_daemon *d;
    uv_pipe_t *pipe; /* freed by its close callback */
    char *path;      /* as bound */
    struct td_queue clients;
    uint32_t n_clients;
    bool refuse_logged;
};

struct ctl_client {
    struct td_queue node;
    struct td_control *ctl;
    uv_pipe_t pipe;
    uv_timer_t timer;
    int handles;
    char *buf;
    size_t len, cap, scanned;
    bool writing; /* a reply is on its way: the next request waits */
    bool finish;  /* close once the reply is out (a refusal) */
    bool closing;
    char who[96];
};

struct ctl_write {
    uv_write_t req;
    struct ctl_client *cl;
    struct ctl_buf b;
};

static void ctl_client_process(struct ctl_client *cl);

/* ---- a client ------------------------------------------------------------ */

static void ctl_client_closed(uv_handle_t *h)
{
    struct ctl_client *cl = h->data;
    if (--cl->handles > 0)
        return;
    td_queue_remove(&cl->node);
    cl->ctl->n_clients--;
    free(cl->buf);
    free(cl);
}

static void ctl_client_close(struct ctl_client *cl)
{
    if (cl->closing)
        return;
    cl->closing = true;
    uv_close((uv_handle_t *)&cl->timer, ctl_client_closed);
    uv_close((uv_handle_t *)&cl->pipe, ctl_client_closed);
}

static void ctl_client_on_timer(uv_timer_t *t)
{
    struct ctl_client *cl = t->data;
    LOG_DEBUG("control", "%s: %s; closing", cl->who,
              cl->writing ? "does not read its reply" : "idle");
    ctl_client_close(cl);
}

static void ctl_on_written(uv_write_t *req, int status)
{
    struct ctl_write *w = (struct ctl_write *)req;
    struct ctl_client *cl = w->cl;

    ctl_buf_free(&w->b);
    free(w);
    cl->writing = false;
    if (cl->closing)
        return;
    if (status < 0 || cl->finish) {
        ctl_client_close(cl);
        return;
    }
    uv_timer_start(&cl->timer, ctl_client_on_timer, CTL_IDLE_MS, 0);
    ctl_client_process(cl); /* a request that came meanwhile */
}

static void ctl_reply(struct ctl_client *cl, struct ctl_buf *b)
{
    struct ctl_write *w = calloc(1, sizeof(*w));
    uv_buf_t ub;

    if (!w || ctl_buf_end(b) != 0) {
        /* A reply that cannot be built is an error the client can read. */
        ctl_buf_free(b);
        if (!w) {
            ctl_client_close(cl);
            return;
        }
        ctl_buf_init(&w->b, 1024);
        ctl_buf_begin(&w->b);
        ctl_buf_addf(&w->b, "status", "%d", TD_ETOOBIG);
        ctl_buf_add(&w->b, "error", "the reply is too large; use a filter");
        ctl_buf_end(&w->b);
    } else {
        w->b = *b;
    }
    w->cl = cl;
    cl->writing = true;
    ub = uv_buf_init(w->b.p, (unsigned)w->b.len);
    if (uv_write(&w->req, (uv_stream_t *)&cl->pipe, &ub, 1, ctl_on_written) != 0) {
        ctl_buf_free(&w->b);
        free(w);
        cl->writing = false;
        ctl_client_close(cl);
        return;
    }
    uv_timer_start(&cl->timer, ctl_client_on_timer, CTL_WRITE_MS, 0);
}

static void ctl_reply_error(struct ctl_client *cl, int status, const char *msg)
{
    struct ctl_buf b;

    ctl_buf_init(&b, 4096);
    ctl_buf_begin(&b);
    ctl_buf_addf(&b, "status", "%d", status);
    ctl_buf_add(&b, "error", msg);
    if (status == TD_EUNSUPPORTED)
        ctl_buf_add_u64(&b, "version", CTL_VERSION);
    ctl_reply(cl, &b);
}

/* Serve every complete request in the buffer, one at a time. */
static void ctl_client_process(struct ctl_client *cl)
{
    while (!cl->closing && !cl->writing && cl->len > 0) {
        struct ctl_msg req;
        struct ctl_buf resp;
        size_t n = 0;
        int r = ctl_msg_frame(cl->buf, cl->len, CTL_MAX_REQUEST, &cl->scanned, &n);

        if (r == TD_EAGAIN)
            return;
        if (r != 0) {
            LOG_INFO("control", "%s: request over %d bytes; closing", cl->who, CTL_MAX_REQUEST);
            cl->len = 0;
            /* The reply goes out, then the connection ends. */
            cl->finish = true;
            uv_read_stop((uv_stream_t *)&cl->pipe);
            ctl_reply_error(cl, TD_ETOOBIG, "request too large");
            return;
        }
        r = ctl_msg_parse(cl->buf, n, &req);
        memmove(cl->buf, cl->buf + n, cl->len - n);
        cl->len -= n;
        cl->scanned = 0;
        if (r == TD_EUNSUPPORTED) {
            ctl_reply_error(cl, r, "unsupported protocol version");
            continue;
        }
        if (r != 0) {
            LOG_INFO("control", "%s: malformed request", cl->who);
            ctl_reply_error(cl, TD_EPROTO, "malformed request");
            continue;
        }
        ctl_buf_init(&resp, CTL_MAX_REPLY);
        ctl_buf_begin(&resp);
        ctl_dispatch(cl->ctl->d, &req, &resp);
        ctl_msg_free(&req);
        ctl_reply(cl, &resp);
    }
}

static void ctl_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ctl_client *cl = h->data;
    (void)suggested;
    if (!cl->buf) {
        cl->cap = CTL_MAX_REQUEST + 1;
        cl->buf = malloc(cl->cap);
        if (!cl->buf)
            cl->cap = 0;
    }
    *buf = uv_buf_init(cl->buf + cl->len, (unsigned)(cl->cap - cl->len));
}

static void ctl_client_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct ctl_client *cl = st->data;
    (void)buf;

    if (cl->closing || n == 0)
        return;
    if (n < 0) {
        ctl_client_close(cl);
        return;
    }
    cl->len += (size_t)n;
    if (!cl->writing)
        uv_timer_start(&cl->timer, ctl_client_on_timer, CTL_IDLE_MS, 0);
    ctl_client_process(cl);
    /* A full buffer that is not a request yet, behind a reply in flight:
     * stop reading until the reply is out. */
    if (!cl->closing && cl->len >= cl->cap)
        uv_read_stop((uv_stream_t *)&cl->pipe);
}

static void ctl_on_connection(uv_stream_t *server, int status)
{
    struct td_control *ctl = server->data;
    struct ctl_client *cl;
    uv_os_fd_t fd;

    if (status < 0)
        return;
    cl = calloc(1, sizeof(*cl));
    if (!cl)
        return; /* it waits in the backlog; the next connection retries */
    cl->ctl = ctl;
    uv_pipe_init(ctl->d->loop, &cl->pipe, 0);
    cl->pipe.data = cl;
    uv_timer_init(ctl->d->loop, &cl->timer);
    cl->timer.data = cl;
    cl->handles = 2;
    td_queue_insert_tail(&ctl->clients, &cl->node);
    ctl->n_clients++;
    if (uv_accept(server, (uv_stream_t *)&cl->pipe) != 0) {
        ctl_client_close(cl);
        return;
    }
    snprintf(cl->who, sizeof(cl->who), "control client");
    if (uv_fileno((uv_handle_t *)&cl->pipe, &fd) == 0 &&
        !td_ctlsock_peer_ok(fd, ctl->d->cfg->control.group, cl->who, sizeof(cl->who))) {
        LOG_WARN("control",
                 "refused a control client (%s): not root, not our user, not in "
                 "the control group",
                 cl->who);
        /* The refusal goes out, then the connection ends. */
        cl->finish = true;
        ctl_reply_error(cl, TD_EACCES, "access denied");
        return;
    }
    if (ctl->n_clients > CTL_MAX_CLIENTS) {
        if (!ctl->refuse_logged)
            LOG_WARN("control", "more than %d control clients at once: refusing", CTL_MAX_CLIENTS);
        ctl->refuse_logged = true;
        ctl_client_close(cl);
        return;
    }
    ctl->refuse_logged = false;
    uv_timer_start(&cl->timer, ctl_client_on_timer, CTL_IDLE_MS, 0);
    if (uv_read_start((uv_stream_t *)&cl->pipe, ctl_client_alloc, ctl_client_on_read) != 0)
        ctl_client_close(cl);
}

/* ---- the socket ----------------------------------------------------------- */

static void ctl_pipe_closed(uv_handle_t *h)
{
    free(h);
}

static void ctl_close_socket(struct td_control *ctl, bool unlink_it)
{
    if (ctl->pipe) {
        uv_close((uv_handle_t *)ctl->pipe, ctl_pipe_closed);
        ctl->pipe = NULL;
        if (unlink_it && ctl->path) {
            uv_fs_t req;
            uv_fs_unlink(ctl->d->loop, &req, ctl->path, NULL);
            uv_fs_req_cleanup(&req);
        }
    }
    free(ctl->path);
    ctl->path = NULL;
}

static int ctl_open_socket(struct td_control *ctl, const char *path)
{
    char why[256] = "";
    int r;

    r = td_ctlsock_prepare(path, why, sizeof(why));
    if (r != 0) {
        LOG_WARN("control", "control socket %s: %s; running without it", path, why);
        return r;
    }
    ctl->pipe = malloc(sizeof(*ctl->pipe));
    if (!ctl->pipe)
        return TD_ENOMEM;
    uv_pipe_init(ctl->d->loop, ctl->pipe, 0);
    ctl->pipe->data = ctl;
    r = uv_pipe_bind(ctl->pipe, path);
    if (r == 0)
        r = uv_listen((uv_stream_t *)ctl->pipe, 16, ctl_on_connection);
    if (r != 0) {
        LOG_WARN("control", "control socket %s: %s; running without it (set control.socket)", path,
                 uv_strerror(r));
        uv_close((uv_handle_t *)ctl->pipe, ctl_pipe_closed);
        ctl->pipe = NULL;
        return td_err_from_uv(r);
    }
    ctl->path = strdup(path);
    r = td_ctlsock_secure(path, ctl->d->cfg->control.group, why, sizeof(why));
    if (r != 0)
        LOG_WARN("control", "control socket %s: %s", path, why);
    LOG_INFO("control", "control socket %s", path);
    return 0;
}

static int ctl_start(struct td_daemon *d)
{
    struct td_control *ctl = calloc(1, sizeof(*ctl));

    if (!ctl)
        return TD_ENOMEM;
    ctl->d = d;
    td_queue_init(&ctl->clients);
    d->control = ctl;
    /* Without the socket the daemon still serves its traffic. */
    (void)ctl_open_socket(ctl, d->cfg->control.socket);
    return 0;
}

static int ctl_reload(struct td_daemon *d, const struct td_config *old)
{
    struct td_control *ctl = d->control;

    if (!ctl || (strcmp(old->control.socket, d->cfg->control.socket) == 0 &&
                 ((!old->control.group && !d->cfg->control.group) ||
                  (old->control.group && d->cfg->control.group &&
                   strcmp(old->control.group, d->cfg->control.group) == 0))))
        return 0;
    /* Clients already connected finish on the old socket's connections. */
    ctl_close_socket(ctl, true);
    return ctl_open_socket(ctl, d->cfg->control.socket);
}

static void ctl_stop(struct td_daemon *d)
{
    struct td_control *ctl = d->control;
    struct td_queue *q, *next;

    if (!ctl)
        return;
    ctl_close_socket(ctl, true);
    for (q = ctl->clients.next; q != &ctl->clients; q = next) {
        next = q->next;
        ctl_client_close(td_container_of(q, struct ctl_client, node));
    }
}

static void ctl_free(struct td_daemon *d)
{
    struct td_control *ctl = d->control;
    if (!ctl)
        return;
    free(ctl->path);
    free(ctl);
    d->control = NULL;
}

const struct td_service td_control_service = {
    .name = "control",
    .start = ctl_start,
    .reload = ctl_reload,
    .stop = ctl_stop,
    .free = ctl_free,
};
