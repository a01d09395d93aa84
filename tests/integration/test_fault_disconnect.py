"""Clients that vanish in the middle of something, beyond test_abuse's mid-value case:
  - mid-reply: a multi-get of 20 values of 256 KB (text get, meta mg, binary GETKQ+NOOP),
    the client reads a few KB of the reply and then closes (FIN) or resets (RST);
  - mid-multiget line: half of a 300-key get line, then gone;
  - mid-pipeline: 500 pipelined sets with noreply and a get at the end, cut at a random byte;
  - half-close: requests then shutdown(SHUT_WR): every reply is delivered before the close
    (a get and 10 mg of 1.5 MB values, 5 pipelined gets: byte counts as memcached's);
  - TLS: the same mid-reply cut over TLS, and a TLS record cut in half (the client writes a
    set whose record stops mid-way, then closes or resets), and a handshake cut short.
Each round runs 40 such clients at once (plain, or all TLS against -Z). Then: the server is alive, its
curr_connections comes back to where it was (nothing leaked), the stored values are intact, a
new client is served, and (release build) RSS is back within 24 MB of the baseline. The plain
rounds run against Debian's memcached 1.6.18 too, with the same assertions. SIGTERM must exit
0; under the ASan build the harness fails on any sanitizer (and leak) report at exit.
"""
import os
import random
import socket
import ssl
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import tlsutil  # noqa: E402
from harness import ASAN, CACHED, MEMCACHED, Checker, Server  # noqa: E402

VALUE = 256 * 1024
KEYS = [b"dv%d" % i for i in range(20)]
CLIENTS = 40
RSS_SLACK_KB = 24 * 1024


def value_of(k):
    return k + b":" + bytes([65 + int(k[2:]) % 26]) * (VALUE - len(k) - 1)


def bin_req(op, key=b"", extra=b"", val=b""):
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extra), 0, 0,
                       len(key) + len(extra) + len(val), 0, 0) + extra + key + val


def cut(s, rnd):
    if rnd.random() < 0.5:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def plain_client(srv, kind, rnd):
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    if kind == "get":
        s.sendall(b"get " + b" ".join(KEYS) + b"\r\n")
    elif kind == "mg":
        s.sendall(b"".join(b"mg %s v f k\r\n" % k for k in KEYS) + b"mn\r\n")
    elif kind == "bin":
        s.sendall(b"".join(bin_req(0x0d, k) for k in KEYS) + bin_req(0x0a))
    elif kind == "line":
        line = b"get " + b" ".join(b"dv%d" % (i % 20) for i in range(300)) + b"\r\n"
        s.sendall(line[:rnd.randrange(5, len(line) - 2)])
        return s
    elif kind == "pipe":
        data = b"".join(b"set pp%d 0 0 %d noreply\r\n%s\r\n" % (i, 100 + i, b"p" * (100 + i))
                        for i in range(500)) + b"get " + b" ".join(KEYS) + b"\r\n"
        s.sendall(data[:rnd.randrange(1, len(data))])
        return s
    got = 0
    while got < rnd.randrange(1, 64 * 1024):
        chunk = s.recv(4096)
        if not chunk:
            break
        got += len(chunk)
    return s


