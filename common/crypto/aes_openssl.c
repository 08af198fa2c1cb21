/* The fast symmetric-crypto backend: OpenSSL 3 libcrypto EVP (see backend.h).
 *
 * EVP's AES-CTR runs the whole buffer through its pipelined AES-NI (or VAES)
 * code.  Its counter is our counter: after each call EVP holds the next
 * block's counter, so the IV is set again only when ours moved elsewhere
 * (a skip), never per call.  The ciphers are fetched once per process
 * (OpenSSL 3 would otherwise look them up on every init).  HMAC-SHA1 is
 * mbedTLS's (see the table at the end). */
#include "crypto/backend.h"

#include "util/error.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* Largest EVP update, in whole blocks (EVP lengths are int). */
#define TD_OSSL_MAX_BLOCKS ((size_t)(INT_MAX / TD_AES_BLOCK_LEN))

static EVP_CIPHER *td__ossl_ctr128, *td__ossl_ctr256, *td__ossl_ecb128;

static const EVP_CIPHER *td__ossl_cipher(EVP_CIPHER **slot, const char *name)
{
    if (*slot == NULL)
        *slot = EVP_CIPHER_fetch(NULL, name, NULL);
    return *slot;
}

struct td__ossl_ctr {
    EVP_CIPHER_CTX *ctx;
    uint8_t next[TD_AES_BLOCK_LEN]; /* the counter EVP uses next */
    bool synced;                    /* next is valid */
};

static int td__ossl_ctr_new(const uint8_t *key, size_t keylen, void **impl)
{
    const EVP_CIPHER *cipher = keylen == 16 ? td__ossl_cipher(&td__ossl_ctr128, "AES-128-CTR")
                                            : td__ossl_cipher(&td__ossl_ctr256, "AES-256-CTR");
    struct td__ossl_ctr *c;

    if (cipher == NULL)
        return TD_ECRYPTO;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return TD_ENOMEM;
    c->ctx = EVP_CIPHER_CTX_new();
    if (c->ctx == NULL || EVP_EncryptInit_ex(c->ctx, cipher, NULL, key, NULL) != 1) {
        int rc = c->ctx == NULL ? TD_ENOMEM : TD_ECRYPTO;
        EVP_CIPHER_CTX_free(c->ctx);
        free(c);
        return rc;
    }
    *impl = c;
    return 0;
}

static int td__ossl_ctr_blocks(void *impl, uint8_t counter[TD_AES_BLOCK_LEN], const uint8_t *in,
                               uint8_t *out, size_t nblocks)
{
    struct td__ossl_ctr *c = impl;
    size_t left = nblocks;
    int outl;

    if (!c->synced || memcmp(c->next, counter, TD_AES_BLOCK_LEN) != 0) {
        c->synced = false;
        if (EVP_EncryptInit_ex(c->ctx, NULL, NULL, NULL, counter) != 1)
            return TD_ECRYPTO;
    }
    while (left > 0) {
        size_t k = left < TD_OSSL_MAX_BLOCKS ? left : TD_OSSL_MAX_BLOCKS;
        if (EVP_EncryptUpdate(c->ctx, out, &outl, in, (int)(k * TD_AES_BLOCK_LEN)) != 1 ||
            (size_t)outl != k * TD_AES_BLOCK_LEN) {
            c->synced = false;
            return TD_ECRYPTO;
        }
        in += k * TD_AES_BLOCK_LEN;
        out += k * TD_AES_BLOCK_LEN;
        left -= k;
    }
    td__ctr128_add(counter, nblocks);
    memcpy(c->next, counter, TD_AES_BLOCK_LEN);
    c->synced = true;
    return 0;
}

static void td__ossl_ctr_free(void *impl)
{
    struct td__ossl_ctr *c = impl;
    EVP_CIPHER_CTX_free(c->ctx); /* cleanses the key schedule */
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

struct td__ossl_ecb {
    EVP_CIPHER_CTX *enc, *dec;
};

static void td__ossl_ecb_free(void *impl)
{
    struct td__ossl_ecb *e = impl;
    EVP_CIPHER_CTX_free(e->enc);
    EVP_CIPHER_CTX_free(e->dec);
    free(e);
}

static int td__ossl_ecb_new(const uint8_t key[TD_AES128_KEY_LEN], void **impl)
{
    const EVP_CIPHER *cipher = td__ossl_cipher(&td__ossl_ecb128, "AES-128-ECB");
    struct td__ossl_ecb *e;

    if (cipher == NULL)
        return TD_ECRYPTO;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return TD_ENOMEM;
    e->enc = EVP_CIPHER_CTX_new();
    e->dec = EVP_CIPHER_CTX_new();
    if (e->enc == NULL || e->dec == NULL) {
        td__ossl_ecb_free(e);
        return TD_ENOMEM;
    }
    /* Padding is ours (crypto_pk.c): EVP sees whole blocks only. */
    if (EVP_EncryptInit_ex(e->enc, cipher, NULL, key, NULL) != 1 ||
        EVP_DecryptInit_ex(e->dec, cipher, NULL, key, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(e->enc, 0) != 1 || EVP_CIPHER_CTX_set_padding(e->dec, 0) != 1) {
        td__ossl_ecb_free(e);
        return TD_ECRYPTO;
    }
    *impl = e;
    return 0;
}

static int td__ossl_ecb_crypt(void *impl, bool encrypt, const uint8_t *in, uint8_t *out,
                              size_t nblocks)
{
    struct td__ossl_ecb *e = impl;
    int outl;

    while (nblocks > 0) {
        size_t k = nblocks < TD_OSSL_MAX_BLOCKS ? nblocks : TD_OSSL_MAX_BLOCKS;
        int ok = encrypt ? EVP_EncryptUpdate(e->enc, out, &outl, in, (int)(k * TD_AES_BLOCK_LEN))
                         : EVP_DecryptUpdate(e->dec, out, &outl, in, (int)(k * TD_AES_BLOCK_LEN));
        if (ok != 1 || (size_t)outl != k * TD_AES_BLOCK_LEN)
            return TD_ECRYPTO;
        in += k * TD_AES_BLOCK_LEN;
        out += k * TD_AES_BLOCK_LEN;
        nblocks -= k;
    }
    return 0;
}

const struct td_crypto_backend td_crypto_openssl = {
    .name = "openssl",
    .ctr_new = td__ossl_ctr_new,
    .ctr_blocks = td__ossl_ctr_blocks,
    .ctr_free = td__ossl_ctr_free,
    .ecb_new = td__ossl_ecb_new,
    .ecb_crypt = td__ossl_ecb_crypt,
    .ecb_free = td__ossl_ecb_free,
    /* HMAC-SHA1 stays on mbedTLS: wstan tags only its control messages
     * (never a DAT), and EVP_MAC's re-init per tag costs two heap
     * allocations and its context 863 bytes against 288 (see
     * docs/performance.md, "Profiles"). */
    .hmac_new = td__mbedtls_hmac_new,
    .hmac_update = td__mbedtls_hmac_update,
    .hmac_final = td__mbedtls_hmac_final,
    .hmac_free = td__mbedtls_hmac_free,
};
