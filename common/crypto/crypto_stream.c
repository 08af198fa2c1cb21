/* Stream cipher, MACs, hashes, KDFs and randomness.  AES-CTR and the keyed
 * HMAC-SHA1 go through the build's backend (backend.h); SHA-1, one-shot
 * HMAC, PBKDF2, scrypt and the CSPRNG are mbedTLS 2.28.
 *
 * Every mbedTLS status is turned into TD_ECRYPTO right where it is
 * returned; nothing else in the project sees mbedTLS error codes. */
#include "crypto/crypto_stream.h"

#include "crypto/backend.h"

#include "util/error.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/md.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha1.h>

/* ---- backend choice ------------------------------------------------------------ */

static const struct td_crypto_backend *td__crypto_forced;

void td_crypto_use(const struct td_crypto_backend *be)
{
    td__crypto_forced = be;
}

const struct td_crypto_backend *td_crypto_current(void)
{
    return td__crypto_forced ? td__crypto_forced : td_crypto_default_backend();
}

void td__xor(uint8_t *out, const uint8_t *a, const uint8_t *b, size_t len)
{
    size_t i = 0;
    /* Whole 8-byte words through memcpy (no alignment assumed; compilers
     * turn this into vector loads), then the tail. */
    for (; i + 8 <= len; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        x ^= y;
        memcpy(out + i, &x, 8);
    }
    for (; i < len; i++)
        out[i] = (uint8_t)(a[i] ^ b[i]);
}

/* ---- AES-CTR ---------------------------------------------------------------- */

int td_ctr_init_be(struct td_ctr *c, const struct td_crypto_backend *be, const uint8_t *key,
                   size_t keylen, const uint8_t iv[TD_AES_BLOCK_LEN])
{
    int rc;

    if (c == NULL || be == NULL || key == NULL || iv == NULL || (keylen != 16 && keylen != 32))
        return TD_EINVAL;
    memset(c, 0, sizeof(*c));
    rc = be->ctr_new(key, keylen, &c->impl);
    if (rc != 0) {
        c->impl = NULL;
        return rc;
    }
    c->be = be;
    memcpy(c->counter, iv, TD_AES_BLOCK_LEN);
    c->off = 0;
    c->ready = true;
    return 0;
}

int td_ctr_init(struct td_ctr *c, const uint8_t *key, size_t keylen,
                const uint8_t iv[TD_AES_BLOCK_LEN])
{
    return td_ctr_init_be(c, td_crypto_current(), key, keylen, iv);
}

/* The keystream of the next counter block into c->block (counter moves on). */
static int td__ctr_next_block(struct td_ctr *c)
{
    memset(c->block, 0, sizeof(c->block));
    return c->be->ctr_blocks(c->impl, c->counter, c->block, c->block, 1);
}

int td_ctr_xor(struct td_ctr *c, const uint8_t *in, uint8_t *out, size_t len)
{
    size_t n;
    int rc;

    if (c == NULL || !c->ready || ((in == NULL || out == NULL) && len != 0))
        return TD_EINVAL;
    if (len == 0)
        return 0;
    /* What is left of the current block's keystream first. */
    if (c->off != 0) {
        n = TD_AES_BLOCK_LEN - c->off;
        if (n > len)
            n = len;
        td__xor(out, in, c->block + c->off, n);
        c->off = (c->off + n) % TD_AES_BLOCK_LEN;
        in += n;
        out += n;
        len -= n;
    }
    /* Then whole blocks in one backend call. */
    n = len / TD_AES_BLOCK_LEN;
    if (n > 0) {
        rc = c->be->ctr_blocks(c->impl, c->counter, in, out, n);
        if (rc != 0)
            return rc;
        in += n * TD_AES_BLOCK_LEN;
        out += n * TD_AES_BLOCK_LEN;
        len -= n * TD_AES_BLOCK_LEN;
    }
    /* The tail starts a block whose rest the next call uses. */
    if (len > 0) {
        rc = td__ctr_next_block(c);
        if (rc != 0)
            return rc;
        td__xor(out, in, c->block, len);
        c->off = len;
    }
    return 0;
}

void td__ctr128_add(uint8_t counter[TD_AES_BLOCK_LEN], uint64_t n)
{
    unsigned carry = 0;
    for (int i = TD_AES_BLOCK_LEN - 1; i >= 0; i--) {
        unsigned sum = (unsigned)counter[i] + (unsigned)(n & 0xff) + carry;
        counter[i] = (unsigned char)sum;
        carry = sum >> 8;
        n >>= 8;
        if (n == 0 && carry == 0)
            break;
    }
}

