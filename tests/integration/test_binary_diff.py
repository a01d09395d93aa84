#!/usr/bin/python3
"""Binary protocol, byte for byte against Debian's memcached 1.6.18: every opcode, quiet
variants in pipelines, malformed packets (bad magic, bad lengths, unknown opcodes) and the
connections memcached closes. Each scenario runs on a fresh connection to each server; the
responses are compared after normalising only CAS values (by their equality structure), the
version text and the contents of stats groups (their layout is another test's business)."""
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import MEMCACHED, Checker, Server  # noqa: E402
from mcbin import (OP, BinConn, Normaliser, arith, pack, parse, store,  # noqa: E402
                   touch)

ck = Checker("test_binary_diff")

BIG = bytes(random.Random(7).getrandbits(8) for _ in range(100000))


def scenarios():
    """(name, [packets], mode): mode "marker" ends with a NOOP marker; "close" reads until the
    server closes or goes quiet."""
    s = []
    s.append(("set/get family", [
        store("set", "a", "hello", flags=5), pack("get", "a"), pack("getk", "a"),
        pack("getq", "a"), pack("getkq", "a"), pack("get", "nope"), pack("getk", "nope"),
        pack("getq", "nope"), pack("getkq", "nope"), store("set", "f", "x", flags=0xffffffff),
        pack("get", "f"), store("set", "empty", ""), pack("getk", "empty"),
        store("set", "big", BIG, flags=1), pack("get", "big"), pack("getk", "big"),
        store("set", "bin", bytes(range(256))), pack("get", "bin"),
    ], "marker"))
    s.append(("add/replace and quiet", [
        store("add", "r1", "v1"), store("add", "r1", "v2"), store("addq", "r1", "v3"),
        store("addq", "r2", "v4"), store("replace", "r3", "x"), store("replaceq", "r3", "y"),
        store("replace", "r1", "new"), store("replaceq", "r2", "new2"), pack("get", "r1"),
        pack("get", "r2"), store("setq", "r4", "quiet"), pack("getk", "r4"),
    ], "marker"))
    s.append(("cas", [
        store("set", "c", "1"), pack("get", "c"),
    ], "marker"))
    s.append(("delete", [
        store("set", "d1", "x"), store("set", "d2", "x"), pack("delete", "d1"),
        pack("delete", "d1"), pack("deleteq", "d2"), pack("deleteq", "d2"),
        pack("get", "d2"), store("set", "d3", "x"), pack("delete", "d3", cas=987654),
        pack("get", "d3"),
    ], "marker"))
    s.append(("incr/decr", [
        arith("incr", "n", 1, 10, 0), arith("incr", "n", 5), arith("decr", "n", 100),
        arith("decr", "n2", 1, 7, 0), arith("incr", "n3", 1, 0, 0xffffffff),
        arith("decr", "n3", 1, 0, 0xffffffff), arith("incrq", "n", 3), arith("decrq", "n", 1),
        pack("get", "n"), store("set", "w", "18446744073709551615"), arith("incr", "w", 2),
        store("set", "nn", "abc"), arith("incr", "nn", 1), arith("incr", "n", 1, cas=424242),
        store("set", "e", ""), arith("incr", "e", 1), arith("incrq", "nope", 1, 0, 0xffffffff),
        arith("incr", "sp", 1, 5, 100), pack("getk", "sp"),
    ], "marker"))
    s.append(("append/prepend", [
        store("set", "ap", "mid", flags=9), pack("append", "ap", value="-end"),
        pack("prepend", "ap", value="start-"), pack("appendq", "ap", value="!"),
        pack("prependq", "ap", value="^"), pack("get", "ap"),
        pack("append", "missing", value="x"), pack("prependq", "missing", value="x"),
        pack("append", "ap", value="z", cas=31337),
    ], "marker"))
    s.append(("touch/gat", [
        store("set", "t", "tv", flags=3), touch("touch", "t", 100), touch("gat", "t", 100),
        touch("gatk", "t", 0), touch("gatq", "t", 0), touch("gatkq", "t", 0),
        touch("touch", "tn", 1), touch("gat", "tn", 1), touch("gatk", "tn", 1),
        touch("gatq", "tn", 1), touch("gatkq", "tn", 1),
    ], "marker"))
    s.append(("flush", [
        store("set", "fl", "x"), pack("flush"), pack("get", "fl"), store("set", "fl", "y"),
        pack("flushq"), pack("get", "fl"), pack("flush", extras=struct.pack(">I", 0)),
        store("set", "fl2", "z"), pack("flush", extras=struct.pack(">I", 1000)),
        pack("get", "fl2"),
    ], "marker"))
    s.append(("noop/version/opaque", [
        pack("noop", opaque=1), pack("version", opaque=0xabcdef01),
        pack("get", "nope", opaque=0x01020304),
    ], "marker"))
    s.append(("stats", [
        pack("stat"), pack("stat", "items"), pack("stat", "slabs"), pack("stat", "settings"),
        pack("stat", "bogus"), pack("stat", "conns"), pack("stat", "detail on"),
        pack("stat", "detail off"), pack("stat", "detail"), pack("stat", "detail xx"),
        pack("stat", "reset"), pack("stat", "sizes"),
    ], "marker"))
    s.append(("sasl without -S", [
        pack("sasl_list"), pack("sasl_auth", "PLAIN", value=b"\0u\0p"),
        pack("sasl_step", "PLAIN", value=b"abc"),
    ], "marker"))
    # libmemcached's multi-get: getkq per key then a noop; long quiet pipelines cross the
    # per-event request budget (-R) and arrive over several reads
    s.append(("long quiet pipeline", [store("setq", "p%d" % i, "v%d" % i, flags=i)
                                      for i in range(300)]
             + [pack("getkq", "p%d" % i) for i in range(0, 400, 3)]
             + [pack("getq", "p%d" % i) for i in range(250, 320)]
             + [arith("incrq", "p%d" % i, 1) for i in range(5)]
             + [pack("deleteq", "p%d" % i) for i in range(0, 300, 7)]
             + [pack("getk", "p%d" % i) for i in range(0, 30)], "marker"))
    s.append(("too large", [
        store("set", "tl", "small"), store("set", "tl", b"x" * (1024 * 1024 + 10)),
        pack("get", "tl"), store("add", "tl2", b"y" * (1024 * 1024 + 10)),
        store("setq", "tl3", b"z" * (2 * 1024 * 1024)),
    ], "marker"))
    s.append(("quit", [store("set", "q", "x"), pack("quit")], "close"))
    s.append(("quitq", [store("set", "q", "x"), pack("quitq")], "close"))
    s.append(("bad magic", [pack("get", "a", magic=0x81)], "close"))
    s.append(("text after binary", [pack("noop"), b"get a\r\n" + b" " * 17 + b"\r\n"], "close"))
    s.append(("keylen > bodylen", [pack("get", "abc", bodylen=2)], "close"))
    s.append(("extlen+keylen > bodylen", [pack("set", "k", b"12345678", bodylen=5)], "close"))
    s.append(("get with extras", [pack("get", "k", extras=b"\0\0\0\0")], "close"))
    s.append(("get without key", [pack("get")], "close"))
    s.append(("key too long", [pack("get", "k" * 251)], "close"))
    s.append(("set with 4 extras", [pack("set", "k", b"\0\0\0\0", "v")], "close"))
    s.append(("set without key", [pack("set", "", b"\0" * 8, "v")], "close"))
    s.append(("incr wrong extras", [pack("incr", "k", b"\0" * 8)], "close"))
    s.append(("incr with value", [pack("incr", "k", b"\0" * 20, "v")], "close"))
    s.append(("delete with extras", [pack("delete", "k", b"\0\0\0\0")], "close"))
    s.append(("version with body", [pack("version", "k")], "close"))
    s.append(("noop with key", [pack("noop", "k")], "close"))
    s.append(("quit with key", [pack("quit", "k")], "close"))
    s.append(("flush with key", [pack("flush", "k")], "close"))
    s.append(("flush extlen 8", [pack("flush", extras=b"\0" * 8)], "close"))
    s.append(("stat with extras", [pack("stat", extras=b"\0\0\0\0")], "close"))
    s.append(("touch without extras", [pack("touch", "k")], "close"))
    s.append(("append with extras", [pack("append", "k", b"\0" * 8, "v")], "close"))
    s.append(("sasl list with body", [pack("sasl_list", "x")], "close"))
    s.append(("sasl auth without key", [pack("sasl_auth", value="x")], "close"))
    # Unknown opcodes: memcached swallows bodylen bytes after extras+key, so the following
    # packet is partly eaten; padding makes the stream resynchronise on a known boundary.
    s.append(("unknown opcode", [pack(0x55, "abc", value="xyz"), b"\0" * 6,
                                 pack("get", "nope")], "close"))
    s.append(("unknown opcode answered", [pack(0x55, "abc", value="xyz"), b"\0" * 3,
                                          pack("get", "nope")], "close"))
    s.append(("bad magic after a pipeline", [store("set", "bm", "x"), pack("get", "bm"),
                                             pack("noop", magic=0x00)], "close"))
    s.append(("verbosity", [pack(0x1b, extras=b"\0\0\0\1"), b"\0" * 4, pack("noop")], "close"))
    s.append(("unknown opcode no body", [pack(0x40), pack(0xff), pack("noop")], "close"))
    s.append(("split header", [pack("noop")[:10]], "close"))
    return s


