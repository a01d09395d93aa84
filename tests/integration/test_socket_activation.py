"""systemd socket activation: cached serves the listening socket it inherits (LISTEN_FDS), so a
restart refuses no connection; with -e and SIGUSR1 the restarted process has every item.

systemd-socket-activate (Debian's systemd package; no systemd as PID 1 needed) holds the
socket and execs a small supervisor that runs cached 6 times on it, as systemd restarts a
service. A client loop (a new connection per request: set, then get it back) runs across the
5 restarts and counts refused or failed requests: the count must be 0.

Also: an inherited socket that matches no -l/-p setting is refused with a clear message.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, CACHED, Checker, free_port, set_get_round  # noqa: E402

ck = Checker("test_socket_activation")
ACTIVATE = shutil.which("systemd-socket-activate")
if ACTIVATE is None:
    print("test_socket_activation: systemd-socket-activate not installed (apt-get install systemd)")
    ck.check(True, "skipped")
    ck.done()

WAIT = 30 if ASAN else 10
TMP = tempfile.mkdtemp(prefix="cached-sa-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
MEM = os.path.join(TMP, "mem")
PIDFILE = os.path.join(TMP, "pid")
SUPERVISOR = os.path.join(TMP, "supervise.sh")
RUNS = 6  # the first start and 5 restarts
ROOT = ["--run-as-root"] if os.geteuid() == 0 else []

with open(SUPERVISOR, "w") as f:
    f.write("""#!/bin/sh
# Runs cached RUNS times on the inherited fd 3, as systemd restarts a socket-activated
# service. LISTEN_PID must name the process that reads it: the inner shell sets its own pid
# and execs cached.
n=0
while [ $n -lt %d ]; do
    sh -c 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"' cached "$@"
    n=$((n + 1))
done
""" % RUNS)
os.chmod(SUPERVISOR, 0o755)


def read_pid():
    try:
        with open(PIDFILE) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def request(port, i):
    """One request on a new connection: set then get. True when both answered right."""
    return set_get_round("127.0.0.1", port, b"sa%d" % i, b"value-%d" % i, WAIT)


def wait_listening(port, proc):
    """systemd-socket-activate binds before it prints; connecting also starts cached."""
    deadline = time.time() + WAIT
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()
            return True
        except OSError:
            time.sleep(0.01)
    return False


def restart_loop():
    port = free_port()
    log = open(os.path.join(TMP, "log"), "w+")
    proc = subprocess.Popen([ACTIVATE, "-l", "127.0.0.1:%d" % port, SUPERVISOR, CACHED,
                             "-p", str(port), "-l", "127.0.0.1", "-e", MEM, "-P", PIDFILE, "-v"]
                            + ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    ck.check(wait_listening(port, proc), "systemd-socket-activate listens")
    stats = {"ok": 0, "failed": 0, "errors": [], "first": None}
    stop = threading.Event()

    def client():
        i = 0
        while not stop.is_set() and i < 10 ** 6:
            try:
                if request(port, i):
                    stats["ok"] += 1
                    if stats["first"] is None:
                        stats["first"] = i
                else:
                    stats["failed"] += 1
                    stats["errors"].append("request %d: wrong answer" % i)
            except OSError as e:
                stats["failed"] += 1
                stats["errors"].append("request %d: %s" % (i, e))
            i += 1

    t = threading.Thread(target=client)
    t.start()  # the first connection makes systemd-socket-activate start cached
    pids = []
    try:
        for run in range(RUNS):
            deadline = time.time() + WAIT
            pid = read_pid()  # read once a round: the exiting run removes the file
            while time.time() < deadline and (pid == 0 or pid in pids):
                time.sleep(0.01)
                pid = read_pid()
            if not ck.check(pid > 0 and pid not in pids, "run %d started (pid %d)" % (run + 1, pid)):
                log.seek(0)
                print("log so far:\n" + log.read()[-3000:])
                break  # never signal pid 0 or a pid already signalled: 0 is our process group
            pids.append(pid)
            time.sleep(0.4)  # serve a while
            if run < RUNS - 1:
                os.kill(pid, signal.SIGUSR1)  # save and stop; the supervisor starts the next
        stop.set()
        t.join(WAIT)
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
            first = stats["first"] or 0
            s.sendall(b"get sa%d\r\n" % first)
            got = b""
            while not got.endswith(b"END\r\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            val = b"value-%d" % first
            ck.eq(got, b"VALUE sa%d 0 %d\r\n%s\r\nEND\r\n" % (first, len(val), val),
                  "the first run's item survived 5 warm restarts")
        if pids:
            os.kill(pids[-1], signal.SIGTERM)
        proc.wait(WAIT)
    finally:
        stop.set()
        if proc.poll() is None:
            for p in pids[-1:]:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            proc.kill()
            proc.wait()
    log.seek(0)
    text = log.read()
    ck.eq(len(set(pids)), RUNS, "%d distinct processes served the socket" % RUNS)
    ck.check(stats["ok"] > 50, "client requests answered across restarts: %d" % stats["ok"])
    ck.eq(stats["failed"], 0, "refused or failed requests (%s)" % stats["errors"][:5])
    ck.eq(text.count("inherited from systemd"), RUNS, "every run served the inherited socket")
    ck.eq(text.count("warm restart: restored"), RUNS - 1, "every restart restored the items")
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        ck.check(bad not in text, "no sanitizer report (%s)" % bad)
    print("socket activation: %d requests, %d failed, over %d restarts"
          % (stats["ok"] + stats["failed"], stats["failed"], RUNS - 1))


def mismatch():
    """An inherited socket on a port cached is not configured for is an error, named."""
    port, other = free_port(), free_port()
    proc = subprocess.Popen([ACTIVATE, "-l", "127.0.0.1:%d" % port, CACHED, "-p", str(other),
                             "-l", "127.0.0.1"] + ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc)  # the first connection starts cached
        rc = proc.wait(WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = proc.stdout.read().decode(errors="replace")
    ck.check(rc != 0, "mismatched inherited socket: exit %s" % rc)
    ck.check("matches no -l/-p/-s" in out and ("127.0.0.1:%d" % port) in out,
             "the message names the socket: %s" % out.strip()[-300:])


try:
    restart_loop()
    mismatch()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
ck.done()
