/* Keys and client material; see keys.h. */
#include "keys.h"

#include "out.h"
#include "crypto/crypto.h"
#include "crypto/crypto_stream.h"
#include "proto/jproxy_keys.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/fs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_WSTAN_KEY_LEN 16

int ctl_protocol_parse(const char *s, enum cfg_protocol *out)
{
    if (strcmp(s, "wstan") == 0)
        *out = CFG_PROTO_WSTAN;
    else if (strcmp(s, "jproxy") == 0)
        *out = CFG_PROTO_JPROXY;
    else
        return -1;
    return 0;
}

void ctl_key_free(struct ctl_key *k)
{
    td_wipe(k->secret, sizeof(k->secret));
    if (k->key_file)
        td_wipe(k->key_file, k->key_len);
    free(k->key_file);
    free(k->user_file);
    free(k->user_b64);
    memset(k, 0, sizeof(*k));
}

int ctl_key_make(struct ctl_key *k, enum cfg_protocol proto, const char *user)
{
    struct jp_client_key ck;
    struct jp_user u;
    uint8_t raw[CTL_WSTAN_KEY_LEN];
    char fname[JP_USER_FILE_NAME_LEN + 1];
    size_t blen;
    int rc, ret = CTL_EXIT_FAIL;

    memset(k, 0, sizeof(*k));
    k->proto = proto;
    if (proto == CFG_PROTO_WSTAN) {
        rc = td_random(raw, sizeof(raw));
        if (rc == 0 && td_base64_encode(raw, sizeof(raw), k->secret, sizeof(k->secret)) == 0)
            rc = TD_ETOOBIG;
        td_wipe(raw, sizeof(raw));
        if (rc != 0) {
            ctl_err("cannot make a key: %s", td_strerror(rc));
            ctl_err_status(rc);
            return CTL_EXIT_FAIL;
        }
        return 0;
    }
    jp_client_key_init(&ck);
    jp_user_init(&u);
    rc = jp_keys_generate(user, &ck, &u);
    if (rc == 0)
        rc = jp_client_key_encode(&ck, &k->key_file, &k->key_len);
    if (rc == 0)
        rc = jp_user_encode(&u, &k->user_file, &k->user_len);
    if (rc != 0) {
        ctl_err("cannot make a jProxy key: %s", td_strerror(rc));
        ctl_err_status(rc);
        goto out;
    }
    jp_user_file_name(u.token, fname);
    memcpy(k->secret, fname, 2 * JP_TOKEN_LEN);
    k->secret[2 * JP_TOKEN_LEN] = '\0';
    blen = TD_BASE64_ENCODED_LEN(k->user_len) + 1;
    k->user_b64 = malloc(blen);
    if (!k->user_b64 || td_base64_encode(k->user_file, k->user_len, k->user_b64, blen) == 0) {
        ctl_err("%s", td_strerror(TD_ENOMEM));
        goto out;
    }
    ret = 0;
out:
    td_wipe(fname, sizeof(fname));
    jp_client_key_free(&ck);
    jp_user_free(&u);
    if (ret != 0)
        ctl_key_free(k);
    return ret;
}

void ctl_key_fields(struct ctl_buf *b, const struct ctl_key *k)
{
    ctl_buf_add(b, "secret", k->secret);
    if (k->proto == CFG_PROTO_JPROXY)
        ctl_buf_add(b, "jproxy_user", k->user_b64);
}

/* ---- where clients reach the server ------------------------------------------ */

