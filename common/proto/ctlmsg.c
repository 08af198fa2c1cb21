/* Control message codec; see ctlmsg.h. */
#include "proto/ctlmsg.h"

#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_VERSION_KEY "tunneld-control"

int ctl_msg_frame(const char *buf, size_t len, size_t max, size_t *scanned, size_t *msglen)
{
    size_t i = scanned && *scanned > 0 ? *scanned - 1 : 0, lim = len < max ? len : max;

    if (!buf || !msglen)
        return TD_EINVAL;
    /* A message that is only "\n" is framed (and refused by the parser). */
    if (len > 0 && buf[0] == '\n') {
        *msglen = 1;
        return 0;
    }
    /* The previous call may have stopped on the first '\n' of the end,
     * hence the step back by one. */
    for (; i + 1 < lim; i++) {
        if (buf[i] == '\n' && buf[i + 1] == '\n') {
            *msglen = i + 2;
            if (scanned)
                *scanned = 0;
            return 0;
        }
    }
    if (scanned)
        *scanned = lim;
    return len >= max ? TD_ETOOBIG : TD_EAGAIN;
}

bool ctl_key_valid(const char *key, size_t len)
{
    if (len == 0 || len > CTL_MAX_KEY)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

void ctl_msg_free(struct ctl_msg *m)
{
    if (!m)
        return;
    free(m->f);
    free(m->buf);
    memset(m, 0, sizeof(*m));
}

int ctl_msg_parse(const char *buf, size_t len, struct ctl_msg *out)
{
    return ctl_msg_parse_as(buf, len, CTL_VERSION_KEY, CTL_VERSION, out);
}

int ctl_msg_parse_as(const char *buf, size_t len, const char *magic, int want, struct ctl_msg *out)
{
    size_t nlines = 0, pos = 0;
    int rc = TD_EPROTO;
    char *copy;

    if (!buf || !out)
        return TD_EINVAL;
    memset(out, 0, sizeof(*out));
    if (len < 2 || buf[len - 1] != '\n' || buf[len - 2] != '\n')
        return TD_EPROTO;
    if (memchr(buf, '\0', len) || memchr(buf, '\r', len))
        return TD_EPROTO;
    for (size_t i = 0; i < len; i++)
        nlines += buf[i] == '\n';
    copy = malloc(len);
    out->f = calloc(nlines, sizeof(*out->f));
    if (!copy || !out->f) {
        free(copy);
        ctl_msg_free(out);
        return TD_ENOMEM;
    }
    memcpy(copy, buf, len);
    out->buf = copy;
    /* Every line up to the blank one: "key=value". */
    while (pos < len - 1) {
        char *line = copy + pos, *nl = memchr(line, '\n', len - pos), *eq;
        size_t llen = (size_t)(nl - line);

        if (llen == 0)
            goto out; /* a blank line before the end */
        eq = memchr(line, '=', llen);
        if (!eq || !ctl_key_valid(line, (size_t)(eq - line)))
            goto out;
        *eq = '\0';
        *nl = '\0';
        if (pos == 0) {
            char *end;
            unsigned long v;
            if (strcmp(line, magic) != 0 || eq[1] < '0' || eq[1] > '9')
                goto out;
            v = strtoul(eq + 1, &end, 10);
            if (*end != '\0' || v > 1000000)
                goto out;
            out->version = (int)v;
        } else {
            struct ctl_field *f = &out->f[out->n++];
            f->key = line;
            f->val = eq + 1;
            f->vlen = (size_t)(nl - eq - 1);
        }
        pos += llen + 1;
    }
    if (out->version == 0)
        goto out;
    if (out->version != want) {
        int v = out->version;
        ctl_msg_free(out);
        out->version = v;
        return TD_EUNSUPPORTED;
    }
    rc = 0;
out:
    if (rc != 0)
        ctl_msg_free(out);
    return rc;
}

const char *ctl_msg_get(const struct ctl_msg *m, const char *key, size_t *from)
{
    for (size_t i = from ? *from : 0; m && i < m->n; i++) {
        if (strcmp(m->f[i].key, key) == 0) {
            if (from)
                *from = i + 1;
            return m->f[i].val;
        }
    }
    return NULL;
}

int ctl_msg_get_u64(const struct ctl_msg *m, const char *key, uint64_t *out)
{
    const char *v = ctl_msg_get(m, key, NULL);
    uint64_t x = 0;

    if (!v)
        return TD_ENOTFOUND;
    if (!*v)
        return TD_EINVAL;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9' || x > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return TD_EINVAL;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    *out = x;
    return 0;
}

/* ---- building ------------------------------------------------------------- */

void ctl_buf_init(struct ctl_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

static bool ctl_buf_reserve(struct ctl_buf *b, size_t n)
{
    size_t ncap;
    char *np;

    if (b->overflow || b->oom)
        return false;
    if (b->len + n + 1 > b->max) { /* room for the final blank line */
        b->overflow = true;
        return false;
    }
    if (b->len + n <= b->cap)
        return true;
    ncap = b->cap ? b->cap : 1024;
    while (ncap < b->len + n)
        ncap *= 2;
    if (ncap > b->max)
        ncap = b->max;
    np = realloc(b->p, ncap);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = ncap;
    return true;
}

void ctl_buf_add(struct ctl_buf *b, const char *key, const char *val)
{
    size_t kl = strlen(key), vl = val ? strlen(val) : 0;

    if (!ctl_key_valid(key, kl) || !ctl_buf_reserve(b, kl + 1 + vl + 1))
        return;
    memcpy(b->p + b->len, key, kl);
    b->len += kl;
    b->p[b->len++] = '=';
    for (size_t i = 0; i < vl; i++) {
        char c = val[i];
        b->p[b->len++] = (c == '\n' || c == '\r') ? '?' : c;
    }
    b->p[b->len++] = '\n';
}

void ctl_buf_addf(struct ctl_buf *b, const char *key, const char *fmt, ...)
{
    char small[512], *big = NULL;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(small)) {
        big = malloc((size_t)n + 1);
        if (!big) {
            b->oom = true;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    ctl_buf_add(b, key, big ? big : small);
    free(big);
}

void ctl_buf_add_u64(struct ctl_buf *b, const char *key, uint64_t v)
{
    ctl_buf_addf(b, key, "%llu", (unsigned long long)v);
}

void ctl_buf_begin(struct ctl_buf *b)
{
    ctl_buf_begin_as(b, CTL_VERSION_KEY, CTL_VERSION);
}

void ctl_buf_begin_as(struct ctl_buf *b, const char *magic, int version)
{
    ctl_buf_addf(b, magic, "%d", version);
}

int ctl_buf_end(struct ctl_buf *b)
{
    if (b->oom)
        return TD_ENOMEM;
    if (b->overflow)
        return TD_ETOOBIG;
    /* ctl_buf_reserve() always kept a byte for this. */
    if (b->len + 1 > b->cap) {
        char *np = realloc(b->p, b->len + 1);
        if (!np)
            return TD_ENOMEM;
        b->p = np;
        b->cap = b->len + 1;
    }
    b->p[b->len++] = '\n';
    return 0;
}

void ctl_buf_free(struct ctl_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}
