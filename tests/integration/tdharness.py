"""Shared harness for the tunneld integration tests.

Python 3.11 standard library only.  Everything binds to 127.0.0.1 / ::1 on
port 0; every socket operation has a timeout and every loop is bounded.

Environment (set by tests/CMakeLists.txt):
  TUNNELD_BIN         path of the tunneld binary
  TUNNELCTL_BIN       path of the tunnelctl binary
  TUNNELD_SOURCE_DIR  repository root
  TUNNELD_SANITIZE    e.g. "address,undefined" or empty
"""

import hashlib
import http.server
import ipaddress
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

TUNNELD_BIN = os.environ.get("TUNNELD_BIN", "")
TUNNELCTL_BIN = os.environ.get("TUNNELCTL_BIN", "")
SOURCE_DIR = os.environ.get("TUNNELD_SOURCE_DIR", "")
SANITIZE = os.environ.get("TUNNELD_SANITIZE", "").strip()

# Sanitizer builds run 2-3x slower: scale waits (never assertions on limits
# that are about correctness, only how long we are willing to wait).
SLOW = 3.0 if SANITIZE else 1.0

MiB = 1024 * 1024
KiB = 1024

LISTEN_RE = re.compile(r"listener (\S+) \((\w+)\) listening on (\S+):(\d+)$", re.M)
READY_RE = re.compile(r"tunneld \S+ ready")
SERVER_RE = re.compile(r"server (\S+) \((\w+)\) listening on (\S+):(\d+)$", re.M)
LOG_LINE_RE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug|trace) +\[[\w.-]+\] ")
CONN_RE = re.compile(
    r"\[conn\] #(?P<id>\d+) closed listener=(?P<listener>\S+) client=(?P<client>\S+) "
    r"target=(?P<target>\S+) route=(?P<route>\S+) up=(?P<up>\d+) down=(?P<down>\d+) "
    r"duration=(?P<duration>[0-9.]+)s? end=(?P<end>[\w-]+)")
SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "UndefinedBehaviorSanitizer")


def require_binaries():
    if not TUNNELD_BIN or not os.path.exists(TUNNELD_BIN):
        raise SystemExit("TUNNELD_BIN is not set or does not exist: %r" % TUNNELD_BIN)


def scaled(seconds):
    return seconds * SLOW


def raise_nofile_limit():
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 65536
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
            return True
        finally:
            s.close()
    except OSError:
        return False


