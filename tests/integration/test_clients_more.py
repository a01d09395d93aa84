#!/usr/bin/python3
"""More client libraries against cached and Debian's memcached 1.6.18, as in
test_clients_matrix.py: each library runs the same fixed script of application operations
(tests/integration/clients_more/*) against each server on a free loopback port, and the printed
results must be identical line for line.

  Ruby dalli 3.0.6 (Debian ruby-dalli; binary protocol only, no meta in 3.0): set/get/get_multi,
    add/replace/append/prepend, incr/decr with initial values, touch/gat, cas/get_cas/set_cas,
    fetch, multi (quiet opcodes), flush, stats groups, version, expiry (absolute, relative, one
    second with a wait), values around the 1 MB item limit and over it (refused or compressed),
    unicode/binary keys and values, namespace, compression; and SASL PLAIN against -S.
  Node memjs 1.3.2 (binary): the same set, pipelining, stat sub-groups, SASL PLAIN against -S.
  Node memcached 2.2.2 (text): multi-get, gets/cas, incr/decr, touch, stats/settings/slabs/
    items/cachedump, version (this library crashed Node on cached's former version string).

The Node libraries are installed at test time from the npm registry into build/npm-clients
(`npm install --prefix`, pinned versions, reused on later runs). Without npm, or when the install
fails (no network), they are SKIPped with the reason, loudly; a Debian package that is missing
is SKIPped the same way. The file fails if every library was skipped.

Lines that cannot be equal by design are compared by rule:
  KEYS <group>: memcached's keys must come first, in its order, in cached's list; cached's own
    keys follow (the README's rule); memcached's extstore settings (ext_*,
    slab_automove_freeratio; cached has no extstore) are left out of the comparison.
  DUMP ...: memcached's `stats cachedump` lists only its COLD LRU (see test_clients_matrix.py),
    so its keys must be a subset of cached's."""
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import MEMCACHED, ROOT, Checker, Server  # noqa: E402

ck = Checker("test_clients_more")
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients_more")
NPM_DIR = os.environ.get("CACHED_NPM_DIR", os.path.join(ROOT, "build", "npm-clients"))
NPM_PKGS = ["memjs@1.3.2", "memcached@2.2.2"]
SASL_USER, SASL_PASS = "testuser", "s3cret"


def ruby_has(lib):
    if not shutil.which("ruby"):
        return "ruby not installed (Debian ruby, ruby-dalli)"
    p = subprocess.run(["ruby", "-e", "require '%s'" % lib], capture_output=True, text=True,
                       timeout=60)
    return None if p.returncode == 0 else "ruby cannot require %s: %s" % (
        lib, (p.stderr.splitlines() or ["?"])[0][:160])


_npm_state = {}


def npm_ready():
    """Installs the pinned Node libraries once into NPM_DIR; None when usable, else why not."""
    if "why" in _npm_state:
        return _npm_state["why"]
    why = None
    node, npm = shutil.which("node"), shutil.which("npm")
    mods = os.path.join(NPM_DIR, "node_modules")
    want = {p.split("@")[0]: p.split("@")[1] for p in NPM_PKGS}

    def installed():
        import json
        for name, ver in want.items():
            try:
                with open(os.path.join(mods, name, "package.json")) as f:
                    if json.load(f).get("version") != ver:
                        return False
            except (OSError, ValueError):
                return False
        return True

    if not node:
        why = "node not installed"
    elif not installed():
        if not npm:
            why = "npm not installed, and %s has no pinned %s" % (mods, " ".join(NPM_PKGS))
        else:
            os.makedirs(NPM_DIR, exist_ok=True)
            try:
                p = subprocess.run([npm, "install", "--prefix", NPM_DIR, "--no-audit", "--no-fund",
                                    "--no-save", "--no-package-lock", "--loglevel=error"]
                                   + NPM_PKGS, capture_output=True, text=True, timeout=180,
                                   cwd=NPM_DIR, env=dict(os.environ, npm_config_update_notifier="false"))
                if p.returncode != 0 or not installed():
                    lines = [x for x in p.stderr.splitlines() if x.strip() and "complete log" not in x]
                    why = "npm install %s failed (exit %d): %s" % (
                        " ".join(NPM_PKGS), p.returncode, " | ".join(lines[:3])[:300] or "?")
            except subprocess.TimeoutExpired:
                why = "npm install %s timed out after 180 s" % " ".join(NPM_PKGS)
    _npm_state["why"] = why
    return why


def make_sasl_dir():
    d = tempfile.mkdtemp(prefix="cached-clients-sasl-")
    db = os.path.join(d, "sasldb")
    subprocess.run(["saslpasswd2", "-p", "-a", "memcached", "-c", "-f", db, SASL_USER],
                   input=SASL_PASS.encode(), check=True, timeout=30)
    with open(os.path.join(d, "memcached.conf"), "w") as f:
        f.write("mech_list: plain\nsasldb_path: %s\n" % db)
    return d


def sasl_ready():
    return None if shutil.which("saslpasswd2") else "saslpasswd2 not installed (Debian sasl2-bin)"


def both(*checks):
    def f():
        for c in checks:
            why = c()
            if why:
                return why
        return None
    return f


