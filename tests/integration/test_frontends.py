"""Front-ends: SOCKS5 (hostname, IPv4, IPv6), HTTP CONNECT, absolute-URI
requests, forward, mixed; keep-alive isolation; the per-connection log line."""

import hashlib
import json
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402


class FrontendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = h.HttpOrigin()
        cls.origin2 = h.HttpOrigin()
        cls.echo = h.TcpEcho()
        cls.sink = h.TcpSink()
        cfg = h.make_config([
            {"name": "socks", "type": "socks5"},
            {"name": "http", "type": "http"},
            {"name": "mixed", "type": "mixed"},
            {"name": "fwd", "type": "forward", "target": "127.0.0.1:%d" % cls.origin.port},
        ])
        cls.d = h.Daemon(cfg)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            for s in (cls.origin, cls.origin2, cls.echo, cls.sink):
                s.close()

    def _bytes_url(self, origin, n, seed, host=None):
        u = origin.url("/bytes?n=%d&seed=%s" % (n, seed))
        if host:
            u = u.replace("127.0.0.1", host)
        return u

    def _fetch_check(self, args, n, seed):
        rc, sha, got, err = h.curl_sha256(args, timeout=30)
        self.assertEqual(rc, 0, "curl failed: %s (%r)" % (err, args))
        self.assertEqual(got, n, "body length")
        self.assertEqual(sha, h.expected_sha256(n, seed), "body sha256")

    # --- log format ------------------------------------------------------
    def test_startup_log_lines(self):
        text = self.d.log_text()
        for name in ("socks", "http", "mixed", "fwd"):
            self.assertRegex(text, re.compile(r"listener %s \(\w+\) listening on 127\.0\.0\.1:%d$"
                                              % (name, self.d.port(name)), re.M))
            self.assertNotEqual(self.d.port(name), 0, "port 0 must be logged as the bound port")
        types = {m.group(1): m.group(2) for m in h.LISTEN_RE.finditer(text)}
        self.assertEqual(types, {"socks": "socks5", "http": "http", "mixed": "mixed",
                                 "fwd": "forward"})
        for line in text.splitlines()[:50]:
            if line.strip():
                self.assertRegex(line, h.LOG_LINE_RE, "log line format")

    # --- SOCKS5 ------------------------------------------------------------
    def test_socks5_hostname_curl(self):
        p = self.d.port("socks")
        self._fetch_check(["--socks5-hostname", "127.0.0.1:%d" % p,
                           self._bytes_url(self.origin, 123457, "fe-sh", host="localhost")],
                          123457, "fe-sh")
        self.assertIn("/bytes?n=123457&seed=fe-sh", self.origin.paths())

    def test_socks5_ipv4_curl(self):
        p = self.d.port("socks")
        self._fetch_check(["--socks5", "127.0.0.1:%d" % p,
                           self._bytes_url(self.origin, 200001, "fe-s4")], 200001, "fe-s4")

    def test_socks5_connect_reply_and_echo(self):
        s = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.echo.port)
        with s:
            for i in range(5):
                msg = b"hello %d " % i * (i + 1) * 100
                s.sendall(msg)
                self.assertEqual(h.recv_exact(s, len(msg)), msg)

    def test_socks5_domain_raw(self):
        s = h.socks5_open(self.d.port("socks"), "localhost", self.echo.port)
        with s:
            s.sendall(b"domain-target")
            self.assertEqual(h.recv_exact(s, 13), b"domain-target")

    @unittest.skipUnless(h.have_ipv6_loopback(), "no IPv6 loopback")
    def test_socks5_ipv6_target(self):
        echo6 = h.TcpEcho(host="::1")
        origin6 = h.HttpOrigin(host="::1")
        try:
            s = h.socks5_open(self.d.port("socks"), "::1", echo6.port)
            with s:
                s.sendall(b"v6 data")
                self.assertEqual(h.recv_exact(s, 7), b"v6 data")
            self.assertEqual(echo6.accepted, 1)
            self._fetch_check(["--socks5", "127.0.0.1:%d" % self.d.port("socks"),
                               origin6.url("/bytes?n=54321&seed=v6")], 54321, "v6")
        finally:
            echo6.close()
            origin6.close()

    @unittest.skipUnless(h.have_ipv6_loopback(), "no IPv6 loopback")
    def test_listener_on_ipv6(self):
        cfg = h.make_config([{"name": "s6", "type": "socks5", "listen": "[::1]:0"}])
        with h.Daemon(cfg) as d6:
            self.assertEqual(d6.addrs.get("s6"), "::1")
            s = h.tcp_connect(d6.port("s6"), host="::1")
            with s:
                self.assertEqual(h.socks_greet(s, (0,)), 0)
                rep, _, _ = h.socks_request(s, 1, "127.0.0.1", self.echo.port)
                self.assertEqual(rep, 0)
                s.sendall(b"x6")
                self.assertEqual(h.recv_exact(s, 2), b"x6")

    # --- HTTP CONNECT --------------------------------------------------------
    def test_http_connect_curl(self):
        p = self.d.port("http")
        self._fetch_check(["-p", "-x", "http://127.0.0.1:%d" % p,
                           self._bytes_url(self.origin, 300007, "fe-hc")], 300007, "fe-hc")
        # through a tunnel the origin sees origin-form
        self.assertIn("/bytes?n=300007&seed=fe-hc", self.origin.paths())

    def test_http_connect_raw_status(self):
        s = h.tcp_connect(self.d.port("http"))
        with s:
            s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                      % (self.echo.port, self.echo.port))
            st, reason, hdrs, rest = h.read_http_response(s, head_only=True)
            self.assertEqual(st, 200)
            self.assertEqual(rest, b"")
            s.sendall(b"after-connect")
            self.assertEqual(h.recv_exact(s, 13), b"after-connect")

    # --- HTTP absolute-URI --------------------------------------------------
    def test_absolute_uri_query_and_hop_by_hop(self):
        p = self.d.port("http")
        path = "/echo?a=1&b=two%20words&c=%2F%3F&empty=&flag"
        r = h.run_curl(["-x", "http://127.0.0.1:%d" % p,
                        "-H", "Proxy-Connection: keep-alive",
                        "-H", "Proxy-Authorization: Basic Zm9vOmJhcg==",
                        "-H", "Connection: X-Hop-Custom",
                        "-H", "X-Hop-Custom: must-not-pass",
                        "-H", "Keep-Alive: timeout=5",
                        "-H", "TE: trailers",
                        "-H", "X-End-To-End: keep-me",
                        self.origin.url(path)])
        seen = json.loads(r.stdout)
        self.assertEqual(seen["path"], path, "query string must be forwarded intact")
        self.assertEqual(seen["method"], "GET")
        self.assertEqual(seen["version"], "HTTP/1.1")
        names = [k.lower() for k, v in seen["headers"]]
        for hop in ("proxy-connection", "proxy-authorization", "x-hop-custom", "keep-alive",
                    "te", "upgrade"):
            self.assertNotIn(hop, names, "hop-by-hop header %s reached the origin" % hop)
        hd = {k.lower(): v for k, v in seen["headers"]}
        self.assertEqual(hd.get("x-end-to-end"), "keep-me")
        self.assertEqual(hd.get("host"), "127.0.0.1:%d" % self.origin.port)
        self.assertEqual(names.count("host"), 1)

    def test_absolute_uri_http10_client(self):
        """An HTTP/1.0 client without Host: the origin still gets HTTP/1.1
        with a Host header, and the query string intact."""
        s = h.tcp_connect(self.d.port("http"))
        with s:
            s.sendall(b"GET %s HTTP/1.0\r\nUser-Agent: it\r\n\r\n"
                      % self.origin.url("/echo?v=1.0&x=%41").encode())
            st, _, hdrs, body = h.read_http_response(s)
        self.assertEqual(st, 200)
        seen = json.loads(body)
        self.assertEqual(seen["path"], "/echo?v=1.0&x=%41")
        self.assertEqual(seen["version"], "HTTP/1.1")
        hd = {k.lower(): v for k, v in seen["headers"]}
        self.assertEqual(hd.get("host"), "127.0.0.1:%d" % self.origin.port)

    def test_absolute_uri_connection_close_and_no_leak(self):
        """Two pipelined requests for two different origins on one client
        connection: the first is answered with Connection: close, the proxy
        closes, and the second request never reaches the first origin."""
        p = self.d.port("http")
        a_path = "/echo?pipelined-first"
        b_path = "/echo?pipelined-second"
        req1 = ("GET http://127.0.0.1:%d%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                "Connection: keep-alive\r\nProxy-Connection: keep-alive\r\n\r\n"
                % (self.origin.port, a_path, self.origin.port)).encode()
        req2 = ("GET http://127.0.0.1:%d%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                % (self.origin2.port, b_path, self.origin2.port)).encode()
        s = h.tcp_connect(p)
        with s:
            s.sendall(req1 + req2)
            st, _, hdrs, body = h.read_http_response(s)
            self.assertEqual(st, 200)
            self.assertEqual(json.loads(body)["path"], a_path)
            self.assertEqual((h.header_get(hdrs, "connection") or "").lower(), "close")
            self.assertIsNotNone(h.wait_closed(s, h.scaled(5)),
                                 "proxy did not close after a Connection: close response")
        time.sleep(0.3)
        self.assertNotIn(b_path, self.origin.paths(), "request leaked to the previous target")
        self.assertIn(a_path, self.origin.paths())
        self.assertEqual(self.origin.paths().count(a_path), 1)

    def test_keepalive_two_origins_one_curl(self):
        p = self.d.port("http")
        ua = self._bytes_url(self.origin, 77777, "ka-a")
        ub = self._bytes_url(self.origin2, 88888, "ka-b")
        tmp = self.d.tmpdir
        fa, fb = os.path.join(tmp, "ka-a.bin"), os.path.join(tmp, "ka-b.bin")
        h.run_curl(["-x", "http://127.0.0.1:%d" % p, ua, "-o", fa, ub, "-o", fb])
        with open(fa, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), h.expected_sha256(77777, "ka-a"))
        with open(fb, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), h.expected_sha256(88888, "ka-b"))
        pa, pb = self.origin.paths(), self.origin2.paths()
        self.assertIn("/bytes?n=77777&seed=ka-a", pa)
        self.assertIn("/bytes?n=88888&seed=ka-b", pb)
        self.assertFalse([x for x in pa if "ka-b" in x], "origin A saw B's request: %r" % pa)
        self.assertFalse([x for x in pb if "ka-a" in x], "origin B saw A's request: %r" % pb)

    def test_keepalive_same_origin_twice(self):
        p = self.d.port("http")
        u1 = self.origin.url("/echo?same-1")
        u2 = self.origin.url("/echo?same-2")
        r = h.run_curl(["-x", "http://127.0.0.1:%d" % p, u1, u2])
        out = r.stdout.decode()
        self.assertIn('"/echo?same-1"', out)
        self.assertIn('"/echo?same-2"', out)
        self.assertEqual(self.origin.paths().count("/echo?same-1"), 1)
        self.assertEqual(self.origin.paths().count("/echo?same-2"), 1)

    def test_post_upload_absolute_uri(self):
        p = self.d.port("http")
        data = h.gen_bytes(2 * h.MiB + 123, "upload-fe")
        r = h.run_curl(["-x", "http://127.0.0.1:%d" % p, "--data-binary", "@-",
                        "-H", "Content-Type: application/octet-stream",
                        self.origin.url("/upload?via=proxy")], input=data)
        self.assertEqual(r.stdout.decode().strip(),
                         "%d %s" % (len(data), hashlib.sha256(data).hexdigest()))
        self.assertIn("/upload?via=proxy", self.origin.paths())

    def test_post_chunked_absolute_uri(self):
        p = self.d.port("http")
        data = h.gen_bytes(300000, "chunked-fe")
        r = h.run_curl(["-x", "http://127.0.0.1:%d" % p, "--data-binary", "@-",
                        "-H", "Transfer-Encoding: chunked",
                        self.origin.url("/upload?chunked")], input=data)
        self.assertEqual(r.stdout.decode().strip(),
                         "%d %s" % (len(data), hashlib.sha256(data).hexdigest()))

    # --- forward / mixed ------------------------------------------------------
    def test_forward(self):
        p = self.d.port("fwd")
        self._fetch_check(["http://127.0.0.1:%d/bytes?n=99991&seed=fe-fwd" % p], 99991, "fe-fwd")
        self.assertIn("/bytes?n=99991&seed=fe-fwd", self.origin.paths())

    def test_mixed_socks5(self):
        p = self.d.port("mixed")
        self._fetch_check(["--socks5-hostname", "127.0.0.1:%d" % p,
                           self._bytes_url(self.origin, 65537, "mx-s")], 65537, "mx-s")

    def test_mixed_http_connect(self):
        p = self.d.port("mixed")
        self._fetch_check(["-p", "-x", "http://127.0.0.1:%d" % p,
                           self._bytes_url(self.origin, 65539, "mx-c")], 65539, "mx-c")

    def test_mixed_http_absolute(self):
        p = self.d.port("mixed")
        r = h.run_curl(["-x", "http://127.0.0.1:%d" % p, self.origin.url("/echo?mixed=abs")])
        self.assertEqual(json.loads(r.stdout)["path"], "/echo?mixed=abs")

    # --- per-connection log line -----------------------------------------------
    def test_conn_log_line_byte_counts(self):
        s = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.sink.port)
        cport = s.getsockname()[1]
        with s:
            payload = h.gen_bytes(123457, "log-line")
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            reply, how = h.recv_until_eof(s, h.scaled(10))
        self.assertEqual(how, "eof")
        self.assertEqual(reply, b"%d %s\n" % (len(payload),
                                              hashlib.sha256(payload).hexdigest().encode()))
        ln = self.d.wait_conn_line(cport, timeout=5)
        self.assertEqual(ln["listener"], "socks")
        self.assertEqual(ln["client"], "127.0.0.1:%d" % cport)
        self.assertEqual(ln["target"], "127.0.0.1:%d" % self.sink.port)
        self.assertEqual(ln["route"], "direct")
        self.assertEqual(int(ln["up"]), len(payload))
        self.assertEqual(int(ln["down"]), len(reply))
        self.assertEqual(ln["end"], "done")
        self.assertLess(float(ln["duration"]), h.scaled(10))

    def test_conn_log_line_forward(self):
        out = os.path.join(self.d.tmpdir, "fwd-log.bin")
        r = h.run_curl(["-o", out, "-w", "%{local_port}",
                        "http://127.0.0.1:%d/bytes?n=5000&seed=log-fwd" % self.d.port("fwd")])
        self.assertEqual(os.path.getsize(out), 5000)
        cport = int(r.stdout.decode().strip())
        ln = self.d.wait_conn_line(cport, timeout=5)
        self.assertEqual(ln["listener"], "fwd")
        self.assertEqual(ln["target"], "127.0.0.1:%d" % self.origin.port)
        # down = the whole HTTP response (5000 body bytes + a head of < 1000)
        self.assertGreaterEqual(int(ln["down"]), 5000)
        self.assertLess(int(ln["down"]), 5000 + 1000)
        self.assertGreater(int(ln["up"]), 20)
        self.assertLess(int(ln["up"]), 1000)

if __name__ == "__main__":
    h.main()
