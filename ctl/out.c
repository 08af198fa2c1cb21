/* tunnelctl's output; see out.h. */
#include "out.h"

#include "subcommands.h"
#include "util/error.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

bool ctl_json;
const char *ctl_cmd;

#define CTL_MAX_ERRS 256

static char *errs[CTL_MAX_ERRS];
static size_t n_errs;
static int err_status;
static bool json_done;

static void ctl_vmsg(bool keep, const char *fmt, va_list ap)
{
    char buf[4096];

    vsnprintf(buf, sizeof(buf), fmt, ap);
    if (ctl_cmd)
        fprintf(stderr, "%s: %s: %s\n", PROG_NAME, ctl_cmd, buf);
    else
        fprintf(stderr, "%s: %s\n", PROG_NAME, buf);
    if (keep && n_errs < CTL_MAX_ERRS) {
        size_t n = strlen(buf) + 1;
        char *p = malloc(n);
        if (p) {
            memcpy(p, buf, n);
            errs[n_errs++] = p;
        }
    }
}

void ctl_err(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ctl_vmsg(true, fmt, ap);
    va_end(ap);
}

void ctl_note(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ctl_vmsg(false, fmt, ap);
    va_end(ap);
}

void ctl_err_status(int status)
{
    err_status = status;
}

int ctl_finish(int ret)
{
    if (ctl_json && ret != CTL_EXIT_OK && ret != CTL_EXIT_USAGE && !json_done) {
        cj_obj(NULL);
        cj_obj("error");
        cj_i64("exit", ret);
        if (err_status != 0) {
            cj_i64("status", err_status);
            const char *name = td_err_name(err_status);
            cj_str("code", name && strncmp(name, "TD_", 3) == 0 ? name + 3 : name);
        } else {
            cj_null("status");
            cj_null("code");
        }
        cj_arr("messages");
        for (size_t i = 0; i < n_errs; i++)
            cj_str(NULL, errs[i]);
        cj_arr_end();
        cj_obj_end();
        cj_obj_end();
        cj_done();
    }
    for (size_t i = 0; i < n_errs; i++)
        free(errs[i]);
    n_errs = 0;
    if (fflush(stdout) != 0 && ret == CTL_EXIT_OK) {
        fprintf(stderr, "%s: cannot write to standard output\n", PROG_NAME);
        ret = CTL_EXIT_FAIL;
    }
    return ret;
}

/* ---- JSON ------------------------------------------------------------------ */

#define CJ_MAX_DEPTH 32

static int cj_depth;
static size_t cj_count[CJ_MAX_DEPTH];

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t cj_utf8_len(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t len;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static void cj_string(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);

    putchar('"');
    while (n > 0) {
        size_t l;

        if (*s == '"' || *s == '\\') {
            putchar('\\');
            putchar(*s);
            s++;
            n--;
            continue;
        }
        if (*s < 0x20 || *s == 0x7f) {
            printf("\\u%04x", *s);
            s++;
            n--;
            continue;
        }
        l = cj_utf8_len(s, n);
        if (l == 0) {
            fputs("\\ufffd", stdout);
            l = 1;
        } else {
            fwrite(s, 1, l, stdout);
        }
        s += l;
        n -= l;
    }
    putchar('"');
}

static void cj_prefix(const char *key)
{
    if (cj_depth > 0) {
        fputs(cj_count[cj_depth - 1]++ > 0 ? ",\n" : "\n", stdout);
        for (int i = 0; i < cj_depth; i++)
            fputs("  ", stdout);
    }
    if (key && cj_depth > 0) {
        cj_string(key);
        fputs(": ", stdout);
    }
}

static void cj_open(const char *key, char c)
{
    cj_prefix(key);
    putchar(c);
    if (cj_depth < CJ_MAX_DEPTH)
        cj_count[cj_depth++] = 0;
}

static void cj_close(char c)
{
    if (cj_depth > 0)
        cj_depth--;
    if (cj_count[cj_depth] > 0) {
        putchar('\n');
        for (int i = 0; i < cj_depth; i++)
            fputs("  ", stdout);
    }
    putchar(c);
}

void cj_obj(const char *key)
{
    cj_open(key, '{');
}

void cj_obj_end(void)
{
    cj_close('}');
}

void cj_arr(const char *key)
{
    cj_open(key, '[');
}

void cj_arr_end(void)
{
    cj_close(']');
}

