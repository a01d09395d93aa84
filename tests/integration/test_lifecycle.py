"""Lifecycle (issue 2): version, SIGTERM/SIGINT exit 0 within a second, sd_notify READY=1 and
STOPPING=1 on a NOTIFY_SOCKET we create, pidfile written and removed, -d, port in use -> one
line and a non-zero exit, root without -u refused, -u drops privileges, SIGHUP reloads the
config file's verbosity, `shutdown`, and `systemd-analyze verify` of tools/cached.service.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402
from harness import Server, Checker, free_port, wait_port, CACHED, ROOT  # noqa: E402

ck = Checker("test_lifecycle")
ASAN = harness.ASAN
EXIT_WITHIN = 3.0 if ASAN else 1.0  # the ASan build's exit-time leak check is slow
IS_ROOT = os.geteuid() == 0
TMP = tempfile.mkdtemp(prefix="cached-lifecycle-")


def root_args():
    return ["--run-as-root"] if IS_ROOT else []


def timed_stop(srv, sig):
    t0 = time.time()
    os.kill(srv.pid, sig)
    try:
        rc = srv.proc.wait(10)
    except subprocess.TimeoutExpired:
        rc = None
    took = time.time() - t0
    srv.stop()  # collects stderr, checks for sanitizer reports
    return rc, took


def version_and_signals():
    for sig in (signal.SIGTERM, signal.SIGINT):
        with Server() as srv:
            with srv.connect() as c:
                v = c.cmd("version")
                ck.check(v.startswith(b"VERSION 1.6."), "version answers (%r)" % v)
            idle = srv.connect()  # an idle client must not hold up the exit
            busy = srv.connect()
            busy.set("k", b"v" * 100000)
            busy.send(b"get k k k k k k k k k k\r\n" * 50)  # replies in flight, unread
            time.sleep(0.1)
            rc, took = timed_stop(srv, sig)
            print("%s: exit %s after %.3f s" % (sig.name, rc, took))
            ck.eq(rc, 0, "%s exits 0" % sig.name)
            ck.check(took < EXIT_WITHIN, "%s exit within %.0f s (%.3f s)" % (sig.name, EXIT_WITHIN, took))
            idle.close()
            busy.close()


def graceful_finishes_replies():
    """Replies to what a client already sent are delivered before the exit."""
    with Server() as srv:
        c = srv.connect()
        c.set("g", "gracefully")
        c.send(b"get g\r\n" * 200)
        os.kill(srv.pid, signal.SIGTERM)
        got = b""
        try:
            while True:
                chunk = c.sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
        c.close()
        ck.eq(got.count(b"VALUE g 0 10\r\ngracefully\r\nEND\r\n"), 200,
              "in-flight replies delivered on SIGTERM")
        ck.eq(srv.stop(), 0, "exit 0 after graceful drain")


def sd_notify():
    path = os.path.join(TMP, "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    ns.settimeout(20 if ASAN else 10)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    srv = Server(env=env, wait=False)
    try:
        msgs = []
        try:
            msgs.append(ns.recv(4096).decode())
        except socket.timeout:
            pass
        ck.check(msgs and "READY=1" in msgs[0].split("\n"), "READY=1 received (%r)" % msgs)
        # Ready means listening: a connection must work right away.
        with srv.connect() as c:
            ck.check(c.cmd("version").startswith(b"VERSION "), "serving once READY=1 is sent")
        os.kill(srv.pid, signal.SIGTERM)
        try:
            msgs.append(ns.recv(4096).decode())
        except socket.timeout:
            pass
        ck.check(len(msgs) == 2 and "STOPPING=1" in msgs[1].split("\n"), "STOPPING=1 received (%r)" % msgs)
    finally:
        ck.eq(srv.stop(), 0, "exit 0 under NOTIFY_SOCKET")
        ns.close()
        os.unlink(path)


def pidfile():
    path = os.path.join(TMP, "cached.pid")
    with Server(args=["-P", path]) as srv:
        with srv.connect() as c:
            c.cmd("version")
        with open(path) as f:
            ck.eq(f.read().strip(), str(srv.pid), "pidfile holds the pid")
        ck.eq(srv.stop(), 0, "exit 0 with a pidfile")
        ck.check(not os.path.exists(path), "pidfile removed on exit")


def daemonize():
    path = os.path.join(TMP, "daemon.pid")
    port = free_port()
    p = subprocess.run([CACHED, "-d", "-P", path, "-p", str(port), "-l", "127.0.0.1"] + root_args(),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    ck.eq(p.returncode, 0, "-d: the foreground process exits 0")
    pid = None
    deadline = time.time() + 10
    while time.time() < deadline and pid is None:
        try:
            with open(path) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            time.sleep(0.05)
    if not ck.check(pid is not None, "-d writes the pidfile"):
        return
    try:
        wait_port(port)
        with harness.Conn("127.0.0.1", port) as c:
            ck.check(c.cmd("version").startswith(b"VERSION "), "daemon answers")
    finally:
        os.kill(pid, signal.SIGTERM)  # the daemon we started, by the pid it wrote
        deadline = time.time() + 10
        while time.time() < deadline and os.path.exists("/proc/%d" % pid):
            time.sleep(0.05)
    ck.check(not os.path.exists(path), "daemon removed its pidfile")


def port_in_use():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    p = subprocess.run([CACHED, "-p", str(port), "-l", "127.0.0.1"] + root_args(),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    blocker.close()
    lines = [l for l in p.stderr.decode(errors="replace").splitlines() if l.strip()]
    print("port in use: exit %d, stderr %r" % (p.returncode, lines))
    ck.check(p.returncode != 0, "port in use: non-zero exit (%d)" % p.returncode)
    ck.eq(len(lines), 1, "port in use: exactly one line")
    ck.check(lines and "127.0.0.1" in lines[0] and str(port) in lines[0],
             "the line names the address and port")
    # A bad address too.
    p = subprocess.run([CACHED, "-p", str(port), "-l", "192.0.2.1"] + root_args(),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    lines = [l for l in p.stderr.decode(errors="replace").splitlines() if l.strip()]
    ck.check(p.returncode != 0 and len(lines) == 1 and "192.0.2.1" in lines[0],
             "unassignable address: one line naming it, non-zero exit (%d, %r)" % (p.returncode, lines))


def root_policy():
    if not IS_ROOT:
        print("note: not root; skipping the root-refusal and -u checks")
        return
    p = subprocess.run([CACHED, "-p", str(free_port()), "-l", "127.0.0.1"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    err = p.stderr.decode(errors="replace")
    ck.eq(p.returncode, 64, "root without -u refused with exit 64")
    ck.check("can't run as root without the -u switch" in err, "memcached's refusal message (%r)" % err)
    p = subprocess.run([CACHED, "-u", "no-such-user-xyz", "-p", str(free_port()), "-l", "127.0.0.1"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    ck.eq(p.returncode, 67, "unknown -u user: exit 67")
    with Server(args=["-u", "nobody"]) as srv:
        with srv.connect() as c:  # an answer means setup is complete (listen() came first)
            ck.check(c.cmd("version").startswith(b"VERSION "), "serving after dropping privileges")
        uid = None
        with open("/proc/%d/status" % srv.pid) as f:
            for line in f:
                if line.startswith("Uid:"):
                    uid = line.split()[1:]
        ck.check(uid is not None and all(u == "65534" for u in uid),
                 "-u nobody: all uids dropped (%r)" % uid)
        ck.eq(srv.stop(), 0, "exit 0 after dropping privileges")


def sighup_reload():
    conf = os.path.join(TMP, "cached.conf")
    with open(conf, "w") as f:
        f.write("verbose = 0\n")
    log = open(os.path.join(TMP, "hup.log"), "w+")
    srv = Server(args=["--config", conf], stderr=log)
    try:
        with open(conf, "w") as f:
            f.write("verbose = 2\n")
        os.kill(srv.pid, signal.SIGHUP)
        time.sleep(0.5 if not ASAN else 1.5)
        with srv.connect() as c:  # at -vv a new connection is logged
            ck.check(c.cmd("version").startswith(b"VERSION "), "serving after SIGHUP")
        time.sleep(0.3)
        log.seek(0)
        text = log.read()
        ck.check("verbose" in text, "SIGHUP logs the changed setting (%r)" % text[-500:])
        ck.check("new connection" in text, "verbosity 2 in effect after SIGHUP")
    finally:
        ck.eq(srv.stop(), 0, "exit 0 after SIGHUP")
        log.close()


def shutdown_command():
    with Server(args=["-A"]) as srv:
        with srv.connect() as c:
            c.send(b"shutdown\r\n")
            c.read_available(0.5)
        try:
            rc = srv.proc.wait(5)
        except subprocess.TimeoutExpired:
            rc = None
        ck.eq(rc, 0, "`shutdown` with -A exits 0")


def systemd_verify():
    exe = shutil.which("systemd-analyze")
    if exe is None:
        print("note: systemd-analyze missing; skipping unit verification")
        return
    unit = os.path.join(ROOT, "tools", "cached.service")
    d = tempfile.mkdtemp(prefix="cached-unit-")
    with open(unit) as f:
        text = f.read().replace("/usr/local/bin/cached", os.path.abspath(CACHED))
    with open(os.path.join(d, "cached.service"), "w") as f:
        f.write(text)
    p = subprocess.run([exe, "verify", os.path.join(d, "cached.service")],
                       capture_output=True, timeout=60)
    out = (p.stdout + p.stderr).decode(errors="replace")
    ck.check(p.returncode == 0 and "cached.service" not in out,
             "systemd-analyze verify passes (%d: %r)" % (p.returncode, out))
    for key in ("Type=notify", "DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict",
                "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "MemoryDenyWriteExecute=yes",
                "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "LimitNOFILE="):
        ck.check(key in text, "unit has %s" % key)
    shutil.rmtree(d)


def main():
    version_and_signals()
    graceful_finishes_replies()
    sd_notify()
    pidfile()
    daemonize()
    port_in_use()
    root_policy()
    sighup_reload()
    shutdown_command()
    systemd_verify()
    shutil.rmtree(TMP, ignore_errors=True)
    ck.done()


if __name__ == "__main__":
    main()
