"""TLS (-Z) against Debian's memcached 1.6.18 -Z as the oracle.

Certificates are made at test time with the openssl CLI (lib/tlsutil.py). Checked: startup
errors and exit codes, `-o ssl_*` without -Z, operations over TLS give memcached's bytes,
`stats`/`stats settings` fields, refresh_certs (OK, memcached's error text, and cached keeping
the old pair where memcached breaks), SIGHUP reload without dropping connections, notls:
listeners, plaintext to a TLS port reset, mutual TLS outcomes, resumption (TLS 1.3 tickets,
TLS 1.2 session cache), pipelined sets that memcached 1.6.18 stalls on, a large value, and the
bad-input list (one -v log line each, connection closed, the server unaffected).
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))

import harness  # noqa: E402
import tlsutil  # noqa: E402
from tlsutil import TLSConn  # noqa: E402

ck = harness.Checker("test_tls")
TMP = tempfile.mkdtemp(prefix="cached-tls-")
PKI = tlsutil.make_pki(TMP)
H = "127.0.0.1"


class Proc:
    """cached or memcached with its own -l list (harness.Server always adds one -l)."""

    def __init__(self, binary, args, listen=None, port=None, verbose=False):
        self.kind = "memcached" if os.path.basename(binary) == "memcached" else "cached"
        self.port = port or harness.free_port()
        cmd = [binary, "-p", str(self.port), "-l", listen or H, "-U", "0"] + list(args)
        if verbose:
            cmd.append("-v")
        if os.geteuid() == 0:
            cmd += ["-u", "root"] if self.kind == "memcached" else ["--run-as-root"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        # Probe with a TLS-less TCP connect only where we must: it counts as a failed
        # handshake. Instead wait for the port through /proc/net/tcp-free polling of connect.
        harness.wait_port(self.port, H, timeout=20 if harness.ASAN else 10, proc=self.proc)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.err = self.proc.stderr.read().decode(errors="replace")
        if self.kind == "cached" and ("Sanitizer" in self.err or "runtime error:" in self.err):
            sys.stderr.write(self.err)
            raise AssertionError("sanitizer report from cached")
        return self.proc.returncode

    def tls(self, ctx=None, **kw):
        return TLSConn(H, self.port, ctx or tlsutil.client_ctx(PKI), **kw)


BINARIES = (("cached", harness.CACHED), ("memcached", harness.MEMCACHED))


def startup_line(binary, args):
    """Exit code and the 'Error ...' line of a start that must fail."""
    kind = os.path.basename(binary)
    cmd = [binary, "-p", str(harness.free_port()), "-l", H, "-U", "0"] + args
    if os.geteuid() == 0:
        cmd += ["-u", "root"] if kind == "memcached" else ["--run-as-root"]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return None, "still running"
    lines = [ln for ln in p.stderr.decode(errors="replace").splitlines()
             if ln.startswith(("Error", "Could not", "cached:"))]
    return p.returncode, lines[-1] if lines else ""


def test_startup_errors():
    s, o = PKI["server"], PKI["other"]
    cases = [
        ["-Z"],
        ["-Z", "-o", "ssl_chain_cert=%s.pem" % s],
        ["-Z", "-o", "ssl_chain_cert=%s.pem,ssl_key=%s.key" % (s, o)],  # mismatched key
        ["-Z", "-o", "ssl_chain_cert=%s/nope.pem,ssl_key=%s.key" % (TMP, s)],
        ["-Z", "-o", "ssl_chain_cert=%s.pem,ssl_key=%s.key,ssl_ciphers=BOGUS" % (s, s)],
    ]
    for args in cases:
        got = startup_line(harness.CACHED, args)
        want = startup_line(harness.MEMCACHED, args)
        ck.eq(got, want, "start with %s" % " ".join(args))
        ck.eq(got[0], 64, "exit code of %s" % " ".join(args))
    # Safer than memcached: ssl_* without -Z is refused (memcached serves plaintext).
    rc, line = startup_line(harness.CACHED, ["-o", "ssl_chain_cert=%s.pem" % s])
    ck.eq(rc, 64, "ssl_chain_cert without -Z exits 64")
    ck.check("TLS is off" in line and "-Z" in line, "clear message: %r" % line)


STALLS = {"cached": 0, "memcached": 0}


def exchange(conn, payload, kind):
    """Sends payload + mn, returns every byte before MN (a fence both servers answer).
    memcached 1.6.18 can leave TLS bytes unread until the client sends more (its
    SSL_pending bug): after 2 s of silence one more mn is sent and counted as a stall."""
    conn.send(payload + b"mn\r\n")
    conn.sock.settimeout(2)
    nudges = 0
    while b"MN\r\n" not in conn.buf:
        try:
            conn._fill()
        except (socket.timeout, TimeoutError):
            nudges += 1
            if nudges > 3:
                raise
            conn.send(b"mn\r\n")
    conn.sock.settimeout(10)
    out = conn.read_until(b"MN\r\n")
    for _ in range(nudges):
        conn.read_until(b"MN\r\n")
    STALLS[kind] += nudges
    return out[:-4]


SCRIPT = [
    b"set k1 5 0 5\r\nhello\r\n",
    b"get k1\r\n",
    b"add k1 0 0 1\r\nx\r\n",
    b"append k1 0 0 3\r\nabc\r\n",
    b"prepend k1 0 0 2\r\nzz\r\n",
    b"get k1 missing k1\r\n",
    b"set n 0 0 2\r\n10\r\n",
    b"incr n 5\r\n",
    b"decr n 100\r\n",
    b"touch n 100\r\n",
    b"delete n\r\n",
    b"delete n\r\n",
    b"set big 0 0 300000\r\n" + b"v" * 300000 + b"\r\n",
    b"get big\r\n",
    b"mg k1 v f t\r\n",
    b"ms m1 3 T0\r\nabc\r\n",
    b"bogus command\r\n",
    b"set k2 0 0 3\r\nabcde\r\n",
    b"verbosity 1\r\n",
]


def test_ops_same_as_memcached():
    results = {}
    for kind, binary in BINARIES:
        p = Proc(binary, tlsutil.server_args(PKI))
        try:
            with p.tls() as c:
                results[kind] = [exchange(c, s, kind) for s in SCRIPT]
                # 100 sets in one write: every reply without sending more (1.6.18 stalls
                # here; checked on cached only).
                if kind == "cached":
                    c.send(b"".join(b"set p%d 0 0 4\r\nabcd\r\n" % i for i in range(100)))
                    c.sock.settimeout(3)
                    got = b""
                    try:
                        while got.count(b"STORED\r\n") < 100:
                            chunk = c.sock.recv(65536)
                            if not chunk:
                                break
                            got += chunk
                    except socket.timeout:
                        pass
                    ck.eq(got.count(b"STORED\r\n"), 100, "pipelined sets all answered")
                    c.sock.settimeout(10)
                    # Pipelined gets of large and small values in one write.
                    c.send(b"get big\r\nget p1\r\n" * 20 + b"mn\r\n")
                    out = c.read_until(b"MN\r\n")
                    ck.eq(out.count(b"VALUE big 0 300000\r\n"), 20, "pipelined big gets")
                    ck.eq(out.count(b"VALUE p1 0 4\r\nabcd\r\n"), 20, "pipelined small gets")
        finally:
            p.stop()
    for i, s in enumerate(SCRIPT):
        ck.eq(results["cached"][i], results["memcached"][i], "reply to %r" % s[:40])
    ck.eq(STALLS["cached"], 0, "cached never needed a nudge")
    print("memcached needed %d nudge(s) to finish replies" % STALLS["memcached"])


SSL_SETTINGS = ["ssl_enabled", "ssl_chain_cert", "ssl_key", "ssl_verify_mode", "ssl_keyformat",
                "ssl_ciphers", "ssl_ca_cert", "ssl_wbuf_size", "ssl_session_cache",
                "ssl_kernel_tls", "ssl_min_version"]


def test_stats_fields():
    extra = "ssl_verify_mode=2,ssl_ca_cert=%s.pem,ssl_session_cache,ssl_wbuf_size=32" % PKI["ca"]
    got = {}
    for kind, binary in BINARIES:
        p = Proc(binary, tlsutil.server_args(PKI, extra=extra))
        try:
            with p.tls(tlsutil.client_ctx(PKI, cert="client")) as c:
                st = c.stats("settings")
                got[kind] = {k: st.get(k) for k in SSL_SETTINGS}
                s = c.stats()
                for f in ("ssl_handshake_errors", "time_since_server_cert_refresh",
                          "ssl_new_sessions"):
                    ck.check(f in s, "%s: stats has %s" % (kind, f))
        finally:
            p.stop()
    ck.eq(got["cached"], got["memcached"], "stats settings ssl_* fields")
    ck.eq(got["cached"]["ssl_verify_mode"], "3", "verify mode 2 shown as OpenSSL's bits")


def refresh(conn):
    conn.send(b"refresh_certs\r\n")
    return conn.readline()


def test_refresh_and_sighup():
    live = {}
    out = {}
    for kind, binary in BINARIES:
        d = os.path.join(TMP, "live-" + kind)
        os.makedirs(d, exist_ok=True)
        crt, key = os.path.join(d, "live.pem"), os.path.join(d, "live.key")
        shutil.copy(PKI["server"] + ".pem", crt)
        shutil.copy(PKI["server"] + ".key", key)
        live[kind] = (crt, key)
        p = Proc(binary, ["-Z", "-o", "ssl_chain_cert=%s,ssl_key=%s" % (crt, key)])
        r = out[kind] = {}
        try:
            held = p.tls()
            held.cmd(b"set held 0 0 1\r\nh")
            with p.tls() as c:
                r["ok"] = refresh(c)
                # A new certificate with the old key: memcached's error text, no ERROR.
                shutil.copy(PKI["server2"] + ".pem", crt)
                r["bad"] = refresh(c).replace(crt.encode(), b"<crt>").replace(key.encode(),
                                                                               b"<key>")
                r["same_conn_after_bad"] = c.cmd(b"version")[:8]
            if kind == "cached":
                # Safer than memcached: new handshakes still work, with the old pair.
                with p.tls() as c2:
                    ck.eq(tlsutil.peer_cn(c2), "localhost", "failed refresh keeps the old cert")
                # The matching key: the new pair serves new connections.
                shutil.copy(PKI["server2"] + ".key", key)
                with p.tls() as c3:
                    ck.eq(refresh(c3), b"OK\r\n", "refresh with a matching pair")
                with p.tls() as c4:
                    ck.eq(tlsutil.peer_cn(c4), "localhost2", "new connections see the new cert")
                # SIGHUP reloads too.
                shutil.copy(PKI["server"] + ".pem", crt)
                shutil.copy(PKI["server"] + ".key", key)
                os.kill(p.proc.pid, signal.SIGHUP)
                deadline, cn = time.time() + 5, None
                while time.time() < deadline and cn != "localhost":
                    time.sleep(0.1)
                    with p.tls() as c5:
                        cn = tlsutil.peer_cn(c5)
                ck.eq(cn, "localhost", "SIGHUP reloaded the certificates")
                ck.eq(held.get("held"), (0, b"h"), "a connection survives refreshes and SIGHUP")
            held.close()
        finally:
            p.stop()
    ck.eq(out["cached"]["ok"], b"OK\r\n", "refresh_certs OK")
    for k in ("ok", "bad", "same_conn_after_bad"):
        ck.eq(out["cached"][k], out["memcached"][k], "refresh_certs %s" % k)
    ck.check(out["cached"]["bad"].startswith(b"Error loading the key: <key> : error:"),
             "refresh error text: %r" % out["cached"]["bad"])
    # Without -Z.
    for kind, binary in BINARIES:
        p = Proc(binary, [])
        try:
            with harness.Conn(H, p.port) as c:
                out[kind]["notls"] = refresh(c)
        finally:
            p.stop()
    ck.eq(out["cached"]["notls"], b"Error TLS not enabled\r\n", "refresh_certs without -Z")
    ck.eq(out["cached"]["notls"], out["memcached"]["notls"], "refresh_certs without -Z = memcached")


def plaintext_on_tls(port):
    """'reset' or 'closed' or what came back."""
    s = socket.create_connection((H, port), timeout=5)
    try:
        s.sendall(b"get foo\r\n")
        data = s.recv(100)
        return "closed" if data == b"" else data
    except ConnectionResetError:
        return "reset"
    finally:
        s.close()


def test_notls_and_plaintext():
    res = {}
    for kind, binary in BINARIES:
        p2 = harness.free_port()
        p = Proc(binary, tlsutil.server_args(PKI), listen="%s,notls:%s:%d" % (H, H, p2))
        try:
            with harness.Conn(H, p2) as c:
                plain = c.cmd("get foo")
            res[kind] = (plain, plaintext_on_tls(p.port))
        finally:
            p.stop()
    ck.eq(res["cached"], (b"END\r\n", "reset"), "notls: plaintext, TLS port resets plaintext")
    ck.eq(res["cached"], res["memcached"], "notls/plaintext behaviour = memcached")


def mtls_outcome(p, cert):
    try:
        with p.tls(tlsutil.client_ctx(PKI, cert=cert)) as c:
            c.sock.settimeout(5)
            return c.cmd("version").startswith(b"VERSION")
    except (ssl.SSLError, ConnectionError, OSError):
        return False


def test_mutual_tls():
    extra = "ssl_verify_mode=2,ssl_ca_cert=%s.pem" % PKI["ca"]
    res = {}
    for kind, binary in BINARIES:
        p = Proc(binary, tlsutil.server_args(PKI, extra=extra))
        try:
            res[kind] = [(cert, mtls_outcome(p, cert))
                         for cert in ("client", None, "other", "expired", "client")]
        finally:
            p.stop()
    ck.eq(res["cached"], [("client", True), (None, False), ("other", False), ("expired", False),
                          ("client", True)], "mutual TLS outcomes")
    ck.eq(res["cached"], res["memcached"], "mutual TLS outcomes = memcached")


def resumed(p, ctx):
    with p.tls(ctx) as c:
        c.cmd("version")  # the TLS 1.3 ticket arrives after the handshake
        sess = c.sock.session
    with p.tls(ctx, session=sess) as c:
        c.cmd("version")
        return c.sock.session_reused


def test_resumption():
    p = Proc(harness.CACHED, tlsutil.server_args(PKI))
    try:
        ck.check(resumed(p, tlsutil.client_ctx(PKI)), "TLS 1.3 resumes by ticket")
        ctx12 = tlsutil.client_ctx(PKI, max_version=ssl.TLSVersion.TLSv1_2)
        ck.check(resumed(p, ctx12), "TLS 1.2 resumes by ticket")
        ctx12.options |= ssl.OP_NO_TICKET
        ck.check(resumed(p, ctx12), "TLS 1.2 without tickets resumes from the session cache")
        with p.tls() as c:
            st = c.stats("cached")  # cached's own counters
        ck.check(int(st["ssl_resumed_handshakes"]) >= 3, "resumptions counted: %s" %
                 st.get("ssl_resumed_handshakes"))
    finally:
        p.stop()


def client_hello():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def send_and_close(port, data):
    s = socket.create_connection((H, port), timeout=5)
    try:
        s.sendall(data)
        s.settimeout(3)
        s.recv(100)  # the server closes (EOF or reset) or sends an alert and closes
    except (ConnectionResetError, socket.timeout):
        pass
    finally:
        s.close()


def test_bad_input_logged():
    p2 = harness.free_port()
    p = Proc(harness.CACHED, tlsutil.server_args(PKI), listen="%s,notls:%s:%d" % (H, H, p2),
             verbose=True)
    hello = client_hello()
    try:
        with p.tls() as good:
            good.cmd(b"set g 0 0 1\r\ng")
            send_and_close(p.port, b"get foo\r\n")                       # plaintext on TLS
            send_and_close(p2, hello)                                     # TLS on plaintext
            send_and_close(p.port, b"\x16\x03\x01\x00\x20" + b"\x00" * 32)  # garbage hello
            s = socket.create_connection((H, p.port))                     # truncated hello
            s.sendall(hello[:len(hello) // 2])
            s.close()
            r = subprocess.run(["openssl", "s_client", "-tls1_2", "-connect", "%s:%d" % (H, p.port)],
                               input=b"R\n", capture_output=True, timeout=10)  # renegotiation
            ck.check(b"RENEGOTIATING" in r.stdout + r.stderr, "s_client tried to renegotiate")
            ck.eq(good.get("g"), (0, b"g"), "a good connection is unaffected")
            time.sleep(0.5)
            with p.tls() as c:
                st = c.stats()
            ck.check(int(st["ssl_handshake_errors"]) >= 3, "handshake errors counted")
    finally:
        p.stop()
    lines = [ln for ln in p.err.splitlines() if " info: " in ln and
             ("TLS" in ln and ("failed" in ln or "closing" in ln or "error" in ln))]
    # wait_port's probe (connect, close) is a failed handshake too.
    for what, n in (("on plaintext", 1), ("renegotiation attempt", 1)):
        ck.eq(sum(what in ln for ln in lines), n, "log lines for %s" % what)
    ck.eq(sum("handshake with" in ln for ln in lines), 4,
          "one log line per failed handshake (probe, plaintext, garbage, truncated): %s" % lines)
    ck.check(not any("error:" in ln and "routines" in ln for ln in p.err.splitlines()
                     if " info: " not in ln), "no raw OpenSSL error dumps")


try:
    test_startup_errors()
    test_ops_same_as_memcached()
    test_stats_fields()
    test_refresh_and_sighup()
    test_notls_and_plaintext()
    test_mutual_tls()
    test_resumption()
    test_bad_input_logged()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
ck.done()
