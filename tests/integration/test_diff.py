#!/usr/bin/python3
"""Differential test: cached ($CACHED) against Debian's memcached (the oracle), byte for byte.

Both servers run with the same -m/-I on free loopback ports and get exactly the same bytes.
Part A replays the scripted corpus (diff_corpus.py: inputs only; the expected reply is whatever
memcached answers). Part B runs seeded random command sequences over a few keys in lockstep.
Part C compares `stats` field names (and the deterministic counters after part B).

Normalised before comparing, and nothing else: CAS numbers (each distinct value becomes its
order of first appearance on that connection, so the equality structure must match), the
VERSION string, stats numbers, and incr/decr results that memcached space-pads in place
("9 " vs "9": the protocol says MAY).

Each step of a case is followed by a `version\r\n` sentinel; the reply is read until the
VERSION line comes back, the connection closes, or it goes quiet for too long.
A mismatch is retried once with fresh keys (printed either way); only a repeated one fails.

Usage: test_diff.py [-v] [-k SUBSTRING] [--seeds N] [--commands N] [--show]
  --show prints memcached's reply to every scripted case (to review the corpus).
"""
import argparse
import collections
import os
import random
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import diff_corpus as corpus  # noqa: E402

SERVER_ARGS = ["-m", "64", "-I", "1m", "-t", "2"]
SENTINEL = b"version\r\n"
QUIET = 5.0 if harness.ASAN else 3.0      # idle time that ends a reply with no sentinel
CLOSED = b"<closed>"
TIMEOUT = b"<no reply: timeout>"

# Fields of memcached's `stats` that cached must also report (issue 5).
REQUIRED_STATS = """pid uptime time version pointer_size rusage_user rusage_system curr_connections
total_connections rejected_connections connection_structures cmd_get cmd_set cmd_flush cmd_touch
get_hits get_misses get_expired get_flushed delete_misses delete_hits incr_misses incr_hits
decr_misses decr_hits cas_misses cas_hits cas_badval touch_hits touch_misses bytes_read
bytes_written limit_maxbytes threads bytes curr_items total_items evictions reclaimed
expired_unfetched evicted_unfetched""".split()
# Counters that depend only on the commands sent (compared exactly after each random run).
# (get_expired/get_flushed are not: memcached's LRU crawler may reap an expired item first.)
DETERMINISTIC_STATS = """cmd_get cmd_set cmd_flush cmd_touch get_hits get_misses delete_misses delete_hits incr_misses incr_hits decr_misses decr_hits cas_misses
cas_hits cas_badval touch_hits touch_misses""".split()

VERSION_RE = re.compile(rb"(?:^|(?<=\n))VERSION [^\r\n]*\r\n")
VALUE_RE = re.compile(rb"VALUE (\S+) (\d+) (\d+)( (\d+))?\r\n")


