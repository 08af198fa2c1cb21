#!/usr/bin/env python3
"""Generate the seed corpora of fuzz_wstan_msg and fuzz_wstan_uri.

An independent re-implementation of the wstan message format (spec section
4) with the `cryptography` package; the first seeds are the spec's test
vectors (TV3..TV6, TV9, TV10).  Run from the repository root:

    python3 tests/vectors/gen_wstan_seeds.py

See the fuzz targets for the input layouts (flags byte, then messages)."""
import base64
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

K16 = bytes(range(16))
K32 = bytes.fromhex("ebb803658289897e6c8c5cf48300651b5012ea64cd9cb0830d4ce31451e106a2")
NC = b"the sample nonce"
NS = bytes.fromhex("b37a4f2cc0624f1690f64606cf385945")
TS = 1700000000.5
STAR = "\u2605".encode()

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")


class Stream:
    def __init__(self, key, nonce, tls=False):
        self.key, self.tls = key, tls
        self.enc = None if tls else Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()

    def seal(self, plain, tagged):
        ct = plain if self.tls else self.enc.update(plain)
        if tagged:
            ct += hmac.new(self.key, ct, "sha1").digest()[:10]
        return ct


def addr(host, port):
    import ipaddress
    try:
        ip = ipaddress.ip_address(host)
        return bytes([0, 1 if ip.version == 4 else 4]) + ip.packed + struct.pack(">H", port)
    except ValueError:
        return bytes([0, 3, len(host)]) + host.encode() + struct.pack(">H", port)


def req(s, host, port, data=b"", cmd=0, ts=TS):
    return s.seal(bytes([cmd]) + struct.pack(">d", ts) + addr(host, port) + data, True)


def empty_req(s, ts=TS):
    return s.seal(b"\x02" + struct.pack(">d", ts), True)


def dat(s, data):
    return s.seal(b"\x01" + data, False)


def dgm(s, host, port, data):
    return s.seal(b"\x03" + addr(host, port) + data, False)


def rst(s, reason="", err="", pad=40):
    return s.seal(b"\x02" + reason.encode() + STAR + err.encode() + b" " * pad, True)


def frames(flags, msgs):
    out = bytes([flags])
    for m in msgs:
        out += struct.pack(">H", len(m)) + m
    return out


def write(target, name, blob):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob)


GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


def msg_seeds():
    # Flags: 1 TLS, 2 key32, 4 Ns, 8 first request (server), 16 fix tags,
    # 32/64 initial state (0 IDLE, 1 USING, 2 RESETTING, 3 CONNECTING),
    # 128 server role.
    s = Stream(K16, NC)
    tv3 = req(s, "example.com", 80, GET)
    assert tv3.hex().startswith("9b27b2e30cdba8ae") and tv3.hex().endswith("40bd116a0506dc8f112d")
    tv4 = dat(s, b"hello")
    assert tv4.hex() == "72495b836289"
    write("fuzz_wstan_msg", "tv3_req_tv4_dat", frames(0x08, [tv3, tv4, dat(s, b"more"),
                                                             rst(s, "", "", 41)]))

    s = Stream(K16, NS)
    tv5 = [dat(s, b"HTTP/1.1 200 OK\r\n\r\n"), rst(s)]
    assert tv5[0].hex() == "dbef6e1ee1ed56792d2255aa11a03683a51c8b55"
    write("fuzz_wstan_msg", "tv5_client_dat_rst", frames(0x24, tv5))

    s = Stream(K16, NS)
    tv6 = rst(s, "can't connect to example.com:80", "[Errno 111] Connection refused")
    assert tv6.hex().startswith("d8c45b2496b6")
    write("fuzz_wstan_msg", "tv6_client_rst_reason", frames(0x24, [tv6]))

    s = Stream(K32, NC)
    tv9 = req(s, "192.0.2.1", 443)
    assert tv9.hex() == "7f80260e990c33ccaeec76f20e3d48df680a6eae43e0457a54e69f"
    write("fuzz_wstan_msg", "tv9_password_req", frames(0x0a, [tv9, dat(s, b"x" * 33)]))

    s = Stream(K16, NC, tls=True)
    tv10 = req(s, "example.com", 80, GET)
    assert tv10[-10:].hex() == "b65fc82b9dccca3dd3ed"
    write("fuzz_wstan_msg", "tv10_tls_session", frames(0x09, [
        tv10, dat(s, b"abc"), rst(s, "", "", 3), rst(s, "x", "", 0)]))

    # Server: empty request, then a pooled in-band REQ, data, reset.
    s = Stream(K16, NC)
    write("fuzz_wstan_msg", "server_empty_then_inband", frames(0x08, [
        empty_req(s), req(s, "2001:db8::1", 8080, b"hi", ts=TS + 5), dat(s, b"a" * 20),
        rst(s, "connection to user-agent broken", "", 100)]))

    # Server: UDP request, then in-band datagrams.
    s = Stream(K16, NC)
    write("fuzz_wstan_msg", "server_dgm", frames(0x18, [
        req(s, "192.0.2.53", 53, b"\x12\x34query", cmd=3), dgm(s, "example.com", 53, b"q2"),
        dgm(s, "192.0.2.1", 1, b""), rst(s)]))

    # Client in RESETTING (flags 0x40): DATs are skipped, then RST.
    s = Stream(K16, NS)
    write("fuzz_wstan_msg", "client_resetting_skip", frames(0x44, [
        dat(s, b"late" * 7), dat(s, b""), rst(s, "", "", 7), dat(s, b"?")]))


