/* What this build of tunneld is made of: the protocols and the front-ends
 * the core may use (kinds.c).  The entry points (main_posix.c, main_win.c)
 * hand this table to daemon_run(); nothing in daemon/core/ names a protocol
 * or a front-end. */
#ifndef TD_KINDS_H_
#define TD_KINDS_H_

#include "core/tunnel.h"

extern const struct td_kinds td_builtin_kinds;

#endif
