"""tunnelctl's offline mode: with no tunneld running, the state commands
(users list/add/remove, add-key, rotate-key, export-client) read and edit
the config's state_dir directly, under STATE_DIR/lock.

Covers: the state file (mode 0600, its contents) after add, list and
remove with --json; clashes with the config's users; jProxy keys whose
key.dat and user file (named by the token) the existing KSF readers take
(a tunneld jproxy client logs in to a tunneld server with them); rotation
grace periods kept and expired; export-client configs that tunneld accepts
and that carry traffic; 20 concurrent writers, none lost; 100 writers
killed at random moments, never a torn state; exit 3 for the commands that
need the daemon, exit 2 for usage errors."""

import fcntl
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402
import ctlharness as c  # noqa: E402

CONFIG_KEY = "AAECAwQFBgcICQoLDA0ODw=="


def read_state(path):
    """The state file as a list of user dicts (the format of state.h)."""
    with open(path) as f:
        text = f.read()
    if not text.endswith("\n\n"):
        raise AssertionError("state file does not end with a blank line: %r" % text[-40:])
    lines = text[:-2].split("\n")
    if lines[0] != "tunneld-state=1":
        raise AssertionError("state file header %r" % lines[0])
    users = []
    for line in lines[1:]:
        k, _, v = line.partition("=")
        if k == "user":
            users.append({"user": v})
        else:
            users[-1][k] = v
    return users


def slurp(path):
    with open(path, "rb") as f:
        return f.read()


class OfflineBase(unittest.TestCase):
    def setUp(self):
        c.require_ctl()
        self.tmp = tempfile.mkdtemp(prefix="tctl-off-")
        self.state = os.path.join(self.tmp, "state")
        self.wstan_port = h.closed_port()
        self.cfg = os.path.join(self.tmp, "tunneld.yaml")
        text = h.make_config(
            [{"name": "local", "type": "socks5"}],
            users=[{"name": "carol", "password": "pw"},
                   {"name": "dave", "wstan_key": CONFIG_KEY}],
            servers=[{"name": "ws-in", "protocol": "wstan",
                      "listen": "127.0.0.1:%d" % self.wstan_port, "keys": [CONFIG_KEY]}])
        with open(self.cfg, "w") as f:
            f.write(text.replace("@TMPDIR@", self.tmp))
        self.daemons = []

    def tearDown(self):
        h.stop_all(self.daemons, (), (self.tmp,))

    def ctl(self, *args, **kw):
        return c.run("--config", self.cfg, *args, **kw)

    def ok(self, *args, **kw):
        r = self.ctl(*args, **kw)
        self.assertEqual(r.rc, 0, r)
        return r

    def state_users(self):
        return {u["user"]: u for u in read_state(os.path.join(self.state, "state"))}

    def listed(self):
        j = self.ok("users", "list", "--json").json()
        self.assertFalse(j["online"])
        return {u["name"]: u for u in j["users"]}


