"""ASCII authentication (-Y FILE) against Debian's memcached 1.6.18 -Y: every exchange must be
byte-identical. Commands are sent one at a time (memcached keeps only the last reply of a
pipelined batch before login; cached answers each, checked separately).

Covers: unauthenticated replies (quit too, connection stays open), login (STORED, nothing
stored), wrong user/password, bad token format, bad termination, 2048 bytes without newline,
auth_cmds/auth_errors, the first-8-users limit, empty passwords, memcached's reading of a
one-line file without a final newline, start-up errors and exit codes, SIGHUP reload, unix
socket, TLS, binary requests (silence, as memcached), and stats settings auth_enabled_ascii.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))

import harness  # noqa: E402
import tlsutil  # noqa: E402

ck = harness.Checker("test_auth")
TMP = tempfile.mkdtemp(prefix="cached-auth-")
BINARIES = (("cached", harness.CACHED), ("memcached", harness.MEMCACHED))

USERS = "".join("user%d:pass%d\n" % (i, i) for i in range(1, 10))  # 9 users: the 9th ignored


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def ask(c, data, wait=0.3, first=10.0):
    """Sends data, returns the reply: waits up to `first` s for its first byte (0 where the
    exchange may rightly be silent), then takes what follows until `wait` s of quiet; 'closed'
    when the server closed without a byte. A slow (loaded, ASan) server still answers in time."""
    c.send(data)
    if first:
        c.sock.settimeout(first)
        try:
            chunk = c.sock.recv(65536)
        except socket.timeout:
            chunk = None
        except ConnectionResetError:
            chunk = b""
        finally:
            c.sock.settimeout(10.0)
        if chunk == b"" and not c.buf:
            return "closed"
        c.buf += chunk or b""
    out = c.read_available(wait)
    if out == b"" and c.is_closed(0.05):
        return "closed"
    return out


def login(c, user, pw):
    payload = ("%s %s" % (user, pw)).encode()
    return ask(c, b"set auth 0 0 %d\r\n%s\r\n" % (len(payload), payload))


def session(port):
    """One conversation; returns the list of replies."""
    rec = []
    with harness.Conn("127.0.0.1", port) as c:
        rec.append(ask(c, b"get foo\r\n"))
        rec.append(ask(c, b"quit\r\n"))
        rec.append(ask(c, b"version\r\n"))            # still open after quit
        rec.append(ask(c, b"stats\r\n"))
        rec.append(ask(c, b"\r\n"))
        rec.append(ask(c, b"set k 0 0\r\n"))           # too few tokens
        rec.append(ask(c, b"set k 0 0 x\r\n"))        # bad length ...
        rec.append(ask(c, b"ab\r\n"))                 # ... so the data is a line
        rec.append(login(c, "user1", "wrong"))
        rec.append(login(c, "nobody", "pass1"))
        rec.append(login(c, "user1", ""))              # one token
        rec.append(ask(c, b"set k 0 0 5\r\nuser1\r\n"))
        rec.append(ask(c, b"set k 0 0 3\r\nabcde"))    # bad termination ...
        rec.append(ask(c, b"\r\n"))                    # ... and the rest is a line
        rec.append(login(c, "user9", "pass9"))         # past the first 8
        rec.append(login(c, "user1", "pass1 extra"))   # third token ignored
        rec.append(ask(c, b"get auth\r\n"))            # the login stored nothing
        rec.append(ask(c, b"set k 0 0 1\r\nx\r\n"))    # now a real set
        rec.append(ask(c, b"get k\r\n"))
        rec.append(login(c, "user1", "wrong"))         # after login: a real set
    with harness.Conn("127.0.0.1", port) as c:
        rec.append(login(c, "user8", "pass8"))
        st = c.stats()
        rec.append(("auth_cmds", st.get("auth_cmds"), "auth_errors", st.get("auth_errors")))
        rec.append(c.stats("settings").get("auth_enabled_ascii"))
    with harness.Conn("127.0.0.1", port) as c:
        rec.append(ask(c, b"x" * 2049))                # no newline: closed
    with harness.Conn("127.0.0.1", port) as c:
        # A binary GET: both read it as a text line and say nothing (no newline byte).
        rec.append(ask(c, b"\x80\x00\x00\x03" + b"\x00" * 20 + b"foo", first=0))
    return rec


class Proc:
    def __init__(self, binary, args, unix=None):
        kind = "memcached" if os.path.basename(binary) == "memcached" else "cached"
        self.kind = kind
        self.port = harness.free_port()
        cmd = [binary, "-U", "0"] + (["-s", unix] if unix else ["-p", str(self.port), "-l",
                                                                   "127.0.0.1"]) + args
        if os.geteuid() == 0:
            cmd += ["-u", "root"] if kind == "memcached" else ["--run-as-root"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited: %s" % (kind, self.proc.stderr.read()))
            try:
                if unix:
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(unix)
                else:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=1)
                s.close()
                break
            except OSError:
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        err = self.proc.stderr.read().decode(errors="replace")
        if self.kind == "cached" and ("Sanitizer" in err or "runtime error:" in err):
            sys.stderr.write(err)
            raise AssertionError("sanitizer report from cached")


def test_exchanges():
    users = write("users", USERS + "empty:\n")
    rec = {}
    procs = {kind: Proc(binary, ["-Y", users]) for kind, binary in BINARIES}
    try:
        # the two conversations side by side (each on its own server): their quiet waits overlap
        with ThreadPoolExecutor(2) as ex:
            runs = {kind: ex.submit(session, p.port) for kind, p in procs.items()}
            rec = {kind: r.result() for kind, r in runs.items()}
    finally:
        for p in procs.values():
            p.stop()
    for i, (a, b) in enumerate(zip(rec["cached"], rec["memcached"])):
        ck.eq(a, b, "exchange %d" % i)
    ck.eq(len(rec["cached"]), len(rec["memcached"]), "same number of exchanges")
    ck.eq(rec["cached"][0], b"CLIENT_ERROR unauthenticated\r\n", "unauthenticated text")
    ck.eq(rec["cached"][15], b"STORED\r\n", "login answers STORED")


def test_file_quirks_and_errors():
    # One line without a final newline: memcached's reader drops its last byte.
    f = write("oneline", "solo:secret")
    res = {}
    for kind, binary in BINARIES:
        p = Proc(binary, ["-Y", f])
        try:
            with harness.Conn("127.0.0.1", p.port) as c:
                res[kind] = [login(c, "solo", "secret")]
            with harness.Conn("127.0.0.1", p.port) as c:
                res[kind].append(login(c, "solo", "secre"))
        finally:
            p.stop()
    ck.eq(res["cached"], res["memcached"], "one-line file without newline")
    # Start-up errors: message and exit code.
    for name, text in (("missing", None), ("noline", "user1:pass1\nbroken line\n"),
                       ("blank", "user1:pass1\n\nuser2:pass2\n")):
        path = os.path.join(TMP, name) if text is None else write(name, text)
        out = {}
        for kind, binary in BINARIES:
            cmd = [binary, "-p", str(harness.free_port()), "-l", "127.0.0.1", "-U", "0", "-Y",
                   path]
            if os.geteuid() == 0:
                cmd += ["-u", "root"] if kind == "memcached" else ["--run-as-root"]
            r = subprocess.run(cmd, capture_output=True, timeout=10)
            out[kind] = (r.returncode, r.stderr.decode().strip().splitlines()[-1:])
        ck.eq(out["cached"], out["memcached"], "start with -Y %s" % name)


def test_reload_unix_tls_pipelining():
    users = write("reload", "alice:one\n")
    sock = os.path.join(TMP, "auth.sock")
    res = {}
    for kind, binary in BINARIES:
        write("reload", "alice:one\n")
        p = Proc(binary, ["-Y", users])
        try:
            with harness.Conn("127.0.0.1", p.port) as c:
                before = login(c, "bob", "two")
            write("reload", "alice:one\nbob:two\n")
            os.kill(p.proc.pid, signal.SIGHUP)
            after, deadline = None, time.time() + 5  # memcached reloads on its 1 s tick
            while time.time() < deadline and after != b"STORED\r\n":
                time.sleep(0.2)
                with harness.Conn("127.0.0.1", p.port) as c:
                    after = login(c, "bob", "two")
            res[kind] = (before, after)
        finally:
            p.stop()
        p = Proc(binary, ["-Y", users], unix=sock)
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            c = harness.Conn.__new__(harness.Conn)
            c.sock, c.buf = s, b""
            s.settimeout(10)
            res[kind] += (ask(c, b"get x\r\n"), login(c, "alice", "one"), ask(c, b"get x\r\n"))
            s.close()
        finally:
            p.stop()
    ck.eq(res["cached"], (b"CLIENT_ERROR authentication failure\r\n", b"STORED\r\n",
                          b"CLIENT_ERROR unauthenticated\r\n", b"STORED\r\n", b"END\r\n"),
          "SIGHUP reload and unix socket")
    ck.eq(res["cached"], res["memcached"], "SIGHUP reload and unix socket = memcached")

    # cached only: every pipelined command before login gets its reply (memcached: the last).
    p = Proc(harness.CACHED, ["-Y", users])
    try:
        with harness.Conn("127.0.0.1", p.port) as c:
            c.send(b"get a\r\nget b\r\nset x 0 0 7\r\nbob two\r\nget x\r\n")
            got = c.read_until(b"END\r\n")
            ck.eq(got, b"CLIENT_ERROR unauthenticated\r\n" * 2 + b"STORED\r\nEND\r\n",
                  "pipelined before login: every reply")
    finally:
        p.stop()

    # Under TLS.
    pki = tlsutil.make_pki(TMP)
    p = Proc(harness.CACHED, ["-Y", users] + tlsutil.server_args(pki))
    try:
        with tlsutil.TLSConn("127.0.0.1", p.port, tlsutil.client_ctx(pki)) as c:
            ck.eq(ask(c, b"get a\r\n"), b"CLIENT_ERROR unauthenticated\r\n", "TLS: unauth")
            ck.eq(login(c, "alice", "one"), b"STORED\r\n", "TLS: login")
            ck.eq(ask(c, b"get a\r\n"), b"END\r\n", "TLS: after login")
    finally:
        p.stop()


try:
    test_exchanges()
    test_file_quirks_and_errors()
    test_reload_unix_tls_pipelining()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
ck.done()
