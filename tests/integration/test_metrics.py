"""/metrics (issue #17): memcached_exporter's names, types and labels, values that agree with
`stats`, promtool, cached's own metrics, and the HTTP port treated like any other port
(other methods, garbage, slow and oversized requests, too many connections).
"""
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import Checker, Server, free_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TSV = os.environ.get("EXPORTER_TSV", os.path.join(HERE, "exporter-metrics.tsv"))
# The exporter's own names that promtool lints (counters without _total): the issue says to
# copy these quirks, so these lint lines (and only these) are expected.
QUIRKS = {"memcached_uptime_seconds", "memcached_slab_mem_requested_bytes",
          "memcached_slab_items_evicted_time_seconds", "memcached_slab_items_moves_to_cold",
          "memcached_slab_items_moves_to_warm", "memcached_slab_items_moves_within_lru"}


def load_tsv():
    rows = {}
    with open(TSV) as f:
        for line in f:
            if line.startswith("#") or line.startswith("name\t") or not line.strip():
                continue
            name, typ, labels, source, default = line.rstrip("\n").split("\t")[:5]
            rows[name] = (typ, set() if labels == "-" else set(labels.split(",")), source, default)
    return rows


def http(port, path="/metrics", method="GET", timeout=5):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def parse(text):
    """{family: type}, [(name, {labels}, value)]"""
    types, samples = {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
        elif line and not line.startswith("#"):
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
            assert m, line
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            samples.append((m.group(1), labels, float(m.group(4))))
    return types, samples


def family_of(name, types):
    if name in types:
        return name
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf) and name[: -len(suf)] in types:
            return name[: -len(suf)]
    return None


