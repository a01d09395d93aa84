#!/usr/bin/python3
"""Randomized differential fuzzer: cached ($CACHED) against Debian's memcached 1.6.18.

A seeded generator builds command streams that mix well-formed and malformed input: classic
storage/retrieval/incr/decr/touch/gat/cas/delete/flush_all/verbosity/version, meta
mg/ms/md/ma/mn/me with random flag sets (valid and invalid flags, bad tokens, base64 keys),
wrong token counts, over-long keys, negative/huge/non-numeric numbers, data blocks of the
wrong length or with a bad terminator, noreply variants, bare "\\n" line ends and binary-ish
junk. Both servers get the same bytes on one connection per seed, a chunk at a time, each
chunk followed by a `version` sentinel; the replies must be equal byte for byte after masking
only what legitimately differs: CAS numbers (mapped to their order of first appearance, so
equality structure must still match), the VERSION string, meta TTL/last-access numbers
(each server's clock ticks at its own instant), and `me`'s fields after the key. Also masked:
mg's `h` (hit before) and me's `fetch=`, because memcached's mg keeps a reference to the item
until the batch is written, so an incr/decr later in the same batch replaces the item rather
than rewriting it in place and the new item has not been fetched; cached rewrites in place
(a known divergence, README "Known differences").
Not generated, because memcached's answer is not reproducible: incr/decr of a value that is
all white space (memcached's strtoull reads on past the value into stale memory), and
`flush_all <absolute time in the past>` (memcached then sets oldest_live to 0, which revives
items an earlier flush_all hid and nothing has reaped yet: its LRU crawler decides which).

Usage: test_fuzz_diff.py [--seeds A-B] [--chunks N] [-v]
The default (what tests/run.sh runs) is a fixed set of seeds, bounded to well under 40 s.
A failing seed prints the chunk, both replies and the command that reproduces it alone.
"""
import argparse
import base64
import os
import random
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_diff import CLOSED, Link, count_version_cmds, normalise, show  # noqa: E402