static bool ctl_ip_zero(const struct td_hostport *hp)
{
    size_t n = hp->kind == TD_HOST_IPV4 ? 4 : 16;

    if (hp->kind == TD_HOST_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if (hp->ip[i] != 0)
            return false;
    return true;
}

/* --server HOST[:PORT]: "host", "host:port", "1.2.3.4", "[v6]", "[v6]:port"
 * or a bare "v6" address. */
static int ctl_parse_server(const char *s, uint16_t defport, struct td_hostport *hp,
                            bool *port_missing)
{
    const char *colon = strchr(s, ':'), *why = NULL;
    char buf[TD_HOST_MAX + 16];
    size_t n = strlen(s);
    bool host_only;

    *port_missing = false;
    if (s[0] == '[')
        host_only = n > 0 && s[n - 1] == ']';
    else
        host_only = !colon || strchr(colon + 1, ':') != NULL;
    if (!host_only)
        return td_hostport_parse(s, n, false, hp, &why);
    if (defport == 0) {
        *port_missing = true;
        return TD_EINVAL;
    }
    if (s[0] == '[' || !colon)
        snprintf(buf, sizeof(buf), "%s:%u", s, (unsigned)defport);
    else
        snprintf(buf, sizeof(buf), "[%s]:%u", s, (unsigned)defport);
    return td_hostport_parse(buf, strlen(buf), false, hp, &why);
}

int ctl_reach_find(const struct td_config *cfg, enum cfg_protocol proto, const char *via,
                   const char *server, bool required, struct ctl_reach *r)
{
    const struct cfg_server *srv = NULL;
    struct td_hostport hp;
    const char *pname = cfg_protocol_name(proto);
    uint16_t defport = proto == CFG_PROTO_JPROXY ? 16384 : 80;
    bool tls = false, port_missing = false;
    const char *path = "/";
    char hpbuf[TD_HOST_MAX + 16];

    memset(r, 0, sizeof(*r));
    for (size_t i = 0; cfg && i < cfg->n_servers; i++) {
        const struct cfg_server *s = &cfg->servers[i];
        if (via ? strcmp(s->name, via) == 0 : s->protocol == proto) {
            srv = s;
            break;
        }
    }
    if (via && !srv) {
        ctl_err("no servers: entry named '%s' in %s", via, cfg ? cfg->path : "the config");
        return CTL_EXIT_FAIL;
    }
    if (srv && srv->protocol != proto) {
        ctl_err("server '%s' speaks %s, the user's protocol is %s", srv->name,
                cfg_protocol_name(srv->protocol), pname);
        return CTL_EXIT_FAIL;
    }
    if (srv) {
        tls = srv->tls_cert != NULL;
        path = srv->path ? srv->path : "/";
        defport = srv->listen.port;
        snprintf(r->tunnel, sizeof(r->tunnel), "%s",
                 strcmp(srv->name, "direct") == 0 ? "tunnel" : srv->name);
    } else {
        snprintf(r->tunnel, sizeof(r->tunnel), "%s", pname);
        if (proto == CFG_PROTO_WSTAN)
            defport = 80;
    }
    if (server) {
        if (ctl_parse_server(server, defport, &hp, &port_missing) != 0) {
            if (port_missing)
                ctl_err("--server %s: give the port too (server '%s' listens on port 0)", server,
                        srv ? srv->name : "?");
            else
                ctl_err("--server %s: not a HOST[:PORT]", server);
            return CTL_EXIT_USAGE;
        }
    } else if (srv && !ctl_ip_zero(&srv->listen) && srv->listen.port != 0) {
        hp = srv->listen;
    } else {
        char msg[512];
        if (srv) {
            td_hostport_format(hpbuf, sizeof(hpbuf), srv->listen.host, srv->listen.port);
            snprintf(msg, sizeof(msg),
                     "server '%s' listens on %s, %s: pass --server HOST[:PORT] with the address "
                     "clients reach it at",
                     srv->name, hpbuf,
                     srv->listen.port == 0 ? "a port picked at start" : "a wildcard address");
        } else {
            snprintf(msg, sizeof(msg),
                     "no %s server in %s: pass --server HOST[:PORT] with the address clients "
                     "reach the server at",
                     pname, cfg ? cfg->path : "the config (no config file)");
        }
        if (required) {
            ctl_err("%s", msg);
            return CTL_EXIT_USAGE;
        }
        ctl_note("%s (the client config below has a placeholder)", msg);
        snprintf(hp.host, sizeof(hp.host), "SERVER");
        hp.port = defport ? defport : (proto == CFG_PROTO_JPROXY ? 16384 : 80);
        hp.kind = TD_HOST_NAME;
        r->known = false;
        goto format;
    }
    r->known = true;
format:
    td_hostport_format(r->hostport, sizeof(r->hostport), hp.host, hp.port);
    snprintf(r->url, sizeof(r->url), "%s://%s%s", tls ? "wss" : "ws", r->hostport, path);
    return 0;
}

/* ---- the client's YAML -------------------------------------------------------- */

struct ctl_str {
    char *p;
    size_t len, cap;
    bool oom;
};

static void ctl_str_add(struct ctl_str *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void ctl_str_add(struct ctl_str *s, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (s->oom)
        return;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        s->oom = true;
        return;
    }
    if (s->len + (size_t)n + 1 > s->cap) {
        size_t ncap = (s->len + (size_t)n + 1) * 2;
        char *np = realloc(s->p, ncap);
        if (!np) {
            s->oom = true;
            return;
        }
        s->p = np;
        s->cap = ncap;
    }
    va_start(ap, fmt);
    vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}

/* A YAML double-quoted scalar. */
static void ctl_str_yq(struct ctl_str *s, const char *v)
{
    ctl_str_add(s, "\"");
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if (c == '"' || c == '\\')
            ctl_str_add(s, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            ctl_str_add(s, "\\x%02x", c);
        else
            ctl_str_add(s, "%c", c);
    }
    ctl_str_add(s, "\"");
}

char *ctl_client_yaml(enum cfg_protocol proto, const struct ctl_reach *r, const char *cred,
                      const char *user, bool full)
{
    struct ctl_str s = {NULL, 0, 0, false};

    if (full) {
        ctl_str_add(&s,
                    "# tunneld client config for user %s, made by tunnelctl export-client.\n"
                    "# %s\n"
                    "version: 1\n"
                    "\n"
                    "listeners:\n"
                    "  - name: local\n"
                    "    type: mixed\n"
                    "    listen: 127.0.0.1:1080\n"
                    "    route: ",
                    user,
                    proto == CFG_PROTO_WSTAN
                        ? "It holds the user's key: keep it secret."
                        : "key_file is the user's key.dat (from tunnelctl users add --out).");
        ctl_str_yq(&s, r->tunnel);
        ctl_str_add(&s, "\n\n");
    }
    ctl_str_add(&s, "tunnels:\n  - name: ");
    ctl_str_yq(&s, r->tunnel);
    ctl_str_add(&s, "\n    protocol: %s\n", cfg_protocol_name(proto));
    if (proto == CFG_PROTO_WSTAN) {
        ctl_str_add(&s, "    url: ");
        ctl_str_yq(&s, r->url);
        ctl_str_add(&s, "%s\n    key: ", r->known ? "" : "   # placeholder: the server's address");
        ctl_str_yq(&s, cred);
        ctl_str_add(&s, "\n");
    } else {
        ctl_str_add(&s, "    server: ");
        ctl_str_yq(&s, r->hostport);
        ctl_str_add(&s,
                    "%s\n    key_file: ", r->known ? "" : "   # placeholder: the server's address");
        ctl_str_yq(&s, cred);
        ctl_str_add(&s, "\n");
    }
    if (s.oom) {
        if (s.p)
            td_wipe(s.p, s.cap);
        free(s.p);
        return NULL;
    }
    return s.p;
}

/* ---- --out ---------------------------------------------------------------------- */

int ctl_out_check(const char *path, bool force)
{
    bool exists = false;
    int rc = td_fs_exists(path, &exists);

    if (rc != 0) {
        ctl_err("%s: %s", path, td_strerror(rc));
        return CTL_EXIT_FAIL;
    }
    if (exists && !force) {
        ctl_err("%s already exists (use --force to replace it)", path);
        return CTL_EXIT_FAIL;
    }
    return 0;
}

int ctl_out_write(const char *path, const uint8_t *data, size_t len)
{
    int rc = td_fs_write_file_private(path, data, len);

    if (rc != 0) {
        ctl_err("cannot write %s: %s", path,
                rc == TD_ENOTFOUND ? "its directory does not exist" : td_strerror(rc));
        ctl_err_status(rc);
        return CTL_EXIT_FAIL;
    }
    return 0;
}

int ctl_out_stage(const char *path, const uint8_t *data, size_t len, char **staged)
{
    size_t n = strlen(path);
    char *p = malloc(n + 5);
    int ret;

    *staged = NULL;
    if (!p) {
        ctl_err("%s", td_strerror(TD_ENOMEM));
        return CTL_EXIT_FAIL;
    }
    memcpy(p, path, n);
    memcpy(p + n, ".new", 5);
    ret = ctl_out_write(p, data, len);
    if (ret != 0) {
        free(p);
        return ret;
    }
    *staged = p;
    return 0;
}

int ctl_out_commit(const char *path, char *staged, const uint8_t *data, size_t len)
{
    int ret = ctl_out_write(path, data, len);

    if (ret != 0) {
        ctl_err("the key is kept in %s: move it to %s by hand", staged, path);
        free(staged);
        return ret;
    }
    (void)td_fs_remove(staged);
    free(staged);
    return 0;
}

void ctl_out_abort(char *staged)
{
    if (!staged)
        return;
    (void)td_fs_remove(staged);
    free(staged);
}