int td_ctr_skip(struct td_ctr *c, size_t len)
{
    size_t n;
    int rc;

    if (c == NULL || !c->ready)
        return TD_EINVAL;
    /* Use up the current partial block first. */
    if (c->off != 0) {
        n = TD_AES_BLOCK_LEN - c->off;
        if (n > len)
            n = len;
        c->off = (c->off + n) % TD_AES_BLOCK_LEN;
        len -= n;
    }
    if (len == 0)
        return 0;
    /* Now at a block boundary: whole blocks only move the counter. */
    td__ctr128_add(c->counter, (uint64_t)(len / TD_AES_BLOCK_LEN));
    n = len % TD_AES_BLOCK_LEN;
    if (n == 0)
        return 0;
    /* The tail starts a new block, which leaves it as the partial block. */
    rc = td__ctr_next_block(c);
    if (rc == 0)
        c->off = n;
    return rc;
}

void td_ctr_free(struct td_ctr *c)
{
    if (c == NULL || !c->ready)
        return;
    c->be->ctr_free(c->impl);
    mbedtls_platform_zeroize(c, sizeof(*c));
}

/* ---- SHA-1 and HMAC-SHA1 ---------------------------------------------------- */

int td_sha1(const void *data, size_t len, uint8_t out[TD_SHA1_LEN])
{
    if ((data == NULL && len != 0) || out == NULL)
        return TD_EINVAL;
    return mbedtls_sha1_ret(data, len, out) == 0 ? 0 : TD_ECRYPTO;
}

int td_hmac_sha1(const uint8_t *key, size_t keylen, const void *data, size_t len,
                 uint8_t out[TD_SHA1_LEN])
{
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA1);
    if ((key == NULL && keylen != 0) || (data == NULL && len != 0) || out == NULL)
        return TD_EINVAL;
    if (info == NULL)
        return TD_ECRYPTO;
    return mbedtls_md_hmac(info, key, keylen, data, len, out) == 0 ? 0 : TD_ECRYPTO;
}

int td_hmac_sha1_init_be(struct td_hmac_sha1 *h, const struct td_crypto_backend *be,
                         const uint8_t *key, size_t keylen)
{
    int rc;

    if (h == NULL || be == NULL || (key == NULL && keylen != 0))
        return TD_EINVAL;
    memset(h, 0, sizeof(*h));
    rc = be->hmac_new(key, keylen, &h->impl);
    if (rc != 0) {
        h->impl = NULL;
        return rc;
    }
    h->be = be;
    h->ready = true;
    return 0;
}

int td_hmac_sha1_init(struct td_hmac_sha1 *h, const uint8_t *key, size_t keylen)
{
    return td_hmac_sha1_init_be(h, td_crypto_current(), key, keylen);
}

int td_hmac_sha1_update(struct td_hmac_sha1 *h, const void *data, size_t len)
{
    if (h == NULL || !h->ready || (data == NULL && len != 0))
        return TD_EINVAL;
    if (len == 0)
        return 0;
    return h->be->hmac_update(h->impl, data, len);
}

int td_hmac_sha1_final(struct td_hmac_sha1 *h, uint8_t out[TD_SHA1_LEN])
{
    if (h == NULL || !h->ready || out == NULL)
        return TD_EINVAL;
    return h->be->hmac_final(h->impl, out);
}

void td_hmac_sha1_free(struct td_hmac_sha1 *h)
{
    if (h == NULL || !h->ready)
        return;
    h->be->hmac_free(h->impl);
    h->impl = NULL;
    h->ready = false;
}

/* ---- PBKDF2 and scrypt ------------------------------------------------------ */

int td_pbkdf2_sha256(const uint8_t *pw, size_t pwlen, const uint8_t *salt, size_t saltlen,
                     uint32_t iterations, uint8_t *out, size_t outlen)
{
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    mbedtls_md_context_t md;
    int rc = TD_ECRYPTO;

    if ((pw == NULL && pwlen != 0) || (salt == NULL && saltlen != 0) || out == NULL ||
        iterations == 0 || outlen == 0 || outlen > UINT32_MAX)
        return TD_EINVAL;
    mbedtls_md_init(&md);
    if (info == NULL || mbedtls_md_setup(&md, info, 1) != 0)
        goto out;
    /* mbedTLS wants non-NULL pointers even for empty inputs. */
    if (mbedtls_pkcs5_pbkdf2_hmac(&md, pw ? pw : (const uint8_t *)"", pwlen,
                                  salt ? salt : (const uint8_t *)"", saltlen, iterations,
                                  (uint32_t)outlen, out) != 0)
        goto out;
    rc = 0;
out:
    mbedtls_md_free(&md);
    return rc;
}

