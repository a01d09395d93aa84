"""The admin commands clients call and the stats layout, against Debian's memcached 1.6.18.

- `stats`, `stats settings`, `stats items`, `stats slabs`: memcached's keys in memcached's order
  (cached's own extra keys only after them; extstore's settings excepted: cached has none).
- `stats slabs` per-class get_hits/cmd_set/delete_hits/incr_hits/decr_hits/cas_hits/
  cas_badval/touch_hits count what was done to that class; empty classes are not listed.
- `stats cachedump <class> <limit>`: the ITEM line format, limits and errors.
- `cache_memlimit`: memcached's replies; growing lets more be stored at once.
- `stats detail on|off|dump`: memcached's PREFIX lines.
- `stats conns`: conn_nread for a client part-way through a value; unix-socket listen_addr.
- -X refuses stats cachedump and lru_crawler metadump with memcached's replies.
- absolute exptime = now + 1 is there when read at once, at any phase of the second.
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import MEMCACHED, Checker, Server  # noqa: E402

ck = Checker("admin_stats")


def keys(conn, group):
    conn.send(("stats %s" % group).strip() + "\r\n")
    out = []
    while True:
        line = conn.readline().decode()
        if line == "END\r\n":
            return out
        out.append(line.split(" ")[1])


def norm(k):
    # class numbers differ (cached's classes are finer): compare the field names
    parts = k.split(":")
    return ":".join("N" if p.isdigit() else p for p in parts)


def check_layout(cached, mc):
    for group in ("", "settings", "items", "slabs"):
        with cached.connect() as c, mc.connect() as m:
            for conn in (c, m):
                conn.set("a", "x")
                conn.get("a")
            kc = [norm(k) for k in keys(c, group)]
            km = [norm(k) for k in keys(m, group)]
            if group == "settings":
                km = [k for k in km if not k.startswith("ext_") and k != "slab_automove_freeratio"]
            ck.eq(kc[:len(km)], km, "stats %s: memcached's keys in memcached's order" % group)
            ck.check(len(set(kc)) == len(kc), "stats %s: no key twice" % group)


def check_classes(srv):
    with srv.connect() as c:
        c.set("k1", "5")
        c.get("k1")
        c.get("k1")
        c.cmd("incr k1 2")
        c.cmd("decr k1 1")
        c.cmd("touch k1 100")
        c.send("gets k1\r\n")
        cas = int(c.readline().split()[4])
        c.readline(), c.readline()
        c.send("cas k1 0 0 1 %d\r\n7\r\n" % cas)
        ck.eq(c.readline(), b"STORED\r\n", "cas stored")
        c.send("cas k1 0 0 1 %d\r\n8\r\n" % cas)
        ck.eq(c.readline(), b"EXISTS\r\n", "cas exists")
        c.cmd("delete k1")
        st = c.stats("slabs")
        cls = [k.split(":")[0] for k in st if k.endswith(":chunk_size")]
        ck.check(len(cls) >= 1, "a class is listed")
        tot = {f: sum(int(st["%s:%s" % (i, f)]) for i in cls)
               for f in ("get_hits", "cmd_set", "delete_hits", "incr_hits", "decr_hits",
                         "cas_hits", "cas_badval", "touch_hits", "free_chunks_end")}
        ck.eq(tot, {"get_hits": 3, "cmd_set": 3, "delete_hits": 1, "incr_hits": 1,
                    "decr_hits": 1, "cas_hits": 1, "cas_badval": 1, "touch_hits": 1,
                    "free_chunks_end": 0}, "per-class counters")
        items = c.stats("items")
        ck.check(not any(k.endswith(":number") and v == "0" for k, v in items.items()),
                 "stats items lists no empty class")


def conversation(srv):
    out = []
    with srv.connect() as c:
        for line in (b"set ck1 0 0 3\r\nabc\r\n", b"set ck2 5 0 10\r\n0123456789\r\n"):
            c.send(line)
            c.readline()
        for cmd in ("stats cachedump 1", "stats cachedump x 1", "stats cachedump -1 0",
                    "stats cachedump 64 0", "stats cachedump 0 0", "stats cachedump 63 0",
                    "cache_memlimit", "cache_memlimit 7", "cache_memlimit 100 noreply",
                    "cache_memlimit 100 x", "cache_memlimit abc", "cache_memlimit 2000000000",
                    "cache_memlimit 8", "cache_memlimit 64", "cache_memlimit 64 1 2",
                    "stats detail", "stats detail dump", "stats detail on",
                    "set foo:1 0 0 2\r\nab", "get foo:1 foo:2", "delete foo:3",
                    "stats detail dump", "stats detail off", "get foo:1", "stats detail dump",
                    "stats reset", "stats detail dump"):
            c.send(cmd + "\r\n")
            out.append((cmd, c.read_available(0.15)))
    return out


def check_cachedump(srv):
    with srv.connect() as c:
        c.send(b"set dumpme 0 0 4\r\nabcd\r\nset dump2 0 %d 2\r\nab\r\n" % (int(time.time()) + 500))
        c.readline(), c.readline()
        st = c.stats("items")
        found = {}
        for k in st:
            if k.endswith(":number"):
                cls = k.split(":")[1]
                c.send("stats cachedump %s 0\r\n" % cls)
                for line in c.read_until().decode().split("\r\n"):
                    if line.startswith("ITEM "):
                        found[line.split()[1]] = line
        ck.eq(found.get("dumpme"), "ITEM dumpme [4 b; 0 s]", "cachedump line")
        ck.check(found.get("dump2", "").startswith("ITEM dump2 [2 b; 1"), "cachedump exptime")
        cls = [k.split(":")[1] for k in st if k.endswith(":number")][0]
        c.send("stats cachedump %s 1\r\n" % cls)
        ck.eq(c.read_until().count(b"ITEM "), 1, "cachedump limit 1")


def check_memlimit(srv):
    with srv.connect() as c:
        big = "x" * 500000
        stored = sum(c.set("m%d" % i, big) == b"STORED\r\n" for i in range(40))
        ev = int(c.stats()["evictions"])
        ck.check(ev > 0, "-m 8 evicts (%d evictions)" % ev)
        ck.eq(c.cmd("cache_memlimit 64"), b"OK\r\n", "grow")
        before = int(c.stats()["evictions"])
        for i in range(40):
            c.set("n%d" % i, big)
        ck.eq(int(c.stats()["evictions"]), before, "after growing to 64 MB, 20 MB more evict nothing")
        ck.eq(c.stats("settings")["maxbytes"], str(64 << 20), "maxbytes follows")
        ck.eq(c.cmd("cache_memlimit 8"), b"OK\r\n", "shrink answers OK")
        ck.check(c.get("n39") is not None, "shrinking keeps what is stored")
        ck.eq(c.stats()["limit_maxbytes"], str(8 << 20), "limit_maxbytes follows")
        del stored


def check_nread(srv):
    with srv.connect() as a, srv.connect() as b:
        a.send("set part 0 0 100\r\n0123456789")
        for _ in range(40):  # bounded: the server may be slow to read under load
            time.sleep(0.25)
            b.send("stats conns\r\n")
            text = b.read_until().decode()
            if "conn_nread" in text:
                break
        ck.check("conn_nread" in text, "stats conns shows conn_nread mid-value")
        ck.check("listen_addr tcp:127.0.0.1:%d" % srv.port in text, "listen_addr")


def check_unix_listen_addr():
    path = "/tmp/cached-admin-%d.sock" % os.getpid()
    args = ["-s", path]
    if os.geteuid() == 0:
        args.append("--run-as-root")
    import subprocess
    p = subprocess.Popen([os.environ.get("CACHED", "build/cached")] + args,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(path):
                break
            time.sleep(0.05)
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        s.sendall(b"stats conns\r\n")
        data = b""
        deadline = time.time() + 5
        while not data.endswith(b"END\r\n") and time.time() < deadline:
            data += s.recv(4096)
        s.close()
        ck.check(b":listen_addr unix:%s\r\n" % path.encode() in data, "unix listen_addr")
    finally:
        p.terminate()
        p.wait(10)


def check_abs_expiry(srv):
    # exptime = now + 1 (absolute) set at ten phases of the second: there when read at once.
    with srv.connect() as c:
        misses = 0
        for i in range(10):
            t = time.time()
            time.sleep((i / 10.0 - (t % 1.0)) % 1.0)
            now = int(time.time())
            c.set("abs%d" % i, "v", exptime=now + 1)
            if c.get("abs%d" % i) is None:
                misses += 1
        ck.eq(misses, 0, "exptime now+1 read at once (10 phases of the second)")


def check_ports_file():
    # -p -1 (a port the kernel picks) and MEMCACHED_PORT_FILENAME, as memcached's issue_67.t
    import subprocess
    path = "/tmp/cached-ports-%d" % os.getpid()
    env = dict(os.environ, MEMCACHED_PORT_FILENAME=path)
    args = [os.environ.get("CACHED", "build/cached"), "-p", "-1", "-l", "127.0.0.1"]
    if os.geteuid() == 0:
        args.append("--run-as-root")
    p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(path):
                break
            time.sleep(0.05)
        with open(path) as f:
            lines = f.read().splitlines()
        ck.eq(len(lines), 1, "ports file: one line")
        port = int(lines[0].split(": ")[1]) if lines and lines[0].startswith("TCP INET: ") else 0
        ck.check(port > 0, "ports file: TCP INET: <port> (%r)" % lines)
        s = socket.create_connection(("127.0.0.1", port), 5)
        s.sendall(b"version\r\n")
        ck.check(s.recv(100).startswith(b"VERSION "), "-p -1: serves on the port it wrote")
        s.close()
    finally:
        p.terminate()
        p.wait(10)
        if os.path.exists(path):
            os.unlink(path)


def check_port_zero():
    # -p 0 without -s: memcached runs listening on nothing; so does cached (with a warning)
    import subprocess
    args = [os.environ.get("CACHED", "build/cached"), "-p", "0"]
    if os.geteuid() == 0:
        args.append("--run-as-root")
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    ck.check(p.poll() is None, "-p 0 without -s: still running")
    p.terminate()
    _, err = p.communicate(timeout=10)
    ck.check(b"nothing to listen on" in err, "-p 0 without -s: says so")


def check_binding():
    # -B ascii: a binary request is read as text; -B binary: a text command closes. Same bytes
    # in, same bytes out as memcached -B.
    noop = bytes([0x80, 0x0a] + [0] * 22) + b"\r\n"
    for mode, data in (("ascii", noop), ("binary", b"version\r\n")):
        with Server(args=["-B", mode]) as cached, \
                Server(MEMCACHED, args=["-B", mode], kind="memcached") as mc:
            got = []
            for srv in (cached, mc):
                s = socket.create_connection(("127.0.0.1", srv.port), 5)
                s.sendall(data)
                s.settimeout(1.0)
                out = b""
                try:
                    while True:
                        d = s.recv(4096)
                        if not d:
                            out += b"<closed>"
                            break
                        out += d
                except socket.timeout:
                    pass
                s.close()
                got.append(out)
            ck.eq(got[0], got[1], "-B %s: same reply as memcached" % mode)


def main():
    with Server(args=["-m", "8"]) as cached, Server(MEMCACHED, kind="memcached") as mc:
        check_layout(cached, mc)
        rc, rm = conversation(cached), conversation(mc)
        for (cmd, got), (_, want) in zip(rc, rm):
            ck.eq(got, want, "same reply to %r" % cmd)
    with Server() as srv:
        check_classes(srv)
        check_cachedump(srv)
        check_nread(srv)
        check_abs_expiry(srv)
    with Server(args=["-m", "8"]) as srv:
        check_memlimit(srv)
    check_unix_listen_addr()
    # debugtime: ERROR as in a release memcached; with --debug-hooks it moves the clock.
    with Server() as srv, srv.connect() as c:
        ck.eq(c.cmd("debugtime 5"), b"ERROR\r\n", "debugtime without --debug-hooks")
    with Server(args=["--debug-hooks"]) as srv, srv.connect() as c:
        c.set("soon", "v", exptime=3)
        ck.check(c.get("soon") is not None, "debugtime: there before")
        ck.eq(c.cmd("debugtime 4"), b"OK\r\n", "debugtime 4")
        ck.check(c.get("soon") is None, "debugtime: expired after 4 s moved")
    check_ports_file()
    check_port_zero()
    check_binding()
    # -X: the dump commands are refused, as memcached -X refuses them.
    with Server(args=["-X"]) as cached, Server(MEMCACHED, args=["-X"], kind="memcached") as mc:
        for cmd in ("stats cachedump 1 0", "lru_crawler metadump all"):
            with cached.connect() as c, mc.connect() as m:
                ck.eq(c.cmd(cmd), m.cmd(cmd), "-X: %s" % cmd)
    ck.done()


main()
