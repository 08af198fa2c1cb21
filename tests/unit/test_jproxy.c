/* jProxy v3: every test vector of spec section 11 (handshake, tokens, RSA
 * transport of K, the seven frames), the KSF files, and strict parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto/backend.h"

#include "util/base64.h"
#include "crypto/crypto_pk.h"
#include "util/error.h"
#include "util/fs.h"
#include "proto/jproxy.h"
#include "proto/jproxy_keys.h"

/* ---- helpers ----------------------------------------------------------------- */

/* Hex to bytes, skipping spaces; returns the byte count. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int v = 0;
        if (*s == ' ' || *s == '\n')
            continue;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            v = *s - 'A' + 10;
        else
            fail_msg("bad hex char %c", *s);
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    assert_int_equal(hi, -1);
    return n;
}

/* Out-parameter rather than a return value: gcc 12's -Wdangling-pointer
 * misreads the inlined address-of-local otherwise. */
static void read_vector(const char *name, uint8_t **buf, size_t *len)
{
    char path[1024];
    *buf = NULL;
    snprintf(path, sizeof(path), "%s/jproxy/%s", TD_VECTORS_DIR, name);
    assert_int_equal(td_fs_read_file(path, 65536, buf, len), 0);
}

static void load_test_key(struct td_pk *k)
{
    size_t len;
    uint8_t *pem;
    read_vector("test_key_2048.pem", &pem, &len);
    td_pk_init(k);
    assert_int_equal(td_pk_parse_private(k, pem, len), 0);
    free(pem);
    assert_true(td_pk_is_rsa(k, 2048, 65537));
}

static void salt_vector(uint8_t salt[JP_SALT_LEN])
{
    for (int i = 0; i < JP_SALT_LEN; i++)
        salt[i] = (uint8_t)i;
}

