/* The config loader (common/config.c): a full good config with every value
 * and default checked, and each kind of error with its exact position, key
 * path and text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "util/error.h"
#include "util/log.h"

/* version + one valid listener: lines 1-5.  Tests append from line 6. */
#define BASE                                                                                       \
    "version: 1\n"                                                                                 \
    "listeners:\n"                                                                                 \
    "  - name: a\n"                                                                                \
    "    type: socks5\n"                                                                           \
    "    listen: 127.0.0.1:1080\n"

static struct td_config *load_ok(const char *name, const char *yaml)
{
    struct td_config *cfg = NULL;
    struct cfg_errors errs;
    int rc = cfg_load_buffer(name, yaml, strlen(yaml), &cfg, &errs);

    for (size_t i = 0; i < errs.n; i++)
        print_error("unexpected: %s\n", errs.msgs[i]);
    assert_int_equal(errs.n, 0);
    assert_int_equal(rc, 0);
    assert_non_null(cfg);
    cfg_errors_free(&errs);
    return cfg;
}

static void expect_errors(const char *yaml, size_t len, const char *const *want, size_t n)
{
    struct td_config *cfg = (struct td_config *)(uintptr_t)1;
    struct cfg_errors errs;
    int rc = cfg_load_buffer("t.yaml", yaml, len, &cfg, &errs);
    bool same = errs.n == n;

    for (size_t i = 0; same && i < n; i++)
        same = strcmp(errs.msgs[i], want[i]) == 0;
    if (!same) {
        for (size_t i = 0; i < n; i++)
            print_error("want: %s\n", want[i]);
        for (size_t i = 0; i < errs.n; i++)
            print_error("got:  %s\n", errs.msgs[i]);
    }
    assert_true(same);
    assert_int_equal(rc, TD_ECONFIG);
    /* A config with any error is never handed out. */
    assert_null(cfg);
    cfg_errors_free(&errs);
    assert_int_equal(errs.n, 0);
    assert_null(errs.msgs);
}

#define EXPECT_ERRORS(yaml, ...)                                                                   \
    do {                                                                                           \
        static const char *const want_[] = {__VA_ARGS__};                                          \
        expect_errors((yaml), strlen(yaml), want_, sizeof(want_) / sizeof(want_[0]));              \
    } while (0)

static void test_full_config(void **state)
{
    static const char yaml[] = "# every key\n"
                               "version: 1\n"
                               "log:\n"
                               "  level: debug\n"
                               "  file: \"-\"\n"
                               "control:\n"
                               "  socket: run/control.sock\n"
                               "  group: tunneld\n"
                               "state_dir: /var/lib/td\n"
                               "limits:\n"
                               "  max_connections: 1000000\n"
                               "  handshake_timeout: 250ms\n"
                               "  connect_timeout: 3s\n"
                               "  idle_timeout: 2h\n"
                               "  linger: 1m\n"
                               "  dns_timeout: \"4s\"\n"
                               "  udp_timeout: 1d\n"
                               "  drain_timeout: 0\n"
                               "  buffer: 1MiB\n"
                               "users:\n"
                               "  - name: alice\n"
                               "    password: 's3cret'\n"
                               "    wstan_key: \"AAECAwQFBgcICQoLDA0ODw==\"\n"
                               "    jproxy_user_file: jproxy/alice.dat\n"
                               "  - name: Bob_2.x-y\n"
                               "    jproxy_user_file: /abs/bob.dat\n"
                               "listeners:\n"
                               "  - name: local\n"
                               "    type: mixed\n"
                               "    listen: 127.0.0.1:0\n"
                               "    route: direct\n"
                               "    auth: users\n"
                               "  - name: s5\n"
                               "    type: socks5\n"
                               "    listen: \"[::1]:1080\"\n"
                               "    auth: none\n"
                               "  - {name: web, type: http, listen: 'proxy.local:3128'}\n"
                               "  - name: ssh\n"
                               "    type: forward\n"
                               "    listen: 0.0.0.0:2222\n"
                               "    target: example.com:22\n";
    struct td_config *cfg = load_ok("/etc/tunneld/tunneld.yaml", yaml);
    const struct cfg_listener *l;

    (void)state;
    assert_string_equal(cfg->path, "/etc/tunneld/tunneld.yaml");
    assert_string_equal(cfg->dir, "/etc/tunneld");
    assert_int_equal(cfg->version, 1);
    assert_int_equal(cfg->log.level, TD_LOG_DEBUG);
    assert_string_equal(cfg->log.file, "-");
    assert_string_equal(cfg->control.socket, "/etc/tunneld/run/control.sock");
    assert_string_equal(cfg->control.group, "tunneld");
    assert_string_equal(cfg->state_dir, "/var/lib/td");
    assert_int_equal(cfg->limits.max_connections, 1000000);
    assert_int_equal(cfg->limits.handshake_timeout_ms, 250);
    assert_int_equal(cfg->limits.connect_timeout_ms, 3000);
    assert_int_equal(cfg->limits.idle_timeout_ms, 2 * 3600 * 1000);
    assert_int_equal(cfg->limits.linger_ms, 60000);
    assert_int_equal(cfg->limits.dns_timeout_ms, 4000);
    assert_int_equal(cfg->limits.udp_timeout_ms, 86400000);
    assert_int_equal(cfg->limits.drain_timeout_ms, 0);
    assert_int_equal(cfg->limits.buffer, 1024 * 1024);

    assert_int_equal(cfg->n_users, 2);
    assert_string_equal(cfg->users[0].name, "alice");
    assert_string_equal(cfg->users[0].password, "s3cret");
    assert_string_equal(cfg->users[0].wstan_key, "AAECAwQFBgcICQoLDA0ODw==");
    assert_string_equal(cfg->users[0].jproxy_user_file, "/etc/tunneld/jproxy/alice.dat");
    assert_string_equal(cfg->users[1].name, "Bob_2.x-y");
    assert_null(cfg->users[1].password);
    assert_null(cfg->users[1].wstan_key);
    assert_string_equal(cfg->users[1].jproxy_user_file, "/abs/bob.dat");
    assert_ptr_equal(cfg_find_user(cfg, "alice"), &cfg->users[0]);
    assert_ptr_equal(cfg_find_user(cfg, "Bob_2.x-y"), &cfg->users[1]);
    assert_null(cfg_find_user(cfg, "carol"));
    assert_null(cfg_find_user(cfg, NULL));

    assert_int_equal(cfg->n_listeners, 4);
    l = &cfg->listeners[0];
    assert_string_equal(l->name, "local");
    assert_int_equal(l->type, CFG_LISTENER_MIXED);
    assert_string_equal(l->listen.host, "127.0.0.1");
    assert_int_equal(l->listen.port, 0);
    assert_int_equal(l->listen.kind, TD_HOST_IPV4);
    assert_false(l->has_target);
    assert_string_equal(l->route, "direct");
    assert_int_equal(l->auth, CFG_AUTH_USERS);
    l = &cfg->listeners[1];
    assert_string_equal(l->name, "s5");
    assert_int_equal(l->type, CFG_LISTENER_SOCKS5);
    assert_string_equal(l->listen.host, "::1");
    assert_int_equal(l->listen.kind, TD_HOST_IPV6);
    assert_int_equal(l->listen.port, 1080);
    assert_int_equal(l->auth, CFG_AUTH_NONE);
    assert_string_equal(l->route, "direct");
    l = &cfg->listeners[2];
    assert_string_equal(l->name, "web");
    assert_int_equal(l->type, CFG_LISTENER_HTTP);
    assert_string_equal(l->listen.host, "proxy.local");
    assert_int_equal(l->listen.kind, TD_HOST_NAME);
    assert_int_equal(l->listen.port, 3128);
    l = &cfg->listeners[3];
    assert_string_equal(l->name, "ssh");
    assert_int_equal(l->type, CFG_LISTENER_FORWARD);
    assert_true(l->has_target);
    assert_string_equal(l->target.host, "example.com");
    assert_int_equal(l->target.port, 22);
    assert_int_equal(l->target.kind, TD_HOST_NAME);
    assert_string_equal(l->route, "direct");
    assert_int_equal(l->auth, CFG_AUTH_NONE);

    assert_string_equal(cfg_listener_type_name(CFG_LISTENER_FORWARD), "forward");
    assert_string_equal(cfg_listener_type_name(CFG_LISTENER_MIXED), "mixed");
    assert_string_equal(cfg_auth_name(CFG_AUTH_USERS), "users");
    assert_string_equal(cfg_listener_type_name((enum cfg_listener_type)42), "?");
    cfg_free(cfg);
}

