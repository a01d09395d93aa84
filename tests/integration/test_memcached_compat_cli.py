"""memcached's config file and command line (issue 19), against the real binary.

Debian's own /etc/memcached.conf (copied from the installed memcached package at test time,
unchanged) is read with --config: its -d daemonizes, -m/-l/-u take effect, `logfile PATH`
receives the log; only -p and -P are overridden on the command line. -d returns exit 0 only
once the daemon answers, and the daemon's own exit code with its error line when it fails after
the fork. A memcached flag cached refuses is an error naming the file, the line and the flag.
-r raises the core limit, -k locks memory, --logfile works in the foreground too (SIGHUP
reopens it), relative paths survive -d's chdir, -vv echoes command lines as memcached's does
(checked against memcached itself), and -h lists every flag of `memcached -h`, each either
described or named as refused.
"""
import os
import pwd
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402
from harness import Checker, Conn, Server, free_port, wait_port, CACHED, MEMCACHED  # noqa: E402

ck = Checker("test_memcached_compat_cli")
TMP = tempfile.mkdtemp(prefix="cached-mcconf-")
os.chmod(TMP, 0o1777)  # the daemon writes its pidfile after dropping to -u memcache
ROOT = os.geteuid() == 0
ROOT_ARGS = ["--run-as-root"] if ROOT else []
TIMEOUT = 30 if harness.ASAN else 10
DEBIAN_CONF = "/etc/memcached.conf"
started = []  # daemon pids we started, stopped at the end whatever happens


def run(args, **kw):
    p = subprocess.run([CACHED] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=TIMEOUT, **kw)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_pid(pid):
    """SIGTERM to a daemon we started (by its pidfile's pid); waits until it is gone."""
    if pid <= 0:  # kill(0) or kill(-1) would signal our own process group or everything
        return False
    if not alive(pid):
        return True
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    return False


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def no_sanitizer_report(text, what):
    ck.check(not re.search(r"AddressSanitizer|LeakSanitizer|runtime error:", text),
             "%s: no sanitizer report" % what)


def debian_conf_daemon():
    """Debian's memcached.conf, unchanged, with -p and -P overridden and -v for the log."""
    if not ck.check(os.path.exists(DEBIAN_CONF), "memcached package's %s exists" % DEBIAN_CONF):
        return
    conf = os.path.join(TMP, "memcached.conf")
    shutil.copyfile(DEBIAN_CONF, conf)
    with open(conf) as f:
        text = f.read()
    for line in ("-d", "logfile /var/log/memcached.log", "-m 64", "-p 11211", "-u memcache",
                 "-l 127.0.0.1", "-P /var/run/memcached/memcached.pid"):
        ck.check(re.search(r"^%s$" % re.escape(line), text, re.M), "Debian's file has '%s'" % line)
    port, pidfile, log = free_port(), os.path.join(TMP, "mc.pid"), os.path.join(TMP, "mc.log")
    # logfile from the file points at /var/log/memcached.log: the command line moves it here.
    args = ["--config", conf, "-p", str(port), "-P", pidfile, "--logfile", log, "-v"]
    t0 = time.time()
    rc, out, err = run(args)
    took = time.time() - t0
    ck.eq(rc, 0, "-d from the file: the parent exits 0 (stderr %r)" % err)
    if rc != 0:
        return
    ck.check(os.path.exists(pidfile), "-P: the pidfile exists when the parent returns")
    pid = int(open(pidfile).read().strip())
    started.append(pid)
    # Ready means ready: the first connection after the parent's exit is answered.
    with Conn("127.0.0.1", port) as c:
        ck.check(c.cmd("version").startswith(b"VERSION "), "answers as soon as -d returns")
        st = c.stats("settings")
    ck.check(took < TIMEOUT, "-d returned in %.2f s" % took)
    ck.eq(st.get("maxbytes"), str(64 * 1024 * 1024), "-m 64 from the file")
    ck.eq(st.get("inter"), "127.0.0.1", "-l 127.0.0.1 from the file")
    ck.eq(st.get("tcpport"), str(port), "-p from the command line wins over the file's 11211")
    ck.eq(st.get("daemon"), "yes", "-d from the file")
    ck.eq(st.get("user"), "memcache", "-u memcache from the file")
    ck.eq(st.get("logfile"), log, "--logfile on the command line wins over the file's")
    ck.eq(st.get("config"), conf, "stats settings names the config file")
    ck.check(int(proc_status(pid, "PPid") or 0) != os.getpid(), "the daemon is not our child")
    ck.eq(os.getsid(pid), pid, "the daemon leads its own session")
    if ROOT:
        ck.eq(pwd.getpwuid(int(proc_status(pid, "Uid").split()[0])).pw_name, "memcache",
              "-u memcache: the daemon runs as memcache")
    ck.eq(out, "", "-d: nothing on stdout")
    ck.check(stop_pid(pid), "SIGTERM stops the daemon")
    ck.check(not os.path.exists(pidfile), "the pidfile is removed on exit")
    logtext = open(log).read()
    ck.check(re.search(r"info: ready: ", logtext), "the log file has the ready line (-v)")
    ck.check(re.search(r"info: bye", logtext), "the log file has the exit line")
    no_sanitizer_report(logtext + err, "Debian's conf daemon")

    # The same file with a flag cached refuses appended: the error names file, line and flag.
    bad = os.path.join(TMP, "memcached-L.conf")
    with open(bad, "w") as f:
        f.write(text + "-L\n")
    nlines = len((text + "-L\n").splitlines())
    rc, out, err = run(["--config", bad, "-p", str(free_port())])
    ck.eq(rc, 78, "refused flag in the file: exit 78")
    ck.eq(err.strip(), "cached: %s:%d: option -L (memcached's large pages) is not supported by "
          "cached" % (bad, nlines), "refused flag: one line naming file, line and flag")


