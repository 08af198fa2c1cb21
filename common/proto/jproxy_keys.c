/* jProxy KSF key files (see jproxy_keys.h). */
#include "proto/jproxy_keys.h"

#include "crypto/crypto.h"
#include "crypto/crypto_stream.h"
#include "util/error.h"
#include "util/fs.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

/* Room for the PKCS#8 DER of any RSA key up to 4096 bits. */
#define JP__DER_BUF 4096

void jp_client_key_init(struct jp_client_key *ck)
{
    if (ck == NULL)
        return;
    memset(ck, 0, sizeof(*ck));
    td_pk_init(&ck->key);
}

void jp_client_key_free(struct jp_client_key *ck)
{
    if (ck == NULL)
        return;
    td_pk_free(&ck->key);
    mbedtls_platform_zeroize(ck->token, sizeof(ck->token));
}

void jp_user_init(struct jp_user *u)
{
    if (u == NULL)
        return;
    memset(u, 0, sizeof(*u));
    td_pk_init(&u->pub);
}

void jp_user_free(struct jp_user *u)
{
    if (u == NULL)
        return;
    free(u->name);
    u->name = NULL;
    u->name_len = 0;
    td_pk_free(&u->pub);
}

/* UTF-8 with 1- to 3-byte sequences only (the Basic Multilingual Plane,
 * where UTF-8 and Java's modified UTF-8 agree), no overlong forms, no
 * surrogates and no NUL. */
static bool jp__name_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    if (len == 0 || len > JP_USER_NAME_GEN_MAX)
        return false;
    while (i < len) {
        unsigned c = p[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= len || (p[i + 1] & 0xC0) != 0x80)
                return false;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            unsigned c1;
            if (i + 2 >= len || (p[i + 1] & 0xC0) != 0x80 || (p[i + 2] & 0xC0) != 0x80)
                return false;
            c1 = p[i + 1];
            if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0))
                return false;
            i += 3;
        } else {
            return false;
        }
    }
    return true;
}

static bool jp__key_ok(const struct td_pk *k)
{
    return td_pk_is_rsa(k, JP_RSA_BITS, JP_RSA_EXPONENT);
}

int jp_keys_generate(const char *name, struct jp_client_key *ck, struct jp_user *u)
{
    size_t nlen, n = 0;
    int rc;

    if (name == NULL || ck == NULL || u == NULL || ck->key.ready || u->pub.ready || u->name != NULL)
        return TD_EINVAL;
    nlen = strlen(name);
    if (!jp__name_valid(name, nlen))
        return TD_EINVAL;
    u->name = malloc(nlen + 1);
    if (u->name == NULL)
        return TD_ENOMEM;
    memcpy(u->name, name, nlen + 1);
    u->name_len = nlen;
    rc = td_random(u->salt, sizeof(u->salt));
    if (rc != 0)
        goto fail;
    rc = td_pk_generate_rsa(&ck->key, JP_RSA_BITS, JP_RSA_EXPONENT);
    if (rc != 0)
        goto fail;
    rc = td_pk_write_spki_der(&ck->key, u->spki, sizeof(u->spki), &n);
    if (rc == 0 && n != JP_SPKI_LEN)
        rc = TD_ECRYPTO;
    if (rc != 0)
        goto fail;
    rc = td_pk_parse_spki_der(&u->pub, u->spki, sizeof(u->spki));
    if (rc != 0)
        goto fail;
    rc = jp_token_compute(u->spki, sizeof(u->spki), u->salt, u->token);
    if (rc != 0)
        goto fail;
    memcpy(ck->token, u->token, JP_TOKEN_LEN);
    return 0;
fail:
    jp_client_key_free(ck);
    jp_client_key_init(ck);
    jp_user_free(u);
    jp_user_init(u);
    return rc;
}

/* ---- key.dat ------------------------------------------------------------- */

int jp_client_key_encode(struct jp_client_key *ck, uint8_t **out, size_t *len)
{
    uint8_t der[JP__DER_BUF];
    uint8_t *buf;
    size_t n = 0;
    int rc;

    if (ck == NULL || out == NULL || len == NULL || !ck->key.has_private)
        return TD_EINVAL;
    rc = td_pk_write_private_der(&ck->key, der, sizeof(der), &n);
    if (rc != 0)
        return rc;
    buf = malloc(4 + n + JP_TOKEN_LEN);
    if (buf == NULL) {
        rc = TD_ENOMEM;
        goto out;
    }
    buf[0] = (uint8_t)(n >> 24);
    buf[1] = (uint8_t)(n >> 16);
    buf[2] = (uint8_t)(n >> 8);
    buf[3] = (uint8_t)n;
    memcpy(buf + 4, der, n);
    memcpy(buf + 4 + n, ck->token, JP_TOKEN_LEN);
    *out = buf;
    *len = 4 + n + JP_TOKEN_LEN;
out:
    mbedtls_platform_zeroize(der, sizeof(der));
    return rc;
}