def closed_port(host="127.0.0.1"):
    """A port with (almost certainly) nothing listening on it."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------
# Config generation

def _q(s):
    return json.dumps(str(s))  # a JSON string is a valid YAML double-quoted scalar


def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return _q(v)


def _yaml_items(out, key, items):
    """A list of flat dicts (values: str, int, bool, a list of those, or a
    dict of those written as a flow mapping)."""
    out.append("%s:" % key)
    for item in items:
        first = True
        for k, v in item.items():
            if isinstance(v, (list, tuple)):
                val = "[%s]" % ", ".join(_yaml_scalar(x) for x in v)
            elif isinstance(v, dict):  # a nested section, e.g. pool: {size: 4}
                val = "{%s}" % ", ".join("%s: %s" % (dk, _yaml_scalar(dv))
                                         for dk, dv in v.items())
            else:
                val = _yaml_scalar(v)
            out.append("%s%s: %s" % ("  - " if first else "    ", k, val))
            first = False


def make_config(listeners, limits=None, users=None, log_level="info", tunnels=None,
                servers=None):
    """YAML text for the daemon.  listeners: list of dicts with keys name,
    type, and optionally listen (default 127.0.0.1:0), route (direct),
    auth (none), target, allow and deny (lists of CIDRs).  limits: dict of limits keys -> strings.  users:
    list of (name, password) tuples, or of dicts (name and any of password,
    wstan_key, jproxy_user_file).  tunnels and servers: lists of flat dicts
    written as they are (e.g. {"name": "jp", "protocol": "jproxy", "server":
    "127.0.0.1:1234", "key_file": path}).  "@TMPDIR@" is replaced by the
    Daemon's temp directory."""
    out = ["version: 1",
           "log:",
           "  level: %s" % log_level,
           '  file: "-"',
           "control:",
           '  socket: "@TMPDIR@/control.sock"',
           'state_dir: "@TMPDIR@/state"']
    if limits:
        out.append("limits:")
        for k, v in limits.items():
            out.append("  %s: %s" % (k, v))
    if users:
        out.append("users:")
        for u in users:
            if isinstance(u, dict):
                out.append("  - name: %s" % _q(u["name"]))
                for k in ("password", "wstan_key", "jproxy_user_file"):
                    if k in u:
                        out.append("    %s: %s" % (k, _q(u[k])))
                continue
            name, pw = u
            out.append("  - name: %s" % _q(name))
            out.append("    password: %s" % _q(pw))
    if tunnels:
        _yaml_items(out, "tunnels", tunnels)
    if servers:
        # The tests' origins listen on loopback, which a server's default
        # rules refuse: unless a test sets its own allow/deny (or asks for
        # the defaults with "deny": None), servers here may reach anything.
        items = []
        for sv in servers:
            sv = dict(sv)
            if "allow" not in sv and "deny" not in sv:
                sv["deny"] = []
            if sv.get("deny", ()) is None:
                del sv["deny"]
            items.append(sv)
        _yaml_items(out, "servers", items)
    if not listeners:
        return "\n".join(out) + "\n"
    out.append("listeners:")
    for li in listeners:
        out.append("  - name: %s" % li["name"])
        out.append("    type: %s" % li["type"])
        out.append("    listen: %s" % _q(li.get("listen", "127.0.0.1:0")))
        out.append("    route: %s" % li.get("route", "direct"))
        if li["type"] != "forward":
            out.append("    auth: %s" % li.get("auth", "none"))
        if "target" in li:
            out.append("    target: %s" % _q(li["target"]))
        for key in ("allow", "deny"):
            if key in li:
                out.append("    %s: [%s]" % (key, ", ".join(_q(x) for x in li[key])))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# The daemon under test

class DaemonError(AssertionError):
    pass


