"""Workers accept on their own listening sockets (issue 18, server/listen.h "per worker").

Each worker owns one SO_REUSEPORT socket per TCP address and accepts there, instead of a
listener thread handing every connection over. What users see must not change:
  - many short connections (the Django pattern) across -t 4 workers, on IPv4 and IPv6, are all
    served, and `stats` counts them (total_connections, curr_connections);
  - -c is respected with several threads accepting at once: never more than -c open, the rest
    get memcached's "ERROR Too many open connections" and count in rejected_connections, and
    the slots come back when clients leave;
  - a port in use is refused (exit 71, "Address already in use") exactly as before, whether
    another cached, a plain socket or an SO_REUSEPORT socket holds it, and the running server
    is not disturbed; -p -1 (kernel-picked port) still works with -t 4;
  - `stats conns` shows one listening entry per address, and after `shutdown` new connections
    are refused while the process exits 0.
"""
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import (ASAN, CACHED, Checker, Server, free_port, set_get_round,  # noqa: E402
                     wait_port)

ck = Checker("accept_workers")
WAIT = 30 if ASAN else 10
ROOT_ARGS = ["--run-as-root"] if os.geteuid() == 0 else []


def django_round(host, port, i):
    """connect, set, multi-get, close: True when every reply was right."""
    return set_get_round(host, port, b"k%d" % i, b"ok", WAIT, miss=b"nokey")


def stat(c, name):
    return int(c.stats()[name])


def test_many_short_connections():
    n = 200 if ASAN else 400
    with Server(args=["-t", "4", "-l", "::1"]) as srv:
        wait_port(srv.port, "::1", timeout=WAIT)
        sc = srv.connect()  # one stats connection: its own open and close never interfere
        # wait_port's probes may still sit in another worker's accept queue: let them land
        # (curr_connections counts the listening sockets as memcached does: take its level)
        before = base_curr = -1
        deadline = time.time() + WAIT
        while time.time() < deadline:
            st = sc.stats()
            now, curr = int(st["total_connections"]), int(st["curr_connections"])
            if now == before and curr == base_curr:
                break
            before, base_curr = now, curr
            time.sleep(0.3)
        results = []
        lock = threading.Lock()

        def client(t):
            ok = 0
            for i in range(t, n, 8):
                host = "::1" if i % 2 else "127.0.0.1"
                ok += django_round(host, srv.port, i)
            with lock:
                results.append(ok)

        threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        ck.eq(sum(results), n, "every short connection served (IPv4 and IPv6, -t 4)")
        after = stat(sc, "total_connections")
        ck.eq(after - before, n, "total_connections counts each accepted connection")
        deadline = time.time() + WAIT
        while time.time() < deadline and stat(sc, "curr_connections") != base_curr:
            time.sleep(0.05)
        ck.eq(stat(sc, "curr_connections"), base_curr, "curr_connections back to its level")
        conns = sc.stats("conns")
        listening = sorted(v for k, v in conns.items() if k.endswith(":state") and
                           v == "conn_listening")
        ck.eq(len(listening), 2, "stats conns: one listening entry per address (v4, v6)")
        ck.eq(stat(sc, "threads"), 4, "threads 4")
        sc.close()
        ck.eq(srv.stop(), 0, "clean exit")