static void test_defaults(void **state)
{
    struct td_config *cfg = load_ok("tunneld.yaml", BASE);

    (void)state;
    assert_string_equal(cfg->path, "tunneld.yaml");
    assert_string_equal(cfg->dir, ".");
    assert_int_equal(cfg->version, 1);
    assert_int_equal(cfg->log.level, TD_LOG_INFO);
    assert_string_equal(cfg->log.file, "-");
    assert_string_equal(cfg->control.socket, "/run/tunneld/control.sock");
    assert_null(cfg->control.group);
    assert_string_equal(cfg->state_dir, "/var/lib/tunneld");
    assert_int_equal(cfg->limits.max_connections, 20000);
    assert_int_equal(cfg->limits.handshake_timeout_ms, 10000);
    assert_int_equal(cfg->limits.connect_timeout_ms, 10000);
    assert_int_equal(cfg->limits.idle_timeout_ms, 300000);
    assert_int_equal(cfg->limits.linger_ms, 10000);
    assert_int_equal(cfg->limits.dns_timeout_ms, 5000);
    assert_int_equal(cfg->limits.udp_timeout_ms, 60000);
    assert_int_equal(cfg->limits.drain_timeout_ms, 10000);
    assert_int_equal(cfg->limits.buffer, 65536);
    assert_int_equal(cfg->n_users, 0);
    assert_null(cfg->users);
    assert_int_equal(cfg->n_listeners, 1);
    assert_string_equal(cfg->listeners[0].route, "direct");
    assert_int_equal(cfg->listeners[0].auth, CFG_AUTH_NONE);
    cfg_free(cfg);

    /* Empty sections keep their defaults; relative paths with a relative
     * config name stay relative to the same directory. */
    cfg = load_ok("conf/t.yaml", BASE "log:\nlimits:\nusers:\ncontrol: {}\nstate_dir: st\n");
    assert_string_equal(cfg->dir, "conf");
    assert_string_equal(cfg->state_dir, "conf/st");
    assert_int_equal(cfg->limits.buffer, 65536);
    cfg_free(cfg);
    cfg = load_ok("t.yaml", BASE "state_dir: st\nlog: {file: t.log}\n");
    assert_string_equal(cfg->state_dir, "st");
    assert_string_equal(cfg->log.file, "t.log");
    cfg_free(cfg);
    cfg = load_ok("/t.yaml", BASE "state_dir: st\n");
    assert_string_equal(cfg->dir, "/");
    assert_string_equal(cfg->state_dir, "/st");
    cfg_free(cfg);
}

static void test_yaml_features(void **state)
{
    struct td_config *cfg;

    (void)state;
    /* Flow style, a document marker, comments and aliases are all fine. */
    cfg =
        load_ok("t.yaml", "%YAML 1.1\n---\n# c\nversion: 1 # one\n"
                          "users: [&u {name: u1, password: p}]\n"
                          "listeners: [{name: a, type: http, listen: &l '[::]:8080'},\n"
                          "            {name: b, type: forward, listen: 127.0.0.1:1, target: *l}]\n"
                          "...\n");
    assert_int_equal(cfg->n_listeners, 2);
    assert_int_equal(cfg->listeners[1].target.port, 8080);
    assert_int_equal(cfg->listeners[1].target.kind, TD_HOST_IPV6);
    cfg_free(cfg);
}

static void test_unknown_key(void **state)
{
    (void)state;
    EXPECT_ERRORS(BASE "    colour: red\n"
                       "lmits: {}\n"
                       "log:\n"
                       "  lvl: debug\n"
                       "\"a\\x01b\": 1\n",
                  "t.yaml:6:5: listeners[0].colour: unknown key", "t.yaml:7:1: lmits: unknown key",
                  "t.yaml:9:3: log.lvl: unknown key", "t.yaml:10:1: a?b: unknown key");
    EXPECT_ERRORS(BASE "[1]: x\n", "t.yaml:6:1: yaml: keys must be strings, got a list");
}

static void test_wrong_type(void **state)
{
    (void)state;
    EXPECT_ERRORS("version: 1\n"
                  "log: [a, b]\n"
                  "limits:\n"
                  "  max_connections: {a: 1}\n"
                  "  idle_timeout: [1s]\n"
                  "listeners:\n"
                  "  - name: [x]\n"
                  "    type: socks5\n"
                  "    listen: 127.0.0.1:1080\n"
                  "  - just a string\n"
                  "users: {name: x}\n"
                  "state_dir: {}\n",
                  "t.yaml:2:6: log: expected a mapping, got a list",
                  "t.yaml:4:20: limits.max_connections: expected an integer, got a mapping",
                  "t.yaml:5:17: limits.idle_timeout: expected a duration, got a list",
                  "t.yaml:7:11: listeners[0].name: expected a name, got a list",
                  "t.yaml:10:5: listeners[1]: expected a mapping, got a plain value",
                  "t.yaml:11:8: users: expected a list, got a mapping",
                  "t.yaml:12:12: state_dir: expected a path, got a mapping");
    /* Integers must be plain scalars, and integers. */
    EXPECT_ERRORS(BASE "limits:\n"
                       "  max_connections: \"100\"\n"
                       "  buffer: '64KiB'\n",
                  "t.yaml:7:20: limits.max_connections: expected an integer, got a quoted string");
    EXPECT_ERRORS(BASE "limits: {max_connections: eighty}\n",
                  "t.yaml:6:27: limits.max_connections: expected an integer, got 'eighty'");
    EXPECT_ERRORS(BASE "limits: {max_connections: 0}\n",
                  "t.yaml:6:27: limits.max_connections: 0 is out of range (1-1000000)");
    EXPECT_ERRORS(BASE "limits: {max_connections: 1000001}\n",
                  "t.yaml:6:27: limits.max_connections: 1000001 is out of range (1-1000000)");
    EXPECT_ERRORS(BASE "limits: {max_connections: -3}\n",
                  "t.yaml:6:27: limits.max_connections: -3 is out of range (1-1000000)");
    EXPECT_ERRORS(BASE "limits: {max_connections: 99999999999999999999}\n",
                  "t.yaml:6:27: limits.max_connections: expected an integer, got "
                  "'99999999999999999999'");
}

static void test_null_values(void **state)
{
    (void)state;
    EXPECT_ERRORS("version: 1\n"
                  "listeners:\n"
                  "  - name: a\n"
                  "    type: ~\n"
                  "    listen:\n"
                  "users:\n"
                  "  -\n"
                  "  - name: null\n"
                  "    password: p\n",
                  "t.yaml:4:11: listeners[0].type: expected a listener type, got an empty value",
                  "t.yaml:5:12: listeners[0].listen: expected an address (host:port), got an "
                  "empty value",
                  "t.yaml:7:4: users[0]: expected a mapping, got an empty value",
                  "t.yaml:8:11: users[1].name: expected a name, got an empty value");
    /* Quoted, "null" is just a string. */
    EXPECT_ERRORS(BASE "control: {group: \"\"}\n",
                  "t.yaml:6:18: control.group: invalid name '' (use 1 to 64 letters, digits, "
                  "'.', '_' or '-')");
    EXPECT_ERRORS(BASE "listeners: []\n", "t.yaml:6:1: listeners: duplicate key (first defined "
                                          "at 2:1)");
}

static void test_bad_address(void **state)
{
    (void)state;
    EXPECT_ERRORS("version: 1\n"
                  "listeners:\n"
                  "  - {name: a, type: socks5, listen: 127.0.0.1:eighty}\n"
                  "  - {name: b, type: socks5, listen: 127.0.0.1:65536}\n"
                  "  - {name: c, type: socks5, listen: '::1:80'}\n"
                  "  - {name: d, type: socks5, listen: 'bad host:80'}\n"
                  "  - {name: e, type: socks5, listen: 10.0.0.1}\n"
                  "  - {name: f, type: forward, listen: ':1', target: 'h:0'}\n",
                  "t.yaml:3:37: listeners[0].listen: invalid address '127.0.0.1:eighty': port "
                  "is not a number",
                  "t.yaml:4:37: listeners[1].listen: invalid address '127.0.0.1:65536': port "
                  "must be at most 65535",
                  "t.yaml:5:37: listeners[2].listen: invalid address '::1:80': IPv6 addresses "
                  "must be written in brackets, as [::1]:port",
                  "t.yaml:6:37: listeners[3].listen: invalid address 'bad host:80': invalid "
                  "character in address",
                  "t.yaml:7:37: listeners[4].listen: invalid address '10.0.0.1': missing port",
                  "t.yaml:8:38: listeners[5].listen: invalid address ':1': empty host",
                  "t.yaml:8:52: listeners[5].target: invalid address 'h:0': port 0 is not "
                  "allowed here");
}

static void test_duplicates(void **state)
{
    (void)state;
    EXPECT_ERRORS("version: 1\n"
                  "version: 1\n"
                  "listeners:\n"
                  "  - name: a\n"
                  "    type: socks5\n"
                  "    listen: 127.0.0.1:1080\n"
                  "    type: http\n"
                  "log: {level: info, level: info}\n",
                  "t.yaml:2:1: version: duplicate key (first defined at 1:1)",
                  "t.yaml:7:5: listeners[0].type: duplicate key (first defined at 5:5)",
                  "t.yaml:8:20: log.level: duplicate key (first defined at 8:7)");
    EXPECT_ERRORS(BASE "  - {name: b, type: http, listen: 127.0.0.1:2}\n"
                       "  - {name: a, type: http, listen: 127.0.0.1:3}\n"
                       "  - {name: a, type: http, listen: 127.0.0.1:4}\n"
                       "users:\n"
                       "  - {name: u, password: p}\n"
                       "  - {name: u, password: q}\n",
                  "t.yaml:7:12: listeners[2].name: duplicate listener name 'a' (first defined "
                  "at 3:11)",
                  "t.yaml:8:12: listeners[3].name: duplicate listener name 'a' (first defined "
                  "at 3:11)",
                  "t.yaml:11:12: users[1].name: duplicate user name 'u' (first defined at "
                  "10:12)");
}

