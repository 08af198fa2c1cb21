/* Stream cipher, MACs, hashes and key derivation on top of mbedTLS.
 *
 * These are the primitives the wstan tunnel needs: AES-CTR as one
 * continuous keystream per direction, HMAC-SHA1 tags, SHA-1 for the
 * WebSocket handshake, PBKDF2-HMAC-SHA256 and scrypt (RFC 7914) for
 * password keys, and a CSPRNG.  AES-CTR and the keyed HMAC-SHA1 run on the
 * build's backend (OpenSSL libcrypto or mbedTLS, see backend.h); the rest
 * is mbedTLS.  The structs hold an opaque backend context, so no crypto
 * library's header is needed to use them.
 *
 * Contexts are not copyable: initialise them in place and free them with
 * the matching *_free function. */
#ifndef TD_CRYPTO_STREAM_H_
#define TD_CRYPTO_STREAM_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TD_SHA1_LEN      20
#define TD_AES_BLOCK_LEN 16

/* Upper bound on the memory scrypt may allocate (128 * r * N bytes for V
 * plus 256 * r for the work area); larger parameters give TD_ELIMIT. */
#define TD_SCRYPT_MAX_MEM ((size_t)1 << 30)

/* AES-CTR keystream.  The 16-byte initial counter block is incremented as
 * one 128-bit big-endian integer per block, wrapping modulo 2^128 (OpenSSL
 * and mbedTLS semantics).  The stream is continuous across calls: a
 * partial block left over by one call is used up by the next. */
struct td_crypto_backend;

struct td_ctr {
    const struct td_crypto_backend *be;
    void *impl;                              /* the backend's key schedule */
    unsigned char counter[TD_AES_BLOCK_LEN]; /* next counter block to encrypt */
    unsigned char block[TD_AES_BLOCK_LEN];   /* keystream of the current block */
    size_t off;                              /* bytes of block already used */
    bool ready;
};

/* key is 16 (AES-128) or 32 (AES-256) bytes.  Returns 0, TD_EINVAL or
 * TD_ECRYPTO.  On failure the context needs no td_ctr_free (it is harmless). */
int td_ctr_init(struct td_ctr *c, const uint8_t *key, size_t keylen,
                const uint8_t iv[TD_AES_BLOCK_LEN]);
/* out = in XOR keystream; in == out is allowed (in place), other overlaps
 * are not.  Returns 0, TD_EINVAL or TD_ECRYPTO. */
int td_ctr_xor(struct td_ctr *c, const uint8_t *in, uint8_t *out, size_t len);
/* Advance the keystream by len bytes without producing output: O(1) in the
 * number of whole blocks skipped. */
int td_ctr_skip(struct td_ctr *c, size_t len);
/* Wipes the key schedule; safe on a zeroed or already freed context. */
void td_ctr_free(struct td_ctr *c);

int td_sha1(const void *data, size_t len, uint8_t out[TD_SHA1_LEN]);

/* HMAC-SHA1 one-shot. */
int td_hmac_sha1(const uint8_t *key, size_t keylen, const void *data, size_t len,
                 uint8_t out[TD_SHA1_LEN]);

/* HMAC-SHA1 with a fixed key: init once, then update* + final per message;
 * final leaves the context ready for the next message under the same key. */
struct td_hmac_sha1 {
    const struct td_crypto_backend *be;
    void *impl;
    bool ready;
};
int td_hmac_sha1_init(struct td_hmac_sha1 *h, const uint8_t *key, size_t keylen);
int td_hmac_sha1_update(struct td_hmac_sha1 *h, const void *data, size_t len);
int td_hmac_sha1_final(struct td_hmac_sha1 *h, uint8_t out[TD_SHA1_LEN]);
void td_hmac_sha1_free(struct td_hmac_sha1 *h);

/* PBKDF2-HMAC-SHA256 (RFC 8018).  iterations >= 1; outlen <= 2^32 - 1. */
int td_pbkdf2_sha256(const uint8_t *pw, size_t pwlen, const uint8_t *salt, size_t saltlen,
                     uint32_t iterations, uint8_t *out, size_t outlen);

/* scrypt (RFC 7914).  N must be a power of two > 1 and < 2^32, r >= 1,
 * p >= 1, r * p < 2^30, and the memory 128 * r * N must stay within
 * TD_SCRYPT_MAX_MEM.  Returns 0, TD_EINVAL (bad parameters), TD_ELIMIT
 * (memory bound), TD_ENOMEM or TD_ECRYPTO.  N = 16384, r = 8 allocates
 * 16 MiB for the duration of the call. */
int td_scrypt(const uint8_t *pw, size_t pwlen, const uint8_t *salt, size_t saltlen, uint64_t N,
              uint32_t r, uint32_t p, uint8_t *out, size_t outlen);

/* Cryptographically strong random bytes from mbedTLS CTR-DRBG, seeded
 * lazily from the platform entropy source on first use.  The generator is a
 * process-wide static: NOT thread-safe, call it from the event-loop thread
 * only.  Returns 0 or TD_ECRYPTO. */
int td_random(void *buf, size_t len);

#endif
