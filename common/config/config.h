/* common/config/: the operator's configuration (this file: the model and
 * its strict YAML loader with file:line:col errors) and the state tunnelctl
 * manages beside it (state.h: users, keys and rotations in state_dir). */

/* The config model (schema version 1) and its YAML loader.
 *
 * The loader parses into a fresh struct td_config, validates all of it and
 * only then hands it out, so a caller can swap configs atomically: a file
 * with any error yields no config at all.  Every error is reported as
 *     file:line:col: key.path: reason
 * and all errors are collected, not just the first. */
#ifndef TD_CONFIG_H_
#define TD_CONFIG_H_

#include "util/addr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TD_CONFIG_VERSION  1
#define CFG_NAME_MAX       64 /* names of users, listeners, tunnels, servers */
#define TD_CONFIG_MAX_FILE (4u * 1024 * 1024)

enum cfg_listener_type {
    CFG_LISTENER_SOCKS5 = 0,
    CFG_LISTENER_HTTP,
    CFG_LISTENER_MIXED,
    CFG_LISTENER_FORWARD,
};

enum cfg_auth {
    CFG_AUTH_NONE = 0,
    CFG_AUTH_USERS,
};

struct cfg_user {
    char *name;
    char *password;         /* NULL when not set */
    char *wstan_key;        /* NULL when not set */
    char *jproxy_user_file; /* NULL when not set; resolved against the config's dir */
};

/* Target rules ("allow:" and "deny:"): see cfg_rules_allow(). */
struct cfg_rules {
    struct td_cidr *allow;
    size_t n_allow;
    struct td_cidr *deny;
    size_t n_deny;
};

struct cfg_listener {
    char *name;
    enum cfg_listener_type type;
    struct td_hostport listen;
    struct td_hostport target; /* forward only */
    bool has_target;
    char *route; /* "direct" or a tunnel name */
    enum cfg_auth auth;
    /* Target rules; empty (everything allowed) when neither key is set. */
    struct cfg_rules rules;
};

enum cfg_protocol {
    CFG_PROTO_WSTAN = 0,
    CFG_PROTO_JPROXY,
};
#define CFG_PROTO_COUNT 2

enum cfg_nonce_mode {
    CFG_NONCE_DEFAULT = 0,
    CFG_NONCE_COMPATIBLE,
};

/* "tunnels:" entries: the client side of a protocol.  A listener whose
 * route names a tunnel reaches its targets through it. */
struct cfg_tunnel {
    char *name;
    enum cfg_protocol protocol;

    /* wstan */
    char *url;                 /* as written: ws://host[:port]/path or wss://... */
    bool tls;                  /* wss:// */
    struct td_hostport server; /* host and port from the URL (port 80/443 by default) */
    char *path;                /* URL path, always starting and ending with '/' */
    char *key;                 /* raw base64 key or password (wstan) */
    enum cfg_nonce_mode nonce_mode;
    uint32_t pool_size;        /* default 16; 0 disables pooling */
    uint64_t pool_max_idle_ms; /* default 5m */
    char *tls_ca;              /* NULL: the system store */
    bool tls_verify;           /* default true */
    char *tls_sni;             /* NULL: the URL host */
    bool has_http_proxy;
    struct td_hostport http_proxy; /* optional HTTP CONNECT proxy on the way */

    /* jproxy */
    struct td_hostport jp_server; /* "server:", default port 16384 */
    char *key_file;               /* KSF key.dat (private key + token) */
    char *private_key;            /* or a PEM private key file ... */
    char *token;                  /* ... plus the 64-hex-digit token */
    uint64_t reconnect_max_ms;    /* backoff cap, default 30s */
    uint32_t max_streams;         /* per tunnel, default 1024 */
};

/* "servers:" entries: the server side of a protocol. */
struct cfg_server {
    char *name;
    enum cfg_protocol protocol;
    struct td_hostport listen; /* port 0 allowed */

    /* wstan */
    char *path; /* default "/" */
    enum cfg_nonce_mode nonce_mode;
    char *tls_cert, *tls_key; /* both or neither: native wss */
    char **keys;              /* anonymous keys; users' wstan_key are accepted too */
    size_t n_keys;
    uint64_t timestamp_window_ms; /* default 60s */

    /* jproxy */
    char *users_dir;      /* KSF <HEX>.dat files; NULL when not set */
    uint32_t max_streams; /* per tunnel, default 1024 (status 6 beyond) */

    /* Which targets (and UDP destinations) the server's users may reach,
     * checked on every resolved address.  Without allow: or deny: the
     * server gets the default deny list (CFG_SERVER_DEFAULT_DENY). */
    struct cfg_rules rules;
    bool rules_default; /* rules is the default list */
};

/* Loopback, "this network", link-local (which holds the cloud metadata
 * address 169.254.169.254) and the IPv6 metadata address: what a server's
 * users may not reach unless the server's own allow:/deny: say otherwise. */