class UsersTest(OfflineBase):
    def test_add_list_remove(self):
        r = self.ok("users", "add", "alice", "--json")
        j = r.json()
        self.assertEqual((j["user"], j["protocol"], j["online"]), ("alice", "wstan", False))
        self.assertTrue(c.wstan_key_ok(j["secret"]))
        self.assertIn("tunneld is not running", r.err)
        self.assertIn("takes effect when tunneld next starts or reloads", r.err)
        # The snippet uses the config's server.
        self.assertIn('url: "ws://127.0.0.1:%d/"' % self.wstan_port, j["client_yaml"])
        self.assertIn('key: "%s"' % j["secret"], j["client_yaml"])

        st = os.path.join(self.state, "state")
        self.assertEqual(c.mode(st), 0o600)
        self.assertEqual(c.mode(self.state), 0o700)
        u = self.state_users()
        self.assertEqual(list(u), ["alice"])
        self.assertEqual(u["alice"]["protocol"], "wstan")
        self.assertEqual(u["alice"]["secret"], j["secret"])
        self.assertLessEqual(abs(int(u["alice"]["created"]) - time.time()), 60)
        self.assertNotIn("old_secret", u["alice"])

        self.ok("users", "add", "bob")
        users = self.listed()
        self.assertEqual(sorted(users), ["alice", "bob", "carol", "dave"])
        self.assertEqual(users["carol"]["source"], "config")
        self.assertEqual(users["carol"]["protocols"], ["password"])
        self.assertEqual(users["dave"]["protocols"], ["wstan"])
        self.assertEqual(users["alice"]["source"], "state")
        self.assertEqual(users["alice"]["created_s"], int(u["alice"]["created"]))
        self.assertIsNone(users["alice"]["conns"])
        r = self.ok("users", "list")
        self.assertRegex(r.out, r"(?m)^alice\s+state\s+wstan\s+\d{4}-\d\d-\d\dT")

        r = self.ok("users", "remove", "alice", "--json")
        self.assertEqual(r.json(), {"user": "alice", "online": False, "killed": None})
        self.assertEqual(list(self.state_users()), ["bob"])
        self.assertEqual(sorted(self.listed()), ["bob", "carol", "dave"])
        self.assertEqual(c.mode(st), 0o600)

    def test_validation_same_as_online(self):
        self.ok("users", "add", "alice")
        for args, rc, msg in [
                (["users", "add", "alice"], 1, "already exists"),
                (["users", "add", "carol"], 1, "already exists (in the config file"),
                (["add-key", "dave"], 1, "already exists"),
                (["users", "remove", "carol"], 4, "defined in the config file"),
                (["users", "remove", "zed"], 1, "no such user 'zed'"),
                (["rotate-key", "zed"], 1, "no such user 'zed'"),
                (["rotate-key", "carol"], 4, "defined in the config file"),
                (["users", "add", "a/b"], 2, "not a valid user name"),
                (["users", "add", "x" * 65], 2, "not a valid user name"),
                (["users", "add", "x", "--protocol", "ssh"], 2, "--protocol"),
                (["users", "add", "x", "--protocol", "jproxy"], 2, "--out"),
        ]:
            with self.subTest(args=args):
                before = slurp(os.path.join(self.state, "state"))
                r = self.ctl(*args)
                self.assertEqual(r.rc, rc, r)
                self.assertIn(msg, r.err)
                self.assertEqual(slurp(os.path.join(self.state, "state")), before)
        j = self.ctl("users", "remove", "carol", "--json").json()
        self.assertEqual(j["error"]["code"], "EACCES")

    def test_needs_the_daemon_exit_3(self):
        for args in (["status"], ["tunnels", "list"], ["reload"], ["stats"], ["conns"],
                     ["kill", "1"], ["bounce", "local"]):
            with self.subTest(args=args):
                r = self.ctl(*args)
                self.assertEqual(r.rc, 3, r)
                self.assertIn("tunneld is not running", r.err)
                j = self.ctl(*args, "--json").json()
                self.assertEqual(j["error"]["exit"], 3)
        # version is no error without the daemon.
        j = self.ok("version", "--json").json()
        self.assertEqual((j["running"], j["daemon"]), (False, None))
        # State commands without a config have no state_dir: exit 3.
        r = c.run("--socket", os.path.join(self.tmp, "none.sock"), "users", "list")
        self.assertEqual(r.rc, 3, r)
        self.assertIn("no state_dir", r.err)

    def test_usage_errors_exit_2(self):
        for args in (["users"], ["users", "add"], ["users", "remove"], ["users", "list", "x"],
                     ["rotate-key"], ["rotate-key", "a", "--grace", "later"],
                     ["export-client"], ["add-key"], ["users", "add", "a", "--wat"]):
            with self.subTest(args=args):
                r = self.ctl(*args)
                self.assertEqual(r.rc, 2, r)
                self.assertIn("tunnelctl: ", r.err)
        self.assertFalse(os.path.exists(os.path.join(self.state, "state")))


