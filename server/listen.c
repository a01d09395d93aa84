/*
 * listen: bind, listen and accept. Runs in the listener (main) thread only.
 *
 * memcached counts every fd toward -c (its "reserved_fds"); cached's -c is the number of
 * client connections, which is what operators mean. Past it, a new connection gets
 * "ERROR Too many open connections\r\n" and is closed, as memcached does.
 * When accept() itself fails for lack of fds (EMFILE/ENFILE), accepting is paused for 10 ms
 * instead of spinning on a listener that stays readable (memcached's listen_disabled_num).
 */
#define _GNU_SOURCE /* accept4, IOV_MAX */
#include "server/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <fcntl.h>
#include <unistd.h>

#include "config/config.h"
#include "server/log.h"
#include "server/server.h"
#include "server/worker.h"
#include "storage/mem.h"

#define REJECT_MSG "ERROR Too many open connections\r\n"
#define ACCEPT_BATCH 64 /* accepts per readiness event, so one listener cannot starve others */

struct listener *listeners;
size_t nlisteners;
static size_t listeners_cap;
static char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static struct timeval disabled_since;

/* Sockets inherited from systemd (LISTEN_FDS, socket activation). Each must match one
 * configured address (-l/-p, or -s); it is then served instead of binding that address. */
struct inherited {
    int fd;
    bool used;
    struct sockaddr_storage addr;
    socklen_t len;
    char name[LISTEN_NAME_MAX];
};
static struct inherited *inh;
static size_t ninh;

static struct listener *listener_add(int fd, bool is_unix, const char *name)
{
    if (nlisteners == listeners_cap) {
        listeners_cap = listeners_cap ? listeners_cap * 2 : 4;
        listeners = mem_realloc(listeners, listeners_cap * sizeof *listeners);
    }
    struct listener *l = &listeners[nlisteners++];
    memset(l, 0, sizeof *l);
    l->fd = fd;
    l->is_unix = is_unix;
    snprintf(l->name, sizeof l->name, "%s", name);
    return l;
}

static void addr_name(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    char port[8] = "?";
    getnameinfo(sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in),
                host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV);
    if (sa->sa_family == AF_INET6)
        snprintf(buf, len, "tcp6:[%s]:%s", host, port);
    else
        snprintf(buf, len, "tcp:%s:%s", host, port);
}

/* Splits "host", "host:port", "[v6]", "[v6]:port", "v6" into host and port strings. */
static int split_host_port(const char *spec, char *host, size_t hlen, char *port, size_t plen,
                           unsigned default_port)
{
    snprintf(port, plen, "%u", default_port);
    const char *colon = strchr(spec, ':');
    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (end == NULL || (size_t)(end - spec - 1) >= hlen)
            return -1;
        memcpy(host, spec + 1, (size_t)(end - spec - 1));
        host[end - spec - 1] = '\0';
        if (end[1] == ':')
            snprintf(port, plen, "%s", end + 2);
        else if (end[1] != '\0')
            return -1;
        return 0;
    }
    if (colon != NULL && strchr(colon + 1, ':') == NULL) { /* exactly one colon: v4:port */
        if ((size_t)(colon - spec) >= hlen)
            return -1;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        snprintf(port, plen, "%s", colon + 1);
        return 0;
    }
    if (strlen(spec) >= hlen)
        return -1;
    snprintf(host, hlen, "%s", spec);
    return 0;
}

static bool same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    if (a->sa_family == AF_UNIX) {
        const struct sockaddr_un *x = (const void *)a, *y = (const void *)b;
        return strncmp(x->sun_path, y->sun_path, sizeof x->sun_path) == 0;
    }
    return false;
}

/* Serves the inherited socket bound to sa, if any: true when one was taken. */
static bool adopt(const struct sockaddr *sa, bool is_unix, bool tls)
{
    for (size_t i = 0; i < ninh; i++) {
        struct inherited *h = &inh[i];
        if (h->used || !same_addr((const struct sockaddr *)&h->addr, sa))
            continue;
        h->used = true;
        /* the accept loop needs a non-blocking listener; systemd may hand a blocking one */
        int fl = fcntl(h->fd, F_GETFL);
        if (fl >= 0)
            fcntl(h->fd, F_SETFL, fl | O_NONBLOCK);
        fcntl(h->fd, F_SETFD, FD_CLOEXEC);
        listener_add(h->fd, is_unix, h->name)->tls = tls;
        log_info("listening on %s%s (inherited from systemd, fd %d)", h->name,
                 tls ? " (TLS)" : "", h->fd);
        return true;
    }
    return false;
}

