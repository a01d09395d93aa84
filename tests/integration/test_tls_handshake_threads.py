"""TLS handshakes run on handshake threads, one per worker, which hand each established
connection to its worker (server/worker.h).

- with -Z -t 2 there are two handshake threads, at the process's nice + 5; without -Z none;
- a request sent in the same write as the client's Finished (so it arrives decrypted inside
  OpenSSL, where epoll cannot see it, when the connection changes threads) is answered;
- many short connections (connect, one request, close) are all answered, across both
  workers, and the counters come back;
- SIGTERM while handshakes are in flight and established connections are open: a clean
  exit (0) and, under ASan, no leak of a connection between threads.
"""
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))

import harness  # noqa: E402
import tlsutil  # noqa: E402

ck = harness.Checker("test_tls_handshake_threads")
TMP = tempfile.mkdtemp(prefix="cached-hsthreads-")
PKI = tlsutil.make_pki(TMP)


def nice_of(path):
    with open(path) as f:
        stat = f.read()
    return int(stat[stat.rindex(")") + 2:].split()[16])  # field 19: nice


def thread_nices(pid):
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            out.append(nice_of("/proc/%d/task/%s/stat" % (pid, tid)))
        except (OSError, ValueError):
            pass
    return out


def wait_for(cond, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def check_threads():
    base = os.nice(0)
    want = min(19, base + 5)
    with harness.Server(args=tlsutil.server_args(PKI) + ["-t", "2"]) as srv:
        ok = wait_for(lambda: thread_nices(srv.pid).count(want) >= 2, 10)
        nices = thread_nices(srv.pid)
        if base + 5 <= 19:
            ck.eq(nices.count(want), 2, "two handshake threads at nice %d (%s)" % (want, nices))
            ck.check(ok, "handshake threads found")
        ck.eq(nices.count(base), len(nices) - 2, "the other threads keep nice %d" % base)
    with harness.Server(args=["-t", "2"]) as srv:
        wait_for(lambda: len(thread_nices(srv.pid)) >= 3, 10)
        nices = thread_nices(srv.pid)
        ck.check(all(n == base for n in nices), "no handshake threads without -Z (%s)" % nices)


def request_with_finished(port, ctx, req, want):
    """Handshake through memory BIOs; the client's Finished and the request leave in one
    write. Returns what the server answered, up to `want`."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    for _ in range(20):
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            data = out.read()
            if data:
                s.sendall(data)
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            inc.write(chunk)
    obj.write(req)
    s.sendall(out.read())
    got = b""
    deadline = time.time() + 10
    while want not in got and time.time() < deadline:
        try:
            got += obj.read(65536)
            continue
        except ssl.SSLWantReadError:
            pass
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break  # the request was never answered: the check below fails
        if not chunk:
            break
        inc.write(chunk)
    s.close()
    return got


def both_stats(c):
    """`stats` and `stats cached` (where the handshake counters are) in one dict."""
    return {**c.stats(), **c.stats("cached")}


def tls_stats(srv, ctx):
    with tlsutil.TLSConn("127.0.0.1", srv.port, ctx) as c:
        return both_stats(c)


def check_handover():
    ctx = tlsutil.client_ctx(PKI)
    with harness.Server(args=tlsutil.server_args(PKI) + ["-t", "2"]) as srv:
        with tlsutil.TLSConn("127.0.0.1", srv.port, ctx) as c:
            c.cmd(b"set k 0 0 5\r\nhello")
            st0 = both_stats(c)  # the harness's port probe counts as one failed handshake
        for i in range(6):  # both workers get some
            got = request_with_finished(srv.port, ctx, b"get k\r\nmn\r\n", b"MN\r\n")
            ck.eq(got, b"VALUE k 0 5\r\nhello\r\nEND\r\nMN\r\n",
                  "request in the Finished flight answered (%d)" % i)

        n = 60 if harness.ASAN else 200
        answered = 0
        for i in range(n):
            with tlsutil.TLSConn("127.0.0.1", srv.port, ctx) as c:
                if c.cmd(b"mn") == b"MN\r\n":
                    answered += 1
        ck.eq(answered, n, "short connections answered")
        # The stats connection itself is the one left.
        ok = wait_for(lambda: tls_stats(srv, ctx).get("curr_connections") == "1", 10)
        st = tls_stats(srv, ctx)
        ck.check(ok, "connections back to 1: %s" % st.get("curr_connections"))
        ck.check(int(st["ssl_full_handshakes"]) - int(st0["ssl_full_handshakes"]) >= n + 6,
                 "full handshakes counted: %s" % st["ssl_full_handshakes"])
        ck.eq(st["ssl_handshake_errors"], st0["ssl_handshake_errors"], "no handshake errors")
        ck.eq(st["threads"], "2", "stats threads is -t")


def check_shutdown():
    ctx = tlsutil.client_ctx(PKI)
    srv = harness.Server(args=tlsutil.server_args(PKI) + ["-t", "2"])
    try:
        est = [tlsutil.TLSConn("127.0.0.1", srv.port, ctx) for _ in range(10)]
        for c in est:
            ck.eq(c.cmd(b"mn"), b"MN\r\n", "established before the stop")
        half = []
        for _ in range(30):  # handshakes in flight: a TCP connection, no ClientHello yet
            half.append(socket.create_connection(("127.0.0.1", srv.port), timeout=10))
        time.sleep(0.2)
        rc = srv.stop(timeout=20)
        ck.eq(rc, 0, "clean exit with handshakes in flight")
        for s in half:
            s.close()
        for c in est:
            c.close()
    finally:
        if srv.proc.poll() is None:
            srv.stop()


try:
    check_threads()
    check_handover()
    check_shutdown()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
ck.done()
