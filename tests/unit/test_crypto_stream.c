/* Crypto wrappers: AES-CTR against NIST SP 800-38A, stream continuity and
 * skipping, SHA-1 and HMAC-SHA1 (RFC 2202), PBKDF2-HMAC-SHA256 and scrypt
 * (RFC 7914), td_random. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/backend.h"

#include "crypto/crypto.h"
#include "crypto/crypto_stream.h"
#include "util/error.h"

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = hex; *p != '\0';) {
        unsigned v;
        if (*p == ' ') {
            p++;
            continue;
        }
        assert_true(n < cap);
        assert_int_equal(sscanf(p, "%2x", &v), 1);
        out[n++] = (uint8_t)v;
        p += 2;
    }
    return n;
}

static void assert_hex(const uint8_t *got, size_t len, const char *hex)
{
    uint8_t want[256];
    size_t n = unhex(hex, want, sizeof(want));
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
}

/* NIST SP 800-38A F.5.1 CTR-AES128.Encrypt (and F.5.5 for AES-256). */
static const char F5_PT[] = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51"
                            "30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710";
static const char F5_IV[] = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

static void test_ctr_nist(void **state)
{
    struct td_ctr c;
    uint8_t key[32], iv[16], pt[64], buf[64];
    size_t kl;
    (void)state;

    unhex(F5_PT, pt, sizeof(pt));
    unhex(F5_IV, iv, sizeof(iv));
    kl = unhex("2b7e151628aed2a6abf7158809cf4f3c", key, sizeof(key));
    assert_int_equal(td_ctr_init(&c, key, kl, iv), 0);
    assert_int_equal(td_ctr_xor(&c, pt, buf, sizeof(pt)), 0);
    assert_hex(buf, 64,
               "874d6191b620e3261bef6864990db6ce 9806f66b7970fdff8617187bb9fffdff"
               "5ae4df3edbd5d35e5b4f09020db03eab 1e031dda2fbe03d1792170a0f3009cee");
    td_ctr_free(&c);

    kl = unhex("603deb1015ca71be2b73aef0857d7781 1f352c073b6108d72d9810a30914dff4", key,
               sizeof(key));
    assert_int_equal(td_ctr_init(&c, key, kl, iv), 0);
    memcpy(buf, pt, sizeof(pt));
    assert_int_equal(td_ctr_xor(&c, buf, buf, sizeof(buf)), 0); /* in place */
    assert_hex(buf, 64,
               "601ec313775789a5b7a7f504bbf3d228 f443e3ca4d62b59aca84e990cacaf5c5"
               "2b0930daa23de94ce87017ba2d84988d dfc9c58db67aada613c2dd08457941a6");
    td_ctr_free(&c);
    td_ctr_free(&c); /* harmless twice */

    assert_int_equal(td_ctr_init(&c, key, 24, iv), TD_EINVAL);
}

static void test_ctr_continuity(void **state)
{
    static const size_t pieces[] = {1, 15, 2, 31, 16, 3, 33, 7, 64, 5, 0, 17, 100, 1, 1, 1, 211};
    struct td_ctr one, many;
    uint8_t key[16], iv[16], in[512], a[512], b[512];
    size_t off = 0;
    (void)state;

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 7 + 3);
    memset(key, 0x42, sizeof(key));
    /* Start near the top of the counter so the 2^128 wrap happens inside. */
    memset(iv, 0xff, sizeof(iv));
    iv[15] = 0xf8;
    assert_int_equal(td_ctr_init(&one, key, 16, iv), 0);
    assert_int_equal(td_ctr_init(&many, key, 16, iv), 0);
    assert_int_equal(td_ctr_xor(&one, in, a, sizeof(in)), 0);
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]) && off < sizeof(in); i++) {
        size_t n = pieces[i];
        if (n > sizeof(in) - off)
            n = sizeof(in) - off;
        assert_int_equal(td_ctr_xor(&many, in + off, b + off, n), 0);
        off += n;
    }
    assert_int_equal(td_ctr_xor(&many, in + off, b + off, sizeof(in) - off), 0);
    assert_memory_equal(a, b, sizeof(in));
    td_ctr_free(&one);
    td_ctr_free(&many);
}

