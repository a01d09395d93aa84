"""TLS helpers for the integration tests: certificates made at test time with the openssl CLI,
client contexts, and a harness.Conn over TLS.

make_pki(dir) writes, all EC P-256 (fast to make and to handshake):
  ca.pem/ca.key            the CA clients and the server trust
  server.pem/server.key    CN=localhost, SAN localhost + 127.0.0.1, signed by ca
  server2.pem/server2.key  a second server pair (CN=localhost2), for reload tests
  client.pem/client.key    a client signed by ca
  other_ca.pem, other.pem/other.key   a client signed by another CA
  expired.pem/expired.key  a client signed by ca that expired yesterday
"""
import os
import socket
import ssl
import subprocess

import harness


def _run(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def _key(name, d):
    _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key", cwd=d)


def _signed(name, cn, ca, d, days="2", san=None):
    _key(name, d)
    _run("req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
    ext = []
    if san:
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n" % san)
        ext = ["-extfile", name + ".ext"]
    _run("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
         "-CAcreateserial", "-days", days, "-out", name + ".pem", *ext, cwd=d)


def make_pki(d):
    for ca, cn in (("ca", "cached test CA"), ("other_ca", "other CA")):
        _key(ca, d)
        _run("req", "-x509", "-new", "-key", ca + ".key", "-out", ca + ".pem", "-days", "2",
             "-subj", "/CN=" + cn, cwd=d)
    _signed("server", "localhost", "ca", d, san="DNS:localhost,IP:127.0.0.1")
    _signed("server2", "localhost2", "ca", d, san="DNS:localhost,IP:127.0.0.1")
    _signed("client", "client", "ca", d)
    _signed("other", "intruder", "other_ca", d)
    _signed("expired", "old client", "ca", d, days="-1")
    return {n: os.path.join(d, n) for n in ("ca", "server", "server2", "client", "other",
                                            "expired", "other_ca")}


def client_ctx(pki, cert=None, max_version=None):
    ctx = ssl.create_default_context(cafile=pki["ca"] + ".pem")
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(pki[cert] + ".pem", pki[cert] + ".key")
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def server_args(pki, pair="server", extra=""):
    o = "ssl_chain_cert=%s.pem,ssl_key=%s.key" % (pki[pair], pki[pair])
    if extra:
        o += "," + extra
    return ["-Z", "-o", o]


class TLSConn(harness.Conn):
    """harness.Conn over TLS (the handshake happens in the constructor)."""

    def __init__(self, host, port, ctx, timeout=10.0, session=None):
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        self.buf = b""

    def is_closed(self, wait=1.0):
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except (socket.timeout, BlockingIOError, ssl.SSLWantReadError):
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True
        finally:
            self.sock.settimeout(10.0)


def peer_cn(conn):
    cert = conn.sock.getpeercert()
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None
