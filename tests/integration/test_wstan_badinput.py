#!/usr/bin/env python3
"""The wstan server against a raw client written here from the spec: the
handshake checks of spec 5.2 (each failure is exactly "HTTP/1.1 400 None"),
the status page, the replay filter, the timestamp window, several keys, the
96 KiB request line, the connect acknowledgement between tunneld peers, and
bad WebSocket input closing only that connection with the right code.

AES-CTR comes from the openssl command (Python has no AES); HMAC-SHA1 and
SHA-1 from the standard library."""
import base64
import hashlib
import hmac
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

KEY_B64 = "AAECAwQFBgcICQoLDA0ODw=="      # server key (spec TV key)
BOB_B64 = "EBESExQVFhcYGRobHB0eHw=="      # bob's wstan_key
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTO = "tunneld-wstan.1"
STATUS_PAGE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\n"
               b"Content-Length: 0\r\n\r\n")
BAD = b"HTTP/1.1 400 None\r\n\r\n"


def have_openssl():
    return shutil.which("openssl") is not None


def keystream(key, iv, n):
    if n == 0:
        return b""
    p = subprocess.run(["openssl", "enc", "-aes-%d-ctr" % (len(key) * 8), "-K", key.hex(),
                        "-iv", iv.hex(), "-nosalt"], input=bytes(n), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10, check=True)
    return p.stdout


class Stream:
    """One direction's AES-CTR stream: never restarted, offsets carry on."""

    def __init__(self, key, iv):
        self.key, self.iv, self.off = key, iv, 0

    def xor(self, data):
        ks = keystream(self.key, self.iv, self.off + len(data))[self.off:]
        self.off += len(data)
        return bytes(a ^ b for a, b in zip(data, ks))


def tag(key, ct):
    return hmac.new(key, ct, hashlib.sha1).digest()[:10]


def addr_ipv4(ip, port):
    return b"\x00\x01" + socket.inet_aton(ip) + struct.pack("!H", port)


def addr_ip(ip, port):
    if ":" in ip:
        return b"\x00\x04" + socket.inet_pton(socket.AF_INET6, ip) + struct.pack("!H", port)
    return addr_ipv4(ip, port)


def dgm_req_msg(st, key, ip, port, data):
    ct = st.xor(b"\x03" + struct.pack("!d", time.time()) + addr_ip(ip, port) + data)
    return ct + tag(key, ct)


def req_msg(st, key, ip, port, data=b"", ts=None):
    body = b"\x00" + struct.pack("!d", time.time() if ts is None else ts) + addr_ipv4(ip, port) + data
    ct = st.xor(body)
    return ct + tag(key, ct)


