"""jProxy v3 end to end: a tunneld client process (SOCKS5 and HTTP
listeners routed to a jproxy tunnel) and a tunneld server process (a jproxy
`servers:` entry), with keys from `tunnelctl jproxy-keygen`.

    curl -> client tunneld -> jproxy tunnel -> server tunneld -> local origin

Covers: the keygen command, SOCKS5 and HTTP (absolute URI and CONNECT)
through the tunnel, 50 concurrent streams on one tunnel with a 64 MiB
download while another stream stalls, error mapping (refused, unknown
host), the server's max_streams, server restart with client reconnect, and
SOCKS5 UDP ASSOCIATE through the tunnel.
"""

import hashlib
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

BIG = 64 * h.MiB
SMALL_STREAMS = 48
RSS_LIMIT_KIB = (128 if h.SANITIZE else 64) * 1024
LIMITED_MAX_STREAMS = 3


class TcpPusher(h._TcpServer):
    """Sends data as fast as the peer takes it (up to limit bytes) and then
    holds the connection until closed: the target of a stalled stream."""

    def __init__(self, limit=256 * h.MiB, host="127.0.0.1"):
        self.limit = limit
        self.sent = 0
        super().__init__(host)

    def handle(self, c, addr):
        block = b"p" * (64 * h.KiB)
        c.settimeout(0.5)
        while self.sent < self.limit and not self._stop.is_set():
            try:
                n = c.send(block)
            except socket.timeout:
                continue
            with self.lock:
                self.sent += n
        self._stop.wait(120)


def tunnel_yaml(name, port, key_file, **extra):
    t = {"name": name, "protocol": "jproxy", "server": "127.0.0.1:%d" % port,
         "key_file": key_file}
    t.update(extra)
    return t


def server_yaml(name, listen, users_dir, **extra):
    s = {"name": name, "protocol": "jproxy", "listen": listen, "users_dir": users_dir}
    s.update(extra)
    return s


# --------------------------------------------------------------------------

class KeygenTest(unittest.TestCase):
    """tunnelctl jproxy-keygen: file layout, modes, the token, --force."""

    def setUp(self):
        if not h.TUNNELCTL_BIN or not os.path.exists(h.TUNNELCTL_BIN):
            self.skipTest("TUNNELCTL_BIN not set")
        self.tmp = tempfile.mkdtemp(prefix="tunneld-jpkg-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_ctl(self, *args):
        return subprocess.run([h.TUNNELCTL_BIN, "jproxy-keygen"] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)

    def test_files_and_token(self):
        key = os.path.join(self.tmp, "key.dat")
        users = os.path.join(self.tmp, "users")
        tok = h.jproxy_keygen("älice", key, users)
        ufile = os.path.join(users, tok + ".dat")
        self.assertEqual(os.listdir(users), [tok + ".dat"])
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(ufile).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(users).st_mode), 0o700)
        with open(key, "rb") as f:
            kd = f.read()
        n = struct.unpack("!I", kd[:4])[0]
        self.assertTrue(1100 <= n <= 1300, "PKCS#8 length %d" % n)
        self.assertEqual(len(kd), 4 + n + 32)
        self.assertEqual(kd[4 + n:].hex().upper(), tok)
        with open(ufile, "rb") as f:
            ud = f.read()
        nl = struct.unpack("!H", ud[:2])[0]
        self.assertEqual(ud[2:2 + nl], "älice".encode())
        salt, spki = ud[2 + nl:2 + nl + 256], ud[2 + nl + 256:]
        self.assertEqual(len(spki), 294)
        self.assertTrue(spki.startswith(bytes.fromhex(
            "30820122300d06092a864886f70d01010105000382010f00")), "SPKI DER prefix")
        self.assertEqual(hashlib.sha256(spki + salt).hexdigest().upper(), tok)
        if shutil.which("openssl"):
            # The private key in key.dat belongs to the public key in the user file.
            der = os.path.join(self.tmp, "k.der")
            with open(der, "wb") as f:
                f.write(kd[4:4 + n])
            p = subprocess.run(["openssl", "pkey", "-inform", "DER", "-in", der, "-pubout",
                                "-outform", "DER"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, spki)

    def test_refuses_overwrite_unless_force(self):
        key = os.path.join(self.tmp, "key.dat")
        users = os.path.join(self.tmp, "users")
        tok1 = h.jproxy_keygen("bob", key, users)
        with open(key, "rb") as f:
            before = f.read()
        p = self.run_ctl("--user", "bob", "--key-out", key, "--users-dir", users)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"already exists", p.stderr)
        with open(key, "rb") as f:
            self.assertEqual(f.read(), before, "key.dat changed without --force")
        self.assertEqual(os.listdir(users), [tok1 + ".dat"], "a user file was left behind")
        tok2 = h.jproxy_keygen("bob", key, users, force=True)
        self.assertNotEqual(tok1, tok2)
        self.assertEqual(sorted(os.listdir(users)), sorted([tok1 + ".dat", tok2 + ".dat"]))

    def test_usage_errors(self):
        key = os.path.join(self.tmp, "key.dat")
        users = os.path.join(self.tmp, "users")
        for args in ([], ["--user", "x"], ["--user", "x", "--key-out", key],
                     ["--user", "x", "--key-out", key, "--users-dir", users, "--bogus"],
                     ["--user"]):
            p = self.run_ctl(*args)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertTrue(p.stderr, "no message for %r" % args)
        self.assertFalse(os.path.exists(key))
        p = self.run_ctl("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"--users-dir", p.stdout)

    def test_failures(self):
        users = os.path.join(self.tmp, "users")
        p = self.run_ctl("--user", "x", "--key-out", os.path.join(self.tmp, "no", "key.dat"),
                         "--users-dir", users)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"does not exist", p.stderr)
        self.assertEqual(os.listdir(users), [], "user file left after the key write failed")
        p = self.run_ctl("--user", "x" * 256, "--key-out", os.path.join(self.tmp, "k"),
                         "--users-dir", users)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"invalid user name", p.stderr)
        p = self.run_ctl("--user", "x", "--key-out", os.path.join(self.tmp, "k"),
                         "--users-dir", os.path.join(self.tmp, "a", "b"))
        self.assertEqual(p.returncode, 1)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "k")))


