"""64 MiB of deterministic random data through every front-end, checked by
SHA-256, and 64 MiB uploaded client->target through SOCKS5."""

import hashlib
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

N = 64 * h.MiB


class BulkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = h.HttpOrigin()
        cls.sink = h.TcpSink()
        cls.echo = h.TcpEcho()
        cfg = h.make_config([
            {"name": "socks", "type": "socks5"},
            {"name": "http", "type": "http"},
            {"name": "mixed", "type": "mixed"},
            {"name": "fwd", "type": "forward", "target": "127.0.0.1:%d" % cls.origin.port},
        ], limits={"idle_timeout": "60s"})
        cls.d = h.Daemon(cfg)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            for s in (cls.origin, cls.sink, cls.echo):
                s.close()

    def _download(self, args, seed):
        url = self.origin.url("/bytes?n=%d&seed=%s" % (N, seed))
        rc, sha, n, err = h.curl_sha256(args + [url], timeout=60)
        self.assertEqual(rc, 0, "curl: %s" % err)
        self.assertEqual(n, N)
        self.assertEqual(sha, h.expected_sha256(N, seed))

    def test_socks5_hostname(self):
        self._download(["--socks5-hostname", "127.0.0.1:%d" % self.d.port("socks")], "bulk-sh")

    def test_socks5_ipv4(self):
        self._download(["--socks5", "127.0.0.1:%d" % self.d.port("socks")], "bulk-s4")

    def test_http_connect(self):
        self._download(["-p", "-x", "http://127.0.0.1:%d" % self.d.port("http")], "bulk-hc")

    def test_http_absolute_uri(self):
        self._download(["-x", "http://127.0.0.1:%d" % self.d.port("http")], "bulk-abs")

    def test_mixed_socks5(self):
        self._download(["--socks5-hostname", "127.0.0.1:%d" % self.d.port("mixed")], "bulk-ms")

    def test_mixed_http(self):
        self._download(["-p", "-x", "http://127.0.0.1:%d" % self.d.port("mixed")], "bulk-mh")

    def test_forward(self):
        url = "http://127.0.0.1:%d/bytes?n=%d&seed=bulk-fwd" % (self.d.port("fwd"), N)
        rc, sha, n, err = h.curl_sha256([url], timeout=60)
        self.assertEqual(rc, 0, "curl: %s" % err)
        self.assertEqual(n, N)
        self.assertEqual(sha, h.expected_sha256(N, "bulk-fwd"))

    def test_upload_socks5_to_sink(self):
        s = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.sink.port)
        s.settimeout(h.scaled(30))
        with s:
            hs = hashlib.sha256()
            for chunk in h.gen_chunks(N, "bulk-up"):
                s.sendall(chunk)
                hs.update(chunk)
            s.shutdown(socket.SHUT_WR)
            reply, how = h.recv_until_eof(s, h.scaled(30))
        self.assertEqual(how, "eof")
        self.assertEqual(reply.decode().strip(), "%d %s" % (N, hs.hexdigest()))

    def test_upload_http_post(self):
        data = h.gen_bytes(N, "bulk-post")
        r = h.run_curl(["-x", "http://127.0.0.1:%d" % self.d.port("http"), "--data-binary", "@-",
                        "-H", "Expect:", self.origin.url("/upload")], input=data, timeout=60)
        self.assertEqual(r.stdout.decode().strip(),
                         "%d %s" % (N, hashlib.sha256(data).hexdigest()))

    def test_both_directions_echo(self):
        """16 MiB each way at the same time through SOCKS5 to the echo
        server (sender thread + receiver in this thread)."""
        import threading
        n = 16 * h.MiB
        s = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.echo.port)
        s.settimeout(h.scaled(30))
        err = []

        def sender():
            try:
                for chunk in h.gen_chunks(n, "bulk-echo"):
                    s.sendall(chunk)
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                err.append(e)

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        with s:
            data, how = h.recv_until_eof(s, h.scaled(60), limit=n + 1)
        t.join(h.scaled(10))
        self.assertEqual(err, [])
        self.assertEqual(how, "eof")
        self.assertEqual(len(data), n)
        self.assertEqual(hashlib.sha256(data).hexdigest(), h.expected_sha256(n, "bulk-echo"))


if __name__ == "__main__":
    h.main()
