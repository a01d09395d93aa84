#!/usr/bin/python3
"""Hit-ratio grid: many small traces replayed against cached and Debian's memcached with the same
flags, to find any trace on which cached answers fewer hits (issue #12: "at least memcached's on
every trace"). tools/bench_hitratio.py has the goal traces; this grid varies one thing at a time:
Zipf skew, key count, value sizes (fixed 10 B .. 500 KB, uniform, lognormal up to 1 MB), -m,
read-heavy cache-aside vs write-heavy (get then set every request), cyclic loops larger and
smaller than memory, a hot set that moves, short TTLs, size shifts both ways, many classes with
few pages, 200-byte keys.

Every cell runs with two seeds (the trace's key sequence; sizes are a function of the key), each
against a fresh server of each kind; the two kinds replay a cell at the same time (separate
processes, so both see the same machine load). Hit ratio is counted over the second half of the
requests (cache-aside: get, set on a miss; shift: share of the second phase readable). A cell is
flagged LOW when cached is below memcached by more than 0.5 point on both seeds.

Usage: tools/bench_hitgrid.py [-s SEEDS] [cell-name-substring ...]   (default: every cell, seeds 1,2)
Environment: CACHED [build/cached], MEMCACHED [/usr/bin/memcached].
Timing is not measured; only what each server answers. Loopback only; servers stopped by PID.
"""
import math
import multiprocessing
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_hitratio as bh  # noqa: E402

BATCH = bh.BATCH
MB1 = 1000000  # the largest value (memcached's -I 1m holds it, chunked)


# ---- value sizes: a pure function of the key, so a key keeps its size ----

def fixed(n):
    return lambda k: n


def uniform(lo, hi):
    return lambda k: lo + bh.hash_key(k) % (hi - lo + 1)


def lognormal(median, sigma, cap=MB1):
    """mostly small, a heavy tail up to cap."""
    def size_of(k):
        u = (bh.hash_key(k) + 0.5) / 4294967296.0
        # inverse normal CDF by bisection on erf: deterministic, no numpy
        lo, hi = -8.0, 8.0
        for _ in range(40):
            mid = (lo + hi) / 2
            if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < u:
                lo = mid
            else:
                hi = mid
        return max(1, min(cap, int(median * math.exp(sigma * lo))))
    cache = {}

    def memo(k):
        v = cache.get(k)
        if v is None:
            v = cache[k] = size_of(k)
        return v
    return memo


def classes(sizes):
    return lambda k: sizes[bh.hash_key(k) % len(sizes)]


# ---- key sequences ----

def keyname(prefix, i, keylen):
    k = b"%s:%d" % (prefix, i)
    return k + b"_" * (keylen - len(k)) if keylen > len(k) else k