def ws_frame(opcode, payload, fin=True):
    mask = os.urandom(4)
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawWstan(h.SockOwner):
    """A wstan client socket: handshake, messages, close."""

    def __init__(self, port, key_b64=KEY_B64, compat=False, protocol=None, path="/"):
        self.key = base64.b64decode(key_b64)
        self.port = port
        self.compat = compat
        self.protocol = protocol
        self.path = path
        self.nc = os.urandom(16)
        if compat:
            # Our server accepts any _A.._Z cookie name.
            self.ws_key = base64.b64encode(os.urandom(16)).decode()
        else:
            self.ws_key = base64.b64encode(self.nc).decode()
        self.up = Stream(self.key, self.nc)
        if compat:
            ns = hashlib.sha1(self.nc).digest()[:16]
        else:
            ns = hashlib.sha1(self.ws_key.encode() + GUID).digest()[:16]
        self.down = Stream(self.key, ns)
        self.sock = h.tcp_connect(port, timeout=h.scaled(10))
        self.buf = b""

    def handshake_bytes(self, first):
        path = self.path + base64.urlsafe_b64encode(first).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % self.port,
                 "Sec-WebSocket-Key: %s" % self.ws_key, "Sec-WebSocket-Version: 13",
                 "Pragma: no-cache", "Cache-Control: no-cache", "Connection: Upgrade",
                 "Upgrade: WebSocket"]
        if self.compat:
            lines.append("Cookie: _Q=%s" % base64.b64encode(self.nc).decode())
        if self.protocol:
            lines.append("Sec-WebSocket-Protocol: %s" % self.protocol)
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def handshake(self, first):
        """Send it; return (status line, headers dict, raw head)."""
        self.sock.sendall(self.handshake_bytes(first))
        return self.read_head()

    def read_head(self, timeout=10):
        deadline = time.monotonic() + h.scaled(timeout)
        while b"\r\n\r\n" not in self.buf:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            b = self.sock.recv(65536)
            if not b:
                raise EOFError("closed before a response: %r" % self.buf)
            self.buf += b
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return lines[0], hdrs, head + b"\r\n\r\n"

    def _need(self, n, timeout):
        deadline = time.monotonic() + h.scaled(timeout)
        while len(self.buf) < n:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            b = self.sock.recv(65536)
            if not b:
                raise EOFError("closed")
            self.buf += b
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self, timeout=10):
        """-> (opcode, payload); server frames are unmasked, whole."""
        b0, b1 = self._need(2, timeout)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._need(2, timeout))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._need(8, timeout))[0]
        return b0 & 0x0F, self._need(n, timeout)

    def read_msg(self, timeout=10):
        """The next binary message, decrypted: (cmd, body)."""
        while True:
            op, p = self.read_frame(timeout)
            if op == 0x9:  # ping: answer it
                self.sock.sendall(ws_frame(0xA, p))
                continue
            if op == 0x8:
                raise ConnectionAbortedError(struct.unpack("!H", p[:2])[0] if len(p) >= 2 else 0)
            if op != 0x2:
                continue
            cmd = self.down.xor(p[:1])[0]
            if cmd == 0x02:  # RST: tagged
                return cmd, self.down.xor(p[1:-10])
            return cmd, self.down.xor(p[1:])

    def send_msg(self, msg):
        self.sock.sendall(ws_frame(0x2, msg))

    def send_dat(self, data):
        self.send_msg(self.up.xor(b"\x01" + data))

    def send_rst(self, reason=b""):
        ct = self.up.xor(b"\x02" + reason + b" " * 40)
        self.send_msg(ct + tag(self.key, ct))

    def close_code(self, timeout=10):
        """Read until the server's close frame; its status code."""
        try:
            while True:
                self.read_msg(timeout)
        except ConnectionAbortedError as e:
            return e.args[0]

    def read_until_closed(self, timeout=5):
        deadline = time.monotonic() + h.scaled(timeout)
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                b = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except ConnectionResetError:
                return self.buf
            if not b:
                return self.buf
            self.buf += b
        return None


