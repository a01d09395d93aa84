"""`lru_crawler metadump` streams with bounded memory (issues 13 and 17).

cached dumps from a resumable cursor on the connection, a shard lock at a time, and only as
fast as the client reads (memcached's crawler writes to the socket as it walks, too). Checked
with 300,000 items (~27 MB of dump text):
  - a client that reads slowly gets every key exactly once, in memcached's line format, and
    cached's RSS meanwhile stays within RSS_BOUND_MB of its RSS before the dump (a dump built
    whole in the reply would take ~30 MB);
  - the server answers other connections during the dump;
  - a second metadump while one runs answers BUSY, as memcached 1.6.18 does (checked against
    it too);
  - a client that hangs up mid-dump leaves nothing behind: the next dump runs (not BUSY) and
    is complete, and the ASan build reports nothing at exit.
"""
import collections
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, MEMCACHED, Checker, Server  # noqa: E402

ITEMS = 300000
RSS_BOUND_MB = 16
BUSY = b"BUSY currently processing crawler request\r\n"
LINE = re.compile(rb"^key=(\S+) exp=(-?\d+) la=(\d+) cas=(\d+) fetch=(yes|no) cls=(\d+) size=(\d+)$")


def key(i):
    return b"metadump:key:%07d" % i


def dumped(i):
    """key(i) as a dump line spells it (memcached's uriencode: ':' is %3A)."""
    return key(i).replace(b":", b"%3A")


def load(srv, n):
    with srv.connect(timeout=60) as c:
        for start in range(0, n, 10000):
            c.send(b"".join(b"set %s 0 0 8 noreply\r\n%08d\r\n" % (key(i), i)
                            for i in range(start, min(n, start + 10000))))
        c.send(b"mn\r\n")
        c.sock.settimeout(60)
        assert c.readline() == b"MN\r\n"


def slow_socket(srv):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(30)
    s.connect((srv.host, srv.port))
    return s


def one_line(srv, line):
    with srv.connect(timeout=30) as c:
        return c.cmd(line)


def read_dump(s, pause=0.0, on_chunk=None, limit=None):
    """Reads a dump to its END (or `limit` bytes); returns the bytes."""
    data = bytearray()
    n = 0
    deadline = time.time() + 120
    while not data.endswith(b"END\r\n") and time.time() < deadline:
        chunk = s.recv(16384)
        if not chunk:
            break
        data += chunk
        n += 1
        if on_chunk is not None and n % 16 == 0:
            on_chunk()
        if limit is not None and len(data) >= limit:
            break
        if pause:
            time.sleep(pause)
    return bytes(data)


def start_dump(srv):
    """A slow socket whose dump has begun: (socket, first bytes). A previous client that hung
    up may still hold the dump for a moment (until the server sees the hang-up): retry BUSY."""
    deadline = time.time() + 30
    while True:
        s = slow_socket(srv)
        s.sendall(b"lru_crawler metadump all\r\n")
        first = read_dump(s, limit=len(BUSY))
        if first != BUSY[:len(first)] or time.time() > deadline:
            return s, first
        first += read_dump(s, limit=len(BUSY) - len(first)) if len(first) < len(BUSY) else b""
        if first != BUSY:
            return s, first
        s.close()
        time.sleep(0.05)


def check_complete(ck, data, n, what):
    ck.check(data.endswith(b"\nEND\r\n"), "%s: ends in END" % what)
    lines = data[:-5].split(b"\n")[:-1]
    bad = [l for l in lines if not LINE.match(l)]
    ck.eq(bad[:3], [], "%s: every line in memcached's format (bare \\n ends)" % what)
    counts = collections.Counter(LINE.match(l).group(1) for l in lines if LINE.match(l))
    ck.eq(len(counts), n, "%s: distinct keys" % what)
    ck.eq(sorted(k for k, v in counts.items() if v > 1)[:3], [], "%s: no key twice" % what)
    ck.check(all(dumped(i) in counts for i in range(0, n, 997)), "%s: sampled keys present" % what)


SMALL = [(b"foo", 0, b"bar"), (b"baz", 100, b"x"), (b"a%20b", 0, b"1"), (b"k" * 250, 3600, b"v" * 3000),
         (b"big", 0, b"z" * 200000), (b"uni\xc3\xa9:/?#", 0, b"u")]


