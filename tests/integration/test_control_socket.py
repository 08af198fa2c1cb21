"""The daemon's side of the control plane, spoken to in the raw protocol of
docs/control-protocol.md: the socket's permissions and the peer check, bad
input (unknown commands, malformed, oversized and silent clients), slow
clients that never hold up others, status, stats that match the bytes
sent, conns and kill, reload (by request and by SIGHUP, valid and
invalid), and the Prometheus metrics endpoint."""

import grp
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402


def ctl_raw(path, data, timeout=5.0):
    """Send raw bytes on the control socket; return the bytes of one reply
    (through its blank line), or what came before EOF."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(h.scaled(timeout))
    s.connect(path)
    with s:
        s.sendall(data)
        return read_reply(s)


def read_reply(s):
    buf = b""
    while b"\n\n" not in buf:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    return buf


def parse(reply):
    """-> (status, [(key, value)...]) of one reply."""
    text = reply.decode("utf-8", "replace")
    lines = text.split("\n")
    assert lines[0] == "tunneld-control=1", "bad version line: %r" % text[:80]
    fields = []
    for ln in lines[1:]:
        if ln == "":
            break
        k, _, v = ln.partition("=")
        fields.append((k, v))
    st = dict(fields).get("status")
    return int(st), fields


def ctl(path, command, **kw):
    lines = ["tunneld-control=1", "command=" + command]
    lines += ["%s=%s" % (k, v) for k, v in kw.items()]
    return parse(ctl_raw(path, ("\n".join(lines) + "\n\n").encode()))


def records(fields, key, keys=None):
    """Records starting at key: [{...}, ...]; keys are the reply's record
    keys (docs/control-protocol.md: conns has only conn)."""
    out, cur = [], None
    if keys is None:
        keys = {"conn"} if key == "conn" else {"listener", "tunnel", "server", "user"}
    for k, v in fields:
        if k == key:
            cur = {key: v}
            out.append(cur)
        elif k in keys:
            cur = None
        elif cur is not None:
            cur[k] = v
    return out


PROM_LINE = re.compile(
    r'^(?:# (?:HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*|'
    r'[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)?\})? '
    r'(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|NaN|[+-]Inf))$')


def prom_parse(text):
    """A strict reading of the text format 0.0.4: every line valid, every
    sample's family TYPE-d before it, no family TYPE-d twice."""
    typed, samples = {}, {}
    for ln in text.split("\n"):
        if ln == "":
            continue
        if not PROM_LINE.match(ln):
            raise AssertionError("not a valid exposition line: %r" % ln)
        if ln.startswith("# TYPE "):
            _, _, name, typ = ln.split(" ", 3)
            if name in typed:
                raise AssertionError("TYPE given twice for %s" % name)
            if typ not in ("counter", "gauge", "histogram", "summary", "untyped"):
                raise AssertionError("bad type %r" % typ)
            typed[name] = typ
            continue
        if ln.startswith("#"):
            continue
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", ln).group(0)
        if name not in typed:
            raise AssertionError("sample before its TYPE: %r" % ln)
        key, _, val = ln.rpartition(" ")
        if key in samples:
            raise AssertionError("duplicate sample %r" % key)
        samples[key] = float(val)
    return typed, samples


class ControlSocketTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.require_binaries()
        cls.echo = h.TcpEcho()
        cls.group = grp.getgrgid(os.getgid()).gr_name
        cfg = h.make_config([{"name": "socks", "type": "socks5"}],
                            limits={"idle_timeout": "60s"})
        cfg = cfg.replace('  socket: "@TMPDIR@/control.sock"',
                          '  socket: "@TMPDIR@/control.sock"\n  group: %s' % h._q(cls.group))
        cfg += 'metrics:\n  listen: "127.0.0.1:0"\n'
        cls.d = h.Daemon(cfg)
        cls.sock = os.path.join(cls.d.tmpdir, "control.sock")
        cls.d.wait_log(r"control socket ")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            cls.echo.close()

    def test_socket_mode_and_group(self):
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, grp.getgrnam(self.group).gr_gid)

    def test_status(self):
        st, f = ctl(self.sock, "status")
        self.assertEqual(st, 0)
        d = dict(f)
        self.assertEqual(d["version"], re.search(r"(\d+\.\d+\.\d+)", subprocess.run(
            [h.TUNNELD_BIN, "--version"], stdout=subprocess.PIPE).stdout.decode()).group(1))
        self.assertEqual(int(d["pid"]), self.d.pid)
        self.assertTrue(d["config"].endswith("tunneld.yaml"))
        ls = records(f, "listener")
        self.assertEqual([x["listener"] for x in ls], ["socks"])
        self.assertEqual(ls[0]["listen"], "127.0.0.1:%d" % self.d.port("socks"))
        self.assertEqual(ls[0]["type"], "socks5")

    def test_bad_input_gets_errors_and_the_daemon_serves_on(self):
        st, f = ctl(self.sock, "no-such-command")
        self.assertEqual(st, -1006)
        self.assertIn("unknown command", dict(f)["error"])
        st, f = parse(ctl_raw(self.sock, b"command=status\n\n"))  # no version line
        self.assertEqual(st, -1004)
        st, f = parse(ctl_raw(self.sock, b"tunneld-control=2\ncommand=status\n\n"))
        self.assertEqual(st, -1006)
        self.assertEqual(dict(f)["version"], "1")
        st, _ = parse(ctl_raw(self.sock, b"tunneld-control=1\nBAD KEY\n\n"))
        self.assertEqual(st, -1004)
        # Over 64 KiB without an end: refused and disconnected.
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(h.scaled(5))
        s.connect(self.sock)
        with s:
            try:
                s.sendall(b"tunneld-control=1\ncommand=status\nx=" + b"a" * (70 * 1024))
            except (BrokenPipeError, ConnectionResetError):
                pass
            st, _ = parse(read_reply(s))
            self.assertEqual(st, -1005)
            self.assertIsNotNone(h.wait_closed(s, h.scaled(3)))
        self.assertEqual(ctl(self.sock, "status")[0], 0)

    def test_silent_and_slow_clients_hold_nobody_up(self):
        silent = socket.socket(socket.AF_UNIX)
        silent.connect(self.sock)
        slow = socket.socket(socket.AF_UNIX)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(self.sock)
        try:
            # The slow one asks again and again and never reads.
            slow.sendall(b"tunneld-control=1\ncommand=status\n\n" * 2000)
            t0 = time.monotonic()
            for _ in range(5):
                self.assertEqual(ctl(self.sock, "status")[0], 0)
            self.assertLess(time.monotonic() - t0, h.scaled(3))
            # The silent one is dropped at the idle deadline (10 s).
            self.assertIsNotNone(h.wait_closed(silent, h.scaled(16)),
                                 "a silent control client was never closed")
        finally:
            silent.close()
            slow.close()

    def test_other_uid_is_refused(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to act as another user")
        # The socket's 0660 keeps others out at the file system...
        code = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
                "try:\n s.connect(sys.argv[1])\nexcept PermissionError:\n print('EACCES')\n"
                " sys.exit(0)\n"
                # The daemon answers a refused peer at once and closes, so the
                # request may meet a closed socket.
                "try:\n s.sendall(b'tunneld-control=1\\ncommand=status\\n\\n')\n"
                "except (BrokenPipeError, ConnectionResetError):\n pass\n"
                "print(s.recv(4096).decode())\n")
        def as_nobody():
            return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                   sys.executable, "-c", code, self.sock],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        os.chmod(self.d.tmpdir, 0o755)
        try:
            p = as_nobody()
            self.assertIn("EACCES", p.stdout.decode(), p.stderr.decode())
            # ... and the peer check refuses them even when the file would not.
            os.chmod(self.sock, 0o666)
            p = as_nobody()
            self.assertIn("status=-1018", p.stdout.decode(), p.stderr.decode())
            self.assertTrue(self.d.wait_log(r"refused a control client \(pid \d+ uid 65534"))
        finally:
            os.chmod(self.sock, 0o660)
            os.chmod(self.d.tmpdir, 0o700)
        self.assertEqual(ctl(self.sock, "status")[0], 0)

    def _socks_echo(self, payload):
        s = h.socks5_open(self.d.port("socks"), "127.0.0.1", self.echo.port)
        s.sendall(payload)
        got = h.recv_exact(s, len(payload))
        return s, got

    def test_stats_match_the_bytes_sent(self):
        before = {r["listener"]: r for r in records(ctl(self.sock, "stats")[1], "listener")}
        n = 123457
        payload = os.urandom(n)
        s, got = self._socks_echo(payload)
        s.close()
        self.assertEqual(got, payload)
        self.d.wait_log(r"closed listener=socks .*up=%d down=%d" % (n, n))
        after = {r["listener"]: r for r in records(ctl(self.sock, "stats")[1], "listener")}
        b, a = before["socks"], after["socks"]
        self.assertEqual(int(a["bytes_out"]) - int(b["bytes_out"]), n)
        self.assertEqual(int(a["bytes_in"]) - int(b["bytes_in"]), n)
        self.assertEqual(int(a["conns_total"]) - int(b["conns_total"]), 1)
        # Metrics say the same.
        port = int(self.d.wait_log(r"metrics endpoint \(prometheus\) listening on "
                                   r"127\.0\.0\.1:(\d+)").group(1))
        r = h.run_curl(["http://127.0.0.1:%d/metrics" % port, "-i"])
        head, _, body = r.stdout.decode().partition("\r\n\r\n")
        self.assertIn("Content-Type: text/plain; version=0.0.4", head)
        typed, samples = prom_parse(body)
        self.assertEqual(typed["tunneld_bytes_total"], "counter")
        self.assertEqual(samples['tunneld_bytes_total{kind="listener",name="socks",'
                                 'direction="out"}'], float(a["bytes_out"]))
        self.assertIn('tunneld_build_info{version="', "\n".join(samples))
        self.assertEqual(h.run_curl(["-s", "-o", "/dev/null", "-w", "%{http_code}",
                                     "http://127.0.0.1:%d/" % port], check=False).stdout, b"404")

    def test_conns_and_kill(self):
        s, _ = self._socks_echo(b"hello")
        with s:
            cs = [c for c in records(ctl(self.sock, "conns")[1], "conn")
                  if c.get("target") == "127.0.0.1:%d" % self.echo.port]
            self.assertEqual(len(cs), 1)
            c = cs[0]
            self.assertEqual((c["listener"], c["route"], c["bytes_out"]), ("socks", "direct", "5"))
            self.assertEqual(ctl(self.sock, "kill", id=c["conn"])[0], 0)
            self.assertIsNotNone(h.wait_closed(s, h.scaled(3)), "killed connection still open")
        self.assertEqual(ctl(self.sock, "kill", id=c["conn"])[0], -1008)
        self.assertEqual(ctl(self.sock, "kill", id="nope:1")[0], -1008)

    def test_reload_invalid_changes_nothing(self):
        with open(self.d.config_path) as f:
            good = f.read()
        s, _ = self._socks_echo(b"before")
        try:
            with open(self.d.config_path, "w") as f:
                f.write(good.replace("type: socks5", "type: sock5"))
            st, f = ctl(self.sock, "reload")
            self.assertEqual(st, -1022)
            errs = [v for k, v in f if k == "error"]
            self.assertTrue(any(re.search(r"tunneld\.yaml:\d+:\d+: listeners\[0\]\.type: ", e)
                                for e in errs), errs)
            # Still the old config, and the old connection still relays.
            s.sendall(b"after")
            self.assertEqual(h.recv_exact(s, 5), b"after")
            self.assertEqual(records(ctl(self.sock, "status")[1], "listener")[0]["type"],
                             "socks5")
        finally:
            with open(self.d.config_path, "w") as f:
                f.write(good)
            s.close()

    def test_reload_applies_the_difference(self):
        with open(self.d.config_path) as f:
            good = f.read()
        s, _ = self._socks_echo(b"keep")
        try:
            added = good.replace("listeners:\n", "listeners:\n  - name: extra\n    type: http\n"
                                 "    listen: \"127.0.0.1:0\"\n    route: direct\n    auth: none\n")
            with open(self.d.config_path, "w") as f:
                f.write(added)
            st, f = ctl(self.sock, "reload")
            self.assertEqual(st, 0, f)
            d = dict(f)
            self.assertEqual((d["started"], d["stopped"], d["kept"]), ("1", "0", "1"))
            ls = {x["listener"]: x for x in records(ctl(self.sock, "status")[1], "listener")}
            self.assertEqual(set(ls), {"socks", "extra"})
            port = int(ls["extra"]["listen"].rsplit(":", 1)[1])
            with h.HttpOrigin() as origin:
                r = h.run_curl(["-x", "http://127.0.0.1:%d" % port, origin.url("/bytes?n=10&seed=r")])
                self.assertEqual(len(r.stdout), 10)
            # The connection of the kept listener never noticed.
            s.sendall(b"still")
            self.assertEqual(h.recv_exact(s, 5), b"still")
            # SIGHUP is a reload too: back to one listener.
            with open(self.d.config_path, "w") as f:
                f.write(good)
            n = len(re.findall(r"configuration reloaded", self.d.log_text()))
            self.d.signal(signal.SIGHUP)
            self.d.wait_log(r"configuration reloaded \(generation \d+: 0 started, 0 replaced, "
                            r"1 kept, 1 stopped\)", count=1 + 0 * n)
            ls = [x["listener"] for x in records(ctl(self.sock, "status")[1], "listener")]
            self.assertEqual(ls, ["socks"])
            s.sendall(b"again")
            self.assertEqual(h.recv_exact(s, 5), b"again")
        finally:
            with open(self.d.config_path, "w") as f:
                f.write(good)
            s.close()


if __name__ == "__main__":
    unittest.main()
