/* Accepting sockets and the one accept policy that every one of them follows:
 * the listeners (front-ends) and the tunnel servers alike.
 *
 * A connection is taken from the kernel's backlog only when there is room:
 * the daemon is not draining, the descriptor budget has space for what one
 * connection needs, max_connections is not reached (listeners), and the
 * owner could take it (memory).  Otherwise uv_accept() is not called: libuv
 * then stops polling the socket, the client waits in the backlog, and
 * nothing spins.  Every acceptor that holds a connection this way is retried
 * when room comes back (td_acceptor_try_all(), from daemon_fds_freed() and a
 * one-second timer), so no accepting socket can go deaf for good.
 *
 * Handshakes in progress (before a client has authenticated or named its
 * target) are capped per acceptor (limits.max_handshakes).  At the cap the
 * oldest handshake is closed to make room: a flood of slow handshakes then
 * costs only itself, and new clients are still served. */
#ifndef TD_LISTENER_H_
#define TD_LISTENER_H_

#include "config/config.h"
#include "core/daemon.h"
#include "core/queue.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct td_acceptor;

/* Take one connection: call td_acceptor_accept() (uv_accept on the
 * listening socket).  Return 0 when the connection was taken or refused for
 * good, or TD_ENOMEM / TD_EMFILE when it was left in the backlog (nothing
 * accepted): it is retried once resources come back. */
typedef int (*td_accept_cb)(struct td_acceptor *a);

struct td_acceptor {
    struct td_daemon *d;
    uv_tcp_t *tcp; /* the listening socket; freed by its close callback */
    const char *name;
    td_accept_cb accept_cb;
    void *ud;
    uint32_t fds_per_conn; /* descriptors one accepted connection may need */
    bool counts_conns;     /* max_connections applies (listeners) */
    bool pending;          /* libuv holds a connection we have not taken */
    bool open;
    bool paused_logged;
    struct td_queue node; /* d->acceptors */
    struct td_queue hs;   /* handshakes in progress, oldest first */
    uint32_t n_hs;
    uint64_t hs_evicted;
    bool evict_logged;
    char addr[80]; /* the bound address, as logged */
    uint16_t port; /* the bound port */
};

struct td_acceptor_opts {
    const char *name;
    const char *what; /* "listener" or "server", for the log line */
    const char *kind; /* its type or protocol, for the log line */
    const struct td_hostport *listen;
    td_accept_cb accept_cb;
    void *ud;
    uint32_t fds_per_conn;
    bool counts_conns;
};

/* Resolve, bind, listen, count the descriptor and log
 * "WHAT NAME (KIND) listening on ADDR" with the real port.  Errors are
 * logged.  Returns 0 or TD_E*. */
int td_acceptor_open(struct td_daemon *d, struct td_acceptor *a, const struct td_acceptor_opts *o);
/* Stop accepting; the listening socket closes (handshakes in progress are
 * their owners' business). */
void td_acceptor_close(struct td_acceptor *a);
/* uv_accept() into client (initialised by the caller).  0 or a libuv error. */
int td_acceptor_accept(struct td_acceptor *a, uv_tcp_t *client);
/* Take what is waiting, as far as the policy allows. */
void td_acceptor_try(struct td_acceptor *a);
void td_acceptor_try_all(struct td_daemon *d);

/* One handshake in progress, embedded in the owner's object. */
struct td_hs_slot {
    struct td_queue node;
    struct td_acceptor *a; /* NULL when not counted */
    /* Close the owner (it must call td_hs_end() on this slot, directly or
     * from its close path, before returning). */
    void (*evict)(struct td_hs_slot *s);
};

void td_hs_begin(struct td_acceptor *a, struct td_hs_slot *s, void (*evict)(struct td_hs_slot *));
/* The handshake is over (done, failed or closed).  Idempotent. */
void td_hs_end(struct td_hs_slot *s);

/* Handshake buffer memory, daemon-wide (limits.handshake_memory): a
 * handshake buffer may grow by n bytes only when the budget has room.
 * Returns false (and logs once per episode) when it has not. */
bool td_hs_mem_take(struct td_daemon *d, size_t n);
void td_hs_mem_give(struct td_daemon *d, size_t n);

/* A front-end listener ("listeners:" entry). */
struct td_listener {
    struct td_queue retired; /* d->retired_listeners, once a reload removed it */
    struct td_daemon *d;
    const struct cfg_listener *cfg;
    struct td_config *owner; /* the config cfg lives in (a reference) */
    struct td_acceptor acc;
};

/* cfg is an entry of owner, which the listener holds a reference to. */
/* port: what to bind when cfg->listen says port 0 (0: any). */
int listener_start(struct td_daemon *d, struct td_listener *l, struct td_config *owner,
                   const struct cfg_listener *cfg, uint16_t port);
void listener_close(struct td_listener *l);
/* Close the listening socket and bind again (connections carry on). */
int listener_rebind(struct td_listener *l);
/* After the loop: drop the config reference. */
void listener_free(struct td_listener *l);

#endif
