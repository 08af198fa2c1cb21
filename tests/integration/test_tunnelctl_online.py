"""tunnelctl against a real daemon: the control plane end to end.

    tunnelctl -> control socket -> server tunneld (wstan and jProxy servers
    with no key of their own: every user is a managed one)
    curl / sockets -> client tunneld -> tunnel -> server tunneld -> origin

Covers: a user added with tunnelctl and used at once through curl; a key
rotation with a grace period while a long transfer runs across it (the new
key works at once, the old one until the grace ends, then it is refused,
and the transfer never drops); a jProxy user whose key.dat tunneld and an
independent KSF reading accept; removing a user with --kill cuts its
connections; bouncing one tunnel mid-transfer leaves the other's transfer
untouched; a reload with an invalid config changes nothing and its errors
reach tunnelctl; per-user stats that match the bytes sent; concurrent
tunnelctl clients; another uid refused; and SIGKILLs of the daemon while it
writes the state, which leave a state it loads.
"""

import base64
import hashlib
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402


def tctl(d, *args, timeout=30, user=None):
    """Run tunnelctl --json against daemon d; (exit code, JSON or None, stderr)."""
    argv = [h.TUNNELCTL_BIN, "--socket", os.path.join(d.tmpdir, "control.sock"),
            "--config", d.config_path, "--json"] + list(args)
    if user is not None:
        argv = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + argv
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=h.scaled(timeout))
    out = p.stdout.decode()
    return p.returncode, (json.loads(out) if out.strip() else None), p.stderr.decode()


def tctl_ok(test, d, *args, **kw):
    rc, js, err = tctl(d, *args, **kw)
    test.assertEqual(rc, 0, "tunnelctl %s: exit %d: %s" % (" ".join(args), rc, err))
    return js


def wstan_client(port, key, extra_tunnels=(), listeners=None):
    tunnels = [{"name": "ws", "protocol": "wstan", "url": "ws://127.0.0.1:%d/" % port,
                "key": key}] + list(extra_tunnels)
    return h.Daemon(h.make_config(
        listeners or [{"name": "socks", "type": "socks5", "route": "ws"}],
        limits={"idle_timeout": "60s", "drain_timeout": "2s"}, tunnels=tunnels))


class EchoPump:
    """A connection through a SOCKS5 proxy to an echo server that sends and
    checks random blocks until stopped: a long transfer."""

    def __init__(self, proxy_port, echo, block=32 * h.KiB):
        self.s = h.socks5_open(proxy_port, "127.0.0.1", echo.port)
        self.s.settimeout(h.scaled(10))
        self.block = block
        self.bytes = 0
        self.error = None
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        rnd = random.Random(7)
        try:
            while not self.stop.is_set():
                data = rnd.randbytes(self.block)
                self.s.sendall(data)
                if h.recv_exact(self.s, len(data)) != data:
                    raise AssertionError("echo returned other bytes")
                self.bytes += len(data)
                time.sleep(0.01)
        except Exception as e:  # reported by finish()
            self.error = e

    def finish(self):
        self.stop.set()
        self.t.join(h.scaled(15))
        self.s.close()
        return self.error


def socks_fails(proxy_port, host, port):
    try:
        rep, s = h.socks_reply_code(proxy_port, host, port, timeout=h.scaled(15))
    except (OSError, h.SocksError, EOFError):
        return True
    s.close()
    return rep != 0


class OnlineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        if not h.TUNNELCTL_BIN or not os.path.exists(h.TUNNELCTL_BIN):
            raise SystemExit("TUNNELCTL_BIN is not set or does not exist")
        cls.origin = h.HttpOrigin()
        cls.echo = h.TcpEcho()
        cls.tmp = tempfile.mkdtemp(prefix="tunnelctl-online-")
        cls.srv = h.Daemon(h.make_config(
            [],
            limits={"idle_timeout": "60s", "drain_timeout": "2s"},
            servers=[{"name": "ws-in", "protocol": "wstan", "listen": "127.0.0.1:0",
                      "keys": []},
                     {"name": "jp-in", "protocol": "jproxy", "listen": "127.0.0.1:0"}]))
        cls.ws_port = cls.srv.server_port("ws-in")
        cls.jp_port = cls.srv.server_port("jp-in")

    @classmethod
    def tearDownClass(cls):
        h.stop_all((cls.srv,), (cls.origin, cls.echo), (cls.tmp,))

    def add_wstan(self, name):
        js = tctl_ok(self, self.srv, "users", "add", name, "--protocol", "wstan",
                     "--server", "127.0.0.1:%d" % self.ws_port, "--via", "ws-in")
        self.assertEqual((js["user"], js["protocol"], js["online"]), (name, "wstan", True))
        return js["secret"]

    def fetch(self, proxy_port, n, seed):
        rc, sha, got, err = h.curl_sha256(
            ["--socks5-hostname", "127.0.0.1:%d" % proxy_port,
             self.origin.url("/bytes?n=%d&seed=%s" % (n, seed))], timeout=30)
        self.assertEqual(rc, 0, err)
        self.assertEqual((got, sha), (n, h.expected_sha256(n, seed)))

    # ---- users and keys -------------------------------------------------------------

    def test_server_starts_without_keys_and_says_so(self):
        self.srv.wait_log(r"server ws-in: no keys yet")
        self.srv.wait_log(r"server jp-in: no users yet")

    def test_add_use_rotate_with_grace_then_old_key_refused(self):
        old = self.add_wstan("alice")
        # The stock clients take this string: v0.4.1 only a strict base64
        # 16-byte key.
        self.assertEqual(len(base64.b64decode(old, validate=True)), 16)
        c1 = c2 = c3 = c4 = None
        try:
            c1 = wstan_client(self.ws_port, old)
            self.fetch(c1.port("socks"), 300 * 1000, "al1")
            pump = EchoPump(c1.port("socks"), self.echo)
            time.sleep(0.3)
            grace = 4
            js = tctl_ok(self, self.srv, "rotate-key", "alice", "--grace", "%ds" % grace,
                         "--server", "127.0.0.1:%d" % self.ws_port, "--via", "ws-in")
            new, until = js["secret"], js["old_until_s"]
            self.assertNotEqual(new, old)
            self.assertGreaterEqual(until, int(time.time()) + grace - 1)
            # The new key at once, and the old one during the grace period.
            c2 = wstan_client(self.ws_port, new)
            self.fetch(c2.port("socks"), 200 * 1000, "al2")
            c3 = wstan_client(self.ws_port, old)
            self.fetch(c3.port("socks"), 1000, "al3")
            users = {u["name"]: u for u in tctl_ok(self, self.srv, "users", "list")["users"]}
            self.assertEqual(users["alice"]["rotating_until_s"], until)
            # After the grace period, the old key is forgotten and refused.
            deadline = time.monotonic() + h.scaled(15)
            while time.time() < until + 1.2 and time.monotonic() < deadline:
                time.sleep(0.2)
            while time.monotonic() < deadline:
                users = {u["name"]: u for u in tctl_ok(self, self.srv, "users", "list")["users"]}
                if users["alice"]["rotating_until_s"] is None:
                    break
                time.sleep(0.2)
            self.assertIsNone(users["alice"]["rotating_until_s"], "the old key never expired")
            c4 = wstan_client(self.ws_port, old)
            self.assertTrue(socks_fails(c4.port("socks"), "127.0.0.1", self.echo.port),
                            "the old key still works after the grace period")
            self.fetch(c2.port("socks"), 1000, "al4")
            # The transfer that began before the rotation never dropped.
            self.assertGreater(pump.bytes, 0)
            self.assertIsNone(pump.finish())
        finally:
            h.stop_all((c1, c2, c3, c4))

    def test_jproxy_user_key_dat_and_remove_with_kill(self):
        kd = os.path.join(self.tmp, "bob.dat")
        js = tctl_ok(self, self.srv, "users", "add", "bob", "--protocol", "jproxy", "--out", kd,
                     "--server", "127.0.0.1:%d" % self.jp_port, "--via", "jp-in")
        self.assertEqual(os.stat(kd).st_mode & 0o777, 0o600)
        token = js["secret"]
        self.check_ksf(kd, token)
        cli = None
        try:
            cli = h.Daemon(h.make_config(
                [{"name": "socks", "type": "socks5", "route": "jp"}],
                limits={"drain_timeout": "2s"},
                tunnels=[{"name": "jp", "protocol": "jproxy",
                          "server": "127.0.0.1:%d" % self.jp_port, "key_file": kd}]))
            cli.wait_log(r"tunnel jp up to ", timeout=10)
            self.fetch(cli.port("socks"), 150 * 1000, "bob1")
            s = h.socks5_open(cli.port("socks"), "127.0.0.1", self.echo.port)
            with s:
                s.sendall(b"ping")
                self.assertEqual(h.recv_exact(s, 4), b"ping")
                conns = tctl_ok(self, self.srv, "conns", "--user", "bob")["conns"]
                self.assertTrue(any(c["server"] == "jp-in" for c in conns), conns)
                js = tctl_ok(self, self.srv, "users", "remove", "bob", "--kill")
                self.assertGreaterEqual(js["killed"], 1)
                self.assertIsNotNone(h.wait_closed(s, h.scaled(5)),
                                     "the removed user's connection is still open")
            self.assertTrue(socks_fails(cli.port("socks"), "127.0.0.1", self.echo.port),
                            "a removed user still gets through")
            users = [u["name"] for u in tctl_ok(self, self.srv, "users", "list")["users"]]
            self.assertNotIn("bob", users)
        finally:
            h.stop_all((cli,))

    def check_ksf(self, key_dat, token_hex):
        """Read key.dat and the server's user file as the Java code does
        (specs/jproxy.md section 5), with openssl for the keys: the token
        is SHA-256(SPKI || salt) of the same key pair."""
        with open(key_dat, "rb") as f:
            raw = f.read()
        (n,) = struct.unpack(">I", raw[:4])
        pkcs8, token = raw[4:4 + n], raw[4 + n:4 + n + 32]
        self.assertEqual(token.hex().upper(), token_hex.upper())
        p = subprocess.run(["openssl", "pkey", "-inform", "DER", "-pubout", "-outform", "DER"],
                           input=pkcs8, stdout=subprocess.PIPE, check=True, timeout=10)
        spki = p.stdout
        p = subprocess.run(["openssl", "pkey", "-inform", "DER", "-noout", "-text"],
                           input=pkcs8, stdout=subprocess.PIPE, check=True, timeout=10)
        self.assertRegex(p.stdout.decode(), r"Private-Key: \(2048 bit")
        self.assertIn("publicExponent: 65537", p.stdout.decode())
        with open(os.path.join(self.srv.tmpdir, "state", "jproxy",
                               token_hex.upper() + ".dat"), "rb") as f:
            uf = f.read()
        (un,) = struct.unpack(">H", uf[:2])
        salt, pub = uf[2 + un:2 + un + 256], uf[2 + un + 256:2 + un + 256 + 294]
        self.assertEqual(pub, spki)
        self.assertEqual(hashlib.sha256(spki + salt).digest(), token)

    def test_concurrent_tunnelctl_clients(self):
        names = ["cc%02d" % i for i in range(12)]
        with ThreadPoolExecutor(max_workers=6) as ex:
            res = list(ex.map(lambda n: tctl(self.srv, "users", "add", n, "--protocol", "wstan",
                                             "--server", "127.0.0.1:%d" % self.ws_port), names))
        for rc, js, err in res:
            self.assertEqual(rc, 0, err)
        listed = {u["name"] for u in tctl_ok(self, self.srv, "users", "list")["users"]}
        self.assertLessEqual(set(names), listed)
        with open(os.path.join(self.srv.tmpdir, "state", "state")) as f:
            text = f.read()
        for n in names:
            self.assertIn("user=%s\n" % n, text)
        with ThreadPoolExecutor(max_workers=6) as ex:
            res = list(ex.map(lambda n: tctl(self.srv, "users", "remove", n), names))
        self.assertEqual([r[0] for r in res], [0] * len(names))

    def test_stats_per_user_match_the_bytes(self):
        key = self.add_wstan("dave")
        cli = None
        try:
            cli = wstan_client(self.ws_port, key)
            n = 200003
            payload = os.urandom(n)
            s = h.socks5_open(cli.port("socks"), "127.0.0.1", self.echo.port)
            with s:
                s.sendall(payload)
                self.assertEqual(h.recv_exact(s, n), payload)
            deadline = time.monotonic() + h.scaled(10)
            while True:
                st = tctl_ok(self, self.srv, "stats", "--user", "dave")
                u = [x for x in st["users"] if x["name"] == "dave"]
                # (conns_active counts the user's tunnels, and the client
                # keeps its WebSocket: a pool.)
                if u and u[0]["bytes_out"] == n:
                    break
                if time.monotonic() > deadline:
                    self.fail("stats never matched: %r" % st)
                time.sleep(0.2)
            self.assertEqual(u[0]["bytes_in"], n)
            self.assertGreaterEqual(u[0]["conns_total"], 1)
        finally:
            h.stop_all((cli,))

    # ---- tunnels, reload ------------------------------------------------------------

    def test_bounce_one_tunnel_mid_transfer_leaves_the_other(self):
        key = self.add_wstan("erin")
        cli = None
        try:
            cli = h.Daemon(h.make_config(
                [{"name": "sa", "type": "socks5", "route": "ta"},
                 {"name": "sb", "type": "socks5", "route": "tb"}],
                limits={"idle_timeout": "60s", "drain_timeout": "2s"},
                tunnels=[{"name": n, "protocol": "wstan",
                          "url": "ws://127.0.0.1:%d/" % self.ws_port, "key": key}
                         for n in ("ta", "tb")]))
            a = EchoPump(cli.port("sa"), self.echo)
            b = EchoPump(cli.port("sb"), self.echo)
            time.sleep(0.5)
            names = [t["name"] for t in tctl_ok(self, cli, "tunnels", "list")["tunnels"]]
            self.assertEqual(sorted(names), ["ta", "tb"])
            b_before = b.bytes
            js = tctl_ok(self, cli, "bounce", "ta")
            self.assertEqual((js["name"], js["kind"]), ("ta", "tunnel"))
            a.t.join(h.scaled(5))
            self.assertIsNotNone(a.error, "the bounced tunnel's connection survived")
            a.s.close()
            time.sleep(0.5)
            self.assertGreater(b.bytes, b_before, "the other tunnel's transfer stalled")
            self.assertIsNone(b.finish(), "the other tunnel's transfer broke")
            # The bounced tunnel works again.
            self.fetch(cli.port("sa"), 5000, "ta2")
            # A listener bounce rebinds it on the port its clients know,
            # while the other listener's connection carries on.
            c = EchoPump(cli.port("sb"), self.echo)
            js = tctl_ok(self, cli, "bounce", "sa")
            self.assertEqual((js["name"], js["kind"]), ("sa", "listener"))
            self.fetch(cli.port("sa"), 5000, "ta3")
            time.sleep(0.3)
            self.assertIsNone(c.finish(), "a listener bounce broke another listener's transfer")
            # A server bounce rebinds it: the same port serves new tunnels.
            js = tctl_ok(self, self.srv, "bounce", "ws-in")
            self.assertEqual(js["kind"], "server")
            self.fetch(cli.port("sb"), 5000, "tb2")
        finally:
            h.stop_all((cli,))

    def test_reload_invalid_changes_nothing_and_errors_reach_tunnelctl(self):
        cfg = self.srv.config_path
        with open(cfg) as f:
            good = f.read()
        key = self.add_wstan("frank")
        try:
            with open(cfg, "w") as f:
                f.write(good.replace("protocol: \"jproxy\"", "protocol: \"jproxi\""))
            rc, js, err = tctl(self.srv, "reload")
            self.assertEqual(rc, 1, err)
            self.assertRegex(err, r"tunneld\.yaml:\d+:\d+: servers\[1\]\.protocol: ")
            st = tctl_ok(self, self.srv, "status")
            self.assertEqual(sorted(s["name"] for s in st["servers"]), ["jp-in", "ws-in"])
            # Still served.
            cli = wstan_client(self.ws_port, key)
            try:
                self.fetch(cli.port("socks"), 1000, "fr1")
            finally:
                h.stop_all((cli,))
        finally:
            with open(cfg, "w") as f:
                f.write(good)
        js = tctl_ok(self, self.srv, "reload")
        self.assertEqual(js["kept"], 2)

    # ---- access --------------------------------------------------------------------

    def test_another_uid_is_refused(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to act as another user")
        sock = os.path.join(self.srv.tmpdir, "control.sock")
        os.chmod(self.srv.tmpdir, 0o755)
        try:
            rc, js, err = tctl(self.srv, "status", user=65534)
            self.assertEqual(rc, 4, err)
            os.chmod(sock, 0o666)  # past the file system: the peer check
            rc, js, err = tctl(self.srv, "status", user=65534)
            self.assertEqual(rc, 4, err)
            self.assertEqual(js["error"]["code"], "EACCES")
        finally:
            os.chmod(sock, 0o660)
            os.chmod(self.srv.tmpdir, 0o700)


class CrashConsistencyTest(unittest.TestCase):
    """SIGKILL the daemon at random moments while tunnelctl has it write the
    state: each restart loads a state that is either before or after a
    write, never torn (a torn file would stop the start)."""

    def test_kill_9_while_writing(self):
        h.require_binaries()
        rounds = 6 if h.SANITIZE else 20
        tmp = tempfile.mkdtemp(prefix="tunnelctl-crash-")
        cfg = h.make_config([], servers=[{"name": "ws-in", "protocol": "wstan",
                                          "listen": "127.0.0.1:0", "keys": []}])
        state = os.path.join(tmp, "state")
        os.makedirs(state)
        cfg = cfg.replace('state_dir: "@TMPDIR@/state"', "state_dir: %s" % h._q(state))
        rnd = random.Random(11)
        acked = set()
        try:
            for r in range(rounds):
                d = h.Daemon(cfg)
                try:
                    listed = {u["name"] for u in tctl_ok(self, d, "users", "list")["users"]}
                    # Every add that was acknowledged is there.
                    self.assertLessEqual(acked, listed)
                    stop = threading.Event()

                    def writer(i=r):
                        k = 0
                        while not stop.is_set() and k < 200:
                            n = "r%02du%03d" % (i, k)
                            rc, _, _ = tctl(d, "users", "add", n, "--protocol", "wstan",
                                            "--server", "127.0.0.1:1", timeout=10)
                            if rc == 0:
                                acked.add(n)
                            k += 1
                    t = threading.Thread(target=writer, daemon=True)
                    t.start()
                    time.sleep(rnd.uniform(0.05, 0.6))
                    d.signal(9)
                    stop.set()
                    t.join(h.scaled(15))
                    d.proc.wait(10)
                finally:
                    d.stop_killed = True
                    h.stop_all((d,)) if d.alive() else shutil.rmtree(d.tmpdir, ignore_errors=True)
            self.assertGreater(len(acked), rounds, "too few writes to prove anything")
            d = h.Daemon(cfg)
            try:
                listed = {u["name"] for u in tctl_ok(self, d, "users", "list")["users"]}
                self.assertLessEqual(acked, listed)
                # The next write clears what the killed writers left.
                tctl_ok(self, d, "users", "add", "last", "--protocol", "wstan",
                        "--server", "127.0.0.1:1")
                leftovers = sorted(set(os.listdir(state)) - {"state", "lock"})
                self.assertEqual(leftovers, [], "temporary files left in the state dir")
            finally:
                h.stop_all((d,))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