def masked_dumps(srv):
    """Dumps of a few items in the forms memcached takes, times masked (la, exp unless -1),
    and cls/size masked too (cached's own slab classes and item header sizes), lines sorted
    (walk order differs): everything else must be memcached's bytes."""
    out = {}
    with srv.connect(timeout=30) as c:
        for k, ttl, v in SMALL:
            c.send(b"set %s 0 %d %d\r\n%s\r\n" % (k, ttl, len(v), v))
            assert c.readline() == b"STORED\r\n"
        c.get(b"foo")
        for arg in ("all", "hash", "1", "1,2,3", "63", "64", "0", "abc"):
            c.send("lru_crawler metadump %s\r\n" % arg)
            d = c.readline()  # item lines end in a bare "\n": up to END's "\r\n", or a status
            for field in (rb"la=\d+", rb"exp=\d+", rb"cls=\d+", rb"size=\d+"):
                d = re.sub(field, field[:-3] + b"N", d)
            lines = d.split(b"\n")
            out[arg] = sorted(lines[:-2]) + lines[-2:]
    return out


def busy_run(srv, ck, tag):
    """A dump whose client does not read, then a second dump from another connection."""
    s = slow_socket(srv)
    s.sendall(b"lru_crawler metadump all\r\n")
    first = s.recv(100)
    ck.check(first.startswith(b"key="), "%s: first dump starts" % tag)
    second = one_line(srv, "lru_crawler metadump all")
    s.close()
    return second


def main():
    ck = Checker("metadump_stream")
    with Server(args=["-m", "256"]) as srv:
        load(srv, ITEMS)
        ck.eq(int(srv.stats()["curr_items"]), ITEMS, "items loaded")
        time.sleep(0.5)
        mon = srv.connect(timeout=30)  # one connection counts them: no churn of its own
        conns = int(mon.stats()["curr_connections"])
        base = srv.rss_kb()
        peak = [base]
        other = srv.connect(timeout=30)
        answered = []

        def sample():
            peak[0] = max(peak[0], srv.rss_kb())
            if len(answered) < 5:  # the server answers others meanwhile
                answered.append(other.get(key(len(answered) * 1000)))

        s = slow_socket(srv)
        s.sendall(b"lru_crawler metadump all\r\n")
        head = read_dump(s, limit=65536)
        ck.eq(one_line(srv, "lru_crawler metadump all")[:80], BUSY, "second dump meanwhile: BUSY")
        data = head + read_dump(s, pause=0.002, on_chunk=sample)
        s.close()
        other.close()
        check_complete(ck, data, ITEMS, "slow reader")
        grew_mb = (peak[0] - base) / 1024.0
        print("dump of %d items (%.1f MB): RSS %.1f MB before, peak +%.1f MB" %
              (ITEMS, len(data) / 1048576.0, base / 1024.0, grew_mb), flush=True)
        ck.check(grew_mb <= RSS_BOUND_MB, "RSS during the dump within +%d MB (got +%.1f)" %
                 (RSS_BOUND_MB, grew_mb))
        ck.eq([a[1] if a else None for a in answered],
              [b"%08d" % (i * 1000) for i in range(len(answered))], "gets answered during the dump")
        ck.check(len(answered) == 5, "five gets answered during the dump")

        # a client that hangs up mid-dump
        for _ in range(3):
            s, _first = start_dump(srv)
            read_dump(s, limit=200000)
            s.close()
        s, first = start_dump(srv)
        reply = first + read_dump(s)
        s.close()
        check_complete(ck, reply, ITEMS, "after clients hung up mid-dump")
        deadline = time.time() + 20  # the server sees the last hang-up a moment later
        while int(mon.stats()["curr_connections"]) != conns and time.time() < deadline:
            time.sleep(0.05)
        if not ck.eq(int(mon.stats()["curr_connections"]), conns, "hung-up dump connections are gone"):
            mon.send("stats conns\r\n")
            print(mon.read_until(b"END\r\n").decode(), flush=True)
        mon.close()

        ck.eq(busy_run(srv, ck, "cached")[:80], BUSY, "cached: BUSY while a client holds a dump")
    with Server(binary=MEMCACHED, args=["-m", "256"]) as mc:
        want = masked_dumps(mc)
        load(mc, ITEMS)
        ck.eq(busy_run(mc, ck, "memcached")[:80], BUSY, "memcached 1.6.18 answers BUSY the same")
        ck.eq(one_line(mc, "lru_crawler mgdump all"), b"ERROR\r\n", "memcached: no mgdump")
    with Server(args=["-m", "64"]) as srv:
        ck.eq(one_line(srv, "lru_crawler mgdump all"), b"ERROR\r\n", "cached: no mgdump either")
        got = masked_dumps(srv)
        for arg in want:
            ck.eq(got[arg], want[arg], "metadump %s: memcached's bytes (times, cls, size masked)" % arg)
    ck.done()


if __name__ == "__main__":
    main()
