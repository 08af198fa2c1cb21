/* This build's symmetric crypto: OpenSSL's libcrypto (-DTUNNELD_CRYPTO=openssl);
 * the mbedTLS backend stays in for the tests and the differential fuzzer. */
#include "crypto/backend.h"

const struct td_crypto_backend *td_crypto_default_backend(void)
{
    return &td_crypto_openssl;
}

const struct td_crypto_backend *const *td_crypto_backends(void)
{
    static const struct td_crypto_backend *const all[] = {&td_crypto_openssl, &td_crypto_mbedtls,
                                                          NULL};
    return all;
}
