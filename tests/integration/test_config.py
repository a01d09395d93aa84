"""Configuration (issue 2) against the real binary: bad flags exit 64 and bad config files 78,
each with one "cached: " line on stderr and nothing listening; --help names every setting of
config/config.h's table with its default; --version; a good config file is honoured (port,
memory limit, idle_timeout from the file), a flag overrides it, and SIGHUP applies a
reloadable setting from the edited file.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402
from harness import Checker, Conn, free_port, wait_port, CACHED, ROOT  # noqa: E402

ck = Checker("test_config")
TMP = tempfile.mkdtemp(prefix="cached-config-")
ROOT_ARGS = ["--run-as-root"] if os.geteuid() == 0 else []
TIMEOUT = 30 if harness.ASAN else 10


def run(args):
    """Runs cached to completion (it must exit by itself): (exit code, stdout, stderr)."""
    p = subprocess.run([CACHED] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=TIMEOUT)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def table_long_names():
    """Every long name in CFG_SETTINGS, read from the header itself."""
    with open(os.path.join(ROOT, "config", "config.h")) as f:
        text = f.read()
    return re.findall(r"X\(\s*\w+,\s*[A-Z]+,\s*(?:'.'|0),\s*\"([a-z-]+)\"", text)


def expect_failure(args, code, needle, what):
    port = free_port()
    rc, out, err = run(["-p", str(port)] + ROOT_ARGS + list(args))
    ck.eq(rc, code, "%s: exit code (stderr %r)" % (what, err))
    ck.check(err.startswith("cached: ") and err.count("\n") == 1,
             "%s: one 'cached: ' line, got %r" % (what, err))
    ck.check(needle in err, "%s: %r in %r" % (what, needle, err))
    ck.eq(out, "", "%s: nothing on stdout" % what)
    ck.check(not listening(port), "%s: nothing listens" % what)


def bad_flags():
    cases = [
        (["--prot", "5"], "unknown option '--prot' (did you mean '--port'?)"),
        (["--max-item-sise=1m"], "did you mean '--max-item-size'?"),
        (["-x"], "unknown option -x"),
        (["-p", "abc"], "-p/--port: 'abc' is not a number"),
        (["-p", "70000"], "70000 is out of range (0 to 65535)"),
        (["-t", "0"], "-t/--threads: 0 is out of range"),
        (["-I", "2g"], "-I/--max-item-size: 2g is out of range (1k to 1g)"),
        (["-I", "512"], "512 is out of range (1k to 1g)"),
        (["-I", "1q"], "'1q' is not a size"),
        (["-m", "1", "-I", "2m"], "is larger than half the memory limit 1 MB"),
        (["-o", "idle_timot=5"], "unknown -o key 'idle_timot' (did you mean 'idle_timeout'?)"),
        (["-l", "[::1"], "missing ']'"),
        (["-U", "x"], "-U/--udp-port: 'x' is not a port"),
        (["-B", "text"], "'text' is not a protocol (auto, ascii, binary)"),
        (["-o", "slab_sizes=96-256"], "-o slab_sizes is not supported"),
        (["-o", "read_buf_mem_limit=32"], "no pool of read buffers"),
        (["stray"], "unexpected argument 'stray'"),
        (["-p"], "needs a value"),
    ]
    for args, needle in cases:
        expect_failure(args, 64, needle, " ".join(args))


def bad_files():
    missing = os.path.join(TMP, "missing.conf")
    expect_failure(["--config", missing], 78,
                   "cannot open config file %s: No such file or directory" % missing, "missing")
    expect_failure(["--config", TMP], 78, "Is a directory", "directory")
    f = write("unknown.conf", "# ok\nport = 5\nprot = 6\n")
    expect_failure(["--config", f], 78, "%s:3: unknown key 'prot' (did you mean 'port'?)" % f,
                   "unknown key")
    f = write("badvalue.conf", "threads = lots\n")
    expect_failure(["--config", f], 78, "%s:1: threads: 'lots' is not a number" % f, "bad value")
    f = write("range.conf", "memory_limit = 1\nmax_item_size = 4m\n")
    expect_failure(["--config", f], 78, "%s:2: max item size 4m (-I)" % f, "item > memory")
    f = write("flagline.conf", "-p 11211\n-m 64 # memcached.conf style\n-L\n")
    expect_failure(["--config", f], 78,
                   "%s:3: option -L (memcached's large pages) is not supported by cached" % f,
                   "unsupported memcached flag line")


def help_and_version():
    rc, out, err = run(["--help"])
    ck.eq(rc, 0, "--help exit code")
    ck.eq(err, "", "--help: nothing on stderr")
    names = table_long_names()
    ck.check(len(names) >= 25, "read the table's long names (%d)" % len(names))
    for name in names:
        ck.check(re.search(r"--%s\b.*\(default: " % re.escape(name), out) or
                 re.search(r"--%s\b.*\n\s+\(default: " % re.escape(name), out),
                 "--help lists --%s with its default" % name)
    for opt in ("-o, --extended", "--config=FILE", "-h, --help", "-V, --version"):
        ck.check(opt in out, "--help lists %s" % opt)
    rc2, out2, _ = run(["-h"])
    ck.check(rc2 == 0 and out2 == out, "-h is --help")
    rc, out, err = run(["--version"])
    ck.eq(rc, 0, "--version exit code")
    ck.eq(out, "cached 0.1 (memcached 1.6.18 compatible)\n", "--version text")
    rc, out2, _ = run(["-V"])
    ck.check(rc == 0 and out2 == out, "-V is --version")


def start(args, port):
    proc = subprocess.Popen([CACHED] + ROOT_ARGS + list(args), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, timeout=20 if harness.ASAN else 10, proc=proc)
    except RuntimeError as e:
        stop(proc)
        raise RuntimeError("%s: %s" % (e, proc.stderr.read().decode(errors="replace")))
    return proc


def stop(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    err = proc.stderr.read().decode(errors="replace")
    ck.check("AddressSanitizer" not in err and "runtime error:" not in err
             and "LeakSanitizer" not in err, "no sanitizer report (%s)" % err[-2000:])
    return err


def settings_of(port):
    with Conn("127.0.0.1", port) as c:
        return c.stats("settings")


def good_file():
    p_file, p_flag = free_port(), free_port()
    f = write("good.conf", "# a good file\n"
                           "port = %d   # from the file\n"
                           "listen = 127.0.0.1\n"
                           "memory-limit = 32\n"
                           "idle_timeout = 30\n"
                           "verbose = 0\n" % p_file)
    proc = start(["--config", f], p_file)
    try:
        s = settings_of(p_file)
        ck.eq(s.get("tcpport"), str(p_file), "port from the file")
        ck.eq(s.get("maxbytes"), str(32 << 20), "memory limit from the file")
        ck.eq(s.get("idle_timeout"), "30", "idle_timeout from the file")
        ck.eq(s.get("config"), f, "stats settings names the config file")

        # SIGHUP: the edited file's reloadable settings apply, the others wait for a restart.
        write("good.conf", "port = %d\nmemory_limit = 16\nidle_timeout = 45\nverbose = 1\n"
              % p_file)
        os.kill(proc.pid, signal.SIGHUP)
        deadline = time.time() + (20 if harness.ASAN else 5)
        while time.time() < deadline and settings_of(p_file).get("idle_timeout") != "45":
            time.sleep(0.05)
        s = settings_of(p_file)
        ck.eq(s.get("idle_timeout"), "45", "SIGHUP applied idle_timeout")
        ck.eq(s.get("verbosity"), "1", "SIGHUP applied verbose")
        ck.eq(s.get("maxbytes"), str(32 << 20), "SIGHUP kept the memory limit (not reloadable)")
    finally:
        err = stop(proc)
    ck.check("config: idle_timeout 30 -> 45" in err, "reload logged the change (%r)" % err[-500:])
    ck.check("config: memory_limit 32 -> 16 needs a restart" in err,
             "reload named the setting needing a restart")

    # A flag beats the file; the file still beats the defaults.
    write("good.conf", "port = %d\nmemory_limit = 32\n" % p_file)
    proc = start(["--config", f, "-p", str(p_flag)], p_flag)
    try:
        s = settings_of(p_flag)
        ck.eq(s.get("tcpport"), str(p_flag), "-p overrides the file's port")
        ck.eq(s.get("maxbytes"), str(32 << 20), "the file's memory limit still applies")
        ck.check(not listening(p_file), "nothing on the file's port")
    finally:
        stop(proc)

    # -o and long options reach the running server.
    p = free_port()
    proc = start(["-p", str(p), "-l", "127.0.0.1", "-o", "idle_timeout=7,modern",
                  "--max-item-size=2m", "-c", "100"], p)
    try:
        s = settings_of(p)
        ck.eq(s.get("idle_timeout"), "7", "-o idle_timeout")
        ck.eq(s.get("item_size_max"), str(2 << 20), "--max-item-size=2m")
        ck.eq(s.get("maxconns"), "100", "-c 100")
    finally:
        stop(proc)


def ipv6_listen():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return  # no IPv6 loopback here
    p = free_port("::1")
    # start() waits on IPv4; this one waits on ::1.
    proc = subprocess.Popen([CACHED] + ROOT_ARGS + ["-p", str(p), "-l", "[::1],127.0.0.1"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_port(p, host="::1", timeout=20 if harness.ASAN else 10, proc=proc)
        with Conn("::1", p) as c:
            ck.check(c.cmd("version").startswith(b"VERSION"), "listening on [::1]")
        ck.check(listening(p), "and on 127.0.0.1 (comma-separated -l)")
    finally:
        stop(proc)


def main():
    if not os.access(CACHED, os.X_OK):
        print("test_config: %s not built" % CACHED)
        sys.exit(1)
    bad_flags()
    bad_files()
    help_and_version()
    good_file()
    ipv6_listen()
    ck.done()


if __name__ == "__main__":
    main()
