/* The managed users (state_dir, common/config/state.h) in the running
 * daemon: loaded at start and on reload, changed by the control plane
 * (written to disk first, under the state's lock, then applied), and old
 * keys of rotations forgotten when their grace period ends.  Applying means
 * handing every server the new table (td_server_ops.set_users); live
 * connections are never touched by it. */
#ifndef TD_USERS_H_
#define TD_USERS_H_

#include "config/state.h"
#include "core/daemon.h"

#include <stddef.h>

/* At start: read state_dir (a missing state is an empty one).  Errors
 * (a state file that does not parse) are logged and fail the start. */
int td_users_load(struct td_daemon *d);
/* Make next the state: lock state_dir, write next atomically, then hand it
 * to every server.  On success d->state is next (the daemon owns it); on
 * failure nothing changed, next is freed, and why says what went wrong. */
int td_users_commit(struct td_daemon *d, struct td_state *next, char *why, size_t whycap);
/* Hand the current config's users and the state to every server. */
int td_users_apply(struct td_daemon *d, const struct td_config *cfg);
/* A deep copy of the current state, for an edit. */
int td_users_copy(struct td_daemon *d, struct td_state *out);
/* Arm the timer that forgets old keys at their deadline. */
void td_users_schedule(struct td_daemon *d);
void td_users_stop(struct td_daemon *d);
void td_users_free(struct td_daemon *d);

#endif
