/* common/util/: what everything else in libtunnel_common stands on: the one
 * error table (this file), logging with untrusted-text cleaning (log.h),
 * base64 (base64.h), address, duration and size syntax (addr.h), and the
 * small file helpers with their per-platform halves (fs.h, fs_posix.c,
 * fs_win.c: bounded reads, 0600 atomic writes, the writers' lock).  It
 * depends on nothing else of ours. */

/* One error table for the whole project.
 *
 * Functions return 0 (or a non-negative count) on success and a negative
 * TD_E* code on failure, as libuv does with UV_E*.  Errors from libuv,
 * mbedTLS, libyaml and the OS are translated at the edges, each in exactly
 * one function, so the rest of the code only ever sees these codes. */
#ifndef TD_ERROR_H_
#define TD_ERROR_H_

/* XX(name, value, "message").  Values start at -1001 so that they can never
 * collide with a raw -errno that slipped through an edge. */
#define TD_ERRNO_MAP(XX)                                                                           \
    XX(EAGAIN, -1001, "need more input")                                                           \
    XX(ENOMEM, -1002, "out of memory")                                                             \
    XX(EINVAL, -1003, "invalid argument")                                                          \
    XX(EPROTO, -1004, "protocol error")                                                            \
    XX(ETOOBIG, -1005, "message too large")                                                        \
    XX(EUNSUPPORTED, -1006, "not supported")                                                       \
    XX(EAUTH, -1007, "authentication failed")                                                      \
    XX(ENOTFOUND, -1008, "not found")                                                              \
    XX(EEXIST, -1009, "already exists")                                                            \
    XX(EIO, -1010, "i/o error")                                                                    \
    XX(ECONNREFUSED, -1011, "connection refused")                                                  \
    XX(ECONNRESET, -1012, "connection reset by peer")                                              \
    XX(ETIMEDOUT, -1013, "timed out")                                                              \
    XX(EHOSTUNREACH, -1014, "host unreachable")                                                    \
    XX(ENETUNREACH, -1015, "network unreachable")                                                  \
    XX(EDNS, -1016, "name resolution failed")                                                      \
    XX(EADDRINUSE, -1017, "address already in use")                                                \
    XX(EACCES, -1018, "permission denied")                                                         \
    XX(EMFILE, -1019, "too many open files")                                                       \
    XX(ECANCELED, -1020, "operation canceled")                                                     \
    XX(EEOF, -1021, "end of file")                                                                 \
    XX(ECONFIG, -1022, "invalid configuration")                                                    \
    XX(ECRYPTO, -1023, "cryptographic failure")                                                    \
    XX(ELIMIT, -1024, "limit reached")

enum td_errno {
#define XX(name, val, msg) TD_##name = (val),
    TD_ERRNO_MAP(XX)
#undef XX
};

const char *td_strerror(int err);
const char *td_err_name(int err);

/* Translate a libuv status (UV_E*) into a TD_E* code.  Lives in the daemon's
 * libuv edge, not here, so that common/ has no libuv dependency. */
int td_err_from_uv(int uverr);

#endif
