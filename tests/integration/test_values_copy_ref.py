"""Values of 1 KB to 100 KB, copied into the reply or referenced in their item (issue 18).

A value shorter than 2 KB (PROTO_INLINE_VALUE_MAX) is copied into the reply and its item
released at once; a longer one is sent from its item, which the reply keeps referenced until
its bytes are written. A set hashes its key once, for the allocation and the store. Checked:
1. Byte-identical replies to Debian's memcached 1.6.18 for get/gets/mg/append/prepend/cas/
   incr on values around the copy threshold and up to 100 KB, pipelined and in one write,
   mixed with small keys (CAS values masked: the two servers number differently after a
   failed cas).
2. Under eviction (-m 8, a writer of 1-100 KB values on another connection): every hit is
   exactly the bytes some set stored for that key (values carry their key and version), also
   for a reader that asks for many large values and reads nothing for a while (the items
   its reply references are evicted meanwhile), and append/prepend keep their value whole.
"""
import os
import random
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, MEMCACHED, Checker, Server  # noqa: E402

BLOCK = bytes(random.Random(18).getrandbits(8) for _ in range(1 << 18))
SIZES = [1000, 1024, 2046, 2047, 2048, 2049, 3000, 4096, 16383, 16384, 16385, 65536, 102400]


def value(key, ver, n):
    """n bytes that name their key and version, then a slice of BLOCK picked by both."""
    head = b"%s|%d|%d|" % (key, ver, n)
    off = zlib.crc32(b"%s|%d" % (key, ver)) & 0xffff
    body = (BLOCK[off:] + BLOCK)[:max(0, n - len(head))]
    return (head + body)[:n]


def well_formed(key, data):
    """True if data is value(key, ver, len(data)) for the version it names."""
    parts = data.split(b"|", 3)
    if len(parts) < 4 or parts[0] != key:
        return False
    try:
        ver, n = int(parts[1]), int(parts[2])
    except ValueError:
        return False
    return n == len(data) and value(key, ver, n) == data


def read_n(c, n, deadline):
    while len(c.buf) < n and time.time() < deadline:
        c._fill()
    out, c.buf = c.buf[:n], c.buf[n:]
    return out


def mask_cas(reply):
    """VALUE lines of gets: the fifth field (CAS) replaced by 'C'."""
    out = []
    for line in reply.split(b"\r\n"):
        p = line.split(b" ")
        if len(p) == 5 and p[0] == b"VALUE":
            line = b" ".join(p[:4] + [b"C"])
        out.append(line)
    return b"\r\n".join(out)


def scenario(srv):
    """Replies of a fixed script, one per step."""
    out = []
    with srv.connect(timeout=60) as c:
        def step(data):
            """Sends data and an mn; the replies up to MN are one step's."""
            c.send(data + b"mn\r\n")
            out.append(mask_cas(c.read_until(b"MN\r\n")))
        for i, n in enumerate(SIZES):
            k = b"v%d" % i
            v = value(k, 1, n)
            step(b"set %s %d 0 %d\r\n%s\r\nget %s\r\ngets %s\r\n" % (k, i, n, v, k, k))
            step(b"mg %s v s f k\r\n" % k)
            step(b"append %s 0 0 5\r\n+tail\r\nprepend %s 0 0 5\r\nhead+\r\nget %s\r\n" % (k, k, k))
        # every value in one multi-get, pipelined with small keys and misses
        keys = b" ".join(b"v%d" % i for i in range(len(SIZES)))
        step(b"set small 0 0 3\r\nabc\r\nget %s small nope %s\r\n" % (keys, keys))
        # cas on a referenced value: a wrong one, then the right one from gets
        c.send(b"gets v10\r\n")
        line = c.readline()
        cas = line.split()[4]
        c.readexact(int(line.split()[3]) + 2)
        c.readline()
        v = value(b"v10", 2, 20000)
        step(b"cas v10 0 0 %d 1\r\n%s\r\ncas v10 0 0 %d %s\r\n%s\r\nget v10\r\n"
             % (len(v), v, len(v), cas, v))
        # numbers written over a referenced value's key; then delete and miss
        step(b"set n 0 0 2\r\n10\r\nincr n 5\r\nset v9 0 0 2\r\n42\r\nincr v9 1\r\n"
             b"delete v8\r\nget v8 v9 n\r\n")
    return out


