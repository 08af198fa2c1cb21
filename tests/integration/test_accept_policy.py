"""One accept policy for every accepting socket (docs/architecture.md):

* with the descriptor budget full, a listener or a tunnel server stops
  taking connections (they wait in the kernel's backlog, unanswered but not
  refused) and takes them again once descriptors come back: no accepting
  socket goes deaf for good (the wstan server used to);
* handshakes in progress are capped per listener and server
  (limits.max_handshakes): at the cap the oldest makes room, so idle
  half-open connections cannot lock out real clients;
* handshake buffers are capped daemon-wide (limits.handshake_memory).
"""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

K16 = "AAECAwQFBgcICQoLDA0ODw=="
JP_HELLO = b"jProxy\x03\x00"
STATUS_REQ = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
NOFILE = 40  # the budget is NOFILE minus the daemon's reserve (24)


def hold(port, n):
    """n idle TCP connections (connected, nothing sent)."""
    out = []
    for _ in range(n):
        out.append(h.tcp_connect(port, timeout=5))
    return out


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def answered(sock, want_prefix, timeout):
    """True when sock received want_prefix within timeout, False on silence;
    raises on EOF (the connection was refused rather than kept waiting)."""
    sock.settimeout(timeout)
    try:
        data = h.recv_exact(sock, len(want_prefix))
    except socket.timeout:
        return False
    return data == want_prefix


class FdBudget(unittest.TestCase):
    """A connection that arrives while the budget is full waits in the
    backlog and is served, on the same socket, once others close."""

    def check(self, port, request, reply_prefix):
        full = hold(port, 30)
        try:
            time.sleep(0.3 * h.SLOW)
            late = h.tcp_connect(port, timeout=5)
            late.sendall(request)
            self.assertFalse(answered(late, reply_prefix, 1.0 * h.SLOW),
                             "answered while the descriptor budget was full")
        finally:
            close_all(full)
        try:
            self.assertTrue(answered(late, reply_prefix, h.scaled(5)),
                            "never answered after descriptors came back")
        finally:
            late.close()
        # And a brand new connection works too.
        s = h.tcp_connect(port, timeout=5)
        with s:
            s.sendall(request)
            self.assertTrue(answered(s, reply_prefix, h.scaled(5)))

    def test_wstan_server(self):
        d = h.Daemon(h.make_config([], servers=[
            {"name": "ws", "protocol": "wstan", "listen": "127.0.0.1:0", "keys": [K16]}],
            limits={"handshake_timeout": "60s"}), rlimit_nofile=NOFILE)
        try:
            self.check(d.server_port("ws"), STATUS_REQ, b"HTTP/1.1 200 OK\r\n")
            self.assertTrue(d.wait_log(r"too many open files: \d+ of \d+ descriptors in use"))
        finally:
            d.stop()

    def test_jproxy_server(self):
        tmp = h.tempfile.mkdtemp(prefix="tunneld-acc-")
        users = os.path.join(tmp, "users")
        h.jproxy_keygen("acc", os.path.join(tmp, "key.dat"), users)
        d = h.Daemon(h.make_config([], servers=[
            {"name": "jp", "protocol": "jproxy", "listen": "127.0.0.1:0", "users_dir": users}],
            limits={"handshake_timeout": "60s"}), rlimit_nofile=NOFILE)
        try:
            self.check(d.server_port("jp"), JP_HELLO, b"jProxy\x00")
        finally:
            d.stop()
            h.shutil.rmtree(tmp, ignore_errors=True)

    def test_socks_listener(self):
        d = h.Daemon(h.make_config([{"name": "socks", "type": "socks5"}],
                                   limits={"handshake_timeout": "60s"}), rlimit_nofile=NOFILE)
        try:
            self.check(d.port("socks"), b"\x05\x01\x00", b"\x05\x00")
        finally:
            d.stop()


