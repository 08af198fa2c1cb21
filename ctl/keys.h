/* What users add, add-key, rotate-key and export-client share: making a
 * user's key (tunnelctl makes every key; the daemon never sees a jProxy
 * private key), finding where clients reach a server, writing the client's
 * material, and the --out file. */
#ifndef TD_CTL_KEYS_H_
#define TD_CTL_KEYS_H_

#include "config/config.h"
#include "proto/ctlmsg.h"
#include "util/addr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A new key.  wstan: 16 random bytes, as base64 (the secret).  jProxy: an
 * RSA-2048 pair, a salt and the token (the secret, 64 upper-case hex
 * digits); the server's user file and the client's key.dat, encoded. */
struct ctl_key {
    enum cfg_protocol proto;
    char secret[96];
    char *user_b64;     /* jproxy: the user file in base64, for the request */
    uint8_t *user_file; /* jproxy: the server's user file (TOKEN.dat) */
    size_t user_len;
    uint8_t *key_file; /* jproxy: the client's key.dat (private) */
    size_t key_len;
};

/* Make a key for user.  Returns 0 or an exit code after printing why. */
int ctl_key_make(struct ctl_key *k, enum cfg_protocol proto, const char *user);
void ctl_key_free(struct ctl_key *k); /* wipes */
/* The request fields of a new key: secret, and jproxy_user for jProxy. */
void ctl_key_fields(struct ctl_buf *b, const struct ctl_key *k);

/* "wstan" / "jproxy"; returns 0, or -1 for another word. */
int ctl_protocol_parse(const char *s, enum cfg_protocol *out);

/* Where a client reaches the server, for its config. */
struct ctl_reach {
    bool known;                    /* false: a placeholder address */
    char tunnel[CFG_NAME_MAX + 1]; /* the client's name for the tunnel */
    char hostport[TD_HOST_MAX + 16];
    char url[TD_HOST_MAX + 1200]; /* wstan: ws[s]://HOSTPORT/PATH/ */
};

/* From --server HOST[:PORT] (server may be NULL) and the config's servers:
 * entry of that protocol (the one named via, else the first).  The port
 * defaults to the entry's listen port, else the protocol's.  Without
 * --server the entry's listen address is used, unless it is a wildcard or
 * port 0.  With required, a missing address is an error (exit code 2, the
 * message says to pass --server); otherwise a placeholder, with a note.
 * Returns 0 or an exit code. */
int ctl_reach_find(const struct td_config *cfg, enum cfg_protocol proto, const char *via,
                   const char *server, bool required, struct ctl_reach *r);

/* The client's YAML, malloc()ed: the tunnels: entry (a snippet), or with
 * full a whole client config (version, a mixed listener on
 * 127.0.0.1:1080 routed to the tunnel, the tunnel).  cred is the wstan key
 * or the jProxy key_file path.  NULL when out of memory. */
char *ctl_client_yaml(enum cfg_protocol proto, const struct ctl_reach *r, const char *cred,
                      const char *user, bool full);

/* --out FILE: refuse an existing file unless force (exit code 1). */
int ctl_out_check(const char *path, bool force);
/* Write data owner-only (0600), atomically.  Returns 0 or an exit code. */
int ctl_out_write(const char *path, const uint8_t *data, size_t len);
/* A jProxy key.dat is staged next to path (path + ".new") before the
 * daemon or the state takes the key, and put in place after, so that a
 * failed request leaves path as it was and a taken key is never lost. */
int ctl_out_stage(const char *path, const uint8_t *data, size_t len, char **staged);
int ctl_out_commit(const char *path, char *staged, const uint8_t *data, size_t len);
void ctl_out_abort(char *staged);

#endif
