"""Backpressure: a slow reader on either side must not make the daemon buffer
the stream.  256 MiB is pushed while the reader first stalls and then reads
at a throttled rate; the daemon's RSS is sampled every 100 ms."""

import hashlib
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

TOTAL = 256 * h.MiB
PAUSE = 3.0
RATE = 48 * h.MiB  # bytes/s once the slow reader starts reading
RSS_MARGIN_KIB = (96 if h.SANITIZE else 48) * 1024


class RssSampler:
    def __init__(self, daemon, interval=0.1):
        self.d = daemon
        self.interval = interval
        self.samples = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        for _ in range(100000):
            if self._stop.is_set():
                return
            try:
                self.samples.append(self.d.rss_kib())
            except (OSError, h.DaemonError):
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join(5)
        return False

    @property
    def max(self):
        return max(self.samples) if self.samples else 0


class BackpressureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo = h.TcpEcho()
        cfg = h.make_config([{"name": "socks", "type": "socks5"}],
                            limits={"buffer": "64KiB", "idle_timeout": "120s"})
        cls.d = h.Daemon(cfg)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            cls.echo.close()

    def _baseline(self):
        # warm the daemon up with one relayed connection, then measure
        s = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.echo.port)
        with s:
            blob = os.urandom(h.MiB)
            s.sendall(blob)
            self.assertEqual(h.recv_exact(s, len(blob)), blob)
        time.sleep(0.3)
        return self.d.rss_kib()

    def _check_rss(self, sampler, base):
        self.assertGreater(len(sampler.samples), 10, "too few RSS samples")
        self.assertLess(sampler.max, base + RSS_MARGIN_KIB,
                        "daemon RSS grew from %d KiB to %d KiB while the reader was slow"
                        % (base, sampler.max))

    def test_slow_target_reader(self):
        """client -> daemon -> slow sink"""
        sink = h.TcpSink(pause=PAUSE, rate=RATE)
        try:
            base = self._baseline()
            s = h.socks5_open(self.d.port("socks"), "127.0.0.1", sink.port)
            s.settimeout(h.scaled(30))
            hs = hashlib.sha256()
            t0 = time.monotonic()
            sent_at_pause_end = None
            with RssSampler(self.d) as smp, s:
                sent = 0
                for chunk in h.gen_chunks(TOTAL, "bp-up"):
                    s.sendall(chunk)
                    hs.update(chunk)
                    sent += len(chunk)
                    if sent_at_pause_end is None and time.monotonic() - t0 > PAUSE - 0.5:
                        sent_at_pause_end = sent
                s.shutdown(socket.SHUT_WR)
                reply, how = h.recv_until_eof(s, h.scaled(60))
            self.assertEqual(how, "eof")
            self.assertEqual(reply.decode().strip(), "%d %s" % (TOTAL, hs.hexdigest()),
                             "the sink did not receive the exact 256 MiB")
            self._check_rss(smp, base)
            # the sender must actually have been held back during the stall
            self.assertIsNotNone(sent_at_pause_end, "sender was never blocked")
            self.assertLess(sent_at_pause_end, TOTAL // 2)
        finally:
            sink.close()

    def test_slow_client_reader(self):
        """fast source -> daemon -> slow client"""
        src = h.TcpSource(TOTAL, "bp-down")
        try:
            expect = h.expected_sha256(TOTAL, "bp-down")
            base = self._baseline()
            s = h.socks5_open(self.d.port("socks"), "127.0.0.1", src.port)
            s.settimeout(h.scaled(30))
            hs = hashlib.sha256()
            n = 0
            with RssSampler(self.d) as smp, s:
                time.sleep(PAUSE)
                t0 = time.monotonic()
                deadline = t0 + h.scaled(90)
                while time.monotonic() < deadline:
                    data = s.recv(64 * h.KiB)
                    if not data:
                        break
                    hs.update(data)
                    n += len(data)
                    ahead = n / RATE - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            self.assertEqual(n, TOTAL)
            self.assertEqual(hs.hexdigest(), expect)
            self._check_rss(smp, base)
        finally:
            src.close()


if __name__ == "__main__":
    h.main()
