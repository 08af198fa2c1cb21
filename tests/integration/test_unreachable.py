"""An unreachable network: SOCKS5 reply 0x03 and HTTP 502, logged as
end=unreachable.

The daemon and the client run inside a network namespace that this test
creates with only its loopback up, so a connect to a non-loopback address
fails locally with ENETUNREACH and no packet can leave the machine.  Needs
root and `ip netns`; skipped (exit 77) without them."""

import os
import shutil
import subprocess
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

INNER = "TUNNELD_TEST_IN_NETNS"
TARGET = "10.255.255.1"  # only ever "sent" inside the isolated namespace


class UnreachableTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = h.Daemon(h.make_config([
            {"name": "socks", "type": "socks5"},
            {"name": "http", "type": "http"},
        ]))

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_socks_network_unreachable(self):
        rep, s = h.socks_reply_code(self.d.port("socks"), TARGET, 80)
        s.close()
        self.assertEqual(rep, 0x03)
        self.assertTrue(self.d.wait_log(r"target=%s:80 .*end=unreachable" % TARGET))

    def test_http_502(self):
        s = h.tcp_connect(self.d.port("http"))
        with s:
            s.sendall(b"GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n" % (TARGET.encode(),
                                                                        TARGET.encode()))
            status, _, _, body = h.read_http_response(s)
        self.assertEqual(status, 502)
        self.assertIn(b"unreachable", body)


def run_in_netns():
    """Create a namespace with only lo up and re-run this file inside it."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        print("skipped: needs root and iproute2 (ip netns)")
        return 77
    ns = "tdtest-" + uuid.uuid4().hex[:8]
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        print("skipped: cannot create a network namespace here")
        return 77
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        env = dict(os.environ)
        env[INNER] = "1"
        return subprocess.run(["ip", "netns", "exec", ns, sys.executable,
                               os.path.abspath(__file__)], env=env).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


if __name__ == "__main__":
    if os.environ.get(INNER) != "1":
        sys.exit(run_in_netns())
    unittest.main()