static void test_missing_required(void **state)
{
    (void)state;
    EXPECT_ERRORS("# no version\n"
                  "listeners:\n"
                  "  - name: a\n"
                  "    type: socks5\n"
                  "  - listen: 127.0.0.1:1\n",
                  "t.yaml:2:1: version: missing required key",
                  "t.yaml:3:5: listeners[0].listen: missing required key",
                  "t.yaml:5:5: listeners[1].name: missing required key",
                  "t.yaml:5:5: listeners[1].type: missing required key");
    EXPECT_ERRORS("version: 1\n",
                  "t.yaml:1:1: listeners: nothing to run: give at least one listener or server");
    EXPECT_ERRORS("version: 1\nlisteners: []\n",
                  "t.yaml:2:1: listeners: nothing to run: give at least one listener or server");
    EXPECT_ERRORS("version: 1\nlisteners:\n",
                  "t.yaml:2:1: listeners: nothing to run: give at least one listener or server");
    {
        /* A tunnel server alone is a daemon worth running. */
        struct td_config *cfg = load_ok("t.yaml", "version: 1\n"
                                                  "servers:\n"
                                                  "  - name: s\n"
                                                  "    protocol: jproxy\n"
                                                  "    listen: 127.0.0.1:9000\n"
                                                  "    users_dir: users\n");
        assert_int_equal(cfg->n_listeners, 0);
        assert_int_equal(cfg->n_servers, 1);
        cfg_free(cfg);
    }
    EXPECT_ERRORS(BASE "users:\n  - name: nobody\n",
                  "t.yaml:7:5: users[0]: user has no credentials (set password, wstan_key or "
                  "jproxy_user_file)");
}

static void test_version(void **state)
{
    (void)state;
    EXPECT_ERRORS("version: 2\nlisteners: [{name: a, type: http, listen: 'h:1'}]\n",
                  "t.yaml:1:10: version: unsupported version 2 (this tunneld reads version 1)");
    EXPECT_ERRORS("version: \"1\"\nlisteners: [{name: a, type: http, listen: 'h:1'}]\n",
                  "t.yaml:1:10: version: expected an integer, got a quoted string");
    EXPECT_ERRORS("version: one\nlisteners: [{name: a, type: http, listen: 'h:1'}]\n",
                  "t.yaml:1:10: version: expected an integer, got 'one'");
    EXPECT_ERRORS("version:\nlisteners: [{name: a, type: http, listen: 'h:1'}]\n",
                  "t.yaml:1:9: version: expected an integer, got an empty value");
}

static void test_forward_rules(void **state)
{
    (void)state;
    EXPECT_ERRORS("version: 1\n"
                  "users: [{name: u, password: p}]\n"
                  "listeners:\n"
                  "  - name: fwd\n"
                  "    type: forward\n"
                  "    listen: 127.0.0.1:2222\n"
                  "  - name: s5\n"
                  "    type: socks5\n"
                  "    listen: 127.0.0.1:1080\n"
                  "    target: example.com:22\n"
                  "  - name: fwd2\n"
                  "    type: forward\n"
                  "    listen: 127.0.0.1:2223\n"
                  "    target: example.com:22\n"
                  "    auth: users\n",
                  "t.yaml:4:5: listeners[0].target: missing required key (a forward listener "
                  "needs a target)",
                  "t.yaml:10:5: listeners[1].target: only forward listeners take a target (this "
                  "one is socks5)",
                  "t.yaml:15:11: listeners[2].auth: a forward listener cannot use 'auth: users' "
                  "(it has no handshake to authenticate)");
}

static void test_route_and_auth(void **state)
{
    (void)state;
    EXPECT_ERRORS(BASE "    route: to-server\n"
                       "    auth: password\n",
                  "t.yaml:6:12: listeners[0].route: unknown tunnel 'to-server'",
                  "t.yaml:7:11: listeners[0].auth: unknown auth 'password' (expected none or "
                  "users)");
    EXPECT_ERRORS(BASE "    type: sock5\n", "t.yaml:6:5: listeners[0].type: duplicate key (first "
                                            "defined at 4:5)");
    EXPECT_ERRORS("version: 1\nlisteners: [{name: a, type: sock5, listen: 'h:1'}]\n",
                  "t.yaml:2:29: listeners[0].type: unknown listener type 'sock5' (expected "
                  "socks5, http, mixed or forward)");
    /* auth: users needs a user who can log in with a password. */
    EXPECT_ERRORS("version: 1\n"
                  "users:\n"
                  "  - name: k\n"
                  "    wstan_key: AAAA\n"
                  "listeners:\n"
                  "  - {name: a, type: socks5, listen: 'h:1', auth: users}\n"
                  "  - {name: b, type: http, listen: 'h:2', auth: users}\n",
                  "t.yaml:6:50: listeners[0].auth: 'auth: users' needs at least one user with a "
                  "password",
                  "t.yaml:7:48: listeners[1].auth: 'auth: users' needs at least one user with a "
                  "password");
    EXPECT_ERRORS("version: 1\nlisteners: [{name: a, type: socks5, listen: 'h:1', auth: users}]\n",
                  "t.yaml:2:58: listeners[0].auth: 'auth: users' needs at least one user with a "
                  "password");
}

/* Lines 1-4: version and a user who can log in to both kinds of server;
 * the listeners follow from line 5. */
#define PROTO_HEAD                                                                                 \
    "version: 1\n"                                                                                 \
    "users:\n"                                                                                     \
    "  - {name: u, wstan_key: AAECAwQFBgcICQoLDA0ODw==, jproxy_user_file: u.dat}\n"                \
    "listeners:\n"

#define TOKEN64 "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"

static void test_jproxy_tunnels_servers(void **state)
{
    static const char yaml[] =
        "version: 1\n"
        "users:\n"
        "  - name: alice\n"
        "    jproxy_user_file: jproxy/alice.dat\n"
        "listeners:\n"
        "  - name: local\n"
        "    type: socks5\n"
        "    listen: 127.0.0.1:1080\n"
        "    route: jp\n"
        "  - name: fwd\n"
        "    type: forward\n"
        "    listen: 127.0.0.1:2222\n"
        "    target: example.com:22\n"
        "    route: jp2\n"
        "  - {name: out, type: http, listen: '127.0.0.1:3128', route: direct}\n"
        "tunnels:\n"
        "  - name: jp\n"
        "    protocol: jproxy\n"
        "    server: server.example:16385\n"
        "    key_file: key.dat\n"
        "    reconnect_max: 1m\n"
        "    max_streams: 65535\n"
        "  - name: jp2\n"
        "    protocol: jproxy\n"
        "    server: \"[2001:db8::1]\"\n"
        "    private_key: /keys/client.pem\n"
        "    token: " TOKEN64 "\n"
        "  - {protocol: jproxy, name: jp3, server: 10.0.0.1, key_file: k.dat}\n"
        "servers:\n"
        "  - name: jproxy-in\n"
        "    protocol: jproxy\n"
        "    listen: 0.0.0.0:16384\n"
        "    users_dir: jproxy-users\n"
        "    max_streams: 1\n"
        "  - name: jproxy-in2\n"
        "    protocol: jproxy\n"
        "    listen: 0.0.0.0:0\n"
        "  - {name: jproxy-in3, protocol: jproxy, listen: '0.0.0.0:0'}\n";
    struct td_config *cfg = load_ok("/etc/tunneld/tunneld.yaml", yaml);
    const struct cfg_tunnel *t;
    const struct cfg_server *sv;

    (void)state;
    assert_string_equal(cfg->listeners[0].route, "jp");
    assert_string_equal(cfg->listeners[1].route, "jp2");
    assert_string_equal(cfg->listeners[2].route, "direct");
    assert_int_equal(cfg->n_tunnels, 3);
    t = &cfg->tunnels[0];
    assert_ptr_equal(cfg_find_tunnel(cfg, "jp"), t);
    assert_string_equal(t->name, "jp");
    assert_int_equal(t->protocol, CFG_PROTO_JPROXY);
    assert_string_equal(t->jp_server.host, "server.example");
    assert_int_equal(t->jp_server.port, 16385);
    assert_int_equal(t->jp_server.kind, TD_HOST_NAME);
    assert_string_equal(t->key_file, "/etc/tunneld/key.dat");
    assert_null(t->private_key);
    assert_null(t->token);
    assert_int_equal(t->reconnect_max_ms, 60000);
    assert_int_equal(t->max_streams, 65535);
    /* No wstan values on a jproxy tunnel. */
    assert_null(t->url);
    assert_null(t->path);
    assert_null(t->key);
    assert_null(t->tls_ca);
    assert_null(t->tls_sni);
    assert_false(t->has_http_proxy);
    t = &cfg->tunnels[1];
    assert_ptr_equal(cfg_find_tunnel(cfg, "jp2"), t);
    assert_int_equal(t->protocol, CFG_PROTO_JPROXY);
    assert_string_equal(t->jp_server.host, "2001:db8::1");
    assert_int_equal(t->jp_server.kind, TD_HOST_IPV6);
    assert_int_equal(t->jp_server.port, 16384); /* the default */
    assert_null(t->key_file);
    assert_string_equal(t->private_key, "/keys/client.pem");
    assert_string_equal(t->token, TOKEN64);
    assert_int_equal(t->reconnect_max_ms, 30000); /* defaults */
    assert_int_equal(t->max_streams, 1024);
    t = &cfg->tunnels[2];
    assert_string_equal(t->name, "jp3");
    assert_string_equal(t->jp_server.host, "10.0.0.1");
    assert_int_equal(t->jp_server.kind, TD_HOST_IPV4);
    assert_int_equal(t->jp_server.port, 16384);
    assert_string_equal(t->key_file, "/etc/tunneld/k.dat");
    assert_null(cfg_find_tunnel(cfg, "jp4"));
    assert_null(cfg_find_tunnel(cfg, "direct"));
    assert_null(cfg_find_tunnel(cfg, NULL));
    assert_null(cfg_find_tunnel(NULL, "jp"));

    assert_int_equal(cfg->n_servers, 3);
    sv = &cfg->servers[0];
    assert_string_equal(sv->name, "jproxy-in");
    assert_int_equal(sv->protocol, CFG_PROTO_JPROXY);
    assert_string_equal(sv->listen.host, "0.0.0.0");
    assert_int_equal(sv->listen.port, 16384);
    assert_string_equal(sv->users_dir, "/etc/tunneld/jproxy-users");
    assert_int_equal(sv->max_streams, 1);
    assert_null(sv->path);
    assert_null(sv->tls_cert);
    assert_null(sv->tls_key);
    assert_null(sv->keys);
    assert_int_equal(sv->n_keys, 0);
    sv = &cfg->servers[1];
    assert_string_equal(sv->name, "jproxy-in2");
    assert_int_equal(sv->listen.port, 0); /* port 0 may repeat */
    assert_null(sv->users_dir);           /* alice's file is enough */
    assert_int_equal(sv->max_streams, 1024);
    assert_string_equal(cfg->servers[2].name, "jproxy-in3");

    assert_string_equal(cfg_protocol_name(CFG_PROTO_JPROXY), "jproxy");
    assert_string_equal(cfg_protocol_name(CFG_PROTO_WSTAN), "wstan");
    assert_string_equal(cfg_protocol_name((enum cfg_protocol)7), "?");
    cfg_free(cfg);

    /* Empty sections are fine. */
    cfg = load_ok("t.yaml", BASE "tunnels:\nservers: []\n");
    assert_int_equal(cfg->n_tunnels, 0);
    assert_null(cfg->tunnels);
    assert_int_equal(cfg->n_servers, 0);
    assert_null(cfg->servers);
    cfg_free(cfg);
}

