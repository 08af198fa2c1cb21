/* AES-128-ECB + PKCS#7 and RSA over mbedTLS 2.28 (see crypto_pk.h). */
#include "crypto/crypto_pk.h"

#include "crypto/backend.h"
#include "crypto/crypto_stream.h"
#include "util/error.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/base64.h>
#include <mbedtls/bignum.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>

/* The one place where mbedTLS error codes from this module become TD_E*.
 * Parse failures are mapped by their callers, which know that the input,
 * not the library, was at fault. */
static int td__pk_err(int mret)
{
    switch (mret) {
    case 0:
        return 0;
    case MBEDTLS_ERR_PK_ALLOC_FAILED:
    case MBEDTLS_ERR_MPI_ALLOC_FAILED:
    case MBEDTLS_ERR_ASN1_ALLOC_FAILED:
    case MBEDTLS_ERR_PEM_ALLOC_FAILED:
        return TD_ENOMEM;
    case MBEDTLS_ERR_ASN1_BUF_TOO_SMALL:
    case MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL:
    case MBEDTLS_ERR_RSA_OUTPUT_TOO_LARGE:
        return TD_ETOOBIG;
    default:
        return TD_ECRYPTO;
    }
}

/* mbedTLS's f_rng callback on top of the project's one CSPRNG. */
static int td__pk_rng(void *ctx, unsigned char *buf, size_t len)
{
    (void)ctx;
    return td_random(buf, len) == 0 ? 0 : MBEDTLS_ERR_RSA_RNG_FAILED;
}

/* ---- AES-128-ECB with PKCS#7 ------------------------------------------------- */

int td_aes_ecb_init_be(struct td_aes_ecb *c, const struct td_crypto_backend *be,
                       const uint8_t key[TD_AES128_KEY_LEN])
{
    int rc;

    if (c == NULL || be == NULL || key == NULL)
        return TD_EINVAL;
    memset(c, 0, sizeof(*c));
    rc = be->ecb_new(key, &c->impl);
    if (rc != 0) {
        c->impl = NULL;
        return rc;
    }
    c->be = be;
    c->ready = true;
    return 0;
}

int td_aes_ecb_init(struct td_aes_ecb *c, const uint8_t key[TD_AES128_KEY_LEN])
{
    return td_aes_ecb_init_be(c, td_crypto_current(), key);
}

void td_aes_ecb_free(struct td_aes_ecb *c)
{
    if (c == NULL || !c->ready)
        return;
    c->be->ecb_free(c->impl);
    c->impl = NULL;
    c->ready = false;
}

int td_aes_ecb_encrypt_pad(struct td_aes_ecb *c, const uint8_t *in, size_t len, uint8_t *out,
                           size_t cap, size_t *outlen)
{
    uint8_t last[TD_ECB_BLOCK_LEN];
    size_t full, rem, total;

    if (c == NULL || !c->ready || (in == NULL && len != 0) || out == NULL || outlen == NULL)
        return TD_EINVAL;
    if (len > SIZE_MAX - TD_ECB_BLOCK_LEN)
        return TD_ETOOBIG;
    total = TD_ECB_PADDED_LEN(len);
    if (cap < total)
        return TD_ETOOBIG;
    full = len / TD_ECB_BLOCK_LEN;
    rem = len % TD_ECB_BLOCK_LEN;
    /* The last (partial) block is copied out first: in == out works, and
     * the whole blocks go to the backend in one call. */
    if (rem > 0)
        memcpy(last, in + full * TD_ECB_BLOCK_LEN, rem);
    memset(last + rem, (int)(TD_ECB_BLOCK_LEN - rem), TD_ECB_BLOCK_LEN - rem);
    if ((full > 0 && c->be->ecb_crypt(c->impl, true, in, out, full) != 0) ||
        c->be->ecb_crypt(c->impl, true, last, out + full * TD_ECB_BLOCK_LEN, 1) != 0) {
        mbedtls_platform_zeroize(last, sizeof(last));
        return TD_ECRYPTO;
    }
    mbedtls_platform_zeroize(last, sizeof(last));
    *outlen = total;
    return 0;
}

