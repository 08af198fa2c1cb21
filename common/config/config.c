/* The YAML config loader.
 *
 * libyaml's document API builds the node graph; this file then walks it with
 * tables of known keys (struct cfg_field), one table per mapping.  The walk
 * follows the schema and never descends into a node it does not expect, so
 * nesting depth is bounded by the schema, and a node budget (CFG_MAX_NODES)
 * stops alias "billion laughs" documents, whose node graph is small but whose
 * expansion is not.
 *
 * Every problem is recorded with its mark and the walk goes on, so that one
 * run reports every error, as nginx -t does.  The messages are sorted by
 * position at the end.  The new struct td_config is only handed out when no
 * error was found. */
#include "config/config.h"

#include "crypto/crypto.h"
#include "util/error.h"
#include "util/log.h"

#include <yaml.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_MAX_NODES    100000
#define CFG_MAX_ERRORS   1000  /* shown */
#define CFG_KEEP_ERRORS  10000 /* collected, before sorting and cutting */
#define CFG_MAX_FIELDS   16
#define CFG_KEYPATH_MAX  256
#define CFG_PATH_MAX     4096
#define CFG_PASSWORD_MAX 255 /* RFC 1929 PLEN */
#define CFG_VALUE_SHOW   64  /* bytes of a bad value quoted in a message */

#define CFG_MS_PER_DAY   (24ull * 60 * 60 * 1000)
#define CFG_DURATION_MAX (30 * CFG_MS_PER_DAY)

#define CFG_KEY_MAX     1024 /* wstan keys and passwords */
#define CFG_URL_MAX     2048
#define CFG_JPROXY_PORT 16384 /* the Java jProxy's default */

#define CFG_DEFAULT_CONTROL_SOCKET "/run/tunneld/control.sock"
#define CFG_DEFAULT_STATE_DIR      "/var/lib/tunneld"

#define CFG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct cfg_err_item {
    size_t line, col; /* 1-based; 0 for file-level errors */
    size_t seq;       /* insertion order, to keep the sort stable */
    char *msg;
};

/* What the walk remembers about one list item for checks that need more than
 * one key, or the whole file. */
struct cfg_item_state {
    yaml_mark_t mark;        /* the item itself */
    yaml_mark_t name_mark;   /* its name value */
    yaml_mark_t auth_mark;   /* its auth value (listeners) */
    bool type_ok;            /* its type parsed (listeners) */
    bool acl_bad;            /* its allow or deny list had an error */
    bool route_set;          /* its route was written (listeners) */
    yaml_mark_t route_mark;  /* its route value (listeners) */
    yaml_mark_t proto_mark;  /* its protocol value (tunnels, servers) */
    yaml_mark_t listen_mark; /* its listen value (servers) */
    bool proto_ok;           /* its protocol parsed (tunnels, servers) */
    bool listen_ok;          /* its listen address parsed (servers) */
};

struct cfg_ctx {
    const char *name;
    yaml_document_t *doc;
    struct td_config *cfg;
    struct cfg_err_item *errs;
    size_t n_errs, cap_errs;
    bool truncated;   /* more than CFG_KEEP_ERRORS */
    bool nocap;       /* the next error must be kept */
    bool oom;         /* an allocation failed; the result is TD_ENOMEM */
    size_t visited;   /* nodes looked at, for the alias-bomb budget */
    bool too_complex; /* the budget ran out; the walk stops */
    char keypath[CFG_KEYPATH_MAX];
    size_t keylen;
    struct cfg_item_state *ustate; /* one per user */
    struct cfg_item_state *lstate; /* one per listener */
    struct cfg_item_state *tstate; /* one per tunnel */
    struct cfg_item_state *sstate; /* one per server */
    /* While a tunnel or server is walked: its state, what it is ("tunnel" or
     * "server") and its protocol + 1 (0 while unknown), so that the walker
     * can refuse the other protocol's keys. */
    struct cfg_item_state *cur;
    const char *item_kind;
    int item_only;
    bool tunnel_name_bad; /* some tunnel has no valid name */
};

struct cfg_field;
typedef void (*cfg_field_fn)(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                             yaml_node_t *val, void *obj);

/* One known key of a mapping.  off locates the value inside obj; min and max
 * bound numbers; sub and nsub describe a nested mapping; msg is extra text
 * for the handler. */
struct cfg_field {
    const char *key;
    cfg_field_fn fn;
    bool required;
    size_t off;
    uint64_t min, max;
    const struct cfg_field *sub;
    size_t nsub;
    const char *msg;
    int only; /* 0, or the protocol + 1 that this key belongs to (tunnels, servers) */
};

/* cfg_field.only */
enum { CFG_ANY = 0, CFG_WSTAN = CFG_PROTO_WSTAN + 1, CFG_JPROXY = CFG_PROTO_JPROXY + 1 };

/* ---- errors --------------------------------------------------------------- */

static char *cfg_vfmt(const char *fmt, va_list ap) TD_PRINTF(1, 0);
static char *cfg_vfmt(const char *fmt, va_list ap)
{
    va_list ap2;
    char *s;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static char *cfg_fmt(const char *fmt, ...) TD_PRINTF(1, 2);
static char *cfg_fmt(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = cfg_vfmt(fmt, ap);
    va_end(ap);
    return s;
}

/* Record one message (taking ownership of msg); line and col are already
 * 1-based.  An alias-built document can produce an error per expanded node,
 * so collection stops at CFG_KEEP_ERRORS. */
static void cfg_add_error(struct cfg_ctx *ctx, size_t line, size_t col, char *msg)
{
    if (!msg) {
        ctx->oom = true;
        return;
    }
    if (ctx->n_errs >= CFG_KEEP_ERRORS && !ctx->nocap) {
        ctx->truncated = true;
        free(msg);
        return;
    }
    if (ctx->n_errs == ctx->cap_errs) {
        size_t cap = ctx->cap_errs ? ctx->cap_errs * 2 : 8;
        struct cfg_err_item *p = realloc(ctx->errs, cap * sizeof(*p));
        if (!p) {
            ctx->oom = true;
            free(msg);
            return;
        }
        ctx->errs = p;
        ctx->cap_errs = cap;
    }
    ctx->errs[ctx->n_errs].line = line;
    ctx->errs[ctx->n_errs].col = col;
    ctx->errs[ctx->n_errs].seq = ctx->n_errs;
    ctx->errs[ctx->n_errs].msg = msg;
    ctx->n_errs++;
}

static void cfg_verror_path(struct cfg_ctx *ctx, yaml_mark_t mark, const char *path,
                            const char *fmt, va_list ap) TD_PRINTF(4, 0);
static void cfg_verror_path(struct cfg_ctx *ctx, yaml_mark_t mark, const char *path,
                            const char *fmt, va_list ap)
{
    char *reason = cfg_vfmt(fmt, ap);

    if (!reason) {
        ctx->oom = true;
        return;
    }
    /* libyaml marks are 0-based; editors count from 1. */
    cfg_add_error(ctx, mark.line + 1, mark.column + 1,
                  cfg_fmt("%s:%zu:%zu: %s: %s", ctx->name, mark.line + 1, mark.column + 1,
                          path[0] ? path : "yaml", reason));
    free(reason);
}

/* An error about the key path currently being walked. */
static void cfg_error(struct cfg_ctx *ctx, yaml_mark_t mark, const char *fmt, ...) TD_PRINTF(3, 4);
static void cfg_error(struct cfg_ctx *ctx, yaml_mark_t mark, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cfg_verror_path(ctx, mark, ctx->keypath, fmt, ap);
    va_end(ap);
}

/* An error about an explicitly named key path. */
static void cfg_error_path(struct cfg_ctx *ctx, yaml_mark_t mark, const char *path, const char *fmt,
                           ...) TD_PRINTF(4, 5);
static void cfg_error_path(struct cfg_ctx *ctx, yaml_mark_t mark, const char *path, const char *fmt,
                           ...)
{
    va_list ap;

    va_start(ap, fmt);
    cfg_verror_path(ctx, mark, path, fmt, ap);
    va_end(ap);
}

static int cfg_err_cmp(const void *a, const void *b)
{
    const struct cfg_err_item *x = a, *y = b;

    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* ---- key paths ------------------------------------------------------------ */

/* Append ".key" (or "key" at the root) to the key path and return the old
 * length for cfg_pop().  A path that would not fit is cut, not overflowed. */
static size_t cfg_push_key(struct cfg_ctx *ctx, const char *key)
{
    size_t old = ctx->keylen;
    int n = snprintf(ctx->keypath + old, sizeof(ctx->keypath) - old, "%s%s", old ? "." : "", key);

    if (n > 0)
        ctx->keylen =
            old + (size_t)n < sizeof(ctx->keypath) ? old + (size_t)n : sizeof(ctx->keypath) - 1;
    return old;
}

static size_t cfg_push_index(struct cfg_ctx *ctx, size_t i)
{
    size_t old = ctx->keylen;
    int n = snprintf(ctx->keypath + old, sizeof(ctx->keypath) - old, "[%zu]", i);

    if (n > 0)
        ctx->keylen =
            old + (size_t)n < sizeof(ctx->keypath) ? old + (size_t)n : sizeof(ctx->keypath) - 1;
    return old;
}

static void cfg_pop(struct cfg_ctx *ctx, size_t old)
{
    ctx->keylen = old;
    ctx->keypath[old] = '\0';
}

/* ---- nodes ---------------------------------------------------------------- */

/* Count one visited node against the budget. */
static bool cfg_visit(struct cfg_ctx *ctx)
{
    if (ctx->too_complex)
        return false;
    if (++ctx->visited > CFG_MAX_NODES) {
        ctx->too_complex = true;
        return false;
    }
    return true;
}

static bool cfg_is_null(const yaml_node_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    for (size_t i = 0; i < CFG_ARRAY_SIZE(nulls); i++)
        if (strcmp((const char *)n->data.scalar.value, nulls[i]) == 0)
            return true;
    return false;
}

static const char *cfg_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_SCALAR_NODE:
        if (cfg_is_null(n))
            return "an empty value";
        return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? "a plain value"
                                                               : "a quoted string";
    default:
        return "nothing";
    }
}

/* Quote a value from the file for a message, without control characters. */
static const char *cfg_show(char out[CFG_VALUE_SHOW + 1], const yaml_node_t *n)
{
    return td_log_safe(out, CFG_VALUE_SHOW + 1, (const char *)n->data.scalar.value,
                       n->data.scalar.length);
}

/* The text of a scalar that must hold a value, or NULL after an error. */
static const char *cfg_scalar(struct cfg_ctx *ctx, yaml_node_t *n, const char *what)
{
    if (n->type != YAML_SCALAR_NODE) {
        cfg_error(ctx, n->start_mark, "expected %s, got %s", what, cfg_kind(n));
        return NULL;
    }
    if (cfg_is_null(n)) {
        cfg_error(ctx, n->start_mark, "expected %s, got an empty value", what);
        return NULL;
    }
    /* A double-quoted "\0" puts a NUL inside the value, which C strings
     * would silently cut. */
    if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length) {
        cfg_error(ctx, n->start_mark, "the value contains a NUL character");
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

/* The same for integers and other typed values, which must not be quoted:
 * "80" in quotes is a string in YAML, and accepting it would hide mistakes. */
static const char *cfg_plain_scalar(struct cfg_ctx *ctx, yaml_node_t *n, const char *what)
{
    const char *s = cfg_scalar(ctx, n, what);

    if (s && n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        cfg_error(ctx, n->start_mark, "expected %s, got a quoted string", what);
        return NULL;
    }
    return s;
}

static char *cfg_strdup(struct cfg_ctx *ctx, const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);

    if (!p) {
        ctx->oom = true;
        return NULL;
    }
    memcpy(p, s, n + 1);
    return p;
}

