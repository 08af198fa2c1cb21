/* The records and fields of the daemon's replies (docs/control-protocol.md),
 * as tunnelctl shows them: their JSON types and their table columns.  The
 * JSON keys are the protocol's keys, so they stay as stable as it is. */
#ifndef TD_CTL_RECORDS_H_
#define TD_CTL_RECORDS_H_

#include "out.h"

extern const struct ctl_fspec ctl_status_top[];
extern const struct ctl_rspec ctl_status_recs[3]; /* listener, tunnel, server */
extern const struct ctl_rspec ctl_tunnels_recs[1];
extern const struct ctl_rspec ctl_users_recs[1];
extern const struct ctl_rspec ctl_stats_recs[4]; /* user, tunnel, listener, server */
extern const struct ctl_rspec ctl_conns_recs[1];
extern const struct ctl_fspec ctl_reload_top[];
extern const struct ctl_fspec ctl_no_fields[];

#define CTL_NRECS(a) (sizeof(a) / sizeof((a)[0]))

#endif
