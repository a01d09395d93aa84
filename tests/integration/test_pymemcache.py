"""pymemcache 3.5 used directly against cached, compared with Debian's memcached.

Client with the pickle serde, get_many/set_many/delete_many, gets/cas, the noreply defaults
(default_noreply=True: set/delete send noreply and a later get sees the effect), incr/decr,
touch, append/prepend/replace, version, flush_all, stats() parsing, PooledClient and
HashClient. Each operation's outcome is recorded; the lists from both servers must match.
"""
import datetime
import decimal
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "django_app"))

import harness  # noqa: E402
import apichecks  # noqa: E402
from pymemcache.client.base import Client, PooledClient  # noqa: E402
from pymemcache.client.hash import HashClient  # noqa: E402
from pymemcache import serde  # noqa: E402

ck = harness.Checker("test_pymemcache")
MANY = 50 if harness.ASAN else 500

# Fields memcached 1.6 prints in `stats` that pymemcache converts with int() (its default
# converter): all must be present and numeric.
INT_STATS = ["pid", "uptime", "time", "pointer_size", "curr_connections", "total_connections",
             "cmd_get", "cmd_set", "cmd_flush", "cmd_touch", "get_hits", "get_misses",
             "get_expired", "delete_misses", "delete_hits", "incr_misses", "incr_hits",
             "decr_misses", "decr_hits", "cas_misses", "cas_hits", "cas_badval", "touch_hits",
             "touch_misses", "bytes_read", "bytes_written", "limit_maxbytes", "threads",
             "bytes", "curr_items", "total_items", "evictions", "reclaimed"]
FLOAT_STATS = ["rusage_user", "rusage_system"]


