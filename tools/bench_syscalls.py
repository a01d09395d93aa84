#!/usr/bin/python3
"""System calls per large-value set, cached against memcached (issue 13): load-independent
enough to compare on a shared machine, where timings are not.

Each server (-t 1 -m 1024) gets 10 warm-up sets, then `strace -c -f` is attached to it and one
connection sends N sets of one size at depth 1 over 8 keys (TCP_NODELAY, each set one
sendall, waiting for STORED). Prints the system calls per set by name. strace slows the
server, so a socket holds more per read than unobserved: the counts are a floor, and the same
for every server measured. Servers: memcached, CACHED_BEFORE (if set) and CACHED.

    CACHED_BEFORE=/path/old/cached tools/bench_syscalls.py [size:count ...]
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration", "lib"))
from harness import MEMCACHED, Server  # noqa: E402


def run_sets(srv, size, n):
    s = socket.create_connection((srv.host, srv.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    v = b"x" * size
    msgs = [b"set k%d 0 0 %d\r\n" % (i, size) + v + b"\r\n" for i in range(8)]
    for i in range(n):
        s.sendall(msgs[i % 8])
        got = b""
        while not got.endswith(b"\r\n"):
            chunk = s.recv(64)
            if not chunk:
                raise RuntimeError("closed")
            got += chunk
        if got != b"STORED\r\n":
            raise RuntimeError("reply %r" % got)
    s.close()


def count(binary, kind, size, n):
    args = ["-t", "1", "-m", "1024", "-c", "4096"]
    with Server(binary, args=args, kind=kind) as srv, tempfile.NamedTemporaryFile("r") as out:
        run_sets(srv, size, 10)
        st = subprocess.Popen(["strace", "-c", "-f", "-o", out.name, "-p", str(srv.pid)],
                              stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached to every thread
        run_sets(srv, size, n)
        time.sleep(0.3)
        st.send_signal(signal.SIGINT)
        st.wait()
        calls = {}
        for line in out.read().splitlines():
            p = line.split()
            if len(p) >= 5 and p[0][0].isdigit() and p[-1] != "total":
                try:
                    calls[p[-1]] = int(p[3])
                except ValueError:
                    pass
    return calls


def main():
    runs = [tuple(int(x) for x in a.split(":")) for a in sys.argv[1:]] or \
        [(102400, 300), (1000000, 60)]
    servers = [("memcached", MEMCACHED, "memcached")]
    if os.environ.get("CACHED_BEFORE"):
        servers.append(("before", os.environ["CACHED_BEFORE"], "cached"))
    servers.append(("cached", os.environ.get(
        "CACHED", os.path.join(os.path.dirname(__file__), "..", "build", "cached")), "cached"))
    for size, n in runs:
        for name, binary, kind in servers:
            c = count(binary, kind, size, n)
            per = sorted(((k, v / n) for k, v in c.items() if v / n >= 0.05), key=lambda kv: -kv[1])
            print("%-9s %7d B: %.1f syscalls/set (%s)" % (
                name, size, sum(c.values()) / n, ", ".join("%s %.1f" % kv for kv in per)),
                flush=True)


if __name__ == "__main__":
    main()