static void test_ctr_skip(void **state)
{
    /* Skipping n bytes then encrypting equals encrypting everything. */
    static const size_t skips[] = {0, 1, 5, 11, 16, 17, 32, 40, 100, 257};
    uint8_t key[32], iv[16], zero[600] = {0}, ref[600], got[600];
    (void)state;

    memset(key, 0x17, sizeof(key));
    memset(iv, 0xff, sizeof(iv));
    iv[15] = 0xfa;
    for (size_t pre = 0; pre < 20; pre += 3) {
        for (size_t i = 0; i < sizeof(skips) / sizeof(skips[0]); i++) {
            struct td_ctr r, s;
            size_t k = skips[i];
            assert_int_equal(td_ctr_init(&r, key, 32, iv), 0);
            assert_int_equal(td_ctr_init(&s, key, 32, iv), 0);
            assert_int_equal(td_ctr_xor(&r, zero, ref, pre + k + 50), 0);
            assert_int_equal(td_ctr_xor(&s, zero, got, pre), 0);
            assert_int_equal(td_ctr_skip(&s, k), 0);
            assert_int_equal(td_ctr_xor(&s, zero, got + pre + k, 50), 0);
            assert_memory_equal(ref + pre + k, got + pre + k, 50);
            td_ctr_free(&r);
            td_ctr_free(&s);
        }
    }
}

