#!/usr/bin/python3
"""Bounds for tools/bench_hitratio.py's zipf trace (what no slab-class policy at -m 16 can
beat), from the trace file tools/hitsim/gen_trace.py writes. Pure Python, ~1 min.

  lfu        cache-aside with a byte budget (header + key + value, no slab rounding) and every
             key's full request count (resident or not); the victim is the least counted item
             (LFU), or the least count/bytes (size-weighted LFU: hits per byte).
  oracle     the best static set knowing the second half's requests: by count, by count/bytes;
             a key never requested before still misses once (cache-aside must load it).
  pages      Che's approximation of LRU per slab class (cached's -f 1.25 classes, 1 MB pages):
             the hit ratio of today's split of the 16 pages among the classes, and of the best
             split (greedy over the concave per-class curves).

Usage: bounds.py TRACE [MB]    (TRACE from gen_trace.py zipf; MB default 16)
"""
import array
import bisect
import heapq
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bench_hitratio as bh  # noqa: E402

HEADER = 32  # with CAS
NKEYS, S = 200000, 0.99


def item_bytes(i):
    k = b"z:%d" % i
    return HEADER + len(k) + bh.value_size(k)


def lfu(req, size, budget, weigh):
    count = {}
    resident = {}
    heap = []
    used = hits = total = 0
    half = len(req) // 2
    for b in range(0, len(req), bh.BATCH):
        part = req[b:b + bh.BATCH]
        miss = []
        for j, k in enumerate(part):
            count[k] = count.get(k, 0) + 1
            hit = k in resident
            if b + j >= half:
                total += 1
                hits += hit
            if hit:
                prio = count[k] / size[k] if weigh else count[k]
                resident[k] = prio
                heapq.heappush(heap, (prio, k))
            elif k not in miss:
                miss.append(k)
        for k in miss:
            while used + size[k] > budget and heap:
                prio, v = heapq.heappop(heap)
                if resident.get(v) == prio:  # lazily skip stale heap entries
                    del resident[v]
                    used -= size[v]
            prio = count[k] / size[k] if weigh else count[k]
            resident[k] = prio
            heapq.heappush(heap, (prio, k))
            used += size[k]
    return 100.0 * hits / total


def oracle(req, size, budget):
    half = len(req) // 2
    seen = set(req[:half])
    cnt = {}
    for k in req[half:]:
        cnt[k] = cnt.get(k, 0) + 1
    out = []
    for key in (lambda k: -cnt[k], lambda k: -cnt[k] / size[k]):
        used = hits = 0
        for k in sorted(cnt, key=lambda k: (key(k), k not in seen)):
            if used + size[k] <= budget:
                used += size[k]
                hits += cnt[k] - (k not in seen)
        out.append(100.0 * hits / half)
    return out


def che_pages(size, mb, current):
    w = [1.0 / (i ** S) for i in range(1, NKEYS + 1)]
    tot = sum(w)
    sizes, sz = [], 80
    while sz <= 524288:
        sizes.append(sz)
        sz = (int(sz * 1.25) + 7) & ~7
    cls = {}
    for i in range(NKEYS):
        cls.setdefault(bisect.bisect_left(sizes, size[i]), []).append(w[i] / tot)

    def che(ps, chunks):
        if chunks >= len(ps):
            return sum(ps)
        lo, hi = 0.0, 1e12
        for _ in range(60):
            t = math.sqrt(lo * hi) if lo > 0 else hi / 1e6
            if sum(1 - math.exp(-x * t) for x in ps) > chunks:
                hi = t
            else:
                lo = t
        return sum(x * (1 - math.exp(-x * t)) for x in ps)
    cs = sorted(cls)
    pages = int(mb)
    curve = {c: [0.0] + [che(cls[c], (1 << 20) // sizes[c] * k) for k in range(1, pages)]
             for c in cs}
    now = sum(curve[c][current.get(c + 1, 0)] for c in cs)
    alloc = {c: 1 for c in cs}
    while sum(alloc.values()) < pages:
        best = max(cs, key=lambda c: curve[c][alloc[c] + 1] - curve[c][alloc[c]])
        alloc[best] += 1
    return now * 100, sum(curve[c][alloc[c]] for c in cs) * 100, {c + 1: alloc[c] for c in cs}


def main():
    req = array.array("I")
    with open(sys.argv[1], "rb") as f:
        req.frombytes(f.read())
    if sys.byteorder != "little":
        req.byteswap()
    mb = float(sys.argv[2]) if len(sys.argv) > 2 else 16
    budget = int(mb * 1048576)
    size = [item_bytes(i) for i in range(NKEYS)]
    req = req.tolist()
    print("LFU, full counts, byte budget:            %.2f%%" % lfu(req, size, budget, False))
    print("size-weighted LFU (count/bytes), same:    %.2f%%" % lfu(req, size, budget, True))
    a, b = oracle(req, size, budget)
    print("oracle static set by count / count/bytes: %.2f%% / %.2f%%" % (a, b))
    # cached's split at -m 16 on this trace (tools/hitsim/replay -v): class -> pages
    now, best, alloc = che_pages(size, mb, {4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 2, 10: 2, 11: 3,
                                            12: 4})
    print("Che LRU per class, today's page split:    %.2f%%; best split %.2f%% %s"
          % (now, best, alloc))


if __name__ == "__main__":
    main()