/* A full wstan config loads, with every key in its place. */
static void test_wstan_full(void **state)
{
    struct td_config *cfg;
    (void)state;
    cfg = load_ok("t.yaml",
                  "version: 1\n"
                  "users:\n"
                  "  - name: bob\n"
                  "    wstan_key: \"AAECAwQFBgcICQoLDA0ODw==\"\n"
                  "listeners:\n"
                  "  - name: local\n"
                  "    type: socks5\n"
                  "    listen: 127.0.0.1:1080\n"
                  "    route: ws\n"
                  "tunnels:\n"
                  "  - name: ws\n"
                  "    protocol: wstan\n"
                  "    url: wss://server.example/tun\n"
                  "    key: \"AAECAwQFBgcICQoLDA0ODw==\"\n"
                  "    nonce_mode: compatible\n"
                  "    pool: {size: 0, max_idle: 0}\n"
                  "    tls: {ca: ca.pem, verify: false, sni: front.example}\n"
                  "    http_proxy: proxy.local:3128\n"
                  "  - {name: ws2, protocol: wstan, url: \"WS://[::1]:8080\", key: pw, "
                  "http_proxy: \"\"}\n"
                  "  - {name: jp, protocol: jproxy, server: h, key_file: k.dat}\n"
                  "servers:\n"
                  "  - name: wstan-in\n"
                  "    protocol: wstan\n"
                  "    listen: 0.0.0.0:8080\n"
                  "    path: /ws\n"
                  "    nonce_mode: default\n"
                  "    tls: {cert: server.crt, key: server.key}\n"
                  "    keys: [\"AAECAwQFBgcICQoLDA0ODw==\", other]\n"
                  "    timestamp_window: 1h\n"
                  "  - {name: wstan-in2, protocol: wstan, listen: 0.0.0.0:8081, tls: {}}\n");
    assert_int_equal(cfg->n_tunnels, 3);
    assert_int_equal(cfg->tunnels[0].protocol, CFG_PROTO_WSTAN);
    assert_true(cfg->tunnels[0].tls);
    assert_string_equal(cfg->tunnels[0].path, "/tun/");
    assert_int_equal(cfg->tunnels[0].nonce_mode, CFG_NONCE_COMPATIBLE);
    assert_int_equal(cfg->tunnels[0].pool_size, 0);
    assert_false(cfg->tunnels[0].tls_verify);
    assert_string_equal(cfg->tunnels[0].tls_sni, "front.example");
    assert_true(cfg->tunnels[0].has_http_proxy);
    assert_int_equal(cfg->tunnels[0].http_proxy.port, 3128);
    assert_int_equal(cfg->tunnels[1].server.port, 8080);
    assert_false(cfg->tunnels[1].tls);
    assert_false(cfg->tunnels[1].has_http_proxy);
    assert_int_equal(cfg->n_servers, 2);
    assert_string_equal(cfg->servers[0].path, "/ws/");
    assert_int_equal(cfg->servers[0].n_keys, 2);
    assert_int_equal(cfg->servers[0].timestamp_window_ms, 3600 * 1000);
    assert_non_null(cfg->servers[0].tls_cert);
    assert_null(cfg->servers[1].tls_cert);
    cfg_free(cfg);
}

