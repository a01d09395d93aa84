#!/usr/bin/python3
"""Memory benchmark: cached against memcached in the same run (issue #3).

Scenario A: store N items (10-byte keys, 100-byte values) under -m 1024 and report RSS and
overhead bytes per item = (RSS after - RSS before - N * (key + value)) / N.
Scenario B: write M such items under -m 256, then read every key back and count the items
still held (each hit's value is verified).

Both servers run on free loopback ports and are stopped by PID. Usage:
  tools/bench_memory.py [--items 1000000] [--items-b 3000000] [--cached build/cached]
                        [--memcached /usr/bin/memcached] [--only a|b]
"""
import argparse
import os
import socket
import subprocess
import sys
import time

KEY_LEN, VAL_LEN = 10, 100


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(binary, mem_mb, threads=4):
    port = free_port()
    args = [binary, "-p", str(port), "-l", "127.0.0.1", "-m", str(mem_mb), "-t", str(threads)]
    is_memcached = os.path.basename(binary).startswith("memcached")
    if os.geteuid() == 0:
        args += ["-u", "root"] if is_memcached else ["--run-as-root"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=1)
            c.sendall(b"version\r\n")
            if c.recv(100).startswith(b"VERSION"):
                return proc, port, c
            c.close()
        except OSError:
            time.sleep(0.05)
        if proc.poll() is not None:
            raise RuntimeError(f"{binary} exited: {proc.stderr.read().decode(errors='replace')}")
    proc.kill()
    raise RuntimeError(f"{binary} did not start")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def key(i):
    return b"k%09d" % i


def value(i):
    return (b"%010d" % i) * (VAL_LEN // 10)


def recv_exact(conn, n, buf):
    while len(buf) < n:
        chunk = conn.recv(1 << 20)
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk
    return buf


def store(conn, start_i, count, batch=1000):
    reply = b"STORED\r\n"
    i = start_i
    end = start_i + count
    buf = b""
    while i < end:
        n = min(batch, end - i)
        parts = []
        for j in range(i, i + n):
            parts.append(b"set %s 0 0 %d\r\n%s\r\n" % (key(j), VAL_LEN, value(j)))
        conn.sendall(b"".join(parts))
        buf = recv_exact(conn, n * len(reply), buf)
        got, buf = buf[: n * len(reply)], buf[n * len(reply):]
        if got != reply * n:
            bad = got.replace(reply, b"")[:200]
            raise RuntimeError(f"store failed near item {i}: {bad!r}")
        i += n


def count_held(conn, total, per_get=100):
    """Gets every key; returns (hits, bad values)."""
    hits = bad = 0
    buf = b""
    i = 0
    while i < total:
        n = min(per_get, total - i)
        conn.sendall(b"get " + b" ".join(key(j) for j in range(i, i + n)) + b"\r\n")
        while True:
            buf = recv_exact(conn, 5, buf)
            if buf.startswith(b"END\r\n"):
                buf = buf[5:]
                break
            nl = buf.find(b"\r\n")
            while nl < 0:
                buf = recv_exact(conn, len(buf) + 1, buf)
                nl = buf.find(b"\r\n")
            _, k, _flags, nbytes = buf[:nl].split()[:4]
            nbytes = int(nbytes)
            buf = recv_exact(conn, nl + 2 + nbytes + 2, buf)
            v = buf[nl + 2: nl + 2 + nbytes]
            buf = buf[nl + 2 + nbytes + 2:]
            idx = int(k[1:])
            hits += 1
            if v != value(idx):
                bad += 1
        i += n
    return hits, bad


def scenario_a(binary, items):
    proc, _port, conn = start(binary, 1024)
    try:
        time.sleep(0.5)
        before = rss_kb(proc.pid) * 1024
        store(conn, 0, items)
        time.sleep(0.5)
        after = rss_kb(proc.pid) * 1024
        payload = items * (KEY_LEN + VAL_LEN)
        return {"rss_before": before, "rss_after": after,
                "overhead": (after - before - payload) / items}
    finally:
        conn.close()
        stop(proc)


def scenario_b(binary, items):
    proc, _port, conn = start(binary, 256)
    try:
        store(conn, 0, items)
        hits, bad = count_held(conn, items)
        return {"held": hits, "bad": bad, "rss": rss_kb(proc.pid) * 1024}
    finally:
        conn.close()
        stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--cached", default=os.path.join(here, "..", "build", "cached"))
    ap.add_argument("--memcached", default="/usr/bin/memcached")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--items-b", type=int, default=3_000_000)
    ap.add_argument("--only", choices=["a", "b"])
    a = ap.parse_args()
    servers = [("cached", a.cached), ("memcached", a.memcached)]
    if a.only != "b":
        res = {name: scenario_a(path, a.items) for name, path in servers}
        print(f"A: {a.items} items ({KEY_LEN}-byte keys, {VAL_LEN}-byte values), -m 1024")
        for name, r in res.items():
            print(f"  {name:10s} RSS before {r['rss_before'] / 2**20:8.1f} MB  after "
                  f"{r['rss_after'] / 2**20:8.1f} MB  overhead {r['overhead']:6.1f} B/item")
        ratio = res["cached"]["overhead"] / res["memcached"]["overhead"]
        print(f"  overhead ratio cached/memcached: {ratio:.2f} (goal <= 0.65)")
    if a.only != "a":
        res = {name: scenario_b(path, a.items_b) for name, path in servers}
        print(f"B: {a.items_b} items written, -m 256")
        for name, r in res.items():
            print(f"  {name:10s} held {r['held']:9d} (bad values {r['bad']})  "
                  f"RSS {r['rss'] / 2**20:7.1f} MB")
        ratio = res["cached"]["held"] / max(1, res["memcached"]["held"])
        print(f"  held ratio cached/memcached: {ratio:.2f} (goal >= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
