/*
 * watch: registry and bounded buffers of `watch` connections (see server/watch.h).
 * Locking: reg_lock guards the slots' registration; each watcher's lock guards its buffer.
 * Emitters take only a watcher's lock, and only for a watcher whose class bit they saw set;
 * the bit is re-checked under the lock, and watch_remove clears it under that same lock before
 * closing the eventfd, so an emitter never touches a removed watcher's fd or buffer.
 */
#include "server/watch.h"

#include <errno.h>
#include <stddef.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>

#include "protocol/reply.h"
#include "server/conn.h"
#include "server/log.h"
#include "server/worker.h"
#include "storage/mem.h"

struct watcher {
    pthread_mutex_t lock;
    _Atomic unsigned mask; /* 0: slot free */
    char *buf;             /* WATCH_BUF_SIZE bytes, buf[0 .. len) unpulled */
    size_t len;
    uint64_t skipped;      /* lines dropped since the last pull */
    bool signalled;        /* the eventfd was written since the last pull */
    int efd;
    struct event *ev;
    struct conn *c;
};

static struct watcher watchers[WATCH_MAX];
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t watch_gid, watch_sent, watch_skipped, watch_count;
_Atomic unsigned watch_classes;

static void watch_init(void)
{
    for (size_t i = 0; i < WATCH_MAX; i++)
        pthread_mutex_init(&watchers[i].lock, NULL);
}

/* Recomputes the classes anyone watches (reg_lock held). */
static void watch_publish(void)
{
    unsigned all = 0;
    for (size_t i = 0; i < WATCH_MAX; i++)
        all |= atomic_load_explicit(&watchers[i].mask, memory_order_relaxed);
    atomic_store_explicit(&watch_classes, all, memory_order_relaxed);
    proto_watch_set_mask(all);
}

/* The watcher's worker: lines are waiting; let the connection pull and write them. */
static void watch_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct watcher *w = arg;
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof v);
    (void)n;
    conn_wake(w->c);
}

int watch_attach(struct proto_conn *pc, unsigned mask)
{
    struct conn *c = (struct conn *)((char *)pc - offsetof(struct conn, pc));
    pthread_once(&init_once, watch_init);
    pthread_mutex_lock(&reg_lock);
    struct watcher *w = NULL;
    int rc = 1;
    for (size_t i = 0; i < WATCH_MAX && !w; i++)
        if (atomic_load_explicit(&watchers[i].mask, memory_order_relaxed) == 0)
            w = &watchers[i];
    if (w == NULL)
        goto fail;
    rc = -1;
    w->buf = mem_alloc(WATCH_BUF_SIZE);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->ev = w->efd < 0 ? NULL
                       : event_new(c->w->base, w->efd, EV_READ | EV_PERSIST, watch_wake, w);
    if (w->buf == NULL || w->ev == NULL || event_add(w->ev, NULL) < 0) {
        if (w->ev)
            event_free(w->ev);
        if (w->efd >= 0)
            close(w->efd);
        mem_free(w->buf);
        w->buf = NULL;
        w = NULL;
        goto fail;
    }
    w->c = c;
    w->len = 0;
    w->skipped = 0;
    w->signalled = false;
    pthread_mutex_lock(&w->lock);
    atomic_store_explicit(&w->mask, mask, memory_order_relaxed);
    pthread_mutex_unlock(&w->lock);
    atomic_fetch_add_explicit(&watch_count, 1, memory_order_relaxed);
    watch_publish();
    /* memcached's new watcher takes a gid (its min_gid), so lines after it skip one */
    atomic_fetch_add_explicit(&watch_gid, 1, memory_order_relaxed);
    c->watcher = w;
    rc = 0;
fail:
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

void watch_remove(struct watcher *w)
{
    pthread_mutex_lock(&reg_lock);
    pthread_mutex_lock(&w->lock);
    atomic_store_explicit(&w->mask, 0, memory_order_relaxed);
    pthread_mutex_unlock(&w->lock);
    event_free(w->ev);
    close(w->efd);
    mem_free(w->buf);
    w->buf = NULL;
    w->c = NULL;
    atomic_fetch_sub_explicit(&watch_count, 1, memory_order_relaxed);
    watch_publish();
    pthread_mutex_unlock(&reg_lock);
}

bool watch_pull(struct watcher *w, struct reply *r)
{
    if (r->pending >= WATCH_BUF_SIZE)
        return false; /* the client reads slowly: lines wait in the buffer, then are skipped */
    pthread_mutex_lock(&w->lock);
    bool any = w->len > 0 || w->skipped > 0;
    if (w->len > 0)
        reply_add(r, w->buf, w->len);
    if (w->skipped > 0) {
        char s[48];
        int n = snprintf(s, sizeof s, "skipped=%llu\n", (unsigned long long)w->skipped);
        reply_add(r, s, (size_t)n);
        w->skipped = 0;
    }
    w->len = 0;
    w->signalled = false;
    pthread_mutex_unlock(&w->lock);
    return any;
}

void watch_emit(unsigned cls, const char *body, size_t len)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t gid = atomic_fetch_add_explicit(&watch_gid, 1, memory_order_relaxed) + 1;
    char head[64];
    /* memcached prints the microseconds with %d: not zero-padded */
    int hn = snprintf(head, sizeof head, "ts=%lld.%d gid=%llu ", (long long)tv.tv_sec,
                      (int)tv.tv_usec, (unsigned long long)gid);
    size_t need = (size_t)hn + len + 1;
    for (size_t i = 0; i < WATCH_MAX; i++) {
        struct watcher *w = &watchers[i];
        if (!(atomic_load_explicit(&w->mask, memory_order_relaxed) & cls))
            continue;
        pthread_mutex_lock(&w->lock);
        if (atomic_load_explicit(&w->mask, memory_order_relaxed) & cls) {
            if (WATCH_BUF_SIZE - w->len < need) {
                w->skipped++;
                atomic_fetch_add_explicit(&watch_skipped, 1, memory_order_relaxed);
            } else {
                memcpy(w->buf + w->len, head, (size_t)hn);
                memcpy(w->buf + w->len + hn, body, len);
                w->buf[w->len + need - 1] = '\n';
                w->len += need;
                atomic_fetch_add_explicit(&watch_sent, 1, memory_order_relaxed);
            }
            if (!w->signalled) {
                uint64_t one = 1;
                ssize_t n = write(w->efd, &one, sizeof one);
                (void)n;
                w->signalled = true;
            }
        }
        pthread_mutex_unlock(&w->lock);
    }
}