static void test_tunnel_errors(void **state)
{
    (void)state;
    /* URLs. */
    EXPECT_ERRORS(BASE "tunnels:\n"
                       "  - name: t\n"
                       "    protocol: wstan\n"
                       "    url: http://server.example/\n"
                       "    key: k\n"
                       "  - {name: t2, protocol: wstan, key: k, url: 'ws://h/p?x=1'}\n"
                       "  - {name: t3, protocol: wstan, key: k, url: 'wss://me@h/'}\n"
                       "  - {name: t4, protocol: wstan, key: k, url: 'ws://h:0/'}\n"
                       "  - {name: t5, protocol: wstan, key: k, url: 'ws:///x'}\n"
                       "  - {name: t6, protocol: wstan, key: k, url: 'ws://::1/'}\n",
                  "t.yaml:9:10: tunnels[0].url: invalid url 'http://server.example/': the scheme "
                  "must be ws:// or wss://",
                  "t.yaml:11:46: tunnels[1].url: invalid url 'ws://h/p?x=1': a query or fragment "
                  "is not allowed",
                  "t.yaml:12:46: tunnels[2].url: invalid url 'wss://me@h/': user info (user@) is "
                  "not allowed",
                  "t.yaml:13:46: tunnels[3].url: invalid url 'ws://h:0/': port 0 is not allowed "
                  "here",
                  "t.yaml:14:46: tunnels[4].url: invalid url 'ws:///x': empty host",
                  "t.yaml:15:46: tunnels[5].url: invalid url 'ws://::1/': IPv6 addresses must be "
                  "written in brackets, as [::1]:port");
    /* TLS settings on ws://, and the other wstan values. */
    EXPECT_ERRORS(BASE "tunnels:\n"
                       "  - name: t\n"
                       "    protocol: wstan\n"
                       "    url: ws://server.example:8080/\n"
                       "    key: \"\"\n"
                       "    tls: {verify: yes, sni: 10.0.0.1}\n"
                       "    nonce_mode: cookie\n"
                       "    pool: {size: 1025, max_idle: 5}\n"
                       "    http_proxy: proxy\n",
                  "t.yaml:10:10: tunnels[0].key: must not be empty",
                  "t.yaml:11:5: tunnels[0].tls: TLS settings need a wss:// url (this tunnel's url "
                  "is ws://)",
                  "t.yaml:11:19: tunnels[0].tls.verify: expected true or false, got 'yes'",
                  "t.yaml:11:29: tunnels[0].tls.sni: invalid host name '10.0.0.1' (SNI needs a "
                  "DNS name)",
                  "t.yaml:12:17: tunnels[0].nonce_mode: unknown nonce mode 'cookie' (expected "
                  "default or compatible)",
                  "t.yaml:13:18: tunnels[0].pool.size: 1025 is out of range (0-1024)",
                  "t.yaml:13:34: tunnels[0].pool.max_idle: '5' has no unit (write e.g. 5s or 5ms)",
                  "t.yaml:14:17: tunnels[0].http_proxy: invalid address 'proxy': missing port");
    /* jproxy keys: neither, both, half. */
    EXPECT_ERRORS(BASE "tunnels:\n"
                       "  - name: none\n"
                       "    protocol: jproxy\n"
                       "    server: h:1\n"
                       "  - name: both\n"
                       "    protocol: jproxy\n"
                       "    server: h:1\n"
                       "    key_file: key.dat\n"
                       "    private_key: client.pem\n"
                       "    token: " TOKEN64 "\n"
                       "  - {name: half, protocol: jproxy, server: h, private_key: c.pem}\n"
                       "  - {name: half2, protocol: jproxy, server: h, token: " TOKEN64 "}\n",
                  "t.yaml:7:5: tunnels[0].key_file: missing required key (a jproxy tunnel needs "
                  "key_file, or private_key and token)",
                  "t.yaml:14:5: tunnels[1].private_key: give either key_file, or private_key and "
                  "token, not both",
                  "t.yaml:16:5: tunnels[2].token: missing required key (private_key needs a "
                  "token)",
                  "t.yaml:17:5: tunnels[3].private_key: missing required key (token needs a "
                  "private_key)");
    /* Tokens and the other jproxy values; the token is not quoted back. */
    EXPECT_ERRORS(BASE "tunnels:\n"
                       "  - name: t\n"
                       "    protocol: jproxy\n"
                       "    server: h:99999\n"
                       "    private_key: c.pem\n"
                       "    token: 0011\n"
                       "    reconnect_max: 2h\n"
                       "    max_streams: 0\n"
                       "  - {name: t2, protocol: jproxy, server: h, private_key: c.pem, "
                       "token: " TOKEN64 "0}\n"
                       "  - {name: t3, protocol: jproxy, server: h, private_key: c.pem, "
                       "token: 0011223344556677889900112233445566778899001122334455667788990g}\n",
                  "t.yaml:9:13: tunnels[0].server: invalid address 'h:99999': port must be at "
                  "most 65535",
                  "t.yaml:11:12: tunnels[0].token: must be 64 hex digits (the 32-byte login "
                  "token)",
                  "t.yaml:12:20: tunnels[0].reconnect_max: must be at most 1h",
                  "t.yaml:13:18: tunnels[0].max_streams: 0 is out of range (1-65535)",
                  "t.yaml:14:72: tunnels[1].token: must be 64 hex digits (the 32-byte login "
                  "token)",
                  "t.yaml:15:72: tunnels[2].token: must be 64 hex digits (the 32-byte login "
                  "token)");
    /* The other protocol's keys, whichever comes first; missing keys. */
    EXPECT_ERRORS(BASE "tunnels:\n"
                       "  - name: jp\n"
                       "    url: ws://h/\n"
                       "    protocol: jproxy\n"
                       "    server: h:1\n"
                       "    key_file: k.dat\n"
                       "    pool: {size: 1}\n"
                       "  - name: ws\n"
                       "    protocol: wstan\n"
                       "    url: ws://h/\n"
                       "    key: k\n"
                       "    max_streams: 10\n"
                       "    server: h:1\n"
                       "  - name: nothing\n"
                       "    protocol: wstan\n"
                       "  - {name: np, server: h:1, colour: red}\n",
                  "t.yaml:8:5: tunnels[0].url: 'url' is a wstan key; this tunnel's protocol is "
                  "jproxy",
                  "t.yaml:12:5: tunnels[0].pool: 'pool' is a wstan key; this tunnel's protocol is "
                  "jproxy",
                  "t.yaml:17:5: tunnels[1].max_streams: 'max_streams' is a jproxy key; this "
                  "tunnel's protocol is wstan",
                  "t.yaml:18:5: tunnels[1].server: 'server' is a jproxy key; this tunnel's "
                  "protocol is wstan",
                  "t.yaml:19:5: tunnels[2].url: missing required key",
                  "t.yaml:19:5: tunnels[2].key: missing required key",
                  "t.yaml:21:5: tunnels[3].protocol: missing required key",
                  "t.yaml:21:29: tunnels[3].colour: unknown key");
    EXPECT_ERRORS(BASE "tunnels:\n"
                       "  - {name: t, protocol: ssh}\n"
                       "  - {name: t2, protocol: [jproxy]}\n",
                  "t.yaml:7:25: tunnels[0].protocol: unknown protocol 'ssh' (expected wstan or "
                  "jproxy)",
                  "t.yaml:8:26: tunnels[1].protocol: expected a protocol, got a list");
}

static void test_tunnel_names_and_routes(void **state)
{
    (void)state;
    /* Duplicate names, the reserved name, and routes to unknown tunnels
     * ("tunnels:" may come after "listeners:"). */
    EXPECT_ERRORS(PROTO_HEAD "  - {name: a, type: socks5, listen: 'h:1', route: jp}\n"
                             "  - {name: b, type: socks5, listen: 'h:2', route: nowhere}\n"
                             "  - {name: c, type: forward, listen: 'h:3', target: 'x:1', "
                             "route: Jp}\n"
                             "tunnels:\n"
                             "  - {name: jp, protocol: jproxy, server: h, key_file: k}\n"
                             "  - {name: jp, protocol: jproxy, server: h, key_file: k}\n"
                             "  - {name: direct, protocol: jproxy, server: h, key_file: k}\n",
                  "t.yaml:6:51: listeners[1].route: unknown tunnel 'nowhere'",
                  "t.yaml:7:67: listeners[2].route: unknown tunnel 'Jp'",
                  "t.yaml:10:12: tunnels[1].name: duplicate tunnel name 'jp' (first defined at "
                  "9:12)",
                  "t.yaml:11:12: tunnels[2].name: the name 'direct' is reserved (a listener's "
                  "'route: direct' means no tunnel)");
    /* With no tunnels at all. */
    EXPECT_ERRORS(BASE "    route: to-server\n",
                  "t.yaml:6:12: listeners[0].route: unknown tunnel 'to-server'");
    /* A tunnel whose name is bad already has an error; routes are not
     * blamed for it. */
    EXPECT_ERRORS(BASE "    route: 'my tunnel'\n"
                       "tunnels: [{name: 'my tunnel', protocol: jproxy, server: h, key_file: k}]\n",
                  "t.yaml:7:18: tunnels[0].name: invalid name 'my tunnel' (use 1 to 64 letters, "
                  "digits, '.', '_' or '-')");
}

static void test_server_errors(void **state)
{
    (void)state;
    /* Servers without keys or users load: their users may be managed ones,
     * which live in the state. */
    {
        struct td_config *cfg = load_ok("t.yaml", BASE "servers:\n"
                                                       "  - name: ws\n"
                                                       "    protocol: wstan\n"
                                                       "    listen: 0.0.0.0:8080\n"
                                                       "    keys: []\n"
                                                       "  - name: jp\n"
                                                       "    protocol: jproxy\n"
                                                       "    listen: 0.0.0.0:16384\n");
        assert_int_equal(cfg->n_servers, 2);
        assert_int_equal(cfg->servers[0].n_keys, 0);
        assert_null(cfg->servers[1].users_dir);
        cfg_free(cfg);
    }
    /* The wstan server's values. */
    EXPECT_ERRORS(PROTO_HEAD "  - {name: a, type: socks5, listen: 'h:1'}\n"
                             "servers:\n"
                             "  - name: ws\n"
                             "    protocol: wstan\n"
                             "    listen: 0.0.0.0:8080\n"
                             "    path: ws\n"
                             "    tls: {cert: server.crt}\n"
                             "    keys: [k, \"\", [x]]\n"
                             "    timestamp_window: 500ms\n"
                             "    users_dir: d\n"
                             "  - name: ws2\n"
                             "    protocol: wstan\n"
                             "    listen: 0.0.0.0:8081\n"
                             "    tls: {key: server.key}\n"
                             "    keys: k\n"
                             "    timestamp_window: 2h\n"
                             "    path: /a b\n",
                  "t.yaml:10:11: servers[0].path: invalid path 'ws' (it must start with '/' and "
                  "have no query, fragment or spaces)",
                  "t.yaml:11:10: servers[0].tls.key: missing required key (tls.cert and tls.key "
                  "go together)",
                  "t.yaml:12:15: servers[0].keys[1]: must not be empty",
                  "t.yaml:12:19: servers[0].keys[2]: expected a key, got a list",
                  "t.yaml:13:23: servers[0].timestamp_window: must be at least 1s",
                  "t.yaml:14:5: servers[0].users_dir: 'users_dir' is a jproxy key; this server's "
                  "protocol is wstan",
                  "t.yaml:18:10: servers[1].tls.cert: missing required key (tls.cert and tls.key "
                  "go together)",
                  "t.yaml:19:11: servers[1].keys: expected a list of keys, got a plain value",
                  "t.yaml:20:23: servers[1].timestamp_window: must be at most 1h",
                  "t.yaml:21:11: servers[1].path: invalid path '/a b' (it must start with '/' and "
                  "have no query, fragment or spaces)");
    /* Listen addresses, names, the other protocol's keys. */
    EXPECT_ERRORS(PROTO_HEAD "  - {name: a, type: socks5, listen: 'h:1'}\n"
                             "servers:\n"
                             "  - {name: s1, protocol: jproxy, listen: '0.0.0.0:16384'}\n"
                             "  - {name: s2, protocol: jproxy, listen: 'LOCALHOST:1'}\n"
                             "  - {name: s1, protocol: jproxy, listen: '0.0.0.0:16384'}\n"
                             "  - {name: s4, protocol: jproxy, listen: 'localhost:1', "
                             "keys: [k], max_streams: 65536}\n"
                             "  - {name: s5, protocol: jproxy}\n"
                             "  - {name: s6, protocol: jproxy, listen: '[::]:16384', path: /}\n",
                  "t.yaml:9:12: servers[2].name: duplicate server name 's1' (first defined at "
                  "7:12)",
                  "t.yaml:9:42: servers[2].listen: servers[0] already listens on this address (at "
                  "7:42)",
                  "t.yaml:10:42: servers[3].listen: servers[1] already listens on this address "
                  "(at 8:42)",
                  "t.yaml:10:57: servers[3].keys: 'keys' is a wstan key; this server's protocol "
                  "is jproxy",
                  "t.yaml:10:81: servers[3].max_streams: 65536 is out of range (1-65535)",
                  "t.yaml:11:5: servers[4].listen: missing required key",
                  "t.yaml:12:56: servers[5].path: 'path' is a wstan key; this server's protocol "
                  "is jproxy");
}

