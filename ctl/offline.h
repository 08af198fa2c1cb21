/* Offline mode: when tunneld is not running, the state commands edit
 * state_dir (config/state.h) directly, under STATE_DIR/lock, the lock every
 * writer takes (tunneld too), so that two runs never interleave.  Each
 * write drops the old keys whose grace period is over and replaces the
 * state file atomically; jProxy user files (STATE_DIR/jproxy/TOKEN.dat)
 * are written before the state that names them and removed only after the
 * state that no longer does, so a crash leaves a spare file at worst,
 * never a user without one. */
#ifndef TD_CTL_OFFLINE_H_
#define TD_CTL_OFFLINE_H_

#include "keys.h"
#include "config/config.h"
#include "config/state.h"
#include "util/fs.h"

#include <stdbool.h>
#include <stdint.h>

#define CTL_LOCK_WAIT_MS 10000

struct ctl_offline {
    const struct td_config *cfg;
    const char *dir;
    struct td_fs_lock *lock;
    struct td_state st;
    uint64_t now; /* seconds since the epoch */
    char **drop;  /* jProxy tokens whose user files go after the save */
    size_t n_drop;
};

/* Load the state of the config's state_dir; with write, first take the
 * lock (waiting CTL_LOCK_WAIT_MS at most) and create state_dir (one level,
 * owner-only) when it is missing.  Says on stderr that tunneld is not
 * running.  Returns 0 or an exit code. */
int ctl_offline_open(struct ctl_offline *o, bool write);
/* Is name a user of the config file? */
bool ctl_offline_config_user(const struct ctl_offline *o, const char *name);
/* Write a new jProxy key's user file, STATE_DIR/jproxy/TOKEN.dat. */
int ctl_offline_put_user_file(struct ctl_offline *o, const struct ctl_key *k);
/* Remove a user file written by ctl_offline_put_user_file() when the state
 * that would have named it was not saved. */
void ctl_offline_unput(struct ctl_offline *o, const char *token);
/* Remove the user file of this token after the next successful save. */
void ctl_offline_drop(struct ctl_offline *o, enum cfg_protocol proto, const char *secret);
/* Drop expired old keys, then save.  Returns 0 or an exit code. */
int ctl_offline_save(struct ctl_offline *o);
void ctl_offline_close(struct ctl_offline *o);

/* The notice for writes. */
void ctl_offline_notice_write(const struct ctl_offline *o);

#endif
