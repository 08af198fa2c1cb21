/* Control messages between tunnelctl and tunneld (docs/control-protocol.md).
 *
 * A message is text: "key=value" lines, each ending with "\n", and an empty
 * line at the end.  The first line is "tunneld-control=VERSION".  Keys are
 * 1-64 bytes of [a-z0-9_.-]; values are any bytes but NUL, CR and LF.  Order
 * matters and keys may repeat: a list is a key given once per item, and a
 * record is a key that starts it ("user=alice") followed by its fields
 * until the next record key, as in wireguard's UAPI.
 *
 * Pure code: no I/O.  The parser takes one message as framed by
 * ctl_msg_frame() and fails on anything malformed. */
#ifndef TD_CTLMSG_H_
#define TD_CTLMSG_H_

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_VERSION     1
#define CTL_MAX_REQUEST (64 * 1024)       /* what the daemon reads */
#define CTL_MAX_REPLY   (4 * 1024 * 1024) /* what tunnelctl reads */
#define CTL_MAX_KEY     64

struct ctl_field {
    const char *key; /* NUL-terminated, inside the message's own copy */
    const char *val;
    size_t vlen;
};

struct ctl_msg {
    int version;
    struct ctl_field *f; /* every field after the version line, in order */
    size_t n;
    char *buf; /* the message's own copy, holding the strings */
};

/* Where does the first message in buf end?  Sets *msglen to its length
 * (through the blank line) and returns 0; returns TD_EAGAIN when the end is
 * not there yet, TD_ETOOBIG when max bytes hold no end.  *scanned (may be
 * NULL) keeps how far earlier calls looked, so that data arriving in small
 * pieces is scanned once: start it at 0 and keep it for the same buffer. */
int ctl_msg_frame(const char *buf, size_t len, size_t max, size_t *scanned, size_t *msglen);

/* Parse one framed message.  Returns 0 with *out filled (release it with
 * ctl_msg_free()), TD_EPROTO for anything malformed (no version line, a bad
 * key, a NUL or CR, a missing '='), TD_EUNSUPPORTED for another protocol
 * version (out->version tells which), or TD_ENOMEM. */
int ctl_msg_parse(const char *buf, size_t len, struct ctl_msg *out);
/* The same syntax under another first line, "MAGIC=VERSION" (the state
 * file, "tunneld-state=1"); version is checked against want. */
int ctl_msg_parse_as(const char *buf, size_t len, const char *magic, int want, struct ctl_msg *out);
void ctl_msg_free(struct ctl_msg *m);

/* The value of the first field named key at or after index *from (which is
 * then set past it), or NULL.  from may be NULL: search from the start. */
const char *ctl_msg_get(const struct ctl_msg *m, const char *key, size_t *from);
/* The same, parsed as a decimal uint64; returns 0 or TD_ENOTFOUND/TD_EINVAL. */
int ctl_msg_get_u64(const struct ctl_msg *m, const char *key, uint64_t *out);
bool ctl_key_valid(const char *key, size_t len);

/* Building a message.  Values are written as given, except that NUL, CR and
 * LF become '?' (a value can never break the framing). */
struct ctl_buf {
    char *p;
    size_t len, cap, max;
    bool overflow; /* something did not fit under max: the message is cut */
    bool oom;
};

void ctl_buf_init(struct ctl_buf *b, size_t max);
/* The version line. */
void ctl_buf_begin(struct ctl_buf *b);
void ctl_buf_begin_as(struct ctl_buf *b, const char *magic, int version);
void ctl_buf_add(struct ctl_buf *b, const char *key, const char *val);
void ctl_buf_addf(struct ctl_buf *b, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void ctl_buf_add_u64(struct ctl_buf *b, const char *key, uint64_t v);
/* The blank line.  Returns 0, TD_ETOOBIG (overflow) or TD_ENOMEM. */
int ctl_buf_end(struct ctl_buf *b);
void ctl_buf_free(struct ctl_buf *b);

#endif
