"""pymemcache over TLS end to end, directly (tls_context=) and as Django's PyMemcacheCache with
OPTIONS {"tls_context": ...}, against cached -Z and memcached -Z: the whole Django cache API
(apichecks.run_api) must give the same outcomes on both. Then mutual TLS through Django (a
client certificate in the context) against cached with ssl_verify_mode=2, and a context
without a certificate refused.
"""
import os
import shutil
import ssl
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "django_app"))

import harness  # noqa: E402
import tlsutil  # noqa: E402

ck = harness.Checker("test_tls_clients")
MANY = 50 if harness.ASAN else 200
TMP = tempfile.mkdtemp(prefix="cached-tlsc-")
PKI = tlsutil.make_pki(TMP)
PYM = "django.core.cache.backends.memcached.PyMemcacheCache"


def direct(port, tag):
    from pymemcache.client.base import Client
    rec = []
    c = Client(("127.0.0.1", port), tls_context=tlsutil.client_ctx(PKI), timeout=5,
               connect_timeout=5)
    rec.append(c.set("a", b"1", noreply=False))
    rec.append(c.get("a"))
    rec.append(c.set_many({"k%d" % i: b"v" * i for i in range(1, 60)}, noreply=False))
    rec.append(sorted(c.get_many(["k%d" % i for i in range(1, 60)]).items()))
    rec.append(c.set("big", b"x" * 500000, noreply=False))
    rec.append(len(c.get("big") or b""))
    rec.append(c.incr("n", 1))
    rec.append(c.add("n", b"5", noreply=False))
    rec.append(c.incr("n", 3))
    rec.append(c.delete("a", noreply=False))
    rec.append(c.get("a"))
    v, cas = c.gets("k5")
    rec.append((v, c.cas("k5", b"new", cas, noreply=False), c.cas("k5", b"x", cas,
                                                                    noreply=False)))
    rec.append(c.version() is not None)
    c.close()
    return [(tag, i, r) for i, r in enumerate(rec)]


def main():
    mtls = "ssl_verify_mode=2,ssl_ca_cert=%s.pem" % PKI["ca"]
    with harness.Server(args=tlsutil.server_args(PKI)) as cached, \
            harness.Server(harness.MEMCACHED, kind="memcached",
                           args=tlsutil.server_args(PKI)) as mc, \
            harness.Server(args=tlsutil.server_args(PKI, extra=mtls)) as cached_mtls:
        import django
        from django.conf import settings
        ctx = tlsutil.client_ctx(PKI)
        caches = {"default": {"BACKEND": PYM, "LOCATION": "127.0.0.1:%d" % cached.port,
                              "OPTIONS": {"tls_context": ctx}}}
        for name, srv in (("cached", cached), ("memcached", mc)):
            caches["pym-" + name] = {"BACKEND": PYM, "LOCATION": "127.0.0.1:%d" % srv.port,
                                     "OPTIONS": {"tls_context": ctx}}
            caches["pym-pfx-" + name] = dict(caches["pym-" + name], KEY_PREFIX="pfx",
                                              VERSION=3)
        # Mutual TLS: the client's certificate goes in the context.
        caches["mtls"] = {"BACKEND": PYM, "LOCATION": "127.0.0.1:%d" % cached_mtls.port,
                          "OPTIONS": {"tls_context": tlsutil.client_ctx(PKI, cert="client")}}
        caches["mtls-nocert"] = {"BACKEND": PYM,
                                 "LOCATION": "127.0.0.1:%d" % cached_mtls.port,
                                 "OPTIONS": {"tls_context": tlsutil.client_ctx(PKI)}}
        settings.configure(DEBUG=False, SECRET_KEY="test-not-secret", CACHES=caches,
                           INSTALLED_APPS=[], USE_TZ=False)
        django.setup()
        from django.core.cache import caches as dj
        import apichecks

        d = {name: direct(srv.port, "direct") for name, srv in (("cached", cached),
                                                                   ("memcached", mc))}
        ck.eq(d["cached"], d["memcached"], "pymemcache tls_context: same results")
        res = {}
        for name in ("cached", "memcached"):
            res[name] = apichecks.run_api(dj["pym-" + name], ck, "django-tls/%s" % name,
                                          ns="tls", prefixed=dj["pym-pfx-" + name], many=MANY)
        apichecks.compare(ck, "memcached", res["memcached"], "cached", res["cached"],
                          "django over TLS")
        m = dj["mtls"]
        m.set("who", "client-cert")
        ck.eq(m.get("who"), "client-cert", "Django with a client certificate (mutual TLS)")
        try:
            dj["mtls-nocert"].get("who")
            refused = False
        except (ssl.SSLError, ConnectionError, OSError):
            refused = True
        ck.check(refused, "Django without a client certificate is refused")
        ck.eq(m.get("who"), "client-cert", "the server keeps serving after a refusal")
        for srv in (cached, cached_mtls):
            ck.check(srv.proc.poll() is None, "cached still running")
    ck.done()


try:
    main()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