static void test_limits(void **state)
{
    (void)state;
    EXPECT_ERRORS(BASE "limits:\n"
                       "  idle_timeout: 300\n"
                       "  connect_timeout: -1s\n"
                       "  linger: 10 s\n"
                       "  dns_timeout: 0\n"
                       "  udp_timeout: 31d\n"
                       "  handshake_timeout: 99999999999999999999d\n"
                       "  drain_timeout: 1w\n",
                  "t.yaml:7:17: limits.idle_timeout: '300' has no unit (write e.g. 300s or 300ms)",
                  "t.yaml:8:20: limits.connect_timeout: invalid duration '-1s' (write e.g. "
                  "250ms, 10s, 5m, 1h or 1d)",
                  "t.yaml:9:11: limits.linger: invalid duration '10 s' (write e.g. 250ms, 10s, "
                  "5m, 1h or 1d)",
                  "t.yaml:10:16: limits.dns_timeout: must be at least 1ms",
                  "t.yaml:11:16: limits.udp_timeout: must be at most 30d",
                  "t.yaml:12:22: limits.handshake_timeout: invalid duration "
                  "'99999999999999999999d' (write e.g. 250ms, 10s, 5m, 1h or 1d)",
                  "t.yaml:13:18: limits.drain_timeout: invalid duration '1w' (write e.g. 250ms, "
                  "10s, 5m, 1h or 1d)");
    EXPECT_ERRORS(BASE "limits:\n"
                       "  buffer: 1KiB\n"
                       "limits:\n",
                  "t.yaml:7:11: limits.buffer: 1KiB is out of range (4KiB-64MiB)",
                  "t.yaml:8:1: limits: duplicate key (first defined at 6:1)");
    EXPECT_ERRORS(BASE "limits: {buffer: 65MiB}\n",
                  "t.yaml:6:18: limits.buffer: 65MiB is out of range (4KiB-64MiB)");
    EXPECT_ERRORS(BASE "limits: {buffer: lots}\n",
                  "t.yaml:6:18: limits.buffer: invalid size 'lots' (write e.g. 64KiB or 1MiB)");
}

static void test_log_and_paths(void **state)
{
    char longpath[200];

    (void)state;
    EXPECT_ERRORS(BASE "log:\n"
                       "  level: verbose\n"
                       "  file: \"\"\n",
                  "t.yaml:7:10: log.level: unknown level 'verbose' (expected error, warn, info, "
                  "debug or trace)",
                  "t.yaml:8:9: log.file: must not be empty");
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    {
        char yaml[512];
        snprintf(yaml, sizeof(yaml), BASE "control: {socket: %s}\n", longpath);
        EXPECT_ERRORS(yaml, "t.yaml:6:19: control.socket: socket path too long (at most 103 "
                            "bytes once resolved)");
    }
    EXPECT_ERRORS(BASE "users: [{name: 'bad name', password: p}]\n",
                  "t.yaml:6:16: users[0].name: invalid name 'bad name' (use 1 to 64 letters, "
                  "digits, '.', '_' or '-')");
    EXPECT_ERRORS(BASE "users: [{name: u, password: \"a\\0b\"}]\n",
                  "t.yaml:6:29: users[0].password: the value contains a NUL character");
}

static void test_yaml_syntax(void **state)
{
    (void)state;
    EXPECT_ERRORS(BASE "log: level: info\n",
                  "t.yaml:6:11: yaml: mapping values are not allowed in this context");
    EXPECT_ERRORS("version: 1\nlisteners: [a, b\n",
                  "t.yaml:3:1: yaml: did not find expected ',' or ']' (while parsing a flow "
                  "sequence at 2:12)");
    EXPECT_ERRORS("version: 1\nlog:\n  level: info\n file: x\n",
                  "t.yaml:4:2: yaml: did not find expected key (while parsing a block mapping "
                  "at 1:1)");
    EXPECT_ERRORS("version: 1\nlisteners:\n  - a\n  b: c\n",
                  "t.yaml:4:3: yaml: did not find expected '-' indicator (while parsing a block "
                  "collection at 3:3)");
    EXPECT_ERRORS(BASE "users: *nope\n", "t.yaml:6:8: yaml: found undefined alias");
    EXPECT_ERRORS("version: 1\nname: \"caf\xc3\n",
                  "t.yaml:2:12: yaml: invalid trailing UTF-8 octet");
    EXPECT_ERRORS(BASE "---\nversion: 1\n", "t.yaml:6:1: yaml: only one document is allowed per "
                                            "file");
    EXPECT_ERRORS("", "t.yaml:1:1: yaml: the file is empty (a config needs at least 'version' and "
                      "'listeners')");
    EXPECT_ERRORS("# only a comment\n", "t.yaml:1:1: yaml: the file is empty (a config needs at "
                                        "least 'version' and 'listeners')");
    EXPECT_ERRORS("hello\n", "t.yaml:1:1: yaml: expected a mapping of settings at the top level, "
                             "got a plain value");
    EXPECT_ERRORS("- 1\n", "t.yaml:1:1: yaml: expected a mapping of settings at the top level, "
                           "got a list");
}

static void test_multiple_errors_sorted(void **state)
{
    (void)state;
    /* Errors from the cross-file checks (auth without passwords) and the
     * per-list checks (duplicate names) come out in file order. */
    EXPECT_ERRORS("listeners:\n"
                  "  - {name: a, type: socks5, listen: 'h:1', auth: users}\n"
                  "  - {name: a, type: socks5, listen: 'h:99999'}\n"
                  "limits: {buffer: 1}\n"
                  "bogus: 1\n",
                  "t.yaml:1:1: version: missing required key",
                  "t.yaml:2:50: listeners[0].auth: 'auth: users' needs at least one user with a "
                  "password",
                  "t.yaml:3:12: listeners[1].name: duplicate listener name 'a' (first defined at "
                  "2:12)",
                  "t.yaml:3:37: listeners[1].listen: invalid address 'h:99999': port must be at "
                  "most 65535",
                  "t.yaml:4:18: limits.buffer: 1 is out of range (4KiB-64MiB)",
                  "t.yaml:5:1: bogus: unknown key");
}

static void test_alias_bomb(void **state)
{
    /* One anchored user, expanded 40000 times: a small file, a huge walk. */
    static const char head[] = "version: 1\n"
                               "listeners: [{name: a, type: http, listen: 'h:1'}]\n"
                               "users: [&u {name: u, password: p}";
    size_t n = 40000, len = 0;
    char *yaml = malloc(sizeof(head) + n * 4 + 4);
    struct td_config *cfg = NULL;
    struct cfg_errors errs;
    int rc;

    (void)state;
    assert_non_null(yaml);
    memcpy(yaml, head, sizeof(head) - 1);
    len = sizeof(head) - 1;
    for (size_t i = 0; i < n; i++) {
        memcpy(yaml + len, ", *u", 4);
        len += 4;
    }
    memcpy(yaml + len, "]\n", 2);
    len += 2;
    rc = cfg_load_buffer("t.yaml", yaml, len, &cfg, &errs);
    assert_int_equal(rc, TD_ECONFIG);
    assert_null(cfg);
    assert_true(errs.n >= 2 && errs.n <= 1001);
    assert_string_equal(errs.msgs[0], "t.yaml:1:1: yaml: the document is too complex (more than "
                                      "100000 nodes; aliases expand to every place they are "
                                      "used)");
    assert_string_equal(errs.msgs[errs.n - 1],
                        "t.yaml: too many errors; only the first 1000 are shown");
    cfg_errors_free(&errs);
    free(yaml);
}

static void test_too_large(void **state)
{
    size_t len = TD_CONFIG_MAX_FILE + 1;
    char *yaml = malloc(len);
    char want[128];

    (void)state;
    assert_non_null(yaml);
    memset(yaml, '#', len);
    snprintf(want, sizeof(want), "t.yaml: too large (%zu bytes; the limit is %u)", len,
             TD_CONFIG_MAX_FILE);
    {
        const char *w[] = {want};
        expect_errors(yaml, len, w, 1);
    }
    free(yaml);
}