static uint32_t td__le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void td__put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#define TD_ROTL32(v, n) (((v) << (n)) | ((v) >> (32 - (n))))

/* B = B + Salsa20/8(B), on 16 little-endian words (RFC 7914 section 3). */
static void td__salsa20_8(uint32_t B[16])
{
    uint32_t x[16];
    memcpy(x, B, sizeof(x));
    for (int i = 0; i < 8; i += 2) {
        /* Columns. */
        x[4] ^= TD_ROTL32(x[0] + x[12], 7);
        x[8] ^= TD_ROTL32(x[4] + x[0], 9);
        x[12] ^= TD_ROTL32(x[8] + x[4], 13);
        x[0] ^= TD_ROTL32(x[12] + x[8], 18);
        x[9] ^= TD_ROTL32(x[5] + x[1], 7);
        x[13] ^= TD_ROTL32(x[9] + x[5], 9);
        x[1] ^= TD_ROTL32(x[13] + x[9], 13);
        x[5] ^= TD_ROTL32(x[1] + x[13], 18);
        x[14] ^= TD_ROTL32(x[10] + x[6], 7);
        x[2] ^= TD_ROTL32(x[14] + x[10], 9);
        x[6] ^= TD_ROTL32(x[2] + x[14], 13);
        x[10] ^= TD_ROTL32(x[6] + x[2], 18);
        x[3] ^= TD_ROTL32(x[15] + x[11], 7);
        x[7] ^= TD_ROTL32(x[3] + x[15], 9);
        x[11] ^= TD_ROTL32(x[7] + x[3], 13);
        x[15] ^= TD_ROTL32(x[11] + x[7], 18);
        /* Rows. */
        x[1] ^= TD_ROTL32(x[0] + x[3], 7);
        x[2] ^= TD_ROTL32(x[1] + x[0], 9);
        x[3] ^= TD_ROTL32(x[2] + x[1], 13);
        x[0] ^= TD_ROTL32(x[3] + x[2], 18);
        x[6] ^= TD_ROTL32(x[5] + x[4], 7);
        x[7] ^= TD_ROTL32(x[6] + x[5], 9);
        x[4] ^= TD_ROTL32(x[7] + x[6], 13);
        x[5] ^= TD_ROTL32(x[4] + x[7], 18);
        x[11] ^= TD_ROTL32(x[10] + x[9], 7);
        x[8] ^= TD_ROTL32(x[11] + x[10], 9);
        x[9] ^= TD_ROTL32(x[8] + x[11], 13);
        x[10] ^= TD_ROTL32(x[9] + x[8], 18);
        x[12] ^= TD_ROTL32(x[15] + x[14], 7);
        x[13] ^= TD_ROTL32(x[12] + x[15], 9);
        x[14] ^= TD_ROTL32(x[13] + x[12], 13);
        x[15] ^= TD_ROTL32(x[14] + x[13], 18);
    }
    for (int i = 0; i < 16; i++)
        B[i] += x[i];
}

/* scryptBlockMix (RFC 7914 section 4): B and Y are 2r blocks of 16 words;
 * Y = even blocks then odd blocks of the mixed sequence. */
static void td__blockmix(const uint32_t *B, uint32_t *Y, size_t r)
{
    uint32_t X[16];
    memcpy(X, &B[(2 * r - 1) * 16], sizeof(X));
    for (size_t i = 0; i < 2 * r; i++) {
        for (int k = 0; k < 16; k++)
            X[k] ^= B[i * 16 + k];
        td__salsa20_8(X);
        memcpy(&Y[((i & 1) * r + i / 2) * 16], X, sizeof(X));
    }
}

/* scryptROMix (RFC 7914 section 5) on one 128r-byte block, in place.
 * V holds N * 32r words, XY 64r words. */