static void cfg_set_string(char **dst, char *s)
{
    free(*dst);
    *dst = s;
}

/* Parse an optionally negative decimal integer.  Returns false if s is not
 * one or does not fit. */
static bool cfg_parse_int(const char *s, int64_t *out)
{
    bool neg = false;
    uint64_t v = 0;

    if (*s == '-') {
        neg = true;
        s++;
    }
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (uint64_t)INT64_MAX / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > (uint64_t)INT64_MAX)
            return false;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

/* ---- paths ------------------------------------------------------------------ */

static bool cfg_path_is_absolute(const char *p)
{
    /* POSIX paths, and Windows paths ("C:\x", "\\server\share" and pipe
     * names like \\.\pipe\tunneld), which the same file may hold. */
    if (p[0] == '/' || p[0] == '\\')
        return true;
    return ((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z')) && p[1] == ':' &&
           (p[2] == '\\' || p[2] == '/');
}

/* Resolve p against the config's directory. */
static char *cfg_resolve(struct cfg_ctx *ctx, const char *p)
{
    const char *dir = ctx->cfg->dir;
    size_t dl;
    char *r;

    if (cfg_path_is_absolute(p) || strcmp(dir, ".") == 0)
        return cfg_strdup(ctx, p);
    dl = strlen(dir);
    r = cfg_fmt("%s%s%s", dir, dl && (dir[dl - 1] == '/' || dir[dl - 1] == '\\') ? "" : "/", p);
    if (!r)
        ctx->oom = true;
    return r;
}

bool cfg_name_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CFG_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ---- the mapping walker ----------------------------------------------------- */

/* Walk map with its table of fields.  seen[i] receives the key node of field
 * i, or NULL when the key is absent.  Returns false (after an error) when map
 * is not a mapping. */
static bool cfg_walk_map(struct cfg_ctx *ctx, yaml_node_t *map, const struct cfg_field *fields,
                         size_t nfields, void *obj, yaml_node_t **seen)
{
    yaml_node_pair_t *pair;

    for (size_t i = 0; i < nfields; i++)
        seen[i] = NULL;
    if (map->type != YAML_MAPPING_NODE) {
        cfg_error(ctx, map->start_mark, "expected a mapping, got %s", cfg_kind(map));
        return false;
    }
    for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = yaml_document_get_node(ctx->doc, pair->key);
        yaml_node_t *val = yaml_document_get_node(ctx->doc, pair->value);
        const char *k;
        size_t klen, old, i;

        if (!cfg_visit(ctx))
            return true;
        if (!key || !val)
            continue;
        if (key->type != YAML_SCALAR_NODE || cfg_is_null(key)) {
            cfg_error(ctx, key->start_mark, "keys must be strings, got %s", cfg_kind(key));
            continue;
        }
        k = (const char *)key->data.scalar.value;
        klen = key->data.scalar.length;
        for (i = 0; i < nfields; i++)
            if (strlen(fields[i].key) == klen && memcmp(fields[i].key, k, klen) == 0)
                break;
        if (i == nfields) {
            char shown[CFG_VALUE_SHOW + 1];
            old = cfg_push_key(ctx, td_log_safe(shown, sizeof(shown), k, klen));
            cfg_error(ctx, key->start_mark, "unknown key");
            cfg_pop(ctx, old);
            continue;
        }
        old = cfg_push_key(ctx, fields[i].key);
        /* libyaml keeps duplicate keys; YAML says they are an error, and
         * silently taking the first or the last one hides typos. */
        if (seen[i]) {
            cfg_error(ctx, key->start_mark, "duplicate key (first defined at %zu:%zu)",
                      seen[i]->start_mark.line + 1, seen[i]->start_mark.column + 1);
        } else if (fields[i].only && ctx->item_only && fields[i].only != ctx->item_only) {
            /* A key of the other protocol is a mistake, not something to
             * ignore: the tunnel or server would not do what the file says. */
            seen[i] = key;
            cfg_error(ctx, key->start_mark, "'%s' is a %s key; this %s's protocol is %s",
                      fields[i].key, cfg_protocol_name((enum cfg_protocol)(fields[i].only - 1)),
                      ctx->item_kind, cfg_protocol_name((enum cfg_protocol)(ctx->item_only - 1)));
        } else {
            seen[i] = key;
            fields[i].fn(ctx, &fields[i], key, val, obj);
        }
        cfg_pop(ctx, old);
    }
    for (size_t i = 0; i < nfields; i++) {
        if (fields[i].required && !seen[i] && !ctx->too_complex) {
            size_t old = cfg_push_key(ctx, fields[i].key);
            cfg_error(ctx, map->start_mark, "missing required key");
            cfg_pop(ctx, old);
        }
    }
    return true;
}

/* ---- field handlers ----------------------------------------------------------- */

#define CFG_FIELD_PTR(type, obj, f) ((type *)(void *)((char *)(obj) + (f)->off))

static void cfg_f_section(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                          yaml_node_t *val, void *obj)
{
    yaml_node_t *seen[CFG_MAX_FIELDS];

    /* "log:" with nothing under it keeps every default. */
    if (cfg_is_null(val))
        return;
    cfg_walk_map(ctx, val, f->sub, f->nsub, (char *)obj + f->off, seen);
}

static void cfg_f_version(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                          yaml_node_t *val, void *obj)
{
    const char *s = cfg_plain_scalar(ctx, val, "an integer");
    char shown[CFG_VALUE_SHOW + 1];
    int64_t v;

    if (!s)
        return;
    if (!cfg_parse_int(s, &v)) {
        cfg_error(ctx, val->start_mark, "expected an integer, got '%s'", cfg_show(shown, val));
        return;
    }
    if (v != TD_CONFIG_VERSION) {
        cfg_error(ctx, val->start_mark, "unsupported version %s (this tunneld reads version %d)",
                  cfg_show(shown, val), TD_CONFIG_VERSION);
        return;
    }
    ((struct td_config *)obj)->version = (int)v;
}

static void cfg_f_u32(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                      yaml_node_t *val, void *obj)
{
    const char *s = cfg_plain_scalar(ctx, val, "an integer");
    char shown[CFG_VALUE_SHOW + 1];
    int64_t v;

    if (!s)
        return;
    if (!cfg_parse_int(s, &v)) {
        cfg_error(ctx, val->start_mark, "expected an integer, got '%s'", cfg_show(shown, val));
        return;
    }
    if (v < (int64_t)f->min || v > (int64_t)f->max) {
        cfg_error(ctx, val->start_mark, "%s is out of range (%llu-%llu)", cfg_show(shown, val),
                  (unsigned long long)f->min, (unsigned long long)f->max);
        return;
    }
    *CFG_FIELD_PTR(uint32_t, obj, f) = (uint32_t)v;
}

/* A duration in its largest whole unit: 1000 -> "1s", 1500 -> "1500ms". */
static const char *cfg_ms_text(char out[CFG_VALUE_SHOW + 1], uint64_t ms)
{
    static const struct {
        uint64_t ms;
        const char *unit;
    } units[] = {{CFG_MS_PER_DAY, "d"}, {60 * 60 * 1000, "h"}, {60 * 1000, "m"}, {1000, "s"}};

    for (size_t i = 0; i < CFG_ARRAY_SIZE(units); i++) {
        if (ms && ms % units[i].ms == 0) {
            snprintf(out, CFG_VALUE_SHOW + 1, "%llu%s", (unsigned long long)(ms / units[i].ms),
                     units[i].unit);
            return out;
        }
    }
    snprintf(out, CFG_VALUE_SHOW + 1, "%llums", (unsigned long long)ms);
    return out;
}

static void cfg_f_duration(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                           yaml_node_t *val, void *obj)
{
    const char *s = cfg_scalar(ctx, val, "a duration");
    char shown[CFG_VALUE_SHOW + 1];
    uint64_t ms;

    if (!s)
        return;
    if (td_duration_parse(s, &ms) != 0) {
        int64_t bare;
        if (cfg_parse_int(s, &bare) && bare > 0)
            cfg_error(ctx, val->start_mark, "'%s' has no unit (write e.g. %ss or %sms)",
                      cfg_show(shown, val), s, s);
        else
            cfg_error(ctx, val->start_mark,
                      "invalid duration '%s' (write e.g. 250ms, 10s, 5m, 1h or 1d)",
                      cfg_show(shown, val));
        return;
    }
    if (ms < f->min) {
        cfg_error(ctx, val->start_mark, "must be at least %s", cfg_ms_text(shown, f->min));
        return;
    }
    if (ms > f->max) {
        cfg_error(ctx, val->start_mark, "must be at most %s", cfg_ms_text(shown, f->max));
        return;
    }
    *CFG_FIELD_PTR(uint64_t, obj, f) = ms;
}

static void cfg_f_size(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                       yaml_node_t *val, void *obj)
{
    const char *s = cfg_scalar(ctx, val, "a size");
    char shown[CFG_VALUE_SHOW + 1];
    uint64_t n;

    if (!s)
        return;
    if (td_size_parse(s, &n) != 0) {
        cfg_error(ctx, val->start_mark, "invalid size '%s' (write e.g. 64KiB or 1MiB)",
                  cfg_show(shown, val));
        return;
    }
    if (n < f->min || n > f->max) {
        cfg_error(ctx, val->start_mark, "%s is out of range (%s)", cfg_show(shown, val), f->msg);
        return;
    }
    *CFG_FIELD_PTR(uint64_t, obj, f) = n;
}

/* A non-empty string of at most f->max bytes. */
static void cfg_f_string(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                         yaml_node_t *val, void *obj)
{
    const char *s = cfg_scalar(ctx, val, "a string");

    if (!s)
        return;
    if (s[0] == '\0') {
        cfg_error(ctx, val->start_mark, "must not be empty");
        return;
    }
    if (strlen(s) > f->max) {
        cfg_error(ctx, val->start_mark, "too long (at most %llu bytes)",
                  (unsigned long long)f->max);
        return;
    }
    cfg_set_string(CFG_FIELD_PTR(char *, obj, f), cfg_strdup(ctx, s));
}

/* A name: [A-Za-z0-9._-]{1,64}.  Names show up in logs and on the control
 * socket, so they are kept to characters that need no quoting. */
static void cfg_f_name(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                       yaml_node_t *val, void *obj)
{
    const char *s = cfg_scalar(ctx, val, "a name");
    char shown[CFG_VALUE_SHOW + 1];

    if (!s)
        return;
    if (!cfg_name_valid(s)) {
        cfg_error(ctx, val->start_mark,
                  "invalid name '%s' (use 1 to 64 letters, digits, '.', '_' or '-')",
                  cfg_show(shown, val));
        return;
    }
    cfg_set_string(CFG_FIELD_PTR(char *, obj, f), cfg_strdup(ctx, s));
}

/* A file or directory name; relative names are resolved against the config
 * file's directory, so that the meaning of the file does not depend on the
 * working directory of whoever reads it.  With f->msg set, that literal
 * (like "-" for stderr) is kept as it is. */
static void cfg_f_path(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                       yaml_node_t *val, void *obj)
{
    const char *s = cfg_scalar(ctx, val, "a path");

    if (!s)
        return;
    if (s[0] == '\0') {
        cfg_error(ctx, val->start_mark, "must not be empty");
        return;
    }
    if (strlen(s) > f->max) {
        cfg_error(ctx, val->start_mark, "too long (at most %llu bytes)",
                  (unsigned long long)f->max);
        return;
    }
    if (f->msg && strcmp(s, f->msg) == 0)
        cfg_set_string(CFG_FIELD_PTR(char *, obj, f), cfg_strdup(ctx, s));
    else
        cfg_set_string(CFG_FIELD_PTR(char *, obj, f), cfg_resolve(ctx, s));
}

static void cfg_f_log_level(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                            yaml_node_t *val, void *obj)
{
    const char *s = cfg_scalar(ctx, val, "a log level");
    char shown[CFG_VALUE_SHOW + 1];
    int level;

    if (!s)
        return;
    level = td_log_level_parse(s);
    if (level < 0) {
        cfg_error(ctx, val->start_mark,
                  "unknown level '%s' (expected error, warn, info, debug or trace)",
                  cfg_show(shown, val));
        return;
    }
    ((struct cfg_log *)obj)->level = level;
}

static void cfg_f_socket(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                         yaml_node_t *val, void *obj)
{
    struct cfg_control *c = obj;

    cfg_f_path(ctx, f, key, val, obj);
    /* sun_path holds 108 bytes on Linux and 104 on the BSDs and macOS;
     * Windows pipe names (\\.\pipe\...) have their own, larger limit. */
    if (c->socket && strncmp(c->socket, "\\\\", 2) != 0 && strlen(c->socket) > 103)
        cfg_error(ctx, val->start_mark, "socket path too long (at most 103 bytes once resolved)");
}

/* ---- users ------------------------------------------------------------------------ */

enum { CFG_U_NAME, CFG_U_PASSWORD, CFG_U_WSTAN_KEY, CFG_U_JPROXY };

static void cfg_f_user_name(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                            yaml_node_t *val, void *obj)
{
    struct cfg_user *u = obj;

    ctx->ustate[u - ctx->cfg->users].name_mark = val->start_mark;
    cfg_f_name(ctx, f, key, val, obj);
}

static const struct cfg_field cfg_user_fields[] = {
    [CFG_U_NAME] = {.key = "name",
                    .fn = cfg_f_user_name,
                    .required = true,
                    .off = offsetof(struct cfg_user, name)},
    [CFG_U_PASSWORD] = {.key = "password",
                        .fn = cfg_f_string,
                        .off = offsetof(struct cfg_user, password),
                        .max = CFG_PASSWORD_MAX},
    [CFG_U_WSTAN_KEY] = {.key = "wstan_key",
                         .fn = cfg_f_string,
                         .off = offsetof(struct cfg_user, wstan_key),
                         .max = 1024},
    [CFG_U_JPROXY] = {.key = "jproxy_user_file",
                      .fn = cfg_f_path,
                      .off = offsetof(struct cfg_user, jproxy_user_file),
                      .max = CFG_PATH_MAX},
};

/* ---- listeners -------------------------------------------------------------------- */

enum {
    CFG_L_NAME,
    CFG_L_TYPE,
    CFG_L_LISTEN,
    CFG_L_ROUTE,
    CFG_L_AUTH,
    CFG_L_TARGET,
    CFG_L_ALLOW,
    CFG_L_DENY,
};

static const char *const cfg_type_names[] = {
    [CFG_LISTENER_SOCKS5] = "socks5",
    [CFG_LISTENER_HTTP] = "http",
    [CFG_LISTENER_MIXED] = "mixed",
    [CFG_LISTENER_FORWARD] = "forward",
};

static const char *const cfg_auth_names[] = {
    [CFG_AUTH_NONE] = "none",
    [CFG_AUTH_USERS] = "users",
};

static struct cfg_item_state *cfg_lstate(struct cfg_ctx *ctx, struct cfg_listener *l)
{
    return &ctx->lstate[l - ctx->cfg->listeners];
}

static void cfg_f_listener_name(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                                yaml_node_t *val, void *obj)
{
    cfg_lstate(ctx, obj)->name_mark = val->start_mark;
    cfg_f_name(ctx, f, key, val, obj);
}

static void cfg_f_listener_type(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                                yaml_node_t *val, void *obj)
{
    struct cfg_listener *l = obj;
    const char *s = cfg_scalar(ctx, val, "a listener type");
    char shown[CFG_VALUE_SHOW + 1];

    if (!s)
        return;
    for (size_t i = 0; i < CFG_ARRAY_SIZE(cfg_type_names); i++) {
        if (strcmp(s, cfg_type_names[i]) == 0) {
            l->type = (enum cfg_listener_type)i;
            cfg_lstate(ctx, l)->type_ok = true;
            return;
        }
    }
    cfg_error(ctx, val->start_mark,
              "unknown listener type '%s' (expected socks5, http, mixed or forward)",
              cfg_show(shown, val));
}

static void cfg_f_hostport(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                           yaml_node_t *val, void *obj)
{
    const char *s = cfg_scalar(ctx, val, "an address (host:port)");
    char shown[CFG_VALUE_SHOW + 1];
    const char *why = "invalid address";

    if (!s)
        return;
    /* f->min is 1 when port 0 ("pick a free port") makes sense here. */
    if (td_hostport_parse(s, strlen(s), f->min != 0, CFG_FIELD_PTR(struct td_hostport, obj, f),
                          &why) != 0) {
        cfg_error(ctx, val->start_mark, "invalid address '%s': %s", cfg_show(shown, val), why);
        return;
    }
}

static void cfg_f_target(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                         yaml_node_t *val, void *obj)
{
    struct cfg_listener *l = obj;

    cfg_f_hostport(ctx, f, key, val, obj);
    /* A parsed address always has a host. */
    l->has_target = l->target.host[0] != '\0';
}

static void cfg_f_route(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                        yaml_node_t *val, void *obj)
{
    struct cfg_listener *l = obj;
    const char *s = cfg_scalar(ctx, val, "a route");

    if (!s)
        return;
    /* Whether a tunnel of that name exists is checked once the whole file is
     * read (cfg_check_cross()): "tunnels:" may come after "listeners:". */
    cfg_lstate(ctx, l)->route_set = true;
    cfg_lstate(ctx, l)->route_mark = val->start_mark;
    cfg_set_string(&l->route, cfg_strdup(ctx, s));
}

static void cfg_f_auth(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                       yaml_node_t *val, void *obj)
{
    struct cfg_listener *l = obj;
    const char *s = cfg_scalar(ctx, val, "none or users");
    char shown[CFG_VALUE_SHOW + 1];

    if (!s)
        return;
    for (size_t i = 0; i < CFG_ARRAY_SIZE(cfg_auth_names); i++) {
        if (strcmp(s, cfg_auth_names[i]) == 0) {
            l->auth = (enum cfg_auth)i;
            cfg_lstate(ctx, l)->auth_mark = val->start_mark;
            return;
        }
    }
    cfg_error(ctx, val->start_mark, "unknown auth '%s' (expected none or users)",
              cfg_show(shown, val));
}

/* A list of address ranges ("allow:" or "deny:").  Each bad item is
 * reported at its own position, as listeners[i].deny[j]. */
static bool cfg_cidr_list(struct cfg_ctx *ctx, yaml_node_t *val, bool empty_ok,
                          struct td_cidr **out, size_t *nout)
{
    size_t count, n = 0;
    struct td_cidr *v;
    bool ok = true;

    if (val->type != YAML_SEQUENCE_NODE) {
        cfg_error(ctx, val->start_mark, "expected a list of address ranges, got %s", cfg_kind(val));
        return false;
    }
    count = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
    if (count == 0) {
        /* "allow: []" reads as "allow nothing", but no allow rules means
         * "allow everything"; refuse the ambiguity. */
        if (empty_ok)
            return true;
        cfg_error(ctx, val->start_mark,
                  "must not be empty (leave 'allow' out to allow every target)");
        return false;
    }
    v = calloc(count, sizeof(*v));
    if (!v) {
        ctx->oom = true;
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *item = yaml_document_get_node(ctx->doc, val->data.sequence.items.start[i]);
        char shown[CFG_VALUE_SHOW + 1];
        const char *why = "invalid address range";
        const char *s;
        size_t old;

        if (!item || !cfg_visit(ctx)) {
            ok = false;
            break;
        }
        old = cfg_push_index(ctx, i);
        s = cfg_scalar(ctx, item, "an address range (CIDR)");
        if (s && td_cidr_parse(s, strlen(s), &v[n], &why) == 0) {
            n++;
        } else {
            if (s)
                cfg_error(ctx, item->start_mark, "invalid address range '%s': %s",
                          cfg_show(shown, item), why);
            ok = false;
        }
        cfg_pop(ctx, old);
    }
    *out = v;
    *nout = n;
    return ok;
}

/* The item whose allow/deny is being read: a listener, or the current
 * tunnel or server. */
static struct cfg_item_state *cfg_rules_state(struct cfg_ctx *ctx, void *obj)
{
    return ctx->cur ? ctx->cur : cfg_lstate(ctx, obj);
}

static void cfg_f_allow(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                        yaml_node_t *val, void *obj)
{
    struct cfg_rules *r = (struct cfg_rules *)(void *)((char *)obj + f->off);

    if (!cfg_cidr_list(ctx, val, false, &r->allow, &r->n_allow))
        cfg_rules_state(ctx, obj)->acl_bad = true;
}

static void cfg_f_deny(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                       yaml_node_t *val, void *obj)
{
    struct cfg_rules *r = (struct cfg_rules *)(void *)((char *)obj + f->off);

    if (!cfg_cidr_list(ctx, val, true, &r->deny, &r->n_deny))
        cfg_rules_state(ctx, obj)->acl_bad = true;
}

static const struct cfg_field cfg_listener_fields[] = {
    [CFG_L_NAME] = {.key = "name",
                    .fn = cfg_f_listener_name,
                    .required = true,
                    .off = offsetof(struct cfg_listener, name)},
    [CFG_L_TYPE] = {.key = "type", .fn = cfg_f_listener_type, .required = true},
    [CFG_L_LISTEN] = {.key = "listen",
                      .fn = cfg_f_hostport,
                      .required = true,
                      .off = offsetof(struct cfg_listener, listen),
                      .min = 1},
    [CFG_L_ROUTE] = {.key = "route", .fn = cfg_f_route},
    [CFG_L_AUTH] = {.key = "auth", .fn = cfg_f_auth},
    [CFG_L_TARGET] = {.key = "target",
                      .fn = cfg_f_target,
                      .off = offsetof(struct cfg_listener, target)},
    [CFG_L_ALLOW] = {.key = "allow",
                     .fn = cfg_f_allow,
                     .off = offsetof(struct cfg_listener, rules)},
    [CFG_L_DENY] = {.key = "deny", .fn = cfg_f_deny, .off = offsetof(struct cfg_listener, rules)},
};

/* ---- lists --------------------------------------------------------------------------- */

struct cfg_named {
    const char *name;
    size_t idx;
};

static int cfg_named_cmp(const void *a, const void *b)
{
    const struct cfg_named *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c)
        return c;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* Report every name that is used twice, at the later uses.  Sorting keeps
 * this O(n log n) even for huge (alias-built) lists. */
static void cfg_check_unique(struct cfg_ctx *ctx, const char *list, const char *what,
                             char *const *names, size_t stride, size_t n,
                             const struct cfg_item_state *st)
{
    struct cfg_named *v;
    size_t m = 0;

    if (n < 2)
        return;
    v = calloc(n, sizeof(*v));
    if (!v) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = *(char *const *)(const void *)((const char *)names + i * stride);
        if (name) {
            v[m].name = name;
            v[m].idx = i;
            m++;
        }
    }
    qsort(v, m, sizeof(*v), cfg_named_cmp);
    for (size_t i = 1, first = 0; i < m; i++) {
        if (strcmp(v[i].name, v[first].name) != 0) {
            first = i;
            continue;
        }
        char path[64];
        yaml_mark_t fm = st[v[first].idx].name_mark;
        snprintf(path, sizeof(path), "%s[%zu].name", list, v[i].idx);
        cfg_error_path(ctx, st[v[i].idx].name_mark, path,
                       "duplicate %s name '%s' (first defined at %zu:%zu)", what, v[i].name,
                       fm.line + 1, fm.column + 1);
    }
    free(v);
}

