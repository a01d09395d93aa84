#!/usr/bin/python3
"""SASL (-S) against Debian's memcached 1.6.18, byte for byte: the mechanism list, PLAIN with
good and bad passwords, what runs before authentication (version and the SASL commands only;
anything else is refused and the connection closed), SASL_STEP without a start, over-long
mechanism names, and text clients (refused: -S serves binary only). Both servers read the
same private Cyrus SASL config (SASL_CONF_PATH) and sasldb under /tmp."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import MEMCACHED, Checker, Server  # noqa: E402
from mcbin import BinConn, Normaliser, pack, store  # noqa: E402

ck = Checker("test_binary_sasl")
USER, PASSWORD = "testuser", "s3cret"


def make_sasl_dir(mechs):
    d = tempfile.mkdtemp(prefix="cached-sasl-")
    db = os.path.join(d, "sasldb")
    subprocess.run(["saslpasswd2", "-p", "-a", "memcached", "-c", "-f", db, USER],
                   input=PASSWORD.encode(), check=True)
    with open(os.path.join(d, "memcached.conf"), "w") as f:
        if mechs:
            f.write("mech_list: %s\n" % mechs)
        f.write("sasldb_path: %s\n" % db)
    return d


def plain(user, password):
    return b"\0" + user.encode() + b"\0" + password.encode()


def scenarios():
    good = pack("sasl_auth", "PLAIN", value=plain(USER, PASSWORD))
    bad = pack("sasl_auth", "PLAIN", value=plain(USER, "wrong"))
    return [
        ("list mechs", [pack("sasl_list")], "marker"),
        ("version before auth", [pack("version")], "marker"),
        ("get before auth closes", [pack("get", "k")], "close"),
        ("noop before auth closes", [pack("noop")], "close"),
        ("bad password", [bad], "marker"),
        ("bad password then get", [bad, pack("get", "k")], "close"),
        ("unknown user", [pack("sasl_auth", "PLAIN", value=plain("nobody", "x"))], "marker"),
        ("good password then work", [good, store("set", "k", "v", flags=2), pack("get", "k"),
                                     pack("getk", "k"), pack("delete", "k")], "marker"),
        ("re-list resets auth", [good, pack("sasl_list"), pack("get", "k")], "close"),
        ("step without start", [pack("sasl_step", "PLAIN", value=plain(USER, PASSWORD))],
         "marker"),
        ("unknown mechanism", [pack("sasl_auth", "NOPE", value=b"x")], "marker"),
        ("mechanism name too long", [pack("sasl_auth", "P" * 33, value=b"x")], "marker"),
        ("empty auth data", [pack("sasl_auth", "PLAIN")], "marker"),
        ("auth without key", [pack("sasl_auth", value=b"x")], "close"),
        ("text client", [b"get k\r\n" + b" " * 17 + b"\r\n"], "close"),
        ("stats after auth", [good, pack("stat", "detail on")], "marker"),
    ]


def cram_md5(port):
    """A two-step mechanism: SASL_AUTH gets a challenge (AUTH_CONTINUE), SASL_STEP answers
    it. The challenge is random, so only statuses and the final text are compared. (No NOOP
    marker here: before authentication a NOOP is refused and closes the connection.)"""
    import hashlib
    import hmac
    out = []
    with BinConn(port) as c:
        def ask(pkt):
            c.send(pkt)
            return c.recv_packets(1)
        for password in ("wrong", PASSWORD):
            got = ask(pack("sasl_auth", "CRAM-MD5"))
            out.append([(p["op"], p["status"]) for p in got])
            if not got or got[0]["status"] != 0x21:
                return out
            digest = hmac.new(password.encode(), got[0]["value"], hashlib.md5).hexdigest()
            got = ask(pack("sasl_step", "CRAM-MD5", value=("%s %s" % (USER, digest)).encode()))
            out.append([(p["op"], p["status"], p["value"]) for p in got])
        got = ask(pack("get", "k"))
        out.append([(p["op"], p["status"]) for p in got])
    return out


def run(port, norm):
    from test_binary_diff import collapse_stats, normalise, read_until_quiet
    out = []
    for name, pkts, mode in scenarios():
        with BinConn(port) as c:
            data = b"".join(pkts)
            if mode == "marker":
                got, closed = c.call(data)
            else:
                c.send(data)
                got, closed = read_until_quiet(c)
        out.append((name, [normalise(norm, p) for p in collapse_stats(got)], closed))
    out.append(("CRAM-MD5 exchange", cram_md5(port), False))
    return out


def main():
    if not shutil.which("saslpasswd2"):
        print("test_binary_sasl: SKIP (saslpasswd2 missing: apt-get install sasl2-bin)")
        sys.exit(0)
    sys.path.insert(0, os.path.dirname(__file__))
    for mechs in ("plain", ""):
        d = make_sasl_dir(mechs)
        try:
            env = dict(os.environ, SASL_CONF_PATH=d)
            res = {}
            for kind, binary in (("cached", None), ("memcached", MEMCACHED)):
                with Server(binary, args=["-S", "-t", "2"], env=env,
                            kind=kind if binary else None) as srv:
                    res[kind] = run(srv.port, Normaliser())
                    ck.check(srv.proc.poll() is None, "%s still running" % kind)
            tag = "mech_list %s" % (mechs or "(all)")
            for (name, got, closed), (_, want, wclosed) in zip(res["cached"], res["memcached"]):
                ck.eq(got, want, "%s: %r responses" % (tag, name))
                ck.eq(closed, wclosed, "%s: %r closed" % (tag, name))
            if mechs == "plain":
                auth = [r for r in res["cached"] if r[0] == "good password then work"][0]
                ck.eq(auth[1][0][5], b"Authenticated", "PLAIN authenticates")
        finally:
            shutil.rmtree(d, ignore_errors=True)
    ck.done()


if __name__ == "__main__":
    main()
