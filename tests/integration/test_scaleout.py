"""Scaling out: Django over three cached instances, and nutcracker (twemproxy) in front of three.

1. PyMemcacheCache with three servers in LOCATION (pymemcache's HashClient, rendezvous hash):
   the whole API (apichecks.run_api) passes and gives the same records as three memcached;
   keys spread over all three (each instance's `stats` curr_items > 0).
2. Failover with the documented HashClient options (ignore_exc=True, retry_attempts,
   retry_timeout, dead_timeout): stop one instance by PID, the application keeps working (no
   exception; its keys become misses; once the node is marked dead its keys rehash to the
   other two), and it rejoins after dead_timeout when restarted on the same port. Without
   ignore_exc the same outage raises, as pymemcache documents.
3. nutcracker 0.5.0 (ketama, YAML generated into a temp dir, stats on its own port) in front
   of three instances: Django through the proxy passes the API checks twemproxy supports, same
   records as with three memcached behind it. Not supported by twemproxy, so skipped through
   the proxy: flush_all (Django's clear()), stats, and negative exptimes (nutcracker closes
   the connection on `set k 0 -1 ...`, which Django sends for timeout=0 or negative).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "django_app"))

import harness  # noqa: E402

ck = harness.Checker("test_scaleout")
MANY = 60 if harness.ASAN else 300
NUTCRACKER = os.environ.get("NUTCRACKER", "/usr/sbin/nutcracker")
PYM = "django.core.cache.backends.memcached.PyMemcacheCache"
# The options a deployment should use (documented in the README section we propose).
FAILOVER_OPTIONS = {"ignore_exc": True, "retry_attempts": 1, "retry_timeout": 0.2,
                    "dead_timeout": 2, "connect_timeout": 1, "timeout": 3}


class Nutcracker:
    """nutcracker in front of `backends`, config and logs in a temp dir, stopped by PID."""

    def __init__(self, backends):
        self.dir = tempfile.mkdtemp(prefix="cached-nutcracker-")
        self.port = harness.free_port()
        self.stats_port = harness.free_port()
        servers = "".join("    - 127.0.0.1:%d:1 s%d\n" % (b.port, i) for i, b in enumerate(backends))
        self.conf = os.path.join(self.dir, "nutcracker.yml")
        with open(self.conf, "w") as f:
            f.write("cachepool:\n"
                    "  listen: 127.0.0.1:%d\n"
                    "  hash: md5\n"
                    "  distribution: ketama\n"
                    "  timeout: 3000\n"
                    "  auto_eject_hosts: false\n"
                    "  servers:\n%s" % (self.port, servers))
        self.log = os.path.join(self.dir, "nutcracker.log")
        self.proc = subprocess.Popen(
            [NUTCRACKER, "-c", self.conf, "-s", str(self.stats_port), "-a", "127.0.0.1",
             "-o", self.log, "-p", os.path.join(self.dir, "nutcracker.pid"), "-i", "500"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness.wait_port(self.port, proc=self.proc)
        harness.wait_port(self.stats_port, proc=self.proc)

    def stats(self):
        with socket.create_connection(("127.0.0.1", self.stats_port), timeout=5) as s:
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data.decode())

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


def loc(servers):
    return ["127.0.0.1:%d" % s.port for s in servers]


def configure(groups, proxies):
    import django
    from django.conf import settings
    caches = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    for name, servers in groups.items():
        caches["hash-" + name] = {"BACKEND": PYM, "LOCATION": loc(servers)}
        caches["hash-pfx-" + name] = {"BACKEND": PYM, "LOCATION": loc(servers),
                                      "KEY_PREFIX": "pfx", "VERSION": 3}
        caches["failover-" + name] = {"BACKEND": PYM, "LOCATION": loc(servers),
                                      "OPTIONS": dict(FAILOVER_OPTIONS)}
        caches["strict-" + name] = {"BACKEND": PYM, "LOCATION": loc(servers),
                                    "OPTIONS": {"connect_timeout": 1, "timeout": 3}}
    for name, nc in proxies.items():
        caches["proxy-" + name] = {"BACKEND": PYM, "LOCATION": "127.0.0.1:%d" % nc.port}
        caches["proxy-pfx-" + name] = {"BACKEND": PYM, "LOCATION": "127.0.0.1:%d" % nc.port,
                                       "KEY_PREFIX": "pfx", "VERSION": 3}
    settings.configure(SECRET_KEY="test-scaleout-not-secret", CACHES=caches, INSTALLED_APPS=[],
                       USE_TZ=False)
    django.setup()


def curr_items(servers):
    return [int(s.stats()["curr_items"]) for s in servers]


def count_on(server, cache, keys):
    """How many of the Django keys `keys` the instance `server` holds (one raw multi-get)."""
    raw = [cache.make_key(k).encode() for k in keys]
    n = 0
    with server.connect() as c:
        for i in range(0, len(raw), 100):
            c.send(b"get " + b" ".join(raw[i:i + 100]) + b"\r\n")
            while True:
                line = c.readline()
                if line == b"END\r\n":
                    break
                c.readexact(int(line.split()[3]) + 2)
                n += 1
    return n


def spread(cache, servers, tag, ns):
    """Sets MANY keys through `cache`; every backend must hold some."""
    keys = {"%s-spread-%04d" % (ns, i): i for i in range(MANY)}
    ck.eq(cache.set_many(keys), [], "%s set_many for spread" % tag)
    ck.eq(len(cache.get_many(list(keys))), MANY, "%s get_many for spread" % tag)
    held = [count_on(s, cache, keys) for s in servers]
    ck.eq(sum(held), MANY, "%s keys stored in total %r" % (tag, held))
    for i, n in enumerate(held):
        ck.check(n > MANY // 20, "%s instance %d holds %d of %d keys (%r)" % (tag, i, n, MANY, held))
    items = curr_items(servers)
    ck.check(all(n > 0 for n in items), "%s stats curr_items > 0 on each instance %r" % (tag, items))
    print("%s: keys per instance %r, curr_items %r" % (tag, held, items), flush=True)
    cache.delete_many(list(keys))
    return held


def failover(groups, name, tag):
    """Stops one instance of groups[name] by PID, checks the app keeps working, restarts it."""
    from django.core.cache import caches
    servers = groups[name]
    cache = caches["failover-" + name]
    strict = caches["strict-" + name]
    keys = {"fo-%04d" % i: "v%d" % i for i in range(MANY)}
    ck.eq(cache.set_many(keys), [], "%s set_many before outage" % tag)
    ck.eq(strict.get_many(list(keys)), keys, "%s strict get_many before outage" % tag)
    victim = servers[1]
    on_victim = count_on(victim, cache, keys)
    ck.check(on_victim > 0, "%s victim holds keys (%d)" % (tag, on_victim))
    port, binary, kind = victim.port, victim.binary, victim.kind
    victim.stop()

    errors = []

    def safe(label, fn):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001
            errors.append("%s: %s: %s" % (label, type(e).__name__, e))
            return None

    got = safe("get_many during outage", lambda: cache.get_many(list(keys)))
    ck.eq(len(got or {}), MANY - on_victim, "%s get_many during outage: the victim's keys miss" % tag)
    hits = sum(1 for k, v in keys.items() if safe("get " + k, lambda: cache.get(k)) == v)
    ck.check(MANY - on_victim - 5 <= hits <= MANY - on_victim,
             "%s single gets during outage: %d hits, want %d" % (tag, hits, MANY - on_victim))
    # Every call keeps working; once retry_attempts are used up the node is marked dead and
    # its keys rehash onto the two live instances. Single-key calls are what mark a node dead:
    # pymemcache 3.5's set_many with ignore_exc=True swallows the error, reports the batch as
    # stored and resets the node's failure count, so it is not used in this loop.
    deadline = time.time() + 8
    ok_rounds = 0
    while time.time() < deadline:
        failed = [k for k, v in keys.items() if not safe("set " + k, lambda: cache.set(k, v) or
                                                         cache.get(k) == v)]
        got = safe("get_many during outage", lambda: cache.get_many(list(keys))) or {}
        safe("incr during outage", lambda: (cache.set("fo-n", 1), cache.incr("fo-n")))
        safe("delete during outage", lambda: cache.delete("fo-none"))
        safe("touch during outage", lambda: cache.touch("fo-0001", 100))
        if not failed and got == keys:
            ok_rounds += 1
            if ok_rounds >= 2:
                break
        time.sleep(FAILOVER_OPTIONS["retry_timeout"] + 0.05)
    ck.eq(errors[:3], [], "%s no exception reaches the app with ignore_exc=True" % tag)
    ck.check(ok_rounds >= 2, "%s after the node is marked dead all %d keys are served by the "
             "other two" % (tag, MANY))
    ck.check(all(n > 0 for n in curr_items([servers[0], servers[2]])),
             "%s the two live instances hold keys" % tag)

    strict_errors = set()
    for k in list(keys)[:40]:
        try:
            strict.get(k)
        except Exception as e:  # noqa: BLE001
            strict_errors.add(type(e).__name__)
    # The open connection first reports the close, then reconnects are refused.
    ck.check(strict_errors and strict_errors <= {"ConnectionRefusedError",
                                                 "MemcacheUnexpectedCloseError"},
             "%s without ignore_exc the outage raises: %r" % (tag, strict_errors))

    # The instance comes back (empty) on the same port; after dead_timeout it rejoins.
    back = harness.Server(binary, port=port, kind=kind)
    servers[1] = back
    time.sleep(FAILOVER_OPTIONS["dead_timeout"] + 0.5)
    errors.clear()
    deadline = time.time() + 10
    rejoined = False
    while time.time() < deadline:
        for k, v in keys.items():
            safe("set after restart", lambda: cache.set(k, v))
        got = safe("get_many after restart", lambda: cache.get_many(list(keys))) or {}
        if int(back.stats()["curr_items"]) > 0 and got == keys:
            rejoined = True
            break
        time.sleep(0.3)
    ck.check(rejoined, "%s the restarted instance rejoins and holds keys (%d)"
             % (tag, int(back.stats()["curr_items"])))
    ck.eq(errors[:3], [], "%s no exception after the restart" % tag)
    ck.eq(cache.get_many(list(keys)), keys, "%s all keys served after rejoin" % tag)
    cache.delete_many(list(keys))
    cache.close()
    strict.close()


def proxy_stats(nc, tag):
    st = nc.stats()
    ck.eq(st.get("service"), "nutcracker", "%s stats port: service" % tag)
    pool = st.get("cachepool", {})
    for i in range(3):
        s = pool.get("s%d" % i, {})
        ck.check(s.get("requests", 0) > 0, "%s backend s%d got requests: %r" % (tag, i, s))
        ck.eq(s.get("server_err", 0), 0, "%s backend s%d server_err" % (tag, i))
    ck.eq(pool.get("forward_error", 0), 0, "%s forward_error" % tag)
    ck.eq(pool.get("client_err", 0), 0, "%s client_err" % tag)


def main():
    import apichecks
    groups = {"cached": [], "memcached": []}
    proxies = {}
    try:
        for _ in range(3):
            for name, binary in (("cached", harness.CACHED), ("memcached", harness.MEMCACHED)):
                s = harness.Server(binary)
                groups[name].append(s)
        for name in groups:
            proxies[name] = Nutcracker(groups[name])
        configure(groups, proxies)
        from django.core.cache import caches

        recs = {}
        for name in ("cached", "memcached"):
            spread(caches["hash-" + name], groups[name], "hash/%s" % name, "h")
            recs["hash", name] = apichecks.run_api(
                caches["hash-" + name], ck, "hash/%s" % name, ns="h",
                prefixed=caches["hash-pfx-" + name], many=MANY)
            spread(caches["proxy-" + name], groups[name], "nutcracker/%s" % name, "p")
            recs["proxy", name] = apichecks.run_api(
                caches["proxy-" + name], ck, "nutcracker/%s" % name, ns="p",
                prefixed=caches["proxy-pfx-" + name], many=MANY, flush=False, nonpositive=False)
            proxy_stats(proxies[name], "nutcracker/%s" % name)
        for what in ("hash", "proxy"):
            apichecks.compare(ck, "memcached", recs[what, "memcached"], "cached",
                              recs[what, "cached"], "same-as-memcached[%s]" % what)

        for name in ("cached", "memcached"):
            failover(groups, name, "failover/%s" % name)
        for s in groups["cached"]:
            ck.check(s.proc.poll() is None, "cached on port %d still running" % s.port)
    finally:
        for nc in proxies.values():
            nc.stop()
        for servers in groups.values():
            for s in servers:
                s.stop()
    ck.done()


if __name__ == "__main__":
    main()