/* Check a list node and allocate n zeroed items and states for it. */
static bool cfg_list_alloc(struct cfg_ctx *ctx, yaml_node_t *val, size_t size, void **items,
                           size_t *n, struct cfg_item_state **st)
{
    size_t count;

    if (val->type != YAML_SEQUENCE_NODE) {
        cfg_error(ctx, val->start_mark, "expected a list, got %s", cfg_kind(val));
        return false;
    }
    count = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
    if (count == 0)
        return true;
    *items = calloc(count, size);
    *st = calloc(count, sizeof(**st));
    if (!*items || !*st) {
        free(*items);
        free(*st);
        *items = NULL;
        *st = NULL;
        ctx->oom = true;
        return false;
    }
    *n = count;
    return true;
}

static void cfg_f_users(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                        yaml_node_t *val, void *obj)
{
    struct td_config *cfg = obj;
    void *items = NULL;

    if (cfg_is_null(val))
        return;
    if (!cfg_list_alloc(ctx, val, sizeof(struct cfg_user), &items, &cfg->n_users, &ctx->ustate))
        return;
    cfg->users = items;
    for (size_t i = 0; i < cfg->n_users; i++) {
        yaml_node_t *item = yaml_document_get_node(ctx->doc, val->data.sequence.items.start[i]);
        yaml_node_t *seen[CFG_ARRAY_SIZE(cfg_user_fields)];
        struct cfg_user *u = &cfg->users[i];
        size_t old;

        if (!item || !cfg_visit(ctx))
            break;
        ctx->ustate[i].mark = item->start_mark;
        old = cfg_push_index(ctx, i);
        if (cfg_walk_map(ctx, item, cfg_user_fields, CFG_ARRAY_SIZE(cfg_user_fields), u, seen) &&
            !seen[CFG_U_PASSWORD] && !seen[CFG_U_WSTAN_KEY] && !seen[CFG_U_JPROXY] &&
            !ctx->too_complex)
            cfg_error(ctx, item->start_mark,
                      "user has no credentials (set password, wstan_key or jproxy_user_file)");
        cfg_pop(ctx, old);
    }
    if (cfg->n_users > 1)
        cfg_check_unique(ctx, "users", "user", &cfg->users[0].name, sizeof(struct cfg_user),
                         cfg->n_users, ctx->ustate);
}

