"""Hit ratio under skewed traffic (issue #12): a Zipf cache-aside workload answers more hits
than memcached 1.6.18 with the same flags, keeps its hottest keys, does not starve small items,
and its counters (get_hits/get_misses, total_items, curr_items, evictions, `stats slabs`) agree
with what the client saw. Deterministic traces (fixed seeds); timing is not measured.
"""
import bisect
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import MEMCACHED, Checker, Server  # noqa: E402

ck = Checker("hitratio")
BATCH = 100


def zipf_trace(nkeys, nreq, s, seed):
    rng = random.Random(seed)
    cdf, acc = [], 0.0
    for i in range(1, nkeys + 1):
        acc += 1.0 / (i ** s)
        cdf.append(acc)
    return [bisect.bisect_left(cdf, rng.random() * acc) for _ in range(nreq)]


def fnv(k):
    h = 2166136261
    for b in k:
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h


def cache_aside(c, reqs, size_of, measure_from):
    """get a batch; set its misses (each once). Returns (hits, total) counted from
    measure_from on, and the client's whole-run hits, misses and sets."""
    hits = total = all_hits = all_miss = stored = 0
    per_key = {}
    for i in range(0, len(reqs), BATCH):
        part = reqs[i:i + BATCH]
        c.send(b"get " + b" ".join(part) + b"\r\n")
        got = set()
        while True:
            line = c.readline()
            if line == b"END\r\n":
                break
            p = line.split()
            got.add(p[1])
            c.readexact(int(p[3]) + 2)
        miss = []
        for j, k in enumerate(part):
            hit = k in got
            all_hits += hit
            all_miss += not hit
            if i + j >= measure_from:
                total += 1
                hits += hit
                h, t = per_key.get(k, (0, 0))
                per_key[k] = (h + hit, t + 1)
            if not hit and k not in miss:
                miss.append(k)
        c.send(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, size_of(k), b"x" * size_of(k))
                        for k in miss))
        for _ in miss:
            stored += c.readline() == b"STORED\r\n"
    return hits, total, all_hits, all_miss, stored, per_key


def run(binary, kind, reqs, size_of, mem):
    with Server(binary, args=["-m", str(mem)], kind=kind) as s, s.connect(timeout=60) as c:
        out = cache_aside(c, reqs, size_of, len(reqs) // 2)
        st = c.stats()
        slabs = c.stats("slabs")
        return out, st, slabs


def test_zipf():
    """Zipf 0.99 over 60k keys, values 100-1,000 B, -m 8, 120k requests: cached's hit ratio
    over the second half beats memcached's, the 100 hottest keys are held at the end, and the
    counters agree with the client."""
    ids = zipf_trace(60000, 120000, 0.99, 7)
    reqs = [b"z:%d" % i for i in ids]

    def size_of(k):
        return 100 + fnv(k) % 901
    (mh, mt, _, _, _, _), _, _ = run(MEMCACHED, "memcached", reqs, size_of, 8)
    (h, t, all_hits, all_miss, stored, _), st, slabs = run(None, None, reqs, size_of, 8)
    m_ratio, c_ratio = 100.0 * mh / mt, 100.0 * h / t
    print("zipf 0.99, -m 8: memcached %.1f%%, cached %.1f%%" % (m_ratio, c_ratio))
    ck.check(c_ratio >= m_ratio + 1.0, "cached %.1f%% >= memcached %.1f%% + 1" % (c_ratio, m_ratio))
    # counters: what the client saw
    ck.eq(int(st["get_hits"]), all_hits, "get_hits = the client's hits")
    ck.eq(int(st["get_misses"]), all_miss, "get_misses = the client's misses")
    ck.eq(int(st["total_items"]), stored, "total_items = sets stored")
    ev = int(st["evictions"])
    ck.check(ev > 0, "the trace evicts (%d)" % ev)
    ck.eq(int(st["curr_items"]), stored - ev - int(st["reclaimed"]),
          "curr_items = stored - evictions - reclaimed")
    used = sum(int(v) for k, v in slabs.items() if k.endswith(":used_chunks"))
    ck.eq(used, int(st["curr_items"]), "stats slabs used_chunks add up to curr_items")
    ck.check(int(st["evicted_unfetched"]) <= ev, "evicted_unfetched <= evictions")
    # the hottest keys are all held
    with Server(args=["-m", "8"]) as s, s.connect(timeout=60) as c:
        cache_aside(c, reqs, size_of, len(reqs))
        hot = [b"z:%d" % i for i in range(100)]
        c.send(b"get " + b" ".join(hot) + b"\r\n")
        n = 0
        while True:
            line = c.readline()
            if line == b"END\r\n":
                break
            n += 1
            c.readexact(int(line.split()[3]) + 2)
        ck.eq(n, 100, "the 100 hottest keys are held")


def test_small_not_starved():
    """Half the keys have 100-byte values, half 1,000-byte ones (same Zipf popularity), -m 8:
    small keys are not starved for pages (their hit ratio is at least memcached's on them), and
    the whole is memcached's or better (cached 83.7%, memcached 83.1%)."""
    ids = zipf_trace(40000, 80000, 0.99, 8)
    reqs = [b"m:%d" % i for i in ids]

    def size_of(k):
        return 100 if fnv(k) & 1 else 1000

    def ratios(binary, kind):
        (h, t, _, _, _, per_key), _, _ = run(binary, kind, reqs, size_of, 8)
        out = [100.0 * h / t]
        for n in (100, 1000):
            part = [v for k, v in per_key.items() if size_of(k) == n]
            out.append(100.0 * sum(x for x, _ in part) / sum(y for _, y in part))
        return out
    m, c = ratios(MEMCACHED, "memcached"), ratios(None, None)
    print("mixed sizes, -m 8 (all / 100 B / 1,000 B): memcached %.1f / %.1f / %.1f%%, "
          "cached %.1f / %.1f / %.1f%%" % tuple(m + c))
    ck.check(c[1] >= m[1], "small keys: cached %.1f%% >= memcached %.1f%%" % (c[1], m[1]))
    # memcached's own figure moves by a few tenths from run to run (its LRU maintainer runs
    # asynchronously); cached's is the same on every run and at any request rate (tools/hitsim)
    ck.check(c[0] >= m[0] - 0.5, "all keys: cached %.1f%% >= memcached %.1f%% - 0.5"
             % (c[0], m[0]))


test_zipf()
test_small_not_starved()
ck.done()
