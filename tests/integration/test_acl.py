"""Listener target rules (allow/deny): a refused target gets SOCKS5 reply
0x02 (not allowed by ruleset) or HTTP 403, refused UDP datagrams are
dropped, and allowed targets still work."""

import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402


class AclTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = h.HttpOrigin()
        cls.echo = h.TcpEcho()
        cls.uecho = h.UdpEcho()
        cfg = h.make_config([
            # Loopback is allowed except 127.0.0.2 (and ::1 is denied).
            {"name": "socks", "type": "socks5", "allow": ["127.0.0.0/8"],
             "deny": ["127.0.0.2/32", "::1/128"]},
            {"name": "http", "type": "http", "deny": ["127.0.0.2", "::1/128"]},
            {"name": "closed", "type": "socks5", "deny": ["0.0.0.0/0", "::/0"]},
        ], log_level="debug")
        cls.d = h.Daemon(cfg)
        cls.denied = h.TcpEcho(host="127.0.0.2")
        cls.uecho2 = h.UdpEcho(host="127.0.0.2")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            for s in (cls.origin, cls.echo, cls.uecho, cls.denied, cls.uecho2):
                s.close()

    def test_allowed_target_relays(self):
        s = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.echo.port)
        with s:
            s.sendall(b"ping")
            self.assertEqual(h.recv_exact(s, 4), b"ping")

    def test_denied_ip_gets_0x02(self):
        rep, s = h.socks_reply_code(self.d.port("socks"), "127.0.0.2", self.denied.port)
        s.close()
        self.assertEqual(rep, 0x02)
        self.assertTrue(self.d.wait_log(r"target=127\.0\.0\.2:\d+ .*end=not-allowed"))

    def test_denied_by_name_resolution(self):
        # "localhost" resolves to ::1 (denied) and/or 127.0.0.1; on a host
        # where it includes ::1 the whole name is refused.
        infos = socket.getaddrinfo("localhost", self.echo.port, type=socket.SOCK_STREAM)
        fams = {i[0] for i in infos}
        rep, s = h.socks_reply_code(self.d.port("socks"), "localhost", self.echo.port)
        s.close()
        if socket.AF_INET6 in fams:
            self.assertEqual(rep, 0x02, "a name with one denied address must be refused")
        else:
            self.assertEqual(rep, 0x00)

    def test_everything_denied(self):
        rep, s = h.socks_reply_code(self.d.port("closed"), "127.0.0.1", self.echo.port)
        s.close()
        self.assertEqual(rep, 0x02)

    def test_http_403(self):
        url = "http://127.0.0.2:%d/" % self.denied.port
        r = h.run_curl(["-s", "-o", "-", "-w", "\n%{http_code}", "-x",
                        "http://127.0.0.1:%d" % self.d.port("http"), url], check=False)
        self.assertTrue(r.stdout.rstrip().endswith(b"403"), r.stdout[-200:])
        self.assertIn(b"not allowed", r.stdout)
        ok = h.run_curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-x",
                         "http://127.0.0.1:%d" % self.d.port("http"), self.origin.url("/echo")],
                        check=False)
        self.assertEqual(ok.stdout.strip(), b"200")

    def test_http_connect_403(self):
        s = h.tcp_connect(self.d.port("http"))
        with s:
            s.sendall(b"CONNECT 127.0.0.2:%d HTTP/1.1\r\nHost: x\r\n\r\n" % self.denied.port)
            status = h.read_http_response(s)[0]
            self.assertEqual(status, 403)

    def test_udp_denied_datagram_dropped(self):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.settimeout(h.scaled(3))
        c = h.tcp_connect(self.d.port("socks"))
        with c, u:
            self.assertEqual(h.socks_greet(c, (0,)), 0)
            rep, bh, bp = h.socks_request(c, h.SOCKS_CMD_UDP, "127.0.0.1", u.getsockname()[1])
            self.assertEqual(rep, 0)
            relay = ("127.0.0.1" if bh in ("0.0.0.0", "::") else bh, bp)
            # Allowed: a round trip to the echo on 127.0.0.1.
            u.sendto(h.udp_encode("127.0.0.1", self.uecho.port, b"yes"), relay)
            data, _ = u.recvfrom(65535)
            self.assertEqual(h.udp_decode(data)[3], b"yes")
            # Denied: the echo on 127.0.0.2 never sees it, nothing comes back.
            u.sendto(h.udp_encode("127.0.0.2", self.uecho2.port, b"no"), relay)
            u.settimeout(0.5)
            with self.assertRaises(socket.timeout):
                u.recvfrom(65535)
            self.assertEqual(self.uecho2.received, [])


if __name__ == "__main__":
    unittest.main()
