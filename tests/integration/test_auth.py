"""Front-end authentication: SOCKS5 username/password (RFC 1929) and HTTP
Proxy-Authorization Basic, with auth: users.  Passwords never reach the log."""

import base64
import json
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

USER, PASSWORD = "alice", "s3cret"
USER2, PASSWORD2 = "bob", "Pw-b0b-7f3k2q"
BAD_PASSWORD = "wr0ngPW-x9z7"


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = h.HttpOrigin()
        cls.echo = h.TcpEcho()
        cfg = h.make_config([
            {"name": "socks", "type": "socks5", "auth": "users"},
            {"name": "http", "type": "http", "auth": "users"},
            {"name": "mixed", "type": "mixed", "auth": "users"},
            {"name": "open", "type": "socks5", "auth": "none"},
        ], users=[(USER, PASSWORD), (USER2, PASSWORD2)], log_level="debug",
            limits={"handshake_timeout": "2s"})
        cls.d = h.Daemon(cfg)

    @classmethod
    def tearDownClass(cls):
        try:
            text = cls.d.log_text()
            for secret in (PASSWORD, PASSWORD2, BAD_PASSWORD,
                           base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode(),
                           base64.b64encode(("%s:%s" % (USER, BAD_PASSWORD)).encode()).decode()):
                if secret in text:
                    raise AssertionError("secret %r appears in the daemon log" % secret)
        finally:
            try:
                cls.d.stop()
            finally:
                cls.origin.close()
                cls.echo.close()

    # --- SOCKS5 ---------------------------------------------------------------
    def test_socks_good_credentials(self):
        s = h.tcp_connect(self.d.port("socks"))
        with s:
            self.assertEqual(h.socks_greet(s, (0, 2)), 2, "server must pick user/pass")
            self.assertEqual(h.socks_userpass(s, USER, PASSWORD), 0)
            rep, _, _ = h.socks_request(s, 1, "127.0.0.1", self.echo.port)
            self.assertEqual(rep, 0)
            s.sendall(b"authed")
            self.assertEqual(h.recv_exact(s, 6), b"authed")

    def test_socks_second_user(self):
        s = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.echo.port,
                          auth=(USER2, PASSWORD2))
        with s:
            s.sendall(b"bob")
            self.assertEqual(h.recv_exact(s, 3), b"bob")

    def test_socks_curl_with_credentials(self):
        r = h.run_curl(["-x", "socks5h://%s:%s@127.0.0.1:%d" % (USER, PASSWORD, self.d.port("socks")),
                        self.origin.url("/echo?socks-auth")])
        self.assertEqual(json.loads(r.stdout)["path"], "/echo?socks-auth")

    def _bad_userpass(self, user, pw):
        s = h.tcp_connect(self.d.port("socks"))
        cport = s.getsockname()[1]
        with s:
            self.assertEqual(h.socks_greet(s, (2,)), 2)
            st = h.socks_userpass(s, user, pw)
            self.assertNotEqual(st, 0, "bad credentials accepted")
            self.assertEqual(st, 0x01)
            _, how = h.recv_until_eof(s, h.scaled(3))
            self.assertIn(how, ("eof", "reset"), "connection not closed after auth failure")
        self.d.wait_log(r"127\.0\.0\.1:%d\b.*auth-failed" % cport)

    def test_socks_bad_password(self):
        self._bad_userpass(USER, BAD_PASSWORD)

    def test_socks_unknown_user(self):
        self._bad_userpass("mallory", PASSWORD)

    def test_socks_other_users_password(self):
        self._bad_userpass(USER, PASSWORD2)

    def test_socks_password_prefix(self):
        self._bad_userpass(USER, PASSWORD[:-1])
        self._bad_userpass(USER, PASSWORD + "x")

    def test_socks_noauth_only_refused(self):
        s = h.tcp_connect(self.d.port("socks"))
        with s:
            self.assertEqual(h.socks_greet(s, (0,)), 0xFF)
            _, how = h.recv_until_eof(s, h.scaled(3))
            self.assertIn(how, ("eof", "reset"))

    def test_socks_noauth_request_without_auth(self):
        """A client that skips the sub-negotiation must not get a relay."""
        before = self.echo.accepted
        s = h.tcp_connect(self.d.port("socks"))
        with s:
            self.assertEqual(h.socks_greet(s, (2,)), 2)
            s.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + self.echo.port.to_bytes(2, "big"))
            data, how = h.recv_until_eof(s, h.scaled(4))
            self.assertIn(how, ("eof", "reset"))
            self.assertFalse(data.startswith(b"\x05\x00"), "relay granted without auth: %r" % data)
        self.assertEqual(self.echo.accepted, before, "target was connected without auth")

    def test_open_listener_needs_no_auth(self):
        s = h.socks5_open(self.d.port("open"), "127.0.0.1", self.echo.port)
        s.close()

    def test_mixed_socks_requires_auth(self):
        s = h.tcp_connect(self.d.port("mixed"))
        with s:
            self.assertEqual(h.socks_greet(s, (0,)), 0xFF)
        s = h.socks5_open(self.d.port("mixed"), "127.0.0.1", self.echo.port, auth=(USER, PASSWORD))
        s.close()

    # --- HTTP ----------------------------------------------------------------------
    def _http(self, req, port_name="http"):
        s = h.tcp_connect(self.d.port(port_name))
        with s:
            s.sendall(req)
            return h.read_http_response(s, timeout=h.scaled(10))

    def _assert_407(self, resp):
        st, _, hdrs, body = resp
        self.assertEqual(st, 407)
        self.assertEqual(h.header_get(hdrs, "proxy-authenticate"), 'Basic realm="tunneld"')
        self.assertEqual(int(h.header_get(hdrs, "content-length")), len(body))

    def _get(self, path, auth=None, port_name="http"):
        extra = b""
        if auth is not None:
            extra = b"Proxy-Authorization: Basic " + base64.b64encode(auth.encode()) + b"\r\n"
        return self._http(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n"
                          % (self.origin.url(path).encode(), self.origin.port, extra), port_name)

    def test_http_407_without_credentials(self):
        self._assert_407(self._get("/echo?noauth"))
        self.assertNotIn("/echo?noauth", self.origin.paths())

    def test_http_407_bad_credentials(self):
        self._assert_407(self._get("/echo?badauth", "%s:%s" % (USER, BAD_PASSWORD)))
        self._assert_407(self._get("/echo?badauth", "mallory:%s" % PASSWORD))
        self._assert_407(self._get("/echo?badauth", "%s" % USER))
        self.assertNotIn("/echo?badauth", self.origin.paths())

    def test_http_407_wrong_scheme(self):
        resp = self._http(b"GET %s HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Bearer %s\r\n\r\n"
                          % (self.origin.url("/echo?bearer").encode(), PASSWORD.encode()))
        self._assert_407(resp)

    def test_http_connect_407(self):
        resp = self._http(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                          % (self.echo.port, self.echo.port))
        self._assert_407(resp)

    def test_http_raw_good_credentials_not_forwarded(self):
        st, _, hdrs, body = self._get("/echo?goodauth", "%s:%s" % (USER, PASSWORD))
        self.assertEqual(st, 200)
        seen = json.loads(body)
        self.assertEqual(seen["path"], "/echo?goodauth")
        self.assertNotIn("proxy-authorization", [k.lower() for k, _ in seen["headers"]])

    def test_http_curl_U(self):
        r = h.run_curl(["-x", "http://127.0.0.1:%d" % self.d.port("http"), "-U",
                        "%s:%s" % (USER, PASSWORD), self.origin.url("/echo?curl-U")])
        self.assertEqual(json.loads(r.stdout)["path"], "/echo?curl-U")

    def test_http_curl_proxy_user_connect(self):
        r = h.run_curl(["-p", "-x", "http://127.0.0.1:%d" % self.d.port("http"), "--proxy-user",
                        "%s:%s" % (USER2, PASSWORD2), self.origin.url("/echo?curl-pu")])
        self.assertEqual(json.loads(r.stdout)["path"], "/echo?curl-pu")

    def test_http_curl_without_credentials_gets_407(self):
        r = h.run_curl(["-x", "http://127.0.0.1:%d" % self.d.port("http"), "-o", os.devnull,
                        "-w", "%{http_code}", self.origin.url("/echo?curl-none")], check=False)
        self.assertEqual(r.stdout, b"407")

    def test_mixed_http_requires_auth(self):
        self._assert_407(self._get("/echo?mixed-noauth", port_name="mixed"))
        st, _, _, body = self._get("/echo?mixed-auth", "%s:%s" % (USER, PASSWORD), port_name="mixed")
        self.assertEqual(st, 200)

    def test_zz_password_not_in_log(self):
        # (also checked in tearDownClass after every test ran)
        text = self.d.log_text()
        self.assertNotIn(PASSWORD, text)
        self.assertNotIn(BAD_PASSWORD, text)


if __name__ == "__main__":
    h.main()