class Daemon:
    def __init__(self, config_yaml_text, extra_args=(), env=None, rlimit_nofile=None,
                 ready_timeout=15.0):
        require_binaries()
        self.tmpdir = tempfile.mkdtemp(prefix="tunneld-it-")
        os.makedirs(os.path.join(self.tmpdir, "state"), exist_ok=True)
        self.config_path = os.path.join(self.tmpdir, "tunneld.yaml")
        self.config_text = config_yaml_text.replace("@TMPDIR@", self.tmpdir)
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        self.log_path = os.path.join(self.tmpdir, "tunneld.log")
        self.out_path = os.path.join(self.tmpdir, "tunneld.stdout")
        self.ports = {}
        self.addrs = {}
        self.server_ports = {}  # "servers:" entries, from "server NAME (PROTO) listening on"
        self.server_addrs = {}
        self.returncode = None
        self._stopped = False
        self._checked = False

        e = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        if SANITIZE:
            e["ASAN_OPTIONS"] = ("detect_leaks=1:abort_on_error=0:quarantine_size_mb=8:"
                                 "malloc_context_size=5")
            e["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        if env:
            e.update(env)

        preexec = None
        if rlimit_nofile is not None:
            n = int(rlimit_nofile)

            def preexec():  # runs in the child between fork and exec
                resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))

        self._log_f = open(self.log_path, "wb")
        self._out_f = open(self.out_path, "wb")
        argv = [TUNNELD_BIN, "--config", self.config_path] + list(extra_args)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out_f,
                                     stderr=self._log_f, env=e, preexec_fn=preexec,
                                     close_fds=True)
        self.pid = self.proc.pid
        try:
            self._wait_ready(scaled(ready_timeout))
        except BaseException:
            self._kill()
            raise

    # -- start-up
    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            if READY_RE.search(text):
                for m in LISTEN_RE.finditer(text):
                    name, typ, addr, port = m.group(1), m.group(2), m.group(3), int(m.group(4))
                    self.ports[name] = port
                    self.addrs[name] = addr.strip("[]")
                for m in SERVER_RE.finditer(text):
                    self.server_ports[m.group(1)] = int(m.group(4))
                    self.server_addrs[m.group(1)] = m.group(3).strip("[]")
                return
            if self.proc.poll() is not None:
                raise DaemonError("tunneld exited with %r before ready; log:\n%s"
                                  % (self.proc.returncode, text))
            time.sleep(0.02)
        raise DaemonError("tunneld not ready within %.1fs; log:\n%s" % (timeout, self.log_text()))

    # -- accessors
    def port(self, name):
        if name not in self.ports:
            raise DaemonError("no listener %r in log (have %r)" % (name, self.ports))
        return self.ports[name]

    def server_port(self, name):
        if name not in self.server_ports:
            raise DaemonError("no server %r in log (have %r)" % (name, self.server_ports))
        return self.server_ports[name]

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, regex, timeout=5.0, count=1):
        """Wait until regex (str or compiled, multiline) matches at least count
        times; return the list of matches (the last match if count == 1)."""
        rx = re.compile(regex, re.M) if isinstance(regex, str) else regex
        deadline = time.monotonic() + scaled(timeout)
        while True:
            ms = list(rx.finditer(self.log_text()))
            if len(ms) >= count:
                return ms[-1] if count == 1 else ms
            if time.monotonic() >= deadline:
                raise DaemonError("log did not match %r (x%d, saw %d) within %.1fs; log tail:\n%s"
                                  % (rx.pattern, count, len(ms), scaled(timeout),
                                     self.log_text()[-4000:]))
            time.sleep(0.05)

    def conn_lines(self):
        return [m.groupdict() for m in CONN_RE.finditer(self.log_text())]

    def wait_conn_line(self, client_port, timeout=5.0, client_host="127.0.0.1"):
        """The per-connection closed line for the client with this local port."""
        host = "[%s]" % client_host if ":" in client_host else client_host
        rx = r"\[conn\] #\d+ closed .*client=%s:%d .*$" % (re.escape(host), client_port)
        m = self.wait_log(rx, timeout)
        cm = CONN_RE.search(m.group(0))
        if not cm:
            raise DaemonError("conn line does not have the documented format: %r" % m.group(0))
        return cm.groupdict()

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise DaemonError("no VmRSS for pid %d" % self.pid)

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.pid) as f:
            data = f.read()
        fields = data[data.rindex(")") + 2:].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / os.sysconf("SC_CLK_TCK")

    def alive(self):
        return self.proc.poll() is None

    # -- stopping
    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self, timeout=15.0):
        """SIGTERM, wait, return the exit code (negative = killed by signal)."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(timeout))
            except subprocess.TimeoutExpired:
                self._kill()
                self.returncode = "hung"
                return None
        if self.returncode is None:
            self.returncode = self.proc.returncode
        return self.proc.returncode

    def _kill(self):
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for f in (self._log_f, self._out_f):
            try:
                f.close()
            except OSError:
                pass

    def sanitizer_report(self):
        text = self.log_text()
        for mk in SANITIZER_MARKERS:
            if mk in text:
                i = text.index(mk)
                return text[max(0, i - 500):i + 3000]
        return None

    def stop(self):
        """Terminate if running and assert a clean exit (0 after SIGTERM, no
        sanitizer report).  Idempotent; raises DaemonError on problems."""
        if self._checked:
            return
        self._checked = True
        crashed_before = self.proc.poll()
        rc = self.terminate()
        self._kill()
        problems = []
        if crashed_before is not None and crashed_before != 0:
            problems.append("tunneld died during the test with exit status %r" % crashed_before)
        elif rc == "hung" or rc is None:
            problems.append("tunneld did not exit within %.0fs of SIGTERM" % scaled(15))
        elif rc != 0:
            problems.append("tunneld exit status after SIGTERM was %r, want 0" % rc)
        rep = self.sanitizer_report()
        if rep:
            problems.append("sanitizer report in log:\n" + rep)
        if problems:
            msg = "\n".join(problems) + "\n--- log tail ---\n" + self.log_text()[-6000:]
            if not os.environ.get("TUNNELD_KEEP_TMP"):
                shutil.rmtree(self.tmpdir, ignore_errors=True)
            raise DaemonError(msg)
        if not os.environ.get("TUNNELD_KEEP_TMP"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        self.stop()
        return False


# --------------------------------------------------------------------------
# Deterministic data

CHUNK = 64 * KiB


def gen_chunks(n, seed):
    """Deterministic pseudo-random bytes, n in total, in 64 KiB chunks."""
    rng = random.Random(seed)
    left = n
    while left > 0:
        k = min(CHUNK, left)
        yield rng.randbytes(k)
        left -= k


def gen_bytes(n, seed):
    return b"".join(gen_chunks(n, seed))


_sha_cache = {}


def expected_sha256(n, seed):
    key = (n, seed)
    if key not in _sha_cache:
        h = hashlib.sha256()
        for c in gen_chunks(n, seed):
            h.update(c)
        _sha_cache[key] = h.hexdigest()
    return _sha_cache[key]


# --------------------------------------------------------------------------
# Socket helpers

def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_until_eof(sock, timeout=5.0, limit=64 * MiB):
    """Read until EOF.  Returns (data, how) with how in {"eof", "reset",
    "timeout"}."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(buf), "timeout"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return bytes(buf), "timeout"
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            return bytes(buf), "reset"
        if not chunk:
            return bytes(buf), "eof"
        buf += chunk
    return bytes(buf), "limit"