# --------------------------------------------------------------------------

class JproxyUserFileTest(unittest.TestCase):
    """The other key forms: a server that knows its user only through
    users: [{jproxy_user_file}] (no users_dir), and a client with
    private_key (PEM) + token instead of key_file."""

    def test_user_file_and_pem_key(self):
        if not shutil.which("openssl"):
            self.skipTest("needs the openssl command")
        h.require_binaries()
        tmp = tempfile.mkdtemp(prefix="tunneld-jpuf-")
        origin = h.HttpOrigin()
        srv = cli = None
        try:
            key = os.path.join(tmp, "key.dat")
            tok = h.jproxy_keygen("carol", key, os.path.join(tmp, "u"))
            with open(key, "rb") as f:
                kd = f.read()
            n = struct.unpack("!I", kd[:4])[0]
            der = os.path.join(tmp, "k.der")
            with open(der, "wb") as f:
                f.write(kd[4:4 + n])
            pem = os.path.join(tmp, "k.pem")
            subprocess.run(["openssl", "pkey", "-inform", "DER", "-in", der, "-out", pem],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=10)
            os.chmod(pem, 0o600)
            srv = h.Daemon(h.make_config(
                [],
                users=[{"name": "carol",
                        "jproxy_user_file": os.path.join(tmp, "u", tok + ".dat")}],
                servers=[{"name": "jp-u", "protocol": "jproxy", "listen": "127.0.0.1:0"}]))
            cli = h.Daemon(h.make_config(
                [{"name": "socks", "type": "socks5", "route": "jpu"}],
                limits={"drain_timeout": "3s"},
                tunnels=[{"name": "jpu", "protocol": "jproxy",
                          "server": "127.0.0.1:%d" % srv.server_port("jp-u"),
                          "private_key": pem, "token": tok.lower()}]))
            rc, sha, got, err = h.curl_sha256(
                ["--socks5-hostname", "127.0.0.1:%d" % cli.port("socks"),
                 origin.url("/bytes?n=65537&seed=jp-uf")], timeout=20)
            self.assertEqual(rc, 0, err)
            self.assertEqual((got, sha), (65537, h.expected_sha256(65537, "jp-uf")))
        finally:
            h.stop_all((cli, srv), (origin,), (tmp,))


class JproxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        h.raise_nofile_limit()
        cls.tmp = tempfile.mkdtemp(prefix="tunneld-jp-")
        cls.key_file = os.path.join(cls.tmp, "key.dat")
        cls.users_dir = os.path.join(cls.tmp, "users")
        h.jproxy_keygen("alice", cls.key_file, cls.users_dir)

        cls.origin = h.HttpOrigin()
        cls.echo = h.TcpEcho()
        cls.uecho = h.UdpEcho()
        cls.srv = cls.srv3 = cls.cli = None
        try:
            cls.srv = cls.start_server("127.0.0.1:0")
            cls.srv_port = cls.srv.server_port("jp-in")
            # A second server with a small max_streams.
            cls.srv3 = h.Daemon(h.make_config(
                [],
                servers=[server_yaml("jp-in3", "127.0.0.1:0", cls.users_dir,
                                     max_streams=LIMITED_MAX_STREAMS)]))
            cls.cli = h.Daemon(h.make_config(
                [{"name": "socks", "type": "socks5", "route": "jp"},
                 {"name": "http", "type": "http", "route": "jp"},
                 {"name": "socks3", "type": "socks5", "route": "jp3"}],
                limits={"connect_timeout": "10s", "udp_timeout": "30s", "drain_timeout": "3s"},
                tunnels=[tunnel_yaml("jp", cls.srv_port, cls.key_file, reconnect_max="1s"),
                         tunnel_yaml("jp3", cls.srv3.server_port("jp-in3"), cls.key_file)]))
            cls.cli.wait_log(r"tunnel jp up to ", timeout=10)
            cls.cli.wait_log(r"tunnel jp3 up to ", timeout=10)
        except BaseException:
            cls._cleanup()
            raise

    @classmethod
    def start_server(cls, listen):
        return h.Daemon(h.make_config(
            [],
            limits={"drain_timeout": "2s"},
            servers=[server_yaml("jp-in", listen, cls.users_dir)],
            log_level="debug"))

    @classmethod
    def _cleanup(cls):
        h.stop_all((cls.cli, cls.srv, cls.srv3), (cls.origin, cls.echo, cls.uecho), (cls.tmp,))

    @classmethod
    def tearDownClass(cls):
        cls._cleanup()

    def socks(self):
        return "127.0.0.1:%d" % self.cli.port("socks")

    def fetch_check(self, args, n, seed, timeout=30):
        rc, sha, got, err = h.curl_sha256(args, timeout=timeout)
        self.assertEqual(rc, 0, "curl failed: %s (%r)" % (err, args))
        self.assertEqual(got, n, "body length")
        self.assertEqual(sha, h.expected_sha256(n, seed), "body sha256")

    def bytes_url(self, n, seed, host=None):
        u = self.origin.url("/bytes?n=%d&seed=%s" % (n, seed))
        return u.replace("127.0.0.1", host) if host else u

    # --- the front-ends through the tunnel ---------------------------------
    def test_socks5_hostname(self):
        self.fetch_check(["--socks5-hostname", self.socks(),
                          self.bytes_url(300001, "jp-s5h", host="localhost")], 300001, "jp-s5h")

    def test_socks5_ipv4(self):
        self.fetch_check(["--socks5", self.socks(), self.bytes_url(200003, "jp-s5")],
                         200003, "jp-s5")

    def test_socks5_close_ends_stream_promptly(self):
        """The client closes after a keep-alive response: the stream (and its
        conn line) ends at once, not after linger_timeout."""
        s = h.socks5_open(self.cli.port("socks"), "127.0.0.1", self.origin.port)
        local_port = s.getsockname()[1]
        with s:
            s.sendall(("GET /bytes?n=5000&seed=jp-ka HTTP/1.1\r\nHost: %s\r\n\r\n"
                       % self.origin.hostport).encode())
            st, _, _, body = h.read_http_response(s, timeout=h.scaled(10))
            self.assertEqual((st, body), (200, h.gen_bytes(5000, "jp-ka")))
        line = self.cli.wait_conn_line(local_port, timeout=3)
        self.assertEqual(line["route"], "jp")
        self.assertNotEqual(line["end"], "linger-timeout")
        self.assertLess(float(line["duration"]), 3.0 * h.SLOW)
        # The same when the target closes first (HTTP/1.0 response, then EOF).
        s = h.socks5_open(self.cli.port("socks"), "127.0.0.1", self.origin.port)
        local_port = s.getsockname()[1]
        with s:
            s.sendall(b"GET /bytes?n=5000&seed=jp-ka HTTP/1.0\r\nHost: x\r\n\r\n")
            st, _, _, body = h.read_http_response(s, timeout=h.scaled(10))
            self.assertEqual((st, body), (200, h.gen_bytes(5000, "jp-ka")))
            self.assertIsNotNone(h.wait_closed(s, h.scaled(3)), "no EOF after the response")
        line = self.cli.wait_conn_line(local_port, timeout=3)
        self.assertNotEqual(line["end"], "linger-timeout")
        # A client half-close: jProxy cannot carry it, so the stream ends
        # (Disconnect) once the data is out, and the client sees EOF at once.
        s = h.socks5_open(self.cli.port("socks"), "127.0.0.1", self.echo.port)
        local_port = s.getsockname()[1]
        with s:
            s.sendall(b"half-close")
            s.shutdown(socket.SHUT_WR)
            self.assertIsNotNone(h.wait_closed(s, h.scaled(3)), "no EOF after a half-close")
        line = self.cli.wait_conn_line(local_port, timeout=3)
        self.assertNotEqual(line["end"], "linger-timeout")
        self.assertLess(float(line["duration"]), 3.0 * h.SLOW)

    def test_socks5_echo_both_ways(self):
        s = h.socks5_open(self.cli.port("socks"), "127.0.0.1", self.echo.port)
        with s:
            payload = os.urandom(300 * h.KiB)
            got = bytearray()

            def reader():
                while len(got) < len(payload):
                    b = s.recv(65536)
                    if not b:
                        return
                    got.extend(b)
            t = threading.Thread(target=reader, daemon=True)
            t.start()
            s.sendall(payload)
            t.join(h.scaled(20))
            self.assertEqual(bytes(got), payload)

    def test_http_absolute_uri(self):
        self.fetch_check(["-x", "http://127.0.0.1:%d" % self.cli.port("http"),
                          self.bytes_url(150007, "jp-abs")], 150007, "jp-abs")

    def test_http_connect(self):
        self.fetch_check(["-p", "-x", "http://127.0.0.1:%d" % self.cli.port("http"),
                          self.bytes_url(150011, "jp-con")], 150011, "jp-con")

    # --- errors -------------------------------------------------------------
    def test_refused_target(self):
        port = h.closed_port()
        rep, s = h.socks_reply_code(self.cli.port("socks"), "127.0.0.1", port)
        s.close()
        self.assertEqual(rep, 0x05, "SOCKS5 reply for a refused target through the tunnel")
        p = h.run_curl(["-o", "/dev/null", "-w", "%{http_code}", "-x",
                        "http://127.0.0.1:%d" % self.cli.port("http"),
                        "http://127.0.0.1:%d/" % port], check=False)
        self.assertEqual(p.stdout, b"502", p.stderr)

    def test_unknown_host(self):
        rep, s = h.socks_reply_code(self.cli.port("socks"), "nonexistent.invalid", 80,
                                    timeout=h.scaled(15))
        s.close()
        # server status 5 (unknown host) -> TD_EDNS -> SOCKS5 host unreachable
        self.assertEqual(rep, 0x04, "SOCKS5 reply for an unresolvable name through the tunnel")
        p = h.run_curl(["-o", "/dev/null", "-w", "%{http_code}", "-x",
                        "http://127.0.0.1:%d" % self.cli.port("http"),
                        "http://nonexistent.invalid/"], check=False)
        self.assertEqual(p.stdout, b"502", p.stderr)

    def test_server_max_streams(self):
        port = self.cli.port("socks3")
        held = []
        try:
            for i in range(LIMITED_MAX_STREAMS):
                held.append(h.socks5_open(port, "127.0.0.1", self.echo.port))
            for i, s in enumerate(held):
                s.sendall(b"hello-%d" % i)
                self.assertEqual(h.recv_exact(s, len(b"hello-%d" % i)), b"hello-%d" % i)
            rep, s4 = h.socks_reply_code(port, "127.0.0.1", self.echo.port)
            s4.close()
            self.assertNotEqual(rep, 0, "stream %d was admitted" % (LIMITED_MAX_STREAMS + 1))
            self.assertEqual(rep, 0x01, "SOCKS5 reply for the server's status 6")
            for i, s in enumerate(held):  # the first ones are unharmed
                s.sendall(b"again-%d" % i)
                self.assertEqual(h.recv_exact(s, len(b"again-%d" % i)), b"again-%d" % i)
            # A freed slot is usable again (the server learns of the close
            # from the client's Disconnect: allow it a moment).
            held.pop().close()
            deadline = time.monotonic() + h.scaled(5)
            while True:
                rep, s = h.socks_reply_code(port, "127.0.0.1", self.echo.port)
                if rep == 0:
                    held.append(s)
                    break
                s.close()
                self.assertLess(time.monotonic(), deadline, "slot not freed, rep 0x%02x" % rep)
                time.sleep(0.1)
        finally:
            for s in held:
                s.close()
        self.assertNotRegex(self.cli.log_text(), r"tunnel jp3 .*lost")

    # --- many streams on one tunnel, one of them stalled -------------------
    def test_many_streams_one_tunnel_with_stalled_stream(self):
        cli_log0 = self.cli.log_text()
        ups0 = len(re.findall(r"tunnel jp up to ", cli_log0))
        lost0 = len(re.findall(r"tunnel jp to .* lost", cli_log0))
        # Warm up, then take the baseline RSS.
        h.socks5_http_get(self.cli.port("socks"), self.origin, "/bytes?n=1000&seed=warm")
        rss0 = self.cli.rss_kib()
        srv_log_start = len(self.srv.log_text())

        pusher = TcpPusher()
        stalled = None
        try:
            stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.settimeout(h.scaled(10))
            stalled.connect(("127.0.0.1", self.cli.port("socks")))
            self.assertEqual(h.socks_greet(stalled, (0,)), 0)
            rep, _, _ = h.socks_request(stalled, h.SOCKS_CMD_CONNECT, "127.0.0.1", pusher.port)
            self.assertEqual(rep, 0)
            # Let it fill every buffer on the way and stall.
            deadline = time.monotonic() + h.scaled(5)
            last = -1
            while time.monotonic() < deadline:
                time.sleep(0.3)
                with pusher.lock:
                    cur = pusher.sent
                if cur == last and cur > 0:
                    break
                last = cur
            self.assertGreater(pusher.sent, 0, "the stalled stream's target sent nothing")
            self.assertLess(pusher.sent, 64 * h.MiB, "the stalled stream never stalled")

            parties = SMALL_STREAMS + 1
            barrier = threading.Barrier(parties, timeout=h.scaled(30))
            errors = []
            results = {}
            lock = threading.Lock()

            def small(i):
                try:
                    s = h.socks5_open(self.cli.port("socks"), "127.0.0.1", self.origin.port,
                                      timeout=h.scaled(20))
                    with s:
                        barrier.wait()
                        n, seed = 20000 + i * 97, "jp-many-%d" % i
                        s.sendall(("GET /bytes?n=%d&seed=%s HTTP/1.0\r\nHost: x\r\n\r\n"
                                   % (n, seed)).encode())
                        st, _, _, body = h.read_http_response(s, timeout=h.scaled(40))
                        ok = st == 200 and body == h.gen_bytes(n, seed)
                    with lock:
                        results[i] = ok
                except Exception as e:  # noqa: BLE001 - reported below
                    with lock:
                        errors.append("small %d: %r" % (i, e))
                    barrier.abort()

            def big():
                try:
                    s = h.socks5_open(self.cli.port("socks"), "127.0.0.1", self.origin.port,
                                      timeout=h.scaled(20))
                    with s:
                        barrier.wait()
                        s.sendall(b"GET /bytes?n=%d&seed=jp-big HTTP/1.0\r\nHost: x\r\n\r\n"
                                  % BIG)
                        st, _, hdrs, rest = h.read_http_response(s, timeout=h.scaled(20),
                                                                 head_only=True)
                        sha = hashlib.sha256(rest)
                        n = len(rest)
                        s.settimeout(h.scaled(60))
                        while n < BIG:
                            b = s.recv(256 * h.KiB)
                            if not b:
                                break
                            sha.update(b)
                            n += len(b)
                    with lock:
                        results["big"] = (st, n, sha.hexdigest())
                except Exception as e:  # noqa: BLE001
                    with lock:
                        errors.append("big: %r" % e)
                    barrier.abort()

            threads = [threading.Thread(target=small, args=(i,), daemon=True)
                       for i in range(SMALL_STREAMS)]
            threads.append(threading.Thread(target=big, daemon=True))
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(max(0.1, t0 + h.scaled(75) - time.monotonic()))
            elapsed = time.monotonic() - t0
            self.assertFalse([t for t in threads if t.is_alive()],
                             "streams still running after %.1fs" % elapsed)
            self.assertEqual(errors, [])
            self.assertEqual(sorted(k for k in results if k != "big"),
                             list(range(SMALL_STREAMS)))
            self.assertTrue(all(results[i] for i in range(SMALL_STREAMS)),
                            "bad bodies: %r" % [i for i in range(SMALL_STREAMS) if not results[i]])
            st, n, sha = results["big"]
            self.assertEqual((st, n), (200, BIG))
            self.assertEqual(sha, h.expected_sha256(BIG, "jp-big"), "64 MiB body sha256")

            # The stalled stream is still open: unread data waits for us.
            stalled.settimeout(h.scaled(5))
            got = stalled.recv(65536)
            self.assertTrue(got, "the stalled stream was closed")
            self.assertEqual(pusher.active, 1, "the stalled stream's target connection ended")

            rss1 = self.cli.rss_kib()
            self.assertLess(rss1 - rss0, RSS_LIMIT_KIB,
                            "client RSS grew from %d to %d KiB" % (rss0, rss1))

            # All of it on one tunnel: no reconnect on the client, and the
            # server saw every stream on the same tunnel.
            cli_log = self.cli.log_text()
            self.assertEqual(len(re.findall(r"tunnel jp up to ", cli_log)), ups0)
            self.assertEqual(len(re.findall(r"tunnel jp to .* lost", cli_log)), lost0)
            srv_log = self.srv.log_text()[srv_log_start:]
            tunnels = set(re.findall(r"server jp-in tunnel #(\d+) \S+ stream \d+: connect to "
                                     r"127\.0\.0\.1:%d" % self.origin.port, srv_log))
            self.assertEqual(len(tunnels), 1, "streams spread over tunnels %r" % tunnels)
        finally:
            if stalled is not None:
                stalled.close()
            pusher.close()

    # --- restart -----------------------------------------------------------
    def test_server_restart_client_reconnects(self):
        cls = type(self)
        h.socks5_http_get(self.cli.port("socks"), self.origin, "/bytes?n=100&seed=pre")
        ups0 = len(re.findall(r"tunnel jp up to ", self.cli.log_text()))
        port = cls.srv_port
        old = cls.srv
        cls.srv = None
        old.stop()
        self.cli.wait_log(r"tunnel jp to 127\.0\.0\.1:%d lost" % port, timeout=10)

        # A new server on the same port (retry while the port is busy).
        deadline = time.monotonic() + h.scaled(5)
        while True:
            try:
                cls.srv = cls.start_server("127.0.0.1:%d" % port)
                break
            except h.DaemonError as e:
                if time.monotonic() > deadline or "listen" not in str(e):
                    raise
                time.sleep(0.2)
        self.assertEqual(cls.srv.server_port("jp-in"), port)

        t0 = time.monotonic()
        last = None
        while time.monotonic() - t0 < h.scaled(10):
            p = h.run_curl(["--socks5-hostname", self.socks(),
                            self.origin.url("/bytes?n=777&seed=post")], timeout=5, check=False)
            if p.returncode == 0 and p.stdout == h.gen_bytes(777, "post"):
                break
            last = p
            time.sleep(0.25)
        else:
            self.fail("no request through the restarted server within 10s: %r" % (last,))
        ms = self.cli.wait_log(r"tunnel jp up to ", count=ups0 + 1, timeout=2)
        self.assertEqual(len(ms), ups0 + 1)
        text = self.cli.log_text()
        self.assertLess(text.rindex("lost"), text.rindex("tunnel jp up to "),
                        "'up' must come after 'lost'")

    # --- UDP ---------------------------------------------------------------
    def test_udp_associate_through_tunnel(self):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.settimeout(h.scaled(5))
        c = h.tcp_connect(self.cli.port("socks"))
        with c, u:
            self.assertEqual(h.socks_greet(c, (0,)), 0)
            uh, up = u.getsockname()[:2]
            rep, bh, bp = h.socks_request(c, h.SOCKS_CMD_UDP, uh, up)
            self.assertEqual(rep, 0, "UDP ASSOCIATE refused on a jproxy route")
            if bh in ("0.0.0.0", "::"):
                bh = "127.0.0.1"
            relay = (bh, bp)
            before = len(self.uecho.received)
            for i in range(3):
                payload = b"jp-udp-%d-" % i + os.urandom(100 * (i + 1))
                u.sendto(h.udp_encode("127.0.0.1", self.uecho.port, payload), relay)
                data, src = u.recvfrom(65535)
                self.assertEqual(src[:2], relay)
                frag, host, port, body = h.udp_decode(data)
                self.assertEqual((frag, host, port), (0, "127.0.0.1", self.uecho.port))
                self.assertEqual(body, payload)
            self.assertEqual(len(self.uecho.received) - before, 3)