int td_aes_ecb_decrypt_unpad(struct td_aes_ecb *c, const uint8_t *in, size_t len, uint8_t *out,
                             size_t cap, size_t *outlen)
{
    unsigned p, bad;
    const uint8_t *tail;

    if (c == NULL || !c->ready || in == NULL || out == NULL || outlen == NULL)
        return TD_EINVAL;
    if (len == 0 || len % TD_ECB_BLOCK_LEN != 0)
        return TD_EINVAL;
    if (cap < len)
        return TD_ETOOBIG;
    if (c->be->ecb_crypt(c->impl, false, in, out, len / TD_ECB_BLOCK_LEN) != 0)
        return TD_ECRYPTO;
    /* Check the padding without branching on the plaintext: every byte of
     * the last block is looked at, and only the final verdict is tested. */
    tail = out + len - TD_ECB_BLOCK_LEN;
    p = tail[TD_ECB_BLOCK_LEN - 1];
    bad = (unsigned)(((p - 1u) >> 8) & 1u);                /* p == 0 */
    bad |= (unsigned)(((TD_ECB_BLOCK_LEN - p) >> 8) & 1u); /* p > 16 */
    for (unsigned i = 0; i < TD_ECB_BLOCK_LEN; i++) {
        /* in_pad is 1 when byte (15 - i) lies inside the claimed padding. */
        unsigned in_pad = ((i - p) >> 8) & 1u;
        unsigned diff = tail[TD_ECB_BLOCK_LEN - 1 - i] ^ p;
        bad |= in_pad & (((diff - 1u) >> 8) ^ 1u) & 1u;
    }
    if (bad != 0)
        return TD_ECRYPTO;
    *outlen = len - p;
    return 0;
}

/* ---- RSA keys ---------------------------------------------------------------- */

void td_pk_init(struct td_pk *k)
{
    if (k == NULL)
        return;
    memset(k, 0, sizeof(*k));
    mbedtls_pk_init(&k->pk);
}

void td_pk_free(struct td_pk *k)
{
    if (k == NULL)
        return;
    /* mbedtls_pk_free zeroizes the RSA context (the private numbers) and is
     * safe on an empty context. */
    mbedtls_pk_free(&k->pk);
    mbedtls_pk_init(&k->pk);
    k->ready = false;
    k->has_private = false;
}

/* Reset k to empty after a failed load. */
static void td__pk_reset(struct td_pk *k)
{
    mbedtls_pk_free(&k->pk);
    mbedtls_pk_init(&k->pk);
    k->ready = false;
    k->has_private = false;
}

int td_pk_generate_rsa(struct td_pk *k, unsigned bits, unsigned exponent)
{
    int mret;

    if (k == NULL || k->ready || bits < 1024 || bits > 4096 || exponent < 3 || exponent % 2 == 0)
        return TD_EINVAL;
    mret = mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
    if (mret != 0)
        return td__pk_err(mret);
    mret = mbedtls_rsa_gen_key(mbedtls_pk_rsa(k->pk), td__pk_rng, NULL, bits, (int)exponent);
    if (mret != 0) {
        td__pk_reset(k);
        return td__pk_err(mret);
    }
    k->ready = true;
    k->has_private = true;
    return 0;
}

/* DER input must be one SEQUENCE spanning exactly len bytes: mbedTLS would
 * otherwise ignore bytes after it. */
static bool td__der_exact(const uint8_t *der, size_t len)
{
    unsigned char *p = (unsigned char *)der;
    size_t n;

    if (mbedtls_asn1_get_tag(&p, p + len, &n, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) !=
        0)
        return false;
    return (size_t)(p - der) + n == len;
}

static bool td__is_pem(const uint8_t *buf, size_t len)
{
    static const char begin[] = "-----BEGIN ";
    return len >= sizeof(begin) - 1 && memcmp(buf, begin, sizeof(begin) - 1) == 0;
}

