/* Counters for the control plane and the metrics endpoint: for each user,
 * tunnel, listener and server, the bytes both ways, connections (total and
 * active) and failures by reason.
 *
 * Nothing is counted on the data path: a connection adds its totals here
 * when it ends (td_stats_closed()), and a query adds the live connections'
 * bytes as it reads (td_stats_collect()), so the relay pays one call per
 * connection, not per chunk. */
#ifndef TD_STATS_H_
#define TD_STATS_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct td_daemon;

enum td_stat_kind {
    TD_STAT_USER = 0,
    TD_STAT_TUNNEL,
    TD_STAT_LISTENER,
    TD_STAT_SERVER,
    TD_STAT_KINDS,
};

/* The end reasons (conn.h END_*) that count as failures, in this order. */
#define TD_FAIL_MAP(XX)                                                                            \
    XX(REFUSED, "refused")                                                                         \
    XX(CONNECT_TIMEOUT, "connect-timeout")                                                         \
    XX(UNREACHABLE, "unreachable")                                                                 \
    XX(DNS, "dns-failed")                                                                          \
    XX(PROTOCOL, "protocol-error")                                                                 \
    XX(AUTH, "auth-failed")                                                                        \
    XX(NOT_ALLOWED, "not-allowed")                                                                 \
    XX(UNSUPPORTED, "unsupported")                                                                 \
    XX(HANDSHAKE_TIMEOUT, "handshake-timeout")                                                     \
    XX(EVICTED, "handshake-evicted")                                                               \
    XX(CLIENT_RESET, "client-reset")                                                               \
    XX(TARGET_RESET, "target-reset")                                                               \
    XX(NO_RESOURCES, "no-resources")                                                               \
    XX(ERROR, "error")

enum td_fail {
#define XX(n, s) TD_FAIL_##n,
    TD_FAIL_MAP(XX)
#undef XX
        TD_FAIL_COUNT
};

const char *td_fail_name(int i);
/* The failure index of an end reason, or -1 when it is not a failure
 * ("done", "client-closed", "idle-timeout", "shutdown", ...). */
int td_fail_of(const char *end_reason);

struct td_counters {
    uint64_t bytes_in;  /* towards the client */
    uint64_t bytes_out; /* from the client */
    uint64_t conns_total;
    uint64_t conns_active;
    uint64_t fail[TD_FAIL_COUNT];
};

/* One connection (a client connection or a server-side tunnel), as the
 * control plane lists it and the counters attribute it. */
struct td_conn_info {
    char id[80];          /* "42" for a client connection, "SERVER:7" for a server tunnel */
    const char *user;     /* NULL: none */
    const char *listener; /* client connections */
    const char *server;   /* server tunnels */
    const char *route;    /* "direct", a tunnel's name, or NULL */
    const char *client;   /* the peer address */
    const char *target;
    uint64_t bytes_in, bytes_out;
    uint64_t start_ms;
    bool closing;
};

/* A connection ended: add it to the counters of its user, listener or
 * server, and tunnel (each that is set). */
void td_stats_closed(struct td_daemon *d, const struct td_conn_info *ci, const char *end_reason);

/* Call cb for every live connection (client connections and every
 * server's tunnels).  cb must not close connections. */
typedef void (*td_conn_cb)(void *arg, const struct td_conn_info *ci);
void td_conns_each(struct td_daemon *d, td_conn_cb cb, void *arg);

/* Visit the counters of every entity of kind (closed totals plus the live
 * connections); name NULL: all.  reset: zero them after reading. */
typedef void (*td_stats_cb)(void *arg, enum td_stat_kind kind, const char *name,
                            const struct td_counters *c);
void td_stats_collect(struct td_daemon *d, enum td_stat_kind kind, const char *name, td_stats_cb cb,
                      void *arg);
void td_stats_reset(struct td_daemon *d);
void td_stats_free(struct td_daemon *d);

const char *td_stat_kind_name(enum td_stat_kind k);

#endif