#define CFG_SERVER_DEFAULT_DENY                                                                    \
    "127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16", "::1/128", "::/128", "fe80::/10",                \
        "fd00:ec2::254/128"

struct cfg_limits {
    uint32_t max_connections;      /* default 20000 */
    uint64_t handshake_timeout_ms; /* default 10s */
    uint64_t connect_timeout_ms;   /* default 10s */
    uint64_t idle_timeout_ms;      /* default 5m */
    uint64_t linger_ms;            /* default 10s: after the first FIN */
    uint64_t dns_timeout_ms;       /* default 5s */
    uint64_t udp_timeout_ms;       /* default 60s: idle UDP association */
    uint64_t drain_timeout_ms;     /* default 10s: on SIGTERM */
    uint64_t buffer;               /* default 64KiB: per-direction high-water mark */
    uint32_t max_handshakes;       /* default 1024: in progress, per listener or server */
    uint64_t handshake_memory;     /* default 64MiB: all handshake buffers together */
    uint32_t resolver_threads;     /* default 32: name lookups in parallel (at start) */
};

struct cfg_log {
    int level;  /* enum td_log_level, default info */
    char *file; /* "-" means stderr */
};

struct cfg_control {
    char *socket; /* default /run/tunneld/control.sock */
    char *group;  /* NULL when not set */
};

/* "metrics:": the counters in the Prometheus text format over HTTP. */
struct cfg_metrics {
    struct td_hostport listen; /* listen.host[0] == '\0': no metrics */
};

/* A loaded config is immutable and reference-counted: a reload loads a new
 * one and swaps it in, while every live object that keeps pointers into the
 * old one (a connection's listener entry, a tunnel's or a server's entry, a
 * user's name) holds a reference to it, so the old config is freed only
 * when the last of them is gone.  cfg_free() drops one reference. */
struct td_config {
    unsigned refs;
    uint64_t generation; /* set by the daemon when it swaps configs in */
    char *path;          /* the file it was loaded from */
    char *dir;           /* its directory, for relative paths */
    int version;
    struct cfg_log log;
    struct cfg_control control;
    struct cfg_metrics metrics;
    char *state_dir; /* default /var/lib/tunneld */
    char *user;      /* POSIX: switch to this user after binding; NULL keeps the identity */
    struct cfg_limits limits;
    struct cfg_user *users;
    size_t n_users;
    struct cfg_listener *listeners;
    size_t n_listeners;
    struct cfg_tunnel *tunnels;
    size_t n_tunnels;
    struct cfg_server *servers;
    size_t n_servers;
};

/* The collected error messages of one load, sorted by position.  The
 * loaders reset it first (so pass a fresh or freed one); release it with
 * cfg_errors_free(). */
struct cfg_errors {
    char **msgs;
    size_t n;
};

/* Load and validate.  On success returns 0 and sets *out.  On failure returns
 * TD_ECONFIG (or TD_EIO/TD_ENOMEM), leaves *out NULL and fills errs.  errs may
 * be NULL when the caller does not need the messages. */
int cfg_load_file(const char *path, struct td_config **out, struct cfg_errors *errs);
/* The same from memory; name is used in messages and as the base for relative
 * paths (its directory). */
int cfg_load_buffer(const char *name, const char *data, size_t len, struct td_config **out,
                    struct cfg_errors *errs);

/* Take a reference (returns cfg); cfg_free() drops one, and frees the
 * config with the last.  NULL is fine for both. */
struct td_config *cfg_ref(struct td_config *cfg);
void cfg_free(struct td_config *cfg);
void cfg_errors_free(struct cfg_errors *errs);

const char *cfg_listener_type_name(enum cfg_listener_type t);
/* A valid name for a user, listener, tunnel or server: 1 to 64 letters,
 * digits, '.', '_' or '-'. */
bool cfg_name_valid(const char *s);
const char *cfg_protocol_name(enum cfg_protocol p);
/* NULL when no tunnel has this name. */
const struct cfg_tunnel *cfg_find_tunnel(const struct td_config *cfg, const char *name);
/* "none" or "users". */
const char *cfg_auth_name(enum cfg_auth a);
const struct cfg_user *cfg_find_user(const struct td_config *cfg, const char *name);

/* May a connection go to the target address ip (4 bytes when family is 4,
 * 16 when it is 6)?  True when no deny rule matches and either there are no
 * allow rules or one of them matches: deny wins over allow.  IPv4-mapped
 * IPv6 addresses also meet the IPv4 rules (see td_cidr_match()).  The
 * daemon checks every resolved address of a target before connecting to it,
 * and every UDP datagram's destination.  False when r or ip is NULL. */
bool cfg_rules_allow(const struct cfg_rules *r, int family, const uint8_t *ip);

#endif