def tls_handshake_bio(ctx, host, port):
    """A finished handshake over memory BIOs: (raw socket, SSLObject, outgoing BIO)."""
    raw = socket.create_connection((host, port), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    for _ in range(50):
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = out.read()
            if pending:
                raw.sendall(pending)
            data = raw.recv(65536)
            if not data:
                raise ConnectionError("closed during handshake")
            inc.write(data)
    pending = out.read()
    if pending:
        raw.sendall(pending)
    return raw, obj, out


def tls_client(srv, ctx, kind, rnd):
    if kind == "handshake":
        raw = socket.create_connection((srv.host, srv.port), timeout=10)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = out.read()
        raw.sendall(hello[:rnd.randrange(1, len(hello))])
        return raw
    raw, obj, out = tls_handshake_bio(ctx, srv.host, srv.port)
    if kind == "record":
        obj.write(b"set tr%d 0 0 60000\r\n" % rnd.randrange(1000) + b"r" * 60000 + b"\r\n")
        data = out.read()
        raw.sendall(data[:rnd.randrange(1, len(data))])
        return raw
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    obj.write(b"get " + b" ".join(KEYS) + b"\r\n")
    raw.sendall(out.read())
    got = 0
    while got < rnd.randrange(1, 64 * 1024):
        chunk = raw.recv(4096)
        if not chunk:
            break
        got += len(chunk)
    return raw


def connect(srv, tls):
    if tls:
        return tlsutil.TLSConn(srv.host, srv.port, tls[1])
    return srv.connect()


def curr_conns(srv, tls):
    with connect(srv, tls) as c:
        return int(c.stats()["curr_connections"])


def base_conns(srv, tls):
    """curr_connections as one client sees it once earlier clients are closed (polled: a
    close reaches the server a moment after the client's)."""
    n = curr_conns(srv, tls)
    for _ in range(10):
        time.sleep(0.1)
        n = min(n, curr_conns(srv, tls))
    return n


def settle_conns(srv, tls, want, timeout=30.0):
    """Polls until curr_connections (seen from one more client) is back to want."""
    deadline = time.time() + timeout
    n = curr_conns(srv, tls)
    while n != want and time.time() < deadline:
        time.sleep(0.2)
        n = curr_conns(srv, tls)
    return n


def intact(srv, tls):
    with connect(srv, tls) as c:
        c.send(b"get " + b" ".join(KEYS) + b"\r\n")
        for k in KEYS:
            line = c.readline()
            if line != b"VALUE %s 0 %d\r\n" % (k, VALUE):
                return False
            if c.readexact(VALUE + 2)[:-2] != value_of(k):
                return False
        return c.readline() == b"END\r\n"


def scenario(ck, binary, tag, tls=None):
    args = ["-m", "64", "-t", "4"] + (tlsutil.server_args(tls[0]) if tls else [])
    srv = Server(binary=binary, args=args)
    try:
        scenario_on(ck, srv, tag, tls)
    finally:
        if srv.proc.poll() is None and srv.pid > 0:  # an exception left it running
            srv.proc.kill()
            srv.proc.wait()


def scenario_on(ck, srv, tag, tls):
    rnd = random.Random(11)
    with connect(srv, tls) as c:
        for k in KEYS:
            c.send(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k, VALUE, value_of(k)))
        c.cmd("mn")
    base = base_conns(srv, tls)
    time.sleep(0.3)
    base_rss = srv.rss_kb()
    kinds = ["get", "mg", "bin", "line", "pipe"]
    tls_kinds = ["reply", "record", "handshake"]
    for rnd_i in range(3):
        socks = []
        for i in range(CLIENTS):
            try:
                if tls:
                    socks.append(tls_client(srv, tls[1], tls_kinds[i % len(tls_kinds)], rnd))
                else:
                    socks.append(plain_client(srv, kinds[i % len(kinds)], rnd))
            except (OSError, ssl.SSLError) as e:
                print("%s: client %d: %r" % (tag, i, e))
        if rnd_i == 0:
            print("%s: %d clients cut mid-way per round" % (tag, len(socks)))
        ck.check(len(socks) >= CLIENTS, "%s: the clients got going (%d)" % (tag, len(socks)))
        for s in socks:
            cut(s, rnd)
        ck.check(srv.proc.poll() is None, "%s: alive after round %d" % (tag, rnd_i))
    n = settle_conns(srv, tls, base)
    ck.eq(n, base, "%s: curr_connections back to where it was" % tag)
    ck.check(intact(srv, tls), "%s: stored values intact" % tag)
    with connect(srv, tls) as c:
        ck.eq(c.set("after", "1"), b"STORED\r\n", "%s: a new client is served" % tag)
    if not ASAN:
        deadline = time.time() + 20
        rss = srv.rss_kb()
        while rss - base_rss > RSS_SLACK_KB and time.time() < deadline:
            time.sleep(0.5)
            rss = srv.rss_kb()
        print("%s: RSS %.1f MB -> %.1f MB" % (tag, base_rss / 1024, rss / 1024))
        ck.check(rss - base_rss <= RSS_SLACK_KB, "%s: RSS back near the baseline (%+.1f MB)"
                 % (tag, (rss - base_rss) / 1024))
    ck.eq(srv.stop(timeout=30), 0, "%s: SIGTERM exits 0" % tag)


def half_close(binary):
    """Requests, then shutdown(SHUT_WR): the bytes of reply received before the close."""
    out = []
    with Server(binary=binary, args=["-m", "64", "-I", "2m"]) as srv:
        keys = [b"hc%d" % i for i in range(10)]
        with srv.connect() as c:
            for k in keys:
                c.send(b"set %s 0 0 1500000 noreply\r\n%s\r\n" % (k, b"H" * 1500000))
            c.cmd("mn")
        for req in (b"get " + b" ".join(keys) + b"\r\n",
                    b"".join(b"mg %s v\r\n" % k for k in keys),
                    (b"get " + b" ".join(keys) + b"\r\n") * 5):
            s = socket.create_connection((srv.host, srv.port), timeout=30)
            s.sendall(req)
            s.shutdown(socket.SHUT_WR)
            got = 0
            deadline = time.time() + 30
            while time.time() < deadline:
                d = s.recv(1 << 20)
                if not d:
                    break
                got += len(d)
            s.close()
            out.append(got)
    return out


def main():
    ck = Checker("test_fault_disconnect")
    # A client that half-closes after its requests gets every reply, then the close (cached
    # used to close at the EOF and cut a 15 MB multi-get mid-value).
    want = half_close(MEMCACHED)
    ck.eq(half_close(CACHED), want, "half-close: every reply byte before the close, as memcached")
    scenario(ck, MEMCACHED, "memcached")
    scenario(ck, CACHED, "cached")
    tmp = tempfile.mkdtemp(prefix="cached-fault-tls-")
    pki = tlsutil.make_pki(tmp)
    ctx = tlsutil.client_ctx(pki)
    scenario(ck, CACHED, "cached TLS", tls=(pki, ctx))
    ck.done()


if __name__ == "__main__":
    main()