def daemon_failures():
    """-d reports a failure after the fork with the daemon's code and error line."""
    port = free_port()
    log = os.path.join(TMP, "fail.log")
    rc, out, err = run(ROOT_ARGS + ["-d", "-p", str(port), "-P", "/nonexistent-dir/x.pid",
                                    "--logfile", log])
    ck.eq(rc, 71, "-d with an unwritable pidfile: exit 71")
    ck.check("cannot write pidfile /nonexistent-dir/x.pid" in err,
             "-d failure: the daemon's error reaches the terminal (%r)" % err)
    ck.check(not listening(port), "-d failure: nothing left listening")
    if ROOT:
        rc, out, err = run(["-d", "-p", str(free_port()), "-u", "no-such-user-19"])
        ck.eq(rc, 67, "-d -u unknown: the daemon's exit 67")
        ck.check("can't find the user no-such-user-19" in err, "-d -u unknown: its error line")
    # Bind failure happens before the fork: exit 71 directly, memcached's code.
    with Server(args=ROOT_ARGS) as s:
        rc, out, err = run(ROOT_ARGS + ["-d", "-p", str(s.port)])
        ck.eq(rc, 71, "-d on a port in use: exit 71")
        ck.check("Address already in use" in err, "-d on a port in use: says why")
    rc, out, err = run(ROOT_ARGS + ["-p", str(free_port()), "--logfile", "/nonexistent-dir/l"])
    ck.eq(rc, 73, "unopenable --logfile: exit 73")
    ck.check("cannot open log file /nonexistent-dir/l" in err, "unopenable --logfile: says why")


def daemon_relative_paths():
    """-d changes to /: relative -P, --logfile and --config still name the start directory."""
    d = tempfile.mkdtemp(dir=TMP)
    os.chmod(d, 0o777)
    with open(os.path.join(d, "rel.conf"), "w") as f:
        f.write("# memcached style\n-v\n")
    port = free_port()
    rc, out, err = run(ROOT_ARGS + ["-d", "-p", str(port), "-P", "rel.pid", "--logfile",
                                    "rel.log", "--config", "rel.conf"], cwd=d)
    ck.eq(rc, 0, "-d with relative paths: exit 0 (%r)" % err)
    pidfile = os.path.join(d, "rel.pid")
    if not ck.check(os.path.exists(pidfile), "relative -P lands in the start directory"):
        return
    pid = int(open(pidfile).read().strip())
    started.append(pid)
    with Conn("127.0.0.1", port) as c:
        st = c.stats("settings")
    ck.eq(st.get("config"), os.path.join(d, "rel.conf"), "relative --config made absolute")
    os.kill(pid, signal.SIGHUP)  # re-reads the config: only works with the absolute path
    log = os.path.join(d, "rel.log")
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and "reloaded " not in open(log).read():
        time.sleep(0.02)
    ck.check("reloaded %s" % os.path.join(d, "rel.conf") in open(log).read(),
             "SIGHUP re-reads the relative --config after the daemon's chdir")
    ck.check(stop_pid(pid), "relative paths daemon stops")
    ck.check(not os.path.exists(pidfile), "relative pidfile removed on exit")


def listening(port):
    try:
        wait_port(port, timeout=0.3)
        return True
    except RuntimeError:
        return False


def foreground_logfile():
    log = os.path.join(TMP, "fg.log")
    s = Server(args=ROOT_ARGS + ["--logfile", log, "-vv"])
    with s.connect() as c:
        ck.check(c.cmd("version").startswith(b"VERSION"), "--logfile in the foreground serves")
    # logrotate: the file is moved away, SIGHUP reopens the path.
    os.rename(log, log + ".1")
    os.kill(s.pid, signal.SIGHUP)
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and not os.path.exists(log):
        time.sleep(0.02)
    ck.check(os.path.exists(log), "SIGHUP reopens the log file's path")
    ck.eq(s.stop(), 0, "foreground --logfile: exit 0")
    ck.eq(s.stderr_text, "", "foreground --logfile: nothing on stderr")
    old = open(log + ".1").read()
    text = open(log).read() if os.path.exists(log) else ""
    ck.check("info: ready: " in old, "foreground: the log file has the ready line")
    ck.check("SIGHUP" in text and "info: bye" in text and "bye" not in old,
             "after SIGHUP the log goes to the new file (%r)" % text)
    no_sanitizer_report(old + text, "foreground logfile")


