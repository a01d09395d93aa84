"""Restart after kill -9: the stale pidfile (-P) and the stale unix socket file (-s) a killed
process leaves behind must not stop the next start on the same port / path, and neither must
the TCP port's TIME_WAIT sockets (connections were open and busy when it was killed).

Also, on a clean SIGTERM stop the process exits 0, and a start on a port that a live instance
holds fails without disturbing it.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, Checker, Server, free_port  # noqa: E402

START_WAIT = 30 if ASAN else 10


def unix_ok(path, timeout=START_WAIT, proc=None):
    """True when a version command is answered on the unix socket within timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(path)
                s.sendall(b"set r 0 0 1\r\n1\r\nversion\r\n")
                buf = b""
                while b"VERSION" not in buf:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                if buf.startswith(b"STORED\r\nVERSION "):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def pidfile_pid(path, want=None, timeout=5.0):
    """The pid in the pidfile; with want, waits (up to timeout) for it to become want, since a
    restarted server may start listening a moment before it rewrites a stale pidfile."""
    deadline = time.time() + timeout
    pid = None
    while time.time() < deadline:
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                pid = int(text)
                if want is None or pid == want:
                    return pid
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return pid


def busy_clients(port, stop):
    """Keeps a few connections busy so the kill leaves established sockets behind."""
    def run():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            while not stop.is_set():
                s.sendall(b"set busy 0 0 5\r\nhello\r\nget busy\r\n")
                s.recv(65536)
        except OSError:
            pass
    ts = [threading.Thread(target=run, daemon=True) for _ in range(4)]
    for t in ts:
        t.start()
    return ts


def tcp_cycle(ck, tmp):
    port = free_port()
    pidfile = os.path.join(tmp, "cached-tcp.pid")
    srv = Server(port=port, args=["-P", pidfile])
    ck.eq(pidfile_pid(pidfile, srv.pid), srv.pid, "pidfile holds the first process's pid")
    with srv.connect() as c:
        ck.eq(c.set("k", "v"), b"STORED\r\n", "first instance serves")
    stop = threading.Event()
    ts = busy_clients(port, stop)
    time.sleep(0.3)
    srv.stop(sig=signal.SIGKILL)
    stop.set()
    for t in ts:
        t.join(5)
    ck.check(os.path.exists(pidfile), "kill -9 leaves the pidfile behind (precondition)")
    # Same port, same pidfile, immediately.
    try:
        srv2 = Server(port=port, args=["-P", pidfile])
    except RuntimeError as e:
        ck.check(False, "restart on the same TCP port after kill -9: %s" % e)
        return
    ck.eq(pidfile_pid(pidfile, srv2.pid), srv2.pid, "pidfile rewritten with the new pid")
    with srv2.connect() as c:
        ck.eq(c.get("k"), None, "the restarted cache starts empty")
        ck.eq(c.set("k", "v2"), b"STORED\r\n", "restarted instance serves")
    rc = srv2.stop()
    ck.eq(rc, 0, "SIGTERM: exit status 0")
    # memcached removes its pidfile on a clean exit only when daemonized (-d): not required.
    print("after SIGTERM the pidfile is %s" % ("still there" if os.path.exists(pidfile) else "removed"))


def unix_cycle(ck, tmp):
    path = os.path.join(tmp, "cached.sock")
    pidfile = os.path.join(tmp, "cached-unix.pid")
    args = ["-s", path, "-P", pidfile]
    srv = Server(args=args, wait=False)
    ck.check(unix_ok(path, proc=srv.proc), "first instance serves on the unix socket")
    ck.eq(pidfile_pid(pidfile, srv.pid), srv.pid, "pidfile holds the first process's pid")
    srv.stop(sig=signal.SIGKILL)
    ck.check(os.path.exists(path), "kill -9 leaves the socket file behind (precondition)")
    ck.check(os.path.exists(pidfile), "kill -9 leaves the pidfile behind (precondition)")
    srv2 = Server(args=args, wait=False)
    ok = unix_ok(path, proc=srv2.proc)
    if not ok and srv2.proc.poll() is not None:
        err = srv2.proc.stderr.read().decode(errors="replace")
        print("restart exited %s: %s" % (srv2.proc.returncode, err.strip()[:500]))
    ck.check(ok, "restart on the same unix socket path after kill -9 serves")
    ck.eq(pidfile_pid(pidfile, srv2.pid), srv2.pid, "pidfile rewritten with the new pid (unix)")
    # A second kill -9 / restart cycle, to be sure it is not a one-off.
    srv2.stop(sig=signal.SIGKILL)
    srv3 = Server(args=args, wait=False)
    ck.check(unix_ok(path, proc=srv3.proc), "second restart after kill -9 serves")
    ck.eq(srv3.stop(), 0, "SIGTERM: exit status 0 (unix)")
    if os.path.basename(srv3.binary) != "memcached":
        ck.check(not os.path.exists(path), "clean stop removes the socket file")


def refuses_live(ck, tmp):
    """The stale-file cleanup must not steal a live instance's port: a second start on a port
    in use fails (non-zero exit) and leaves the first one serving."""
    port = free_port()
    with Server(port=port) as srv:
        second = subprocess.run(srv.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, timeout=30)
        ck.check(second.returncode != 0, "second instance on a busy port exits non-zero")
        with srv.connect() as c:
            ck.check(c.cmd("version").startswith(b"VERSION "), "first instance still serves")


def main():
    ck = Checker("restart")
    with tempfile.TemporaryDirectory(prefix="cached-restart-") as tmp:
        os.chmod(tmp, 0o755)
        tcp_cycle(ck, tmp)
        unix_cycle(ck, tmp)
        refuses_live(ck, tmp)
    ck.done()


if __name__ == "__main__":
    main()
