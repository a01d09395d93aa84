"""Server core (issue 4): many connections, the -c limit, idle timeout, the unix socket and its
mode, commands split over many reads, a pipelined burst, backpressure against a reader that
never reads, a client vanishing mid-value and mid-reply, and IPv6.

Prints the figures it measures (connection test time, slow reader RSS growth).
"""
import os
import resource
import selectors
import socket
import stat
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402
from harness import Server, Conn, Checker  # noqa: E402

ck = Checker("test_server")
ASAN = harness.ASAN
NCONN = 500 if ASAN else 2000


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    for new_hard in (max(hard, want), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, new_hard), new_hard))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def many_connections():
    """NCONN sockets open at once, each doing a verified set/get round trip."""
    n = NCONN
    have = raise_nofile(2 * n + 200)
    if have < n + 100:
        n = have - 100
        print("note: open-file limit %d; using %d connections" % (have, n))
    with Server(args=["-c", str(n + 100), "-t", "4"]) as srv:
        t0 = time.time()
        sel = selectors.DefaultSelector()
        socks = []
        for i in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", srv.port))
            val = b"value-%d-%s" % (i, b"x" * (i % 50))
            msg = b"set key%d 0 0 %d\r\n%s\r\nget key%d\r\n" % (i, len(val), val, i)
            want = b"STORED\r\nVALUE key%d 0 %d\r\n%s\r\nEND\r\n" % (i, len(val), val)
            st = {"sock": s, "out": msg, "want": want, "got": b""}
            socks.append(st)
            sel.register(s, selectors.EVENT_WRITE, st)
        done = 0
        ok = 0
        deadline = time.time() + (120 if ASAN else 60)
        while done < n and time.time() < deadline:
            for key, ev in sel.select(timeout=1.0):
                st = key.data
                s = st["sock"]
                try:
                    if ev & selectors.EVENT_WRITE and st["out"]:
                        k = s.send(st["out"])
                        st["out"] = st["out"][k:]
                        if not st["out"]:
                            sel.modify(s, selectors.EVENT_READ, st)
                    elif ev & selectors.EVENT_READ:
                        chunk = s.recv(65536)
                        if not chunk:
                            raise ConnectionError("closed")
                        st["got"] += chunk
                        if len(st["got"]) >= len(st["want"]):
                            ok += st["got"] == st["want"]
                            done += 1
                            sel.unregister(s)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    done += 1
                    sel.unregister(s)
        elapsed = time.time() - t0
        with srv.connect() as c:
            stats = c.stats()
        print("%d concurrent connections: %d verified round trips in %.2f s; curr_connections %s"
              % (n, ok, elapsed, stats.get("curr_connections")))
        ck.eq(ok, n, "verified round trips on %d concurrent connections" % n)
        ck.check(int(stats.get("curr_connections", 0)) >= n,
                 "curr_connections counts the open connections (%s)" % stats.get("curr_connections"))
        for st in socks:
            st["sock"].close()
        sel.close()
        # All closed: the gauge falls back to (almost) just us.
        deadline = time.time() + 10
        cur = None
        while time.time() < deadline:
            with srv.connect() as c:
                cur = int(c.stats()["curr_connections"])
            if cur <= 2:
                break
            time.sleep(0.1)
        ck.check(cur is not None and cur <= 2, "curr_connections back down after close (%s)" % cur)


def conn_limit():
    limit = 5
    with Server(args=["-c", str(limit)]) as srv:
        # wait_port's probe connection must be gone: the worker that accepted it may not have
        # seen it close yet (workers accept on their own sockets), so poll from the first
        # connection, which holds one of the slots itself
        conns = [srv.connect()]
        deadline = time.time() + 20
        while time.time() < deadline and conns[0].stats().get("curr_connections") != "1":
            time.sleep(0.05)
        conns += [srv.connect() for _ in range(limit - 1)]
        for c in conns:
            ck.check(c.cmd("version").startswith(b"VERSION "), "connection within -c answers")
        extra = srv.connect()
        got = extra.read_available(1.0)
        ck.eq(got, b"ERROR Too many open connections\r\n", "connection past -c is refused")
        ck.check(extra.is_closed(2.0), "refused connection is closed")
        extra.close()
        ck.check(conns[0].cmd("version").startswith(b"VERSION "), "existing connection unaffected")
        st = conns[1].stats()
        ck.check(int(st.get("rejected_connections", 0)) >= 1,
                 "rejected_connections counted (%s)" % st.get("rejected_connections"))
        ck.eq(st.get("max_connections"), str(limit), "max_connections")
        conns[-1].close()
        deadline = time.time() + 20
        while time.time() < deadline and conns[0].stats().get("curr_connections") != str(limit - 1):
            time.sleep(0.05)
        again = srv.connect()
        ck.check(again.cmd("version").startswith(b"VERSION "), "a freed slot is usable again")
        again.close()
        for c in conns[:-1]:
            c.close()


