#include "crypto/crypto.h"

#include "util/error.h"

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include <stdlib.h>
#include <string.h>

bool td_ct_memeq(const void *a, const void *b, size_t len)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t acc = 0;
    for (size_t i = 0; i < len; i++)
        acc |= (uint8_t)(x[i] ^ y[i]);
    return acc == 0;
}

void td_wipe(void *p, size_t n)
{
    if (p && n)
        mbedtls_platform_zeroize(p, n);
}

void td_wipe_free_str(char *s)
{
    if (!s)
        return;
    td_wipe(s, strlen(s));
    free(s);
}

int td_sha256(const void *data, size_t len, uint8_t out[TD_SHA256_LEN])
{
    return mbedtls_sha256_ret(data, len, out, 0) == 0 ? 0 : TD_ECRYPTO;
}

bool td_ct_secret_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    uint8_t ha[TD_SHA256_LEN], hb[TD_SHA256_LEN];
    if (td_sha256(a, alen, ha) != 0 || td_sha256(b, blen, hb) != 0)
        return false;
    return td_ct_memeq(ha, hb, sizeof(ha));
}
