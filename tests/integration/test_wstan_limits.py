#!/usr/bin/env python3
"""wstan and the daemon's limits:

* the descriptor budget counts the sockets libwebsockets owns (the wstan
  client's WebSockets, the plain server's adopted sockets, native wss
  connections), so a daemon with a low RLIMIT_NOFILE pauses or refuses at
  its budget instead of meeting EMFILE, and gets every descriptor back;
* limits.idle_timeout applies to server sessions: data, not pings, keeps
  them alive (a session in use is reset, an idle pooled one closed 1000);
* on SIGTERM idle tunnels get a WebSocket close frame, from the server and
  from the client, before the daemon exits;
* the production binary carries no test hook."""
import os
import signal
import socket
import struct
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402
import test_wstan as tw  # noqa: E402
import test_wstan_badinput as b  # noqa: E402

K16 = b.KEY_B64
BUDGET_RE = r"descriptor limit (\d+), budget (\d+)"


def empty_req(raw):
    """The "empty" first request (spec 5.1): the tunnel opens IDLE."""
    ct = raw.up.xor(b"\x02" + struct.pack("!d", time.time()))
    return ct + b.tag(raw.key, ct)


def fd_count(d):
    return len(os.listdir("/proc/%d/fd" % d.pid))


def settled_fd_count(d, secs=0.5):
    """The descriptor count once a closing connection has had time to go."""
    time.sleep(h.scaled(secs))
    return fd_count(d)


def wait_fds(d, want, timeout=10.0):
    deadline = time.monotonic() + h.scaled(timeout)
    while True:
        n = fd_count(d)
        if n <= want or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def socks_try(port, host, dport, wait):
    """A SOCKS5 CONNECT; returns (sock, rep), rep None when the greeting is
    not answered within wait seconds (the connection waits in the backlog)."""
    s = h.tcp_connect(port, timeout=h.scaled(10))
    s.sendall(b"\x05\x01\x00")
    s.settimeout(wait)
    try:
        if h.recv_exact(s, 2) != b"\x05\x00":
            raise AssertionError("bad SOCKS5 greeting reply")
    except (socket.timeout, TimeoutError):
        return s, None
    s.settimeout(h.scaled(10))
    rep, _, _ = h.socks_request(s, h.SOCKS_CMD_CONNECT, host, dport)
    return s, rep


def no_emfile(tc, d):
    text = d.log_text()
    tc.assertNotIn("too many open files (accept)", text)
    tc.assertNotIn("too many open files (connect)", text)
    tc.assertNotIn("Too many open files", text)  # libuv/lws strerror text
    tc.assertNotIn("cannot hand the connection over", text)


@unittest.skipUnless(b.have_openssl(), "needs the openssl command")
class ClientBudgetTest(unittest.TestCase):
    """A client daemon with a low descriptor limit: each request through the
    tunnel holds two descriptors (the client's socket and its WebSocket)."""

    def test_client_pauses_at_its_budget_and_recovers(self):
        h.require_binaries()
        echo = h.TcpEcho()
        srv = cli = None
        held = []
        try:
            srv = h.Daemon(h.make_config(
                [], servers=[tw.server_yaml("ws-in", "127.0.0.1:0", [K16])]))
            cli = h.Daemon(h.make_config(
                [{"name": "socks", "type": "socks5", "route": "ws"}],
                limits={"connect_timeout": "5s"},
                tunnels=[tw.tunnel_yaml("ws", "ws://127.0.0.1:%d/" % srv.server_port("ws-in"),
                                        K16, pool={"size": 0})],
                log_level="debug"), rlimit_nofile=48)
            budget = int(cli.wait_log(BUDGET_RE).group(2))
            # One listener socket, then two per request.
            expect = (budget - 1) // 2
            port = cli.port("socks")
            s, rep = socks_try(port, "127.0.0.1", echo.port, h.scaled(5))
            s.close()
            self.assertEqual(rep, 0)
            base = settled_fd_count(cli)
            for rnd in range(2):
                ok = 0
                for _ in range(expect + 6):
                    s, rep = socks_try(port, "127.0.0.1", echo.port, h.scaled(1.5))
                    held.append(s)
                    if rep is None:
                        break
                    self.assertEqual(rep, 0, "round %d: request %d refused" % (rnd, ok + 1))
                    ok += 1
                # The same number in the second round: every descriptor of
                # the first came back to the budget.
                self.assertEqual(ok, expect, "round %d: requests served before the pause" % rnd)
                cli.wait_log(r"too many open files: %d of %d descriptors in use; pausing accept"
                             % (budget - 1, budget), count=rnd + 1)
                no_emfile(self, cli)
                for s in held:
                    s.close()
                held.clear()
                self.assertLessEqual(wait_fds(cli, base), base,
                                     "round %d: descriptors not given back" % rnd)
            s, rep = socks_try(port, "127.0.0.1", echo.port, h.scaled(5))
            with s:
                self.assertEqual(rep, 0)
                s.sendall(b"after")
                self.assertEqual(h.recv_exact(s, 5), b"after")
        finally:
            for s in held:
                s.close()
            h.stop_all((cli, srv), (echo,))