@unittest.skipUnless(have_openssl(), "needs the openssl command")
class WstanServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        cls.echo = h.TcpEcho()
        cls.d = cls.dc = None
        try:
            cls.d = h.Daemon(h.make_config(
                [], users=[{"name": "bob", "wstan_key": BOB_B64}],
                limits={"handshake_timeout": "1s", "connect_timeout": "2s"},
                servers=[{"name": "ws-in", "protocol": "wstan", "listen": "127.0.0.1:0",
                          "keys": [KEY_B64]},
                         {"name": "ws-compat", "protocol": "wstan", "listen": "127.0.0.1:0",
                          "keys": ["a password, not a raw key"],
                          "nonce_mode": "compatible", "path": "/tun"}],
                log_level="debug"))
            cls.port = cls.d.server_port("ws-in")
            cls.cport = cls.d.server_port("ws-compat")
        except BaseException:
            h.stop_all((cls.d,), (cls.echo,))
            raise

    @classmethod
    def tearDownClass(cls):
        h.stop_all((cls.d,), (cls.echo,))

    def good(self, raw, data=b"ping", key=None):
        k = raw.key if key is None else key
        return raw.handshake(req_msg(raw.up, k, "127.0.0.1", self.echo.port, data))

    def assert_400(self, raw, first):
        raw.sock.sendall(raw.handshake_bytes(first))
        got = raw.read_until_closed()
        self.assertEqual(got, BAD)

    def echo_roundtrip(self, raw, first_data=b"ping"):
        got = b""
        while len(got) < len(first_data):
            cmd, body = raw.read_msg()
            self.assertEqual(cmd, 0x01, "expected DAT, got %r" % body[:40])
            got += body
        self.assertEqual(got, first_data)

    # -- handshake ---------------------------------------------------------
    def test_status_page_without_upgrade(self):
        s = h.tcp_connect(self.port)
        with s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(h.recv_until_eof(s, h.scaled(5))[0], STATUS_PAGE)

    def test_default_mode_request_and_reuse(self):
        with RawWstan(self.port) as raw:
            status, hdrs, _ = self.good(raw, b"hello over wstan")
            self.assertTrue(status.startswith("HTTP/1.1 101"), status)
            self.assertNotIn("sec-websocket-protocol", hdrs)
            expect = base64.b64encode(hashlib.sha1(raw.ws_key.encode() + GUID).digest()).decode()
            self.assertEqual(hdrs.get("sec-websocket-accept"), expect)
            self.echo_roundtrip(raw, b"hello over wstan")
            raw.send_dat(b"more data")
            self.echo_roundtrip(raw, b"more data")
            # Reset, then an in-band REQ on the same WebSocket.
            raw.send_rst()
            cmd, _ = raw.read_msg()
            self.assertEqual(cmd, 0x02)
            raw.send_msg(req_msg(raw.up, raw.key, "127.0.0.1", self.echo.port, b"again"))
            self.echo_roundtrip(raw, b"again")
        self.d.wait_log(r"server ws-in: tunnel #\d+ from 127\.0\.0\.1:\d+ closed user=- "
                        r"requests=2 ", timeout=5)

    def test_ack_only_for_tunneld_clients(self):
        with RawWstan(self.port, protocol=PROTO) as raw:
            status, hdrs, _ = self.good(raw, b"")
            self.assertTrue(status.startswith("HTTP/1.1 101"), status)
            self.assertEqual(hdrs.get("sec-websocket-protocol"), PROTO)
            cmd, body = raw.read_msg()
            self.assertEqual((cmd, body), (0x01, b""), "the empty DAT acknowledgement")

    def test_connect_failure_is_an_rst_with_the_reason(self):
        with RawWstan(self.port) as raw:
            raw.handshake(req_msg(raw.up, raw.key, "127.0.0.1", 1))
            cmd, body = raw.read_msg()
            self.assertEqual(cmd, 0x02)
            reason = body.decode("utf-8").rstrip()
            self.assertTrue(reason.startswith("can't connect to 127.0.0.1:1\u2605"), reason)

    def test_user_key_identifies_the_user(self):
        with RawWstan(self.port, key_b64=BOB_B64) as raw:
            status, _, _ = self.good(raw, b"bob's")
            self.assertTrue(status.startswith("HTTP/1.1 101"), status)
            self.echo_roundtrip(raw, b"bob's")
        self.d.wait_log(r"server ws-in: tunnel #\d+ from \S+ closed user=bob ", timeout=5)

    def test_compatible_mode_with_a_password_key(self):
        key = hashlib.scrypt(b"a password, not a raw key",
                             salt=bytes.fromhex("6abf20093bd5c6c6766807c1d6b2822f"),
                             n=16384, r=8, p=1, maxmem=64 << 20, dklen=32)
        raw = RawWstan(self.cport, compat=True, path="/tun/")
        raw.key = key
        raw.up = Stream(key, raw.nc)
        raw.down = Stream(key, hashlib.sha1(raw.nc).digest()[:16])
        with raw:
            status, _, _ = self.good(raw, b"compat")
            self.assertTrue(status.startswith("HTTP/1.1 101"), status)
            self.echo_roundtrip(raw, b"compat")

    def test_request_line_of_96_kib(self):
        data = os.urandom(70000)  # REQ -> ~93 KiB of base64 in the path
        with RawWstan(self.port) as raw:
            first = req_msg(raw.up, raw.key, "127.0.0.1", self.echo.port, data)
            self.assertGreater(len(raw.handshake_bytes(first)), 90 * 1024)
            status, _, _ = raw.handshake(first)
            self.assertTrue(status.startswith("HTTP/1.1 101"), status)
            self.echo_roundtrip(raw, data)

    def dgm_roundtrip(self, host):
        u = h.UdpEcho(host)
        try:
            with RawWstan(self.port) as raw:
                status, _, _ = raw.handshake(dgm_req_msg(raw.up, raw.key, host, u.port, b"dgm-1"))
                self.assertTrue(status.startswith("HTTP/1.1 101"), status)
                cmd, body = raw.read_msg()
                self.assertEqual(cmd, 0x03)
                self.assertEqual(body, addr_ip(host, u.port) + b"dgm-1",
                                 "the reply's ADDR is the peer's address")
                raw.send_msg(raw.up.xor(b"\x03" + addr_ip(host, u.port) + b"dgm-2"))
                cmd, body = raw.read_msg()
                self.assertEqual((cmd, body), (0x03, addr_ip(host, u.port) + b"dgm-2"))
        finally:
            u.close()

    def test_udp_dgm_ipv4(self):
        self.dgm_roundtrip("127.0.0.1")

    def test_udp_dgm_ipv6_replies(self):
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s6:
                s6.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback")
        self.dgm_roundtrip("::1")

    # -- refused handshakes: 400 None, nothing more --------------------------
    def test_wrong_key(self):
        with RawWstan(self.port, key_b64="ICEiIyQlJicoKSorLC0uLw==") as raw:
            self.assert_400(raw, req_msg(raw.up, raw.key, "127.0.0.1", self.echo.port))
        self.d.wait_log(r"refused handshake from 127\.0\.0\.1:\d+: no key verifies", timeout=5)

    def test_expired_timestamp(self):
        with RawWstan(self.port) as raw:
            self.assert_400(raw, req_msg(raw.up, raw.key, "127.0.0.1", self.echo.port,
                                         ts=time.time() - 3600))

    def test_replayed_nonce(self):
        with RawWstan(self.port) as raw:
            first = req_msg(raw.up, raw.key, "127.0.0.1", self.echo.port, b"x")
            wire = raw.handshake_bytes(first)
            status, _, _ = raw.handshake(first)
            self.assertTrue(status.startswith("HTTP/1.1 101"))
        s = h.tcp_connect(self.port)
        with s:
            s.sendall(wire)
            self.assertEqual(h.recv_until_eof(s, h.scaled(5))[0], BAD)
        self.d.wait_log(r"refused handshake from \S+: replayed nonce", timeout=5)

    def test_unpadded_path(self):
        with RawWstan(self.port) as raw:
            first = req_msg(raw.up, raw.key, "127.0.0.1", self.echo.port, b"ab")
            wire = raw.handshake_bytes(first).replace(b"=", b"")
            if wire == raw.handshake_bytes(first):
                first = req_msg(raw.up, raw.key, "127.0.0.1", self.echo.port, b"a")
                wire = raw.handshake_bytes(first).replace(b"=", b"")
            raw.sock.sendall(wire)
            self.assertEqual(raw.read_until_closed(), BAD)

    def test_truncated_handshake_times_out(self):
        s = h.tcp_connect(self.port)
        with s:
            s.sendall(b"GET /abcd HTTP/1.1\r\nUpgrade: websocket\r\n")
            t0 = time.monotonic()
            self.assertEqual(h.recv_until_eof(s, h.scaled(5))[0], BAD)
            self.assertLess(time.monotonic() - t0, h.scaled(4))
        self.d.wait_log(r"refused handshake from \S+: handshake timed out", timeout=5)

    def test_truncated_then_closed(self):
        s = h.tcp_connect(self.port)
        s.sendall(b"GET /abcd HTTP/1.1\r\nUpg")
        s.close()
        self.d.wait_log(r"handshake from \S+: truncated", timeout=5)

    # -- bad WebSocket input: only that connection closes ----------------------
    def open_good(self):
        raw = RawWstan(self.port)
        status, _, _ = self.good(raw, b"ok")
        self.assertTrue(status.startswith("HTTP/1.1 101"), status)
        self.echo_roundtrip(raw, b"ok")
        return raw

    def test_text_frame_closes_3000(self):
        with self.open_good() as raw:
            raw.sock.sendall(ws_frame(0x1, b"hello"))
            self.assertEqual(raw.close_code(), 3000)

    def test_garbage_message_closes_3000(self):
        with self.open_good() as raw:
            raw.send_msg(b"\x07" * 64)  # decrypts to a random command/garbage
            self.assertEqual(raw.close_code(), 3000)

    def test_bad_rst_tag_closes_3000(self):
        with self.open_good() as raw:
            ct = raw.up.xor(b"\x02" + b" " * 40)
            raw.send_msg(ct + b"\x00" * 10)
            self.assertEqual(raw.close_code(), 3000)

    def test_expired_inband_request_closes_3000(self):
        with self.open_good() as raw:
            raw.send_rst()
            self.assertEqual(raw.read_msg()[0], 0x02)
            raw.send_msg(req_msg(raw.up, raw.key, "127.0.0.1", self.echo.port, b"late",
                                 ts=time.time() - 3600))
            self.assertEqual(raw.close_code(), 3000)

    def test_oversized_message_closes_1009(self):
        with self.open_good() as raw:
            raw.sock.sendall(ws_frame(0x2, raw.up.xor(b"\x01" + bytes(300 * 1024))))
            self.assertEqual(raw.close_code(), 1009)

    def test_zz_still_serving(self):
        with self.open_good() as raw:
            raw.send_dat(b"still here")
            self.echo_roundtrip(raw, b"still here")
        self.assertTrue(self.d.alive())


