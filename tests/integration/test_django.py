"""Django 3.2's memcached cache backends against cached, compared with Debian's memcached.

Starts one cached ($CACHED) and one memcached, configures Django in-process with an alias per
(server, backend) pair, runs the whole cache API through PyMemcacheCache and PyLibMCCache on
both servers (apichecks.run_api records each operation's outcome), and requires the record
lists to be identical. Then the higher layers on both servers: cache_page, the {% cache %}
template fragment cache and the cached session backend.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "django_app"))

import harness  # noqa: E402

ck = harness.Checker("test_django")
MANY = 50 if harness.ASAN else 300


def cache_conf(backend, port, **extra):
    conf = {"BACKEND": backend, "LOCATION": "127.0.0.1:%d" % port}
    conf.update(extra)
    return conf


def configure(cached_port, mc_port):
    import django
    from django.conf import settings
    pym = "django.core.cache.backends.memcached.PyMemcacheCache"
    plm = "django.core.cache.backends.memcached.PyLibMCCache"
    caches = {"default": cache_conf(pym, cached_port)}
    for name, port in (("cached", cached_port), ("memcached", mc_port)):
        caches["pym-" + name] = cache_conf(pym, port)
        caches["pym-pfx-" + name] = cache_conf(pym, port, KEY_PREFIX="pfx", VERSION=3)
        caches["plm-" + name] = cache_conf(plm, port)
        caches["plm-pfx-" + name] = cache_conf(plm, port, KEY_PREFIX="pfx", VERSION=3)
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-django-cached-not-secret",
        ALLOWED_HOSTS=["testserver", "localhost"],
        INSTALLED_APPS=["django.contrib.sessions"],
        CACHES=caches,
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        SESSION_CACHE_ALIAS="default",
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [],
                    "APP_DIRS": False, "OPTIONS": {}}],
        USE_TZ=False,
    )
    django.setup()


def raw_flags(port, ck_, tag):
    """pymemcache's serde encodes the Python type in the item flags: check the server kept them."""
    recs = []
    with harness.Conn("127.0.0.1", port) as c:
        for name, flags in (("bytes", 0), ("str", 16), ("int", 2), ("dict", 1), ("custom", 1)):
            got = c.get(":1:pym-v-" + name)
            recs.append(("flags " + name, got and got[0]))
            ck_.eq(got and got[0], flags, "%s raw flags of %s" % (tag, name))
        got = c.get(":1:pym-v-int")
        recs.append(("raw int", got and got[1]))
        ck_.eq(got and got[1], b"42", "%s raw int stored as text" % tag)
        got = c.get("pfx:3:pym-pk")
        recs.append(("raw prefixed key after delete", got))
    return recs


