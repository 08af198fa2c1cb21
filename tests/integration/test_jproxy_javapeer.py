"""jProxy with peers that have no flow control, and with peers that cheat.

A Java jProxy 3 peer never sends or honours our TCP Window extension and
writes Packets as fast as its socket takes them.  These tests stand in for
it with Python peers (docs/protocols/jproxy.md, /work/shared/specs/jproxy.md):

* a Java-like *server* in front of our client: a slow SOCKS5 reader (curl
  --limit-rate), with the default and with a 16 MiB limits.buffer, and a
  fast one.  64 MiB each, SHA-256 checked, no reset, RSS bounded.  And a
  reader that stops: the paused tunnel must not look like a dead server;
* a Java-like *client* in front of our server: a slow target and a fast
  one, the same checks;
* the TCP Window extension enforced: a client (hello minor 0x74) and a
  server that send past the window they were granted get that stream reset,
  with a logged reason, and the tunnel carries on;
* limits.idle_timeout on the server's streams: a silent stream is reset, a
  busy one is not.

AES-128-ECB goes through OpenSSL's libcrypto with ctypes (many frames per
EVP call, since ECB keeps no state between blocks), so 64 MiB transfers are
fast; the RSA step of each login uses the openssl command, once per tunnel.
"""

import ctypes
import ctypes.util
import os
import re
import select
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402
import test_jproxy_badinput as jb  # noqa: E402  (message layouts, RSA via openssl)

MAGIC = jb.MAGIC
KIND_CONNECT = jb.KIND_CONNECT
KIND_PACKET = jb.KIND_PACKET
KIND_DISCONNECT = jb.KIND_DISCONNECT
KIND_WINDOW = 0x23
MINOR_TUNNELD = 0x74
HELLO_OK_TUNNELD = 0x74

BIG = 64 * h.MiB
SLOW_RATE = 8 * h.MiB           # bytes/s for the slow readers
JAVA_DATA = 2048                # what a Java peer puts in one Packet
PACKET_MAX = 4074               # the most a Packet can carry (255 blocks)
WINDOW = 256 * h.KiB            # JP_LINK_WINDOW
# Growth of the daemon's RSS during a transfer.  Buffering the whole 64 MiB
# (no backpressure) would pass these; holding limits.buffer plus a stream's
# cap does not come near them.
RSS_LIMIT_KIB = (112 if h.SANITIZE else 40) * 1024


# --------------------------------------------------------------------------
# AES-128-ECB through libcrypto

_lib = None


def libcrypto():
    global _lib
    if _lib is not None:
        return _lib or None
    name = ctypes.util.find_library("crypto")
    if not name:
        _lib = False
        return None
    lib = ctypes.CDLL(name)
    vp, cp, ip = ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)
    lib.EVP_CIPHER_CTX_new.restype = vp
    lib.EVP_CIPHER_CTX_new.argtypes = []
    lib.EVP_CIPHER_CTX_free.restype = None
    lib.EVP_CIPHER_CTX_free.argtypes = [vp]
    lib.EVP_CIPHER_CTX_set_padding.restype = ctypes.c_int
    lib.EVP_CIPHER_CTX_set_padding.argtypes = [vp, ctypes.c_int]
    lib.EVP_aes_128_ecb.restype = vp
    lib.EVP_aes_128_ecb.argtypes = []
    for f in (lib.EVP_EncryptInit_ex, lib.EVP_DecryptInit_ex):
        f.restype = ctypes.c_int
        f.argtypes = [vp, vp, vp, cp, cp]
    for f in (lib.EVP_EncryptUpdate, lib.EVP_DecryptUpdate):
        f.restype = ctypes.c_int
        f.argtypes = [vp, cp, ip, cp, ctypes.c_int]
    for f in (lib.EVP_EncryptFinal_ex, lib.EVP_DecryptFinal_ex):
        f.restype = ctypes.c_int
        f.argtypes = [vp, cp, ip]
    _lib = lib
    return lib


_PAD = [bytes([p]) * p for p in range(17)]


