"""jProxy: one `tunnels:` entry is a set of links (TCP connections to the
server).  max_streams is per link: when every link is full the client opens
another one, so a tunnel holds many more connections than one link may
carry (docs/protocols/jproxy.md, "Limits").

    sockets -> client tunneld (max_streams 4) -> N jproxy links -> server tunneld -> echo

Covers: 4 links for 13 streams held at once, every stream echoing through
its own link; the streams of a full link unharmed when the next opens;
the links reused (no new one) once streams close and new ones come.
"""

import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

PER_LINK = 4
STREAMS = 13  # 4 + 4 + 4 + 1: four links


class JproxyLinksTest(unittest.TestCase):
    def test_links_open_when_full(self):
        h.require_binaries()
        h.raise_nofile_limit()
        tmp = tempfile.mkdtemp(prefix="tunneld-jplinks-")
        echo = h.TcpEcho()
        srv = cli = None
        held = []
        try:
            key = os.path.join(tmp, "key.dat")
            users = os.path.join(tmp, "users")
            h.jproxy_keygen("links", key, users)
            srv = h.Daemon(h.make_config(
                [], limits={"drain_timeout": "2s"},
                servers=[{"name": "jp-in", "protocol": "jproxy", "listen": "127.0.0.1:0",
                          "users_dir": users}]))
            cli = h.Daemon(h.make_config(
                [{"name": "socks", "type": "socks5", "route": "jp"}],
                limits={"connect_timeout": "10s", "drain_timeout": "2s"},
                tunnels=[{"name": "jp", "protocol": "jproxy",
                          "server": "127.0.0.1:%d" % srv.server_port("jp-in"),
                          "key_file": key, "max_streams": PER_LINK}]))
            cli.wait_log(r"tunnel jp up to ", timeout=10)
            port = cli.port("socks")
            for i in range(STREAMS):
                s = h.socks5_open(port, "127.0.0.1", echo.port)
                msg = b"stream-%d" % i
                s.sendall(msg)
                self.assertEqual(h.recv_exact(s, len(msg)), msg)
                held.append(s)
            # Four links: the first and three opened on demand.
            for n in (2, 3, 4):
                cli.wait_log(r"opening link jp#%d" % n, timeout=5)
                cli.wait_log(r"tunnel jp#%d up to " % n, timeout=10)
            self.assertNotRegex(cli.log_text(), r"opening link jp#5")
            # Every stream still works, the first link's included.
            for i, s in enumerate(held):
                msg = b"again-%d" % i
                s.sendall(msg)
                self.assertEqual(h.recv_exact(s, len(msg)), msg)
            # Close the first link's streams: new ones fit there again.
            for s in held[:PER_LINK]:
                s.close()
            held = held[PER_LINK:]
            deadline = time.time() + h.scaled(5)
            fresh = []
            while len(fresh) < PER_LINK and time.time() < deadline:
                try:
                    s = h.socks5_open(port, "127.0.0.1", echo.port)
                except h.SocksError:
                    time.sleep(0.1)
                    continue
                s.sendall(b"fresh")
                self.assertEqual(h.recv_exact(s, 5), b"fresh")
                fresh.append(s)
            held += fresh
            self.assertEqual(len(fresh), PER_LINK)
            self.assertNotRegex(cli.log_text(), r"opening link jp#5")
        finally:
            for s in held:
                s.close()
            h.stop_all((cli, srv), (echo,), (tmp,))


if __name__ == "__main__":
    h.main()
