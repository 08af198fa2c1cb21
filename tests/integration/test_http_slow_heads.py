#!/usr/bin/env python3
"""Request heads that arrive a byte at a time: the HTTP front-end and the
plain wstan server must look at each new byte once, not parse the whole head
again on every read (that is quadratic: a 64 KiB head fed one byte per read
cost about a second of the loop's CPU, and more for the wstan server's
100 KiB heads).  The daemon's user CPU time over the whole slow head must
stay small, and the head must still be answered.  (Its system time, the
kernel's cost of one read per packet, is the same with or without the fix
and is not what this is about.)"""
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

# Generous: the fixed code needs well under 0.1 s, the quadratic one 0.8 s
# and more.
CPU_BOUND = h.scaled(0.3)


def user_cpu_seconds(d):
    with open("/proc/%d/stat" % d.pid) as f:
        data = f.read()
    return int(data[data.rindex(")") + 2:].split()[11]) / os.sysconf("SC_CLK_TCK")


def dribble(sock, data, every=2, pause=0.00005, budget=30.0):
    """Send data one byte per send(), with a short pause every `every` bytes so
    that the daemon's reads see one or a few bytes each.  Bounded in time."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    deadline = time.monotonic() + h.scaled(budget)
    for i in range(len(data)):
        sock.send(data[i:i + 1])
        if i % every == every - 1:
            time.sleep(pause)
            if time.monotonic() > deadline:
                raise AssertionError("sending the head took longer than %.0fs" % budget)


class SlowHeadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        cls.d = None
        try:
            cls.d = h.Daemon(h.make_config(
                [{"name": "http", "type": "http"}],
                limits={"handshake_timeout": "60s"},
                servers=[{"name": "ws-in", "protocol": "wstan", "listen": "127.0.0.1:0",
                          "keys": ["AAECAwQFBgcICQoLDA0ODw=="]}]))
        except BaseException:
            h.stop_all((cls.d,))
            raise

    @classmethod
    def tearDownClass(cls):
        h.stop_all((cls.d,))

    def slow_exchange(self, port, head):
        s = h.tcp_connect(port, timeout=h.scaled(30))
        with s:
            cpu0 = user_cpu_seconds(self.d)
            dribble(s, head)
            status, _, _, _ = h.read_http_response(s, timeout=h.scaled(10), head_only=True)
            used = user_cpu_seconds(self.d) - cpu0
        return status, used

    def test_http_front_end(self):
        # 99 header lines of 640 bytes: just under the 64 KiB head limit and
        # the 100-header limit.  CONNECT to a closed port: a 502 proves the
        # whole head was parsed.
        port = h.closed_port()
        head = b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (port, port)
        for i in range(98):
            head += b"X-Pad-%02d: " % i + b"p" * 636 + b"\r\n"
        head += b"\r\n"
        self.assertLess(len(head), 64 * 1024)
        self.assertGreater(len(head), 62 * 1024)
        status, used = self.slow_exchange(self.d.port("http"), head)
        self.assertEqual(status, 502)
        self.assertLess(used, CPU_BOUND, "%.2fs of CPU for one slow 63 KiB head" % used)

    def test_wstan_server(self):
        # 97 KiB of headers (the wstan server takes heads up to 100 KiB):
        # without an Upgrade header the answer is the status page.
        head = b"GET /" + b"A" * 1000 + b" HTTP/1.1\r\nHost: x\r\n"
        for i in range(98):
            head += b"X-Pad-%02d: " % i + b"p" * 990 + b"\r\n"
        head += b"\r\n"
        self.assertLess(len(head), 100 * 1024)
        self.assertGreater(len(head), 96 * 1024)
        status, used = self.slow_exchange(self.d.server_port("ws-in"), head)
        self.assertEqual(status, 200)
        self.assertLess(used, CPU_BOUND, "%.2fs of CPU for one slow 97 KiB head" % used)


if __name__ == "__main__":
    unittest.main()