static void cfg_listener_check(struct cfg_ctx *ctx, yaml_node_t *item, struct cfg_listener *l,
                               yaml_node_t **seen)
{
    struct cfg_item_state *st = cfg_lstate(ctx, l);
    size_t old;

    if (st->type_ok && l->type == CFG_LISTENER_FORWARD && !seen[CFG_L_TARGET]) {
        old = cfg_push_key(ctx, "target");
        cfg_error(ctx, item->start_mark,
                  "missing required key (a forward listener needs a target)");
        cfg_pop(ctx, old);
    }
    if (st->type_ok && l->type != CFG_LISTENER_FORWARD && seen[CFG_L_TARGET]) {
        old = cfg_push_key(ctx, "target");
        cfg_error(ctx, seen[CFG_L_TARGET]->start_mark,
                  "only forward listeners take a target (this one is %s)", cfg_type_names[l->type]);
        cfg_pop(ctx, old);
    }
    /* A forward listener whose literal target its own rules refuse could
     * never carry a connection.  (Names are checked once resolved.) */
    if (st->type_ok && l->type == CFG_LISTENER_FORWARD && l->has_target && !st->acl_bad &&
        l->target.kind != TD_HOST_NAME &&
        !cfg_rules_allow(&l->rules, l->target.kind == TD_HOST_IPV4 ? 4 : 6, l->target.ip)) {
        old = cfg_push_key(ctx, "target");
        cfg_error(ctx, seen[CFG_L_TARGET]->start_mark,
                  "the target is refused by this listener's allow/deny rules");
        cfg_pop(ctx, old);
    }
    if (st->type_ok && l->type == CFG_LISTENER_FORWARD && l->auth == CFG_AUTH_USERS) {
        old = cfg_push_key(ctx, "auth");
        cfg_error(ctx, st->auth_mark,
                  "a forward listener cannot use 'auth: users' (it has no handshake to "
                  "authenticate)");
        cfg_pop(ctx, old);
    }
}

static void cfg_f_listeners(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                            yaml_node_t *val, void *obj)
{
    struct td_config *cfg = obj;
    void *items = NULL;

    if (!cfg_is_null(val) && !cfg_list_alloc(ctx, val, sizeof(struct cfg_listener), &items,
                                             &cfg->n_listeners, &ctx->lstate))
        return;
    cfg->listeners = items;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        yaml_node_t *item = yaml_document_get_node(ctx->doc, val->data.sequence.items.start[i]);
        yaml_node_t *seen[CFG_ARRAY_SIZE(cfg_listener_fields)];
        struct cfg_listener *l = &cfg->listeners[i];
        size_t old;

        if (!item || !cfg_visit(ctx))
            break;
        ctx->lstate[i].mark = item->start_mark;
        old = cfg_push_index(ctx, i);
        if (cfg_walk_map(ctx, item, cfg_listener_fields, CFG_ARRAY_SIZE(cfg_listener_fields), l,
                         seen) &&
            !ctx->too_complex)
            cfg_listener_check(ctx, item, l, seen);
        cfg_pop(ctx, old);
        if (!l->route)
            l->route = cfg_strdup(ctx, "direct");
    }
    if (cfg->n_listeners > 1)
        cfg_check_unique(ctx, "listeners", "listener", &cfg->listeners[0].name,
                         sizeof(struct cfg_listener), cfg->n_listeners, ctx->lstate);
}

/* ---- tunnels and servers ---------------------------------------------------------- */

static const char *const cfg_protocol_names[] = {
    [CFG_PROTO_WSTAN] = "wstan",
    [CFG_PROTO_JPROXY] = "jproxy",
};

static const char *const cfg_nonce_names[] = {
    [CFG_NONCE_DEFAULT] = "default",
    [CFG_NONCE_COMPATIBLE] = "compatible",
};

static char cfg_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool cfg_prefix_nocase(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++)
        if (cfg_lower(*s) != *prefix)
            return false;
    return true;
}

static int cfg_strcmp_nocase(const char *a, const char *b)
{
    for (; *a && cfg_lower(*a) == cfg_lower(*b); a++, b++)
        ;
    return (unsigned char)cfg_lower(*a) - (unsigned char)cfg_lower(*b);
}

static bool cfg_visible_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* Parse "host[:port]" (len bytes, "[v6][:port]" too), with defport when the
 * port is left out.  Port 0 is refused.  Returns 0 or TD_EINVAL with *why. */
static int cfg_hostport_default(const char *s, size_t len, uint16_t defport,
                                struct td_hostport *out, const char **why)
{
    char buf[TD_HOST_MAX + 16];
    bool has_port;
    int n;

    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        has_port = close && (size_t)(close - s) + 1 < len;
    } else {
        has_port = memchr(s, ':', len) != NULL;
    }
    if (has_port)
        return td_hostport_parse(s, len, false, out, why);
    if (len > TD_HOST_MAX + 2) {
        *why = "host name too long";
        return TD_EINVAL;
    }
    n = snprintf(buf, sizeof(buf), "%.*s:%u", (int)len, s, (unsigned)defport);
    return td_hostport_parse(buf, (size_t)n, false, out, why);
}

/* The protocol of a tunnel or server item, looked up before the walk so
 * that keys written before "protocol:" can be checked against it: 0 while
 * unknown (absent or invalid, which the walk reports), else protocol + 1. */
static int cfg_prescan_protocol(struct cfg_ctx *ctx, yaml_node_t *item)
{
    yaml_node_pair_t *pair;

    if (item->type != YAML_MAPPING_NODE)
        return 0;
    for (pair = item->data.mapping.pairs.start; pair < item->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = yaml_document_get_node(ctx->doc, pair->key);
        yaml_node_t *val = yaml_document_get_node(ctx->doc, pair->value);

        if (!key || !val || key->type != YAML_SCALAR_NODE || key->data.scalar.length != 8 ||
            memcmp(key->data.scalar.value, "protocol", 8) != 0)
            continue;
        /* The first "protocol:" counts, as in the walk. */
        if (val->type != YAML_SCALAR_NODE ||
            strlen((const char *)val->data.scalar.value) != val->data.scalar.length)
            return 0;
        for (size_t i = 0; i < CFG_ARRAY_SIZE(cfg_protocol_names); i++)
            if (strcmp((const char *)val->data.scalar.value, cfg_protocol_names[i]) == 0)
                return (int)i + 1;
        return 0;
    }
    return 0;
}

static void cfg_f_protocol(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                           yaml_node_t *val, void *obj)
{
    const char *s = cfg_scalar(ctx, val, "a protocol");
    char shown[CFG_VALUE_SHOW + 1];

    if (!s)
        return;
    for (size_t i = 0; i < CFG_ARRAY_SIZE(cfg_protocol_names); i++) {
        if (strcmp(s, cfg_protocol_names[i]) == 0) {
            *CFG_FIELD_PTR(enum cfg_protocol, obj, f) = (enum cfg_protocol)i;
            ctx->cur->proto_ok = true;
            ctx->cur->proto_mark = val->start_mark;
            return;
        }
    }
    cfg_error(ctx, val->start_mark, "unknown protocol '%s' (expected wstan or jproxy)",
              cfg_show(shown, val));
}

static void cfg_f_nonce_mode(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                             yaml_node_t *val, void *obj)
{
    const char *s = cfg_scalar(ctx, val, "a nonce mode");
    char shown[CFG_VALUE_SHOW + 1];

    if (!s)
        return;
    for (size_t i = 0; i < CFG_ARRAY_SIZE(cfg_nonce_names); i++) {
        if (strcmp(s, cfg_nonce_names[i]) == 0) {
            *CFG_FIELD_PTR(enum cfg_nonce_mode, obj, f) = (enum cfg_nonce_mode)i;
            return;
        }
    }
    cfg_error(ctx, val->start_mark, "unknown nonce mode '%s' (expected default or compatible)",
              cfg_show(shown, val));
}

static void cfg_f_bool(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                       yaml_node_t *val, void *obj)
{
    static const char *const yes[] = {"true", "True", "TRUE"};
    static const char *const no[] = {"false", "False", "FALSE"};
    const char *s = cfg_plain_scalar(ctx, val, "true or false");
    char shown[CFG_VALUE_SHOW + 1];

    if (!s)
        return;
    for (size_t i = 0; i < CFG_ARRAY_SIZE(yes); i++) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            *CFG_FIELD_PTR(bool, obj, f) = strcmp(s, yes[i]) == 0;
            return;
        }
    }
    cfg_error(ctx, val->start_mark, "expected true or false, got '%s'", cfg_show(shown, val));
}