def raw(port, data, wait=1.0, timeout=3.0):
    """Sends raw bytes; returns (reply bytes, closed by server)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out, closed = b"", False
    deadline = time.time() + wait
    s.settimeout(0.2)
    while time.time() < deadline:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            closed = True
            break
        if not d:
            closed = True
            break
        out += d
    s.close()
    return out, closed


def check_names(ck, types, samples, tsv, st, settings):
    for fam, typ in types.items():
        if fam.startswith("memcached_"):
            if ck.check(fam in tsv, "%s is not one of the exporter's metrics" % fam):
                ck.eq(typ, tsv[fam][0], "type of %s" % fam)
        else:
            ck.check(fam.startswith("cached_"), "%s: cached's own metrics use cached_" % fam)
    for name, labels, _ in samples:
        fam = family_of(name, types)
        ck.check(fam is not None, "sample %s has a TYPE line" % name)
        if fam and fam in tsv:
            ck.eq(set(labels), tsv[fam][1], "label names of %s" % fam)
    # every metric whose source stat cached prints is emitted (default=yes rows)
    slab_items = st["items"]
    slab_slabs = st["slabs"]
    for name, (typ, labels, source, default) in tsv.items():
        kind, _, key = source.partition(":")
        have = False
        if name.startswith("memcached_proxy_") or name in (
                "memcached_round_robin_fallback_total", "memcached_unexpected_napi_ids_total"):
            continue  # the exporter emits these in proxy mode only (the TSV's note)
        if kind == "stats" and "," not in key and "*" not in key:
            have = key in st["gen"]
        elif kind == "settings":
            have = key in settings and (not name.startswith("memcached_lru_crawler_") or
                                        settings.get("lru_crawler") == "yes")
        elif kind == "slabs-global":
            have = key in st["slabs_global"] or key in st["gen"]
        elif kind == "items" and "," not in key:
            have = any(k.split(":", 2)[2] == key for k in slab_items)
        elif kind == "slabs" and "*" not in key:
            have = any(k.split(":", 1)[1] == key for k in slab_slabs)
        elif kind == "synthetic":
            have = True
        if have:
            ck.check(name in types, "%s: stat %s is there but the metric is missing" % (name, source))
    n = sum(1 for s in samples if s[0] == "memcached_commands_total")
    ck.eq(n, 15, "memcached_commands_total has the exporter's 15 series")
    ck.eq([v for n_, l, v in samples if n_ == "memcached_up"], [1.0], "memcached_up is 1")


def stats_all(srv):
    with srv.connect() as c:
        gen = c.stats()
        settings = c.stats("settings")
        items = c.stats("items")
        slabs = c.stats("slabs")
    slabs_global = {k: v for k, v in slabs.items() if ":" not in k}
    slabs = {k: v for k, v in slabs.items() if ":" in k}
    return {"gen": gen, "items": items, "slabs": slabs, "slabs_global": slabs_global}, settings


# metric -> stat for the around-the-scrape comparison (counters: before <= v <= after)
AROUND = {
    "memcached_current_items": "curr_items", "memcached_items_total": "total_items",
    "memcached_limit_bytes": "limit_maxbytes", "memcached_current_bytes": "bytes",
    "memcached_connections_total": "total_connections", "memcached_read_bytes_total": "bytes_read",
    "memcached_written_bytes_total": "bytes_written", "memcached_items_evicted_total": "evictions",
    "memcached_item_too_large_total": "store_too_large", "memcached_uptime_seconds": "uptime",
    "memcached_time_seconds": "time",
}


def main():
    ck = Checker("metrics")
    tsv = load_tsv()
    mport = free_port()
    with Server(args=["-t", "2", "--metrics-port", str(mport)]) as srv:
        with srv.connect() as c:
            for i in range(300):
                c.set("key%d" % i, "v" * (i % 200 + 1))
            for i in range(100):
                c.get("key%d" % i)
                c.get("missing%d" % i)
            c.cmd("incr nope 1")
            c.cmd("delete key1")
            c.cmd("touch key2 100")
            c.send("cas nokey 0 0 1 1\r\nx\r\n")
            c.readline()
            c.send("set big 0 0 2000000\r\n" + "x" * 2000000 + "\r\n")
            c.readline()
            c.send("mg key5 v\r\n")
            c.read_available(0.2)
        before, settings = stats_all(srv)
        code, headers, body = http(mport)
        after, _ = stats_all(srv)
        ck.eq(code, 200, "GET /metrics")
        ck.check(headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
                 "exposition content type: %r" % headers.get("Content-Type"))
        types, samples = parse(body)
        check_names(ck, types, samples, tsv, before, settings)
        vals = {n: v for n, l, v in samples if not l}
        for m, stat in AROUND.items():
            if ck.check(m in vals, "%s present" % m):
                lo, hi = float(before["gen"][stat]), float(after["gen"][stat])
                ck.check(lo <= vals[m] <= hi, "%s=%s outside stats %s..%s" % (m, vals[m], lo, hi))
        cmds = {(l["command"], l["status"]): v for n, l, v in samples if n == "memcached_commands_total"}
        g = before["gen"]
        ck.eq(cmds.get(("get", "hit")), float(g["get_hits"]), "get/hit = get_hits")
        ck.eq(cmds.get(("get", "miss")), float(g["get_misses"]), "get/miss = get_misses")
        ck.eq(cmds.get(("set", "hit")), float(int(g["cmd_set"]) - int(g["cas_misses"]) -
                                              int(g["cas_hits"]) - int(g["cas_badval"])),
              "set/hit = cmd_set - (cas_misses + cas_hits + cas_badval)")
        ck.eq(cmds.get(("cas", "miss")), 1.0, "cas/miss")
        ver = [l for n, l, v in samples if n == "memcached_version"]
        ck.eq(ver, [{"version": g["version"]}], "version label")
        slab_items = {l["slab"]: v for n, l, v in samples if n == "memcached_slab_current_items"}
        want = {k.split(":")[1]: float(v) for k, v in before["items"].items() if k.endswith(":number")}
        ck.eq(slab_items, want, "memcached_slab_current_items per slab = stats items")
        chunks = {l["slab"]: v for n, l, v in samples if n == "memcached_slab_chunk_size_bytes"}
        want = {k.split(":")[0]: float(v) for k, v in before["slabs"].items() if k.endswith(":chunk_size")}
        ck.eq(chunks, want, "memcached_slab_chunk_size_bytes per slab = stats slabs")

        # cached's own: latency histograms for each command family, cumulative buckets
        for cmd in ("get", "multiget", "set", "delete", "incr_decr", "touch", "mg", "ms", "md", "ma"):
            b = [(l["le"], v) for n, l, v in samples
                 if n == "cached_command_duration_seconds_bucket" and l["command"] == cmd]
            ck.check(len(b) > 5 and b[-1][0] == "+Inf", "%s histogram buckets" % cmd)
            ck.check(all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)), "%s buckets cumulative" % cmd)
            cnt = [v for n, l, v in samples if n == "cached_command_duration_seconds_count" and l["command"] == cmd]
            ck.eq(cnt, [b[-1][1]], "%s _count = +Inf bucket" % cmd)
        getc = [v for n, l, v in samples if n == "cached_command_duration_seconds_count" and l["command"] == "get"]
        ck.eq(getc, [200.0], "200 single-key gets measured")
        ck.check("cached_hash_load_factor" in types and "cached_sweeper_runs_total" in types and
                 "cached_expired_unfetched_total" in types and "cached_evicted_unfetched_total" in types
                 and "cached_connections_accepted_total" in types, "cached_* extras present")

        # promtool: nothing but the exporter's own naming quirks
        p = subprocess.run(["promtool", "check", "metrics"], input=body.encode(),
                           capture_output=True, timeout=30)
        problems = [l for l in (p.stdout + p.stderr).decode().splitlines() if l.strip()]
        bad = [l for l in problems if l.split(" ")[0] not in QUIRKS
               or 'should have "_total" suffix' not in l]
        ck.eq(bad, [], "promtool check metrics: only the exporter's quirks")

        # HTTP: only GET /metrics and GET /
        code, _, body2 = http(mport, "/")
        ck.check(code == 200 and 'href="/metrics"' in body2, "/ links to /metrics")
        for path in ("/nope", "/metrics/x", "/metricsx", "/favicon.ico"):
            ck.eq(http(mport, path)[0], 404, "GET %s" % path)
        for m in ("POST", "PUT", "DELETE", "HEAD", "OPTIONS", "TRACE", "PATCH", "FOO", "BREW"):
            ck.eq(http(mport, "/metrics", m)[0], 405, "%s /metrics" % m)
        out, closed = raw(mport, b"FOO /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        ck.check(out.startswith(b"HTTP/1.1 405") and closed, "unknown method: 405 and closed")
        out, closed = raw(mport, b"\x00\x01garbage\xff\r\n\r\n")
        ck.check(closed and b" 200 " not in out and b" 501 " not in out, "garbage closed: %r" % out[:40])
        out, closed = raw(mport, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
        ck.check(closed and b" 200 " not in out, "oversized headers refused and closed: %r" % out[:40])
        out, closed = raw(mport, b"POST /metrics HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 1000)
        ck.check(closed and b" 200 " not in out, "big body refused and closed: %r" % out[:40])

        # slow requests are closed by a deadline; meanwhile the cache is unaffected
        slow = [socket.create_connection(("127.0.0.1", mport)) for _ in range(40)]
        for s in slow:
            s.sendall(b"GET /met")
        t0 = time.time()
        with srv.connect() as c:
            ck.eq(c.set("during", "slow"), b"STORED\r\n", "cache answers during slow HTTP clients")
        ck.check(time.time() - t0 < 1.0, "cache not delayed by slow HTTP clients")
        time.sleep(1.0)
        early = 0
        for s in slow:
            s.setblocking(False)
            try:
                if s.recv(100) == b"":
                    early += 1
            except BlockingIOError:
                pass
            except OSError:
                early += 1
        ck.check(early >= 8, "connections over the limit of 32 closed at once (%d)" % early)
        deadline = time.time() + 15
        pending = list(slow)
        while pending and time.time() < deadline:
            for s in list(pending):
                try:
                    s.sendall(b"r")  # a byte now and then: evhttp's idle timer alone never fires
                    if s.recv(100) == b"":
                        pending.remove(s)
                except BlockingIOError:
                    pass
                except OSError:
                    pending.remove(s)
            time.sleep(0.5)
        ck.eq(len(pending), 0, "every slow connection closed within 15 s")
        for s in slow:
            s.close()
        ck.eq(http(mport)[0], 200, "scrape works after the abuse")

        # scraping while clients load the cache changes no reply
        stop = threading.Event()
        errors = []

        def scraper():
            while not stop.is_set():
                if http(mport)[0] != 200:
                    errors.append("scrape failed")

        th = threading.Thread(target=scraper)
        th.start()
        with srv.connect() as c:
            for i in range(2000):
                k = "load%d" % (i % 50)
                if c.set(k, str(i)) != b"STORED\r\n" or c.get(k) != (0, str(i).encode()):
                    errors.append("reply changed at %d" % i)
                    break
        stop.set()
        th.join(30)
        ck.eq(errors, [], "replies unchanged while scraping")

        # the text commands
        with srv.connect() as c:
            lat = c.stats("latency")
            ck.check(int(lat.get("get:count", 0)) >= 200 and "get:p99" in lat, "stats latency: %r" % list(lat)[:5])
            c.send("stats hotkeys\r\n")
            hk = c.read_until(b"END\r\n").decode()
            ck.check("STAT hotkeys_sample_rate" in hk and "STAT read:1 load" in hk, "stats hotkeys: %r" % hk[:300])

    # off by default: no metrics listener
    with Server(args=["-t", "1"]) as srv:
        with srv.connect() as c:
            st = c.stats("settings")
        ck.eq(st.get("metrics_port"), "0", "metrics off by default")
    ck.done()


if __name__ == "__main__":
    main()
