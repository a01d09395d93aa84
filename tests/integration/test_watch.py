"""`watch` (issue #17) against cached and Debian's memcached 1.6.18.

Differential (lines normalised: ts, gid, cfd, rport and slab class ids masked):
  - the answer to `watch [class ...]` (OK / ERROR / noreply / pipelined / -W CLIENT_ERROR);
  - fetchers + mutations: the item_get / item_store lines of get/gets/gat/touch, set/add/
    replace/append/prepend/cas, delete, incr/decr, a too-large set, mg/ms/md/ma (with N
    vivify and base64 keys) and the binary protocol's get/set/delete/incr;
  - connevents: conn_new, and conn_close with reason normal (quit, EOF), error (HTTP line,
    reset) and idle_timeout (-o idle_timeout);
  - evictions: the eviction line's fields (fetch, ttl -1 or seconds, la, size);
  - WATCHER_TOO_MANY for the 21st watcher, whose connection stays usable.
cached only:
  - rawcmds and proxy* are refused with ERROR (memcached 1.6.18 accepts them but has nothing
    that writes to them in Debian's build); sysevents streams slab_move lines (automove 1);
  - a watcher's own input is ignored; a closed watcher is unregistered; other clients'
    replies do not change while someone watches; a watcher that never reads stays bounded
    in memory (lines skipped and counted, a "skipped=N" line follows).
Every wait polls for a sentinel line (bounded), so a slow (ASan, loaded) run only takes longer.
"""
import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, MEMCACHED, Checker, Server  # noqa: E402

ck = Checker("test_watch")
WAIT = 30.0 if ASAN else 15.0
NORM = [(re.compile(r"^ts=\d+\.\d+ gid=\d+ "), "ts=T gid=G "), (re.compile(r" cfd=-?\d+"), " cfd=F"),
        (re.compile(r" clsid=[1-9]\d*"), " clsid=N"),  # slab classes differ: header sizes
        (re.compile(r" rport=\d+"), " rport=P")]


def norm_line(line):
    for rx, rep in NORM:
        line = rx.sub(rep, line)
    return line


def watch(srv, arg):
    w = srv.connect()
    w.send("watch%s\r\n" % arg)
    return w, w.readline()


def lines_until(w, done, timeout=WAIT, raw=False):
    """A watcher's lines (normalised unless raw) until done(lines) holds, or the timeout."""
    deadline = time.time() + timeout
    buf = b""
    lines = []
    while time.time() < deadline:
        buf += w.read_available(0.1)
        lines = [x if raw else norm_line(x) for x in buf.decode().split("\n") if x]
        if done(lines):
            break
    return lines


def lines_quiet(w, timeout=WAIT):
    """A watcher's lines (normalised) until none has come for half a second."""
    deadline = time.time() + timeout
    buf = b""
    while time.time() < deadline:
        got = w.read_available(0.5)
        if not got and buf:
            break
        buf += got
    return [norm_line(x) for x in buf.decode().split("\n") if x]


def has_key(key):
    return lambda lines: any(" key=%s " % key in x for x in lines)


def run_cmds(srv, cmds, end=b"get __end__\r\n"):
    """Sends cmds then a sentinel command on one connection, waits for the sentinel's reply."""
    with srv.connect() as c:
        c.send(cmds + end)
        c.read_until(b"END\r\n" if end.startswith(b"get") else b"STORED\r\n")
        c.read_available(0.05)


def drop_end(lines):
    return [x for x in lines if " key=__end__ " not in x]


SETUP = b"set foo 0 0 3\r\nbar\r\nset big 0 0 100\r\n" + b"x" * 100 + b"\r\n"
FETCH = (b"get foo\r\nget nope\r\ngets big\r\nget foo nope big\r\ntouch foo 0\r\n"
         b"touch nope 0\r\ngat 0 foo\r\nget a%b\r\n")
MUTATE = (b"set m1 0 0 2\r\nhi\r\nadd foo 0 0 1\r\nx\r\nreplace nope 0 0 1\r\nx\r\n"
          b"append foo 0 0 1\r\nz\r\nprepend nope 0 0 1\r\nz\r\ncas foo 0 0 1 1\r\nq\r\n"
          b"cas nope 0 0 1 1\r\nq\r\nset t 0 0 1 noreply\r\nt\r\n")
