#!/usr/bin/python3
"""Differential test of the meta commands: cached ($CACHED) against Debian's memcached 1.6.18.

Part A replays scripted cases (stale-while-revalidate, vivify on miss, recache, quiet
pipelines ending in mn, opaque tokens, base64 keys, meta mixed with classic commands on one
key, every error). Part B runs seeded random sequences of meta and classic commands over a
few keys, one round trip per command. Part C compares the deterministic stats counters.

Normalised before comparing, and nothing else:
  - CAS numbers (c<n> flags, cas= in me, gets' VALUE lines): each distinct value becomes its
    order of first appearance on that connection, so the equality structure must match;
  - TTL-like numbers t<n>, l<n>, exp=, la= may differ by up to 2 (clock phase);
  - me's size= and cls= (memcached's item layout, not ours);
  - VERSION lines (the sentinel). Values space-padded by an in-place incr are compared as
    they are: cached pads exactly as memcached does.

Usage: test_diff_meta.py [-v] [-k SUBSTRING] [--seeds N] [--commands N]
Prints "diff_meta: N passed, M failed"; exits non-zero on any mismatch.
"""
import argparse
import base64
import os
import random
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402

SERVER_ARGS = ["-m", "64", "-I", "1m", "-t", "2"]
SENTINEL = b"version\r\n"
QUIET = 3.0 if harness.ASAN else 1.0
TOLERANT = re.compile(rb"^([tl])(-?\d+)$")
TOLERANT_EQ = re.compile(rb"^(exp|la)=(-?\d+)$")
DETERMINISTIC_STATS = """cmd_get cmd_set cmd_touch cmd_meta get_hits get_misses delete_misses
delete_hits incr_misses incr_hits decr_misses decr_hits cas_misses cas_hits cas_badval
touch_hits touch_misses store_too_large""".split()


