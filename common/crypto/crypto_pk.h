/* Block cipher and public-key crypto for jProxy, over mbedTLS.
 *
 * jProxy v3 needs AES-128 in ECB mode with PKCS#7 padding (one whole buffer
 * at a time, no IV), RSA key pairs, RSAES-PKCS1-v1_5 encryption, PKCS#8
 * PrivateKeyInfo DER for private keys and X.509 SubjectPublicKeyInfo DER for
 * public keys.  These wrappers keep mbedTLS out of the protocol code.
 *
 * Randomness comes from td_random() (common/crypto_stream.h), a process-wide
 * CTR-DRBG that is NOT thread-safe: call key generation and encryption from
 * one thread only (the event-loop thread, or tunnelctl's main thread).
 *
 * Contexts embed mbedTLS contexts and are not copyable: initialise them in
 * place and release them with the matching *_free function. */
#ifndef TD_CRYPTO_PK_H_
#define TD_CRYPTO_PK_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>

#define TD_AES128_KEY_LEN 16
#define TD_ECB_BLOCK_LEN  16

/* Size of the PKCS#7-padded form of len bytes: 1..16 bytes of padding are
 * always added, so this is never equal to len. */
#define TD_ECB_PADDED_LEN(len) ((((len) / TD_ECB_BLOCK_LEN) + 1) * TD_ECB_BLOCK_LEN)

/* ---- AES-128-ECB with PKCS#7 ------------------------------------------------- */

struct td_crypto_backend;

/* The key schedules live in the build's backend (see backend.h). */
struct td_aes_ecb {
    const struct td_crypto_backend *be;
    void *impl;
    bool ready;
};

/* Returns 0, TD_EINVAL or TD_ECRYPTO.  A failed init needs no free. */
int td_aes_ecb_init(struct td_aes_ecb *c, const uint8_t key[TD_AES128_KEY_LEN]);
/* Wipes both key schedules; safe on a zeroed or already freed context. */
void td_aes_ecb_free(struct td_aes_ecb *c);

/* Pad in (len bytes, may be 0) with PKCS#7 and encrypt it into out, which
 * must hold TD_ECB_PADDED_LEN(len) bytes (else TD_ETOOBIG).  out == in is
 * allowed when the buffer has that room; other overlaps are not.  *outlen
 * receives the ciphertext length.  Returns 0, TD_EINVAL, TD_ETOOBIG or
 * TD_ECRYPTO. */
int td_aes_ecb_encrypt_pad(struct td_aes_ecb *c, const uint8_t *in, size_t len, uint8_t *out,
                           size_t cap, size_t *outlen);

/* Decrypt len bytes (a non-zero multiple of 16, else TD_EINVAL) into out
 * (cap >= len, else TD_ETOOBIG) and strip the padding strictly: the last byte
 * p must be 1..16 and the last p bytes must all equal p, else TD_ECRYPTO.
 * The padding check does not branch on the plaintext.  out == in is allowed.
 * *outlen receives the message length (len - p). */
int td_aes_ecb_decrypt_unpad(struct td_aes_ecb *c, const uint8_t *in, size_t len, uint8_t *out,
                             size_t cap, size_t *outlen);

/* ---- RSA keys ---------------------------------------------------------------- */

/* An RSA key: public only, or a full key pair. */
struct td_pk {
    mbedtls_pk_context pk;
    bool ready; /* holds a key */
    bool has_private;
};

void td_pk_init(struct td_pk *k);
/* Wipes the key; safe on an initialised, zeroed or already freed key. */
void td_pk_free(struct td_pk *k);

/* Generate an RSA key pair (bits in 1024..4096, odd exponent >= 3).  jProxy
 * needs 2048 and 65537.  Takes about 0.15 s for 2048 bits.  k must be
 * initialised and empty.  Returns 0, TD_EINVAL, TD_ENOMEM or TD_ECRYPTO. */
int td_pk_generate_rsa(struct td_pk *k, unsigned bits, unsigned exponent);

/* Parse a private RSA key: PEM ("PRIVATE KEY" or "RSA PRIVATE KEY", with or
 * without a terminating NUL) or DER (PKCS#8 PrivateKeyInfo or PKCS#1
 * RSAPrivateKey), unencrypted.  The key's consistency is checked.  Returns 0,
 * TD_EINVAL (not a parsable key), TD_EUNSUPPORTED (not RSA, or encrypted),
 * TD_ENOMEM or TD_ECRYPTO. */
int td_pk_parse_private(struct td_pk *k, const uint8_t *buf, size_t len);

/* Parse an X.509 SubjectPublicKeyInfo in DER, which must span exactly len
 * bytes.  Returns 0, TD_EINVAL, TD_EUNSUPPORTED (not RSA) or TD_ENOMEM. */
int td_pk_parse_spki_der(struct td_pk *k, const uint8_t *der, size_t len);

/* Write the private key as PKCS#8 PrivateKeyInfo DER (what Java's
 * PrivateKey.getEncoded() gives, and what jProxy's key.dat holds) at the
 * start of out.  Returns 0, TD_EINVAL (no private key), TD_ETOOBIG or
 * TD_ECRYPTO.  4096 bytes are always enough for RSA up to 4096 bits. */
int td_pk_write_private_der(struct td_pk *k, uint8_t *out, size_t cap, size_t *outlen);

/* The same as PEM ("-----BEGIN PRIVATE KEY-----"), NUL-terminated; *outlen
 * excludes the NUL. */
int td_pk_write_private_pem(struct td_pk *k, char *out, size_t cap, size_t *outlen);

/* Write the public key as SubjectPublicKeyInfo DER at the start of out.
 * RSA-2048 with e = 65537 gives exactly 294 bytes. */
int td_pk_write_spki_der(struct td_pk *k, uint8_t *out, size_t cap, size_t *outlen);

/* Modulus size in bits (0 without a key). */
size_t td_pk_bits(const struct td_pk *k);

/* True when the key is RSA with exactly these modulus bits and exponent. */
bool td_pk_is_rsa(const struct td_pk *k, size_t bits, uint32_t exponent);

/* RSAES-PKCS1-v1_5 encryption with the public key (random non-zero padding).
 * out must hold the modulus size (256 bytes for RSA-2048); *outlen receives
 * it.  len must be at most modulus size - 11.  Returns 0, TD_EINVAL,
 * TD_ETOOBIG or TD_ECRYPTO. */
int td_pk_encrypt_pkcs1(struct td_pk *k, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                        size_t *outlen);

/* RSAES-PKCS1-v1_5 decryption with the private key (blinded).  in must be
 * exactly the modulus size.  Returns 0, TD_EINVAL, TD_ETOOBIG (the plaintext
 * does not fit in cap) or TD_ECRYPTO (bad ciphertext or padding). */
int td_pk_decrypt_pkcs1(struct td_pk *k, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                        size_t *outlen);

#endif