# delete, incr/decr, touch, the lookups a store makes first, a too-large set
OTHERS = (b"set d 0 0 3\r\nbar\r\ndelete d\r\ndelete d\r\nset n 0 100 1\r\n5\r\nincr n 2\r\n"
          b"decr n 1\r\nincr nope 1\r\ntouch n 10\r\ngat 0 n\r\nappend n 0 0 2\r\nab\r\n"
          b"cas n 0 0 1 999\r\nx\r\nset toolong 0 0 2000000 noreply\r\n" + b"y" * 2000000 +
          b"\r\n")
META = (b"ms mf 3\r\nbar\r\nms mf 2 I\r\nxy\r\nmg mf v\r\nmg nope v\r\nmd mf\r\nmd nope\r\n"
        b"ma cnt N0 J5\r\nma cnt\r\nma nope\r\nms mf 3 MA\r\nzzz\r\nms mbig 2 MR\r\nxx\r\n"
        b"mg viv N30 v\r\nmg viv v\r\nms Zm9v 3 b\r\nabc\r\nmg Zm9v b v\r\nmn\r\n")


def bin_req(op, key=b"", ext=b"", val=b""):
    body = ext + key + val
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(ext), 0, 0, len(body), 0, 0) + body


BINARY = (bin_req(0x01, b"bk", struct.pack(">II", 0, 0), b"v1") + bin_req(0x00, b"bk") +
          bin_req(0x00, b"bnope") + bin_req(0x04, b"bk") + bin_req(0x04, b"bk") +
          bin_req(0x05, b"bn", struct.pack(">QQI", 1, 7, 0)) +
          bin_req(0x05, b"bn", struct.pack(">QQI", 1, 7, 0)) + bin_req(0x0a))  # noop ends


def binary_lines(srv):
    w, _ = watch(srv, " fetchers mutations")
    s = socket.create_connection((srv.host, srv.port))
    s.settimeout(WAIT)
    s.sendall(BINARY)
    got = b""
    while len(got) < 24 or got[-24 + 1] != 0x0a:  # until the noop's response header
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    lines = lines_until(w, lambda ls: sum(" key=bn " in x for x in ls) >= 4)
    w.close()
    return lines


def conn_events(srv):
    """conn_new / conn_close lines of this function's own connections (others, such as the
    harness's port probe or closed watchers, may be logged late by memcached's logger)."""
    w, first = watch(srv, " connevents")
    ports = []

    def mine(n):
        return lambda ls: sum(any(" rport=%d " % p in x for p in ports) for x in ls) >= n

    def conn():
        c = srv.connect()
        ports.append(c.sock.getsockname()[1])
        return c

    c = conn()
    c.send(b"version\r\n")
    c.readline()
    c.send(b"quit\r\n")            # normal
    c.is_closed(WAIT)
    c.close()
    c = conn()
    c.send(b"GET / HTTP/1.1\r\n")  # error: memcached closes on an HTTP request line
    c.is_closed(WAIT)
    c.close()
    c = conn()
    c.send(b"version\r\n")
    c.readline()
    c.close()                      # EOF: normal
    c = conn()
    c.send(b"version\r\n")       # accepted for sure (a reset before accept logs nothing)
    c.readline()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()                      # reset: error
    raw = lines_until(w, mine(8), raw=True)
    w.close()
    # memcached's workers log to their own buffers, merged by its logger thread: the global
    # order is the gid's, and only within one connection is it certain
    raw.sort(key=lambda x: int(re.search(r" gid=(\d+) ", x).group(1)))
    return [first] + [[norm_line(x) for x in raw if " rport=%d " % p in x] for p in ports]


def scenario(srv):
    rec = {}
    for arg in ["", " fetchers", " mutations", " evictions", " fetchers mutations", " fetch",
                " bogus", " fetchers bogus", " connevents", " sysevents", " deletions",
                " evictions connevents sysevents fetchers mutations"]:
        w, first = watch(srv, arg)
        rec["reply" + arg] = first
        w.close()
    # (`mn` would not do: memcached writes its answer out at once, so no answer is pending)
    for cmds in [b"watch noreply\r\nversion\r\n", b"watch fetchers noreply\r\nversion\r\n",
                 b"version\r\nwatch\r\n"]:
        with srv.connect() as c:
            c.send(cmds)
            got = c.read_until(b"\r\n" if cmds.startswith(b"watch") else b"watch\r\n")
            rec[cmds] = re.sub(rb"^VERSION \S+", b"VERSION V", got)
    time.sleep(0.1)
    run_cmds(srv, SETUP)
    for name, arg, cmds in [("fetch", "", FETCH), ("fetch", " fetchers", FETCH),
                            ("mutate", " mutations", MUTATE),
                            ("others", " fetchers mutations", OTHERS),
                            ("meta", " fetchers mutations", META)]:
        w, first = watch(srv, arg)
        if arg == " mutations":
            run_cmds(srv, cmds, end=b"set __end__ 0 0 1\r\nE\r\n")
        else:
            run_cmds(srv, cmds)
        rec["lines %s%s" % (name, arg)] = drop_end(lines_until(w, has_key("__end__")))
        w.close()
    lap("lines")
    rec["binary"] = binary_lines(srv)
    lap("binary")
    rec["connevents"] = conn_events(srv)
    lap("connevents")
    # a watcher's own commands are not answered
    w, first = watch(srv, " mutations")
    w.send("get foo\r\nversion\r\n")
    rec["own input"] = w.read_available(0.3)
    w.close()
    return rec