/* A dual-stack [::]:port socket from systemd also takes IPv4: binding 0.0.0.0:port too
 * would fail with EADDRINUSE, so the v4 wildcard counts as served. */
static bool v4_any_covered(const struct sockaddr *sa)
{
    if (sa->sa_family != AF_INET || ((const struct sockaddr_in *)sa)->sin_addr.s_addr != 0)
        return false;
    for (size_t i = 0; i < ninh; i++) {
        const struct sockaddr_in6 *h = (const void *)&inh[i].addr;
        int v6only = 1;
        socklen_t ol = sizeof v6only;
        if (inh[i].used && h->sin6_family == AF_INET6 &&
            IN6_IS_ADDR_UNSPECIFIED(&h->sin6_addr) &&
            h->sin6_port == ((const struct sockaddr_in *)sa)->sin_port &&
            getsockopt(inh[i].fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &ol) == 0 && !v6only)
            return true;
    }
    return false;
}

/* Collects LISTEN_FDS (unsetting the variables, so nothing we start inherits them). */
static int inherit_setup(void)
{
    int n = sd_listen_fds(1);
    if (n < 0) {
        log_error("socket activation: LISTEN_FDS: %s", strerror(-n));
        return -1;
    }
    if (n == 0)
        return 0;
    inh = mem_calloc((size_t)n, sizeof *inh);
    ninh = (size_t)n;
    for (int i = 0; i < n; i++) {
        struct inherited *h = &inh[i];
        h->fd = SD_LISTEN_FDS_START + i;
        h->len = sizeof h->addr;
        if (sd_is_socket(h->fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0 ||
            getsockname(h->fd, (struct sockaddr *)&h->addr, &h->len) < 0) {
            log_error("socket activation: inherited fd %d is not a listening stream socket",
                      h->fd);
            return -1;
        }
        if (h->addr.ss_family == AF_UNIX)
            snprintf(h->name, sizeof h->name, "unix:%s",
                     ((struct sockaddr_un *)&h->addr)->sun_path);
        else
            addr_name((struct sockaddr *)&h->addr, h->name, sizeof h->name);
    }
    return 0;
}

/* Every inherited socket must have matched a setting: one that matches none would be a
 * port systemd holds open that nobody serves. */
static int inherit_check(void)
{
    for (size_t i = 0; i < ninh; i++) {
        if (inh[i].used)
            continue;
        log_error("socket activation: inherited socket %s (fd %d) matches no -l/-p/-s "
                  "setting; make the socket unit and cached's settings agree",
                  inh[i].name, inh[i].fd);
        return -1;
    }
    return 0;
}

/* The options every TCP listening socket of ours gets. */
static void sockopts(int fd, int family, const struct cfg *c)
{
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6) /* a v6 listener must not steal the v4 port */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    /* Accepted sockets inherit both on Linux, which spares a setsockopt per connection
     * (the connect-per-request pattern pays it on every request). */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->tcp_keepalive)
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

/*
 * l->fd is bound (without SO_REUSEPORT: a port someone holds was refused by that bind, as
 * memcached refuses it). Makes it listen together with one sibling per further worker: the
 * first socket is marked SO_REUSEPORT only now, so the siblings can join it, and each worker
 * then accepts on its own (listener.wfds). With one worker there is no sibling and no
 * SO_REUSEPORT. Returns 0, or -1 with the error logged (the caller's teardown closes what
 * is open: l->wfds holds every fd from the start).
 */
