"""Connection abuse: 10,000 connects and disconnects (2,000 under ASan); clients that send half a
command and stall; clients that disconnect (and reset) mid-value; a flood of connections past
-c; a slow reader that pipelines large multi-gets and never reads. Meanwhile and afterwards a
normal client is served, the server never dies, and its RSS returns near the baseline.

Baseline: RSS after the values the slow reader fetches are stored and a few clients have come
and gone. Slack: RSS_SLACK_MB = 24. What may legitimately stay: the allocator keeps freed
pages of the connection buffers for a while (jemalloc purges dirty pages over ~10 s, muzzy
ones later), per-thread caches of 4 workers, and connection structures that a server may pool
(up to -c of them). A leak of one read buffer per aborted connection would be tens of MB after
this many connections; memcached 1.6.18 measured by this test ends within a few MB.
"""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, CACHED, Checker, Conn, Server  # noqa: E402

CONNECTS = 2000 if ASAN else 10000
CONNECT_TIME_LIMIT = 60.0
CONN_LIMIT = 64
RSS_SLACK_MB = 24
SETTLE_TIME = 20.0  # seconds to wait for RSS to come back down
# memcached 1.6.18 stops accepting (resets every new client) after ~2,000 connections that
# were reset by the client before it accepted them, so when this test is pointed at memcached
# (to check the test itself) the storm closes those with a FIN instead.
ORACLE = os.path.basename(CACHED) == "memcached"


