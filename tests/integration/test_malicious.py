"""Malicious and malformed input: HTTP verbs, over-long lines, truncated payloads, binary garbage,
NUL bytes, huge byte counts, huge flags/exptime numbers, 10,000 keys in one get, a 1 MB get line.

Each case is sent on its own connection. After every case the server must still be running,
must not have grown by more than a few MB (no allocation sized by an attacker's number), and
a fresh client must be served (version, set, get).

Replies are compared with memcached 1.6 (Debian's, the oracle): "strict" cases must match the
recorded oracle reply exactly (and the oracle is re-checked live when it is installed); "loose"
cases are where memcached's answer is an accident of its implementation (e.g. it stores flags
of 2^32 truncated, it speaks the binary protocol): cached may differ, the difference is
printed, and only liveness is checked.
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, CACHED, MEMCACHED, Checker, Server  # noqa: E402

QUIET = 2.0 if ASAN else 0.6  # seconds of silence that end a reply
ITEM_MEM_KB = 64 * 1024       # -m 64: item memory may legitimately fill up
RSS_SLACK_KB = 32 * 1024      # plus buffers (a 1 MB line, 2 MB swallowed value) and threads

VERSION = b"VERSION"
CLOSED = "closed"
OPEN = "open"

# name, bytes to send, strict?, (expected reply prefix bytes, state) as memcached 1.6.18 answers
CASES = [
    ("http GET", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True, (b"", CLOSED)),
    ("http POST", b"POST /index.html HTTP/1.0\r\n\r\n", True, (b"", CLOSED)),
    ("http HEAD", b"HEAD / HTTP/1.1\r\n", True, (b"", CLOSED)),
    ("3000-byte line without newline", b"x" * 3000, True, (b"", CLOSED)),
    ("64 KB set line without newline", b"set " + b"k" * 65536, True, (b"", CLOSED)),
    ("truncated payload then stall", b"set k 0 0 10\r\nabc", True, (b"", OPEN)),
    ("truncated command line then stall", b"set k 0 0", True, (b"", OPEN)),
    ("NUL bytes in key", b"set a\x00b 0 0 1\r\nx\r\nget a\x00b\r\n", False,
     (b"ERROR\r\nERROR\r\nEND\r\n", OPEN)),
    ("NUL-only command", b"\x00\x00\x00\r\nversion\r\n", True, (b"ERROR\r\nVERSION", OPEN)),
    ("binary garbage", bytes(range(1, 256)) + b"\r\nversion\r\n", True,
     (b"ERROR\r\nERROR\r\nVERSION", OPEN)),
    ("random bytes", os.urandom(4096).replace(b"\n", b"n") + b"\r\nversion\r\n", False,
     (b"ERROR\r\nVERSION", OPEN)),
    ("binary protocol magic", b"\x80\x0a" + b"\x00" * 22, False, (b"\x81", OPEN)),
    ("set bytes 4294967295", b"set k 0 0 4294967295\r\nversion\r\n", False,
     (b"CLIENT_ERROR bad command line format\r\nVERSION", OPEN)),
    ("set bytes -1", b"set k 0 0 -1\r\nversion\r\n", True,
     (b"CLIENT_ERROR bad command line format\r\nVERSION", OPEN)),
    ("set bytes 99999999999999999999", b"set k 0 0 99999999999999999999\r\nversion\r\n", True,
     (b"CLIENT_ERROR bad command line format\r\nVERSION", OPEN)),
    ("set bytes 2^64", b"set k 0 0 18446744073709551616\r\nversion\r\n", True,
     (b"CLIENT_ERROR bad command line format\r\nVERSION", OPEN)),
    # memcached truncates 4294967297 to 1 and then finds no "\r\n" after one byte (its bug).
    ("set bytes 2^32+1", b"set k 0 0 4294967297\r\nversion\r\n", False,
     (b"CLIENT_ERROR bad data chunk\r\nERROR\r\n", OPEN)),
    ("flags 2^32-1", b"set k 4294967295 0 1\r\nx\r\nget k\r\n", True,
     (b"STORED\r\nVALUE k 4294967295 1\r\nx\r\nEND\r\n", OPEN)),
    ("flags 2^32", b"set k 4294967296 0 1\r\nx\r\nversion\r\n", False,
     (b"STORED\r\nVERSION", OPEN)),
    ("flags -1", b"set k -1 0 1\r\nx\r\nversion\r\n", True,
     (b"CLIENT_ERROR bad command line format\r\nERROR\r\nVERSION", OPEN)),
    ("flags 20 digits", b"set k 99999999999999999999 0 1\r\nx\r\nversion\r\n", True,
     (b"CLIENT_ERROR bad command line format\r\nERROR\r\nVERSION", OPEN)),
    ("exptime 20 digits", b"set k 0 99999999999999999999 1\r\nx\r\nversion\r\n", True,
     (b"CLIENT_ERROR bad command line format\r\nERROR\r\nVERSION", OPEN)),
    ("exptime 2^63-1", b"set k 0 9223372036854775807 1\r\nx\r\nget k\r\n", False,
     (b"STORED\r\nEND\r\n", OPEN)),
    ("exptime -2^63", b"set k 0 -9223372036854775808 1\r\nx\r\nget k\r\n", False,
     (b"STORED\r\n", OPEN)),
    ("touch exptime 20 digits", b"touch k 99999999999999999999\r\n", True,
     (b"CLIENT_ERROR invalid exptime argument\r\n", OPEN)),
    ("incr delta 20 digits", b"set n 0 0 1\r\n1\r\nincr n 99999999999999999999\r\n", True,
     (b"STORED\r\nCLIENT_ERROR invalid numeric delta argument\r\n", OPEN)),
    ("cas unique 2^64", b"cas k 0 0 1 18446744073709551616\r\nx\r\nversion\r\n", False,
     (b"CLIENT_ERROR bad command line format\r\nERROR\r\nVERSION", OPEN)),
    ("flush_all huge delay", b"flush_all 99999999999999999999\r\nversion\r\n", False,
     (b"CLIENT_ERROR", OPEN)),
    ("verbosity huge", b"verbosity 99999999999999999999\r\nversion\r\n", False, (b"", OPEN)),
    ("meta huge token", b"mg k v N99999999999999999999\r\nversion\r\n", False,
     (b"CLIENT_ERROR", OPEN)),
    ("meta set huge size", b"ms k 99999999999999999999\r\nversion\r\n", True,
     (b"CLIENT_ERROR bad command line format\r\nVERSION", OPEN)),
    ("meta set size 4294967295", b"ms k 4294967295\r\nversion\r\n", False,
     (b"CLIENT_ERROR", OPEN)),
    ("get with 10,000 keys", b"get " + b" ".join(b"key%d" % i for i in range(10000)) + b"\r\n",
     True, (b"END\r\n", OPEN)),
    ("get line of 1 MB, short keys",
     b"get " + b" ".join(b"%0100d" % i for i in range(10400)) + b"\r\n", True, (b"END\r\n", OPEN)),
    ("get with a 1 MB key", b"get " + b"k" * (1 << 20) + b"\r\n", False,
     (b"CLIENT_ERROR bad command line format\r\n", OPEN)),
    ("key of 251 bytes", b"set " + b"k" * 251 + b" 0 0 1\r\nx\r\n", True,
     (b"CLIENT_ERROR bad command line format\r\nERROR\r\n", OPEN)),
    ("a million spaces", b" " * (1 << 20) + b"\r\nversion\r\n", False, (b"", CLOSED)),
    ("lone CRs and LFs", b"\r\r\r\n\n\n\r\nversion\r\n", False, (b"ERROR", OPEN)),
    ("too-large value, swallowed",
     b"set big 0 0 2000000\r\n" + b"z" * 2000000 + b"\r\nversion\r\n", True,
     (b"SERVER_ERROR object too large for cache\r\nVERSION", OPEN)),
    ("pipelined 5000 bad commands", b"bogus\r\n" * 5000 + b"version\r\n", True,
     (b"ERROR\r\n" * 5000 + b"VERSION", OPEN)),
]


def talk(port, data, quiet=QUIET, close_wait=None):
    """Sends data; returns (reply bytes, 'closed'|'open'). A reset counts as closed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    out, state = b"", OPEN
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            state = CLOSED
        if state == OPEN:
            s.settimeout(quiet)
            deadline = time.time() + (close_wait or 30)
            while time.time() < deadline:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    state = CLOSED
                    break
                if not chunk:
                    state = CLOSED
                    break
                out += chunk
                # the trailing `version` answered: everything before it is in
                if data.endswith(b"version\r\n") and out.endswith(b"\r\n") and \
                        b"VERSION " in out[-64:]:
                    break
    finally:
        s.close()
    return out, state


