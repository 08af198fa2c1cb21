"""Checks of the built .deb (run by packaging/check-deb.sh, after lintian and
systemd-analyze):

* the control fields, and Depends: every shared library the binaries need,
  plus the libwebsockets libuv plugin that libwebsockets dlopen()s;
* the contents: every expected path, nothing else, each with its mode and
  owner; the binaries stripped; the man pages and changelog gzip -9n;
* the control files: the conffile, the maintainer scripts;
* a scratch root: `dpkg --root R --unpack` (real dpkg, which registers the
  conffile), the layout and modes on disk, the packaged binaries and the
  packaged config (it validates, and a daemon started on it serves);
* the maintainer scripts run for real (adduser, dpkg-statoverride,
  deb-systemd-helper) in a private mount namespace over copies of /etc and
  /var/lib: install, configure again, upgrade with systemd running (where
  systemctl and deb-systemd-invoke are stubs), remove, purge.

Usage: test_deb.py DEB WORKDIR"""

import gzip
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
DEB = WORK = None  # set in main()
IS_ROOT = os.geteuid() == 0


def run(argv, check=True, **kw):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%r failed (%d): %s%s" % (argv, p.returncode,
                                                        p.stdout.decode(), p.stderr.decode()))
    return p.stdout.decode("utf-8", "replace")


def project_version():
    with open(os.path.join(SOURCE, "CMakeLists.txt")) as f:
        return re.search(r"project\(tunneld VERSION ([0-9.]+)", f.read()).group(1)


def man_pages():
    d = os.path.join(SOURCE, "docs", "man")
    return sorted(n for n in os.listdir(d) if n.endswith(".8")) if os.path.isdir(d) else []


def has_completion():
    return os.path.isfile(os.path.join(SOURCE, "packaging", "completion", "tunnelctl.bash"))


def expected_entries():
    """path -> (type, mode, owner): 'd' directories, 'f' files."""
    e = {}

    def d(p):
        while p and p not in e:
            e[p] = ("d", 0o755, "root/root")
            p = os.path.dirname(p)

    def f(p, mode=0o644):
        d(os.path.dirname(p))
        e[p] = ("f", mode, "root/root")

    f("etc/tunneld/tunneld.yaml")  # 0640 root:tunneld comes from the postinst
    f("lib/systemd/system/tunneld.service")
    f("usr/bin/tunneld", 0o755)
    f("usr/bin/tunnelctl", 0o755)
    for n in ("changelog.gz", "copyright", "config.md", "install.md"):
        f("usr/share/doc/tunneld/" + n)
    for n in man_pages():
        f("usr/share/man/man8/%s.gz" % n)
    if has_completion():
        f("usr/share/bash-completion/completions/tunnelctl")
    return e


def deb_listing():
    """dpkg-deb -c: path -> (type, mode, owner)."""
    out = {}
    for line in run(["dpkg-deb", "-c", DEB]).splitlines():
        perms, owner, _size, _date, _time, path = line.split(None, 5)
        path = path.split(" -> ")[0]
        path = path[2:] if path.startswith("./") else path
        path = path.rstrip("/")
        if not path:
            continue
        kind = {"d": "d", "-": "f", "l": "l"}.get(perms[0], perms[0])
        mode = 0
        for i, ch in enumerate(perms[1:10]):
            if ch not in "-":
                mode |= 1 << (8 - i)
            if ch in "sStT":
                mode |= 0o4000  # setuid/setgid/sticky: never expected
        out[path] = (kind, mode, owner)
    return out


def control_fields():
    text = run(["dpkg-deb", "-f", DEB])
    fields, key = {}, None
    for line in text.splitlines():
        if line.startswith((" ", "\t")) and key:
            fields[key] += "\n" + line
        else:
            key, _, v = line.partition(":")
            fields[key] = v.strip()
    return fields


def depends_names(depends):
    names = set()
    for alt in depends.split(","):
        for dep in alt.split("|"):
            names.add(dep.strip().split()[0].split(":")[0])
    return names


def needed_libs(elf):
    out = run(["readelf", "-d", elf])
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def resolve_lib(soname):
    """The path the dynamic linker uses for soname (this machine's ABI)."""
    want = {"x86_64": "x86-64", "aarch64": "AArch64"}.get(os.uname().machine)
    hits = []
    for line in run(["ldconfig", "-p"]).splitlines():
        m = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)", line)
        if m and m.group(1) == soname:
            hits.append((want is None or want in m.group(2), m.group(3)))
    hits.sort(key=lambda h: not h[0])
    if not hits:
        raise AssertionError("cannot resolve %s with ldconfig -p" % soname)
    return hits[0][1]


