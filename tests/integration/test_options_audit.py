"""The option audit (OPTIONS.md): every memcached flag or -o option cached accepts does what
memcached 1.6.18's does, and the ones it cannot honour are refused with one clear line and exit
status 64, never accepted and ignored.

Checked against the real binary, and against Debian's memcached where both answer:
- -U PORT is refused (no UDP is served); -U 0 starts;
- -o knobs whose effect cached lacks are refused, each naming the reason;
- memcached's no-ops and defaults (modern, maxconns_fast ...) start and serve;
- -o resp_obj_mem_limit=N: memcached's DEPRECATED line, and the server starts;
- -W: `watch` answers memcached's CLIENT_ERROR;
- -D C: `stats detail` collection is on from the start, prefixes split at C;
- -o hashpower=N: the table starts at 2^N buckets (stats hash_power_level, hashpower_init);
- -o watcher_logbuf_size=N: stats settings reports N KB, as memcached's.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness  # noqa: E402
from harness import Checker, Server, CACHED, MEMCACHED  # noqa: E402

ck = Checker("test_options_audit")
TIMEOUT = 30 if harness.ASAN else 10
ROOT_ARGS = ["--run-as-root"] if os.geteuid() == 0 else []


def run(args):
    p = subprocess.run([CACHED, "-p", str(harness.free_port()), "-l", "127.0.0.1"] + ROOT_ARGS
                       + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=TIMEOUT)
    return p.returncode, p.stderr.decode(errors="replace")


def refused(args, want):
    rc, err = run(args)
    what = " ".join(args)
    ck.eq(rc, 64, "%s: exit status" % what)
    ck.check(want in err, "%s: error names why (%r)" % (what, err))
    ck.eq(err.count("\n"), 1, "%s: one line" % what)
    ck.check(err.startswith("cached: "), "%s: starts with 'cached: '" % what)


def exchange(srv, line):
    with srv.connect() as c:
        c.send(line)
        return c.readline()


# ---- refused: UDP and knobs whose effect cached lacks ----
refused(["-U", "11211"], "-U 11211: UDP is not served")
refused(["--udp-port=4000"], "UDP is not served")
for knob, why in [
        ("hash_algorithm=murmur3", "xxh64"),
        ("tail_repair_time=10", "never force-frees"),
        ("lru_crawler_sleep=1000001", "between 0 and 1 second"),
        ("lru_crawler_sleep", "missing lru_crawler_sleep value"),
        ("lru_crawler_tocrawl=x", "numeric 32bit"),
        ("worker_logbuf_size=64", "per-worker"),
        ("slab_automove_ratio=0", "must be > 0"),
        ("slab_automove_window=2", "must be > 2"),
        ("slab_automove_freeratio=0.1", "extstore"),
        ("hashpower=11", "too low"),
]:
    refused(["-o", knob], why)

# ---- accepted: memcached's no-ops and defaults, -U 0, resp_obj_mem_limit ----
same = "modern,inline_ascii_resp,no_inline_ascii_resp,maxconns_fast,slab_reassign," \
       "lru_maintainer,no_drop_privileges,relaxed_privileges,no_chunked_items," \
       "lru_crawler_sleep=250,track_sizes"
with Server(args=["-U", "0", "-o", same]) as s:
    ck.eq(exchange(s, b"version\r\n")[:8], b"VERSION ", "no-op options: serves")
    st = s.stats("settings")
    ck.eq(st.get("maxconns_fast"), "yes", "stats settings maxconns_fast")
    ck.eq(st.get("slab_reassign"), "yes", "stats settings slab_reassign")
    ck.eq(st.get("udpport"), "0", "stats settings udpport")
    ck.eq(st.get("lru_crawler_sleep"), "250", "stats settings lru_crawler_sleep")
    ck.eq(st.get("track_sizes"), "yes", "stats settings track_sizes")
    ck.eq(st.get("lru_maintainer_thread"), "yes", "stats settings lru_maintainer_thread")

# no_lru_maintainer and no_modern: no LRU maintainer thread, so no page moves (memcached's
# automover runs in that thread); stats settings says so, as memcached's does
for opt in ("no_lru_maintainer", "no_modern"):
    with Server(args=["-o", opt]) as s:
        ck.eq(exchange(s, b"set k 0 0 1\r\nx\r\n"), b"STORED\r\n", "%s: serves" % opt)
        st = s.stats("settings")
        ck.eq(st.get("lru_maintainer_thread"), "no", "%s: lru_maintainer_thread" % opt)
        ck.eq(st.get("slab_automove"), "0", "%s: no automove" % opt)

deprecated = "DEPRECATED: resp_obj_mem_limit no longer used"
for binary in (CACHED, MEMCACHED):
    kind = os.path.basename(binary)
    with Server(binary, args=["-o", "resp_obj_mem_limit=5"]) as s:
        ck.eq(exchange(s, b"version\r\n")[:8], b"VERSION ", "%s resp_obj_mem_limit: serves" % kind)
    ck.check(deprecated in s.stderr_text, "%s resp_obj_mem_limit: says DEPRECATED" % kind)

# ---- -W, -D, hashpower, watcher_logbuf_size: the same answers as memcached ----
answers = {}
for binary in (MEMCACHED, CACHED):
    kind = os.path.basename(binary)
    got = answers[kind] = {}
    with Server(binary, args=["-W"]) as s:
        got["watch -W"] = exchange(s, b"watch\r\n")
    with Server(binary) as s:
        got["watch"] = exchange(s, b"watch\r\n")
    with Server(binary, args=["-D", "#"]) as s:
        got["detail_enabled"] = s.stats("settings").get("detail_enabled")
        got["stat_key_prefix"] = s.stats("settings").get("stat_key_prefix")
        with s.connect() as c:
            c.send(b"set user#1 0 0 1\r\nx\r\nget user#1\r\nget user#2\r\n")
            c.read_until(b"STORED\r\n")
            c.read_until(b"END\r\n")
            c.read_until(b"END\r\n")
            c.send(b"stats detail dump\r\n")
            got["detail dump"] = c.read_until(b"END\r\n")
    with Server(binary) as s:
        got["detail_enabled default"] = s.stats("settings").get("detail_enabled")
    with Server(binary, args=["-o", "hashpower=20,watcher_logbuf_size=8"]) as s:
        got["hash_power_level"] = s.stats().get("hash_power_level")
        st = s.stats("settings")
        got["hashpower_init"] = st.get("hashpower_init")
        got["watcher_logbuf_size"] = st.get("watcher_logbuf_size")
        ck.eq(exchange(s, b"set k 0 0 1\r\nx\r\n"), b"STORED\r\n", "%s hashpower=20: stores" % kind)

mc, ca = answers["memcached"], answers["cached"]
ck.eq(mc["watch -W"], b"CLIENT_ERROR watch commands not allowed\r\n", "memcached -W: watch refused")
ck.eq(mc["watch"], b"OK\r\n", "memcached: watch without -W")
for key in sorted(mc):
    ck.eq(ca[key], mc[key], "cached and memcached agree: %s" % key)
ck.eq(ca["hash_power_level"], "20", "hashpower=20: hash_power_level")
ck.eq(ca["detail_enabled"], "yes", "-D: detail on")

ck.done()
