#!/usr/bin/python3
"""libmemcached's own binary-protocol checks against cached and Debian's memcached 1.6.18:
`memccapable -b` (its 27 binary conformance tests; memcached passes all), then the
libmemcached tools in --binary mode (memccp, memccat, memcexist, memctouch, memcrm, memcflush,
memcstat) doing the same work on both servers, with the same output and exit codes."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import MEMCACHED, Checker, Server  # noqa: E402

ck = Checker("test_binary_memccapable")


def memccapable(port):
    p = subprocess.run(["memccapable", "-b", "-t", "5", "-h", "127.0.0.1", "-p", str(port)],
                       capture_output=True, text=True, timeout=120)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("binary ")]
    return p.returncode, lines


def tools(port):
    srv = "--servers=127.0.0.1:%d" % port
    d = tempfile.mkdtemp(prefix="cached-memcp-")
    out = []
    try:
        for name, data in (("small.txt", b"hello\n"), ("big.bin", os.urandom(300000))):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        runs = [
            ["memccp", "--binary", srv, os.path.join(d, "small.txt"), os.path.join(d, "big.bin")],
            ["memccat", "--binary", srv, "small.txt"],
            ["memccat", "--binary", srv, "missing"],
            ["memcexist", "--binary", srv, "small.txt"],
            ["memcexist", "--binary", srv, "missing"],
            ["memctouch", "--binary", srv, "--expire=100", "small.txt"],
            ["memctouch", "--binary", srv, "--expire=100", "missing"],
            ["memcrm", "--binary", srv, "small.txt"],
            ["memcrm", "--binary", srv, "small.txt"],
            ["memcflush", "--binary", srv],
            ["memccat", "--binary", srv, "big.bin"],
        ]
        for cmd in runs:
            p = subprocess.run(cmd, capture_output=True, timeout=60)
            norm = lambda b: b.replace(str(port).encode(), b"PORT")  # noqa: E731
            arg = os.path.basename(cmd[-1]).replace(str(port), "PORT")
            out.append((cmd[0], arg, p.returncode, norm(p.stdout)[:200], norm(p.stderr)))
        p = subprocess.run(["memcstat", "--binary", srv], capture_output=True, timeout=60)
        keys = [ln.split(":")[0].strip() for ln in p.stdout.decode().splitlines()]
        out.append(("memcstat", p.returncode, "curr_items" in keys, "pid" in keys))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return out


def main():
    if not shutil.which("memccapable"):
        print("SKIP: libmemcached-tools not installed")
        print("test_binary_memccapable: 0 passed, 0 failed")
        return
    res = {}
    for kind, binary in (("cached", None), ("memcached", MEMCACHED)):
        with Server(binary, kind=kind if binary else None) as s:
            res[kind] = (memccapable(s.port), tools(s.port))
            ck.check(s.proc.poll() is None, "%s still running" % kind)
    (rc, lines), tl = res["cached"]
    (mrc, mlines), mtl = res["memcached"]
    ck.eq(rc, 0, "memccapable -b exit code on cached")
    failed = [ln for ln in lines if not ln.endswith("[pass]")]
    ck.eq(failed, [], "memccapable -b: every binary test passes")
    ck.eq(len(lines), len(mlines), "memccapable -b: as many tests as against memcached")
    for got, want in zip(tl, mtl):
        ck.eq(got, want, "libmemcached tool %s" % (got[:2],))
    ck.done()


if __name__ == "__main__":
    main()