def zipf_reqs(seed, nkeys, nreq, alpha, prefix=b"g", keylen=0, shift_every=0, shift_by=0):
    rng = random.Random(seed)
    z = bh.zipf_sampler(nkeys, alpha, rng)
    perm = list(range(nkeys))
    random.Random(seed + 1000).shuffle(perm)  # popularity is not key order
    out = []
    for i in range(nreq):
        off = (i // shift_every) * shift_by if shift_every else 0
        out.append(keyname(prefix, perm[z()] + off, keylen))
    return out


def loop_reqs(nkeys, nreq, prefix=b"l"):
    return [keyname(prefix, i % nkeys, 0) for i in range(nreq)]


# ---- replays ----

def write_heavy(srv, reqs, size_of, measure_from):
    """get every batch, then set every key of it (each request writes)."""
    hits = total = 0
    for i in range(0, len(reqs), BATCH):
        part = reqs[i:i + BATCH]
        got = srv.gets(part)
        for j, k in enumerate(part):
            if i + j >= measure_from:
                total += 1
                hits += k in got
        seen, sets = set(), []
        for k in part:
            if k not in seen:
                seen.add(k)
                sets.append((k, size_of(k)))
        srv.sets(sets)
    return hits, total


def run_cell(binary, cell, seed):
    """One cell, one seed, one server kind: returns the hit ratio in %."""
    kind = cell["kind"]
    args = ["-m", str(cell["m"])] + cell.get("args", [])
    srv = bh.Server(binary, args)
    try:
        if kind == "shift":
            n1, s1, n2, s2 = cell["phases"]
            srv.sets([(b"a%d:%d" % (seed, i), s1) for i in range(n1)])
            second = [b"b%d:%d" % (seed, i) for i in range(n2)]
            srv.sets([(k, s2) for k in second])
            return 100.0 * len(srv.gets(second)) / n2
        if kind == "shiftaside":
            # cache-aside over a Zipf set of one size, then over new keys of another size
            (nk, nr, a), s1, s2 = cell["zipf"], cell["size1"], cell["size2"]
            r1 = zipf_reqs(seed, nk, nr, a, prefix=b"p")
            r2 = zipf_reqs(seed + 7, nk, nr, a, prefix=b"q")
            bh.cache_aside(srv, r1, s1, measure_from=len(r1))
            h, t = bh.cache_aside(srv, r2, s2, measure_from=nr // 2)
            return 100.0 * h / t
        reqs = cell["reqs"](seed)
        size_of = cell["size"]
        half = len(reqs) // 2
        if kind == "aside":
            ttl = cell.get("ttl")
            h, t = bh.cache_aside(srv, reqs, size_of, ttl, measure_from=half,
                                  pace=cell.get("pace"))
        elif kind == "write":
            h, t = write_heavy(srv, reqs, size_of, half)
        else:
            raise ValueError(kind)
        return 100.0 * h / t
    finally:
        srv.stop()


def _worker(job):
    binary, name, seed = job
    random.seed(seed)
    return run_cell(binary, CELLS[name], seed)


def ttl_of(k):
    """half the keys live 1-3 s, the rest forever"""
    h = bh.hash_key(k)
    return 1 + (h >> 8) % 3 if h & 1 else 0


def Z(nkeys, nreq, alpha, **kw):
    return lambda seed: zipf_reqs(seed, nkeys, nreq, alpha, **kw)


U = uniform(100, 1000)
CELLS = {}


def cell(name, m, kind, **kw):
    kw.update(m=m, kind=kind)
    CELLS[name] = kw


# Zipf skew (100k keys, 100-1,000 B, -m 16; ~55 MB of keys)
for a in (0.6, 0.8, 1.0, 1.2):
    cell("zipf%.1f" % a, 16, "aside", reqs=Z(100000, 120000, a), size=U)
# key counts (Zipf 0.9, 100 B values, -m 4: 10k keys fit, the others do not)
for nk in (10000, 100000, 1000000):
    cell("keys%dk" % (nk // 1000), 4, "aside", reqs=Z(nk, 150000, 0.9), size=fixed(100))
# value sizes (the small ones at -m 2 / 4, so that the keys asked for do not all fit)
cell("val10B", 2, "aside", reqs=Z(400000, 150000, 0.9), size=fixed(10))
cell("val100B", 4, "aside", reqs=Z(200000, 150000, 0.9), size=fixed(100))
cell("val10KB", 16, "aside", reqs=Z(8000, 30000, 0.9), size=fixed(10000))
cell("val100KB", 64, "aside", reqs=Z(2000, 8000, 0.9), size=fixed(100000))
cell("val500KB", 64, "aside", reqs=Z(600, 3000, 0.9), size=fixed(500000))
cell("valuni", 16, "aside", reqs=Z(100000, 120000, 0.9), size=U)
cell("lognorm-m16", 16, "aside", reqs=Z(50000, 60000, 0.9), size=lognormal(300, 1.6))
cell("lognorm-m64", 64, "aside", reqs=Z(50000, 60000, 0.9), size=lognormal(300, 1.6))
# memory sizes (Zipf 0.9; larger values at -m 64 / 256 so the trace fills it in seconds)
cell("mem8", 8, "aside", reqs=Z(100000, 120000, 0.9), size=U)
cell("mem64", 64, "aside", reqs=Z(400000, 150000, 0.9), size=uniform(1000, 4000))
cell("mem256", 256, "aside", reqs=Z(200000, 120000, 0.9), size=fixed(8000))
# write-heavy: every request gets then sets its key
cell("write-z0.9", 16, "write", reqs=Z(100000, 100000, 0.9), size=U)
cell("write-z0.6", 16, "write", reqs=Z(100000, 100000, 0.6), size=U)
# cyclic loops (LRU's worst case: 1.5x memory; and 0.7x memory, which fits)
cell("loop1.5x", 8, "aside", reqs=lambda s: loop_reqs(int(1.5 * 8e6 / 600), 60000), size=fixed(500))
cell("loop0.7x", 8, "aside", reqs=lambda s: loop_reqs(int(0.7 * 8e6 / 600), 60000), size=fixed(500))
# the hot set moves: Zipf 1.0 over 20k keys, shifted by 20k keys every 20k requests
cell("wsshift", 8, "aside", reqs=Z(20000, 120000, 1.0, shift_every=20000, shift_by=20000), size=U)
# short TTLs: half the keys live 1-3 s; paced over 5 s
cell("ttlmix", 16, "aside", reqs=Z(100000, 100000, 0.9), size=U, ttl=ttl_of, pace=5.0)
# size shifts (sets, then the share of the second phase readable), both ways
cell("shift-L>S", 60, "shift", phases=(5100, 11000, 5100, 3000))
cell("shift-S>L", 60, "shift", phases=(20000, 3000, 5100, 11000))
cell("shift-100>1K", 16, "shift", phases=(150000, 100, 16000, 1000))
cell("shift-1K>100", 16, "shift", phases=(16000, 1000, 150000, 100))
cell("shiftaside-S>L", 16, "shiftaside", zipf=(60000, 80000, 0.9), size1=fixed(100),
     size2=fixed(2000))
cell("shiftaside-L>S", 16, "shiftaside", zipf=(60000, 80000, 0.9), size1=fixed(2000),
     size2=fixed(100))
# many classes with few pages: 20 sizes from 64 B to ~60 KB, -m 8
cell("20classes", 8, "aside", reqs=Z(30000, 80000, 0.9),
     size=classes([int(64 * 1.43 ** i) for i in range(20)]))
# 200-byte keys
cell("longkeys", 8, "aside", reqs=Z(100000, 120000, 0.9, keylen=200), size=fixed(100))


def main():
    args = sys.argv[1:]
    seeds = [1, 2]
    if args[:1] == ["-s"]:
        seeds = [int(x) for x in args[1].split(",")]
        args = args[2:]
    names = [n for n in CELLS if not args or any(a in n for a in args)]
    print("hit-ratio grid: cached=%s memcached=%s seeds=%s (%s UTC)" % (
        bh.CACHED, bh.MEMCACHED, seeds, time.strftime("%Y-%m-%d %H:%M", time.gmtime())))
    print("%-15s %4s  %-15s %-15s %7s  %s" % ("cell", "-m", "memcached", "cached", "delta",
                                             "verdict"))
    sys.stdout.flush()
    low = []
    with multiprocessing.Pool(2) as pool:
        for name in names:
            c = CELLS[name]
            jobs = [(b, name, s) for s in seeds for b in (bh.MEMCACHED, bh.CACHED)]
            res = pool.map(_worker, jobs, chunksize=1)
            m = res[0::2]
            cc = res[1::2]
            d = [x - y for x, y in zip(cc, m)]
            bad = all(x < -0.5 for x in d)
            if bad:
                low.append(name)
            print("%-15s %4d  %-15s %-15s %+7.2f  %s" % (
                name, c["m"], " ".join("%.1f" % x for x in m), " ".join("%.1f" % x for x in cc),
                sum(d) / len(d), "LOW" if bad else "ok"))
            sys.stdout.flush()
    print("cells below memcached: %s" % (" ".join(low) if low else "none"))
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
