"""Signals in the middle of heavy traffic (test_lifecycle sends them to an idle server).

Traffic: 4 clients looping sets of varied sizes and multi-gets of 500 KB values, 3 clients
that pipeline multi-gets and never read (their replies can never be delivered), and one
that sent half a 100 KB value and stalls. Then:
  - 50 SIGHUPs in a row: the server keeps serving, no client sees an error or a wrong reply;
  - SIGTERM, SIGINT, or SIGUSR1 (without -e: memcached's graceful stop): the process exits
    0 within 15 s even though the stuck clients can never be served, same as Debian's
    memcached 1.6.18 (run with the same traffic: the exit code and the bound are compared).
Replies the looping clients got are checked for shape all along (a reply that is neither
right nor a clean disconnect fails the test). The ASan build adds leak checks at exit.
"""
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, CACHED, MEMCACHED, Checker, Server  # noqa: E402

KEYS = [b"sig%d" % i for i in range(10)]
BIG = 500000
EXIT_BOUND_S = 15.0


def big_value(k):
    return k + b"=" + b"B" * (BIG - len(k) - 1)


class Traffic:
    def __init__(self, srv):
        self.srv = srv
        self.stop = threading.Event()
        self.bad = []
        self.ops = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.loop, args=(w,)) for w in range(4)]
        self.stuck = []

    def loop(self, w):
        try:
            with self.srv.connect(timeout=30) as c:
                i = 0
                while not self.stop.is_set() and i < 10 ** 6:
                    i += 1
                    v = b"%d-%d-" % (w, i) + b"x" * (i % 4000)
                    r = c.set("t%d_%d" % (w, i % 50), v)
                    if r != b"STORED\r\n":
                        self.bad.append(("set", r))
                        return
                    c.send(b"get t%d_%d " % (w, i % 50) + b" ".join(KEYS[:2]) + b"\r\n")
                    line = c.readline()
                    if line != b"VALUE t%d_%d 0 %d\r\n" % (w, i % 50, len(v)) or \
                            c.readexact(len(v) + 2)[:-2] != v:
                        self.bad.append(("get own", line[:60]))
                        return
                    for k in KEYS[:2]:
                        line = c.readline()
                        if line != b"VALUE %s 0 %d\r\n" % (k, BIG) or \
                                c.readexact(BIG + 2)[:-2] != big_value(k):
                            self.bad.append(("get big", line[:60]))
                            return
                    if c.readline() != b"END\r\n":
                        self.bad.append(("no END",))
                        return
                    with self.lock:
                        self.ops += 1
        except (OSError, ConnectionError):
            pass  # the server went away (it was told to): a clean disconnect is fine

    def start(self):
        with self.srv.connect() as c:
            for k in KEYS:
                c.send(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k, BIG, big_value(k)))
            c.cmd("mn")
        for t in self.threads:
            t.start()
        for _ in range(3):
            s = socket.create_connection((self.srv.host, self.srv.port), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.setblocking(False)
            try:
                for _ in range(200):
                    s.send(b"get " + b" ".join(KEYS) + b"\r\n")
            except BlockingIOError:
                pass
            self.stuck.append(s)
        s = socket.create_connection((self.srv.host, self.srv.port), timeout=10)
        s.sendall(b"set half 0 0 100000\r\n" + b"h" * 5000)
        self.stuck.append(s)

    def ops_now(self):
        with self.lock:
            return self.ops

    def wait_ops(self, more, timeout=30.0):
        want = self.ops_now() + more
        deadline = time.time() + timeout
        while self.ops_now() < want and time.time() < deadline and not self.bad:
            time.sleep(0.05)
        return self.ops_now() >= want

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)
        for s in self.stuck:
            s.close()


def run(ck, binary, tag, sig, hups):
    srv = Server(binary=binary, args=["-m", "64", "-t", "4"])
    tr = Traffic(srv)
    tr.start()
    ck.check(tr.wait_ops(20), "%s %s: traffic flows" % (tag, sig.name))
    if hups:
        for _ in range(50):
            os.kill(srv.pid, signal.SIGHUP)
        ck.check(tr.wait_ops(20), "%s: traffic flows after 50 SIGHUPs" % tag)
        ck.check(srv.proc.poll() is None, "%s: alive after 50 SIGHUPs" % tag)
        ck.eq(tr.bad, [], "%s: no wrong reply around the SIGHUPs" % tag)
    t0 = time.time()
    os.kill(srv.pid, sig)
    try:
        rc = srv.proc.wait(EXIT_BOUND_S * (3 if ASAN else 1))
    except Exception:
        rc = None
    took = time.time() - t0
    tr.finish()
    srv.stop()  # collects stderr (sanitizer reports fail the test here)
    print("%s: %s under traffic: exit %s after %.2f s (%d ops done)" %
          (tag, sig.name, rc, took, tr.ops_now()))
    ck.eq(tr.bad, [], "%s %s: no wrong reply" % (tag, sig.name))
    return rc


def main():
    ck = Checker("test_fault_signals")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        want = run(ck, MEMCACHED, "memcached", sig, hups=False)
        got = run(ck, CACHED, "cached", sig, hups=(sig == signal.SIGTERM))
        ck.eq(got, want, "%s under traffic: exit code as memcached's" % sig.name)
        ck.eq(got, 0, "%s under traffic: exits 0 within %.0f s" % (sig.name, EXIT_BOUND_S))
    ck.done()


if __name__ == "__main__":
    main()
