/* Control messages: framing, parsing, building, and everything malformed
 * that the daemon must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/ctlmsg.h"
#include "util/error.h"

static void test_frame(void **state)
{
    const char *m = "tunneld-control=1\ncommand=status\n\nnext";
    size_t n = 0, scanned = 0;

    (void)state;
    assert_int_equal(ctl_msg_frame(m, strlen(m), 1024, NULL, &n), 0);
    assert_int_equal(n, strlen("tunneld-control=1\ncommand=status\n\n"));
    /* Byte by byte, with the scan position kept: found exactly once. */
    for (size_t len = 1; len <= n; len++) {
        int r = ctl_msg_frame(m, len, 1024, &scanned, &n);
        if (len < strlen("tunneld-control=1\ncommand=status\n\n"))
            assert_int_equal(r, TD_EAGAIN);
        else
            assert_int_equal(r, 0);
    }
    assert_int_equal(ctl_msg_frame("abc\n", 4, 1024, NULL, &n), TD_EAGAIN);
    assert_int_equal(ctl_msg_frame("abcdefgh", 8, 8, NULL, &n), TD_ETOOBIG);
    assert_int_equal(ctl_msg_frame("ab\n\n", 4, 4, NULL, &n), 0);
    assert_int_equal(ctl_msg_frame("abc\n\n", 5, 4, NULL, &n), TD_ETOOBIG);
    assert_int_equal(ctl_msg_frame("\n", 1, 4, NULL, &n), 0);
    assert_int_equal(n, 1);
}

static void test_parse(void **state)
{
    static const char m[] = "tunneld-control=1\n"
                            "command=users-add\n"
                            "name=alice\n"
                            "user=a\n"
                            "user=b\n"
                            "empty=\n"
                            "n=42\n"
                            "spaces=a b = c\n"
                            "\n";
    struct ctl_msg msg;
    size_t from = 0;
    uint64_t v = 0;

    (void)state;
    assert_int_equal(ctl_msg_parse(m, strlen(m), &msg), 0);
    assert_int_equal(msg.version, 1);
    assert_int_equal(msg.n, 7);
    assert_string_equal(ctl_msg_get(&msg, "command", NULL), "users-add");
    assert_string_equal(ctl_msg_get(&msg, "user", &from), "a");
    assert_string_equal(ctl_msg_get(&msg, "user", &from), "b");
    assert_null(ctl_msg_get(&msg, "user", &from));
    assert_string_equal(ctl_msg_get(&msg, "empty", NULL), "");
    assert_string_equal(ctl_msg_get(&msg, "spaces", NULL), "a b = c");
    assert_null(ctl_msg_get(&msg, "nope", NULL));
    assert_int_equal(ctl_msg_get_u64(&msg, "n", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(ctl_msg_get_u64(&msg, "name", &v), TD_EINVAL);
    assert_int_equal(ctl_msg_get_u64(&msg, "nope", &v), TD_ENOTFOUND);
    ctl_msg_free(&msg);
}

static void test_parse_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "\n",
        "\n\n",
        "command=status\n\n",                  /* no version line */
        "tunneld-control=1\ncommand=status\n", /* no blank line */
        "tunneld-control=1\nnoequals\n\n",     /* no '=' */
        "tunneld-control=1\nBad=1\n\n",        /* upper-case key */
        "tunneld-control=1\n=v\n\n",           /* empty key */
        "tunneld-control=1\na\n\nb=2\n\n",     /* blank line inside */
        "tunneld-control=x\n\n",               /* bad version */
        "tunneld-control=\n\n",
        "tunneld-control=1\r\ncommand=status\n\n", /* CR */
        "tunneld-control=1\nkey=va\rl\n\n",
        /* a key of 65 bytes */
        ("tunneld-control=1\n"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1\n\n"),
    };
    struct ctl_msg msg;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ctl_msg_parse(bad[i], strlen(bad[i]), &msg), TD_EPROTO);
    /* A NUL byte. */
    assert_int_equal(ctl_msg_parse("tunneld-control=1\na=\0\n\n", 23, &msg), TD_EPROTO);
    /* Another version: unsupported, and the caller learns which. */
    assert_int_equal(ctl_msg_parse("tunneld-control=2\na=b\n\n", 23, &msg), TD_EUNSUPPORTED);
    assert_int_equal(msg.version, 2);
    assert_null(msg.f);
}

static void test_build_roundtrip(void **state)
{
    struct ctl_buf b;
    struct ctl_msg msg;
    size_t n = 0;

    (void)state;
    ctl_buf_init(&b, 4096);
    ctl_buf_begin(&b);
    ctl_buf_add(&b, "command", "stats");
    ctl_buf_add(&b, "error", "line one\nline two\r"); /* cannot break the framing */
    ctl_buf_add_u64(&b, "bytes", UINT64_MAX);
    ctl_buf_addf(&b, "who", "%s-%d", "x", 7);
    ctl_buf_add(&b, "Bad Key", "dropped");
    assert_int_equal(ctl_buf_end(&b), 0);
    assert_int_equal(ctl_msg_frame(b.p, b.len, 4096, NULL, &n), 0);
    assert_int_equal(n, b.len);
    assert_int_equal(ctl_msg_parse(b.p, b.len, &msg), 0);
    assert_int_equal(msg.n, 4);
    assert_string_equal(ctl_msg_get(&msg, "error", NULL), "line one?line two?");
    assert_string_equal(ctl_msg_get(&msg, "bytes", NULL), "18446744073709551615");
    assert_string_equal(ctl_msg_get(&msg, "who", NULL), "x-7");
    ctl_msg_free(&msg);
    ctl_buf_free(&b);

    /* Over the cap: cut, and said so. */
    ctl_buf_init(&b, 64);
    ctl_buf_begin(&b);
    for (int i = 0; i < 10; i++)
        ctl_buf_add(&b, "k", "0123456789");
    assert_true(b.overflow);
    assert_true(b.len < 64);
    assert_int_equal(ctl_buf_end(&b), TD_ETOOBIG);
    ctl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_build_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
