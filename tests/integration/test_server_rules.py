"""Target rules on tunnel servers: a server without allow:/deny: refuses its
users the server's loopback, link-local and metadata addresses, after
resolution (so a name such as "localhost" cannot get through), for TCP and
for UDP; its own allow:/deny: replace the defaults.  On the client side a
listener's rules still meet literal UDP destinations on a tunnel route, and
the jProxy server never binds the local port a client asks for.

    client tunneld (SOCKS5 -> jproxy / wstan tunnel) -> server tunneld -> origin
"""

import os
import shutil
import socket
import struct
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402
import test_jproxy_badinput as jb  # noqa: E402

K16 = "AAECAwQFBgcICQoLDA0ODw=="
KIND_UDP_ASSOC = 0x02
JP_MINOR_TUNNELD = 0x74


def socks_udp(tc, socks_port, dst_host, dst_port, payload, expect_reply, timeout=3.0):
    """One datagram through a SOCKS5 UDP association; returns the reply body
    or None (nothing came back within timeout)."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    c = h.tcp_connect(socks_port)
    with c, u:
        tc.assertEqual(h.socks_greet(c, (0,)), 0)
        uh, up = u.getsockname()[:2]
        rep, bh, bp = h.socks_request(c, h.SOCKS_CMD_UDP, uh, up)
        tc.assertEqual(rep, 0)
        relay = ("127.0.0.1" if bh in ("0.0.0.0", "::") else bh, bp)
        deadline = time.monotonic() + h.scaled(timeout)
        # Resend: the tunnel may still be opening when the first one arrives.
        while time.monotonic() < deadline:
            u.sendto(h.udp_encode(dst_host, dst_port, payload), relay)
            u.settimeout(0.3 if expect_reply else 0.5)
            try:
                data, _ = u.recvfrom(65535)
            except socket.timeout:
                continue
            return h.udp_decode(data)[3]
        return None


class ServerRulesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        h.raise_nofile_limit()
        cls.tmp = tempfile.mkdtemp(prefix="tunneld-srvrules-")
        cls.origin = h.HttpOrigin()
        cls.echo = h.UdpEcho()
        cls.echo2 = h.UdpEcho("127.0.0.2")
        users = os.path.join(cls.tmp, "users")
        cls.key = os.path.join(cls.tmp, "key.dat")
        cls.token = h.jproxy_keygen("rules", cls.key, users)
        # Default rules on one pair of servers, explicit rules on the other.
        cls.srv = h.Daemon(h.make_config([], log_level="debug", servers=[
            {"name": "jp-def", "protocol": "jproxy", "listen": "127.0.0.1:0",
             "users_dir": users, "deny": None},
            {"name": "ws-def", "protocol": "wstan", "listen": "127.0.0.1:0", "keys": [K16],
             "deny": None},
            {"name": "jp-allow", "protocol": "jproxy", "listen": "127.0.0.1:0",
             "users_dir": users, "allow": ["127.0.0.1/32"]},
            {"name": "ws-allow", "protocol": "wstan", "listen": "127.0.0.1:0", "keys": [K16],
             "allow": ["127.0.0.1/32"]},
        ]))
        tunnels, listeners = [], []
        for name in ("jp-def", "ws-def", "jp-allow", "ws-allow"):
            port = cls.srv.server_port(name)
            if name.startswith("jp"):
                tunnels.append({"name": "t-" + name, "protocol": "jproxy",
                                "server": "127.0.0.1:%d" % port, "key_file": cls.key})
            else:
                tunnels.append({"name": "t-" + name, "protocol": "wstan",
                                "url": "ws://127.0.0.1:%d/" % port, "key": K16})
            listeners.append({"name": "s-" + name, "type": "socks5", "route": "t-" + name,
                              "deny": ["127.0.0.2/32"]})
        cls.cli = h.Daemon(h.make_config(listeners, tunnels=tunnels, log_level="debug"))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.cli.stop()
            cls.srv.stop()
        finally:
            for x in (cls.origin, cls.echo, cls.echo2):
                x.close()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def rep(self, listener, host):
        rep, s = h.socks_reply_code(self.cli.port(listener), host, self.origin.port)
        s.close()
        return rep

    def test_defaults_refuse_loopback_literal_and_by_name(self):
        for proto in ("jp", "ws"):
            for host in ("127.0.0.1", "localhost", "127.1.2.3"):
                with self.subTest(proto=proto, host=host):
                    # 0x02: connection not allowed by ruleset, the server's
                    # own reason carried back between tunneld peers.
                    self.assertEqual(self.rep("s-%s-def" % proto, host), 0x02)
        self.assertTrue(self.srv.wait_log(r"server jp-def .*refused by the server's rules"))
        self.assertTrue(self.srv.wait_log(r"server ws-def .*refused by the server's rules"))

    def test_http_through_default_rules_is_403(self):
        # An HTTP front-end answers 403, as it does for a listener's own rules.
        d = h.Daemon(h.make_config(
            [{"name": "m", "type": "mixed", "route": "t"}],
            tunnels=[{"name": "t", "protocol": "wstan",
                      "url": "ws://127.0.0.1:%d/" % self.srv.server_port("ws-def"),
                      "key": K16}]))
        try:
            r = h.run_curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-x",
                            "http://127.0.0.1:%d" % d.port("m"),
                            "http://localhost:%d/bytes?n=10&seed=x" % self.origin.port],
                           check=False)
            self.assertEqual(r.stdout.strip(), b"403")
        finally:
            d.stop()

    def test_explicit_allow_replaces_defaults(self):
        for proto in ("jp", "ws"):
            with self.subTest(proto=proto):
                port = self.cli.port("s-%s-allow" % proto)
                rc, sha, n, err = h.curl_sha256(
                    ["--socks5-hostname", "127.0.0.1:%d" % port,
                     self.origin.url("/bytes?n=1000&seed=allow")])
                self.assertEqual((rc, n, sha), (0, 1000, h.expected_sha256(1000, "allow")), err)
                # Outside the allow list: 127.0.0.3 is loopback but not 127.0.0.1.
                self.assertEqual(self.rep("s-%s-allow" % proto, "127.0.0.3"), 0x02)

    def test_udp_defaults_refuse_loopback(self):
        for proto in ("jp", "ws"):
            with self.subTest(proto=proto):
                before = len(self.echo.received)
                got = socks_udp(self, self.cli.port("s-%s-def" % proto), "127.0.0.1",
                                self.echo.port, b"nope", expect_reply=False, timeout=2)
                self.assertIsNone(got)
                self.assertEqual(len(self.echo.received), before,
                                 "a datagram reached the server's loopback")
        self.assertTrue(self.srv.wait_log(r"(association \d+: destination|UDP destination) "
                                          r"127\.0\.0\.1:\d+ refused by the server's rules"))

    def test_udp_allowed_and_listener_rules_on_tunnel_route(self):
        for proto in ("jp", "ws"):
            with self.subTest(proto=proto):
                port = self.cli.port("s-%s-allow" % proto)
                self.assertEqual(socks_udp(self, port, "127.0.0.1", self.echo.port, b"hi-" +
                                           proto.encode(), expect_reply=True), b"hi-" +
                                 proto.encode())
                # A name is resolved by the server, then checked: allowed here.
                self.assertEqual(socks_udp(self, port, "localhost", self.echo.port, b"name-" +
                                           proto.encode(), expect_reply=True), b"name-" +
                                 proto.encode())
                # The client's listener denies 127.0.0.2: dropped before the tunnel.
                before = len(self.echo2.received)
                self.assertIsNone(socks_udp(self, port, "127.0.0.2", self.echo2.port, b"no",
                                            expect_reply=False, timeout=2))
                self.assertEqual(len(self.echo2.received), before)

    def test_jproxy_udp_local_port_is_not_the_clients_choice(self):
        if not jb.have_openssl():
            self.skipTest("openssl CLI needed for the raw client")
        with open(self.key, "rb") as f:
            der, token = jb.parse_ksf(f.read())
        der_path = os.path.join(self.tmp, "raw.der")
        with open(der_path, "wb") as f:
            f.write(der)
        # A free UDP port the client will ask for.
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("0.0.0.0", 0))
        want = probe.getsockname()[1]
        probe.close()
        raw = jb.RawJp(self.srv.server_port("jp-allow"))
        with raw:
            raw.sock.sendall(jb.MAGIC + bytes([3, JP_MINOR_TUNNELD]))
            self.assertEqual(h.recv_exact(raw.sock, 7), jb.MAGIC + bytes([JP_MINOR_TUNNELD]))
            raw.sock.sendall(token)
            self.assertEqual(h.recv_exact(raw.sock, 1), b"\x00")
            raw.key = jb.rsa_decrypt(der_path, h.recv_exact(raw.sock, 256))
            raw.send(struct.pack("!BHHHBB", KIND_UDP_ASSOC, 7, want, self.echo.port, 1, 4)
                     + socket.inet_aton("127.0.0.1"))
            m = raw.recv()
            self.assertEqual(m[0], KIND_UDP_ASSOC)
            cid, status, port = struct.unpack("!HBH", m[1:6])
            self.assertEqual((cid, status), (7, 0))
            self.assertNotEqual(port, want, "the server bound the port the client chose")
            self.assertNotEqual(port, 0)


if __name__ == "__main__":
    unittest.main()
