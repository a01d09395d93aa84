#!/usr/bin/python3
"""Random sequences mixing binary and text connections on the same keys, against Debian's
memcached 1.6.18: two binary and two text connections take turns (seeded, so both servers see
the same stream) storing, reading, appending, counting, touching and deleting a handful of
keys, with CAS values taken from what each server itself returned. Every response must match
after CAS values are normalised by their equality structure (shared across protocols, so a
CAS seen in `gets` and in a binary header must be the same number on both servers)."""
import os
import random
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import MEMCACHED, Checker, Server  # noqa: E402
from mcbin import BinConn, Normaliser, arith, pack, store, touch  # noqa: E402

ck = Checker("test_binary_mixed")
KEYS = ["k%d" % i for i in range(6)]
SEEDS = (1, 2, 3, 4)
STEPS = 250


class TextConn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def exact(self, n):
        while len(self.buf) < n:
            self.buf += self.sock.recv(65536)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(self, data, multi):
        self.sock.sendall(data)
        if not multi:
            return [self.line()]
        out = []
        while True:
            ln = self.line()
            out.append(ln)
            if ln == b"END":
                return out
            if ln.startswith(b"VALUE "):
                out.append(self.exact(int(ln.split()[3]) + 2)[:-2])
            else:
                return out


def value(rng):
    r = rng.random()
    if r < 0.3:
        return str(rng.randrange(0, 1000)).encode()
    if r < 0.35:
        return b""
    return bytes(rng.choice(b"abcxyz0123456789") for _ in range(rng.randrange(1, 40)))


def text_step(rng, t, seen, norm):
    k = rng.choice(KEYS)
    op = rng.choice(["set", "add", "replace", "append", "prepend", "cas", "get", "gets",
                     "delete", "incr", "decr", "touch", "gat", "gats", "mg", "ms", "md"])
    if op in ("set", "add", "replace", "append", "prepend", "cas"):
        v = value(rng)
        flags = rng.choice([0, 1, 77])
        extra = b""
        if op == "cas":
            c = seen.get(k, 1) + (0 if rng.random() < 0.7 else 1)
            extra = b" %d" % c
        req = b"%s %s %d 0 %d%s\r\n%s\r\n" % (op.encode(), k.encode(), flags, len(v), extra, v)
        return t.request(req, False)
    if op in ("get", "gets"):
        ks = " ".join(rng.sample(KEYS, rng.randrange(1, 4)))
        out = t.request(("%s %s\r\n" % (op, ks)).encode(), True)
    elif op in ("gat", "gats"):
        out = t.request(("%s 1000 %s\r\n" % (op, k)).encode(), True)
    elif op == "delete":
        return t.request(("delete %s\r\n" % k).encode(), False)
    elif op in ("incr", "decr"):
        return t.request(("%s %s %d\r\n" % (op, k, rng.randrange(0, 50))).encode(), False)
    elif op == "touch":
        return t.request(("touch %s 1000\r\n" % k).encode(), False)
    elif op == "mg":
        out = [t.request(("mg %s c f v\r\n" % k).encode(), False)[0]]
        if out[0].startswith(b"VA "):
            out.append(t.line())
    elif op == "ms":
        v = value(rng)
        out = t.request(b"ms %s %d c\r\n%s\r\n" % (k.encode(), len(v), v), False)
    else:
        return t.request(("md %s\r\n" % k).encode(), False)
    return [text_norm(ln, norm, seen) for ln in out]


def text_norm(ln, norm, seen):
    """CAS numbers in VALUE lines (gets/gats) and meta c flags, by equality structure."""
    parts = ln.split(b" ")
    if parts[0] == b"VALUE" and len(parts) == 5:
        seen[parts[1].decode()] = int(parts[4])
        parts[4] = b"<cas%d>" % norm.cas_id(int(parts[4]))
    else:
        for i, p in enumerate(parts):
            if parts[0] in (b"VA", b"HD") and p.startswith(b"c") and p[1:].isdigit():
                parts[i] = b"c<cas%d>" % norm.cas_id(int(p[1:]))
    return b" ".join(parts)


def bin_step(rng, c, seen, norm):
    k = rng.choice(KEYS)
    op = rng.choice(["set", "setq", "add", "addq", "replace", "replaceq", "append", "prependq",
                     "get", "getk", "getq", "getkq", "delete", "deleteq", "incr", "decrq",
                     "touch", "gat", "gatkq", "cas-set", "cas-delete", "cas-append", "cas-incr"])
    good = seen.get(k, 1)
    cas = good if rng.random() < 0.7 else good + 1
    if op in ("set", "setq", "add", "addq", "replace", "replaceq"):
        pkt = store(op, k, value(rng), flags=rng.choice([0, 5, 0xffffffff]))
    elif op == "cas-set":
        pkt = store(rng.choice(["set", "add", "replace"]), k, value(rng), cas=cas)
    elif op in ("append", "prependq"):
        pkt = pack(op, k, value=value(rng))
    elif op == "cas-append":
        pkt = pack("append", k, value=value(rng), cas=cas)
    elif op in ("get", "getk", "getq", "getkq", "delete", "deleteq"):
        pkt = pack(op, k)
    elif op == "cas-delete":
        pkt = pack("delete", k, cas=cas)
    elif op in ("incr", "decrq"):
        pkt = arith(op, k, rng.randrange(0, 100), rng.randrange(0, 100),
                    rng.choice([0, 1000, 0xffffffff]))
    elif op == "cas-incr":
        pkt = arith("incr", k, 1, 0, 0xffffffff, cas=cas)
    else:
        pkt = touch(op, k, 1000)
    got, closed = c.call(pkt)
    for p in got:
        if p["cas"]:
            seen[k] = p["cas"]
    return [norm.packet(p) for p in got] + (["closed"] if closed else [])


def run(port, seed):
    rng = random.Random(seed)
    norm = Normaliser()
    seen = {}
    bins = [BinConn(port), BinConn(port)]
    texts = [TextConn(port), TextConn(port)]
    out = []
    try:
        for _ in range(STEPS):
            i = rng.randrange(4)
            if i < 2:
                out.append(("bin%d" % i, bin_step(rng, bins[i], seen, norm)))
            else:
                out.append(("text%d" % (i - 2), text_step(rng, texts[i - 2], seen, norm)))
    finally:
        for c in bins:
            c.close()
        for t in texts:
            t.sock.close()
    return out


def main():
    results = {}
    for kind, binary in (("cached", None), ("memcached", MEMCACHED)):
        with Server(binary, args=["-t", "2"], kind=kind if binary else None) as srv:
            results[kind] = []
            for seed in SEEDS:
                # each seed starts from an empty cache
                with BinConn(srv.port) as c:
                    c.call(pack("flush"))
                results[kind].append(run(srv.port, seed))
            ck.check(srv.proc.poll() is None, "%s still running" % kind)
    for n, seed in enumerate(SEEDS):
        got, want = results["cached"][n], results["memcached"][n]
        bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w]
        ck.eq(len(got), len(want), "seed %d: steps" % seed)
        if bad:
            i, g, w = bad[0]
            ck.check(False, "seed %d: %d of %d steps differ; first at step %d: got %r, want %r"
                     % (seed, len(bad), len(got), i, g, w))
        else:
            ck.check(True, "seed %d" % seed)
    ck.done()


if __name__ == "__main__":
    main()
