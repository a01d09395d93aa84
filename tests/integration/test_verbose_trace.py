#!/usr/bin/python3
"""-v / -vv stderr lines per connection against Debian's memcached 1.6.18, line for line.

Both servers run with the same flags and get the same bytes on one connection; their stderr
is reduced to the lines of that connection (the fd in "FD: Client using the ... protocol",
or the one "new ... client connection" line when the protocol is fixed by -B) and its
fd numbers are replaced by "N". What is left must be equal: "<N new auto-negotiating client
connection", "<N get foo", ">N sending key foo", ">N END", ">N NOREPLY STORED", the binary
header dumps, "CAS:  failure: ...", "<N connection closed." and so on. Lines that are
neither server's per-connection output are dropped: cached's timestamped log lines, memcached's
slab class table and LRU crawler chatter (cached has no such threads to report).
"""
import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import harness  # noqa: E402
from harness import MEMCACHED, CACHED, Checker, Server  # noqa: E402

QUIET = 1.0 if harness.ASAN else 0.4
NOISE = re.compile(r"^(\d{4}-\d\d-\d\dT|slab class|Exiting normally|Starting LRU|Kicking LRU|"
                   r"Nothing left to crawl|LRU crawler|LRU maintainer|<\d+ server listening)")
FD_LINE = re.compile(r"^(?:[<>](\d+)[ :]|(\d+): )")
BIG = b"k" * 250


def binreq(op, key=b"", extras=b"", value=b"", cas=0, opaque=0):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0, len(body), opaque,
                       cas) + body


CLASSIC = [
    b"set foo 0 0 3\r\nbar\r\nget foo foo nope\r\ngets foo\r\ngat 10 foo\r\ngats 10 nope\r\n",
    b"get " + BIG + b"\r\nget foo " + BIG + b"x\r\nget\r\ntouch foo 10\r\ntouch nope 10 noreply\r\n",
    b"incr foo 1 noreply\r\nset n 0 0 1\r\n5\r\nincr n 10 noreply\r\ndecr n 100\r\nincr n 7\r\n",
    b"cas n 0 0 1 999999\r\n1\r\ncas nope 0 0 1 1 noreply\r\n1\r\n",
    b"set x 0 0 2\r\nabc\r\nset y 0 0 abc\r\nverbosity 2\r\nflush_all 0 noreply\r\nflush_all\r\n",
    b"stats settings\r\nstats bogus\r\nstats detail dump\r\nstats detail on\r\nstats detail off\r\n",
    b"stats reset\r\nversion\r\ncache_memlimit 100\r\nshutdown\r\ndelete a 0\r\ndelete a 5\r\n",
    b"append nope 0 0 1 noreply\r\nx\r\nadd foo 0 0 1 noreply\r\n1\r\nbogus\r\n\r\nlru mode flat\r\n",
    b"set split 0 0 10\r\n01234", b"56789\r\n", b"set split 0 0 3 noreply\r\nab", b"c\r\n",
    b"set big 0 0 3000\r\n" + b"v" * 3000 + b"\r\nget big split\r\nquit\r\n",
]
META = [
    b"ms foo 3 T0\r\nbar\r\nmg foo v\r\nmg foo s v t f c k O123 q\r\nmg nope v\r\nmg nope v q\r\nmn\r\n",
    b"ms foo 2 q\r\nhi\r\nms foo abc\r\nms foo 2\r\nabcd\r\nmg foo zz\r\nmg\r\nme foo\r\nme nope\r\n",
    b"md foo q\r\nmd foo\r\nma nope\r\nma n N0 J5\r\nma n MD D9\r\nmg " + BIG + b"x v\r\n",
    b"ms sp 4 c\r\nab", b"cd\r\nmn\r\n",
]
BINARY = [
    binreq(0x01, b"foo", struct.pack(">II", 0, 0), b"abc") + binreq(0x00, b"foo") + binreq(0x00, b"bar"),
    binreq(0x0c, b"foo") + binreq(0x04, b"foo") + binreq(0x04, b"foo"),
    binreq(0x05, b"n", struct.pack(">QQI", 3, 10, 0)) + binreq(0x06, b"n", struct.pack(">QQI", 1, 0, 0)),
    binreq(0x02, b"foo", struct.pack(">II", 0, 0), b"x") + binreq(0x0e, b"foo", b"", b"yz"),
    binreq(0x01, b"c", struct.pack(">II", 0, 0), b"v", cas=12345) + binreq(0x1c, b"foo", struct.pack(">I", 5)),
    binreq(0x0a) + binreq(0x07),
]


def session(binary, args, steps):
    s = Server(binary, args + ["-t", "1"], kind=None)
    try:
        c = socket.create_connection((s.host, s.port), timeout=10)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.settimeout(QUIET)
        for data in steps:
            c.sendall(data)
            try:
                while c.recv(65536):
                    pass
            except socket.timeout:
                pass
        c.close()
        time.sleep(QUIET)
    finally:
        s.stop()
    return s.stderr_text


def our_lines(text):
    lines = [l for l in text.splitlines() if not NOISE.match(l)]
    fd = None
    for l in lines:
        m = re.match(r"^(\d+): Client using the", l)
        if m:
            fd = m.group(1)
    if fd is None:  # -B: no negotiation line; the connection that sent something
        fds = [re.match(r"^<(\d+) new", l).group(1) for l in lines if re.match(r"^<\d+ new", l)]
        fd = fds[-1] if fds else None
    out = []
    for l in lines:
        m = FD_LINE.match(l)
        if m and (m.group(1) or m.group(2)) != fd:
            continue  # the harness's port probe, or another connection
        out.append(re.sub(r"^([<>]?)%s\b" % fd, r"\1N", l) if fd else l)
    # the harness's port probe may have had the same fd just before
    while len(out) >= 2 and out[0].startswith("<N new ") and out[1] == "<N connection closed.":
        out = out[2:]
    return out


def compare(ck, name, args, steps):
    got = our_lines(session(CACHED, args, steps))
    want = our_lines(session(MEMCACHED, args, steps))
    if not ck.eq(got, want, "%s %s: stderr lines" % (name, " ".join(args))):
        import difflib
        print("\n".join(difflib.unified_diff(want, got, "memcached", "cached", lineterm="", n=1)))
    return got


def main():
    ck = Checker("test_verbose_trace")
    got = compare(ck, "classic", ["-vv"], CLASSIC)
    ck.check(any(l.startswith(">N NOREPLY ") for l in got) and ">N END" in got, "classic -vv: replies traced")
    compare(ck, "meta", ["-vv"], META)
    got = compare(ck, "binary", ["-vv"], BINARY)
    ck.check("N: Client using the binary protocol" in got and ">N Writing bin response:" in got,
             "binary -vv: header dumps")
    got = compare(ck, "classic", ["-vv", "-B", "ascii"], CLASSIC[:3])
    ck.check("<N new ascii client connection." in got, "-B ascii: memcached's connection line")
    got = compare(ck, "classic", ["-v"], CLASSIC)
    ck.check(not any(l.startswith(("<N", ">N")) for l in got), "-v: no per-connection lines")
    compare(ck, "classic", [], CLASSIC[:4])
    ck.done()


if __name__ == "__main__":
    main()
