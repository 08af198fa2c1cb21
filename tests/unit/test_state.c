/* The managed state: the file format, the edits tunnelctl makes (add,
 * remove, rotate with a grace period, expiry), atomic 0600 saves, and the
 * writers' lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/error.h"
#include "util/fs.h"
#include "config/state.h"

#define K1 "AAECAwQFBgcICQoLDA0ODw=="
#define K2 "EBESExQVFhcYGRobHB0eHw=="
#define T1 "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"

static void test_edit_and_roundtrip(void **state)
{
    struct td_state st = {0}, back;
    struct ctl_buf b;
    struct st_user *u;
    char why[128];

    (void)state;
    assert_int_equal(td_state_add(&st, "alice", CFG_PROTO_WSTAN, K1, 1000), 0);
    assert_int_equal(td_state_add(&st, "bob", CFG_PROTO_JPROXY, T1, 1001), 0);
    assert_int_equal(td_state_add(&st, "alice", CFG_PROTO_WSTAN, K2, 1002), TD_EEXIST);
    assert_int_equal(td_state_add(&st, "bad name", CFG_PROTO_WSTAN, K2, 1002), TD_EINVAL);
    assert_int_equal(td_state_add(&st, "carol", CFG_PROTO_WSTAN, "short", 1002), TD_EINVAL);
    assert_int_equal(td_state_add(&st, "carol", CFG_PROTO_JPROXY, K1, 1002), TD_EINVAL);

    /* Rotation: the old key stays until the grace period ends. */
    assert_int_equal(td_state_rotate(&st, "alice", K2, 2000, 60), 0);
    u = td_state_find(&st, "alice");
    assert_string_equal(u->secret, K2);
    assert_string_equal(u->old_secret, K1);
    assert_int_equal(u->old_until, 2060);
    assert_int_equal(td_state_rotate(&st, "nobody", K2, 2000, 60), TD_ENOTFOUND);
    assert_int_equal(td_state_rotate(&st, "alice", "nope", 2000, 60), TD_EINVAL);

    assert_int_equal(td_state_format(&st, &b), 0);
    assert_int_equal(td_state_parse(b.p, b.len, &back, why, sizeof(why)), 0);
    assert_int_equal(back.n, 2);
    u = td_state_find(&back, "alice");
    assert_non_null(u);
    assert_int_equal(u->protocol, CFG_PROTO_WSTAN);
    assert_int_equal(u->created, 1000);
    assert_string_equal(u->secret, K2);
    assert_string_equal(u->old_secret, K1);
    assert_int_equal(u->old_until, 2060);
    u = td_state_find(&back, "bob");
    assert_int_equal(u->protocol, CFG_PROTO_JPROXY);
    assert_string_equal(u->secret, T1);
    assert_null(u->old_secret);
    ctl_buf_free(&b);

    /* Expiry drops the old key at its deadline, not before. */
    assert_int_equal(td_state_expire(&back, 2059), 0);
    assert_int_equal(td_state_expire(&back, 2060), 1);
    assert_null(td_state_find(&back, "alice")->old_secret);
    /* A rotation without grace replaces the key at once. */
    assert_int_equal(td_state_rotate(&back, "alice", K1, 3000, 0), 0);
    assert_null(td_state_find(&back, "alice")->old_secret);
    assert_int_equal(td_state_remove(&back, "alice"), 0);
    assert_int_equal(td_state_remove(&back, "alice"), TD_ENOTFOUND);
    assert_int_equal(back.n, 1);
    td_state_free(&back);
    td_state_free(&st);
}

/* A name defined in the config and in the state is refused (the daemon
 * would not know whose key counts). */
static void test_conflict_with_config(void **state)
{
    struct td_state st = {0};
    struct cfg_user users[2] = {{.name = "carol"}, {.name = "bob"}};
    struct td_config cfg = {.users = users, .n_users = 1};

    (void)state;
    assert_int_equal(td_state_add(&st, "alice", CFG_PROTO_WSTAN, K1, 1000), 0);
    assert_int_equal(td_state_add(&st, "bob", CFG_PROTO_JPROXY, T1, 1001), 0);
    assert_null(td_state_conflict(&st, &cfg));
    cfg.n_users = 2;
    assert_string_equal(td_state_conflict(&st, &cfg), "bob");
    td_state_free(&st);
}