class JproxyHealthTest(unittest.TestCase):
    """The protocol has no keepalive: the client closes an idle tunnel (and
    reopens it on demand), and reconnects when the server stops answering."""

    def setUp(self):
        h.require_binaries()
        self.tmp = tempfile.mkdtemp(prefix="tunneld-jph-")
        self.key_file = os.path.join(self.tmp, "key.dat")
        users_dir = os.path.join(self.tmp, "users")
        h.jproxy_keygen("hal", self.key_file, users_dir)
        self.origin = h.HttpOrigin()
        self.srv = self.cli = None
        self.srv = h.Daemon(h.make_config(
            [], servers=[server_yaml("jp-h", "127.0.0.1:0", users_dir)]))

    def tearDown(self):
        if self.srv is not None:
            try:
                os.kill(self.srv.pid, signal.SIGCONT)  # in case a test stopped it
            except OSError:
                pass
        h.stop_all((self.cli, self.srv), (self.origin,), (self.tmp,))

    def start_client(self, **limits):
        self.cli = h.Daemon(h.make_config(
            [{"name": "socks", "type": "socks5", "route": "jp"}],
            limits=limits,
            tunnels=[tunnel_yaml("jp", self.srv.server_port("jp-h"), self.key_file,
                                 reconnect_max="1s")]))
        self.cli.wait_log(r"tunnel jp up to ", timeout=10)

    def fetch(self, seed, timeout=20):
        rc, sha, got, err = h.curl_sha256(
            ["--socks5-hostname", "127.0.0.1:%d" % self.cli.port("socks"),
             self.origin.url("/bytes?n=10000&seed=%s" % seed)], timeout=timeout)
        return rc, (got, sha) == (10000, h.expected_sha256(10000, seed)), err

    def test_idle_tunnel_closes_and_reopens_on_demand(self):
        self.start_client(idle_timeout="2s")
        self.cli.wait_log(r"tunnel jp closed after 2000 ms idle", timeout=8)
        rc, ok, err = self.fetch("jp-idle")
        self.assertEqual(rc, 0, err)
        self.assertTrue(ok)
        self.assertEqual(len(re.findall(r"tunnel jp up to ", self.cli.log_text())), 2)

    def test_unresponsive_server_is_detected(self):
        self.start_client(connect_timeout="1s")
        os.kill(self.srv.pid, signal.SIGSTOP)
        try:
            rc, ok, _ = self.fetch("jp-stop", timeout=10)
            self.assertNotEqual(rc, 0)
            self.cli.wait_log(r"tunnel jp: no answer from the server for \d+ ms; reconnecting",
                              timeout=5)
        finally:
            os.kill(self.srv.pid, signal.SIGCONT)
        self.cli.wait_log(r"tunnel jp up to ", timeout=15, count=2)
        rc, ok, err = self.fetch("jp-cont")
        self.assertEqual(rc, 0, err)
        self.assertTrue(ok)


if __name__ == "__main__":
    h.main()