class Link:
    def __init__(self, server):
        self.sock = socket.create_connection((server.host, server.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.cas = []  # raw CAS values in order of appearance (for {cas} substitution)

    def close(self):
        self.sock.close()

    def roundtrip(self, data):
        """Sends data + the version sentinel; returns the reply without the VERSION line."""
        self.sock.sendall(data + SENTINEL)
        buf = b""
        self.sock.settimeout(QUIET)
        try:
            while True:
                if buf.endswith(b"\r\n"):
                    tail = buf[:-2].rsplit(b"\r\n", 1)[-1]
                    if tail.startswith(b"VERSION "):
                        return buf[:len(buf) - len(tail) - 2]
                try:
                    chunk = self.sock.recv(1 << 20)
                except socket.timeout:
                    return buf + b"<timeout>"
                if not chunk:
                    return buf + b"<closed>"
                buf += chunk
        finally:
            self.sock.settimeout(10)


def parse(reply):
    """Splits a reply into lines and value blocks: [('L', [tokens]) | ('D', bytes)]."""
    out = []
    i = 0
    while i < len(reply):
        j = reply.find(b"\r\n", i)
        if j < 0:
            out.append(("L", reply[i:].split(b" ")))
            break
        line = reply[i:j]
        toks = line.split(b" ")
        i = j + 2
        n = None
        if toks[0] == b"VA" and len(toks) > 1 and toks[1].isdigit():
            n = int(toks[1])
        elif toks[0] == b"VALUE" and len(toks) >= 4 and toks[3].isdigit():
            n = int(toks[3])
        if n is not None and reply[i + n:i + n + 2] == b"\r\n":
            data = reply[i:i + n]
            out.append(("L", toks))
            out.append(("D", data))
            i += n + 2
        else:
            out.append(("L", toks))
    return out


def normalise(reply, casmap):
    """parse() with CAS numbers mapped and me's size=/cls= blanked."""
    items = parse(reply)

    def cas_id(v):
        if v not in casmap:
            casmap[v] = len(casmap) + 1
        return b"#%d" % casmap[v]
    for kind, val in items:
        if kind != "L" or not val:
            continue
        head = val[0]
        if head in (b"VA", b"HD", b"NS", b"EX", b"NF", b"EN"):
            for k in range(1, len(val)):
                if val[k][:1] == b"c" and val[k][1:].isdigit():
                    val[k] = b"c" + cas_id(val[k][1:])
        elif head == b"ME":
            for k in range(2, len(val)):
                if val[k].startswith(b"cas="):
                    val[k] = b"cas=" + cas_id(val[k][4:])
                elif val[k].startswith(b"size=") or val[k].startswith(b"cls="):
                    val[k] = val[k].split(b"=")[0] + b"=*"
        elif head == b"VALUE" and len(val) == 5:
            val[4] = cas_id(val[4])
    return items


def same_token(a, b):
    if a == b:
        return True
    for rx in (TOLERANT, TOLERANT_EQ):
        ma, mb = rx.match(a), rx.match(b)
        if ma and mb and ma.group(1) == mb.group(1):
            return abs(int(ma.group(2)) - int(mb.group(2))) <= 2
    return False


def same(want, got):
    if len(want) != len(got):
        return False
    for (kw, vw), (kg, vg) in zip(want, got):
        if kw != kg:
            return False
        if kw == "D":
            if vw != vg:
                return False
        elif len(vw) != len(vg) or not all(same_token(a, b) for a, b in zip(vw, vg)):
            return False
    return True


def note_cas(link, reply):
    for m in re.finditer(rb"(?:^|\n)(?:VA \d+|HD|NS|EX|NF)[^\r\n]* c(\d+)", reply):
        link.cas.append(m.group(1))
    for m in re.finditer(rb"VALUE \S+ \d+ \d+ (\d+)\r\n", reply):
        link.cas.append(m.group(1))


def b64(s):
    return base64.b64encode(s).replace(b"=", b"=")


def substitute(data, prefix, link):
    data = re.sub(rb"\{b:([^}]*)\}", lambda m: base64.b64encode(prefix + m.group(1)), data)
    data = data.replace(b"{p}", prefix)
    if b"{cas}" in data:
        data = data.replace(b"{cas}", link.cas[-1] if link.cas else b"424242")
    if b"{cas-1}" in data:
        v = int(link.cas[-1]) - 1 if link.cas else 1
        data = data.replace(b"{cas-1}", b"%d" % v)
    return data


# ------------------------------------------------------------------ part A: scripted cases
CASES = []


def case(name, *steps):
    CASES.append((name, steps))


def sleep(secs):
    return ("sleep", secs)


K = b"{p}k"
# basics
case("mn", b"mn\r\n", b"mn foo bar\r\n")
case("set-get", b"ms {p}k 3\r\nbar\r\n", b"mg {p}k v\r\n", b"mg {p}k\r\n",
     b"mg {p}k s v f t c k O123 q\r\n")
case("miss", b"mg {p}missing v\r\n", b"mg {p}missing v q\r\nmn\r\n",
     b"mg {p}missing k O9 q\r\nmg {p}missing k O9\r\nmn\r\n")
case("hit-flags", b"ms {p}k 5 F77 T100\r\nhello\r\n", b"mg {p}k f s t v\r\n",
     b"mg {p}k h l t\r\n", b"mg {p}k u\r\n", b"mg {p}k k c\r\n")
case("fetched-u", b"ms {p}k 1\r\nx\r\n", b"mg {p}k u h\r\n", b"mg {p}k h\r\n", b"mg {p}k h\r\n",
     b"me {p}k\r\n")
case("me", b"me {p}k\r\n", b"ms {p}k 2 T50\r\nhi\r\n", b"me {p}k\r\n", b"mg {p}k\r\n",
     b"me {p}k\r\n", b"me\r\n", b"me {p}k b\r\n", b"me {p}k x y\r\n")
case("ttl-update", b"ms {p}k 1\r\nx\r\n", b"mg {p}k T30 t\r\n", b"mg {p}k t T60 t\r\n",
     b"mg {p}k t\r\n", b"mg {p}k T0 t\r\n", b"mg {p}missing T30 t\r\n")
case("ttl-expire", b"ms {p}k 1 T1\r\nx\r\n", b"mg {p}k v t\r\n", sleep(2.2), b"mg {p}k v\r\n",
     b"ms {p}j 1\r\nx\r\nmg {p}j T-1\r\nmg {p}j v\r\n")
# stale-while-revalidate
case("swr-md-I", b"ms {p}k 3 T100\r\nold\r\n", b"md {p}k I T30\r\n", b"mg {p}k v c t\r\n",
     b"mg {p}k v c t\r\n", b"mg {p}k v\r\n", b"ms {p}k 3\r\nnew\r\n", b"mg {p}k v c t\r\n")
case("swr-md-I-q", b"ms {p}k 1\r\nx\r\n", b"md {p}k I q\r\nmn\r\n", b"mg {p}k\r\n",
     b"md {p}k I\r\n", b"mg {p}k c\r\n", b"mg {p}k c\r\n")
case("swr-ms-I-older-cas", b"ms {p}k 1 c\r\nx\r\n", b"md {p}k I\r\n", b"mg {p}k c\r\n",
     b"ms {p}k 1 I C{cas-1} c\r\ny\r\n", b"mg {p}k v c\r\n",
     b"ms {p}k 1 I C1\r\nz\r\n", b"mg {p}k v\r\n")
case("swr-ms-I-match", b"ms {p}k 1 T100\r\nx\r\n", b"md {p}k I T30\r\n", b"mg {p}k c t\r\n",
     b"ms {p}k 1 I C{cas} T200\r\ny\r\n", b"mg {p}k v t\r\n")
case("swr-ms-I-newer", b"ms {p}k 1 c\r\nx\r\n", b"ms {p}k 1 I C99999999\r\ny\r\n",
     b"mg {p}k v\r\n")
# vivify / recache
case("vivify", b"mg {p}k N30 v t c s f\r\n", b"mg {p}k N30 v t\r\n", b"mg {p}k N30 t\r\n",
     b"ms {p}k 4\r\ndone\r\n", b"mg {p}k N30 v t\r\n")
case("vivify-order", b"mg {p}k t N30 t\r\n", b"mg {p}j s N10 T20 t\r\n")
case("vivify-q", b"mg {p}k N30 q\r\nmn\r\n", b"mg {p}k N30 q v\r\nmn\r\n")
case("recache", b"ms {p}k 1 T10\r\nx\r\n", b"mg {p}k R30 v t\r\n", b"mg {p}k R30 v\r\n",
     b"mg {p}k R5\r\n", b"ms {p}j 1 T100\r\nx\r\n", b"mg {p}j R30\r\n",
     b"ms {p}i 1\r\nx\r\n", b"mg {p}i R30\r\n")
case("recache-T-order", b"ms {p}k 1 T100\r\nx\r\n", b"mg {p}k T10 R30 t\r\n",
     b"ms {p}j 1 T100\r\nx\r\n", b"mg {p}j R30 T10 t\r\n", b"mg {p}j R30\r\n")
# opaque tokens
case("opaque", b"ms {p}k 1 O1 k\r\nx\r\n", b"mg {p}k Oabc k v\r\n",
     b"mg {p}k O" + b"x" * 31 + b"\r\n", b"mg {p}k O" + b"x" * 32 + b"\r\n",
     b"mg {p}missing O" + b"x" * 32 + b"\r\n", b"md {p}k O" + b"x" * 32 + b"\r\n",
     b"mg {p}k v\r\n", b"ms {p}k 1 O" + b"x" * 32 + b"\r\ny\r\n", b"mg {p}k v\r\n",
     b"ma {p}n N0 O" + b"x" * 32 + b"\r\n", b"mg {p}n v\r\n",
     b"mg {p}k T30 O" + b"x" * 32 + b"\r\n", b"mg {p}k t\r\n")
case("opaque-miss", b"md {p}m O1 k\r\n", b"ma {p}m O2 k\r\n", b"mg {p}m O3 k\r\n",
     b"ms {p}m 1 MR O4 k c\r\nx\r\n")
# quiet pipelines
case("quiet-pipeline",
     b"ms {p}a 1 q\r\n1\r\nms {p}b 1 q\r\n2\r\nmg {p}a v q\r\nmg {p}x v q\r\nmg {p}b v q k\r\n"
     b"md {p}a q\r\nmd {p}a q\r\nma {p}b q\r\nma {p}b q v\r\nma {p}z q\r\nma {p}b q MD D9\r\n"
     b"ms {p}a 1 ME q\r\nx\r\nms {p}a 1 ME q\r\nx\r\nms {p}b 1 C1 q\r\nx\r\nmn\r\n")
case("quiet-errors", b"mg {p}a q zz\r\nms {p}a 2 q\r\nxyz\r\nmn\r\n", b"ms {p}a 1 q zz\r\nx\r\nmn\r\n",
     b"ms {p}a 1 q\r\nx\r\nma {p}a q\r\nmn\r\n")
# base64 keys
case("base64", b"ms {b:k} 3 b\r\nbar\r\n", b"mg {b:k} b k v\r\n", b"mg {p}k k v\r\n",
     b"me {b:k} b\r\n", b"me {p}k\r\n", b"mg {b:missing} b k\r\n", b"mg {b:missing} b k q\r\nmn\r\n",
     b"md {b:k} b k q\r\nmn\r\n", b"mg {p}k v\r\n")
case("base64-bad", b"mg abc b\r\n", b"mg a=== b\r\n", b"ms abc 1 b\r\nx\r\n", b"md abc b\r\n",
     b"ma abc b\r\n", b"me abc b\r\n", b"mg Zm9v!! b\r\n", b"mg ==== b\r\n")
case("base64-ma", b"ma {b:n} b N0 J5 v k\r\n", b"ma {b:n} b v k\r\n", b"mg {p}n v\r\n")
# ms modes
case("ms-modes", b"ms {p}k 1 ME\r\na\r\n", b"ms {p}k 1 ME\r\nb\r\n", b"ms {p}k 1 MA\r\nc\r\n",
     b"ms {p}k 1 MP\r\nd\r\n", b"ms {p}k 1 MR\r\ne\r\n", b"ms {p}k 1 MS\r\nf\r\n",
     b"mg {p}k v\r\n", b"ms {p}x 1 MA\r\nc\r\n", b"ms {p}x 1 MP\r\nc\r\n",
     b"ms {p}x 1 MR\r\nc\r\n", b"ms {p}x 1 MA N30\r\nc\r\n", b"mg {p}x v\r\n",
     b"ms {p}k 1 Mz\r\nx\r\n", b"ms {p}k 1 MSS\r\nx\r\n", b"ms {p}k 1 M\r\nx\r\n")
case("ms-cas", b"ms {p}k 1 c\r\na\r\n", b"ms {p}k 1 C{cas} c\r\nb\r\n", b"ms {p}k 1 C{cas-1}\r\nc\r\n",
     b"ms {p}k 1 C0\r\nd\r\n", b"mg {p}k c v\r\n", b"ms {p}k 1 MR C{cas} c\r\ne\r\n",
     b"ms {p}k 1 MA C{cas} c\r\nf\r\n", b"ms {p}k 1 MA C5\r\ng\r\n", b"ms {p}k 1 MA C0\r\nh\r\n",
     b"ms {p}k 1 ME C5\r\ni\r\n", b"mg {p}k v\r\n", b"ms {p}none 1 C5 c k\r\nz\r\n",
     b"ms {p}none 1 MA C5\r\nz\r\n")
case("ms-flags-ttl", b"ms {p}k 2 F4294967295 T100 k c O5 s v t f\r\nab\r\n",
     b"mg {p}k f t v\r\n", b"ms {p}k 1 F4294967296\r\nx\r\n", b"mg {p}k f\r\n",
     b"ms {p}k 1 T-1\r\nx\r\n", b"mg {p}k v\r\n", b"ms {p}k 0\r\n\r\n", b"mg {p}k v s\r\n")
case("ms-errors", b"ms\r\n", b"ms {p}k\r\n", b"ms {p}k abc\r\n", b"ms {p}k -1\r\n",
     b"ms {p}k 1 zz\r\nx\r\n", b"ms {p}k 1 q\r\nxy\r\n", b"ms {p}k 1\r\nxy\r\n",
     b"ms {p}k 1 k k\r\nx\r\n", b"ms {p}k 1 E5\r\nx\r\n", b"ms {p}k 1 Fx\r\nx\r\n",
     b"ms {p}k 1 Fx Nx\r\nx\r\n", b"ms {p}k 1 Cx\r\nx\r\n", b"ms {p}k 1 Tx\r\nx\r\n",
     b"ms {p}k 1 " + b" ".join(b"%c" % c for c in b"abcdefghijklmnopq") + b"\r\nx\r\n",
     b"ms " + b"k" * 251 + b" 1\r\nx\r\n", b"ms {p}k 2000000\r\n" + b"z" * 2000000 + b"\r\n",
     b"mg {p}k v\r\n")
case("ms-too-large-deletes", b"ms {p}k 1\r\nx\r\n",
     b"ms {p}k 1048577 MA\r\n" + b"z" * 1048577 + b"\r\n", b"mg {p}k v\r\n")
case("ms-bad-chunk-keeps", b"ms {p}k 1\r\nx\r\n", b"ms {p}k 1\r\nyz\r\n", b"mg {p}k v\r\n")
# md
case("md", b"ms {p}k 1\r\nx\r\n", b"md {p}k\r\n", b"md {p}k\r\n", b"md {p}k q\r\nmn\r\n",
     b"ms {p}k 1 c\r\nx\r\n", b"md {p}k C1 k O2\r\n", b"md {p}k C{cas} k O2\r\n",
     b"ms {p}k 1\r\nx\r\n", b"md {p}k C0\r\n", b"md {p}k q k O1\r\nmn\r\n", b"mg {p}k\r\n")
case("md-errors", b"md\r\n", b"md {p}k zz\r\n", b"md {p}k q q\r\n", b"md {p}k x\r\n",
     b"md {p}k E5\r\n", b"md {p}k Cx\r\n", b"md {p}k Tx\r\n",
     b"md " + b"k" * 251 + b"\r\n", b"md {p}k " + b" ".join(b"%c" % c for c in b"abcdefghijklmnopqr") + b"\r\n")
case("md-I-ttl", b"ms {p}k 1\r\nx\r\n", b"md {p}k I T20 k\r\n", b"mg {p}k t c\r\n",
     b"md {p}k I\r\n", b"mg {p}k t\r\n", b"md {p}k\r\n", b"mg {p}k\r\n")
# ma
case("ma", b"ma {p}n\r\n", b"ma {p}n N0 J10 v\r\n", b"ma {p}n v\r\n", b"ma {p}n v D5 t c\r\n",
     b"ma {p}n MD D3 v\r\n", b"ma {p}n M- v\r\n", b"ma {p}n M+ v\r\n", b"ma {p}n MI v\r\n",
     b"ma {p}n MD D1000 v\r\n", b"mg {p}n v\r\n", b"ma {p}n D18446744073709551615 v\r\n",
     b"ma {p}n D2 v\r\n")
case("ma-cas", b"ma {p}n N0 J1 c\r\n", b"ma {p}n C{cas} c v\r\n", b"ma {p}n C1 c v k O1\r\n",
     b"ma {p}n C0 v\r\n", b"ma {p}missing C5 k\r\n")
case("ma-ttl", b"ma {p}n N100 J1 t v\r\n", b"ma {p}n t T50 t v\r\n", b"mg {p}n t v\r\n",
     b"ma {p}m N0 t\r\n", b"ma {p}m t\r\n", b"ma {p}o t N40 J7 v\r\n")
case("ma-q", b"ma {p}n q\r\nmn\r\n", b"ma {p}n N0 J5 q v\r\nmn\r\n", b"ma {p}n q v\r\nmn\r\n",
     b"ma {p}n q\r\nmn\r\n", b"mg {p}n v\r\n")
case("ma-errors", b"ma\r\n", b"ma {p}n zz\r\n", b"ma {p}n q q\r\n", b"ma {p}n Dx\r\n",
     b"ma {p}n Jx\r\n", b"ma {p}n MX\r\n", b"ma {p}n MXY\r\n", b"ma {p}n E1\r\n",
     b"ms {p}s 3\r\nabc\r\n", b"ma {p}s\r\n", b"ma {p}s q\r\n", b"ms {p}e 0\r\n\r\n",
     b"ma {p}e\r\n", b"ms {p}g 2\r\n-5\r\n", b"ma {p}g\r\n", b"ma " + b"k" * 251 + b"\r\n")
case("ma-padding", b"ms {p}n 3\r\n100\r\n", b"ma {p}n MD D95 v\r\n", b"mg {p}n v s\r\n",
     b"ma {p}n D5 v\r\n", b"mg {p}n v\r\n")
# mg errors
case("mg-errors", b"mg\r\n", b"mg {p}k zz\r\n", b"mg {p}k v v\r\n", b"mg {p}k \xc3\xa9\r\n",
     b"mg {p}k v zz v\r\n", b"mg {p}k Nabc zz\r\n", b"mg {p}k Nabc v v\r\n", b"mg {p}k T\r\n",
     b"mg {p}k R\r\n", b"mg {p}k F C M J D I P L\r\n", b"mg {p}k Fx\r\n", b"mg {p}k MXY\r\n",
     b"mg {p}k E5\r\n", b"mg {p}k x\r\n",
     b"mg {p}k " + b" ".join(b"%d" % i for i in range(18)) + b"\r\n",
     b"mg " + b"k" * 251 + b" v\r\n", b"mg " + b"k" * 250 + b" v\r\n", b"mx {p}k\r\n",
     b"MG {p}k\r\n")
# meta and classic on one key
case("mixed", b"set {p}k 5 0 3\r\nabc\r\n", b"mg {p}k v f c\r\n", b"gets {p}k\r\n",
     b"ms {p}k 3 F9\r\nxyz\r\n", b"get {p}k\r\n", b"append {p}k 0 0 1\r\n!\r\n",
     b"mg {p}k v s c\r\n", b"md {p}k I\r\n", b"get {p}k\r\n", b"mg {p}k v\r\n",
     b"delete {p}k\r\n", b"mg {p}k v\r\n", b"set {p}n 0 0 2\r\n10\r\n", b"ma {p}n v\r\n",
     b"incr {p}n 5\r\n", b"ma {p}n MD v c\r\n", b"gets {p}n\r\n", b"touch {p}n 100\r\n",
     b"mg {p}n t\r\n", b"cas {p}n 0 0 1 {cas}\r\n7\r\n", b"mg {p}n v\r\n")
case("mixed-flush", b"ms {p}k 1\r\nx\r\n", b"flush_all\r\n", b"mg {p}k v\r\n", b"me {p}k\r\n",
     b"mg {p}k N30 v\r\n")
case("large-value", b"ms {p}k 100000\r\n" + b"v" * 100000 + b"\r\n", b"mg {p}k s v\r\n",
     b"ms {p}k 5 MA\r\nxxxxx\r\n", b"mg {p}k s\r\n")
case("split-value", b"ms {p}k 10\r\n01234", b"56789\r\nmg {p}k v\r\n")
# pipelined mg lines go through the lookahead (protocol/proto.c): one write, replies in order
case("mg-pipelined", b"ms {p}a 1\r\nA\r\nms {p}b 2 F5\r\nBB\r\nms {b:c} 1 b\r\nC\r\n",
     b"mg {p}a v\r\nmg {p}b v f\r\nmg {p}x v\r\nmg {b:c} b v k\r\nget {p}a\r\nmg {p}a\r\n"
     b"mg {p}b s v q\r\nmg {p}x v q\r\nmg {p}a\nmg {p}a k\r\rv\r\nmg {p}a Oop v\r\nmn\r\n",
     b"mg {p}y N30 v\r\nmg {p}y v c\r\nmg {p}y\r\nmg\r\nmg  {p}a v\r\nmg {p}a\x00 v\r\n",
     b"mg " + b"k" * 251 + b" v\r\nmg {p}a v\r\nmg {p}\ta v\r\nmg {p}b T0 v\r\nmg {p}b v\r\n")


def run_steps(server, steps, prefix):
    link = Link(server)
    out = []
    try:
        for st in steps:
            if isinstance(st, tuple):
                time.sleep(st[1])
                continue
            data = substitute(st, prefix, link)
            if data.endswith(b"\r\n") or data.endswith(b"\n"):
                r = link.roundtrip(data)
            else:  # a partial command: send it, let it sit, continue
                link.sock.sendall(data)
                time.sleep(0.05)
                r = b""
            note_cas(link, r)
            out.append(r)
    finally:
        link.close()
    return out


def compare(name, want_raw, got_raw, tally, verbose, inputs):
    mw, mg = {}, {}
    want = [normalise(r, mw) for r in want_raw]
    got = [normalise(r, mg) for r in got_raw]
    ok = len(want) == len(got) and all(same(w, g) for w, g in zip(want, got))
    if ok:
        tally[0] += 1
        if verbose:
            print("ok   %s" % name)
        return
    tally[1] += 1
    print("MISMATCH %s" % name)
    for k, (w, g) in enumerate(zip(want_raw, got_raw)):
        if not same(normalise(w, {}), normalise(g, {})) or w != g:
            tag = "" if same(want[k], got[k]) else "  <--"
            print("  step %d: %r%s\n    memcached: %r\n    cached:    %r"
                  % (k + 1, inputs[k][:200], tag, w[:300], g[:300]))


# ------------------------------------------------------------------ part B: random sequences
def random_command(rng, keys):
    k = rng.choice(keys)
    v = rng.choice([b"1", b"22", b"abc", b"0", b"18446744073709551615", b"", b"v" * 40])
    r = rng.random()
    if r < 0.28:
        flags = rng.sample([b"v", b"s", b"f", b"t", b"c", b"k", b"q", b"O7", b"N30",
                            b"T60", b"R30", b"u"], rng.randint(0, 5))
        if b"q" in flags:
            return b"mg %s %s\r\nmn\r\n" % (k, b" ".join(flags))
        return b"mg %s %s\r\n" % (k, b" ".join(flags))
    if r < 0.48:
        flags = rng.sample([b"c", b"k", b"q", b"O1", b"F3", b"T100", b"I",
                            rng.choice([b"ME", b"MA", b"MP", b"MR", b"MS"]),
                            rng.choice([b"C{cas}", b"C1", b"C{cas-1}"])], rng.randint(0, 4))
        tail = b"\r\nmn\r\n" if b"q" in flags else b"\r\n"
        return b"ms %s %d %s\r\n%s%s" % (k, len(v), b" ".join(flags), v, tail)
    if r < 0.60:
        flags = rng.sample([b"q", b"k", b"O2", b"I", b"T30", rng.choice([b"C{cas}", b"C7"])],
                           rng.randint(0, 3))
        tail = b"mn\r\n" if b"q" in flags else b""
        return b"md %s %s\r\n%s" % (k, b" ".join(flags), tail)
    if r < 0.72:
        flags = rng.sample([b"v", b"c", b"t", b"k", b"q", b"N0", b"J5", b"D3", b"MD",
                            rng.choice([b"C{cas}", b"C9"])], rng.randint(0, 4))
        tail = b"mn\r\n" if b"q" in flags else b""
        return b"ma %s %s\r\n%s" % (k, b" ".join(flags), tail)
    if r < 0.76:
        return b"me %s\r\n" % k
    # Classic incr/decr rewrite in place like ma (one do_item_arith), keeping the
    # fetched/stale/token bits, so they mix with the meta commands.
    classic = rng.choice([b"set", b"add", b"append", b"get", b"gets", b"delete", b"touch",
                          b"cas", b"incr", b"decr"])
    if classic in (b"set", b"add", b"append"):
        return b"%s %s 0 0 %d\r\n%s\r\n" % (classic, k, len(v), v)
    if classic == b"cas":
        return b"cas %s 0 0 %d {cas}\r\n%s\r\n" % (k, len(v), v)
    if classic in (b"get", b"gets"):
        return b"%s %s\r\n" % (classic, k)
    if classic in (b"incr", b"decr"):
        return b"%s %s %d\r\n" % (classic, k, rng.randint(0, 20))
    if classic == b"touch":
        return b"touch %s 100\r\n" % k
    return b"delete %s\r\n" % k


def run_random(oracle, subject, seed, ncmds, tally, verbose):
    rng = random.Random(seed)
    prefix = b"r%d_" % seed
    keys = [prefix + s for s in (b"a", b"b", b"c")]
    cmds = [random_command(rng, keys) for _ in range(ncmds)]
    lo, ls = Link(oracle), Link(subject)
    mw, mg = {}, {}
    try:
        for i, c in enumerate(cmds):
            w = lo.roundtrip(substitute(c, b"", lo))
            g = ls.roundtrip(substitute(c, b"", ls))
            note_cas(lo, w)
            note_cas(ls, g)
            if not same(normalise(w, mw), normalise(g, mg)):
                tally[1] += 1
                print("MISMATCH random seed %d command %d: %r\n  memcached: %r\n  cached:    %r"
                      % (seed, i, c[:200], w[:300], g[:300]))
                print("  history: %r" % [x[:80] for x in cmds[max(0, i - 8):i]])
                return
    finally:
        lo.close()
        ls.close()
    tally[0] += 1
    if verbose:
        print("ok   random seed %d (%d commands)" % (seed, ncmds))


def stats_of(server):
    with server.connect() as c:
        return c.stats()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-v", action="store_true")
    ap.add_argument("-k", default="")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--commands", type=int, default=150 if not harness.ASAN else 60)
    args = ap.parse_args()
    tally = [0, 0]
    t0 = time.time()
    with harness.Server(harness.MEMCACHED, SERVER_ARGS, kind="memcached") as oracle, \
            harness.Server(harness.CACHED, SERVER_ARGS) as subject:
        for idx, (name, steps) in enumerate(CASES):
            if args.k and args.k not in name:
                continue
            prefix = b"c%03d_" % idx
            want = run_steps(oracle, steps, prefix)
            got = run_steps(subject, steps, prefix)
            inputs = [s if isinstance(s, bytes) else b"<sleep>" for s in steps]
            compare("case " + name, want, got, tally, args.v, inputs)
        if not args.k:
            for seed in range(1, args.seeds + 1):
                run_random(oracle, subject, seed, args.commands, tally, args.v)
            so, ss = stats_of(oracle), stats_of(subject)
            bad = [(n, so.get(n), ss.get(n)) for n in DETERMINISTIC_STATS if so.get(n) != ss.get(n)]
            if bad:
                tally[1] += 1
                print("MISMATCH stats: %s" % ", ".join("%s memcached=%s cached=%s" % b for b in bad))
            else:
                tally[0] += 1
    print("diff_meta: %d passed, %d failed (%.1fs)" % (tally[0], tally[1], time.time() - t0))
    return 1 if tally[1] else 0


if __name__ == "__main__":
    sys.exit(main())
