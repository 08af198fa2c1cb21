#!/usr/bin/env python3
"""The README's quickstart config works as shipped: every listener in
docs/examples/quickstart.yaml serves curl, including the wstan client and
server pair on loopback.  Only the ports are moved (to free ones), so that
the test never collides with a real tunneld on this machine."""
import os
import re
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

QUICKSTART = os.path.join(h.SOURCE_DIR or os.path.join(os.path.dirname(__file__), "..", ".."),
                          "docs", "examples", "quickstart.yaml")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QuickstartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        with open(QUICKSTART) as f:
            text = f.read()
        # Each distinct 127.0.0.1:PORT gets one free port, everywhere it
        # appears (the tunnel's url and the server's listen must agree).
        ports = sorted(set(re.findall(r"127\.0\.0\.1:(\d+)", text)))
        cls.moved = {p: free_port() for p in ports}
        for old, new in cls.moved.items():
            text = re.sub(r"127\.0\.0\.1:%s\b" % old, "127.0.0.1:%d" % new, text)
        # Its control socket and state live beside the build; here, in the
        # test's directory (which the daemon makes, as it would the build's).
        assert "../../build/quickstart/" in text
        text = text.replace("../../build/quickstart/", "@TMPDIR@/qs/")
        cls.origin = h.HttpOrigin()
        cls.d = h.Daemon(text)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            cls.origin.close()

    def fetch(self, args, n, seed):
        rc, sha, got, err = h.curl_sha256(
            args + [self.origin.url("/bytes?n=%d&seed=%s" % (n, seed))], timeout=30)
        self.assertEqual(rc, 0, err)
        self.assertEqual((got, sha), (n, h.expected_sha256(n, seed)))

    def test_every_listener_serves(self):
        names = set(self.d.ports)
        self.assertIn("local", names)
        self.assertTrue(self.d.server_ports, "the quickstart has a tunnel server")
        for name, port in sorted(self.d.ports.items()):
            with self.subTest(listener=name):
                self.fetch(["--socks5-hostname", "127.0.0.1:%d" % port]
                           if name != "http" else ["-x", "http://127.0.0.1:%d" % port],
                           100000, "qs-" + name)

    def test_tunnelctl_works_on_it(self):
        p = subprocess.run([h.TUNNELCTL_BIN, "--config", self.d.config_path, "--json", "status"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('"wstan-in"', p.stdout.decode())
        self.assertTrue(os.path.exists(os.path.join(self.d.tmpdir, "qs", "control.sock")))

    def test_tunnel_route_really_crosses_the_server(self):
        port = self.d.port("via-wstan")
        self.fetch(["-x", "http://127.0.0.1:%d" % port], 5000, "qs-route")
        self.d.wait_log(r"\[conn\] #\d+ closed listener=via-wstan \S+ \S+ route=loop up=\d+ "
                        r"down=[1-9]\d* ", timeout=5)


class ExamplesTest(unittest.TestCase):
    def test_every_example_config_is_valid(self):
        """Each docs/examples/*.yaml passes both validators as shipped."""
        h.require_binaries()
        d = os.path.dirname(QUICKSTART)
        files = sorted(f for f in os.listdir(d) if f.endswith(".yaml"))
        self.assertGreaterEqual(len(files), 3)
        for f in files:
            for argv in ([h.TUNNELD_BIN, "--check-config"], [h.TUNNELCTL_BIN, "check-config"]):
                with self.subTest(file=f, tool=os.path.basename(argv[0])):
                    p = subprocess.run(argv + [os.path.join(d, f)], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, timeout=20)
                    self.assertEqual(p.returncode, 0, p.stdout.decode("utf-8", "replace"))


if __name__ == "__main__":
    unittest.main()