static void test_parse_bad(void **state)
{
    static const char *const bad[] = {
        "tunneld-control=1\n\n",                                       /* wrong magic */
        "tunneld-state=1\nprotocol=wstan\n\n",                         /* no user */
        "tunneld-state=1\nuser=a\nprotocol=wstan\n\n",                 /* no secret */
        "tunneld-state=1\nuser=a\nprotocol=ftp\nsecret=" K1 "\n\n",    /* protocol */
        "tunneld-state=1\nuser=a\nprotocol=wstan\nsecret=xyz\n\n",     /* secret */
        "tunneld-state=1\nuser=a\nprotocol=jproxy\nsecret=" K1 "\n\n", /* wrong kind */
        "tunneld-state=1\nuser=a\nprotocol=wstan\nsecret=" K1 "\nsecret=" K1 "\n\n",
        "tunneld-state=1\nuser=a\nprotocol=wstan\nsecret=" K1 "\nuser=a\nprotocol=wstan\nsecret=" K1
        "\n\n",
        "tunneld-state=1\nuser=a b\n\n",
        "tunneld-state=1\nuser=a\nprotocol=wstan\nsecret=" K1 "\ncreated=-1\n\n",
        "tunneld-state=1\nuser=a\nprotocol=wstan\nsecret=" K1 "\nold_secret=zz\n\n",
    };
    struct td_state st;
    char why[128];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(td_state_parse(bad[i], strlen(bad[i]), &st, why, sizeof(why)), TD_EPROTO);
        assert_true(why[0] != '\0');
        assert_int_equal(st.n, 0);
    }
    assert_int_equal(td_state_parse("tunneld-state=9\n\n", 17, &st, why, sizeof(why)),
                     TD_EUNSUPPORTED);
    /* Empty and unknown-key files are fine. */
    assert_int_equal(td_state_parse("tunneld-state=1\n\n", 17, &st, why, sizeof(why)), 0);
    assert_int_equal(st.n, 0);
    {
        const char *s = "tunneld-state=1\nuser=a\nprotocol=wstan\nsecret=" K1 "\nlater=1\n\n";
        assert_int_equal(td_state_parse(s, strlen(s), &st, why, sizeof(why)), 0);
        assert_int_equal(st.n, 1);
        td_state_free(&st);
    }
}

static void test_files(void **state)
{
    char dir[] = "/tmp/tunneld-state-XXXXXX", path[256];
    struct td_state st = {0}, back;
    struct stat sb;
    char why[128];

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(td_state_load(dir, &back, why, sizeof(why)), 0); /* no file: empty */
    assert_int_equal(back.n, 0);
    assert_int_equal(td_state_add(&st, "alice", CFG_PROTO_WSTAN, K1, 5), 0);
    assert_int_equal(td_state_save(dir, &st), 0);
    snprintf(path, sizeof(path), "%s/state", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(td_state_load(dir, &back, why, sizeof(why)), 0);
    assert_int_equal(back.n, 1);
    assert_string_equal(back.users[0].secret, K1);
    td_state_free(&back);
    td_state_free(&st);

    /* A garbled file is an error with a reason, never an empty state. */
    {
        FILE *f = fopen(path, "w");
        fputs("tunneld-state=1\nuser=x\n", f);
        fclose(f);
    }
    assert_int_equal(td_state_load(dir, &back, why, sizeof(why)), TD_EPROTO);
    unlink(path);

    /* A save removes what writers killed mid-write left, and only that. */
    {
        static const char *const left[] = {"state.tmp.AbC123", "jproxy/AB.dat.tmp.x1y2z3"};
        static const char *const kept[] = {"state.tmp", "notes.tmp.toolongsuffix1",
                                           "jproxy/AB.dat"};
        char p2[300];
        snprintf(p2, sizeof(p2), "%s/jproxy", dir);
        assert_int_equal(mkdir(p2, 0700), 0);
        for (size_t i = 0; i < 2; i++) {
            snprintf(p2, sizeof(p2), "%s/%s", dir, left[i]);
            fclose(fopen(p2, "w"));
        }
        for (size_t i = 0; i < 3; i++) {
            snprintf(p2, sizeof(p2), "%s/%s", dir, kept[i]);
            fclose(fopen(p2, "w"));
        }
        assert_int_equal(td_state_add(&st, "bob", CFG_PROTO_WSTAN, K2, 6), 0);
        assert_int_equal(td_state_save(dir, &st), 0);
        for (size_t i = 0; i < 2; i++) {
            snprintf(p2, sizeof(p2), "%s/%s", dir, left[i]);
            assert_int_not_equal(access(p2, F_OK), 0);
        }
        for (size_t i = 0; i < 3; i++) {
            snprintf(p2, sizeof(p2), "%s/%s", dir, kept[i]);
            assert_int_equal(access(p2, F_OK), 0);
            unlink(p2);
        }
        assert_true(td_fs_is_tmp_name("state.tmp.000000000abc"));
        assert_false(td_fs_is_tmp_name(".tmp.abcdef"));
        assert_false(td_fs_is_tmp_name("state.tmp.ab-def"));
        td_state_free(&st);
        snprintf(p2, sizeof(p2), "%s/jproxy", dir);
        rmdir(p2);
        unlink(path);
    }
    rmdir(dir);
}

static void test_lock(void **state)
{
    char dir[] = "/tmp/tunneld-lock-XXXXXX", path[256];
    struct td_fs_lock *l = NULL, *l2 = NULL;
    pid_t pid;
    int status;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/lock", dir);
    assert_int_equal(td_fs_lock(path, 0, &l), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Another process cannot take it while it is held. */
        struct td_fs_lock *c = NULL;
        _exit(td_fs_lock(path, 100, &c) == TD_ETIMEDOUT ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    td_fs_unlock(l);
    assert_int_equal(td_fs_lock(path, 0, &l2), 0);
    td_fs_unlock(l2);
    /* A holder that dies releases it. */
    pid = fork();
    if (pid == 0) {
        struct td_fs_lock *c = NULL;
        if (td_fs_lock(path, 0, &c) != 0)
            _exit(1);
        _exit(0); /* without unlocking */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(td_fs_lock(path, 0, &l2), 0);
    td_fs_unlock(l2);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edit_and_roundtrip),
        cmocka_unit_test(test_conflict_with_config),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_lock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