def run(port, tag):
    R = apichecks.Recorder(ck, tag)
    # The two clients Django does not use: default_noreply=True (pymemcache's default).
    c = Client(("127.0.0.1", port), serde=serde.pickle_serde, connect_timeout=5, timeout=10)
    w = Client(("127.0.0.1", port), serde=serde.PickleSerde(), default_noreply=False,
               connect_timeout=5, timeout=10)

    # -- noreply defaults: set returns True without waiting; the effect is visible afterwards
    R.expect("noreply set returns True", lambda: c.set("nr", "v1"), True)
    R.expect("get after noreply set", lambda: c.get("nr"), "v1")
    R.expect("noreply add existing still True", lambda: c.add("nr", "v2"), True)
    R.expect("add did not overwrite", lambda: c.get("nr"), "v1")
    R.expect("noreply replace", lambda: c.replace("nr", "v3"), True)
    R.expect("get after noreply replace", lambda: c.get("nr"), "v3")
    R.expect("noreply delete", lambda: c.delete("nr"), True)
    R.expect("get after noreply delete", lambda: c.get("nr"), None)
    R.expect("noreply delete missing", lambda: c.delete("nr"), True)
    R.expect("noreply incr missing (incr waits by default)", lambda: c.incr("nr", 1), None)
    R.expect("explicit noreply incr", lambda: (c.set("nrn", 5), c.incr("nrn", 3, noreply=True))[1],
             None)
    R.expect("get after noreply incr", lambda: c.get("nrn"), 8)
    R.expect("noreply set_many returns []", lambda: c.set_many({"nm1": 1, "nm2": 2}), [])
    R.expect("get_many after noreply set_many", lambda: c.get_many(["nm1", "nm2"]),
             {"nm1": 1, "nm2": 2})
    R.expect("noreply touch", lambda: c.touch("nm1", 100), True)
    R.expect("noreply flush_all", lambda: c.flush_all(), True)
    R.expect("get after noreply flush_all", lambda: c.get("nm1"), None)
    R.expect("stream in sync after noreply", lambda: (c.set("sync", 1), c.get("sync"))[1], 1)

    # -- waiting client: real replies
    R.expect("set", lambda: w.set("k", "v"), True)
    R.expect("add existing", lambda: w.add("k", "x"), False)
    R.expect("add new", lambda: w.add("k2", "x"), True)
    R.expect("replace existing", lambda: w.replace("k2", "y"), True)
    R.expect("replace missing", lambda: w.replace("nokey", "y"), False)
    R.expect("append bytes", lambda: (w.set("ap", b"mid"), w.append("ap", b">"))[1], True)
    R.expect("prepend bytes", lambda: w.prepend("ap", b"<"), True)
    R.expect("get appended", lambda: w.get("ap"), b"<mid>")
    R.expect("append missing", lambda: w.append("noap", b"x"), False)
    R.expect("prepend missing", lambda: w.prepend("noap", b"x"), False)
    R.expect("delete existing", lambda: w.delete("k2"), True)
    R.expect("delete missing", lambda: w.delete("k2"), False)
    R.expect("get default", lambda: w.get("k2", "dflt"), "dflt")
    R.expect("dict-style set/get", lambda: (w.__setitem__("ds", "dv"), w["ds"])[1], "dv")
    R.expect("dict-style missing", lambda: w["nods"], ("exc", "KeyError"))

    # -- serde round trips
    vals = {"bytes": b"\x00\xffbin\r\n", "str": "t\u00e9xt \u2603", "int": 12345,
            "neg": -12, "big": 2 ** 80, "float": 2.5, "list": [1, [2, 3]], "dict": {"a": (1, 2)},
            "dt": datetime.datetime(2023, 1, 2, 3, 4, 5), "dec": decimal.Decimal("1.10"),
            "custom": apichecks.Custom(1, "two"), "none": None, "empty": b""}
    for name, v in vals.items():
        R.expect("serde %s" % name, lambda: (w.set("sd-" + name, v), w.get("sd-" + name))[1], v)
    with harness.Conn("127.0.0.1", port) as raw:
        for name, flags in (("bytes", 0), ("str", 16), ("int", 2), ("list", 1), ("none", 1)):
            R.expect("flags %s" % name, lambda: raw.get("sd-" + name)[0], flags)
        R.expect("raw int text", lambda: raw.get("sd-int")[1], b"12345")

    # -- many
    data = {"many-%05d" % i: ("v%d" % i) * (i % 7 + 1) for i in range(MANY)}
    R.expect("set_many %d" % MANY, lambda: w.set_many(data), [])
    R.expect("get_many %d" % MANY, lambda: w.get_many(list(data) + ["many-missing"]), data)
    R.expect("delete_many", lambda: w.delete_many(list(data)[: MANY // 2]), True)
    R.expect("get_many after delete_many", lambda: len(w.get_many(list(data))), MANY - MANY // 2)
    R.expect("delete_many noreply", lambda: c.delete_many(list(data)), True)
    # noreply commands are only ordered on their own connection: read back through `c`.
    R.expect("get_many after delete_many noreply", lambda: c.get_many(list(data)), {})
    R.expect("get_many empty", lambda: w.get_many([]), {})

    # -- gets / cas (cas values differ between servers: record relations, not numbers)
    w.set("c", "one")
    v1, cas1 = w.gets("c")
    R.expect("gets value", lambda: v1, "one")
    R.expect("gets cas is digits", lambda: isinstance(cas1, bytes) and cas1.isdigit(), True)
    R.expect("gets missing", lambda: w.gets("nocas"), (None, None))
    R.expect("cas ok", lambda: w.cas("c", "two", cas1), True)
    R.expect("cas stale", lambda: w.cas("c", "three", cas1), False)
    R.expect("get after cas", lambda: w.get("c"), "two")
    R.expect("cas missing", lambda: w.cas("nocas", "x", 1), None)
    _, cas2 = w.gets("c")
    R.expect("cas changed by cas", lambda: cas2 != cas1, True)
    w.touch("c", 100)
    _, cas3 = w.gets("c")
    R.expect("touch keeps cas", lambda: cas3 == cas2, True)
    w.set("c2", "other")
    R.expect("gets_many", lambda: sorted(w.gets_many(["c", "c2", "nocas"])), ["c", "c2"])
    R.expect("gets_many distinct cas",
             lambda: len({x[1] for x in w.gets_many(["c", "c2"]).values()}), 2)
    R.expect("cas noreply then get", lambda: (c.cas("c", "four", cas3), c.get("c"))[1], "four")

    # -- incr/decr
    R.expect("incr", lambda: (w.set("n", 10), w.incr("n", 5))[1], 15)
    R.expect("decr", lambda: w.decr("n", 20), 0)
    R.expect("incr missing", lambda: w.incr("non", 1), None)
    R.expect("decr missing", lambda: w.decr("non", 1), None)
    R.expect("incr wraps", lambda: (w.set("mx", 2 ** 64 - 1), w.incr("mx", 1))[1], 0)
    R.expect("incr big delta", lambda: (w.set("bd", 1), w.incr("bd", 2 ** 64 - 2))[1], 2 ** 64 - 1)
    R.run("incr non-numeric", lambda: w.incr("k", 1))
    R.run("incr negative delta", lambda: w.incr("n", -1))
    R.expect("still in sync", lambda: w.get("k"), "v")

    # -- touch / expiry
    R.expect("touch existing", lambda: w.touch("k", 1), True)
    R.expect("touch missing", lambda: w.touch("nok", 1), False)
    R.expect("set expire 1", lambda: w.set("e1", "x", expire=1), True)
    R.expect("set expire negative", lambda: w.set("eneg", "x", expire=-1), True)
    R.expect("get expire negative", lambda: w.get("eneg"), None)
    R.expect("set expire absolute past", lambda: w.set("eabs", "x", expire=2592001), True)
    R.expect("get expire absolute past", lambda: w.get("eabs"), None)
    R.expect("set expire absolute future",
             lambda: w.set("efut", "x", expire=int(time.time()) + 3600), True)
    time.sleep(2.2)
    R.expect("touched key expired", lambda: w.get("k"), None)
    R.expect("expire 1 gone", lambda: w.get("e1"), None)
    R.expect("absolute future still there", lambda: w.get("efut"), "x")

    # -- errors the client raises itself, and big values
    R.expect("key too long", lambda: w.set("x" * 251, 1), ("exc", "MemcacheIllegalInputError"))
    R.expect("key 250 ok", lambda: (w.set("x" * 250, 1), w.get("x" * 250))[1], 1)
    R.expect("key with space", lambda: w.get("a b"), ("exc", "MemcacheIllegalInputError"))
    R.run("value too large", lambda: w.set("huge", b"h" * (1024 * 1024)))
    R.run("value too large noreply", lambda: c.set("huge", b"h" * (1024 * 1024 + 100)))
    R.expect("in sync after too large", lambda: w.get("c"), "four")
    R.run("value near 1MB", lambda: w.set("nearly", b"n" * (1000 * 1000)))
    R.expect("get value near 1MB", lambda: len(w.get("nearly") or b""), 1000 * 1000)

    # -- version, stats
    ver = w.version()
    R.expect("version is 1.6.x", lambda: ver.startswith(b"1.6."), True)
    st = w.stats()
    for f in INT_STATS:
        R.expect("stats %s is int" % f, lambda: type(st.get(f.encode())).__name__, "int")
    for f in FLOAT_STATS:
        R.expect("stats %s is float" % f, lambda: type(st.get(f.encode())).__name__, "float")
    R.expect("stats version bytes", lambda: st.get(b"version") == ver, True)
    R.expect("stats pid", lambda: st.get(b"pid", 0) > 0, True)
    unparsed = sorted(k.decode() for k, v in st.items()
                      if isinstance(v, bytes) and k not in (b"version", b"libevent"))
    R.note("stats fields left as bytes", unparsed)
    ck.eq(unparsed, [], "%s stats: every field but version/libevent parses" % tag)
    ss = w.stats("settings")
    for f, typ in (("maxbytes", "int"), ("maxconns", "int"), ("tcpport", "int"),
                   ("item_size_max", "int"), ("cas_enabled", "bytes"), ("evictions", "bytes"),
                   ("growth_factor", "float")):
        R.expect("stats settings %s is %s" % (f, typ),
                 lambda: type(ss.get(f.encode())).__name__, typ)
    R.expect("stats settings tcpport", lambda: ss.get(b"tcpport") == port, True)
    R.expect("stats settings item_size_max", lambda: ss.get(b"item_size_max"), 1024 * 1024)
    R.run("stats items parses", lambda: type(w.stats("items")).__name__)
    R.run("stats slabs parses", lambda: type(w.stats("slabs")).__name__)
    w.get_many(["k", "c"])
    st2 = w.stats()
    R.expect("cmd_get counted", lambda: st2[b"cmd_get"] > st[b"cmd_get"], True)

    # -- flush_all with reply; quit; close
    R.expect("flush_all", lambda: w.flush_all(), True)
    R.expect("get after flush_all", lambda: w.get("c"), None)
    R.expect("flush_all delay", lambda: (w.set("fd", 1), w.flush_all(delay=2))[1], True)
    R.expect("still there before delay", lambda: w.get("fd"), 1)
    R.expect("quit", lambda: w.quit(), None)
    R.expect("reconnect after quit", lambda: (w.set("q", 1), w.get("q"))[1], 1)
    R.expect("close", lambda: w.close(), None)
    R.expect("get after close", lambda: w.get("q"), 1)
    time.sleep(2.2)
    R.expect("delayed flush happened", lambda: w.get("fd"), None)

    # -- PooledClient and a single-node HashClient
    p = PooledClient(("127.0.0.1", port), serde=serde.pickle_serde, max_pool_size=4,
                     default_noreply=False)
    R.expect("pooled set/get", lambda: (p.set("pool", [1]), p.get("pool"))[1], [1])
    R.expect("pooled stats", lambda: p.stats()[b"curr_items"] >= 1, True)
    h = HashClient([("127.0.0.1", port)], serde=serde.pickle_serde, default_noreply=False)
    R.expect("hash set/get", lambda: (h.set("hash", {"a": 1}), h.get("hash"))[1], {"a": 1})
    R.expect("hash get_many", lambda: h.get_many(["hash", "pool", "none"]),
             {"hash": {"a": 1}, "pool": [1]})
    for cl in (c, w, p, h):
        cl.close()
    return R.records


def main():
    harness.compare_with_memcached(
        ck, lambda srv, tag: run(srv.port, tag),
        lambda rm, rc: apichecks.compare(ck, "memcached", rm, "cached", rc, "same-as-memcached"))
    ck.done()


if __name__ == "__main__":
    main()
