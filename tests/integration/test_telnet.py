#!/usr/bin/python3
"""Types sessions into cached line by line, as a person with `nc` or `telnet` would, and checks
every reply: once with "\r\n" line ends (telnet, `nc -C`), once with bare "\n" (plain `nc`).
Then replays the example session in README.md ("## A session by hand") if it is there.

  test_telnet.py            run the checks against $CACHED
  test_telnet.py --print    print the example session in README form (to paste into README.md);
                            the replies shown are what $CACHED answers when it runs, else the
                            expected ones below.

A data block must always end in "\r\n", even when command lines end in a bare "\n" (that is
memcached's rule too): SESSION_LF types its data lines with "\r\n", and TRAP_LF shows what a
plain `nc` user gets for a data line ending in "\n".
"""
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402

ROOT = harness.ROOT
VERSION_RE = re.compile(r"VERSION 1\.6\.\d+\S*$")   # memccapable needs 1.6.x
CLOSES = None   # expected "reply" of a line after which the server closes the connection

# (what is typed, the reply lines that follow it). A storage command's reply comes after its
# data line, so the command line itself expects [].
SESSION = [
    ("set greeting 0 0 5", []),
    ("hello", ["STORED"]),
    ("get greeting", ["VALUE greeting 0 5", "hello", "END"]),
    ("incr counter 1", ["NOT_FOUND"]),
    ("set counter 0 0 1", []),
    ("7", ["STORED"]),
    ("incr counter 35", ["42"]),
    ("delete greeting", ["DELETED"]),
    ("version", ["VERSION 1.6.18"]),
    ("quit", CLOSES),
]

LONGER = [
    ("get nothing", ["END"]),
    ("set k 5 0 3", []),
    ("abc", ["STORED"]),
    ("append k 0 0 2", []),
    ("de", ["STORED"]),
    ("gets k", ["VALUE k 5 5 *", "abcde", "END"]),
    ("add k 0 0 1", []),
    ("x", ["NOT_STORED"]),
    ("touch k 100", ["TOUCHED"]),
    ("set n 0 0 2", []),
    ("10", ["STORED"]),
    ("decr n 3", ["7"]),
    ("incr n 18446744073709551615", ["6"]),
    ("incr k 1", ["CLIENT_ERROR cannot increment or decrement non-numeric value"]),
    ("delete k", ["DELETED"]),
    ("delete k", ["NOT_FOUND"]),
    ("bogus", ["ERROR"]),
    ("", ["ERROR"]),
    ("verbosity 1", ["OK"]),
    ("version", ["VERSION 1.6.18"]),
    ("quit", CLOSES),
]

# Plain `nc` sends "hello\n": not a valid data block, so the next line typed completes it.
TRAP_LF = [
    ("set t 0 0 5", []),
    ("hello", []),
    ("get t", ["CLIENT_ERROR bad data chunk", "ERROR"]),
    ("get t", ["END"]),
    ("quit", CLOSES),
]


def data_lines(session):
    """Indexes of lines that are data blocks (typed right after a storage command)."""
    out, prev = set(), None
    for i, (typed, _) in enumerate(session):
        if prev and prev.split(" ")[0] in ("set", "add", "replace", "append", "prepend", "cas"):
            out.add(i)
            prev = None
            continue
        prev = typed
    return out