static const uint8_t vec_key[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* Spec 11.2. */
static const char spki512_hex[] = "305c300d06092a864886f70d0101010500034b003048024100b11c2805735325"
                                  "a6d0f81ac4750c2db4bcb17dce48b605651c0dfe6806ca79ed8b21b556029505"
                                  "ce25e58f8536d7adc44b927533896bfe94183494b3b3ce87db0203010001";
static const char token512_hex[] =
    "f749a962c4fbd5ce85b7c8f7cd231cb04ac1d9eb5d354f3e39c7b18e6f0d8316";
static const char spki2048_hex[] =
    "30820122300d06092a864886f70d01010105000382010f003082010a02820101"
    "00e73a0458e6b98ff256b5931df2df4dd72632a24a12a65f5a485c4dbdf2bf49"
    "80fb1f7c69f0e52997f51735fe5c919167b0695a937c1b6962a948f57464b7ca"
    "3ca230f12d385760bda85ccfe2ea3b1b68fabf2c2d0da16d41116a9939aa6ff3"
    "2337e5453b03b48704c1058fa4843be6a63ade6692ff71622f9a5b200abafda0"
    "62f2f21a9e0c2f4d9fdf03982663f6a724343fc29358ea4f17f236b869e7f625"
    "61ed060f198e9a80502e59238a20603c985757f45d263bf169c782b7fcbe3bfe"
    "8e0d9b4c73baa34e28eef6ada70836c5eefbdb6cbaf461c3ad8d99a57ab89c5c"
    "44e428a5bf44eb6580f80d1d97ccf0317d9cbaec72d4669acbc32067c094943f"
    "af0203010001";
static const char token2048_hex[] =
    "098948d9b6b0650fecea8da081c6b02fb9cd06854ba75f7dcf235f605ff65f8c";
/* Spec 11.3. */
static const char rsa_ct_hex[] = "24d564df22d36a6d4537e6864d107520a2e3b174e4231cc6825e590fd7148ebe"
                                 "26546a9991a9ae5dcea1a6c85287ddec18da0f23150fe1762d151723b1daead8"
                                 "5b064f9c16c4bb09f863e7c813887eaabe140109996b78f70d88a9780d67dde2"
                                 "23728badec4e3cef223f0be9b6d258dd2c9a4ef8e0a0be74878c3acb7ed44052"
                                 "212027821c63f394d7d2c75ac70dc904d3eb453423bf8f8f1391bd9303e25eb7"
                                 "598d69ae940f735302114319e7ab5994e6905967bf73646dda95155e57cce3a9"
                                 "9862a85b606633e035a17dc083d64a30b9b5efb73e39dd511314f5acf822815a"
                                 "7929caef239de84a2839ab4418973b71ec9e2f052180264a123c08dd9eddfdd7";

/* Spec 11.4: plaintext message, wire frame, direction. */
static const struct {
    const char *msg;
    const char *frame;
    enum jp_dir dir;
} frames[] = {
    {"01 0001 0050 01 04 7f000001", "01 5c2ed1ac1d4aeebac7157377865df15a", JP_DIR_C2S},
    {"01 0002 1f40 03 09 6c6f63616c686f7374",
     "02 c310cbbc4d4f35fe3e04fa0af0c523e8 954f64f2e4e86e9eee82d20216684899", JP_DIR_C2S},
    {"01 0001 00 0005", "01 e75f53ad7db4dcbec4c3d5d41e732a5f", JP_DIR_S2C},
    {"01 0001 02 0065", "01 fb7ff1a26719671916bf2250a5ff6a4a", JP_DIR_S2C},
    {"21 0001 0012 474554202f20485454502f312e300d0a0d0a",
     "02 c7904a8a8bc3a13fe9084885eb7b4a55 fa2f6b228e89a93b4c4e4d470bcd6b13", JP_DIR_C2S},
    {"41 0001 04", "01 d4cf3542850667f06a356a558d9db09e", JP_DIR_S2C},
    {"41 0001 04 00", "01 909e80d74003a6be096df5ac8ce37278", JP_DIR_C2S},
};
#define NFRAMES (sizeof(frames) / sizeof(frames[0]))

/* ---- 11.1 handshake ------------------------------------------------------------ */

static void test_handshake_vectors(void **state)
{
    const uint8_t hello[] = {0x6A, 0x50, 0x72, 0x6F, 0x78, 0x79, 0x03, 0x00};
    const uint8_t ok[] = {0x6A, 0x50, 0x72, 0x6F, 0x78, 0x79, 0x00};
    const uint8_t rej[] = {0x6A, 0x50, 0x72, 0x6F, 0x78, 0x79, 0x01};
    uint8_t buf[16];
    struct jp_hello h;
    struct jp_hello_reply r;
    size_t used;
    (void)state;

    jp_hello_encode(buf, JP_VERSION_MINOR);
    assert_memory_equal(buf, hello, sizeof(hello));
    for (size_t k = 0; k < sizeof(hello); k++)
        assert_int_equal(jp_hello_parse(hello, k, &used, &h), TD_EAGAIN);
    assert_int_equal(jp_hello_parse(hello, sizeof(hello), &used, &h), 0);
    assert_int_equal(used, 8);
    assert_int_equal(h.major, 3);
    assert_int_equal(h.minor, 0);
    assert_int_equal(jp_hello_accept_status(&h, true), JP_HELLO_OK);

    jp_hello_reply_encode(buf, JP_HELLO_OK);
    assert_memory_equal(buf, ok, sizeof(ok));
    jp_hello_reply_encode(buf, JP_HELLO_UNSUPPORTED);
    assert_memory_equal(buf, rej, sizeof(rej));
    for (size_t k = 0; k < sizeof(ok); k++)
        assert_int_equal(jp_hello_reply_parse(ok, k, &used, &r), TD_EAGAIN);
    assert_int_equal(jp_hello_reply_parse(ok, sizeof(ok), &used, &r), 0);
    assert_int_equal(used, 7);
    assert_true(r.accepted);
    assert_false(r.tunneld);
    assert_int_equal(jp_hello_reply_parse(rej, sizeof(rej), &used, &r), 0);
    assert_false(r.accepted);
    assert_int_equal(r.status, 1);
}

static void test_handshake_tunneld_and_bad(void **state)
{
    uint8_t buf[16];
    struct jp_hello h;
    struct jp_hello_reply r;
    size_t used;
    (void)state;

    /* A tunneld client offers the extension through the minor version. */
    jp_hello_encode(buf, JP_MINOR_TUNNELD);
    assert_int_equal(buf[7], 0x74);
    assert_int_equal(jp_hello_parse(buf, 8, &used, &h), 0);
    assert_int_equal(jp_hello_accept_status(&h, true), JP_HELLO_OK_TUNNELD);
    assert_int_equal(jp_hello_accept_status(&h, false), JP_HELLO_OK);
    /* Java accepts any minor, and so do we. */
    buf[7] = 0x05;
    assert_int_equal(jp_hello_parse(buf, 8, &used, &h), 0);
    assert_int_equal(jp_hello_accept_status(&h, true), JP_HELLO_OK);
    /* Wrong major. */
    buf[6] = 0x02;
    assert_int_equal(jp_hello_parse(buf, 8, &used, &h), TD_EUNSUPPORTED);
    assert_int_equal(h.major, 2);
    /* Bad magic is reported at the first differing byte. */
    memcpy(buf, "jPrXxy\x03\x00", 8);
    assert_int_equal(jp_hello_parse(buf, 3, &used, &h), TD_EAGAIN);
    assert_int_equal(jp_hello_parse(buf, 4, &used, &h), TD_EPROTO);
    assert_int_equal(jp_hello_parse((const uint8_t *)"GET / HTTP/1.1", 14, &used, &h), TD_EPROTO);
    assert_int_equal(jp_hello_reply_parse((const uint8_t *)"jproxy\x00", 7, &used, &r), TD_EPROTO);
    jp_hello_reply_encode(buf, JP_HELLO_OK_TUNNELD);
    assert_int_equal(jp_hello_reply_parse(buf, 7, &used, &r), 0);
    assert_true(r.accepted);
    assert_true(r.tunneld);
    buf[6] = 0x02;
    assert_int_equal(jp_hello_reply_parse(buf, 7, &used, &r), 0);
    assert_false(r.accepted);
}

/* ---- 11.2 tokens ------------------------------------------------------------------ */

static void test_token_vectors(void **state)
{
    uint8_t salt[JP_SALT_LEN], spki[400], tok[32], want[32], der[600];
    size_t n, dn = 0;
    struct td_pk k, pub;
    char name[JP_USER_FILE_NAME_LEN + 1];
    (void)state;
    salt_vector(salt);

    /* Small key: the hash only. */
    n = unhex(spki512_hex, spki, sizeof(spki));
    assert_int_equal(n, 94);
    unhex(token512_hex, want, sizeof(want));
    assert_int_equal(jp_token_compute(spki, n, salt, tok), 0);
    assert_memory_equal(tok, want, 32);
    assert_true(jp_token_verify(spki, n, salt, want));
    td_pk_init(&pub);
    assert_int_equal(td_pk_parse_spki_der(&pub, spki, n), 0);
    assert_int_equal(td_pk_bits(&pub), 512);
    assert_false(td_pk_is_rsa(&pub, 2048, 65537));
    assert_int_equal(jp_token_for_key(&pub, salt, tok), 0);
    assert_memory_equal(tok, want, 32);
    td_pk_free(&pub);

    /* Real key. */
    n = unhex(spki2048_hex, spki, sizeof(spki));
    assert_int_equal(n, JP_SPKI_LEN);
    unhex(token2048_hex, want, sizeof(want));
    assert_int_equal(jp_token_compute(spki, n, salt, tok), 0);
    assert_memory_equal(tok, want, 32);
    assert_true(jp_token_verify(spki, n, salt, want));
    salt[255] ^= 1;
    assert_false(jp_token_verify(spki, n, salt, want));
    salt[255] ^= 1;
    spki[100] ^= 1;
    assert_false(jp_token_verify(spki, n, salt, want));
    spki[100] ^= 1;

    /* The private key's SPKI is the vector's, byte for byte. */
    load_test_key(&k);
    assert_int_equal(td_pk_write_spki_der(&k, der, sizeof(der), &dn), 0);
    assert_int_equal(dn, JP_SPKI_LEN);
    assert_memory_equal(der, spki, JP_SPKI_LEN);
    assert_int_equal(jp_token_for_key(&k, salt, tok), 0);
    assert_memory_equal(tok, want, 32);
    td_pk_free(&k);

    jp_user_file_name(want, name);
    assert_string_equal(name,
                        "098948D9B6B0650FECEA8DA081C6B02FB9CD06854BA75F7DCF235F605FF65F8C.dat");
}

/* ---- 11.3 RSA transport of K ------------------------------------------------------ */

static void test_rsa_vector(void **state)
{
    uint8_t ct[256], wire[JP_LOGIN_OK_LEN], key[16], key2[16], pt[256];
    size_t used, n = 0;
    struct td_pk k;
    struct jp_login_reply lr;
    (void)state;

    assert_int_equal(unhex(rsa_ct_hex, ct, sizeof(ct)), 256);
    load_test_key(&k);
    assert_int_equal(td_pk_decrypt_pkcs1(&k, ct, sizeof(ct), pt, sizeof(pt), &n), 0);
    assert_int_equal(n, 16);
    assert_memory_equal(pt, vec_key, 16);

    /* The full login reply on the wire: 00 || ct. */
    jp_login_reply_encode_ok(wire, ct);
    assert_int_equal(wire[0], 0);
    for (size_t i = 0; i < sizeof(wire); i++)
        assert_int_equal(jp_login_reply_parse(wire, i, &used, &lr), TD_EAGAIN);
    assert_int_equal(jp_login_reply_parse(wire, sizeof(wire), &used, &lr), 0);
    assert_int_equal(used, 257);
    assert_int_equal(lr.status, JP_LOGIN_OK);
    assert_int_equal(jp_login_open(&k, lr.ct, key), 0);
    assert_memory_equal(key, vec_key, 16);

    /* A corrupted ciphertext does not open. */
    ct[10] ^= 0x40;
    assert_int_equal(jp_login_open(&k, ct, key2), TD_EAUTH);
    ct[10] ^= 0x40;

    /* Server side: a fresh K, randomised, that the client recovers. */
    assert_int_equal(jp_login_accept(&k, key, wire), 0);
    assert_int_equal(jp_login_open(&k, wire + 1, key2), 0);
    assert_memory_equal(key, key2, 16);

    /* A wrong-length plaintext (24 bytes, which Java would accept) is refused. */
    assert_int_equal(td_pk_encrypt_pkcs1(&k, pt, 24, ct, sizeof(ct), &n), 0);
    assert_int_equal(jp_login_open(&k, ct, key2), TD_EPROTO);

    /* Login rejection and unknown statuses. */
    jp_login_reply_encode_reject(wire);
    assert_int_equal(jp_login_reply_parse(wire, 1, &used, &lr), 0);
    assert_int_equal(lr.status, JP_LOGIN_INVALID_KEY);
    assert_int_equal(used, 1);
    wire[0] = 2;
    assert_int_equal(jp_login_reply_parse(wire, 1, &used, &lr), TD_EPROTO);
    td_pk_free(&k);
}

/* PKCS#8 output equals Java's encoding of the same key (the PEM's DER). */
static void test_pkcs8_der_matches_java(void **state)
{
    size_t len, dlen = 0, n = 0, plen = 0;
    uint8_t *pem;
    read_vector("test_key_2048.pem", &pem, &len);
    char b64[4096];
    size_t bn = 0;
    uint8_t java_der[2048], der[4096];
    char pemout[4096];
    struct td_pk k, k2;
    (void)state;

    /* Base64 body of the PEM, without header, footer and newlines. */
    for (const char *p = strchr((char *)pem, '\n') + 1; *p != '-'; p++)
        if (*p != '\n')
            b64[bn++] = *p;
    assert_int_equal(td_base64_decode(b64, bn, java_der, sizeof(java_der), &dlen), 0);
    assert_int_equal(dlen, 1217);

    td_pk_init(&k);
    assert_int_equal(td_pk_parse_private(&k, pem, len), 0);
    assert_int_equal(td_pk_write_private_der(&k, der, sizeof(der), &n), 0);
    assert_int_equal(n, 1217);
    assert_memory_equal(der, java_der, 1217);

    /* Our PEM output is the spec's text. */
    assert_int_equal(td_pk_write_private_pem(&k, pemout, sizeof(pemout), &plen), 0);
    assert_int_equal(plen, len);
    assert_memory_equal(pemout, pem, len);
    assert_int_equal(td_pk_write_private_der(&k, der, 1000, &n), TD_ETOOBIG);

    /* DER parses too (PEM with and without the NUL is covered above by len). */
    td_pk_init(&k2);
    assert_int_equal(td_pk_parse_private(&k2, java_der, dlen), 0);
    assert_true(td_pk_is_rsa(&k2, 2048, 65537));
    td_pk_free(&k2);
    /* Trailing garbage after the DER is refused. */
    java_der[dlen] = 0;
    assert_int_equal(td_pk_parse_private(&k2, java_der, dlen + 1), TD_EINVAL);
    assert_int_equal(td_pk_parse_private(&k2, java_der, dlen - 1), TD_EINVAL);
    td_pk_free(&k2);
    td_pk_free(&k);
    free(pem);
}

/* key.dat and the user file of spec 11.2, built from the test key. */
static void test_ksf_vector_layout(void **state)
{
    uint8_t salt[JP_SALT_LEN], spki[JP_SPKI_LEN], want[32];
    uint8_t *buf = NULL;
    size_t len = 0;
    struct jp_client_key ck, ck2;
    struct jp_user u, u2;
    (void)state;
    salt_vector(salt);
    unhex(spki2048_hex, spki, sizeof(spki));
    unhex(token2048_hex, want, sizeof(want));

    jp_client_key_init(&ck);
    load_test_key(&ck.key);
    memcpy(ck.token, want, 32);
    assert_int_equal(jp_client_key_encode(&ck, &buf, &len), 0);
    assert_int_equal(len, 1253);
    assert_int_equal(buf[0], 0x00);
    assert_int_equal(buf[1], 0x00);
    assert_int_equal(buf[2], 0x04);
    assert_int_equal(buf[3], 0xC1);
    assert_memory_equal(buf + 4 + 1217, want, 32);
    jp_client_key_init(&ck2);
    assert_int_equal(jp_client_key_decode(buf, len, &ck2), 0);
    assert_memory_equal(ck2.token, want, 32);
    assert_true(td_pk_is_rsa(&ck2.key, 2048, 65537));
    jp_client_key_free(&ck2);
    free(buf);
    jp_client_key_free(&ck);

    jp_user_init(&u);
    u.name = strdup("vector");
    u.name_len = 6;
    memcpy(u.salt, salt, sizeof(salt));
    memcpy(u.spki, spki, sizeof(spki));
    assert_int_equal(jp_user_encode(&u, &buf, &len), 0);
    /* Spec 11.2 says "(560 bytes)", but its own layout (5.2: 2 + n + 256 +
     * 294) gives 558 for n = 6; the Java server reads exactly that. */
    assert_int_equal(len, 558);
    assert_memory_equal(buf, "\x00\x06vector", 8);
    assert_memory_equal(buf + 8, salt, 256);
    assert_memory_equal(buf + 264, spki, 294);
    jp_user_init(&u2);
    assert_int_equal(jp_user_decode(buf, len, &u2), 0);
    assert_string_equal(u2.name, "vector");
    assert_memory_equal(u2.token, want, 32);
    assert_true(jp_user_token_eq(&u2, want));
    want[0] ^= 1;
    assert_false(jp_user_token_eq(&u2, want));
    jp_user_free(&u2);
    free(buf);
    jp_user_free(&u);
}

/* ---- 11.4 frames --------------------------------------------------------------------- */

static void test_aes_unit_vector(void **state)
{
    uint8_t in[16], out[32], want[16];
    size_t n = 0;
    struct td_aes_ecb c;
    (void)state;
    /* AES-128-ECB(K, 16 x 0x10): the padding block.  Encrypting an empty
     * buffer gives exactly that block. */
    unhex("954f64f2e4e86e9eee82d20216684899", want, sizeof(want));
    memset(in, 0x10, sizeof(in));
    assert_int_equal(td_aes_ecb_init(&c, vec_key), 0);
    assert_int_equal(td_aes_ecb_encrypt_pad(&c, in, 0, out, sizeof(out), &n), 0);
    assert_int_equal(n, 16);
    assert_memory_equal(out, want, 16);
    /* 16 bytes in place become 32. */
    memcpy(out, in, 16);
    assert_int_equal(td_aes_ecb_encrypt_pad(&c, out, 16, out, sizeof(out), &n), 0);
    assert_int_equal(n, 32);
    assert_memory_equal(out + 16, want, 16);
    assert_int_equal(td_aes_ecb_decrypt_unpad(&c, out, 32, out, sizeof(out), &n), 0);
    assert_int_equal(n, 16);
    assert_memory_equal(out, in, 16);
    assert_int_equal(td_aes_ecb_encrypt_pad(&c, in, 16, out, 31, &n), TD_ETOOBIG);
    assert_int_equal(td_aes_ecb_decrypt_unpad(&c, out, 15, out, sizeof(out), &n), TD_EINVAL);
    td_aes_ecb_free(&c);
    td_aes_ecb_free(&c);
}

static void check_frame_msg(size_t i, const uint8_t *m, size_t mlen)
{
    struct jp_msg msg;
    uint8_t enc[64];
    size_t n = 0;

    assert_int_equal(jp_msg_parse(m, mlen, frames[i].dir, &msg), 0);
    assert_int_equal(msg.id, i == 1 ? 2 : 1);
    switch (i) {
    case 0:
        assert_int_equal(msg.type, JP_MSG_TCP_CONNECT);
        assert_int_equal(msg.addr.port, 80);
        assert_int_equal(msg.addr.atyp, JP_ATYP_IPV4);
        assert_memory_equal(msg.addr.ip, "\x7f\x00\x00\x01", 4);
        break;
    case 1:
        assert_int_equal(msg.type, JP_MSG_TCP_CONNECT);
        assert_int_equal(msg.addr.port, 8000);
        assert_int_equal(msg.addr.atyp, JP_ATYP_DOMAIN);
        assert_string_equal(msg.addr.host, "localhost");
        assert_int_equal(msg.addr.host_len, 9);
        break;
    case 2:
        assert_int_equal(msg.type, JP_MSG_TCP_CONNECT_REPLY);
        assert_int_equal(msg.status, JP_CONNECT_OK);
        assert_int_equal(msg.time_ms, 5);
        break;
    case 3:
        assert_int_equal(msg.type, JP_MSG_TCP_CONNECT_REPLY);
        assert_int_equal(msg.status, JP_CONNECT_REFUSED);
        assert_int_equal(msg.time_ms, 101);
        break;
    case 4:
        assert_int_equal(msg.type, JP_MSG_TCP_PACKET);
        assert_int_equal(msg.data_len, 18);
        assert_memory_equal(msg.data, "GET / HTTP/1.0\r\n\r\n", 18);
        break;
    default:
        assert_int_equal(msg.type, JP_MSG_TCP_DISCONNECT);
        assert_int_equal(msg.reason, JP_REASON_RESET);
        break;
    }
    /* Re-encoding gives the plaintext (the 5-byte Disconnect becomes 4). */
    assert_int_equal(jp_msg_encode(&msg, enc, sizeof(enc), &n), 0);
    assert_int_equal(n, i == 6 ? 4 : mlen);
    assert_memory_equal(enc, m, n);
}

static void test_frame_vectors(void **state)
{
    struct jp_frame_ctx *f = malloc(sizeof(*f));
    uint8_t msg[64], frame[64], out[64], all[512];
    size_t mlen, flen, n = 0, alen = 0;
    (void)state;

    assert_non_null(f);
    assert_int_equal(jp_frame_init(f, vec_key), 0);
    for (size_t i = 0; i < NFRAMES; i++) {
        const uint8_t *p;
        size_t left;

        mlen = unhex(frames[i].msg, msg, sizeof(msg));
        flen = unhex(frames[i].frame, frame, sizeof(frame));
        /* Encode: byte for byte. */
        assert_int_equal(jp_frame_encode(f, msg, mlen, out, sizeof(out), &n), 0);
        assert_int_equal(n, flen);
        assert_memory_equal(out, frame, flen);
        assert_int_equal(JP_FRAME_WIRE_LEN(mlen), flen);
        /* Decode the whole frame at once. */
        p = frame;
        left = flen;
        assert_int_equal(jp_frame_parse(f, &p, &left), 0);
        assert_int_equal(left, 0);
        assert_int_equal(f->msg_len, mlen);
        assert_memory_equal(f->msg, msg, mlen);
        check_frame_msg(i, f->msg, f->msg_len);
        /* Decode one byte at a time. */
        for (size_t k = 0; k < flen; k++) {
            const uint8_t *q = frame + k;
            size_t one = 1;
            int rc = jp_frame_parse(f, &q, &one);
            assert_int_equal(one, 0);
            assert_int_equal(rc, k + 1 == flen ? 0 : TD_EAGAIN);
        }
        assert_memory_equal(f->msg, msg, mlen);
        memcpy(all + alen, frame, flen);
        alen += flen;
    }
    /* All seven back to back in one buffer, and then split at every offset. */
    for (size_t split = 0; split <= alen; split++) {
        const uint8_t *p = all;
        size_t left = split, got = 0;
        int rc;
        for (;;) {
            rc = jp_frame_parse(f, &p, &left);
            if (rc == TD_EAGAIN) {
                if (p == all + alen)
                    break;
                left = (size_t)(all + alen - p);
                continue;
            }
            assert_int_equal(rc, 0);
            mlen = unhex(frames[got].msg, msg, sizeof(msg));
            assert_int_equal(f->msg_len, mlen);
            assert_memory_equal(f->msg, msg, mlen);
            got++;
        }
        assert_int_equal(got, NFRAMES);
    }
    jp_frame_free(f);
    free(f);
}

static void test_frame_limits_and_errors(void **state)
{
    struct jp_frame_ctx *f = malloc(sizeof(*f));
    uint8_t *big = malloc(JP_FRAME_MAX_WIRE + 32), *out = malloc(JP_FRAME_MAX_WIRE + 32);
    uint8_t blk[32], ct[32];
    const uint8_t *p;
    size_t n = 0, left;
    struct td_aes_ecb c;
    (void)state;

    assert_non_null(f);
    assert_non_null(big);
    assert_non_null(out);
    assert_int_equal(jp_frame_init(f, vec_key), 0);
    memset(big, 'x', JP_FRAME_MAX_WIRE);
    /* 4079 bytes: N = 255, decodes. */
    assert_int_equal(jp_frame_encode(f, big, JP_MSG_MAX, out, JP_FRAME_MAX_WIRE, &n), 0);
    assert_int_equal(n, JP_FRAME_MAX_WIRE);
    assert_int_equal(out[0], 255);
    p = out;
    left = n;
    assert_int_equal(jp_frame_parse(f, &p, &left), 0);
    assert_int_equal(f->msg_len, JP_MSG_MAX);
    /* 4080 bytes would need 256 blocks. */
    assert_int_equal(jp_frame_encode(f, big, JP_MSG_MAX + 1, out, JP_FRAME_MAX_WIRE + 32, &n),
                     TD_ETOOBIG);
    assert_int_equal(jp_frame_encode(f, big, 16, out, 32, &n), TD_ETOOBIG);
    assert_int_equal(jp_frame_encode(f, big, 0, out, 32, &n), TD_EINVAL);
    /* Largest TCP Packet: 4074 data bytes. */
    {
        struct jp_msg m = {.type = JP_MSG_TCP_PACKET, .id = 7, .data = big};
        m.data_len = JP_PACKET_DATA_MAX;
        assert_int_equal(jp_frame_encode_msg(f, &m, out, JP_FRAME_MAX_WIRE, &n), 0);
        assert_int_equal(out[0], 255);
        m.data_len = JP_PACKET_DATA_MAX + 1;
        assert_int_equal(jp_frame_encode_msg(f, &m, out, JP_FRAME_MAX_WIRE + 32, &n), TD_EINVAL);
    }
    /* Truncated: every prefix is "need more" and consumes everything. */
    assert_int_equal(jp_frame_encode(f, big, 100, out, JP_FRAME_MAX_WIRE, &n), 0);
    for (size_t k = 0; k < n; k++) {
        struct jp_frame_ctx *g = malloc(sizeof(*g));
        assert_int_equal(jp_frame_init(g, vec_key), 0);
        p = out;
        left = k;
        assert_int_equal(jp_frame_parse(g, &p, &left), TD_EAGAIN);
        assert_int_equal(left, 0);
        jp_frame_free(g);
        free(g);
    }
    jp_frame_free(f);

    /* N = 0 is an error, and it sticks. */
    assert_int_equal(jp_frame_init(f, vec_key), 0);
    blk[0] = 0;
    p = blk;
    left = 1;
    assert_int_equal(jp_frame_parse(f, &p, &left), TD_EPROTO);
    p = out;
    left = n;
    assert_int_equal(jp_frame_parse(f, &p, &left), TD_EPROTO);
    jp_frame_free(f);

    /* Bad padding: single blocks whose plaintext ends in 0x00, 0x11, or
     * 02 preceded by something else than 02. */
    assert_int_equal(td_aes_ecb_init(&c, vec_key), 0);
    {
        static const uint8_t lasts[][2] = {{0x41, 0x00}, {0x41, 0x11}, {0x41, 0x02}, {0x41, 0xFF}};
        for (size_t t = 0; t < sizeof(lasts) / sizeof(lasts[0]); t++) {
            memset(blk, 0x41, 16);
            blk[14] = lasts[t][0];
            blk[15] = lasts[t][1];
            /* Encrypting 16 bytes gives 32; the first block is ECB(blk). */
            assert_int_equal(td_aes_ecb_encrypt_pad(&c, blk, 16, ct, sizeof(ct), &n), 0);
            out[0] = 1;
            memcpy(out + 1, ct, 16);
            assert_int_equal(jp_frame_init(f, vec_key), 0);
            p = out;
            left = 17;
            assert_int_equal(jp_frame_parse(f, &p, &left), TD_ECRYPTO);
            left = 17;
            p = out;
            assert_int_equal(jp_frame_parse(f, &p, &left), TD_ECRYPTO);
            jp_frame_free(f);
        }
        /* Full padding of 16 x 0x10 is a valid empty message. */
        memset(blk, 0x10, 16);
        assert_int_equal(td_aes_ecb_encrypt_pad(&c, blk, 16, ct, sizeof(ct), &n), 0);
        out[0] = 1;
        memcpy(out + 1, ct, 16);
        assert_int_equal(jp_frame_init(f, vec_key), 0);
        p = out;
        left = 17;
        assert_int_equal(jp_frame_parse(f, &p, &left), 0);
        assert_int_equal(f->msg_len, 0);
        jp_frame_free(f);
    }
    td_aes_ecb_free(&c);
    free(f);
    free(big);
    free(out);
}

/* ---- messages ------------------------------------------------------------------------ */

static void test_msg_parse_cases(void **state)
{
    struct jp_msg m;
    uint8_t buf[300];
    size_t n = 0;
    (void)state;

    /* IPv6 Connect. */
    memcpy(buf, "\x01\x12\x34\x01\xbb\x02\x10", 7);
    for (int i = 0; i < 16; i++)
        buf[7 + i] = (uint8_t)i;
    assert_int_equal(jp_msg_parse(buf, 23, JP_DIR_C2S, &m), 0);
    assert_int_equal(m.type, JP_MSG_TCP_CONNECT);
    assert_int_equal(m.id, 0x1234);
    assert_int_equal(m.addr.port, 443);
    assert_int_equal(m.addr.atyp, JP_ATYP_IPV6);
    assert_int_equal(m.addr.ip[15], 15);
    /* Surplus bytes are ignored. */
    assert_int_equal(jp_msg_parse(buf, 30, JP_DIR_C2S, &m), 0);
    assert_int_equal(m.type, JP_MSG_TCP_CONNECT);
    /* Malformed Connects with a readable id: answer status 1. */
    assert_int_equal(jp_msg_parse(buf, 22, JP_DIR_C2S, &m), 0);
    assert_int_equal(m.type, JP_MSG_TCP_CONNECT_BAD);
    assert_int_equal(m.id, 0x1234);
    assert_non_null(m.why);
    buf[5] = 0x04; /* SOCKS5's IPv6 code is not jProxy's */
    assert_int_equal(jp_msg_parse(buf, 23, JP_DIR_C2S, &m), 0);
    assert_int_equal(m.type, JP_MSG_TCP_CONNECT_BAD);
    buf[5] = JP_ATYP_IPV4; /* length 16 for IPv4 */
    assert_int_equal(jp_msg_parse(buf, 23, JP_DIR_C2S, &m), 0);
    assert_int_equal(m.type, JP_MSG_TCP_CONNECT_BAD);
    buf[5] = JP_ATYP_DOMAIN;
    buf[6] = 0;
    assert_int_equal(jp_msg_parse(buf, 23, JP_DIR_C2S, &m), 0);
    assert_int_equal(m.type, JP_MSG_TCP_CONNECT_BAD);
    buf[6] = 3;
    buf[8] = 0; /* NUL inside a host name */
    assert_int_equal(jp_msg_parse(buf, 23, JP_DIR_C2S, &m), 0);
    assert_int_equal(m.type, JP_MSG_TCP_CONNECT_BAD);
    for (size_t k = 3; k < 7; k++) {
        assert_int_equal(jp_msg_parse(buf, k, JP_DIR_C2S, &m), 0);
        assert_int_equal(m.type, JP_MSG_TCP_CONNECT_BAD);
    }
    /* Too short to carry an id: just dropped. */
    assert_int_equal(jp_msg_parse(buf, 2, JP_DIR_C2S, &m), TD_EPROTO);
    assert_int_equal(jp_msg_parse(buf, 0, JP_DIR_C2S, &m), TD_EPROTO);
    /* Domain of 255 bytes. */
    memcpy(buf, "\x01\x00\x09\x00\x50\x03\xff", 7);
    memset(buf + 7, 'a', 255);
    assert_int_equal(jp_msg_parse(buf, 262, JP_DIR_C2S, &m), 0);
    assert_int_equal(m.type, JP_MSG_TCP_CONNECT);
    assert_int_equal(m.addr.host_len, 255);
    assert_int_equal(strlen(m.addr.host), 255);
    assert_int_equal(jp_msg_parse(buf, 261, JP_DIR_C2S, &m), 0);
    assert_int_equal(m.type, JP_MSG_TCP_CONNECT_BAD);
    /* Short reply. */
    assert_int_equal(jp_msg_parse((const uint8_t *)"\x01\x00\x01\x00\x00", 5, JP_DIR_S2C, &m),
                     TD_EPROTO);
    /* Packets: n larger than present is dropped; smaller is fine. */
    memcpy(buf,
           "\x21\x00\x01\x00\x03"
           "abcd",
           9);
    assert_int_equal(jp_msg_parse(buf, 9, JP_DIR_S2C, &m), 0);
    assert_int_equal(m.data_len, 3);
    assert_int_equal(jp_msg_parse(buf, 7, JP_DIR_S2C, &m), TD_EPROTO);
    assert_int_equal(jp_msg_parse(buf, 4, JP_DIR_S2C, &m), TD_EPROTO);
    buf[4] = 0;
    assert_int_equal(jp_msg_parse(buf, 5, JP_DIR_C2S, &m), 0);
    assert_int_equal(m.data_len, 0);
    /* Disconnect: 3 bytes too short. */
    assert_int_equal(jp_msg_parse((const uint8_t *)"\x41\x00\x01", 3, JP_DIR_C2S, &m), TD_EPROTO);
    /* Unknown kinds (and the old 0x00 ping) are surfaced for ignoring. */
    assert_int_equal(jp_msg_parse((const uint8_t *)"\x99\x00\x01\x02", 4, JP_DIR_C2S, &m), 0);
    assert_int_equal(m.type, JP_MSG_UNKNOWN);
    assert_int_equal(m.kind, 0x99);
    assert_int_equal(jp_msg_parse((const uint8_t *)"\x00", 1, JP_DIR_S2C, &m), 0);
    assert_int_equal(m.type, JP_MSG_UNKNOWN);

    /* Encoders refuse what cannot be sent. */
    memset(&m, 0, sizeof(m));
    m.type = JP_MSG_TCP_CONNECT;
    m.addr.atyp = 4;
    assert_int_equal(jp_msg_encode(&m, buf, sizeof(buf), &n), TD_EINVAL);
    m.addr.atyp = JP_ATYP_DOMAIN;
    m.addr.host_len = 0;
    assert_int_equal(jp_msg_encode(&m, buf, sizeof(buf), &n), TD_EINVAL);
    m.addr.atyp = JP_ATYP_IPV4;
    assert_int_equal(jp_msg_encode(&m, buf, 10, &n), TD_ETOOBIG);
    assert_int_equal(jp_msg_encode(&m, buf, 11, &n), 0);
    assert_int_equal(n, 11);
    m.type = JP_MSG_TCP_CONNECT_BAD;
    assert_int_equal(jp_msg_encode(&m, buf, sizeof(buf), &n), TD_EINVAL);
    m.type = JP_MSG_UNKNOWN;
    assert_int_equal(jp_msg_encode(&m, buf, sizeof(buf), &n), TD_EINVAL);
}

static void test_msg_udp_extension(void **state)
{
    struct jp_msg m, back;
    uint8_t buf[64];
    size_t n = 0;
    (void)state;

    memset(&m, 0, sizeof(m));
    m.type = JP_MSG_UDP_ASSOCIATE;
    m.id = 3;
    m.local_port = 0;
    m.addr.atyp = JP_ATYP_DOMAIN;
    m.addr.port = 53;
    memcpy(m.addr.host, "dns.example", 12);
    m.addr.host_len = 11;
    assert_int_equal(jp_msg_encode(&m, buf, sizeof(buf), &n), 0);
    assert_int_equal(n, 7 + 2 + 11);
    assert_memory_equal(buf,
                        "\x02\x00\x03\x00\x00\x00\x35\x03\x0b"
                        "dns.example",
                        n);
    assert_int_equal(jp_msg_parse(buf, n, JP_DIR_C2S, &back), 0);
    assert_int_equal(back.type, JP_MSG_UDP_ASSOCIATE);
    assert_int_equal(back.addr.port, 53);
    assert_string_equal(back.addr.host, "dns.example");
    assert_int_equal(jp_msg_parse(buf, 8, JP_DIR_C2S, &back), 0);
    assert_int_equal(back.type, JP_MSG_UDP_ASSOCIATE_BAD);
    assert_int_equal(back.id, 3);

    memset(&m, 0, sizeof(m));
    m.type = JP_MSG_UDP_ASSOCIATE_REPLY;
    m.id = 3;
    m.status = JP_UDP_OK;
    m.local_port = 40000;
    assert_int_equal(jp_msg_encode(&m, buf, sizeof(buf), &n), 0);
    assert_memory_equal(buf, "\x02\x00\x03\x00\x9c\x40", 6);
    assert_int_equal(jp_msg_parse(buf, n, JP_DIR_S2C, &back), 0);
    assert_int_equal(back.type, JP_MSG_UDP_ASSOCIATE_REPLY);
    assert_int_equal(back.local_port, 40000);

    memset(&m, 0, sizeof(m));
    m.type = JP_MSG_UDP_PACKET;
    m.id = 3;
    m.data = (const uint8_t *)"dgram";
    m.data_len = 5;
    assert_int_equal(jp_msg_encode(&m, buf, sizeof(buf), &n), 0);
    assert_memory_equal(buf,
                        "\x22\x00\x03\x00\x05"
                        "dgram",
                        10);
    assert_int_equal(jp_msg_parse(buf, n, JP_DIR_S2C, &back), 0);
    assert_int_equal(back.type, JP_MSG_UDP_PACKET);
    assert_memory_equal(back.data, "dgram", 5);

    memset(&m, 0, sizeof(m));
    m.type = JP_MSG_UDP_DISSOCIATE;
    m.id = 0xBEEF;
    assert_int_equal(jp_msg_encode(&m, buf, sizeof(buf), &n), 0);
    assert_memory_equal(buf, "\x42\xbe\xef", 3);
    assert_int_equal(jp_msg_parse(buf, n, JP_DIR_S2C, &back), 0);
    assert_int_equal(back.type, JP_MSG_UDP_DISSOCIATE);
    assert_int_equal(back.id, 0xBEEF);
    assert_int_equal(jp_msg_parse(buf, 2, JP_DIR_C2S, &back), TD_EPROTO);
}

static void test_status_helpers(void **state)
{
    (void)state;
    assert_int_equal(jp_connect_status_from_err(0), 0);
    assert_int_equal(jp_connect_status_from_err(TD_ECONNREFUSED), 2);
    assert_int_equal(jp_connect_status_from_err(TD_ETIMEDOUT), 3);
    assert_int_equal(jp_connect_status_from_err(TD_ENETUNREACH), 4);
    assert_int_equal(jp_connect_status_from_err(TD_EDNS), 5);
    assert_int_equal(jp_connect_status_from_err(TD_ELIMIT), 6);
    assert_int_equal(jp_connect_status_from_err(TD_EHOSTUNREACH), 1);
    for (int s = 0; s < 256; s++) {
        int e = jp_connect_status_to_err((uint8_t)s);
        assert_non_null(jp_connect_status_str((uint8_t)s));
        if (s <= 6)
            assert_int_equal(jp_connect_status_from_err(e), s);
        else if (s == JP_CONNECT_NOT_ALLOWED)
            assert_int_equal(e, TD_EACCES); /* ours; sent only to tunneld peers */
        else
            assert_int_equal(e, TD_EPROTO);
    }
    assert_int_equal(jp_time_clamp(5), 5);
    assert_int_equal(jp_time_clamp(65534), 65534);
    assert_int_equal(jp_time_clamp(65536), 0xFFFF);
    assert_int_equal(jp_time_clamp(UINT64_MAX), 0xFFFF);
}

/* ---- KSF files --------------------------------------------------------------------- */

static char tmpdir[256];

static int setup_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/td-jproxy-test.XXXXXX");
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int teardown_tmpdir(void **state)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char path[512];
    (void)state;
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(tmpdir);
    return 0;
}