static void td__romix(uint8_t *B, size_t r, uint64_t N, uint32_t *V, uint32_t *XY)
{
    size_t words = 32 * r;
    uint32_t *X = XY, *Y = XY + words;

    for (size_t k = 0; k < words; k++)
        X[k] = td__le32(&B[4 * k]);
    for (uint64_t i = 0; i < N; i++) {
        memcpy(&V[i * words], X, words * sizeof(uint32_t));
        td__blockmix(X, Y, r);
        memcpy(X, Y, words * sizeof(uint32_t));
    }
    for (uint64_t i = 0; i < N; i++) {
        /* Integerify: the first word pair of the last 64-byte block; N is
         * below 2^32 so the low word is enough. */
        uint64_t j = X[(2 * r - 1) * 16] & (N - 1);
        const uint32_t *Vj = &V[j * words];
        for (size_t k = 0; k < words; k++)
            X[k] ^= Vj[k];
        td__blockmix(X, Y, r);
        memcpy(X, Y, words * sizeof(uint32_t));
    }
    for (size_t k = 0; k < words; k++)
        td__put_le32(&B[4 * k], X[k]);
}

int td_scrypt(const uint8_t *pw, size_t pwlen, const uint8_t *salt, size_t saltlen, uint64_t N,
              uint32_t r, uint32_t p, uint8_t *out, size_t outlen)
{
    uint8_t *B = NULL;
    uint32_t *V = NULL, *XY = NULL;
    size_t blen, vlen;
    int rc;

    if ((pw == NULL && pwlen != 0) || (salt == NULL && saltlen != 0) || out == NULL ||
        outlen == 0 || outlen > UINT32_MAX)
        return TD_EINVAL;
    if (N < 2 || (N & (N - 1)) != 0 || N > UINT32_MAX || r == 0 || p == 0 ||
        (uint64_t)r * p >= ((uint64_t)1 << 30))
        return TD_EINVAL;
    /* RFC 7914 requires N < 2^(128 * r / 8) = 2^(16 r): only r = 1 is
     * tighter than the 2^32 bound above. */
    if (r == 1 && N >= ((uint64_t)1 << 16))
        return TD_EINVAL;
    if ((uint64_t)r > TD_SCRYPT_MAX_MEM / 128 / N || (uint64_t)p > TD_SCRYPT_MAX_MEM / 128 / r)
        return TD_ELIMIT;
    vlen = (size_t)(128 * (uint64_t)r * N);
    blen = (size_t)(128 * (uint64_t)r * p);

    B = malloc(blen);
    V = malloc(vlen);
    XY = malloc(256 * (size_t)r);
    if (B == NULL || V == NULL || XY == NULL) {
        rc = TD_ENOMEM;
        goto out;
    }
    rc = td_pbkdf2_sha256(pw, pwlen, salt, saltlen, 1, B, blen);
    if (rc != 0)
        goto out;
    for (uint32_t i = 0; i < p; i++)
        td__romix(B + (size_t)128 * r * i, r, N, V, XY);
    rc = td_pbkdf2_sha256(pw, pwlen, B, blen, 1, out, outlen);
out:
    if (B != NULL) {
        mbedtls_platform_zeroize(B, blen);
        free(B);
    }
    if (V != NULL) {
        mbedtls_platform_zeroize(V, vlen);
        free(V);
    }
    if (XY != NULL) {
        mbedtls_platform_zeroize(XY, 256 * (size_t)r);
        free(XY);
    }
    return rc;
}

/* ---- random ----------------------------------------------------------------- */

/* One lazily seeded generator for the process.  Not thread-safe by design:
 * the daemon calls it only from its event-loop thread. */
static mbedtls_entropy_context td__entropy;
static mbedtls_ctr_drbg_context td__drbg;
static bool td__drbg_seeded;

int td_random(void *buf, size_t len)
{
    static const char pers[] = "tunneld td_random";
    unsigned char *p = buf;

    if (buf == NULL && len != 0)
        return TD_EINVAL;
    if (!td__drbg_seeded) {
        mbedtls_entropy_init(&td__entropy);
        mbedtls_ctr_drbg_init(&td__drbg);
        if (mbedtls_ctr_drbg_seed(&td__drbg, mbedtls_entropy_func, &td__entropy,
                                  (const unsigned char *)pers, sizeof(pers) - 1) != 0) {
            mbedtls_ctr_drbg_free(&td__drbg);
            mbedtls_entropy_free(&td__entropy);
            return TD_ECRYPTO;
        }
        td__drbg_seeded = true;
    }
    while (len > 0) {
        size_t n = len > MBEDTLS_CTR_DRBG_MAX_REQUEST ? MBEDTLS_CTR_DRBG_MAX_REQUEST : len;
        if (mbedtls_ctr_drbg_random(&td__drbg, p, n) != 0)
            return TD_ECRYPTO;
        p += n;
        len -= n;
    }
    return 0;
}