class Ecb:
    """jProxy frames (N | AES-128-ECB(PKCS#7(M))) under one key.  The
    padding is done here and the EVP padding is off, so that a whole batch
    of frames is one EVP call.  One object per thread (or under a lock)."""

    def __init__(self, key):
        assert len(key) == 16
        self.key = bytes(key)
        self.lib = libcrypto()
        self.ctx = self.lib.EVP_CIPHER_CTX_new()
        if not self.ctx:
            raise MemoryError("EVP_CIPHER_CTX_new")

    def __del__(self):
        ctx, self.ctx = getattr(self, "ctx", None), None
        if ctx:
            self.lib.EVP_CIPHER_CTX_free(ctx)

    def _crypt(self, data, encrypt):
        lib = self.lib
        init, update, final = ((lib.EVP_EncryptInit_ex, lib.EVP_EncryptUpdate,
                                lib.EVP_EncryptFinal_ex) if encrypt else
                               (lib.EVP_DecryptInit_ex, lib.EVP_DecryptUpdate,
                                lib.EVP_DecryptFinal_ex))
        assert len(data) % 16 == 0
        out = ctypes.create_string_buffer(len(data) + 16)
        tail = ctypes.create_string_buffer(32)
        n, m = ctypes.c_int(0), ctypes.c_int(0)
        if (init(self.ctx, lib.EVP_aes_128_ecb(), None, self.key, None) != 1
                or lib.EVP_CIPHER_CTX_set_padding(self.ctx, 0) != 1
                or update(self.ctx, out, ctypes.byref(n), bytes(data), len(data)) != 1
                or final(self.ctx, tail, ctypes.byref(m)) != 1):
            raise ValueError("libcrypto AES-128-ECB failed")
        assert n.value == len(data) and m.value == 0
        return out.raw[:n.value]

    def frames(self, msgs):
        """The wire bytes of one frame per message."""
        parts, sizes = [], []
        for m in msgs:
            p = 16 - len(m) % 16
            parts.append(m)
            parts.append(_PAD[p])
            sizes.append((len(m) + p) // 16)
        ct = self._crypt(b"".join(parts), True)
        out, off = [], 0
        for n in sizes:
            if not 1 <= n <= 255:
                raise ValueError("a message of %d blocks does not fit a frame" % n)
            out.append(bytes((n,)))
            out.append(ct[off:off + 16 * n])
            off += 16 * n
        return b"".join(out)

    def open(self, ct):
        """Decrypt one frame's blocks and strip (strictly) the padding."""
        pt = self._crypt(ct, False)
        p = pt[-1]
        if not 1 <= p <= 16 or pt[-p:] != _PAD[p]:
            raise ValueError("bad PKCS#7 padding")
        return pt[:-p]


def have_crypto():
    return jb.have_openssl() and libcrypto() is not None


class FrameReader:
    """Frames from a socket, one message at a time."""

    def __init__(self, sock, key):
        self.sock = sock
        self.ecb = Ecb(key)
        self.buf = bytearray()
        self.off = 0

    def _frame(self):
        avail = len(self.buf) - self.off
        if avail < 1:
            return None
        n = self.buf[self.off]
        if n == 0:
            raise AssertionError("the peer sent an empty frame (N = 0)")
        if avail < 1 + 16 * n:
            return None
        ct = bytes(self.buf[self.off + 1:self.off + 1 + 16 * n])
        self.off += 1 + 16 * n
        if self.off > 64 * h.KiB:
            del self.buf[:self.off]
            self.off = 0
        return self.ecb.open(ct)

    def next(self, wait, stop):
        """The next message; None at EOF or once stop() says so.  wait(t)
        is how long one poll of the socket may take."""
        for _ in range(10_000_000):
            m = self._frame()
            if m is not None:
                return m
            if stop():
                return None
            r, _, _ = select.select([self.sock], [], [], wait)
            if not r:
                continue
            try:
                data = self.sock.recv(256 * h.KiB)
            except (ConnectionResetError, BrokenPipeError, OSError):
                return None
            if not data:
                return None
            self.buf += data
        raise AssertionError("frame reader loop bound reached")


def log_lines(d, rx):
    """The daemon's log lines matching rx (for short failure messages)."""
    return [ln for ln in d.log_text().splitlines() if re.search(rx, ln)]


def msg_window(cid, inc):
    return struct.pack("!BHI", KIND_WINDOW, cid, inc)


def msg_reply(cid, status):
    return struct.pack("!BHBH", KIND_CONNECT, cid, status, 1)


def packets(cid, data, size=JAVA_DATA):
    return [jb.msg_packet(cid, data[i:i + size]) for i in range(0, len(data), size)]


# --------------------------------------------------------------------------
# A logged-in tunnel socket, either side: a reader thread files what comes

class Peer:
    """One logged-in jProxy tunnel seen from the peer we play.  Messages are
    sent in batches under a lock; a reader thread records Connect requests
    and replies, Packets (handed to on_packet or kept), Disconnects and TCP
    Window grants.  handler(peer, msg) may act on any message first."""

    def __init__(self, sock, key, handler=None):
        self.sock = sock
        self.sock.settimeout(h.scaled(60))  # sendall; reads poll with select
        self.ecb = Ecb(key)
        self.reader = FrameReader(sock, key)
        self.lock = threading.Lock()
        self.cond = threading.Condition()
        self.handler = handler
        self.connects = []          # (id, msg) in order
        self.replies = {}           # id -> status
        self.disconnects = set()
        self.disconnected_at = {}   # id -> time.monotonic()
        self.grants = {}            # id -> total increments
        self.data = {}              # id -> bytearray (Packets not handled)
        self.eof = False
        self.error = None
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def send(self, msgs):
        if isinstance(msgs, (bytes, bytearray)):
            msgs = [msgs]
        with self.lock:  # one Ecb for every sender; the reader has its own
            self.sock.sendall(self.ecb.frames(msgs))

    def _run(self):
        try:
            while True:
                m = self.reader.next(0.2, lambda: self.stopping)
                if m is None:
                    break
                if self.handler and self.handler(self, m):
                    continue
                with self.cond:
                    self._file(m)
                    self.cond.notify_all()
        except Exception as e:  # noqa: BLE001 - reported by the tests
            self.error = e
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def _file(self, m):
        kind = m[0]
        cid = struct.unpack("!H", m[1:3])[0] if len(m) >= 3 else None
        if kind == KIND_CONNECT and len(m) == 6:
            self.replies[cid] = m[3]
        elif kind == KIND_CONNECT:
            self.connects.append((cid, m))
        elif kind == KIND_PACKET:
            pid, d = jb.parse_packet(m)
            self.data.setdefault(pid, bytearray()).extend(d)
        elif kind == KIND_DISCONNECT:
            self.disconnects.add(cid)
            self.disconnected_at.setdefault(cid, time.monotonic())
        elif kind == KIND_WINDOW and len(m) >= 7:
            self.grants[cid] = self.grants.get(cid, 0) + struct.unpack("!I", m[3:7])[0]

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + h.scaled(timeout)
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for %s" % what)
                if self.eof and not pred():
                    raise AssertionError("tunnel closed while waiting for %s (%r)"
                                         % (what, self.error))
                self.cond.wait(min(left, 0.2))
            return True

    def granted(self, cid):
        with self.cond:
            return self.grants.get(cid, 0)

    def close(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(h.scaled(5))
        try:
            self.sock.close()
        except OSError:
            pass


def client_login(port, token, key_der, minor=0):
    """Log in to a jProxy server as a client would; returns (sock, key,
    hello status)."""
    s = h.tcp_connect(port, timeout=h.scaled(10))
    try:
        s.sendall(MAGIC + bytes([3, minor]))
        rep = h.recv_exact(s, 7)
        if rep[:6] != MAGIC or rep[6] not in (0, HELLO_OK_TUNNELD):
            raise AssertionError("hello refused: %r" % rep)
        s.sendall(token)
        if h.recv_exact(s, 1) != b"\x00":
            raise AssertionError("login refused")
        key = jb.rsa_decrypt(key_der, h.recv_exact(s, 256))
        if len(key) != 16:
            raise AssertionError("session key of %d bytes" % len(key))
        return s, key, rep[6]
    except BaseException:
        s.close()
        raise


def server_login(c, spki_der, tunneld):
    """Answer a client's hello and token as a server; returns the key."""
    hello = h.recv_exact(c, len(MAGIC) + 2)
    assert hello[:len(MAGIC)] == MAGIC and hello[len(MAGIC)] == 3, hello
    offered = hello[-1] == MINOR_TUNNELD
    c.sendall(MAGIC + bytes([HELLO_OK_TUNNELD if tunneld and offered else 0]))
    h.recv_exact(c, 32)  # the token: any is fine here
    key = os.urandom(16)
    c.sendall(b"\x00" + jb.rsa_encrypt(spki_der, key))
    return key


def parse_connect(m):
    """A Connect request -> (id, host, port)."""
    cid, port, atyp, n = struct.unpack("!HHBB", m[1:7])
    addr = m[7:7 + n]
    if atyp == jb.ATYP_IPV4:
        host = socket.inet_ntoa(addr)
    elif atyp == jb.ATYP_DOMAIN:
        host = addr.decode()
    else:
        raise AssertionError("address type %d in a Connect" % atyp)
    return cid, host, port


# --------------------------------------------------------------------------
# A Java-like server: real connects, Packets as fast as the socket takes them

class JavaLikeServer:
    """Accepts tunnels and behaves like the Java 3.0 server: hello status 00
    (tunneld=False) whatever the minor version, every Connect is a real TCP
    connect (127.0.0.1 only), target bytes go back as 2048-byte Packets as
    fast as the tunnel socket takes them, no TCP Window message is sent or
    honoured, and target EOF is a Disconnect (reason 4).  Kinds received are
    recorded."""

    def __init__(self, spki_der):
        self.spki = spki_der
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.stop = threading.Event()
        self.kinds = set()
        self.errors = []
        self.tunnels = 0
        self.socks = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.tunnels += 1
                self.socks.append(c)
            threading.Thread(target=self._tunnel, args=(c,), daemon=True).start()

    def _tunnel(self, c):
        targets = {}
        try:
            c.settimeout(h.scaled(10))
            key = server_login(c, self.spki, tunneld=False)
            peer = Peer(c, key, handler=lambda p, m: self._on_msg(p, m, targets))
            peer.thread.join()
            if peer.error:
                self.errors.append(peer.error)
        except (EOFError, OSError):
            pass
        except Exception as e:  # noqa: BLE001
            self.errors.append(e)
        finally:
            for t in list(targets.values()):
                try:
                    t.close()
                except OSError:
                    pass

    def _on_msg(self, peer, m, targets):
        self.kinds.add(m[0])
        if m[0] == KIND_CONNECT:
            cid, host, port = parse_connect(m)
            assert host in ("127.0.0.1", "localhost"), host
            try:
                t = socket.create_connection(("127.0.0.1", port), timeout=h.scaled(5))
            except OSError:
                peer.send(msg_reply(cid, 2))
                return True
            t.settimeout(h.scaled(60))
            targets[cid] = t
            peer.send(msg_reply(cid, 0))
            threading.Thread(target=self._pump, args=(peer, cid, t), daemon=True).start()
        elif m[0] == KIND_PACKET:
            cid, d = jb.parse_packet(m)
            t = targets.get(cid)
            if t is not None:
                try:
                    t.sendall(d)
                except OSError:
                    pass
        elif m[0] == KIND_DISCONNECT:
            t = targets.pop(struct.unpack("!H", m[1:3])[0], None)
            if t is not None:
                try:
                    t.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                t.close()
        return True

    def _pump(self, peer, cid, t):
        """Target -> tunnel, never waiting for anything but the socket."""
        try:
            for _ in range(10_000_000):
                d = t.recv(64 * h.KiB)
                if not d:
                    break
                peer.send(packets(cid, d))
            peer.send(struct.pack("!BHB", KIND_DISCONNECT, cid, 4))
        except OSError:
            pass

    def close(self):
        self.stop.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
        for c in socks:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Holder(h._TcpServer):
    """Accepts and never reads (a small receive buffer), until closed."""

    def __init__(self):
        super().__init__()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    def handle(self, c, addr):
        self._stop.wait(120)


class RssSampler:
    """The peak RSS growth of a daemon while a block runs."""

    def __init__(self, daemon):
        self.d = daemon
        self.base = daemon.rss_kib()
        self.peak = self.base
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.d.rss_kib())
            except (OSError, h.DaemonError):
                return

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        self.t.join(5)
        return False

    @property
    def growth(self):
        return self.peak - self.base


def make_keys(tmp, user):
    key_file = os.path.join(tmp, "key.dat")
    users = os.path.join(tmp, "users")
    tok = h.jproxy_keygen(user, key_file, users)
    with open(os.path.join(users, tok + ".dat"), "rb") as f:
        uf = f.read()
    n = struct.unpack("!H", uf[:2])[0]
    spki = os.path.join(tmp, "spki.der")
    with open(spki, "wb") as f:
        f.write(uf[2 + n + 256:])
    with open(key_file, "rb") as f:
        der, token = jb.parse_ksf(f.read())
    key_der = os.path.join(tmp, "key.der")
    with open(key_der, "wb") as f:
        f.write(der)
    os.chmod(key_der, 0o600)
    return key_file, users, spki, token, key_der


# --------------------------------------------------------------------------

@unittest.skipUnless(have_crypto(), "needs libcrypto and the openssl command")
class EcbSelfTest(unittest.TestCase):
    def test_frames_match_spec(self):
        ecb = Ecb(jb.SPEC_K)
        plains = [bytes.fromhex(p) for p, _ in jb.SPEC_FRAMES]
        wire = b"".join(bytes.fromhex(w) for _, w in jb.SPEC_FRAMES)
        self.assertEqual(ecb.frames(plains), wire)
        for p, w in jb.SPEC_FRAMES:
            w = bytes.fromhex(w)
            self.assertEqual(ecb.open(w[1:]), bytes.fromhex(p))
        with self.assertRaises(ValueError):
            ecb.open(jb.aes_ecb_encrypt(jb.SPEC_K, b"A" * 15 + b"\x00", pad=False))


@unittest.skipUnless(have_crypto(), "needs libcrypto and the openssl command")
class JavaServerTest(unittest.TestCase):
    """Our client in front of a Java-like server (no flow control)."""

    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        cls.tmp = tempfile.mkdtemp(prefix="tunneld-jpjs-")
        cls.key_file, _, spki, _, _ = make_keys(cls.tmp, "duke")
        cls.origin = h.HttpOrigin()
        cls.java = JavaLikeServer(spki)

    @classmethod
    def tearDownClass(cls):
        h.stop_all((), (cls.java, cls.origin), (cls.tmp,))

    def client(self, limits=None):
        cli = h.Daemon(h.make_config(
            [{"name": "socks", "type": "socks5", "route": "jp"}],
            limits=limits,
            tunnels=[{"name": "jp", "protocol": "jproxy",
                      "server": "127.0.0.1:%d" % self.java.port, "key_file": self.key_file}],
            log_level="debug"))
        try:
            cli.wait_log(r"tunnel jp up to 127\.0\.0\.1:\d+ \(jProxy 3 peer\)", timeout=10)
        except BaseException:
            h.stop_all((cli,))
            raise
        return cli

    def download(self, limits, rate, seed):
        cli = self.client(limits)
        try:
            h.socks5_http_get(cli.port("socks"), self.origin, "/bytes?n=1000&seed=warm")
            args = ["--socks5-hostname", "127.0.0.1:%d" % cli.port("socks"),
                    self.origin.url("/bytes?n=%d&seed=%s" % (BIG, seed))]
            if rate:
                args[:0] = ["--limit-rate", str(rate)]
            with RssSampler(cli) as rss:
                rc, sha, got, err = h.curl_sha256(args, timeout=BIG / (rate or 32 * h.MiB) + 30)
            self.assertEqual(log_lines(cli, r"resetting|too slow|cannot hold"), [],
                             "our client reset the stream")
            self.assertEqual(rc, 0, "curl failed: %s" % err)
            self.assertEqual(got, BIG, "body length")
            self.assertEqual(sha, h.expected_sha256(BIG, seed), "body sha256")
            self.assertLess(rss.growth, RSS_LIMIT_KIB,
                            "client RSS grew by %d KiB during the download" % rss.growth)
            self.assertEqual(log_lines(cli, r"tunnel jp to .* lost"), [])
            self.assertEqual(self.java.errors, [])
            self.assertTrue(self.java.kinds <= {KIND_CONNECT, KIND_PACKET, KIND_DISCONNECT},
                            "extension messages sent to a Java peer: %r" % self.java.kinds)
        finally:
            h.stop_all((cli,))

    def test_a_slow_socks_client(self):
        self.download(None, SLOW_RATE, "jpjava-slow")

    def test_b_slow_socks_client_big_buffer(self):
        self.download({"buffer": "16MiB"}, SLOW_RATE, "jpjava-slow16")

    def test_d_fast_socks_client(self):
        self.download(None, None, "jpjava-fast")

    def test_f_stalled_reader_keeps_the_tunnel(self):
        """A SOCKS client that stops reading pauses the whole tunnel; a
        request made meanwhile cannot get its Connect reply, and that must
        not make the health check declare the server dead (which would cost
        every stream its data)."""
        connect_s = 2
        cli = self.client({"connect_timeout": "%ds" % connect_s})
        stalled = None
        try:
            n, seed = 16 * h.MiB, "jpjava-stall"
            stalled = socket.socket()
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.settimeout(h.scaled(10))
            stalled.connect(("127.0.0.1", cli.port("socks")))
            self.assertEqual(h.socks_greet(stalled, (0,)), 0)
            rep, _, _ = h.socks_request(stalled, h.SOCKS_CMD_CONNECT, "127.0.0.1",
                                        self.origin.port)
            self.assertEqual(rep, 0)
            stalled.sendall(b"GET /bytes?n=%d&seed=%s HTTP/1.0\r\nHost: x\r\n\r\n"
                            % (n, seed.encode()))
            time.sleep(1.0)  # every buffer on the way fills, the tunnel pauses
            # A request while the tunnel is paused: it may fail (that is the
            # documented cost), but it must not take the tunnel down.
            rep, s2 = h.socks_reply_code(cli.port("socks"), "127.0.0.1", self.origin.port,
                                         timeout=h.scaled(connect_s + 8))
            s2.close()
            time.sleep(h.scaled(connect_s + 2))  # health checks run every second
            st, _, _, body = h.read_http_response(stalled, timeout=h.scaled(30))
            self.assertEqual(st, 200)
            self.assertEqual(len(body), n, "body length of the stalled stream")
            self.assertEqual(body, h.gen_bytes(n, seed), "body of the stalled stream")
            self.assertEqual(log_lines(cli, r"tunnel jp to .* lost|no answer from the server"),
                             [])
            self.assertEqual(len(log_lines(cli, r"tunnel jp up to ")), 1)
            h.socks5_http_get(cli.port("socks"), self.origin, "/bytes?n=1000&seed=after")
        finally:
            if stalled is not None:
                stalled.close()
            h.stop_all((cli,))


@unittest.skipUnless(have_crypto(), "needs libcrypto and the openssl command")
class JavaClientTest(unittest.TestCase):
    """A Java-like client (no flow control) in front of our server."""

    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        cls.tmp = tempfile.mkdtemp(prefix="tunneld-jpjc-")
        _, users, _, cls.token, cls.key_der = make_keys(cls.tmp, "duke")
        cls.srv = h.Daemon(h.make_config(
            [], servers=[{"name": "jp-in", "protocol": "jproxy", "listen": "127.0.0.1:0",
                          "users_dir": users}],
            log_level="debug"))
        cls.port = cls.srv.server_port("jp-in")

    @classmethod
    def tearDownClass(cls):
        h.stop_all((cls.srv,), (), (cls.tmp,))

    def upload(self, rate, seed, cid):
        sink = h.TcpSink(rate=rate, reply_on_eof=False)
        peer = None
        try:
            s, key, st = client_login(self.port, self.token, self.key_der, minor=0)
            self.assertEqual(st, 0, "a Java client gets hello status 00")
            peer = Peer(s, key)
            peer.send(jb.msg_connect_ipv4(cid, "127.0.0.1", sink.port))
            peer.wait(lambda: cid in peer.replies, 10, "the Connect reply")
            self.assertEqual(peer.replies[cid], 0)
            with RssSampler(self.srv) as rss:
                for chunk in h.gen_chunks(BIG, seed):
                    self.assertNotIn(cid, peer.disconnects, "our server reset the stream")
                    peer.send(packets(cid, chunk))
                peer.send(jb.msg_disconnect(cid))
                (n, sha), = sink.wait_results(1, timeout=BIG / (rate or 32 * h.MiB) + 30)
            self.assertEqual(log_lines(self.srv, r"reads too slowly|resetting"), [],
                             "our server reset the stream")
            self.assertEqual(n, BIG, "bytes at the target")
            self.assertEqual(sha, h.expected_sha256(BIG, seed), "sha256 at the target")
            self.assertNotIn(cid, peer.disconnects, "our server reset the stream")
            self.assertLess(rss.growth, RSS_LIMIT_KIB,
                            "server RSS grew by %d KiB during the upload" % rss.growth)
            self.assertIsNone(peer.error)
            self.assertFalse(peer.eof, "the tunnel closed")
            self.assertEqual(peer.grants, {}, "TCP Window sent to a Java client")
        finally:
            if peer is not None:
                peer.close()
            sink.close()

    def test_c_slow_target(self):
        self.upload(SLOW_RATE, "jpjavac-slow", 11)

    def test_e_fast_target(self):
        self.upload(None, "jpjavac-fast", 12)


# --------------------------------------------------------------------------
# The TCP Window extension, enforced

def fill_window(peer, cid, send_data, quiet=0.5, limit=64 * h.MiB):
    """Send exactly what the receiver granted on stream cid until it stops
    granting (its local side does not read).  Returns the bytes sent."""
    sent = 0
    for _ in range(2000):
        seen = peer.granted(cid)
        allowed = WINDOW + seen - sent
        if allowed > 0:
            send_data(allowed)
            sent += allowed
        try:
            peer.wait(lambda: peer.granted(cid) > seen, quiet, "a grant")
        except AssertionError:
            if peer.eof or cid in peer.disconnects:
                raise AssertionError("stream %d ended while within its window" % cid)
            return sent
        if sent > limit:
            raise AssertionError("the receiver granted over %d bytes to a reader that "
                                 "never reads" % limit)
    raise AssertionError("window loop bound reached")


@unittest.skipUnless(have_crypto(), "needs libcrypto and the openssl command")
class WindowServerTest(unittest.TestCase):
    """A tunneld-extension client (hello 0x74) that sends past its window."""

    def test_server_resets_a_stream_sent_past_its_window(self):
        h.require_binaries()
        tmp = tempfile.mkdtemp(prefix="tunneld-jpwin-")
        srv = peer = None
        hold = Holder()
        echo = h.TcpEcho()
        try:
            _, users, _, token, key_der = make_keys(tmp, "mallory")
            srv = h.Daemon(h.make_config(
                [], servers=[{"name": "jp-in", "protocol": "jproxy", "listen": "127.0.0.1:0",
                              "users_dir": users}],
                log_level="debug"))
            s, key, st = client_login(srv.server_port("jp-in"), token, key_der,
                                      minor=MINOR_TUNNELD)
            self.assertEqual(st, HELLO_OK_TUNNELD, "the server offers the extension")
            peer = Peer(s, key)
            cid = 21
            peer.send(jb.msg_connect_ipv4(cid, "127.0.0.1", hold.port))
            peer.wait(lambda: cid in peer.replies, 10, "the Connect reply")
            self.assertEqual(peer.replies[cid], 0)
            blob = os.urandom(PACKET_MAX)

            def send_data(n):
                msgs = []
                while n > 0:
                    k = min(n, PACKET_MAX)
                    msgs.append(jb.msg_packet(cid, blob[:k]))
                    n -= k
                peer.send(msgs)

            sent = fill_window(peer, cid, send_data)
            self.assertNotIn(cid, peer.disconnects, "reset while within the window")
            # Now well past what was granted.
            send_data(WINDOW + peer.granted(cid) - sent + WINDOW)
            peer.wait(lambda: cid in peer.disconnects, 5, "a Disconnect for the stream")
            srv.wait_log(r"server jp-in tunnel #\d+ peer=127\.0\.0\.1:%d stream %d: .*"
                         r"past (its|the) window" % (s.getsockname()[1], cid))
            srv.wait_log(r"stream %d closed target=127\.0\.0\.1:%d .*end=protocol-error"
                         % (cid, hold.port))
            self.assertEqual(len(re.findall(r"stream %d: .*past (?:its|the) window" % cid,
                                            srv.log_text())), 1, "logged once per stream")
            # The tunnel carries on.
            peer.send(jb.msg_connect_ipv4(22, "127.0.0.1", echo.port))
            peer.wait(lambda: 22 in peer.replies, 10, "the second Connect reply")
            self.assertEqual(peer.replies[22], 0)
            peer.send(jb.msg_packet(22, b"still here"))
            peer.wait(lambda: bytes(peer.data.get(22, b"")) == b"still here", 5, "the echo")
            self.assertFalse(peer.eof, "the tunnel was closed")
            self.assertIsNone(peer.error)
        finally:
            if peer is not None:
                peer.close()
            h.stop_all((srv,), (hold, echo), (tmp,))


class CheatServer:
    """One tunnel from our client, answered as a tunneld server would (hello
    0x74): Connects succeed without any target; Packets on any stream but
    the one under test are echoed.  The test drives the stream under test."""

    def __init__(self, spki_der):
        self.spki = spki_der
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.lsock.settimeout(h.scaled(15))
        self.port = self.lsock.getsockname()[1]
        self.peer = None
        self.ready = threading.Event()
        self.error = None
        self.victim = None
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            c, _ = self.lsock.accept()
            c.settimeout(h.scaled(10))
            key = server_login(c, self.spki, tunneld=True)
            self.peer = Peer(c, key, handler=self._on_msg)
            self.ready.set()
        except Exception as e:  # noqa: BLE001
            self.error = e
            self.ready.set()

    def _on_msg(self, peer, m):
        if m[0] == KIND_CONNECT and len(m) > 6:
            cid = parse_connect(m)[0]
            peer.send(msg_reply(cid, 0))
            return False  # filed too: the test waits for it
        if m[0] == KIND_PACKET:
            cid, d = jb.parse_packet(m)
            if cid != self.victim and d:
                peer.send(jb.msg_packet(cid, d))
                return True
        return False

    def close(self):
        if self.peer is not None:
            self.peer.close()
        try:
            self.lsock.close()
        except OSError:
            pass


@unittest.skipUnless(have_crypto(), "needs libcrypto and the openssl command")
class WindowClientTest(unittest.TestCase):
    """A tunneld-extension server that sends past the window our client
    granted."""

    def test_client_resets_a_stream_sent_past_its_window(self):
        h.require_binaries()
        tmp = tempfile.mkdtemp(prefix="tunneld-jpwinc-")
        cli = stalled = None
        key_file, _, spki, _, _ = make_keys(tmp, "mallory")
        cheat = CheatServer(spki)
        try:
            cli = h.Daemon(h.make_config(
                [{"name": "socks", "type": "socks5", "route": "jp"}],
                tunnels=[{"name": "jp", "protocol": "jproxy",
                          "server": "127.0.0.1:%d" % cheat.port, "key_file": key_file}],
                log_level="debug"))
            cli.wait_log(r"tunnel jp up to 127\.0\.0\.1:\d+ \(tunneld peer\)", timeout=10)
            self.assertTrue(cheat.ready.wait(h.scaled(10)))
            self.assertIsNone(cheat.error)
            peer = cheat.peer
            # A SOCKS client that never reads.
            stalled = socket.socket()
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.settimeout(h.scaled(10))
            stalled.connect(("127.0.0.1", cli.port("socks")))
            self.assertEqual(h.socks_greet(stalled, (0,)), 0)
            rep, _, _ = h.socks_request(stalled, h.SOCKS_CMD_CONNECT, "127.0.0.1", 9)
            self.assertEqual(rep, 0)
            peer.wait(lambda: peer.connects, 5, "the Connect")
            with peer.cond:
                cid = peer.connects[-1][0]
            cheat.victim = cid
            blob = os.urandom(PACKET_MAX)

            def send_data(n):
                msgs = []
                while n > 0:
                    k = min(n, PACKET_MAX)
                    msgs.append(jb.msg_packet(cid, blob[:k]))
                    n -= k
                peer.send(msgs)

            sent = fill_window(peer, cid, send_data)
            self.assertNotIn(cid, peer.disconnects, "reset while within the window")
            send_data(WINDOW + peer.granted(cid) - sent + WINDOW)
            peer.wait(lambda: cid in peer.disconnects, 5, "a Disconnect for the stream")
            cli.wait_log(r"tunnel jp stream %d: .*past (its|the) window" % cid)
            self.assertIsNotNone(h.wait_closed(stalled, h.scaled(10)),
                                 "the SOCKS connection of the reset stream stayed open")
            # The tunnel carries on: a second stream echoes through it.
            with h.socks5_open(cli.port("socks"), "127.0.0.1", 9) as s2:
                s2.sendall(b"still here")
                self.assertEqual(h.recv_exact(s2, 10), b"still here")
            log = cli.log_text()
            self.assertEqual(log_lines(cli, r"tunnel jp to .* lost"), [])
            self.assertEqual(len(re.findall(r"tunnel jp up to ", log)), 1)
            self.assertEqual(len(re.findall(r"stream %d: .*past (?:its|the) window" % cid,
                                            log)), 1, "logged once per stream")
        finally:
            if stalled is not None:
                stalled.close()
            cheat.close()
            h.stop_all((cli,), (), (tmp,))


# --------------------------------------------------------------------------
# limits.idle_timeout on the server's streams

IDLE_S = 2


@unittest.skipUnless(have_crypto(), "needs libcrypto and the openssl command")
class ServerStreamIdleTest(unittest.TestCase):
    def test_silent_stream_reset_busy_stream_kept(self):
        h.require_binaries()
        tmp = tempfile.mkdtemp(prefix="tunneld-jpidle-")
        srv = peer = None
        silent = h.TcpSink(reply_on_eof=False)
        echo = h.TcpEcho()
        try:
            _, users, _, token, key_der = make_keys(tmp, "idle")
            srv = h.Daemon(h.make_config(
                [], limits={"idle_timeout": "%ds" % IDLE_S},
                servers=[{"name": "jp-in", "protocol": "jproxy", "listen": "127.0.0.1:0",
                          "users_dir": users}],
                log_level="debug"))
            s, key, _ = client_login(srv.server_port("jp-in"), token, key_der)
            peer = Peer(s, key)
            peer.send([jb.msg_connect_ipv4(31, "127.0.0.1", silent.port),
                       jb.msg_connect_ipv4(32, "127.0.0.1", echo.port)])
            peer.wait(lambda: 31 in peer.replies and 32 in peer.replies, 10, "the replies")
            self.assertEqual((peer.replies[31], peer.replies[32]), (0, 0))
            peer.send(jb.msg_packet(31, b"anyone there?"))
            t0 = time.monotonic()
            # Stream 32 stays busy (an echo every 0.4 s) for well past the
            # idle timeout; 31 stays silent.
            sent = bytearray()
            for i in range(int((IDLE_S * 2 + 2) * h.SLOW / 0.4) + 1):
                msg = b"ping %d;" % i
                peer.send(jb.msg_packet(32, msg))
                sent += msg
                time.sleep(0.4)
                if 31 in peer.disconnects and time.monotonic() - t0 > IDLE_S * 2:
                    break
            peer.wait(lambda: 31 in peer.disconnects, IDLE_S + 5, "a Disconnect for 31")
            elapsed31 = peer.disconnected_at[31] - t0
            self.assertGreaterEqual(elapsed31, IDLE_S - 0.5, "reset before idle_timeout")
            peer.wait(lambda: bytes(peer.data.get(32, b"")) == bytes(sent), 5,
                      "every echo on 32")
            self.assertNotIn(32, peer.disconnects, "a busy stream was reset")
            srv.wait_log(r"stream 31 closed target=127\.0\.0\.1:%d .*end=idle-timeout"
                         % silent.port)
            self.assertEqual(log_lines(srv, r"stream 32 closed"), [])
            self.assertFalse(peer.eof, "the tunnel was closed")
            self.assertEqual(len(silent.wait_results(1, timeout=5)), 1,
                             "the silent target was not closed")
        finally:
            if peer is not None:
                peer.close()
            h.stop_all((srv,), (silent, echo), (tmp,))


if __name__ == "__main__":
    h.main()