static size_t count_dir_entries(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    size_t n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void test_ksf_roundtrip(void **state)
{
    struct jp_client_key ck, ck2;
    struct jp_user u, u2;
    char kpath[512], upath[512], fname[JP_USER_FILE_NAME_LEN + 1];
    uint8_t der1[4096], der2[4096], key[16], key2[16], reply[JP_LOGIN_OK_LEN];
    size_t n1 = 0, n2 = 0;
    struct stat st;
    (void)state;

    jp_client_key_init(&ck);
    jp_user_init(&u);
    assert_int_equal(jp_keys_generate("al\xc3\xaf"
                                      "ce",
                                      &ck, &u),
                     0);
    assert_true(td_pk_is_rsa(&ck.key, 2048, 65537));
    assert_memory_equal(ck.token, u.token, 32);
    assert_true(jp_token_verify(u.spki, JP_SPKI_LEN, u.salt, ck.token));

    snprintf(kpath, sizeof(kpath), "%s/key.dat", tmpdir);
    jp_user_file_name(u.token, fname);
    snprintf(upath, sizeof(upath), "%s/%s", tmpdir, fname);
    assert_int_equal(jp_client_key_write(kpath, &ck), 0);
    assert_int_equal(jp_user_write(upath, &u), 0);
    /* Overwriting replaces atomically and leaves no temporary file. */
    assert_int_equal(jp_client_key_write(kpath, &ck), 0);
    assert_int_equal(count_dir_entries(), 2);
    assert_int_equal(stat(kpath, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* A random key's PKCS#8 DER length varies by a few bytes: each INTEGER
     * (d, p, q, the CRT values) may be a byte shorter, or need a leading
     * zero.  Around 1217 (the test key's); the exact length is checked by
     * reading the file back below. */
    assert_in_range(st.st_size, 4 + 1205 + 32, 4 + 1225 + 32);
    assert_int_equal(stat(upath, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 2 + 6 + 256 + 294);

    jp_client_key_init(&ck2);
    jp_user_init(&u2);
    assert_int_equal(jp_client_key_read(kpath, &ck2), 0);
    assert_int_equal(jp_user_read(upath, &u2), 0);
    assert_memory_equal(ck2.token, ck.token, 32);
    assert_int_equal(td_pk_write_private_der(&ck.key, der1, sizeof(der1), &n1), 0);
    assert_int_equal(td_pk_write_private_der(&ck2.key, der2, sizeof(der2), &n2), 0);
    assert_int_equal(n1, n2);
    assert_memory_equal(der1, der2, n1);
    assert_string_equal(u2.name, "al\xc3\xaf"
                                 "ce");
    assert_int_equal(u2.name_len, 6);
    assert_memory_equal(u2.salt, u.salt, JP_SALT_LEN);
    assert_memory_equal(u2.spki, u.spki, JP_SPKI_LEN);
    assert_memory_equal(u2.token, u.token, JP_TOKEN_LEN);
    assert_true(jp_user_token_eq(&u2, ck2.token));

    /* A login between the two halves. */
    assert_int_equal(jp_login_accept(&u2.pub, key, reply), 0);
    assert_int_equal(jp_login_open(&ck2.key, reply + 1, key2), 0);
    assert_memory_equal(key, key2, 16);
    /* The server side cannot decrypt (public key only). */
    assert_int_equal(jp_login_open(&u2.pub, reply + 1, key2), TD_EINVAL);

    /* Targets must be empty. */
    assert_int_equal(jp_client_key_read(kpath, &ck2), TD_EINVAL);
    assert_int_equal(jp_user_read(upath, &u2), TD_EINVAL);

    jp_client_key_free(&ck2);
    jp_user_free(&u2);
    jp_client_key_free(&ck);
    jp_user_free(&u);

    /* Bad names. */
    jp_client_key_init(&ck);
    jp_user_init(&u);
    assert_int_equal(jp_keys_generate("", &ck, &u), TD_EINVAL);
    assert_int_equal(jp_keys_generate("\xf0\x9f\x98\x80", &ck, &u), TD_EINVAL); /* non-BMP */
    assert_int_equal(jp_keys_generate("\xc0\x80", &ck, &u), TD_EINVAL);
    assert_int_equal(jp_keys_generate("\xed\xa0\x80", &ck, &u), TD_EINVAL); /* surrogate */
    assert_int_equal(jp_keys_generate("ab\xc3", &ck, &u), TD_EINVAL);
    jp_client_key_free(&ck);
    jp_user_free(&u);
}

static int write_raw(const char *name, const uint8_t *d, size_t n, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", tmpdir, name);
    return td_fs_write_file_private(path, d, n);
}

static void test_ksf_strict(void **state)
{
    struct jp_client_key ck;
    struct jp_user u;
    uint8_t *kd = NULL, *ud = NULL, *big;
    size_t klen = 0, ulen = 0;
    uint8_t salt[JP_SALT_LEN], spki[JP_SPKI_LEN];
    char path[512];
    (void)state;

    /* Valid material from the test key. */
    salt_vector(salt);
    unhex(spki2048_hex, spki, sizeof(spki));
    jp_client_key_init(&ck);
    load_test_key(&ck.key);
    unhex(token2048_hex, ck.token, sizeof(ck.token));
    assert_int_equal(jp_client_key_encode(&ck, &kd, &klen), 0);
    jp_client_key_free(&ck);
    jp_user_init(&u);
    u.name = strdup("vector");
    u.name_len = 6;
    memcpy(u.salt, salt, sizeof(salt));
    memcpy(u.spki, spki, sizeof(spki));
    assert_int_equal(jp_user_encode(&u, &ud, &ulen), 0);
    jp_user_free(&u);

    /* key.dat: every truncation fails cleanly; trailing bytes are ignored. */
    for (size_t k = 0; k < klen; k += (k < 40 || k > klen - 40) ? 1 : 97) {
        jp_client_key_init(&ck);
        assert_int_equal(jp_client_key_decode(kd, k, &ck), TD_EPROTO);
        assert_false(ck.key.ready);
        jp_client_key_free(&ck);
    }
    {
        uint8_t *more = malloc(klen + 10);
        memcpy(more, kd, klen);
        memset(more + klen, 0xEE, 10);
        jp_client_key_init(&ck);
        assert_int_equal(jp_client_key_decode(more, klen + 10, &ck), 0);
        jp_client_key_free(&ck);
        /* L = 0, L too large, L one short (DER no longer spans L). */
        more[2] = 0;
        more[3] = 0;
        jp_client_key_init(&ck);
        assert_int_equal(jp_client_key_decode(more, klen + 10, &ck), TD_EPROTO);
        more[0] = 0x7F;
        assert_int_equal(jp_client_key_decode(more, klen + 10, &ck), TD_EPROTO);
        memcpy(more, kd, 4);
        more[3] = 0xC0;
        assert_int_equal(jp_client_key_decode(more, klen + 10, &ck), TD_EPROTO);
        more[3] = 0xC1;
        more[4 + 300] ^= 0xFF; /* corrupt the key numbers */
        assert_int_equal(jp_client_key_decode(more, klen + 10, &ck), TD_EPROTO);
        assert_false(ck.key.ready);
        jp_client_key_free(&ck);
        free(more);
    }

    /* User file: exact length only, no NUL in the name, a valid SPKI. */
    for (size_t k = 0; k < ulen; k += (k < 40 || k > ulen - 40) ? 1 : 53) {
        jp_user_init(&u);
        assert_int_equal(jp_user_decode(ud, k, &u), TD_EPROTO);
        assert_null(u.name);
        jp_user_free(&u);
    }
    {
        uint8_t *more = malloc(ulen + 1);
        memcpy(more, ud, ulen);
        more[ulen] = 0;
        jp_user_init(&u);
        assert_int_equal(jp_user_decode(more, ulen + 1, &u), TD_EPROTO);
        more[3] = 0;
        assert_int_equal(jp_user_decode(more, ulen, &u), TD_EPROTO);
        more[3] = 'e';
        more[ulen - 1] ^= 0x02; /* exponent 65537 -> 65539 */
        assert_int_equal(jp_user_decode(more, ulen, &u), TD_EUNSUPPORTED);
        more[ulen - 1] ^= 0x02;
        more[8 + 256 + 1] ^= 0xFF; /* DER length */
        assert_int_equal(jp_user_decode(more, ulen, &u), TD_EPROTO);
        assert_null(u.name);
        jp_user_free(&u);
        free(more);
    }

    /* Through files: missing, oversized, malformed. */
    jp_client_key_init(&ck);
    jp_user_init(&u);
    snprintf(path, sizeof(path), "%s/missing.dat", tmpdir);
    assert_int_equal(jp_client_key_read(path, &ck), TD_ENOTFOUND);
    assert_int_equal(jp_user_read(path, &u), TD_ENOTFOUND);
    big = calloc(1, JP_KEY_FILE_MAX + 1);
    assert_int_equal(write_raw("big.dat", big, JP_KEY_FILE_MAX + 1, path, sizeof(path)), 0);
    assert_int_equal(jp_client_key_read(path, &ck), TD_ETOOBIG);
    free(big);
    assert_int_equal(write_raw("short.dat", kd, 100, path, sizeof(path)), 0);
    assert_int_equal(jp_client_key_read(path, &ck), TD_EPROTO);
    assert_int_equal(jp_user_read(path, &u), TD_EPROTO);
    assert_int_equal(write_raw("user.dat", ud, ulen, path, sizeof(path)), 0);
    assert_int_equal(jp_user_read(path, &u), 0);
    assert_string_equal(u.name, "vector");
    jp_user_free(&u);
    /* A directory is not a key file. */
    assert_int_equal(jp_client_key_read(tmpdir, &ck), TD_EINVAL);
    /* Writing into a missing directory fails without leaving anything. */
    snprintf(path, sizeof(path), "%s/nodir/key.dat", tmpdir);
    assert_int_equal(td_fs_write_file_private(path, kd, klen), TD_ENOTFOUND);
    jp_client_key_free(&ck);
    free(kd);
    free(ud);
}

static void test_pk_misc(void **state)
{
    struct td_pk k, pub;
    uint8_t spki[600], ct[256], pt[256];
    size_t n = 0, m = 0;
    (void)state;

    load_test_key(&k);
    /* PEM without a terminating NUL was used by load_test_key; garbage and
     * public keys are refused as private keys. */
    td_pk_init(&pub);
    assert_int_equal(td_pk_parse_private(&pub, (const uint8_t *)"-----BEGIN nothing", 18),
                     TD_EINVAL);
    assert_int_equal(td_pk_parse_private(&pub, (const uint8_t *)"\x30\x03\x02\x01\x00", 5),
                     TD_EINVAL);
    assert_int_equal(td_pk_write_spki_der(&k, spki, sizeof(spki), &n), 0);
    assert_int_equal(td_pk_parse_private(&pub, spki, n), TD_EINVAL);
    assert_int_equal(td_pk_parse_spki_der(&pub, spki, n - 1), TD_EINVAL);
    assert_int_equal(td_pk_parse_spki_der(&pub, spki, n), 0);
    assert_false(pub.has_private);
    assert_int_equal(td_pk_write_private_der(&pub, pt, sizeof(pt), &m), TD_EINVAL);
    /* Encrypt with the public half, decrypt with the private one. */
    assert_int_equal(td_pk_encrypt_pkcs1(&pub, vec_key, 16, ct, sizeof(ct), &m), 0);
    assert_int_equal(m, 256);
    assert_int_equal(td_pk_decrypt_pkcs1(&k, ct, m, pt, sizeof(pt), &n), 0);
    assert_int_equal(n, 16);
    assert_memory_equal(pt, vec_key, 16);
    assert_int_equal(td_pk_decrypt_pkcs1(&k, ct, m, pt, 8, &n), TD_ETOOBIG);
    assert_int_equal(td_pk_decrypt_pkcs1(&pub, ct, m, pt, sizeof(pt), &n), TD_EINVAL);
    assert_int_equal(td_pk_encrypt_pkcs1(&pub, pt, 246, ct, sizeof(ct), &m), TD_EINVAL);
    assert_int_equal(td_pk_encrypt_pkcs1(&pub, pt, 245, ct, 255, &m), TD_ETOOBIG);
    td_pk_free(&pub);
    td_pk_free(&pub);
    td_pk_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_vectors),
        cmocka_unit_test(test_handshake_tunneld_and_bad),
        cmocka_unit_test(test_token_vectors),
        cmocka_unit_test(test_rsa_vector),
        cmocka_unit_test(test_pkcs8_der_matches_java),
        cmocka_unit_test(test_ksf_vector_layout),
        cmocka_unit_test(test_aes_unit_vector),
        cmocka_unit_test(test_frame_vectors),
        cmocka_unit_test(test_frame_limits_and_errors),
        cmocka_unit_test(test_msg_parse_cases),
        cmocka_unit_test(test_msg_udp_extension),
        cmocka_unit_test(test_status_helpers),
        cmocka_unit_test(test_pk_misc),
        cmocka_unit_test_setup_teardown(test_ksf_roundtrip, setup_tmpdir, teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_ksf_strict, setup_tmpdir, teardown_tmpdir),
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
