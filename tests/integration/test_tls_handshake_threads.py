"""TLS handshakes run on handshake threads, one per worker, which hand each established
connection to its worker (server/worker.h).

- with -Z -t 2 there are two handshake threads (named cached-tls-hs), under SCHED_IDLE by
  default (ssl_handshake_priority=idle), at the process's nice + 5 with =low, as the workers
  with =normal; the other threads keep the process's policy and nice; without -Z none; a
  value other than idle/low/normal refuses to start (exit 64);
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
import subprocess
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


SCHED_OTHER, SCHED_IDLE = 0, 5


def sched_of(path):
    """(nice, policy) of a thread: fields 19 and 41 of /proc/PID/task/TID/stat."""
    with open(path) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[16]), int(fields[38])


def thread_scheds(pid):
    """{tid: (comm, nice, policy)} of the process's threads."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        base = "/proc/%d/task/%s/" % (pid, tid)
        try:
            with open(base + "comm") as f:
                comm = f.read().strip()
            out[tid] = (comm,) + sched_of(base + "stat")
        except (OSError, ValueError, IndexError):
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
    low = min(19, base + 5)
    want = {"idle": (base, SCHED_IDLE), "low": (low, SCHED_OTHER),
            "normal": (base, SCHED_OTHER), None: (base, SCHED_IDLE)}
    for prio in ("idle", "low", "normal", None):  # None: the default
        extra = "ssl_handshake_priority=%s" % prio if prio else ""
        with harness.Server(args=tlsutil.server_args(PKI, extra=extra) + ["-t", "2"]) as srv:
            def hs():
                return [v[1:] for v in thread_scheds(srv.pid).values() if v[0] == "cached-tls-hs"]
            # The thread lowers its own priority as it starts: poll.
            ok = wait_for(lambda: hs().count(want[prio]) == 2, 10)
            ts = thread_scheds(srv.pid)
            ck.check(ok, "%s: two handshake threads at (nice, policy) %s: %s"
                     % (prio or "default", want[prio], ts))
            others = [v for v in ts.values() if v[0] != "cached-tls-hs"]
            ck.check(len(others) >= 3 and all(v[1:] == (base, SCHED_OTHER) for v in others),
                     "%s: the other threads keep nice %d, SCHED_OTHER: %s"
                     % (prio or "default", base, others))
            if prio == "idle":
                with tlsutil.TLSConn("127.0.0.1", srv.port, tlsutil.client_ctx(PKI)) as c:
                    ck.eq(c.cmd(b"mn"), b"MN\r\n", "a handshake under SCHED_IDLE completes")
                    ck.eq(c.stats("settings").get("ssl_handshake_priority"), "idle",
                          "stats settings shows ssl_handshake_priority")
    with harness.Server(args=["-t", "2"]) as srv:
        wait_for(lambda: len(thread_scheds(srv.pid)) >= 3, 10)
        ts = thread_scheds(srv.pid)
        ck.check(all(v[0] != "cached-tls-hs" and v[1:] == (base, SCHED_OTHER)
                     for v in ts.values()), "no handshake threads without -Z (%s)" % ts)
    bad = subprocess.run([harness.CACHED, "-p", "0", "-Z", "-o",
                          tlsutil.server_args(PKI)[2] + ",ssl_handshake_priority=high"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    ck.eq(bad.returncode, 64, "ssl_handshake_priority=high refused (exit 64)")
    ck.check(b"idle, low, normal" in bad.stderr, "the message names the values: %r" % bad.stderr)


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