static void test_api_edges(void **state)
{
    struct td_config *cfg = NULL;
    struct cfg_errors errs;

    (void)state;
    /* errs may be NULL. */
    assert_int_equal(cfg_load_buffer("t.yaml", "x: 1\n", 5, &cfg, NULL), TD_ECONFIG);
    assert_null(cfg);
    assert_int_equal(cfg_load_buffer("t.yaml", BASE, strlen(BASE), &cfg, NULL), 0);
    assert_non_null(cfg);
    cfg_free(cfg);
    cfg = NULL;
    assert_int_equal(cfg_load_buffer("t.yaml", NULL, 3, &cfg, &errs), TD_EINVAL);
    assert_int_equal(errs.n, 0);
    assert_int_equal(cfg_load_buffer("t.yaml", "", 0, NULL, &errs), TD_EINVAL);
    assert_int_equal(cfg_load_file(NULL, &cfg, &errs), TD_EINVAL);
    cfg_free(NULL);
    cfg_errors_free(NULL);
}

static void test_files(void **state)
{
    struct td_config *cfg = NULL;
    struct cfg_errors errs;
    const char *dir = TD_TEST_DATA_DIR;
    char path[1024], want[1200];
    int rc;

    (void)state;
    snprintf(path, sizeof(path), "%s/config_good.yaml", dir);
    rc = cfg_load_file(path, &cfg, &errs);
    for (size_t i = 0; i < errs.n; i++)
        print_error("unexpected: %s\n", errs.msgs[i]);
    assert_int_equal(rc, 0);
    assert_string_equal(cfg->path, path);
    assert_string_equal(cfg->dir, dir);
    assert_int_equal(cfg->log.level, TD_LOG_WARN);
    snprintf(want, sizeof(want), "%s/logs/tunneld.log", dir);
    assert_string_equal(cfg->log.file, want);
    snprintf(want, sizeof(want), "%s/state", dir);
    assert_string_equal(cfg->state_dir, want);
    snprintf(want, sizeof(want), "%s/jproxy/alice.dat", dir);
    assert_string_equal(cfg->users[0].jproxy_user_file, want);
    assert_string_equal(cfg->control.socket, "/run/tunneld/test.sock");
    assert_int_equal(cfg->limits.max_connections, 500);
    assert_int_equal(cfg->limits.handshake_timeout_ms, 3000);
    assert_int_equal(cfg->n_listeners, 1);
    assert_int_equal(cfg->listeners[0].auth, CFG_AUTH_USERS);
    assert_string_equal(cfg->listeners[0].route, "jp");
    /* Key files and directories resolve against the config's directory. */
    assert_int_equal(cfg->n_tunnels, 1);
    assert_ptr_equal(cfg_find_tunnel(cfg, "jp"), &cfg->tunnels[0]);
    assert_int_equal(cfg->tunnels[0].jp_server.port, 16384);
    snprintf(want, sizeof(want), "%s/keys/key.dat", dir);
    assert_string_equal(cfg->tunnels[0].key_file, want);
    assert_int_equal(cfg->n_servers, 1);
    snprintf(want, sizeof(want), "%s/jproxy-users", dir);
    assert_string_equal(cfg->servers[0].users_dir, want);
    cfg_free(cfg);
    cfg = NULL;

    snprintf(path, sizeof(path), "%s/config_bad.yaml", dir);
    rc = cfg_load_file(path, &cfg, &errs);
    assert_int_equal(rc, TD_ECONFIG);
    assert_null(cfg);
    assert_int_equal(errs.n, 2);
    snprintf(want, sizeof(want),
             "%s:5:11: listeners[0].type: unknown listener type 'sock5' (expected socks5, http, "
             "mixed or forward)",
             path);
    assert_string_equal(errs.msgs[0], want);
    snprintf(want, sizeof(want), "%s:7:5: listeners[0].color: unknown key", path);
    assert_string_equal(errs.msgs[1], want);
    cfg_errors_free(&errs);

    snprintf(path, sizeof(path), "%s/does-not-exist.yaml", dir);
    rc = cfg_load_file(path, &cfg, &errs);
    assert_int_equal(rc, TD_EIO);
    assert_null(cfg);
    assert_int_equal(errs.n, 1);
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
    assert_string_equal(errs.msgs[0], want);
    cfg_errors_free(&errs);

    /* A directory opens but cannot be read. */
    rc = cfg_load_file(dir, &cfg, &errs);
    assert_int_equal(rc, TD_EIO);
    assert_int_equal(errs.n, 1);
    snprintf(want, sizeof(want), "%s: cannot read: Is a directory", dir);
    assert_string_equal(errs.msgs[0], want);
    cfg_errors_free(&errs);
}

static bool rules_allow(const struct cfg_rules *r, const char *addr)
{
    uint8_t ip[16];

    if (strchr(addr, ':')) {
        assert_int_equal(td_ipv6_parse(addr, strlen(addr), ip), 0);
        return cfg_rules_allow(r, 6, ip);
    }
    assert_int_equal(td_ipv4_parse(addr, strlen(addr), ip), 0);
    return cfg_rules_allow(r, 4, ip);
}

static bool allows(const struct cfg_listener *l, const char *addr)
{
    return rules_allow(&l->rules, addr);
}

static void test_acl(void **state)
{
    static const char yaml[] = "version: 1\n"
                               "listeners:\n"
                               "  - name: public\n"
                               "    type: socks5\n"
                               "    listen: 0.0.0.0:1080\n"
                               "    deny:\n"
                               "      - 127.0.0.0/8\n"
                               "      - 10.0.0.0/8\n"
                               "      - \"::1/128\"\n"
                               "      - 'fe80::/10'\n"
                               "      - 192.168.1.1\n"
                               "  - name: lan\n"
                               "    type: http\n"
                               "    listen: 127.0.0.1:3128\n"
                               "    allow: [10.0.0.0/8, '2001:db8::/32']\n"
                               "    deny: [10.0.0.1/32]\n"
                               "  - name: open\n"
                               "    type: mixed\n"
                               "    listen: 127.0.0.1:1081\n"
                               "    deny: []\n"
                               "  - name: fwd\n"
                               "    type: forward\n"
                               "    listen: 127.0.0.1:2222\n"
                               "    target: 10.1.2.3:22\n"
                               "    allow: [10.1.0.0/16]\n";
    struct td_config *cfg = load_ok("t.yaml", yaml);
    const struct cfg_listener *l;

    (void)state;
    assert_int_equal(cfg->n_listeners, 4);

    /* Only deny rules: everything else is allowed. */
    l = &cfg->listeners[0];
    assert_int_equal(l->rules.n_allow, 0);
    assert_null(l->rules.allow);
    assert_int_equal(l->rules.n_deny, 5);
    assert_int_equal(l->rules.deny[0].family, 4);
    assert_int_equal(l->rules.deny[0].prefix, 8);
    assert_int_equal(l->rules.deny[0].ip[0], 127);
    assert_int_equal(l->rules.deny[2].family, 6);
    assert_int_equal(l->rules.deny[2].prefix, 128);
    assert_int_equal(l->rules.deny[2].ip[15], 1);
    assert_int_equal(l->rules.deny[3].prefix, 10);
    assert_int_equal(l->rules.deny[4].prefix, 32);
    assert_false(allows(l, "127.0.0.1"));
    assert_false(allows(l, "127.255.0.9"));
    assert_false(allows(l, "10.20.30.40"));
    assert_false(allows(l, "192.168.1.1"));
    assert_true(allows(l, "192.168.1.2"));
    assert_false(allows(l, "::1"));
    assert_false(allows(l, "fe80::1234"));
    assert_true(allows(l, "8.8.8.8"));
    assert_true(allows(l, "2001:db8::1"));
    /* A mapped address cannot sneak past an IPv4 deny rule. */
    assert_false(allows(l, "::ffff:127.0.0.1"));
    assert_false(allows(l, "::ffff:10.0.0.1"));
    assert_true(allows(l, "::ffff:8.8.8.8"));

    /* allow and deny: inside an allow rule and outside every deny rule;
     * deny wins. */
    l = &cfg->listeners[1];
    assert_int_equal(l->rules.n_allow, 2);
    assert_int_equal(l->rules.n_deny, 1);
    assert_true(allows(l, "10.0.0.2"));
    assert_true(allows(l, "::ffff:10.9.9.9"));
    assert_false(allows(l, "10.0.0.1"));
    assert_false(allows(l, "::ffff:10.0.0.1"));
    assert_false(allows(l, "11.0.0.1"));
    assert_true(allows(l, "2001:db8:1::1"));
    assert_false(allows(l, "2001:db9::1"));
    assert_false(allows(l, "::1"));

    /* "deny: []" denies nothing; no rules at all allow everything. */
    l = &cfg->listeners[2];
    assert_int_equal(l->rules.n_allow, 0);
    assert_int_equal(l->rules.n_deny, 0);
    assert_true(allows(l, "127.0.0.1"));
    assert_true(allows(l, "::1"));

    /* Forward listeners take rules too. */
    l = &cfg->listeners[3];
    assert_int_equal(l->rules.n_allow, 1);
    assert_true(allows(l, "10.1.2.3"));
    assert_false(allows(l, "10.2.0.1"));

    /* Bad arguments are refused. */
    assert_false(cfg_rules_allow(NULL, 4, l->rules.allow[0].ip));
    assert_false(cfg_rules_allow(&l->rules, 4, NULL));
    assert_false(cfg_rules_allow(&l->rules, 0, l->rules.allow[0].ip));
    cfg_free(cfg);

    /* Every listener without the keys allows every target. */
    cfg = load_ok("t.yaml", BASE);
    assert_int_equal(cfg->listeners[0].rules.n_allow, 0);
    assert_int_equal(cfg->listeners[0].rules.n_deny, 0);
    assert_true(allows(&cfg->listeners[0], "127.0.0.1"));
    assert_true(allows(&cfg->listeners[0], "::"));
    cfg_free(cfg);
}