def wait_closed(sock, timeout):
    """Wait for the peer to close (EOF or reset), discarding data.  Returns
    the elapsed seconds, or None if still open at the deadline."""
    t0 = time.monotonic()
    _, how = recv_until_eof(sock, timeout)
    if how in ("eof", "reset"):
        return time.monotonic() - t0
    return None


def tcp_connect(port, host="127.0.0.1", timeout=5.0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


# --------------------------------------------------------------------------
# SOCKS5 client (RFC 1928 / RFC 1929), raw bytes

SOCKS_CMD_CONNECT = 1
SOCKS_CMD_BIND = 2
SOCKS_CMD_UDP = 3


class SocksError(Exception):
    def __init__(self, rep, msg=""):
        super().__init__("SOCKS5 reply 0x%02x %s" % (rep, msg))
        self.rep = rep


def socks_encode_addr(host, port):
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        hb = host.encode("idna") if not isinstance(host, bytes) else host
        return bytes([3, len(hb)]) + hb + struct.pack("!H", port)
    if ip.version == 4:
        return b"\x01" + ip.packed + struct.pack("!H", port)
    return b"\x04" + ip.packed + struct.pack("!H", port)


def socks_read_addr(read):
    """read(n) -> bytes.  Reads ATYP ADDR PORT; returns (host, port)."""
    atyp = read(1)[0]
    if atyp == 1:
        host = str(ipaddress.IPv4Address(read(4)))
    elif atyp == 4:
        host = str(ipaddress.IPv6Address(read(16)))
    elif atyp == 3:
        ln = read(1)[0]
        host = read(ln).decode("ascii", "replace")
    else:
        raise ValueError("bad ATYP 0x%02x in reply" % atyp)
    port = struct.unpack("!H", read(2))[0]
    return host, port


def socks_greet(sock, methods=(0,)):
    """Send the method greeting; return the selected method byte."""
    sock.sendall(bytes([5, len(methods)]) + bytes(methods))
    resp = recv_exact(sock, 2)
    if resp[0] != 5:
        raise ValueError("bad greeting reply %r" % resp)
    return resp[1]


def socks_userpass(sock, user, password):
    """RFC 1929 sub-negotiation; return the status byte."""
    u = user.encode() if isinstance(user, str) else user
    p = password.encode() if isinstance(password, str) else password
    sock.sendall(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
    resp = recv_exact(sock, 2)
    if resp[0] != 1:
        raise ValueError("bad user/pass reply version %r" % resp)
    return resp[1]


def socks_request(sock, cmd, host, port, raw_addr=None):
    """Send a request; return (rep, bnd_host, bnd_port).  If rep != 0 the
    bound address may be whatever the server sent."""
    addr = raw_addr if raw_addr is not None else socks_encode_addr(host, port)
    sock.sendall(bytes([5, cmd, 0]) + addr)
    hdr = recv_exact(sock, 3)
    if hdr[0] != 5:
        raise ValueError("bad reply version %r" % hdr)
    rep = hdr[1]
    try:
        bh, bp = socks_read_addr(lambda n: recv_exact(sock, n))
    except (EOFError, ValueError, OSError):
        if rep == 0:
            raise
        bh, bp = None, None
    return rep, bh, bp


def socks_reply_code(proxy_port, host, port, cmd=SOCKS_CMD_CONNECT, auth=None,
                     timeout=10.0, raw_addr=None):
    """Open a fresh connection, do greeting (+auth) and a request; return
    (rep, sock).  The caller closes sock."""
    s = tcp_connect(proxy_port, timeout=timeout)
    try:
        if auth:
            m = socks_greet(s, (2,))
            if m != 2:
                raise ValueError("server chose method 0x%02x, want 0x02" % m)
            st = socks_userpass(s, auth[0], auth[1])
            if st != 0:
                raise ValueError("user/pass status 0x%02x" % st)
        else:
            m = socks_greet(s, (0,))
            if m != 0:
                raise ValueError("server chose method 0x%02x, want 0x00" % m)
        rep, _, _ = socks_request(s, cmd, host, port, raw_addr=raw_addr)
        return rep, s
    except BaseException:
        s.close()
        raise


def socks5_open(proxy_port, host, port, auth=None, timeout=10.0):
    """A connected, relaying socket through the SOCKS5 proxy."""
    rep, s = socks_reply_code(proxy_port, host, port, auth=auth, timeout=timeout)
    if rep != 0:
        s.close()
        raise SocksError(rep)
    return s


def socks5_http_get(proxy_port, origin, path, timeout=30.0):
    """GET path from origin (an HttpOrigin) through the SOCKS5 proxy, with
    HTTP/1.0; returns the body, raises AssertionError unless 200."""
    s = socks5_open(proxy_port, "127.0.0.1", origin.port, timeout=scaled(timeout))
    with s:
        s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, origin.hostport)).encode())
        status, _, _, body = read_http_response(s, timeout=scaled(timeout))
    if status != 200:
        raise AssertionError("HTTP status %d for %s" % (status, path))
    return body


