/* tunnelctl's output: messages on stderr, JSON and tables on stdout, and
 * the rendering of the daemon's records (docs/control-protocol.md) as
 * either.
 *
 * With --json, a command prints exactly one JSON object on stdout; when it
 * fails (other than a usage error) that object is {"error": {...}} with the
 * exit code, the status and the messages, so that scripts never have to
 * scrape stderr.  Messages still go to stderr as well. */
#ifndef TD_CTL_OUT_H_
#define TD_CTL_OUT_H_

#include "proto/ctlmsg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes (docs/control-protocol.md). */
#define CTL_EXIT_OK          0
#define CTL_EXIT_FAIL        1
#define CTL_EXIT_USAGE       2
#define CTL_EXIT_NOT_RUNNING 3
#define CTL_EXIT_DENIED      4

extern bool ctl_json;       /* --json */
extern const char *ctl_cmd; /* the subcommand, for messages ("users add") */

/* An error: "tunnelctl: CMD: message" on stderr, kept for the JSON error. */
void ctl_err(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* A note on stderr that is not an error (offline mode, hints). */
void ctl_note(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* The TD_E* status behind the errors (the daemon's, or our own). */
void ctl_err_status(int status);
/* Called once by main() with the exit code: prints the JSON error object
 * when --json was given and nothing else was printed. */
int ctl_finish(int ret);

/* A minimal streaming JSON writer on stdout (pretty-printed).  Strings are
 * escaped; bytes that are not UTF-8 become U+FFFD, so the output is always
 * valid JSON whatever the daemon sent. */
void cj_obj(const char *key); /* key: NULL at the top or inside an array */
void cj_obj_end(void);
void cj_arr(const char *key);
void cj_arr_end(void);
void cj_str(const char *key, const char *val); /* val NULL: null */
void cj_u64(const char *key, uint64_t v);
void cj_i64(const char *key, int64_t v);
void cj_bool(const char *key, bool v);
void cj_null(const char *key);
/* A decimal integer given as text (from the daemon): a number when it is
 * one, a string otherwise, null when NULL. */
void cj_num_text(const char *key, const char *text);
/* The end of the document (the newline); marks the output as done. */
void cj_done(void);

/* Text helpers. */
bool ctl_parse_i64(const char *s, int64_t *out);
/* Copy s for a terminal: control bytes become '?'. */
void ctl_clean(char *out, size_t cap, const char *s);
void ctl_fmt_time(char *out, size_t cap, uint64_t unix_s); /* 2024-05-01T12:00:00Z */
void ctl_fmt_ms(char *out, size_t cap, uint64_t ms);       /* 350ms, 12.5s, 5m03s, 2h05m, 3d04h */
void ctl_fmt_bytes(char *out, size_t cap, uint64_t n);     /* 512B, 1.5KiB, 3.0GiB */

/* Tables for people: columns padded to their widest cell. */
struct ctl_table {
    size_t ncols, nrows, cap;
    const char *const *heads;
    char **cells; /* nrows * ncols, owned */
};
void ctl_table_init(struct ctl_table *t, size_t ncols, const char *const *heads);
/* Cells are cleaned and copied; NULL shows as "-". */
void ctl_table_row(struct ctl_table *t, const char *const *cells);
void ctl_table_print(const struct ctl_table *t, FILE *f);
void ctl_table_free(struct ctl_table *t);

/* The daemon's records, described per command. */
enum ctl_ftype {
    CTL_FT_STR = 0,
    CTL_FT_NUM,   /* a counter */
    CTL_FT_LIST,  /* comma-separated: a JSON array */
    CTL_FT_TIME,  /* seconds since the epoch */
    CTL_FT_MS,    /* a duration in milliseconds */
    CTL_FT_BYTES, /* a byte count */
    CTL_FT_FAIL,  /* "fail.REASON=N" fields: a JSON object, "REASON=N ..." in tables */
};

struct ctl_fspec {
    const char *key; /* for CTL_FT_FAIL: the prefix without the dot ("fail") */
    enum ctl_ftype type;
    const char *head; /* the column heading; NULL: JSON only */
};

struct ctl_rspec {
    const char *key;       /* the record key ("tunnel") */
    const char *json;      /* the JSON array ("tunnels") */
    const char *name_json; /* the record value's JSON key ("name", "id") */
    enum ctl_ftype name_type;
    const char *head;               /* its column heading ("TUNNEL") */
    const struct ctl_fspec *fields; /* ended by {NULL} */
};

/* The value of key among the top-level fields (before the first record of
 * any kind in recs), or NULL. */
const char *ctl_top_get(const struct ctl_msg *m, const struct ctl_rspec *recs, size_t nrecs,
                        const char *key);
/* Write the top-level fields of top (typed; then every other top-level
 * field as a string, but status and error) and one array per record kind
 * into the JSON object being written. */
void ctl_render_json(const struct ctl_msg *m, const struct ctl_fspec *top,
                     const struct ctl_rspec *recs, size_t nrecs);
/* One table per record kind that has records (all of them when
 * show_empty), separated by blank lines.  Returns how many records. */
size_t ctl_render_tables(const struct ctl_msg *m, const struct ctl_rspec *recs, size_t nrecs,
                         bool show_empty, FILE *f);
/* A field's value formatted for a table. */
void ctl_fmt_field(char *out, size_t cap, enum ctl_ftype t, const char *val);

#endif