@unittest.skipUnless(have_openssl(), "needs the openssl command")
class WstanDrainTest(unittest.TestCase):
    """SIGTERM: the server stops accepting, a tunnel in use keeps working,
    and once its request ends (the RST exchange) the tunnel is closed and
    the daemon exits, long before drain_timeout."""

    def test_drain_finishes_the_request_then_exits(self):
        h.require_binaries()
        echo = h.TcpEcho()
        d = None
        try:
            d = h.Daemon(h.make_config(
                [], limits={"drain_timeout": "20s"},
                servers=[{"name": "ws-in", "protocol": "wstan", "listen": "127.0.0.1:0",
                          "keys": [KEY_B64]}]))
            port = d.server_port("ws-in")
            with RawWstan(port) as raw:
                status, _, _ = raw.handshake(req_msg(raw.up, raw.key, "127.0.0.1", echo.port,
                                                     b"before"))
                self.assertTrue(status.startswith("HTTP/1.1 101"), status)
                got = raw.read_msg()
                self.assertEqual(got, (0x01, b"before"))
                d.signal(signal.SIGTERM)
                d.wait_log(r"stopping: draining 0 connections and 1 tunnels", timeout=5)
                with self.assertRaises(OSError):
                    h.tcp_connect(port, timeout=1).close()
                raw.send_dat(b"during the drain")
                self.assertEqual(raw.read_msg(), (0x01, b"during the drain"))
                t0 = time.monotonic()
                raw.send_rst()
                self.assertEqual(raw.read_msg()[0], 0x02)
                # Then the tunnel closes (the close frame may be cut short by
                # the daemon's own exit, which follows at once).
                try:
                    self.assertEqual(raw.close_code(), 1000)
                except EOFError:
                    pass
            d.proc.wait(timeout=h.scaled(5))
            self.assertLess(time.monotonic() - t0, h.scaled(5))
            self.assertEqual(d.proc.returncode, 0)
        finally:
            h.stop_all((d,), (echo,))