def compare(ck):
    args = ["-m", "256"]
    with Server(MEMCACHED, args=args) as mc:
        want = scenario(mc)
    with Server(args=args) as srv:
        got = scenario(srv)
    ck.eq(len(got), len(want), "as many replies as memcached")
    for i, (g, w) in enumerate(zip(got, want)):
        ck.check(g == w, "step %d identical to memcached's (%d vs %d bytes): %r" %
                 (i, len(g), len(w), g[:80]))


def writer(srv, stop, stats):
    """Sets keys w0..w299 with values of 1-100 KB, versions counting up, until stopped."""
    r = random.Random(1)
    ver = 0
    with srv.connect(timeout=60) as c:
        while not stop.is_set():
            batch = []
            for _ in range(8):
                ver += 1
                k = b"w%d" % r.randrange(300)
                v = value(k, ver, r.choice([1024, 1500, 2047, 2049, 5000, 30000, 100000]))
                batch.append(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k, len(v), v))
            c.send(b"".join(batch) + b"mn\r\n")
            c.read_until(b"MN\r\n")
            stats["sets"] += 8


def parse_values(ck, data, what):
    """Checks every VALUE in a get reply; returns the number of hits."""
    hits, pos = 0, 0
    while True:
        nl = data.index(b"\r\n", pos)
        line = data[pos:nl]
        if line == b"END":
            return hits
        p = line.split()
        n = int(p[3])
        v = data[nl + 2:nl + 2 + n]
        ck.check(well_formed(p[1], v) and data[nl + 2 + n:nl + 4 + n] == b"\r\n",
                 "%s: %s is a value its key stored (%d bytes)" % (what, p[1].decode(), n))
        hits += 1
        pos = nl + 4 + n


def under_eviction(ck):
    with Server(args=["-m", "8"]) as srv:
        stop = threading.Event()
        stats = {"sets": 0}
        t = threading.Thread(target=writer, args=(srv, stop, stats))
        t.start()
        hits = 0
        r = random.Random(2)
        try:
            with srv.connect(timeout=60) as c, srv.connect(timeout=60) as slow:
                deadline = time.time() + (20 if ASAN else 8)
                rounds = 0
                while time.time() < deadline:
                    rounds += 1
                    keys = b" ".join(b"w%d" % r.randrange(300) for _ in range(20))
                    c.send(b"get %s\r\n" % keys)
                    hits += parse_values(ck, c.read_until(b"END\r\n"), "get")
                    if rounds % 10 == 1:
                        # a reader that asks for 60 values and reads none for a while
                        keys = b" ".join(b"w%d" % i for i in r.sample(range(300), 60))
                        slow.send(b"get %s\r\n" % keys)
                        time.sleep(0.3)
                        hits += parse_values(ck, slow.read_until(b"END\r\n"), "slow get")
                    # append/prepend on one key, checked whole when it is still there
                    base = value(b"ap", rounds, 3000)
                    c.send(b"set ap 0 0 3000\r\n%s\r\nappend ap 0 0 1024\r\n%s\r\n"
                           b"prepend ap 0 0 1024\r\n%s\r\nget ap\r\n"
                           % (base, b"a" * 1024, b"p" * 1024))
                    reply = c.read_until(b"END\r\n")
                    head = b"VALUE ap 0 5048\r\n"
                    if head in reply:
                        ck.check(reply.endswith(head + b"p" * 1024 + base + b"a" * 1024 +
                                                b"\r\nEND\r\n"), "append/prepend whole")
                ev = int(c.stats()["evictions"])
        finally:
            stop.set()
            t.join(60)
        ck.check(ev > 0, "the writer evicted (%d evictions, %d sets)" % (ev, stats["sets"]))
        ck.check(hits > 100, "reads hit (%d hits)" % hits)
        with srv.connect() as c:
            ck.eq(c.cmd("mn"), b"MN\r\n", "cached still answers")


def main():
    ck = Checker("values_copy_ref")
    compare(ck)
    under_eviction(ck)
    ck.done()


if __name__ == "__main__":
    main()
