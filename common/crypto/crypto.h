/* common/crypto/: every cipher, MAC, hash, key and random byte the project
 * uses, behind our own API: constant-time comparison, wiping and SHA-256
 * (this file), AES-CTR streams, HMAC-SHA1, scrypt and randomness
 * (crypto_stream.h), AES-ECB and RSA keys (crypto_pk.h).  Only this folder
 * talks to the crypto library, so the backend can change in one place. */

/* Crypto wrappers.  Every cipher, MAC and hash the project uses goes through
 * here, so that the backend (mbedTLS today) stays in one place. */
#ifndef TD_CRYPTO_H_
#define TD_CRYPTO_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TD_SHA256_LEN 32

/* Compare in time that depends only on len, never on the contents. */
bool td_ct_memeq(const void *a, const void *b, size_t len);

/* Compare two secrets of possibly different lengths without leaking the
 * length or the position of the first difference: both are hashed first. */
bool td_ct_secret_eq(const char *a, size_t alen, const char *b, size_t blen);

/* Overwrite a buffer that held a secret (keys, nonces, decrypted requests)
 * before it is freed or goes out of scope; the compiler may not drop it.
 * NULL or a zero length does nothing. */
void td_wipe(void *p, size_t len);

int td_sha256(const void *data, size_t len, uint8_t out[TD_SHA256_LEN]);

/* td_wipe() of a NUL-terminated string, then free(). */
void td_wipe_free_str(char *s);

#endif
