"""Leftover differences from memcached 1.6.18, each checked byte for byte against Debian's
memcached on the same conversation (cached and memcached each on a free loopback port):
- stats sizes / sizes_enable / sizes_disable, with and without -o track_sizes and -C: the
  histogram uses memcached's item sizes, enabling uses up a CAS id, no END after a switch;
- flush_all uses up a CAS id (the next item's CAS is one higher);
- -o lru_crawler_sleep=N and `lru_crawler sleep N`: accepted, limits, stats settings, and the
  pass really pauses (a crawl at 1 s a batch is still running a second later; at 0 it ends);
- `stats` and `stats items` list exactly memcached's keys, in its order (memcached's stats.t
  counts them), by default, with -o no_lru_maintainer and with -o no_modern (which drop the
  LRU-maintainer and slab-reassign keys); cached's own counters are in `stats cached`.
"""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402
from harness import Checker, Server, MEMCACHED  # noqa: E402

ck = Checker("test_parity_leftovers")


def conversation(srv, chunks, text=True):
    """Sends each chunk and collects its reply: up to the MN of an `mn` sent after it (text),
    or until the server goes quiet (binary)."""
    out = []
    with srv.connect() as c:
        for chunk in chunks:
            if text:
                c.send(chunk + b"mn\r\n")
                out.append(c.read_until(b"MN\r\n")[:-4])
            else:
                c.send(chunk)
                out.append(c.read_available(0.3 if not harness.ASAN else 0.6))
    return out


def compare(args, chunks, what, text=True):
    with Server(args=args) as ca, Server(MEMCACHED, args=args, kind="memcached") as mc:
        got, want = conversation(ca, chunks, text), conversation(mc, chunks, text)
    for chunk, g, w in zip(chunks, got, want):
        ck.eq(g, w, "%s %s: %r" % (what, " ".join(args), chunk[:40]))


BIG = b"x" * 600000
SIZES = [b"stats sizes\r\n", b"set a 0 0 1\r\nx\r\n", b"gets a\r\n", b"stats sizes\r\n",
         b"stats sizes_enable\r\n", b"set b 5 0 1\r\nx\r\n", b"gets b\r\n", b"stats sizes\r\n",
         b"set n 0 0 2\r\n10\r\n", b"incr n 1\r\n", b"incr n 100\r\n", b"gets n\r\n",
         b"stats sizes\r\n", b"delete b\r\n", b"append n 0 0 3\r\nabc\r\n",
         b"stats sizes\r\n", b"stats sizes_enable\r\n", b"set c 0 0 1\r\nx\r\n", b"gets c\r\n",
         b"set big 0 0 600000\r\n" + BIG + b"\r\n", b"ms k 40 F9\r\n" + b"y" * 40 + b"\r\n",
         b"stats sizes\r\n", b"stats sizes_disable\r\n", b"set d 0 0 1\r\nx\r\n",
         b"gets d\r\n", b"stats sizes\r\n", b"stats sizes_enable extra\r\n",
         b"stats sizes\r\n", b"stats sizes_disable\r\n", b"stats sizes_disable\r\n"]
for args in ([], ["-o", "track_sizes"], ["-C"], ["-C", "-o", "track_sizes"]):
    compare(args, SIZES, "sizes")



def bin_stat(key):
    """A binary-protocol STAT request for key."""
    return struct.pack(">BBHBBHIIQ", 0x80, 0x10, len(key), 0, 0, 0, len(key), 0, 0) + key


# binary: memcached answers the switches with the status packet and no terminator
compare([], [bin_stat(k) for k in (b"sizes_enable", b"sizes", b"sizes_disable", b"sizes")],
        "binary sizes", text=False)

FLUSH = [b"set a 0 0 1\r\nx\r\n", b"flush_all\r\n", b"set b 0 0 1\r\nx\r\n", b"gets b\r\n",
         b"flush_all 0\r\n", b"set c 0 0 1\r\nx\r\n", b"gets c\r\n", b"flush_all 100\r\n",
         b"set d 0 0 1\r\nx\r\n", b"gets d\r\n", b"mg d c\r\n", b"flush_all noreply\r\n",
         b"ms e 1\r\nz\r\n", b"mg e c\r\n"]
compare([], FLUSH, "flush cas")

CRAWLER = [b"lru_crawler sleep 1000000\r\n", b"lru_crawler sleep 1000001\r\n",
           b"lru_crawler sleep -1\r\n", b"lru_crawler sleep x\r\n", b"lru_crawler sleep\r\n",
           b"lru_crawler sleep 0\r\n", b"lru_crawler sleep 0 0\r\n"]
compare([], CRAWLER, "lru_crawler sleep")
for v in ("5", "abc", "1000000"):
    with Server(args=["-o", "lru_crawler_sleep=" + v]) as s:
        ck.eq(s.stats("settings")["lru_crawler_sleep"], str(int(v) if v.isdigit() else 0),
              "-o lru_crawler_sleep=%s: stats settings" % v)


