"""jProxy server: hostile and broken clients.

The test acts as a raw jProxy v3 client (docs/protocols/jproxy.md,
/work/shared/specs/jproxy.md) against a tunneld jproxy server, with a key
made by `tunnelctl jproxy-keygen`.  The cryptography goes through the
`openssl` command-line tool (RSA PKCS#1 v1.5 decryption of the session key,
AES-128-ECB + PKCS#7 per frame), so the test needs no Python packages.

Every broken tunnel must be closed alone, with a reason in the log: a good
tunnel (the one a tunneld client process keeps to the same server) keeps
working, checked with a curl through it after each case.  A protocol-helper
self-test against the spec's vectors (section 11) runs first and needs no
daemon.
"""

import base64
import os
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

MAGIC = b"jProxy"
KIND_CONNECT = 0x01
KIND_PACKET = 0x21
KIND_DISCONNECT = 0x41
ATYP_IPV4 = 1
ATYP_DOMAIN = 3
STATUS_OK = 0
STATUS_LIMIT = 6

HANDSHAKE_TIMEOUT_S = 2
SERVER_MAX_STREAMS = 5


def have_openssl():
    return shutil.which("openssl") is not None


# --------------------------------------------------------------------------
# Protocol helpers (openssl CLI for the cryptography)

def _openssl(args, data, timeout=10.0):
    p = subprocess.run(["openssl"] + list(args), input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise ValueError("openssl %s failed (%d): %s" % (" ".join(args[:2]), p.returncode,
                                                         p.stderr.decode("utf-8", "replace")))
    return p.stdout


def aes_ecb_encrypt(key, plain, pad=True):
    args = ["enc", "-e", "-aes-128-ecb", "-K", key.hex(), "-nosalt"]
    if not pad:
        args.append("-nopad")
    return _openssl(args, plain)


def aes_ecb_decrypt(key, ct, pad=True):
    args = ["enc", "-d", "-aes-128-ecb", "-K", key.hex(), "-nosalt"]
    if not pad:
        args.append("-nopad")
    return _openssl(args, ct)


def rsa_decrypt(key_der_path, ct):
    """RSAES-PKCS1-v1_5 decryption with a PKCS#8 DER private key."""
    return _openssl(["pkeyutl", "-decrypt", "-keyform", "DER", "-inkey", key_der_path,
                     "-pkeyopt", "rsa_padding_mode:pkcs1"], ct)


def parse_ksf(data):
    """key.dat: u32 BE length L, PKCS#8 DER (L bytes), 32-byte token.
    Returns (der, token)."""
    if len(data) < 4:
        raise ValueError("key file too short")
    n = struct.unpack("!I", data[:4])[0]
    if n < 64 or len(data) < 4 + n + 32:
        raise ValueError("key file truncated (L=%d, %d bytes)" % (n, len(data)))
    return data[4:4 + n], data[4 + n:4 + n + 32]


def frame(key, msg):
    ct = aes_ecb_encrypt(key, msg)
    assert len(ct) % 16 == 0 and 1 <= len(ct) // 16 <= 255, len(ct)
    return bytes([len(ct) // 16]) + ct


def msg_connect_ipv4(cid, ip, port):
    return (struct.pack("!BHHBB", KIND_CONNECT, cid, port, ATYP_IPV4, 4)
            + socket.inet_aton(ip))


def msg_connect_host(cid, host, port):
    hb = host.encode()
    return struct.pack("!BHHBB", KIND_CONNECT, cid, port, ATYP_DOMAIN, len(hb)) + hb


def msg_packet(cid, data):
    return struct.pack("!BHH", KIND_PACKET, cid, len(data)) + data


def msg_disconnect(cid):
    return struct.pack("!BHB", KIND_DISCONNECT, cid, 4)


class RawJp(h.SockOwner):
    """A raw jProxy v3 client socket (Java-compatible: minor version 0, so
    no tunneld extensions)."""

    def __init__(self, port, timeout=5.0):
        self.sock = h.tcp_connect(port, timeout=h.scaled(timeout))
        self.local_port = self.sock.getsockname()[1]
        self.key = None

    def hello(self, minor=0):
        self.sock.sendall(MAGIC + bytes([3, minor]))
        return h.recv_exact(self.sock, 7)

    def login(self, token, key_der_path):
        rep = self.hello()
        if rep != MAGIC + b"\x00":
            raise AssertionError("hello refused: %r" % rep)
        self.sock.sendall(token)
        st = h.recv_exact(self.sock, 1)
        if st != b"\x00":
            raise AssertionError("login refused: %r" % st)
        ct = h.recv_exact(self.sock, 256)
        k = rsa_decrypt(key_der_path, ct)
        if len(k) != 16:
            raise AssertionError("session key is %d bytes, want 16" % len(k))
        self.key = k

    def send(self, msg):
        self.sock.sendall(frame(self.key, msg))

    def recv(self, timeout=5.0):
        """One message (decrypted, unpadded)."""
        self.sock.settimeout(h.scaled(timeout))
        n = h.recv_exact(self.sock, 1)[0]
        if n == 0:
            raise AssertionError("server sent an empty frame (N = 0)")
        return aes_ecb_decrypt(self.key, h.recv_exact(self.sock, 16 * n))

    def closed_within(self, timeout):
        """Seconds until the server closed the tunnel, or None."""
        return h.wait_closed(self.sock, h.scaled(timeout))


def parse_reply(m):
    """Connect reply -> (id, status, time)."""
    if len(m) < 6 or m[0] != KIND_CONNECT:
        raise AssertionError("not a Connect reply: %r" % m[:16])
    cid, status, ms = struct.unpack("!HBH", m[1:6])
    return cid, status, ms


def parse_packet(m):
    if m[0] != KIND_PACKET or len(m) < 5:
        raise AssertionError("not a Packet: %r" % m[:16])
    cid, n = struct.unpack("!HH", m[1:5])
    if len(m) < 5 + n:
        raise AssertionError("Packet length %d past the message (%d)" % (n, len(m)))
    return cid, m[5:5 + n]


# --------------------------------------------------------------------------
# Self-test of the helpers against the spec's vectors (no daemon needed)

SPEC_K = bytes(range(16))
SPEC_FRAMES = [  # spec 11.4: (plaintext, wire frame)
    ("010001005001047f000001", "015c2ed1ac1d4aeebac7157377865df15a"),
    ("0100021f4003096c6f63616c686f7374",
     "02c310cbbc4d4f35fe3e04fa0af0c523e8954f64f2e4e86e9eee82d20216684899"),
    ("01000100" "0005", "01e75f53ad7db4dcbec4c3d5d41e732a5f"),
    ("01000102" "0065", "01fb7ff1a26719671916bf2250a5ff6a4a"),
    ("210001001247455420" "2f20485454502f312e300d0a0d0a",
     "02c7904a8a8bc3a13fe9084885eb7b4a55fa2f6b228e89a93b4c4e4d470bcd6b13"),
    ("41000104", "01d4cf3542850667f06a356a558d9db09e"),
    ("4100010400", "01909e80d74003a6be096df5ac8ce37278"),
]
SPEC_RSA_CT = bytes.fromhex(
    "24d564df22d36a6d4537e6864d107520a2e3b174e4231cc6825e590fd7148ebe"
    "26546a9991a9ae5dcea1a6c85287ddec18da0f23150fe1762d151723b1daead8"
    "5b064f9c16c4bb09f863e7c813887eaabe140109996b78f70d88a9780d67dde2"
    "23728badec4e3cef223f0be9b6d258dd2c9a4ef8e0a0be74878c3acb7ed44052"
    "212027821c63f394d7d2c75ac70dc904d3eb453423bf8f8f1391bd9303e25eb7"
    "598d69ae940f735302114319e7ab5994e6905967bf73646dda95155e57cce3a9"
    "9862a85b606633e035a17dc083d64a30b9b5efb73e39dd511314f5acf822815a"
    "7929caef239de84a2839ab4418973b71ec9e2f052180264a123c08dd9eddfdd7")


@unittest.skipUnless(have_openssl(), "needs the openssl command")
class HelperSelfTest(unittest.TestCase):
    def test_frames_match_spec(self):
        for plain, wire in SPEC_FRAMES:
            self.assertEqual(frame(SPEC_K, bytes.fromhex(plain)).hex(), wire, plain)
            w = bytes.fromhex(wire)
            self.assertEqual(aes_ecb_decrypt(SPEC_K, w[1:]).hex(), plain)
        # the unit check of spec 11.4: a full padding block
        self.assertEqual(aes_ecb_encrypt(SPEC_K, b"\x10" * 16, pad=False).hex(),
                         "954f64f2e4e86e9eee82d20216684899")

    def test_bad_padding_is_an_error(self):
        ct = aes_ecb_encrypt(SPEC_K, b"A" * 15 + b"\x00", pad=False)
        with self.assertRaises(ValueError):
            aes_ecb_decrypt(SPEC_K, ct)

    def test_rsa_vector(self):
        pem = os.path.join(h.SOURCE_DIR or os.path.join(os.path.dirname(__file__), "..", ".."),
                           "tests", "vectors", "jproxy", "test_key_2048.pem")
        if not os.path.exists(pem):
            self.skipTest("no %s" % pem)
        with tempfile.TemporaryDirectory() as td:
            der = os.path.join(td, "key.der")
            # The PEM body is the PKCS#8 DER (openssl pkey -outform DER would
            # write PKCS#1 instead).
            with open(pem) as f:
                body = "".join(ln.strip() for ln in f if not ln.startswith("-----"))
            with open(der, "wb") as f:
                f.write(base64.b64decode(body))
            with open(der, "rb") as f:
                self.assertEqual(len(f.read()), 1217, "the spec's PKCS#8 DER is 1217 bytes")
            self.assertEqual(rsa_decrypt(der, SPEC_RSA_CT), SPEC_K)

    def test_ksf_parse(self):
        der = b"\x30" + bytes(100)
        tok = bytes(range(32))
        self.assertEqual(parse_ksf(struct.pack("!I", len(der)) + der + tok + b"junk"),
                         (der, tok))
        with self.assertRaises(ValueError):
            parse_ksf(struct.pack("!I", len(der)) + der + tok[:31])


# --------------------------------------------------------------------------
# The daemon under hostile clients

@unittest.skipUnless(have_openssl(), "needs the openssl command")
class JproxyBadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        cls.tmp = tempfile.mkdtemp(prefix="tunneld-jpbad-")
        cls.key_file = os.path.join(cls.tmp, "key.dat")
        cls.users_dir = os.path.join(cls.tmp, "users")
        tok_hex = h.jproxy_keygen("mallory", cls.key_file, cls.users_dir)
        with open(cls.key_file, "rb") as f:
            der, cls.token = parse_ksf(f.read())
        assert cls.token.hex().upper() == tok_hex, "keygen's printed token != key.dat's"
        cls.key_der = os.path.join(cls.tmp, "key.der")
        with open(cls.key_der, "wb") as f:
            f.write(der)
        os.chmod(cls.key_der, 0o600)

        cls.origin = h.HttpOrigin()
        cls.echo = h.TcpEcho()
        cls.srv = cls.cli = None
        try:
            cls.srv = h.Daemon(h.make_config(
                [],
                limits={"handshake_timeout": "%ds" % HANDSHAKE_TIMEOUT_S},
                servers=[{"name": "jp-in", "protocol": "jproxy", "listen": "127.0.0.1:0",
                          "users_dir": cls.users_dir, "max_streams": SERVER_MAX_STREAMS}],
                log_level="debug"))
            cls.port = cls.srv.server_port("jp-in")
            # The good tunnel: a tunneld client keeps one to the same server.
            cls.cli = h.Daemon(h.make_config(
                [{"name": "socks", "type": "socks5", "route": "jp"}],
                tunnels=[{"name": "jp", "protocol": "jproxy",
                          "server": "127.0.0.1:%d" % cls.port, "key_file": cls.key_file}]))
            cls.cli.wait_log(r"tunnel jp up to ", timeout=10)
        except BaseException:
            cls._cleanup()
            raise

    @classmethod
    def _cleanup(cls):
        h.stop_all((cls.cli, cls.srv), (cls.origin, cls.echo), (cls.tmp,))

    @classmethod
    def tearDownClass(cls):
        cls._cleanup()

    # -- helpers
    def good_tunnel_works(self):
        """A curl through the tunneld client's tunnel (opened before every
        bad one) succeeds, and that tunnel was never lost."""
        n, seed = 54321, "jpbad-good-%d" % time.monotonic_ns()
        rc, sha, got, err = h.curl_sha256(
            ["--socks5-hostname", "127.0.0.1:%d" % self.cli.port("socks"),
             self.origin.url("/bytes?n=%d&seed=%s" % (n, seed))], timeout=20)
        self.assertEqual(rc, 0, "curl through the good tunnel failed: %s" % err)
        self.assertEqual((got, sha), (n, h.expected_sha256(n, seed)))
        self.assertNotRegex(self.cli.log_text(), r"tunnel jp .*lost",
                            "the good tunnel was closed too")
        self.assertEqual(len(re.findall(r"tunnel jp up to ", self.cli.log_text())), 1,
                         "the good tunnel was re-established")
        self.assertTrue(self.srv.alive(), "the server died")

    def server_logged(self, raw, reason_rx, end_rx=None, timeout=5.0):
        """The server logged reason_rx for this tunnel (by its peer port) and
        its closed line (end=... matching end_rx when given)."""
        peer = r"peer=127\.0\.0\.1:%d" % raw.local_port
        self.srv.wait_log(r"server jp-in tunnel #\d+ %s: .*%s" % (peer, reason_rx), timeout)
        m = self.srv.wait_log(r"server jp-in tunnel #\d+ closed %s .*end=(\S+)" % peer, timeout)
        if end_rx:
            self.assertRegex(m.group(1), end_rx, "end reason of the tunnel")

    def login(self):
        raw = RawJp(self.port)
        raw.login(self.token, self.key_der)
        return raw

    # -- the cases
    def test_truncated_handshake(self):
        with RawJp(self.port) as raw:
            raw.sock.sendall(b"jPro")
            time.sleep(0.1)
            raw.sock.shutdown(socket.SHUT_WR)
            self.assertIsNotNone(raw.closed_within(5), "server kept a half-closed handshake")
            self.server_logged(raw, r"closed during the handshake \(4 bytes")
        self.good_tunnel_works()

    def test_slow_drip_handshake_times_out(self):
        with RawJp(self.port) as raw:
            hello = MAGIC + b"\x03\x00"
            t0 = time.monotonic()
            closed_at = None
            raw.sock.settimeout(0.05)
            for i in range(12):  # 1 byte a second: far slower than the handshake timeout
                try:
                    raw.sock.sendall(hello[i:i + 1] if i < len(hello) else b"\x00")
                except OSError:
                    closed_at = time.monotonic() - t0
                    break
                if h.wait_closed(raw.sock, 1.0) is not None:
                    closed_at = time.monotonic() - t0
                    break
            self.assertIsNotNone(closed_at, "drip of 12 bytes over 12s was never cut off")
            self.assertGreaterEqual(closed_at, HANDSHAKE_TIMEOUT_S - 0.5, "closed too early")
            self.assertLessEqual(closed_at, HANDSHAKE_TIMEOUT_S + h.scaled(2.5),
                                 "closed long after handshake_timeout")
            self.server_logged(raw, r"handshake timed out", r"timeout")
        self.good_tunnel_works()

    def test_bad_magic(self):
        with RawJp(self.port) as raw:
            raw.sock.sendall(b"jPrOxy\x03\x00")
            self.assertEqual(h.recv_exact(raw.sock, 7), MAGIC + b"\x01")
            self.assertIsNotNone(raw.closed_within(5), "not closed after a bad magic")
            self.server_logged(raw, r"bad handshake magic")
        self.good_tunnel_works()

    def test_bad_major_version(self):
        with RawJp(self.port) as raw:
            raw.sock.sendall(MAGIC + b"\x02\x00")
            self.assertEqual(h.recv_exact(raw.sock, 7), MAGIC + b"\x01")
            self.assertIsNotNone(raw.closed_within(5), "not closed after version 2")
            self.server_logged(raw, r"unsupported protocol version 2\.0")
        self.good_tunnel_works()

    def test_unknown_token(self):
        with RawJp(self.port) as raw:
            self.assertEqual(raw.hello(), MAGIC + b"\x00")
            bad = bytes(b ^ 0x5A for b in self.token)
            raw.sock.sendall(bad)
            self.assertEqual(h.recv_exact(raw.sock, 1), b"\x01", "want the 1-byte reject")
            self.assertIsNotNone(raw.closed_within(5), "not closed after a bad token")
            self.server_logged(raw, r"unknown token", r"auth")
        self.good_tunnel_works()

    def test_bad_padding_closes_tunnel(self):
        with self.login() as raw:
            # One block whose last byte (0x00) is not valid PKCS#7 padding.
            ct = aes_ecb_encrypt(raw.key, b"\x21\x00\x01\x00\x01" + b"A" * 10 + b"\x00",
                                 pad=False)
            raw.sock.sendall(b"\x01" + ct)
            self.assertIsNotNone(raw.closed_within(5), "tunnel not closed after bad padding")
            self.server_logged(raw, r"closing the tunnel", r"proto")
        self.good_tunnel_works()

    def test_empty_frame_closes_tunnel(self):
        with self.login() as raw:
            raw.sock.sendall(b"\x00")
            self.assertIsNotNone(raw.closed_within(5), "tunnel not closed after N = 0")
            self.server_logged(raw, r"closing the tunnel", r"proto")
        self.good_tunnel_works()

    def test_unknown_kind_ignored(self):
        with self.login() as raw:
            raw.send(b"\x99\x00\x01hello")
            raw.send(msg_connect_ipv4(7, "127.0.0.1", self.origin.port))
            n, seed = 3000, "jpbad-unknown-kind"
            req = ("GET /bytes?n=%d&seed=%s HTTP/1.0\r\nHost: %s\r\n\r\n"
                   % (n, seed, self.origin.hostport)).encode()
            raw.send(msg_packet(7, req))
            cid, status, _ = parse_reply(raw.recv())
            self.assertEqual((cid, status), (7, STATUS_OK))
            data = bytearray()
            for _ in range(200):
                m = raw.recv()
                if m[0] == KIND_DISCONNECT:
                    self.assertEqual(struct.unpack("!H", m[1:3])[0], 7)
                    break
                pid, d = parse_packet(m)
                self.assertEqual(pid, 7)
                data += d
            else:
                self.fail("no Disconnect after 200 messages")
            head, _, body = bytes(data).partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"),
                            head[:80])
            self.assertEqual(body, h.gen_bytes(n, seed))
            self.assertIsNone(raw.closed_within(0.3), "tunnel closed after an unknown kind")
        self.good_tunnel_works()

    def test_largest_frames_accepted_and_lying_lengths_dropped(self):
        """255 blocks is the most a frame can hold: it is accepted, as Java
        does.  A Packet whose length field runs past its message is dropped,
        and the tunnel carries on."""
        with self.login() as raw:
            raw.send(msg_connect_ipv4(9, "127.0.0.1", self.echo.port))
            cid, status, _ = parse_reply(raw.recv())
            self.assertEqual((cid, status), (9, STATUS_OK))
            # A frame of 255 blocks: Packet header (5) + 4074 bytes of data.
            big = os.urandom(4074)
            f = frame(raw.key, msg_packet(9, big))
            self.assertEqual(f[0], 255)
            raw.sock.sendall(f)
            # A Packet that claims 4000 bytes but carries 10: dropped.
            raw.send(b"\x21\x00\x09" + struct.pack("!H", 4000) + b"x" * 10)
            raw.send(msg_packet(9, b"after"))
            got = bytearray()
            while len(got) < len(big) + 5:
                pid, d = parse_packet(raw.recv())
                self.assertEqual(pid, 9)
                got += d
            self.assertEqual(bytes(got), big + b"after")
            self.assertIsNone(raw.closed_within(0.3), "tunnel closed after a lying length")
        self.good_tunnel_works()

    def test_connect_flood_beyond_max_streams(self):
        with self.login() as raw:
            ids = list(range(100, 120))
            for cid in ids:
                raw.send(msg_connect_ipv4(cid, "127.0.0.1", self.echo.port))
            replies = {}
            for _ in range(len(ids)):
                cid, status, _ = parse_reply(raw.recv(timeout=10))
                self.assertNotIn(cid, replies, "two replies for id %d" % cid)
                replies[cid] = status
            ok = sorted(c for c, s in replies.items() if s == STATUS_OK)
            limited = sorted(c for c, s in replies.items() if s == STATUS_LIMIT)
            self.assertEqual(len(ok), SERVER_MAX_STREAMS, replies)
            self.assertEqual(len(limited), len(ids) - SERVER_MAX_STREAMS, replies)
            self.assertEqual(sorted(ok + limited), ids, "status other than 0 or 6: %r" % replies)
            # The tunnel and the admitted streams still work.
            for cid in ok:
                raw.send(msg_packet(cid, b"ping-%d" % cid))
            want = {cid: b"ping-%d" % cid for cid in ok}
            got = {cid: b"" for cid in ok}
            for _ in range(50):
                if got == want:
                    break
                pid, d = parse_packet(raw.recv())
                self.assertIn(pid, got, "data on a stream that was refused")
                got[pid] += d
                self.assertTrue(want[pid].startswith(got[pid]), "bad echo on %d: %r"
                                % (pid, got[pid]))
            self.assertEqual(got, want)
            for cid in ok:
                raw.send(msg_disconnect(cid))
            self.assertIsNone(raw.closed_within(0.3), "tunnel closed after the flood")
        self.good_tunnel_works()

    def test_zz_daemon_still_serves(self):
        # After all the above (unittest runs the cases in name order).
        self.assertTrue(self.srv.alive())
        with self.login() as raw:
            raw.send(msg_connect_host(1, "localhost", self.echo.port))
            self.assertEqual(parse_reply(raw.recv())[:2], (1, STATUS_OK))
            raw.send(msg_packet(1, b"still here"))
            self.assertEqual(parse_packet(raw.recv()), (1, b"still here"))
        self.good_tunnel_works()


def rsa_encrypt(spki_der_path, plain):
    """RSAES-PKCS1-v1_5 encryption with a SubjectPublicKeyInfo DER key."""
    return _openssl(["pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey",
                     spki_der_path, "-pkeyopt", "rsa_padding_mode:pkcs1"], plain)


class FakeJavaServer(threading.Thread):
    """One tunnel, answered the way the Java 3.0 server does: hello status 00
    whatever the minor version, login, then every Connect succeeds and every
    Packet is echoed.  It records the hello's minor version and every message
    kind it receives, so a test can check our client never sent an extension
    message to a peer that did not offer them."""

    def __init__(self, spki_der_path):
        super().__init__(daemon=True)
        self.spki = spki_der_path
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.minor = None
        self.kinds = []
        self.error = None
        self.stop = False

    def run(self):
        try:
            self.lsock.settimeout(h.scaled(15))
            c, _ = self.lsock.accept()
            with c:
                c.settimeout(0.5)
                hello = self._recv(c, len(MAGIC) + 2)
                assert hello[:len(MAGIC)] == MAGIC and hello[len(MAGIC)] == 3, hello
                self.minor = hello[-1]
                c.sendall(MAGIC + b"\x00")
                self._recv(c, 32)  # the token: any is fine here
                key = os.urandom(16)
                c.sendall(b"\x00" + rsa_encrypt(self.spki, key))
                while not self.stop:
                    n = self._recv(c, 1)[0]
                    m = aes_ecb_decrypt(key, self._recv(c, 16 * n))
                    self.kinds.append(m[0])
                    if m[0] == KIND_CONNECT:
                        cid = struct.unpack("!H", m[1:3])[0]
                        c.sendall(frame(key, struct.pack("!BHBH", KIND_CONNECT, cid, 0, 1)))
                    elif m[0] == KIND_PACKET:
                        cid, ln = struct.unpack("!HH", m[1:5])
                        c.sendall(frame(key, msg_packet(cid, m[5:5 + ln])))
        except EOFError:
            pass
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            self.lsock.close()

    def _recv(self, c, n):
        buf = bytearray()
        while len(buf) < n:
            try:
                b = c.recv(n - len(buf))
            except socket.timeout:
                if self.stop:
                    raise EOFError()
                continue
            if not b:
                raise EOFError()
            buf += b
        return bytes(buf)


@unittest.skipUnless(have_openssl(), "needs the openssl command")
class JavaPeerTest(unittest.TestCase):
    """Our client against a server that behaves like the Java one: the
    tunnel works, and no UDP or TCP Window message is ever sent to it."""

    def test_no_extensions_towards_a_java_server(self):
        h.require_binaries()
        tmp = tempfile.mkdtemp(prefix="tunneld-jpjava-")
        srv = cli = None
        try:
            key_file = os.path.join(tmp, "key.dat")
            users = os.path.join(tmp, "users")
            tok = h.jproxy_keygen("duke", key_file, users)
            with open(os.path.join(users, tok + ".dat"), "rb") as f:
                uf = f.read()
            n = struct.unpack("!H", uf[:2])[0]
            spki = os.path.join(tmp, "spki.der")
            with open(spki, "wb") as f:
                f.write(uf[2 + n + 256:])
            srv = FakeJavaServer(spki)
            srv.start()
            cli = h.Daemon(h.make_config(
                [{"name": "socks", "type": "socks5", "route": "jp"}],
                tunnels=[{"name": "jp", "protocol": "jproxy",
                          "server": "127.0.0.1:%d" % srv.port, "key_file": key_file}]))
            cli.wait_log(r"tunnel jp up to 127\.0\.0\.1:\d+ \(jProxy 3 peer\)", timeout=10)
            # TCP works, both ways.
            with h.socks5_open(cli.port("socks"), "127.0.0.1", 9) as s:
                payload = os.urandom(10000)
                s.sendall(payload)
                got = h.recv_exact(s, len(payload))
                self.assertEqual(got, payload)
            # SOCKS5 UDP ASSOCIATE: "command not supported", nothing sent.
            rep, s = h.socks_reply_code(cli.port("socks"), "0.0.0.0", 0, cmd=h.SOCKS_CMD_UDP)
            s.close()
            self.assertEqual(rep, 0x07)
            time.sleep(0.3)
            self.assertIsNone(srv.error)
            self.assertEqual(srv.minor, 0x74, "our client offers the extension")
            self.assertTrue(set(srv.kinds) <= {KIND_CONNECT, KIND_PACKET, KIND_DISCONNECT},
                            "extension messages sent to a Java peer: %r" % sorted(set(srv.kinds)))
            self.assertIn(KIND_PACKET, srv.kinds)
        finally:
            if srv is not None:
                srv.stop = True
            h.stop_all((cli,), (), (tmp,))
            if srv is not None:
                srv.join(timeout=5)


if __name__ == "__main__":
    h.main()