def too_many(srv):
    """21 watchers: 20 OK, one WATCHER_TOO_MANY, and that connection still answers."""
    # memcached's logger thread notices closed watchers a little later: wait for none left
    deadline = time.time() + WAIT
    while time.time() < deadline and srv.stats().get("log_watchers") != "0":
        time.sleep(0.05)
    ws = [srv.connect() for _ in range(21)]
    for w in ws:
        w.send(b"watch\r\n")
    firsts = [w.readline() for w in ws]
    refused = [w for w, f in zip(ws, firsts) if f != b"OK\r\n"]
    after = b""
    if len(refused) == 1:
        refused[0].send(b"version\r\n")
        after = refused[0].readline()[:8]
    for w in ws:
        w.close()
    return sorted(firsts), after


def idle_close(binary, kind):
    with Server(binary, kind=kind, args=["-o", "idle_timeout=1"]) as srv:
        w, _ = watch(srv, " connevents")
        c = srv.connect()
        port = " rport=%d " % c.sock.getsockname()[1]
        lines = lines_until(w, lambda ls: any("conn_close" in x and port in x for x in ls),
                            raw=True)
        c.close()
        w.close()
        return [norm_line(x) for x in lines if port in x]


def eviction_shapes(binary, kind):
    """The distinct shapes of the eviction lines a small cache writes (key, la and a positive
    ttl masked: which keys go first is policy, #12's business). 600 values never read, then
    1200 read once each (mg marks them fetched): whatever the policy, both kinds are evicted."""
    with Server(binary, kind=kind, args=["-m", "8"]) as srv:
        w, first = watch(srv, " evictions")
        with srv.connect() as c:
            for i in range(1800):
                cmd = b"set v%d 0 %d 30000 noreply\r\n%s\r\n" % (i, 0 if i % 2 else 1000,
                                                                  b"y" * 30000)
                if i < 600:
                    c.send(cmd)
                    continue
                c.send(cmd + b"mg v%d\r\n" % i)  # one send: no Nagle wait for the mg
                c.readline()
            c.send(b"version\r\n")
            c.readline()
        lines = lines_quiet(w)
        w.close()
    shapes = set()
    for x in lines:
        if x.startswith("skipped="):
            continue  # a burst can outrun a watcher's buffer (either server's)
        x = re.sub(r" key=v\d+ ", " key=K ", x)
        x = re.sub(r" la=\d+ ", " la=L ", x)
        x = re.sub(r" ttl=(9\d\d|1000) ", " ttl=T ", x)
        shapes.add(x)
    return first, sorted(shapes)


T0 = time.time()


def lap(what):
    if os.environ.get("SHOW_TIMES"):
        print("%6.1fs %s" % (time.time() - T0, what), flush=True)


with Server() as cached, Server(MEMCACHED, kind="memcached") as mc:
    rm = scenario(mc)
    lap("scenario memcached")
    rc = scenario(cached)
    lap("scenario cached")
    for k in rm:
        ck.eq(rc.get(k), rm[k], "watch %s" % (k,))
    if os.environ.get("SHOW_RECORDS"):
        for k, v in rm.items():
            print(k, v)
    ck.eq(too_many(cached), too_many(mc), "21 watchers")

    # deliberately refused: nothing in memcached 1.6.18 (Debian) writes to these classes
    for arg in [" rawcmds", " proxyreqs", " proxyevents", " proxyuser", " fetchers rawcmds"]:
        w, first = watch(cached, arg)
        ck.eq(first, b"ERROR\r\n", "watch%s refused" % arg)
        w.close()

    # a closed watcher is unregistered; nothing streams to it any more
    deadline = time.time() + WAIT
    while time.time() < deadline and cached.stats().get("log_watchers") != "0":
        time.sleep(0.05)
    w, _ = watch(cached, " fetchers")
    ck.eq(cached.stats().get("log_watchers"), "1", "log_watchers with one watcher")
    w.close()
    deadline = time.time() + WAIT
    while time.time() < deadline and cached.stats().get("log_watchers") != "0":
        time.sleep(0.05)
    ck.eq(cached.stats().get("log_watchers"), "0", "log_watchers after close")

    # other clients' replies are unchanged while a watcher of every class is attached
    with cached.connect() as c:
        cmds = [b"get foo\r\n", b"set q 0 0 1\r\n1\r\n", b"incr q 5\r\n", b"get q nope\r\n",
                b"delete q\r\n", b"mg foo v\r\n"]
        before = [c.send(cmd) or c.read_available(0.2) for cmd in cmds]
        w, _ = watch(cached, " fetchers mutations evictions connevents sysevents")
        after = [c.send(cmd) or c.read_available(0.2) for cmd in cmds]
        ck.eq(after, before, "replies with a watcher attached")
        w.close()