SERVER_ARGS = ["-m", "64", "-I", "1m", "-t", "2"]
SENTINEL = b"version\r\n"
QUIET = 4.0 if harness.ASAN else 2.5
DEFAULT_SEEDS = (1, 100) if not harness.ASAN else (1, 30)
DEFAULT_CHUNKS = 60
ALPHA = b"abcdefghijklmnopqrstuwxyz0123456789 -_.:"   # no 'v': values never spell "version"


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.ns = b"f%d_" % seed
        self.keys = [self.ns + b"k%d" % i for i in range(6)] + [self.ns + b"n%d" % i for i in range(3)]

    # ---- pieces
    def key(self):
        r = self.r
        x = r.random()
        if x < 0.9:
            return r.choice(self.keys)
        if x < 0.95:
            return self.ns + b"L" * r.choice([240, 245, 250 - len(self.ns) - 1, 251, 260, 300])
        return r.choice([b"", b"\x01" + self.ns + b"ctl", self.ns + b"k\x7f", self.ns + b"\xffhi"])

    def num(self, kind):
        r = self.r
        if r.random() < 0.8:
            if kind == "flags":
                return b"%d" % r.choice([0, 0, 1, 7, 65535, 4294967295])
            if kind == "exp":
                return b"%d" % r.choice([0, 0, 0, 1000, 100000, -1, 2592001, 1000000000])
            if kind == "delta":
                return b"%d" % r.choice([0, 1, 1, 5, 100, 18446744073709551615])
        return r.choice([b"-1", b"-0", b"abc", b"1a", b"4294967296", b"18446744073709551616",
                         b"99999999999999999999999", b" ", b"0x10", b"+5", b"1.5", b"-2147483649"])

    def value(self):
        r = self.r
        x = r.random()
        if x < 0.35:
            return b"%d" % r.choice([0, 1, 9, 10, 99, 12345, 18446744073709551615, r.randrange(10 ** 9)])
        if x < 0.45:
            return r.choice([b" 12", b"12 ", b"007", b"-5", b"1a2", b"", b"18446744073709551616",
                             b"18446744073709551614"])
        n = r.choice([0, 1, 2, 5, 10, 50, 300, 1500, 3000])
        v = bytes(r.choice(ALPHA) for _ in range(n))
        if n > 4 and r.random() < 0.2:
            v = v[:2] + r.choice([b"\r\n", b"\n", b"\r", b"\x00", b"\x80"]) + v[3:]
        if v and not v.strip():
            # memcached's incr reads such a value on past its end into stale chunk memory
            # (strtoull skips the "\r\n" too): not reproducible, so not generated
            v = b"a" + v[1:]
        return v

    def noreply(self):
        return b" noreply" if self.r.random() < 0.15 else b""

    def eol(self):
        return b"\n" if self.r.random() < 0.08 else b"\r\n"

    def data_block(self, v, declared):
        """The value's bytes as sent after a storage line declaring `declared` bytes."""
        r = self.r
        if declared is None:
            return v + b"\r\n"
        trailer = b"\r\n" if r.random() < 0.9 else r.choice([b"\n", b"xx", b"\r", b"\n\r"])
        out = v + trailer
        if len(out) < declared + 2:   # never leave the server waiting for bytes: fill up
            out += b"zz\r\n" * ((declared + 2 - len(out)) // 4 + 1)
        return out

    # ---- classic
    def storage(self):
        r = self.r
        cmd = r.choice([b"set", b"set", b"add", b"replace", b"append", b"prepend", b"cas"])
        k, v = self.key(), self.value()
        declared = len(v)
        blen = b"%d" % declared
        x = r.random()
        if x < 0.06:
            declared = max(0, len(v) + r.choice([-2, -1, 1, 2]))
            blen = b"%d" % declared
        elif x < 0.1:
            blen, declared = r.choice([b"-1", b"abc", b"1a", b""]), None
        parts = [cmd, k, self.num("flags"), self.num("exp"), blen]
        if cmd == b"cas":
            parts.append(r.choice([b"{cas}", b"{cas}", b"{cas1}", b"1", b"abc", b"-1"]))
        if r.random() < 0.05:
            parts = parts[:r.randrange(1, len(parts))] if r.random() < 0.5 else parts + [b"extra"]
        line = b" ".join(parts) + self.noreply() + self.eol()
        return line + self.data_block(v, declared)

    def retrieval(self):
        r = self.r
        cmd = r.choice([b"get", b"get", b"gets", b"gat", b"gats", b"bget"])
        keys = [self.key() for _ in range(r.choice([0, 1, 1, 1, 2, 3, 6]))]
        parts = [cmd]
        if cmd in (b"gat", b"gats"):
            parts.append(self.num("exp"))
        sep = b"  " if r.random() < 0.05 else b" "
        return sep.join(parts + keys) + self.eol()

    def arith(self):
        r = self.r
        parts = [r.choice([b"incr", b"decr"]), self.key(), self.num("delta")]
        if r.random() < 0.05:
            parts = parts[:2] if r.random() < 0.5 else parts + [b"x", b"y"]
        return b" ".join(parts) + self.noreply() + self.eol()

    def simple(self):
        r = self.r
        c = r.choice(["touch", "delete", "flush", "verbosity", "version", "bad", "junk"])
        if c == "touch":
            return b"touch %s %s%s%s" % (self.key(), self.num("exp"), self.noreply(), self.eol())
        if c == "delete":
            extra = r.choice([b"", b"", b" 0", b" 5", b" noreply", b" 0 noreply", b" x y"])
            return b"delete %s%s%s" % (self.key(), extra, self.eol())
        if c == "flush":
            if r.random() < 0.7:
                return r.choice([b"flush_all -1", b"flush_all abc", b"flush_all 0 0",
                                 b"flush_all x noreply", b"flush_all 1 2 3"]) + self.eol()
            return r.choice([b"flush_all", b"flush_all 0", b"flush_all noreply"]) + self.eol()
        if c == "verbosity":
            return r.choice([b"verbosity", b"verbosity 0", b"verbosity 1", b"verbosity 0 noreply",
                             b"verbosity abc", b"verbosity 1 2 3", b"verbosity -1"]) + self.eol()
        if c == "version":
            return r.choice([b"version", b"version x", b"VERSION", b"versio"]) + self.eol()
        if c == "bad":
            return r.choice([b"", b" ", b"   get", b"g", b"gets", b"set", b"set k", b"incr", b"touch k",
                             b"cas k 0 0 1", b"GET k", b"get\tk", b"sett k 0 0 1", b"delete",
                             b"mg", b"ms", b"ms k", b"md", b"ma", b"me", b"mn x", b"m", b"mz k",
                             b"lru", b"lru mode flat", b"lru tune 90 10 1 1", b"lru temp_ttl -1",
                             b"quit x", b"stats nosuch", b"watch nosuch", b"slabs nosuch",
                             b"lru_crawler nosuch", b"cache_memlimit", b"shutdown x"]) + self.eol()
        junk = bytes(r.randrange(1, 256) for _ in range(r.randrange(1, 20)))
        junk = junk.replace(b"\n", b"").replace(b"v", b"w")
        if junk[:1] == b"\x80":
            junk = b"x" + junk
        return junk + b"\r\n"

    # ---- meta
    def meta_key(self):
        r = self.r
        k = self.key()
        if r.random() < 0.08 and k:
            return base64.b64encode(k), True
        return k, False

    def meta_flags(self, pool):
        r = self.r
        fl = []
        for _ in range(r.choice([0, 1, 2, 3, 4, 6])):
            f = r.choice(pool)
            if f in "TNRJD":
                f += r.choice(["0", "30", "1000", "-1", "abc", "", "99999999999"])
            elif f == "F":
                f += r.choice(["0", "5", "4294967295", "4294967296", "x"])
            elif f == "O":
                f += r.choice(["", "op", "1234", "x" * 32, "x" * 33])
            elif f == "C":
                f += r.choice(["{cas}", "{cas}", "1", "0", "abc"])
            elif f == "M":
                f += r.choice(["S", "E", "A", "P", "R", "I", "D", "+", "-", "s", "Z", ""])
            elif f == "E":
                f += r.choice(["1", "99999"])
            fl.append(f.encode())
        return fl

    def meta(self):
        r = self.r
        c = r.choice(["mg", "mg", "ms", "ms", "md", "ma", "mn", "me"])
        if c == "mn":
            return b"mn" + self.eol()
        k, b64 = self.meta_key()
        if c == "me":
            return b"me %s%s" % (k, self.eol())
        pools = {"mg": "bcfhklOqstuvTNRE" + "zx!",
                 "ms": "bcCFIkOqsTMfE" + "vzx",
                 "md": "bCqIkOTx",
                 "ma": "bCNJDTMqOtcvk" + "x"}
        fl = self.meta_flags(pools[c])
        if b64 and r.random() < 0.8:
            fl.append(b"b")
        if c == "ms":
            v = self.value()
            declared = len(v)
            dl = b"%d" % declared
            x = r.random()
            if x < 0.05:
                declared = max(0, len(v) + r.choice([-1, 1, 2]))
                dl = b"%d" % declared
            elif x < 0.09:
                dl, declared = r.choice([b"-1", b"abc", b""]), None
            line = b" ".join([b"ms", k, dl] + fl).replace(b"  ", b" ") + self.eol()
            return line + self.data_block(v, declared)
        return b" ".join([c.encode(), k] + fl) + self.eol()

    def command(self):
        r = self.r
        kind = r.choices(["storage", "retrieval", "arith", "simple", "meta"], [25, 20, 10, 15, 30])[0]
        return getattr(self, kind)()

    def chunk(self):
        """A few commands sent in one write."""
        return b"".join(self.command() for _ in range(self.r.choice([1, 1, 1, 2, 3, 5])))


META_CAS = re.compile(rb"(?<= )c(\d+)(?=[ \r])")
META_TTL = re.compile(rb"(?<= )([tlh])(\d+)(?=[ \r])")
ME_LINE = re.compile(rb"^(ME \S+) exp=\S+ la=\S+ cas=\S+ fetch=(\S+) cls=\S+ size=\S+\r$", re.M)


def mask(reply, casmap):
    """test_diff's normalise (CAS of VALUE lines, VERSION, incr padding) plus meta fields."""
    out = normalise(reply, casmap)

    def cas(m):
        if m.group(1) not in casmap:
            casmap[m.group(1)] = len(casmap) + 1
        return b"c<cas#%d>" % casmap[m.group(1)]
    out = META_CAS.sub(cas, out)
    out = META_TTL.sub(lambda m: m.group(1) + b"<n>", out)
    out = ME_LINE.sub(lambda m: m.group(1) + b" <me>\r", out)
    return out


class Side:
    def __init__(self, server):
        self.link = Link(server)
        self.casmap = {}
        self.last_cas = []

    def note(self, reply):
        self.link.note_cas(reply)
        for m in META_CAS.finditer(reply):
            if m.group(1) not in self.link.cas_seen:
                self.link.cas_seen.append(m.group(1))
        # the newest CAS (gets or meta c) is what {cas} means on this link
        for m in re.finditer(rb"VALUE \S+ \d+ \d+ (\d+)\r\n|(?<= )c(\d+)(?=[ \r])", reply):
            self.last_cas.append(m.group(1) or m.group(2))

    def subst(self, data):
        c = self.last_cas[-1] if self.last_cas else b"424242"
        c1 = self.last_cas[0] if self.last_cas else b"424242"
        return data.replace(b"{cas1}", c1).replace(b"{cas}", c)

    def exchange(self, data):
        data = self.subst(data)
        if self.link.closed:
            return CLOSED
        # a chunk that ends inside a line gets the sentinel on a line of its own (one more
        # ERROR from both), so the sentinel is not eaten and no read waits for the quiet time
        self.link.send(data + (SENTINEL if data.endswith(b"\n") else b"\r\n" + SENTINEL))
        r = self.link.read_until_versions(count_version_cmds(data) + 1, QUIET)
        self.note(r)
        return r


def run_seed(o, s, seed, nchunks, verbose):
    g = Gen(seed)
    a, b = Side(o), Side(s)
    history = []
    try:
        for i in range(nchunks):
            data = g.chunk()
            history.append(data)
            want, got = a.exchange(data), b.exchange(data)
            if mask(want, a.casmap) != mask(got, b.casmap):
                return ["seed %d chunk %d: %s" % (seed, i, show(data, 1500)),
                        "  memcached: %s" % show(want, 1500), "  cached:    %s" % show(got, 1500),
                        "  (chunks before it on this connection: %d)" % i]
            if verbose:
                print("seed %d chunk %d ok: %s -> %s" % (seed, i, show(data, 200), show(want, 200)))
            if a.link.closed:
                break
    finally:
        a.link.close()
        b.link.close()
    return None


def parse_seeds(text):
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="%d-%d" % DEFAULT_SEEDS)
    ap.add_argument("--chunks", type=int, default=DEFAULT_CHUNKS)
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    lo, hi = parse_seeds(args.seeds)
    ck = harness.Checker("test_fuzz_diff")
    errlog = tempfile.TemporaryFile()
    t0 = time.time()
    # stderr: `verbosity 1` may be sent; nothing reads a pipe here, so no pipe
    with harness.Server(harness.MEMCACHED, SERVER_ARGS, stderr=subprocess.DEVNULL) as o, \
            harness.Server(harness.CACHED, SERVER_ARGS, stderr=errlog) as s:
        for seed in range(lo, hi + 1):
            fail = run_seed(o, s, seed, args.chunks, args.v)
            if not ck.check(fail is None, "seed %d matches memcached" % seed):
                print("\n".join(fail), flush=True)
        ck.check(s.proc.poll() is None, "cached still running")
    errlog.seek(0)
    err = errlog.read().decode(errors="replace")
    ck.check(not any(w in err for w in ("AddressSanitizer", "runtime error:", "LeakSanitizer")),
             "no sanitizer report from cached")
    print("fuzz: seeds %d-%d x %d chunks (%.1fs)" % (lo, hi, args.chunks, time.time() - t0))
    ck.done()


if __name__ == "__main__":
    main()