@unittest.skipUnless(have_openssl(), "needs the openssl command")
class WstanNativeTlsTest(unittest.TestCase):
    """Native wss:// (libwebsockets parses these handshakes): a plain HTTPS
    request gets the status page, a bad handshake a 400, and the daemon
    keeps serving (a status-page request once crashed it)."""

    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        cls.tmp = tempfile.mkdtemp(prefix="tunneld-wss-")
        cls.cert, key = os.path.join(cls.tmp, "c.pem"), os.path.join(cls.tmp, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
                        cls.cert, "-days", "2", "-subj", "/CN=localhost"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       timeout=30)
        cls.d = None
        try:
            cls.d = h.Daemon(h.make_config(
                [], servers=[{"name": "ws-tls", "protocol": "wstan", "listen": "127.0.0.1:0",
                              "keys": [KEY_B64], "tls": {"cert": cls.cert, "key": key}}]))
        except BaseException:
            h.stop_all((cls.d,), (), (cls.tmp,))
            raise

    @classmethod
    def tearDownClass(cls):
        h.stop_all((cls.d,), (), (cls.tmp,))

    def tls_exchange(self, request):
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.check_hostname = False
        raw = h.tcp_connect(self.d.server_port("ws-tls"))
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(request)
            out = b""
            s.settimeout(h.scaled(5))
            try:
                while b"\r\n\r\n" not in out:
                    b = s.recv(4096)
                    if not b:
                        break
                    out += b
            except (socket.timeout, ssl.SSLError, ConnectionResetError):
                pass
            return out

    def test_status_page_bad_handshake_and_still_alive(self):
        for _ in range(3):
            out = self.tls_exchange(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:80])
            out = self.tls_exchange(
                b"GET /AAAA HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n")
            self.assertRegex(out[:40], rb"^HTTP/1\.[01] 400")
        self.assertTrue(self.d.alive())
        self.d.wait_log(r"server ws-tls: refused handshake from 127\.0\.0\.1", timeout=5)


if __name__ == "__main__":
    unittest.main()