for binary, kind in [(None, "cached"), (MEMCACHED, "memcached")]:
    with Server(binary, kind=kind, args=["-W"]) as srv:
        with srv.connect() as c:
            c.send(b"watch mutations\r\n")
            ck.eq(c.readline(), b"CLIENT_ERROR watch commands not allowed\r\n", "-W (%s)" % kind)

lap("-W")
ck.eq(idle_close(None, "cached"), idle_close(MEMCACHED, "memcached"), "idle_timeout close")
lap("idle")
ec, em = eviction_shapes(None, "cached"), eviction_shapes(MEMCACHED, "memcached")
ck.eq(ec, em, "eviction line shapes")
ck.check(len(ec[1]) >= 2, "eviction lines seen: %r" % (ec[1],))
lap("evictions")

# sysevents (cached only: memcached's automove needs a 30 s window): a page moves to a class
# that evicts, from one that no longer does.
with Server(args=["-m", "8", "-o", "slab_automove=1"]) as srv:
    w, first = watch(srv, " sysevents")
    ck.eq(first, b"OK\r\n", "watch sysevents")
    lines = []
    with srv.connect() as c:
        for i in range(300):
            c.send(b"set s%d 0 0 30000 noreply\r\n%s\r\n" % (i, b"y" * 30000))
        for r in range(30):  # pressure on the 200 KB class until automove (once a second) acts
            for i in range(50):
                c.send(b"set t%d 0 0 200000 noreply\r\n%s\r\n" % (i, b"z" * 200000))
            c.send(b"version\r\n")
            c.readline()
            lines = lines_until(w, lambda ls: len(ls) >= 1, timeout=0.5)
            if lines:
                break
    ck.check(lines and all(re.fullmatch(r"ts=T gid=G type=slab_move src=\d+ dst=\d+", x)
                           for x in lines), "slab_move lines: %r" % lines[:3])
    w.close()

lap("sysevents")

# A watcher that never reads: the server's memory stays bounded, lines are skipped and counted.
with Server(args=["-m", "64"]) as srv:
    s = socket.create_connection((srv.host, srv.port))
    # small, so the server's socket fills; not tiny: a 4 KB window drains the kernel's send
    # buffer (megabytes on loopback) at ~40 KB/s, so the read-back below took 100 s
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"watch fetchers\r\n")
    time.sleep(0.2)
    rss0 = srv.rss_kb()
    n = 20000 if ASAN else 100000
    key = b"k" * 200
    batch = b"get " + b" ".join([key] * 50) + b"\r\n"
    with srv.connect() as c:
        for i in range(n // 50):
            c.send(batch)
            c.read_until(b"END\r\n")
    st = srv.stats()
    grow = srv.rss_kb() - rss0
    ck.check(grow < 16 * 1024, "RSS grew %d KB for %d unread watch lines" % (grow, n))
    ck.check(int(st.get("log_watcher_skipped", "0")) > 0, "lines skipped for a slow watcher")
    ck.check(int(st.get("log_watcher_sent", "0")) > 0, "lines sent to the watcher")
    # the watcher then reads: lines, and a skipped=N line
    s.settimeout(1.0)
    got = b""
    try:
        while len(got) < 64 << 20:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pass
    ck.check(b"type=item_get key=" + key in got, "watcher gets item_get lines after all")
    ck.check(re.search(rb"(^|\n)skipped=\d+\n", got) is not None,
             "a skipped=N line (got %d bytes, tail %r)" % (len(got), got[-200:]))
    s.close()
    ck.check(srv.proc.poll() is None, "cached still running")
lap("slow watcher")

ck.done()