def run(port, scen, norm):
    out = []
    for name, pkts, mode in scen:
        data = b"".join(pkts)
        with BinConn(port) as c:
            if mode == "marker":
                got, closed = c.call(data)
            else:
                c.send(data)
                got, closed = read_until_quiet(c)
        out.append((name, [normalise(norm, p) for p in collapse_stats(got)], closed))
    return out


def read_until_quiet(c, quiet=0.5, limit=5.0):
    """Responses until the server closes (closed=True) or stays quiet for `quiet` s."""
    c.sock.settimeout(quiet)
    deadline = time.time() + limit
    closed = False
    while time.time() < deadline:
        try:
            chunk = c.sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            closed = True
            break
        c.buf += chunk
    got, rest = parse(c.buf)
    return got + ([{"leftover": rest}] if rest else []), closed


def collapse_stats(pkts):
    """A run of STAT packets becomes one marker (contents are compared elsewhere)."""
    out = []
    for p in pkts:
        if p.get("op") == OP["stat"] and p["status"] == 0 and p["key"]:
            if not out or out[-1] != "<stats>":
                out.append("<stats>")
            continue
        out.append(p)
    return out


def normalise(norm, p):
    if isinstance(p, str) or "leftover" in p:
        return p
    return norm.packet(p)


def main():
    scen = scenarios()
    res = {}
    for kind, binary in (("cached", None), ("memcached", MEMCACHED)):
        args = ["-t", "2"]
        with Server(binary, args=args, kind=kind if binary else None) as srv:
            norm = Normaliser()
            res[kind] = run(srv.port, scen, norm)
            # CAS flow: a set's CAS used for cas-set, add and replace
            res[kind].append(("cas flow", cas_flow(srv.port, norm), False))
            res[kind].append(("value after its header", split_value(srv.port, norm), False))
            ck.check(srv.proc.poll() is None, "%s still running" % kind)
    # -C: items have no CAS, so a store's CAS is ignored; incr/delete still compare it
    cas_off = [("cas ignored under -C", [
        store("set", "k", "v1"), store("set", "k", "v2", cas=5), store("add", "k", "v3", cas=5),
        store("replace", "k", "v4", cas=5), store("set", "nx", "v", cas=5),
        pack("append", "k", value="A", cas=9), pack("get", "k"), arith("incr", "n", 1, 1, 0),
        arith("incr", "n", 1, cas=3), pack("delete", "k", cas=7), pack("delete", "k")],
        "marker")]
    for kind, binary in (("cached", None), ("memcached", MEMCACHED)):
        with Server(binary, args=["-C"], kind=kind if binary else None) as srv:
            res[kind] += run(srv.port, cas_off, Normaliser())
    for (name, got, closed), (_, want, wclosed) in zip(res["cached"], res["memcached"]):
        ck.eq(got, want, "scenario %r responses" % name)
        ck.eq(closed, wclosed, "scenario %r closed" % name)
    ck.done()


