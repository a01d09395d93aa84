#!/usr/bin/python3
"""Multi-get (get/gets/gat/gats of many keys) against Debian's memcached, byte for byte.

cached looks a multi-get's keys up in batches (storage_get_batch, up to 32 keys a batch, keys
grouped by shard); the reply must still be exactly memcached's: request order, misses,
duplicates (next to each other and apart, across a batch boundary), expired keys, values of
every size (copied into the reply below 512 bytes, referenced in place above), long lines
(over 2048 bytes: read key by key as they arrive, also in small pieces), a bad key after 40
good ones, sets between gets in one pipelined send, and the hit/miss counters afterwards.
CAS numbers are compared by their pattern (the n-th distinct CAS of a connection), not value.
"""
import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402

ARGS = ["-m", "64", "-I", "1m", "-t", "2"]
SIZES = [0, 1, 7, 100, 447, 448, 511, 512, 513, 1000, 5000, 20000, 100000]
COUNTERS = ["cmd_get", "get_hits", "get_misses", "cmd_touch", "touch_hits", "touch_misses"]
CAS_RE = re.compile(rb"(VALUE \S+ \d+ \d+) (\d+)\r\n")


def key(i):
    return "mg:%d" % i


def value(i, size):
    rnd = random.Random(i * 7919 + size)
    return bytes(rnd.randrange(33, 127) for _ in range(size))


def read_reply(c, nends):
    """Reads until nends lines that end a reply (END or an error) have come."""
    out = b""
    while nends > 0:
        line = c.readline()
        out += line
        if line.startswith(b"VALUE "):
            n = int(line.split()[3])
            out += c.readexact(n + 2)
        elif line in (b"END\r\n", b"STORED\r\n") or line.startswith(b"CLIENT_ERROR"):
            nends -= 1
    return out


def norm_cas(data, seen):
    def sub(m):
        seen.setdefault(m.group(2), len(seen))
        return b"%s <cas%d>\r\n" % (m.group(1), seen[m.group(2)])
    return CAS_RE.sub(sub, data)


def script(srv):
    """The conversation: a list of (what, reply bytes), the same for both servers."""
    out = []
    seen = {}
    with srv.connect() as c:
        def ask(what, data, nends=1):
            c.send(data)
            out.append((what, norm_cas(read_reply(c, nends), seen)))

        for i in range(150):
            size = SIZES[i % len(SIZES)]
            c.send(b"set %s %d 0 %d\r\n%s\r\n" % (key(i).encode(), i * 3, size, value(i, size)))
            assert c.readline() == b"STORED\r\n"
        # keys that expire: set with exptime 1, wait until memcached's clock has passed them
        for i in range(1000, 1040):
            c.send(b"set %s 0 1 5\r\nhello\r\n" % key(i).encode())
            assert c.readline() == b"STORED\r\n"

        keys10 = [key(i) for i in range(10)]
        ask("get 10 hits", ("get %s\r\n" % " ".join(keys10)).encode())
        mixed = [key(i) for i in range(0, 300, 3)]  # 100 keys, half of them misses
        ask("get 100 mixed", ("get %s\r\n" % " ".join(mixed)).encode())
        ask("gets 100 mixed", ("gets %s\r\n" % " ".join(mixed)).encode())
        dups = [key(5)] * 5 + [key(6), key(7), key(5), key(999)] * 10 + [key(5)] * 40
        ask("get duplicates", ("get %s\r\n" % " ".join(dups)).encode())
        ask("get 2 keys", ("get %s %s\r\n" % (key(1), key(2))).encode())
        ask("get 33 misses", ("get %s\r\n" % " ".join(key(5000 + i) for i in range(33))).encode())
        ask("get 32 hits", ("get %s\r\n" % " ".join(key(i) for i in range(32))).encode())
        ask("get 64 big", ("get %s\r\n" % " ".join(
            key(i) for i in range(150) if SIZES[i % len(SIZES)] >= 5000)).encode())
        bad = " ".join(key(i) for i in range(40)) + " " + "x" * 251 + " " + key(1)
        ask("bad key after 40", ("get %s\r\n" % bad).encode())
        ask("after bad key", ("get %s %s\r\n" % (key(3), key(4))).encode())
        ask("gat 40", ("gat 0 %s\r\n" % " ".join(key(i) for i in range(0, 80, 2))).encode())
        ask("gats 40", ("gats 0 %s\r\n" % " ".join(key(i) for i in range(0, 80, 2))).encode())
        ask("gat bad exptime", b"gat abc mg:1 mg:2\r\n")
        ask("sets between gets", (
            "get %s\r\nset %s 9 0 3\r\nnew\r\nget %s\r\ndelete %s\r\nget %s\r\n" % (
                " ".join(keys10), key(3), " ".join(keys10), key(4), " ".join(keys10))).encode(),
            nends=4)
        long_keys = [key(i) + "-" + "z" * 12 for i in range(200)]
        for i in range(0, 200, 4):
            c.send(b"set %s 1 0 3\r\nabc\r\n" % long_keys[i].encode())
            assert c.readline() == b"STORED\r\n"
        line = ("get %s\r\n" % " ".join(long_keys + [key(i) for i in range(40)])).encode()
        ask("long line", line)
        ask("long gets line", line.replace(b"get ", b"gets ", 1))
        # the long line in pieces of 97 bytes: keys cut across reads
        for i in range(0, len(line), 97):
            c.send(line[i:i + 97])
            time.sleep(0.002)
        out.append(("long line in pieces", norm_cas(read_reply(c, 1), seen)))
        # expired keys: poll a sentinel set at the same time (bounded: 15 s)
        deadline = time.time() + 15
        poll = {"cmd_get": 0, "get_hits": 0, "get_misses": 0}  # taken off the counters
        while time.time() < deadline:
            c.send(b"get %s\r\n" % key(1039).encode())
            poll["cmd_get"] += 1
            if c.readline() == b"END\r\n":
                poll["get_misses"] += 1
                break
            poll["get_hits"] += 1
            c.readline(), c.readline()
            time.sleep(0.2)
        exp = [key(i) for i in range(1000, 1039)] + [key(i) for i in range(10)]
        random.Random(3).shuffle(exp)
        ask("expired mixed", ("get %s\r\n" % " ".join(exp)).encode())
        ask("expired again", ("get %s\r\n" % " ".join(exp)).encode())
        st = c.stats()
        out.append(("counters", " ".join("%s=%d" % (k, int(st[k]) - poll.get(k, 0)) for k in COUNTERS)))
    return out


def main():
    ck = harness.Checker("test_multiget")
    with harness.Server(args=ARGS) as cached, \
            harness.Server(harness.MEMCACHED, args=ARGS, kind="memcached") as mc:
        got = script(cached)
        want = script(mc)
        ck.eq(len(got), len(want), "number of steps")
        for (what, g), (_, w) in zip(got, want):
            if g != w:
                print("%s:\n  cached    %r\n  memcached %r" % (what, g[:600], w[:600]))
            ck.check(g == w, "%s: same reply as memcached (%d bytes)" % (what, len(w)))
        ck.check(cached.proc.poll() is None, "cached still running")
    ck.done()


if __name__ == "__main__":
    main()