void cj_str(const char *key, const char *val)
{
    cj_prefix(key);
    if (val)
        cj_string(val);
    else
        fputs("null", stdout);
}

void cj_u64(const char *key, uint64_t v)
{
    cj_prefix(key);
    printf("%llu", (unsigned long long)v);
}

void cj_i64(const char *key, int64_t v)
{
    cj_prefix(key);
    printf("%lld", (long long)v);
}

void cj_bool(const char *key, bool v)
{
    cj_prefix(key);
    fputs(v ? "true" : "false", stdout);
}

void cj_null(const char *key)
{
    cj_prefix(key);
    fputs("null", stdout);
}

bool ctl_parse_i64(const char *s, int64_t *out)
{
    uint64_t x = 0;
    bool neg = false;

    if (!s)
        return false;
    if (*s == '-') {
        neg = true;
        s++;
    }
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] != '\0'))
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || x > (UINT64_C(9223372036854775807) - (uint64_t)(*s - '0')) / 10)
            return false;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    *out = neg ? -(int64_t)x : (int64_t)x;
    return true;
}

void cj_num_text(const char *key, const char *text)
{
    int64_t v;

    if (!text)
        cj_null(key);
    else if (ctl_parse_i64(text, &v))
        cj_i64(key, v);
    else
        cj_str(key, text);
}

void cj_done(void)
{
    putchar('\n');
    json_done = true;
}

/* ---- text ------------------------------------------------------------------ */

void ctl_clean(char *out, size_t cap, const char *s)
{
    size_t i = 0;

    if (cap == 0)
        return;
    for (; s && *s && i + 1 < cap; s++)
        out[i++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    out[i] = '\0';
}

void ctl_fmt_time(char *out, size_t cap, uint64_t t)
{
    /* Civil from days (H. Hinnant's algorithm): no gmtime, no time zone. */
    int64_t days = (int64_t)(t / 86400), secs = (int64_t)(t % 86400);
    int64_t z = days + 719468, era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;

    if (m <= 2)
        y++;
    snprintf(out, cap, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", (long long)y, (long long)m,
             (long long)d, (long long)(secs / 3600), (long long)(secs / 60 % 60),
             (long long)(secs % 60));
}

void ctl_fmt_ms(char *out, size_t cap, uint64_t ms)
{
    uint64_t s = ms / 1000;

    if (ms < 1000)
        snprintf(out, cap, "%llums", (unsigned long long)ms);
    else if (s < 60)
        snprintf(out, cap, "%llu.%llus", (unsigned long long)s,
                 (unsigned long long)(ms % 1000 / 100));
    else if (s < 3600)
        snprintf(out, cap, "%llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else if (s < 86400)
        snprintf(out, cap, "%lluh%02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s / 60 % 60));
    else
        snprintf(out, cap, "%llud%02lluh", (unsigned long long)(s / 86400),
                 (unsigned long long)(s / 3600 % 24));
}

void ctl_fmt_bytes(char *out, size_t cap, uint64_t n)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    size_t u = 0;

    if (n < 1024) {
        snprintf(out, cap, "%lluB", (unsigned long long)n);
        return;
    }
    v /= 1024;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    snprintf(out, cap, "%.1f%s", v, units[u]);
}

/* ---- tables ------------------------------------------------------------------ */

void ctl_table_init(struct ctl_table *t, size_t ncols, const char *const *heads)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    t->heads = heads;
}

static char *ctl_dup_clean(const char *s)
{
    size_t n = strlen(s ? s : "-") + 1;
    char *p = malloc(n);

    if (p)
        ctl_clean(p, n, s ? s : "-");
    return p;
}

void ctl_table_row(struct ctl_table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        char **nc = realloc(t->cells, ncap * t->ncols * sizeof(*nc));
        if (!nc)
            return;
        t->cells = nc;
        t->cap = ncap;
    }
    for (size_t c = 0; c < t->ncols; c++)
        t->cells[t->nrows * t->ncols + c] = ctl_dup_clean(cells[c]);
    t->nrows++;
}