def quick(port, data=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if data:
        s.sendall(data)
    return s


def served(srv, timeout=10.0):
    """A normal client gets a set and a get answered (retries while the server is full)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with Conn(srv.host, srv.port, timeout=5) as c:
                if c.set("normal", "yes") == b"STORED\r\n" and c.get("normal") == (0, b"yes"):
                    return True
        except (OSError, AssertionError, IndexError):
            pass
        time.sleep(0.1)
    return False


def rst_close(s):
    """Close with a TCP reset instead of a FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def connect_storm(srv, ck):
    done = [0]
    errors = []
    deadline = time.time() + CONNECT_TIME_LIMIT
    per = CONNECTS // 4

    def run(tid):
        for i in range(per):
            if time.time() > deadline:
                return
            try:
                s = quick(srv.port)
                kind = i % 4
                if kind == 1:
                    s.sendall(b"version\r\n")
                    s.recv(100)
                elif kind == 2:
                    s.sendall(b"get a b c\r\n")
                if kind == 3 and not ORACLE:
                    rst_close(s)
                else:
                    s.close()
                done[0] += 1
            except OSError as e:
                errors.append(repr(e))

    t0 = time.time()
    ts = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("connect storm: %d connects/disconnects in %.1f s, %d errors %s" %
          (done[0], time.time() - t0, len(errors), errors[:3]))
    ck.check(done[0] >= CONNECTS * 0.99, "connect storm completed (%d of %d)" % (done[0], CONNECTS))


def half_commands(srv, ck):
    stalled = []
    for i in range(20):
        payloads = [b"get foo", b"set k 0 0 100\r\nabc", b"set k 0 0", b"incr ", b"g",
                    b"set k 0 0 10\r\n0123456789", b"mg k v"]
        stalled.append(quick(srv.port, payloads[i % len(payloads)]))
    time.sleep(0.5)
    ck.check(served(srv), "served while 20 clients stall mid-command")
    for s in stalled:
        s.close()


def mid_value(srv, ck):
    for i in range(60):
        s = quick(srv.port, b"set mv%d 0 0 200000\r\n" % i + b"v" * (1000 * (i + 1)))
        if i % 2:
            rst_close(s)
        else:
            s.close()
    ck.check(served(srv), "served after 60 clients vanished mid-value")
    with Conn(srv.host, srv.port) as c:
        c.send(b"get " + b" ".join(b"mv%d" % i for i in range(60)) + b"\r\n")
        ck.eq(c.read_until(b"END\r\n"), b"END\r\n", "no partial value was stored")


def flood(srv, ck):
    held, refused = [], 0
    for i in range(CONN_LIMIT + 60):
        try:
            s = quick(srv.port)
            s.sendall(b"version\r\n")
            held.append(s)
        except OSError:
            refused += 1
    # Each connection either got VERSION or was told/closed because the server is full.
    answered = closed = 0
    for s in held:
        s.settimeout(3)
        try:
            data = s.recv(200)
            if data.startswith(b"VERSION"):
                answered += 1
            else:
                closed += 1
        except OSError:
            closed += 1
    print("flood past -c %d: %d connects, %d answered, %d refused/closed/waiting" %
          (CONN_LIMIT, len(held) + refused, answered, closed + refused))
    ck.check(answered <= CONN_LIMIT, "at most -c connections served at once (%d)" % answered)
    ck.check(srv.proc.poll() is None, "alive during the flood")
    for s in held:
        s.close()
    ck.check(served(srv, timeout=20), "served after the flood")


def slow_reader(srv, ck, keys, base_kb):
    s = quick(srv.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    line = b"get " + b" ".join(keys) + b"\r\n"
    s.setblocking(False)
    sent = 0
    t0 = time.time()
    while time.time() - t0 < 5.0 and sent < 2000 * len(line):
        try:
            sent += s.send(line)
        except BlockingIOError:
            time.sleep(0.05)
    mb_asked = sent // len(line) * len(keys) * 500 / 1024
    time.sleep(0.5)
    rss = srv.rss_kb()
    print("slow reader: sent %d multi-gets (%.0f MB of values asked for), RSS now %.1f MB" %
          (sent // len(line), mb_asked, rss / 1024))
    ck.check(served(srv), "served while a slow reader is stuck")
    ck.check(ASAN or rss - base_kb < 64 * 1024,
             "slow reader does not make replies pile up (RSS +%.1f MB)" % ((rss - base_kb) / 1024))
    rst_close(s)


def main():
    ck = Checker("abuse")
    with Server(args=["-m", "64", "-t", "4", "-c", str(CONN_LIMIT)]) as srv:
        keys = [b"big%d" % i for i in range(20)]
        with Conn(srv.host, srv.port) as c:
            for k in keys:
                ck.eq(c.set(k, b"B" * 500 * 1024), b"STORED\r\n", "store %r" % k)
        for _ in range(8):
            served(srv)
        time.sleep(0.5)
        base_kb = srv.rss_kb()
        print("baseline RSS %.1f MB" % (base_kb / 1024))
        for phase in (connect_storm, half_commands, mid_value, flood):
            phase(srv, ck)
            alive = srv.proc.poll() is None
            ck.check(alive, "alive after %s" % phase.__name__)
            if not alive:
                ck.done()
            print("after %s: RSS %.1f MB" % (phase.__name__, srv.rss_kb() / 1024))
        slow_reader(srv, ck, keys, base_kb)
        ck.check(srv.proc.poll() is None, "alive after slow_reader")
        # RSS back near the baseline (allow the allocator time to purge).
        deadline = time.time() + SETTLE_TIME
        rss = srv.rss_kb()
        while rss - base_kb > RSS_SLACK_MB * 1024 and time.time() < deadline:
            time.sleep(0.5)
            rss = srv.rss_kb()
        print("RSS: baseline %.1f MB, after abuse %.1f MB (%+.1f MB; slack %d MB)" %
              (base_kb / 1024, rss / 1024, (rss - base_kb) / 1024, RSS_SLACK_MB))
        if not ASAN:
            ck.check(rss - base_kb <= RSS_SLACK_MB * 1024,
                     "RSS back near baseline (%+.1f MB)" % ((rss - base_kb) / 1024))
        st = srv.stats()
        print("stats: curr_connections %s, total_connections %s, rejected_connections %s" %
              (st.get("curr_connections"), st.get("total_connections"),
               st.get("rejected_connections")))
        ck.check(served(srv), "a normal client is served at the end")
        with Conn(srv.host, srv.port) as c:
            ck.eq(c.get("big3"), (0, b"B" * 500 * 1024), "stored data intact")
    ck.done()


if __name__ == "__main__":
    main()