def package_of(path):
    """The package that owns a library (dpkg knows /usr/lib or /lib, as shipped)."""
    cands = [path, os.path.realpath(path)]
    for p in list(cands):
        if p.startswith("/usr/"):
            cands.append(p[4:])
        else:
            cands.append("/usr" + p)
    for p in cands:
        r = subprocess.run(["dpkg-query", "-S", p], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=60)
        if r.returncode == 0:
            return r.stdout.decode().split(":")[0].strip()
    raise AssertionError("no package owns %s" % path)


class Control(unittest.TestCase):
    def test_fields(self):
        f = control_fields()
        self.assertEqual(f["Package"], "tunneld")
        self.assertEqual(f["Version"], project_version())
        self.assertEqual(f["Architecture"], run(["dpkg", "--print-architecture"]).strip())
        self.assertEqual(f["Section"], "net")
        self.assertEqual(f["Priority"], "optional")
        self.assertRegex(f["Maintainer"], r"^[^<>]+ <[^@<>\s]+@[^@<>\s]+>$")
        synopsis, _, ext = f["Description"].partition("\n")
        self.assertTrue(0 < len(synopsis) <= 80 and not synopsis.endswith("."), synopsis)
        self.assertGreater(len(ext.splitlines()), 3, "an extended description")
        for line in ext.splitlines():
            self.assertLessEqual(len(line), 81, line)

    def test_depends_every_library_loaded(self):
        tmp = tempfile.mkdtemp(dir=WORK)
        self.addCleanup(shutil.rmtree, tmp, True)
        run(["dpkg-deb", "-x", DEB, tmp])
        deps = depends_names(control_fields()["Depends"])
        self.assertIn("adduser", deps, "the postinst runs adduser")
        for b in ("tunneld", "tunnelctl"):
            for so in needed_libs(os.path.join(tmp, "usr/bin", b)):
                pkg = package_of(resolve_lib(so))
                self.assertIn(pkg, deps, "%s needs %s (package %s)" % (b, so, pkg))
        # libwebsockets built with evlib plugins dlopen()s its libuv support
        # (shlibdeps cannot see it); a static lws with libuv inside needs nothing.
        lws = [so for so in needed_libs(os.path.join(tmp, "usr/bin/tunneld"))
               if so.startswith("libwebsockets.so")]
        if lws:
            with open(resolve_lib(lws[0]), "rb") as fh:
                dlopens_plugin = b"unable to load evlib plugin" in fh.read()
            if dlopens_plugin:
                self.assertIn("libwebsockets-evlib-uv", deps)
                plugin_files = run(["dpkg-query", "-L", "libwebsockets-evlib-uv"])
                self.assertIn("libwebsockets-evlib_uv.so", plugin_files)

    def test_conffiles_and_scripts(self):
        ctl = os.path.join(WORK, "control")
        shutil.rmtree(ctl, ignore_errors=True)
        run(["dpkg-deb", "-e", DEB, ctl])
        with open(os.path.join(ctl, "conffiles")) as fh:
            self.assertEqual(fh.read().split(), ["/etc/tunneld/tunneld.yaml"])
        listing = deb_listing()
        self.assertIn("etc/tunneld/tunneld.yaml", listing)
        self.assertEqual(sorted(os.listdir(ctl)),
                         ["conffiles", "control", "md5sums", "postinst", "postrm", "prerm"])
        for s in ("postinst", "prerm", "postrm"):
            p = os.path.join(ctl, s)
            self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o755, s)
            with open(p) as fh:
                text = fh.read()
            self.assertTrue(text.startswith("#!/bin/sh\n"), s)
            self.assertIn("\nset -e\n", text, s)
            run(["sh", "-n", p])
        for s in ("conffiles", "control", "md5sums"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(ctl, s)).st_mode), 0o644, s)
        # md5sums: every regular file (dpkg sums the conffile itself).
        with open(os.path.join(ctl, "md5sums")) as fh:
            summed = {line.split(None, 1)[1].strip() for line in fh if line.strip()}
        files = {p for p, (k, _, _) in listing.items() if k == "f"}
        conf = {"etc/tunneld/tunneld.yaml"}
        self.assertEqual(summed - conf, files - conf)