/* Display width: code points, not bytes. */
static size_t ctl_width(const char *s)
{
    size_t w = 0;

    for (; s && *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

void ctl_table_print(const struct ctl_table *t, FILE *f)
{
    size_t *w = calloc(t->ncols ? t->ncols : 1, sizeof(*w));

    if (!w)
        return;
    for (size_t c = 0; c < t->ncols; c++) {
        w[c] = ctl_width(t->heads[c]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t cw = ctl_width(t->cells[r * t->ncols + c]);
            if (cw > w[c])
                w[c] = cw;
        }
    }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = r == 0 ? t->heads[c] : t->cells[(r - 1) * t->ncols + c];
            if (!s)
                s = "?";
            if (c + 1 == t->ncols) {
                fputs(s, f);
            } else {
                fputs(s, f);
                for (size_t k = ctl_width(s); k < w[c] + 2; k++)
                    fputc(' ', f);
            }
        }
        fputc('\n', f);
    }
    free(w);
}

void ctl_table_free(struct ctl_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

/* ---- records ------------------------------------------------------------------ */

static const struct ctl_rspec *ctl_rec_kind(const struct ctl_rspec *recs, size_t nrecs,
                                            const char *key)
{
    for (size_t i = 0; i < nrecs; i++)
        if (strcmp(recs[i].key, key) == 0)
            return &recs[i];
    return NULL;
}

/* Where the record starting at i ends (the next record key, or the end). */
static size_t ctl_rec_end(const struct ctl_msg *m, const struct ctl_rspec *recs, size_t nrecs,
                          size_t i)
{
    for (i++; i < m->n; i++)
        if (ctl_rec_kind(recs, nrecs, m->f[i].key))
            break;
    return i;
}

static size_t ctl_top_end(const struct ctl_msg *m, const struct ctl_rspec *recs, size_t nrecs)
{
    size_t i = 0;

    while (i < m->n && !ctl_rec_kind(recs, nrecs, m->f[i].key))
        i++;
    return i;
}

static const char *ctl_range_get(const struct ctl_msg *m, size_t from, size_t to, const char *key)
{
    for (size_t i = from; i < to; i++)
        if (strcmp(m->f[i].key, key) == 0)
            return m->f[i].val;
    return NULL;
}

const char *ctl_top_get(const struct ctl_msg *m, const struct ctl_rspec *recs, size_t nrecs,
                        const char *key)
{
    return ctl_range_get(m, 0, ctl_top_end(m, recs, nrecs), key);
}

static bool ctl_is_fail_key(const char *key, const char *prefix)
{
    size_t n = strlen(prefix);

    return strncmp(key, prefix, n) == 0 && key[n] == '.' && key[n + 1] != '\0';
}

static const struct ctl_fspec *ctl_fspec_find(const struct ctl_fspec *fs, const char *key)
{
    for (; fs && fs->key; fs++) {
        if (fs->type == CTL_FT_FAIL ? ctl_is_fail_key(key, fs->key) : strcmp(fs->key, key) == 0)
            return fs;
    }
    return NULL;
}

static void ctl_json_value(const char *key, enum ctl_ftype t, const char *val)
{
    if (t == CTL_FT_STR) {
        cj_str(key, val);
    } else if (t == CTL_FT_LIST) {
        if (!val) {
            cj_null(key);
            return;
        }
        cj_arr(key);
        for (const char *p = val; *p;) {
            const char *c = strchr(p, ',');
            size_t n = c ? (size_t)(c - p) : strlen(p);
            char item[256];
            if (n >= sizeof(item))
                n = sizeof(item) - 1;
            memcpy(item, p, n);
            item[n] = '\0';
            if (n > 0)
                cj_str(NULL, item);
            p += n;
            if (*p == ',')
                p++;
        }
        cj_arr_end();
    } else {
        cj_num_text(key, val);
    }
}

/* The fields of one range [from, to): the specified ones typed (null when
 * absent), then the others as strings. */
static void ctl_json_fields(const struct ctl_msg *m, size_t from, size_t to,
                            const struct ctl_fspec *fs, bool top)
{
    for (const struct ctl_fspec *f = fs; f && f->key; f++) {
        if (f->type == CTL_FT_FAIL) {
            cj_obj(f->key);
            for (size_t i = from; i < to; i++)
                if (ctl_is_fail_key(m->f[i].key, f->key))
                    cj_num_text(m->f[i].key + strlen(f->key) + 1, m->f[i].val);
            cj_obj_end();
            continue;
        }
        ctl_json_value(f->key, f->type, ctl_range_get(m, from, to, f->key));
    }
    for (size_t i = from; i < to; i++) {
        const char *k = m->f[i].key;
        bool seen = false;
        if (ctl_fspec_find(fs, k))
            continue;
        if (top && (strcmp(k, "status") == 0 || strcmp(k, "error") == 0))
            continue;
        for (size_t j = from; j < i && !seen; j++)
            seen = strcmp(m->f[j].key, k) == 0;
        if (!seen) /* the first of repeated unknown keys */
            cj_str(k, m->f[i].val);
    }
}

void ctl_render_json(const struct ctl_msg *m, const struct ctl_fspec *top,
                     const struct ctl_rspec *recs, size_t nrecs)
{
    size_t te = ctl_top_end(m, recs, nrecs);

    ctl_json_fields(m, 0, te, top, true);
    for (size_t r = 0; r < nrecs; r++) {
        cj_arr(recs[r].json);
        for (size_t i = te; i < m->n;) {
            size_t e = ctl_rec_end(m, recs, nrecs, i);
            if (strcmp(m->f[i].key, recs[r].key) == 0) {
                cj_obj(NULL);
                ctl_json_value(recs[r].name_json, recs[r].name_type, m->f[i].val);
                ctl_json_fields(m, i + 1, e, recs[r].fields, false);
                cj_obj_end();
            }
            i = e;
        }
        cj_arr_end();
    }
}

void ctl_fmt_field(char *out, size_t cap, enum ctl_ftype t, const char *val)
{
    int64_t v;

    if (!val || !*val) {
        snprintf(out, cap, "-");
        return;
    }
    if (t == CTL_FT_TIME && ctl_parse_i64(val, &v) && v > 0)
        ctl_fmt_time(out, cap, (uint64_t)v);
    else if (t == CTL_FT_TIME && ctl_parse_i64(val, &v))
        snprintf(out, cap, "-");
    else if (t == CTL_FT_MS && ctl_parse_i64(val, &v) && v >= 0)
        ctl_fmt_ms(out, cap, (uint64_t)v);
    else if (t == CTL_FT_BYTES && ctl_parse_i64(val, &v) && v >= 0)
        ctl_fmt_bytes(out, cap, (uint64_t)v);
    else
        ctl_clean(out, cap, val);
}

size_t ctl_render_tables(const struct ctl_msg *m, const struct ctl_rspec *recs, size_t nrecs,
                         bool show_empty, FILE *f)
{
    size_t te = ctl_top_end(m, recs, nrecs), total = 0;
    bool printed = false;

    for (size_t r = 0; r < nrecs; r++) {
        const struct ctl_rspec *rs = &recs[r];
        const char *heads[33];
        struct ctl_table t;
        size_t nc = 1;

        heads[0] = rs->head;
        for (const struct ctl_fspec *fs = rs->fields; fs->key && nc < 33; fs++)
            if (fs->head)
                heads[nc++] = fs->head;
        ctl_table_init(&t, nc, heads);
        for (size_t i = te; i < m->n;) {
            size_t e = ctl_rec_end(m, recs, nrecs, i);
            if (strcmp(m->f[i].key, rs->key) == 0) {
                char cells[33][256];
                const char *cp[33];
                size_t c = 1;
                ctl_clean(cells[0], sizeof(cells[0]), m->f[i].val);
                for (const struct ctl_fspec *fs = rs->fields; fs->key && c < 33; fs++) {
                    if (!fs->head)
                        continue;
                    if (fs->type == CTL_FT_FAIL) {
                        size_t used = 0;
                        cells[c][0] = '\0';
                        for (size_t k = i + 1; k < e; k++) {
                            if (!ctl_is_fail_key(m->f[k].key, fs->key))
                                continue;
                            int w = snprintf(cells[c] + used, sizeof(cells[c]) - used, "%s%s=%s",
                                             used ? "," : "", m->f[k].key + strlen(fs->key) + 1,
                                             m->f[k].val);
                            if (w < 0 || (size_t)w >= sizeof(cells[c]) - used)
                                break;
                            used += (size_t)w;
                        }
                        if (used == 0)
                            snprintf(cells[c], sizeof(cells[c]), "-");
                    } else {
                        ctl_fmt_field(cells[c], sizeof(cells[c]), fs->type,
                                      ctl_range_get(m, i + 1, e, fs->key));
                    }
                    c++;
                }
                for (size_t k = 0; k < c; k++)
                    cp[k] = cells[k];
                ctl_table_row(&t, cp);
            }
            i = e;
        }
        if (t.nrows > 0 || show_empty) {
            if (printed)
                fputc('\n', f);
            ctl_table_print(&t, f);
            printed = true;
        }
        total += t.nrows;
        ctl_table_free(&t);
    }
    return total;
}