def poll(cond, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


# The pause is real: at 1 s a batch of 1000 chunks, a crawl over a page of small chunks
# (thousands of them) is still running after a second; at 0 it ends.
with Server(args=["-o", "lru_crawler_sleep=1000000"]) as s, s.connect() as c:
    ck.eq(c.cmd("set k 0 0 1\r\nv"), b"STORED\r\n", "set")
    ck.eq(c.cmd("lru_crawler crawl all"), b"OK\r\n", "crawl at 1 s a batch")
    t0 = time.time()
    time.sleep(1.2)
    running = c.stats()["lru_crawler_running"]
    if time.time() - t0 < 3.0:  # only meaningful if the check came in time
        ck.eq(running, "1", "crawl at 1 s a batch: still running after 1.2 s")
    ck.eq(c.cmd("lru_crawler sleep 0"), b"OK\r\n", "sleep 0 at runtime")
    ck.check(poll(lambda: c.stats()["lru_crawler_running"] == "0"),
             "crawl at sleep 0: ends")
    ck.eq(c.stats("settings")["lru_crawler_sleep"], "0", "stats settings after sleep 0")



# ---- stats: memcached counts its listening sockets as connections ----
CONN_KEYS = ["curr_connections", "total_connections", "connection_structures",
             "rejected_connections"]


def conn_counts(srv):
    """The connection counters at start, with 5 more clients, after they left, after a reset
    (all read on one control connection, so no other connection comes and goes meanwhile)."""
    out = []
    time.sleep(1.0)  # the harness's readiness probe has been closed on the server's side
    with srv.connect() as ctl:
        st = ctl.stats()
        # the uptime less the time since the server was started: the two servers are read
        # one after the other, seconds apart on a loaded machine
        out.append([st[k] for k in CONN_KEYS] + [int(st["uptime"]) - (time.time() - srv.started)])
        extra = [srv.connect() for _ in range(5)]
        for c in extra:
            c.cmd("version")
        out.append([ctl.stats()[k] for k in CONN_KEYS])
        for c in extra:
            c.close()
        deadline = time.time() + 20
        while time.time() < deadline and ctl.stats()["curr_connections"] != out[0][0]:
            time.sleep(0.05)
        out.append([ctl.stats()[k] for k in CONN_KEYS])
        ck.eq(ctl.cmd("stats reset"), b"RESET\r\n", "stats reset")
        out.append([ctl.stats()[k] for k in CONN_KEYS])
    return out


for listen in ([], ["-l", "[::1]"]):  # the harness gives -l 127.0.0.1
    with Server(args=listen) as ca, Server(MEMCACHED, args=listen, kind="memcached") as mc:
        got, want = conn_counts(ca), conn_counts(mc)
    up_got, up_want = got[0].pop(), want[0].pop()
    # memcached's uptime starts at 2 (its process_started is set 2 s in the past). Each
    # server's uptime less the seconds since its start is then ~2; checked on cached alone
    # (1..3.5: whole-second clocks), memcached's printed: under load its clock tick, read
    # seconds later, drifts more than the check could allow.
    print("uptime less the seconds since the start: cached %.1f, memcached %.1f" % (up_got, up_want))
    ck.check(1.0 <= up_got <= 3.5, "uptime starts at 2, as memcached's: cached %.1f (memcached %.1f)"
             % (up_got, up_want))
    for i, (g, w) in enumerate(zip(got, want)):
        ck.eq(g, w, "%s: %s, step %d" % (listen, " ".join(CONN_KEYS), i))


# ---- watch fetchers: an expired or flushed item found by a lookup says so ----
WATCH_SCRIPT = [
    b"set b 0 0 1\r\nx\r\n", b"flush_all\r\nget b\r\n",
    b"set a 0 -1 1\r\nx\r\nget a\r\n",
    b"set e 0 0 1\r\nx\r\n", b"flush_all\r\nmg e v\r\nmg e v\r\n",
    b"set f 0 0 1\r\nx\r\n", b"flush_all\r\nincr f 1\r\ntouch f 1\r\ngat 1 f\r\ndelete f\r\n",
    b"set g 0 0 1\r\nx\r\n", b"flush_all\r\ntouch g 1\r\n",
    b"set h 0 0 1\r\nx\r\n", b"flush_all\r\nset h 0 0 1\r\ny\r\n",
    b"set i 0 0 1\r\nx\r\n", b"flush_all\r\ndelete i\r\n",
    b"set j 0 0 1\r\nx\r\n", b"flush_all\r\ngets j k nope\r\n",
    b"set k 0 0 1\r\nx\r\n", b"flush_all\r\nma k\r\n",
    b"set l 0 0 1\r\nx\r\n", b"flush_all\r\nmd l\r\n",
    b"set m 0 0 1\r\nx\r\n", b"flush_all\r\nms m 1\r\nz\r\n",
    b"set n 0 0 1\r\nx\r\n", b"flush_all\r\nappend n 0 0 1\r\nz\r\n",
    b"set o 0 0 1\r\nx\r\n", b"me o\r\nflush_all\r\nme o\r\nme o\r\n",
    b"set p 0 0 1\r\nx\r\n", b"flush_all\r\ngat 0 p\r\n",
    b"set q 0 -1 1\r\nx\r\nget q r q\r\n",
]


def watch_lines(srv):
    u0 = int(srv.stats()["uptime"])
    with srv.connect() as w, srv.connect() as c:
        w.send(b"watch fetchers mutations\r\n")
        ck.eq(w.readline(), b"OK\r\n", "watch: OK")
        for chunk in WATCH_SCRIPT:
            c.send(chunk + b"mn\r\n")
            c.read_until(b"MN\r\n")
        c.send(b"get END-OF-SCRIPT\r\n")
        c.read_until(b"END\r\n")
        text = w.read_until(b"key=END-OF-SCRIPT").decode()
    u1 = int(srv.stats()["uptime"])
    lines = []
    for line in text.splitlines():
        parts = [p for p in line.split() if not p.startswith(("ts=", "gid=", "cfd="))]
        # An already expired item's ttl is memcached's 1 - current_time (as unsigned), and
        # current_time is the uptime stat plus 60: -59 - uptime. The uptime differs
        # between the two servers on a loaded machine, so the formula is checked with the
        # server's own uptime over the script (u0..u1) and the line compared without it.
        for j, p in enumerate(parts):
            if p.startswith("ttl=") and p[4:].isdigit() and int(p[4:]) >= 1 << 31:
                v = int(p[4:]) - (1 << 32)
                if any(v == -59 - u for u in range(u0, u1 + 1)):
                    parts[j] = "ttl=-59-uptime"
        lines.append(" ".join(parts))
    return lines


with Server() as ca, Server(MEMCACHED, kind="memcached") as mc:
    got, want = watch_lines(ca), watch_lines(mc)
ck.eq(len(got), len(want), "watch: as many lines")
for i, (g, w) in enumerate(zip(got, want)):
    ck.eq(g, w, "watch line %d" % i)

# me: memcached's size of the item (its header, key + NUL, value + CRLF, flags, CAS)
ME = [b"set a 0 0 1\r\nx\r\nme a\r\n", b"set b 5 100 200\r\n" + b"y" * 200 + b"\r\nme b\r\n",
      b"set c 0 0 5000\r\n" + b"y" * 5000 + b"\r\nme c\r\n", b"me nope\r\n",
      b"ms " + b"k" * 250 + b" 3\r\nabc\r\nme " + b"k" * 250 + b"\r\n"]
with Server() as ca, Server(MEMCACHED, kind="memcached") as mc:
    got, want = conversation(ca, ME), conversation(mc, ME)
for chunk, g, w in zip(ME, got, want):
    strip = lambda b: b" ".join(p for p in b.split(b" ") if not p.startswith(b"la="))
    ck.eq(strip(g), strip(w), "me (la= aside): %r" % chunk[:20])


# stats extstore: memcached built without extstore lists nothing
compare([], [b"stats extstore\r\n", b"stats extstore x\r\n"], "stats extstore")

# stats conns: a listener's secs_since_last_cmd counts from the start, as memcached's
with Server() as s:
    time.sleep(2.2)
    with s.connect() as c:
        c.send(b"stats conns\r\n")
        lines = c.read_until(b"END\r\n").decode().split("\r\n")
    fd = [l.split()[1].split(":")[0] for l in lines if l.endswith("conn_listening")][0]
    secs = [int(l.split()[2]) for l in lines if l.startswith("STAT %s:secs_since" % fd)][0]
    ck.check(secs >= 2, "listener secs_since_last_cmd counts from the start: %d" % secs)

# stats keys: memcached's, no more, no fewer (values differ: names only)
def stat_keys(srv):
    keys = []
    with srv.connect() as c:
        c.send(b"set a 0 0 1\r\nx\r\n")
        c.read_until(b"STORED\r\n")
        for cmd in (b"stats\r\n", b"stats items\r\n"):
            c.send(cmd)
            keys += [l.split()[1] for l in c.read_until(b"END\r\n").decode().split("\r\n")
                     if l.startswith("STAT ")]
    return keys


for args in ([], ["-o", "no_lru_maintainer"], ["-o", "no_modern"]):
    with Server(args=args) as ca, Server(MEMCACHED, args=args, kind="memcached") as mc:
        got, want = stat_keys(ca), stat_keys(mc)
        own = ca.stats("cached")
    if args == ["-o", "no_modern"]:
        # memcached without maxconns_fast hides rejected_connections; cached always refuses
        # over -c at once (maxconns_fast yes), so it counts them
        got = [k for k in got if k != "rejected_connections"]
    ck.eq(got, want, "stats + stats items keys %s" % " ".join(args))
    ck.check("sweeper_reclaimed" in own and "malloc_resident" in own,
             "stats cached %s: cached's own counters" % " ".join(args))

ck.done()
