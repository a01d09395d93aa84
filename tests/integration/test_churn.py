"""Correctness under churn: client threads hammer an overlapping key space with
set/get/multi-get/delete/incr/append/prepend/cas/touch and short expiries, on a small cache
(-m 8) that is evicting while the expiry sweeper reclaims, for a bounded time (30 s; 15 s under
ASan). Every answer is checked for self-consistency; the test prints "wrong answers: N" (must
be 0) and the op counts.

Value format: one or more records, each  key|version|payload|crc32hex;  (crc32 over
"key|version|payload"). append/prepend add whole records, so every value stays a list of
valid records. With concurrent writers the latest version is unknowable, so a get is right
when every record's checksum is valid, every record names the requested key, and the flags
are the key's own (flags = a hash of the key, set by every writer).

Expiry: each thread also writes keys of its own (x:<thread>:<n>) once, with exptime 1, and
never again; 3 s after the set was acknowledged such a key must miss. Numeric keys (n:*) only
see incr/decr/set-of-a-number, and must always read back as a decimal number.

"SERVER_ERROR out of memory storing object" is an allowed answer to a store (with -m 8 there
are only 8 slab pages, so a size class may have none when a value arrives); such replies are
counted and printed, not treated as wrong.
"""
import os
import random
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import ASAN, Checker, Conn, Server  # noqa: E402

DURATION = 15.0 if ASAN else 30.0
THREADS = 6
KEYS = 400
NUM_KEYS = 50
EXPIRED_AFTER = 3.0
ALPHABET = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
OOM = b"SERVER_ERROR out of memory storing object\r\n"
BLOB = bytes(random.Random(7).choice(ALPHABET) for _ in range(1 << 17))


def key_flags(key):
    return zlib.crc32(key) & 0xFFFF


def record(key, version, rnd):
    size = min(len(BLOB) - 1, int(2 ** rnd.uniform(0, 16.5)))
    off = rnd.randrange(len(BLOB) - size)
    body = b"%s|%d|%s" % (key, version, BLOB[off:off + size])
    return b"%s|%08x;" % (body, zlib.crc32(body))


def check_value(key, flags, data):
    """None if data is a valid value of key, else what is wrong."""
    if flags != key_flags(key):
        return "flags %d, key's own are %d" % (flags, key_flags(key))
    if not data.endswith(b";"):
        return "value does not end in a record terminator"
    for rec in data[:-1].split(b";"):
        body, sep, crc = rec.rpartition(b"|")
        if not sep or len(crc) != 8:
            return "malformed record %r" % rec[:60]
        try:
            if zlib.crc32(body) != int(crc, 16):
                return "checksum mismatch in %r" % rec[:60]
        except ValueError:
            return "malformed crc %r" % crc
        rkey = body.split(b"|", 1)[0]
        if rkey != key:
            return "record of key %r returned for %r" % (rkey, key)
    return None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = {}
        self.wrong = []
        self.expired_checked = 0

    def merge(self, ops, wrong, expired_checked):
        with self.lock:
            for k, v in ops.items():
                self.ops[k] = self.ops.get(k, 0) + v
            self.wrong.extend(wrong)
            self.expired_checked += expired_checked


