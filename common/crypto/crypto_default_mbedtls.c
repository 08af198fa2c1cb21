/* This build's symmetric crypto: mbedTLS only (-DTUNNELD_CRYPTO=mbedtls,
 * Windows, or no OpenSSL). */
#include "crypto/backend.h"

const struct td_crypto_backend *td_crypto_default_backend(void)
{
    return &td_crypto_mbedtls;
}

const struct td_crypto_backend *const *td_crypto_backends(void)
{
    static const struct td_crypto_backend *const all[] = {&td_crypto_mbedtls, NULL};
    return all;
}