class Typist:
    def __init__(self, port, eol, data_eol="\r\n"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.eol, self.data_eol = eol, data_eol
        self.buf = b""
        self.closed = False

    def type(self, line, is_data):
        self.sock.sendall((line + (self.data_eol if is_data else self.eol)).encode())

    def lines(self, n, wait):
        """Up to n reply lines; stops early if the server closes or goes quiet for `wait` s."""
        out = []
        deadline = time.time() + wait
        while len(out) < n:
            if b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                out.append(line.decode(errors="replace"))
                continue
            left = deadline - time.time()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                break
            self.buf += chunk
        return out

    def leftover(self, wait=0.1):
        """Whatever arrives unasked (an extra reply is a desync for a real client)."""
        extra = self.lines(100, wait)
        return extra + ([self.buf.decode(errors="replace")] if self.buf else [])


def match(got, want):
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if w.startswith("VERSION "):
            if not VERSION_RE.match(g):
                return False
        elif w.endswith(" *"):        # gets: any CAS number
            if not re.fullmatch(re.escape(w[:-2]) + r" \d+", g):
                return False
        elif g != w:
            return False
    return True


def flush(port):
    """Each session starts from an empty cache (they reuse the same keys)."""
    with harness.Conn("127.0.0.1", port) as c:
        c.cmd("flush_all")


def play(chk, port, session, name, eol, data_eol="\r\n"):
    flush(port)
    t = Typist(port, eol, data_eol)
    data = data_lines(session)
    wait = 5.0 if harness.ASAN else 2.0
    try:
        for i, (typed, want) in enumerate(session):
            t.type(typed, i in data)
            what = "%s: typed %r" % (name, typed)
            if want is CLOSES:
                t.lines(1, wait)
                chk.check(t.closed, "%s: connection should close" % what)
                continue
            got = t.lines(len(want), wait) if want else []
            extra = t.leftover(0.05 if want else 0.15)
            chk.check(match(got, want) and not extra,
                      "%s: got %r%s, want %r" % (what, got, " + extra %r" % extra if extra else "",
                                                 want))
            if t.closed:
                chk.check(False, "%s: server closed the connection" % what)
                return
    finally:
        t.sock.close()


def readme_session():
    """The README's example as [(typed, [reply lines])], or None when it is not there."""
    try:
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"^## A session by hand\s*\n+```[^\n]*\n(.*?)\n```", text, re.S | re.M)
    if not m:
        return None
    cmds = {"set", "add", "replace", "append", "prepend", "cas", "get", "gets", "gat", "gats",
            "incr", "decr", "delete", "touch", "version", "verbosity", "flush_all", "quit",
            "stats"}
    session, expect_data = [], False
    for line in m.group(1).split("\n"):
        if line.startswith("$ "):
            continue
        word = line.split(" ")[0]
        if expect_data:
            session.append((line, []))
            expect_data = False
        elif word in cmds:
            session.append((line, CLOSES if word == "quit" else []))
            expect_data = word in ("set", "add", "replace", "append", "prepend", "cas")
        elif session and session[-1][1] is not CLOSES:
            session[-1][1].append(line)
    # A storage command's reply belongs to its data line: already so by construction.
    return session


def print_session(port=None):
    if port:
        flush(port)
    lines = ["```", "$ nc 127.0.0.1 11211"]
    t = Typist(port, "\r\n") if port else None
    data = data_lines(SESSION)
    for i, (typed, want) in enumerate(SESSION):
        lines.append(typed)
        if t:
            t.type(typed, i in data)
            lines.extend(t.lines(len(want), 2.0) if want else t.leftover(0.1))
        elif want:
            lines.extend(want)
    lines.append("```")
    print("## A session by hand\n")
    print("\n".join(lines))


def main():
    if "--print" in sys.argv:
        if os.access(harness.CACHED, os.X_OK):
            with harness.Server() as srv:
                print_session(srv.port)
        else:
            print_session()
        return
    chk = harness.Checker("telnet")
    with harness.Server() as srv:
        play(chk, srv.port, SESSION, "session CRLF", "\r\n")
        play(chk, srv.port, SESSION, "session LF", "\n")
        play(chk, srv.port, LONGER, "longer CRLF", "\r\n")
        play(chk, srv.port, LONGER, "longer LF", "\n")
        play(chk, srv.port, TRAP_LF, "bare-LF data line", "\n", data_eol="\n")
        rs = readme_session()
        if rs is None:
            print("note: README.md has no '## A session by hand' block; skipped replaying it")
        else:
            chk.check(len(rs) >= 3, "README session parsed into %d lines" % len(rs))
            play(chk, srv.port, rs, "README session", "\r\n")
            play(chk, srv.port, rs, "README session LF", "\n")
    chk.done()


if __name__ == "__main__":
    main()
