"""Faults around the memory file (-e FILE): what test_warm_restart does not do.

1. SIGUSR1 in the middle of heavy traffic (3 writers, pipelined sets of varied sizes): exit 0,
   and the restart brings back, for every key, a whole value of the generation the client
   last saw STORED for it, or one sent later (never an older one, never a torn one).
2. kill -9 at random moments after SIGUSR1 (while the items are being saved): the next start
   never crashes and is either empty or the complete saved cache, every value whole; a clean
   SIGUSR1 afterwards still restores everything (the file is not left broken).
   SIGUSR1 with SIGTERM, SIGINT and SIGUSR1 sent right after (0-50 ms): exit 0 and the
   save is made (pending signals are dispatched by number: SIGINT came first and dropped it).
3. An -e path that cannot be created (missing directory, read-only filesystem): refused at
   startup with the reason, exit 71.
4. A full filesystem (a small tmpfs, mounted when we are allowed to): an arena that does not
   fit is refused at startup (memcached 1.6.18 maps the sparse file and dies of SIGBUS on the
   first store into it); one that fits takes stores up to -m; a .meta that does not fit at
   save time loses the save only: exit 0, one log line, no .meta.tmp left, and the next
   start is empty and serves.
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, CACHED, Checker, Server, free_port  # noqa: E402

ck = Checker("test_fault_persist")
TMP = tempfile.mkdtemp(prefix="cached-fault-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
MEM = os.path.join(TMP, "mem")
WRITERS = 3
KEYS_PER_WRITER = 400
TRAFFIC_S = 1.5


def value(key_id, gen):
    """A value that says which key and generation it is, with a length that varies."""
    head = b"%d:%d:" % (key_id, gen)
    n = 20 + (key_id * 7 + gen * 131) % 6000
    return head + bytes([65 + (key_id + gen) % 26]) * n


def parse_value(key_id, data):
    """The generation of a whole value of key_id, or None if it is not one."""
    try:
        kid, gen, _ = data.split(b":", 2)
        gen = int(gen)
    except ValueError:
        return None
    if int(kid) != key_id or data != value(key_id, gen):
        return None
    return gen


def get_many(c, ids):
    """{key_id: bytes} for the keys that are there (one multi-get per 100 keys)."""
    out = {}
    for i in range(0, len(ids), 100):
        chunk = ids[i:i + 100]
        c.send(b"get " + b" ".join(b"p%d" % k for k in chunk) + b"\r\n")
        while True:
            line = c.readline()
            if line == b"END\r\n":
                break
            parts = line.split()
            n = int(parts[3])
            out[int(parts[1][1:])] = c.readexact(n + 2)[:-2]
    return out


def clean():
    for name in os.listdir(TMP):
        os.unlink(os.path.join(TMP, name))


def start(args=(), port=None):
    return Server(args=["-e", MEM, "-v", "-m", "32"] + list(args), port=port)


# --------------------------------------------------------- 1. SIGUSR1 under traffic
def usr1_under_traffic():
    clean()
    srv = start(["-t", "4"])
    acked = {}  # key id -> last generation answered STORED
    sent = {}   # key id -> last generation sent
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w):
        ids = list(range(w * KEYS_PER_WRITER, (w + 1) * KEYS_PER_WRITER))
        gen = 0
        try:
            with srv.connect() as c:
                while not stop.is_set() and gen < 10000:
                    gen += 1
                    batch = random.Random(gen * 31 + w).sample(ids, 20)
                    c.send(b"".join(b"set p%d 0 0 %d\r\n%s\r\n" % (k, len(value(k, gen)),
                                                                   value(k, gen)) for k in batch))
                    with lock:
                        for k in batch:
                            sent[k] = gen
                    for k in batch:
                        if c.readline() != b"STORED\r\n":
                            return
                        with lock:
                            acked[k] = gen
        except (OSError, ConnectionError):
            pass  # the server stopped mid-batch: expected

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    time.sleep(TRAFFIC_S)
    rc = srv.stop(signal.SIGUSR1, timeout=60)
    stop.set()
    for t in threads:
        t.join(30)
    ck.eq(rc, 0, "SIGUSR1 during traffic exits 0")
    print("traffic: %d keys acknowledged before SIGUSR1" % len(acked))
    ck.check(len(acked) > 100, "the writers got going (%d keys)" % len(acked))
    srv = start(["-t", "4"], port=srv.port)
    with srv.connect() as c:
        got = get_many(c, sorted(sent))
    older = torn = 0
    for k, g_sent in sent.items():
        data = got.get(k)
        gen = parse_value(k, data) if data is not None else -1
        if data is not None and gen is None:
            torn += 1
        elif gen is None or gen < acked.get(k, 0) or gen > g_sent:
            older += 1
    ck.eq(torn, 0, "no torn value after the restore")
    ck.eq(older, 0, "every key holds what was acknowledged (or sent later) before SIGUSR1")
    ck.eq(srv.stop(), 0, "restored server stops cleanly")


# --------------------------------------------------------- 2. kill -9 while saving
def fill(srv, n, gen):
    with srv.connect() as c:
        for i in range(0, n, 200):
            c.send(b"".join(b"set p%d 0 0 %d noreply\r\n%s\r\n" % (k, len(value(k, gen)),
                                                                   value(k, gen))
                            for k in range(i, min(n, i + 200))))
        ck.eq(c.cmd("mn"), b"MN\r\n", "fill %d done" % gen)
        return int(c.stats()["curr_items"])


def kill_while_saving():
    clean()
    rnd = random.Random(7)
    n = 4000
    port = None
    restored_runs = empty_runs = 0
    for run in range(6):
        srv = start(port=port)
        port = srv.port
        with srv.connect() as c:
            items = int(c.stats()["curr_items"])
            if items:
                got = get_many(c, list(range(n)))
                whole = sum(1 for k, d in got.items() if parse_value(k, d) == run - 1)
                ck.eq(whole, items, "run %d: all %d restored items are whole, of the last fill"
                      % (run, items))
                restored_runs += 1
            else:
                empty_runs += 1
        stored = fill(srv, n, run)
        os.kill(srv.pid, signal.SIGUSR1)
        time.sleep(rnd.uniform(0.0, 0.25 if not ASAN else 0.6))
        srv.stop(signal.SIGKILL)
    srv = start(port=port)
    ck.check(srv.proc.poll() is None, "starts after the last kill")
    stored = fill(srv, n, 99)
    ck.eq(srv.stop(signal.SIGUSR1, timeout=60), 0, "clean SIGUSR1 after the kills")
    srv = start(port=port)
    with srv.connect() as c:
        got = get_many(c, list(range(n)))
    whole = sum(1 for k, d in got.items() if parse_value(k, d) == 99)
    ck.eq(whole, stored, "the clean save restores every item after the kills")
    srv.stop()
    print("kill -9 while saving: %d starts restored the save, %d started empty" %
          (restored_runs, empty_runs))


# --------------------------------------------------------- 2b. SIGUSR1 with SIGTERM/SIGINT right after
def usr1_then_term():
    """SIGUSR1 then SIGTERM, SIGINT and SIGUSR1 again within 0-50 ms: the save asked for is
    made (signals pending together are dispatched by number, SIGINT before SIGUSR1)."""
    clean()
    n = 3000
    port = None
    for run, delay in enumerate((0.0, 0.0, 0.01, 0.05)):
        srv = start(port=port)
        port = srv.port
        if run:
            with srv.connect() as c:
                got = get_many(c, list(range(n)))
            whole = sum(1 for k, d in got.items() if parse_value(k, d) == run - 1)
            ck.eq(whole, n, "after SIGUSR1 + SIGTERM/SIGINT %.2f s later: all restored"
                  % prev_delay)
        fill(srv, n, run)
        os.kill(srv.pid, signal.SIGUSR1)
        if delay:
            time.sleep(delay)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            if srv.proc.poll() is None and srv.pid > 0:
                os.kill(srv.pid, sig)
        ck.eq(srv.stop(timeout=60), 0, "exit 0 after SIGUSR1 + SIGTERM/SIGINT")
        prev_delay = delay
    srv = start(port=port)
    srv.stop()


# --------------------------------------------------------- 3. path that cannot be created
def refused_start(args, want, what):
    port = free_port()
    p = subprocess.run([CACHED, "-p", str(port), "-l", "127.0.0.1"] + list(args) +
                       (["--run-as-root"] if os.geteuid() == 0 else []),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode(errors="replace")
    ck.eq(p.returncode, 71, "%s: exit 71 (%s)" % (what, err.strip()[-200:]))
    ck.check(want in err, "%s: says %r: %s" % (what, want, err.strip()[-200:]))
    ck.check("AddressSanitizer" not in err, "%s: no sanitizer report" % what)


def unwritable():
    refused_start(["-e", os.path.join(TMP, "no-such-dir", "mem")], "No such file",
                  "missing directory")


# --------------------------------------------------------- 4. full / read-only tmpfs
def mount_tmpfs(path, opts):
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


def umount(path):
    subprocess.run(["umount", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def full_filesystem():
    mnt = os.path.join(TMP, "mnt")
    if not mount_tmpfs(mnt, "size=6m"):
        print("full filesystem: skipped (cannot mount a tmpfs here)")
        return
    try:
        # 1. -m 8 needs 8 MB + a header: does not fit in 6 MB.
        refused_start(["-e", os.path.join(mnt, "mem"), "-m", "8"], "No space left",
                      "arena larger than the filesystem")
        # 2. -m 4 fits; then the filesystem fills up, so the .meta cannot be written.
        mem = os.path.join(mnt, "mem")
        srv = Server(args=["-e", mem, "-v", "-m", "4"])
        with srv.connect() as c:
            for i in range(2000):
                c.send(b"set f%d 0 0 10 noreply\r\n0123456789\r\n" % i)
            ck.eq(c.cmd("mn"), b"MN\r\n", "stored into the tmpfs arena")
            big = b"v" * 100000
            ok = sum(1 for i in range(60) if c.set("big%d" % i, big) == b"STORED\r\n")
            ck.check(ok > 0, "large stores into a full-size arena (%d stored)" % ok)
        filler = os.path.join(mnt, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"x" * 65536)
        except OSError:
            pass
        try:
            while True:
                os.write(fd, b"x" * 4096)
        except OSError:
            pass
        os.close(fd)
        with srv.connect() as c:  # (a store into a page still without a block would SIGBUS)
            ck.eq(c.cmd("version"), b"VERSION 1.6.18\r\n", "serves after the filesystem filled")
        ck.eq(srv.stop(signal.SIGUSR1, timeout=30), 0, "SIGUSR1 with a full filesystem exits 0")
        ck.check("No space left" in srv.stderr_text,
                 "the failed save is logged: %s" % srv.stderr_text.strip()[-300:])
        ck.eq(sorted(os.listdir(mnt)), ["filler", "mem"], "no .meta nor .meta.tmp left behind")
        os.unlink(filler)
        srv = Server(args=["-e", mem, "-v", "-m", "4"], port=srv.port)
        with srv.connect() as c:
            ck.eq(c.stats()["curr_items"], "0", "next start is empty")
            ck.eq(c.set("x", "1"), b"STORED\r\n", "and serves")
        srv.stop()
    finally:
        umount(mnt)
    if mount_tmpfs(mnt, "size=6m,ro"):
        try:
            refused_start(["-e", os.path.join(mnt, "mem"), "-m", "2"], "Read-only",
                          "read-only filesystem")
        finally:
            umount(mnt)


def main():
    try:
        usr1_under_traffic()
        kill_while_saving()
        usr1_then_term()
        unwritable()
        full_filesystem()
    finally:
        umount(os.path.join(TMP, "mnt"))
        shutil.rmtree(TMP, ignore_errors=True)
    ck.done()


if __name__ == "__main__":
    main()
