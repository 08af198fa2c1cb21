"""wstan end to end: a tunneld client process (listeners routed to a wstan
tunnel) and a tunneld server process (a wstan `servers:` entry).

    curl -> client tunneld -> wstan (WebSocket) -> server tunneld -> origin

Covers: every front-end through the tunnel, the pool (one WebSocket carries
many requests), UDP ASSOCIATE over DGM, a 64 MiB transfer, 200 concurrent
requests, a refused target (SOCKS5 0x05, HTTP 502 with the reason), the
compatible nonce mode with a password key, wss with a self-signed
certificate, an upstream HTTP CONNECT proxy, our server behind nginx, a
server restart with a warm pool, and the GUARD test: a raw Python WebSocket
server that decodes our client's handshake byte by byte, so that a
libwebsockets upgrade that breaks the request-line rebuild is caught.
"""

import base64
import hashlib
import hmac
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
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

K16 = "AAECAwQFBgcICQoLDA0ODw=="
K16_BYTES = bytes(range(16))
PASSWORD = "correct horse battery staple"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPEN_RE = r"tunnel %s: ws connection #\d+ to \S+ open"


def keystream(key, nonce, n):
    """AES-CTR keystream (python has no AES: the openssl CLI does it)."""
    if n == 0:
        return b""
    algo = "-aes-128-ctr" if len(key) == 16 else "-aes-256-ctr"
    p = subprocess.run(["openssl", "enc", algo, "-K", key.hex(), "-iv", nonce.hex(), "-nosalt"],
                       input=bytes(n), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    if p.returncode != 0 or len(p.stdout) != n:
        raise AssertionError("openssl enc failed: %r" % p.stderr)
    return p.stdout


def xor(a, b):
    n = min(len(a), len(b))
    return (int.from_bytes(a[:n], "big") ^ int.from_bytes(b[:n], "big")).to_bytes(n, "big")


def ws_accept(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def read_head(c, timeout=10):
    c.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            raise EOFError("EOF in the handshake: %r" % buf[:200])
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def ws_read_frame(c, buf=b""):
    """One client frame -> (opcode, payload, rest)."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            d = c.recv(65536)
            if not d:
                raise EOFError("EOF in a frame")
            buf += d
    need(2)
    op, ln = buf[0] & 0x0F, buf[1] & 0x7F
    masked = buf[1] & 0x80
    pos = 2
    if ln == 126:
        need(4)
        ln = struct.unpack("!H", buf[2:4])[0]
        pos = 4
    elif ln == 127:
        need(10)
        ln = struct.unpack("!Q", buf[2:10])[0]
        pos = 10
    mask = b""
    if masked:
        need(pos + 4)
        mask = buf[pos:pos + 4]
        pos += 4
    need(pos + ln)
    payload = buf[pos:pos + ln]
    if masked:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return op, payload, buf[pos + ln:], bool(masked)


def ws_frame(payload, op=2):
    n = len(payload)
    if n < 126:
        return bytes([0x80 | op, n]) + payload
    return bytes([0x80 | op, 126]) + struct.pack("!H", n) + payload


def make_cert(cert, key):
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", key, "-out", cert],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if p.returncode != 0:
        raise AssertionError("openssl req: %r" % p.stderr)


def tunnel_yaml(name, url, key, **extra):
    t = {"name": name, "protocol": "wstan", "url": url, "key": key}
    t.update(extra)
    return t


def server_yaml(name, listen, keys, **extra):
    s = {"name": name, "protocol": "wstan", "listen": listen, "keys": keys}
    s.update(extra)
    return s


def client_listeners(route):
    return [{"name": "socks", "type": "socks5", "route": route},
            {"name": "http", "type": "http", "route": route},
            {"name": "mixed", "type": "mixed", "route": route}]


def fetch_check(tc, args, n, seed, timeout=30):
    rc, sha, got, err = h.curl_sha256(args, timeout=timeout)
    tc.assertEqual(rc, 0, "curl failed: %s (%r)" % (err, args))
    tc.assertEqual(got, n, "body length")
    tc.assertEqual(sha, h.expected_sha256(n, seed), "body sha256")


def udp_roundtrip(tc, socks_port, echo, count=3):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.settimeout(h.scaled(5))
    c = h.tcp_connect(socks_port)
    with c, u:
        tc.assertEqual(h.socks_greet(c, (0,)), 0)
        uh, up = u.getsockname()[:2]
        rep, bh, bp = h.socks_request(c, h.SOCKS_CMD_UDP, uh, up)
        tc.assertEqual(rep, 0, "UDP ASSOCIATE refused on a wstan route")
        relay = ("127.0.0.1" if bh in ("0.0.0.0", "::") else bh, bp)
        for i in range(count):
            payload = b"ws-udp-%d-" % i + os.urandom(100 * (i + 1))
            u.sendto(h.udp_encode("127.0.0.1", echo.port, payload), relay)
            data, src = u.recvfrom(65535)
            frag, host, port, body = h.udp_decode(data)
            tc.assertEqual((frag, host, port), (0, "127.0.0.1", echo.port))
            tc.assertEqual(body, payload)


class ConnectProxy(h._TcpServer):
    """A tiny HTTP CONNECT proxy; records the CONNECT targets."""

    def __init__(self):
        self.targets = []
        super().__init__()

    def handle(self, c, addr):
        head, rest = read_head(c)
        line = head.split("\r\n")[0]
        m = re.match(r"CONNECT (\S+):(\d+) HTTP/1\.[01]$", line)
        if not m:
            c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            return
        with self.lock:
            self.targets.append((m.group(1), int(m.group(2))))
        up = socket.create_connection((m.group(1), int(m.group(2))), timeout=10)
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            up.sendall(rest)

        def pump(a, b):
            try:
                a.settimeout(None)
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        t = threading.Thread(target=pump, args=(up, c), daemon=True)
        t.start()
        pump(c, up)
        t.join(30)
        up.close()


# --------------------------------------------------------------------------
# GUARD: what our client really sends, decoded independently.

class GuardServer(h._TcpServer):
    """A raw WebSocket server: records the handshake, answers 101 (without a
    Sec-WebSocket-Protocol: a stock server), sends one DAT "hello" under Ns,
    then reads one client message."""

    def __init__(self, key_bytes, compat=False):
        self.key_bytes = key_bytes
        self.compat = compat
        self.result = {}
        self.done = threading.Event()
        super().__init__()

    def handle(self, c, addr):
        r = self.result
        try:
            head, rest = read_head(c)
            r["head"] = head
            lines = head.split("\r\n")
            r["request_line"] = lines[0]
            hdrs = {}
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                hdrs.setdefault(k.strip().lower(), []).append(v.strip())
            r["headers"] = hdrs
            key = hdrs["sec-websocket-key"][0]
            if self.compat:
                cookie = hdrs["cookie"][0]
                r["cookie"] = cookie
                nc = base64.b64decode(cookie.split("=", 1)[1])
                ns = hashlib.sha1(nc).digest()[:16]
            else:
                nc = base64.b64decode(key)
                ns = hashlib.sha1(key.encode() + GUID).digest()[:16]
            r["nc"] = nc
            m = re.match(r"GET /(\S+) HTTP/1\.1$", lines[0])
            msg = base64.urlsafe_b64decode(m.group(1))
            ct, tag = msg[:-10], msg[-10:]
            r["tag_ok"] = hmac.compare_digest(
                hmac.new(self.key_bytes, ct, hashlib.sha1).digest()[:10], tag)
            up = keystream(self.key_bytes, nc, len(ct) + 64)
            r["plain"] = xor(ct, up)
            c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                       % ws_accept(key)).encode())
            down = keystream(self.key_bytes, ns, 64)
            c.sendall(ws_frame(xor(b"\x01hello", down)))
            op, payload, rest, masked = ws_read_frame(c, rest)
            r["frame"] = (op, masked)
            r["second"] = xor(payload, up[len(ct):])
        except Exception as e:  # reported by the test
            r["error"] = repr(e)
        finally:
            self.done.set()
            time.sleep(0.5)


class Keystream:
    """An AES-CTR keystream read sequentially, made by openssl in blocks."""

    STEP = 256 * 1024

    def __init__(self, key, nonce):
        self.key, self.n0 = key, int.from_bytes(nonce, "big")
        self.buf, self.pos, self.made = b"", 0, 0

    def peek(self, n):
        out = self.take(n)
        self.pos -= n
        return out

    def take(self, n):
        while len(self.buf) - self.pos < n:
            iv = ((self.n0 + self.made // 16) % (1 << 128)).to_bytes(16, "big")
            self.buf = self.buf[self.pos:] + keystream(self.key, iv, self.STEP)
            self.pos = 0
            self.made += self.STEP
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out


class LockedTls:
    """An SSL socket shared by two threads: OpenSSL wants one at a time."""

    def __init__(self, c, lock):
        self.c, self.lock = c, lock

    def settimeout(self, t):
        pass

    def recv(self, n):
        import select
        import ssl
        while True:
            if not self.c.pending():
                select.select([self.c], [], [], 0.05)
            with self.lock:
                self.c.setblocking(False)
                try:
                    return self.c.recv(n)
                except (ssl.SSLWantReadError, BlockingIOError):
                    continue
                finally:
                    self.c.setblocking(True)

    def sendall(self, b):  # callers hold the lock
        self.c.sendall(b)


class NoKeystream:
    def take(self, n):
        return bytes(n)

    peek = take


def parse_addr(b):
    """wstan ADDR -> (host, port, used)."""
    at = b[1]
    if at == 1:
        return socket.inet_ntop(socket.AF_INET, b[2:6]), struct.unpack("!H", b[6:8])[0], 8
    if at == 4:
        return socket.inet_ntop(socket.AF_INET6, b[2:18]), struct.unpack("!H", b[18:20])[0], 20
    n = b[2]
    return b[3:3 + n].decode(), struct.unpack("!H", b[3 + n:5 + n])[0], 5 + n


class MiniWstanServer(h._TcpServer):
    """A small wstan server in the stock server's manner (TCP only, default
    nonce mode, raw key): no connect acknowledgement unless ack=True, in
    which case it also selects the tunneld-wstan.1 subprotocol.  Counts
    WebSocket connections and requests."""

    def __init__(self, key_bytes, ack=False, tls=None):
        self.key_bytes, self.ack, self.tls = key_bytes, ack, tls
        self.requests = []
        self.drop_reuse = 0
        super().__init__()

    def handle(self, c, addr):
        if not self.tls:
            self.serve(c)
            return
        try:
            c = self.tls.wrap_socket(c, server_side=True)
        except OSError:
            return  # e.g. the client refused our certificate
        try:
            self.serve(c)
        finally:
            c.close()

    def serve(self, c):
        lock = threading.Lock()
        if self.tls:
            c = LockedTls(c, lock)
        head, rest = read_head(c)
        lines = head.split("\r\n")
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        key = hdrs["sec-websocket-key"]
        if self.tls:  # TLS mode: no cipher, tags still there (spec 9)
            up = down = NoKeystream()
        else:
            up = Keystream(self.key_bytes, base64.b64decode(key))
            down = Keystream(self.key_bytes, hashlib.sha1(key.encode() + GUID).digest()[:16])
        msg = base64.urlsafe_b64decode(re.match(r"GET /(\S+) ", lines[0]).group(1))
        if not hmac.compare_digest(hmac.new(self.key_bytes, msg[:-10], hashlib.sha1)
                                   .digest()[:10], msg[-10:]):
            c.sendall(b"HTTP/1.1 400 None\r\n\r\n")
            return
        first = xor(msg[:-10], up.take(len(msg) - 10))
        ack = self.ack and "tunneld-wstan.1" in hdrs.get("sec-websocket-protocol", "")
        c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n"
                   % (ws_accept(key), "Sec-WebSocket-Protocol: tunneld-wstan.1\r\n" if ack
                      else "")).encode())
        st = {"state": "IDLE", "target": None}

        def send(plain, tagged=False):
            with lock:
                ct = xor(plain, down.take(len(plain)))
                if tagged:
                    ct += hmac.new(self.key_bytes, ct, hashlib.sha1).digest()[:10]
                c.sendall(ws_frame(ct))

        def rst(reason="", err=""):
            send(b"\x02" + (reason + "\u2605" + err).encode() + b" " * 40, tagged=True)

        def pump(t):
            try:
                while True:
                    d = t.recv(16384)
                    if not d:
                        break
                    send(b"\x01" + d)
            except OSError:
                pass
            with lock:
                mine = st["target"] is t
                if mine:
                    st["target"] = None
            t.close()
            if mine and st["state"] == "USING":
                st["state"] = "RESETTING"
                try:
                    rst()
                except OSError:
                    pass

        def connect(body):
            host, port, used = parse_addr(body)
            self.requests.append((host, port))
            try:
                t = socket.create_connection((host, port), timeout=5)
            except OSError as e:
                st["state"] = "RESETTING"
                rst("can't connect to %s:%d" % (host, port), "[Errno %d] %s" % (e.errno, e.strerror))
                return
            t.settimeout(None)
            st["state"], st["target"] = "USING", t
            if body[used:]:
                t.sendall(body[used:])
            if ack:
                send(b"\x01")
            threading.Thread(target=pump, args=(t,), daemon=True).start()

        udp = {}

        def dgm(body):
            host, port, used = parse_addr(body)
            if "sock" not in udp:
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.bind(("127.0.0.1", 0))
                udp["sock"] = u
                st["state"] = "USING"

                def upump():
                    while True:
                        try:
                            d, src = u.recvfrom(65535)
                        except OSError:
                            return
                        send(b"\x03\x00\x01" + socket.inet_aton(src[0]) +
                             struct.pack("!H", src[1]) + d)
                threading.Thread(target=upump, daemon=True).start()
            self.requests.append(("udp", host, port))
            udp["sock"].sendto(body[used:], (host, port))

        if first[0] == 0:
            connect(first[9:])
        elif first[0] == 3:
            dgm(first[9:])
        buf = rest
        while True:
            try:
                op, payload, buf, _ = ws_read_frame(c, buf)
            except (EOFError, OSError):
                break
            if op == 8:
                break
            if op != 2:
                continue
            n = len(payload)
            if payload[0] ^ up.peek(1)[0] in (0, 2):  # REQ and RST carry a tag
                plain = xor(payload[:-10], up.take(n - 10))
            else:
                plain = xor(payload, up.take(n))
            cmd = plain[0]
            if cmd == 1:
                t = st["target"]
                if st["state"] == "USING" and t is not None and len(plain) > 1:
                    t.sendall(plain[1:])
            elif cmd == 2:
                t, st["target"] = st["target"], None
                if t is not None:
                    t.close()
                if "sock" in udp:
                    udp.pop("sock").close()
                if st["state"] == "USING":
                    st["state"] = "IDLE"
                    rst()
                else:
                    st["state"] = "IDLE"
            elif cmd == 0 and st["state"] == "IDLE":
                if self.drop_reuse > 0:  # a pooled tunnel that turns out dead
                    self.drop_reuse -= 1
                    break
                connect(plain[9:])
            elif cmd == 3:
                dgm(plain[1:])
        t = st["target"]
        if t is not None:
            t.close()
        if "sock" in udp:
            udp.pop("sock").close()


class GuardTest(unittest.TestCase):
    """The request-line rebuild, byte-exact, against an independent decoder."""

    def setUp(self):
        if not shutil.which("openssl"):
            self.skipTest("needs the openssl command")
        h.require_binaries()

    def run_guard(self, key, key_bytes, compat=False):
        g = GuardServer(key_bytes, compat)
        extra = {"nonce_mode": "compatible"} if compat else {}
        cli = None
        try:
            cli = h.Daemon(h.make_config(
                [{"name": "socks", "type": "socks5", "route": "ws"}],
                tunnels=[tunnel_yaml("ws", "ws://127.0.0.1:%d/" % g.port, key, **extra)]))
            t0 = time.time()
            s = h.socks5_open(cli.port("socks"), "guard.example.net", 4242)
            with s:
                # A stock server (no subprotocol selected): connected at once.
                s.settimeout(h.scaled(5))
                self.assertEqual(h.recv_exact(s, 5), b"hello", "DAT under Ns not delivered")
                s.sendall(b"ping")
                self.assertTrue(g.done.wait(h.scaled(10)))
            r = g.result
            self.assertNotIn("error", r)
            self.assertEqual(r["headers"]["sec-websocket-protocol"], ["tunneld-wstan.1"])
            self.assertEqual(r["headers"]["host"], ["127.0.0.1:%d" % g.port])
            self.assertEqual(r["headers"].get("upgrade"), ["websocket"])
            self.assertTrue(r["tag_ok"], "HMAC-SHA1/10 tag of the URI request")
            p = r["plain"]
            addr = b"\x00\x03" + bytes([len(b"guard.example.net")]) + b"guard.example.net" + \
                struct.pack("!H", 4242)
            self.assertEqual(p[0], 0x00, "REQ command")
            ts = struct.unpack("!d", p[1:9])[0]
            self.assertLess(abs(ts - t0), 10, "timestamp")
            self.assertEqual(p[9:], addr, "ADDR and no initial data")
            self.assertEqual(r["frame"], (2, True), "binary masked frame")
            self.assertEqual(r["second"], b"\x01ping", "DAT continues the upstream stream")
            if compat:
                name = "_" + chr(65 + hashlib.sha1(key_bytes).digest()[19] % 26)
                self.assertTrue(r["cookie"].startswith(name + "="), r["cookie"])
                self.assertNotEqual(base64.b64decode(r["headers"]["sec-websocket-key"][0]),
                                    r["nc"])
            else:
                self.assertNotIn("cookie", r["headers"])
            cli.wait_log(OPEN_RE % "ws")
        finally:
            h.stop_all((cli,), (g,))

    def test_default_mode_handshake(self):
        self.run_guard(K16, K16_BYTES)

    def test_compatible_mode_handshake(self):
        self.run_guard(K16, K16_BYTES, compat=True)

    def test_fails_closed_on_unexpected_buffer(self):
        """The test hook makes the client see a request it does not expect:
        the open must fail with a clear line, and nothing reach the server.
        The hook exists only in the tunneld-testhooks build."""
        hooks = os.environ.get("TUNNELD_TESTHOOKS_BIN", "")
        if not os.path.exists(hooks):
            self.fail("TUNNELD_TESTHOOKS_BIN (the test-hook build of tunneld) is not set: %r"
                      % hooks)
        g = GuardServer(K16_BYTES)
        cli = None
        prod, h.TUNNELD_BIN = h.TUNNELD_BIN, hooks
        try:
            try:
                cli = h.Daemon(h.make_config(
                    [{"name": "socks", "type": "socks5", "route": "ws"}],
                    tunnels=[tunnel_yaml("ws", "ws://127.0.0.1:%d/" % g.port, K16)]),
                    env={"TUNNELD_TEST_WS_CLIENT_BREAK_HANDSHAKE": "1"})
            finally:
                h.TUNNELD_BIN = prod
            rep, s = h.socks_reply_code(cli.port("socks"), "guard.example.net", 4242)
            s.close()
            self.assertEqual(rep, 0x01, "general failure")
            cli.wait_log(r"failing closed")
            time.sleep(0.3)
            self.assertNotIn("head", g.result, "a request reached the server")
        finally:
            h.stop_all((cli,), (g,))


class StockPeerTest(unittest.TestCase):
    """Our client against a small stock-like server written here: no connect
    acknowledgement (a stock server), and with it (the tunneld extension)."""

    def setUp(self):
        if not shutil.which("openssl"):
            self.skipTest("needs the openssl command")
        h.require_binaries()
        self.origin = h.HttpOrigin()
        self.tmp = tempfile.mkdtemp(prefix="tunneld-wsp-")

    def tearDown(self):
        self.origin.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_peer(self, ack):
        srv = MiniWstanServer(K16_BYTES, ack=ack)
        cli = None
        try:
            cli = h.Daemon(h.make_config(
                client_listeners("ws"),
                tunnels=[tunnel_yaml("ws", "ws://127.0.0.1:%d/" % srv.port, K16)],
                log_level="debug"))
            for i in range(6):
                body = h.socks5_http_get(cli.port("socks"), self.origin, "/bytes?n=3000&seed=sp%d" % i)
                self.assertEqual(body, h.gen_bytes(3000, "sp%d" % i))
                time.sleep(0.1)
            self.assertLessEqual(srv.accepted, 2, "the pool is not used")
            # Both directions in bulk: the send queue's cap stops the relay's
            # reading (and on_drain resumes it); rx pauses the other way.
            n = 4 * h.MiB
            fetch_check(self, ["--socks5-hostname", "127.0.0.1:%d" % cli.port("socks"),
                               self.origin.url("/bytes?n=%d&seed=spb" % n)], n, "spb")
            up = os.path.join(self.tmp, "up.bin")
            with open(up, "wb") as f:
                f.write(h.gen_bytes(n, "spu"))
            p = h.run_curl(["--socks5-hostname", "127.0.0.1:%d" % cli.port("socks"),
                            "--data-binary", "@" + up, self.origin.url("/upload")])
            self.assertEqual(p.stdout.decode(), "%d %s" % (n, h.expected_sha256(n, "spu")))
            self.assertEqual(len(srv.requests), 8)
            port = h.closed_port()
            rep, s = h.socks_reply_code(cli.port("socks"), "127.0.0.1", port)
            with s:
                if ack:
                    self.assertEqual(rep, 0x05, "refused, from the server's RST")
                else:  # stock: success at once, then the connection ends
                    self.assertEqual(rep, 0)
                    self.assertEqual(h.recv_until_eof(s, h.scaled(5))[0], b"")
            p = h.run_curl(["-s", "-o", "-", "-w", "\n%{http_code}", "-x",
                            "http://127.0.0.1:%d" % cli.port("http"),
                            "http://127.0.0.1:%d/" % port], check=False)
            out = p.stdout.decode("utf-8", "replace")
            if ack:
                self.assertTrue(out.endswith("\n502"), out[-300:])
                self.assertIn("connect to 127.0.0.1:%d" % port, out)
                self.assertIn("refused", out.lower())
            body = h.socks5_http_get(cli.port("socks"), self.origin, "/bytes?n=100&seed=after")
            self.assertEqual(body, h.gen_bytes(100, "after"))
            if ack:
                # A pooled tunnel that dies on reuse: the request is retried
                # on a fresh one, unseen by the client.  (With a stock peer
                # the client's first bytes are already out: no retry.)
                time.sleep(0.2)
                srv.drop_reuse = 1
                body = h.socks5_http_get(cli.port("socks"), self.origin, "/bytes?n=200&seed=retry")
                self.assertEqual(body, h.gen_bytes(200, "retry"))
                self.assertEqual(srv.drop_reuse, 0, "the pooled tunnel was not used")
            echo = h.UdpEcho()
            try:
                udp_roundtrip(self, cli.port("socks"), echo)
                time.sleep(0.2)
                udp_roundtrip(self, cli.port("socks"), echo)  # on a pooled tunnel
            finally:
                echo.close()
        finally:
            h.stop_all((cli,), (srv,))

    def test_stock_server(self):
        self.run_peer(False)

    def test_pool_expiry_and_disabled(self):
        srv = MiniWstanServer(K16_BYTES, ack=True)
        cli = cli0 = None
        try:
            cli = h.Daemon(h.make_config(
                [{"name": "socks", "type": "socks5", "route": "ws"}],
                tunnels=[tunnel_yaml("ws", "ws://127.0.0.1:%d/" % srv.port, K16,
                                     pool={"size": 4, "max_idle": "1s"})], log_level="debug"))
            h.socks5_http_get(cli.port("socks"), self.origin, "/bytes?n=10&seed=e1")
            cli.wait_log(r"tunnel ws #1: idle, pooled")
            cli.wait_log(r"ws connection #1 to \S+ closed", timeout=3)
            h.socks5_http_get(cli.port("socks"), self.origin, "/bytes?n=10&seed=e2")
            cli.wait_log(r"ws connection #2 to \S+ open")
            cli0 = h.Daemon(h.make_config(
                [{"name": "socks", "type": "socks5", "route": "ws"}],
                tunnels=[tunnel_yaml("ws", "ws://127.0.0.1:%d/" % srv.port, K16,
                                     pool={"size": 0})], log_level="debug"))
            for i in range(3):
                h.socks5_http_get(cli0.port("socks"), self.origin, "/bytes?n=10&seed=d%d" % i)
            cli0.wait_log(r"ws connection #3 to \S+ closed")
            self.assertNotIn("pooled", cli0.log_text())
        finally:
            h.stop_all((cli, cli0), (srv,))

    def test_wss_through_http_proxy(self):
        """wss:// (verified against a private CA, SNI from tls.sni) through
        an HTTP CONNECT proxy."""
        import ssl
        tmp = tempfile.mkdtemp(prefix="tunneld-wsp-")
        cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        make_cert(cert, key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv = MiniWstanServer(K16_BYTES, ack=True, tls=ctx)
        proxy = ConnectProxy()
        cli = None
        try:
            cli = h.Daemon(h.make_config(
                client_listeners("ws"),
                tunnels=[tunnel_yaml("ws", "wss://127.0.0.1:%d/" % srv.port, K16,
                                     tls={"ca": cert, "sni": "localhost"},
                                     http_proxy="127.0.0.1:%d" % proxy.port)]))
            for i in range(3):
                body = h.socks5_http_get(cli.port("socks"), self.origin, "/bytes?n=5000&seed=wp%d" % i)
                self.assertEqual(body, h.gen_bytes(5000, "wp%d" % i))
            self.assertEqual(proxy.targets[0], ("127.0.0.1", srv.port))
            # Another CA: the certificate must be refused.
            other, okey = os.path.join(tmp, "o.pem"), os.path.join(tmp, "ok.pem")
            make_cert(other, okey)
            cli2 = h.Daemon(h.make_config(
                client_listeners("ws"),
                tunnels=[tunnel_yaml("ws", "wss://127.0.0.1:%d/" % srv.port, K16,
                                     tls={"ca": other, "sni": "localhost"})]))
            try:
                rep, s = h.socks_reply_code(cli2.port("socks"), "127.0.0.1", self.origin.port)
                s.close()
                self.assertEqual(rep, 0x01, "a server with an untrusted certificate was accepted")
            finally:
                cli2.stop()
        finally:
            h.stop_all((cli,), (srv, proxy), (tmp,))

    def test_acknowledging_server(self):
        self.run_peer(True)


# --------------------------------------------------------------------------

class WstanTest(unittest.TestCase):
    """Default nonce mode, raw key, ws://, our client against our server."""

    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        h.raise_nofile_limit()
        cls.origin = h.HttpOrigin()
        cls.uecho = h.UdpEcho()
        cls.srv = cls.cli = None
        try:
            cls.srv = cls.start_server("127.0.0.1:0")
            cls.srv_port = cls.srv.server_port("ws-in")
            cls.cli = h.Daemon(h.make_config(
                client_listeners("ws") +
                [{"name": "fwd", "type": "forward", "route": "ws",
                  "target": "127.0.0.1:%d" % cls.origin.port}],
                limits={"connect_timeout": "5s", "udp_timeout": "30s", "drain_timeout": "3s"},
                tunnels=[tunnel_yaml("ws", "ws://127.0.0.1:%d/" % cls.srv_port, K16,
                                     pool={"size": 8, "max_idle": "60s"})],
                log_level="debug"))
        except BaseException:
            cls._cleanup()
            raise

    @classmethod
    def start_server(cls, listen):
        return h.Daemon(h.make_config(
            [], limits={"drain_timeout": "2s"},
            servers=[server_yaml("ws-in", listen, [K16])], log_level="debug"))

    @classmethod
    def _cleanup(cls):
        h.stop_all((cls.cli, cls.srv), (cls.origin, cls.uecho))

    @classmethod
    def tearDownClass(cls):
        cls._cleanup()

    def socks(self):
        return "127.0.0.1:%d" % self.cli.port("socks")

    def url(self, n, seed, host=None):
        u = self.origin.url("/bytes?n=%d&seed=%s" % (n, seed))
        return u.replace("127.0.0.1", host) if host else u

    def opens(self):
        return len(re.findall(OPEN_RE % "ws", self.cli.log_text()))

    # --- the front-ends --------------------------------------------------
    def test_socks5_hostname(self):
        fetch_check(self, ["--socks5-hostname", self.socks(),
                           self.url(300001, "ws-s5h", host="localhost")], 300001, "ws-s5h")

    def test_http_absolute_uri(self):
        fetch_check(self, ["-x", "http://127.0.0.1:%d" % self.cli.port("http"),
                           self.url(100000, "ws-abs")], 100000, "ws-abs")

    def test_http_connect(self):
        fetch_check(self, ["-p", "-x", "http://127.0.0.1:%d" % self.cli.port("http"),
                           self.url(100001, "ws-con")], 100001, "ws-con")

    def test_mixed_and_forward(self):
        fetch_check(self, ["--socks5-hostname", "127.0.0.1:%d" % self.cli.port("mixed"),
                           self.url(5000, "ws-mx")], 5000, "ws-mx")
        fetch_check(self, ["-x", "http://127.0.0.1:%d" % self.cli.port("mixed"),
                           self.url(5001, "ws-mx2")], 5001, "ws-mx2")
        fetch_check(self, ["http://127.0.0.1:%d/bytes?n=7000&seed=ws-fw" % self.cli.port("fwd")],
                    7000, "ws-fw")

    def test_big_transfer_sha256(self):
        n = 64 * h.MiB
        fetch_check(self, ["--socks5-hostname", self.socks(), self.url(n, "ws-big")], n,
                    "ws-big", timeout=60)

    # --- the pool --------------------------------------------------------
    def test_pool_reuse(self):
        h.socks5_http_get(self.cli.port("socks"), self.origin, "/bytes?n=10&seed=warm")
        time.sleep(0.2)
        before = self.opens()
        reused0 = len(re.findall(r"tunnel ws #\d+: reused", self.cli.log_text()))
        for i in range(10):
            body = h.socks5_http_get(self.cli.port("socks"), self.origin, "/bytes?n=1000&seed=p%d" % i)
            self.assertEqual(body, h.gen_bytes(1000, "p%d" % i))
            time.sleep(0.1)  # let the RST exchange finish
        opened = self.opens() - before
        reused = len(re.findall(r"tunnel ws #\d+: reused", self.cli.log_text())) - reused0
        self.assertLessEqual(opened, 2, "a new WebSocket per request: the pool is not used")
        self.assertGreaterEqual(reused, 8)

    # --- UDP -------------------------------------------------------------
    def test_udp_associate(self):
        udp_roundtrip(self, self.cli.port("socks"), self.uecho)

    # --- errors ----------------------------------------------------------
    def test_refused_target(self):
        port = h.closed_port()
        rep, s = h.socks_reply_code(self.cli.port("socks"), "127.0.0.1", port)
        s.close()
        self.assertEqual(rep, 0x05, "connection refused")
        p = h.run_curl(["-s", "-o", "-", "-w", "\n%{http_code}", "-x",
                        "http://127.0.0.1:%d" % self.cli.port("http"),
                        "http://127.0.0.1:%d/" % port], check=False)
        out = p.stdout.decode("utf-8", "replace")
        self.assertTrue(out.endswith("\n502"), out[-300:])
        self.assertIn("connect to 127.0.0.1:%d" % port, out)
        self.assertIn("refused", out.lower())

    # --- load --------------------------------------------------------------
    def test_200_concurrent(self):
        def one(i):
            body = h.socks5_http_get(self.cli.port("socks"), self.origin,
                             "/bytes?n=%d&seed=c%d" % (2000 + i, i), timeout=40)
            return body == h.gen_bytes(2000 + i, "c%d" % i)
        with ThreadPoolExecutor(200) as ex:
            res = list(ex.map(one, range(200)))
        self.assertEqual(res.count(True), 200)

    # --- resilience (last: it replaces the server) ---------------------------
    def test_zz_server_restart_with_warm_pool(self):
        for i in range(3):
            h.socks5_http_get(self.cli.port("socks"), self.origin, "/bytes?n=10&seed=w%d" % i)
        time.sleep(0.3)
        old = type(self).srv
        old.stop()
        type(self).srv = self.start_server("127.0.0.1:%d" % self.srv_port)
        body = h.socks5_http_get(self.cli.port("socks"), self.origin, "/bytes?n=4321&seed=after")
        self.assertEqual(body, h.gen_bytes(4321, "after"))


class WstanVariantsTest(unittest.TestCase):
    """Compatible mode with a password key, wss, the upstream proxy, nginx."""

    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        cls.origin = h.HttpOrigin()
        cls.tmp = tempfile.mkdtemp(prefix="tunneld-wsv-")

    @classmethod
    def tearDownClass(cls):
        h.stop_all((), (cls.origin,), (cls.tmp,))

    def pair(self, srv_extra, tun_extra, url_fmt="ws://127.0.0.1:%d/", key=K16, via=None):
        srv = h.Daemon(h.make_config([], servers=[server_yaml("ws-in", "127.0.0.1:0", [key],
                                                                **srv_extra)]))
        try:
            port = srv.server_port("ws-in") if via is None else via(srv.server_port("ws-in"))
            cli = h.Daemon(h.make_config(
                client_listeners("ws"), limits={"connect_timeout": "5s"},
                tunnels=[tunnel_yaml("ws", url_fmt % port, key, **tun_extra)]))
        except BaseException:
            srv.stop()
            raise
        return srv, cli

    def check(self, cli, seed):
        fetch_check(self, ["--socks5-hostname", "127.0.0.1:%d" % cli.port("socks"),
                           self.origin.url("/bytes?n=200000&seed=%s" % seed)], 200000, seed)
        fetch_check(self, ["-x", "http://127.0.0.1:%d" % cli.port("http"),
                           self.origin.url("/bytes?n=3000&seed=%s2" % seed)], 3000, seed + "2")

    def test_compatible_password(self):
        srv, cli = self.pair({"nonce_mode": "compatible"}, {"nonce_mode": "compatible"},
                             key=PASSWORD)
        try:
            self.check(cli, "cp")
        finally:
            h.stop_all((cli, srv))

    def test_wss_self_signed(self):
        if not shutil.which("openssl"):
            self.skipTest("needs the openssl command")
        cert, key = os.path.join(self.tmp, "c.pem"), os.path.join(self.tmp, "k.pem")
        make_cert(cert, key)
        srv, cli = self.pair({"tls": {"cert": cert, "key": key}},
                             {"tls": {"ca": cert, "sni": "localhost"}},
                             url_fmt="wss://127.0.0.1:%d/")
        try:
            self.check(cli, "wss")
        finally:
            h.stop_all((cli, srv))

    def test_url_with_a_name(self):
        """The URL host is resolved off the loop; every address is tried."""
        srv, cli = self.pair({}, {}, url_fmt="ws://localhost:%d/")
        try:
            self.check(cli, "nm")
        finally:
            h.stop_all((cli, srv))
        cli = h.Daemon(h.make_config(
            [{"name": "socks", "type": "socks5", "route": "ws"}],
            tunnels=[tunnel_yaml("ws", "ws://name.invalid:8080/", K16)]))
        try:
            rep, s = h.socks_reply_code(cli.port("socks"), "127.0.0.1", self.origin.port)
            s.close()
            self.assertEqual(rep, 0x01)
            cli.wait_log(r"tunnel ws: cannot resolve name\.invalid")
        finally:
            cli.stop()

    def test_upstream_http_proxy(self):
        proxy = ConnectProxy()
        srv, cli = self.pair({}, {"http_proxy": "127.0.0.1:%d" % proxy.port})
        try:
            self.check(cli, "px")
            self.assertIn(("127.0.0.1", srv.server_port("ws-in")), proxy.targets)
        finally:
            h.stop_all((cli, srv), (proxy,))

    def test_behind_nginx_compatible(self):
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                          else None)
        if not nginx:
            raise unittest.SkipTest("nginx is not installed")
        d = tempfile.mkdtemp(prefix="nginx-", dir=self.tmp)
        procs = []

        def via(srv_port):
            port = h.closed_port()
            for sub in ("tmp", "logs"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            with open(os.path.join(d, "nginx.conf"), "w") as f:
                f.write("""
worker_processes 1;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %(d)s/tmp/body;
  proxy_temp_path %(d)s/tmp/proxy;
  fastcgi_temp_path %(d)s/tmp/fcgi;
  uwsgi_temp_path %(d)s/tmp/uwsgi;
  scgi_temp_path %(d)s/tmp/scgi;
  large_client_header_buffers 4 64k;
  server {
    listen 127.0.0.1:%(port)d;
    location / {
      proxy_pass http://127.0.0.1:%(up)d;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 300s;
    }
  }
}
""" % {"d": d, "port": port, "up": srv_port})
            p = subprocess.Popen([nginx, "-p", d, "-c", os.path.join(d, "nginx.conf"), "-g",
                                  "daemon off; pid %s/nginx.pid; error_log stderr;" % d],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            deadline = time.monotonic() + h.scaled(10)
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return port
                except OSError:
                    if p.poll() is not None:
                        raise AssertionError("nginx exited with %r" % p.returncode)
                    time.sleep(0.05)
            raise AssertionError("nginx did not start")

        srv = cli = None
        try:
            srv, cli = self.pair({"nonce_mode": "compatible"}, {"nonce_mode": "compatible"},
                                 via=via)
            self.check(cli, "ngx")
        finally:
            for p in procs:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            h.stop_all((cli, srv))


if __name__ == "__main__":
    h.main()
