#!/usr/bin/python3
"""Hit-ratio benchmark: replays the same traces against cached and Debian's memcached and prints
the hit ratios side by side (issue #12). Every trace is deterministic (fixed seeds) and runs
against a fresh server of each kind with the same flags, one at a time.

Traces
  stream   20,000 acknowledged 1,000-byte sets into -m 8, then a get of every key; hits per
           tenth of the write order (oldest ... newest). Goal: the newest fifth all kept.
  zipf     cache-aside (get; on a miss, set) over 200k keys, Zipf 0.99, values 100-1,000 B,
           -m 16; hit ratio over the second half of 400k requests.
  ttl      the same cache-aside, Zipf 0.9, -m 16, a third of the keys with a 2-4 s TTL, about
           8 s of requests; hit ratio over the second half. Both servers replay it at the
           same time (it is paced in real time, so both see the same machine load).
  shift    5,100 x 11,000-byte sets, then 5,100 x 3,000-byte sets, -m 60: share of the second
           phase still readable right after it. shiftpause: the same with 2.5 s between the
           phases (cached's pages then count as settled in their class).
  scan     a hot set (20% of memory, 300-byte values, each read twice), then a one-time scan of
           cold keys (cache-aside, 2x memory, -m 16); hit ratio of the hot set before and after.

Usage: tools/bench_hitratio.py [trace ...]   (default: all)
Environment: CACHED [build/cached], MEMCACHED [/usr/bin/memcached].
Timing is not measured; only what each server answers. Loopback only; servers are stopped by PID.
"""
import bisect
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CACHED = os.environ.get("CACHED", os.path.join(ROOT, "build", "cached"))
MEMCACHED = os.environ.get("MEMCACHED", "/usr/bin/memcached")
BATCH = 100


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, args):
        self.port = free_port()
        cmd = [binary, "-p", str(self.port), "-l", "127.0.0.1", "-U", "0"] + list(args)
        if os.geteuid() == 0:
            cmd += ["-u", "root"] if os.path.basename(binary) == "memcached" else ["--run-as-root"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("%s did not start" % binary)
                time.sleep(0.02)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def stop(self):
        self.sock.close()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk

    def _skip(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        del self.buf[:n]

    def sets(self, items, ttl=0):
        """Acknowledged sets of (key, size) pairs, pipelined BATCH at a time; count STORED."""
        stored = 0
        for i in range(0, len(items), BATCH):
            part = items[i:i + BATCH]
            self.sock.sendall(b"".join(b"set %s 0 %d %d\r\n%s\r\n" % (k, ttl if isinstance(ttl, int)
                                       else ttl(k), n, b"x" * n) for k, n in part))
            for _ in part:
                stored += self._line() == b"STORED"
        return stored

    def gets(self, keys):
        """Multi-gets BATCH keys at a time; returns the set of keys that hit."""
        hits = set()
        for i in range(0, len(keys), BATCH):
            self.sock.sendall(b"get " + b" ".join(keys[i:i + BATCH]) + b"\r\n")
            while True:
                line = self._line()
                if line == b"END":
                    break
                parts = line.split()
                hits.add(parts[1])
                self._skip(int(parts[3]) + 2)
        return hits

    def stats(self):
        self.sock.sendall(b"stats\r\n")
        out = {}
        while True:
            line = self._line()
            if line == b"END":
                return out
            p = line.split()
            out[p[1].decode()] = p[2].decode()


def key(prefix, i):
    return b"%s:%d" % (prefix, i)


def zipf_sampler(n, s, rng):
    cdf, acc = [], 0.0
    for i in range(1, n + 1):
        acc += 1.0 / (i ** s)
        cdf.append(acc)
    total = acc
    return lambda: bisect.bisect_left(cdf, rng.random() * total)


def cache_aside(srv, reqs, size_of, ttl_of=None, measure_from=0, pace=None):
    """get each batch; set the misses. Hits counted from request index measure_from on."""
    hits = total = 0
    t0 = time.time()
    for i in range(0, len(reqs), BATCH):
        part = reqs[i:i + BATCH]
        got = srv.gets(part)
        miss, seen = [], set()
        for j, k in enumerate(part):
            if i + j >= measure_from:
                total += 1
                hits += k in got
            if k not in got and k not in seen:
                seen.add(k)
                miss.append((k, size_of(k)))
        srv.sets(miss, ttl_of if ttl_of else 0)
        if pace:  # spread the requests over pace seconds so TTLs matter
            ahead = t0 + pace * (i + BATCH) / len(reqs) - time.time()
            if ahead > 0:
                time.sleep(ahead)
    return hits, total


def trace_stream(binary):
    srv = Server(binary, ["-m", "8"])
    try:
        n = 20000
        keys = [key(b"s", i) for i in range(n)]
        srv.sets([(k, 1000) for k in keys])
        got = srv.gets(keys)
        tenth = n // 10
        return [100.0 * sum(k in got for k in keys[t * tenth:(t + 1) * tenth]) / tenth
                for t in range(10)]
    finally:
        srv.stop()


def value_size(k):
    return 100 + (hash_key(k) % 901)


def hash_key(k):
    h = 2166136261
    for b in k:
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h


def trace_zipf(binary):
    rng = random.Random(12)
    nkeys, nreq = 200000, 400000
    z = zipf_sampler(nkeys, 0.99, rng)
    reqs = [key(b"z", z()) for _ in range(nreq)]
    srv = Server(binary, ["-m", "16"])
    try:
        h, t = cache_aside(srv, reqs, value_size, measure_from=nreq // 2)
        return 100.0 * h / t
    finally:
        srv.stop()


def trace_ttl(binary):
    rng = random.Random(13)
    nkeys, nreq = 100000, 240000
    z = zipf_sampler(nkeys, 0.9, rng)
    reqs = [key(b"t", z()) for _ in range(nreq)]

    def ttl_of(k):
        h = hash_key(k)
        return 2 + (h >> 8) % 3 if h % 3 == 0 else 0

    srv = Server(binary, ["-m", "16"])
    try:
        h, t = cache_aside(srv, reqs, value_size, ttl_of, measure_from=nreq // 2, pace=8.0)
        return 100.0 * h / t
    finally:
        srv.stop()


def trace_shift(binary, pause=0.0):
    srv = Server(binary, ["-m", "60"])
    try:
        n = 5100
        srv.sets([(key(b"a", i), 11000) for i in range(n)])
        time.sleep(pause)
        second = [key(b"b", i) for i in range(n)]
        srv.sets([(k, 3000) for k in second])
        return 100.0 * len(srv.gets(second)) / n
    finally:
        srv.stop()


def trace_shiftpause(binary):
    return trace_shift(binary, 2.5)


def trace_scan(binary):
    mem = 16 << 20
    srv = Server(binary, ["-m", "16"])
    try:
        hot = [key(b"h", i) for i in range(int(mem * 0.2 / 400))]
        srv.sets([(k, 300) for k in hot])
        srv.gets(hot)
        srv.gets(hot)
        time.sleep(1.5)  # let memcached's LRU maintainer file them as warm (it runs async)
        before = 100.0 * len(srv.gets(hot)) / len(hot)
        cold = [key(b"c", i) for i in range(2 * mem // 400)]
        cache_aside(srv, cold, lambda k: 300)
        after = 100.0 * len(srv.gets(hot)) / len(hot)
        return before, after
    finally:
        srv.stop()


def fmt_row(name, m, c, goal):
    return "%-8s %-44s %-44s %s" % (name, m, c, goal)


def main():
    wanted = sys.argv[1:] or ["stream", "zipf", "ttl", "shift", "shiftpause", "scan"]
    print("hit-ratio benchmark: cached=%s memcached=%s" % (CACHED, MEMCACHED))
    print(fmt_row("trace", "memcached", "cached", "goal"))
    sys.stdout.flush()
    ok = True
    for name in wanted:
        fn = globals()["trace_" + name]
        if name == "ttl":
            # paced in real time: both replay at once, so both see the same machine load
            out = {}
            ts = [threading.Thread(target=lambda b=b: out.__setitem__(b, fn(b)))
                  for b in (MEMCACHED, CACHED)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            m, c = out[MEMCACHED], out[CACHED]
        else:
            m, c = fn(MEMCACHED), fn(CACHED)
        if name == "stream":
            ms = " ".join("%3.0f" % x for x in m)
            cs = " ".join("%3.0f" % x for x in c)
            good = min(c[8:]) >= 99.9
            print(fmt_row(name, ms, cs, "newest fifth kept: %s" % ("yes" if good else "NO")))
        elif name == "scan":
            good = c[1] >= m[1] - 0.05 and c[1] >= 0.9 * c[0]
            print(fmt_row(name, "hot %.1f%% -> %.1f%%" % m, "hot %.1f%% -> %.1f%%" % c,
                          "hot set kept: %s" % ("yes" if good else "NO")))
        else:
            goal = m + (5.0 if name == "zipf" else 0.0)
            good = c >= goal - 0.05
            name = {"shiftpause": "shift+2.5s"}.get(name, name)
            print(fmt_row(name, "%.1f%%" % m, "%.1f%%" % c,
                          ">= %.1f%%: %s" % (goal, "yes" if good else "NO")))
        sys.stdout.flush()
        ok = ok and good
    print("all goals met" if ok else "SOME GOALS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