int jp_client_key_decode(const uint8_t *buf, size_t len, struct jp_client_key *ck)
{
    uint32_t l;
    int rc;

    if (buf == NULL || ck == NULL || ck->key.ready)
        return TD_EINVAL;
    if (len < 4)
        return TD_EPROTO;
    l = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    if (l < JP_KEY_DER_MIN || l > JP_KEY_DER_MAX || len - 4 < (size_t)l + JP_TOKEN_LEN)
        return TD_EPROTO;
    /* DER only: a SEQUENCE.  This also keeps the PEM path of the parser out. */
    if (buf[4] != 0x30)
        return TD_EPROTO;
    rc = td_pk_parse_private(&ck->key, buf + 4, l);
    if (rc == TD_EINVAL)
        return TD_EPROTO;
    if (rc != 0)
        return rc;
    if (!jp__key_ok(&ck->key)) {
        td_pk_free(&ck->key);
        return TD_EUNSUPPORTED;
    }
    memcpy(ck->token, buf + 4 + l, JP_TOKEN_LEN);
    return 0;
}

int jp_client_key_write(const char *path, struct jp_client_key *ck)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    if (path == NULL || ck == NULL)
        return TD_EINVAL;
    rc = jp_client_key_encode(ck, &buf, &len);
    if (rc != 0)
        return rc;
    rc = td_fs_write_file_private(path, buf, len);
    mbedtls_platform_zeroize(buf, len);
    free(buf);
    return rc;
}

int jp_client_key_read(const char *path, struct jp_client_key *ck)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    if (path == NULL || ck == NULL || ck->key.ready)
        return TD_EINVAL;
    rc = td_fs_read_file(path, JP_KEY_FILE_MAX, &buf, &len);
    if (rc != 0)
        return rc;
    rc = jp_client_key_decode(buf, len, ck);
    mbedtls_platform_zeroize(buf, len);
    free(buf);
    return rc;
}

/* ---- server user file ------------------------------------------------------ */

int jp_user_encode(const struct jp_user *u, uint8_t **out, size_t *len)
{
    uint8_t *buf;
    size_t total;

    if (u == NULL || out == NULL || len == NULL || u->name == NULL || u->name_len > 0xFFFF)
        return TD_EINVAL;
    total = 2 + u->name_len + JP_SALT_LEN + JP_SPKI_LEN;
    buf = malloc(total);
    if (buf == NULL)
        return TD_ENOMEM;
    buf[0] = (uint8_t)(u->name_len >> 8);
    buf[1] = (uint8_t)u->name_len;
    memcpy(buf + 2, u->name, u->name_len);
    memcpy(buf + 2 + u->name_len, u->salt, JP_SALT_LEN);
    memcpy(buf + 2 + u->name_len + JP_SALT_LEN, u->spki, JP_SPKI_LEN);
    *out = buf;
    *len = total;
    return 0;
}

int jp_user_decode(const uint8_t *buf, size_t len, struct jp_user *u)
{
    size_t n;
    const uint8_t *p;
    int rc;

    if (buf == NULL || u == NULL || u->name != NULL || u->pub.ready)
        return TD_EINVAL;
    if (len < 2)
        return TD_EPROTO;
    n = (size_t)buf[0] << 8 | buf[1];
    if (len != 2 + n + JP_SALT_LEN + JP_SPKI_LEN)
        return TD_EPROTO;
    if (memchr(buf + 2, 0, n) != NULL)
        return TD_EPROTO;
    p = buf + 2 + n;
    rc = td_pk_parse_spki_der(&u->pub, p + JP_SALT_LEN, JP_SPKI_LEN);
    if (rc == TD_EINVAL)
        return TD_EPROTO;
    if (rc != 0)
        return rc;
    if (!jp__key_ok(&u->pub)) {
        rc = TD_EUNSUPPORTED;
        goto fail;
    }
    u->name = malloc(n + 1);
    if (u->name == NULL) {
        rc = TD_ENOMEM;
        goto fail;
    }
    memcpy(u->name, buf + 2, n);
    u->name[n] = '\0';
    u->name_len = n;
    memcpy(u->salt, p, JP_SALT_LEN);
    memcpy(u->spki, p + JP_SALT_LEN, JP_SPKI_LEN);
    rc = jp_token_compute(u->spki, JP_SPKI_LEN, u->salt, u->token);
    if (rc != 0)
        goto fail;
    return 0;
fail:
    jp_user_free(u);
    jp_user_init(u);
    return rc;
}

int jp_user_write(const char *path, const struct jp_user *u)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    if (path == NULL || u == NULL)
        return TD_EINVAL;
    rc = jp_user_encode(u, &buf, &len);
    if (rc != 0)
        return rc;
    rc = td_fs_write_file_private(path, buf, len);
    free(buf);
    return rc;
}

int jp_user_read(const char *path, struct jp_user *u)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    if (path == NULL || u == NULL || u->name != NULL || u->pub.ready)
        return TD_EINVAL;
    rc = td_fs_read_file(path, JP_USER_FILE_MAX, &buf, &len);
    if (rc != 0)
        return rc;
    rc = jp_user_decode(buf, len, u);
    free(buf);
    return rc;
}

void jp_user_file_name(const uint8_t token[JP_TOKEN_LEN], char out[JP_USER_FILE_NAME_LEN + 1])
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < JP_TOKEN_LEN; i++) {
        out[2 * i] = hex[token[i] >> 4];
        out[2 * i + 1] = hex[token[i] & 15];
    }
    memcpy(out + 2 * JP_TOKEN_LEN, ".dat", 5);
}

bool jp_user_token_eq(const struct jp_user *u, const uint8_t token[JP_TOKEN_LEN])
{
    if (u == NULL || token == NULL || u->name == NULL)
        return false;
    return td_ct_memeq(u->token, token, JP_TOKEN_LEN);
}