NODE_ENV = {"NODE_PATH": os.path.join(NPM_DIR, "node_modules")}
# name, what to install, availability, command, extra environment, server args, needs SASL
LIBS = [
    ("dalli", "ruby-dalli", lambda: ruby_has("dalli"),
     ["ruby", os.path.join(HERE, "dalli.rb")], {}, [], False),
    ("dalli SASL", "ruby-dalli, sasl2-bin", both(lambda: ruby_has("dalli"), sasl_ready),
     ["ruby", os.path.join(HERE, "dalli_sasl.rb")], {}, ["-S"], True),
    ("memjs", "npm memjs", npm_ready,
     ["node", os.path.join(HERE, "memjs.js")], NODE_ENV, [], False),
    ("memjs stat groups", "npm memjs", npm_ready,
     ["node", os.path.join(HERE, "memjs_stats.js")], NODE_ENV, [], False),
    ("memjs SASL", "npm memjs, sasl2-bin", both(npm_ready, sasl_ready),
     ["node", os.path.join(HERE, "memjs_sasl.js")], NODE_ENV, ["-S"], True),
    ("node memcached", "npm memcached", npm_ready,
     ["node", os.path.join(HERE, "node_memcached.js")], NODE_ENV, [], False),
]


# `stats settings` keys that memcached prints only when built with extstore (Debian's is).
EXTSTORE_ONLY = ("slab_automove_freeratio",)


def keys_ok(name, m, c):
    head_m, _, rest_m = m.partition(": ")
    head_c, _, rest_c = c.partition(": ")
    km = [k for k in rest_m.split(",") if k and not k.startswith("ext_") and k not in EXTSTORE_ONLY]
    kc = [k for k in rest_c.split(",") if k]
    ck.eq(kc[:len(km)], km, "%s: %s: memcached's keys first, in its order" % (name, head_c))
    return head_m == head_c


def dump_ok(name, m, c):
    head_m, _, rest_m = m.partition(": ")
    head_c, _, rest_c = c.partition(": ")
    km = set(k for k in rest_m.split(",") if k)
    kc = set(k for k in rest_c.split(",") if k)
    ck.check(km <= kc, "%s: memcached's %s keys are a subset of cached's" % (name, head_m))
    return head_m == head_c


def run_client(cmd, extra, port):
    env = dict(os.environ, PORT=str(port), **extra)
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=90, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return ["TIMEOUT after 90 s"], ""
    out = p.stdout.decode(errors="replace").splitlines()
    if p.returncode != 0:
        out.append("exit status %d" % p.returncode)
    return out, p.stderr.decode(errors="replace")


def main():
    only = os.environ.get("ONLY")
    ran, skipped = 0, []
    sasl_dir = None
    for name, pkg, avail, cmd, extra, args, sasl in LIBS:
        if only and only not in name:
            continue
        why = avail()
        if why:
            skipped.append(name)
            print("SKIP %s (%s): %s" % (name, pkg, why), flush=True)
            continue
        env = None
        if sasl:
            sasl_dir = sasl_dir or make_sasl_dir()
            env = dict(os.environ, SASL_CONF_PATH=sasl_dir)
        ran += 1
        res = {}
        # cached's run and memcached's side by side (own servers, own ports: their waits overlap)
        with Server(None, args=args, env=env) as sc, \
                Server(MEMCACHED, args=args, env=env, kind="memcached") as sm, \
                ThreadPoolExecutor(2) as ex:
            runs = {kind: ex.submit(run_client, cmd, extra, srv.port)
                    for kind, srv in (("cached", sc), ("memcached", sm))}
            for kind, srv in (("cached", sc), ("memcached", sm)):
                res[kind] = runs[kind].result()
                ck.check(srv.proc.poll() is None, "%s: %s still running" % (name, kind))
        (oc, ec), (om, em) = res["cached"], res["memcached"]
        if os.environ.get("SHOW_RECORDS"):
            print("== %s\n%s" % (name, "\n".join(om)))
        ck.check(len(om) >= 5 and not any(x.startswith(("exit status", "TIMEOUT")) for x in om),
                 "%s: ran to the end against memcached (%d lines): %s" % (name, len(om), em[-300:]))
        diff = []
        for m, c in zip(om, oc):
            if m.startswith("KEYS ") and c.startswith("KEYS "):
                same = keys_ok(name, m, c)
            elif m.startswith("DUMP ") and c.startswith("DUMP "):
                same = dump_ok(name, m, c)
            else:
                same = m == c
            if not same:
                diff.append((m, c))
        ck.eq(len(oc), len(om), "%s: as many results from cached as from memcached" % name)
        ck.eq(diff, [], "%s: results (memcached, cached) that differ" % name)
        ck.eq(ec, em, "%s: same output on stderr" % name)
        print("%s: %d results compared" % (name, len(om)), flush=True)
    if sasl_dir:
        shutil.rmtree(sasl_dir, ignore_errors=True)
    if skipped:
        print("*** WARNING: %d of %d client runs SKIPPED (%s): see the SKIP lines above ***"
              % (len(skipped), len(skipped) + ran, ", ".join(skipped)), flush=True)
    ck.check(ran > 0, "at least one client library is installed")
    ck.done()


if __name__ == "__main__":
    main()