@unittest.skipUnless(b.have_openssl(), "needs the openssl command")
class ServerBudgetTest(unittest.TestCase):
    def test_plain_server_stops_at_its_budget(self):
        """Each idle tunnel holds one descriptor (its adopted socket), and a
        new connection needs room for three (its socket, the copy handed to
        libwebsockets, a target): the server stops accepting exactly there,
        without EMFILE, and accepts again once tunnels close."""
        h.require_binaries()
        srv = None
        raws = []
        try:
            srv = h.Daemon(h.make_config(
                [], servers=[tw.server_yaml("ws-in", "127.0.0.1:0", [K16])],
                log_level="debug"), rlimit_nofile=40)
            budget = int(srv.wait_log(BUDGET_RE).group(2))
            expect = budget - 1 - 2  # its listener, one per tunnel, room for a new one
            port = srv.server_port("ws-in")
            ok = 0
            for _ in range(expect + 6):
                raw = b.RawWstan(port)
                raws.append(raw)
                raw.sock.sendall(raw.handshake_bytes(empty_req(raw)))
                try:
                    status, _, _ = raw.read_head(timeout=1.5)
                except (socket.timeout, TimeoutError):
                    break
                except (EOFError, ConnectionResetError):
                    self.fail("tunnel %d: connection dropped" % (ok + 1))
                self.assertTrue(status.startswith("HTTP/1.1 101"), status)
                ok += 1
            self.assertEqual(ok, expect, "tunnels accepted before the budget stopped them")
            srv.wait_log(r"too many open files: \d+ of %d descriptors in use" % budget)
            no_emfile(self, srv)
            # The connection that waited in the backlog is served once
            # descriptors come back.
            late = raws[-1]
            for r in raws[:-1]:
                r.close()
            status, _, _ = late.read_head(timeout=h.scaled(5))
            self.assertTrue(status.startswith("HTTP/1.1 101"), status)
        finally:
            for r in raws:
                r.close()
            h.stop_all((srv,))

    def test_native_wss_refuses_at_its_budget_and_recovers(self):
        """Native wss: a tunnel holds its connection and its target; at the
        budget lws's new connections are refused at once."""
        h.require_binaries()
        tmp = tempfile.mkdtemp(prefix="tunneld-wsfd-")
        cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        tw.make_cert(cert, key)
        echo = h.TcpEcho()
        srv = cli = None
        held = []
        try:
            srv = h.Daemon(h.make_config(
                [], servers=[tw.server_yaml("ws-tls", "127.0.0.1:0", [K16],
                                            tls={"cert": cert, "key": key})],
                log_level="debug"), rlimit_nofile=40)
            budget = int(srv.wait_log(BUDGET_RE).group(2))
            # The listener, then two per tunnel, with room for both.
            expect = (budget - 1) // 2
            cli = h.Daemon(h.make_config(
                [{"name": "socks", "type": "socks5", "route": "ws"}],
                limits={"connect_timeout": "5s"},
                tunnels=[tw.tunnel_yaml("ws", "wss://127.0.0.1:%d/" % srv.server_port("ws-tls"),
                                        K16, pool={"size": 0},
                                        tls={"ca": cert, "sni": "localhost"})]))
            port = cli.port("socks")
            # A first tunnel opens what stays open for good (libuv's spare
            # descriptor, say).
            s, rep = socks_try(port, "127.0.0.1", echo.port, h.scaled(5))
            s.close()
            self.assertEqual(rep, 0)
            base = settled_fd_count(srv)
            for rnd in range(2):
                ok = 0
                for _ in range(expect + 4):
                    s, rep = socks_try(port, "127.0.0.1", echo.port, h.scaled(5))
                    held.append(s)
                    if rep != 0:
                        break
                    ok += 1
                self.assertEqual(ok, expect, "round %d: tunnels before the refusal" % rnd)
                srv.wait_log(r"server ws-tls: descriptor budget full")
                no_emfile(self, srv)
                for s in held:
                    s.close()
                held.clear()
                self.assertLessEqual(wait_fds(srv, base), base,
                                     "round %d: descriptors not given back" % rnd)
        finally:
            for s in held:
                s.close()
            h.stop_all((cli, srv), (echo,), (tmp,))


