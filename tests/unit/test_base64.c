/* Base64: RFC 4648 section 10 vectors, the URL alphabet and strict
 * decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/base64.h"
#include "util/error.h"

struct vec {
    const char *plain;
    const char *b64;
};

static const struct vec rfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void test_encode_rfc4648(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        char out[64];
        size_t n = td_base64_encode((const uint8_t *)rfc4648[i].plain, strlen(rfc4648[i].plain),
                                    out, sizeof(out));
        assert_int_equal(n, strlen(rfc4648[i].b64));
        assert_string_equal(out, rfc4648[i].b64);
        assert_int_equal(n, TD_BASE64_ENCODED_LEN(strlen(rfc4648[i].plain)));
    }
}

static void test_decode_rfc4648(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        uint8_t out[64];
        size_t n = 99;
        assert_int_equal(
            td_base64_decode(rfc4648[i].b64, strlen(rfc4648[i].b64), out, sizeof(out), &n), 0);
        assert_int_equal(n, strlen(rfc4648[i].plain));
        assert_memory_equal(out, rfc4648[i].plain, n);
    }
}

static void test_encode_cap(void **state)
{
    char out[8];
    (void)state;
    /* Exactly enough room: no NUL, but the characters are written. */
    memset(out, 'X', sizeof(out));
    assert_int_equal(td_base64_encode((const uint8_t *)"foobar", 6, out, 8), 8);
    assert_memory_equal(out, "Zm9vYmFy", 8);
    /* Too little room. */
    assert_int_equal(td_base64_encode((const uint8_t *)"foobar", 6, out, 7), 0);
    assert_int_equal(td_base64_encode((const uint8_t *)"f", 1, out, 3), 0);
}

static void test_url_encode(void **state)
{
    const uint8_t in[] = {0xfb, 0xff, 0xbf, 0xfe};
    char out[16];
    (void)state;
    assert_int_equal(td_base64_encode(in, sizeof(in), out, sizeof(out)), 8);
    assert_string_equal(out, "+/+//g==");
    assert_int_equal(td_base64url_encode(in, sizeof(in), true, out, sizeof(out)), 8);
    assert_string_equal(out, "-_-__g==");
    assert_int_equal(td_base64url_encode(in, sizeof(in), false, out, sizeof(out)), 6);
    assert_string_equal(out, "-_-__g");
    assert_int_equal(td_base64url_encode((const uint8_t *)"fo", 2, false, out, sizeof(out)), 3);
    assert_string_equal(out, "Zm8");
    assert_int_equal(td_base64url_encode((const uint8_t *)"fo", 2, false, out, 3), 3);
    assert_int_equal(td_base64url_encode((const uint8_t *)"fo", 2, false, out, 2), 0);
}