class Client:
    def __init__(self, srv, tid, deadline, stats):
        self.c = Conn(srv.host, srv.port, timeout=30)
        self.tid = tid
        self.rnd = random.Random(tid * 7717)
        self.deadline = deadline
        self.stats = stats
        self.ops = {}
        self.wrong = []
        self.version = 0
        self.pending_expiry = []  # (due time, key)
        self.expired_checked = 0
        self.n_expiring = 0

    def bad(self, what):
        self.wrong.append("thread %d: %s" % (self.tid, what))

    def count(self, op):
        self.ops[op] = self.ops.get(op, 0) + 1

    def expect(self, line, allowed, op):
        if line == OOM:
            # Legitimate under pressure (a class that has no page and cannot get one now):
            # not a wrong answer, but counted and printed.
            self.count("out of memory replies")
            return
        if line not in allowed:
            self.bad("%s: unexpected reply %r" % (op, line[:100]))

    def read_values(self, keys, op, with_cas=False):
        """Reads VALUE blocks until END; checks each; returns {key: (flags, data, cas)}."""
        out = {}
        while True:
            line = self.c.readline()
            if line == b"END\r\n":
                return out
            parts = line.split()
            if len(parts) != (5 if with_cas else 4) or parts[0] != b"VALUE":
                self.bad("%s: bad VALUE line %r" % (op, line[:100]))
                raise ConnectionError("desynchronised")
            key, flags, n = parts[1], int(parts[2]), int(parts[3])
            data = self.c.readexact(n + 2)
            if data[-2:] != b"\r\n":
                self.bad("%s: value of %r not followed by CRLF" % (op, key))
                raise ConnectionError("desynchronised")
            data = data[:-2]
            if key not in keys:
                self.bad("%s: got key %r, not requested" % (op, key))
            why = check_value(key, flags, data)
            if why:
                self.bad("%s %r: %s" % (op, key, why))
            out[key] = (flags, data, int(parts[4]) if with_cas else None)

    def store(self, cmd, key, exptime, extra=b""):
        self.version += 1
        val = record(key, self.tid * 10**9 + self.version, self.rnd)
        self.c.send(b"%s %s %d %d %d%s\r\n%s\r\n" % (cmd, key, key_flags(key), exptime,
                                                    len(val), extra, val))
        return self.c.readline()

    def step(self):
        rnd = self.rnd
        key = b"c:%d" % rnd.randrange(KEYS)
        exptime = rnd.choice([0, 0, 0, 1, 2, 3])
        op = rnd.randrange(100)
        if op < 22:
            self.count("set")
            self.expect(self.store(b"set", key, exptime), (b"STORED\r\n",), "set")
        elif op < 45:
            self.count("get")
            self.c.send(b"get %s\r\n" % key)
            self.read_values({key}, "get")
        elif op < 55:
            self.count("multi-get")
            keys = [b"c:%d" % rnd.randrange(KEYS) for _ in range(rnd.randint(2, 12))]
            self.c.send(b"get %s\r\n" % b" ".join(keys))
            self.read_values(set(keys), "multi-get")
        elif op < 61:
            self.count("delete")
            self.c.send(b"delete %s\r\n" % key)
            self.expect(self.c.readline(), (b"DELETED\r\n", b"NOT_FOUND\r\n"), "delete")
        elif op < 69:
            self.count(("append", "prepend")[op & 1])
            self.expect(self.store((b"append", b"prepend")[op & 1], key, 0),
                        (b"STORED\r\n", b"NOT_STORED\r\n"), "append/prepend")
        elif op < 77:
            self.count("cas")
            self.c.send(b"gets %s\r\n" % key)
            got = self.read_values({key}, "gets", with_cas=True)
            if key in got:
                self.expect(self.store(b"cas", key, exptime, b" %d" % got[key][2]),
                            (b"STORED\r\n", b"EXISTS\r\n", b"NOT_FOUND\r\n"), "cas")
        elif op < 82:
            self.count("touch")
            self.c.send(b"touch %s %d\r\n" % (key, rnd.choice([0, 1, 2, 5])))
            self.expect(self.c.readline(), (b"TOUCHED\r\n", b"NOT_FOUND\r\n"), "touch")
        elif op < 85:
            self.count("add/replace")
            self.expect(self.store((b"add", b"replace")[op & 1], key, exptime),
                        (b"STORED\r\n", b"NOT_STORED\r\n"), "add/replace")
        elif op < 94:
            self.count("incr/decr")
            nkey = b"n:%d" % rnd.randrange(NUM_KEYS)
            if rnd.randrange(10) == 0:
                self.c.send(b"set %s 0 %d 2\r\n10\r\n" % (nkey, rnd.choice([0, 1])))
                self.expect(self.c.readline(), (b"STORED\r\n",), "set number")
            verb = (b"incr", b"decr")[op & 1]
            self.c.send(b"%s %s %d\r\n" % (verb, nkey, rnd.randrange(1, 1000)))
            line = self.c.readline()
            if line == OOM:
                self.count("out of memory replies")
            elif line != b"NOT_FOUND\r\n" and not line.strip().isdigit():
                self.bad("%s: unexpected reply %r" % (verb.decode(), line[:80]))
            self.c.send(b"get %s\r\n" % nkey)
            head = self.c.readline()
            if head != b"END\r\n":
                parts = head.split()
                data = self.c.readexact(int(parts[3]) + 2)[:-2]
                if parts[0] != b"VALUE" or parts[1] != nkey or not data.strip().isdigit():
                    self.bad("get number %r: %r %r" % (nkey, head[:80], data[:40]))
                self.expect(self.c.readline(), (b"END\r\n",), "get number END")
        else:
            self.count("expiring set")
            self.n_expiring += 1
            xkey = b"x:%d:%d" % (self.tid, self.n_expiring)
            self.expect(self.store(b"set", xkey, 1), (b"STORED\r\n",), "expiring set")
            self.pending_expiry.append((time.time() + EXPIRED_AFTER, xkey))
        self.check_expired()

    def check_expired(self):
        """Expiring keys whose time has come must miss."""
        now = time.time()
        while self.pending_expiry and self.pending_expiry[0][0] <= now:
            _, xkey = self.pending_expiry.pop(0)
            self.c.send(b"get %s\r\n" % xkey)
            got = self.read_values({xkey}, "get expired")
            self.expired_checked += 1
            if got:
                self.bad("expired key %r returned %.1f s after its 1 s exptime" %
                         (xkey, EXPIRED_AFTER))

    def run(self):
        try:
            while time.time() < self.deadline:
                self.step()
            # Let the last expiring keys come due, then check them too.
            while self.pending_expiry:
                time.sleep(max(0.0, self.pending_expiry[0][0] - time.time()))
                self.check_expired()
        except Exception as e:  # noqa: BLE001
            self.bad("client error %r" % e)
        finally:
            self.c.close()
            self.stats.merge(self.ops, self.wrong, self.expired_checked)


