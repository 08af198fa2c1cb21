"""Bad input and error replies: garbage, truncated handshakes, oversized
headers, and the SOCKS5 / HTTP error codes for refused, timed-out,
unresolvable and unsupported requests.  After each, the daemon still serves."""

import json
import os
import random
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

TLS_HELLO = bytes.fromhex(
    "16030100a5010000a10303" + "00" * 32 + "00" + "0020" + "c02bc02fc02cc030cca9cca8c013c014"
    "009c009d002f0035000a1301130213031304" + "0100" + "0058" + "0000001300110000"
    "0e6578616d706c652e696e76616c6964" + "000a00080006001d00170018" + "000d00140012040308040401"
    "0503080505010806060102010010000b000908687474702f312e31" + "002b0003020304")

HANDSHAKE_TIMEOUT = 1.0
CONNECT_TIMEOUT = 1.0


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = h.HttpOrigin()
        cls.echo = h.TcpEcho()
        cfg = h.make_config([
            {"name": "socks", "type": "socks5"},
            {"name": "http", "type": "http"},
            {"name": "mixed", "type": "mixed"},
        ], limits={"handshake_timeout": "1s", "connect_timeout": "1s", "dns_timeout": "2s"})
        cls.d = h.Daemon(cfg)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            cls.origin.close()
            cls.echo.close()

    # --- helpers -------------------------------------------------------------
    def assert_still_serves(self):
        for name, args in (("socks", ["--socks5-hostname"]), ("http", ["-x"]),
                           ("mixed", ["-x"])):
            proxy = "127.0.0.1:%d" % self.d.port(name)
            if args[0] == "-x":
                proxy = "http://" + proxy
            r = h.run_curl(args + [proxy, self.origin.url("/echo?still-serving")], timeout=15)
            self.assertEqual(json.loads(r.stdout)["path"], "/echo?still-serving")
        self.assertTrue(self.d.alive())

    def assert_logged(self, cport, word, timeout=5.0):
        rx = r"^.*127\.0\.0\.1:%d\b.*\b%s\b.*$" % (cport, re.escape(word))
        return self.d.wait_log(rx, timeout=timeout).group(0)

    def send_garbage(self, listener, payload, expect_http=False):
        s = h.tcp_connect(self.d.port(listener))
        cport = s.getsockname()[1]
        with s:
            t0 = time.monotonic()
            try:
                s.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass
            data, how = h.recv_until_eof(s, h.scaled(5))
            elapsed = time.monotonic() - t0
        self.assertIn(how, ("eof", "reset"), "connection not closed after garbage")
        if data:
            if expect_http:
                self.assertTrue(data.startswith(b"HTTP/1."), "unexpected reply %r" % data[:80])
                self.assertRegex(data.split(b"\r\n", 1)[0], rb"^HTTP/1\.[01] 400 ")
            else:
                # a SOCKS5 server may answer a bad greeting with 05 FF at most
                self.assertIn(data, (b"\x05\xff",), "unexpected reply %r" % data[:80])
        return cport, elapsed

    # --- garbage ------------------------------------------------------------------
    def test_garbage_socks(self):
        # a relayed connection that is open meanwhile is not disturbed
        bystander = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.echo.port)
        with bystander:
            rng = random.Random(1)
            junk = bytes([0x47]) + rng.randbytes(200)
            cport, _ = self.send_garbage("socks", junk)
            self.assert_logged(cport, "protocol-error")
            cport, el = self.send_garbage("socks", TLS_HELLO)
            self.assert_logged(cport, "protocol-error")
            self.assertLess(el, h.scaled(3))
            self.send_garbage("http", TLS_HELLO, expect_http=True)
            bystander.sendall(b"still here")
            self.assertEqual(h.recv_exact(bystander, 10), b"still here")
        self.assert_still_serves()

    def test_garbage_socks_bad_version_after_greeting(self):
        s = h.tcp_connect(self.d.port("socks"))
        cport = s.getsockname()[1]
        with s:
            self.assertEqual(h.socks_greet(s, (0,)), 0)
            s.sendall(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00")  # a SOCKS4 request
            _, how = h.recv_until_eof(s, h.scaled(5))
            self.assertIn(how, ("eof", "reset"))
        self.assert_logged(cport, "protocol-error")
        self.assert_still_serves()

    def test_garbage_http(self):
        rng = random.Random(2)
        junk = bytes(b for b in rng.randbytes(300) if b not in (10, 13)) + b"\r\n\r\n"
        cport, _ = self.send_garbage("http", junk, expect_http=True)
        self.assert_logged(cport, "protocol-error")
        cport, _ = self.send_garbage("http", b"GET\x00 / HTTP/9.9\r\nHost\r\n\r\n", expect_http=True)
        self.assert_logged(cport, "protocol-error")
        cport, el = self.send_garbage("http", TLS_HELLO, expect_http=True)
        self.assert_logged(cport, "protocol-error")
        self.assertLess(el, h.scaled(3))
        self.assert_still_serves()

    def test_garbage_http_400_page(self):
        s = h.tcp_connect(self.d.port("http"))
        with s:
            s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            st, _, hdrs, body = h.read_http_response(s, timeout=h.scaled(5))
        self.assertEqual(st, 400)
        self.assertEqual(int(h.header_get(hdrs, "content-length")), len(body))
        self.assertIn("text/html", h.header_get(hdrs, "content-type") or "")

    def test_garbage_mixed(self):
        cport, el = self.send_garbage("mixed", TLS_HELLO, expect_http=True)
        self.assert_logged(cport, "protocol-error")
        self.assertLess(el, h.scaled(3))
        rng = random.Random(3)
        junk = bytes(b for b in rng.randbytes(300) if b not in (5, 10, 13)) + b"\r\n\r\n"
        cport, _ = self.send_garbage("mixed", junk, expect_http=True)
        self.assert_logged(cport, "protocol-error")
        self.assert_still_serves()

    # --- truncated handshakes ---------------------------------------------------
    def _truncated(self, listener, payload):
        s = h.tcp_connect(self.d.port(listener), timeout=10)
        cport = s.getsockname()[1]
        with s:
            s.sendall(payload)
            t0 = time.monotonic()
            data, how = h.recv_until_eof(s, h.scaled(6))
            el = time.monotonic() - t0
        self.assertIn(how, ("eof", "reset"), "truncated handshake not closed")
        self.assertGreater(el, HANDSHAKE_TIMEOUT * 0.7, "closed before handshake_timeout")
        self.assertLess(el, HANDSHAKE_TIMEOUT + h.scaled(2.5), "closed long after handshake_timeout")
        self.assert_logged(cport, "handshake-timeout")
        return data

    def test_truncated_socks_greeting(self):
        self._truncated("socks", b"\x05\x02\x00")
        self.assert_still_serves()

    def test_truncated_socks_request(self):
        data = self._truncated("socks", b"\x05\x01\x00" + b"\x05\x01\x00\x03\x09local")
        self.assertTrue(data.startswith(b"\x05\x00"), data)
        self.assert_still_serves()

    def test_truncated_http_head(self):
        data = self._truncated("http", b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n")
        if data:
            self.assertRegex(data[:12], rb"^HTTP/1\.[01] 408")
        self.assert_still_serves()

    def test_silent_client(self):
        self._truncated("mixed", b"")
        self.assert_still_serves()

    # --- oversized header ---------------------------------------------------------
    def _oversized(self, req):
        s = h.tcp_connect(self.d.port("http"))
        cport = s.getsockname()[1]
        with s:
            try:
                s.sendall(req)
            except (BrokenPipeError, ConnectionResetError):
                pass
            st, _, hdrs, body = h.read_http_response(s, timeout=h.scaled(5))
        self.assertEqual(st, 431)
        self.assertEqual(int(h.header_get(hdrs, "content-length")), len(body))
        self.assertIn("text/html", h.header_get(hdrs, "content-type") or "")
        return cport

    def test_oversized_single_header(self):
        before = len(self.origin.paths())
        req = (b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " % self.origin.url("/echo?big").encode()
               + b"a" * (70 * h.KiB) + b"\r\n\r\n")
        self._oversized(req)
        self.assertNotIn("/echo?big", self.origin.paths()[before:])
        self.assert_still_serves()

    def test_oversized_many_headers(self):
        lines = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 700) for i in range(100))
        req = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % self.origin.url("/echo?many").encode() \
            + lines + b"\r\n"
        self._oversized(req)
        self.assertNotIn("/echo?many", self.origin.paths())
        self.assert_still_serves()

    def test_oversized_connect(self):
        req = (b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nX-Big: " % self.echo.port
               + b"c" * (70 * h.KiB) + b"\r\n\r\n")
        self._oversized(req)

    def test_large_but_allowed_header(self):
        big = "d" * (40 * h.KiB)
        r = h.run_curl(["-x", "http://127.0.0.1:%d" % self.d.port("http"), "-H", "X-Large: " + big,
                        self.origin.url("/echo?large-ok")])
        seen = json.loads(r.stdout)
        self.assertEqual(dict((k.lower(), v) for k, v in seen["headers"]).get("x-large"), big)

    # --- error replies: SOCKS5 -------------------------------------------------------
    def _socks_rep(self, host, port, cmd=h.SOCKS_CMD_CONNECT, raw_addr=None, timeout=10):
        t0 = time.monotonic()
        rep, s = h.socks_reply_code(self.d.port("socks"), host, port, cmd=cmd,
                                    raw_addr=raw_addr, timeout=h.scaled(timeout))
        el = time.monotonic() - t0
        with s:
            if rep != 0:
                _, how = h.recv_until_eof(s, h.scaled(3))
                self.assertIn(how, ("eof", "reset"), "connection left open after error reply")
        return rep, el, None

    def test_socks_refused(self):
        rep, _, _ = self._socks_rep("127.0.0.1", h.closed_port())
        self.assertEqual(rep, 0x05)

    def test_socks_connect_timeout(self):
        with h.BlackholeListener() as bh:
            if not bh.verify(1.0):
                self.skipTest("cannot make a connect hang on this system")
            rep, el, _ = self._socks_rep("127.0.0.1", bh.port)
            self.assertEqual(rep, 0x06)
            self.assertGreater(el, CONNECT_TIMEOUT * 0.7)
            self.assertLess(el, CONNECT_TIMEOUT + h.scaled(3))
        self.d.wait_log(r"target=127\.0\.0\.1:%d .*end=connect-timeout" % bh.port)

    def test_socks_dns_failure(self):
        rep, el, _ = self._socks_rep("nonexistent.invalid", 80)
        self.assertEqual(rep, 0x04)
        self.assertLess(el, 2.0 + h.scaled(3))
        self.d.wait_log(r"end=dns-failed")

    def test_socks_bind(self):
        rep, _, _ = self._socks_rep("127.0.0.1", 0, cmd=h.SOCKS_CMD_BIND)
        self.assertEqual(rep, 0x07)
        self.assert_still_serves()

    def test_socks_unknown_command(self):
        rep, _, _ = self._socks_rep("127.0.0.1", self.echo.port, cmd=0x09)
        self.assertEqual(rep, 0x07)

    def test_socks_bad_atyp(self):
        raw = b"\x02\x7f\x00\x00\x01" + self.echo.port.to_bytes(2, "big")
        rep, _, _ = self._socks_rep(None, None, raw_addr=raw)
        self.assertEqual(rep, 0x08)
        self.assert_still_serves()

    # --- error replies: HTTP -------------------------------------------------------
    def _http_error(self, req, want, max_time=10):
        s = h.tcp_connect(self.d.port("http"))
        t0 = time.monotonic()
        with s:
            s.sendall(req)
            st, _, hdrs, body = h.read_http_response(s, timeout=h.scaled(max_time))
            el = time.monotonic() - t0
            _, how = h.recv_until_eof(s, h.scaled(3))
        self.assertEqual(st, want, body[:200])
        self.assertEqual(int(h.header_get(hdrs, "content-length")), len(body))
        self.assertIn("text/html", h.header_get(hdrs, "content-type") or "")
        self.assertIn(str(want).encode(), body)
        self.assertIn(how, ("eof", "reset"), "connection left open after an error page")
        return el

    def test_http_refused(self):
        p = h.closed_port()
        self._http_error(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (p, p), 502)
        self._http_error(b"GET http://127.0.0.1:%d/x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (p, p),
                         502)
        r = h.run_curl(["-x", "http://127.0.0.1:%d" % self.d.port("http"), "-o", os.devnull,
                        "-w", "%{http_code}", "http://127.0.0.1:%d/" % p], check=False)
        self.assertEqual(r.stdout, b"502")

    def test_http_connect_timeout(self):
        with h.BlackholeListener() as bh:
            if not bh.verify(1.0):
                self.skipTest("cannot make a connect hang on this system")
            el = self._http_error(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % bh.port, 504)
            self.assertGreater(el, CONNECT_TIMEOUT * 0.7)
            self.assertLess(el, CONNECT_TIMEOUT + h.scaled(3))
            self._http_error(b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                             % (bh.port, bh.port), 504)

    def test_http_dns_failure(self):
        el = self._http_error(b"CONNECT nonexistent.invalid:443 HTTP/1.1\r\n"
                              b"Host: nonexistent.invalid:443\r\n\r\n", 502)
        self.assertLess(el, 2.0 + h.scaled(3))
        self._http_error(b"GET http://nonexistent.invalid/ HTTP/1.1\r\n"
                         b"Host: nonexistent.invalid\r\n\r\n", 502)

    def test_http_unsupported_scheme(self):
        self._http_error(b"GET ftp://127.0.0.1:%d/file HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                         % self.origin.port, 501)


if __name__ == "__main__":
    h.main()
