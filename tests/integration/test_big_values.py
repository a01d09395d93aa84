"""Large values read straight into their items, against Debian's memcached 1.6.18 (issue 13).

cached reads a large value's missing bytes and what follows them in one readv (item + read
buffer), and after a large value its next read takes only a command's head (1 KB) so the next
large value goes straight into its item as well. These scenarios cross those paths: values at
the 1 KB and 16 KB boundaries, a set and a get in one write, a large set followed by a burst
of small pipelined commands, values arriving in odd pieces with the "\\r\\n" split, a bad
trailer, a too-large value after a large one, and the binary protocol. Every reply must be
byte-identical to memcached's.
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import MEMCACHED, Checker, Server  # noqa: E402

ARGS = ["-m", "256", "-I", "1m"]


def value(n, seed):
    r = random.Random(seed)
    return (bytes(r.getrandbits(8) for _ in range(min(n, 4096))) * (n // 4096 + 1))[:n]


def read_replies(c, end_marker, timeout=30):
    """Reads until the reply ends with end_marker (the last command's reply)."""
    data = b""
    deadline = time.time() + timeout
    while not data.endswith(end_marker) and time.time() < deadline:
        chunk = c.sock.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    return data


def scenario(srv):
    out = []
    with srv.connect(timeout=30) as c:
        # boundaries of the 1 KB head read and the 16 KB direct read
        for i, n in enumerate([1000, 1023, 1024, 1025, 16300, 16383, 16384, 16385, 102400,
                               500000, 1000000, 1048000]):
            v = value(n, i)
            c.send(b"set b%d 0 0 %d\r\n%s\r\nget b%d\r\n" % (i, n, v, i))
            out.append(read_replies(c, b"END\r\n"))
        # a large set, then a burst of small commands in one write (> the 1 KB head)
        v = value(200000, 99)
        c.send(b"set big 1 0 %d\r\n%s\r\n" % (len(v), v))
        burst = b"".join(b"set s%d 0 0 5 noreply\r\nhello\r\nget s%d\r\n" % (i, i) for i in range(300))
        c.send(burst + b"mn\r\n")
        out.append(read_replies(c, b"MN\r\n"))
        # a large value in odd pieces, "\r\n" split
        v = value(300000, 7)
        c.send(b"set pieces 0 0 %d\r\n" % len(v))
        r = random.Random(5)
        pos = 0
        while pos < len(v):
            step = r.choice([1, 7, 1024, 1025, 16384, 50000])
            c.send(v[pos:pos + step])
            pos += step
            if r.random() < 0.05:
                time.sleep(0.01)
        c.send(b"\r")
        time.sleep(0.05)
        c.send(b"\nget pieces\r\n")
        out.append(read_replies(c, b"END\r\n"))
        # a bad trailer after a large value, then a too-large value after a large one
        v = value(100000, 3)
        c.send(b"set bad 0 0 %d\r\n%sXX\r\n" % (len(v), v))
        c.send(b"mn\r\n")
        out.append(read_replies(c, b"MN\r\n"))
        v = value(100000, 4)
        c.send(b"set ok 0 0 %d\r\n%s\r\n" % (len(v), v))
        big = value(2 * 1024 * 1024, 5)
        c.send(b"set huge 0 0 %d\r\n%s\r\nget ok huge\r\n" % (len(big), big))
        out.append(read_replies(c, b"END\r\n"))
    # binary protocol: a large set and get
    with srv.connect(timeout=30) as c:
        v = value(150000, 11)
        key = b"binbig"
        extras = b"\x00\x00\x00\x00\x00\x00\x00\x00"
        hdr = bytes([0x80, 0x01]) + len(key).to_bytes(2, "big") + bytes([8, 0, 0, 0]) + \
            (8 + len(key) + len(v)).to_bytes(4, "big") + b"\x00" * 12
        get = bytes([0x80, 0x00]) + len(key).to_bytes(2, "big") + b"\x00" * 4 + \
            len(key).to_bytes(4, "big") + b"\x00" * 12 + key
        c.send(hdr + extras + key + v + get)
        want = 24 + 24 + 4 + len(v)
        data = b""
        deadline = time.time() + 30
        while len(data) < want and time.time() < deadline:
            chunk = c.sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        # mask the CAS (bytes 16..24 of each header)
        out.append(data[:16] + data[24:24 + 16] + data[24 + 24:])
    return out


def main():
    ck = Checker("big_values")
    with Server(MEMCACHED, args=ARGS) as mc:
        want = scenario(mc)
    with Server(args=ARGS) as srv:
        got = scenario(srv)
        for i, (g, w) in enumerate(zip(got, want)):
            ck.check(g == w, "reply %d identical to memcached's (%d vs %d bytes; first "
                     "difference at %s)" % (i, len(g), len(w), next(
                         (j for j in range(min(len(g), len(w))) if g[j] != w[j]),
                         min(len(g), len(w)))))
        ck.eq(len(got), len(want), "as many replies")
        with srv.connect() as c:
            ck.eq(c.cmd("mn"), b"MN\r\n", "cached still answers")
    ck.done()


if __name__ == "__main__":
    main()