def main():
    ck = Checker("churn")
    with Server(args=["-m", "8", "-t", "4"]) as srv:
        stats = Stats()
        deadline = time.time() + DURATION
        clients = [Client(srv, i, deadline, stats) for i in range(THREADS)]
        ts = [threading.Thread(target=cl.run) for cl in clients]
        t0 = time.time()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        st = srv.stats()
        total = sum(stats.ops.values())
        print("%d threads, %.0f s, %d ops (%.0f/s): %s" %
              (THREADS, time.time() - t0, total, total / (time.time() - t0),
               ", ".join("%s %d" % kv for kv in sorted(stats.ops.items()))))
        print("expired keys checked: %d" % stats.expired_checked)
        print("server: evictions %s, reclaimed %s, expired_unfetched %s, curr_items %s" %
              (st.get("evictions"), st.get("reclaimed"), st.get("expired_unfetched"),
               st.get("curr_items")))
        for w in stats.wrong[:20]:
            print("WRONG: %s" % w)
        print("wrong answers: %d" % len(stats.wrong))
        ck.eq(len(stats.wrong), 0, "wrong answers")
        ck.check(total > 1000, "enough operations ran (%d)" % total)
        ck.check(stats.expired_checked > 10, "expired keys were checked (%d)" % stats.expired_checked)
        ck.check(int(st.get("evictions", "0")) > 0, "the cache was evicting (evictions > 0)")
        with srv.connect() as c:
            ck.check(c.cmd("version").startswith(b"VERSION "), "served afterwards")
    ck.done()


if __name__ == "__main__":
    main()
