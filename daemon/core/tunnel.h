/* The kind tables: how a protocol plugs into the core.
 *
 * Each protocol folder (daemon/wstan/, daemon/jproxy/) defines one
 * struct td_proto with its tunnel (client) and server operations.  The
 * daemon's entry point hands the core the list (struct td_kinds, in
 * daemon/kinds.c), and the core looks a kind up by the config's protocol
 * value: it never names a protocol nor includes a protocol's header.
 *
 * The core keeps one struct td_tunnel per "tunnels:" entry and one
 * struct td_server per "servers:" entry; the protocol keeps its own state
 * in impl.  Each holds a reference to the config it was made from, so a
 * reload can swap configs while old objects finish. */
#ifndef TD_TUNNEL_H_
#define TD_TUNNEL_H_

#include "config/config.h"
#include "core/queue.h"
#include "core/stats.h"
#include "proto/socks5.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct td_daemon;
struct td_state;
struct conn;
struct td_tunnel;
struct td_server;
struct td_udp_flow; /* a protocol's UDP association through a tunnel */

/* What a protocol tells a UDP association's owner. */
struct td_udp_cbs {
    /* A datagram for the client, from src (a destination it sent to). */
    void (*recv)(void *arg, const struct socks5_addr *src, const uint8_t *p, size_t len);
    /* The flow ended on the tunnel's side: the owner calls udp_close(), and
     * may open a new flow for later datagrams. */
    void (*closed)(void *arg);
};

struct td_tunnel_stats {
    const char *state;      /* "up", "connecting", "down", "stopped", ... */
    uint32_t streams;       /* connections it carries now */
    uint32_t links;         /* connections to its server (jProxy 1; wstan: WebSockets) */
    uint32_t pooled;        /* idle links kept for reuse */
    uint64_t links_opened;  /* since start */
    uint64_t streams_total; /* since start */
};

struct td_server_stats {
    char listen[80];        /* the bound address */
    uint32_t tunnels;       /* client connections open now */
    uint32_t handshakes;    /* of which still in the handshake */
    uint64_t tunnels_total; /* accepted since start */
};

struct td_tunnel_ops {
    /* t->d, t->cfg and t->proto are set: load keys, allocate, set t->impl.
     * Errors are logged.  Returns 0 or TD_E*. */
    int (*create)(struct td_tunnel *t);
    /* Go to work (jProxy dials its server up front).  May be NULL. */
    int (*start)(struct td_tunnel *t);
    /* Carry c to host:port: set c->tops/c->tstream, and later call
     * conn_target_connected() or conn_target_failed(). */
    void (*open_stream)(struct td_tunnel *t, struct conn *c, const char *host, uint16_t port);
    /* UDP, all NULL when the protocol has none.  udp_supported: 1, 0, or -1
     * while not known (the tunnel is not up). */
    int (*udp_supported)(struct td_tunnel *t);
    struct td_udp_flow *(*udp_open)(struct td_tunnel *t, const struct td_udp_cbs *cbs, void *arg);
    /* Best effort, as UDP: 0, or TD_E* when the datagram was dropped. */
    int (*udp_send)(struct td_udp_flow *f, const struct socks5_addr *dst, const uint8_t *p,
                    size_t len);
    /* No callbacks after this. */
    void (*udp_close)(struct td_udp_flow *f);
    /* Stop: fail what waits for it, close its links and idle resources, no
     * reconnecting; the connections it carries fail or end with them. */
    void (*close)(struct td_tunnel *t);
    /* After close, once the loop no longer runs its handles. */
    void (*free)(struct td_tunnel *t);
    void (*stats)(struct td_tunnel *t, struct td_tunnel_stats *out);
};

