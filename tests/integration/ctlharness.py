"""Helpers for the tunnelctl tests (test_tunnelctl_*.py): running
tunnelctl, reading the KSF files it writes, and a fake control server that
speaks docs/control-protocol.md on a real Unix socket and records every
request.  Standard library only; every wait is bounded."""

import base64
import hashlib
import json
import os
import socket
import struct
import subprocess
import threading
import time

import tdharness as h

SPKI_LEN = 294
SALT_LEN = 256
TOKEN_LEN = 32


def require_ctl():
    if not h.TUNNELCTL_BIN or not os.path.exists(h.TUNNELCTL_BIN):
        raise SystemExit("TUNNELCTL_BIN is not set or does not exist: %r" % h.TUNNELCTL_BIN)


class Result:
    def __init__(self, argv, rc, out, err, seconds):
        self.argv, self.rc, self.out, self.err, self.seconds = argv, rc, out, err, seconds

    def json(self):
        try:
            return json.loads(self.out)
        except ValueError as e:
            raise AssertionError("not JSON (%s): %r\nstderr: %s" % (e, self.out, self.err))

    def __repr__(self):
        return "tunnelctl %r -> %d\nstdout:\n%s\nstderr:\n%s" % (
            self.argv, self.rc, self.out, self.err)


def ctl_env():
    e = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    if h.SANITIZE:
        e["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
        e["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return e


def run(*args, timeout=60, check_sanitizer=True, stdin=None):
    """Run tunnelctl; never the system's /etc/tunneld (tests pass --config
    or --socket, and run with a temp working directory's files)."""
    argv = [h.TUNNELCTL_BIN] + [str(a) for a in args]
    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=h.scaled(timeout), env=ctl_env())
    r = Result(argv[1:], p.returncode, p.stdout.decode("utf-8", "replace"),
               p.stderr.decode("utf-8", "replace"), time.monotonic() - t0)
    if check_sanitizer:
        for mk in h.SANITIZER_MARKERS:
            if mk in r.err:
                raise AssertionError("sanitizer report from tunnelctl:\n%r" % r)
    return r


def parse_user_file(data):
    """A KSF server user file: (name, salt, spki); raises on a bad layout."""
    n = struct.unpack(">H", data[:2])[0]
    if len(data) != 2 + n + SALT_LEN + SPKI_LEN:
        raise AssertionError("user file of %d bytes, name of %d" % (len(data), n))
    name = data[2:2 + n].decode("utf-8")
    salt = data[2 + n:2 + n + SALT_LEN]
    spki = data[2 + n + SALT_LEN:]
    return name, salt, spki


def token_of(salt, spki):
    return hashlib.sha256(spki + salt).hexdigest().upper()


def parse_key_file(data):
    """A KSF client key.dat: (pkcs8 DER, token hex)."""
    n = struct.unpack(">I", data[:4])[0]
    if len(data) < 4 + n + TOKEN_LEN or n < 64:
        raise AssertionError("key.dat of %d bytes, key of %d" % (len(data), n))
    der = data[4:4 + n]
    if der[0] != 0x30:
        raise AssertionError("key.dat: the private key is not DER")
    return der, data[4 + n:4 + n + TOKEN_LEN].hex().upper()


def wstan_key_ok(key):
    raw = base64.b64decode(key, validate=True)
    return len(raw) == 16 and base64.b64encode(raw).decode() == key


def mode(path):
    return os.stat(path).st_mode & 0o777


# --------------------------------------------------------------------------
# A fake tunneld control server

def msg(*fields, version=1):
    """A message: fields are (key, value) pairs or "key=value" strings."""
    lines = ["tunneld-control=%d" % version]
    for f in fields:
        lines.append(f if isinstance(f, str) else "%s=%s" % f)
    return ("\n".join(lines) + "\n\n").encode()


def ok(*fields):
    return msg("status=0", *fields)


def fail(status, *errors):
    return msg("status=%d" % status, *["error=%s" % e for e in errors])


class FakeDaemon:
    """Listens on DIR/control.sock.  handler(request) -> bytes to send, or
    one of the actions: HANG (never answer, keep the connection open),
    CLOSE (close without answering), (CLOSE, bytes) (send, then close).  A request is a list of (key, value)
    with the version line first.  greet: bytes sent on accept, before
    reading anything (then the connection is closed), like the daemon's
    peer check.  Every request is kept in .requests as (conn_no, fields)."""

    HANG = object()
    CLOSE = object()

    def __init__(self, tmpdir, handler=None, greet=None):
        self.path = os.path.join(tmpdir, "control.sock")
        self.handler = handler or (lambda req: ok())
        self.greet = greet
        self.requests = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._conns = []
        self.nconn = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.nconn += 1
                n = self.nconn
                self._conns.append(c)
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def _serve(self, c, n):
        c.settimeout(0.2)
        buf = b""
        try:
            if self.greet is not None:
                c.sendall(self.greet)
                c.close()
                return
            for _ in range(100000):
                if self._stop.is_set():
                    return
                while b"\n\n" in buf:
                    raw, buf = buf.split(b"\n\n", 1)
                    fields = []
                    for line in raw.decode("utf-8", "replace").split("\n"):
                        k, _, v = line.partition("=")
                        fields.append((k, v))
                    with self.lock:
                        self.requests.append((n, fields))
                    r = self.handler(fields)
                    if isinstance(r, tuple) and r[0] is self.CLOSE:
                        c.sendall(r[1])  # a reply cut short, then the end
                        r = self.CLOSE
                    if r is self.CLOSE:
                        c.close()
                        return
                    if r is self.HANG:
                        self._stop.wait(120)
                        return
                    c.sendall(r)
                try:
                    d = c.recv(65536)
                except socket.timeout:
                    continue
                if not d:
                    return
                buf += d
        except OSError:
            return
        finally:
            try:
                c.close()
            except OSError:
                pass

    def reqs(self):
        with self.lock:
            return list(self.requests)

    def commands(self):
        return [dict(f).get("command") for _, f in self.reqs()]

    def close(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.close()
            except OSError:
                pass
        self._t.join(timeout=5)
        try:
            os.unlink(self.path)
        except OSError:
            pass