def test_maxconns():
    limit = 10
    with Server(args=["-t", "4", "-c", str(limit)]) as srv:
        wait_port(srv.port, timeout=WAIT)
        sc = srv.connect()  # holds one of the -c slots for the whole test
        deadline = time.time() + WAIT
        while time.time() < deadline and stat(sc, "curr_connections") != 1:
            time.sleep(0.05)  # wait_port's probe has gone
        socks = []
        for _ in range(3 * limit):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
            socks.append(s)
        served = rejected = 0
        for s in socks:
            s.sendall(b"version\r\n")
            buf = b""
            try:
                while b"\r\n" not in buf:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
            except ConnectionResetError:
                pass
            if buf.startswith(b"VERSION "):
                served += 1
            elif buf.startswith(b"ERROR Too many open connections"):
                rejected += 1
        ck.eq(served, limit - 1, "exactly -c connections open (the stats one too), 4 workers")
        ck.eq(rejected, 2 * limit + 1, "the others told 'ERROR Too many open connections'")
        # (curr_connections below: memcached's, the listening socket counted, minus one)
        for s in socks:
            s.close()
        deadline = time.time() + WAIT
        st = sc.stats()
        while time.time() < deadline and st.get("curr_connections") != "1":
            time.sleep(0.05)
            st = sc.stats()
        ck.eq(st.get("curr_connections"), "1", "slots come back when the clients leave")
        ck.check(int(st.get("rejected_connections", "0")) == 2 * limit + 1,
                 "rejected_connections counts them (%s)" % st.get("rejected_connections"))
        ck.eq(st.get("max_connections"), str(limit), "max_connections")
        ck.eq(st.get("accepting_conns"), "1", "accepting_conns")
        ck.eq(st.get("listen_disabled_num"), "0", "listen_disabled_num")
        ck.check(django_round("127.0.0.1", srv.port, 1), "served again after the burst")
        sc.close()
        ck.eq(srv.stop(), 0, "clean exit")


def start_fails(port, extra=()):
    p = subprocess.run([CACHED, "-p", str(port), "-l", "127.0.0.1", "-t", "4"] + list(extra) +
                       ROOT_ARGS, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=WAIT * 3)
    return p.returncode, p.stderr.decode(errors="replace")


def test_port_in_use():
    with Server(args=["-t", "4"]) as srv:
        rc, err = start_fails(srv.port)
        ck.eq(rc, 71, "a second cached -t 4 on the same port exits 71")
        ck.check("Address already in use" in err, "and says the address is in use")
        ck.check(django_round("127.0.0.1", srv.port, 7), "the first one still serves")
        ck.eq(srv.stop(), 0, "clean exit")
    for reuseport in (False, True):
        with socket.socket() as holder:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuseport:
                holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            holder.bind(("127.0.0.1", 0))
            holder.listen(4)
            port = holder.getsockname()[1]
            rc, err = start_fails(port)
            what = "an SO_REUSEPORT socket" if reuseport else "a plain socket"
            ck.eq(rc, 71, "a port %s holds is refused (exit 71)" % what)
            ck.check("Address already in use" in err, "... 'Address already in use' (%s)" % what)


def test_ephemeral_port():
    path = "/tmp/cached-accept-workers-%d.ports" % os.getpid()
    env = dict(os.environ, MEMCACHED_PORT_FILENAME=path)
    cmd = [CACHED, "-p", "-1", "-l", "127.0.0.1", "-t", "4"] + ROOT_ARGS
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        deadline = time.time() + WAIT
        while time.time() < deadline and not os.path.exists(path) and p.poll() is None:
            time.sleep(0.02)
        with open(path) as f:
            port = int(f.read().split(":")[1])
        wait_port(port, timeout=WAIT, proc=p)
        ok = sum(django_round("127.0.0.1", port, i) for i in range(40))
        ck.eq(ok, 40, "-p -1 -t 4: the siblings share the kernel-picked port")
    finally:
        if p.pid > 0 and p.poll() is None:
            p.terminate()
        ck.eq(p.wait(WAIT), 0, "-p -1: clean exit")
        if os.path.exists(path):
            os.unlink(path)


def test_shutdown_refuses():
    with Server(args=["-t", "4", "-A"]) as srv:
        held = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
        with srv.connect() as c:
            c.send("shutdown\r\n")
        ck.eq(srv.proc.wait(WAIT), 0, "shutdown: exit 0")
        refused = False
        try:
            socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        except OSError:
            refused = True
        ck.check(refused, "after shutdown nothing accepts on the port")
        held.close()
        srv.stop()


def test_restart_same_port():
    port = free_port()
    for round_ in range(2):
        with Server(args=["-t", "4"], port=port) as srv:
            ok = sum(django_round("127.0.0.1", port, i) for i in range(20))
            ck.eq(ok, 20, "round %d on the same port: served" % round_)
            ck.eq(srv.stop(), 0, "round %d: clean exit" % round_)


test_many_short_connections()
test_maxconns()
test_port_in_use()
test_ephemeral_port()
test_shutdown_refuses()
test_restart_same_port()
ck.done()
