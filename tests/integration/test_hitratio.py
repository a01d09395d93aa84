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
        got = c.hit_keys(part, BATCH)
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


def get_set(c, keys, sizes, write_all):
    """One batch: get the keys; then set the misses (write_all: every key). Returns the hits."""
    got = c.hit_keys(keys, max(1, len(keys)))  # one get line
    sets = []
    for k in keys:
        if (write_all or k not in got) and k not in sets:
            sets.append(k)
    c.send(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, sizes(k), b"x" * sizes(k)) for k in sets))
    for _ in sets:
        c.readline()
    return sum(k in got for k in keys)


def second_half_ratio(binary, kind, mem, reqs, sizes, write_all=False):
    with Server(binary, args=["-m", str(mem)], kind=kind) as s, s.connect(timeout=60) as c:
        hits = total = 0
        for i in range(0, len(reqs), BATCH):
            h = get_set(c, reqs[i:i + BATCH], sizes, write_all)
            if i >= len(reqs) // 2:
                hits += h
                total += len(reqs[i:i + BATCH])
        return 100.0 * hits / total


def test_grid_cells():
    """Small versions of tools/bench_hitgrid.py's cells that were below memcached (BENCHMARKS.md,
    hit-ratio grid): 20 sizes at -m 8 (cached kept -m as a hard cap: 60% against 70%), every
    request rewriting its key (rewritten items lost their CLOCK standing: 3-4 points under),
    and a hot set that moves (the window evicted the new keys: 5 points under, 1.1 now; the
    slack of 2 leaves room for memcached's run-to-run spread)."""
    ids = zipf_trace(15000, 30000, 0.9, 9)
    sizes20 = [int(64 * 1.43 ** i) for i in range(20)]
    cases = [
        ("20 sizes, -m 8", 8, [b"c:%d" % i for i in ids], lambda k: sizes20[fnv(k) % 20], False,
         0.5),
        ("get+set every request, -m 8", 8, [b"w:%d" % i for i in ids],
         lambda k: 100 + fnv(k) % 901, True, 0.5),
        # Zipf 1.0 over 20k keys, moved to 20k new keys every 20k requests
        ("moving hot set, -m 8", 8, [b"h:%d" % (i + (n // 20000) * 20000)
                                     for n, i in enumerate(zipf_trace(20000, 80000, 1.0, 10))],
         lambda k: 100 + fnv(k) % 901, False, 2.0),
    ]
    for name, mem, reqs, sizes, write_all, slack in cases:
        m = second_half_ratio(MEMCACHED, "memcached", mem, reqs, sizes, write_all)
        c = second_half_ratio(None, None, mem, reqs, sizes, write_all)
        print("%s: memcached %.1f%%, cached %.1f%%" % (name, m, c))
        ck.check(c >= m - slack, "%s: cached %.1f%% >= memcached %.1f%% - %.1f"
                 % (name, c, m, slack))


def held(binary, kind, mem, size, n):
    with Server(binary, args=["-m", str(mem)], kind=kind) as s, s.connect(timeout=60) as c:
        v = b"v" * size
        for i in range(n):
            c.send(b"set big:%d 0 0 %d\r\n%s\r\n" % (i, size, v))
            c.readline()
        return int(c.stats()["curr_items"])


def held_after_shift(binary, kind, first, second, n1, n2):
    """n1 sets of first bytes, then n2 of second bytes, -m 16: how many of the second held."""
    with Server(binary, args=["-m", "16"], kind=kind) as s, s.connect(timeout=60) as c:
        for size, n, p in ((first, n1, b"a"), (second, n2, b"b")):
            v = b"v" * size
            for i in range(0, n, BATCH):
                m = min(BATCH, n - i)
                c.send(b"".join(b"set %s:%d 0 0 %d\r\n%s\r\n" % (p, i + j, size, v)
                                for j in range(m)))
                for _ in range(m):
                    c.readline()
        kept = 0
        for i in range(0, n2, BATCH):
            c.send(b"get " + b" ".join(b"b:%d" % j for j in range(i, min(i + BATCH, n2))) + b"\r\n")
            while True:
                line = c.readline()
                if line == b"END\r\n":
                    break
                kept += 1
                c.readexact(int(line.split()[3]) + 2)
        return kept


def test_sizes_held():
    """Large values take as many chunks a page as memcached's (100 KB: 10 a page, 500 KB: 2;
    cached had 8 and 1), and after a size shift (either way, sets < 2 s apart) cached keeps at
    least what memcached keeps of the second phase."""
    for size, n in ((100000, 300), (500000, 60)):
        m, c = held(MEMCACHED, "memcached", 16, size, n), held(None, None, 16, size, n)
        print("%d-byte values, -m 16: memcached holds %d, cached %d" % (size, m, c))
        ck.check(c >= m, "%d-byte values: cached holds %d >= memcached's %d" % (size, c, m))
    for a, b, n1, n2 in ((11000, 3000, 1500, 5000), (3000, 11000, 5000, 1400)):
        m = held_after_shift(MEMCACHED, "memcached", a, b, n1, n2)
        c = held_after_shift(None, None, a, b, n1, n2)
        print("shift %d -> %d B, -m 16: second phase held: memcached %d, cached %d of %d"
              % (a, b, m, c, n2))
        ck.check(c >= m, "shift %d -> %d: cached keeps %d >= memcached's %d" % (a, b, c, m))


test_zipf()
test_small_not_starved()
test_grid_cells()
test_sizes_held()
ck.done()