struct td_server_ops {
    /* s->d, s->cfg and s->proto are set: load users and keys (from
     * s->d->cfg's users and s->d->state), set s->impl. */
    int (*create)(struct td_server *s);
    /* The users or keys changed (a managed user added or removed, a key
     * rotation, a reload): what the server accepts from now on is rebuilt
     * from cfg's users and st.  Live tunnels carry on.  On failure nothing
     * changes. */
    int (*set_users)(struct td_server *s, const struct td_config *cfg, const struct td_state *st);
    /* Bind and listen; logs "server NAME (PROTO) listening on ADDR". */
    int (*start)(struct td_server *s);
    /* Close the listening socket; handshakes in progress are refused. */
    void (*stop_accepting)(struct td_server *s);
    /* Drain: tunnels with nothing to do close now, busy ones when done.
     * May be NULL. */
    void (*drain)(struct td_server *s);
    /* Close every tunnel now. */
    void (*close)(struct td_server *s);
    /* Tunnels not yet gone (open, or still closing). */
    uint32_t (*active)(struct td_server *s);
    void (*free)(struct td_server *s);
    void (*stats)(struct td_server *s, struct td_server_stats *out);
    /* The live tunnels (jProxy: each stream), for the control plane; their
     * ids are "SERVER:ID".  cb must not close anything. */
    void (*each)(struct td_server *s, td_conn_cb cb, void *arg);
    /* Close the tunnel or stream whose id (after "SERVER:") is id; false
     * when there is none. */
    bool (*kill)(struct td_server *s, const char *id);
    /* Close every tunnel of this user now; returns how many. */
    size_t (*kill_user)(struct td_server *s, const char *user);
};

struct td_proto {
    const char *name; /* as in the config's protocol: */
    enum cfg_protocol protocol;
    const struct td_tunnel_ops *tunnel;
    const struct td_server_ops *server;
    /* In the loop, once every tunnel and server of the kind is closed: let
     * go of what keeps the loop alive.  May be NULL. */
    void (*loop_stop)(struct td_daemon *d);
    /* After the loop ended, before it is closed.  May be NULL. */
    void (*loop_done)(struct td_daemon *d);
};

struct frontend;

/* A service of the daemon's own beside its listeners (the control socket,
 * the metrics endpoint), plugged in by the entry point like the kinds. */
struct td_service {
    const char *name;
    /* Once listeners and servers are up (before privileges are dropped). */
    int (*start)(struct td_daemon *d);
    /* A reload swapped the config in (old is the previous one). */
    int (*reload)(struct td_daemon *d, const struct td_config *old);
    /* The daemon stops: close what keeps the loop alive. */
    void (*stop)(struct td_daemon *d);
    /* After the loop. */
    void (*free)(struct td_daemon *d);
};

#define TD_MAX_SERVICES 4

/* What the daemon is built with: the protocols, the front-end of each
 * listener type, and its services. */
struct td_kinds {
    const struct td_proto *protos[CFG_PROTO_COUNT];
    const struct frontend *frontends[4];                /* by enum cfg_listener_type */
    const struct td_service *services[TD_MAX_SERVICES]; /* NULL-terminated */
};

struct td_tunnel {
    struct td_queue retired; /* d->retired_tunnels, once replaced by a reload or bounce */
    struct td_daemon *d;
    const struct cfg_tunnel *cfg;
    struct td_config *owner; /* the config cfg lives in (a reference) */
    const struct td_proto *proto;
    void *impl;
    bool created;
    bool closed; /* ops->close ran */
};

struct td_server {
    struct td_queue retired; /* d->retired_servers, once replaced */
    struct td_daemon *d;
    const struct cfg_server *cfg;
    /* Where start() binds: cfg->listen, except that a bounce of a server on
     * port 0 binds the port it had, since its clients know that one. */
    struct td_hostport listen;
    uint16_t bound_port; /* set by start() */
    struct td_config *owner;
    const struct td_proto *proto;
    void *impl;
    bool created;
};

/* The tunnel a listener routes to, by name; NULL for none. */
struct td_tunnel *td_tunnel_find(struct td_daemon *d, const char *name);
/* The kind for a protocol (NULL when this build has none). */
const struct td_proto *td_proto_find(const struct td_daemon *d, enum cfg_protocol p);

#endif