class Contents(unittest.TestCase):
    def test_every_path_and_nothing_else(self):
        got, want = deb_listing(), expected_entries()
        self.assertEqual(sorted(set(got) - set(want)), [], "unexpected paths")
        self.assertEqual(sorted(set(want) - set(got)), [], "missing paths")
        for path, (kind, mode, owner) in want.items():
            gk, gm, go = got[path]
            self.assertEqual(gk, kind, path)
            if path == "etc/tunneld/tunneld.yaml":
                self.assertIn(gm, (0o644, 0o640), path)
            else:
                self.assertEqual(oct(gm), oct(mode), path)
            self.assertEqual(go, owner, path)

    def test_compressed_files_are_reproducible_gzip(self):
        tmp = tempfile.mkdtemp(dir=WORK)
        self.addCleanup(shutil.rmtree, tmp, True)
        run(["dpkg-deb", "-x", DEB, tmp])
        gz = [p for p in expected_entries() if p.endswith(".gz")]
        self.assertTrue(gz)
        for p in gz:
            with open(os.path.join(tmp, p), "rb") as fh:
                head = fh.read(10)
            self.assertEqual(head[:2], b"\x1f\x8b", p)
            flags, mtime = head[3], struct.unpack("<I", head[4:8])[0]
            self.assertEqual((flags & 0x08, mtime), (0, 0), "%s: gzip -n (no name, no time)" % p)
            gzip.open(os.path.join(tmp, p)).read()
        with gzip.open(os.path.join(tmp, "usr/share/doc/tunneld/changelog.gz"), "rt") as fh:
            self.assertTrue(fh.readline().startswith("tunneld (%s) " % project_version()))
        with open(os.path.join(tmp, "usr/share/doc/tunneld/copyright")) as fh:
            self.assertTrue(fh.readline().startswith("Format: https://www.debian.org/doc/"))
        for b in ("tunneld", "tunnelctl"):
            out = run(["readelf", "-S", os.path.join(tmp, "usr/bin", b)])
            self.assertNotIn(".symtab", out, "%s is stripped" % b)
            self.assertNotIn(".debug_info", out, "%s is stripped" % b)

    def test_unit_in_the_package(self):
        tmp = tempfile.mkdtemp(dir=WORK)
        self.addCleanup(shutil.rmtree, tmp, True)
        run(["dpkg-deb", "-x", DEB, tmp])
        with open(os.path.join(tmp, "lib/systemd/system/tunneld.service")) as fh:
            unit = fh.read()
        for line in ("Type=notify", "ExecStart=/usr/bin/tunneld --config /etc/tunneld/tunneld.yaml",
                     "ExecReload=/bin/kill -HUP $MAINPID", "User=tunneld", "Group=tunneld",
                     "RuntimeDirectory=tunneld", "StateDirectory=tunneld",
                     "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                     "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "WantedBy=multi-user.target"):
            self.assertIn("\n" + line + "\n", unit)


