/* Shared name lookups; see resolve.h. */
#include "core/resolve.h"

#include "util/addr.h"
#include "util/error.h"
#include "util/log.h"
#include "core/queue.h"
#include "platform/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One getaddrinfo() in flight, and everyone waiting for it. */
struct rs_entry {
    struct td_queue node; /* d->resolves */
    struct td_daemon *d;
    uv_getaddrinfo_t req;
    struct td_queue waiters;
    int socktype;
    char host[TD_HOST_MAX + 1];
};

struct td_resolve {
    struct td_queue node; /* e->waiters */
    struct rs_entry *e;
    td_resolve_cb cb;
    void *arg;
};

static void rs_on_done(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct rs_entry *e = req->data;
    struct sockaddr_storage addrs[TD_RESOLVE_MAX_ADDRS];
    struct td_queue waiters;
    size_t n = 0;
    int err = 0;

    /* Off the list first: a callback may start a new lookup of this name. */
    td_queue_remove(&e->node);
    for (struct addrinfo *ai = status == 0 ? res : NULL; ai && n < TD_RESOLVE_MAX_ADDRS;
         ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(addrs[0]))
            continue;
        memset(&addrs[n], 0, sizeof(addrs[n]));
        memcpy(&addrs[n], ai->ai_addr, ai->ai_addrlen);
        n++;
    }
    if (res)
        uv_freeaddrinfo(res);
    if (status == UV_EAI_MEMORY)
        err = TD_ENOMEM;
    else if (status < 0 || n == 0)
        err = TD_EDNS;
    /* Move the waiters out, so that a cancel from inside a callback (of
     * another waiter's owner) finds a consistent list. */
    td_queue_init(&waiters);
    while (!td_queue_empty(&e->waiters)) {
        struct td_queue *q = e->waiters.next;
        td_queue_remove(q);
        td_queue_insert_tail(&waiters, q);
    }
    while (!td_queue_empty(&waiters)) {
        struct td_resolve *r = td_container_of(waiters.next, struct td_resolve, node);
        td_queue_remove(&r->node);
        r->e = NULL;
        r->cb(r->arg, err, err ? NULL : addrs, err ? 0 : n);
        free(r);
    }
    free(e);
}

static struct rs_entry *rs_find(struct td_daemon *d, const char *host, int socktype)
{
    struct td_queue *q;
    for (q = d->resolves.next; q != &d->resolves; q = q->next) {
        struct rs_entry *e = td_container_of(q, struct rs_entry, node);
        /* DNS names are case-insensitive. */
        if (e->socktype == socktype && strcasecmp(e->host, host) == 0)
            return e;
    }
    return NULL;
}

struct td_resolve *td_resolve_start(struct td_daemon *d, const char *host, int socktype,
                                    td_resolve_cb cb, void *arg)
{
    struct td_resolve *r;
    struct rs_entry *e;

    if (strlen(host) > TD_HOST_MAX)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->cb = cb;
    r->arg = arg;
    e = rs_find(d, host, socktype);
    if (!e) {
        struct addrinfo hints;
        int rc;

        e = calloc(1, sizeof(*e));
        if (!e) {
            free(r);
            return NULL;
        }
        e->d = d;
        e->socktype = socktype;
        snprintf(e->host, sizeof(e->host), "%s", host);
        td_queue_init(&e->waiters);
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = socktype;
        hints.ai_flags = AI_ADDRCONFIG;
        e->req.data = e;
        rc = uv_getaddrinfo(d->loop, &e->req, rs_on_done, e->host, NULL, &hints);
        if (rc < 0) {
            LOG_DEBUG("dns", "cannot start a lookup of %s: %s", e->host, uv_strerror(rc));
            free(e);
            free(r);
            return NULL;
        }
        td_queue_insert_tail(&d->resolves, &e->node);
    }
    r->e = e;
    td_queue_insert_tail(&e->waiters, &r->node);
    return r;
}

void td_resolve_cancel(struct td_resolve *r)
{
    struct rs_entry *e;

    if (!r)
        return;
    e = r->e;
    td_queue_remove(&r->node);
    free(r);
    /* Nobody waits any more: a lookup still queued need not run (a running
     * one cannot be stopped; its result is dropped). */
    if (e && td_queue_empty(&e->waiters))
        uv_cancel((uv_req_t *)&e->req);
}

size_t td_resolve_inflight(const struct td_daemon *d)
{
    size_t n = 0;
    for (const struct td_queue *q = d->resolves.next; q != &d->resolves; q = q->next)
        n++;
    return n;
}

void td_resolve_pool_setup(unsigned threads)
{
    char v[16];

    snprintf(v, sizeof(v), "%u", threads);
    /* An operator's UV_THREADPOOL_SIZE wins over the config. */
    osenv_set_default("UV_THREADPOOL_SIZE", v);
}
