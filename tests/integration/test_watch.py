"""`watch` (issue #17) against cached and Debian's memcached 1.6.18: the reply (OK / ERROR),
the log line shapes of the fetchers and mutations classes (ts, gid and cfd normalised), that a
watcher's own input is ignored and its close unregisters it, that a watcher which never reads
stays bounded in memory (lines are skipped and counted, a "skipped=N" line follows), and that
other clients' replies do not change while someone watches.
"""
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, MEMCACHED, Checker, Server  # noqa: E402

ck = Checker("test_watch")
NORM = [(re.compile(r"^ts=\d+\.\d+ gid=\d+ "), "ts=T gid=G "), (re.compile(r" cfd=\d+"), " cfd=F"),
        (re.compile(r" clsid=[1-9]\d*"), " clsid=N")]  # slab classes differ: header sizes


def norm(data):
    out = []
    for line in data.decode().split("\n"):
        if not line:
            continue
        for rx, rep in NORM:
            line = rx.sub(rep, line)
        out.append(line)
    return out


def watch(srv, arg):
    w = srv.connect()
    w.send("watch%s\r\n" % arg)
    first = w.readline()
    return w, first


def run_cmds(srv, cmds):
    with srv.connect() as c:
        c.send(cmds)
        c.read_available(0.3)


SETUP = b"set foo 0 0 3\r\nbar\r\nset big 0 0 100\r\n" + b"x" * 100 + b"\r\n"
FETCH = (b"get foo\r\nget nope\r\ngets big\r\nget foo nope big\r\ntouch foo 0\r\n"
         b"touch nope 0\r\ngat 0 foo\r\nget a%b\r\n")
MUTATE = (b"set m1 0 0 2\r\nhi\r\nadd foo 0 0 1\r\nx\r\nreplace nope 0 0 1\r\nx\r\n"
          b"append foo 0 0 1\r\nz\r\nprepend nope 0 0 1\r\nz\r\ncas foo 0 0 1 1\r\nq\r\n"
          b"cas nope 0 0 1 1\r\nq\r\nset t 0 0 1 noreply\r\nt\r\n")


def scenario(srv, tag):
    rec = {}
    for arg in ["", " fetchers", " mutations", " evictions", " fetchers mutations", " fetch",
                " bogus", " fetchers bogus", " connevents", " sysevents", " rawcmds", " deletions"]:
        w, first = watch(srv, arg)
        rec["reply" + arg] = first
        w.close()
    time.sleep(0.1)
    run_cmds(srv, SETUP)
    for arg, cmds in [("", FETCH), (" fetchers", FETCH), (" mutations", MUTATE)]:
        w, first = watch(srv, arg)
        run_cmds(srv, cmds)
        rec["lines" + arg] = norm(w.read_available(0.4))
        w.close()
    # a watcher's own commands are not answered
    w, first = watch(srv, " mutations")
    w.send("get foo\r\nversion\r\n")
    rec["own input"] = w.read_available(0.3)
    w.close()
    return rec


def compare(m, c):
    for k in m:
        ck.eq(c.get(k), m[k], "watch %s" % k)


with Server() as cached, Server(MEMCACHED, kind="memcached") as mc:
    rm, rc = scenario(mc, "memcached"), scenario(cached, "cached")
    compare(rm, rc)
    if os.environ.get("SHOW_RECORDS"):
        for k, v in rm.items():
            print(k, v)

    # a closed watcher is unregistered; nothing streams to it any more
    w, _ = watch(cached, " fetchers")
    ck.eq(cached.stats().get("log_watchers"), "1", "log_watchers with one watcher")
    w.close()
    deadline = time.time() + 5
    while time.time() < deadline and cached.stats().get("log_watchers") != "0":
        time.sleep(0.05)
    ck.eq(cached.stats().get("log_watchers"), "0", "log_watchers after close")

    # other clients' replies are unchanged while a watcher of every class is attached
    with cached.connect() as c:
        before = []
        for cmd in [b"get foo\r\n", b"set q 0 0 1\r\n1\r\n", b"incr q 5\r\n", b"get q nope\r\n"]:
            c.send(cmd)
            before.append(c.read_available(0.2))
        w, _ = watch(cached, " fetchers mutations evictions")
        after = []
        for cmd in [b"get foo\r\n", b"set q 0 0 1\r\n1\r\n", b"incr q 5\r\n", b"get q nope\r\n"]:
            c.send(cmd)
            after.append(c.read_available(0.2))
        ck.eq(after, before, "replies with a watcher attached")
        w.close()

# A watcher that never reads: the server's memory stays bounded, lines are skipped and counted.
with Server(args=["-m", "64"]) as srv:
    s = socket.create_connection((srv.host, srv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
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

ck.done()
