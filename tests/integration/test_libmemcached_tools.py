"""Debian's libmemcached-tools (1.1.4) against cached, compared with Debian's memcached.

memccp, memccat, memcrm, memcflush, memcstat, memctouch, memcexist, memcping, each run as a
real process with --servers=127.0.0.1:PORT (text protocol). What each prints (stdout, stderr,
ports normalised) and its exit code are checked against expectations and must be identical
for both servers, except memcstat, whose values differ: there the field names are checked.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))

import harness  # noqa: E402

ck = harness.Checker("test_libmemcached_tools")

# Fields memcstat must print for any memcached-compatible server (names from memcached 1.6's
# `stats`; libmemcached prints whatever the server sends, so missing ones show up here).
STAT_FIELDS = ["pid", "uptime", "time", "version", "pointer_size", "rusage_user",
               "rusage_system", "curr_connections", "total_connections", "cmd_get", "cmd_set",
               "cmd_flush", "cmd_touch", "get_hits", "get_misses", "delete_misses",
               "delete_hits", "incr_misses", "incr_hits", "decr_misses", "decr_hits",
               "touch_hits", "touch_misses", "bytes_read", "bytes_written", "limit_maxbytes",
               "threads", "bytes", "curr_items", "total_items", "evictions"]


def tool(port, name, *args, cwd=None):
    """Runs one tool; returns (exit code, stdout, stderr) with the port number normalised."""
    p = subprocess.run([name, "--servers=127.0.0.1:%d" % port] + list(args), cwd=cwd,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    norm = lambda b: re.sub(rb"\b%d\b" % port, b"PORT", b.replace(cwd.encode(), b"DIR")  # noqa
                            if cwd else b).decode(errors="replace")
    return p.returncode, norm(p.stdout), norm(p.stderr)


def run(srv, tag):
    recs = []
    port = srv.port

    def t(label, *args, rc=None, out=None, err_has=None, cwd=None):
        res = tool(port, *args, cwd=cwd)
        recs.append((label, res))
        if rc is not None:
            ck.eq(res[0], rc, "%s %s: exit code (stderr %r)" % (tag, label, res[2][:200]))
        if out is not None:
            ck.eq(res[1], out, "%s %s: stdout" % (tag, label))
        if err_has is not None:
            ck.check(err_has in res[2], "%s %s: stderr %r lacks %r" % (tag, label, res[2], err_has))
        return res

    with tempfile.TemporaryDirectory(prefix="cached-lmt-") as d, srv.connect() as raw:
        for name, body in (("one.txt", b"hello world\n"), ("two.bin", bytes(range(256))),
                           ("three.txt", b"3"), ("empty.txt", b"")):
            with open(os.path.join(d, name), "wb") as f:
                f.write(body)

        t("memcping", "memcping", rc=0, out="")
        t("memccp one", "memccp", "one.txt", cwd=d, rc=0, out="")
        ck.eq(raw.get("one.txt"), (0, b"hello world\n"), "%s memccp stored one.txt" % tag)
        t("memccp flags+expire", "memccp", "--flags=123", "--expire=100", "two.bin", cwd=d, rc=0)
        got = raw.get("two.bin")
        ck.eq(got and got[0], 123, "%s memccp --flags stored flags" % tag)
        ck.eq(got and got[1], bytes(range(256)), "%s memccp binary body" % tag)
        t("memccp empty", "memccp", "empty.txt", cwd=d, rc=0)
        ck.eq(raw.get("empty.txt"), (0, b""), "%s memccp empty file" % tag)
        t("memccp --add existing", "memccp", "--add", "one.txt", cwd=d)
        ck.eq(raw.get("one.txt"), (0, b"hello world\n"), "%s --add kept the value" % tag)
        t("memccp --replace missing", "memccp", "--replace", "three.txt", cwd=d)
        ck.eq(raw.get("three.txt"), None, "%s --replace did not create" % tag)
        t("memccp --add new", "memccp", "--add", "three.txt", cwd=d, rc=0)
        ck.eq(raw.get("three.txt"), (0, b"3"), "%s --add created" % tag)
        t("memccp --absolute", "memccp", "--absolute", os.path.join(d, "three.txt"), rc=0)
        ck.eq(raw.get(os.path.realpath(os.path.join(d, "three.txt"))), (0, b"3"),
              "%s --absolute key is the path" % tag)

        t("memccat", "memccat", "one.txt", rc=0, out="hello world\n\n")
        t("memccat two keys", "memccat", "one.txt", "three.txt", rc=0, out="hello world\n\n3\n")
        t("memccat -F", "memccat", "-F", "two.bin", rc=0)
        t("memccat missing", "memccat", "nokey", rc=1, out="")
        t("memccat missing among", "memccat", "one.txt", "nokey", "three.txt", rc=1)
        t("memccat -v", "memccat", "-v", "three.txt", rc=0)
        outfile = os.path.join(d, "copy.bin")
        t("memccat --file", "memccat", "--file=" + outfile, "two.bin", rc=0)
        with open(outfile, "rb") as f:
            ck.eq(f.read(), bytes(range(256)), "%s memccat --file round trip" % tag)

        t("memcexist yes", "memcexist", "one.txt", rc=0, out="")
        t("memcexist no", "memcexist", "nokey", rc=1, out="")
        t("memcexist -v yes", "memcexist", "-v", "one.txt", rc=0)
        t("memcexist -v no", "memcexist", "-v", "nokey", rc=1)

        t("memctouch yes", "memctouch", "--expire=1", "three.txt", rc=0, out="")
        t("memctouch no", "memctouch", "--expire=1", "nokey", rc=1, out="")
        t("memctouch -v", "memctouch", "-v", "--expire=100", "one.txt", rc=0)

        t("memcrm yes", "memcrm", "empty.txt", rc=0, out="")
        ck.eq(raw.get("empty.txt"), None, "%s memcrm deleted" % tag)
        t("memcrm no", "memcrm", "empty.txt", rc=1, out="")
        t("memcrm -v", "memcrm", "-v", "two.bin", rc=0)
        t("memcrm -v no", "memcrm", "-v", "two.bin", rc=1)

        time.sleep(2.2)
        t("memccat after touch expiry", "memccat", "three.txt", rc=1, out="")
        t("memcexist after touch expiry", "memcexist", "three.txt", rc=1)
        t("memcexist touched 100s", "memcexist", "one.txt", rc=0)

        res = tool(port, "memcstat")
        recs.append(("memcstat rc", res[0]))
        ck.eq(res[0], 0, "%s memcstat exit code" % tag)
        lines = res[1].splitlines()
        ck.eq(lines[:1], ["Server: 127.0.0.1 (PORT)"], "%s memcstat header" % tag)
        fields = {}
        for ln in lines[1:]:
            m = re.match(r"^\t([a-z_0-9:]+): (.*)$", ln)
            ck.check(m is not None, "%s memcstat line format %r" % (tag, ln))
            if m:
                fields[m.group(1)] = m.group(2)
        missing = [f for f in STAT_FIELDS if f not in fields]
        ck.eq(missing, [], "%s memcstat fields missing" % tag)
        ck.eq(fields.get("pid"), str(srv.pid), "%s memcstat pid" % tag)
        ck.check(fields.get("version", "").startswith("1.6."),
                 "%s memcstat version %r" % (tag, fields.get("version")))
        ck.check(fields.get("curr_items", "").isdigit() and int(fields["curr_items"]) >= 1,
                 "%s memcstat curr_items %r" % (tag, fields.get("curr_items")))
        res = tool(port, "memcstat", "--server-version")
        # libmemcached prints the version line on stderr.
        recs.append(("memcstat --server-version", (res[0], re.sub(r"1\.6\.\S+", "1.6.X", res[2]))))
        ck.check(re.match(r"^127\.0\.0\.1:PORT 1\.6\.", res[2]) is not None,
                 "%s memcstat --server-version %r" % (tag, res[2]))
        for arg in ("settings", "items", "slabs"):
            res = tool(port, "memcstat", arg)
            recs.append(("memcstat %s rc" % arg, res[0]))
            ck.eq(res[0], 0, "%s memcstat %s exit code" % (tag, arg))
            ck.check(res[1].startswith("Server: 127.0.0.1 (PORT)\n\t"),
                     "%s memcstat %s output %r" % (tag, arg, res[1][:100]))

        t("memcflush", "memcflush", rc=0, out="")
        t("memcexist after flush", "memcexist", "one.txt", rc=1)
        t("memccat after flush", "memccat", "one.txt", rc=1)
        t("memcping again", "memcping", rc=0, out="")
    return recs


def main():
    dead = harness.free_port()
    res = tool(dead, "memcping")
    ck.eq(res[0], 1, "memcping on a closed port fails")
    ck.check("CONNECTION FAILURE" in res[2], "memcping on a closed port says %r" % res[2])

    def compare(rm, rc):
        ck.eq([r[0] for r in rc], [r[0] for r in rm], "same tool runs")
        for (label, a), (_, b) in zip(rm, rc):
            ck.check(a == b, "same-as-memcached %s: memcached=%r cached=%r" % (label, a, b))

    harness.compare_with_memcached(ck, run, compare)
    ck.done()


if __name__ == "__main__":
    main()