class HoldingTarget(h._TcpServer):
    """Accepts, records each connection, and keeps it open until the peer
    closes; closed_at[i] is when connection i saw EOF."""

    def __init__(self):
        self.closed_at = []
        super().__init__()

    def handle(self, c, addr):
        c.settimeout(h.scaled(30))
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        with self.lock:
            self.closed_at.append(time.monotonic())


@unittest.skipUnless(b.have_openssl(), "needs the openssl command")
class IdleTimeoutTest(unittest.TestCase):
    """limits.idle_timeout on the server side: pings do not keep a session
    alive, data does."""

    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        cls.target = HoldingTarget()
        cls.d = None
        try:
            cls.d = h.Daemon(h.make_config(
                [], limits={"idle_timeout": "2s"},
                servers=[tw.server_yaml("ws-in", "127.0.0.1:0", [K16])], log_level="debug"))
            cls.port = cls.d.server_port("ws-in")
        except BaseException:
            h.stop_all((cls.d,), (cls.target,))
            raise

    @classmethod
    def tearDownClass(cls):
        h.stop_all((cls.d,), (cls.target,))

    def open_using(self, raw, data):
        status, _, _ = raw.handshake(b.req_msg(raw.up, raw.key, "127.0.0.1", self.target.port,
                                               data))
        self.assertTrue(status.startswith("HTTP/1.1 101"), status)
        self.assertEqual(raw.read_msg(), (0x01, data))

    def test_session_in_use_is_reset(self):
        closed0 = len(self.target.closed_at)
        with b.RawWstan(self.port) as raw:
            self.open_using(raw, b"hello")
            t0 = time.monotonic()
            cmd, body = raw.read_msg(timeout=8)
            waited = time.monotonic() - t0
            self.assertEqual(cmd, 0x02, "an RST")
            self.assertIn("idle", body.decode("utf-8").lower())
            self.assertGreater(waited, 1.5)
            self.assertLess(waited, h.scaled(5))
            # The target connection is closed too.
            deadline = time.monotonic() + h.scaled(5)
            while len(self.target.closed_at) == closed0 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertGreater(len(self.target.closed_at), closed0,
                               "the target connection stayed open")
            # The tunnel is usable again after the RST exchange.
            raw.send_rst()
            raw.send_msg(b.req_msg(raw.up, raw.key, "127.0.0.1", self.target.port, b"again"))
            self.assertEqual(raw.read_msg(), (0x01, b"again"))

    def test_data_keeps_a_session_alive(self):
        with b.RawWstan(self.port) as raw:
            self.open_using(raw, b"x")
            t0 = time.monotonic()
            i = 0
            while time.monotonic() - t0 < 4.0:  # twice the idle timeout
                time.sleep(0.7)
                i += 1
                raw.send_dat(b"tick %d" % i)
                self.assertEqual(raw.read_msg(), (0x01, b"tick %d" % i))

    def test_idle_pooled_tunnel_is_closed(self):
        with b.RawWstan(self.port) as raw:
            status, _, _ = raw.handshake(empty_req(raw))
            self.assertTrue(status.startswith("HTTP/1.1 101"), status)
            t0 = time.monotonic()
            self.assertEqual(raw.close_code(timeout=8), 1000)
            waited = time.monotonic() - t0
            self.assertGreater(waited, 1.5)
            self.assertLess(waited, h.scaled(5))
        self.d.wait_log(r"server ws-in: tunnel #\d+ from \S+ closed .* end=idle")


