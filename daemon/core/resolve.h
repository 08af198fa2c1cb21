/* Name resolution for targets, on libuv's thread pool (getaddrinfo blocks).
 *
 * The pool has limits.resolver_threads threads (UV_THREADPOOL_SIZE when the
 * environment sets it), and libuv lets at most half of them (rounded up)
 * run lookups at once.  A lookup holds a thread until the system resolver
 * answers or gives up, whatever our own deadline says, so a slow name is
 * looked up once however many connections wait for it: every waiter for the
 * same name and socket type shares the lookup in flight.  Literal addresses
 * never come here (see dial.c), so they never wait behind slow names.
 *
 * Each waiter has its own deadline, kept by the caller (limits.dns_timeout):
 * td_resolve_cancel() lets it go at any time without touching the others. */
#ifndef TD_RESOLVE_H_
#define TD_RESOLVE_H_

#include "core/daemon.h"

#include <stddef.h>
#include <uv.h>

#define TD_RESOLVE_MAX_ADDRS 16

struct td_resolve;

/* status is 0 or TD_EDNS / TD_ENOMEM.  addrs (n of them, IPv4 and IPv6 only,
 * port 0) are valid during the call only.  The request is gone after it. */
typedef void (*td_resolve_cb)(void *arg, int status, const struct sockaddr_storage *addrs,
                              size_t n);

/* socktype: SOCK_STREAM or SOCK_DGRAM.  NULL when the lookup cannot start
 * (out of memory, or the resolver refused it); cb is never called then. */
struct td_resolve *td_resolve_start(struct td_daemon *d, const char *host, int socktype,
                                    td_resolve_cb cb, void *arg);
/* cb is never called after this.  NULL is fine. */
void td_resolve_cancel(struct td_resolve *r);

/* Lookups in flight (distinct names), for tests and status. */
size_t td_resolve_inflight(const struct td_daemon *d);

/* Set the thread pool size before libuv starts it (the daemon's start-up). */
void td_resolve_pool_setup(unsigned threads);

#endif
