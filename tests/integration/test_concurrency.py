"""500 concurrent SOCKS5 connections to a TCP echo server, all held open at
once, each echoing unique data."""

import asyncio
import os
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tdharness as h  # noqa: E402

N_CONN = 500


async def _open_one(port, echo_port, idx, timeout):
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        w.write(b"\x05\x01\x00")
        greet = await asyncio.wait_for(r.readexactly(2), timeout)
        if greet != b"\x05\x00":
            raise AssertionError("conn %d: greeting reply %r" % (idx, greet))
        w.write(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", echo_port))
        rep = await asyncio.wait_for(r.readexactly(4), timeout)
        if rep[:2] != b"\x05\x00":
            raise AssertionError("conn %d: CONNECT reply %r" % (idx, rep))
        if rep[3] == 1:
            rest = 6
        elif rep[3] == 4:
            rest = 18
        elif rep[3] == 3:
            rest = (await asyncio.wait_for(r.readexactly(1), timeout))[0] + 2
        else:
            raise AssertionError("conn %d: bad bound ATYP %r" % (idx, rep))
        await asyncio.wait_for(r.readexactly(rest), timeout)
        return r, w
    except BaseException:
        w.close()
        raise


async def _exchange(r, w, idx, timeout):
    msg = (b"conn-%05d:" % idx) * (1 + idx % 97) + os.urandom(64)
    w.write(msg)
    await w.drain()
    got = await asyncio.wait_for(r.readexactly(len(msg)), timeout)
    if got != msg:
        raise AssertionError("conn %d: echo mismatch" % idx)
    return len(msg)


async def _run(port, echo_port, echo, timeout):
    opened = await asyncio.gather(*[_open_one(port, echo_port, i, timeout)
                                    for i in range(N_CONN)], return_exceptions=True)
    errors = [e for e in opened if isinstance(e, BaseException)]
    conns = [c for c in opened if not isinstance(c, BaseException)]
    try:
        if errors:
            return {"errors": errors, "opened": len(conns)}
        # all 500 relays are established now; check the echo server holds them all
        for _ in range(int(50 * h.SLOW)):
            if echo.active >= N_CONN:
                break
            await asyncio.sleep(0.1)
        held = echo.active
        # round 1 and round 2 of unique data on every connection, concurrently
        res1 = await asyncio.gather(*[_exchange(r, w, i, timeout)
                                      for i, (r, w) in enumerate(conns)], return_exceptions=True)
        res2 = await asyncio.gather(*[_exchange(r, w, i + 100000, timeout)
                                      for i, (r, w) in enumerate(conns)], return_exceptions=True)
        bad = [e for e in res1 + res2 if isinstance(e, BaseException)]
        return {"errors": bad, "opened": len(conns), "held": held}
    finally:
        for r, w in conns:
            w.close()
        for r, w in conns:
            try:
                await asyncio.wait_for(w.wait_closed(), 2)
            except (asyncio.TimeoutError, OSError):
                pass


class ConcurrencyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h.raise_nofile_limit()
        cls.echo = h.TcpEcho(backlog=1024)
        cls.origin = h.HttpOrigin()
        cfg = h.make_config([{"name": "socks", "type": "socks5"}],
                            limits={"max_connections": 2000, "idle_timeout": "60s"})
        cls.d = h.Daemon(cfg)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            cls.echo.close()
            cls.origin.close()

    def test_500_concurrent(self):
        soft, _ = h.resource.getrlimit(h.resource.RLIMIT_NOFILE)
        if soft < 3 * N_CONN:
            self.skipTest("RLIMIT_NOFILE %d too low for %d connections" % (soft, N_CONN))
        t0 = time.monotonic()
        res = asyncio.run(_run(self.d.port("socks"), self.echo.port, self.echo, h.scaled(30)))
        self.assertEqual(res["errors"][:5], [], "%d errors, opened %d"
                         % (len(res["errors"]), res["opened"]))
        self.assertEqual(res["opened"], N_CONN)
        self.assertEqual(res["held"], N_CONN, "echo server did not see all 500 relays at once")
        self.assertEqual(self.echo.max_active, N_CONN)
        # every connection is logged when it ends
        self.d.wait_log(r"\[conn\] #\d+ closed listener=socks .*target=127\.0\.0\.1:%d "
                        % self.echo.port, timeout=20, count=N_CONN)
        # the relays to the echo server are all gone
        for _ in range(int(100 * h.SLOW)):
            if self.echo.active == 0:
                break
            time.sleep(0.1)
        self.assertEqual(self.echo.active, 0, "daemon did not close the target side")
        # and the daemon still serves
        rc, sha, n, err = h.curl_sha256(["--socks5", "127.0.0.1:%d" % self.d.port("socks"),
                                         self.origin.url("/bytes?n=100000&seed=after500")])
        self.assertEqual((rc, n, sha), (0, 100000, h.expected_sha256(100000, "after500")), err)
        self.assertLess(time.monotonic() - t0, h.scaled(60))


if __name__ == "__main__":
    h.main()
