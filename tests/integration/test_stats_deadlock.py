"""Regression: several workers answering `stats` at the same time must not deadlock.

A `stats` command ran with its worker's stats lock held and then took the other workers'
locks to sum them; two workers doing so at once waited on each other forever (ABBA), and the
server stopped answering (seen once as a valgrind run that hung). Many clients, spread over
all worker threads, now send `stats`, `stats reset` and ordinary commands at once; every reply
must arrive within a bounded time, and the server must still answer and exit on SIGTERM.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, Checker, Server  # noqa: E402

CLIENTS = 8
ROUNDS = 60 if ASAN else 200


def main():
    ck = Checker("stats_deadlock")
    with Server(args=["-t", "4"]) as srv:
        done = []
        errors = []

        def client(n):
            try:
                with srv.connect(timeout=20) as c:
                    for i in range(ROUNDS):
                        st = c.stats()
                        if "curr_connections" not in st:
                            errors.append("client %d: stats without curr_connections" % n)
                            return
                        if i % 50 == 49:
                            c.send("stats reset\r\n")
                            if c.readline() != b"RESET\r\n":
                                errors.append("client %d: stats reset" % n)
                                return
                        if c.set("k%d" % n, "v%d" % i) != b"STORED\r\n":
                            errors.append("client %d: set" % n)
                            return
                done.append(n)
            except Exception as e:  # noqa: BLE001 - a timeout here is the bug
                errors.append("client %d: %r" % (n, e))

        t0 = time.time()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        ck.eq(errors, [], "no client failed or timed out")
        ck.eq(len(done), CLIENTS, "every client finished")
        print("%d clients x %d stats in %.1f s" % (CLIENTS, ROUNDS, time.time() - t0))
        try:
            with srv.connect(timeout=10) as c:
                ck.check(c.cmd("version").startswith(b"VERSION "), "server still answers")
        except OSError as e:
            ck.check(False, "server still answers: %r" % e)
        ck.eq(srv.stop(), 0, "exit 0 on SIGTERM")
    ck.done()


if __name__ == "__main__":
    main()