/* servers: the same allow/deny keys; without either, a default deny list
 * keeps tunnel users off the server's loopback, link-local and metadata
 * addresses. */
static void test_server_rules(void **state)
{
    static const char yaml[] = "version: 1\n"
                               "servers:\n"
                               "  - {name: plain, protocol: jproxy, listen: '127.0.0.1:0', "
                               "users_dir: u}\n"
                               "  - {name: open, protocol: wstan, listen: '127.0.0.1:0', "
                               "keys: [AAECAwQFBgcICQoLDA0ODw==], deny: []}\n"
                               "  - name: lan\n"
                               "    protocol: jproxy\n"
                               "    listen: 127.0.0.1:0\n"
                               "    users_dir: u\n"
                               "    allow: [10.0.0.0/8, 127.0.0.1]\n";
    struct td_config *cfg = load_ok("t.yaml", yaml);
    const struct cfg_rules *r;

    (void)state;
    assert_int_equal(cfg->n_servers, 3);
    r = &cfg->servers[0].rules;
    assert_true(cfg->servers[0].rules_default);
    assert_int_equal(r->n_allow, 0);
    assert_false(rules_allow(r, "127.0.0.1"));
    assert_false(rules_allow(r, "127.9.9.9"));
    assert_false(rules_allow(r, "0.0.0.0"));
    assert_false(rules_allow(r, "169.254.169.254"));
    assert_false(rules_allow(r, "169.254.1.1"));
    assert_false(rules_allow(r, "::1"));
    assert_false(rules_allow(r, "::"));
    assert_false(rules_allow(r, "fe80::1"));
    assert_false(rules_allow(r, "fd00:ec2::254"));
    assert_false(rules_allow(r, "::ffff:127.0.0.1"));
    assert_false(rules_allow(r, "::ffff:169.254.169.254"));
    assert_true(rules_allow(r, "10.0.0.1"));
    assert_true(rules_allow(r, "192.168.1.1"));
    assert_true(rules_allow(r, "8.8.8.8"));
    assert_true(rules_allow(r, "2001:db8::1"));

    /* deny: [] drops the defaults. */
    r = &cfg->servers[1].rules;
    assert_false(cfg->servers[1].rules_default);
    assert_true(rules_allow(r, "127.0.0.1"));
    assert_true(rules_allow(r, "169.254.169.254"));

    /* An allow list replaces the defaults too: only what it names. */
    r = &cfg->servers[2].rules;
    assert_false(cfg->servers[2].rules_default);
    assert_true(rules_allow(r, "127.0.0.1"));
    assert_true(rules_allow(r, "10.1.2.3"));
    assert_false(rules_allow(r, "127.0.0.2"));
    assert_false(rules_allow(r, "8.8.8.8"));
    cfg_free(cfg);

    /* Errors name the server and the item. */
    EXPECT_ERRORS("version: 1\n"
                  "servers:\n"
                  "  - name: s\n"
                  "    protocol: jproxy\n"
                  "    listen: 127.0.0.1:0\n"
                  "    users_dir: u\n"
                  "    deny: [10.0.0.0/33]\n"
                  "    allow: []\n",
                  "t.yaml:7:12: servers[0].deny[0]: invalid address range '10.0.0.0/33': "
                  "prefix length must be 0-32",
                  "t.yaml:8:12: servers[0].allow: must not be empty (leave 'allow' out to allow "
                  "every target)");
}

static void test_acl_errors(void **state)
{
    (void)state;
    /* Each bad item is reported at its own position and index. */
    EXPECT_ERRORS(BASE "    deny:\n"
                       "      - 127.0.0.0/8\n"
                       "      - 10.0.0.0/33\n"
                       "      - localhost\n"
                       "      - [1.2.3.4]\n"
                       "      -\n"
                       "      - '::1/129'\n"
                       "    allow: [10.0.0.0/8, 1.2.3/24, \"fe80:::/10\", 0.0.0.0/08]\n",
                  "t.yaml:8:9: listeners[0].deny[1]: invalid address range '10.0.0.0/33': "
                  "prefix length must be 0-32",
                  "t.yaml:9:9: listeners[0].deny[2]: invalid address range 'localhost': "
                  "expected an IP address, not a host name",
                  "t.yaml:10:9: listeners[0].deny[3]: expected an address range (CIDR), got a "
                  "list",
                  "t.yaml:11:8: listeners[0].deny[4]: expected an address range (CIDR), got an "
                  "empty value",
                  "t.yaml:12:9: listeners[0].deny[5]: invalid address range '::1/129': prefix "
                  "length must be 0-128",
                  "t.yaml:13:25: listeners[0].allow[1]: invalid address range '1.2.3/24': "
                  "invalid IPv4 address",
                  "t.yaml:13:35: listeners[0].allow[2]: invalid address range 'fe80:::/10': "
                  "invalid IPv6 address",
                  "t.yaml:13:49: listeners[0].allow[3]: invalid address range '0.0.0.0/08': "
                  "prefix length must not have leading zeros");
    /* The lists must be lists; an empty allow list is ambiguous. */
    EXPECT_ERRORS(BASE "    allow: 10.0.0.0/8\n"
                       "    deny:\n"
                       "  - name: b\n"
                       "    type: http\n"
                       "    listen: 127.0.0.1:2\n"
                       "    allow: []\n"
                       "    deny: {a: 1}\n"
                       "  - {name: c, type: http, listen: 127.0.0.1:3, allow: [1.2.3.4], "
                       "allow: ['::1']}\n",
                  "t.yaml:6:12: listeners[0].allow: expected a list of address ranges, got a "
                  "plain value",
                  "t.yaml:7:10: listeners[0].deny: expected a list of address ranges, got an "
                  "empty value",
                  "t.yaml:11:12: listeners[1].allow: must not be empty (leave 'allow' out to "
                  "allow every target)",
                  "t.yaml:12:11: listeners[1].deny: expected a list of address ranges, got a "
                  "mapping",
                  "t.yaml:13:66: listeners[2].allow: duplicate key (first defined at 13:48)");
    /* A forward listener whose literal target its own rules refuse. */
    EXPECT_ERRORS("version: 1\n"
                  "listeners:\n"
                  "  - name: f1\n"
                  "    type: forward\n"
                  "    listen: 127.0.0.1:2222\n"
                  "    target: 127.0.0.1:22\n"
                  "    deny: [127.0.0.0/8]\n"
                  "  - name: f2\n"
                  "    type: forward\n"
                  "    listen: 127.0.0.1:2223\n"
                  "    allow: ['2001:db8::/32']\n"
                  "    target: '[::1]:22'\n"
                  "  - name: f3\n"
                  "    type: forward\n"
                  "    listen: 127.0.0.1:2224\n"
                  "    target: localhost:22\n"
                  "    deny: [127.0.0.0/8]\n"
                  "  - name: f4\n"
                  "    type: forward\n"
                  "    listen: 127.0.0.1:2225\n"
                  "    target: 127.0.0.1:22\n"
                  "    allow: [10.0.0.0/8, bogus]\n",
                  "t.yaml:6:5: listeners[0].target: the target is refused by this listener's "
                  "allow/deny rules",
                  "t.yaml:12:5: listeners[1].target: the target is refused by this listener's "
                  "allow/deny rules",
                  "t.yaml:22:25: listeners[3].allow[1]: invalid address range 'bogus': expected "
                  "an IP address, not a host name");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_yaml_features),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_null_values),
        cmocka_unit_test(test_bad_address),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_forward_rules),
        cmocka_unit_test(test_route_and_auth),
        cmocka_unit_test(test_jproxy_tunnels_servers),
        cmocka_unit_test(test_wstan_full),
        cmocka_unit_test(test_tunnel_errors),
        cmocka_unit_test(test_tunnel_names_and_routes),
        cmocka_unit_test(test_server_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_log_and_paths),
        cmocka_unit_test(test_yaml_syntax),
        cmocka_unit_test(test_multiple_errors_sorted),
        cmocka_unit_test(test_alias_bomb),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_api_edges),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_acl),
        cmocka_unit_test(test_acl_errors),
        cmocka_unit_test(test_server_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
