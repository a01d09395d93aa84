"""Warm restart (-e FILE, SIGUSR1): items come back with their value, flags, CAS and TTL,
after every kind of history; anything the restore cannot trust starts empty with one log line.

1. history: TTLs none/short/long/absolute/already expired, flags, append/prepend, incr/decr
   (in place and grown), touch, gat, a meta stale item (md I) and its win token, large
   values up to 1 MB with -I 2m. SIGUSR1, wait past the short TTL, restart (in the same
   second as well), compare every item and its CAS; the CAS counter continues above them.
2. kill -9 mid-write (after a warm start, too): the next start is empty: never an old
   snapshot, never a torn value.
3. each corrupt or mismatched file starts empty, logs exactly one "warm restart:" line
   saying why, and then serves normally.
"""
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, Checker, Server  # noqa: E402

ck = Checker("test_warm_restart")
TMP = tempfile.mkdtemp(prefix="cached-warm-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
MEM = os.path.join(TMP, "mem")
META = MEM + ".meta"


def start(args=(), port=None):
    return Server(args=["-e", MEM, "-v"] + list(args), port=port)


def save(srv):
    rc = srv.stop(signal.SIGUSR1)
    ck.eq(rc, 0, "SIGUSR1 exits 0")
    return srv.stderr_text


def warm_lines(text):
    return [l for l in text.splitlines() if "warm restart:" in l]


def mg(c, key, flags="v f c t s"):
    c.send("mg %s %s\r\n" % (key, flags))
    line = c.readline()
    if line.startswith(b"VA "):
        n = int(line.split()[1])
        data = c.readexact(n + 2)[:-2]
        return line.decode().strip(), data
    return line.decode().strip(), None


def fields(line):
    """The flag tokens of an mg reply as a dict (letter -> rest)."""
    return {t[0]: t[1:] for t in line.split()[2:]} if line.startswith("VA") else {}


def clean():
    for p in (MEM, META, MEM + ".meta.tmp"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------- 1. every kind of history
def history():
    clean()
    args = ["-m", "128", "-I", "2m"]
    s = start(args)
    now = int(time.time())
    with s.connect() as c:
        ok = b"STORED\r\n"
        ck.eq(c.set("plain", "v0"), ok, "set plain")
        ck.eq(c.set("short", "s", exptime=2), ok, "set short ttl")
        ck.eq(c.set("long", "l", exptime=1000), ok, "set long ttl")
        ck.eq(c.set("abs", "a", exptime=now + 1000), ok, "set absolute ttl")
        ck.eq(c.set("gone", "g", exptime=-1), ok, "set already expired")
        ck.eq(c.set("flags", "f", flags=0xDEADBEEF), ok, "set flags")
        ck.eq(c.set("app", "mid", flags=7), ok, "set app")
        ck.eq(c.set("app", "_end", cmd="append"), ok, "append")
        ck.eq(c.set("app", "start_", cmd="prepend"), ok, "prepend")
        ck.eq(c.set("ctr", "10"), ok, "set ctr")
        ck.eq(c.cmd("incr ctr 5"), b"15\r\n", "incr in place")
        ck.eq(c.cmd("decr ctr 3"), b"12\r\n", "decr in place")
        ck.eq(c.set("ctr2", "99", exptime=500), ok, "set ctr2")
        ck.eq(c.cmd("incr ctr2 1"), b"100\r\n", "incr grows")
        ck.eq(c.set("tch", "t", exptime=1000), ok, "set tch")
        ck.eq(c.cmd("touch tch 50"), b"TOUCHED\r\n", "touch")
        ck.eq(c.set("gatk", "g2"), ok, "set gatk")
        c.send("gat 300 gatk\r\n")
        c.read_until()
        ck.eq(c.set("stale", "old", flags=3), ok, "set stale")
        ck.eq(c.cmd("md stale I"), b"HD\r\n", "md I marks stale")
        first = mg(c, "stale", "v c")[0]
        ck.check(" W" in first and " X" in first, "stale item: win token and X: %s" % first)
        for i in range(21):  # 2 B .. 1 MB
            n = 2 ** i
            ck.eq(c.set("big%d" % i, ("%d" % i)[0] * n, flags=i), ok, "set big%d" % i)
        c.send("".join("set k%d %d 0 %d noreply\r\n%s\r\n" % (i, i % 65536, len("val%d" % i), "val%d" % i)
                       for i in range(20000)))
        ck.eq(c.cmd("mn"), b"MN\r\n", "20000 small sets")
        keys = ["plain", "long", "abs", "flags", "app", "ctr", "ctr2", "tch", "gatk", "stale"]
        keys += ["big%d" % i for i in range(21)] + ["k%d" % i for i in range(0, 20000, 7)]
        t_before = time.time()
        before = {k: mg(c, k) for k in keys}
        items = int(c.stats()["curr_items"])
    t_save = time.time()
    err = save(s)
    ck.check(any("saved" in l for l in warm_lines(err)), "save logged: %s" % warm_lines(err))
    ck.check(os.path.exists(META), ".meta written")
    time.sleep(max(0, 2.3 - (time.time() - t_save)))  # "short" (2 s) runs out while down
    s = start(args, port=s.port)
    down = time.time() - t_save
    with s.connect() as c:
        st = c.stats()  # answered: the restore is done (the port listens before it)
        ck.check(not os.path.exists(META), ".meta consumed at start")
        # 20000 small + 21 big + 10 named; "short" and "gone" expired
        ck.eq(int(st["curr_items"]), 20031, "every live item back (%d before)" % items)
        max_cas = 0
        for k, (line, data) in before.items():
            got_line, got = mg(c, k)
            b, a = fields(line), fields(got_line)
            ck.check(got == data, "%s value (%s bytes, want %s)" % (k, len(got or b""), len(data or b"")))
            ck.eq(a.get("f"), b.get("f"), "%s flags" % k)
            ck.eq(a.get("c"), b.get("c"), "%s cas" % k)
            ck.eq(a.get("s"), b.get("s"), "%s size" % k)
            max_cas = max(max_cas, int(b.get("c", "0")))
            bt, at = int(b.get("t", "-1")), int(a.get("t", "-1"))
            down = time.time() - t_before  # since the TTL was read (a loaded machine is slow)
            if bt == -1:
                ck.eq(at, -1, "%s: still no TTL" % k)
            else:
                ck.check(bt - down - 2 <= at <= bt, "%s: TTL kept counting down (%d -> %d over %.1fs)"
                         % (k, bt, at, down))
            ck.eq(" X" in got_line, " X" in line, "%s stale bit" % k)
        ck.check(" Z" in mg(c, "stale", "v")[0], "stale item's token survives (Z)")
        ck.eq(c.get("short"), None, "short TTL expired while down")
        ck.eq(c.get("gone"), None, "already expired item stays gone")
        ck.eq(c.cmd("incr ctr 1"), b"13\r\n", "counter continues")
        ck.eq(c.set("fresh", "x"), b"STORED\r\n", "set after restore")
        new_cas = int(fields(mg(c, "fresh")[0])["c"])
        ck.check(new_cas > max_cas, "CAS counter continues above restored CAS (%d > %d)" % (new_cas, max_cas))
        ck.check(int(st["hash_power_level"]) >= 16, "hash table restored")
        before2 = {k: mg(c, k) for k in ("plain", "app", "ctr", "fresh", "big20")}
    # a restart in the same second as the stop (systemctl restart) restores too
    save(s)
    s = start(args, port=s.port)
    with s.connect() as c:
        for k, (line, data) in before2.items():
            got_line, got = mg(c, k)
            ck.check(got == data, "same-second restart: %s value" % k)
            ck.eq(fields(got_line).get("c"), fields(line).get("c"), "same-second restart: %s cas" % k)
        ck.eq(c.cmd("flush_all"), b"OK\r\n", "flush_all")
    save(s)
    s = start(args, port=s.port)
    with s.connect() as c:
        ck.eq(c.stats()["curr_items"], "0", "flushed items are not restored")
    s.stop()


# ---------------------------------------------------------------- 2. kill -9 mid-write
def kill9():
    clean()
    s = start()
    with s.connect() as c:
        for i in range(2000):
            c.set("w%d" % i, "A%d" % i)
    save(s)
    s = start(port=s.port)  # warm start: consumes .meta
    with s.connect() as c:
        ck.eq(c.get("w5"), (0, b"A5"), "warm start before the kill")
    stop = threading.Event()

    def writer():
        try:
            with s.connect() as c:
                i = 0
                while not stop.is_set() and i < 10 ** 6:
                    c.set("w%d" % (i % 2000), "B%d-%s" % (i % 2000, "x" * (i % 300)))
                    i += 1
        except (OSError, ConnectionError):
            pass

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.5)
    s.stop(signal.SIGKILL)
    stop.set()
    t.join()
    s = start(port=s.port)
    with s.connect() as c:
        ck.eq(c.stats()["curr_items"], "0", "after kill -9: starts empty (no old snapshot)")
        ck.eq(c.get("w5"), None, "after kill -9: no value of the killed run")
        ck.eq(c.set("w5", "C"), b"STORED\r\n", "serves after kill -9")
        ck.eq(c.get("w5"), (0, b"C"), "correct value after kill -9")
    s.stop()
    lines = warm_lines(s.stderr_text)
    ck.eq(len(lines), 1, "one log line after kill -9: %s" % lines)
    ck.check(lines and "not saved" in lines[0], "it says the file was not saved cleanly")


# ---------------------------------------------------------------- 3. refused files
def refused(name, mutate, args2=(), args1=(), want="", port=None):
    """Saves a small cache with args1, applies mutate(), starts with args2: empty + 1 line."""
    clean()
    s = start(args1, port=port)
    with s.connect() as c:
        for i in range(300):
            c.set("r%d" % i, "v%d" % i)
    save(s)
    mutate()
    s = start(args2, port=s.port)
    with s.connect() as c:
        ck.eq(c.stats()["curr_items"], "0", "%s: starts empty" % name)
        ck.eq(c.get("r1"), None, "%s: nothing restored" % name)
        ck.eq(c.set("r1", "new"), b"STORED\r\n", "%s: serves" % name)
        ck.eq(c.get("r1"), (0, b"new"), "%s: serves the new value" % name)
    s.stop()
    lines = warm_lines(s.stderr_text)
    ck.eq(len(lines), 1, "%s: exactly one log line (%s)" % (name, lines))
    ck.check(lines and want in lines[0] and "starting empty" in lines[0],
             "%s: line says %r: %s" % (name, want, lines))
    ck.check(not os.path.exists(META), "%s: .meta consumed" % name)
    return s.port


def overwrite(path, data):
    with open(path, "wb") as f:
        f.write(data)


def corrupt_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


def refusals():
    port = refused("truncated memory file", lambda: os.truncate(MEM, os.path.getsize(MEM) // 2),
                   want="truncated")
    refused("memory file cut to nothing", lambda: os.truncate(MEM, 0), want="truncated", port=port)
    refused("corrupt arena byte", lambda: corrupt_byte(MEM, 4096 + 40), want="checksum", port=port)
    refused("garbage .meta", lambda: overwrite(META, os.urandom(5000)), want="magic", port=port)
    refused("empty .meta", lambda: overwrite(META, b""), want="0 bytes", port=port)
    refused("cut .meta", lambda: os.truncate(META, os.path.getsize(META) // 2), want="truncated",
            port=port)
    refused(".meta cut by 8 bytes", lambda: os.truncate(META, os.path.getsize(META) - 8),
            want="corrupt", port=port)

    def flip_meta():
        corrupt_byte(META, 200)
    refused("bit flip in .meta", flip_meta, want="corrupt", port=port)

    def foreign_version():
        with open(META, "r+b") as f:
            f.seek(8)
            f.write((99).to_bytes(4, "little"))
    refused("foreign version", foreign_version, want="incompatible", port=port)
    refused("changed -m", lambda: None, args2=["-m", "32"], want="-m 64", port=port)
    refused("changed -I", lambda: None, args2=["-I", "2m"], want="-I", port=port)
    refused("changed -f", lambda: None, args2=["-f", "1.5"], want="-f", port=port)
    refused("changed -n", lambda: None, args2=["-n", "64"], want="-n", port=port)
    refused("changed -C", lambda: None, args2=["-C"], want="-C", port=port)

    # .meta of a larger -m beside a smaller file, started with that larger -m
    big_meta = os.path.join(TMP, "big.meta")

    def keep_big():
        shutil.copy(META, big_meta)
    refused("larger -m (keep its .meta)", keep_big, args1=["-m", "128"], args2=["-m", "64"],
            want="-m 128", port=port)

    def swap_in_big():
        os.unlink(META)
        shutil.copy(big_meta, META)
    refused(".meta from larger -m, started with it", swap_in_big, args2=["-m", "128"],
            want="truncated or resized", port=port)

    # a .meta of another run of the same file (a copy put back)
    old_meta = os.path.join(TMP, "old.meta")

    def other_run():
        shutil.copy(META, old_meta)
        s = start(port=port)  # restores, consumes, new run id
        save(s)
        os.unlink(META)
        shutil.copy(old_meta, META)
    refused(".meta of another run", other_run, want="run id", port=port)

    # no .meta at all: SIGTERM saves nothing
    clean()
    s = start(port=port)
    with s.connect() as c:
        c.set("t1", "v")
    ck.eq(s.stop(signal.SIGTERM), 0, "SIGTERM exits 0")
    ck.check(not os.path.exists(META), "SIGTERM writes no .meta")
    s = start(port=port)
    with s.connect() as c:
        ck.eq(c.get("t1"), None, "after SIGTERM: starts empty")
    s.stop()
    lines = warm_lines(s.stderr_text)
    ck.check(len(lines) == 1 and "SIGTERM" in lines[0], "after SIGTERM: one line: %s" % lines)

    # a second process on the same file is refused at once
    s = start(port=port)
    other = Server(args=["-e", MEM], wait=False)
    rc = other.proc.wait(20 if ASAN else 10)
    other.stop()
    ck.check(rc != 0 and "in use" in other.stderr_text, "second process on the file refused: %s"
             % other.stderr_text.strip()[-200:])
    with s.connect() as c:
        ck.eq(c.set("still", "up"), b"STORED\r\n", "first process unharmed")
    s.stop()


try:
    history()
    kill9()
    refusals()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
ck.done()