static void test_sha1_hmac(void **state)
{
    uint8_t d[TD_SHA1_LEN], key[80];
    struct td_hmac_sha1 h;
    (void)state;

    assert_int_equal(td_sha1("abc", 3, d), 0);
    assert_hex(d, 20, "a9993e364706816aba3e25717850c26c9cd0d89d");

    /* RFC 2202 test cases 1, 2 and 6. */
    memset(key, 0x0b, 20);
    assert_int_equal(td_hmac_sha1(key, 20, "Hi There", 8, d), 0);
    assert_hex(d, 20, "b617318655057264e28bc0b6fb378c8ef146be00");
    assert_int_equal(
        td_hmac_sha1((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, d), 0);
    assert_hex(d, 20, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    memset(key, 0xaa, 80);
    assert_int_equal(
        td_hmac_sha1(key, 80, "Test Using Larger Than Block-Size Key - Hash Key First", 54, d), 0);
    assert_hex(d, 20, "aa4ae5e15272d00e95705637ce8a3b55ed402112");

    /* The context gives the same tags, message after message. */
    assert_int_equal(td_hmac_sha1_init(&h, (const uint8_t *)"Jefe", 4), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(td_hmac_sha1_update(&h, "what do ya ", 11), 0);
        assert_int_equal(td_hmac_sha1_update(&h, "want for nothing?", 17), 0);
        assert_int_equal(td_hmac_sha1_final(&h, d), 0);
        assert_hex(d, 20, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }
    td_hmac_sha1_free(&h);
    td_hmac_sha1_free(&h);
}

static void test_pbkdf2(void **state)
{
    uint8_t out[64];
    (void)state;
    /* RFC 7914 section 11. */
    assert_int_equal(
        td_pbkdf2_sha256((const uint8_t *)"passwd", 6, (const uint8_t *)"salt", 4, 1, out, 64), 0);
    assert_hex(out, 64,
               "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
               "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
    assert_int_equal(td_pbkdf2_sha256((const uint8_t *)"p", 1, NULL, 0, 0, out, 64), TD_EINVAL);
}

static void test_scrypt_rfc7914(void **state)
{
    uint8_t out[64];
    (void)state;
    /* RFC 7914 section 12 (the N = 1048576 vector is left out: 1 GiB). */
    assert_int_equal(td_scrypt(NULL, 0, NULL, 0, 16, 1, 1, out, 64), 0);
    assert_hex(out, 64,
               "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
               "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906");
    assert_int_equal(
        td_scrypt((const uint8_t *)"password", 8, (const uint8_t *)"NaCl", 4, 1024, 8, 16, out, 64),
        0);
    assert_hex(out, 64,
               "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
               "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
    assert_int_equal(td_scrypt((const uint8_t *)"pleaseletmein", 13,
                               (const uint8_t *)"SodiumChloride", 14, 16384, 8, 1, out, 64),
                     0);
    assert_hex(out, 64,
               "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
               "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887");
}

static void test_scrypt_params(void **state)
{
    uint8_t out[32];
    (void)state;
    assert_int_equal(td_scrypt(NULL, 0, NULL, 0, 0, 1, 1, out, 32), TD_EINVAL);
    assert_int_equal(td_scrypt(NULL, 0, NULL, 0, 1, 1, 1, out, 32), TD_EINVAL);
    assert_int_equal(td_scrypt(NULL, 0, NULL, 0, 24, 1, 1, out, 32), TD_EINVAL);
    assert_int_equal(td_scrypt(NULL, 0, NULL, 0, 16, 0, 1, out, 32), TD_EINVAL);
    assert_int_equal(td_scrypt(NULL, 0, NULL, 0, 16, 1, 0, out, 32), TD_EINVAL);
    assert_int_equal(td_scrypt(NULL, 0, NULL, 0, 1u << 16, 1, 1, out, 32), TD_EINVAL);
    assert_int_equal(td_scrypt(NULL, 0, NULL, 0, (uint64_t)1 << 32, 8, 1, out, 32), TD_EINVAL);
    assert_int_equal(td_scrypt(NULL, 0, NULL, 0, 1u << 20, 16, 1, out, 32), TD_ELIMIT);
    assert_int_equal(td_scrypt(NULL, 0, NULL, 0, 16, 1 << 15, 1 << 15, out, 32), TD_EINVAL);
    assert_int_equal(td_scrypt(NULL, 0, NULL, 0, 16, 1, 1, out, 0), TD_EINVAL);
}

static void test_random(void **state)
{
    uint8_t a[3000], b[3000];
    (void)state;
    assert_int_equal(td_random(a, sizeof(a)), 0); /* > one DRBG request */
    assert_int_equal(td_random(b, sizeof(b)), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(td_random(NULL, 0), 0);
    assert_int_equal(td_random(NULL, 1), TD_EINVAL);
}

static void test_wipe(void **state)
{
    uint8_t buf[37];
    (void)state;
    memset(buf, 0xa5, sizeof(buf));
    td_wipe(buf + 1, sizeof(buf) - 2);
    assert_int_equal(buf[0], 0xa5);
    assert_int_equal(buf[sizeof(buf) - 1], 0xa5);
    for (size_t i = 1; i < sizeof(buf) - 1; i++)
        assert_int_equal(buf[i], 0);
    td_wipe(NULL, 10);
    td_wipe(buf, 0);
    assert_int_equal(buf[0], 0xa5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctr_nist),      cmocka_unit_test(test_ctr_continuity),
        cmocka_unit_test(test_ctr_skip),      cmocka_unit_test(test_sha1_hmac),
        cmocka_unit_test(test_pbkdf2),        cmocka_unit_test(test_scrypt_rfc7914),
        cmocka_unit_test(test_scrypt_params), cmocka_unit_test(test_random),
        cmocka_unit_test(test_wipe),
    };
    const struct td_crypto_backend *const *be;
    int failed = 0;

    /* The same vectors through every symmetric-crypto backend of this build
     * (OpenSSL and mbedTLS, or mbedTLS alone). */
    for (be = td_crypto_backends(); *be; be++) {
        print_message("crypto backend: %s\n", (*be)->name);
        td_crypto_use(*be);
        failed += _cmocka_run_group_tests((*be)->name, tests, sizeof(tests) / sizeof(tests[0]),
                                          NULL, NULL);
    }
    td_crypto_use(NULL);
    return failed;
}
