/* The state tunnelctl manages (users, their keys, key rotations), kept apart
 * from the operator's hand-written config in state_dir:
 *
 *     STATE_DIR/state           the users and their keys (0600)
 *     STATE_DIR/jproxy/HEX.dat  jProxy server user files, named by token
 *     STATE_DIR/lock            taken by every writer (tunnelctl offline,
 *                               the daemon)
 *
 * The state file uses the control protocol's syntax (ctlmsg.h) under the
 * first line "tunneld-state=1":
 *
 *     user=alice          starts a record
 *     protocol=wstan      wstan | jproxy
 *     created=UNIX        seconds
 *     secret=...          wstan: the base64 key; jproxy: the token (64 hex)
 *     old_secret=...      during a rotation: still accepted ...
 *     old_until=UNIX      ... until then
 *
 * Every write replaces the whole file atomically (a temporary file, fsync,
 * rename, fsync of the directory), so a crash leaves the old state or the
 * new one.  Parsing and formatting are pure; only load/save/lock touch
 * files. */
#ifndef TD_STATE_H_
#define TD_STATE_H_

#include "config/config.h"
#include "proto/ctlmsg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TD_STATE_VERSION   1
#define TD_STATE_MAX_FILE  (16u * 1024 * 1024)
#define TD_STATE_MAX_USERS 100000

struct st_user {
    char *name;
    enum cfg_protocol protocol;
    uint64_t created;
    char *secret;     /* never NULL in a valid state */
    char *old_secret; /* NULL unless a rotation is in its grace period */
    uint64_t old_until;
};

struct td_state {
    struct st_user *users;
    size_t n;
};

/* Parse a state file's contents.  Returns 0, TD_EPROTO (malformed: why says
 * how, with the record), TD_EUNSUPPORTED (another version) or TD_ENOMEM. */
int td_state_parse(const char *buf, size_t len, struct td_state *out, char *why, size_t whycap);
/* Format st into b (a fresh ctl_buf).  Returns 0 or TD_ETOOBIG/TD_ENOMEM. */
int td_state_format(const struct td_state *st, struct ctl_buf *b);
void td_state_free(struct td_state *st);

struct st_user *td_state_find(const struct td_state *st, const char *name);
/* A user must live in one place: the first state user that the config also
 * defines, or NULL. */
const char *td_state_conflict(const struct td_state *st, const struct td_config *cfg);
/* Add a user (copies the strings).  TD_EEXIST, TD_EINVAL (bad name or
 * secret), TD_ELIMIT or TD_ENOMEM. */
int td_state_add(struct td_state *st, const char *name, enum cfg_protocol proto, const char *secret,
                 uint64_t now);
/* TD_ENOTFOUND when there is no such user. */
int td_state_remove(struct td_state *st, const char *name);
/* New secret; the old one stays valid until now + grace (grace 0: at once). */
int td_state_rotate(struct td_state *st, const char *name, const char *secret, uint64_t now,
                    uint64_t grace_s);
/* Forget old secrets whose grace period is over.  Returns how many. */
size_t td_state_expire(struct td_state *st, uint64_t now);
/* Is this a well-formed secret for the protocol (wstan: base64 of 16 bytes;
 * jproxy: 64 hex digits)? */
bool td_state_secret_valid(enum cfg_protocol proto, const char *secret);

/* Seconds since the Unix epoch (the state's clock). */
uint64_t td_state_now(void);

/* Files.  td_state_load() of a directory without a state file gives an empty
 * state.  Paths are built as described above. */
int td_state_load(const char *dir, struct td_state *out, char *why, size_t whycap);
int td_state_save(const char *dir, const struct td_state *st);
int td_state_path(const char *dir, const char *name, char *out, size_t cap);

#endif
