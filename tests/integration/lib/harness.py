"""Shared helpers for integration tests: free ports, starting cached and Debian's memcached as
real processes, raw socket conversations, and a tiny assertion counter.

Every process a test starts is stopped by its PID (never by name); ports are picked free on
loopback and checked, so a memcached service already on 11211 is never disturbed.
"""
import os
import random
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
CACHED = os.environ.get("CACHED", os.path.join(ROOT, "build", "cached"))
MEMCACHED = os.environ.get("MEMCACHED", "/usr/bin/memcached")
ASAN = "asan" in os.environ.get("CACHED_BUILD", "")


_port_rng = random.Random()  # its own, seeded from the OS: tests that seed `random` share nothing


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def free_port(host="127.0.0.1"):
    """A TCP port that nothing is bound to right now. Picked at random below the kernel's
    ephemeral range (10000 up to it), so no client connection, of this test or of another one
    running alongside, can take it between this check and the server's bind; the kernel's pick
    (bind to port 0) when that range is too small."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    top = min(_ephemeral_low(), 32768)
    for _ in range(100 if top > 12000 else 0):
        port = _port_rng.randrange(10000, top)
        if port == 11211:  # memcached's default: a system service may want it
            continue
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))  # no SO_REUSEADDR: a port in TIME_WAIT is passed over too
            except OSError:
                continue
            return port
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    deadline = time.time() + timeout
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %s before listening" % proc.returncode)
        try:
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect((host, port))
                return True
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nothing listening on %s:%d after %.1fs" % (host, port, timeout))


def set_get_round(host, port, key, value, timeout=10.0, miss=None):
    """One short connection as a web request makes one: connect, set key, get it back (with
    the key `miss`, which must miss, in the same get when given), close. True when every reply
    was right; OSError when the connection fails."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(b"set %s 0 0 %d\r\n%s\r\nget %s%s\r\n"
                  % (key, len(value), value, key, b" " + miss if miss else b""))
        want = b"STORED\r\nVALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(value), value)
        buf = b""
        while len(buf) < len(want):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf == want


class Server:
    """A cached or memcached process on a free loopback port. Use as a context manager."""

    def __init__(self, binary=None, args=(), port=None, host="127.0.0.1", wait=True,
                 stderr=None, env=None, kind=None):
        self.binary = binary or CACHED
        self.kind = kind or ("memcached" if os.path.basename(self.binary) == "memcached" else "cached")
        self.host = host
        self.port = port or free_port(host)
        cmd = [self.binary, "-p", str(self.port), "-l", host] + list(args)
        if os.geteuid() == 0 and self.kind == "memcached":
            cmd += ["-u", "root"]
        if os.geteuid() == 0 and self.kind == "cached" and "-u" not in args:
            cmd += ["--run-as-root"]
        self.cmd = cmd
        self.started = time.time()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=stderr if stderr is not None else subprocess.PIPE,
                                     env=env)
        if wait:
            wait_port(self.port, host, timeout=20 if ASAN else 10, proc=self.proc)

    @property
    def pid(self):
        return self.proc.pid

    def connect(self, timeout=10.0):
        return Conn(self.host, self.port, timeout)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stops the process we started, by PID; returns its exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stderr:
            err = self.proc.stderr.read().decode(errors="replace")
            self.stderr_text = err
            if self.kind == "cached" and ("AddressSanitizer" in err or "runtime error:" in err
                                          or "LeakSanitizer" in err):
                sys.stderr.write(err)
                raise AssertionError("sanitizer report from cached (see above)")
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stats(self, arg=""):
        with self.connect() as c:
            return c.stats(arg)


class Conn:
    """A raw text-protocol connection."""

    def __init__(self, host, port, timeout=10.0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by server")
        self.buf += chunk

    def readline(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def readexact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until(self, terminator=b"END\r\n"):
        while not self.buf.endswith(terminator) and terminator not in self.buf:
            self._fill()
        i = self.buf.index(terminator) + len(terminator)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_available(self, wait=0.2):
        """Everything that arrives within `wait` seconds of quiet."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except socket.timeout:
            pass
        finally:
            self.sock.settimeout(10.0)
        out, self.buf = self.buf, b""
        return out

    def is_closed(self, wait=1.0):
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except (socket.timeout, BlockingIOError):
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(10.0)

    def cmd(self, line):
        """Sends one line (\r\n added) and returns one reply line."""
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.readline()

    def get(self, key):
        """Returns (flags, value) or None."""
        self.send(b"get " + (key.encode() if isinstance(key, str) else key) + b"\r\n")
        line = self.readline()
        if line == b"END\r\n":
            return None
        parts = line.split()
        assert parts[0] == b"VALUE", line
        n = int(parts[3])
        data = self.readexact(n + 2)[:-2]
        assert self.readline() == b"END\r\n"
        return int(parts[2]), data

    def hit_keys(self, keys, batch=100):
        """Multi-gets `keys` (bytes), `batch` to a get line; returns the set of keys that hit."""
        got = set()
        for i in range(0, len(keys), batch):
            self.send(b"get " + b" ".join(keys[i:i + batch]) + b"\r\n")
            while True:
                line = self.readline()
                if line == b"END\r\n":
                    break
                p = line.split()
                got.add(p[1])
                self.readexact(int(p[3]) + 2)
        return got

    def set(self, key, value, flags=0, exptime=0, cmd="set"):
        if isinstance(key, str):
            key = key.encode()
        if isinstance(value, str):
            value = value.encode()
        self.send(b"%s %s %d %d %d\r\n%s\r\n" % (cmd.encode(), key, flags, exptime, len(value), value))
        return self.readline()

    def stats(self, arg=""):
        self.send(("stats %s" % arg).strip() + "\r\n")
        out = {}
        while True:
            line = self.readline().decode()
            if line == "END\r\n":
                return out
            parts = line.split(" ", 2)
            out[parts[1]] = parts[2].strip() if len(parts) > 2 else ""


class Checker:
    """Counts assertions and prints the closing 'N passed, M failed' line."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL: %s" % what, flush=True)
        return cond

    def eq(self, got, want, what):
        ok = got == want
        if not ok:
            what = "%s: got %r, want %r" % (what, got, want)
        return self.check(ok, what)

    def done(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed or not self.passed else 0)


def compare_with_memcached(ck, run, compare):
    """Runs `run(server, tag)` against cached, then against Debian's memcached, each on a free
    port; `compare(memcached_records, cached_records)` makes the assertions. SHOW_RECORDS=1
    prints memcached's records (to write expectations from). Last, cached must still be up."""
    with Server() as cached, Server(MEMCACHED, kind="memcached") as mc:
        rc = run(cached, "cached")
        rm = run(mc, "memcached")
        compare(rm, rc)
        if os.environ.get("SHOW_RECORDS"):
            for r in rm:
                print(r)
        ck.check(cached.proc.poll() is None, "cached still running at the end")
