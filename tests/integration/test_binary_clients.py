#!/usr/bin/python3
"""Real binary-protocol clients against cached and Debian's memcached 1.6.18:
  - pylibmc (libmemcached) with binary=True, without and with SASL (PLAIN, -S), running the
    same operations as in text mode: every result must match memcached's and text mode's;
  - PHP sessions with Debian's default php-memcached settings (memcached.sess_binary_protocol
    On, locking on): two `php -r` requests share a session, each well under a second;
  - php-memcached setSaslAuthData against -S, with the right and a wrong password.
A client that is missing is reported as skipped, not failed."""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
sys.path.insert(0, os.path.dirname(__file__))
from harness import MEMCACHED, Checker, Server  # noqa: E402
from test_binary_sasl import PASSWORD, USER, make_sasl_dir  # noqa: E402

ck = Checker("test_binary_clients")

try:
    import pylibmc
except ImportError:  # pragma: no cover
    pylibmc = None


def pylibmc_ops(port, binary, sasl=False):
    """The operations of an application, as (name, result) records."""
    kw = dict(binary=binary, behaviors={"cas": True})
    if sasl:
        kw.update(username=USER, password=PASSWORD)
    mc = pylibmc.Client(["127.0.0.1:%d" % port], **kw)
    out = []

    def rec(name, fn, *a):
        try:
            out.append((name, fn(*a)))
        except pylibmc.Error as e:
            out.append((name, "error " + type(e).__name__))

    rec("set", mc.set, "a", "1")
    rec("get", mc.get, "a")
    rec("get miss", mc.get, "missing")
    rec("add existing", mc.add, "a", "2")
    rec("add new", mc.add, "b", "2")
    rec("replace", mc.replace, "b", "3")
    rec("replace missing", mc.replace, "c", "3")
    rec("append", mc.append, "a", "x")
    rec("prepend", mc.prepend, "a", "y")
    rec("append missing", mc.append, "zz", "x")
    rec("get a", mc.get, "a")
    rec("set int", mc.set, "n", 10)
    rec("incr", mc.incr, "n", 5)
    rec("decr", mc.decr, "n", 100)
    rec("incr missing", mc.incr, "nope", 1)
    rec("get n", mc.get, "n")
    rec("set_multi", mc.set_multi, {"m1": "v1", "m2": b"v2", "m3": 3})
    rec("get_multi", lambda: sorted(mc.get_multi(["m1", "m2", "m3", "m4"]).items()))
    rec("delete_multi", mc.delete_multi, ["m1", "m2"])
    rec("get_multi after", lambda: sorted(mc.get_multi(["m1", "m2", "m3"]).items()))
    rec("delete", mc.delete, "b")
    rec("delete missing", mc.delete, "b")
    rec("touch", mc.touch, "a", 100)
    rec("touch missing", mc.touch, "nope", 100)
    rec("big value", lambda: mc.set("big", b"x" * 500000) and len(mc.get("big")))
    rec("too big", mc.set, "huge", b"x" * (2 << 20))
    rec("gets", lambda: mc.gets("a")[0])
    rec("cas good", lambda: mc.cas("a", "casv", mc.gets("a")[1]))
    rec("cas bad", lambda: mc.cas("a", "casv2", mc.gets("a")[1] + 100))
    rec("get after cas", mc.get, "a")
    rec("pickled", lambda: mc.set("p", {"x": [1, 2]}) and mc.get("p"))
    rec("unicode", lambda: mc.set("u", "h\u00e9") and mc.get("u"))
    rec("stats keys", lambda: "curr_items" in mc.get_stats()[0][1])
    rec("flush_all", mc.flush_all)
    rec("get after flush", mc.get, "a")
    mc.disconnect_all()
    return out


def php(code, ini=()):
    cmd = ["php", "-n"] if False else ["php"]
    for kv in ini:
        cmd += ["-d", kv]
    t0 = time.time()
    p = subprocess.run(cmd + ["-r", code], capture_output=True, timeout=60)
    return p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), time.time() - t0


SESSION_CODE = r"""
if (getenv('SID')) session_id(getenv('SID'));
if (!session_start()) { echo "start failed\n"; exit(1); }
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
echo session_id(), " ", $_SESSION['n'], "\n";
session_write_close();
"""


def php_sessions(port):
    ini = ["session.save_handler=memcached", "session.save_path=127.0.0.1:%d" % port]
    out1, err1, t1 = php(SESSION_CODE, ini)
    sid = out1.split()[0] if out1.split() else ""
    os.environ["SID"] = sid
    try:
        out2, err2, t2 = php(SESSION_CODE, ini)
    finally:
        del os.environ["SID"]
    return out1, out2, max(t1, t2), err1 + err2