def uri_seeds():
    # Flags: bits 0-1 prefix ("", "/", "/ws", "/ws/"), 4 TLS, 8 fix tags,
    # 16 key32, 32 compatible (cookie).
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    s = Stream(K16, NC)
    path = "/" + base64.urlsafe_b64encode(req(s, "example.com", 80, GET)).decode()
    assert path.startswith("/myey4wzbqK4jrDzO_-ZCLolhsKzx0pLZNrNmP0QD57mCUb3")
    write("fuzz_wstan_uri", "tv3_default", bytes([0x01]) + path.encode() + b"\n\n" + key + b"\n"
          + addr("example.com", 80) + b"trailing")
    s = Stream(K32, NC)
    path = "/ws/" + base64.urlsafe_b64encode(req(s, "192.0.2.1", 443)).decode() + "?q=1"
    assert path == "/ws/f4AmDpkMM8yu7HbyDj1I32gKbq5D4EV6VOaf?q=1"
    write("fuzz_wstan_uri", "tv9_prefix_ws", bytes([0x12]) + path.encode() + b"\n\n" + key + b"\n"
          + addr("192.0.2.1", 443))
    s = Stream(K16, NC)
    path = "/" + base64.urlsafe_b64encode(req(s, "example.com", 80, b"", cmd=3)).decode()
    write("fuzz_wstan_uri", "compat_cookie_dgm", bytes([0x21]) + path.encode()
          + b"\n_H=dGhlIHNhbXBsZSBub25jZQ==\nAAAAAAAAAAAAAAAAAAAAAA==\n"
          + addr("2001:db8::1", 8080))
    s = Stream(K16, NC, tls=True)
    path = "http://h:80/" + base64.urlsafe_b64encode(empty_req(s)).decode()
    write("fuzz_wstan_uri", "tls_empty_absolute", bytes([0x05]) + path.encode() + b"\n\n" + key
          + b"\ncan't connect\xe2\x98\x85[Errno 111]  \t")
    write("fuzz_wstan_uri", "bad_padding_and_key", bytes([0x00]) + b"/AAECAwQFBgcICQoLDA0ODw\n"
          + b"_H;=x\n" + b"AAEC AwQF BgcI CQoL DA0O Dw==\n" + b"AAEC AwQF BgcI CQoL DA0O Dw==")
    write("fuzz_wstan_uri", "domain_addr_text", bytes([0x0b]) + b"/ws/AAAA\n\n" + key + b"\n"
          + b"\x00\x03\xff" + b"a" * 255 + b"\x01\xbb\xff\xfe\xe2\x98")


if __name__ == "__main__":
    msg_seeds()
    uri_seeds()
