"""`user:` drops root after the listeners are bound: the daemon then runs
with that uid and still serves, and an unknown user stops start-up.  Needs
root; skipped (exit 77) otherwise."""

import os
import pwd
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402


def uids_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    return []


class PrivdropTest(unittest.TestCase):
    def test_runs_as_user(self):
        nobody = pwd.getpwnam("nobody")
        cfg = h.make_config([{"name": "socks", "type": "socks5"}]) + "user: nobody\n"
        echo = h.TcpEcho()
        d = h.Daemon(cfg)
        try:
            self.assertEqual(set(uids_of(d.pid)), {nobody.pw_uid},
                             "real, effective, saved and fs uid must all be dropped")
            self.assertTrue(d.wait_log(r"running as user nobody"))
            s = h.socks5_open(d.port("socks"), "127.0.0.1", echo.port)
            with s:
                s.sendall(b"still serving")
                self.assertEqual(h.recv_exact(s, 13), b"still serving")
        finally:
            d.stop()
            echo.close()

    def test_unknown_user_refuses_to_start(self):
        cfg = h.make_config([{"name": "socks", "type": "socks5"}]) + "user: no-such-user-x\n"
        with self.assertRaises(h.DaemonError) as ctx:
            h.Daemon(cfg)
        self.assertIn("no such user", str(ctx.exception))


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("skipped: needs root")
        sys.exit(77)
    unittest.main()
