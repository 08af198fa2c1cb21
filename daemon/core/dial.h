/* Outbound TCP: resolve a name asynchronously, check every address against
 * the listener's allow/deny rules, and connect to each address in turn, all
 * within deadlines.  Used by the direct route and by every tunnel server
 * (the exit side), so that they share one resolver policy and one set of
 * error mappings. */
#ifndef TD_DIAL_H_
#define TD_DIAL_H_

#include "config/config.h"
#include "core/daemon.h"

#include <stdint.h>
#include <uv.h>

struct td_dial;

/* status is 0 or a TD_E* code: TD_EDNS (name did not resolve or DNS timed
 * out), TD_ETIMEDOUT (connect timeout), TD_ECONNREFUSED, TD_ENETUNREACH,
 * TD_EHOSTUNREACH, TD_EACCES (refused by the allow/deny rules), TD_EMFILE,
 * TD_ENOMEM, TD_EIO.  On success tcp is a connected, heap-allocated handle
 * that now belongs to the caller (its descriptor is counted in
 * d->fds_in_use; release it with td_tcp_close_free()).  elapsed_ms runs from
 * td_dial_start() to the callback.  The dial object is freed after the
 * callback returns. */
typedef void (*td_dial_cb)(void *arg, int status, uv_tcp_t *tcp, uint64_t elapsed_ms);

struct td_dial_opts {
    uint64_t dns_timeout_ms;
    uint64_t connect_timeout_ms;
    const struct cfg_rules *rules; /* allow/deny rules to apply; NULL for none */
};

/* Returns NULL when the dial cannot start (out of memory, or the resolver
 * refused the request); cb is never called then. */
struct td_dial *td_dial_start(struct td_daemon *d, const char *host, uint16_t port,
                              const struct td_dial_opts *opts, td_dial_cb cb, void *arg);
/* Abandon a dial: cb is never called after this. */
void td_dial_cancel(struct td_dial *dl);

/* uv_close() + free() for handles handed out by td_dial, returning the
 * descriptor to the daemon's budget. */
void td_tcp_close_free(struct td_daemon *d, uv_tcp_t *tcp);

#endif
