/* The symmetric-crypto backends behind crypto_stream.h and crypto_pk.h:
 * AES-CTR keystream blocks, AES-128-ECB blocks and HMAC-SHA1 (mbedTLS's
 * in both: see aes_openssl.c).  Only
 * common/crypto/ and the tests use this header.
 *
 * aes_mbedtls.c (portable, always built) and aes_openssl.c (libcrypto EVP,
 * with CMake's -DTUNNELD_CRYPTO=openssl, the default where OpenSSL is found
 * and not on Windows) each define one struct td_crypto_backend;
 * crypto_default_<name>.c names the one that new contexts use.  The public
 * API (td_ctr_*, td_aes_ecb_*, td_hmac_sha1_*) does the stream, padding and
 * argument work once, above the backends; a backend only transforms whole
 * blocks or bytes.  A context remembers its backend, so contexts of both can
 * live side by side (tests/fuzz/fuzz_crypto_diff.c compares them). */
#ifndef TD_CRYPTO_BACKEND_H_
#define TD_CRYPTO_BACKEND_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto_pk.h"
#include "crypto/crypto_stream.h"

struct td_crypto_backend {
    const char *name;
    /* AES-CTR: key 16 or 32 bytes.  ctr_blocks sets out = in XOR
     * AES(counter), AES(counter + 1), ... for nblocks whole blocks (in == out
     * allowed) and advances counter by nblocks modulo 2^128. */
    int (*ctr_new)(const uint8_t *key, size_t keylen, void **impl);
    int (*ctr_blocks)(void *impl, uint8_t counter[TD_AES_BLOCK_LEN], const uint8_t *in,
                      uint8_t *out, size_t nblocks);
    void (*ctr_free)(void *impl);
    /* AES-128-ECB over nblocks whole blocks, either direction (in == out
     * allowed). */
    int (*ecb_new)(const uint8_t key[TD_AES128_KEY_LEN], void **impl);
    int (*ecb_crypt)(void *impl, bool encrypt, const uint8_t *in, uint8_t *out, size_t nblocks);
    void (*ecb_free)(void *impl);
    /* HMAC-SHA1 with a fixed key; final re-arms for the next message. */
    int (*hmac_new)(const uint8_t *key, size_t keylen, void **impl);
    int (*hmac_update)(void *impl, const void *data, size_t len);
    int (*hmac_final)(void *impl, uint8_t out[TD_SHA1_LEN]);
    void (*hmac_free)(void *impl);
};

extern const struct td_crypto_backend td_crypto_mbedtls;
extern const struct td_crypto_backend td_crypto_openssl; /* only with aes_openssl.c */

/* What this build uses by default (crypto_default_<name>.c), and every
 * backend it has, NULL-terminated, the default first. */
const struct td_crypto_backend *td_crypto_default_backend(void);
const struct td_crypto_backend *const *td_crypto_backends(void);

/* The backend that td_ctr_init(), td_aes_ecb_init() and td_hmac_sha1_init()
 * use from now on (tests run their vectors through each); NULL restores
 * the default.  Not thread-safe, like the rest of the daemon's crypto. */
void td_crypto_use(const struct td_crypto_backend *be);
const struct td_crypto_backend *td_crypto_current(void);

/* The same as the public init functions, with an explicit backend. */
int td_ctr_init_be(struct td_ctr *c, const struct td_crypto_backend *be, const uint8_t *key,
                   size_t keylen, const uint8_t iv[TD_AES_BLOCK_LEN]);
int td_aes_ecb_init_be(struct td_aes_ecb *c, const struct td_crypto_backend *be,
                       const uint8_t key[TD_AES128_KEY_LEN]);
int td_hmac_sha1_init_be(struct td_hmac_sha1 *h, const struct td_crypto_backend *be,
                         const uint8_t *key, size_t keylen);

/* mbedTLS's HMAC-SHA1, which the OpenSSL backend uses too. */
int td__mbedtls_hmac_new(const uint8_t *key, size_t keylen, void **impl);
int td__mbedtls_hmac_update(void *impl, const void *data, size_t len);
int td__mbedtls_hmac_final(void *impl, uint8_t out[TD_SHA1_LEN]);
void td__mbedtls_hmac_free(void *impl);

/* counter += n, as a 128-bit big-endian integer modulo 2^128. */
void td__ctr128_add(uint8_t counter[TD_AES_BLOCK_LEN], uint64_t n);

/* out[i] = a[i] ^ b[i] for len bytes, a word at a time (any overlap of out
 * with a or b that is exact is allowed). */
void td__xor(uint8_t *out, const uint8_t *a, const uint8_t *b, size_t len);

#endif
