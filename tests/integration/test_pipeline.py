#!/usr/bin/python3
"""Pipelined commands: cached ($CACHED) against Debian's memcached (the oracle), byte for byte.

cached frames a run of pipelined one-key gets in one pass and prefetches their lookups
(protocol/proto.c, "lookahead"); everything else in a pipeline goes the general way. This test
sends the same pipelines to both servers and compares every reply byte:
  A. scripted pipelines, each in one write: gets among hits and misses, gets, multi-gets, odd
     spacing and line ends, a bad key, unknown commands mid-pipeline, sets (noreply too) and
     the gets of what they stored, a bad data chunk, a value over -I swallowed mid-pipeline, a
     600 KB value, meta commands, `quit` mid-pipeline (nothing after it may run), and more
     gets than one read event runs (-R) and than the lookahead holds;
  B. one small pipeline split in two at every byte boundary (a command cut across reads);
  C. seeded random pipelines of those commands, cut at random points.
CAS numbers are renumbered by order of first appearance (each server counts its own).

Usage: test_pipeline.py [--seeds N]
"""
import argparse
import os
import random
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402

SERVER_ARGS = ["-m", "64", "-I", "1m", "-t", "1", "-R", "20"]
SENTINEL = b"version\r\n"
QUIET = 6.0 if harness.ASAN else 3.0
VALUE_RE = re.compile(rb"^(VALUE \S+ \d+ \d+) (\d+)\r\n", re.M)


def normalise(data):
    seen = {}

    def sub(m):
        n = seen.setdefault(m.group(2), len(seen))
        return m.group(1) + b" cas#%d\r\n" % n

    return VALUE_RE.sub(sub, data)


