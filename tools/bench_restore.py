#!/usr/bin/python3
"""Warm-restart restore time: cached -e against memcached -e, same machine, same run.

For each server: start with -e FILE on /dev/shm, load N items (pipelined noreply sets), stop
with SIGUSR1 (both save) and keep a copy of FILE and FILE.meta. Then, ROUNDS times,
alternating the servers: put the copy back, wait 1.5 s (memcached refuses a restart in the
same second), start and time from exec until the server answers `version`; every item must
be back (curr_items). Also the CPU time (user + system, all threads) the process used until
then, from /proc: on a shared, loaded machine it is the steadier measure of the work. cached
logs its own restore time, printed beside it.

    /usr/bin/python3 tools/bench_restore.py --items 1000000 --value 100
    /usr/bin/python3 tools/bench_restore.py --items 10000000 --value 10 --mem 2048 --only cached

Processes are started and stopped by PID on free loopback ports; files are removed after.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration", "lib"))
from harness import CACHED, MEMCACHED, free_port  # noqa: E402


def connect(port, timeout=60.0):
    deadline = time.time() + timeout
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            return s
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.001)


def ask(s, line, end=b"\r\n"):
    s.sendall(line)
    buf = b""
    while not buf.endswith(end):
        chunk = s.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def curr_items(port):
    with connect(port) as s:
        out = ask(s, b"stats\r\n", b"END\r\n").decode()
        return int(re.search(r"STAT curr_items (\d+)", out).group(1))


def start(binary, port, mem_file, mem_mb, verbose):
    cmd = [binary, "-p", str(port), "-l", "127.0.0.1", "-m", str(mem_mb), "-e", mem_file]
    if os.geteuid() == 0:
        cmd += ["-u", "root"] if os.path.basename(binary) == "memcached" else ["--run-as-root"]
    if verbose:
        cmd.append("-v")
    log = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    return p, t0, log


def wait_serving(p, t0, port):
    while True:
        if p.poll() is not None:
            raise RuntimeError("server exited %s" % p.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                ask(s, b"version\r\n")
                return time.perf_counter() - t0
        except OSError:
            time.sleep(0.0005)


def load(port, n, vlen):
    val = b"v" * vlen
    with connect(port) as s:
        batch = 50000
        for base in range(0, n, batch):
            s.sendall(b"".join(b"set key:%010d 0 0 %d noreply\r\n%s\r\n" % (i, vlen, val)
                               for i in range(base, min(n, base + batch))))
        ask(s, b"version\r\n")


def prepare(kind, binary, args, d):
    """Loads N items and saves them (SIGUSR1); keeps a copy of the file and its .meta."""
    port = free_port()
    mem_file = os.path.join(d, kind)
    p, t0, log = start(binary, port, mem_file, args.mem, False)
    wait_serving(p, t0, port)
    tl = time.perf_counter()
    load(port, args.items, args.value)
    loaded = curr_items(port)
    load_s = time.perf_counter() - tl
    ts = time.perf_counter()
    p.send_signal(signal.SIGUSR1)
    p.wait(600)
    save_s = time.perf_counter() - ts
    for suffix in ("", ".meta"):
        shutil.copyfile(mem_file + suffix, mem_file + suffix + ".copy")
    print("%-9s %d items loaded in %.1f s, saved (SIGUSR1 to exit) in %.2f s"
          % (kind, loaded, load_s, save_s), flush=True)
    return mem_file, loaded


def restore(kind, binary, args, mem_file, loaded):
    """One restart from the saved copy: seconds from exec to serving, restore log line."""
    for suffix in ("", ".meta"):
        shutil.copyfile(mem_file + suffix + ".copy", mem_file + suffix)
    time.sleep(1.5)  # memcached refuses a restart in the same second as the save
    port = free_port()
    p, t0, log = start(binary, port, mem_file, args.mem, kind == "cached")
    serve_s = wait_serving(p, t0, port)
    with open("/proc/%d/stat" % p.pid) as f:  # CPU spent up to serving (all threads)
        st = f.read().rsplit(")", 1)[1].split()
    cpu_s = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
    back = curr_items(port)
    os.kill(p.pid, signal.SIGTERM)
    p.wait(60)
    log.seek(0)
    text = log.read().decode(errors="replace")
    m = re.search(r"restored \d+ items from \S+ in (\d+) ms \(CPU (\d+) ms, of which read and "
                  r"checksums (\d+) ms, items (\d+) ms\)", text)
    detail = (" (its log: restore %s ms; CPU %s ms, of which read and checksums %s ms, items %s ms)"
              % m.groups() if m else "")
    print("%-9s restart to serving %.3f s, CPU %.2f s%s, items back %d/%d"
          % (kind, serve_s, cpu_s, detail, back, loaded), flush=True)
    if back != loaded:
        raise SystemExit("%s: %d of %d items restored" % (kind, back, loaded))
    return serve_s, cpu_s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1000000)
    ap.add_argument("--value", type=int, default=100)
    ap.add_argument("--mem", type=int, default=1024, help="-m for both servers (MB)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", choices=["cached", "memcached"])
    args = ap.parse_args()
    kinds = [(k, b) for k, b in (("cached", CACHED), ("memcached", MEMCACHED))
             if not args.only or k == args.only]
    d = tempfile.mkdtemp(prefix="bench-restore-", dir="/dev/shm")
    try:
        saved = {k: prepare(k, b, args, d) for k, b in kinds}
        res = {k: [] for k, _ in kinds}
        for _ in range(args.rounds):  # alternating, so both see the same machine load
            for k, b in kinds:
                res[k].append(restore(k, b, args, *saved[k]))
        med = {}
        for k, _ in kinds:
            w = sorted(r[0] for r in res[k])
            c = sorted(r[1] for r in res[k])
            med[k] = (w[0], w[len(w) // 2], c[0], c[len(c) // 2])
            print("%-9s over %d rounds: restart to serving min %.3f s, median %.3f s; "
                  "CPU min %.2f s, median %.2f s" % ((k, len(w)) + med[k]))
        if len(kinds) == 2:
            c, m = med["cached"], med["memcached"]
            print("cached faster by: wall min %.2fx, wall median %.2fx; CPU min %.2fx, "
                  "CPU median %.2fx" % (m[0] / c[0], m[1] / c[1], m[2] / c[2], m[3] / c[3]))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