static void test_url_decode(void **state)
{
    uint8_t out[16];
    size_t n;
    const uint8_t want[] = {0xfb, 0xff, 0xbf, 0xfe};
    (void)state;
    assert_int_equal(td_base64url_decode("-_-__g==", 8, out, sizeof(out), &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(out, want, 4);
    assert_int_equal(td_base64url_decode("-_-__g", 6, out, sizeof(out), &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(out, want, 4);
    for (size_t i = 1; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        /* Unpadded forms of the RFC vectors. */
        const char *b = rfc4648[i].b64;
        size_t len = strlen(b);
        while (len > 0 && b[len - 1] == '=')
            len--;
        assert_int_equal(td_base64url_decode(b, len, out, sizeof(out), &n), 0);
        assert_int_equal(n, strlen(rfc4648[i].plain));
        assert_memory_equal(out, rfc4648[i].plain, n);
    }
    /* The standard alphabet's + and / are not URL-safe characters. */
    assert_int_equal(td_base64url_decode("+/+//g==", 8, out, sizeof(out), &n), TD_EINVAL);
    /* Nor are - and _ standard ones. */
    assert_int_equal(td_base64_decode("-_-__g==", 8, out, sizeof(out), &n), TD_EINVAL);
    /* Partial padding. */
    assert_int_equal(td_base64url_decode("Zg=", 3, out, sizeof(out), &n), TD_EINVAL);
    assert_int_equal(td_base64url_decode("Z", 1, out, sizeof(out), &n), TD_EINVAL);
    assert_int_equal(td_base64url_decode("Zm9vY", 5, out, sizeof(out), &n), TD_EINVAL);
}

static void test_decode_strict(void **state)
{
    uint8_t out[16];
    size_t n;
    static const char *const bad[] = {
        "Zg",       /* standard alphabet requires padding */
        "Zg=",      /* short padding */
        "Zg===",    /* too much padding */
        "Z===",     /* three pad characters */
        "====",     /* only padding */
        "Zh==",     /* non-zero trailing bits (canonical is Zg==) */
        "Zm9=",     /* non-zero trailing bits (canonical is Zm8=) */
        "Zm=v",     /* padding in the middle */
        "Zg==Zg==", /* padding then more data */
        "Zm9v\n",   /* whitespace */
        "Zm 9v",    /* space */
        "Zm9*",     /* bad character */
        "A",        /* length 1 mod 4 */
        "AAAAA",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(td_base64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n), TD_EINVAL);
    /* A NUL is a bad character too. */
    assert_int_equal(td_base64_decode("Zm\0v", 4, out, sizeof(out), &n), TD_EINVAL);
    /* High bytes. */
    assert_int_equal(td_base64_decode("Zm\xc3v", 4, out, sizeof(out), &n), TD_EINVAL);
    /* url variant: non-canonical bits without padding, and padding in the middle. */
    assert_int_equal(td_base64url_decode("Zh", 2, out, sizeof(out), &n), TD_EINVAL);
    assert_int_equal(td_base64url_decode("Zg==Zg", 6, out, sizeof(out), &n), TD_EINVAL);
}

static void test_decode_cap(void **state)
{
    uint8_t out[6];
    size_t n;
    (void)state;
    assert_int_equal(td_base64_decode("Zm9vYmFy", 8, out, 6, &n), 0);
    assert_int_equal(n, 6);
    assert_int_equal(td_base64_decode("Zm9vYmFy", 8, out, 5, &n), TD_ETOOBIG);
    assert_int_equal(td_base64_decode("Zm9vYg==", 8, out, 4, &n), 0);
    assert_int_equal(td_base64_decode("Zm9vYg==", 8, out, 3, &n), TD_ETOOBIG);
    assert_int_equal(td_base64_decode("", 0, NULL, 0, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(td_base64_decode("Zg==", 4, out, sizeof(out), NULL), TD_EINVAL);
}

static void test_roundtrip_all_lengths(void **state)
{
    uint8_t in[64], back[64];
    char enc[128];
    (void)state;
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(in); len++) {
        for (int url = 0; url < 2; url++) {
            for (int pad = 0; pad < 2; pad++) {
                size_t n, m;
                if (!url && !pad)
                    continue;
                n = url ? td_base64url_encode(in, len, pad, enc, sizeof(enc))
                        : td_base64_encode(in, len, enc, sizeof(enc));
                if (len > 0)
                    assert_true(n > 0);
                assert_int_equal(enc[n], '\0');
                assert_int_equal(url ? td_base64url_decode(enc, n, back, sizeof(back), &m)
                                     : td_base64_decode(enc, n, back, sizeof(back), &m),
                                 0);
                assert_int_equal(m, len);
                assert_memory_equal(back, in, len);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_rfc4648), cmocka_unit_test(test_decode_rfc4648),
        cmocka_unit_test(test_encode_cap),     cmocka_unit_test(test_url_encode),
        cmocka_unit_test(test_url_decode),     cmocka_unit_test(test_decode_strict),
        cmocka_unit_test(test_decode_cap),     cmocka_unit_test(test_roundtrip_all_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