def idle_timeout():
    with Server(args=["--idle-timeout=1"]) as srv:
        idle = srv.connect()
        busy = srv.connect()
        t0 = time.time()
        closed = False
        while time.time() - t0 < 6:
            busy.cmd("version")  # keeps this one active
            if idle.is_closed(0.5):
                closed = True
                break
        took = time.time() - t0
        print("idle connection closed after %.1f s (idle_timeout=1)" % took)
        ck.check(closed, "idle connection closed by idle_timeout")
        ck.check(busy.cmd("version").startswith(b"VERSION "), "active connection survives")
        st = busy.stats()
        ck.check(int(st.get("idle_kicks", 0)) >= 1, "idle_kicks counted (%s)" % st.get("idle_kicks"))
        idle.close()
        busy.close()


def unix_socket():
    d = tempfile.mkdtemp(prefix="cached-test-")
    path = os.path.join(d, "cached.sock")
    # A stale socket file from an earlier run must not stop us.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    srv = Server(args=["-s", path, "-a", "600"], wait=False)
    try:
        deadline = time.time() + 10
        s = None
        while time.time() < deadline and srv.proc.poll() is None:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(5)
                s.connect(path)
                break
            except OSError:
                s.close()
                s = None
                time.sleep(0.05)
        if not ck.check(s is not None, "unix socket accepts (stale file replaced)"):
            return
        mode = stat.S_IMODE(os.stat(path).st_mode)
        ck.eq(oct(mode), oct(0o600), "unix socket mode from -a 600")
        ck.check(stat.S_ISSOCK(os.stat(path).st_mode), "path is a socket")
        s.sendall(b"set u 5 0 3\r\nabc\r\nget u\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        ck.eq(buf, b"STORED\r\nVALUE u 5 3\r\nabc\r\nEND\r\n", "round trip over the unix socket")
        s.close()
    finally:
        rc = srv.stop()
        ck.eq(rc, 0, "unix-socket server exits 0 on SIGTERM")
        ck.check(not os.path.exists(path), "socket file removed on exit")
        try:
            os.rmdir(d)
        except OSError:
            pass


def byte_at_a_time(srv):
    with srv.connect() as c:
        msg = b"set bat 3 0 10\r\n0123456789\r\nget bat\r\nget bat missing\r\n"
        for i in range(len(msg)):
            c.send(msg[i:i + 1])
            if i % 7 == 0:
                time.sleep(0.002)
        want = b"STORED\r\nVALUE bat 3 10\r\n0123456789\r\nEND\r\nVALUE bat 3 10\r\n0123456789\r\nEND\r\n"
        got = c.readexact(len(want))
        ck.eq(got, want, "commands sent one byte per write")
        # A large value arriving in small pieces grows the buffer, then the buffer shrinks back.
        big = os.urandom(300000)
        c.send(b"set bigbat 0 0 %d\r\n" % len(big))
        for i in range(0, len(big), 7000):
            c.send(big[i:i + 7000])
        c.send(b"\r\n")
        ck.eq(c.readline(), b"STORED\r\n", "300 KB value in 7 KB pieces")
        ck.eq(c.get("bigbat"), (0, big), "300 KB value read back")


def pipelined_burst(srv):
    n = 10000
    parts, want = [], []
    for i in range(n // 2):
        v = b"v%d" % i
        parts.append(b"set p%d 0 0 %d\r\n%s\r\n" % (i, len(v), v))
        want.append(b"STORED\r\n")
    for i in range(n // 2):
        v = b"v%d" % i
        parts.append(b"get p%d\r\n" % i)
        want.append(b"VALUE p%d 0 %d\r\n%s\r\nEND\r\n" % (i, len(v), v))
    want = b"".join(want)
    with srv.connect(timeout=30) as c:
        t0 = time.time()
        c.send(b"".join(parts))
        got = c.readexact(len(want))
        print("pipelined burst of %d commands answered in %.3f s" % (n, time.time() - t0))
        ck.check(got == want, "10,000 pipelined commands answered in order")
        ck.eq(c.read_available(0.2), b"", "nothing extra after the burst")
        yields = int(c.stats().get("conn_yields", 0))
        ck.check(yields >= 1, "the burst yielded to other connections per -R (conn_yields %d)" % yields)


def slow_reader(srv):
    nvals, vsize = 10, 500 * 1024
    with srv.connect() as c:
        for i in range(nvals):
            ck.eq(c.set("big%d" % i, b"%c" % (65 + i) * vsize), b"STORED\r\n", "store big%d" % i)
    time.sleep(0.3)
    base = srv.rss_kb()
    keys = " ".join("big%d" % i for i in range(nvals))
    req = ("get %s\r\n" % keys).encode() * 1000  # ~5 GB of replies if it were all read
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect(("127.0.0.1", srv.port))
    s.setblocking(False)
    sent = 0
    t_end = time.time() + 3.0
    while sent < len(req) and time.time() < t_end:
        try:
            sent += s.send(req[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.05)
    time.sleep(1.0)
    peak = srv.rss_kb()
    growth_mb = (peak - base) / 1024.0
    print("slow reader: sent %d of %d request bytes; server RSS %d KB -> %d KB (+%.1f MB)"
          % (sent, len(req), base, peak, growth_mb))
    ck.check(growth_mb < 64, "RSS growth bounded with a slow reader (+%.1f MB)" % growth_mb)
    with srv.connect(timeout=5) as other:
        t0 = time.time()
        ck.check(other.cmd("version").startswith(b"VERSION "), "another client is served")
        ck.check(other.get("big3") == (0, b"D" * vsize), "another client gets a big value")
        print("other client served in %.3f s while the slow reader is stuck" % (time.time() - t0))
    s.close()  # vanishes with megabytes of replies pending: item references must be dropped
    time.sleep(0.5)
    with srv.connect() as c:
        ck.eq(c.cmd("delete big0"), b"DELETED\r\n", "server healthy after the slow reader left")


def vanishing_clients(srv):
    # Mid-value: the header and part of the value, then gone.
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"set vanish 0 0 100000\r\n" + b"x" * 5000)
        s.close()
    # Mid-line.
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"get half")
    s.close()
    # Mid-reply: a big multi-get, then reset without reading.
    with srv.connect() as c:
        ck.eq(c.set("vbig", b"z" * 400000), b"STORED\r\n", "store value for mid-reply test")
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"get vbig vbig vbig vbig vbig vbig vbig vbig\r\n" * 20)
        time.sleep(0.05)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST
    time.sleep(0.5)
    with srv.connect() as c:
        ck.eq(c.get("vanish"), None, "partial value never stored")
        ck.eq(c.get("vbig"), (0, b"z" * 400000), "value intact after readers vanished")
        ck.eq(c.cmd("delete vbig"), b"DELETED\r\n", "delete after vanished readers")
        st = c.stats()
        ck.check(int(st["curr_connections"]) <= 2,
                 "vanished clients closed (curr_connections %s)" % st["curr_connections"])


def quit_flushes(srv):
    with srv.connect() as c:
        c.send(b"set q 0 0 1\r\nq\r\nget q\r\nquit\r\nget q\r\n")
        got = c.read_available(1.0)
        ck.eq(got, b"STORED\r\nVALUE q 0 1\r\nq\r\nEND\r\n", "quit after replies flushed, nothing after")
        ck.check(c.is_closed(2.0), "quit closes the connection")


def ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as e:
        print("note: skipping IPv6 test, ::1 unavailable (%s)" % e)
        return
    with Server(host="::1") as srv:
        with srv.connect() as c:
            ck.eq(c.set("six", "v6"), b"STORED\r\n", "set over IPv6")
            ck.eq(c.get("six"), (0, b"v6"), "get over IPv6")
            conns = c.stats("conns")
            ck.check(any("[::1]" in v for v in conns.values()), "stats conns names the v6 peer")


def main():
    many_connections()
    conn_limit()
    idle_timeout()
    unix_socket()
    with Server(args=["-t", "2"]) as srv:
        byte_at_a_time(srv)
        pipelined_burst(srv)
        quit_flushes(srv)
        slow_reader(srv)
        vanishing_clients(srv)
        rc = srv.stop()
        ck.eq(rc, 0, "server exits 0 after all that")
    ipv6()
    ck.done()


if __name__ == "__main__":
    main()
