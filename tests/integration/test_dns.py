"""Name resolution under slow DNS: literal addresses never wait for the
resolver, a slow name is looked up once however many connections wait for
it, and the resolver's threads (limits.resolver_threads) keep a few slow
names from starving the rest.

The test runs inside a network namespace it creates, with its own
/etc/resolv.conf (ip netns exec mounts /etc/netns/NAME/resolv.conf) pointing
at a DNS server of its own on 127.0.0.1:53 that answers "fast.test" at once
and "slow*.test" only after SLOW_S seconds.  Nothing leaves the namespace.
Needs root and `ip netns`; skipped (exit 77) without them."""

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

INNER = "TUNNELD_TEST_DNS_NETNS"
SLOW_S = 4.0
FAST_WITHIN = 1.5  # seconds a connect to a fast or literal target may take here


class FakeDns(threading.Thread):
    """A = 127.0.0.1 for fast.test; slow*.test answered NXDOMAIN after SLOW_S;
    anything else NODATA.  Counts the queries per name."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 53))
        self.sock.settimeout(0.1)
        self.queries = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.later = []  # (due, packet, addr)

    def run(self):
        while not self.stop.is_set():
            now = time.monotonic()
            due = [x for x in self.later if x[0] <= now]
            self.later = [x for x in self.later if x[0] > now]
            for _, pkt, addr in due:
                self.sock.sendto(pkt, addr)
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self.answer(data, addr)
            except (IndexError, struct.error):
                pass

    def answer(self, data, addr):
        tid = struct.unpack("!H", data[:2])[0]
        i, labels = 12, []
        while data[i]:
            n = data[i]
            labels.append(data[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        qtype = struct.unpack("!H", data[i + 1:i + 3])[0]
        q = data[12:i + 5]
        name = ".".join(labels).lower()
        with self.lock:
            self.queries[name] = self.queries.get(name, 0) + 1
        if name.startswith("slow"):
            pkt = struct.pack("!HHHHHH", tid, 0x8183, 1, 0, 0, 0) + q  # NXDOMAIN
            self.later.append((time.monotonic() + SLOW_S, pkt, addr))
            return
        if name == "fast.test" and qtype == 1:
            ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton("127.0.0.1")
            pkt = struct.pack("!HHHHHH", tid, 0x8180, 1, 1, 0, 0) + q + ans
        else:
            pkt = struct.pack("!HHHHHH", tid, 0x8180, 1, 0, 0, 0) + q
        self.sock.sendto(pkt, addr)

    def count(self, name):
        with self.lock:
            return self.queries.get(name, 0)

    def close(self):
        self.stop.set()
        self.join(2)
        self.sock.close()


def socks_start(port, host, dport):
    """Send a SOCKS5 CONNECT and return the socket without waiting."""
    s = h.tcp_connect(port, timeout=5)
    s.sendall(b"\x05\x01\x00")
    s.sendall(b"\x05\x01\x00" + h.socks_encode_addr(host, dport))
    return s


def socks_finish(s, timeout):
    """The CONNECT reply code, or None if none came within timeout."""
    s.settimeout(timeout)
    try:
        head = h.recv_exact(s, 2 + 4)
    except socket.timeout:
        return None
    return head[3]


class SlowDnsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.raise_nofile_limit()
        cls.dns = FakeDns()
        cls.dns.start()
        cls.origin = h.TcpEcho()

    @classmethod
    def tearDownClass(cls):
        cls.dns.close()
        cls.origin.close()

    def daemon(self, **limits):
        lim = {"dns_timeout": "2s", "connect_timeout": "5s", "handshake_timeout": "30s"}
        lim.update({k: str(v) for k, v in limits.items()})
        return h.Daemon(h.make_config([{"name": "socks", "type": "socks5"}], limits=lim))

    def assert_fast(self, port, host, what):
        t0 = time.monotonic()
        s = socks_start(port, host, self.origin.port)
        with s:
            rep = socks_finish(s, h.scaled(FAST_WITHIN))
        self.assertEqual(rep, 0, "%s: reply %r after %.2fs while slow lookups were in flight"
                         % (what, rep, time.monotonic() - t0))

    def test_literal_and_fast_names_are_not_starved(self):
        d = self.daemon()  # default resolver_threads
        slow = []
        try:
            port = d.port("socks")
            self.assert_fast(port, "fast.test", "before")  # warm: the daemon works
            for i in range(8):  # more distinct slow names than libuv's default 4 threads
                slow.append(socks_start(port, "slow%d.test" % i, 80))
            time.sleep(0.3)
            self.assert_fast(port, "127.0.0.1", "a literal IPv4 target")
            self.assert_fast(port, "fast.test", "a fast name")
            # The slow ones fail by their own deadline (limits.dns_timeout), as
            # SOCKS5 "host unreachable".
            for s in slow:
                self.assertEqual(socks_finish(s, h.scaled(5)), 0x04)
        finally:
            for s in slow:
                s.close()
            d.stop()

    def test_one_lookup_per_slow_name(self):
        # libuv lets at most half of its threads (rounded up) resolve names
        # at once: 4 threads, 2 lookups in parallel.
        d = self.daemon(resolver_threads=4)
        slow = []
        try:
            port = d.port("socks")
            before = self.dns.count("slowsame.test")
            for _ in range(20):
                slow.append(socks_start(port, "slowsame.test", 80))
            time.sleep(0.5)
            # 20 waiters share one lookup: the second lookup slot is free.
            self.assert_fast(port, "fast.test", "a fast name beside 20 waits for one slow name")
            self.assert_fast(port, "127.0.0.1", "a literal target")
            for s in slow:
                self.assertEqual(socks_finish(s, h.scaled(5)), 0x04)
            # glibc asks A and AAAA: two queries for the one lookup, not forty.
            self.assertLessEqual(self.dns.count("slowsame.test") - before, 4)
        finally:
            for s in slow:
                s.close()
            d.stop()


def run_in_netns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        print("skipped: needs root and iproute2 (ip netns)")
        return 77
    ns = "tddns-" + uuid.uuid4().hex[:8]
    etc = os.path.join("/etc/netns", ns)
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        print("skipped: cannot create a network namespace here")
        return 77
    try:
        os.makedirs(etc)
        with open(os.path.join(etc, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:%d attempts:1\n" % (SLOW_S * 2))
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        env = dict(os.environ)
        env[INNER] = "1"
        env.pop("UV_THREADPOOL_SIZE", None)
        return subprocess.run(["ip", "netns", "exec", ns, sys.executable,
                               os.path.abspath(__file__)], env=env).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)


if __name__ == "__main__":
    if os.environ.get(INNER) != "1":
        sys.exit(run_in_netns())
    h.require_binaries()
    unittest.main()