SASL_CODE = r"""
$m = new Memcached();
$m->setOption(Memcached::OPT_BINARY_PROTOCOL, true);
$m->setSaslAuthData(getenv('U'), getenv('P'));
$m->addServer('127.0.0.1', (int)getenv('PORT'));
$r = [];
$r[] = var_export($m->set('k', 'v', 100), true) . ' ' . $m->getResultCode();
$r[] = var_export($m->get('k'), true) . ' ' . $m->getResultCode();
$r[] = var_export($m->add('k', 'w'), true) . ' ' . $m->getResultCode();
$r[] = var_export($m->increment('cnt', 1, 5), true) . ' ' . $m->getResultCode();
$r[] = var_export($m->delete('k'), true) . ' ' . $m->getResultCode();
echo implode("\n", $r), "\n";
"""


def php_sasl(port, password):
    env = dict(os.environ, U=USER, P=password, PORT=str(port))
    p = subprocess.run(["php", "-r", SASL_CODE], capture_output=True, timeout=60, env=env)
    return p.stdout.decode(errors="replace")


def same_as_text(bin_c, text_c, text_m, bin_m, what):
    """Binary mode gives the text-mode results, except where the protocols themselves differ
    (a replace of a missing key is NOT_STORED in text, KEY_ENOENT in binary, which
    libmemcached raises as NotFound); memcached must show exactly the same differences."""
    diff_c = [a[0] for a, b in zip(bin_c, text_c) if a != b]
    diff_m = [a[0] for a, b in zip(bin_m, text_m) if a != b]
    ck.eq(diff_c, ["replace missing"], "pylibmc %s: differs from text mode only where the "
          "protocols do" % what)
    ck.eq(diff_c, diff_m, "pylibmc %s: memcached differs from text mode in the same places"
          % what)


def both(args, env, fn):
    res = {}
    for kind, binary in (("cached", None), ("memcached", MEMCACHED)):
        with Server(binary, args=args, env=env, kind=kind if binary else None) as srv:
            res[kind] = fn(srv.port)
            ck.check(srv.proc.poll() is None, "%s still running" % kind)
    return res["cached"], res["memcached"]


def main():
    have_php = shutil.which("php") and "memcached" in subprocess.run(
        ["php", "-m"], capture_output=True, text=True).stdout
    d = make_sasl_dir("plain") if shutil.which("saslpasswd2") else None
    env = dict(os.environ, SASL_CONF_PATH=d) if d else None
    try:
        if pylibmc is None:
            print("SKIP pylibmc: python3-pylibmc not installed")
        else:
            text_c, text_m = both([], None, lambda p: pylibmc_ops(p, False))
            ck.eq(text_c, text_m, "pylibmc text mode: cached = memcached")
            bin_c, bin_m = both([], None, lambda p: pylibmc_ops(p, True))
            ck.eq(bin_c, bin_m, "pylibmc binary=True: cached = memcached")
            same_as_text(bin_c, text_c, text_m, bin_m, "binary=True")
            if d and pylibmc.support_sasl:
                sasl_c, sasl_m = both(["-S"], env, lambda p: pylibmc_ops(p, True, sasl=True))
                ck.eq(sasl_c, sasl_m, "pylibmc binary+SASL: cached = memcached")
                same_as_text(sasl_c, text_c, text_m, sasl_m, "binary+SASL")
            else:
                print("SKIP pylibmc SASL: no saslpasswd2 or libmemcached without SASL")
        if not have_php:
            print("SKIP php: php-cli with php-memcached not installed")
        else:
            (c1, c2, ct, cerr), (m1, m2, mt, merr) = both([], None, php_sessions)
            ck.check(c1.endswith(" 1\n") and c2 == c1.replace(" 1\n", " 2\n"),
                     "php session kept across requests on cached: %r %r %s" % (c1, c2, cerr))
            ck.check(m1.endswith(" 1\n") and m2 == m1.replace(" 1\n", " 2\n"),
                     "php session kept across requests on memcached: %r %r" % (m1, m2))
            ck.check(ct < 3.0, "php session requests on cached take %.2f s (< 3 s)" % ct)
            ck.eq(cerr, "", "php session: no warnings on cached")
            if d:
                good_c, good_m = both(["-S"], env, lambda p: php_sasl(p, PASSWORD))
                ck.eq(good_c, good_m, "php setSaslAuthData: cached = memcached")
                ck.check(good_c.startswith("true 0\n'v' 0\n"), "php SASL set/get work: %r" % good_c)
                bad_c, bad_m = both(["-S"], env, lambda p: php_sasl(p, "wrong"))
                ck.eq(bad_c, bad_m, "php setSaslAuthData wrong password: cached = memcached")
                ck.check(bad_c.startswith("false"), "php wrong password refused: %r" % bad_c)
    finally:
        if d:
            shutil.rmtree(d, ignore_errors=True)
    ck.done()


if __name__ == "__main__":
    main()