class JproxyTest(OfflineBase):
    def test_add_key_files_work_with_tunneld(self):
        h.require_binaries()
        key = os.path.join(self.tmp, "key.dat")
        r = self.ok("add-key", "jp", "--protocol", "jproxy", "--out", key, "--json")
        j = r.json()
        token = j["secret"]
        self.assertRegex(token, r"^[0-9A-F]{64}$")
        self.assertEqual(j["key_file"], key)
        self.assertEqual(c.mode(key), 0o600)
        with open(key, "rb") as f:
            _, ktok = c.parse_key_file(f.read())
        self.assertEqual(ktok, token)
        jdir = os.path.join(self.state, "jproxy")
        self.assertEqual(c.mode(jdir), 0o700)
        ufile = os.path.join(jdir, token + ".dat")
        self.assertEqual(os.listdir(jdir), [token + ".dat"])
        self.assertEqual(c.mode(ufile), 0o600)
        with open(ufile, "rb") as f:
            name, salt, spki = c.parse_user_file(f.read())
        self.assertEqual(name, "jp")
        self.assertEqual(c.token_of(salt, spki), token)
        self.assertEqual(self.state_users()["jp"]["secret"], token)
        self.assertEqual(self.state_users()["jp"]["protocol"], "jproxy")

        # The readers accept both files: a tunneld jproxy server with the
        # state's user files logs in a tunneld client with the key.dat.
        origin = h.HttpOrigin()
        try:
            srv = h.Daemon(h.make_config([], servers=[{
                "name": "jp-in", "protocol": "jproxy", "listen": "127.0.0.1:0",
                "users_dir": jdir}]))
            self.daemons.append(srv)
            client_yaml = h.make_config(
                [{"name": "socks", "type": "socks5", "route": "jp"}],
                tunnels=[{"name": "jp", "protocol": "jproxy",
                          "server": "127.0.0.1:%d" % srv.server_port("jp-in"), "key_file": key}])
            cfile = os.path.join(self.tmp, "jp-client.yaml")
            with open(cfile, "w") as f:
                f.write(client_yaml.replace("@TMPDIR@", self.tmp))
            p = subprocess.run([h.TUNNELD_BIN, "--check-config", cfile], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            cli = h.Daemon(client_yaml)
            self.daemons.append(cli)
            cli.wait_log(r"tunnel jp up to ", timeout=15)
            p = h.run_curl(["--socks5", "127.0.0.1:%d" % cli.port("socks"),
                            origin.url("/bytes?n=1000&seed=x")])
            self.assertEqual(len(p.stdout), 1000)
        finally:
            origin.close()

    def test_rotate_jproxy_keeps_old_file_for_the_grace(self):
        k1 = os.path.join(self.tmp, "k1.dat")
        k2 = os.path.join(self.tmp, "k2.dat")
        k3 = os.path.join(self.tmp, "k3.dat")
        t1 = self.ok("users", "add", "jp", "--protocol", "jproxy", "--out", k1,
                     "--json").json()["secret"]
        r = self.ctl("rotate-key", "jp")  # jproxy needs --out
        self.assertEqual(r.rc, 2, r)
        j = self.ok("rotate-key", "jp", "--grace", "1s", "--out", k2, "--json").json()
        t2 = j["secret"]
        self.assertNotEqual(t1, t2)
        jdir = os.path.join(self.state, "jproxy")
        self.assertEqual(sorted(os.listdir(jdir)), sorted([t1 + ".dat", t2 + ".dat"]))
        u = self.state_users()["jp"]
        self.assertEqual((u["secret"], u["old_secret"]), (t2, t1))
        with open(k2, "rb") as f:
            self.assertEqual(c.parse_key_file(f.read())[1], t2)
        time.sleep(2.2)
        self.ok("users", "add", "other")  # any write drops what expired
        u = self.state_users()["jp"]
        self.assertNotIn("old_secret", u)
        self.assertEqual(os.listdir(jdir), [t2 + ".dat"])
        # Without a grace period the old file goes at once.
        t3 = self.ok("rotate-key", "jp", "--out", k3, "--json").json()["secret"]
        self.assertEqual(os.listdir(jdir), [t3 + ".dat"])
        self.ok("users", "remove", "jp")
        self.assertEqual(os.listdir(jdir), [])


class RotateTest(OfflineBase):
    def test_grace_kept_then_expired(self):
        k0 = self.ok("users", "add", "alice", "--json").json()["secret"]
        self.ok("users", "add", "bob")
        t0 = int(time.time())
        j = self.ok("rotate-key", "alice", "--grace", "1h", "--json").json()
        k1 = j["secret"]
        self.assertNotEqual(k0, k1)
        self.assertTrue(t0 + 3600 <= j["old_until_s"] <= t0 + 3600 + 60, j)
        u = self.state_users()["alice"]
        self.assertEqual((u["secret"], u["old_secret"]), (k1, k0))
        self.assertEqual(int(u["old_until"]), j["old_until_s"])
        self.assertEqual(self.listed()["alice"]["rotating_until_s"], j["old_until_s"])
        r = self.ok("rotate-key", "bob", "--grace", "1s")
        self.assertIn("the old key is accepted until", r.out)
        self.assertIn("old_secret", self.state_users()["bob"])
        time.sleep(2.2)
        self.ok("users", "add", "carl")
        st = self.state_users()
        self.assertNotIn("old_secret", st["bob"])
        self.assertNotIn("old_until", st["bob"])
        self.assertEqual(st["alice"]["old_secret"], k0)  # an hour to go
        # No grace: the old key is gone at once.
        j = self.ok("rotate-key", "alice", "--json").json()
        self.assertIsNone(j["old_until_s"])
        self.assertNotIn("old_secret", self.state_users()["alice"])
        self.assertEqual(self.state_users()["alice"]["secret"], j["secret"])


class ExportTest(OfflineBase):
    def test_export_client_config_works(self):
        h.require_binaries()
        key = self.ok("users", "add", "alice", "--json").json()["secret"]
        r = self.ok("export-client", "alice")
        self.assertIn("reading the state", r.err)
        self.assertIn('key: "%s"' % key, r.out)
        cfile = os.path.join(self.tmp, "client.yaml")
        with open(cfile, "w") as f:
            f.write(r.out)
        p = subprocess.run([h.TUNNELD_BIN, "--check-config", cfile], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        # And it carries traffic: a wstan server that accepts the user's key.
        origin = h.HttpOrigin()
        try:
            srv = h.Daemon(h.make_config([], servers=[{
                "name": "ws-in", "protocol": "wstan",
                "listen": "127.0.0.1:%d" % self.wstan_port, "keys": [key]}]))
            self.daemons.append(srv)
            cli = h.Daemon(r.out.replace("listen: 127.0.0.1:1080", "listen: 127.0.0.1:0"))
            self.daemons.append(cli)
            p = h.run_curl(["--socks5-hostname", "127.0.0.1:%d" % cli.port("local"),
                            origin.url("/bytes?n=5000&seed=e")])
            self.assertEqual(len(p.stdout), 5000)
        finally:
            origin.close()
        # --out: written owner-only, never over a file without --force.
        out = os.path.join(self.tmp, "alice.yaml")
        self.ok("export-client", "alice", "--out", out)
        self.assertEqual(c.mode(out), 0o600)
        self.assertEqual(self.ctl("export-client", "alice", "--out", out).rc, 1)
        self.ok("export-client", "alice", "--out", out, "--force")
        # A config user's wstan_key works too; a password-only user has none.
        self.assertIn('key: "%s"' % CONFIG_KEY, self.ok("export-client", "dave").out)
        r = self.ctl("export-client", "carol")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("no tunnel key", r.err)
        j = self.ok("export-client", "alice", "--server", "[2001:db8::1]:9000", "--json").json()
        self.assertEqual(j["server"], "[2001:db8::1]:9000")
        self.assertIn('url: "ws://[2001:db8::1]:9000/"', j["config_yaml"])

    def test_wildcard_listen_needs_server(self):
        with open(self.cfg) as f:
            text = f.read()
        with open(self.cfg, "w") as f:
            f.write(text.replace("127.0.0.1:%d" % self.wstan_port, "0.0.0.0:%d" % self.wstan_port))
        self.ok("users", "add", "alice")
        r = self.ctl("export-client", "alice")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("wildcard", r.err)
        self.assertIn("--server", r.err)
        r = self.ok("export-client", "alice", "--server", "vpn.example.net")
        self.assertIn('url: "ws://vpn.example.net:%d/"' % self.wstan_port, r.out)


class LockTest(OfflineBase):
    def test_concurrent_writers_all_land(self):
        n = 20
        procs = [subprocess.Popen([h.TUNNELCTL_BIN, "--config", self.cfg, "users", "add",
                                   "u%02d" % i], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=c.ctl_env()) for i in range(n)]
        for p in procs:
            out, err = p.communicate(timeout=h.scaled(120))
            self.assertEqual(p.returncode, 0, err)
        st = self.state_users()
        self.assertEqual(sorted(st), ["u%02d" % i for i in range(n)])
        self.assertEqual(len({u["secret"] for u in st.values()}), n)

    def test_waits_for_the_lock_and_gives_up_bounded(self):
        os.makedirs(self.state, exist_ok=True)
        fd = os.open(os.path.join(self.state, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Held throughout: the writer gives up after its bounded wait.
            r = self.ctl("users", "add", "late")
            self.assertEqual(r.rc, 1, r)
            self.assertIn("held by another writer", r.err)
            self.assertGreater(r.seconds, 9)
            self.assertFalse(os.path.exists(os.path.join(self.state, "state")))
            # Released after a second: the writer waits, then goes ahead.
            threading.Timer(1.0, fcntl.flock, (fd, fcntl.LOCK_UN)).start()
            r = self.ctl("users", "add", "late")
            self.assertEqual(r.rc, 0, r)
            self.assertGreater(r.seconds, 0.9)
        finally:
            os.close(fd)
        self.assertEqual(list(self.state_users()), ["late"])


class CrashTest(OfflineBase):
    def test_killed_writers_never_tear_the_state(self):
        rounds = 100
        rng = random.Random(1234)
        current = set(self.listed()) - {"carol", "dave"}
        seen_before = seen_after = 0
        for i in range(rounds):
            if current and rng.random() < 0.3:
                victim = rng.choice(sorted(current))
                argv = ["users", "remove", victim]
                new = current - {victim}
            else:
                name = "k%03d" % i
                argv = ["users", "add", name]
                new = current | {name}
            p = subprocess.Popen([h.TUNNELCTL_BIN, "--config", self.cfg] + argv,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=c.ctl_env())
            time.sleep(rng.uniform(0, h.scaled(0.03)))
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=h.scaled(30))
            # The state parses (tunnelctl reads it) and is the old set or
            # the new one, never anything in between.
            got = set(self.listed()) - {"carol", "dave"}
            self.assertIn(got, (current, new), "round %d: %r" % (i, argv))
            if os.path.exists(os.path.join(self.state, "state")):
                read_state(os.path.join(self.state, "state"))
            if got == new:
                seen_after += 1
            else:
                seen_before += 1
            current = got
        # Both outcomes happened, or the kills did not land where it matters.
        self.assertGreater(seen_before, 0)
        self.assertGreater(seen_after, 0)
        # After all that, a writer still gets the lock at once.
        r = self.ok("users", "add", "final")
        self.assertLess(r.seconds, h.scaled(5))


if __name__ == "__main__":
    h.main()
