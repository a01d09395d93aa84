"""`lru_crawler crawl`, page moves with rescues, and the page-mover options, against cached and
Debian's memcached 1.6.18 (issue #14; memcached's t/lru-crawler.t and t/slabs-reassign2.t):
- a crawl frees the expired items of the classes asked for: items:N:crawler_reclaimed, used
  chunks, lru_crawler_running back to 0; `crawl hash`, a metadump after pipelined commands and
  the settings `lru_crawler sleep|tocrawl` set answer as memcached's;
- `lru_crawler enable|disable` switch the crawler (stats settings lru_crawler);
- a page handed back to the global pool keeps the live items it held (rescued into free
  chunks of their class: slab_reassign_rescues), total_malloced stays;
- after `cache_memlimit` shrinks and the items go, total_malloced falls to the new limit;
- `slabs automove ratio R` shows in stats settings; -o no_slab_reassign refuses `slabs
  reassign`; -S with a UDP port and bad slab_automove_window/ratio values refuse to start.
"""
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import CACHED, MEMCACHED, Checker, Server  # noqa: E402

DEADLINE = 60.0  # generous: ASan and a loaded 2-core machine


def poll(fn, timeout=DEADLINE, every=0.1):
    end = time.time() + timeout
    v = fn()
    while not v and time.time() < end:
        time.sleep(every)
        v = fn()
    return v


def crawl_run(binary):
    """What a client sees of a crawl, as comparable values."""
    out = {}
    with Server(binary, args=["-m", "32", "-o", "no_modern"]) as s, s.connect() as c:
        out["lru_crawler at start (no_modern)"] = c.stats("settings")["lru_crawler"]
        out["crawl while disabled"] = c.cmd("lru_crawler crawl 1").decode()
        for i in range(30):
            c.set("ifoo%d" % i, "ok")
            c.set("sfoo%d" % i, "ok", exptime=1)
        out["used before"] = c.stats("slabs")["1:used_chunks"]
        time.sleep(2.5)
        out["enable"] = c.cmd("lru_crawler enable").decode()
        out["enable again"] = c.cmd("lru_crawler enable").decode()
        out["lru_crawler after enable"] = c.stats("settings")["lru_crawler"]
        out["crawl hash"] = c.cmd("lru_crawler crawl hash").decode()
        out["crawl 1"] = c.cmd("lru_crawler crawl 1").decode()
        poll(lambda: c.stats().get("lru_crawler_running") == "0")
        out["running after"] = c.stats()["lru_crawler_running"]
        out["used after"] = c.stats("slabs")["1:used_chunks"]
        items = c.stats("items")
        out["crawler_reclaimed"] = items["items:1:crawler_reclaimed"]
        out["checked >= 60"] = int(items["items:1:crawler_items_checked"]) >= 60
        out["curr_items"] = c.stats()["curr_items"]
        c.send(b"mg nokey v\r\nlru_crawler metadump all\r\n")
        out["pipelined metadump"] = c.readline() + c.readline()
        out["sleep 50"] = c.cmd("lru_crawler sleep 50").decode()
        out["tocrawl 7"] = c.cmd("lru_crawler tocrawl 7").decode()
        st = c.stats("settings")
        out["settings sleep/tocrawl"] = (st["lru_crawler_sleep"], st["lru_crawler_tocrawl"])
        out["disable"] = c.cmd("lru_crawler disable").decode()
        out["lru_crawler after disable"] = poll(
            lambda: c.stats("settings")["lru_crawler"] == "no", timeout=10) and "no"
        out["metadump while disabled"] = c.cmd("lru_crawler metadump all").decode()
    return out


def tocrawl_checked():
    """cached: a crawl checks at most `tocrawl` items of a class."""
    with Server(args=["-m", "32"]) as s, s.connect() as c:
        for i in range(50):
            c.set("k%d" % i, "v")
        c.cmd("lru_crawler tocrawl 5")
        before = int(c.stats()["crawler_items_checked"])
        c.cmd("lru_crawler crawl 1")
        poll(lambda: c.stats().get("lru_crawler_running") == "0")
        return int(c.stats()["crawler_items_checked"]) - before


def rescue_run(binary):
    """Half of the 11,000-byte items deleted: automove hands the spare pages back to the pool
    (window 3 s) and every item left is still there."""
    out = {}
    with Server(binary, args=["-m", "48", "-o", "slab_automove_window=3"]) as s, \
            s.connect() as c:
        val = b"B" * 11000
        n = 3000
        for i in range(n):
            c.send(b"set k%d 0 0 11000 noreply\r\n%s\r\n" % (i, val))
        c.cmd("mn")
        stored = int(c.stats()["curr_items"])
        for i in range(0, n, 2):
            c.send(b"delete k%d noreply\r\n" % i)
        c.cmd("mn")
        malloced = c.stats("slabs")["total_malloced"]
        pool = int(c.stats()["slab_global_page_pool"])
        kept = [i for i in range(1, n, 2) if c.get("k%d" % i) is not None]
        out["pages moved"] = bool(poll(lambda: int(c.stats()["slabs_moved"]) >= 8))
        st = c.stats()
        out["pool grew by them"] = int(st["slab_global_page_pool"]) >= pool + 8
        out["rescues > 0"] = int(st["slab_reassign_rescues"]) > 0
        out["stored > 2500"] = stored > 2500
        lost = [i for i in kept if c.get("k%d" % i) != (0, val)]
        out["items kept through the moves"] = len(lost) == 0
        out["total_malloced unchanged"] = c.stats("slabs")["total_malloced"] == malloced
    return out