int td_pk_parse_private(struct td_pk *k, const uint8_t *buf, size_t len)
{
    uint8_t *copy = NULL;
    const uint8_t *in = buf;
    size_t inlen = len;
    int mret, rc;

    if (k == NULL || k->ready || buf == NULL || len == 0)
        return TD_EINVAL;
    if (td__is_pem(buf, len)) {
        /* mbedTLS only recognises PEM when the length includes a NUL. */
        if (buf[len - 1] != '\0') {
            copy = malloc(len + 1);
            if (copy == NULL)
                return TD_ENOMEM;
            memcpy(copy, buf, len);
            copy[len] = '\0';
            in = copy;
            inlen = len + 1;
        }
    } else if (!td__der_exact(buf, len)) {
        return TD_EINVAL;
    }
    mret = mbedtls_pk_parse_key(&k->pk, in, inlen, NULL, 0);
    if (copy != NULL) {
        mbedtls_platform_zeroize(copy, len + 1);
        free(copy);
    }
    if (mret != 0) {
        td__pk_reset(k);
        if (mret == MBEDTLS_ERR_PK_ALLOC_FAILED)
            return TD_ENOMEM;
        if (mret == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || mret == MBEDTLS_ERR_PK_UNKNOWN_PK_ALG ||
            mret == MBEDTLS_ERR_PK_FEATURE_UNAVAILABLE)
            return TD_EUNSUPPORTED;
        return TD_EINVAL;
    }
    if (mbedtls_pk_get_type(&k->pk) != MBEDTLS_PK_RSA) {
        rc = TD_EUNSUPPORTED;
        goto fail;
    }
    if (mbedtls_rsa_check_privkey(mbedtls_pk_rsa(k->pk)) != 0) {
        rc = TD_EINVAL;
        goto fail;
    }
    k->ready = true;
    k->has_private = true;
    return 0;
fail:
    td__pk_reset(k);
    return rc;
}

int td_pk_parse_spki_der(struct td_pk *k, const uint8_t *der, size_t len)
{
    unsigned char *p = (unsigned char *)der;
    int mret, rc;

    if (k == NULL || k->ready || der == NULL || len == 0)
        return TD_EINVAL;
    /* mbedtls_pk_parse_subpubkey reads only SubjectPublicKeyInfo and never
     * writes through p (the cast is for its old prototype). */
    mret = mbedtls_pk_parse_subpubkey(&p, p + len, &k->pk);
    if (mret != 0) {
        td__pk_reset(k);
        if (mret == MBEDTLS_ERR_PK_ALLOC_FAILED)
            return TD_ENOMEM;
        if (mret == MBEDTLS_ERR_PK_UNKNOWN_PK_ALG)
            return TD_EUNSUPPORTED;
        return TD_EINVAL;
    }
    if (p != der + len) {
        rc = TD_EINVAL;
        goto fail;
    }
    if (mbedtls_pk_get_type(&k->pk) != MBEDTLS_PK_RSA) {
        rc = TD_EUNSUPPORTED;
        goto fail;
    }
    if (mbedtls_rsa_check_pubkey(mbedtls_pk_rsa(k->pk)) != 0) {
        rc = TD_EINVAL;
        goto fail;
    }
    k->ready = true;
    k->has_private = false;
    return 0;
fail:
    td__pk_reset(k);
    return rc;
}

