"""TLS connections as `stats conns` shows them, pipelined replies in few records, and the
close of established connections (close_notify sent by the handshake thread).

1. `stats conns` lists connections still in their handshake, as memcached 1.6.18 does (the
   oracle), with memcached's state for them: conn_new_cmd.
2. 100 pipelined sets, then 100 pipelined gets, each in one client write: every reply comes
   without the client sending more, in one TLS record each (the -R budget of 20 requests
   does not cut the batch into five records).
3. A `quit` over TLS ends with a close_notify before the EOF; after 40 reconnect-per-request
   clients the server is back to the connections it had.
"""
import os
import socket
import ssl
import struct
import sys
import tempfile
import time
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))

import harness  # noqa: E402
import tlsutil  # noqa: E402

ck = harness.Checker("test_tls_conns")
TMP = tempfile.mkdtemp(prefix="cached-tlsconns-")
PKI = tlsutil.make_pki(TMP)


class RecordClient:
    """A TLS client over a MemoryBIO that counts the records the server sends."""

    def __init__(self, port):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out)
        self.pend = b""
        for _ in range(100):
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during the handshake")
                self.inc.write(data)
        self._flush()

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _feed(self, data):
        """Whole records into the TLS object; returns how many."""
        self.pend += data
        n = 0
        while len(self.pend) >= 5:
            ln = struct.unpack(">H", self.pend[3:5])[0]
            if len(self.pend) < 5 + ln:
                break
            self.inc.write(self.pend[:5 + ln])
            self.pend = self.pend[5 + ln:]
            n += 1
        return n

    def roundtrip(self, req, marker, count):
        """Sends req in one write; reads until marker was seen count times. Returns
        (records, plaintext)."""
        self.obj.write(req)
        self._flush()
        records, text = 0, b""
        while text.count(marker) < count:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the server")
            records += self._feed(data)
            try:
                while True:
                    text += self.obj.read(65536)
            except ssl.SSLWantReadError:
                pass
        return records, text

    def close_notify_then_eof(self):
        """Reads to EOF; True if a close_notify came first."""
        got = False
        self.sock.settimeout(10)
        while True:
            data = self.sock.recv(65536)
            if not data:
                return got
            self._feed(data)
            try:
                # b"" (or SSLZeroReturnError): a close_notify; without one, a MemoryBIO that
                # holds no more records asks for more (SSLWantReadError).
                while self.obj.read(65536):
                    pass
                got = True
            except ssl.SSLZeroReturnError:
                got = True
            except ssl.SSLWantReadError:
                pass


def handshaking_states(srv):
    """Opens two connections that stall mid-handshake (one silent, one half a ClientHello)
    and returns the states `stats conns` shows for them."""
    silent = socket.create_connection(("127.0.0.1", srv.port))
    half = socket.create_connection(("127.0.0.1", srv.port))
    half.sendall(b"\x16\x03\x01\x00\x50\x01")
    ports = {silent.getsockname()[1], half.getsockname()[1]}
    states = {}
    with tlsutil.TLSConn("127.0.0.1", srv.port, tlsutil.client_ctx(PKI)) as c:
        deadline = time.time() + 10
        while time.time() < deadline:
            conns = c.stats("conns")
            states = {}
            for k, v in conns.items():
                fd, field = k.split(":", 1)
                if field == "addr" and int(v.rsplit(":", 1)[1]) in ports:
                    states[v] = conns.get(fd + ":state")
            if len(states) == 2:
                break
            time.sleep(0.05)
    silent.close()
    half.close()
    return sorted(states.values())


def main():
    args = tlsutil.server_args(PKI) + ["-t", "2"]
    with harness.Server(harness.MEMCACHED, kind="memcached", args=args) as mc:
        want = handshaking_states(mc)
    # memcached: conn_new_cmd until its worker reads handshake bytes, conn_read after (the
    # half hello shows either, depending on whether its listener's SSL_accept saw it).
    ck.check(want in (["conn_new_cmd", "conn_new_cmd"], ["conn_new_cmd", "conn_read"]),
             "memcached: mid-handshake connections: %s" % want)
    want = ["conn_new_cmd", "conn_read"]
    with harness.Server(args=args) as srv:
        ck.eq(handshaking_states(srv), want, "stats conns lists mid-handshake connections")

        rc = RecordClient(srv.port)
        rc.roundtrip(b"version\r\n", b"\r\n", 1)  # the session ticket arrives before this
        n = 100
        sets = b"".join(b"set tk%d 0 0 100\r\n%s\r\n" % (i, b"v" * 100) for i in range(n))
        records, text = rc.roundtrip(sets, b"STORED\r\n", n)
        ck.eq(text, b"STORED\r\n" * n, "100 pipelined sets: every reply, unprompted")
        ck.eq(records, 1, "100 pipelined sets: replies in one record")
        gets = b"".join(b"get tk%d\r\n" % i for i in range(n))
        records, text = rc.roundtrip(gets, b"END\r\n", n)
        ck.eq(text.count(b"VALUE "), n, "100 pipelined gets: every value, unprompted")
        ck.eq(records, 1, "100 pipelined gets (12 KB): replies in one record")
        records, text = rc.roundtrip(b"quit\r\n", b"never", 0)
        ck.check(rc.close_notify_then_eof(), "quit: close_notify, then EOF")
        rc.sock.close()

        ctx = tlsutil.client_ctx(PKI)
        for i in range(40):
            with tlsutil.TLSConn("127.0.0.1", srv.port, ctx) as c:
                ck.check(c.get("tk%d" % i) == (0, b"v" * 100), "reconnecting client %d" % i) \
                    if i % 10 == 0 else c.get("tk%d" % i)
        with tlsutil.TLSConn("127.0.0.1", srv.port, ctx) as c:
            deadline = time.time() + 10
            cur = None
            while time.time() < deadline:
                cur = int(c.stats()["curr_connections"])
                if cur <= 2:  # the listener's own count and this one
                    break
                time.sleep(0.05)
            ck.check(cur is not None and cur <= 2, "connections closed: curr_connections %s" % cur)
            ck.eq(c.get("tk0"), (0, b"v" * 100), "still served")


try:
    main()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
ck.done()
