"""tunnelctl against a fake control server (ctlharness.FakeDaemon) on a real
Unix socket: the exact requests each command sends, the rendering of the
replies (tables and --json), status and error= lines mapped to exit codes
and messages, the endpoint checks (not a socket, the config's
control.socket), and the bounds (a server that never answers, a reply over
the 4 MiB cap).  The real daemon's side is tested by the lead's tests."""

import base64
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402
import ctlharness as c  # noqa: E402

STATUS_REPLY = c.ok(
    "version=0.1.0", "pid=4242", "uptime_ms=3723000", "config=/etc/tunneld/tunneld.yaml",
    "generation=3", "state_dir=/var/lib/tunneld", "conns_active=2", "conns_total=77",
    "listener=local", "type=mixed", "listen=127.0.0.1:1080", "route=to-srv", "conns=2",
    "handshakes=0",
    "tunnel=to-srv", "protocol=wstan", "state=up", "streams=2", "links=2", "pooled=4",
    "links_opened=9", "streams_total=70",
    "server=wstan-in", "protocol=wstan", "listen=0.0.0.0:8080", "tunnels=1", "handshakes=0",
    "tunnels_total=5")


class ClientTest(unittest.TestCase):
    def setUp(self):
        c.require_ctl()
        self.tmp = tempfile.mkdtemp(prefix="tctl-")
        self.replies = {}
        self.fake = c.FakeDaemon(self.tmp, self.reply)

    def tearDown(self):
        self.fake.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def reply(self, req):
        cmd = dict(req).get("command")
        r = self.replies.get(cmd, c.ok())
        return r(req) if callable(r) else r

    def ctl(self, *args, **kw):
        return c.run("--socket", self.fake.path, *args, **kw)

    def only_request(self):
        reqs = self.fake.reqs()
        self.assertEqual(len(reqs), 1, reqs)
        return reqs[0][1]

    # --- the requests ----------------------------------------------------
    def test_simple_requests_exact(self):
        cases = [
            (["status"], [("command", "status")]),
            (["version"], [("command", "version")]),
            (["users", "list"], [("command", "users-list")]),
            (["tunnels", "list"], [("command", "tunnels-list")]),
            (["reload"], [("command", "reload")]),
            (["bounce", "to-srv"], [("command", "bounce"), ("name", "to-srv")]),
            (["kill", "17"], [("command", "kill"), ("id", "17")]),
            (["stats"], [("command", "stats")]),
            (["stats", "--user", "alice", "--tunnel", "t1", "--reset"],
             [("command", "stats"), ("user", "alice"), ("tunnel", "t1"), ("reset", "1")]),
            (["conns", "--user", "bob"], [("command", "conns"), ("user", "bob")]),
            (["conns", "--tunnel=t2"], [("command", "conns"), ("tunnel", "t2")]),
            (["users", "remove", "bob"],
             [("command", "user-remove"), ("name", "bob"), ("kill", "0")]),
            (["users", "remove", "bob", "--kill"],
             [("command", "user-remove"), ("name", "bob"), ("kill", "1")]),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                self.fake.requests.clear()
                r = self.ctl(*args)
                self.assertEqual(r.rc, 0, r)
                self.assertEqual(self.only_request(), [("tunneld-control", "1")] + want)

    def test_status_table_and_json(self):
        self.replies["status"] = STATUS_REPLY
        r = self.ctl("status")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("tunneld 0.1.0, pid 4242, up 1h02m", r.out)
        self.assertIn("generation 3", r.out)
        self.assertRegex(r.out, r"(?m)^LISTENER\s+TYPE\s+LISTEN\s+ROUTE\s+CONNS\s+HANDSHAKES$")
        self.assertRegex(r.out, r"(?m)^local\s+mixed\s+127\.0\.0\.1:1080\s+to-srv\s+2\s+0$")
        self.assertRegex(r.out, r"(?m)^to-srv\s+wstan\s+up\s+2\s+2\s+4\s+9\s+70$")
        self.assertRegex(r.out, r"(?m)^wstan-in\s+wstan\s+0\.0\.0\.0:8080\s+1\s+0\s+5$")
        j = self.ctl("status", "--json").json()
        self.assertEqual(j["pid"], 4242)
        self.assertEqual(j["uptime_ms"], 3723000)
        self.assertEqual(j["generation"], 3)
        self.assertEqual(j["config"], "/etc/tunneld/tunneld.yaml")
        self.assertEqual(j["listeners"], [{"name": "local", "type": "mixed",
                                           "listen": "127.0.0.1:1080", "route": "to-srv",
                                           "conns": 2, "handshakes": 0}])
        self.assertEqual(j["tunnels"][0]["name"], "to-srv")
        self.assertEqual(j["tunnels"][0]["links_opened"], 9)
        self.assertEqual(j["servers"][0]["tunnels_total"], 5)
        # The global --json works the same.
        j2 = c.run("--json", "--socket", self.fake.path, "status").json()
        self.assertEqual(j, j2)

    def test_json_keys_are_stable_when_fields_are_missing(self):
        self.replies["status"] = c.ok("version=0.1.0", "tunnel=t", "protocol=jproxy",
                                      "state=connecting", "x_new=1")
        j = self.ctl("status", "--json").json()
        self.assertIsNone(j["pid"])
        self.assertEqual(j["listeners"], [])
        self.assertEqual(j["servers"], [])
        t = j["tunnels"][0]
        for k in ("protocol", "state", "streams", "links", "pooled", "links_opened",
                  "streams_total"):
            self.assertIn(k, t)
        self.assertIsNone(t["streams"])
        self.assertEqual(t["x_new"], "1")  # a newer daemon's field, kept as a string

    def test_users_list(self):
        self.replies["users-list"] = c.ok(
            "user=alice", "source=config", "protocols=password,wstan", "conns=3",
            "user=bob", "source=state", "protocols=jproxy", "created_s=1700000000",
            "rotating_until_s=1700003600", "conns=0")
        r = self.ctl("users", "list")
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.out, r"(?m)^alice\s+config\s+password,wstan\s+-\s+-\s+3$")
        self.assertRegex(
            r.out, r"(?m)^bob\s+state\s+jproxy\s+2023-11-14T22:13:20Z\s+2023-11-14T23:13:20Z\s+0$")
        j = self.ctl("users", "list", "--json").json()
        self.assertTrue(j["online"])
        self.assertEqual(j["users"][0], {"name": "alice", "source": "config",
                                         "protocols": ["password", "wstan"], "created_s": None,
                                         "rotating_until_s": None, "conns": 3})
        self.assertEqual(j["users"][1]["created_s"], 1700000000)
        self.assertEqual(j["users"][1]["protocols"], ["jproxy"])

    def test_stats_and_conns(self):
        self.replies["stats"] = c.ok(
            "user=alice", "bytes_in=1048576", "bytes_out=10", "conns_total=5", "conns_active=1",
            "fail.refused=2", "fail.dns-failed=1",
            "listener=local", "bytes_in=0", "bytes_out=0", "conns_total=0", "conns_active=0")
        r = self.ctl("stats")
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.out, r"(?m)^alice\s+1\.0MiB\s+10B\s+1\s+5\s+refused=2,dns-failed=1$")
        self.assertRegex(r.out, r"(?m)^local\s+0B\s+0B\s+0\s+0\s+-$")
        j = self.ctl("stats", "--json").json()
        self.assertEqual(j["users"][0]["fail"], {"refused": 2, "dns-failed": 1})
        self.assertEqual(j["users"][0]["bytes_in"], 1048576)
        self.assertEqual(j["listeners"][0]["fail"], {})
        self.assertEqual(j["tunnels"], [])
        self.replies["conns"] = c.ok(
            "conn=12", "user=alice", "listener=local", "route=direct", "client=127.0.0.1:5000",
            "target=example.com:443", "bytes_in=2048", "bytes_out=100", "age_ms=65000",
            "conn=wstan-in:13", "user=-", "server=wstan-in", "route=direct", "client=10.0.0.2:1",
            "target=1.2.3.4:80", "bytes_in=0", "bytes_out=0", "age_ms=10")
        r = self.ctl("conns")
        self.assertRegex(r.out, r"(?m)^12\s+alice\s+local\s+-\s+direct\s+127\.0\.0\.1:5000\s+"
                                r"example\.com:443\s+2\.0KiB\s+100B\s+1m05s$")
        j = self.ctl("conns", "--json").json()
        self.assertEqual(j["conns"][0]["id"], "12")
        self.assertIsNone(j["conns"][0]["server"])
        self.assertEqual(j["conns"][1]["server"], "wstan-in")
        self.assertEqual(j["conns"][1]["age_ms"], 10)

    def test_empty_lists(self):
        self.replies["conns"] = c.ok()
        r = self.ctl("conns")
        self.assertEqual((r.rc, r.out), (0, "no connections\n"))
        self.assertEqual(self.ctl("conns", "--json").json(), {"conns": []})
        self.replies["tunnels-list"] = c.ok()
        self.assertEqual(self.ctl("tunnels", "list", "--json").json(), {"tunnels": []})

    def test_reload_bounce_kill_version_replies(self):
        self.replies["reload"] = c.ok("generation=4", "started=1", "stopped=0", "replaced=2",
                                      "kept=5")
        r = self.ctl("reload")
        self.assertIn("generation 4; 1 started, 0 stopped, 2 replaced, 5 kept", r.out)
        self.assertEqual(self.ctl("reload", "--json").json(),
                         {"generation": 4, "started": 1, "stopped": 0, "replaced": 2, "kept": 5})
        self.replies["bounce"] = c.ok("kind=listener")
        self.assertEqual(self.ctl("bounce", "local").out, "bounced listener local\n")
        self.assertEqual(self.ctl("bounce", "local", "--json").json(),
                         {"name": "local", "kind": "listener"})
        self.assertEqual(self.ctl("kill", "9", "--json").json(), {"id": "9", "killed": True})
        self.assertEqual(self.ctl("kill", "ws-in:12", "--json").json(),
                         {"id": "ws-in:12", "killed": True})
        self.replies["version"] = c.ok("version=0.2.0", "protocol=1")
        r = self.ctl("version")
        self.assertIn("tunneld   0.2.0 (control protocol 1)", r.out)
        j = self.ctl("version", "--json").json()
        self.assertEqual((j["running"], j["daemon"], j["protocol"]), (True, "0.2.0", 1))
        self.replies["user-remove"] = c.ok("killed=2")
        self.assertIn("closed 2 connections", self.ctl("users", "remove", "x", "--kill").out)
        self.assertEqual(self.ctl("users", "remove", "x", "--json").json()["killed"], 2)

    # --- status and errors -------------------------------------------------
    def test_errors_map_to_exit_codes(self):
        self.replies["kill"] = c.fail(-1008, "no connection 5")
        r = self.ctl("kill", "5")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("tunnelctl: kill: no connection 5", r.err)
        self.assertEqual(r.out, "")
        j = self.ctl("kill", "5", "--json")
        self.assertEqual(j.rc, 1)
        self.assertEqual(j.json(), {"error": {"exit": 1, "status": -1008, "code": "ENOTFOUND",
                                              "messages": ["no connection 5"]}})
        self.replies["user-remove"] = c.fail(-1018, "user 'carol' is defined in the config")
        r = self.ctl("users", "remove", "carol")
        self.assertEqual(r.rc, 4, r)
        self.assertIn("defined in the config", r.err)
        # No error= line: the code's message.
        self.replies["bounce"] = c.msg("status=-1008")
        r = self.ctl("bounce", "nope")
        self.assertEqual(r.rc, 1)
        self.assertIn("bounce: not found", r.err)

    def test_reload_errors_every_line(self):
        errs = ["/etc/t.yaml:3:5: listeners[0].listen: invalid address",
                "/etc/t.yaml:9:1: tunnels[1].url: missing required key"]
        self.replies["reload"] = c.fail(-1022, *errs)
        r = self.ctl("reload")
        self.assertEqual(r.rc, 1, r)
        for e in errs:
            self.assertIn("tunnelctl: reload: " + e + "\n", r.err)
        j = self.ctl("reload", "--json").json()
        self.assertEqual(j["error"]["messages"], errs)
        self.assertEqual(j["error"]["code"], "ECONFIG")

    def test_peer_check_refusal(self):
        """The daemon's peer check answers EACCES at once and hangs up."""
        self.fake.close()
        self.fake = c.FakeDaemon(self.tmp, greet=c.fail(-1018, "permission denied"))
        r = self.ctl("status")
        self.assertEqual(r.rc, 4, r)
        self.assertIn("permission denied", r.err)

    def test_malformed_and_foreign_replies(self):
        for reply, want in [
                (c.msg("status=0", version=2), "speaks control protocol version 2"),
                (b"hello there\n\n", "malformed reply"),
                (c.msg("pid=1"), "no status"),
                (c.FakeDaemon.CLOSE, "closed the connection without a complete reply"),
                ((c.FakeDaemon.CLOSE, b"tunneld-control=1\nstatus=0\n"),
                 "closed the connection without a complete reply"),
        ]:
            with self.subTest(reply=reply):
                self.replies["status"] = reply
                r = self.ctl("status")
                self.assertEqual(r.rc, 1, r)
                self.assertIn(want, r.err)

    def test_untrusted_bytes_stay_clean(self):
        self.replies["users-list"] = (
            b"tunneld-control=1\nstatus=0\nuser=ev\x1b[31mil\nsource=st\xffate\n"
            b"protocols=wstan\nconns=1\n\n")
        r = c.run("--socket", self.fake.path, "users", "list", check_sanitizer=True)
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("\x1b", r.out)
        self.assertIn("ev?[31mil", r.out)
        j = self.ctl("users", "list", "--json").json()
        self.assertEqual(j["users"][0]["name"], "ev\x1b[31mil")
        self.assertEqual(j["users"][0]["source"], "st\ufffdate")

    # --- the endpoint ----------------------------------------------------------
    def test_refuses_a_path_that_is_not_a_socket(self):
        p = os.path.join(self.tmp, "plain")
        with open(p, "w") as f:
            f.write("tunneld-control=1\nstatus=0\n\n")
        r = c.run("--socket", p, "status")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("not a socket", r.err)
        fifo = os.path.join(self.tmp, "fifo")
        os.mkfifo(fifo)
        r = c.run("--socket", fifo, "status", timeout=20)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("not a socket", r.err)

    def test_not_running_and_refused(self):
        r = c.run("--socket", os.path.join(self.tmp, "nothing.sock"), "status")
        self.assertEqual(r.rc, 3, r)
        self.assertIn("tunneld is not running", r.err)
        # A socket file nobody listens on (a daemon that died).
        dead = os.path.join(self.tmp, "dead.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(dead)
        s.close()
        r = c.run("--socket", dead, "tunnels", "list", "--json")
        self.assertEqual(r.rc, 3, r)
        self.assertEqual(r.json()["error"]["exit"], 3)

    def test_permission_denied_on_the_socket(self):
        if os.geteuid() == 0:
            # root passes every permission check: drop to nobody for this one.
            try:
                import pwd
                nobody = pwd.getpwnam("nobody")
            except (ImportError, KeyError):
                self.skipTest("no user nobody")
            os.chmod(self.fake.path, 0o600)
            os.chmod(self.tmp, 0o755)
            p = subprocess.run([h.TUNNELCTL_BIN, "--socket", self.fake.path, "status"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                               env=c.ctl_env(), user=nobody.pw_uid, group=nobody.pw_gid,
                               extra_groups=[])
            self.assertEqual(p.returncode, 4, p)
            self.assertIn(b"permission denied", p.stderr)
        else:
            os.chmod(self.fake.path, 0o000)
            r = self.ctl("status")
            self.assertEqual(r.rc, 4, r)

    def test_socket_from_config(self):
        cfg = os.path.join(self.tmp, "t.yaml")
        with open(cfg, "w") as f:
            f.write(h.make_config([{"name": "l", "type": "socks5"}]).replace("@TMPDIR@", self.tmp))
        self.replies["status"] = STATUS_REPLY
        r = c.run("--config", cfg, "status", "--json")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json()["pid"], 4242)
        # --socket wins over the config's control.socket.
        r = c.run("--config", cfg, "--socket", os.path.join(self.tmp, "x.sock"), "status")
        self.assertEqual(r.rc, 3, r)
        # A config with errors is reported, not ignored.
        with open(cfg, "a") as f:
            f.write("bogus_key: 1\n")
        r = c.run("--config", cfg, "status")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("bogus_key", r.err)

    def test_gives_up_on_a_server_that_never_answers(self):
        self.replies["status"] = c.FakeDaemon.HANG
        r = c.run("--timeout", "1s", "--socket", self.fake.path, "status")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("no reply from tunneld within 1.0s", r.err)
        self.assertLess(r.seconds, h.scaled(10))

    def test_default_timeout_is_bounded(self):
        """Without --timeout, a silent daemon is given up after 30 s."""
        self.replies["version"] = c.FakeDaemon.HANG
        r = self.ctl("version", timeout=90)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("within 30.0s", r.err)
        self.assertGreater(r.seconds, 29)
        self.assertLess(r.seconds, h.scaled(60))

    def test_reply_over_the_cap(self):
        big = b"tunneld-control=1\nstatus=0\n" + b"x=" + b"y" * (4 * 1024 * 1024) + b"\n\n"
        self.replies["status"] = big
        r = self.ctl("status")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("larger than 4194304 bytes", r.err)

    def test_large_reply_under_the_cap(self):
        rec = []
        for i in range(20000):
            rec += ["conn=%d" % i, "user=u%d" % i, "listener=local", "route=direct",
                    "client=127.0.0.1:%d" % (i % 65535), "target=example.com:443",
                    "bytes_in=%d" % i, "bytes_out=0", "age_ms=1"]
        reply = c.ok(*rec)
        self.assertLess(len(reply), 4 * 1024 * 1024)
        self.assertGreater(len(reply), 2 * 1024 * 1024)
        self.replies["conns"] = reply
        j = self.ctl("conns", "--json").json()
        self.assertEqual(len(j["conns"]), 20000)
        self.assertEqual(j["conns"][19999]["bytes_in"], 19999)

    # --- the state commands, online ------------------------------------------
    def test_users_add_wstan_sends_a_fresh_key(self):
        r = self.ctl("users", "add", "alice")
        self.assertEqual(r.rc, 0, r)
        req = self.only_request()
        d = dict(req)
        self.assertEqual([k for k, _ in req],
                         ["tunneld-control", "command", "name", "protocol", "secret"])
        self.assertEqual((d["command"], d["name"], d["protocol"]), ("user-add", "alice", "wstan"))
        self.assertTrue(c.wstan_key_ok(d["secret"]), d["secret"])
        self.assertIn('key: "%s"' % d["secret"], r.out)
        self.assertIn("protocol: wstan", r.out)
        self.assertNotIn("not running", r.err)
        # Another run, another key.
        r2 = self.ctl("users", "add", "alice2", "--json")
        j = r2.json()
        d2 = dict(self.fake.reqs()[-1][1])
        self.assertNotEqual(d2["secret"], d["secret"])
        self.assertEqual(j["secret"], d2["secret"])
        self.assertTrue(j["online"])
        self.assertIn(d2["secret"], j["client_yaml"])

    def test_users_add_jproxy_sends_the_user_file_keeps_the_private_key(self):
        out = os.path.join(self.tmp, "alice.dat")
        r = self.ctl("users", "add", "alice", "--protocol", "jproxy", "--out", out)
        self.assertEqual(r.rc, 0, r)
        d = dict(self.only_request())
        self.assertEqual((d["command"], d["protocol"]), ("user-add", "jproxy"))
        self.assertRegex(d["secret"], r"^[0-9A-F]{64}$")
        name, salt, spki = c.parse_user_file(base64.b64decode(d["jproxy_user"], validate=True))
        self.assertEqual(name, "alice")
        self.assertEqual(c.token_of(salt, spki), d["secret"])
        # The private key is only in --out, owner-only, with the same token.
        self.assertEqual(c.mode(out), 0o600)
        with open(out, "rb") as f:
            der, tok = c.parse_key_file(f.read())
        self.assertEqual(tok, d["secret"])
        # The request holds the public half only: no field but these, and
        # the user file is exactly name, salt and SPKI (checked above).
        self.assertEqual([k for k, _ in self.only_request()],
                         ["tunneld-control", "command", "name", "protocol", "secret",
                          "jproxy_user"])
        self.assertNotIn(der[-64:], base64.b64decode(d["jproxy_user"]))
        self.assertFalse(os.path.exists(out + ".new"))
        self.assertIn('key_file: "%s"' % out, r.out)
        # --out is never overwritten without --force, and nothing is sent then.
        n = len(self.fake.reqs())
        r = self.ctl("users", "add", "bob", "--protocol", "jproxy", "--out", out)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("already exists", r.err)
        self.assertEqual(len(self.fake.reqs()), n)
        r = self.ctl("users", "add", "bob", "--protocol", "jproxy", "--out", out, "--force")
        self.assertEqual(r.rc, 0, r)
        with open(out, "rb") as f:
            self.assertEqual(c.parse_key_file(f.read())[1], dict(self.fake.reqs()[-1][1])["secret"])

    def test_users_add_jproxy_needs_out(self):
        r = self.ctl("users", "add", "alice", "--protocol", "jproxy")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("--out", r.err)
        self.assertEqual(self.fake.reqs(), [])

    def test_refused_add_leaves_no_key_file(self):
        out = os.path.join(self.tmp, "k.dat")
        self.replies["user-add"] = c.fail(-1009, "user 'alice' already exists")
        r = self.ctl("users", "add", "alice", "--protocol", "jproxy", "--out", out, "--json")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.json()["error"]["code"], "EEXIST")
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(out + ".new"))
        # With --force, a refused request leaves the old file as it was.
        with open(out, "wb") as f:
            f.write(b"old key")
        r = self.ctl("users", "add", "alice", "--protocol", "jproxy", "--out", out, "--force")
        self.assertEqual(r.rc, 1, r)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"old key")

    def test_add_key_is_user_add(self):
        r = self.ctl("add-key", "carol", "--protocol", "wstan")
        self.assertEqual(r.rc, 0, r)
        d = dict(self.only_request())
        self.assertEqual((d["command"], d["name"], d["protocol"]), ("user-add", "carol", "wstan"))

    def test_rotate_key_asks_the_protocol_then_rotates(self):
        self.replies["user-show"] = c.ok("user=bob", "protocol=jproxy", "secret=" + "A" * 64,
                                         "created_s=1700000000")
        self.replies["key-rotate"] = c.ok("old_until_s=1700000600")
        out = os.path.join(self.tmp, "bob.dat")
        r = self.ctl("rotate-key", "bob", "--grace", "10m", "--out", out)
        self.assertEqual(r.rc, 0, r)
        reqs = self.fake.reqs()
        self.assertEqual([dict(f)["command"] for _, f in reqs], ["user-show", "key-rotate"])
        self.assertEqual(reqs[0][0], reqs[1][0], "one connection for both requests")
        self.assertEqual(reqs[0][1], [("tunneld-control", "1"), ("command", "user-show"),
                                      ("name", "bob")])
        rot = reqs[1][1]
        self.assertEqual([k for k, _ in rot], ["tunneld-control", "command", "name", "secret",
                                               "jproxy_user", "grace_ms"])
        d = dict(rot)
        self.assertEqual(d["grace_ms"], "600000")
        name, salt, spki = c.parse_user_file(base64.b64decode(d["jproxy_user"]))
        self.assertEqual((name, c.token_of(salt, spki)), ("bob", d["secret"]))
        with open(out, "rb") as f:
            self.assertEqual(c.parse_key_file(f.read())[1], d["secret"])
        self.assertIn("accepted until 2023-11-14T22:23:20Z", r.out)
        # wstan, no grace: grace_ms=0, no jproxy_user.
        self.fake.requests.clear()
        self.replies["user-show"] = c.ok("user=al", "protocol=wstan",
                                         "secret=AAECAwQFBgcICQoLDA0ODw==")
        self.replies["key-rotate"] = c.ok("old_until_s=0")
        j = self.ctl("rotate-key", "al", "--json").json()
        d = dict(self.fake.reqs()[1][1])
        self.assertEqual(d["grace_ms"], "0")
        self.assertNotIn("jproxy_user", d)
        self.assertTrue(c.wstan_key_ok(d["secret"]))
        self.assertEqual(j["secret"], d["secret"])
        self.assertIsNone(j["old_until_s"])
        # jproxy without --out: refused before any key-rotate is sent.
        self.fake.requests.clear()
        self.replies["user-show"] = c.ok("user=bob", "protocol=jproxy", "secret=" + "A" * 64)
        r = self.ctl("rotate-key", "bob")
        self.assertEqual(r.rc, 2, r)
        self.assertEqual(self.fake.commands(), ["user-show"])

    def test_rotate_key_unknown_user(self):
        self.replies["user-show"] = c.fail(-1008, "no such user 'zed'")
        r = self.ctl("rotate-key", "zed")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("no such user 'zed'", r.err)
        self.assertEqual(self.fake.commands(), ["user-show"])

    def test_export_client_online_passes_check_config(self):
        h.require_binaries()
        cfg = os.path.join(self.tmp, "srv.yaml")
        with open(cfg, "w") as f:
            f.write(h.make_config(
                [{"name": "l", "type": "socks5"}],
                servers=[{"name": "ws-in", "protocol": "wstan", "listen": "0.0.0.0:8443",
                          "path": "/t/", "keys": ["AAECAwQFBgcICQoLDA0ODw=="]}],
            ).replace("@TMPDIR@", self.tmp))
        self.replies["user-show"] = c.ok("user=alice", "protocol=wstan",
                                         "secret=EBESExQVFhcYGRobHB0eHw==", "created_s=1")
        # A wildcard listen address needs --server.
        r = c.run("--config", cfg, "export-client", "alice")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("--server", r.err)
        self.assertIn("wildcard", r.err)
        r = c.run("--config", cfg, "export-client", "alice", "--server", "vpn.example.org")
        self.assertEqual(r.rc, 0, r)
        self.assertIn('url: "ws://vpn.example.org:8443/t/"', r.out)
        self.assertIn('key: "EBESExQVFhcYGRobHB0eHw=="', r.out)
        self.assertEqual(self.fake.reqs()[-1][1], [("tunneld-control", "1"),
                                                    ("command", "user-show"), ("name", "alice")])
        client = os.path.join(self.tmp, "client.yaml")
        with open(client, "w") as f:
            f.write(r.out)
        p = subprocess.run([h.TUNNELD_BIN, "--check-config", client], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    # --- bash completion ----------------------------------------------------------
    def complete(self, line):
        """COMPREPLY of packaging/completion/tunnelctl.bash for the words of
        line (the last one being completed), with tunnelctl from the build."""
        script = os.path.join(h.SOURCE_DIR or os.path.join(os.path.dirname(__file__), "..", ".."),
                              "packaging", "completion", "tunnelctl.bash")
        words = line.split(" ")
        words[0] = h.TUNNELCTL_BIN
        prog = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
                '_tunnelctl; printf "%s\\n" "${COMPREPLY[@]}"')
        p = subprocess.run(["bash", "-c", prog, "complete", script] + words,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                           env=c.ctl_env())
        self.assertEqual(p.returncode, 0, p.stderr)
        return sorted(x for x in p.stdout.decode().split("\n") if x)

    def test_bash_completion(self):
        if not shutil.which("bash"):
            self.skipTest("no bash")
        self.assertIn("rotate-key", self.complete("tunnelctl "))
        self.assertEqual(self.complete("tunnelctl ex"), ["export-client"])
        self.assertEqual(self.complete("tunnelctl users "), ["add", "list", "remove"])
        self.assertEqual(self.complete("tunnelctl users add x --protocol "), ["jproxy", "wstan"])
        self.assertIn("--grace", self.complete("tunnelctl rotate-key bob --"))
        self.assertEqual(self.fake.reqs(), [])
        # Names come from the daemon named on the line.
        self.replies["users-list"] = c.ok("user=alice", "source=state", "protocols=wstan",
                                          "user=alfred", "source=config", "protocols=password",
                                          "user=bob", "source=state", "protocols=jproxy")
        sock = self.fake.path
        self.assertEqual(self.complete("tunnelctl --socket %s rotate-key al" % sock),
                         ["alfred", "alice"])
        self.assertEqual(self.complete("tunnelctl --socket %s stats --user b" % sock), ["bob"])
        self.replies["tunnels-list"] = c.ok("tunnel=to-srv", "protocol=wstan", "tunnel=jp",
                                            "protocol=jproxy")
        self.assertEqual(self.complete("tunnelctl --socket %s conns --tunnel " % sock),
                         ["jp", "to-srv"])
        self.replies["conns"] = c.ok("conn=12", "user=a", "conn=345", "user=b")
        self.assertEqual(self.complete("tunnelctl --socket=%s kill " % sock), ["12", "345"])
        self.replies["status"] = STATUS_REPLY
        self.assertEqual(self.complete("tunnelctl --socket %s bounce " % sock),
                         ["local", "to-srv", "wstan-in"])

    # --- usage ----------------------------------------------------------------------
    def test_usage_errors_exit_2(self):
        for args in (["frobnicate"], ["kill"], ["kill", "abc"], ["bounce"],
                     ["bounce", "a", "b"], ["users"], ["users", "frob"], ["users", "add"],
                     ["users", "add", "bad name"], ["users", "add", "x", "--protocol", "ssh"],
                     ["rotate-key", "x", "--grace", "soon"], ["status", "--bogus"],
                     ["stats", "--user"], ["tunnels"], ["tunnels", "show"],
                     ["--timeout", "fast", "status"], ["--nope"], []):
            with self.subTest(args=args):
                r = self.ctl(*args)
                self.assertEqual(r.rc, 2, r)
                self.assertEqual(self.fake.reqs(), [])
        r = self.ctl("status", "--help")
        self.assertEqual(r.rc, 0)
        self.assertIn("Usage: tunnelctl status", r.out)
        j = self.ctl("help", "--json").json()
        names = [x["name"] for x in j["commands"]]
        for n in ("status", "users", "rotate-key", "export-client", "check-config"):
            self.assertIn(n, names)


if __name__ == "__main__":
    h.main()
