#!/usr/bin/python3
"""Set throughput of large values, as a ratio to memcached in the same run (issue 13).

cached-bench's 0.1 s slices are too short for 100 KB - 1 MB values on a shared 2-core box, so
this driver alternates whole rounds instead: each round sends SETS pipelined-one-at-a-time
sets (depth 1, one connection, TCP_NODELAY) of one size to every server in turn and times
them; a server's ratio for the round is its rate over memcached's rate in that same round.
Prints the median and min..max of the rounds' ratios. Servers: memcached, memcached again
(A/A: the noise floor), CACHED_BEFORE and CACHED, each -t 1 -m 1024, pinned to CPU 0.

    CACHED_BEFORE=/path/old/cached tools/bench_big_sets.py [sizes...]
"""
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration", "lib"))
from harness import MEMCACHED, Server  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
BYTES_PER_ROUND = int(os.environ.get("BENCH_BYTES", str(40 << 20)))


def rate(srv, size, value):
    s = socket.create_connection((srv.host, srv.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n = max(20, BYTES_PER_ROUND // size)
    msgs = [b"set k%d 0 0 %d\r\n" % (i % 64, size) + value + b"\r\n" for i in range(64)]
    t0 = time.perf_counter()
    for i in range(n):
        s.sendall(msgs[i % 64])
        got = b""
        while not got.endswith(b"\r\n"):
            chunk = s.recv(64)
            if not chunk:
                raise RuntimeError("closed")
            got += chunk
        if got != b"STORED\r\n":
            raise RuntimeError("reply %r" % got)
    dt = time.perf_counter() - t0
    s.close()
    return n / dt


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [102400, 1000000]
    before = os.environ.get("CACHED_BEFORE")
    after = os.environ.get("CACHED", os.path.join(os.path.dirname(__file__), "..", "build", "cached"))
    args = ["-t", "1", "-m", "1024", "-c", "4096"]
    servers = [("mc", Server(MEMCACHED, args=args, kind="memcached")),
               ("mc2", Server(MEMCACHED, args=args, kind="memcached"))]
    if before:
        servers.append(("before", Server(before, args=args)))
    servers.append(("after", Server(after, args=args)))
    try:
        for _, srv in servers:
            subprocess.run(["taskset", "-pc", "0", str(srv.pid)], stdout=subprocess.DEVNULL,
                           check=False)
        os.sched_setaffinity(0, {os.cpu_count() - 1})
        print("value    " + "  ".join("%-20s" % ("%s/mc" % n) for n, _ in servers[1:]) +
              "  mc sets/s  (median of %d rounds, min..max)" % ROUNDS)
        for size in sizes:
            value = b"v" * size
            ratios = {n: [] for n, _ in servers[1:]}
            mc_rates = []
            for _ in range(ROUNDS):
                r = {n: rate(srv, size, value) for n, srv in servers}
                mc_rates.append(r["mc"])
                for n in ratios:
                    ratios[n].append(r[n] / r["mc"])
            cols = ["%.2fx (%.2f..%.2f)" % (statistics.median(v), min(v), max(v))
                    for v in ratios.values()]
            print("%-8d " % size + "  ".join("%-20s" % c for c in cols) +
                  "  %.0f" % statistics.median(mc_rates), flush=True)
    finally:
        for _, srv in servers:
            srv.stop()


if __name__ == "__main__":
    main()
