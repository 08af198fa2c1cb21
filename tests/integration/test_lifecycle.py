"""Connection lifecycle: half-close, idle and linger timeouts, SIGTERM drain,
max_connections, EMFILE handling, and the config checker CLI."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402


class HalfCloseAndTimeouts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo = h.TcpEcho()
        cls.sink = h.TcpSink()
        cls.greeter = h.TcpGreeter(b"greeting-then-fin\n")
        cfg = h.make_config([{"name": "socks", "type": "socks5"}],
                            limits={"idle_timeout": "1s", "linger": "5s"})
        cls.d = h.Daemon(cfg)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            for s in (cls.echo, cls.sink, cls.greeter):
                s.close()

    def test_client_half_close(self):
        s = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.sink.port)
        cport = s.getsockname()[1]
        with s:
            payload = os.urandom(200000)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            reply, how = h.recv_until_eof(s, h.scaled(5))
        import hashlib
        self.assertEqual(how, "eof")
        self.assertEqual(reply, b"%d %s\n" % (len(payload), hashlib.sha256(payload).hexdigest().encode()))
        ln = self.d.wait_conn_line(cport)
        self.assertEqual(ln["end"], "done")
        self.assertEqual(int(ln["up"]), len(payload))
        self.assertEqual(int(ln["down"]), len(reply))

    def test_target_half_close(self):
        """The target sends and shuts down first; the client still sends."""
        s = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.greeter.port)
        with s:
            got, how = h.recv_until_eof(s, h.scaled(3))
            self.assertEqual((got, how), (b"greeting-then-fin\n", "eof"))
            payload = os.urandom(100000)
            s.sendall(payload)   # must still reach the target after its FIN
            s.shutdown(socket.SHUT_WR)
            # the daemon closes the connection once both sides are done
            self.assertIsNotNone(h.wait_closed(s, h.scaled(3)))
        import hashlib
        for _ in range(int(30 * h.SLOW)):
            if self.greeter.results:
                break
            time.sleep(0.1)
        self.assertEqual(self.greeter.results[-1], (len(payload), hashlib.sha256(payload).hexdigest()))

    def test_idle_timeout(self):
        s = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.echo.port)
        cport = s.getsockname()[1]
        with s:
            s.sendall(b"ping")
            self.assertEqual(h.recv_exact(s, 4), b"ping")
            t0 = time.monotonic()
            el = h.wait_closed(s, h.scaled(6))
        self.assertIsNotNone(el, "idle connection was not closed")
        self.assertGreater(el, 0.7)
        self.assertLess(el, 1.0 + h.scaled(2.5))
        ln = self.d.wait_conn_line(cport)
        self.assertEqual(ln["end"], "idle-timeout")
        del t0

    def test_active_connection_not_idle(self):
        s = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.echo.port)
        with s:
            t0 = time.monotonic()
            for i in range(10):          # 10 x 0.3 s = 3 s > idle_timeout, always active
                s.sendall(b"tick%d" % i)
                self.assertEqual(h.recv_exact(s, 5), b"tick%d" % i)
                time.sleep(0.3)
            self.assertGreater(time.monotonic() - t0, 2.5)

    def test_idle_timeout_one_direction_active(self):
        """Traffic in one direction only (client -> sink, every 0.3 s for 3 s)
        keeps the connection from idling out."""
        s = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.sink.port)
        with s:
            for i in range(10):
                s.sendall(b"x" * 100)
                time.sleep(0.3)
            s.shutdown(socket.SHUT_WR)
            reply, how = h.recv_until_eof(s, h.scaled(3))
        self.assertEqual(how, "eof")
        self.assertTrue(reply.startswith(b"1000 "), reply)


class Linger(unittest.TestCase):
    def test_linger_timeout(self):
        """Client FIN, the target never answers nor closes: linger ends it."""
        with h.TcpSink(reply_on_eof=False, hold_after_eof=30) as silent:
            d = h.Daemon(h.make_config([{"name": "socks", "type": "socks5"}],
                                       limits={"idle_timeout": "60s", "linger": "1s"}))
            try:
                s = h.socks5_open(d.port("socks"), "127.0.0.1", silent.port)
                cport = s.getsockname()[1]
                with s:
                    s.sendall(b"data then FIN")
                    s.shutdown(socket.SHUT_WR)
                    el = h.wait_closed(s, h.scaled(6))
                self.assertIsNotNone(el, "half-closed connection never closed")
                self.assertGreater(el, 0.7)
                self.assertLess(el, 1.0 + h.scaled(2.5))
                ln = d.wait_conn_line(cport)
                self.assertEqual(ln["end"], "linger-timeout")
                self.assertEqual(int(ln["up"]), 13)
            finally:
                d.stop()


class SigtermDrain(unittest.TestCase):
    def setUp(self):
        self.echo = h.TcpEcho()

    def tearDown(self):
        self.echo.close()

    def test_sigterm_drains_then_closes(self):
        cfg = h.make_config([{"name": "socks", "type": "socks5"}],
                            limits={"drain_timeout": "3s", "idle_timeout": "60s"})
        d = h.Daemon(cfg)
        try:
            s = h.socks5_open(d.port("socks"), "127.0.0.1", self.echo.port)
            cport = s.getsockname()[1]
            s.sendall(b"before")
            self.assertEqual(h.recv_exact(s, 6), b"before")
            t0 = time.monotonic()
            d.signal(signal.SIGTERM)
            time.sleep(0.3)
            # new connections are refused right away
            with self.assertRaises(ConnectionRefusedError):
                c = h.tcp_connect(d.port("socks"), timeout=2)
                c.close()
            # the open connection keeps working
            for i in range(3):
                s.sendall(b"during%d" % i)
                self.assertEqual(h.recv_exact(s, 7), b"during%d" % i)
                time.sleep(0.3)
            self.assertTrue(d.alive(), "daemon exited before drain_timeout with a live connection")
            # after drain_timeout the connection is closed and the daemon exits 0
            el = h.wait_closed(s, h.scaled(3 + 3))
            self.assertIsNotNone(el, "connection not closed after drain_timeout")
            s.close()
            rc = d.proc.wait(timeout=h.scaled(5))
            total = time.monotonic() - t0
            self.assertEqual(rc, 0)
            self.assertGreater(total, 2.5)
            self.assertLess(total, 3 + h.scaled(2))
            text = d.log_text()
            self.assertIn("shutdown complete", text)
            ln = [x for x in d.conn_lines() if x["client"] == "127.0.0.1:%d" % cport]
            self.assertEqual(len(ln), 1, "one closed line for the drained connection")
            self.assertEqual(ln[0]["end"], "shutdown")
        finally:
            d.stop()

    def test_sigterm_idle_exits_fast(self):
        d = h.Daemon(h.make_config([{"name": "socks", "type": "socks5"}],
                                   limits={"drain_timeout": "10s"}))
        try:
            t0 = time.monotonic()
            rc = d.terminate(timeout=10)
            self.assertEqual(rc, 0)
            self.assertLess(time.monotonic() - t0, h.scaled(2),
                            "with no connections SIGTERM should not wait for drain_timeout")
            self.assertIn("shutdown complete", d.log_text())
        finally:
            d.stop()

    def test_sigterm_connection_finishing_during_drain(self):
        """A connection that ends by itself during the drain lets the daemon
        exit before drain_timeout."""
        d = h.Daemon(h.make_config([{"name": "socks", "type": "socks5"}],
                                   limits={"drain_timeout": "10s"}))
        try:
            s = h.socks5_open(d.port("socks"), "127.0.0.1", self.echo.port)
            d.signal(signal.SIGTERM)
            time.sleep(0.3)
            s.sendall(b"last")
            self.assertEqual(h.recv_exact(s, 4), b"last")
            s.close()
            t0 = time.monotonic()
            rc = d.proc.wait(timeout=h.scaled(5))
            self.assertEqual(rc, 0)
            self.assertLess(time.monotonic() - t0, h.scaled(3))
        finally:
            d.stop()


class MaxConnections(unittest.TestCase):
    def test_fourth_waits_for_a_slot(self):
        with h.TcpEcho() as echo:
            d = h.Daemon(h.make_config([{"name": "socks", "type": "socks5"}],
                                       limits={"max_connections": 3, "idle_timeout": "60s",
                                               "handshake_timeout": "30s"}))
            try:
                first = [h.socks5_open(d.port("socks"), "127.0.0.1", echo.port) for _ in range(3)]
                for i, s in enumerate(first):
                    s.sendall(b"c%d" % i)
                    self.assertEqual(h.recv_exact(s, 2), b"c%d" % i)
                fourth = h.tcp_connect(d.port("socks"), timeout=5)
                fourth.sendall(b"\x05\x01\x00")
                fourth.settimeout(1.0)
                with self.assertRaises(socket.timeout, msg="4th connection served over the limit"):
                    fourth.recv(2)
                self.assertEqual(echo.accepted, 3)
                first[0].close()
                fourth.settimeout(h.scaled(5))
                self.assertEqual(h.recv_exact(fourth, 2), b"\x05\x00",
                                 "4th connection not served after a slot freed")
                rep, _, _ = h.socks_request(fourth, 1, "127.0.0.1", echo.port)
                self.assertEqual(rep, 0)
                fourth.sendall(b"four")
                self.assertEqual(h.recv_exact(fourth, 4), b"four")
                for s in first[1:] + [fourth]:
                    s.close()
            finally:
                d.stop()


class FdExhaustion(unittest.TestCase):
    def test_emfile_pauses_and_recovers(self):
        with h.TcpEcho() as echo:
            d = h.Daemon(h.make_config([{"name": "socks", "type": "socks5"}],
                                       limits={"idle_timeout": "60s", "handshake_timeout": "60s"}),
                         rlimit_nofile=40)
            clients = []
            try:
                served, pending = [], []
                for i in range(40):
                    c = h.tcp_connect(d.port("socks"), timeout=5)
                    clients.append(c)
                    c.sendall(b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01"
                              + echo.port.to_bytes(2, "big"))
                    if pending:
                        pending.append(c)
                        continue
                    c.settimeout(1.0 * h.SLOW)
                    try:
                        head = h.recv_exact(c, 2 + 10)
                    except socket.timeout:
                        pending.append(c)
                        continue
                    except (EOFError, ConnectionResetError):
                        continue  # refused for lack of fds: acceptable
                    if head[:2] == b"\x05\x00" and head[3] == 0:
                        served.append(c)
                self.assertTrue(served, "no connection was served at all")
                self.assertTrue(pending, "40 fds were never exhausted (%d served)" % len(served))
                # the exhaustion is logged, once per episode rather than per attempt
                d.wait_log(r"too many open files", timeout=5)
                # no busy loop while saturated
                time.sleep(0.5)
                cpu0 = d.cpu_seconds()
                time.sleep(2.0)
                cpu = d.cpu_seconds() - cpu0
                self.assertLess(cpu, 0.5, "daemon burnt %.2fs CPU in 2s while out of fds" % cpu)
                n_lines = len(re.findall(r"too many open files", d.log_text()))
                self.assertLess(n_lines, 10, "EMFILE logged %d times" % n_lines)
                # served connections still relay
                for s in served[:3]:
                    s.settimeout(h.scaled(5))
                    s.sendall(b"ok?")
                    self.assertEqual(h.recv_exact(s, 3), b"ok?")
                # free the fds: the pending connections get served
                for s in served:
                    s.close()
                got = 0
                for c in pending[:10]:
                    c.settimeout(h.scaled(5))
                    head = h.recv_exact(c, 12)
                    self.assertEqual(head[:4], b"\x05\x00\x05\x00", "pending connection not served")
                    c.sendall(b"late")
                    self.assertEqual(h.recv_exact(c, 4), b"late")
                    got += 1
                    c.close()
                self.assertGreater(got, 0)
                for c in clients:
                    c.close()
                # and after everything is closed a new connection succeeds
                time.sleep(0.5)
                s = h.socks5_open(d.port("socks"), "127.0.0.1", echo.port, timeout=h.scaled(5))
                s.sendall(b"fresh")
                self.assertEqual(h.recv_exact(s, 5), b"fresh")
                s.close()
                self.assertTrue(d.alive())
            finally:
                for c in clients:
                    c.close()
                d.stop()


class CheckConfig(unittest.TestCase):
    GOOD = h.make_config([{"name": "socks", "type": "socks5"},
                          {"name": "fwd", "type": "forward", "target": "127.0.0.1:9"}],
                         limits={"idle_timeout": "1s"})

    def _write(self, text):
        import tempfile
        fd, path = tempfile.mkstemp(prefix="tdcheck-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(text.replace("@TMPDIR@", os.path.dirname(path)))
        self.addCleanup(os.unlink, path)
        return path

    def _bad_text(self):
        """Two errors at known lines: an unknown listener type and a bad duration."""
        lines = self.GOOD.splitlines()
        i_type = next(i for i, ln in enumerate(lines) if ln.strip() == "type: socks5")
        lines[i_type] = lines[i_type].replace("socks5", "sock5")
        i_idle = next(i for i, ln in enumerate(lines) if ln.strip().startswith("idle_timeout:"))
        lines[i_idle] = "  idle_timeout: 5 parsecs"
        return "\n".join(lines) + "\n", i_type + 1, i_idle + 1

    def _run(self, argv):
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=h.scaled(20), env=h.curl_env())

    def _tool(self, which, path):
        if which == "tunneld":
            return [h.TUNNELD_BIN, "--check-config", path]
        if not h.TUNNELCTL_BIN or not os.path.exists(h.TUNNELCTL_BIN):
            self.skipTest("TUNNELCTL_BIN not set")
        return [h.TUNNELCTL_BIN, "check-config", path]

    def _valid(self, which):
        path = self._write(self.GOOD)
        argv = self._tool(which, path)
        p = self._run(argv)
        self.assertEqual(p.returncode, 0, "%r: %s" % (argv, p.stderr.decode()))

    def _invalid(self, which):
        text, l_type, l_idle = self._bad_text()
        lines = text.splitlines()
        path = self._write(text)
        argv = self._tool(which, path)
        p = self._run(argv)
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 1, "%r: %s" % (argv, err))
        rx = re.compile(r"^%s:(\d+):(\d+): (\S+): (.+)$" % re.escape(path), re.M)
        found = {int(m.group(1)): (int(m.group(2)), m.group(3)) for m in rx.finditer(err)}
        self.assertIn(l_type, found, "%r: no error for line %d in:\n%s" % (argv, l_type, err))
        self.assertIn(l_idle, found, "%r: no error for line %d (all errors must be reported):\n%s"
                      % (argv, l_idle, err))
        self.assertIn("type", found[l_type][1])
        self.assertIn("listeners", found[l_type][1])
        self.assertIn("idle_timeout", found[l_idle][1])
        for ln in (l_type, l_idle):
            text_ln = lines[ln - 1]
            key_col = len(text_ln) - len(text_ln.lstrip()) + 1
            val_col = text_ln.index(": ") + 3
            self.assertIn(found[ln][0], (key_col, val_col),
                          "column of %r should point at the key or the value" % text_ln)

    def test_valid_tunneld(self):
        self._valid("tunneld")

    def test_valid_tunnelctl(self):
        self._valid("tunnelctl")

    def test_invalid_tunneld(self):
        self._invalid("tunneld")

    def test_invalid_tunnelctl(self):
        self._invalid("tunnelctl")

    def test_daemon_refuses_bad_config(self):
        text, _, _ = self._bad_text()
        path = self._write(text)
        p = self._run([h.TUNNELD_BIN, "--config", path])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(path + ":", p.stderr.decode("utf-8", "replace"))

    def test_version(self):
        for flag in ("--version", "-V"):
            p = self._run([h.TUNNELD_BIN, flag])
            self.assertEqual(p.returncode, 0)
            # One whole line on stdout, so that scripts and shells see it.
            self.assertRegex(p.stdout.decode(), r"\Atunneld \d+\.\d+\.\d+\n\Z")


if __name__ == "__main__":
    h.main()
