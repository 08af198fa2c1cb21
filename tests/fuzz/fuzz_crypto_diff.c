/* Differential fuzzing of the symmetric-crypto backends (common/crypto/
 * backend.h): OpenSSL's libcrypto and mbedTLS must give the same bytes for
 * the same keys, IVs, offsets and lengths, through the public API that the
 * protocols use.
 *
 * Input: one flags byte (bit 0: AES-256 for CTR), a 32-byte key (the first
 * 16 for AES-128 and ECB), a 16-byte IV (so counters near 2^128 wrap), then
 * operations, each one byte of kind and a 2-byte big-endian length:
 *   0  CTR xor of the next len input bytes (fewer at the end of the input)
 *   1  CTR skip of len bytes
 *   2  CTR xor in place of len bytes of the running output
 *   3  ECB encrypt (PKCS#7) of the next len bytes, then decrypt it back
 *   4  ECB decrypt of the next len bytes (whatever they are: both backends
 *      must accept or refuse alike)
 *   5  HMAC update with the next len bytes
 *   6  HMAC final (and re-arm)
 * Every result is compared byte for byte; a difference traps. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/backend.h"
#include "crypto/crypto_pk.h"
#include "crypto/crypto_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define MAX_OP (8 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct td_crypto_backend *a = &td_crypto_openssl, *b = &td_crypto_mbedtls;
    struct td_ctr ca, cb;
    struct td_aes_ecb ea, eb;
    struct td_hmac_sha1 ha, hb;
    static uint8_t oa[MAX_OP + 16], ob[MAX_OP + 16], ra[MAX_OP + 16], rb[MAX_OP + 16];
    size_t keylen;
    int r1, r2;

    if (size < 1 + 32 + 16)
        return 0;
    keylen = (data[0] & 1) ? 32 : 16;
    CHECK(td_ctr_init_be(&ca, a, data + 1, keylen, data + 33) == 0);
    CHECK(td_ctr_init_be(&cb, b, data + 1, keylen, data + 33) == 0);
    CHECK(td_aes_ecb_init_be(&ea, a, data + 1) == 0);
    CHECK(td_aes_ecb_init_be(&eb, b, data + 1) == 0);
    CHECK(td_hmac_sha1_init_be(&ha, a, data + 1, keylen) == 0);
    CHECK(td_hmac_sha1_init_be(&hb, b, data + 1, keylen) == 0);
    data += 49;
    size -= 49;
    while (size >= 3) {
        uint8_t kind = data[0] % 7;
        size_t len = ((size_t)data[1] << 8 | data[2]) % (MAX_OP + 1), n, la = 0, lb = 0;
        data += 3;
        size -= 3;
        n = len < size ? len : size;
        switch (kind) {
        case 0:
            CHECK(td_ctr_xor(&ca, data, oa, n) == 0);
            CHECK(td_ctr_xor(&cb, data, ob, n) == 0);
            CHECK(memcmp(oa, ob, n) == 0);
            break;
        case 1:
            CHECK(td_ctr_skip(&ca, len) == 0);
            CHECK(td_ctr_skip(&cb, len) == 0);
            break;
        case 2:
            /* oa == ob here (every earlier op left them equal). */
            CHECK(td_ctr_xor(&ca, oa, oa, len) == 0);
            CHECK(td_ctr_xor(&cb, ob, ob, len) == 0);
            CHECK(memcmp(oa, ob, len) == 0);
            n = 0;
            break;
        case 3:
            CHECK(td_aes_ecb_encrypt_pad(&ea, data, n, oa, sizeof(oa), &la) == 0);
            CHECK(td_aes_ecb_encrypt_pad(&eb, data, n, ob, sizeof(ob), &lb) == 0);
            CHECK(la == lb && memcmp(oa, ob, la) == 0);
            CHECK(td_aes_ecb_decrypt_unpad(&ea, oa, la, ra, sizeof(ra), &la) == 0);
            CHECK(td_aes_ecb_decrypt_unpad(&eb, ob, lb, rb, sizeof(rb), &lb) == 0);
            CHECK(la == n && lb == n && memcmp(ra, data, n) == 0 && memcmp(rb, data, n) == 0);
            break;
        case 4:
            r1 = td_aes_ecb_decrypt_unpad(&ea, data, n, ra, sizeof(ra), &la);
            r2 = td_aes_ecb_decrypt_unpad(&eb, data, n, rb, sizeof(rb), &lb);
            CHECK(r1 == r2);
            if (r1 == 0)
                CHECK(la == lb && memcmp(ra, rb, la) == 0);
            break;
        case 5:
            CHECK(td_hmac_sha1_update(&ha, data, n) == 0);
            CHECK(td_hmac_sha1_update(&hb, data, n) == 0);
            break;
        case 6:
            CHECK(td_hmac_sha1_final(&ha, ra) == 0);
            CHECK(td_hmac_sha1_final(&hb, rb) == 0);
            CHECK(memcmp(ra, rb, TD_SHA1_LEN) == 0);
            n = 0;
            break;
        }
        if (kind != 1) {
            data += n;
            size -= n;
        }
        /* Keep the running outputs equal for op 2. */
        memcpy(ob, oa, sizeof(oa));
    }
    /* The keystreams must still agree after everything above. */
    memset(oa, 0, 64);
    memset(ob, 0, 64);
    CHECK(td_ctr_xor(&ca, oa, oa, 64) == 0);
    CHECK(td_ctr_xor(&cb, ob, ob, 64) == 0);
    CHECK(memcmp(oa, ob, 64) == 0);
    td_ctr_free(&ca);
    td_ctr_free(&cb);
    td_aes_ecb_free(&ea);
    td_aes_ecb_free(&eb);
    td_hmac_sha1_free(&ha);
    td_hmac_sha1_free(&hb);
    return 0;
}