/* A wstan URL: ws:// or wss://, host[:port][/path], nothing else. */
static void cfg_f_url(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                      yaml_node_t *val, void *obj)
{
    struct cfg_tunnel *t = obj;
    const char *s = cfg_scalar(ctx, val, "a ws:// or wss:// URL");
    char shown[CFG_VALUE_SHOW + 1];
    const char *why = NULL, *auth = NULL, *path;
    struct td_hostport hp;
    size_t alen, plen;
    bool tls = false;

    if (!s)
        return;
    if (cfg_prefix_nocase(s, "wss://")) {
        tls = true;
        auth = s + 6;
    } else if (cfg_prefix_nocase(s, "ws://")) {
        auth = s + 5;
    } else {
        why = "the scheme must be ws:// or wss://";
    }
    if (!why && strlen(s) > CFG_URL_MAX)
        why = "too long";
    if (!why && strpbrk(s, "?#"))
        why = "a query or fragment is not allowed";
    if (!why && !cfg_visible_ascii(s))
        why = "invalid character in URL";
    path = auth ? strchr(auth, '/') : NULL;
    if (!path)
        path = auth ? auth + strlen(auth) : s;
    alen = auth ? (size_t)(path - auth) : 0;
    if (!why && memchr(auth, '@', alen))
        why = "user info (user@) is not allowed";
    if (!why && alen == 0)
        why = "empty host";
    if (!why)
        cfg_hostport_default(auth, alen, tls ? 443 : 80, &hp, &why);
    if (why) {
        cfg_error(ctx, val->start_mark, "invalid url '%s': %s", cfg_show(shown, val), why);
        return;
    }
    plen = strlen(path);
    cfg_set_string(&t->url, cfg_strdup(ctx, s));
    /* wstan appends the request to the path, after a '/'. */
    cfg_set_string(&t->path, plen == 0 ? cfg_strdup(ctx, "/")
                                       : cfg_fmt("%s%s", path, path[plen - 1] == '/' ? "" : "/"));
    if (!t->path)
        ctx->oom = true;
    t->tls = tls;
    t->server = hp;
}

/* A TLS server name: a DNS name, not an IP address (RFC 6066). */
static void cfg_f_sni(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                      yaml_node_t *val, void *obj)
{
    const char *s = cfg_scalar(ctx, val, "a host name");
    char shown[CFG_VALUE_SHOW + 1];
    uint8_t ip[16];
    size_t n;

    if (!s)
        return;
    n = strlen(s);
    if (n == 0 || n > 253 || !td_hostname_valid(s, n) || td_ipv4_parse(s, n, ip) == 0) {
        cfg_error(ctx, val->start_mark, "invalid host name '%s' (SNI needs a DNS name)",
                  cfg_show(shown, val));
        return;
    }
    cfg_set_string(CFG_FIELD_PTR(char *, obj, f), cfg_strdup(ctx, s));
}

/* host:port of an HTTP CONNECT proxy, or "" for none. */
static void cfg_f_http_proxy(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                             yaml_node_t *val, void *obj)
{
    struct cfg_tunnel *t = obj;
    const char *s = cfg_scalar(ctx, val, "an address (host:port) or \"\"");
    char shown[CFG_VALUE_SHOW + 1];
    const char *why = "invalid address";

    if (!s || s[0] == '\0')
        return;
    if (td_hostport_parse(s, strlen(s), false, &t->http_proxy, &why) != 0) {
        cfg_error(ctx, val->start_mark, "invalid address '%s': %s", cfg_show(shown, val), why);
        return;
    }
    t->has_http_proxy = true;
}

/* host[:port], with f->max as the default port. */
static void cfg_f_hostport_default(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                                   yaml_node_t *val, void *obj)
{
    const char *s = cfg_scalar(ctx, val, "an address (host[:port])");
    char shown[CFG_VALUE_SHOW + 1];
    const char *why = "invalid address";

    if (!s)
        return;
    if (s[0] == '\0' || cfg_hostport_default(s, strlen(s), (uint16_t)f->max,
                                             CFG_FIELD_PTR(struct td_hostport, obj, f), &why) != 0)
        cfg_error(ctx, val->start_mark, "invalid address '%s': %s", cfg_show(shown, val),
                  s[0] ? why : "empty address");
}

/* The jProxy login token: 32 bytes as 64 hex digits.  The value is a
 * credential, so it is not quoted back. */
static void cfg_f_token(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                        yaml_node_t *val, void *obj)
{
    const char *s = cfg_scalar(ctx, val, "64 hex digits");
    size_t n;

    if (!s)
        return;
    n = strlen(s);
    for (size_t i = 0; i < n && n == 64; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            n = 0;
    }
    if (n != 64) {
        cfg_error(ctx, val->start_mark, "must be 64 hex digits (the 32-byte login token)");
        return;
    }
    cfg_set_string(CFG_FIELD_PTR(char *, obj, f), cfg_strdup(ctx, s));
}

/* A URL path prefix for the wstan server: "/..." without query or fragment,
 * normalised to end with '/'. */
static void cfg_f_server_path(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                              yaml_node_t *val, void *obj)
{
    struct cfg_server *sv = obj;
    const char *s = cfg_scalar(ctx, val, "a URL path");
    char shown[CFG_VALUE_SHOW + 1];
    size_t n;

    if (!s)
        return;
    n = strlen(s);
    if (s[0] != '/' || n > CFG_URL_MAX || strpbrk(s, "?#") || !cfg_visible_ascii(s)) {
        cfg_error(ctx, val->start_mark,
                  "invalid path '%s' (it must start with '/' and have no query, fragment or "
                  "spaces)",
                  cfg_show(shown, val));
        return;
    }
    cfg_set_string(&sv->path, cfg_fmt("%s%s", s, s[n - 1] == '/' ? "" : "/"));
    if (!sv->path)
        ctx->oom = true;
}

static void cfg_f_tunnel_name(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                              yaml_node_t *val, void *obj)
{
    struct cfg_tunnel *t = obj;

    ctx->cur->name_mark = val->start_mark;
    cfg_f_name(ctx, f, key, val, obj);
    if (t->name && strcmp(t->name, "direct") == 0)
        cfg_error(ctx, val->start_mark,
                  "the name 'direct' is reserved (a listener's 'route: direct' means no tunnel)");
}

static void cfg_f_server_name(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                              yaml_node_t *val, void *obj)
{
    ctx->cur->name_mark = val->start_mark;
    cfg_f_name(ctx, f, key, val, obj);
}

static void cfg_f_server_listen(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                                yaml_node_t *val, void *obj)
{
    struct cfg_server *sv = obj;

    ctx->cur->listen_mark = val->start_mark;
    cfg_f_hostport(ctx, f, key, val, obj);
    /* A parsed address always has a host. */
    ctx->cur->listen_ok = sv->listen.host[0] != '\0';
}

/* tls: {cert, key} for a wstan server: both or neither. */
static void cfg_f_server_tls(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                             yaml_node_t *val, void *obj)
{
    yaml_node_t *seen[CFG_MAX_FIELDS];
    size_t old;

    if (cfg_is_null(val))
        return;
    if (!cfg_walk_map(ctx, val, f->sub, f->nsub, obj, seen) || ctx->too_complex)
        return;
    if (!seen[0] != !seen[1]) {
        old = cfg_push_key(ctx, seen[0] ? "key" : "cert");
        cfg_error(ctx, val->start_mark, "missing required key (tls.cert and tls.key go together)");
        cfg_pop(ctx, old);
    }
}

/* keys: a list of wstan keys (raw base64 keys or passwords). */
static void cfg_f_keys(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                       yaml_node_t *val, void *obj)
{
    struct cfg_server *sv = obj;
    size_t count;

    if (val->type != YAML_SEQUENCE_NODE) {
        cfg_error(ctx, val->start_mark, "expected a list of keys, got %s", cfg_kind(val));
        return;
    }
    count = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
    if (count == 0)
        return;
    sv->keys = calloc(count, sizeof(*sv->keys));
    if (!sv->keys) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *item = yaml_document_get_node(ctx->doc, val->data.sequence.items.start[i]);
        const char *s;
        size_t old;

        if (!item || !cfg_visit(ctx))
            break;
        old = cfg_push_index(ctx, i);
        s = cfg_scalar(ctx, item, "a key");
        if (s && s[0] == '\0')
            cfg_error(ctx, item->start_mark, "must not be empty");
        else if (s && strlen(s) > CFG_KEY_MAX)
            cfg_error(ctx, item->start_mark, "too long (at most %d bytes)", CFG_KEY_MAX);
        else if (s && (sv->keys[sv->n_keys] = cfg_strdup(ctx, s)) != NULL)
            sv->n_keys++;
        cfg_pop(ctx, old);
    }
}

enum {
    CFG_T_NAME,
    CFG_T_PROTOCOL,
    CFG_T_URL,
    CFG_T_KEY,
    CFG_T_NONCE,
    CFG_T_POOL,
    CFG_T_TLS,
    CFG_T_HTTP_PROXY,
    CFG_T_SERVER,
    CFG_T_KEY_FILE,
    CFG_T_PRIVATE_KEY,
    CFG_T_TOKEN,
    CFG_T_RECONNECT,
    CFG_T_MAX_STREAMS,
};

static const struct cfg_field cfg_tunnel_pool_fields[] = {
    {.key = "size", .fn = cfg_f_u32, .off = offsetof(struct cfg_tunnel, pool_size), .max = 1024},
    {.key = "max_idle",
     .fn = cfg_f_duration,
     .off = offsetof(struct cfg_tunnel, pool_max_idle_ms),
     .max = CFG_DURATION_MAX},
};

static const struct cfg_field cfg_tunnel_tls_fields[] = {
    {.key = "ca",
     .fn = cfg_f_path,
     .off = offsetof(struct cfg_tunnel, tls_ca),
     .max = CFG_PATH_MAX},
    {.key = "verify", .fn = cfg_f_bool, .off = offsetof(struct cfg_tunnel, tls_verify)},
    {.key = "sni", .fn = cfg_f_sni, .off = offsetof(struct cfg_tunnel, tls_sni)},
};

static const struct cfg_field cfg_tunnel_fields[] = {
    [CFG_T_NAME] = {.key = "name",
                    .fn = cfg_f_tunnel_name,
                    .required = true,
                    .off = offsetof(struct cfg_tunnel, name)},
    [CFG_T_PROTOCOL] = {.key = "protocol",
                        .fn = cfg_f_protocol,
                        .required = true,
                        .off = offsetof(struct cfg_tunnel, protocol)},
    /* wstan */
    [CFG_T_URL] = {.key = "url", .fn = cfg_f_url, .only = CFG_WSTAN},
    [CFG_T_KEY] = {.key = "key",
                   .fn = cfg_f_string,
                   .off = offsetof(struct cfg_tunnel, key),
                   .max = CFG_KEY_MAX,
                   .only = CFG_WSTAN},
    [CFG_T_NONCE] = {.key = "nonce_mode",
                     .fn = cfg_f_nonce_mode,
                     .off = offsetof(struct cfg_tunnel, nonce_mode),
                     .only = CFG_WSTAN},
    [CFG_T_POOL] = {.key = "pool",
                    .fn = cfg_f_section,
                    .sub = cfg_tunnel_pool_fields,
                    .nsub = CFG_ARRAY_SIZE(cfg_tunnel_pool_fields),
                    .only = CFG_WSTAN},
    [CFG_T_TLS] = {.key = "tls",
                   .fn = cfg_f_section,
                   .sub = cfg_tunnel_tls_fields,
                   .nsub = CFG_ARRAY_SIZE(cfg_tunnel_tls_fields),
                   .only = CFG_WSTAN},
    [CFG_T_HTTP_PROXY] = {.key = "http_proxy", .fn = cfg_f_http_proxy, .only = CFG_WSTAN},
    /* jproxy */
    [CFG_T_SERVER] = {.key = "server",
                      .fn = cfg_f_hostport_default,
                      .off = offsetof(struct cfg_tunnel, jp_server),
                      .max = CFG_JPROXY_PORT,
                      .only = CFG_JPROXY},
    [CFG_T_KEY_FILE] = {.key = "key_file",
                        .fn = cfg_f_path,
                        .off = offsetof(struct cfg_tunnel, key_file),
                        .max = CFG_PATH_MAX,
                        .only = CFG_JPROXY},
    [CFG_T_PRIVATE_KEY] = {.key = "private_key",
                           .fn = cfg_f_path,
                           .off = offsetof(struct cfg_tunnel, private_key),
                           .max = CFG_PATH_MAX,
                           .only = CFG_JPROXY},
    [CFG_T_TOKEN] = {.key = "token",
                     .fn = cfg_f_token,
                     .off = offsetof(struct cfg_tunnel, token),
                     .only = CFG_JPROXY},
    [CFG_T_RECONNECT] = {.key = "reconnect_max",
                         .fn = cfg_f_duration,
                         .off = offsetof(struct cfg_tunnel, reconnect_max_ms),
                         .min = 100,
                         .max = 60 * 60 * 1000,
                         .only = CFG_JPROXY},
    [CFG_T_MAX_STREAMS] = {.key = "max_streams",
                           .fn = cfg_f_u32,
                           .off = offsetof(struct cfg_tunnel, max_streams),
                           .min = 1,
                           .max = 65535,
                           .only = CFG_JPROXY},
};