int td_pk_write_private_der(struct td_pk *k, uint8_t *out, size_t cap, size_t *outlen)
{
    unsigned char *p;
    size_t n;
    int r;

    if (k == NULL || !k->ready || !k->has_private || out == NULL || outlen == NULL)
        return TD_EINVAL;
    /* mbedTLS writes RSAPrivateKey (PKCS#1) at the end of the buffer; wrap it
     * in front into PrivateKeyInfo (RFC 5208):
     *   SEQUENCE { INTEGER 0, AlgorithmIdentifier { rsaEncryption, NULL },
     *              OCTET STRING { RSAPrivateKey } } */
    r = mbedtls_pk_write_key_der(&k->pk, out, cap);
    if (r < 0)
        goto fail;
    n = (size_t)r;
    p = out + cap - n;
    if ((r = mbedtls_asn1_write_len(&p, out, n)) < 0)
        goto fail;
    n += (size_t)r;
    if ((r = mbedtls_asn1_write_tag(&p, out, MBEDTLS_ASN1_OCTET_STRING)) < 0)
        goto fail;
    n += (size_t)r;
    r = mbedtls_asn1_write_algorithm_identifier(&p, out, MBEDTLS_OID_PKCS1_RSA,
                                                MBEDTLS_OID_SIZE(MBEDTLS_OID_PKCS1_RSA), 0);
    if (r < 0)
        goto fail;
    n += (size_t)r;
    if ((r = mbedtls_asn1_write_int(&p, out, 0)) < 0)
        goto fail;
    n += (size_t)r;
    if ((r = mbedtls_asn1_write_len(&p, out, n)) < 0)
        goto fail;
    n += (size_t)r;
    r = mbedtls_asn1_write_tag(&p, out, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
    if (r < 0)
        goto fail;
    n += (size_t)r;
    memmove(out, p, n);
    /* Do not leave a second copy of the key behind the result. */
    mbedtls_platform_zeroize(out + n, cap - n);
    *outlen = n;
    return 0;
fail:
    mbedtls_platform_zeroize(out, cap);
    return td__pk_err(r);
}

int td_pk_write_private_pem(struct td_pk *k, char *out, size_t cap, size_t *outlen)
{
    uint8_t der[4096];
    size_t derlen = 0, olen = 0;
    int rc, mret;

    if (k == NULL || out == NULL || outlen == NULL)
        return TD_EINVAL;
    rc = td_pk_write_private_der(k, der, sizeof(der), &derlen);
    if (rc != 0)
        return rc;
    mret = mbedtls_pem_write_buffer("-----BEGIN PRIVATE KEY-----\n", "-----END PRIVATE KEY-----\n",
                                    der, derlen, (unsigned char *)out, cap, &olen);
    mbedtls_platform_zeroize(der, sizeof(der));
    if (mret != 0)
        return td__pk_err(mret);
    /* olen counts the NUL that mbedTLS appends. */
    *outlen = olen > 0 ? olen - 1 : 0;
    return 0;
}

int td_pk_write_spki_der(struct td_pk *k, uint8_t *out, size_t cap, size_t *outlen)
{
    int r;

    if (k == NULL || !k->ready || out == NULL || outlen == NULL)
        return TD_EINVAL;
    r = mbedtls_pk_write_pubkey_der(&k->pk, out, cap);
    if (r < 0)
        return td__pk_err(r);
    /* Written at the end of the buffer; move it to the front. */
    memmove(out, out + cap - (size_t)r, (size_t)r);
    *outlen = (size_t)r;
    return 0;
}

size_t td_pk_bits(const struct td_pk *k)
{
    if (k == NULL || !k->ready)
        return 0;
    return mbedtls_pk_get_bitlen(&k->pk);
}

bool td_pk_is_rsa(const struct td_pk *k, size_t bits, uint32_t exponent)
{
    mbedtls_mpi e;
    bool ok;

    if (k == NULL || !k->ready || mbedtls_pk_get_type(&k->pk) != MBEDTLS_PK_RSA)
        return false;
    if (mbedtls_pk_get_bitlen(&k->pk) != bits)
        return false;
    mbedtls_mpi_init(&e);
    ok = mbedtls_rsa_export(mbedtls_pk_rsa(k->pk), NULL, NULL, NULL, NULL, &e) == 0 &&
         mbedtls_mpi_cmp_int(&e, (mbedtls_mpi_sint)exponent) == 0;
    mbedtls_mpi_free(&e);
    return ok;
}

int td_pk_encrypt_pkcs1(struct td_pk *k, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                        size_t *outlen)
{
    size_t modlen, olen = 0;
    int mret;

    if (k == NULL || !k->ready || in == NULL || out == NULL || outlen == NULL)
        return TD_EINVAL;
    modlen = mbedtls_pk_get_len(&k->pk);
    if (len + 11 > modlen)
        return TD_EINVAL;
    if (cap < modlen)
        return TD_ETOOBIG;
    mret = mbedtls_pk_encrypt(&k->pk, in, len, out, &olen, cap, td__pk_rng, NULL);
    if (mret != 0)
        return td__pk_err(mret);
    *outlen = olen;
    return 0;
}

int td_pk_decrypt_pkcs1(struct td_pk *k, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                        size_t *outlen)
{
    size_t olen = 0;
    int mret;

    if (k == NULL || !k->ready || !k->has_private || in == NULL || out == NULL || outlen == NULL)
        return TD_EINVAL;
    if (len != mbedtls_pk_get_len(&k->pk))
        return TD_EINVAL;
    mret = mbedtls_pk_decrypt(&k->pk, in, len, out, &olen, cap, td__pk_rng, NULL);
    if (mret == MBEDTLS_ERR_RSA_OUTPUT_TOO_LARGE)
        return TD_ETOOBIG;
    if (mret != 0)
        return mret == MBEDTLS_ERR_PK_ALLOC_FAILED ? TD_ENOMEM : TD_ECRYPTO;
    *outlen = olen;
    return 0;
}