def converse(port, chunks, pause=0.0):
    """Sends chunks (then the sentinel) on a new connection; returns what came back, ended by
    the sentinel's VERSION line, "<closed>" or "<quiet>"."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = b""
    try:
        for i, c in enumerate(chunks):
            s.sendall(c)
            if pause and i + 1 < len(chunks):
                time.sleep(pause)
        try:
            s.sendall(SENTINEL)
        except OSError:
            pass
        s.settimeout(QUIET)
        while True:
            if out.endswith(b"\r\n") and out.rsplit(b"\r\n", 2)[-2].startswith(b"VERSION "):
                return out
            try:
                b = s.recv(1 << 20)
            except socket.timeout:
                return out + b"<quiet>"
            except ConnectionResetError:
                return out + b"<closed>"
            if not b:
                return out + b"<closed>"
            out += b
    finally:
        s.close()


def st(key, value, flags=0, cmd=b"set", noreply=False):
    return b"%s %s %d 0 %d%s\r\n%s\r\n" % (cmd, key, flags, len(value),
                                           b" noreply" if noreply else b"", value)


def scripted():
    """(name, setup bytes or None, pipeline bytes). Keys are per case."""
    cases = []
    big = bytes(random.Random(7).choice(b"abcdefgh") for _ in range(600 * 1024))
    keys = [b"h%d" % i for i in range(20)]
    setup = b"".join(st(k, b"v-" + k * (i + 1), flags=i) for i, k in enumerate(keys))
    gets = b"".join(b"get %s\r\n" % (k if i % 3 else b"miss" + k) for i, k in enumerate(keys))
    cases.append(("gets among hits and misses", setup, gets))
    cases.append(("gets and get mixed", setup,
                  b"".join(b"gets %s\r\nget %s\r\n" % (k, k) for k in keys[:8])))
    cases.append(("bare newlines", setup, b"".join(b"get %s\n" % k for k in keys[:8])))
    cases.append(("odd spacing", setup,
                  b"get  h1\r\nget h2 \r\nget h3\r\n get h4\r\nget\th5\r\nget h6\r\r\n"
                  b"get h7\r\nget h8 h9 h10\r\nget h11\r\n"))
    # A 251-byte key comes first only: memcached then throws away the unsent replies of the
    # commands before it in the same read, a bug cached does not copy (diff_corpus.py).
    cases.append(("bad key then gets", setup,
                  b"get " + b"k" * 251 + b"\r\nget h2\r\nget " + b"k" * 250 +
                  b"\r\nget h3\r\nget h6\r\n"))
    cases.append(("unknown and short commands mid-pipeline", setup,
                  b"get h1\r\nbogus h1\r\nget h2\r\nget\r\ngets\r\nget h3\r\n\r\nget h4\r\n"
                  b"GET h5\r\nget h6\r\n"))
    cases.append(("NUL and CR inside a line", setup,
                  b"get h1\r\nget h2\x00junk\r\nget h3\r\nget h\r4\r\nget h5\r\n"))
    cases.append(("sets then gets of them", None,
                  st(b"s1", b"one") + b"get s1\r\n" + st(b"s2", b"two", noreply=True) +
                  b"get s2\r\nget s1\r\n" + st(b"s1", b"uno", cmd=b"append") +
                  b"gets s1\r\nget s3\r\n" + st(b"s3", b"3", cmd=b"add", noreply=True) +
                  b"get s3\r\ndelete s1\r\nget s1\r\nincr s3 5\r\nget s3\r\n"))
    cases.append(("bad data chunk mid-pipeline", None,
                  st(b"b1", b"ok") + b"get b1\r\nset b2 0 0 3\r\nabcdef\r\nget b2\r\n"
                  b"get b1\r\n"))
    cases.append(("value over -I swallowed mid-pipeline", None,
                  st(b"t1", b"before") + b"get t1\r\nset t1 0 0 %d\r\n" % (2 << 20) +
                  b"z" * (2 << 20) + b"\r\nget t1\r\nget t2\r\n"))
    cases.append(("600 KB value then gets", None,
                  st(b"g1", big) + b"get g1\r\nget g2\r\nget g1\r\n" +
                  st(b"g2", b"small") + b"get g2\r\nget g1 g2\r\n"))
    cases.append(("meta commands among gets", setup,
                  b"mg h1 v f\r\nget h2\r\nmg missing v\r\nmg h3 s v q\r\nget h4\r\n"
                  b"ms m1 2 T0\r\nhi\r\nmg m1 v\r\nmn\r\nget m1\r\nmd m1 q\r\nget m1\r\nmn\r\n"))
    cases.append(("noreply storage commands and errors", None,
                  b"set n1 0 0 2 noreply\r\nab\r\nget n1\r\nset n1 x 0 2 noreply\r\nab\r\n"
                  b"get n1\r\nincr n1 1 noreply\r\nget n1\r\n"))
    cases.append(("quit mid-pipeline", setup,
                  b"get h1\r\nget h2\r\nquit\r\nset h1 0 0 1\r\nX\r\nget h1\r\n"))
    cases.append(("after quit nothing ran", None, b"get h1\r\n"))
    many = b"".join(b"get %s\r\n" % keys[i % 20] for i in range(150))
    cases.append(("150 gets: past -R and the lookahead", setup, many))
    return cases


def run_scripted(ck, port_c, port_m):
    for name, setup, pipe in scripted():
        got = {}
        for tag, port in (("cached", port_c), ("memcached", port_m)):
            if setup:
                converse(port, [setup])
            got[tag] = normalise(converse(port, [pipe]))
        ck.eq(got["cached"], got["memcached"], "A %s" % name)


def run_splits(ck, port_c, port_m):
    setup = st(b"sp1", b"alpha") + st(b"sp2", b"beta" * 10, flags=7)
    pipe = (b"get sp1\r\ngets sp2\r\nget nope\r\nget sp1 sp2\r\nset sp3 0 0 3\r\nxyz\r\n"
            b"get sp3\r\nmg sp2 v\r\nget sp2\r\n")
    for port in (port_c, port_m):
        converse(port, [setup])
    bad = 0
    for i in range(1, len(pipe)):
        a = normalise(converse(port_c, [pipe[:i], pipe[i:]], pause=0.005))
        b = normalise(converse(port_m, [pipe[:i], pipe[i:]], pause=0.005))
        if a != b:
            bad += 1
            if bad <= 3:
                print("split at %d: cached %r memcached %r" % (i, a, b))
    ck.eq(bad, 0, "B replies differ at some of the %d split points" % (len(pipe) - 1))


def random_pipeline(rnd):
    keys = [b"r%d" % i for i in range(6)]
    out = []
    for _ in range(rnd.randint(5, 40)):
        k = rnd.choice(keys)
        r = rnd.random()
        if r < 0.45:
            out.append(b"get %s\r\n" % k)
        elif r < 0.55:
            out.append(b"gets %s\r\n" % k)
        elif r < 0.62:
            out.append(b"get %s %s\r\n" % (k, rnd.choice(keys)))
        elif r < 0.75:
            v = bytes(rnd.choice(b"xyz") for _ in range(rnd.choice([0, 3, 100, 3000])))
            out.append(st(k, v, flags=rnd.randint(0, 9), noreply=rnd.random() < 0.3))
        elif r < 0.80:
            out.append(b"delete %s\r\n" % k)
        elif r < 0.85:
            out.append(b"mg %s v\r\n" % k)
        elif r < 0.91:
            out.append(b"nonsense\r\n")
        elif r < 0.94:
            out.append(b"set %s 0 0 2\r\nabc\r\n" % k)
        else:
            out.append(b"get %s\n" % k)
    if rnd.random() < 0.2:
        out.insert(0, b"get %s\r\n" % (b"L" * 251)) # first only (see scripted())
    return b"".join(out)


def run_random(ck, port_c, port_m, seeds):
    bad = 0
    for seed in range(seeds):
        rnd = random.Random(seed)
        pipe = random_pipeline(rnd)
        cuts = sorted(rnd.sample(range(1, len(pipe)), min(3, len(pipe) - 1)))
        chunks = [pipe[a:b] for a, b in zip([0] + cuts, cuts + [len(pipe)])]
        a = normalise(converse(port_c, chunks, pause=0.003))
        b = normalise(converse(port_m, chunks, pause=0.003))
        if a != b:
            bad += 1
            if bad <= 3:
                print("seed %d: pipeline %r\n cached    %r\n memcached %r" % (seed, pipe, a, b))
    ck.eq(bad, 0, "C random pipelines that differ (of %d)" % seeds)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=150)
    args = ap.parse_args()
    ck = harness.Checker("test_pipeline")
    with harness.Server(args=SERVER_ARGS) as cached, \
            harness.Server(harness.MEMCACHED, args=SERVER_ARGS, kind="memcached") as mc:
        run_scripted(ck, cached.port, mc.port)
        run_splits(ck, cached.port, mc.port)
        run_random(ck, cached.port, mc.port, args.seeds)
        ck.check(cached.proc.poll() is None, "cached still running at the end")
    ck.done()


if __name__ == "__main__":
    main()
