"""Tiny memory limits (-m 1..4) with values at the item size limit (-I 64k..2m), many slab
classes (-f 1.01, -n 1000) and a small slab_chunk_max, against Debian's memcached 1.6.18.

1. Edges, one client, compared byte for byte with memcached: sets of item_size_max - 100,
   - 60, - 50, - 48, - 1, exactly it, + 1, and 1 MB +- 1, each followed by a get of the key
   (the get tells whether it was stored: both must agree).
2. Churn, 6 clients for ~3 s: set/add/replace/append/prepend of sizes near the limit, small
   and random, gets, mg, deletes and flush_all with delays 0-2 s all interleaved. Every reply
   must be one of the replies the command can give (a desynchronised stream fails), the
   server must stay up, and a last flush_all empties it. Memory: as memcached, a class that
   owns no page gets its first one past -m, so `bytes` may pass -m by at most 63 pages
   (memcached's class count bound: its -m 2 -I 512k run here malloced 38 MB); RSS must stay
   within -m + 63 MB + 32 MB of fixed overhead (threads, buffers, hash table). Before that
   bound -f 1.01 (250 classes) took -m 1 to 261 MB of RSS; memcached stays at 7 MB.
3. -I above half of -m (-m 1, -m 1 -I 1m, -m 3 -I 2m) is refused at start with exit 64 by both
   (memcached: "Cannot set item size limit higher than 1/2 of memory max").
"""
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, CACHED, MEMCACHED, Checker, Server, free_port  # noqa: E402

CONFIGS = [
    ["-m", "2", "-I", "512k"],
    ["-m", "4", "-I", "2m"],
    ["-m", "2", "-I", "1m", "-o", "slab_chunk_max=16384"],
    ["-m", "2", "-I", "512k", "-n", "1000"],
    ["-m", "1", "-I", "64k", "-f", "1.01", "-o", "slab_chunk_max=32768"],
]
REFUSED = [["-m", "1"], ["-m", "1", "-I", "1m"], ["-m", "3", "-I", "2m"]]
CHURN_S = 2.0 if ASAN else 3.0
RSS_OVERHEAD_KB = 32 * 1024
OVERDRAFT = 63 * 1024 * 1024  # at most 63 first pages past -m (1 MB pages), as memcached
STORE_REPLIES = {b"STORED\r\n", b"NOT_STORED\r\n", b"EXISTS\r\n", b"NOT_FOUND\r\n",
                 b"SERVER_ERROR out of memory storing object\r\n",
                 b"SERVER_ERROR object too large for cache\r\n"}


def edges(srv):
    out = []
    with srv.connect() as c:
        lim = int(c.stats("settings")["item_size_max"])
        for n in (lim - 100, lim - 60, lim - 50, lim - 48, lim - 1, lim, lim + 1,
                  (1 << 20) - 1, 1 << 20, (1 << 20) + 1):
            key = "e%d" % n
            r = c.set(key, b"e" * n)
            g = c.get(key)
            out.append((n - lim, r, None if g is None else len(g[1])))
    return out