void watch_stats(struct proto_server_stats *o)
{
    o->log_watchers = atomic_load_explicit(&watch_count, memory_order_relaxed);
    o->log_watcher_sent = atomic_load_explicit(&watch_sent, memory_order_relaxed);
    o->log_watcher_skipped = atomic_load_explicit(&watch_skipped, memory_order_relaxed);
}

void watch_conn_event(const struct conn *c, bool closed)
{
    static const char *const reasons[] = {"error", "normal", "idle_timeout", "shutdown"};
    /* memcached: rip/rport of the peer (inet_ntop, no brackets), "unix" and 0 for a unix
     * socket, whose transport is "local". c->addr is "tcp:1.2.3.4:5678" or
     * "tcp6:[::1]:5678" (server/conn.c peer_name). */
    char rip[INET6_ADDRSTRLEN + 1] = "unix";
    unsigned port = 0;
    bool local = c->pc.is_unix;
    if (!local) {
        const char *a = strchr(c->addr, ':');
        const char *colon = strrchr(c->addr, ':');
        if (a != NULL && colon != NULL && colon > a) {
            const char *h = a + 1;
            size_t hl = (size_t)(colon - h);
            if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
                h++, hl -= 2;
            if (hl >= sizeof rip)
                hl = sizeof rip - 1;
            memcpy(rip, h, hl);
            rip[hl] = '\0';
            port = (unsigned)strtoul(colon + 1, NULL, 10);
        } else {
            rip[0] = '\0';
        }
    }
    char line[256];
    int n;
    if (!closed)
        n = snprintf(line, sizeof line, "type=conn_new rip=%s rport=%u transport=%s cfd=%d", rip,
                     port, local ? "local" : "tcp", c->fd);
    else
        n = snprintf(line, sizeof line,
                     "type=conn_close rip=%s rport=%u transport=%s reason=%s cfd=%d", rip, port,
                     local ? "local" : "tcp",
                     reasons[c->pc.close_reason < 4 ? c->pc.close_reason : 0], c->fd);
    if (n > 0 && (size_t)n < sizeof line)
        watch_emit(WATCH_CONNEVENTS, line, (size_t)n);
}
