/* Fuzz the jProxy parsers that see peer-controlled plaintext.  The first
 * input byte picks the target:
 *   0: message from the client (what our server parses)
 *   1: message from the server (what our client parses)
 *   2: the handshake parsers (hello, hello reply, token, login reply)
 *   3: the KSF decoders (server user file, then client key.dat)
 * A message that parses re-encodes to exactly the bytes it was parsed from
 * (the encoding is canonical; only trailing surplus is dropped). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/error.h"
#include "proto/jproxy.h"
#include "proto/jproxy_keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static bool encodable(enum jp_msg_type t)
{
    return t != JP_MSG_NONE && t != JP_MSG_UNKNOWN && t != JP_MSG_TCP_CONNECT_BAD &&
           t != JP_MSG_UDP_ASSOCIATE_BAD;
}

static void fuzz_msg(const uint8_t *m, size_t len, enum jp_dir dir)
{
    static uint8_t enc[JP_MSG_MAX + 300];
    struct jp_msg msg, back;
    size_t n = 0;
    int rc = jp_msg_parse(m, len, dir, &msg);

    CHECK(rc == 0 || rc == TD_EPROTO);
    if (rc != 0)
        return;
    CHECK(msg.type != JP_MSG_NONE);
    if (msg.type == JP_MSG_TCP_CONNECT_BAD || msg.type == JP_MSG_UDP_ASSOCIATE_BAD)
        CHECK(msg.why != NULL && len >= 3);
    if (!encodable(msg.type))
        return;
    if ((msg.type == JP_MSG_TCP_PACKET || msg.type == JP_MSG_UDP_PACKET) &&
        msg.data_len > JP_PACKET_DATA_MAX) {
        /* Parsable, but more than a frame can carry: refused on encode. */
        CHECK(jp_msg_encode(&msg, enc, sizeof(enc), &n) == TD_EINVAL);
        return;
    }
    CHECK(jp_msg_encode(&msg, enc, sizeof(enc), &n) == 0);
    CHECK(n <= len && memcmp(enc, m, n) == 0);
    CHECK(jp_msg_parse(enc, n, dir, &back) == 0);
    CHECK(back.type == msg.type && back.id == msg.id && back.status == msg.status &&
          back.time_ms == msg.time_ms && back.reason == msg.reason &&
          back.local_port == msg.local_port && back.data_len == msg.data_len);
    CHECK(memcmp(&back.addr, &msg.addr, sizeof(msg.addr)) == 0);
}

static void fuzz_handshake(const uint8_t *p, size_t len)
{
    struct jp_hello h;
    struct jp_hello_reply hr;
    struct jp_login_reply lr;
    uint8_t tok[JP_TOKEN_LEN];
    size_t used = 0;
    int rc;

    rc = jp_hello_parse(p, len, &used, &h);
    CHECK(rc == 0 || rc == TD_EAGAIN || rc == TD_EPROTO || rc == TD_EUNSUPPORTED);
    if (rc == 0)
        CHECK(used == JP_HELLO_LEN && h.major == JP_VERSION_MAJOR);
    rc = jp_hello_reply_parse(p, len, &used, &hr);
    CHECK(rc == 0 || rc == TD_EAGAIN || rc == TD_EPROTO);
    if (rc == 0)
        CHECK(used == JP_HELLO_REPLY_LEN && hr.accepted == (hr.status == 0 || hr.status == 0x74));
    rc = jp_token_parse(p, len, &used, tok);
    CHECK(rc == 0 || rc == TD_EAGAIN);
    rc = jp_login_reply_parse(p, len, &used, &lr);
    CHECK(rc == 0 || rc == TD_EAGAIN || rc == TD_EPROTO);
    if (rc == 0)
        CHECK(used == (lr.status == JP_LOGIN_OK ? JP_LOGIN_OK_LEN : 1u));
}

static void fuzz_ksf(const uint8_t *p, size_t len)
{
    struct jp_user u;
    struct jp_client_key ck;
    int rc;

    jp_user_init(&u);
    rc = jp_user_decode(p, len, &u);
    CHECK(rc == 0 || rc == TD_EPROTO || rc == TD_EUNSUPPORTED);
    if (rc == 0) {
        CHECK(u.name != NULL && strlen(u.name) == u.name_len);
        CHECK(jp_token_verify(u.spki, JP_SPKI_LEN, u.salt, u.token));
    } else {
        CHECK(u.name == NULL && !u.pub.ready);
    }
    jp_user_free(&u);

    jp_client_key_init(&ck);
    rc = jp_client_key_decode(p, len, &ck);
    CHECK(rc == 0 || rc == TD_EPROTO || rc == TD_EUNSUPPORTED);
    CHECK((rc == 0) == ck.key.ready);
    jp_client_key_free(&ck);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 4) {
    case 0:
        fuzz_msg(data + 1, size - 1, JP_DIR_C2S);
        break;
    case 1:
        fuzz_msg(data + 1, size - 1, JP_DIR_S2C);
        break;
    case 2:
        fuzz_handshake(data + 1, size - 1);
        break;
    default:
        fuzz_ksf(data + 1, size - 1);
        break;
    }
    return 0;
}