def churn(srv, ck, tag):
    lim = int(srv.stats("settings")["item_size_max"])
    mem = int(srv.stats()["limit_maxbytes"])
    bad = []
    peak = {"rss": srv.rss_kb(), "bytes": 0}
    stop = time.time() + CHURN_S

    def worker(w):
        r = random.Random(w)
        try:
            with srv.connect(timeout=30) as c:
                n = 0
                while time.time() < stop and n < 50000 and not bad:
                    n += 1
                    op = r.random()
                    k = "k%d" % r.randrange(40)
                    if op < 0.5:
                        sz = r.choice([lim - r.randrange(0, 200), r.randrange(1, lim),
                                       r.randrange(1, 5000), lim // 2, lim + 1])
                        cmd = r.choice(["set", "set", "add", "replace", "append", "prepend"])
                        rep = c.set(k, bytes([97 + w]) * sz, cmd=cmd)
                        if rep not in STORE_REPLIES:
                            bad.append((cmd, sz, rep[:60]))
                    elif op < 0.8:
                        c.send("get %s\r\n" % k)
                        line = c.readline()
                        if line != b"END\r\n":
                            p = line.split()
                            if p[0] != b"VALUE" or p[1] != k.encode():
                                bad.append(("get", line[:60]))
                                return
                            data = c.readexact(int(p[3]) + 2)
                            if data[-2:] != b"\r\n" or c.readline() != b"END\r\n":
                                bad.append(("get end", k))
                                return
                    elif op < 0.9:
                        rep = c.cmd("delete %s" % k)
                        if rep not in (b"DELETED\r\n", b"NOT_FOUND\r\n"):
                            bad.append(("delete", rep[:60]))
                    elif op < 0.95:
                        rep = c.cmd("flush_all %d" % r.choice([0, 1, 2]))
                        if rep != b"OK\r\n":
                            bad.append(("flush_all", rep[:60]))
                    else:
                        c.send("mg %s v s t\r\n" % k)
                        line = c.readline()
                        if line.startswith(b"VA "):
                            c.readexact(int(line.split()[1]) + 2)
                        elif line != b"EN\r\n":
                            bad.append(("mg", line[:60]))
        except (OSError, ConnectionError) as e:
            bad.append(("connection", w, repr(e)))

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in ts:
        t.start()
    while any(t.is_alive() for t in ts):
        time.sleep(0.1)
        if srv.proc.poll() is not None:
            break
        peak["rss"] = max(peak["rss"], srv.rss_kb())
        try:
            peak["bytes"] = max(peak["bytes"], int(srv.stats()["bytes"]))
        except (OSError, ConnectionError, KeyError):
            pass
    for t in ts:
        t.join(60)
    ck.check(srv.proc.poll() is None, "%s: alive after the churn" % tag)
    ck.eq(bad[:5], [], "%s: every reply well-formed" % tag)
    ck.check(peak["bytes"] <= mem + OVERDRAFT, "%s: bytes within -m + 63 pages (peak %d of %d)"
             % (tag, peak["bytes"], mem))
    print("%s: peak RSS %.1f MB, peak bytes %d of %d" % (tag, peak["rss"] / 1024,
                                                         peak["bytes"], mem))
    if not ASAN:
        bound = (mem + OVERDRAFT) // 1024 + RSS_OVERHEAD_KB
        ck.check(peak["rss"] <= bound, "%s: RSS within -m + 63 + 32 MB (%.1f MB)"
                 % (tag, peak["rss"] / 1024))
    with srv.connect() as c:
        ck.eq(c.cmd("flush_all"), b"OK\r\n", "%s: flush_all" % tag)
        c.send(b"get " + b" ".join(b"k%d" % i for i in range(40)) + b"\r\n")
        ck.eq(c.read_until(b"END\r\n"), b"END\r\n", "%s: empty after flush_all" % tag)
        ck.eq(c.set("last", "1"), b"STORED\r\n", "%s: serves after the churn" % tag)


def main():
    ck = Checker("test_fault_tiny_mem")
    for args in CONFIGS:
        tag = " ".join(args)
        with Server(binary=MEMCACHED, args=args) as m:
            want = edges(m)
        with Server(args=args + ["-t", "4"]) as srv:
            ck.eq(edges(srv), want, "%s: edge sizes as memcached" % tag)
            churn(srv, ck, tag)
    root = os.geteuid() == 0
    for args in REFUSED:
        for binary in (CACHED, MEMCACHED):
            extra = (["-u", "root"] if binary == MEMCACHED else ["--run-as-root"]) if root else []
            p = subprocess.run([binary, "-p", str(free_port()), "-l", "127.0.0.1"] + args + extra,
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            ck.eq(p.returncode, 64, "%s %s: refused at start" % (os.path.basename(binary),
                                                                 " ".join(args)))
    ck.done()


if __name__ == "__main__":
    main()