enum {
    CFG_S_NAME,
    CFG_S_PROTOCOL,
    CFG_S_LISTEN,
    CFG_S_PATH,
    CFG_S_NONCE,
    CFG_S_TLS,
    CFG_S_KEYS,
    CFG_S_TIMESTAMP_WINDOW,
    CFG_S_USERS_DIR,
    CFG_S_MAX_STREAMS,
    CFG_S_ALLOW,
    CFG_S_DENY,
};

/* cfg_f_server_tls() relies on this order: cert, then key. */
static const struct cfg_field cfg_server_tls_fields[] = {
    {.key = "cert",
     .fn = cfg_f_path,
     .off = offsetof(struct cfg_server, tls_cert),
     .max = CFG_PATH_MAX},
    {.key = "key",
     .fn = cfg_f_path,
     .off = offsetof(struct cfg_server, tls_key),
     .max = CFG_PATH_MAX},
};

static const struct cfg_field cfg_server_fields[] = {
    [CFG_S_NAME] = {.key = "name",
                    .fn = cfg_f_server_name,
                    .required = true,
                    .off = offsetof(struct cfg_server, name)},
    [CFG_S_PROTOCOL] = {.key = "protocol",
                        .fn = cfg_f_protocol,
                        .required = true,
                        .off = offsetof(struct cfg_server, protocol)},
    [CFG_S_LISTEN] = {.key = "listen",
                      .fn = cfg_f_server_listen,
                      .required = true,
                      .off = offsetof(struct cfg_server, listen),
                      .min = 1},
    /* wstan */
    [CFG_S_PATH] = {.key = "path", .fn = cfg_f_server_path, .only = CFG_WSTAN},
    [CFG_S_NONCE] = {.key = "nonce_mode",
                     .fn = cfg_f_nonce_mode,
                     .off = offsetof(struct cfg_server, nonce_mode),
                     .only = CFG_WSTAN},
    [CFG_S_TLS] = {.key = "tls",
                   .fn = cfg_f_server_tls,
                   .sub = cfg_server_tls_fields,
                   .nsub = CFG_ARRAY_SIZE(cfg_server_tls_fields),
                   .only = CFG_WSTAN},
    [CFG_S_KEYS] = {.key = "keys", .fn = cfg_f_keys, .only = CFG_WSTAN},
    [CFG_S_TIMESTAMP_WINDOW] = {.key = "timestamp_window",
                                .fn = cfg_f_duration,
                                .off = offsetof(struct cfg_server, timestamp_window_ms),
                                .min = 1000,
                                .max = 60 * 60 * 1000,
                                .only = CFG_WSTAN},
    /* jproxy */
    [CFG_S_USERS_DIR] = {.key = "users_dir",
                         .fn = cfg_f_path,
                         .off = offsetof(struct cfg_server, users_dir),
                         .max = CFG_PATH_MAX,
                         .only = CFG_JPROXY},
    [CFG_S_MAX_STREAMS] = {.key = "max_streams",
                           .fn = cfg_f_u32,
                           .off = offsetof(struct cfg_server, max_streams),
                           .min = 1,
                           .max = 65535,
                           .only = CFG_JPROXY},
    /* both */
    [CFG_S_ALLOW] = {.key = "allow", .fn = cfg_f_allow, .off = offsetof(struct cfg_server, rules)},
    [CFG_S_DENY] = {.key = "deny", .fn = cfg_f_deny, .off = offsetof(struct cfg_server, rules)},
};

/* A server with neither allow: nor deny: gets the default deny list. */
static void cfg_server_default_rules(struct cfg_ctx *ctx, struct cfg_server *sv)
{
    static const char *const def[] = {CFG_SERVER_DEFAULT_DENY};
    size_t n = CFG_ARRAY_SIZE(def);

    sv->rules.deny = calloc(n, sizeof(*sv->rules.deny));
    if (!sv->rules.deny) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (td_cidr_parse(def[i], strlen(def[i]), &sv->rules.deny[i], NULL) != 0) {
            ctx->oom = true; /* cannot happen: the list is ours */
            return;
        }
    sv->rules.n_deny = n;
    sv->rules_default = true;
}

/* "missing required key" for a key that only its protocol requires. */
static void cfg_require(struct cfg_ctx *ctx, yaml_node_t *item, yaml_node_t *const *seen,
                        const struct cfg_field *fields, size_t i, const char *why)
{
    size_t old;

    if (seen[i])
        return;
    old = cfg_push_key(ctx, fields[i].key);
    cfg_error(ctx, item->start_mark, "missing required key%s%s%s", why ? " (" : "", why ? why : "",
              why ? ")" : "");
    cfg_pop(ctx, old);
}

static void cfg_tunnel_check(struct cfg_ctx *ctx, yaml_node_t *item, struct cfg_tunnel *t,
                             yaml_node_t **seen)
{
    const struct cfg_field *fl = cfg_tunnel_fields;
    yaml_node_t *kf = seen[CFG_T_KEY_FILE], *pk = seen[CFG_T_PRIVATE_KEY], *tok = seen[CFG_T_TOKEN];
    size_t old;

    if (!ctx->cur->proto_ok)
        return;
    if (t->protocol == CFG_PROTO_WSTAN) {
        cfg_require(ctx, item, seen, fl, CFG_T_URL, NULL);
        cfg_require(ctx, item, seen, fl, CFG_T_KEY, NULL);
        if (seen[CFG_T_TLS] && t->url && !t->tls) {
            old = cfg_push_key(ctx, "tls");
            cfg_error(ctx, seen[CFG_T_TLS]->start_mark,
                      "TLS settings need a wss:// url (this tunnel's url is ws://)");
            cfg_pop(ctx, old);
        }
        return;
    }
    cfg_require(ctx, item, seen, fl, CFG_T_SERVER, NULL);
    if (kf && (pk || tok)) {
        old = cfg_push_key(ctx, pk ? "private_key" : "token");
        cfg_error(ctx, (pk ? pk : tok)->start_mark,
                  "give either key_file, or private_key and token, not both");
        cfg_pop(ctx, old);
    } else if (!kf && !pk && !tok) {
        cfg_require(ctx, item, seen, fl, CFG_T_KEY_FILE,
                    "a jproxy tunnel needs key_file, or private_key and token");
    } else if (!kf) {
        cfg_require(ctx, item, seen, fl, CFG_T_TOKEN, "private_key needs a token");
        cfg_require(ctx, item, seen, fl, CFG_T_PRIVATE_KEY, "token needs a private_key");
    }
}

static void cfg_f_tunnels(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                          yaml_node_t *val, void *obj)
{
    struct td_config *cfg = obj;
    void *items = NULL;

    if (cfg_is_null(val))
        return;
    if (!cfg_list_alloc(ctx, val, sizeof(struct cfg_tunnel), &items, &cfg->n_tunnels, &ctx->tstate))
        return;
    cfg->tunnels = items;
    for (size_t i = 0; i < cfg->n_tunnels; i++) {
        yaml_node_t *item = yaml_document_get_node(ctx->doc, val->data.sequence.items.start[i]);
        yaml_node_t *seen[CFG_ARRAY_SIZE(cfg_tunnel_fields)];
        struct cfg_tunnel *t = &cfg->tunnels[i];
        size_t old;

        t->nonce_mode = CFG_NONCE_DEFAULT;
        t->pool_size = 16;
        t->pool_max_idle_ms = 5 * 60 * 1000;
        t->tls_verify = true;
        t->reconnect_max_ms = 30 * 1000;
        t->max_streams = 1024;
        if (!item || !cfg_visit(ctx))
            break;
        ctx->tstate[i].mark = item->start_mark;
        ctx->cur = &ctx->tstate[i];
        ctx->item_kind = "tunnel";
        ctx->item_only = cfg_prescan_protocol(ctx, item);
        old = cfg_push_index(ctx, i);
        if (cfg_walk_map(ctx, item, cfg_tunnel_fields, CFG_ARRAY_SIZE(cfg_tunnel_fields), t,
                         seen) &&
            !ctx->too_complex)
            cfg_tunnel_check(ctx, item, t, seen);
        cfg_pop(ctx, old);
        ctx->cur = NULL;
        ctx->item_only = 0;
    }
    for (size_t i = 0; i < cfg->n_tunnels; i++)
        if (!cfg->tunnels[i].name)
            ctx->tunnel_name_bad = true;
    if (cfg->n_tunnels > 1)
        cfg_check_unique(ctx, "tunnels", "tunnel", &cfg->tunnels[0].name, sizeof(struct cfg_tunnel),
                         cfg->n_tunnels, ctx->tstate);
}

static void cfg_f_servers(struct cfg_ctx *ctx, const struct cfg_field *f, yaml_node_t *key,
                          yaml_node_t *val, void *obj)
{
    struct td_config *cfg = obj;
    void *items = NULL;

    if (cfg_is_null(val))
        return;
    if (!cfg_list_alloc(ctx, val, sizeof(struct cfg_server), &items, &cfg->n_servers, &ctx->sstate))
        return;
    cfg->servers = items;
    for (size_t i = 0; i < cfg->n_servers; i++) {
        yaml_node_t *item = yaml_document_get_node(ctx->doc, val->data.sequence.items.start[i]);
        yaml_node_t *seen[CFG_ARRAY_SIZE(cfg_server_fields)];
        struct cfg_server *sv = &cfg->servers[i];
        size_t old;

        sv->nonce_mode = CFG_NONCE_DEFAULT;
        sv->timestamp_window_ms = 60 * 1000;
        sv->max_streams = 1024;
        if (!item || !cfg_visit(ctx))
            break;
        ctx->sstate[i].mark = item->start_mark;
        ctx->cur = &ctx->sstate[i];
        ctx->item_kind = "server";
        ctx->item_only = cfg_prescan_protocol(ctx, item);
        old = cfg_push_index(ctx, i);
        if (cfg_walk_map(ctx, item, cfg_server_fields, CFG_ARRAY_SIZE(cfg_server_fields), sv,
                         seen)) {
            if (!seen[CFG_S_ALLOW] && !seen[CFG_S_DENY])
                cfg_server_default_rules(ctx, sv);
            if (ctx->sstate[i].proto_ok && sv->protocol == CFG_PROTO_WSTAN && !sv->path &&
                !seen[CFG_S_PATH])
                sv->path = cfg_strdup(ctx, "/");
        }
        cfg_pop(ctx, old);
        ctx->cur = NULL;
        ctx->item_only = 0;
    }
    if (cfg->n_servers > 1)
        cfg_check_unique(ctx, "servers", "server", &cfg->servers[0].name, sizeof(struct cfg_server),
                         cfg->n_servers, ctx->sstate);
}

struct cfg_addr_ref {
    const struct td_hostport *hp;
    size_t idx;
};