def served(port):
    """A fresh client gets version, set and get answered correctly."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"version\r\nset fresh 0 0 2\r\nok\r\nget fresh\r\n")
        want = b"STORED\r\nVALUE fresh 0 2\r\nok\r\nEND\r\n"
        buf = b""
        deadline = time.time() + 10
        while not buf.endswith(want) and time.time() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        s.close()
        return buf.startswith(b"VERSION ") and buf.endswith(want)
    except OSError:
        return False


def matches(got, want):
    reply, state = got
    wreply, wstate = want
    return state == wstate and reply.startswith(wreply)


def main():
    ck = Checker("malicious")
    oracle = None
    # The oracle's answers do not depend on cached's build: compare once, in the release run.
    if os.path.exists(MEMCACHED) and os.path.basename(CACHED) != "memcached" and not ASAN:
        oracle = Server(binary=MEMCACHED, args=["-m", "64", "-c", "256"])
    with Server(args=["-m", "64", "-c", "256"]) as srv:
        base_kb = srv.rss_kb()
        print("baseline RSS %d KB" % base_kb)
        diffs = 0
        for name, data, strict, want in CASES:
            got = talk(srv.port, data)
            if oracle is not None:
                ogot = talk(oracle.port, data)
                if strict and not matches(ogot, want):
                    print("note: memcached now answers %r to %s (recorded %r)" % (ogot, name, want))
            if strict:
                ck.check(matches(got, want), "%s: got %r, memcached: %r" %
                         (name, (got[0][:120], got[1]), (want[0][:120], want[1])))
            elif not matches(got, want):
                diffs += 1
                print("differs from memcached (allowed) %s: cached %r, memcached %r" %
                      (name, (got[0][:100], got[1]), (want[0][:100], want[1])))
            alive = srv.proc.poll() is None
            ck.check(alive, "%s: server died (exit %s)" % (name, srv.proc.returncode))
            if not alive:
                break
            ck.check(served(srv.port), "%s: a fresh client is not served afterwards" % name)
            rss = srv.rss_kb()
            ck.check(rss - base_kb < RSS_SLACK_KB + ITEM_MEM_KB,
                     "%s: RSS grew to %d KB (baseline %d KB)" % (name, rss, base_kb))
        print("cases: %d (%d strict), loose cases differing from memcached: %d" %
              (len(CASES), sum(1 for c in CASES if c[2]), diffs))
        print("RSS after all cases: %d KB (baseline %d KB)" % (srv.rss_kb(), base_kb))
        ck.check(served(srv.port), "served at the end")
    if oracle is not None:
        oracle.stop()
    ck.done()


if __name__ == "__main__":
    main()
