/* daemon/core/: the daemon's protocol-neutral core.  It owns the loop and
 * the lifecycle (start, drain, stop; daemon.c), the accept policy and the
 * listeners (listener.c), the relay (conn.c: one struct conn per client
 * connection, its state machine and bounded buffers), outbound connects
 * (dial.c) and name resolution (resolve.c), SOCKS5 UDP associations
 * (udp_assoc.c), relay buffers (chunk.c), the libuv error mapping
 * (uverr.c), and the kind tables through which protocols plug in
 * (tunnel.h).  It includes no front-end's and no protocol's header: the
 * entry point (daemon/kinds.c) hands it their tables.
 *
 * The daemon: one libuv loop, the loaded config, the listeners, tunnels and
 * servers, and the live connections.  Platform front ends (main_posix.c,
 * main_win.c) parse their arguments and call daemon_run(); everything after
 * that is shared. */
#ifndef TD_DAEMON_H_
#define TD_DAEMON_H_

#include "config/config.h"
#include "core/queue.h"
#include "core/tunnel.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct td_listener;
struct conn;

struct td_daemon;

struct daemon_opts {
    const char *config_path;
    int log_level_override; /* -1: use the config's */
    /* The protocols and front-ends this build has (daemon/kinds.c). */
    const struct td_kinds *kinds;
    /* Platform glue (signals on POSIX, the service control handler on
     * Windows): started once the listeners are bound, stopped when the
     * daemon begins to shut down so that the loop can end. */
    void (*platform_start)(struct td_daemon *d);
    void (*platform_stop)(struct td_daemon *d);
};

enum daemon_request {
    DAEMON_REQ_STOP = 1,
    DAEMON_REQ_REOPEN_LOGS = 2,
    DAEMON_REQ_RELOAD = 3, /* SIGHUP: as daemon_reload(), the outcome logged */
};

struct td_daemon {
    uv_loop_t *loop;
    struct td_config *cfg;

    struct td_listener **listeners; /* each alive until the loop ended */
    size_t n_listeners;

    /* Tunnels (client side) and servers, in config order. */
    const struct td_kinds *kinds;
    struct td_tunnel **tunnels;
    size_t n_tunnels;
    struct td_server **servers;
    size_t n_servers;
    /* Each protocol's daemon-wide state (wstan: the libwebsockets context),
     * by enum cfg_protocol; the core never looks inside. */
    void *proto_state[CFG_PROTO_COUNT];
    /* Tunnels and servers a reload or a bounce replaced: they finish their
     * work, and are freed after the loop. */
    struct td_queue retired_tunnels, retired_servers, retired_listeners;
    uv_timer_t retire_timer; /* closes replaced tunnels once they carry nothing */

    /* The managed users (state_dir), and the counters. */
    struct td_state *state;
    struct td_statmap *stats;
    uv_timer_t users_timer; /* expires old keys of rotations */
    uint64_t start_ms;
    uint64_t generation;
    struct td_control *control; /* the control socket (control/) */
    struct td_metrics *metrics;

    struct td_queue conns; /* every struct conn, for drain and shutdown */
    uint32_t n_conns;
    uint64_t next_conn_id;

    /* File descriptors: a budget derived from RLIMIT_NOFILE so that accept()
     * never hits EMFILE; see listener.c. */
    uint64_t fd_budget;
    uint64_t fds_in_use;
    bool accept_paused_logged;
    bool emfile_logged;
    uint64_t emfile_until; /* uv_now() before which accepting stays paused */
    uv_timer_t accept_timer;

    /* Every accepting socket (listeners and servers), for the accept
     * policy's retries (listener.h). */
    struct td_queue acceptors;
    struct td_queue resolves; /* name lookups in flight (resolve.c) */
    uint64_t hs_mem;          /* bytes in handshake buffers (limits.handshake_memory) */
    bool hs_mem_logged;

    bool draining;
    bool stopped;
    uv_timer_t drain_timer;
    const struct daemon_opts *opts;

    uint64_t stat_accepted, stat_closed;
};

int daemon_run(const struct daemon_opts *opts);
void daemon_request(struct td_daemon *d, enum daemon_request req);

/* Called by connections when they are freed, so that a drain can end and
 * paused listeners can resume. */
void daemon_conn_gone(struct td_daemon *d);
/* Descriptors were given back to the budget (d->fds_in_use went down)
 * outside a connection's end: paused listeners and servers may resume. */
void daemon_fds_freed(struct td_daemon *d);
/* Something failed with EMFILE/ENFILE: pause accepting briefly, log once. */
void daemon_note_emfile(struct td_daemon *d, const char *what);
/* Accepting is paused for lack of room: retry within ms at the latest, even
 * if no one reports freed descriptors (a safety net, not a poll). */
void daemon_accept_retry(struct td_daemon *d, uint64_t ms);
bool daemon_fds_available(const struct td_daemon *d, uint64_t n);
/* Route c to host:port through the tunnel its listener names. */
void daemon_tunnel_open(struct td_daemon *d, struct conn *c, const char *host, uint16_t port);
/* A server-side tunnel ended: a drain may finish, descriptors came back. */
void daemon_server_gone(struct td_daemon *d);

struct td_server *td_server_find(struct td_daemon *d, const char *name);
struct td_listener *td_listener_find(struct td_daemon *d, const char *name);

/* Re-read the config file and the state, validate all of it, and apply
 * only the difference: new entries start, removed ones stop (their
 * connections finish), changed ones are replaced (the old one drains),
 * unchanged ones are untouched.  On a config that does not validate (or
 * an entry that cannot start) nothing changes: returns TD_ECONFIG or
 * TD_EIO with errs filled.  TD_EIO after the swap names entries that could
 * not come back (their errors in errs). */
struct td_reload_result {
    uint32_t started, stopped, replaced, kept;
};
int daemon_reload(struct td_daemon *d, struct cfg_errors *errs, struct td_reload_result *res);
/* Bounce a tunnel (close its connections and links, start again), a
 * listener or a server (bind again; connections carry on).  *kind is set
 * to "tunnel", "listener" or "server".  TD_ENOTFOUND for no such name. */
int daemon_bounce(struct td_daemon *d, const char *name, const char **kind);

/* Map a libuv status to TD_E* (uverr.c). */
int td_err_from_uv(int uverr);

#endif