class ScratchRoot(unittest.TestCase):
    """dpkg itself unpacks the package into an empty root."""

    @classmethod
    def setUpClass(cls):
        cls.root = os.path.join(WORK, "root")
        shutil.rmtree(cls.root, ignore_errors=True)
        for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates"):
            os.makedirs(os.path.join(cls.root, d))
        for f in ("status", "available"):
            open(os.path.join(cls.root, "var/lib/dpkg", f), "w").close()
        cls.unpack = run(["dpkg", "--root=" + cls.root, "--force-not-root", "--unpack", DEB])

    def test_dpkg_registers_the_package_and_conffile(self):
        st = run(["dpkg", "--root=" + self.root, "-s", "tunneld"])
        self.assertIn("Status: install ok unpacked", st)
        self.assertRegex(st, r"Conffiles:\n /etc/tunneld/tunneld\.yaml ")
        listed = set(run(["dpkg", "--root=" + self.root, "-L", "tunneld"]).split())
        for p, (kind, _, _) in expected_entries().items():
            self.assertIn("/" + p, listed)

    def test_layout_and_modes_on_disk(self):
        for p, (kind, mode, _) in expected_entries().items():
            disk = os.path.join(self.root, p)
            if p == "etc/tunneld/tunneld.yaml":
                disk += ".dpkg-new"  # a new conffile, until the package is configured
            st = os.lstat(disk)
            self.assertEqual(stat.S_ISDIR(st.st_mode), kind == "d", p)
            self.assertTrue(stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode), p)
            if p.startswith("etc/"):
                self.assertIn(stat.S_IMODE(st.st_mode), (0o644, 0o640, 0o755), p)
            else:
                self.assertEqual(oct(stat.S_IMODE(st.st_mode)), oct(mode), p)
            if IS_ROOT:
                self.assertEqual((st.st_uid, st.st_gid), (0, 0), p)

    def test_packaged_binaries_run(self):
        tunneld = os.path.join(self.root, "usr/bin/tunneld")
        tunnelctl = os.path.join(self.root, "usr/bin/tunnelctl")
        self.assertEqual(run([tunneld, "--version"]).strip(), "tunneld " + project_version())
        run([tunnelctl, "--version"])
        conf = os.path.join(self.root, "etc/tunneld/tunneld.yaml.dpkg-new")
        self.assertIn(": ok (1 listeners", run([tunneld, "--check-config", conf]))
        self.assertIn(": ok (1 listeners", run([tunnelctl, "check-config", conf]))

    def test_packaged_config_serves(self):
        """The default config as shipped, with only what this host cannot
        give it replaced: its user and group (this process's), its paths
        (a temp dir) and its port (a free one, still on 127.0.0.1)."""
        with open(os.path.join(self.root, "etc/tunneld/tunneld.yaml.dpkg-new")) as fh:
            text = fh.read()
        self.assertIn("\nuser: tunneld\n", text)
        self.assertIn("\n  group: tunneld\n", text)
        self.assertIn("\n    listen: 127.0.0.1:1080\n", text)
        self.assertNotRegex(text, r"listen: (?!127\.0\.0\.1:)", "loopback only")
        tmp = tempfile.mkdtemp(dir=WORK)
        self.addCleanup(shutil.rmtree, tmp, True)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        me = pwd.getpwuid(os.geteuid()).pw_name
        text = (text.replace("\nuser: tunneld\n", "\nuser: %s\n" % me)
                .replace("  group: tunneld\n", "  group: %s\n" % grp.getgrgid(os.getegid()).gr_name)
                .replace("/run/tunneld/control.sock", tmp + "/control.sock")
                .replace("/var/lib/tunneld", tmp + "/state")
                .replace("127.0.0.1:1080", "127.0.0.1:%d" % port))
        os.makedirs(tmp + "/state")
        conf = os.path.join(tmp, "tunneld.yaml")
        with open(conf, "w") as fh:
            fh.write(text)
        log = open(os.path.join(tmp, "log"), "wb")
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        p = subprocess.Popen([os.path.join(self.root, "usr/bin/tunneld"), "--config", conf],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        def log_text():
            with open(os.path.join(tmp, "log")) as fh:
                return fh.read()

        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and p.poll() is None:
                if re.search(r"tunneld \S+ ready", log_text()):
                    break
                time.sleep(0.05)
            self.assertIsNone(p.poll(), log_text())
            self.assertRegex(log_text(), r"tunneld \S+ ready")
            # A SOCKS5 greeting (no auth) and an HTTP request on the one port.
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(b"\x05\x01\x00")
            self.assertEqual(c.recv(2), b"\x05\x00")
            c.close()
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
            self.assertTrue(c.recv(64).startswith(b"HTTP/1."))
            c.close()
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=20)
            log.close()
        self.assertEqual(rc, 0)


# Only what needs a running systemd is a stub; it records its arguments.
# (systemctl --root=... works offline and stays real.)
STUBS = ("systemctl", "deb-systemd-invoke")
HIDDEN = ("/etc", "/var/lib", "/var/log", "/run", "/lib/systemd/system")