def core_and_lock():
    # -r: the soft core limit is raised to the hard one (here: from 0).
    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]

    def low_core():
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    port = free_port()
    cmd = [CACHED, "-p", str(port), "-l", "127.0.0.1", "-r"] + ROOT_ARGS
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, preexec_fn=low_core)
    try:
        wait_port(port, proc=p, timeout=TIMEOUT)
        with open("/proc/%d/limits" % p.pid) as f:
            row = [ln for ln in f if ln.startswith("Max core file size")][0].split()
        soft, hardv = row[4], row[5]
        ck.check(soft == hardv and soft != "0", "-r: core limit soft %s = hard %s" % (soft, hardv))
    finally:
        os.kill(p.pid, signal.SIGTERM)
        p.wait(TIMEOUT)
    # -k: memory is locked (or memcached's warning when the limit forbids it). ASan's
    # runtime turns mlockall into a no-op (its shadow memory is terabytes), so there only
    # "starts and serves" is checked.
    with Server(args=ROOT_ARGS + ["-k", "-m", "8", "-t", "1"]) as s:
        if harness.ASAN:
            ck.eq(s.stop(), 0, "-k under ASan: serves and exits 0")
            return
        locked = int(proc_status(s.pid, "VmLck").split()[0])
        s.stop()
        warned = "mlockall() failed" in s.stderr_text
        ck.check(locked > 0 or warned, "-k: VmLck %d kB (or a warning: %r)" % (locked, s.stderr_text))
        if ROOT:
            ck.check(locked > 1024, "-k as root: more than 1 MB locked (%d kB)" % locked)


def help_text():
    rc, out, err = run(["-h"])
    ck.eq(rc, 0, "-h exit 0")
    ck.check(out.index("memcached's flags") < out.index("cached's own options"),
             "-h: memcached's flags first, then cached's own")
    mc = subprocess.run([MEMCACHED, "-h"], capture_output=True, timeout=TIMEOUT).stdout.decode()
    flags = sorted(set(re.findall(r"^(-[A-Za-z])[, ]", mc, re.M)))
    ck.check(len(flags) > 30, "memcached -h lists %d flags" % len(flags))
    refused = out[out.index("Refused with an error:"):out.index("cached's own options")]
    for f in flags:
        ck.check(re.search(r"^  %s(, | /)" % f, out, re.M) or ("%s (" % f) in refused,
                 "-h describes or refuses memcached's %s" % f)
    for f in ("-d, --daemon", "-P, --pidfile", "-r, --enable-coredumps", "-k, --lock-memory",
              "-v / -vv / -vvv", "--logfile", "--config=FILE"):
        ck.check(f in out, "-h lists %s" % f)
    # -vv echoes client command lines as memcached's does ("<FD command"); -v does not.
    script = b"set foo 0 0 3\r\nbar\r\nget foo\r\ndelete foo\r\n"
    seen = {}
    for name, binary, extra in (("memcached", MEMCACHED, []), ("cached", CACHED, ROOT_ARGS)):
        for level in ("-v", "-vv"):
            s = Server(binary=binary, args=extra + [level])
            with s.connect() as c:
                c.send(script)
                ck.eq(c.readline(), b"STORED\r\n", "%s %s: set" % (name, level))
                c.read_until(b"END\r\n")
                ck.eq(c.readline(), b"DELETED\r\n", "%s %s: delete" % (name, level))
            s.stop()
            cmds = re.findall(r"^<(\d+) ((?:set|get|delete) .*)$", s.stderr_text, re.M)
            seen[(name, level)] = [line for _, line in cmds]
            ck.check(len(set(fd for fd, _ in cmds)) <= 1, "%s %s: one fd per connection" % (name, level))
    want = ["set foo 0 0 3", "get foo", "delete foo"]
    ck.eq(seen[("memcached", "-vv")], want, "memcached -vv echoes the commands (the oracle)")
    ck.eq(seen[("cached", "-vv")], want, "cached -vv echoes the same command lines")
    ck.eq(seen[("cached", "-v")], [], "cached -v echoes nothing")
    ck.eq(seen[("memcached", "-v")], [], "memcached -v echoes nothing")
    # Verbosity levels count like memcached's.
    for flags_, want in ((["-v"], "1"), (["-vv"], "2"), (["-vvv"], "3"), (["-v", "-v"], "2")):
        with Server(args=ROOT_ARGS + flags_) as s:
            ck.eq(s.stats("settings").get("verbosity"), want, "%s: verbosity" % " ".join(flags_))


try:
    debian_conf_daemon()
    daemon_failures()
    daemon_relative_paths()
    foreground_logfile()
    core_and_lock()
    help_text()
finally:
    for pid in started:
        stop_pid(pid)
    shutil.rmtree(TMP, ignore_errors=True)
ck.done()