# ------------------------------------------------------------------ connection plumbing
class Link:
    """One raw connection that remembers whether the server closed it."""

    def __init__(self, server):
        self.sock = socket.create_connection((server.host, server.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.closed = False
        self.cas_seen = []          # raw CAS numbers in order of first appearance
        self.cas_of = {}            # key -> newest CAS seen for it

    def close(self):
        self.sock.close()

    def send(self, data):
        if self.closed:
            return False
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
            return False

    def _recv(self):
        """One read: its bytes; b"" at EOF or reset (the link is then closed); None on timeout."""
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            return None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
        return chunk

    def read_until_versions(self, n, quiet=QUIET):
        """Reads until n VERSION lines have come (the last at the very end), EOF, or quiet."""
        buf = b""
        seen, pos = 0, 0        # VERSION lines counted in buf[:pos] (pos: after a newline)
        self.sock.settimeout(quiet)
        try:
            while True:
                end = buf.rfind(b"\n") + 1
                if end > pos:
                    seen += buf.count(b"\nVERSION ", max(pos - 1, 0), end)
                    if pos == 0 and buf.startswith(b"VERSION "):
                        seen += 1
                    pos = end
                if n > 0 and seen >= n and buf.endswith(b"\r\n"):
                    tail = buf[buf.rfind(b"\n", 0, len(buf) - 1) + 1:]
                    if tail.startswith(b"VERSION "):
                        return buf
                chunk = self._recv()
                if chunk is None:
                    return buf + TIMEOUT
                if not chunk:
                    return buf + CLOSED
                buf += chunk
        finally:
            self.sock.settimeout(10)

    def read_quiet(self, quiet):
        """Whatever arrives until `quiet` seconds pass with nothing, or EOF."""
        buf = b""
        self.sock.settimeout(quiet)
        try:
            while True:
                chunk = self._recv()
                if chunk is None:
                    return buf
                if not chunk:
                    return buf + CLOSED
                buf += chunk
        finally:
            self.sock.settimeout(10)

    def note_cas(self, reply):
        for m in VALUE_RE.finditer(reply):
            if m.group(5) is not None:
                self.cas_of[m.group(1)] = m.group(5)
                if m.group(5) not in self.cas_seen:
                    self.cas_seen.append(m.group(5))


def count_version_cmds(data):
    data = b"\n" + data
    return sum(data.count(b"\nversion" + end) for end in (b" ", b"\r", b"\n"))


def normalise(reply, casmap):
    """CAS -> order of first appearance, VERSION -> fixed, '9 ' incr padding -> '9'."""
    out = b""
    i = 0
    while i < len(reply):
        m = VALUE_RE.match(reply, i)
        if m and (i == 0 or reply[i - 2:i] == b"\r\n"):
            n = int(m.group(3))
            data = reply[m.end():m.end() + n]
            rest = reply[m.end() + n:m.end() + n + 2]
            if len(data) == n and rest == b"\r\n":
                if re.fullmatch(rb"\d+ +", data):
                    data = data.rstrip(b" ")
                head = b"VALUE %s %s %d" % (m.group(1), m.group(2), len(data))
                if m.group(5) is not None:
                    cas = m.group(5)
                    if cas not in casmap:
                        casmap[cas] = len(casmap) + 1
                    head += b" <cas#%d>" % casmap[cas]
                out += head + b"\r\n" + data + b"\r\n"
                i = m.end() + n + 2
                continue
        j = reply.find(b"\r\n", i)
        j = len(reply) if j < 0 else j + 2
        line = reply[i:j]
        if line.startswith(b"VERSION ") and line.endswith(b"\r\n"):
            line = b"VERSION <v>\r\n"
        out += line
        i = j
    return out


# ------------------------------------------------------------------ part A: scripted corpus
def substitute(data, prefix, link):
    data = data.replace(b"{p}", prefix)
    if b"{now" in data:        # absolute unix times, e.g. {now+3}
        data = re.sub(rb"\{now([+-]\d+)\}", lambda m: b"%d" % (int(time.time()) + int(m.group(1))),
                      data)
    if b"{cas" in data:
        seen = link.cas_seen
        data = data.replace(b"{cas}", seen[-1] if seen else b"424242")
        data = data.replace(b"{cas1}", seen[0] if seen else b"424242")
    return data


def run_case(server, c, prefix):
    """Runs one case on a fresh connection; returns the list of per-step raw replies."""
    link = Link(server)
    replies = []
    try:
        for step in c.steps:
            if isinstance(step, corpus.Sleep):
                time.sleep(step.secs)
                continue
            if link.closed:
                replies.append(CLOSED)
                continue
            if isinstance(step, bytes):
                data = substitute(step, prefix, link)
                link.send(data + SENTINEL)
                r = link.read_until_versions(count_version_cmds(data) + 1)
            elif isinstance(step, corpus.Bytewise):
                data = substitute(step.data, prefix, link)
                for k in range(len(data)):
                    if not link.send(data[k:k + 1]):
                        break
                    if k % 8 == 7:
                        time.sleep(0.001)
                link.send(SENTINEL)
                r = link.read_until_versions(count_version_cmds(data) + 1)
            elif isinstance(step, corpus.Chunks):
                parts = [substitute(p, prefix, link) for p in step.parts]
                for p in parts:
                    link.send(p)
                    time.sleep(step.pause)
                link.send(SENTINEL)
                r = link.read_until_versions(count_version_cmds(b"".join(parts)) + 1)
            elif isinstance(step, corpus.Raw):
                data = substitute(step.data, prefix, link)
                link.send(data)
                r = link.read_quiet(step.pause)
            elif isinstance(step, corpus.MayClose):
                data = substitute(step.data, prefix, link)
                link.send(data)
                r = link.read_quiet(0.3)
                if not link.closed:
                    link.send(SENTINEL)
                    r += link.read_until_versions(count_version_cmds(data) + 1
                                                  - count_versions_in(r))
            else:
                raise TypeError(step)
            link.note_cas(r)
            replies.append(r)
    finally:
        link.close()
    return replies


def count_versions_in(reply):
    return len(VERSION_RE.findall(reply))


def show(b, limit=600):
    s = repr(b)
    return s if len(s) <= limit else s[:limit] + "...(%d bytes)" % len(b)


def diff_lines(label, w, g):
    """The two replies; long ones from a little before their first differing byte."""
    if len(w) <= 400 and len(g) <= 400:
        return ["  %smemcached: %s" % (label, show(w)), "  %scached:    %s" % (label, show(g))]
    n = 0
    while n < min(len(w), len(g)) and w[n] == g[n]:
        n += 1
    start = max(0, n - 80)
    return ["  %sreplies differ from byte %d (memcached %d bytes, cached %d bytes)"
            % (label, n, len(w), len(g)),
            "  %smemcached[%d:]: %s" % (label, start, show(w[start:], 400)),
            "  %scached[%d:]:    %s" % (label, start, show(g[start:], 400))]


def describe_steps(c, prefix):
    out = []
    for s in c.steps:
        if isinstance(s, corpus.Sleep):
            out.append("sleep(%g)" % s.secs)
        elif isinstance(s, bytes):
            out.append(show(s.replace(b"{p}", prefix), 300))
        elif isinstance(s, corpus.Chunks):
            out.append("chunks" + show([p.replace(b"{p}", prefix) for p in s.parts], 300))
        else:
            out.append("%s(%s)" % (type(s).__name__, show(s.data.replace(b"{p}", prefix), 300)))
    return " | ".join(out)


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []
        self.lock = threading.Lock()

    def ok(self):
        with self.lock:
            self.passed += 1

    def fail(self, name, text):
        with self.lock:
            self.failed += 1
            self.failures.append(name)
            print("MISMATCH %s\n%s" % (name, text), flush=True)


def retry_or_fail(tally, name, text, retry):
    """A mismatch is retried once (fresh keys) before it counts: this box is shared and noisy,
    and memcached's own timing (1 s clock ticks, background threads) must not fail the suite.
    The first mismatch is printed either way."""
    if retry is None:
        tally.fail(name, text)
        return
    print("MISMATCH (first try, retrying) %s\n%s" % (name, text), flush=True)
    retry()


def compare_case(c, idx, oracle, subject, tally, args, attempt=0):
    prefix = b"c%04d_" % (idx + 5000 * attempt)
    assert len(prefix) == corpus.PLEN
    # Both servers run the case at the same time (halves the sleeps); results by thread.
    res = {}

    def go(tag, server):
        try:
            res[tag] = run_case(server, c, prefix)
        except Exception as e:  # noqa: BLE001 - reported as the case's reply
            res[tag] = [b"<exception %r>" % e]
    th = [threading.Thread(target=go, args=("o", oracle)),
          threading.Thread(target=go, args=("s", subject))]
    for t in th:
        t.start()
    for t in th:
        t.join()
    want_raw, got_raw = res["o"], res["s"]
    mo, mc = {}, {}
    want = [normalise(r, mo) for r in want_raw]
    got = [normalise(r, mc) for r in got_raw]
    if args.show:
        print("CASE %s: %s\n  -> %s" % (c.name, describe_steps(c, prefix),
                                         " | ".join(show(w, 400) for w in want)))
    if any(TIMEOUT in w for w in want):
        print("note: memcached went quiet without the sentinel in %s (slow case)" % c.name)
    if want == got:
        tally.ok()
        return
    lines = ["  input:     %s" % describe_steps(c, prefix)]
    for k, (w, g) in enumerate(zip(want, got)):
        if w != g:
            lines.extend(diff_lines("step %d " % (k + 1), w, g))
    retry_or_fail(tally, "case " + c.name, "\n".join(lines),
                  None if attempt else lambda: compare_case(c, idx, oracle, subject, tally, args, 1))


def run_scripted(oracle_bin, subject_bin, tally, args):
    cases = [c for c in corpus.CASES if not args.k or args.k in c.name]
    main = [c for c in cases if c.group == "main"]
    flush = [c for c in cases if c.group == "flush"]
    with harness.Server(oracle_bin, SERVER_ARGS) as o, harness.Server(subject_bin, SERVER_ARGS) as s:
        order = list(enumerate(cases))
        # Cases that sleep run all at once in the background (own keys, no flush).
        slow = [(idx, c) for idx, c in order if c.group == "main"
                and any(isinstance(st, corpus.Sleep) for st in c.steps)]
        threads = [threading.Thread(target=compare_case, args=(c, idx, o, s, tally, args))
                   for idx, c in slow]
        for t in threads:
            t.start()
        for idx, c in order:
            if c.group == "main" and (idx, c) not in slow:
                compare_case(c, idx, o, s, tally, args)
        for t in threads:
            t.join()
        for idx, c in order:
            if c.group == "flush":
                compare_case(c, idx, o, s, tally, args)
        if not args.k or "stats" in args.k:
            compare_stats_names(o, s, tally)
    return len(main) + len(flush)


# ------------------------------------------------------------------ part C: stats names
def stats_names(server):
    link = Link(server)
    try:
        link.send(b"stats\r\n")
        buf = b""
        link.sock.settimeout(5)
        while not buf.endswith(b"END\r\n"):
            chunk = link.sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    except OSError:
        pass
    finally:
        link.close()
    names, bad = [], []
    for line in buf.split(b"\r\n"):
        if not line or line == b"END":
            continue
        parts = line.split(b" ")
        if len(parts) < 3 or parts[0] != b"STAT":
            bad.append(line)
            continue
        names.append(parts[1].decode(errors="replace"))
    return names, bad, buf


def compare_stats_names(oracle, subject, tally):
    want, _, _ = stats_names(oracle)
    got, bad, raw = stats_names(subject)
    problems = []
    if not raw.endswith(b"END\r\n"):
        problems.append("reply does not end in END: %s" % show(raw[-200:]))
    if bad:
        problems.append("lines not 'STAT name value': %s" % show(bad[:5]))
    missing = [n for n in REQUIRED_STATS if n in want and n not in got]
    if missing:
        problems.append("required fields missing: %s" % " ".join(missing))
    common_w = [n for n in want if n in got]
    common_g = [n for n in got if n in want]
    if common_w != common_g:
        problems.append("common fields in another order:\n    memcached: %s\n    cached:    %s"
                        % (" ".join(common_w), " ".join(common_g)))
    extra = [n for n in got if n not in want]
    lacking = [n for n in want if n not in got and n not in REQUIRED_STATS]
    if lacking or extra:
        print("note: stats fields only memcached has (not required): %s" % " ".join(lacking))
        print("note: stats fields only cached has: %s" % " ".join(extra))
    if problems:
        tally.fail("stats-field-names", "\n".join("  " + p for p in problems))
    else:
        tally.ok()


# ------------------------------------------------------------------ part B: random sequences
KEYS = [b"{ns}k%d" % i for i in range(8)]     # {ns}: per-seed namespace


class Gen:
    """Builds one random command from the seed; `pick_cas` chooses a symbolic CAS reference."""

    def __init__(self, seed):
        self.r = random.Random(seed)
        self.padded = set()     # keys incr/decr touched since their last set/delete

    def value(self):
        r = self.r
        x = r.random()
        if x < 0.50:
            return b"%d" % r.choice([0, 1, 2, 9, 10, 99, 100, 1000, r.randrange(10 ** 6),
                                     r.randrange(10 ** 12)])
        if x < 0.57:
            return r.choice([b" 12", b"12 ", b"007", b"-5", b"1a2", b"", b"0", b"18446744073709551616"])
        n = r.choice([0, 1, 2, 3, 5, 8, 20, 100, 1000, 5000])
        alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789 "
        v = bytes(r.choice(alphabet) for _ in range(n))
        if n > 4 and r.random() < 0.1:
            v = v[:2] + b"\r\n" + v[2:]
        return v

    def exptime(self):
        return self.r.choice([0, 0, 0, 0, 0, 1000, 100000, -1, 2592001])

    def noreply(self):
        return b" noreply" if self.r.random() < 0.15 else b""

    def next(self):
        """Returns (template, kind): template may hold b'{casref}'."""
        r = self.r
        k = r.choice(KEYS)
        cmd = r.choices(["set", "add", "replace", "append", "prepend", "cas", "get", "gets",
                         "gat", "gats", "delete", "incr", "decr", "touch", "flush_all", "bad"],
                        [14, 6, 6, 6, 5, 10, 10, 9, 3, 3, 5, 9, 6, 4, 0.4, 2])[0]
        if cmd in ("append", "prepend") and k in self.padded:
            cmd = "set"
        if cmd in ("set", "add", "replace", "append", "prepend", "cas"):
            v = self.value()
            flags = r.choice([0, 0, 1, 16, 4294967295])
            head = b"%s %s %d %d %d" % (cmd.encode(), k, flags, self.exptime(), len(v))
            if cmd == "cas":
                head += b" {casref}"
            if cmd == "set":
                self.padded.discard(k)
            return head + self.noreply() + b"\r\n" + v + b"\r\n"
        if cmd in ("get", "gets"):
            keys = r.sample(KEYS, r.choice([1, 1, 2, 3, 8]))
            return cmd.encode() + b" " + b" ".join(keys) + b"\r\n"
        if cmd in ("gat", "gats"):
            keys = r.sample(KEYS, r.choice([1, 2, 3]))
            return b"%s %d %s\r\n" % (cmd.encode(), r.choice([0, 1000, 100000]), b" ".join(keys))
        if cmd == "delete":
            self.padded.discard(k)
            return b"delete " + k + self.noreply() + b"\r\n"
        if cmd in ("incr", "decr"):
            self.padded.add(k)
            delta = r.choice([b"0", b"1", b"1", b"7", b"100", b"1000000", b"abc", b"-1"])
            return b"%s %s %s%s\r\n" % (cmd.encode(), k, delta, self.noreply())
        if cmd == "touch":
            return b"touch %s %d%s\r\n" % (k, r.choice([0, 1000, -1]), self.noreply())
        if cmd == "flush_all":
            self.padded.clear()
            return b"flush_all" + r.choice([b"", b" 0"]) + self.noreply() + b"\r\n"
        return r.choice([b"foo\r\n", b"get\r\n", b"incr " + k + b"\r\n",
                         b"set " + k + b" x 0 1\r\n", b"GET " + k + b"\r\n", b"\r\n",
                         b"touch " + k + b"\r\n", b"delete " + k + b" 10\r\n"])


COVERAGE = collections.Counter()


def reply_kind(out):
    first = out.split(b"\r\n", 1)[0]
    if first.startswith(b"VALUE"):
        return b"hit"
    if first.isdigit():
        return b"number"
    if first.startswith(b"VERSION"):
        return b"(noreply)"
    return first.split(b" ")[0]


def casref(link, choice):
    """Translates a symbolic CAS choice into this server's actual number."""
    kind, j = choice
    if kind == "key":
        return link.cas_of.get(j, b"987654321")
    if kind == "seen" and j < len(link.cas_seen):
        return link.cas_seen[j]
    if kind == "seen":
        return b"987654321"
    return j


def run_random(o, s, seed, ncmds, tally, attempt=0):
    """One seeded sequence on fresh connections to the shared servers o (oracle), s."""
    gen = Gen(seed)
    pick = random.Random(seed * 7919 + 1)
    ns = b"%s%d_" % (b"r" if attempt else b"s", seed)
    retry = None if attempt else (lambda: run_random(o, s, seed, ncmds, tally, 1))
    before_o, before_s = o.stats(), s.stats()
    lo, ls = Link(o), Link(s)
    mo, ms = {}, {}
    history = []
    failed = None
    try:
        for i in range(ncmds):
            tmpl = gen.next().replace(b"{ns}", ns)
            choice = None
            if b"{casref}" in tmpl:
                ckey = tmpl.split(b" ")[1]
                x = pick.random()
                if ckey in lo.cas_of and x < 0.6:
                    choice = ("key", ckey)      # the key's own last CAS: often a hit
                elif lo.cas_seen and x < 0.85:
                    # mostly a recent one, so hits are common
                    n = len(lo.cas_seen)
                    choice = ("seen", max(0, n - 1 - int(pick.expovariate(0.7))))
                else:
                    choice = ("lit", pick.choice([b"0", b"1", b"99999999999"]))
            outs = []
            for link, m in ((lo, mo), (ls, ms)):
                data = tmpl.replace(b"{casref}", casref(link, choice)) if choice else tmpl
                link.send(data + SENTINEL)
                r = link.read_until_versions(1)
                link.note_cas(r)
                outs.append(normalise(r, m))
            shown = tmpl if not choice else tmpl.replace(
                b"{casref}", b"<cas#%d>" % (choice[1] + 1) if choice[0] == "seen"
                else b"<last cas of %s>" % choice[1] if choice[0] == "key" else choice[1])
            history.append(shown)
            COVERAGE[(tmpl.split(b" ")[0].split(b"\r")[0], reply_kind(outs[0]))] += 1
            if outs[0] != outs[1]:
                failed = (i, shown, outs)
                break
            if lo.closed or ls.closed:
                break
    finally:
        lo.close()
        ls.close()
    name = "random seed=%d" % seed
    if failed:
        i, shown, outs = failed
        ctx = "\n".join("      " + show(h, 200) for h in history[-9:-1])
        retry_or_fail(tally, name, "  command #%d: %s\n%s\n  (previous commands, oldest first:)\n%s"
                      % (i + 1, show(shown), "\n".join(diff_lines("", outs[0], outs[1])), ctx), retry)
        return
    after_o, after_s = o.stats(), s.stats()

    def delta(after, before, f):
        try:
            return int(after[f]) - int(before[f])
        except (KeyError, ValueError):
            return None
    diffs = ["%s memcached=%s cached=%s" % (f, delta(after_o, before_o, f), delta(after_s, before_s, f))
             for f in DETERMINISTIC_STATS
             if f in after_o and delta(after_o, before_o, f) != delta(after_s, before_s, f)]
    if diffs:
        retry_or_fail(tally, name + " counters", "  after %d commands: %s" % (ncmds, "; ".join(diffs)),
                      retry)
        return
    tally.ok()


# ------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="only scripted cases whose name contains this")
    ap.add_argument("--seeds", type=int, default=10 if harness.ASAN else 20)
    ap.add_argument("--commands", type=int, default=200 if harness.ASAN else 300)
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--no-random", action="store_true")
    args = ap.parse_args()
    oracle, subject = harness.MEMCACHED, harness.CACHED
    for b in (oracle, subject):
        if not os.access(b, os.X_OK):
            print("not executable: %s" % b)
            print("diff: 0 passed, 1 failed")
            sys.exit(1)
    t0 = time.time()
    tally = Tally()
    n = run_scripted(oracle, subject, tally, args)
    t1 = time.time()
    print("scripted: %d cases + stats names, %d matched, %d mismatched (%.1fs)"
          % (n, tally.passed, tally.failed, t1 - t0), flush=True)
    if not args.no_random and not args.k:
        p0, f0 = tally.passed, tally.failed
        with harness.Server(oracle, SERVER_ARGS) as o, harness.Server(subject, SERVER_ARGS) as s:
            for seed in range(1, args.seeds + 1):
                run_random(o, s, seed, args.commands, tally)
        cov = collections.defaultdict(list)
        for (c, k), n in sorted(COVERAGE.items()):
            cov[c.decode(errors="replace") or "''"].append("%s=%d" % (k.decode(), n))
        print("random coverage (memcached's replies): "
              + "; ".join("%s %s" % (c, " ".join(v)) for c, v in sorted(cov.items())))
        print("random: %d seeds x %d commands, %d matched, %d mismatched (%.1fs)"
              % (args.seeds, args.commands, tally.passed - p0, tally.failed - f0,
                 time.time() - t1), flush=True)
    if tally.failures:
        print("mismatched: %s" % ", ".join(tally.failures))
    print("diff: %d passed, %d failed" % (tally.passed, tally.failed), flush=True)
    sys.exit(1 if tally.failed or not tally.passed else 0)


if __name__ == "__main__":
    main()