class MaintainerScripts(unittest.TestCase):
    """The packaged scripts, run as dpkg runs them, with the real adduser,
    addgroup, getent, dpkg-statoverride and deb-systemd-helper, in a private
    mount namespace: /etc and /var/lib are copies (bind-mounted over the
    real ones), /var/log, /run and /lib/systemd/system empty tmpfs.  Nothing
    of the host changes.  A failed mount stops the run before any script."""

    @classmethod
    def setUpClass(cls):
        if not IS_ROOT or not shutil.which("unshare"):
            raise unittest.SkipTest("needs root and unshare(1)")
        for tool in ("adduser", "addgroup", "dpkg-statoverride", "deb-systemd-helper"):
            if not shutil.which(tool):
                raise unittest.SkipTest("needs %s" % tool)
        if not os.path.isdir("/lib/systemd/system"):
            raise unittest.SkipTest("no /lib/systemd/system to hide")
        real = os.path.realpath(WORK)
        for top in HIDDEN:
            if real == top or real.startswith(top + "/"):
                raise unittest.SkipTest("the work dir is under %s, which the test hides" % top)
        probe_dir = tempfile.mkdtemp(dir=WORK)
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                'mount -t tmpfs none "$1" && mount --bind "$1" "$1"', "sh",
                                probe_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.rmdir(probe_dir)
        if probe.returncode != 0:
            raise unittest.SkipTest("cannot mount in a private mount namespace here")
        cls.dir = os.path.join(WORK, "scripts")
        shutil.rmtree(cls.dir, ignore_errors=True)
        os.makedirs(cls.dir)
        run(["dpkg-deb", "-e", DEB, os.path.join(cls.dir, "control")])
        run(["dpkg-deb", "-x", DEB, os.path.join(cls.dir, "data")])
        cls.stubs = os.path.join(cls.dir, "stubs")
        os.makedirs(cls.stubs)
        real_systemctl = shutil.which("systemctl")
        for name in STUBS:
            p = os.path.join(cls.stubs, name)
            with open(p, "w") as fh:
                fh.write("#!/bin/sh\n")
                if name == "systemctl" and real_systemctl:
                    # deb-systemd-helper makes the enable links offline with
                    # `systemctl --root=/ preset`: that one is real.
                    fh.write('case "$1" in --root=*) exec %s "$@" ;; esac\n' % real_systemctl)
                fh.write('echo "%s $*" >>"$STATE/calls"\n' % name)
            os.chmod(p, 0o755)

    def run_steps(self, steps):
        """steps: (script, args, systemd running?), or ("!", shell command,
        False).  Returns, per step, the stub calls and a report of the state
        the scripts manage."""
        state = tempfile.mkdtemp(dir=self.dir)
        run(["cp", "-a", "/etc", os.path.join(state, "etc")])
        os.makedirs(os.path.join(state, "varlib", "dpkg"))
        if os.path.exists("/var/lib/dpkg/statoverride"):
            shutil.copy("/var/lib/dpkg/statoverride", os.path.join(state, "varlib/dpkg"))
        else:
            open(os.path.join(state, "varlib/dpkg/statoverride"), "w").close()
        data = os.path.join(self.dir, "data")
        report = ('{ getent passwd tunneld; getent group tunneld; '
                  'ls -ld /var/lib/tunneld /var/log/tunneld /etc/tunneld/tunneld.yaml; '
                  'grep tunneld /var/lib/dpkg/statoverride; '
                  'ls -l /etc/systemd/system/tunneld.service '
                  '/etc/systemd/system/multi-user.target.wants/tunneld.service; '
                  'find /var/lib/systemd -name "tunneld*"; } >"$STATE/report.%d" 2>&1 || true')
        lines = ['set -e', 'export STATE=%s PATH=%s:$PATH' % (state, self.stubs),
                 'export DPKG_MAINTSCRIPT_PACKAGE=tunneld DPKG_ROOT=',
                 'mount --bind "$STATE/etc" /etc', 'mount --bind "$STATE/varlib" /var/lib']
        lines += ["mount -t tmpfs none %s" % d for d in ("/var/log", "/run", "/lib/systemd/system")]
        # What dpkg unpacks before the postinst: the conffile and the unit.
        lines += ["mkdir -p /etc/tunneld",
                  "cp %s/etc/tunneld/tunneld.yaml /etc/tunneld/" % data,
                  "cp %s/lib/systemd/system/tunneld.service /lib/systemd/system/" % data]
        for i, (script, args, systemd) in enumerate(steps):
            lines.append("mkdir -p /run/systemd/system" if systemd else "rm -rf /run/systemd")
            if script == "!":
                lines.append(args)
            else:
                lines.append("DPKG_MAINTSCRIPT_NAME=%s sh %s/control/%s %s"
                             % (script, self.dir, script, args))
            lines.append('mv "$STATE/calls" "$STATE/calls.%d" 2>/dev/null || :>"$STATE/calls.%d"'
                         % (i, i))
            lines.append(report % i)
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            "\n".join(lines)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout.decode())
        out = []
        for i in range(len(steps)):
            with open(os.path.join(state, "calls.%d" % i)) as fh:
                calls = fh.read().splitlines()
            with open(os.path.join(state, "report.%d" % i)) as fh:
                out.append((calls, fh.read()))
        shutil.rmtree(state, ignore_errors=True)
        return out

    def test_install_upgrade_remove_purge(self):
        wants = "/etc/systemd/system/multi-user.target.wants/tunneld.service"
        steps = self.run_steps([
            ("postinst", "configure", False),                # first install, no systemd
            ("postinst", "configure", False),                # configure again: idempotent
            ("!", "rm " + wants, False),                     # systemctl disable tunneld
            ("postinst", "configure 0.0.9", True),           # upgrade, systemd running
            ("prerm", "upgrade 0.1.1", True),
            ("prerm", "remove", True),
            ("!", "rm /lib/systemd/system/tunneld.service", False),  # dpkg removes the files
            ("postrm", "remove", True),
            ("postrm", "purge", False)])
        (inst, inst_r), (again, again_r), _, (up, up_r), (prerm_up, _), (prerm, _), _, \
            (rm, rm_r), (purge, purge_r) = steps

        self.assertRegex(inst_r, r"(?m)^tunneld:x:\d+:\d+:[^:]*:/var/lib/tunneld:/usr/sbin/nologin$")
        self.assertRegex(inst_r, r"(?m)^tunneld:x:\d+:$")
        self.assertRegex(inst_r, r"(?m)^drwxr-x--- \d+ tunneld +tunneld .* /var/lib/tunneld$")
        self.assertRegex(inst_r, r"(?m)^drwxr-x--- \d+ tunneld +tunneld .* /var/log/tunneld$")
        self.assertRegex(inst_r, r"(?m)^-rw-r----- \d+ root +tunneld .* /etc/tunneld/tunneld.yaml$")
        self.assertIn("root tunneld 640 /etc/tunneld/tunneld.yaml", inst_r)
        self.assertRegex(inst_r, re.escape(wants) + " -> /lib/systemd/system/tunneld.service")
        self.assertEqual(inst, [], "nothing is started without systemd")

        self.assertEqual(again_r, inst_r, "a second configure changes nothing")
        self.assertNotRegex(up_r, re.escape(wants) + " -> ",
                            "an administrator's disable survives an upgrade")
        self.assertEqual(up, ["systemctl --system daemon-reload",
                              "deb-systemd-invoke restart tunneld.service"])
        self.assertEqual(prerm_up, [], "an upgrade restarts in the postinst, not stops here")
        self.assertEqual(prerm, ["deb-systemd-invoke stop tunneld.service"])

        self.assertIn("systemctl --system daemon-reload", rm)
        self.assertEqual([c for c in rm if "daemon-reload" not in c], [], "only reloads")
        self.assertRegex(rm_r, r"/etc/systemd/system/tunneld.service -> /dev/null",
                         "masked while removed")
        self.assertIn("/var/lib/tunneld", rm_r, "remove keeps the state")
        self.assertIn("root tunneld 640", rm_r)

        self.assertNotIn("/var/lib/tunneld\n", purge_r.replace(":/var/lib/tunneld:", ""))
        self.assertNotRegex(purge_r, r"(?m) /var/(lib|log)/tunneld$")
        self.assertNotIn("640", purge_r, "the statoverride is gone")
        self.assertNotIn("/etc/systemd/system/tunneld.service ->", purge_r, "unmasked")
        self.assertNotIn("deb-systemd-helper-enabled", purge_r)
        self.assertRegex(purge_r, r"(?m)^tunneld:x:\d+:\d+:", "the user is kept")
        self.assertRegex(purge_r, r"(?m)^tunneld:x:\d+:$", "the group is kept")


def main():
    global DEB, WORK
    if len(sys.argv) < 3:
        sys.exit("usage: test_deb.py DEB WORKDIR")
    DEB, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    os.makedirs(WORK, exist_ok=True)
    unittest.main(argv=sys.argv[:1], verbosity=2)


if __name__ == "__main__":
    main()
