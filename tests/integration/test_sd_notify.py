"""The service-manager notifications (sd_notify(3), daemon/platform/notify_posix.c):
the test owns the AF_UNIX datagram socket that $NOTIFY_SOCKET names, as
systemd would, and checks what tunneld sends on it:

* READY=1 comes once, first, and only when every listener and every server
  accepts connections (each one is probed the moment READY arrives);
* nothing comes when start-up fails (a server's port is taken);
* STOPPING=1 comes when SIGTERM starts the drain, while a connection is
  still open;
* the abstract-namespace form (NOTIFY_SOCKET=@name) works too;
* a NOTIFY_SOCKET that leads nowhere changes nothing but one debug line;
* RELOADING=1 then READY=1 around a reload by SIGHUP, and around a reload
  that fails (the service manager must not be left "reloading").  Skipped
  while the daemon logs that SIGHUP is not supported."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

WSTAN_KEY = "AAECAwQFBgcICQoLDA0ODw=="
SIGHUP_UNSUPPORTED_RE = re.compile(r"SIGHUP ignored|reload is not supported", re.I)


def parse_state(raw):
    """b"READY=1\\nSTATUS=x" -> {"READY": "1", "STATUS": "x"}."""
    out = {}
    for line in raw.decode("utf-8", "replace").split("\n"):
        if line:
            k, _, v = line.partition("=")
            out[k] = v
    return out


def make_cert(cert, key):
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if p.returncode != 0:
        raise AssertionError("openssl req: %r" % p.stderr)


def can_connect(port, timeout=1.0):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return False
    s.close()
    return True


def wait_exit(d, timeout=15.0):
    """The exit status of a daemon already told to stop.  (Not terminate():
    a second SIGTERM that lands after "shutdown complete", once the signal
    handlers are gone, would kill it.)"""
    return d.proc.wait(timeout=h.scaled(timeout))


def free_ports(n):
    ports = set()
    while len(ports) < n:
        ports.add(h.closed_port())
    return sorted(ports)


class NotifySocket:
    """The service manager's end: a datagram socket and a thread that
    records each message.  on_ready(fields) runs in that thread the moment a
    message with READY=1 arrives, before the next one is read."""

    def __init__(self, abstract=False, on_ready=None):
        self.dir = tempfile.mkdtemp(prefix="tunneld-notify-")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        if abstract:
            name = "tunneld-test-notify-%d-%s" % (os.getpid(), os.urandom(4).hex())
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            path = os.path.join(self.dir, "notify.sock")
            self.sock.bind(path)
            self.env_value = path
        self.sock.settimeout(0.1)
        self.on_ready = on_ready
        self.msgs = []  # (monotonic time, fields)
        self.errors = []
        self.cond = threading.Condition()
        self._closed = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def env(self):
        return {"NOTIFY_SOCKET": self.env_value}

    def _run(self):
        while not self._closed:
            try:
                raw = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = parse_state(raw)
            if fields.get("READY") == "1" and self.on_ready:
                try:
                    self.on_ready(fields)
                except Exception as e:  # reported by the test, not lost in a thread
                    self.errors.append(e)
            with self.cond:
                self.msgs.append((time.monotonic(), fields))
                self.cond.notify_all()

    def wait_for(self, key, count=1, timeout=10.0):
        """Wait until count messages carry key=1; return all messages."""
        deadline = time.monotonic() + h.scaled(timeout)
        with self.cond:
            while sum(1 for _, m in self.msgs if m.get(key) == "1") < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s=1 (x%d) within %.1fs; got %r"
                                         % (key, count, h.scaled(timeout), self.keys()))
                self.cond.wait(left)
            return list(self.msgs)

    def keys(self):
        """The messages so far, each as its sorted VAR=1 flags (STATUS left out)."""
        with self.cond:
            return [sorted(k for k, v in m.items() if v == "1") for _, m in self.msgs]

    def close(self):
        self._closed = True
        self._t.join(timeout=5)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class SdNotifyTest(unittest.TestCase):
    def setUp(self):
        self.closers = []
        self.daemons = []

    def tearDown(self):
        h.stop_all(self.daemons, self.closers)

    def notify_socket(self, **kw):
        ns = NotifySocket(**kw)
        self.closers.append(ns)
        return ns

    def start(self, cfg, ns, **kw):
        d = h.Daemon(cfg, env=ns.env(), **kw)
        self.daemons.append(d)
        return d

    def full_config(self, ports, echo_port, tls=None, jproxy_users=None):
        """Five listeners (one through a wstan tunnel), two or three servers,
        all on the given ports, in this order."""
        lp, sp = ports[:5], ports[5:]
        listeners = [
            {"name": "mixed", "type": "mixed", "listen": "127.0.0.1:%d" % lp[0]},
            {"name": "socks", "type": "socks5", "listen": "127.0.0.1:%d" % lp[1]},
            {"name": "http", "type": "http", "listen": "127.0.0.1:%d" % lp[2]},
            {"name": "fwd", "type": "forward", "listen": "127.0.0.1:%d" % lp[3],
             "target": "127.0.0.1:%d" % echo_port},
            {"name": "via-ws", "type": "socks5", "listen": "127.0.0.1:%d" % lp[4],
             "route": "ws"},
        ]
        servers = [{"name": "ws-in", "protocol": "wstan", "listen": "127.0.0.1:%d" % sp[0],
                    "keys": [WSTAN_KEY]}]
        if jproxy_users:
            servers.append({"name": "jp-in", "protocol": "jproxy",
                            "listen": "127.0.0.1:%d" % sp[1], "users_dir": jproxy_users})
        if tls:
            servers.append({"name": "wss-in", "protocol": "wstan",
                            "listen": "127.0.0.1:%d" % sp[2], "keys": [WSTAN_KEY],
                            "tls": {"cert": tls[0], "key": tls[1]}})
        tunnels = [{"name": "ws", "protocol": "wstan", "url": "ws://127.0.0.1:%d/" % sp[0],
                    "key": WSTAN_KEY}]
        return h.make_config(listeners, servers=servers, tunnels=tunnels,
                             limits={"drain_timeout": "5s"})

    def test_ready_only_when_everything_accepts(self):
        tmp = tempfile.mkdtemp(prefix="tunneld-notify-keys-")
        self.addCleanup(shutil.rmtree, tmp, True)
        users = os.path.join(tmp, "users")
        os.makedirs(users)
        h.jproxy_keygen("notify", os.path.join(tmp, "key.dat"), users)
        tls = None
        if shutil.which("openssl"):
            tls = (os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem"))
            make_cert(*tls)
        ports = free_ports(8)
        if not tls:
            ports = ports[:7]
        echo = h.TcpEcho()
        self.closers.append(echo)

        probes = {}

        def on_ready(fields):
            # Right now, before anything else: every port must accept.
            for p in ports:
                probes[p] = can_connect(p)

        ns = self.notify_socket(on_ready=on_ready)
        d = self.start(self.full_config(ports, echo.port, tls=tls, jproxy_users=users), ns)
        msgs = ns.wait_for("READY")
        self.assertEqual(ns.errors, [])
        self.assertEqual(ns.keys()[0], ["READY"], "READY=1 must be the first message")
        self.assertEqual(sum(1 for _, m in msgs if m.get("READY") == "1"), 1)
        self.assertIn("STATUS", msgs[0][1])
        refused = [p for p in ports if not probes.get(p)]
        self.assertEqual(refused, [], "ports not accepting when READY=1 arrived "
                         "(all: %r)" % ports)
        # Every one of them was logged as bound, and the daemon is not
        # reporting anything else.
        text = d.log_text()
        self.assertEqual(len(h.LISTEN_RE.findall(text)), 5)
        self.assertEqual(len(h.SERVER_RE.findall(text)), len(ports) - 5)
        # The forward listener really relays.
        s = h.tcp_connect(d.port("fwd"))
        with s:
            s.sendall(b"ping")
            self.assertEqual(h.recv_exact(s, 4), b"ping")

    def test_no_ready_when_start_fails(self):
        """A server whose port is taken stops start-up after the listeners
        are bound: the service manager must hear nothing."""
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.closers.append(taken)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        cfg = h.make_config([{"name": "socks", "type": "socks5"}],
                            servers=[{"name": "ws-in", "protocol": "wstan",
                                      "listen": "127.0.0.1:%d" % taken.getsockname()[1],
                                      "keys": [WSTAN_KEY]}])
        ns = self.notify_socket()
        made, mkdtemp = [], tempfile.mkdtemp

        def spy(*a, **kw):  # the Daemon's temp dir, to remove it: it never returned
            made.append(mkdtemp(*a, **kw))
            return made[-1]

        with self.assertRaises(h.DaemonError) as ctx, \
                mock.patch.object(tempfile, "mkdtemp", spy):
            h.Daemon(cfg, env=ns.env())
        for d in made:
            shutil.rmtree(d, ignore_errors=True)
        self.assertIn("exited", str(ctx.exception))
        time.sleep(0.3)
        self.assertEqual(ns.keys(), [], "no notification may follow a failed start")

    def test_stopping_on_sigterm_while_draining(self):
        echo = h.TcpEcho()
        self.closers.append(echo)
        ns = self.notify_socket()
        d = self.start(h.make_config([{"name": "socks", "type": "socks5"}],
                                     limits={"drain_timeout": "10s"}), ns)
        ns.wait_for("READY")
        s = h.socks5_open(d.port("socks"), "127.0.0.1", echo.port)
        with s:
            s.sendall(b"x")
            self.assertEqual(h.recv_exact(s, 1), b"x")
            d.signal(signal.SIGTERM)
            msgs = ns.wait_for("STOPPING")
            # The drain has started and the connection is still served.
            self.assertTrue(d.alive(), "STOPPING=1 must come when the drain starts")
            # The listener closes in the same loop turn (libuv closes it in
            # its close phase, just after the datagram left).
            deadline = time.monotonic() + h.scaled(2)
            while can_connect(d.port("socks")) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertFalse(can_connect(d.port("socks")), "the listener is closed")
            s.sendall(b"y")
            self.assertEqual(h.recv_exact(s, 1), b"y")
        self.assertEqual(ns.keys(), [["READY"], ["STOPPING"]])
        self.assertIn("STATUS", msgs[-1][1])
        self.assertEqual(wait_exit(d), 0)

    def test_abstract_socket(self):
        ns = self.notify_socket(abstract=True)
        d = self.start(h.make_config([{"name": "socks", "type": "socks5"}]), ns)
        ns.wait_for("READY")
        d.signal(signal.SIGTERM)
        ns.wait_for("STOPPING")
        self.assertEqual(wait_exit(d), 0)
        self.assertEqual(ns.keys(), [["READY"], ["STOPPING"]])

    def test_unreachable_notify_socket_is_harmless(self):
        tmp = tempfile.mkdtemp(prefix="tunneld-notify-none-")
        self.addCleanup(shutil.rmtree, tmp, True)
        d = h.Daemon(h.make_config([{"name": "socks", "type": "socks5"}], log_level="debug"),
                     env={"NOTIFY_SOCKET": os.path.join(tmp, "nobody-listens")})
        self.daemons.append(d)
        self.assertTrue(can_connect(d.port("socks")))
        self.assertEqual(d.terminate(), 0)
        fails = re.findall(r"service manager notification failed", d.log_text())
        self.assertEqual(len(fails), 1, "logged once, at debug level:\n" + d.log_text())
        self.assertRegex(d.log_text(), r"debug +\[main\] service manager notification failed")

    def test_reloading_then_ready_around_sighup(self):
        """systemd's ExecReload sends SIGHUP; the daemon must answer
        RELOADING=1, then READY=1 once the new config is applied, and READY=1
        also when the new config is refused (the old one stays)."""
        ns = self.notify_socket()
        d = self.start(h.make_config([{"name": "socks", "type": "socks5"}]), ns)
        ns.wait_for("READY")
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + h.scaled(10)
        while ["RELOADING"] not in ns.keys():
            if SIGHUP_UNSUPPORTED_RE.search(d.log_text()):
                self.skipTest("this tunneld does not reload on SIGHUP yet")
            if time.monotonic() > deadline:
                self.fail("no RELOADING=1 within 10s of SIGHUP; got %r" % ns.keys())
            time.sleep(0.05)
        ns.wait_for("READY", count=2)
        self.assertEqual(ns.keys(), [["READY"], ["RELOADING"], ["READY"]])
        self.assertTrue(can_connect(d.port("socks")))

        # A config with an error changes nothing, and still ends the reload.
        with open(d.config_path, "a") as f:
            f.write("no_such_key: 1\n")
        d.signal(signal.SIGHUP)
        ns.wait_for("READY", count=3)
        self.assertEqual(ns.keys(), [["READY"], ["RELOADING"], ["READY"], ["RELOADING"],
                                     ["READY"]])
        self.assertTrue(can_connect(d.port("socks")))
        d.signal(signal.SIGTERM)
        ns.wait_for("STOPPING")
        self.assertEqual(wait_exit(d), 0)


if __name__ == "__main__":
    h.main()