class SockOwner:
    """Mixin for test clients that own self.sock: close() and `with`."""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False


def udp_encode(host, port, data, frag=0):
    return b"\x00\x00" + bytes([frag]) + socks_encode_addr(host, port) + data


def udp_decode(dgram):
    """-> (frag, host, port, data)"""
    if len(dgram) < 4 or dgram[0:2] != b"\x00\x00":
        raise ValueError("bad UDP header %r" % dgram[:10])
    frag = dgram[2]
    pos = [3]

    def read(n):
        b = dgram[pos[0]:pos[0] + n]
        if len(b) != n:
            raise ValueError("short UDP datagram")
        pos[0] += n
        return b

    host, port = socks_read_addr(read)
    return frag, host, port, dgram[pos[0]:]


# --------------------------------------------------------------------------
# HTTP helpers (raw)

def read_http_response(sock, timeout=10.0, head_only=False):
    """Read one HTTP/1.x response.  Returns (status, reason, headers(list of
    (lower-name, value)), body).  Body read by Content-Length, or until EOF
    when there is none."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete response head within %.1fs: %r" % (timeout, bytes(buf[:200])))
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("EOF before response head complete: %r" % bytes(buf[:200]))
        buf += chunk
        if len(buf) > 1 * MiB:
            raise ValueError("response head too large")
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)$", lines[0])
    if not m:
        raise ValueError("bad status line %r" % lines[0])
    status, reason = int(m.group(1)), m.group(2)
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers.append((k.strip().lower(), v.strip()))
    if head_only:
        return status, reason, headers, rest
    hd = dict(headers)
    body = bytearray(rest)
    if "content-length" in hd:
        n = int(hd["content-length"])
        while len(body) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("body incomplete")
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("EOF in body after %d of %d" % (len(body), n))
            body += chunk
    elif status >= 200 and status not in (204, 304):
        more, _ = recv_until_eof(sock, max(0.1, deadline - time.monotonic()))
        body += more
    return status, reason, headers, bytes(body)


def header_get(headers, name):
    name = name.lower()
    for k, v in headers:
        if k == name:
            return v
    return None


# --------------------------------------------------------------------------
# curl

def curl_env():
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def run_curl(args, timeout=30.0, check=True, input=None):
    """Run curl with -sS and --max-time; returns CompletedProcess (bytes)."""
    mt = scaled(timeout)
    argv = ["curl", "-sS", "--max-time", "%g" % mt] + list(args)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=curl_env(),
                       timeout=mt + 10, input=input)
    if check and p.returncode != 0:
        raise AssertionError("curl failed (%d): %s\nargv=%r" % (p.returncode, p.stderr.decode(
            "utf-8", "replace"), argv))
    return p


def curl_sha256(args, timeout=60.0):
    """Run curl with body to stdout, hashing as it streams.  Returns
    (returncode, sha256 hex, nbytes, stderr)."""
    mt = scaled(timeout)
    argv = ["curl", "-sS", "--max-time", "%g" % mt] + list(args)
    h = hashlib.sha256()
    n = 0
    with tempfile.TemporaryFile() as errf:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errf, env=curl_env())
        try:
            while True:
                chunk = p.stdout.read(256 * KiB)
                if not chunk:
                    break
                h.update(chunk)
                n += len(chunk)
            rc = p.wait(timeout=mt + 10)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(5)
            p.stdout.close()
        errf.seek(0)
        err = errf.read().decode("utf-8", "replace")
    return rc, h.hexdigest(), n, err


# --------------------------------------------------------------------------
# jProxy keys

def jproxy_keygen(user, key_out, users_dir, force=False, timeout=60.0):
    """Run `tunnelctl jproxy-keygen`; returns the token as 64 upper-case hex
    digits.  The user file is users_dir/<token>.dat."""
    if not TUNNELCTL_BIN or not os.path.exists(TUNNELCTL_BIN):
        raise SystemExit("TUNNELCTL_BIN is not set or does not exist: %r" % TUNNELCTL_BIN)
    argv = [TUNNELCTL_BIN, "jproxy-keygen", "--user", user, "--key-out", key_out,
            "--users-dir", users_dir] + (["--force"] if force else [])
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=scaled(timeout))
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        raise AssertionError("jproxy-keygen failed (%d): %s%s" % (
            p.returncode, out, p.stderr.decode("utf-8", "replace")))
    m = re.search(r"^token:\s+([0-9A-F]{64})$", out, re.M)
    if not m:
        raise AssertionError("jproxy-keygen printed no token: %r" % out)
    return m.group(1)


# --------------------------------------------------------------------------
# Origin servers

class _Base:
    def _spawn(self, target, *args):
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        return t

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False


class HttpOrigin(_Base):
    """Threaded HTTP/1.1 origin with /bytes, /echo and /upload.  Every request
    is recorded in .requests (dicts: method, path, version, headers(list),
    client_port)."""

    def __init__(self, host="127.0.0.1"):
        self.requests = []
        self.lock = threading.Lock()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, *a):
                pass

            def _record(self):
                with origin.lock:
                    origin.requests.append({
                        "method": self.command, "path": self.path,
                        "version": self.request_version,
                        "headers": list(self.headers.items()),
                        "client_port": self.client_address[1],
                    })

            def _send(self, code, body, ctype="application/octet-stream"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _read_body(self, sink):
                te = (self.headers.get("Transfer-Encoding") or "").lower()
                if "chunked" in te:
                    total = 0
                    for _ in range(10_000_000):
                        line = self.rfile.readline(1024)
                        size = int(line.split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            for _ in range(1000):  # trailers
                                if self.rfile.readline(65536) in (b"\r\n", b"\n", b""):
                                    break
                            break
                        left = size
                        while left > 0:
                            b = self.rfile.read(min(left, 256 * KiB))
                            if not b:
                                raise EOFError
                            sink(b)
                            left -= len(b)
                        total += size
                        self.rfile.readline(16)
                    return total
                n = int(self.headers.get("Content-Length") or 0)
                left = n
                while left > 0:
                    b = self.rfile.read(min(left, 256 * KiB))
                    if not b:
                        raise EOFError
                    sink(b)
                    left -= len(b)
                return n

            def do_GET(self):
                self._record()
                u = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(u.query)
                if u.path == "/bytes":
                    n = int(q.get("n", ["0"])[0])
                    seed = q.get("seed", ["0"])[0]
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(n))
                    self.end_headers()
                    if self.command == "HEAD":
                        return
                    for c in gen_chunks(n, seed):
                        self.wfile.write(c)
                elif u.path == "/echo":
                    body = json.dumps({
                        "method": self.command, "path": self.path,
                        "version": self.request_version,
                        "headers": list(self.headers.items()),
                    }).encode()
                    self._send(200, body, "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            do_HEAD = do_GET

            def do_POST(self):
                self._record()
                u = urllib.parse.urlsplit(self.path)
                h = hashlib.sha256()
                n = self._read_body(h.update)
                if u.path == "/upload":
                    self._send(200, ("%d %s" % (n, h.hexdigest())).encode(), "text/plain")
                elif u.path == "/echo":
                    body = json.dumps({
                        "method": self.command, "path": self.path,
                        "version": self.request_version,
                        "headers": list(self.headers.items()), "body_len": n,
                        "body_sha256": h.hexdigest(),
                    }).encode()
                    self._send(200, body, "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            do_PUT = do_POST

        fam = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(http.server.ThreadingHTTPServer):
            address_family = fam
            daemon_threads = True
            request_queue_size = 128

        self.server = Server((host, 0), Handler)
        self.host = host
        self.port = self.server.server_address[1]
        self._thread = self._spawn(self.server.serve_forever, 0.1)

    def url(self, path):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d%s" % (h, self.port, path)

    @property
    def hostport(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (h, self.port)

    def paths(self):
        with self.lock:
            return [r["path"] for r in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _TcpServer(_Base):
    """Thread-per-connection TCP server base; subclasses implement handle."""

    def __init__(self, host="127.0.0.1", backlog=1024):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(backlog)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self._stop = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.accepted = 0
        self.conns = []
        self._spawn(self._accept_loop)

    @property
    def hostport(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (h, self.port)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, addr = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)
                continue
            with self.lock:
                self.active += 1
                self.accepted += 1
                self.max_active = max(self.max_active, self.active)
                self.conns.append(c)
            self._spawn(self._run, c, addr)

    def _run(self, c, addr):
        try:
            c.settimeout(120)
            self.handle(c, addr)
        except OSError:
            pass
        finally:
            with self.lock:
                self.active -= 1
            try:
                c.close()
            except OSError:
                pass

    def handle(self, c, addr):
        raise NotImplementedError

    def close(self):
        self._stop.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.close()
            except OSError:
                pass


class TcpEcho(_TcpServer):
    """Echoes everything; on EOF shuts down its write side and closes."""

    def handle(self, c, addr):
        while True:
            data = c.recv(65536)
            if not data:
                c.shutdown(socket.SHUT_WR)
                return
            c.sendall(data)


class TcpSink(_TcpServer):
    """Reads everything, optionally after an initial pause and at a limited
    rate (bytes/s).  Records (count, sha256) per connection in .results.  On
    EOF: with reply_on_eof, sends b"<count> <sha256hex>\\n" and closes; with
    hold_after_eof, keeps the socket open (never replies) for hold seconds."""

    def __init__(self, host="127.0.0.1", pause=0.0, rate=None, reply_on_eof=True,
                 hold_after_eof=0.0, recv_size=64 * KiB, rcvbuf=None):
        self.pause = pause
        self.rate = rate
        self.reply_on_eof = reply_on_eof
        self.hold_after_eof = hold_after_eof
        self.recv_size = recv_size
        self.rcvbuf = rcvbuf
        self.results = []
        self.done = threading.Condition()
        super().__init__(host)
        if rcvbuf:
            self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)

    def handle(self, c, addr):
        if self.pause:
            time.sleep(self.pause)
        h = hashlib.sha256()
        n = 0
        t0 = time.monotonic()
        while True:
            data = c.recv(self.recv_size)
            if not data:
                break
            h.update(data)
            n += len(data)
            if self.rate:
                ahead = n / self.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        with self.done:
            self.results.append((n, h.hexdigest()))
            self.done.notify_all()
        if self.reply_on_eof:
            c.sendall(b"%d %s\n" % (n, h.hexdigest().encode()))
            c.shutdown(socket.SHUT_WR)
        elif self.hold_after_eof:
            self._stop.wait(self.hold_after_eof)

    def wait_results(self, count=1, timeout=30.0):
        deadline = time.monotonic() + scaled(timeout)
        with self.done:
            while len(self.results) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("sink got %d results, want %d" % (len(self.results), count))
                self.done.wait(left)
            return list(self.results)


class TcpSource(_TcpServer):
    """On accept, sends n deterministic bytes (gen_chunks(n, seed)) then
    closes."""

    def __init__(self, n, seed, host="127.0.0.1"):
        self.n = n
        self.seed = seed
        self.sent = []
        super().__init__(host)

    def handle(self, c, addr):
        total = 0
        for chunk in gen_chunks(self.n, self.seed):
            c.sendall(chunk)
            total += len(chunk)
        self.sent.append(total)
        c.shutdown(socket.SHUT_WR)
        # wait for the peer's EOF so the close is clean
        for _ in range(1000):
            if not c.recv(65536):
                break


class TcpGreeter(_TcpServer):
    """Sends greeting, shuts down its write side, then reads until EOF and
    records (count, sha256) in .results (half-close from the target side)."""

    def __init__(self, greeting=b"hello\n", host="127.0.0.1"):
        self.greeting = greeting
        self.results = []
        super().__init__(host)

    def handle(self, c, addr):
        c.sendall(self.greeting)
        c.shutdown(socket.SHUT_WR)
        h = hashlib.sha256()
        n = 0
        while True:
            data = c.recv(65536)
            if not data:
                break
            h.update(data)
            n += len(data)
        self.results.append((n, h.hexdigest()))


class UdpEcho(_Base):
    """Echoes every datagram back to its sender; records senders."""

    def __init__(self, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.received = []
        self._stop = threading.Event()
        self._spawn(self._loop)

    def _loop(self):
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            self.received.append((addr, data))
            try:
                self.sock.sendto(data, addr)
            except OSError:
                pass

    def close(self):
        self._stop.set()
        time.sleep(0.15)
        self.sock.close()


class BlackholeListener(_Base):
    """A listening socket whose accept queue is full: connects to it hang
    (Linux drops further SYNs), for connect-timeout tests."""

    def __init__(self, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.bind((host, 0))
        self.lsock.listen(0)
        self.port = self.lsock.getsockname()[1]
        self.fillers = []
        for _ in range(3):
            c = socket.socket(fam, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect((host, self.port))
            except (BlockingIOError, InterruptedError):
                pass
            self.fillers.append(c)
        time.sleep(0.2)

    def verify(self, timeout=1.0):
        """True if a connect really hangs."""
        fam = self.lsock.family
        c = socket.socket(fam, socket.SOCK_STREAM)
        c.settimeout(timeout)
        try:
            c.connect((self.lsock.getsockname()[0], self.port))
            return False
        except socket.timeout:
            return True
        except OSError:
            return False
        finally:
            c.close()

    def close(self):
        for c in self.fillers:
            c.close()
        self.lsock.close()


# --------------------------------------------------------------------------

def main():
    """Run unittest in this module's caller; exit non-zero on failure."""
    unittest.main(module="__main__", verbosity=2)


def stop_all(daemons, closers=(), dirs=()):
    """Test clean-up: stop every daemon (None entries are skipped), close
    every helper server, remove the temp dirs, then raise one DaemonError
    with everything the daemons reported (a crash, a sanitizer report)."""
    errs = []
    for d in daemons:
        if d is None:
            continue
        try:
            d.stop()
        except DaemonError as e:
            errs.append(str(e))
    for c in closers:
        if c is not None:
            c.close()
    for t in dirs:
        shutil.rmtree(t, ignore_errors=True)
    if errs:
        raise DaemonError("\n\n".join(errs))