class HandshakeCap(unittest.TestCase):
    """max_handshakes: the oldest idle handshake is closed for a new one."""

    CAP = 4

    def check(self, d, port, request, reply_prefix, log_rx):
        idle = hold(port, self.CAP)
        try:
            time.sleep(0.3 * h.SLOW)
            s = h.tcp_connect(port, timeout=5)
            with s:
                s.sendall(request)
                self.assertTrue(answered(s, reply_prefix, h.scaled(5)),
                                "a new client was not served at the handshake cap")
            # The oldest idle connection was closed to make room.
            self.assertIsNotNone(h.wait_closed(idle[0], h.scaled(5)),
                                 "the oldest handshake was not closed")
            self.assertTrue(d.wait_log(log_rx))
        finally:
            close_all(idle)

    def test_listener_server_and_server(self):
        tmp = h.tempfile.mkdtemp(prefix="tunneld-hscap-")
        users = os.path.join(tmp, "users")
        h.jproxy_keygen("cap", os.path.join(tmp, "key.dat"), users)
        d = h.Daemon(h.make_config(
            [{"name": "socks", "type": "socks5"}],
            servers=[{"name": "ws", "protocol": "wstan", "listen": "127.0.0.1:0", "keys": [K16]},
                     {"name": "jp", "protocol": "jproxy", "listen": "127.0.0.1:0",
                      "users_dir": users}],
            limits={"handshake_timeout": "60s", "max_handshakes": str(self.CAP)}))
        try:
            with self.subTest("socks5 listener"):
                self.check(d, d.port("socks"), b"\x05\x01\x00", b"\x05\x00",
                           r"socks: \d+ handshakes in progress \(limits\.max_handshakes\)")
                self.assertTrue(d.wait_log(r"end=handshake-evicted"))
            with self.subTest("wstan server"):
                self.check(d, d.server_port("ws"), STATUS_REQ, b"HTTP/1.1 200 OK\r\n",
                           r"server ws: handshake from \S+ closed to make room")
            with self.subTest("jproxy server"):
                self.check(d, d.server_port("jp"), JP_HELLO, b"jProxy\x00",
                           r"handshake closed to make room for a new one")
        finally:
            d.stop()
            h.shutil.rmtree(tmp, ignore_errors=True)


class HandshakeMemory(unittest.TestCase):
    def test_daemon_wide_buffer_budget(self):
        d = h.Daemon(h.make_config([{"name": "http", "type": "http"}],
                                   limits={"handshake_timeout": "60s",
                                           "handshake_memory": "1MiB"}))
        conns = []
        try:
            port = d.port("http")
            head = b"GET http://127.0.0.1:9/ HTTP/1.1\r\nX-Pad: " + b"a" * 6000
            for _ in range(200):
                c = h.tcp_connect(port, timeout=5)
                c.sendall(head)  # an unfinished head: its buffer grows past 4 KiB
                conns.append(c)
            self.assertTrue(d.wait_log(r"handshake buffers hold \d+ bytes "
                                       r"\(limits\.handshake_memory\)", timeout=h.scaled(10)))
            rss = d.rss_kib()
            self.assertLess(rss, 64 * 1024 * (3 if h.SANITIZE else 1),
                            "RSS %d KiB with a 1 MiB handshake budget" % rss)
            closed = sum(1 for c in conns if h.wait_closed(c, 0.05) is not None)
            self.assertGreater(closed, 0, "no handshake was refused over the budget")
            close_all(conns)
            conns = []
            # Budget back: normal requests work.
            with h.HttpOrigin() as origin:
                r = h.run_curl(["-x", "http://127.0.0.1:%d" % port, origin.url("/bytes?n=10&seed=m"),
                                "-o", "/dev/null", "-w", "%{http_code}"])
                self.assertEqual(r.stdout.strip(), b"200")
        finally:
            close_all(conns)
            d.stop()


if __name__ == "__main__":
    unittest.main()
