"""SOCKS5 UDP ASSOCIATE on the direct route."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402


class UdpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.uecho = h.UdpEcho()
        cfg = h.make_config([{"name": "socks", "type": "socks5"}],
                            limits={"udp_timeout": "30s", "idle_timeout": "30s"})
        cls.d = h.Daemon(cfg)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            cls.uecho.close()

    def associate(self, family=socket.AF_INET):
        """Returns (control tcp socket, client udp socket, relay (host, port))."""
        u = socket.socket(family, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0) if family == socket.AF_INET else ("::1", 0))
        u.settimeout(h.scaled(3))
        c = h.tcp_connect(self.d.port("socks"))
        self.assertEqual(h.socks_greet(c, (0,)), 0)
        uh, up = u.getsockname()[:2]
        rep, bh, bp = h.socks_request(c, h.SOCKS_CMD_UDP, uh, up)
        self.assertEqual(rep, 0, "UDP ASSOCIATE refused")
        self.assertNotEqual(bp, 0, "relay port 0")
        if bh in ("0.0.0.0", "::"):
            bh = "127.0.0.1"
        self.assertIn(bh, ("127.0.0.1", "::1"), "relay address should be the loopback")
        return c, u, (bh, bp)

    def roundtrip(self, u, relay, host, port, payload):
        u.sendto(h.udp_encode(host, port, payload), relay)
        data, src = u.recvfrom(65535)
        self.assertEqual(src[:2], relay, "reply must come from the relay address")
        return h.udp_decode(data)

    def expect_no_reply(self, u, timeout=0.5):
        u.settimeout(timeout)
        try:
            data, _ = u.recvfrom(65535)
        except socket.timeout:
            return
        except ConnectionRefusedError:
            return
        finally:
            u.settimeout(h.scaled(3))
        self.fail("unexpected datagram %r" % data[:40])

    def test_roundtrip_ipv4(self):
        c, u, relay = self.associate()
        with c, u:
            before = len(self.uecho.received)
            for i in range(5):
                payload = b"dgram-%d-" % i + os.urandom(32) * (i + 1)
                frag, host, port, data = self.roundtrip(u, relay, "127.0.0.1", self.uecho.port,
                                                        payload)
                self.assertEqual(frag, 0)
                self.assertEqual((host, port), ("127.0.0.1", self.uecho.port),
                                 "reply header must carry the source address")
                self.assertEqual(data, payload)
            # the echo server saw the datagrams from the daemon, not from us
            senders = {a for a, _ in self.uecho.received[before:]}
            self.assertEqual(len(self.uecho.received) - before, 5)
            self.assertNotIn(u.getsockname()[:2], senders)

    def test_replies_only_from_destinations_the_client_used(self):
        """A host the client never sent to cannot reach it through the relay,
        even knowing the daemon's outbound port."""
        c, u, relay = self.associate()
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind(("127.0.0.1", 0))
        with c, u, stranger:
            before = len(self.uecho.received)
            self.roundtrip(u, relay, "127.0.0.1", self.uecho.port, b"hello")
            outbound = self.uecho.received[before][0]  # the daemon's outbound socket
            stranger.sendto(b"unsolicited", outbound)
            self.expect_no_reply(u, timeout=1.0)
            # The echo still answers: its replies are from a known destination.
            self.assertEqual(self.roundtrip(u, relay, "127.0.0.1", self.uecho.port, b"again")[3],
                             b"again")

    def test_large_datagram(self):
        c, u, relay = self.associate()
        with c, u:
            payload = os.urandom(8000)
            _, host, port, data = self.roundtrip(u, relay, "127.0.0.1", self.uecho.port, payload)
            self.assertEqual(data, payload)

    def test_domain_target(self):
        c, u, relay = self.associate()
        with c, u:
            frag, host, port, data = self.roundtrip(u, relay, "localhost", self.uecho.port,
                                                    b"via-domain")
            self.assertEqual(frag, 0)
            self.assertEqual(data, b"via-domain")
            self.assertEqual(port, self.uecho.port)
            self.assertIn(host, ("127.0.0.1", "localhost"))

    def test_frag_dropped(self):
        c, u, relay = self.associate()
        with c, u:
            before = len(self.uecho.received)
            u.sendto(h.udp_encode("127.0.0.1", self.uecho.port, b"fragment-1", frag=1), relay)
            u.sendto(h.udp_encode("127.0.0.1", self.uecho.port, b"fragment-2", frag=0x81), relay)
            self.expect_no_reply(u, 0.5)
            self.assertEqual([d for _, d in self.uecho.received[before:]], [],
                             "fragmented datagram was relayed")
            # the association itself still works
            _, _, _, data = self.roundtrip(u, relay, "127.0.0.1", self.uecho.port, b"after-frag")
            self.assertEqual(data, b"after-frag")

    def test_association_ends_with_control_connection(self):
        c, u, relay = self.associate()
        with u:
            _, _, _, data = self.roundtrip(u, relay, "127.0.0.1", self.uecho.port, b"alive")
            self.assertEqual(data, b"alive")
            c.close()
            time.sleep(0.5 * h.SLOW)  # let the daemon see the EOF
            before = len(self.uecho.received)
            try:
                u.sendto(h.udp_encode("127.0.0.1", self.uecho.port, b"after-close"), relay)
            except ConnectionRefusedError:
                pass
            self.expect_no_reply(u, 1.0)
            time.sleep(0.2)
            self.assertNotIn(b"after-close", [d for _, d in self.uecho.received[before:]],
                             "relay still relays after its control connection closed")

    def test_two_associations_independent(self):
        c1, u1, r1 = self.associate()
        c2, u2, r2 = self.associate()
        with c1, u1, c2, u2:
            self.assertNotEqual(r1, r2)
            _, _, _, d1 = self.roundtrip(u1, r1, "127.0.0.1", self.uecho.port, b"one")
            _, _, _, d2 = self.roundtrip(u2, r2, "127.0.0.1", self.uecho.port, b"two")
            self.assertEqual((d1, d2), (b"one", b"two"))
            self.expect_no_reply(u1, 0.3)  # u1 got nothing of u2's traffic

    def test_bad_header_ignored(self):
        c, u, relay = self.associate()
        with c, u:
            u.sendto(b"\x00\x00\x00\x09garbage", relay)     # bad ATYP
            u.sendto(b"\x00", relay)                         # runt
            u.sendto(b"\x00\x00\x00\x03\x20short", relay)   # truncated domain
            self.expect_no_reply(u, 0.3)
            _, _, _, data = self.roundtrip(u, relay, "127.0.0.1", self.uecho.port, b"still-ok")
            self.assertEqual(data, b"still-ok")
        self.assertTrue(self.d.alive())


if __name__ == "__main__":
    h.main()
