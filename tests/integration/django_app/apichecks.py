"""The Django cache API checks shared by test_django.py and test_scaleout.py.

run_api(cache, ck, tag, ...) drives one Django cache alias through its whole API, asserts the
results Django documents, and returns a list of (label, outcome) records so that the run
against cached can be compared, record by record, with the same run against Debian's memcached.
An outcome is ("ok", value) or ("exc", ExceptionClassName, message).

Keys are namespaced with `ns` so several runs can share one server without interfering.
"""
import datetime
import decimal
import hashlib
import time


class Custom:
    """A user class, to check that pickled instances round-trip."""

    def __init__(self, a, b):
        self.a = a
        self.b = b

    def __eq__(self, other):
        return isinstance(other, Custom) and (self.a, self.b) == (other.a, other.b)

    def __repr__(self):
        return "Custom(%r, %r)" % (self.a, self.b)


MISSING = object()
BIG_OK = 1000 * 1000          # near 1 MB: fits in memcached's default 1 MB item
BIG_REFUSED = 1024 * 1024     # exactly 1 MiB: refused (item overhead counts)
BIG_OVER = 1024 * 1024 + 1    # just over


def outcome(fn):
    try:
        return ("ok", fn())
    except Exception as e:  # noqa: BLE001 - the exception class is the result we compare
        msg = str(e)
        if len(msg) > 120:
            msg = msg[:120]
        return ("exc", type(e).__name__, msg)


class Recorder:
    def __init__(self, ck, tag):
        self.ck = ck
        self.tag = tag
        self.records = []

    def run(self, label, fn):
        out = outcome(fn)
        self.records.append((label, _printable(out)))
        return out

    def expect(self, label, fn, want):
        """want is a plain value (expects ("ok", want)) or ("exc", ClassName)."""
        out = self.run(label, fn)
        if isinstance(want, tuple) and len(want) == 2 and want[0] == "exc":
            ok = out[0] == "exc" and out[1] == want[1]
        else:
            ok = out == ("ok", want)
        self.ck.check(ok, "%s %s: got %r, want %r" % (self.tag, label, _short(out), _short(want)))
        return out

    def note(self, label, value):
        """Records a value for the cross-server comparison without asserting it."""
        self.records.append((label, _printable(("ok", value))))


def _short(v):
    r = repr(v)
    return r if len(r) < 200 else r[:200] + "..."


def _printable(out):
    # Big byte strings are summarised so that record lists stay small and readable.
    if out[0] == "ok" and isinstance(out[1], (bytes, str)) and len(out[1]) > 300:
        return ("ok", "<%s len=%d>" % (type(out[1]).__name__, len(out[1])))
    if out[0] == "ok" and isinstance(out[1], dict) and len(out[1]) > 20:
        return ("ok", "<dict len=%d hash=%s>" % (len(out[1]), hashlib.sha1(
            repr(sorted((repr(k), repr(v)) for k, v in out[1].items())).encode()).hexdigest()))
    if out[0] == "ok" and isinstance(out[1], dict):
        return ("ok", sorted((repr(k), _short(v)) for k, v in out[1].items()))
    return out


