/* The portable symmetric-crypto backend: mbedTLS 2.28 (see backend.h).
 *
 * mbedTLS encrypts one AES block per call (AES-NI where the CPU has it, no
 * pipelining), so CTR builds a batch of counter blocks, encrypts them in
 * place and XORs the batch into the data a word at a time. */
#include "crypto/backend.h"

#include "util/error.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/aes.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

/* Counter blocks per batch: 256 bytes of keystream on the stack. */
#define TD_MBED_CTR_BATCH 16

static int td__mbed_ctr_new(const uint8_t *key, size_t keylen, void **impl)
{
    mbedtls_aes_context *aes = malloc(sizeof(*aes));
    if (aes == NULL)
        return TD_ENOMEM;
    mbedtls_aes_init(aes);
    if (mbedtls_aes_setkey_enc(aes, key, (unsigned)(keylen * 8)) != 0) {
        mbedtls_aes_free(aes);
        free(aes);
        return TD_ECRYPTO;
    }
    *impl = aes;
    return 0;
}

/* counter + 1, big-endian over all 16 bytes (the carry rarely goes past one). */
static void td__mbed_ctr_inc(uint8_t c[TD_AES_BLOCK_LEN])
{
    for (int i = TD_AES_BLOCK_LEN - 1; i >= 0; i--)
        if (++c[i] != 0)
            break;
}

static int td__mbed_ctr_blocks(void *impl, uint8_t counter[TD_AES_BLOCK_LEN], const uint8_t *in,
                               uint8_t *out, size_t nblocks)
{
    mbedtls_aes_context *aes = impl;
    uint8_t ks[TD_MBED_CTR_BATCH * TD_AES_BLOCK_LEN];
    int rc = 0;

    while (nblocks > 0) {
        size_t k = nblocks < TD_MBED_CTR_BATCH ? nblocks : TD_MBED_CTR_BATCH;
        for (size_t i = 0; i < k; i++) {
            uint8_t *b = ks + i * TD_AES_BLOCK_LEN;
            memcpy(b, counter, TD_AES_BLOCK_LEN);
            td__mbed_ctr_inc(counter);
            if (mbedtls_aes_crypt_ecb(aes, MBEDTLS_AES_ENCRYPT, b, b) != 0) {
                rc = TD_ECRYPTO;
                goto out;
            }
        }
        td__xor(out, in, ks, k * TD_AES_BLOCK_LEN);
        in += k * TD_AES_BLOCK_LEN;
        out += k * TD_AES_BLOCK_LEN;
        nblocks -= k;
    }
out:
    mbedtls_platform_zeroize(ks, sizeof(ks));
    return rc;
}

static void td__mbed_ctr_free(void *impl)
{
    mbedtls_aes_free(impl); /* zeroizes the key schedule */
    free(impl);
}

struct td__mbed_ecb {
    mbedtls_aes_context enc, dec;
};

static int td__mbed_ecb_new(const uint8_t key[TD_AES128_KEY_LEN], void **impl)
{
    struct td__mbed_ecb *e = malloc(sizeof(*e));
    if (e == NULL)
        return TD_ENOMEM;
    mbedtls_aes_init(&e->enc);
    mbedtls_aes_init(&e->dec);
    if (mbedtls_aes_setkey_enc(&e->enc, key, 128) != 0 ||
        mbedtls_aes_setkey_dec(&e->dec, key, 128) != 0) {
        mbedtls_aes_free(&e->enc);
        mbedtls_aes_free(&e->dec);
        free(e);
        return TD_ECRYPTO;
    }
    *impl = e;
    return 0;
}

static int td__mbed_ecb_crypt(void *impl, bool encrypt, const uint8_t *in, uint8_t *out,
                              size_t nblocks)
{
    struct td__mbed_ecb *e = impl;
    mbedtls_aes_context *ctx = encrypt ? &e->enc : &e->dec;
    int mode = encrypt ? MBEDTLS_AES_ENCRYPT : MBEDTLS_AES_DECRYPT;

    for (size_t i = 0; i < nblocks; i++) {
        size_t off = i * TD_AES_BLOCK_LEN;
        if (mbedtls_aes_crypt_ecb(ctx, mode, in + off, out + off) != 0)
            return TD_ECRYPTO;
    }
    return 0;
}

static void td__mbed_ecb_free(void *impl)
{
    struct td__mbed_ecb *e = impl;
    mbedtls_aes_free(&e->enc);
    mbedtls_aes_free(&e->dec);
    free(e);
}

int td__mbedtls_hmac_new(const uint8_t *key, size_t keylen, void **impl)
{
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA1);
    mbedtls_md_context_t *md = malloc(sizeof(*md));
    if (md == NULL)
        return TD_ENOMEM;
    mbedtls_md_init(md);
    if (info == NULL || mbedtls_md_setup(md, info, 1) != 0 ||
        mbedtls_md_hmac_starts(md, key != NULL ? key : (const uint8_t *)"", keylen) != 0) {
        mbedtls_md_free(md);
        free(md);
        return TD_ECRYPTO;
    }
    *impl = md;
    return 0;
}

int td__mbedtls_hmac_update(void *impl, const void *data, size_t len)
{
    return mbedtls_md_hmac_update(impl, data, len) == 0 ? 0 : TD_ECRYPTO;
}

int td__mbedtls_hmac_final(void *impl, uint8_t out[TD_SHA1_LEN])
{
    if (mbedtls_md_hmac_finish(impl, out) != 0)
        return TD_ECRYPTO;
    return mbedtls_md_hmac_reset(impl) == 0 ? 0 : TD_ECRYPTO;
}

void td__mbedtls_hmac_free(void *impl)
{
    mbedtls_md_free(impl); /* zeroizes the HMAC pads */
    free(impl);
}

const struct td_crypto_backend td_crypto_mbedtls = {
    .name = "mbedtls",
    .ctr_new = td__mbed_ctr_new,
    .ctr_blocks = td__mbed_ctr_blocks,
    .ctr_free = td__mbed_ctr_free,
    .ecb_new = td__mbed_ecb_new,
    .ecb_crypt = td__mbed_ecb_crypt,
    .ecb_free = td__mbed_ecb_free,
    .hmac_new = td__mbedtls_hmac_new,
    .hmac_update = td__mbedtls_hmac_update,
    .hmac_final = td__mbedtls_hmac_final,
    .hmac_free = td__mbedtls_hmac_free,
};