static int bind_siblings(struct listener *l, const struct cfg *c)
{
    unsigned n = c->threads > 0 ? (unsigned)c->threads : 1;
    l->wfds = mem_calloc(n, sizeof *l->wfds);
    l->nwfds = n;
    l->wfds[0] = l->fd;
    for (unsigned i = 1; i < n; i++)
        l->wfds[i] = -1;
    int one = 1;
    if (n > 1 && setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        log_error("failed to listen on %s: SO_REUSEPORT: %s", l->name, strerror(errno));
        return -1;
    }
    if (listen(l->fd, (int)c->backlog) < 0) {
        log_error("failed to listen on %s: %s", l->name, strerror(errno));
        return -1;
    }
    if (n == 1)
        return 0;
    struct sockaddr_storage ss = {0};
    socklen_t sl = sizeof ss;
    if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) < 0) {
        log_error("failed to listen on %s: getsockname: %s", l->name, strerror(errno));
        return -1;
    }
    for (unsigned i = 1; i < n; i++) {
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            log_error("failed to listen on %s: socket: %s", l->name, strerror(errno));
            return -1;
        }
        l->wfds[i] = fd;
        sockopts(fd, ss.ss_family, c);
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
            bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, (int)c->backlog) < 0) {
            log_error("failed to listen on %s (socket %u of %u): %s", l->name, i + 1, n,
                      strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int bind_tcp(const char *spec, const struct cfg *c)
{
    char host[256], port[16], name[LISTEN_NAME_MAX];
    bool tls = c->ssl_enabled;
    if (strncmp(spec, "notls:", 6) == 0) { /* memcached's prefix: this one stays plaintext */
        spec += 6;
        tls = false;
    }
    if (split_host_port(spec, host, sizeof host, port, sizeof port, c->port_ephemeral ? 0u : (unsigned)c->port) < 0) {
        log_error("failed to listen on %s: not an address", spec);
        return -1;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    bool any = host[0] == '\0' || strcmp(host, "*") == 0;
    int rc = getaddrinfo(any ? NULL : host, port, &hints, &res);
    if (rc != 0) {
        log_error("failed to listen on %s port %s: %s", spec, port, gai_strerror(rc));
        return -1;
    }
    int result = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (adopt(ai->ai_addr, false, tls) || v4_any_covered(ai->ai_addr))
            continue;
        addr_name(ai->ai_addr, name, sizeof name);
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            log_error("failed to listen on %s: socket: %s", name, strerror(errno));
            result = -1;
            break;
        }
        sockopts(fd, ai->ai_family, c);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            log_error("failed to listen on %s: %s", name, strerror(errno));
            close(fd);
            result = -1;
            break;
        }
        if (strcmp(port, "0") == 0) { /* ephemeral: name the port we got */
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
                addr_name((struct sockaddr *)&ss, name, sizeof name);
        }
        struct listener *l = listener_add(fd, false, name);
        l->tls = tls;
        if (bind_siblings(l, c) < 0) {
            result = -1;
            break;
        }
        log_info("listening on %s%s", name, tls ? " (TLS)" : "");
    }
    freeaddrinfo(res);
    return result;
}

/* A socket file left by a crashed run is removed; one a live server answers on is not. */
static int unlink_stale(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        errno = EEXIST;
        return -1;
    }
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        int live = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
        close(fd);
        if (live) {
            errno = EADDRINUSE;
            return -1;
        }
    }
    return unlink(path);
}

static int bind_unix(const struct cfg *c)
{
    const char *path = c->unix_socket;
    char name[LISTEN_NAME_MAX];
    snprintf(name, sizeof name, "unix:%s", path);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sun.sun_path) {
        log_error("failed to listen on %s: path too long", name);
        return -1;
    }
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    if (adopt((struct sockaddr *)&sun, true, false))
        return 0; /* the socket unit owns the file, its mode and its removal */
    if (unlink_stale(path) < 0) {
        log_error("failed to listen on %s: %s", name, strerror(errno));
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("failed to listen on %s: socket: %s", name, strerror(errno));
        return -1;
    }
    /* The umask makes the file appear with the right mode at once (no window where it is
     * wider); the chmod makes it exact whatever the inherited umask. */
    mode_t old = umask((mode_t)(~c->unix_mask & 0777));
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    umask(old);
    if (rc < 0 || chmod(path, (mode_t)c->unix_mask) < 0 || listen(fd, (int)c->backlog) < 0) {
        log_error("failed to listen on %s: %s", name, strerror(errno));
        close(fd);
        return -1;
    }
    snprintf(unix_path, sizeof unix_path, "%s", path);
    listener_add(fd, true, name);
    log_info("listening on %s (mode %03o)", name, (unsigned)c->unix_mask);
    return 0;
}

