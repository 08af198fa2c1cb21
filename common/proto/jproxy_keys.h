/* jProxy key management: the KSF files of jProxy v3 (spec section 5).
 *
 *   key.dat (client):  L u32 BE | PKCS#8 PrivateKeyInfo DER (L bytes) | T (32)
 *                      bytes after T are ignored, as the Java client does.
 *   users/<HEX(T)>.dat (server):
 *                      n u16 BE | user name (n bytes, modified UTF-8) |
 *                      salt (256) | SPKI DER (294)   -- exactly, nothing after
 *
 * T = SHA-256(SPKI DER || salt).  Keys must be RSA-2048 with e = 65537: the
 * Java server reads exactly 294 SPKI bytes and sends a 256-byte RSA block.
 *
 * Used by tunnelctl (generation) and the daemon (loading).  No I/O beyond
 * the paths given; files are written through common/fs.h (owner-only mode,
 * atomic replace).  Generation uses td_random(), so it is not thread-safe.
 *
 * Errors when reading: TD_ENOTFOUND, TD_EACCES, TD_EIO (file system),
 * TD_ETOOBIG (file larger than the bound), TD_EPROTO (truncated or malformed
 * content, including a private key or SPKI that does not parse),
 * TD_EUNSUPPORTED (a well-formed key that is not RSA-2048 with e = 65537),
 * TD_ENOMEM. */
#ifndef TD_JPROXY_KEYS_H_
#define TD_JPROXY_KEYS_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto_pk.h"
#include "proto/jproxy.h"

/* Bounds for reading.  A key.dat is about 1253 bytes; a user file is
 * 552 + n bytes with n <= 65535. */
#define JP_KEY_FILE_MAX       16384
#define JP_KEY_DER_MIN        64
#define JP_KEY_DER_MAX        8192
#define JP_USER_FILE_MAX      (2 + 65535 + JP_SALT_LEN + JP_SPKI_LEN)
#define JP_USER_NAME_GEN_MAX  255                    /* longest name we generate */
#define JP_USER_FILE_NAME_LEN (2 * JP_TOKEN_LEN + 4) /* "<64 hex>.dat" */

/* The client's secret: its private key and the stored token. */
struct jp_client_key {
    struct td_pk key;
    uint8_t token[JP_TOKEN_LEN];
};

/* One server user. */
struct jp_user {
    char *name; /* malloc()ed, NUL-terminated (names never contain NUL) */
    size_t name_len;
    uint8_t salt[JP_SALT_LEN];
    uint8_t spki[JP_SPKI_LEN];
    uint8_t token[JP_TOKEN_LEN]; /* SHA-256(spki || salt), computed on load */
    struct td_pk pub;            /* parsed from spki: encrypts K at login */
};

void jp_client_key_init(struct jp_client_key *ck);
void jp_client_key_free(struct jp_client_key *ck); /* wipes the key and token */
void jp_user_init(struct jp_user *u);
void jp_user_free(struct jp_user *u);

/* Generate an RSA-2048 key pair, a 256-byte salt and the token, and fill
 * both halves.  name: 1..255 bytes of UTF-8, Basic Multilingual Plane only
 * (so that it equals Java's modified UTF-8), no NUL.  ck and u must be
 * initialised and empty.  Returns 0, TD_EINVAL, TD_ENOMEM or TD_ECRYPTO. */
int jp_keys_generate(const char *name, struct jp_client_key *ck, struct jp_user *u);

/* In-memory codecs.  encode returns a malloc()ed buffer (free it after
 * wiping, for the client key).  decode wants an initialised, empty target;
 * on failure the target stays empty. */
int jp_client_key_encode(struct jp_client_key *ck, uint8_t **out, size_t *len);
int jp_client_key_decode(const uint8_t *buf, size_t len, struct jp_client_key *ck);
int jp_user_encode(const struct jp_user *u, uint8_t **out, size_t *len);
int jp_user_decode(const uint8_t *buf, size_t len, struct jp_user *u);

/* Files: written owner-only (0600) and atomically replaced. */
int jp_client_key_write(const char *path, struct jp_client_key *ck);
int jp_client_key_read(const char *path, struct jp_client_key *ck);
int jp_user_write(const char *path, const struct jp_user *u);
int jp_user_read(const char *path, struct jp_user *u);

/* The Java server's file name for a token: 64 upper-case hex digits and
 * ".dat", NUL-terminated. */
void jp_user_file_name(const uint8_t token[JP_TOKEN_LEN], char out[JP_USER_FILE_NAME_LEN + 1]);

/* Constant-time check of a received token against a loaded user. */
bool jp_user_token_eq(const struct jp_user *u, const uint8_t token[JP_TOKEN_LEN]);

#endif