static int cfg_addr_ref_cmp(const void *a, const void *b)
{
    const struct cfg_addr_ref *x = a, *y = b;
    int c;

    if (x->hp->port != y->hp->port)
        return x->hp->port < y->hp->port ? -1 : 1;
    if (x->hp->kind != y->hp->kind)
        return x->hp->kind < y->hp->kind ? -1 : 1;
    c = x->hp->kind == TD_HOST_NAME ? cfg_strcmp_nocase(x->hp->host, y->hp->host)
                                    : memcmp(x->hp->ip, y->hp->ip, sizeof(x->hp->ip));
    if (c)
        return c;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* Two servers cannot bind the same address (port 0 picks a fresh port for
 * each).  Sorted, like cfg_check_unique(), to stay O(n log n). */
static void cfg_check_server_addrs(struct cfg_ctx *ctx)
{
    struct td_config *cfg = ctx->cfg;
    struct cfg_addr_ref *v;
    size_t m = 0;

    if (cfg->n_servers < 2)
        return;
    v = calloc(cfg->n_servers, sizeof(*v));
    if (!v) {
        ctx->oom = true;
        return;
    }
    for (size_t i = 0; i < cfg->n_servers; i++) {
        if (ctx->sstate[i].listen_ok && cfg->servers[i].listen.port != 0) {
            v[m].hp = &cfg->servers[i].listen;
            v[m].idx = i;
            m++;
        }
    }
    qsort(v, m, sizeof(*v), cfg_addr_ref_cmp);
    for (size_t i = 1, first = 0; i < m; i++) {
        struct cfg_addr_ref a = v[first], b = v[i];
        char path[64];
        yaml_mark_t fm = ctx->sstate[a.idx].listen_mark;

        a.idx = b.idx = 0;
        if (cfg_addr_ref_cmp(&a, &b) != 0) {
            first = i;
            continue;
        }
        snprintf(path, sizeof(path), "servers[%zu].listen", v[i].idx);
        cfg_error_path(ctx, ctx->sstate[v[i].idx].listen_mark, path,
                       "servers[%zu] already listens on this address (at %zu:%zu)", v[first].idx,
                       fm.line + 1, fm.column + 1);
    }
    free(v);
}

/* Checks of tunnels and servers that need the whole file.  A server with no
 * key and no user is not an error: its users may be managed ones (tunnelctl
 * users add), which live in the state, not here; it warns when it starts
 * without any. */
static void cfg_check_protocols(struct cfg_ctx *ctx)
{
    struct td_config *cfg = ctx->cfg;
    char path[64];

    /* A route names a tunnel.  When some tunnel has no valid name, its own
     * error says enough. */
    for (size_t i = 0; i < cfg->n_listeners && !ctx->tunnel_name_bad; i++) {
        const struct cfg_listener *l = &cfg->listeners[i];
        char shown[CFG_VALUE_SHOW + 1];

        if (!ctx->lstate[i].route_set || !l->route || strcmp(l->route, "direct") == 0 ||
            cfg_find_tunnel(cfg, l->route))
            continue;
        snprintf(path, sizeof(path), "listeners[%zu].route", i);
        cfg_error_path(ctx, ctx->lstate[i].route_mark, path, "unknown tunnel '%s'",
                       td_log_safe(shown, sizeof(shown), l->route, strlen(l->route)));
    }
    cfg_check_server_addrs(ctx);
}

/* ---- the root ------------------------------------------------------------------------ */

static const struct cfg_field cfg_log_fields[] = {
    {.key = "level", .fn = cfg_f_log_level},
    {.key = "file",
     .fn = cfg_f_path,
     .off = offsetof(struct cfg_log, file),
     .max = CFG_PATH_MAX,
     .msg = "-"},
};

static const struct cfg_field cfg_control_fields[] = {
    {.key = "socket",
     .fn = cfg_f_socket,
     .off = offsetof(struct cfg_control, socket),
     .max = CFG_PATH_MAX},
    {.key = "group", .fn = cfg_f_name, .off = offsetof(struct cfg_control, group)},
};

static const struct cfg_field cfg_metrics_fields[] = {
    {.key = "listen",
     .fn = cfg_f_hostport,
     .required = true,
     .off = offsetof(struct cfg_metrics, listen),
     .min = 1},
};

#define CFG_LIMIT_DURATION(k, field, lo)                                                           \
    {                                                                                              \
        .key = k, .fn = cfg_f_duration, .off = offsetof(struct cfg_limits, field), .min = (lo),    \
        .max = CFG_DURATION_MAX                                                                    \
    }

static const struct cfg_field cfg_limits_fields[] = {
    {.key = "max_connections",
     .fn = cfg_f_u32,
     .off = offsetof(struct cfg_limits, max_connections),
     .min = 1,
     .max = 1000000},
    CFG_LIMIT_DURATION("handshake_timeout", handshake_timeout_ms, 1),
    CFG_LIMIT_DURATION("connect_timeout", connect_timeout_ms, 1),
    CFG_LIMIT_DURATION("idle_timeout", idle_timeout_ms, 1),
    CFG_LIMIT_DURATION("linger", linger_ms, 1),
    CFG_LIMIT_DURATION("dns_timeout", dns_timeout_ms, 1),
    CFG_LIMIT_DURATION("udp_timeout", udp_timeout_ms, 1),
    CFG_LIMIT_DURATION("drain_timeout", drain_timeout_ms, 0),
    {.key = "buffer",
     .fn = cfg_f_size,
     .off = offsetof(struct cfg_limits, buffer),
     .min = 4 * 1024,
     .max = 64 * 1024 * 1024,
     .msg = "4KiB-64MiB"},
    {.key = "max_handshakes",
     .fn = cfg_f_u32,
     .off = offsetof(struct cfg_limits, max_handshakes),
     .min = 1,
     .max = 1000000},
    {.key = "handshake_memory",
     .fn = cfg_f_size,
     .off = offsetof(struct cfg_limits, handshake_memory),
     .min = 1024 * 1024,
     .max = 16ull * 1024 * 1024 * 1024,
     .msg = "1MiB-16GiB"},
    {.key = "resolver_threads",
     .fn = cfg_f_u32,
     .off = offsetof(struct cfg_limits, resolver_threads),
     .min = 1,
     .max = 1024},
};

enum { CFG_R_VERSION, CFG_R_LISTENERS };

static const struct cfg_field cfg_root_fields[] = {
    [CFG_R_VERSION] = {.key = "version", .fn = cfg_f_version, .required = true},
    [CFG_R_LISTENERS] = {.key = "listeners", .fn = cfg_f_listeners},
    {.key = "log",
     .fn = cfg_f_section,
     .off = offsetof(struct td_config, log),
     .sub = cfg_log_fields,
     .nsub = CFG_ARRAY_SIZE(cfg_log_fields)},
    {.key = "control",
     .fn = cfg_f_section,
     .off = offsetof(struct td_config, control),
     .sub = cfg_control_fields,
     .nsub = CFG_ARRAY_SIZE(cfg_control_fields)},
    {.key = "metrics",
     .fn = cfg_f_section,
     .off = offsetof(struct td_config, metrics),
     .sub = cfg_metrics_fields,
     .nsub = CFG_ARRAY_SIZE(cfg_metrics_fields)},
    {.key = "user", .fn = cfg_f_name, .off = offsetof(struct td_config, user)},
    {.key = "state_dir",
     .fn = cfg_f_path,
     .off = offsetof(struct td_config, state_dir),
     .max = CFG_PATH_MAX},
    {.key = "limits",
     .fn = cfg_f_section,
     .off = offsetof(struct td_config, limits),
     .sub = cfg_limits_fields,
     .nsub = CFG_ARRAY_SIZE(cfg_limits_fields)},
    {.key = "users", .fn = cfg_f_users},
    {.key = "tunnels", .fn = cfg_f_tunnels},
    {.key = "servers", .fn = cfg_f_servers},
};

/* Checks that need the whole file: "auth: users" needs someone to log in,
 * and those of cfg_check_protocols(). */
static void cfg_check_cross(struct cfg_ctx *ctx)
{
    struct td_config *cfg = ctx->cfg;
    bool have_password = false;

    for (size_t i = 0; i < cfg->n_users; i++)
        if (cfg->users[i].password)
            have_password = true;
    for (size_t i = 0; i < cfg->n_listeners && !have_password; i++) {
        struct cfg_listener *l = &cfg->listeners[i];
        char path[64];

        if (l->auth != CFG_AUTH_USERS || !ctx->lstate[i].type_ok || l->type == CFG_LISTENER_FORWARD)
            continue;
        snprintf(path, sizeof(path), "listeners[%zu].auth", i);
        cfg_error_path(ctx, ctx->lstate[i].auth_mark, path,
                       "'auth: users' needs at least one user with a password");
    }
    cfg_check_protocols(ctx);
}

/* ---- loading --------------------------------------------------------------------------- */

static int cfg_defaults(struct cfg_ctx *ctx, struct td_config *cfg, const char *name)
{
    const char *slash = strrchr(name, '/');

    cfg->path = cfg_strdup(ctx, name);
    if (!slash)
        cfg->dir = cfg_strdup(ctx, ".");
    else if (slash == name)
        cfg->dir = cfg_strdup(ctx, "/");
    else
        cfg->dir = cfg_fmt("%.*s", (int)(slash - name), name);
    cfg->log.level = TD_LOG_INFO;
    cfg->log.file = cfg_strdup(ctx, "-");
    cfg->control.socket = cfg_strdup(ctx, CFG_DEFAULT_CONTROL_SOCKET);
    cfg->state_dir = cfg_strdup(ctx, CFG_DEFAULT_STATE_DIR);
    cfg->limits.max_connections = 20000;
    cfg->limits.handshake_timeout_ms = 10 * 1000;
    cfg->limits.connect_timeout_ms = 10 * 1000;
    cfg->limits.idle_timeout_ms = 5 * 60 * 1000;
    cfg->limits.linger_ms = 10 * 1000;
    cfg->limits.dns_timeout_ms = 5 * 1000;
    cfg->limits.udp_timeout_ms = 60 * 1000;
    cfg->limits.drain_timeout_ms = 10 * 1000;
    cfg->limits.buffer = 64 * 1024;
    cfg->limits.max_handshakes = 1024;
    cfg->limits.handshake_memory = 64 * 1024 * 1024;
    cfg->limits.resolver_threads = 32;
    if (!cfg->path || !cfg->dir || !cfg->log.file || !cfg->control.socket || !cfg->state_dir) {
        ctx->oom = true;
        return TD_ENOMEM;
    }
    return 0;
}

/* The one place where libyaml errors become messages. */
static void cfg_yaml_error(struct cfg_ctx *ctx, const yaml_parser_t *p, const char *data,
                           size_t len)
{
    yaml_mark_t mark = p->problem_mark;
    const char *problem = p->problem ? p->problem : "syntax error";

    if (p->error == YAML_MEMORY_ERROR) {
        ctx->oom = true;
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors (bad UTF-8, control characters) carry a byte offset,
         * not a mark. */
        size_t off = p->problem_offset < len ? p->problem_offset : len;
        mark.line = 0;
        mark.column = 0;
        for (size_t i = 0; i < off; i++) {
            if (data[i] == '\n') {
                mark.line++;
                mark.column = 0;
            } else {
                mark.column++;
            }
        }
    }
    if (p->context)
        cfg_error_path(ctx, mark, "yaml", "%s (%s at %zu:%zu)", problem, p->context,
                       p->context_mark.line + 1, p->context_mark.column + 1);
    else
        cfg_error_path(ctx, mark, "yaml", "%s", problem);
}

/* Parse the one document of data.  Returns true with *doc loaded and a root
 * node, or false after recording the reason. */
/* Scalars may be passwords and keys: wipe them before libyaml frees them. */
static void cfg_doc_wipe_delete(yaml_document_t *doc)
{
    for (yaml_node_t *n = doc->nodes.start; n && n < doc->nodes.top; n++)
        if (n->type == YAML_SCALAR_NODE)
            td_wipe(n->data.scalar.value, n->data.scalar.length);
    yaml_document_delete(doc);
}

static bool cfg_parse(struct cfg_ctx *ctx, const char *data, size_t len, yaml_document_t *doc)
{
    yaml_parser_t parser;
    yaml_document_t extra;
    bool ok = false;

    if (!yaml_parser_initialize(&parser)) {
        ctx->oom = true;
        return false;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, doc)) {
        cfg_yaml_error(ctx, &parser, data, len);
        goto out;
    }
    if (!yaml_document_get_root_node(doc)) {
        yaml_mark_t m = {0, 0, 0};
        cfg_error_path(ctx, m, "yaml",
                       "the file is empty (a config needs at least 'version' "
                       "and 'listeners')");
        yaml_document_delete(doc);
        goto out;
    }
    /* A second document would be silently ignored; refuse it instead. */
    if (!yaml_parser_load(&parser, &extra)) {
        cfg_yaml_error(ctx, &parser, data, len);
        yaml_document_delete(doc);
        goto out;
    }
    if (yaml_document_get_root_node(&extra)) {
        cfg_error_path(ctx, extra.start_mark, "yaml", "only one document is allowed per file");
        yaml_document_delete(&extra);
        yaml_document_delete(doc);
        goto out;
    }
    yaml_document_delete(&extra);
    ok = true;
out:
    yaml_parser_delete(&parser);
    return ok;
}