def split_value(port, norm):
    """A large value sent after a pause, with nothing behind it: the server reads it straight
    into its item, and must answer as soon as its last byte is in (a binary value has no
    trailing \\r\\n to wake the parser)."""
    out = []
    for n in (100000, 700000):
        with BinConn(port) as c:
            pkt = store("set", "split", b"s" * n)
            c.send(pkt[:40])
            time.sleep(0.05)
            c.send(pkt[40:])
            c.sock.settimeout(3)
            try:
                got = c.recv_packets(1)
            except socket.timeout:
                got = []
            out += [normalise(norm, p) for p in got] or ["no answer to a %d-byte value" % n]
    return out


def cas_flow(port, norm):
    out = []
    with BinConn(port) as c:
        got, _ = c.call(store("set", "cf", "v1"))
        cas = got[0]["cas"]
        seq = [store("set", "cf", "v2", cas=cas + 1000), store("set", "cf", "v2", cas=cas),
               store("set", "cf", "v3", cas=cas), store("add", "cf", "v4", cas=cas),
               store("replace", "cf", "v5", cas=cas), store("set", "cfx", "v", cas=cas),
               store("setq", "cf", "v6", cas=cas), pack("get", "cf")]
        for pkt in seq:
            got, _ = c.call(pkt)
            out += [normalise(norm, p) for p in got]
        got, _ = c.call(pack("get", "cf"))
        cur = got[0]["cas"]
        for pkt in [pack("append", "cf", value="A", cas=cur), pack("append", "cf", value="B", cas=cur),
                    pack("get", "cf")]:
            got, _ = c.call(pkt)
            out += [normalise(norm, p) for p in got]
        got, _ = c.call(pack("get", "cf"))
        cur = got[0]["cas"]
        for pkt in [arith("incr", "cf", 1, cas=cur), pack("delete", "cf", cas=cur + 5),
                    pack("delete", "cf", cas=cur), pack("get", "cf")]:
            got, _ = c.call(pkt)
            out += [normalise(norm, p) for p in got]
    return out


if __name__ == "__main__":
    main()
