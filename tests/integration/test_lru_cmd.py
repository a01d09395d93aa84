#!/usr/bin/python3
"""memcached's `lru tune|mode|temp_ttl` admin command against cached and Debian's memcached.

Every syntax and range error, `lru mode flat|segmented` (cached's flat mode and its default,
the counterpart of memcached's segmented LRU: stats settings lru_segmented follows, as
memcached's), `lru temp_ttl <negative>` and the noreply forms answer byte for byte as memcached
does, also under -o no_lru_maintainer (where memcached answers ERROR to `lru mode` and
`lru temp_ttl`). What would need memcached's HOT/WARM/COLD sizes or a temporary-TTL LRU (`lru
tune` with good values, `lru temp_ttl <n >= 0>`) memcached answers OK; cached cannot honour it
and answers an ERROR line saying so (README, "lru"), and those stats settings stay as they were.
And the flat mode behaves as memcached's: an item read right after it was written is still the
first evicted.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import MEMCACHED, Checker, Server  # noqa: E402

SAME = [b"lru", b"lru ", b"lru tune", b"lru tune 1 2 3", b"lru tune 50 40 2 2", b"lru tune 10 20 0 2",
        b"lru tune 10 20 2 -0", b"lru tune -1 20 2 2", b"lru tune 1e1 2 2 2", b"lru tune 10 20 1e400 2",
        b"lru tune 1 1 1e-400 1", b"lru tune 10 20 2x 2", b"lru tune 10 20 2 2 noreply",
        b"lru TUNE 1 1 1 1", b"lru mode", b"lru mode flat", b"lru mode flat a b c", b"lru mode bogus",
        b"lru mode FLAT", b"lru mode flat noreply", b"lru mode segmented noreply", b"lru temp_ttl",
        b"lru temp_ttl -1", b"lru temp_ttl x", b"lru temp_ttl 2147483648", b"lru temp_ttl 5 noreply",
        b"lru foo", b"lru foo noreply", b"lru noreply", b"lru  mode  flat", b"lru mode segmented",
        b"lru mode flat", b"lru mode segmented"]
NO_SEGMENTS = b"ERROR not supported: cached's LRU is one CLOCK ring per class, not segmented\r\n"
NO_TEMP = b"ERROR not supported: cached has no temporary-TTL LRU\r\n"
REFUSED = [(b"lru tune 10 20 2 2", NO_SEGMENTS), (b"lru tune 10 20 nan 2", NO_SEGMENTS),
           (b"lru tune 4294967295 1 2 2", NO_SEGMENTS), (b"lru tune 1 1 1 1 1 1 1 1", NO_SEGMENTS),
           (b"lru temp_ttl 0", NO_TEMP),
           (b"lru temp_ttl 99999999999", NO_TEMP), (b"lru temp_ttl 5 extra", NO_TEMP)]
SETTINGS = (b"temp_lru", b"temporary_ttl", b"hot_lru_pct", b"warm_lru_pct")
NO_MAINTAINER = [b"lru mode flat", b"lru mode segmented", b"lru mode bogus", b"lru temp_ttl -1",
                 b"lru temp_ttl 5", b"lru tune 50 40 2 2", b"lru tune 10 20 0 2"]


def ask(srv, line):
    """The reply to one line, delimited by a following `version`."""
    with srv.connect() as c:
        c.send(line + b"\r\nversion\r\n")
        return c.read_until(b"VERSION 1.6.18\r\n")[:-len(b"VERSION 1.6.18\r\n")]


def settings(srv):
    st = srv.stats("settings")
    return {k: st.get(k.decode()) for k in SETTINGS}


def main():
    ck = Checker("test_lru_cmd")
    with Server() as cs, Server(MEMCACHED, kind="memcached") as ms:
        before = settings(cs)
        for line in SAME:
            ck.eq(ask(cs, line), ask(ms, line), "%r as memcached answers it" % line)
        for line, want in REFUSED:
            ck.eq(ask(ms, line), b"OK\r\n", "%r: memcached's OK" % line)
            ck.eq(ask(cs, line), want, "%r: cached refuses what it cannot honour" % line)
        ck.eq(settings(cs), before, "stats settings unchanged by refused lru commands")
        for mode, seg in ((b"flat", "no"), (b"segmented", "yes")):
            for srv in (cs, ms):
                ck.eq(ask(srv, b"lru mode " + mode), b"OK\r\n", "lru mode %s" % mode.decode())
                ck.eq(srv.stats("settings").get("lru_segmented"), seg,
                      "%s: lru mode %s: lru_segmented" % (srv.kind, mode.decode()))
        ck.check(cs.proc.poll() is None, "cached still running")
    args = ["-o", "no_lru_maintainer"]
    with Server(args=args) as cs, Server(MEMCACHED, args=args, kind="memcached") as ms:
        for line in NO_MAINTAINER:
            ck.eq(ask(cs, line), ask(ms, line), "no_lru_maintainer: %r as memcached answers it" % line)
        ck.eq(cs.stats("settings").get("lru_segmented"), "no", "no_lru_maintainer: flat")
    # flat: a read right after the write does not save an item (memcached's 60 s bump interval);
    # in the default mode the read protects it. 12 values of ~1 MB, -m 8: the first goes first.
    big = b"x" * (1024 * 1024 - 250)
    for args, kept in ((["-o", "no_lru_maintainer"], False), ([], True)):
        with Server(args=["-m", "8"] + args) as cs:
            with cs.connect() as c:
                c.send(b"set first 0 0 %d\r\n%s\r\n" % (len(big), big))
                c.read_until(b"STORED\r\n")
                c.send(b"mg first v\r\n")
                c.read_until(b"\r\n" + big + b"\r\n")
                for i in range(12):
                    c.send(b"set k%d 0 0 %d\r\n%s\r\n" % (i, len(big), big))
                    c.read_until(b"STORED\r\n")
                c.send(b"mg first\r\n")
                got = c.readline()
        ck.eq(got == b"HD\r\n", kept, "%s: a read right after the write %s the item"
              % (" ".join(args) or "default", "keeps" if kept else "does not keep"))
    ck.done()


if __name__ == "__main__":
    main()