@unittest.skipUnless(b.have_openssl(), "needs the openssl command")
class DrainCloseTest(unittest.TestCase):
    def test_server_sends_close_frames_on_sigterm(self):
        h.require_binaries()
        d = None
        raws = []
        try:
            d = h.Daemon(h.make_config(
                [], limits={"drain_timeout": "10s"},
                servers=[tw.server_yaml("ws-in", "127.0.0.1:0", [K16])]))
            for _ in range(3):
                raw = b.RawWstan(d.server_port("ws-in"))
                raws.append(raw)
                status, _, _ = raw.handshake(empty_req(raw))
                self.assertTrue(status.startswith("HTTP/1.1 101"), status)
            t0 = time.monotonic()
            d.signal(signal.SIGTERM)
            for i, raw in enumerate(raws):
                try:
                    op, payload = raw.read_frame(timeout=5)
                except EOFError:
                    self.fail("tunnel %d: connection dropped without a close frame" % i)
                self.assertEqual(op, 0x8, "a close frame")
                code = struct.unpack("!H", payload[:2])[0]
                self.assertIn(code, (1000, 1001))
                raw.sock.sendall(b.ws_frame(0x8, payload[:2]))
            for raw in raws:
                self.assertIsNotNone(raw.read_until_closed(5), "the server kept the socket")
            d.proc.wait(timeout=h.scaled(10))
            self.assertEqual(d.proc.returncode, 0)
            self.assertLess(time.monotonic() - t0, h.scaled(5))
        finally:
            for r in raws:
                r.close()
            h.stop_all((d,))

    def test_server_gives_up_on_a_silent_peer(self):
        """A peer that never answers the close frame delays the exit by a
        short, bounded time only."""
        h.require_binaries()
        d = None
        try:
            d = h.Daemon(h.make_config(
                [], limits={"drain_timeout": "20s"},
                servers=[tw.server_yaml("ws-in", "127.0.0.1:0", [K16])]))
            with b.RawWstan(d.server_port("ws-in")) as raw:
                status, _, _ = raw.handshake(empty_req(raw))
                self.assertTrue(status.startswith("HTTP/1.1 101"), status)
                t0 = time.monotonic()
                d.signal(signal.SIGTERM)
                self.assertEqual(raw.read_frame(timeout=5)[0], 0x8)
                d.proc.wait(timeout=h.scaled(10))
                self.assertLess(time.monotonic() - t0, h.scaled(4))
                self.assertEqual(d.proc.returncode, 0)
        finally:
            h.stop_all((d,))

    def test_client_sends_close_frames_on_sigterm(self):
        """The client side: a pooled tunnel to a stock-like server gets a
        close frame when the client daemon stops."""
        h.require_binaries()
        closes = []
        orig = tw.ws_read_frame

        def recording(c, buf=b""):
            r = orig(c, buf)
            if r[0] == 0x8:
                closes.append(r[1])
            return r

        tw.ws_read_frame = recording
        srv = tw.MiniWstanServer(bytes(range(16)))
        echo = h.TcpEcho()
        cli = None
        try:
            cli = h.Daemon(h.make_config(
                [{"name": "socks", "type": "socks5", "route": "ws"}],
                tunnels=[tw.tunnel_yaml("ws", "ws://127.0.0.1:%d/" % srv.port, K16,
                                        pool={"size": 4, "max_idle": "60s"})],
                log_level="debug"))
            s = h.socks5_open(cli.port("socks"), "127.0.0.1", echo.port)
            with s:
                s.sendall(b"pooled")
                self.assertEqual(h.recv_exact(s, 6), b"pooled")
            cli.wait_log(r"tunnel ws #\d+: idle, pooled")
            cli.signal(signal.SIGTERM)
            cli.proc.wait(timeout=h.scaled(10))
            self.assertEqual(cli.proc.returncode, 0)
            deadline = time.monotonic() + h.scaled(3)
            while not closes and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue(closes, "the server got no close frame")
            self.assertIn(struct.unpack("!H", closes[0][:2])[0], (1000, 1001))
        finally:
            tw.ws_read_frame = orig
            h.stop_all((cli,), (srv, echo))


class TestHookTest(unittest.TestCase):
    def test_production_binary_has_no_test_hooks(self):
        h.require_binaries()
        with open(h.TUNNELD_BIN, "rb") as f:
            data = f.read()
        # (assertNotIn would print the whole binary)
        self.assertFalse(b"TUNNELD_TEST_" in data, "%s holds a test hook" % h.TUNNELD_BIN)


if __name__ == "__main__":
    unittest.main()