def run_api(cache, ck, tag, ns="t", touch=True, flush=True, big=True, expiry=True,
            prefixed=None, pylibmc=False, many=300, before_clear=None,
            nonpositive=True):
    """Runs the Django cache API against `cache`; returns the record list.

    touch/flush/big/expiry/nonpositive (timeouts 0 and negative) switch off parts a proxy does
    not support; `prefixed` is a second
    alias of the same servers configured with KEY_PREFIX/VERSION; `many` is the get_many size.
    """
    R = Recorder(ck, tag)
    k = lambda s: "%s-%s" % (ns, s)  # noqa: E731

    # -- basic get/set/add/delete
    R.expect("get missing", lambda: cache.get(k("nope")), None)
    R.expect("get missing default", lambda: cache.get(k("nope"), "dflt"), "dflt")
    R.expect("set", lambda: cache.set(k("a"), "alpha"), None)
    R.expect("get", lambda: cache.get(k("a")), "alpha")
    R.expect("add existing", lambda: cache.add(k("a"), "other"), False)
    R.expect("get after add existing", lambda: cache.get(k("a")), "alpha")
    R.expect("add new", lambda: cache.add(k("b"), "beta"), True)
    R.expect("get added", lambda: cache.get(k("b")), "beta")
    R.expect("set overwrite", lambda: cache.set(k("a"), "alpha2"), None)
    R.expect("get overwritten", lambda: cache.get(k("a")), "alpha2")
    R.expect("delete existing", lambda: cache.delete(k("a")), True)
    R.expect("delete missing", lambda: cache.delete(k("a")), False)
    R.expect("get deleted", lambda: cache.get(k("a")), None)
    R.expect("has_key yes", lambda: cache.has_key(k("b")), True)
    R.expect("has_key no", lambda: cache.has_key(k("zzz")), False)
    R.expect("in operator", lambda: k("b") in cache, True)
    R.expect("set None value", lambda: cache.set(k("none"), None), None)
    R.expect("get None value default", lambda: cache.get(k("none"), "d"), None)
    R.expect("set empty str", lambda: cache.set(k("empty"), ""), None)
    R.expect("get empty str", lambda: cache.get(k("empty")), "")
    R.expect("set empty bytes", lambda: cache.set(k("emptyb"), b""), None)
    R.expect("get empty bytes", lambda: cache.get(k("emptyb")), b"")

    # -- get_or_set
    R.expect("get_or_set new", lambda: cache.get_or_set(k("gos"), "v1"), "v1")
    R.expect("get_or_set existing", lambda: cache.get_or_set(k("gos"), "v2"), "v1")
    R.expect("get_or_set callable", lambda: cache.get_or_set(k("gos2"), lambda: "called"), "called")
    R.expect("get after get_or_set", lambda: cache.get(k("gos2")), "called")

    # -- value types: pickled and raw
    values = {
        "dict": {"a": 1, "b": [1, 2, 3], "c": {"nested": True}},
        "list": [1, "two", 3.0, None, (4, 5)],
        "tuple": (1, 2),
        "set": {1, 2, 3},
        "datetime": datetime.datetime(2024, 2, 29, 12, 34, 56, 789),
        "date": datetime.date(2000, 1, 1),
        "decimal": decimal.Decimal("3.14159265358979323846"),
        "custom": Custom("x", [1, 2]),
        "int": 42,
        "negint": -7,
        "bigint": 2 ** 70,
        "float": 1.5,
        "bool": True,
        "bytes": b"\x00\x01\xff raw\r\nbytes",
        "str": "plain text",
        "unicode": "h\u00e9llo w\u00f6rld \u2603 \U0001F600 \u043f\u0440\u0438\u0432\u0435\u0442",
        "crlf": "line1\r\nEND\r\nline3",
    }
    for name, v in values.items():
        R.expect("set %s" % name, lambda: cache.set(k("v-" + name), v), None)
        R.expect("get %s" % name, lambda: cache.get(k("v-" + name)), v)
        # pylibmc stores a bool as the int 0/1 (its own serialisation), pymemcache pickles it.
        want_type = "int" if (pylibmc and name == "bool") else type(v).__name__
        R.expect("type %s" % name, lambda: type(cache.get(k("v-" + name))).__name__, want_type)

    # -- keys: unicode, near 250 bytes
    R.expect("unicode key set", lambda: cache.set(k("cl\u00e9-\u043a\u043b\u044e\u0447-\u2603"), "u"), None)
    R.expect("unicode key get", lambda: cache.get(k("cl\u00e9-\u043a\u043b\u044e\u0447-\u2603")), "u")
    R.expect("nbsp key set", lambda: cache.set(k("a\u00a0b"), "nbsp"), None)
    R.expect("nbsp key get", lambda: cache.get(k("a\u00a0b")), "nbsp")
    R.expect("nbsp key differs from plain", lambda: cache.get(k("a b".replace(" ", ""))), None)
    room = 250 - len(":1:")              # Django's final key is ":1:" + key
    long_ok = (k("L") + "x" * 300)[:room]
    long_bad = (k("L") + "y" * 300)[:room + 1]
    R.expect("key 250 bytes set", lambda: cache.set(long_ok, "long"), None)
    R.expect("key 250 bytes get", lambda: cache.get(long_ok), "long")
    R.expect("key 250 bytes delete", lambda: cache.delete(long_ok), True)
    R.expect("key 251 bytes set", lambda: cache.set(long_bad, "long"), ("exc", "InvalidCacheKey"))
    # 125 two-byte characters: fine for Django (it counts characters), 253 bytes on the wire.
    uni_long = (k("U") + "\u00e9" * 130)[:room]
    R.run("unicode key over 250 bytes set", lambda: cache.set(uni_long, "x"))
    uni_ok = k("U") + "\u00e9" * ((room - len(k("U").encode())) // 2)   # exactly 250 bytes
    R.expect("unicode key under 250 bytes set", lambda: cache.set(uni_ok, "ok"), None)
    R.expect("unicode key under 250 bytes get", lambda: cache.get(uni_ok), "ok")
    R.expect("key with space", lambda: cache.set(k("a b"), 1), ("exc", "InvalidCacheKey"))

    # -- incr / decr
    R.expect("set counter", lambda: cache.set(k("n"), 10), None)
    R.expect("incr", lambda: cache.incr(k("n")), 11)
    R.expect("incr 5", lambda: cache.incr(k("n"), 5), 16)
    R.expect("decr", lambda: cache.decr(k("n")), 15)
    R.expect("decr 4", lambda: cache.decr(k("n"), 4), 11)
    R.expect("incr negative", lambda: cache.incr(k("n"), -1), 10)
    R.expect("decr negative", lambda: cache.decr(k("n"), -2), 12)
    R.expect("decr below zero floors", lambda: cache.decr(k("n"), 100), 0)
    R.expect("get counter after decr", lambda: cache.get(k("n")), 0)
    R.expect("incr missing", lambda: cache.incr(k("nomiss")), ("exc", "ValueError"))
    R.expect("decr missing", lambda: cache.decr(k("nomiss")), ("exc", "ValueError"))
    R.expect("set counter 9", lambda: cache.set(k("n9"), 9), None)
    R.expect("incr 9 -> 10", lambda: cache.incr(k("n9")), 10)
    R.expect("get 10", lambda: cache.get(k("n9")), 10)
    R.expect("decr 10 -> 9", lambda: cache.decr(k("n9")), 9)
    R.expect("get 9 (maybe padded)", lambda: cache.get(k("n9")), 9)
    R.expect("set max u64", lambda: cache.set(k("max"), 2 ** 64 - 1), None)
    R.expect("incr wraps", lambda: cache.incr(k("max")), 0)
    R.run("incr non-numeric", lambda: cache.incr(k("v-str")))
    R.expect("non-numeric untouched", lambda: cache.get(k("v-str")), "plain text")

    # -- versions
    R.expect("set v1", lambda: cache.set(k("ver"), "one"), None)
    R.expect("set v2", lambda: cache.set(k("ver"), "two", version=2), None)
    R.expect("get v1", lambda: cache.get(k("ver")), "one")
    R.expect("get v2", lambda: cache.get(k("ver"), version=2), "two")
    R.expect("incr_version", lambda: cache.incr_version(k("ver")), 2)
    R.expect("v1 gone after incr_version", lambda: cache.get(k("ver")), None)
    R.expect("v2 replaced", lambda: cache.get(k("ver"), version=2), "one")
    R.expect("decr_version", lambda: cache.decr_version(k("ver"), version=2), 1)
    R.expect("v1 back", lambda: cache.get(k("ver")), "one")
    R.expect("v2 gone", lambda: cache.get(k("ver"), version=2), None)
    R.expect("incr_version missing", lambda: cache.incr_version(k("nover")), ("exc", "ValueError"))
    R.expect("decr_version missing", lambda: cache.decr_version(k("nover")), ("exc", "ValueError"))

    # -- many
    R.expect("set_many", lambda: cache.set_many({k("m1"): 1, k("m2"): "two", k("m3"): [3]}), [])
    R.expect("get_many", lambda: cache.get_many([k("m1"), k("m2"), k("m3"), k("mX")]),
             {k("m1"): 1, k("m2"): "two", k("m3"): [3]})
    R.expect("delete_many", lambda: cache.delete_many([k("m1"), k("m3"), k("mX")]), None)
    R.expect("get_many after delete_many", lambda: cache.get_many([k("m1"), k("m2"), k("m3")]),
             {k("m2"): "two"})
    R.expect("get_many empty", lambda: cache.get_many([]), {})
    bulk = {k("bulk-%04d-%s" % (i, "p" * 20)): i for i in range(many)}
    R.expect("set_many %d" % many, lambda: cache.set_many(bulk), [])
    R.expect("get_many %d" % many, lambda: cache.get_many(list(bulk)), bulk)
    R.expect("delete_many %d" % many, lambda: cache.delete_many(list(bulk)), None)
    R.expect("get_many %d after delete" % many, lambda: cache.get_many(list(bulk)), {})

    # -- timeouts that need no sleeping
    R.expect("set timeout None", lambda: cache.set(k("tnone"), "forever", None), None)
    R.expect("get timeout None", lambda: cache.get(k("tnone")), "forever")
    if nonpositive:  # Django sends exptime -1 for these; twemproxy rejects negative exptimes
        R.expect("set timeout 0", lambda: cache.set(k("t0"), "gone", 0), None)
        R.expect("get timeout 0", lambda: cache.get(k("t0")), None)
        R.expect("set timeout negative", lambda: cache.set(k("tneg"), "gone", -5), None)
        R.expect("get timeout negative", lambda: cache.get(k("tneg")), None)
        R.expect("add timeout 0", lambda: cache.add(k("tadd0"), "gone", 0), True)
        R.expect("get add timeout 0", lambda: cache.get(k("tadd0")), None)
    R.expect("set over 30 days", lambda: cache.set(k("t31d"), "long", 31 * 86400), None)
    R.expect("get over 30 days", lambda: cache.get(k("t31d")), "long")
    R.expect("set 30 days exactly", lambda: cache.set(k("t30d"), "rel", 30 * 86400), None)
    R.expect("get 30 days exactly", lambda: cache.get(k("t30d")), "rel")
    if nonpositive:
        R.expect("set_many timeout 0", lambda: cache.set_many({k("sm0"): 1}, 0), [])
        R.expect("get set_many timeout 0", lambda: cache.get(k("sm0")), None)

    if touch:
        R.expect("touch missing", lambda: cache.touch(k("nope")), False)
        R.expect("touch existing", lambda: cache.touch(k("tnone"), None), True)
        R.expect("get after touch None", lambda: cache.get(k("tnone")), "forever")
        R.expect("touch 31 days", lambda: cache.touch(k("t31d"), 31 * 86400), True)
        R.expect("get after touch 31 days", lambda: cache.get(k("t31d")), "long")
        R.expect("set for touch 0", lambda: cache.set(k("tt0"), "x"), None)
        R.expect("touch 0", lambda: cache.touch(k("tt0"), 0), True)
        R.expect("get after touch 0", lambda: cache.get(k("tt0")), None)

    # -- real expiry: everything short-lived is set now, then one sleep
    if expiry:
        R.expect("set 1s", lambda: cache.set(k("s1"), "short", 1), None)
        R.expect("add 1s", lambda: cache.add(k("s1add"), "short", 1), True)
        R.expect("set_many 1s", lambda: cache.set_many({k("s1m"): "short"}, 1), [])
        R.expect("set 60s", lambda: cache.set(k("s60"), "stays", 60), None)
        R.expect("get 1s before expiry", lambda: cache.get(k("s1")), "short")
        R.expect("set counter 1s", lambda: cache.set(k("s1n"), 5, 1), None)
        R.expect("incr keeps expiry", lambda: cache.incr(k("s1n")), 6)
        if touch:
            R.expect("set for touch 1s", lambda: cache.set(k("s1t"), "t", None), None)
            R.expect("touch 1s", lambda: cache.touch(k("s1t"), 1), True)
            R.expect("set for touch 60s", lambda: cache.set(k("s60t"), "t", 1), None)
            R.expect("touch extends to 60s", lambda: cache.touch(k("s60t"), 60), True)
        time.sleep(2.2)
        R.expect("get 1s after expiry", lambda: cache.get(k("s1")), None)
        R.expect("get add 1s after expiry", lambda: cache.get(k("s1add")), None)
        R.expect("get set_many 1s after expiry", lambda: cache.get(k("s1m")), None)
        R.expect("get counter after expiry", lambda: cache.get(k("s1n")), None)
        R.expect("incr after expiry", lambda: cache.incr(k("s1n")), ("exc", "ValueError"))
        R.expect("add after expiry", lambda: cache.add(k("s1"), "again"), True)
        R.expect("get 60s still there", lambda: cache.get(k("s60")), "stays")
        if touch:
            R.expect("get touched 1s after expiry", lambda: cache.get(k("s1t")), None)
            R.expect("get touched 60s", lambda: cache.get(k("s60t")), "t")

    # -- big values
    if big:
        ok_val = b"\xab" * BIG_OK
        R.expect("set ~1MB", lambda: cache.set(k("big"), ok_val), None)
        R.expect("get ~1MB", lambda: cache.get(k("big")) == ok_val, True)
        R.expect("set ~1MB str", lambda: cache.set(k("bigs"), "s" * BIG_OK), None)
        R.expect("get ~1MB str", lambda: cache.get(k("bigs")) == "s" * BIG_OK, True)
        # The server refuses; memcached also deletes the old value. Django's set() deletes
        # on a False result; pymemcache raises instead, so the outcome is recorded and compared.
        R.run("set 1MiB refused", lambda: cache.set(k("big"), b"\xcd" * BIG_REFUSED))
        R.expect("old value gone after refused set", lambda: cache.get(k("big")), None)
        R.run("set 1MiB+1 refused", lambda: cache.set(k("bigs"), b"\xcd" * BIG_OVER))
        R.expect("old value gone after refused set 2", lambda: cache.get(k("bigs")), None)
        R.run("add 1MiB+1 refused", lambda: cache.add(k("bigadd"), b"\xcd" * BIG_OVER))
        R.expect("nothing stored by refused add", lambda: cache.get(k("bigadd")), None)
        R.run("set_many with a too-big value",
              lambda: sorted(cache.set_many({k("bm-small"): 1, k("bm-big"): b"z" * BIG_OVER})))
        R.run("get_many after set_many too-big", lambda: cache.get_many([k("bm-small"), k("bm-big")]))
        R.expect("server still in sync after refusals", lambda: cache.get(k("b")), "beta")
        R.expect("set ~1MB again", lambda: cache.set(k("big"), ok_val), None)
        R.expect("get ~1MB again", lambda: cache.get(k("big")) == ok_val, True)

    # -- KEY_PREFIX / VERSION on a second alias of the same servers
    if prefixed is not None:
        R.expect("prefixed set", lambda: prefixed.set(k("pk"), "prefixed"), None)
        R.expect("prefixed get", lambda: prefixed.get(k("pk")), "prefixed")
        R.expect("plain alias does not see it", lambda: cache.get(k("pk")), None)
        R.expect("plain set same key", lambda: cache.set(k("pk"), "plain"), None)
        R.expect("prefixed still own value", lambda: prefixed.get(k("pk")), "prefixed")
        R.expect("prefixed make_key", lambda: prefixed.make_key(k("pk")), "pfx:3:" + k("pk"))
        R.expect("prefixed incr_version", lambda: prefixed.incr_version(k("pk")), 4)
        R.expect("prefixed get version 4", lambda: prefixed.get(k("pk"), version=4), "prefixed")
        R.expect("prefixed get default version", lambda: prefixed.get(k("pk")), None)
        R.expect("prefixed delete", lambda: prefixed.delete(k("pk"), version=4), True)
        R.expect("plain unaffected", lambda: cache.get(k("pk")), "plain")

    # -- close, then everything still works (reconnect)
    R.expect("close", lambda: cache.close(), None)
    R.expect("get after close", lambda: cache.get(k("b")), "beta")
    R.expect("set after close", lambda: cache.set(k("c"), "gamma"), None)

    if before_clear is not None:
        R.records += before_clear()

    # -- clear
    if flush:
        R.expect("clear", lambda: cache.clear(), None)
        R.expect("get after clear", lambda: cache.get(k("b")), None)
        R.expect("get_many after clear", lambda: cache.get_many([k("c"), k("tnone")]), {})
        R.expect("add after clear", lambda: cache.add(k("b"), "again"), True)
        R.expect("get after add after clear", lambda: cache.get(k("b")), "again")
    return R.records


def compare(ck, name_a, recs_a, name_b, recs_b, tag):
    """One assertion per record: both runs must have produced the same outcome."""
    labels_a = [r[0] for r in recs_a]
    labels_b = [r[0] for r in recs_b]
    if not ck.eq(labels_a, labels_b, "%s: same operations" % tag):
        return
    for (label, a), (_, b) in zip(recs_a, recs_b):
        ck.check(a == b, "%s %s: %s=%r %s=%r" % (tag, label, name_a, _short(a), name_b, _short(b)))