static int cfg_finish(struct cfg_ctx *ctx, int rc, struct cfg_errors *errs)
{
    if (ctx->n_errs > 1)
        qsort(ctx->errs, ctx->n_errs, sizeof(*ctx->errs), cfg_err_cmp);
    if (ctx->truncated || ctx->n_errs > CFG_MAX_ERRORS) {
        while (ctx->n_errs > CFG_MAX_ERRORS)
            free(ctx->errs[--ctx->n_errs].msg);
        ctx->nocap = true;
        cfg_add_error(
            ctx, SIZE_MAX, SIZE_MAX,
            cfg_fmt("%s: too many errors; only the first %d are shown", ctx->name, CFG_MAX_ERRORS));
    }
    if (ctx->oom)
        rc = TD_ENOMEM;
    else if (rc == 0 && ctx->n_errs > 0)
        rc = TD_ECONFIG;
    if (errs && ctx->n_errs > 0) {
        errs->msgs = calloc(ctx->n_errs, sizeof(*errs->msgs));
        if (errs->msgs) {
            for (size_t i = 0; i < ctx->n_errs; i++) {
                errs->msgs[i] = ctx->errs[i].msg;
                ctx->errs[i].msg = NULL; /* errs took ownership */
            }
            errs->n = ctx->n_errs;
        } else {
            rc = TD_ENOMEM;
        }
    }
    for (size_t i = 0; i < ctx->n_errs; i++)
        free(ctx->errs[i].msg);
    free(ctx->errs);
    free(ctx->ustate);
    free(ctx->lstate);
    free(ctx->tstate);
    free(ctx->sstate);
    return rc;
}

static int cfg__load(const char *name, const char *data, size_t len, struct td_config **out,
                     struct cfg_errors *errs)
{
    struct cfg_ctx ctx;
    yaml_document_t doc;
    yaml_node_t *root;
    struct td_config *cfg = NULL;
    yaml_node_t *seen[CFG_ARRAY_SIZE(cfg_root_fields)];
    bool have_doc = false;
    int rc = 0;

    memset(&ctx, 0, sizeof(ctx));
    ctx.name = name;
    if (len > TD_CONFIG_MAX_FILE) {
        cfg_add_error(
            &ctx, 0, 0,
            cfg_fmt("%s: too large (%zu bytes; the limit is %u)", name, len, TD_CONFIG_MAX_FILE));
        goto out;
    }
    cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        ctx.oom = true;
        goto out;
    }
    cfg->refs = 1;
    ctx.cfg = cfg;
    if (cfg_defaults(&ctx, cfg, name) != 0)
        goto out;
    if (!cfg_parse(&ctx, data, len, &doc))
        goto out;
    have_doc = true;
    ctx.doc = &doc;
    root = yaml_document_get_root_node(&doc);
    if (root->type != YAML_MAPPING_NODE) {
        cfg_error_path(&ctx, root->start_mark, "yaml",
                       "expected a mapping of settings at the top level, got %s", cfg_kind(root));
        goto out;
    }
    cfg_walk_map(&ctx, root, cfg_root_fields, CFG_ARRAY_SIZE(cfg_root_fields), cfg, seen);
    ctx.nocap = true; /* the reason for everything else must not be cut */
    if (ctx.too_complex)
        cfg_error_path(&ctx, root->start_mark, "yaml",
                       "the document is too complex (more than %d nodes; aliases expand to "
                       "every place they are used)",
                       CFG_MAX_NODES);
    ctx.nocap = false;
    /* A tunnel-server-only daemon is fine; a daemon with nothing to run is not. */
    if (!ctx.too_complex && cfg->n_listeners == 0 && cfg->n_servers == 0)
        cfg_error_path(&ctx,
                       seen[CFG_R_LISTENERS] ? seen[CFG_R_LISTENERS]->start_mark : root->start_mark,
                       "listeners", "nothing to run: give at least one listener or server");
    if (!ctx.too_complex)
        cfg_check_cross(&ctx);
out:
    if (have_doc)
        cfg_doc_wipe_delete(&doc);
    rc = cfg_finish(&ctx, rc, errs);
    if (rc == 0) {
        *out = cfg;
        cfg = NULL; /* the caller took ownership */
    }
    cfg_free(cfg);
    return rc;
}

int cfg_load_buffer(const char *name, const char *data, size_t len, struct td_config **out,
                    struct cfg_errors *errs)
{
    if (errs) {
        errs->msgs = NULL;
        errs->n = 0;
    }
    if (!out)
        return TD_EINVAL;
    *out = NULL;
    if (!data && len > 0)
        return TD_EINVAL;
    if (!data)
        data = "";
    return cfg__load(name ? name : "<config>", data, len, out, errs);
}

/* Report a file-level problem (no position) through the same channel. */
static int cfg_file_error(const char *path, int rc, const char *what, int err,
                          struct cfg_errors *errs)
{
    struct cfg_ctx ctx;

    memset(&ctx, 0, sizeof(ctx));
    cfg_add_error(&ctx, 0, 0, cfg_fmt("%s: %s: %s", path, what, strerror(err)));
    return cfg_finish(&ctx, rc, errs);
}

int cfg_load_file(const char *path, struct td_config **out, struct cfg_errors *errs)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;

    if (errs) {
        errs->msgs = NULL;
        errs->n = 0;
    }
    if (!path || !out)
        return TD_EINVAL;
    *out = NULL;
    f = fopen(path, "rb");
    if (!f) {
        rc = cfg_file_error(path, TD_EIO, "cannot open", errno, errs);
        goto out;
    }
    /* Read up to one byte past the limit, so that cfg_load_buffer() sees the
     * file is too large without us holding more than that. */
    for (;;) {
        size_t n;
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 16384;
            char *p;
            if (ncap > (size_t)TD_CONFIG_MAX_FILE + 1)
                ncap = (size_t)TD_CONFIG_MAX_FILE + 1;
            if (ncap == cap)
                break;
            p = realloc(buf, ncap);
            if (!p) {
                rc = TD_ENOMEM;
                goto out;
            }
            buf = p;
            cap = ncap;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        rc = cfg_file_error(path, TD_EIO, "cannot read", errno ? errno : EIO, errs);
        goto out;
    }
    rc = cfg__load(path, buf ? buf : "", len, out, errs);
out:
    if (f)
        fclose(f);
    td_wipe(buf, cap);
    free(buf);
    return rc;
}

struct td_config *cfg_ref(struct td_config *cfg)
{
    if (cfg)
        cfg->refs++;
    return cfg;
}

void cfg_free(struct td_config *cfg)
{
    if (!cfg || --cfg->refs > 0)
        return;
    free(cfg->path);
    free(cfg->dir);
    free(cfg->log.file);
    free(cfg->control.socket);
    free(cfg->control.group);
    free(cfg->state_dir);
    free(cfg->user);
    for (size_t i = 0; i < cfg->n_users; i++) {
        free(cfg->users[i].name);
        /* Secrets are wiped: a freed config (after a reload) must not leave
         * passwords and keys in the heap. */
        td_wipe_free_str(cfg->users[i].password);
        td_wipe_free_str(cfg->users[i].wstan_key);
        free(cfg->users[i].jproxy_user_file);
    }
    free(cfg->users);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        free(cfg->listeners[i].name);
        free(cfg->listeners[i].route);
        free(cfg->listeners[i].rules.allow);
        free(cfg->listeners[i].rules.deny);
    }
    free(cfg->listeners);
    for (size_t i = 0; i < cfg->n_tunnels; i++) {
        struct cfg_tunnel *t = &cfg->tunnels[i];
        free(t->name);
        free(t->url);
        free(t->path);
        td_wipe_free_str(t->key);
        free(t->tls_ca);
        free(t->tls_sni);
        free(t->key_file);
        free(t->private_key);
        td_wipe_free_str(t->token);
    }
    free(cfg->tunnels);
    for (size_t i = 0; i < cfg->n_servers; i++) {
        struct cfg_server *sv = &cfg->servers[i];
        free(sv->name);
        free(sv->path);
        free(sv->tls_cert);
        free(sv->tls_key);
        for (size_t j = 0; j < sv->n_keys; j++)
            td_wipe_free_str(sv->keys[j]);
        free(sv->keys);
        free(sv->users_dir);
        free(sv->rules.allow);
        free(sv->rules.deny);
    }
    free(cfg->servers);
    free(cfg);
}

void cfg_errors_free(struct cfg_errors *errs)
{
    if (!errs)
        return;
    for (size_t i = 0; i < errs->n; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    errs->msgs = NULL;
    errs->n = 0;
}

const char *cfg_listener_type_name(enum cfg_listener_type t)
{
    if ((size_t)t >= CFG_ARRAY_SIZE(cfg_type_names))
        return "?";
    return cfg_type_names[t];
}

const char *cfg_protocol_name(enum cfg_protocol p)
{
    if ((size_t)p >= CFG_ARRAY_SIZE(cfg_protocol_names))
        return "?";
    return cfg_protocol_names[p];
}

const struct cfg_tunnel *cfg_find_tunnel(const struct td_config *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->n_tunnels; i++)
        if (cfg->tunnels[i].name && strcmp(cfg->tunnels[i].name, name) == 0)
            return &cfg->tunnels[i];
    return NULL;
}

const char *cfg_auth_name(enum cfg_auth a)
{
    if ((size_t)a >= CFG_ARRAY_SIZE(cfg_auth_names))
        return "?";
    return cfg_auth_names[a];
}

const struct cfg_user *cfg_find_user(const struct td_config *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->n_users; i++)
        if (cfg->users[i].name && strcmp(cfg->users[i].name, name) == 0)
            return &cfg->users[i];
    return NULL;
}

bool cfg_rules_allow(const struct cfg_rules *r, int family, const uint8_t *ip)
{
    bool allowed;

    if (!r || !ip)
        return false;
    for (size_t i = 0; i < r->n_deny; i++)
        if (td_cidr_match(&r->deny[i], family, ip))
            return false;
    allowed = r->n_allow == 0;
    for (size_t i = 0; i < r->n_allow && !allowed; i++)
        allowed = td_cidr_match(&r->allow[i], family, ip);
    return allowed;
}
