/* The daemon: one libuv loop, the loaded config, the listeners and the live
 * connections.  Platform front ends (main_posix.c, main_win.c) parse their
 * arguments and call daemon_run(); everything after that is shared. */
#ifndef TD_DAEMON_H_
#define TD_DAEMON_H_

#include "config/config.h"
#include "core/queue.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct td_listener;
struct jp_client;
struct jp_server;
struct ws_client;
struct ws_server;
struct lws_context;
struct conn;

struct td_daemon;

struct daemon_opts {
    const char *config_path;
    int log_level_override; /* -1: use the config's */
    /* Platform glue (signals on POSIX, the service control handler on
     * Windows): started once the listeners are bound, stopped when the
     * daemon begins to shut down so that the loop can end. */
    void (*platform_start)(struct td_daemon *d);
    void (*platform_stop)(struct td_daemon *d);
};

enum daemon_request {
    DAEMON_REQ_STOP = 1,
    DAEMON_REQ_REOPEN_LOGS = 2,
};

struct td_daemon {
    uv_loop_t *loop;
    struct td_config *cfg;

    struct td_listener *listeners;
    size_t n_listeners;

    /* Tunnels (client side), in config order, and servers. */
    struct jp_client **jp_clients; /* NULL for tunnels of another protocol */
    size_t n_tunnels;
    struct jp_server **jp_servers; /* NULL for servers of another protocol */
    size_t n_servers;
    struct ws_client **ws_clients; /* same, for wstan */
    struct ws_server **ws_servers;
    struct lws_context *lws; /* ws_lws.c: only when some wstan entry exists */
    bool lws_stopped;

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
/* The jProxy client behind a tunnel name, or NULL. */
struct jp_client *daemon_find_jp_client(struct td_daemon *d, const char *name);
/* The wstan client behind a tunnel name, or NULL. */
struct ws_client *daemon_find_ws_client(struct td_daemon *d, const char *name);
/* A server-side tunnel ended (drain bookkeeping). */
void daemon_server_gone(struct td_daemon *d);

/* Platform hooks, in fdlimit_posix.c / fdlimit_win.c, privdrop_*.c and
 * osenv_*.c. */
uint64_t fdlimit_raise(void);
int privdrop(const char *user);
/* Set an environment variable unless it is set already. */
void osenv_set_default(const char *name, const char *value);

/* Map a libuv status to TD_E* (uverr.c). */
int td_err_from_uv(int uverr);

#endif