def shrink_run(binary):
    """cache_memlimit shrinks, the items go: total_malloced falls (the pages drained to the
    pool past the new limit are given back to the system), as memcached's."""
    out = {}
    with Server(binary, args=["-m", "16", "-o", "slab_automove_window=3"]) as s, \
            s.connect() as c:
        val = b"B" * 66560
        for i in range(150):
            c.send(b"set key%d 0 0 66560 noreply\r\n%s\r\n" % (i, val))
        c.cmd("mn")
        before = int(c.stats("slabs")["total_malloced"])
        out["cache_memlimit 8"] = c.cmd("cache_memlimit 8").decode()
        for i in range(150):
            c.send(b"delete key%d noreply\r\n" % i)
        c.cmd("mn")
        out["total_malloced fell"] = bool(
            poll(lambda: int(c.stats("slabs")["total_malloced"]) < before))
        out["at most the new limit"] = bool(
            poll(lambda: int(c.stats("slabs")["total_malloced"]) <= 8 << 20))
        c.send(b"set again 0 0 66560\r\n%s\r\n" % val)
        out["stores again"] = c.readline().decode()
    return out


def settings_run(binary):
    out = {}
    with Server(binary, args=["-o", "no_slab_reassign"]) as s, s.connect() as c:
        out["reassign refused"] = c.cmd("slabs reassign 1 2").decode()
        out["slab_reassign setting"] = c.stats("settings")["slab_reassign"]
        out["automove 1"] = c.cmd("slabs automove 1").decode()
    with Server(binary, args=["-o", "slab_automove_window=5,slab_automove_ratio=0.3"]) as s, \
            s.connect() as c:
        st = c.stats("settings")
        out["window/ratio from -o"] = (st["slab_automove_window"], st["slab_automove_ratio"])
        out["ratio 0.5"] = c.cmd("slabs automove ratio 0.5").decode()
        out["ratio after"] = c.stats("settings")["slab_automove_ratio"]
        out["ratio x"] = c.cmd("slabs automove ratio x").decode()
    return out


def refused(binary, args):
    p = subprocess.run([binary, "-l", "127.0.0.1", "-p", "0"] + args, capture_output=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    return p.returncode, p.stderr.decode(errors="replace")


def both(run):
    """run(CACHED) and run(MEMCACHED) side by side (each on its own server and port: their
    waits for sweeps, crawls and page moves overlap); returns (cached's, memcached's)."""
    with ThreadPoolExecutor(2) as ex:
        got, want = ex.submit(run, CACHED), ex.submit(run, MEMCACHED)
        return got.result(), want.result()


def main():
    ck = Checker("crawl_reassign")
    got, want = both(crawl_run)
    for k in want:
        ck.eq(got[k], want[k], "crawl: %s" % k)
    ck.eq(got["crawler_reclaimed"], "30", "crawl reclaimed the 30 expired items")
    ck.eq(tocrawl_checked(), 5, "tocrawl 5: five items checked")
    got, want = both(rescue_run)
    for k in want:
        ck.eq(got[k], want[k], "page moves: %s" % k)
        ck.check(got[k], "page moves: %s (cached)" % k)
    got, want = both(shrink_run)
    for k in want:
        ck.eq(got[k], want[k], "cache_memlimit shrink: %s" % k)
    got, want = both(settings_run)
    for k in want:
        ck.eq(got[k], want[k], "settings: %s" % k)
    # memcached refuses -S with a UDP port; cached refuses any UDP port (it serves none)
    rc, err = refused(CACHED, ["-S", "-U", "11399"])
    mrc, _ = refused(MEMCACHED, ["-S", "-U", "11399"])
    ck.eq(rc, mrc, "-S with -U: exit code as memcached's (64)")
    ck.check("UDP" in err, "-S with -U: says why (%r)" % err)
    for bad in ("slab_automove_window=2", "slab_automove_ratio=0", "slab_automove_ratio=1.5"):
        rc, err = refused(CACHED, ["-o", bad])
        mrc, _ = refused(MEMCACHED, ["-o", bad])
        ck.check(rc != 0 and mrc != 0, "-o %s refused by both (%d, %d)" % (bad, rc, mrc))
        ck.check(bad.split("=")[0] in err, "-o %s: names the option (%r)" % (bad, err))
    ck.done()


if __name__ == "__main__":
    main()