/* memcached's MEMCACHED_PORT_FILENAME: "TCP INET: <port>" / "TCP INET6: <port>" per TCP
 * listener, written to <name>.lck and renamed into place once every socket is bound (test
 * harnesses use it to find an ephemeral -p -1 port). Not written with -s, as memcached. */
static void write_ports_file(void)
{
    const char *name = getenv("MEMCACHED_PORT_FILENAME");
    if (name == NULL || *name == '\0')
        return;
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.lck", name) >= sizeof tmp)
        return;
    FILE *f = fopen(tmp, "a");
    if (f == NULL) {
        log_error("failed to open \"%s\": %s", tmp, strerror(errno));
        return;
    }
    for (size_t i = 0; i < nlisteners; i++) {
        struct sockaddr_storage ss = {0};
        socklen_t sl = sizeof ss;
        if (listeners[i].is_unix || getsockname(listeners[i].fd, (struct sockaddr *)&ss, &sl) < 0)
            continue;
        if (ss.ss_family == AF_INET)
            fprintf(f, "TCP INET: %u\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
        else if (ss.ss_family == AF_INET6)
            fprintf(f, "TCP INET6: %u\n", ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    }
    fclose(f);
    rename(tmp, name);
}

int listen_setup(const struct cfg *c)
{
    int rc = inherit_setup();
    bool unix_only = c->unix_socket != NULL && c->unix_socket[0] != '\0';
    if (rc == 0 && unix_only) {
        rc = bind_unix(c); /* like memcached, -s disables TCP */
    } else if (rc == 0) {
        const char *pos = NULL;
        char spec[256];
        while ((c->port != 0 || c->port_ephemeral) && rc == 0 &&
               cfg_list_next(c->listen, &pos, spec, sizeof spec))
            rc = bind_tcp(spec, c);
        if (rc == 0)
            write_ports_file();
    }
    if (rc == 0)
        rc = inherit_check();
    /* -p 0 without -s: memcached runs listening on nothing (only UDP, which cached does not
     * serve); so does cached, saying so. */
    if (rc == 0 && nlisteners == 0)
        log_error("warning: nothing to listen on (-p 0 and no -s): no client can connect");
    if (rc < 0)
        listen_teardown();
    return rc;
}

/*
 * An acceptor is one thread's set of accept events: the listener thread's (shared listeners)
 * or a worker's (its own per-worker sockets). When accept() fails for lack of fds, that
 * thread pauses its events for 10 ms. listen_disabled_num counts the times accepting stopped
 * (the first acceptor to pause), time_in_listen_disabled_us the time until the last resumed;
 * pause_lock guards that bookkeeping (a leaf lock, taken on the EMFILE path only).
 */
struct accept_src {
    struct acceptor *a;
    struct event *ev;
    int fd;
    unsigned listener;
};

struct acceptor {
    struct event_base *base;
    struct worker *w;        /* NULL: the listener thread (worker_dispatch) */
    struct accept_src *src;
    size_t nsrc;
    struct event *resume_ev;
    bool paused;
};

static struct acceptor *main_acceptor;
static pthread_mutex_t pause_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned npaused;      /* acceptors paused now (pause_lock) */
static bool stopped;          /* listen_stop ran (pause_lock) */

#define ACCEPT_BATCH_WORKER 16 /* a worker also has requests to serve between accepts */

static void accept_pause(struct acceptor *a, const struct listener *l, int err);

/* Takes an accepted connection: rejects it past -c, else opens it in this worker (or hands
 * it to a worker from the listener thread). */
static void accept_take(struct acceptor *a, const struct listener *l, int fd,
                        const struct sockaddr_storage *peer)
{
    /* Several threads accept: reserve a slot first, so the limit is never overshot. */
    uint64_t limit = settings.conn_limit;
    uint64_t before = atomic_fetch_add_explicit(&server_counters.curr_connections, 1,
                                                memory_order_relaxed);
    if (before >= limit) {
        server_counter_sub(&server_counters.curr_connections, 1);
        ssize_t w = send(fd, REJECT_MSG, sizeof REJECT_MSG - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        close(fd);
        server_counter_add(&server_counters.rejected_connections, 1);
        log_debug("rejected a connection on %s: %lu connections open", l->name,
                  (unsigned long)limit);
        return;
    }
    server_counter_add(&server_counters.total_connections, 1); /* memcached: not rejected */
    /* the most open at once (stats connection_structures) */
    uint64_t hw = server_counter(&server_counters.conn_high_water);
    while (before + 1 > hw &&
           !atomic_compare_exchange_weak_explicit(&server_counters.conn_high_water, &hw,
                                                  before + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    unsigned idx = (unsigned)(l - listeners);
    if (a->w != NULL)
        worker_take(a->w, fd, idx, peer);
    else
        worker_dispatch(fd, idx, peer);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct accept_src *src = arg;
    struct acceptor *a = src->a;
    struct listener *l = &listeners[src->listener];
    (void)what;
    int batch = a->w != NULL ? ACCEPT_BATCH_WORKER : ACCEPT_BATCH;
    for (int i = 0; i < batch; i++) {
        /* The peer's address comes with the accept: no getpeername per connection. */
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                accept_pause(a, l, errno);
            } else if (errno == EINVAL) {
                event_del(src->ev); /* shut down by listen_stop: stopping */
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                log_warn("accept on %s: %s", l->name, strerror(errno));
            }
            return;
        }
        accept_take(a, l, fd, &peer);
    }
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct acceptor *a = arg;
    (void)fd, (void)what;
    for (size_t i = 0; i < a->nsrc; i++)
        event_add(a->src[i].ev, NULL);
    a->paused = false;
    pthread_mutex_lock(&pause_lock);
    if (--npaused == 0) {
        struct timeval now, d;
        gettimeofday(&now, NULL);
        timersub(&now, &disabled_since, &d);
        server_counter_add(&server_counters.time_in_listen_disabled_us,
                           (uint64_t)d.tv_sec * 1000000u + (uint64_t)d.tv_usec);
        if (!stopped)
            atomic_store(&server_counters.accepting, true);
    }
    pthread_mutex_unlock(&pause_lock);
}

/* Out of fds, every acceptor pauses and retries each 10 ms for as long as it lasts: the
 * warning is written at most once per PAUSE_WARN_EVERY s, or a stderr nobody drains (a pipe)
 * would fill up and block the worker that writes it, and a journal would get 100 lines/s. */
#define PAUSE_WARN_EVERY 10
static time_t pause_warned;      /* when the last warning was written (pause_lock) */
static uint64_t pauses_unwarned; /* pauses since then (pause_lock) */

static void accept_pause(struct acceptor *a, const struct listener *l, int err)
{
    if (a->paused)
        return;
    for (size_t i = 0; i < a->nsrc; i++)
        event_del(a->src[i].ev);
    a->paused = true;
    pthread_mutex_lock(&pause_lock);
    if (npaused++ == 0) {
        atomic_store(&server_counters.accepting, false);
        server_counter_add(&server_counters.listen_disabled_num, 1);
        gettimeofday(&disabled_since, NULL);
    }
    pauses_unwarned++;
    struct timeval now;
    gettimeofday(&now, NULL);
    bool warn = pause_warned == 0 || now.tv_sec - pause_warned >= PAUSE_WARN_EVERY;
    uint64_t n = pauses_unwarned;
    if (warn) {
        pause_warned = now.tv_sec;
        pauses_unwarned = 0;
    }
    pthread_mutex_unlock(&pause_lock);
    if (warn)
        log_warn("accept on %s: %s; pausing accepts for 10 ms (%llu pauses since the last "
                 "warning)", l->name, strerror(err), (unsigned long long)n);
    struct timeval tv = {0, 10000};
    evtimer_add(a->resume_ev, &tv);
}

static void acceptor_free(struct acceptor *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nsrc; i++)
        if (a->src[i].ev != NULL)
            event_free(a->src[i].ev);
    if (a->resume_ev != NULL)
        event_free(a->resume_ev);
    if (a->paused) { /* stopped while paused: no resume will come */
        pthread_mutex_lock(&pause_lock);
        npaused--;
        pthread_mutex_unlock(&pause_lock);
    }
    mem_free(a->src);
    mem_free(a);
}

/* An acceptor on base: for the listener thread (w NULL) the shared listeners, for worker w
 * its own socket of every plaintext per-worker listener, for handshake thread w that of every
 * TLS one (a storm of reconnects then costs the worker no accept and no wake-up). */
static struct acceptor *acceptor_new(struct event_base *base, struct worker *w)
{
    struct acceptor *a = mem_calloc(1, sizeof *a);
    a->base = base;
    a->w = w;
    a->src = mem_calloc(nlisteners > 0 ? nlisteners : 1, sizeof *a->src);
    a->resume_ev = evtimer_new(base, on_resume, a);
    if (a->resume_ev == NULL)
        goto fail;
    for (size_t i = 0; i < nlisteners; i++) {
        struct listener *l = &listeners[i];
        int fd;
        if (w == NULL && l->wfds == NULL)
            fd = l->fd;
        else if (w != NULL && l->wfds != NULL && w->id < l->nwfds && w->handshaker == l->tls)
            fd = l->wfds[w->id]; /* TLS: the handshake thread's, so a worker never accepts */
        else
            continue;
        struct accept_src *src = &a->src[a->nsrc++];
        src->a = a;
        src->fd = fd;
        src->listener = (unsigned)i;
        src->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_accept, src);
        if (src->ev == NULL || event_add(src->ev, NULL) < 0)
            goto fail;
    }
    return a;
fail:
    acceptor_free(a);
    return NULL;
}

int listen_start(struct event_base *base)
{
    main_acceptor = acceptor_new(base, NULL);
    if (main_acceptor == NULL)
        return -1;
    pthread_mutex_lock(&pause_lock);
    if (!stopped)
        atomic_store(&server_counters.accepting, true);
    pthread_mutex_unlock(&pause_lock);
    return 0;
}

struct acceptor *listen_worker_setup(struct worker *w)
{
    return acceptor_new(w->base, w);
}

void listen_worker_stop(struct acceptor *a)
{
    acceptor_free(a);
}

void listen_stop(void)
{
    pthread_mutex_lock(&pause_lock);
    stopped = true;
    atomic_store(&server_counters.accepting, false);
    pthread_mutex_unlock(&pause_lock);
    acceptor_free(main_acceptor);
    main_acceptor = NULL;
    for (size_t i = 0; i < nlisteners; i++) {
        struct listener *l = &listeners[i];
        if (l->wfds != NULL) {
            /* The workers' events name these fds: shut them down (new connections are
             * refused, the queued ones reset, as a close does) and close them only in
             * listen_teardown, after the workers are gone. */
            for (unsigned k = 0; k < l->nwfds; k++)
                if (l->wfds[k] >= 0)
                    shutdown(l->wfds[k], SHUT_RDWR);
            l->fd = -1;
            continue;
        }
        if (l->fd >= 0) {
            close(l->fd);
            l->fd = -1;
        }
    }
}

size_t listen_nfds(void)
{
    size_t n = 0;
    for (size_t i = 0; i < nlisteners; i++)
        n += listeners[i].wfds != NULL ? listeners[i].nwfds : 1;
    return n;
}

void listen_teardown(void)
{
    listen_stop();
    for (size_t i = 0; i < nlisteners; i++) {
        struct listener *l = &listeners[i];
        for (unsigned k = 0; k < l->nwfds; k++)
            if (l->wfds[k] >= 0)
                close(l->wfds[k]);
        mem_free(l->wfds);
        l->wfds = NULL;
        l->nwfds = 0;
    }
    if (unix_path[0] != '\0') {
        unlink(unix_path);
        unix_path[0] = '\0';
    }
    mem_free(listeners);
    listeners = NULL;
    nlisteners = listeners_cap = 0;
    for (size_t i = 0; i < ninh; i++)
        if (!inh[i].used)
            close(inh[i].fd); /* adopted ones were closed with the listeners */
    mem_free(inh);
    inh = NULL;
    ninh = 0;
    pthread_mutex_lock(&pause_lock);
    stopped = false; /* a later listen_setup (tests) starts afresh */
    npaused = 0;
    pthread_mutex_unlock(&pause_lock);
}