def higher_layers(alias, tag):
    """cache_page, fragment cache, cached sessions through `alias`; returns records."""
    from django.http import HttpResponse
    from django.test import RequestFactory, override_settings
    from django.views.decorators.cache import cache_page
    from django.template import engines
    from django.core.cache import caches
    from django.core.cache.utils import make_template_fragment_key
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.contrib.sessions.backends.cache import SessionStore
    import apichecks

    R = apichecks.Recorder(ck, tag)
    rf = RequestFactory()
    calls = {"n": 0}

    def view(request):
        calls["n"] += 1
        return HttpResponse("page %d %s" % (calls["n"], request.GET.get("q", "")))

    cached_view = cache_page(60, cache=alias, key_prefix="kp-" + alias)(view)
    R.expect("cache_page first", lambda: cached_view(rf.get("/p")).content, b"page 1 ")
    R.expect("cache_page second is cached", lambda: cached_view(rf.get("/p")).content, b"page 1 ")
    R.expect("cache_page view ran once", lambda: calls["n"], 1)
    R.expect("cache_page other query", lambda: cached_view(rf.get("/p?q=x")).content, b"page 2 x")
    R.expect("cache_page other query cached", lambda: cached_view(rf.get("/p?q=x")).content,
             b"page 2 x")
    R.expect("cache_page header", lambda: "max-age=60" in cached_view(rf.get("/p"))["Cache-Control"],
             True)
    R.expect("cache_page POST not cached", lambda: cached_view(rf.post("/p")).content, b"page 3 ")
    R.expect("cache_page after clear", lambda: (caches[alias].clear(),
                                                cached_view(rf.get("/p")).content)[1], b"page 4 ")

    tpl = engines["django"].from_string(
        '{%% load cache %%}[{%% cache 60 frag who using="%s" %%}{{ n }}{%% endcache %%}]' % alias)
    R.expect("fragment first", lambda: tpl.render({"n": 1, "who": "a"}), "[1]")
    R.expect("fragment cached", lambda: tpl.render({"n": 2, "who": "a"}), "[1]")
    R.expect("fragment vary_on", lambda: tpl.render({"n": 3, "who": "b"}), "[3]")
    R.expect("fragment key present",
             lambda: caches[alias].get(make_template_fragment_key("frag", ["a"])), "1")
    R.expect("fragment delete",
             lambda: caches[alias].delete(make_template_fragment_key("frag", ["a"])), True)
    R.expect("fragment re-rendered", lambda: tpl.render({"n": 4, "who": "a"}), "[4]")

    with override_settings(SESSION_CACHE_ALIAS=alias):
        s = SessionStore()
        s["user"] = "ren\u00e9"
        s["cart"] = [1, 2, 3]
        R.expect("session save", lambda: s.save(), None)
        R.expect("session key length", lambda: len(s.session_key), 32)
        R.expect("session exists", lambda: s.exists(s.session_key), True)
        s2 = SessionStore(session_key=s.session_key)
        R.expect("session load", lambda: (s2["user"], s2["cart"]), ("ren\u00e9", [1, 2, 3]))
        R.expect("session in cache",
                 lambda: caches[alias].get("django.contrib.sessions.cache" + s.session_key),
                 {"user": "ren\u00e9", "cart": [1, 2, 3]})
        R.expect("session create new key not taken", lambda: (s2.cycle_key(),
                                                             s2.session_key != s.session_key)[1], True)
        R.expect("session old key gone after cycle", lambda: s.exists(s.session_key), False)
        R.expect("session delete", lambda: s2.delete(), None)
        R.expect("session gone", lambda: s2.exists(s2.session_key), False)
        R.expect("session unknown key loads empty",
                 lambda: dict(SessionStore(session_key="x" * 32).load()), {})

        # Through the middleware: a view writes the session, the cookie brings it back.
        def sview(request):
            request.session["visits"] = request.session.get("visits", 0) + 1
            return HttpResponse(str(request.session["visits"]))
        mw = SessionMiddleware(sview)
        r1 = mw(rf.get("/s"))
        cookie = r1.cookies.get("sessionid")
        R.expect("session middleware cookie set", lambda: cookie is not None, True)
        if cookie is not None:
            req = rf.get("/s")
            req.COOKIES["sessionid"] = cookie.value
            R.expect("session middleware second visit", lambda: mw(req).content, b"2")
            req = rf.get("/s")
            req.COOKIES["sessionid"] = cookie.value
            R.expect("session middleware third visit", lambda: mw(req).content, b"3")
    return R.records


def main():
    with harness.Server() as cached, harness.Server(harness.MEMCACHED, kind="memcached") as mc:
        configure(cached.port, mc.port)
        from django.core.cache import caches
        import apichecks

        results = {}
        for name in ("cached", "memcached"):
            port = cached.port if name == "cached" else mc.port
            results["pym", name] = apichecks.run_api(
                caches["pym-" + name], ck, "pymemcache/%s" % name, ns="pym",
                prefixed=caches["pym-pfx-" + name], many=MANY,
                before_clear=lambda: raw_flags(port, ck, "pymemcache/%s" % name))
            results["plm", name] = apichecks.run_api(
                caches["plm-" + name], ck, "pylibmc/%s" % name, ns="plm",
                prefixed=caches["plm-pfx-" + name], pylibmc=True, many=MANY)
            results["hl", name] = higher_layers("pym-" + name, "layers/%s" % name)
            results["hl-plm", name] = higher_layers("plm-" + name, "layers-pylibmc/%s" % name)

        for what in ("pym", "plm", "hl", "hl-plm"):
            apichecks.compare(ck, "memcached", results[what, "memcached"],
                              "cached", results[what, "cached"], "same-as-memcached[%s]" % what)
        if os.environ.get("SHOW_RECORDS"):
            for rec in results["pym", "memcached"] + results["plm", "memcached"]:
                print(rec)
        ck.check(cached.proc.poll() is None, "cached still running at the end")
    ck.done()


if __name__ == "__main__":
    main()
